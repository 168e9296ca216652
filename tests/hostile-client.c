/*
 * hostile-client: agent clients that misbehave on purpose, for the load tests.
 *
 *   hostile-client half SOCKET --until FILE [--max-seconds N]
 *       Sends the first half of a sign.http request and then neither sends
 *       nor reads until FILE exists. Then checks that the agent has not
 *       closed the connection, sends the second half, and reads the reply:
 *       the connection was kept, and the half message with it.
 *
 *   hostile-client half SOCKET --expect-close SECONDS
 *       Sends half a request and waits up to SECONDS for the agent to give
 *       up on it: an error reply and/or end of file.
 *
 *   hostile-client flood SOCKET --until FILE [--max-seconds N]
 *       Sends sign.http requests as fast as the agent takes them and never
 *       reads a reply, until FILE exists. It prints "blocked" once the agent
 *       has taken nothing for half a second (its output queue is full and it
 *       stopped reading). Then it drains: reads every reply, finishing the
 *       request it was in the middle of, and checks that each is a success
 *       reply to its request, in order.
 *
 * Each mode prints "name value" lines on stdout and exits 0 when the
 * connection behaved as described. Every wait is bounded (--max-seconds,
 * default 25, for the waits on FILE; 20 s for a drain).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <msgpack.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define BLOCKED_AFTER 0.5
#define DRAIN_SECONDS 20.0
#define REPLY_SECONDS 5.0
/* Every msgid is encoded in 5 bytes (uint32), so every request has the same size. */
#define FIRST_MSGID 0x10000u

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void pack_str(msgpack_packer *pk, const char *s) {
  msgpack_pack_str(pk, strlen(s));
  msgpack_pack_str_body(pk, s, strlen(s));
}

/* A typical MCP request: POST with a JSON-RPC body of about 300 bytes. */
static void encode_request(msgpack_sbuffer *sb, uint32_t msgid) {
  static const char *const headers[][2] = {
    { "Content-Type", "application/json" },
    { "Accept", "application/json, text/event-stream" },
    { "MCP-Protocol-Version", "2025-06-18" },
    { "MCP-Session-Id", "sess-hostile-5c1d0a7e9b3f" },
  };
  char body[512];
  int len = snprintf(body, sizeof(body),
                     "{\"jsonrpc\":\"2.0\",\"id\":%u,\"method\":\"tools/call\",\"params\":{\"name\":\"search_documents\","
                     "\"arguments\":{\"query\":\"quarterly revenue by region\",\"limit\":25,\"filters\":{\"owner\":"
                     "\"team-analytics\",\"updated_after\":\"2025-01-01T00:00:00Z\",\"tags\":[\"finance\",\"reporting\","
                     "\"q3\"]}},\"_meta\":{\"progressToken\":\"hostile-%010u\"}}}",
                     msgid, msgid);
  msgpack_packer pk;
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
  pack_str(&pk, "https://mcp.example.com/mcp");
  pack_str(&pk, "headers");
  msgpack_pack_array(&pk, sizeof(headers) / sizeof(headers[0]));
  for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
    msgpack_pack_array(&pk, 2);
    pack_str(&pk, headers[i][0]);
    pack_str(&pk, headers[i][1]);
  }
  pack_str(&pk, "body");
  msgpack_pack_bin(&pk, (size_t)len);
  msgpack_pack_bin_body(&pk, body, (size_t)len);
}

static int connect_to(const char *path) {
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  if (strlen(path) >= sizeof(sa.sun_path))
    return -1;
  strcpy(sa.sun_path, path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
    if (fd >= 0)
      close(fd);
    return -1;
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  return fd;
}

/* Sends all of buf within the deadline (the socket is non-blocking). */
static bool send_all(int fd, const char *buf, size_t len, double deadline) {
  while (len > 0) {
    ssize_t n = send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      buf += n;
      len -= (size_t)n;
      continue;
    }
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
      return false;
    struct pollfd p = { fd, POLLOUT, 0 };
    if (now() >= deadline || poll(&p, 1, 50) < 0)
      return false;
  }
  return true;
}

