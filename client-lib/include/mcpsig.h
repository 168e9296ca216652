/*
 * mcpsig.h: the client library of the mcpsig signing agent.
 *
 * A host (an MCP client) links libmcpsig to ask mcpsig-agent for RFC 9421
 * signatures of its outgoing HTTP requests. The private keys stay in the
 * agent; this library only carries requests and replies over the agent's
 * Unix socket.
 *
 * Conventions:
 *  - Every fallible function returns 0 (or a count) on success and a negative
 *    code on failure: -errno for system errors, MCPSIG_E* for our own.
 *    mcpsig_strerror() names any of them.
 *  - Output parameters are named ret_* and are set only on success.
 *  - Result objects are owned by the caller and released with their *_free()
 *    function, which accepts NULL and returns NULL.
 *  - A client handle is not thread-safe: use one handle per thread, or lock
 *    around it. Different handles are independent.
 *  - Every call that talks to the agent is bounded by the handle's timeout, so
 *    a wedged agent yields MCPSIG_ETIMEDOUT, never a hang.
 */
#ifndef MCPSIG_H
#define MCPSIG_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && defined(MCPSIG_BUILDING)
#define MCPSIG_EXTERN __attribute__((visibility("default")))
#else
#define MCPSIG_EXTERN
#endif

/* The wire protocol version this header speaks (see proto/PROTOCOL.md). */
#define MCPSIG_PROTOCOL_VERSION 1

/* Default per-call timeout of a client handle, in milliseconds. */
#define MCPSIG_DEFAULT_TIMEOUT_MS 10000

/*
 * Error codes. The agent sends the positive value (the negation of the
 * constant) as the "code" of an error reply, so the numbers are part of the
 * protocol and never change meaning.
 */
#define MCPSIG_ERRNO_MAP(XX)                                                        \
  XX(EPROTO,     -1001, "malformed message")                                      \
  XX(ETOOBIG,    -1002, "message too large")                                      \
  XX(EDEPTH,     -1003, "message nested too deeply")                              \
  XX(EMETHOD,    -1004, "unknown method")                                         \
  XX(EPARAM,     -1005, "invalid parameter")                                      \
  XX(ENOIDENT,   -1006, "unknown identity")                                       \
  XX(ENOBINDING, -1007, "no such binding")                                        \
  XX(EEXIST,     -1008, "already exists")                                         \
  XX(EURI,       -1009, "invalid target URI")                                     \
  XX(EHEADER,    -1010, "missing or invalid covered header")                      \
  XX(ECOMPONENT, -1011, "unsupported or invalid covered component")               \
  XX(EACCEPT,    -1012, "unusable Accept-Signature")                              \
  XX(EKEY,       -1013, "invalid key")                                            \
  XX(ESTORE,     -1014, "keystore error")                                         \
  XX(EINTERNAL,  -1015, "internal agent error")                                   \
  XX(EVERSION,   -1016, "unsupported protocol version")                           \
  XX(ECONNECT,   -1017, "cannot connect to the agent")                            \
  XX(ETIMEDOUT,  -1018, "the agent did not answer in time")                       \
  XX(ECLOSED,    -1019, "the agent closed the connection")                        \
  XX(EALG,       -1020, "unsupported algorithm")                                  \
  XX(EBUSY,      -1021, "the agent is serving too many connections")              \
  XX(EAGENT,     -1022, "the agent replied with an unknown error")              \
  XX(EROTATING,  -1023, "a key rotation is already pending")                     \
  XX(ENOROTATION,-1024, "no key rotation is pending")                           \
  XX(EPEER,      -1025, "the socket is not the agent of this user")

typedef enum {
#define MCPSIG_ERRNO_ENUM(name, val, msg) MCPSIG_##name = (val),
  MCPSIG_ERRNO_MAP(MCPSIG_ERRNO_ENUM)
#undef MCPSIG_ERRNO_ENUM
  MCPSIG_ERRNO_MIN_ = -1099
} mcpsig_errno_t;

/* A static string naming any code returned by this library (never NULL). */
MCPSIG_EXTERN const char *mcpsig_strerror(int err);

/* ---- socket discovery ------------------------------------------------- */

/*
 * The agent's socket path: MCPSIG_AUTH_SOCK if set and non-empty, else the
 * default path: $XDG_RUNTIME_DIR/mcpsig/agent.sock; without XDG_RUNTIME_DIR,
 * /run/user/$UID/mcpsig/agent.sock when /run/user/$UID exists and is ours;
 * else ${TMPDIR:-/tmp}/mcpsig-$UID/agent.sock.
 * Writes a NUL-terminated path into buf. Returns -ENAMETOOLONG if it does not
 * fit.
 */
