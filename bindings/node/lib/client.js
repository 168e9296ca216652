// A msgpack-RPC client for mcpsig-agent's Unix socket (PROTOCOL.md §1-§2).
//
// One connection carries any number of requests. Requests are written as soon
// as they are made, several may be in flight at once, and each reply is
// matched to its request by msgid. The connection is opened on the first call
// and again on the first call after it was lost, so an agent that restarts on
// the same socket is found again without restarting the host.

import net from 'node:net';
import { EventEmitter } from 'node:events';
import { Encoder, Decoder, DecodeError } from '@msgpack/msgpack';
import { McpsigError, errorFromReply } from './errors.js';
import { socketPath as discoverSocketPath, socketRefusal } from './sockpath.js';

/** SEP-2752's extension name in capabilities.extensions. */
export const EXTENSION_NAME = 'io.modelcontextprotocol/http-message-signatures';

export const DEFAULT_TIMEOUT_MS = 10_000;
// The protocol's own message limit (PROTOCOL.md §4); no reply comes near it.
const MAX_MSG_LEN = 1_310_720;
// sockaddr_un.sun_path holds 108 bytes with the terminating NUL.
const SUN_PATH_MAX = 107;
const MSGID_LIMIT = 2 ** 32;
const RESUBSCRIBE_FIRST_MS = 200;
const RESUBSCRIBE_MAX_MS = 5_000;

const REQUEST = 0;
const RESPONSE = 1;
const NOTIFICATION = 2;

// nil is refused for every parameter (PROTOCOL.md §6): undefined members are
// left out instead of being sent as nil.
const encoder = new Encoder({ ignoreUndefined: true });

function decoderFor() {
  return new Decoder({
    maxStrLength: MAX_MSG_LEN,
    maxBinLength: MAX_MSG_LEN,
    maxArrayLength: 65_536,
    maxMapLength: 65_536,
    maxExtLength: 0,
  });
}

function isPlainObject(value) {
  return value !== null && typeof value === 'object' && !Array.isArray(value) && !ArrayBuffer.isView(value);
}

function connectMessage(path, err) {
  const why = {
    ENOENT: 'no such socket. Is mcpsig-agent running? Start it (eval "$(mcpsig-agent)", or systemctl --user start mcpsig-agent.socket) or set MCPSIG_AUTH_SOCK',
    ECONNREFUSED: 'nothing is listening (the agent is not running; its old socket file is left). Start mcpsig-agent again',
    EACCES: 'permission denied (the socket belongs to another user?)',
    ENOTSOCK: 'that path is not a socket',
    ENOTDIR: 'a component of that path is not a directory',
  }[err?.code];
  return `cannot connect to mcpsig-agent at ${path}: ${why ?? err?.message ?? String(err)}`;
}

/**
 * A connection-managing client of mcpsig-agent.
 *
 * Events: 'rotation' (event) for each rotation notification after subscribe();
 * 'lost' (count) when the agent dropped that many because they were not read in time;
 * 'notification' (method, params) for every notification; 'disconnect'
 * (error) when an open connection is lost; 'subscribed' () each time a
 * subscription is made, on the first connection and on every new one.
 *
 * The socket does not keep the process alive while no call is in flight.
 */
export class AgentClient extends EventEmitter {
  #path;
  #timeoutMs;
  #conn = null;
  #nextMsgid = 0;
  #closed = false;
  #subscribed = false;
  #resubscribeTimer = null;
  #resubscribeDelay = RESUBSCRIBE_FIRST_MS;

