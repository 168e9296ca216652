/* server.h: the libuv Unix-socket server: connections, peer checks, framing, replies. */
#ifndef MCPSIG_SERVER_H
#define MCPSIG_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "agent.h"
#include "proto.h"

struct server_options {
  int listen_fd;               /* a socket systemd passed, or -1 */
  uint64_t exit_idle_ms;       /* --exit-idle; 0: never */
  uint64_t partial_timeout_ms; /* --partial-timeout; 0: MCPSIG_PARTIAL_TIMEOUT_MS */
};

/* Memory held by a connection's unsent output after which its reading pauses. */
#define SERVER_MAX_PENDING_OUT MCPSIG_MAX_OUTPUT_QUEUED
/* Beyond this much unsent output, a subscriber's notifications are dropped and counted. */
#define SERVER_MAX_NOTIFY_QUEUED MCPSIG_MAX_NOTIFY_QUEUED

struct conn;

struct server {
  uv_loop_t *loop;
  struct agent *agent;
  uv_pipe_t listener;
  bool listening;
  char *path;
  bool owns_path;          /* we created the socket file and remove it at exit */
  struct conn *conns;
  size_t n_conns;
  unsigned long next_id;
  uv_signal_t sig_term, sig_int, sig_hup;
  uv_timer_t status_timer;     /* STATUS= to systemd when the summary changes, at most once a second */
  char status[160];
  uv_prepare_t seal;           /* seals the key arenas before the loop waits */
  uv_timer_t idle_timer;       /* --exit-idle */
  uint64_t exit_idle_ms;       /* 0: never */
  uint64_t partial_timeout_ms;
  bool stopping;
};

/*
 * Prepares path for binding: creates its directory (0700) when missing,
 * refuses an unsafe directory, replaces a stale socket and refuses a live one
 * or any other file.
 */
int server_socket_prepare(const char *path, char *err, size_t errlen);

/*
 * Serves on opt->listen_fd, a socket systemd passed (never removed by us),
 * or, when it is -1, binds (mode 0600) and listens at path. With
 * exit_idle_ms, stops after that long without any connection.
 */
int server_start(struct server *srv, uv_loop_t *loop, struct agent *agent, const char *path,
                 const struct server_options *opt, char *err, size_t errlen);
/* The one-line summary for STATUS=: connections, bindings, signatures. */
void server_status(const struct server *srv, char *buf, size_t size);
/* Stops listening, closes every connection, and removes the socket we created. */
void server_stop(struct server *srv);

#endif
