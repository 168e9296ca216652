// Interop: the real `mcpsig` CLI (talking to a real mcpsig-agent) signs
// requests, and third-party libraries judge the result through
// lib/verify.mjs. Every accepted case is paired with forged variants that must
// be rejected for the expected reason.
//
// Environment: MCPSIG (path of the mcpsig binary) and MCPSIG_AUTH_SOCK (the
// agent socket, already running). Output is TAP with the plan printed last.

import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseDictionary, serializeDictionary, parseItem } from 'structured-headers';
import { calculateJwkThumbprint } from 'jose';
import { verifyRequest, contentDigestFor, algorithmForJwk, publicJwk, DIRECTORY_MEDIA_TYPE } from './lib/verify.mjs';

const MCPSIG = process.env.MCPSIG;
const CLI_TIMEOUT_MS = 20_000;
const WATCHDOG_MS = 240_000;
const EMPTY_DIGEST = 'sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:';
const SEP_COMPONENTS = ['@method', '@target-uri', 'content-digest', 'mcp-protocol-version', 'mcp-session-id'];
const INIT_COMPONENTS = ['@method', '@target-uri', 'content-digest'];
const SIGNED_FIELDS = ['Content-Digest', 'Signature-Input', 'Signature', 'Signature-Agent'];
const PROFILE_PARAMS = ['created', 'nonce', 'keyid', 'tag'];

import { bail, ok, is, isnt, runTests } from './lib/tap.mjs';

function accepts(result, desc) {
  return ok(result.ok, desc, () => [...result.errors, ...Object.entries(result.labels).map(([l, i]) => `${l} base:\n${i.base ?? '(none)'}`)].join('\n'));
}

function rejects(result, reason, desc) {
  const matched = result.errors.some((e) => reason.test(e));
  return ok(!result.ok && matched, desc,
    result.ok ? 'verifier accepted the forgery' : `errors did not match ${reason}:\n${result.errors.join('\n')}`);
}

// ---- CLI -------------------------------------------------------------------

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mcpsig-interop-'));
let fileSeq = 0;

function tmpFile(bytes) {
  fileSeq += 1;
  const file = path.join(tmp, `body-${fileSeq}`);
  fs.writeFileSync(file, bytes);
  return file;
}

function run(args) {
  return new Promise((resolve) => {
    execFile(MCPSIG, args, { timeout: CLI_TIMEOUT_MS, maxBuffer: 8 * 1024 * 1024, encoding: 'utf8' }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, signal: error?.signal ?? null, stdout, stderr, args });
    });
  });
}

function describeRun(r) {
  return `mcpsig ${r.args.join(' ')}\nexit ${r.code}${r.signal ? ` signal ${r.signal}` : ''}\nstdout: ${r.stdout.slice(0, 500)}\nstderr: ${r.stderr.slice(0, 500)}`;
}

// Runs `mcpsig sign`. `data` chooses how the body is passed:
//   { binary: Buffer }  --data-binary @file; the body is the file's bytes
//   { d: string }       -d string; the body is the string
//   { dFile: Buffer }   -d @file; curl strips CR and LF from the file
//   undefined           no body
async function cliSign({ method, url, headers = {}, data, acceptSignature, identity, algs, components = [], json = true }) {
  const args = [];
  if (identity) args.push('--identity', identity);
  args.push('sign', '-X', method, '-u', url);
  if (algs) args.push('--alg', algs);
  for (const [name, value] of Object.entries(headers)) args.push('-H', `${name}: ${value}`);
  let body = Buffer.alloc(0);
  if (data?.binary !== undefined) {
    args.push('--data-binary', `@${tmpFile(data.binary)}`);
    body = data.binary;
  } else if (data?.d !== undefined) {
    args.push('-d', data.d);
    body = Buffer.from(data.d, 'utf8');
  } else if (data?.dFile !== undefined) {
    args.push('-d', `@${tmpFile(data.dFile)}`);
    body = Buffer.from(data.dFile.filter((b) => b !== 0x0d && b !== 0x0a));
  }
  if (acceptSignature !== undefined) args.push('--accept-signature', acceptSignature);
  for (const c of components) args.push('--component', c);
  if (json) args.push('--json');
  const r = await run(args);
  let out = null;
  if (r.code === 0) {
    if (json) {
      try {
        out = JSON.parse(r.stdout);
      } catch {
        out = null;
      }
    } else {
      const fields = {};
      for (const line of r.stdout.split('\n').filter((l) => l.length > 0)) {
        const colon = line.indexOf(': ');
        if (colon > 0) fields[line.slice(0, colon)] = line.slice(colon + 2);
      }
      out = { headers: fields };
    }
  }
  const request = {
    method,
    url,
    body,
    headers: Object.fromEntries([
      ...Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]),
      ...Object.entries(out?.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v]),
    ]),
  };
  return { run: r, out, request };
}

