/*
 * rawsend: a test tool. Connects to a Unix socket, sends its standard input
 * as it is, and reports on standard output what came back:
 *   "reply <n> bytes: <hex prefix>" and then "closed" or "open"
 * It waits at most two seconds, so a test using it never hangs.
 */
#include "config.h"

#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int main(int argc, char **argv) {
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  unsigned char buf[65536];
  size_t got = 0;
  int closed = 0;

  if (argc != 2 || strlen(argv[1]) >= sizeof(sa.sun_path)) {
    fprintf(stderr, "usage: rawsend SOCKET < bytes\n");
    return 2;
  }
  strcpy(sa.sun_path, argv[1]);
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
    printf("connect failed\n");
    return 1;
  }
  ssize_t n;
  while ((n = read(STDIN_FILENO, buf, sizeof(buf))) > 0)
    if (send(fd, buf, (size_t)n, MSG_NOSIGNAL) < 0)
      break;
  for (;;) {
    struct pollfd p = { fd, POLLIN, 0 };
    if (poll(&p, 1, 2000) <= 0)
      break;
    n = recv(fd, buf + got, sizeof(buf) - got, 0);
    if (n <= 0) {
      closed = 1;
      break;
    }
    got += (size_t)n;
    if (got == sizeof(buf))
      break;
  }
  printf("reply %zu bytes:", got);
  for (size_t i = 0; i < got && i < 16; i++)
    printf(" %02x", buf[i]);
  printf("\n%s\n", closed ? "closed" : "open");
  return 0;
}
