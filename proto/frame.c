/*
 * frame.c: finds message boundaries in the byte stream, enforcing the size
 * and depth limits before msgpack-c allocates anything for the message.
 */
#include "config.h"

#include <sys/types.h>

#include "proto.h"

#define FRAME_STACK_MAX 32

static uint64_t be_read(const unsigned char *p, unsigned n) {
  uint64_t v = 0;
  for (unsigned i = 0; i < n; i++)
    v = (v << 8) | p[i];
  return v;
}

/*
 * Classifies the object header at p: the header's own length, the payload
 * length that follows it, and the number of child objects (maps count keys
 * and values). Returns 0 when more bytes are needed to read the header.
 */
static int header_read(const unsigned char *p, size_t avail, size_t *ret_hdr, uint64_t *ret_payload,
                       uint64_t *ret_children) {
  unsigned char b = p[0];
  unsigned lenbytes = 0, fixed = 0, extra = 0;
  int kind = 0; /* 0 scalar, 1 raw (len), 2 array, 3 map */

  *ret_children = 0;
  *ret_payload = 0;
  if (b <= 0x7f || b >= 0xe0 || (b >= 0xc0 && b <= 0xc3 && b != 0xc1)) {
    *ret_hdr = 1;
    return 1;
  }
  if (b >= 0x80 && b <= 0x8f) {
    *ret_hdr = 1;
    *ret_children = 2u * (b & 0x0f);
    return 1;
  }
  if (b >= 0x90 && b <= 0x9f) {
    *ret_hdr = 1;
    *ret_children = b & 0x0f;
    return 1;
  }
  if (b >= 0xa0 && b <= 0xbf) {
    *ret_hdr = 1;
    *ret_payload = b & 0x1f;
    return 1;
  }
  switch (b) {
  case 0xc4: case 0xd9: lenbytes = 1; kind = 1; break;
  case 0xc5: case 0xda: lenbytes = 2; kind = 1; break;
  case 0xc6: case 0xdb: lenbytes = 4; kind = 1; break;
  case 0xc7: lenbytes = 1; extra = 1; kind = 1; break;
  case 0xc8: lenbytes = 2; extra = 1; kind = 1; break;
  case 0xc9: lenbytes = 4; extra = 1; kind = 1; break;
  case 0xca: fixed = 4; break;
  case 0xcb: fixed = 8; break;
  case 0xcc: case 0xd0: fixed = 1; break;
  case 0xcd: case 0xd1: fixed = 2; break;
  case 0xce: case 0xd2: fixed = 4; break;
  case 0xcf: case 0xd3: fixed = 8; break;
  case 0xd4: fixed = 2; break;
  case 0xd5: fixed = 3; break;
  case 0xd6: fixed = 5; break;
  case 0xd7: fixed = 9; break;
  case 0xd8: fixed = 17; break;
  case 0xdc: lenbytes = 2; kind = 2; break;
  case 0xdd: lenbytes = 4; kind = 2; break;
  case 0xde: lenbytes = 2; kind = 3; break;
  case 0xdf: lenbytes = 4; kind = 3; break;
  default:
    return MCPSIG_EPROTO; /* 0xc1 is reserved and never valid */
  }
  if (kind == 0) {
    *ret_hdr = 1;
    *ret_payload = fixed;
    return 1;
  }
  if (avail < 1 + lenbytes + extra)
    return 0;
  uint64_t n = be_read(p + 1, lenbytes);
  *ret_hdr = 1 + lenbytes + extra;
  if (kind == 1)
    *ret_payload = n;
  else
    *ret_children = kind == 3 ? 2 * n : n;
  return 1;
}

ssize_t proto_frame_scan(const unsigned char *buf, size_t len, size_t max_len, unsigned max_depth) {
  uint64_t remaining[FRAME_STACK_MAX];
  unsigned depth = 0;
  size_t pos = 0;

  if (max_depth >= FRAME_STACK_MAX)
    max_depth = FRAME_STACK_MAX - 1;
  remaining[0] = 1;
  for (;;) {
    size_t hdr;
    uint64_t payload, children;

    if (pos >= len)
      return len >= max_len ? MCPSIG_ETOOBIG : 0;
    int r = header_read(buf + pos, len - pos, &hdr, &payload, &children);
    if (r < 0)
      return r;
    if (r == 0)
      return len >= max_len ? MCPSIG_ETOOBIG : 0;
    /* Every child takes at least one byte, so a count or a length beyond
     * what the limit leaves can never complete within it. */
    if (payload > max_len || children > max_len || pos + hdr + payload + children > max_len)
      return MCPSIG_ETOOBIG;
    pos += hdr + (size_t)payload;
    remaining[depth]--;
    if (children > 0) {
      if (depth + 1 > max_depth)
        return MCPSIG_EDEPTH;
      remaining[++depth] = children;
      continue;
    }
    while (remaining[depth] == 0) {
      if (depth == 0)
        return pos <= len ? (ssize_t)pos : (len >= max_len ? MCPSIG_ETOOBIG : 0);
      depth--;
    }
    if (pos > len)
      return 0;
  }
}
