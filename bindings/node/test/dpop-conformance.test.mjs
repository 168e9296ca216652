// The MCP conformance suite's DPoP client scenarios, auth/dpop and
// auth/dpop-nonce (@modelcontextprotocol/conformance, installed in
// tests/conformance), against conformance-client.mjs: a client on the v2 SDK
// whose DpopSession is an AgentDpopSession. Judged as tests/conformance.sh
// judges its own client, with tests/conformance/results.mjs:
//   - verdict: the runner's checks.json has no FAILURE or WARNING, and every
//     DPoP check of the scenario is SUCCESS;
//   - binding: the agent's binding for the server's origin has the key type
//     the offered algorithms call for, and its keyid is the jkt of every
//     proof and the cnf.jkt of the token the authorization server issued.
// Negative controls: a client that corrupts its resource proofs, or its
// token-endpoint proofs, must make the suite fail.

import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { CONFORMANCE, HERE, MCPSIG, NODE, NO_P256, agentHasP256, run, sharedSocket, tempDir } from './helpers.mjs';

const RUNNER = path.join(CONFORMANCE, 'node_modules/@modelcontextprotocol/conformance/dist/index.js');
const RESULTS = path.join(CONFORMANCE, 'results.mjs');
const CLIENT = path.join(HERE, 'conformance-client.mjs');
// A P-256 identity of this run (the shared agent may outlive one run).
const P256_IDENTITY = `p256-${process.pid}`;

function quoted(p) {
  if (p.includes("'")) throw new Error(`${p}: the runner takes a command line, and this path has a quote in it`);
  return `'${p}'`;
}

// One run of the runner; returns { dir, code, log }.
async function conformance(t, scenario, env = {}) {
  const dir = fs.mkdtempSync(path.join(tempDir(t), 'run.'));
  const r = await run(
    NODE,
    [RUNNER, 'client', '--command', `${quoted(NODE)} ${quoted(CLIENT)}`, '--scenario', scenario, '--timeout', '60000', '-o', dir],
    { timeoutMs: 90_000, env: { ...process.env, MCPSIG_AUTH_SOCK: sharedSocket(), ...env } },
  );
  const log = `${r.stdout}\n${r.stderr}`.replace(/\x1b\[[0-9;]*m/g, '');
  return { dir, code: r.code, log };
}

function tail(text, n = 25) {
  return text.trim().split('\n').slice(-n).join('\n');
}

function serverOrigin(dir) {
  for (const f of fs.readdirSync(dir, { recursive: true })) {
    if (!String(f).endsWith('stdout.txt')) continue;
    const m = /^server \S+ origin=(\S+)$/m.exec(fs.readFileSync(path.join(dir, f), 'utf8'));
    if (m) return m[1];
  }
  return null;
}

// Removes the run's binding, so that a later run on a reused port starts afresh.
async function forget(dir) {
  const origin = serverOrigin(dir);
  if (!origin) return;
  for (const id of ['default', P256_IDENTITY]) await run(MCPSIG, ['-a', sharedSocket(), '--identity', id, 'remove', '--origin', origin]);
}

async function passes(t, scenario, identity, keytype, env = {}) {
  // The test servers advertise ES256 only; without P-256 only the EdDSA offer can pass.
  if (keytype !== 'ed25519' || !env.CONFORMANCE_DPOP_ALGS) {
    if (!(await agentHasP256())) return t.skip(NO_P256);
  }
  const { dir, code, log } = await conformance(t, scenario, env);
  try {
    const verdict = await run(NODE, [RESULTS, 'verdict', dir, scenario]);
    assert.equal(code, 0, `the runner exits 0:\n${tail(log)}`);
    assert.equal(verdict.code, 0, `the suite passes:\n${verdict.stdout}\n${tail(log)}`);
    const list = await run(MCPSIG, ['-a', sharedSocket(), 'list', '--json']);
    assert.equal(list.code, 0, list.stderr);
    const listFile = path.join(dir, 'list.json');
    fs.writeFileSync(listFile, list.stdout);
    const binding = await run(NODE, [RESULTS, 'binding', dir, listFile, identity, keytype]);
    assert.equal(binding.code, 0, `every proof came from the agent key for the server's origin:\n${binding.stdout}`);
    t.diagnostic(binding.stdout.trim());
  } finally {
    await forget(dir);
  }
}

async function fails(t, scenario, checkId, text, env) {
  const { dir, code, log } = await conformance(t, scenario, env);
  try {
    assert.notEqual(code, 0, `the runner must fail:\n${tail(log)}`);
    const failed = await run(NODE, [RESULTS, 'failed', dir, checkId, text]);
    assert.equal(failed.code, 0, `${checkId} must fail with "${text}":\n${failed.stdout}\n${tail(log)}`);
    t.diagnostic(failed.stdout.trim());
  } finally {
    await forget(dir);
  }
}

test('preconditions: the conformance runner and results.mjs are installed', () => {
  assert.ok(fs.existsSync(RUNNER), `${RUNNER} exists (run npm ci in tests/conformance)`);
  assert.ok(fs.existsSync(RESULTS), `${RESULTS} exists`);
});

test("auth/dpop through the v2 SDK's DpopSession, the AS's algorithms", { timeout: 100_000 }, (t) =>
  passes(t, 'auth/dpop', 'default', 'ed25519'));

test("auth/dpop-nonce through the v2 SDK's DpopSession, the AS's algorithms", { timeout: 100_000 }, (t) =>
  passes(t, 'auth/dpop-nonce', 'default', 'ed25519'));

test("auth/dpop-nonce through the v2 SDK's DpopSession, offering EdDSA,ES256", { timeout: 100_000 }, (t) =>
  passes(t, 'auth/dpop-nonce', 'default', 'ed25519', { CONFORMANCE_DPOP_ALGS: 'EdDSA,ES256' }));

test("auth/dpop through the v2 SDK's DpopSession, a P-256 identity", { timeout: 100_000 }, async (t) => {
  if (!(await agentHasP256())) return t.skip(NO_P256);
  const add = await run(MCPSIG, ['-a', sharedSocket(), 'add-identity', P256_IDENTITY, '--alg', 'p256']);
  assert.equal(add.code, 0, `mcpsig add-identity ${P256_IDENTITY} --alg p256: ${add.stderr}`);
  try {
    await passes(t, 'auth/dpop', P256_IDENTITY, 'ecdsa-p256-sha256', { MCPSIG_IDENTITY: P256_IDENTITY });
  } finally {
    await run(MCPSIG, ['-a', sharedSocket(), '--identity', P256_IDENTITY, 'remove', '--all']);
  }
});

// The controls offer EdDSA too, so that they run in an agent without P-256 as well.
test('negative control: broken resource proofs make auth/dpop fail', { timeout: 100_000 }, (t) =>
  fails(t, 'auth/dpop', 'sep-1932-client-fresh-proof', 'signature does not verify', {
    CONFORMANCE_BREAK: 'resource',
    CONFORMANCE_DPOP_ALGS: 'EdDSA,ES256',
  }));

test('negative control: broken token-endpoint proofs make auth/dpop-nonce fail', { timeout: 100_000 }, (t) =>
  fails(t, 'auth/dpop-nonce', 'sep-1932-client-token-request-proof', 'signature does not verify', {
    CONFORMANCE_BREAK: 'token',
    CONFORMANCE_DPOP_ALGS: 'EdDSA,ES256',
  }));
