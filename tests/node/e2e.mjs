// End-to-end: a real MCP session through the official SDK's server, with every
// request signed by the real `mcpsig` CLI and agent and verified on arrival by
// the independent verifier in lib/verify.mjs (see mcp-server.mjs).
//
// Environment: MCPSIG (path of the mcpsig binary) and MCPSIG_AUTH_SOCK (the
// agent socket, already running). Output is TAP with the plan printed last.

import { spawn, execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseDictionary, isInnerList } from 'structured-headers';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const MCPSIG = process.env.MCPSIG;
const CLI_TIMEOUT_MS = 20_000;
const HTTP_TIMEOUT_MS = 15_000;
const SERVER_START_MS = 15_000;
const WATCHDOG_MS = 240_000;
const PROTOCOL_VERSION = '2025-06-18';
const ACCEPT = 'application/json, text/event-stream';

import { rpcMessages } from './lib/rpc.mjs';
import { bail, diag, ok, is, runTests } from './lib/tap.mjs';

// ---- helpers ---------------------------------------------------------------

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mcpsig-e2e-'));
let serverProc = null;

function cleanup() {
  if (serverProc && serverProc.exitCode === null) serverProc.kill('SIGTERM');
  fs.rmSync(tmp, { recursive: true, force: true });
}

function run(file, args) {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: CLI_TIMEOUT_MS, maxBuffer: 4 * 1024 * 1024, encoding: 'utf8' }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, signal: error?.signal ?? null, stdout, stderr });
    });
  });
}

let bodySeq = 0;

// Signs with `mcpsig sign --json`. The body goes through a file with
// --data-binary so the agent digests exactly the bytes that are then sent.
async function sign(method, url, headers, body, acceptSignature) {
  const args = ['sign', '-X', method, '-u', url];
  for (const [name, value] of Object.entries(headers)) args.push('-H', `${name}: ${value}`);
  if (body.length > 0) {
    bodySeq += 1;
    const file = path.join(tmp, `body-${bodySeq}`);
    fs.writeFileSync(file, body);
    args.push('--data-binary', `@${file}`);
  }
  if (acceptSignature !== undefined) args.push('--accept-signature', acceptSignature);
  args.push('--json');
  const r = await run(MCPSIG, args);
  if (r.code !== 0) throw new Error(`mcpsig ${args.join(' ')} exited ${r.code}${r.signal ? ` (${r.signal})` : ''}: ${r.stderr.trim()}`);
  let out;
  try {
    out = JSON.parse(r.stdout);
  } catch (e) {
    throw new Error(`mcpsig sign --json printed non-JSON: ${JSON.stringify(r.stdout.slice(0, 200))}`);
  }
  return out;
}

async function send(method, url, headers, body) {
  const res = await fetch(url, {
    method,
    headers,
    body: body.length > 0 ? body : undefined,
    signal: AbortSignal.timeout(HTTP_TIMEOUT_MS),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, messages: rpcMessages(res.headers.get('content-type'), text) };
}

// Signs and sends one request; `mutate` may change the body after signing.
async function signedCall(url, method, headers, body, { mutate, acceptSignature } = {}) {
  const signed = await sign(method, url, headers, body, acceptSignature);
  const sent = mutate ? mutate(body) : body;
  const res = await send(method, url, { ...headers, ...signed.headers }, sent);
  return { ...res, signed, body: sent, headersSent: { ...headers, ...signed.headers } };
}

async function stats(base) {
  const res = await fetch(`${base}/__stats`, { signal: AbortSignal.timeout(HTTP_TIMEOUT_MS) });
  return res.json();
}

function startServer() {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [path.join(HERE, 'mcp-server.mjs'), '0', '--lifetime', String(Math.ceil(WATCHDOG_MS / 1000) + 30)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    serverProc = proc;
    let out = '';
    const timer = setTimeout(() => reject(new Error(`mcp-server did not report a port within ${SERVER_START_MS} ms`)), SERVER_START_MS);
    proc.stdout.setEncoding('utf8');
    proc.stdout.on('data', (chunk) => {
      out += chunk;
      const m = out.match(/^PORT (\d+)$/m);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (chunk) => {
      for (const line of chunk.split('\n').filter(Boolean)) diag(`server: ${line}`);
    });
    proc.on('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`mcp-server exited early (${code ?? signal})`));
    });
  });
}

