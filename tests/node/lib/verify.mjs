// Independent SEP-2752 verifier for signed MCP HTTP requests.
//
// The agent's own code must never be the only judge of its signatures, so
// everything here is built from third-party parts: Structured Fields parsing
// and serialization from `structured-headers`, the RFC 9421 signature base and
// signature check from `http-message-signatures`, the RFC 7638 thumbprint from
// `jose`, and hashing from Node's crypto. The only logic of our own is the
// SEP-2752 profile: which components must be covered, which parameters must
// (and must not) be present, and where the key comes from.

import crypto from 'node:crypto';
import {
  parseDictionary,
  parseItem,
  parseList,
  serializeDictionary,
  serializeList,
  isInnerList,
  Token,
} from 'structured-headers';
import { httpbis, createVerifier } from 'http-message-signatures';
import { calculateJwkThumbprint } from 'jose';

export const DIRECTORY_MEDIA_TYPE = 'application/http-message-signatures-directory+json';

// SEP-2752 §2.3 freshness window: created may be up to 300 s old and at most
// 60 s ahead of the verifier's clock.
export const MAX_AGE_SECONDS = 300;
export const MAX_FUTURE_SECONDS = 60;

// SEP-2752 §2.2: the nonce carries at least 96 bits of randomness.
const MIN_NONCE_BYTES = 12;

const BASE_COMPONENTS = ['@method', '@target-uri', 'content-digest'];
const CONDITIONAL_COMPONENTS = ['mcp-protocol-version', 'mcp-session-id'];

const B64URL_RE = /^[A-Za-z0-9_-]+$/;
const KEYID_RE = /^[A-Za-z0-9_-]{43}$/;

export function sha256Base64(bytes) {
  return crypto.createHash('sha256').update(bytes).digest('base64');
}

// The expected Content-Digest field for a body, for tests that want to
// compare the exact text.
export function contentDigestFor(body) {
  return `sha-256=:${sha256Base64(body)}:`;
}

function lowerHeaders(headers) {
  const out = {};
  for (const [name, value] of Object.entries(headers ?? {})) {
    if (value === undefined || value === null) continue;
    const key = name.toLowerCase();
    const text = Array.isArray(value) ? value.join(', ') : String(value);
    // Repeated field lines are combined as RFC 9110 §5.3 describes.
    out[key] = key in out ? `${out[key]}, ${text}` : text;
  }
  return out;
}

// The exact content bytes of a body given as a Buffer, Uint8Array or string.
export function toBuffer(body) {
  if (body === undefined || body === null) return Buffer.alloc(0);
  if (Buffer.isBuffer(body)) return body;
  if (body instanceof Uint8Array) return Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  if (typeof body === 'string') return Buffer.from(body, 'utf8');
  throw new TypeError('body must be a Buffer, Uint8Array or string');
}

// The algorithm always comes from the key, never from a parameter
// (RFC 9421 §3.2 step 6, §7.3.6).
export function algorithmForJwk(jwk) {
  if (jwk.kty === 'OKP' && jwk.crv === 'Ed25519') return { alg: 'ed25519', sigLen: 64 };
  if (jwk.kty === 'EC' && jwk.crv === 'P-256') return { alg: 'ecdsa-p256-sha256', sigLen: 64 };
  if (jwk.kty === 'EC' && jwk.crv === 'P-384') return { alg: 'ecdsa-p384-sha384', sigLen: 96 };
  return null;
}

// Only the public members are imported, so a JWK that leaks `d` still fails
// the separate private-member check rather than silently working.
export function publicJwk(jwk) {
  const out = { kty: jwk.kty, crv: jwk.crv, x: jwk.x };
  if (jwk.kty === 'EC') out.y = jwk.y;
  return out;
}

export const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k', 'oth'];

