// The msgpack-RPC client against a fake agent: msgid matching with several
// calls in flight and replies out of order, notifications between replies,
// error mapping (PROTOCOL.md §5), parameter encoding, and the failures of
// the connection: no agent, an agent that does not answer, one that dies
// with calls in flight and comes back, one that sends garbage.

import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { encode, Decoder } from '@msgpack/msgpack';
import { AgentClient, McpsigError, ERROR_CODES } from 'mcpsig';
import { tempDir, within } from './helpers.mjs';

// A fake agent on a Unix socket. `onRequest(req, conn)` sees each decoded
// request [0, msgid, method, params]; replies are sent with conn.reply().
async function fakeAgent(t, sock, onRequest) {
  const conns = new Set();
  const requests = [];
  const server = net.createServer((socket) => {
    const conn = {
      socket,
      reply: (msgid, error, result) => socket.write(encode([1, msgid, error, result])),
      notify: (method, params) => socket.write(encode([2, method, params])),
      raw: (bytes) => socket.write(bytes),
    };
    conns.add(conn);
    socket.on('close', () => conns.delete(conn));
    socket.on('error', () => {});
    (async () => {
      try {
        for await (const msg of new Decoder().decodeStream(socket)) {
          requests.push(msg);
          onRequest(msg, conn);
        }
      } catch {
        // The client went away.
      }
    })();
  });
  await new Promise((resolve) => server.listen(sock, resolve));
  const close = () =>
    new Promise((resolve) => {
      for (const c of conns) c.socket.destroy();
      server.close(() => resolve());
    });
  t.after(close);
  return { requests, conns, close };
}

test('several calls in flight: replies out of order are matched by msgid', async (t) => {
  const sock = path.join(tempDir(t), 'a.sock');
  const held = [];
  await fakeAgent(t, sock, (req, conn) => {
    held.push([req, conn]);
    if (held.length === 4) {
      // Answer in reverse order, with a notification and a reply to a msgid
      // never sent between the second and the third reply.
      held.reverse().forEach(([[, msgid, method, params], c], i) => {
        c.reply(msgid, null, { method, echo: params[0]?.n ?? null, msgid });
        if (i === 1) {
          c.notify('rotation', [{ event: 'commit', origin: 'https://a.example', tag: 't', old_keyid: 'k1', new_keyid: 'k2' }]);
          c.reply(0xfffffff0, null, { stray: true });
        }
      });
    }
  });
  const client = new AgentClient({ socketPath: sock, timeoutMs: 5_000 });
  t.after(() => client.close());
  const events = [];
  client.on('rotation', (e) => events.push(e));
  const calls = [1, 2, 3, 4].map((n) => client.call('hello.test', { n }));
  const results = await within(5_000, Promise.all(calls), 'four pipelined calls');
  assert.deepEqual(results.map((r) => r.echo), [1, 2, 3, 4], 'each call resolves with its own reply');
  const ids = results.map((r) => r.msgid);
  assert.equal(new Set(ids).size, 4, 'every request had its own msgid');
  assert.equal(events.length, 1, 'the notification between replies was delivered');
  assert.equal(events[0].new_keyid, 'k2');
});

