/*
 * workload.c: the typical MCP request, the operations the bench times
 * through libmcpsig, and the latency and throughput drivers.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <sodium.h>

#include "bench.h"

/* The created time and nonce of the raw floor's base: values of the agent's own length. */
#define BASE_CREATED "1767225600"

void mcp_request_fill(struct mcp_request *m, const char *uri, int client, uint64_t seq) {
  snprintf(m->session, sizeof(m->session), "sess-%04d-5c1d0a7e9b3f", client);
  m->headers[0] = (mcpsig_header){ "Content-Type", "application/json" };
  m->headers[1] = (mcpsig_header){ "Accept", "application/json, text/event-stream" };
  m->headers[2] = (mcpsig_header){ "MCP-Protocol-Version", "2025-06-18" };
  m->headers[3] = (mcpsig_header){ "MCP-Session-Id", m->session };
  /* The body of tests/load-client.c: a tools/call of about 300 bytes. */
  int len = snprintf(m->body, sizeof(m->body),
                     "{\"jsonrpc\":\"2.0\",\"id\":%llu,\"method\":\"tools/call\",\"params\":{\"name\":\"search_documents\","
                     "\"arguments\":{\"query\":\"quarterly revenue by region\",\"limit\":25,\"filters\":{\"owner\":"
                     "\"team-analytics\",\"updated_after\":\"2025-01-01T00:00:00Z\",\"tags\":[\"finance\",\"reporting\","
                     "\"q3\"]}},\"_meta\":{\"progressToken\":\"client-%04d-request-%08llu\"}}}",
                     (unsigned long long)seq + 1, client, (unsigned long long)seq);
  m->body_len = (size_t)len;
  m->req = (mcpsig_sign_request){
    .method = "POST", .uri = uri, .headers = m->headers, .n_headers = 4, .body = m->body, .body_len = m->body_len,
  };
}

/* The value of a component of m: a derived one, a header, or the Content-Digest. */
static const char *component_value(const struct mcp_request *m, const char *name, size_t len,
                                   const char *content_digest) {
  if (len == 7 && memcmp(name, "@method", 7) == 0)
    return m->req.method;
  if (len == 11 && memcmp(name, "@target-uri", 11) == 0)
    return m->req.uri;
  if (len == 14 && strncasecmp(name, "content-digest", 14) == 0)
    return content_digest;
  for (size_t i = 0; i < m->req.n_headers; i++)
    if (strlen(m->req.headers[i].name) == len && strncasecmp(m->req.headers[i].name, name, len) == 0)
      return m->req.headers[i].value;
  return NULL;
}

/* Appends the base of the components listed in params ("(...);created=..."); returns its length or 0. */
static size_t base_build(char *buf, size_t size, const struct mcp_request *m, const char *content_digest,
                         const char *params) {
  size_t used = 0;
  const char *p = params;
  if (*p++ != '(')
    return 0;
  while (*p == '"') {
    const char *name = ++p, *end = strchr(p, '"');
    if (!end)
      return 0;
    const char *v = component_value(m, name, (size_t)(end - name), content_digest);
    if (!v)
      return 0;
    int n = snprintf(buf + used, size - used, "\"%.*s\": %s\n", (int)(end - name), name, v);
    if (n < 0 || (size_t)n >= size - used)
      return 0;
    used += (size_t)n;
    p = end + 1;
    if (*p == ' ')
      p++;
  }
  int n = snprintf(buf + used, size - used, "\"@signature-params\": %s", params);
  if (n < 0 || (size_t)n >= size - used)
    return 0;
  return used + (size_t)n;
}

size_t mcp_signature_base(char *buf, size_t size, const struct mcp_request *m, const char *content_digest,
                          const char *keyid, const char *nonce) {
  char params[512];
  snprintf(params, sizeof(params),
           "(\"@method\" \"@target-uri\" \"content-digest\" \"mcp-protocol-version\" \"mcp-session-id\");created="
           BASE_CREATED ";nonce=\"%s\";keyid=\"%s\";tag=\"%s\"",
           nonce, keyid, keyid);
  return base_build(buf, size, m, content_digest, params);
}

