/*
 * messages.c: the schema of every message in proto/PROTOCOL.md. The wire
 * names are the C member names.
 */
#include "config.h"

#include <stddef.h>

#include "proto.h"

#define NO PROTO_NO_OFFSET
#define F_STR(S, m, fl, mx) { #m, PT_STR, offsetof(S, m), NO, NO, (fl), (mx), NULL }
#define F_INT(S, m, fl) { #m, PT_INT, offsetof(S, m), NO, NO, (fl), 0, NULL }
#define F_BOOL(S, m, fl) { #m, PT_BOOL, offsetof(S, m), NO, NO, (fl), 0, NULL }
#define F_BIN(S, m, fl, mx) { #m, PT_BIN, offsetof(S, m), offsetof(S, m##_len), offsetof(S, has_##m), (fl), (mx), NULL }
#define F_STRV(S, m, fl, mx) { #m, PT_STRV, offsetof(S, m), offsetof(S, n_##m), NO, (fl), (mx), NULL }
#define F_PAIRS(S, m, fl, mx) { #m, PT_PAIRS, offsetof(S, m), offsetof(S, n_##m), NO, (fl), (mx), NULL }
#define F_STRUCTV(S, m, fl, sub) { #m, PT_STRUCTV, offsetof(S, m), offsetof(S, n_##m), NO, (fl), 0, &(sub) }
#define SCHEMA(var, name, S, arr) \
  const struct proto_schema var = { name, arr, sizeof(arr) / sizeof(arr[0]), sizeof(S) }

#define ID_MAX MCPSIG_MAX_IDENTITY_LEN

const struct proto_schema proto_empty_schema = { "params", NULL, 0, 1 };

#define S struct proto_hello_result
static const struct proto_field hello_result_fields[] = {
  F_INT(S, protocol, PF_REQUIRED),
  F_STR(S, agent_version, PF_REQUIRED, 0),
  F_STRV(S, algorithms, PF_REQUIRED, 0),
  F_INT(S, pid, 0),
};
SCHEMA(proto_hello_result_schema, "result", S, hello_result_fields);
#undef S

#define S struct proto_events_lost
static const struct proto_field events_lost_fields[] = {
  F_INT(S, count, PF_REQUIRED),
};
SCHEMA(proto_events_lost_schema, "params", S, events_lost_fields);
#undef S

#define S struct proto_status_result
static const struct proto_field status_result_fields[] = {
  F_INT(S, pid, PF_REQUIRED),
  F_INT(S, uptime, PF_REQUIRED),
  F_INT(S, connections, PF_REQUIRED),
  F_INT(S, connections_limit, PF_REQUIRED),
  F_INT(S, identities, PF_REQUIRED),
  F_INT(S, bindings, PF_REQUIRED),
  F_INT(S, signatures, PF_REQUIRED),
  F_BOOL(S, memory_locked, PF_REQUIRED),
  F_INT(S, output_queued_max, PF_REQUIRED),
  F_INT(S, output_queued_limit, PF_REQUIRED),
  F_INT(S, memory_lock_errno, 0),
  F_BOOL(S, peer_exe_readable, 0),
};
SCHEMA(proto_status_result_schema, "result", S, status_result_fields);
#undef S

#define S struct proto_identity_params
static const struct proto_field identity_params_fields[] = {
  F_STR(S, identity, 0, ID_MAX),
  F_STR(S, origin, 0, 0),
  F_STR(S, alg, 0, 32),
  F_BOOL(S, all, 0),
};
SCHEMA(proto_identity_params_schema, "params", S, identity_params_fields);
#undef S

#define S struct proto_public_result
static const struct proto_field public_result_fields[] = {
  F_STR(S, identity, PF_REQUIRED, 0),
  F_STR(S, origin, PF_REQUIRED, 0),
  F_STR(S, tag, PF_REQUIRED, 0),
  F_STR(S, keyid, PF_REQUIRED, 0),
  F_STR(S, alg, PF_REQUIRED, 0),
  F_STR(S, jwk, PF_REQUIRED, 0),
  F_STR(S, signature_agent, PF_REQUIRED, 0),
  F_BOOL(S, created, 0),
};
SCHEMA(proto_public_result_schema, "result", S, public_result_fields);
#undef S

