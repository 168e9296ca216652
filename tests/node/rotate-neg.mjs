// Key rotation against mcp-server.mjs, played entirely from Node.
//
// A correct signatures/rotateKey must be accepted, and every rotation that
// differs from it in exactly one respect must be refused without touching the
// tag's binding. Each refused case is built by the same function as the
// accepted one plus one mutation, and must be refused for the reason that
// mutation introduces: a case refused for some unrelated defect would prove
// nothing. The requests are signed with lib/sign.mjs, which is first checked
// against the SPEC-NOTES §8 vectors.
//
// Usage: node rotate-neg.mjs. Output is TAP with the plan printed last.

import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ed25519FromSeed, signatureBase, signBase, signRequest, thumbprint } from './lib/sign.mjs';
import { verifyRequest } from './lib/verify.mjs';
import { rpcMessages } from './lib/rpc.mjs';
import { bail, diag, ok, is, done } from './lib/tap.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const PROTOCOL_VERSION = '2025-06-18';
const ACCEPT = 'application/json, text/event-stream';
const HTTP_TIMEOUT_MS = 15_000;
const SERVER_START_MS = 15_000;
// The server exits on its own after 120 s; the test must finish well before.
const SERVER_LIFETIME_S = 120;
const WATCHDOG_MS = 90_000;

// ---- known answers for the signer (SPEC-NOTES §8) --------------------------

const TEST_SEED = Buffer.from('9f8362f87a484a954e6e740c5b4c0e84229139a20aa8ab56ff66586f6a7d29c5', 'hex');
const TEST_X = 'JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs';
const TEST_THUMBPRINT = 'poqkLGiymh_W0uP6PZFw-dvez3QJT5SolqXBCW38r0U';
const CREATED = 1767225600;

const VEC_B26 = {
  request: {
    method: 'POST',
    url: 'https://example.com/foo?param=Value&Pet=dog',
    headers: { Date: 'Tue, 20 Apr 2021 02:07:55 GMT', 'Content-Type': 'application/json', 'Content-Length': '18' },
  },
  components: ['date', '@method', '@path', '@authority', 'content-type', 'content-length'],
  params: new Map([['created', 1618884473], ['keyid', 'test-key-ed25519']]),
  baseLength: 284,
  baseSha256: 'e6402577f54303accfda63dfbde1a7b8c5e5e6f3f7898637b7d78dc07ee1896a',
  signature: 'wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==',
};

const VEC_A = {
  body: '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}',
  nonce: 'AAECAwQFBgcICQoLDA0ODw',
  contentDigest: 'sha-256=:6eKjXjwvtdKgEW/maMG0iUc511YUdfH2erCfHbofIuw=:',
  signatureInput: 'sig1=("@method" "@target-uri" "content-digest" "mcp-protocol-version" "mcp-session-id");created=1767225600;nonce="AAECAwQFBgcICQoLDA0ODw";keyid="poqkLGiymh_W0uP6PZFw-dvez3QJT5SolqXBCW38r0U";tag="poqkLGiymh_W0uP6PZFw-dvez3QJT5SolqXBCW38r0U"',
  signature: 'sig1=:xX3WjizJ9mW9Ncr7T6xi4Z+z+b4AhIVAzArtt92idJtZUbfGBihqG0e5aRh4Xd8IEP+6zol/Dbc5x+FensrqBQ==:',
};

const VEC_B = {
  body: '{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"example-client","version":"1.0.0","cnf":{"jwk":{"kty":"OKP","crv":"Ed25519","x":"JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs"}}}}}',
  nonce: 'EBESExQVFhcYGRobHB0eHw',
  contentDigest: 'sha-256=:SAACw3xSDh9Z6rkrf20rxFSUy3uFzlgM7fjJ6kWrw8o=:',
  signatureAgent: '"data:application/http-message-signatures-directory+json;base64,eyJrZXlzIjpbeyJrdHkiOiJPS1AiLCJjcnYiOiJFZDI1NTE5IiwieCI6IkpyUUxqNVBfODlpWEVTOS12RmdySXkyOWNsRjlDQ19vUFBzdzNjNUQwYnMifV19"',
  signatureInput: 'sig1=("@method" "@target-uri" "content-digest");created=1767225600;nonce="EBESExQVFhcYGRobHB0eHw";keyid="poqkLGiymh_W0uP6PZFw-dvez3QJT5SolqXBCW38r0U";tag="poqkLGiymh_W0uP6PZFw-dvez3QJT5SolqXBCW38r0U"',
  signature: 'sig1=:Tmznhw8YYR2UEztSNJ/kmH8J6KB0F/tRYL8f2oYK8EUaKoEZ4KmjqbXQduZbYejWSwaeeofatfzS8zGy3z9bAg==:',
};

