/*
 * digest.c: RFC 9530 Content-Digest, shared by the agent and the library so a
 * host can digest a large body itself and send only the value.
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sodium.h>
#ifdef HAVE_OPENSSL
#include <openssl/evp.h>
#endif

#include "proto.h"

void proto_sha256(const void *data, size_t len, unsigned char out[32]) {
#ifdef HAVE_OPENSSL
  unsigned int n = 32;
  /* libcrypto uses the CPU's SHA extensions: several times libsodium's speed
   * on large bodies. EVP_Digest only fails on allocation failure. */
  if (EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) == 1 && n == 32)
    return;
#endif
  crypto_hash_sha256(out, data, len);
}

int proto_content_digest(const void *body, size_t len, char *buf, size_t size) {
  static const char prefix[] = "sha-256=:";
  unsigned char h[32];
  size_t b64len = sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_ORIGINAL);

  if (size < sizeof(prefix) - 1 + b64len + 1)
    return -ENAMETOOLONG;
  proto_sha256(body ? body : "", body ? len : 0, h);
  memcpy(buf, prefix, sizeof(prefix) - 1);
  sodium_bin2base64(buf + sizeof(prefix) - 1, b64len, h, sizeof(h), sodium_base64_VARIANT_ORIGINAL);
  strcat(buf, ":");
  return 0;
}
