/*
 * sshagent.c: a private ssh-agent holding one Ed25519 key, and a client of
 * its protocol (draft-miller-ssh-agent): SSH_AGENTC_SIGN_REQUEST over its
 * Unix socket, with the same non-blocking round trip as the other clients.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sodium.h>

#include "bench.h"

#define SSH_AGENT_FAILURE 5
#define SSH_AGENTC_REQUEST_IDENTITIES 11
#define SSH_AGENT_IDENTITIES_ANSWER 12
#define SSH_AGENTC_SIGN_REQUEST 13
#define SSH_AGENT_SIGN_RESPONSE 14
#define SSH_MAX_REPLY (256u * 1024u)

static uint32_t get32(const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)(v >> 24);
  p[1] = (unsigned char)(v >> 16);
  p[2] = (unsigned char)(v >> 8);
  p[3] = (unsigned char)v;
}

int ssh_agent_start(const char *dir, struct ssh_agent *ret, char *err, size_t errlen) {
  char agent[PATH_MAX], keygen[PATH_MAX], add[PATH_MAX], key[PATH_MAX], log[PATH_MAX], env[PATH_MAX + 16];
  const char *missing = find_in_path("ssh-agent", agent, sizeof(agent)) < 0       ? "ssh-agent"
                        : find_in_path("ssh-keygen", keygen, sizeof(keygen)) < 0 ? "ssh-keygen"
                        : find_in_path("ssh-add", add, sizeof(add)) < 0          ? "ssh-add"
                                                                                  : NULL;
  if (missing) {
    snprintf(err, errlen, "%s is not installed (Debian: apt-get install openssh-client)", missing);
    return -ENOENT;
  }
  snprintf(ret->sock, sizeof(ret->sock), "%s/ssh-agent.sock", dir);
  snprintf(key, sizeof(key), "%s/id_ed25519", dir);
  snprintf(log, sizeof(log), "%s/ssh-agent.log", dir);

  char *keygen_argv[] = { keygen, "-q", "-t", "ed25519", "-N", "", "-C", "mcpsig-bench", "-f", key, NULL };
  if (run_command(keygen_argv, NULL, log) != 0) {
    fail_with_log(err, errlen, log, "ssh-keygen failed");
    return -EIO;
  }
  /* -D: stay in the foreground, so its pid is this child's and it can be pinned. */
  char *agent_argv[] = { agent, "-D", "-a", ret->sock, NULL };
  pid_t pid = process_spawn(agent, agent_argv, NULL, log);
  if (pid < 0) {
    snprintf(err, errlen, "cannot start %s: %s", agent, strerror((int)-pid));
    return (int)pid;
  }
  ret->pid = pid;
  for (int i = 0;; i++) {
    int fd = raw_connect(ret->sock);
    if (fd >= 0) {
      close(fd);
      break;
    }
    if (i == 500) {
      child_stop(pid);
      fail_with_log(err, errlen, log, "ssh-agent did not open %s", ret->sock);
      return -ETIMEDOUT;
    }
    struct timespec ts = { 0, 10 * 1000 * 1000 };
    nanosleep(&ts, NULL);
  }
  snprintf(env, sizeof(env), "SSH_AUTH_SOCK=%s", ret->sock);
  char *add_argv[] = { add, "-q", key, NULL };
  if (run_command(add_argv, env, log) != 0) {
    child_stop(pid);
    fail_with_log(err, errlen, log, "ssh-add failed");
    return -EIO;
  }
  return 0;
}

struct ssh_client {
  int fd;
  unsigned char *req;
  size_t req_len;
  unsigned char *rx;
};

/* One request and its whole reply in c->rx; returns the reply's length. */
static int ssh_call(struct ssh_client *c, const unsigned char *req, size_t len) {
  unsigned char hdr[4];
  int r = raw_send_all(c->fd, req, len);
  if (r == 0)
    r = raw_recv_exact(c->fd, hdr, sizeof(hdr));
  if (r < 0)
    return r;
  uint32_t n = get32(hdr);
  if (n == 0 || n > SSH_MAX_REPLY)
    return -EPROTO;
  r = raw_recv_exact(c->fd, c->rx, n);
  return r < 0 ? r : (int)n;
}

/*
 * Checks the signature in c->rx (a SIGN_RESPONSE): string "ssh-ed25519",
 * string 64 bytes, by the key blob's public key (string "ssh-ed25519",
 * string 32 bytes), over data.
 */
