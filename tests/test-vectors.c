/*
 * test-vectors.c: every SPEC-NOTES §8 vector that applies to Ed25519, built
 * by our own code (not by handing libsodium a finished base), each paired
 * with broken inputs that must be rejected.
 */
#include "config.h"

#include <string.h>
#include <sodium.h>

#include "httpsig.h"
#include "jwk.h"
#include "tap.h"
#include "vector-agent.h"

static char *sha256_hex(const void *data, size_t len) {
  static char hex[65];
  unsigned char h[32];
  crypto_hash_sha256(h, data, len);
  sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
  return hex;
}

/* ---- RFC 9421 B.2.6 through our base builder ---- */

static const char b26_base[] =
  "\"date\": Tue, 20 Apr 2021 02:07:55 GMT\n"
  "\"@method\": POST\n"
  "\"@path\": /foo\n"
  "\"@authority\": example.com\n"
  "\"content-type\": application/json\n"
  "\"content-length\": 18\n"
  "\"@signature-params\": (\"date\" \"@method\" \"@path\" \"@authority\" \"content-type\" \"content-length\")"
  ";created=1618884473;keyid=\"test-key-ed25519\"";
static const char b26_sig[] =
  "sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==:";

static int b26_build(const struct proto_pair *headers, size_t nh, const char *const *comps, size_t nc,
                     struct buf *base, struct buf *sp, char *err) {
  struct httpsig_request req;
  struct httpsig_params p = { .created = 1618884473, .keyid = "test-key-ed25519" };
  int r = httpsig_request_init(&req, "POST", "https://example.com/foo?param=Value&Pet=dog", headers, nh, err, 256);
  if (r < 0)
    return r;
  return httpsig_base_build(&req, comps, nc, &p, base, sp, err, 256);
}

static void test_b26(struct keypool *pool) {
  static const struct proto_pair headers[] = {
    { "Host", "example.com" },
    { "Date", "Tue, 20 Apr 2021 02:07:55 GMT" },
    { "Content-Type", "application/json" },
    { "Content-Digest", "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:" },
    { "Content-Length", "18" },
  };
  static const char *const comps[] = { "date", "@method", "@path", "@authority", "content-type", "content-length" };
  struct buf base = BUF_INIT, sp = BUF_INIT, input = BUF_INIT, sigf = BUF_INIT;
  char err[256] = "";
  struct key k;
  unsigned char sig[64];
  size_t siglen = 0;

  ok(b26_build(headers, 5, comps, 6, &base, &sp, err) == 0, "B.2.6: base builds");
  is_str(buf_cstr(&base), b26_base, "B.2.6: signature base is byte for byte the RFC's");
  is_int(base.len, 284, "B.2.6: base is 284 bytes, no trailing LF");
  is_str(sha256_hex(base.p, base.len), "e6402577f54303accfda63dfbde1a7b8c5e5e6f3f7898637b7d78dc07ee1896a",
         "B.2.6: base SHA-256");
  ok(key_from_seed(pool, KEY_ED25519, rfc9421_seed, 32, &k) == 0, "B.2.6: test-key-ed25519 loads from its seed");
  ok(key_sign(pool, &k, base.p, base.len, sig, &siglen) == 0 && siglen == 64, "B.2.6: signs");
  httpsig_member_input(&input, "sig-b26", buf_cstr(&sp));
  httpsig_member_signature(&sigf, "sig-b26", sig, siglen);
  is_str(buf_cstr(&input),
         "sig-b26=(\"date\" \"@method\" \"@path\" \"@authority\" \"content-type\" \"content-length\")"
         ";created=1618884473;keyid=\"test-key-ed25519\"",
         "B.2.6: Signature-Input is the RFC's");
  is_str(buf_cstr(&sigf), b26_sig, "B.2.6: Signature is the RFC's");

  /* Forgeries: the published signature must not verify over altered bases. */
  struct buf lf = BUF_INIT;
  buf_append(&lf, base.p, base.len);
  buf_putc(&lf, '\n');
  ok(crypto_sign_verify_detached(sig, (const unsigned char *)lf.p, lf.len, k.pub) != 0,
     "forgery: the same base with a trailing LF does not verify");
  ok(crypto_sign_verify_detached(sig, (const unsigned char *)base.p, base.len, k.pub) == 0,
     "the signature verifies over the exact base");
  buf_free(&lf);

  struct buf b2 = BUF_INIT, sp2 = BUF_INIT;
  struct proto_pair tampered[5];
  memcpy(tampered, headers, sizeof(tampered));
  tampered[4].value = "19";
  b26_build(tampered, 5, comps, 6, &b2, &sp2, err);
  ok(crypto_sign_verify_detached(sig, (const unsigned char *)b2.p, b2.len, k.pub) != 0,
     "forgery: a changed covered header makes the signature fail");
  buf_free(&b2);
  buf_free(&sp2);

  static const char *const upper[] = { "Date", "@method" };
  ok(b26_build(headers, 5, upper, 2, &b2, &sp2, err) == MCPSIG_ECOMPONENT, "upper-case component name is refused");
  buf_free(&b2);
  buf_free(&sp2);
  static const char *const dup[] = { "date", "@method", "date" };
  ok(b26_build(headers, 5, dup, 3, &b2, &sp2, err) == MCPSIG_ECOMPONENT, "duplicate component is refused");
  buf_free(&b2);
  buf_free(&sp2);
  static const char *const missing[] = { "date", "x-absent" };
  ok(b26_build(headers, 5, missing, 2, &b2, &sp2, err) == MCPSIG_EHEADER, "missing covered header is refused");
  buf_free(&b2);
  buf_free(&sp2);
  struct proto_pair crlf[5];
  memcpy(crlf, headers, sizeof(crlf));
  crlf[2].value = "application/json\r\nX-Injected: 1";
  ok(b26_build(crlf, 5, comps, 6, &b2, &sp2, err) == MCPSIG_EHEADER, "CR/LF in a covered value is refused");
  buf_free(&b2);
  buf_free(&sp2);
  crlf[2].value = "application/json\xc3\xa9";
  ok(b26_build(crlf, 5, comps, 6, &b2, &sp2, err) == MCPSIG_EHEADER, "non-ASCII in a covered value is refused");
  buf_free(&b2);
  buf_free(&sp2);

  key_destroy(pool, &k);
  buf_free(&base);
  buf_free(&sp);
  buf_free(&input);
  buf_free(&sigf);
}

