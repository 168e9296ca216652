/*
 * client.c: libmcpsig, a small blocking client of mcpsig-agent.
 *
 * Every wait is a poll() against one deadline per call, so a wedged agent
 * gives MCPSIG_ETIMEDOUT instead of a hang.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <sodium.h>

#include "proto.h"

/* A notification received while waiting for something else. */
struct queued_event {
  mcpsig_event *ev;
  struct queued_event *next;
};

struct mcpsig_client {
  int fd;
  int timeout_ms;
  uint32_t next_msgid;
  char err[512];
  unsigned char *rx;
  size_t rx_len, rx_cap;
  struct queued_event *events, **events_tail;
  size_t n_events;
};

/* Events a handle holds before the oldest are dropped: a subscriber that
 * never asks for its events cannot make the library grow without bound. */
#define MAX_QUEUED_EVENTS 1024

/* A write buffer that wipes its old storage when it grows: requests may
 * carry bodies and, on import, private keys. */
struct wbuf {
  unsigned char *p;
  size_t len, cap;
};

static int wbuf_write(void *data, const char *buf, size_t len) {
  struct wbuf *w = data;
  if (len > w->cap - w->len) {
    size_t cap = w->cap ? w->cap : 1024;
    while (cap - w->len < len) {
      if (cap > SIZE_MAX / 2)
        return -1;
      cap *= 2;
    }
    unsigned char *p = malloc(cap);
    if (!p)
      return -1;
    if (w->p) {
      memcpy(p, w->p, w->len);
      sodium_memzero(w->p, w->cap);
      free(w->p);
    }
    w->p = p;
    w->cap = cap;
  }
  memcpy(w->p + w->len, buf, len);
  w->len += len;
  return 0;
}

