/*
 * test-client.c: libmcpsig against fake agents that misbehave: none
 * listening, never answering, hanging up, sending garbage, sending errors,
 * listing in pages that go back or never end, listening where anyone may
 * write, or running as another uid. Each must give its own error code,
 * never a hang.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <msgpack.h>

#include "mcpsig.h"
#include "tap.h"

static char dir[] = "/tmp/mcpsig-client.XXXXXX";
static char path[100];

static int listen_at(const char *p) {
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", p);
  unlink(p);
  if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 8) < 0)
    return -1;
  return fd;
}

/* A fake agent: accepts one connection, reads one request, then behaves as told. */
static pid_t fake_agent(int lfd, const void *reply, size_t len, int hang_up) {
  pid_t pid = fork();
  if (pid != 0)
    return pid;
  int c = accept(lfd, NULL, NULL);
  char buf[4096];
  if (c >= 0 && read(c, buf, sizeof(buf)) > 0) {
    if (!hang_up && len > 0 && write(c, reply, len) < 0)
      _exit(1);
  }
  if (hang_up)
    close(c);
  else
    sleep(5); /* keep the connection open, silent */
  _exit(0);
}

static void reap(pid_t pid) {
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
}

/* ---- identity.list in pages ---- */

static void pack_str(msgpack_packer *pk, const char *s) {
  if (!s) {
    msgpack_pack_nil(pk);
    return;
  }
  msgpack_pack_str(pk, strlen(s));
  msgpack_pack_str_body(pk, s, strlen(s));
}

/* A page [1, msgid, nil, {identities, bindings, next}]; omit_next: as an agent from before pages. */
static void pack_page(msgpack_sbuffer *sb, uint32_t msgid, const char *identity, const char *const *origins,
                      size_t n, const char *next, bool omit_next) {
  msgpack_packer pk;
  msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
  msgpack_pack_array(&pk, 4);
  msgpack_pack_uint32(&pk, 1);
  msgpack_pack_uint32(&pk, msgid);
  msgpack_pack_nil(&pk);
  msgpack_pack_map(&pk, omit_next ? 2 : 3);
  pack_str(&pk, "identities");
  msgpack_pack_array(&pk, identity ? 1 : 0);
  if (identity) {
    msgpack_pack_map(&pk, 2);
    pack_str(&pk, "name");
    pack_str(&pk, identity);
    pack_str(&pk, "alg");
    pack_str(&pk, "ed25519");
  }
  pack_str(&pk, "bindings");
  msgpack_pack_array(&pk, n);
  for (size_t i = 0; i < n; i++) {
    static const char *const keys[] = { "identity", "origin", "tag", "keyid", "alg", "state" };
    const char *vals[] = { "default", origins[i], "T", "K", "ed25519", "active" };
    msgpack_pack_map(&pk, 8);
    for (size_t k = 0; k < 6; k++) {
      pack_str(&pk, keys[k]);
      pack_str(&pk, vals[k]);
    }
    pack_str(&pk, "pending_keyid");
    msgpack_pack_nil(&pk);
    pack_str(&pk, "retired");
    msgpack_pack_array(&pk, 0);
  }
  if (!omit_next) {
    pack_str(&pk, "next");
    pack_str(&pk, next);
  }
}

/* A fake agent that answers each request it reads with the next of n canned
 * replies, and appends what it read to the file log. */
static pid_t paging_agent(int lfd, msgpack_sbuffer *replies, size_t n, const char *log) {
  pid_t pid = fork();
  if (pid != 0)
    return pid;
  int c = accept(lfd, NULL, NULL);
  FILE *f = fopen(log, "w");
  for (size_t i = 0; c >= 0 && f && i < n; i++) {
    char buf[4096];
    ssize_t got = read(c, buf, sizeof(buf));
    if (got <= 0)
      break;
    fwrite(buf, 1, (size_t)got, f);
    fflush(f);
    if (write(c, replies[i].data, replies[i].size) < 0)
      break;
  }
  sleep(5);
  _exit(0);
}

static bool file_holds(const char *p, const char *needle) {
  char buf[8192];
  FILE *f = fopen(p, "r");
  size_t n = f ? fread(buf, 1, sizeof(buf), f) : 0;
  if (f)
    fclose(f);
  return memmem(buf, n, needle, strlen(needle)) != NULL;
}

