// A real Client of the pinned v1 SDK (@modelcontextprotocol/sdk) with
// signingFetch, against tests/node/mcp-server.mjs, which verifies every
// request with the independent verifier before the SDK's server sees it.

import test from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { signingFetch, AgentClient } from 'mcpsig';
import { sharedSocket, startMcpServer, labelOf, within } from './helpers.mjs';

const TEXT = 'héllo wörld ✓ 署名 🔏';

async function waitFor(what, cond, ms = 5_000) {
  await within(ms, (async () => {
    while (!(await cond())) await new Promise((r) => setTimeout(r, 25));
  })(), what);
}

test('v1 SDK end to end: initialize, GET stream, tools/list, tools/call and DELETE all verify', async (t) => {
  const server = await startMcpServer(t);
  const agent = new AgentClient({ socketPath: sharedSocket() });
  t.after(() => agent.close());
  const signatures = [];
  const transport = new StreamableHTTPClientTransport(server.url, {
    fetch: signingFetch({ origin: server.url, agent, onSignature: (s) => signatures.push(s) }),
  });
  const client = new Client({ name: 'mcpsig-binding-e2e', version: '0.0.0' });
  t.after(() => client.close().catch(() => {}));

  await within(15_000, client.connect(transport), 'connect');
  // The transport opens its GET stream after notifications/initialized.
  await waitFor('the GET stream', async () => (await server.stats()).requests.some((e) => e.method === 'GET'));
  const { tools } = await within(15_000, client.listTools(), 'tools/list');
  assert.ok(tools.some((tool) => tool.name === 'echo'), 'tools/list lists echo');
  const call = await within(15_000, client.callTool({ name: 'echo', arguments: { text: TEXT } }), 'tools/call');
  assert.equal(call.content[0].text, TEXT, 'tools/call echoes the text unchanged');
  await within(15_000, transport.terminateSession(), 'DELETE');
  await client.close();

  const s = await server.stats();
  const mcp = s.requests;
  const seen = mcp.map((e) => `${e.method} ${e.rpc.join(',') || '-'}`);
  for (const want of ['POST initialize', 'POST notifications/initialized', 'GET -', 'POST tools/list', 'POST tools/call', 'DELETE -']) {
    assert.ok(seen.includes(want), `the server saw ${want} (saw: ${seen.join('; ')})`);
  }
  assert.equal(s.rejected, 0, `no request was refused: ${JSON.stringify(mcp.filter((e) => !e.ok).map((e) => e.errors))}`);
  assert.equal(s.verified, mcp.length, 'every request verified');
  assert.equal(signatures.length, mcp.length, 'one signature per request, none retried');
  assert.ok(mcp.every((e) => e.ok && e.status >= 200 && e.status < 300), 'every request succeeded');

  for (const e of mcp) {
    const label = labelOf(e);
    const what = `#${e.seq} ${e.method} ${e.rpc.join(',') || '(no body)'}`;
    assert.equal(label.components.includes('mcp-session-id'), e.sessionHeader, `${what}: mcp-session-id covered exactly when sent (${e.sessionHeader})`);
    assert.equal(label.components.includes('mcp-protocol-version'), e.protocolHeader, `${what}: mcp-protocol-version covered exactly when sent`);
  }
  const init = mcp.find((e) => e.rpc.includes('initialize'));
  assert.equal(init.sessionHeader, false, 'initialize carries no session id');
  assert.deepEqual(labelOf(init).components, ['@method', '@target-uri', 'content-digest']);
  for (const e of mcp.filter((x) => x !== init)) assert.equal(e.sessionHeader, true, `#${e.seq} ${e.method} carries the session id`);

  const pub = await agent.identityPublic({ origin: server.url });
  assert.ok(mcp.every((e) => e.keyids.length === 1 && e.keyids[0] === pub.keyid), 'every request is signed by the agent key of this origin');
  assert.ok(mcp.every((e) => e.tag === pub.tag), 'and carries its tag');
});

test('a 401 with Accept-Signature is answered once, as the server asks', async (t) => {
  const server = await startMcpServer(t);
  const agent = new AgentClient({ socketPath: sharedSocket() });
  t.after(() => agent.close());
  // Underneath: a fetch that drops the signature of the first request, as a
  // proxy might; the server answers 401 with Accept-Signature.
  let drop = 1;
  const lossy = (url, init) => {
    const headers = new Headers(init.headers);
    if (drop-- > 0) for (const h of ['signature', 'signature-input', 'signature-agent']) headers.delete(h);
    return fetch(url, { ...init, headers });
  };
  const signatures = [];
  const transport = new StreamableHTTPClientTransport(server.url, {
    fetch: signingFetch({ origin: server.base, agent, fetch: lossy, onSignature: (s) => signatures.push(s) }),
  });
  const client = new Client({ name: 'mcpsig-binding-retry', version: '0.0.0' });
  t.after(() => client.close().catch(() => {}));
  await within(15_000, client.connect(transport), 'connect after a 401');
  await client.close();

  const s = await server.stats();
  assert.equal(s.requests[0].reason, 'unsigned', 'the first initialize arrived unsigned and was refused');
  assert.equal(s.requests[0].status, 401);
  assert.ok(s.requests[1].ok && s.requests[1].rpc.includes('initialize'), 'the retried initialize verified');
  assert.equal(signatures[0].retry, false);
  assert.equal(signatures[1].retry, true, 'the second signature answered Accept-Signature');

  // A server that keeps refusing gets exactly one retry; the 401 reaches the caller.
  const never = (url, init) => {
    const headers = new Headers(init.headers);
    for (const h of ['signature', 'signature-input', 'signature-agent']) headers.delete(h);
    return fetch(url, { ...init, headers });
  };
  const before = (await server.stats()).requests.length;
  const f = signingFetch({ origin: server.base, agent, fetch: never });
  const res = await f(server.url, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body: '{"jsonrpc":"2.0","id":9,"method":"ping"}' });
  assert.equal(res.status, 401);
  await res.text();
  assert.equal((await server.stats()).requests.length - before, 2, 'one request and one retry, no more');
});

test('v2 SDK: signingFetch as the fetch of its StreamableHTTPClientTransport', async (t) => {
  const { Client: V2Client, StreamableHTTPClientTransport: V2Transport } = await import('@modelcontextprotocol/client');
  const server = await startMcpServer(t);
  const agent = new AgentClient({ socketPath: sharedSocket() });
  t.after(() => agent.close());
  const transport = new V2Transport(server.url, { fetch: signingFetch({ origin: server.url, agent }) });
  const client = new V2Client({ name: 'mcpsig-binding-v2', version: '0.0.0' }, { capabilities: {} });
  t.after(() => client.close().catch(() => {}));
  await within(15_000, client.connect(transport), 'connect');
  const call = await within(15_000, client.callTool({ name: 'echo', arguments: { text: TEXT } }), 'tools/call');
  assert.equal(call.content[0].text, TEXT);
  await within(15_000, transport.terminateSession(), 'DELETE');
  await client.close();
  const s = await server.stats();
  assert.ok(s.requests.length >= 4, `a whole session (${s.requests.length} requests)`);
  assert.equal(s.rejected, 0, JSON.stringify(s.requests.filter((e) => !e.ok).map((e) => e.errors)));
  assert.equal(s.verified, s.requests.length, 'every request verified');
  for (const e of s.requests) assert.equal(labelOf(e).components.includes('mcp-session-id'), e.sessionHeader, `#${e.seq}: mcp-session-id covered exactly when sent`);
});
