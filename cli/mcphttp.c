/* mcphttp.c: signed MCP requests over Streamable HTTP (see mcphttp.h). */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mcphttp.h"

#define MAX_SIGNED_HEADERS 8

int mcp_conn_init(struct mcp_conn *m, mcpsig_client *agent, const char *identity, const char *url, long timeout_ms) {
  memset(m, 0, sizeof(*m));
  m->agent = agent;
  m->identity = identity;
  m->url = url;
  m->timeout_ms = timeout_ms > 0 ? timeout_ms : 30000;
  m->curl = curl_easy_init();
  return m->curl ? 0 : -ENOMEM;
}

void mcp_conn_done(struct mcp_conn *m) {
  if (m->curl)
    curl_easy_cleanup(m->curl);
  m->curl = NULL;
}

void mcp_reply_free(struct mcp_reply *rep) {
  free(rep->body);
  memset(rep, 0, sizeof(*rep));
}

static size_t on_body(char *data, size_t size, size_t n, void *userdata) {
  struct mcp_reply *rep = userdata;
  size_t len = size * n;
  if (len > MCP_MAX_REPLY - rep->len)
    return 0; /* curl fails the transfer with CURLE_WRITE_ERROR */
  unsigned char *p = realloc(rep->body, rep->len + len + 1);
  if (!p)
    return 0;
  memcpy(p + rep->len, data, len);
  rep->body = p;
  rep->len += len;
  rep->body[rep->len] = '\0';
  return len;
}

/* Copies the value of header line "Name: value\r\n" into out, if it is name. */
static void header_take(const char *line, size_t len, const char *name, char *out, size_t size) {
  size_t nl = strlen(name);
  if (len <= nl || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
    return;
  const char *v = line + nl + 1, *end = line + len;
  while (v < end && (*v == ' ' || *v == '\t'))
    v++;
  while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
    end--;
  snprintf(out, size, "%.*s", (int)(end - v), v);
}

static size_t on_header(char *data, size_t size, size_t n, void *userdata) {
  struct mcp_reply *rep = userdata;
  size_t len = size * n;
  header_take(data, len, "content-type", rep->content_type, sizeof(rep->content_type));
  header_take(data, len, "mcp-session-id", rep->session_id, sizeof(rep->session_id));
  return len;
}

static int transfer(struct mcp_conn *m, const char *method, const mcpsig_header *headers, size_t n_headers,
                    const void *body, size_t len, bool once, struct mcp_reply *rep, char *err, size_t errlen) {
  struct curl_slist *list = NULL, *l;
  char line[8192 + 256];
  CURL *c = m->curl;
  int r = MCP_OK;

  memset(rep, 0, sizeof(*rep));
  curl_easy_reset(c);
  for (size_t i = 0; i < n_headers; i++) {
    snprintf(line, sizeof(line), "%s: %s", headers[i].name, headers[i].value);
    if (!(l = curl_slist_append(list, line)))
      goto nomem;
    list = l;
  }
  /* curl adds "Expect: 100-continue" to larger bodies; nothing here needs it. */
  if (!(l = curl_slist_append(list, "Expect:")))
    goto nomem;
  list = l;
  curl_easy_setopt(c, CURLOPT_URL, m->url);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, m->timeout_ms);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, m->timeout_ms);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, rep);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, rep);
  if (once) {
    /* libcurl silently resends a request whose reused connection closed
     * before any reply. For rotateKey that second copy would be refused as
     * a replay after the first was applied, and read as a refusal: so it
     * goes on a connection of its own, which curl never retries. */
    curl_easy_setopt(c, CURLOPT_FRESH_CONNECT, 1L);
    curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L);
  }
  if (strcmp(method, "POST") == 0) {
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
  } else {
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
  }
  CURLcode cr = curl_easy_perform(c);
  if (cr != CURLE_OK) {
    snprintf(err, errlen, "%s %s: %s", method, m->url, curl_easy_strerror(cr));
    r = cr == CURLE_WRITE_ERROR ? MCP_EREPLY : MCP_ETRANSPORT;
    mcp_reply_free(rep);
  } else {
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &rep->status);
  }
  curl_slist_free_all(list);
  return r;
