/*
 * mcpsig-bench: how fast mcpsig-agent signs, against floors measured in the
 * same run. See bench/README.md for what each figure means.
 *
 *   mcpsig-bench [--quick] [--runs N] [--json] [--json-file FILE] [--vs-ssh-agent]
 *                [--agent PATH | -a SOCKET] [--tmpdir DIR] [--keep]
 *
 * By default it starts its own agent (../daemon/mcpsig-agent next to this
 * program) on a temporary keystore. Every latency is printed beside its
 * ratio to the raw Ed25519 signature time of the same run, and each target
 * says whether it is met. Nothing here fails on a timing: the exit status
 * is 0 when every measurement ran, 1 when one could not, 2 on bad usage.
 */
#include "config.h"

#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <limits.h>
#include <linux/magic.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>
#include <sodium.h>

#include "bench.h"

static bool arg_quick = false;
static bool arg_json = false;
static bool arg_vs_ssh = false;
static bool arg_keep = false;
static long arg_runs = 1;
static const char *arg_agent = NULL;
static const char *arg_socket = NULL;
static const char *arg_tmpdir = NULL;
static const char *arg_json_file = NULL;

static volatile sig_atomic_t interrupted = 0;

/* How much of everything: --quick is a smoke run of about 20 s. */
struct plan {
  size_t raw_n, rtt_n, rtt_chunks, ssh_rtt_n, warmup, dpop_n, rotate_n, body64_n, body1m_n, sha_calls, first_n;
  double tp_seconds, hostile_seconds;
  int tp_rounds, hostile_rounds, startup_repeats;
};

static const struct plan plan_full = {
  .raw_n = 5000, .rtt_n = 20000, .rtt_chunks = 4, .ssh_rtt_n = 4000, .warmup = 200, .dpop_n = 3000,
  .rotate_n = 3000, .body64_n = 300, .body1m_n = 40, .sha_calls = 100, .first_n = 30,
  .tp_seconds = 1.0, .hostile_seconds = 1.0, .tp_rounds = 5, .hostile_rounds = 5, .startup_repeats = 5,
};

static const struct plan plan_quick = {
  .raw_n = 2000, .rtt_n = 3000, .rtt_chunks = 2, .ssh_rtt_n = 500, .warmup = 100, .dpop_n = 300,
  .rotate_n = 300, .body64_n = 50, .body1m_n = 10, .sha_calls = 20, .first_n = 8,
  .tp_seconds = 0.4, .hostile_seconds = 0.5, .tp_rounds = 1, .hostile_rounds = 1, .startup_repeats = 2,
};

/* Everything one invocation shares between its runs. */
struct bench {
  const struct plan *p;
  char agent[PATH_MAX];
  char tmp[PATH_MAX];          /* our temporary directory */
  char fast_dir[PATH_MAX];     /* where bindings are made quickly (tmpfs), or "" */
  char notify_path[PATH_MAX];
  struct notify *notify;
  int cpus[2];
  int n_cpus;
  struct report rep;
  char err[BENCH_ERRLEN];
};

/* What one run has going. */
struct run {
  struct bench *b;
  struct run_values *rv;
  int index;
  char dir[PATH_MAX];
  char sock[PATH_MAX];
  struct agent_proc agent;      /* pid 0 with -a */
  pid_t bare_pid;
  char bare_sock[PATH_MAX];
  struct ssh_agent ssh;         /* pid 0: not measured */
  char keyid[64];
  char jwk[256];
  bool created_binding;         /* with -a: remove it at the end */
  char base[1024];
  size_t base_len;
};

