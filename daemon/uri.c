/*
 * uri.c: target URI checks and origin serialization.
 *
 * A verifier rebuilds "@target-uri" from what it receives, with the scheme
 * and host lowercased and the default port dropped, so a URI in any other
 * form would produce a signature that can never verify. We refuse such URIs
 * with a message naming the fix rather than rewrite them: the host must send
 * exactly the URI we sign.
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errmsg.h"
#include "mcpsig.h"
#include "uri.h"

static bool is_regname_char(int c) {
  return isalnum(c) || (c && strchr("-._~!$&'()*+,;=%", c));
}

/* Splits scheme://authority[/path][?query][#fragment] without judging case. */
static int split(const char *s, struct uri *u, const char **ret_frag, char *err, size_t errlen) {
  const char *p;

  memset(u, 0, sizeof(*u));
  for (p = s; *p; p++)
    if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
      return errmsg(err, errlen, MCPSIG_EURI, "%s", "URI contains a space, a control character or non-ASCII (percent-encode it)");
  p = strstr(s, "://");
  if (!p)
    return errmsg(err, errlen, MCPSIG_EURI, "%s", "URI must be absolute (scheme://host/path)");
  size_t slen = (size_t)(p - s);
  if (slen == 4 && strncasecmp(s, "http", 4) == 0)
    strcpy(u->scheme, "http");
  else if (slen == 5 && strncasecmp(s, "https", 5) == 0)
    strcpy(u->scheme, "https");
  else
    return errmsg(err, errlen, MCPSIG_EURI, "%s", "URI scheme must be http or https");
  u->authority = p + 3;
  u->authority_len = strcspn(u->authority, "/?#");
  if (memchr(u->authority, '@', u->authority_len))
    return errmsg(err, errlen, MCPSIG_EURI, "%s", "URI must not contain userinfo (user@host)");
  if (u->authority_len == 0)
    return errmsg(err, errlen, MCPSIG_EURI, "%s", "URI has no host");

  const char *a = u->authority, *end = a + u->authority_len, *port = NULL;
  if (*a == '[') {
    const char *close = memchr(a, ']', u->authority_len);
    if (!close)
      return errmsg(err, errlen, MCPSIG_EURI, "%s", "URI has an unterminated IPv6 literal");
    for (const char *q = a + 1; q < close; q++)
      if (!isxdigit((unsigned char)*q) && *q != ':' && *q != '.')
        return errmsg(err, errlen, MCPSIG_EURI, "%s", "URI has an invalid IPv6 literal");
    u->host = a;
    u->host_len = (size_t)(close - a) + 1;
    if (close + 1 < end) {
      if (close[1] != ':')
        return errmsg(err, errlen, MCPSIG_EURI, "%s", "URI has junk after the IPv6 literal");
      port = close + 2;
    }
  } else {
    const char *colon = memchr(a, ':', u->authority_len);
    u->host = a;
    u->host_len = colon ? (size_t)(colon - a) : u->authority_len;
    if (colon)
      port = colon + 1;
    for (size_t i = 0; i < u->host_len; i++)
      if (!is_regname_char((unsigned char)a[i]))
        return errmsg(err, errlen, MCPSIG_EURI, "%s", "URI host contains an invalid character");
  }
  if (u->host_len == 0)
    return errmsg(err, errlen, MCPSIG_EURI, "%s", "URI has no host");
  u->port = strcmp(u->scheme, "https") == 0 ? 443 : 80;
  if (port) {
    unsigned long v = 0;
    if (port == end)
      return errmsg(err, errlen, MCPSIG_EURI, "%s", "URI has an empty port");
    for (const char *q = port; q < end; q++) {
      if (!isdigit((unsigned char)*q) || q - port > 5)
        return errmsg(err, errlen, MCPSIG_EURI, "%s", "URI has an invalid port");
      v = v * 10 + (unsigned long)(*q - '0');
    }
    if (v == 0 || v > 65535)
      return errmsg(err, errlen, MCPSIG_EURI, "%s", "URI port is out of range");
    u->port = (unsigned)v;
    u->has_port = true;
  }
  p = end;
  u->path = p;
  u->path_len = strcspn(p, "?#");
  p += u->path_len;
  if (*p == '?') {
    u->has_query = true;
    u->query = p + 1;
    u->query_len = strcspn(u->query, "#");
    p = u->query + u->query_len;
  }
  *ret_frag = *p == '#' ? p : NULL;
  return 0;
}

/*
 * One WHATWG URL IPv4 number (decimal, 0-prefixed octal, 0x-prefixed hex),
 * as curl and browsers read a host such as 127.000.0.001 or 0x7f.1.
 */
