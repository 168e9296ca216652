/*
 * test-dpop.c: ECDSA keys and DPoP proofs, through the socket-free
 * dispatcher and the key layer: RFC 9449 and RFC 9421 vectors, the
 * SPEC-NOTES 8.6(c) proof byte for byte, fixed-width r||s, key-type choice,
 * and every refusal. Independent verification of the same output is in
 * tests/node/dpop.mjs (jose, http-message-signatures).
 */
#include "config.h"

#include <time.h>
#include <jansson.h>
#include <sodium.h>

#include "dpop.h"
#include "ec.h"
#include "jwk.h"
#include "key.h"
#include "tap.h"
#include "vector-agent.h"

#define B64URL sodium_base64_VARIANT_URLSAFE_NO_PADDING

/* Decodes one base64url part of a JWS (up to the next '.' or the end) into a NUL-terminated buffer. */
static size_t part_decode(const char *jws, unsigned idx, unsigned char *out, size_t size) {
  const char *p = jws;
  for (unsigned i = 0; i < idx && p; i++)
    p = strchr(p, '.') ? strchr(p, '.') + 1 : NULL;
  if (!p)
    return 0;
  size_t len = strcspn(p, "."), n = 0;
  if (sodium_base642bin(out, size - 1, p, len, NULL, &n, NULL, B64URL) != 0)
    return 0;
  out[n] = '\0';
  return n;
}

static json_t *part_json(const char *jws, unsigned idx) {
  unsigned char buf[8192];
  json_error_t e;
  if (part_decode(jws, idx, buf, sizeof(buf)) == 0)
    return NULL;
  return json_loads((const char *)buf, JSON_REJECT_DUPLICATES, &e);
}

static const char *jstr(json_t *o, const char *k) {
  return json_string_value(json_object_get(o, k));
}

/* Verifies a proof's signature with the jwk it carries, by our own key code (Node checks it independently). */
static int proof_verifies(const char *jws) {
  json_t *h = part_json(jws, 0);
  unsigned char sig[KEY_SIG_MAX + 1], pub[KEY_PUB_MAX];
  size_t siglen = part_decode(jws, 2, sig, sizeof(sig)), n = 0;
  const char *last = strrchr(jws, '.');
  int ok = 0;
  json_t *jwk = json_object_get(h, "jwk");
  const char *crv = jstr(jwk, "crv"), *x = jstr(jwk, "x"), *y = jstr(jwk, "y");
  if (!h || !crv || !x || !last)
    goto out;
  if (strcmp(crv, "Ed25519") == 0) {
    ok = sodium_base642bin(pub, sizeof(pub), x, strlen(x), NULL, &n, NULL, B64URL) == 0 && n == 32 && siglen == 64 &&
         crypto_sign_verify_detached(sig, (const unsigned char *)jws, (size_t)(last - jws), pub) == 0;
  }
#ifdef HAVE_OPENSSL
  else {
    key_alg alg = strcmp(crv, "P-256") == 0 ? KEY_P256 : KEY_P384;
    size_t f = ec_field_len(alg), m = 0;
    ok = y && sodium_base642bin(pub, f, x, strlen(x), NULL, &n, NULL, B64URL) == 0 && n == f &&
         sodium_base642bin(pub + f, f, y, strlen(y), NULL, &m, NULL, B64URL) == 0 && m == f &&
         ec_verify(alg, pub, jws, (size_t)(last - jws), sig, siglen) == 1;
  }
#endif
out:
  json_decref(h);
  return ok;
}

static int dpop(struct agent *a, struct proto_dpop_params *p, struct proto_dpop_result *res, struct reply *rep) {
  return dcall(a, "dpop.proof", &proto_dpop_params_schema, p, &proto_dpop_result_schema, res, rep);
}

static size_t n_bindings(struct agent *a) {
  return a->n_bindings;
}

/* ---- vectors ---- */

static void test_rfc9449_vectors(void) {
  json_error_t e;
  char out[KEY_KEYID_LEN + 1], ath[DPOP_ATH_LEN];
  /* RFC 9449 §6.1 example key and jkt. */
  json_t *jwk = json_loads("{\"kty\":\"EC\",\"x\":\"l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs\","
                           "\"y\":\"9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA\",\"crv\":\"P-256\"}", 0, &e);
  ok(jwk && jwk_thumbprint(jwk, out) == 0, "RFC 9449 §6.1: the example EC JWK has a thumbprint");
  is_str(out, "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I", "RFC 9449 §6.1: jkt");
  json_object_set_new(jwk, "y", json_string("9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDB"));
  ok(jwk_thumbprint(jwk, out) == 0 && strcmp(out, "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I") != 0,
     "forgery: a changed y changes the jkt");
  json_decref(jwk);

  /* RFC 9449 §7.1 ath. */
  dpop_ath("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU", ath);
  is_str(ath, "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo", "RFC 9449 §7.1: ath of the example token");
  dpop_ath("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxV", ath);
  ok(strcmp(ath, "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo") != 0, "forgery: a changed token changes ath");
}

#ifdef HAVE_OPENSSL
/* RFC 9421 B.1.3 test-key-ecc-p256 and the B.2.4 response signature. */
static const char b13_jwk[] = "{\"kty\":\"EC\",\"crv\":\"P-256\","
                              "\"x\":\"qIVYZVLCrPZHGHjP17CTW0_-D9Lfw0EkjqF7xB4FivA\","
                              "\"y\":\"Mc4nN9LTDOBhfoUeg8Ye9WedFRhnZXZJA12Qp0zZ6F0\","
                              "\"d\":\"UpuF81l-kOxbjf7T4mNSv0r5tN67Gim7rnf6EFpcYDs\"}";
