/* stats.c: clocks, samples and percentiles, and CPU placement. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"

uint64_t bench_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

double bench_now_s(void) {
  return (double)bench_now_ns() / 1e9;
}

int samples_init(struct samples *s, size_t cap) {
  s->v = calloc(cap ? cap : 1, sizeof(*s->v));
  s->n = 0;
  s->cap = cap;
  return s->v ? 0 : -ENOMEM;
}

void samples_free(struct samples *s) {
  free(s->v);
  memset(s, 0, sizeof(*s));
}

void samples_add(struct samples *s, double v) {
  if (s->n < s->cap)
    s->v[s->n++] = v;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

double samples_percentile(struct samples *s, double p) {
  if (s->n == 0)
    return NAN;
  qsort(s->v, s->n, sizeof(*s->v), cmp_double);
  /* Nearest rank: the smallest value with at least p% of the samples at or below it. */
  double rank = ceil(p / 100.0 * (double)s->n);
  size_t i = rank < 1 ? 0 : (size_t)rank - 1;
  return s->v[i < s->n ? i : s->n - 1];
}

double median_of(const double *v, size_t n) {
  double tmp[64];
  size_t m = 0;
  for (size_t i = 0; i < n && m < sizeof(tmp) / sizeof(tmp[0]); i++)
    if (!isnan(v[i]))
      tmp[m++] = v[i];
  if (m == 0)
    return NAN;
  qsort(tmp, m, sizeof(tmp[0]), cmp_double);
  return m % 2 ? tmp[m / 2] : (tmp[m / 2 - 1] + tmp[m / 2]) / 2;
}

/* ---- CPU placement ---- */

static int allowed_set(cpu_set_t *set) {
  CPU_ZERO(set);
  return sched_getaffinity(0, sizeof(*set), set) < 0 ? -errno : 0;
}

/*
 * The set every pin is undone to: the process's own set when it started,
 * taken the first time, before anything here narrows it.
 */
static cpu_set_t *original_set(void) {
  static cpu_set_t set;
  static bool have;
  if (!have && allowed_set(&set) == 0)
    have = true;
  return have ? &set : NULL;
}

int cpus_allowed(int *ret_cpus, int max) {
  cpu_set_t *set = original_set();
  int n = 0;
  if (!set)
    return -EINVAL;
  for (int cpu = 0; cpu < CPU_SETSIZE && n < max; cpu++)
    if (CPU_ISSET(cpu, set))
      ret_cpus[n++] = cpu;
  return n;
}

static int target_set(int cpu, cpu_set_t *set) {
  cpu_set_t *orig = original_set();
  if (!orig)
    return -EINVAL;
  if (cpu < 0) {
    *set = *orig;
    return 0;
  }
  CPU_ZERO(set);
  CPU_SET(cpu, set);
  return 0;
}

int pin_thread(int cpu) {
  cpu_set_t set;
  int r = target_set(cpu, &set);
  if (r < 0)
    return r;
  /* pid 0 is the calling thread, not the whole process. */
  return sched_setaffinity(0, sizeof(set), &set) < 0 ? -errno : 0;
}

int pin_process(pid_t pid, int cpu) {
  char path[64];
  cpu_set_t set;
  int r = target_set(cpu, &set), pinned = 0;
  if (r < 0)
    return r;
  /* Every thread: sched_setaffinity() on a pid moves only its main thread. */
  snprintf(path, sizeof(path), "/proc/%ld/task", (long)pid);
  DIR *d = opendir(path);
  if (!d)
    return -errno;
  struct dirent *e;
  while ((e = readdir(d))) {
    char *end;
    long tid = strtol(e->d_name, &end, 10);
    if (*end || tid <= 0)
      continue;
    if (sched_setaffinity((pid_t)tid, sizeof(set), &set) < 0) {
      r = -errno;
      break;
    }
    pinned++;
  }
  closedir(d);
  return r < 0 ? r : pinned > 0 ? 0 : -ESRCH;
}
