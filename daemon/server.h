/* server.h: the libuv Unix-socket server: connections, peer checks, framing, replies. */
#ifndef MCPSIG_SERVER_H
#define MCPSIG_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "agent.h"

/* Bytes of unsent replies after which a connection's reading pauses. */
#define SERVER_MAX_PENDING_OUT (4u * 1024u * 1024u)

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
  bool stopping;
};

/*
 * Prepares path for binding: creates its directory (0700) when missing,
 * refuses an unsafe directory, replaces a stale socket and refuses a live one
 * or any other file.
 */
int server_socket_prepare(const char *path, char *err, size_t errlen);

/* Binds (mode 0600) and listens at path. */
int server_start(struct server *srv, uv_loop_t *loop, struct agent *agent, const char *path, char *err,
                 size_t errlen);
/* Stops listening, closes every connection, and removes the socket we created. */
void server_stop(struct server *srv);

#endif