async function cliJwk(origin, identity) {
  const args = identity ? ['--identity', identity] : [];
  const r = await run([...args, 'jwk', '--origin', origin]);
  try {
    return { run: r, jwk: r.code === 0 ? JSON.parse(r.stdout) : null };
  } catch {
    return { run: r, jwk: null };
  }
}

// ---- checks shared by every signed output ----------------------------------

function forge(request, changes) {
  return {
    ...request,
    ...changes,
    headers: Object.fromEntries(Object.entries({ ...request.headers, ...(changes.headers ?? {}) }).filter(([, v]) => v !== undefined)),
  };
}

function flipSignatureBit(field) {
  const dict = parseDictionary(field);
  const [label, member] = [...dict][0];
  const bytes = Buffer.from(member[0]);
  bytes[bytes.length >> 1] ^= 0x80;
  dict.set(label, [bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length), new Map()]);
  return serializeDictionary(dict);
}

// Signs, then checks everything that holds for any SEP-2752 output. Returns
// the pieces for case-specific checks, or null if signing failed.
async function signedCase(title, spec, verifyOptions = {}, { profileParams = true, alg = 'ed25519' } = {}) {
  const signed = await cliSign(spec);
  if (!ok(signed.run.code === 0 && signed.out !== null, `${title}: mcpsig sign${spec.json === false ? '' : ' --json'} succeeds`, describeRun(signed.run))) return null;
  const { out, request } = signed;
  const h = out.headers ?? {};
  is(Object.keys(h).sort().join(','), [...SIGNED_FIELDS].sort().join(','), `${title}: prints exactly ${SIGNED_FIELDS.join(', ')}`);
  is(h['Content-Digest'], contentDigestFor(request.body), `${title}: Content-Digest is the SHA-256 of the exact body bytes`);
  for (const name of ['Signature-Input', 'Signature', 'Content-Digest']) {
    let round = null;
    try {
      round = serializeDictionary(parseDictionary(h[name]));
    } catch (e) {
      round = `parse error: ${e.message}`;
    }
    is(round, h[name], `${title}: ${name} round-trips unchanged through structured-headers (canonical)`);
  }

  // Signature-Agent, in the SEP's literal form: an sf-string holding a data:
  // URI with standard base64 and padding.
  let sa = null;
  try {
    sa = parseItem(h['Signature-Agent']);
  } catch {
    sa = null;
  }
  ok(sa !== null && typeof sa[0] === 'string' && sa[1].size === 0, `${title}: Signature-Agent is a bare sf-string`, h['Signature-Agent']);
  const uri = sa?.[0] ?? '';
  const prefix = `data:${DIRECTORY_MEDIA_TYPE};base64,`;
  ok(uri.startsWith(prefix), `${title}: Signature-Agent is a base64 data: URI of type ${DIRECTORY_MEDIA_TYPE}`, uri.slice(0, 80));
  const payload = uri.slice(prefix.length);
  ok(/^[A-Za-z0-9+/]+={0,2}$/.test(payload) && payload.length % 4 === 0, `${title}: Signature-Agent payload is standard base64 with padding`, payload);

  const result = await verifyRequest(request, verifyOptions);
  accepts(result, `${title}: verifies independently`);
  const labels = Object.keys(result.labels);
  is(labels.length, 1, `${title}: exactly one signature`);
  const info = result.labels[labels[0]] ?? {};
  if (spec.json !== false) {
    is(info.keyid, out.keyid, `${title}: keyid parameter equals the reported keyid`);
    is(info.tag, out.tag, `${title}: tag parameter equals the reported tag`);
  }
  ok(!info.params?.includes('alg'), `${title}: no alg parameter`, info.params?.join(' '));
  if (profileParams) {
    is([...(info.params ?? [])].sort().join(' '), [...PROFILE_PARAMS].sort().join(' '), `${title}: parameters are exactly created, nonce, keyid, tag`);
    ok(/^[A-Za-z0-9_-]{22}$/.test(info.nonce ?? ''), `${title}: nonce is 128 bits, unpadded base64url`, info.nonce);
  }
  const jwks = result.signatureAgent?.jwks;
  is(jwks?.keys?.length, 1, `${title}: Signature-Agent directory holds one key`);
  const jwk = jwks?.keys?.[0] ?? {};
  const keyAlg = algorithmForJwk(jwk);
  is(keyAlg?.alg, alg, `${title}: the key is ${alg}`);
  // ECDSA is r||s of fixed width (RFC 9421 §3.3.4-5): DER would be 70-72 or 102-104 bytes.
  const sigMember = parseDictionary(h.Signature).get(labels[0]);
  is(sigMember ? Buffer.from(sigMember[0]).length : -1, keyAlg?.sigLen ?? 64, `${title}: ${alg} signature is ${keyAlg?.sigLen ?? 64} bytes`);
  ok(!('d' in jwk), `${title}: Signature-Agent key has no private member`);
  ok(jwk.alg === undefined || jwk.alg === alg, `${title}: Signature-Agent key has no JOSE alg`, JSON.stringify(jwk));
  is(Object.keys(jwk).sort().join(','), (jwk.kty === 'EC' ? ['crv', 'kty', 'x', 'y'] : ['crv', 'kty', 'x']).join(','),
    `${title}: Signature-Agent key has only its public members`);
  let thumb = null;
  try {
    thumb = await calculateJwkThumbprint(publicJwk(jwk), 'sha256');
  } catch {
    thumb = null;
  }
  is(info.keyid, thumb, `${title}: keyid is the jose RFC 7638 thumbprint of the Signature-Agent key`);

  // Forgeries that apply to any request.
  const body = Buffer.from(request.body);
  if (body.length > 0) {
    body[body.length >> 1] ^= 0x01;
    rejects(await verifyRequest(forge(request, { body }), verifyOptions), /Content-Digest sha-256 mismatch/, `${title}: forged: one body byte changed`);
  } else {
    rejects(await verifyRequest(forge(request, { body: Buffer.from('{}') }), verifyOptions), /Content-Digest sha-256 mismatch/, `${title}: forged: body added`);
  }
  rejects(await verifyRequest(forge(request, { headers: { signature: flipSignatureBit(h.Signature) } }), verifyOptions),
    /signature does not verify/, `${title}: forged: one signature bit flipped`);
  rejects(await verifyRequest(forge(request, { method: request.method === 'GET' ? 'HEAD' : 'GET' }), verifyOptions),
    /signature does not verify/, `${title}: forged: method changed`);

  return { out, request, result, info, jwk };
}

