/*
 * load-client: many MCP hosts signing at once, for the load tests.
 *
 *   load-client SOCKET [--clients N] [--signatures N] [--url URL] [--control]
 *
 * Each of N threads opens its own libmcpsig connection and signs a typical
 * MCP request N times: POST URL with a JSON-RPC tools/call body of about 300
 * bytes and the MCP-Protocol-Version and MCP-Session-Id headers. Every reply
 * is checked for form (independent verification of the signatures is done by
 * the interop tests): status 0, the binding's keyid (from mcpsig_public()),
 * label sig1 and alg ed25519, the Content-Digest of the body as computed
 * here, a Signature-Input naming the keyid, and a Signature of the form
 * sig1=:<88 base64 characters>: that decodes to exactly 64 bytes.
 *
 * Every signature asked for is counted once, as ok or as an error, so
 * ok + errors = clients * signatures. Before the run the checker is shown to
 * refuse broken replies. With --control, one deliberately invalid request
 * (a URI with the default port, which the agent refuses with EURI) goes
 * through the same counting code into a counter of its own, which must read
 * 1 and is never part of the totals.
 *
 * Prints "name value" lines on stdout (keyid, clients, signatures_per_client,
 * ok, errors, control_errors, checker_selftest, seconds,
 * signatures_per_second) and the first few errors on stderr. Exits 0 when
 * there were no errors and, with --control, the control counted exactly one.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sodium.h>

#include "mcpsig.h"

#define TIMEOUT_MS 20000
#define MAX_REPORTED 10

struct totals {
  pthread_mutex_t lock;
  long ok;
  long errors;
  int reported;
};

struct worker {
  pthread_t thread;
  int index;
  long ok, errors;
};

static const char *sock_path;
static const char *url = "https://mcp.example.com/mcp";
static long n_signatures = 2000;
static char keyid[128];
static pthread_barrier_t start_line;
static struct totals report = { PTHREAD_MUTEX_INITIALIZER, 0, 0, 0 };

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void report_error(int client, long seq, const char *what, const char *detail) {
  pthread_mutex_lock(&report.lock);
  if (client < 0)
    fprintf(stderr, "load-client: the control request (an error is expected): %s%s%s\n", what, detail ? ": " : "",
            detail ? detail : "");
  else if (report.reported++ < MAX_REPORTED)
    fprintf(stderr, "load-client: client %d, signature %ld: %s%s%s\n", client, seq, what, detail ? ": " : "",
            detail ? detail : "");
  pthread_mutex_unlock(&report.lock);
}

/* Signature is "sig1=:" 88 characters of padded base64 ":" and decodes to 64 bytes. */
static bool signature_well_formed(const char *sig) {
  static const char prefix[] = "sig1=:";
  unsigned char raw[96];
  size_t raw_len = 0;
  const char *end = NULL;
  size_t len = strlen(sig);

  if (len != sizeof(prefix) - 1 + 88 + 1 || strncmp(sig, prefix, sizeof(prefix) - 1) != 0 || sig[len - 1] != ':')
    return false;
  if (sodium_base642bin(raw, sizeof(raw), sig + sizeof(prefix) - 1, 88, NULL, &raw_len, &end,
                        sodium_base64_VARIANT_ORIGINAL) != 0)
    return false;
  return raw_len == 64 && end == sig + sizeof(prefix) - 1 + 88;
}

/* NULL if the reply is well formed, else what is wrong with it. */
static const char *check_reply(const char *want_keyid, const char *want_digest, const char *got_keyid,
                               const char *label, const char *alg, const char *content_digest,
                               const char *signature_input, const char *signature) {
  char needle[160];
  if (!got_keyid || strcmp(got_keyid, want_keyid) != 0)
    return "keyid is not the binding's";
  if (!label || strcmp(label, "sig1") != 0)
    return "label is not sig1";
  if (!alg || strcmp(alg, "ed25519") != 0)
    return "alg is not ed25519";
  if (!content_digest || strcmp(content_digest, want_digest) != 0)
    return "Content-Digest is not that of the body";
  snprintf(needle, sizeof(needle), ";keyid=\"%s\"", want_keyid);
  if (!signature_input || strncmp(signature_input, "sig1=(", 6) != 0 || !strstr(signature_input, needle))
    return "Signature-Input does not name sig1 and the keyid";
  if (!signature || !signature_well_formed(signature))
    return "Signature is not sig1=:<88 base64 characters>:";
  return NULL;
}