nomem:
  curl_slist_free_all(list);
  snprintf(err, errlen, "out of memory");
  return MCP_ETRANSPORT;
}

/* The request's own headers, which the signature covers as they are sent. */
static size_t session_headers(const struct mcp_conn *m, bool has_body, mcpsig_header *h) {
  size_t n = 0;
  if (has_body) {
    h[n++] = (mcpsig_header){ "Content-Type", "application/json" };
    h[n++] = (mcpsig_header){ "Accept", "application/json, text/event-stream" };
  }
  if (m->protocol_version[0])
    h[n++] = (mcpsig_header){ "MCP-Protocol-Version", m->protocol_version };
  if (m->session_id[0])
    h[n++] = (mcpsig_header){ "Mcp-Session-Id", m->session_id };
  return n;
}

/* The session's headers plus the four the agent returned, then the transfer. */
static int send_signed(struct mcp_conn *m, const char *method, const void *body, size_t len, const char *digest,
                       const char *input, const char *signature, const char *agent, bool once,
                       struct mcp_reply *rep, char *err, size_t errlen) {
  mcpsig_header h[MAX_SIGNED_HEADERS];
  size_t n = session_headers(m, body != NULL, h);
  h[n++] = (mcpsig_header){ "Content-Digest", digest };
  h[n++] = (mcpsig_header){ "Signature-Input", input };
  h[n++] = (mcpsig_header){ "Signature", signature };
  h[n++] = (mcpsig_header){ "Signature-Agent", agent };
  return transfer(m, method, h, n, body, len, once, rep, err, errlen);
}

int mcp_send(struct mcp_conn *m, const char *method, const char *key, const char *body, struct mcp_reply *rep,
             char *err, size_t errlen) {
  mcpsig_header h[MAX_SIGNED_HEADERS];
  mcpsig_signature *sig = NULL;

  memset(rep, 0, sizeof(*rep));
  mcpsig_sign_request req = {
    .identity = m->identity, .method = method, .uri = m->url, .headers = h,
    .n_headers = session_headers(m, body != NULL, h),
    .body = body ? body : "", .body_len = body ? strlen(body) : 0, .key = key,
  };
  int r = mcpsig_sign_http(m->agent, &req, &sig);
  if (r < 0) {
    const char *why = mcpsig_last_error(m->agent);
    snprintf(err, errlen, "the agent did not sign the %s: %s", method, why && *why ? why : mcpsig_strerror(r));
    return MCP_ESIGN;
  }
  snprintf(m->keyid, sizeof(m->keyid), "%s", sig->keyid);
  r = send_signed(m, method, body, body ? strlen(body) : 0, sig->content_digest, sig->signature_input,
                  sig->signature, sig->signature_agent, false, rep, err, errlen);
  mcpsig_signature_free(sig);
  return r;
}

int mcp_send_presigned(struct mcp_conn *m, const unsigned char *body, size_t len, const char *content_digest,
                       const char *signature_input, const char *signature, const char *signature_agent,
                       struct mcp_reply *rep, char *err, size_t errlen) {
  memset(rep, 0, sizeof(*rep));
  return send_signed(m, "POST", body, len, content_digest, signature_input, signature, signature_agent, true, rep,
                     err, errlen);
}

static json_t *find_id(json_t *msg, json_int_t id) {
  if (json_is_array(msg)) {
    size_t i;
    json_t *v;
    json_array_foreach(msg, i, v) {
      json_t *f = find_id(v, id);
      if (f)
        return f;
    }
    return NULL;
  }
  json_t *jid = json_object_get(msg, "id");
  if (json_is_integer(jid) && json_integer_value(jid) == id &&
      (json_object_get(msg, "result") || json_object_get(msg, "error")))
    return msg;
  return NULL;
}

