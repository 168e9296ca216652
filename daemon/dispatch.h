/*
 * dispatch.h: the socket-free request handler: (agent state, one decoded
 * message) -> reply. The server, the tests and the fuzzer all call it.
 */
#ifndef MCPSIG_DISPATCH_H
#define MCPSIG_DISPATCH_H

#include <stdbool.h>
#include <sys/types.h>
#include <msgpack.h>

#include "agent.h"

struct dispatch_peer {
  pid_t pid;
  uid_t uid;
  const char *exe;      /* the peer's executable, for logs; may be NULL (see peer.h) */
  const char *comm;     /* its process name, self-chosen (weaker); may be NULL */
  const char *cmdline;  /* its arguments, self-chosen (weaker); may be NULL */
  bool pidfd;           /* the names were read under a pidfd: not a reused pid */
  unsigned long id;     /* connection number */
  bool subscribed;      /* called subscribe: gets rotation notifications */
};

enum {
  DISPATCH_REPLIED = 0,   /* a reply was packed */
  DISPATCH_NO_REPLY = 1,  /* a notification: nothing to send */
};

/*
 * Handles one message. Returns DISPATCH_REPLIED or DISPATCH_NO_REPLY, or a
 * negative code when the connection must be closed (after sending what was
 * packed, an error reply with a nil msgid, when the envelope itself was not
 * a valid request).
 */
int dispatch_message(struct agent *a, struct dispatch_peer *peer, const msgpack_object *msg,
                     msgpack_packer *pk);

/* Frames, unpacks and dispatches every complete message in buf; for tests and the fuzzer. Returns bytes consumed or < 0 to close. */
ssize_t dispatch_bytes(struct agent *a, struct dispatch_peer *peer, const unsigned char *buf, size_t len,
                       msgpack_packer *pk);

/*
 * As dispatch_bytes(), but stops before a complete message once out (the
 * buffer pk writes into) holds out_max bytes or more; *ret_more is then true.
 * At most one reply beyond out_max is written.
 */
ssize_t dispatch_bytes_bounded(struct agent *a, struct dispatch_peer *peer, const unsigned char *buf, size_t len,
                               msgpack_packer *pk, const msgpack_sbuffer *out, size_t out_max, bool *ret_more);

/* The methods the dispatcher handles, for the test that checks proto_methods against them. */
size_t dispatch_method_count(void);
const char *dispatch_method_name(size_t i);

#endif
