/* uri.h: target URIs (RFC 9110 §7.1) and origins (RFC 6454) for signing. */
#ifndef MCPSIG_URI_H
#define MCPSIG_URI_H

#include <stdbool.h>
#include <stddef.h>

/* The longest URI handled (the protocol's string limit). */
#define URI_MAX_LEN 8192

struct uri {
  char scheme[6];          /* "http" or "https" */
  const char *host;        /* points into the parsed string; not NUL-terminated */
  size_t host_len;
  const char *authority;   /* host[:port] as written */
  size_t authority_len;
  unsigned port;           /* effective port */
  bool has_port;
  const char *path;        /* "/..." */
  size_t path_len;
  const char *query;       /* after '?', when has_query */
  size_t query_len;
  bool has_query;
};

/*
 * Parses a target URI to be signed as "@target-uri". The URI is signed
 * exactly as given, so it must already be in the form a server rebuilds:
 * http or https, lowercase scheme and host, no default port, no userinfo, no
 * fragment, a path that starts with '/' and has no dot segments, an IP address
 * in its canonical form, and visible ASCII only. Anything else fails with a
 * reason in err that names the fix and the form to sign.
 */
int uri_parse_target(const char *s, struct uri *ret, char *err, size_t errlen);

/*
 * Normalizes any http(s) URL, or a bare origin, to its RFC 6454 ASCII
 * serialization: lowercase scheme and host, the default port omitted, path,
 * query and fragment dropped. This names a binding, not a signed value, so it
 * is lenient about case and default ports.
 */
int uri_origin(const char *url, char *buf, size_t size, char *err, size_t errlen);

/*
 * The DPoP "htu" of a request URL (RFC 9449 §4.2): the URL as given, with
 * its query and fragment removed. It must be an absolute http(s) URL with a
 * host, no userinfo, and visible ASCII only.
 */
int uri_htu(const char *url, char *buf, size_t size, char *err, size_t errlen);

/*
 * The form a server rebuilds from a request for url (RFC 3986 §6.2.2,
 * RFC 5952): lowercase scheme and host, the default port omitted, a port
 * without leading zeros, an IPv6 literal in its canonical form, an IPv4
 * address in dotted decimal, the path's dot segments removed (and "/" for an
 * empty one), the query kept and the fragment dropped.
 */
int uri_normalize(const char *url, char *buf, size_t size, char *err, size_t errlen);

#endif
