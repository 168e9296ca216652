/*
 * hostile.c: the hostile-input suite, run against a live agent by
 * tests/hostile.sh. Usage: hostile SOCKET TSV [PARTIAL_TIMEOUT_SECONDS]
 *
 * The cases are generated from the protocol's own method table
 * (proto_methods) and schemas: every field of every method is sent, on a
 * fresh connection, with every wrong msgpack type and every out-of-range
 * value (too long, too many items, NUL, invalid UTF-8, empty), inside
 * otherwise valid params. Then the framing cases: truncated msgpack, unknown
 * method, huge declared lengths, deep nesting, CR/LF in header values, a
 * relative URI, 10,000 headers, a 100 MB body claim, broken envelopes.
 *
 * Each case must get the documented error (or, for values the protocol
 * accepts, a success or a documented error), or a closed connection where
 * PROTOCOL.md says so. After every case a well-behaved client, connected
 * the whole time, must still sign. Prints TAP and writes the tally to TSV.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <sodium.h>

#include "mcpsig.h"
#include "proto.h"
#include "tap.h"

static const char *sock_path;
static mcpsig_client *good;
static unsigned long n_cases, n_expected, n_good_ok, n_good_fail, n_unexpected;

/* ---- one raw connection ---- */

struct outcome {
  bool replied;   /* a complete reply arrived */
  int code;       /* 0 for a result, else the error code (positive, as on the wire) */
  bool nil_msgid;
  bool closed;    /* the agent closed the connection (EOF) */
  char message[256];
};

static int raw_connect(void) {
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
  if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
    if (fd >= 0)
      close(fd);
    return -1;
  }
  return fd;
}

/* Reads one reply (or EOF) within timeout_ms. */
static void raw_read(int fd, struct outcome *o, int timeout_ms) {
  static char buf[1 << 16];
  size_t len = 0;
  for (;;) {
    struct pollfd p = { fd, POLLIN, 0 };
    if (poll(&p, 1, timeout_ms) <= 0)
      return;
    ssize_t n = read(fd, buf + len, sizeof(buf) - len);
    if (n <= 0) {
      o->closed = true;
      return;
    }
    len += (size_t)n;
    msgpack_unpacked up;
    size_t off = 0;
    msgpack_unpacked_init(&up);
    if (msgpack_unpack_next(&up, buf, len, &off) == MSGPACK_UNPACK_SUCCESS) {
      const msgpack_object *f = up.data.via.array.ptr;
      if (up.data.type == MSGPACK_OBJECT_ARRAY && up.data.via.array.size == 4) {
        o->replied = true;
        o->nil_msgid = f[1].type == MSGPACK_OBJECT_NIL;
        if (f[2].type == MSGPACK_OBJECT_MAP) {
          for (uint32_t i = 0; i < f[2].via.map.size; i++) {
            const msgpack_object_kv *kv = &f[2].via.map.ptr[i];
            if (kv->key.via.str.size == 4 && memcmp(kv->key.via.str.ptr, "code", 4) == 0)
              o->code = (int)kv->val.via.u64;
            if (kv->key.via.str.size == 7 && memcmp(kv->key.via.str.ptr, "message", 7) == 0)
              snprintf(o->message, sizeof(o->message), "%.*s", (int)kv->val.via.str.size, kv->val.via.str.ptr);
          }
        }
      }
      msgpack_unpacked_destroy(&up);
      return;
    }
    msgpack_unpacked_destroy(&up);
  }
}

/* Sends bytes on a fresh connection (then half-closes when eof) and reads the answer. */
static struct outcome raw_send(const void *data, size_t len, bool eof, int timeout_ms) {
  struct outcome o = { 0 };
  int fd = raw_connect();
  if (fd < 0) {
    o.closed = true;
    snprintf(o.message, sizeof(o.message), "connect: %s", strerror(errno));
    return o;
  }
  size_t done = 0;
  while (done < len) {
    ssize_t n = send(fd, (const char *)data + done, len - done, MSG_NOSIGNAL);
    if (n <= 0)
      break; /* the agent closed early: that is an answer too */
    done += (size_t)n;
  }
  if (eof)
    shutdown(fd, SHUT_WR);
  raw_read(fd, &o, timeout_ms);
  close(fd);
  return o;
}

