/*
 * dispatch.c: every protocol method, independent of sockets.
 *
 * Each method validates everything it was given before it changes any state,
 * so a bad request never creates a binding, and answers with one error code
 * and a message that names the problem.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sodium.h>

#include "dispatch.h"
#include "dpop.h"
#include "httpsig.h"
#include "jwk.h"
#include "log.h"
#include "proto.h"
#include "testhooks.h"
#include "uri.h"

#define ERRLEN 512

struct call {
  struct agent *a;
  struct dispatch_peer *peer;
  const msgpack_object *msgid;
  const msgpack_object *params;
  msgpack_zone *zone;
  msgpack_packer *pk;
  char err[ERRLEN];
};

static int reply_error(struct call *c, int code) {
  /* Only codes from the documented table go on the wire; a system error
   * becomes EINTERNAL with its text as the message. */
  if (code > MCPSIG_ERRNO_MIN_ && code <= MCPSIG_EPROTO) {
    /* one of ours */
  } else {
    if (!c->err[0])
      snprintf(c->err, sizeof(c->err), "internal error: %s", mcpsig_strerror(code));
    code = MCPSIG_EINTERNAL;
  }
  if (proto_error_encode(c->pk, c->msgid, code, c->err[0] ? c->err : mcpsig_strerror(code)) < 0)
    return -ENOMEM;
  return DISPATCH_REPLIED;
}

static int reply_result(struct call *c, const struct proto_schema *schema, const void *result) {
  if (proto_response_begin(c->pk, c->msgid) < 0 || proto_encode(c->pk, schema, result) < 0)
    return -ENOMEM;
  return DISPATCH_REPLIED;
}

static int set_err(struct call *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int set_err(struct call *c, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->err, sizeof(c->err), fmt, ap);
  va_end(ap);
  return code;
}

/* Wipes a decoded string in the call's zone: header values and access
 * tokens may be credentials, and msgpack-c frees zones without clearing. */
static void wipe_str(const char *s) {
  if (s)
    sodium_memzero((char *)s, strlen(s));
}

static void wipe_pairs(const struct proto_pair *pairs, size_t n) {
  for (size_t i = 0; pairs && i < n; i++)
    wipe_str(pairs[i].value);
}

static int decode(struct call *c, const struct proto_schema *schema, void *out) {
  return proto_decode(schema, c->params, c->zone, out, PROTO_DECODE_STRICT, c->err, sizeof(c->err));
}

static int identity_resolve(struct call *c, const char *name, struct identity **ret) {
  struct identity *id = agent_identity_find(c->a, name ? name : PROTO_DEFAULT_IDENTITY);
  if (!id)
    return set_err(c, MCPSIG_ENOIDENT, "unknown identity \"%.64s\"; add it with: mcpsig add-identity %.64s", name,
                   name);
  *ret = id;
  return 0;
}

static int origin_resolve(struct call *c, const char *url, char origin[MCPSIG_MAX_ORIGIN_LEN + 1]) {
  if (!url)
    return set_err(c, MCPSIG_EPARAM, "origin is required");
  return uri_origin(url, origin, MCPSIG_MAX_ORIGIN_LEN + 1, c->err, sizeof(c->err));
}

/* ---- hello ---- */

static int m_hello(struct call *c) {
  static const key_alg all[] = { KEY_ED25519, KEY_P256, KEY_P384 };
  const char *algs[3];
  size_t n = 0;
  char dummy;
  for (size_t i = 0; i < 3; i++)
    if (key_alg_available(all[i]))
      algs[n++] = key_alg_name(all[i]);
  struct proto_hello_result res = { MCPSIG_PROTOCOL_VERSION, PACKAGE_VERSION, algs, n, (int64_t)getpid() };
  int r = decode(c, &proto_empty_schema, &dummy);
  if (r < 0)
    return reply_error(c, r);
  return reply_result(c, &proto_hello_result_schema, &res);
}

/* ---- agent.status ---- */

static int m_agent_status(struct call *c) {
  size_t conns = 0, queued = 0;
  char dummy;
  int r = decode(c, &proto_empty_schema, &dummy);
  if (r < 0)
    return reply_error(c, r);
  if (c->a->server_stats)
    c->a->server_stats(c->a->server_stats_data, &conns, &queued);
  struct proto_status_result res = {
    .pid = (int64_t)getpid(), .uptime = agent_now(c->a) - c->a->started, .connections = (int64_t)conns,
    .connections_limit = MCPSIG_MAX_CONNECTIONS, .identities = (int64_t)c->a->n_identities,
    .bindings = (int64_t)c->a->n_bindings, .signatures = (int64_t)c->a->n_signatures,
    .memory_locked = keypool_locked(c->a->pool), .output_queued_max = (int64_t)queued,
    .output_queued_limit = MCPSIG_MAX_OUTPUT_QUEUED,
    .memory_lock_errno = keypool_locked(c->a->pool) ? 0 : keypool_lock_errno(c->a->pool),
    .peer_exe_readable = c->peer && c->peer->exe,
  };
  return reply_result(c, &proto_status_result_schema, &res);
}

/* ---- key types and algorithm lists ---- */

/* How a key type is named in a list of the given kind, for messages. */
static const char *alg_display(alg_names names, key_alg alg) {
  return names == ALG_NAMES_JOSE ? key_jose_alg(alg, NULL, 0) : key_alg_name(alg);
}

/*
 * The key type to use with the binding b of identity id (b NULL on first
 * contact) when the caller accepts only the algorithms in list (n == 0: any).
 *  - An existing binding keeps its type for life, so a list that excludes it
 *    is an error that says so.
 *  - A first contact takes the identity's type, unless the list excludes it;
 *    then the first type on the list that this agent makes (SPEC-NOTES §9.18:
 *    an Ed25519 identity falls back to ES256 for a server that takes only it).
 *  - A name no registry knows is an error, so a typo is never skipped; a
 *    registered name the agent cannot make (RS256, ...) is skipped.
 */
