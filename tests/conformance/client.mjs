// client.mjs: a thin OAuth + MCP client for the MCP conformance suite's DPoP
// scenarios (auth/dpop, auth/dpop-nonce). Run by the suite's runner as
//
//   node client.mjs SERVER_URL
//
// It discovers the authorization server (RFC 9728, RFC 8414), registers
// (RFC 7591), authorizes with PKCE, asks for a DPoP-bound token (RFC 9449 §5)
// and then calls the MCP server with `Authorization: DPoP` and a fresh proof on
// every request. It makes no proof itself: every DPoP header value comes from
// mcpsig-agent through `mcpsig dpop`, with the MCP server's origin as the key
// scope, so the key that the token is bound to is the key the agent holds for
// that server.
//
// Environment:
//   MCPSIG             the mcpsig binary (default: mcpsig on PATH)
//   MCPSIG_AUTH_SOCK   the agent's socket (passed as -a when set)
//   MCPSIG_IDENTITY    the identity (passed as --identity when set)
//   CONFORMANCE_DPOP_ALGS  if set, the list passed as --alg instead of the
//                      authorization server's dpop_signing_alg_values_supported
//   CONFORMANCE_BREAK  negative controls: "token" or "resource" corrupts the
//                      signature of every proof sent to the token endpoint or to
//                      the MCP server ("all": both)
//
// It logs on stdout "server URL origin=ORIGIN", "offered ALG,..." (the list
// given to --alg), one line per proof
//   dpop METHOD URL alg=ALG jkt=JKT nonce=NONCE|- ath=yes|no
// and "done jkt=JKT" at the end; errors go to stderr and the exit status is 1.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  discoverOAuthProtectedResourceMetadata,
  discoverAuthorizationServerMetadata,
  registerClient,
  startAuthorization,
  exchangeAuthorization
} from '@modelcontextprotocol/sdk/client/auth.js';

const CLI_TIMEOUT_MS = 15000;
const REDIRECT_URL = 'http://127.0.0.1:1/callback'; // never contacted: the code is read from the Location header
const breakMode = process.env.CONFORMANCE_BREAK || '';

const serverUrl = process.argv[2];
if (!serverUrl) {
  process.stderr.write('usage: node client.mjs SERVER_URL\n');
  process.exit(1);
}
// One key scope for the token endpoint and the MCP server: the MCP server's origin.
const origin = new URL(serverUrl).origin;

const state = {
  accessToken: undefined, // the DPoP-bound access token
  algs: undefined, // the authorization server's dpop_signing_alg_values_supported, comma separated
  asNonce: undefined, // the latest DPoP-Nonce from the authorization server
  rsNonce: undefined, // the latest DPoP-Nonce from the MCP server
  jkt: undefined
};

function log(line) {
  process.stdout.write(line + '\n');
}

// runCli ARGS STDIN: runs mcpsig without a shell; resolves to stdout.
function runCli(args, input) {
  const bin = process.env.MCPSIG || 'mcpsig';
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), CLI_TIMEOUT_MS);
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${bin}: ${e.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`${bin} ${args.join(' ')}: ${signal ? 'killed by ' + signal : 'exit ' + code}: ${err.trim()}`));
    });
    child.stdin.on('error', () => {}); // a CLI that exits early closes its stdin
    child.stdin.end(input ?? '');
  });
}

// corrupt JWS: flips the first character of the signature (a whole 6-bit group,
// so the decoded signature really changes).
function corrupt(jws) {
  const dot = jws.lastIndexOf('.');
  const c = jws[dot + 1];
  return jws.slice(0, dot + 1) + (c === 'A' ? 'B' : 'A') + jws.slice(dot + 2);
}

// dpopProof: asks the agent for one proof. token: the access token (adds ath).
async function dpopProof(method, url, { token, nonce, target }) {
  const args = [];
  if (process.env.MCPSIG_AUTH_SOCK) args.push('-a', process.env.MCPSIG_AUTH_SOCK);
  if (process.env.MCPSIG_IDENTITY) args.push('--identity', process.env.MCPSIG_IDENTITY);
  args.push('dpop', '-X', method, '-u', String(url), '--origin', origin);
  if (token !== undefined) args.push('--token-file', '-');
  if (nonce) args.push('--nonce', nonce);
  const algs = process.env.CONFORMANCE_DPOP_ALGS ?? state.algs;
  if (algs) args.push('--alg', algs);
  args.push('--json');
  const out = await runCli(args, token);
  let res;
  try {
    res = JSON.parse(out);
  } catch {
    throw new Error(`mcpsig dpop printed no JSON: ${out.slice(0, 200)}`);
  }
  if (typeof res.proof !== 'string' || typeof res.jkt !== 'string' || typeof res.alg !== 'string')
    throw new Error(`mcpsig dpop: unexpected output: ${out.slice(0, 200)}`);
  if (state.jkt && state.jkt !== res.jkt) throw new Error(`the agent changed keys mid-flow (${state.jkt} -> ${res.jkt})`);
  state.jkt = res.jkt;
  log(`dpop ${method} ${url} alg=${res.alg} jkt=${res.jkt} nonce=${nonce || '-'} ath=${token !== undefined ? 'yes' : 'no'}`);
  return breakMode === 'all' || breakMode === target ? corrupt(res.proof) : res.proof;
}