/* The well-behaved client signs after every case. */
static void good_client_signs(void) {
  mcpsig_sign_request req = { .method = "POST", .uri = "https://good.example/mcp", .body = "{}", .body_len = 2 };
  mcpsig_signature *sig = NULL;
  if (mcpsig_sign_http(good, &req, &sig) == 0) {
    n_good_ok++;
  } else {
    n_good_fail++;
    printf("# the good client failed: %s\n", mcpsig_last_error(good));
  }
  mcpsig_signature_free(sig);
}

/* Counts a case; expected says whether the outcome was the documented one. */
static void verdict(const char *desc, bool expected, const struct outcome *o) {
  n_cases++;
  if (expected) {
    n_expected++;
  } else {
    n_unexpected++;
    printf("# unexpected: %s -> replied %d code %d nil_msgid %d closed %d: %s\n", desc, o->replied, o->code,
           o->nil_msgid, o->closed, o->message);
  }
  good_client_signs();
}

/* ---- messages ---- */

static msgpack_sbuffer sb;
static msgpack_packer pk;

static void msg_begin(const char *method) {
  msgpack_sbuffer_clear(&sb);
  msgpack_pack_array(&pk, 4);
  msgpack_pack_uint32(&pk, PROTO_REQUEST);
  msgpack_pack_uint32(&pk, 7);
  proto_pack_str(&pk, method);
  msgpack_pack_array(&pk, 1);
}

/* Valid params for each method, so that only the mutated field is wrong. */
static void baseline(const char *method, msgpack_sbuffer *out) {
  static const char body[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}";
  static const unsigned char seed[32] = { 1, 2, 3 };
  struct proto_pair h[] = { { "MCP-Session-Id", "s-1" } };
  const char *algs[] = { "EdDSA" }, *comps[] = { "@authority" }, *hsalgs[] = { "ed25519" };
  msgpack_packer p;
  msgpack_packer_init(&p, out, msgpack_sbuffer_write);
  if (strcmp(method, "identity.public") == 0 || strcmp(method, "identity.remove") == 0) {
    struct proto_identity_params v = { .origin = "https://h.example" };
    proto_encode(&p, &proto_identity_params_schema, &v);
  } else if (strcmp(method, "identity.add") == 0) {
    struct proto_identity_params v = { .identity = "h-new", .alg = "ed25519" };
    proto_encode(&p, &proto_identity_params_schema, &v);
  } else if (strcmp(method, "identity.import") == 0) {
    struct proto_import_params v = { .origin = "https://h-import.example", .seed = seed, .seed_len = 32, .has_seed = true };
    proto_encode(&p, &proto_import_params_schema, &v);
  } else if (strcmp(method, "sign.http") == 0) {
    struct proto_sign_params v = { .method = "POST", .uri = "https://h.example/mcp", .headers = h, .n_headers = 1,
                                   .body = (const unsigned char *)body, .body_len = strlen(body), .has_body = true,
                                   .label = "sig1", .components = comps, .n_components = 1, .key = "active",
                                   .algorithms = hsalgs, .n_algorithms = 1 };
    proto_encode(&p, &proto_sign_params_schema, &v);
  } else if (strcmp(method, "dpop.proof") == 0) {
    struct proto_dpop_params v = { .origin = "https://h.example", .htm = "POST", .htu = "https://as.example/token",
                                   .access_token = "tok", .nonce = "n1", .algorithms = algs, .n_algorithms = 1 };
    proto_encode(&p, &proto_dpop_params_schema, &v);
  } else if (strncmp(method, "rotate.", 7) == 0) {
    struct proto_rotate_params v = { .origin = "https://h.example" };
    proto_encode(&p, &proto_rotate_params_schema, &v);
  } else if (strcmp(method, "sign.rotate") == 0) {
    struct proto_rotate_sign_params v = { .uri = "https://h.example/mcp", .headers = h, .n_headers = 1,
                                          .id = { .num = 5 }, .has_id = true };
    proto_encode(&p, &proto_rotate_sign_params_schema, &v);
  } else {
    msgpack_pack_map(&p, 0);
  }
}

enum wrong { W_NIL, W_TRUE, W_POS, W_NEG, W_FLOAT, W_STR, W_BIN, W_ARRAY, W_MAP, W_COUNT };
static const char *const wrong_names[] = { "nil", "a boolean", "a positive integer", "a negative integer", "a float",
                                             "a string", "binary data", "an array", "a map" };

