/* jwk.c: JWKs, thumbprints, the Signature-Agent directory, private JWK import. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "jwk.h"
#include "mcpsig.h"
#include "proto.h"

#define B64URL sodium_base64_VARIANT_URLSAFE_NO_PADDING

/* Each block carries its size in front so the free hook can wipe it. */
#define JSON_HDR 16

static void *json_wiping_malloc(size_t n) {
  if (n > SIZE_MAX - JSON_HDR)
    return NULL;
  unsigned char *p = malloc(n + JSON_HDR);
  if (!p)
    return NULL;
  memcpy(p, &n, sizeof(n));
  return p + JSON_HDR;
}

static void json_wiping_free(void *ptr) {
  if (!ptr)
    return;
  unsigned char *p = (unsigned char *)ptr - JSON_HDR;
  size_t n;
  memcpy(&n, p, sizeof(n));
  sodium_memzero(p, n + JSON_HDR);
  free(p);
}

void jwk_json_memory_install(void) {
  json_set_alloc_funcs(json_wiping_malloc, json_wiping_free);
}

/* Text from json_dumps() comes from jansson's allocator, whichever it is. */
void json_text_free(char *text) {
  json_malloc_t m;
  json_free_t f;
  json_get_alloc_funcs(&m, &f);
  f(text);
}

static int b64url(const unsigned char *data, size_t len, char *out, size_t size) {
  if (size < sodium_base64_ENCODED_LEN(len, B64URL))
    return -ENOSPC;
  sodium_bin2base64(out, size, data, len, B64URL);
  return 0;
}

int jwk_thumbprint(const json_t *jwk, char out[KEY_KEYID_LEN + 1]) {
  static const char *const okp[] = { "crv", "kty", "x", NULL };
  static const char *const ec[] = { "crv", "kty", "x", "y", NULL };
  static const char *const rsa[] = { "e", "kty", "n", NULL };
  const char *const *members;
  const char *kty = json_string_value(json_object_get(jwk, "kty"));
  unsigned char h[32];

  if (!kty)
    return MCPSIG_EKEY;
  if (strcmp(kty, "OKP") == 0)
    members = okp;
  else if (strcmp(kty, "EC") == 0)
    members = ec;
  else if (strcmp(kty, "RSA") == 0)
    members = rsa;
  else
    return MCPSIG_EKEY;

  /* RFC 7638 §3: only the required members, sorted, no whitespace. */
  json_t *req = json_object();
  if (!req)
    return -ENOMEM;
  for (size_t i = 0; members[i]; i++) {
    json_t *v = json_object_get(jwk, members[i]);
    if (!json_is_string(v) || json_object_set(req, members[i], v) != 0) {
      json_decref(req);
      return MCPSIG_EKEY;
    }
  }
  char *text = json_dumps(req, JSON_COMPACT | JSON_SORT_KEYS);
  json_decref(req);
  if (!text)
    return -ENOMEM;
  proto_sha256(text, strlen(text), h);
  json_text_free(text);
  return b64url(h, sizeof(h), out, KEY_KEYID_LEN + 1);
}

static json_t *jwk_public_object(const struct key *k) {
  char x[64];
  if (k->alg != KEY_ED25519 || b64url(k->pub, k->pub_len, x, sizeof(x)) < 0)
    return NULL;
  /* Public members only, in the order of RFC 8037's examples; no "alg",
   * because the directory draft restricts it to HTTP signature names. */
  return json_pack("{s:s, s:s, s:s}", "kty", "OKP", "crv", "Ed25519", "x", x);
}

int jwk_thumbprint_key(const struct key *k, char out[KEY_KEYID_LEN + 1]) {
  json_t *o = jwk_public_object(k);
  if (!o)
    return MCPSIG_EALG;
  int r = jwk_thumbprint(o, out);
  json_decref(o);
  return r;
}

int jwk_public_json(const struct key *k, char **ret_json) {
  json_t *o = jwk_public_object(k);
  if (!o)
    return MCPSIG_EALG;
  char *text = json_dumps(o, JSON_COMPACT);
  json_decref(o);
  if (!text)
    return -ENOMEM;
  /* Hand out plain malloc memory so callers free() it as documented. */
  char *copy = strdup(text);
  json_text_free(text);
  if (!copy)
    return -ENOMEM;
  *ret_json = copy;
  return 0;
}

