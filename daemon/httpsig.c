/*
 * httpsig.c: RFC 9421 signature bases and fields, SEP-2752 profile.
 *
 * Every byte here ends up hashed or signed, and verifiers rebuild the same
 * bytes independently, so the rules are strict: lowercase component names,
 * each at most once, ASCII values without CR/LF/NUL, canonical RFC 8941
 * serialization, LF between lines and none after the last.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "httpsig.h"
#include "errmsg.h"
#include "mcpsig.h"
#include "sfv.h"

static bool is_tchar(int c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool token_valid(const char *s) {
  if (!*s)
    return false;
  for (; *s; s++)
    if (!is_tchar((unsigned char)*s))
      return false;
  return true;
}

int httpsig_request_init(struct httpsig_request *req, const char *method, const char *uri,
                         const struct proto_pair *headers, size_t n_headers, char *err, size_t errlen) {
  memset(req, 0, sizeof(*req));
  if (!method || !token_valid(method))
    return errmsg(err, errlen, MCPSIG_EPARAM, "method must be an HTTP token such as POST");
  if (!uri)
    return errmsg(err, errlen, MCPSIG_EURI, "missing target URI");
  int r = uri_parse_target(uri, &req->target, err, errlen);
  if (r < 0)
    return r;
  for (size_t i = 0; i < n_headers; i++)
    if (!token_valid(headers[i].name))
      return errmsg(err, errlen, MCPSIG_EHEADER, "header name \"%.64s\" is not a valid HTTP field name",
                  headers[i].name);
  req->method = method;
  req->uri = uri;
  req->headers = headers;
  req->n_headers = n_headers;
  return 0;
}

static const char *const derived_components[] = {
  "@method", "@target-uri", "@authority", "@scheme", "@request-target", "@path", "@query", NULL,
};

int httpsig_component_check(const char *name, char *err, size_t errlen) {
  if (!name || !*name)
    return errmsg(err, errlen, MCPSIG_ECOMPONENT, "empty component name");
  if (name[0] == '@') {
    for (size_t i = 0; derived_components[i]; i++)
      if (strcmp(name, derived_components[i]) == 0)
        return 0;
    if (strcmp(name, "@query-param") == 0)
      return errmsg(err, errlen, MCPSIG_ECOMPONENT,
                  "component \"@query-param\" needs a name parameter, which this agent does not support");
    if (strcmp(name, "@status") == 0)
      return errmsg(err, errlen, MCPSIG_ECOMPONENT, "component \"@status\" exists only in responses");
    return errmsg(err, errlen, MCPSIG_ECOMPONENT, "unknown derived component \"%.64s\"", name);
  }
  for (const char *p = name; *p; p++) {
    if (*p >= 'A' && *p <= 'Z')
      return errmsg(err, errlen, MCPSIG_ECOMPONENT, "component \"%.64s\" must be lowercase (RFC 9421 §2.1)", name);
    if (!is_tchar((unsigned char)*p))
      return errmsg(err, errlen, MCPSIG_ECOMPONENT, "component \"%.64s\" is not a valid field name", name);
  }
  return 0;
}

/* Leading and trailing SP and HTAB are not part of a field value (RFC 9110 §5.5). */
static void trim(const char **s, size_t *len) {
  while (*len && (**s == ' ' || **s == '\t')) {
    (*s)++;
    (*len)--;
  }
  while (*len && ((*s)[*len - 1] == ' ' || (*s)[*len - 1] == '\t'))
    (*len)--;
}

int httpsig_field_value(const struct httpsig_request *req, const char *lcname, struct buf *out, bool *ret_found) {
  bool found = false;
  for (size_t i = 0; i < req->n_headers; i++) {
    if (strcasecmp(req->headers[i].name, lcname) != 0)
      continue;
    const char *v = req->headers[i].value;
    size_t n = strlen(v);
    trim(&v, &n);
    if (found && buf_puts(out, ", ") < 0)
      return -ENOMEM;
    if (buf_append(out, v, n) < 0)
      return -ENOMEM;
    found = true;
  }
  *ret_found = found;
  return 0;
}

