// mcpsig: sign MCP client requests with mcpsig-agent. See README.md.
//
// The DpopSession adapter for the v2 SDK is in 'mcpsig/dpop', so that hosts
// on the v1 SDK need not install @modelcontextprotocol/client.

export { AgentClient, DEFAULT_TIMEOUT_MS, EXTENSION_NAME } from './lib/client.js';
export { McpsigError, ERROR_CODES } from './lib/errors.js';
export { socketPath, defaultSocketPath, socketRefusal } from './lib/sockpath.js';
export { signingFetch, contentDigest } from './lib/fetch.js';
