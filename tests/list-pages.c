/*
 * list-pages.c: the paged identity.list, seen from both ends (tests/list-pages.sh).
 *
 *   list-pages make SOCKET N TAG    N first contacts (identity.public of
 *                                   https://bI.TAG.example) over one libmcpsig
 *                                   connection: N bindings, quickly
 *   list-pages pages SOCKET [LIMIT] every page as the wire carries it, read
 *                                   with raw requests; then the whole listing
 *                                   re-encoded as the one reply an unpaged
 *                                   agent would send, and what a client's
 *                                   framing says of it
 *   list-pages ask SOCKET [after=CURSOR] [limit=N] [limit-type=str]
 *                                   one raw request; prints its answer
 *
 * Output is "key value" lines, for the shell test to compare.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <msgpack.h>

#include "mcpsig.h"
#include "proto.h"

static int make(const char *sock, long n, const char *tag) {
  mcpsig_client *c = NULL;
  char why[1024] = "", origin[256];
  long created = 0;
  int r = mcpsig_connect_explain(&c, sock, 30000, why, sizeof(why));
  if (r < 0) {
    fprintf(stderr, "list-pages: %s\n", why[0] ? why : mcpsig_strerror(r));
    return 2;
  }
  for (long i = 0; i < n; i++) {
    mcpsig_public_info *pi = NULL;
    snprintf(origin, sizeof(origin), "https://b%ld.%s.example", i, tag);
    if ((r = mcpsig_public(c, NULL, origin, &pi)) < 0) {
      fprintf(stderr, "list-pages: %s: %s\n", origin, mcpsig_last_error(c));
      mcpsig_close(c);
      return 1;
    }
    created += pi->created;
    mcpsig_public_info_free(pi);
  }
  mcpsig_close(c);
  printf("created %ld\n", created);
  return 0;
}

static int raw_connect(const char *sock) {
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
  if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
    fprintf(stderr, "list-pages: cannot connect to %s: %s\n", sock, strerror(errno));
    return -1;
  }
  return fd;
}

/* Writes all of sb. */
static int send_all(int fd, const msgpack_sbuffer *sb) {
  for (size_t off = 0; off < sb->size;) {
    ssize_t n = write(fd, sb->data + off, sb->size - off);
    if (n <= 0)
      return -1;
    off += (size_t)n;
  }
  return 0;
}

/* Reads one reply (the agent sends nothing unasked here) into *buf; its length. */
static ssize_t recv_reply(int fd, unsigned char **buf, size_t *cap) {
  size_t len = 0;
  for (;;) {
    /* A frame limit far above the protocol's, to measure what arrives. */
    ssize_t n = proto_frame_scan(*buf, len, 64u * 1024u * 1024u, MCPSIG_MAX_DEPTH);
    if (n != 0)
      return n;
    if (*cap - len < 65536) {
      unsigned char *p = realloc(*buf, *cap * 2 + 65536);
      if (!p)
        return -ENOMEM;
      *buf = p;
      *cap = *cap * 2 + 65536;
    }
    ssize_t got = read(fd, *buf + len, *cap - len);
    if (got <= 0)
      return -ECONNRESET;
    len += (size_t)got;
  }
}

struct reply {
  msgpack_unpacked up;
  const msgpack_object *error, *result;
  size_t size;
};

