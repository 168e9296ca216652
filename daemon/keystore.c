/*
 * keystore.c: durable, atomic storage of identities and bindings.
 *
 * Invariant 1 (no signature under a key that is not durably stored) rests on
 * keystore_binding_write() and keystore_pending_write(), which return only
 * after durable_replace() (durable.c) has put the file and its directory
 * entry on disk. Invariant 2 rests on never modifying a file in place.
 *
 * The keystore is a directory of the user's, and others share the machine:
 * what the load accepts and what it removes is written so that no file
 * another user, a backup or a mistake leaves there can make the agent hang,
 * fill the disk, write into someone else's file, or start on a keystore
 * that someone else could have swapped.
 */
#include "config.h"

#include <dirent.h>
#include <stdarg.h>
#include <stddef.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sodium.h>

#include "durable.h"
#include "errmsg.h"
#include "jwk.h"
#include "keystore.h"
#include "log.h"
#include "proto.h"
#include "testhooks.h"

#define KEYSTORE_VERSION 1
#define RECORD_MAX (256u * 1024u)
#define BINDING_SUFFIX ".binding"
#define PENDING_SUFFIX ".pending"
#define DISCARD_SUFFIX ".discard"
#define LOCK_NAME "agent.lock"

struct keystore {
  char *dir;
  int dirfd;
  int lockfd;
  int oldlockfd; /* a hard-linked agent.lock that was replaced, kept locked (lock_take) */
  /* Guarded buffers that loading reuses for every record: one per level, as
   * a binding's record is still in use while its pending record is read. */
  struct recbuf {
    unsigned char *p;
    size_t cap;
  } rb[3];
};

bool identity_name_valid(const char *name) {
  size_t n = 0;
  if (!name || !((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= 'A' && name[0] <= 'Z') ||
                 (name[0] >= '0' && name[0] <= '9')))
    return false;
  for (const char *p = name; *p; p++, n++) {
    char c = *p;
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
          c == '-'))
      return false;
  }
  return n <= MCPSIG_MAX_IDENTITY_LEN;
}

/* Tags and keyids are RFC 7638 thumbprints: unpadded base64url. Anything
 * else in a record would reach logs, listings and Signature-Input. */
static bool b64url_valid(const char *s, size_t n, size_t min, size_t max) {
  if (n < min || n > max)
    return false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
      return false;
  }
  return true;
}

/* A directory or file the keys live in must be ours and private. */
static int check_private(const struct stat *st, const char *path, bool is_dir, char *err, size_t errlen) {
  if (is_dir && !S_ISDIR(st->st_mode))
    return errmsg(err, errlen, MCPSIG_ESTORE, "%s is %s, not a directory; move it aside", path,
                  durable_type_name(st->st_mode));
  if (!is_dir && !S_ISREG(st->st_mode))
    return errmsg(err, errlen, MCPSIG_ESTORE, "%s is %s, not a regular file; move it aside", path,
                  durable_type_name(st->st_mode));
  if (st->st_uid != geteuid())
    return errmsg(err, errlen, MCPSIG_ESTORE,
                  "%s is owned by uid %lu, not by this user (uid %lu); refusing to use it. If it is yours, fix it "
                  "with: chown %lu %s; if not, move it aside or use another keystore (--keystore)",
                  path, (unsigned long)st->st_uid, (unsigned long)geteuid(), (unsigned long)geteuid(), path);
  if (st->st_mode & 077)
    return errmsg(err, errlen, MCPSIG_ESTORE, "%s is accessible by group or others (mode %04o); fix it with: chmod %s %s",
                path, (unsigned)(st->st_mode & 07777), is_dir ? "700" : "600", path);
  return 0;
}

/* ---- who can replace the keystore ---- */

/*
 * Root, as this process sees it. Inside a user namespace that does not map
 * uid 0 (the systemd unit's PrivateUsers=yes), root's files appear as the
 * overflow uid, and so do those of every other unmapped user: they cannot
 * be told apart from inside, so the overflow uid counts as root there.
 */
struct owners {
  uid_t me;
  bool overflow_is_root;
  uid_t overflow;
};

static void owners_init(struct owners *o) {
  o->me = geteuid();
  o->overflow_is_root = false;
  o->overflow = 65534;
  FILE *f = fopen("/proc/self/uid_map", "re");
  if (!f)
    return;
  unsigned long inside, outside, count;
  bool root_mapped = false;
  while (fscanf(f, "%lu %lu %lu", &inside, &outside, &count) == 3)
    if (inside == 0 && count > 0)
      root_mapped = true;
  fclose(f);
  if (root_mapped)
    return;
  o->overflow_is_root = true;
  if ((f = fopen("/proc/sys/kernel/overflowuid", "re"))) {
    unsigned long v;
    if (fscanf(f, "%lu", &v) == 1)
      o->overflow = (uid_t)v;
    fclose(f);
  }
}

static bool owner_is_root(const struct owners *o, uid_t uid) {
  return uid == 0 || (o->overflow_is_root && uid == o->overflow);
}

/*
 * One directory above the keystore. Whoever can write it can rename the
 * keystore away and put another in its place, and the agent would start on
 * that one, or on a fresh one with new tags, without a word. As OpenSSH's
 * safe_path() does, only the user and root may own it, and only a root
 * directory with the sticky bit (/tmp) may be writable by others.
 */
static int ancestor_check(const struct owners *o, const char *keystore, const char *path, const struct stat *st,
                          char *err, size_t errlen) {
  bool root = owner_is_root(o, st->st_uid);
  /* No one can change a symbolic link, only replace it, which takes the
   * directory it is in (checked as the next ancestor); where it leads is
   * checked in the walk of the resolved path. */
  if (S_ISLNK(st->st_mode))
    return 0;
  if (st->st_uid != o->me && !root)
    return errmsg(err, errlen, MCPSIG_ESTORE,
                  "refusing the keystore %s: %s above it belongs to uid %lu, who could move the keystore away and "
                  "have the agent start on another one, with new tags; use a keystore under directories that only "
                  "you or root own (--keystore DIR), or have root fix it with: chown root %s",
                  keystore, path, (unsigned long)st->st_uid, path);
  if (!(st->st_mode & 022) || (root && (st->st_mode & S_ISVTX)))
    return 0;
  return errmsg(err, errlen, MCPSIG_ESTORE,
                "refusing the keystore %s: %s above it is writable by %s (mode %04o, owner uid %lu), who could move "
                "the keystore away and have the agent start on another one, with new tags; fix it with: chmod go-w "
                "%s%s, or use a keystore elsewhere (--keystore DIR)",
                keystore, path, (st->st_mode & 002) ? "every user" : "its group", (unsigned)(st->st_mode & 07777),
                (unsigned long)st->st_uid, path,
                root ? " as its owner (or chmod +t, if it is meant to be shared, as /tmp is)" : "");
}

/* Every directory from path's parent up to /, with lstat. Missing ones are
 * skipped when missing_ok: the agent creates them, with mode 0700. */
static int ancestors_check(const struct owners *o, const char *keystore, const char *path, bool missing_ok, char *err,
                           size_t errlen) {
  char p[PATH_MAX];
  struct stat st;

  if (snprintf(p, sizeof(p), "%s", path) >= (int)sizeof(p))
    return errmsg(err, errlen, MCPSIG_ESTORE, "the keystore path %.64s... is too long", path);
  for (;;) {
    size_t n = strlen(p);
    while (n > 1 && p[n - 1] == '/')
      p[--n] = '\0';
    char *slash = strrchr(p, '/');
    if (!slash || strcmp(p, "/") == 0)
      return 0; /* a relative path: the walk of its resolved form covers the rest */
    if (slash == p)
      p[1] = '\0';
    else
      *slash = '\0';
    if (lstat(p, &st) < 0) {
      if (errno == ENOENT && missing_ok)
        continue;
      return errmsg(err, errlen, MCPSIG_ESTORE, "cannot check %s, above the keystore %s: %s", p, keystore,
                    strerror(errno));
    }
    int r = ancestor_check(o, keystore, p, &st, err, errlen);
    if (r < 0)
      return r;
  }
}

/*
 * The keystore's path as given, and as it resolves: through its symbolic
 * links, from the deepest part of it that exists (the rest the agent
 * creates, with mode 0700), up to /. Checked before anything is created, so
 * a refused keystore is left as it was.
 */
