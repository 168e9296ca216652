/*
 * dpop.h: RFC 9449 DPoP proofs: a compact JWS whose header carries the
 * public JWK and whose claims bind it to one HTTP request.
 */
#ifndef MCPSIG_DPOP_H
#define MCPSIG_DPOP_H

#include <stddef.h>
#include <stdint.h>

#include "key.h"
#include "keypool.h"

#define DPOP_JTI_BYTES 16 /* 128 random bits; RFC 9449 §11.1 asks for at least 96 */

struct dpop_claims {
  const char *alg;          /* the JWS "alg": EdDSA, Ed25519, ES256 or ES384 */
  const char *jti;          /* base64url of DPOP_JTI_BYTES random bytes */
  const char *htm;
  const char *htu;          /* already without query and fragment (uri_htu) */
  int64_t iat;
  const char *access_token; /* NULL, or the token whose hash goes in "ath" */
  const char *nonce;        /* NULL, or the server's DPoP-Nonce */
};

/* RFC 9449 §4.2: ath = base64url(SHA-256(ASCII(access token))), 43 characters. */
#define DPOP_ATH_LEN 44
void dpop_ath(const char *token, char out[DPOP_ATH_LEN]);

/* An HTTP method is an RFC 9110 §9.1 token. */
int dpop_check_htm(const char *htm, char *err, size_t errlen);
/* RFC 9449 §8.1: nonce = 1*NQCHAR, NQCHAR = %x21 / %x23-5B / %x5D-7E. */
int dpop_check_nonce(const char *nonce, char *err, size_t errlen);
/* RFC 9449 §7.1: the token goes in "Authorization: DPoP <token68>". */
int dpop_check_token(const char *token, char *err, size_t errlen);

/*
 * Builds and signs the proof:
 *   header  {"typ":"dpop+jwt","alg":...,"jwk":{public members}}
 *   payload {"jti":...,"htm":...,"htu":...,"iat":...[,"ath":...][,"nonce":...]}
 * serialized by jansson, compact, members in this order. *ret_jws is the
 * compact serialization; free it with free().
 */
int dpop_proof(struct keypool *pool, struct key *k, const struct dpop_claims *cl, char **ret_jws);

#endif
