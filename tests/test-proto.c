/* test-proto.c: framing limits before allocation, and the schema codec. */
#include "config.h"

#include <string.h>
#include <sodium.h>

#include "proto.h"
#include "tap.h"

#define MAX MCPSIG_MAX_MSG_LEN
#define DEPTH MCPSIG_MAX_DEPTH

static void test_frame(void) {
  static const unsigned char small[] = { 0x94, 0x00, 0x01, 0xa5, 'h', 'e', 'l', 'l', 'o', 0x90 };
  is_int(proto_frame_scan(small, sizeof(small), MAX, DEPTH), sizeof(small), "a complete request frames");
  for (size_t i = 0; i < sizeof(small); i++)
    if (proto_frame_scan(small, i, MAX, DEPTH) != 0) {
      ok(0, "every proper prefix needs more bytes");
      goto next;
    }
  ok(1, "every proper prefix needs more bytes");
next:;
  unsigned char two[2 * sizeof(small)];
  memcpy(two, small, sizeof(small));
  memcpy(two + sizeof(small), small, sizeof(small));
  is_int(proto_frame_scan(two, sizeof(two), MAX, DEPTH), sizeof(small), "pipelined messages frame one at a time");

  static const unsigned char huge_array[] = { 0xdd, 0xff, 0xff, 0xff, 0xff };
  is_int(proto_frame_scan(huge_array, sizeof(huge_array), MAX, DEPTH), MCPSIG_ETOOBIG,
         "an array declaring 4G elements is refused from its 5-byte header");
  static const unsigned char huge_map[] = { 0xdf, 0x10, 0x00, 0x00, 0x00 };
  is_int(proto_frame_scan(huge_map, sizeof(huge_map), MAX, DEPTH), MCPSIG_ETOOBIG, "a huge map is refused");
  static const unsigned char huge_str[] = { 0xdb, 0x7f, 0xff, 0xff, 0xff };
  is_int(proto_frame_scan(huge_str, sizeof(huge_str), MAX, DEPTH), MCPSIG_ETOOBIG, "a 2 GiB string is refused");
  static const unsigned char huge_bin[] = { 0x91, 0xc6, 0x00, 0x20, 0x00, 0x00 };
  is_int(proto_frame_scan(huge_bin, sizeof(huge_bin), MAX, DEPTH), MCPSIG_ETOOBIG, "a nested huge bin is refused");
  static const unsigned char reserved[] = { 0x92, 0xc1, 0x00 };
  is_int(proto_frame_scan(reserved, sizeof(reserved), MAX, DEPTH), MCPSIG_EPROTO, "the reserved byte 0xc1 is refused");

  unsigned char deep[32];
  for (unsigned d = 1; d <= 12; d++) {
    memset(deep, 0x91, d);
    deep[d] = 0x00;
    ssize_t r = proto_frame_scan(deep, d + 1, MAX, DEPTH);
    if (d == DEPTH)
      is_int(r, d + 1, "nesting at the limit frames");
    if (d == DEPTH + 1)
      is_int(r, MCPSIG_EDEPTH, "nesting one beyond the limit is refused");
  }

  /* A buffer full to the limit without a complete message. */
  size_t n = 64;
  unsigned char *b = calloc(1, n);
  b[0] = 0xdc;
  b[1] = 0x00;
  b[2] = 0x30; /* 48 elements fit by count, but each is a 3-byte uint16 */
  for (size_t i = 3; i + 2 < n; i += 3) {
    b[i] = 0xcd;
    b[i + 1] = 0x00;
    b[i + 2] = 0x01;
  }
  is_int(proto_frame_scan(b, n, n, DEPTH), MCPSIG_ETOOBIG, "an incomplete message at the size limit is refused");
  is_int(proto_frame_scan(b, 10, n, DEPTH), 0, "the same message below the limit waits for more bytes");
  free(b);
}