static int keystore_path_check(const struct owners *o, const char *dir, char *err, size_t errlen) {
  char p[PATH_MAX], real[PATH_MAX];
  struct stat st;
  bool whole = true;
  int r;

  if ((r = ancestors_check(o, dir, dir, true, err, errlen)) < 0)
    return r;
  snprintf(p, sizeof(p), "%s", dir);
  while (!realpath(p, real)) {
    if (errno != ENOENT || strcmp(p, ".") == 0 || strcmp(p, "/") == 0)
      return errmsg(err, errlen, MCPSIG_ESTORE, "cannot resolve %s, on the way to the keystore %s: %s", p, dir,
                    strerror(errno));
    char *slash = strrchr(p, '/');
    if (!slash)
      snprintf(p, sizeof(p), ".");
    else if (slash == p)
      p[1] = '\0';
    else
      *slash = '\0';
    whole = false;
  }
  if (!whole) {
    if (lstat(real, &st) < 0)
      return errmsg(err, errlen, MCPSIG_ESTORE, "cannot check %s, above the keystore %s: %s", real, dir,
                    strerror(errno));
    if ((r = ancestor_check(o, dir, real, &st, err, errlen)) < 0)
      return r;
  }
  return ancestors_check(o, dir, real, false, err, errlen);
}

static int mkdir_p(const char *path) {
  char tmp[PATH_MAX];
  if (strlen(path) >= sizeof(tmp))
    return -ENAMETOOLONG;
  strcpy(tmp, path);
  for (char *p = tmp + 1; *p; p++) {
    if (*p != '/')
      continue;
    *p = '\0';
    if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
      return -errno;
    *p = '/';
  }
  if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
    return -errno;
  return 0;
}

static int open_dir_at(int dirfd, const char *name) {
  return openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

/* ---- the lock ---- */

/*
 * A lock file with other hard links (a backup made with cp -al or
 * rsnapshot, or someone's file linked there) must not be truncated or
 * written: a fresh lock file, already locked, is renamed over its name. The
 * old one stays locked for as long as the agent runs, so an agent that
 * opened it just before the rename still finds it held.
 */
static int lock_replace(struct keystore *ks, int oldfd, const struct stat *st, const char *pid, size_t n, char *err,
                        size_t errlen) {
  static const char tmp[] = LOCK_NAME ".tmp";
  int e = 0;

  (void)unlinkat(ks->dirfd, tmp, 0); /* a leftover of an earlier replace; we hold the lock */
  int fd = openat(ks->dirfd, tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) < 0 || pwrite(fd, pid, n, 0) != (ssize_t)n ||
      renameat(ks->dirfd, tmp, ks->dirfd, LOCK_NAME) < 0)
    e = errno ? errno : EIO;
  if (e) {
    if (fd >= 0) {
      close(fd);
      (void)unlinkat(ks->dirfd, tmp, 0);
    }
    return errmsg(err, errlen, MCPSIG_ESTORE, "cannot replace %s/%s, which has other hard links: %s", ks->dir,
                  LOCK_NAME, strerror(e));
  }
  log_msg(LOG_WARNING,
          "%s/%s had %lu hard links (a backup made with cp -al or rsnapshot?): replaced it with a lock file of its "
          "own, without writing into the other links",
          ks->dir, LOCK_NAME, (unsigned long)st->st_nlink);
  ks->oldlockfd = oldfd;
  ks->lockfd = fd;
  return 0;
}

static int lock_take(struct keystore *ks, char *err, size_t errlen) {
  struct stat st;
  char pid[32];
  int r;

  int fd = durable_open_regular(ks->dirfd, LOCK_NAME, O_RDWR | O_CREAT, &st);
  if (fd == -EINVAL)
    return errmsg(err, errlen, MCPSIG_ESTORE, "%s/%s is %s, not a regular file; remove it (rm %s/%s)", ks->dir,
                  LOCK_NAME, durable_type_name(st.st_mode), ks->dir, LOCK_NAME);
  if (fd < 0)
    return errmsg(err, errlen, MCPSIG_ESTORE, "cannot open %s/%s: %s", ks->dir, LOCK_NAME, strerror(-fd));
  if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
    ssize_t n = pread(fd, pid, sizeof(pid) - 1, 0);
    pid[n > 0 ? n : 0] = '\0';
    pid[strcspn(pid, "\n")] = '\0';
    close(fd);
    return errmsg(err, errlen, MCPSIG_ESTORE, "keystore %s is in use by another mcpsig-agent (pid %s)", ks->dir,
                  pid[0] ? pid : "unknown");
  }
  int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
  if (st.st_nlink != 1) {
    if ((r = lock_replace(ks, fd, &st, pid, (size_t)n, err, errlen)) < 0)
      close(fd);
    return r;
  }
  if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
    r = errmsg(err, errlen, MCPSIG_ESTORE, "cannot write %s/%s: %s", ks->dir, LOCK_NAME, strerror(errno));
    close(fd);
    return r;
  }
  ks->lockfd = fd;
  return 0;
}

int keystore_open(struct keystore **ret_ks, const char *dir, char *err, size_t errlen) {
  struct keystore *ks = NULL;
  struct owners own;
  struct stat st;
  int r;

  owners_init(&own);
  if ((r = keystore_path_check(&own, dir, err, errlen)) < 0)
    return r;
  if ((r = mkdir_p(dir)) < 0)
    return errmsg(err, errlen, MCPSIG_ESTORE, "cannot create keystore %s: %s%s", dir, strerror(-r),
                  r == -EROFS ? " (under the systemd unit only the keystore and the socket directory are writable: "
                                "create it with mkdir -m 0700, and name it in ReadWritePaths= if it is not the default)"
                              : "");
  ks = calloc(1, sizeof(*ks));
  if (!ks)
    return -ENOMEM;
  ks->lockfd = ks->oldlockfd = -1;
  ks->dir = strdup(dir);
  ks->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (!ks->dir || ks->dirfd < 0) {
    r = errmsg(err, errlen, MCPSIG_ESTORE, "cannot open keystore %s: %s", dir, strerror(errno));
    goto fail;
  }
  if (fstat(ks->dirfd, &st) < 0 || (r = check_private(&st, dir, true, err, errlen)) < 0) {
    if (r == 0)
      r = errmsg(err, errlen, MCPSIG_ESTORE, "cannot stat %s: %s", dir, strerror(errno));
    goto fail;
  }
  if ((r = lock_take(ks, err, errlen)) < 0)
    goto fail;
  if (mkdirat(ks->dirfd, "identities", 0700) < 0 && errno != EEXIST) {
    r = errmsg(err, errlen, MCPSIG_ESTORE, "cannot create %s/identities: %s", dir, strerror(errno));
    goto fail;
  }
  *ret_ks = ks;
  return 0;
fail:
  keystore_free(ks);
  return r;
}

struct keystore *keystore_free(struct keystore *ks) {
  if (!ks)
    return NULL;
  if (ks->lockfd >= 0)
    close(ks->lockfd);
  if (ks->oldlockfd >= 0)
    close(ks->oldlockfd);
  if (ks->dirfd >= 0)
    close(ks->dirfd);
  free(ks->dir);
  free(ks);
  return NULL;
}

const char *keystore_dir(const struct keystore *ks) {
  return ks->dir;
}

/* ---- removing files ---- */

/* Says what durable_destroy() did instead of wiping, naming the file. */
static void fate_log(durable_fate fate, const struct stat *st, const char *dirpath, const char *name) {
  switch (fate) {
  case DURABLE_LINKED:
    log_msg(LOG_WARNING,
            "%s/%s has other hard links (a backup made with cp -al or rsnapshot, or someone's file?): unlinked it "
            "without overwriting it, so the other links still hold its bytes",
            dirpath, name);
    break;
  case DURABLE_NOT_REGULAR:
    log_msg(LOG_WARNING, "%s/%s was %s, which the agent never writes: unlinked it", dirpath, name,
            st ? durable_type_name(st->st_mode) : "not a regular file");
    break;
  case DURABLE_TOO_LARGE:
    log_msg(LOG_WARNING, "%s/%s (%lld bytes) is larger than any file the agent writes: unlinked it without "
            "overwriting it", dirpath, name, st ? (long long)st->st_size : -1LL);
    break;
  default:
    break;
  }
}

static int file_destroy(int dirfd, const char *dirpath, const char *name) {
  durable_fate fate;
  struct stat st;
  int r = durable_destroy(dirfd, name, &fate, &st);
  fate_log(fate, &st, dirpath, name);
  return r;
}

/*
 * A NAME.old left by a crash: the same file as NAME (the rename never
 * happened) is only unlinked; a replaced one is destroyed.
 */
static void old_link_settle(int dirfd, const char *dirpath, const char *oldname) {
  char live[NAME_MAX + 1];
  struct stat a, b;
  size_t n = strlen(oldname);
  snprintf(live, sizeof(live), "%.*s", (int)(n - 4), oldname);
  if (fstatat(dirfd, oldname, &a, AT_SYMLINK_NOFOLLOW) == 0 && fstatat(dirfd, live, &b, AT_SYMLINK_NOFOLLOW) == 0 &&
      a.st_dev == b.st_dev && a.st_ino == b.st_ino)
    (void)unlinkat(dirfd, oldname, 0);
  else
    (void)file_destroy(dirfd, dirpath, oldname);
}