test('error replies map to McpsigError with the PROTOCOL.md §5 names', async (t) => {
  const sock = path.join(tempDir(t), 'a.sock');
  await fakeAgent(t, sock, ([, msgid, method, params], conn) => {
    conn.reply(msgid, { code: params[0].code, message: `refused: code ${params[0].code}` }, null);
  });
  const client = new AgentClient({ socketPath: sock, timeoutMs: 5_000 });
  t.after(() => client.close());
  for (const [name, number] of Object.entries(ERROR_CODES)) {
    const err = await client.call('sign.http', { code: number }).then(
      () => null,
      (e) => e,
    );
    assert.ok(err instanceof McpsigError, `${name}: an McpsigError`);
    assert.ok(err instanceof Error, `${name}: an Error`);
    assert.equal(err.code, name, `code ${number} is ${name}`);
    assert.equal(err.errno, number, `${name}: errno ${number}`);
    assert.equal(err.method, 'sign.http', `${name}: names the method`);
    assert.match(err.message, new RegExp(`sign\\.http: refused: code ${number} \\(${name}\\)`), `${name}: the message carries the agent's text`);
  }
  // A code outside the table is an internal agent error (PROTOCOL.md §5).
  for (const odd of [5, 42, 1099, 2000]) {
    const err = await client.call('sign.http', { code: odd }).catch((e) => e);
    assert.equal(err.code, 'EAGENT', `unknown code ${odd} is EAGENT`);
    assert.equal(err.errno, 1022);
    assert.equal(err.wireCode, odd, 'the code that came is kept');
  }
});

test('a reply without msgid fails every call in flight with its error (EBUSY)', async (t) => {
  const sock = path.join(tempDir(t), 'a.sock');
  let seen = 0;
  await fakeAgent(t, sock, (req, conn) => {
    seen += 1;
    if (seen === 2) {
      conn.reply(null, { code: 1021, message: 'the agent is serving too many connections' }, null);
      conn.socket.end();
    }
  });
  const client = new AgentClient({ socketPath: sock, timeoutMs: 5_000 });
  t.after(() => client.close());
  const errs = await within(8_000, Promise.all([client.hello().catch((e) => e), client.hello().catch((e) => e)]), 'two calls');
  for (const e of errs) {
    assert.equal(e.code, 'EBUSY');
    assert.match(e.message, /too many connections/);
  }
});

test('parameters: undefined members are left out, bytes go as bin, headers as pairs', async (t) => {
  const sock = path.join(tempDir(t), 'a.sock');
  const fake = await fakeAgent(t, sock, ([, msgid], conn) => conn.reply(msgid, null, {}));
  const client = new AgentClient({ socketPath: sock, timeoutMs: 5_000 });
  t.after(() => client.close());
  await client.signHttp({
    method: 'POST',
    uri: new URL('https://mcp.example.com/mcp'),
    headers: new Headers({ 'MCP-Protocol-Version': '2025-06-18' }),
    body: 'héllo',
    acceptSignature: undefined,
  });
  await client.dpopProof({ origin: new URL('https://mcp.example.com/mcp'), htm: 'POST', htu: 'https://as.example.com/token', accessToken: 'tok', nonce: undefined });
  await client.call('hello');
  const [sign, dpop, hello] = fake.requests;
  assert.equal(sign[0], 0, 'a request envelope');
  assert.equal(sign[2], 'sign.http');
  const p = sign[3][0];
  assert.deepEqual(Object.keys(p).sort(), ['body', 'headers', 'method', 'uri'], 'no nil for the parameters not given');
  assert.ok(p.body instanceof Uint8Array, 'the body is bin');
  assert.equal(Buffer.from(p.body).toString('utf8'), 'héllo', 'a string body is its UTF-8 bytes');
  assert.deepEqual(p.headers, [['mcp-protocol-version', '2025-06-18']]);
  assert.equal(p.uri, 'https://mcp.example.com/mcp');
  assert.deepEqual(dpop[3][0], { origin: 'https://mcp.example.com', htm: 'POST', htu: 'https://as.example.com/token', access_token: 'tok' }, 'dpop.proof: wire names, URL origin');
  assert.deepEqual(hello[3], [], 'no params: an empty array');
});