/* ---- thumbprints ---- */

static void thumb_check(const char *json, const char *want, const char *desc) {
  json_error_t e;
  char out[KEY_KEYID_LEN + 1] = "";
  json_t *j = json_loads(json, 0, &e);
  int r = j ? jwk_thumbprint(j, out) : -1;
  json_decref(j);
  if (want) {
    is_str(r == 0 ? out : "(error)", want, desc);
  } else {
    ok(r < 0, desc);
  }
}

static void test_thumbprints(struct keypool *pool) {
  thumb_check("{\"kty\":\"RSA\",\"e\":\"AQAB\",\"alg\":\"RS256\",\"kid\":\"2011-04-29\",\"n\":\"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps"
              "2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7"
              "_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI"
              "4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw\"}",
              "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs", "RFC 7638 §3.1 RSA thumbprint");
  thumb_check("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}",
              "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k", "RFC 8037 A.3 thumbprint");
  {
    json_error_t e;
    char a[44], b[44];
    json_t *j1 = json_loads("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}", 0, &e);
    json_t *j2 = json_loads("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURp\"}", 0, &e);
    ok(jwk_thumbprint(j1, a) == 0 && jwk_thumbprint(j2, b) == 0 && strcmp(a, b) != 0,
       "forgery: a different x never shares the thumbprint");
    json_decref(j1);
    json_decref(j2);
  }
  thumb_check("{\"kty\":\"OKP\",\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}", NULL,
              "a JWK without a required member has no thumbprint");
  thumb_check("{\"kty\":\"oct\",\"k\":\"AAAA\"}", NULL, "an unknown kty has no thumbprint");
  thumb_check("{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":42}", NULL, "a non-string member has no thumbprint");
  thumb_check("{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs\",\"y\":\"9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA\"}",
              "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I", "RFC 9449 §6.1 jkt of the EC example key");

  /* RFC 8037 A.1/A.2: the private key d derives the public x. */
  static const char d8037[] = "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"d\":\"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A\","
                              "\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}";
  unsigned char seed[32];
  size_t n = 0;
  key_alg alg;
  char err[128];
  struct key k;
  ok(jwk_import_private(d8037, strlen(d8037), &alg, seed, sizeof(seed), &n, err, sizeof(err)) == 0 && n == 32,
     "RFC 8037 A.1 private JWK imports");
  ok(key_from_seed(pool, KEY_ED25519, seed, n, &k) == 0, "RFC 8037 key loads");
  is_str(k.keyid, "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k", "RFC 8037 key's keyid is its thumbprint");
  key_destroy(pool, &k);
  static const char wrongx[] = "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"d\":\"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A\","
                               "\"x\":\"JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs\"}";
  ok(jwk_import_private(wrongx, strlen(wrongx), &alg, seed, sizeof(seed), &n, err, sizeof(err)) == MCPSIG_EKEY,
     "forgery: a JWK whose x does not match d is refused");
  static const char shortd[] = "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"d\":\"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2\"}";
  ok(jwk_import_private(shortd, strlen(shortd), &alg, seed, sizeof(seed), &n, err, sizeof(err)) == MCPSIG_EKEY,
     "a d that is not 32 bytes is refused");
  static const char pub[] = "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}";
  ok(jwk_import_private(pub, strlen(pub), &alg, seed, sizeof(seed), &n, err, sizeof(err)) == MCPSIG_EKEY,
     "a public JWK (no d) is refused for import");
  static const char dupd[] = "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"d\":\"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A\","
                             "\"d\":\"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A\"}";
  ok(jwk_import_private(dupd, strlen(dupd), &alg, seed, sizeof(seed), &n, err, sizeof(err)) == MCPSIG_EKEY,
     "a JWK with a duplicate member is refused");

  ok(key_from_seed(pool, KEY_ED25519, rfc9421_seed, 32, &k) == 0, "RFC 9421 test-key-ed25519 loads");
  is_str(k.keyid, "poqkLGiymh_W0uP6PZFw-dvez3QJT5SolqXBCW38r0U", "RFC 9421 test-key-ed25519 thumbprint");
  char *jwk = NULL;
  ok(jwk_public_json(&k, &jwk) == 0, "public JWK serializes");
  is_str(jwk, "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs\"}",
         "public JWK has public members only, no alg");
  free(jwk);
  key_destroy(pool, &k);
}

