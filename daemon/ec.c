/* ec.c: ECDSA P-256 and P-384 on OpenSSL libcrypto, fixed-width r||s. */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sodium.h>

#include "ec.h"
#include "mcpsig.h"

size_t ec_field_len(key_alg alg) {
  switch (alg) {
  case KEY_P256:
    return 32;
  case KEY_P384:
    return 48;
  default:
    return 0;
  }
}

#ifdef HAVE_OPENSSL
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>

#define EC_FIELD_MAX 48

struct curve {
  int nid;
  const char *group_name; /* OSSL_PKEY_PARAM_GROUP_NAME */
  const char *digest;     /* RFC 9421 §3.3.4-5: SHA-256 for P-256, SHA-384 for P-384 */
};

static const struct curve *curve_of(key_alg alg) {
  static const struct curve p256 = { NID_X9_62_prime256v1, "P-256", "SHA256" };
  static const struct curve p384 = { NID_secp384r1, "P-384", "SHA384" };
  switch (alg) {
  case KEY_P256:
    return &p256;
  case KEY_P384:
    return &p384;
  default:
    return NULL;
  }
}

int ec_public_from_scalar(key_alg alg, const unsigned char *d, unsigned char *pub) {
  const struct curve *cv = curve_of(alg);
  size_t n = ec_field_len(alg);
  EC_GROUP *group = NULL;
  EC_POINT *point = NULL;
  BN_CTX *ctx = NULL;
  BIGNUM *k = NULL, *x = NULL, *y = NULL;
  int r = -ENOMEM;

  if (!cv)
    return MCPSIG_EALG;
  if (!(group = EC_GROUP_new_by_curve_name(cv->nid)) || !(ctx = BN_CTX_secure_new()) ||
      !(k = BN_secure_new()) || !(x = BN_new()) || !(y = BN_new()) || !(point = EC_POINT_new(group)))
    goto out;
  if (!BN_bin2bn(d, (int)n, k))
    goto out;
  /* A private key is an integer in [1, n-1] (SEC 1 §3.2.1). */
  if (BN_is_zero(k) || BN_cmp(k, EC_GROUP_get0_order(group)) >= 0) {
    r = MCPSIG_EKEY;
    goto out;
  }
  BN_set_flags(k, BN_FLG_CONSTTIME);
  if (!EC_POINT_mul(group, point, k, NULL, NULL, ctx) ||
      !EC_POINT_get_affine_coordinates(group, point, x, y, ctx) ||
      BN_bn2binpad(x, pub, (int)n) != (int)n || BN_bn2binpad(y, pub + n, (int)n) != (int)n) {
    r = MCPSIG_EINTERNAL;
    goto out;
  }
  r = 0;
out:
  EC_POINT_free(point);
  BN_clear_free(k);
  BN_free(x);
  BN_free(y);
  BN_CTX_free(ctx);
  EC_GROUP_free(group);
  return r;
}

/* An EVP_PKEY for the key: public only when d is NULL. */
static EVP_PKEY *pkey_build(const struct curve *cv, size_t n, const unsigned char *d, const unsigned char *pub) {
  unsigned char point[1 + 2 * EC_FIELD_MAX];
  OSSL_PARAM_BLD *bld = NULL;
  OSSL_PARAM *params = NULL;
  EVP_PKEY_CTX *ctx = NULL;
  EVP_PKEY *pkey = NULL;
  BIGNUM *k = NULL;

  /* SEC 1 §2.3.3 uncompressed point: 0x04 || x || y. */
  point[0] = 0x04;
  memcpy(point + 1, pub, 2 * n);
  if (!(bld = OSSL_PARAM_BLD_new()) ||
      !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, cv->group_name, 0) ||
      !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, 1 + 2 * n))
    goto out;
  if (d) {
    /* A secure BIGNUM: the builder copies it into secure memory, and
     * both are cleared when freed. */
    if (!(k = BN_secure_new()) || !BN_bin2bn(d, (int)n, k) || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, k))
      goto out;
  }
  if (!(params = OSSL_PARAM_BLD_to_param(bld)) || !(ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) ||
      EVP_PKEY_fromdata_init(ctx) <= 0 ||
      EVP_PKEY_fromdata(ctx, &pkey, d ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY, params) <= 0)
    pkey = NULL;
out:
  EVP_PKEY_CTX_free(ctx);
  OSSL_PARAM_free(params);
  OSSL_PARAM_BLD_free(bld);
  BN_clear_free(k);
  return pkey;
}

