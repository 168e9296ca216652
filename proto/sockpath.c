/*
 * sockpath.c: the default socket path rule that the agent, the library, the
 * CLI and the language bindings share (tests/vectors/socket-path.tsv).
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "proto.h"

__attribute__((format(printf, 3, 4)))
static int path_format(char *buf, size_t size, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, size, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= size)
    return -ENAMETOOLONG;
  return 0;
}

int proto_socket_path_default(char *buf, size_t size, const char *xdg, const char *tmpdir, uid_t uid,
                              const char *run_user_root) {
  char run_user[256];
  struct stat st;

  /* The XDG Base Directory spec says a relative value is invalid and must be
   * ignored, as if unset. */
  if (xdg && xdg[0] == '/')
    return path_format(buf, size, "%s/mcpsig/agent.sock", xdg);
  if (!run_user_root)
    run_user_root = "/run/user";
  if (path_format(run_user, sizeof(run_user), "%s/%lu", run_user_root, (unsigned long)uid) == 0 &&
      stat(run_user, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == uid)
    return path_format(buf, size, "%s/mcpsig/agent.sock", run_user);
  if (!tmpdir || tmpdir[0] != '/')
    tmpdir = "/tmp";
  return path_format(buf, size, "%s/mcpsig-%lu/agent.sock", tmpdir, (unsigned long)uid);
}
