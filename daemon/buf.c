/*
 * buf.c: growable buffers. They hold signature bases and header values, which
 * are request material, so growing copies the content and wipes the old
 * storage instead of calling realloc(), and freeing wipes too.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "buf.h"

static int buf_reserve(struct buf *b, size_t extra) {
  if (b->oom)
    return -ENOMEM;
  if (extra > SIZE_MAX / 2 - b->len) {
    b->oom = true;
    return -ENOMEM;
  }
  size_t need = b->len + extra + 1;
  if (need <= b->cap)
    return 0;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < need)
    cap *= 2;
  char *p = malloc(cap);
  if (!p) {
    b->oom = true;
    return -ENOMEM;
  }
  if (b->p) {
    memcpy(p, b->p, b->len);
    sodium_memzero(b->p, b->cap);
    free(b->p);
  }
  b->p = p;
  b->cap = cap;
  return 0;
}

int buf_append(struct buf *b, const void *data, size_t len) {
  int r = buf_reserve(b, len);
  if (r < 0)
    return r;
  if (len)
    memcpy(b->p + b->len, data, len);
  b->len += len;
  b->p[b->len] = '\0';
  return 0;
}

int buf_puts(struct buf *b, const char *s) {
  return buf_append(b, s, strlen(s));
}

int buf_putc(struct buf *b, char c) {
  return buf_append(b, &c, 1);
}

int buf_printf(struct buf *b, const char *fmt, ...) {
  va_list ap;
  char small[128];

  va_start(ap, fmt);
  int n = vsnprintf(small, sizeof(small), fmt, ap);
  va_end(ap);
  if (n < 0)
    return -EINVAL;
  if ((size_t)n < sizeof(small))
    return buf_append(b, small, (size_t)n);
  int r = buf_reserve(b, (size_t)n);
  if (r < 0)
    return r;
  va_start(ap, fmt);
  vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
  return 0;
}

const char *buf_cstr(struct buf *b) {
  if (b->oom)
    return NULL;
  return b->p ? b->p : "";
}

void buf_free(struct buf *b) {
  if (b->p) {
    sodium_memzero(b->p, b->cap);
    free(b->p);
  }
  b->p = NULL;
  b->len = b->cap = 0;
  b->oom = false;
}

char *buf_steal(struct buf *b) {
  if (b->oom) {
    buf_free(b);
    return NULL;
  }
  char *p = b->p ? b->p : strdup("");
  b->p = NULL;
  b->len = b->cap = 0;
  return p;
}
