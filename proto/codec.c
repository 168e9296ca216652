/*
 * codec.c: one schema-driven encoder and decoder for every message, so the
 * agent and the library cannot disagree on a field's name or type.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "proto.h"

#define FIELD_PTR(base, off) ((void *)((char *)(base) + (off)))
#define FIELD_CPTR(base, off) ((const void *)((const char *)(base) + (off)))

static int fail(char *err, size_t errlen, const char *schema, const char *field, const char *what) {
  if (err && errlen)
    snprintf(err, errlen, "%s%s%s: %s", schema ? schema : "", field ? "." : "", field ? field : "", what);
  return MCPSIG_EPARAM;
}

static int str_copy(const msgpack_object *o, msgpack_zone *z, size_t max, const char **ret) {
  if (o->type != MSGPACK_OBJECT_STR)
    return -1;
  size_t n = o->via.str.size;
  if (n > max)
    return -2;
  if (n > 0 && memchr(o->via.str.ptr, '\0', n))
    return -3;
  char *s = msgpack_zone_malloc(z, n + 1);
  if (!s)
    return -4;
  memcpy(s, o->via.str.ptr, n);
  s[n] = '\0';
  *ret = s;
  return 0;
}

static const char *str_error(int r) {
  switch (r) {
  case -1: return "expected a string";
  case -2: return "string too long";
  case -3: return "string contains NUL";
  default: return "out of memory";
  }
}

static int field_decode(const struct proto_field *f, const msgpack_object *v, msgpack_zone *z,
                        void *out, unsigned flags, const char *sname, char *err, size_t errlen) {
  size_t max = f->max;
  int r;

  switch (f->type) {
  case PT_STR: {
    r = str_copy(v, z, max ? max : MCPSIG_MAX_STR_LEN, (const char **)FIELD_PTR(out, f->off));
    if (r < 0)
      return fail(err, errlen, sname, f->name, str_error(r));
    return 0;
  }
  case PT_BIN:
    if (v->type != MSGPACK_OBJECT_BIN)
      return fail(err, errlen, sname, f->name, "expected binary data");
    if (max && v->via.bin.size > max)
      return fail(err, errlen, sname, f->name, "binary data too long");
    if ((flags & PROTO_DECODE_COPY_BIN) && !(f->flags & PF_SECRET)) {
      unsigned char *copy = msgpack_zone_malloc(z, v->via.bin.size + 1);
      if (!copy)
        return fail(err, errlen, sname, f->name, "out of memory");
      memcpy(copy, v->via.bin.ptr, v->via.bin.size);
      copy[v->via.bin.size] = '\0';
      *(const unsigned char **)FIELD_PTR(out, f->off) = copy;
    } else {
      *(const unsigned char **)FIELD_PTR(out, f->off) = (const unsigned char *)v->via.bin.ptr;
    }
    *(size_t *)FIELD_PTR(out, f->off_n) = v->via.bin.size;
    break;
  case PT_BOOL:
    if (v->type != MSGPACK_OBJECT_BOOLEAN)
      return fail(err, errlen, sname, f->name, "expected a boolean");
    *(bool *)FIELD_PTR(out, f->off) = v->via.boolean;
    break;
  case PT_INT:
    if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
      if (v->via.u64 > INT64_MAX)
        return fail(err, errlen, sname, f->name, "integer out of range");
      *(int64_t *)FIELD_PTR(out, f->off) = (int64_t)v->via.u64;
    } else if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
      *(int64_t *)FIELD_PTR(out, f->off) = v->via.i64;
    } else {
      return fail(err, errlen, sname, f->name, "expected an integer");
    }
    break;
  case PT_STRV:
  case PT_PAIRS:
  case PT_STRUCTV: {
    if (v->type != MSGPACK_OBJECT_ARRAY)
      return fail(err, errlen, sname, f->name, "expected an array");
    size_t n = v->via.array.size;
    size_t lim = max ? max : MCPSIG_MAX_ARRAY;
    if (n > lim)
      return fail(err, errlen, sname, f->name, "too many items");
    size_t esize = f->type == PT_STRV ? sizeof(char *)
                   : f->type == PT_PAIRS ? sizeof(struct proto_pair) : f->sub->size;
    void *arr = NULL;
    if (n > 0) {
      arr = msgpack_zone_malloc(z, n * esize);
      if (!arr)
        return fail(err, errlen, sname, f->name, "out of memory");
      memset(arr, 0, n * esize);
    }
    for (size_t i = 0; i < n; i++) {
      const msgpack_object *e = &v->via.array.ptr[i];
      if (f->type == PT_STRV) {
        r = str_copy(e, z, MCPSIG_MAX_STR_LEN, &((const char **)arr)[i]);
        if (r < 0)
          return fail(err, errlen, sname, f->name, str_error(r));
      } else if (f->type == PT_PAIRS) {
        struct proto_pair *p = &((struct proto_pair *)arr)[i];
        if (e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size != 2)
          return fail(err, errlen, sname, f->name, "expected [name, value] pairs");
        r = str_copy(&e->via.array.ptr[0], z, MCPSIG_MAX_STR_LEN, &p->name);
        if (r == 0)
          r = str_copy(&e->via.array.ptr[1], z, MCPSIG_MAX_STR_LEN, &p->value);
        if (r < 0)
          return fail(err, errlen, sname, f->name, str_error(r));
      } else {
        r = proto_decode(f->sub, e, z, (char *)arr + i * esize, flags, err, errlen);
        if (r < 0)
          return r;
      }
    }
    *(void **)FIELD_PTR(out, f->off) = arr;
    *(size_t *)FIELD_PTR(out, f->off_n) = n;
    break;
  }
  case PT_STRUCT:
    r = proto_decode(f->sub, v, z, FIELD_PTR(out, f->off), flags, err, errlen);
    if (r < 0)
      return r;
    break;
  case PT_SCALAR: {
    struct proto_scalar *sc = FIELD_PTR(out, f->off);
    if (v->type == MSGPACK_OBJECT_STR) {
      r = str_copy(v, z, max ? max : MCPSIG_MAX_STR_LEN, &sc->str);
      if (r < 0)
        return fail(err, errlen, sname, f->name, str_error(r));
    } else if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 <= INT64_MAX) {
      sc->num = (int64_t)v->via.u64;
    } else if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
      sc->num = v->via.i64;
    } else {
      return fail(err, errlen, sname, f->name, "expected a string or an integer");
    }
    break;
  }
  }
  if (f->off_has != PROTO_NO_OFFSET)
    *(bool *)FIELD_PTR(out, f->off_has) = true;
  return 0;
}

int proto_decode(const struct proto_schema *schema, const msgpack_object *obj, msgpack_zone *z,
                 void *out, unsigned flags, char *err, size_t errlen) {
  bool seen[64] = { false };

  memset(out, 0, schema->size);
  if (obj->type == MSGPACK_OBJECT_NIL && schema->n_fields == 0)
    return 0;
  if (obj->type != MSGPACK_OBJECT_MAP)
    return fail(err, errlen, schema->name, NULL, "expected a map");
  for (size_t i = 0; i < obj->via.map.size; i++) {
    const msgpack_object_kv *kv = &obj->via.map.ptr[i];
    const struct proto_field *f = NULL;
    size_t fi = 0;

    if (kv->key.type != MSGPACK_OBJECT_STR)
      return fail(err, errlen, schema->name, NULL, "map keys must be strings");
    for (fi = 0; fi < schema->n_fields; fi++) {
      const char *name = schema->fields[fi].name;
      if (strlen(name) == kv->key.via.str.size && memcmp(name, kv->key.via.str.ptr, kv->key.via.str.size) == 0) {
        f = &schema->fields[fi];
        break;
      }
    }
    if (!f) {
      if (flags & PROTO_DECODE_STRICT) {
        char name[40];
        size_t n = kv->key.via.str.size < sizeof(name) - 1 ? kv->key.via.str.size : sizeof(name) - 1;
        memcpy(name, kv->key.via.str.ptr, n);
        name[n] = '\0';
        for (size_t k = 0; k < n; k++)
          if (name[k] < 0x20 || name[k] > 0x7e)
            name[k] = '?';
        return fail(err, errlen, schema->name, name, "unknown parameter");
      }
      continue;
    }
    if (seen[fi])
      return fail(err, errlen, schema->name, f->name, "given twice");
    seen[fi] = true;
    if (kv->val.type == MSGPACK_OBJECT_NIL && (f->flags & PF_NULLABLE))
      continue;
    int r = field_decode(f, &kv->val, z, out, flags, schema->name, err, errlen);
    if (r < 0)
      return r;
  }
  for (size_t fi = 0; fi < schema->n_fields; fi++)
    if ((schema->fields[fi].flags & PF_REQUIRED) && !seen[fi])
      return fail(err, errlen, schema->name, schema->fields[fi].name, "missing");
  return 0;
}

int proto_pack_str(msgpack_packer *pk, const char *s) {
  if (!s)
    return msgpack_pack_nil(pk);
  size_t n = strlen(s);
  if (msgpack_pack_str(pk, n) < 0)
    return -1;
  return msgpack_pack_str_body(pk, s, n);
}

static bool field_present(const struct proto_field *f, const void *in) {
  if (f->off_has != PROTO_NO_OFFSET)
    return *(const bool *)FIELD_CPTR(in, f->off_has);
  switch (f->type) {
  case PT_STR:
    return *(const char *const *)FIELD_CPTR(in, f->off) != NULL || (f->flags & PF_NULLABLE);
  case PT_BIN:
    return *(const void *const *)FIELD_CPTR(in, f->off) != NULL;
  case PT_STRV:
  case PT_PAIRS:
  case PT_STRUCTV:
    return *(const size_t *)FIELD_CPTR(in, f->off_n) > 0 || (f->flags & (PF_REQUIRED | PF_NULLABLE));
  default:
    return true;
  }
}

static int field_encode(msgpack_packer *pk, const struct proto_field *f, const void *in) {
  int r = 0;

  switch (f->type) {
  case PT_STR:
    return proto_pack_str(pk, *(const char *const *)FIELD_CPTR(in, f->off));
  case PT_BIN: {
    const void *p = *(const void *const *)FIELD_CPTR(in, f->off);
    size_t n = *(const size_t *)FIELD_CPTR(in, f->off_n);
    if (msgpack_pack_bin(pk, n) < 0)
      return -1;
    return n ? msgpack_pack_bin_body(pk, p, n) : 0;
  }
  case PT_BOOL:
    return *(const bool *)FIELD_CPTR(in, f->off) ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
  case PT_INT:
    return msgpack_pack_int64(pk, *(const int64_t *)FIELD_CPTR(in, f->off));
  case PT_STRV: {
    const char *const *v = *(const char *const *const *)FIELD_CPTR(in, f->off);
    size_t n = *(const size_t *)FIELD_CPTR(in, f->off_n);
    r = msgpack_pack_array(pk, n);
    for (size_t i = 0; r == 0 && i < n; i++)
      r = proto_pack_str(pk, v[i]);
    return r;
  }
  case PT_PAIRS: {
    const struct proto_pair *v = *(const struct proto_pair *const *)FIELD_CPTR(in, f->off);
    size_t n = *(const size_t *)FIELD_CPTR(in, f->off_n);
    r = msgpack_pack_array(pk, n);
    for (size_t i = 0; r == 0 && i < n; i++) {
      r = msgpack_pack_array(pk, 2);
      if (r == 0)
        r = proto_pack_str(pk, v[i].name);
      if (r == 0)
        r = proto_pack_str(pk, v[i].value);
    }
    return r;
  }
  case PT_STRUCTV: {
    const char *v = *(const char *const *)FIELD_CPTR(in, f->off);
    size_t n = *(const size_t *)FIELD_CPTR(in, f->off_n);
    r = msgpack_pack_array(pk, n);
    for (size_t i = 0; r == 0 && i < n; i++)
      r = proto_encode(pk, f->sub, v + i * f->sub->size);
    return r;
  }
  case PT_STRUCT:
    return proto_encode(pk, f->sub, FIELD_CPTR(in, f->off));
  case PT_SCALAR: {
    const struct proto_scalar *sc = FIELD_CPTR(in, f->off);
    return sc->str ? proto_pack_str(pk, sc->str) : msgpack_pack_int64(pk, sc->num);
  }
  }
  return -1;
}

int proto_encode(msgpack_packer *pk, const struct proto_schema *schema, const void *in) {
  size_t n = 0;

  for (size_t i = 0; i < schema->n_fields; i++)
    if (field_present(&schema->fields[i], in))
      n++;
  if (msgpack_pack_map(pk, n) < 0)
    return MCPSIG_EINTERNAL;
  for (size_t i = 0; i < schema->n_fields; i++) {
    const struct proto_field *f = &schema->fields[i];
    if (!field_present(f, in))
      continue;
    if (proto_pack_str(pk, f->name) < 0 || field_encode(pk, f, in) < 0)
      return MCPSIG_EINTERNAL;
  }
  return 0;
}

int proto_request_encode(msgpack_packer *pk, uint32_t msgid, const char *method,
                         const struct proto_schema *schema, const void *params) {
  if (msgpack_pack_array(pk, 4) < 0 || msgpack_pack_int(pk, PROTO_REQUEST) < 0 ||
      msgpack_pack_uint32(pk, msgid) < 0 || proto_pack_str(pk, method) < 0 ||
      msgpack_pack_array(pk, 1) < 0)
    return MCPSIG_EINTERNAL;
  return proto_encode(pk, schema, params);
}

int proto_notification_encode(msgpack_packer *pk, const char *method, const struct proto_schema *schema,
                              const void *params) {
  if (msgpack_pack_array(pk, 3) < 0 || msgpack_pack_int(pk, PROTO_NOTIFICATION) < 0 ||
      proto_pack_str(pk, method) < 0 || msgpack_pack_array(pk, 1) < 0)
    return MCPSIG_EINTERNAL;
  return proto_encode(pk, schema, params);
}

static int pack_msgid(msgpack_packer *pk, const msgpack_object *msgid) {
  if (msgid && msgid->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
    return msgpack_pack_uint64(pk, msgid->via.u64);
  return msgpack_pack_nil(pk);
}

int proto_error_encode(msgpack_packer *pk, const msgpack_object *msgid, int code, const char *msg) {
  struct proto_error e = { .code = code < 0 ? -code : code, .message = msg ? msg : mcpsig_strerror(code) };

  if (msgpack_pack_array(pk, 4) < 0 || msgpack_pack_int(pk, PROTO_RESPONSE) < 0 || pack_msgid(pk, msgid) < 0)
    return MCPSIG_EINTERNAL;
  if (proto_encode(pk, &proto_error_schema, &e) < 0 || msgpack_pack_nil(pk) < 0)
    return MCPSIG_EINTERNAL;
  return 0;
}

int proto_response_begin(msgpack_packer *pk, const msgpack_object *msgid) {
  if (msgpack_pack_array(pk, 4) < 0 || msgpack_pack_int(pk, PROTO_RESPONSE) < 0 ||
      pack_msgid(pk, msgid) < 0 || msgpack_pack_nil(pk) < 0)
    return MCPSIG_EINTERNAL;
  return 0;
}