int jwk_signature_agent(const char *jwk_json, char **ret_value) {
  return jwk_signature_agent_set(&jwk_json, 1, ret_value);
}

int jwk_signature_agent_set(const char *const *jwk_json, size_t n, char **ret_value) {
  static const char prefix[] = "\"data:application/http-message-signatures-directory+json;base64,";
  json_error_t jerr;
  json_t *keys = json_array();
  if (!keys)
    return -ENOMEM;
  for (size_t i = 0; i < n; i++) {
    json_t *jwk = json_loads(jwk_json[i], 0, &jerr);
    if (!jwk || json_array_append_new(keys, jwk) < 0) {
      json_decref(keys);
      return MCPSIG_EINTERNAL;
    }
  }
  json_t *dir = json_pack("{s:o}", "keys", keys);
  if (!dir)
    return -ENOMEM;
  char *text = json_dumps(dir, JSON_COMPACT);
  json_decref(dir);
  if (!text)
    return -ENOMEM;
  size_t tlen = strlen(text);
  size_t b64len = sodium_base64_ENCODED_LEN(tlen, sodium_base64_VARIANT_ORIGINAL);
  char *value = malloc(sizeof(prefix) - 1 + b64len + 2);
  if (!value) {
    json_text_free(text);
    return -ENOMEM;
  }
  memcpy(value, prefix, sizeof(prefix) - 1);
  sodium_bin2base64(value + sizeof(prefix) - 1, b64len, (const unsigned char *)text, tlen,
                    sodium_base64_VARIANT_ORIGINAL);
  strcat(value, "\"");
  json_text_free(text);
  *ret_value = value;
  return 0;
}

static int ierr(char *err, size_t errlen, const char *msg) {
  if (err && errlen)
    snprintf(err, errlen, "%s", msg);
  return MCPSIG_EKEY;
}

int jwk_import_private(const void *json, size_t len, key_alg *ret_alg, unsigned char *seed,
                       size_t seed_size, size_t *ret_seed_len, char *err, size_t errlen) {
  json_error_t jerr;
  unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
  unsigned char x[crypto_sign_PUBLICKEYBYTES];
  size_t n = 0;
  int r = 0;

  json_t *o = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
  if (!o)
    return ierr(err, errlen, "the JWK is not valid JSON");
  const char *kty = json_string_value(json_object_get(o, "kty"));
  const char *crv = json_string_value(json_object_get(o, "crv"));
  const char *d = json_string_value(json_object_get(o, "d"));
  json_t *xv = json_object_get(o, "x");
  if (!json_is_object(o) || !kty || strcmp(kty, "OKP") != 0 || !crv || strcmp(crv, "Ed25519") != 0) {
    r = ierr(err, errlen, "only Ed25519 JWKs (kty \"OKP\", crv \"Ed25519\") can be imported");
    goto out;
  }
  if (!d) {
    r = ierr(err, errlen, "the JWK has no private member \"d\"");
    goto out;
  }
  if (seed_size < crypto_sign_SEEDBYTES ||
      sodium_base642bin(seed, seed_size, d, strlen(d), NULL, &n, NULL, B64URL) != 0 ||
      n != crypto_sign_SEEDBYTES) {
    r = ierr(err, errlen, "the JWK's \"d\" is not 32 bytes of unpadded base64url");
    goto out;
  }
  if (xv) {
    size_t xn = 0;
    const char *xs = json_string_value(xv);
    crypto_sign_seed_keypair(pk, sk, seed);
    if (!xs || sodium_base642bin(x, sizeof(x), xs, strlen(xs), NULL, &xn, NULL, B64URL) != 0 ||
        xn != sizeof(x) || sodium_memcmp(x, pk, sizeof(x)) != 0) {
      r = ierr(err, errlen, "the JWK's \"x\" does not match its \"d\"");
      goto out;
    }
  }
  *ret_alg = KEY_ED25519;
  *ret_seed_len = n;
out:
  if (r < 0)
    sodium_memzero(seed, seed_size);
  sodium_memzero(sk, sizeof(sk));
  json_decref(o);
  return r;
}
