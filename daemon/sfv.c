/*
 * sfv.c: RFC 8941 serialization and dictionary parsing.
 *
 * Verifiers rebuild "@signature-params" by re-serializing the parsed
 * Signature-Input, so anything we emit must already be in the canonical form
 * or the signature cannot verify. The parser follows §4.2 step by step and is
 * bounded by SFV_MAX_* so a server's header cannot make us allocate much.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "sfv.h"

#define SFV_INTEGER_MAX 999999999999999LL

static bool is_lcalpha(int c) { return c >= 'a' && c <= 'z'; }
static bool is_alpha(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static bool is_digit(int c) { return c >= '0' && c <= '9'; }

static bool is_tchar(int c) {
  return is_alpha(c) || is_digit(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool is_keychar(int c) {
  return is_lcalpha(c) || is_digit(c) || c == '_' || c == '-' || c == '.' || c == '*';
}

bool sfv_key_valid(const char *key) {
  if (!key || !(is_lcalpha(key[0]) || key[0] == '*'))
    return false;
  size_t n = 0;
  for (const char *p = key; *p; p++, n++)
    if (!is_keychar((unsigned char)*p))
      return false;
  return n <= SFV_MAX_KEY_LEN;
}

bool sfv_string_valid(const char *s) {
  for (; *s; s++)
    if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
      return false;
  return true;
}

int sfv_put_string(struct buf *b, const char *s) {
  if (!sfv_string_valid(s))
    return -EINVAL;
  int r = buf_putc(b, '"');
  for (; r == 0 && *s; s++) {
    if (*s == '"' || *s == '\\')
      r = buf_putc(b, '\\');
    if (r == 0)
      r = buf_putc(b, *s);
  }
  return r == 0 ? buf_putc(b, '"') : r;
}

int sfv_put_integer(struct buf *b, int64_t v) {
  if (v > SFV_INTEGER_MAX || v < -SFV_INTEGER_MAX)
    return -ERANGE;
  return buf_printf(b, "%" PRId64, v);
}

int sfv_put_binary(struct buf *b, const void *data, size_t len) {
  size_t n = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
  char *tmp = malloc(n);
  if (!tmp)
    return -ENOMEM;
  sodium_bin2base64(tmp, n, data, len, sodium_base64_VARIANT_ORIGINAL);
  int r = buf_putc(b, ':');
  if (r == 0)
    r = buf_puts(b, tmp);
  if (r == 0)
    r = buf_putc(b, ':');
  free(tmp);
  return r;
}

int sfv_put_key(struct buf *b, const char *key) {
  if (!sfv_key_valid(key))
    return -EINVAL;
  return buf_puts(b, key);
}

int sfv_put_bare(struct buf *b, const struct sfv_bare *v) {
  switch (v->type) {
  case SFV_INTEGER: return sfv_put_integer(b, v->integer);
  case SFV_DECIMAL: return buf_puts(b, v->str);
  case SFV_STRING: return sfv_put_string(b, v->str);
  case SFV_TOKEN: return buf_puts(b, v->str);
  case SFV_BINARY: return sfv_put_binary(b, v->str, v->len);
  case SFV_BOOLEAN: return buf_puts(b, v->boolean ? "?1" : "?0");
  }
  return -EINVAL;
}

int sfv_put_params(struct buf *b, const struct sfv_params *p) {
  int r = 0;
  for (size_t i = 0; r == 0 && i < p->n; i++) {
    r = buf_putc(b, ';');
    if (r == 0)
      r = sfv_put_key(b, p->v[i].key);
    if (r == 0 && !(p->v[i].value.type == SFV_BOOLEAN && p->v[i].value.boolean)) {
      r = buf_putc(b, '=');
      if (r == 0)
        r = sfv_put_bare(b, &p->v[i].value);
    }
  }
  return r;
}

static int put_item(struct buf *b, const struct sfv_item *it) {
  int r = sfv_put_bare(b, &it->value);
  return r == 0 ? sfv_put_params(b, &it->params) : r;
}

int sfv_put_dictionary(struct buf *b, const struct sfv_dict *d) {
  int r = 0;
  for (size_t i = 0; r == 0 && i < d->n; i++) {
    const struct sfv_member *m = &d->members[i];
    if (i > 0)
      r = buf_puts(b, ", ");
    if (r == 0)
      r = sfv_put_key(b, m->key);
    if (r != 0)
      break;
    if (m->is_inner_list) {
      r = buf_puts(b, "=(");
      for (size_t k = 0; r == 0 && k < m->n_items; k++) {
        if (k > 0)
          r = buf_putc(b, ' ');
        if (r == 0)
          r = put_item(b, &m->items[k]);
      }
      if (r == 0)
        r = buf_putc(b, ')');
      if (r == 0)
        r = sfv_put_params(b, &m->params);
    } else if (m->item.value.type == SFV_BOOLEAN && m->item.value.boolean) {
      r = sfv_put_params(b, &m->item.params);
    } else {
      r = buf_putc(b, '=');
      if (r == 0)
        r = put_item(b, &m->item);
    }
  }
  return r;
}

/* ---- parser ---- */

