/*
 * rotate.c: mcpsig rotate and mcpsig watch.
 *
 * The one-shot rotation (SEP-2752 §3.4) runs the whole exchange with the MCP
 * server and decides only on what the server said:
 *
 *   open a session with k1 -> rotate.begin (k2 durable) -> sign.rotate ->
 *   POST signatures/rotateKey -> JSON-RPC result: commit
 *                             -> JSON-RPC error or 4xx: abort
 *                             -> no answer, 5xx, unreadable: stay PENDING (3)
 *
 * A rotation left PENDING is settled by --resume, which asks the server which
 * key it holds: a session opened and pinged with k2 commits; k2 refused with
 * 401 while k1 is accepted aborts; anything else stays PENDING. No path
 * drops a key the server may hold.
 */
#include "config.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "mcphttp.h"

enum { ROTATE_COMMITTED = 0, ROTATE_ABORTED = 1, ROTATE_PENDING = EXIT_PENDING };

#define ERRLEN 512

struct rotation {
  mcpsig_client *agent;
  struct mcp_conn mcp;
  const char *url;
  bool json;
  char identity[80];
  char origin[320];
  char tag[64];
  char old_keyid[64];
  char new_keyid[64];
  char reason[4 * ERRLEN];
};

static void say(const struct rotation *rot, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(const struct rotation *rot, const char *fmt, ...) {
  va_list ap;
  if (rot->json)
    return;
  va_start(ap, fmt);
  fputs("mcpsig: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

static void remember(struct rotation *rot, const mcpsig_binding *b) {
  snprintf(rot->identity, sizeof(rot->identity), "%s", b->identity);
  snprintf(rot->origin, sizeof(rot->origin), "%s", b->origin);
  snprintf(rot->tag, sizeof(rot->tag), "%s", b->tag);
  snprintf(rot->old_keyid, sizeof(rot->old_keyid), "%s", b->keyid);
  snprintf(rot->new_keyid, sizeof(rot->new_keyid), "%s", b->pending_keyid ? b->pending_keyid : "");
}

/* Reads the binding's state into rot; 0, or the exit status of a failed call. */
static int state_load(struct rotation *rot, bool *ret_pending) {
  mcpsig_binding *b = NULL;
  int r = mcpsig_rotate_status(rot->agent, arg_identity, rot->url, &b);
  if (r < 0)
    return call_failed(rot->agent, r);
  remember(rot, b);
  *ret_pending = b->pending_keyid != NULL;
  mcpsig_binding_free(b);
  return 0;
}

/* Prints the outcome and returns its exit status. */
static int outcome(struct rotation *rot, int status) {
  static const char *const names[] = { [ROTATE_COMMITTED] = "committed", [ROTATE_ABORTED] = "aborted",
                                       [ROTATE_PENDING] = "pending" };
  const char *name = status == -1 ? "error" : names[status];
  if (rot->json) {
    json_print(json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s?}", "outcome", name, "identity", rot->identity,
                         "origin", rot->origin, "tag", rot->tag, "old_keyid", rot->old_keyid, "new_keyid",
                         rot->new_keyid, "reason", rot->reason[0] ? rot->reason : NULL));
  } else if (status == ROTATE_COMMITTED) {
    printf("committed: %s for %s now signs with %s (tag %s unchanged; %s retired)\n", rot->identity, rot->origin,
           rot->new_keyid, rot->tag, rot->old_keyid);
  } else if (status == ROTATE_ABORTED) {
    printf("aborted: %s for %s keeps %s (%s)\n", rot->identity, rot->origin, rot->old_keyid, rot->reason);
  } else if (status == ROTATE_PENDING) {
    printf("pending: the outcome is unknown (%s). Both keys are kept; settle it with: mcpsig rotate --resume %s\n",
           rot->reason, rot->url);
  } else {
    fprintf(stderr, "mcpsig: %s\n", rot->reason);
  }
  return status == -1 ? 1 : status;
}

/* Records the decision; why says what it rests on, for the message if the agent cannot record it. */
static int settle(struct rotation *rot, bool commit, const char *why) {
  mcpsig_binding *b = NULL;
  int r = commit ? mcpsig_rotate_commit(rot->agent, arg_identity, rot->url, &b)
                 : mcpsig_rotate_abort(rot->agent, arg_identity, rot->url, &b);
  if (r < 0) {
    /* The server's answer is known, but the agent did not record it: the
     * rotation is still pending in the keystore. */
    snprintf(rot->reason, sizeof(rot->reason), "%s, but the agent could not %s: %s", why,
             commit ? "commit" : "abort", mcpsig_last_error(rot->agent));
    return ROTATE_PENDING;
  }
  mcpsig_binding_free(b);
  return commit ? ROTATE_COMMITTED : ROTATE_ABORTED;
}

/* key: the key the server now expects for this session (NULL: the active one). */
static void close_session(struct rotation *rot, const char *key) {
  char err[ERRLEN];
  if (mcp_close_session(&rot->mcp, key, err, sizeof(err)) != MCP_OK)
    say(rot, "warning: could not close the MCP session: %s", err);
}

/* The server's verdict on the rotateKey POST. */
static int verdict(struct rotation *rot, int sent, const struct mcp_reply *rep, json_int_t id) {
  if (sent != MCP_OK) {
    if (!rot->reason[0])
      snprintf(rot->reason, sizeof(rot->reason), "no reply to signatures/rotateKey");
    return ROTATE_PENDING;
  }
  if (rep->status >= 400 && rep->status < 500) {
    snprintf(rot->reason, sizeof(rot->reason), "the server refused signatures/rotateKey with HTTP %ld", rep->status);
    return ROTATE_ABORTED;
  }
  if (rep->status / 100 != 2) {
    snprintf(rot->reason, sizeof(rot->reason), "the server answered signatures/rotateKey with HTTP %ld",
             rep->status);
    return ROTATE_PENDING;
  }
  json_t *res = mcp_response(rep, id);
  int v;
  if (res && json_object_get(res, "result")) {
    v = ROTATE_COMMITTED;
  } else if (res && json_object_get(res, "error")) {
    const char *msg = json_string_value(json_object_get(json_object_get(res, "error"), "message"));
    snprintf(rot->reason, sizeof(rot->reason), "the server answered signatures/rotateKey with an error: %s",
             msg ? msg : "(no message)");
    v = ROTATE_ABORTED;
  } else {
    snprintf(rot->reason, sizeof(rot->reason), "the server's reply to signatures/rotateKey holds no JSON-RPC response");
    v = ROTATE_PENDING;
  }
  json_decref(res);
  return v;
}

static int rotate_oneshot(struct rotation *rot) {
  char err[ERRLEN];
  mcpsig_binding *b = NULL;
  bool pending;
  long status = 0;
  int r;

  if ((r = state_load(rot, &pending)) != 0)
    return r;
  if (pending) {
    snprintf(rot->reason, sizeof(rot->reason),
             "a rotation of %s for %s is already pending with new key %s; settle it first with: mcpsig rotate "
             "--resume %s",
             rot->identity, rot->origin, rot->new_keyid, rot->url);
    return outcome(rot, -1);
  }

  /* Streamable HTTP servers answer a session-less POST with 400. */
  if ((r = mcp_open(&rot->mcp, NULL, &status, err, sizeof(err))) != MCP_OK) {
    snprintf(rot->reason, sizeof(rot->reason), "cannot open an MCP session, nothing was changed: %s", err);
    close_session(rot, NULL);
    return outcome(rot, -1);
  }
  if ((r = mcpsig_rotate_begin(rot->agent, arg_identity, rot->url, &b)) < 0) {
    snprintf(rot->reason, sizeof(rot->reason), "%s", mcpsig_last_error(rot->agent));
    close_session(rot, NULL);
    return outcome(rot, -1);
  }
  remember(rot, b);
  mcpsig_binding_free(b);
  say(rot, "rotating %s for %s: %s -> %s (tag %s)", rot->identity, rot->origin, rot->old_keyid, rot->new_keyid,
      rot->tag);

  const json_int_t id = 2;
  mcpsig_header h[2];
  size_t n = 0;
  h[n++] = (mcpsig_header){ "MCP-Protocol-Version", rot->mcp.protocol_version };
  h[n++] = (mcpsig_header){ "Mcp-Session-Id", rot->mcp.session_id };
  mcpsig_rotate_request req = { .identity = arg_identity, .uri = rot->url, .headers = h, .n_headers = n,
                                .id_num = id };
  mcpsig_rotate_signature *sig = NULL;
  if ((r = mcpsig_sign_rotate(rot->agent, &req, &sig)) < 0) {
    /* Nothing signed with k2 left the agent: aborting is safe. */
    snprintf(rot->reason, sizeof(rot->reason), "the agent did not sign signatures/rotateKey: %s",
             mcpsig_last_error(rot->agent));
    int s = settle(rot, false, "nothing signed with the new key was sent");
    close_session(rot, NULL);
    return outcome(rot, s);
  }
  struct mcp_reply rep;
  int sent = mcp_send_presigned(&rot->mcp, sig->body, sig->body_len, sig->content_digest, sig->signature_input,
                                sig->signature, sig->signature_agent, &rep, err, sizeof(err));
  mcpsig_rotate_signature_free(sig);
  if (sent != MCP_OK)
    snprintf(rot->reason, sizeof(rot->reason), "%s", err);
  int v = verdict(rot, sent, &rep, id);
  mcp_reply_free(&rep);
  if (v == ROTATE_PENDING)
    return outcome(rot, v); /* which key the session now needs is unknown */
  bool accepted = v == ROTATE_COMMITTED;
  v = settle(rot, accepted, accepted ? "the server accepted the new key" : "the server refused the new key");
  /* The server now expects the new key; if the agent could not record the
   * commit, that key is still the pending one. */
  close_session(rot, accepted && v != ROTATE_COMMITTED ? "pending" : NULL);
  return outcome(rot, v);
}

static int rotate_resume(struct rotation *rot) {
  static const char ping[] = "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"}";
  char err[ERRLEN], err1[ERRLEN];
  struct mcp_reply rep;
  bool pending;
  long status = 0;
  int r;

  if ((r = state_load(rot, &pending)) != 0)
    return r;
  if (!pending) {
    snprintf(rot->reason, sizeof(rot->reason), "no rotation is pending for %s %s: nothing to resume", rot->identity,
             rot->origin);
    return outcome(rot, -1);
  }
  say(rot, "probing %s with the pending key %s", rot->url, rot->new_keyid);

  /* Does the server hold k2? */
  r = mcp_open(&rot->mcp, "pending", &status, err, sizeof(err));
  if (r == MCP_OK) {
    r = mcp_send(&rot->mcp, "POST", "pending", ping, &rep, err, sizeof(err));
    json_t *res = r == MCP_OK && rep.status / 100 == 2 ? mcp_response(&rep, 2) : NULL;
    bool accepted = res && json_object_get(res, "result");
    json_decref(res);
    if (r == MCP_OK && !accepted)
      snprintf(err, sizeof(err), "the server answered a ping signed with the pending key with HTTP %ld", rep.status);
    mcp_reply_free(&rep);
    if (accepted) {
      int s = settle(rot, true, "the server accepts the pending key");
      close_session(rot, s == ROTATE_COMMITTED ? NULL : "pending");
      return outcome(rot, s);
    }
    close_session(rot, "pending");
    snprintf(rot->reason, sizeof(rot->reason), "%s", err);
    return outcome(rot, ROTATE_PENDING);
  }
  if (r != MCP_EREPLY || status != 401) {
    snprintf(rot->reason, sizeof(rot->reason), "%s", err);
    return outcome(rot, ROTATE_PENDING);
  }

  /* k2 was refused; only abort if the server demonstrably holds k1. */
  r = mcp_open(&rot->mcp, NULL, &status, err1, sizeof(err1));
  if (r == MCP_OK) {
    snprintf(rot->reason, sizeof(rot->reason), "the server refuses the pending key and accepts the active one");
    int s = settle(rot, false, "the server refuses the pending key and accepts the active one");
    close_session(rot, NULL);
    return outcome(rot, s);
  }
  snprintf(rot->reason, sizeof(rot->reason), "the server refuses both keys (pending: %s; active: %s)", err, err1);
  return outcome(rot, ROTATE_PENDING);
}

