// RFC 9421 signer for the Node tests, SEP-2752 profile.
//
// Tests that play the client (for example to forge a rotation the agent would
// never send) need a signer that is neither the agent nor the library the
// verifier is built on. This one builds the signature base itself, signs with
// node:crypto, and uses `structured-headers` only to serialize fields and
// `jose` only for RFC 7638 thumbprints. rotate-neg.mjs checks it against the
// SPEC-NOTES §8 vectors before trusting it.

import crypto from 'node:crypto';
import { serializeDictionary, serializeInnerList, serializeItem } from 'structured-headers';
import { calculateJwkThumbprint } from 'jose';
import { toBuffer } from './verify.mjs';

const DIRECTORY_MEDIA_TYPE = 'application/http-message-signatures-directory+json';
const SEP_COMPONENTS = ['@method', '@target-uri', 'content-digest'];
const CONDITIONAL_COMPONENTS = ['mcp-protocol-version', 'mcp-session-id'];

// PKCS#8 wrapping of a raw Ed25519 seed (RFC 8410 §7): everything before the
// 32 seed bytes is fixed.
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

function toArrayBuffer(bytes) {
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
}

function lowerHeaders(headers) {
  const out = {};
  for (const [name, value] of Object.entries(headers ?? {})) {
    if (value === undefined || value === null) continue;
    out[name.toLowerCase()] = Array.isArray(value) ? value.map(String) : String(value);
  }
  return out;
}

// Only public members are published; a stray `d` must never reach the wire
// through the test signer either.
function publicMembers(jwk) {
  const out = { kty: jwk.kty, crv: jwk.crv, x: jwk.x };
  if (jwk.kty === 'EC') out.y = jwk.y;
  return out;
}

export function contentDigest(body) {
  return `sha-256=:${crypto.createHash('sha256').update(toBuffer(body)).digest('base64')}:`;
}

export async function thumbprint(jwk) {
  return calculateJwkThumbprint(publicMembers(jwk), 'sha256');
}

/**
 * Ed25519 key pair from a 32-byte seed (the RFC 8032 private key).
 * Returns { privateKey, publicKey } as KeyObjects and the public JWK
 * { kty, crv, x }.
 */
export function ed25519FromSeed(seed) {
  if (!Buffer.isBuffer(seed) || seed.length !== 32) throw new TypeError('an Ed25519 seed is a 32-byte Buffer');
  const privateKey = crypto.createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' });
  const publicKey = crypto.createPublicKey(privateKey);
  const { kty, crv, x } = publicKey.export({ format: 'jwk' });
  return { privateKey, publicKey, jwk: { kty, crv, x } };
}

// RFC 9421 §2.1: field values are trimmed, repeated lines joined with ", ",
// and obs-fold becomes one space.
function fieldValue(headers, name) {
  const raw = headers[name];
  if (raw === undefined) throw new Error(`covered field "${name}" is absent`);
  return (Array.isArray(raw) ? raw : [raw]).map((v) => v.replace(/\r?\n[ \t]+/g, ' ').trim()).join(', ');
}

// RFC 9421 §2.2. @method and @target-uri are taken exactly as given: the
// signer signs what it sends and does no normalisation of its own.
function derivedValue(request, name) {
  const url = new URL(request.url);
  switch (name) {
    case '@method': return request.method;
    case '@target-uri': return request.url;
    case '@authority': return url.host;
    case '@scheme': return url.protocol.slice(0, -1);
    case '@path': return url.pathname || '/';
    case '@query': return url.search || '?';
    default: throw new Error(`unsupported derived component "${name}"`);
  }
}

/**
 * The RFC 9421 §2.5 signature base: one `"name": value` line per component,
 * LF-separated, ending with the @signature-params line and no trailing LF.
 * request: { method, url, headers } (header names in any case).
 * components: ordered component names; params: ordered Map of parameters.
 */