MCPSIG_EXTERN int mcpsig_socket_path(char *buf, size_t size);

/* The default path only, ignoring MCPSIG_AUTH_SOCK. */
MCPSIG_EXTERN int mcpsig_socket_path_default(char *buf, size_t size);

/* ---- connection ------------------------------------------------------- */

typedef struct mcpsig_client mcpsig_client;

/*
 * Connects to the agent at path, or, if path is NULL, at mcpsig_socket_path().
 * timeout_ms bounds the connect and every later call (0 selects
 * MCPSIG_DEFAULT_TIMEOUT_MS). Returns MCPSIG_ECONNECT when no agent listens.
 *
 * Before it sends a byte it verifies that the socket is this user's agent,
 * on every connect and whatever the path came from (argument,
 * MCPSIG_AUTH_SOCK or the default rule): the socket's directory must be
 * owned by the effective uid or by root and writable by neither group nor
 * others (one lstat, before connecting), and the process listening on it
 * must run as the effective uid or as root (SO_PEERCRED, after connecting).
 * Either failure is MCPSIG_EPEER: another user may have taken the path,
 * as anyone can take ${TMPDIR:-/tmp}/mcpsig-UID first, and would receive
 * private keys, tokens and request bodies.
 */
MCPSIG_EXTERN int mcpsig_connect(mcpsig_client **ret_client, const char *path, int timeout_ms);

/*
 * As mcpsig_connect(), and on failure writes one line for humans into why
 * (why_size bytes; none when 0): for MCPSIG_EPEER it names the path, the uid
 * that owns the directory or runs the listener, and the fix. why is "" on
 * success.
 */
MCPSIG_EXTERN int mcpsig_connect_explain(mcpsig_client **ret_client, const char *path, int timeout_ms, char *why,
                                         size_t why_size);

/* Closes the connection and frees the handle. Accepts NULL; returns NULL. */
MCPSIG_EXTERN mcpsig_client *mcpsig_close(mcpsig_client *client);

/*
 * The message of the last error the agent reported on this handle, or of the
 * last local failure, or "" if none. Valid until the next call on the handle.
 */
MCPSIG_EXTERN const char *mcpsig_last_error(const mcpsig_client *client);

/* ---- hello ------------------------------------------------------------- */

typedef struct {
  uint32_t protocol;            /* the agent's protocol version */
  const char *agent_version;    /* e.g. "0.1.0" */
  const char *const *algorithms; /* RFC 9421 algorithm names, NULL-terminated */
  size_t n_algorithms;
  int64_t pid;                  /* the agent's process id */
  void *internal_;
} mcpsig_hello_info;

MCPSIG_EXTERN int mcpsig_hello(mcpsig_client *client, mcpsig_hello_info **ret_info);
MCPSIG_EXTERN mcpsig_hello_info *mcpsig_hello_info_free(mcpsig_hello_info *info);

/* ---- identities and bindings ------------------------------------------- */

typedef struct {
  const char *identity;
  const char *origin;           /* RFC 6454 serialization, e.g. "https://mcp.example.com" */
  const char *tag;              /* stable across key rotations */
  const char *keyid;            /* RFC 7638 thumbprint of the active key */
  const char *alg;              /* RFC 9421 algorithm name, e.g. "ed25519" */
  const char *state;            /* "active" or "pending" */
  const char *pending_keyid;    /* NULL unless state is "pending" */
  const char *const *retired;   /* retired keyids, oldest first: the newest 100 at most */
  size_t n_retired;
  uint64_t retired_dropped;     /* older retired keyids, no longer listed, counted */
} mcpsig_binding;

typedef struct {
  const char *name;
  const char *alg;              /* the identity's default key type: "ed25519" */
} mcpsig_identity;

typedef struct {
  const mcpsig_identity *identities;
  size_t n_identities;
  const mcpsig_binding *bindings;  /* sorted by identity, then origin */
  size_t n_bindings;
  void *internal_;
} mcpsig_list_result;

/*
 * Every identity and every binding (identity.list). The agent answers in
 * pages (at most 1,000 entries, each page within one message); this call
 * asks for page after page on the handle and returns them joined, so the
 * result holds everything however many bindings there are. A binding added
 * or removed while the pages are read may be missing or present; none is
 * listed twice. The result owns its strings: free it with
 * mcpsig_list_result_free(). MCPSIG_EPROTO if the agent's pages are out of
 * order or do not move forward.
 */
