/*
 * sockpath.c: the default socket path rule that the agent, the library, the
 * CLI and the language bindings share (tests/vectors/socket-path.tsv).
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
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
  return proto_socket_path_fallback(buf, size, tmpdir, uid);
}

int proto_socket_path_fallback(char *buf, size_t size, const char *tmpdir, uid_t uid) {
  if (!tmpdir || tmpdir[0] != '/')
    tmpdir = "/tmp";
  return path_format(buf, size, "%s/mcpsig-%lu/agent.sock", tmpdir, (unsigned long)uid);
}

int proto_socket_dir(const char *path, char *buf, size_t size) {
  const char *slash = strrchr(path, '/');
  if (!slash)
    return path_format(buf, size, ".");
  if (slash == path)
    return path_format(buf, size, "/");
  return path_format(buf, size, "%.*s", (int)(slash - path), path);
}

int proto_socket_dir_check(const char *dir, uid_t uid, struct stat *st) {
  /* lstat, as the agent itself does: a symbolic link can be pointed
   * elsewhere by whoever owns it, whatever its target looks like now. */
  if (lstat(dir, st) < 0)
    return -errno;
  if (S_ISLNK(st->st_mode))
    return MCPSIG_EPEER;
  if (!S_ISDIR(st->st_mode))
    return -ENOTDIR;
  if (st->st_uid != uid && st->st_uid != 0)
    return MCPSIG_EPEER;
  /* Unlike the agent, clients do not accept a sticky directory such as /tmp
   * itself: anyone may create the socket's name there before the agent does. */
  if (st->st_mode & (S_IWGRP | S_IWOTH))
    return MCPSIG_EPEER;
  return 0;
}