static bool ipv4_number(const char *p, size_t len, unsigned long long *ret) {
  int base = 10;
  if (len >= 2 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
    base = 16;
    p += 2;
    len -= 2;
  } else if (len >= 2 && p[0] == '0') {
    base = 8;
    p++;
    len--;
  }
  if (len == 0 && base != 10) {
    *ret = 0;
    return true;
  }
  if (len == 0 || len > 12)
    return false;
  unsigned long long v = 0;
  for (size_t i = 0; i < len; i++) {
    int c = (unsigned char)p[i], d = isdigit(c) ? c - '0' : isxdigit(c) ? tolower(c) - 'a' + 10 : 99;
    if (d >= base)
      return false;
    v = v * (unsigned)base + (unsigned)d;
  }
  *ret = v;
  return true;
}

/*
 * The canonical form of a host that is an IP address, into canon: RFC 5952
 * for an IPv6 literal (in brackets), dotted decimal for an IPv4 address in
 * any of the forms curl and servers accept. Returns 1 when host is an
 * address, 0 when it is a name, or an error for a malformed IPv6 literal.
 */
static int host_canonical(const char *host, size_t len, char *canon, size_t size, char *err, size_t errlen) {
  char text[INET6_ADDRSTRLEN + 8];
  if (host[0] == '[') {
    unsigned char a6[16];
    if (len < 3 || len - 2 >= sizeof(text))
      return errmsg(err, errlen, MCPSIG_EURI, "%s", "URI has an invalid IPv6 literal");
    memcpy(text, host + 1, len - 2);
    text[len - 2] = '\0';
    if (inet_pton(AF_INET6, text, a6) != 1 || !inet_ntop(AF_INET6, a6, text, sizeof(text)))
      return errmsg(err, errlen, MCPSIG_EURI, "%s", "URI has an invalid IPv6 literal");
    snprintf(canon, size, "[%s]", text);
    return 1;
  }
  unsigned long long part[4];
  size_t n = 0, start = 0;
  for (size_t i = 0; i <= len; i++) {
    if (i < len && host[i] != '.')
      continue;
    if (n == 4 || !ipv4_number(host + start, i - start, &part[n]))
      return 0;
    n++;
    start = i + 1;
  }
  unsigned long long v = 0;
  for (size_t i = 0; i + 1 < n; i++) {
    if (part[i] > 255)
      return 0;
    v = v << 8 | part[i];
  }
  if (part[n - 1] >= 1ull << (8 * (5 - n)))
    return 0;
  v = v << (8 * (5 - n)) | part[n - 1];
  snprintf(canon, size, "%llu.%llu.%llu.%llu", v >> 24 & 255, v >> 16 & 255, v >> 8 & 255, v & 255);
  return 1;
}

/* The host as a server writes it, into host (size > u->host_len): an IP address in its
 * canonical form, a name in lowercase. */
static int host_normal(const struct uri *u, char *host, size_t size, char *err, size_t errlen) {
  int r = host_canonical(u->host, u->host_len, host, size, err, errlen);
  if (r != 0)
    return r < 0 ? r : 0;
  for (size_t i = 0; i < u->host_len; i++)
    host[i] = (char)tolower((unsigned char)u->host[i]);
  host[u->host_len] = '\0';
  return 0;
}

/* RFC 3986 §5.2.4: the path with its "." and ".." segments removed, into out (size > len). */
static void remove_dot_segments(const char *in, size_t len, char *out) {
  size_t o = 0, i = 0;
  while (i < len) {
    const char *p = in + i;
    size_t left = len - i;
    if (left >= 3 && memcmp(p, "/./", 3) == 0)
      i += 2;
    else if (left == 2 && memcmp(p, "/.", 2) == 0) {
      out[o++] = '/';
      i += 2;
    } else if ((left >= 4 && memcmp(p, "/../", 4) == 0) || (left == 3 && memcmp(p, "/..", 3) == 0)) {
      while (o > 0 && out[--o] != '/')
        ;
      if (left == 3) {
        out[o++] = '/';
        i += 3;
      } else
        i += 3;
    } else {
      do
        out[o++] = in[i++];
      while (i < len && in[i] != '/');
    }
  }
  out[o] = '\0';
}

int uri_normalize(const char *s, char *buf, size_t size, char *err, size_t errlen) {
  struct uri u;
  const char *frag;
  char host[300], path[URI_MAX_LEN + 1];
  int r = split(s, &u, &frag, err, errlen);
  if (r < 0)
    return r;
  if (u.host_len >= sizeof(host) || u.path_len >= sizeof(path))
    return errmsg(err, errlen, MCPSIG_EURI, "%s", "URI is too long");
  if ((r = host_normal(&u, host, sizeof(host), err, errlen)) < 0)
    return r;
  if (u.path_len == 0)
    strcpy(path, "/");
  else
    remove_dot_segments(u.path, u.path_len, path);
  char port[8] = "";
  if (u.port != (strcmp(u.scheme, "https") == 0 ? 443u : 80u))
    snprintf(port, sizeof(port), ":%u", u.port);
  int n = snprintf(buf, size, "%s://%s%s%s%s%.*s", u.scheme, host, port, path, u.has_query ? "?" : "",
                   (int)u.query_len, u.has_query ? u.query : "");
  if (n < 0 || (size_t)n >= size)
    return errmsg(err, errlen, MCPSIG_EURI, "%s", "URI is too long");
  return 0;
}

