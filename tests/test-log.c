/*
 * test-log.c: the logging module through its output function: each event's
 * fields and MESSAGE_ID, the journal fields, the level, the choice between
 * the journal and stderr, and that no private key, body or signature ever
 * reaches a record, even at debug level.
 */
#include "config.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sodium.h>

#include "dispatch-call.h"
#include "jwk.h"
#include "log.h"
#include "tap.h"

#define MAX_RECORDS 64

struct capture {
  size_t n;
  struct log_record rec[MAX_RECORDS];
  char text[MAX_RECORDS][2048];   /* every field of the record, joined */
};

static char *dup_or_null(const char *s) {
  return s ? strdup(s) : NULL;
}

static void capture_sink(const struct log_record *rec, void *userdata) {
  struct capture *c = userdata;
  if (c->n == MAX_RECORDS)
    return;
  struct log_record *r = &c->rec[c->n];
  *r = *rec;
  r->message = dup_or_null(rec->message);
  r->identity = dup_or_null(rec->identity);
  r->origin = dup_or_null(rec->origin);
  r->tag = dup_or_null(rec->tag);
  r->keyid = dup_or_null(rec->keyid);
  r->new_keyid = dup_or_null(rec->new_keyid);
  r->label = dup_or_null(rec->label);
  r->peer_exe = dup_or_null(rec->peer_exe);
  char *fields[LOG_FIELDS_MAX];
  size_t n = log_journal_fields(rec, fields, LOG_FIELDS_MAX);
  c->text[c->n][0] = '\0';
  for (size_t i = 0; i < n; i++) {
    strncat(c->text[c->n], fields[i], sizeof(c->text[0]) - strlen(c->text[c->n]) - 2);
    strcat(c->text[c->n], "\n");
  }
  log_fields_free(fields, n);
  c->n++;
}

static void capture_free(struct capture *c) {
  for (size_t i = 0; i < c->n; i++) {
    struct log_record *r = &c->rec[i];
    free((char *)r->message);
    free((char *)r->identity);
    free((char *)r->origin);
    free((char *)r->tag);
    free((char *)r->keyid);
    free((char *)r->new_keyid);
    free((char *)r->label);
    free((char *)r->peer_exe);
  }
  c->n = 0;
}

static const struct log_record *find(const struct capture *c, const char *message_id) {
  for (size_t i = 0; i < c->n; i++)
    if (c->rec[i].message_id && strcmp(c->rec[i].message_id, message_id) == 0)
      return &c->rec[i];
  return NULL;
}

static bool anywhere(const struct capture *c, const char *needle) {
  for (size_t i = 0; i < c->n; i++)
    if (strstr(c->text[i], needle))
      return true;
  return false;
}

static struct capture cap;