// P-256 and P-384 identities, and an Ed25519 identity that the server's
// algorithm list moves to another key type.
async function ecdsaCases(json, session, initBody, callBody) {
  for (const [type, alg, origin] of [['p256', 'ecdsa-p256-sha256', 'https://ec-p256.example'], ['p384', 'ecdsa-p384-sha384', 'https://ec-p384.example']]) {
    const added = await run(['add-identity', `interop-${type}`, '--alg', type]);
    ok(added.code === 0, `mcpsig add-identity interop-${type} --alg ${type}`, describeRun(added));
    const first = await signedCase(`${type} initialize`, { method: 'POST', url: `${origin}/mcp`, headers: json, data: { binary: initBody }, identity: `interop-${type}` },
      { expectComponents: INIT_COMPONENTS }, { alg });
    const next = await signedCase(`${type} tools/call in session`, { method: 'POST', url: `${origin}/mcp`, headers: { ...json, ...session }, data: { binary: callBody }, identity: `interop-${type}` },
      { expectComponents: SEP_COMPONENTS }, { alg });
    if (first && next) {
      is(next.out.keyid, first.out.keyid, `${type}: same key for the second request`);
      is(first.out.tag, first.out.keyid, `${type}: tag equals keyid on first contact`);
      // Each signature is fresh (ECDSA is randomized), and each verifies.
      isnt(next.out.headers.Signature, first.out.headers.Signature, `${type}: signatures differ`);
    }
    const { jwk: ecJwk } = await cliJwk(origin, `interop-${type}`);
    ok(ecJwk && ecJwk.kty === 'EC' && /^[A-Za-z0-9_-]+$/.test(ecJwk.x) && Buffer.from(ecJwk.x, 'base64url').length === (type === 'p256' ? 32 : 48) &&
      Buffer.from(ecJwk.y, 'base64url').length === (type === 'p256' ? 32 : 48), `${type}: mcpsig jwk has full-length x and y`, JSON.stringify(ecJwk));
    if (ecJwk && first) is(await calculateJwkThumbprint(publicJwk(ecJwk), 'sha256'), first.out.keyid, `${type}: jose thumbprint of mcpsig jwk is the keyid`);
  }
  // Many ECDSA signatures: every one is r||s of fixed width, and verifies.
  let sigs = 0;
  for (let i = 0; i < 12; i++) {
    const s = await cliSign({ method: 'POST', url: 'https://ec-p256.example/mcp', headers: json, data: { d: `{"jsonrpc":"2.0","id":${i},"method":"ping"}` }, identity: 'interop-p256' });
    const r = await verifyRequest(s.request);
    const len = s.out ? Buffer.from(parseDictionary(s.out.headers.Signature).get('sig1')[0]).length : -1;
    if (r.ok && len === 64) sigs += 1;
  }
  is(sigs, 12, 'p256: 12 more signatures, all 64 bytes and all verifying');
  await signedCase('first contact with --alg ecdsa-p384-sha384 (Ed25519 identity)',
    { method: 'POST', url: 'https://ec-choice.example/mcp', headers: json, data: { binary: initBody }, algs: 'rsa-pss-sha512,ecdsa-p384-sha384' },
    { expectComponents: INIT_COMPONENTS }, { alg: 'ecdsa-p384-sha384' });
  const excluded = await cliSign({ method: 'POST', url: 'https://ec-choice.example/mcp', headers: json, data: { binary: initBody }, algs: 'ed25519' });
  ok(excluded.run.code === 1 && /exclude/.test(excluded.run.stderr) && excluded.out === null,
    'a later --alg list that excludes the binding\'s key type is refused, with no signature', describeRun(excluded.run));
  await signedCase('first contact answering Accept-Signature alg="ecdsa-p256-sha256"',
    { method: 'POST', url: 'https://ec-accept.example/mcp', headers: json, data: { binary: initBody },
      acceptSignature: 'sig1=("@method" "@target-uri" "content-digest");alg="ecdsa-p256-sha256"' },
    { expectComponents: INIT_COMPONENTS }, { alg: 'ecdsa-p256-sha256' });

}

