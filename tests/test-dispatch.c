/*
 * test-dispatch.c: every method through the socket-free dispatcher, with
 * the bad inputs each one must refuse, and the rule that a refused request
 * changes nothing.
 */
#include "config.h"

#include <string.h>
#include <sodium.h>

#include "dispatch-call.h"
#include "jwk.h"
#include "tap.h"

static struct agent a;

static int sign(struct proto_sign_params *sp, struct proto_sign_result *res, struct reply *rep) {
  return dcall(&a, "sign.http", &proto_sign_params_schema, sp, &proto_sign_result_schema, res, rep);
}

static void refused(struct proto_sign_params *sp, int code, const char *needle, const char *desc) {
  struct proto_sign_result res;
  struct reply rep;
  size_t before = a.n_bindings;
  int r = sign(sp, &res, &rep);
  char d[700];
  snprintf(d, sizeof(d), "%s (%s)", desc, rep.message);
  for (char *p = d; *p; p++)
    if ((unsigned char)*p < 0x20)
      *p = '?';
  ok(r == code && (!needle || strstr(rep.message, needle)) && a.n_bindings == before, d);
  reply_free(&rep);
}

static void raw_message(const unsigned char *msg, size_t len, ssize_t want, const char *desc) {
  msgpack_sbuffer out;
  msgpack_packer pk;
  msgpack_sbuffer_init(&out);
  msgpack_packer_init(&pk, &out, msgpack_sbuffer_write);
  ssize_t r = dispatch_bytes(&a, NULL, msg, len, &pk);
  ok(r == want && (want >= 0 || out.size > 0), desc);
  msgpack_sbuffer_destroy(&out);
}

