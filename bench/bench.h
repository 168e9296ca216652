/*
 * bench.h: the pieces of mcpsig-bench, one file per concept:
 *
 *   stats.c     clocks, samples and percentiles, CPU placement
 *   procs.c     child processes: agents, the notification socket, memory
 *   floors.c    what the agent is compared with: the raw signature, SHA-256,
 *               and a bare libuv + libsodium signing loop
 *   workload.c  the typical MCP request, the libmcpsig operations, and the
 *               latency and throughput drivers
 *   sshagent.c  a private ssh-agent and its wire protocol
 *   hostile.c   a slow reader and a flooder, reimplemented from
 *               tests/hostile-client.c
 *   report.c    the figures, the targets, the table and the JSON
 *
 * Nothing here asserts a timing: the program prints figures and says which
 * targets they meet.
 */
#ifndef MCPSIG_BENCH_H
#define MCPSIG_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "mcpsig.h"

#define BENCH_ERRLEN 512
#define BENCH_TIMEOUT_MS 30000

/* ---- stats.c ---- */

uint64_t bench_now_ns(void);
double bench_now_s(void);

/* A fixed-capacity array of observations (latencies in microseconds). */
struct samples {
  double *v;
  size_t n, cap;
};

int samples_init(struct samples *s, size_t cap);
void samples_free(struct samples *s);
void samples_add(struct samples *s, double v);
/* The p-th percentile (0..100) by the nearest-rank method; sorts s. NAN if empty. */
double samples_percentile(struct samples *s, double p);
/* The median of v[0..n) ignoring NANs; v is not modified. NAN if none. */
double median_of(const double *v, size_t n);

/* The CPUs this process may run on, in order; returns their count. */
int cpus_allowed(int *ret_cpus, int max);
/* Pins the calling thread to cpu, or (cpu < 0) back to every allowed CPU. */
int pin_thread(int cpu);
/* Pins every thread of pid to cpu, or (cpu < 0) back to every allowed CPU. */
int pin_process(pid_t pid, int cpu);

/* ---- procs.c ---- */

/* Children the signal handler kills if the bench is interrupted. */
void children_add(pid_t pid);
void children_forget(pid_t pid);
void children_kill_all(void);

/*
 * The datagram socket spawned agents send READY=1 to (NOTIFY_SOCKET), read
 * by a thread of its own for as long as the bench runs.
 */
struct notify;
int notify_start(const char *path, struct notify **ret, char *err, size_t errlen);
void notify_stop(struct notify *n);

struct agent_proc {
  pid_t pid;
  char sock[256];
  double ready_ms; /* from spawn to READY=1 */
};

/*
 * Starts `agent -D -a sock --keystore keystore` with NOTIFY_SOCKET set to
 * notify_path, its output in log, and waits for its READY=1.
 */
int agent_spawn(const char *agent, const char *sock, const char *keystore, struct notify *notify,
                const char *notify_path, const char *log, struct agent_proc *ret, char *err, size_t errlen);
/*
 * Starts path with argv, our environment plus env_set ("NAME=value", or
 * NULL) less NOTIFY_SOCKET and LISTEN_*, output appended to log (NULL:
 * inherited). Returns the pid, registered with children_add(), or -errno.
 */
pid_t process_spawn(const char *path, char *const argv[], const char *env_set, const char *log);
/* SIGTERM, then SIGKILL after 5 s; reaps it. */
void child_stop(pid_t pid);
/* Runs argv (PATH searched) as process_spawn() does and waits: its exit status, or -errno. */
int run_command(char *const argv[], const char *env_set, const char *log);
/* Finds an executable in PATH; 0 and its path, or -ENOENT. */
int find_in_path(const char *name, char *buf, size_t size);

/*
 * The resident set and the private dirty memory of pid, in KiB, from
 * /proc/PID/smaps_rollup. Without access to it (a process that is not
 * dumpable, read by another user), falls back to VmRSS and RssAnon from
 * /proc/PID/status and sets *ret_proxy.
 */
int mem_read(pid_t pid, double *ret_rss_kib, double *ret_private_dirty_kib, bool *ret_proxy);

/* CPU time used so far by every thread of pid, in ns (/proc/PID/task/TID/schedstat); NAN if unknown. */
double proc_cpu_ns(pid_t pid);

/* Sets err, and prints it now with the last lines of log under it. */
void fail_with_log(char *err, size_t errlen, const char *log, const char *fmt, ...)
  __attribute__((format(printf, 4, 5)));

