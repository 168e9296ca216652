/* key.c: key generation, import and signing per algorithm. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "ec.h"
#include "jwk.h"
#include "key.h"
#include "mcpsig.h"

const char *key_alg_name(key_alg alg) {
  switch (alg) {
  case KEY_ED25519:
    return "ed25519";
  case KEY_P256:
    return "ecdsa-p256-sha256";
  case KEY_P384:
    return "ecdsa-p384-sha384";
  }
  return NULL;
}

const char *key_type_name(key_alg alg) {
  switch (alg) {
  case KEY_ED25519:
    return "ed25519";
  case KEY_P256:
    return "p256";
  case KEY_P384:
    return "p384";
  }
  return NULL;
}

int key_type_parse(const char *name, key_alg *ret_alg) {
  static const key_alg all[] = { KEY_ED25519, KEY_P256, KEY_P384 };
  for (size_t i = 0; name && i < sizeof(all) / sizeof(all[0]); i++)
    if (strcmp(name, key_type_name(all[i])) == 0) {
      *ret_alg = all[i];
      return 0;
    }
  return MCPSIG_EALG;
}

bool key_alg_available(key_alg alg) {
  switch (alg) {
  case KEY_ED25519:
    return true;
  case KEY_P256:
  case KEY_P384:
#ifdef HAVE_OPENSSL
    return true;
#else
    return false;
#endif
  }
  return false;
}

size_t key_seed_len(key_alg alg) {
  return alg == KEY_ED25519 ? crypto_sign_SEEDBYTES : ec_field_len(alg);
}

struct alg_entry {
  const char *name;
  key_alg alg; /* 0: registered, but not a key type this agent makes */
};

/* RFC 9421 §6.2.2, the HTTP Signature Algorithms registry. */
static const struct alg_entry httpsig_algs[] = {
  { "ed25519", KEY_ED25519 },      { "ecdsa-p256-sha256", KEY_P256 }, { "ecdsa-p384-sha384", KEY_P384 },
  { "rsa-pss-sha512", 0 },         { "rsa-v1_5-sha256", 0 },          { "hmac-sha256", 0 },
};

/* The JWS "alg" values of the IANA JOSE registry (RFC 7518 §7.1, RFC 8037,
 * RFC 8812, RFC 9864, and the ML-DSA registrations). */
static const struct alg_entry jose_algs[] = {
  { "EdDSA", KEY_ED25519 }, { "Ed25519", KEY_ED25519 }, { "ES256", KEY_P256 }, { "ES384", KEY_P384 },
  { "ES512", 0 },           { "ES256K", 0 },            { "Ed448", 0 },        { "RS256", 0 },
  { "RS384", 0 },           { "RS512", 0 },             { "PS256", 0 },        { "PS384", 0 },
  { "PS512", 0 },           { "HS256", 0 },             { "HS384", 0 },        { "HS512", 0 },
  { "none", 0 },            { "ML-DSA-44", 0 },         { "ML-DSA-65", 0 },    { "ML-DSA-87", 0 },
};

int key_alg_lookup(alg_names names, const char *name, key_alg *ret_alg) {
  const struct alg_entry *t = names == ALG_NAMES_JOSE ? jose_algs : httpsig_algs;
  size_t n = names == ALG_NAMES_JOSE ? sizeof(jose_algs) / sizeof(jose_algs[0])
                                     : sizeof(httpsig_algs) / sizeof(httpsig_algs[0]);
  for (size_t i = 0; name && i < n; i++)
    if (strcmp(name, t[i].name) == 0) {
      *ret_alg = key_alg_available(t[i].alg) ? t[i].alg : 0;
      return 0;
    }
  return MCPSIG_EALG;
}

const char *key_alg_supported_list(alg_names names) {
  /* Built once from the tables, so the message cannot drift from them. */
  static char lists[2][128];
  char *out = lists[names == ALG_NAMES_JOSE];
  if (!out[0]) {
    const struct alg_entry *t = names == ALG_NAMES_JOSE ? jose_algs : httpsig_algs;
    size_t n = names == ALG_NAMES_JOSE ? sizeof(jose_algs) / sizeof(jose_algs[0])
                                       : sizeof(httpsig_algs) / sizeof(httpsig_algs[0]);
    for (size_t i = 0; i < n; i++)
      if (t[i].alg && key_alg_available(t[i].alg))
        snprintf(out + strlen(out), sizeof(lists[0]) - strlen(out), "%s%s", out[0] ? ", " : "", t[i].name);
  }
  return out;
}

