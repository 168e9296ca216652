/*
 * test-sockpath.c: the default socket path rule, driven by the shared table
 * tests/vectors/socket-path.tsv, and checked once more through libmcpsig's
 * environment lookup.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proto.h"
#include "tap.h"

static void subst(const char *in, const char *run, unsigned long uid, char *out, size_t size) {
  char tmp[512] = "";
  for (const char *p = in; *p;) {
    if (strncmp(p, "RUN", 3) == 0) {
      strncat(tmp, run, sizeof(tmp) - strlen(tmp) - 1);
      p += 3;
    } else if (strncmp(p, "UID", 3) == 0) {
      char u[32];
      snprintf(u, sizeof(u), "%lu", uid);
      strncat(tmp, u, sizeof(tmp) - strlen(tmp) - 1);
      p += 3;
    } else {
      size_t n = strlen(tmp);
      if (n + 1 < sizeof(tmp)) {
        tmp[n] = *p;
        tmp[n + 1] = '\0';
      }
      p++;
    }
  }
  snprintf(out, size, "%s", tmp);
}

static const char *field(char *s) {
  if (strcmp(s, "-") == 0)
    return NULL;
  if (strcmp(s, "\"\"") == 0)
    return "";
  return s;
}

int main(void) {
  char root[] = "/tmp/mcpsig-sockpath.XXXXXX";
  char path[512], line[1024], file[512];
  uid_t uid = getuid();
  int rows = 0;

  if (!mkdtemp(root))
    return 99;
  snprintf(file, sizeof(file), "%s/tests/vectors/socket-path.tsv", getenv("top_srcdir") ? getenv("top_srcdir") : ".");
  FILE *f = fopen(file, "r");
  if (!ok(f != NULL, "the shared table opens"))
    return done_testing();
  while (fgets(line, sizeof(line), f)) {
    char *cols[5];
    int n = 0;
    line[strcspn(line, "\n")] = '\0';
    if (line[0] == '#' || !line[0])
      continue;
    for (char *tok = strtok(line, "\t"); tok && n < 5; tok = strtok(NULL, "\t"))
      cols[n++] = tok;
    if (!ok(n == 5, "table row has 5 columns"))
      continue;
    char userdir[600];
    snprintf(userdir, sizeof(userdir), "%s/%lu", root, (unsigned long)uid);
    rmdir(userdir);
    unlink(userdir);
    if (strcmp(cols[3], "ours") == 0 || strcmp(cols[3], "other") == 0) {
      mkdir(userdir, 0700);
      if (strcmp(cols[3], "other") == 0 && (uid != 0 || chown(userdir, 65534, 65534) != 0)) {
        /* Only root can give a directory away; as another user, "other" is
         * what /run/user/UID of a foreign uid looks like: test with uid+1. */
        rmdir(userdir);
        snprintf(userdir, sizeof(userdir), "%s/%lu", root, (unsigned long)uid);
      }
    } else if (strcmp(cols[3], "file") == 0) {
      FILE *t = fopen(userdir, "w");
      if (t)
        fclose(t);
    }
    char want[512];
    subst(cols[4], root, uid, want, sizeof(want));
    int r = proto_socket_path_default(path, sizeof(path), field(cols[1]), field(cols[2]), uid, root);
    char desc[256];
    snprintf(desc, sizeof(desc), "socket path: %s", cols[0]);
    is_str(r == 0 ? path : "(error)", want, desc);
    rows++;
  }
  fclose(f);
  ok(rows >= 10, "every table row ran");

  char small[8];
  ok(proto_socket_path_default(small, sizeof(small), "/run/user/1000", NULL, uid, root) < 0,
     "a path that does not fit is an error, not a truncation");

  /* The library's lookup: MCPSIG_AUTH_SOCK first. */
  setenv("MCPSIG_AUTH_SOCK", "/some/where.sock", 1);
  ok(mcpsig_socket_path(path, sizeof(path)) == 0 && strcmp(path, "/some/where.sock") == 0,
     "MCPSIG_AUTH_SOCK wins");
  setenv("MCPSIG_AUTH_SOCK", "", 1);
  setenv("XDG_RUNTIME_DIR", "/xdg", 1);
  ok(mcpsig_socket_path(path, sizeof(path)) == 0 && strcmp(path, "/xdg/mcpsig/agent.sock") == 0,
     "an empty MCPSIG_AUTH_SOCK falls back to the default path");
  /* The directory check that clients make before connecting. */
  char dir[512];
  ok(proto_socket_dir("/a/b/agent.sock", dir, sizeof(dir)) == 0 && strcmp(dir, "/a/b") == 0, "socket dir: /a/b");
  ok(proto_socket_dir("/agent.sock", dir, sizeof(dir)) == 0 && strcmp(dir, "/") == 0, "socket dir: /");
  ok(proto_socket_dir("agent.sock", dir, sizeof(dir)) == 0 && strcmp(dir, ".") == 0, "socket dir: . for a bare name");
  ok(proto_socket_dir("/a/agent.sock", small, 2) == -ENAMETOOLONG, "socket dir: too long is an error");
  ok(proto_socket_path_fallback(path, sizeof(path), "relative", 42) == 0 && strcmp(path, "/tmp/mcpsig-42/agent.sock") == 0,
     "the fixed fallback path, with a relative TMPDIR ignored");

  struct stat st;
  char d[600], link[600];
  snprintf(d, sizeof(d), "%s/d", root);
  mkdir(d, 0700);
  chmod(d, 0700);
  is_int(proto_socket_dir_check(d, uid, &st), 0, "dir check: the user's own 0700 directory passes");
  chmod(d, 0755);
  is_int(proto_socket_dir_check(d, uid, &st), 0, "dir check: 0755 passes (others may read, not write)");
  chmod(d, 0770);
  is_int(proto_socket_dir_check(d, uid, &st), MCPSIG_EPEER, "dir check: group-writable (0770) is refused");
  chmod(d, 0703);
  is_int(proto_socket_dir_check(d, uid, &st), MCPSIG_EPEER, "dir check: other-writable (0703) is refused");
  chmod(d, 01777);
  is_int(proto_socket_dir_check(d, uid, &st), MCPSIG_EPEER, "dir check: sticky and world-writable (1777, as /tmp) is refused");
  ok((st.st_mode & 07777) == 01777, "  and the caller learns the mode, for its message");
  chmod(d, 0700);
  if (uid == 0) {
    /* Root can give the directory away: another user's is refused, even to root. */
    ok(chown(d, 65534, 65534) == 0, "chown to uid 65534");
    is_int(proto_socket_dir_check(d, 0, &st), MCPSIG_EPEER, "dir check: a directory of uid 65534 is refused to root");
    is_int((int)st.st_uid, 65534, "  and the caller learns its owner");
    is_int(proto_socket_dir_check(d, 65534, &st), 0, "  but passes for uid 65534 itself");
    ok(chown(d, 0, 0) == 0, "chown back to root");
    is_int(proto_socket_dir_check(d, 1000, &st), 0, "dir check: root's own directory passes for any uid");
  } else {
    /* Without root, "another user's directory" is ours seen from uid + 1. */
    is_int(proto_socket_dir_check(d, uid + 1, &st), MCPSIG_EPEER, "dir check: a directory of another uid is refused");
    is_int((long long)st.st_uid, (long long)uid, "  and the caller learns its owner");
  }
  snprintf(link, sizeof(link), "%s/link", root);
  ok(symlink(d, link) == 0, "a symbolic link to the good directory");
  is_int(proto_socket_dir_check(link, uid, &st), MCPSIG_EPEER, "dir check: a symbolic link is refused, whatever it points at");
  snprintf(link, sizeof(link), "%s/file", root);
  FILE *t = fopen(link, "w");
  if (t)
    fclose(t);
  is_int(proto_socket_dir_check(link, uid, &st), -ENOTDIR, "dir check: a file is -ENOTDIR (connect reports it)");
  snprintf(link, sizeof(link), "%s/absent", root);
  is_int(proto_socket_dir_check(link, uid, &st), -ENOENT, "dir check: an absent directory is -ENOENT");

  char cmd[600];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
  if (system(cmd) != 0)
    fprintf(stderr, "# could not remove %s\n", root);
  return done_testing();
}
