/* errmsg.h: one way to return an error code with a one-line message. */
#ifndef MCPSIG_ERRMSG_H
#define MCPSIG_ERRMSG_H

#include <stddef.h>

/*
 * Formats a message into err (when err is non-NULL) and returns code. The
 * message often echoes a request (a header name, a URI), so control
 * characters in it are escaped (text_escape_controls): a reply or a log
 * line is always one line.
 */
__attribute__((format(printf, 4, 5))) int errmsg(char *err, size_t errlen, int code, const char *fmt, ...);

/* Rewrites, in place, each control character and DEL of the string in buf
 * (size bytes) as \xNN; cuts the end if it no longer fits. */
void text_escape_controls(char *buf, size_t size);

#endif