static const char b24_base[] =
  "\"@status\": 200\n"
  "\"content-type\": application/json\n"
  "\"content-digest\": sha-512=:mEWXIS7MaLRuGgxOBdODa3xqM1XdEvxoYhvlCFJ41QJgJc4GTsPp29l5oGX69wWdXymyU0rjJuahq4l5aGgfLQ==:\n"
  "\"content-length\": 23\n"
  "\"@signature-params\": (\"@status\" \"content-type\" \"content-digest\" \"content-length\");created=1618884473"
  ";keyid=\"test-key-ecc-p256\"";
static const char b24_sig[] = "wNmSUAhwb5LxtOtOpNa6W5xj067m5hFrj0XQ4fvpaCLx0NKocgPquLgyahnzDnDAUy5eCdlYUEkLIj+32oiasw==";

static void test_rfc9421_b24(void) {
  struct keypool *pool = NULL;
  unsigned char seed[KEY_SEED_MAX], sig[KEY_SIG_MAX], der[80];
  size_t seed_len = 0, siglen = 0;
  key_alg alg = 0;
  char err[256] = "", tp[KEY_KEYID_LEN + 1];
  struct key k;

  keypool_new(&pool);
  ok(jwk_import_private(b13_jwk, strlen(b13_jwk), &alg, seed, sizeof(seed), &seed_len, err, sizeof(err)) == 0 &&
       alg == KEY_P256 && seed_len == 32,
     "B.1.3: the private EC JWK imports as a P-256 key (x and y checked against d)");
  ok(key_from_seed(pool, alg, seed, seed_len, &k) == 0, "B.1.3: the key loads from its scalar");
  sodium_memzero(seed, sizeof(seed));
  ok(jwk_thumbprint_key(&k, tp) == 0, "B.1.3: thumbprint");
  is_str(tp, "ydQXMtvbsOsZyFir-Y7A8t7fKEM1gbKPvyFkdpu4fvI", "B.1.3: RFC 7638 thumbprint of test-key-ecc-p256");
  const char *jwk = NULL;
  ok(key_public_values(&k, &jwk, NULL) == 0, "B.1.3: public JWK");
  is_str(jwk,
         "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"qIVYZVLCrPZHGHjP17CTW0_-D9Lfw0EkjqF7xB4FivA\","
         "\"y\":\"Mc4nN9LTDOBhfoUeg8Ye9WedFRhnZXZJA12Qp0zZ6F0\"}",
         "B.1.3: the public JWK has kty, crv, x, y and nothing else");

  ok(sodium_base642bin(sig, sizeof(sig), b24_sig, strlen(b24_sig), NULL, &siglen, NULL,
                       sodium_base64_VARIANT_ORIGINAL) == 0 && siglen == 64,
     "B.2.4: the signature is 64 bytes of r||s");
  ok(ec_verify(KEY_P256, k.pub, b24_base, strlen(b24_base), sig, siglen) == 1,
     "B.2.4: the RFC's r||s signature verifies through libcrypto under the key from the JWK");
  sig[17] ^= 0x01;
  ok(ec_verify(KEY_P256, k.pub, b24_base, strlen(b24_base), sig, siglen) == 0, "forgery: one flipped bit in r fails");
  sig[17] ^= 0x01;
  sig[50] ^= 0x80;
  ok(ec_verify(KEY_P256, k.pub, b24_base, strlen(b24_base), sig, siglen) == 0, "forgery: one flipped bit in s fails");
  sig[50] ^= 0x80;
  ok(ec_verify(KEY_P256, k.pub, b24_base, strlen(b24_base) - 1, sig, siglen) == 0,
     "forgery: the base without its last byte fails");
  /* The same signature in DER is refused: the wire form is r||s only. */
  der[0] = 0x30;
  der[1] = 68;
  der[2] = 0x02, der[3] = 32, memcpy(der + 4, sig, 32);
  der[36] = 0x02, der[37] = 32, memcpy(der + 38, sig + 32, 32);
  ok((sig[0] & 0x80) || (sig[32] & 0x80) || ec_verify(KEY_P256, k.pub, b24_base, strlen(b24_base), der, 70) == 0,
     "a DER-encoded signature is not accepted as r||s");

  /* Our own signatures: r||s of exactly 64 bytes, never DER, and they verify. */
  ok(key_sign(pool, &k, b24_base, strlen(b24_base), sig, &siglen) == 0 && siglen == 64 &&
       ec_verify(KEY_P256, k.pub, b24_base, strlen(b24_base), sig, siglen) == 1,
     "test-key-ecc-p256 signs the B.2.4 base and the signature verifies");
  key_destroy(pool, &k);
  keypool_free(pool);
}

/* Half the group order n of P-256 and P-384 (SEC 2, §2.4.2 and §2.5.1), big-endian. */
static const char half_n_p256[] = "7FFFFFFF800000007FFFFFFFFFFFFFFFDE737D56D38BCF4279DCE5617E3192A8";
static const char half_n_p384[] =
  "7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFE3B1A6C0FA1B96EFAC0D06D9245853BD76760CB5666294B9";

/* n/2 of the curve whose field is n bytes (32 or 48), big-endian, into half. */
static void half_order(size_t n, unsigned char half[48]) {
  const char *hex = n == 32 ? half_n_p256 : half_n_p384;
  for (size_t i = 0; i < n; i++) {
    unsigned v;
    sscanf(hex + 2 * i, "%2x", &v);
    half[i] = (unsigned char)v;
  }
}

/* Whether the s half of sig (r||s, n bytes each) is at most n/2: low-S. */
static bool low_s(const unsigned char *sig, size_t n) {
  unsigned char half[48];
  half_order(n, half);
  return memcmp(sig + n, half, n) <= 0;
}

