/*
 * test-peer.c: what the agent records of a connection's peer (peer.c):
 * the executable, name and command line of a live peer over a real Unix
 * socket; a name with a newline escaped into one log line; the names
 * dropped when the peer is gone by the time it is looked up (its pid may
 * be reused), where the kernel has SO_PEERPIDFD; and the escaping itself.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dispatch.h"
#include "errmsg.h"
#include "log.h"
#include "peer.h"
#include "tap.h"

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

static int listener(struct sockaddr_un *sa) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  memset(sa, 0, sizeof(*sa));
  sa->sun_family = AF_UNIX;
  snprintf(sa->sun_path, sizeof(sa->sun_path), "/tmp/mcpsig-test-peer.%ld", (long)getpid());
  unlink(sa->sun_path);
  if (fd < 0 || bind(fd, (struct sockaddr *)sa, sizeof(*sa)) < 0 || listen(fd, 4) < 0)
    return -1;
  return fd;
}

/* A child that names itself name, connects, and then waits for a byte on
 * hold (or exits at once when hold < 0). Returns its pid. */
static pid_t child_connect(const struct sockaddr_un *sa, const char *name, int hold) {
  pid_t pid = fork();
  if (pid != 0)
    return pid;
  if (name)
    prctl(PR_SET_NAME, name);
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  if (fd < 0 || connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0)
    _exit(1);
  char c;
  if (hold >= 0)
    (void)!read(hold, &c, 1);
  _exit(0);
}

static int zombie(pid_t pid) {
  char path[64], stat[256];
  snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
  FILE *f = fopen(path, "r");
  if (!f)
    return 0;
  size_t n = fread(stat, 1, sizeof(stat) - 1, f);
  fclose(f);
  stat[n] = '\0';
  const char *p = strrchr(stat, ')');
  return p && p[1] == ' ' && p[2] == 'Z';
}

static void capture_line(const struct log_record *rec, void *userdata) {
  (void)rec;
  (void)userdata;
}

