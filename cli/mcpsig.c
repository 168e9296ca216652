/*
 * mcpsig: the command-line client of mcpsig-agent (the ssh-add analogue).
 *
 * Exit status: 0 success; 1 an error the agent reported, or a bad argument;
 * 2 the agent could not be reached (no socket, connection refused, timeout,
 *   or a socket that is not this user's agent);
 * 3 mcpsig rotate could not learn the server's answer (still pending).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <jansson.h>
#include <sodium.h>

#include "cli.h"
#include "mcpsig.h"

#define MAX_HEADERS 128
#define MAX_DATA_FILE (64u * 1024u * 1024u)

const char *arg_socket = NULL;
const char *arg_identity = NULL;

int fail(const char *fmt, ...) {
  va_list ap;
  fputs("mcpsig: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  return 1;
}

int usage_error(const struct command *cmd, const char *fmt, ...) {
  va_list ap;
  fputs("mcpsig: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\nUsage: mcpsig %s %s\nTry 'mcpsig %s --help' for more information.\n", cmd->name, cmd->usage,
          cmd->name);
  return 1;
}

/* getopt's own messages are off (opterr = 0), so each command names the bad option itself. */
int bad_option(char **argv) {
  const char *arg = optind > 0 ? argv[optind - 1] : "?";
  if (optopt && optopt != '?' && !(arg[0] == '-' && arg[1] == '-'))
    fprintf(stderr, "mcpsig %s: invalid option or missing value: -%c\n", argv[0], optopt);
  else
    fprintf(stderr, "mcpsig %s: invalid option or missing value: %s\n", argv[0], arg);
  return -1;
}

bool unreachable(int r) {
  /* A socket that is not this user's agent (EPEER) counts as no agent: the
   * command sent it nothing, as when none listens. */
  return r == MCPSIG_ECONNECT || r == MCPSIG_ETIMEDOUT || r == MCPSIG_ECLOSED || r == MCPSIG_EBUSY ||
         r == MCPSIG_EPEER;
}

int agent_open(mcpsig_client **ret) {
  char path[256], why[1024] = "";
  const char *p = arg_socket;
  if (!p) {
    if (mcpsig_socket_path(path, sizeof(path)) < 0)
      return fail("the socket path is too long"), EXIT_UNREACHABLE;
    p = path;
  }
  /* The library checks the socket's directory and the listener's uid on
   * every connect, -a and MCPSIG_AUTH_SOCK included. */
  int r = mcpsig_connect_explain(ret, p, 0, why, sizeof(why));
  if (r == MCPSIG_EPEER) {
    fprintf(stderr, "mcpsig: cannot reach the agent: %s\n", why[0] ? why : mcpsig_strerror(r));
    return EXIT_UNREACHABLE;
  }
  if (r == MCPSIG_ECONNECT) {
    fprintf(stderr, "mcpsig: cannot connect to the agent at %s: %s\n", p, strerror(errno));
    fprintf(stderr, "mcpsig: is mcpsig-agent running? Start it, or set MCPSIG_AUTH_SOCK or -a\n");
    return EXIT_UNREACHABLE;
  }
  if (r < 0) {
    fprintf(stderr, "mcpsig: cannot connect to the agent at %s: %s\n", p, mcpsig_strerror(r));
    return EXIT_UNREACHABLE;
  }
  return 0;
}

/* Reports a failed call; the agent's own message says what was wrong. */
/*
 * Writes text to f with every control character and DEL as \xNN: the
 * agent's messages echo what was asked, and a terminal must not interpret
 * any of it.
 */
static void print_escaped(FILE *f, const char *text) {
  for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
    if (*p < 0x20 || *p == 0x7f)
      fprintf(f, "\\x%02x", *p);
    else
      fputc(*p, f);
  }
}

int call_failed(mcpsig_client *c, int r) {
  const char *msg = mcpsig_last_error(c);
  fputs("mcpsig: ", stderr);
  print_escaped(stderr, msg && *msg ? msg : mcpsig_strerror(r));
  fputc('\n', stderr);
  /* An agent started by its socket unit that fails at start-up closes the
   * connection unanswered; the reason is in the journal. */
  if (r == MCPSIG_ECLOSED || r == MCPSIG_ECONNECT)
    fprintf(stderr, "mcpsig: if the agent runs as a systemd user service, see: journalctl --user -u mcpsig-agent\n");
  return unreachable(r) ? EXIT_UNREACHABLE : 1;
}

int json_print(json_t *j) {
  if (!j)
    return fail("out of memory");
  int r = json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  json_decref(j);
  if (r < 0)
    return fail("cannot write the output");
  putchar('\n');
  return 0;
}