async function checkSigner() {
  const testKey = ed25519FromSeed(TEST_SEED);
  is(testKey.jwk.x, TEST_X, 'sign.mjs: ed25519FromSeed gives the §8.1 public key');
  is(await thumbprint(testKey.jwk), TEST_THUMBPRINT, 'sign.mjs: thumbprint of the §8.1 key');

  const base = signatureBase(VEC_B26.request, VEC_B26.components, VEC_B26.params);
  is(Buffer.byteLength(base), VEC_B26.baseLength, 'sign.mjs: RFC 9421 B.2.6 base length');
  is(crypto.createHash('sha256').update(base).digest('hex'), VEC_B26.baseSha256, 'sign.mjs: RFC 9421 B.2.6 base SHA-256');
  is(signBase(testKey.privateKey, base).toString('base64'), VEC_B26.signature, 'sign.mjs: RFC 9421 B.2.6 signature');

  const signer = { label: 'sig1', privateKey: testKey.privateKey, jwk: testKey.jwk, tag: TEST_THUMBPRINT, created: CREATED };
  const a = await signRequest({
    method: 'POST',
    url: 'https://mcp.example.com/mcp',
    headers: { 'Content-Type': 'application/json', 'MCP-Protocol-Version': '2025-06-18', 'MCP-Session-Id': 'sess-4f9c2a' },
    body: VEC_A.body,
  }, [{ ...signer, nonce: VEC_A.nonce }]);
  is(a['content-digest'], VEC_A.contentDigest, 'sign.mjs: §8.6(a) Content-Digest');
  is(a['signature-input'], VEC_A.signatureInput, 'sign.mjs: §8.6(a) Signature-Input');
  is(a.signature, VEC_A.signature, 'sign.mjs: §8.6(a) Signature');

  const b = await signRequest({
    method: 'POST',
    url: 'https://mcp.example.com/mcp',
    headers: { 'Content-Type': 'application/json' },
    body: VEC_B.body,
  }, [{ ...signer, nonce: VEC_B.nonce }]);
  is(b['content-digest'], VEC_B.contentDigest, 'sign.mjs: §8.6(b) Content-Digest');
  is(b['signature-input'], VEC_B.signatureInput, 'sign.mjs: §8.6(b) Signature-Input');
  is(b.signature, VEC_B.signature, 'sign.mjs: §8.6(b) Signature');
  is(b['signature-agent'], VEC_B.signatureAgent, 'sign.mjs: §8.6(b) Signature-Agent');

  // The verifier's per-label keys, which the server's rotation check relies
  // on: each label is judged by its own key only.
  const k1 = ed25519FromSeed(crypto.randomBytes(32));
  const k2 = ed25519FromSeed(crypto.randomBytes(32));
  const request = {
    method: 'POST',
    url: 'https://mcp.example.com/mcp',
    headers: { 'content-type': 'application/json', 'mcp-protocol-version': PROTOCOL_VERSION, 'mcp-session-id': 's' },
    body: '{}',
  };
  const tag = await thumbprint(k1.jwk);
  Object.assign(request.headers, await signRequest(request, [
    { label: 'sig-old', privateKey: k1.privateKey, jwk: k1.jwk, tag },
    { label: 'sig-new', privateKey: k2.privateKey, jwk: k2.jwk, tag },
  ]));
  const expectLabels = ['sig-old', 'sig-new'];
  let r = await verifyRequest(request, { keys: { 'sig-old': k1.jwk, 'sig-new': k2.jwk }, expectLabels });
  ok(r.ok, 'verify.mjs: a two-key request verifies with one key per label', r.errors.join('\n'));
  r = await verifyRequest(request, { keys: { 'sig-old': k2.jwk, 'sig-new': k1.jwk }, expectLabels });
  ok(!r.ok && r.labels['sig-old'].errors.length > 0 && r.labels['sig-new'].errors.length > 0,
    'verify.mjs: with the keys swapped both labels fail on their own', r.errors.join('\n'));
  r = await verifyRequest(request, { keys: { 'sig-old': k1.jwk, 'sig-new': null }, expectLabels });
  ok(!r.ok && r.labels['sig-old'].errors.length === 0 && r.errors.length === r.labels['sig-new'].errors.length
    && r.errors.some((e) => /no key is acceptable for sig-new/.test(e)),
  'verify.mjs: a label given no key fails alone', r.errors.join('\n'));
  r = await verifyRequest(request, { keys: { 'sig-old': k1.jwk, 'sig-new': k2.jwk }, expectLabels: ['sig-old', 'sig-x'] });
  ok(r.errors.some((e) => /label sig-x is absent/.test(e)) && r.errors.some((e) => /label sig-new is not expected/.test(e)),
    'verify.mjs: expectLabels names a missing and an unexpected label', r.errors.join('\n'));
}