/* ---- floors.c ---- */

/* Per-op latency of crypto_sign_detached() over base, in microseconds. */
int raw_sign_measure(const char *base, size_t len, size_t n, struct samples *out);
/* Per-op latency of an ECDSA P-256 SHA-256 signature with OpenSSL EVP; -ENOTSUP without it. */
int raw_es256_measure(const char *base, size_t len, size_t n, struct samples *out);

enum sha_kind { SHA_MCPSIG, SHA_EVP, SHA_EVP_FETCHED, SHA_SODIUM, SHA_KINDS };
extern const char *const sha_kind_name[SHA_KINDS];
/* GB/s (1e9 bytes per second) of each kind over len bytes, calls interleaved; NAN if unavailable. */
int sha_measure(size_t len, size_t calls, double ret_gbps[SHA_KINDS]);

/*
 * Blocking-style I/O on a non-blocking Unix stream socket, as libmcpsig
 * does it: every wait is a poll() bounded by BENCH_TIMEOUT_MS.
 */
int raw_connect(const char *path);
int raw_send_all(int fd, const unsigned char *p, size_t len);
int raw_recv_exact(int fd, unsigned char *p, size_t len);

/* Forks a bare libuv + libsodium signing server on sock (4-byte length-prefixed frames). */
int bare_server_start(const char *sock, pid_t *ret_pid, char *err, size_t errlen);

struct bare_client;
int bare_client_open(const char *sock, const char *base, size_t len, struct bare_client **ret);
int bare_client_sign(struct bare_client *c);
void bare_client_close(struct bare_client *c);

/* ---- workload.c ---- */

#define BENCH_URI "https://mcp.example.com/mcp"
#define BENCH_ORIGIN "https://mcp.example.com"

/* A typical MCP request: tools/call, a body of about 300 bytes, and the session and version headers. */
struct mcp_request {
  char body[512];
  size_t body_len;
  char session[64];
  mcpsig_header headers[4];
  mcpsig_sign_request req;
};

void mcp_request_fill(struct mcp_request *m, const char *uri, int client, uint64_t seq);

/*
 * The RFC 9421 signature base the agent builds for that request
 * (SPEC-NOTES 8.6(a)), with the given parameter values; returns its length.
 */
size_t mcp_signature_base(char *buf, size_t size, const struct mcp_request *m, const char *content_digest,
                          const char *keyid, const char *nonce);

/* Checks one sign.http reply: the signature verifies over the base rebuilt here with the binding's key. */
int mcp_signature_verify(const struct mcp_request *m, const mcpsig_signature *sig, const char *jwk, char *err,
                         size_t errlen);

/* One operation on a per-connection context: 0 or a negative code. */
typedef int (*bench_op)(void *ctx, uint64_t seq);

/* Times n calls of op, one by one, after warmup untimed ones; microseconds into out. */
int measure_latency(bench_op op, void *ctx, size_t warmup, size_t n, struct samples *out, char *err, size_t errlen);

/* How each thread of a throughput run gets its own connection. */
struct client_kind {
  const char *name;
  int (*open)(const void *arg, int index, void **ret_ctx);
  bench_op op;
  void (*close)(void *ctx);
  const void *arg;
};

/*
 * Runs n_threads clients, each on its own connection, for seconds and
 * returns the operations per second of all of them. With lat and one
 * thread, every operation's latency goes into lat.
 */
int measure_throughput(const struct client_kind *k, int n_threads, double seconds, struct samples *lat,
                       double *ret_per_s, uint64_t *ret_ops, char *err, size_t errlen);

/* libmcpsig clients. */
struct lib_arg {
  const char *sock;
  const char *uri;
};
extern const struct client_kind lib_sign_kind; /* sign.http of the typical request */

struct lib_ctx {
  mcpsig_client *c;
  const char *uri;
  int index;
  struct mcp_request m;
  /* large bodies */
  unsigned char *big;
  size_t big_len;
  /* dpop */
  const char *dpop_origin;
  const char *const *dpop_algs;
  size_t n_dpop_algs;
};

int lib_ctx_open(const void *arg, int index, void **ret_ctx);
void lib_ctx_close(void *ctx);
int op_hello(void *ctx, uint64_t seq);
int op_sign(void *ctx, uint64_t seq);
int op_sign_body_sent(void *ctx, uint64_t seq);
int op_sign_body_digested(void *ctx, uint64_t seq);
int op_dpop(void *ctx, uint64_t seq);
int op_sign_rotate(void *ctx, uint64_t seq);

