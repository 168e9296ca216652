/*
 * test-rotate.c: the rotation state machine through the socket-free
 * dispatcher: each step's effect in memory and on disk, across a restart,
 * the refusals of every step out of order, the rotateKey body the agent
 * writes, and the events subscribers get.
 */
#include "config.h"

#include <glob.h>
#include <string.h>
#include <sys/stat.h>
#include <sodium.h>
#include <jansson.h>

#include "dispatch-call.h"
#include "jwk.h"
#include "tap.h"

#define ORIGIN "https://a.example"
#define URI "https://a.example/mcp"

static struct agent a;
static char dir[256], ks[400];

/* ---- helpers ---- */

struct event_log {
  size_t n;
  char event[8][8];
  char old_keyid[8][64];
  char new_keyid[8][64];
  char tag[8][64];
};
static struct event_log events;

static void on_event(void *data, const struct proto_rotation_event *ev) {
  struct event_log *log = data;
  if (log->n == 8)
    return;
  snprintf(log->event[log->n], sizeof(log->event[0]), "%s", ev->event);
  snprintf(log->old_keyid[log->n], sizeof(log->old_keyid[0]), "%s", ev->old_keyid);
  snprintf(log->new_keyid[log->n], sizeof(log->new_keyid[0]), "%s", ev->new_keyid);
  snprintf(log->tag[log->n], sizeof(log->tag[0]), "%s", ev->tag);
  log->n++;
}

static int step(const char *method, struct proto_binding *out, struct reply *rep) {
  struct proto_rotate_params p = { NULL, ORIGIN };
  return dcall(&a, method, &proto_rotate_params_schema, &p, &proto_binding_schema, out, rep);
}

static int sign(const char *key, struct proto_sign_result *res, struct reply *rep) {
  struct proto_sign_params sp = { .method = "POST", .uri = URI, .body = (const unsigned char *)"{}", .body_len = 2,
                                  .has_body = true, .key = key };
  return dcall(&a, "sign.http", &proto_sign_params_schema, &sp, &proto_sign_result_schema, res, rep);
}

static int sign_rotate(const struct proto_rotate_sign_params *p, struct proto_rotate_sign_result *res,
                       struct reply *rep) {
  return dcall(&a, "sign.rotate", &proto_rotate_sign_params_schema, p, &proto_rotate_sign_result_schema, res, rep);
}

/* How many files in the binding directory end in suffix. */
static size_t files(const char *suffix) {
  char pattern[600];
  glob_t g;
  snprintf(pattern, sizeof(pattern), "%s/identities/default/bindings/*%s", ks, suffix);
  if (glob(pattern, 0, NULL, &g) != 0)
    return 0;
  size_t n = g.gl_pathc;
  globfree(&g);
  return n;
}

static mode_t pending_mode(void) {
  char pattern[600];
  glob_t g;
  struct stat st;
  snprintf(pattern, sizeof(pattern), "%s/identities/default/bindings/*.pending", ks);
  if (glob(pattern, 0, NULL, &g) != 0)
    return 0;
  mode_t m = stat(g.gl_pathv[0], &st) == 0 ? st.st_mode & 0777 : 0;
  globfree(&g);
  return m;
}

static int restart(void) {
  char err[512];
  agent_done(&a);
  int r = agent_init(&a, ks, err, sizeof(err));
  if (r < 0)
    printf("# agent_init: %s\n", err);
  a.notify = on_event;
  a.notify_data = &events;
  return r;
}

/* Counts the members of a dictionary field: top-level commas outside strings. */
static size_t members(const char *field) {
  size_t n = 1;
  bool in_str = false;
  for (const char *p = field; *p; p++) {
    if (*p == '"' && p[-1] != '\\')
      in_str = !in_str;
    else if (*p == ',' && !in_str)
      n++;
  }
  return n;
}

/* The value of param name (e.g. "nonce") in the member that starts with label. */
static void member_param(const char *field, const char *label, const char *name, char *out, size_t size) {
  char want[80];
  out[0] = '\0';
  snprintf(want, sizeof(want), "%s=(", label);
  const char *m = strstr(field, want);
  if (!m)
    return;
  snprintf(want, sizeof(want), ";%s=\"", name);
  const char *p = strstr(m, want);
  if (!p)
    return;
  p += strlen(want);
  size_t n = strcspn(p, "\"");
  snprintf(out, size, "%.*s", (int)n, p);
}

