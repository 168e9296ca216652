// AgentDpopSession: a DpopSession of the MCP TypeScript SDK v2
// (@modelcontextprotocol/client 2.1 and later) whose proofs come from
// mcpsig-agent (dpop.proof, PROTOCOL.md §7.14, §12). The SDK keeps its own
// nonce bookkeeping; only the signing moves into the agent, so no DPoP key
// ever exists in the host process.

import { DpopSession } from '@modelcontextprotocol/client';
import { AgentClient } from './lib/client.js';
import { originOf } from './lib/fetch.js';

function decodeSegment(segment) {
  try {
    return JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
}

export class AgentDpopSession extends DpopSession {
  #agent;
  #origin;
  #identity;
  #algorithms;
  #last = undefined;

  /**
   * options.origin (required): the key scope, normally the MCP server's URL
   *   or origin. Every proof of one token, at the authorization server and at
   *   the MCP server, must use the same key, so it is named once here.
   * options.identity: the agent identity (default "default").
   * options.algorithms: the JWS algorithms the authorization server accepts
   *   (its dpop_signing_alg_values_supported), or a function returning them;
   *   see also useAuthorizationServerMetadata().
   * options.agent, options.socketPath, options.timeoutMs: as for signingFetch.
   * options.onProof: called with { htm, htu, alg, jkt, nonce, accessToken:
   *   boolean } after each proof.
   */
  constructor(options = {}) {
    super(undefined);
    const { origin, identity, algorithms, onProof } = options;
    if (origin === undefined || origin === null || origin === '') {
      throw new TypeError('AgentDpopSession: options.origin is required: the MCP server URL or origin, the key scope of every proof');
    }
    this.#origin = originOf(origin, 'AgentDpopSession: options.origin');
    this.#identity = identity;
    this.#algorithms = algorithms;
    this.#agent = options.agent ?? new AgentClient({ socketPath: options.socketPath, timeoutMs: options.timeoutMs });
    this.onProof = onProof;
  }

  /** The same as `new AgentDpopSession(options)`, in the SDK's factory style. */
  static async create(options) {
    return new AgentDpopSession(options);
  }

  /** The key scope: the serialized origin every proof is made for. */
  get origin() {
    return this.#origin;
  }

  /** The AgentClient that makes the proofs. */
  get agent() {
    return this.#agent;
  }

  /**
   * The RFC 7638 thumbprint of the key (the token's cnf.jkt), as of the last
   * proof or load(); undefined before either.
   */
  get thumbprint() {
    return this.#last?.jkt;
  }

  /** The JWS algorithm of the last proof or load(). */
  get alg() {
    return this.#last?.alg;
  }

  /** The public JWK of the last proof or load(). */
  get publicJwk() {
    return this.#last?.jwk;
  }

  /** Sets the algorithms the authorization server accepts. */
  useAlgorithms(algorithms) {
    this.#algorithms = algorithms;
  }

  /**
   * Takes the algorithms from authorization server metadata (RFC 8414):
   * its dpop_signing_alg_values_supported, when present. An
   * OAuthClientProvider can call this from saveDiscoveryState().
   */
  useAuthorizationServerMetadata(metadata) {
    const algs = metadata?.dpop_signing_alg_values_supported;
    if (Array.isArray(algs) && algs.length > 0 && algs.every((a) => typeof a === 'string')) this.#algorithms = [...algs];
  }

  async #algorithmList() {
    const value = typeof this.#algorithms === 'function' ? await this.#algorithms() : this.#algorithms;
    if (value === undefined || value === null) return undefined;
    if (!Array.isArray(value)) throw new TypeError('AgentDpopSession: algorithms must be an array of JWS algorithm names');
    return value.length ? value.map(String) : undefined;
  }

  #remember(result) {
    const header = decodeSegment(String(result.proof).split('.')[0]);
    this.#last = { jkt: result.jkt, alg: result.alg, jwk: header?.jwk };
  }

  /**
   * Makes sure the binding exists (with a key type the algorithms allow) and
   * fills thumbprint, alg and publicJwk, for a host that needs the jkt before
   * its first request (for example for dpop_jkt, RFC 9449 §10). It asks the
   * agent for one proof that is never sent.
   */
  async load() {
    const result = await this.#agent.dpopProof({
      identity: this.#identity,
      origin: this.#origin,
      htm: 'GET',
      htu: `${this.#origin}/`,
      algorithms: await this.#algorithmList(),
    });
    this.#remember(result);
    return { thumbprint: result.jkt, alg: result.alg, publicJwk: this.#last.jwk };
  }

  /**
   * A fresh proof from the agent for { htm, htu, accessToken?, nonce? }. As
   * in the SDK, a missing nonce is the one remembered for htu's origin.
   */
  async buildProof(request) {
    const htu = request.htu instanceof URL ? request.htu : new URL(String(request.htu));
    const nonce = request.nonce ?? this.nonceFor(htu);
    const htm = String(request.htm).toUpperCase();
    const result = await this.#agent.dpopProof({
      identity: this.#identity,
      origin: this.#origin,
      htm,
      htu: htu.href,
      accessToken: request.accessToken,
      nonce,
      algorithms: await this.#algorithmList(),
    });
    this.#remember(result);
    this.onProof?.({ htm, htu: htu.href, alg: result.alg, jkt: result.jkt, nonce, accessToken: request.accessToken !== undefined });
    return result.proof;
  }
}
