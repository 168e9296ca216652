/*
 * test-sfv.c: RFC 8941 serialization edge cases, the dictionary parser, and
 * how Accept-Signature turns into what gets covered.
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sodium.h>

#include "httpsig.h"
#include "sfv.h"
#include "tap.h"

static const char *ser_string(const char *s, int *ret) {
  static struct buf b;
  buf_free(&b);
  *ret = sfv_put_string(&b, s);
  return buf_cstr(&b);
}

static void test_serialize(void) {
  struct buf b = BUF_INIT;
  int r;

  is_str(ser_string("plain", &r), "\"plain\"", "string: plain");
  is_str(ser_string("a\"b\\c", &r), "\"a\\\"b\\\\c\"", "string: quote and backslash escaped, nothing else");
  is_str(ser_string("", &r), "\"\"", "string: empty");
  is_str(ser_string(" ~", &r), "\" ~\"", "string: 0x20 and 0x7e are allowed");
  ser_string("tab\there", &r);
  ok(r == -EINVAL, "string: a control character is refused");
  ser_string("caf\xc3\xa9", &r);
  ok(r == -EINVAL, "string: non-ASCII is refused");
  ser_string("a\x7f", &r);
  ok(r == -EINVAL, "string: DEL is refused");

  ok(sfv_put_integer(&b, 0) == 0 && strcmp(buf_cstr(&b), "0") == 0, "integer: 0");
  buf_free(&b);
  ok(sfv_put_integer(&b, 999999999999999LL) == 0 && strcmp(buf_cstr(&b), "999999999999999") == 0,
     "integer: the 15-digit maximum");
  buf_free(&b);
  ok(sfv_put_integer(&b, -999999999999999LL) == 0 && strcmp(buf_cstr(&b), "-999999999999999") == 0,
     "integer: the 15-digit minimum");
  buf_free(&b);
  ok(sfv_put_integer(&b, 1000000000000000LL) == -ERANGE, "integer: 16 digits are refused");
  buf_free(&b);

  ok(sfv_put_binary(&b, "", 0) == 0 && strcmp(buf_cstr(&b), "::") == 0, "binary: empty");
  buf_free(&b);
  ok(sfv_put_binary(&b, "\xfb\xff", 2) == 0 && strcmp(buf_cstr(&b), ":+/8=:") == 0,
     "binary: standard alphabet with padding, never base64url");
  buf_free(&b);

  ok(sfv_key_valid("sig1") && sfv_key_valid("sig-old") && sfv_key_valid("*x") && sfv_key_valid("a_b.c*"),
     "key: valid forms");
  ok(!sfv_key_valid("Sig1") && !sfv_key_valid("1sig") && !sfv_key_valid("") && !sfv_key_valid("a b") &&
       !sfv_key_valid("-a"),
     "key: invalid forms are refused");
  char longkey[70];
  memset(longkey, 'a', 65);
  longkey[65] = '\0';
  ok(!sfv_key_valid(longkey), "key: more than 64 characters is refused");
  buf_free(&b);
}

static const char *roundtrip(const char *in, int *ret) {
  static struct buf b;
  struct sfv_dict d;
  char err[128];
  buf_free(&b);
  *ret = sfv_parse_dictionary(in, &d, err, sizeof(err));
  if (*ret < 0)
    return NULL;
  sfv_put_dictionary(&b, &d);
  sfv_dict_free(&d);
  return buf_cstr(&b);
}

static void test_parse(void) {
  int r;
  is_str(roundtrip("sig1=(\"@method\" \"@target-uri\");created;nonce;tag=\"x\"", &r),
         "sig1=(\"@method\" \"@target-uri\");created;nonce;tag=\"x\"", "dictionary: SEP Accept-Signature round-trips");
  is_str(roundtrip("  a=1 ,\tb=?0, c, d=(1   2);p=:AQ==:  ", &r), "a=1, b=?0, c, d=(1 2);p=:AQ==:",
         "dictionary: whitespace variants parse to the canonical form");
  is_str(roundtrip("a=1, a=2", &r), "a=2", "dictionary: a repeated key overwrites in place");
  is_str(roundtrip("a=tok/en:x, b=-1.5, c=\"q\\\"\"", &r), "a=tok/en:x, b=-1.5, c=\"q\\\"\"",
         "dictionary: tokens, decimals and escapes");
  roundtrip("a=1,", &r);
  ok(r == -EINVAL, "dictionary: trailing comma is refused");
  roundtrip("A=1", &r);
  ok(r == -EINVAL, "dictionary: upper-case key is refused");
  roundtrip("a=\"unterminated", &r);
  ok(r == -EINVAL, "dictionary: unterminated string is refused");
  roundtrip("a=\"bad\\escape\"", &r);
  ok(r == -EINVAL, "dictionary: bad escape is refused");
  roundtrip("a=(1 2", &r);
  ok(r == -EINVAL, "dictionary: unterminated inner list is refused");
  roundtrip("a=1234567890123456", &r);
  ok(r == -EINVAL, "dictionary: 16-digit integer is refused");
  roundtrip("a=1.2345", &r);
  ok(r == -EINVAL, "dictionary: 4 fraction digits are refused");
  roundtrip("a=1.", &r);
  ok(r == -EINVAL, "dictionary: decimal ending in '.' is refused");
  roundtrip("a=:AQ=:", &r);
  ok(r == -EINVAL, "dictionary: malformed base64 is refused");
  roundtrip("a=?2", &r);
  ok(r == -EINVAL, "dictionary: invalid boolean is refused");
  roundtrip("", &r);
  ok(r == -EINVAL, "dictionary: empty is refused");
  roundtrip("a=1 b=2", &r);
  ok(r == -EINVAL, "dictionary: missing comma is refused");
  roundtrip("a=\"caf\xc3\xa9\"", &r);
  ok(r == -EINVAL, "dictionary: non-ASCII string is refused");

  char many[4096] = "";
  for (int i = 0; i < 40; i++) {
    char m[16];
    snprintf(m, sizeof(m), "%sk%d=1", i ? ", " : "", i);
    strcat(many, m);
  }
  roundtrip(many, &r);
  ok(r == -EINVAL, "dictionary: more members than the limit are refused");
}

static int plan(const char *accept, const struct proto_pair *h, size_t nh, struct httpsig_plan *p, char *err) {
  struct httpsig_request req;
  int r = httpsig_request_init(&req, "POST", "https://mcp.example.com/mcp", h, nh, err, 256);
  return r < 0 ? r : httpsig_plan_build(&req, accept, NULL, NULL, 0, p, err, 256);
}

static char *joined(const struct httpsig_plan *p) {
  static char s[512];
  s[0] = '\0';
  for (size_t i = 0; i < p->n_components; i++) {
    if (i)
      strcat(s, " ");
    strcat(s, p->components[i]);
  }
  return s;
}

static void test_accept(void) {
  static const struct proto_pair h[] = { { "MCP-Protocol-Version", "2025-06-18" }, { "MCP-Session-Id", "s1" } };
  struct httpsig_plan p;
  char err[256];

  ok(plan(NULL, h, 2, &p, err) == 0, "no Accept-Signature: the SEP set");
  is_str(joined(&p), "@method @target-uri content-digest mcp-protocol-version mcp-session-id", "SEP order");
  is_str(p.label, "sig1", "default label");
  httpsig_plan_free(&p);
  ok(plan(NULL, h, 0, &p, err) == 0 && strcmp(joined(&p), "@method @target-uri content-digest") == 0,
     "no MCP headers: they are not covered");
  httpsig_plan_free(&p);

  ok(plan("sig2=(\"@authority\" \"@method\" \"content-digest\");created;nonce=\"srv-n\";keyid;tag=\"mcp-server.example\"",
          h, 2, &p, err) == 0,
     "Accept-Signature is applied");
  is_str(p.label, "sig2", "its label is used");
  is_str(joined(&p), "@authority @method content-digest @target-uri mcp-protocol-version mcp-session-id",
         "its components first, in order, then the SEP components it left out");
  is_str(p.server_nonce, "srv-n", "a nonce value is copied");
  is_str(p.server_tag, "mcp-server.example", "a requested tag is noted (the identity tag is kept)");
  ok(p.server_keyid == NULL, "a bare keyid flag asks for no particular key");
  httpsig_plan_free(&p);

  ok(plan("sig1=(\"@method\");nonce;expires", h, 0, &p, err) == 0 && p.server_nonce == NULL && p.want_expires,
     "bare nonce means fresh; expires is honoured");
  httpsig_plan_free(&p);

  ok(plan("sig1=(\"@query-param\";name=\"a\")", h, 0, &p, err) == MCPSIG_EACCEPT,
     "a component with parameters is refused clearly");
  ok(plan("sig1=(\"@status\")", h, 0, &p, err) == MCPSIG_EACCEPT, "@status (responses only) is refused");
  ok(plan("sig1=(\"Content-Type\")", h, 0, &p, err) == MCPSIG_EACCEPT, "an upper-case component is refused");
  ok(plan("sig1=(\"@method\" \"@method\")", h, 0, &p, err) == MCPSIG_EACCEPT, "a duplicate component is refused");
  ok(plan("sig1=(\"@method\");foo", h, 0, &p, err) == MCPSIG_EACCEPT, "an unknown parameter is refused");
  ok(plan("sig1=\"not a list\"", h, 0, &p, err) == MCPSIG_EACCEPT, "a member that is not an inner list is refused");
  ok(plan("sig1=(@method)", h, 0, &p, err) == MCPSIG_EACCEPT, "garbage is refused with EACCEPT");
  ok(plan("sig1=(\"@method\" token)", h, 0, &p, err) == MCPSIG_EACCEPT, "a non-string component is refused");
  ok(plan("sig1=(\"@method\");nonce=1", h, 0, &p, err) == MCPSIG_EACCEPT, "a non-string nonce value is refused");
  ok(strstr(err, "nonce") != NULL, "the error names the parameter");
}

int main(void) {
  if (sodium_init() < 0)
    return 99;
  test_serialize();
  test_parse();
  test_accept();
  return done_testing();
}
