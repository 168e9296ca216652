/*
 * hostile.c: two misbehaving clients, as tests/hostile-client.c has them:
 * one sends half of a sign.http request and waits, one sends requests as
 * fast as the agent takes them and never reads a reply, until the agent
 * stops reading it (its output queue is over MCPSIG_MAX_OUTPUT_QUEUED).
 * The bench times a well-behaved client beside them.
 */
#include "config.h"

#include <errno.h>
#include <msgpack.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

/* The agent has taken nothing for this long: it stopped reading the flooder. */
#define BLOCKED_AFTER_S 0.5
#define FLOOD_MAX_S 30.0

struct hostile {
  int half_fd, flood_fd;
  pthread_t flooder;
  atomic_bool blocked, stop, failed;
  uint64_t requests;
};

static void pack_str(msgpack_packer *pk, const char *s) {
  size_t n = strlen(s);
  msgpack_pack_str(pk, n);
  msgpack_pack_str_body(pk, s, n);
}

/* A sign.http request of the typical MCP request, as a host would send it. */
static void request_encode(msgpack_sbuffer *sb, uint32_t msgid) {
  struct mcp_request m;
  msgpack_packer pk;
  mcp_request_fill(&m, BENCH_URI, 9999, msgid);
  msgpack_sbuffer_clear(sb);
  msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
  msgpack_pack_array(&pk, 4);
  msgpack_pack_uint32(&pk, 0);
  msgpack_pack_uint32(&pk, msgid);
  pack_str(&pk, "sign.http");
  msgpack_pack_array(&pk, 1);
  msgpack_pack_map(&pk, 4);
  pack_str(&pk, "method");
  pack_str(&pk, "POST");
  pack_str(&pk, "uri");
  pack_str(&pk, BENCH_URI);
  pack_str(&pk, "headers");
  msgpack_pack_array(&pk, 4);
  for (size_t i = 0; i < 4; i++) {
    msgpack_pack_array(&pk, 2);
    pack_str(&pk, m.headers[i].name);
    pack_str(&pk, m.headers[i].value);
  }
  pack_str(&pk, "body");
  msgpack_pack_bin(&pk, m.body_len);
  msgpack_pack_bin_body(&pk, m.body, m.body_len);
}

static void *flood_run(void *arg) {
  struct hostile *h = arg;
  msgpack_sbuffer sb;
  size_t off = 0;
  uint32_t msgid = 1;
  double t0 = bench_now_s(), last = t0;

  msgpack_sbuffer_init(&sb);
  while (!atomic_load(&h->stop)) {
    if (off == sb.size) {
      request_encode(&sb, msgid++);
      off = 0;
    }
    ssize_t n = send(h->flood_fd, sb.data + off, sb.size - off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      if (off == 0)
        h->requests++;
      off += (size_t)n;
      last = bench_now_s();
      continue;
    }
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      atomic_store(&h->failed, true);
      break;
    }
    double now = bench_now_s();
    if (!atomic_load(&h->blocked) && now - last >= BLOCKED_AFTER_S)
      atomic_store(&h->blocked, true);
    if (!atomic_load(&h->blocked) && now - t0 > FLOOD_MAX_S) {
      atomic_store(&h->failed, true);
      break;
    }
    /* Keep pushing, never reading, as a real flooder would. */
    struct pollfd p = { h->flood_fd, POLLOUT, 0 };
    poll(&p, 1, 50);
  }
  msgpack_sbuffer_destroy(&sb);
  return NULL;
}

int hostile_start(const char *sock, struct hostile **ret, char *err, size_t errlen) {
  struct hostile *h = calloc(1, sizeof(*h));
  msgpack_sbuffer sb;
  if (!h)
    return -ENOMEM;
  h->half_fd = h->flood_fd = -1;
  atomic_init(&h->blocked, false);
  atomic_init(&h->stop, false);
  atomic_init(&h->failed, false);

  msgpack_sbuffer_init(&sb);
  request_encode(&sb, 1);
  h->half_fd = raw_connect(sock);
  int r = h->half_fd < 0 ? h->half_fd : raw_send_all(h->half_fd, (const unsigned char *)sb.data, sb.size / 2);
  msgpack_sbuffer_destroy(&sb);
  if (r < 0) {
    snprintf(err, errlen, "the half-message client could not send: %s", strerror(-r));
    goto fail;
  }
  if ((h->flood_fd = raw_connect(sock)) < 0 || pthread_create(&h->flooder, NULL, flood_run, h) != 0) {
    r = h->flood_fd < 0 ? h->flood_fd : -EAGAIN;
    if (h->flood_fd >= 0)
      close(h->flood_fd);
    h->flood_fd = -1;
    snprintf(err, errlen, "cannot start the flooder: %s", strerror(-r));
    goto fail;
  }
  while (!atomic_load(&h->blocked) && !atomic_load(&h->failed)) {
    struct timespec ts = { 0, 20 * 1000 * 1000 };
    nanosleep(&ts, NULL);
  }
  if (atomic_load(&h->failed)) {
    snprintf(err, errlen, "the flooder never filled its output queue (or its connection broke after %llu requests)",
             (unsigned long long)h->requests);
    hostile_stop(h, NULL);
    return -EIO;
  }
  *ret = h;
  return 0;
fail:
  if (h->half_fd >= 0)
    close(h->half_fd);
  free(h);
  return r;
}

void hostile_stop(struct hostile *h, bool *ret_half_kept) {
  if (!h)
    return;
  if (ret_half_kept) {
    /* Still open, and the agent has not answered the half message. */
    char c;
    ssize_t n = recv(h->half_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    *ret_half_kept = n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }
  atomic_store(&h->stop, true);
  if (h->flood_fd >= 0) {
    pthread_join(h->flooder, NULL);
    close(h->flood_fd);
  }
  if (h->half_fd >= 0)
    close(h->half_fd);
  free(h);
}