// Decodes the base64 payload of a data: URI. RFC 2397 means the standard
// alphabet with padding, while SEP-2752's prose says base64url; both are
// accepted, and the result says which one was seen so callers can be strict.
export function decodeDataUriBase64(text) {
  if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(text)) {
    throw new Error('data: payload is not base64 or base64url');
  }
  const hasStd = /[+/]/.test(text);
  const hasUrl = /[-_]/.test(text);
  if (hasStd && hasUrl) throw new Error('data: payload mixes base64 and base64url alphabets');
  const unpadded = text.replace(/=+$/, '');
  if (unpadded.length % 4 === 1) throw new Error('data: payload has an impossible base64 length');
  if (text.includes('=') && text.length % 4 !== 0) throw new Error('data: payload has wrong base64 padding');
  const bytes = Buffer.from(unpadded.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
  // Refuse payloads whose trailing bits are not zero: a different string for
  // the same bytes would mean the decoder is hiding something.
  if (bytes.toString('base64').replace(/=+$/, '') !== unpadded.replace(/-/g, '+').replace(/_/g, '/')) {
    throw new Error('data: payload is not canonical base64');
  }
  let encoding;
  if (hasUrl) encoding = 'base64url';
  else if (hasStd || text.includes('=')) encoding = 'base64';
  else encoding = text.length % 4 === 0 ? 'either' : 'base64url';
  return { bytes, encoding };
}

// Parses one Signature-Agent URI into a JWK Set.
export function parseSignatureAgentUri(uri) {
  const prefix = 'data:';
  if (!uri.startsWith(prefix)) throw new Error(`Signature-Agent is not a data: URI: ${uri.slice(0, 40)}`);
  const comma = uri.indexOf(',');
  if (comma < 0) throw new Error('Signature-Agent data: URI has no comma');
  const meta = uri.slice(prefix.length, comma).split(';');
  const mediaType = meta[0].toLowerCase();
  if (mediaType !== DIRECTORY_MEDIA_TYPE) {
    throw new Error(`Signature-Agent media type is "${meta[0]}", expected "${DIRECTORY_MEDIA_TYPE}"`);
  }
  const isBase64 = meta.slice(1).some((p) => p.toLowerCase() === 'base64');
  const data = uri.slice(comma + 1);
  let bytes;
  let encoding;
  if (isBase64) {
    ({ bytes, encoding } = decodeDataUriBase64(data));
  } else {
    bytes = Buffer.from(decodeURIComponent(data), 'utf8');
    encoding = 'percent';
  }
  let jwks;
  try {
    jwks = JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    throw new Error(`Signature-Agent directory is not JSON: ${e.message}`);
  }
  if (!jwks || typeof jwks !== 'object' || !Array.isArray(jwks.keys)) {
    throw new Error('Signature-Agent directory is not a JWK Set (no "keys" array)');
  }
  return { jwks, encoding, payload: data };
}

// Reads the Signature-Agent field. SEP-2752 uses the draft -03 sf-string form;
// the later sf-dictionary form is accepted too, and `form` reports which one
// was found. The first member that yields a valid directory wins, as the
// directory draft says.
export function parseSignatureAgent(fieldValue) {
  const candidates = [];
  let form = null;
  try {
    const [value] = parseItem(fieldValue);
    if (typeof value === 'string') {
      candidates.push(value);
      form = 'string';
    }
  } catch {
    // Not a single item; try the other shapes below.
  }
  if (!form) {
    try {
      for (const member of parseList(fieldValue)) {
        if (!isInnerList(member) && typeof member[0] === 'string') candidates.push(member[0]);
      }
      if (candidates.length) form = 'list';
    } catch {
      // Not a list either.
    }
  }
  if (!form) {
    try {
      for (const [, member] of parseDictionary(fieldValue)) {
        if (!isInnerList(member) && typeof member[0] === 'string') candidates.push(member[0]);
      }
      if (candidates.length) form = 'dictionary';
    } catch {
      // Fall through to the error below.
    }
  }
  if (!form) throw new Error('Signature-Agent is not a Structured Field string, list or dictionary of strings');
  const problems = [];
  for (const uri of candidates) {
    try {
      return { form, ...parseSignatureAgentUri(uri) };
    } catch (e) {
      problems.push(e.message);
    }
  }
  throw new Error(problems.join('; '));
}

function describe(value) {
  if (value instanceof Token) return `token ${value.toString()}`;
  if (value instanceof ArrayBuffer) return 'byte sequence';
  return `${typeof value} ${JSON.stringify(value)}`;
}