static void pack_wrong(enum wrong w) {
  switch (w) {
  case W_NIL: msgpack_pack_nil(&pk); break;
  case W_TRUE: msgpack_pack_true(&pk); break;
  case W_POS: msgpack_pack_uint64(&pk, 7); break;
  case W_NEG: msgpack_pack_int64(&pk, -7); break;
  case W_FLOAT: msgpack_pack_double(&pk, 1.5); break;
  case W_STR: proto_pack_str(&pk, "x"); break;
  case W_BIN: msgpack_pack_bin(&pk, 1); msgpack_pack_bin_body(&pk, "x", 1); break;
  case W_ARRAY: msgpack_pack_array(&pk, 0); break;
  case W_MAP: msgpack_pack_map(&pk, 0); break;
  default: break;
  }
}

static bool type_accepts(proto_type t, enum wrong w) {
  switch (t) {
  case PT_STR: return w == W_STR;
  case PT_BIN: return w == W_BIN;
  case PT_BOOL: return w == W_TRUE;
  case PT_INT: return w == W_POS || w == W_NEG;
  case PT_STRV: case PT_PAIRS: case PT_STRUCTV: return w == W_ARRAY;
  case PT_STRUCT: return w == W_MAP;
  case PT_SCALAR: return w == W_STR || w == W_POS || w == W_NEG;
  }
  return false;
}

/* A value that breaks a limit or a rule; returns false when it does not apply to this type. */
enum bad { B_TOO_LONG, B_NUL, B_BAD_UTF8, B_EMPTY, B_TOO_MANY, B_BAD_ITEM, B_HUGE_INT, B_COUNT };
static const char *const bad_names[] = { "one byte too long", "an embedded NUL", "invalid UTF-8", "empty",
                                           "one item too many", "an item of the wrong type", "2^64-1" };

static bool pack_bad(const struct proto_field *f, enum bad b, bool *ret_must_fail) {
  size_t max = f->max;
  *ret_must_fail = true;
  if (f->type == PT_STR || f->type == PT_SCALAR || f->type == PT_BIN) {
    size_t lim = max ? max : (f->type == PT_BIN ? 0 : MCPSIG_MAX_STR_LEN);
    switch (b) {
    case B_TOO_LONG: {
      if (!lim)
        return false;
      char *s = malloc(lim + 1);
      memset(s, 'a', lim + 1);
      if (f->type == PT_BIN) {
        msgpack_pack_bin(&pk, lim + 1);
        msgpack_pack_bin_body(&pk, s, lim + 1);
      } else {
        msgpack_pack_str(&pk, lim + 1);
        msgpack_pack_str_body(&pk, s, lim + 1);
      }
      free(s);
      return true;
    }
    case B_NUL:
      if (f->type == PT_BIN)
        return false;
      msgpack_pack_str(&pk, 3);
      msgpack_pack_str_body(&pk, "a\0b", 3);
      return true;
    case B_BAD_UTF8:
      if (f->type == PT_BIN)
        return false;
      msgpack_pack_str(&pk, 3);
      msgpack_pack_str_body(&pk, "\xff\xfe\xc3", 3);
      *ret_must_fail = false; /* PROTOCOL.md §6: UTF-8 is not checked; signed values must be ASCII */
      return true;
    case B_EMPTY:
      if (f->type == PT_BIN) {
        msgpack_pack_bin(&pk, 0);
      } else {
        msgpack_pack_str(&pk, 0);
      }
      *ret_must_fail = false; /* some fields take an empty value; the rest refuse it with a documented code */
      return true;
    case B_HUGE_INT:
      if (f->type != PT_SCALAR)
        return false;
      msgpack_pack_uint64(&pk, UINT64_MAX);
      return true;
    default:
      return false;
    }
  }
  if (f->type == PT_STRV || f->type == PT_PAIRS) {
    size_t lim = max ? max : MCPSIG_MAX_ARRAY;
    if (b == B_TOO_MANY) {
      msgpack_pack_array(&pk, lim + 1);
      for (size_t i = 0; i <= lim; i++) {
        if (f->type == PT_PAIRS) {
          msgpack_pack_array(&pk, 2);
          proto_pack_str(&pk, "x-h");
          proto_pack_str(&pk, "v");
        } else {
          proto_pack_str(&pk, "ed25519");
        }
      }
      return true;
    }
    if (b == B_BAD_ITEM) {
      msgpack_pack_array(&pk, 1);
      msgpack_pack_uint64(&pk, 1);
      return true;
    }
  }
  return false;
}