// ---- talking to the server -------------------------------------------------

let serverProc = null;
const serverLog = [];
let url = null;
let base = null;

function startServer() {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [path.join(HERE, 'mcp-server.mjs'), '0', '--lifetime', String(SERVER_LIFETIME_S)], {
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
    proc.stderr.on('data', (chunk) => serverLog.push(...chunk.split('\n').filter(Boolean)));
    proc.on('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`mcp-server exited early (${code ?? signal})`));
    });
  });
}

function stopServer() {
  if (serverProc && serverProc.exitCode === null) serverProc.kill('SIGTERM');
}

// Sends one request. A connection the server drops comes back as
// { dropped: true } instead of throwing, since some faults do exactly that.
async function send(headers, body) {
  let res;
  try {
    res = await fetch(url, { method: 'POST', headers, body, signal: AbortSignal.timeout(HTTP_TIMEOUT_MS) });
  } catch (e) {
    if (e.name === 'TimeoutError') throw e;
    return { dropped: true, status: null, error: String(e.cause?.message ?? e.message), messages: [], json: null, text: '' };
  }
  const text = await res.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    // SSE or empty bodies are read through `messages`.
  }
  return { dropped: false, status: res.status, headers: res.headers, text, json, messages: rpcMessages(res.headers.get('content-type'), text) };
}

async function stats() {
  const res = await fetch(`${base}/__stats`, { signal: AbortSignal.timeout(HTTP_TIMEOUT_MS) });
  return res.json();
}

async function setFault(fault) {
  const res = await fetch(`${base}/__fault`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(fault),
    signal: AbortSignal.timeout(HTTP_TIMEOUT_MS),
  });
  await res.arrayBuffer();
  return res.status;
}

function mcpHeaders(session) {
  const headers = { 'content-type': 'application/json', accept: ACCEPT, 'mcp-protocol-version': PROTOCOL_VERSION };
  if (session !== undefined) headers['mcp-session-id'] = session;
  return headers;
}

let rpcId = 0;

async function signedSend(headers, message, signers) {
  const body = Buffer.from(JSON.stringify(message));
  const signed = await signRequest({ method: 'POST', url, headers, body }, signers);
  return send({ ...headers, ...signed }, body);
}

// A client of the server: a key, the tag it signs under, and its session.
async function client(key, name) {
  const tag = await thumbprint(key.jwk);
  const c = { name, key, tag, keyid: tag, session: null };
  const signer = () => [{ label: 'sig1', privateKey: c.key.privateKey, jwk: c.key.jwk, tag: c.tag }];
  const initHeaders = { 'content-type': 'application/json', accept: ACCEPT };
  const init = await signedSend(initHeaders, {
    jsonrpc: '2.0',
    id: ++rpcId,
    method: 'initialize',
    params: { protocolVersion: PROTOCOL_VERSION, capabilities: {}, clientInfo: { name: `rotate-neg-${name}`, version: '0.0.0' } },
  }, signer());
  c.session = init.headers?.get('mcp-session-id') ?? undefined;
  if (init.status !== 200 || !c.session) throw new Error(`initialize for ${name} failed: ${init.status} ${init.text}`);
  const notified = await signedSend(mcpHeaders(c.session), { jsonrpc: '2.0', method: 'notifications/initialized' }, signer());
  if (notified.status !== 202) throw new Error(`notifications/initialized for ${name} failed: ${notified.status} ${notified.text}`);
  return c;
}