static void paging_cases(int lfd) {
  static const char *const ab[] = { "https://a.example", "https://b.example" };
  char log[160];
  mcpsig_client *c = NULL;
  mcpsig_list_result *l = NULL;
  msgpack_sbuffer r[2];
  snprintf(log, sizeof(log), "%s/requests", dir);

  /* Two pages, joined; the second request carries the first page's cursor. */
  msgpack_sbuffer_init(&r[0]);
  msgpack_sbuffer_init(&r[1]);
  pack_page(&r[0], 1, "default", ab, 1, "default https://a.example", false);
  pack_page(&r[1], 2, NULL, ab + 1, 1, NULL, false);
  pid_t pid = paging_agent(lfd, r, 2, log);
  ok(mcpsig_connect(&c, path, 2000) == 0 && mcpsig_list(c, &l) == 0, "mcpsig_list reads two pages");
  ok(l && l->n_identities == 1 && l->n_bindings == 2 && strcmp(l->bindings[0].origin, "https://a.example") == 0 &&
       strcmp(l->bindings[1].origin, "https://b.example") == 0,
     "  and joins them: 1 identity, 2 bindings, in order");
  ok(file_holds(log, "after") && file_holds(log, "default https://a.example"), "  asking for the second with after=next");
  l = mcpsig_list_result_free(l);
  c = mcpsig_close(c);
  reap(pid);
  msgpack_sbuffer_destroy(&r[0]);
  msgpack_sbuffer_destroy(&r[1]);

  /* An agent from before pages: one reply, no "next" at all. */
  msgpack_sbuffer_init(&r[0]);
  pack_page(&r[0], 1, "default", ab, 2, NULL, true);
  pid = paging_agent(lfd, r, 1, log);
  ok(mcpsig_connect(&c, path, 2000) == 0 && mcpsig_list(c, &l) == 0 && l->n_bindings == 2,
     "an agent from before pages: its one reply is the whole listing");
  ok(!file_holds(log, "after") && !file_holds(log, "limit"), "  and the request carried no parameter it would refuse");
  l = mcpsig_list_result_free(l);
  c = mcpsig_close(c);
  reap(pid);
  msgpack_sbuffer_destroy(&r[0]);

  /* A page that goes back would list a binding twice. */
  msgpack_sbuffer_init(&r[0]);
  msgpack_sbuffer_init(&r[1]);
  pack_page(&r[0], 1, "default", ab + 1, 1, "default https://b.example", false);
  pack_page(&r[1], 2, NULL, ab, 1, NULL, false);
  pid = paging_agent(lfd, r, 2, log);
  mcpsig_connect(&c, path, 2000);
  is_int(mcpsig_list(c, &l), MCPSIG_EPROTO, "a page that goes back is EPROTO");
  ok(strstr(mcpsig_last_error(c), "out of order") != NULL, "  saying the bindings are out of order");
  c = mcpsig_close(c);
  reap(pid);
  msgpack_sbuffer_destroy(&r[0]);
  msgpack_sbuffer_destroy(&r[1]);

  /* An empty page that promises more would never end. */
  msgpack_sbuffer_init(&r[0]);
  pack_page(&r[0], 1, NULL, ab, 0, "default https://a.example", false);
  pid = paging_agent(lfd, r, 1, log);
  mcpsig_connect(&c, path, 2000);
  is_int(mcpsig_list(c, &l), MCPSIG_EPROTO, "an empty page with a next cursor is EPROTO, not an endless loop");
  c = mcpsig_close(c);
  reap(pid);
  msgpack_sbuffer_destroy(&r[0]);
}

/* ---- the socket must be this user's agent ---- */

