/*
 * server.c: serves many connections on one Unix socket with libuv.
 *
 * Each connection's peer uid is checked with SO_PEERCRED before a byte is
 * read (invariant 5). Bytes are framed with proto_frame_scan(), so size and
 * depth limits hold before msgpack-c allocates, and each complete message goes
 * to the socket-free dispatcher. A peer that cannot be framed is answered with
 * an error and closed; the others never notice (invariant 6).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <sodium.h>

#include "dispatch.h"
#include "errmsg.h"
#include "log.h"
#include "peer.h"
#include "proto.h"
#include "server.h"
#include "service.h"

#define READ_CHUNK (64u * 1024u)
/* Replies made for one connection in one turn of the event loop before the
 * next turn: pipelined requests then wait for the loop, not the loop for them. */
#define ROUND_OUT (256u * 1024u)
/* What one queued write costs beyond its bytes: the request, the buffer's
 * header, and the allocator's own bookkeeping. */
#define WRITE_OVERHEAD (sizeof(struct write_req) + 64u)

struct conn {
  uv_pipe_t pipe;
  struct server *srv;
  struct dispatch_peer peer;
  struct peer_info who;
  unsigned char *rx;
  size_t rx_len, rx_cap;
  bool reading;
  bool closing;
  uint64_t partial_since;   /* uv_now() when rx began to hold an incomplete message; 0: none */
  uint64_t last_active;     /* uv_now() of the last byte read or written */
  size_t queued;            /* memory held by unsent output: allocated bytes, not payload */
  bool held;                /* rx holds complete requests not yet answered (output budget) */
  uint64_t events_lost;     /* notifications dropped since the last "events.lost" */
  struct conn *prev, *next;
};

struct write_req {
  uv_write_t req;
  msgpack_sbuffer sb;
  struct conn *conn;
  size_t cost;              /* what it adds to conn->queued */
  bool close_after;
};

/* ---- socket path ---- */

int server_socket_prepare(const char *path, char *err, size_t errlen) {
  char dir[PATH_MAX];
  struct stat st;

  if (strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
    return errmsg(err, errlen, -ENAMETOOLONG, "socket path %s is too long for a Unix socket", path);
  if (path[0] != '/')
    return errmsg(err, errlen, -EINVAL, "socket path %s must be absolute", path);
  snprintf(dir, sizeof(dir), "%s", path);
  char *slash = strrchr(dir, '/');
  if (slash == dir)
    slash[1] = '\0';
  else
    *slash = '\0';
  if (lstat(dir, &st) < 0) {
    if (errno != ENOENT)
      return errmsg(err, errlen, -errno, "cannot stat %s: %s", dir, strerror(errno));
    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
      return errmsg(err, errlen, -errno, "cannot create %s: %s", dir, strerror(errno));
    if (lstat(dir, &st) < 0)
      return errmsg(err, errlen, -errno, "cannot stat %s: %s", dir, strerror(errno));
  }
  if (!S_ISDIR(st.st_mode))
    return errmsg(err, errlen, -ENOTDIR, "%s is not a directory", dir);
  /* Someone else's directory, or one others may write without the sticky
   * bit, would let them swap our socket for theirs. */
  if (st.st_uid != geteuid() && st.st_uid != 0)
    return errmsg(err, errlen, -EPERM, "%s belongs to uid %lu, not to this user; refusing to put the socket there", dir,
                (unsigned long)st.st_uid);
  if ((st.st_mode & 022) && !(st.st_mode & S_ISVTX))
    return errmsg(err, errlen, -EPERM, "%s is writable by others; fix it with: chmod 700 %s", dir, dir);

  if (lstat(path, &st) == 0) {
    if (!S_ISSOCK(st.st_mode))
      return errmsg(err, errlen, -EEXIST, "%s exists and is not a socket; refusing to replace it", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
      close(fd);
      return errmsg(err, errlen, -EADDRINUSE, "another agent is listening on %s", path);
    }
    int e = errno;
    if (fd >= 0)
      close(fd);
    if (e != ECONNREFUSED && e != ENOENT)
      return errmsg(err, errlen, -e, "cannot check %s: %s", path, strerror(e));
    if (unlink(path) < 0 && errno != ENOENT)
      return errmsg(err, errlen, -errno, "cannot remove the stale socket %s: %s", path, strerror(errno));
    log_msg(LOG_INFO, "replaced the stale socket %s", path);
  }
  return 0;
}

/* ---- connections ---- */

static void on_idle(uv_timer_t *t) {
  struct server *srv = t->data;
  if (srv->n_conns > 0)
    return;
  log_msg(LOG_INFO, "no connection for %llu s: exiting (socket activation starts the agent again)",
          (unsigned long long)(srv->exit_idle_ms / 1000));
  service_notify("STOPPING=1");
  server_stop(srv);
}

static void conn_closed(uv_handle_t *h) {
  struct conn *c = h->data;
  struct server *srv = c->srv;
  if (c->prev)
    c->prev->next = c->next;
  else
    srv->conns = c->next;
  if (c->next)
    c->next->prev = c->prev;
  srv->n_conns--;
  if (srv->n_conns == 0 && srv->exit_idle_ms && !srv->stopping)
    uv_timer_start(&srv->idle_timer, on_idle, srv->exit_idle_ms, 0);
  if (c->rx) {
    sodium_memzero(c->rx, c->rx_cap); /* request bodies are the user's data */
    free(c->rx);
  }
  free(c);
}

static void conn_close(struct conn *c) {
  if (c->closing)
    return;
  c->closing = true;
  uv_close((uv_handle_t *)&c->pipe, conn_closed);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b);

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b) {
  struct conn *c = h->data;
  /* Room for the largest message plus one read; more is never needed,
   * because proto_frame_scan() refuses a message beyond the limit. */
  const size_t max_cap = MCPSIG_MAX_MSG_LEN + READ_CHUNK;
  (void)suggested;
  if (c->rx_cap - c->rx_len < READ_CHUNK && c->rx_cap < max_cap) {
    size_t cap = c->rx_cap ? c->rx_cap : READ_CHUNK;
    while (cap - c->rx_len < READ_CHUNK && cap < max_cap)
      cap *= 2;
    if (cap > max_cap)
      cap = max_cap;
    unsigned char *rx = malloc(cap);
    if (!rx) {
      b->base = NULL;
      b->len = 0;
      return;
    }
    if (c->rx) {
      memcpy(rx, c->rx, c->rx_len);
      sodium_memzero(c->rx, c->rx_cap);
      free(c->rx);
    }
    c->rx = rx;
    c->rx_cap = cap;
  }
  if (c->rx_len >= c->rx_cap) {
    b->base = NULL; /* libuv reports UV_ENOBUFS */
    b->len = 0;
    return;
  }
  b->base = (char *)c->rx + c->rx_len;
  b->len = c->rx_cap - c->rx_len;
}

