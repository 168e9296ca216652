/*
 * sign-request.c: how a C host signs an MCP request with libmcpsig.
 *
 *   cc sign-request.c $(pkg-config --cflags --libs mcpsig)
 *   ./a.out https://mcp.example.com/mcp
 */
#include <stdio.h>
#include <string.h>
#include <mcpsig.h>

int main(int argc, char **argv) {
  const char *url = argc > 1 ? argv[1] : "https://mcp.example.com/mcp";
  const char *body = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}";
  const mcpsig_header headers[] = {
    { "Content-Type", "application/json" },
    { "MCP-Protocol-Version", "2025-06-18" },
    { "MCP-Session-Id", "sess-4f9c2a" },
  };
  mcpsig_client *agent = NULL;
  mcpsig_signature *sig = NULL;

  /* NULL: $MCPSIG_AUTH_SOCK, else the default socket; 0: the default timeout. */
  int r = mcpsig_connect(&agent, NULL, 0);
  if (r < 0) {
    fprintf(stderr, "cannot reach mcpsig-agent: %s\n", mcpsig_strerror(r));
    return 2;
  }
  mcpsig_sign_request req = {
    .method = "POST", .uri = url,
    .headers = headers, .n_headers = sizeof(headers) / sizeof(headers[0]),
    .body = body, .body_len = strlen(body),
  };
  r = mcpsig_sign_http(agent, &req, &sig);
  if (r < 0) {
    fprintf(stderr, "signing failed: %s\n", mcpsig_last_error(agent));
    mcpsig_close(agent);
    return 1;
  }
  /* Add these four headers to the request, unchanged. */
  printf("Content-Digest: %s\n", sig->content_digest);
  printf("Signature-Input: %s\n", sig->signature_input);
  printf("Signature: %s\n", sig->signature);
  printf("Signature-Agent: %s\n", sig->signature_agent);
  mcpsig_signature_free(sig);
  mcpsig_close(agent);
  return 0;
}
