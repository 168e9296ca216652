/* jwk.c: JWKs, thumbprints, the Signature-Agent directory, private JWK import. */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "ec.h"
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

/* The JWK "crv" of a key type. */
static const char *jwk_crv(key_alg alg) {
  switch (alg) {
  case KEY_ED25519:
    return "Ed25519";
  case KEY_P256:
    return "P-256";
  case KEY_P384:
    return "P-384";
  }
  return NULL;
}

json_t *jwk_public_object(const struct key *k) {
  char x[72], y[72];
  size_t n = ec_field_len(k->alg);

  if (k->alg == KEY_ED25519) {
    if (k->pub_len != crypto_sign_PUBLICKEYBYTES || b64url(k->pub, k->pub_len, x, sizeof(x)) < 0)
      return NULL;
    /* Public members only, in the order of RFC 8037's examples; no "alg",
     * because the directory draft restricts it to HTTP signature names. */
    return json_pack("{s:s, s:s, s:s}", "kty", "OKP", "crv", "Ed25519", "x", x);
  }
  /* EC: x and y at the full field length, leading zero bytes kept
   * (RFC 7518 §6.2.1.2-3), or about one key in 128 gets a wrong thumbprint. */
  if (n == 0 || k->pub_len != 2 * n || b64url(k->pub, n, x, sizeof(x)) < 0 || b64url(k->pub + n, n, y, sizeof(y)) < 0)
    return NULL;
  return json_pack("{s:s, s:s, s:s, s:s}", "kty", "EC", "crv", jwk_crv(k->alg), "x", x, "y", y);
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

/* Decodes the unpadded base64url member name of o into exactly len bytes. */
static bool member_bytes(const json_t *o, const char *name, unsigned char *out, size_t len) {
  const char *v = json_string_value(json_object_get(o, name));
  size_t n = 0;
  return v && sodium_base642bin(out, len, v, strlen(v), NULL, &n, NULL, B64URL) == 0 && n == len;
}

/* The key type named by a private JWK's kty and crv. */
static int import_type(const json_t *o, key_alg *ret_alg, char *err, size_t errlen) {
  const char *kty = json_string_value(json_object_get(o, "kty"));
  const char *crv = json_string_value(json_object_get(o, "crv"));
  static const key_alg all[] = { KEY_ED25519, KEY_P256, KEY_P384 };

  for (size_t i = 0; kty && crv && i < sizeof(all) / sizeof(all[0]); i++)
    if (strcmp(crv, jwk_crv(all[i])) == 0 && strcmp(kty, all[i] == KEY_ED25519 ? "OKP" : "EC") == 0) {
      if (!key_alg_available(all[i]))
        return ierr(err, errlen, "EC keys need OpenSSL libcrypto, and this agent was built without it");
      *ret_alg = all[i];
      return 0;
    }
  return ierr(err, errlen,
              "only Ed25519 (kty \"OKP\", crv \"Ed25519\") and EC P-256 or P-384 (kty \"EC\") JWKs can be imported");
}

/* The public key that belongs to a private key, written to pub (x or x||y). */
static int import_public(key_alg alg, const unsigned char *seed, unsigned char *pub) {
  if (alg == KEY_ED25519) {
    unsigned char sk[crypto_sign_SECRETKEYBYTES];
    crypto_sign_seed_keypair(pub, sk, seed);
    sodium_memzero(sk, sizeof(sk));
    return 0;
  }
#ifdef HAVE_OPENSSL
  return ec_public_from_scalar(alg, seed, pub);
#else
  return MCPSIG_EALG;
#endif
}

int jwk_import_private(const void *json, size_t len, key_alg *ret_alg, unsigned char *seed,
                       size_t seed_size, size_t *ret_seed_len, char *err, size_t errlen) {
  json_error_t jerr;
  unsigned char pub[KEY_PUB_MAX], given[KEY_PUB_MAX];
  key_alg alg = 0;
  size_t n, coord;
  int r = 0;

  json_t *o = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
  if (!o)
    return ierr(err, errlen, "the JWK is not valid JSON");
  if (!json_is_object(o)) {
    r = ierr(err, errlen, "the JWK is not a JSON object");
    goto out;
  }
  if ((r = import_type(o, &alg, err, errlen)) < 0)
    goto out;
  n = key_seed_len(alg);
  if (!json_object_get(o, "d")) {
    r = ierr(err, errlen, "the JWK has no private member \"d\"");
    goto out;
  }
  /* RFC 8037 §2 and RFC 7518 §6.2.2.1: d has exactly the key's length. */
  if (seed_size < n || !member_bytes(o, "d", seed, n)) {
    if (err && errlen)
      snprintf(err, errlen, "the JWK's \"d\" is not %zu bytes of unpadded base64url", n);
    r = MCPSIG_EKEY;
    goto out;
  }
  if (import_public(alg, seed, pub) < 0) {
    r = ierr(err, errlen, "the JWK's \"d\" is not a valid private key for its curve (zero, or not below the order)");
    goto out;
  }
  /* The public members, when present, must belong to d. */
  coord = alg == KEY_ED25519 ? crypto_sign_PUBLICKEYBYTES : n;
  if (json_object_get(o, "x") &&
      (!member_bytes(o, "x", given, coord) || sodium_memcmp(given, pub, coord) != 0)) {
    r = ierr(err, errlen, "the JWK's \"x\" does not match its \"d\"");
    goto out;
  }
  if (alg != KEY_ED25519 && json_object_get(o, "y") &&
      (!member_bytes(o, "y", given, coord) || sodium_memcmp(given, pub + coord, coord) != 0)) {
    r = ierr(err, errlen, "the JWK's \"y\" does not match its \"d\"");
    goto out;
  }
  *ret_alg = alg;
  *ret_seed_len = n;
out:
  if (r < 0)
    sodium_memzero(seed, seed_size);
  json_decref(o);
  return r;
}