int main(void) {
  char dir[256];
  struct reply rep;
  struct proto_sign_result res;
  struct proto_hello_result hello;
  struct proto_list_result list;
  struct proto_public_result pub;

  if (sodium_init() < 0)
    return 99;
  jwk_json_memory_install();
  if (!ok(test_agent_new(&a, dir, sizeof(dir)) == 0, "agent on a temporary keystore"))
    return done_testing();

#ifdef HAVE_OPENSSL
  ok(dcall(&a, "hello", NULL, NULL, &proto_hello_result_schema, &hello, &rep) == 0 && hello.protocol == 1 &&
       hello.n_algorithms == 3 && strcmp(hello.algorithms[0], "ed25519") == 0 &&
       strcmp(hello.algorithms[1], "ecdsa-p256-sha256") == 0 && strcmp(hello.algorithms[2], "ecdsa-p384-sha384") == 0,
     "hello: protocol 1, ed25519 and both ECDSA algorithms");
#else
  ok(dcall(&a, "hello", NULL, NULL, &proto_hello_result_schema, &hello, &rep) == 0 && hello.protocol == 1 &&
       hello.n_algorithms == 1 && strcmp(hello.algorithms[0], "ed25519") == 0,
     "hello: protocol 1, ed25519 only (built without OpenSSL)");
#endif
  reply_free(&rep);
  ok(dcall(&a, "no.such.method", NULL, NULL, NULL, NULL, &rep) == MCPSIG_EMETHOD && strstr(rep.message, "no.such.method"),
     "an unknown method is named in the error");
  reply_free(&rep);
  struct proto_identity_params bogus = { .identity = "x", .origin = "https://a.example/", .alg = "ed25519" };
  ok(dcall(&a, "hello", &proto_identity_params_schema, &bogus, NULL, NULL, &rep) == MCPSIG_EPARAM,
     "hello with parameters is refused (strict params)");
  reply_free(&rep);

  /* ---- sign.http refusals: none may create a binding ---- */
  struct proto_pair hdr[] = { { "MCP-Session-Id", "s1" } };
  struct proto_sign_params sp = { .method = "POST", .uri = "https://a.example/mcp", .headers = hdr, .n_headers = 1 };
  struct proto_sign_params bad;

  bad = sp;
  bad.uri = "/mcp";
  refused(&bad, MCPSIG_EURI, "absolute", "relative URI");
  bad.uri = "ftp://a.example/";
  refused(&bad, MCPSIG_EURI, "http", "non-http(s) URI");
  bad = sp;
  bad.identity = "typo";
  refused(&bad, MCPSIG_ENOIDENT, "add-identity", "an unknown identity is refused, and says how to add it");
  bad = sp;
  bad.method = "PO ST";
  refused(&bad, MCPSIG_EPARAM, "method", "a method that is not a token");
  struct proto_pair crlf[] = { { "MCP-Session-Id", "s1\r\nEvil: 1" } };
  bad = sp;
  bad.headers = crlf;
  refused(&bad, MCPSIG_EHEADER, "CR, LF", "CR/LF in a covered value");
  struct proto_pair nonascii[] = { { "MCP-Session-Id", "s\xc3\xa9" } };
  bad.headers = nonascii;
  refused(&bad, MCPSIG_EHEADER, "non-ASCII", "non-ASCII in a covered value");
  struct proto_pair badname[] = { { "Bad Name", "v" } };
  bad.headers = badname;
  refused(&bad, MCPSIG_EHEADER, "field name", "an invalid header name");
  bad = sp;
  const char *upper[] = { "Content-Type" };
  bad.components = upper;
  bad.n_components = 1;
  refused(&bad, MCPSIG_ECOMPONENT, "lowercase", "an upper-case extra component");
  bad = sp;
  const char *absent[] = { "content-type" };
  bad.components = absent;
  bad.n_components = 1;
  refused(&bad, MCPSIG_EHEADER, "missing", "a covered header that is missing");
  bad = sp;
  bad.accept_signature = "sig1=(\"@method\" \"x-not-there\");created";
  refused(&bad, MCPSIG_EHEADER, "x-not-there", "Accept-Signature naming a header the request lacks");
  bad.accept_signature = "sig1=(\"@method\";bs)";
  refused(&bad, MCPSIG_EACCEPT, "parameters", "Accept-Signature component with parameters");
  bad.accept_signature = "garbage(";
  refused(&bad, MCPSIG_EACCEPT, "RFC 8941", "an Accept-Signature that does not parse");
  bad = sp;
  bad.label = "Sig1";
  refused(&bad, MCPSIG_EPARAM, "label", "an invalid label");
  bad = sp;
  bad.content_digest = "sha-256=:nope:";
  refused(&bad, MCPSIG_EPARAM, "content_digest", "a malformed content_digest");
  bad = sp;
  bad.content_digest = "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:";
  bad.body = (const unsigned char *)"x";
  bad.body_len = 1;
  bad.has_body = true;
  refused(&bad, MCPSIG_EPARAM, "not both", "body and content_digest together");
  struct proto_pair wrongdigest[] = { { "Content-Digest", "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:" } };
  bad = sp;
  bad.headers = wrongdigest;
  bad.n_headers = 1;
  bad.body = (const unsigned char *)"x";
  bad.body_len = 1;
  bad.has_body = true;
  refused(&bad, MCPSIG_EHEADER, "does not match", "a Content-Digest header that does not match the body");
  bad = sp;
  bad.key = "pending";
  ok(a.n_bindings == 0, "no binding exists yet");
  refused(&bad, MCPSIG_ENOROTATION, "no rotation is pending", "key \"pending\" without a pending rotation");
  ok(a.n_bindings == 0, "and it created no binding");
  bad.key = "newest";
  refused(&bad, MCPSIG_EPARAM, "active", "an unknown key selector");

  /* ---- a good request, then Accept-Signature parameters that cannot be honoured ---- */
  ok(sign(&sp, &res, &rep) == 0 && strstr(res.headers.signature_input, "\"mcp-session-id\"") &&
       !strstr(res.headers.signature_input, "alg="),
     "a good request signs, covering the session id and never alg");
  char keyid[64];
  snprintf(keyid, sizeof(keyid), "%s", res.keyid);
  reply_free(&rep);
  bad = sp;
  bad.accept_signature = "sig1=(\"@method\");keyid=\"someone-else\"";
  refused(&bad, MCPSIG_EACCEPT, "keyid", "Accept-Signature asking for another key");
  bad.accept_signature = "sig1=(\"@method\");alg=\"ecdsa-p256-sha256\"";
  refused(&bad, MCPSIG_EACCEPT, "algorithm", "Accept-Signature asking for another algorithm");
  char want_keyid[128];
  snprintf(want_keyid, sizeof(want_keyid), "sig9=(\"@method\");keyid=\"%s\";alg=\"ed25519\";tag=\"other\";nonce=\"n-1\"", keyid);
  bad.accept_signature = want_keyid;
  ok(sign(&bad, &res, &rep) == 0 && strncmp(res.headers.signature_input, "sig9=(\"@method\" \"@target-uri\"", 29) == 0 &&
       strstr(res.headers.signature_input, ";nonce=\"n-1\";") && strstr(res.headers.signature_input, ";tag=\"") &&
       !strstr(res.headers.signature_input, "tag=\"other\"") && !strstr(res.headers.signature_input, "alg"),
     "Accept-Signature: label used, nonce copied, the identity tag kept, alg never sent");
  reply_free(&rep);

  /* Fresh nonces: two signatures of the same request differ. */
  char n1[200];
  sign(&sp, &res, &rep);
  snprintf(n1, sizeof(n1), "%s", strstr(res.headers.signature_input, "nonce="));
  reply_free(&rep);
  sign(&sp, &res, &rep);
  ok(strcmp(n1, strstr(res.headers.signature_input, "nonce=")) != 0, "every signature gets a fresh nonce");
  reply_free(&rep);

  /* ---- identities ---- */
  struct proto_identity_params ip = { .identity = "bad/name" };
  ok(dcall(&a, "identity.add", &proto_identity_params_schema, &ip, NULL, NULL, &rep) == MCPSIG_EPARAM,
     "an identity name with '/' is refused");
  reply_free(&rep);
  ip.identity = "..";
  ok(dcall(&a, "identity.add", &proto_identity_params_schema, &ip, NULL, NULL, &rep) == MCPSIG_EPARAM,
     "an identity name '..' is refused");
  reply_free(&rep);
  ip.identity = "default";
  ok(dcall(&a, "identity.add", &proto_identity_params_schema, &ip, NULL, NULL, &rep) == MCPSIG_EEXIST,
     "adding an existing identity is refused");
  reply_free(&rep);
  ip.identity = "work";
  ip.alg = "rsa";
  ok(dcall(&a, "identity.add", &proto_identity_params_schema, &ip, NULL, NULL, &rep) == MCPSIG_EALG,
     "an unsupported key type is refused");
  reply_free(&rep);
  ip.alg = NULL;
  ok(dcall(&a, "identity.add", &proto_identity_params_schema, &ip, NULL, NULL, &rep) == 0, "identity.add work");
  reply_free(&rep);
  struct proto_sign_params wsp = sp;
  wsp.identity = "work";
  ok(sign(&wsp, &res, &rep) == 0 && strcmp(res.keyid, keyid) != 0, "another identity, same origin: another key");
  reply_free(&rep);

  ok(dcall(&a, "identity.list", NULL, NULL, &proto_list_result_schema, &list, &rep) == 0 && list.n_identities == 2 &&
       list.n_bindings == 2 && strcmp(list.bindings[0].identity, "default") == 0 &&
       strcmp(list.bindings[0].state, "active") == 0 && list.bindings[0].pending_keyid == NULL,
     "identity.list: both identities, sorted bindings");
  reply_free(&rep);

  /* ---- import ---- */
  static const unsigned char seed[32] = { 1, 2, 3 };
  struct proto_import_params imp = { .origin = "https://a.example", .seed = seed, .seed_len = 32, .has_seed = true };
  ok(dcall(&a, "identity.import", &proto_import_params_schema, &imp, &proto_public_result_schema, &pub, &rep) ==
       MCPSIG_EEXIST,
     "import into an existing binding is refused (its tag would change)");
  reply_free(&rep);
  imp.origin = "https://imported.example";
  imp.seed_len = 31;
  ok(dcall(&a, "identity.import", &proto_import_params_schema, &imp, &proto_public_result_schema, &pub, &rep) ==
       MCPSIG_EKEY,
     "a 31-byte seed is refused");
  reply_free(&rep);
  imp.seed_len = 32;
  imp.jwk = (const unsigned char *)"{}";
  imp.jwk_len = 2;
  imp.has_jwk = true;
  ok(dcall(&a, "identity.import", &proto_import_params_schema, &imp, &proto_public_result_schema, &pub, &rep) ==
       MCPSIG_EPARAM,
     "a seed and a JWK together are refused");
  reply_free(&rep);
  imp.has_jwk = false;
  ok(dcall(&a, "identity.import", &proto_import_params_schema, &imp, &proto_public_result_schema, &pub, &rep) == 0 &&
       strcmp(pub.tag, pub.keyid) == 0,
     "a new binding imports, tag = the key's thumbprint");
  reply_free(&rep);

  /* ---- remove ---- */
  struct proto_identity_params rp = { .origin = "https://imported.example/" };
  ok(dcall(&a, "identity.remove", &proto_identity_params_schema, &rp, NULL, NULL, &rep) == 0 &&
       !agent_binding_find(&a, agent_identity_find(&a, "default"), "https://imported.example"),
     "identity.remove of one binding");
  reply_free(&rep);
  ok(dcall(&a, "identity.remove", &proto_identity_params_schema, &rp, NULL, NULL, &rep) == MCPSIG_ENOBINDING,
     "removing it twice says there is no such binding");
  reply_free(&rep);
  struct proto_identity_params both = { .origin = "https://a.example/", .all = true };
  ok(dcall(&a, "identity.remove", &proto_identity_params_schema, &both, NULL, NULL, &rep) == MCPSIG_EPARAM,
     "origin and all together are refused");
  reply_free(&rep);
  struct proto_identity_params all = { .all = true };
  ok(dcall(&a, "identity.remove", &proto_identity_params_schema, &all, NULL, NULL, &rep) == 0 &&
       agent_identity_find(&a, "default") && agent_identity_find(&a, "default")->n_bindings == 0,
     "removing all of default empties it; default itself always exists");
  reply_free(&rep);

  /* ---- envelopes that are not requests ---- */
  static const unsigned char not_array[] = { 0xa3, 'a', 'b', 'c' };
  raw_message(not_array, sizeof(not_array), MCPSIG_EPROTO, "a bare string: error reply, connection to close");
  static const unsigned char response[] = { 0x94, 0x01, 0x01, 0xc0, 0xc0 };
  raw_message(response, sizeof(response), MCPSIG_EPROTO, "a response sent to the agent: error, close");
  static const unsigned char notif[] = { 0x93, 0x02, 0xa1, 'x', 0x90 };
  raw_message(notif, sizeof(notif), sizeof(notif), "a notification: no reply, connection stays");
  static const unsigned char badparams[] = { 0x94, 0x00, 0x07, 0xa5, 'h', 'e', 'l', 'l', 'o', 0x92, 0x80, 0x80 };
  raw_message(badparams, sizeof(badparams), sizeof(badparams), "params with two maps: error reply, connection stays");
  static const unsigned char toodeep[] = { 0x94, 0x00, 0x07, 0xa5, 'h', 'e', 'l', 'l', 'o', 0x91, 0x91, 0x91,
                                           0x91, 0x91, 0x91, 0x91, 0x91, 0x90 };
  raw_message(toodeep, sizeof(toodeep), MCPSIG_EDEPTH, "nesting beyond the limit: error, close");

  test_agent_free(&a, dir);
  /* The hostile-input suite is generated from proto_methods: it must name every method the dispatcher has. */
  size_t in_both = 0;
  for (size_t i = 0; i < dispatch_method_count(); i++)
    for (size_t j = 0; j < proto_n_methods; j++)
      if (strcmp(dispatch_method_name(i), proto_methods[j].name) == 0)
        in_both++;
  ok(in_both == dispatch_method_count() && in_both == proto_n_methods,
     "proto_methods (the hostile-input suite's table) and the dispatcher name the same methods");
  ok(dispatch_method_name(dispatch_method_count()) == NULL, "dispatch_method_name past the end is NULL");
  return done_testing();
}
