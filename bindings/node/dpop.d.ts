// Types of mcpsig/dpop: a DpopSession of @modelcontextprotocol/client (v2)
// whose proofs come from mcpsig-agent.

import type { DpopSession, DpopProofRequest } from '@modelcontextprotocol/client';
import type { AgentClient, AgentClientOptions, OriginInput } from './index.js';

export interface AgentDpopSessionOptions extends AgentClientOptions {
  /**
   * The key scope (required): the MCP server's URL or origin. Every proof of
   * one token, at the authorization server and at the MCP server, is made
   * with the agent's key for this origin.
   */
  origin: OriginInput;
  /** The agent identity (default "default"). */
  identity?: string;
  /**
   * The JWS algorithms the authorization server accepts (its
   * dpop_signing_alg_values_supported), or a function returning them. They
   * choose a new binding's key type; see also useAuthorizationServerMetadata().
   */
  algorithms?: string[] | (() => string[] | undefined | Promise<string[] | undefined>);
  /** A client to share; by default one is made from socketPath and timeoutMs. */
  agent?: AgentClient;
  /** Called after each proof. */
  onProof?: (info: AgentDpopProofInfo) => void;
}

export interface AgentDpopProofInfo {
  htm: string;
  htu: string;
  alg: string;
  jkt: string;
  nonce?: string;
  /** True when the proof carries ath (a resource request). */
  accessToken: boolean;
}

/**
 * A DpopSession whose buildProof() asks the agent (dpop.proof) instead of
 * signing with a key in the host. Return it from OAuthClientProvider.dpop().
 * thumbprint, alg and publicJwk are those of the last proof (or of load()),
 * undefined before.
 */
export interface AgentDpopSession extends DpopSession {
  /** The serialized origin every proof is made for. */
  readonly origin: string;
  readonly agent: AgentClient;
  onProof?: (info: AgentDpopProofInfo) => void;
  /** Sets the algorithms the authorization server accepts. */
  useAlgorithms(algorithms: AgentDpopSessionOptions['algorithms']): void;
  /** Takes them from RFC 8414 metadata (dpop_signing_alg_values_supported); call it from saveDiscoveryState(). */
  useAuthorizationServerMetadata(metadata: { dpop_signing_alg_values_supported?: string[] } | undefined): void;
  /** Makes the binding exist and fills thumbprint, alg and publicJwk; asks for one proof that is never sent. */
  load(): Promise<{ thumbprint: string; alg: string; publicJwk: Record<string, string> }>;
  buildProof(request: DpopProofRequest): Promise<string>;
}

export declare const AgentDpopSession: {
  new (options: AgentDpopSessionOptions): AgentDpopSession;
  /** The same as the constructor, in the SDK's factory style. */
  create(options: AgentDpopSessionOptions): Promise<AgentDpopSession>;
  readonly prototype: AgentDpopSession;
};
