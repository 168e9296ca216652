/* dpop.c: mcpsig dpop, an RFC 9449 proof for one request. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "cli.h"

#define MAX_TOKEN 16384

/* Reads the access token from a file or stdin, without its trailing line end. */
static int token_read(const char *path, unsigned char **ret, size_t *ret_len) {
  unsigned char *buf = NULL;
  size_t len = 0;
  int r = file_read(path, MAX_TOKEN, true, &buf, &len);
  if (r < 0)
    return fail("cannot read the token from %s: %s", strcmp(path, "-") == 0 ? "stdin" : path,
                r == -EFBIG ? "larger than 16 KiB" : strerror(-r));
  while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
    len--;
  if (memchr(buf, '\0', len)) {
    file_free(buf, true);
    return fail("the token in %s contains a NUL byte", path);
  }
  buf[len] = '\0'; /* file_read leaves room for one more byte */
  *ret = buf;
  *ret_len = len;
  return 0;
}

int cmd_dpop(int argc, char **argv) {
  enum { O_ORIGIN = 0x100, O_TOKEN, O_TOKEN_FILE, O_NONCE, O_ALG, O_JSON, O_IDENTITY };
  static const struct option opts[] = {
    { "request", required_argument, NULL, 'X' },       { "url", required_argument, NULL, 'u' },
    { "origin", required_argument, NULL, O_ORIGIN },   { "token", required_argument, NULL, O_TOKEN },
    { "token-file", required_argument, NULL, O_TOKEN_FILE }, { "nonce", required_argument, NULL, O_NONCE },
    { "alg", required_argument, NULL, O_ALG },         { "json", no_argument, NULL, O_JSON },
    { "identity", required_argument, NULL, O_IDENTITY }, { "help", no_argument, NULL, 'h' },
    {},
  };
  const struct command *cmd = command_find("dpop");
  const char *method = NULL, *url = NULL, *origin = NULL, *token = NULL, *token_file = NULL, *nonce = NULL;
  struct alg_list algs = { 0 };
  size_t token_len = 0;
  unsigned char *token_buf = NULL;
  bool json = false;
  int c, r = 0;

  optind = 0; /* restart getopt, permuting: options may follow operands */
  while ((c = getopt_long(argc, argv, "X:u:h", opts, NULL)) >= 0) {
    switch (c) {
    case 'X': method = optarg; break;
    case 'u': url = optarg; break;
    case O_ORIGIN: origin = optarg; break;
    case O_TOKEN: token = optarg; break;
    case O_TOKEN_FILE: token_file = optarg; break;
    case O_NONCE: nonce = optarg; break;
    case O_ALG:
      if ((r = alg_list_parse(cmd, optarg, &algs)) != 0)
        goto out;
      break;
    case O_JSON: json = true; break;
    case O_IDENTITY: arg_identity = optarg; break;
    case 'h': r = -2; goto out;
    default: r = bad_option(argv); goto out;
    }
  }
  if ((r = url_operand(cmd, argc, argv, &url)) != 0)
    goto out;
  if (!method || !url || !origin) {
    r = usage_error(cmd, "%s is required", !method ? "-X METHOD" : !url ? "-u URL" : "--origin URL (the key scope)");
    goto out;
  }
  if (token && token_file) {
    r = usage_error(cmd, "%s", "give --token or --token-file, not both");
    goto out;
  }
  if (token_file) {
    if ((r = token_read(token_file, &token_buf, &token_len)) != 0)
      goto out;
    token = (const char *)token_buf;
  }

  mcpsig_dpop_request req = {
    .identity = arg_identity, .origin = origin, .htm = method, .htu = url, .access_token = token,
    .nonce = nonce, .algorithms = algs.names, .n_algorithms = algs.n,
  };
  mcpsig_client *cl;
  mcpsig_dpop_proof *proof = NULL;
  if ((r = agent_open(&cl)) != 0)
    goto out;
  if ((r = mcpsig_dpop(cl, &req, &proof)) < 0) {
    r = call_failed(cl, r);
  } else if (json) {
    r = json_print(json_pack("{s:s, s:s, s:s}", "proof", proof->proof, "jkt", proof->jkt, "alg", proof->alg));
  } else {
    printf("%s\n", proof->proof);
    r = fflush(stdout) == 0 ? 0 : fail("cannot write the output");
  }
  mcpsig_dpop_proof_free(proof);
  mcpsig_close(cl);
out:
  if (token_buf)
    file_free(token_buf, true);
  alg_list_free(&algs);
  return r;
}