MCPSIG_EXTERN int mcpsig_list(mcpsig_client *client, mcpsig_list_result **ret_list);
MCPSIG_EXTERN mcpsig_list_result *mcpsig_list_result_free(mcpsig_list_result *list);

typedef struct {
  const char *identity;
  const char *origin;
  const char *tag;
  const char *keyid;
  const char *alg;
  const char *jwk;              /* the public JWK as compact JSON (for the extension's cnf.jwk) */
  const char *signature_agent;  /* the Signature-Agent field value */
  int created;                  /* 1 if this call created the binding */
  void *internal_;
} mcpsig_public_info;

/*
 * The public key of (identity, origin). identity NULL means "default"; origin
 * is any http(s) URL whose origin names the binding. Creates the binding, and
 * durably stores its first key, on first contact.
 */
MCPSIG_EXTERN int mcpsig_public(mcpsig_client *client, const char *identity, const char *origin,
                                mcpsig_public_info **ret_info);
MCPSIG_EXTERN mcpsig_public_info *mcpsig_public_info_free(mcpsig_public_info *info);

/* The SEP-2752 extension's name in capabilities.extensions. */
#define MCPSIG_EXTENSION_NAME "io.modelcontextprotocol/http-message-signatures"

/*
 * The client's capability entry for the extension, as compact JSON, for a
 * host to merge into capabilities.extensions (in initialize, or in _meta's
 * clientCapabilities in the 2026-07-28 revision):
 *
 *   {"io.modelcontextprotocol/http-message-signatures":{"algorithms":["ed25519"],
 *    "keyResolution":["signature-agent","cnf"],"contentDigest":["rfc9530"],
 *    "cnf":{"jwk":{...}}}}
 *
 * for the binding of (identity, origin), which is created on first contact
 * as by mcpsig_public(). The cnf JWK moved here from clientInfo.cnf.jwk in
 * the extension's text of June 2026. *ret_json is the caller's: free() it.
 */
MCPSIG_EXTERN int mcpsig_extension_entry(mcpsig_client *client, const char *identity, const char *origin,
                                         char **ret_json);

/*
 * Adds a named identity whose new bindings get keys of type alg: "ed25519"
 * (the default, for NULL), "p256" or "p384" (these need an agent built with
 * OpenSSL libcrypto). MCPSIG_EEXIST if it exists, MCPSIG_EALG for another type.
 */
MCPSIG_EXTERN int mcpsig_identity_add(mcpsig_client *client, const char *name, const char *alg);

/*
 * Removes one binding (origin non-NULL) or the whole identity (origin NULL),
 * wiping the key files. Removing "default" removes its bindings; the identity
 * itself always exists.
 */
MCPSIG_EXTERN int mcpsig_remove(mcpsig_client *client, const char *identity, const char *origin);

/*
 * Imports an existing private key for (identity, origin): either a JWK (JSON
 * text with "d") or a raw 32-byte Ed25519 seed; pass exactly one. The binding
 * must not exist; its tag becomes the key's thumbprint. The library wipes its
 * own copies of the key material; the caller wipes its buffers.
 */
MCPSIG_EXTERN int mcpsig_import(mcpsig_client *client, const char *identity, const char *origin,
                                const char *jwk_json, const unsigned char *seed, size_t seed_len,
                                mcpsig_public_info **ret_info);

/* ---- signing ----------------------------------------------------------- */

typedef struct {
  const char *name;
  const char *value;
} mcpsig_header;

typedef struct {
  const char *identity;         /* NULL: "default" */
  const char *origin;           /* NULL: the origin of uri */
  const char *method;           /* as sent, e.g. "POST" */
  const char *uri;              /* the absolute target URI, exactly as sent */
  const mcpsig_header *headers; /* the request's headers, in order */
  size_t n_headers;
  const void *body;             /* the exact body bytes, or NULL */
  size_t body_len;
  const char *content_digest;   /* instead of body: a Content-Digest value from
                                   mcpsig_content_digest(), for large bodies */
  const char *accept_signature; /* the server's Accept-Signature, or NULL */
  const char *label;            /* NULL: "sig1" */
  const char *const *components;/* extra covered components, or NULL */
  size_t n_components;
  const char *key;              /* NULL or "active"; "pending" signs with the
                                   new key of a rotation in flight, to probe
                                   whether the server already accepted it */
  const char *const *algorithms;/* NULL, or the RFC 9421 algorithm names the
                                   server accepts: a new binding gets the
                                   identity's key type if listed, else the
                                   first listed type; an existing binding
                                   whose type is not listed is MCPSIG_EALG */
  size_t n_algorithms;
} mcpsig_sign_request;

