/*
 * dispatch-call.h: drives the socket-free dispatcher the way a client would:
 * encode a request with the shared codec, run dispatch_bytes(), decode the
 * reply. Used by the unit tests that need a whole agent without a socket.
 */
#ifndef MCPSIG_DISPATCH_CALL_H
#define MCPSIG_DISPATCH_CALL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "dispatch.h"
#include "proto.h"

struct reply {
  int code;              /* 0, or the negative MCPSIG_E* of an error reply */
  char message[512];
  msgpack_zone zone;     /* holds the decoded result's strings */
};

static inline void reply_free(struct reply *r) {
  msgpack_zone_destroy(&r->zone);
}

/* Returns 0 and fills out, or the error code; r->message has the agent's message. */
static inline int dcall(struct agent *a, const char *method, const struct proto_schema *ps, const void *params,
                        const struct proto_schema *rs, void *out, struct reply *r) {
  static uint32_t msgid = 1;
  msgpack_sbuffer req, rep;
  msgpack_packer pk;
  char dummy = 0;

  memset(r, 0, sizeof(*r));
  msgpack_zone_init(&r->zone, 1024);
  msgpack_sbuffer_init(&req);
  msgpack_sbuffer_init(&rep);
  msgpack_packer_init(&pk, &req, msgpack_sbuffer_write);
  proto_request_encode(&pk, msgid++, method, ps ? ps : &proto_empty_schema, params ? params : &dummy);
  msgpack_packer_init(&pk, &rep, msgpack_sbuffer_write);
  ssize_t used = dispatch_bytes(a, NULL, (const unsigned char *)req.data, req.size, &pk);
  msgpack_unpacked up;
  size_t off = 0;
  msgpack_unpacked_init(&up);
  if (used < 0 || msgpack_unpack_next(&up, rep.data, rep.size, &off) != MSGPACK_UNPACK_SUCCESS) {
    r->code = used < 0 ? (int)used : MCPSIG_EPROTO;
    snprintf(r->message, sizeof(r->message), "no reply");
    goto out;
  }
  const msgpack_object *f = up.data.via.array.ptr;
  if (f[2].type != MSGPACK_OBJECT_NIL) {
    struct proto_error e;
    if (proto_decode(&proto_error_schema, &f[2], &r->zone, &e, 0, NULL, 0) == 0) {
      r->code = -(int)e.code;
      snprintf(r->message, sizeof(r->message), "%s", e.message);
    } else {
      r->code = MCPSIG_EPROTO;
    }
  } else if (rs) {
    /* The reply buffer is freed below: binary results are copied into the zone. */
    r->code = proto_decode(rs, &f[3], &r->zone, out, PROTO_DECODE_STRICT | PROTO_DECODE_COPY_BIN, r->message,
                           sizeof(r->message));
  }
out:
  msgpack_unpacked_destroy(&up);
  msgpack_sbuffer_destroy(&req);
  msgpack_sbuffer_destroy(&rep);
  return r->code;
}

/* A fresh agent on a new temporary keystore. */
static inline int test_agent_new(struct agent *a, char *dir, size_t dirlen) {
  char err[512];
  snprintf(dir, dirlen, "/tmp/mcpsig-unit.XXXXXX");
  if (!mkdtemp(dir))
    return -1;
  char ks[600];
  snprintf(ks, sizeof(ks), "%s/ks", dir);
  int r = agent_init(a, ks, err, sizeof(err));
  if (r < 0)
    fprintf(stderr, "# agent_init: %s\n", err);
  return r;
}

static inline void test_agent_free(struct agent *a, const char *dir) {
  char cmd[700];
  agent_done(a);
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
  if (system(cmd) != 0)
    fprintf(stderr, "# could not remove %s\n", dir);
}

#endif