  /**
   * options.socketPath: the agent's socket (default: $MCPSIG_AUTH_SOCK, else
   * the default path rule). options.timeoutMs: the time limit of each call,
   * connecting included (default 10 s, as libmcpsig).
   */
  constructor({ socketPath, timeoutMs = DEFAULT_TIMEOUT_MS } = {}) {
    super();
    this.#path = socketPath ?? discoverSocketPath();
    if (typeof this.#path !== 'string' || this.#path === '') throw new TypeError('socketPath must be a non-empty string');
    if (!(Number.isFinite(timeoutMs) && timeoutMs > 0)) throw new TypeError('timeoutMs must be a positive number');
    this.#timeoutMs = timeoutMs;
  }

  /** The socket this client connects to. */
  get socketPath() {
    return this.#path;
  }

  /** True while a connection is open (or opening). */
  get connected() {
    return this.#conn !== null;
  }

  /** The number of calls in flight. */
  get pending() {
    return this.#conn?.pending.size ?? 0;
  }

  /**
   * Sends one request and resolves to its result map. Rejects with an
   * McpsigError: the agent's error (code EPARAM, EURI, ...), or ECONNECT,
   * ETIMEDOUT or ECLOSED from the connection.
   * params: the map of named parameters (wire names), or undefined.
   */
  call(method, params, { timeoutMs = this.#timeoutMs } = {}) {
    if (typeof method !== 'string' || method === '') return Promise.reject(new TypeError('method must be a non-empty string'));
    if (params !== undefined && !isPlainObject(params)) return Promise.reject(new TypeError(`${method}: params must be a plain object`));
    if (this.#closed) {
      return Promise.reject(new McpsigError('ECLOSED', `${method}: this AgentClient was closed`, { method, socketPath: this.#path }));
    }
    let conn;
    try {
      conn = this.#conn ?? this.#open();
    } catch (e) {
      return Promise.reject(e);
    }
    return this.#send(conn, method, params, timeoutMs);
  }

  #send(conn, method, params, timeoutMs) {
    const msgid = this.#nextMsgid;
    this.#nextMsgid = (this.#nextMsgid + 1) % MSGID_LIMIT;
    let bytes;
    try {
      bytes = encoder.encode([REQUEST, msgid, method, params === undefined ? [] : [params]]);
    } catch (e) {
      return Promise.reject(new TypeError(`${method}: params cannot be encoded: ${e.message}`));
    }
    if (bytes.length > MAX_MSG_LEN) {
      return Promise.reject(
        new McpsigError('ETOOBIG', `${method}: the request is ${bytes.length} bytes, over the agent's limit of ${MAX_MSG_LEN}`, {
          method,
          socketPath: this.#path,
        }),
      );
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const err = new McpsigError(
          'ETIMEDOUT',
          `mcpsig-agent at ${this.#path} did not answer ${method} within ${timeoutMs} ms; the connection is dropped and the next call reconnects`,
          { method, socketPath: this.#path },
        );
        // Replies come in request order, so every later request on this
        // connection waits behind this one: drop the connection.
        conn.pending.delete(msgid);
        reject(err);
        this.#teardown(conn, err);
      }, timeoutMs);
      conn.pending.set(msgid, { method, resolve, reject, timer });
      conn.socket.ref();
      conn.socket.write(bytes);
    });
  }

  #open() {
    if (Buffer.byteLength(this.#path) > SUN_PATH_MAX) {
      throw new McpsigError(
        'ECONNECT',
        `cannot connect to mcpsig-agent at ${this.#path}: the path is longer than the ${SUN_PATH_MAX} bytes a Unix socket address holds`,
        { socketPath: this.#path },
      );
    }
    // Before every connection, whatever the path came from: nothing may
    // reach a socket that another user could have put there.
    const refusal = socketRefusal(this.#path);
    if (refusal !== null) throw new McpsigError('EPEER', `cannot reach mcpsig-agent: ${refusal}`, { socketPath: this.#path });
    const socket = net.createConnection({ path: this.#path });
    const conn = { socket, pending: new Map(), connected: false, dead: false };
    this.#conn = conn;
    socket.on('connect', () => {
      conn.connected = true;
      if (conn.pending.size === 0) socket.unref();
    });
    // Errors end the read loop below, which reports them once.
    socket.on('error', () => {});
    if (this.#subscribed) this.#subscribeOn(conn);
    this.#readLoop(conn);
    return conn;
  }

  async #readLoop(conn) {
    const decoder = decoderFor();
    let failure = null;
    try {
      for await (const message of decoder.decodeStream(conn.socket)) {
        this.#onMessage(conn, message);
        if (conn.dead) return;
      }
    } catch (e) {
      failure = e;
    }
    if (conn.dead) return;
    let err;
    if (!conn.connected) {
      err = new McpsigError('ECONNECT', connectMessage(this.#path, failure), { socketPath: this.#path, cause: failure ?? undefined });
    } else if (failure instanceof DecodeError || failure instanceof RangeError) {
      err = new McpsigError('EPROTO', `mcpsig-agent at ${this.#path} sent bytes that are not a msgpack-RPC message (${failure.message}); the connection is dropped`, {
        socketPath: this.#path,
        cause: failure,
      });
    } else {
      const n = conn.pending.size;
      const inFlight = n ? `${n} request${n === 1 ? '' : 's'} in flight failed` : 'no request was in flight';
      err = new McpsigError(
        'ECLOSED',
        `mcpsig-agent at ${this.#path} closed the connection${failure ? ` (${failure.code ?? failure.message})` : ''}: did the agent stop? ${inFlight}; the next call reconnects`,
        { socketPath: this.#path, cause: failure ?? undefined },
      );
    }
    this.#teardown(conn, err);
  }

  #onMessage(conn, message) {
    if (!Array.isArray(message) || message.length < 1) {
      this.#teardown(conn, new McpsigError('EPROTO', `mcpsig-agent at ${this.#path} sent a message that is not a msgpack-RPC envelope`, { socketPath: this.#path }));
      return;
    }
    if (message[0] === NOTIFICATION && message.length === 3) {
      const [, method, params] = message;
      const event = Array.isArray(params) ? params[0] : params;
      this.emit('notification', method, params);
      if (method === 'rotation') this.emit('rotation', event);
      // The agent dropped notifications this connection did not read in time (PROTOCOL.md §11).
      if (method === 'events.lost') this.emit('lost', typeof event?.count === 'number' ? event.count : 0);
      return;
    }
    if (message[0] !== RESPONSE || message.length !== 4) {
      this.#teardown(conn, new McpsigError('EPROTO', `mcpsig-agent at ${this.#path} sent a message that is neither a response nor a notification`, { socketPath: this.#path }));
      return;
    }
    const [, msgid, error, result] = message;
    if (msgid === null || msgid === undefined) {
      // A reply without msgid means the agent is about to close the
      // connection (PROTOCOL.md §2): every request on it fails with that error.
      this.#teardown(conn, errorFromReply(error, { socketPath: this.#path }));
      return;
    }
    const call = conn.pending.get(msgid);
    // A reply to a request that timed out, or a msgid never sent: skip it.
    if (!call) return;
    conn.pending.delete(msgid);
    clearTimeout(call.timer);
    if (conn.pending.size === 0 && conn.connected) conn.socket.unref();
    if (error !== null && error !== undefined) call.reject(errorFromReply(error, { method: call.method, socketPath: this.#path }));
    else if (!isPlainObject(result)) {
      call.reject(new McpsigError('EPROTO', `mcpsig-agent: ${call.method}: the result is not a map`, { method: call.method, socketPath: this.#path }));
    } else call.resolve(result);
  }

  #teardown(conn, err) {
    if (conn.dead) return;
    conn.dead = true;
    if (this.#conn === conn) this.#conn = null;
    conn.socket.destroy();
    for (const [, call] of conn.pending) {
      clearTimeout(call.timer);
      const e = new McpsigError(err.code, err.message, { method: call.method, socketPath: this.#path, wireCode: err.wireCode, cause: err.cause });
      call.reject(e);
    }
    conn.pending.clear();
    if (conn.connected) this.emit('disconnect', err);
    if (this.#subscribed && !this.#closed) this.#scheduleResubscribe();
  }

  // A subscription belongs to a connection. When the connection is lost the
  // client opens a new one and subscribes again, after a short and growing
  // delay, so that rotation events keep coming once the agent is back.
  #scheduleResubscribe() {
    if (this.#resubscribeTimer) return;
    const delay = this.#resubscribeDelay;
    this.#resubscribeDelay = Math.min(delay * 2, RESUBSCRIBE_MAX_MS);
    this.#resubscribeTimer = setTimeout(() => {
      this.#resubscribeTimer = null;
      if (this.#closed || !this.#subscribed || this.#conn) return;
      try {
        this.#open();
      } catch {
        this.#scheduleResubscribe();
      }
    }, delay);
    this.#resubscribeTimer.unref();
  }

  #subscribeOn(conn) {
    if (!conn.subscribing) {
      conn.subscribing = this.#send(conn, 'subscribe', undefined, this.#timeoutMs);
      conn.subscribing.then(
        () => {
          this.#resubscribeDelay = RESUBSCRIBE_FIRST_MS;
          this.emit('subscribed');
        },
        () => {
          // The connection failed: its teardown schedules the next attempt.
        },
      );
    }
    return conn.subscribing;
  }

  /** Closes the connection. Calls in flight, and any later call, fail with ECLOSED. */
  close() {
    this.#closed = true;
    this.#subscribed = false;
    if (this.#resubscribeTimer) clearTimeout(this.#resubscribeTimer);
    this.#resubscribeTimer = null;
    if (this.#conn) this.#teardown(this.#conn, new McpsigError('ECLOSED', 'this AgentClient was closed', { socketPath: this.#path }));
  }

  // ---- typed calls (PROTOCOL.md §7) ----------------------------------------

  /** §7.1: { protocol, agent_version, algorithms, pid }. */
  hello() {
    return this.call('hello');
  }

  /** §7.1a: the agent's counters. */
  agentStatus() {
    return this.call('agent.status');
  }

  /**
   * §7.2: { identities, bindings }, every one of them. The agent lists in
   * pages that each fit one message; this asks for page after page (the
   * cursor in each page's "next") and joins them.
   */
  async identityList() {
    const identities = [];
    const bindings = [];
    let after;
    for (;;) {
      // The first request carries no parameter, which an agent from before
      // pages also takes (it answers with everything at once).
      const page = await this.call('identity.list', after === undefined ? undefined : { after });
      const ids = Array.isArray(page.identities) ? page.identities : [];
      const bs = Array.isArray(page.bindings) ? page.bindings : [];
      for (const b of bs) {
        const last = bindings[bindings.length - 1];
        if (last && !(b.identity > last.identity || (b.identity === last.identity && b.origin > last.origin))) {
          throw new McpsigError('EPROTO', 'mcpsig-agent: identity.list: the pages list bindings out of order', { method: 'identity.list', socketPath: this.#path });
        }
        bindings.push(b);
      }
      identities.push(...ids);
      if (page.next === null || page.next === undefined) return { identities, bindings };
      if (typeof page.next !== 'string' || page.next === after || ids.length + bs.length === 0) {
        throw new McpsigError('EPROTO', 'mcpsig-agent: identity.list: a page that does not move forward', { method: 'identity.list', socketPath: this.#path });
      }
      after = page.next;
    }
  }

  /**
   * §7.3: the public key of (identity, origin); creates the binding on first
   * contact. Resolves to { identity, origin, tag, keyid, alg, jwk, signature_agent, created }.
   */
  identityPublic({ origin, identity } = {}) {
    return this.call('identity.public', { identity, origin: originParam(origin) });
  }

  /**
   * The client's capability entry for the SEP-2752 extension, for the binding
   * of (identity, origin) (created on first contact): merge it into
   * capabilities.extensions, in initialize or in _meta's clientCapabilities.
   * The extension carries the public JWK in cnf.jwk (no longer clientInfo.cnf).
   */
  async extensionEntry({ origin, identity } = {}) {
    const pub = await this.identityPublic({ origin, identity });
    return {
      [EXTENSION_NAME]: {
        algorithms: [pub.alg],
        keyResolution: ['signature-agent', 'cnf'],
        contentDigest: ['rfc9530'],
        cnf: { jwk: JSON.parse(pub.jwk) },
      },
    };
  }

  /**
   * §7.7: signs one HTTP request. `body` is the exact bytes sent (a string is
   * sent as its UTF-8 bytes); or give `contentDigest` instead. Resolves to
   * { headers: {Content-Digest, Signature-Input, Signature, Signature-Agent},
   *   keyid, tag, label, alg, created }.
   */
  signHttp({ method, uri, headers, body, contentDigest, acceptSignature, label, components, key, algorithms, identity, origin } = {}) {
    return this.call('sign.http', {
      identity,
      origin: originParam(origin),
      method,
      uri: uri instanceof URL ? uri.href : uri,
      headers: headerPairs(headers),
      body: body === undefined ? undefined : bytesOf(body),
      content_digest: contentDigest,
      accept_signature: acceptSignature,
      label,
      components,
      key,
      algorithms,
    });
  }

  /**
   * §7.14: an RFC 9449 DPoP proof made with the key of (identity, origin).
   * `origin` is the key scope, normally the MCP server's origin; it is
   * required. Resolves to { proof, jkt, alg, created }.
   */
  dpopProof({ origin, htm, htu, accessToken, nonce, algorithms, identity } = {}) {
    return this.call('dpop.proof', {
      identity,
      origin: originParam(origin),
      htm,
      htu: htu instanceof URL ? htu.href : htu,
      access_token: accessToken,
      nonce,
      algorithms,
    });
  }

  /**
   * §7.13: asks for a 'rotation' event after every rotation step of any
   * binding. The subscription is renewed on every new connection; events
   * sent while the agent was unreachable are lost (read rotate.status).
   */
  async subscribe() {
    if (this.#closed) throw new McpsigError('ECLOSED', 'subscribe: this AgentClient was closed', { method: 'subscribe', socketPath: this.#path });
    this.#subscribed = true;
    try {
      return await this.#subscribeOn(this.#conn ?? this.#open());
    } catch (e) {
      // Only a subscription that was once made is renewed in the background.
      this.#subscribed = false;
      if (this.#resubscribeTimer) clearTimeout(this.#resubscribeTimer);
      this.#resubscribeTimer = null;
      throw e;
    }
  }
}

function originParam(origin) {
  if (origin instanceof URL) return origin.origin;
  return origin;
}

/** Header fields as the [name, value] pairs sign.http takes. */
export function headerPairs(headers) {
  if (headers === undefined || headers === null) return undefined;
  const pairs = [];
  if (typeof Headers !== 'undefined' && headers instanceof Headers) {
    for (const [name, value] of headers) pairs.push([name, value]);
  } else if (Array.isArray(headers)) {
    for (const pair of headers) pairs.push([String(pair[0]), String(pair[1])]);
  } else if (typeof headers === 'object') {
    for (const [name, value] of Object.entries(headers)) {
      if (value === undefined || value === null) continue;
      if (Array.isArray(value)) for (const v of value) pairs.push([name, String(v)]);
      else pairs.push([name, String(value)]);
    }
  } else {
    throw new TypeError('headers must be a Headers object, an array of [name, value] pairs or a plain object');
  }
  return pairs;
}

/** The bytes of a string (UTF-8), an ArrayBuffer or a view. */
export function bytesOf(body) {
  if (typeof body === 'string') return new TextEncoder().encode(body);
  if (body instanceof Uint8Array) return body;
  if (ArrayBuffer.isView(body)) return new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
  if (body instanceof ArrayBuffer || (typeof SharedArrayBuffer !== 'undefined' && body instanceof SharedArrayBuffer)) return new Uint8Array(body);
  throw new TypeError('body must be a string, an ArrayBuffer or an ArrayBuffer view');
}
