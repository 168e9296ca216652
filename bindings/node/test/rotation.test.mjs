// Key rotation while a host runs, and two hosts sharing one identity.

import test from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { signingFetch, AgentClient } from 'mcpsig';
import { MCPSIG, run, sharedSocket, startMcpServer, within } from './helpers.mjs';

async function connected(t, server, agent) {
  const transport = new StreamableHTTPClientTransport(server.url, { fetch: signingFetch({ origin: server.url, agent }) });
  const client = new Client({ name: 'mcpsig-binding-rotation', version: '0.0.0' });
  t.after(() => client.close().catch(() => {}));
  await within(15_000, client.connect(transport), 'connect');
  return { client, transport };
}

async function echo(client, text) {
  const r = await within(15_000, client.callTool({ name: 'echo', arguments: { text } }), `tools/call ${text}`);
  assert.equal(r.content[0].text, text);
}

test('rotation live: mcpsig rotate from another process; the same Client goes on with the new key and the same tag', async (t) => {
  const sock = sharedSocket();
  const server = await startMcpServer(t);
  const agent = new AgentClient({ socketPath: sock });
  t.after(() => agent.close());
  const watcher = new AgentClient({ socketPath: sock });
  t.after(() => watcher.close());
  const events = [];
  watcher.on('rotation', (e) => events.push(e));
  assert.deepEqual(await watcher.subscribe(), {}, 'subscribe');

  const { client, transport } = await connected(t, server, agent);
  await echo(client, 'before');
  const before = await agent.identityPublic({ origin: server.url });

  const r = await run(MCPSIG, ['-a', sock, 'rotate', server.url.href], { timeoutMs: 30_000 });
  assert.equal(r.code, 0, `mcpsig rotate exits 0: ${r.stderr}`);

  await echo(client, 'after');
  const tools = await within(15_000, client.listTools(), 'tools/list after the rotation');
  assert.ok(tools.tools.length > 0);
  await within(15_000, transport.terminateSession(), 'DELETE');

  const after = await agent.identityPublic({ origin: server.url });
  assert.notEqual(after.keyid, before.keyid, 'the agent has a new key');
  assert.equal(after.tag, before.tag, 'and the same tag');

  const s = await server.stats();
  assert.equal(s.rejected, 0, `no request was refused: ${JSON.stringify(s.requests.filter((e) => !e.ok).map((e) => e.errors))}`);
  assert.deepEqual(
    s.rotations.map(({ tag, old_keyid, new_keyid }) => ({ tag, old_keyid, new_keyid })),
    [{ tag: before.tag, old_keyid: before.keyid, new_keyid: after.keyid }],
    'the server moved the tag to the new key',
  );
  assert.equal(s.bindings[before.tag], after.keyid);
  assert.ok(s.retired.includes(before.keyid), 'and retired the old one');
  const rotateAt = s.requests.findIndex((e) => e.rpc.includes('signatures/rotateKey'));
  assert.ok(rotateAt > 0, 'the server saw signatures/rotateKey');
  const afterEntries = s.requests.slice(rotateAt + 1).filter((e) => e.rpc.includes('tools/call') || e.rpc.includes('tools/list'));
  assert.ok(afterEntries.length >= 2, 'the Client made requests after the rotation');
  for (const e of afterEntries) {
    assert.ok(e.ok, `#${e.seq} verified`);
    assert.deepEqual(e.keyids, [after.keyid], `#${e.seq} ${e.rpc} is signed with the new key`);
    assert.equal(e.tag, before.tag, `#${e.seq} carries the same tag`);
  }
  const first = s.requests.find((e) => e.rpc.includes('tools/call'));
  assert.deepEqual(first.keyids, [before.keyid], 'the call before the rotation used the old key');

  await within(5_000, (async () => {
    while (!events.some((e) => e.event === 'commit' && e.origin === server.base)) await new Promise((res) => setTimeout(res, 20));
  })(), 'the commit event');
  const steps = events.filter((e) => e.origin === server.base).map((e) => e.event);
  assert.deepEqual(steps, ['begin', 'commit'], 'a subscriber saw begin and commit');
  const commit = events.find((e) => e.event === 'commit' && e.origin === server.base);
  assert.equal(commit.old_keyid, before.keyid);
  assert.equal(commit.new_keyid, after.keyid);
  assert.equal(commit.tag, before.tag);
});

test('two hosts, one identity: a Node host and the C host (mcpsig sign) show the server the same tag', async (t) => {
  const sock = sharedSocket();
  const server = await startMcpServer(t);
  const agent = new AgentClient({ socketPath: sock });
  t.after(() => agent.close());

  const { client } = await connected(t, server, agent);
  await echo(client, 'from node');

  const body = JSON.stringify({
    jsonrpc: '2.0',
    id: 1,
    method: 'initialize',
    params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'mcpsig-sign', version: '0.0.0' } },
  });
  const headers = { 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream' };
  const args = ['-a', sock, 'sign', '-X', 'POST', '-u', server.url.href, '--data-binary', '@-', '--json'];
  for (const [k, v] of Object.entries(headers)) args.push('-H', `${k}: ${v}`);
  const signed = await run(MCPSIG, args, { input: body });
  assert.equal(signed.code, 0, `mcpsig sign: ${signed.stderr}`);
  const out = JSON.parse(signed.stdout);
  const res = await fetch(server.url, { method: 'POST', headers: { ...headers, ...out.headers }, body, signal: AbortSignal.timeout(10_000) });
  assert.equal(res.status, 200, 'the C host is accepted');
  await res.text();

  const s = await server.stats();
  const node = s.requests.filter((e) => e.ok && e.rpc.includes('tools/call'));
  const c = s.requests.filter((e) => e.ok && e.rpc.includes('initialize')).at(-1);
  assert.equal(node.length, 1);
  assert.ok(c, 'the C host request verified');
  assert.equal(c.tag, node[0].tag, 'the same tag');
  assert.deepEqual(c.keyids, node[0].keyids, 'the same key');
  assert.equal(out.tag, node[0].tag, 'mcpsig sign reports that tag too');
  assert.equal(s.rejected, 0);
});