static void peer_cases(void) {
  char loose[160], sock[200], why[1024] = "";
  mcpsig_client *c = NULL;

  /* A directory of ours that anyone may write: refused before connect(). */
  snprintf(loose, sizeof(loose), "%s/loose", dir);
  mkdir(loose, 0700);
  chmod(loose, 0777);
  snprintf(sock, sizeof(sock), "%s/agent.sock", loose);
  int lfd = listen_at(sock);
  ok(lfd >= 0, "a listener of our own in a 0777 directory");
  is_int(mcpsig_connect_explain(&c, sock, 500, why, sizeof(why)), MCPSIG_EPEER, "  is refused: MCPSIG_EPEER");
  ok(strstr(why, sock) && strstr(why, "mode 0777") && strstr(why, "chmod 700") && strstr(why, "MCPSIG_AUTH_SOCK"),
     "  the message names the socket, the mode and the fix");
  printf("# %s\n", why);
  struct pollfd p = { lfd, POLLIN, 0 };
  is_int(poll(&p, 1, 100), 0, "  and the listener saw no connection");
  chmod(loose, 0700);
  is_int(mcpsig_connect(&c, sock, 500), 0, "control: the same listener after chmod 700 is connected to");
  c = mcpsig_close(c);
  close(lfd);
  unlink(sock);

  if (geteuid() != 0) {
    printf("ok %d # SKIP a listener of another uid needs root\n", ++tap_n);
    return;
  }
  /* A listener of uid 65534 in root's 0700 directory: only SO_PEERCRED tells. */
  char peerdir[160];
  int ready[2], counted[2];
  snprintf(peerdir, sizeof(peerdir), "%s/peer", dir);
  mkdir(peerdir, 0700);
  /* For the bind only: uid 65534 must reach the directory and write it. */
  chmod(dir, 0711);
  chmod(peerdir, 0777);
  snprintf(sock, sizeof(sock), "%s/agent.sock", peerdir);
  if (pipe(ready) < 0 || pipe(counted) < 0)
    return;
  pid_t pid = fork();
  if (pid == 0) {
    if (setgid(65534) < 0 || setuid(65534) < 0)
      _exit(1);
    int l = listen_at(sock);
    if (l < 0 || write(ready[1], "1", 1) != 1)
      _exit(1);
    long total = 0;
    for (int i = 0; i < 2; i++) {
      int a = accept(l, NULL, NULL);
      char buf[4096];
      ssize_t got;
      while (a >= 0 && (got = read(a, buf, sizeof(buf))) > 0)
        total += got;
      if (a >= 0)
        close(a);
    }
    if (write(counted[1], &total, sizeof(total)) != sizeof(total))
      _exit(1);
    _exit(0);
  }
  close(ready[1]);
  close(counted[1]);
  /* Bounded: a child that could not listen closes the pipe, and one that
   * hangs is given up on after 5 s. */
  char b;
  struct pollfd rp = { ready[0], POLLIN, 0 };
  bool listening = poll(&rp, 1, 5000) == 1 && read(ready[0], &b, 1) == 1;
  chmod(dir, 0700);
  chmod(peerdir, 0700);
  if (!ok(listening, "a listener of uid 65534")) {
    reap(pid);
    return;
  }
  why[0] = '\0';
  is_int(mcpsig_connect_explain(&c, sock, 2000, why, sizeof(why)), MCPSIG_EPEER,
         "  behind root's 0700 directory is refused: MCPSIG_EPEER");
  ok(strstr(why, sock) && strstr(why, "runs as uid 65534"), "  naming the socket and the listener's uid");
  printf("# %s\n", why);
  is_int(mcpsig_connect(&c, sock, 2000), MCPSIG_EPEER, "  and by mcpsig_connect, on every connect");
  long total = -1;
  rp = (struct pollfd){ counted[0], POLLIN, 0 };
  ok(poll(&rp, 1, 5000) == 1 && read(counted[0], &total, sizeof(total)) == sizeof(total) && total == 0,
     "  the listener was connected to twice and received 0 bytes");
  reap(pid);
  close(ready[0]);
  close(counted[0]);
  unlink(sock);
}