int main(int argc, char **argv) {
  struct peer_info w;
  char buf[64];
  (void)argc;

  /* ---- escaping ---- */
  peer_escape(buf, sizeof(buf), "a\nb\\c\x7f", 6);
  is_str(buf, "a\\x0ab\\x5cc\\x7f", "control characters, backslash and DEL are escaped as \\xNN");
  peer_escape(buf, 8, "abcdefghijkl", 12);
  is_str(buf, "abcd...", "a value too long is cut, with \"...\"");
  peer_escape(buf, sizeof(buf), "/usr/bin/mcpsig", 15);
  is_str(buf, "/usr/bin/mcpsig", "a plain path is unchanged");
  peer_escape(buf, sizeof(buf), "", 0);
  is_str(buf, "", "and an empty value stays empty");

  /* Messages that echo a request (errmsg, log lines): control characters only. */
  char msg[32];
  snprintf(msg, sizeof(msg), "bad header \"a\r\nb\" \\ ok");
  text_escape_controls(msg, sizeof(msg));
  is_str(msg, "bad header \"a\\x0d\\x0ab\" \\ ok", "CR and LF in a message are escaped, a backslash is kept");
  snprintf(msg, 12, "%s", "abcdefghij\n");
  text_escape_controls(msg, 12);
  is_str(msg, "abcdefghij", "an escape that does not fit ends the message there, never overflows");
  snprintf(msg, sizeof(msg), "\x1b[31mred");
  text_escape_controls(msg, sizeof(msg));
  is_str(msg, "\\x1b[31mred", "a terminal escape sequence is defused");
  char err[64];
  int code = errmsg(err, sizeof(err), -22, "unknown header %s", "x\ny");
  ok(code == -22 && strcmp(err, "unknown header x\\x0ay") == 0, "errmsg() escapes what it formats");

  /* ---- this process, by pid alone ---- */
  peer_identify(-1, getpid(), &w);
  printf("# exe %s\n", w.exe);
  ok(strstr(w.exe, "test-peer") != NULL, "the executable of a readable peer");
  is_str(w.comm, "test-peer", "its process name");
  printf("# cmdline %s\n", w.cmdline);
  ok(strncmp(w.cmdline, argv[0], strlen(argv[0])) == 0, "its command line");
  ok(!w.pidfd, "without a socket, no pidfd check is claimed");
  peer_identify(-1, 0, &w);
  ok(!w.exe[0] && !w.comm[0] && !w.cmdline[0], "pid 0 names nothing");

  /* ---- a live peer over a real socket ---- */
  struct sockaddr_un sa;
  int lfd = listener(&sa);
  ok(lfd >= 0, "a listening Unix socket");
  int hold[2];
  if (pipe(hold) < 0)
    return 99;
  pid_t pid = child_connect(&sa, "evil\nline", hold[0]);
  int cfd = accept(lfd, NULL, NULL);
  struct ucred cred;
  socklen_t len = sizeof(cred);
  ok(cfd >= 0 && getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && cred.pid == pid,
     "SO_PEERCRED names the connecting child");
  int probe_fd = -1;
  len = sizeof(probe_fd);
  int have_pidfd = getsockopt(cfd, SOL_SOCKET, SO_PEERPIDFD, &probe_fd, &len) == 0;
  if (probe_fd >= 0)
    close(probe_fd);
  printf("# this kernel %s SO_PEERPIDFD\n", have_pidfd ? "has" : "lacks");
  peer_identify(cfd, cred.pid, &w);
  is_str(w.comm, "evil\\x0aline", "a process name with a newline is escaped");
  ok(w.pidfd == (have_pidfd != 0), "the names were read under a pidfd exactly where the kernel has one");

  /* One log line for it, however it is named. */
  struct dispatch_peer dp = { .pid = cred.pid, .uid = cred.uid, .exe = NULL, .comm = w.comm, .cmdline = w.cmdline };
  int pfd[2], saved = dup(STDERR_FILENO);
  if (pipe(pfd) == 0) {
    log_open();
    dup2(pfd[1], STDERR_FILENO);
    log_info(&dp, "a record");
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(pfd[1]);
    char line[1024];
    ssize_t n = read(pfd[0], line, sizeof(line) - 1);
    line[n > 0 ? n : 0] = '\0';
    close(pfd[0]);
    size_t newlines = 0;
    for (char *p = line; *p; p++)
      newlines += *p == '\n';
    printf("# %s", line);
    ok(newlines == 1 && strstr(line, "comm evil\\x0aline"), "a program named with a newline makes one log line");
  }
  (void)!write(hold[1], "x", 1);
  waitpid(pid, NULL, 0);
  close(cfd);

  /* ---- a peer that is gone before it is looked up ---- */
  /* The child exits but is not reaped yet: as a zombie its /proc/PID/comm
   * still reads "gone-peer", so only the pidfd check can tell that the
   * process which connected is gone (once reaped, the pid is free for reuse). */
  pid = child_connect(&sa, "gone-peer", -1);
  for (int i = 0; i < 1000 && !zombie(pid); i++)
    usleep(2000);
  ok(zombie(pid), "the peer has exited (a zombie, not yet reaped)");
  cfd = accept(lfd, NULL, NULL);
  len = sizeof(cred);
  ok(cfd >= 0 && getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0, "a connection whose peer has exited");
  peer_identify(cfd, cred.pid, &w);
  if (have_pidfd)
    ok(!w.exe[0] && !w.comm[0] && !w.cmdline[0] && !w.pidfd,
       "with SO_PEERPIDFD, nothing is recorded for a peer that is gone (its pid may name another process)");
  else
    ok(!w.pidfd, "without SO_PEERPIDFD, a gone peer's names are not claimed to be checked");
  peer_identify(-1, pid, &w);
  is_str(w.comm, "gone-peer", "control: by pid alone, the zombie's name is still readable");
  waitpid(pid, NULL, 0);
  close(cfd);
  close(lfd);
  unlink(sa.sun_path);
  log_set_sink(capture_line, NULL);
  log_set_sink(NULL, NULL);
  return done_testing();
}
