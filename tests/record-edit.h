/*
 * record-edit.h: rewrites a keystore record (one msgpack map) the way a
 * damaged disk, an older agent or a hostile neighbour could have left it:
 * fields replaced or dropped, a history padded with older keyids, bytes
 * appended. Used by tests/test-history.c, tests/test-keystore.c and
 * tests/history-forge.c. Test keys only: nothing here is kept secret.
 */
#ifndef MCPSIG_RECORD_EDIT_H
#define MCPSIG_RECORD_EDIT_H

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <msgpack.h>
#include <sodium.h>

enum edit_kind {
  EDIT_DROP,   /* remove the field */
  EDIT_STR,    /* a str value */
  EDIT_INT,    /* a signed integer */
  EDIT_UINT,   /* an unsigned integer */
  EDIT_BIN,    /* a bin value */
  EDIT_RAW,    /* value bytes already packed */
};

struct edit {
  const char *key;
  enum edit_kind kind;
  const char *str;
  size_t str_len;           /* 0: strlen(str) */
  int64_t i;
  uint64_t u;
  const void *raw;          /* EDIT_BIN and EDIT_RAW */
  size_t raw_len;
};

struct record_edits {
  const struct edit *edits;
  size_t n_edits;
  size_t pad_retired;       /* synthetic keyids put before the existing ones in "retired" */
  const void *trailer;      /* bytes written after the map */
  size_t trailer_len;
};

/* A keyid-shaped string (43 base64url characters) for index i, never a real key's. */
static inline void record_fake_keyid(uint64_t i, char out[44]) {
  unsigned char h[32], m[16] = "fake-keyid";
  memcpy(m + 8, &i, sizeof(i));
  crypto_hash_sha256(h, m, sizeof(m));
  sodium_bin2base64(out, 44, h, sizeof(h), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

static inline int record_read_file(const char *path, char **ret, size_t *ret_len) {
  FILE *f = fopen(path, "rb");
  struct stat st;
  if (!f)
    return -1;
  if (fstat(fileno(f), &st) < 0 || st.st_size <= 0) {
    fclose(f);
    return -1;
  }
  char *p = malloc((size_t)st.st_size);
  size_t n = p ? fread(p, 1, (size_t)st.st_size, f) : 0;
  fclose(f);
  if (n != (size_t)st.st_size) {
    free(p);
    return -1;
  }
  *ret = p;
  *ret_len = n;
  return 0;
}

/* Writes data as path (mode 0600), replacing it in one rename. */
static inline int record_write_file(const char *path, const void *data, size_t len) {
  char tmp[4200];
  snprintf(tmp, sizeof(tmp), "%s.edit", path);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0)
    return -1;
  const char *p = data;
  size_t left = len;
  while (left > 0) {
    ssize_t n = write(fd, p, left);
    if (n <= 0) {
      close(fd);
      unlink(tmp);
      return -1;
    }
    p += n;
    left -= (size_t)n;
  }
  if (close(fd) < 0 || rename(tmp, path) < 0) {
    unlink(tmp);
    return -1;
  }
  return 0;
}

static inline const struct edit *record_edit_find(const struct record_edits *e, const msgpack_object *key) {
  for (size_t i = 0; i < e->n_edits; i++)
    if (key->type == MSGPACK_OBJECT_STR && key->via.str.size == strlen(e->edits[i].key) &&
        memcmp(key->via.str.ptr, e->edits[i].key, key->via.str.size) == 0)
      return &e->edits[i];
  return NULL;
}

static inline void record_pack_edit(msgpack_packer *pk, const struct edit *ed) {
  size_t n;
  switch (ed->kind) {
  case EDIT_STR:
    n = ed->str_len ? ed->str_len : strlen(ed->str);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, ed->str, n);
    break;
  case EDIT_INT:
    msgpack_pack_int64(pk, ed->i);
    break;
  case EDIT_UINT:
    msgpack_pack_uint64(pk, ed->u);
    break;
  case EDIT_BIN:
    msgpack_pack_bin(pk, ed->raw_len);
    msgpack_pack_bin_body(pk, ed->raw, ed->raw_len);
    break;
  case EDIT_RAW:
    msgpack_sbuffer_write(pk->data, ed->raw, ed->raw_len);
    break;
  case EDIT_DROP:
    break;
  }
}

/*
 * Rewrites the record at path with the edits; a field an edit names that
 * the record lacks is added at the end. Returns the new size, or -1.
 */
static inline long record_edit(const char *path, const struct record_edits *e) {
  char *data = NULL;
  size_t len = 0, off = 0;
  msgpack_unpacked up;
  msgpack_sbuffer sb;
  msgpack_packer pk;
  long r = -1;

  if (record_read_file(path, &data, &len) < 0)
    return -1;
  msgpack_unpacked_init(&up);
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  if (msgpack_unpack_next(&up, data, len, &off) != MSGPACK_UNPACK_SUCCESS || up.data.type != MSGPACK_OBJECT_MAP)
    goto out;
  const msgpack_object_map *m = &up.data.via.map;
  size_t count = 0;
  bool seen[32] = { false };
  for (uint32_t i = 0; i < m->size; i++) {
    const struct edit *ed = record_edit_find(e, &m->ptr[i].key);
    if (ed)
      seen[ed - e->edits] = true;
    if (!ed || ed->kind != EDIT_DROP)
      count++;
  }
  for (size_t i = 0; i < e->n_edits && i < 32; i++)
    if (!seen[i] && e->edits[i].kind != EDIT_DROP)
      count++;
  msgpack_pack_map(&pk, count);
  for (uint32_t i = 0; i < m->size; i++) {
    const msgpack_object_kv *kv = &m->ptr[i];
    const struct edit *ed = record_edit_find(e, &kv->key);
    if (ed && ed->kind == EDIT_DROP)
      continue;
    msgpack_pack_object(&pk, kv->key);
    if (ed) {
      record_pack_edit(&pk, ed);
    } else if (e->pad_retired && kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == 7 &&
               memcmp(kv->key.via.str.ptr, "retired", 7) == 0 && kv->val.type == MSGPACK_OBJECT_ARRAY) {
      char fake[44];
      msgpack_pack_array(&pk, e->pad_retired + kv->val.via.array.size);
      for (size_t j = 0; j < e->pad_retired; j++) {
        record_fake_keyid(j, fake);
        msgpack_pack_str(&pk, 43);
        msgpack_pack_str_body(&pk, fake, 43);
      }
      for (uint32_t j = 0; j < kv->val.via.array.size; j++)
        msgpack_pack_object(&pk, kv->val.via.array.ptr[j]);
    } else {
      msgpack_pack_object(&pk, kv->val);
    }
  }
  for (size_t i = 0; i < e->n_edits && i < 32; i++) {
    if (seen[i] || e->edits[i].kind == EDIT_DROP)
      continue;
    msgpack_pack_str(&pk, strlen(e->edits[i].key));
    msgpack_pack_str_body(&pk, e->edits[i].key, strlen(e->edits[i].key));
    record_pack_edit(&pk, &e->edits[i]);
  }
  if (e->trailer_len)
    msgpack_sbuffer_write(&sb, e->trailer, e->trailer_len);
  if (record_write_file(path, sb.data, sb.size) == 0)
    r = (long)sb.size;
out:
  msgpack_sbuffer_destroy(&sb);
  msgpack_unpacked_destroy(&up);
  free(data);
  return r;
}

#endif
