/*
 * proto.h: the wire protocol shared by mcpsig-agent and libmcpsig.
 *
 * msgpack-RPC over a Unix stream socket:
 *   request       [0, msgid, method, [params]]
 *   response      [1, msgid, error, result]
 *   notification  [2, method, [params]]
 * params is one map. Every message is described by a schema (proto_schema)
 * so the agent and the library encode and decode it with one codec. The
 * normative description is proto/PROTOCOL.md.
 */
#ifndef MCPSIG_PROTO_H
#define MCPSIG_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <msgpack.h>

#include "mcpsig.h"

/* ---- limits: every size a peer controls is checked before allocating ---- */

/* Largest body the agent digests itself; larger ones are digested by the host. */
#define MCPSIG_MAX_BODY_LEN (1024u * 1024u)
/* Largest message: a maximal body plus headers and envelope. */
#define MCPSIG_MAX_MSG_LEN (MCPSIG_MAX_BODY_LEN + 256u * 1024u)
/* Deepest nesting of arrays and maps in one message. */
#define MCPSIG_MAX_DEPTH 8
/* Longest string (URI, header value, JSON key text). */
#define MCPSIG_MAX_STR_LEN 8192u
/* Most header fields in one sign request, and most items in other arrays. */
#define MCPSIG_MAX_HEADERS 128u
#define MCPSIG_MAX_ARRAY 128u
/* Longest identity name. */
#define MCPSIG_MAX_IDENTITY_LEN 64u
/* Longest origin (scheme://host:port). */
#define MCPSIG_MAX_ORIGIN_LEN 300u
/* Most names in an algorithm list (sign.http, dpop.proof). */
#define MCPSIG_MAX_ALGORITHMS 32u
/* Longest access token given to dpop.proof for "ath". */
#define MCPSIG_MAX_TOKEN_LEN 16384u
/* Bytes of unsent replies on one connection after which the agent stops
 * reading from it, until the peer reads; a subscriber this far behind is
 * disconnected instead. */
#define MCPSIG_MAX_OUTPUT_QUEUED (4u * 1024u * 1024u)
/* Unsent output beyond which a subscriber's notifications are dropped (and counted). */
#define MCPSIG_MAX_NOTIFY_QUEUED (64u * 1024u)
/* A connection that holds part of a message this long without completing it
 * is answered EPROTO and closed (mcpsig-agent --partial-timeout). */
#define MCPSIG_PARTIAL_TIMEOUT_MS 30000u
/* Most connections the agent serves at once; more are refused with EBUSY. */
#define MCPSIG_MAX_CONNECTIONS 256u

enum {
  PROTO_REQUEST = 0,
  PROTO_RESPONSE = 1,
  PROTO_NOTIFICATION = 2,
};

/* ---- framing ----------------------------------------------------------- */

/*
 * Finds the length of the first complete msgpack object in buf without
 * allocating anything. msgpack-c's unpacker reserves storage for an array or
 * map as soon as it reads the declared element count, so a five-byte header
 * could make it allocate gigabytes; this scan checks the size and depth
 * limits, and that every declared count is backed by bytes actually received,
 * before msgpack-c sees the message.
 *
 * Returns the object's length (> 0) when complete, 0 when more bytes are
 * needed, MCPSIG_ETOOBIG when the object is or would be larger than max_len,
 * MCPSIG_EDEPTH when it nests deeper than max_depth, MCPSIG_EPROTO on a byte
 * that is not msgpack.
 */
ssize_t proto_frame_scan(const unsigned char *buf, size_t len, size_t max_len, unsigned max_depth);

/* ---- schema-driven codec ------------------------------------------------ */

typedef enum {
  PT_STR,      /* const char *, NUL-terminated; omitted (or nil) when NULL */
  PT_BIN,      /* const unsigned char * + size_t length at off_n; present when has */
  PT_BOOL,     /* bool */
  PT_INT,      /* int64_t */
  PT_STRV,     /* const char ** + size_t count at off_n */
  PT_PAIRS,    /* struct proto_pair * + count: [[name, value], ...] */
  PT_STRUCTV,  /* array of maps of schema sub: void * + count */
  PT_STRUCT,   /* one nested map of schema sub, stored inline at off; present when has */
  PT_SCALAR,   /* struct proto_scalar: a string or an integer (a JSON-RPC id); present when has */
} proto_type;