int file_read(const char *path, size_t max, bool secret, unsigned char **ret, size_t *ret_len) {
  int fd = strcmp(path, "-") == 0 ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  size_t cap = secret ? max + 1 : 4096, len = 0;
  unsigned char *buf = secret ? sodium_malloc(cap) : malloc(cap);
  if (!buf) {
    if (fd != STDIN_FILENO)
      close(fd);
    return -ENOMEM;
  }
  for (;;) {
    if (len == cap) {
      if (secret || cap > max) {
        break;
      }
      unsigned char *p = realloc(buf, cap * 2);
      if (!p) {
        free(buf);
        if (fd != STDIN_FILENO)
          close(fd);
        return -ENOMEM;
      }
      buf = p;
      cap *= 2;
    }
    ssize_t n = read(fd, buf + len, cap - len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      int e = errno;
      secret ? sodium_free(buf) : free(buf);
      if (fd != STDIN_FILENO)
        close(fd);
      return -e;
    }
    if (n == 0)
      break;
    len += (size_t)n;
  }
  if (fd != STDIN_FILENO)
    close(fd);
  if (len > max) {
    secret ? sodium_free(buf) : free(buf);
    return -EFBIG;
  }
  *ret = buf;
  *ret_len = len;
  return 0;
}

void file_free(unsigned char *buf, bool secret) {
  if (secret)
    sodium_free(buf);
  else
    free(buf);
}

int alg_list_parse(const struct command *cmd, const char *arg, struct alg_list *l) {
  size_t n = 1;
  alg_list_free(l);
  for (const char *p = arg; *p; p++)
    n += *p == ',';
  l->storage = strdup(arg);
  l->names = calloc(n, sizeof(*l->names));
  if (!l->storage || !l->names) {
    alg_list_free(l);
    return fail("out of memory");
  }
  for (char *save = NULL, *tok = strtok_r(l->storage, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save))
    l->names[l->n++] = tok;
  if (l->n == 0) {
    alg_list_free(l);
    return usage_error(cmd, "--alg '%s' names no algorithm; give a comma-separated list", arg);
  }
  return 0;
}

int url_operand(const struct command *cmd, int argc, char **argv, const char **url) {
  if (optind < argc && !*url)
    *url = argv[optind++];
  if (optind < argc)
    return usage_error(cmd, "unexpected argument '%s'", argv[optind]);
  return 0;
}

void alg_list_free(struct alg_list *l) {
  free(l->names);
  free(l->storage);
  memset(l, 0, sizeof(*l));
}

/* ---- options shared by the simple commands ---- */

struct opts {
  bool json, all, extension;
  const char *origin, *alg, *jwk, *seed;
  int operand;          /* index of the first operand in argv, after parsing */
};

/*
 * Parses the options that the simple commands share. allowed lists the
 * short names the command takes (j json, A all, o origin, a alg, k jwk,
 * s seed, i identity). Returns 0, -2 for --help, or -1 on a bad option.
 */
static int opts_parse(int argc, char **argv, const char *allowed, struct opts *o) {
  static const struct option all_opts[] = {
    { "json", no_argument, NULL, 'j' },          { "all", no_argument, NULL, 'A' },
    { "origin", required_argument, NULL, 'o' },  { "alg", required_argument, NULL, 'a' },
    { "jwk", required_argument, NULL, 'k' },     { "seed", required_argument, NULL, 's' },
    { "identity", required_argument, NULL, 'i' }, { "extension", no_argument, NULL, 'x' },
    { "help", no_argument, NULL, 'h' },           {},
  };
  struct option opts[sizeof(all_opts) / sizeof(all_opts[0])];
  size_t n = 0;
  int c;

  for (size_t i = 0; all_opts[i].name; i++)
    if (all_opts[i].val == 'h' || strchr(allowed, all_opts[i].val))
      opts[n++] = all_opts[i];
  memset(&opts[n], 0, sizeof(opts[n]));
  memset(o, 0, sizeof(*o));
  optind = 0; /* restart getopt, permuting: options may follow operands */
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) >= 0) {
    switch (c) {
    case 'j': o->json = true; break;
    case 'A': o->all = true; break;
    case 'o': o->origin = optarg; break;
    case 'a': o->alg = optarg; break;
    case 'k': o->jwk = optarg; break;
    case 's': o->seed = optarg; break;
    case 'i': arg_identity = optarg; break;
    case 'x': o->extension = true; break;
    case 'h': return -2;
    default: return bad_option(argv);
    }
  }
  o->operand = optind;
  return 0;
}

/* Parses, and refuses operands beyond max_operands. */
#define PARSE(cmdname, allowed, max_operands)                                                          \
  struct opts o;                                                                                       \
  const struct command *cmd = command_find(cmdname);                                                   \
  do {                                                                                                 \
    int pr_ = opts_parse(argc, argv, (allowed), &o);                                                  \
    if (pr_ < 0)                                                                                       \
      return pr_;                                                                                      \
    if (argc - o.operand > (max_operands))                                                             \
      return usage_error(cmd, "unexpected argument '%s'", argv[o.operand + (max_operands)]);          \
  } while (0)