static void bindings_path(const struct keystore *ks, const char *identity, char *buf, size_t size) {
  snprintf(buf, size, "%s/identities/%s/bindings", ks->dir, identity);
}

/* ---- packing into guarded memory ---- */

/* msgpack's sbuffer grows with realloc(), which would leave copies of keys in
 * the heap; records are packed into one guarded buffer instead. */
struct secbuf {
  unsigned char *p;
  size_t len, cap;
};

static int secbuf_write(void *data, const char *buf, size_t len) {
  struct secbuf *sb = data;
  if (len > sb->cap - sb->len)
    return -1;
  memcpy(sb->p + sb->len, buf, len);
  sb->len += len;
  return 0;
}

struct identity_record {
  int64_t version;
  const char *name;
  const char *alg;
  int64_t created;
};

#define NO PROTO_NO_OFFSET
static const struct proto_field identity_record_fields[] = {
  { "version", PT_INT, offsetof(struct identity_record, version), NO, NO, PF_REQUIRED, 0, NULL },
  { "name", PT_STR, offsetof(struct identity_record, name), NO, NO, PF_REQUIRED, 0, NULL },
  { "alg", PT_STR, offsetof(struct identity_record, alg), NO, NO, PF_REQUIRED, 0, NULL },
  { "created", PT_INT, offsetof(struct identity_record, created), NO, NO, 0, 0, NULL },
};
static const struct proto_schema identity_record_schema = {
  "identity", identity_record_fields, sizeof(identity_record_fields) / sizeof(identity_record_fields[0]),
  sizeof(struct identity_record)
};

struct binding_record {
  int64_t version;
  const char *identity;
  const char *origin;
  const char *tag;
  int64_t created;
  const char *alg;
  const unsigned char *key;
  size_t key_len;
  bool has_key;
  const char **retired;         /* the newest BINDING_RETIRED_KEEP, oldest first */
  size_t n_retired;
  int64_t retired_dropped;      /* how many older ones are not listed */
  const unsigned char *pub;     /* the active key's public key and keyid: loading needs no */
  size_t pub_len;               /* derivation (checked before the key's first signature); */
  bool has_pub;                 /* records without them are derived at load */
  const char *keyid;
};

#define BR struct binding_record
static const struct proto_field binding_record_fields[] = {
  { "version", PT_INT, offsetof(BR, version), NO, NO, PF_REQUIRED, 0, NULL },
  { "identity", PT_STR, offsetof(BR, identity), NO, NO, PF_REQUIRED, 0, NULL },
  { "origin", PT_STR, offsetof(BR, origin), NO, NO, PF_REQUIRED, 0, NULL },
  { "tag", PT_STR, offsetof(BR, tag), NO, NO, PF_REQUIRED, 0, NULL },
  { "created", PT_INT, offsetof(BR, created), NO, NO, 0, 0, NULL },
  { "alg", PT_STR, offsetof(BR, alg), NO, NO, PF_REQUIRED, 0, NULL },
  { "key", PT_BIN, offsetof(BR, key), offsetof(BR, key_len), offsetof(BR, has_key), PF_REQUIRED | PF_SECRET, 64, NULL },
  /* history_normalize() has cut it to BINDING_RETIRED_KEEP before this limit applies */
  { "retired", PT_STRV, offsetof(BR, retired), offsetof(BR, n_retired), NO, PF_REQUIRED, BINDING_RETIRED_KEEP, NULL },
  { "retired_dropped", PT_INT, offsetof(BR, retired_dropped), NO, NO, 0, 0, NULL },
  { "pub", PT_BIN, offsetof(BR, pub), offsetof(BR, pub_len), offsetof(BR, has_pub), 0, KEY_PUB_MAX, NULL },
  { "keyid", PT_STR, offsetof(BR, keyid), NO, NO, 0, KEY_KEYID_LEN, NULL },
};
#undef BR
static const struct proto_schema binding_record_schema = {
  "binding", binding_record_fields, sizeof(binding_record_fields) / sizeof(binding_record_fields[0]),
  sizeof(struct binding_record)
};

/* A rotation's new key lives in a file of its own beside the binding, so
 * beginning or aborting a rotation never rewrites the file holding k1. */
struct pending_record {
  int64_t version;
  const char *identity;
  const char *origin;
  const char *alg;
  const unsigned char *key;
  size_t key_len;
  bool has_key;
  int64_t created;
};

#define PR struct pending_record
static const struct proto_field pending_record_fields[] = {
  { "version", PT_INT, offsetof(PR, version), NO, NO, PF_REQUIRED, 0, NULL },
  { "identity", PT_STR, offsetof(PR, identity), NO, NO, PF_REQUIRED, 0, NULL },
  { "origin", PT_STR, offsetof(PR, origin), NO, NO, PF_REQUIRED, 0, NULL },
  { "alg", PT_STR, offsetof(PR, alg), NO, NO, PF_REQUIRED, 0, NULL },
  { "key", PT_BIN, offsetof(PR, key), offsetof(PR, key_len), offsetof(PR, has_key), PF_REQUIRED | PF_SECRET, 64, NULL },
  { "created", PT_INT, offsetof(PR, created), NO, NO, 0, 0, NULL },
};
#undef PR
static const struct proto_schema pending_record_schema = {
  "pending", pending_record_fields, sizeof(pending_record_fields) / sizeof(pending_record_fields[0]),
  sizeof(struct pending_record)
};

static int record_write(int dirfd, const char *dirpath, const char *name, const struct proto_schema *schema,
                        const void *rec, size_t cap) {
  struct secbuf sb = { sodium_malloc(cap), 0, cap };
  durable_fate old = DURABLE_ABSENT;
  msgpack_packer pk;
  if (!sb.p)
    return -ENOMEM;
  msgpack_packer_init(&pk, &sb, secbuf_write);
  int r = proto_encode(&pk, schema, rec);
  if (r == 0)
    r = durable_replace(dirfd, name, sb.p, sb.len, &old);
  sodium_free(sb.p); /* wipes */
  if (r == 0 && old != DURABLE_WIPED && old != DURABLE_ABSENT) {
    char oldname[NAME_MAX + 1];
    snprintf(oldname, sizeof(oldname), "%s.old", name);
    fate_log(old, NULL, dirpath, oldname);
  }
  return r;
}

