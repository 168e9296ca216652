/* procs.c: child processes (agents, helpers), the notification socket, and memory figures. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define READY_TIMEOUT_MS 60000
#define MAX_CHILDREN 16

/*
 * Shared with the signal handler, which can reach nothing else: an
 * interrupted bench must not leave agents behind.
 */
static volatile pid_t children[MAX_CHILDREN];

void children_add(pid_t pid) {
  for (int i = 0; i < MAX_CHILDREN; i++)
    if (children[i] == 0) {
      children[i] = pid;
      return;
    }
}

void children_forget(pid_t pid) {
  for (int i = 0; i < MAX_CHILDREN; i++)
    if (children[i] == pid)
      children[i] = 0;
}

/* Async-signal-safe. */
void children_kill_all(void) {
  for (int i = 0; i < MAX_CHILDREN; i++)
    if (children[i] > 0)
      kill(children[i], SIGKILL);
}

/*
 * The notification socket, read all the time as systemd reads it: the agent
 * sends STATUS= every second while its counters change, and sd_notify()
 * blocks once max_dgram_qlen datagrams (10 by default) wait unread.
 * SO_PASSCRED tells which pid each READY=1 came from.
 */
#define READY_SLOTS 32

struct notify {
  int fd;
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  bool stop;
  struct {
    pid_t pid;
    uint64_t ns;
  } ready[READY_SLOTS];
  unsigned next;
};

static void *notify_run(void *arg) {
  struct notify *n = arg;
  for (;;) {
    pthread_mutex_lock(&n->lock);
    bool stop = n->stop;
    pthread_mutex_unlock(&n->lock);
    if (stop)
      return NULL;
    struct pollfd p = { n->fd, POLLIN, 0 };
    if (poll(&p, 1, 100) <= 0)
      continue;
    char buf[4096];
    union {
      struct cmsghdr align;
      char space[CMSG_SPACE(sizeof(struct ucred))];
    } control;
    struct iovec iov = { buf, sizeof(buf) - 1 };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &control, .msg_controllen = sizeof(control) };
    ssize_t len = recvmsg(n->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    uint64_t now = bench_now_ns();
    if (len <= 0)
      continue;
    buf[len] = '\0';
    pid_t pid = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
        struct ucred uc;
        memcpy(&uc, CMSG_DATA(c), sizeof(uc));
        pid = uc.pid;
      }
    /* Assignments are separated by newlines: READY=1 is one of them. */
    for (char *line = buf, *next; line; line = next) {
      next = strchr(line, '\n');
      if (next)
        *next++ = '\0';
      if (strcmp(line, "READY=1") == 0 && pid > 0) {
        pthread_mutex_lock(&n->lock);
        n->ready[n->next % READY_SLOTS].pid = pid;
        n->ready[n->next % READY_SLOTS].ns = now;
        n->next++;
        pthread_cond_broadcast(&n->cond);
        pthread_mutex_unlock(&n->lock);
      }
    }
  }
}

