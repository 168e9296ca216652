/* agent.c: identities and the binding index (a SipHash-keyed hash table). */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent.h"
#include "errmsg.h"
#include "log.h"
#include "mcpsig.h"
#include "proto.h"

int64_t agent_now(const struct agent *a) {
#ifdef MCPSIG_TEST_HOOKS
  if (a->test_clock)
    return a->test_clock();
#endif
  (void)a;
  return (int64_t)time(NULL);
}

void agent_random(const struct agent *a, void *buf, size_t len) {
#ifdef MCPSIG_TEST_HOOKS
  if (a->test_random) {
    a->test_random(buf, len);
    return;
  }
#endif
  (void)a;
  randombytes_buf(buf, len);
}

/* Keyed with a random SipHash key so a peer cannot choose origins that collide. */
static size_t binding_hash(const struct agent *a, const char *identity, const char *origin) {
  size_t il = strlen(identity), ol = strlen(origin);
  unsigned char stackbuf[512];
  unsigned char *m = il + ol + 1 <= sizeof(stackbuf) ? stackbuf : malloc(il + ol + 1);
  unsigned char h[crypto_shorthash_BYTES];
  uint64_t v = 0;
  if (!m)
    return 0;
  memcpy(m, identity, il);
  m[il] = 0;
  memcpy(m + il + 1, origin, ol);
  crypto_shorthash(h, m, il + ol + 1, a->hash_key);
  if (m != stackbuf)
    free(m);
  memcpy(&v, h, sizeof(v));
  return (size_t)v;
}

static int table_grow(struct agent *a) {
  size_t size = a->table_size ? a->table_size * 2 : 64;
  struct binding **t = calloc(size, sizeof(*t));
  if (!t)
    return -ENOMEM;
  for (size_t i = 0; i < a->table_size; i++) {
    struct binding *b = a->table[i], *next;
    for (; b; b = next) {
      next = b->next;
      size_t h = binding_hash(a, b->identity->name, b->origin) & (size - 1);
      b->next = t[h];
      t[h] = b;
    }
  }
  free(a->table);
  a->table = t;
  a->table_size = size;
  return 0;
}

static int table_insert(struct agent *a, struct binding *b) {
  if ((a->n_bindings + 1) * 4 > a->table_size * 3) {
    int r = table_grow(a);
    if (r < 0)
      return r;
  }
  size_t h = binding_hash(a, b->identity->name, b->origin) & (a->table_size - 1);
  b->next = a->table[h];
  a->table[h] = b;
  a->n_bindings++;
  b->identity->n_bindings++;
  return 0;
}

static void table_unlink(struct agent *a, struct binding *b) {
  size_t h = binding_hash(a, b->identity->name, b->origin) & (a->table_size - 1);
  for (struct binding **pp = &a->table[h]; *pp; pp = &(*pp)->next) {
    if (*pp == b) {
      *pp = b->next;
      a->n_bindings--;
      b->identity->n_bindings--;
      return;
    }
  }
}

static void binding_free(struct agent *a, struct binding *b) {
  if (!b)
    return;
  key_destroy(a->pool, &b->active);
  if (b->has_pending)
    key_destroy(a->pool, &b->pending);
  for (size_t i = 0; i < b->n_retired; i++)
    free(b->retired[i]);
  free(b->retired);
  free(b->origin);
  free(b);
}

struct binding *agent_binding_find(struct agent *a, const struct identity *id, const char *origin) {
  if (!a->table_size)
    return NULL;
  size_t h = binding_hash(a, id->name, origin) & (a->table_size - 1);
  for (struct binding *b = a->table[h]; b; b = b->next)
    if (b->identity == id && strcmp(b->origin, origin) == 0)
      return b;
  return NULL;
}

struct identity *agent_identity_find(struct agent *a, const char *name) {
  for (struct identity *id = a->identities; id; id = id->next)
    if (strcmp(id->name, name) == 0)
      return id;
  return NULL;
}

static struct identity *identity_new(struct agent *a, const char *name, key_alg alg, int64_t created) {
  struct identity *id = calloc(1, sizeof(*id));
  if (!id || !(id->name = strdup(name))) {
    free(id);
    return NULL;
  }
  id->alg = alg;
  id->created = created;
  id->next = a->identities;
  a->identities = id;
  a->n_identities++;
  return id;
}