/* Sends method's baseline params with field replaced (by a wrong type when w < W_COUNT, else by bad value b). */
static struct outcome send_mutated(const char *method, const struct proto_field *field, enum wrong w, enum bad b,
                                   bool *ret_must_fail) {
  msgpack_sbuffer base;
  msgpack_unpacked up;
  size_t off = 0;
  msgpack_sbuffer_init(&base);
  baseline(method, &base);
  msgpack_unpacked_init(&up);
  msgpack_unpack_next(&up, base.data, base.size, &off);
  const msgpack_object_map *m = &up.data.via.map;
  bool present = false;
  for (uint32_t i = 0; i < m->size; i++)
    if (m->ptr[i].key.via.str.size == strlen(field->name) &&
        memcmp(m->ptr[i].key.via.str.ptr, field->name, strlen(field->name)) == 0)
      present = true;
  msg_begin(method);
  msgpack_pack_map(&pk, m->size + (present ? 0 : 1));
  for (uint32_t i = 0; i < m->size; i++) {
    msgpack_pack_object(&pk, m->ptr[i].key);
    if (m->ptr[i].key.via.str.size == strlen(field->name) &&
        memcmp(m->ptr[i].key.via.str.ptr, field->name, strlen(field->name)) == 0) {
      if (w < W_COUNT)
        pack_wrong(w);
      else
        pack_bad(field, b, ret_must_fail);
    } else {
      msgpack_pack_object(&pk, m->ptr[i].val);
    }
  }
  if (!present) {
    proto_pack_str(&pk, field->name);
    if (w < W_COUNT)
      pack_wrong(w);
    else
      pack_bad(field, b, ret_must_fail);
  }
  msgpack_unpacked_destroy(&up);
  msgpack_sbuffer_destroy(&base);
  return raw_send(sb.data, sb.size, false, 5000);
}

/* An error code of the documented table (PROTOCOL.md §5) that may reach the wire. */
static bool documented(int code) {
  return code >= 1001 && code <= 1024 && code != 1016 && code != 1017 && code != 1018 && code != 1019 && code != 1022;
}

static void generated_cases(void) {
  char desc[200];
  for (size_t mi = 0; mi < proto_n_methods; mi++) {
    const struct proto_method *m = &proto_methods[mi];
    unsigned long before = n_unexpected, cases = 0;
    for (size_t fi = 0; fi < m->params->n_fields; fi++) {
      const struct proto_field *f = &m->params->fields[fi];
      for (int w = 0; w < W_COUNT; w++) {
        if (type_accepts(f->type, (enum wrong)w))
          continue;
        bool must_fail = true;
        struct outcome o = send_mutated(m->name, f, (enum wrong)w, 0, &must_fail);
        snprintf(desc, sizeof(desc), "%s: %s as %s", m->name, f->name, wrong_names[w]);
        verdict(desc, o.replied && !o.nil_msgid && o.code == 1005 && strstr(o.message, f->name), &o);
        cases++;
      }
      for (int b = 0; b < B_COUNT; b++) {
        bool must_fail = true;
        msgpack_sbuffer_clear(&sb);
        struct outcome o;
        /* Check applicability first, with a throwaway encoding. */
        msgpack_sbuffer probe;
        msgpack_packer save = pk;
        msgpack_sbuffer_init(&probe);
        msgpack_packer_init(&pk, &probe, msgpack_sbuffer_write);
        bool applies = pack_bad(f, (enum bad)b, &must_fail);
        msgpack_sbuffer_destroy(&probe);
        pk = save;
        if (!applies)
          continue;
        o = send_mutated(m->name, f, W_COUNT, (enum bad)b, &must_fail);
        snprintf(desc, sizeof(desc), "%s: %s %s", m->name, f->name, bad_names[b]);
        bool ok_outcome = must_fail ? (o.replied && !o.nil_msgid && documented(o.code) && o.code != 0)
                                    : (o.replied && !o.nil_msgid && (o.code == 0 || documented(o.code)));
        verdict(desc, ok_outcome, &o);
        cases++;
      }
    }
    /* An unknown parameter, and params that are not a map. */
    msg_begin(m->name);
    msgpack_pack_map(&pk, 1);
    proto_pack_str(&pk, "no_such_parameter");
    msgpack_pack_true(&pk);
    struct outcome o = raw_send(sb.data, sb.size, false, 5000);
    snprintf(desc, sizeof(desc), "%s: an unknown parameter", m->name);
    verdict(desc, o.replied && o.code == 1005 && strstr(o.message, "unknown parameter"), &o);
    msg_begin(m->name);
    msgpack_pack_uint64(&pk, 3);
    o = raw_send(sb.data, sb.size, false, 5000);
    snprintf(desc, sizeof(desc), "%s: params that are not a map", m->name);
    verdict(desc, o.replied && o.code == 1005, &o);
    cases += 2;
    snprintf(desc, sizeof(desc), "%s: %lu generated cases (every field, every wrong type and bad value) got the documented answer",
             m->name, cases);
    ok(n_unexpected == before, desc);
  }
}