static int component_value(const struct httpsig_request *req, const char *name, struct buf *out, char *err,
                           size_t errlen) {
  const struct uri *u = &req->target;
  int r = 0;

  if (strcmp(name, "@method") == 0)
    r = buf_puts(out, req->method);
  else if (strcmp(name, "@target-uri") == 0)
    r = buf_puts(out, req->uri);
  else if (strcmp(name, "@authority") == 0)
    r = buf_append(out, u->authority, u->authority_len);
  else if (strcmp(name, "@scheme") == 0)
    r = buf_puts(out, u->scheme);
  else if (strcmp(name, "@path") == 0)
    r = buf_append(out, u->path, u->path_len);
  else if (strcmp(name, "@query") == 0) {
    r = buf_putc(out, '?');
    if (r == 0 && u->has_query)
      r = buf_append(out, u->query, u->query_len);
  } else if (strcmp(name, "@request-target") == 0) {
    r = buf_append(out, u->path, u->path_len);
    if (r == 0 && u->has_query) {
      r = buf_putc(out, '?');
      if (r == 0)
        r = buf_append(out, u->query, u->query_len);
    }
  } else if (name[0] == '@') {
    return httpsig_component_check(name, err, errlen);
  } else if (strcmp(name, "signature-agent") == 0) {
    /* The agent writes Signature-Agent itself: covering it means covering that value. */
    if (!req->signature_agent)
      return errmsg(err, errlen, MCPSIG_ECOMPONENT, "signature-agent cannot be covered here");
    r = buf_puts(out, req->signature_agent);
  } else {
    bool found;
    size_t start = out->len;
    if ((r = httpsig_field_value(req, name, out, &found)) < 0)
      return r;
    if (!found)
      return errmsg(err, errlen, MCPSIG_EHEADER, "covered header \"%.64s\" is missing from the request", name);
    for (size_t i = start; i < out->len; i++) {
      unsigned char c = (unsigned char)out->p[i];
      if ((c < 0x20 && c != '\t') || c >= 0x7f)
        return errmsg(err, errlen, MCPSIG_EHEADER,
                    "covered header \"%.64s\" contains CR, LF, NUL, a control character or non-ASCII", name);
    }
  }
  return r < 0 ? -ENOMEM : 0;
}

static int sigparams_build(const char *const *components, size_t n, const struct httpsig_params *p, struct buf *out,
                           char *err, size_t errlen) {
  int r = buf_putc(out, '(');
  for (size_t i = 0; r == 0 && i < n; i++) {
    if (i > 0)
      r = buf_putc(out, ' ');
    if (r == 0)
      r = sfv_put_string(out, components[i]);
  }
  if (r == 0)
    r = buf_puts(out, ");created=");
  if (r == 0)
    r = sfv_put_integer(out, p->created);
  if (r == 0 && p->has_expires) {
    r = buf_puts(out, ";expires=");
    if (r == 0)
      r = sfv_put_integer(out, p->expires);
  }
  if (r == 0 && p->nonce) {
    r = buf_puts(out, ";nonce=");
    if (r == 0)
      r = sfv_put_string(out, p->nonce);
  }
  if (r == 0 && p->keyid) {
    r = buf_puts(out, ";keyid=");
    if (r == 0)
      r = sfv_put_string(out, p->keyid);
  }
  if (r == 0 && p->tag) {
    r = buf_puts(out, ";tag=");
    if (r == 0)
      r = sfv_put_string(out, p->tag);
  }
  if (r == -EINVAL || r == -ERANGE)
    return errmsg(err, errlen, MCPSIG_EPARAM, "a signature parameter cannot be serialized as RFC 8941");
  return r;
}

