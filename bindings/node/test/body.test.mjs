// Body digesting: for every kind of body fetch takes, signingFetch has the
// agent digest exactly the bytes that go on the wire. A plain HTTP server
// records what arrives; the Content-Digest must be the SHA-256 of those bytes,
// the independent verifier (tests/node/lib/verify.mjs) must accept the
// request, and must refuse it once the body or the digest is changed.

import test from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { Readable } from 'node:stream';
import { signingFetch, contentDigest, AgentClient } from 'mcpsig';
import { sharedSocket, startRecorder, verifier } from './helpers.mjs';

const utf8 = (s) => Buffer.from(s, 'utf8');
const JSON_BODY = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"héllo wörld ✓ 署名 🔏"}}}';
const BIG = crypto.randomBytes(1_572_864); // 1.5 MiB: over the agent's 1 MiB, digested on the host side
const MULTI = ['{"part":', '1,"more":', '"chunks"}'];

// [name, make() -> [input or null, init], expected bytes, expected content-type or null]
const CASES = [
  ['string (UTF-8, non-ASCII)', () => [null, { method: 'POST', body: JSON_BODY, headers: { 'content-type': 'application/json' } }], utf8(JSON_BODY), 'application/json'],
  ['empty string', () => [null, { method: 'POST', body: '' }], Buffer.alloc(0), 'text/plain;charset=UTF-8'],
  [
    'Uint8Array view at an offset',
    () => {
      const whole = utf8(`XXXX${JSON_BODY}YYYY`);
      return [null, { method: 'POST', body: new Uint8Array(whole.buffer, whole.byteOffset + 4, whole.length - 8) }];
    },
    utf8(JSON_BODY),
    null,
  ],
  ['Buffer', () => [null, { method: 'POST', body: utf8(JSON_BODY) }], utf8(JSON_BODY), null],
  ['ArrayBuffer', () => [null, { method: 'POST', body: new Uint8Array(utf8(JSON_BODY)).buffer }], utf8(JSON_BODY), null],
  ['DataView', () => [null, { method: 'PUT', body: new DataView(new Uint8Array(utf8('data view')).buffer) }], utf8('data view'), null],
  [
    'URLSearchParams',
    () => [null, { method: 'POST', body: new URLSearchParams({ grant_type: 'authorization_code', code: 'a b&c=d', x: 'é' }) }],
    utf8(new URLSearchParams({ grant_type: 'authorization_code', code: 'a b&c=d', x: 'é' }).toString()),
    'application/x-www-form-urlencoded;charset=UTF-8',
  ],
  ['no body (GET)', () => [null, { method: 'GET' }], Buffer.alloc(0), null],
  ['no body (DELETE, lowercase method)', () => [null, { method: 'delete', headers: { 'mcp-session-id': 'sess-1' } }], Buffer.alloc(0), null],
  ['Blob', () => [null, { method: 'POST', body: new Blob([JSON_BODY], { type: 'application/json' }) }], utf8(JSON_BODY), 'application/json'],
  [
    'ReadableStream in several chunks',
    () => {
      const chunks = MULTI.map(utf8);
      const stream = new ReadableStream({
        pull(controller) {
          const next = chunks.shift();
          if (next) controller.enqueue(new Uint8Array(next));
          else controller.close();
        },
      });
      return [null, { method: 'POST', body: stream, duplex: 'half' }];
    },
    utf8(MULTI.join('')),
    null,
  ],
  ['Node Readable (async iterable)', () => [null, { method: 'POST', body: Readable.from(MULTI.map(utf8)), duplex: 'half' }], utf8(MULTI.join('')), null],
  [
    'FormData (multipart, its boundary kept)',
    () => {
      const form = new FormData();
      form.append('field', 'välue');
      form.append('file', new Blob(['file bytes'], { type: 'text/plain' }), 'f.txt');
      return [null, { method: 'POST', body: form }];
    },
    null, // the boundary is random: checked against what arrived
    'multipart/form-data',
  ],
  ['a Request object', () => [new Request('http://placeholder/', { method: 'POST', body: JSON_BODY }), undefined], utf8(JSON_BODY), 'text/plain;charset=UTF-8'],
  ['1.5 MiB body (digested in the host)', () => [null, { method: 'POST', body: BIG }], BIG, null],
];