/* Sends identity.list with the given params (none at all without after and has_limit). */
static int ask(int fd, uint32_t msgid, const char *after, long limit, bool has_limit, bool limit_str,
               unsigned char **buf, size_t *cap, struct reply *rep) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_array(&pk, 4);
  msgpack_pack_uint32(&pk, PROTO_REQUEST);
  msgpack_pack_uint32(&pk, msgid);
  proto_pack_str(&pk, "identity.list");
  if (!after && !has_limit) {
    /* What a client from before pages sends: no parameter at all. */
    msgpack_pack_array(&pk, 0);
  } else {
    msgpack_pack_array(&pk, 1);
    msgpack_pack_map(&pk, (after ? 1 : 0) + (has_limit ? 1 : 0));
    if (after) {
      proto_pack_str(&pk, "after");
      proto_pack_str(&pk, after);
    }
    if (has_limit) {
      proto_pack_str(&pk, "limit");
      if (limit_str)
        proto_pack_str(&pk, "10");
      else
        msgpack_pack_int64(&pk, limit);
    }
  }
  int r = send_all(fd, &sb);
  msgpack_sbuffer_destroy(&sb);
  if (r < 0)
    return -EIO;
  ssize_t n = recv_reply(fd, buf, cap);
  if (n < 0)
    return (int)n;
  size_t off = 0;
  msgpack_unpacked_init(&rep->up);
  if (msgpack_unpack_next(&rep->up, (const char *)*buf, (size_t)n, &off) != MSGPACK_UNPACK_SUCCESS ||
      rep->up.data.type != MSGPACK_OBJECT_ARRAY || rep->up.data.via.array.size != 4)
    return -EPROTO;
  rep->error = &rep->up.data.via.array.ptr[2];
  rep->result = &rep->up.data.via.array.ptr[3];
  rep->size = (size_t)n;
  return 0;
}

/* "ask": one request, its answer as "error CODE MESSAGE" or "ok" lines. */
static int ask_once(const char *sock, int argc, char **argv) {
  const char *after = NULL;
  long limit = 0;
  bool has_limit = false, limit_str = false;
  for (int i = 0; i < argc; i++) {
    if (strncmp(argv[i], "after=", 6) == 0) {
      after = argv[i] + 6;
    } else if (strncmp(argv[i], "limit=", 6) == 0) {
      limit = strtol(argv[i] + 6, NULL, 10);
      has_limit = true;
    } else if (strcmp(argv[i], "limit-type=str") == 0) {
      limit_str = true;
    }
  }
  int fd = raw_connect(sock);
  if (fd < 0)
    return 2;
  unsigned char *buf = NULL;
  size_t cap = 0;
  struct reply rep;
  int r = ask(fd, 1, after, limit, has_limit, limit_str, &buf, &cap, &rep);
  close(fd);
  if (r < 0) {
    fprintf(stderr, "list-pages: no reply: %s\n", strerror(-r));
    return 1;
  }
  msgpack_zone *z = msgpack_zone_new(4096);
  if (rep.error->type != MSGPACK_OBJECT_NIL) {
    struct proto_error e;
    if (proto_decode(&proto_error_schema, rep.error, z, &e, 0, NULL, 0) == 0)
      printf("error %lld %s\n", (long long)e.code, e.message);
  } else {
    struct proto_list_result res;
    char why[160] = "";
    if (proto_decode(&proto_list_result_schema, rep.result, z, &res, 0, why, sizeof(why)) == 0)
      printf("ok\nbytes %zu\nidentities %zu\nbindings %zu\nnext %s\n", rep.size, res.n_identities, res.n_bindings,
             res.next ? res.next : "nil");
    else
      printf("malformed %s\n", why);
  }
  msgpack_zone_free(z);
  msgpack_unpacked_destroy(&rep.up);
  free(buf);
  return 0;
}

