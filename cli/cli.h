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

int cmd_rotate(int argc, char **argv);
int cmd_watch(int argc, char **argv);

#endif
