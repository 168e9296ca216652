/*
 * binding.h: the data model. An identity is a named client identity; a
 * binding is one (identity, origin) pair with its stable tag, its active key,
 * an optional pending key (while a rotation is in flight) and the keyids of
 * its newest retired keys.
 */
#ifndef MCPSIG_BINDING_H
#define MCPSIG_BINDING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "key.h"

/*
 * How many retired keyids a binding lists. The agent never signs with a
 * retired key, so the list is only a record for people, and a host that
 * rotates in a loop must not be able to grow a binding's file without
 * bound: older keyids are dropped, and only counted (retired_dropped).
 */
#define BINDING_RETIRED_KEEP 100

struct identity {
  char *name;
  key_alg alg;              /* the key type of new bindings */
  int64_t created;
  size_t n_bindings;
  struct identity *next;
};

struct binding {
  struct identity *identity;
  char *origin;             /* RFC 6454 serialization */
  char tag[KEY_KEYID_LEN + 1];
  int64_t created;
  struct key active;
  bool has_pending;
  struct key pending;
  int64_t pending_created;
  char **retired;           /* keyids, oldest first: the newest BINDING_RETIRED_KEEP once stored */
  size_t n_retired;
  uint64_t retired_dropped; /* older retired keys whose keyids are no longer listed */
  struct binding *next;     /* hash chain */
};

/* Identity names are also directory names: [A-Za-z0-9][A-Za-z0-9._-]{0,63}. */
bool identity_name_valid(const char *name);

#endif