static int pages(const char *sock, long limit) {
  struct proto_list_result all = { 0 };
  size_t cap_ids = 0, cap_bs = 0, max_page = 0, total_bytes = 0, n_pages = 0;
  unsigned char *buf = NULL;
  size_t cap = 0;
  char *after = NULL;
  msgpack_zone *z = msgpack_zone_new(1 << 20);
  int fd = raw_connect(sock);
  if (fd < 0 || !z)
    return 2;
  for (uint32_t msgid = 1;; msgid++) {
    struct reply rep;
    struct proto_list_result res;
    char why[160] = "";
    int r = ask(fd, msgid, after, limit, limit >= 0, false, &buf, &cap, &rep);
    if (r < 0 || rep.error->type != MSGPACK_OBJECT_NIL ||
        proto_decode(&proto_list_result_schema, rep.result, z, &res, 0, why, sizeof(why)) < 0) {
      fprintf(stderr, "list-pages: page %zu failed (%d) %s\n", n_pages + 1, r, why);
      return 1;
    }
    n_pages++;
    total_bytes += rep.size;
    if (rep.size > max_page)
      max_page = rep.size;
    if (n_pages == 1)
      printf("first_page_bytes %zu\nfirst_page_bindings %zu\nfirst_page_next %s\n", rep.size, res.n_bindings,
             res.next ? "set" : "nil");
    /* The strings are in z; the arrays are joined here. */
    if (all.n_identities + res.n_identities > cap_ids) {
      cap_ids = (all.n_identities + res.n_identities) * 2;
      all.identities = realloc(all.identities, cap_ids * sizeof(*all.identities));
    }
    if (all.n_bindings + res.n_bindings > cap_bs) {
      cap_bs = (all.n_bindings + res.n_bindings) * 2;
      all.bindings = realloc(all.bindings, cap_bs * sizeof(*all.bindings));
    }
    if ((res.n_identities && !all.identities) || (res.n_bindings && !all.bindings))
      return 1;
    /* memcpy() must not see a NULL pointer, even for zero bytes (a page may hold no identity). */
    if (res.n_identities)
      memcpy(all.identities + all.n_identities, res.identities, res.n_identities * sizeof(*res.identities));
    if (res.n_bindings)
      memcpy(all.bindings + all.n_bindings, res.bindings, res.n_bindings * sizeof(*res.bindings));
    all.n_identities += res.n_identities;
    all.n_bindings += res.n_bindings;
    msgpack_unpacked_destroy(&rep.up);
    free(after);
    after = res.next ? strdup(res.next) : NULL;
    if (!after)
      break;
  }
  close(fd);
  printf("pages %zu\nidentities %zu\nbindings %zu\nlargest_page_bytes %zu\nall_pages_bytes %zu\n", n_pages,
         all.n_identities, all.n_bindings, max_page, total_bytes);
  size_t dup = 0;
  for (size_t i = 1; i < all.n_bindings; i++) {
    int d = strcmp(all.bindings[i].identity, all.bindings[i - 1].identity);
    if (d < 0 || (d == 0 && strcmp(all.bindings[i].origin, all.bindings[i - 1].origin) <= 0))
      dup++;
  }
  printf("out_of_order %zu\n", dup);

  /* The control: everything as the single reply of an agent without pages. */
  msgpack_sbuffer sb;
  msgpack_packer pk;
  msgpack_object nil_id = { .type = MSGPACK_OBJECT_POSITIVE_INTEGER, .via.u64 = 1 };
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  all.next = NULL;
  proto_response_begin(&pk, &nil_id);
  proto_encode(&pk, &proto_list_result_schema, &all);
  ssize_t scan = proto_frame_scan((const unsigned char *)sb.data, sb.size, MCPSIG_MAX_MSG_LEN, MCPSIG_MAX_DEPTH);
  printf("unpaged_bytes %zu\nmax_msg_len %u\nunpaged_frame %s\n", sb.size, MCPSIG_MAX_MSG_LEN,
         scan == MCPSIG_ETOOBIG ? "ETOOBIG" : scan > 0 ? "fits" : "other");
  msgpack_sbuffer_destroy(&sb);
  free(all.identities);
  free(all.bindings);
  free(buf);
  msgpack_zone_free(z);
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 5 && strcmp(argv[1], "make") == 0)
    return make(argv[2], strtol(argv[3], NULL, 10), argv[4]);
  if (argc >= 3 && strcmp(argv[1], "pages") == 0)
    return pages(argv[2], argc > 3 ? strtol(argv[3], NULL, 10) : -1);
  if (argc >= 3 && strcmp(argv[1], "ask") == 0)
    return ask_once(argv[2], argc - 3, argv + 3);
  fprintf(stderr, "usage: list-pages make SOCKET N TAG | pages SOCKET [LIMIT] | ask SOCKET [after=C] [limit=N]\n");
  return 2;
}
