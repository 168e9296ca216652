/* cli.h: what the mcpsig command's source files share. */
#ifndef MCPSIG_CLI_H
#define MCPSIG_CLI_H

#include <stdbool.h>
#include <jansson.h>

#include "mcpsig.h"

#define EXIT_UNREACHABLE 2   /* the agent could not be reached */
#define EXIT_PENDING 3       /* mcpsig rotate: outcome unknown, rotation still pending */

struct command {
  const char *name;
  int (*run)(int argc, char **argv);
  const char *usage;
  const char *help;
};

extern const char *arg_socket;
extern const char *arg_identity;

const struct command *command_find(const char *name);

/* "mcpsig: " + message on stderr; returns 1. */
__attribute__((format(printf, 1, 2))) int fail(const char *fmt, ...);
/* A message and the command's usage on stderr; returns 1. */
__attribute__((format(printf, 2, 3))) int usage_error(const struct command *cmd, const char *fmt, ...);
/* Names the option getopt refused; returns -1 (main prints the usage). */
int bad_option(char **argv);

bool unreachable(int r);
/* Connects to the agent; 0, or EXIT_UNREACHABLE after saying why. */
int agent_open(mcpsig_client **ret);
/* Reports a failed call with the agent's message; returns the exit status. */
int call_failed(mcpsig_client *c, int r);

/* Prints j (and releases it) as indented JSON; 0 or 1. */
int json_print(json_t *j);
/* A binding as in list --json. */
json_t *binding_json(const mcpsig_binding *b);
void binding_print(const mcpsig_binding *b);

/* Parses curl's -H 'Name: value'; 1 for a 'Name:' that sends nothing. */
int header_parse(const char *arg, mcpsig_header *h, char **ret_storage);

/* Reads a whole file ("-" for stdin) of at most max bytes, into guarded memory when secret. */
int file_read(const char *path, size_t max, bool secret, unsigned char **ret, size_t *ret_len);
void file_free(unsigned char *buf, bool secret);
/* The names of an --alg A,B,C option. */
struct alg_list {
  const char **names;
  size_t n;
  char *storage;
};
/* Splits arg into l (replacing what it held); 0, or the exit status after saying why. */
int alg_list_parse(const struct command *cmd, const char *arg, struct alg_list *l);
void alg_list_free(struct alg_list *l);
/* After getopt: the URL operand, when -u was not given; 0, or the exit status for an extra operand. */
int url_operand(const struct command *cmd, int argc, char **argv, const char **url);

int cmd_dpop(int argc, char **argv);
int cmd_rotate(int argc, char **argv);
int cmd_watch(int argc, char **argv);

#endif