int httpsig_base_build(const struct httpsig_request *req, const char *const *components, size_t n_components,
                       const struct httpsig_params *params, struct buf *base, struct buf *sigparams, char *err,
                       size_t errlen) {
  int r;

  for (size_t i = 0; i < n_components; i++) {
    if ((r = httpsig_component_check(components[i], err, errlen)) < 0)
      return r;
    for (size_t k = 0; k < i; k++)
      if (strcmp(components[k], components[i]) == 0)
        return errmsg(err, errlen, MCPSIG_ECOMPONENT, "component \"%.64s\" is listed twice", components[i]);
  }
  if ((r = sigparams_build(components, n_components, params, sigparams, err, errlen)) < 0)
    return r;
  for (size_t i = 0; i < n_components; i++) {
    if ((r = buf_putc(base, '"')) < 0 || (r = buf_puts(base, components[i])) < 0 || (r = buf_puts(base, "\": ")) < 0)
      return r;
    if ((r = component_value(req, components[i], base, err, errlen)) < 0)
      return r;
    if ((r = buf_putc(base, '\n')) < 0)
      return r;
  }
  if ((r = buf_puts(base, "\"@signature-params\": ")) < 0)
    return r;
  return buf_append(base, sigparams->p, sigparams->len);
}

int httpsig_member_input(struct buf *out, const char *label, const char *sigparams) {
  int r = sfv_put_key(out, label);
  if (r == 0)
    r = buf_putc(out, '=');
  return r == 0 ? buf_puts(out, sigparams) : r;
}

int httpsig_member_signature(struct buf *out, const char *label, const unsigned char *sig, size_t len) {
  int r = sfv_put_key(out, label);
  if (r == 0)
    r = buf_putc(out, '=');
  return r == 0 ? sfv_put_binary(out, sig, len) : r;
}

/* ---- what to cover ---- */

static bool plan_has(const struct httpsig_plan *p, const char *name) {
  for (size_t i = 0; i < p->n_components; i++)
    if (strcmp(p->components[i], name) == 0)
      return true;
  return false;
}

static int plan_add(struct httpsig_plan *p, const char *name, char *err, size_t errlen) {
  int r = httpsig_component_check(name, err, errlen);
  if (r < 0)
    return r;
  if (plan_has(p, name))
    return errmsg(err, errlen, MCPSIG_ECOMPONENT, "component \"%.64s\" is listed twice", name);
  if (p->n_components == HTTPSIG_MAX_COMPONENTS)
    return errmsg(err, errlen, MCPSIG_ECOMPONENT, "too many components (at most %d)", HTTPSIG_MAX_COMPONENTS);
  p->components[p->n_components++] = name;
  return 0;
}

static bool request_has(const struct httpsig_request *req, const char *name) {
  for (size_t i = 0; i < req->n_headers; i++)
    if (strcasecmp(req->headers[i].name, name) == 0)
      return true;
  return false;
}

#define MCP_PARAM_PREFIX "mcp-param-"
#define MCP_PARAM_PREFIX_LEN (sizeof(MCP_PARAM_PREFIX) - 1)

/* The MCP headers covered when present (SEP-2752 §2.1, SPEC-NOTES §10.2), in this order. */
static const char *const mcp_if_present[] = { "mcp-protocol-version", "mcp-session-id", "mcp-method", "mcp-name" };