static int alg_choose(struct call *c, alg_names names, const char *const *list, size_t n, const struct identity *id,
                      const struct binding *b, key_alg *ret) {
  key_alg have = b ? b->active.alg : id->alg, first = 0;
  bool have_ok = n == 0;
  char joined[256] = "";

  for (size_t i = 0; i < n; i++) {
    key_alg t = 0;
    if (key_alg_lookup(names, list[i], &t) < 0)
      return set_err(c, MCPSIG_EALG, "unknown algorithm \"%.40s\" (this agent makes %s)", list[i],
                     key_alg_supported_list(names));
    if (t && !first)
      first = t;
    if (t == have)
      have_ok = true;
    size_t used = strlen(joined);
    snprintf(joined + used, sizeof(joined) - used, "%s%.40s", i ? ", " : "", list[i]);
  }
  if (have_ok) {
    *ret = have;
    return 0;
  }
  if (b)
    return set_err(c, MCPSIG_EALG,
                   "the key of %s for %s is %s, and the accepted algorithms (%s) exclude it; a binding keeps its key "
                   "type for life (remove the binding to start again with a new key and tag)",
                   id->name, b->origin, alg_display(names, have), joined);
  if (!first)
    return set_err(c, MCPSIG_EALG, "none of the accepted algorithms (%s) is one this agent makes (%s)", joined,
                   key_alg_supported_list(names));
  *ret = first;
  return 0;
}

/* ---- identities ---- */

static void binding_describe(struct binding *b, struct proto_binding *out) {
  memset(out, 0, sizeof(*out));
  out->identity = b->identity->name;
  out->origin = b->origin;
  out->tag = b->tag;
  out->keyid = b->active.keyid;
  out->alg = key_alg_name(b->active.alg);
  out->state = b->has_pending ? "pending" : "active";
  out->pending_keyid = b->has_pending ? b->pending.keyid : NULL;
  out->retired = (const char **)b->retired;
  out->n_retired = b->n_retired;
  out->retired_dropped = b->retired_dropped > INT64_MAX ? INT64_MAX : (int64_t)b->retired_dropped;
}

static int identity_cmp(const void *x, const void *y) {
  return strcmp(((const struct proto_identity_entry *)x)->name, ((const struct proto_identity_entry *)y)->name);
}

static int m_identity_list(struct call *c) {
  struct proto_list_params p;
  struct proto_list_result res = { 0 };
  struct proto_identity_entry *ids = NULL;
  struct binding **list = NULL;
  char after_name[MCPSIG_MAX_IDENTITY_LEN + 1] = "", next[MCPSIG_LIST_CURSOR_MAX + 1];
  const char *after_origin = "", *last_name = NULL, *last_origin = NULL;
  size_t n = 0, n_ids = 0, i = 0, k = 0, i0, k0, items = 0, bytes = 0, limit = MCPSIG_LIST_PAGE_MAX;
  int r = 0;
  /* [] and [nil] stay valid, as before identity.list took parameters. */
  if (c->params->type == MSGPACK_OBJECT_NIL)
    memset(&p, 0, sizeof(p));
  else
    r = decode(c, &proto_list_params_schema, &p);
  if (r < 0)
    return reply_error(c, r);
  if (p.has_limit) {
    if (p.limit < 1 || p.limit > (int64_t)MCPSIG_LIST_PAGE_MAX)
      return reply_error(c, set_err(c, MCPSIG_EPARAM, "params.limit: must be from 1 to %u", MCPSIG_LIST_PAGE_MAX));
    limit = (size_t)p.limit;
  }
  if (p.after) {
    /* The cursor is the last entry of the page before: "IDENTITY ORIGIN",
     * with an empty ORIGIN for an identity's own entry. Identity names hold
     * no space. A key rather than a position, so that bindings added or
     * removed between two pages shift nothing: no entry comes twice. */
    const char *sp = strchr(p.after, ' ');
    size_t len = sp ? (size_t)(sp - p.after) : 0;
    if (len > 0 && len <= MCPSIG_MAX_IDENTITY_LEN) {
      memcpy(after_name, p.after, len);
      after_name[len] = '\0';
    }
    if (!identity_name_valid(after_name))
      return reply_error(c, set_err(c, MCPSIG_EPARAM,
                                    "params.after: not a cursor from identity.list's \"next\"; list again without after"));
    after_origin = sp + 1;
  }
  if ((r = agent_bindings_sorted(c->a, &list, &n)) < 0)
    return reply_error(c, r);
  ids = calloc(c->a->n_identities + 1, sizeof(*ids));
  res.bindings = calloc(n < limit ? n + 1 : limit, sizeof(*res.bindings));
  if (!ids || !res.bindings) {
    r = reply_error(c, -ENOMEM);
    goto out;
  }
  for (struct identity *id = c->a->identities; id; id = id->next, n_ids++) {
    ids[n_ids].name = id->name;
    ids[n_ids].alg = key_alg_name(id->alg);
  }
  qsort(ids, n_ids, sizeof(*ids), identity_cmp);
  /* Entries at or before the cursor were on earlier pages. */
#define LIST_AFTER_CURSOR(name, origin)                                                           \
  (!p.after || strcmp((name), after_name) > 0 || (strcmp((name), after_name) == 0 && strcmp((origin), after_origin) > 0))
  while (i < n_ids && !LIST_AFTER_CURSOR(ids[i].name, ""))
    i++;
  while (k < n && !LIST_AFTER_CURSOR(list[k]->identity->name, list[k]->origin))
    k++;
#undef LIST_AFTER_CURSOR
  i0 = i;
  k0 = k;
  /* An upper bound of an entry's encoded size: each str costs at most its
   * length and a 5-byte header, each key its name and a 1-byte header. */
#define LIST_STR_SIZE(s) ((s) ? strlen(s) + 5 : 1)
  while (items < limit && (i < n_ids || k < n)) {
    /* An identity's own entry sorts before its bindings (empty origin). */
    bool identity_next = i < n_ids && (k == n || strcmp(ids[i].name, list[k]->identity->name) <= 0);
    size_t size;
    const char *name, *origin;
    if (identity_next) {
      size = 1 + 5 + 4 + LIST_STR_SIZE(ids[i].name) + LIST_STR_SIZE(ids[i].alg);
      name = ids[i].name;
      origin = "";
    } else {
      struct proto_binding *pb = &res.bindings[k - k0];
      /* PROTOCOL.md §9.2: a listed keyid is the thumbprint of its key, checked
       * once per binding (a record whose stored keyid lies is repaired here). */
      (void)key_check(c->a->pool, &list[k]->active);
      binding_describe(list[k], pb);
      size = 1 + 58 + LIST_STR_SIZE(pb->identity) + LIST_STR_SIZE(pb->origin) + LIST_STR_SIZE(pb->tag) +
             LIST_STR_SIZE(pb->keyid) + LIST_STR_SIZE(pb->alg) + LIST_STR_SIZE(pb->state) +
             LIST_STR_SIZE(pb->pending_keyid) + 5;
      for (size_t j = 0; j < pb->n_retired; j++)
        size += LIST_STR_SIZE(pb->retired[j]);
      name = pb->identity;
      origin = pb->origin;
    }
    /* A page ends before it outgrows one message; it always holds one entry. */
    if (items > 0 && bytes + size > MCPSIG_LIST_PAGE_BYTES)
      break;
    bytes += size;
    items++;
    if (identity_next)
      i++;
    else
      k++;
    last_name = name;
    last_origin = origin;
  }
#undef LIST_STR_SIZE
  res.identities = ids + i0;
  res.n_identities = i - i0;
  res.n_bindings = k - k0;
  if (last_name && (i < n_ids || k < n)) {
    snprintf(next, sizeof(next), "%s %s", last_name, last_origin);
    res.next = next;
  }
  r = reply_result(c, &proto_list_result_schema, &res);
out:
  free(ids);
  free(res.bindings);
  free(list);
  return r;
}