/* Each event's data lines joined with LF, as the SSE spec reads them. */
static json_t *sse_find(const struct mcp_reply *rep, json_int_t id) {
  const char *p = (const char *)rep->body, *end = p + rep->len;
  char *data = malloc(rep->len + 1);
  size_t dl = 0;
  json_t *found = NULL;

  if (!data)
    return NULL;
  while (p <= end && !found) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    const char *le = eol ? eol : end;
    size_t ll = (size_t)(le - p);
    if (ll > 0 && p[ll - 1] == '\r')
      ll--;
    if (ll == 0) {
      /* A blank line (or the end) dispatches the event. */
      if (dl > 0) {
        json_t *msg = json_loadb(data, dl, 0, NULL);
        json_t *f = msg ? find_id(msg, id) : NULL;
        if (f)
          found = json_incref(f);
        json_decref(msg);
      }
      dl = 0;
    } else if (ll >= 5 && memcmp(p, "data:", 5) == 0) {
      const char *v = p + 5;
      size_t vl = ll - 5;
      if (vl > 0 && *v == ' ') {
        v++;
        vl--;
      }
      if (dl > 0)
        data[dl++] = '\n';
      memcpy(data + dl, v, vl);
      dl += vl;
    }
    if (!eol)
      break;
    p = eol + 1;
  }
  if (!found && dl > 0) {
    json_t *msg = json_loadb(data, dl, 0, NULL);
    json_t *f = msg ? find_id(msg, id) : NULL;
    if (f)
      found = json_incref(f);
    json_decref(msg);
  }
  free(data);
  return found;
}

json_t *mcp_response(const struct mcp_reply *rep, json_int_t id) {
  if (!rep->body)
    return NULL;
  if (strncasecmp(rep->content_type, "text/event-stream", 17) == 0)
    return sse_find(rep, id);
  json_t *msg = json_loadb((const char *)rep->body, rep->len, 0, NULL);
  json_t *f = msg ? find_id(msg, id) : NULL;
  if (f)
    json_incref(f);
  json_decref(msg);
  return f;
}

int mcp_open(struct mcp_conn *m, const char *key, long *ret_status, char *err, size_t errlen) {
  static const char init[] =
    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"" MCP_PROTOCOL_VERSION
    "\",\"capabilities\":{},\"clientInfo\":{\"name\":\"mcpsig\",\"version\":\"" PACKAGE_VERSION "\"}}}";
  static const char initialized[] = "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}";
  struct mcp_reply rep;
  int r;

  m->session_id[0] = m->protocol_version[0] = '\0';
  *ret_status = 0;
  if ((r = mcp_send(m, "POST", key, init, &rep, err, errlen)) < 0)
    return r;
  *ret_status = rep.status;
  json_t *res = mcp_response(&rep, 1);
  json_t *result = json_object_get(res, "result");
  const char *version = json_string_value(json_object_get(result, "protocolVersion"));
  if (rep.status / 100 != 2 || !result || !version || !rep.session_id[0]) {
    if (rep.status / 100 != 2)
      snprintf(err, errlen, "the server answered initialize with HTTP %ld", rep.status);
    else
      snprintf(err, errlen, "the server's initialize reply has no %s",
               !result ? "JSON-RPC result" : !version ? "protocolVersion" : "Mcp-Session-Id");
    json_decref(res);
    mcp_reply_free(&rep);
    return MCP_EREPLY;
  }
  snprintf(m->session_id, sizeof(m->session_id), "%s", rep.session_id);
  snprintf(m->protocol_version, sizeof(m->protocol_version), "%s", version);
  json_decref(res);
  mcp_reply_free(&rep);
  if ((r = mcp_send(m, "POST", key, initialized, &rep, err, errlen)) < 0)
    return r;
  if (rep.status / 100 != 2) {
    snprintf(err, errlen, "the server answered notifications/initialized with HTTP %ld", rep.status);
    r = MCP_EREPLY;
  }
  mcp_reply_free(&rep);
  return r;
}

int mcp_close_session(struct mcp_conn *m, const char *key, char *err, size_t errlen) {
  struct mcp_reply rep;
  if (!m->session_id[0])
    return MCP_OK;
  int r = mcp_send(m, "DELETE", key, NULL, &rep, err, errlen);
  if (r == MCP_OK && rep.status / 100 != 2 && rep.status != 405) {
    snprintf(err, errlen, "the server answered DELETE with HTTP %ld", rep.status);
    r = MCP_EREPLY;
  }
  mcp_reply_free(&rep);
  m->session_id[0] = '\0';
  return r;
}
