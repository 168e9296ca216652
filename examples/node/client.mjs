// A complete MCP client whose every request to the server is signed by
// mcpsig-agent (RFC 9421, SEP-2752). No key is ever in this process.
//
//   node client.mjs https://mcp.example.com/mcp
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { signingFetch } from 'mcpsig';

const url = new URL(process.argv[2] ?? 'http://127.0.0.1:3000/mcp');
const transport = new StreamableHTTPClientTransport(url, {
  fetch: signingFetch({ origin: url }), // signs requests to this origin only
});
const client = new Client({ name: 'mcpsig-example', version: '1.0.0' });

await client.connect(transport);
const { tools } = await client.listTools();
console.log('tools:', tools.map((tool) => tool.name).join(', '));
if (tools.some((tool) => tool.name === 'echo')) {
  const result = await client.callTool({ name: 'echo', arguments: { text: 'signed by mcpsig' } });
  console.log('echo:', result.content[0].text);
}
await transport.terminateSession();
await client.close();