static int rotate_step(const char *step, const char *origin, bool json) {
  mcpsig_client *cl;
  mcpsig_binding *b = NULL;
  int r = agent_open(&cl);
  if (r)
    return r;
  if (strcmp(step, "begin") == 0)
    r = mcpsig_rotate_begin(cl, arg_identity, origin, &b);
  else if (strcmp(step, "commit") == 0)
    r = mcpsig_rotate_commit(cl, arg_identity, origin, &b);
  else if (strcmp(step, "abort") == 0)
    r = mcpsig_rotate_abort(cl, arg_identity, origin, &b);
  else
    r = mcpsig_rotate_status(cl, arg_identity, origin, &b);
  if (r < 0) {
    r = call_failed(cl, r);
  } else if (json) {
    r = json_print(binding_json(b));
  } else {
    printf("identity %s\n", b->identity);
    binding_print(b);
    r = 0;
  }
  mcpsig_binding_free(b);
  mcpsig_close(cl);
  return r;
}

int cmd_rotate(int argc, char **argv) {
  enum { O_BEGIN = 0x100, O_COMMIT, O_ABORT, O_STATUS, O_RESUME, O_ORIGIN, O_JSON, O_TIMEOUT, O_IDENTITY };
  static const struct option opts[] = {
    { "begin", no_argument, NULL, O_BEGIN },    { "commit", no_argument, NULL, O_COMMIT },
    { "abort", no_argument, NULL, O_ABORT },    { "status", no_argument, NULL, O_STATUS },
    { "resume", no_argument, NULL, O_RESUME },  { "origin", required_argument, NULL, O_ORIGIN },
    { "json", no_argument, NULL, O_JSON },      { "timeout", required_argument, NULL, O_TIMEOUT },
    { "identity", required_argument, NULL, O_IDENTITY }, { "help", no_argument, NULL, 'h' }, {},
  };
  const struct command *cmd = command_find("rotate");
  const char *step = NULL, *origin = NULL;
  bool json = false, resume = false;
  long timeout_s = 30;
  int c;

  optind = 0;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) >= 0) {
    const char *s = NULL;
    switch (c) {
    case O_BEGIN: s = "begin"; break;
    case O_COMMIT: s = "commit"; break;
    case O_ABORT: s = "abort"; break;
    case O_STATUS: s = "status"; break;
    case O_RESUME: resume = true; break;
    case O_ORIGIN: origin = optarg; break;
    case O_JSON: json = true; break;
    case O_IDENTITY: arg_identity = optarg; break;
    case O_TIMEOUT: {
      char *end;
      timeout_s = strtol(optarg, &end, 10);
      if (*end || timeout_s < 1 || timeout_s > 3600)
        return usage_error(cmd, "--timeout takes whole seconds from 1 to 3600, not '%s'", optarg);
      break;
    }
    case 'h': return -2;
    default: return bad_option(argv);
    }
    if (s && step && strcmp(s, step) != 0)
      return usage_error(cmd, "--%s and --%s cannot be combined", step, s);
    if (s)
      step = s;
  }
  const char *url = optind < argc ? argv[optind++] : NULL;
  if (optind < argc)
    return usage_error(cmd, "unexpected argument '%s'", argv[optind]);
  if (step) {
    if (resume)
      return usage_error(cmd, "--resume and --%s cannot be combined", step);
    if (url)
      return usage_error(cmd, "--%s takes --origin URL, not an MCP endpoint '%s'", step, url);
    if (!origin)
      return usage_error(cmd, "--%s needs --origin URL", step);
    return rotate_step(step, origin, json);
  }
  if (origin)
    return usage_error(cmd, "%s", "--origin is for --begin, --commit, --abort and --status; give the MCP endpoint URL");
  if (!url)
    return usage_error(cmd, "%s", "missing the MCP endpoint URL");

  struct rotation rot;
  memset(&rot, 0, sizeof(rot));
  rot.url = url;
  rot.json = json;
  snprintf(rot.identity, sizeof(rot.identity), "%s", arg_identity ? arg_identity : "default");
  snprintf(rot.origin, sizeof(rot.origin), "%s", url);
  int r = agent_open(&rot.agent);
  if (r)
    return r;
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK ||
      mcp_conn_init(&rot.mcp, rot.agent, arg_identity, url, timeout_s * 1000) < 0) {
    mcpsig_close(rot.agent);
    return fail("cannot initialize libcurl");
  }
  r = resume ? rotate_resume(&rot) : rotate_oneshot(&rot);
  mcp_conn_done(&rot.mcp);
  curl_global_cleanup();
  mcpsig_close(rot.agent);
  return r;
}