const char *key_jose_alg(key_alg alg, const char *const *accept, size_t n_accept) {
  bool eddsa = n_accept == 0, ed25519 = false;
  switch (alg) {
  case KEY_P256:
    return "ES256";
  case KEY_P384:
    return "ES384";
  case KEY_ED25519:
    for (size_t i = 0; i < n_accept; i++) {
      eddsa = eddsa || strcmp(accept[i], "EdDSA") == 0;
      ed25519 = ed25519 || strcmp(accept[i], "Ed25519") == 0;
    }
    return !eddsa && ed25519 ? "Ed25519" : "EdDSA";
  }
  return NULL;
}

static int key_finish(struct key *k) {
  return jwk_thumbprint_key(k, k->keyid);
}

/* Writes the private key into the open slot sk (from seed, or fresh when seed is NULL) and the public key into k. */
static int key_fill(struct key *k, unsigned char *sk, const unsigned char *seed) {
  switch (k->alg) {
  case KEY_ED25519:
    if (seed)
      crypto_sign_seed_keypair(k->pub, sk, seed);
    else
      crypto_sign_keypair(k->pub, sk);
    k->pub_len = crypto_sign_PUBLICKEYBYTES;
    return 0;
#ifdef HAVE_OPENSSL
  case KEY_P256:
  case KEY_P384: {
    size_t n = ec_field_len(k->alg);
    int r;
    if (seed)
      memcpy(sk, seed, n);
    /* Rejection sampling: a random string is a valid scalar unless it is 0
     * or >= the group order (about 2^-32 for P-256, 2^-190 for P-384). */
    for (unsigned tries = 0;; tries++) {
      if (!seed)
        randombytes_buf(sk, n);
      if ((r = ec_public_from_scalar(k->alg, sk, k->pub)) != MCPSIG_EKEY || seed || tries > 64)
        break;
    }
    if (r < 0)
      return r;
    k->pub_len = 2 * n;
    return 0;
  }
#endif
  default:
    return MCPSIG_EALG;
  }
}

/* A new slot, open for writing (close it with keypool_close()). */
static int slot_new(struct keypool *pool, struct keyslot *ret_slot, unsigned char **ret_sk) {
  int r = keypool_alloc(pool, ret_slot);
  if (r < 0)
    return r;
  if (!(*ret_sk = keypool_open(pool, *ret_slot, true))) {
    keypool_release(pool, *ret_slot);
    return -EFAULT;
  }
  return 0;
}