/* Why s is not in the form a server rebuilds, given that form (norm); NULL when it is. */
static const char *target_problem(const char *s, const struct uri *u, const char *norm) {
  char canon[300];
  size_t len = strcspn(s, "#");
  if (strlen(norm) == len && memcmp(norm, s, len) == 0)
    return NULL;
  if (strncmp(s, u->scheme, strlen(u->scheme)) != 0)
    return "URI scheme must be lowercase, as servers rebuild it";
  if (host_canonical(u->host, u->host_len, canon, sizeof(canon), NULL, 0) == 1) {
    if (u->host[0] == '[')
      return "URI's IPv6 address must be in its RFC 5952 form, as servers rebuild it";
    if (strlen(canon) != u->host_len || memcmp(canon, u->host, u->host_len) != 0)
      return "URI's IPv4 address must be plain dotted decimal, as servers rebuild it";
  }
  for (size_t i = 0; i < u->host_len; i++)
    if (isupper((unsigned char)u->host[i]))
      return "URI host must be lowercase, as servers rebuild it";
  if (u->has_port && u->port == (strcmp(u->scheme, "https") == 0 ? 443u : 80u))
    return "URI must omit the default port, as servers rebuild it";
  if (u->has_port)
    return "URI port must not have leading zeros, as servers rebuild it";
  if (u->path_len == 0 || u->path[0] != '/')
    return "URI path is empty: add '/' after the host, as the request sends it";
  return "URI path must not contain \".\" or \"..\" segments: clients send it with them removed";
}

int uri_parse_target(const char *s, struct uri *ret, char *err, size_t errlen) {
  struct uri u;
  const char *frag;
  char norm[URI_MAX_LEN + 400];
  int r = split(s, &u, &frag, err, errlen);
  if (r < 0 || (r = uri_normalize(s, norm, sizeof(norm), err, errlen)) < 0)
    return r;
  const char *why = target_problem(s, &u, norm);
  if (why)
    return errmsg(err, errlen, MCPSIG_EURI, "%s; sign it as %.400s", why, norm);
  if (frag)
    return errmsg(err, errlen, MCPSIG_EURI, "%s", "URI must not contain a fragment: it is never sent");
  *ret = u;
  return 0;
}

int uri_origin(const char *url, char *buf, size_t size, char *err, size_t errlen) {
  struct uri u;
  const char *frag;
  char host[300];
  int r = split(url, &u, &frag, err, errlen);
  if (r < 0)
    return r;
  if (u.host_len >= sizeof(host))
    return errmsg(err, errlen, MCPSIG_EURI, "%s", "origin host is too long");
  /* One binding per server, however its address is written. */
  if ((r = host_normal(&u, host, sizeof(host), err, errlen)) < 0)
    return r;
  bool default_port = u.port == (strcmp(u.scheme, "https") == 0 ? 443u : 80u);
  int n = default_port ? snprintf(buf, size, "%s://%s", u.scheme, host)
                       : snprintf(buf, size, "%s://%s:%u", u.scheme, host, u.port);
  if (n < 0 || (size_t)n >= size)
    return errmsg(err, errlen, MCPSIG_EURI, "%s", "origin is too long");
  return 0;
}

int uri_htu(const char *url, char *buf, size_t size, char *err, size_t errlen) {
  struct uri u;
  const char *frag;
  char norm[URI_MAX_LEN + 400];
  int r = split(url, &u, &frag, err, errlen);
  if (r < 0 || (r = uri_normalize(url, norm, sizeof(norm), err, errlen)) < 0)
    return r;
  /* A server compares htu with the URL it rebuilt (RFC 9449 §4.3): the
   * same rules as for a signed target URI, the query aside. */
  const char *why = target_problem(url, &u, norm);
  if (why && u.has_query) {
    /* The query is dropped anyway: judge the rest. */
    size_t keep = (size_t)(u.query - 1 - url);
    if (strlen(norm) >= keep && strncmp(norm, url, keep) == 0 && norm[keep] == '?')
      why = NULL;
  }
  if (why) {
    norm[strcspn(norm, "?")] = '\0';
    return errmsg(err, errlen, MCPSIG_EURI, "%s; use %.400s", why, norm);
  }
  size_t n = (size_t)(u.path + u.path_len - url);
  if (n >= size)
    return errmsg(err, errlen, MCPSIG_EURI, "%s", "htu is too long");
  memcpy(buf, url, n);
  buf[n] = '\0';
  return 0;
}
