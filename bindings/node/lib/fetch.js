// signingFetch: a fetch for the MCP SDK's StreamableHTTPClientTransport that
// has mcpsig-agent sign every request to the MCP server (RFC 9421, SEP-2752).
//
// The host never holds a key: each request is described to the agent (method,
// target URI, headers, the exact body bytes) and the four header fields it
// returns are added before the request is sent.

import crypto from 'node:crypto';
import { AgentClient } from './client.js';

// The largest body the agent digests itself (PROTOCOL.md §4). Larger bodies
// are digested here and sent as content_digest.
const MAX_BODY_LEN = 1_048_576;

// Fields that carry credentials are not shown to the agent unless a covered
// component names them: the agent has no use for them otherwise.
const PRIVATE_FIELDS = new Set(['authorization', 'proxy-authorization', 'cookie', 'dpop']);
// The fields the agent writes.
const SIGNATURE_FIELDS = new Set(['signature', 'signature-input', 'signature-agent']);

// fetch normalizes these methods to uppercase (Fetch standard, "normalize a
// method"); the signature must cover the method as it is sent.
const NORMALIZED_METHODS = new Set(['DELETE', 'GET', 'HEAD', 'OPTIONS', 'POST', 'PUT']);

export function normalizeMethod(method) {
  const m = String(method ?? 'GET');
  return NORMALIZED_METHODS.has(m.toUpperCase()) ? m.toUpperCase() : m;
}

/** The RFC 9530 Content-Digest value of some bytes, as the agent writes it. */
export function contentDigest(bytes) {
  return `sha-256=:${crypto.createHash('sha256').update(bytes).digest('base64')}:`;
}

