/*
 * bounds-client: clients that try to make the agent hold memory or stall,
 * for tests/bounds.sh. Each mode prints "name value" lines and exits 0 when
 * it could do what it was asked; the test judges the agent.
 *
 *   bounds-client bindings SOCKET N
 *       makes N bindings (identity.public for N origins), one connection.
 *   bounds-client pipeline SOCKET CONNS SECONDS
 *       on each of CONNS connections writes one 64 KiB block of pipelined
 *       identity.list requests, never reads, and holds them for SECONDS.
 *   bounds-client subscribers SOCKET CONNS SECONDS
 *       subscribes CONNS connections that never read, held for SECONDS.
 *   bounds-client rotations SOCKET ORIGIN N
 *       N rotations of ORIGIN's binding (rotate.begin, rotate.abort).
 *   bounds-client watch SOCKET SECONDS [DELAY]
 *       subscribes, reads for SECONDS (after not reading for DELAY seconds),
 *       prints how many rotation events and how many lost ones
 *       ("events.lost" counts) it was told of.
 *   bounds-client ping SOCKET SECONDS
 *       hello after hello for SECONDS: prints the count, median and
 *       maximum round trip in milliseconds, and how many failed.
 *   bounds-client idle SOCKET CONNS SECONDS
 *       opens CONNS connections that send nothing, for SECONDS; prints how
 *       many the agent closed (with its error) in that time.
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

#include "mcpsig.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
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
  return fd;
}

static void pack_str(msgpack_packer *pk, const char *s) {
  msgpack_pack_str(pk, strlen(s));
  msgpack_pack_str_body(pk, s, strlen(s));
}

/* [0, msgid, method, [{}]] */
static void pack_request(msgpack_packer *pk, uint32_t msgid, const char *method) {
  msgpack_pack_array(pk, 4);
  msgpack_pack_uint32(pk, 0);
  msgpack_pack_uint32(pk, msgid);
  pack_str(pk, method);
  msgpack_pack_array(pk, 1);
  msgpack_pack_map(pk, 0);
}

static bool write_all(int fd, const char *buf, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, buf, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return false;
    buf += n;
    len -= (size_t)n;
  }
  return true;
}

static int mode_bindings(const char *sock, long n) {
  mcpsig_client *c;
  if (mcpsig_connect(&c, sock, 30000) < 0)
    return 1;
  for (long i = 0; i < n; i++) {
    char origin[64];
    mcpsig_public_info *pub;
    snprintf(origin, sizeof(origin), "https://b%ld.example", i);
    if (mcpsig_public(c, NULL, origin, &pub) < 0) {
      fprintf(stderr, "bounds-client: %s: %s\n", origin, mcpsig_last_error(c));
      mcpsig_close(c);
      return 1;
    }
    mcpsig_public_info_free(pub);
  }
  mcpsig_close(c);
  printf("bindings %ld\n", n);
  return 0;
}

static int mode_pipeline(const char *sock, int conns, int seconds) {
  int fds[64];
  msgpack_sbuffer sb;
  msgpack_packer pk;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  uint32_t id = 1;
  while (sb.size < 64 * 1024 - 32)
    pack_request(&pk, id++, "identity.list");
  if (conns > 64)
    conns = 64;
  for (int i = 0; i < conns; i++) {
    fds[i] = connect_to(sock);
    if (fds[i] < 0 || !write_all(fds[i], sb.data, sb.size))
      return 1;
  }
  printf("requests_per_connection %u\nbytes_per_connection %zu\n", id - 1, sb.size);
  fflush(stdout);
  sleep((unsigned)seconds);
  for (int i = 0; i < conns; i++)
    close(fds[i]);
  msgpack_sbuffer_destroy(&sb);
  return 0;
}

static int mode_subscribers(const char *sock, int conns, int seconds) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  pack_request(&pk, 1, "subscribe");
  int *fds = calloc((size_t)conns, sizeof(int));
  for (int i = 0; i < conns; i++) {
    fds[i] = connect_to(sock);
    if (fds[i] < 0 || !write_all(fds[i], sb.data, sb.size)) {
      fprintf(stderr, "bounds-client: subscriber %d: %s\n", i, strerror(errno));
      return 1;
    }
  }
  printf("subscribers %d\n", conns);
  fflush(stdout);
  sleep((unsigned)seconds);
  for (int i = 0; i < conns; i++)
    close(fds[i]);
  free(fds);
  msgpack_sbuffer_destroy(&sb);
  return 0;
}

static int mode_rotations(const char *sock, const char *origin, long n) {
  mcpsig_client *c;
  if (mcpsig_connect(&c, sock, 30000) < 0)
    return 1;
  for (long i = 0; i < n; i++) {
    mcpsig_binding *b;
    if (mcpsig_rotate_begin(c, NULL, origin, &b) < 0) {
      fprintf(stderr, "bounds-client: begin %ld: %s\n", i, mcpsig_last_error(c));
      return 1;
    }
    mcpsig_binding_free(b);
    if (mcpsig_rotate_abort(c, NULL, origin, &b) < 0) {
      fprintf(stderr, "bounds-client: abort %ld: %s\n", i, mcpsig_last_error(c));
      return 1;
    }
    mcpsig_binding_free(b);
  }
  mcpsig_close(c);
  printf("rotations %ld\nevents %ld\n", n, 2 * n);
  return 0;
}

