// conformance-client.mjs: an MCP client on the v2 SDK (@modelcontextprotocol/client)
// for the MCP conformance suite's DPoP scenarios (auth/dpop, auth/dpop-nonce).
// Run by the suite's runner as
//
//   node conformance-client.mjs SERVER_URL
//
// The SDK does all of OAuth and DPoP itself: discovery, registration, PKCE,
// the DPoP token request with its nonce retry, `Authorization: DPoP` and a
// fresh proof on every MCP request with the resource server's nonce retry.
// The one thing it does not do is sign: its DpopSession is an
// AgentDpopSession from mcpsig/dpop, so every proof comes from mcpsig-agent,
// with the MCP server's origin as the key scope.
//
// Environment:
//   MCPSIG_AUTH_SOCK        the agent's socket
//   MCPSIG_IDENTITY         the agent identity (default "default")
//   CONFORMANCE_DPOP_ALGS   if set, the algorithms offered to the agent instead
//                           of the authorization server's dpop_signing_alg_values_supported
//   CONFORMANCE_BREAK       negative controls: "token" or "resource" corrupts the
//                           signature of every proof for the token endpoint or
//                           the MCP server
//
// It logs the lines tests/conformance/results.mjs reads: "server URL
// origin=ORIGIN", "offered ALG,...", one line per proof
//   dpop METHOD URL alg=ALG jkt=JKT nonce=NONCE|- ath=yes|no
// and "done jkt=JKT". Errors go to stderr and the exit status is 1.

import { Client, StreamableHTTPClientTransport, UnauthorizedError } from '@modelcontextprotocol/client';
import { AgentDpopSession } from 'mcpsig/dpop';

const REDIRECT_URL = 'http://127.0.0.1:1/callback'; // never contacted: the code is read from the Location header
const breakMode = process.env.CONFORMANCE_BREAK || '';
const fixedAlgs = process.env.CONFORMANCE_DPOP_ALGS ? process.env.CONFORMANCE_DPOP_ALGS.split(',') : undefined;

const serverUrl = process.argv[process.argv.length - 1];
if (!serverUrl || !/^https?:/.test(serverUrl)) {
  process.stderr.write('usage: node conformance-client.mjs SERVER_URL\n');
  process.exit(1);
}
const origin = new URL(serverUrl).origin;

function log(line) {
  process.stdout.write(line + '\n');
}

// Flips the first character of the JWS signature (a whole 6-bit group).
function corrupt(jws) {
  const dot = jws.lastIndexOf('.');
  const c = jws[dot + 1];
  return jws.slice(0, dot + 1) + (c === 'A' ? 'B' : 'A') + jws.slice(dot + 2);
}

class ConformanceSession extends AgentDpopSession {
  async buildProof(request) {
    const proof = await super.buildProof(request);
    const target = request.accessToken === undefined ? 'token' : 'resource';
    return breakMode === 'all' || breakMode === target ? corrupt(proof) : proof;
  }
}

const session = new ConformanceSession({
  origin,
  identity: process.env.MCPSIG_IDENTITY || undefined,
  algorithms: fixedAlgs,
  onProof: (p) =>
    log(`dpop ${p.htm} ${p.htu} alg=${p.alg} jkt=${p.jkt} nonce=${p.nonce || '-'} ath=${p.accessToken ? 'yes' : 'no'}`),
});

// An in-memory OAuthClientProvider. Its dpop() is what turns DPoP on in the SDK.
class Provider {
  #clientInformation;
  #tokens;
  #codeVerifier;
  #discovery;
  authorizationUrl = undefined;

  get redirectUrl() {
    return REDIRECT_URL;
  }
  get clientMetadata() {
    return {
      client_name: 'mcpsig conformance client (SDK v2)',
      redirect_uris: [REDIRECT_URL],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
      dpop_bound_access_tokens: true,
    };
  }
  clientInformation() {
    return this.#clientInformation;
  }
  saveClientInformation(info) {
    this.#clientInformation = info;
  }
  tokens() {
    return this.#tokens;
  }
  saveTokens(tokens) {
    this.#tokens = tokens;
    log(`token type=${tokens.token_type} jkt=${session.thumbprint}`);
  }
  redirectToAuthorization(url) {
    this.authorizationUrl = new URL(url);
  }
  saveCodeVerifier(verifier) {
    this.#codeVerifier = verifier;
  }
  codeVerifier() {
    if (!this.#codeVerifier) throw new Error('no PKCE code verifier saved');
    return this.#codeVerifier;
  }
  // The authorization server's metadata arrives here before any token
  // request: the agent is offered exactly the algorithms it accepts.
  saveDiscoveryState(state) {
    this.#discovery = state;
    if (!fixedAlgs) session.useAuthorizationServerMetadata(state.authorizationServerMetadata);
    const offered = fixedAlgs ?? state.authorizationServerMetadata?.dpop_signing_alg_values_supported;
    if (offered) log(`offered ${offered.join(',')}`);
  }
  discoveryState() {
    return this.#discovery;
  }
  dpop() {
    return session;
  }
}

async function main() {
  log(`server ${serverUrl} origin=${origin}`);
  const provider = new Provider();
  const client = new Client({ name: 'mcpsig-conformance-client-v2', version: '0.0.0' }, { capabilities: {} });
  // The test server has no GET stream on /mcp; the transport reports that and goes on.
  // The first attempt's 401 is reported here too, before the authorization below.
  client.onerror = (e) => {
    if (e instanceof UnauthorizedError || /SSE stream|405|404/.test(e?.message ?? '')) return;
    process.stderr.write(`transport: ${e?.message ?? e}\n`);
  };

  const first = new StreamableHTTPClientTransport(new URL(serverUrl), { authProvider: provider });
  try {
    await client.connect(first);
  } catch (e) {
    if (!(e instanceof UnauthorizedError) || !provider.authorizationUrl) throw e;
    // The test authorization server approves at once: follow its redirect by hand.
    const res = await fetch(provider.authorizationUrl, { redirect: 'manual', signal: AbortSignal.timeout(10_000) });
    await res.body?.cancel();
    const location = res.headers.get('location');
    if (res.status < 300 || res.status > 399 || !location) throw new Error(`the authorization endpoint answered ${res.status} without a redirect`);
    const callback = new URL(location);
    if (callback.searchParams.get('error')) throw new Error(`authorization error: ${callback.searchParams.get('error')}`);
    await first.finishAuth(callback.searchParams);
    await client.connect(new StreamableHTTPClientTransport(new URL(serverUrl), { authProvider: provider }));
  }
  const { tools } = await client.listTools();
  if (tools.some((t) => t.name === 'test-tool')) await client.callTool({ name: 'test-tool', arguments: {} });
  await client.close();
  log(`done jkt=${session.thumbprint}`);
}

// Under the runner's own time limit.
const deadline = setTimeout(() => {
  process.stderr.write('conformance-client: gave up after 50 s\n');
  process.exit(1);
}, 50_000);
main().then(
  () => {
    clearTimeout(deadline);
    process.exit(0);
  },
  (e) => {
    clearTimeout(deadline);
    process.stderr.write(`conformance-client: ${e?.stack ?? e}\n`);
    process.exit(1);
  },
);
