/*
 * test-client.c: libmcpsig against fake agents that misbehave: none
 * listening, never answering, hanging up, sending garbage, sending errors.
 * Each must give its own error code, never a hang.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

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

  char d[MCPSIG_CONTENT_DIGEST_LEN];
  ok(mcpsig_content_digest("{\"hello\": \"world\"}", 18, d, sizeof(d)) == 0 &&
       strcmp(d, "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:") == 0,
     "host-side Content-Digest matches RFC 9530");
  ok(mcpsig_content_digest(NULL, 5, d, sizeof(d)) == -EINVAL, "a NULL body with a length is refused");
  ok(mcpsig_content_digest("", 0, d, 10) < 0, "a short buffer is refused");
  ok(mcpsig_hello(NULL, &hi) == -EINVAL, "a NULL handle is refused");
  ok(mcpsig_close(NULL) == NULL, "mcpsig_close(NULL) is harmless");

  unlink(path);
  rmdir(dir);
  return done_testing();
}