typedef struct {
  const char *content_digest;
  const char *signature_input;
  const char *signature;
  const char *signature_agent;
  const char *keyid;
  const char *tag;
  const char *label;
  const char *alg;
  int64_t created;
  void *internal_;
} mcpsig_signature;

/*
 * Asks the agent to sign one HTTP request per SEP-2752. On success the four
 * header values in *ret_sig are to be added to the request unchanged.
 */
MCPSIG_EXTERN int mcpsig_sign_http(mcpsig_client *client, const mcpsig_sign_request *req,
                                   mcpsig_signature **ret_sig);
MCPSIG_EXTERN mcpsig_signature *mcpsig_signature_free(mcpsig_signature *sig);

/* ---- the agent's state ----------------------------------------------- */

typedef struct {
  int64_t pid;
  int64_t uptime;               /* seconds since the agent started */
  int64_t connections;          /* open connections, this one included */
  int64_t connections_limit;
  int64_t identities;
  int64_t bindings;
  int64_t signatures;           /* made since start */
  int memory_locked;            /* 0: mlock failed (RLIMIT_MEMLOCK too low), keys may reach swap */
  int64_t output_queued_max;    /* the largest unsent output of any connection, bytes */
  int64_t output_queued_limit;  /* a connection's reading pauses beyond this */
  int memory_lock_errno;        /* why mlock failed: ENOMEM (RLIMIT_MEMLOCK too low), EPERM (a
                                   seccomp filter or a container forbids it); 0 when locked */
  int peer_exe_readable;        /* 1: the agent logs callers' executable paths; 0: only their pid,
                                   name and command line (as inside the systemd unit's user
                                   namespace, where /proc/PID/exe is unreadable) */
} mcpsig_status_info;

/* Fills *ret_status with the agent's counters (agent.status). */
MCPSIG_EXTERN int mcpsig_agent_status(mcpsig_client *client, mcpsig_status_info *ret_status);

/* ---- DPoP proofs (RFC 9449, SEP-1932) ---------------------------------- */

typedef struct {
  const char *identity;          /* NULL: "default" */
  const char *origin;            /* required: the key scope, normally the MCP
                                    server's origin; use the same one for the
                                    token endpoint's proofs, so the token is
                                    bound to the key the MCP requests use */
  const char *htm;               /* the request's method, e.g. "POST" */
  const char *htu;               /* the request's absolute http(s) URL; the
                                    query and fragment are left out of "htu" */
  const char *access_token;      /* NULL at the token endpoint; the access
                                    token at the resource server (adds "ath") */
  const char *nonce;             /* NULL, or the server's latest DPoP-Nonce */
  const char *const *algorithms; /* NULL, or the JWS names the server accepts
                                    (dpop_signing_alg_values_supported, or
                                    WWW-Authenticate's algs) */
  size_t n_algorithms;
} mcpsig_dpop_request;

typedef struct {
  const char *proof;             /* the compact JWS: the DPoP header's value */
  const char *jkt;               /* the key's RFC 7638 thumbprint (cnf.jkt) */
  const char *alg;               /* "EdDSA", "Ed25519", "ES256" or "ES384" */
  int created;                   /* 1 if this call created the binding */
  void *internal_;
} mcpsig_dpop_proof;

/*
 * A fresh DPoP proof for one HTTP request, signed with the key of
 * (identity, origin). A first contact creates the binding: the identity's key
 * type, or the first type in algorithms when that list excludes it (an
 * Ed25519 identity falls back to ES256 for a server that accepts only ES256).
 */
MCPSIG_EXTERN int mcpsig_dpop(mcpsig_client *client, const mcpsig_dpop_request *req,
                              mcpsig_dpop_proof **ret_proof);
MCPSIG_EXTERN mcpsig_dpop_proof *mcpsig_dpop_proof_free(mcpsig_dpop_proof *proof);

/* ---- key rotation (SEP-2752 §3.4) -------------------------------------- */

/*
 * The rotation state machine of one binding: ACTIVE(k1) -> begin ->
 * PENDING(k1, k2) -> commit -> ACTIVE(k2), or -> abort -> ACTIVE(k1). Each
 * step is durable in the keystore before it returns. While PENDING, plain
 * signatures still use k1. identity NULL means "default"; origin is any
 * URL of the binding's origin. Each returns the binding's state after the
 * step in *ret_binding (may be NULL), to free with mcpsig_binding_free().
 *
 * begin fails with MCPSIG_EROTATING when a rotation is already pending (the
 * message names its key); commit and abort fail with MCPSIG_ENOROTATION
 * when none is.
 */