/* ---- status ---- */

/* Why the agent's mlock() failed, with the fix; NULL when it did not. */
static const char *lock_failure(const mcpsig_status_info *st) {
  if (st->memory_locked)
    return NULL;
  switch (st->memory_lock_errno) {
  case EPERM:
    return "not permitted (seccomp or container): allow mlock() for the agent";
  case ENOMEM:
  case EAGAIN:
  case 0:
    return "RLIMIT_MEMLOCK is too low: raise it with ulimit -l, or LimitMEMLOCK= in the unit";
  default:
    return strerror(st->memory_lock_errno);
  }
}

static int cmd_status(int argc, char **argv) {
  PARSE("status", "j", 0);
  mcpsig_client *cl;
  mcpsig_hello_info *hi = NULL;
  mcpsig_list_result *l = NULL;
  mcpsig_status_info st;
  int r = agent_open(&cl);
  if (r)
    return r;
  if ((r = mcpsig_hello(cl, &hi)) < 0 || (r = mcpsig_list(cl, &l)) < 0 || (r = mcpsig_agent_status(cl, &st)) < 0) {
    r = call_failed(cl, r);
    mcpsig_hello_info_free(hi);
    mcpsig_close(cl);
    return r;
  }
  char path[256] = "";
  if (arg_socket)
    snprintf(path, sizeof(path), "%s", arg_socket);
  else
    mcpsig_socket_path(path, sizeof(path));
  if (o.json) {
    json_t *algs = json_array();
    for (size_t i = 0; i < hi->n_algorithms; i++)
      json_array_append_new(algs, json_string(hi->algorithms[i]));
    r = json_print(json_pack("{s:s, s:I, s:s, s:i, s:o, s:I, s:I, s:I, s:I, s:I, s:b, s:s?, s:I, s:I, s:b}",
                             "socket", path,
                             "pid", (json_int_t)hi->pid, "version", hi->agent_version, "protocol", (int)hi->protocol,
                             "algorithms", algs, "identities", (json_int_t)l->n_identities, "bindings",
                             (json_int_t)l->n_bindings, "uptime", (json_int_t)st.uptime, "connections",
                             (json_int_t)st.connections, "signatures", (json_int_t)st.signatures, "memory_locked",
                             st.memory_locked, "memory_lock_error", lock_failure(&st), "output_queued_max",
                             (json_int_t)st.output_queued_max, "output_queued_limit",
                             (json_int_t)st.output_queued_limit, "peer_exe_readable", st.peer_exe_readable));
  } else {
    printf("agent:      running, pid %lld, version %s, protocol %u, up %llds\n", (long long)hi->pid,
           hi->agent_version, hi->protocol, (long long)st.uptime);
    printf("socket:     %s\n", path);
    printf("algorithms:");
    for (size_t i = 0; i < hi->n_algorithms; i++)
      printf(" %s", hi->algorithms[i]);
    printf("\nidentities: %zu\nbindings:   %zu\n", l->n_identities, l->n_bindings);
    printf("activity:   %lld connection(s), %lld signature(s) since start\n", (long long)st.connections,
           (long long)st.signatures);
    printf("key memory: %s\n", st.memory_locked ? "locked (never swapped)" : "NOT LOCKED: keys may be written to swap");
    printf("callers:    %s\n", st.peer_exe_readable
                                   ? "logged by pid, executable, name and command line"
                                   : "logged by pid, name and command line; the executable path is unreadable "
                                     "from the agent's sandbox");
  }
  if (!st.memory_locked)
    fprintf(stderr, "mcpsig: warning: the agent could not lock its key memory (%s), so keys may be written to swap\n",
            lock_failure(&st));
  if (hi->protocol != MCPSIG_PROTOCOL_VERSION)
    fprintf(stderr, "mcpsig: warning: the agent speaks protocol %u, this client %u\n", hi->protocol,
            MCPSIG_PROTOCOL_VERSION);
  (void)cmd;
  mcpsig_hello_info_free(hi);
  mcpsig_list_result_free(l);
  mcpsig_close(cl);
  return r;
}

/* ---- list ---- */

json_t *binding_json(const mcpsig_binding *b) {
  json_t *retired = json_array();
  for (size_t k = 0; k < b->n_retired; k++)
    json_array_append_new(retired, json_string(b->retired[k]));
  return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s?, s:o, s:I}", "identity", b->identity, "origin", b->origin,
                   "tag", b->tag, "keyid", b->keyid, "alg", b->alg, "state", b->state, "pending_keyid",
                   b->pending_keyid, "retired", retired, "retired_dropped", (json_int_t)b->retired_dropped);
}