static int ssh_signature_check(const struct ssh_client *c, const unsigned char *blob, uint32_t blob_len,
                               const char *data, size_t len) {
  const unsigned char *sig = c->rx + 5;
  if (blob_len != 4 + 11 + 4 + crypto_sign_PUBLICKEYBYTES || get32(blob + 15) != crypto_sign_PUBLICKEYBYTES ||
      get32(c->rx + 1) != 4 + 11 + 4 + crypto_sign_BYTES || get32(sig) != 11 || memcmp(sig + 4, "ssh-ed25519", 11) != 0 ||
      get32(sig + 15) != crypto_sign_BYTES)
    return -EPROTO;
  return crypto_sign_verify_detached(sig + 19, (const unsigned char *)data, len, blob + 19) == 0 ? 0 : -EBADMSG;
}

void ssh_client_close(struct ssh_client *c) {
  if (!c)
    return;
  if (c->fd >= 0)
    close(c->fd);
  free(c->req);
  free(c->rx);
  free(c);
}

int ssh_client_open(const char *sock, const char *data, size_t len, struct ssh_client **ret, char *err,
                    size_t errlen) {
  struct ssh_client *c = calloc(1, sizeof(*c));
  const unsigned char *blob = NULL;
  uint32_t blob_len = 0;
  int r = -ENOMEM;

  if (!c || !(c->rx = malloc(SSH_MAX_REPLY)))
    goto fail;
  if ((c->fd = raw_connect(sock)) < 0) {
    r = c->fd;
    snprintf(err, errlen, "cannot connect to ssh-agent at %s: %s", sock, strerror(-r));
    goto fail;
  }
  unsigned char list[5];
  put32(list, 1);
  list[4] = SSH_AGENTC_REQUEST_IDENTITIES;
  int n = ssh_call(c, list, sizeof(list));
  if (n < 5 || c->rx[0] != SSH_AGENT_IDENTITIES_ANSWER) {
    r = n < 0 ? n : -EPROTO;
    snprintf(err, errlen, "ssh-agent did not list its keys");
    goto fail;
  }
  /* The first key whose blob names ssh-ed25519. */
  uint32_t nkeys = get32(c->rx + 1);
  size_t pos = 5;
  for (uint32_t i = 0; i < nkeys && !blob; i++) {
    if (pos + 4 > (size_t)n)
      break;
    uint32_t bl = get32(c->rx + pos);
    if (pos + 4 + bl + 4 > (size_t)n)
      break;
    const unsigned char *b = c->rx + pos + 4;
    if (bl > 15 && get32(b) == 11 && memcmp(b + 4, "ssh-ed25519", 11) == 0) {
      blob = b;
      blob_len = bl;
    }
    pos += 4 + bl;
    pos += 4 + get32(c->rx + pos); /* the comment */
  }
  if (!blob) {
    r = -ENOENT;
    snprintf(err, errlen, "ssh-agent holds no Ed25519 key");
    goto fail;
  }
  /* uint32 length, byte 13, string key blob, string data, uint32 flags */
  c->req_len = 4 + 1 + 4 + blob_len + 4 + len + 4;
  if (!(c->req = malloc(c->req_len)))
    goto fail;
  unsigned char *p = c->req;
  put32(p, (uint32_t)(c->req_len - 4));
  p[4] = SSH_AGENTC_SIGN_REQUEST;
  put32(p + 5, blob_len);
  memcpy(p + 9, blob, blob_len);
  p += 9 + blob_len;
  put32(p, (uint32_t)len);
  memcpy(p + 4, data, len);
  put32(p + 4 + len, 0);
  if ((r = ssh_client_sign(c)) < 0) {
    snprintf(err, errlen, "ssh-agent refused to sign: %s", strerror(-r));
    goto fail;
  }
  /* The reply is an Ed25519 signature of the same bytes as the other floors
   * sign. The blob is read from the request: the reply overwrote rx. */
  if ((r = ssh_signature_check(c, c->req + 9, blob_len, data, len)) < 0) {
    snprintf(err, errlen, "ssh-agent's signature does not verify with its key");
    goto fail;
  }
  *ret = c;
  return 0;
fail:
  if (r == -ENOMEM)
    snprintf(err, errlen, "out of memory");
  ssh_client_close(c);
  return r;
}

int ssh_client_sign(struct ssh_client *c) {
  int n = ssh_call(c, c->req, c->req_len);
  if (n < 0)
    return n;
  /* byte 14, string signature: string "ssh-ed25519", string 64 bytes */
  if (c->rx[0] != SSH_AGENT_SIGN_RESPONSE || n < 5 + 4 + 11 + 4 + 64)
    return -EPROTO;
  return 0;
}
