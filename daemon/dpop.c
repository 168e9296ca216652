/* dpop.c: RFC 9449 DPoP proof JWTs. */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <sodium.h>

#include "dpop.h"
#include "errmsg.h"
#include "jwk.h"
#include "mcpsig.h"
#include "proto.h"

#define B64URL sodium_base64_VARIANT_URLSAFE_NO_PADDING

/* RFC 9110 §5.6.2 tchar. */
static bool is_tchar(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c && strchr("!#$%&'*+-.^_`|~", c));
}

int dpop_check_htm(const char *htm, char *err, size_t errlen) {
  if (!*htm)
    return errmsg(err, errlen, MCPSIG_EPARAM, "%s", "htm is empty; give the request's method, e.g. POST");
  for (const unsigned char *p = (const unsigned char *)htm; *p; p++)
    if (!is_tchar(*p))
      return errmsg(err, errlen, MCPSIG_EPARAM, "htm \"%.32s\" is not an HTTP method token (RFC 9110 §9.1)", htm);
  return 0;
}

int dpop_check_nonce(const char *nonce, char *err, size_t errlen) {
  if (!*nonce)
    return errmsg(err, errlen, MCPSIG_EPARAM, "%s", "nonce is empty; a DPoP-Nonce has at least one character");
  for (const unsigned char *p = (const unsigned char *)nonce; *p; p++)
    if (*p < 0x21 || *p > 0x7e || *p == '"' || *p == '\\')
      return errmsg(err, errlen, MCPSIG_EPARAM,
                    "nonce has a character outside RFC 9449's NQCHAR set (byte 0x%02x at offset %zu): "
                    "a DPoP-Nonce is visible ASCII without '\"' and '\\'",
                    *p, (size_t)((const char *)p - nonce));
  return 0;
}

int dpop_check_token(const char *token, char *err, size_t errlen) {
  /* RFC 9110 §11.2 token68 = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=" */
  const unsigned char *p = (const unsigned char *)token;
  while ((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
         (*p && strchr("-._~+/", *p)))
    p++;
  if (p == (const unsigned char *)token)
    return errmsg(err, errlen, MCPSIG_EPARAM, "%s", "access_token is empty or starts with a character outside token68");
  while (*p == '=')
    p++;
  if (*p)
    return errmsg(err, errlen, MCPSIG_EPARAM,
                  "access_token has a character outside token68 (byte 0x%02x at offset %zu), so it cannot be sent "
                  "as \"Authorization: DPoP <token>\" (RFC 9449 §7.1)",
                  *p, (size_t)((const char *)p - token));
  return 0;
}

void dpop_ath(const char *token, char out[DPOP_ATH_LEN]) {
  unsigned char h[32];
  proto_sha256(token, strlen(token), h);
  sodium_bin2base64(out, DPOP_ATH_LEN, h, sizeof(h), B64URL);
}

/* Appends base64url(data) to the buffer at *pos. */
static void put_b64url(char *out, size_t *pos, const void *data, size_t len) {
  size_t n = sodium_base64_ENCODED_LEN(len, B64URL);
  sodium_bin2base64(out + *pos, n, data, len, B64URL);
  *pos += n - 1;
}

/* Compact JSON text of o, in jansson's (wiping) allocator; NULL on failure. */
static char *dump(json_t *o) {
  char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
  json_decref(o);
  return text;
}

int dpop_proof(struct keypool *pool, struct key *k, const struct dpop_claims *cl, char **ret_jws) {
  char *header = NULL, *payload = NULL, *jws = NULL;
  unsigned char sig[KEY_SIG_MAX];
  size_t siglen = 0;
  int r = -ENOMEM;

  /* jansson writes members in insertion order, escapes '"', '\' and
   * control characters, and leaves '/' alone, so "https://..." stays as is. */
  json_t *jwk = jwk_public_object(k);
  if (!jwk)
    return MCPSIG_EALG;
  header = dump(json_pack("{s:s, s:s, s:o}", "typ", "dpop+jwt", "alg", cl->alg, "jwk", jwk));
  json_t *claims = json_pack("{s:s, s:s, s:s, s:I}", "jti", cl->jti, "htm", cl->htm, "htu", cl->htu,
                             "iat", (json_int_t)cl->iat);
  if (claims && cl->access_token) {
    char ath[DPOP_ATH_LEN];
    dpop_ath(cl->access_token, ath);
    if (json_object_set_new(claims, "ath", json_string(ath)) != 0)
      goto out;
  }
  if (claims && cl->nonce && json_object_set_new(claims, "nonce", json_string(cl->nonce)) != 0)
    goto out;
  payload = dump(claims);
  claims = NULL;
  if (!header || !payload)
    goto out;

  size_t hlen = strlen(header), plen = strlen(payload);
  size_t size = sodium_base64_ENCODED_LEN(hlen, B64URL) + sodium_base64_ENCODED_LEN(plen, B64URL) +
                sodium_base64_ENCODED_LEN(KEY_SIG_MAX, B64URL) + 2;
  size_t pos = 0;
  if (!(jws = malloc(size)))
    goto out;
  /* RFC 7515 §5.1: the signing input is ASCII(BASE64URL(header) '.' BASE64URL(payload)). */
  put_b64url(jws, &pos, header, hlen);
  jws[pos++] = '.';
  put_b64url(jws, &pos, payload, plen);
  if ((r = key_sign(pool, k, jws, pos, sig, &siglen)) < 0)
    goto out;
  jws[pos++] = '.';
  put_b64url(jws, &pos, sig, siglen);
  *ret_jws = jws;
  jws = NULL;
  r = 0;
out:
  json_decref(claims);
  if (header)
    json_text_free(header);
  if (payload)
    json_text_free(payload);
  free(jws);
  sodium_memzero(sig, sizeof(sig));
  return r;
}