function bareToPlain(value) {
  if (value instanceof Token) return value.toString();
  if (value instanceof ArrayBuffer) return Buffer.from(value).toString('base64');
  return value;
}

// Checks one parsed dictionary field against its own canonical serialization.
// Verifiers rebuild @signature-params by re-serializing, so a non-canonical
// Signature-Input is a signature nobody else can check.
function checkCanonical(name, raw, parsed, errors) {
  let canonical;
  try {
    canonical = serializeDictionary(parsed);
  } catch (e) {
    errors.push(`${name} cannot be re-serialized: ${e.message}`);
    return;
  }
  if (canonical !== raw.trim()) {
    errors.push(`${name} is not in canonical RFC 8941 form: got ${JSON.stringify(raw)}, canonical ${JSON.stringify(canonical)}`);
  }
}

function checkContentDigest(headers, body, errors) {
  const raw = headers['content-digest'];
  if (raw === undefined) {
    errors.push('Content-Digest header is missing');
    return null;
  }
  let dict;
  try {
    dict = parseDictionary(raw);
  } catch (e) {
    errors.push(`Content-Digest does not parse: ${e.message}`);
    return null;
  }
  checkCanonical('Content-Digest', raw, dict, errors);
  const digests = {
    'sha-256': crypto.createHash('sha256').update(body).digest(),
    'sha-512': crypto.createHash('sha512').update(body).digest(),
  };
  if (!dict.has('sha-256')) errors.push('Content-Digest has no sha-256 member');
  for (const [alg, member] of dict) {
    if (!(alg in digests)) {
      errors.push(`Content-Digest uses algorithm "${alg}", which is not sha-256 or sha-512`);
      continue;
    }
    if (isInnerList(member) || !(member[0] instanceof ArrayBuffer)) {
      errors.push(`Content-Digest ${alg} is not a byte sequence`);
      continue;
    }
    const got = Buffer.from(member[0]);
    if (!got.equals(digests[alg])) {
      errors.push(`Content-Digest ${alg} mismatch: header ${got.toString('base64')}, body ${digests[alg].toString('base64')}`);
    }
  }
  return raw;
}

/**
 * Verifies a signed MCP request against the SEP-2752 profile.
 *
 * request: { method, url, headers, body }. `url` is the absolute target URI as
 *   the verifier rebuilds it; `headers` maps field names to strings; `body` is
 *   the exact content bytes.
 * options:
 *   requireLabel       label that must be present (e.g. 'sig2' after an
 *                      Accept-Signature retry)
 *   expectComponents   exact ordered list of covered component names
 *   expectNonce        nonce a server supplied; it must be copied verbatim,
 *                      and it is exempt from the entropy check because the
 *                      server, not the client, chose it
 *   jwk                explicit public JWK to verify with, instead of the
 *                      Signature-Agent directory
 *   keys               { label: JWK }: the only key a listed label may be
 *                      verified with, whatever `jwk` or Signature-Agent say
 *                      (a rotation checks sig-old against the bound key and
 *                      sig-new against params.newKey); null means no key is
 *                      acceptable for that label. Unlisted labels use `jwk`
 *                      or the directory as usual.
 *   expectLabels       exact set of labels the request must carry
 *   now                verifier clock in Unix seconds
 *
 * Returns { ok, errors, labels, signatureAgent }. Each labels[label] also has
 * its own `errors`, so a caller can tell which signature failed.
 */
