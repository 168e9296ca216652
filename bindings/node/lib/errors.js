// Errors of the agent and of this client, with the names and numbers of
// PROTOCOL.md §5 (MCPSIG_ERRNO_MAP in mcpsig.h). The numbers are part of the
// protocol and never change meaning.

/** @type {Readonly<Record<string, number>>} */
export const ERROR_CODES = Object.freeze({
  EPROTO: 1001,
  ETOOBIG: 1002,
  EDEPTH: 1003,
  EMETHOD: 1004,
  EPARAM: 1005,
  ENOIDENT: 1006,
  ENOBINDING: 1007,
  EEXIST: 1008,
  EURI: 1009,
  EHEADER: 1010,
  ECOMPONENT: 1011,
  EACCEPT: 1012,
  EKEY: 1013,
  ESTORE: 1014,
  EINTERNAL: 1015,
  EVERSION: 1016,
  ECONNECT: 1017,
  ETIMEDOUT: 1018,
  ECLOSED: 1019,
  EALG: 1020,
  EBUSY: 1021,
  EAGENT: 1022,
  EROTATING: 1023,
  ENOROTATION: 1024,
  // Client side only, never on the wire: the socket is not this user's agent.
  EPEER: 1025,
});

const NAMES = new Map(Object.entries(ERROR_CODES).map(([name, number]) => [number, name]));

/**
 * An error from mcpsig-agent or from the connection to it.
 *
 * `code` is the name from PROTOCOL.md §5 ("EPARAM", "ECONNECT", ...) and
 * `errno` its number (1005, 1017, ...), as Node's own errors carry `code` and
 * `errno`. `method` is the agent method that failed, when there was one, and
 * `socketPath` the agent's socket.
 */
export class McpsigError extends Error {
  constructor(code, message, { method, socketPath, wireCode, cause } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'McpsigError';
    this.code = code;
    this.errno = ERROR_CODES[code] ?? ERROR_CODES.EAGENT;
    if (method !== undefined) this.method = method;
    if (socketPath !== undefined) this.socketPath = socketPath;
    if (wireCode !== undefined) this.wireCode = wireCode;
  }
}

/**
 * The McpsigError for an error reply {code, message} of `method`. A code that
 * is not in the table is an internal agent error (PROTOCOL.md §5): it becomes
 * EAGENT, as in libmcpsig, and keeps the number it came with in `wireCode`.
 */
export function errorFromReply(reply, { method, socketPath } = {}) {
  const number = reply !== null && typeof reply === 'object' ? reply.code : undefined;
  const text = reply !== null && typeof reply === 'object' && typeof reply.message === 'string' ? reply.message : '';
  const known = typeof number === 'number' ? NAMES.get(number) : undefined;
  const code = known ?? 'EAGENT';
  const what = known ? code : `unknown error code ${JSON.stringify(number)}, treated as EAGENT`;
  const where = method ? `${method}: ` : '';
  return new McpsigError(code, `mcpsig-agent: ${where}${text || 'no message'} (${what})`, {
    method,
    socketPath,
    wireCode: known ? undefined : number,
  });
}