void binding_print(const mcpsig_binding *b) {
  printf("  %s\n    tag    %s\n    keyid  %s  %s  %s\n", b->origin, b->tag, b->keyid, b->alg, b->state);
  if (b->pending_keyid)
    printf("    pending %s\n", b->pending_keyid);
  if (b->n_retired)
    printf("    retired %llu key(s)\n", (unsigned long long)(b->n_retired + b->retired_dropped));
}

static int cmd_list(int argc, char **argv) {
  PARSE("list", "ji", 0);
  mcpsig_client *cl;
  mcpsig_list_result *l = NULL;
  size_t shown = 0, i;
  int r = agent_open(&cl);
  if (r)
    return r;
  if ((r = mcpsig_list(cl, &l)) < 0) {
    r = call_failed(cl, r);
    mcpsig_close(cl);
    return r;
  }
  for (i = 0; arg_identity && i < l->n_identities && strcmp(l->identities[i].name, arg_identity) != 0; i++)
    ;
  if (arg_identity && i == l->n_identities) {
    r = fail("unknown identity \"%s\"", arg_identity);
  } else if (o.json) {
    json_t *arr = json_array();
    for (i = 0; i < l->n_bindings; i++)
      if (!arg_identity || strcmp(arg_identity, l->bindings[i].identity) == 0)
        json_array_append_new(arr, binding_json(&l->bindings[i]));
    r = json_print(arr);
  } else {
    for (i = 0; i < l->n_identities; i++) {
      const mcpsig_identity *id = &l->identities[i];
      if (arg_identity && strcmp(arg_identity, id->name) != 0)
        continue;
      printf("identity %s (%s)\n", id->name, id->alg);
      for (size_t k = 0; k < l->n_bindings; k++)
        if (strcmp(l->bindings[k].identity, id->name) == 0) {
          binding_print(&l->bindings[k]);
          shown++;
        }
    }
    if (shown == 0)
      printf("no bindings yet: the first signed request to an origin creates one\n");
  }
  (void)cmd;
  mcpsig_list_result_free(l);
  mcpsig_close(cl);
  return r;
}

/* ---- add-identity / remove ---- */

static int cmd_add_identity(int argc, char **argv) {
  PARSE("add-identity", "a", 1);
  if (o.operand >= argc)
    return usage_error(cmd, "%s", "missing NAME");
  if (o.alg && strcmp(o.alg, "ed25519") != 0 && strcmp(o.alg, "p256") != 0 && strcmp(o.alg, "p384") != 0)
    return usage_error(cmd, "unknown --alg '%s' (key types: ed25519, p256, p384)", o.alg);
  const char *name = argv[o.operand];
  mcpsig_client *cl;
  int r = agent_open(&cl);
  if (r)
    return r;
  if ((r = mcpsig_identity_add(cl, name, o.alg)) < 0)
    r = call_failed(cl, r);
  else
    printf("identity %s added (%s keys)\n", name, o.alg ? o.alg : "ed25519");
  mcpsig_close(cl);
  return r;
}

static int cmd_remove(int argc, char **argv) {
  PARSE("remove", "oAi", 0);
  if (!o.origin == !o.all)
    return usage_error(cmd, "%s", "give exactly one of --origin URL and --all");
  mcpsig_client *cl;
  int r = agent_open(&cl);
  if (r)
    return r;
  const char *id = arg_identity ? arg_identity : "default";
  if ((r = mcpsig_remove(cl, arg_identity, o.origin)) < 0)
    r = call_failed(cl, r);
  else if (o.all)
    printf("removed identity %s and all its keys\n", id);
  else
    printf("removed the key of %s for %s\n", id, o.origin);
  mcpsig_close(cl);
  return r;
}

/* ---- import / jwk ---- */

static int print_public(const mcpsig_public_info *pi, bool json) {
  if (json)
    return json_print(json_pack("{s:s, s:s, s:s, s:s, s:s}", "identity", pi->identity, "origin", pi->origin, "tag",
                                pi->tag, "keyid", pi->keyid, "alg", pi->alg));
  printf("identity %s\norigin   %s\ntag      %s\nkeyid    %s\nalg      %s\n", pi->identity, pi->origin, pi->tag,
         pi->keyid, pi->alg);
  return 0;
}

