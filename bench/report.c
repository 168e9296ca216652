/*
 * report.c: the figures of every run, their medians, the targets, and the
 * two outputs: a table for people and JSON for scripts.
 *
 * A figure over several runs is the median of the runs. A ratio is taken
 * within each run first (the machine may be noisier in one run than in
 * another, and both sides of a ratio are measured in the same run), then
 * the median of those ratios is reported.
 */
#include "config.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

static const struct {
  const char *key;
  enum unit unit;
} metrics[M_COUNT] = {
#define BENCH_METRIC_ROW(id, key, unit) [M_##id] = { key, unit },
  BENCH_METRICS(BENCH_METRIC_ROW)
#undef BENCH_METRIC_ROW
};

void run_values_init(struct run_values *r) {
  for (int i = 0; i < M_COUNT; i++)
    r->v[i] = NAN;
}

void report_skip(struct report *rep, const char *fmt, ...) {
  va_list ap;
  if (rep->n_skipped >= sizeof(rep->skipped) / sizeof(rep->skipped[0]))
    return;
  va_start(ap, fmt);
  vsnprintf(rep->skipped[rep->n_skipped], sizeof(rep->skipped[0]), fmt, ap);
  va_end(ap);
  for (size_t i = 0; i < rep->n_skipped; i++)
    if (strcmp(rep->skipped[i], rep->skipped[rep->n_skipped]) == 0)
      return; /* said already, by an earlier run */
  rep->n_skipped++;
}

/* ---- medians ---- */

typedef double (*run_fn)(const double *v);

static double med_fn(const struct report *rep, run_fn fn) {
  double x[64];
  size_t n = 0;
  for (size_t i = 0; i < rep->n_runs && n < 64; i++)
    x[n++] = fn(rep->runs[i].v);
  return median_of(x, n);
}

static double med(const struct report *rep, enum metric m) {
  double x[64];
  size_t n = 0;
  for (size_t i = 0; i < rep->n_runs && n < 64; i++)
    x[n++] = rep->runs[i].v[m];
  return median_of(x, n);
}

static double med_ratio(const struct report *rep, enum metric m, enum metric base) {
  double x[64];
  size_t n = 0;
  for (size_t i = 0; i < rep->n_runs && n < 64; i++)
    x[n++] = rep->runs[i].v[m] / rep->runs[i].v[base];
  return median_of(x, n);
}

/* ---- targets ---- */

/* How a figure is written: "%.<decimals>f" between a prefix and a suffix. */
struct fmt {
  const char *prefix;
  int decimals;
  const char *suffix;
  bool plus;
};


static double t_sign_over_raw(const double *v) { return v[M_RTT_SAME_P50] / v[M_RAW_SIGN]; }
static double t_overhead_same(const double *v) { return v[M_RTT_SAME_P50] - v[M_HELLO_SAME_P50] - v[M_RAW_SIGN]; }
static double t_overhead_cross(const double *v) { return v[M_RTT_CROSS_P50] - v[M_HELLO_CROSS_P50] - v[M_RAW_SIGN]; }
static double t_digest(const double *v) { return v[M_DIGEST_GBPS] / v[M_SHA_FASTEST_GBPS]; }
static double t_bare16(const double *v) { return v[M_TP16] / v[M_BARE_TP16]; }
static double t_ssh_tp(const double *v) { return v[M_TP16] / v[M_SSH_TP16]; }
static double t_ssh_rtt(const double *v) { return v[M_RTT_SAME_P50] / v[M_SSH_SAME_P50]; }
static double t_first(const double *v) { return v[M_FIRST_CONTACT_P50]; }
static double t_pd_idle(const double *v) { return v[M_PD_IDLE] / 1024; }
static double t_pd_10000(const double *v) { return v[M_PD_10000] / 1024; }
static double t_startup(const double *v) { return v[M_STARTUP_10000]; }

