// Types of mcpsig, the Node client of mcpsig-agent. See README.md.

import { EventEmitter } from 'node:events';

/** The error names of PROTOCOL.md §5, with their numbers. */
export declare const ERROR_CODES: Readonly<{
  EPROTO: 1001;
  ETOOBIG: 1002;
  EDEPTH: 1003;
  EMETHOD: 1004;
  EPARAM: 1005;
  ENOIDENT: 1006;
  ENOBINDING: 1007;
  EEXIST: 1008;
  EURI: 1009;
  EHEADER: 1010;
  ECOMPONENT: 1011;
  EACCEPT: 1012;
  EKEY: 1013;
  ESTORE: 1014;
  EINTERNAL: 1015;
  EVERSION: 1016;
  ECONNECT: 1017;
  ETIMEDOUT: 1018;
  ECLOSED: 1019;
  EALG: 1020;
  EBUSY: 1021;
  EAGENT: 1022;
  EROTATING: 1023;
  ENOROTATION: 1024;
  EPEER: 1025;
}>;

export type McpsigErrorCode = keyof typeof ERROR_CODES;

/**
 * An error of the agent (EPARAM, EURI, EALG, ...) or of the connection to it
 * (ECONNECT: no agent at the socket; ETIMEDOUT: no answer in time; ECLOSED:
 * the agent closed the connection with the call in flight; EPEER: the socket
 * or its directory belongs to another user, so nothing was sent).
 */
export declare class McpsigError extends Error {
  readonly name: 'McpsigError';
  /** The name from PROTOCOL.md §5. A code outside the table is EAGENT. */
  readonly code: McpsigErrorCode;
  /** The number from PROTOCOL.md §5 (1001-1025). */
  readonly errno: number;
  /** The agent method that failed, when there was one. */
  readonly method?: string;
  /** The agent's socket. */
  readonly socketPath?: string;
  /** For EAGENT: the unknown code the agent sent. */
  readonly wireCode?: number;
  constructor(code: McpsigErrorCode, message: string, options?: { method?: string; socketPath?: string; wireCode?: number; cause?: unknown });
}

/** The default time limit of each agent call, in milliseconds (10 s). */
export declare const DEFAULT_TIMEOUT_MS: number;

/** $MCPSIG_AUTH_SOCK when set and not empty, else defaultSocketPath(). */
export declare function socketPath(env?: Record<string, string | undefined>): string;

/**
 * The default socket path rule shared with libmcpsig: $XDG_RUNTIME_DIR/mcpsig/agent.sock;
 * else /run/user/UID/mcpsig/agent.sock when that directory is ours; else
 * ${TMPDIR:-/tmp}/mcpsig-UID/agent.sock.
 */
export declare function defaultSocketPath(options?: {
  xdgRuntimeDir?: string;
  tmpdir?: string;
  uid?: number;
  runUserRoot?: string;
}): string;

/**
 * Why the socket at path cannot be trusted to be this user's agent, or null
 * when it can: its directory must be a real directory owned by this user or
 * root that neither group nor others may write, and the socket file must be
 * owned by this user or root. Two lstat calls; AgentClient makes this check
 * before every connection. It is weaker than libmcpsig's, which also asks the
 * kernel who listens (SO_PEERCRED): Node has no way to ask without native
 * code.
 */
export declare function socketRefusal(path: string, options?: { uid?: number }): string | null;

/** The RFC 9530 Content-Digest value of some bytes: `sha-256=:BASE64:`. */
export declare function contentDigest(bytes: Uint8Array): string;

/** Header fields: a Headers object, [name, value] pairs, or a plain object. */
export type HeaderInput = Headers | ReadonlyArray<readonly [string, string]> | Record<string, string | readonly string[] | undefined>;

/** A URL or origin; only its origin names the key. */
export type OriginInput = string | URL;

export interface HelloResult {
  protocol: number;
  agent_version: string;
  algorithms: string[];
  pid: number;
}

export interface AgentStatus {
  pid: number;
  uptime: number;
  connections: number;
  connections_limit: number;
  identities: number;
  bindings: number;
  signatures: number;
  memory_locked: boolean;
  output_queued_max: number;
  output_queued_limit: number;
}

export interface Binding {
  identity: string;
  origin: string;
  tag: string;
  keyid: string;
  alg: string;
  state: 'active' | 'pending';
  pending_keyid: string | null;
  retired: string[];
}

export interface IdentityList {
  identities: Array<{ name: string; alg: string }>;
  bindings: Binding[];
}

export interface PublicKeyInfo {
  identity: string;
  origin: string;
  tag: string;
  keyid: string;
  alg: string;
  /** The public JWK as compact JSON text. */
  jwk: string;
  /** The Signature-Agent field value for this key. */
  signature_agent: string;
  /** True if this call created the binding. */
  created: boolean;
}

export interface SignHttpRequest {
  /** The request method exactly as sent, e.g. "POST". */
  method: string;
  /** The absolute target URI exactly as sent (PROTOCOL.md §8.5). */
  uri: string | URL;
  /** The request's header fields; MCP-Protocol-Version and MCP-Session-Id are covered when present. */
  headers?: HeaderInput;
  /** The exact body bytes (a string is sent as UTF-8), at most 1 MiB. */
  body?: string | Uint8Array | ArrayBuffer | ArrayBufferView;
  /** Instead of body: a precomputed `sha-256=:...:` value. */
  contentDigest?: string;
  /** The server's Accept-Signature field value, from a 401. */
  acceptSignature?: string;
  label?: string;
  /** Extra components to cover. */
  components?: string[];
  /** "active" (default) or "pending" during a rotation. */
  key?: 'active' | 'pending';
  /** The RFC 9421 algorithms the server accepts. */
  algorithms?: string[];
  identity?: string;
  /** The key scope; default: the origin of uri. */
  origin?: OriginInput;
}