/* ---- RFC 9530 digests ---- */

static void digest_check(const char *body, size_t len, const char *want, const char *desc) {
  char out[MCPSIG_CONTENT_DIGEST_LEN];
  proto_content_digest(body, len, out, sizeof(out));
  is_str(out, want, desc);
}

static void test_digests(void) {
  digest_check("{\"hello\": \"world\"}", 18, "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:",
               "RFC 9530 Appendix D sha-256");
  digest_check("{\"hello\": \"world\"}\n", 19, "sha-256=:RK/0qy18MlBSVnWgjwz6lZEWjP/lF5HF9bvEF8FabDg=:",
               "RFC 9530 B.1 sha-256 (with LF)");
  digest_check("", 0, "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:", "RFC 9530 B.2 empty body");
  char out[MCPSIG_CONTENT_DIGEST_LEN];
  proto_content_digest("{\"hello\": \"world!\"}", 19, out, sizeof(out));
  ok(strcmp(out, "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:") != 0,
     "forgery: one more byte changes the digest");
  ok(proto_content_digest("", 0, out, 20) < 0, "a too-small output buffer is refused");
}

/* ---- SPEC-NOTES §8.6 MCP vectors through the dispatcher ---- */

static const char vec_a_body[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\",\"arguments\":{\"text\":\"hi\"}}}";
static const char vec_b_body[] =
  "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-06-18\",\"capabilities\":{},"
  "\"clientInfo\":{\"name\":\"example-client\",\"version\":\"1.0.0\",\"cnf\":{\"jwk\":{\"kty\":\"OKP\",\"crv\":\"Ed25519\","
  "\"x\":\"JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs\"}}}}}";
#define KEYID RFC9421_KEYID

/*
 * The MCP 2026-07-28 era (SPEC-NOTES §10.2): a stateless tools/call with
 * Mcp-Method, Mcp-Name and two Mcp-Param-* headers, one of them in the
 * base64 sentinel form. The expected base was written by hand from RFC 9421
 * §2.5, and the signature over it made with Node's crypto and the RFC's
 * test-key-ed25519 (not with this code); tests/node/interop.mjs verifies the
 * agent's live output for the same request with http-message-signatures.
 */
static const char vec_m_body[] =
  "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"get_weather\",\"arguments\":"
  "{\"region\":\"eu-west\",\"city\":\"M\xc3\xbcnchen\"},\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":"
  "\"2026-07-28\",\"io.modelcontextprotocol/clientCapabilities\":{}}}}";
#define VEC_M_INPUT                                                                                                 \
  "sig1=(\"@method\" \"@target-uri\" \"content-digest\" \"mcp-protocol-version\" \"mcp-method\" \"mcp-name\"" \
  " \"mcp-param-city\" \"mcp-param-region\");created=1767225600;nonce=\"ICEiIyQlJicoKSorLC0uLw\";keyid=\"" KEYID   \
  "\";tag=\"" KEYID "\""
#define VEC_M_SIGNATURE \
  "sig1=:QwyxSVoBE5QxMX8sJDgVk0koxI0LcpQIpjWIJL5Ty2hkoShBstrGhLMS6QhaBkeKYG5CYWnWf1fJ5QwHF7JXBw==:"

static void test_modern_vector(struct agent *a) {
  struct reply rep;
  struct proto_sign_result res;
  /* Mixed case and out of order, as a host may send them: the agent
   * covers the lowercase names, the params in byte order. */
  struct proto_pair hm[] = { { "Content-Type", "application/json" }, { "MCP-Protocol-Version", "2026-07-28" },
                             { "Mcp-Method", "tools/call" }, { "Mcp-Name", "get_weather" },
                             { "Mcp-Param-Region", "eu-west" }, { "Mcp-Param-City", "=?base64?TcO8bmNoZW4=?=" } };
  struct proto_sign_params sm = { .method = "POST", .uri = "https://mcp.example.com/mcp", .headers = hm,
                                  .n_headers = 6, .body = (const unsigned char *)vec_m_body,
                                  .body_len = strlen(vec_m_body), .has_body = true };
  next_random_byte = 0x20;
  ok(dcall(a, "sign.http", &proto_sign_params_schema, &sm, &proto_sign_result_schema, &res, &rep) == 0,
     "2026-07-28 tools/call: sign.http succeeds");
  is_str(res.headers.content_digest, "sha-256=:V8H7s6O+IqCBcjSZFwynOkrv34YJLXw+Ve5VMwWuMbM=:",
         "2026-07-28 tools/call: Content-Digest");
  is_str(res.headers.signature_input, VEC_M_INPUT,
         "2026-07-28 tools/call: mcp-method, mcp-name and each mcp-param-* are covered, in the documented order");
  is_str(res.headers.signature, VEC_M_SIGNATURE, "2026-07-28 tools/call: the signature made independently");
  reply_free(&rep);

  /* Forgeries: each MCP header changed makes another signature. */
  const char *orig[] = { "tools/call", "get_weather", "eu-west", "=?base64?TcO8bmNoZW4=?=" };
  const char *forged[] = { "tools/list", "transfer_funds", "us-east", "=?base64?TcO8bmNoZW5=?=" };
  for (size_t i = 0; i < 4; i++) {
    hm[2 + i].value = forged[i];
    next_random_byte = 0x20;
    ok(dcall(a, "sign.http", &proto_sign_params_schema, &sm, &proto_sign_result_schema, &res, &rep) == 0 &&
         strcmp(res.headers.signature, VEC_M_SIGNATURE) != 0,
       "forgery: another Mcp-Method, Mcp-Name or Mcp-Param value gives another signature");
    reply_free(&rep);
    hm[2 + i].value = orig[i];
  }

  /* Cover if present: an MCP header the host names, absent from the request. */
  const char *want[] = { "mcp-session-id", "mcp-param-missing" };
  sm.components = want;
  sm.n_components = 2;
  next_random_byte = 0x20;
  ok(dcall(a, "sign.http", &proto_sign_params_schema, &sm, &proto_sign_result_schema, &res, &rep) == 0 &&
       strcmp(res.headers.signature_input, VEC_M_INPUT) == 0,
     "naming mcp-session-id and an mcp-param-* the request lacks is not an error, and covers nothing more");
  reply_free(&rep);
  const char *want_plain[] = { "x-absent" };
  sm.components = want_plain;
  sm.n_components = 1;
  ok(dcall(a, "sign.http", &proto_sign_params_schema, &sm, &proto_sign_result_schema, &res, &rep) == MCPSIG_EHEADER,
     "control: another header the request lacks is still refused (EHEADER)");
  reply_free(&rep);

  /* signature-agent: the value the agent emits. */
  const char *with_sa[] = { "signature-agent" };
  sm.components = with_sa;
  sm.n_components = 1;
  ok(dcall(a, "sign.http", &proto_sign_params_schema, &sm, &proto_sign_result_schema, &res, &rep) == 0 &&
       strstr(res.headers.signature_input, "\"mcp-param-region\" \"signature-agent\");") != NULL,
     "signature-agent can be covered: the agent's own Signature-Agent value");
  reply_free(&rep);
  struct proto_pair hsa[] = { { "Signature-Agent", "\"data:x\"" } };
  struct proto_sign_params ssa = { .method = "GET", .uri = "https://mcp.example.com/mcp", .headers = hsa,
                                   .n_headers = 1 };
  ok(dcall(a, "sign.http", &proto_sign_params_schema, &ssa, &proto_sign_result_schema, &res, &rep) == MCPSIG_EPARAM,
     "a host's own Signature-Agent header is refused: the agent writes it");
  reply_free(&rep);
}

static void test_mcp_vectors(void) {
  struct agent a;
  char dir[256];
  struct reply rep;
  struct proto_public_result pub;
  struct proto_sign_result res;

  if (!ok(vector_agent_new(&a, dir, sizeof(dir), "https://mcp.example.com") == 0,
          "agent with test-key-ed25519 for https://mcp.example.com (keyid and tag are its thumbprint)"))
    return;

  /* (a) tools/call after initialize. */
  struct proto_pair ha[] = { { "Content-Type", "application/json" }, { "MCP-Protocol-Version", "2025-06-18" },
                             { "MCP-Session-Id", "sess-4f9c2a" } };
  struct proto_sign_params sa = { .method = "POST", .uri = "https://mcp.example.com/mcp", .headers = ha,
                                  .n_headers = 3, .body = (const unsigned char *)vec_a_body,
                                  .body_len = strlen(vec_a_body), .has_body = true };
  next_random_byte = 0x00;
  ok(dcall(&a, "sign.http", &proto_sign_params_schema, &sa, &proto_sign_result_schema, &res, &rep) == 0,
     "8.6(a): sign.http succeeds");
  is_str(res.headers.content_digest, "sha-256=:6eKjXjwvtdKgEW/maMG0iUc511YUdfH2erCfHbofIuw=:", "8.6(a): Content-Digest");
  is_str(res.headers.signature_input,
         "sig1=(\"@method\" \"@target-uri\" \"content-digest\" \"mcp-protocol-version\" \"mcp-session-id\")"
         ";created=1767225600;nonce=\"AAECAwQFBgcICQoLDA0ODw\";keyid=\"" KEYID "\";tag=\"" KEYID "\"",
         "8.6(a): Signature-Input");
  is_str(res.headers.signature,
         "sig1=:xX3WjizJ9mW9Ncr7T6xi4Z+z+b4AhIVAzArtt92idJtZUbfGBihqG0e5aRh4Xd8IEP+6zol/Dbc5x+FensrqBQ==:",
         "8.6(a): Signature");
  reply_free(&rep);

  /* Forgery: the same request with one body byte changed must not produce that signature. */
  char tampered[sizeof(vec_a_body)];
  memcpy(tampered, vec_a_body, sizeof(tampered));
  tampered[strlen(tampered) - 5] = 'H';
  sa.body = (const unsigned char *)tampered;
  next_random_byte = 0x00;
  ok(dcall(&a, "sign.http", &proto_sign_params_schema, &sa, &proto_sign_result_schema, &res, &rep) == 0 &&
       strcmp(res.headers.signature,
              "sig1=:xX3WjizJ9mW9Ncr7T6xi4Z+z+b4AhIVAzArtt92idJtZUbfGBihqG0e5aRh4Xd8IEP+6zol/Dbc5x+FensrqBQ==:") != 0,
     "forgery: a changed body gives a different digest and signature");
  reply_free(&rep);

  /* (b) initialize, key sent in band, no session or version header. */
  struct proto_pair hb[] = { { "Content-Type", "application/json" } };
  struct proto_sign_params sb = { .method = "POST", .uri = "https://mcp.example.com/mcp", .headers = hb,
                                  .n_headers = 1, .body = (const unsigned char *)vec_b_body,
                                  .body_len = strlen(vec_b_body), .has_body = true };
  next_random_byte = 0x10;
  ok(dcall(&a, "sign.http", &proto_sign_params_schema, &sb, &proto_sign_result_schema, &res, &rep) == 0,
     "8.6(b): sign.http succeeds");
  is_str(res.headers.content_digest, "sha-256=:SAACw3xSDh9Z6rkrf20rxFSUy3uFzlgM7fjJ6kWrw8o=:", "8.6(b): Content-Digest");
  is_str(res.headers.signature_input,
         "sig1=(\"@method\" \"@target-uri\" \"content-digest\");created=1767225600;nonce=\"EBESExQVFhcYGRobHB0eHw\""
         ";keyid=\"" KEYID "\";tag=\"" KEYID "\"",
         "8.6(b): Signature-Input covers no session or version header");
  is_str(res.headers.signature,
         "sig1=:Tmznhw8YYR2UEztSNJ/kmH8J6KB0F/tRYL8f2oYK8EUaKoEZ4KmjqbXQduZbYejWSwaeeofatfzS8zGy3z9bAg==:",
         "8.6(b): Signature");
  is_str(res.headers.signature_agent,
         "\"data:application/http-message-signatures-directory+json;base64,eyJrZXlzIjpbeyJrdHkiOiJPS1AiLCJjcnYiOiJFZDI1NTE5"
         "IiwieCI6IkpyUUxqNVBfODlpWEVTOS12RmdySXkyOWNsRjlDQ19vUFBzdzNjNUQwYnMifV19\"",
         "8.6(b): Signature-Agent");
  reply_free(&rep);
  test_modern_vector(&a);
  test_agent_free(&a, dir);
}

/* ---- a directory whose base64 has '+' or '/' ---- */

/*
 * Base64 of ASCII text yields '+' or '/' only where the third byte of a
 * group is '>', '?', '~' or DEL, and an Ed25519 JWK uses none of them, so
 * the agent's own directories never show the difference between the two
 * alphabets. The encoder is checked here with a JWK that carries a "kid"
 * placing '?' at every offset.
 */
static void test_jwks_alphabet(void) {
  static const char prefix[] = "\"data:application/http-message-signatures-directory+json;base64,";
  char jwk[256], *sa = NULL, want[300];
  unsigned char out[512];
  size_t n = 0;
  int found = 0;

  for (int pad = 0; pad < 3 && !found; pad++) {
    snprintf(jwk, sizeof(jwk),
             "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs\",\"kid\":\"%.*s???\"}",
             pad, "kk");
    free(sa);
    sa = NULL;
    found = jwk_signature_agent(jwk, &sa) == 0 && strpbrk(sa + sizeof(prefix) - 1, "+/") != NULL;
  }
  if (!ok(found, "a directory whose base64 has '+' or '/'")) {
    free(sa);
    return;
  }
  ok(strncmp(sa, prefix, sizeof(prefix) - 1) == 0 && sa[strlen(sa) - 1] == '"', "Signature-Agent is the quoted data: URI");
  const char *b64 = sa + sizeof(prefix) - 1;
  size_t b64len = strlen(b64) - 1;
  ok(sodium_base642bin(out, sizeof(out), b64, b64len, NULL, &n, NULL, sodium_base64_VARIANT_ORIGINAL) == 0,
     "the payload is standard base64 with padding (RFC 2397, RFC 4648 §4)");
  out[n < sizeof(out) ? n : sizeof(out) - 1] = '\0';
  snprintf(want, sizeof(want), "{\"keys\":[%s]}", jwk);
  is_str((char *)out, want, "the payload decodes to {\"keys\":[jwk]}");
  ok(sodium_base642bin(out, sizeof(out), b64, b64len, NULL, &n, NULL, sodium_base64_VARIANT_URLSAFE) != 0,
     "forgery check: a strict base64url decoder rejects it, so the alphabet really is the standard one");
  free(sa);
}

int main(void) {
  struct keypool *pool = NULL;
  if (sodium_init() < 0 || keypool_new(&pool) < 0)
    return 99;
  test_b26(pool);
  test_thumbprints(pool);
  test_digests();
  test_mcp_vectors();
  test_jwks_alphabet();
  keypool_free(pool);
  return done_testing();
}
