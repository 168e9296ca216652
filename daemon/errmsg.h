/* errmsg.h: one way to return an error code with a one-line message. */
#ifndef MCPSIG_ERRMSG_H
#define MCPSIG_ERRMSG_H

#include <stddef.h>

/* Formats a message into err (when err is non-NULL) and returns code. */
__attribute__((format(printf, 4, 5))) int errmsg(char *err, size_t errlen, int code, const char *fmt, ...);

#endif