export function signatureBase(request, components, params) {
  const headers = lowerHeaders(request.headers);
  const lines = components.map((name) => {
    const value = name.startsWith('@') ? derivedValue(request, name) : fieldValue(headers, name);
    // The base must be ASCII without CR or LF (§2.5): refuse, never sign it.
    if (/[^\x20-\x7e\t]/.test(value)) throw new Error(`component "${name}" is not printable ASCII`);
    return `${serializeItem(name, new Map())}: ${value}`;
  });
  lines.push(`"@signature-params": ${serializeInnerList([components.map((c) => [c, new Map()]), params])}`);
  return lines.join('\n');
}

/**
 * Signs base bytes; the algorithm follows from the key (RFC 9421 §3.3):
 * Ed25519 over the bytes, ECDSA P-256/P-384 as fixed-width r||s.
 */
export function signBase(privateKey, base) {
  const bytes = Buffer.from(base, 'ascii');
  if (privateKey.asymmetricKeyType === 'ed25519') return crypto.sign(null, bytes, privateKey);
  if (privateKey.asymmetricKeyType === 'ec') {
    const hash = { prime256v1: 'sha256', secp384r1: 'sha384' }[privateKey.asymmetricKeyDetails?.namedCurve];
    if (hash) return crypto.sign(hash, bytes, { key: privateKey, dsaEncoding: 'ieee-p1363' });
  }
  throw new Error(`unsupported signing key (${privateKey.asymmetricKeyType})`);
}

/**
 * The Signature-Agent value (SPEC-NOTES §2.4): an sf-string holding a data:
 * URI of a JWK Set, in standard padded base64.
 */
export function signatureAgentFor(jwks) {
  const payload = Buffer.from(JSON.stringify({ keys: jwks.map(publicMembers) })).toString('base64');
  return serializeItem(`data:${DIRECTORY_MEDIA_TYPE};base64,${payload}`, new Map());
}

/**
 * Signs a request with one or more keys, one label each.
 *
 * request: { method, url, headers, body }; body is the exact content bytes
 *   (Buffer or string).
 * signers: [{ label, privateKey (KeyObject), jwk (public), tag, nonce?,
 *   created?, components? }]. keyid is always the RFC 7638 thumbprint of
 *   `jwk`, so a signer whose privateKey is not the key of `jwk` produces a
 *   signature that claims one key and is made by another. nonce defaults to
 *   16 fresh random bytes (base64url), created to the current time, tag to the
 *   keyid, components to the SEP-2752 set for the request's headers.
 * options.signatureAgent: true (default) publishes the signers' keys, false
 *   omits the field, an array of JWKs publishes those instead.
 *
 * Returns the headers to add, lowercase: content-digest, signature-input,
 * signature (one dictionary each, members in signer order) and
 * signature-agent. `alg` is never sent.
 */
export async function signRequest(request, signers, { signatureAgent = true } = {}) {
  const body = toBuffer(request.body);
  const digest = contentDigest(body);
  const headers = { ...lowerHeaders(request.headers), 'content-digest': digest };
  const message = { method: request.method, url: request.url, headers };
  const defaultComponents = [...SEP_COMPONENTS, ...CONDITIONAL_COMPONENTS.filter((c) => headers[c] !== undefined)];

  const inputs = new Map();
  const signatures = new Map();
  const published = new Map();
  for (const signer of signers) {
    if (inputs.has(signer.label)) throw new Error(`label ${signer.label} is used twice`);
    const keyid = await thumbprint(signer.jwk);
    const components = signer.components ?? defaultComponents;
    const params = new Map([
      ['created', signer.created ?? Math.floor(Date.now() / 1000)],
      ['nonce', signer.nonce ?? crypto.randomBytes(16).toString('base64url')],
      ['keyid', keyid],
      ['tag', signer.tag ?? keyid],
    ]);
    const base = signatureBase(message, components, params);
    inputs.set(signer.label, [components.map((c) => [c, new Map()]), params]);
    signatures.set(signer.label, [toArrayBuffer(signBase(signer.privateKey, base)), new Map()]);
    if (!published.has(keyid)) published.set(keyid, signer.jwk);
  }

  const out = {
    'content-digest': digest,
    'signature-input': serializeDictionary(inputs),
    signature: serializeDictionary(signatures),
  };
  if (signatureAgent) out['signature-agent'] = signatureAgentFor(Array.isArray(signatureAgent) ? signatureAgent : [...published.values()]);
  return out;
}
