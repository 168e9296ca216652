// Shared by the tests: paths, child processes with time limits, a private
// agent, the test MCP server (tests/node/mcp-server.mjs) and a plain HTTP
// server that records what it receives.
//
// Environment (tests/node-binding.sh sets all of it):
//   MCPSIG_AUTH_SOCK   the shared agent that most tests use
//   MCPSIG             the mcpsig CLI
//   MCPSIG_AGENT       the mcpsig-agent binary, for tests that start, stop or
//                      kill an agent of their own
//   MCPSIG_MCP_SERVER  tests/node/mcp-server.mjs
//   MCPSIG_VERIFY      tests/node/lib/verify.mjs, the independent verifier
//   MCPSIG_CONFORMANCE tests/conformance (the runner and results.mjs)
// Paths default to their place in the mcpsig source tree.

import { spawn, execFile } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { AgentClient } from 'mcpsig';

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const PACKAGE = path.resolve(HERE, '..');
export const REPO = path.resolve(HERE, '../../..');
export const NODE = process.execPath;

export const MCPSIG = process.env.MCPSIG ?? path.join(REPO, 'build/cli/mcpsig');
export const MCPSIG_AGENT = process.env.MCPSIG_AGENT ?? path.join(REPO, 'build/daemon/mcpsig-agent');
export const MCP_SERVER = process.env.MCPSIG_MCP_SERVER ?? path.join(REPO, 'tests/node/mcp-server.mjs');
export const VERIFY = process.env.MCPSIG_VERIFY ?? path.join(REPO, 'tests/node/lib/verify.mjs');
export const CONFORMANCE = process.env.MCPSIG_CONFORMANCE ?? path.join(REPO, 'tests/conformance');

const CHILD_TIMEOUT_MS = 20_000;
const START_TIMEOUT_MS = 10_000;

/** The shared agent's socket; a test that needs it fails clearly without it. */
export function sharedSocket() {
  const sock = process.env.MCPSIG_AUTH_SOCK;
  if (!sock) throw new Error('MCPSIG_AUTH_SOCK is not set: run these tests through tests/node-binding.sh, or start an agent and export it');
  return sock;
}

/**
 * Whether the shared agent can make ECDSA P-256 keys (an agent built
 * --without-openssl signs Ed25519 only): the cases that need ES256 skip
 * without it, saying why.
 */
export async function agentHasP256() {
  const agent = new AgentClient({ socketPath: sharedSocket() });
  try {
    return (await agent.hello()).algorithms.includes('ecdsa-p256-sha256');
  } finally {
    agent.close();
  }
}

export const NO_P256 = 'the agent was built without OpenSSL: no P-256 keys';

/** The independent SEP-2752 verifier of tests/node. */
export async function verifier() {
  return import(pathToFileURL(VERIFY).href);
}

/** A fresh temporary directory, removed when the test ends. Short, for sun_path. */
export function tempDir(t, prefix = 'mcpsig-nb') {
  const dir = fs.mkdtempSync(path.join('/tmp', `${prefix}.`));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Runs a program without a shell; resolves to { code, signal, stdout, stderr }. */
export function run(file, args, { timeoutMs = CHILD_TIMEOUT_MS, env, input } = {}) {
  return new Promise((resolve) => {
    const child = execFile(
      file,
      args,
      { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 8 * 1024 * 1024, encoding: 'utf8', env: env ?? process.env },
      (error, stdout, stderr) => {
        resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, signal: error?.signal ?? null, stdout, stderr });
      },
    );
    child.stdin.on('error', () => {});
    child.stdin.end(input ?? '');
  });
}

/** Runs the mcpsig CLI against a socket; throws on a non-zero exit. */
export async function cli(args, { socket = sharedSocket(), timeoutMs } = {}) {
  const r = await run(MCPSIG, ['-a', socket, ...args], { timeoutMs });
  if (r.code !== 0) throw new Error(`mcpsig ${args.join(' ')} exited ${r.code}${r.signal ? ` (${r.signal})` : ''}: ${r.stderr.trim()}`);
  return r.stdout;
}

function waitForLine(proc, re, what) {
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`${what} did not start within ${START_TIMEOUT_MS} ms`)), START_TIMEOUT_MS);
    proc.stdout.setEncoding('utf8');
    proc.stdout.on('data', (chunk) => {
      out += chunk;
      const m = out.match(re);
      if (m) {
        clearTimeout(timer);
        resolve(m);
      }
    });
    proc.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited early (${code ?? signal})`));
    });
  });
}

function stopProcess(proc, timeoutMs = 5_000) {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
    }, timeoutMs);
    proc.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    proc.kill('SIGTERM');
  });
}

/**
 * Starts tests/node/mcp-server.mjs on a free port. Returns { url, base,
 * stats(), log }; the server is stopped when the test ends. log collects
 * its stderr lines, for diagnostics.
 */
export async function startMcpServer(t, args = []) {
  const proc = spawn(NODE, [MCP_SERVER, '0', '--lifetime', '180', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const log = [];
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (chunk) => log.push(...chunk.split('\n').filter(Boolean)));
  t.after(() => stopProcess(proc));
  const [, port] = await waitForLine(proc, /^PORT (\d+)$/m, 'mcp-server.mjs');
  const base = `http://127.0.0.1:${port}`;
  return {
    base,
    url: new URL(`${base}/mcp`),
    log,
    async stats() {
      const res = await fetch(`${base}/__stats`, { signal: AbortSignal.timeout(5_000) });
      return res.json();
    },
  };
}

/**
 * A plain HTTP server that records every request: { method, url, headers,
 * body (Buffer) }, and answers 200 {"ok":true}. Closed when the test ends.
 */
export async function startRecorder(t) {
  const requests = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      requests.push({ method: req.method, url: `http://${req.headers.host}${req.url}`, headers: req.headers, body: Buffer.concat(chunks) });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"ok":true}');
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise((resolve) => {
    server.closeAllConnections();
    server.close(resolve);
  }));
  return { base: `http://127.0.0.1:${server.address().port}`, requests };
}

/**
 * Starts a private mcpsig-agent on SOCK with keystore KS. Resolves once it
 * answers hello (at most 10 s). Returns { pid, proc, stop(), kill(signal) };
 * it is killed when the test ends.
 */
export async function startAgent(t, sock, ks) {
  const proc = spawn(MCPSIG_AGENT, ['-D', '-a', sock, '--keystore', ks], { stdio: ['ignore', 'ignore', 'pipe'] });
  const log = [];
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (chunk) => log.push(...chunk.split('\n').filter(Boolean)));
  t.after(() => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  });
  const probe = new AgentClient({ socketPath: sock, timeoutMs: 1_000 });
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`mcpsig-agent exited early (${proc.exitCode}): ${log.join(' | ')}`);
    try {
      await probe.hello();
      break;
    } catch (e) {
      if (Date.now() > deadline) throw new Error(`mcpsig-agent did not answer within ${START_TIMEOUT_MS} ms: ${e.message}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  probe.close();
  return {
    pid: proc.pid,
    proc,
    log,
    stop: () => stopProcess(proc),
    exited: () => new Promise((resolve) => (proc.exitCode !== null || proc.signalCode !== null ? resolve() : proc.once('exit', resolve))),
  };
}

/** The label of a request entry of the server's /__stats log. */
export function labelOf(entry) {
  return Object.values(entry.labels ?? {})[0] ?? { components: [] };
}

/** Races a promise against a time limit; rejects with `what` on overrun. */
export function within(ms, promise, what) {
  let timer;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
    }),
  ]);
}

export const TMP = os.tmpdir();