enum {
  PF_REQUIRED = 1u << 0, /* decoding fails without it */
  PF_NULLABLE = 1u << 1, /* encoded as nil when absent, and nil decodes as absent */
  PF_SECRET   = 1u << 2, /* key material: never copied into unwiped memory */
};

#define PROTO_NO_OFFSET ((size_t)-1)

struct proto_schema;

struct proto_field {
  const char *name;
  proto_type type;
  size_t off;            /* offset of the value in the struct */
  size_t off_n;          /* offset of the size_t length/count, or PROTO_NO_OFFSET */
  size_t off_has;        /* offset of a bool "present" flag, or PROTO_NO_OFFSET */
  unsigned flags;
  size_t max;            /* maximum string length or item count; 0 = default */
  const struct proto_schema *sub;
};

struct proto_schema {
  const char *name;
  const struct proto_field *fields;
  size_t n_fields;
  size_t size;           /* sizeof the C struct */
};

struct proto_pair {
  const char *name;
  const char *value;
};

struct proto_scalar {
  const char *str;       /* the string, or NULL for the integer */
  int64_t num;
};

enum {
  PROTO_DECODE_STRICT = 1u << 0, /* an unknown key is an error (the agent's side) */
  PROTO_DECODE_COPY_BIN = 1u << 1, /* binary values are copied into the zone (never for secrets) */
};

/*
 * Decodes the map obj into the struct out (zeroed first) following schema.
 * Strings are copied, NUL-terminated, into zone z; binary values point into
 * the message buffer, which must outlive out, unless PROTO_DECODE_COPY_BIN
 * copies them too. On failure writes a one-line
 * reason naming the field into err and returns MCPSIG_EPARAM.
 */
int proto_decode(const struct proto_schema *schema, const msgpack_object *obj, msgpack_zone *z,
                 void *out, unsigned flags, char *err, size_t errlen);

/* Encodes the struct in as a map following schema. */
int proto_encode(msgpack_packer *pk, const struct proto_schema *schema, const void *in);

/* Packs a NUL-terminated string, or nil for NULL. */
int proto_pack_str(msgpack_packer *pk, const char *s);

/* ---- envelopes ---------------------------------------------------------- */

int proto_request_encode(msgpack_packer *pk, uint32_t msgid, const char *method,
                         const struct proto_schema *schema, const void *params);
/* An error reply; msg may be NULL (then mcpsig_strerror(code) is sent). */
int proto_error_encode(msgpack_packer *pk, const msgpack_object *msgid, int code, const char *msg);
/* A success reply's header; the caller packs the result object next. */
int proto_response_begin(msgpack_packer *pk, const msgpack_object *msgid);

/* ---- messages ------------------------------------------------------------ */

#define PROTO_DEFAULT_IDENTITY "default"

/* hello: no params. */
struct proto_hello_result {
  int64_t protocol;
  const char *agent_version;
  const char **algorithms;
  size_t n_algorithms;
  int64_t pid;
};

/* agent.status: no params. */
struct proto_status_result {
  int64_t pid;
  int64_t uptime;              /* seconds since start */
  int64_t connections;
  int64_t connections_limit;
  int64_t identities;
  int64_t bindings;
  int64_t signatures;          /* since start: sign.http, sign.rotate (2 each), dpop.proof */
  bool memory_locked;          /* false: mlock failed (RLIMIT_MEMLOCK), keys may reach swap */
  int64_t output_queued_max;   /* the largest unsent output of any connection, bytes */
  int64_t output_queued_limit; /* reading pauses beyond this (per connection) */
  int64_t memory_lock_errno;   /* errno of the failed mlock(), 0 when locked */
  bool peer_exe_readable;      /* the agent could read this caller's executable path */
};

/* identity.public / identity.remove / identity.add params. */
struct proto_identity_params {
  const char *identity;
  const char *origin;
  const char *alg;
  bool all;
};

