/*
 * rotate-host: a long-running MCP host for the rotation test. It keeps one
 * agent connection and one MCP session for its whole life, and calls a tool
 * in a loop while another process rotates the key.
 *
 *   rotate-host URL --until FILE [--identity NAME]
 *
 * It subscribes to rotation events on the same connection it signs on. The
 * agent sends a commit event to subscribers before any later reply, so for
 * every request the host knows whether the commit came before its signature
 * ("commit_before") and whether it came before the reply ("commit_after").
 * A 401 is retried once, re-signed: while the rotation is still pending
 * (the server took k2 but the rotating process has not committed yet) the
 * host first waits for the commit or abort event.
 *
 * One JSON line per request on stdout, then a summary line; exit 0 when
 * every request succeeded within one retry.
 */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mcphttp.h"

#define SETTLE_WAIT_MS 15000
#define AFTER_STOP 3

struct host {
  mcpsig_client *agent;
  struct mcp_conn mcp;
  const char *origin_url;
  bool committed;
  char pending_keyid[64];
};

/* Takes every queued event; notes a commit of our binding. */
static void drain(struct host *h, int timeout_ms) {
  mcpsig_event *ev = NULL;
  while (mcpsig_event_next(h->agent, timeout_ms, &ev) == 0) {
    if (strcmp(ev->event, "commit") == 0)
      h->committed = true;
    fprintf(stderr, "rotate-host: event %s %s -> %s\n", ev->event, ev->old_keyid, ev->new_keyid);
    mcpsig_event_free(ev);
    timeout_ms = 0;
  }
}

static bool rotation_pending(struct host *h) {
  mcpsig_binding *b = NULL;
  bool pending = mcpsig_rotate_status(h->agent, h->mcp.identity, h->origin_url, &b) == 0 && b->pending_keyid;
  mcpsig_binding_free(b);
  return pending;
}

/* One tools/call; returns the HTTP status (0 without a reply), and whether a JSON-RPC result came. */
static long call_tool(struct host *h, long seq, bool *ret_result, char *err, size_t errlen) {
  char body[256];
  struct mcp_reply rep;
  snprintf(body, sizeof(body),
           "{\"jsonrpc\":\"2.0\",\"id\":%ld,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\","
           "\"arguments\":{\"text\":\"request %ld\"}}}",
           seq + 10, seq);
  *ret_result = false;
  if (mcp_send(&h->mcp, "POST", NULL, body, &rep, err, errlen) != MCP_OK)
    return 0;
  json_t *res = mcp_response(&rep, seq + 10);
  *ret_result = res && json_object_get(res, "result");
  json_decref(res);
  long status = rep.status;
  mcp_reply_free(&rep);
  return status;
}

int main(int argc, char **argv) {
  const char *url = NULL, *until = NULL, *identity = NULL;
  struct host h;
  char err[512];
  long status = 0, requests = 0, retries = 0, failures = 0, after_stop = -1;

  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--until") == 0 && i + 1 < argc)
      until = argv[++i];
    else if (strcmp(argv[i], "--identity") == 0 && i + 1 < argc)
      identity = argv[++i];
    else if (!url && argv[i][0] != '-')
      url = argv[i];
    else {
      fprintf(stderr, "usage: rotate-host URL --until FILE [--identity NAME]\n");
      return 2;
    }
  }
  if (!url || !until) {
    fprintf(stderr, "usage: rotate-host URL --until FILE [--identity NAME]\n");
    return 2;
  }
  memset(&h, 0, sizeof(h));
  h.origin_url = url;
  if (mcpsig_connect(&h.agent, NULL, 0) < 0 || mcpsig_subscribe(h.agent) < 0) {
    fprintf(stderr, "rotate-host: cannot reach the agent: %s\n", mcpsig_last_error(h.agent));
    return 1;
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);
  if (mcp_conn_init(&h.mcp, h.agent, identity, url, 20000) < 0 ||
      mcp_open(&h.mcp, NULL, &status, err, sizeof(err)) != MCP_OK) {
    fprintf(stderr, "rotate-host: cannot open a session: %s\n", err);
    return 1;
  }
  for (long seq = 1;; seq++) {
    bool result = false, retried = false;
    char keyid[64], first_keyid[64];

    drain(&h, 0);
    bool commit_before = h.committed;
    status = call_tool(&h, seq, &result, err, sizeof(err));
    snprintf(first_keyid, sizeof(first_keyid), "%s", h.mcp.keyid);
    drain(&h, 0);
    bool commit_after = h.committed;
    if (status == 401) {
      /* Signed with k1 as the server switched to k2: re-sign once, after
       * the rotation has settled in the agent. */
      retried = true;
      retries++;
      for (int wait = 0; wait < 2 && !h.committed && rotation_pending(&h); wait++)
        drain(&h, SETTLE_WAIT_MS);
      status = call_tool(&h, seq, &result, err, sizeof(err));
    }
    snprintf(keyid, sizeof(keyid), "%s", h.mcp.keyid);
    bool ok = status / 100 == 2 && result;
    requests++;
    if (!ok)
      failures++;
    printf("{\"seq\":%ld,\"keyid\":\"%s\",\"first_keyid\":\"%s\",\"status\":%ld,\"ok\":%s,\"retried\":%s,"
           "\"commit_before\":%s,\"commit_after\":%s}\n",
           seq, keyid, first_keyid, status, ok ? "true" : "false", retried ? "true" : "false",
           commit_before ? "true" : "false", commit_after ? "true" : "false");
    fflush(stdout);
    if (!ok)
      fprintf(stderr, "rotate-host: request %ld failed: HTTP %ld %s\n", seq, status, status ? "" : err);
    if (after_stop < 0 && access(until, F_OK) == 0)
      after_stop = 0;
    if (after_stop >= 0 && ++after_stop > AFTER_STOP)
      break;
    struct timespec ts = { 0, 5 * 1000 * 1000 };
    nanosleep(&ts, NULL);
  }
  if (mcp_close_session(&h.mcp, NULL, err, sizeof(err)) != MCP_OK)
    fprintf(stderr, "rotate-host: closing the session: %s\n", err);
  printf("{\"summary\":{\"requests\":%ld,\"retries\":%ld,\"failures\":%ld,\"commit_seen\":%s}}\n", requests, retries,
         failures, h.committed ? "true" : "false");
  mcp_conn_done(&h.mcp);
  curl_global_cleanup();
  mcpsig_close(h.agent);
  return failures ? 1 : 0;
}