static int public_reply(struct call *c, struct binding *b, bool created) {
  int r = key_check(c->a->pool, &b->active);
  if (r < 0)
    return reply_error(c, r);
  struct proto_public_result res = {
    .identity = b->identity->name, .origin = b->origin, .tag = b->tag, .keyid = b->active.keyid,
    .alg = key_alg_name(b->active.alg), .created = created,
  };
  r = key_public_values(&b->active, &res.jwk, &res.signature_agent);
  if (r < 0)
    return reply_error(c, r);
  return reply_result(c, &proto_public_result_schema, &res);
}

static int m_identity_public(struct call *c) {
  struct proto_identity_params p;
  struct identity *id = NULL;
  struct binding *b;
  char origin[MCPSIG_MAX_ORIGIN_LEN + 1];
  bool created = false;
  int r;

  if ((r = decode(c, &proto_identity_params_schema, &p)) < 0 || (r = identity_resolve(c, p.identity, &id)) < 0 ||
      (r = origin_resolve(c, p.origin, origin)) < 0)
    return reply_error(c, r);
  if (p.alg || p.all)
    return reply_error(c, set_err(c, MCPSIG_EPARAM, "identity.public takes only identity and origin"));
  if ((r = agent_binding_get(c->a, id, origin, true, 0, &b, &created, c->err, sizeof(c->err))) < 0)
    return reply_error(c, r);
  if (created)
    log_binding_created(c->peer, b);
  return public_reply(c, b, created);
}

static int m_identity_add(struct call *c) {
  struct proto_identity_params p;
  key_alg alg = KEY_ED25519;
  int r;

  if ((r = decode(c, &proto_identity_params_schema, &p)) < 0)
    return reply_error(c, r);
  if (!p.identity)
    return reply_error(c, set_err(c, MCPSIG_EPARAM, "identity is required"));
  if (p.origin || p.all)
    return reply_error(c, set_err(c, MCPSIG_EPARAM, "identity.add takes only identity and alg"));
  if (p.alg && key_type_parse(p.alg, &alg) < 0)
    return reply_error(c, set_err(c, MCPSIG_EALG, "unknown key type \"%.32s\" (key types: ed25519, p256, p384)", p.alg));
  if (!key_alg_available(alg))
    return reply_error(c, set_err(c, MCPSIG_EALG, "%s keys need OpenSSL libcrypto, and this agent was built without it",
                                  key_type_name(alg)));
  if ((r = agent_identity_add(c->a, p.identity, alg, c->err, sizeof(c->err))) < 0)
    return reply_error(c, r);
  log_info(c->peer, "identity %s added", p.identity);
  return reply_result(c, &proto_empty_schema, NULL);
}

static int m_identity_remove(struct call *c) {
  struct proto_identity_params p;
  struct identity *id = NULL;
  char origin[MCPSIG_MAX_ORIGIN_LEN + 1];
  int r;

  if ((r = decode(c, &proto_identity_params_schema, &p)) < 0 || (r = identity_resolve(c, p.identity, &id)) < 0)
    return reply_error(c, r);
  if (p.alg || (!p.origin) == (!p.all))
    return reply_error(c, set_err(c, MCPSIG_EPARAM, "identity.remove takes either origin or all: true"));
  if (p.all) {
    const char *name = p.identity ? p.identity : PROTO_DEFAULT_IDENTITY;
    if ((r = agent_identity_remove(c->a, name, c->err, sizeof(c->err))) < 0)
      return reply_error(c, r);
    log_info(c->peer, "identity %s removed", name);
  } else {
    if ((r = origin_resolve(c, p.origin, origin)) < 0 ||
        (r = agent_binding_remove(c->a, id, origin, c->err, sizeof(c->err))) < 0)
      return reply_error(c, r);
    log_info(c->peer, "binding %s %s removed", id->name, origin);
  }
  return reply_result(c, &proto_empty_schema, NULL);
}

