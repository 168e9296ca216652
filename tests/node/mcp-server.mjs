// A small MCP server that demands SEP-2752 signatures, for end-to-end tests.
//
// It is built from the official MCP SDK (Streamable HTTP, stateful sessions)
// on plain node:http. Every /mcp request is read in full, checked with the
// independent verifier in lib/verify.mjs, and only then handed to the SDK
// together with the already-read body, so the bytes that were verified are the
// bytes that are processed. A failed check gets 401 with an Accept-Signature
// field, as SEP-2752 §3.3 describes.
//
// Keys are bound to tags on first use: the first verified request carrying a
// tag binds it to the key that signed it, and from then on that tag is only
// accepted under that key. Sessions belong to the tag that initialized them,
// so they survive a key rotation. `signatures/rotateKey` (SEP-2752 §3.4) is
// answered here, not by the SDK: it moves a tag to a new key and retires the
// old one.
//
// Usage: node mcp-server.mjs [PORT] [--lifetime SECONDS] [--json-response] [--sse-rotate]
// Prints "PORT <n>" on stdout once listening on 127.0.0.1. These endpoints
// are unauthenticated and exist only for tests:
//   GET /__stats   verification counters, bindings, retired keys, rotations,
//                  and a log of every /mcp request
//   POST /__fault  {"rotate": MODE} makes the next rotateKey request fail in
//                  one of the ways in ROTATE_FAULTS; {"reject_all": true}
//                  answers every /mcp request with 503 until set to false

