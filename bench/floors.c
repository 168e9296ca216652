/*
 * floors.c: what the agent is measured against, in the same run.
 *
 *  - the raw signature: crypto_sign_detached() of the same signature base,
 *    in this process;
 *  - SHA-256 of a large body: libmcpsig's mcpsig_content_digest() beside
 *    the fastest SHA-256 this machine has (OpenSSL EVP, and libsodium);
 *  - a bare signing loop: a minimal libuv server that reads a 4-byte
 *    length-prefixed request and answers with its Ed25519 signature, the
 *    same event loop, socket and round trip as the agent with no protocol
 *    logic at all. Its client follows libmcpsig's pattern: a non-blocking
 *    socket, send(), then recv() and poll() until the reply is whole.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <sodium.h>
#include <uv.h>
#ifdef HAVE_OPENSSL
#include <openssl/evp.h>
#include <openssl/ec.h>
#include <openssl/obj_mac.h>
#endif

#include "bench.h"

#define BARE_READ_CHUNK (64u * 1024u)
#define BARE_MAX_FRAME (2u * 1024u * 1024u)

/* ---- the raw signature ---- */

int raw_sign_measure(const char *base, size_t len, size_t n, struct samples *out) {
  unsigned char pk[crypto_sign_PUBLICKEYBYTES], sig[crypto_sign_BYTES];
  unsigned char *sk = sodium_malloc(crypto_sign_SECRETKEYBYTES);
  if (!sk)
    return -ENOMEM;
  crypto_sign_keypair(pk, sk);
  /* Warm the caches and the branch predictors as the agent's loop is warm. */
  for (size_t i = 0; i < 200; i++)
    crypto_sign_detached(sig, NULL, (const unsigned char *)base, len, sk);
  for (size_t i = 0; i < n; i++) {
    uint64_t t0 = bench_now_ns();
    crypto_sign_detached(sig, NULL, (const unsigned char *)base, len, sk);
    samples_add(out, (double)(bench_now_ns() - t0) / 1e3);
  }
  sodium_free(sk);
  return 0;
}

int raw_es256_measure(const char *base, size_t len, size_t n, struct samples *out) {
#ifdef HAVE_OPENSSL
  EVP_PKEY *pkey = NULL;
  EVP_PKEY_CTX *kctx = EVP_PKEY_CTX_new_id(EVP_PKEY_EC, NULL);
  int r = -EINVAL;
  if (!kctx || EVP_PKEY_keygen_init(kctx) <= 0 ||
      EVP_PKEY_CTX_set_ec_paramgen_curve_nid(kctx, NID_X9_62_prime256v1) <= 0 || EVP_PKEY_keygen(kctx, &pkey) <= 0)
    goto out;
  for (size_t i = 0; i < n + 50; i++) {
    unsigned char sig[128];
    size_t siglen = sizeof(sig);
    uint64_t t0 = bench_now_ns();
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = md && EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, pkey) > 0 &&
             EVP_DigestSign(md, sig, &siglen, (const unsigned char *)base, len) > 0;
    EVP_MD_CTX_free(md);
    if (!ok)
      goto out;
    if (i >= 50)
      samples_add(out, (double)(bench_now_ns() - t0) / 1e3);
  }
  r = 0;
out:
  EVP_PKEY_free(pkey);
  EVP_PKEY_CTX_free(kctx);
  return r;
#else
  (void)base, (void)len, (void)n, (void)out;
  return -ENOTSUP;
#endif
}

/* ---- SHA-256 ---- */

const char *const sha_kind_name[SHA_KINDS] = {
  [SHA_MCPSIG] = "mcpsig_content_digest()",
  [SHA_EVP] = "OpenSSL EVP_Digest(EVP_sha256())",
  [SHA_EVP_FETCHED] = "OpenSSL EVP, fetched digest and reused context",
  [SHA_SODIUM] = "libsodium crypto_hash_sha256()",
};

