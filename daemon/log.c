/* log.c: one line per event on stderr (the journal captures it under systemd). */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "dispatch.h"
#include "log.h"

static const char *prio_name(int prio) {
  switch (prio) {
  case LOG_ERR: return "error: ";
  case LOG_WARNING: return "warning: ";
  default: return "";
  }
}

void log_msg(int prio, const char *fmt, ...) {
  va_list ap;
  char line[1024];

  if (prio == LOG_DEBUG && !getenv("MCPSIG_DEBUG"))
    return;
  va_start(ap, fmt);
  vsnprintf(line, sizeof(line), fmt, ap);
  va_end(ap);
  fprintf(stderr, "mcpsig-agent: %s%s\n", prio_name(prio), line);
}

void log_info(const struct dispatch_peer *peer, const char *fmt, ...) {
  va_list ap;
  char line[768];

  va_start(ap, fmt);
  vsnprintf(line, sizeof(line), fmt, ap);
  va_end(ap);
  if (peer)
    log_msg(LOG_INFO, "%s (peer pid %ld %s)", line, (long)peer->pid, peer->exe ? peer->exe : "?");
  else
    log_msg(LOG_INFO, "%s", line);
}

void log_binding_created(const struct dispatch_peer *peer, const struct binding *b) {
  log_info(peer, "key created: identity=%s origin=%s tag=%s keyid=%s", b->identity->name, b->origin, b->tag,
           b->active.keyid);
}

void log_signature(const struct dispatch_peer *peer, const struct binding *b, const struct key *k,
                   const char *label) {
  if (!peer) /* in-process callers (tests, fuzzer) */
    return;
  char line[512];
  snprintf(line, sizeof(line), "signature: identity=%s origin=%s tag=%s keyid=%s label=%s peer_pid=%ld exe=%s",
           b->identity->name, b->origin, b->tag, k->keyid, label, (long)peer->pid, peer->exe ? peer->exe : "?");
  log_msg(LOG_DEBUG, "%s", line);
}

void log_rotation(const struct dispatch_peer *peer, const char *event, const struct binding *b, const char *old_keyid,
                  const char *new_keyid) {
  log_info(peer, "rotation %s: identity=%s origin=%s tag=%s old_keyid=%s new_keyid=%s", event, b->identity->name,
           b->origin, b->tag, old_keyid, new_keyid);
}
