/* key.c: key generation, import and signing per algorithm. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "jwk.h"
#include "key.h"
#include "mcpsig.h"

const char *key_alg_name(key_alg alg) {
  switch (alg) {
  case KEY_ED25519:
    return "ed25519";
  }
  return NULL;
}

int key_alg_parse(const char *name, key_alg *ret_alg) {
  if (name && strcmp(name, "ed25519") == 0) {
    *ret_alg = KEY_ED25519;
    return 0;
  }
  return MCPSIG_EALG;
}

static int key_finish(struct key *k) {
  return jwk_thumbprint_key(k, k->keyid);
}

/* Fills a new slot from seed, or from the CSPRNG when seed is NULL. */
static int key_make(struct keypool *pool, key_alg alg, const unsigned char *seed, struct key *ret_key) {
  struct key k = { .alg = alg };
  int r;

  if (alg != KEY_ED25519)
    return MCPSIG_EALG;
  if ((r = keypool_alloc(pool, &k.slot)) < 0)
    return r;
  unsigned char *sk = keypool_open(pool, k.slot, true);
  if (!sk) {
    keypool_release(pool, k.slot);
    return -EFAULT;
  }
  /* The secret key is written straight into the guarded slot: no copy of it
   * ever exists on the stack. */
  if (seed)
    crypto_sign_seed_keypair(k.pub, sk, seed);
  else
    crypto_sign_keypair(k.pub, sk);
  keypool_close(pool, k.slot);
  k.pub_len = crypto_sign_PUBLICKEYBYTES;
  if ((r = key_finish(&k)) < 0) {
    keypool_release(pool, k.slot);
    return r;
  }
  *ret_key = k;
  return 0;
}

int key_generate(struct keypool *pool, key_alg alg, struct key *ret_key) {
  return key_make(pool, alg, NULL, ret_key);
}

int key_from_seed(struct keypool *pool, key_alg alg, const unsigned char *seed, size_t seed_len,
                  struct key *ret_key) {
  if (alg == KEY_ED25519 && seed_len != crypto_sign_SEEDBYTES)
    return MCPSIG_EKEY;
  return key_make(pool, alg, seed, ret_key);
}

int key_seed_export(struct keypool *pool, const struct key *k, unsigned char *out, size_t size,
                    size_t *ret_len) {
  if (k->alg != KEY_ED25519)
    return MCPSIG_EALG;
  if (size < crypto_sign_SEEDBYTES)
    return -ENOSPC;
  const unsigned char *sk = keypool_open(pool, k->slot, false);
  if (!sk)
    return -EFAULT;
  crypto_sign_ed25519_sk_to_seed(out, sk);
  keypool_close(pool, k->slot);
  *ret_len = crypto_sign_SEEDBYTES;
  return 0;
}

int key_sign(struct keypool *pool, const struct key *k, const void *msg, size_t len,
             unsigned char sig[KEY_SIG_MAX], size_t *ret_sig_len) {
  if (k->alg != KEY_ED25519)
    return MCPSIG_EALG;
  const unsigned char *sk = keypool_open(pool, k->slot, false);
  if (!sk)
    return -EFAULT;
  unsigned long long n = 0;
  int r = crypto_sign_detached(sig, &n, msg, len, sk);
  keypool_close(pool, k->slot);
  if (r != 0)
    return MCPSIG_EINTERNAL;
  *ret_sig_len = (size_t)n;
  return 0;
}

int key_public_values(struct key *k, const char **ret_jwk, const char **ret_signature_agent) {
  int r;
  if (!k->jwk && (r = jwk_public_json(k, &k->jwk)) < 0)
    return r;
  if (!k->signature_agent && (r = jwk_signature_agent(k->jwk, &k->signature_agent)) < 0)
    return r;
  if (ret_jwk)
    *ret_jwk = k->jwk;
  if (ret_signature_agent)
    *ret_signature_agent = k->signature_agent;
  return 0;
}

void key_destroy(struct keypool *pool, struct key *k) {
  if (k->alg)
    keypool_release(pool, k->slot);
  free(k->jwk);
  free(k->signature_agent);
  sodium_memzero(k, sizeof(*k));
}