static int cmd_import(int argc, char **argv) {
  PARSE("import", "oksji", 0);
  if (!o.origin)
    return usage_error(cmd, "%s", "--origin URL is required");
  if (!o.jwk == !o.seed)
    return usage_error(cmd, "%s", "give exactly one of --jwk FILE and --seed FILE");
  const char *file = o.jwk ? o.jwk : o.seed;
  unsigned char *data = NULL;
  size_t len = 0;
  int r = file_read(file, o.jwk ? 16384 : 64, true, &data, &len);
  if (r < 0)
    return fail("cannot read %s: %s", file, r == -EFBIG ? "file too large" : strerror(-r));
  if (o.jwk)
    data[len] = '\0';
  if (o.seed && len != 32) {
    sodium_free(data);
    return fail("%s holds %zu bytes; a raw Ed25519 seed is exactly 32 bytes", file, len);
  }
  mcpsig_client *cl;
  mcpsig_public_info *pi = NULL;
  if ((r = agent_open(&cl)) != 0) {
    sodium_free(data);
    return r;
  }
  if (o.jwk)
    r = mcpsig_import(cl, arg_identity, o.origin, (const char *)data, NULL, 0, &pi);
  else
    r = mcpsig_import(cl, arg_identity, o.origin, NULL, data, len, &pi);
  sodium_free(data); /* wipes the key material */
  if (r < 0)
    r = call_failed(cl, r);
  else
    r = print_public(pi, o.json);
  mcpsig_public_info_free(pi);
  mcpsig_close(cl);
  return r;
}

static int cmd_jwk(int argc, char **argv) {
  PARSE("jwk", "oix", 0);
  if (!o.origin)
    return usage_error(cmd, "%s", "--origin URL is required");
  mcpsig_client *cl;
  mcpsig_public_info *pi = NULL;
  int r = agent_open(&cl);
  if (r)
    return r;
  if (o.extension) {
    char *entry = NULL;
    json_error_t jerr;
    if ((r = mcpsig_extension_entry(cl, arg_identity, o.origin, &entry)) < 0)
      r = call_failed(cl, r);
    else
      r = json_print(json_loads(entry, 0, &jerr));
    free(entry);
    mcpsig_close(cl);
    return r;
  }
  if ((r = mcpsig_public(cl, arg_identity, o.origin, &pi)) < 0)
    r = call_failed(cl, r);
  else
    printf("%s\n", pi->jwk);
  mcpsig_public_info_free(pi);
  mcpsig_close(cl);
  return r;
}

/* ---- sign ---- */

struct body {
  unsigned char *p;
  size_t len;
  bool given;
};

static int body_append(struct body *b, const void *data, size_t len) {
  size_t extra = b->given ? 1 : 0; /* curl joins repeated data options with '&' */
  unsigned char *p = realloc(b->p, b->len + extra + len + 1);
  if (!p)
    return -ENOMEM;
  b->p = p;
  if (b->given)
    b->p[b->len++] = '&';
  memcpy(b->p + b->len, data, len);
  b->len += len;
  b->given = true;
  return 0;
}

/*
 * The bytes curl sends for one data option: -d/--data-ascii read "@file"
 * and strip CR and LF from it; --data-binary reads "@file" as it is;
 * --data-raw never reads a file.
 */
static int body_add(struct body *b, const char *arg, bool at_file, bool strip) {
  if (!at_file || arg[0] != '@')
    return body_append(b, arg, strlen(arg));
  unsigned char *data = NULL;
  size_t len = 0;
  int r = file_read(arg + 1, MAX_DATA_FILE, false, &data, &len);
  if (r < 0)
    return fail("cannot read %s: %s", arg + 1, r == -EFBIG ? "file too large" : strerror(-r)), -1;
  if (strip) {
    size_t k = 0;
    for (size_t i = 0; i < len; i++)
      if (data[i] != '\r' && data[i] != '\n')
        data[k++] = data[i];
    len = k;
  }
  r = body_append(b, data, len);
  free(data);
  return r;
}

int header_parse(const char *arg, mcpsig_header *h, char **ret_storage) {
  const char *colon = strchr(arg, ':');
  const char *semi = strchr(arg, ';');
  char *s;

  if (colon) {
    const char *v = colon + 1;
    while (*v == ' ' || *v == '\t')
      v++;
    if (!*v)
      return 1; /* 'Name:' tells curl to remove the header: nothing is sent */
    s = strdup(arg);
    if (!s)
      return -ENOMEM;
    s[colon - arg] = '\0';
    h->name = s;
    h->value = s + (v - arg);
  } else if (semi && semi[1] == '\0') {
    /* 'Name;' is curl's way to send a header with an empty value. */
    s = strdup(arg);
    if (!s)
      return -ENOMEM;
    s[semi - arg] = '\0';
    h->name = s;
    h->value = s + (semi - arg);
  } else {
    return -EINVAL;
  }
  if (!*h->name || strpbrk(h->name, " \t")) {
    free(s);
    return -EINVAL;
  }
  *ret_storage = s;
  return 0;
}