int mcp_signature_verify(const struct mcp_request *m, const mcpsig_signature *sig, const char *jwk, char *err,
                         size_t errlen) {
  unsigned char pk[crypto_sign_PUBLICKEYBYTES], raw[crypto_sign_BYTES];
  char base[4096], digest[MCPSIG_CONTENT_DIGEST_LEN];
  size_t n = 0, label = strlen(sig->label);
  const char *x = strstr(jwk, "\"x\":\"");

  if (!x || sodium_base642bin(pk, sizeof(pk), x + 5, 43, NULL, &n, NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
      n != sizeof(pk)) {
    snprintf(err, errlen, "the binding's JWK has no Ed25519 x: %s", jwk);
    return -EINVAL;
  }
  mcpsig_content_digest(m->req.body, m->req.body_len, digest, sizeof(digest));
  if (strcmp(digest, sig->content_digest) != 0) {
    snprintf(err, errlen, "Content-Digest %s is not that of the body (%s)", sig->content_digest, digest);
    return -EINVAL;
  }
  size_t slen = strlen(sig->signature);
  if (strncmp(sig->signature_input, sig->label, label) != 0 || sig->signature_input[label] != '=' ||
      strncmp(sig->signature, sig->label, label) != 0 || slen < label + 4 || sig->signature[label + 1] != ':' ||
      sodium_base642bin(raw, sizeof(raw), sig->signature + label + 2, slen - label - 3, NULL, &n, NULL,
                        sodium_base64_VARIANT_ORIGINAL) != 0 ||
      n != sizeof(raw)) {
    snprintf(err, errlen, "unexpected Signature %s or Signature-Input %s", sig->signature, sig->signature_input);
    return -EINVAL;
  }
  size_t blen = base_build(base, sizeof(base), m, sig->content_digest, sig->signature_input + label + 1);
  if (blen == 0 || crypto_sign_verify_detached(raw, (const unsigned char *)base, blen, pk) != 0) {
    snprintf(err, errlen, "the signature does not verify over the base rebuilt from Signature-Input %s",
             sig->signature_input);
    return -EINVAL;
  }
  return 0;
}

/* ---- drivers ---- */

int measure_latency(bench_op op, void *ctx, size_t warmup, size_t n, struct samples *out, char *err, size_t errlen) {
  int r;
  for (size_t i = 0; i < warmup; i++)
    if ((r = op(ctx, i)) < 0)
      goto fail;
  for (size_t i = 0; i < n; i++) {
    uint64_t t0 = bench_now_ns();
    if ((r = op(ctx, warmup + i)) < 0)
      goto fail;
    samples_add(out, (double)(bench_now_ns() - t0) / 1e3);
  }
  return 0;
fail:
  snprintf(err, errlen, "%s", mcpsig_strerror(r));
  return r;
}

struct tp_shared {
  const struct client_kind *k;
  atomic_int ready;
  atomic_bool go, stop;
  struct samples *lat;
};

struct tp_thread {
  pthread_t thread;
  struct tp_shared *sh;
  int index;
  uint64_t ops;
  int err;
};

static void *tp_run(void *arg) {
  struct tp_thread *t = arg;
  struct tp_shared *sh = t->sh;
  const struct client_kind *k = sh->k;
  void *ctx = NULL;
  int r = k->open(k->arg, t->index, &ctx);
  /* Connections are opened before the clock starts. */
  atomic_fetch_add(&sh->ready, 1);
  while (!atomic_load(&sh->go)) {
    struct timespec ts = { 0, 100 * 1000 };
    nanosleep(&ts, NULL);
  }
  if (r < 0) {
    t->err = r;
    return NULL;
  }
  for (uint64_t seq = 0; !atomic_load_explicit(&sh->stop, memory_order_relaxed); seq++) {
    uint64_t t0 = bench_now_ns();
    if ((r = k->op(ctx, seq)) < 0) {
      t->err = r;
      break;
    }
    /* An operation that ends after the clock stopped is not counted. */
    if (atomic_load_explicit(&sh->stop, memory_order_relaxed))
      break;
    if (sh->lat)
      samples_add(sh->lat, (double)(bench_now_ns() - t0) / 1e3);
    t->ops++;
  }
  k->close(ctx);
  return NULL;
}

int measure_throughput(const struct client_kind *k, int n_threads, double seconds, struct samples *lat,
                       double *ret_per_s, uint64_t *ret_ops, char *err, size_t errlen) {
  struct tp_shared sh = { .k = k, .lat = n_threads == 1 ? lat : NULL };
  struct tp_thread *t = calloc((size_t)n_threads, sizeof(*t));
  int started = 0, r = 0;

  if (!t) {
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
  }
  atomic_init(&sh.ready, 0);
  atomic_init(&sh.go, false);
  atomic_init(&sh.stop, false);
  for (int i = 0; i < n_threads; i++) {
    t[i].sh = &sh;
    t[i].index = i;
    if (pthread_create(&t[i].thread, NULL, tp_run, &t[i]) != 0)
      break;
    started++;
  }
  if (started != n_threads) {
    snprintf(err, errlen, "could start only %d of %d threads", started, n_threads);
    r = -EAGAIN;
    atomic_store(&sh.stop, true);
  }
  while (atomic_load(&sh.ready) < started) {
    struct timespec ts = { 0, 200 * 1000 };
    nanosleep(&ts, NULL);
  }
  uint64_t t0 = bench_now_ns();
  atomic_store(&sh.go, true);
  if (r == 0) {
    struct timespec ts = { (time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9) };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
      ;
  }
  atomic_store(&sh.stop, true);
  uint64_t t1 = bench_now_ns();
  uint64_t ops = 0;
  for (int i = 0; i < started; i++) {
    pthread_join(t[i].thread, NULL);
    ops += t[i].ops;
    if (t[i].err < 0 && r == 0) {
      r = t[i].err;
      snprintf(err, errlen, "%s with %d connection%s: %s", k->name, n_threads, n_threads == 1 ? "" : "s",
               mcpsig_strerror(r));
    }
  }
  free(t);
  if (r < 0)
    return r;
  *ret_per_s = (double)ops / ((double)(t1 - t0) / 1e9);
  if (ret_ops)
    *ret_ops = ops;
  return 0;
}

/* ---- libmcpsig operations ---- */

/* A DPoP-bound access token of a usual size (token68). */
static const char access_token[] =
  "eyJhbGciOiJFUzI1NiIsInR5cCI6ImF0K2p3dCJ9.eyJpc3MiOiJodHRwczovL2F1dGguZXhhbXBsZS5jb20iLCJzdWIiOiJjbGllbnQtNDIiLCJh"
  "dWQiOiJodHRwczovL21jcC5leGFtcGxlLmNvbSIsImNuZiI6eyJqa3QiOiJ4eXoifX0.c2lnbmF0dXJlLW9mLXRoZS1hdXRob3JpemF0aW9uLXNl"
  "cnZlcg";

int lib_ctx_open(const void *arg, int index, void **ret_ctx) {
  const struct lib_arg *a = arg;
  struct lib_ctx *l = calloc(1, sizeof(*l));
  if (!l)
    return -ENOMEM;
  int r = mcpsig_connect(&l->c, a->sock, BENCH_TIMEOUT_MS);
  if (r < 0) {
    free(l);
    return r;
  }
  l->uri = a->uri ? a->uri : BENCH_URI;
  l->index = index;
  l->dpop_origin = BENCH_ORIGIN;
  mcp_request_fill(&l->m, l->uri, index, 0);
  *ret_ctx = l;
  return 0;
}

void lib_ctx_close(void *ctx) {
  struct lib_ctx *l = ctx;
  if (!l)
    return;
  mcpsig_close(l->c);
  free(l->big);
  free(l);
}

int op_hello(void *ctx, uint64_t seq) {
  struct lib_ctx *l = ctx;
  mcpsig_hello_info *info = NULL;
  (void)seq;
  int r = mcpsig_hello(l->c, &info);
  mcpsig_hello_info_free(info);
  return r;
}

int op_sign(void *ctx, uint64_t seq) {
  struct lib_ctx *l = ctx;
  mcpsig_signature *sig = NULL;
  mcp_request_fill(&l->m, l->uri, l->index, seq);
  int r = mcpsig_sign_http(l->c, &l->m.req, &sig);
  mcpsig_signature_free(sig);
  return r;
}

int op_sign_body_sent(void *ctx, uint64_t seq) {
  struct lib_ctx *l = ctx;
  mcpsig_signature *sig = NULL;
  mcpsig_sign_request req = l->m.req;
  (void)seq;
  req.body = l->big;
  req.body_len = l->big_len;
  int r = mcpsig_sign_http(l->c, &req, &sig);
  mcpsig_signature_free(sig);
  return r;
}

int op_sign_body_digested(void *ctx, uint64_t seq) {
  struct lib_ctx *l = ctx;
  mcpsig_signature *sig = NULL;
  mcpsig_sign_request req = l->m.req;
  char digest[MCPSIG_CONTENT_DIGEST_LEN];
  (void)seq;
  int r = mcpsig_content_digest(l->big, l->big_len, digest, sizeof(digest));
  if (r < 0)
    return r;
  req.body = NULL;
  req.body_len = 0;
  req.content_digest = digest;
  r = mcpsig_sign_http(l->c, &req, &sig);
  mcpsig_signature_free(sig);
  return r;
}

int op_dpop(void *ctx, uint64_t seq) {
  struct lib_ctx *l = ctx;
  mcpsig_dpop_proof *proof = NULL;
  mcpsig_dpop_request req = {
    .origin = l->dpop_origin, .htm = "POST", .htu = l->uri, .access_token = access_token,
    .algorithms = l->dpop_algs, .n_algorithms = l->n_dpop_algs,
  };
  (void)seq;
  int r = mcpsig_dpop(l->c, &req, &proof);
  mcpsig_dpop_proof_free(proof);
  return r;
}

int op_sign_rotate(void *ctx, uint64_t seq) {
  struct lib_ctx *l = ctx;
  mcpsig_rotate_signature *sig = NULL;
  mcpsig_rotate_request req = {
    .uri = l->uri, .headers = l->m.headers + 2, .n_headers = 2, .id_num = (int64_t)seq + 1,
  };
  int r = mcpsig_sign_rotate(l->c, &req, &sig);
  mcpsig_rotate_signature_free(sig);
  return r;
}

const struct client_kind lib_sign_kind = { "sign.http", lib_ctx_open, op_sign, lib_ctx_close, NULL };

/* ---- the bare loop's and ssh-agent's clients ---- */

static int bare_open(const void *arg, int index, void **ret_ctx) {
  const struct raw_arg *a = arg;
  (void)index;
  return bare_client_open(a->sock, a->base, a->len, (struct bare_client **)ret_ctx);
}

static int bare_op(void *ctx, uint64_t seq) {
  (void)seq;
  return bare_client_sign(ctx);
}

static void bare_close(void *ctx) {
  bare_client_close(ctx);
}

static int ssh_open(const void *arg, int index, void **ret_ctx) {
  const struct raw_arg *a = arg;
  char err[BENCH_ERRLEN];
  (void)index;
  return ssh_client_open(a->sock, a->base, a->len, (struct ssh_client **)ret_ctx, err, sizeof(err));
}

static int ssh_op(void *ctx, uint64_t seq) {
  (void)seq;
  return ssh_client_sign(ctx);
}

static void ssh_close(void *ctx) {
  ssh_client_close(ctx);
}

const struct client_kind bare_kind = { "bare loop", bare_open, bare_op, bare_close, NULL };
const struct client_kind ssh_kind = { "ssh-agent", ssh_open, ssh_op, ssh_close, NULL };
