/*
 * ec.h: ECDSA over P-256 and P-384 through OpenSSL libcrypto, in the fixed
 * r||s form of RFC 9421 §3.3.4-5 and RFC 7518 §3.4, never DER.
 *
 * Private scalars stay in the keypool. Each call builds a short-lived
 * libcrypto key from the scalar and frees it again (libcrypto clears private
 * BIGNUMs on free), so libcrypto never holds a key between calls.
 *
 * Public keys are the affine coordinates x||y, each left-padded to the
 * curve's byte length, as in a JWK's "x" and "y" (RFC 7518 §6.2.1.2-3).
 */
#ifndef MCPSIG_EC_H
#define MCPSIG_EC_H

#include <stdbool.h>
#include <stddef.h>

#include "key.h"

/* Bytes in one scalar or coordinate: 32 for P-256, 48 for P-384, 0 otherwise. */
size_t ec_field_len(key_alg alg);

#ifdef HAVE_OPENSSL
/*
 * Checks 1 <= d < n and writes the public key x||y (2 * ec_field_len bytes).
 * MCPSIG_EKEY when d is out of range.
 */
int ec_public_from_scalar(key_alg alg, const unsigned char *d, unsigned char *pub);
/*
 * ECDSA with SHA-256 (P-256) or SHA-384 (P-384) over msg. Writes r||s,
 * 2 * ec_field_len bytes. pub is the key's x||y.
 */
int ec_sign(key_alg alg, const unsigned char *d, const unsigned char *pub, const void *msg, size_t len,
            unsigned char *sig);
/* 1 when sig (r||s, exactly 2 * ec_field_len bytes) verifies under pub (x||y), else 0. */
int ec_verify(key_alg alg, const unsigned char *pub, const void *msg, size_t len, const unsigned char *sig,
              size_t sig_len);
#endif

#endif
