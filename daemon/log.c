/* log.c: records to the journal or to stderr (see log.h). */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <systemd/sd-journal.h>

#include "dispatch.h"
#include "errmsg.h"
#include "log.h"
#include "peer.h"

static void sink_stderr(const struct log_record *rec, void *userdata);
static void sink_journal(const struct log_record *rec, void *userdata);

static log_sink chosen = sink_stderr;  /* what log_open() picked */
static log_sink sink = sink_stderr;
static void *sink_data = NULL;
static int level = LOG_INFO;

int log_stderr_is_journal(void) {
  const char *v = getenv("JOURNAL_STREAM");
  unsigned long long dev = 0, ino = 0;
  struct stat st;
  if (!v || sscanf(v, "%llu:%llu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &st) < 0)
    return 0;
  return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void log_open(void) {
  chosen = log_stderr_is_journal() ? sink_journal : sink_stderr;
  sink = chosen;
  sink_data = NULL;
}

void log_set_sink(log_sink s, void *userdata) {
  sink = s ? s : chosen;
  sink_data = s ? userdata : NULL;
}

void log_set_level(int priority) {
  level = priority;
}

int log_get_level(void) {
  return level;
}

int log_level_parse(const char *name, int *ret_priority) {
  static const struct {
    const char *name;
    int priority;
  } names[] = { { "err", LOG_ERR }, { "error", LOG_ERR }, { "warning", LOG_WARNING },
                { "notice", LOG_NOTICE }, { "info", LOG_INFO }, { "debug", LOG_DEBUG } };
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
    if (strcasecmp(name, names[i].name) == 0) {
      *ret_priority = names[i].priority;
      return 0;
    }
  if (name[0] >= '0' && name[0] <= '7' && name[1] == '\0') {
    *ret_priority = name[0] - '0';
    return 0;
  }
  return -1;
}

/* Every record is one line: control characters in its message (which may
 * echo a request) are escaped before any sink sees it. */
static void emit(const struct log_record *rec) {
  char line[1024];
  if (rec->priority > level)
    return;
  struct log_record safe = *rec;
  if (rec->message && rec->message[strcspn(rec->message, "\x01\x02\x03\x04\x05\x06\x07\x08\t\n\x0b\x0c\r"
                                                          "\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19"
                                                          "\x1a\x1b\x1c\x1d\x1e\x1f\x7f")]) {
    snprintf(line, sizeof(line), "%s", rec->message);
    text_escape_controls(line, sizeof(line));
    safe.message = line;
  }
  sink(&safe, sink_data);
}

/* ---- sinks ---- */

static void sink_stderr(const struct log_record *rec, void *userdata) {
  const char *p = rec->priority <= LOG_ERR ? "error: " : rec->priority == LOG_WARNING ? "warning: " : "";
  (void)userdata;
  if (rec->peer_pid > 0 && rec->peer_exe)
    fprintf(stderr, "mcpsig-agent: %s%s (peer pid %ld %s)\n", p, rec->message, rec->peer_pid, rec->peer_exe);
  else if (rec->peer_pid > 0)
    fprintf(stderr, "mcpsig-agent: %s%s (peer pid %ld comm %s, executable unreadable)\n", p, rec->message,
            rec->peer_pid, rec->peer_comm ? rec->peer_comm : "?");
  else
    fprintf(stderr, "mcpsig-agent: %s%s\n", p, rec->message);
}

static int field(char **out, size_t max, size_t *n, const char *name, const char *value) {
  if (!value || *n >= max)
    return 0;
  size_t len = strlen(name) + 1 + strlen(value) + 1;
  char *f = malloc(len);
  if (!f)
    return -1;
  snprintf(f, len, "%s=%s", name, value);
  out[(*n)++] = f;
  return 0;
}

size_t log_journal_fields(const struct log_record *rec, char **out, size_t max) {
  char prio[8], pid[24], uid[24];
  size_t n = 0;
  snprintf(prio, sizeof(prio), "%d", rec->priority);
  snprintf(pid, sizeof(pid), "%ld", rec->peer_pid);
  snprintf(uid, sizeof(uid), "%ld", rec->peer_uid);
  field(out, max, &n, "MESSAGE", rec->message);
  field(out, max, &n, "PRIORITY", prio);
  field(out, max, &n, "SYSLOG_IDENTIFIER", "mcpsig-agent");
  field(out, max, &n, "MESSAGE_ID", rec->message_id);
  field(out, max, &n, "MCPSIG_IDENTITY", rec->identity);
  field(out, max, &n, "MCPSIG_ORIGIN", rec->origin);
  field(out, max, &n, "MCPSIG_TAG", rec->tag);
  field(out, max, &n, "MCPSIG_KEYID", rec->keyid);
  field(out, max, &n, "MCPSIG_NEW_KEYID", rec->new_keyid);
  field(out, max, &n, "MCPSIG_LABEL", rec->label);
  field(out, max, &n, "MCPSIG_PEER_PID", rec->peer_pid > 0 ? pid : NULL);
  field(out, max, &n, "MCPSIG_PEER_UID", rec->peer_uid >= 0 ? uid : NULL);
  field(out, max, &n, "MCPSIG_PEER_EXE", rec->peer_exe);
  field(out, max, &n, "MCPSIG_PEER_COMM", rec->peer_comm);
  field(out, max, &n, "MCPSIG_PEER_CMDLINE", rec->peer_cmdline);
  field(out, max, &n, "MCPSIG_PEER_PIDFD", rec->peer_pid > 0 && rec->peer_pidfd ? "1" : NULL);
  return n;
}

void log_fields_free(char **fields, size_t n) {
  for (size_t i = 0; i < n; i++)
    free(fields[i]);
}

static void sink_journal(const struct log_record *rec, void *userdata) {
  char *fields[LOG_FIELDS_MAX];
  struct iovec iov[LOG_FIELDS_MAX];
  size_t n = log_journal_fields(rec, fields, LOG_FIELDS_MAX);
  (void)userdata;
  for (size_t i = 0; i < n; i++)
    iov[i] = (struct iovec){ fields[i], strlen(fields[i]) };
  if (sd_journal_sendv(iov, (int)n) < 0)
    sink_stderr(rec, NULL); /* the journal went away: keep the line */
  log_fields_free(fields, n);
}

/* ---- events ---- */

static void peer_fill(struct log_record *rec, const struct dispatch_peer *peer) {
  rec->peer_uid = -1;
  if (peer) {
    rec->peer_pid = (long)peer->pid;
    rec->peer_exe = peer->exe;
    rec->peer_comm = peer->comm;
    rec->peer_cmdline = peer->cmdline;
    rec->peer_pidfd = peer->pidfd;
  }
}

void log_msg(int prio, const char *fmt, ...) {
  char line[1024];
  va_list ap;
  if (prio > level)
    return;
  va_start(ap, fmt);
  vsnprintf(line, sizeof(line), fmt, ap);
  va_end(ap);
  struct log_record rec = { .priority = prio, .message = line, .peer_uid = -1 };
  emit(&rec);
}

void log_info(const struct dispatch_peer *peer, const char *fmt, ...) {
  char line[768];
  va_list ap;
  if (LOG_INFO > level)
    return;
  va_start(ap, fmt);
  vsnprintf(line, sizeof(line), fmt, ap);
  va_end(ap);
  struct log_record rec = { .priority = LOG_INFO, .message = line };
  peer_fill(&rec, peer);
  emit(&rec);
}

static void binding_fill(struct log_record *rec, const struct binding *b) {
  rec->identity = b->identity->name;
  rec->origin = b->origin;
  rec->tag = b->tag;
}

void log_binding_created(const struct dispatch_peer *peer, const struct binding *b) {
  char line[512];
  snprintf(line, sizeof(line), "key created: identity=%s origin=%s tag=%s keyid=%s", b->identity->name, b->origin,
           b->tag, b->active.keyid);
  struct log_record rec = { .priority = LOG_INFO, .message_id = LOG_ID_KEY_CREATED, .message = line,
                            .keyid = b->active.keyid };
  binding_fill(&rec, b);
  peer_fill(&rec, peer);
  emit(&rec);
}

void log_signature(const struct dispatch_peer *peer, const struct binding *b, const struct key *k,
                   const char *label) {
  char line[512];
  if (LOG_DEBUG > level)
    return;
  snprintf(line, sizeof(line), "signature: identity=%s origin=%s tag=%s keyid=%s label=%s", b->identity->name,
           b->origin, b->tag, k->keyid, label);
  struct log_record rec = { .priority = LOG_DEBUG, .message_id = LOG_ID_SIGNATURE, .message = line,
                            .keyid = k->keyid, .label = label };
  binding_fill(&rec, b);
  peer_fill(&rec, peer);
  emit(&rec);
}

void log_rotation(const struct dispatch_peer *peer, const char *event, const struct binding *b, const char *old_keyid,
                  const char *new_keyid) {
  char line[512];
  snprintf(line, sizeof(line), "rotation %s: identity=%s origin=%s tag=%s old_keyid=%s new_keyid=%s", event,
           b->identity->name, b->origin, b->tag, old_keyid, new_keyid);
  struct log_record rec = {
    .priority = LOG_INFO, .message = line, .keyid = old_keyid, .new_keyid = new_keyid,
    .message_id = strcmp(event, "begin") == 0    ? LOG_ID_ROTATION_BEGIN
                  : strcmp(event, "commit") == 0 ? LOG_ID_ROTATION_COMMIT
                                                 : LOG_ID_ROTATION_ABORT,
  };
  binding_fill(&rec, b);
  peer_fill(&rec, peer);
  emit(&rec);
}

void log_peer_refused(int fd, long pid, long uid, const char *why) {
  char line[512];
  struct peer_info who;
  peer_identify(fd, (pid_t)pid, &who);
  snprintf(line, sizeof(line), "refused a connection from uid %ld pid %ld: %s", uid, pid, why);
  struct log_record rec = { .priority = LOG_WARNING, .message_id = LOG_ID_PEER_REFUSED, .message = line,
                            .peer_pid = pid, .peer_uid = uid, .peer_exe = who.exe[0] ? who.exe : NULL,
                            .peer_comm = who.comm[0] ? who.comm : NULL,
                            .peer_cmdline = who.cmdline[0] ? who.cmdline : NULL, .peer_pidfd = who.pidfd };
  emit(&rec);
}
