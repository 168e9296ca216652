/*
 * log.h: the agent's one logging module. Every event is a record with a
 * message and structured fields (identity, origin, tag, keyid, and the
 * peer's pid, executable, name and command line: which process asked is the
 * first thing users want to know). Records go to the journal, with a MESSAGE_ID per kind of
 * event, when the agent's stderr is the journal (JOURNAL_STREAM), and to
 * stderr as one line otherwise. Never secrets, bodies or full headers.
 */
#ifndef MCPSIG_LOG_H
#define MCPSIG_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <syslog.h>

#include "binding.h"

struct dispatch_peer;

/* MESSAGE_IDs (journalctl MESSAGE_ID=...), one per kind of event. */
#define LOG_ID_KEY_CREATED     "a6353c071846408aab6c12a03f6a67e5"
#define LOG_ID_SIGNATURE       "502f9b08ddeb41cfae51ede75087db3b"
#define LOG_ID_ROTATION_BEGIN  "569946eee3bb4e60a263db0db75ab3d5"
#define LOG_ID_ROTATION_COMMIT "6ff3bef765d94f53b1935d875e6f6897"
#define LOG_ID_ROTATION_ABORT  "d1534c45a9d44c14a3c55b1bb7fad682"
#define LOG_ID_PEER_REFUSED    "b40414d818884f0aa7aa3473d7797cb4"

struct log_record {
  int priority;                 /* LOG_ERR ... LOG_DEBUG */
  const char *message_id;       /* one of LOG_ID_*, or NULL */
  const char *message;
  const char *identity, *origin, *tag, *keyid, *new_keyid, *label;
  long peer_pid;                /* 0: no peer */
  long peer_uid;                /* -1: not recorded */
  const char *peer_exe;         /* kernel-attested, where readable (see peer.h) */
  const char *peer_comm;        /* self-chosen by the peer: the weaker claim */
  const char *peer_cmdline;     /* self-chosen by the peer: the weaker claim */
  bool peer_pidfd;              /* names read under a pidfd (no pid reuse) */
};

typedef void (*log_sink)(const struct log_record *rec, void *userdata);

/* Where records go: the journal when stderr is connected to it, else stderr. */
void log_open(void);
/* 1 when JOURNAL_STREAM names this process's stderr (systemd's convention). */
int log_stderr_is_journal(void);
/* Replaces the output (tests); NULL restores what log_open() chose. */
void log_set_sink(log_sink sink, void *userdata);
/* Records above this priority are dropped; LOG_INFO by default. */
void log_set_level(int priority);
int log_get_level(void);
/* "err", "warning", "info" or "debug" (or a syslog number) to a priority. */
int log_level_parse(const char *name, int *ret_priority);

/*
 * The journal fields of a record, "NAME=value", in out (at most max, each
 * malloc'd; free them with log_fields_free). Returns how many.
 */
#define LOG_FIELDS_MAX 20
size_t log_journal_fields(const struct log_record *rec, char **out, size_t max);
void log_fields_free(char **fields, size_t n);

__attribute__((format(printf, 2, 3))) void log_msg(int prio, const char *fmt, ...);
__attribute__((format(printf, 2, 3))) void log_info(const struct dispatch_peer *peer, const char *fmt, ...);
void log_binding_created(const struct dispatch_peer *peer, const struct binding *b);
/* Every signature, at debug level. */
void log_signature(const struct dispatch_peer *peer, const struct binding *b, const struct key *k,
                   const char *label);
void log_rotation(const struct dispatch_peer *peer, const char *event, const struct binding *b, const char *old_keyid,
                  const char *new_keyid);
/* A connection refused before any byte was read: another user, or too many connections. */
void log_peer_refused(int fd, long pid, long uid, const char *why);

#endif
