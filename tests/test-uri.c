/* test-uri.c: which target URIs can be signed, and origin serialization. */
#include "config.h"

#include <string.h>

#include "mcpsig.h"
#include "tap.h"
#include "uri.h"

static void target_ok(const char *s, const char *authority, const char *path, const char *query) {
  struct uri u;
  char err[256] = "", desc[300];
  int r = uri_parse_target(s, &u, err, sizeof(err));
  snprintf(desc, sizeof(desc), "target accepted: %s %s", s, err);
  if (!ok(r == 0, desc))
    return;
  ok(u.authority_len == strlen(authority) && memcmp(u.authority, authority, u.authority_len) == 0 &&
       u.path_len == strlen(path) && memcmp(u.path, path, u.path_len) == 0 &&
       (query ? u.has_query && u.query_len == strlen(query) && memcmp(u.query, query, u.query_len) == 0 : !u.has_query),
     "  and split into authority, path and query");
}

static void target_bad(const char *s, const char *why) {
  struct uri u;
  char err[256] = "", desc[400];
  int r = uri_parse_target(s, &u, err, sizeof(err));
  snprintf(desc, sizeof(desc), "target refused: %s (%s)", s, err);
  for (char *p = desc; *p; p++)
    if ((unsigned char)*p < 0x20)
      *p = '?';
  ok(r == MCPSIG_EURI && strstr(err, why) != NULL, desc);
}

static void origin_is(const char *url, const char *want) {
  char out[300], err[256] = "", desc[400];
  int r = uri_origin(url, out, sizeof(out), err, sizeof(err));
  snprintf(desc, sizeof(desc), "origin of %s", url);
  is_str(r == 0 ? out : err, want, desc);
}

static void htu_is(const char *url, const char *want) {
  char out[300], err[256] = "", desc[400];
  int r = uri_htu(url, out, sizeof(out), err, sizeof(err));
  snprintf(desc, sizeof(desc), "htu of %s", url);
  if (r == 0)
    is_str(out, want, desc);
  else
    ok(r == MCPSIG_EURI && strstr(err, want) != NULL, desc);
  if (r < 0)
    printf("#   %s\n", err);
}

int main(void) {
  target_ok("https://mcp.example.com/mcp", "mcp.example.com", "/mcp", NULL);
  target_ok("http://127.0.0.1:8080/mcp?a=1&b=%2F", "127.0.0.1:8080", "/mcp", "a=1&b=%2F");
  target_ok("https://[::1]:8443/", "[::1]:8443", "/", NULL);
  target_ok("https://a.example/p?", "a.example", "/p", "");
  target_ok("https://xn--bcher-kva.example/%7Euser/", "xn--bcher-kva.example", "/%7Euser/", NULL);

  target_bad("/mcp", "absolute");
  target_bad("mcp.example.com/mcp", "absolute");
  target_bad("ftp://a.example/", "http or https");
  target_bad("HTTPS://a.example/", "lowercase");
  target_bad("https://A.example/", "lowercase");
  target_bad("https://a.example:443/", "default port");
  target_bad("http://a.example:80/", "default port");
  target_bad("https://a.example", "path is empty");
  target_bad("https://a.example?x", "path is empty");
  target_bad("https://a.example/#frag", "fragment");
  target_bad("https://user:pw@a.example/", "userinfo");
  target_bad("https://a.example/a b", "space");
  target_bad("https://a.example/caf\xc3\xa9", "non-ASCII");
  target_bad("https://a.example/\r\nX: y", "control");
  target_bad("https:///mcp", "no host");
  target_bad("https://a.example:/", "empty port");
  target_bad("https://a.example:99999/", "out of range");
  target_bad("https://a.example:0/", "out of range");
  target_bad("https://a.example:12x/", "invalid port");
  target_bad("https://[::1/", "IPv6");
  target_bad("https://a_b\".example/", "invalid character");

  /* Forms a server or curl rebuilds differently (RFC 3986 §3.2.2 and §5.2.4,
   * RFC 5952): refused, with the form to sign named. */
  target_bad("https://[2001:db8:0:0:0:0:0:1]/mcp", "sign it as https://[2001:db8::1]/mcp");
  target_bad("https://[2001:db8:0:0:0:0:0:1]/mcp", "RFC 5952");
  target_bad("https://[2001:0db8::1]:8443/mcp", "sign it as https://[2001:db8::1]:8443/mcp");
  target_bad("http://127.000.0.001:8080/mcp", "sign it as http://127.0.0.1:8080/mcp");
  target_bad("http://127.000.0.001:8080/mcp", "dotted decimal");
  target_bad("http://0x7f.1/mcp", "sign it as http://127.0.0.1/mcp");
  target_bad("http://2130706433/mcp", "sign it as http://127.0.0.1/mcp");
  target_bad("https://a.example/a/../mcp", "sign it as https://a.example/mcp");
  target_bad("https://a.example/./mcp", "sign it as https://a.example/mcp");
  target_bad("https://a.example/mcp/.", "sign it as https://a.example/mcp/");
  target_bad("https://a.example/x/y/..", "sign it as https://a.example/x/");
  target_bad("https://a.example/a/../mcp?q=1", "sign it as https://a.example/mcp?q=1");
  target_bad("https://a.example:0443/", "sign it as https://a.example/");
  target_bad("https://a.example:08443/", "sign it as https://a.example:8443/");
  target_bad("https://A.example/", "sign it as https://a.example/");
  target_bad("https://[fe80::1%25eth0]/", "IPv6");
  /* Controls: the canonical forms of the same, and names that look numeric. */
  target_ok("https://[2001:db8::1]/mcp", "[2001:db8::1]", "/mcp", NULL);
  target_ok("https://[::ffff:127.0.0.1]/", "[::ffff:127.0.0.1]", "/", NULL);
  target_ok("http://127.0.0.1:8080/mcp", "127.0.0.1:8080", "/mcp", NULL);
  target_ok("https://a.example/a..b/.c/mcp", "a.example", "/a..b/.c/mcp", NULL);
  target_ok("https://1.2.3.example/mcp", "1.2.3.example", "/mcp", NULL);
  target_ok("https://a.example/%2e%2e/mcp", "a.example", "/%2e%2e/mcp", NULL);
  origin_is("http://127.000.0.001:8080/mcp", "http://127.0.0.1:8080");
  origin_is("https://[2001:db8:0:0:0:0:0:1]:8443/", "https://[2001:db8::1]:8443");

  /* DPoP htu: the same rules, the query and fragment dropped. */
  htu_is("https://mcp.example.com/mcp?x=1#f", "https://mcp.example.com/mcp");
  htu_is("https://MCP.Example.com:443/mcp", "URI host must be lowercase, as servers rebuild it; use https://mcp.example.com/mcp");
  htu_is("https://a.example/a/../token", "segments: clients send it with them removed; use https://a.example/token");
  htu_is("https://[2001:db8:0::1]/token", "RFC 5952 form, as servers rebuild it; use https://[2001:db8::1]/token");
  htu_is("https://a.example/t?q=/../x", "https://a.example/t");

  origin_is("https://MCP.Example.com:443/mcp?x#y", "https://mcp.example.com");
  origin_is("HTTP://a.example:80", "http://a.example");
  origin_is("http://a.example:8080/x", "http://a.example:8080");
  origin_is("https://[::1]:8443", "https://[::1]:8443");
  origin_is("https://a.example:8443", "https://a.example:8443");
  origin_is("wss://a.example/", "URI scheme must be http or https");
  origin_is("https://u@a.example/", "URI must not contain userinfo (user@host)");
  return done_testing();
}
