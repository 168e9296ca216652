// DPoP interop: every proof the agent makes through `mcpsig dpop` is checked
// by `jose` (signature against the embedded jwk, typ, alg) and by the RFC 9449
// §4.3 rules written here from the RFC: htm, htu without query and fragment,
// iat, a fresh 128-bit jti, ath = base64url(SHA-256(token)) from Node's
// crypto, the nonce, no private member in the jwk, and jkt = the jose RFC 7638
// thumbprint. Each kind of proof is paired with forgeries jose must reject.
//
// Environment: MCPSIG (path of the mcpsig binary) and MCPSIG_AUTH_SOCK (a
// running agent). Output is TAP with the plan printed last.

import { p256, p384 } from '@noble/curves/nist.js';
import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { jwtVerify, EmbeddedJWK, calculateJwkThumbprint } from 'jose';
import { bail, ok, is, runTests } from './lib/tap.mjs';

const MCPSIG = process.env.MCPSIG;
const CLI_TIMEOUT_MS = 20_000;
const WATCHDOG_MS = 240_000;
const TOKEN = 'Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU';
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mcpsig-dpop-'));

function run(args, input) {
  return new Promise((resolve) => {
    const child = execFile(MCPSIG, args, { timeout: CLI_TIMEOUT_MS, encoding: 'utf8' }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr, args });
    });
    if (input !== undefined) child.stdin.end(input);
  });
}

function describeRun(r) {
  return `mcpsig ${r.args.join(' ')}\nexit ${r.code}\nstdout: ${r.stdout.slice(0, 400)}\nstderr: ${r.stderr.slice(0, 400)}`;
}

async function dpop({ identity, method = 'POST', url, origin, token, tokenFile, nonce, algs, json = true }) {
  const args = identity ? ['--identity', identity] : [];
  args.push('dpop', '-X', method, '-u', url, '--origin', origin);
  if (token !== undefined) args.push('--token', token);
  if (tokenFile !== undefined) args.push('--token-file', tokenFile);
  if (nonce !== undefined) args.push('--nonce', nonce);
  if (algs !== undefined) args.push('--alg', algs);
  if (json) args.push('--json');
  const r = await run(args, tokenFile === '-' ? `${token ?? TOKEN}\n` : undefined);
  let out = null;
  if (r.code === 0) {
    try {
      out = json ? JSON.parse(r.stdout) : { proof: r.stdout.trim() };
    } catch {
      out = null;
    }
  }
  return { run: r, out };
}