int notify_start(const char *path, struct notify **ret, char *err, size_t errlen) {
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  int one = 1;
  if (strlen(path) >= sizeof(sa.sun_path)) {
    snprintf(err, errlen, "notification socket path %s is too long", path);
    return -ENAMETOOLONG;
  }
  strcpy(sa.sun_path, path);
  struct notify *n = calloc(1, sizeof(*n));
  if (!n) {
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
  }
  n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (n->fd < 0 || bind(n->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
      setsockopt(n->fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) < 0) {
    int e = errno;
    snprintf(err, errlen, "cannot set up the notification socket %s: %s", path, strerror(e));
    if (n->fd >= 0)
      close(n->fd);
    free(n);
    return -e;
  }
  pthread_mutex_init(&n->lock, NULL);
  pthread_cond_init(&n->cond, NULL);
  if (pthread_create(&n->thread, NULL, notify_run, n) != 0) {
    snprintf(err, errlen, "cannot start the notification reader");
    close(n->fd);
    free(n);
    return -EAGAIN;
  }
  *ret = n;
  return 0;
}

void notify_stop(struct notify *n) {
  if (!n)
    return;
  pthread_mutex_lock(&n->lock);
  n->stop = true;
  pthread_mutex_unlock(&n->lock);
  pthread_join(n->thread, NULL);
  close(n->fd);
  pthread_mutex_destroy(&n->lock);
  pthread_cond_destroy(&n->cond);
  free(n);
}

/* Waits up to timeout_ms for READY=1 from pid; 0 and when it arrived, else -ETIMEDOUT. */
static int notify_wait_ready(struct notify *n, pid_t pid, int timeout_ms, uint64_t *ret_ns) {
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
  until.tv_sec += timeout_ms / 1000 + until.tv_nsec / 1000000000;
  until.tv_nsec %= 1000000000;
  int r = -ETIMEDOUT;
  pthread_mutex_lock(&n->lock);
  for (;;) {
    for (unsigned i = 0; i < READY_SLOTS && i < n->next; i++)
      if (n->ready[i].pid == pid) {
        *ret_ns = n->ready[i].ns;
        r = 0;
      }
    if (r == 0 || pthread_cond_timedwait(&n->cond, &n->lock, &until) != 0)
      break;
  }
  pthread_mutex_unlock(&n->lock);
  return r;
}

/*
 * The environment of a child: ours without NOTIFY_SOCKET, LISTEN_FDS and
 * LISTEN_PID, plus set ("NAME=value", or NULL). Built before fork(), so the
 * child of this threaded process only calls async-signal-safe functions.
 */
static char **env_build(const char *set) {
  static const char *const drop[] = { "NOTIFY_SOCKET=", "LISTEN_FDS=", "LISTEN_PID=" };
  size_t n = 0;
  while (environ[n])
    n++;
  char **env = calloc(n + 2, sizeof(*env));
  size_t m = 0;
  if (!env)
    return NULL;
  for (size_t i = 0; i < n; i++) {
    bool keep = true;
    for (size_t d = 0; d < sizeof(drop) / sizeof(drop[0]); d++)
      keep = keep && strncmp(environ[i], drop[d], strlen(drop[d])) != 0;
    if (set && strncmp(environ[i], set, (size_t)(strchr(set, '=') - set + 1)) == 0)
      keep = false;
    if (keep)
      env[m++] = environ[i];
  }
  if (set)
    env[m++] = (char *)set;
  env[m] = NULL;
  return env;
}

/* Starts path with argv and env_set (see env_build), its output appended to log; the pid or -errno. */
pid_t process_spawn(const char *path, char *const argv[], const char *env_set, const char *log) {
  char **env = env_build(env_set);
  int out = log ? open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600) : -1;
  int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (!env || in < 0 || (log && out < 0)) {
    int e = !env ? ENOMEM : errno;
    free(env);
    if (out >= 0)
      close(out);
    if (in >= 0)
      close(in);
    return -e;
  }
  pid_t pid = fork();
  if (pid == 0) {
    /* Default dispositions and no blocked signal, whatever the bench set. */
    struct sigaction dfl = { .sa_handler = SIG_DFL };
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    sigaction(SIGPIPE, &dfl, NULL);
    sigaction(SIGINT, &dfl, NULL);
    sigaction(SIGTERM, &dfl, NULL);
    sigaction(SIGHUP, &dfl, NULL);
    dup2(in, STDIN_FILENO);
    if (out >= 0) {
      dup2(out, STDOUT_FILENO);
      dup2(out, STDERR_FILENO);
    }
    execve(path, argv, env);
    static const char msg[] = "mcpsig-bench: cannot run the program\n";
    (void)!write(STDERR_FILENO, msg, sizeof(msg) - 1);
    _exit(127);
  }
  int e = errno;
  free(env);
  if (out >= 0)
    close(out);
  close(in);
  if (pid < 0)
    return -e;
  children_add(pid);
  return pid;
}

int agent_spawn(const char *agent, const char *sock, const char *keystore, struct notify *notify,
                const char *notify_path, const char *log, struct agent_proc *ret, char *err, size_t errlen) {
  char *argv[] = { (char *)agent, "-D", "-a", (char *)sock, "--keystore", (char *)keystore, NULL };
  char env[PATH_MAX + 16];
  snprintf(env, sizeof(env), "NOTIFY_SOCKET=%s", notify_path);
  uint64_t t0 = bench_now_ns();
  pid_t pid = process_spawn(agent, argv, env, log);
  if (pid < 0) {
    snprintf(err, errlen, "cannot start %s: %s", agent, strerror((int)-pid));
    return (int)pid;
  }
  for (;;) {
    uint64_t ready_ns;
    if (notify_wait_ready(notify, pid, 100, &ready_ns) == 0) {
      ret->pid = pid;
      ret->ready_ms = (double)(ready_ns - t0) / 1e6;
      snprintf(ret->sock, sizeof(ret->sock), "%s", sock);
      return 0;
    }
    int status;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      children_forget(pid);
      fail_with_log(err, errlen, log, "%s exited before it was ready (%s %d)", agent,
                    WIFEXITED(status) ? "status" : "signal", WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
      return -ECHILD;
    }
    if ((bench_now_ns() - t0) / 1000000 > READY_TIMEOUT_MS) {
      child_stop(pid);
      fail_with_log(err, errlen, log, "%s did not send READY=1 within %d s", agent, READY_TIMEOUT_MS / 1000);
      return -ETIMEDOUT;
    }
  }
}

