/*
 * test-keystore.c: what survives a restart, what the keystore refuses to
 * load, the lock that keeps a second agent off the same keystore, records
 * that disagree with themselves (a tag with CR/LF, an alg that is not the
 * key's, a keyid that is not its key's thumbprint), and files in the
 * keystore that are not the agent's (FIFOs, hard links).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sodium.h>

#include "dispatch-call.h"
#include "jwk.h"
#include "log.h"
#include "record-edit.h"
#include "tap.h"
#include "warn-capture.h"

static char dir[256], ks[400];

static int reopen(struct agent *a, char *err, size_t errlen) {
  return agent_init(a, ks, err, errlen);
}


/* The path of an origin's file (suffix ".binding" or ".pending") under identity. */
static void origin_path(const char *identity, const char *origin, const char *suffix, char *out, size_t size) {
  unsigned char h[32];
  char name[64];
  proto_sha256(origin, strlen(origin), h);
  sodium_bin2base64(name, sizeof(name), h, sizeof(h), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  snprintf(out, size, "%s/identities/%s/bindings/%s%s", ks, identity, name, suffix);
}

static bool same_bytes(const char *path, const char *want, size_t len) {
  char *got = NULL;
  size_t n = 0;
  bool same = record_read_file(path, &got, &n) == 0 && n == len && memcmp(got, want, len) == 0;
  free(got);
  return same;
}

/* For tests/RELIABILITY.md: forged records tried, loaded anyway, and
 * forged keyids that survived a load. */
static long forged_tried, forged_loaded, forged_keyids_kept;

static void metric(const char *name, long value) {
  const char *top = getenv("top_builddir");
  char path[600];
  if (!top)
    return;
  snprintf(path, sizeof(path), "%s/reliability", top);
  if (mkdir(path, 0755) < 0 && errno != EEXIST)
    return;
  snprintf(path, sizeof(path), "%s/reliability/test-keystore.tsv", top);
  FILE *f = fopen(path, "a");
  if (f) {
    fprintf(f, "%s\t%ld\n", name, value);
    fclose(f);
  }
}

/* The record at path, edited, must stop the load with a message naming
 * path and saying what; then the saved record is put back. */
static void refused(struct agent *a, const char *path, const char *saved, size_t saved_len, const struct edit *edits,
                    size_t n, const char *what, const char *desc) {
  char err[1024] = "";
  struct record_edits e = { edits, n, 0, NULL, 0 };
  int r = record_edit(path, &e) > 0 ? reopen(a, err, sizeof(err)) : -1;
  if (!ok(r == MCPSIG_ESTORE && strstr(err, path) && strstr(err, what), desc))
    printf("#   got %d: %s\n", r, err);
  forged_tried++;
  if (r == 0) {
    forged_loaded++;
    agent_done(a);
  }
  record_write_file(path, saved, saved_len);
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
  if (getenv("top_builddir")) {
    char tsv[600];
    snprintf(tsv, sizeof(tsv), "%s/reliability/test-keystore.tsv", getenv("top_builddir"));
    unlink(tsv);
  }
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

  /* A FIFO or a hang would stop this test for ever: it fails instead. */
  alarm(60);
  log_set_sink(capture, NULL);

  /* ---- records that disagree with themselves ---- */
  const char *RO = "https://records.example";
  struct proto_identity_params rp = { .origin = "https://records.example/mcp" };
  char rkeyid[64], rfile[700], *saved = NULL;
  size_t saved_len = 0;
  ok(dcall(&a, "identity.public", &proto_identity_params_schema, &rp, &proto_public_result_schema, &pub, &rep) == 0,
     "(a binding to forge)");
  snprintf(rkeyid, sizeof(rkeyid), "%s", pub.keyid);
  reply_free(&rep);
  agent_done(&a);
  origin_path("default", RO, ".binding", rfile, sizeof(rfile));
  ok(record_read_file(rfile, &saved, &saved_len) == 0, "(its record, kept)");
  const struct edit crlf_tag[] = { { .key = "tag", .kind = EDIT_STR, .str = "UtNbkK4\r\nX-Injected: 1" } };
  refused(&a, rfile, saved, saved_len, crlf_tag, 1, "tag that is not a thumbprint", "a tag with CR/LF is refused");
  const struct edit quote_tag[] = { { .key = "tag", .kind = EDIT_STR, .str = "UtNb\",keyid=\"x" } };
  refused(&a, rfile, saved, saved_len, quote_tag, 1, "tag that is not a thumbprint", "a tag with a quote is refused");
  const struct edit empty_tag[] = { { .key = "tag", .kind = EDIT_STR, .str = "", .str_len = 0 } };
  refused(&a, rfile, saved, saved_len, empty_tag, 1, "tag that is not a thumbprint", "an empty tag is refused");
  const struct edit p256_alg[] = { { .key = "alg", .kind = EDIT_STR, .str = "p256" } };
  refused(&a, rfile, saved, saved_len, p256_alg, 1, "the alg disagrees with the key",
          "an Ed25519 key labelled p256 is refused");
  const struct edit p384_alg[] = { { .key = "alg", .kind = EDIT_STR, .str = "p384" } };
  refused(&a, rfile, saved, saved_len, p384_alg, 1, "the alg disagrees with the key",
          "an Ed25519 key labelled p384 is refused");
  char fake[44];
  record_fake_keyid(42, fake);
  const struct edit no_pub_other_tag[] = {
    { .key = "pub", .kind = EDIT_DROP }, { .key = "keyid", .kind = EDIT_DROP }, { .key = "tag", .kind = EDIT_STR, .str = fake } };
  refused(&a, rfile, saved, saved_len, no_pub_other_tag, 3, "its tag is not its key's thumbprint",
          "a binding that never rotated, whose tag is not its key's thumbprint, is refused");
  {
    /* The origin names the file, so a forged origin comes with a file of its name. */
    char other[700];
    const char *RO2 = "https://records.example\r\nX-Injected: 1";
    const struct edit upper[] = { { .key = "origin", .kind = EDIT_STR, .str = RO2 } };
    struct record_edits e = { upper, 1, 0, NULL, 0 };
    origin_path("default", RO2, ".binding", other, sizeof(other));
    r = record_edit(rfile, &e) > 0 && rename(rfile, other) == 0 ? reopen(&a, err, sizeof(err)) : -1;
    ok(r == MCPSIG_ESTORE && strstr(err, other) && strstr(err, "does not belong here"),
       "an origin with CR/LF in it is refused");
    forged_tried++;
    if (r == 0) {
      forged_loaded++;
      agent_done(&a);
    }
    unlink(other);
    record_write_file(rfile, saved, saved_len);
  }

  /* A keyid that is not the thumbprint of the stored public key never
   * reaches a listing: the key is derived again. */
  const struct edit other_keyid[] = { { .key = "keyid", .kind = EDIT_STR, .str = fake } };
  struct record_edits ek = { other_keyid, 1, 0, NULL, 0 };
  record_edit(rfile, &ek);
  struct binding *rb = NULL;
  ok(reopen(&a, err, sizeof(err)) == 0 && (rb = agent_binding_find(&a, agent_identity_find(&a, "default"), RO)) &&
       strcmp(rb->active.keyid, rkeyid) == 0 && !rb->active.unverified,
     "a stored keyid that is not its public key's thumbprint loads with the derived keyid");
  if (!rb || strcmp(rb->active.keyid, rkeyid) != 0)
    forged_keyids_kept++;
  agent_done(&a);
  const struct edit crlf_keyid[] = { { .key = "keyid", .kind = EDIT_STR, .str = "abc\r\ndefghijklmnopqrstuvwxyz0123456789ABCD" } };
  struct record_edits ec = { crlf_keyid, 1, 0, NULL, 0 };
  record_write_file(rfile, saved, saved_len);
  record_edit(rfile, &ec);
  ok(reopen(&a, err, sizeof(err)) == 0 && (rb = agent_binding_find(&a, agent_identity_find(&a, "default"), RO)) &&
       strcmp(rb->active.keyid, rkeyid) == 0,
     "  and so does a keyid with CR/LF in it");
  if (!rb || strcmp(rb->active.keyid, rkeyid) != 0)
    forged_keyids_kept++;
  agent_done(&a);
  record_write_file(rfile, saved, saved_len);
  ok(reopen(&a, err, sizeof(err)) == 0 && (rb = agent_binding_find(&a, agent_identity_find(&a, "default"), RO)) &&
       strcmp(rb->active.keyid, rkeyid) == 0 && rb->active.unverified,
     "control: the genuine record loads, its keyid taken as stored");

  if (key_alg_available(KEY_P256)) {
    struct proto_identity_params ec_id = { .identity = "ec", .alg = "p256" };
    struct proto_identity_params ec_b = { .identity = "ec", .origin = "https://records.example/mcp" };
    char efile[700], *esaved = NULL;
    size_t esaved_len = 0;
    ok(dcall(&a, "identity.add", &proto_identity_params_schema, &ec_id, NULL, NULL, &rep) == 0 &&
         (reply_free(&rep), dcall(&a, "identity.public", &proto_identity_params_schema, &ec_b,
                                  &proto_public_result_schema, &pub, &rep)) == 0 &&
         strcmp(pub.alg, "ecdsa-p256-sha256") == 0,
       "(a P-256 binding to forge)");
    reply_free(&rep);
    agent_done(&a);
    origin_path("ec", RO, ".binding", efile, sizeof(efile));
    record_read_file(efile, &esaved, &esaved_len);
    const struct edit ed_alg[] = { { .key = "alg", .kind = EDIT_STR, .str = "ed25519" } };
    refused(&a, efile, esaved, esaved_len, ed_alg, 1, "the alg disagrees with the key",
            "a P-256 key labelled ed25519 is refused");
    const struct edit ed_alg_no_pub[] = { { .key = "alg", .kind = EDIT_STR, .str = "ed25519" },
                                          { .key = "pub", .kind = EDIT_DROP }, { .key = "keyid", .kind = EDIT_DROP } };
    refused(&a, efile, esaved, esaved_len, ed_alg_no_pub, 3, "its tag is not its key's thumbprint",
            "  and so is one without its public half, whose scalar would pass for an Ed25519 seed");
    free(esaved);
    ok(reopen(&a, err, sizeof(err)) == 0, "control: the P-256 record as it was loads");
  } else {
    /* The agent is still open from the control above. */
    printf("ok %d # SKIP no P-256 keys in this build: the P-256 record cases cannot run\n", ++tap_n);
  }

  /* A pending key must have its binding's key type. */
  struct proto_rotate_params rot = { NULL, RO };
  struct proto_binding pb;
  ok(dcall(&a, "rotate.begin", &proto_rotate_params_schema, &rot, &proto_binding_schema, &pb, &rep) == 0,
     "(a pending key to forge)");
  reply_free(&rep);
  agent_done(&a);
  char pfile[700], *psaved = NULL;
  size_t psaved_len = 0;
  origin_path("default", RO, ".pending", pfile, sizeof(pfile));
  record_read_file(pfile, &psaved, &psaved_len);
  const struct edit pend_alg[] = { { .key = "alg", .kind = EDIT_STR, .str = "p256" } };
  refused(&a, pfile, psaved, psaved_len, pend_alg, 1, "does not belong to", "a pending key of another key type is refused");
  struct binding *pbnd = NULL;
  ok(reopen(&a, err, sizeof(err)) == 0 &&
       (pbnd = agent_binding_find(&a, agent_identity_find(&a, "default"), RO)) && pbnd->has_pending,
     "control: the pending key as it was loads");
  free(psaved);

  /* ---- a hard link to a binding file, as a backup made with cp -al has ---- */
  char snap[700];
  snprintf(snap, sizeof(snap), "%s/snapshot.binding", dir);
  ok(link(rfile, snap) == 0, "(a hard link to the binding file, outside the keystore)");
  warned_clear();
  ok(dcall(&a, "rotate.commit", &proto_rotate_params_schema, &rot, &proto_binding_schema, &pb, &rep) == 0,
     "a commit replaces the hard-linked binding file");
  reply_free(&rep);
  ok(same_bytes(snap, saved, saved_len), "  and the other link still holds the old record, not zeros");
  ok(warned.n == 1 && strstr(warned.text, "other hard links") && strstr(warned.text, ".old"),
     "  and the agent says it did not overwrite it");
  printf("# %s", warned.text);
  unlink(snap);
  agent_done(&a);

  /* ---- agent.lock that is not the agent's ---- */
  char lock[600], precious[600];
  snprintf(lock, sizeof(lock), "%s/agent.lock", ks);
  snprintf(precious, sizeof(precious), "%s/precious.txt", dir);
  const char words[] = "a file of the user's, hard-linked into the keystore\n";
  record_write_file(precious, words, sizeof(words) - 1);
  unlink(lock);
  ok(link(precious, lock) == 0, "(agent.lock hard-linked to a file of the user's)");
  warned_clear();
  if (!ok(reopen(&a, err, sizeof(err)) == 0 && same_bytes(precious, words, sizeof(words) - 1),
          "the agent starts and writes nothing into the other link"))
    printf("#   %s\n", err);
  struct stat ls, ps;
  ok(stat(lock, &ls) == 0 && stat(precious, &ps) == 0 && ls.st_ino != ps.st_ino && ls.st_nlink == 1,
     "  agent.lock is now a file of its own");
  ok(warned.n == 1 && strstr(warned.text, lock), "  and the agent says so");
  r = reopen(&b, err, sizeof(err));
  ok(r == MCPSIG_ESTORE && strstr(err, "in use by another mcpsig-agent"), "  the new lock file keeps a second agent out");
  int pfd = open(precious, O_RDONLY);
  ok(pfd >= 0 && flock(pfd, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK,
     "  and the old one stays locked, for an agent that opened it before the rename");
  if (pfd >= 0)
    close(pfd);
  agent_done(&a);

  unlink(lock);
  ok(mkfifo(lock, 0600) == 0, "(a FIFO as agent.lock)");
  r = reopen(&a, err, sizeof(err));
  ok(r == MCPSIG_ESTORE && strstr(err, lock) && strstr(err, "is a FIFO") && strstr(err, "rm "),
     "a FIFO as agent.lock is refused by name, saying how to fix it");
  unlink(lock);

  /* ---- FIFOs where records belong, and as leftovers ---- */
  char aside[700];
  snprintf(aside, sizeof(aside), "%s/aside.binding", dir);
  ok(rename(rfile, aside) == 0 && mkfifo(rfile, 0600) == 0, "(a FIFO in place of a binding file)");
  r = reopen(&a, err, sizeof(err));
  ok(r == MCPSIG_ESTORE && strstr(err, rfile) && strstr(err, "is a FIFO, not a regular file"),
     "a FIFO in place of a binding file is refused by name, without hanging");
  unlink(rfile);
  rename(aside, rfile);
  char leftover[800];
  snprintf(leftover, sizeof(leftover), "%s.tmp", rfile);
  ok(mkfifo(leftover, 0600) == 0, "(a FIFO as a leftover temporary)");
  warned_clear();
  ok(reopen(&a, err, sizeof(err)) == 0 && access(leftover, F_OK) != 0 && strstr(warned.text, "was a FIFO"),
     "a FIFO left as a temporary is unlinked, and the agent says what it was");
  agent_done(&a);
  alarm(0);
  log_set_sink(NULL, NULL);
  free(saved);

  ok(reopen(&a, err, sizeof(err)) == 0, "the keystore loads at the end");
  metric("forged_records_tried", forged_tried);
  metric("forged_records_loaded", forged_loaded);
  metric("forged_keyids_kept", forged_keyids_kept);
  test_agent_free(&a, dir);
  return done_testing();
}