struct parser {
  const char *s;
  size_t pos, len;
  char *err;
  size_t errlen;
};

static int perr(struct parser *p, const char *what) {
  if (p->err && p->errlen)
    snprintf(p->err, p->errlen, "%s at offset %zu", what, p->pos);
  return -EINVAL;
}

static int peek(const struct parser *p) {
  return p->pos < p->len ? (unsigned char)p->s[p->pos] : -1;
}

static void skip_sp(struct parser *p) {
  while (peek(p) == ' ')
    p->pos++;
}

static void skip_ows(struct parser *p) {
  while (peek(p) == ' ' || peek(p) == '\t')
    p->pos++;
}

static void bare_free(struct sfv_bare *v) {
  free(v->str);
  v->str = NULL;
}

static void params_free(struct sfv_params *ps) {
  for (size_t i = 0; i < ps->n; i++)
    bare_free(&ps->v[i].value);
  ps->n = 0;
}

static void item_free(struct sfv_item *it) {
  bare_free(&it->value);
  params_free(&it->params);
}

static void member_free(struct sfv_member *m) {
  item_free(&m->item);
  for (size_t i = 0; i < m->n_items; i++)
    item_free(&m->items[i]);
  free(m->items);
  m->items = NULL;
  m->n_items = 0;
  params_free(&m->params);
}

void sfv_dict_free(struct sfv_dict *d) {
  if (!d)
    return;
  for (size_t i = 0; i < d->n; i++)
    member_free(&d->members[i]);
  free(d->members);
  d->members = NULL;
  d->n = 0;
}

static int parse_key(struct parser *p, char key[SFV_MAX_KEY_LEN + 1]) {
  size_t n = 0;
  int c = peek(p);
  if (!(is_lcalpha(c) || c == '*'))
    return perr(p, "expected a key");
  while (is_keychar(c = peek(p))) {
    if (n == SFV_MAX_KEY_LEN)
      return perr(p, "key too long");
    key[n++] = (char)c;
    p->pos++;
  }
  key[n] = '\0';
  return 0;
}

static int parse_number(struct parser *p, struct sfv_bare *v) {
  char digits[20];
  size_t n = 0, start = p->pos;
  bool neg = false, decimal = false;
  size_t int_digits = 0;

  if (peek(p) == '-') {
    neg = true;
    p->pos++;
  }
  if (!is_digit(peek(p)))
    return perr(p, "expected a digit");
  for (;;) {
    int c = peek(p);
    if (is_digit(c)) {
      if (n >= (decimal ? 16u : 15u))
        return perr(p, "number too long");
      digits[n++] = (char)c;
      p->pos++;
    } else if (c == '.' && !decimal) {
      if (n > 12)
        return perr(p, "decimal too long");
      int_digits = n;
      decimal = true;
      digits[n++] = '.';
      p->pos++;
    } else {
      break;
    }
  }
  digits[n] = '\0';
  if (!decimal) {
    v->type = SFV_INTEGER;
    v->integer = strtoll(digits, NULL, 10) * (neg ? -1 : 1);
    return 0;
  }
  size_t frac = n - int_digits - 1;
  if (frac == 0)
    return perr(p, "decimal ends with '.'");
  if (frac > 3)
    return perr(p, "decimal has more than 3 fraction digits");
  v->type = SFV_DECIMAL;
  v->len = p->pos - start;
  v->str = strndup(p->s + start, v->len);
  return v->str ? 0 : -ENOMEM;
}

