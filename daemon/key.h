/* key.h: one signing key: its algorithm, public half and keyid; the private half lives in the keypool. */
#ifndef MCPSIG_KEY_H
#define MCPSIG_KEY_H

#include <stdbool.h>
#include <stddef.h>

#include "keypool.h"

typedef enum {
  KEY_ED25519 = 1,
} key_alg;

#define KEY_SEED_MAX 32
#define KEY_PUB_MAX 32
#define KEY_SIG_MAX 64
#define KEY_KEYID_LEN 43

struct key {
  key_alg alg;
  struct keyslot slot;
  unsigned char pub[KEY_PUB_MAX];
  size_t pub_len;
  char keyid[KEY_KEYID_LEN + 1];   /* RFC 7638 thumbprint of the public JWK */
  char *jwk;                       /* cached public JWK JSON, or NULL until first use */
  char *signature_agent;           /* cached Signature-Agent value, or NULL */
};

/* "ed25519" (RFC 9421 name), or NULL. */
const char *key_alg_name(key_alg alg);
/* The --alg name ("ed25519") of a key type, and back. */
int key_alg_parse(const char *name, key_alg *ret_alg);

int key_generate(struct keypool *pool, key_alg alg, struct key *ret_key);
/* Builds a key from its private seed; the caller wipes seed. */
int key_from_seed(struct keypool *pool, key_alg alg, const unsigned char *seed, size_t seed_len,
                  struct key *ret_key);
/* Copies the private seed out (for the keystore file); the caller wipes out. */
int key_seed_export(struct keypool *pool, const struct key *k, unsigned char *out, size_t size,
                    size_t *ret_len);
/* Signs msg: Ed25519 over the bytes as they are, no pre-hash (RFC 9421 §3.3.6). */
int key_sign(struct keypool *pool, const struct key *k, const void *msg, size_t len,
             unsigned char sig[KEY_SIG_MAX], size_t *ret_sig_len);
void key_destroy(struct keypool *pool, struct key *k);

/* The public JWK and Signature-Agent value, computed once per key. */
int key_public_values(struct key *k, const char **ret_jwk, const char **ret_signature_agent);

#endif