/*
 * What a reply is: 1 for a success reply [1, want_msgid, nil, {..."keyid"...}],
 * else 0; *code gets an error reply's code (or -1).
 */
static int reply_kind(const msgpack_object *o, uint32_t want_msgid, int64_t *code) {
  *code = -1;
  if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 4)
    return 0;
  const msgpack_object *a = o->via.array.ptr;
  if (a[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER || a[0].via.u64 != 1)
    return 0;
  if (a[2].type == MSGPACK_OBJECT_MAP) {
    for (uint32_t i = 0; i < a[2].via.map.size; i++) {
      const msgpack_object_kv *kv = &a[2].via.map.ptr[i];
      if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == 4 &&
          memcmp(kv->key.via.str.ptr, "code", 4) == 0 && kv->val.type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        *code = (int64_t)kv->val.via.u64;
    }
    return 0;
  }
  if (a[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER || a[1].via.u64 != want_msgid || a[2].type != MSGPACK_OBJECT_NIL ||
      a[3].type != MSGPACK_OBJECT_MAP)
    return 0;
  for (uint32_t i = 0; i < a[3].via.map.size; i++) {
    const msgpack_object_kv *kv = &a[3].via.map.ptr[i];
    if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == 5 && memcmp(kv->key.via.str.ptr, "keyid", 5) == 0)
      return 1;
  }
  return 0;
}

/* True once FILE exists; false when the deadline passes first. */
static bool wait_until(const char *file, double deadline) {
  while (access(file, F_OK) != 0) {
    if (now() >= deadline)
      return false;
    struct timespec ts = { 0, 50 * 1000 * 1000 };
    nanosleep(&ts, NULL);
  }
  return true;
}

/* Whether the agent has closed fd or sent anything on it, without reading. */
static const char *peek_state(int fd) {
  char c;
  ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n == 0)
    return "eof";
  if (n > 0)
    return "data";
  if (errno == EAGAIN || errno == EWOULDBLOCK)
    return "open";
  return "error";
}

/* The agent's replies, framed by msgpack_unpack_next(), which gives each one's size. */
struct reader {
  char buf[256 * 1024];
  size_t len, pos;
  msgpack_unpacked res;
};

/* Reads what has arrived: 1 if bytes came, 0 if none yet, -1 at EOF or on an error. */
static int reader_fill(struct reader *r, int fd) {
  if (r->pos > 0) {
    memmove(r->buf, r->buf + r->pos, r->len - r->pos);
    r->len -= r->pos;
    r->pos = 0;
  }
  if (r->len == sizeof(r->buf))
    return -1; /* no reply is that large */
  ssize_t n = recv(fd, r->buf + r->len, sizeof(r->buf) - r->len, MSG_DONTWAIT);
  if (n > 0) {
    r->len += (size_t)n;
    return 1;
  }
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
    return 0;
  return -1;
}

/* The next whole message into r->res: 1 (and its size), 0 if incomplete, -1 if malformed. */
static int reader_next(struct reader *r, size_t *size) {
  size_t off = r->pos;
  msgpack_unpack_return u = msgpack_unpack_next(&r->res, r->buf, r->len, &off);
  if (u == MSGPACK_UNPACK_SUCCESS) {
    *size = off - r->pos;
    r->pos = off;
    return 1;
  }
  return u == MSGPACK_UNPACK_CONTINUE ? 0 : -1;
}

static struct reader *reader_new(void) {
  struct reader *r = calloc(1, sizeof(*r));
  if (!r)
    exit(1);
  msgpack_unpacked_init(&r->res);
  return r;
}

static void reader_free(struct reader *r) {
  msgpack_unpacked_destroy(&r->res);
  free(r);
}