int ec_sign(key_alg alg, const unsigned char *d, const unsigned char *pub, const void *msg, size_t len,
            unsigned char *sig) {
  const struct curve *cv = curve_of(alg);
  size_t n = ec_field_len(alg);
  unsigned char der[16 + 2 * (EC_FIELD_MAX + 1)];
  size_t der_len = sizeof(der);
  EVP_MD_CTX *md = NULL;
  EVP_PKEY *pkey = NULL;
  ECDSA_SIG *es = NULL;
  const BIGNUM *r_bn, *s_bn;
  EC_GROUP *group = NULL;
  BIGNUM *half = NULL, *low = NULL;
  int r = MCPSIG_EINTERNAL;

  if (!cv)
    return MCPSIG_EALG;
  if (!(pkey = pkey_build(cv, n, d, pub)) || !(md = EVP_MD_CTX_new()) ||
      EVP_DigestSignInit_ex(md, NULL, cv->digest, NULL, NULL, pkey, NULL) <= 0 ||
      EVP_DigestSign(md, der, &der_len, msg, len) <= 0)
    goto out;
  /* libcrypto returns the ASN.1 DER SEQUENCE { r, s }; the wire form is
   * r||s, each left-padded to the field length (trap 13). */
  const unsigned char *p = der;
  if (!(es = d2i_ECDSA_SIG(NULL, &p, (long)der_len)) || p != der + der_len)
    goto out;
  ECDSA_SIG_get0(es, &r_bn, &s_bn);
  /* Low-S: (r, s) and (r, n - s) are both valid, but strict verifiers
   * (noble's default, wallet-style ones) accept only s <= n/2, so that a
   * signature has one form. */
  if (!(group = EC_GROUP_new_by_curve_name(cv->nid)) || !(half = BN_dup(EC_GROUP_get0_order(group))) ||
      !BN_rshift1(half, half))
    goto out;
  if (BN_cmp(s_bn, half) > 0) {
    if (!(low = BN_dup(EC_GROUP_get0_order(group))) || !BN_sub(low, low, s_bn))
      goto out;
    s_bn = low;
  }
  if (BN_bn2binpad(r_bn, sig, (int)n) != (int)n || BN_bn2binpad(s_bn, sig + n, (int)n) != (int)n)
    goto out;
  r = 0;
out:
  BN_free(half);
  BN_free(low);
  EC_GROUP_free(group);
  ECDSA_SIG_free(es);
  EVP_MD_CTX_free(md);
  EVP_PKEY_free(pkey);
  sodium_memzero(der, sizeof(der));
  return r;
}

int ec_verify(key_alg alg, const unsigned char *pub, const void *msg, size_t len, const unsigned char *sig,
              size_t sig_len) {
  const struct curve *cv = curve_of(alg);
  size_t n = ec_field_len(alg);
  unsigned char *der = NULL;
  EVP_MD_CTX *md = NULL;
  EVP_PKEY *pkey = NULL;
  ECDSA_SIG *es = NULL;
  BIGNUM *r_bn = NULL, *s_bn = NULL;
  int ok = 0;

  /* Only the fixed-width form is accepted: a DER signature is 70-72 (P-256)
   * bytes and is refused here by its length alone. */
  if (!cv || sig_len != 2 * n)
    return 0;
  if (!(es = ECDSA_SIG_new()) || !(r_bn = BN_bin2bn(sig, (int)n, NULL)) || !(s_bn = BN_bin2bn(sig + n, (int)n, NULL)))
    goto out;
  if (!ECDSA_SIG_set0(es, r_bn, s_bn))
    goto out;
  r_bn = s_bn = NULL; /* owned by es */
  int der_len = i2d_ECDSA_SIG(es, &der);
  if (der_len <= 0 || !(pkey = pkey_build(cv, n, NULL, pub)) || !(md = EVP_MD_CTX_new()) ||
      EVP_DigestVerifyInit_ex(md, NULL, cv->digest, NULL, NULL, pkey, NULL) <= 0)
    goto out;
  ok = EVP_DigestVerify(md, der, (size_t)der_len, msg, len) == 1;
out:
  OPENSSL_free(der);
  BN_free(r_bn);
  BN_free(s_bn);
  ECDSA_SIG_free(es);
  EVP_MD_CTX_free(md);
  EVP_PKEY_free(pkey);
  return ok;
}
#endif /* HAVE_OPENSSL */
