/*
 * test-history.c: a binding's history never blocks loading. 10,000
 * rotations of one binding through the socket-free dispatcher, then a
 * restart, a reload and a signature; the same binding's record forged to
 * the size of 100,000 rotations (over the 256 KiB record limit), loaded
 * with its newest keyids; histories with malformed entries and counts; and,
 * as controls, damage that is not history, which is still refused.
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <sodium.h>

#include "dispatch-call.h"
#include "jwk.h"
#include "log.h"
#include "record-edit.h"
#include "tap.h"
#include "warn-capture.h"

#define ORIGIN "https://history.example"
#define URI ORIGIN "/mcp"
#define ROTATIONS 10000
#define FORGED 100000
#define KEEP BINDING_RETIRED_KEEP

static struct agent a;
static char base[300], ks[400], bfile[700];


static struct binding *binding(void) {
  struct identity *id = agent_identity_find(&a, "default");
  return id ? agent_binding_find(&a, id, ORIGIN) : NULL;
}

static int start(void) {
  char err[512];
  int r = agent_init(&a, ks, err, sizeof(err));
  if (r < 0)
    printf("# agent_init: %s\n", err);
  return r;
}

static int restart(void) {
  agent_done(&a);
  return start();
}

static int reload(void) {
  char err[512];
  int r = agent_reload(&a, err, sizeof(err));
  if (r < 0)
    printf("# agent_reload: %s\n", err);
  return r;
}

static int step(const char *method, struct proto_binding *out, struct reply *rep) {
  struct proto_rotate_params p = { NULL, ORIGIN };
  return dcall(&a, method, &proto_rotate_params_schema, &p, &proto_binding_schema, out, rep);
}

/* A signature for URI: 0 when it is made with keyid under tag. */
static int signs(const char *keyid, const char *tag) {
  struct proto_sign_params sp = { .method = "GET", .uri = URI };
  struct proto_sign_result sr;
  struct reply rep;
  int r = dcall(&a, "sign.http", &proto_sign_params_schema, &sp, &proto_sign_result_schema, &sr, &rep);
  if (r == 0 && (strcmp(sr.keyid, keyid) != 0 || strcmp(sr.tag, tag) != 0 || !strstr(sr.headers.signature_input, keyid)))
    r = -1;
  if (r != 0)
    printf("# sign.http: %d %s\n", r, rep.message);
  reply_free(&rep);
  return r;
}

/* The retired keyids of the loaded binding are exactly want[0..n), oldest first. */
static bool retired_is(char want[][44], size_t n) {
  struct binding *b = binding();
  if (!b || b->n_retired != n)
    return false;
  for (size_t i = 0; i < n; i++)
    if (strcmp(b->retired[i], want[i]) != 0)
      return false;
  return true;
}

