/*
 * testhooks.h: fault injection for the crash-safety tests. In a test build
 * (MCPSIG_TEST_HOOKS), crash_point("name", file) kills the process with
 * SIGKILL when MCPSIG_TEST_CRASH names that point ("name", or "name:SUFFIX"
 * where the file name ends in SUFFIX), and test_delay(ENV) sleeps for $ENV
 * milliseconds. In a normal build both are nothing.
 */
#ifndef MCPSIG_TESTHOOKS_H
#define MCPSIG_TESTHOOKS_H

#ifdef MCPSIG_TEST_HOOKS
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline void crash_point(const char *point, const char *file) {
  const char *want = getenv("MCPSIG_TEST_CRASH");
  size_t n = strlen(point);
  if (!want || strncmp(want, point, n) != 0)
    return;
  if (want[n] == ':' && file) {
    size_t fl = strlen(file), sl = strlen(want + n + 1);
    if (fl < sl || strcmp(file + fl - sl, want + n + 1) != 0)
      return;
  } else if (want[n] != '\0') {
    return;
  }
  raise(SIGKILL);
}

/* Sleeps for the milliseconds named by the environment variable env, if set. */
static inline void test_delay(const char *env) {
  const char *v = getenv(env);
  long ms = v ? atol(v) : 0;
  if (ms > 0) {
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
  }
}
#else
#define crash_point(point, file) ((void)0)
#define test_delay(env) ((void)0)
#endif

#endif
