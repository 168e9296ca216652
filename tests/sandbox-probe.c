#define _GNU_SOURCE
/*
 * sandbox-probe: tries, one by one, what the service's system-call sandbox
 * must refuse, and prints one "name=result" line each: "ok" when the call
 * succeeded, else the errno name (or "killed-SIGSYS"). tests/systemd-real.sh
 * runs it under a copy of the shipped unit (only ExecStart= and Type=
 * changed) and, as the control, outside any sandbox.
 *
 *   sandbox-probe DIR   DIR: a writable directory for the set-uid check
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

static const char *errname(int e) {
  switch (e) {
  case EPERM: return "EPERM";
  case EACCES: return "EACCES";
  case EAFNOSUPPORT: return "EAFNOSUPPORT";
  case EINVAL: return "EINVAL";
  case ENOSYS: return "ENOSYS";
  case EROFS: return "EROFS";
  case ENOMEM: return "ENOMEM";
  case ENOENT: return "ENOENT";
  default: return strerror(e);
  }
}

static void report(const char *name, int r) {
  printf("%s=%s\n", name, r == 0 ? "ok" : errname(errno));
  fflush(stdout);
}

/* Runs fn in a child, so a call the filter kills or that changes the process stays there. */
static void in_child(const char *name, int (*fn)(void)) {
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    report(name, fn());
    _exit(0);
  }
  int st = 0;
  if (pid < 0 || waitpid(pid, &st, 0) < 0)
    printf("%s=fork-failed\n", name);
  else if (WIFSIGNALED(st))
    printf("%s=killed-%s\n", name, WTERMSIG(st) == SIGSYS ? "SIGSYS" : "signal");
  fflush(stdout);
}

static int try_wx_mmap(void) {
  void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? -1 : 0;
}

static int try_personality(void) {
  /* LockPersonality= allows only the current personality. */
  return personality(PER_LINUX32) < 0 ? -1 : 0;
}

static int try_ptrace(void) {
  /* ptrace is in @debug, outside @system-service. */
  return ptrace(PTRACE_TRACEME, 0, NULL, NULL) < 0 ? -1 : 0;
}

static int try_inet(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    return -1;
  close(fd);
  return 0;
}

static int try_unshare_user(void) {
  return unshare(CLONE_NEWUSER) < 0 ? -1 : 0;
}

static int try_realtime(void) {
  struct sched_param sp = { .sched_priority = 1 };
  return sched_setscheduler(0, SCHED_RR, &sp) < 0 ? -1 : 0;
}

static int try_keyctl(void) {
  /* KEYCTL_GET_KEYRING_ID of the session keyring. */
  return syscall(SYS_keyctl, 0, -3, 0) < 0 ? -1 : 0;
}

static int try_sethostname(void) {
  char name[256];
  if (gethostname(name, sizeof(name)) < 0)
    return -1;
  return sethostname(name, strlen(name)) < 0 ? -1 : 0;
}

static int try_clock(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return clock_settime(CLOCK_REALTIME, &ts) < 0 ? -1 : 0;
}

static int try_mlock(void) {
  /* Must work: the agent locks its key memory. */
  static char page[4096];
  return mlock(page, sizeof(page));
}

static int try_i386(void) {
#if defined(__x86_64__)
  /* getpid through the 32-bit entry point: SystemCallArchitectures=native refuses it. */
  long ret;
  __asm__ volatile("int $0x80" : "=a"(ret) : "a"(20L) : "memory");
  if (ret < 0) {
    errno = (int)-ret;
    return -1;
  }
  return 0;
#else
  errno = ENOSYS;
  return -1;
#endif
}

static const char *dir;

static int try_suid(void) {
  char path[4096];
  snprintf(path, sizeof(path), "%s/sandbox-probe.suid", dir);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    return -1;
  close(fd);
  int r = chmod(path, 04700);
  int e = errno;
  unlink(path);
  errno = e;
  return r;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: sandbox-probe DIR\n");
    return 2;
  }
  dir = argv[1];
  in_child("wx_mmap", try_wx_mmap);
  in_child("personality", try_personality);
  in_child("ptrace", try_ptrace);
  in_child("socket_inet", try_inet);
  in_child("unshare_user", try_unshare_user);
  in_child("realtime", try_realtime);
  in_child("keyctl", try_keyctl);
  in_child("sethostname", try_sethostname);
  in_child("clock_settime", try_clock);
  in_child("suid", try_suid);
  in_child("i386_syscall", try_i386);
  in_child("mlock", try_mlock);
  printf("done=ok\n");
  return 0;
}