MCPSIG_EXTERN int mcpsig_rotate_begin(mcpsig_client *client, const char *identity, const char *origin,
                                      mcpsig_binding **ret_binding);
MCPSIG_EXTERN int mcpsig_rotate_commit(mcpsig_client *client, const char *identity, const char *origin,
                                       mcpsig_binding **ret_binding);
MCPSIG_EXTERN int mcpsig_rotate_abort(mcpsig_client *client, const char *identity, const char *origin,
                                      mcpsig_binding **ret_binding);
MCPSIG_EXTERN int mcpsig_rotate_status(mcpsig_client *client, const char *identity, const char *origin,
                                       mcpsig_binding **ret_binding);
MCPSIG_EXTERN mcpsig_binding *mcpsig_binding_free(mcpsig_binding *binding);

typedef struct {
  const char *identity;         /* NULL: "default" */
  const char *origin;           /* NULL: the origin of uri */
  const char *uri;              /* the MCP endpoint, exactly as the POST is sent */
  const mcpsig_header *headers; /* e.g. Mcp-Session-Id, MCP-Protocol-Version */
  size_t n_headers;
  const char *id_str;           /* the JSON-RPC id: a string, or, when NULL, */
  int64_t id_num;               /* this number */
} mcpsig_rotate_request;

typedef struct {
  const unsigned char *body;    /* the exact JSON-RPC request to send */
  size_t body_len;
  const char *content_digest;   /* the four header values to add */
  const char *signature_input;  /* "sig-old=..., sig-new=..." */
  const char *signature;
  const char *signature_agent;  /* a JWKS holding the old and the new key */
  const char *tag;              /* unchanged by the rotation */
  const char *keyid;            /* the old (active) key */
  const char *new_keyid;        /* the pending key, announced as newKey */
  const char *new_jwk;          /* the pending key's public JWK */
  int64_t created;
  void *internal_;
} mcpsig_rotate_signature;

/*
 * Builds and signs the signatures/rotateKey request of a pending rotation:
 * {"jsonrpc":"2.0","id":ID,"method":"signatures/rotateKey",
 *  "params":{"newKey":<public JWK of the pending key>}}, signed as sig-old by
 * the active key and as sig-new by the pending key. The agent writes the
 * body itself, so no caller can obtain sig-new over another key. Send the
 * body unchanged with Content-Type: application/json.
 */
MCPSIG_EXTERN int mcpsig_sign_rotate(mcpsig_client *client, const mcpsig_rotate_request *req,
                                     mcpsig_rotate_signature **ret_sig);
MCPSIG_EXTERN mcpsig_rotate_signature *mcpsig_rotate_signature_free(mcpsig_rotate_signature *sig);

/* ---- notifications ----------------------------------------------------- */

typedef struct {
  const char *event;            /* "begin", "commit" or "abort"; or "lost" (see lost) */
  const char *identity;         /* "" for "lost" */
  const char *origin;           /* "" for "lost" */
  const char *tag;              /* "" for "lost" */
  const char *old_keyid;        /* the key in use before the event; "" for "lost" */
  const char *new_keyid;        /* the rotation's new key; "" for "lost" */
  void *internal_;
  uint64_t lost;                /* "lost": how many events the agent dropped because this
                                   connection did not read them in time; read the current
                                   state (mcpsig_list, mcpsig_rotate_status) */
} mcpsig_event;

/*
 * Asks the agent to send this connection an event on every rotation begin,
 * commit and abort, of every binding. Events that arrive during other calls
 * on the handle are queued, never lost.
 */
MCPSIG_EXTERN int mcpsig_subscribe(mcpsig_client *client);

/*
 * The next event: from the queue, else waits up to timeout_ms (-1: forever)
 * for one. MCPSIG_ETIMEDOUT when none came; the handle stays usable.
 */
MCPSIG_EXTERN int mcpsig_event_next(mcpsig_client *client, int timeout_ms, mcpsig_event **ret_event);
MCPSIG_EXTERN mcpsig_event *mcpsig_event_free(mcpsig_event *event);

/*
 * Computes the RFC 9530 Content-Digest field value, "sha-256=:<base64>:", of
 * body on the host side, so a large body need not cross the socket. buf must
 * hold at least MCPSIG_CONTENT_DIGEST_LEN bytes.
 */
#define MCPSIG_CONTENT_DIGEST_LEN 56
MCPSIG_EXTERN int mcpsig_content_digest(const void *body, size_t len, char *buf, size_t size);

#ifdef __cplusplus
}
#endif

#endif /* MCPSIG_H */
