/*
 * ptrace-attach: a test tool. Tries PTRACE_ATTACH on a process and reports
 * the outcome on standard output:
 *   "attached" (then detaches at once, leaving the process running), or
 *   "refused <errno name> (<message>)"
 * Exit status: 0 attached, 1 refused, 2 usage or other error. The security
 * test runs it as the agent's own user, to show the agent cannot be traced.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *errno_name(int e) {
  switch (e) {
  case EPERM: return "EPERM";
  case ESRCH: return "ESRCH";
  case EACCES: return "EACCES";
  case EBUSY: return "EBUSY";
  default: return "other";
  }
}

int main(int argc, char **argv) {
  char *end = NULL;
  long pid;

  if (argc != 2) {
    fprintf(stderr, "usage: ptrace-attach PID\n");
    return 2;
  }
  errno = 0;
  pid = strtol(argv[1], &end, 10);
  if (errno || !*argv[1] || *end || pid < 1) {
    fprintf(stderr, "ptrace-attach: '%s' is not a process id\n", argv[1]);
    return 2;
  }
  if (ptrace(PTRACE_ATTACH, (pid_t)pid, NULL, NULL) < 0) {
    int e = errno;
    printf("refused %s (%s)\n", errno_name(e), strerror(e));
    return 1;
  }
  /* The tracee stops with SIGSTOP; wait for that (bounded) and let it go. */
  for (int i = 0; i < 200; i++) {
    int status;
    pid_t w = waitpid((pid_t)pid, &status, WNOHANG | __WALL);
    if (w == (pid_t)pid)
      break;
    usleep(10000);
  }
  (void)ptrace(PTRACE_DETACH, (pid_t)pid, NULL, NULL);
  printf("attached\n");
  return 0;
}