static void identity_unlink(struct agent *a, struct identity *id) {
  for (struct identity **pp = &a->identities; *pp; pp = &(*pp)->next) {
    if (*pp == id) {
      *pp = id->next;
      a->n_identities--;
      free(id->name);
      free(id);
      return;
    }
  }
}

int agent_identity_add(struct agent *a, const char *name, key_alg alg, char *err, size_t errlen) {
  if (!identity_name_valid(name))
    return errmsg(err, errlen, MCPSIG_EPARAM,
                "invalid identity name \"%.64s\": use 1 to 64 of A-Z a-z 0-9 . _ -, starting with a letter or digit",
                name);
  if (agent_identity_find(a, name))
    return errmsg(err, errlen, MCPSIG_EEXIST, "identity \"%s\" already exists", name);
  struct identity *id = identity_new(a, name, alg, agent_now(a));
  if (!id)
    return -ENOMEM;
  int r = keystore_identity_write(a->ks, id, err, errlen);
  if (r < 0)
    identity_unlink(a, id);
  return r;
}

int agent_identity_remove(struct agent *a, const char *name, char *err, size_t errlen) {
  struct identity *id = agent_identity_find(a, name);
  if (!id)
    return errmsg(err, errlen, MCPSIG_ENOIDENT, "unknown identity \"%.64s\"", name);
  int r = keystore_identity_remove(a->ks, name, err, errlen);
  if (r < 0)
    return r;
  for (size_t i = 0; i < a->table_size; i++) {
    struct binding *b = a->table[i], *next;
    for (; b; b = next) {
      next = b->next;
      if (b->identity == id) {
        table_unlink(a, b);
        binding_free(a, b);
      }
    }
  }
  if (strcmp(name, PROTO_DEFAULT_IDENTITY) == 0)
    return keystore_identity_write(a->ks, id, err, errlen);
  identity_unlink(a, id);
  return 0;
}

static int binding_new(struct agent *a, struct identity *id, const char *origin, struct key *key,
                       struct binding **ret_binding, char *err, size_t errlen) {
  struct binding *b = calloc(1, sizeof(*b));
  int r;
  if (!b || !(b->origin = strdup(origin))) {
    free(b);
    return -ENOMEM;
  }
  b->identity = id;
  b->active = *key;
  sodium_memzero(key, sizeof(*key)); /* owned by the binding */
  memcpy(b->tag, b->active.keyid, sizeof(b->tag));
  b->created = agent_now(a);
  /* Invariant 1: durable before anyone can see a signature under it. */
  if ((r = keystore_binding_write(a->ks, a->pool, b, err, errlen)) < 0 || (r = table_insert(a, b)) < 0) {
    if (r != MCPSIG_ESTORE)
      (void)keystore_binding_remove(a->ks, id->name, origin, NULL, 0);
    binding_free(a, b);
    return r;
  }
  *ret_binding = b;
  return 0;
}

int agent_binding_get(struct agent *a, struct identity *id, const char *origin, bool create, key_alg alg,
                      struct binding **ret_binding, bool *ret_created, char *err, size_t errlen) {
  struct binding *b = agent_binding_find(a, id, origin);
  struct key k;
  int r;

  if (ret_created)
    *ret_created = false;
  if (b) {
    *ret_binding = b;
    return 0;
  }
  if (!create)
    return errmsg(err, errlen, MCPSIG_ENOBINDING, "no binding for origin %.300s", origin);
  if (!alg)
    alg = id->alg;
  if ((r = key_generate(a->pool, alg, &k)) < 0)
    return r == MCPSIG_EALG ? errmsg(err, errlen, r, "%s keys need OpenSSL libcrypto, and this agent was built without it",
                                     key_type_name(alg))
                            : r;
  if ((r = binding_new(a, id, origin, &k, &b, err, errlen)) < 0) {
    key_destroy(a->pool, &k);
    return r;
  }
  if (ret_created)
    *ret_created = true;
  *ret_binding = b;
  return 0;
}