test('no agent: a clear ECONNECT naming the socket path, at once', async (t) => {
  const dir = tempDir(t);
  const missing = path.join(dir, 'missing.sock');
  const client = new AgentClient({ socketPath: missing, timeoutMs: 10_000 });
  const t0 = Date.now();
  const err = await within(8_000, client.hello().catch((e) => e), 'a call with no agent');
  assert.ok(err instanceof McpsigError);
  assert.equal(err.code, 'ECONNECT');
  assert.equal(err.errno, 1017);
  assert.ok(err.message.includes(missing), `the message names ${missing}: ${err.message}`);
  assert.match(err.message, /Is mcpsig-agent running\?/);
  assert.ok(Date.now() - t0 < 5_000, `fails at once, not at the 10 s call timeout (${Date.now() - t0} ms)`);

  // A path that exists but where nothing listens.
  const stale = path.join(dir, 'stale.sock');
  fs.writeFileSync(stale, '');
  const err2 = await within(8_000, new AgentClient({ socketPath: stale }).hello().catch((e) => e), 'a call to a stale path');
  assert.equal(err2.code, 'ECONNECT');
  assert.ok(err2.message.includes(stale));

  const long = `/tmp/${'x'.repeat(120)}.sock`;
  const err3 = await new AgentClient({ socketPath: long }).hello().catch((e) => e);
  assert.equal(err3.code, 'ECONNECT');
  assert.match(err3.message, /longer than the 107 bytes/);
});

test('an agent that does not answer: ETIMEDOUT within the time limit', async (t) => {
  const sock = path.join(tempDir(t), 'a.sock');
  await fakeAgent(t, sock, () => {});
  const client = new AgentClient({ socketPath: sock, timeoutMs: 300 });
  t.after(() => client.close());
  const t0 = Date.now();
  const err = await within(8_000, client.hello().catch((e) => e), 'a call to a silent agent');
  assert.equal(err.code, 'ETIMEDOUT');
  assert.ok(err.message.includes(sock));
  assert.ok(Date.now() - t0 < 5_000, `at the 300 ms limit, not later (${Date.now() - t0} ms)`);
});

test('the agent dies with calls in flight: they fail fast, and the next call reconnects', async (t) => {
  const sock = path.join(tempDir(t), 'a.sock');
  let fake = await fakeAgent(t, sock, () => {});
  const client = new AgentClient({ socketPath: sock, timeoutMs: 10_000 });
  t.after(() => client.close());
  const disconnects = [];
  client.on('disconnect', (e) => disconnects.push(e));
  const inFlight = [client.hello().catch((e) => e), client.hello().catch((e) => e), client.hello().catch((e) => e)];
  while (fake.requests.length < 3) await new Promise((r) => setTimeout(r, 10));
  assert.equal(client.pending, 3, 'three calls in flight');
  const t0 = Date.now();
  await fake.close();
  const errs = await within(8_000, Promise.all(inFlight), 'calls in flight when the agent died');
  for (const e of errs) {
    assert.equal(e.code, 'ECLOSED');
    assert.ok(e.message.includes(sock), 'the error names the socket');
    assert.match(e.message, /3 requests in flight failed/);
  }
  assert.ok(Date.now() - t0 < 5_000, `they fail at once, not at the 10 s call timeout (${Date.now() - t0} ms)`);
  assert.equal(disconnects.length, 1, 'one disconnect event');

  // While it is down: ECONNECT, fast.
  const down = await within(8_000, client.hello().catch((e) => e), 'a call while the agent is down');
  assert.equal(down.code, 'ECONNECT');

  // Back on the same path: the same client works again.
  fs.rmSync(sock, { force: true });
  fake = await fakeAgent(t, sock, ([, msgid], conn) => conn.reply(msgid, null, { back: true }));
  assert.deepEqual(await within(8_000, client.hello(), 'a call after the agent came back'), { back: true });
});

test('garbage from the agent: EPROTO, and the connection is dropped', async (t) => {
  const sock = path.join(tempDir(t), 'a.sock');
  await fakeAgent(t, sock, (req, conn) => conn.raw(Buffer.from([0xc1, 0xc1, 0xc1])));
  const client = new AgentClient({ socketPath: sock, timeoutMs: 5_000 });
  t.after(() => client.close());
  const err = await within(8_000, client.hello().catch((e) => e), 'a call answered with garbage');
  assert.equal(err.code, 'EPROTO');
  assert.equal(client.connected, false);
});