/* The file name of a binding: base64url(SHA-256(origin)) + suffix. */
static void origin_file_name(const char *origin, const char *suffix, char name[64]) {
  unsigned char h[32];
  proto_sha256(origin, strlen(origin), h);
  sodium_bin2base64(name, 64, h, sizeof(h), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  strcat(name, suffix);
}

static void binding_file_name(const char *origin, char name[64]) {
  origin_file_name(origin, BINDING_SUFFIX, name);
}

static int identity_dirs(struct keystore *ks, const char *name, bool create, int *ret_iddir, int *ret_bdir) {
  int idsfd = -1, iddir = -1, bdir = -1, r = 0;

  idsfd = open_dir_at(ks->dirfd, "identities");
  if (idsfd < 0)
    return -errno;
  if (create && mkdirat(idsfd, name, 0700) == 0) {
    /* A new directory entry must itself be durable before anything inside
     * it counts as stored. */
    if (fsync(idsfd) < 0)
      r = -errno;
  } else if (create && errno != EEXIST) {
    r = -errno;
  }
  if (r == 0 && (iddir = open_dir_at(idsfd, name)) < 0)
    r = -errno;
  if (r == 0 && create && mkdirat(iddir, "bindings", 0700) == 0) {
    if (fsync(iddir) < 0)
      r = -errno;
  } else if (r == 0 && create && errno != EEXIST) {
    r = -errno;
  }
  if (r == 0 && (bdir = open_dir_at(iddir, "bindings")) < 0)
    r = -errno;
  close(idsfd);
  if (r < 0) {
    if (iddir >= 0)
      close(iddir);
    return r;
  }
  if (ret_iddir)
    *ret_iddir = iddir;
  else
    close(iddir);
  if (ret_bdir)
    *ret_bdir = bdir;
  else
    close(bdir);
  return 0;
}

int keystore_identity_write(struct keystore *ks, const struct identity *id, char *err, size_t errlen) {
  struct identity_record rec = { KEYSTORE_VERSION, id->name, key_type_name(id->alg), id->created };
  char path[PATH_MAX];
  int iddir = -1;
  int r = identity_dirs(ks, id->name, true, &iddir, NULL);
  snprintf(path, sizeof(path), "%s/identities/%s", ks->dir, id->name);
  if (r == 0)
    r = record_write(iddir, path, "identity", &identity_record_schema, &rec, 1024);
  if (iddir >= 0)
    close(iddir);
  if (r < 0) {
    /* Take back what was made, so the keystore holds no half identity;
     * a crash here is settled at the next load (identity_leftover). */
    (void)keystore_identity_remove(ks, id->name, NULL, 0);
    return errmsg(err, errlen, MCPSIG_ESTORE, "cannot write identity %s to %s: %s", id->name, ks->dir,
                  strerror(-r));
  }
  return 0;
}

int keystore_identity_remove(struct keystore *ks, const char *name, char *err, size_t errlen) {
  char path[PATH_MAX], bpath[PATH_MAX];
  int idsfd = -1, iddir = -1, bdir = -1, r = 0;

  snprintf(path, sizeof(path), "%s/identities/%s", ks->dir, name);
  bindings_path(ks, name, bpath, sizeof(bpath));
  idsfd = open_dir_at(ks->dirfd, "identities");
  if (idsfd < 0)
    return errmsg(err, errlen, MCPSIG_ESTORE, "cannot open %s/identities: %s", ks->dir, strerror(errno));
  iddir = open_dir_at(idsfd, name);
  if (iddir < 0) {
    r = errno == ENOENT ? 0 : -errno;
    goto out;
  }
  /* Key files first, then the identity record, then the directories: an
   * interruption leaves at worst an identity with fewer bindings. */
  bdir = open_dir_at(iddir, "bindings");
  if (bdir >= 0) {
    DIR *d = fdopendir(fcntl(bdir, F_DUPFD_CLOEXEC, 0));
    if (d) {
      struct dirent *de;
      while ((de = readdir(d)))
        if (de->d_name[0] != '.')
          (void)file_destroy(bdir, bpath, de->d_name);
      closedir(d);
    }
    if (unlinkat(iddir, "bindings", AT_REMOVEDIR) < 0)
      r = -errno;
  } else if (errno != ENOENT) {
    r = -errno;
  }
  /* identity.tmp: a record whose write was interrupted before its rename. */
  if (r == 0 && (r = file_destroy(iddir, path, "identity.tmp")) == 0 &&
      (r = file_destroy(iddir, path, "identity")) == 0 && unlinkat(idsfd, name, AT_REMOVEDIR) < 0)
    r = -errno;
  if (r == 0 && fsync(idsfd) < 0)
    r = -errno;
out:
  if (bdir >= 0)
    close(bdir);
  if (iddir >= 0)
    close(iddir);
  close(idsfd);
  if (r < 0)
    return errmsg(err, errlen, MCPSIG_ESTORE, "cannot remove identity %s from %s: %s", name, ks->dir, strerror(-r));
  return 0;
}

static uint64_t add_saturated(uint64_t a, uint64_t b) {
  return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* What is stored is what stays in memory: the keyids cut from the file are
 * dropped here too, and only counted. */
static void history_cut(struct binding *b, size_t cut) {
  for (size_t i = 0; i < cut; i++)
    free(b->retired[i]);
  memmove(b->retired, b->retired + cut, (b->n_retired - cut) * sizeof(*b->retired));
  b->n_retired -= cut;
  b->retired_dropped = add_saturated(b->retired_dropped, cut);
}

int keystore_binding_write(struct keystore *ks, struct keypool *pool, struct binding *b, char *err, size_t errlen) {
  unsigned char *seeds = sodium_malloc(KEY_SEED_MAX);
  struct binding_record rec;
  char name[64], bpath[PATH_MAX];
  int bdir = -1, r;

  if (!seeds)
    return -ENOMEM;
  size_t cut = b->n_retired > BINDING_RETIRED_KEEP ? b->n_retired - BINDING_RETIRED_KEEP : 0;
  uint64_t dropped = add_saturated(b->retired_dropped, cut);
  memset(&rec, 0, sizeof(rec));
  rec.version = KEYSTORE_VERSION;
  rec.identity = b->identity->name;
  rec.origin = b->origin;
  rec.tag = b->tag;
  rec.created = b->created;
  rec.alg = key_type_name(b->active.alg);
  rec.key = seeds;
  rec.has_key = true;
  rec.retired = b->n_retired ? (const char **)b->retired + cut : NULL;
  rec.n_retired = b->n_retired - cut;
  rec.retired_dropped = dropped > INT64_MAX ? INT64_MAX : (int64_t)dropped;
  rec.pub = b->active.pub;
  rec.pub_len = b->active.pub_len;
  rec.has_pub = true;
  rec.keyid = b->active.keyid;
  bindings_path(ks, b->identity->name, bpath, sizeof(bpath));
  r = key_seed_export(pool, &b->active, seeds, KEY_SEED_MAX, &rec.key_len);
  if (r == 0)
    r = identity_dirs(ks, b->identity->name, true, NULL, &bdir);
  if (r == 0) {
    binding_file_name(b->origin, name);
    r = record_write(bdir, bpath, name, &binding_record_schema, &rec, 1024 + rec.n_retired * 64);
  }
  if (bdir >= 0)
    close(bdir);
  sodium_free(seeds);
  if (r < 0)
    return errmsg(err, errlen, MCPSIG_ESTORE, "cannot store the key of %s for %s in %s: %s", b->identity->name,
                b->origin, ks->dir, strerror(-r));
  if (cut)
    history_cut(b, cut);
  return 0;
}

int keystore_pending_write(struct keystore *ks, struct keypool *pool, const struct binding *b, char *err,
                           size_t errlen) {
  unsigned char *seed = sodium_malloc(KEY_SEED_MAX);
  struct pending_record rec = { KEYSTORE_VERSION, b->identity->name, b->origin, key_type_name(b->pending.alg), seed, 0,
                                true, b->pending_created };
  char name[64], bpath[PATH_MAX];
  int bdir = -1, r;

  if (!seed)
    return -ENOMEM;
  bindings_path(ks, b->identity->name, bpath, sizeof(bpath));
  r = key_seed_export(pool, &b->pending, seed, KEY_SEED_MAX, &rec.key_len);
  if (r == 0)
    r = identity_dirs(ks, b->identity->name, true, NULL, &bdir);
  if (r == 0) {
    origin_file_name(b->origin, PENDING_SUFFIX, name);
    r = record_write(bdir, bpath, name, &pending_record_schema, &rec, 1024);
  }
  if (bdir >= 0)
    close(bdir);
  sodium_free(seed);
  if (r < 0)
    return errmsg(err, errlen, MCPSIG_ESTORE, "cannot store the pending key of %s for %s in %s: %s",
                  b->identity->name, b->origin, ks->dir, strerror(-r));
  return 0;
}

/*
 * Renaming first makes the decision durable in one atomic step; the wipe
 * that follows may be interrupted, and the load finishes it.
 */
static int pending_discard_at(int bdir, const char *bpath, const char *origin) {
  char name[64], discard[64];
  origin_file_name(origin, PENDING_SUFFIX, name);
  origin_file_name(origin, DISCARD_SUFFIX, discard);
  if (renameat(bdir, name, bdir, discard) < 0)
    return errno == ENOENT ? 0 : -errno;
  if (fsync(bdir) < 0)
    return -errno;
  crash_point("discard.renamed", NULL);
  return file_destroy(bdir, bpath, discard);
}

int keystore_pending_discard(struct keystore *ks, const char *identity, const char *origin, char *err,
                             size_t errlen) {
  char bpath[PATH_MAX];
  int bdir = -1;
  int r = identity_dirs(ks, identity, false, NULL, &bdir);
  bindings_path(ks, identity, bpath, sizeof(bpath));
  if (r == 0) {
    r = pending_discard_at(bdir, bpath, origin);
    close(bdir);
  }
  if (r < 0)
    return errmsg(err, errlen, MCPSIG_ESTORE, "cannot remove the pending key of %s for %s: %s", identity, origin,
                  strerror(-r));
  return 0;
}

int keystore_binding_remove(struct keystore *ks, const char *identity, const char *origin, char *err,
                            size_t errlen) {
  char name[64], bpath[PATH_MAX];
  int bdir = -1;
  int r = identity_dirs(ks, identity, false, NULL, &bdir);
  bindings_path(ks, identity, bpath, sizeof(bpath));
  if (r == 0) {
    r = pending_discard_at(bdir, bpath, origin);
    binding_file_name(origin, name);
    if (r == 0)
      r = file_destroy(bdir, bpath, name);
    close(bdir);
  }
  if (r < 0 && r != -ENOENT)
    return errmsg(err, errlen, MCPSIG_ESTORE, "cannot remove %s for %s: %s", identity, origin, strerror(-r));
  return 0;
}

/* ---- loading ---- */

/* Reads a whole private file into guarded memory. */
enum { RB_IDENTITY, RB_BINDING, RB_PENDING };

/* The guarded buffer for a record of len bytes, grown when needed; its old contents are wiped. */
static unsigned char *recbuf_get(struct recbuf *b, size_t len) {
  if (b->cap < len) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < len)
      cap *= 2;
    unsigned char *p = sodium_malloc(cap);
    if (!p)
      return NULL;
    sodium_free(b->p); /* wipes */
    b->p = p;
    b->cap = cap;
  }
  return b->p;
}

