/*
 * vector-agent.h: an agent for known-answer tests: a fixed clock
 * (1767225600), a counting nonce source, and RFC 9421's test-key-ed25519
 * imported for one origin. Test builds only (MCPSIG_TEST_HOOKS).
 */
#ifndef MCPSIG_VECTOR_AGENT_H
#define MCPSIG_VECTOR_AGENT_H

#include "dispatch-call.h"

/* RFC 9421 B.1.4 test-key-ed25519, the seed of its "d". */
static const unsigned char rfc9421_seed[32] = {
  0x9f, 0x83, 0x62, 0xf8, 0x7a, 0x48, 0x4a, 0x95, 0x4e, 0x6e, 0x74, 0x0c, 0x5b, 0x4c, 0x0e, 0x84,
  0x22, 0x91, 0x39, 0xa2, 0x0a, 0xa8, 0xab, 0x56, 0xff, 0x66, 0x58, 0x6f, 0x6a, 0x7d, 0x29, 0xc5,
};
#define RFC9421_KEYID "poqkLGiymh_W0uP6PZFw-dvez3QJT5SolqXBCW38r0U"

/* The next byte counting_random() returns; tests set it before each call. */
static unsigned next_random_byte;
static inline int64_t fixed_clock(void) { return 1767225600; }
static inline void counting_random(void *buf, size_t len) {
  for (size_t i = 0; i < len; i++)
    ((unsigned char *)buf)[i] = (unsigned char)next_random_byte++;
}

/* A fresh agent with the fixed clock and nonces, and test-key-ed25519 as the key of origin. */
static inline int vector_agent_new(struct agent *a, char *dir, size_t dirlen, const char *origin) {
  struct reply rep;
  struct proto_public_result pub;
  if (test_agent_new(a, dir, dirlen) != 0)
    return -1;
  a->test_clock = fixed_clock;
  a->test_random = counting_random;
  struct proto_import_params imp = { .origin = origin, .seed = rfc9421_seed, .seed_len = 32, .has_seed = true };
  int r = dcall(a, "identity.import", &proto_import_params_schema, &imp, &proto_public_result_schema, &pub, &rep);
  if (r == 0 && (strcmp(pub.keyid, RFC9421_KEYID) != 0 || strcmp(pub.tag, RFC9421_KEYID) != 0))
    r = -1;
  reply_free(&rep);
  return r;
}

#endif