static void test_codec(void) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  msgpack_zone z;
  msgpack_unpacked up;
  char err[256];
  struct proto_pair headers[] = { { "MCP-Session-Id", "s1" }, { "Accept", "a, b" } };
  struct proto_sign_params in = { .method = "POST", .uri = "https://a.example/mcp", .headers = headers,
                                  .n_headers = 2, .body = (const unsigned char *)"x\0y", .body_len = 3,
                                  .has_body = true, .label = "sig1" };
  struct proto_sign_params out;

  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  ok(proto_encode(&pk, &proto_sign_params_schema, &in) == 0, "sign params encode");
  msgpack_zone_init(&z, 256);
  msgpack_unpacked_init(&up);
  size_t off = 0;
  msgpack_unpack_next(&up, sb.data, sb.size, &off);
  ok(proto_decode(&proto_sign_params_schema, &up.data, &z, &out, PROTO_DECODE_STRICT, err, sizeof(err)) == 0,
     "and decode strictly");
  ok(strcmp(out.method, "POST") == 0 && strcmp(out.uri, in.uri) == 0 && out.n_headers == 2 &&
       strcmp(out.headers[1].value, "a, b") == 0 && out.has_body && out.body_len == 3 && memcmp(out.body, "x\0y", 3) == 0 &&
       strcmp(out.label, "sig1") == 0 && out.identity == NULL,
     "round trip keeps every field, binary body included");
  msgpack_unpacked_destroy(&up);
  msgpack_sbuffer_destroy(&sb);

  /* Each broken map must be refused with a message naming the field. */
  struct {
    const char *desc;
    const char *want;
    void (*build)(msgpack_packer *pk);
  } cases[] = {
    { "unknown parameter", "unknown parameter", NULL },
    { "wrong type", "expected a string", NULL },
    { "embedded NUL", "NUL", NULL },
    { "missing required", "missing", NULL },
    { "given twice", "given twice", NULL },
    { "too many headers", "too many", NULL },
    { "string too long", "too long", NULL },
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    unsigned nfields = i == 3 ? 1 : i == 4 ? 3 : 3;
    msgpack_pack_map(&pk, nfields);
    proto_pack_str(&pk, "method");
    if (i == 1)
      msgpack_pack_int(&pk, 5);
    else
      proto_pack_str(&pk, "POST");
    if (i != 3) {
      proto_pack_str(&pk, "uri");
      if (i == 2) {
        msgpack_pack_str(&pk, 3);
        msgpack_pack_str_body(&pk, "a\0b", 3);
      } else if (i == 6) {
        size_t n = MCPSIG_MAX_STR_LEN + 1;
        char *s = malloc(n);
        memset(s, 'a', n);
        msgpack_pack_str(&pk, n);
        msgpack_pack_str_body(&pk, s, n);
        free(s);
      } else {
        proto_pack_str(&pk, "https://a.example/");
      }
      if (i == 0) {
        proto_pack_str(&pk, "nonce");
        proto_pack_str(&pk, "chosen-by-client");
      } else if (i == 4) {
        proto_pack_str(&pk, "method");
        proto_pack_str(&pk, "GET");
      } else if (i == 5) {
        proto_pack_str(&pk, "headers");
        msgpack_pack_array(&pk, MCPSIG_MAX_HEADERS + 1);
        for (unsigned k = 0; k < MCPSIG_MAX_HEADERS + 1; k++) {
          msgpack_pack_array(&pk, 2);
          proto_pack_str(&pk, "x");
          proto_pack_str(&pk, "y");
        }
      } else {
        proto_pack_str(&pk, "label");
        proto_pack_str(&pk, "sig1");
      }
    }
    msgpack_unpacked_init(&up);
    off = 0;
    msgpack_unpack_next(&up, sb.data, sb.size, &off);
    err[0] = '\0';
    int r = proto_decode(&proto_sign_params_schema, &up.data, &z, &out, PROTO_DECODE_STRICT, err, sizeof(err));
    char desc[128];
    snprintf(desc, sizeof(desc), "refused: %s (%s)", cases[i].desc, err);
    ok(r == MCPSIG_EPARAM && strstr(err, cases[i].want) != NULL, desc);
    msgpack_unpacked_destroy(&up);
    msgpack_sbuffer_destroy(&sb);
  }
  msgpack_zone_destroy(&z);
}

static void test_errors(void) {
  is_str(mcpsig_strerror(MCPSIG_ENOIDENT), "unknown identity", "strerror names our codes");
  ok(strlen(mcpsig_strerror(-2)) > 0 && strcmp(mcpsig_strerror(-2), "unknown error") != 0, "and system errors");
  is_str(mcpsig_strerror(12345), "unknown error", "and admits an unknown code");
  is_int(-MCPSIG_EPROTO, 1001, "wire codes are stable: EPROTO is 1001");
  is_int(-MCPSIG_EBUSY, 1021, "wire codes are stable: EBUSY is 1021");
}

int main(void) {
  if (sodium_init() < 0)
    return 99;
  test_frame();
  test_codec();
  test_errors();
  return done_testing();
}
