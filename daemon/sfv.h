/*
 * sfv.h: RFC 8941 Structured Field Values: canonical serialization of the few
 * shapes the agent emits, and a parser for dictionaries (Accept-Signature).
 */
#ifndef MCPSIG_SFV_H
#define MCPSIG_SFV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define SFV_MAX_KEY_LEN 64
#define SFV_MAX_MEMBERS 32
#define SFV_MAX_ITEMS 64
#define SFV_MAX_PARAMS 16
#define SFV_MAX_INPUT 8192

typedef enum { SFV_INTEGER, SFV_DECIMAL, SFV_STRING, SFV_TOKEN, SFV_BINARY, SFV_BOOLEAN } sfv_type;

struct sfv_bare {
  sfv_type type;
  int64_t integer;      /* SFV_INTEGER; SFV_DECIMAL keeps its text in str */
  bool boolean;
  char *str;            /* SFV_STRING, SFV_TOKEN, SFV_DECIMAL (NUL-terminated), SFV_BINARY (bytes) */
  size_t len;
};

struct sfv_param {
  char key[SFV_MAX_KEY_LEN + 1];
  struct sfv_bare value;
};

struct sfv_params {
  struct sfv_param v[SFV_MAX_PARAMS];
  size_t n;
};

struct sfv_item {
  struct sfv_bare value;
  struct sfv_params params;
};

struct sfv_member {
  char key[SFV_MAX_KEY_LEN + 1];
  bool is_inner_list;
  struct sfv_item item;          /* when !is_inner_list */
  struct sfv_item *items;        /* when is_inner_list */
  size_t n_items;
  struct sfv_params params;      /* the inner list's parameters */
};

struct sfv_dict {
  struct sfv_member *members;
  size_t n;
};

/* ---- serialization (RFC 8941 §4.1), canonical form only ---- */

/* Fails with -EINVAL on a character outside 0x20..0x7e. */
int sfv_put_string(struct buf *b, const char *s);
/* Fails with -ERANGE beyond 15 digits. */
int sfv_put_integer(struct buf *b, int64_t v);
/* ":" standard base64 with padding ":" */
int sfv_put_binary(struct buf *b, const void *data, size_t len);
/* Validates and writes a key. */
int sfv_put_key(struct buf *b, const char *key);
bool sfv_key_valid(const char *key);
bool sfv_string_valid(const char *s);

/* ---- parsing (RFC 8941 §4.2) ---- */

/*
 * Parses a dictionary field value. Returns 0, or -EINVAL with a short reason
 * in err. A repeated key overwrites the earlier value in place, as §4.2.2
 * requires. Free with sfv_dict_free().
 */
int sfv_parse_dictionary(const char *input, struct sfv_dict *ret_dict, char *err, size_t errlen);
void sfv_dict_free(struct sfv_dict *d);

/* Serializes a parsed bare item or parameters canonically (for tests and logs). */
int sfv_put_bare(struct buf *b, const struct sfv_bare *v);
int sfv_put_params(struct buf *b, const struct sfv_params *p);
int sfv_put_dictionary(struct buf *b, const struct sfv_dict *d);

#endif