static int m_identity_import(struct call *c) {
  struct proto_import_params p;
  struct identity *id = NULL;
  struct binding *b;
  char origin[MCPSIG_MAX_ORIGIN_LEN + 1];
  unsigned char *seed = NULL;
  size_t seed_len = 0;
  key_alg alg = KEY_ED25519;
  int r;

  if ((r = decode(c, &proto_import_params_schema, &p)) < 0 || (r = identity_resolve(c, p.identity, &id)) < 0 ||
      (r = origin_resolve(c, p.origin, origin)) < 0)
    return reply_error(c, r);
  if (p.has_jwk == p.has_seed)
    return reply_error(c, set_err(c, MCPSIG_EPARAM, "identity.import takes exactly one of jwk and seed"));
  seed = sodium_malloc(KEY_SEED_MAX);
  if (!seed)
    return reply_error(c, -ENOMEM);
  if (p.has_seed) {
    if (p.seed_len != 32) {
      r = set_err(c, MCPSIG_EKEY, "an Ed25519 seed is exactly 32 bytes, not %zu", p.seed_len);
      goto out;
    }
    memcpy(seed, p.seed, 32);
    seed_len = 32;
  } else if ((r = jwk_import_private(p.jwk, p.jwk_len, &alg, seed, KEY_SEED_MAX, &seed_len, c->err,
                                     sizeof(c->err))) < 0) {
    goto out;
  }
  r = agent_binding_import(c->a, id, origin, alg, seed, seed_len, &b, c->err, sizeof(c->err));
out:
  sodium_free(seed);
  if (r < 0)
    return reply_error(c, r);
  log_binding_created(c->peer, b);
  return public_reply(c, b, true);
}

/* ---- sign.http ---- */

/*
 * The Content-Digest to cover: computed from the body, or the host's
 * precomputed value (checked for shape), or the request's own header. When
 * more than one is given they must agree, so nothing is silently ignored.
 */
static int digest_resolve(struct call *c, const struct proto_sign_params *p, struct httpsig_request *req,
                          char out[MCPSIG_CONTENT_DIGEST_LEN]) {
  struct buf hv = BUF_INIT;
  bool in_headers = false;
  int r;

  if (p->has_body && p->content_digest)
    return set_err(c, MCPSIG_EPARAM, "give body or content_digest, not both");
  if ((r = httpsig_field_value(req, "content-digest", &hv, &in_headers)) < 0)
    return r;
  if (p->has_body) {
    r = proto_content_digest(p->body, p->body_len, out, MCPSIG_CONTENT_DIGEST_LEN);
  } else if (p->content_digest || in_headers) {
    const char *given = p->content_digest ? p->content_digest : buf_cstr(&hv);
    unsigned char h[32];
    size_t n = 0, len = strlen(given);
    if (len != 54 || strncmp(given, "sha-256=:", 9) != 0 || given[len - 1] != ':' ||
        sodium_base642bin(h, sizeof(h), given + 9, len - 10, NULL, &n, NULL, sodium_base64_VARIANT_ORIGINAL) != 0 ||
        n != 32) {
      buf_free(&hv);
      return set_err(c, p->content_digest ? MCPSIG_EPARAM : MCPSIG_EHEADER, "%s must be \"sha-256=:<base64 of 32 bytes>:\"",
                     p->content_digest ? "content_digest" : "the request's Content-Digest header");
    }
    memcpy(out, given, len + 1);
  } else {
    /* No body at all: GET and DELETE still cover the digest of nothing. */
    r = proto_content_digest("", 0, out, MCPSIG_CONTENT_DIGEST_LEN);
  }
  if (r == 0 && in_headers && strcmp(buf_cstr(&hv), out) != 0)
    r = set_err(c, MCPSIG_EHEADER, "the request's Content-Digest header does not match its body");
  buf_free(&hv);
  return r;
}

