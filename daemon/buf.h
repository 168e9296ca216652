/* buf.h: a growable byte buffer that wipes what it held when it grows or is freed. */
#ifndef MCPSIG_BUF_H
#define MCPSIG_BUF_H

#include <stdbool.h>
#include <stddef.h>

struct buf {
  char *p;
  size_t len;
  size_t cap;
  bool oom;      /* sticky: an append failed, the content is incomplete */
};

#define BUF_INIT { NULL, 0, 0, false }

int buf_append(struct buf *b, const void *data, size_t len);
int buf_puts(struct buf *b, const char *s);
int buf_putc(struct buf *b, char c);
__attribute__((format(printf, 2, 3))) int buf_printf(struct buf *b, const char *fmt, ...);
/* The content as a NUL-terminated string ("" when empty), or NULL after a failed append. */
const char *buf_cstr(struct buf *b);
/* Wipes and frees the storage; the buffer is empty and reusable afterwards. */
void buf_free(struct buf *b);
/* Moves the storage out as a NUL-terminated string owned by the caller (free with free()). */
char *buf_steal(struct buf *b);

#endif