static int cmd_sign(int argc, char **argv) {
  enum { O_DATA_BINARY = 0x100, O_DATA_RAW, O_ACCEPT, O_JSON, O_ORIGIN, O_IDENTITY, O_LABEL, O_KEY, O_ALG, O_COMPONENT };
  static const struct option opts[] = {
    { "request", required_argument, NULL, 'X' },  { "url", required_argument, NULL, 'u' },
    { "header", required_argument, NULL, 'H' },   { "data", required_argument, NULL, 'd' },
    { "data-ascii", required_argument, NULL, 'd' }, { "data-binary", required_argument, NULL, O_DATA_BINARY },
    { "data-raw", required_argument, NULL, O_DATA_RAW }, { "accept-signature", required_argument, NULL, O_ACCEPT },
    { "json", no_argument, NULL, O_JSON },         { "origin", required_argument, NULL, O_ORIGIN },
    { "identity", required_argument, NULL, O_IDENTITY }, { "label", required_argument, NULL, O_LABEL },
    { "key", required_argument, NULL, O_KEY },     { "alg", required_argument, NULL, O_ALG },
    { "component", required_argument, NULL, O_COMPONENT }, { "help", no_argument, NULL, 'h' },
    {},
  };
  const struct command *cmd = command_find("sign");
  const char *components[MAX_HEADERS];
  size_t n_components = 0;
  struct alg_list algs = { 0 };
  const char *method = NULL, *url = NULL, *accept = NULL, *origin = NULL, *label = NULL, *key = NULL;
  mcpsig_header headers[MAX_HEADERS];
  char *storage[MAX_HEADERS];
  size_t n_headers = 0;
  struct body body = { NULL, 0, false };
  bool json = false;
  int c, r = 0;

  optind = 0; /* restart getopt, permuting: options may follow operands */
  while ((c = getopt_long(argc, argv, "X:u:H:d:h", opts, NULL)) >= 0) {
    switch (c) {
    case 'X': method = optarg; break;
    case 'u': url = optarg; break;
    case 'H':
      if (n_headers == MAX_HEADERS) {
        r = usage_error(cmd, "%s", "too many -H options");
        goto out;
      }
      r = header_parse(optarg, &headers[n_headers], &storage[n_headers]);
      if (r < 0) {
        r = usage_error(cmd, "-H '%s' is not 'Name: value'", optarg);
        goto out;
      }
      if (r == 0)
        n_headers++;
      r = 0;
      break;
    case 'd':
      if (body_add(&body, optarg, true, true) < 0) {
        r = 1;
        goto out;
      }
      break;
    case O_DATA_BINARY:
      if (body_add(&body, optarg, true, false) < 0) {
        r = 1;
        goto out;
      }
      break;
    case O_DATA_RAW:
      if (body_add(&body, optarg, false, false) < 0) {
        r = 1;
        goto out;
      }
      break;
    case O_ACCEPT: accept = optarg; break;
    case O_JSON: json = true; break;
    case O_ORIGIN: origin = optarg; break;
    case O_IDENTITY: arg_identity = optarg; break;
    case O_LABEL: label = optarg; break;
    case O_KEY:
      if (strcmp(optarg, "active") != 0 && strcmp(optarg, "pending") != 0) {
        r = usage_error(cmd, "--key takes 'active' or 'pending', not '%s'", optarg);
        goto out;
      }
      key = optarg;
      break;
    case O_ALG:
      if ((r = alg_list_parse(cmd, optarg, &algs)) != 0)
        goto out;
      break;
    case O_COMPONENT:
      if (n_components == MAX_HEADERS) {
        r = usage_error(cmd, "%s", "too many --component options");
        goto out;
      }
      components[n_components++] = optarg;
      break;
    case 'h': r = -2; goto out;
    default: r = bad_option(argv); goto out;
    }
  }
  if ((r = url_operand(cmd, argc, argv, &url)) != 0)
    goto out;
  if (!url) {
    r = usage_error(cmd, "%s", "-u URL is required");
    goto out;
  }
  if (!method)
    method = body.given ? "POST" : "GET"; /* as curl chooses */

  mcpsig_sign_request req = {
    .identity = arg_identity, .origin = origin, .method = method, .uri = url, .headers = headers,
    .n_headers = n_headers, .accept_signature = accept, .label = label, .key = key,
    .algorithms = algs.names, .n_algorithms = algs.n, .components = n_components ? components : NULL,
    .n_components = n_components,
  };
  char digest[MCPSIG_CONTENT_DIGEST_LEN];
  if (body.len > 1024u * 1024u) {
    /* Large bodies are digested here; only the digest crosses the socket. */
    mcpsig_content_digest(body.p, body.len, digest, sizeof(digest));
    req.content_digest = digest;
  } else {
    req.body = body.p ? body.p : (const unsigned char *)"";
    req.body_len = body.len;
  }
  mcpsig_client *cl;
  mcpsig_signature *sig = NULL;
  if ((r = agent_open(&cl)) != 0)
    goto out;
  if ((r = mcpsig_sign_http(cl, &req, &sig)) < 0) {
    r = call_failed(cl, r);
  } else if (json) {
    r = json_print(json_pack("{s:{s:s, s:s, s:s, s:s}, s:s, s:s}", "headers", "Content-Digest", sig->content_digest,
                             "Signature-Input", sig->signature_input, "Signature", sig->signature, "Signature-Agent",
                             sig->signature_agent, "keyid", sig->keyid, "tag", sig->tag));
  } else {
    printf("Content-Digest: %s\nSignature-Input: %s\nSignature: %s\nSignature-Agent: %s\n", sig->content_digest,
           sig->signature_input, sig->signature, sig->signature_agent);
    r = 0;
  }
  mcpsig_signature_free(sig);
  mcpsig_close(cl);
out:
  for (size_t i = 0; i < n_headers; i++)
    free(storage[i]);
  free(body.p);
  alg_list_free(&algs);
  return r;
}