static void wbuf_free(struct wbuf *w) {
  if (w->p) {
    sodium_memzero(w->p, w->cap);
    free(w->p);
  }
  memset(w, 0, sizeof(*w));
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int wait_fd(int fd, short events, int64_t deadline) {
  for (;;) {
    int64_t left = deadline - now_ms();
    if (left <= 0)
      return MCPSIG_ETIMEDOUT;
    struct pollfd p = { fd, events, 0 };
    int r = poll(&p, 1, left > 1000000 ? 1000000 : (int)left);
    if (r > 0)
      return 0;
    if (r == 0)
      return MCPSIG_ETIMEDOUT;
    if (errno != EINTR)
      return -errno;
  }
}

static int set_error(mcpsig_client *c, int code, const char *msg) {
  if (c)
    snprintf(c->err, sizeof(c->err), "%s", msg ? msg : mcpsig_strerror(code));
  return code;
}

int mcpsig_socket_path_default(char *buf, size_t size) {
  return proto_socket_path_default(buf, size, getenv("XDG_RUNTIME_DIR"), getenv("TMPDIR"), getuid(), NULL);
}

int mcpsig_socket_path(char *buf, size_t size) {
  const char *env = getenv("MCPSIG_AUTH_SOCK");
  if (env && *env) {
    int n = snprintf(buf, size, "%s", env);
    return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
  }
  return mcpsig_socket_path_default(buf, size);
}

/* Where every refusal to trust a socket ends: the two ways out. */
#define PEER_FIX                                                                                      \
  "set MCPSIG_AUTH_SOCK to your own agent's socket; eval \"$(mcpsig-agent)\" starts one in a private " \
  "directory"

__attribute__((format(printf, 3, 4)))
static void why_format(char *why, size_t size, const char *fmt, ...) {
  va_list ap;
  if (!why || size == 0)
    return;
  va_start(ap, fmt);
  vsnprintf(why, size, fmt, ap);
  va_end(ap);
}

/*
 * The directory of the socket must be one that only this user (or root) can
 * change: whoever can write it can listen there in place of the agent. This
 * is checked before connecting, so such a listener never even sees a
 * connection.
 */
static int socket_dir_verify(const char *path, uid_t uid, char *why, size_t why_size) {
  char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
  struct stat st;
  int r;

  if ((r = proto_socket_dir(path, dir, sizeof(dir))) < 0)
    return r;
  r = proto_socket_dir_check(dir, uid, &st);
  if (r != MCPSIG_EPEER)
    return 0; /* absent, or not a directory: connecting fails and says so */
  if (S_ISLNK(st.st_mode))
    why_format(why, why_size,
               "the agent's socket %s is in %s, a symbolic link (owned by uid %lu) that can be pointed at another "
               "user's listener; nothing was sent. Use the real directory, or " PEER_FIX,
               path, dir, (unsigned long)st.st_uid);
  else if (st.st_uid != uid && st.st_uid != 0)
    why_format(why, why_size,
               "the agent's socket %s is in %s, owned by uid %lu, not by you (uid %lu): whoever owns it can listen "
               "there in place of your agent; nothing was sent. Remove the directory %s, owned by uid %lu (as root or "
               "its owner), or " PEER_FIX,
               path, dir, (unsigned long)st.st_uid, (unsigned long)uid, dir, (unsigned long)st.st_uid);
  else if (st.st_uid == uid)
    why_format(why, why_size,
               "the agent's socket %s is in %s (owned by you, uid %lu), which group or others may write (mode "
               "%04o): anyone can put a listener there in place of your agent; nothing was sent. Fix it with: "
               "chmod 700 %s, or " PEER_FIX,
               path, dir, (unsigned long)uid, (unsigned)(st.st_mode & 07777), dir);
  else
    /* Root's and shared, such as /tmp itself: anyone may take the name. */
    why_format(why, why_size,
               "the agent's socket %s is in %s (owned by uid 0), which group or others may write (mode %04o): "
               "anyone can take that name before your agent does; nothing was sent. Put the socket in a directory "
               "of your own (mode 0700), or " PEER_FIX,
               path, dir, (unsigned)(st.st_mode & 07777));
  return MCPSIG_EPEER;
}

/*
 * The process listening on the socket must run as this user or as root.
 * SO_PEERCRED reports the credentials the listener had when it called
 * listen(), which no later act of its own can change, and it is read before
 * a single byte is sent: a fake agent learns nothing.
 */
static int socket_peer_verify(int fd, const char *path, uid_t uid, char *why, size_t why_size) {
  char dir[sizeof(((struct sockaddr_un *)0)->sun_path)] = ".";
  struct ucred cred;
  socklen_t len = sizeof(cred);

  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
    return -errno;
  if (cred.uid == uid || cred.uid == 0)
    return 0;
  (void)proto_socket_dir(path, dir, sizeof(dir));
  why_format(why, why_size,
             "the process listening on %s runs as uid %lu, not as you (uid %lu) or root: it is not your agent; "
             "nothing was sent. Remove the directory %s (or the socket in it), or " PEER_FIX,
             path, (unsigned long)cred.uid, (unsigned long)uid, dir);
  return MCPSIG_EPEER;
}

static int connect_verified(mcpsig_client **ret_client, const char *path, int timeout_ms, char *why,
                            size_t why_size) {
  char def[sizeof(((struct sockaddr_un *)0)->sun_path)];
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  /* The agent serves only peers of its own effective uid; its clients trust
   * only an agent of theirs (or root). */
  uid_t uid = geteuid();
  int r;

  if (!ret_client)
    return -EINVAL;
  if (!path) {
    if ((r = mcpsig_socket_path(def, sizeof(def))) < 0)
      return r;
    path = def;
  }
  if (strlen(path) >= sizeof(sa.sun_path))
    return -ENAMETOOLONG;
  strcpy(sa.sun_path, path);
  if (timeout_ms <= 0)
    timeout_ms = MCPSIG_DEFAULT_TIMEOUT_MS;
  if ((r = socket_dir_verify(path, uid, why, why_size)) < 0)
    return r;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0)
    return -errno;
  if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
    if (errno == EAGAIN || errno == EINPROGRESS) {
      int so = 0;
      socklen_t sl = sizeof(so);
      if ((r = wait_fd(fd, POLLOUT, now_ms() + timeout_ms)) < 0) {
        close(fd);
        return r;
      }
      if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &so, &sl) < 0 || so != 0) {
        close(fd);
        why_format(why, why_size, "cannot connect to the agent at %s: %s", path, strerror(so));
        errno = so;
        return MCPSIG_ECONNECT;
      }
    } else {
      int e = errno;
      close(fd);
      why_format(why, why_size, "cannot connect to the agent at %s: %s", path, strerror(e));
      errno = e;
      return MCPSIG_ECONNECT;
    }
  }
  if ((r = socket_peer_verify(fd, path, uid, why, why_size)) < 0) {
    close(fd);
    return r;
  }
  mcpsig_client *c = calloc(1, sizeof(*c));
  if (!c) {
    close(fd);
    return -ENOMEM;
  }
  c->fd = fd;
  c->timeout_ms = timeout_ms;
  c->next_msgid = 1;
  c->events_tail = &c->events;
  *ret_client = c;
  return 0;
}

int mcpsig_connect_explain(mcpsig_client **ret_client, const char *path, int timeout_ms, char *why,
                           size_t why_size) {
  if (why && why_size > 0)
    why[0] = '\0';
  int r = connect_verified(ret_client, path, timeout_ms, why, why_size);
  if (r < 0 && why && why_size > 0 && !why[0]) {
    int e = errno;
    why_format(why, why_size, "cannot connect to the agent at %s: %s", path ? path : "(the default socket)",
               mcpsig_strerror(r));
    errno = e;
  }
  return r;
}

int mcpsig_connect(mcpsig_client **ret_client, const char *path, int timeout_ms) {
  return connect_verified(ret_client, path, timeout_ms, NULL, 0);
}

mcpsig_client *mcpsig_close(mcpsig_client *c) {
  if (!c)
    return NULL;
  if (c->fd >= 0)
    close(c->fd);
  while (c->events) {
    struct queued_event *q = c->events;
    c->events = q->next;
    mcpsig_event_free(q->ev);
    free(q);
  }
  if (c->rx) {
    sodium_memzero(c->rx, c->rx_cap);
    free(c->rx);
  }
  free(c);
  return NULL;
}

const char *mcpsig_last_error(const mcpsig_client *c) {
  return c ? c->err : "";
}

