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

int uri_parse_target(const char *s, struct uri *ret, char *err, size_t errlen) {
  struct uri u;
  const char *frag;
  int r = split(s, &u, &frag, err, errlen);
  if (r < 0)
    return r;
  if (strncmp(s, u.scheme, strlen(u.scheme)) != 0)
    return errmsg(err, errlen, MCPSIG_EURI, "%s", "URI scheme must be lowercase, as servers rebuild it");
  for (size_t i = 0; i < u.host_len; i++)
    if (isupper((unsigned char)u.host[i]))
      return errmsg(err, errlen, MCPSIG_EURI, "%s", "URI host must be lowercase, as servers rebuild it");
  if (u.has_port && u.port == (strcmp(u.scheme, "https") == 0 ? 443u : 80u))
    return errmsg(err, errlen, MCPSIG_EURI, "%s", "URI must omit the default port, as servers rebuild it");
  if (u.has_port && u.authority[u.authority_len - 1] != ']') {
    const char *colon = memchr(u.host + u.host_len, ':', u.authority_len - u.host_len);
    if (colon && colon[1] == '0')
      return errmsg(err, errlen, MCPSIG_EURI, "%s", "URI port must not have leading zeros, as servers rebuild it");
  }
  if (u.path_len == 0 || u.path[0] != '/')
    return errmsg(err, errlen, MCPSIG_EURI, "%s", "URI path is empty: add '/' after the host, as the request sends it");
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
  for (size_t i = 0; i < u.host_len; i++)
    host[i] = (char)tolower((unsigned char)u.host[i]);
  host[u.host_len] = '\0';
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
  int r = split(url, &u, &frag, err, errlen);
  if (r < 0)
    return r;
  size_t n = (size_t)(u.path + u.path_len - url);
  if (n >= size)
    return errmsg(err, errlen, MCPSIG_EURI, "%s", "htu is too long");
  memcpy(buf, url, n);
  buf[n] = '\0';
  return 0;
}
