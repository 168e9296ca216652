/* peer.c: the identity of a connection's peer process (see peer.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "peer.h"

/* Linux 6.5; older headers (Debian 12's) do not name it. */
#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

void peer_escape(char *dst, size_t size, const char *src, size_t len) {
  static const char hex[] = "0123456789abcdef";
  size_t o = 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char ch = (unsigned char)src[i];
    bool plain = ch >= 0x20 && ch < 0x7f && ch != '\\';
    size_t need = plain ? 1 : 4;
    if (o + need + 1 > size) {
      /* Cut where it stops fitting, and say so. */
      if (size >= 4) {
        if (o > size - 4)
          o = size - 4;
        memcpy(dst + o, "...", 3);
        o += 3;
      }
      break;
    }
    if (plain)
      dst[o++] = (char)ch;
    else {
      dst[o++] = '\\';
      dst[o++] = 'x';
      dst[o++] = hex[ch >> 4];
      dst[o++] = hex[ch & 15];
    }
  }
  dst[o] = '\0';
}

/* Reads up to size bytes of /proc/PID/NAME; returns the length, or -1. */
static ssize_t proc_read(pid_t pid, const char *name, char *buf, size_t size) {
  char path[64];
  snprintf(path, sizeof(path), "/proc/%ld/%s", (long)pid, name);
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0)
    return -1;
  size_t got = 0;
  while (got < size) {
    ssize_t n = read(fd, buf + got, size - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    got += (size_t)n;
  }
  close(fd);
  return (ssize_t)got;
}

static void read_names(pid_t pid, struct peer_info *p) {
  char raw[PATH_MAX];
  char link[64];
  ssize_t n;

  snprintf(link, sizeof(link), "/proc/%ld/exe", (long)pid);
  n = readlink(link, raw, sizeof(raw));
  if (n > 0 && (size_t)n < sizeof(raw))
    peer_escape(p->exe, sizeof(p->exe), raw, (size_t)n);

  n = proc_read(pid, "comm", raw, 32);
  if (n > 0 && raw[n - 1] == '\n')
    n--;
  if (n > 0)
    peer_escape(p->comm, sizeof(p->comm), raw, (size_t)n);

  /* The arguments are NUL-separated; shown separated by spaces. */
  n = proc_read(pid, "cmdline", raw, PEER_CMDLINE_MAX);
  while (n > 0 && raw[n - 1] == '\0')
    n--;
  if (n > 0) {
    for (ssize_t i = 0; i < n; i++)
      if (raw[i] == '\0')
        raw[i] = ' ';
    peer_escape(p->cmdline, sizeof(p->cmdline), raw, (size_t)n);
  }
}

void peer_identify(int fd, pid_t pid, struct peer_info *ret) {
  int pidfd = -1;
  socklen_t len = sizeof(pidfd);

  memset(ret, 0, sizeof(*ret));
  if (pid <= 0)
    return;
  if (fd >= 0 && getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) < 0) {
    if (errno == ESRCH)
      return; /* the peer has exited: its pid may name another process */
    pidfd = -1;  /* no SO_PEERPIDFD (before Linux 6.5): the pid alone */
  }
  read_names(pid, ret);
  if (pidfd < 0)
    return;
  /* A pidfd becomes readable when its process exits: if the peer is gone,
   * its pid may already name another process, so the names are dropped. */
  struct pollfd pfd = { .fd = pidfd, .events = POLLIN };
  int r;
  do
    r = poll(&pfd, 1, 0);
  while (r < 0 && errno == EINTR);
  if (r == 0)
    ret->pidfd = true;
  else {
    ret->exe[0] = ret->comm[0] = ret->cmdline[0] = '\0';
  }
  close(pidfd);
}