// The checks of RFC 9449 §4.3 that a resource or authorization server makes.
async function verifyProof(proof, { algs, htm, htu, token, nonce }) {
  const { payload, protectedHeader } = await jwtVerify(proof, EmbeddedJWK, { typ: 'dpop+jwt', algorithms: algs });
  const errors = [];
  const jwk = protectedHeader.jwk;
  for (const m of ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k']) if (m in jwk) errors.push(`jwk has private member ${m}`);
  const want = jwk.kty === 'EC' ? ['crv', 'kty', 'x', 'y'] : ['crv', 'kty', 'x'];
  if (Object.keys(jwk).sort().join() !== want.join()) errors.push(`jwk members are ${Object.keys(jwk).join(',')}`);
  if (Object.keys(protectedHeader).sort().join() !== 'alg,jwk,typ') errors.push(`header members are ${Object.keys(protectedHeader).join(',')}`);
  if (payload.htm !== htm) errors.push(`htm ${payload.htm} != ${htm}`);
  if (payload.htu !== htu) errors.push(`htu ${payload.htu} != ${htu}`);
  if (/[?#]/.test(payload.htu)) errors.push('htu has a query or fragment');
  const now = Math.floor(Date.now() / 1000);
  if (!Number.isInteger(payload.iat) || payload.iat < now - 60 || payload.iat > now + 5) errors.push(`iat ${payload.iat} is not now (${now})`);
  if (typeof payload.jti !== 'string' || !/^[A-Za-z0-9_-]{22}$/.test(payload.jti)) errors.push(`jti ${payload.jti} is not 128 bits of base64url`);
  const ath = token === undefined ? undefined : crypto.createHash('sha256').update(token, 'ascii').digest('base64url');
  if (payload.ath !== ath) errors.push(`ath ${payload.ath} != ${ath}`);
  if (payload.nonce !== nonce) errors.push(`nonce ${payload.nonce} != ${nonce}`);
  const extra = Object.keys(payload).filter((k) => !['jti', 'htm', 'htu', 'iat', 'ath', 'nonce'].includes(k));
  if (extra.length) errors.push(`unexpected claims ${extra.join(',')}`);
  return { payload, protectedHeader, errors, jkt: await calculateJwkThumbprint(jwk, 'sha256') };
}

async function rejected(proof, algs) {
  try {
    await jwtVerify(proof, EmbeddedJWK, { typ: 'dpop+jwt', algorithms: algs });
    return false;
  } catch {
    return true;
  }
}

function flipSignature(proof) {
  const [h, p, s] = proof.split('.');
  const sig = Buffer.from(s, 'base64url');
  sig[sig.length >> 1] ^= 0x01;
  return `${h}.${p}.${sig.toString('base64url')}`;
}

function swapPayload(proof, changes) {
  const [h, p, s] = proof.split('.');
  const claims = { ...JSON.parse(Buffer.from(p, 'base64url').toString('utf8')), ...changes };
  return `${h}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${s}`;
}

const jtis = new Set();
const bindingKeyid = new Map();

async function listKeyid(identity, origin) {
  const r = await run(['list', '--json']);
  const list = r.code === 0 ? JSON.parse(r.stdout) : [];
  return list.find((b) => b.identity === identity && b.origin === origin)?.keyid ?? null;
}

// One proof, checked fully, with its forgeries.
async function proofCase(title, spec, { alg, sigLen }) {
  const { run: r, out } = await dpop(spec);
  if (!ok(r.code === 0 && out !== null && typeof out.proof === 'string', `${title}: mcpsig dpop succeeds`, describeRun(r))) return null;
  const htu = spec.url.replace(/[?#].*$/, '');
  let v = null;
  try {
    v = await verifyProof(out.proof, { algs: [alg], htm: spec.method ?? 'POST', htu, token: spec.token ?? (spec.tokenFile ? TOKEN : undefined), nonce: spec.nonce });
  } catch (e) {
    ok(false, `${title}: jose verifies the proof against its embedded jwk`, `${e.code ?? ''} ${e.message}\n${out.proof}`);
    return null;
  }
  ok(true, `${title}: jose verifies the proof against its embedded jwk`);
  ok(v.errors.length === 0, `${title}: typ, alg, jwk, htm, htu, iat, jti, ath and nonce as RFC 9449 requires`, v.errors.join('\n'));
  is(v.protectedHeader.alg, alg, `${title}: alg ${alg}`);
  if (out.alg !== undefined) is(out.alg, alg, `${title}: --json reports alg ${alg}`);
  is(Buffer.from(out.proof.split('.')[2], 'base64url').length, sigLen, `${title}: the JWS signature is ${sigLen} bytes (r||s for ECDSA, never DER)`);
  if (out.jkt !== undefined) is(out.jkt, v.jkt, `${title}: jkt is the jose thumbprint of the jwk`);
  ok(!jtis.has(v.payload.jti), `${title}: jti never repeats`);
  jtis.add(v.payload.jti);
  const key = `${spec.identity ?? 'default'} ${spec.origin}`;
  if (!bindingKeyid.has(key)) bindingKeyid.set(key, await listKeyid(spec.identity ?? 'default', spec.origin));
  is(v.jkt, bindingKeyid.get(key), `${title}: the key is the binding's (mcpsig list keyid)`);
  ok(await rejected(flipSignature(out.proof), [alg]), `${title}: forged: one signature bit flipped is rejected by jose`);
  ok(await rejected(swapPayload(out.proof, { htu: 'https://evil.example/mcp' }), [alg]), `${title}: forged: htu changed is rejected by jose`);
  ok(await rejected(swapPayload(out.proof, { iat: v.payload.iat + 1 }), [alg]), `${title}: forged: iat changed is rejected by jose`);
  return { out, v };
}

// Strict verifiers (noble's default, wallet-style ones) accept only low-S ECDSA signatures,
// s <= n/2. 1,000 ES256 and 1,000 ES384 proofs: noble verifies each with lowS required, and
// the high-S twin (r, n - s) of one, which plain verifiers accept, is refused (the control).
async function lowSCases() {
  const curves = [
    { name: 'ES256', identity: 'dpop-p256', origin: 'https://dpop-p256.example', curve: p256, len: 32 },
    { name: 'ES384', identity: 'dpop-p384', origin: 'https://dpop-p384.example', curve: p384, len: 48 },
  ];
  for (const c of curves) {
    const n = c.curve.Point.CURVE().n;
    let good = 0;
    let high = 0;
    let twinRefused = null;
    const total = 1000;
    for (let start = 0; start < total; start += 25) {
      const batch = await Promise.all(Array.from({ length: Math.min(25, total - start) }, () =>
        run(['--identity', c.identity, 'dpop', '-X', 'POST', '-u', `${c.origin}/mcp`, '--origin', c.origin])));
      for (const r of batch) {
        const proof = r.code === 0 ? r.stdout.trim() : '';
        const [h, p, sig] = proof.split('.');
        if (!sig) continue;
        const jwk = JSON.parse(Buffer.from(h, 'base64url').toString()).jwk;
        const pub = Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x, 'base64url'), Buffer.from(jwk.y, 'base64url')]);
        const raw = Buffer.from(sig, 'base64url');
        const s = BigInt(`0x${raw.subarray(c.len).toString('hex')}`);
        if (s > n / 2n) high += 1;
        const msg = Buffer.from(`${h}.${p}`);
        if (raw.length === 2 * c.len && c.curve.verify(raw, msg, pub, { lowS: true })) good += 1;
        if (twinRefused === null) {
          const twin = Buffer.concat([raw.subarray(0, c.len), Buffer.from((n - s).toString(16).padStart(2 * c.len, '0'), 'hex')]);
          twinRefused = !c.curve.verify(twin, msg, pub, { lowS: true }) && c.curve.verify(twin, msg, pub, { lowS: false });
        }
      }
    }
    is(high, 0, `${c.name}: none of ${total} proofs has a high S`);
    is(good, total, `${c.name}: noble verifies all ${total} with low S required`);
    ok(twinRefused === true, `${c.name}: control: the high-S twin of a proof is refused with low S required, accepted without`);
  }
}

async function main() {
  if (!MCPSIG) bail('MCPSIG is not set');
  if (!process.env.MCPSIG_AUTH_SOCK) bail('MCPSIG_AUTH_SOCK is not set');
  const hello = await run(['status', '--json']);
  if (hello.code !== 0) bail(`mcpsig status failed: ${describeRun(hello)}`);
  // An agent built without OpenSSL makes Ed25519 keys only; then every ECDSA
  // case below checks the refusal instead.
  const ec = JSON.parse(hello.stdout).algorithms.includes('ecdsa-p256-sha256');
  for (const type of ['p256', 'p384']) {
    const r = await run(['add-identity', `dpop-${type}`, '--alg', type]);
    if (ec) ok(r.code === 0, `mcpsig add-identity dpop-${type} --alg ${type}`, describeRun(r));
    else ok(r.code === 1 && /OpenSSL/.test(r.stderr), `without OpenSSL: add-identity --alg ${type} is refused, naming OpenSSL`, describeRun(r));
  }
  const tokenFile = path.join(tmp, 'token');
  fs.writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });

  const kinds = [
    { name: 'EdDSA', identity: undefined, alg: 'EdDSA', sigLen: 64, origin: 'https://dpop-ed.example' },
    { name: 'ES256', identity: 'dpop-p256', alg: 'ES256', sigLen: 64, origin: 'https://dpop-p256.example' },
    { name: 'ES384', identity: 'dpop-p384', alg: 'ES384', sigLen: 96, origin: 'https://dpop-p384.example' },
  ];
  for (const k of kinds.filter((x) => ec || x.alg === 'EdDSA')) {
    const base = { identity: k.identity, origin: k.origin };
    const kind = { alg: k.alg, sigLen: k.sigLen };
    // The token request at the authorization server: another origin, no token.
    const tokenReq = await proofCase(`${k.name} token request`, { ...base, url: 'https://auth.example.com/oauth/token' }, kind);
    await proofCase(`${k.name} with ath`, { ...base, url: `${k.origin}/mcp`, token: TOKEN }, kind);
    await proofCase(`${k.name} with nonce`, { ...base, url: `${k.origin}/mcp`, nonce: 'eyJ7S_zG.eyJH0-Z.HX4w-7v' }, kind);
    await proofCase(`${k.name} with ath and nonce, GET`, { ...base, method: 'GET', url: `${k.origin}/mcp`, token: TOKEN, nonce: 'n-2!#$%&()*+,/:;<=>?@[]^_`{|}~' }, kind);
    const q = await proofCase(`${k.name} URL with query and fragment`, { ...base, url: `${k.origin}/mcp/path?session=1&x=2#frag`, token: TOKEN }, kind);
    if (q) is(q.v.payload.htu, `${k.origin}/mcp/path`, `${k.name}: htu drops the query and the fragment`);
    await proofCase(`${k.name} token from --token-file`, { ...base, url: `${k.origin}/mcp`, tokenFile }, kind);
    await proofCase(`${k.name} token from --token-file - (stdin)`, { ...base, url: `${k.origin}/mcp`, tokenFile: '-' }, kind);
    const plain = await proofCase(`${k.name} plain output`, { ...base, url: `${k.origin}/mcp`, json: false }, kind);
    if (plain) ok(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(plain.out.proof), `${k.name}: plain output is the compact JWS alone`);
    if (tokenReq) {
      const mcp = await dpop({ ...base, url: `${k.origin}/mcp`, token: TOKEN });
      is(mcp.out?.jkt, tokenReq.out.jkt, `${k.name}: the token endpoint's and the MCP server's proofs use one key (same jkt)`);
    }
  }

  // A '"' and a '\' in the URL: the payload is still valid JSON.
  const odd = await proofCase('URL with \'"\' and \'\\\'', { origin: 'https://dpop-ed.example', url: 'https://dpop-ed.example/a"b\\c?q="x"' }, { alg: 'EdDSA', sigLen: 64 });
  if (odd) is(odd.v.payload.htu, 'https://dpop-ed.example/a"b\\c', 'htu with \'"\' and \'\\\' round-trips through JSON');

  // SPEC-NOTES §9.18: a server that takes only ES256 gets a P-256 key, even for an Ed25519 identity.
  if (!ec) {
    const r = await dpop({ origin: 'https://dpop-fallback.example', url: 'https://as.example/token', algs: 'RS256,ES256' });
    ok(r.run.code === 1 && /none of the accepted algorithms/.test(r.run.stderr) && r.run.stdout === '',
      'without OpenSSL: a server list of RS256,ES256 cannot be satisfied, and no proof is made', describeRun(r.run));
  }
  const fb = ec ? await proofCase('Ed25519 identity, server lists RS256,ES256', { origin: 'https://dpop-fallback.example', url: 'https://as.example/token', algs: 'RS256,ES256' }, { alg: 'ES256', sigLen: 64 }) : null;
  if (fb) {
    const again = await proofCase('the fall-back binding keeps ES256 with no list', { origin: 'https://dpop-fallback.example', url: 'https://dpop-fallback.example/mcp', token: TOKEN }, { alg: 'ES256', sigLen: 64 });
    if (again) is(again.out.jkt, fb.out.jkt, 'the fall-back binding: same jkt for the MCP request');
  }
  await proofCase('Ed25519 identity, server lists only Ed25519 (RFC 9864)', { origin: 'https://dpop-fully.example', url: 'https://dpop-fully.example/mcp', algs: 'Ed25519' }, { alg: 'Ed25519', sigLen: 64 });
  await proofCase('Ed25519 identity, server lists EdDSA and ES256', { origin: 'https://dpop-both.example', url: 'https://dpop-both.example/mcp', algs: 'ES256,EdDSA' }, { alg: 'EdDSA', sigLen: 64 });
  if (ec) await lowSCases();
  ok(true, ec ? 'this agent makes ECDSA keys: ES256 and ES384 proofs were checked' : 'this agent was built without OpenSSL: ECDSA refusals were checked');

  // Refusals: a clear message, exit status 1, and no proof.
  const refusals = [
    ['an unknown algorithm', { origin: 'https://dpop-ed.example', url: 'https://dpop-ed.example/mcp', algs: 'ES999' }, /unknown algorithm "ES999"/],
    ['a list the key type cannot satisfy', { origin: 'https://dpop-ed.example', url: 'https://dpop-ed.example/mcp', algs: 'ES256' }, /exclude it/],
    ['ES512, which the agent cannot make', { origin: 'https://dpop-512.example', url: 'https://dpop-512.example/mcp', algs: 'ES512' }, /none of the accepted algorithms \(ES512\)/],
    ['a list of algorithms the agent cannot make', { origin: 'https://dpop-new.example', url: 'https://dpop-new.example/mcp', algs: 'RS256,PS256' }, /none of the accepted algorithms/],
    ['a relative htu', { origin: 'https://dpop-ed.example', url: '/mcp' }, /htu: URI must be absolute/],
    ['a non-http htu', { origin: 'https://dpop-ed.example', url: 'wss://dpop-ed.example/mcp' }, /htu: URI scheme must be http or https/],
    ['a nonce outside NQCHAR', { origin: 'https://dpop-ed.example', url: 'https://dpop-ed.example/mcp', nonce: 'a b' }, /NQCHAR/],
    ['a token that is not token68', { origin: 'https://dpop-ed.example', url: 'https://dpop-ed.example/mcp', token: 'a,b' }, /token68/],
  ];
  for (const [what, spec, reason] of refusals) {
    const { run: r } = await dpop(spec);
    ok(r.code === 1 && reason.test(r.stderr) && r.stdout === '', `refused: ${what}`, describeRun(r));
  }
  is(await listKeyid('default', 'https://dpop-new.example'), null, 'a refused first contact creates no binding');
  const noOrigin = await run(['dpop', '-X', 'POST', '-u', 'https://a.example/']);
  ok(noOrigin.code === 1 && /--origin/.test(noOrigin.stderr), 'refused: no --origin', describeRun(noOrigin));
}

await runTests('dpop', main, { watchdogMs: WATCHDOG_MS, cleanup: () => fs.rmSync(tmp, { recursive: true, force: true }) });
