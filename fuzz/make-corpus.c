/*
 * make-corpus.c: writes the seed corpus of fuzz-dispatch: real requests of
 * every method, encoded by the same codec as libmcpsig, one connection's
 * byte stream per file (a first byte that sets the read size, then the
 * messages). Usage: make-corpus DIR
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "proto.h"

static msgpack_sbuffer sb;
static msgpack_packer pk;
static uint32_t msgid;

static void begin(void) {
  msgpack_sbuffer_clear(&sb);
  msgpack_sbuffer_write(&sb, "\x10", 1); /* reads of 257 bytes */
  msgid = 1;
}

static void req(const char *method, const struct proto_schema *schema, const void *params) {
  char dummy = 0;
  proto_request_encode(&pk, msgid++, method, schema ? schema : &proto_empty_schema, params ? params : &dummy);
}

static int save(const char *dir, const char *name) {
  char path[512];
  snprintf(path, sizeof(path), "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(sb.data, 1, sb.size, f) != sb.size || fclose(f) != 0) {
    perror(path);
    return 1;
  }
  return 0;
}

int main(int argc, char **argv) {
  static const unsigned char seed[32] = { 0x9f, 0x83, 0x62, 0xf8, 0x7a, 0x48, 0x4a, 0x95, 0x4e, 0x6e, 0x74,
                                          0x0c, 0x5b, 0x4c, 0x0e, 0x84, 0x22, 0x91, 0x39, 0xa2, 0x0a, 0xa8,
                                          0xab, 0x56, 0xff, 0x66, 0x58, 0x6f, 0x6a, 0x7d, 0x29, 0xc5 };
  static const char ec_jwk[] = "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"qIVYZVLCrPZHGHjP17CTW0_-D9Lfw0EkjqF7xB4FivA\","
                               "\"y\":\"Mc4nN9LTDOBhfoUeg8Ye9WedFRhnZXZJA12Qp0zZ6F0\","
                               "\"d\":\"UpuF81l-kOxbjf7T4mNSv0r5tN67Gim7rnf6EFpcYDs\"}";
  static const char body[] =
    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\",\"arguments\":{\"text\":\"hi\"}}}";
  struct proto_pair h[] = { { "Content-Type", "application/json" }, { "MCP-Protocol-Version", "2025-06-18" },
                            { "MCP-Session-Id", "sess-4f9c2a" } };
  const char *algs[] = { "RS256", "ES256", "EdDSA" }, *comps[] = { "@authority" }, *hsalgs[] = { "ecdsa-p256-sha256" };
  const char *dir = argc > 1 ? argv[1] : ".";
  int bad = 0;

  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);

  begin();
  req("hello", NULL, NULL);
  req("identity.list", NULL, NULL);
  bad |= save(dir, "hello-list");

  struct proto_identity_params add = { .identity = "work", .alg = "p256" };
  struct proto_identity_params pub = { .identity = "work", .origin = "https://MCP.example.com:443/mcp" };
  struct proto_identity_params rm = { .identity = "work", .origin = "https://mcp.example.com" };
  struct proto_identity_params all = { .identity = "work", .all = true };
  begin();
  req("identity.add", &proto_identity_params_schema, &add);
  req("identity.public", &proto_identity_params_schema, &pub);
  req("identity.remove", &proto_identity_params_schema, &rm);
  req("identity.remove", &proto_identity_params_schema, &all);
  bad |= save(dir, "identities");

  struct proto_import_params imp = { .origin = "https://mcp.example.com", .seed = seed, .seed_len = 32, .has_seed = true };
  struct proto_import_params impj = { .origin = "https://ec.example.com", .jwk = (const unsigned char *)ec_jwk,
                                      .jwk_len = strlen(ec_jwk), .has_jwk = true };
  begin();
  req("identity.import", &proto_import_params_schema, &imp);
  req("identity.import", &proto_import_params_schema, &impj);
  bad |= save(dir, "import");

  struct proto_sign_params sa = { .method = "POST", .uri = "https://mcp.example.com/mcp", .headers = h, .n_headers = 3,
                                  .body = (const unsigned char *)body, .body_len = strlen(body), .has_body = true };
  struct proto_sign_params sb2 = {
    .method = "POST", .uri = "https://mcp.example.com/mcp", .headers = h + 1, .n_headers = 2,
    .content_digest = "sha-256=:6eKjXjwvtdKgEW/maMG0iUc511YUdfH2erCfHbofIuw=:",
    .accept_signature = "sig1=(\"@method\" \"@target-uri\" \"content-digest\" \"mcp-protocol-version\" "
                        "\"mcp-session-id\");created;nonce=\"srv-7Hq2\";tag=\"mcp-server.example\"",
  };
  struct proto_sign_params sc = { .method = "GET", .uri = "https://mcp.example.com/mcp?x=1", .headers = h + 2,
                                  .n_headers = 1, .label = "sig2", .components = comps, .n_components = 1,
                                  .algorithms = hsalgs, .n_algorithms = 1, .key = "active" };
  begin();
  req("sign.http", &proto_sign_params_schema, &sa);
  req("sign.http", &proto_sign_params_schema, &sb2);
  req("sign.http", &proto_sign_params_schema, &sc);
  bad |= save(dir, "sign");

  struct proto_dpop_params dp = { .origin = "https://mcp.example.com", .htm = "POST", .htu = "https://as.example/token",
                                  .algorithms = algs, .n_algorithms = 3 };
  struct proto_dpop_params dr = { .origin = "https://mcp.example.com", .htm = "GET",
                                  .htu = "https://mcp.example.com/mcp?q#f", .nonce = "eyJ7S_zG.eyJH0-Z.HX4w-7v",
                                  .access_token = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU" };
  begin();
  req("dpop.proof", &proto_dpop_params_schema, &dp);
  req("dpop.proof", &proto_dpop_params_schema, &dr);
  bad |= save(dir, "dpop");

  struct proto_rotate_params rp = { .origin = "https://mcp.example.com" };
  struct proto_rotate_sign_params rs = { .uri = "https://mcp.example.com/mcp", .headers = h + 1, .n_headers = 2,
                                         .id = { .str = NULL, .num = 7 }, .has_id = true };
  begin();
  req("subscribe", NULL, NULL);
  req("identity.public", &proto_identity_params_schema, &rm);
  req("rotate.begin", &proto_rotate_params_schema, &rp);
  req("rotate.status", &proto_rotate_params_schema, &rp);
  req("sign.rotate", &proto_rotate_sign_params_schema, &rs);
  sa.key = "pending";
  req("sign.http", &proto_sign_params_schema, &sa);
  req("rotate.commit", &proto_rotate_params_schema, &rp);
  req("rotate.begin", &proto_rotate_params_schema, &rp);
  req("rotate.abort", &proto_rotate_params_schema, &rp);
  bad |= save(dir, "rotation");

  msgpack_sbuffer_destroy(&sb);
  return bad;
}