/* ---- framing ---- */

static void framing_case(const char *desc, const void *data, size_t len, bool eof, int want_code, bool want_close) {
  struct outcome o = raw_send(data, len, eof, 5000);
  bool good_outcome;
  if (want_code)
    good_outcome = o.replied && o.code == want_code && (!want_close || o.nil_msgid);
  else
    good_outcome = o.closed && !o.replied;
  verdict(desc, good_outcome, &o);
  ok(good_outcome, desc);
}

static void framing_cases(void) {
  /* truncated msgpack: half of a valid request, then EOF: nothing to answer */
  msg_begin("hello");
  msgpack_pack_map(&pk, 0);
  framing_case("truncated msgpack, then EOF: the connection is closed, no reply", sb.data, sb.size / 2, true, 0, true);

  msg_begin("no.such.method");
  msgpack_pack_map(&pk, 0);
  framing_case("an unknown method: EMETHOD", sb.data, sb.size, false, 1004, false);

  msg_begin("\xff\xfe");
  msgpack_pack_map(&pk, 0);
  framing_case("a method name of invalid UTF-8: EMETHOD", sb.data, sb.size, false, 1004, false);

  static const unsigned char huge_str[] = { 0x94, 0x00, 0x01, 0xdb, 0xff, 0xff, 0xff, 0xf0 };
  framing_case("a str declaring 4 GiB: ETOOBIG, nil msgid, closed", huge_str, sizeof(huge_str), false, 1002, true);
  static const unsigned char huge_arr[] = { 0xdd, 0xff, 0xff, 0xff, 0xff };
  framing_case("an array declaring 2^32-1 items: ETOOBIG, nil msgid, closed", huge_arr, sizeof(huge_arr), false, 1002, true);

  unsigned char deep[200];
  memset(deep, 0x91, sizeof(deep)); /* 200 nested one-element arrays */
  framing_case("200 levels of nesting: EDEPTH, nil msgid, closed", deep, sizeof(deep), false, 1003, true);

  /* 100 MB body claim: sign.http whose body bin32 header declares 100 MB */
  msg_begin("sign.http");
  msgpack_pack_map(&pk, 3);
  proto_pack_str(&pk, "method");
  proto_pack_str(&pk, "POST");
  proto_pack_str(&pk, "uri");
  proto_pack_str(&pk, "https://h.example/mcp");
  proto_pack_str(&pk, "body");
  msgpack_pack_bin(&pk, 100u * 1000u * 1000u);
  framing_case("a 100 MB body claim: ETOOBIG as soon as the header arrives, closed", sb.data, sb.size, false, 1002, true);

  /* 10,000 headers */
  msg_begin("sign.http");
  msgpack_pack_map(&pk, 3);
  proto_pack_str(&pk, "method");
  proto_pack_str(&pk, "GET");
  proto_pack_str(&pk, "uri");
  proto_pack_str(&pk, "https://h.example/mcp");
  proto_pack_str(&pk, "headers");
  msgpack_pack_array(&pk, 10000);
  for (int i = 0; i < 10000; i++) {
    char name[16];
    snprintf(name, sizeof(name), "x-h%d", i);
    msgpack_pack_array(&pk, 2);
    proto_pack_str(&pk, name);
    proto_pack_str(&pk, "v");
  }
  framing_case("10,000 headers: EPARAM (too many items)", sb.data, sb.size, false, 1005, false);

  struct proto_pair crlf[] = { { "MCP-Session-Id", "s\r\nX-Injected: 1" } };
  struct proto_sign_params sp = { .method = "GET", .uri = "https://h.example/mcp", .headers = crlf, .n_headers = 1 };
  msg_begin("sign.http");
  proto_encode(&pk, &proto_sign_params_schema, &sp);
  framing_case("CR/LF in a covered header value: EHEADER", sb.data, sb.size, false, 1010, false);

  struct proto_sign_params rel = { .method = "GET", .uri = "/mcp" };
  msg_begin("sign.http");
  proto_encode(&pk, &proto_sign_params_schema, &rel);
  framing_case("a relative URI: EURI", sb.data, sb.size, false, 1009, false);

  struct proto_pair nul[] = { { "x-a", "v" } };
  msg_begin("sign.http");
  msgpack_pack_map(&pk, 3);
  proto_pack_str(&pk, "method");
  proto_pack_str(&pk, "GET");
  proto_pack_str(&pk, "uri");
  msgpack_pack_str(&pk, 24);
  msgpack_pack_str_body(&pk, "https://h.example/\0mcp..", 24);
  proto_pack_str(&pk, "headers");
  msgpack_pack_array(&pk, 1);
  msgpack_pack_array(&pk, 2);
  proto_pack_str(&pk, nul[0].name);
  proto_pack_str(&pk, nul[0].value);
  framing_case("an embedded NUL in a string: EPARAM", sb.data, sb.size, false, 1005, false);

  static const unsigned char not_msgpack[] = { 0xc1, 0x00, 0x00 };
  framing_case("a byte that is not msgpack (0xc1): EPROTO, closed", not_msgpack, sizeof(not_msgpack), false, 1001, true);
  static const unsigned char resp[] = { 0x94, 0x01, 0x01, 0xc0, 0xc0 };
  framing_case("a response instead of a request: EPROTO, nil msgid, closed", resp, sizeof(resp), false, 1001, true);
  static const unsigned char two_params[] = { 0x94, 0x00, 0x01, 0xa5, 'h', 'e', 'l', 'l', 'o', 0x92, 0x80, 0x80 };
  framing_case("params with two maps: EPROTO", two_params, sizeof(two_params), false, 1001, false);
  static const unsigned char big_msgid[] = { 0x94, 0x00, 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                             0xa5, 'h', 'e', 'l', 'l', 'o', 0x90 };
  framing_case("a msgid beyond 32 bits: EPROTO, closed", big_msgid, sizeof(big_msgid), false, 1001, true);
  static const unsigned char notif[] = { 0x93, 0x02, 0xa5, 'h', 'e', 'l', 'l', 'o', 0x90 };
  struct outcome o = raw_send(notif, sizeof(notif), false, 500);
  verdict("a notification: no reply, connection kept", !o.replied && !o.closed, &o);
  ok(!o.replied && !o.closed, "a notification from a client: ignored, no reply, connection kept");
}