#define S struct proto_binding
static const struct proto_field binding_fields[] = {
  F_STR(S, identity, PF_REQUIRED, 0),
  F_STR(S, origin, PF_REQUIRED, 0),
  F_STR(S, tag, PF_REQUIRED, 0),
  F_STR(S, keyid, PF_REQUIRED, 0),
  F_STR(S, alg, PF_REQUIRED, 0),
  F_STR(S, state, PF_REQUIRED, 0),
  F_STR(S, pending_keyid, PF_NULLABLE, 0),
  F_STRV(S, retired, PF_REQUIRED, 4096),
  F_INT(S, retired_dropped, 0),
};
SCHEMA(proto_binding_schema, "binding", S, binding_fields);
#undef S

#define S struct proto_identity_entry
static const struct proto_field identity_entry_fields[] = {
  F_STR(S, name, PF_REQUIRED, 0),
  F_STR(S, alg, PF_REQUIRED, 0),
};
SCHEMA(proto_identity_entry_schema, "identity", S, identity_entry_fields);
#undef S

#define S struct proto_list_params
static const struct proto_field list_params_fields[] = {
  F_STR(S, after, 0, MCPSIG_LIST_CURSOR_MAX),
  { "limit", PT_INT, offsetof(S, limit), NO, offsetof(S, has_limit), 0, 0, NULL },
};
SCHEMA(proto_list_params_schema, "params", S, list_params_fields);
#undef S

/* The item limits admit the single reply of an agent from before pages. */
#define S struct proto_list_result
static const struct proto_field list_result_fields[] = {
  { "identities", PT_STRUCTV, offsetof(S, identities), offsetof(S, n_identities), NO, PF_REQUIRED, 100000,
    &proto_identity_entry_schema },
  { "bindings", PT_STRUCTV, offsetof(S, bindings), offsetof(S, n_bindings), NO, PF_REQUIRED, 1000000,
    &proto_binding_schema },
  F_STR(S, next, PF_NULLABLE, MCPSIG_LIST_CURSOR_MAX),
};
SCHEMA(proto_list_result_schema, "result", S, list_result_fields);
#undef S

#define S struct proto_import_params
static const struct proto_field import_params_fields[] = {
  F_STR(S, identity, 0, ID_MAX),
  F_STR(S, origin, PF_REQUIRED, 0),
  F_BIN(S, jwk, PF_SECRET, 16384),
  F_BIN(S, seed, PF_SECRET, 64),
};
SCHEMA(proto_import_params_schema, "params", S, import_params_fields);
#undef S

#define S struct proto_sign_params
static const struct proto_field sign_params_fields[] = {
  F_STR(S, identity, 0, ID_MAX),
  F_STR(S, origin, 0, 0),
  F_STR(S, method, PF_REQUIRED, 64),
  F_STR(S, uri, PF_REQUIRED, 0),
  F_PAIRS(S, headers, 0, MCPSIG_MAX_HEADERS),
  F_BIN(S, body, 0, MCPSIG_MAX_BODY_LEN),
  F_STR(S, content_digest, 0, 256),
  F_STR(S, accept_signature, 0, 0),
  F_STR(S, label, 0, 64),
  F_STRV(S, components, 0, 32),
  F_STR(S, key, 0, 16),
  F_STRV(S, algorithms, 0, MCPSIG_MAX_ALGORITHMS),
};
SCHEMA(proto_sign_params_schema, "params", S, sign_params_fields);
#undef S

#define S struct proto_dpop_params
static const struct proto_field dpop_params_fields[] = {
  F_STR(S, identity, 0, ID_MAX),
  F_STR(S, origin, PF_REQUIRED, 0),
  F_STR(S, htm, PF_REQUIRED, 64),
  F_STR(S, htu, PF_REQUIRED, 0),
  F_STR(S, access_token, 0, MCPSIG_MAX_TOKEN_LEN),
  F_STR(S, nonce, 0, 1024),
  F_STRV(S, algorithms, 0, MCPSIG_MAX_ALGORITHMS),
};
SCHEMA(proto_dpop_params_schema, "params", S, dpop_params_fields);
#undef S

#define S struct proto_dpop_result
static const struct proto_field dpop_result_fields[] = {
  F_STR(S, proof, PF_REQUIRED, 65536),
  F_STR(S, jkt, PF_REQUIRED, 0),
  F_STR(S, alg, PF_REQUIRED, 0),
  F_BOOL(S, created, 0),
};
SCHEMA(proto_dpop_result_schema, "result", S, dpop_result_fields);
#undef S

