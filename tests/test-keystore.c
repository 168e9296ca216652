/*
 * test-keystore.c: what survives a restart, what the keystore refuses to
 * load, and the lock that keeps a second agent off the same keystore.
 */
#include "config.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sodium.h>

#include "dispatch-call.h"
#include "jwk.h"
#include "tap.h"

static char dir[256], ks[400];

static int reopen(struct agent *a, char *err, size_t errlen) {
  return agent_init(a, ks, err, errlen);
}

static int binding_file(char *out, size_t size) {
  char cmd[600];
  snprintf(cmd, sizeof(cmd), "ls %s/identities/default/bindings/*.binding 2>/dev/null | head -1", ks);
  FILE *p = popen(cmd, "r");
  if (!p)
    return -1;
  int r = fgets(out, (int)size, p) ? 0 : -1;
  pclose(p);
  out[strcspn(out, "\n")] = '\0';
  return r;
}

int main(void) {
  struct agent a, b;
  struct reply rep;
  struct proto_public_result pub;
  char err[512], keyid[64], tag[64], file[600];

  if (sodium_init() < 0)
    return 99;
  jwk_json_memory_install();
  if (!ok(test_agent_new(&a, dir, sizeof(dir)) == 0, "a new keystore is created"))
    return done_testing();
  snprintf(ks, sizeof(ks), "%s/ks", dir);
  struct stat st;
  ok(stat(ks, &st) == 0 && (st.st_mode & 0777) == 0700, "the keystore directory is 0700");

  struct proto_identity_params p = { .origin = "https://persist.example/mcp" };
  ok(dcall(&a, "identity.public", &proto_identity_params_schema, &p, &proto_public_result_schema, &pub, &rep) == 0 &&
       pub.created,
     "first contact creates a binding");
  snprintf(keyid, sizeof(keyid), "%s", pub.keyid);
  snprintf(tag, sizeof(tag), "%s", pub.tag);
  reply_free(&rep);
  ok(binding_file(file, sizeof(file)) == 0 && stat(file, &st) == 0 && (st.st_mode & 0777) == 0600,
     "the binding file is 0600");

  /* A second agent on the same keystore is refused, naming the first. */
  int r = reopen(&b, err, sizeof(err));
  char pidstr[32];
  snprintf(pidstr, sizeof(pidstr), "pid %ld", (long)getpid());
  ok(r == MCPSIG_ESTORE && strstr(err, "in use by another mcpsig-agent") && strstr(err, pidstr),
     "a second agent on the same keystore is refused, naming the holder's pid");

  agent_done(&a);
  ok(reopen(&a, err, sizeof(err)) == 0, "the keystore reloads after the agent stops");
  struct binding *lb = agent_binding_find(&a, agent_identity_find(&a, "default"), "https://persist.example");
  ok(lb && lb->active.unverified && strcmp(lb->active.keyid, keyid) == 0,
     "loading took the public key and keyid stored in the record, deriving nothing yet");
  ok(dcall(&a, "identity.public", &proto_identity_params_schema, &p, &proto_public_result_schema, &pub, &rep) == 0 &&
       !pub.created && strcmp(pub.keyid, keyid) == 0 && strcmp(pub.tag, tag) == 0,
     "the tag and key survive a restart");
  reply_free(&rep);
  ok(lb && !lb->active.unverified, "the first use checked the stored public half against the private key");
  /* A damaged public half (in the record, so in the key slot too) is replaced
   * by the derived one before any use, and signatures verify. */
  unsigned char good_pub[32], sig[KEY_SIG_MAX];
  size_t siglen = 0;
  if (lb) {
    memcpy(good_pub, lb->active.pub, 32);
    lb->active.unverified = true;
    lb->active.pub[3] ^= 0x40;
    lb->active.keyid[0] = lb->active.keyid[0] == 'A' ? 'B' : 'A';
    unsigned char *slot = keypool_open(a.pool, lb->active.slot, true);
    if (slot)
      slot[32 + 3] ^= 0x40;
    keypool_close(a.pool, lb->active.slot);
    ok(key_sign(a.pool, &lb->active, "msg", 3, sig, &siglen) == 0 && siglen == 64 &&
         crypto_sign_verify_detached(sig, (const unsigned char *)"msg", 3, good_pub) == 0 &&
         memcmp(lb->active.pub, good_pub, 32) == 0,
       "a damaged stored public half: the first signature uses the derived key, and verifies");
    lb->active.unverified = true;
    lb->active.keyid[0] = lb->active.keyid[0] == 'A' ? 'B' : 'A';
  }
  struct proto_sign_params sp = { .method = "GET", .uri = "https://persist.example/mcp" };
  struct proto_sign_result sr;
  ok(dcall(&a, "sign.http", &proto_sign_params_schema, &sp, &proto_sign_result_schema, &sr, &rep) == 0 &&
       strcmp(sr.keyid, keyid) == 0 && strstr(sr.headers.signature_input, keyid),
     "a damaged stored public key and keyid are replaced by the derived ones before signing");
  reply_free(&rep);

  /* A temporary left by an interrupted write is wiped at load; the real file stays. */
  char tmpf[700];
  snprintf(tmpf, sizeof(tmpf), "%s.tmp", file);
  int fd = open(tmpf, O_WRONLY | O_CREAT, 0600);
  if (fd >= 0) {
    if (write(fd, "partial", 7) != 7)
      fprintf(stderr, "# short write\n");
    close(fd);
  }
  agent_done(&a);
  ok(reopen(&a, err, sizeof(err)) == 0 && access(tmpf, F_OK) != 0, "a leftover temporary is removed at load");
  ok(dcall(&a, "identity.public", &proto_identity_params_schema, &p, &proto_public_result_schema, &pub, &rep) == 0 &&
       strcmp(pub.keyid, keyid) == 0,
     "and the binding it would have replaced is intact");
  reply_free(&rep);
  agent_done(&a);

  /* Unsafe modes are refused with the fix in the message. */
  chmod(file, 0644);
  r = reopen(&a, err, sizeof(err));
  ok(r == MCPSIG_ESTORE && strstr(err, "chmod 600"), "a group/world-readable key file is refused, with the fix");
  chmod(file, 0600);
  chmod(ks, 0755);
  r = reopen(&a, err, sizeof(err));
  ok(r == MCPSIG_ESTORE && strstr(err, "chmod 700"), "a group/world-accessible keystore is refused, with the fix");
  chmod(ks, 0700);

  /* A damaged file stops the load and is named, instead of losing a key silently. */
  fd = open(file, O_WRONLY | O_TRUNC);
  if (fd >= 0) {
    if (write(fd, "\xc1garbage", 8) != 8)
      fprintf(stderr, "# short write\n");
    close(fd);
  }
  r = reopen(&a, err, sizeof(err));
  ok(r == MCPSIG_ESTORE && strstr(err, "damaged") && strstr(err, file), "a damaged binding file is named, not skipped");
  unlink(file);

  /* A symlink in place of a key file is not followed. */
  if (symlink("/etc/passwd", file) == 0) {
    r = reopen(&a, err, sizeof(err));
    ok(r == MCPSIG_ESTORE, "a symlinked key file is refused (O_NOFOLLOW)");
    unlink(file);
  }

  ok(reopen(&a, err, sizeof(err)) == 0, "the keystore loads again once the bad file is gone");
  ok(dcall(&a, "identity.public", &proto_identity_params_schema, &p, &proto_public_result_schema, &pub, &rep) == 0 &&
       pub.created && strcmp(pub.keyid, keyid) != 0,
     "(that binding is gone: a new contact makes a new key)");
  reply_free(&rep);

  /* identity.add persists the identity; remove --all wipes it. */
  struct proto_identity_params add = { .identity = "work" };
  ok(dcall(&a, "identity.add", &proto_identity_params_schema, &add, NULL, NULL, &rep) == 0, "identity.add");
  reply_free(&rep);
  struct proto_identity_params wp = { .identity = "work", .origin = "https://w.example/" };
  ok(dcall(&a, "identity.public", &proto_identity_params_schema, &wp, &proto_public_result_schema, &pub, &rep) == 0,
     "the new identity gets a binding");
  reply_free(&rep);
  agent_done(&a);
  ok(reopen(&a, err, sizeof(err)) == 0 && agent_identity_find(&a, "work") != NULL, "the identity survives a restart");
  struct proto_identity_params rm = { .identity = "work", .all = true };
  ok(dcall(&a, "identity.remove", &proto_identity_params_schema, &rm, NULL, NULL, &rep) == 0, "identity.remove all");
  reply_free(&rep);
  char wdir[600];
  snprintf(wdir, sizeof(wdir), "%s/identities/work", ks);
  ok(access(wdir, F_OK) != 0, "its directory and key files are gone");
  agent_done(&a);
  ok(reopen(&a, err, sizeof(err)) == 0 && agent_identity_find(&a, "work") == NULL, "and it stays gone after a restart");
  test_agent_free(&a, dir);
  return done_testing();
}
