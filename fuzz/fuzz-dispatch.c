/*
 * fuzz-dispatch.c: libFuzzer target for the socket-free dispatcher.
 *
 * One input is the byte stream of one connection. It is fed to
 * dispatch_bytes() as the server feeds it: in reads whose sizes come from the
 * input's first byte, carrying unconsumed bytes over to the next read, until
 * the dispatcher consumes everything or asks to close. Replies are packed and
 * thrown away. The agent is real (keystore on tmpfs when there is one), so
 * first contacts, imports and rotations write files, and state carries over
 * between inputs; it is rebuilt when it grows past a few dozen bindings.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sodium.h>

#include "agent.h"
#include "dispatch.h"
#include "jwk.h"
#include "log.h"
#include "proto.h"

#define MAX_BINDINGS 48

static struct agent agent;
static char root[128];
static unsigned generation;

static void agent_fresh(void) {
  char ks[200], err[512];
  if (generation++)
    agent_done(&agent);
  snprintf(ks, sizeof(ks), "%s/ks%u", root, generation);
  if (agent_init(&agent, ks, err, sizeof(err)) < 0) {
    fprintf(stderr, "fuzz-dispatch: agent_init: %s\n", err);
    abort();
  }
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  if (sodium_init() < 0)
    abort();
  jwk_json_memory_install();
  log_set_level(LOG_CRIT); /* the agent's records would drown the fuzzer's */
  snprintf(root, sizeof(root), "%s/mcpsig-fuzz.XXXXXX", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
  if (!mkdtemp(root))
    abort();
  agent_fresh();
  return 0;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  struct dispatch_peer peer = { .pid = 1, .uid = 0, .exe = "fuzz", .id = 1 };
  msgpack_sbuffer out;
  msgpack_packer pk;
  unsigned char *rx;
  size_t chunk, rx_len = 0, pos = 1;

  if (size == 0)
    return 0;
  chunk = (size_t)data[0] * 16 + 1; /* 1 to 4081 bytes per read */
  rx = malloc(size);
  if (!rx)
    return 0;
  msgpack_sbuffer_init(&out);
  msgpack_packer_init(&pk, &out, msgpack_sbuffer_write);
  while (pos < size) {
    size_t n = size - pos < chunk ? size - pos : chunk;
    memcpy(rx + rx_len, data + pos, n);
    rx_len += n;
    pos += n;
    ssize_t used = dispatch_bytes(&agent, &peer, rx, rx_len, &pk);
    if (used < 0)
      break; /* the server would close the connection here */
    memmove(rx, rx + used, rx_len - (size_t)used);
    rx_len -= (size_t)used;
    out.size = 0; /* the replies are sent and forgotten */
  }
  msgpack_sbuffer_destroy(&out);
  free(rx);
  if (agent.n_bindings > MAX_BINDINGS || agent.n_identities > 16)
    agent_fresh();
  return 0;
}