/** The serialized origin of a URL or origin string; throws on anything else. */
export function originOf(value, what = 'origin') {
  let url;
  try {
    url = new URL(value instanceof URL ? value.href : String(value));
  } catch {
    throw new TypeError(`${what} must be an http or https URL or origin, got ${JSON.stringify(String(value))}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new TypeError(`${what} must be an http or https URL or origin, got ${JSON.stringify(url.href)}`);
  }
  return url.origin;
}

function isDirectBody(body) {
  return (
    body === undefined ||
    body === null ||
    typeof body === 'string' ||
    body instanceof ArrayBuffer ||
    ArrayBuffer.isView(body) ||
    body instanceof URLSearchParams
  );
}

function copyBytes(body) {
  if (body instanceof ArrayBuffer) return new Uint8Array(body.slice(0));
  return new Uint8Array(body.buffer.slice(body.byteOffset, body.byteOffset + body.byteLength));
}

function isStreamBody(body) {
  return (
    body !== null &&
    typeof body === 'object' &&
    (typeof body.getReader === 'function' || typeof body[Symbol.asyncIterator] === 'function')
  );
}

const REQUEST_OPTIONS = ['cache', 'credentials', 'integrity', 'keepalive', 'mode', 'redirect', 'referrer', 'referrerPolicy', 'signal'];

/**
 * The request as it will be sent: the URL, the method, the headers and the
 * exact body bytes (undefined for no body). Bodies that are not bytes already
 * (Blob, FormData, streams) are read in full here, so that the bytes digested
 * are the bytes sent; a FormData body keeps the boundary of its Content-Type.
 */
export async function prepareRequest(input, init = {}) {
  init = init ?? {};
  if (!(input instanceof Request) && isDirectBody(init.body)) {
    const url = new URL(input instanceof URL ? input.href : String(input));
    const headers = new Headers(init.headers);
    let body;
    if (typeof init.body === 'string') {
      body = new TextEncoder().encode(init.body);
      if (!headers.has('content-type')) headers.set('content-type', 'text/plain;charset=UTF-8');
    } else if (init.body instanceof URLSearchParams) {
      body = new TextEncoder().encode(init.body.toString());
      if (!headers.has('content-type')) headers.set('content-type', 'application/x-www-form-urlencoded;charset=UTF-8');
    } else if (init.body !== undefined && init.body !== null) {
      body = copyBytes(init.body);
    }
    const { body: _b, headers: _h, method: _m, duplex: _d, ...rest } = init;
    return { url, method: normalizeMethod(init.method), headers, body, rest };
  }
  const requestInit = isStreamBody(init.body) ? { ...init, duplex: 'half' } : init;
  const request = new Request(input, requestInit);
  const body = request.body === null ? undefined : new Uint8Array(await request.arrayBuffer());
  const rest = {};
  for (const key of REQUEST_OPTIONS) {
    if (init[key] !== undefined) rest[key] = init[key];
    else if (input instanceof Request && key === 'signal') rest.signal = request.signal;
    else if (input instanceof Request && key === 'redirect') rest.redirect = request.redirect;
  }
  if (init.dispatcher !== undefined) rest.dispatcher = init.dispatcher;
  return { url: new URL(request.url), method: request.method, headers: new Headers(request.headers), body, rest };
}

// The quoted names in an Accept-Signature value or a components list: enough
// to know which private fields a server asks to have covered.
function namedComponents(acceptSignature, components) {
  const names = new Set((components ?? []).map((c) => String(c).toLowerCase()));
  if (acceptSignature) for (const m of acceptSignature.matchAll(/"([^"\\]*)"/g)) names.add(m[1].toLowerCase());
  return names;
}

function fieldsForAgent(headers, covered) {
  const pairs = [];
  for (const [name, value] of headers) {
    if (SIGNATURE_FIELDS.has(name)) continue;
    if (PRIVATE_FIELDS.has(name) && !covered.has(name)) continue;
    pairs.push([name, value]);
  }
  return pairs;
}

/**
 * A fetch that signs every request to one origin, the MCP server's, with the
 * agent's key for that origin, and passes every other request through
 * untouched.
 *
 * options.origin (required): the MCP server's URL or origin. Only requests
 *   whose origin equals it are signed. It is required rather than guessed
 *   from the first request, because the same fetch also carries the OAuth
 *   discovery and token requests, and a signature sent to the wrong origin
 *   would show that server the client's tag.
 * options.identity: the agent identity (default "default").
 * options.fetch: the fetch to wrap (default globalThis.fetch).
 * options.agent: an AgentClient to share; by default one is made from
 *   options.socketPath and options.timeoutMs ($MCPSIG_AUTH_SOCK, else the
 *   default socket; 10 s).
 * options.algorithms: the RFC 9421 algorithms the server accepts (§8.9).
 * options.components: extra components to cover.
 * options.onSignature: called with { method, url, keyid, tag, label, retry }
 *   after each signature.
 *
 * A 401 that carries Accept-Signature is answered once: the request is signed
 * again as the server asks and sent again with the same bytes.
 */
export function signingFetch(options = {}) {
  const { origin, identity, algorithms, components, onSignature } = options;
  if (origin === undefined || origin === null || origin === '') {
    throw new TypeError('signingFetch: options.origin is required: the MCP server URL or origin, e.g. signingFetch({ origin: "https://mcp.example.com/mcp" })');
  }
  const scope = originOf(origin, 'signingFetch: options.origin');
  const baseFetch = options.fetch ?? globalThis.fetch;
  if (typeof baseFetch !== 'function') throw new TypeError('signingFetch: options.fetch must be a function');
  const agent = options.agent ?? new AgentClient({ socketPath: options.socketPath, timeoutMs: options.timeoutMs });

  async function sign(req, acceptSignature) {
    const uri = new URL(req.url.href);
    uri.hash = '';
    const covered = namedComponents(acceptSignature, components);
    const large = req.body !== undefined && req.body.length > MAX_BODY_LEN;
    const signed = await agent.signHttp({
      identity,
      origin: scope,
      method: req.method,
      uri: uri.href,
      headers: fieldsForAgent(req.headers, covered),
      body: large ? undefined : (req.body ?? new Uint8Array(0)),
      contentDigest: large ? contentDigest(req.body) : undefined,
      acceptSignature,
      algorithms,
      components,
    });
    const headers = new Headers(req.headers);
    for (const [name, value] of Object.entries(signed.headers)) headers.set(name, value);
    onSignature?.({ method: req.method, url: uri.href, keyid: signed.keyid, tag: signed.tag, label: signed.label, retry: acceptSignature !== undefined });
    return headers;
  }

  async function send(req, acceptSignature) {
    const headers = await sign(req, acceptSignature);
    req.rest.signal?.throwIfAborted?.();
    return baseFetch(req.url, { ...req.rest, method: req.method, headers, body: req.body });
  }

  const wrapped = async function mcpsigFetch(input, init) {
    const target = input instanceof Request ? input.url : input instanceof URL ? input.href : String(input);
    let targetOrigin;
    try {
      targetOrigin = new URL(target).origin;
    } catch {
      return baseFetch(input, init);
    }
    if (targetOrigin !== scope) return baseFetch(input, init);
    const req = await prepareRequest(input, init);
    let res = await send(req);
    const asked = res.status === 401 ? res.headers.get('accept-signature') : null;
    if (asked !== null) {
      await res.body?.cancel().catch(() => {});
      res = await send(req, asked);
    }
    return res;
  };
  Object.defineProperties(wrapped, {
    agent: { value: agent, enumerable: true },
    origin: { value: scope, enumerable: true },
  });
  return wrapped;
}
