// What must not happen: a signature sent to another origin, a hang when the
// agent is not running, a host that must restart after the agent died.

import test from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { signingFetch, AgentClient, McpsigError } from 'mcpsig';
import { sharedSocket, startAgent, startMcpServer, startRecorder, tempDir, within } from './helpers.mjs';

const SIGNATURE_FIELDS = ['signature', 'signature-input', 'signature-agent', 'content-digest'];

test('a request to another origin is passed through unsigned and untouched', async (t) => {
  const mcp = await startRecorder(t);
  const other = await startRecorder(t);
  const agent = new AgentClient({ socketPath: sharedSocket() });
  t.after(() => agent.close());
  const f = signingFetch({ origin: `${mcp.base}/mcp`, agent });

  const r1 = await f(`${other.base}/.well-known/oauth-authorization-server`, { headers: { 'x-probe': 'as-metadata' } });
  await r1.text();
  const r2 = await f(`${other.base}/token`, { method: 'POST', body: new URLSearchParams({ grant_type: 'authorization_code' }), headers: { authorization: 'Basic abc' } });
  await r2.text();
  // The same server under another host name is another origin.
  const aliased = mcp.base.replace('127.0.0.1', 'localhost');
  const r3 = await f(`${aliased}/mcp`, { method: 'POST', body: '{}' });
  await r3.text();
  const r4 = await f(`${mcp.base}/mcp`, { method: 'POST', body: '{}' });
  await r4.text();

  assert.equal(other.requests.length, 2);
  for (const req of other.requests) {
    for (const h of SIGNATURE_FIELDS) assert.equal(req.headers[h], undefined, `${req.method} ${req.url}: no ${h}`);
  }
  assert.equal(other.requests[0].headers['x-probe'], 'as-metadata', 'headers pass unchanged');
  assert.equal(other.requests[1].headers.authorization, 'Basic abc');
  assert.equal(other.requests[1].body.toString(), 'grant_type=authorization_code', 'the body passes unchanged');
  assert.equal(mcp.requests.length, 2);
  for (const h of SIGNATURE_FIELDS) assert.equal(mcp.requests[0].headers[h], undefined, `${aliased}: no ${h}`);
  for (const h of SIGNATURE_FIELDS) assert.ok(mcp.requests[1].headers[h], `the MCP origin itself is signed (${h})`);

  assert.throws(() => signingFetch({ agent }), /origin is required/, 'an origin must be named');
  assert.throws(() => signingFetch({ origin: 'not a url', agent }), /http or https URL/);
});

test('the agent is not running: a clear error naming the socket path, at once', async (t) => {
  const dir = tempDir(t);
  const sock = path.join(dir, 'agent.sock');
  const server = await startMcpServer(t);
  const other = await startRecorder(t);
  const f = signingFetch({ origin: server.url, socketPath: sock });

  const t0 = Date.now();
  const transport = new StreamableHTTPClientTransport(server.url, { fetch: f });
  const client = new Client({ name: 'mcpsig-binding-noagent', version: '0.0.0' });
  t.after(() => client.close().catch(() => {}));
  const err = await within(8_000, client.connect(transport).then(() => null, (e) => e), 'connect without an agent');
  assert.ok(err instanceof McpsigError, `an McpsigError reaches the host: ${err}`);
  assert.equal(err.code, 'ECONNECT');
  assert.ok(err.message.includes(sock), `it names ${sock}: ${err.message}`);
  assert.match(err.message, /Is mcpsig-agent running\?/);
  assert.ok(Date.now() - t0 < 5_000, `at once, not at the 10 s call timeout (${Date.now() - t0} ms)`);
  assert.equal((await server.stats()).requests.length, 0, 'nothing unsigned was sent to the MCP server');

  // Requests to other origins do not need the agent.
  const res = await f(`${other.base}/x`);
  assert.equal(res.status, 200);
  await res.text();
});

test('the agent dies mid-session: requests fail fast and clearly, then work again when it is back', async (t) => {
  const dir = tempDir(t);
  const sock = path.join(dir, 'agent.sock');
  const ks = path.join(dir, 'ks');
  let agentProc = await startAgent(t, sock, ks);
  const server = await startMcpServer(t);
  const agent = new AgentClient({ socketPath: sock });
  t.after(() => agent.close());
  const transport = new StreamableHTTPClientTransport(server.url, { fetch: signingFetch({ origin: server.url, agent }) });
  const client = new Client({ name: 'mcpsig-binding-agentdeath', version: '0.0.0' });
  t.after(() => client.close().catch(() => {}));
  await within(15_000, client.connect(transport), 'connect');
  const ok1 = await within(15_000, client.callTool({ name: 'echo', arguments: { text: 'one' } }), 'tools/call');
  assert.equal(ok1.content[0].text, 'one');
  const keyid = (await server.stats()).requests.at(-1).keyids[0];

  // Freeze the agent so that the next signature is in flight, then kill it.
  process.kill(agentProc.pid, 'SIGSTOP');
  const t0 = Date.now();
  const pending = client.callTool({ name: 'echo', arguments: { text: 'lost' } }).then(() => null, (e) => e);
  await within(8_000, (async () => {
    while (agent.pending === 0) await new Promise((r) => setTimeout(r, 10));
  })(), 'the signature request');
  process.kill(agentProc.pid, 'SIGKILL');
  await agentProc.exited();
  const err = await within(8_000, pending, 'a call whose signature was in flight');
  assert.ok(err instanceof McpsigError, `an McpsigError: ${err}`);
  assert.equal(err.code, 'ECLOSED');
  assert.ok(err.message.includes(sock) && /closed the connection/.test(err.message), err.message);
  assert.ok(Date.now() - t0 < 5_000, `at once (${Date.now() - t0} ms), not at the 10 s call timeout`);

  // While the agent is gone, each request fails at once.
  const t1 = Date.now();
  const down = await within(8_000, client.callTool({ name: 'echo', arguments: { text: 'down' } }).then(() => null, (e) => e), 'a call while the agent is down');
  assert.equal(down?.code, 'ECONNECT');
  assert.ok(down.message.includes(sock));
  assert.ok(Date.now() - t1 < 5_000, `at once (${Date.now() - t1} ms)`);

  // The agent comes back on the same socket: the same Client works again.
  agentProc = await startAgent(t, sock, ks);
  const ok2 = await within(15_000, client.callTool({ name: 'echo', arguments: { text: 'two' } }), 'tools/call after the agent came back');
  assert.equal(ok2.content[0].text, 'two');
  const s = await server.stats();
  const last = s.requests.at(-1);
  assert.ok(last.ok && last.rpc.includes('tools/call'), 'verified');
  assert.deepEqual(last.keyids, [keyid], 'with the same key, kept in the keystore');
  assert.ok(!s.requests.some((e) => e.reason === 'unsigned'), 'no request ever went out unsigned');
  await agentProc.stop();
});