static int half(const char *path, const char *until, double max_seconds, double expect_close) {
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  encode_request(&sb, FIRST_MSGID);
  size_t first = sb.size / 2;
  int fd = connect_to(path);
  if (fd < 0) {
    printf("connect failed\n");
    return 1;
  }
  double t0 = now();
  if (!send_all(fd, sb.data, first, t0 + REPLY_SECONDS)) {
    printf("send failed\n");
    return 1;
  }
  printf("half_sent_bytes %zu\nmessage_bytes %zu\n", first, sb.size);
  fflush(stdout);

  if (expect_close > 0) {
    /* The agent should give up on the half message: an error reply, EOF. */
    struct reader *r = reader_new();
    int64_t code = -1, got = 0;
    size_t size;
    bool eof = false;
    while (!eof && now() < t0 + expect_close) {
      struct pollfd p = { fd, POLLIN, 0 };
      if (poll(&p, 1, 50) <= 0)
        continue;
      eof = reader_fill(r, fd) < 0;
      while (reader_next(r, &size) == 1) {
        got++;
        reply_kind(&r->res.data, 0, &code);
      }
    }
    printf("closed %d\n", eof ? 1 : 0);
    printf("closed_after_seconds %.2f\n", now() - t0);
    printf("replies %lld\n", (long long)got);
    printf("error_code %lld\n", (long long)code);
    reader_free(r);
    close(fd);
    msgpack_sbuffer_destroy(&sb);
    return eof ? 0 : 1;
  }

  if (!wait_until(until, t0 + max_seconds)) {
    printf("timed out waiting for %s\n", until);
    return 1;
  }
  const char *state = peek_state(fd);
  printf("held_seconds %.2f\n", now() - t0);
  printf("state_before_completing %s\n", state);
  fflush(stdout);
  /* The rest of the message: a live connection answers it. */
  int completed = 0;
  int64_t code = -1;
  if (send_all(fd, sb.data + first, sb.size - first, now() + REPLY_SECONDS)) {
    struct reader *r = reader_new();
    double deadline = now() + REPLY_SECONDS;
    size_t size;
    while (!completed && now() < deadline) {
      struct pollfd p = { fd, POLLIN, 0 };
      if (poll(&p, 1, 50) <= 0)
        continue;
      if (reader_fill(r, fd) < 0)
        break;
      if (reader_next(r, &size) == 1)
        completed = reply_kind(&r->res.data, FIRST_MSGID, &code) ? 1 : -1;
    }
    reader_free(r);
  }
  printf("completed %d\n", completed == 1 ? 1 : 0);
  if (code >= 0)
    printf("error_code %lld\n", (long long)code);
  bool kept = strcmp(state, "open") == 0 && completed == 1;
  printf("kept %d\n", kept ? 1 : 0);
  close(fd);
  msgpack_sbuffer_destroy(&sb);
  return kept ? 0 : 1;
}

