/*
 * log.h: the agent's one logging module. Messages carry the peer's pid and
 * executable (which process asked is the first thing users want to know) and
 * never secrets, bodies or full headers.
 */
#ifndef MCPSIG_LOG_H
#define MCPSIG_LOG_H

#include <syslog.h>

#include "binding.h"

struct dispatch_peer;

__attribute__((format(printf, 2, 3))) void log_msg(int prio, const char *fmt, ...);
__attribute__((format(printf, 2, 3))) void log_info(const struct dispatch_peer *peer, const char *fmt, ...);
void log_binding_created(const struct dispatch_peer *peer, const struct binding *b);
void log_signature(const struct dispatch_peer *peer, const struct binding *b, const struct key *k,
                   const char *label);

void log_rotation(const struct dispatch_peer *peer, const char *event, const struct binding *b, const char *old_keyid,
                  const char *new_keyid);

#endif