/* The high-S twin of a low-S signature: (r, n - s). */
static void high_s_twin(const unsigned char *sig, size_t n, unsigned char *out) {
  /* n - s = 2 * (n/2) + 1 - s, since n is odd. */
  unsigned char half[48];
  half_order(n, half);
  memcpy(out, sig, n);
  int carry = 1, borrow = 0;
  for (size_t i = n; i-- > 0;) {
    int twice = 2 * half[i] + carry;
    carry = twice >> 8;
    int d = (twice & 255) - sig[n + i] - borrow;
    borrow = d < 0;
    out[n + i] = (unsigned char)(d + (borrow ? 256 : 0));
  }
}

/* ECDSA is randomized, so the format is checked over many signatures: DER would show as 70-72 / 102-104 bytes. */
static void test_fixed_width(key_alg alg, size_t want) {
  struct keypool *pool = NULL;
  struct key k;
  unsigned char sig[KEY_SIG_MAX], twin[KEY_SIG_MAX], msg[64];
  size_t siglen = 0;
  unsigned bad_len = 0, bad_verify = 0, high_r = 0, low_r = 0, high_s = 0, twins_verify = 0;
  char desc[160];

  keypool_new(&pool);
  ok(key_generate(pool, alg, &k) == 0 && k.pub_len == want, "a fresh EC key");
  for (unsigned i = 0; i < 1000; i++) {
    randombytes_buf(msg, sizeof(msg));
    if (key_sign(pool, &k, msg, sizeof(msg), sig, &siglen) != 0 || siglen != want) {
      bad_len++;
      continue;
    }
    if (ec_verify(alg, k.pub, msg, sizeof(msg), sig, siglen) != 1)
      bad_verify++;
    if (sig[0] & 0x80)
      high_r++;   /* DER would need a 0x00 pad byte here */
    if (sig[0] == 0)
      low_r++;    /* DER would drop this byte */
    if (!low_s(sig, siglen / 2))
      high_s++;
    high_s_twin(sig, siglen / 2, twin);
    if (!low_s(twin, siglen / 2) && ec_verify(alg, k.pub, msg, sizeof(msg), twin, siglen) == 1)
      twins_verify++;
  }
  snprintf(desc, sizeof(desc), "%s: 1000 signatures, every one exactly %zu bytes (never DER)", key_alg_name(alg), want);
  ok(bad_len == 0, desc);
  snprintf(desc, sizeof(desc), "%s: all 1000 verify through libcrypto", key_alg_name(alg));
  ok(bad_verify == 0, desc);
  snprintf(desc, sizeof(desc), "%s: all 1000 are low-S (s <= n/2), which strict verifiers require", key_alg_name(alg));
  ok(high_s == 0 && bad_len == 0, desc);
  snprintf(desc, sizeof(desc), "%s: control: the high-S twin (r, n - s) of each is also valid to libcrypto (%u of 1000)",
           key_alg_name(alg), twins_verify);
  ok(twins_verify == 1000, desc);
  snprintf(desc, sizeof(desc), "%s: the sample has r with the top bit set (where DER would be longer)", key_alg_name(alg));
  ok(high_r > 0, desc);
  (void)low_r;
  key_destroy(pool, &k);
  keypool_free(pool);
}

/* About one key in 256 has a leading zero byte in x: it must stay in the JWK. */
static void test_coordinate_padding(void) {
  struct keypool *pool = NULL;
  struct key k;
  int found = 0;
  keypool_new(&pool);
  for (unsigned i = 0; i < 20000 && !found; i++) {
    if (key_generate(pool, KEY_P256, &k) != 0)
      break;
    if (k.pub[0] == 0) {
      const char *jwk = NULL;
      json_error_t e;
      char tp[KEY_KEYID_LEN + 1];
      unsigned char x[40];
      size_t n = 0;
      found = 1;
      ok(key_public_values(&k, &jwk, NULL) == 0, "a key whose x starts with a zero byte");
      json_t *o = json_loads(jwk, 0, &e);
      const char *xs = jstr(o, "x");
      ok(xs && strlen(xs) == 43 && sodium_base642bin(x, sizeof(x), xs, 43, NULL, &n, NULL, B64URL) == 0 && n == 32 &&
           x[0] == 0,
         "its JWK x is the full 32 bytes, leading zero kept");
      ok(jwk_thumbprint(o, tp) == 0 && strcmp(tp, k.keyid) == 0, "its keyid is the thumbprint of that JWK");
      json_decref(o);
    }
    key_destroy(pool, &k);
  }
  ok(found, "a key with a leading zero byte in x was found among 20000");
  keypool_free(pool);
}