export async function verifyRequest(request, options = {}) {
  const errors = [];
  const labels = {};
  const result = { ok: false, errors, labels, signatureAgent: null };
  const now = options.now ?? Math.floor(Date.now() / 1000);
  const headers = lowerHeaders(request.headers);
  let body;
  try {
    body = toBuffer(request.body);
  } catch (e) {
    errors.push(e.message);
    return result;
  }
  const method = String(request.method ?? '');
  const url = String(request.url ?? '');

  checkContentDigest(headers, body, errors);

  const rawInput = headers['signature-input'];
  const rawSig = headers['signature'];
  if (rawInput === undefined || rawSig === undefined) {
    errors.push(rawInput === undefined && rawSig === undefined
      ? 'request is not signed (no Signature-Input or Signature)'
      : `missing ${rawInput === undefined ? 'Signature-Input' : 'Signature'} header`);
    return result;
  }
  let inputs;
  let signatures;
  try {
    inputs = parseDictionary(rawInput);
  } catch (e) {
    errors.push(`Signature-Input does not parse: ${e.message}`);
    return result;
  }
  try {
    signatures = parseDictionary(rawSig);
  } catch (e) {
    errors.push(`Signature does not parse: ${e.message}`);
    return result;
  }
  checkCanonical('Signature-Input', rawInput, inputs, errors);
  checkCanonical('Signature', rawSig, signatures, errors);
  if (inputs.size === 0) errors.push('Signature-Input has no members');
  for (const label of inputs.keys()) {
    if (!signatures.has(label)) errors.push(`label ${label} is in Signature-Input but not in Signature`);
  }
  for (const label of signatures.keys()) {
    if (!inputs.has(label)) errors.push(`label ${label} is in Signature but not in Signature-Input`);
  }
  if (options.requireLabel && !inputs.has(options.requireLabel)) {
    errors.push(`required label ${options.requireLabel} is absent (labels: ${[...inputs.keys()].join(', ') || 'none'})`);
  }
  if (options.expectLabels) {
    const present = [...inputs.keys()].join(', ') || 'none';
    for (const label of options.expectLabels) {
      if (!inputs.has(label)) errors.push(`label ${label} is absent (labels: ${present})`);
    }
    for (const label of inputs.keys()) {
      if (!options.expectLabels.includes(label)) errors.push(`label ${label} is not expected here (expected: ${options.expectLabels.join(', ')})`);
    }
  }
  const labelKeys = options.keys ?? {};
  const hasLabelKey = (label) => Object.prototype.hasOwnProperty.call(labelKeys, label);

  // Key sources: an explicit JWK, else the Signature-Agent directory.
  let directoryKeys = null;
  if (headers['signature-agent'] !== undefined) {
    try {
      const agent = parseSignatureAgent(headers['signature-agent']);
      result.signatureAgent = agent;
      directoryKeys = agent.jwks.keys;
    } catch (e) {
      errors.push(`Signature-Agent: ${e.message}`);
    }
  }
  const poolEntry = async (jwk, report) => {
    const info = algorithmForJwk(jwk);
    let thumbprint = null;
    try {
      thumbprint = info ? await calculateJwkThumbprint(publicJwk(jwk), 'sha256') : null;
    } catch (e) {
      report(`JWK thumbprint failed: ${e.message}`);
    }
    return { jwk, info, thumbprint };
  };
  const keyPool = [];
  for (const jwk of options.jwk ? [options.jwk] : directoryKeys ?? []) {
    if (!jwk || typeof jwk !== 'object') continue;
    keyPool.push(await poolEntry(jwk, (msg) => errors.push(msg)));
  }
  const needsPool = [...inputs.keys()].some((label) => !hasLabelKey(label));
  if (needsPool && !options.jwk && directoryKeys === null) {
    errors.push('no key: no Signature-Agent header and no explicit JWK');
  }
  // A Signature-Agent that announces a different key than the one used is a
  // mismatch even when an explicit key is supplied (SPEC-NOTES §9 point 10).
  const directoryThumbprints = new Set();
  if ((options.jwk || options.keys) && directoryKeys) {
    for (const jwk of directoryKeys) {
      if (jwk && typeof jwk === 'object' && algorithmForJwk(jwk)) {
        try {
          directoryThumbprints.add(await calculateJwkThumbprint(publicJwk(jwk), 'sha256'));
        } catch {
          // An unusable directory key simply matches nothing.
        }
      }
    }
  }

  const presentConditional = CONDITIONAL_COMPONENTS.filter((c) => headers[c] !== undefined);
  const required = [...BASE_COMPONENTS, ...presentConditional];

  for (const [label, input] of inputs) {
    const info = { keyid: null, tag: null, nonce: null, components: [], created: null, params: [], paramValues: {}, alg: null, base: null, jwk: null, errors: [] };
    const fail = (msg) => {
      errors.push(`${label}: ${msg}`);
      info.errors.push(msg);
    };
    labels[label] = info;

    if (!isInnerList(input)) {
      fail('Signature-Input member is not an inner list');
      continue;
    }
    const [items, params] = input;
    info.params = [...params.keys()];
    info.paramValues = Object.fromEntries([...params].map(([k, v]) => [k, bareToPlain(v)]));

    let componentsOk = true;
    for (const [name, itemParams] of items) {
      if (typeof name !== 'string') {
        fail(`component identifier is a ${describe(name)}, not a string`);
        componentsOk = false;
        continue;
      }
      info.components.push(name);
      if (itemParams.size > 0) fail(`component "${name}" carries parameters (${[...itemParams.keys()].join(', ')}), which the profile does not use`);
      if (name !== name.toLowerCase()) fail(`component "${name}" is not lowercase`);
      if (name === '@signature-params') fail('"@signature-params" must not be a covered component');
    }
    const dupes = info.components.filter((c, i) => info.components.indexOf(c) !== i);
    if (dupes.length) fail(`duplicate components: ${dupes.join(', ')}`);
    for (const c of required) {
      if (!info.components.includes(c)) fail(`required component "${c}" is not covered (covered: ${info.components.join(' ')})`);
    }
    for (const c of CONDITIONAL_COMPONENTS) {
      if (info.components.includes(c) && headers[c] === undefined) fail(`component "${c}" is covered but the header is absent`);
    }
    if (options.expectComponents) {
      const want = options.expectComponents.join(' ');
      const got = info.components.join(' ');
      if (want !== got) fail(`covered components are (${got}), expected (${want})`);
    }

    // Parameters (SEP-2752 §2.2).
    if (params.has('alg')) fail(`"alg" parameter is present (${describe(params.get('alg'))}); SEP-2752 forbids it`);
    const created = params.get('created');
    if (!params.has('created')) fail('"created" parameter is missing');
    else if (typeof created !== 'number' || !Number.isInteger(created)) fail(`"created" is a ${describe(created)}, not an integer`);
    else {
      info.created = created;
      if (created < now - MAX_AGE_SECONDS) fail(`"created" ${created} is more than ${MAX_AGE_SECONDS} s before now (${now})`);
      if (created > now + MAX_FUTURE_SECONDS) fail(`"created" ${created} is more than ${MAX_FUTURE_SECONDS} s after now (${now})`);
    }
    if (params.has('expires')) {
      const expires = params.get('expires');
      if (typeof expires !== 'number' || !Number.isInteger(expires)) fail(`"expires" is a ${describe(expires)}, not an integer`);
      else if (expires < now) fail(`"expires" ${expires} is before now (${now})`);
    }
    const nonce = params.get('nonce');
    if (!params.has('nonce')) fail('"nonce" parameter is missing');
    else if (typeof nonce !== 'string') fail(`"nonce" is a ${describe(nonce)}, not a string`);
    else {
      info.nonce = nonce;
      if (options.expectNonce !== undefined) {
        if (nonce !== options.expectNonce) fail(`"nonce" is ${JSON.stringify(nonce)}, expected the server's ${JSON.stringify(options.expectNonce)}`);
      } else if (!B64URL_RE.test(nonce)) {
        fail(`"nonce" ${JSON.stringify(nonce)} is not unpadded base64url`);
      } else if (nonce.length % 4 === 1) {
        fail(`"nonce" ${JSON.stringify(nonce)} has an impossible base64url length`);
      } else if (Buffer.from(nonce, 'base64url').length < MIN_NONCE_BYTES) {
        fail(`"nonce" decodes to ${Buffer.from(nonce, 'base64url').length} bytes, fewer than ${MIN_NONCE_BYTES} (96 bits)`);
      }
    }
    const keyid = params.get('keyid');
    if (!params.has('keyid')) fail('"keyid" parameter is missing');
    else if (typeof keyid !== 'string') fail(`"keyid" is a ${describe(keyid)}, not a string`);
    else {
      info.keyid = keyid;
      if (!KEYID_RE.test(keyid)) fail(`"keyid" ${JSON.stringify(keyid)} is not a 43-character base64url SHA-256 thumbprint`);
    }
    const tag = params.get('tag');
    if (!params.has('tag')) fail('"tag" parameter is missing');
    else if (typeof tag !== 'string' || tag.length === 0) fail(`"tag" is a ${describe(tag)}, not a non-empty string`);
    else info.tag = tag;

    // Key: the keyid must be the RFC 7638 thumbprint of the key that verifies.
    const sigMember = signatures.get(label);
    let key = null;
    let pool = keyPool;
    let poolName = options.jwk ? 'the supplied JWK' : 'any Signature-Agent key';
    const explicit = hasLabelKey(label) || Boolean(options.jwk);
    if (hasLabelKey(label)) {
      const jwk = labelKeys[label];
      pool = jwk && typeof jwk === 'object' ? [await poolEntry(jwk, fail)] : [];
      poolName = `the key supplied for ${label}`;
      if (!pool.length) fail(`no key is acceptable for ${label}`);
    }
    const refused = hasLabelKey(label) && !pool.length;
    if (typeof keyid === 'string' && !refused) {
      key = pool.find((k) => k.thumbprint === keyid) ?? null;
      if (!key) {
        const known = pool.map((k) => k.thumbprint).filter(Boolean);
        fail(`"keyid" ${keyid} is not the RFC 7638 thumbprint of ${poolName} (thumbprints: ${known.join(', ') || 'none'})`);
      } else if (explicit && directoryKeys && !directoryThumbprints.has(keyid)) {
        fail('Signature-Agent announces a different key than the one the signature was checked with');
      }
    }
    if (key) {
      info.jwk = key.jwk;
      const leaked = PRIVATE_MEMBERS.filter((m) => m in key.jwk);
      if (leaked.length) fail(`JWK carries private members: ${leaked.join(', ')}`);
      if (!key.info) fail(`unsupported key type kty=${key.jwk.kty} crv=${key.jwk.crv}`);
      else info.alg = key.info.alg;
    }

    if (!sigMember) continue;
    if (isInnerList(sigMember) || !(sigMember[0] instanceof ArrayBuffer)) {
      fail('Signature member is not a byte sequence');
      continue;
    }
    const sigBytes = Buffer.from(sigMember[0]);
    if (key?.info && sigBytes.length !== key.info.sigLen) {
      fail(`signature is ${sigBytes.length} bytes, expected ${key.info.sigLen} for ${key.info.alg}`);
    }
    if (!componentsOk || !key?.info) continue;

    // Hand the library a message holding only this label. Its verifyMessage
    // folds over all labels and, with several present, reports only the last
    // one, so each label is checked on its own here.
    const single = {
      ...headers,
      'signature-input': serializeDictionary(new Map([[label, input]])),
      signature: serializeDictionary(new Map([[label, sigMember]])),
    };
    const message = { method, url, headers: single };
    try {
      const fields = items.map(([name]) => `"${name}"`);
      const base = httpbis.createSignatureBase({ fields }, message);
      base.push(['"@signature-params"', [serializeList([input])]]);
      info.base = httpbis.formatSignatureBase(base);
    } catch {
      // The same failure is reported by verifyMessage below.
    }
    let keyObject;
    try {
      keyObject = crypto.createPublicKey({ key: publicJwk(key.jwk), format: 'jwk' });
    } catch (e) {
      fail(`JWK does not import: ${e.message}`);
      continue;
    }
    const alg = key.info.alg;
    try {
      const verified = await httpbis.verifyMessage({
        keyLookup: async () => ({ id: keyid, algs: [alg], verify: createVerifier(keyObject, alg) }),
        // Freshness is checked above against the SEP window; the library's own
        // check only needs to allow the same future skew.
        notAfter: now + MAX_FUTURE_SECONDS,
        all: true,
      }, message);
      if (verified !== true) fail(`signature does not verify (${alg})`);
    } catch (e) {
      fail(`signature check failed: ${e.message}`);
    }
  }

  result.ok = errors.length === 0;
  return result;
}