int agent_binding_import(struct agent *a, struct identity *id, const char *origin, key_alg alg,
                         const unsigned char *seed, size_t seed_len, struct binding **ret_binding, char *err,
                         size_t errlen) {
  struct key k;
  struct binding *b;
  int r;

  if (agent_binding_find(a, id, origin))
    return errmsg(err, errlen, MCPSIG_EEXIST,
                "a binding for %.300s already exists; remove it first (its tag would change)", origin);
  if ((r = key_from_seed(a->pool, alg, seed, seed_len, &k)) < 0)
    return errmsg(err, errlen, r, "%s", "the key cannot be imported");
  if ((r = binding_new(a, id, origin, &k, &b, err, errlen)) < 0) {
    key_destroy(a->pool, &k);
    return r;
  }
  *ret_binding = b;
  return 0;
}

int agent_binding_remove(struct agent *a, struct identity *id, const char *origin, char *err, size_t errlen) {
  struct binding *b = agent_binding_find(a, id, origin);
  if (!b)
    return errmsg(err, errlen, MCPSIG_ENOBINDING, "no binding for origin %.300s", origin);
  int r = keystore_binding_remove(a->ks, id->name, origin, err, errlen);
  if (r < 0)
    return r;
  table_unlink(a, b);
  binding_free(a, b);
  return 0;
}

/* ---- rotation ---- */

int agent_rotate_begin(struct agent *a, struct binding *b, char *err, size_t errlen) {
  int r;

  if (b->has_pending)
    return errmsg(err, errlen, MCPSIG_EROTATING,
                  "a rotation of %s for %s is already pending with new key %s; commit or abort it first",
                  b->identity->name, b->origin, b->pending.keyid);
  if ((r = key_generate(a->pool, b->active.alg, &b->pending)) < 0)
    return r;
  b->has_pending = true;
  b->pending_created = agent_now(a);
  /* Invariant 1: the new key is on disk before anything signed with it
   * can leave the agent. */
  if ((r = keystore_pending_write(a->ks, a->pool, b, err, errlen)) < 0) {
    (void)keystore_pending_discard(a->ks, b->identity->name, b->origin, NULL, 0);
    key_destroy(a->pool, &b->pending);
    b->has_pending = false;
    return r;
  }
  return 0;
}

int agent_rotation_pending(const struct binding *b, char *err, size_t errlen) {
  if (b->has_pending)
    return 0;
  return errmsg(err, errlen, MCPSIG_ENOROTATION, "no rotation is pending for %s %s; start one with rotate.begin (mcpsig rotate --begin)",
                b->identity->name, b->origin);
}

int agent_rotate_commit(struct agent *a, struct binding *b, char *err, size_t errlen) {
  int r = agent_rotation_pending(b, err, errlen);
  if (r < 0)
    return r;
  char **retired = realloc(b->retired, (b->n_retired + 1) * sizeof(*retired));
  if (!retired)
    return -ENOMEM;
  b->retired = retired;
  if (!(retired[b->n_retired] = strdup(b->active.keyid)))
    return -ENOMEM;
  struct key old = b->active;
  b->active = b->pending;
  b->has_pending = false;
  b->n_retired++;
  /* The binding file now names k2 and retires k1 in one atomic rename; a
   * crash before it leaves PENDING(k1, k2), after it ACTIVE(k2). */
  r = keystore_binding_write(a->ks, a->pool, b, err, errlen);
  if (r < 0) {
    b->n_retired--;
    free(retired[b->n_retired]);
    b->pending = b->active;
    b->active = old;
    b->has_pending = true;
    return r;
  }
  key_destroy(a->pool, &old);
  sodium_memzero(&b->pending, sizeof(b->pending)); /* a copy of the active key's handle */
  /* The commit is durable already; a pending file left behind holds the
   * active key, and the next load removes it. */
  char why[256];
  if (keystore_pending_discard(a->ks, b->identity->name, b->origin, why, sizeof(why)) < 0)
    log_msg(LOG_WARNING, "%s (the next start removes it)", why);
  return 0;
}

int agent_rotate_abort(struct agent *a, struct binding *b, char *err, size_t errlen) {
  int r = agent_rotation_pending(b, err, errlen);
  if (r == 0)
    r = keystore_pending_discard(a->ks, b->identity->name, b->origin, err, errlen);
  if (r < 0)
    return r;
  key_destroy(a->pool, &b->pending); /* wipes the handle too */
  b->has_pending = false;
  return 0;
}