/* ---- dispatch ---- */

static const struct command commands[] = {
  { "status", cmd_status, "[--json]", "Show whether the agent runs, its version, identities and bindings.\n" },
  { "list", cmd_list, "[--json] [--identity NAME]",
    "List the bindings: for each (identity, origin), its tag, key id, algorithm and rotation state.\n"
    "--json prints an array of {identity, origin, tag, keyid, alg, state, pending_keyid, retired}.\n" },
  { "add-identity", cmd_add_identity, "NAME [--alg ed25519|p256|p384]",
    "Add a named identity. Signing for a name that was never added is refused,\n"
    "so a typo never mints a new tag. --alg is the key type of its new bindings (default\n"
    "ed25519; p256 and p384 are ECDSA, for servers that need ecdsa-p256-sha256 or ES256).\n" },
  { "remove", cmd_remove, "(--origin URL | --all) [--identity NAME]",
    "Delete the key of one origin for the identity, or the whole identity, wiping the key files.\n"
    "The server will no longer recognize this client; a later request starts a new tag.\n" },
  { "import", cmd_import, "--origin URL (--jwk FILE | --seed FILE) [--identity NAME] [--json]",
    "Import an existing private key for (identity, origin): a JWK with \"d\" (Ed25519, or EC P-256\n"
    "or P-384), or a file of exactly 32 raw Ed25519 seed bytes. Refused if the binding exists.\n"
    "The tag is the key's thumbprint.\n" },
  { "jwk", cmd_jwk, "--origin URL [--identity NAME] [--extension]",
    "Print the public JWK of (identity, origin). Creates the key on first use. With --extension,\n"
    "print the client's capability entry for io.modelcontextprotocol/http-message-signatures,\n"
    "with the JWK in its cnf.jwk: merge it into capabilities.extensions (SEP-2752 as an extension\n"
    "moved the JWK there from clientInfo.cnf.jwk).\n" },
  { "sign", cmd_sign,
    "-X METHOD -u URL [-H 'Name: value']... [-d DATA | --data-binary @FILE] [--accept-signature VALUE]\n"
    "              [--alg ALG[,ALG...]] [--component NAME]... [--json]",
    "Sign an HTTP request (RFC 9421, SEP-2752) and print the headers to add, one 'Name: value'\n"
    "line each, usable as curl -H @FILE. -d, --data-ascii, --data-binary and --data-raw behave as\n"
    "curl's (-d @FILE strips CR and LF), so the digest matches what curl sends with the same flags.\n"
    "The URL is signed exactly as given: lowercase scheme and host, no default port, a path\n"
    "without . or .. segments, a canonical IP address. --component NAME covers one more component\n"
    "(an MCP header the request lacks is skipped; signature-agent means the agent's own value).\n"
    "Options: --accept-signature VALUE answers a server's 401; --origin URL names the key scope;\n"
    "--label LABEL; --identity NAME; --key pending signs with the new key of a rotation in flight\n"
    "(to probe the server); --alg lists the RFC 9421 algorithms the server accepts (ed25519,\n"
    "ecdsa-p256-sha256, ecdsa-p384-sha384), which picks the key type of a new binding;\n"
    "--json prints {\"headers\":{...},\"keyid\":...,\"tag\":...}.\n" },
  { "dpop", cmd_dpop,
    "-X METHOD -u URL --origin URL [--token TOKEN | --token-file FILE] [--nonce NONCE]\n"
    "              [--alg ALG[,ALG...]] [--component NAME]... [--json]",
    "Make an RFC 9449 DPoP proof for one request and print it (the DPoP header's value).\n"
    "--origin is required: it names the key scope, normally the MCP server's origin. Use the same\n"
    "--origin for the token endpoint's proofs and the MCP requests' proofs, so the access token is\n"
    "bound to the key the MCP requests use. The URL's query and fragment are left out of htu.\n"
    "--token or --token-file FILE ('-' for stdin) gives the access token, for ath (at the resource\n"
    "server, not the token endpoint); --nonce copies the server's latest DPoP-Nonce;\n"
    "--alg lists the JWS algorithms the server accepts (dpop_signing_alg_values_supported: EdDSA,\n"
    "Ed25519, ES256, ES384, ...), which picks the key type of a new binding (an Ed25519 identity\n"
    "falls back to ES256 when the server takes only that). --json prints\n"
    "{\"proof\":...,\"jkt\":...,\"alg\":...}; jkt is the key's thumbprint (the token's cnf.jkt).\n" },
  { "rotate", cmd_rotate,
    "URL | --resume URL | (--begin | --commit | --abort | --status) --origin URL  [--json] [--timeout SECS]",
    "Rotate the key of (identity, origin) while the tag stays the same (SEP-2752 signatures/rotateKey).\n"
    "rotate URL runs the whole exchange with the MCP server at URL: it opens a session, begins the\n"
    "rotation, sends signatures/rotateKey signed by the old and the new key, then commits on a\n"
    "JSON-RPC result or aborts on a JSON-RPC error or a 4xx, and closes the session.\n"
    "If the outcome is unknown (timeout, reset, 5xx) both keys are kept and the rotation stays\n"
    "pending; rotate --resume URL asks the server which key it holds and settles it.\n"
    "--begin, --commit, --abort and --status are the steps, for scripts that talk to the server\n"
    "themselves; --status --json prints the binding as list --json does.\n"
    "Exit status: 0 committed, 1 aborted or error, 2 agent unreachable, 3 outcome unknown (pending).\n"
    "A DPoP access token is bound to the old key's jkt: get a new token after a rotation.\n" },
  { "watch", cmd_watch, "[--json] [--count N]",
    "Print every key rotation event (begin, commit, abort) as it happens, one line each; with\n"
    "--json, one JSON object per line: {event, identity, origin, tag, old_keyid, new_keyid}.\n"
    "--count N exits after N events.\n" },
};