static void conn_process(struct conn *c);
static void conn_lost_notify(struct conn *c);

static void reading_start(struct conn *c) {
  if (c->reading || c->closing)
    return;
  if (uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read) == 0) {
    c->reading = true;
    /* The wait for the rest of a message starts again: we were the ones not reading. */
    if (c->partial_since)
      c->partial_since = uv_now(c->srv->loop);
  }
}

static void reading_stop(struct conn *c) {
  if (!c->reading)
    return;
  uv_read_stop((uv_stream_t *)&c->pipe);
  c->reading = false;
}

static void on_written(uv_write_t *req, int status) {
  struct write_req *w = (struct write_req *)req;
  struct conn *c = w->conn;
  c->queued -= w->cost;
  msgpack_sbuffer_destroy(&w->sb);
  bool close_after = w->close_after;
  free(w);
  if (c->closing)
    return;
  if (status < 0 || close_after) {
    conn_close(c);
    return;
  }
  c->last_active = uv_now(c->srv->loop);
  if (c->events_lost && c->queued < SERVER_MAX_NOTIFY_QUEUED / 2)
    conn_lost_notify(c);
  if (c->queued >= SERVER_MAX_PENDING_OUT / 2)
    return;
  /* Requests that waited for room are answered before more are read. */
  if (c->held)
    conn_process(c);
  else
    reading_start(c);
}

/*
 * Queues w's bytes. What counts against the output limit is the memory w
 * holds (its buffer is trimmed to the payload first), not only the payload:
 * a queue of small replies costs far more than their bytes.
 */