struct proto_public_result {
  const char *identity;
  const char *origin;
  const char *tag;
  const char *keyid;
  const char *alg;
  const char *jwk;
  const char *signature_agent;
  bool created;
};

struct proto_binding {
  const char *identity;
  const char *origin;
  const char *tag;
  const char *keyid;
  const char *alg;
  const char *state;
  const char *pending_keyid;
  const char **retired;
  size_t n_retired;
  int64_t retired_dropped;     /* retired keyids beyond the newest 100, counted only */
};

struct proto_identity_entry {
  const char *name;
  const char *alg;
};

/*
 * identity.list params: both optional. The listing is one sequence ordered
 * by (identity, origin), in which an identity's own entry comes first with
 * an empty origin; a page holds the next entries after the cursor "after"
 * (the previous page's "next"), at most "limit" of them, and ends early
 * rather than grow past MCPSIG_LIST_PAGE_BYTES, so that every reply fits
 * one message however many bindings there are.
 */
#define MCPSIG_LIST_PAGE_MAX 1000u
#define MCPSIG_LIST_PAGE_BYTES (1024u * 1024u)
/* Longest cursor: an identity name, a space and an origin (a little spare). */
#define MCPSIG_LIST_CURSOR_MAX 512u
struct proto_list_params {
  const char *after;   /* an opaque cursor, the "next" of the page before */
  int64_t limit;       /* 1..MCPSIG_LIST_PAGE_MAX entries; MCPSIG_LIST_PAGE_MAX when absent */
  bool has_limit;
};

struct proto_list_result {
  struct proto_identity_entry *identities;
  size_t n_identities;
  struct proto_binding *bindings;
  size_t n_bindings;
  const char *next;    /* the cursor of the next page; nil on the last */
};

struct proto_import_params {
  const char *identity;
  const char *origin;
  const unsigned char *jwk;     /* JSON text, as bin so it is never NUL-copied */
  size_t jwk_len;
  bool has_jwk;
  const unsigned char *seed;
  size_t seed_len;
  bool has_seed;
};

struct proto_sign_params {
  const char *identity;
  const char *origin;
  const char *method;
  const char *uri;
  struct proto_pair *headers;
  size_t n_headers;
  const unsigned char *body;
  size_t body_len;
  bool has_body;
  const char *content_digest;
  const char *accept_signature;
  const char *label;
  const char **components;
  size_t n_components;
  const char *key;
  const char **algorithms;   /* RFC 9421 names the server accepts; chooses a new binding's key type */
  size_t n_algorithms;
};

/* dpop.proof params and result (RFC 9449). */
struct proto_dpop_params {
  const char *identity;
  const char *origin;        /* the key scope: normally the MCP server's origin */
  const char *htm;
  const char *htu;
  const char *access_token;  /* adds "ath" */
  const char *nonce;         /* the server's latest DPoP-Nonce */
  const char **algorithms;   /* JWS names, e.g. dpop_signing_alg_values_supported */
  size_t n_algorithms;
};

struct proto_dpop_result {
  const char *proof;         /* the compact JWS, the DPoP header's value */
  const char *jkt;           /* RFC 7638 thumbprint of the proof's jwk */
  const char *alg;           /* the JWS alg used */
  bool created;              /* this proof created the binding */
};

struct proto_sign_headers {
  const char *content_digest;
  const char *signature_input;
  const char *signature;
  const char *signature_agent;
};

struct proto_sign_result {
  struct proto_sign_headers headers;
  bool has_headers;
  const char *keyid;
  const char *tag;
  const char *label;
  const char *alg;
  int64_t created;
};

struct proto_error {
  int64_t code;
  const char *message;
};

/* rotate.begin / rotate.commit / rotate.abort / rotate.status params; the result is a proto_binding. */
struct proto_rotate_params {
  const char *identity;
  const char *origin;
};

/* sign.rotate params. */
struct proto_rotate_sign_params {
  const char *identity;
  const char *origin;
  const char *uri;
  struct proto_pair *headers;
  size_t n_headers;
  struct proto_scalar id;
  bool has_id;
};