// ---- cases -----------------------------------------------------------------

async function main() {
  if (!MCPSIG) bail('MCPSIG is not set');
  if (!process.env.MCPSIG_AUTH_SOCK) bail('MCPSIG_AUTH_SOCK is not set');
  const status = await run(['status', '--json']);
  if (status.code !== 0) bail(`mcpsig status failed: ${describeRun(status)}`);

  const ORIGIN_A = 'https://interop-a.example';
  const URL_A = `${ORIGIN_A}/mcp`;
  const json = { 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream' };
  const session = { 'MCP-Protocol-Version': '2025-06-18', 'MCP-Session-Id': 'b3c1f9e2-0f4a-4d7e-9a51-6c2d8e7f0a13' };

  // 1. initialize: first contact, no MCP headers.
  const initBody = Buffer.from(JSON.stringify({
    jsonrpc: '2.0', id: 0, method: 'initialize',
    params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'interop', version: '1.0.0' } },
  }));
  const init = await signedCase('initialize', { method: 'POST', url: URL_A, headers: json, data: { binary: initBody } },
    { expectComponents: INIT_COMPONENTS, requireLabel: 'sig1' });
  if (init) {
    is(init.info.components.join(' '), INIT_COMPONENTS.join(' '), 'initialize: covers only @method @target-uri content-digest');
    is(init.out.tag, init.out.keyid, 'initialize: tag equals keyid on first contact');
    rejects(await verifyRequest(forge(init.request, { url: `${URL_A}/` })), /signature does not verify/, 'initialize: forged: target URI changed');
    rejects(await verifyRequest(forge(init.request, { headers: { 'mcp-session-id': 'injected' } })), /"mcp-session-id" is not covered/,
      'initialize: forged: MCP-Session-Id added after signing');
    const { run: jr, jwk } = await cliJwk(ORIGIN_A);
    ok(jr.code === 0 && jwk !== null, 'mcpsig jwk --origin prints JSON', describeRun(jr));
    if (jwk) {
      is(JSON.stringify({ kty: jwk.kty, crv: jwk.crv, x: jwk.x }), JSON.stringify({ kty: init.jwk.kty, crv: init.jwk.crv, x: init.jwk.x }),
        'mcpsig jwk equals the Signature-Agent key');
      ok(!('d' in jwk), 'mcpsig jwk prints no private member');
      is(await calculateJwkThumbprint({ kty: jwk.kty, crv: jwk.crv, x: jwk.x }, 'sha256'), init.out.keyid, 'thumbprint of mcpsig jwk is the keyid');
      accepts(await verifyRequest(init.request, { jwk }), 'initialize: verifies with the key from mcpsig jwk as well');
    }
  }

  // 2a. The 2026-07-28 era (SPEC-NOTES §10): a stateless tools/call with Mcp-Method, Mcp-Name
  // and Mcp-Param-* (one in the base64 sentinel form). Every one is covered, in the documented
  // order, and changing any of them after signing breaks the signature.
  const MODERN = ['@method', '@target-uri', 'content-digest', 'mcp-protocol-version', 'mcp-method', 'mcp-name',
    'mcp-param-city', 'mcp-param-region'];
  const modernHeaders = { ...json, 'MCP-Protocol-Version': '2026-07-28', 'Mcp-Method': 'tools/call', 'Mcp-Name': 'get_weather',
    'Mcp-Param-Region': 'eu-west', 'Mcp-Param-City': `=?base64?${Buffer.from('München').toString('base64')}?=` };
  const modernBody = Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: {
    name: 'get_weather', arguments: { region: 'eu-west', city: 'München' },
    _meta: { 'io.modelcontextprotocol/protocolVersion': '2026-07-28', 'io.modelcontextprotocol/clientCapabilities': {} } } }));
  const modern = await signedCase('2026-07-28 tools/call', { method: 'POST', url: URL_A, headers: modernHeaders, data: { binary: modernBody } },
    { expectComponents: MODERN });
  if (modern) {
    is(modern.info.components.join(' '), MODERN.join(' '), '2026-07-28 tools/call: covers mcp-method, mcp-name and each mcp-param-*');
    for (const [name, value] of [['mcp-method', 'tools/list'], ['mcp-name', 'transfer_funds'], ['mcp-param-region', 'us-east'],
      ['mcp-param-city', `=?base64?${Buffer.from('Berlin').toString('base64')}?=`], ['mcp-protocol-version', '2025-11-25']]) {
      rejects(await verifyRequest(forge(modern.request, { headers: { [name]: value } })), /signature does not verify/,
        `2026-07-28 tools/call: forged: ${name} changed after signing`);
    }
    rejects(await verifyRequest(forge(modern.request, { headers: { 'mcp-param-region': undefined } })), /./,
      '2026-07-28 tools/call: forged: an Mcp-Param header removed after signing');
  }
  // Covering signature-agent (here through Accept-Signature): the value the agent emits.
  const withAgent = await signedCase('covering signature-agent', { method: 'POST', url: URL_A, headers: modernHeaders, data: { binary: modernBody },
    acceptSignature: 'sig1=("@method" "@target-uri" "content-digest" "signature-agent");created;nonce;keyid;tag' },
  { expectComponents: ['@method', '@target-uri', 'content-digest', 'signature-agent', ...MODERN.slice(3)] });
  if (withAgent) {
    ok(withAgent.info.components.includes('signature-agent'), 'covering signature-agent: it is among the covered components',
      withAgent.info.components.join(' '));
    // The same key, written with other whitespace: a verifier resolves the same key from it, so
    // only the coverage of signature-agent can tell the difference.
    const otherAgent = `"data:${DIRECTORY_MEDIA_TYPE};base64,${Buffer.from(JSON.stringify({ keys: [withAgent.jwk] }, null, 1)).toString('base64')}"`;
    isnt(otherAgent, withAgent.request.headers['signature-agent'], 'covering signature-agent: the forged value differs from the signed one');
    rejects(await verifyRequest(forge(withAgent.request, { headers: { 'signature-agent': otherAgent } })), /./,
      'covering signature-agent: forged: a changed Signature-Agent is refused');
    // The same through mcpsig sign --component, with MCP headers named that the request lacks.
    const viaFlag = await signedCase('--component signature-agent', { method: 'POST', url: URL_A, headers: modernHeaders,
      data: { binary: modernBody }, components: ['mcp-session-id', 'mcp-param-absent', 'signature-agent'] },
    { expectComponents: [...MODERN, 'signature-agent'] });
    if (viaFlag) {
      rejects(await verifyRequest(forge(viaFlag.request, { headers: { 'signature-agent': otherAgent } })), /./,
        '--component signature-agent: forged: a changed Signature-Agent is refused');
      ok(!viaFlag.info.components.includes('mcp-session-id'), '--component mcp-session-id on a request without it: not covered, not refused');
    }
    const missing = await cliSign({ method: 'POST', url: URL_A, headers: modernHeaders, data: { binary: modernBody }, components: ['x-not-sent'] });
    ok(missing.run.code === 1 && /missing/.test(missing.run.stderr), 'control: --component of another header the request lacks is refused', describeRun(missing.run));
    if (modern) {
      const sameKey = `"data:${DIRECTORY_MEDIA_TYPE};base64,${Buffer.from(JSON.stringify({ keys: [modern.jwk] }, null, 1)).toString('base64')}"`;
      accepts(await verifyRequest(forge(modern.request, { headers: { 'signature-agent': sameKey } })),
        'control: where signature-agent is not covered, the same rewrite of Signature-Agent still verifies');
    }
  }

  // 2. A request inside a session: both MCP headers covered, SEP order.
  const callBody = Buffer.from('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}');
  const inSession = await signedCase('tools/call in session', { method: 'POST', url: URL_A, headers: { ...json, ...session }, data: { binary: callBody } },
    { expectComponents: SEP_COMPONENTS });
  if (inSession) {
    is(inSession.info.components.join(' '), SEP_COMPONENTS.join(' '), 'tools/call in session: covers the five SEP components in SEP order');
    if (init) {
      is(inSession.out.keyid, init.out.keyid, 'same origin: same key as initialize');
      is(inSession.out.tag, init.out.tag, 'same origin: same tag as initialize');
    }
    rejects(await verifyRequest(forge(inSession.request, { headers: { 'mcp-session-id': 'another-session' } })), /signature does not verify/,
      'tools/call in session: forged: MCP-Session-Id changed');
    rejects(await verifyRequest(forge(inSession.request, { headers: { 'mcp-protocol-version': '2025-03-26' } })), /signature does not verify/,
      'tools/call in session: forged: MCP-Protocol-Version changed');
    rejects(await verifyRequest(forge(inSession.request, { headers: { 'mcp-session-id': undefined } })), /covered but the header is absent/,
      'tools/call in session: forged: MCP-Session-Id removed');
  }

  // 3. GET (the SSE stream) and DELETE (end of session) have empty bodies.
  const get = await signedCase('GET empty body', { method: 'GET', url: URL_A, headers: { Accept: 'text/event-stream', ...session } },
    { expectComponents: SEP_COMPONENTS });
  if (get) is(get.out.headers['Content-Digest'], EMPTY_DIGEST, 'GET: Content-Digest of the empty body');
  const delComponents = ['@method', '@target-uri', 'content-digest', 'mcp-session-id'];
  const del = await signedCase('DELETE empty body', { method: 'DELETE', url: URL_A, headers: { 'MCP-Session-Id': session['MCP-Session-Id'] } },
    { expectComponents: delComponents });
  if (del) {
    is(del.out.headers['Content-Digest'], EMPTY_DIGEST, 'DELETE: Content-Digest of the empty body');
    is(del.info.components.join(' '), delComponents.join(' '), 'DELETE with only MCP-Session-Id: covers it and not mcp-protocol-version');
    rejects(await verifyRequest(forge(del.request, { headers: { 'mcp-session-id': 'other' } })), /signature does not verify/,
      'DELETE: forged: session id changed');
  }

  // 4. Bodies are digested byte for byte: non-ASCII UTF-8 with CR LF, and raw binary.
  const utf8 = Buffer.from('{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"text":"héllo wörld ✓ 署名 🔏\\r\\n"}}}\r\n', 'utf8');
  const nonAscii = await signedCase('UTF-8 body via --data-binary', { method: 'POST', url: URL_A, headers: { ...json, ...session }, data: { binary: utf8 } });
  if (nonAscii) {
    const nfd = Buffer.from(utf8.toString('utf8').normalize('NFD'), 'utf8');
    ok(!nfd.equals(utf8), 'UTF-8 body: NFD form differs from the signed bytes');
    rejects(await verifyRequest(forge(nonAscii.request, { body: nfd })), /Content-Digest sha-256 mismatch/, 'UTF-8 body: forged: same text, Unicode NFD bytes');
    rejects(await verifyRequest(forge(nonAscii.request, { body: utf8.subarray(0, utf8.length - 2) })), /Content-Digest sha-256 mismatch/,
      'UTF-8 body: forged: trailing CR LF dropped');
  }
  const binary = Buffer.from(Array.from({ length: 512 }, (_, i) => (i * 7) & 0xff));
  await signedCase('binary body via --data-binary', { method: 'POST', url: URL_A, headers: { 'Content-Type': 'application/octet-stream' }, data: { binary } });

  // 5. curl semantics of -d: a literal is sent as is; -d @file strips CR and LF.
  await signedCase('-d literal body', { method: 'POST', url: URL_A, headers: json, data: { d: '{"jsonrpc":"2.0","id":3,"method":"ping"}' } });
  const dFile = Buffer.from('{"jsonrpc":"2.0",\r\n"id":4,\n"method":"ping"}\n');
  const stripped = await signedCase('-d @file body (CR and LF stripped, as curl does)', { method: 'POST', url: URL_A, headers: json, data: { dFile } });
  if (stripped) {
    is(stripped.out.headers['Content-Digest'], contentDigestFor(Buffer.from('{"jsonrpc":"2.0","id":4,"method":"ping"}')),
      '-d @file: digest is of the body curl would send');
  }

  // 6. Accept-Signature retry with a server nonce: label, components and
  // nonce come from the server, verbatim.
  const asked = 'sig2=("@method" "@target-uri" "@authority" "content-digest");created;nonce="srv-nonce-123";keyid';
  const retryComponents = ['@method', '@target-uri', '@authority', 'content-digest'];
  const retry = await signedCase('Accept-Signature retry (sig2, server nonce)',
    { method: 'POST', url: URL_A, headers: json, data: { binary: callBody }, acceptSignature: asked },
    { requireLabel: 'sig2', expectComponents: retryComponents, expectNonce: 'srv-nonce-123' }, { profileParams: false });
  if (retry) {
    is(Object.keys(retry.result.labels).join(','), 'sig2', 'retry: the only label is sig2');
    is(retry.info.components.join(' '), retryComponents.join(' '), 'retry: exactly the requested components, in order');
    is(retry.info.nonce, 'srv-nonce-123', 'retry: the server nonce is copied verbatim');
    ok(retry.info.params.includes('created') && retry.info.params.includes('keyid'), 'retry: requested created and keyid are present', retry.info.params.join(' '));
    ok(retry.info.params.includes('tag'), 'retry: the SEP tag is still sent', retry.info.params.join(' '));
    rejects(await verifyRequest(forge(retry.request, { url: 'https://interop-b.example/mcp' }),
      { requireLabel: 'sig2', expectNonce: 'srv-nonce-123' }), /signature does not verify/, 'retry: forged: authority changed');
    const relabeled = forge(retry.request, {
      headers: {
        'signature-input': retry.request.headers['signature-input'].replace('srv-nonce-123', 'srv-nonce-124'),
      },
    });
    rejects(await verifyRequest(relabeled, { expectNonce: 'srv-nonce-124' }), /signature does not verify/, 'retry: forged: nonce changed in Signature-Input');
  }

  // 7. Accept-Signature in the SEP's own form: bare flags mean "generate".
  const sepAsk = 'sig1=("@method" "@target-uri" "content-digest" "mcp-protocol-version" "mcp-session-id");created;nonce;keyid;tag';
  const sepRetry = await signedCase('Accept-Signature retry (SEP form, bare flags)',
    { method: 'POST', url: URL_A, headers: { ...json, ...session }, data: { binary: callBody }, acceptSignature: sepAsk },
    { requireLabel: 'sig1', expectComponents: SEP_COMPONENTS });
  if (sepRetry && init) is(sepRetry.out.tag, init.out.tag, 'SEP-form retry: the client identity tag is kept');

  // 8. Nonces are fresh per signature.
  const again1 = await cliSign({ method: 'POST', url: URL_A, headers: { ...json, ...session }, data: { binary: callBody } });
  const again2 = await cliSign({ method: 'POST', url: URL_A, headers: { ...json, ...session }, data: { binary: callBody } });
  if (ok(again1.out && again2.out, 'two signatures of the same request', () => `${describeRun(again1.run)}\n${describeRun(again2.run)}`)) {
    const n1 = (await verifyRequest(again1.request)).labels.sig1?.nonce;
    const n2 = (await verifyRequest(again2.request)).labels.sig1?.nonce;
    ok(n1 && n2 && n1 !== n2, 'two signatures of the same request carry different nonces', `${n1} ${n2}`);
    isnt(again1.out.headers.Signature, again2.out.headers.Signature, 'two signatures of the same request differ');
  }

  // 9. Plain output: one 'Name: value' line per header, usable as curl -H @file.
  await signedCase('plain output (no --json)', { method: 'POST', url: URL_A, headers: { ...json, ...session }, data: { binary: callBody }, json: false },
    { expectComponents: SEP_COMPONENTS });

  // 10. One key per origin (SEP-2752 §4); the origin is scheme, host and port.
  const keyFor = async (url, identity) => {
    const s = await cliSign({ method: 'POST', url, headers: json, data: { binary: initBody }, identity });
    if (s.out === null) return { keyid: null, tag: null, request: s.request, run: s.run };
    return { keyid: s.out.keyid, tag: s.out.tag, request: s.request, run: s.run };
  };
  const one = await keyFor('https://origin-one.example/mcp');
  const two = await keyFor('https://origin-two.example/mcp');
  ok(one.keyid && two.keyid, 'signing for two new origins succeeds', () => `${describeRun(one.run)}\n${describeRun(two.run)}`);
  isnt(one.keyid, two.keyid, 'two origins: different keys');
  isnt(one.tag, two.tag, 'two origins: different tags');
  is(one.tag, one.keyid, 'origin one: tag equals keyid on first contact');
  is(two.tag, two.keyid, 'origin two: tag equals keyid on first contact');
  accepts(await verifyRequest(one.request), 'origin one: verifies');
  accepts(await verifyRequest(two.request), 'origin two: verifies');
  rejects(await verifyRequest(forge(one.request, { headers: { 'signature-agent': two.request.headers['signature-agent'] } })),
    /not the RFC 7638 thumbprint of any Signature-Agent key/, 'forged: origin one signature with origin two Signature-Agent');
  const onePath = await keyFor('https://origin-one.example/other/path?q=1');
  is(onePath.keyid, one.keyid, 'same origin, other path and query: same key');
  accepts(await verifyRequest(onePath.request), 'a target URI with a query verifies');
  const onePort = await keyFor('https://origin-one.example:8443/mcp');
  isnt(onePort.keyid, one.keyid, 'same host, other port: different key');
  const oneHttp = await keyFor('http://origin-one.example/mcp');
  isnt(oneHttp.keyid, one.keyid, 'same host, other scheme: different key');
  // The agent signs the URI exactly as given and never rewrites it. A server
  // rebuilds @target-uri with a lowercase host and no default port, so a URI
  // in any other form could never verify: the agent refuses it, clearly.
  for (const bad of ['https://ORIGIN-ONE.example/mcp', 'https://origin-one.example:443/mcp', 'HTTPS://origin-one.example/mcp']) {
    const s = await keyFor(bad);
    ok(s.keyid === null && s.run.code === 1 && /as servers rebuild it/.test(s.run.stderr),
      `a URI a server would rebuild differently is refused: ${bad}`, describeRun(s.run));
  }

  // 11. Identities: different names, different keys; unknown names refused.
  const add = await run(['add-identity', 'interop-alt']);
  ok(add.code === 0, 'mcpsig add-identity interop-alt', describeRun(add));
  const alt = await keyFor('https://origin-one.example/mcp', 'interop-alt');
  ok(alt.keyid !== null, 'signing with --identity interop-alt succeeds', describeRun(alt.run));
  isnt(alt.keyid, one.keyid, 'other identity, same origin: different key');
  isnt(alt.tag, one.tag, 'other identity, same origin: different tag');
  accepts(await verifyRequest(alt.request), 'other identity: verifies');
  const { jwk: altJwk } = await cliJwk('https://origin-one.example', 'interop-alt');
  is(altJwk ? await calculateJwkThumbprint({ kty: altJwk.kty, crv: altJwk.crv, x: altJwk.x }, 'sha256') : null, alt.keyid,
    'mcpsig --identity interop-alt jwk matches that identity\'s keyid');
  const unknown = await cliSign({ method: 'POST', url: 'https://origin-one.example/mcp', headers: json, data: { binary: initBody }, identity: 'no-such-identity' });
  is(unknown.run.code, 1, 'unknown identity: refused with exit status 1');
  ok(!/Signature/.test(unknown.run.stdout), 'unknown identity: no signature printed', unknown.run.stdout);

  // 12. ECDSA keys (RFC 9421 §3.3.4-5), or, in an agent built without
  // OpenSSL, their refusal.
  const algorithms = JSON.parse(status.stdout || '{}').algorithms ?? [];
  if (algorithms.includes('ecdsa-p256-sha256')) {
    await ecdsaCases(json, session, initBody, callBody);
  } else {
    const r = await run(['add-identity', 'interop-p256', '--alg', 'p256']);
    ok(r.code === 1 && /OpenSSL/.test(r.stderr), 'without OpenSSL: add-identity --alg p256 is refused, naming OpenSSL', describeRun(r));
    const s = await cliSign({ method: 'POST', url: 'https://ec-choice.example/mcp', headers: json, data: { binary: initBody }, algs: 'ecdsa-p256-sha256' });
    ok(s.run.code === 1 && /none of the accepted algorithms/.test(s.run.stderr) && s.out === null,
      'without OpenSSL: --alg ecdsa-p256-sha256 cannot be satisfied, and nothing is signed', describeRun(s.run));
  }

  // 13. Failing to reach the agent is its own exit status.
  const noAgent = await run(['-a', path.join(tmp, 'no-agent.sock'), 'status']);
  ok(noAgent.code !== 0 && noAgent.code !== 1 && noAgent.signal === null, 'no agent on the socket: exit status other than 0 and 1', describeRun(noAgent));
}

await runTests('interop', main, { watchdogMs: WATCHDOG_MS, cleanup: () => fs.rmSync(tmp, { recursive: true, force: true }) });