static void conn_send(struct conn *c, struct write_req *w, bool close_after) {
  w->conn = c;
  w->close_after = close_after;
  if (w->sb.size == 0) {
    msgpack_sbuffer_destroy(&w->sb);
    free(w);
    if (close_after)
      conn_close(c);
    return;
  }
  if (w->sb.alloc > w->sb.size + 256) {
    char *trimmed = realloc(w->sb.data, w->sb.size);
    if (trimmed) {
      w->sb.data = trimmed;
      w->sb.alloc = w->sb.size;
    }
  }
  uv_buf_t b = uv_buf_init(w->sb.data, (unsigned)w->sb.size);
  w->cost = w->sb.alloc + WRITE_OVERHEAD;
  if (uv_write(&w->req, (uv_stream_t *)&c->pipe, &b, 1, on_written) < 0) {
    msgpack_sbuffer_destroy(&w->sb);
    free(w);
    if (close_after)
      conn_close(c);
    return;
  }
  c->queued += w->cost;
  /* A peer that never reads cannot make us buffer without bound. */
  if (c->queued > SERVER_MAX_PENDING_OUT)
    reading_stop(c);
}

static struct write_req *write_req_new(void) {
  struct write_req *w = calloc(1, sizeof(*w));
  if (w)
    msgpack_sbuffer_init(&w->sb);
  return w;
}

/* Answers an error with a nil msgid (msg NULL: the code's text), then closes. */
static void conn_fail(struct conn *c, int code, const char *msg) {
  struct write_req *w = write_req_new();
  if (!w) {
    conn_close(c);
    return;
  }
  msgpack_packer pk;
  msgpack_packer_init(&pk, &w->sb, msgpack_sbuffer_write);
  proto_error_encode(&pk, NULL, code, msg);
  conn_send(c, w, true);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b) {
  struct conn *c = s->data;
  (void)b;

  if (nread == UV_ENOBUFS) {
    /* The buffer cap was reached without a complete message. */
    conn_fail(c, MCPSIG_ETOOBIG, NULL);
    return;
  }
  if (nread < 0) {
    conn_close(c);
    return;
  }
  c->rx_len += (size_t)nread;
  c->last_active = uv_now(c->srv->loop);
  conn_process(c);
}

/*
 * Answers the complete requests in c->rx, as many as fit: at most ROUND_OUT
 * of replies per call, and none once the connection's queued output is at
 * its limit. What is left waits in rx (held), with reading stopped, until
 * on_written() finds room. So one write of many pipelined requests can
 * neither grow the agent's memory past the limit nor hold the event loop.
 */
static void conn_process(struct conn *c) {
  if (c->closing)
    return;
  if (c->queued >= SERVER_MAX_PENDING_OUT) {
    c->held = c->rx_len > 0;
    reading_stop(c);
    return;
  }
  struct write_req *w = write_req_new();
  if (!w) {
    conn_close(c);
    return;
  }
  msgpack_packer pk;
  msgpack_packer_init(&pk, &w->sb, msgpack_sbuffer_write);
  size_t budget = SERVER_MAX_PENDING_OUT - c->queued;
  bool more = false;
  ssize_t used = dispatch_bytes_bounded(c->srv->agent, &c->peer, c->rx, c->rx_len, &pk, &w->sb,
                                        budget < ROUND_OUT ? budget : ROUND_OUT, &more);
  if (used < 0) {
    log_info(&c->peer, "closing connection %lu: %s", c->peer.id, mcpsig_strerror((int)used));
    sodium_memzero(c->rx, c->rx_len);
    c->rx_len = 0;
    c->held = false;
    reading_stop(c);
    conn_send(c, w, true);
    return;
  }
  if (used > 0) {
    memmove(c->rx, c->rx + used, c->rx_len - (size_t)used);
    sodium_memzero(c->rx + c->rx_len - (size_t)used, (size_t)used);
    c->rx_len -= (size_t)used;
  }
  /* The partial-message clock runs from the start of each incomplete message. */
  if (c->rx_len == 0 || more)
    c->partial_since = 0;
  else if (used > 0 || !c->partial_since)
    c->partial_since = uv_now(c->srv->loop);
  c->held = more;
  conn_send(c, w, false);
  if (c->closing)
    return;
  if (more)
    reading_stop(c); /* on_written() goes on with them */
  else if (c->queued <= SERVER_MAX_PENDING_OUT)
    reading_start(c);
}

/*
 * After notifications were dropped for a subscriber that did not read, and
 * once it has caught up: one "events.lost" notification with their count,
 * so it knows to read the current state (rotate.status, identity.list).
 */
static void conn_lost_notify(struct conn *c) {
  struct write_req *w = write_req_new();
  if (!w)
    return;
  msgpack_packer pk;
  msgpack_packer_init(&pk, &w->sb, msgpack_sbuffer_write);
  struct proto_events_lost lost = { .count = (int64_t)c->events_lost };
  if (proto_notification_encode(&pk, PROTO_EVENTS_LOST_NOTIFICATION, &proto_events_lost_schema, &lost) < 0) {
    msgpack_sbuffer_destroy(&w->sb);
    free(w);
    return;
  }
  log_info(&c->peer, "connection %lu did not read %llu notification(s): told it so", c->peer.id,
           (unsigned long long)c->events_lost);
  c->events_lost = 0;
  conn_send(c, w, false);
}