// tools/list in a client's session, signed by `key` under the client's tag.
function listTools(c, key) {
  return signedSend(mcpHeaders(c.session), { jsonrpc: '2.0', id: ++rpcId, method: 'tools/list', params: {} },
    [{ label: 'sig1', privateKey: key.privateKey, jwk: key.jwk, tag: c.tag }]);
}

// The correct rotation of client c to key `next`, as a plan a case may mutate
// before it is signed and sent.
function rotation(c, next) {
  return {
    session: c.session,
    message: { jsonrpc: '2.0', id: ++rpcId, method: 'signatures/rotateKey', params: { newKey: next.jwk } },
    signers: [
      { label: 'sig-old', privateKey: c.key.privateKey, jwk: c.key.jwk, tag: c.tag },
      { label: 'sig-new', privateKey: next.privateKey, jwk: next.jwk, tag: c.tag },
    ],
    afterSign: null,
  };
}

async function sendRotation(plan) {
  const headers = mcpHeaders(plan.session);
  const body = Buffer.from(JSON.stringify(plan.message));
  const signed = await signRequest({ method: 'POST', url, headers, body }, plan.signers);
  let request = { headers: { ...headers, ...signed }, body };
  if (plan.afterSign) request = plan.afterSign(request);
  const res = await send(request.headers, request.body);
  return { ...res, request };
}

function errorsOf(res) {
  return Array.isArray(res.json?.errors) ? res.json.errors : [];
}

// ---- the cases -------------------------------------------------------------