int sha_measure(size_t len, size_t calls, double ret_gbps[SHA_KINDS]) {
  unsigned char *buf = malloc(len), md[64];
  struct samples s[SHA_KINDS];
  bool have[SHA_KINDS] = { true, false, false, true };
  int r = -ENOMEM;
#ifdef HAVE_OPENSSL
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
  EVP_MD *fetched = EVP_MD_fetch(NULL, "SHA256", NULL);
#else
  const EVP_MD *fetched = EVP_sha256();
#endif
  have[SHA_EVP] = true;
  have[SHA_EVP_FETCHED] = ctx && fetched;
#endif

  memset(s, 0, sizeof(s));
  for (int k = 0; k < SHA_KINDS; k++)
    if (samples_init(&s[k], calls) < 0)
      goto out;
  if (!buf)
    goto out;
  randombytes_buf(buf, len);
  /* Interleaved, so a noisy neighbour weighs on every kind alike. */
  for (size_t i = 0; i < calls + 2; i++) {
    for (int k = 0; k < SHA_KINDS; k++) {
      char digest[MCPSIG_CONTENT_DIGEST_LEN];
      if (!have[k])
        continue;
      uint64_t t0 = bench_now_ns();
      switch (k) {
      case SHA_MCPSIG:
        mcpsig_content_digest(buf, len, digest, sizeof(digest));
        break;
#ifdef HAVE_OPENSSL
      case SHA_EVP: {
        unsigned int n = 0;
        EVP_Digest(buf, len, md, &n, EVP_sha256(), NULL);
        break;
      }
      case SHA_EVP_FETCHED: {
        unsigned int n = 0;
        EVP_DigestInit_ex(ctx, fetched, NULL);
        EVP_DigestUpdate(ctx, buf, len);
        EVP_DigestFinal_ex(ctx, md, &n);
        break;
      }
#endif
      case SHA_SODIUM:
        crypto_hash_sha256(md, buf, len);
        break;
      default:
        break;
      }
      if (i >= 2) /* the first calls fault the buffer in and fetch the digest */
        samples_add(&s[k], (double)(bench_now_ns() - t0) / 1e9);
    }
  }
  for (int k = 0; k < SHA_KINDS; k++) {
    double secs = have[k] ? samples_percentile(&s[k], 50) : NAN;
    ret_gbps[k] = secs > 0 ? (double)len / secs / 1e9 : NAN;
  }
  r = 0;
out:
  for (int k = 0; k < SHA_KINDS; k++)
    samples_free(&s[k]);
  free(buf);
#ifdef HAVE_OPENSSL
  EVP_MD_CTX_free(ctx);
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
  EVP_MD_free(fetched);
#endif
#endif
  return r;
}

/* ---- the bare loop: server (a forked child) ---- */

struct bare_server {
  uv_pipe_t listener;
  unsigned char sk[crypto_sign_SECRETKEYBYTES];
};

struct bare_conn {
  uv_pipe_t pipe;
  struct bare_server *srv;
  unsigned char *rx;
  size_t len, cap;
};

struct bare_write {
  uv_write_t req;
  unsigned char data[];
};

static uint32_t be32_get(const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void be32_put(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)(v >> 24);
  p[1] = (unsigned char)(v >> 16);
  p[2] = (unsigned char)(v >> 8);
  p[3] = (unsigned char)v;
}

static void bare_closed(uv_handle_t *h) {
  struct bare_conn *c = h->data;
  free(c->rx);
  free(c);
}

static void bare_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b) {
  struct bare_conn *c = h->data;
  (void)suggested;
  if (c->cap - c->len < BARE_READ_CHUNK) {
    size_t cap = c->cap ? c->cap * 2 : BARE_READ_CHUNK;
    while (cap - c->len < BARE_READ_CHUNK)
      cap *= 2;
    unsigned char *p = realloc(c->rx, cap);
    if (!p) {
      *b = uv_buf_init(NULL, 0);
      return;
    }
    c->rx = p;
    c->cap = cap;
  }
  *b = uv_buf_init((char *)c->rx + c->len, (unsigned)(c->cap - c->len));
}

static void bare_written(uv_write_t *req, int status) {
  (void)status;
  free(req);
}

static void bare_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b) {
  struct bare_conn *c = s->data;
  size_t pos = 0, n_frames = 0;
  (void)b;
  if (nread < 0) {
    uv_close((uv_handle_t *)s, bare_closed);
    return;
  }
  c->len += (size_t)nread;
  /* One write per read, holding every reply it completed, as the agent does. */
  for (size_t p = 0; c->len - p >= 4;) {
    uint32_t flen = be32_get(c->rx + p);
    if (flen > BARE_MAX_FRAME) {
      uv_close((uv_handle_t *)s, bare_closed);
      return;
    }
    if (c->len - p - 4 < flen)
      break;
    p += 4 + flen;
    n_frames++;
  }
  if (n_frames == 0)
    return;
  struct bare_write *w = malloc(sizeof(*w) + n_frames * (4 + crypto_sign_BYTES));
  if (!w) {
    uv_close((uv_handle_t *)s, bare_closed);
    return;
  }
  unsigned char *out = w->data;
  for (size_t i = 0; i < n_frames; i++) {
    uint32_t flen = be32_get(c->rx + pos);
    be32_put(out, crypto_sign_BYTES);
    crypto_sign_detached(out + 4, NULL, c->rx + pos + 4, flen, c->srv->sk);
    out += 4 + crypto_sign_BYTES;
    pos += 4 + flen;
  }
  memmove(c->rx, c->rx + pos, c->len - pos);
  c->len -= pos;
  uv_buf_t wb = uv_buf_init((char *)w->data, (unsigned)(out - w->data));
  if (uv_write(&w->req, s, &wb, 1, bare_written) < 0) {
    free(w);
    uv_close((uv_handle_t *)s, bare_closed);
  }
}