/* The bare loop's and ssh-agent's clients, for measure_throughput(). */
struct raw_arg {
  const char *sock;
  const char *base;
  size_t len;
};
extern const struct client_kind bare_kind;
extern const struct client_kind ssh_kind;

/* ---- sshagent.c ---- */

struct ssh_agent {
  pid_t pid;
  char sock[256];
};

/* Starts a private ssh-agent, makes an Ed25519 key with ssh-keygen and adds it with ssh-add. */
int ssh_agent_start(const char *dir, struct ssh_agent *ret, char *err, size_t errlen);

struct ssh_client;
/* Connects and finds the Ed25519 key; each ssh_client_sign() is one SSH_AGENTC_SIGN_REQUEST of data. */
int ssh_client_open(const char *sock, const char *data, size_t len, struct ssh_client **ret, char *err,
                    size_t errlen);
int ssh_client_sign(struct ssh_client *c);
void ssh_client_close(struct ssh_client *c);

/* ---- hostile.c ---- */

struct hostile;
/*
 * Opens a connection that holds half a sign.http request and one that sends
 * requests without reading replies; returns once the agent has stopped
 * reading the flooder (its output queue is full).
 */
int hostile_start(const char *sock, struct hostile **ret, char *err, size_t errlen);
/* Closes both; says whether the half-message connection was still open. */
void hostile_stop(struct hostile *h, bool *ret_half_kept);

/* ---- report.c ---- */

enum unit { U_US, U_MS, U_PER_S, U_GBPS, U_KIB, U_RATIO };