const struct command *command_find(const char *name) {
  for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
    if (strcmp(commands[i].name, name) == 0)
      return &commands[i];
  return NULL;
}

static void help(void) {
  printf("Usage: mcpsig [-a SOCKET] [--identity NAME] COMMAND [ARGS]\n\n"
         "Talks to mcpsig-agent, which holds MCP client keys and signs HTTP requests.\n\nCommands:\n");
  for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
    printf("  %-13s %s\n", commands[i].name, commands[i].usage);
  printf("\nOptions:\n"
         "  -a, --socket SOCKET   the agent's socket (default: $MCPSIG_AUTH_SOCK, else the default path)\n"
         "      --identity NAME   the identity to use (default: \"default\")\n"
         "  -h, --help            show this help; 'mcpsig COMMAND --help' for a command\n"
         "  -V, --version         show the version\n\n"
         "Exit status: 0 success, 1 error or bad argument, 2 the agent could not be reached (none\n"
         "listens, or the socket is not this user's agent),\n"
         "3 (mcpsig rotate) the outcome is unknown and the rotation still pending.\n"
         "See mcpsig(1).\n");
}

static void command_help(const struct command *cmd) {
  printf("Usage: mcpsig %s %s\n\n%s", cmd->name, cmd->usage, cmd->help);
}

int main(int argc, char **argv) {
  enum { O_IDENTITY = 0x100 };
  static const struct option opts[] = {
    { "socket", required_argument, NULL, 'a' }, { "identity", required_argument, NULL, O_IDENTITY },
    { "help", no_argument, NULL, 'h' },         { "version", no_argument, NULL, 'V' }, {},
  };
  int c;

  if (sodium_init() < 0)
    return fail("libsodium failed to initialize");
  while ((c = getopt_long(argc, argv, "+a:hV", opts, NULL)) >= 0) {
    switch (c) {
    case 'a': arg_socket = optarg; break;
    case O_IDENTITY: arg_identity = optarg; break;
    case 'h': help(); return 0;
    case 'V': printf("mcpsig %s\n", PACKAGE_VERSION); return 0;
    default:
      fprintf(stderr, "Try 'mcpsig --help' for more information.\n");
      return 1;
    }
  }
  opterr = 0;
  if (optind >= argc) {
    fprintf(stderr, "mcpsig: missing command\nTry 'mcpsig --help' for more information.\n");
    return 1;
  }
  const char *name = argv[optind];
  if (strcmp(name, "help") == 0) {
    const struct command *cmd = optind + 1 < argc ? command_find(argv[optind + 1]) : NULL;
    if (optind + 1 < argc && !cmd)
      return fail("unknown command '%s'; see 'mcpsig --help'", argv[optind + 1]);
    cmd ? command_help(cmd) : help();
    return 0;
  }
  const struct command *cmd = command_find(name);
  if (!cmd)
    return fail("unknown command '%s'; see 'mcpsig --help'", name);
  int r = cmd->run(argc - optind, argv + optind);
  if (r == -2) {
    command_help(cmd);
    return 0;
  }
  if (r == -1) {
    fprintf(stderr, "Usage: mcpsig %s %s\nTry 'mcpsig %s --help' for more information.\n", cmd->name, cmd->usage,
            cmd->name);
    return 1;
  }
  return r;
}