/*
 * Sends a rotation event to every subscribed connection. A subscriber that
 * is SERVER_MAX_NOTIFY_QUEUED behind gets none: each is counted instead,
 * and it hears how many it lost once it has read what is queued. So
 * subscribers that never read cost a bounded amount each, whatever the
 * rate of rotations.
 */
static void server_notify(void *data, const struct proto_rotation_event *ev) {
  struct server *srv = data;
  for (struct conn *c = srv->conns; c; c = c->next) {
    if (!c->peer.subscribed || c->closing)
      continue;
    if (c->events_lost || c->queued > SERVER_MAX_NOTIFY_QUEUED) {
      if (c->events_lost++ == 0)
        log_info(&c->peer, "connection %lu does not read its notifications: dropping them, counted", c->peer.id);
      continue;
    }
    struct write_req *w = write_req_new();
    if (!w) {
      conn_close(c);
      continue;
    }
    msgpack_packer pk;
    msgpack_packer_init(&pk, &w->sb, msgpack_sbuffer_write);
    if (proto_notification_encode(&pk, PROTO_ROTATION_NOTIFICATION, &proto_rotation_event_schema, ev) < 0) {
      msgpack_sbuffer_destroy(&w->sb);
      free(w);
      conn_close(c);
      continue;
    }
    conn_send(c, w, false);
  }
}

static void conn_identify(struct conn *c, int fd) {
  peer_identify(fd, c->peer.pid, &c->who);
  c->peer.exe = c->who.exe[0] ? c->who.exe : NULL;
  c->peer.comm = c->who.comm[0] ? c->who.comm : NULL;
  c->peer.cmdline = c->who.cmdline[0] ? c->who.cmdline : NULL;
  c->peer.pidfd = c->who.pidfd;
}

/*
 * The connection that has waited longest with nothing in flight (no partial
 * request, no unsent output), other than except; a subscriber only when no
 * other connection is idle, since waiting is what subscribers do.
 */
static struct conn *conn_oldest_idle(struct server *srv, const struct conn *except) {
  struct conn *best = NULL, *best_sub = NULL;
  for (struct conn *c = srv->conns; c; c = c->next) {
    if (c == except || c->closing || c->rx_len || c->queued || c->held)
      continue;
    struct conn **slot = c->peer.subscribed ? &best_sub : &best;
    if (!*slot || c->last_active < (*slot)->last_active)
      *slot = c;
  }
  return best ? best : best_sub;
}

static void on_connection(uv_stream_t *listener, int status) {
  struct server *srv = listener->data;
  struct ucred cred = { .pid = 0, .uid = (uid_t)-1, .gid = (gid_t)-1 };
  socklen_t len = sizeof(cred);
  uv_os_fd_t fd;

  if (status < 0) {
    log_msg(LOG_WARNING, "accept failed: %s", uv_strerror(status));
    return;
  }
  struct conn *c = calloc(1, sizeof(*c));
  if (!c || uv_pipe_init(srv->loop, &c->pipe, 0) < 0) {
    free(c);
    return;
  }
  if (srv->exit_idle_ms)
    uv_timer_stop(&srv->idle_timer);
  c->srv = srv;
  c->pipe.data = c;
  c->next = srv->conns;
  if (srv->conns)
    srv->conns->prev = c;
  srv->conns = c;
  srv->n_conns++;
  c->peer.id = ++srv->next_id;
  if (uv_accept(listener, (uv_stream_t *)&c->pipe) < 0 || uv_fileno((uv_handle_t *)&c->pipe, &fd) < 0) {
    conn_close(c);
    return;
  }
  /* Invariant 5: only the owner's processes are served, and the check
   * comes before any byte of theirs is read. */
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || cred.uid != geteuid()) {
    char why[64];
    snprintf(why, sizeof(why), "not this agent's user (uid %ld)", (long)geteuid());
    log_peer_refused(fd, (long)cred.pid, (long)cred.uid, why);
    conn_close(c);
    return;
  }
  c->peer.pid = cred.pid;
  c->peer.uid = cred.uid;
  conn_identify(c, fd);
  c->last_active = uv_now(srv->loop);
  if (srv->n_conns > MCPSIG_MAX_CONNECTIONS) {
    /* At the limit: make room by closing the connection that has been
     * idle longest, so that one process holding every slot cannot lock
     * the others out. Only when none is idle is the newcomer refused. */
    struct conn *victim = conn_oldest_idle(srv, c);
    if (victim) {
      log_info(&victim->peer, "closing connection %lu: the agent has %u connections, and this one was idle longest",
               victim->peer.id, MCPSIG_MAX_CONNECTIONS);
      reading_stop(victim);
      conn_fail(victim, MCPSIG_EBUSY, "the agent is at its connection limit, and this connection was idle longest");
    } else {
      char why[64];
      snprintf(why, sizeof(why), "%zu connections already open, none idle", srv->n_conns - 1);
      log_peer_refused(fd, (long)cred.pid, (long)cred.uid, why);
      conn_fail(c, MCPSIG_EBUSY, NULL);
      return;
    }
  }
  if (uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read) < 0) {
    conn_close(c);
    return;
  }
  c->reading = true;
}