struct sign_out {
  struct buf input;
  struct buf signature;
  char nonce[sodium_base64_ENCODED_LEN(HTTPSIG_NONCE_BYTES, sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
};

static int sign_one(struct call *c, const struct httpsig_request *req, const struct httpsig_plan *plan,
                    struct binding *b, struct key *k, int64_t created, struct sign_out *out) {
  struct httpsig_params sp = { .created = created, .keyid = k->keyid, .tag = b->tag };
  struct buf base = BUF_INIT, sigparams = BUF_INIT;
  unsigned char sig[KEY_SIG_MAX];
  size_t siglen = 0;
  int r;

  if (plan->server_nonce) {
    /* RFC 9421 §5.2: a nonce value the server supplies is copied. This is
     * the one exception to a fresh nonce per signature (invariant 3). */
    sp.nonce = plan->server_nonce;
  } else {
    unsigned char raw[HTTPSIG_NONCE_BYTES];
    agent_random(c->a, raw, sizeof(raw));
    sodium_bin2base64(out->nonce, sizeof(out->nonce), raw, sizeof(raw), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sp.nonce = out->nonce;
  }
  if (plan->want_expires) {
    sp.has_expires = true;
    sp.expires = created + 300;
  }
  r = httpsig_base_build(req, plan->components, plan->n_components, &sp, &base, &sigparams, c->err, sizeof(c->err));
  if (r == 0)
    r = key_sign(c->a->pool, k, base.p, base.len, sig, &siglen);
  if (r == 0)
    r = httpsig_member_input(&out->input, plan->label, buf_cstr(&sigparams));
  if (r == 0)
    r = httpsig_member_signature(&out->signature, plan->label, sig, siglen);
  buf_free(&base);
  buf_free(&sigparams);
  sodium_memzero(sig, sizeof(sig));
  return r;
}

static int m_sign_http(struct call *c) {
  struct proto_sign_params p;
  struct httpsig_request req;
  struct httpsig_plan plan;
  struct identity *id = NULL;
  struct binding *b = NULL;
  struct proto_pair *headers = NULL;
  struct sign_out out = { BUF_INIT, BUF_INIT, "" };
  char origin[MCPSIG_MAX_ORIGIN_LEN + 1];
  char digest[MCPSIG_CONTENT_DIGEST_LEN];
  bool created_binding = false, have_digest_header = false;
  struct key *k;
  int r;

  memset(&plan, 0, sizeof(plan));
  if ((r = decode(c, &proto_sign_params_schema, &p)) < 0 || (r = identity_resolve(c, p.identity, &id)) < 0)
    return reply_error(c, r);
  if ((r = httpsig_request_init(&req, p.method, p.uri, p.headers, p.n_headers, c->err, sizeof(c->err))) < 0)
    return reply_error(c, r);
  if ((r = origin_resolve(c, p.origin ? p.origin : p.uri, origin)) < 0)
    return reply_error(c, r);
  if (p.key && strcmp(p.key, "active") != 0 && strcmp(p.key, "pending") != 0)
    return reply_error(c, set_err(c, MCPSIG_EPARAM, "key must be \"active\" or \"pending\""));
  if ((r = digest_resolve(c, &p, &req, digest)) < 0)
    return reply_error(c, r);

  /* The covered headers are the request's plus the Content-Digest we return. */
  for (size_t i = 0; i < p.n_headers; i++) {
    if (strcasecmp(p.headers[i].name, "content-digest") == 0)
      have_digest_header = true;
    /* The agent writes Signature-Agent; covering "signature-agent" means its value. */
    if (strcasecmp(p.headers[i].name, "signature-agent") == 0)
      return reply_error(c, set_err(c, MCPSIG_EPARAM,
                                    "sign.http: the agent writes the Signature-Agent header itself; to cover it, "
                                    "name \"signature-agent\" in components"));
  }
  headers = calloc(p.n_headers + 1, sizeof(*headers));
  if (!headers)
    return reply_error(c, -ENOMEM);
  if (p.n_headers > 0)
    memcpy(headers, p.headers, p.n_headers * sizeof(*headers));
  if (!have_digest_header)
    headers[p.n_headers++] = (struct proto_pair){ "content-digest", digest };
  req.headers = headers;
  req.n_headers = p.n_headers;

  if ((r = httpsig_plan_build(&req, p.accept_signature, p.label, p.components, p.n_components, &plan, c->err,
                              sizeof(c->err))) < 0)
    goto out;

  b = agent_binding_find(c->a, id, origin);
  bool want_pending = p.key && strcmp(p.key, "pending") == 0;
  if (want_pending && (!b || !b->has_pending)) {
    r = set_err(c, MCPSIG_ENOROTATION, "no rotation is pending for %s %s, so there is no pending key", id->name,
                origin);
    goto out;
  }
  /* Everything the server asked for is checked before a first contact
   * creates a binding: a refused request changes nothing. The server's
   * Accept-Signature alg, when no list is given, is a list of one. */
  const char *const *accept = p.algorithms;
  size_t n_accept = p.n_algorithms;
  if (n_accept == 0 && plan.server_alg) {
    accept = (const char *const *)&plan.server_alg;
    n_accept = 1;
  }
  key_alg alg = 0;
  if ((r = alg_choose(c, ALG_NAMES_HTTPSIG, accept, n_accept, id, b, &alg)) < 0) {
    if (accept != p.algorithms)
      r = MCPSIG_EACCEPT; /* the problem is in the server's Accept-Signature */
    goto out;
  }
  if (plan.server_alg && strcmp(plan.server_alg, key_alg_name(alg)) != 0) {
    r = set_err(c, MCPSIG_EACCEPT, "the server asks for algorithm \"%.32s\", but this binding's key is %s",
                plan.server_alg, key_alg_name(alg));
    goto out;
  }
  if (plan.server_keyid && !b) {
    r = set_err(c, MCPSIG_EACCEPT, "the server asks for keyid \"%.64s\", but %s has no key for %s yet",
                plan.server_keyid, id->name, origin);
    goto out;
  }
  if (!b) {
    /* Build the base once with placeholders first: a request that cannot
     * be signed must not create a binding. */
    struct httpsig_params dry = { .created = 0 };
    struct buf base = BUF_INIT, sp = BUF_INIT;
    req.signature_agent = "\"data:\""; /* the key, and so its value, does not exist yet */
    r = httpsig_base_build(&req, plan.components, plan.n_components, &dry, &base, &sp, c->err, sizeof(c->err));
    req.signature_agent = NULL;
    buf_free(&base);
    buf_free(&sp);
    if (r < 0)
      goto out;
    if ((r = agent_binding_get(c->a, id, origin, true, alg, &b, &created_binding, c->err, sizeof(c->err))) < 0)
      goto out;
    log_binding_created(c->peer, b);
  }
  k = &b->active;
  if (want_pending)
    k = &b->pending;
  if ((r = key_check(c->a->pool, k)) < 0)
    goto out;
  if (plan.server_keyid && strcmp(plan.server_keyid, k->keyid) != 0) {
    r = set_err(c, MCPSIG_EACCEPT, "the server asks for keyid \"%.64s\", but this binding's key is %s",
                plan.server_keyid, k->keyid);
    goto out;
  }

  int64_t created = agent_now(c->a);
  const char *signature_agent = NULL;
  if ((r = key_public_values(k, NULL, &signature_agent)) < 0)
    goto out;
  req.signature_agent = signature_agent;
  if ((r = sign_one(c, &req, &plan, b, k, created, &out)) < 0)
    goto out;
  c->a->n_signatures++;
  log_signature(c->peer, b, k, plan.label);
  if (plan.server_tag && strcmp(plan.server_tag, b->tag) != 0)
    log_info(c->peer, "server asked for tag \"%.64s\"; kept the identity tag %s (SEP-2752 §2.5)", plan.server_tag,
             b->tag);

  struct proto_sign_result res = {
    .headers = { digest, buf_cstr(&out.input), buf_cstr(&out.signature), signature_agent },
    .has_headers = true,
    .keyid = k->keyid, .tag = b->tag, .label = plan.label, .alg = key_alg_name(k->alg), .created = created,
  };
  r = reply_result(c, &proto_sign_result_schema, &res);
out:
  if (r < 0)
    r = reply_error(c, r);
  httpsig_plan_free(&plan);
  wipe_pairs(headers, p.n_headers); /* the request's pairs, and the Content-Digest we added */
  buf_free(&out.input);
  buf_free(&out.signature);
  free(headers);
  (void)created_binding;
  return r;
}

/* ---- rotation ---- */

static void notify(struct call *c, const char *event, const struct binding *b, const char *old_keyid,
                   const char *new_keyid) {
  struct proto_rotation_event ev = { event, b->identity->name, b->origin, b->tag, old_keyid, new_keyid };
  log_rotation(c->peer, event, b, old_keyid, new_keyid);
  if (c->a->notify)
    c->a->notify(c->a->notify_data, &ev);
}

/* The binding a rotation method names; rotations never create one. */
static int rotate_target(struct call *c, const char *identity, const char *url, struct binding **ret) {
  struct identity *id = NULL;
  char origin[MCPSIG_MAX_ORIGIN_LEN + 1];
  int r;
  if ((r = identity_resolve(c, identity, &id)) < 0 || (r = origin_resolve(c, url, origin)) < 0)
    return r;
  *ret = agent_binding_find(c->a, id, origin);
  if (!*ret)
    return set_err(c, MCPSIG_ENOBINDING, "%s has no binding for %s, so there is no key to rotate", id->name, origin);
  return 0;
}

static int binding_reply(struct call *c, struct binding *b) {
  struct proto_binding res;
  binding_describe(b, &res);
  return reply_result(c, &proto_binding_schema, &res);
}

static int m_rotate(struct call *c, const char *step) {
  struct proto_rotate_params p;
  struct binding *b = NULL;
  char old_keyid[KEY_KEYID_LEN + 1], new_keyid[KEY_KEYID_LEN + 1];
  int r;

  if ((r = decode(c, &proto_rotate_params_schema, &p)) < 0 || (r = rotate_target(c, p.identity, p.origin, &b)) < 0 ||
      (r = key_check(c->a->pool, &b->active)) < 0)
    return reply_error(c, r);
  memcpy(old_keyid, b->active.keyid, sizeof(old_keyid));
  snprintf(new_keyid, sizeof(new_keyid), "%s", b->has_pending ? b->pending.keyid : "");
  if (strcmp(step, "status") == 0)
    return binding_reply(c, b);
  if (strcmp(step, "begin") == 0) {
    if ((r = agent_rotate_begin(c->a, b, c->err, sizeof(c->err))) < 0)
      return reply_error(c, r);
    snprintf(new_keyid, sizeof(new_keyid), "%s", b->pending.keyid);
  } else if (strcmp(step, "commit") == 0) {
    if ((r = agent_rotate_commit(c->a, b, c->err, sizeof(c->err))) < 0)
      return reply_error(c, r);
  } else {
    if ((r = agent_rotate_abort(c->a, b, c->err, sizeof(c->err))) < 0)
      return reply_error(c, r);
  }
  crash_point(step, NULL); /* done and durable, not yet answered */
  notify(c, step, b, old_keyid, new_keyid);
  return binding_reply(c, b);
}

static int m_rotate_begin(struct call *c) { return m_rotate(c, "begin"); }
static int m_rotate_commit(struct call *c) { return m_rotate(c, "commit"); }
static int m_rotate_abort(struct call *c) { return m_rotate(c, "abort"); }
static int m_rotate_status(struct call *c) { return m_rotate(c, "status"); }

/*
 * The agent writes the rotateKey body itself from the pending key, so
 * sig-new can only ever cover a body announcing that key: a host cannot
 * obtain sig-new over a newKey of its choosing.
 */
static int rotate_body(struct call *c, const struct proto_scalar *id, const char *new_jwk, char **ret_body) {
  json_error_t jerr;
  json_t *jwk = json_loads(new_jwk, 0, &jerr);
  json_t *jid = id->str ? json_string(id->str) : json_integer((json_int_t)id->num);
  if (!jwk || !jid) {
    json_decref(jwk);
    json_decref(jid);
    return jid ? MCPSIG_EINTERNAL : set_err(c, MCPSIG_EPARAM, "sign.rotate: id is not valid UTF-8");
  }
  json_t *o = json_pack("{s:s, s:o, s:s, s:{s:o}}", "jsonrpc", "2.0", "id", jid, "method", "signatures/rotateKey",
                        "params", "newKey", jwk);
  if (!o)
    return -ENOMEM;
  *ret_body = json_dumps(o, JSON_COMPACT);
  json_decref(o);
  return *ret_body ? 0 : -ENOMEM;
}

static int m_sign_rotate(struct call *c) {
  struct proto_rotate_sign_params p;
  struct httpsig_request req;
  struct httpsig_plan plan;
  struct binding *b = NULL;
  struct proto_pair *headers = NULL;
  struct sign_out old = { BUF_INIT, BUF_INIT, "" }, new = { BUF_INIT, BUF_INIT, "" };
  struct buf input = BUF_INIT, signature = BUF_INIT;
  char digest[MCPSIG_CONTENT_DIGEST_LEN];
  char *body = NULL, *signature_agent = NULL;
  const char *jwks[2];
  int r;

  memset(&plan, 0, sizeof(plan));
  if ((r = decode(c, &proto_rotate_sign_params_schema, &p)) < 0 ||
      (r = httpsig_request_init(&req, "POST", p.uri, p.headers, p.n_headers, c->err, sizeof(c->err))) < 0 ||
      (r = rotate_target(c, p.identity, p.origin ? p.origin : p.uri, &b)) < 0)
    return reply_error(c, r);
  if ((r = agent_rotation_pending(b, c->err, sizeof(c->err))) < 0 || (r = key_check(c->a->pool, &b->active)) < 0)
    return reply_error(c, r);
  for (size_t i = 0; i < p.n_headers; i++)
    if (strcasecmp(p.headers[i].name, "content-digest") == 0 || strcasecmp(p.headers[i].name, "signature") == 0 ||
        strcasecmp(p.headers[i].name, "signature-input") == 0 ||
        strcasecmp(p.headers[i].name, "signature-agent") == 0)
      return reply_error(c, set_err(c, MCPSIG_EPARAM, "sign.rotate: the agent writes the %s header itself",
                                    p.headers[i].name));
  if ((r = key_public_values(&b->active, &jwks[0], NULL)) < 0 ||
      (r = key_public_values(&b->pending, &jwks[1], NULL)) < 0 || (r = rotate_body(c, &p.id, jwks[1], &body)) < 0 ||
      (r = proto_content_digest(body, strlen(body), digest, sizeof(digest))) < 0 ||
      (r = jwk_signature_agent_set(jwks, 2, &signature_agent)) < 0)
    goto out;

  headers = calloc(p.n_headers + 1, sizeof(*headers));
  if (!headers) {
    r = -ENOMEM;
    goto out;
  }
  if (p.n_headers > 0)
    memcpy(headers, p.headers, p.n_headers * sizeof(*headers));
  headers[p.n_headers] = (struct proto_pair){ "content-digest", digest };
  req.headers = headers;
  req.n_headers = p.n_headers + 1;

  /* Both signatures cover the full SEP set and share created and tag;
   * each has its own nonce (SPEC-NOTES §9.9). */
  int64_t created = agent_now(c->a);
  if ((r = httpsig_plan_build(&req, NULL, "sig-old", NULL, 0, &plan, c->err, sizeof(c->err))) < 0 ||
      (r = sign_one(c, &req, &plan, b, &b->active, created, &old)) < 0)
    goto out;
  snprintf(plan.label, sizeof(plan.label), "sig-new");
  if ((r = sign_one(c, &req, &plan, b, &b->pending, created, &new)) < 0)
    goto out;
  if (strcmp(old.nonce, new.nonce) == 0) {
    r = set_err(c, MCPSIG_EINTERNAL, "the random source gave one nonce twice; refusing to sign");
    goto out;
  }
  if ((r = buf_printf(&input, "%s, %s", buf_cstr(&old.input), buf_cstr(&new.input))) < 0 ||
      (r = buf_printf(&signature, "%s, %s", buf_cstr(&old.signature), buf_cstr(&new.signature))) < 0)
    goto out;
  c->a->n_signatures += 2;
  log_signature(c->peer, b, &b->active, "sig-old");
  log_signature(c->peer, b, &b->pending, "sig-new");

  struct proto_rotate_sign_result res = {
    .body = (const unsigned char *)body, .body_len = strlen(body), .has_body = true,
    .headers = { digest, buf_cstr(&input), buf_cstr(&signature), signature_agent },
    .has_headers = true,
    .tag = b->tag, .keyid = b->active.keyid, .new_keyid = b->pending.keyid, .new_jwk = jwks[1],
    .created = created,
  };
  crash_point("signed", NULL);
  r = reply_result(c, &proto_rotate_sign_result_schema, &res);
out:
  wipe_pairs(p.headers, p.n_headers);
  if (r < 0)
    r = reply_error(c, r);
  httpsig_plan_free(&plan);
  buf_free(&old.input);
  buf_free(&old.signature);
  buf_free(&new.input);
  buf_free(&new.signature);
  buf_free(&input);
  buf_free(&signature);
  free(headers);
  free(signature_agent);
  if (body)
    json_text_free(body);
  return r;
}

/* ---- subscribe ---- */

static int m_subscribe(struct call *c) {
  char dummy;
  int r = decode(c, &proto_empty_schema, &dummy);
  if (r < 0)
    return reply_error(c, r);
  if (c->peer) /* in-process callers (tests, the fuzzer) have no connection */
    c->peer->subscribed = true;
  return reply_result(c, &proto_empty_schema, NULL);
}

/* ---- dpop.proof ---- */

/*
 * An RFC 9449 proof for one request, with the key of the binding (identity,
 * origin). The origin is the key scope, named by the caller: the token
 * endpoint and the MCP server are different origins, but the token is bound
 * to one key, so both get the proofs of the MCP server's binding.
 */
static int m_dpop_proof(struct call *c) {
  struct proto_dpop_params p;
  struct identity *id = NULL;
  struct binding *b;
  char origin[MCPSIG_MAX_ORIGIN_LEN + 1], htu[MCPSIG_MAX_STR_LEN + 1];
  unsigned char raw[DPOP_JTI_BYTES];
  char jti[sodium_base64_ENCODED_LEN(DPOP_JTI_BYTES, sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
  char *jws = NULL;
  bool created = false;
  key_alg alg = 0;
  int r;

  if ((r = decode(c, &proto_dpop_params_schema, &p)) < 0 || (r = identity_resolve(c, p.identity, &id)) < 0 ||
      (r = origin_resolve(c, p.origin, origin)) < 0 || (r = dpop_check_htm(p.htm, c->err, sizeof(c->err))) < 0 ||
      (p.nonce && (r = dpop_check_nonce(p.nonce, c->err, sizeof(c->err))) < 0) ||
      (p.access_token && (r = dpop_check_token(p.access_token, c->err, sizeof(c->err))) < 0))
    return reply_error(c, r);
  if ((r = uri_htu(p.htu, htu, sizeof(htu), c->err, sizeof(c->err))) < 0) {
    char why[ERRLEN];
    snprintf(why, sizeof(why), "%s", c->err);
    return reply_error(c, set_err(c, r, "htu: %s", why));
  }
  b = agent_binding_find(c->a, id, origin);
  if ((r = alg_choose(c, ALG_NAMES_JOSE, p.algorithms, p.n_algorithms, id, b, &alg)) < 0)
    return reply_error(c, r);
  if (!b) {
    if ((r = agent_binding_get(c->a, id, origin, true, alg, &b, &created, c->err, sizeof(c->err))) < 0)
      return reply_error(c, r);
    log_binding_created(c->peer, b);
  }
  if ((r = key_check(c->a->pool, &b->active)) < 0)
    return reply_error(c, r);
  agent_random(c->a, raw, sizeof(raw));
  sodium_bin2base64(jti, sizeof(jti), raw, sizeof(raw), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  struct dpop_claims cl = {
    .alg = key_jose_alg(b->active.alg, p.algorithms, p.n_algorithms),
    .jti = jti, .htm = p.htm, .htu = htu, .iat = agent_now(c->a),
    .access_token = p.access_token, .nonce = p.nonce,
  };
  if ((r = dpop_proof(c->a->pool, &b->active, &cl, &jws)) < 0)
    return reply_error(c, r);
  c->a->n_signatures++;
  log_signature(c->peer, b, &b->active, "dpop");
  struct proto_dpop_result res = { jws, b->active.keyid, cl.alg, created };
  r = reply_result(c, &proto_dpop_result_schema, &res);
  free(jws);
  wipe_str(p.access_token);
  return r;
}

/* ---- the envelope ---- */

static const struct {
  const char *name;
  int (*handler)(struct call *c);
} methods[] = {
  { "hello", m_hello },
  { "agent.status", m_agent_status },
  { "identity.list", m_identity_list },
  { "identity.public", m_identity_public },
  { "identity.add", m_identity_add },
  { "identity.remove", m_identity_remove },
  { "identity.import", m_identity_import },
  { "sign.http", m_sign_http },
  { "dpop.proof", m_dpop_proof },
  { "rotate.begin", m_rotate_begin },
  { "rotate.commit", m_rotate_commit },
  { "rotate.abort", m_rotate_abort },
  { "rotate.status", m_rotate_status },
  { "sign.rotate", m_sign_rotate },
  { "subscribe", m_subscribe },
};

size_t dispatch_method_count(void) {
  return sizeof(methods) / sizeof(methods[0]);
}

const char *dispatch_method_name(size_t i) {
  return i < dispatch_method_count() ? methods[i].name : NULL;
}

int dispatch_message(struct agent *a, struct dispatch_peer *peer, const msgpack_object *msg,
                     msgpack_packer *pk) {
  struct call c = { .a = a, .peer = peer, .pk = pk };
  msgpack_zone zone;
  int r;

  c.err[0] = '\0';
  if (msg->type != MSGPACK_OBJECT_ARRAY || msg->via.array.size < 1 ||
      msg->via.array.ptr[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
    goto bad_envelope;
  const msgpack_object *f = msg->via.array.ptr;
  uint64_t kind = f[0].via.u64;
  if (kind == PROTO_NOTIFICATION && msg->via.array.size == 3)
    return DISPATCH_NO_REPLY; /* the agent defines no client notifications */
  if (kind != PROTO_REQUEST || msg->via.array.size != 4 || f[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
      f[1].via.u64 > UINT32_MAX)
    goto bad_envelope;
  c.msgid = &f[1];
  if (f[2].type != MSGPACK_OBJECT_STR) {
    set_err(&c, MCPSIG_EPROTO, "method must be a string");
    return reply_error(&c, MCPSIG_EPROTO);
  }
  if (f[3].type != MSGPACK_OBJECT_ARRAY || f[3].via.array.size > 1) {
    set_err(&c, MCPSIG_EPROTO, "params must be an array holding at most one map");
    return reply_error(&c, MCPSIG_EPROTO);
  }
  static const msgpack_object nil = { .type = MSGPACK_OBJECT_NIL };
  c.params = f[3].via.array.size == 1 ? &f[3].via.array.ptr[0] : &nil;
  for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
    size_t n = strlen(methods[i].name);
    if (f[2].via.str.size != n || memcmp(f[2].via.str.ptr, methods[i].name, n) != 0)
      continue;
    msgpack_zone_init(&zone, 2048);
    c.zone = &zone;
    r = methods[i].handler(&c);
    msgpack_zone_destroy(&zone);
    return r;
  }
  set_err(&c, MCPSIG_EMETHOD, "unknown method \"%.*s\"", (int)(f[2].via.str.size > 64 ? 64 : f[2].via.str.size),
          f[2].via.str.ptr);
  for (char *p = c.err; *p; p++)
    if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
      *p = '?';
  return reply_error(&c, MCPSIG_EMETHOD);

bad_envelope:
  proto_error_encode(pk, NULL, MCPSIG_EPROTO, "not a msgpack-RPC request [0, msgid, method, [params]]");
  return MCPSIG_EPROTO;
}

ssize_t dispatch_bytes(struct agent *a, struct dispatch_peer *peer, const unsigned char *buf, size_t len,
                       msgpack_packer *pk) {
  return dispatch_bytes_bounded(a, peer, buf, len, pk, NULL, SIZE_MAX, NULL);
}

ssize_t dispatch_bytes_bounded(struct agent *a, struct dispatch_peer *peer, const unsigned char *buf, size_t len,
                               msgpack_packer *pk, const msgpack_sbuffer *out, size_t out_max, bool *ret_more) {
  size_t used = 0;
  if (ret_more)
    *ret_more = false;
  while (used < len) {
    ssize_t n = proto_frame_scan(buf + used, len - used, MCPSIG_MAX_MSG_LEN, MCPSIG_MAX_DEPTH);
    if (n == 0)
      break;
    if (n > 0 && out && out->size >= out_max) {
      /* A complete request is left, and the replies so far fill the budget. */
      if (ret_more)
        *ret_more = true;
      break;
    }
    if (n < 0) {
      proto_error_encode(pk, NULL, (int)n, NULL);
      return n;
    }
    msgpack_unpacked up;
    size_t off = 0;
    msgpack_unpacked_init(&up);
    int ur = msgpack_unpack_next(&up, (const char *)buf + used, (size_t)n, &off);
    if (ur != MSGPACK_UNPACK_SUCCESS || off != (size_t)n) {
      msgpack_unpacked_destroy(&up);
      proto_error_encode(pk, NULL, MCPSIG_EPROTO, NULL);
      return MCPSIG_EPROTO;
    }
    int r = dispatch_message(a, peer, &up.data, pk);
    msgpack_unpacked_destroy(&up);
    if (r < 0)
      return r;
    used += (size_t)n;
  }
  return (ssize_t)used;
}