export interface SignHttpResult {
  /** The four fields to add to the request. */
  headers: {
    'Content-Digest': string;
    'Signature-Input': string;
    Signature: string;
    'Signature-Agent': string;
  };
  keyid: string;
  tag: string;
  label: string;
  alg: string;
  created: number;
}

export interface DpopProofRequest {
  /** The key scope, normally the MCP server's URL or origin (required). */
  origin: OriginInput;
  htm: string;
  htu: string | URL;
  /** The access token sent with the request; adds ath. */
  accessToken?: string;
  /** The server's latest DPoP-Nonce. */
  nonce?: string;
  /** The JWS algorithms the server accepts (dpop_signing_alg_values_supported). */
  algorithms?: string[];
  identity?: string;
}

export interface DpopProofResult {
  /** The compact JWS: the DPoP field value. */
  proof: string;
  /** The key's RFC 7638 thumbprint (the token's cnf.jkt). */
  jkt: string;
  alg: 'EdDSA' | 'Ed25519' | 'ES256' | 'ES384';
  created: boolean;
}

/** A rotation notification (PROTOCOL.md §11). */
export interface RotationEvent {
  event: 'begin' | 'commit' | 'abort';
  identity: string;
  origin: string;
  tag: string;
  old_keyid: string;
  new_keyid: string;
}

export interface AgentClientOptions {
  /** Default: $MCPSIG_AUTH_SOCK, else the default socket path. */
  socketPath?: string;
  /** Time limit of each call, connecting included (default 10 000 ms). */
  timeoutMs?: number;
}

/**
 * A client of mcpsig-agent. Calls may run concurrently on its one connection;
 * replies are matched by msgid. A lost connection fails the calls in flight
 * with ECLOSED, and the next call reconnects. The socket does not keep the
 * process alive while no call is in flight.
 */
export declare class AgentClient extends EventEmitter {
  constructor(options?: AgentClientOptions);
  readonly socketPath: string;
  readonly connected: boolean;
  /** The number of calls in flight. */
  readonly pending: number;
  /** Any method by its wire name, with wire-named params. */
  call<T = Record<string, unknown>>(method: string, params?: Record<string, unknown>, options?: { timeoutMs?: number }): Promise<T>;
  hello(): Promise<HelloResult>;
  agentStatus(): Promise<AgentStatus>;
  identityList(): Promise<IdentityList>;
  identityPublic(params: { origin: OriginInput; identity?: string }): Promise<PublicKeyInfo>;
  /** The client's capability entry for io.modelcontextprotocol/http-message-signatures, with cnf.jwk. */
  extensionEntry(params: { origin: OriginInput; identity?: string }): Promise<Record<string, {
    algorithms: string[]; keyResolution: string[]; contentDigest: string[]; cnf: { jwk: Record<string, string> };
  }>>;
  signHttp(params: SignHttpRequest): Promise<SignHttpResult>;
  dpopProof(params: DpopProofRequest): Promise<DpopProofResult>;
  /** Rotation events arrive as 'rotation'; the subscription is renewed after a reconnect. */
  subscribe(): Promise<Record<string, never>>;
  /** Fails calls in flight and later calls with ECLOSED. */
  close(): void;

  on(event: 'rotation', listener: (event: RotationEvent) => void): this;
  /** The agent dropped this many notifications because they were not read in time: re-read the state. */
  on(event: 'lost', listener: (count: number) => void): this;
  on(event: 'notification', listener: (method: string, params: unknown) => void): this;
  on(event: 'disconnect', listener: (error: McpsigError) => void): this;
  on(event: 'subscribed', listener: () => void): this;
  on(event: string | symbol, listener: (...args: any[]) => void): this;
  once(event: 'rotation', listener: (event: RotationEvent) => void): this;
  once(event: 'disconnect', listener: (error: McpsigError) => void): this;
  once(event: string | symbol, listener: (...args: any[]) => void): this;
}

/** What signingFetch reports after each signature. */
export interface SignatureInfo {
  method: string;
  url: string;
  keyid: string;
  tag: string;
  label: string;
  /** True when this signature answered a 401's Accept-Signature. */
  retry: boolean;
}

export interface SigningFetchOptions extends AgentClientOptions {
  /**
   * The MCP server's URL or origin (required). Only requests to this origin
   * are signed; every other request passes through untouched.
   */
  origin: OriginInput;
  /** The agent identity (default "default"). */
  identity?: string;
  /** The fetch to wrap (default globalThis.fetch). */
  fetch?: (input: string | URL | Request, init?: RequestInit) => Promise<Response>;
  /** A client to share; by default one is made from socketPath and timeoutMs. */
  agent?: AgentClient;
  /** The RFC 9421 algorithms the server accepts. */
  algorithms?: string[];
  /** Extra components to cover. */
  components?: string[];
  onSignature?: (info: SignatureInfo) => void;
}

/** The fetch signingFetch returns: a fetch, plus the client and origin it uses. */
export interface SigningFetch {
  (input: string | URL | Request, init?: RequestInit): Promise<Response>;
  readonly agent: AgentClient;
  readonly origin: string;
}

/**
 * A drop-in fetch for StreamableHTTPClientTransport that has the agent sign
 * every request to the MCP server's origin (RFC 9421, SEP-2752). The body is
 * digested as the exact bytes sent. A 401 with Accept-Signature is answered
 * once.
 */
export declare function signingFetch(options: SigningFetchOptions): SigningFetch;
