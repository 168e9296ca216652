/* errors.c: names for every error code of the protocol and the library. */
#include "config.h"

#include <string.h>

#include "proto.h"

const char *mcpsig_strerror(int err) {
  switch (err) {
#define MCPSIG_STRERROR_CASE(name, val, msg) \
  case MCPSIG_##name:                        \
    return msg;
    MCPSIG_ERRNO_MAP(MCPSIG_STRERROR_CASE)
#undef MCPSIG_STRERROR_CASE
  default:
    break;
  }
  if (err < 0 && err > -4096)
    return strerror(-err);
  return err == 0 ? "success" : "unknown error";
}
