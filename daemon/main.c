/*
 * main.c: mcpsig-agent's options and wiring. Everything else lives in the
 * module named for it.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <sodium.h>
#include <uv.h>

#include "agent.h"
#include "jwk.h"
#include "log.h"
#include "proto.h"
#include "server.h"
#include "service.h"
#include "testhooks.h"

/* Exit status of a start-up failure that a restart cannot fix (sysexits' EX_CONFIG). */
#define EXIT_CONFIG 78

static bool arg_foreground = false;
static bool arg_kill = false;
static const char *arg_reload = NULL;
static const char *arg_socket = NULL;
static const char *arg_keystore = NULL;
static unsigned long arg_exit_idle = 0;
static unsigned long arg_partial_timeout = 0;
static int arg_verbose = 0;

static void help(void) {
  printf("Usage: mcpsig-agent [-D] [-v] [-a SOCKET] [--keystore DIR] [--exit-idle=SECONDS]\n"
         "                    [--partial-timeout=SECONDS]\n"
         "       mcpsig-agent -k | --reload PID\n"
         "\n"
         "Holds the keys of MCP clients and signs their HTTP requests (SEP-2752).\n"
         "\n"
         "  -D, --foreground      stay in the foreground (as systemd runs it)\n"
         "  -v, --verbose         log every signature too (MCPSIG_LOG_LEVEL=debug)\n"
         "  -a, --socket SOCKET   listen on SOCKET instead of the default path\n"
         "      --keystore DIR    keep keys in DIR (default: $MCPSIG_KEYSTORE, else\n"
         "                        ${XDG_DATA_HOME:-~/.local/share}/mcpsig)\n"
         "      --exit-idle=SECS  exit after SECS without any connection (for socket\n"
         "                        activation, which starts the agent again; default: never)\n"
         "      --partial-timeout=SECS  close a connection that holds part of a message\n"
         "                        for SECS without completing it (default: 30)\n"
         "  -k, --kill            stop the agent named by MCPSIG_AGENT_PID\n"
         "      --reload PID      make the agent with that pid re-read its keystore\n"
         "                        (SIGHUP; what the systemd unit's ExecReload= runs)\n"
         "  -h, --help            show this help\n"
         "  -V, --version         show the version\n"
         "\n"
         "Without -D the agent detaches and prints shell commands that set\n"
         "MCPSIG_AUTH_SOCK and MCPSIG_AGENT_PID, for: eval \"$(mcpsig-agent)\"\n"
         "Started by systemd with a socket (LISTEN_FDS), it serves that socket.\n"
         "See mcpsig-agent(1).\n");
}

static int parse_argv(int argc, char **argv) {
  enum { OPT_KEYSTORE = 0x100, OPT_EXIT_IDLE, OPT_PARTIAL_TIMEOUT, OPT_RELOAD };
  static const struct option options[] = {
    { "foreground", no_argument, NULL, 'D' },
    { "verbose", no_argument, NULL, 'v' },
    { "socket", required_argument, NULL, 'a' },
    { "keystore", required_argument, NULL, OPT_KEYSTORE },
    { "exit-idle", required_argument, NULL, OPT_EXIT_IDLE },
    { "partial-timeout", required_argument, NULL, OPT_PARTIAL_TIMEOUT },
    { "kill", no_argument, NULL, 'k' },
    { "reload", required_argument, NULL, OPT_RELOAD },
    { "help", no_argument, NULL, 'h' },
    { "version", no_argument, NULL, 'V' },
    {},
  };
  int c;

  while ((c = getopt_long(argc, argv, "Dva:khV", options, NULL)) >= 0) {
    switch (c) {
    case 'D': arg_foreground = true; break;
    case 'v': arg_verbose++; break;
    case 'a': arg_socket = optarg; break;
    case OPT_KEYSTORE: arg_keystore = optarg; break;
    case OPT_EXIT_IDLE:
    case OPT_PARTIAL_TIMEOUT: {
      char *end = NULL;
      errno = 0;
      unsigned long v = strtoul(optarg, &end, 10);
      if (errno || !*optarg || *end || optarg[0] == '-' || v > 86400 * 365 || (c == OPT_PARTIAL_TIMEOUT && v == 0)) {
        fprintf(stderr, "mcpsig-agent: --%s takes whole seconds%s, not '%s'\n",
                c == OPT_EXIT_IDLE ? "exit-idle" : "partial-timeout", c == OPT_EXIT_IDLE ? "" : " (at least 1)", optarg);
        return -EINVAL;
      }
      *(c == OPT_EXIT_IDLE ? &arg_exit_idle : &arg_partial_timeout) = v;
      break;
    }
    case 'k': arg_kill = true; break;
    case OPT_RELOAD: arg_reload = optarg; break;
    case 'h': help(); return 0;
    case 'V': printf("mcpsig-agent %s\n", PACKAGE_VERSION); return 0;
    default:
      fprintf(stderr, "Try 'mcpsig-agent --help' for more information.\n");
      return -EINVAL;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "mcpsig-agent: unexpected argument '%s'\nTry 'mcpsig-agent --help' for more information.\n",
            argv[optind]);
    return -EINVAL;
  }
  if ((arg_kill || arg_reload) && (arg_foreground || arg_socket || arg_keystore || arg_exit_idle ||
                                   arg_partial_timeout || (arg_kill && arg_reload))) {
    fprintf(stderr, "mcpsig-agent: %s takes no other options\n", arg_kill ? "-k" : "--reload");
    return -EINVAL;
  }
  return 1;
}