int main(void) {
  mcpsig_client *c = NULL;
  mcpsig_hello_info *hi = NULL;
  int r;

  if (!mkdtemp(dir))
    return 99;
  snprintf(path, sizeof(path), "%s/agent.sock", dir);

  r = mcpsig_connect(&c, path, 500);
  ok(r == MCPSIG_ECONNECT && errno == ENOENT, "no socket: ECONNECT with errno ENOENT");

  int lfd = listen_at(path);
  if (!ok(lfd >= 0, "a fake agent listens"))
    return done_testing();
  paging_cases(lfd);

  /* Silent agent: the call times out, and the handle is then unusable rather than out of step. */
  pid_t pid = fake_agent(lfd, NULL, 0, 0);
  ok(mcpsig_connect(&c, path, 300) == 0, "connects to the silent agent");
  r = mcpsig_hello(c, &hi);
  is_int(r, MCPSIG_ETIMEDOUT, "a silent agent gives ETIMEDOUT, not a hang");
  ok(strlen(mcpsig_last_error(c)) > 0, "with a message");
  is_int(mcpsig_hello(c, &hi), MCPSIG_ECLOSED, "after a timeout the handle refuses further calls");
  c = mcpsig_close(c);
  ok(c == NULL, "mcpsig_close returns NULL");
  reap(pid);

  pid = fake_agent(lfd, NULL, 0, 1);
  mcpsig_connect(&c, path, 2000);
  is_int(mcpsig_hello(c, &hi), MCPSIG_ECLOSED, "an agent that hangs up gives ECLOSED");
  c = mcpsig_close(c);
  reap(pid);

  static const unsigned char garbage[] = { 0xc1, 0xc1, 0xc1 };
  pid = fake_agent(lfd, garbage, sizeof(garbage), 0);
  mcpsig_connect(&c, path, 2000);
  is_int(mcpsig_hello(c, &hi), MCPSIG_EPROTO, "garbage from the agent gives EPROTO");
  c = mcpsig_close(c);
  reap(pid);

  /* [1, 1, {code: 1006, message: "unknown identity \"x\""}, nil] */
  static const unsigned char err_reply[] = {
    0x94, 0x01, 0x01, 0x82, 0xa4, 'c', 'o', 'd', 'e', 0xcd, 0x03, 0xee, 0xa7, 'm', 'e', 's', 's', 'a', 'g', 'e',
    0xb4, 'u', 'n', 'k', 'n', 'o', 'w', 'n', ' ', 'i', 'd', 'e', 'n', 't', 'i', 't', 'y', ' ', '"', 'x', '"', 0xc0,
  };
  pid = fake_agent(lfd, err_reply, sizeof(err_reply), 0);
  mcpsig_connect(&c, path, 2000);
  is_int(mcpsig_hello(c, &hi), MCPSIG_ENOIDENT, "an error reply maps to its code");
  is_str(mcpsig_last_error(c), "unknown identity \"x\"", "and passes the agent's message on");
  c = mcpsig_close(c);
  reap(pid);

  /* A result that does not match the schema is refused, not half-read. */
  static const unsigned char bad_result[] = { 0x94, 0x01, 0x01, 0xc0, 0x81, 0xa8, 'p', 'r', 'o', 't', 'o', 'c', 'o', 'l', 0xa1, 'x' };
  pid = fake_agent(lfd, bad_result, sizeof(bad_result), 0);
  mcpsig_connect(&c, path, 2000);
  is_int(mcpsig_hello(c, &hi), MCPSIG_EPROTO, "a malformed result gives EPROTO");
  ok(strstr(mcpsig_last_error(c), "protocol") != NULL, "naming the field");
  c = mcpsig_close(c);
  reap(pid);
  close(lfd);
  unlink(path);
  peer_cases();

  char d[MCPSIG_CONTENT_DIGEST_LEN];
  ok(mcpsig_content_digest("{\"hello\": \"world\"}", 18, d, sizeof(d)) == 0 &&
       strcmp(d, "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:") == 0,
     "host-side Content-Digest matches RFC 9530");
  ok(mcpsig_content_digest(NULL, 5, d, sizeof(d)) == -EINVAL, "a NULL body with a length is refused");
  ok(mcpsig_content_digest("", 0, d, 10) < 0, "a short buffer is refused");
  ok(mcpsig_hello(NULL, &hi) == -EINVAL, "a NULL handle is refused");
  ok(mcpsig_close(NULL) == NULL, "mcpsig_close(NULL) is harmless");

  char cmd[200];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
  if (system(cmd) != 0)
    printf("# could not remove %s\n", dir);
  return done_testing();
}
