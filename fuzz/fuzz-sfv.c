/*
 * fuzz-sfv.c: libFuzzer target for the RFC 8941 dictionary parser and the
 * Accept-Signature planner built on it (RFC 9421 §5). The input is the field
 * value. A dictionary that parses must serialize again, and a second parse
 * of that serialization must give the same serialization (canonical form is
 * a fixed point); a plan must never cover a component twice.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "httpsig.h"
#include "proto.h"
#include "sfv.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  char err[256];
  char *s = malloc(size + 1);
  if (!s)
    return 0;
  memcpy(s, data, size);
  s[size] = '\0';

  struct sfv_dict d;
  if (sfv_parse_dictionary(s, &d, err, sizeof(err)) == 0) {
    struct buf once = BUF_INIT, twice = BUF_INIT;
    struct sfv_dict d2;
    if (sfv_put_dictionary(&once, &d) == 0) {
      if (sfv_parse_dictionary(buf_cstr(&once), &d2, err, sizeof(err)) != 0)
        abort(); /* our own output must parse */
      if (sfv_put_dictionary(&twice, &d2) != 0 || strcmp(buf_cstr(&once), buf_cstr(&twice)) != 0)
        abort(); /* and be canonical */
      sfv_dict_free(&d2);
    }
    buf_free(&once);
    buf_free(&twice);
    sfv_dict_free(&d);
  }

  static const struct proto_pair headers[] = {
    { "content-digest", "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:" },
    { "mcp-protocol-version", "2025-06-18" },
    { "mcp-session-id", "sess-1" },
  };
  struct httpsig_request req;
  struct httpsig_plan plan;
  if (httpsig_request_init(&req, "POST", "https://mcp.example.com/mcp", headers, 3, err, sizeof(err)) == 0) {
    memset(&plan, 0, sizeof(plan));
    if (httpsig_plan_build(&req, s, NULL, NULL, 0, &plan, err, sizeof(err)) == 0) {
      for (size_t i = 0; i < plan.n_components; i++)
        for (size_t j = i + 1; j < plan.n_components; j++)
          if (strcmp(plan.components[i], plan.components[j]) == 0)
            abort();
    }
    httpsig_plan_free(&plan);
  }
  free(s);
  return 0;
}
