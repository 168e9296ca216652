/*
 * test-keypool.c: the key arenas' protection, read from /proc/self/maps.
 * An arena is PROT_NONE except while open; with deferred sealing a read
 * leaves it readable until keypool_seal(), and a write never does.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <sodium.h>

#include "keypool.h"
#include "tap.h"

/* The permissions ("r--p", "---p", ...) of the mapping that holds addr, from /proc/self/maps. */
static const char *perms_at(const void *addr) {
  static char perms[8];
  char line[512];
  unsigned long lo, hi, a = (unsigned long)addr;
  FILE *f = fopen("/proc/self/maps", "r");
  strcpy(perms, "none");
  while (f && fgets(line, sizeof(line), f))
    if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) == 3 && a >= lo && a < hi)
      break;
    else
      strcpy(perms, "none");
  if (f)
    fclose(f);
  return perms;
}

int main(void) {
  struct keypool *pool = NULL;
  struct keyslot slot;

  if (sodium_init() < 0)
    return 99;
  ok(keypool_new(&pool) == 0 && keypool_alloc(pool, &slot) == 0, "a pool and a slot");

  unsigned char *k = keypool_open(pool, slot, true);
  ok(k != NULL && strcmp(perms_at(k), "rw-p") == 0, "open for writing: the arena is read-write");
  memset(k, 0x5a, KEYPOOL_SLOT_LEN);
  keypool_close(pool, slot);
  ok(strcmp(perms_at(k), "---p") == 0, "closed after writing: no access");

  /* Immediate sealing (no deferral): readable only between open and close. */
  const unsigned char *r = keypool_open(pool, slot, false);
  ok(r == k && r[0] == 0x5a && strcmp(perms_at(r), "r--p") == 0, "open for reading: read-only");
  keypool_close(pool, slot);
  ok(strcmp(perms_at(k), "---p") == 0, "closed: no access again at once");

  /* Deferred sealing: readable after close, until keypool_seal(). */
  keypool_defer_seal(pool, true);
  r = keypool_open(pool, slot, false);
  keypool_close(pool, slot);
  ok(strcmp(perms_at(k), "r--p") == 0, "deferred: still readable after close (the check sees it)");
  r = keypool_open(pool, slot, false);
  ok(r && r[1] == 0x5a, "deferred: a second read needs no reopening");
  keypool_close(pool, slot);
  ok(keypool_seal(pool) == 1, "keypool_seal seals the one open arena");
  ok(strcmp(perms_at(k), "---p") == 0, "after keypool_seal: no access");
  ok(keypool_seal(pool) == 0, "a second seal finds nothing open");

  /* A write under deferral is sealed at close. */
  k = keypool_open(pool, slot, true);
  k[0] = 0x11;
  keypool_close(pool, slot);
  ok(strcmp(perms_at(k), "---p") == 0 && keypool_seal(pool) == 0, "deferred: a write is still sealed at close");

  /* Turning deferral off seals what is open. */
  r = keypool_open(pool, slot, false);
  keypool_close(pool, slot);
  keypool_defer_seal(pool, false);
  ok(strcmp(perms_at(k), "---p") == 0, "keypool_defer_seal(false) seals the open arena");

  /* Bulk writes (a keystore load): writable until keypool_bulk(false). */
  keypool_bulk(pool, true);
  k = keypool_open(pool, slot, true);
  keypool_close(pool, slot);
  ok(strcmp(perms_at(k), "rw-p") == 0, "bulk: still writable after close");
  r = keypool_open(pool, slot, false);
  keypool_close(pool, slot);
  ok(r && r[0] == 0x11 && strcmp(perms_at(k), "rw-p") == 0, "bulk: a read in between keeps it as it is");
  keypool_bulk(pool, false);
  ok(strcmp(perms_at(k), "---p") == 0, "keypool_bulk(false) seals it");
  keypool_release(pool, slot);
  keypool_free(pool);
  return done_testing();
}