static void recbufs_free(struct keystore *ks) {
  for (size_t i = 0; i < sizeof(ks->rb) / sizeof(ks->rb[0]); i++) {
    sodium_free(ks->rb[i].p);
    ks->rb[i].p = NULL;
    ks->rb[i].cap = 0;
  }
}

/*
 * What loading did to a binding's history. History never blocks loading:
 * the record of retired keys is information for people, and a host that
 * rotates in a loop (or an agent from before the cap, which kept every
 * keyid) must not make the keystore unloadable.
 */
struct history {
  uint64_t dropped;   /* retired_dropped after the load */
  uint64_t cut;       /* keyids dropped by this load, malformed ones included */
  size_t malformed;   /* entries that were not keyids */
  long long size;     /* the record's size, when it was over RECORD_MAX */
  bool not_list;      /* "retired" was not an array */
};

static bool keyid_object_valid(const msgpack_object *o) {
  return o->type == MSGPACK_OBJECT_STR && b64url_valid(o->via.str.ptr, o->via.str.size, KEY_KEYID_LEN, KEY_KEYID_LEN);
}

static bool key_is(const msgpack_object *o, const char *name) {
  size_t n = strlen(name);
  return o->type == MSGPACK_OBJECT_STR && o->via.str.size == n && memcmp(o->via.str.ptr, name, n) == 0;
}

/*
 * Cuts a binding record's "retired" list, in the unpacked object, to its
 * newest BINDING_RETIRED_KEEP keyids, drops entries that are not keyids,
 * and makes "retired_dropped" a count the schema accepts: whatever the
 * history holds, the decode that follows sees a valid one.
 */
