/*
 * keystore.h: the on-disk keystore.
 *
 *   DIR/agent.lock                                  flock()ed by the one agent; holds its pid
 *   DIR/identities/NAME/identity                    msgpack: {version, name, alg, created}
 *   DIR/identities/NAME/bindings/HASH.binding       msgpack: one binding and its active key
 *   DIR/identities/NAME/bindings/HASH.pending       msgpack: the new key of a rotation in flight
 *
 * HASH is the base64url SHA-256 of the origin, so file names are bounded and
 * need no escaping. Every file is replaced atomically: write a temporary,
 * fsync it, rename it into place, fsync the directory (durable.h).
 */
#ifndef MCPSIG_KEYSTORE_H
#define MCPSIG_KEYSTORE_H

#include <stddef.h>
#include <sys/types.h>

#include "binding.h"
#include "keypool.h"

struct keystore;

/*
 * Opens (creating with mode 0700 if missing) and locks the keystore at dir.
 * Fails with MCPSIG_ESTORE and a message in err that names the path and the
 * fix when the directory is unsafe (not ours, or group/world accessible),
 * when a directory above it could be written by another user (owned by
 * neither the user nor root, or writable by group or others without being
 * root's and sticky, as /tmp is), when agent.lock is not a regular file,
 * or when another agent holds the lock, naming that agent's pid.
 */
int keystore_open(struct keystore **ret_ks, const char *dir, char *err, size_t errlen);
struct keystore *keystore_free(struct keystore *ks);
const char *keystore_dir(const struct keystore *ks);

int keystore_identity_write(struct keystore *ks, const struct identity *id, char *err, size_t errlen);
int keystore_identity_remove(struct keystore *ks, const char *name, char *err, size_t errlen);

/*
 * Durably writes a binding with its keys. Returns only after the data and
 * the directory entry are on disk. The file lists the newest
 * BINDING_RETIRED_KEEP retired keyids and counts the others; once it is
 * written, b's list is cut the same way (b->retired_dropped counts them),
 * so what is in memory is what is on disk. On failure b is unchanged.
 */
int keystore_binding_write(struct keystore *ks, struct keypool *pool, struct binding *b, char *err, size_t errlen);
/* Durably writes the pending key of a rotation (b->pending) in its own file. */
int keystore_pending_write(struct keystore *ks, struct keypool *pool, const struct binding *b, char *err,
                           size_t errlen);
/* Discards the pending key's file: an atomic rename, then zeros, then unlink (durable_destroy()). */
int keystore_pending_discard(struct keystore *ks, const char *identity, const char *origin, char *err,
                             size_t errlen);
/* Overwrites the binding's files (and its pending key's) with zeros, then unlinks them. */
int keystore_binding_remove(struct keystore *ks, const char *identity, const char *origin, char *err,
                            size_t errlen);

struct keystore_loader {
  void *userdata;
  /* Called for each identity; returns the in-memory identity or NULL on OOM. */
  struct identity *(*identity)(void *userdata, const char *name, key_alg alg, int64_t created);
  /* Called for each binding; takes ownership of b (its keys live in the pool). */
  int (*binding)(void *userdata, struct binding *b);
};

/*
 * Loads everything. A damaged or unsafe file, or anything but a regular
 * file where a record belongs, stops the load with its path in err. A
 * binding's history never does: a record that lists more retired keyids
 * than BINDING_RETIRED_KEEP, or is larger than the record limit because of
 * them, or holds malformed ones, is loaded with its newest ones and a
 * warning in the log that names the file. Leftovers of interrupted writes
 * are removed, and never overwritten unless they are regular files with one
 * link (durable_destroy()).
 */
int keystore_load(struct keystore *ks, struct keypool *pool, const struct keystore_loader *loader, char *err,
                  size_t errlen);

#endif