/* Reads notifications for seconds: rotation events, and "events.lost" counts. */
static int mode_watch(const char *sock, int seconds, int delay) {
  int fd = connect_to(sock);
  if (fd < 0)
    return 1;
  msgpack_sbuffer sb;
  msgpack_packer pk;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  pack_request(&pk, 1, "subscribe");
  if (!write_all(fd, sb.data, sb.size))
    return 1;
  printf("subscribed 1\n");
  fflush(stdout);
  /* A subscriber that falls behind first, and reads only after delay seconds. */
  if (delay > 0)
    sleep((unsigned)delay);
  msgpack_unpacker up;
  msgpack_unpacker_init(&up, 1 << 16);
  long events = 0, lost = 0, notices = 0;
  double end = now() + seconds;
  while (now() < end) {
    struct pollfd p = { .fd = fd, .events = POLLIN };
    if (poll(&p, 1, 100) <= 0)
      continue;
    msgpack_unpacker_reserve_buffer(&up, 1 << 16);
    ssize_t n = read(fd, msgpack_unpacker_buffer(&up), 1 << 16);
    if (n <= 0)
      break;
    msgpack_unpacker_buffer_consumed(&up, (size_t)n);
    msgpack_unpacked m;
    msgpack_unpacked_init(&m);
    while (msgpack_unpacker_next(&up, &m) == MSGPACK_UNPACK_SUCCESS) {
      const msgpack_object *o = &m.data;
      if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 3 || o->via.array.ptr[0].via.u64 != 2)
        continue;
      const msgpack_object *name = &o->via.array.ptr[1], *params = &o->via.array.ptr[2];
      if (name->type != MSGPACK_OBJECT_STR)
        continue;
      if (name->via.str.size == 8 && memcmp(name->via.str.ptr, "rotation", 8) == 0)
        events++;
      else if (name->via.str.size == 11 && memcmp(name->via.str.ptr, "events.lost", 11) == 0 &&
               params->type == MSGPACK_OBJECT_ARRAY && params->via.array.size == 1 &&
               params->via.array.ptr[0].type == MSGPACK_OBJECT_MAP) {
        const msgpack_object_map *mp = &params->via.array.ptr[0].via.map;
        for (uint32_t k = 0; k < mp->size; k++)
          if (mp->ptr[k].key.type == MSGPACK_OBJECT_STR && mp->ptr[k].key.via.str.size == 5 &&
              memcmp(mp->ptr[k].key.via.str.ptr, "count", 5) == 0)
            lost += (long)mp->ptr[k].val.via.u64;
        notices++;
      }
    }
    msgpack_unpacked_destroy(&m);
  }
  printf("events %ld\nlost %ld\nlost_notices %ld\n", events, lost, notices);
  close(fd);
  msgpack_unpacker_destroy(&up);
  msgpack_sbuffer_destroy(&sb);
  return 0;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static int mode_ping(const char *sock, int seconds) {
  static double rtt[200000];
  size_t n = 0, failed = 0;
  double end = now() + seconds;
  while (now() < end && n < sizeof(rtt) / sizeof(rtt[0])) {
    mcpsig_client *c;
    mcpsig_hello_info *hi;
    double t0 = now();
    if (mcpsig_connect(&c, sock, 10000) < 0) {
      failed++;
      usleep(10000);
      continue;
    }
    if (mcpsig_hello(c, &hi) == 0) {
      rtt[n++] = (now() - t0) * 1000.0;
      mcpsig_hello_info_free(hi);
    } else
      failed++;
    mcpsig_close(c);
    usleep(5000);
  }
  qsort(rtt, n, sizeof(rtt[0]), cmp_double);
  printf("pings %zu\nfailed %zu\nmedian_ms %.3f\nmax_ms %.3f\n", n, failed, n ? rtt[n / 2] : 0.0,
         n ? rtt[n - 1] : 0.0);
  return 0;
}

static int mode_idle(const char *sock, int conns, int seconds) {
  int *fds = calloc((size_t)conns, sizeof(int));
  int opened = 0;
  for (int i = 0; i < conns; i++) {
    fds[i] = connect_to(sock);
    if (fds[i] >= 0)
      opened++;
  }
  printf("opened %d\n", opened);
  fflush(stdout);
  sleep((unsigned)seconds);
  int closed = 0;
  for (int i = 0; i < conns; i++) {
    if (fds[i] < 0)
      continue;
    char buf[512];
    struct pollfd p = { .fd = fds[i], .events = POLLIN };
    if (poll(&p, 1, 0) == 1 && (p.revents & (POLLIN | POLLHUP)) && read(fds[i], buf, sizeof(buf)) >= 0)
      closed++;
    close(fds[i]);
  }
  printf("closed_by_agent %d\n", closed);
  free(fds);
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 4 && strcmp(argv[1], "bindings") == 0)
    return mode_bindings(argv[2], atol(argv[3]));
  if (argc >= 5 && strcmp(argv[1], "pipeline") == 0)
    return mode_pipeline(argv[2], atoi(argv[3]), atoi(argv[4]));
  if (argc >= 5 && strcmp(argv[1], "subscribers") == 0)
    return mode_subscribers(argv[2], atoi(argv[3]), atoi(argv[4]));
  if (argc >= 5 && strcmp(argv[1], "rotations") == 0)
    return mode_rotations(argv[2], argv[3], atol(argv[4]));
  if (argc >= 4 && strcmp(argv[1], "watch") == 0)
    return mode_watch(argv[2], atoi(argv[3]), argc >= 5 ? atoi(argv[4]) : 0);
  if (argc >= 4 && strcmp(argv[1], "ping") == 0)
    return mode_ping(argv[2], atoi(argv[3]));
  if (argc >= 5 && strcmp(argv[1], "idle") == 0)
    return mode_idle(argv[2], atoi(argv[3]), atoi(argv[4]));
  fprintf(stderr, "usage: bounds-client (bindings|pipeline|subscribers|rotations|watch|ping|idle) SOCKET ...\n");
  return 2;
}