test('body digesting: Content-Digest is the SHA-256 of the exact bytes sent, for every body type', async (t) => {
  const { verifyRequest } = await verifier();
  const server = await startRecorder(t);
  const agent = new AgentClient({ socketPath: sharedSocket() });
  t.after(() => agent.close());
  const signed = [];
  const fetchSigned = signingFetch({ origin: server.base, agent, onSignature: (s) => signed.push(s) });

  for (const [name, make, expected, contentType] of CASES) {
    await t.test(name, async () => {
      const before = server.requests.length;
      let [input, init] = make();
      const url = `${server.base}/mcp?case=${encodeURIComponent(name)}`;
      if (input) input = new Request(url, input);
      const res = await fetchSigned(input ?? url, init);
      assert.equal(res.status, 200);
      await res.text();
      assert.equal(server.requests.length, before + 1, 'one request arrived');
      const got = server.requests.at(-1);
      const body = got.body;
      if (expected) assert.ok(body.equals(expected), `the bytes that arrived are the body (${body.length} vs ${expected.length} bytes)`);
      if (contentType) assert.ok(String(got.headers['content-type']).startsWith(contentType), `content-type ${got.headers['content-type']}`);
      if (name.startsWith('FormData')) assert.ok(body.includes(utf8('välue')) && body.includes(utf8('file bytes')), 'the multipart body holds both parts');

      const digest = `sha-256=:${crypto.createHash('sha256').update(body).digest('base64')}:`;
      assert.equal(got.headers['content-digest'], digest, 'Content-Digest is the SHA-256 of the bytes that arrived');
      assert.equal(contentDigest(body), digest, 'contentDigest() agrees');
      assert.ok(got.headers['signature-input'] && got.headers.signature && got.headers['signature-agent'], 'signed');
      assert.equal(got.method, init?.method?.toUpperCase?.() ?? input?.method ?? 'GET', 'the method as sent');

      const request = { method: got.method, url: got.url, headers: got.headers, body };
      const good = await verifyRequest(request);
      assert.ok(good.ok, `the verifier accepts it: ${good.errors.join('; ')}`);

      // Forgeries: one byte more, or a digest of other bytes.
      const longer = await verifyRequest({ ...request, body: Buffer.concat([body, utf8(' ')]) });
      assert.equal(longer.ok, false, 'a changed body is refused');
      assert.ok(longer.errors.some((e) => /Content-Digest sha-256 mismatch/.test(e)), longer.errors.join('; '));
      const otherDigest = `sha-256=:${crypto.createHash('sha256').update('other').digest('base64')}:`;
      const swapped = await verifyRequest({ ...request, headers: { ...got.headers, 'content-digest': otherDigest }, body: utf8('other') });
      assert.equal(swapped.ok, false, 'another body with its own digest is refused: the digest is signed');
      assert.ok(swapped.errors.some((e) => /signature does not verify/.test(e)), swapped.errors.join('; '));
    });
  }
  assert.equal(signed.length, CASES.length, 'one signature per request');
});

test('a body that is changed after signing is refused by the verifier', async (t) => {
  const { verifyRequest } = await verifier();
  const server = await startRecorder(t);
  const agent = new AgentClient({ socketPath: sharedSocket() });
  t.after(() => agent.close());
  // A fetch underneath that alters the body after the agent signed it: what
  // a buggy host transport would do.
  const tamper = (url, init) => fetch(url, { ...init, body: utf8(Buffer.from(init.body).toString('utf8').replace('signed', 'forged')) });
  const fetchSigned = signingFetch({ origin: server.base, agent, fetch: tamper });
  const res = await fetchSigned(`${server.base}/mcp`, { method: 'POST', body: '{"text":"signed"}' });
  await res.text();
  const got = server.requests.at(-1);
  assert.equal(got.body.toString(), '{"text":"forged"}');
  const result = await verifyRequest({ method: got.method, url: got.url, headers: got.headers, body: got.body });
  assert.equal(result.ok, false);
  assert.ok(result.errors.some((e) => /Content-Digest sha-256 mismatch/.test(e)), result.errors.join('; '));
});
