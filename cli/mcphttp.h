/*
 * mcphttp.h: signed MCP requests over Streamable HTTP, with libcurl. Every
 * request is signed by the agent just before it is sent, over exactly the
 * headers and body that go on the wire.
 */
#ifndef MCPSIG_MCPHTTP_H
#define MCPSIG_MCPHTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <curl/curl.h>
#include <jansson.h>

#include "mcpsig.h"

#define MCP_PROTOCOL_VERSION "2025-06-18"
#define MCP_MAX_REPLY (4u * 1024u * 1024u)

enum {
  MCP_OK = 0,
  MCP_ESIGN = -1,       /* the agent refused to sign (its message is in err) */
  MCP_ETRANSPORT = -2,  /* no HTTP reply: refused, reset, timed out */
  MCP_EREPLY = -3,      /* a reply that is not what MCP allows */
};

struct mcp_reply {
  long status;
  char content_type[128];
  char session_id[256];
  unsigned char *body;
  size_t len;
};

struct mcp_conn {
  mcpsig_client *agent;
  CURL *curl;
  const char *identity;        /* NULL: "default" */
  const char *url;             /* the MCP endpoint, signed exactly as given */
  long timeout_ms;
  char session_id[256];        /* "" until initialize */
  char protocol_version[64];   /* "" until initialize */
  char keyid[64];              /* the key of the last signature */
};

int mcp_conn_init(struct mcp_conn *m, mcpsig_client *agent, const char *identity, const char *url, long timeout_ms);
void mcp_conn_done(struct mcp_conn *m);

void mcp_reply_free(struct mcp_reply *rep);

/*
 * Signs (key NULL or "active", or "pending") and sends one request with the
 * session's headers. body may be NULL (DELETE). Returns MCP_OK when any HTTP
 * reply came, whatever its status.
 */
int mcp_send(struct mcp_conn *m, const char *method, const char *key, const char *body, struct mcp_reply *rep,
             char *err, size_t errlen);

/*
 * Sends an already signed POST: body plus the agent's four header values
 * (used for signatures/rotateKey, whose body the agent writes).
 */
int mcp_send_presigned(struct mcp_conn *m, const unsigned char *body, size_t len, const char *content_digest,
                       const char *signature_input, const char *signature, const char *signature_agent,
                       struct mcp_reply *rep, char *err, size_t errlen);

/*
 * The JSON-RPC response with this id in a reply, which is application/json
 * (an object or a batch) or text/event-stream; NULL if there is none.
 */
json_t *mcp_response(const struct mcp_reply *rep, json_int_t id);

/*
 * Opens a session: a signed initialize, then notifications/initialized.
 * Returns MCP_OK with m->session_id set, or an error; *ret_status gets the
 * HTTP status of the initialize (0 without a reply).
 */
int mcp_open(struct mcp_conn *m, const char *key, long *ret_status, char *err, size_t errlen);

/* Closes the session with a DELETE signed with key (as in mcp_send); failures are only reported. */
int mcp_close_session(struct mcp_conn *m, const char *key, char *err, size_t errlen);

#endif