struct proto_rotate_sign_result {
  const unsigned char *body;
  size_t body_len;
  bool has_body;
  struct proto_sign_headers headers;
  bool has_headers;
  const char *tag;
  const char *keyid;
  const char *new_keyid;
  const char *new_jwk;
  int64_t created;
};

/* The "rotation" notification: [2, "rotation", [event]]. */
#define PROTO_ROTATION_NOTIFICATION "rotation"
/* Sent to a subscriber that did not read, once it has: how many notifications it missed. */
#define PROTO_EVENTS_LOST_NOTIFICATION "events.lost"
struct proto_events_lost {
  int64_t count;
};
extern const struct proto_schema proto_events_lost_schema;
struct proto_rotation_event {
  const char *event;
  const char *identity;
  const char *origin;
  const char *tag;
  const char *old_keyid;
  const char *new_keyid;
};

extern const struct proto_schema proto_empty_schema;
extern const struct proto_schema proto_hello_result_schema;
extern const struct proto_schema proto_identity_params_schema;
extern const struct proto_schema proto_public_result_schema;
extern const struct proto_schema proto_binding_schema;
extern const struct proto_schema proto_list_params_schema;
extern const struct proto_schema proto_list_result_schema;
extern const struct proto_schema proto_import_params_schema;
extern const struct proto_schema proto_sign_params_schema;
extern const struct proto_schema proto_sign_result_schema;
extern const struct proto_schema proto_error_schema;
extern const struct proto_schema proto_dpop_params_schema;
extern const struct proto_schema proto_status_result_schema;
extern const struct proto_schema proto_dpop_result_schema;
extern const struct proto_schema proto_rotate_params_schema;
extern const struct proto_schema proto_rotate_sign_params_schema;
extern const struct proto_schema proto_rotate_sign_result_schema;
extern const struct proto_schema proto_rotation_event_schema;

/* Every method of the protocol and the schema of its params (§7 of PROTOCOL.md). */
struct proto_method {
  const char *name;
  const struct proto_schema *params;
};
extern const struct proto_method proto_methods[];
extern const size_t proto_n_methods;

/* A notification [2, method, [params]]. */
int proto_notification_encode(msgpack_packer *pk, const char *method, const struct proto_schema *schema,
                              const void *params);

/* ---- shared helpers ------------------------------------------------------ */

/*
 * The RFC 9530 Content-Digest value "sha-256=:<base64>:" of body, computed
 * with OpenSSL libcrypto when available (it uses the CPU's SHA extensions),
 * else libsodium.
 */
int proto_content_digest(const void *body, size_t len, char *buf, size_t size);
void proto_sha256(const void *data, size_t len, unsigned char out[32]);

/*
 * The default socket path rule (see mcpsig_socket_path). run_user_root is
 * "/run/user" except in tests.
 */
int proto_socket_path_default(char *buf, size_t size, const char *xdg_runtime_dir,
                              const char *tmpdir, uid_t uid, const char *run_user_root);

/*
 * The last fallback of that rule alone, ${TMPDIR:-/tmp}/mcpsig-UID/agent.sock:
 * the one path any other user can take first (mcpsig-agent publishes a
 * private directory instead when it finds it taken).
 */
int proto_socket_path_fallback(char *buf, size_t size, const char *tmpdir, uid_t uid);

/* The directory that holds the socket path ("." for a bare name). */
int proto_socket_dir(const char *path, char *buf, size_t size);

/*
 * Whether dir, the directory that holds an agent's socket, is one that only
 * uid (or root) can change: a directory, not a symbolic link, owned by uid
 * or by root, and writable by neither group nor others. Whoever can write
 * it can put their own listener in place of the agent. One lstat().
 *
 * Returns 0 when it is; MCPSIG_EPEER when it is not; -ENOTDIR when it is a
 * file (connecting fails on its own); -errno when lstat fails (-ENOENT: no
 * agent made it yet). *st receives what lstat saw, for the caller's message.
 */
int proto_socket_dir_check(const char *dir, uid_t uid, struct stat *st);

#endif /* MCPSIG_PROTO_H */
