/*
 * durable.h: the crash-safe file layer under the keystore.
 *
 * A file is never changed in place: durable_replace() writes NAME.tmp,
 * fsyncs it, renames it over NAME and fsyncs the directory, so a crash at
 * any point leaves the old file or the new one. durable_destroy() is the one
 * way a file is removed, and it writes zeros only into a file that is
 * plausibly ours alone: the keystore sits in a directory the user shares
 * with backups (cp -al, rsnapshot), other programs and other mistakes.
 *
 * Every function takes a directory descriptor and a plain name in it, and
 * never follows a symbolic link in that name.
 */
#ifndef MCPSIG_DURABLE_H
#define MCPSIG_DURABLE_H

#include <stddef.h>
#include <sys/stat.h>

/*
 * Files larger than this are unlinked without being overwritten. No record
 * comes near it: a binding with 100,000 retired keyids, as an agent from
 * before the history cap could leave, is 4.5 MB, and one written since
 * stays under 8 KiB.
 */
#define DURABLE_WIPE_MAX (16u * 1024u * 1024u)

/* What durable_destroy() did with a file. */
typedef enum {
  DURABLE_ABSENT,      /* there was nothing by that name */
  DURABLE_WIPED,       /* overwritten with zeros, synced, unlinked */
  DURABLE_LINKED,      /* unlinked only: other hard links still hold its bytes */
  DURABLE_NOT_REGULAR, /* unlinked only: a FIFO, socket, device or symbolic link */
  DURABLE_TOO_LARGE,   /* unlinked only: larger than DURABLE_WIPE_MAX */
} durable_fate;

int durable_write_all(int fd, const void *data, size_t len);

/*
 * Replaces dirfd/name with len bytes of data, durably: returns 0 only once
 * the new file and its directory entry are on disk. The file being replaced
 * may hold a retired key: it is destroyed once the new one is durable, and
 * what happened to it is in *ret_old_fate (when not NULL).
 */
int durable_replace(int dirfd, const char *name, const void *data, size_t len, durable_fate *ret_old_fate);

/*
 * Removes dirfd/name. A regular file with one link and at most
 * DURABLE_WIPE_MAX bytes is overwritten with zeros and synced first, so a
 * removed key does not stay in freed blocks; anything else is only
 * unlinked: zeros written through a second hard link would destroy the
 * other name's data (a backup), a FIFO, socket or device was never a file
 * the agent wrote, and a huge sparse file would be filled up. Then the directory is synced. Returns 0,
 * or -errno (-EISDIR for a directory, which is left alone). *ret_fate says
 * which it was, and *ret_st (when not NULL) what the file was.
 */
int durable_destroy(int dirfd, const char *name, durable_fate *ret_fate, struct stat *ret_st);

/*
 * Opens dirfd/name (flags: O_RDONLY, O_WRONLY or O_RDWR, and O_CREAT if
 * wanted) and fills *ret_st. It never follows a symbolic link and never
 * blocks (a FIFO would), and it hands out nothing but a regular file.
 * Returns the descriptor, -EINVAL for anything that is not a regular file,
 * symbolic links included (*ret_st then says what it is), or another
 * -errno.
 */
int durable_open_regular(int dirfd, const char *name, int flags, struct stat *ret_st);

/* "a FIFO", "a socket", "a directory", ... for messages. */
const char *durable_type_name(mode_t mode);

#endif
