/* service.c: systemd socket activation and notifications (see service.h). */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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

void service_notify(const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  (void)sd_notify(0, msg);
}
