/* errmsg.c: error messages for callers that report them. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "errmsg.h"

int errmsg(char *err, size_t errlen, int code, const char *fmt, ...) {
  if (err && errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    text_escape_controls(err, errlen);
  }
  return code;
}

void text_escape_controls(char *buf, size_t size) {
  static const char hex[] = "0123456789abcdef";
  size_t len = strnlen(buf, size);
  for (size_t i = 0; i < len; i++) {
    unsigned char ch = (unsigned char)buf[i];
    if (ch >= 0x20 && ch != 0x7f)
      continue;
    if (len + 3 >= size) {
      /* No room for the rest: keep what precedes, and the escape if it fits. */
      len = i;
      if (i + 4 < size) {
        memcpy(buf + i, "\\x", 2);
        buf[i + 2] = hex[ch >> 4];
        buf[i + 3] = hex[ch & 15];
        len = i + 4;
      }
      break;
    }
    memmove(buf + i + 4, buf + i + 1, len - i - 1);
    buf[i] = '\\';
    buf[i + 1] = 'x';
    buf[i + 2] = hex[ch >> 4];
    buf[i + 3] = hex[ch & 15];
    len += 3;
    i += 3;
  }
  if (size)
    buf[len < size ? len : size - 1] = '\0';
}
