/*
 * keypool.h: private keys in a few guarded, locked arenas.
 *
 * One sodium_malloc() per key costs about 8 KiB and 4 mappings and fails near
 * 16k keys, so keys share arenas of KEYPOOL_ARENA_SLOTS fixed-size slots. An
 * arena is inaccessible (PROT_NONE) except between keypool_open() and
 * keypool_close(), so a stray read elsewhere in the agent faults instead of
 * leaking a key.
 */
#ifndef MCPSIG_KEYPOOL_H
#define MCPSIG_KEYPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KEYPOOL_SLOT_LEN 64
#define KEYPOOL_ARENA_SLOTS 256

struct keypool;

struct keyslot {
  uint32_t arena;
  uint32_t index;
};

int keypool_new(struct keypool **ret_pool);
struct keypool *keypool_free(struct keypool *pool);

/* Reserves a zeroed slot. */
int keypool_alloc(struct keypool *pool, struct keyslot *ret_slot);
/* Wipes the slot and returns it to the pool. */
void keypool_release(struct keypool *pool, struct keyslot slot);

/* Makes the slot's arena readable (and writable if write) and returns the slot. */
unsigned char *keypool_open(struct keypool *pool, struct keyslot slot, bool write);
/*
 * Makes the arena inaccessible again; after a read, only once keypool_seal()
 * runs when sealing is deferred.
 */
void keypool_close(struct keypool *pool, struct keyslot slot);
/*
 * With defer, arenas opened for reading stay readable after keypool_close()
 * until keypool_seal(). The server defers, and seals every time its event
 * loop is about to wait: keys are readable only while requests are being
 * handled, never while the agent is idle, and a burst of signatures costs two
 * mprotect() calls per arena instead of two per signature.
 */
void keypool_defer_seal(struct keypool *pool, bool defer);
/*
 * With bulk, arenas opened for writing also stay open until keypool_seal()
 * (or keypool_bulk(false), which seals): for loading a keystore, not for
 * serving requests.
 */
void keypool_bulk(struct keypool *pool, bool bulk);
/* Makes every open arena inaccessible; returns how many were open. */
size_t keypool_seal(struct keypool *pool);

/* False when mlock() failed for some arena (RLIMIT_MEMLOCK too low): keys may be swapped. */
bool keypool_locked(const struct keypool *pool);
/* Why key memory is not locked, with the fix, for messages; NULL when it is. */
const char *keypool_lock_failure(const struct keypool *pool);
int keypool_lock_errno(const struct keypool *pool);
size_t keypool_count(const struct keypool *pool);

#endif