function parseAcceptSignature(value) {
  const dict = parseDictionary(value);
  const [[label, member]] = [...dict];
  if (!isInnerList(member)) throw new Error('Accept-Signature member is not an inner list');
  return { label, components: member[0].map(([c]) => c), params: [...member[1].keys()] };
}

function rpc(id, method, params) {
  const msg = { jsonrpc: '2.0', method };
  if (id !== undefined) msg.id = id;
  if (params !== undefined) msg.params = params;
  return Buffer.from(JSON.stringify(msg));
}

function resultOf(res, id) {
  return res.messages.find((m) => m.id === id);
}

// ---- the session -----------------------------------------------------------

async function main() {
  if (!MCPSIG) bail('MCPSIG is not set');
  if (!process.env.MCPSIG_AUTH_SOCK) bail('MCPSIG_AUTH_SOCK is not set');

  const port = await startServer();
  const base = `http://127.0.0.1:${port}`;
  const url = `${base}/mcp`;
  diag(`server on ${url}`);

  const jwkRun = await run(MCPSIG, ['jwk', '--origin', base]);
  let jwk = null;
  try {
    jwk = JSON.parse(jwkRun.stdout);
  } catch {
    // Reported by the test below.
  }
  ok(jwkRun.code === 0 && jwk && typeof jwk === 'object', 'mcpsig jwk --origin prints a JWK for the server origin', `${jwkRun.code} ${jwkRun.stderr}`);

  const baseHeaders = { 'Content-Type': 'application/json', Accept: ACCEPT };
  let expectedVerified = 0;

  // 1. initialize, with the in-band key of SEP-2752 §2.6.2.
  const clientInfo = { name: 'mcpsig-e2e', version: '0.0.0' };
  if (jwk) clientInfo.cnf = { jwk };
  const init = await signedCall(url, 'POST', baseHeaders,
    rpc(1, 'initialize', { protocolVersion: PROTOCOL_VERSION, capabilities: {}, clientInfo }));
  expectedVerified += 1;
  is(init.status, 200, 'initialize: 200');
  const sessionId = init.headers.get('mcp-session-id');
  ok(typeof sessionId === 'string' && sessionId.length > 0, 'initialize: server assigned an Mcp-Session-Id', init.text);
  const initResult = resultOf(init, 1);
  ok(initResult?.result?.serverInfo?.name === 'mcpsig-test-server', 'initialize: result names the server', init.text);
  const version = initResult?.result?.protocolVersion ?? PROTOCOL_VERSION;
  const sessionHeaders = { ...baseHeaders, 'MCP-Protocol-Version': version, 'MCP-Session-Id': sessionId ?? 'missing' };

  // 2. notifications/initialized
  const notif = await signedCall(url, 'POST', sessionHeaders, rpc(undefined, 'notifications/initialized'));
  expectedVerified += 1;
  is(notif.status, 202, 'notifications/initialized: 202');

  // 3. tools/list
  const list = await signedCall(url, 'POST', sessionHeaders, rpc(2, 'tools/list', {}));
  expectedVerified += 1;
  is(list.status, 200, 'tools/list: 200');
  const tools = resultOf(list, 2)?.result?.tools ?? [];
  ok(tools.some((t) => t.name === 'echo'), 'tools/list: lists echo', list.text);

  // 4. tools/call echo, with non-ASCII text so the digest covers real UTF-8.
  const text = 'héllo wörld ✓ 署名 🔏';
  const call = await signedCall(url, 'POST', sessionHeaders, rpc(3, 'tools/call', { name: 'echo', arguments: { text } }));
  expectedVerified += 1;
  is(call.status, 200, 'tools/call echo: 200');
  is(resultOf(call, 3)?.result?.content?.[0]?.text, text, 'tools/call echo: returns the text unchanged');

  // 5. DELETE ends the session; the body is empty but still digested.
  const delHeaders = { 'MCP-Protocol-Version': version, 'MCP-Session-Id': sessionId ?? 'missing' };
  const del = await signedCall(url, 'DELETE', delHeaders, Buffer.alloc(0));
  expectedVerified += 1;
  is(del.status, 200, 'DELETE session: 200');
  is(del.signed.headers['Content-Digest'], 'sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:', 'DELETE: Content-Digest of the empty body');

  // 6. The deleted session is gone (the request itself verifies).
  const gone = await signedCall(url, 'POST', sessionHeaders, rpc(4, 'tools/list', {}));
  expectedVerified += 1;
  is(gone.status, 404, 'signed request on the deleted session: 404');

  let s = await stats(base);
  is(s.rejected, 0, 'server stats: no request failed verification');
  is(s.verified, expectedVerified, `server stats: all ${expectedVerified} requests verified`);
  const happy = s.requests.slice(0, expectedVerified);
  ok(happy.every((e) => e.ok), 'server log: every request verified', () => JSON.stringify(happy.filter((e) => !e.ok), null, 1));
  for (const e of happy) {
    const label = Object.values(e.labels)[0] ?? { components: [] };
    const what = `#${e.seq} ${e.method} ${e.rpc.join(',') || '(no body)'}`;
    is(label.components.includes('mcp-session-id'), e.sessionHeader, `${what}: mcp-session-id covered iff the header is sent (${e.sessionHeader})`);
    is(label.components.includes('mcp-protocol-version'), e.protocolHeader, `${what}: mcp-protocol-version covered iff the header is sent (${e.protocolHeader})`);
  }
  const initEntry = happy[0];
  is((Object.values(initEntry?.labels ?? {})[0]?.components ?? []).join(' '), '@method @target-uri content-digest',
    'initialize: covers exactly @method @target-uri content-digest');
  ok(happy.every((e) => Object.values(e.labels)[0]?.keyid === init.signed.keyid), 'every request is signed with the key of the initialize request');

  // ---- refusals, on a second session ----------------------------------------

  const init2 = await signedCall(url, 'POST', baseHeaders,
    rpc(10, 'initialize', { protocolVersion: PROTOCOL_VERSION, capabilities: {}, clientInfo: { name: 'mcpsig-e2e', version: '0.0.0' } }));
  expectedVerified += 1;
  is(init2.status, 200, 'second initialize: 200');
  const session2 = init2.headers.get('mcp-session-id') ?? 'missing';
  const s2Headers = { ...baseHeaders, 'MCP-Protocol-Version': version, 'MCP-Session-Id': session2 };
  const notif2 = await signedCall(url, 'POST', s2Headers, rpc(undefined, 'notifications/initialized'));
  expectedVerified += 1;
  is(notif2.status, 202, 'second session: notifications/initialized 202');

  // Body changed after signing.
  const tampered = await signedCall(url, 'POST', s2Headers, rpc(11, 'tools/call', { name: 'echo', arguments: { text: 'signed' } }), {
    mutate: (b) => Buffer.from(b.toString().replace('signed', 'forged')),
  });
  is(tampered.status, 401, 'body changed after signing: 401');
  const tamperedAccept = tampered.headers.get('accept-signature');
  ok(tamperedAccept !== null, 'body changed after signing: 401 carries Accept-Signature');
  if (tamperedAccept !== null) {
    const a = parseAcceptSignature(tamperedAccept);
    is(a.label, 'sig1', 'Accept-Signature asks for label sig1');
    is(a.components.join(' '), '@method @target-uri content-digest mcp-protocol-version mcp-session-id',
      'Accept-Signature on a session request lists all five SEP components');
    is(a.params.join(' '), 'created nonce keyid tag', 'Accept-Signature asks for created, nonce, keyid, tag');
  }
  let errBody = null;
  try {
    errBody = JSON.parse(tampered.text);
  } catch {
    // Reported below.
  }
  ok(errBody && Array.isArray(errBody.errors) && errBody.errors.some((e) => /Content-Digest/.test(e)), '401 body is JSON naming the digest mismatch', tampered.text);

  // Unsigned initialize: the Accept-Signature drops the MCP headers it lacks.
  const unsignedInit = await send('POST', url, baseHeaders, rpc(12, 'initialize', { protocolVersion: PROTOCOL_VERSION, capabilities: {}, clientInfo }));
  is(unsignedInit.status, 401, 'unsigned initialize: 401');
  const unsignedAccept = unsignedInit.headers.get('accept-signature');
  ok(unsignedAccept !== null, 'unsigned initialize: 401 carries Accept-Signature');
  if (unsignedAccept !== null) {
    is(parseAcceptSignature(unsignedAccept).components.join(' '), '@method @target-uri content-digest',
      'Accept-Signature for a request without MCP headers asks only for @method @target-uri content-digest');
  }

  // initialize whose in-band cnf key is not the signing key (a key of
  // another origin stands in for it).
  const foreign = await run(MCPSIG, ['jwk', '--origin', 'https://foreign-origin.example']);
  let foreignJwk = null;
  try {
    foreignJwk = JSON.parse(foreign.stdout);
  } catch {
    // Reported below.
  }
  ok(foreign.code === 0 && foreignJwk !== null, 'mcpsig jwk for a second origin', foreign.stderr);
  const mismatched = await signedCall(url, 'POST', baseHeaders,
    rpc(15, 'initialize', { protocolVersion: PROTOCOL_VERSION, capabilities: {}, clientInfo: { ...clientInfo, cnf: { jwk: foreignJwk } } }));
  is(mismatched.status, 401, 'initialize whose clientInfo.cnf.jwk is not the signing key: 401');

  // Replay: the identical signed request twice.
  const replayBody = rpc(13, 'tools/call', { name: 'echo', arguments: { text: 'once' } });
  const first = await signedCall(url, 'POST', s2Headers, replayBody);
  expectedVerified += 1;
  is(first.status, 200, 'replay: first delivery accepted');
  const again = await send('POST', url, first.headersSent, replayBody);
  is(again.status, 401, 'replay: second delivery of the same signed request refused');
  ok(/replay|already used/.test(again.text), 'replay: the refusal names the replay', again.text);

  // Accept-Signature retry: unsigned, then signed as the server asked.
  const retryBody = rpc(14, 'tools/call', { name: 'echo', arguments: { text: 'after retry' } });
  const bare = await send('POST', url, s2Headers, retryBody);
  is(bare.status, 401, 'retry: unsigned tools/call gets 401');
  const asked = bare.headers.get('accept-signature');
  ok(asked !== null, 'retry: 401 carries Accept-Signature');
  if (asked !== null) {
    const retry = await signedCall(url, 'POST', s2Headers, retryBody, { acceptSignature: asked });
    expectedVerified += 1;
    is(retry.status, 200, 'retry: request signed with --accept-signature succeeds');
    is(resultOf(retry, 14)?.result?.content?.[0]?.text, 'after retry', 'retry: echo result');
    const want = parseAcceptSignature(asked);
    const gotInput = parseDictionary(retry.signed.headers['Signature-Input']);
    ok(gotInput.has(want.label), `retry: signature uses the requested label ${want.label}`, retry.signed.headers['Signature-Input']);
    const member = gotInput.get(want.label);
    if (member) {
      is(member[0].map(([c]) => c).join(' '), want.components.join(' '), 'retry: covers exactly the requested components');
      for (const p of want.params) ok(member[1].has(p), `retry: carries requested parameter ${p}`);
    }
  }

  const del2 = await signedCall(url, 'DELETE', { 'MCP-Protocol-Version': version, 'MCP-Session-Id': session2 }, Buffer.alloc(0));
  expectedVerified += 1;
  is(del2.status, 200, 'second session: DELETE 200');

  s = await stats(base);
  is(s.verified, expectedVerified, `server stats: ${expectedVerified} requests verified in total`);
  is(s.invalid, 1, 'server stats: one invalid signature (the changed body)');
  is(s.unsigned, 2, 'server stats: two unsigned requests');
  is(s.replayed, 1, 'server stats: one replay');
  is(s.unbound, 1, 'server stats: one key mismatch (the foreign cnf key)');
  is(s.rejected, 5, 'server stats: five refusals in total');
}

await runTests('e2e', main, { watchdogMs: WATCHDOG_MS, cleanup });