/* The checker must refuse each of these broken replies (built from a good one). */
static bool checker_selftest(void) {
  char digest[MCPSIG_CONTENT_DIGEST_LEN];
  char input[256], good_sig[100], other_keyid[128];
  const char *b = "{}";
  unsigned char raw[64];

  memset(raw, 0xa5, sizeof(raw));
  mcpsig_content_digest(b, strlen(b), digest, sizeof(digest));
  snprintf(input, sizeof(input), "sig1=(\"@method\");created=1;keyid=\"%s\"", keyid);
  memcpy(good_sig, "sig1=:", 6);
  sodium_bin2base64(good_sig + 6, sizeof(good_sig) - 6, raw, sizeof(raw), sodium_base64_VARIANT_ORIGINAL);
  strcat(good_sig, ":");
  snprintf(other_keyid, sizeof(other_keyid), "%s", keyid);
  other_keyid[0] = other_keyid[0] == 'A' ? 'B' : 'A';

  char short_sig[100], bad_char[100], no_colon[100], long_sig[120];
  snprintf(short_sig, sizeof(short_sig), "sig1=:%.87s:", good_sig + 6);
  snprintf(bad_char, sizeof(bad_char), "%s", good_sig);
  bad_char[10] = '-';
  snprintf(no_colon, sizeof(no_colon), "%.94s", good_sig);
  snprintf(long_sig, sizeof(long_sig), "sig1=:AAAA%s", good_sig + 6);

  if (check_reply(keyid, digest, keyid, "sig1", "ed25519", digest, input, good_sig) != NULL)
    return false; /* the good reply itself must pass */
  const char *bad[] = {
    check_reply(keyid, digest, other_keyid, "sig1", "ed25519", digest, input, good_sig),
    check_reply(keyid, digest, keyid, "sig2", "ed25519", digest, input, good_sig),
    check_reply(keyid, digest, keyid, "sig1", "ecdsa-p256-sha256", digest, input, good_sig),
    check_reply(keyid, digest, keyid, "sig1", "ed25519", "sha-256=:AAAA:", input, good_sig),
    check_reply(other_keyid, digest, keyid, "sig1", "ed25519", digest, input, good_sig),
    check_reply(keyid, digest, keyid, "sig1", "ed25519", digest, input, short_sig),
    check_reply(keyid, digest, keyid, "sig1", "ed25519", digest, input, bad_char),
    check_reply(keyid, digest, keyid, "sig1", "ed25519", digest, input, no_colon),
    check_reply(keyid, digest, keyid, "sig1", "ed25519", digest, input, long_sig),
    check_reply(keyid, digest, keyid, "sig1", "ed25519", digest, input, NULL),
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    if (bad[i] == NULL)
      return false;
  return true;
}

static bool connection_lost(int r) {
  return r == MCPSIG_ETIMEDOUT || r == MCPSIG_ECLOSED || r == MCPSIG_ECONNECT || r == -EPIPE || r == -ECONNRESET;
}

/*
 * Signs request seq of one client and counts it into *ok or *errors. A lost
 * connection is counted and replaced, so the next request gets a fresh one.
 * Returns the library's code (0 on a well-formed reply, 1 on a malformed one).
 */
static int sign_one(mcpsig_client **agent, int client, long seq, const char *uri, long *ok, long *errors) {
  char body[512], session[64], digest[MCPSIG_CONTENT_DIGEST_LEN];
  mcpsig_signature *sig = NULL;

  snprintf(session, sizeof(session), "sess-%04d-5c1d0a7e9b3f", client);
  const mcpsig_header headers[] = {
    { "Content-Type", "application/json" },
    { "Accept", "application/json, text/event-stream" },
    { "MCP-Protocol-Version", "2025-06-18" },
    { "MCP-Session-Id", session },
  };
  int len = snprintf(body, sizeof(body),
                     "{\"jsonrpc\":\"2.0\",\"id\":%ld,\"method\":\"tools/call\",\"params\":{\"name\":\"search_documents\","
                     "\"arguments\":{\"query\":\"quarterly revenue by region\",\"limit\":25,\"filters\":{\"owner\":"
                     "\"team-analytics\",\"updated_after\":\"2025-01-01T00:00:00Z\",\"tags\":[\"finance\",\"reporting\","
                     "\"q3\"]}},\"_meta\":{\"progressToken\":\"client-%04d-request-%08ld\"}}}",
                     seq + 1, client, seq);
  mcpsig_content_digest(body, (size_t)len, digest, sizeof(digest));
  mcpsig_sign_request req = {
    .method = "POST", .uri = uri,
    .headers = headers, .n_headers = sizeof(headers) / sizeof(headers[0]),
    .body = body, .body_len = (size_t)len,
  };
  int r = *agent ? mcpsig_sign_http(*agent, &req, &sig) : MCPSIG_ECONNECT;
  if (r < 0) {
    (*errors)++;
    report_error(client, seq, mcpsig_strerror(r), *agent ? mcpsig_last_error(*agent) : NULL);
    if (connection_lost(r)) {
      *agent = mcpsig_close(*agent);
      if (mcpsig_connect(agent, sock_path, TIMEOUT_MS) < 0)
        *agent = NULL;
    }
    return r;
  }
  const char *bad = check_reply(keyid, digest, sig->keyid, sig->label, sig->alg, sig->content_digest,
                                sig->signature_input, sig->signature);
  if (bad) {
    (*errors)++;
    report_error(client, seq, bad, sig->signature);
  } else {
    (*ok)++;
  }
  mcpsig_signature_free(sig);
  return bad ? 1 : 0;
}

static void *run_client(void *arg) {
  struct worker *w = arg;
  mcpsig_client *agent = NULL;
  int r = mcpsig_connect(&agent, sock_path, TIMEOUT_MS);
  if (r < 0) {
    report_error(w->index, 0, "cannot connect", mcpsig_strerror(r));
    agent = NULL;
  }
  pthread_barrier_wait(&start_line);
  for (long seq = 0; seq < n_signatures; seq++)
    sign_one(&agent, w->index, seq, url, &w->ok, &w->errors);
  mcpsig_close(agent);
  pthread_mutex_lock(&report.lock);
  report.ok += w->ok;
  report.errors += w->errors;
  pthread_mutex_unlock(&report.lock);
  return NULL;
}

static int usage(void) {
  fprintf(stderr, "usage: load-client SOCKET [--clients N] [--signatures N] [--url URL] [--control]\n");
  return 2;
}

int main(int argc, char **argv) {
  long n_clients = 64;
  bool control = false;
  mcpsig_client *agent = NULL;
  mcpsig_public_info *pub = NULL;

  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--clients") == 0 && i + 1 < argc)
      n_clients = strtol(argv[++i], NULL, 10);
    else if (strcmp(argv[i], "--signatures") == 0 && i + 1 < argc)
      n_signatures = strtol(argv[++i], NULL, 10);
    else if (strcmp(argv[i], "--url") == 0 && i + 1 < argc)
      url = argv[++i];
    else if (strcmp(argv[i], "--control") == 0)
      control = true;
    else if (!sock_path && argv[i][0] != '-')
      sock_path = argv[i];
    else
      return usage();
  }
  if (!sock_path || n_clients < 1 || n_clients > 200 || n_signatures < 1)
    return usage();
  if (sodium_init() < 0)
    return 1;

  /* The binding's keyid, which every signature must name. */
  int r = mcpsig_connect(&agent, sock_path, TIMEOUT_MS);
  if (r < 0 || (r = mcpsig_public(agent, NULL, url, &pub)) < 0) {
    fprintf(stderr, "load-client: cannot get the public key of %s: %s\n", url,
            agent ? mcpsig_last_error(agent) : mcpsig_strerror(r));
    return 1;
  }
  snprintf(keyid, sizeof(keyid), "%s", pub->keyid);
  mcpsig_public_info_free(pub);
  printf("keyid %s\n", keyid);

  bool selftest = checker_selftest();
  printf("checker_selftest %s\n", selftest ? "ok" : "failed");

  long control_ok = 0, control_errors = 0;
  int control_code = 0;
  if (control) {
    /* Same code path, own counters: this one must fail and be counted. */
    char bad_uri[512];
    const char *scheme_end = strstr(url, "://");
    const char *path = scheme_end ? strchr(scheme_end + 3, '/') : NULL;
    snprintf(bad_uri, sizeof(bad_uri), "%.*s:443%s", path ? (int)(path - url) : (int)strlen(url), url,
             path ? path : "/");
    control_code = sign_one(&agent, -1, 0, bad_uri, &control_ok, &control_errors);
    printf("control_errors %ld\n", control_errors);
    printf("control_code %d\n", control_code);
  }
  agent = mcpsig_close(agent);

  struct worker *w = calloc((size_t)n_clients, sizeof(*w));
  if (!w || pthread_barrier_init(&start_line, NULL, (unsigned)n_clients + 1) != 0)
    return 1;
  long started = 0;
  for (long i = 0; i < n_clients; i++) {
    w[i].index = (int)i;
    if (pthread_create(&w[i].thread, NULL, run_client, &w[i]) != 0)
      break;
    started++;
  }
  if (started != n_clients) {
    fprintf(stderr, "load-client: could only start %ld threads\n", started);
    return 1; /* the barrier would never open; exiting ends the others */
  }
  pthread_barrier_wait(&start_line);
  double t0 = now();
  for (long i = 0; i < n_clients; i++)
    pthread_join(w[i].thread, NULL);
  double secs = now() - t0;
  free(w);

  printf("clients %ld\n", n_clients);
  printf("signatures_per_client %ld\n", n_signatures);
  printf("ok %ld\n", report.ok);
  printf("errors %ld\n", report.errors);
  printf("seconds %.3f\n", secs);
  printf("signatures_per_second %.0f\n", secs > 0 ? (double)report.ok / secs : 0.0);
  if (report.ok + report.errors != n_clients * n_signatures)
    fprintf(stderr, "load-client: miscounted: %ld + %ld != %ld\n", report.ok, report.errors, n_clients * n_signatures);
  bool pass = selftest && report.errors == 0 && report.ok == n_clients * n_signatures;
  if (control)
    pass = pass && control_errors == 1 && control_ok == 0 && control_code == MCPSIG_EURI;
  return pass ? 0 : 1;
}