static const struct target {
  const char *name;
  run_fn value;
  double limit;
  int at_most; /* 1: value <= limit; 0: value >= limit; -1: met when measured */
  struct fmt fmt;
} targets[] = {
  { "sign.http RTT p50, same core <= 1.7x raw sign", t_sign_over_raw, 1.7, 1, { "", 2, "x", false } },
  { "sign p50 - hello p50 <= raw sign + 15 us, same core", t_overhead_same, 15, 1, { "raw ", 1, " us", true } },
  { "sign p50 - hello p50 <= raw sign + 15 us, cross core", t_overhead_cross, 15, 1, { "raw ", 1, " us", true } },
  { "Content-Digest 1 MiB >= 0.9x fastest SHA-256", t_digest, 0.9, 0, { "", 2, "x", false } },
  { "throughput, 16 connections >= 0.9x bare loop", t_bare16, 0.9, 0, { "", 2, "x", false } },
  { "throughput, 16 connections >= 15x ssh-agent", t_ssh_tp, 15, 0, { "", 1, "x", false } },
  { "sign RTT p50, same core <= 0.1x ssh-agent", t_ssh_rtt, 0.1, 1, { "", 3, "x", false } },
  { "first-contact signature reported", t_first, 0, -1, { "p50 ", 0, " us", false } },
  { "Private_Dirty idle <= 4 MiB", t_pd_idle, 4, 1, { "", 2, " MiB", false } },
  { "Private_Dirty with 10,000 bindings <= 16 MiB", t_pd_10000, 16, 1, { "", 2, " MiB", false } },
  { "start-up to READY with 10,000 bindings <= 200 ms", t_startup, 200, 1, { "", 0, " ms", false } },
};

#define N_TARGETS (sizeof(targets) / sizeof(targets[0]))

/* 1 met, 0 missed, -1 not measured. */
static int target_met(const struct target *t, double v) {
  if (isnan(v))
    return -1;
  if (t->at_most < 0)
    return 1;
  return t->at_most ? v <= t->limit : v >= t->limit;
}

/* ---- the table ---- */

static const char *fmt_num(char *buf, size_t size, double v, struct fmt f) {
  if (isnan(v))
    snprintf(buf, size, "-");
  else if (f.plus)
    snprintf(buf, size, "%s%+.*f%s", f.prefix, f.decimals, v, f.suffix);
  else
    snprintf(buf, size, "%s%.*f%s", f.prefix, f.decimals, v, f.suffix);
  return buf;
}

#define F(d) ((struct fmt){ "", d, "", false })
#define FX(d) ((struct fmt){ "", d, "x", false })

/* One latency row: p50, p99 and p99.9 when given, and p50 over the raw sign. */
static void row_latency(const struct report *rep, FILE *out, const char *label, int p50, int p99, int p999) {
  char a[32], b[32], c[32], d[32];
  double v50 = med(rep, (enum metric)p50);
  if (isnan(v50))
    return;
  fprintf(out, "  %-52s %9s %9s %9s %8s\n", label, fmt_num(a, sizeof(a), v50, F(1)),
          fmt_num(b, sizeof(b), p99 >= 0 ? med(rep, (enum metric)p99) : NAN, F(1)),
          fmt_num(c, sizeof(c), p999 >= 0 ? med(rep, (enum metric)p999) : NAN, F(1)),
          fmt_num(d, sizeof(d), med_ratio(rep, (enum metric)p50, M_RAW_SIGN), FX(2)));
}

static void row_tp(const struct report *rep, FILE *out, const char *label, enum metric m1, enum metric m4,
                   enum metric m16, enum metric m64) {
  char a[4][32];
  enum metric ms[4] = { m1, m4, m16, m64 };
  bool any = false;
  for (int i = 0; i < 4; i++) {
    fmt_num(a[i], sizeof(a[i]), (int)ms[i] >= 0 ? med(rep, ms[i]) : NAN, F(0));
    any |= strcmp(a[i], "-") != 0;
  }
  if (any)
    fprintf(out, "  %-36s %10s %10s %10s %10s\n", label, a[0], a[1], a[2], a[3]);
}

