/* service.c: systemd socket activation and notifications (see service.h). */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <systemd/sd-daemon.h>

#include "errmsg.h"
#include "service.h"

int service_listen_fd(int *ret_fd, char *err, size_t errlen) {
  const char *fds = getenv("LISTEN_FDS");
  const char *pid = getenv("LISTEN_PID");

  if (!fds)
    return 0;
  /* sd_listen_fds() quietly ignores sockets meant for another process;
   * an agent that was handed someone else's environment says so. */
  if (!pid || strtol(pid, NULL, 10) != (long)getpid())
    return errmsg(err, errlen, -EINVAL,
                  "LISTEN_FDS is set but LISTEN_PID=%s is not this process (%ld): refusing sockets meant for another "
                  "process; unset LISTEN_FDS and LISTEN_PID",
                  pid ? pid : "(unset)", (long)getpid());
  int n = sd_listen_fds(1);
  if (n < 0)
    return errmsg(err, errlen, n, "cannot take the sockets systemd passed: %s", strerror(-n));
  if (n != 1)
    return errmsg(err, errlen, -EINVAL,
                  "systemd passed %d sockets; mcpsig-agent takes exactly one (ListenStream= in mcpsig-agent.socket)", n);
  int fd = SD_LISTEN_FDS_START;
  int r = sd_is_socket_unix(fd, SOCK_STREAM, 1, NULL, 0);
  if (r <= 0)
    return errmsg(err, errlen, -EINVAL,
                  "the socket systemd passed is not a listening Unix stream socket (use ListenStream=PATH)");
  *ret_fd = fd;
  return 1;
}

/*
 * sd_notify() blocks while the manager's datagram queue is full, so a
 * manager that stops reading would freeze the agent. Messages go out here on
 * a non-blocking socket instead: a STATUS= update that does not fit is
 * dropped (the next one replaces it), and READY=, RELOADING= and STOPPING=
 * wait at most a second for room.
 */
void service_notify(const char *fmt, ...) {
  static int fd = -1;
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  const char *path = getenv("NOTIFY_SOCKET");
  char msg[512];
  va_list ap;
  size_t n;

  if (!path || (path[0] != '/' && path[0] != '@') || (n = strlen(path)) >= sizeof(sa.sun_path))
    return;
  memcpy(sa.sun_path, path, n);
  if (path[0] == '@')
    sa.sun_path[0] = '\0'; /* the abstract namespace */
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  if (fd < 0 && (fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0)
    return;
  socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
  bool status_only = strncmp(msg, "STATUS=", 7) == 0;
  for (int tries = 0; tries < 20; tries++) {
    if (sendto(fd, msg, strlen(msg), MSG_DONTWAIT | MSG_NOSIGNAL, (struct sockaddr *)&sa, len) >= 0 ||
        (errno != EAGAIN && errno != EWOULDBLOCK) || status_only)
      return;
    struct pollfd p = { fd, POLLOUT, 0 };
    (void)poll(&p, 1, 50);
  }
}