function headersOf(init) {
  return new Headers(init?.headers ?? {});
}

// wwwAuthenticate: the auth-params of the first challenge of the response's
// WWW-Authenticate field, with its scheme lower-cased (RFC 9110 §11.6.1). The
// SDK's own parser reads Bearer challenges only.
function wwwAuthenticate(res) {
  const field = res.headers.get('www-authenticate') || '';
  const m = /^\s*([!#$%&'*+.^_`|~0-9A-Za-z-]+)\s*(.*)$/s.exec(field);
  if (!m) return { scheme: '', params: {} };
  const params = {};
  const re = /\s*([!#$%&'*+.^_`|~0-9A-Za-z-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,]*)\s*(?:,|$)/gy;
  let p;
  while ((p = re.exec(m[2])) !== null && p[0] !== '') {
    const v = p[2].startsWith('"') ? p[2].slice(1, -1).replace(/\\(.)/g, '$1') : p[2];
    params[p[1].toLowerCase()] ??= v;
  }
  return { scheme: m[1].toLowerCase(), params };
}

// A use_dpop_nonce challenge from the authorization server (RFC 9449 §8): 400 with a
// JSON error and a DPoP-Nonce header.
async function isAsNonceChallenge(res) {
  if (res.status !== 400 || !res.headers.get('dpop-nonce')) return false;
  try {
    const body = await res.clone().json();
    return body?.error === 'use_dpop_nonce';
  } catch {
    return false;
  }
}

// A use_dpop_nonce challenge from the resource server (RFC 9449 §9): 401 with
// WWW-Authenticate: DPoP error="use_dpop_nonce" and a DPoP-Nonce header.
function isRsNonceChallenge(res) {
  if (res.status !== 401 || !res.headers.get('dpop-nonce')) return false;
  const { scheme, params } = wwwAuthenticate(res);
  return scheme === 'dpop' && params.error === 'use_dpop_nonce';
}

// The fetch for the token endpoint: a proof without ath on every POST, and one retry
// with the server's nonce on a use_dpop_nonce challenge.
async function tokenFetch(url, init) {
  const send = async () => {
    const headers = headersOf(init);
    headers.set('DPoP', await dpopProof(init?.method || 'GET', url, { nonce: state.asNonce, target: 'token' }));
    return fetch(url, { ...init, headers });
  };
  let res = await send();
  if (await isAsNonceChallenge(res)) {
    state.asNonce = res.headers.get('dpop-nonce');
    await res.body?.cancel();
    res = await send();
  }
  if (res.ok && res.headers.get('dpop-nonce')) state.asNonce = res.headers.get('dpop-nonce');
  return res;
}

// authorize: RFC 9728 discovery, RFC 8414 metadata, RFC 7591 registration, the
// authorization code with PKCE and the DPoP token request. Sets state.accessToken.
async function authorize(resourceMetadataUrl) {
  const prm = await discoverOAuthProtectedResourceMetadata(serverUrl, { resourceMetadataUrl });
  const asUrl = prm.authorization_servers?.[0];
  if (!asUrl) throw new Error('the protected resource metadata names no authorization server');
  const metadata = await discoverAuthorizationServerMetadata(asUrl);
  if (!metadata) throw new Error(`no authorization server metadata at ${asUrl}`);
  const algs = metadata.dpop_signing_alg_values_supported;
  if (!Array.isArray(algs) || algs.length === 0)
    throw new Error('the authorization server does not advertise dpop_signing_alg_values_supported');
  state.algs = algs.join(',');
  log(`offered ${process.env.CONFORMANCE_DPOP_ALGS ?? state.algs}`);
  const resource = prm.resource ? new URL(prm.resource) : new URL(serverUrl);

  const clientInformation = await registerClient(asUrl, {
    metadata,
    clientMetadata: {
      client_name: 'mcpsig conformance client',
      redirect_uris: [REDIRECT_URL],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
      application_type: 'native',
      dpop_bound_access_tokens: true
    }
  });

  const oauthState = randomBytes(16).toString('base64url');
  const { authorizationUrl, codeVerifier } = await startAuthorization(asUrl, {
    metadata,
    clientInformation,
    redirectUrl: REDIRECT_URL,
    state: oauthState,
    resource
  });
  const authRes = await fetch(authorizationUrl, { redirect: 'manual' });
  const location = authRes.headers.get('location');
  await authRes.body?.cancel();
  if (authRes.status < 300 || authRes.status > 399 || !location)
    throw new Error(`the authorization endpoint answered ${authRes.status} without a redirect`);
  const cb = new URL(location);
  if (`${cb.origin}${cb.pathname}` !== REDIRECT_URL) throw new Error(`redirected to ${cb.origin}${cb.pathname}`);
  if (cb.searchParams.get('error')) throw new Error(`authorization error: ${cb.searchParams.get('error')}`);
  if (cb.searchParams.get('state') !== oauthState) throw new Error('the authorization response has the wrong state');
  const iss = cb.searchParams.get('iss');
  if (iss !== null && iss !== metadata.issuer) throw new Error(`the authorization response has iss ${iss}, not ${metadata.issuer}`);
  const code = cb.searchParams.get('code');
  if (!code) throw new Error('the authorization response has no code');

  const tokens = await exchangeAuthorization(asUrl, {
    metadata,
    clientInformation,
    authorizationCode: code,
    codeVerifier,
    redirectUri: REDIRECT_URL,
    resource,
    fetchFn: tokenFetch
  });
  if (String(tokens.token_type).toLowerCase() !== 'dpop')
    throw new Error(`the authorization server issued a ${tokens.token_type} token, not a DPoP-bound one`);
  state.accessToken = tokens.access_token;
  log(`token type=${tokens.token_type} jkt=${state.jkt}`);
}

// The fetch for the MCP server: Authorization: DPoP and a fresh proof with ath on
// every request once there is a token; the OAuth flow on the first 401; one retry
// with the server's nonce on a use_dpop_nonce challenge.
async function mcpFetch(url, init) {
  const send = async () => {
    const headers = headersOf(init);
    if (state.accessToken !== undefined) {
      headers.set('Authorization', `DPoP ${state.accessToken}`);
      headers.set(
        'DPoP',
        await dpopProof(init?.method || 'GET', url, { token: state.accessToken, nonce: state.rsNonce, target: 'resource' })
      );
    }
    return fetch(url, { ...init, headers });
  };
  let res = await send();
  if (res.status === 401 && state.accessToken === undefined) {
    const rm = wwwAuthenticate(res).params.resource_metadata;
    await res.body?.cancel();
    await authorize(rm ? new URL(rm) : undefined);
    res = await send();
  }
  if (isRsNonceChallenge(res)) {
    state.rsNonce = res.headers.get('dpop-nonce');
    await res.body?.cancel();
    res = await send();
  }
  if (res.ok && res.headers.get('dpop-nonce')) state.rsNonce = res.headers.get('dpop-nonce');
  return res;
}

async function main() {
  log(`server ${serverUrl} origin=${origin}`);
  const transport = new StreamableHTTPClientTransport(new URL(serverUrl), { fetch: mcpFetch });
  const client = new Client({ name: 'mcpsig-conformance-client', version: '0.0.0' }, { capabilities: {} });
  // The test server has no GET stream on /mcp (404); the transport reports that and goes on.
  client.onerror = (e) => {
    if (!/Failed to open SSE stream/.test(e?.message ?? '')) process.stderr.write(`transport: ${e?.message ?? e}\n`);
  };
  await client.connect(transport);
  const { tools } = await client.listTools();
  if (tools.some((t) => t.name === 'test-tool')) await client.callTool({ name: 'test-tool', arguments: {} });
  await client.close();
  log(`done jkt=${state.jkt}`);
}

// Under the runner's own time limit (tests/conformance.sh gives it 60 s).
const deadline = setTimeout(() => {
  process.stderr.write('client: gave up after 50 s\n');
  process.exit(1);
}, 50000);
main().then(
  () => {
    clearTimeout(deadline);
    process.exit(0);
  },
  (e) => {
    clearTimeout(deadline);
    process.stderr.write(`client: ${e?.stack ?? e}\n`);
    process.exit(1);
  }
);