test('subscribe: rotation events, and the subscription is renewed after a reconnect', async (t) => {
  const sock = path.join(tempDir(t), 'a.sock');
  const handler = ([, msgid, method], conn) => {
    conn.reply(msgid, null, {});
    if (method === 'subscribe') conn.notify('rotation', [{ event: 'begin', origin: 'https://a.example' }]);
  };
  let fake = await fakeAgent(t, sock, handler);
  const client = new AgentClient({ socketPath: sock, timeoutMs: 5_000 });
  t.after(() => client.close());
  const events = [];
  client.on('rotation', (e) => events.push(e));
  let subscribed = 0;
  client.on('subscribed', () => (subscribed += 1));
  assert.deepEqual(await client.subscribe(), {});
  await within(8_000, (async () => {
    while (events.length < 1) await new Promise((r) => setTimeout(r, 10));
  })(), 'the first event');
  await fake.close();
  fs.rmSync(sock, { force: true });
  fake = await fakeAgent(t, sock, handler);
  await within(10_000, (async () => {
    while (events.length < 2 || subscribed < 2) await new Promise((r) => setTimeout(r, 20));
  })(), 'the renewed subscription');
  assert.ok(fake.requests.some((r) => r[2] === 'subscribe'), 'the new connection subscribed again by itself');
  client.close();
  const closed = await client.hello().catch((e) => e);
  assert.equal(closed.code, 'ECLOSED', 'a closed client refuses further calls');
});

test('identityList follows the pages and joins them; pages that go back or stall are EPROTO', async (t) => {
  const b = (origin) => ({ identity: 'default', origin, tag: 't', keyid: 'k', alg: 'ed25519', state: 'active', pending_keyid: null, retired: [] });
  const sock = path.join(tempDir(t), 'a.sock');
  let script = [];
  const agent = await fakeAgent(t, sock, ([, msgid], conn) => conn.reply(msgid, null, script.shift()));
  const client = new AgentClient({ socketPath: sock, timeoutMs: 5_000 });
  t.after(() => client.close());

  script = [
    { identities: [{ name: 'default', alg: 'ed25519' }], bindings: [b('https://a.example')], next: 'default https://a.example' },
    { identities: [{ name: 'work', alg: 'ed25519' }], bindings: [b('https://b.example')], next: null },
  ];
  const list = await within(5_000, client.identityList(), 'two pages');
  assert.deepEqual(list.identities.map((i) => i.name), ['default', 'work'], 'the identities of both pages');
  assert.deepEqual(list.bindings.map((x) => x.origin), ['https://a.example', 'https://b.example'], 'the bindings of both pages, in order');
  const asked = agent.requests.slice(-2).map((r) => r[3]);
  assert.deepEqual(asked, [[], [{ after: 'default https://a.example' }]], 'the first request has no parameter, the second the cursor');

  script = [{ identities: [], bindings: [b('https://a.example'), b('https://b.example')] }];
  assert.equal((await client.identityList()).bindings.length, 2, 'an agent from before pages: one reply without next is everything');

  script = [
    { identities: [], bindings: [b('https://b.example')], next: 'default https://b.example' },
    { identities: [], bindings: [b('https://a.example')], next: null },
  ];
  const back = await client.identityList().then(() => null, (e) => e);
  assert.equal(back?.code, 'EPROTO', 'a page that goes back is EPROTO');
  assert.match(back.message, /out of order/);

  script = [{ identities: [], bindings: [], next: 'default https://a.example' }];
  const stall = await client.identityList().then(() => null, (e) => e);
  assert.equal(stall?.code, 'EPROTO', 'an empty page that promises more is EPROTO, not an endless loop');
});
