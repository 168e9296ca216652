// A Node host for tests/fake-agent.sh: every call of the Node package that
// talks to the agent, through an AgentClient and through signingFetch, each
// carrying something a fake agent must never see. Prints one line per call:
// "NAME ok", or "NAME CODE MESSAGE" when it was refused.
//
//   node fake-agent-host.mjs BINDING_DIR [SOCKET]
//
// Without SOCKET the package finds the socket itself ($MCPSIG_AUTH_SOCK, else
// the default path rule), as a host does.

import path from 'node:path';
import { pathToFileURL } from 'node:url';

const [binding, socketPath] = process.argv.slice(2);
const { AgentClient, signingFetch } = await import(pathToFileURL(path.join(binding, 'index.js')).href);

const agent = new AgentClient({ socketPath, timeoutMs: 3_000 });
const calls = [
  ['hello', () => agent.hello()],
  ['agentStatus', () => agent.agentStatus()],
  ['identityList', () => agent.identityList()],
  ['identityPublic', () => agent.identityPublic({ origin: 'https://fake.example' })],
  [
    'signHttp',
    () =>
      agent.signHttp({
        method: 'POST',
        uri: 'https://fake.example/mcp',
        headers: { authorization: 'Bearer node-secret-token' },
        body: '{"secret":"node-body"}',
      }),
  ],
  [
    'dpopProof',
    () => agent.dpopProof({ origin: 'https://fake.example', htm: 'POST', htu: 'https://fake.example/mcp', accessToken: 'node-access-token' }),
  ],
  ['identity.import', () => agent.call('identity.import', { origin: 'https://imported.example', seed: new Uint8Array(32).fill(7) })],
  ['subscribe', () => agent.subscribe()],
  [
    'signingFetch',
    async () => {
      const fetch = signingFetch({ origin: 'https://fake.example', socketPath, timeoutMs: 3_000, fetch: async () => new Response('{}') });
      try {
        return await fetch('https://fake.example/mcp', { method: 'POST', body: '{"fetch":1}' });
      } finally {
        fetch.agent.close();
      }
    },
  ],
];
for (const [name, run] of calls) {
  try {
    await run();
    console.log(`${name} ok`);
  } catch (e) {
    console.log(`${name} ${e.code ?? e.name} ${String(e.message).replace(/\n/g, ' ')}`);
  }
}
agent.close();