/* ---- lifecycle ---- */

static void on_signal(uv_signal_t *h, int signum) {
  struct server *srv = h->data;
  if (signum == SIGHUP) {
    /* Reload: re-read the keystore; connections stay open. */
    char err[1024] = "";
    service_notify("RELOADING=1");
    int r = agent_reload(srv->agent, err, sizeof(err));
    if (r < 0)
      log_msg(LOG_ERR, "reload failed, keeping the keys already loaded: %s", err[0] ? err : mcpsig_strerror(r));
    else
      log_msg(LOG_INFO, "reloaded the keystore: %zu identities, %zu binding(s)", srv->agent->n_identities,
              srv->agent->n_bindings);
    service_notify("READY=1");
    return;
  }
  log_msg(LOG_INFO, "received %s, shutting down", signum == SIGTERM ? "SIGTERM" : "SIGINT");
  service_notify("STOPPING=1");
  server_stop(srv);
}

void server_status(const struct server *srv, char *buf, size_t size) {
  snprintf(buf, size, "%zu connection%s, %zu binding%s, %llu signature%s since start", srv->n_conns,
           srv->n_conns == 1 ? "" : "s", srv->agent->n_bindings, srv->agent->n_bindings == 1 ? "" : "s",
           (unsigned long long)srv->agent->n_signatures, srv->agent->n_signatures == 1 ? "" : "s");
}

/*
 * Closes connections that have held part of a message for longer than the
 * partial-message timeout while we were reading: a peer that sends half a
 * request and waits would otherwise hold its buffer forever.
 */
static void partial_sweep(struct server *srv) {
  uint64_t now = uv_now(srv->loop);
  for (struct conn *c = srv->conns, *next; c; c = next) {
    next = c->next;
    if (c->closing || !c->reading || !c->partial_since || now - c->partial_since < srv->partial_timeout_ms)
      continue;
    char msg[96];
    snprintf(msg, sizeof(msg), "no complete message within %llu s; closing",
             (unsigned long long)(srv->partial_timeout_ms / 1000));
    log_info(&c->peer, "closing connection %lu: %s", c->peer.id, msg);
    uv_read_stop((uv_stream_t *)&c->pipe);
    c->reading = false;
    c->partial_since = 0;
    conn_fail(c, MCPSIG_EPROTO, msg);
  }
}

/* agent.status: what only the server knows. */
static void server_stats(void *data, size_t *ret_connections, size_t *ret_output_queued_max) {
  struct server *srv = data;
  size_t max = 0;
  for (struct conn *c = srv->conns; c; c = c->next)
    if (c->queued > max)
      max = c->queued;
  *ret_connections = srv->n_conns;
  *ret_output_queued_max = max;
}

static void on_status_tick(uv_timer_t *t) {
  struct server *srv = t->data;
  char now[sizeof(srv->status)];
  partial_sweep(srv);
  server_status(srv, now, sizeof(now));
  if (strcmp(now, srv->status) != 0) {
    memcpy(srv->status, now, sizeof(now));
    service_notify("STATUS=%s", now);
  }
}

/* The loop is about to wait: no key stays readable while the agent is idle. */
static void on_before_wait(uv_prepare_t *h) {
  struct server *srv = h->data;
  keypool_seal(srv->agent->pool);
}

static void server_path_free(struct server *srv) {
  free(srv->path);
  srv->path = NULL;
}