static int send_all(mcpsig_client *c, const unsigned char *p, size_t len, int64_t deadline) {
  while (len > 0) {
    ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN) {
        int r = wait_fd(c->fd, POLLOUT, deadline);
        if (r < 0)
          return set_error(c, r, NULL);
        continue;
      }
      return set_error(c, errno == EPIPE || errno == ECONNRESET ? MCPSIG_ECLOSED : -errno, NULL);
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

/* Reads until rx holds one complete message; returns its length. */
static ssize_t recv_message(mcpsig_client *c, int64_t deadline) {
  for (;;) {
    ssize_t n = proto_frame_scan(c->rx, c->rx_len, MCPSIG_MAX_MSG_LEN, MCPSIG_MAX_DEPTH);
    if (n != 0)
      return n < 0 ? set_error(c, (int)n, "the agent sent a message that cannot be framed") : n;
    if (c->rx_cap - c->rx_len < 4096) {
      size_t cap = c->rx_cap ? c->rx_cap * 2 : 16384;
      unsigned char *p = realloc(c->rx, cap);
      if (!p)
        return set_error(c, -ENOMEM, NULL);
      c->rx = p;
      c->rx_cap = cap;
    }
    ssize_t got = recv(c->fd, c->rx + c->rx_len, c->rx_cap - c->rx_len, 0);
    if (got == 0)
      return set_error(c, MCPSIG_ECLOSED, NULL);
    if (got < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN) {
        int r = wait_fd(c->fd, POLLIN, deadline);
        if (r < 0)
          return set_error(c, r, NULL);
        continue;
      }
      return set_error(c, errno == ECONNRESET ? MCPSIG_ECLOSED : -errno, NULL);
    }
    c->rx_len += (size_t)got;
  }
}

static void rx_consume(mcpsig_client *c, size_t n) {
  memmove(c->rx, c->rx + n, c->rx_len - n);
  c->rx_len -= n;
}

/* The error code of an error reply, as our negative constant. */
static int agent_code(int64_t code) {
  switch (-code) {
#define MCPSIG_AGENT_CODE(name, val, msg) \
  case MCPSIG_##name:                     \
    return MCPSIG_##name;
    MCPSIG_ERRNO_MAP(MCPSIG_AGENT_CODE)
#undef MCPSIG_AGENT_CODE
  default:
    return MCPSIG_EAGENT;
  }
}

/* Decodes a notification; NULL if it is not one this library knows. */
/* "events.lost": the agent dropped notifications this connection did not read. */
static mcpsig_event *event_lost_decode(const msgpack_object *m) {
  const msgpack_object *f = m->via.array.ptr;
  struct proto_events_lost lost;
  if (f[2].type != MSGPACK_OBJECT_ARRAY || f[2].via.array.size != 1 ||
      proto_decode(&proto_events_lost_schema, &f[2].via.array.ptr[0], NULL, &lost, 0, NULL, 0) < 0 || lost.count < 0)
    return NULL;
  mcpsig_event *ev = calloc(1, sizeof(*ev));
  if (!ev)
    return NULL;
  *ev = (mcpsig_event){ "lost", "", "", "", "", "", NULL, (uint64_t)lost.count };
  return ev;
}

static mcpsig_event *event_decode(const msgpack_object *m) {
  const msgpack_object *f = m->via.array.ptr;
  size_t n = strlen(PROTO_ROTATION_NOTIFICATION);
  size_t nl = strlen(PROTO_EVENTS_LOST_NOTIFICATION);
  if (f[1].type == MSGPACK_OBJECT_STR && f[1].via.str.size == nl &&
      memcmp(f[1].via.str.ptr, PROTO_EVENTS_LOST_NOTIFICATION, nl) == 0)
    return event_lost_decode(m);
  if (f[1].type != MSGPACK_OBJECT_STR || f[1].via.str.size != n ||
      memcmp(f[1].via.str.ptr, PROTO_ROTATION_NOTIFICATION, n) != 0 || f[2].type != MSGPACK_OBJECT_ARRAY ||
      f[2].via.array.size != 1)
    return NULL;
  struct proto_rotation_event e;
  msgpack_zone *zone = msgpack_zone_new(1024);
  mcpsig_event *ev = calloc(1, sizeof(*ev));
  if (!zone || !ev || proto_decode(&proto_rotation_event_schema, &f[2].via.array.ptr[0], zone, &e, 0, NULL, 0) < 0) {
    msgpack_zone_free(zone);
    free(ev);
    return NULL;
  }
  *ev = (mcpsig_event){ e.event, e.identity, e.origin, e.tag, e.old_keyid, e.new_keyid, zone, 0 };
  return ev;
}

static void event_queue(mcpsig_client *c, const msgpack_object *m) {
  mcpsig_event *ev = event_decode(m);
  struct queued_event *q = ev ? calloc(1, sizeof(*q)) : NULL;
  if (!q) {
    mcpsig_event_free(ev);
    return;
  }
  if (c->n_events >= MAX_QUEUED_EVENTS) {
    struct queued_event *old = c->events;
    c->events = old->next;
    if (!c->events)
      c->events_tail = &c->events;
    mcpsig_event_free(old->ev);
    free(old);
    c->n_events--;
  }
  q->ev = ev;
  *c->events_tail = q;
  c->events_tail = &q->next;
  c->n_events++;
}

/*
 * One request and its reply. On success the result is decoded into out with
 * strings in a new zone returned in *ret_zone (NULL schema: result ignored).
 */