/* Half a message, then silence: the agent must answer EPROTO and close after its partial-message timeout. */
static unsigned long partial_case(int seconds) {
  static const unsigned char half[] = { 0x94, 0x00, 0x01, 0xa5, 'h', 'e' };
  struct outcome o = raw_send(half, sizeof(half), false, (seconds + 3) * 1000);
  bool good_outcome = o.replied && o.code == 1001 && o.nil_msgid && strstr(o.message, "no complete message");
  verdict("half a message, then silence", good_outcome, &o);
  ok(good_outcome, "half a message, then silence: EPROTO with a nil msgid after the partial-message timeout");
  printf("# %s\n", o.message);
  return good_outcome ? 1 : 0;
}

int main(int argc, char **argv) {
  unsigned long partial_closed = 0;
  if (argc != 3 && argc != 4) {
    fprintf(stderr, "usage: hostile SOCKET TSV [PARTIAL_TIMEOUT_SECONDS]\n");
    return 2;
  }
  sock_path = argv[1];
  if (sodium_init() < 0 || mcpsig_connect(&good, sock_path, 10000) < 0) {
    printf("Bail out! cannot connect to the agent at %s\n", sock_path);
    return 1;
  }
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  good_client_signs();
  generated_cases();
  framing_cases();
  if (argc == 4)
    partial_closed = partial_case(atoi(argv[3]));
  ok(n_good_fail == 0 && n_good_ok == n_cases + 1,
     "the well-behaved client, connected throughout, signed after every case");
  printf("# %lu cases, %lu with the documented answer; the good client signed %lu times, failed %lu\n", n_cases,
         n_expected, n_good_ok, n_good_fail);
  FILE *f = fopen(argv[2], "w");
  if (f) {
    fprintf(f, "hostile_cases\t%lu\nhostile_cases_documented\t%lu\nhostile_cases_unexpected\t%lu\n"
               "good_client_signatures_during_hostile\t%lu\ngood_client_failures_during_hostile\t%lu\n"
               "partial_message_connections_closed\t%lu\n",
            n_cases, n_expected, n_unexpected, n_good_ok, n_good_fail, partial_closed);
    fclose(f);
  }
  msgpack_sbuffer_destroy(&sb);
  mcpsig_close(good);
  return done_testing();
}
