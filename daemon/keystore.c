/*
 * keystore.c: durable, atomic storage of identities and bindings.
 *
 * Invariant 1 (no signature under a key that is not durably stored) rests on
 * keystore_binding_write(): it returns only after fsync(file), rename and
 * fsync(directory). Invariant 2 rests on never modifying a file in place.
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

#include "errmsg.h"
#include "keystore.h"
#include "proto.h"
#include "testhooks.h"

#define KEYSTORE_VERSION 1
#define RECORD_MAX (256u * 1024u)
#define BINDING_SUFFIX ".binding"
#define PENDING_SUFFIX ".pending"
#define DISCARD_SUFFIX ".discard"

struct keystore {
  char *dir;
  int dirfd;
  int lockfd;
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

/* A directory or file the keys live in must be ours and private. */
static int check_private(const struct stat *st, const char *path, bool is_dir, char *err, size_t errlen) {
  if (st->st_uid != geteuid())
    return errmsg(err, errlen, MCPSIG_ESTORE,
                  "%s is owned by uid %lu, not by this user (uid %lu); refusing to use it. If it is yours, fix it "
                  "with: chown %lu %s; if not, move it aside or use another keystore (--keystore)",
                  path, (unsigned long)st->st_uid, (unsigned long)geteuid(), (unsigned long)geteuid(), path);
  if (is_dir && !S_ISDIR(st->st_mode))
    return errmsg(err, errlen, MCPSIG_ESTORE, "%s is not a directory", path);
  if (!is_dir && !S_ISREG(st->st_mode))
    return errmsg(err, errlen, MCPSIG_ESTORE, "%s is not a regular file", path);
  if (st->st_mode & 077)
    return errmsg(err, errlen, MCPSIG_ESTORE, "%s is accessible by group or others (mode %04o); fix it with: chmod %s %s",
                path, (unsigned)(st->st_mode & 07777), is_dir ? "700" : "600", path);
  return 0;
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

int keystore_open(struct keystore **ret_ks, const char *dir, char *err, size_t errlen) {
  struct keystore *ks = NULL;
  struct stat st;
  int r;

  if ((r = mkdir_p(dir)) < 0)
    return errmsg(err, errlen, MCPSIG_ESTORE, "cannot create keystore %s: %s%s", dir, strerror(-r),
                  r == -EROFS ? " (under the systemd unit only the keystore and the socket directory are writable: "
                                "create it with mkdir -m 0700, and name it in ReadWritePaths= if it is not the default)"
                              : "");
  ks = calloc(1, sizeof(*ks));
  if (!ks)
    return -ENOMEM;
  ks->lockfd = -1;
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
  ks->lockfd = openat(ks->dirfd, "agent.lock", O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (ks->lockfd < 0) {
    r = errmsg(err, errlen, MCPSIG_ESTORE, "cannot open %s/agent.lock: %s", dir, strerror(errno));
    goto fail;
  }
  if (flock(ks->lockfd, LOCK_EX | LOCK_NB) < 0) {
    char pid[32] = "";
    ssize_t n = pread(ks->lockfd, pid, sizeof(pid) - 1, 0);
    pid[n > 0 ? n : 0] = '\0';
    pid[strcspn(pid, "\n")] = '\0';
    r = errmsg(err, errlen, MCPSIG_ESTORE, "keystore %s is in use by another mcpsig-agent (pid %s)", dir,
             pid[0] ? pid : "unknown");
    goto fail;
  }
  char pid[32];
  int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
  if (ftruncate(ks->lockfd, 0) < 0 || pwrite(ks->lockfd, pid, (size_t)n, 0) != n) {
    r = errmsg(err, errlen, MCPSIG_ESTORE, "cannot write %s/agent.lock: %s", dir, strerror(errno));
    goto fail;
  }
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
  if (ks->dirfd >= 0)
    close(ks->dirfd);
  free(ks->dir);
  free(ks);
  return NULL;
}

const char *keystore_dir(const struct keystore *ks) {
  return ks->dir;
}

/* ---- atomic files ---- */

static int write_all(int fd, const void *data, size_t len) {
  const char *p = data;
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

static int file_wipe(int dirfd, const char *name);

/*
 * The durable replace: a temporary file, fsync(file), renameat, fsync(dir).
 * A crash at any point leaves either the old file or the new one, never a
 * mix, and the new one is on disk before we return.
 *
 * The file being replaced may hold a key that is now retired; a second link
 * to it (NAME.old) lets us overwrite it with zeros once the new file is
 * durable, instead of leaving it in freed blocks.
 */
static int file_replace(int dirfd, const char *name, const void *data, size_t len) {
  char tmp[NAME_MAX + 1], old[NAME_MAX + 1];
  bool have_old = false;
  int r = 0;

  if (snprintf(tmp, sizeof(tmp), "%s.tmp", name) >= (int)sizeof(tmp) ||
      snprintf(old, sizeof(old), "%s.old", name) >= (int)sizeof(old))
    return -ENAMETOOLONG;
  (void)unlinkat(dirfd, tmp, 0); /* leftovers of a crash; we hold the lock */
  (void)unlinkat(dirfd, old, 0);
  if (linkat(dirfd, name, dirfd, old, 0) == 0)
    have_old = true;
  else if (errno != ENOENT)
    return -errno;
  int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0)
    return -errno;
  r = write_all(fd, data, len);
  if (r == 0 && fsync(fd) < 0)
    r = -errno;
  if (close(fd) < 0 && r == 0)
    r = -errno;
  if (r == 0)
    crash_point("replace.synced", name);
  if (r == 0 && renameat(dirfd, tmp, dirfd, name) < 0)
    r = -errno;
  if (r < 0) {
    (void)unlinkat(dirfd, tmp, 0);
    if (have_old)
      (void)unlinkat(dirfd, old, 0); /* only a link: the file is still live */
    return r;
  }
  crash_point("replace.renamed", name);
  if (fsync(dirfd) < 0)
    return -errno;
  if (have_old)
    (void)file_wipe(dirfd, old);
  return 0;
}

/*
 * A NAME.old left by a crash: the same file as NAME (the rename never
 * happened) is only unlinked; a replaced one is wiped.
 */
static void old_link_settle(int dirfd, const char *oldname) {
  char live[NAME_MAX + 1];
  struct stat a, b;
  size_t n = strlen(oldname);
  snprintf(live, sizeof(live), "%.*s", (int)(n - 4), oldname);
  if (fstatat(dirfd, oldname, &a, AT_SYMLINK_NOFOLLOW) == 0 && fstatat(dirfd, live, &b, AT_SYMLINK_NOFOLLOW) == 0 &&
      a.st_dev == b.st_dev && a.st_ino == b.st_ino)
    (void)unlinkat(dirfd, oldname, 0);
  else
    (void)file_wipe(dirfd, oldname);
}

/* Overwrites a file with zeros and unlinks it. On copy-on-write or journaling
 * file systems the old blocks may survive; this is the best a process can do. */
static int file_wipe(int dirfd, const char *name) {
  struct stat st;
  int fd = openat(dirfd, name, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return errno == ENOENT ? 0 : -errno;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
    static const unsigned char zeros[4096];
    off_t left = st.st_size;
    while (left > 0) {
      size_t n = left > (off_t)sizeof(zeros) ? sizeof(zeros) : (size_t)left;
      if (write_all(fd, zeros, n) < 0)
        break;
      left -= (off_t)n;
    }
    (void)fsync(fd);
  }
  close(fd);
  if (unlinkat(dirfd, name, 0) < 0)
    return -errno;
  return fsync(dirfd) < 0 ? -errno : 0;
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
  const char **retired;
  size_t n_retired;
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
  { "retired", PT_STRV, offsetof(BR, retired), offsetof(BR, n_retired), NO, PF_REQUIRED, 100000, NULL },
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

static int record_write(int dirfd, const char *name, const struct proto_schema *schema, const void *rec,
                        size_t cap) {
  struct secbuf sb = { sodium_malloc(cap), 0, cap };
  msgpack_packer pk;
  if (!sb.p)
    return -ENOMEM;
  msgpack_packer_init(&pk, &sb, secbuf_write);
  int r = proto_encode(&pk, schema, rec);
  if (r == 0)
    r = file_replace(dirfd, name, sb.p, sb.len);
  sodium_free(sb.p); /* wipes */
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
  int iddir = -1;
  int r = identity_dirs(ks, id->name, true, &iddir, NULL);
  if (r == 0)
    r = record_write(iddir, "identity", &identity_record_schema, &rec, 1024);
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
  int idsfd = -1, iddir = -1, bdir = -1, r = 0;

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
          (void)file_wipe(bdir, de->d_name);
      closedir(d);
    }
    if (unlinkat(iddir, "bindings", AT_REMOVEDIR) < 0)
      r = -errno;
  } else if (errno != ENOENT) {
    r = -errno;
  }
  /* identity.tmp: a record whose write was interrupted before its rename. */
  if (r == 0 && (r = file_wipe(iddir, "identity.tmp")) == 0 && (r = file_wipe(iddir, "identity")) == 0 &&
      unlinkat(idsfd, name, AT_REMOVEDIR) < 0)
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

int keystore_binding_write(struct keystore *ks, struct keypool *pool, const struct binding *b, char *err,
                           size_t errlen) {
  unsigned char *seeds = sodium_malloc(KEY_SEED_MAX);
  struct binding_record rec;
  char name[64];
  int bdir = -1, r;

  if (!seeds)
    return -ENOMEM;
  memset(&rec, 0, sizeof(rec));
  rec.version = KEYSTORE_VERSION;
  rec.identity = b->identity->name;
  rec.origin = b->origin;
  rec.tag = b->tag;
  rec.created = b->created;
  rec.alg = key_type_name(b->active.alg);
  rec.key = seeds;
  rec.has_key = true;
  rec.retired = (const char **)b->retired;
  rec.n_retired = b->n_retired;
  rec.pub = b->active.pub;
  rec.pub_len = b->active.pub_len;
  rec.has_pub = true;
  rec.keyid = b->active.keyid;
  r = key_seed_export(pool, &b->active, seeds, KEY_SEED_MAX, &rec.key_len);
  if (r == 0)
    r = identity_dirs(ks, b->identity->name, true, NULL, &bdir);
  if (r == 0) {
    binding_file_name(b->origin, name);
    r = record_write(bdir, name, &binding_record_schema, &rec, 1024 + b->n_retired * 64);
  }
  if (bdir >= 0)
    close(bdir);
  sodium_free(seeds);
  if (r < 0)
    return errmsg(err, errlen, MCPSIG_ESTORE, "cannot store the key of %s for %s in %s: %s", b->identity->name,
                b->origin, ks->dir, strerror(-r));
  return 0;
}

int keystore_pending_write(struct keystore *ks, struct keypool *pool, const struct binding *b, char *err,
                           size_t errlen) {
  unsigned char *seed = sodium_malloc(KEY_SEED_MAX);
  struct pending_record rec = { KEYSTORE_VERSION, b->identity->name, b->origin, key_type_name(b->pending.alg), seed, 0,
                                true, b->pending_created };
  char name[64];
  int bdir = -1, r;

  if (!seed)
    return -ENOMEM;
  r = key_seed_export(pool, &b->pending, seed, KEY_SEED_MAX, &rec.key_len);
  if (r == 0)
    r = identity_dirs(ks, b->identity->name, true, NULL, &bdir);
  if (r == 0) {
    origin_file_name(b->origin, PENDING_SUFFIX, name);
    r = record_write(bdir, name, &pending_record_schema, &rec, 1024);
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
static int pending_discard_at(int bdir, const char *origin) {
  char name[64], discard[64];
  origin_file_name(origin, PENDING_SUFFIX, name);
  origin_file_name(origin, DISCARD_SUFFIX, discard);
  if (renameat(bdir, name, bdir, discard) < 0)
    return errno == ENOENT ? 0 : -errno;
  if (fsync(bdir) < 0)
    return -errno;
  crash_point("discard.renamed", NULL);
  return file_wipe(bdir, discard);
}

int keystore_pending_discard(struct keystore *ks, const char *identity, const char *origin, char *err,
                             size_t errlen) {
  int bdir = -1;
  int r = identity_dirs(ks, identity, false, NULL, &bdir);
  if (r == 0) {
    r = pending_discard_at(bdir, origin);
    close(bdir);
  }
  if (r < 0)
    return errmsg(err, errlen, MCPSIG_ESTORE, "cannot remove the pending key of %s for %s: %s", identity, origin,
                  strerror(-r));
  return 0;
}

int keystore_binding_remove(struct keystore *ks, const char *identity, const char *origin, char *err,
                            size_t errlen) {
  char name[64];
  int bdir = -1;
  int r = identity_dirs(ks, identity, false, NULL, &bdir);
  if (r == 0) {
    r = pending_discard_at(bdir, origin);
    binding_file_name(origin, name);
    if (r == 0)
      r = file_wipe(bdir, name);
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

/* Reads a record into the keystore's guarded buffer rb; wipe *ret_data (ret_len bytes) after use. */
static int record_read(struct keystore *ks, int rb, int dirfd, const char *name, const char *path,
                       unsigned char **ret_data, size_t *ret_len, char *err, size_t errlen) {
  struct stat st;
  int r;
  int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return errmsg(err, errlen, MCPSIG_ESTORE, "cannot open %s: %s", path, strerror(errno));
  if (fstat(fd, &st) < 0) {
    r = errmsg(err, errlen, MCPSIG_ESTORE, "cannot stat %s: %s", path, strerror(errno));
    close(fd);
    return r;
  }
  if ((r = check_private(&st, path, false, err, errlen)) < 0) {
    close(fd);
    return r;
  }
  if (st.st_size <= 0 || (size_t)st.st_size > RECORD_MAX) {
    close(fd);
    return errmsg(err, errlen, MCPSIG_ESTORE, "%s has an impossible size (%lld bytes)", path, (long long)st.st_size);
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
                         msgpack_zone *zone, msgpack_unpacked *up, const char *path, char *err, size_t errlen) {
  char why[160];
  size_t off = 0;

  if (proto_frame_scan(data, len, RECORD_MAX, MCPSIG_MAX_DEPTH) != (ssize_t)len ||
      msgpack_unpack_next(up, (const char *)data, len, &off) != MSGPACK_UNPACK_SUCCESS)
    return errmsg(err, errlen, MCPSIG_ESTORE, "%s is damaged (not one msgpack record); move it aside to start", path);
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

/*
 * Attaches a binding's pending key, if its file exists. A pending key equal
 * to the active one is what a commit leaves when it stops between writing
 * the binding and removing the pending file: the commit happened, so the
 * file is removed now.
 */
/* A key from its file, or a message that names the file and what to do. */
static int key_load(struct keypool *pool, key_alg alg, const unsigned char *seed, size_t len, struct key *k,
                    const char *path, char *err, size_t errlen) {
  if (!key_alg_available(alg))
    return errmsg(err, errlen, MCPSIG_ESTORE,
                  "%s holds a %s key, which needs OpenSSL libcrypto, but this agent was built without it; "
                  "run an agent built with OpenSSL", path, key_type_name(alg));
  if (key_from_seed(pool, alg, seed, len, k) < 0)
    return errmsg(err, errlen, MCPSIG_ESTORE, "%s holds an invalid key; move it aside", path);
  return 0;
}

static int pending_load(struct keystore *ks, struct keypool *pool, int bdir, struct identity *id, struct binding *b,
                        char *err, size_t errlen) {
  char name[64], path[PATH_MAX];
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
  snprintf(path, sizeof(path), "%s/identities/%s/bindings/%s", ks->dir, id->name, name);
  if ((r = record_read(ks, RB_PENDING, bdir, name, path, &data, &len, err, errlen)) < 0)
    return r;
  msgpack_zone_init(&zone, 512);
  msgpack_unpacked_init(&up);
  if ((r = record_decode(data, len, &pending_record_schema, &rec, &zone, &up, path, err, errlen)) < 0)
    goto out;
  if (rec.version != KEYSTORE_VERSION || strcmp(rec.identity, id->name) != 0 || strcmp(rec.origin, b->origin) != 0 ||
      key_type_parse(rec.alg, &alg) < 0) {
    r = errmsg(err, errlen, MCPSIG_ESTORE, "%s does not belong to %s; move it aside", path, b->origin);
    goto out;
  }
  if ((r = key_load(pool, alg, rec.key, rec.key_len, &b->pending, path, err, errlen)) < 0)
    goto out;
  if (strcmp(b->pending.keyid, b->active.keyid) == 0) {
    key_destroy(pool, &b->pending);
    r = pending_discard_at(bdir, b->origin);
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

static int binding_load(struct keystore *ks, struct keypool *pool, int bdir, struct identity *id, const char *fname,
                        const struct keystore_loader *loader, char *err, size_t errlen) {
  char path[PATH_MAX];
  unsigned char *data = NULL;
  size_t len = 0;
  struct binding_record rec;
  struct binding *b = NULL;
  msgpack_zone zone;
  msgpack_unpacked up;
  char expect[64];
  key_alg alg;
  int r;

  snprintf(path, sizeof(path), "%s/identities/%s/bindings/%s", ks->dir, id->name, fname);
  if ((r = record_read(ks, RB_BINDING, bdir, fname, path, &data, &len, err, errlen)) < 0)
    return r;
  msgpack_zone_init(&zone, 1024);
  msgpack_unpacked_init(&up);
  if ((r = record_decode(data, len, &binding_record_schema, &rec, &zone, &up, path, err, errlen)) < 0)
    goto out;
  binding_file_name(rec.origin, expect);
  if (rec.version != KEYSTORE_VERSION || strcmp(rec.identity, id->name) != 0 || strcmp(expect, fname) != 0 ||
      strlen(rec.tag) > KEY_KEYID_LEN || key_type_parse(rec.alg, &alg) < 0) {
    r = errmsg(err, errlen, MCPSIG_ESTORE, "%s does not belong here (version, identity, origin or algorithm); move it aside",
             path);
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
  if (!b->origin) {
    r = -ENOMEM;
    goto out;
  }
  /* With the public half stored there is nothing to derive now (key_sign()
   * checks it first); records without it, or with a malformed one, derive. */
  if (!(rec.has_pub && rec.keyid && key_alg_available(alg) &&
        key_from_seed_stored(pool, alg, rec.key, rec.key_len, rec.pub, rec.pub_len, rec.keyid, &b->active) == 0) &&
      (r = key_load(pool, alg, rec.key, rec.key_len, &b->active, path, err, errlen)) < 0)
    goto out;
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
  if (iddir < 0)
    return errmsg(err, errlen, MCPSIG_ESTORE, "cannot open %s: %s", path, strerror(errno));
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
  if ((r = record_read(ks, RB_IDENTITY, iddir, "identity", path, &data, &len, err, errlen)) < 0)
    goto out;
  if ((r = record_decode(data, len, &identity_record_schema, &rec, &zone, &up, path, err, errlen)) < 0)
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
    r = errno == ENOENT ? 0 : errmsg(err, errlen, MCPSIG_ESTORE, "cannot open %s: %s", bpath, strerror(errno));
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
      old_link_settle(bdir, de->d_name);
      continue;
    }
    if (has_suffix(de->d_name, ".tmp") || has_suffix(de->d_name, DISCARD_SUFFIX)) {
      /* A temporary from an interrupted write (the rename never happened,
       * so the file it would have replaced is still the truth), or a
       * pending key whose discard was decided but not finished. */
      (void)file_wipe(bdir, de->d_name);
      continue;
    }
    if (has_suffix(de->d_name, PENDING_SUFFIX)) {
      /* Loaded with its binding; one without a binding is not ours to drop. */
      char bname[NAME_MAX + 1];
      snprintf(bname, sizeof(bname), "%.*s%s", (int)(n - strlen(PENDING_SUFFIX)), de->d_name, BINDING_SUFFIX);
      if (faccessat(bdir, bname, F_OK, AT_SYMLINK_NOFOLLOW) < 0)
        r = errmsg(err, errlen, MCPSIG_ESTORE,
                   "%s/identities/%s/bindings/%s is a pending key without its binding; move it aside", ks->dir,
                   name, de->d_name);
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