static void test_ec_import_refusals(void) {
  unsigned char seed[KEY_SEED_MAX];
  size_t n = 0;
  key_alg alg;
  char err[256];
  static const char *const bad[][2] = {
    { "{\"kty\":\"EC\",\"crv\":\"P-256\",\"d\":\"UpuF81l-kOxbjf7T4mNSv0r5tN67Gim7rnf6EFpcYD\"}", "32 bytes" },
    { "{\"kty\":\"EC\",\"crv\":\"P-256\",\"d\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}", "not a valid private key" },
    { "{\"kty\":\"EC\",\"crv\":\"P-256\",\"d\":\"_____________________________________w\"}", "32 bytes" },
    { "{\"kty\":\"EC\",\"crv\":\"P-256\",\"d\":\"__________________________________________8\"}", "not a valid private key" },
    { "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"qIVYZVLCrPZHGHjP17CTW0_-D9Lfw0EkjqF7xB4FivE\","
      "\"d\":\"UpuF81l-kOxbjf7T4mNSv0r5tN67Gim7rnf6EFpcYDs\"}", "\"x\" does not match" },
    { "{\"kty\":\"EC\",\"crv\":\"P-256\",\"y\":\"Mc4nN9LTDOBhfoUeg8Ye9WedFRhnZXZJA12Qp0zZ6F1\","
      "\"d\":\"UpuF81l-kOxbjf7T4mNSv0r5tN67Gim7rnf6EFpcYDs\"}", "\"y\" does not match" },
    { "{\"kty\":\"EC\",\"crv\":\"P-521\",\"d\":\"UpuF81l-kOxbjf7T4mNSv0r5tN67Gim7rnf6EFpcYDs\"}", "P-384" },
    { "{\"kty\":\"EC\",\"crv\":\"P-384\",\"d\":\"UpuF81l-kOxbjf7T4mNSv0r5tN67Gim7rnf6EFpcYDs\"}", "48 bytes" },
    { "{\"kty\":\"OKP\",\"crv\":\"P-256\",\"d\":\"UpuF81l-kOxbjf7T4mNSv0r5tN67Gim7rnf6EFpcYDs\"}", "can be imported" },
    { "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"qIVYZVLCrPZHGHjP17CTW0_-D9Lfw0EkjqF7xB4FivA\"}", "no private member" },
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    char desc[200];
    err[0] = '\0';
    int r = jwk_import_private(bad[i][0], strlen(bad[i][0]), &alg, seed, sizeof(seed), &n, err, sizeof(err));
    snprintf(desc, sizeof(desc), "EC JWK import refused with a reason naming \"%s\"", bad[i][1]);
    ok(r == MCPSIG_EKEY && strstr(err, bad[i][1]), desc);
    if (r != MCPSIG_EKEY || !strstr(err, bad[i][1]))
      printf("#   got: %d %s\n", r, err);
  }
  /* A P-384 key round-trips through import. */
  struct keypool *pool = NULL;
  struct key k, k2;
  unsigned char d[48];
  size_t dn = 0;
  char jwk[400], xs[80], ys[80], ds[80];
  keypool_new(&pool);
  ok(key_generate(pool, KEY_P384, &k) == 0 && key_seed_export(pool, &k, d, sizeof(d), &dn) == 0 && dn == 48,
     "a P-384 key exports its 48-byte scalar");
  sodium_bin2base64(xs, sizeof(xs), k.pub, 48, B64URL);
  sodium_bin2base64(ys, sizeof(ys), k.pub + 48, 48, B64URL);
  sodium_bin2base64(ds, sizeof(ds), d, 48, B64URL);
  snprintf(jwk, sizeof(jwk), "{\"kty\":\"EC\",\"crv\":\"P-384\",\"x\":\"%s\",\"y\":\"%s\",\"d\":\"%s\"}", xs, ys, ds);
  ok(jwk_import_private(jwk, strlen(jwk), &alg, seed, sizeof(seed), &n, err, sizeof(err)) == 0 && alg == KEY_P384 &&
       n == 48 && key_from_seed(pool, alg, seed, n, &k2) == 0 && strcmp(k2.keyid, k.keyid) == 0,
     "a P-384 JWK imports to the same key");
  key_destroy(pool, &k);
  key_destroy(pool, &k2);
  sodium_memzero(d, sizeof(d));
  sodium_memzero(ds, sizeof(ds));
  sodium_memzero(jwk, sizeof(jwk));
  sodium_memzero(seed, sizeof(seed));
  keypool_free(pool);
}
#endif

/* ---- dpop.proof through the dispatcher ---- */

#define VEC_C_PROOF                                                                                              \
  "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVkRFNBIiwiandrIjp7Imt0eSI6Ik9LUCIsImNydiI6IkVkMjU1MTkiLCJ4IjoiSnJRTGo1UF84OWlY" \
  "RVM5LXZGZ3JJeTI5Y2xGOUNDX29QUHN3M2M1RDBicyJ9fQ.eyJqdGkiOiJBQUVDQXdRRkJnY0lDUW9MREEwT0R3IiwiaHRtIjoiUE9TVCIsImh0" \
  "dSI6Imh0dHBzOi8vbWNwLmV4YW1wbGUuY29tL21jcCIsImlhdCI6MTc2NzIyNTYwMCwiYXRoIjoiZlVIeU8ycjJaM0RaNTNFc05yV0JiMHhXWG9h" \
  "Tnk1OUlpS0NBcWtzbVFFbyJ9.2A14pGSlWt46jSbv3c8LDzx7VvrMUCwCnYWqxYg3_TsXVrPbOpl6Jeg57Tw-N-IMsrM6dusQ1FGovi4qGLJNBQ"

