/*
 * tap.h: a tiny TAP producer for the unit tests. Each check prints
 * "ok N - description" or "not ok N - description" with the file, line and
 * expression of a failure; done_testing() prints the plan and sets the exit
 * status.
 */
#ifndef MCPSIG_TAP_H
#define MCPSIG_TAP_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tap_n = 0;
static int tap_failed = 0;

static inline int tap_ok(int cond, const char *file, int line, const char *expr, const char *desc) {
  tap_n++;
  if (cond) {
    printf("ok %d - %s\n", tap_n, desc);
  } else {
    tap_failed++;
    printf("not ok %d - %s\n#   %s:%d: %s\n", tap_n, desc, file, line, expr);
  }
  fflush(stdout);
  return cond;
}

#define ok(cond, desc) tap_ok(!!(cond), __FILE__, __LINE__, #cond, (desc))

#define is_str(got, want, desc)                                                                  \
  do {                                                                                          \
    const char *g_ = (got), *w_ = (want);                                                       \
    if (!tap_ok(g_ && w_ && strcmp(g_, w_) == 0, __FILE__, __LINE__, #got " == " #want, (desc))) \
      printf("#   got:  %s\n#   want: %s\n", g_ ? g_ : "(null)", w_ ? w_ : "(null)");          \
  } while (0)

#define is_int(got, want, desc)                                                                  \
  do {                                                                                          \
    long long g_ = (long long)(got), w_ = (long long)(want);                                    \
    if (!tap_ok(g_ == w_, __FILE__, __LINE__, #got " == " #want, (desc)))                       \
      printf("#   got:  %lld\n#   want: %lld\n", g_, w_);                                       \
  } while (0)

static inline int done_testing(void) {
  printf("1..%d\n", tap_n);
  return tap_failed ? 1 : 0;
}

#endif