void report_table(const struct report *rep, FILE *out) {
  char a[32], b[32], c[32], d[32];

  fprintf(out, "mcpsig-bench %s: %d CPU%s, %s run, %s%zu run%s\n", PACKAGE_VERSION, rep->n_cpus,
          rep->n_cpus == 1 ? "" : "s", rep->quick ? "quick" : "full", rep->n_runs > 1 ? "medians of " : "",
          rep->n_runs, rep->n_runs == 1 ? "" : "s");
  if (rep->agent)
    fprintf(out, "agent %s, started by the bench on a temporary keystore\n", rep->agent);
  else
    fprintf(out, "agent at %s (already running)\n", rep->socket);
  fprintf(out, "Latencies in microseconds. \"x raw\" is a latency over the raw Ed25519 sign time of the same run.\n");

  fprintf(out, "\nFloors\n");
  fprintf(out, "  %-52s %9s us %21s\n", "raw Ed25519 sign of the signature base (libsodium)",
          fmt_num(a, sizeof(a), med(rep, M_RAW_SIGN), F(1)), "1.00x");
  fprintf(out, "    (a %s-byte RFC 9421 base as SPEC-NOTES 8.6(a), in this process)\n",
          fmt_num(a, sizeof(a), med(rep, M_BASE_BYTES), F(0)));
  if (!isnan(med(rep, M_RAW_ES256)))
    fprintf(out, "  %-52s %9s us %20s\n", "raw ECDSA P-256 sign of the same base (OpenSSL EVP)",
            fmt_num(a, sizeof(a), med(rep, M_RAW_ES256), F(1)),
            fmt_num(b, sizeof(b), med_ratio(rep, M_RAW_ES256, M_RAW_SIGN), FX(2)));
  fprintf(out, "  %-52s %9s %9s %9s %8s\n", "", "p50", "p99", "p99.9", "x raw");
  row_latency(rep, out, "bare libuv+libsodium loop round trip, same core", M_BARE_SAME_P50, -1, -1);
  row_latency(rep, out, "bare libuv+libsodium loop round trip, cross core", M_BARE_CROSS_P50, -1, -1);
  row_latency(rep, out, "bare libuv+libsodium loop round trip, unpinned", M_BARE_UNPINNED_P50, -1, -1);

  fprintf(out, "\nRound trips on one connection (typical MCP request)\n");
  fprintf(out, "  %-52s %9s %9s %9s %8s\n", "", "p50", "p99", "p99.9", "x raw");
  row_latency(rep, out, "hello (transport floor, no crypto), same core", M_HELLO_SAME_P50, M_HELLO_SAME_P99, -1);
  row_latency(rep, out, "hello, cross core", M_HELLO_CROSS_P50, M_HELLO_CROSS_P99, -1);
  row_latency(rep, out, "hello, unpinned", M_HELLO_UNPINNED_P50, -1, -1);
  row_latency(rep, out, "sign.http, same core", M_RTT_SAME_P50, M_RTT_SAME_P99, M_RTT_SAME_P999);
  row_latency(rep, out, "sign.http, cross core", M_RTT_CROSS_P50, M_RTT_CROSS_P99, M_RTT_CROSS_P999);
  row_latency(rep, out, "sign.http, unpinned", M_RTT_UNPINNED_P50, M_RTT_UNPINNED_P99, -1);
  if (rep->agent)
    fprintf(out, "  client and agent on one core, as for \"same core\" above:\n");
  row_latency(rep, out, "dpop.proof EdDSA", M_DPOP_ED_P50, -1, -1);
  row_latency(rep, out, "dpop.proof ES256", M_DPOP_ES_P50, -1, -1);
  row_latency(rep, out, "sign.rotate (sig-old and sig-new)", M_SIGN_ROTATE_P50, -1, -1);
  row_latency(rep, out, "sign.http, 64 KiB body sent to the agent", M_BODY_SENT_64K, -1, -1);
  row_latency(rep, out, "sign.http, 64 KiB body digested in libmcpsig", M_BODY_DIGESTED_64K, -1, -1);
  row_latency(rep, out, "sign.http, 1 MiB body sent to the agent", M_BODY_SENT_1M, -1, -1);
  row_latency(rep, out, "sign.http, 1 MiB body digested in libmcpsig", M_BODY_DIGESTED_1M, -1, -1);
  if (!isnan(med(rep, M_FIRST_CONTACT_P50)))
    fprintf(out, "  %-52s %9s %9s %9s %8s\n", "first contact (unpinned): new key, durable write",
            fmt_num(a, sizeof(a), med(rep, M_FIRST_CONTACT_P50), F(1)), "", "",
            fmt_num(d, sizeof(d), med_ratio(rep, M_FIRST_CONTACT_P50, M_RAW_SIGN), FX(2)));
  if (!isnan(med(rep, M_FIRST_CONTACT_P90)))
    fprintf(out, "    (p90 %s us)\n", fmt_num(a, sizeof(a), med(rep, M_FIRST_CONTACT_P90), F(1)));
  row_latency(rep, out, "ssh-agent SSH_AGENTC_SIGN_REQUEST, same core", M_SSH_SAME_P50, -1, -1);

  fprintf(out, "\nSHA-256 of a 1 MiB body (GB/s, 1e9 bytes per second)\n");
  fprintf(out, "  %-52s %9s %s\n", "mcpsig_content_digest() (Content-Digest)",
          fmt_num(a, sizeof(a), med(rep, M_DIGEST_GBPS), F(3)),
          fmt_num(b, sizeof(b), med_ratio(rep, M_DIGEST_GBPS, M_SHA_FASTEST_GBPS), ((struct fmt){ "", 2, "x the fastest", false })));
  fprintf(out, "  %-52s %9s\n", sha_kind_name[SHA_EVP], fmt_num(a, sizeof(a), med(rep, M_SHA_EVP_GBPS), F(3)));
  fprintf(out, "  %-52s %9s\n", sha_kind_name[SHA_EVP_FETCHED],
          fmt_num(a, sizeof(a), med(rep, M_SHA_EVP_FETCHED_GBPS), F(3)));
  fprintf(out, "  %-52s %9s\n", sha_kind_name[SHA_SODIUM], fmt_num(a, sizeof(a), med(rep, M_SHA_SODIUM_GBPS), F(3)));

  fprintf(out, "\nThroughput, signatures/s (one thread and connection each)\n");
  fprintf(out, "  %-36s %10s %10s %10s %10s\n", "", "1", "4", "16", "64");
  row_tp(rep, out, "mcpsig-agent sign.http", M_TP1, M_TP4, M_TP16, M_TP64);
  row_tp(rep, out, "bare libuv+libsodium loop", M_BARE_TP1, M_BARE_TP4, M_BARE_TP16, M_BARE_TP64);
  {
    double r[4];
    enum metric ag[4] = { M_TP1, M_TP4, M_TP16, M_TP64 }, ba[4] = { M_BARE_TP1, M_BARE_TP4, M_BARE_TP16, M_BARE_TP64 };
    for (int i = 0; i < 4; i++)
      r[i] = med_ratio(rep, ag[i], ba[i]);
    char x[4][32];
    if (!isnan(r[2]))
      fprintf(out, "  %-36s %10s %10s %10s %10s\n", "agent / bare loop", fmt_num(x[0], 32, r[0], FX(2)),
              fmt_num(x[1], 32, r[1], FX(2)), fmt_num(x[2], 32, r[2], FX(2)), fmt_num(x[3], 32, r[3], FX(2)));
  }
  row_tp(rep, out, "ssh-agent", (enum metric)-1, (enum metric)-1, M_SSH_TP16, (enum metric)-1);
  if (!isnan(med(rep, M_CPU_AGENT16))) {
    fprintf(out, "  server CPU per signature at 16 connections (us, from /proc/PID/task/*/schedstat):\n");
    static const struct {
      const char *label;
      enum metric m;
    } cpu[] = { { "mcpsig-agent", M_CPU_AGENT16 }, { "bare loop", M_CPU_BARE16 }, { "ssh-agent", M_CPU_SSH16 } };
    for (size_t i = 0; i < 3; i++)
      if (!isnan(med(rep, cpu[i].m)))
        fprintf(out, "    %-34s %10s %10s\n", cpu[i].label, fmt_num(a, sizeof(a), med(rep, cpu[i].m), F(1)),
                fmt_num(b, sizeof(b), med_ratio(rep, cpu[i].m, M_RAW_SIGN), FX(2)));
  }

  if (!isnan(med(rep, M_HOSTILE_RATIO))) {
    fprintf(out, "\nOne client beside a slow reader and a flooder on two other connections\n");
    fprintf(out, "  %-36s %10s %10s %8s\n", "", "sig/s", "p50 us", "x raw");
    fprintf(out, "  %-36s %10s %10s %8s\n", "alone", fmt_num(a, sizeof(a), med(rep, M_HOSTILE_ALONE), F(0)),
            fmt_num(b, sizeof(b), med(rep, M_HOSTILE_ALONE_P50), F(1)),
            fmt_num(c, sizeof(c), med_ratio(rep, M_HOSTILE_ALONE_P50, M_RAW_SIGN), FX(2)));
    fprintf(out, "  %-36s %10s %10s %8s\n", "beside them", fmt_num(a, sizeof(a), med(rep, M_HOSTILE_BESIDE), F(0)),
            fmt_num(b, sizeof(b), med(rep, M_HOSTILE_BESIDE_P50), F(1)),
            fmt_num(c, sizeof(c), med_ratio(rep, M_HOSTILE_BESIDE_P50, M_RAW_SIGN), FX(2)));
    fprintf(out, "  %-36s %10s   (1.00: no effect)\n", "ratio, beside / alone",
            fmt_num(a, sizeof(a), med(rep, M_HOSTILE_RATIO), F(2)));
  }

  if (!isnan(med(rep, M_PD_IDLE)) || !isnan(med(rep, M_STARTUP_10000))) {
    fprintf(out, "\nThe agent's footprint (KiB) and start-up to READY=1 (ms)%s\n",
            rep->mem_proxy ? " [RssAnon for Private_Dirty]" : "");
    fprintf(out, "  %-36s %13s %10s %10s\n", "", "Private_Dirty", "RSS", "start-up");
    static const struct {
      const char *label;
      enum metric pd, rss, st;
    } rows[] = {
      { "empty keystore, idle", M_PD_IDLE, M_RSS_IDLE, M_STARTUP_EMPTY },
      { "1,000 bindings", M_PD_1000, M_RSS_1000, M_STARTUP_1000 },
      { "10,000 bindings", M_PD_10000, M_RSS_10000, M_STARTUP_10000 },
      { "after the load of this run", M_PD_AFTER_LOAD, M_RSS_AFTER_LOAD, (enum metric)-1 },
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
      fprintf(out, "  %-36s %13s %10s %10s\n", rows[i].label, fmt_num(a, sizeof(a), med(rep, rows[i].pd), F(0)),
              fmt_num(b, sizeof(b), med(rep, rows[i].rss), F(0)),
              fmt_num(c, sizeof(c), (int)rows[i].st >= 0 ? med(rep, rows[i].st) : NAN, F(1)));
    if (rep->bindings_fs)
      fprintf(out, "    (bindings made with identity.public in a keystore on %s)\n", rep->bindings_fs);
  }

  fprintf(out, "\nTargets\n");
  for (size_t i = 0; i < N_TARGETS; i++) {
    double v = med_fn(rep, targets[i].value);
    int met = target_met(&targets[i], v);
    fprintf(out, "  %-8s %-54s %s\n", met < 0 ? "[n/a]" : met ? "[met]" : "[MISSED]", targets[i].name,
            fmt_num(a, sizeof(a), v, targets[i].fmt));
  }
  for (size_t i = 0; i < rep->n_skipped; i++)
    fprintf(out, "%s %s\n", i == 0 ? "\nSkipped:\n " : " ", rep->skipped[i]);
}

/* ---- JSON ---- */

struct node {
  char name[48];
  int metric;            /* -1: an object */
  int first, next;       /* children, siblings; -1: none */
};

static int node_child(struct node *nodes, int *n_nodes, int parent, const char *name, size_t len) {
  int *link = &nodes[parent].first;
  for (int c = *link; c >= 0; c = nodes[c].next) {
    if (strlen(nodes[c].name) == len && memcmp(nodes[c].name, name, len) == 0)
      return c;
    link = &nodes[c].next;
  }
  int c = (*n_nodes)++;
  snprintf(nodes[c].name, sizeof(nodes[c].name), "%.*s", (int)len, name);
  nodes[c].metric = -1;
  nodes[c].first = nodes[c].next = -1;
  *link = c;
  return c;
}

static void json_number(FILE *out, double v, enum unit u) {
  if (isnan(v) || isinf(v))
    fputs("null", out);
  else if (u == U_PER_S || u == U_KIB)
    fprintf(out, "%.0f", v);
  else if (u == U_GBPS || u == U_RATIO)
    fprintf(out, "%.4g", v);
  else
    fprintf(out, "%.2f", v);
}

static void json_tree(const struct report *rep, FILE *out, const struct node *nodes, int n, int indent) {
  fputs("{", out);
  bool first = true;
  for (int c = nodes[n].first; c >= 0; c = nodes[c].next) {
    fprintf(out, "%s\n%*s\"%s\": ", first ? "" : ",", indent + 2, "", nodes[c].name);
    first = false;
    if (nodes[c].metric >= 0)
      json_number(out, med(rep, (enum metric)nodes[c].metric), metrics[nodes[c].metric].unit);
    else
      json_tree(rep, out, nodes, c, indent + 2);
  }
  fprintf(out, "\n%*s}", indent, "");
}

static void json_string(FILE *out, const char *s) {
  fputc('"', out);
  for (; *s; s++) {
    if (*s == '"' || *s == '\\')
      fprintf(out, "\\%c", *s);
    else if ((unsigned char)*s < 0x20)
      fprintf(out, "\\u%04x", *s);
    else
      fputc(*s, out);
  }
  fputc('"', out);
}

void report_json(const struct report *rep, FILE *out) {
  struct node nodes[4 * M_COUNT + 1];
  int n_nodes = 1;
  nodes[0] = (struct node){ "", -1, -1, -1 };

  for (int m = 0; m < M_COUNT; m++) {
    if (isnan(med(rep, (enum metric)m)))
      continue; /* not measured: left out */
    int at = 0;
    for (const char *k = metrics[m].key; *k;) {
      const char *dot = strchr(k, '.');
      size_t len = dot ? (size_t)(dot - k) : strlen(k);
      const char *name = k;
      if (len >= 2 && name[0] == '"' && name[len - 1] == '"') {
        name++;
        len -= 2;
      }
      at = node_child(nodes, &n_nodes, at, name, len);
      k += (dot ? (size_t)(dot - k) + 1 : strlen(k));
    }
    nodes[at].metric = m;
  }

  fprintf(out, "{\n  \"bench\": \"mcpsig-bench %s\",\n  \"runs\": %zu,\n  \"mode\": \"%s\",\n  \"cpus\": %d,\n",
          PACKAGE_VERSION, rep->n_runs, rep->quick ? "quick" : "full", rep->n_cpus);
  fputs("  \"agent\": ", out);
  json_string(out, rep->agent ? rep->agent : rep->socket);
  fprintf(out, ",\n  \"agent_started_by_bench\": %s,\n  \"private_dirty_from_rssanon\": %s",
          rep->agent ? "true" : "false", rep->mem_proxy ? "true" : "false");
  /* The figures (medians of the runs), nested by their dotted keys. */
  for (int c = nodes[0].first; c >= 0; c = nodes[c].next) {
    fprintf(out, ",\n  \"%s\": ", nodes[c].name);
    if (nodes[c].metric >= 0)
      json_number(out, med(rep, (enum metric)nodes[c].metric), metrics[nodes[c].metric].unit);
    else
      json_tree(rep, out, nodes, c, 2);
  }

  fputs(",\n  \"ratio_to_raw_sign\": {", out);
  bool first = true;
  for (int m = 0; m < M_COUNT; m++) {
    if (metrics[m].unit != U_US || m == M_RAW_SIGN || isnan(med(rep, (enum metric)m)))
      continue;
    fprintf(out, "%s\n    ", first ? "" : ",");
    first = false;
    json_string(out, metrics[m].key);
    fputs(": ", out);
    json_number(out, med_ratio(rep, (enum metric)m, M_RAW_SIGN), U_RATIO);
  }
  fputs("\n  }", out);

  fputs(",\n  \"targets\": [", out);
  for (size_t i = 0; i < N_TARGETS; i++) {
    double v = med_fn(rep, targets[i].value);
    int met = target_met(&targets[i], v);
    fprintf(out, "%s\n    {\"name\": ", i ? "," : "");
    json_string(out, targets[i].name);
    fputs(", \"value\": ", out);
    json_number(out, v, U_GBPS);
    fputs(", \"limit\": ", out);
    json_number(out, targets[i].at_most < 0 ? NAN : targets[i].limit, U_GBPS);
    fprintf(out, ", \"met\": %s}", met < 0 ? "null" : met ? "true" : "false");
  }
  fputs("\n  ],\n  \"skipped\": [", out);
  for (size_t i = 0; i < rep->n_skipped; i++) {
    fputs(i ? ", " : "", out);
    json_string(out, rep->skipped[i]);
  }
  fputs("]", out);

  if (rep->n_runs > 1) {
    fputs(",\n  \"per_run\": {", out);
    first = true;
    for (int m = 0; m < M_COUNT; m++) {
      if (isnan(med(rep, (enum metric)m)))
        continue;
      fprintf(out, "%s\n    ", first ? "" : ",");
      first = false;
      json_string(out, metrics[m].key);
      fputs(": [", out);
      for (size_t i = 0; i < rep->n_runs; i++) {
        fputs(i ? ", " : "", out);
        json_number(out, rep->runs[i].v[m], metrics[m].unit);
      }
      fputs("]", out);
    }
    fputs("\n  }", out);
  }
  fputs("\n}\n", out);
}
