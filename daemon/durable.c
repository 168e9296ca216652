/*
 * durable.c: the crash-safe file layer under the keystore (see durable.h).
 *
 * The keystore's invariant 1 (no signature under a key that is not durably
 * stored) rests on durable_replace(): it returns only after fsync(file),
 * rename and fsync(directory). The rest of this file is about what the
 * directory may hold besides our own files, and never making that worse.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "durable.h"
#include "testhooks.h"

int durable_write_all(int fd, const void *data, size_t len) {
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

const char *durable_type_name(mode_t mode) {
  switch (mode & S_IFMT) {
  case S_IFREG: return "a regular file";
  case S_IFDIR: return "a directory";
  case S_IFLNK: return "a symbolic link";
  case S_IFIFO: return "a FIFO";
  case S_IFSOCK: return "a socket";
  case S_IFCHR: return "a character device";
  case S_IFBLK: return "a block device";
  default: return "not a regular file";
  }
}

int durable_open_regular(int dirfd, const char *name, int flags, struct stat *ret_st) {
  /* O_NONBLOCK: opening a FIFO would wait for the other end, for ever.
   * O_NOCTTY: a terminal linked here must not become ours. */
  int fd = openat(dirfd, name, flags | O_NONBLOCK | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC, 0600);
  if (fd < 0) {
    int e = errno;
    /* ELOOP: a symbolic link; ENXIO: a socket, or a FIFO no one reads. */
    if ((e == ELOOP || e == ENXIO || e == EISDIR) && fstatat(dirfd, name, ret_st, AT_SYMLINK_NOFOLLOW) == 0 &&
        !S_ISREG(ret_st->st_mode))
      return -EINVAL;
    return -e;
  }
  if (fstat(fd, ret_st) < 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  if (!S_ISREG(ret_st->st_mode)) {
    close(fd);
    return -EINVAL;
  }
  return fd;
}

static int unlink_synced(int dirfd, const char *name) {
  if (unlinkat(dirfd, name, 0) < 0)
    return -errno;
  return fsync(dirfd) < 0 ? -errno : 0;
}

/* On copy-on-write or journaling file systems the old blocks may survive
 * the zeros; this is the best a process can do. */
int durable_destroy(int dirfd, const char *name, durable_fate *ret_fate, struct stat *ret_st) {
  durable_fate fate = DURABLE_WIPED;
  struct stat st;
  int r;

  memset(&st, 0, sizeof(st));
  int fd = durable_open_regular(dirfd, name, O_WRONLY, &st);
  if (fd == -ENOENT) {
    fate = DURABLE_ABSENT;
    r = 0;
    goto out;
  }
  if (fd == -EINVAL) {
    fate = DURABLE_NOT_REGULAR;
    r = S_ISDIR(st.st_mode) ? -EISDIR : unlink_synced(dirfd, name);
    goto out;
  }
  if (fd < 0) {
    r = fd;
    goto out;
  }
  /* Zeros through a second hard link would destroy what that link holds:
   * a backup made with cp -al or rsnapshot, or a file of the user's. */
  if (st.st_nlink != 1)
    fate = DURABLE_LINKED;
  /* No record is this large; writing a huge sparse file full would only
   * fill the disk. */
  else if ((unsigned long long)st.st_size > DURABLE_WIPE_MAX)
    fate = DURABLE_TOO_LARGE;
  else {
    static const unsigned char zeros[4096];
    off_t left = st.st_size;
    while (left > 0) {
      size_t n = left > (off_t)sizeof(zeros) ? sizeof(zeros) : (size_t)left;
      if (durable_write_all(fd, zeros, n) < 0)
        break;
      left -= (off_t)n;
    }
    (void)fsync(fd);
  }
  close(fd);
  r = unlink_synced(dirfd, name);
out:
  if (ret_fate)
    *ret_fate = r == 0 ? fate : DURABLE_ABSENT;
  if (ret_st)
    *ret_st = st;
  return r;
}

/*
 * The file being replaced may hold a key that is now retired; a second link
 * to it (NAME.old) lets us overwrite it with zeros once the new file is
 * durable, instead of leaving it in freed blocks.
 */
int durable_replace(int dirfd, const char *name, const void *data, size_t len, durable_fate *ret_old_fate) {
  char tmp[NAME_MAX + 1], old[NAME_MAX + 1];
  bool have_old = false;
  int r = 0;

  if (ret_old_fate)
    *ret_old_fate = DURABLE_ABSENT;
  if (snprintf(tmp, sizeof(tmp), "%s.tmp", name) >= (int)sizeof(tmp) ||
      snprintf(old, sizeof(old), "%s.old", name) >= (int)sizeof(old))
    return -ENAMETOOLONG;
  /* Leftovers of a crash, only unlinked: the load has settled them, and we
   * hold the lock. */
  (void)unlinkat(dirfd, tmp, 0);
  (void)unlinkat(dirfd, old, 0);
  if (linkat(dirfd, name, dirfd, old, 0) == 0)
    have_old = true;
  else if (errno != ENOENT)
    return -errno;
  int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    r = -errno;
    goto fail;
  }
  r = durable_write_all(fd, data, len);
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
    goto fail;
  }
  crash_point("replace.renamed", name);
  if (fsync(dirfd) < 0)
    return -errno;
  if (have_old)
    (void)durable_destroy(dirfd, old, ret_old_fate, NULL);
  return 0;
fail:
  if (have_old)
    (void)unlinkat(dirfd, old, 0); /* only a link: the file is still live */
  return r;
}