/* Every figure, in the order of the JSON. */
#define BENCH_METRICS(X)                                                                     \
  X(RAW_SIGN, "raw_sign_us", U_US)                                                           \
  X(RAW_ES256, "raw_sign_es256_us", U_US)                                                    \
  X(BASE_BYTES, "signature_base_bytes", U_RATIO)                                             \
  X(HELLO_SAME_P50, "hello_rtt_us.same_core.p50", U_US)                                      \
  X(HELLO_SAME_P99, "hello_rtt_us.same_core.p99", U_US)                                      \
  X(HELLO_CROSS_P50, "hello_rtt_us.cross_core.p50", U_US)                                    \
  X(HELLO_CROSS_P99, "hello_rtt_us.cross_core.p99", U_US)                                    \
  X(RTT_SAME_P50, "rtt_us.same_core.p50", U_US)                                              \
  X(RTT_SAME_P99, "rtt_us.same_core.p99", U_US)                                              \
  X(RTT_SAME_P999, "rtt_us.same_core.p99_9", U_US)                                           \
  X(RTT_CROSS_P50, "rtt_us.cross_core.p50", U_US)                                            \
  X(RTT_CROSS_P99, "rtt_us.cross_core.p99", U_US)                                            \
  X(RTT_CROSS_P999, "rtt_us.cross_core.p99_9", U_US)                                         \
  X(RTT_UNPINNED_P50, "rtt_us.unpinned.p50", U_US)                                           \
  X(RTT_UNPINNED_P99, "rtt_us.unpinned.p99", U_US)                                           \
  X(HELLO_UNPINNED_P50, "hello_rtt_us.unpinned.p50", U_US)                                   \
  X(BARE_SAME_P50, "bare_loop.rtt_us.same_core.p50", U_US)                                   \
  X(BARE_CROSS_P50, "bare_loop.rtt_us.cross_core.p50", U_US)                                 \
  X(BARE_UNPINNED_P50, "bare_loop.rtt_us.unpinned.p50", U_US)                                \
  X(BARE_TP1, "bare_loop.throughput_per_s.\"1\"", U_PER_S)                                   \
  X(BARE_TP4, "bare_loop.throughput_per_s.\"4\"", U_PER_S)                                   \
  X(BARE_TP16, "bare_loop.throughput_per_s.\"16\"", U_PER_S)                                 \
  X(BARE_TP64, "bare_loop.throughput_per_s.\"64\"", U_PER_S)                                 \
  X(TP1, "throughput_per_s.\"1\"", U_PER_S)                                                  \
  X(TP4, "throughput_per_s.\"4\"", U_PER_S)                                                  \
  X(TP16, "throughput_per_s.\"16\"", U_PER_S)                                                \
  X(TP64, "throughput_per_s.\"64\"", U_PER_S)                                                \
  X(DIGEST_GBPS, "digest_1mib_gbps", U_GBPS)                                                 \
  X(SHA_FASTEST_GBPS, "sha256_fastest_gbps", U_GBPS)                                         \
  X(SHA_EVP_GBPS, "sha256_gbps.evp", U_GBPS)                                                 \
  X(SHA_EVP_FETCHED_GBPS, "sha256_gbps.evp_fetched", U_GBPS)                                 \
  X(SHA_SODIUM_GBPS, "sha256_gbps.libsodium", U_GBPS)                                        \
  X(BODY_SENT_64K, "large_body_rtt_us.sent_64kib.p50", U_US)                                 \
  X(BODY_DIGESTED_64K, "large_body_rtt_us.digested_64kib.p50", U_US)                         \
  X(BODY_SENT_1M, "large_body_rtt_us.sent_1mib.p50", U_US)                                   \
  X(BODY_DIGESTED_1M, "large_body_rtt_us.digested_1mib.p50", U_US)                           \
  X(FIRST_CONTACT_P50, "first_contact_us.p50", U_US)                                         \
  X(FIRST_CONTACT_P90, "first_contact_us.p90", U_US)                                         \
  X(DPOP_ED_P50, "dpop_rtt_us.eddsa.p50", U_US)                                              \
  X(DPOP_ES_P50, "dpop_rtt_us.es256.p50", U_US)                                              \
  X(SIGN_ROTATE_P50, "sign_rotate_rtt_us.p50", U_US)                                         \
  X(SSH_SAME_P50, "ssh_agent.rtt_us.same_core.p50", U_US)                                    \
  X(SSH_TP16, "ssh_agent.throughput_per_s.\"16\"", U_PER_S)                                  \
  X(CPU_AGENT16, "server_cpu_us_per_signature.agent_16", U_US)                               \
  X(CPU_BARE16, "server_cpu_us_per_signature.bare_loop_16", U_US)                            \
  X(CPU_SSH16, "server_cpu_us_per_signature.ssh_agent_16", U_US)                             \
  X(PD_IDLE, "private_dirty_kib.idle", U_KIB)                                                \
  X(PD_1000, "private_dirty_kib.bindings_1000", U_KIB)                                       \
  X(PD_10000, "private_dirty_kib.bindings_10000", U_KIB)                                     \
  X(PD_AFTER_LOAD, "private_dirty_kib.after_load", U_KIB)                                    \
  X(RSS_IDLE, "rss_kib.idle", U_KIB)                                                         \
  X(RSS_1000, "rss_kib.bindings_1000", U_KIB)                                                \
  X(RSS_10000, "rss_kib.bindings_10000", U_KIB)                                              \
  X(RSS_AFTER_LOAD, "rss_kib.after_load", U_KIB)                                             \
  X(STARTUP_EMPTY, "startup_ms.empty", U_MS)                                                 \
  X(STARTUP_1000, "startup_ms.bindings_1000", U_MS)                                          \
  X(STARTUP_10000, "startup_ms.bindings_10000", U_MS)                                        \
  X(HOSTILE_ALONE, "hostile.throughput_per_s.alone", U_PER_S)                                \
  X(HOSTILE_BESIDE, "hostile.throughput_per_s.beside", U_PER_S)                              \
  X(HOSTILE_RATIO, "hostile.ratio", U_RATIO)                                                 \
  X(HOSTILE_ALONE_P50, "hostile.rtt_us.alone.p50", U_US)                                     \
  X(HOSTILE_BESIDE_P50, "hostile.rtt_us.beside.p50", U_US)

enum metric {
#define BENCH_METRIC_ENUM(id, key, unit) M_##id,
  BENCH_METRICS(BENCH_METRIC_ENUM)
#undef BENCH_METRIC_ENUM
  M_COUNT
};

/* The figures of one run; NAN where not measured. */
struct run_values {
  double v[M_COUNT];
};

struct report {
  struct run_values *runs;
  size_t n_runs;
  /* context printed with the figures */
  int n_cpus;
  bool quick;
  bool mem_proxy;        /* Private_Dirty came from RssAnon */
  const char *agent;     /* the binary, or NULL with -a */
  const char *socket;    /* with -a */
  const char *bindings_fs;
  char skipped[16][160];
  size_t n_skipped;
};

void run_values_init(struct run_values *r);
void report_skip(struct report *rep, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void report_table(const struct report *rep, FILE *out);
void report_json(const struct report *rep, FILE *out);

#endif
