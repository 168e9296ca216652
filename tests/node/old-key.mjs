// Signs a fresh initialize with a key the test holds itself (the agent is not
// involved) and reports what the server says. The rotation test uses it to
// show that the server accepts k1 before a rotation and refuses it after:
// a fresh request, not a replay, so the refusal is about the key and not the
// nonce cache.
//
// Usage: node old-key.mjs URL SEED_FILE TAG EXPECTED_STATUS
// SEED_FILE holds the 32 raw bytes of the Ed25519 seed. Exits 0 when the
// server answers EXPECTED_STATUS, 1 otherwise (printing what it got).

import fs from 'node:fs';
import { ed25519FromSeed, signRequest } from './lib/sign.mjs';

const [url, seedFile, tag, expected] = process.argv.slice(2);
if (!url || !seedFile || !tag || !/^\d{3}$/.test(expected ?? '')) {
  console.error('usage: node old-key.mjs URL SEED_FILE TAG EXPECTED_STATUS');
  process.exit(2);
}
const seed = fs.readFileSync(seedFile);
if (seed.length !== 32) {
  console.error(`${seedFile} holds ${seed.length} bytes, not a 32-byte seed`);
  process.exit(2);
}
const key = ed25519FromSeed(seed);
const body = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'old-key-probe', version: '0' } },
});
const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
const signed = await signRequest({ method: 'POST', url, headers, body }, [
  { label: 'sig1', privateKey: key.privateKey, jwk: key.jwk, tag },
]);
const res = await fetch(url, {
  method: 'POST',
  headers: { ...headers, ...signed },
  body,
  signal: AbortSignal.timeout(15_000),
});
const text = await res.text();
if (String(res.status) !== expected) {
  console.error(`expected HTTP ${expected}, got ${res.status}: ${text.slice(0, 500)}`);
  process.exit(1);
}
console.log(`HTTP ${res.status}${res.status === 401 ? `: ${text.slice(0, 300)}` : ''}`);
