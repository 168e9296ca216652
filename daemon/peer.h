/*
 * peer.h: which process is on the other end of a connection, for the log.
 *
 * The kernel vouches for two facts: the peer's uid and pid (SO_PEERCRED, at
 * connect time) and, where it can be read, its executable (/proc/PID/exe,
 * set by execve). The process name (comm) and command line are chosen by
 * the process itself, so they are the weaker claim; they are recorded
 * because they stay readable where the executable does not: inside the
 * user namespace of the systemd service (PrivateUsers=yes), readlink() of
 * another namespace's /proc/PID/exe fails with EACCES.
 *
 * A pid looked up after accept() may name another process by then, if the
 * peer exited and its pid was reused. Where the kernel has SO_PEERPIDFD
 * (Linux 6.5), the names are read while a pidfd pins the peer, and kept
 * only if the peer is still alive afterwards.
 */
#ifndef MCPSIG_PEER_H
#define MCPSIG_PEER_H

#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>

#define PEER_COMM_MAX 64     /* comm is at most 16 bytes; escaped, up to 4 times that */
#define PEER_CMDLINE_MAX 256 /* escaped, cut with "..." beyond this */

struct peer_info {
  char exe[PATH_MAX];              /* "" when unreadable */
  char comm[PEER_COMM_MAX];        /* "" when unreadable */
  char cmdline[PEER_CMDLINE_MAX];  /* "" when unreadable */
  bool pidfd;                      /* the names were read under a pidfd and the peer outlived the read */
};

/*
 * Fills *ret with what can be read of process pid, the peer of the Unix
 * socket fd (fd < 0: no pidfd check). Every string is escaped: control
 * characters, backslashes and bytes >= 0x7f become \xNN, so a program name
 * with a newline cannot forge a log line.
 */
void peer_identify(int fd, pid_t pid, struct peer_info *ret);

/* Copies src[0..len) into dst (size > 0), escaped as above; cuts with "..." when it does not fit. */
void peer_escape(char *dst, size_t size, const char *src, size_t len);

#endif