static void progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void progress(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("mcpsig-bench: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

static int fail(struct bench *b, int r, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(struct bench *b, int r, const char *fmt, ...) {
  char what[BENCH_ERRLEN];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof(what), fmt, ap);
  va_end(ap);
  snprintf(b->err, sizeof(b->err), "%s", what);
  return r < 0 ? r : -EIO;
}

/* A path under one of our directories; they were checked to be short at start. */
static void path_fmt(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void path_fmt(char *buf, size_t size, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, size, fmt, ap);
  va_end(ap);
}

static int check_interrupted(struct bench *b) {
  return interrupted ? fail(b, -EINTR, "interrupted") : 0;
}

/* ---- options ---- */

static void help(void) {
  printf("Usage: mcpsig-bench [--quick] [--runs N] [--json] [--json-file FILE] [--vs-ssh-agent]\n"
         "                    [--agent PATH | -a SOCKET] [--tmpdir DIR] [--keep]\n"
         "\n"
         "Measures mcpsig-agent against floors taken in the same run: the raw Ed25519\n"
         "signature, a bare libuv + libsodium signing loop, the fastest SHA-256, and\n"
         "optionally ssh-agent. Prints a table (or JSON) with every target met or missed.\n"
         "\n"
         "      --quick          a smoke run of about 20 s (default: a full run, about\n"
         "                       1.5 minutes per run)\n"
         "      --runs N         repeat the whole run N times (1-9) and report medians\n"
         "      --json           print JSON instead of the table\n"
         "      --json-file FILE also write the JSON to FILE\n"
         "      --vs-ssh-agent   also measure a private ssh-agent holding an Ed25519 key\n"
         "                       (needs ssh-agent, ssh-keygen and ssh-add)\n"
         "      --agent PATH     the mcpsig-agent to start (default: ../daemon/mcpsig-agent\n"
         "                       next to this program)\n"
         "  -a, --socket SOCKET  use the agent already listening on SOCKET; what needs its\n"
         "                       pid or a fresh keystore is skipped\n"
         "      --tmpdir DIR     where keystores and sockets go (default: $TMPDIR or /tmp)\n"
         "      --keep           keep the temporary directory\n"
         "  -h, --help           show this help\n"
         "  -V, --version        show the version\n"
         "\n"
         "Exit status: 0 when every measurement ran (targets missed included), 1 when a\n"
         "measurement failed, 2 on bad usage. See bench/README.md.\n");
}

static int parse_argv(int argc, char **argv) {
  enum { OPT_QUICK = 0x100, OPT_RUNS, OPT_JSON, OPT_JSON_FILE, OPT_VS_SSH, OPT_AGENT, OPT_TMPDIR, OPT_KEEP };
  static const struct option options[] = {
    { "quick", no_argument, NULL, OPT_QUICK },
    { "runs", required_argument, NULL, OPT_RUNS },
    { "json", no_argument, NULL, OPT_JSON },
    { "json-file", required_argument, NULL, OPT_JSON_FILE },
    { "vs-ssh-agent", no_argument, NULL, OPT_VS_SSH },
    { "agent", required_argument, NULL, OPT_AGENT },
    { "socket", required_argument, NULL, 'a' },
    { "tmpdir", required_argument, NULL, OPT_TMPDIR },
    { "keep", no_argument, NULL, OPT_KEEP },
    { "help", no_argument, NULL, 'h' },
    { "version", no_argument, NULL, 'V' },
    {},
  };
  int c;
  while ((c = getopt_long(argc, argv, "a:hV", options, NULL)) >= 0) {
    switch (c) {
    case OPT_QUICK: arg_quick = true; break;
    case OPT_RUNS: {
      char *end = NULL;
      arg_runs = strtol(optarg, &end, 10);
      if (!*optarg || *end || arg_runs < 1 || arg_runs > 9) {
        fprintf(stderr, "mcpsig-bench: --runs takes a number from 1 to 9, not '%s'\n", optarg);
        return -EINVAL;
      }
      break;
    }
    case OPT_JSON: arg_json = true; break;
    case OPT_JSON_FILE: arg_json_file = optarg; break;
    case OPT_VS_SSH: arg_vs_ssh = true; break;
    case OPT_AGENT: arg_agent = optarg; break;
    case 'a': arg_socket = optarg; break;
    case OPT_TMPDIR: arg_tmpdir = optarg; break;
    case OPT_KEEP: arg_keep = true; break;
    case 'h': help(); return 0;
    case 'V': printf("mcpsig-bench %s\n", PACKAGE_VERSION); return 0;
    default:
      fprintf(stderr, "Try 'mcpsig-bench --help' for more information.\n");
      return -EINVAL;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "mcpsig-bench: unexpected argument '%s'\nTry 'mcpsig-bench --help' for more information.\n",
            argv[optind]);
    return -EINVAL;
  }
  if (arg_agent && arg_socket) {
    fprintf(stderr, "mcpsig-bench: --agent starts an agent and -a uses a running one: give one of them\n");
    return -EINVAL;
  }
  return 1;
}

/* The agent next to this program: ../daemon/mcpsig-agent (past libtool's .libs/). */
static int agent_default(char *buf, size_t size) {
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0)
    return -errno;
  self[n] = '\0';
  char *slash = strrchr(self, '/');
  if (!slash)
    return -ENOENT;
  *slash = '\0';
  size_t len = strlen(self);
  if (len >= 6 && strcmp(self + len - 6, "/.libs") == 0)
    self[len - 6] = '\0';
  if ((size_t)snprintf(buf, size, "%s/../daemon/mcpsig-agent", self) >= size)
    return -ENAMETOOLONG;
  return 0;
}

/* ---- the temporary directory ---- */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)ftw;
  if (flag == FTW_DP)
    rmdir(path);
  else
    unlink(path);
  return 0;
}

