/* key.h: one signing key: its algorithm, public half and keyid; the private half lives in the keypool. */
#ifndef MCPSIG_KEY_H
#define MCPSIG_KEY_H

#include <stdbool.h>
#include <stddef.h>

#include "keypool.h"

/* Key types. The numbers are never stored: files and the wire use names. */
typedef enum {
  KEY_ED25519 = 1,
  KEY_P256 = 2,                    /* needs OpenSSL libcrypto */
  KEY_P384 = 3,                    /* needs OpenSSL libcrypto */
} key_alg;

#define KEY_SEED_MAX 48            /* Ed25519 seed 32, P-256 scalar 32, P-384 scalar 48 */
#define KEY_PUB_MAX 96             /* Ed25519 32; EC x||y 64 or 96 */
#define KEY_SIG_MAX 96             /* Ed25519 64; ECDSA r||s 64 or 96 */
#define KEY_KEYID_LEN 43

struct key {
  key_alg alg;
  struct keyslot slot;
  unsigned char pub[KEY_PUB_MAX];
  size_t pub_len;
  char keyid[KEY_KEYID_LEN + 1];   /* RFC 7638 thumbprint of the public JWK */
  bool unverified;                 /* pub and keyid came from the keystore and are checked
                                      against the private key before its first use */
  char *jwk;                       /* cached public JWK JSON, or NULL until first use */
  char *signature_agent;           /* cached Signature-Agent value, or NULL */
};

/* The RFC 9421 algorithm name: "ed25519", "ecdsa-p256-sha256", "ecdsa-p384-sha384"; NULL if unknown. */
const char *key_alg_name(key_alg alg);
/* The key type name used by --alg and the keystore: "ed25519", "p256", "p384". */
const char *key_type_name(key_alg alg);
/* Parses a key type name; MCPSIG_EALG for anything else. */
int key_type_parse(const char *name, key_alg *ret_alg);
/* True when this build can make keys of this type (ECDSA needs libcrypto). */
bool key_alg_available(key_alg alg);
/* The private key length: the Ed25519 seed or the EC scalar. */
size_t key_seed_len(key_alg alg);

/*
 * Names in a caller's list of acceptable algorithms: RFC 9421 names (the
 * HTTP Signature Algorithms registry) or JWS names (RFC 7518, RFC 8037,
 * RFC 9864).
 */
typedef enum {
  ALG_NAMES_HTTPSIG,
  ALG_NAMES_JOSE,
} alg_names;

/*
 * Looks a name up. Returns 0 with *ret_alg set when this agent can sign with
 * it; 0 with *ret_alg = 0 for a registered name the agent cannot make (RSA,
 * HMAC, "none", ES512, ...); MCPSIG_EALG for a name no registry knows.
 */
int key_alg_lookup(alg_names names, const char *name, key_alg *ret_alg);
/* The registered names of the algorithms this build can make, for messages ("EdDSA, Ed25519, ES256, ES384"). */
const char *key_alg_supported_list(alg_names names);
/*
 * The JWS "alg" for a key: "ES256" or "ES384" for EC keys; for Ed25519
 * "EdDSA", unless the caller's list names "Ed25519" but not "EdDSA"
 * (RFC 9864 deprecates "EdDSA", but most servers still list only it).
 */
const char *key_jose_alg(key_alg alg, const char *const *accept, size_t n_accept);

int key_generate(struct keypool *pool, key_alg alg, struct key *ret_key);
/* Builds a key from its private seed; the caller wipes seed. */
int key_from_seed(struct keypool *pool, key_alg alg, const unsigned char *seed, size_t seed_len,
                  struct key *ret_key);
/*
 * Builds a key from its private seed and the public key and keyid stored
 * beside it, without deriving anything: start-up with thousands of keys
 * costs no scalar multiplication. The first key_sign() derives the public
 * key and replaces a stored pub or keyid that differs (a damaged cache), so
 * a signature never goes out under a wrong keyid.
 */
int key_from_seed_stored(struct keypool *pool, key_alg alg, const unsigned char *seed, size_t seed_len,
                         const unsigned char *pub, size_t pub_len, const char *keyid, struct key *ret_key);
/* Checks a stored public half now (see key_from_seed_stored); call before using pub or keyid. */
int key_check(struct keypool *pool, struct key *k);
/* Copies the private seed out (for the keystore file); the caller wipes out. */
int key_seed_export(struct keypool *pool, const struct key *k, unsigned char *out, size_t size,
                    size_t *ret_len);
/*
 * Signs msg: Ed25519 over the bytes as they are, no pre-hash (RFC 9421
 * §3.3.6); ECDSA P-256/SHA-256 or P-384/SHA-384 as fixed-width r||s
 * (RFC 9421 §3.3.4-5, RFC 7518 §3.4). *ret_sig_len is 64, 64 or 96.
 */
int key_sign(struct keypool *pool, struct key *k, const void *msg, size_t len,
             unsigned char sig[KEY_SIG_MAX], size_t *ret_sig_len);
void key_destroy(struct keypool *pool, struct key *k);

/* The public JWK and Signature-Agent value, computed once per key. */
int key_public_values(struct key *k, const char **ret_jwk, const char **ret_signature_agent);

#endif