static void test_vector_86c(void) {
  struct agent a;
  char dir[256];
  struct reply rep;
  struct proto_dpop_result res;

  if (!ok(vector_agent_new(&a, dir, sizeof(dir), "https://mcp.example.com") == 0,
          "8.6(c): agent with test-key-ed25519 for https://mcp.example.com"))
    return;

  struct proto_dpop_params p = { .origin = "https://mcp.example.com", .htm = "POST",
                                 .htu = "https://mcp.example.com/mcp",
                                 .access_token = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU" };
  next_random_byte = 0;
  ok(dpop(&a, &p, &res, &rep) == 0, "8.6(c): dpop.proof succeeds");
  is_str(res.proof, VEC_C_PROOF, "8.6(c): the EdDSA proof, byte for byte");
  is_str(res.jkt, "poqkLGiymh_W0uP6PZFw-dvez3QJT5SolqXBCW38r0U", "8.6(c): jkt is the key's thumbprint");
  is_str(res.alg, "EdDSA", "8.6(c): alg EdDSA");
  ok(!res.created, "8.6(c): the imported binding was used, not a new one");
  ok(proof_verifies(res.proof), "8.6(c): the proof verifies under its own jwk");
  reply_free(&rep);

  /* Forgeries of the inputs: each changes the proof. */
  p.access_token = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxV";
  next_random_byte = 0;
  ok(dpop(&a, &p, &res, &rep) == 0 && strcmp(res.proof, VEC_C_PROOF) != 0, "forgery: another token, another proof");
  reply_free(&rep);
  p.access_token = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU";
  p.htu = "https://mcp.example.com/mcq";
  next_random_byte = 0;
  ok(dpop(&a, &p, &res, &rep) == 0 && strcmp(res.proof, VEC_C_PROOF) != 0, "forgery: another htu, another proof");
  reply_free(&rep);

  /* Query and fragment are not part of htu: the same proof results. */
  p.htu = "https://mcp.example.com/mcp?session=1&x=%22#frag";
  next_random_byte = 0;
  ok(dpop(&a, &p, &res, &rep) == 0, "a URL with a query and a fragment is accepted");
  is_str(res.proof, VEC_C_PROOF, "htu drops the query and the fragment (same proof as 8.6(c))");
  reply_free(&rep);

  /* The "Ed25519" JWS name (RFC 9864) when the server lists only that. */
  const char *only_ed25519[] = { "Ed25519" }, *both[] = { "Ed25519", "EdDSA" };
  p.algorithms = only_ed25519;
  p.n_algorithms = 1;
  ok(dpop(&a, &p, &res, &rep) == 0 && strcmp(res.alg, "Ed25519") == 0, "a list with only Ed25519 gives alg Ed25519");
  json_t *h = part_json(res.proof, 0);
  is_str(jstr(h, "alg"), "Ed25519", "... and the header says Ed25519");
  json_decref(h);
  ok(proof_verifies(res.proof), "... and it verifies");
  reply_free(&rep);
  p.algorithms = both;
  p.n_algorithms = 2;
  ok(dpop(&a, &p, &res, &rep) == 0 && strcmp(res.alg, "EdDSA") == 0, "a list with both gives EdDSA");
  reply_free(&rep);
  test_agent_free(&a, dir);
}

static void test_claims_and_escaping(void) {
  struct agent a;
  char dir[256];
  struct reply rep;
  struct proto_dpop_result res;

  if (!ok(test_agent_new(&a, dir, sizeof(dir)) == 0, "agent on a temporary keystore"))
    return;
  struct proto_dpop_params p = { .origin = "https://mcp.example.com", .htm = "GET",
                                 .htu = "https://as.example.com/p\"q\\r/s?x=\"1\"#f\"", .nonce = "n!#$[]^~-._" };
  ok(dpop(&a, &p, &res, &rep) == 0, "a URL with '\"' and '\\' and a nonce of edge NQCHARs give a proof");
  json_t *h = part_json(res.proof, 0), *c = part_json(res.proof, 1);
  ok(h && c, "header and payload are valid JSON");
  is_str(jstr(c, "htu"), "https://as.example.com/p\"q\\r/s", "htu round-trips through JSON, escaped, without query");
  is_str(jstr(c, "nonce"), "n!#$[]^~-._", "nonce copied verbatim");
  is_str(jstr(c, "htm"), "GET", "htm");
  ok(!json_object_get(c, "ath"), "no ath without a token");
  ok(json_is_integer(json_object_get(c, "iat")) && llabs(json_integer_value(json_object_get(c, "iat")) - time(NULL)) < 600,
     "iat is an integer NumericDate near now");
  const char *jti = jstr(c, "jti");
  unsigned char raw[32];
  size_t n = 0;
  ok(jti && sodium_base642bin(raw, sizeof(raw), jti, strlen(jti), NULL, &n, NULL, B64URL) == 0 && n == 16,
     "jti is 128 bits of base64url");
  is_str(jstr(h, "typ"), "dpop+jwt", "typ dpop+jwt");
  json_t *jwk = json_object_get(h, "jwk");
  ok(json_object_size(jwk) == 3 && !json_object_get(jwk, "d") && !json_object_get(jwk, "alg"),
     "jwk has only kty, crv and x (no private member)");
  ok(json_object_size(h) == 3 && json_object_size(c) == 5, "no other header or claim members");
  ok(proof_verifies(res.proof), "the proof verifies");
  char first_jti[64];
  snprintf(first_jti, sizeof(first_jti), "%s", jti ? jti : "");
  json_decref(h);
  json_decref(c);
  reply_free(&rep);
  ok(dpop(&a, &p, &res, &rep) == 0 && (c = part_json(res.proof, 1)) && strcmp(jstr(c, "jti"), first_jti) != 0,
     "a second proof has a fresh jti");
  json_decref(c);
  reply_free(&rep);
  test_agent_free(&a, dir);
}

struct refusal {
  const char *what;
  struct proto_dpop_params p;
  int code;
  const char *needle;
};

static void test_refusals(void) {
  struct agent a;
  char dir[256];
  struct reply rep;
  struct proto_dpop_result res;
  static const char *unknown[] = { "ES999" }, *rsa_only[] = { "RS256", "PS256" }, *es256[] = { "ES256" },
                    *eddsa[] = { "EdDSA" }, *with_unknown[] = { "EdDSA", "EdDSB" };
#define O "https://mcp.example.com"
  const struct refusal cases[] = {
    { "an unknown algorithm preference", { .origin = O, .htm = "POST", .htu = O "/mcp", .algorithms = unknown, .n_algorithms = 1 },
      MCPSIG_EALG, "unknown algorithm \"ES999\"" },
    { "an unknown name among known ones", { .origin = O, .htm = "POST", .htu = O "/mcp", .algorithms = with_unknown, .n_algorithms = 2 },
      MCPSIG_EALG, "EdDSB" },
    { "only algorithms the agent cannot make", { .origin = O, .htm = "POST", .htu = O "/mcp", .algorithms = rsa_only, .n_algorithms = 2 },
      MCPSIG_EALG, "none of the accepted algorithms (RS256, PS256)" },
    { "a relative htu", { .origin = O, .htm = "POST", .htu = "/mcp" }, MCPSIG_EURI, "htu: URI must be absolute" },
    { "an ftp htu", { .origin = O, .htm = "POST", .htu = "ftp://mcp.example.com/mcp" }, MCPSIG_EURI, "htu: URI scheme must be http or https" },
    { "an htu with a space", { .origin = O, .htm = "POST", .htu = O "/a b" }, MCPSIG_EURI, "htu: URI contains a space" },
    { "an htu with userinfo", { .origin = O, .htm = "POST", .htu = "https://u@mcp.example.com/" }, MCPSIG_EURI, "userinfo" },
    { "an htu with no host", { .origin = O, .htm = "POST", .htu = "https:///mcp" }, MCPSIG_EURI, "no host" },
    { "a nonce with a space", { .origin = O, .htm = "POST", .htu = O "/mcp", .nonce = "a b" }, MCPSIG_EPARAM, "NQCHAR" },
    { "a nonce with '\"'", { .origin = O, .htm = "POST", .htu = O "/mcp", .nonce = "a\"b" }, MCPSIG_EPARAM, "NQCHAR" },
    { "a nonce with '\\'", { .origin = O, .htm = "POST", .htu = O "/mcp", .nonce = "a\\b" }, MCPSIG_EPARAM, "NQCHAR" },
    { "a nonce with non-ASCII", { .origin = O, .htm = "POST", .htu = O "/mcp", .nonce = "caf\xc3\xa9" }, MCPSIG_EPARAM, "NQCHAR" },
    { "an empty nonce", { .origin = O, .htm = "POST", .htu = O "/mcp", .nonce = "" }, MCPSIG_EPARAM, "nonce is empty" },
    { "a token with a space", { .origin = O, .htm = "POST", .htu = O "/mcp", .access_token = "abc def" }, MCPSIG_EPARAM, "token68" },
    { "a token with '=' inside", { .origin = O, .htm = "POST", .htu = O "/mcp", .access_token = "ab=c" }, MCPSIG_EPARAM, "token68" },
    { "an empty token", { .origin = O, .htm = "POST", .htu = O "/mcp", .access_token = "" }, MCPSIG_EPARAM, "token68" },
    { "an empty htm", { .origin = O, .htm = "", .htu = O "/mcp" }, MCPSIG_EPARAM, "htm is empty" },
    { "an htm with a space", { .origin = O, .htm = "PO ST", .htu = O "/mcp" }, MCPSIG_EPARAM, "method token" },
    { "no origin", { .htm = "POST", .htu = O "/mcp" }, MCPSIG_EPARAM, "origin" },
    { "no htu", { .origin = O, .htm = "POST" }, MCPSIG_EPARAM, "htu" },
    { "an unknown identity", { .identity = "nobody", .origin = O, .htm = "POST", .htu = O "/mcp" }, MCPSIG_ENOIDENT, "nobody" },
  };

  if (!ok(test_agent_new(&a, dir, sizeof(dir)) == 0, "agent on a temporary keystore"))
    return;
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char desc[200];
    struct proto_dpop_params p = cases[i].p;
    int r = dpop(&a, &p, &res, &rep);
    snprintf(desc, sizeof(desc), "refused: %s, with no proof and no binding made", cases[i].what);
    ok(r == cases[i].code && strstr(rep.message, cases[i].needle) && n_bindings(&a) == 0, desc);
    if (r != cases[i].code || !strstr(rep.message, cases[i].needle))
      printf("#   got %d: %s\n", r, rep.message);
    reply_free(&rep);
  }
  /* A token68 with trailing '=' and all its characters is fine. */
  struct proto_dpop_params good = { .origin = O, .htm = "POST", .htu = O "/mcp",
                                    .access_token = "aZ09-._~+/==" };
  ok(dpop(&a, &good, &res, &rep) == 0, "a token using every token68 character, with '=' padding, is accepted");
  reply_free(&rep);

#ifdef HAVE_OPENSSL
  /* The binding is Ed25519 now: a list that excludes it is a clear error. */
  good.algorithms = es256;
  good.n_algorithms = 1;
  ok(dpop(&a, &good, &res, &rep) == MCPSIG_EALG && strstr(rep.message, "is EdDSA") &&
       strstr(rep.message, "exclude it"),
     "an existing Ed25519 binding refuses a list with only ES256, and says why");
  reply_free(&rep);
#endif
  good.algorithms = eddsa;
  good.n_algorithms = 1;
  ok(dpop(&a, &good, &res, &rep) == 0, "... and accepts a list that includes EdDSA");
  reply_free(&rep);
#undef O
  test_agent_free(&a, dir);
}

