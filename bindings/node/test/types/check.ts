// Compiled (never run) by types.test.mjs: the declarations of mcpsig and
// mcpsig/dpop fit the v1 and v2 SDKs the way README.md shows.

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  StreamableHTTPClientTransport as V2Transport,
  type DpopSession,
  type OAuthClientProvider,
} from '@modelcontextprotocol/client';
import { AgentClient, McpsigError, signingFetch, socketPath, type SignHttpResult, type RotationEvent } from 'mcpsig';
import { AgentDpopSession } from 'mcpsig/dpop';

export async function v1(): Promise<void> {
  const url = new URL('https://mcp.example.com/mcp');
  const transport = new StreamableHTTPClientTransport(url, { fetch: signingFetch({ origin: url }) });
  const client = new Client({ name: 'typed', version: '1.0.0' });
  await client.connect(transport);
}

export async function v2(): Promise<void> {
  const url = new URL('https://mcp.example.com/mcp');
  const session: DpopSession = new AgentDpopSession({ origin: url, algorithms: ['ES256'] });
  const created: DpopSession = await AgentDpopSession.create({ origin: url.origin });
  const dpop: OAuthClientProvider['dpop'] = () => session;
  void created;
  void dpop;
  new V2Transport(url, { fetch: signingFetch({ origin: url, identity: 'work' }) });
}

export async function calls(): Promise<string> {
  const agent = new AgentClient({ socketPath: socketPath(), timeoutMs: 5000 });
  agent.on('rotation', (e: RotationEvent) => void e.new_keyid);
  const signed: SignHttpResult = await agent.signHttp({ method: 'POST', uri: 'https://mcp.example.com/mcp', body: '{}' });
  const proof = await agent.dpopProof({ origin: 'https://mcp.example.com', htm: 'POST', htu: 'https://as.example.com/token' });
  try {
    await agent.hello();
  } catch (e) {
    if (e instanceof McpsigError && e.code === 'ECONNECT') return e.socketPath ?? '';
  }
  return signed.headers['Signature-Input'] + proof.jkt;
}

// @ts-expect-error the MCP server's origin must be named
signingFetch({});
// @ts-expect-error so must the key scope of DPoP proofs
new AgentDpopSession({});
// @ts-expect-error dpop.proof takes htm, not method
new AgentClient().dpopProof({ origin: 'https://a.example', method: 'POST', htu: 'https://a.example/' });