int main(void) {
  struct agent a;
  char dir[256];
  struct reply rep;
  struct proto_public_result pub;
  struct proto_sign_result sr;

  if (sodium_init() < 0)
    return 99;
  jwk_json_memory_install();

  /* ---- the journal or stderr ---- */
  unsetenv("JOURNAL_STREAM");
  ok(!log_stderr_is_journal(), "without JOURNAL_STREAM, records go to stderr");
  struct stat st;
  char v[64];
  fstat(STDERR_FILENO, &st);
  snprintf(v, sizeof(v), "%llu:%llu", (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
  setenv("JOURNAL_STREAM", v, 1);
  ok(log_stderr_is_journal(), "with JOURNAL_STREAM naming stderr, to the journal");
  snprintf(v, sizeof(v), "%llu:%llu", (unsigned long long)st.st_dev, (unsigned long long)st.st_ino + 1);
  setenv("JOURNAL_STREAM", v, 1);
  ok(!log_stderr_is_journal(), "JOURNAL_STREAM naming another file (stderr was redirected): stderr");
  setenv("JOURNAL_STREAM", "garbage", 1);
  ok(!log_stderr_is_journal(), "a malformed JOURNAL_STREAM: stderr");
  unsetenv("JOURNAL_STREAM");

  /* The stderr fallback writes one line, with the peer. */
  int pfd[2], saved = dup(STDERR_FILENO);
  if (pipe(pfd) == 0) {
    log_open();
    fflush(stderr);
    dup2(pfd[1], STDERR_FILENO);
    log_msg(LOG_WARNING, "disk almost full");
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(pfd[1]);
    char line[256] = "";
    ssize_t n = read(pfd[0], line, sizeof(line) - 1);
    line[n > 0 ? n : 0] = '\0';
    close(pfd[0]);
    is_str(line, "mcpsig-agent: warning: disk almost full\n", "the stderr fallback: one line, with its priority");
  }

  /* ---- levels ---- */
  int prio = -1;
  ok(log_level_parse("debug", &prio) == 0 && prio == LOG_DEBUG && log_level_parse("warning", &prio) == 0 &&
       prio == LOG_WARNING && log_level_parse("3", &prio) == 0 && prio == LOG_ERR,
     "levels parse by name and number");
  ok(log_level_parse("loud", &prio) < 0 && log_level_parse("9", &prio) < 0, "an unknown level is refused");
  log_set_sink(capture_sink, &cap);
  log_set_level(LOG_WARNING);
  log_msg(LOG_INFO, "quiet");
  log_msg(LOG_ERR, "loud");
  ok(cap.n == 1 && strcmp(cap.rec[0].message, "loud") == 0, "records above the level are dropped");
  capture_free(&cap);
  log_set_level(LOG_DEBUG);

  /* ---- events through the real dispatcher ---- */
  if (!ok(test_agent_new(&a, dir, sizeof(dir)) == 0, "agent on a temporary keystore"))
    return done_testing();
  capture_free(&cap); /* the identity "default" was created */

  unsigned char seed[32];
  for (size_t i = 0; i < sizeof(seed); i++)
    seed[i] = (unsigned char)(0xA0 + i);
  struct proto_import_params ip = { .origin = "https://log.example", .seed = seed, .seed_len = 32, .has_seed = true };
  ok(dcall(&a, "identity.import", &proto_import_params_schema, &ip, &proto_public_result_schema, &pub, &rep) == 0,
     "a key is imported from a known seed");
  char keyid[64], tag[64];
  snprintf(keyid, sizeof(keyid), "%s", pub.keyid);
  snprintf(tag, sizeof(tag), "%s", pub.tag);
  reply_free(&rep);

  const struct log_record *r = find(&cap, LOG_ID_KEY_CREATED);
  ok(r && r->priority == LOG_INFO && strcmp(r->identity, "default") == 0 &&
       strcmp(r->origin, "https://log.example") == 0 && strcmp(r->tag, tag) == 0 && strcmp(r->keyid, keyid) == 0,
     "key created: MESSAGE_ID, identity, origin, tag, keyid");

  static const char marker[] = "BODY-MARKER-7f3a9c";
  char body[128];
  snprintf(body, sizeof(body), "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"x\":\"%s\"}}", marker);
  struct proto_pair hdr[] = { { "Mcp-Session-Id", "SESSION-MARKER-19" } };
  struct proto_sign_params sp = { .method = "POST", .uri = "https://log.example/mcp", .headers = hdr, .n_headers = 1,
                                  .body = (const unsigned char *)body, .body_len = strlen(body), .has_body = true };
  ok(dcall(&a, "sign.http", &proto_sign_params_schema, &sp, &proto_sign_result_schema, &sr, &rep) == 0,
     "a request is signed");
  char signature[256];
  snprintf(signature, sizeof(signature), "%s", sr.headers.signature);
  reply_free(&rep);
  r = find(&cap, LOG_ID_SIGNATURE);
  ok(r && r->priority == LOG_DEBUG && strcmp(r->keyid, keyid) == 0 && strcmp(r->label, "sig1") == 0 &&
       strcmp(r->origin, "https://log.example") == 0,
     "signature (debug level): MESSAGE_ID, keyid, label, origin");

  struct proto_rotate_params rp = { NULL, "https://log.example" };
  struct proto_binding b;
  ok(dcall(&a, "rotate.begin", &proto_rotate_params_schema, &rp, &proto_binding_schema, &b, &rep) == 0,
     "a rotation begins");
  char newkey[64];
  snprintf(newkey, sizeof(newkey), "%s", b.pending_keyid ? b.pending_keyid : "");
  reply_free(&rep);
  struct proto_rotate_sign_params rsp = { .uri = "https://log.example/mcp", .id = { NULL, 9 }, .has_id = true };
  struct proto_rotate_sign_result rr;
  ok(dcall(&a, "sign.rotate", &proto_rotate_sign_params_schema, &rsp, &proto_rotate_sign_result_schema, &rr, &rep) ==
       0,
     "the rotation is signed");
  char rot_signature[512];
  snprintf(rot_signature, sizeof(rot_signature), "%s", rr.headers.signature);
  reply_free(&rep);
  ok(dcall(&a, "rotate.abort", &proto_rotate_params_schema, &rp, &proto_binding_schema, &b, &rep) == 0,
     "and aborted");
  reply_free(&rep);
  r = find(&cap, LOG_ID_ROTATION_BEGIN);
  ok(r && strcmp(r->keyid, keyid) == 0 && strcmp(r->new_keyid, newkey) == 0 && strcmp(r->tag, tag) == 0,
     "rotation begin: MESSAGE_ID, old and new keyid, tag");
  r = find(&cap, LOG_ID_ROTATION_ABORT);
  ok(r && strcmp(r->new_keyid, newkey) == 0, "rotation abort: its own MESSAGE_ID");
  ok(!find(&cap, LOG_ID_ROTATION_COMMIT), "no commit was logged for an abort");

  log_peer_refused(-1, (long)getpid(), 65534, "not this agent's user (uid 1000)");
  r = find(&cap, LOG_ID_PEER_REFUSED);
  ok(r && r->priority == LOG_WARNING && r->peer_pid == (long)getpid() && r->peer_uid == 65534 && r->peer_exe &&
       strstr(r->peer_exe, "test-log"),
     "a refused peer: MESSAGE_ID, its pid, uid and executable");

  /* ---- the journal fields ---- */
  ok(anywhere(&cap, "MESSAGE_ID=" LOG_ID_KEY_CREATED "\n") && anywhere(&cap, "MCPSIG_ORIGIN=https://log.example\n") &&
       anywhere(&cap, "MCPSIG_TAG=") && anywhere(&cap, "MCPSIG_KEYID=") && anywhere(&cap, "MCPSIG_IDENTITY=default\n") &&
       anywhere(&cap, "SYSLOG_IDENTIFIER=mcpsig-agent\n") && anywhere(&cap, "PRIORITY=7\n") &&
       anywhere(&cap, "MCPSIG_PEER_UID=65534\n"),
     "journal fields: MESSAGE_ID, MCPSIG_IDENTITY/ORIGIN/TAG/KEYID, PEER_*, PRIORITY, SYSLOG_IDENTIFIER");
  const char *ids[] = { LOG_ID_KEY_CREATED, LOG_ID_SIGNATURE, LOG_ID_ROTATION_BEGIN, LOG_ID_ROTATION_COMMIT,
                        LOG_ID_ROTATION_ABORT, LOG_ID_PEER_REFUSED };
  bool distinct = true;
  for (size_t i = 0; i < 6; i++) {
    distinct = distinct && strlen(ids[i]) == 32 && strspn(ids[i], "0123456789abcdef") == 32;
    for (size_t j = 0; j < i; j++)
      distinct = distinct && strcmp(ids[i], ids[j]) != 0;
  }
  ok(distinct, "six distinct 128-bit MESSAGE_IDs");

  /* ---- no secrets ---- */
  char hex[65], b64[64], b64url[64];
  sodium_bin2hex(hex, sizeof(hex), seed, sizeof(seed));
  sodium_bin2base64(b64, sizeof(b64), seed, sizeof(seed), sodium_base64_VARIANT_ORIGINAL);
  sodium_bin2base64(b64url, sizeof(b64url), seed, sizeof(seed), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  ok(cap.n >= 6 && !anywhere(&cap, hex) && !anywhere(&cap, b64) && !anywhere(&cap, b64url),
     "no record holds the private key (hex, base64 or base64url)");
  ok(!anywhere(&cap, marker) && !anywhere(&cap, "SESSION-MARKER-19") && !anywhere(&cap, "signatures/rotateKey"),
     "no record holds a body or a header value");
  char sigval[128];
  const char *colon = strchr(signature, ':');
  snprintf(sigval, sizeof(sigval), "%.40s", colon ? colon + 1 : signature);
  ok(strlen(sigval) == 40 && !anywhere(&cap, sigval) && !anywhere(&cap, "Signature-Input") &&
       !anywhere(&cap, strchr(rot_signature, ':') + 1),
     "no record holds a signature or a signature header");
  /* The checks above can fail: the same search finds what is there. */
  ok(anywhere(&cap, keyid) && anywhere(&cap, "https://log.example"), "(control: the search finds public values)");

  capture_free(&cap);
  log_set_sink(NULL, NULL);
  test_agent_free(&a, dir);
  return done_testing();
}