static int parse_string(struct parser *p, struct sfv_bare *v) {
  struct buf b = BUF_INIT;
  p->pos++; /* the opening quote */
  for (;;) {
    int c = peek(p);
    if (c < 0) {
      buf_free(&b);
      return perr(p, "unterminated string");
    }
    p->pos++;
    if (c == '\\') {
      c = peek(p);
      if (c != '"' && c != '\\') {
        buf_free(&b);
        return perr(p, "invalid escape in string");
      }
      p->pos++;
    } else if (c == '"') {
      break;
    } else if (c < 0x20 || c > 0x7e) {
      buf_free(&b);
      return perr(p, "invalid character in string");
    }
    if (buf_putc(&b, (char)c) < 0) {
      buf_free(&b);
      return -ENOMEM;
    }
  }
  v->type = SFV_STRING;
  v->len = b.len;
  v->str = buf_steal(&b);
  return v->str ? 0 : -ENOMEM;
}

static int parse_token(struct parser *p, struct sfv_bare *v) {
  size_t start = p->pos;
  p->pos++;
  for (int c; (c = peek(p)) >= 0 && (is_tchar(c) || c == ':' || c == '/');)
    p->pos++;
  v->type = SFV_TOKEN;
  v->len = p->pos - start;
  v->str = strndup(p->s + start, v->len);
  return v->str ? 0 : -ENOMEM;
}

static int parse_binary(struct parser *p, struct sfv_bare *v) {
  p->pos++;
  size_t start = p->pos;
  while (peek(p) >= 0 && peek(p) != ':') {
    int c = peek(p);
    if (!(is_alpha(c) || is_digit(c) || c == '+' || c == '/' || c == '='))
      return perr(p, "invalid character in byte sequence");
    p->pos++;
  }
  if (peek(p) != ':')
    return perr(p, "unterminated byte sequence");
  size_t n = p->pos - start;
  p->pos++;
  v->type = SFV_BINARY;
  v->str = malloc(n / 4 * 3 + 3);
  if (!v->str)
    return -ENOMEM;
  if (sodium_base642bin((unsigned char *)v->str, n / 4 * 3 + 3, p->s + start, n, NULL, &v->len, NULL,
                        sodium_base64_VARIANT_ORIGINAL) != 0) {
    bare_free(v);
    return perr(p, "invalid base64 in byte sequence");
  }
  return 0;
}

static int parse_bare(struct parser *p, struct sfv_bare *v) {
  int c = peek(p);
  memset(v, 0, sizeof(*v));
  if (c == '-' || is_digit(c))
    return parse_number(p, v);
  if (c == '"')
    return parse_string(p, v);
  if (c == '*' || is_alpha(c))
    return parse_token(p, v);
  if (c == ':')
    return parse_binary(p, v);
  if (c == '?') {
    p->pos++;
    c = peek(p);
    if (c != '0' && c != '1')
      return perr(p, "invalid boolean");
    p->pos++;
    v->type = SFV_BOOLEAN;
    v->boolean = c == '1';
    return 0;
  }
  return perr(p, "expected an item");
}