void child_stop(pid_t pid) {
  int status;
  if (pid <= 0)
    return;
  kill(pid, SIGTERM);
  for (int i = 0; i < 500; i++) {
    if (waitpid(pid, &status, WNOHANG) == pid)
      goto out;
    struct timespec ts = { 0, 10 * 1000 * 1000 };
    nanosleep(&ts, NULL);
  }
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
out:
  children_forget(pid);
}

int find_in_path(const char *name, char *buf, size_t size) {
  const char *path = getenv("PATH");
  if (!path || !*path)
    path = "/usr/local/bin:/usr/bin:/bin";
  while (*path) {
    const char *end = strchr(path, ':');
    size_t len = end ? (size_t)(end - path) : strlen(path);
    if (len > 0 && (size_t)snprintf(buf, size, "%.*s/%s", (int)len, path, name) < size && access(buf, X_OK) == 0)
      return 0;
    path += len + (end ? 1 : 0);
  }
  return -ENOENT;
}

int run_command(char *const argv[], const char *env_set, const char *log) {
  char path[PATH_MAX];
  int status;
  if (argv[0][0] == '/')
    snprintf(path, sizeof(path), "%s", argv[0]);
  else if (find_in_path(argv[0], path, sizeof(path)) < 0)
    return -ENOENT;
  pid_t pid = process_spawn(path, argv, env_set, log);
  if (pid < 0)
    return (int)pid;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
    ;
  children_forget(pid);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* The value in kB of the line "name: N kB" in a /proc file, or -1. */
static double proc_field_kib(const char *path, const char *name) {
  char line[256];
  size_t n = strlen(name);
  double v = -1;
  FILE *f = fopen(path, "re");
  if (!f)
    return -1;
  while (fgets(line, sizeof(line), f))
    if (strncmp(line, name, n) == 0 && line[n] == ':') {
      v = strtod(line + n + 1, NULL);
      break;
    }
  fclose(f);
  return v;
}

int mem_read(pid_t pid, double *ret_rss_kib, double *ret_private_dirty_kib, bool *ret_proxy) {
  char path[64];
  snprintf(path, sizeof(path), "/proc/%ld/smaps_rollup", (long)pid);
  double rss = proc_field_kib(path, "Rss"), pd = proc_field_kib(path, "Private_Dirty");
  if (rss >= 0 && pd >= 0) {
    *ret_rss_kib = rss;
    *ret_private_dirty_kib = pd;
    *ret_proxy = false;
    return 0;
  }
  /* The agent is not dumpable, so smaps_rollup needs CAP_SYS_PTRACE;
   * status is readable by its user, and RssAnon is its private memory. */
  snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
  rss = proc_field_kib(path, "VmRSS");
  pd = proc_field_kib(path, "RssAnon");
  if (rss < 0 || pd < 0)
    return -EACCES;
  *ret_rss_kib = rss;
  *ret_private_dirty_kib = pd;
  *ret_proxy = true;
  return 0;
}

double proc_cpu_ns(pid_t pid) {
  char path[64];
  double total = 0;
  int n = 0;
  snprintf(path, sizeof(path), "/proc/%ld/task", (long)pid);
  DIR *d = opendir(path);
  if (!d)
    return NAN;
  struct dirent *e;
  while ((e = readdir(d))) {
    char file[300];
    unsigned long long ns;
    if (e->d_name[0] == '.')
      continue;
    snprintf(file, sizeof(file), "/proc/%ld/task/%s/schedstat", (long)pid, e->d_name);
    FILE *f = fopen(file, "re");
    if (f && fscanf(f, "%llu", &ns) == 1) {
      total += (double)ns;
      n++;
    }
    if (f)
      fclose(f);
  }
  closedir(d);
  return n > 0 ? total : NAN;
}

/* Copies the last lines of a log to stderr, to explain a failure. */
static void log_tail(const char *log) {
  char line[512];
  long pos = 0;
  FILE *f = log ? fopen(log, "re") : NULL;
  if (!f)
    return;
  /* The last 20 lines at most. */
  long starts[20] = { 0 };
  int n = 0;
  while (fgets(line, sizeof(line), f)) {
    starts[n++ % 20] = pos;
    pos = ftell(f);
  }
  long from = n > 20 ? starts[n % 20] : 0;
  fseek(f, from, SEEK_SET);
  while (fgets(line, sizeof(line), f))
    fprintf(stderr, "  | %s", line);
  fclose(f);
}

void fail_with_log(char *err, size_t errlen, const char *log, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
  /* Now, with the output under it: the temporary directory goes at exit. */
  fprintf(stderr, "mcpsig-bench: %s; its output:\n", err);
  log_tail(log);
  snprintf(err + strlen(err), errlen - strlen(err), " (its output is above)");
}