static int call(mcpsig_client *c, const char *method, const struct proto_schema *pschema, const void *params,
                const struct proto_schema *rschema, void *out, msgpack_zone **ret_zone) {
  struct wbuf w = { 0 };
  msgpack_packer pk;
  int64_t deadline;
  int r;

  if (!c)
    return -EINVAL;
  c->err[0] = '\0';
  if (c->fd < 0)
    return set_error(c, MCPSIG_ECLOSED, NULL);
  uint32_t msgid = c->next_msgid++;
  msgpack_packer_init(&pk, &w, wbuf_write);
  if (proto_request_encode(&pk, msgid, method, pschema, params) < 0) {
    wbuf_free(&w);
    return set_error(c, -ENOMEM, NULL);
  }
  if (w.len > MCPSIG_MAX_MSG_LEN) {
    wbuf_free(&w);
    return set_error(c, MCPSIG_ETOOBIG, "request too large: send a precomputed content_digest for big bodies");
  }
  deadline = now_ms() + c->timeout_ms;
  r = send_all(c, w.p, w.len, deadline);
  wbuf_free(&w);
  if (r < 0)
    goto broken;

  for (;;) {
    ssize_t n = recv_message(c, deadline);
    if (n < 0) {
      r = (int)n;
      goto broken;
    }
    msgpack_unpacked up;
    size_t off = 0;
    msgpack_unpacked_init(&up);
    if (msgpack_unpack_next(&up, (const char *)c->rx, (size_t)n, &off) != MSGPACK_UNPACK_SUCCESS) {
      msgpack_unpacked_destroy(&up);
      r = set_error(c, MCPSIG_EPROTO, "the agent sent malformed msgpack");
      goto broken;
    }
    const msgpack_object *m = &up.data;
    const msgpack_object *f = m->type == MSGPACK_OBJECT_ARRAY ? m->via.array.ptr : NULL;
    if (f && m->via.array.size == 3 && f[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER && f[0].via.u64 == PROTO_NOTIFICATION) {
      event_queue(c, m);
      msgpack_unpacked_destroy(&up);
      rx_consume(c, (size_t)n);
      continue;
    }
    if (!f || m->via.array.size != 4 || f[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER || f[0].via.u64 != PROTO_RESPONSE) {
      msgpack_unpacked_destroy(&up);
      r = set_error(c, MCPSIG_EPROTO, "the agent sent something other than a response");
      goto broken;
    }
    bool ours = f[1].type == MSGPACK_OBJECT_POSITIVE_INTEGER && f[1].via.u64 == msgid;
    if (!ours && f[1].type != MSGPACK_OBJECT_NIL) {
      msgpack_unpacked_destroy(&up);
      rx_consume(c, (size_t)n);
      continue; /* a late reply to a call that timed out */
    }
    msgpack_zone *zone = msgpack_zone_new(2048);
    if (!zone) {
      msgpack_unpacked_destroy(&up);
      r = set_error(c, -ENOMEM, NULL);
      goto broken;
    }
    if (f[2].type != MSGPACK_OBJECT_NIL) {
      struct proto_error e;
      char why[128];
      if (proto_decode(&proto_error_schema, &f[2], zone, &e, 0, why, sizeof(why)) < 0)
        r = set_error(c, MCPSIG_EPROTO, "the agent sent a malformed error");
      else
        r = set_error(c, agent_code(e.code), e.message);
      msgpack_zone_free(zone);
    } else if (rschema) {
      char why[160];
      /* The receive buffer is wiped below, so results own their bytes. */
      r = proto_decode(rschema, &f[3], zone, out, PROTO_DECODE_COPY_BIN, why, sizeof(why));
      if (r < 0) {
        snprintf(c->err, sizeof(c->err), "the agent sent a malformed result: %s", why);
        r = MCPSIG_EPROTO;
        msgpack_zone_free(zone);
      } else if (ret_zone) {
        *ret_zone = zone;
      } else {
        msgpack_zone_free(zone);
      }
    } else {
      msgpack_zone_free(zone);
      r = 0;
    }
    msgpack_unpacked_destroy(&up);
    sodium_memzero(c->rx, (size_t)n);
    rx_consume(c, (size_t)n);
    /* A nil msgid is the agent's answer to a message it could not take;
     * it closes the connection after it. */
    if (!ours && r >= 0)
      r = set_error(c, MCPSIG_EPROTO, NULL);
    if (!ours)
      goto broken;
    return r;
  }

broken:
  /* After a timeout or a framing error the stream position is unknown:
   * later calls on this handle fail instead of reading a stale reply. */
  close(c->fd);
  c->fd = -1;
  return r;
}

/* ---- typed calls ---- */

struct result_box {
  msgpack_zone *zone;
};

int mcpsig_hello(mcpsig_client *c, mcpsig_hello_info **ret_info) {
  struct proto_hello_result res;
  msgpack_zone *zone = NULL;
  char empty = 0;
  int r = call(c, "hello", &proto_empty_schema, &empty, &proto_hello_result_schema, &res, &zone);
  if (r < 0)
    return r;
  mcpsig_hello_info *info = calloc(1, sizeof(*info));
  const char **algs = msgpack_zone_malloc(zone, (res.n_algorithms + 1) * sizeof(char *));
  if (!info || !algs) {
    free(info);
    msgpack_zone_free(zone);
    return -ENOMEM;
  }
  for (size_t i = 0; i < res.n_algorithms; i++)
    algs[i] = res.algorithms[i];
  algs[res.n_algorithms] = NULL;
  info->protocol = (uint32_t)res.protocol;
  info->agent_version = res.agent_version;
  info->algorithms = algs;
  info->n_algorithms = res.n_algorithms;
  info->pid = res.pid;
  info->internal_ = zone;
  if (ret_info)
    *ret_info = info;
  else
    mcpsig_hello_info_free(info);
  return 0;
}

mcpsig_hello_info *mcpsig_hello_info_free(mcpsig_hello_info *info) {
  if (info) {
    msgpack_zone_free(info->internal_);
    free(info);
  }
  return NULL;
}

/* What a joined listing owns: the zone of every page, and the two arrays. */
struct list_box {
  msgpack_zone **zones;
  size_t n_zones;
  mcpsig_identity *ids;
  mcpsig_binding *bs;
};

static void list_box_free(struct list_box *box) {
  if (!box)
    return;
  for (size_t i = 0; i < box->n_zones; i++)
    msgpack_zone_free(box->zones[i]);
  free(box->zones);
  free(box->ids);
  free(box->bs);
  free(box);
}

/* Grows *arr to hold n more elements of size each beyond *len. */
static int array_reserve(void *arr, size_t *cap, size_t len, size_t more, size_t each) {
  if (more <= *cap - len)
    return 0;
  size_t want = *cap ? *cap : 64;
  while (want - len < more) {
    if (want > SIZE_MAX / 2 / each)
      return -ENOMEM;
    want *= 2;
  }
  void *p = realloc(*(void **)arr, want * each);
  if (!p)
    return -ENOMEM;
  *(void **)arr = p;
  *cap = want;
  return 0;
}

/* Whether binding b sorts strictly after a: identity, then origin. */
static bool binding_after(const mcpsig_binding *a, const struct proto_binding *b) {
  int d = strcmp(b->identity, a->identity);
  return d > 0 || (d == 0 && strcmp(b->origin, a->origin) > 0);
}

int mcpsig_list(mcpsig_client *c, mcpsig_list_result **ret_list) {
  struct list_box *box = calloc(1, sizeof(*box));
  mcpsig_list_result *l = calloc(1, sizeof(*l));
  size_t n_ids = 0, n_bs = 0, cap_ids = 0, cap_bs = 0, cap_zones = 0;
  const char *after = NULL;
  int r;

  if (!ret_list) {
    r = set_error(c, -EINVAL, NULL);
    goto fail;
  }
  if (!box || !l) {
    r = set_error(c, -ENOMEM, NULL);
    goto fail;
  }
  /* The agent lists in pages, each within one message (PROTOCOL.md §7.2).
   * The first request carries no parameter, so that an agent from before
   * pages, which takes none, answers it with everything at once. */
  for (;;) {
    struct proto_list_params p = { .after = after };
    struct proto_list_result res;
    msgpack_zone *zone = NULL;
    if ((r = call(c, "identity.list", &proto_list_params_schema, &p, &proto_list_result_schema, &res, &zone)) < 0)
      goto fail;
    if ((r = array_reserve(&box->zones, &cap_zones, box->n_zones, 1, sizeof(*box->zones))) < 0) {
      msgpack_zone_free(zone);
      r = set_error(c, r, NULL);
      goto fail;
    }
    box->zones[box->n_zones++] = zone; /* owned by the box: the page's strings live in it */
    if ((r = array_reserve(&box->ids, &cap_ids, n_ids, res.n_identities + 1, sizeof(*box->ids))) < 0 ||
        (r = array_reserve(&box->bs, &cap_bs, n_bs, res.n_bindings + 1, sizeof(*box->bs))) < 0) {
      r = set_error(c, r, NULL);
      goto fail;
    }
    /* Pages follow one another in order: a page that goes back, or one that
     * promises more but brings nothing, would list an entry twice or never
     * end. */
    for (size_t i = 0; i < res.n_identities; i++) {
      if (n_ids > 0 && strcmp(res.identities[i].name, box->ids[n_ids - 1].name) <= 0) {
        r = set_error(c, MCPSIG_EPROTO, "the agent listed identities out of order");
        goto fail;
      }
      box->ids[n_ids++] = (mcpsig_identity){ res.identities[i].name, res.identities[i].alg };
    }
    for (size_t i = 0; i < res.n_bindings; i++) {
      const struct proto_binding *pb = &res.bindings[i];
      if (n_bs > 0 && !binding_after(&box->bs[n_bs - 1], pb)) {
        r = set_error(c, MCPSIG_EPROTO, "the agent listed bindings out of order");
        goto fail;
      }
      box->bs[n_bs++] = (mcpsig_binding){ pb->identity, pb->origin, pb->tag, pb->keyid, pb->alg, pb->state,
                                          pb->pending_keyid, (const char *const *)pb->retired, pb->n_retired,
                                          pb->retired_dropped > 0 ? (uint64_t)pb->retired_dropped : 0 };
    }
    if (!res.next)
      break;
    if (res.n_identities + res.n_bindings == 0 || (after && strcmp(res.next, after) == 0)) {
      r = set_error(c, MCPSIG_EPROTO, "the agent sent a page of its listing that does not move forward");
      goto fail;
    }
    after = res.next;
  }
  l->identities = box->ids;
  l->n_identities = n_ids;
  l->bindings = box->bs;
  l->n_bindings = n_bs;
  l->internal_ = box;
  *ret_list = l;
  return 0;

fail:
  list_box_free(box);
  free(l);
  return r;
}

mcpsig_list_result *mcpsig_list_result_free(mcpsig_list_result *l) {
  if (l) {
    list_box_free(l->internal_);
    free(l);
  }
  return NULL;
}

static int public_result(msgpack_zone *zone, const struct proto_public_result *res, mcpsig_public_info **ret_info) {
  mcpsig_public_info *info = calloc(1, sizeof(*info));
  if (!info) {
    msgpack_zone_free(zone);
    return -ENOMEM;
  }
  *info = (mcpsig_public_info){ res->identity, res->origin, res->tag, res->keyid, res->alg, res->jwk,
                                res->signature_agent, res->created, zone };
  if (ret_info)
    *ret_info = info;
  else
    mcpsig_public_info_free(info);
  return 0;
}

int mcpsig_public(mcpsig_client *c, const char *identity, const char *origin, mcpsig_public_info **ret_info) {
  struct proto_identity_params p = { .identity = identity, .origin = origin };
  struct proto_public_result res;
  msgpack_zone *zone = NULL;
  int r = call(c, "identity.public", &proto_identity_params_schema, &p, &proto_public_result_schema, &res, &zone);
  return r < 0 ? r : public_result(zone, &res, ret_info);
}

int mcpsig_extension_entry(mcpsig_client *c, const char *identity, const char *origin, char **ret_json) {
  mcpsig_public_info *pi = NULL;
  if (!ret_json)
    return set_error(c, -EINVAL, NULL);
  int r = mcpsig_public(c, identity, origin, &pi);
  if (r < 0)
    return r;
  /* The alg is one of the agent's RFC 9421 names and the JWK is the agent's
   * compact JSON: both are spliced in as they are. */
  static const char fmt[] = "{\"" MCPSIG_EXTENSION_NAME "\":{\"algorithms\":[\"%s\"],"
                            "\"keyResolution\":[\"signature-agent\",\"cnf\"],\"contentDigest\":[\"rfc9530\"],"
                            "\"cnf\":{\"jwk\":%s}}}";
  size_t len = sizeof(fmt) + strlen(pi->alg) + strlen(pi->jwk);
  char *json = malloc(len);
  if (!json || strspn(pi->alg, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(pi->alg) || pi->jwk[0] != '{') {
    free(json);
    mcpsig_public_info_free(pi);
    return set_error(c, json ? MCPSIG_EPROTO : -ENOMEM, json ? "the agent's public key reply is malformed" : NULL);
  }
  snprintf(json, len, fmt, pi->alg, pi->jwk);
  mcpsig_public_info_free(pi);
  *ret_json = json;
  return 0;
}

mcpsig_public_info *mcpsig_public_info_free(mcpsig_public_info *info) {
  if (info) {
    msgpack_zone_free(info->internal_);
    free(info);
  }
  return NULL;
}

int mcpsig_identity_add(mcpsig_client *c, const char *name, const char *alg) {
  struct proto_identity_params p = { .identity = name, .alg = alg };
  return call(c, "identity.add", &proto_identity_params_schema, &p, NULL, NULL, NULL);
}

int mcpsig_remove(mcpsig_client *c, const char *identity, const char *origin) {
  struct proto_identity_params p = { .identity = identity, .origin = origin, .all = origin == NULL };
  return call(c, "identity.remove", &proto_identity_params_schema, &p, NULL, NULL, NULL);
}

int mcpsig_import(mcpsig_client *c, const char *identity, const char *origin, const char *jwk_json,
                  const unsigned char *seed, size_t seed_len, mcpsig_public_info **ret_info) {
  struct proto_import_params p = { .identity = identity, .origin = origin };
  struct proto_public_result res;
  msgpack_zone *zone = NULL;

  if ((jwk_json == NULL) == (seed == NULL))
    return set_error(c, -EINVAL, "give exactly one of a JWK and a seed");
  if (jwk_json) {
    p.jwk = (const unsigned char *)jwk_json;
    p.jwk_len = strlen(jwk_json);
    p.has_jwk = true;
  } else {
    p.seed = seed;
    p.seed_len = seed_len;
    p.has_seed = true;
  }
  int r = call(c, "identity.import", &proto_import_params_schema, &p, &proto_public_result_schema, &res, &zone);
  return r < 0 ? r : public_result(zone, &res, ret_info);
}

/* The request's headers as wire pairs (they point at the caller's strings); free the array. */
static int pairs_from_headers(mcpsig_client *c, const mcpsig_header *h, size_t n, struct proto_pair **ret) {
  *ret = NULL;
  if (n == 0)
    return 0;
  struct proto_pair *pairs = calloc(n, sizeof(*pairs));
  if (!pairs)
    return set_error(c, -ENOMEM, NULL);
  for (size_t i = 0; i < n; i++)
    pairs[i] = (struct proto_pair){ h[i].name, h[i].value };
  *ret = pairs;
  return 0;
}

int mcpsig_sign_http(mcpsig_client *c, const mcpsig_sign_request *req, mcpsig_signature **ret_sig) {
  int r;
  struct proto_sign_params p;
  struct proto_sign_result res;
  msgpack_zone *zone = NULL;
  struct proto_pair *headers = NULL;

  if (!req || !ret_sig)
    return set_error(c, -EINVAL, NULL);
  if (req->body && req->body_len > MCPSIG_MAX_BODY_LEN)
    return set_error(c, MCPSIG_ETOOBIG, "body larger than 1 MiB: pass content_digest from mcpsig_content_digest()");
  memset(&p, 0, sizeof(p));
  p.identity = req->identity;
  p.origin = req->origin;
  p.method = req->method;
  p.uri = req->uri;
  if ((r = pairs_from_headers(c, req->headers, req->n_headers, &headers)) < 0)
    return r;
  p.headers = headers;
  p.n_headers = req->n_headers;
  if (req->body) {
    p.body = req->body;
    p.body_len = req->body_len;
    p.has_body = true;
  }
  p.content_digest = req->content_digest;
  p.accept_signature = req->accept_signature;
  p.label = req->label;
  p.components = (const char **)req->components;
  p.n_components = req->n_components;
  p.key = req->key;
  p.algorithms = (const char **)req->algorithms;
  p.n_algorithms = req->n_algorithms;
  r = call(c, "sign.http", &proto_sign_params_schema, &p, &proto_sign_result_schema, &res, &zone);
  free(headers);
  if (r < 0)
    return r;
  mcpsig_signature *s = calloc(1, sizeof(*s));
  if (!s) {
    msgpack_zone_free(zone);
    return -ENOMEM;
  }
  *s = (mcpsig_signature){ res.headers.content_digest, res.headers.signature_input, res.headers.signature,
                           res.headers.signature_agent, res.keyid, res.tag, res.label, res.alg, res.created, zone };
  *ret_sig = s;
  return 0;
}

mcpsig_signature *mcpsig_signature_free(mcpsig_signature *s) {
  if (s) {
    msgpack_zone_free(s->internal_);
    free(s);
  }
  return NULL;
}

int mcpsig_agent_status(mcpsig_client *c, mcpsig_status_info *ret) {
  struct proto_status_result res;
  msgpack_zone *zone = NULL;
  char empty = 0;
  if (!ret)
    return set_error(c, -EINVAL, NULL);
  int r = call(c, "agent.status", &proto_empty_schema, &empty, &proto_status_result_schema, &res, &zone);
  if (r < 0)
    return r;
  *ret = (mcpsig_status_info){ res.pid, res.uptime, res.connections, res.connections_limit, res.identities,
                                res.bindings, res.signatures, res.memory_locked, res.output_queued_max,
                                res.output_queued_limit, (int)res.memory_lock_errno, res.peer_exe_readable };
  msgpack_zone_free(zone);
  return 0;
}

int mcpsig_dpop(mcpsig_client *c, const mcpsig_dpop_request *req, mcpsig_dpop_proof **ret_proof) {
  struct proto_dpop_params p;
  struct proto_dpop_result res;
  msgpack_zone *zone = NULL;
  int r;

  if (!req || !ret_proof)
    return set_error(c, -EINVAL, NULL);
  p = (struct proto_dpop_params){ req->identity, req->origin, req->htm, req->htu, req->access_token, req->nonce,
                                  (const char **)req->algorithms, req->n_algorithms };
  r = call(c, "dpop.proof", &proto_dpop_params_schema, &p, &proto_dpop_result_schema, &res, &zone);
  if (r < 0)
    return r;
  mcpsig_dpop_proof *d = calloc(1, sizeof(*d));
  if (!d) {
    msgpack_zone_free(zone);
    return -ENOMEM;
  }
  *d = (mcpsig_dpop_proof){ res.proof, res.jkt, res.alg, res.created, zone };
  *ret_proof = d;
  return 0;
}

mcpsig_dpop_proof *mcpsig_dpop_proof_free(mcpsig_dpop_proof *d) {
  if (d) {
    msgpack_zone_free(d->internal_);
    free(d);
  }
  return NULL;
}

int mcpsig_content_digest(const void *body, size_t len, char *buf, size_t size) {
  if (!buf || (!body && len))
    return -EINVAL;
  return proto_content_digest(body, len, buf, size);
}

/* ---- rotation ---- */

/* A binding handed out alone carries the zone that holds its strings. */
struct binding_box {
  mcpsig_binding b; /* first, so a mcpsig_binding * is a struct binding_box * */
  msgpack_zone *zone;
};

static int binding_result(msgpack_zone *zone, const struct proto_binding *pb, mcpsig_binding **ret_binding) {
  if (!ret_binding) {
    msgpack_zone_free(zone);
    return 0;
  }
  struct binding_box *box = calloc(1, sizeof(*box));
  if (!box) {
    msgpack_zone_free(zone);
    return -ENOMEM;
  }
  box->b = (mcpsig_binding){ pb->identity, pb->origin, pb->tag, pb->keyid, pb->alg, pb->state, pb->pending_keyid,
                             (const char *const *)pb->retired, pb->n_retired,
                             pb->retired_dropped > 0 ? (uint64_t)pb->retired_dropped : 0 };
  box->zone = zone;
  *ret_binding = &box->b;
  return 0;
}

mcpsig_binding *mcpsig_binding_free(mcpsig_binding *b) {
  if (b) {
    struct binding_box *box = (struct binding_box *)(void *)b;
    msgpack_zone_free(box->zone);
    free(box);
  }
  return NULL;
}

static int rotate_call(mcpsig_client *c, const char *method, const char *identity, const char *origin,
                       mcpsig_binding **ret_binding) {
  struct proto_rotate_params p = { identity, origin };
  struct proto_binding res;
  msgpack_zone *zone = NULL;
  int r = call(c, method, &proto_rotate_params_schema, &p, &proto_binding_schema, &res, &zone);
  return r < 0 ? r : binding_result(zone, &res, ret_binding);
}

int mcpsig_rotate_begin(mcpsig_client *c, const char *identity, const char *origin, mcpsig_binding **ret_binding) {
  return rotate_call(c, "rotate.begin", identity, origin, ret_binding);
}

int mcpsig_rotate_commit(mcpsig_client *c, const char *identity, const char *origin, mcpsig_binding **ret_binding) {
  return rotate_call(c, "rotate.commit", identity, origin, ret_binding);
}

int mcpsig_rotate_abort(mcpsig_client *c, const char *identity, const char *origin, mcpsig_binding **ret_binding) {
  return rotate_call(c, "rotate.abort", identity, origin, ret_binding);
}

int mcpsig_rotate_status(mcpsig_client *c, const char *identity, const char *origin, mcpsig_binding **ret_binding) {
  return rotate_call(c, "rotate.status", identity, origin, ret_binding);
}

int mcpsig_sign_rotate(mcpsig_client *c, const mcpsig_rotate_request *req, mcpsig_rotate_signature **ret_sig) {
  int r;
  struct proto_rotate_sign_params p;
  struct proto_rotate_sign_result res;
  msgpack_zone *zone = NULL;
  struct proto_pair *headers = NULL;

  if (!req || !ret_sig)
    return set_error(c, -EINVAL, NULL);
  memset(&p, 0, sizeof(p));
  p.identity = req->identity;
  p.origin = req->origin;
  p.uri = req->uri;
  p.id = (struct proto_scalar){ req->id_str, req->id_num };
  p.has_id = true;
  if ((r = pairs_from_headers(c, req->headers, req->n_headers, &headers)) < 0)
    return r;
  p.headers = headers;
  p.n_headers = req->n_headers;
  r = call(c, "sign.rotate", &proto_rotate_sign_params_schema, &p, &proto_rotate_sign_result_schema, &res, &zone);
  free(headers);
  if (r < 0)
    return r;
  mcpsig_rotate_signature *s = calloc(1, sizeof(*s));
  if (!s) {
    msgpack_zone_free(zone);
    return -ENOMEM;
  }
  *s = (mcpsig_rotate_signature){ res.body, res.body_len, res.headers.content_digest, res.headers.signature_input,
                                  res.headers.signature, res.headers.signature_agent, res.tag, res.keyid,
                                  res.new_keyid, res.new_jwk, res.created, zone };
  *ret_sig = s;
  return 0;
}

mcpsig_rotate_signature *mcpsig_rotate_signature_free(mcpsig_rotate_signature *s) {
  if (s) {
    msgpack_zone_free(s->internal_);
    free(s);
  }
  return NULL;
}

/* ---- notifications ---- */

int mcpsig_subscribe(mcpsig_client *c) {
  char empty = 0;
  return call(c, "subscribe", &proto_empty_schema, &empty, NULL, NULL, NULL);
}

int mcpsig_event_next(mcpsig_client *c, int timeout_ms, mcpsig_event **ret_event) {
  if (!c || !ret_event)
    return -EINVAL;
  c->err[0] = '\0';
  int64_t deadline = timeout_ms < 0 ? INT64_MAX : now_ms() + timeout_ms;
  for (;;) {
    if (c->events) {
      struct queued_event *q = c->events;
      c->events = q->next;
      if (!c->events)
        c->events_tail = &c->events;
      c->n_events--;
      *ret_event = q->ev;
      free(q);
      return 0;
    }
    if (c->fd < 0)
      return set_error(c, MCPSIG_ECLOSED, NULL);
    /* Only notifications arrive unasked, so a timeout here, unlike one in
     * the middle of a call, leaves the stream where it was: the handle
     * stays open, and a partial message stays buffered. */
    ssize_t n = recv_message(c, deadline);
    if (n < 0) {
      if (n == MCPSIG_ETIMEDOUT)
        return set_error(c, MCPSIG_ETIMEDOUT, "no event came in time");
      close(c->fd);
      c->fd = -1;
      return (int)n;
    }
    msgpack_unpacked up;
    size_t off = 0;
    msgpack_unpacked_init(&up);
    int ur = msgpack_unpack_next(&up, (const char *)c->rx, (size_t)n, &off);
    const msgpack_object *m = &up.data;
    bool notification = ur == MSGPACK_UNPACK_SUCCESS && m->type == MSGPACK_OBJECT_ARRAY && m->via.array.size == 3 &&
                        m->via.array.ptr[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
                        m->via.array.ptr[0].via.u64 == PROTO_NOTIFICATION;
    if (notification)
      event_queue(c, m);
    msgpack_unpacked_destroy(&up);
    rx_consume(c, (size_t)n);
    if (!notification) {
      /* A nil-msgid error (the agent is closing us) or garbage. */
      close(c->fd);
      c->fd = -1;
      return set_error(c, MCPSIG_EPROTO, "the agent sent something other than a notification");
    }
  }
}

mcpsig_event *mcpsig_event_free(mcpsig_event *ev) {
  if (ev) {
    if (ev->internal_)
      msgpack_zone_free(ev->internal_);
    free(ev);
  }
  return NULL;
}