static int parse_params(struct parser *p, struct sfv_params *ps) {
  while (peek(p) == ';') {
    char key[SFV_MAX_KEY_LEN + 1];
    struct sfv_bare v = { .type = SFV_BOOLEAN, .boolean = true };
    int r;

    p->pos++;
    skip_sp(p);
    if ((r = parse_key(p, key)) < 0)
      return r;
    if (peek(p) == '=') {
      p->pos++;
      if ((r = parse_bare(p, &v)) < 0)
        return r;
    }
    size_t i;
    for (i = 0; i < ps->n; i++)
      if (strcmp(ps->v[i].key, key) == 0)
        break;
    if (i == ps->n) {
      if (ps->n == SFV_MAX_PARAMS) {
        bare_free(&v);
        return perr(p, "too many parameters");
      }
      ps->n++;
      memcpy(ps->v[i].key, key, sizeof(key));
    } else {
      bare_free(&ps->v[i].value);
    }
    ps->v[i].value = v;
  }
  return 0;
}

static int parse_item(struct parser *p, struct sfv_item *it) {
  memset(it, 0, sizeof(*it));
  int r = parse_bare(p, &it->value);
  return r < 0 ? r : parse_params(p, &it->params);
}

static int parse_inner_list(struct parser *p, struct sfv_member *m) {
  p->pos++;
  m->is_inner_list = true;
  for (;;) {
    skip_sp(p);
    if (peek(p) == ')') {
      p->pos++;
      return parse_params(p, &m->params);
    }
    if (m->n_items == SFV_MAX_ITEMS)
      return perr(p, "too many items in inner list");
    if (!m->items) {
      m->items = calloc(SFV_MAX_ITEMS, sizeof(*m->items));
      if (!m->items)
        return -ENOMEM;
    }
    int r = parse_item(p, &m->items[m->n_items]);
    if (r < 0) {
      item_free(&m->items[m->n_items]);
      return r;
    }
    m->n_items++;
    if (peek(p) != ' ' && peek(p) != ')')
      return perr(p, "expected ' ' or ')' in inner list");
  }
}

int sfv_parse_dictionary(const char *input, struct sfv_dict *ret_dict, char *err, size_t errlen) {
  struct parser p = { input, 0, strlen(input), err, errlen };
  struct sfv_dict d = { NULL, 0 };
  int r = 0;

  if (p.len > SFV_MAX_INPUT)
    return perr(&p, "field value too long");
  while (p.len > 0 && p.s[p.len - 1] == ' ')
    p.len--;
  skip_sp(&p);
  d.members = calloc(SFV_MAX_MEMBERS, sizeof(*d.members));
  if (!d.members)
    return -ENOMEM;
  while (p.pos < p.len) {
    struct sfv_member m;
    memset(&m, 0, sizeof(m));
    if ((r = parse_key(&p, m.key)) < 0)
      goto fail;
    if (peek(&p) == '=') {
      p.pos++;
      r = peek(&p) == '(' ? parse_inner_list(&p, &m) : parse_item(&p, &m.item);
    } else {
      m.item.value.type = SFV_BOOLEAN;
      m.item.value.boolean = true;
      r = parse_params(&p, &m.item.params);
    }
    if (r < 0) {
      member_free(&m);
      goto fail;
    }
    size_t i;
    for (i = 0; i < d.n; i++)
      if (strcmp(d.members[i].key, m.key) == 0)
        break;
    if (i < d.n) {
      member_free(&d.members[i]);
    } else if (d.n == SFV_MAX_MEMBERS) {
      member_free(&m);
      r = perr(&p, "too many dictionary members");
      goto fail;
    } else {
      d.n++;
    }
    d.members[i] = m;
    skip_ows(&p);
    if (p.pos >= p.len)
      break;
    if (peek(&p) != ',') {
      r = perr(&p, "expected ',' between dictionary members");
      goto fail;
    }
    p.pos++;
    skip_ows(&p);
    if (p.pos >= p.len) {
      r = perr(&p, "trailing comma");
      goto fail;
    }
  }
  if (d.n == 0) {
    r = perr(&p, "empty dictionary");
    goto fail;
  }
  *ret_dict = d;
  return 0;
fail:
  sfv_dict_free(&d);
  return r;
}
