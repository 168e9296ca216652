/*
 * fake-listener.c: a fake agent for tests/fake-agent.sh. It listens on
 * SOCKET, as whatever uid runs it, and appends every byte any client sends
 * to BYTES, and one line per accepted connection to CONNS, so the test can
 * tell "never connected", "connected and sent nothing" and "sent a request"
 * apart. It answers nothing: each connection is closed once its sender stops
 * (or after a second of silence), so a client that does talk to it fails
 * at once instead of waiting for its timeout.
 *
 *   fake-listener SOCKET BYTES CONNS
 *
 * It makes SOCKET's directory (mode 0755, as an attacker would, so that the
 * victim can reach it) when it is missing, prints "listening" when ready,
 * and runs until killed.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

int main(int argc, char **argv) {
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  char dir[sizeof(sa.sun_path)];

  if (argc != 4 || strlen(argv[1]) >= sizeof(sa.sun_path)) {
    fprintf(stderr, "usage: fake-listener SOCKET BYTES CONNS\n");
    return 2;
  }
  snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", argv[1]);
  snprintf(dir, sizeof(dir), "%s", argv[1]);
  char *slash = strrchr(dir, '/');
  if (slash && slash != dir) {
    *slash = '\0';
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
      fprintf(stderr, "fake-listener: mkdir %s: %s\n", dir, strerror(errno));
      return 1;
    }
  }
  int bytes = open(argv[2], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  int conns = open(argv[3], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (bytes < 0 || conns < 0) {
    fprintf(stderr, "fake-listener: cannot open the logs: %s\n", strerror(errno));
    return 1;
  }
  umask(0); /* a socket anyone may connect to, as a trap would be */
  int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  unlink(argv[1]);
  if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 64) < 0) {
    fprintf(stderr, "fake-listener: cannot listen on %s: %s\n", argv[1], strerror(errno));
    return 1;
  }
  printf("listening\n");
  fflush(stdout);
  for (unsigned long n = 1;; n++) {
    int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (c < 0) {
      if (errno == EINTR || errno == ECONNABORTED)
        continue;
      return 1;
    }
    char line[64];
    int len = snprintf(line, sizeof(line), "connection %lu\n", n);
    if (write(conns, line, (size_t)len) != len)
      return 1;
    struct timeval tv = { 1, 0 };
    (void)setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    for (;;) {
      char buf[65536];
      ssize_t got = read(c, buf, sizeof(buf));
      if (got <= 0)
        break;
      if (write(bytes, buf, (size_t)got) != got)
        return 1;
    }
    close(c);
  }
}
