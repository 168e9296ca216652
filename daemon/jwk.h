/*
 * jwk.h: public JWKs (RFC 7517), RFC 7638 thumbprints, the Signature-Agent
 * directory (a data: URI JWKS), and private JWK import.
 */
#ifndef MCPSIG_JWK_H
#define MCPSIG_JWK_H

#include <stddef.h>
#include <jansson.h>

#include "key.h"

/*
 * Routes jansson's allocations through a wrapper that wipes every block when
 * it is freed, so parsed private JWKs leave nothing in the heap. Call once at
 * start, before any other jansson use.
 */
void jwk_json_memory_install(void);
/* Frees text from json_dumps() through jansson's (wiping) allocator. */
void json_text_free(char *text);

/* The RFC 7638 thumbprint (base64url, 43 chars) of a JWK object of kty OKP, EC or RSA. */
int jwk_thumbprint(const json_t *jwk, char out[KEY_KEYID_LEN + 1]);
int jwk_thumbprint_key(const struct key *k, char out[KEY_KEYID_LEN + 1]);

/* The public JWK as a jansson object (public members only), or NULL. */
json_t *jwk_public_object(const struct key *k);
/* The public JWK as compact JSON with public members only, e.g.
 * {"kty":"OKP","crv":"Ed25519","x":"..."}. Free with free(). */
int jwk_public_json(const struct key *k, char **ret_json);

/*
 * The Signature-Agent field value: an RFC 8941 sf-string holding
 * data:application/http-message-signatures-directory+json;base64,<JWKS>, with
 * the JWKS {"keys":[<jwk>]} in standard base64 with padding (RFC 2397 and
 * RFC 4648 §4). Free with free().
 */
int jwk_signature_agent(const char *jwk_json, char **ret_value);
/* The same for a directory of n keys, in the order given. */
int jwk_signature_agent_set(const char *const *jwk_json, size_t n, char **ret_value);

/*
 * Parses a private JWK into its key type and private key, written to seed
 * (which the caller keeps in guarded memory and wipes):
 *  - kty "OKP", crv "Ed25519": d is the 32-byte seed;
 *  - kty "EC", crv "P-256" or "P-384": d is the 32- or 48-byte scalar, in
 *    [1, n-1].
 * Public members x (and y), when present, must belong to d. err gets a
 * one-line reason.
 */
int jwk_import_private(const void *json, size_t len, key_alg *ret_alg, unsigned char *seed,
                       size_t seed_size, size_t *ret_seed_len, char *err, size_t errlen);

#endif