#ifdef HAVE_OPENSSL
/* SPEC-NOTES §9.18: a server that takes only ES256 gets a P-256 key, even for an Ed25519 identity. */
static void test_key_type_choice(void) {
  struct agent a;
  char dir[256];
  struct reply rep;
  struct proto_dpop_result res;
  struct proto_list_result list;
  static const char *es256[] = { "RS256", "ES256", "EdDSA" }, *only_es256[] = { "RS256", "ES256" },
                    *only_es384[] = { "ES384" }, *eddsa[] = { "EdDSA" };

  if (!ok(test_agent_new(&a, dir, sizeof(dir)) == 0, "agent on a temporary keystore"))
    return;
  struct proto_dpop_params p = { .origin = "https://a.example", .htm = "POST", .htu = "https://as.example/token",
                                 .algorithms = es256, .n_algorithms = 3 };
  ok(dpop(&a, &p, &res, &rep) == 0 && strcmp(res.alg, "EdDSA") == 0 && res.created,
     "an Ed25519 identity keeps Ed25519 when the list includes EdDSA");
  reply_free(&rep);

  p.origin = "https://b.example";
  p.algorithms = only_es256;
  p.n_algorithms = 2;
  ok(dpop(&a, &p, &res, &rep) == 0 && strcmp(res.alg, "ES256") == 0 && res.created,
     "... and falls back to ES256 when the list has only RS256 and ES256");
  json_t *h = part_json(res.proof, 0);
  json_t *jwk = json_object_get(h, "jwk");
  ok(jstr(jwk, "kty") && strcmp(jstr(jwk, "kty"), "EC") == 0 && strcmp(jstr(jwk, "crv"), "P-256") == 0 &&
       jstr(jwk, "y") && json_object_size(jwk) == 4 && !json_object_get(jwk, "d"),
     "the ES256 proof's jwk is a public P-256 key: kty, crv, x, y only");
  is_str(jstr(h, "alg"), "ES256", "the header says ES256");
  ok(proof_verifies(res.proof), "the ES256 proof verifies");
  unsigned char sig[128];
  ok(part_decode(res.proof, 2, sig, sizeof(sig)) == 64, "the ES256 JWS signature is 64 bytes of r||s");
  json_decref(h);
  char jkt[64];
  snprintf(jkt, sizeof(jkt), "%s", res.jkt);
  reply_free(&rep);

  /* The choice is fixed: later requests, with no list, keep P-256. */
  p.algorithms = NULL;
  p.n_algorithms = 0;
  p.htu = "https://b.example/mcp";
  p.access_token = "tok";
  ok(dpop(&a, &p, &res, &rep) == 0 && strcmp(res.alg, "ES256") == 0 && strcmp(res.jkt, jkt) == 0 && !res.created,
     "the MCP request's proof uses the same P-256 key (same jkt) as the token request");
  reply_free(&rep);
  p.algorithms = eddsa;
  p.n_algorithms = 1;
  ok(dpop(&a, &p, &res, &rep) == MCPSIG_EALG && strstr(rep.message, "ES256") && strstr(rep.message, "exclude"),
     "a later list without ES256 is a clear error for that P-256 binding");
  reply_free(&rep);

  /* sign.http with the same binding: ecdsa-p256-sha256. */
  struct proto_sign_params sp = { .method = "GET", .uri = "https://b.example/mcp" };
  struct proto_sign_result sr;
  ok(dcall(&a, "sign.http", &proto_sign_params_schema, &sp, &proto_sign_result_schema, &sr, &rep) == 0 &&
       strcmp(sr.alg, "ecdsa-p256-sha256") == 0 && strcmp(sr.keyid, jkt) == 0 && !strstr(sr.headers.signature_input, "alg="),
     "sign.http on that binding signs with ecdsa-p256-sha256 and the same keyid, no alg parameter");
  reply_free(&rep);
  /* RFC 9421 names on sign.http choose the type at first contact too. */
  const char *httpsig384[] = { "ecdsa-p384-sha384" }, *bad_httpsig[] = { "ecdsa-p256" };
  sp.uri = "https://c.example/mcp";
  sp.algorithms = httpsig384;
  sp.n_algorithms = 1;
  ok(dcall(&a, "sign.http", &proto_sign_params_schema, &sp, &proto_sign_result_schema, &sr, &rep) == 0 &&
       strcmp(sr.alg, "ecdsa-p384-sha384") == 0,
     "sign.http with algorithms [ecdsa-p384-sha384] makes a P-384 binding");
  unsigned char sigbuf[200];
  size_t sn = 0;
  const char *colon = strchr(sr.headers.signature, ':');
  ok(colon && sodium_base642bin(sigbuf, sizeof(sigbuf), colon + 1, strlen(colon + 1) - 1, NULL, &sn, NULL,
                                sodium_base64_VARIANT_ORIGINAL) == 0 && sn == 96,
     "its RFC 9421 signature is 96 bytes of r||s");
  reply_free(&rep);
  sp.uri = "https://d.example/mcp";
  sp.algorithms = bad_httpsig;
  ok(dcall(&a, "sign.http", &proto_sign_params_schema, &sp, &proto_sign_result_schema, &sr, &rep) == MCPSIG_EALG &&
       strstr(rep.message, "unknown algorithm \"ecdsa-p256\""),
     "sign.http refuses an unknown RFC 9421 algorithm name");
  reply_free(&rep);
  sp.algorithms = only_es256;
  ok(dcall(&a, "sign.http", &proto_sign_params_schema, &sp, &proto_sign_result_schema, &sr, &rep) == MCPSIG_EALG,
     "sign.http takes RFC 9421 names, not JWS names");
  reply_free(&rep);
  /* Accept-Signature's alg picks the type at first contact. */
  sp.algorithms = NULL;
  sp.n_algorithms = 0;
  sp.accept_signature = "sig1=(\"@method\" \"@target-uri\" \"content-digest\");alg=\"ecdsa-p256-sha256\"";
  ok(dcall(&a, "sign.http", &proto_sign_params_schema, &sp, &proto_sign_result_schema, &sr, &rep) == 0 &&
       strcmp(sr.alg, "ecdsa-p256-sha256") == 0 && !strstr(sr.headers.signature_input, "alg="),
     "Accept-Signature alg=ecdsa-p256-sha256 makes a P-256 binding at first contact (and alg is still never sent)");
  reply_free(&rep);
  sp.accept_signature = "sig1=(\"@method\" \"@target-uri\" \"content-digest\");alg=\"ed25519\"";
  ok(dcall(&a, "sign.http", &proto_sign_params_schema, &sp, &proto_sign_result_schema, &sr, &rep) == MCPSIG_EACCEPT,
     "... and an Accept-Signature for ed25519 on that binding is EACCEPT");
  reply_free(&rep);

  /* A P-384 identity. */
  struct proto_identity_params ip = { .identity = "three84", .alg = "p384" };
  ok(dcall(&a, "identity.add", &proto_identity_params_schema, &ip, NULL, NULL, &rep) == 0, "add-identity --alg p384");
  reply_free(&rep);
  p.identity = "three84";
  p.origin = "https://a.example";
  p.algorithms = NULL;
  p.n_algorithms = 0;
  ok(dpop(&a, &p, &res, &rep) == 0 && strcmp(res.alg, "ES384") == 0 && proof_verifies(res.proof) &&
       part_decode(res.proof, 2, sig, sizeof(sig)) == 96,
     "a P-384 identity makes ES384 proofs with 96-byte signatures");
  reply_free(&rep);
  p.origin = "https://e.example";
  p.algorithms = only_es384;
  p.n_algorithms = 1;
  ok(dpop(&a, &p, &res, &rep) == 0 && strcmp(res.alg, "ES384") == 0, "... also with a list of ES384");
  reply_free(&rep);
  ip.identity = "bad";
  ip.alg = "p521";
  ok(dcall(&a, "identity.add", &proto_identity_params_schema, &ip, NULL, NULL, &rep) == MCPSIG_EALG &&
       strstr(rep.message, "p256"),
     "add-identity --alg p521 is refused, naming the key types");
  reply_free(&rep);

  /* identity.list reports RFC 9421 names; the keys survive a restart. */
  ok(dcall(&a, "identity.list", NULL, NULL, &proto_list_result_schema, &list, &rep) == 0, "identity.list");
  int seen = 0;
  for (size_t i = 0; i < list.n_bindings; i++)
    if (strcmp(list.bindings[i].origin, "https://b.example") == 0 && strcmp(list.bindings[i].alg, "ecdsa-p256-sha256") == 0 &&
        strcmp(list.bindings[i].keyid, jkt) == 0)
      seen = 1;
  ok(seen, "the fall-back binding is listed as ecdsa-p256-sha256 with its keyid");
  int id384 = 0;
  for (size_t i = 0; i < list.n_identities; i++)
    if (strcmp(list.identities[i].name, "three84") == 0 && strcmp(list.identities[i].alg, "ecdsa-p384-sha384") == 0)
      id384 = 1;
  ok(id384, "the P-384 identity is listed with its type");
  reply_free(&rep);
  char err[256];
  agent_done(&a);
  char ks[600];
  snprintf(ks, sizeof(ks), "%s/ks", dir);
  ok(agent_init(&a, ks, err, sizeof(err)) == 0, "the agent restarts on the same keystore");
  p.identity = NULL;
  p.origin = "https://b.example";
  p.algorithms = NULL;
  p.n_algorithms = 0;
  ok(dpop(&a, &p, &res, &rep) == 0 && strcmp(res.alg, "ES256") == 0 && strcmp(res.jkt, jkt) == 0,
     "after a restart the P-256 binding signs with the same key");
  reply_free(&rep);
  p.identity = "three84";
  p.origin = "https://new.example";
  ok(dpop(&a, &p, &res, &rep) == 0 && strcmp(res.alg, "ES384") == 0,
     "after a restart the identity's default type (p384) is kept");
  reply_free(&rep);

  /* Rotation keeps the key type. */
  struct proto_rotate_params rp = { .origin = "https://b.example" };
  struct proto_binding rb;
  ok(dcall(&a, "rotate.begin", &proto_rotate_params_schema, &rp, &proto_binding_schema, &rb, &rep) == 0 &&
       strcmp(rb.alg, "ecdsa-p256-sha256") == 0,
     "rotate.begin on a P-256 binding");
  reply_free(&rep);
  ok(dcall(&a, "rotate.commit", &proto_rotate_params_schema, &rp, &proto_binding_schema, &rb, &rep) == 0 &&
       strcmp(rb.alg, "ecdsa-p256-sha256") == 0 && strcmp(rb.keyid, jkt) != 0 && strcmp(rb.tag, jkt) == 0,
     "rotate.commit: a new P-256 key, the same tag");
  reply_free(&rep);
  p.identity = NULL;
  p.origin = "https://b.example";
  ok(dpop(&a, &p, &res, &rep) == 0 && strcmp(res.alg, "ES256") == 0 && strcmp(res.jkt, jkt) != 0 &&
       proof_verifies(res.proof),
     "proofs after the rotation use the new P-256 key");
  reply_free(&rep);
  test_agent_free(&a, dir);
}
#else
static void test_without_openssl(void) {
  struct agent a;
  char dir[256];
  struct reply rep;
  struct proto_dpop_result res;
  static const char *es256[] = { "ES256" };
  if (!ok(test_agent_new(&a, dir, sizeof(dir)) == 0, "agent on a temporary keystore"))
    return;
  struct proto_identity_params ip = { .identity = "p", .alg = "p256" };
  ok(dcall(&a, "identity.add", &proto_identity_params_schema, &ip, NULL, NULL, &rep) == MCPSIG_EALG &&
       strstr(rep.message, "OpenSSL"),
     "without OpenSSL, add-identity --alg p256 is refused, naming OpenSSL");
  reply_free(&rep);
  struct proto_dpop_params p = { .origin = "https://a.example", .htm = "POST", .htu = "https://a.example/",
                                 .algorithms = es256, .n_algorithms = 1 };
  ok(dpop(&a, &p, &res, &rep) == MCPSIG_EALG && strstr(rep.message, "none of the accepted") && a.n_bindings == 0,
     "without OpenSSL, a list of only ES256 cannot be satisfied, and no binding is made");
  reply_free(&rep);
  test_agent_free(&a, dir);
}
#endif

int main(void) {
  if (sodium_init() < 0)
    return 99;
  jwk_json_memory_install();
  test_rfc9449_vectors();
  test_vector_86c();
  test_claims_and_escaping();
  test_refusals();
#ifdef HAVE_OPENSSL
  test_rfc9421_b24();
  test_fixed_width(KEY_P256, 64);
  test_fixed_width(KEY_P384, 96);
  test_coordinate_padding();
  test_ec_import_refusals();
  test_key_type_choice();
#else
  test_without_openssl();
#endif
  return done_testing();
}