int server_start(struct server *srv, uv_loop_t *loop, struct agent *agent, const char *path,
                 const struct server_options *opt, char *err, size_t errlen) {
  int listen_fd = opt->listen_fd;
  uint64_t exit_idle_ms = opt->exit_idle_ms;
  int r;

  memset(srv, 0, sizeof(*srv));
  srv->loop = loop;
  srv->agent = agent;
  srv->exit_idle_ms = exit_idle_ms;
  srv->partial_timeout_ms = opt->partial_timeout_ms ? opt->partial_timeout_ms : MCPSIG_PARTIAL_TIMEOUT_MS;
  agent->notify = server_notify;
  agent->notify_data = srv;
  agent->server_stats = server_stats;
  agent->server_stats_data = srv;
  if (!(srv->path = strdup(path)))
    return -ENOMEM;
  uv_pipe_init(loop, &srv->listener, 0);
  srv->listener.data = srv;
  if (listen_fd >= 0) {
    /* systemd owns this socket and its file: we serve it and never
     * remove it, so the next activation finds it in place. */
    if ((r = uv_pipe_open(&srv->listener, listen_fd)) < 0) {
      uv_close((uv_handle_t *)&srv->listener, NULL);
      server_path_free(srv);
      return errmsg(err, errlen, r, "cannot use the socket systemd passed: %s", uv_strerror(r));
    }
  } else {
    if ((r = server_socket_prepare(path, err, errlen)) < 0) {
      uv_close((uv_handle_t *)&srv->listener, NULL);
      server_path_free(srv);
      return r;
    }
    /* The socket is created 0600 from the start: no window in which
     * another user could connect. */
    mode_t old = umask(0177);
    r = uv_pipe_bind(&srv->listener, path);
    umask(old);
    if (r < 0) {
      uv_close((uv_handle_t *)&srv->listener, NULL);
      server_path_free(srv);
      return errmsg(err, errlen, r, "cannot bind %s: %s", path, uv_strerror(r));
    }
    srv->owns_path = true;
    (void)chmod(path, 0600);
  }
  if ((r = uv_listen((uv_stream_t *)&srv->listener, 511, on_connection)) < 0) {
    server_stop(srv);
    return errmsg(err, errlen, r, "cannot listen on %s: %s", path, uv_strerror(r));
  }
  srv->listening = true;
  uv_signal_init(loop, &srv->sig_term);
  uv_signal_init(loop, &srv->sig_int);
  uv_signal_init(loop, &srv->sig_hup);
  srv->sig_term.data = srv->sig_int.data = srv->sig_hup.data = srv;
  uv_signal_start(&srv->sig_term, on_signal, SIGTERM);
  uv_signal_start(&srv->sig_int, on_signal, SIGINT);
  uv_signal_start(&srv->sig_hup, on_signal, SIGHUP);
  uv_timer_init(loop, &srv->status_timer);
  srv->status_timer.data = srv;
  server_status(srv, srv->status, sizeof(srv->status));
  uv_timer_start(&srv->status_timer, on_status_tick, 1000, 1000);
  uv_prepare_init(loop, &srv->seal);
  srv->seal.data = srv;
  uv_prepare_start(&srv->seal, on_before_wait);
  keypool_defer_seal(agent->pool, true);
  uv_timer_init(loop, &srv->idle_timer);
  srv->idle_timer.data = srv;
  if (exit_idle_ms)
    uv_timer_start(&srv->idle_timer, on_idle, exit_idle_ms, 0);
  return 0;
}

void server_stop(struct server *srv) {
  if (srv->stopping)
    return;
  srv->stopping = true;
  srv->agent->notify = NULL;
  srv->agent->server_stats = NULL;
  if (!uv_is_closing((uv_handle_t *)&srv->listener))
    uv_close((uv_handle_t *)&srv->listener, NULL);
  for (struct conn *c = srv->conns; c; c = c->next)
    conn_close(c);
  if (srv->listening) {
    uv_close((uv_handle_t *)&srv->sig_term, NULL);
    uv_close((uv_handle_t *)&srv->sig_int, NULL);
    uv_close((uv_handle_t *)&srv->sig_hup, NULL);
    uv_close((uv_handle_t *)&srv->status_timer, NULL);
    uv_close((uv_handle_t *)&srv->idle_timer, NULL);
    uv_close((uv_handle_t *)&srv->seal, NULL);
    keypool_defer_seal(srv->agent->pool, false);
  }
  if (srv->owns_path && srv->path)
    (void)unlink(srv->path);
  server_path_free(srv);
}