static void rm_tree(const char *dir) {
  if (dir[0])
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* A tmpfs to make bindings on quickly (fsync costs nothing there), or "". */
static void fast_dir_pick(struct bench *b) {
  struct statfs sf;
  b->fast_dir[0] = '\0';
  if (statfs(b->tmp, &sf) == 0 && sf.f_type == TMPFS_MAGIC)
    return; /* the temporary directory is fast already */
  if (statfs("/dev/shm", &sf) == 0 && sf.f_type == TMPFS_MAGIC && access("/dev/shm", W_OK) == 0) {
    snprintf(b->fast_dir, sizeof(b->fast_dir), "/dev/shm/mcpsig-bench.XXXXXX");
    if (!mkdtemp(b->fast_dir))
      b->fast_dir[0] = '\0';
  }
}

/* ---- pieces of a run ---- */

static int stop_all(struct run *r) {
  if (r->ssh.pid > 0)
    child_stop(r->ssh.pid);
  r->ssh.pid = 0;
  if (r->bare_pid > 0)
    child_stop(r->bare_pid);
  r->bare_pid = 0;
  if (r->agent.pid > 0 && r->b->agent[0])
    child_stop(r->agent.pid);
  r->agent.pid = 0;
  return 0;
}

/* Connects, says hello, and learns the agent's pid. */
static int agent_hello(struct bench *b, const char *sock, int64_t *ret_pid) {
  mcpsig_client *c = NULL;
  mcpsig_hello_info *info = NULL;
  int e = mcpsig_connect(&c, sock, BENCH_TIMEOUT_MS);
  if (e == 0)
    e = mcpsig_hello(c, &info);
  if (e < 0) {
    fail(b, e, "cannot say hello to the agent at %s: %s", sock, c ? mcpsig_last_error(c) : mcpsig_strerror(e));
    mcpsig_close(c);
    return e;
  }
  if (ret_pid)
    *ret_pid = info->pid;
  mcpsig_hello_info_free(info);
  mcpsig_close(c);
  return 0;
}

static void footprint(struct run *r, pid_t pid, enum metric pd, enum metric rss) {
  double v_rss, v_pd;
  bool proxy;
  if (mem_read(pid, &v_rss, &v_pd, &proxy) == 0) {
    r->rv->v[pd] = v_pd;
    r->rv->v[rss] = v_rss;
    r->b->rep.mem_proxy |= proxy;
  }
}

/* The binding the bench signs with; one signature checked against its public key. */
static int binding_prepare(struct run *r) {
  struct lib_arg la = { r->sock, BENCH_URI };
  struct lib_ctx *l = NULL;
  mcpsig_public_info *pub = NULL;
  mcpsig_signature *sig = NULL;
  char why[BENCH_ERRLEN];
  int e = lib_ctx_open(&la, 0, (void **)&l);
  if (e < 0)
    return fail(r->b, e, "cannot connect to the agent at %s: %s", r->sock, mcpsig_strerror(e));
  if ((e = mcpsig_public(l->c, NULL, BENCH_URI, &pub)) < 0) {
    fail(r->b, e, "identity.public %s: %s", BENCH_URI, mcpsig_last_error(l->c));
    goto out;
  }
  r->created_binding = pub->created;
  snprintf(r->keyid, sizeof(r->keyid), "%s", pub->keyid);
  snprintf(r->jwk, sizeof(r->jwk), "%s", pub->jwk);
  if (strcmp(pub->alg, "ed25519") != 0) {
    e = fail(r->b, -EINVAL, "the binding of %s is %s, not ed25519: the bench compares Ed25519 signatures", BENCH_ORIGIN,
             pub->alg);
    goto out;
  }
  if ((e = mcpsig_sign_http(l->c, &l->m.req, &sig)) < 0) {
    fail(r->b, e, "sign.http: %s", mcpsig_last_error(l->c));
    goto out;
  }
  if ((e = mcp_signature_verify(&l->m, sig, r->jwk, why, sizeof(why))) < 0) {
    fail(r->b, e, "the agent's signature does not check out: %s", why);
    goto out;
  }
  /* The raw floor signs the base the agent signed: same components, same sizes. */
  r->base_len = mcp_signature_base(r->base, sizeof(r->base), &l->m, sig->content_digest, r->keyid,
                                   "AAECAwQFBgcICQoLDA0ODw");
  r->rv->v[M_BASE_BYTES] = (double)r->base_len;
out:
  mcpsig_signature_free(sig);
  mcpsig_public_info_free(pub);
  lib_ctx_close(l);
  return e;
}

static int phase_floors(struct run *r) {
  struct samples s;
  int e;
  if ((e = samples_init(&s, r->b->p->raw_n)) < 0)
    return fail(r->b, e, "out of memory");
  raw_sign_measure(r->base, r->base_len, r->b->p->raw_n, &s);
  r->rv->v[M_RAW_SIGN] = samples_percentile(&s, 50);
  s.n = 0;
  if (raw_es256_measure(r->base, r->base_len, r->b->p->raw_n / 4, &s) == 0)
    r->rv->v[M_RAW_ES256] = samples_percentile(&s, 50);
  samples_free(&s);

  double g[SHA_KINDS];
  if ((e = sha_measure(1u << 20, r->b->p->sha_calls, g)) < 0)
    return fail(r->b, e, "SHA-256 measurement: out of memory");
  r->rv->v[M_DIGEST_GBPS] = g[SHA_MCPSIG];
  r->rv->v[M_SHA_EVP_GBPS] = g[SHA_EVP];
  r->rv->v[M_SHA_EVP_FETCHED_GBPS] = g[SHA_EVP_FETCHED];
  r->rv->v[M_SHA_SODIUM_GBPS] = g[SHA_SODIUM];
  double best = NAN;
  for (int k = SHA_EVP; k < SHA_KINDS; k++)
    if (!isnan(g[k]) && (isnan(best) || g[k] > best))
      best = g[k];
  r->rv->v[M_SHA_FASTEST_GBPS] = best;
  return 0;
}

/* Pins the servers (agent, bare loop, ssh-agent) to server_cpu and this thread to client_cpu; -1 undoes it. */
static int place(struct run *r, int client_cpu, int server_cpu) {
  int e = 0;
  pid_t pids[3] = { r->agent.pid, r->bare_pid, r->ssh.pid };
  for (int i = 0; i < 3; i++)
    if (pids[i] > 0 && (e = pin_process(pids[i], server_cpu)) < 0)
      return fail(r->b, e, "cannot set the CPU affinity of pid %ld: %s", (long)pids[i], strerror(-e));
  if ((e = pin_thread(client_cpu)) < 0)
    return fail(r->b, e, "cannot set this thread's CPU affinity: %s", strerror(-e));
  return 0;
}

/* hello, sign.http, the bare loop (and ssh-agent on one core), interleaved in chunks. */
static int phase_latency(struct run *r) {
  struct bench *b = r->b;
  const struct plan *p = b->p;
  struct lib_arg la = { r->sock, BENCH_URI };
  struct lib_ctx *l = NULL;
  struct bare_client *bc = NULL;
  struct ssh_client *sc = NULL;
  struct samples hs, ss, bs, xs;
  char why[BENCH_ERRLEN];
  int e;

  memset(&hs, 0, sizeof(hs));
  memset(&ss, 0, sizeof(ss));
  memset(&bs, 0, sizeof(bs));
  memset(&xs, 0, sizeof(xs));
  if (samples_init(&hs, p->rtt_n) < 0 || samples_init(&ss, p->rtt_n) < 0 || samples_init(&bs, p->rtt_n) < 0 ||
      samples_init(&xs, p->ssh_rtt_n) < 0) {
    e = fail(b, -ENOMEM, "out of memory");
    goto out;
  }
  if ((e = lib_ctx_open(&la, 0, (void **)&l)) < 0) {
    fail(b, e, "cannot connect to the agent: %s", mcpsig_strerror(e));
    goto out;
  }
  if ((e = bare_client_open(r->bare_sock, r->base, r->base_len, &bc)) < 0) {
    fail(b, e, "cannot connect to the bare loop: %s", strerror(-e));
    goto out;
  }
  if (r->ssh.pid > 0 && (e = ssh_client_open(r->ssh.sock, r->base, r->base_len, &sc, why, sizeof(why))) < 0) {
    fail(b, e, "%s", why);
    goto out;
  }

  /* Placements: same core and cross core when we may pin the agent; else as the scheduler likes. */
  struct {
    const char *name;
    int client, server;
    enum metric hello50, hello99, sign50, sign99, sign999, bare50;
  } placements[] = {
    { "same core", b->cpus[0], b->cpus[0], M_HELLO_SAME_P50, M_HELLO_SAME_P99, M_RTT_SAME_P50, M_RTT_SAME_P99,
      M_RTT_SAME_P999, M_BARE_SAME_P50 },
    { "cross core", b->cpus[0], b->cpus[1], M_HELLO_CROSS_P50, M_HELLO_CROSS_P99, M_RTT_CROSS_P50, M_RTT_CROSS_P99,
      M_RTT_CROSS_P999, M_BARE_CROSS_P50 },
    { "unpinned", -1, -1, M_HELLO_UNPINNED_P50, (enum metric)-1, M_RTT_UNPINNED_P50, M_RTT_UNPINNED_P99,
      (enum metric)-1, M_BARE_UNPINNED_P50 },
  };
  for (size_t pl = 0; pl < 3; pl++) {
    bool pinned = pl < 2;
    if (pinned && (!b->agent[0] || (pl == 1 && b->n_cpus < 2)))
      continue;
    if (!pinned && b->agent[0])
      continue;
    if (pinned && (e = place(r, placements[pl].client, placements[pl].server)) < 0)
      goto out;
    progress("run %d: round trips, %s", r->index + 1, placements[pl].name);
    hs.n = ss.n = bs.n = xs.n = 0;
    size_t chunk = p->rtt_n / p->rtt_chunks, ssh_chunk = p->ssh_rtt_n / p->rtt_chunks;
    for (size_t c = 0; c < p->rtt_chunks; c++) {
      if ((e = measure_latency(op_hello, l, p->warmup, chunk, &hs, why, sizeof(why))) < 0 ||
          (e = measure_latency(op_sign, l, p->warmup, chunk, &ss, why, sizeof(why))) < 0) {
        fail(b, e, "%s: %s", why, mcpsig_last_error(l->c));
        goto out;
      }
      if ((e = measure_latency(bare_kind.op, bc, p->warmup, chunk, &bs, why, sizeof(why))) < 0) {
        fail(b, e, "the bare loop: %s", why);
        goto out;
      }
      if (sc && pl == 0 && (e = measure_latency(ssh_kind.op, sc, p->warmup, ssh_chunk, &xs, why, sizeof(why))) < 0) {
        fail(b, e, "ssh-agent: %s", why);
        goto out;
      }
    }
    if (pinned && (e = place(r, -1, -1)) < 0)
      goto out;
    r->rv->v[placements[pl].hello50] = samples_percentile(&hs, 50);
    if ((int)placements[pl].hello99 >= 0)
      r->rv->v[placements[pl].hello99] = samples_percentile(&hs, 99);
    r->rv->v[placements[pl].sign50] = samples_percentile(&ss, 50);
    r->rv->v[placements[pl].sign99] = samples_percentile(&ss, 99);
    if ((int)placements[pl].sign999 >= 0)
      r->rv->v[placements[pl].sign999] = samples_percentile(&ss, 99.9);
    if ((int)placements[pl].bare50 >= 0)
      r->rv->v[placements[pl].bare50] = samples_percentile(&bs, 50);
    if (sc && pl == 0)
      r->rv->v[M_SSH_SAME_P50] = samples_percentile(&xs, 50);
  }
  e = 0;
out:
  if (e < 0 && b->agent[0])
    place(r, -1, -1);
  lib_ctx_close(l);
  bare_client_close(bc);
  ssh_client_close(sc);
  samples_free(&hs);
  samples_free(&ss);
  samples_free(&bs);
  samples_free(&xs);
  return e;
}

static int latency_p50(struct run *r, bench_op op, struct lib_ctx *l, size_t n, enum metric m, const char *what) {
  struct samples s;
  char why[BENCH_ERRLEN];
  int e = samples_init(&s, n);
  if (e < 0)
    return fail(r->b, e, "out of memory");
  if ((e = measure_latency(op, l, n / 10 + 1, n, &s, why, sizeof(why))) < 0)
    fail(r->b, e, "%s: %s: %s", what, why, mcpsig_last_error(l->c));
  else
    r->rv->v[m] = samples_percentile(&s, 50);
  samples_free(&s);
  return e;
}

/* dpop.proof (EdDSA and ES256) and sign.rotate. */
static int phase_methods(struct run *r) {
  struct lib_arg la = { r->sock, BENCH_URI };
  struct lib_ctx *l = NULL;
  mcpsig_binding *bind = NULL;
  int e = lib_ctx_open(&la, 0, (void **)&l);
  if (e < 0)
    return fail(r->b, e, "cannot connect to the agent: %s", mcpsig_strerror(e));
  progress("run %d: dpop.proof and sign.rotate", r->index + 1);
  if ((e = latency_p50(r, op_dpop, l, r->b->p->dpop_n, M_DPOP_ED_P50, "dpop.proof EdDSA")) < 0)
    goto out;

  /* An Ed25519 identity falls back to P-256 for a server that accepts only ES256. */
  static const char *const es256[] = { "ES256" };
  l->dpop_origin = "https://es256.bench.example";
  l->dpop_algs = es256;
  l->n_dpop_algs = 1;
  {
    mcpsig_dpop_proof *proof = NULL;
    mcpsig_dpop_request req = { .origin = l->dpop_origin, .htm = "POST", .htu = BENCH_URI, .algorithms = es256,
                                .n_algorithms = 1 };
    e = mcpsig_dpop(l->c, &req, &proof);
    if (e == MCPSIG_EALG) {
      report_skip(&r->b->rep, "dpop.proof ES256: the agent has no P-256 keys (built without OpenSSL)");
    } else if (e < 0) {
      fail(r->b, e, "dpop.proof ES256: %s", mcpsig_last_error(l->c));
      goto out;
    } else {
      bool created = proof->created;
      mcpsig_dpop_proof_free(proof);
      if ((e = latency_p50(r, op_dpop, l, r->b->p->dpop_n, M_DPOP_ES_P50, "dpop.proof ES256")) < 0)
        goto out;
      if (created && !r->b->agent[0])
        mcpsig_remove(l->c, NULL, l->dpop_origin);
    }
  }

  if ((e = mcpsig_rotate_begin(l->c, NULL, BENCH_ORIGIN, &bind)) < 0) {
    fail(r->b, e, "rotate.begin: %s", mcpsig_last_error(l->c));
    goto out;
  }
  bind = mcpsig_binding_free(bind);
  int se = latency_p50(r, op_sign_rotate, l, r->b->p->rotate_n, M_SIGN_ROTATE_P50, "sign.rotate");
  /* On a connection of its own: a failed sign.rotate may have closed this one,
   * and the rotation must not stay pending in a keystore that is not ours. */
  mcpsig_client *c = NULL;
  if ((e = mcpsig_connect(&c, r->sock, BENCH_TIMEOUT_MS)) < 0 ||
      (e = mcpsig_rotate_abort(c, NULL, BENCH_ORIGIN, NULL)) < 0) {
    if (se == 0)
      fail(r->b, e, "rotate.abort: %s", c ? mcpsig_last_error(c) : mcpsig_strerror(e));
  }
  mcpsig_close(c);
  e = se < 0 ? se : e;
out:
  lib_ctx_close(l);
  return e;
}

/* 64 KiB and 1 MiB bodies: sent to the agent, or digested here and sent as content_digest. */
static int phase_bodies(struct run *r) {
  struct lib_arg la = { r->sock, BENCH_URI };
  struct lib_ctx *l = NULL;
  int e = lib_ctx_open(&la, 0, (void **)&l);
  if (e < 0)
    return fail(r->b, e, "cannot connect to the agent: %s", mcpsig_strerror(e));
  progress("run %d: large bodies", r->index + 1);
  static const struct {
    size_t len;
    enum metric sent, digested;
  } sizes[] = { { 64u << 10, M_BODY_SENT_64K, M_BODY_DIGESTED_64K }, { 1u << 20, M_BODY_SENT_1M, M_BODY_DIGESTED_1M } };
  for (size_t i = 0; i < 2 && e == 0; i++) {
    free(l->big);
    l->big_len = sizes[i].len;
    if (!(l->big = malloc(l->big_len))) {
      e = fail(r->b, -ENOMEM, "out of memory");
      break;
    }
    randombytes_buf(l->big, l->big_len);
    size_t n = i == 0 ? r->b->p->body64_n : r->b->p->body1m_n;
    if ((e = latency_p50(r, op_sign_body_sent, l, n, sizes[i].sent, "a large body")) == 0)
      e = latency_p50(r, op_sign_body_digested, l, n, sizes[i].digested, "a large body's digest");
  }
  lib_ctx_close(l);
  return e;
}

static int phase_throughput(struct run *r) {
  struct bench *b = r->b;
  const struct plan *p = b->p;
  static const int conns[4] = { 1, 4, 16, 64 };
  static const enum metric agent_m[4] = { M_TP1, M_TP4, M_TP16, M_TP64 };
  static const enum metric bare_m[4] = { M_BARE_TP1, M_BARE_TP4, M_BARE_TP16, M_BARE_TP64 };
  struct lib_arg la = { r->sock, BENCH_URI };
  struct raw_arg ra = { r->bare_sock, r->base, r->base_len }, sa = { r->ssh.sock, r->base, r->base_len };
  struct client_kind ak = lib_sign_kind, bk = bare_kind, sk = ssh_kind;
  double acc[M_COUNT][16];
  int e = 0;

  ak.arg = &la;
  bk.arg = &ra;
  sk.arg = &sa;
  progress("run %d: throughput, %d round%s of %.1f s per figure", r->index + 1, p->tp_rounds,
           p->tp_rounds == 1 ? "" : "s", p->tp_seconds);
  for (int round = 0; round < p->tp_rounds; round++) {
    /* Alternate which goes first, so a drift in the machine's load weighs on both. */
    for (int side = 0; side < 2; side++) {
      bool agent_side = (side == 0) == (round % 2 == 0);
      for (int i = 0; i < 4; i++) {
        pid_t server = agent_side ? r->agent.pid : r->bare_pid;
        double cpu0 = conns[i] == 16 && server > 0 ? proc_cpu_ns(server) : NAN;
        uint64_t ops = 0;
        if ((e = check_interrupted(b)) < 0)
          return e;
        if ((e = measure_throughput(agent_side ? &ak : &bk, conns[i], p->tp_seconds, NULL,
                                    &acc[agent_side ? agent_m[i] : bare_m[i]][round], &ops, b->err,
                                    sizeof(b->err))) < 0)
          return e;
        if (conns[i] == 16)
          acc[agent_side ? M_CPU_AGENT16 : M_CPU_BARE16][round] = (proc_cpu_ns(server) - cpu0) / 1e3 / (double)ops;
      }
    }
    if (r->ssh.pid > 0) {
      double cpu0 = proc_cpu_ns(r->ssh.pid);
      uint64_t ops = 0;
      if ((e = measure_throughput(&sk, 16, p->tp_seconds, NULL, &acc[M_SSH_TP16][round], &ops, b->err,
                                  sizeof(b->err))) < 0)
        return e;
      acc[M_CPU_SSH16][round] = (proc_cpu_ns(r->ssh.pid) - cpu0) / 1e3 / (double)ops;
    }
  }
  for (int i = 0; i < 4; i++) {
    r->rv->v[agent_m[i]] = median_of(acc[agent_m[i]], (size_t)p->tp_rounds);
    r->rv->v[bare_m[i]] = median_of(acc[bare_m[i]], (size_t)p->tp_rounds);
  }
  if (r->agent.pid > 0) {
    r->rv->v[M_CPU_AGENT16] = median_of(acc[M_CPU_AGENT16], (size_t)p->tp_rounds);
    r->rv->v[M_CPU_BARE16] = median_of(acc[M_CPU_BARE16], (size_t)p->tp_rounds);
  }
  if (r->ssh.pid > 0) {
    r->rv->v[M_SSH_TP16] = median_of(acc[M_SSH_TP16], (size_t)p->tp_rounds);
    r->rv->v[M_CPU_SSH16] = median_of(acc[M_CPU_SSH16], (size_t)p->tp_rounds);
  }
  return 0;
}

static int phase_hostile(struct run *r) {
  struct bench *b = r->b;
  const struct plan *p = b->p;
  struct lib_arg la = { r->sock, BENCH_URI };
  struct client_kind ak = lib_sign_kind;
  double alone[16], beside[16], ratio[16], alone50[16], beside50[16];
  struct samples lat;
  int e = samples_init(&lat, 2000000);
  if (e < 0)
    return fail(b, e, "out of memory");
  ak.arg = &la;
  progress("run %d: a client beside a slow reader and a flooder, %d round%s", r->index + 1, p->hostile_rounds,
           p->hostile_rounds == 1 ? "" : "s");
  for (int round = 0; round < p->hostile_rounds; round++) {
    struct hostile *h = NULL;
    bool kept = false;
    if ((e = check_interrupted(b)) < 0)
      goto out;
    lat.n = 0;
    if ((e = measure_throughput(&ak, 1, p->hostile_seconds, &lat, &alone[round], NULL, b->err, sizeof(b->err))) < 0)
      goto out;
    alone50[round] = samples_percentile(&lat, 50);
    if ((e = hostile_start(r->sock, &h, b->err, sizeof(b->err))) < 0)
      goto out;
    lat.n = 0;
    e = measure_throughput(&ak, 1, p->hostile_seconds, &lat, &beside[round], NULL, b->err, sizeof(b->err));
    hostile_stop(h, &kept);
    if (e < 0)
      goto out;
    if (!kept)
      report_skip(&b->rep, "note: the agent did not keep the half-message connection open during a hostile round");
    beside50[round] = samples_percentile(&lat, 50);
    ratio[round] = beside[round] / alone[round];
  }
  size_t n = (size_t)p->hostile_rounds;
  r->rv->v[M_HOSTILE_ALONE] = median_of(alone, n);
  r->rv->v[M_HOSTILE_BESIDE] = median_of(beside, n);
  r->rv->v[M_HOSTILE_RATIO] = median_of(ratio, n);
  r->rv->v[M_HOSTILE_ALONE_P50] = median_of(alone50, n);
  r->rv->v[M_HOSTILE_BESIDE_P50] = median_of(beside50, n);
out:
  samples_free(&lat);
  return e;
}

/* sign.http to origins never seen: a key is made and written durably before the signature. */
static int phase_first_contact(struct run *r) {
  struct lib_arg la = { r->sock, BENCH_URI };
  struct lib_ctx *l = NULL;
  struct samples s;
  int e = lib_ctx_open(&la, 0, (void **)&l);
  if (e < 0)
    return fail(r->b, e, "cannot connect to the agent: %s", mcpsig_strerror(e));
  if ((e = samples_init(&s, r->b->p->first_n)) < 0) {
    lib_ctx_close(l);
    return fail(r->b, e, "out of memory");
  }
  progress("run %d: first contact, %zu new bindings", r->index + 1, r->b->p->first_n);
  for (size_t i = 0; i < r->b->p->first_n; i++) {
    char uri[128];
    mcpsig_signature *sig = NULL;
    snprintf(uri, sizeof(uri), "https://first-%zu.run-%d.bench.example/mcp", i, r->index);
    mcp_request_fill(&l->m, uri, 0, i);
    uint64_t t0 = bench_now_ns();
    e = mcpsig_sign_http(l->c, &l->m.req, &sig);
    uint64_t t1 = bench_now_ns();
    mcpsig_signature_free(sig);
    if (e < 0) {
      fail(r->b, e, "first contact with %s: %s", uri, mcpsig_last_error(l->c));
      break;
    }
    samples_add(&s, (double)(t1 - t0) / 1e3);
  }
  if (e == 0) {
    r->rv->v[M_FIRST_CONTACT_P50] = samples_percentile(&s, 50);
    r->rv->v[M_FIRST_CONTACT_P90] = samples_percentile(&s, 90);
  }
  samples_free(&s);
  lib_ctx_close(l);
  return e;
}

/* ---- bindings: footprint and start-up ---- */

struct maker {
  pthread_t thread;
  const char *sock;
  int from, to, step;
  int err;
  char why[256];
};

static void *maker_run(void *arg) {
  struct maker *m = arg;
  mcpsig_client *c = NULL;
  int e = mcpsig_connect(&c, m->sock, BENCH_TIMEOUT_MS);
  for (int i = m->from; e == 0 && i < m->to; i += m->step) {
    char origin[96];
    snprintf(origin, sizeof(origin), "https://b%05d.bindings.bench.example", i);
    if ((e = mcpsig_public(c, NULL, origin, NULL)) < 0)
      snprintf(m->why, sizeof(m->why), "identity.public %s: %s", origin, mcpsig_last_error(c));
  }
  if (e < 0 && !m->why[0])
    snprintf(m->why, sizeof(m->why), "%s", mcpsig_strerror(e));
  m->err = e;
  mcpsig_close(c);
  return NULL;
}

/* Bindings number from to to-1, over four connections. */
static int bindings_make(struct bench *b, const char *sock, int from, int to) {
  struct maker m[4];
  int e = 0;
  memset(m, 0, sizeof(m));
  for (int i = 0; i < 4; i++) {
    m[i] = (struct maker){ .sock = sock, .from = from + i, .to = to, .step = 4 };
    if (pthread_create(&m[i].thread, NULL, maker_run, &m[i]) != 0) {
      m[i].err = -EAGAIN;
      maker_run(&m[i]);
    }
  }
  for (int i = 0; i < 4; i++) {
    pthread_join(m[i].thread, NULL);
    if (m[i].err < 0 && e == 0)
      e = fail(b, m[i].err, "making bindings: %s", m[i].why);
  }
  return e;
}

/* Starts an agent on keystore `repeats` times; the median time to READY, the footprint of the last. */
static int startups(struct run *r, const char *keystore, const char *tag, enum metric st, enum metric pd,
                    enum metric rss) {
  struct bench *b = r->b;
  double ms[16];
  char sock[PATH_MAX], log[PATH_MAX];
  int e = 0, n = b->p->startup_repeats;
  path_fmt(sock, sizeof(sock), "%s/start.sock", r->dir);
  path_fmt(log, sizeof(log), "%s/agent-%s.log", r->dir, tag);
  for (int i = 0; i < n; i++) {
    struct agent_proc ap;
    if ((e = check_interrupted(b)) < 0 ||
        (e = agent_spawn(b->agent, sock, keystore, b->notify, b->notify_path, log, &ap, b->err, sizeof(b->err))) <
          0)
      return e;
    ms[i] = ap.ready_ms;
    if (i == n - 1 && (e = agent_hello(b, sock, NULL)) == 0)
      footprint(r, ap.pid, pd, rss);
    child_stop(ap.pid);
    if (e < 0)
      return e;
  }
  r->rv->v[st] = median_of(ms, (size_t)n);
  return 0;
}

/* Copies a keystore made on tmpfs to the disk directory the agent is timed on. */
static int keystore_copy(struct bench *b, const char *from, const char *to, const char *log) {
  char *argv[] = { "rm", "-rf", (char *)to, NULL };
  run_command(argv, NULL, log);
  char *cp[] = { "cp", "-a", (char *)from, (char *)to, NULL };
  int e = run_command(cp, NULL, log);
  return e == 0 ? 0 : fail(b, -EIO, "cp -a %s %s failed (status %d)", from, to, e);
}

static int phase_bindings(struct run *r) {
  struct bench *b = r->b;
  char make_dir[PATH_MAX], make_ks[PATH_MAX], make_sock[PATH_MAX], disk_ks[PATH_MAX], log[PATH_MAX];
  struct agent_proc maker = { 0 };
  const char *base = b->fast_dir[0] ? b->fast_dir : r->dir;
  int e;

  path_fmt(make_dir, sizeof(make_dir), "%s/run-%d", base, r->index);
  path_fmt(make_ks, sizeof(make_ks), "%s/ks", make_dir);
  path_fmt(make_sock, sizeof(make_sock), "%s/make.sock", r->dir);
  path_fmt(disk_ks, sizeof(disk_ks), "%s/ks-bindings", r->dir);
  path_fmt(log, sizeof(log), "%s/agent-make.log", r->dir);
  if (b->fast_dir[0] && mkdir(make_dir, 0700) < 0 && errno != EEXIST)
    return fail(b, -errno, "cannot create %s: %s", make_dir, strerror(errno));

  static const struct {
    int n;
    const char *tag;
    enum metric st, pd, rss;
  } steps[] = { { 1000, "1000", M_STARTUP_1000, M_PD_1000, M_RSS_1000 },
                { 10000, "10000", M_STARTUP_10000, M_PD_10000, M_RSS_10000 } };
  int have = 0;
  for (size_t i = 0; i < 2; i++) {
    progress("run %d: %d bindings: making them, then starting agents on them", r->index + 1, steps[i].n);
    if ((e = agent_spawn(b->agent, make_sock, make_ks, b->notify, b->notify_path, log, &maker, b->err,
                         sizeof(b->err))) < 0)
      goto out;
    e = bindings_make(b, make_sock, have, steps[i].n);
    child_stop(maker.pid);
    maker.pid = 0;
    if (e < 0)
      goto out;
    have = steps[i].n;
    const char *ks = make_ks;
    if (b->fast_dir[0]) {
      if ((e = keystore_copy(b, make_ks, disk_ks, log)) < 0)
        goto out;
      ks = disk_ks;
    }
    if ((e = startups(r, ks, steps[i].tag, steps[i].st, steps[i].pd, steps[i].rss)) < 0)
      goto out;
  }
  e = 0;
out:
  if (b->fast_dir[0])
    rm_tree(make_dir);
  return e;
}

/* ---- one run ---- */

static int run_once(struct bench *b, int index, struct run_values *rv) {
  struct run r;
  int e;
  memset(&r, 0, sizeof(r));
  r.b = b;
  r.rv = rv;
  r.index = index;
  run_values_init(rv);
  path_fmt(r.dir, sizeof(r.dir), "%s/run-%d", b->tmp, index);
  if (mkdir(r.dir, 0700) < 0)
    return fail(b, -errno, "cannot create %s: %s", r.dir, strerror(errno));
  path_fmt(r.bare_sock, sizeof(r.bare_sock), "%s/bare.sock", r.dir);

  if (b->agent[0]) {
    char ks[PATH_MAX], log[PATH_MAX];
    path_fmt(r.sock, sizeof(r.sock), "%s/agent.sock", r.dir);
    path_fmt(ks, sizeof(ks), "%s/ks", r.dir);
    path_fmt(log, sizeof(log), "%s/agent.log", r.dir);
    progress("run %d: starting %s", index + 1, b->agent);
    if ((e = agent_spawn(b->agent, r.sock, ks, b->notify, b->notify_path, log, &r.agent, b->err,
                         sizeof(b->err))) < 0)
      return e;
    rv->v[M_STARTUP_EMPTY] = r.agent.ready_ms;
    if ((e = agent_hello(b, r.sock, NULL)) < 0)
      goto out;
    footprint(&r, r.agent.pid, M_PD_IDLE, M_RSS_IDLE);
  } else {
    int64_t pid = 0;
    snprintf(r.sock, sizeof(r.sock), "%s", arg_socket);
    if ((e = agent_hello(b, r.sock, &pid)) < 0)
      return e;
    /* Known for CPU accounting only: a running agent is never pinned, stopped or measured for memory. */
    r.agent.pid = (pid_t)pid;
  }

  if ((e = binding_prepare(&r)) < 0 || (e = check_interrupted(b)) < 0)
    goto out;
  progress("run %d: floors: raw signatures, SHA-256", index + 1);
  if ((e = phase_floors(&r)) < 0)
    goto out;
  if ((e = bare_server_start(r.bare_sock, &r.bare_pid, b->err, sizeof(b->err))) < 0)
    goto out;
  if (arg_vs_ssh) {
    char dir[PATH_MAX];
    path_fmt(dir, sizeof(dir), "%s/ssh", r.dir);
    if (mkdir(dir, 0700) < 0 || (e = ssh_agent_start(dir, &r.ssh, b->err, sizeof(b->err))) < 0) {
      if (e == -ENOENT) {
        report_skip(&b->rep, "ssh-agent: %s", b->err);
        r.ssh.pid = 0;
        e = 0;
      } else {
        e = e < 0 ? e : fail(b, -errno, "cannot create %s: %s", dir, strerror(errno));
        goto out;
      }
    }
  }
  if ((e = phase_latency(&r)) < 0 || (e = check_interrupted(b)) < 0)
    goto out;
  /* The other round trips on one core too, so they compare with sign.http's same-core figure. */
  if (b->agent[0] && (e = place(&r, b->cpus[0], b->cpus[0])) < 0)
    goto out;
  if ((e = phase_methods(&r)) == 0)
    e = phase_bodies(&r);
  if (b->agent[0]) {
    int pe = place(&r, -1, -1);
    e = e < 0 ? e : pe;
  }
  if (e < 0 || (e = phase_throughput(&r)) < 0 || (e = phase_hostile(&r)) < 0)
    goto out;
  if (b->agent[0]) {
    if ((e = phase_first_contact(&r)) < 0)
      goto out;
    footprint(&r, r.agent.pid, M_PD_AFTER_LOAD, M_RSS_AFTER_LOAD);
  }
  stop_all(&r);
  if (b->agent[0])
    e = phase_bindings(&r);
out:
  if (!b->agent[0] && r.created_binding) {
    /* A running agent keeps the user's keys: take back the one binding we made. */
    mcpsig_client *c = NULL;
    if (mcpsig_connect(&c, r.sock, BENCH_TIMEOUT_MS) == 0)
      mcpsig_remove(c, NULL, BENCH_ORIGIN);
    mcpsig_close(c);
  }
  stop_all(&r);
  return e;
}

static void on_signal(int sig) {
  (void)sig;
  interrupted = 1;
  children_kill_all();
}

int main(int argc, char **argv) {
  struct bench b;
  int r = parse_argv(argc, argv);
  if (r <= 0)
    return r < 0 ? 2 : 0;

  memset(&b, 0, sizeof(b));
  b.p = arg_quick ? &plan_quick : &plan_full;
  if (sodium_init() < 0) {
    fprintf(stderr, "mcpsig-bench: libsodium failed to initialize\n");
    return 1;
  }
  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa = { .sa_handler = on_signal };
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);

  if (!arg_socket) {
    if (arg_agent)
      snprintf(b.agent, sizeof(b.agent), "%s", arg_agent);
    else if (agent_default(b.agent, sizeof(b.agent)) < 0) {
      fprintf(stderr, "mcpsig-bench: cannot find this program's directory; give --agent PATH\n");
      return 2;
    }
    char *real = realpath(b.agent, NULL);
    if (!real || access(real, X_OK) != 0) {
      fprintf(stderr, "mcpsig-bench: %s is not an executable mcpsig-agent%s; build it or give --agent PATH\n", b.agent,
              arg_agent ? "" : " (the default, next to this program)");
      free(real);
      return 2;
    }
    snprintf(b.agent, sizeof(b.agent), "%s", real);
    free(real);
  }
  b.n_cpus = cpus_allowed(b.cpus, 2);
  {
    int all[1024];
    int n = cpus_allowed(all, 1024);
    b.rep.n_cpus = n > 0 ? n : 1;
  }

  const char *tmp = arg_tmpdir ? arg_tmpdir : getenv("TMPDIR");
  if (!tmp || !*tmp)
    tmp = "/tmp";
  /* Socket paths below it must fit sun_path (108 bytes): ".../run-N/ssh/ssh-agent.sock". */
  if (strlen(tmp) > 56) {
    fprintf(stderr, "mcpsig-bench: %s is too long a path for the sockets; give a shorter --tmpdir\n", tmp);
    return 2;
  }
  path_fmt(b.tmp, sizeof(b.tmp), "%s/mcpsig-bench.XXXXXX", tmp);
  if (!mkdtemp(b.tmp)) {
    fprintf(stderr, "mcpsig-bench: cannot create a directory in %s: %s\n", tmp, strerror(errno));
    return 1;
  }
  if (b.agent[0]) {
    fast_dir_pick(&b);
    path_fmt(b.notify_path, sizeof(b.notify_path), "%s/notify.sock", b.tmp);
    if (notify_start(b.notify_path, &b.notify, b.err, sizeof(b.err)) < 0) {
      fprintf(stderr, "mcpsig-bench: %s\n", b.err);
      rm_tree(b.tmp);
      return 1;
    }
  }

  struct run_values runs[9];
  b.rep.runs = runs;
  b.rep.quick = arg_quick;
  b.rep.agent = b.agent[0] ? b.agent : NULL;
  b.rep.socket = arg_socket;
  b.rep.bindings_fs = b.fast_dir[0] ? "tmpfs (/dev/shm), then copied with cp -a to --tmpdir, where the agents start"
                                    : NULL;
  if (!b.agent[0]) {
    report_skip(&b.rep, "same-core and cross-core placement: the agent was not started here (-a), so it is not pinned");
    report_skip(&b.rep, "footprint, start-up and first contact: they need the agent's pid and a fresh keystore (-a)");
  }
  if (b.agent[0] && b.n_cpus < 2)
    report_skip(&b.rep, "cross core: this process may use one CPU only");
  if (!arg_vs_ssh)
    report_skip(&b.rep, "ssh-agent: not asked for (--vs-ssh-agent)");

  r = 0;
  for (long i = 0; i < arg_runs && r == 0; i++) {
    r = run_once(&b, (int)i, &runs[i]);
    if (r == 0)
      b.rep.n_runs++;
  }
  notify_stop(b.notify);
  if (arg_keep)
    progress("kept %s", b.tmp);
  else
    rm_tree(b.tmp);
  if (b.fast_dir[0])
    rm_tree(b.fast_dir);
  if (r < 0) {
    fprintf(stderr, "mcpsig-bench: %s\n", interrupted ? "interrupted" : b.err[0] ? b.err : strerror(-r));
    return 1;
  }
  if (arg_json_file) {
    FILE *f = fopen(arg_json_file, "we");
    if (!f) {
      fprintf(stderr, "mcpsig-bench: cannot write %s: %s\n", arg_json_file, strerror(errno));
      return 1;
    }
    report_json(&b.rep, f);
    if (fclose(f) != 0) {
      fprintf(stderr, "mcpsig-bench: cannot write %s: %s\n", arg_json_file, strerror(errno));
      return 1;
    }
  }
  if (arg_json)
    report_json(&b.rep, stdout);
  else
    report_table(&b.rep, stdout);
  return fflush(stdout) == 0 ? 0 : 1;
}
