/*
 * httpsig.h: RFC 9421 HTTP Message Signatures with the SEP-2752 profile:
 * covered components, the signature base, and the Signature-Input and
 * Signature fields.
 */
#ifndef MCPSIG_HTTPSIG_H
#define MCPSIG_HTTPSIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "proto.h"
#include "uri.h"

#define HTTPSIG_MAX_COMPONENTS 32
#define HTTPSIG_LABEL_MAX 64
#define HTTPSIG_NONCE_BYTES 16

struct httpsig_request {
  const char *method;
  const char *uri;
  struct uri target;                 /* parsed from uri by httpsig_request_init */
  const struct proto_pair *headers;
  size_t n_headers;
  const char *signature_agent;       /* the Signature-Agent value the agent emits, for the
                                        "signature-agent" component; NULL: not known yet */
};

struct httpsig_params {
  int64_t created;
  bool has_expires;
  int64_t expires;
  const char *nonce;                 /* NULL: omitted */
  const char *keyid;                 /* NULL: omitted */
  const char *tag;                   /* NULL: omitted */
};

struct httpsig_plan {
  char label[HTTPSIG_LABEL_MAX + 1];
  const char *components[HTTPSIG_MAX_COMPONENTS];
  size_t n_components;
  bool want_expires;
  char *server_nonce;                /* a nonce value from Accept-Signature, copied verbatim */
  char *server_keyid;                /* a keyid value the server asked for */
  char *server_tag;                  /* a tag value the server asked for (we keep ours) */
  char *server_alg;                  /* an alg value the server asked for (never sent) */
  char *storage;                     /* backing for component names from Accept-Signature */
  char *mcp_storage;                 /* backing for the lowercase mcp-param-* names */
};

/*
 * Whether a component names one of the MCP headers that are covered when a
 * request carries them: mcp-protocol-version, mcp-session-id, mcp-method,
 * mcp-name and mcp-param-*. A host may name these explicitly whether or not
 * the request has them ("cover if present").
 */
bool httpsig_mcp_header(const char *name);

/* Validates method and uri (see uri_parse_target) and fills req. */
int httpsig_request_init(struct httpsig_request *req, const char *method, const char *uri,
                         const struct proto_pair *headers, size_t n_headers, char *err, size_t errlen);

/*
 * Checks a component identifier: a lowercase header field name, or one of
 * the request-derived components of RFC 9421 §2.2 that take no parameters.
 */
int httpsig_component_check(const char *name, char *err, size_t errlen);

/*
 * Decides what to cover: the SEP-2752 set (@method @target-uri
 * content-digest, then, when the request carries them, mcp-protocol-version,
 * mcp-session-id, mcp-method, mcp-name and every mcp-param-* in byte order
 * of its lowercase name), or, given the server's Accept-Signature, its label
 * and components (followed by any profile component it left out) and
 * parameters; then any extra components, where an MCP header the request
 * lacks is left out rather than refused. "signature-agent" means the value
 * the agent emits (req->signature_agent). Free with httpsig_plan_free().
 */
int httpsig_plan_build(const struct httpsig_request *req, const char *accept_signature, const char *label,
                       const char *const *extra, size_t n_extra, struct httpsig_plan *ret_plan, char *err,
                       size_t errlen);
void httpsig_plan_free(struct httpsig_plan *plan);

/*
 * Builds the signature base (RFC 9421 §2.5: one "name": value line per
 * component, LF-separated, then the @signature-params line with no trailing
 * LF) and the serialized signature parameters, which are also the
 * Signature-Input member value.
 */
int httpsig_base_build(const struct httpsig_request *req, const char *const *components, size_t n_components,
                       const struct httpsig_params *params, struct buf *base, struct buf *sigparams, char *err,
                       size_t errlen);

/* The value of a header across all its lines, trimmed and joined with ", " (RFC 9421 §2.1). NULL when absent. */
int httpsig_field_value(const struct httpsig_request *req, const char *lcname, struct buf *out, bool *ret_found);

/* label=<sigparams> and label=:<base64 sig>: members. */
int httpsig_member_input(struct buf *out, const char *label, const char *sigparams);
int httpsig_member_signature(struct buf *out, const char *label, const unsigned char *sig, size_t len);

#endif