int main(void) {
  struct reply rep;
  struct proto_binding b;
  struct proto_sign_result sr;
  struct proto_rotate_sign_result rr;
  char k1[64], k2[64], tag[64], v[128], w[128];

  if (sodium_init() < 0)
    return 99;
  jwk_json_memory_install();
  if (!ok(test_agent_new(&a, dir, sizeof(dir)) == 0, "agent on a temporary keystore"))
    return done_testing();
  snprintf(ks, sizeof(ks), "%s/ks", dir);
  a.notify = on_event;
  a.notify_data = &events;

  /* ---- nothing to rotate yet ---- */
  ok(step("rotate.begin", &b, &rep) == MCPSIG_ENOBINDING && strstr(rep.message, ORIGIN) && a.n_bindings == 0,
     "begin without a binding is refused and creates none");
  reply_free(&rep);
  ok(sign(NULL, &sr, &rep) == 0, "a first signature creates the binding");
  snprintf(k1, sizeof(k1), "%s", sr.keyid);
  snprintf(tag, sizeof(tag), "%s", sr.tag);
  reply_free(&rep);

  ok(step("rotate.status", &b, &rep) == 0 && strcmp(b.state, "active") == 0 && !b.pending_keyid &&
       strcmp(b.keyid, k1) == 0 && b.n_retired == 0,
     "status: active, no pending key, nothing retired");
  reply_free(&rep);

  /* ---- out of order: nothing pending ---- */
  ok(step("rotate.commit", &b, &rep) == MCPSIG_ENOROTATION && strstr(rep.message, "no rotation is pending"),
     "commit with nothing pending is refused");
  reply_free(&rep);
  ok(step("rotate.abort", &b, &rep) == MCPSIG_ENOROTATION, "abort with nothing pending is refused");
  reply_free(&rep);
  struct proto_rotate_sign_params rp = { .uri = URI, .id = { NULL, 7 }, .has_id = true };
  ok(sign_rotate(&rp, &rr, &rep) == MCPSIG_ENOROTATION, "sign.rotate with nothing pending is refused");
  reply_free(&rep);
  ok(events.n == 0, "refused steps send no event");

  /* ---- begin ---- */
  ok(step("rotate.begin", &b, &rep) == 0 && strcmp(b.state, "pending") == 0 && b.pending_keyid &&
       strcmp(b.keyid, k1) == 0 && strcmp(b.tag, tag) == 0,
     "begin: pending, the active key and the tag unchanged");
  snprintf(k2, sizeof(k2), "%s", b.pending_keyid ? b.pending_keyid : "");
  reply_free(&rep);
  ok(strcmp(k1, k2) != 0 && strlen(k2) == 43, "the pending key is a new key");
  ok(files(".pending") == 1 && pending_mode() == 0600, "the pending key is on disk, mode 0600");
  ok(events.n == 1 && strcmp(events.event[0], "begin") == 0 && strcmp(events.old_keyid[0], k1) == 0 &&
       strcmp(events.new_keyid[0], k2) == 0 && strcmp(events.tag[0], tag) == 0,
     "a begin event names the tag, the old and the new key");

  ok(step("rotate.begin", &b, &rep) == MCPSIG_EROTATING && strstr(rep.message, k2),
     "a second begin is refused, naming the pending key");
  reply_free(&rep);
  ok(events.n == 1, "and sends no event");

  ok(sign(NULL, &sr, &rep) == 0 && strcmp(sr.keyid, k1) == 0 && strcmp(sr.tag, tag) == 0,
     "while pending, plain signatures use the old key");
  reply_free(&rep);
  ok(sign("active", &sr, &rep) == 0 && strcmp(sr.keyid, k1) == 0, "key \"active\" is the old key too");
  reply_free(&rep);
  ok(sign("pending", &sr, &rep) == 0 && strcmp(sr.keyid, k2) == 0 && strcmp(sr.tag, tag) == 0,
     "key \"pending\" signs with the new key and the same tag");
  reply_free(&rep);

  /* ---- sign.rotate ---- */
  struct proto_pair hdr[] = { { "Mcp-Session-Id", "s-1" }, { "MCP-Protocol-Version", "2025-06-18" } };
  rp.headers = hdr;
  rp.n_headers = 2;
  ok(sign_rotate(&rp, &rr, &rep) == 0, "sign.rotate signs a pending rotation");
  json_t *body = json_loadb((const char *)rr.body, rr.body_len, JSON_REJECT_DUPLICATES, NULL);
  json_t *newkey = json_object_get(json_object_get(body, "params"), "newKey");
  char thumb[KEY_KEYID_LEN + 1] = "";
  ok(body && json_object_size(body) == 4 && strcmp(json_string_value(json_object_get(body, "jsonrpc")), "2.0") == 0 &&
       json_integer_value(json_object_get(body, "id")) == 7 &&
       strcmp(json_string_value(json_object_get(body, "method")), "signatures/rotateKey") == 0 &&
       json_object_size(json_object_get(body, "params")) == 1,
     "the body is {jsonrpc, id, method: signatures/rotateKey, params: {newKey}}");
  ok(newkey && jwk_thumbprint(newkey, thumb) == 0 && strcmp(thumb, k2) == 0 && !json_object_get(newkey, "d"),
     "newKey is the public JWK of the pending key (its thumbprint is the new keyid)");
  ok(strcmp(rr.keyid, k1) == 0 && strcmp(rr.new_keyid, k2) == 0 && strcmp(rr.tag, tag) == 0,
     "the result names the old key, the new key and the tag");
  char digest[MCPSIG_CONTENT_DIGEST_LEN];
  proto_content_digest(rr.body, rr.body_len, digest, sizeof(digest));
  is_str(rr.headers.content_digest, digest, "Content-Digest is the digest of the body returned");
  ok(members(rr.headers.signature_input) == 2 && strncmp(rr.headers.signature_input, "sig-old=(", 9) == 0 &&
       strstr(rr.headers.signature_input, ", sig-new=("),
     "Signature-Input holds sig-old then sig-new");
  ok(members(rr.headers.signature) == 2 && strncmp(rr.headers.signature, "sig-old=:", 9) == 0 &&
       strstr(rr.headers.signature, ", sig-new=:"),
     "Signature holds sig-old then sig-new");
  member_param(rr.headers.signature_input, "sig-old", "keyid", v, sizeof(v));
  member_param(rr.headers.signature_input, "sig-new", "keyid", w, sizeof(w));
  ok(strcmp(v, k1) == 0 && strcmp(w, k2) == 0, "sig-old's keyid is the old key, sig-new's the new key");
  member_param(rr.headers.signature_input, "sig-old", "tag", v, sizeof(v));
  member_param(rr.headers.signature_input, "sig-new", "tag", w, sizeof(w));
  ok(strcmp(v, tag) == 0 && strcmp(w, tag) == 0, "both carry the identity tag");
  member_param(rr.headers.signature_input, "sig-old", "nonce", v, sizeof(v));
  member_param(rr.headers.signature_input, "sig-new", "nonce", w, sizeof(w));
  ok(strlen(v) == 22 && strlen(w) == 22 && strcmp(v, w) != 0, "each has its own 128-bit nonce");
  const char *want = "(\"@method\" \"@target-uri\" \"content-digest\" \"mcp-protocol-version\" \"mcp-session-id\")";
  ok(strstr(rr.headers.signature_input, want) &&
       strstr(strstr(rr.headers.signature_input, want) + 1, want),
     "both cover the full SEP set, session headers included");
  ok(!strstr(rr.headers.signature_input, "alg="), "neither carries alg");
  ok(strstr(rr.headers.signature_agent, "data:application/http-message-signatures-directory+json;base64,") != NULL,
     "Signature-Agent is a data: directory");
  json_decref(body);
  reply_free(&rep);

  rp.id = (struct proto_scalar){ "req \"7\"\\", 0 };
  ok(sign_rotate(&rp, &rr, &rep) == 0 && (body = json_loadb((const char *)rr.body, rr.body_len, 0, NULL)) &&
       strcmp(json_string_value(json_object_get(body, "id")), "req \"7\"\\") == 0,
     "a string id is written as a JSON string, escaped");
  json_decref(body);
  reply_free(&rep);
  struct proto_pair own_digest[] = { { "Content-Digest", "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:" } };
  rp.headers = own_digest;
  rp.n_headers = 1;
  ok(sign_rotate(&rp, &rr, &rep) == MCPSIG_EPARAM && strstr(rep.message, "Content-Digest"),
     "a caller's Content-Digest is refused: the agent writes the body");
  reply_free(&rep);
  rp.headers = hdr;
  rp.n_headers = 2;
  rp.uri = "https://b.example/mcp";
  ok(sign_rotate(&rp, &rr, &rep) == MCPSIG_ENOBINDING && a.n_bindings == 1,
     "sign.rotate for another origin is refused and creates nothing");
  reply_free(&rep);
  rp.uri = URI;
  rp.has_id = false;
  ok(sign_rotate(&rp, &rr, &rep) == MCPSIG_EPARAM && strstr(rep.message, "id"), "sign.rotate without an id is refused");
  reply_free(&rep);
  rp.has_id = true;

  /* ---- a restart keeps both keys ---- */
  ok(restart() == 0, "the agent restarts while a rotation is pending");
  ok(step("rotate.status", &b, &rep) == 0 && strcmp(b.state, "pending") == 0 && b.pending_keyid &&
       strcmp(b.pending_keyid, k2) == 0 && strcmp(b.keyid, k1) == 0,
     "after the restart: still pending, with the same two keys");
  reply_free(&rep);

  /* ---- commit ---- */
  events.n = 0;
  ok(step("rotate.commit", &b, &rep) == 0 && strcmp(b.state, "active") == 0 && strcmp(b.keyid, k2) == 0 &&
       !b.pending_keyid && b.n_retired == 1 && strcmp(b.retired[0], k1) == 0 && strcmp(b.tag, tag) == 0,
     "commit: the new key is active, the old keyid retired, the tag unchanged");
  reply_free(&rep);
  ok(files(".pending") == 0 && files(".discard") == 0 && files(".old") == 0 && files(".binding") == 1,
     "commit leaves one binding file (the replaced one, with k1, is wiped)");
  ok(events.n == 1 && strcmp(events.event[0], "commit") == 0 && strcmp(events.old_keyid[0], k1) == 0 &&
       strcmp(events.new_keyid[0], k2) == 0,
     "a commit event names the old and the new key");
  ok(sign(NULL, &sr, &rep) == 0 && strcmp(sr.keyid, k2) == 0 && strcmp(sr.tag, tag) == 0,
     "after commit every signature uses the new key, same tag");
  reply_free(&rep);
  ok(sign("pending", &sr, &rep) == MCPSIG_ENOROTATION, "key \"pending\" is refused after commit");
  reply_free(&rep);
  ok(restart() == 0 && step("rotate.status", &b, &rep) == 0 && strcmp(b.keyid, k2) == 0 && b.n_retired == 1 &&
       strcmp(b.retired[0], k1) == 0 && strcmp(b.state, "active") == 0,
     "the commit survives a restart");
  reply_free(&rep);

  /* ---- abort ---- */
  events.n = 0;
  char k3[64];
  ok(step("rotate.begin", &b, &rep) == 0 && b.pending_keyid, "a second rotation begins");
  snprintf(k3, sizeof(k3), "%s", b.pending_keyid ? b.pending_keyid : "");
  reply_free(&rep);
  ok(step("rotate.abort", &b, &rep) == 0 && strcmp(b.state, "active") == 0 && strcmp(b.keyid, k2) == 0 &&
       !b.pending_keyid && b.n_retired == 1,
     "abort: back to the active key, nothing retired");
  reply_free(&rep);
  ok(files(".pending") == 0 && files(".discard") == 0, "abort removes the pending key's file");
  ok(events.n == 2 && strcmp(events.event[1], "abort") == 0 && strcmp(events.old_keyid[1], k2) == 0 &&
       strcmp(events.new_keyid[1], k3) == 0,
     "an abort event names the active key and the abandoned one");
  ok(sign("pending", &sr, &rep) == MCPSIG_ENOROTATION, "after abort, key \"pending\" is refused");
  reply_free(&rep);
  ok(sign_rotate(&rp, &rr, &rep) == MCPSIG_ENOROTATION, "after abort, sign.rotate is refused");
  reply_free(&rep);
  ok(step("rotate.commit", &b, &rep) == MCPSIG_ENOROTATION, "after abort, commit is refused");
  reply_free(&rep);
  ok(restart() == 0 && step("rotate.status", &b, &rep) == 0 && strcmp(b.state, "active") == 0 &&
       strcmp(b.keyid, k2) == 0,
     "the abort survives a restart");
  reply_free(&rep);

  /* ---- a pending file the load must not accept ---- */
  agent_done(&a);
  char cmd[1200];
  snprintf(cmd, sizeof(cmd), "cd %s/identities/default/bindings && touch orphan.pending", ks);
  ok(system(cmd) == 0, "an orphan pending file is planted");
  char err[512];
  ok(agent_init(&a, ks, err, sizeof(err)) == MCPSIG_ESTORE && strstr(err, "/identities/default/bindings/orphan.pending") &&
       strstr(err, "without its binding"),
     "a pending key without its binding is refused at load, by name");
  snprintf(cmd, sizeof(cmd), "rm %s/identities/default/bindings/orphan.pending", ks);
  ok(system(cmd) == 0 && agent_init(&a, ks, err, sizeof(err)) == 0, "the keystore loads once it is gone");
  test_agent_free(&a, dir);
  return done_testing();
}