static void history_normalize(msgpack_object *map, struct history *h) {
  msgpack_object *retired = NULL, *dropped = NULL;
  uint64_t d = 0, cut = 0;

  if (map->type != MSGPACK_OBJECT_MAP)
    return; /* the decode refuses it */
  for (uint32_t i = 0; i < map->via.map.size; i++) {
    msgpack_object_kv *kv = &map->via.map.ptr[i];
    if (key_is(&kv->key, "retired") && !retired)
      retired = &kv->val;
    else if (key_is(&kv->key, "retired_dropped") && !dropped)
      dropped = &kv->val;
  }
  if (dropped && dropped->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
    d = dropped->via.u64;
  if (retired && retired->type != MSGPACK_OBJECT_ARRAY) {
    h->not_list = true;
    retired->type = MSGPACK_OBJECT_ARRAY;
    retired->via.array.size = 0;
    retired->via.array.ptr = NULL;
  } else if (retired) {
    msgpack_object *e = retired->via.array.ptr;
    uint32_t n = retired->via.array.size, kept = 0;
    for (uint32_t i = 0; i < n; i++)
      if (keyid_object_valid(&e[i]))
        e[kept++] = e[i];
    h->malformed += n - kept;
    cut = n - kept;
    if (kept > BINDING_RETIRED_KEEP) {
      uint32_t extra = kept - BINDING_RETIRED_KEEP;
      memmove(e, e + extra, BINDING_RETIRED_KEEP * sizeof(*e));
      kept = BINDING_RETIRED_KEEP;
      cut += extra;
    }
    retired->via.array.size = kept;
  }
  d = add_saturated(d, cut);
  if (d > INT64_MAX)
    d = INT64_MAX;
  if (dropped) {
    dropped->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
    dropped->via.u64 = d;
  }
  h->dropped = d;
  h->cut = add_saturated(h->cut, cut);
}

/*
 * A binding record larger than RECORD_MAX. Only a history can make one (an
 * agent before the cap kept every retired keyid: 5,810 rotations passed
 * 256 KiB), so it is read in a bounded window: every other field is copied
 * as it is, the history keeps its newest BINDING_RETIRED_KEEP keyids, and
 * the result, a record of normal size, goes through the normal decode.
 * msgpack-c can only unpack whole objects, so the two container headers of
 * the path to the history are read here; every object is measured by
 * proto_frame_scan() and unpacked by msgpack-c.
 */
#define STREAM_WINDOW (RECORD_MAX + 4096)
#define RETIRED_ITEM_MAX 64 /* a keyid is 45 bytes of msgpack */

struct stream {
  int fd;
  unsigned char *buf; /* guarded: the record holds a private key */
  size_t cap, lo, hi;
  bool eof;
};

static int stream_fill(struct stream *s) {
  if (s->lo > 0) {
    memmove(s->buf, s->buf + s->lo, s->hi - s->lo);
    s->hi -= s->lo;
    s->lo = 0;
  }
  if (s->hi == s->cap)
    return MCPSIG_ETOOBIG;
  ssize_t n;
  do
    n = read(s->fd, s->buf + s->hi, s->cap - s->hi);
  while (n < 0 && errno == EINTR);
  if (n < 0)
    return -errno;
  if (n == 0)
    s->eof = true;
  s->hi += (size_t)n;
  return 0;
}

/* The length of the next whole object, at most max bytes, now in the window. */
static ssize_t stream_object(struct stream *s, size_t max, unsigned depth) {
  for (;;) {
    ssize_t n = proto_frame_scan(s->buf + s->lo, s->hi - s->lo, max, depth);
    if (n != 0)
      return n;
    if (s->eof)
      return MCPSIG_EPROTO;
    int r = stream_fill(s);
    if (r < 0)
      return r;
  }
}

/* A map (or array) header: 0 with its item count, 1 for another type. */
static int stream_container(struct stream *s, bool map, uint64_t *ret_n) {
  while (s->hi - s->lo < 5 && !s->eof) {
    int r = stream_fill(s);
    if (r < 0)
      return r;
  }
  const unsigned char *p = s->buf + s->lo;
  size_t avail = s->hi - s->lo;
  if (avail >= 1 && (p[0] & 0xf0) == (map ? 0x80 : 0x90)) {
    *ret_n = p[0] & 0x0f;
    s->lo += 1;
  } else if (avail >= 3 && p[0] == (map ? 0xde : 0xdc)) {
    *ret_n = (uint64_t)p[1] << 8 | p[2];
    s->lo += 3;
  } else if (avail >= 5 && p[0] == (map ? 0xdf : 0xdd)) {
    *ret_n = (uint64_t)p[1] << 24 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 8 | p[4];
    s->lo += 5;
  } else {
    return 1;
  }
  return 0;
}

static bool bytes_unpack(msgpack_unpacked *up, const unsigned char *p, size_t n) {
  size_t off = 0;
  return msgpack_unpack_next(up, (const char *)p, n, &off) == MSGPACK_UNPACK_SUCCESS && off == n;
}

static int history_stream(int fd, long long size, unsigned char *out, size_t outcap, size_t *ret_len,
                          struct history *h, const char *path, char *err, size_t errlen) {
  struct stream s = { fd, sodium_malloc(STREAM_WINDOW), STREAM_WINDOW, 0, 0, false };
  struct secbuf o = { out, 0, outcap };
  struct ring {
    unsigned char b[RETIRED_ITEM_MAX];
    size_t n;
  } *ring = calloc(BINDING_RETIRED_KEEP, sizeof(*ring));
  msgpack_packer pk;
  msgpack_unpacked up;
  uint64_t pairs = 0, out_pairs = 0, dropped_in = 0, seen = 0, cut = 0;
  size_t malformed = 0;
  bool have_retired = false;
  const char *why = NULL;
  int r = 0;

  msgpack_unpacked_init(&up);
  msgpack_packer_init(&pk, &o, secbuf_write);
  if (!s.buf || !ring) {
    r = -ENOMEM;
    goto out;
  }
  static const unsigned char map32[5] = { 0xdf, 0, 0, 0, 0 }; /* its count is filled in at the end */
  if (stream_container(&s, true, &pairs) != 0) {
    why = "not one msgpack map";
    goto out;
  }
  secbuf_write(&o, (const char *)map32, sizeof(map32));
  for (uint64_t i = 0; i < pairs && !why; i++) {
    ssize_t kn = stream_object(&s, 256, 1);
    if (kn < 0 || !bytes_unpack(&up, s.buf + s.lo, (size_t)kn)) {
      why = "a key that is not one msgpack object";
      break;
    }
    bool is_retired = key_is(&up.data, "retired") && !have_retired, is_dropped = key_is(&up.data, "retired_dropped");
    if (!is_dropped && secbuf_write(&o, (const char *)s.buf + s.lo, (size_t)kn) < 0) {
      why = "fields other than its history larger than a record can be";
      break;
    }
    s.lo += (size_t)kn;
    uint64_t n;
    if (is_retired && (r = stream_container(&s, false, &n)) <= 0) {
      if (r < 0) {
        why = "a truncated history";
        break;
      }
      for (uint64_t j = 0; j < n; j++) {
        ssize_t en = stream_object(&s, RECORD_MAX, MCPSIG_MAX_DEPTH - 2);
        if (en < 0) {
          why = "a history entry that is not one msgpack object";
          break;
        }
        if ((size_t)en <= RETIRED_ITEM_MAX && bytes_unpack(&up, s.buf + s.lo, (size_t)en) &&
            keyid_object_valid(&up.data)) {
          struct ring *slot = &ring[seen % BINDING_RETIRED_KEEP];
          memcpy(slot->b, s.buf + s.lo, (size_t)en);
          slot->n = (size_t)en;
          seen++;
        } else {
          malformed++;
        }
        s.lo += (size_t)en;
      }
      uint64_t kept = seen < BINDING_RETIRED_KEEP ? seen : BINDING_RETIRED_KEEP;
      cut = seen - kept + malformed;
      bool full = msgpack_pack_array(&pk, (size_t)kept) < 0;
      for (uint64_t j = seen - kept; j < seen && !full; j++)
        full = secbuf_write(&o, (const char *)ring[j % BINDING_RETIRED_KEEP].b, ring[j % BINDING_RETIRED_KEEP].n) < 0;
      if (full && !why)
        why = "fields other than its history larger than a record can be";
      have_retired = true;
      out_pairs++;
      continue;
    }
    r = 0;
    ssize_t vn = stream_object(&s, RECORD_MAX, MCPSIG_MAX_DEPTH - 1);
    if (vn < 0) {
      why = vn == MCPSIG_ETOOBIG ? "a field other than its history larger than a record can be"
                                 : "a value that is not one msgpack object";
      break;
    }
    if (is_dropped) {
      if (bytes_unpack(&up, s.buf + s.lo, (size_t)vn) && up.data.type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        dropped_in = up.data.via.u64;
    } else if (secbuf_write(&o, (const char *)s.buf + s.lo, (size_t)vn) < 0) {
      why = "fields other than its history larger than a record can be";
      break;
    } else {
      out_pairs++;
    }
    s.lo += (size_t)vn;
  }
  if (!why) {
    while (!s.eof && s.lo == s.hi && (r = stream_fill(&s)) == 0)
      ;
    if (r < 0 || s.lo != s.hi)
      why = "bytes after its one msgpack map";
  }
  if (!why) {
    uint64_t total = add_saturated(dropped_in, cut);
    if (msgpack_pack_str(&pk, 15) < 0 || msgpack_pack_str_body(&pk, "retired_dropped", 15) < 0 ||
        msgpack_pack_int64(&pk, total > INT64_MAX ? INT64_MAX : (int64_t)total) < 0)
      why = "fields other than its history larger than a record can be";
    out_pairs++;
    out[1] = (unsigned char)(out_pairs >> 24);
    out[2] = (unsigned char)(out_pairs >> 16);
    out[3] = (unsigned char)(out_pairs >> 8);
    out[4] = (unsigned char)out_pairs;
  }
out:
  msgpack_unpacked_destroy(&up);
  free(ring);
  sodium_free(s.buf); /* wipes */
  if (r == -ENOMEM)
    return r;
  if (why) {
    sodium_memzero(out, o.len);
    return errmsg(err, errlen, MCPSIG_ESTORE, "%s is damaged (%lld bytes, with %s); move it aside to start", path,
                  size, why);
  }
  h->cut = add_saturated(h->cut, cut);
  h->malformed += malformed;
  h->size = size;
  *ret_len = o.len;
  return 0;
}

/*
 * Reads a record into the keystore's guarded buffer rb; wipe *ret_data
 * (ret_len bytes) after use. A binding record (h not NULL) larger than
 * RECORD_MAX is read with its history cut (history_stream).
 */
static int record_read(struct keystore *ks, int rb, int dirfd, const char *name, const char *path, struct history *h,
                       unsigned char **ret_data, size_t *ret_len, char *err, size_t errlen) {
  struct stat st;
  int r;
  int fd = durable_open_regular(dirfd, name, O_RDONLY, &st);
  if (fd == -EINVAL && (r = check_private(&st, path, false, err, errlen)) < 0)
    return r;
  if (fd < 0)
    return errmsg(err, errlen, MCPSIG_ESTORE, "cannot open %s: %s", path, strerror(-fd));
  if ((r = check_private(&st, path, false, err, errlen)) < 0) {
    close(fd);
    return r;
  }
  if (st.st_size <= 0 || ((size_t)st.st_size > RECORD_MAX && !h)) {
    close(fd);
    return errmsg(err, errlen, MCPSIG_ESTORE, "%s has an impossible size (%lld bytes)", path, (long long)st.st_size);
  }
  if ((size_t)st.st_size > RECORD_MAX) {
    unsigned char *out = recbuf_get(&ks->rb[rb], RECORD_MAX);
    size_t len = 0;
    r = out ? history_stream(fd, (long long)st.st_size, out, RECORD_MAX, &len, h, path, err, errlen) : -ENOMEM;
    close(fd);
    if (r == 0) {
      *ret_data = out;
      *ret_len = len;
    }
    return r;
  }
  size_t len = (size_t)st.st_size;
  unsigned char *data = recbuf_get(&ks->rb[rb], len);
  if (!data) {
    close(fd);
    return -ENOMEM;
  }
  size_t got = 0;
  while (got < len) {
    ssize_t n = read(fd, data + got, len - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      sodium_memzero(data, got);
      close(fd);
      return errmsg(err, errlen, MCPSIG_ESTORE, "cannot read %s: %s", path, n < 0 ? strerror(errno) : "short read");
    }
    got += (size_t)n;
  }
  close(fd);
  *ret_data = data;
  *ret_len = len;
  return 0;
}

static int record_decode(const unsigned char *data, size_t len, const struct proto_schema *schema, void *out,
                         msgpack_zone *zone, msgpack_unpacked *up, struct history *h, const char *path, char *err,
                         size_t errlen) {
  char why[160];
  size_t off = 0;

  if (proto_frame_scan(data, len, RECORD_MAX, MCPSIG_MAX_DEPTH) != (ssize_t)len ||
      msgpack_unpack_next(up, (const char *)data, len, &off) != MSGPACK_UNPACK_SUCCESS)
    return errmsg(err, errlen, MCPSIG_ESTORE, "%s is damaged (not one msgpack record); move it aside to start", path);
  if (h)
    history_normalize(&up->data, h);
  if (proto_decode(schema, &up->data, zone, out, 0, why, sizeof(why)) < 0)
    return errmsg(err, errlen, MCPSIG_ESTORE, "%s is damaged (%s); move it aside to start", path, why);
  return 0;
}

static char *xstrdup(const char *s) {
  return s ? strdup(s) : NULL;
}

static void binding_dispose(struct keypool *pool, struct binding *b) {
  if (!b)
    return;
  key_destroy(pool, &b->active);
  if (b->has_pending)
    key_destroy(pool, &b->pending);
  for (size_t i = 0; i < b->n_retired; i++)
    free(b->retired[i]);
  free(b->retired);
  free(b->origin);
  free(b);
}

static bool has_suffix(const char *name, const char *suffix) {
  size_t n = strlen(name), sl = strlen(suffix);
  return n > sl && strcmp(name + n - sl, suffix) == 0;
}

/* A key from its file, or a message that names the file and what to do. */
static int key_load(struct keypool *pool, key_alg alg, const unsigned char *seed, size_t len, struct key *k,
                    const char *path, char *err, size_t errlen) {
  if (!key_alg_available(alg))
    return errmsg(err, errlen, MCPSIG_ESTORE,
                  "%s holds a %s key, which needs OpenSSL libcrypto, but this agent was built without it; "
                  "run an agent built with OpenSSL", path, key_type_name(alg));
  if (len != key_seed_len(alg))
    return errmsg(err, errlen, MCPSIG_ESTORE,
                  "%s says its key is %s, but the key is %zu bytes long, not %zu: the alg disagrees with the key; "
                  "move it aside", path, key_type_name(alg), len, key_seed_len(alg));
  if (key_from_seed(pool, alg, seed, len, k) < 0)
    return errmsg(err, errlen, MCPSIG_ESTORE, "%s holds an invalid key; move it aside", path);
  return 0;
}

static size_t pub_len_of(key_alg alg) {
  return alg == KEY_ED25519 ? crypto_sign_PUBLICKEYBYTES : 2 * key_seed_len(alg);
}

/*
 * Whether a record's stored public half can be used as it is (1), must be
 * derived again (0: absent, or damaged: its keyid is not its thumbprint),
 * or shows that the alg disagrees with the key (an error). Only the
 * private key is the truth, and key_check() compares the two before the
 * key's first use; what is checked here makes sure that what the agent
 * lists before then is at least the thumbprint of a public key of that
 * type.
 */
static int stored_half_usable(key_alg alg, const struct binding_record *rec, const char *path, char *err,
                              size_t errlen) {
  char keyid[KEY_KEYID_LEN + 1];
  if (!rec->has_pub || !rec->keyid)
    return 0;
  if (rec->pub_len != pub_len_of(alg)) {
    for (key_alg other = KEY_ED25519; other <= KEY_P384; other++)
      if (rec->pub_len == pub_len_of(other))
        return errmsg(err, errlen, MCPSIG_ESTORE,
                      "%s says its key is %s, but its public key is %zu bytes long, the size of %s public keys: "
                      "the alg disagrees with the key; move it aside", path, key_type_name(alg), rec->pub_len,
                      key_type_name(other));
    return 0;
  }
  struct key k = { .alg = alg, .pub_len = rec->pub_len };
  memcpy(k.pub, rec->pub, rec->pub_len);
  return b64url_valid(rec->keyid, strlen(rec->keyid), KEY_KEYID_LEN, KEY_KEYID_LEN) &&
         key_alg_available(alg) && jwk_thumbprint_key(&k, keyid) == 0 && strcmp(keyid, rec->keyid) == 0;
}

/*
 * Attaches a binding's pending key, if its file exists. A pending key equal
 * to the active one is what a commit leaves when it stops between writing
 * the binding and removing the pending file: the commit happened, so the
 * file is removed now.
 */
static int pending_load(struct keystore *ks, struct keypool *pool, int bdir, struct identity *id, struct binding *b,
                        char *err, size_t errlen) {
  char name[64], path[PATH_MAX + 64], bpath[PATH_MAX];
  unsigned char *data = NULL;
  size_t len = 0;
  struct pending_record rec;
  msgpack_zone zone;
  msgpack_unpacked up;
  key_alg alg;
  int r;

  origin_file_name(b->origin, PENDING_SUFFIX, name);
  if (faccessat(bdir, name, F_OK, AT_SYMLINK_NOFOLLOW) < 0)
    return errno == ENOENT ? 0 : errmsg(err, errlen, MCPSIG_ESTORE, "cannot check %s: %s", name, strerror(errno));
  bindings_path(ks, id->name, bpath, sizeof(bpath));
  snprintf(path, sizeof(path), "%s/%s", bpath, name);
  if ((r = record_read(ks, RB_PENDING, bdir, name, path, NULL, &data, &len, err, errlen)) < 0)
    return r;
  msgpack_zone_init(&zone, 512);
  msgpack_unpacked_init(&up);
  if ((r = record_decode(data, len, &pending_record_schema, &rec, &zone, &up, NULL, path, err, errlen)) < 0)
    goto out;
  if (rec.version != KEYSTORE_VERSION || strcmp(rec.identity, id->name) != 0 || strcmp(rec.origin, b->origin) != 0 ||
      key_type_parse(rec.alg, &alg) < 0) {
    r = errmsg(err, errlen, MCPSIG_ESTORE, "%s does not belong to %s; move it aside", path, b->origin);
    goto out;
  }
  if (alg != b->active.alg) {
    r = errmsg(err, errlen, MCPSIG_ESTORE,
               "%s holds a %s key for a binding whose key is %s, and a binding keeps its key type: it does not "
               "belong to %s; move it aside", path, key_type_name(alg), key_type_name(b->active.alg), b->origin);
    goto out;
  }
  if ((r = key_load(pool, alg, rec.key, rec.key_len, &b->pending, path, err, errlen)) < 0)
    goto out;
  if (strcmp(b->pending.keyid, b->active.keyid) == 0) {
    key_destroy(pool, &b->pending);
    r = pending_discard_at(bdir, bpath, b->origin);
    goto out;
  }
  b->has_pending = true;
  b->pending_created = rec.created;
out:
  msgpack_unpacked_destroy(&up);
  msgpack_zone_destroy(&zone);
  if (data)
    sodium_memzero(data, len);
  return r;
}

/*
 * An origin as the agent stores it: http or https, and nothing a log line,
 * a listing or a quoted value could be broken by. The exact serialization
 * is not compared: its rules may grow (IP literals, say), and a binding
 * stored under an older one must still load.
 */
static bool origin_plausible(const char *origin) {
  size_t n = strlen(origin);
  if (n > MCPSIG_MAX_ORIGIN_LEN || (strncmp(origin, "https://", 8) != 0 && strncmp(origin, "http://", 7) != 0))
    return false;
  for (size_t i = 0; i < n; i++)
    if (origin[i] <= 0x20 || origin[i] >= 0x7f || origin[i] == '"' || origin[i] == '\\')
      return false;
  return true;
}

static void history_warn(const char *path, const struct history *h, size_t kept) {
  char why[160];
  if (h->size)
    snprintf(why, sizeof(why), "the record is %lld bytes, over the %u KiB limit, because of its history", h->size,
             RECORD_MAX / 1024);
  else if (h->not_list)
    snprintf(why, sizeof(why), "its history is not a list");
  else if (h->malformed)
    snprintf(why, sizeof(why), "%zu of its retired keyids are malformed", h->malformed);
  else
    snprintf(why, sizeof(why), "it lists more than %d retired keyids", BINDING_RETIRED_KEEP);
  log_msg(LOG_WARNING,
          "%s: %s; loaded it with the newest %zu retired keyids, %llu older ones dropped at this load "
          "(retired_dropped %llu). The file is rewritten short when the binding next changes",
          path, why, kept, (unsigned long long)h->cut, (unsigned long long)h->dropped);
}

static int binding_load(struct keystore *ks, struct keypool *pool, int bdir, struct identity *id, const char *fname,
                        const struct keystore_loader *loader, char *err, size_t errlen) {
  char path[PATH_MAX + NAME_MAX + 2], bpath[PATH_MAX];
  unsigned char *data = NULL;
  size_t len = 0;
  struct binding_record rec;
  struct binding *b = NULL;
  struct history h = { 0 };
  msgpack_zone zone;
  msgpack_unpacked up;
  char expect[64];
  key_alg alg;
  int r;

  bindings_path(ks, id->name, bpath, sizeof(bpath));
  snprintf(path, sizeof(path), "%s/%s", bpath, fname);
  if ((r = record_read(ks, RB_BINDING, bdir, fname, path, &h, &data, &len, err, errlen)) < 0)
    return r;
  msgpack_zone_init(&zone, 1024);
  msgpack_unpacked_init(&up);
  if ((r = record_decode(data, len, &binding_record_schema, &rec, &zone, &up, &h, path, err, errlen)) < 0)
    goto out;
  binding_file_name(rec.origin, expect);
  if (rec.version != KEYSTORE_VERSION || strcmp(rec.identity, id->name) != 0 || strcmp(expect, fname) != 0 ||
      !origin_plausible(rec.origin)) {
    r = errmsg(err, errlen, MCPSIG_ESTORE, "%s does not belong here (version, identity or origin); move it aside",
               path);
    goto out;
  }
  if (key_type_parse(rec.alg, &alg) < 0) {
    r = errmsg(err, errlen, MCPSIG_ESTORE, "%s holds a key of unknown type \"%.16s\"; move it aside", path, rec.alg);
    goto out;
  }
  if (!b64url_valid(rec.tag, strlen(rec.tag), 1, KEY_KEYID_LEN)) {
    r = errmsg(err, errlen, MCPSIG_ESTORE,
               "%s holds a tag that is not a thumbprint (1 to %d of A-Z a-z 0-9 - _); move it aside", path,
               KEY_KEYID_LEN);
    goto out;
  }
  int usable = stored_half_usable(alg, &rec, path, err, errlen);
  if (usable < 0) {
    r = usable;
    goto out;
  }
  b = calloc(1, sizeof(*b));
  if (!b) {
    r = -ENOMEM;
    goto out;
  }
  b->identity = id;
  b->origin = xstrdup(rec.origin);
  strcpy(b->tag, rec.tag);
  b->created = rec.created;
  b->retired_dropped = h.dropped;
  if (!b->origin) {
    r = -ENOMEM;
    goto out;
  }
  /* With the public half stored there is nothing to derive now (key_sign()
   * checks it first); records without it, or with a damaged one, derive. */
  if (!(usable && key_from_seed_stored(pool, alg, rec.key, rec.key_len, rec.pub, rec.pub_len, rec.keyid,
                                       &b->active) == 0) &&
      (r = key_load(pool, alg, rec.key, rec.key_len, &b->active, path, err, errlen)) < 0)
    goto out;
  /* The tag is the first key's thumbprint, so a binding that never rotated
   * has its tag as its keyid: a key of another type, read under a wrong
   * alg, would not. A damaged history cannot say it never rotated. */
  if (rec.n_retired == 0 && h.dropped == 0 && !h.malformed && !h.not_list && strcmp(b->tag, b->active.keyid) != 0) {
    r = errmsg(err, errlen, MCPSIG_ESTORE,
               "%s has never rotated, yet its tag is not its key's thumbprint: the file is damaged, or its alg "
               "disagrees with its key; move it aside", path);
    goto out;
  }
  if ((r = pending_load(ks, pool, bdir, id, b, err, errlen)) < 0)
    goto out;
  if (rec.n_retired > 0) {
    b->retired = calloc(rec.n_retired, sizeof(char *));
    if (!b->retired) {
      r = -ENOMEM;
      goto out;
    }
    for (size_t i = 0; i < rec.n_retired; i++, b->n_retired++)
      if (!(b->retired[i] = strdup(rec.retired[i]))) {
        r = -ENOMEM;
        goto out;
      }
  }
  if (h.cut || h.not_list)
    history_warn(path, &h, b->n_retired);
  r = loader->binding(loader->userdata, b);
  if (r == 0)
    b = NULL; /* owned by the agent */
out:
  binding_dispose(pool, b);
  msgpack_unpacked_destroy(&up);
  msgpack_zone_destroy(&zone);
  if (data)
    sodium_memzero(data, len);
  return r;
}

/*
 * An identity directory without its identity record: an identity.add that
 * failed or was interrupted before the record was renamed into place. The
 * identity never existed for anyone, so what it left (an empty bindings
 * directory, a temporary record) is removed. A directory that holds any
 * binding is not a leftover: it is refused, so no key is dropped.
 */
static int identity_leftover(struct keystore *ks, int iddir, const char *name, const char *path, char *err,
                             size_t errlen) {
  int bdir = open_dir_at(iddir, "bindings");
  bool empty = true;
  if (bdir >= 0) {
    DIR *d = fdopendir(fcntl(bdir, F_DUPFD_CLOEXEC, 0));
    struct dirent *de;
    while (d && (de = readdir(d)))
      if (de->d_name[0] != '.')
        empty = false;
    if (d)
      closedir(d);
    close(bdir);
  }
  DIR *d = fdopendir(fcntl(iddir, F_DUPFD_CLOEXEC, 0));
  struct dirent *de;
  while (d && (de = readdir(d)))
    if (de->d_name[0] != '.' && strcmp(de->d_name, "bindings") != 0 && !has_suffix(de->d_name, ".tmp"))
      empty = false;
  if (d)
    closedir(d);
  if (!empty)
    return errmsg(err, errlen, MCPSIG_ESTORE,
                  "%s has no identity record but holds other files; restore %s/identity or move the directory aside",
                  path, path);
  return keystore_identity_remove(ks, name, err, errlen);
}

static int identity_load(struct keystore *ks, struct keypool *pool, int idsfd, const char *name,
                         const struct keystore_loader *loader, char *err, size_t errlen) {
  char path[PATH_MAX];
  struct stat st;
  struct identity_record rec;
  unsigned char *data = NULL;
  size_t len = 0;
  msgpack_zone zone;
  msgpack_unpacked up;
  int iddir = -1, bdir = -1, r = 0;
  key_alg alg;

  snprintf(path, sizeof(path), "%s/identities/%s", ks->dir, name);
  if (!identity_name_valid(name))
    return errmsg(err, errlen, MCPSIG_ESTORE, "%s is not a valid identity name; move it aside", path);
  iddir = open_dir_at(idsfd, name);
  if (iddir < 0) {
    int e = errno;
    if ((e == ENOTDIR || e == ELOOP) && fstatat(idsfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        (r = check_private(&st, path, true, err, errlen)) < 0)
      return r;
    return errmsg(err, errlen, MCPSIG_ESTORE, "cannot open %s: %s", path, strerror(e));
  }
  if (fstat(iddir, &st) < 0 || (r = check_private(&st, path, true, err, errlen)) < 0) {
    close(iddir);
    return r < 0 ? r : errmsg(err, errlen, MCPSIG_ESTORE, "cannot stat %s", path);
  }
  if (faccessat(iddir, "identity", F_OK, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT) {
    r = identity_leftover(ks, iddir, name, path, err, errlen);
    close(iddir);
    return r;
  }
  char bpath[PATH_MAX + 16];
  snprintf(bpath, sizeof(bpath), "%s/bindings", path);
  snprintf(path, sizeof(path), "%s/identities/%s/identity", ks->dir, name);
  msgpack_zone_init(&zone, 512);
  msgpack_unpacked_init(&up);
  if ((r = record_read(ks, RB_IDENTITY, iddir, "identity", path, NULL, &data, &len, err, errlen)) < 0)
    goto out;
  if ((r = record_decode(data, len, &identity_record_schema, &rec, &zone, &up, NULL, path, err, errlen)) < 0)
    goto out;
  if (strcmp(rec.name, name) != 0 || key_type_parse(rec.alg, &alg) < 0) {
    r = errmsg(err, errlen, MCPSIG_ESTORE, "%s names another identity or an unknown algorithm", path);
    goto out;
  }
  struct identity *id = loader->identity(loader->userdata, name, alg, rec.created);
  if (!id) {
    r = -ENOMEM;
    goto out;
  }
  bdir = open_dir_at(iddir, "bindings");
  if (bdir < 0) {
    int e = errno;
    if ((e == ENOTDIR || e == ELOOP) && fstatat(iddir, "bindings", &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        (r = check_private(&st, bpath, true, err, errlen)) < 0)
      goto out;
    r = e == ENOENT ? 0 : errmsg(err, errlen, MCPSIG_ESTORE, "cannot open %s: %s", bpath, strerror(e));
    goto out;
  }
  if (fstat(bdir, &st) < 0) {
    r = errmsg(err, errlen, MCPSIG_ESTORE, "cannot stat %s: %s", bpath, strerror(errno));
    goto out;
  }
  if ((r = check_private(&st, bpath, true, err, errlen)) < 0)
    goto out;
  DIR *d = fdopendir(fcntl(bdir, F_DUPFD_CLOEXEC, 0));
  if (!d) {
    r = -errno;
    goto out;
  }
  struct dirent *de;
  while (r == 0 && (de = readdir(d))) {
    size_t n = strlen(de->d_name);
    if (de->d_name[0] == '.')
      continue;
    if (has_suffix(de->d_name, ".old")) {
      old_link_settle(bdir, bpath, de->d_name);
      continue;
    }
    if (has_suffix(de->d_name, ".tmp") || has_suffix(de->d_name, DISCARD_SUFFIX)) {
      /* A temporary from an interrupted write (the rename never happened,
       * so the file it would have replaced is still the truth), or a
       * pending key whose discard was decided but not finished. */
      (void)file_destroy(bdir, bpath, de->d_name);
      continue;
    }
    if (has_suffix(de->d_name, PENDING_SUFFIX)) {
      /* Loaded with its binding; one without a binding is not ours to drop. */
      char bname[NAME_MAX + 1];
      snprintf(bname, sizeof(bname), "%.*s%s", (int)(n - strlen(PENDING_SUFFIX)), de->d_name, BINDING_SUFFIX);
      if (faccessat(bdir, bname, F_OK, AT_SYMLINK_NOFOLLOW) < 0)
        r = errmsg(err, errlen, MCPSIG_ESTORE, "%s/%s is a pending key without its binding; move it aside", bpath,
                   de->d_name);
      continue;
    }
    if (!has_suffix(de->d_name, BINDING_SUFFIX))
      continue;
    test_delay("MCPSIG_TEST_SLOW_LOAD_MS"); /* readiness test: a slow disk */
    r = binding_load(ks, pool, bdir, id, de->d_name, loader, err, errlen);
  }
  closedir(d);
out:
  if (bdir >= 0)
    close(bdir);
  close(iddir);
  msgpack_unpacked_destroy(&up);
  msgpack_zone_destroy(&zone);
  if (data)
    sodium_memzero(data, len);
  return r;
}

int keystore_load(struct keystore *ks, struct keypool *pool, const struct keystore_loader *loader, char *err,
                  size_t errlen) {
  int idsfd = open_dir_at(ks->dirfd, "identities");
  struct stat st;
  int r = 0;

  if (idsfd < 0)
    return errmsg(err, errlen, MCPSIG_ESTORE, "cannot open %s/identities: %s", ks->dir, strerror(errno));
  char path[PATH_MAX];
  snprintf(path, sizeof(path), "%s/identities", ks->dir);
  if (fstat(idsfd, &st) < 0 || (r = check_private(&st, path, true, err, errlen)) < 0) {
    close(idsfd);
    return r < 0 ? r : MCPSIG_ESTORE;
  }
  DIR *d = fdopendir(fcntl(idsfd, F_DUPFD_CLOEXEC, 0));
  if (!d) {
    close(idsfd);
    return -errno;
  }
  struct dirent *de;
  /* Every key of the load is written into its arena without sealing it in
   * between; all are sealed once the load is done. */
  keypool_bulk(pool, true);
  while (r == 0 && (de = readdir(d)))
    if (de->d_name[0] != '.')
      r = identity_load(ks, pool, idsfd, de->d_name, loader, err, errlen);
  keypool_bulk(pool, false);
  recbufs_free(ks);
  closedir(d);
  close(idsfd);
  return r;
}