bool httpsig_mcp_header(const char *name) {
  for (size_t i = 0; i < sizeof(mcp_if_present) / sizeof(mcp_if_present[0]); i++)
    if (strcmp(name, mcp_if_present[i]) == 0)
      return true;
  return strncmp(name, MCP_PARAM_PREFIX, MCP_PARAM_PREFIX_LEN) == 0 && name[MCP_PARAM_PREFIX_LEN] != '\0';
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/*
 * Every Mcp-Param-* header of the request, lowercased, in byte order and
 * once each: a stable order that host and server can both rebuild.
 */
static int plan_add_mcp_params(struct httpsig_plan *p, const struct httpsig_request *req, char *err, size_t errlen) {
  const char *names[HTTPSIG_MAX_COMPONENTS];
  size_t n = 0, storage_len = 0, off = 0;
  int r;

  for (size_t i = 0; i < req->n_headers; i++)
    if (strncasecmp(req->headers[i].name, MCP_PARAM_PREFIX, MCP_PARAM_PREFIX_LEN) == 0 &&
        req->headers[i].name[MCP_PARAM_PREFIX_LEN] != '\0')
      storage_len += strlen(req->headers[i].name) + 1;
  if (storage_len == 0)
    return 0;
  if (!(p->mcp_storage = malloc(storage_len)))
    return -ENOMEM;
  for (size_t i = 0; i < req->n_headers; i++) {
    const char *h = req->headers[i].name;
    if (strncasecmp(h, MCP_PARAM_PREFIX, MCP_PARAM_PREFIX_LEN) != 0 || h[MCP_PARAM_PREFIX_LEN] == '\0')
      continue;
    char *lc = p->mcp_storage + off;
    size_t len = strlen(h);
    for (size_t k = 0; k <= len; k++)
      lc[k] = (char)tolower((unsigned char)h[k]);
    off += len + 1;
    bool dup = false;
    for (size_t k = 0; k < n; k++)
      dup = dup || strcmp(names[k], lc) == 0;
    if (dup)
      continue;
    if (n == HTTPSIG_MAX_COMPONENTS)
      return errmsg(err, errlen, MCPSIG_ECOMPONENT, "too many Mcp-Param-* headers to cover (at most %d components)",
                    HTTPSIG_MAX_COMPONENTS);
    names[n++] = lc;
  }
  qsort(names, n, sizeof(names[0]), cmp_str);
  for (size_t k = 0; k < n; k++)
    if (!plan_has(p, names[k]) && (r = plan_add(p, names[k], err, errlen)) < 0)
      return r;
  return 0;
}

/* The SEP-2752 §2.1 set, in the SEP's order, then the MCP headers of the 2026-07-28 revision. */
static int plan_add_profile(struct httpsig_plan *p, const struct httpsig_request *req, char *err, size_t errlen) {
  static const char *const always[] = { "@method", "@target-uri", "content-digest" };
  int r;

  for (size_t i = 0; i < 3; i++)
    if (!plan_has(p, always[i]) && (r = plan_add(p, always[i], err, errlen)) < 0)
      return r;
  for (size_t i = 0; i < sizeof(mcp_if_present) / sizeof(mcp_if_present[0]); i++)
    if (request_has(req, mcp_if_present[i]) && !plan_has(p, mcp_if_present[i]) &&
        (r = plan_add(p, mcp_if_present[i], err, errlen)) < 0)
      return r;
  return plan_add_mcp_params(p, req, err, errlen);
}

static char *str_dup_checked(const struct sfv_bare *v) {
  return v->type == SFV_STRING ? strdup(v->str) : NULL;
}

/*
 * Applies the first member of the server's Accept-Signature (RFC 9421 §5.2):
 * the same label, the same components, and every parameter. A parameter
 * value for nonce is copied verbatim; a bare nonce or created means
 * "generate". SPEC-NOTES §9.5: a requested tag does not replace the
 * client's identity tag.
 */
static int plan_apply_accept(struct httpsig_plan *p, const char *value, char *err, size_t errlen) {
  struct sfv_dict d;
  char why[128];
  size_t storage_len = 0, off = 0;
  int r = sfv_parse_dictionary(value, &d, why, sizeof(why));
  if (r == -ENOMEM)
    return r;
  if (r < 0)
    return errmsg(err, errlen, MCPSIG_EACCEPT, "Accept-Signature is not a valid RFC 8941 dictionary: %s", why);
  const struct sfv_member *m = &d.members[0];
  if (!m->is_inner_list) {
    r = errmsg(err, errlen, MCPSIG_EACCEPT, "Accept-Signature member \"%s\" is not an inner list of components", m->key);
    goto out;
  }
  for (size_t i = 0; i < m->n_items; i++) {
    if (m->items[i].value.type != SFV_STRING) {
      r = errmsg(err, errlen, MCPSIG_EACCEPT, "Accept-Signature component %zu is not a string", i + 1);
      goto out;
    }
    if (m->items[i].params.n > 0) {
      r = errmsg(err, errlen, MCPSIG_EACCEPT,
               "Accept-Signature component \"%.64s\" has parameters (;%s), which this agent does not support",
               m->items[i].value.str, m->items[i].params.v[0].key);
      goto out;
    }
    storage_len += strlen(m->items[i].value.str) + 1;
  }
  p->storage = malloc(storage_len ? storage_len : 1);
  if (!p->storage) {
    r = -ENOMEM;
    goto out;
  }
  snprintf(p->label, sizeof(p->label), "%s", m->key);
  for (size_t i = 0; i < m->n_items; i++) {
    char *name = p->storage + off;
    strcpy(name, m->items[i].value.str);
    off += strlen(name) + 1;
    if ((r = plan_add(p, name, err, errlen)) < 0) {
      char inner[160];
      snprintf(inner, sizeof(inner), "%s", err ? err : "");
      r = errmsg(err, errlen, MCPSIG_EACCEPT, "Accept-Signature: %s", inner);
      goto out;
    }
  }
  for (size_t i = 0; i < m->params.n; i++) {
    const struct sfv_param *pa = &m->params.v[i];
    bool flag = pa->value.type == SFV_BOOLEAN && pa->value.boolean;
    char **slot = NULL;

    if (strcmp(pa->key, "created") == 0) {
      /* Always sent, from our own clock (invariant 3). */
      continue;
    } else if (strcmp(pa->key, "expires") == 0) {
      p->want_expires = true;
      continue;
    } else if (strcmp(pa->key, "nonce") == 0) {
      slot = &p->server_nonce;
    } else if (strcmp(pa->key, "keyid") == 0) {
      slot = &p->server_keyid;
    } else if (strcmp(pa->key, "tag") == 0) {
      slot = &p->server_tag;
    } else if (strcmp(pa->key, "alg") == 0) {
      slot = &p->server_alg;
    } else {
      r = errmsg(err, errlen, MCPSIG_EACCEPT, "Accept-Signature asks for parameter \"%s\", which this agent does not support",
               pa->key);
      goto out;
    }
    if (flag)
      continue;
    if (pa->value.type != SFV_STRING) {
      r = errmsg(err, errlen, MCPSIG_EACCEPT, "Accept-Signature parameter \"%s\" must be a string or a bare flag", pa->key);
      goto out;
    }
    if (!(*slot = str_dup_checked(&pa->value))) {
      r = -ENOMEM;
      goto out;
    }
  }
  if (p->server_nonce && !p->server_nonce[0]) {
    r = errmsg(err, errlen, MCPSIG_EACCEPT, "Accept-Signature asks for an empty nonce");
    goto out;
  }
  r = 0;
out:
  sfv_dict_free(&d);
  return r;
}

int httpsig_plan_build(const struct httpsig_request *req, const char *accept_signature, const char *label,
                       const char *const *extra, size_t n_extra, struct httpsig_plan *ret_plan, char *err,
                       size_t errlen) {
  struct httpsig_plan p;
  int r;

  memset(&p, 0, sizeof(p));
  if (label && !sfv_key_valid(label)) {
    r = errmsg(err, errlen, MCPSIG_EPARAM, "label \"%.64s\" is not an RFC 8941 key ([a-z*][a-z0-9_.*-]*)", label);
    goto fail;
  }
  snprintf(p.label, sizeof(p.label), "%s", label ? label : "sig1");
  if (accept_signature && (r = plan_apply_accept(&p, accept_signature, err, errlen)) < 0)
    goto fail;
  /* A server that left out a SEP component would still have to reject the
   * signature (SEP-2752 §2.1), so the profile's set is always covered. */
  if ((r = plan_add_profile(&p, req, err, errlen)) < 0)
    goto fail;
  for (size_t i = 0; i < n_extra; i++) {
    /* "Cover if present": an MCP header the host names, and this request lacks. */
    if (httpsig_mcp_header(extra[i]) && !request_has(req, extra[i]))
      continue;
    if (!plan_has(&p, extra[i]) && (r = plan_add(&p, extra[i], err, errlen)) < 0)
      goto fail;
  }
  *ret_plan = p;
  return 0;
fail:
  httpsig_plan_free(&p);
  return r;
}

void httpsig_plan_free(struct httpsig_plan *plan) {
  free(plan->server_nonce);
  free(plan->server_keyid);
  free(plan->server_tag);
  free(plan->server_alg);
  free(plan->storage);
  free(plan->mcp_storage);
  memset(plan, 0, sizeof(*plan));
}