static int keystore_default(char *buf, size_t size) {
  const char *env = getenv("MCPSIG_KEYSTORE");
  const char *data = getenv("XDG_DATA_HOME");
  int n;

  if (env && *env)
    n = snprintf(buf, size, "%s", env);
  else if (data && data[0] == '/')
    n = snprintf(buf, size, "%s/mcpsig", data);
  else {
    const char *home = getenv("HOME");
    if (!home || home[0] != '/') {
      struct passwd *pw = getpwuid(getuid());
      home = pw ? pw->pw_dir : NULL;
    }
    if (!home)
      return -ENOENT;
    n = snprintf(buf, size, "%s/.local/share/mcpsig", home);
  }
  return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

static int path_absolute(char path[PATH_MAX]) {
  char cwd[PATH_MAX], abs[PATH_MAX];
  if (path[0] == '/')
    return 0;
  if (!getcwd(cwd, sizeof(cwd)) || snprintf(abs, sizeof(abs), "%s/%s", cwd, path) >= (int)sizeof(abs))
    return -ENAMETOOLONG;
  memcpy(path, abs, PATH_MAX);
  return 0;
}

/* Quotes a value for sh when it holds anything but plain path characters. */
static void print_sh_value(const char *v) {
  if (strspn(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/._-+,:@%") == strlen(v)) {
    fputs(v, stdout);
    return;
  }
  putchar('\'');
  for (; *v; v++) {
    if (*v == '\'')
      fputs("'\\''", stdout);
    else
      putchar(*v);
  }
  putchar('\'');
}

static void print_env(const char *path, pid_t pid) {
  fputs("MCPSIG_AUTH_SOCK=", stdout);
  print_sh_value(path);
  printf("; export MCPSIG_AUTH_SOCK;\nMCPSIG_AGENT_PID=%ld; export MCPSIG_AGENT_PID;\necho Agent pid %ld;\n", (long)pid,
         (long)pid);
  fflush(stdout);
}

/* Whether an argument of process pid is a program named mcpsig-agent*: an
 * agent run under a wrapper (valgrind, a debugger) has the wrapper's name. */
static bool cmdline_names_agent(long pid) {
  char path[64], buf[4096];
  snprintf(path, sizeof(path), "/proc/%ld/cmdline", pid);
  FILE *f = fopen(path, "re");
  if (!f)
    return false;
  size_t n = fread(buf, 1, sizeof(buf) - 1, f);
  fclose(f);
  buf[n] = '\0';
  for (size_t i = 0; i < n; i += strlen(buf + i) + 1) {
    const char *base = strrchr(buf + i, '/');
    if (strncmp(base ? base + 1 : buf + i, "mcpsig-agent", 12) == 0)
      return true;
  }
  return false;
}

/*
 * Sends sig to the agent whose pid is the text s (named by what, for
 * messages). A pid that does not name an mcpsig-agent is refused: a stale
 * MCPSIG_AGENT_PID may name an unrelated process by now.
 */
static int agent_signal(const char *s, const char *what, int sig, long *ret_pid) {
  char path[64], comm[32] = "";
  char *end = NULL;
  errno = 0;
  long pid = strtol(s, &end, 10);
  if (errno || !*s || *end || pid < 1 || pid > INT_MAX) {
    fprintf(stderr, "mcpsig-agent: %s \"%s\" is not a process id\n", what, s);
    return -EINVAL;
  }
  snprintf(path, sizeof(path), "/proc/%ld/comm", pid);
  FILE *f = fopen(path, "re");
  if (f) {
    if (!fgets(comm, sizeof(comm), f))
      comm[0] = '\0';
    fclose(f);
    comm[strcspn(comm, "\n")] = '\0';
    if (strncmp(comm, "mcpsig-agent", 12) != 0 && !cmdline_names_agent(pid)) {
      fprintf(stderr, "mcpsig-agent: pid %ld (%s) is %s, not an mcpsig-agent; nothing sent\n", pid, what, comm);
      return -ESRCH;
    }
  }
  if (kill((pid_t)pid, sig) < 0) {
    fprintf(stderr, "mcpsig-agent: cannot signal pid %ld (%s): %s\n", pid, what, strerror(errno));
    return -errno;
  }
  *ret_pid = pid;
  return 0;
}

static int agent_kill(void) {
  const char *s = getenv("MCPSIG_AGENT_PID");
  long pid;
  if (!s || !*s) {
    fprintf(stderr, "mcpsig-agent: MCPSIG_AGENT_PID is not set, cannot kill the agent\n");
    return 1;
  }
  if (agent_signal(s, "MCPSIG_AGENT_PID", SIGTERM, &pid) < 0)
    return 1;
  printf("unset MCPSIG_AUTH_SOCK;\nunset MCPSIG_AGENT_PID;\necho Agent pid %ld killed;\n", pid);
  return 0;
}

/*
 * Closes every descriptor inherited beyond stderr, except the sockets
 * systemd passes (LISTEN_FDS, for this pid): a parent's open files must not
 * live on in a process that holds keys.
 */
static void close_inherited(void) {
  unsigned first = 3, keep = 0;
  const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
  if (pid && fds && strtol(pid, NULL, 10) == (long)getpid()) {
    long n = strtol(fds, NULL, 10);
    if (n > 0 && n < 64)
      keep = (unsigned)n;
  }
  first += keep;
  if (syscall(SYS_close_range, first, ~0u, 0) == 0)
    return;
  /* Kernels before 5.9: walk the descriptor table instead. */
  long max = sysconf(_SC_OPEN_MAX);
  for (long fd = first; fd < (max > 0 && max < 65536 ? max : 65536); fd++)
    (void)close((int)fd);
}

/* Deny core dumps and ptrace-style reads: memory holds unencrypted private keys. */
static void harden(void) {
  struct rlimit rl = { 0, 0 };
  umask(0077);
  (void)prctl(PR_SET_DUMPABLE, 0);
  (void)setrlimit(RLIMIT_CORE, &rl);
  close_inherited();
  signal(SIGPIPE, SIG_IGN);
  /* A write past RLIMIT_FSIZE fails with EFBIG (a keystore error the
   * requester sees) instead of killing the agent. */
  signal(SIGXFSZ, SIG_IGN);
}

/*
 * Socket activation, and the agent cannot start: closes the connections
 * already queued on the socket. Left there, they would make the service
 * manager start the agent again at once, and again, until its start limit
 * takes the socket down for every later client. Each client that connects
 * from now on starts one new attempt, which succeeds once the cause is fixed.
 */
static void drain_pending(int listen_fd) {
  int flags = fcntl(listen_fd, F_GETFL);
  if (flags < 0 || fcntl(listen_fd, F_SETFL, flags | O_NONBLOCK) < 0)
    return;
  for (int i = 0; i < 1024; i++) {
    int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
      break;
    close(fd);
  }
}

static int run(const char *keystore, const char *path, int listen_fd, int ready_fd) {
  struct agent agent;
  struct server srv;
  uv_loop_t loop;
  char err[1024] = "";
  int r;

  if ((r = agent_init(&agent, keystore, err, sizeof(err))) < 0) {
    log_msg(LOG_ERR, "%s", err[0] ? err : mcpsig_strerror(r));
    if (listen_fd >= 0)
      drain_pending(listen_fd);
    /* A keystore that cannot be used will not be fixed by a restart: the
     * unit's RestartPreventExitStatus= names this status, so the service
     * manager does not retry until its start limit takes the socket down. */
    return EXIT_CONFIG;
  }
  if (!keypool_locked(agent.pool))
    log_msg(LOG_WARNING, "cannot lock key memory (%s): keys may be written to swap",
            keypool_lock_failure(agent.pool));
  uv_loop_init(&loop);
  struct server_options sopt = { listen_fd, (uint64_t)arg_exit_idle * 1000, (uint64_t)arg_partial_timeout * 1000 };
  if ((r = server_start(&srv, &loop, &agent, path, &sopt, err, sizeof(err))) <
      0) {
    log_msg(LOG_ERR, "%s", err);
    uv_run(&loop, UV_RUN_NOWAIT);
    uv_loop_close(&loop);
    agent_done(&agent);
    return 1;
  }
  /* The keystore is loaded and the socket accepts: ready. */
  char status[sizeof(srv.status)];
  server_status(&srv, status, sizeof(status));
  service_notify("READY=1\nSTATUS=%s", status);
  if (ready_fd >= 0) {
    /* The parent prints the environment and exits only once we answer. */
    (void)!write(ready_fd, "1", 1);
    close(ready_fd);
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (devnull >= 0) {
      dup2(devnull, STDIN_FILENO);
      dup2(devnull, STDOUT_FILENO);
      dup2(devnull, STDERR_FILENO);
      close(devnull);
    }
  } else {
    log_msg(LOG_INFO, "listening on %s%s, keystore %s, %zu binding(s)", path,
            listen_fd >= 0 ? " (socket from systemd)" : "", keystore, agent.n_bindings);
    if (listen_fd < 0)
      print_env(path, getpid());
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_run(&loop, UV_RUN_NOWAIT); /* let close callbacks finish */
  test_delay("MCPSIG_TEST_EXIT_DELAY_MS"); /* idle-exit test: a client arrives while we exit */
  (void)uv_loop_close(&loop);
  agent_done(&agent);
  log_msg(LOG_INFO, "stopped");
  return 0;
}

/*
 * ${TMPDIR:-/tmp}/mcpsig-UID is a name any user can take first. When it is
 * taken (not a directory of ours that no one else may write), a detached
 * agent without -a listens in a fresh private directory instead, as
 * ssh-agent does, and the MCPSIG_AUTH_SOCK it prints leads clients there.
 * Clients without it are still refused at the fixed path: they check it too.
 */
static int socket_path_private_fallback(char path[PATH_MAX]) {
  char fixed[PATH_MAX], dir[PATH_MAX], why[96], priv[PATH_MAX];
  const char *tmpdir = getenv("TMPDIR");
  struct stat st;

  if (!tmpdir || tmpdir[0] != '/')
    tmpdir = "/tmp";
  if (proto_socket_path_fallback(fixed, sizeof(fixed), tmpdir, getuid()) < 0 || strcmp(path, fixed) != 0 ||
      proto_socket_dir(fixed, dir, sizeof(dir)) < 0)
    return 0; /* $XDG_RUNTIME_DIR or /run/user/UID: the user's own */
  int r = proto_socket_dir_check(dir, getuid(), &st);
  if (r == 0 || r == -ENOENT)
    return 0;
  if (r == MCPSIG_EPEER || r == -ENOTDIR)
    snprintf(why, sizeof(why), "owned by uid %lu, mode %04o", (unsigned long)st.st_uid, (unsigned)(st.st_mode & 07777));
  else
    snprintf(why, sizeof(why), "%s", strerror(-r));
  /* "mcpsig.": a dot, so the name is never another uid's mcpsig-UID. */
  errno = ENAMETOOLONG;
  if (snprintf(priv, sizeof(priv), "%s/mcpsig.XXXXXX", tmpdir) >= (int)sizeof(priv) ||
      snprintf(path, PATH_MAX, "%s/agent.sock", priv) >= PATH_MAX || !mkdtemp(priv) ||
      snprintf(path, PATH_MAX, "%s/agent.sock", priv) >= PATH_MAX) {
    log_msg(LOG_ERR, "%s is not this user's (%s), and no private directory can be made in %s: %s", dir, why, tmpdir,
            strerror(errno));
    return -1;
  }
  log_msg(LOG_WARNING, "%s is not this user's (%s): listening in %s instead, published through MCPSIG_AUTH_SOCK", dir,
          why, priv);
  return 0;
}

/* The path of a socket systemd passed, for messages. */
static void socket_name(int fd, char *buf, size_t size) {
  struct sockaddr_un sa;
  socklen_t len = sizeof(sa);
  memset(&sa, 0, sizeof(sa));
  if (getsockname(fd, (struct sockaddr *)&sa, &len) == 0 && sa.sun_path[0])
    snprintf(buf, size, "%s", sa.sun_path);
  else
    snprintf(buf, size, "(inherited socket)");
}

int main(int argc, char **argv) {
  char keystore[PATH_MAX], path[PATH_MAX];
  int r;

  r = parse_argv(argc, argv);
  if (r <= 0)
    return r < 0 ? 1 : 0;
  if (arg_kill)
    return agent_kill();
  if (arg_reload) {
    long pid;
    return agent_signal(arg_reload, "--reload", SIGHUP, &pid) < 0 ? 1 : 0;
  }
  log_open();
  const char *lv = getenv("MCPSIG_LOG_LEVEL");
  int prio = LOG_INFO;
  if (lv && *lv && log_level_parse(lv, &prio) < 0) {
    log_msg(LOG_ERR, "MCPSIG_LOG_LEVEL=%s is not one of err, warning, info, debug", lv);
    return 1;
  }
  if (arg_verbose || getenv("MCPSIG_DEBUG"))
    prio = LOG_DEBUG;
  log_set_level(prio);
  harden();
  if (sodium_init() < 0) {
    log_msg(LOG_ERR, "libsodium failed to initialize");
    return 1;
  }
  jwk_json_memory_install();
  if (arg_keystore)
    snprintf(keystore, sizeof(keystore), "%s", arg_keystore);
  else if (keystore_default(keystore, sizeof(keystore)) < 0) {
    log_msg(LOG_ERR, "cannot find a keystore directory: set HOME, XDG_DATA_HOME or use --keystore");
    return 1;
  }
  int listen_fd = -1;
  char err[512];
  if ((r = service_listen_fd(&listen_fd, err, sizeof(err))) < 0) {
    log_msg(LOG_ERR, "%s", err);
    return 1;
  }
  if (r > 0) {
    /* Socket activation: systemd runs us in the foreground and owns the socket. */
    if (arg_socket)
      log_msg(LOG_WARNING, "-a %s ignored: serving the socket systemd passed", arg_socket);
    socket_name(listen_fd, path, sizeof(path));
    if (path_absolute(keystore) < 0) {
      log_msg(LOG_ERR, "cannot make the keystore path absolute");
      return 1;
    }
    return run(keystore, path, listen_fd, -1);
  }
  if (arg_socket)
    r = snprintf(path, sizeof(path), "%s", arg_socket) >= (int)sizeof(path) ? -ENAMETOOLONG : 0;
  else
    r = proto_socket_path_default(path, sizeof(path), getenv("XDG_RUNTIME_DIR"), getenv("TMPDIR"), getuid(), NULL);
  if (r < 0) {
    log_msg(LOG_ERR, "socket path too long");
    return 1;
  }
  /* The detached agent runs in "/", so relative paths are resolved now. */
  if (path_absolute(path) < 0 || path_absolute(keystore) < 0) {
    log_msg(LOG_ERR, "cannot make the socket and keystore paths absolute");
    return 1;
  }
  if (arg_foreground)
    return run(keystore, path, -1, -1);
  if (!arg_socket && socket_path_private_fallback(path) < 0)
    return 1;

  /* Detach: the child sets everything up and reports readiness through a
   * pipe, so the parent exits only when the socket already answers, and
   * prints a startup error itself otherwise. */
  int pfd[2];
  if (pipe2(pfd, O_CLOEXEC) < 0) {
    log_msg(LOG_ERR, "pipe: %s", strerror(errno));
    return 1;
  }
  fflush(stdout);
  pid_t pid = fork();
  if (pid < 0) {
    log_msg(LOG_ERR, "fork: %s", strerror(errno));
    return 1;
  }
  if (pid == 0) {
    close(pfd[0]);
    setsid();
    if (chdir("/") < 0) {
      /* not fatal: nothing depends on the working directory */
    }
    _exit(run(keystore, path, -1, pfd[1]));
  }
  close(pfd[1]);
  char c;
  ssize_t n;
  do
    n = read(pfd[0], &c, 1);
  while (n < 0 && errno == EINTR);
  close(pfd[0]);
  if (n != 1) {
    int status = 0;
    waitpid(pid, &status, 0);
    return 1;
  }
  print_env(path, pid);
  return 0;
}