async function main() {
  await checkSigner();

  const port = await startServer();
  base = `http://127.0.0.1:${port}`;
  url = `${base}/mcp`;
  diag(`server on ${url}`);

  // k1 is fixed so that a failure reproduces with the same keyids.
  const k1 = ed25519FromSeed(crypto.createHash('sha256').update('mcpsig rotate-neg k1').digest());
  const k2 = ed25519FromSeed(crypto.randomBytes(32));
  const k3 = ed25519FromSeed(crypto.randomBytes(32));
  const k1id = await thumbprint(k1.jwk);
  const k2id = await thumbprint(k2.jwk);
  const k3id = await thumbprint(k3.jwk);

  const a = await client(k1, 'a');
  const other = await client(ed25519FromSeed(crypto.randomBytes(32)), 'other');
  let s = await stats();
  is(s.bindings[a.tag], k1id, 'initialize binds tag T = thumbprint(k1) to k1');
  is(s.bindings[other.tag], other.keyid, 'a second client gets a binding of its own');
  const initEntry = s.requests.find((e) => e.rpc.includes('initialize') && e.tag === a.tag);
  ok(initEntry && initEntry.keyids.join() === k1id && typeof initEntry.at === 'number',
    '/__stats request entries carry keyids, tag and at', JSON.stringify(initEntry));
  const rotationsBefore = s.rotations.length;

  // Sessions belong to a tag: a well-signed request under another tag may not
  // use them.
  const intruder = await signedSend(mcpHeaders(a.session), { jsonrpc: '2.0', id: ++rpcId, method: 'tools/list', params: {} },
    [{ label: 'sig1', privateKey: other.key.privateKey, jwk: other.key.jwk, tag: other.tag }]);
  ok(intruder.status === 401 && intruder.json?.reason === 'unbound'
    && errorsOf(intruder).some((e) => e.includes(`is bound to tag ${a.tag}`)),
  "a request signed under another tag is refused in T's session", intruder.text);

  const k2Private = k2.privateKey.export({ format: 'jwk' });
  const cases = [
    {
      name: 'sig-new made by k3 while params.newKey announces k2',
      mutate: (p) => { p.signers[1] = { ...p.signers[1], privateKey: k3.privateKey, jwk: k3.jwk }; },
      status: 401, reason: 'invalid', error: /sig-new keyid .* is not the RFC 7638 thumbprint of params\.newKey/,
    },
    {
      name: 'sig-new claims k2 but is made with k3',
      mutate: (p) => { p.signers[1].privateKey = k3.privateKey; },
      status: 401, reason: 'invalid', error: /^sig-new: signature does not verify/,
    },
    {
      name: 'sig-new carries another tag',
      mutate: (p) => { p.signers[1].tag = k2id; },
      status: 401, reason: 'invalid', error: /sig-new tag .* differs from sig-old tag/,
    },
    {
      name: 'sig-old missing',
      mutate: (p) => { p.signers = [p.signers[1]]; },
      status: 401, reason: 'invalid', error: /label sig-old is absent/,
    },
    {
      name: 'sig-new missing',
      mutate: (p) => { p.signers = [p.signers[0]]; },
      status: 401, reason: 'invalid', error: /label sig-new is absent/,
    },
    {
      name: 'both signatures carry the same nonce',
      mutate: (p) => {
        const nonce = crypto.randomBytes(16).toString('base64url');
        for (const signer of p.signers) signer.nonce = nonce;
      },
      status: 401, reason: 'replayed', error: /already used/,
    },
    {
      name: 'sig-old made by k3, which the tag is not bound to, though Signature-Agent announces it',
      mutate: (p) => { p.signers[0] = { ...p.signers[0], privateKey: k3.privateKey, jwk: k3.jwk }; },
      status: 401, reason: 'unbound', error: new RegExp(`sig-old: tag .* is bound to key ${k1id}, not ${k3id}`),
    },
    {
      name: 'sig-old claims k1 but is made with k3',
      mutate: (p) => { p.signers[0].privateKey = k3.privateKey; },
      status: 401, reason: 'invalid', error: /^sig-old: signature does not verify/,
    },
    {
      name: 'labels swapped: sig-old by k2, sig-new by k1',
      mutate: (p) => { [p.signers[0].label, p.signers[1].label] = [p.signers[1].label, p.signers[0].label]; },
      status: 401, reason: 'unbound', error: new RegExp(`sig-old: tag .* is bound to key ${k1id}, not ${k2id}`),
    },
    {
      name: 'labels sig1 and sig2 instead of sig-old and sig-new',
      mutate: (p) => { p.signers[0].label = 'sig1'; p.signers[1].label = 'sig2'; },
      status: 401, reason: 'invalid', error: /label sig-old is absent/,
    },
    {
      name: 'body changed after signing',
      mutate: (p) => {
        p.afterSign = (r) => ({ ...r, body: Buffer.from(r.body.toString().replace(`"id":${p.message.id}`, `"id":${p.message.id + 1000}`)) });
      },
      status: 401, reason: 'invalid', error: /Content-Digest sha-256 mismatch/,
    },
    {
      name: 'params.newKey is the key already bound',
      mutate: (p) => {
        p.message.params.newKey = k1.jwk;
        p.signers[1] = { ...p.signers[1], privateKey: k1.privateKey, jwk: k1.jwk };
      },
      status: 401, reason: 'invalid', error: /params\.newKey is the key already bound/,
    },
    {
      name: 'params.newKey carries the private key',
      mutate: (p) => { p.message.params.newKey = { ...k2.jwk, d: k2Private.d }; },
      status: 401, reason: 'invalid', error: /params\.newKey carries private members: d/,
    },
    {
      name: 'params.newKey is not a signing key type',
      mutate: (p) => { p.message.params.newKey = { ...k2.jwk, crv: 'X25519' }; },
      status: 401, reason: 'invalid', error: /params\.newKey is not a supported key type/,
    },
    {
      name: 'no Mcp-Session-Id',
      mutate: (p) => { p.session = undefined; },
      status: 400, rpcError: /Mcp-Session-Id header is required/,
    },
    {
      name: 'a session that does not exist',
      mutate: (p) => { p.session = crypto.randomUUID(); },
      status: 404, rpcError: /Session not found/,
    },
    {
      name: "another tag's session",
      mutate: (p) => { p.session = other.session; },
      status: 401, reason: 'unbound', error: new RegExp(`session .* is bound to tag ${other.tag}, rotation is for tag ${a.tag}`),
    },
    {
      name: 'params.newKey missing',
      mutate: (p) => { delete p.message.params.newKey; },
      status: 200, rpcError: /newKey/, rpcCode: -32602,
    },
    {
      name: 'params.newKey is a string',
      mutate: (p) => { p.message.params.newKey = k2id; },
      status: 200, rpcError: /newKey/, rpcCode: -32602,
    },
  ];

  for (const c of cases) {
    const plan = rotation(a, k2);
    c.mutate(plan);
    const res = await sendRotation(plan);
    const what = `refused rotation, ${c.name}`;
    is(res.status, c.status, `${what}: HTTP ${c.status}`);
    if (c.reason) {
      is(res.json?.reason, c.reason, `${what}: reason "${c.reason}"`);
      ok(errorsOf(res).some((e) => c.error.test(e)), `${what}: the errors name it`, () => `no error matches ${c.error}:\n${res.text}`);
      ok(res.headers?.get('accept-signature') !== null, `${what}: 401 carries Accept-Signature`);
    } else {
      ok(c.rpcError.test(res.json?.error?.message ?? '') && (c.rpcCode === undefined || res.json?.error?.code === c.rpcCode),
        `${what}: JSON-RPC error${c.rpcCode === undefined ? '' : ` ${c.rpcCode}`} names it`, res.text);
      ok(res.json?.result === undefined, `${what}: no result`, res.text);
    }
    s = await stats();
    ok(s.bindings[a.tag] === k1id && s.bindings[other.tag] === other.keyid && !s.retired.includes(k1id)
      && s.rotations.length === rotationsBefore,
    `${what}: bindings, retired keys and rotations unchanged`, () => JSON.stringify({ bindings: s.bindings, retired: s.retired, rotations: s.rotations }));
  }

  // ---- the unmutated rotation, in the same session, is accepted -------------

  const beforeRotation = Date.now();
  const accepted = await sendRotation(rotation(a, k2));
  is(accepted.status, 200, 'correct rotation k1 -> k2: 200');
  ok((accepted.headers?.get('content-type') ?? '').startsWith('application/json'), 'correct rotation: application/json reply by default');
  const reply = accepted.messages[0];
  ok(reply?.id === rpcId && reply?.result?.tag === a.tag && reply?.result?.keyid === k2id,
    'correct rotation: JSON-RPC result { tag: T, keyid: thumbprint(k2) } for the same id', accepted.text);
  s = await stats();
  is(s.bindings[a.tag], k2id, 'after rotation: T is bound to k2');
  ok(s.retired.includes(k1id), 'after rotation: k1 is retired');
  const rec = s.rotations[s.rotations.length - 1];
  ok(s.rotations.length === rotationsBefore + 1 && rec?.tag === a.tag && rec?.old_keyid === k1id && rec?.new_keyid === k2id
    && rec?.at >= beforeRotation && rec?.at <= Date.now(),
  'after rotation: /__stats records { tag, old_keyid, new_keyid, at }', JSON.stringify(s.rotations));
  const rotEntry = s.requests.filter((e) => e.rpc.includes('signatures/rotateKey')).pop();
  ok(rotEntry?.ok && rotEntry.keyids.join() === `${k1id},${k2id}` && rotEntry.tag === a.tag && typeof rotEntry.at === 'number',
    'after rotation: the request entry lists keyids [k1, k2] in label order, the tag and at', JSON.stringify(rotEntry));

  const oldKey = await listTools(a, k1);
  is(oldKey.status, 401, 'after rotation: tools/list in the session signed by k1 is refused');
  ok(['retired', 'unbound'].includes(oldKey.json?.reason), 'after rotation: refusal reason is "retired" or "unbound"', oldKey.text);
  const newKey = await listTools(a, k2);
  is(newKey.status, 200, 'after rotation: the same session works with k2');
  ok(newKey.messages.some((m) => m.result?.tools?.some((t) => t.name === 'echo')), 'after rotation: tools/list answers under k2', newKey.text);

  const replay = await send(accepted.request.headers, accepted.request.body);
  is(replay.status, 401, 'after rotation: the accepted rotateKey sent again is refused');
  is(replay.json?.reason, 'retired', 'after rotation: its sig-old key is now retired');

  // A retired key is refused under any tag, here a first-contact initialize.
  const freshTag = await signedSend({ 'content-type': 'application/json', accept: ACCEPT }, {
    jsonrpc: '2.0', id: ++rpcId, method: 'initialize',
    params: { protocolVersion: PROTOCOL_VERSION, capabilities: {}, clientInfo: { name: 'rotate-neg-retired', version: '0.0.0' } },
  }, [{ label: 'sig1', privateKey: k1.privateKey, jwk: k1.jwk, tag: 'rotate-neg-another-tag' }]);
  is(freshTag.status, 401, 'retired k1 under a new tag: refused');
  is(freshTag.json?.reason, 'retired', 'retired k1 under a new tag: reason "retired"');
  s = await stats();
  ok(!('rotate-neg-another-tag' in s.bindings), 'retired k1 under a new tag: no binding is made');

  // The retired key may not come back as a rotation's new key either.
  a.key = k2;
  const back = await sendRotation(rotation(a, k1));
  ok(back.status === 401 && back.json?.reason === 'retired' && errorsOf(back).some((e) => /was retired/.test(e)),
    'rotation back to the retired k1: refused as retired', back.text);

  const again = await sendRotation(rotation(a, k3));
  ok(again.status === 200 && again.messages[0]?.result?.keyid === k3id, 'a second rotation k2 -> k3 is accepted', again.text);
  s = await stats();
  ok(s.bindings[a.tag] === k3id && s.retired.includes(k2id), 'after the second rotation: T is bound to k3, k2 is retired');

  await faults();
}

