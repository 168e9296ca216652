/* keypool.c: guarded, locked arenas for private keys. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "keypool.h"

#define ARENA_BYTES (KEYPOOL_SLOT_LEN * KEYPOOL_ARENA_SLOTS)

enum { ARENA_SEALED, ARENA_READABLE, ARENA_WRITABLE };

struct arena {
  unsigned char *mem;
  uint64_t used[KEYPOOL_ARENA_SLOTS / 64];
  unsigned n_used;
  int state;               /* ARENA_SEALED (PROT_NONE), or open */
};

struct keypool {
  struct arena *arenas;
  size_t n_arenas;
  size_t n_keys;
  bool locked;
  int lock_errno;           /* why mlock() failed, when it did */
  bool deferred;           /* read-opened arenas stay readable until keypool_seal() */
  bool bulk;               /* written arenas too: a load writes thousands of keys */
};

static int arena_add(struct keypool *pool);

int keypool_new(struct keypool **ret_pool) {
  struct keypool *pool = calloc(1, sizeof(*pool));
  if (!pool)
    return -ENOMEM;
  pool->locked = true;
  /* The first arena is made now, so a failure to lock memory is known (and
   * reported) at start, not at the first key. */
  int r = arena_add(pool);
  if (r < 0) {
    keypool_free(pool);
    return r;
  }
  *ret_pool = pool;
  return 0;
}

struct keypool *keypool_free(struct keypool *pool) {
  if (!pool)
    return NULL;
  for (size_t i = 0; i < pool->n_arenas; i++)
    sodium_free(pool->arenas[i].mem); /* sodium_free wipes before unmapping */
  free(pool->arenas);
  free(pool);
  return NULL;
}

static int arena_add(struct keypool *pool) {
  struct arena *a = realloc(pool->arenas, (pool->n_arenas + 1) * sizeof(*a));
  if (!a)
    return -ENOMEM;
  pool->arenas = a;
  a = &pool->arenas[pool->n_arenas];
  memset(a, 0, sizeof(*a));
  a->mem = sodium_malloc(ARENA_BYTES);
  if (!a->mem)
    return -ENOMEM;
  /* sodium_malloc() ignores an mlock() failure; ask again so we can report
   * it instead of letting keys reach swap silently. */
  if (sodium_mlock(a->mem, ARENA_BYTES) != 0) {
    pool->lock_errno = errno;
    pool->locked = false;
  }
  sodium_memzero(a->mem, ARENA_BYTES);
  sodium_mprotect_noaccess(a->mem);
  pool->n_arenas++;
  return 0;
}

int keypool_alloc(struct keypool *pool, struct keyslot *ret_slot) {
  size_t ai;
  for (ai = 0; ai < pool->n_arenas; ai++)
    if (pool->arenas[ai].n_used < KEYPOOL_ARENA_SLOTS)
      break;
  if (ai == pool->n_arenas) {
    int r = arena_add(pool);
    if (r < 0)
      return r;
  }
  struct arena *a = &pool->arenas[ai];
  for (unsigned i = 0; i < KEYPOOL_ARENA_SLOTS; i++) {
    if (a->used[i / 64] & (UINT64_C(1) << (i % 64)))
      continue;
    a->used[i / 64] |= UINT64_C(1) << (i % 64);
    a->n_used++;
    pool->n_keys++;
    ret_slot->arena = (uint32_t)ai;
    ret_slot->index = i;
    return 0;
  }
  return -ENOMEM; /* unreachable: n_used said there was room */
}

void keypool_release(struct keypool *pool, struct keyslot slot) {
  if (slot.arena >= pool->n_arenas || slot.index >= KEYPOOL_ARENA_SLOTS)
    return;
  struct arena *a = &pool->arenas[slot.arena];
  uint64_t bit = UINT64_C(1) << (slot.index % 64);
  if (!(a->used[slot.index / 64] & bit))
    return;
  sodium_mprotect_readwrite(a->mem);
  sodium_memzero(a->mem + (size_t)slot.index * KEYPOOL_SLOT_LEN, KEYPOOL_SLOT_LEN);
  sodium_mprotect_noaccess(a->mem);
  a->state = ARENA_SEALED;
  a->used[slot.index / 64] &= ~bit;
  a->n_used--;
  pool->n_keys--;
}

unsigned char *keypool_open(struct keypool *pool, struct keyslot slot, bool write) {
  if (slot.arena >= pool->n_arenas || slot.index >= KEYPOOL_ARENA_SLOTS)
    return NULL;
  struct arena *a = &pool->arenas[slot.arena];
  int want = write ? ARENA_WRITABLE : ARENA_READABLE;
  /* An arena a deferred read left readable, or a bulk write writable, needs
   * no second mprotect(); a writable one serves reads too. */
  if (a->state != want && !(a->state == ARENA_WRITABLE && pool->bulk)) {
    if ((write ? sodium_mprotect_readwrite(a->mem) : sodium_mprotect_readonly(a->mem)) != 0)
      return NULL;
    a->state = want;
  }
  return a->mem + (size_t)slot.index * KEYPOOL_SLOT_LEN;
}

void keypool_close(struct keypool *pool, struct keyslot slot) {
  if (slot.arena >= pool->n_arenas)
    return;
  struct arena *a = &pool->arenas[slot.arena];
  /* Written arenas are sealed at once; read ones wait for keypool_seal()
   * when the caller deferred sealing. */
  if ((a->state == ARENA_WRITABLE && !pool->bulk) || (a->state != ARENA_WRITABLE && !pool->deferred)) {
    sodium_mprotect_noaccess(a->mem);
    a->state = ARENA_SEALED;
  }
}

void keypool_defer_seal(struct keypool *pool, bool defer) {
  pool->deferred = defer;
  if (!defer)
    keypool_seal(pool);
}

void keypool_bulk(struct keypool *pool, bool bulk) {
  pool->bulk = bulk;
  if (!bulk)
    keypool_seal(pool);
}

size_t keypool_seal(struct keypool *pool) {
  size_t n = 0;
  for (size_t i = 0; i < pool->n_arenas; i++)
    if (pool->arenas[i].state != ARENA_SEALED) {
      sodium_mprotect_noaccess(pool->arenas[i].mem);
      pool->arenas[i].state = ARENA_SEALED;
      n++;
    }
  return n;
}

bool keypool_locked(const struct keypool *pool) {
  return pool->locked;
}

int keypool_lock_errno(const struct keypool *pool) {
  return pool->locked ? 0 : pool->lock_errno;
}

const char *keypool_lock_failure(const struct keypool *pool) {
  if (pool->locked)
    return NULL;
  switch (pool->lock_errno) {
  case ENOMEM:
  case EAGAIN:
    return "RLIMIT_MEMLOCK too low: raise it (ulimit -l, or LimitMEMLOCK= in the unit)";
  case EPERM:
    return "not permitted (seccomp or container): allow mlock() for the agent";
  default:
    return "mlock() failed";
  }
}

size_t keypool_count(const struct keypool *pool) {
  return pool->n_keys;
}