#define S struct proto_sign_headers
static const struct proto_field sign_headers_fields[] = {
  { "Content-Digest", PT_STR, offsetof(S, content_digest), NO, NO, PF_REQUIRED, 0, NULL },
  { "Signature-Input", PT_STR, offsetof(S, signature_input), NO, NO, PF_REQUIRED, 0, NULL },
  { "Signature", PT_STR, offsetof(S, signature), NO, NO, PF_REQUIRED, 0, NULL },
  { "Signature-Agent", PT_STR, offsetof(S, signature_agent), NO, NO, PF_REQUIRED, 0, NULL },
};
SCHEMA(proto_sign_headers_schema, "headers", S, sign_headers_fields);
#undef S

#define S struct proto_sign_result
static const struct proto_field sign_result_fields[] = {
  { "headers", PT_STRUCT, offsetof(S, headers), NO, offsetof(S, has_headers), PF_REQUIRED, 0,
    &proto_sign_headers_schema },
  F_STR(S, keyid, PF_REQUIRED, 0),
  F_STR(S, tag, PF_REQUIRED, 0),
  F_STR(S, label, PF_REQUIRED, 0),
  F_STR(S, alg, PF_REQUIRED, 0),
  F_INT(S, created, PF_REQUIRED),
};
SCHEMA(proto_sign_result_schema, "result", S, sign_result_fields);
#undef S

#define S struct proto_error
static const struct proto_field error_fields[] = {
  F_INT(S, code, PF_REQUIRED),
  F_STR(S, message, PF_REQUIRED, 0),
};
SCHEMA(proto_error_schema, "error", S, error_fields);
#undef S

#define S struct proto_rotate_params
static const struct proto_field rotate_params_fields[] = {
  F_STR(S, identity, 0, ID_MAX),
  F_STR(S, origin, PF_REQUIRED, 0),
};
SCHEMA(proto_rotate_params_schema, "params", S, rotate_params_fields);
#undef S

#define S struct proto_rotate_sign_params
static const struct proto_field rotate_sign_params_fields[] = {
  F_STR(S, identity, 0, ID_MAX),
  F_STR(S, origin, 0, 0),
  F_STR(S, uri, PF_REQUIRED, 0),
  F_PAIRS(S, headers, 0, MCPSIG_MAX_HEADERS),
  { "id", PT_SCALAR, offsetof(S, id), NO, offsetof(S, has_id), PF_REQUIRED, 256, NULL },
};
SCHEMA(proto_rotate_sign_params_schema, "params", S, rotate_sign_params_fields);
#undef S

#define S struct proto_rotate_sign_result
static const struct proto_field rotate_sign_result_fields[] = {
  F_BIN(S, body, PF_REQUIRED, 0),
  { "headers", PT_STRUCT, offsetof(S, headers), NO, offsetof(S, has_headers), PF_REQUIRED, 0,
    &proto_sign_headers_schema },
  F_STR(S, tag, PF_REQUIRED, 0),
  F_STR(S, keyid, PF_REQUIRED, 0),
  F_STR(S, new_keyid, PF_REQUIRED, 0),
  F_STR(S, new_jwk, PF_REQUIRED, 0),
  F_INT(S, created, PF_REQUIRED),
};
SCHEMA(proto_rotate_sign_result_schema, "result", S, rotate_sign_result_fields);
#undef S

#define S struct proto_rotation_event
static const struct proto_field rotation_event_fields[] = {
  F_STR(S, event, PF_REQUIRED, 16),
  F_STR(S, identity, PF_REQUIRED, 0),
  F_STR(S, origin, PF_REQUIRED, 0),
  F_STR(S, tag, PF_REQUIRED, 0),
  F_STR(S, old_keyid, PF_REQUIRED, 0),
  F_STR(S, new_keyid, PF_REQUIRED, 0),
};
SCHEMA(proto_rotation_event_schema, "event", S, rotation_event_fields);
#undef S

const struct proto_method proto_methods[] = {
  { "hello", &proto_empty_schema },
  { "agent.status", &proto_empty_schema },
  { "identity.list", &proto_list_params_schema },
  { "identity.public", &proto_identity_params_schema },
  { "identity.add", &proto_identity_params_schema },
  { "identity.remove", &proto_identity_params_schema },
  { "identity.import", &proto_import_params_schema },
  { "sign.http", &proto_sign_params_schema },
  { "dpop.proof", &proto_dpop_params_schema },
  { "rotate.begin", &proto_rotate_params_schema },
  { "rotate.commit", &proto_rotate_params_schema },
  { "rotate.abort", &proto_rotate_params_schema },
  { "rotate.status", &proto_rotate_params_schema },
  { "sign.rotate", &proto_rotate_sign_params_schema },
  { "subscribe", &proto_empty_schema },
};
const size_t proto_n_methods = sizeof(proto_methods) / sizeof(proto_methods[0]);
