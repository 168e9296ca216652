/*
 * notify-listen: stands in for systemd's notification socket. Binds a Unix
 * datagram socket at PATH and prints every message it receives on one line,
 * its assignments separated by " | ", until killed or SECONDS pass. With
 * --hold it binds the socket and never reads it: a service manager that has
 * stopped reading.
 *
 *   notify-listen PATH SECONDS [--hold]
 */
#include "config.h"

#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  bool hold = argc == 4 && strcmp(argv[3], "--hold") == 0;
  if ((argc != 3 && !hold) || strlen(argv[1]) >= sizeof(sa.sun_path)) {
    fprintf(stderr, "usage: notify-listen PATH SECONDS [--hold]\n");
    return 2;
  }
  strcpy(sa.sun_path, argv[1]);
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  unlink(argv[1]);
  if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
    perror("notify-listen");
    return 1;
  }
  time_t end = time(NULL) + atol(argv[2]);
  while (hold && time(NULL) < end)
    sleep(1);
  while (time(NULL) < end) {
    struct pollfd p = { fd, POLLIN, 0 };
    if (poll(&p, 1, 200) <= 0)
      continue;
    char buf[4096];
    ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
    if (n <= 0)
      continue;
    buf[n] = '\0';
    for (char *s = buf; *s; s++)
      if (*s == '\n')
        *s = '|';
    printf("%s\n", buf);
    fflush(stdout);
  }
  return 0;
}