static int flood(const char *path, const char *until, double max_seconds) {
  msgpack_sbuffer sb;
  uint32_t next_msgid = FIRST_MSGID, want_msgid = FIRST_MSGID;
  size_t off = 0, req_min = SIZE_MAX, req_max = 0, reply_max = 0;
  long started = 0, replies = 0, replies_ok = 0, other_code = -1;
  unsigned long long bytes_sent = 0;
  bool blocked = false, eof = false;

  msgpack_sbuffer_init(&sb);
  int fd = connect_to(path);
  if (fd < 0) {
    printf("connect failed\n");
    return 1;
  }
  double t0 = now(), last_progress = t0;
  /* Flood: never read. */
  while (access(until, F_OK) != 0) {
    if (now() >= t0 + max_seconds) {
      printf("timed out waiting for %s\n", until);
      return 1;
    }
    if (off == sb.size) {
      encode_request(&sb, next_msgid++);
      off = 0;
      if (sb.size < req_min)
        req_min = sb.size;
      if (sb.size > req_max)
        req_max = sb.size;
    }
    ssize_t n = send(fd, sb.data + off, sb.size - off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      if (off == 0)
        started++;
      off += (size_t)n;
      bytes_sent += (unsigned long long)n;
      last_progress = now();
      continue;
    }
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      printf("send failed: %s\n", strerror(errno));
      eof = true;
      break;
    }
    if (!blocked && now() - last_progress >= BLOCKED_AFTER) {
      blocked = true;
      printf("blocked requests %ld bytes %llu after_seconds %.2f\n", started, bytes_sent, now() - t0);
      fflush(stdout);
    }
    struct pollfd p = { fd, POLLOUT, 0 };
    poll(&p, 1, 50);
  }
  printf("requests_sent %ld\nbytes_sent %llu\nrequest_bytes_min %zu\nrequest_bytes_max %zu\n", started, bytes_sent,
         req_min == SIZE_MAX ? 0 : req_min, req_max);
  printf("was_blocked %d\n", blocked ? 1 : 0);
  fflush(stdout);

  /* Drain: finish the request in flight (one not begun is dropped) and read every reply. */
  if (off == 0)
    msgpack_sbuffer_clear(&sb);
  struct reader *r = reader_new();
  double d0 = now();
  while (!eof && replies < started && now() < d0 + DRAIN_SECONDS) {
    struct pollfd p = { fd, (short)(POLLIN | (off < sb.size ? POLLOUT : 0)), 0 };
    if (poll(&p, 1, 100) <= 0)
      continue;
    if (off < sb.size && (p.revents & POLLOUT)) {
      ssize_t n = send(fd, sb.data + off, sb.size - off, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0)
        off += (size_t)n;
    }
    if (!(p.revents & (POLLIN | POLLHUP | POLLERR)))
      continue;
    if (reader_fill(r, fd) < 0) {
      eof = true;
      break;
    }
    size_t size;
    int got;
    while ((got = reader_next(r, &size)) == 1) {
      if (size > reply_max)
        reply_max = size;
      int64_t code;
      if (reply_kind(&r->res.data, want_msgid, &code))
        replies_ok++;
      else if (code >= 0 && other_code < 0)
        other_code = (long)code;
      replies++;
      want_msgid++;
    }
    if (got < 0) {
      printf("malformed reply\n");
      break;
    }
  }
  printf("replies %ld\nreplies_ok %ld\nreply_bytes_max %zu\n", replies, replies_ok, reply_max);
  if (other_code >= 0)
    printf("error_code %ld\n", other_code);
  printf("drain_seconds %.2f\n", now() - d0);
  printf("eof %d\n", eof ? 1 : 0);
  bool kept = !eof && started > 0 && replies == started && replies_ok == started;
  printf("kept %d\n", kept ? 1 : 0);
  reader_free(r);
  msgpack_sbuffer_destroy(&sb);
  close(fd);
  return kept ? 0 : 1;
}

static int usage(void) {
  fprintf(stderr, "usage: hostile-client half SOCKET (--until FILE [--max-seconds N] | --expect-close SECONDS)\n"
                  "       hostile-client flood SOCKET --until FILE [--max-seconds N]\n");
  return 2;
}

int main(int argc, char **argv) {
  const char *until = NULL;
  double max_seconds = 25, expect_close = 0;

  if (argc < 3)
    return usage();
  for (int i = 3; i < argc; i++) {
    if (strcmp(argv[i], "--until") == 0 && i + 1 < argc)
      until = argv[++i];
    else if (strcmp(argv[i], "--max-seconds") == 0 && i + 1 < argc)
      max_seconds = strtod(argv[++i], NULL);
    else if (strcmp(argv[i], "--expect-close") == 0 && i + 1 < argc)
      expect_close = strtod(argv[++i], NULL);
    else
      return usage();
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (strcmp(argv[1], "half") == 0 && (until || expect_close > 0))
    return half(argv[2], until, max_seconds, expect_close);
  if (strcmp(argv[1], "flood") == 0 && until)
    return flood(argv[2], until, max_seconds);
  return usage();
}
