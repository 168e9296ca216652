/*
 * activator: stands in for systemd's socket activation, which
 * systemd-socket-activate cannot (it starts its program only once). It keeps
 * the listening socket at PATH for its whole life and, whenever a client is
 * waiting and no agent runs, starts one with the socket as fd 3 and
 * LISTEN_FDS=1, LISTEN_PID set, as systemd does.
 *
 *   activator PATH SECONDS AGENT [ARGS...]
 *
 * Prints "start PID" and "exit PID STATUS" lines. Exits after SECONDS,
 * stopping a running agent with SIGTERM.
 */
#include "config.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  if (argc < 4 || strlen(argv[1]) >= sizeof(sa.sun_path)) {
    fprintf(stderr, "usage: activator PATH SECONDS AGENT [ARGS...]\n");
    return 2;
  }
  strcpy(sa.sun_path, argv[1]);
  unlink(argv[1]);
  int lfd = socket(AF_UNIX, SOCK_STREAM, 0); /* inherited by the agent: no CLOEXEC */
  mode_t old = umask(0177);
  if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 64) < 0) {
    perror("activator");
    return 1;
  }
  umask(old);
  time_t end = time(NULL) + atol(argv[2]);
  pid_t child = 0;
  while (time(NULL) < end) {
    if (child > 0) {
      int status;
      pid_t w = waitpid(child, &status, WNOHANG);
      if (w == child) {
        printf("exit %ld %d\n", (long)child, WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
        fflush(stdout);
        child = 0;
        continue;
      }
      struct timespec ts = { 0, 20 * 1000 * 1000 };
      nanosleep(&ts, NULL);
      continue;
    }
    struct pollfd p = { lfd, POLLIN, 0 };
    if (poll(&p, 1, 100) <= 0)
      continue;
    fflush(stdout);
    child = fork();
    if (child < 0) {
      perror("fork");
      return 1;
    }
    if (child == 0) {
      char pid[32];
      if (lfd != 3) {
        dup2(lfd, 3);
        close(lfd);
      }
      snprintf(pid, sizeof(pid), "%ld", (long)getpid());
      setenv("LISTEN_FDS", "1", 1);
      setenv("LISTEN_PID", pid, 1);
      execv(argv[3], argv + 3);
      perror("exec");
      _exit(127);
    }
    printf("start %ld\n", (long)child);
    fflush(stdout);
  }
  if (child > 0) {
    kill(child, SIGTERM);
    waitpid(child, NULL, 0);
  }
  close(lfd);
  unlink(argv[1]);
  return 0;
}