// ---- server fault modes ------------------------------------------------------

async function faults() {
  const keys = Array.from({ length: 5 }, () => ed25519FromSeed(crypto.randomBytes(32)));
  const ids = await Promise.all(keys.map((k) => thumbprint(k.jwk)));
  const c = await client(keys[0], 'faults');
  let s = await stats();
  let rotations = s.rotations.length;

  is(await setFault({ rotate: 'sometimes' }), 400, '/__fault: an unknown mode is refused with 400');
  is(await setFault({ reject_all: 'yes' }), 400, '/__fault: reject_all must be a boolean');

  const notApplied = [
    ['http-403', (r) => r.status === 403],
    ['http-500', (r) => r.status === 500],
    ['error', (r) => r.status === 200 && typeof r.json?.error?.code === 'number' && r.json?.result === undefined],
    ['drop-before', (r) => r.dropped],
  ];
  for (const [mode, expected] of notApplied) {
    is(await setFault({ rotate: mode }), 204, `/__fault rotate=${mode}: 204`);
    const res = await sendRotation(rotation(c, keys[1]));
    ok(expected(res), `fault ${mode}: the client sees it`, JSON.stringify({ status: res.status, dropped: res.dropped, text: res.text }));
    s = await stats();
    ok(s.bindings[c.tag] === ids[0] && s.rotations.length === rotations, `fault ${mode}: the rotation is not applied`);
  }

  is(await setFault({ rotate: 'drop-after' }), 204, '/__fault rotate=drop-after: 204');
  const dropped = await sendRotation(rotation(c, keys[1]));
  ok(dropped.dropped, 'fault drop-after: the connection is dropped without a reply', JSON.stringify(dropped));
  s = await stats();
  ok(s.bindings[c.tag] === ids[1] && s.rotations.length === rotations + 1 && s.retired.includes(ids[0]),
    'fault drop-after: the rotation is applied all the same');
  rotations += 1;
  c.key = keys[1];

  is(await setFault({ rotate: 'sse' }), 204, '/__fault rotate=sse: 204');
  const sse = await sendRotation(rotation(c, keys[2]));
  ok(sse.status === 200 && (sse.headers.get('content-type') ?? '').startsWith('text/event-stream'), 'fault sse: 200 text/event-stream');
  ok(/^event: message\ndata: /.test(sse.text) && sse.messages.length === 1 && sse.messages[0].result?.keyid === ids[2],
    'fault sse: one message event carrying the result', sse.text);
  c.key = keys[2];

  const plain = await sendRotation(rotation(c, keys[3]));
  ok(plain.status === 200 && (plain.headers.get('content-type') ?? '').startsWith('application/json') && plain.json?.result?.keyid === ids[3],
    'faults are one-shot: the next rotation is a plain JSON reply', plain.text);
  c.key = keys[3];
  s = await stats();
  is(s.bindings[c.tag], ids[3], 'after the fault sequence the tag is bound to the last new key');

  is(await setFault({ reject_all: true }), 204, '/__fault reject_all=true: 204');
  const refused = await listTools(c, c.key);
  is(refused.status, 503, 'reject_all: a correctly signed request gets 503');
  is(await setFault({ reject_all: false }), 204, '/__fault reject_all=false: 204');
  const served = await listTools(c, c.key);
  is(served.status, 200, 'reject_all cleared: requests are served again');
}

const watchdog = setTimeout(() => {
  console.log(`Bail out! rotate-neg did not finish within ${WATCHDOG_MS / 1000} s`);
  stopServer();
  process.exit(1);
}, WATCHDOG_MS);
watchdog.unref();

try {
  await main();
} catch (e) {
  stopServer();
  for (const line of serverLog) diag(`server: ${line}`);
  bail(String(e.message ?? e).split('\n')[0]);
}
stopServer();
done();
if (process.exitCode) for (const line of serverLog) diag(`server: ${line}`);