static void bare_connection(uv_stream_t *listener, int status) {
  struct bare_server *srv = listener->data;
  if (status < 0)
    return;
  struct bare_conn *c = calloc(1, sizeof(*c));
  if (!c)
    return;
  c->srv = srv;
  uv_pipe_init(listener->loop, &c->pipe, 0);
  c->pipe.data = c;
  if (uv_accept(listener, (uv_stream_t *)&c->pipe) < 0 ||
      uv_read_start((uv_stream_t *)&c->pipe, bare_alloc, bare_read) < 0)
    uv_close((uv_handle_t *)&c->pipe, bare_closed);
}

static int bare_serve(const char *sock) {
  struct bare_server srv;
  unsigned char pk[crypto_sign_PUBLICKEYBYTES];
  uv_loop_t loop;

  if (sodium_init() < 0)
    return 1;
  crypto_sign_keypair(pk, srv.sk);
  uv_loop_init(&loop);
  uv_pipe_init(&loop, &srv.listener, 0);
  srv.listener.data = &srv;
  if (uv_pipe_bind(&srv.listener, sock) < 0 || uv_listen((uv_stream_t *)&srv.listener, 511, bare_connection) < 0)
    return 1;
  uv_run(&loop, UV_RUN_DEFAULT);
  return 0;
}

int raw_connect(const char *path) {
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  if (strlen(path) >= sizeof(sa.sun_path))
    return -ENAMETOOLONG;
  strcpy(sa.sun_path, path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  /* Non-blocking from here on, as libmcpsig's socket is. */
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  return fd;
}

int bare_server_start(const char *sock, pid_t *ret_pid, char *err, size_t errlen) {
  pid_t pid = fork();
  if (pid < 0) {
    snprintf(err, errlen, "fork: %s", strerror(errno));
    return -errno;
  }
  if (pid == 0) {
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    prctl(PR_SET_NAME, "bare-loop");
    _exit(bare_serve(sock));
  }
  children_add(pid);
  for (int i = 0; i < 500; i++) {
    int fd = raw_connect(sock);
    if (fd >= 0) {
      close(fd);
      *ret_pid = pid;
      return 0;
    }
    struct timespec ts = { 0, 10 * 1000 * 1000 };
    nanosleep(&ts, NULL);
  }
  child_stop(pid);
  snprintf(err, errlen, "the bare libuv loop did not start on %s", sock);
  return -ETIMEDOUT;
}

/* ---- the bare loop: client ---- */

struct bare_client {
  int fd;
  unsigned char *req;
  size_t req_len;
};

int bare_client_open(const char *sock, const char *base, size_t len, struct bare_client **ret) {
  struct bare_client *c = calloc(1, sizeof(*c));
  if (!c)
    return -ENOMEM;
  c->req_len = 4 + len;
  c->req = malloc(c->req_len);
  c->fd = raw_connect(sock);
  if (!c->req || c->fd < 0) {
    int r = c->fd < 0 ? c->fd : -ENOMEM;
    bare_client_close(c);
    return r;
  }
  be32_put(c->req, (uint32_t)len);
  memcpy(c->req + 4, base, len);
  *ret = c;
  return 0;
}

/* Waits for fd to be ready, as libmcpsig's wait_fd() does. */
static int wait_ready(int fd, short events) {
  struct pollfd p = { fd, events, 0 };
  int r;
  while ((r = poll(&p, 1, BENCH_TIMEOUT_MS)) < 0 && errno == EINTR)
    ;
  return r > 0 ? 0 : r == 0 ? -ETIMEDOUT : -errno;
}

int raw_send_all(int fd, const unsigned char *p, size_t len) {
  while (len > 0) {
    ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN) {
        int r = wait_ready(fd, POLLOUT);
        if (r < 0)
          return r;
        continue;
      }
      return -errno;
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

/* Reads exactly len bytes: recv() first, poll() only when nothing is there yet. */
int raw_recv_exact(int fd, unsigned char *p, size_t len) {
  while (len > 0) {
    ssize_t n = recv(fd, p, len, 0);
    if (n == 0)
      return -ECONNRESET;
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN) {
        int r = wait_ready(fd, POLLIN);
        if (r < 0)
          return r;
        continue;
      }
      return -errno;
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

int bare_client_sign(struct bare_client *c) {
  unsigned char reply[4 + crypto_sign_BYTES];
  int r = raw_send_all(c->fd, c->req, c->req_len);
  if (r == 0)
    r = raw_recv_exact(c->fd, reply, sizeof(reply));
  if (r == 0 && be32_get(reply) != crypto_sign_BYTES)
    r = -EPROTO;
  return r;
}

void bare_client_close(struct bare_client *c) {
  if (!c)
    return;
  if (c->fd >= 0)
    close(c->fd);
  free(c->req);
  free(c);
}