static long file_size(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* The temporary keystore goes, whichever way the test ends. */
static void cleanup(void) {
  char cmd[400];
  if (!base[0] || strstr(base, "XXXXXX"))
    return;
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
  if (system(cmd) != 0)
    printf("# could not remove %s\n", base);
}

static void metric(const char *name, long long value) {
  const char *top = getenv("top_builddir");
  char path[600];
  if (!top)
    return;
  snprintf(path, sizeof(path), "%s/reliability", top);
  if (mkdir(path, 0755) < 0 && errno != EEXIST)
    return;
  snprintf(path, sizeof(path), "%s/reliability/test-history.tsv", top);
  FILE *f = fopen(path, "a");
  if (f) {
    fprintf(f, "%s\t%lld\n", name, value);
    fclose(f);
  }
}

int main(void) {
  struct reply rep;
  struct proto_binding pb;
  char tag[64], active[64];
  static char retired[KEEP][44]; /* the newest retired keyids, oldest first */
  long long survived = 0;

  if (sodium_init() < 0)
    return 99;
  jwk_json_memory_install();
  log_set_sink(capture, NULL);
  {
    const char *top = getenv("top_builddir");
    char path[600];
    snprintf(path, sizeof(path), "%s/reliability/test-history.tsv", top ? top : ".");
    if (top)
      unlink(path);
  }
  /* fsync costs nothing on tmpfs: what is tested is the history, not the disk. */
  struct stat st;
  const char *tmp = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) && access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  snprintf(base, sizeof(base), "%s/mcpsig-history.XXXXXX", tmp);
  if (!ok(mkdtemp(base) != NULL, "a temporary directory"))
    return done_testing();
  atexit(cleanup);
  snprintf(ks, sizeof(ks), "%s/ks", base);
  if (!ok(start() == 0, "an agent on a new keystore"))
    return done_testing();
  struct proto_identity_params ip = { .origin = ORIGIN };
  struct proto_public_result pub;
  ok(dcall(&a, "identity.public", &proto_identity_params_schema, &ip, &proto_public_result_schema, &pub, &rep) == 0,
     "first contact makes the binding");
  snprintf(tag, sizeof(tag), "%s", pub.tag);
  snprintf(active, sizeof(active), "%s", pub.keyid);
  reply_free(&rep);
  {
    unsigned char h[32];
    char name[64];
    proto_sha256(ORIGIN, strlen(ORIGIN), h);
    sodium_bin2base64(name, sizeof(name), h, sizeof(h), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    snprintf(bfile, sizeof(bfile), "%s/identities/default/bindings/%s.binding", ks, name);
  }

  /* ---- 10,000 rotations ---- */
  size_t failed = 0, uncapped = 0, wrong_reply = 0;
  long largest = 0;
  for (size_t i = 0; i < ROTATIONS; i++) {
    char before[64];
    snprintf(before, sizeof(before), "%s", active);
    if (step("rotate.begin", &pb, &rep) != 0) {
      failed++;
      reply_free(&rep);
      continue;
    }
    reply_free(&rep);
    if (step("rotate.commit", &pb, &rep) != 0) {
      failed++;
      reply_free(&rep);
      continue;
    }
    size_t want = i + 1 < KEEP ? i + 1 : KEEP;
    if (pb.n_retired != want || strcmp(pb.retired[pb.n_retired - 1], before) != 0 || strcmp(pb.tag, tag) != 0)
      wrong_reply++;
    snprintf(active, sizeof(active), "%s", pb.keyid);
    reply_free(&rep);
    if (i + KEEP >= ROTATIONS)
      memcpy(retired[i + KEEP - ROTATIONS], before, 44);
    struct binding *b = binding();
    if (!b || b->n_retired > KEEP || b->n_retired + b->retired_dropped != i + 1)
      uncapped++;
    long size = file_size(bfile);
    if (size > largest)
      largest = size;
  }
  ok(failed == 0, "10,000 rotations of one binding: every begin and commit succeeds");
  ok(wrong_reply == 0, "  each commit reply lists at most 100 retired keyids, the key just retired last, same tag");
  ok(uncapped == 0, "  in memory the list never passes 100, and listed + dropped counts every rotation");
  printf("# largest binding file during the rotations: %ld bytes\n", largest);
  ok(largest > 0 && largest < 16384, "  the binding file never passes 16 KiB (it grew to 256 KiB by 5,810 before)");
  ok(warned.n == 0, "  and nothing was warned about");

  ok(restart() == 0, "after 10,000 rotations the agent restarts");
  struct binding *b = binding();
  ok(b && strcmp(b->tag, tag) == 0 && strcmp(b->active.keyid, active) == 0 && b->retired_dropped == ROTATIONS - KEEP,
     "  with the same tag, the last key active, and 9,900 retired keys counted as dropped");
  ok(retired_is(retired, KEEP), "  listing the 100 newest retired keyids, oldest first");
  ok(warned.n == 0, "  loaded without a warning: the history was already short");
  ok(reload() == 0 && retired_is(retired, KEEP), "a reload loads it the same way");
  ok(signs(active, tag) == 0, "and it signs with the active key under the same tag");
  survived += ROTATIONS;

  /* ---- a record forged to the size of 100,000 rotations ---- */
  agent_done(&a);
  const struct edit no_count[] = { { .key = "retired_dropped", .kind = EDIT_DROP } };
  struct record_edits forge = { no_count, 1, FORGED - KEEP, NULL, 0 };
  long forged = record_edit(bfile, &forge);
  printf("# the forged record: %ld bytes\n", forged);
  ok(forged > 256 * 1024, "a record forged to 100,000 retired keyids (an agent before the cap) passes 256 KiB");
  warned_clear();
  ok(start() == 0, "the agent starts on it");
  b = binding();
  ok(b && retired_is(retired, KEEP) && b->retired_dropped == FORGED - KEEP && strcmp(b->active.keyid, active) == 0,
     "  keeping its 100 newest keyids, counting the 99,900 older ones, and its key");
  ok(warned.n == 1 && strstr(warned.text, bfile) && strstr(warned.text, "over the 256 KiB limit"),
     "  with a warning that names the file and says why");
  printf("# %s", warned.text);
  ok(reload() == 0 && retired_is(retired, KEEP), "a reload loads it too");
  ok(signs(active, tag) == 0, "and it signs");
  ok(file_size(bfile) == forged, "loading does not rewrite the file");
  ok(step("rotate.begin", &pb, &rep) == 0, "a rotation begins");
  reply_free(&rep);
  ok(step("rotate.commit", &pb, &rep) == 0 && pb.n_retired == KEEP && strcmp(pb.retired[KEEP - 1], active) == 0,
     "  and commits, retiring the key it had");
  memmove(retired[0], retired[1], (KEEP - 1) * sizeof(retired[0]));
  memcpy(retired[KEEP - 1], active, 44);
  snprintf(active, sizeof(active), "%s", pb.keyid);
  reply_free(&rep);
  ok(file_size(bfile) > 0 && file_size(bfile) < 16384, "  which rewrites the file short");
  warned_clear();
  ok(restart() == 0 && retired_is(retired, KEEP) && binding()->retired_dropped == FORGED - KEEP + 1,
     "after a restart the count of dropped keyids is kept");
  ok(warned.n == 0, "  and no warning is needed any more (the control for the warning above)");
  ok(signs(active, tag) == 0, "  and it signs");
  survived += FORGED;

  /* ---- a long history under the record limit ---- */
  agent_done(&a);
  struct record_edits old_agent = { no_count, 1, 5000 - KEEP, NULL, 0 };
  long medium = record_edit(bfile, &old_agent);
  ok(medium > 128 * 1024 && medium < 256 * 1024, "(a record of 5,000 retired keyids and no count, under 256 KiB)");
  warned_clear();
  ok(start() == 0 && retired_is(retired, KEEP) && binding()->retired_dropped == 5000 - KEEP,
     "loads with its newest 100 keyids, counting the 4,900 others");
  ok(warned.n == 1 && strstr(warned.text, bfile) && strstr(warned.text, "lists more than 100 retired keyids"),
     "  with a warning that names the file");
  ok(signs(active, tag) == 0, "  and signs");
  ok(step("rotate.begin", &pb, &rep) == 0, "a rotation begins");
  reply_free(&rep);
  ok(step("rotate.commit", &pb, &rep) == 0 && pb.n_retired == KEEP && file_size(bfile) < 16384,
     "  and its commit writes the file short");
  memmove(retired[0], retired[1], (KEEP - 1) * sizeof(retired[0]));
  memcpy(retired[KEEP - 1], active, 44);
  snprintf(active, sizeof(active), "%s", pb.keyid);
  reply_free(&rep);

  /* ---- damage that is not history is still refused ---- */
  agent_done(&a);
  char *saved = NULL;
  size_t saved_len = 0;
  ok(record_read_file(bfile, &saved, &saved_len) == 0, "(the good record, kept)");
  static char note[300 * 1024];
  memset(note, 'x', sizeof(note));
  const struct edit big_note[] = { { .key = "note", .kind = EDIT_STR, .str = note, .str_len = sizeof(note) } };
  struct record_edits e1 = { big_note, 1, FORGED, NULL, 0 };
  record_edit(bfile, &e1);
  char why[1024];
  int r = agent_init(&a, ks, why, sizeof(why));
  ok(r == MCPSIG_ESTORE && strstr(why, bfile) && strstr(why, "damaged") && strstr(why, "other than its history"),
     "an oversized record whose bulk is not its history is refused as damaged, naming the file");
  if (r == 0)
    agent_done(&a);
  record_write_file(bfile, saved, saved_len);
  struct record_edits e2 = { NULL, 0, FORGED, "\x01\x02\x03", 3 };
  record_edit(bfile, &e2);
  r = agent_init(&a, ks, why, sizeof(why));
  ok(r == MCPSIG_ESTORE && strstr(why, bfile) && strstr(why, "bytes after"),
     "an oversized record with bytes after its map is refused as damaged");
  if (r == 0)
    agent_done(&a);
  record_write_file(bfile, saved, saved_len);
  struct record_edits e3 = { NULL, 0, FORGED, NULL, 0 };
  long full = record_edit(bfile, &e3);
  ok(full > 0 && truncate(bfile, full / 2) == 0, "(an oversized record cut in the middle of its history)");
  r = agent_init(&a, ks, why, sizeof(why));
  ok(r == MCPSIG_ESTORE && strstr(why, bfile) && strstr(why, "damaged"), "  is refused as damaged");
  if (r == 0)
    agent_done(&a);
  record_write_file(bfile, saved, saved_len);
  ok(start() == 0 && retired_is(retired, KEEP), "control: the good record loads again");
  agent_done(&a);

  /* ---- malformed histories in records of normal size ---- */
  msgpack_sbuffer sb;
  msgpack_packer pk;
  char fake[3][44];
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_array(&pk, 6);
  msgpack_pack_str(&pk, 11);
  msgpack_pack_str_body(&pk, "bad\r\nkeyid\"", 11);
  for (int i = 0; i < 3; i++) {
    record_fake_keyid((uint64_t)i + 7, fake[i]);
    msgpack_pack_str(&pk, 43);
    msgpack_pack_str_body(&pk, fake[i], 43);
    if (i == 0)
      msgpack_pack_int(&pk, 7);
  }
  msgpack_pack_str(&pk, 0);
  const struct edit bad_entries[] = {
    { .key = "retired", .kind = EDIT_RAW, .raw = sb.data, .raw_len = sb.size },
    { .key = "retired_dropped", .kind = EDIT_UINT, .u = UINT64_MAX },
  };
  struct record_edits e4 = { bad_entries, 2, 0, NULL, 0 };
  record_edit(bfile, &e4);
  warned_clear();
  ok(start() == 0, "a history with a CR/LF entry, an integer and an empty string loads");
  b = binding();
  ok(b && retired_is(fake, 3) && b->retired_dropped == INT64_MAX,
     "  keeping the 3 keyids, dropping the 3 others, and holding a count of 2^64-1 at 2^63-1");
  ok(warned.n == 1 && strstr(warned.text, bfile) && strstr(warned.text, "3 of its retired keyids are malformed"),
     "  with a warning that names the file");
  ok(signs(active, tag) == 0, "  and signs");
  agent_done(&a);
  msgpack_sbuffer_destroy(&sb);
  record_write_file(bfile, saved, saved_len);

  const struct edit negative[] = { { .key = "retired_dropped", .kind = EDIT_INT, .i = -5 } };
  struct record_edits e5 = { negative, 1, 0, NULL, 0 };
  record_edit(bfile, &e5);
  ok(start() == 0 && binding() && binding()->retired_dropped == 0 && retired_is(retired, KEEP),
     "a negative count of dropped keyids loads as 0");
  agent_done(&a);
  record_write_file(bfile, saved, saved_len);
  const struct edit not_list[] = { { .key = "retired", .kind = EDIT_STR, .str = "not a list" },
                                   { .key = "retired_dropped", .kind = EDIT_DROP } };
  struct record_edits e6 = { not_list, 2, 0, NULL, 0 };
  record_edit(bfile, &e6);
  warned_clear();
  ok(start() == 0 && binding() && binding()->n_retired == 0,
     "a history that is not a list, without a count, loads as an empty one");
  ok(warned.n == 1 && strstr(warned.text, "its history is not a list"), "  with a warning");
  ok(signs(active, tag) == 0, "  and signs");
  agent_done(&a);
  record_write_file(bfile, saved, saved_len);
  free(saved);

  metric("history_rotations_then_signed", ROTATIONS);
  metric("history_forged_retired_loaded", FORGED);
  printf("# restarts survived with a long history: %lld retired keyids in all\n", survived);
  log_set_sink(NULL, NULL);
  return done_testing();
}