import http from 'node:http';
import crypto from 'node:crypto';
import { serializeDictionary, parseDictionary, isInnerList } from 'structured-headers';
import { calculateJwkThumbprint } from 'jose';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { CallToolRequestSchema, ListToolsRequestSchema, isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';
import { verifyRequest, algorithmForJwk, publicJwk, PRIVATE_MEMBERS } from './lib/verify.mjs';

const args = process.argv.slice(2);
let port = 0;
let lifetimeSeconds = 300;
let jsonResponse = false;
let sseRotate = false;
for (let i = 0; i < args.length; i += 1) {
  if (args[i] === '--lifetime') lifetimeSeconds = Number(args[++i]);
  else if (args[i] === '--json-response') jsonResponse = true;
  else if (args[i] === '--sse-rotate') sseRotate = true;
  else if (/^\d+$/.test(args[i])) port = Number(args[i]);
  else {
    console.error(`mcp-server: unknown argument ${args[i]}`);
    process.exit(2);
  }
}

// Limits keep a misbehaving test from wedging the server.
const MAX_BODY_BYTES = 4 * 1024 * 1024;
const BODY_TIMEOUT_MS = 10_000;
// SEP-2752 §2.3: remember (tag, nonce) for the 300 s window plus 60 s of
// future skew, with margin: 660 s.
const REPLAY_WINDOW_SECONDS = 660;

const stats = {
  verified: 0,
  rejected: 0,
  unsigned: 0,
  invalid: 0,
  replayed: 0,
  // Refusals for reason "retired" are counted here too: a retired key is one
  // no tag is bound to any more. Each request entry names its own reason.
  unbound: 0,
  requests: [],
  rotations: [],
};

const replayCache = new Map();
const sessions = new Map();
// tag -> { keyid, jwk }: the key each tag was first seen with, or the key a
// rotation moved it to. Only public members are kept.
const bindings = new Map();
// Keyids replaced by a rotation; they are refused under any tag.
const retired = new Set();

// One-shot faults for the next signatures/rotateKey request, so that tests
// can reach every outcome a client must handle, including not knowing it.
const ROTATE_FAULTS = new Set(['drop-before', 'drop-after', 'error', 'http-403', 'http-500', 'sse']);
let rotateFault = null;
let rejectAll = false;

function pruneReplayCache(now) {
  for (const [key, expiry] of replayCache) {
    if (expiry < now) replayCache.delete(key);
  }
}

// Claims each (tag, nonce) pair in order and returns those already seen. A
// pair is recorded before the next one is checked, so two signatures of one
// request that share a nonce are a replay (SPEC-NOTES §9 point 9).
function claimNonces(labels) {
  const now = Math.floor(Date.now() / 1000);
  pruneReplayCache(now);
  const replayed = [];
  for (const l of labels) {
    const pair = `${l.tag}\n${l.nonce}`;
    if (replayCache.has(pair)) replayed.push(`(${l.tag}, ${l.nonce})`);
    else replayCache.set(pair, now + REPLAY_WINDOW_SECONDS);
  }
  return replayed;
}

// The labels of a Signature-Input with their claimed keyid and tag, read
// before verification only to choose keys. Nothing here is trusted; a field
// that does not parse yields no labels and the verifier reports it.
function peekLabels(headers) {
  const out = new Map();
  try {
    for (const [label, member] of parseDictionary(headers['signature-input'] ?? '')) {
      const params = isInnerList(member) ? member[1] : new Map();
      const text = (name) => (typeof params.get(name) === 'string' ? params.get(name) : null);
      out.set(label, { keyid: text('keyid'), tag: text('tag') });
    }
  } catch {
    out.clear();
  }
  return out;
}

// A label whose tag is bound and whose keyid is the bound key is verified with
// the bound key, whatever Signature-Agent says. Other labels are verified from
// Signature-Agent and then refused by bindingProblems if their tag is bound
// to another key.
function boundKeysFor(peeked) {
  const keys = {};
  for (const [label, { keyid, tag }] of peeked) {
    const binding = tag !== null ? bindings.get(tag) : undefined;
    if (binding && binding.keyid === keyid) keys[label] = binding.jwk;
  }
  return keys;
}

// Checks verified labels against the bindings. Returns the refusal (reason
// and errors) or null, and the bindings this request would create.
function bindingProblems(labels) {
  const fresh = new Map();
  const errors = [];
  let reason = null;
  for (const [label, l] of Object.entries(labels)) {
    if (retired.has(l.keyid)) {
      errors.push(`${label}: key ${l.keyid} was retired by a key rotation`);
      reason = 'retired';
      continue;
    }
    const bound = bindings.get(l.tag) ?? fresh.get(l.tag);
    if (!bound) fresh.set(l.tag, { keyid: l.keyid, jwk: publicJwk(l.jwk) });
    else if (bound.keyid !== l.keyid) {
      errors.push(`${label}: tag ${l.tag} is bound to key ${bound.keyid}, not ${l.keyid}`);
      reason ??= 'unbound';
    }
  }
  return { refusal: errors.length ? { reason, errors } : null, fresh };
}

function statsSnapshot() {
  return {
    ...stats,
    bindings: Object.fromEntries([...bindings].map(([tag, b]) => [tag, b.keyid])),
    retired: [...retired],
  };
}

// The components this server wants for a given request (SEP-2752 §2.1): the
// MCP headers only when the request carries them.
function acceptSignatureFor(headers) {
  const components = ['@method', '@target-uri', 'content-digest'];
  if (headers['mcp-protocol-version'] !== undefined) components.push('mcp-protocol-version');
  if (headers['mcp-session-id'] !== undefined) components.push('mcp-session-id');
  return serializeDictionary(new Map([[
    'sig1',
    [components.map((c) => [c, new Map()]), new Map([['created', true], ['nonce', true], ['keyid', true], ['tag', true]])],
  ]]));
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    const timer = setTimeout(() => {
      reject(Object.assign(new Error('request body not received in time'), { status: 408 }));
      req.destroy();
    }, BODY_TIMEOUT_MS);
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        clearTimeout(timer);
        reject(Object.assign(new Error('request body too large'), { status: 413 }));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
    req.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

function sendJson(res, status, body, headers = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

function createMcpServer() {
  const server = new Server(
    { name: 'mcpsig-test-server', version: '0.0.0' },
    { capabilities: { tools: {} } },
  );
  server.setRequestHandler(ListToolsRequestSchema, async () => ({
    tools: [{
      name: 'echo',
      description: 'Returns the text it is given',
      inputSchema: { type: 'object', properties: { text: { type: 'string' } }, required: ['text'] },
    }],
  }));
  server.setRequestHandler(CallToolRequestSchema, async (request) => {
    if (request.params.name !== 'echo') {
      return { isError: true, content: [{ type: 'text', text: `unknown tool ${request.params.name}` }] };
    }
    const text = request.params.arguments?.text;
    if (typeof text !== 'string') {
      return { isError: true, content: [{ type: 'text', text: 'echo needs a string "text"' }] };
    }
    return { content: [{ type: 'text', text }] };
  });
  return server;
}

function rpcMethods(parsed) {
  const list = Array.isArray(parsed) ? parsed : [parsed];
  return list.filter((m) => m && typeof m === 'object').map((m) => m.method ?? (m.result !== undefined ? 'result' : 'error'));
}

function isObject(value) {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function rpcResponse(res, message, sse, extraHeaders = {}) {
  const text = JSON.stringify(message);
  if (!sse) {
    sendJson(res, 200, message, extraHeaders);
    return;
  }
  const event = `event: message\ndata: ${text}\n\n`;
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', 'content-length': Buffer.byteLength(event), ...extraHeaders });
  res.end(event);
}

async function handleMcp(req, res) {
  const entry = {
    seq: stats.requests.length + 1,
    method: req.method,
    url: null,
    rpc: [],
    sessionHeader: req.headers['mcp-session-id'] !== undefined,
    protocolHeader: req.headers['mcp-protocol-version'] !== undefined,
    ok: false,
    reason: null,
    errors: [],
    labels: {},
    keyids: [],
    tag: null,
    at: null,
    status: null,
  };
  stats.requests.push(entry);
  res.on('finish', () => {
    entry.status = res.statusCode;
  });

  let body;
  try {
    body = await readBody(req);
  } catch (e) {
    entry.reason = 'body';
    entry.errors = [e.message];
    if (!res.headersSent) sendJson(res, e.status ?? 400, { error: 'bad_request', message: e.message });
    return;
  }

  if (rejectAll) {
    entry.reason = 'unavailable';
    sendJson(res, 503, { error: 'unavailable', message: 'server is refusing all requests (test fault)' });
    return;
  }

  const headers = {};
  for (const [name, value] of Object.entries(req.headers)) {
    headers[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  // The target URI as this server sees it; a client must sign exactly this.
  const host = (headers.host ?? '').toLowerCase();
  entry.url = `http://${host}${req.url}`;

  let parsed;
  if (body.length > 0) {
    try {
      parsed = JSON.parse(body.toString('utf8'));
      entry.rpc = rpcMethods(parsed);
    } catch {
      parsed = undefined;
    }
  }

  const reject = (reason, errors) => {
    entry.reason = reason;
    entry.errors = errors;
    stats.rejected += 1;
    stats[reason === 'retired' ? 'unbound' : reason] += 1;
    console.error(`mcp-server: #${entry.seq} ${req.method} rejected (${reason}): ${errors.join('; ')}`);
    sendJson(res, 401, { error: reason === 'unsigned' ? 'signature_required' : 'invalid_signature', reason, errors },
      { 'accept-signature': acceptSignatureFor(headers) });
  };

  const verify = async (options) => {
    const result = await verifyRequest({ method: req.method, url: entry.url, headers, body }, options);
    entry.at = Date.now();
    for (const [label, info] of Object.entries(result.labels)) {
      entry.labels[label] = { components: info.components, params: info.params, keyid: info.keyid, tag: info.tag, nonce: info.nonce, created: info.created };
    }
    entry.tag = Object.values(result.labels).find((l) => l.tag !== null)?.tag ?? null;
    if (result.ok) entry.keyids = Object.values(result.labels).map((l) => l.keyid);
    const unsigned = headers['signature-input'] === undefined && headers.signature === undefined;
    return { result, unsigned };
  };

  const ctx = { req, res, entry, headers, body, parsed, reject, verify };
  if (req.method === 'POST' && isObject(parsed) && parsed.method === 'signatures/rotateKey') {
    await handleRotate(ctx);
    return;
  }

  const { result, unsigned } = await verify({ keys: boundKeysFor(peekLabels(headers)) });
  if (!result.ok) {
    reject(unsigned ? 'unsigned' : 'invalid', result.errors);
    return;
  }

  // Replay protection (SEP-2752 §2.3): a (tag, nonce) pair is accepted once.
  const replayed = claimNonces(Object.values(result.labels));
  if (replayed.length) {
    reject('replayed', [`(tag, nonce) already used: ${replayed.join('; ')}`]);
    return;
  }

  const { refusal, fresh } = bindingProblems(result.labels);
  if (refusal) {
    reject(refusal.reason, refusal.errors);
    return;
  }

  const keyids = entry.keyids;
  const tags = Object.values(result.labels).map((l) => l.tag);
  const sessionId = headers['mcp-session-id'];
  let session = sessionId !== undefined ? sessions.get(sessionId) : undefined;

  // A session belongs to the tag that initialized it; the key may change
  // under the tag by rotation, and bindingProblems has already checked it.
  if (session && !tags.includes(session.tag)) {
    reject('unbound', [`session ${sessionId} is bound to tag ${session.tag}, request carries tag ${tags.join(', ')}`]);
    return;
  }

  // In initialize-bound mode (SEP-2752 §2.6.2) the in-band key must be the
  // signing key.
  if (parsed && isInitializeRequest(parsed)) {
    const cnfJwk = parsed.params?.clientInfo?.cnf?.jwk;
    if (cnfJwk) {
      let thumbprint = null;
      try {
        thumbprint = await calculateJwkThumbprint(cnfJwk, 'sha256');
      } catch {
        // An unusable cnf key is reported as a mismatch below.
      }
      if (!keyids.includes(thumbprint)) {
        reject('unbound', [`clientInfo.cnf.jwk thumbprint ${thumbprint} is not the signing keyid ${keyids.join(', ')}`]);
        return;
      }
    }
  }

  for (const [tag, binding] of fresh) {
    bindings.set(tag, binding);
    console.error(`mcp-server: tag ${tag} bound to key ${binding.keyid}`);
  }
  entry.ok = true;
  stats.verified += 1;
  console.error(`mcp-server: #${entry.seq} ${req.method} ${entry.rpc.join(',') || '-'} verified (${Object.keys(result.labels).join(', ')})`);

  if (!session) {
    if (sessionId !== undefined) {
      sendJson(res, 404, { jsonrpc: '2.0', error: { code: -32001, message: 'Session not found' }, id: null });
      return;
    }
    if (req.method !== 'POST' || !parsed || !isInitializeRequest(parsed)) {
      sendJson(res, 400, { jsonrpc: '2.0', error: { code: -32000, message: 'Bad Request: no session and not an initialize request' }, id: null });
      return;
    }
    const boundTag = tags[0];
    const transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => crypto.randomUUID(),
      enableJsonResponse: jsonResponse,
      onsessioninitialized: (id) => {
        sessions.set(id, { transport, tag: boundTag });
      },
    });
    transport.onclose = () => {
      if (transport.sessionId) sessions.delete(transport.sessionId);
    };
    const server = createMcpServer();
    await server.connect(transport);
    session = { transport };
  }

  if (req.method === 'POST' && parsed === undefined) {
    sendJson(res, 400, { jsonrpc: '2.0', error: { code: -32700, message: 'Parse error' }, id: null });
    return;
  }
  await session.transport.handleRequest(req, res, parsed);
}

// signatures/rotateKey (SEP-2752 §3.4, SPEC-NOTES §2.6). Each signature is
// checked against its own key: sig-old against the key bound to the tag, never
// one taken from the request, and sig-new against params.newKey. Nothing
// changes unless every check passes.
async function handleRotate({ req, res, entry, headers, parsed, reject, verify }) {
  const fault = rotateFault;
  rotateFault = null;
  if (fault) {
    entry.fault = fault;
    console.error(`mcp-server: #${entry.seq} rotateKey meets fault ${fault}`);
  }
  // These faults stand for a server that refuses or fails before looking at
  // the request, so nothing is verified or recorded.
  if (fault === 'drop-before') {
    entry.reason = 'fault';
    req.socket.destroy();
    return;
  }
  if (fault === 'error') {
    entry.reason = 'fault';
    sendJson(res, 200, { jsonrpc: '2.0', id: parsed.id ?? null, error: { code: -32603, message: 'Internal error: key rotation failed (test fault)' } });
    return;
  }
  if (fault === 'http-403' || fault === 'http-500') {
    entry.reason = 'fault';
    const status = fault === 'http-403' ? 403 : 500;
    sendJson(res, status, { error: status === 403 ? 'forbidden' : 'internal', message: `key rotation refused with ${status} (test fault)` });
    return;
  }

  const peeked = peekLabels(headers);
  const oldTag = peeked.get('sig-old')?.tag ?? null;
  const binding = oldTag !== null ? bindings.get(oldTag) : undefined;
  const newKey = parsed.params?.newKey;
  const { result, unsigned } = await verify({
    keys: { 'sig-old': binding?.jwk ?? null, 'sig-new': isObject(newKey) ? newKey : null },
    expectLabels: ['sig-old', 'sig-new'],
  });
  if (unsigned) {
    reject('unsigned', result.errors);
    return;
  }

  // The old key must be the one the tag is bound to. This is decided on the
  // claimed keyid so the refusal says why; the signature itself was checked
  // against the bound key above.
  if (peeked.has('sig-old')) {
    const oldKeyid = peeked.get('sig-old').keyid;
    let why = null;
    if (retired.has(oldKeyid)) why = `sig-old: key ${oldKeyid} was retired by a key rotation`;
    else if (!binding) why = `sig-old: tag ${oldTag} is not bound to any key, so there is nothing to rotate`;
    else if (oldKeyid !== binding.keyid) why = `sig-old: tag ${oldTag} is bound to key ${binding.keyid}, not ${oldKeyid}`;
    if (why) {
      reject(retired.has(oldKeyid) ? 'retired' : 'unbound', [why, ...result.errors]);
      return;
    }
  }

  // A request signed by the bound key whose body is not a usable rotation gets
  // a JSON-RPC error, not an authentication failure. sig-new cannot be checked
  // without newKey, so only its errors are set aside.
  let paramsError = null;
  if (parsed.id === undefined || parsed.id === null) paramsError = { code: -32600, message: 'signatures/rotateKey must be a request with an id' };
  else if (!isObject(newKey)) paramsError = { code: -32602, message: 'Invalid params: params.newKey must be a JWK object' };
  if (paramsError) {
    const oldLabel = result.labels['sig-old'];
    const newErrors = result.labels['sig-new']?.errors.length ?? 0;
    if (oldLabel && oldLabel.errors.length === 0 && result.errors.length === newErrors) {
      claimNonces([oldLabel]);
      entry.reason = 'params';
      entry.errors = [paramsError.message];
      sendJson(res, 200, { jsonrpc: '2.0', id: parsed.id ?? null, error: paramsError });
      return;
    }
    reject('invalid', result.errors);
    return;
  }

  // The rotation's own rules, checked whether or not the signatures verified
  // so that every refusal names all that is wrong.
  const errors = [...result.errors];
  let reason = 'invalid';
  const oldLabel = result.labels['sig-old'];
  const newLabel = result.labels['sig-new'];
  if (oldLabel && newLabel && oldLabel.tag !== newLabel.tag) {
    errors.push(`sig-new tag ${newLabel.tag} differs from sig-old tag ${oldLabel.tag}; a rotation keeps the tag`);
  }
  const leaked = PRIVATE_MEMBERS.filter((m) => m in newKey);
  if (leaked.length) errors.push(`params.newKey carries private members: ${leaked.join(', ')}`);
  let newKeyid = null;
  if (!algorithmForJwk(newKey)) {
    errors.push(`params.newKey is not a supported key type (kty=${newKey.kty}, crv=${newKey.crv})`);
  } else {
    try {
      newKeyid = await calculateJwkThumbprint(publicJwk(newKey), 'sha256');
    } catch (e) {
      errors.push(`params.newKey has no RFC 7638 thumbprint: ${e.message}`);
    }
  }
  if (newKeyid !== null) {
    if (newLabel && newLabel.keyid !== newKeyid) errors.push(`sig-new keyid ${newLabel.keyid} is not the RFC 7638 thumbprint of params.newKey (${newKeyid})`);
    if (binding && newKeyid === binding.keyid) errors.push(`params.newKey is the key already bound to tag ${oldTag}; a rotation needs a new key`);
    if (retired.has(newKeyid)) {
      errors.push(`params.newKey ${newKeyid} was retired by an earlier rotation`);
      reason = 'retired';
    }
  }
  if (errors.length) {
    reject(reason, errors);
    return;
  }

  const replayed = claimNonces([oldLabel, newLabel]);
  if (replayed.length) {
    reject('replayed', [`(tag, nonce) already used: ${replayed.join('; ')}`]);
    return;
  }

  // The rotation is made within a session, by the tag that owns it; this is
  // checked after the signatures, as for other requests.
  const sessionId = headers['mcp-session-id'];
  if (sessionId === undefined) {
    entry.reason = 'session';
    sendJson(res, 400, { jsonrpc: '2.0', error: { code: -32000, message: 'Bad Request: Mcp-Session-Id header is required' }, id: null });
    return;
  }
  const session = sessions.get(sessionId);
  if (!session) {
    entry.reason = 'session';
    sendJson(res, 404, { jsonrpc: '2.0', error: { code: -32001, message: 'Session not found' }, id: null });
    return;
  }
  if (session.tag !== oldTag) {
    reject('unbound', [`session ${sessionId} is bound to tag ${session.tag}, rotation is for tag ${oldTag}`]);
    return;
  }

  bindings.set(oldTag, { keyid: newKeyid, jwk: publicJwk(newKey) });
  retired.add(binding.keyid);
  stats.rotations.push({ tag: oldTag, old_keyid: binding.keyid, new_keyid: newKeyid, at: Date.now() });
  entry.ok = true;
  stats.verified += 1;
  console.error(`mcp-server: #${entry.seq} rotateKey: tag ${oldTag} moved from key ${binding.keyid} to ${newKeyid}`);

  // The rotation is applied but the client never hears so: its outcome is
  // unknown until it asks with one key or the other.
  if (fault === 'drop-after') {
    req.socket.destroy();
    return;
  }
  rpcResponse(res, { jsonrpc: '2.0', id: parsed.id, result: { tag: oldTag, keyid: newKeyid } }, sseRotate || fault === 'sse',
    { 'mcp-session-id': sessionId });
}

// POST /__fault: {"rotate": MODE or null} and/or {"reject_all": boolean}.
async function handleFault(req, res) {
  let request;
  try {
    request = JSON.parse((await readBody(req)).toString('utf8'));
  } catch (e) {
    sendJson(res, 400, { error: 'bad_request', message: `fault body is not JSON: ${e.message}` });
    return;
  }
  const problems = [];
  if (!isObject(request)) problems.push('fault body must be a JSON object');
  else {
    for (const key of Object.keys(request)) {
      if (key !== 'rotate' && key !== 'reject_all') problems.push(`unknown fault "${key}"`);
    }
    if ('rotate' in request && request.rotate !== null && !ROTATE_FAULTS.has(request.rotate)) {
      problems.push(`rotate must be null or one of ${[...ROTATE_FAULTS].join(', ')}`);
    }
    if ('reject_all' in request && typeof request.reject_all !== 'boolean') problems.push('reject_all must be true or false');
  }
  if (problems.length) {
    sendJson(res, 400, { error: 'bad_request', message: problems.join('; ') });
    return;
  }
  if ('rotate' in request) rotateFault = request.rotate;
  if ('reject_all' in request) rejectAll = request.reject_all;
  console.error(`mcp-server: faults: rotate=${rotateFault ?? 'none'} reject_all=${rejectAll}`);
  res.writeHead(204);
  res.end();
}

const httpServer = http.createServer((req, res) => {
  const path = (req.url ?? '').split('?')[0];
  const fail = (e) => {
    console.error(`mcp-server: internal error: ${e.stack ?? e}`);
    if (!res.headersSent) sendJson(res, 500, { error: 'internal', message: e.message });
    else res.end();
  };
  if (req.method === 'GET' && path === '/__stats') {
    sendJson(res, 200, statsSnapshot());
    return;
  }
  if (req.method === 'POST' && path === '/__fault') {
    handleFault(req, res).catch(fail);
    return;
  }
  if (path !== '/mcp') {
    sendJson(res, 404, { error: 'not_found' });
    return;
  }
  handleMcp(req, res).catch(fail);
});

async function shutdown(code) {
  for (const { transport } of sessions.values()) {
    await transport.close().catch(() => {});
  }
  httpServer.closeAllConnections?.();
  httpServer.close();
  process.exit(code);
}

process.on('SIGTERM', () => shutdown(0));
process.on('SIGINT', () => shutdown(0));
// A server left behind by a crashed test run must not live forever.
setTimeout(() => {
  console.error(`mcp-server: lifetime of ${lifetimeSeconds} s reached, exiting`);
  shutdown(0);
}, lifetimeSeconds * 1000).unref();

httpServer.listen(port, '127.0.0.1', () => {
  process.stdout.write(`PORT ${httpServer.address().port}\n`);
});