/* Fills a new slot from seed, or from the CSPRNG when seed is NULL. */
static int key_make(struct keypool *pool, key_alg alg, const unsigned char *seed, struct key *ret_key) {
  struct key k = { .alg = alg };
  int r;

  if (!key_alg_available(alg))
    return MCPSIG_EALG;
  unsigned char *sk = NULL;
  if ((r = slot_new(pool, &k.slot, &sk)) < 0)
    return r;
  /* The secret key is written straight into the guarded slot: no copy of it
   * ever exists on the stack. */
  r = key_fill(&k, sk, seed);
  keypool_close(pool, k.slot);
  if (r == 0)
    r = key_finish(&k);
  if (r < 0) {
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
  if (!key_alg_available(alg))
    return MCPSIG_EALG;
  if (seed_len != key_seed_len(alg))
    return MCPSIG_EKEY;
  return key_make(pool, alg, seed, ret_key);
}

int key_from_seed_stored(struct keypool *pool, key_alg alg, const unsigned char *seed, size_t seed_len,
                         const unsigned char *pub, size_t pub_len, const char *keyid, struct key *ret_key) {
  struct key k = { .alg = alg, .unverified = true };
  size_t n = key_seed_len(alg);
  int r;

  if (!key_alg_available(alg))
    return MCPSIG_EALG;
  if (seed_len != n || pub_len != (alg == KEY_ED25519 ? crypto_sign_PUBLICKEYBYTES : 2 * n) || !keyid ||
      strlen(keyid) != KEY_KEYID_LEN)
    return MCPSIG_EKEY;
  unsigned char *sk = NULL;
  if ((r = slot_new(pool, &k.slot, &sk)) < 0)
    return r;
  /* Ed25519 keeps libsodium's layout, seed || public key; EC the scalar. */
  memcpy(sk, seed, n);
  if (alg == KEY_ED25519)
    memcpy(sk + n, pub, pub_len);
  keypool_close(pool, k.slot);
  memcpy(k.pub, pub, pub_len);
  k.pub_len = pub_len;
  memcpy(k.keyid, keyid, KEY_KEYID_LEN + 1);
  *ret_key = k;
  return 0;
}

/* Derives the public key from the private one, and replaces a stored pub or keyid that differs. */
static int key_verify_stored(struct keypool *pool, struct key *k) {
  unsigned char pub[KEY_PUB_MAX];
  char keyid[KEY_KEYID_LEN + 1];
  int r = MCPSIG_EINTERNAL;
  const unsigned char *sk = keypool_open(pool, k->slot, false);
  if (!sk)
    return -EFAULT;
  if (k->alg == KEY_ED25519) {
    /* libsodium's secret key is seed || public key, and signing hashes that
     * public half: a damaged one is rewritten from the seed. */
    unsigned char tmp[crypto_sign_SECRETKEYBYTES];
    crypto_sign_seed_keypair(pub, tmp, sk);
    r = 0;
    if (sodium_memcmp(tmp, sk, sizeof(tmp)) != 0) {
      keypool_close(pool, k->slot);
      unsigned char *w = keypool_open(pool, k->slot, true);
      if (w)
        memcpy(w, tmp, sizeof(tmp));
      r = w ? 0 : -EFAULT;
    }
    sodium_memzero(tmp, sizeof(tmp));
  }
#ifdef HAVE_OPENSSL
  else {
    r = ec_public_from_scalar(k->alg, sk, pub);
  }
#endif
  keypool_close(pool, k->slot);
  if (r < 0)
    return r;
  if (sodium_memcmp(pub, k->pub, k->pub_len) != 0) {
    /* The stored public half is only a cache: the private key is the truth. */
    memcpy(k->pub, pub, k->pub_len);
    free(k->jwk);
    free(k->signature_agent);
    k->jwk = k->signature_agent = NULL;
  }
  if ((r = jwk_thumbprint_key(k, keyid)) < 0)
    return r;
  memcpy(k->keyid, keyid, sizeof(keyid));
  k->unverified = false;
  return 0;
}

int key_seed_export(struct keypool *pool, const struct key *k, unsigned char *out, size_t size,
                    size_t *ret_len) {
  size_t n = key_seed_len(k->alg);
  if (!key_alg_available(k->alg))
    return MCPSIG_EALG;
  if (size < n)
    return -ENOSPC;
  const unsigned char *sk = keypool_open(pool, k->slot, false);
  if (!sk)
    return -EFAULT;
  if (k->alg == KEY_ED25519)
    crypto_sign_ed25519_sk_to_seed(out, sk);
  else
    memcpy(out, sk, n);
  keypool_close(pool, k->slot);
  *ret_len = n;
  return 0;
}

int key_check(struct keypool *pool, struct key *k) {
  return k->unverified ? key_verify_stored(pool, k) : 0;
}

int key_sign(struct keypool *pool, struct key *k, const void *msg, size_t len,
             unsigned char sig[KEY_SIG_MAX], size_t *ret_sig_len) {
  int r = MCPSIG_EINTERNAL;
  if (!key_alg_available(k->alg))
    return MCPSIG_EALG;
  if ((r = key_check(pool, k)) < 0)
    return r;
  r = MCPSIG_EINTERNAL;
  const unsigned char *sk = keypool_open(pool, k->slot, false);
  if (!sk)
    return -EFAULT;
  if (k->alg == KEY_ED25519) {
    unsigned long long n = 0;
    if (crypto_sign_detached(sig, &n, msg, len, sk) == 0) {
      *ret_sig_len = (size_t)n;
      r = 0;
    }
  }
#ifdef HAVE_OPENSSL
  else if ((r = ec_sign(k->alg, sk, k->pub, msg, len, sig)) == 0) {
    *ret_sig_len = 2 * ec_field_len(k->alg);
  }
#endif
  keypool_close(pool, k->slot);
  return r;
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