/* ---- watch ---- */

int cmd_watch(int argc, char **argv) {
  enum { O_JSON = 0x100, O_COUNT };
  static const struct option opts[] = {
    { "json", no_argument, NULL, O_JSON }, { "count", required_argument, NULL, O_COUNT },
    { "help", no_argument, NULL, 'h' },    {},
  };
  const struct command *cmd = command_find("watch");
  bool json = false;
  long count = -1;
  int c;

  optind = 0;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) >= 0) {
    switch (c) {
    case O_JSON: json = true; break;
    case O_COUNT: {
      char *end;
      count = strtol(optarg, &end, 10);
      if (*end || count < 1)
        return usage_error(cmd, "--count takes a positive number, not '%s'", optarg);
      break;
    }
    case 'h': return -2;
    default: return bad_option(argv);
    }
  }
  if (optind < argc)
    return usage_error(cmd, "unexpected argument '%s'", argv[optind]);
  mcpsig_client *cl;
  int r = agent_open(&cl);
  if (r)
    return r;
  if ((r = mcpsig_subscribe(cl)) < 0) {
    r = call_failed(cl, r);
    mcpsig_close(cl);
    return r;
  }
  if (!json)
    printf("watching key rotations (Ctrl-C stops)\n");
  fflush(stdout);
  for (long seen = 0; count < 0 || seen < count; seen++) {
    mcpsig_event *ev = NULL;
    if ((r = mcpsig_event_next(cl, -1, &ev)) < 0) {
      r = call_failed(cl, r);
      break;
    }
    if (strcmp(ev->event, "lost") == 0) {
      /* This watcher fell behind and the agent dropped what it did not read. */
      if (json)
        printf("{\"event\":\"lost\",\"count\":%llu}\n", (unsigned long long)ev->lost);
      else
        printf("lost   %llu event(s): this watcher did not read them in time; see mcpsig list\n",
               (unsigned long long)ev->lost);
      fprintf(stderr, "mcpsig: warning: the agent dropped %llu rotation event(s) this watcher did not read in time\n",
              (unsigned long long)ev->lost);
    } else if (json) {
      json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "event", ev->event, "identity", ev->identity, "origin",
                            ev->origin, "tag", ev->tag, "old_keyid", ev->old_keyid, "new_keyid", ev->new_keyid);
      if (j) {
        json_dumpf(j, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER);
        putchar('\n');
        json_decref(j);
      }
    } else {
      printf("%-6s %s %s tag %s: %s -> %s\n", ev->event, ev->identity, ev->origin, ev->tag, ev->old_keyid,
             ev->new_keyid);
    }
    fflush(stdout);
    mcpsig_event_free(ev);
    r = 0;
  }
  mcpsig_close(cl);
  return r;
}
