/*
 * agent.h: the agent's state, passed explicitly everywhere (no globals):
 * the keystore, the key pool, identities, and the binding index.
 */
#ifndef MCPSIG_AGENT_H
#define MCPSIG_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sodium.h>

#include "binding.h"
#include "keypool.h"
#include "keystore.h"

struct proto_rotation_event;

struct agent {
  struct keystore *ks;
  struct keypool *pool;
  struct identity *identities;
  size_t n_identities;
  struct binding **table;
  size_t table_size;                  /* a power of two */
  size_t n_bindings;
  unsigned char hash_key[crypto_shorthash_KEYBYTES];
  uint64_t n_signatures;
  int64_t started;
  /* Called after every rotation begin, commit and abort (the server tells
   * its subscribers). May be NULL. */
  void (*notify)(void *data, const struct proto_rotation_event *ev);
  void *notify_data;
  /* Fills what only the server knows (connections, queued output) for
   * agent.status. May be NULL: then both are 0. */
  void (*server_stats)(void *data, size_t *ret_connections, size_t *ret_output_queued_max);
  void *server_stats_data;
#ifdef MCPSIG_TEST_HOOKS
  /* Test builds only: a fixed clock and nonce source, so the known-answer
   * vectors can run through the real dispatcher. Nothing on the wire can
   * reach these. */
  int64_t (*test_clock)(void);
  void (*test_random)(void *buf, size_t len);
#endif
};

/* Opens and locks the keystore, loads it, and makes sure "default" exists. */
int agent_init(struct agent *a, const char *keystore_dir, char *err, size_t errlen);
void agent_done(struct agent *a);
/*
 * Re-reads the keystore from disk (SIGHUP). On failure the current state
 * stays in use and err says why. Connections are not affected.
 */
int agent_reload(struct agent *a, char *err, size_t errlen);

int64_t agent_now(const struct agent *a);
void agent_random(const struct agent *a, void *buf, size_t len);

struct identity *agent_identity_find(struct agent *a, const char *name);
int agent_identity_add(struct agent *a, const char *name, key_alg alg, char *err, size_t errlen);
/* Removes an identity and all its bindings; "default" keeps existing, empty. */
int agent_identity_remove(struct agent *a, const char *name, char *err, size_t errlen);

struct binding *agent_binding_find(struct agent *a, const struct identity *id, const char *origin);
/*
 * The binding of (id, origin); with create, a new one is made on first
 * contact: a fresh key of type alg (0: the identity's type), tag = its keyid,
 * durably stored before this returns.
 */
int agent_binding_get(struct agent *a, struct identity *id, const char *origin, bool create, key_alg alg,
                      struct binding **ret_binding, bool *ret_created, char *err, size_t errlen);
/* Imports a seed as the first key of a new binding; fails with EEXIST if it exists. */
int agent_binding_import(struct agent *a, struct identity *id, const char *origin, key_alg alg,
                         const unsigned char *seed, size_t seed_len, struct binding **ret_binding, char *err,
                         size_t errlen);
int agent_binding_remove(struct agent *a, struct identity *id, const char *origin, char *err, size_t errlen);

/*
 * The rotation state machine of a binding (see binding.h). Each step is
 * durable before it returns, and on failure the binding is as it was:
 *  - begin: a new key of the same type becomes the pending key, written to
 *    its own file; MCPSIG_EROTATING if one is already pending;
 *  - commit: the pending key becomes the active key and the old keyid is
 *    retired, in one atomic rewrite of the binding; then the pending file
 *    goes. MCPSIG_ENOROTATION if nothing is pending;
 *  - abort: the pending key's file is discarded, then the key is wiped.
 */
int agent_rotate_begin(struct agent *a, struct binding *b, char *err, size_t errlen);
/* 0 when a rotation of b is pending, else MCPSIG_ENOROTATION with a message naming the binding. */
int agent_rotation_pending(const struct binding *b, char *err, size_t errlen);
int agent_rotate_commit(struct agent *a, struct binding *b, char *err, size_t errlen);
int agent_rotate_abort(struct agent *a, struct binding *b, char *err, size_t errlen);

/* All bindings sorted by identity then origin; free the array with free(). */
int agent_bindings_sorted(struct agent *a, struct binding ***ret_list, size_t *ret_n);

#endif