static int binding_cmp(const void *x, const void *y) {
  const struct binding *a = *(const struct binding *const *)x, *b = *(const struct binding *const *)y;
  int c = strcmp(a->identity->name, b->identity->name);
  return c ? c : strcmp(a->origin, b->origin);
}

int agent_bindings_sorted(struct agent *a, struct binding ***ret_list, size_t *ret_n) {
  struct binding **list = calloc(a->n_bindings ? a->n_bindings : 1, sizeof(*list));
  size_t n = 0;
  if (!list)
    return -ENOMEM;
  for (size_t i = 0; i < a->table_size; i++)
    for (struct binding *b = a->table[i]; b; b = b->next)
      list[n++] = b;
  qsort(list, n, sizeof(*list), binding_cmp);
  *ret_list = list;
  *ret_n = n;
  return 0;
}

/* ---- loading ---- */

static struct identity *load_identity(void *userdata, const char *name, key_alg alg, int64_t created) {
  return identity_new(userdata, name, alg, created);
}

static int load_binding(void *userdata, struct binding *b) {
  return table_insert(userdata, b);
}

int agent_init(struct agent *a, const char *keystore_dir, char *err, size_t errlen) {
  const struct keystore_loader loader = { a, load_identity, load_binding };
  int r;

  memset(a, 0, sizeof(*a));
  randombytes_buf(a->hash_key, sizeof(a->hash_key));
  a->started = (int64_t)time(NULL);
  if ((r = keypool_new(&a->pool)) < 0)
    return r;
  if ((r = keystore_open(&a->ks, keystore_dir, err, errlen)) < 0)
    goto fail;
  if ((r = table_grow(a)) < 0)
    goto fail;
  if ((r = keystore_load(a->ks, a->pool, &loader, err, errlen)) < 0)
    goto fail;
  if (!agent_identity_find(a, PROTO_DEFAULT_IDENTITY) &&
      (r = agent_identity_add(a, PROTO_DEFAULT_IDENTITY, KEY_ED25519, err, errlen)) < 0)
    goto fail;
  return 0;
fail:
  agent_done(a);
  return r;
}

/* Frees the identities and bindings; the keystore and the pool stay. */
static void state_free(struct agent *a) {
  for (size_t i = 0; i < a->table_size; i++) {
    struct binding *b = a->table[i], *next;
    for (; b; b = next) {
      next = b->next;
      binding_free(a, b);
    }
  }
  free(a->table);
  a->table = NULL;
  a->table_size = a->n_bindings = 0;
  while (a->identities) {
    struct identity *next = a->identities->next;
    free(a->identities->name);
    free(a->identities);
    a->identities = next;
  }
  a->n_identities = 0;
}

int agent_reload(struct agent *a, char *err, size_t errlen) {
  struct agent fresh;
  const struct keystore_loader loader = { &fresh, load_identity, load_binding };
  int r;

  /* Loaded beside the current state, which stays in use if the load fails. */
  memset(&fresh, 0, sizeof(fresh));
  memcpy(fresh.hash_key, a->hash_key, sizeof(fresh.hash_key));
  fresh.ks = a->ks;
  fresh.pool = a->pool;
  if ((r = table_grow(&fresh)) < 0 || (r = keystore_load(a->ks, a->pool, &loader, err, errlen)) < 0 ||
      (!agent_identity_find(&fresh, PROTO_DEFAULT_IDENTITY) &&
       (r = agent_identity_add(&fresh, PROTO_DEFAULT_IDENTITY, KEY_ED25519, err, errlen)) < 0)) {
    state_free(&fresh);
    return r;
  }
  state_free(a);
  a->identities = fresh.identities;
  a->n_identities = fresh.n_identities;
  a->table = fresh.table;
  a->table_size = fresh.table_size;
  a->n_bindings = fresh.n_bindings;
  return 0;
}

void agent_done(struct agent *a) {
  state_free(a);
  a->pool = keypool_free(a->pool);
  a->ks = keystore_free(a->ks);
  memset(a, 0, sizeof(*a));
}
