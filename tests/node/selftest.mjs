// Self-test of lib/verify.mjs, with no mcpsig code involved.
//
// A verifier that accepts everything would make every interop test pass, so
// this proves, before the agent is judged by it, that the verifier accepts the
// SPEC-NOTES §8.6 reference requests and rejects each kind of forgery for the
// right reason. Forgeries that need a valid signature over wrong content are
// made with the `http-message-signatures` signer, not with our own code.
//
// Output is TAP; the plan is printed last because the count follows the cases.

import crypto from 'node:crypto';
import { parseDictionary, serializeDictionary } from 'structured-headers';
import { httpbis, createSigner, createVerifier } from 'http-message-signatures';
import { calculateJwkThumbprint } from 'jose';
import { verifyRequest, contentDigestFor, parseSignatureAgent } from './lib/verify.mjs';

import { diag, ok, is, done } from './lib/tap.mjs';


function accepts(result, desc) {
  return ok(result.ok, desc, result.errors.join('\n'));
}

// A rejection only counts if it names the expected reason; otherwise a forged
// input could be "rejected" for some unrelated defect in the test itself.
function rejects(result, reason, desc) {
  const matched = result.errors.some((e) => reason.test(e));
  return ok(!result.ok && matched, desc,
    result.ok ? 'verifier accepted the forgery' : `errors did not match ${reason}:\n${result.errors.join('\n')}`);
}

// ---- reference material (SPEC-NOTES §8.1, §8.5, §8.6) ----------------------

const TEST_KEY_PEM = `-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF
-----END PRIVATE KEY-----
`;
const TEST_JWK = { kty: 'OKP', crv: 'Ed25519', x: 'JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs' };
const TEST_THUMBPRINT = 'poqkLGiymh_W0uP6PZFw-dvez3QJT5SolqXBCW38r0U';
// RFC 8037 Appendix A: a second, unrelated Ed25519 key.
const OTHER_JWK = { kty: 'OKP', crv: 'Ed25519', x: '11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo' };
const OTHER_PRIVATE_JWK = { ...OTHER_JWK, d: 'nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A' };
const OTHER_THUMBPRINT = 'kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k';

const testKey = crypto.createPrivateKey(TEST_KEY_PEM);
const otherKey = crypto.createPrivateKey({ key: OTHER_PRIVATE_JWK, format: 'jwk' });

const CREATED = 1767225600;
const URL_MCP = 'https://mcp.example.com/mcp';
const SEP_COMPONENTS = ['@method', '@target-uri', 'content-digest', 'mcp-protocol-version', 'mcp-session-id'];
const INIT_COMPONENTS = ['@method', '@target-uri', 'content-digest'];

const VEC_A = {
  body: Buffer.from('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}'),
  nonce: 'AAECAwQFBgcICQoLDA0ODw',
  contentDigest: 'sha-256=:6eKjXjwvtdKgEW/maMG0iUc511YUdfH2erCfHbofIuw=:',
  baseLength: 452,
  baseSha256: '49f4bcb8d8732d3b162a629d2f8e9033c50a306a52b4719488d15ca27d40ff87',
  signatureInput: 'sig1=("@method" "@target-uri" "content-digest" "mcp-protocol-version" "mcp-session-id");created=1767225600;nonce="AAECAwQFBgcICQoLDA0ODw";keyid="poqkLGiymh_W0uP6PZFw-dvez3QJT5SolqXBCW38r0U";tag="poqkLGiymh_W0uP6PZFw-dvez3QJT5SolqXBCW38r0U"',
  signature: 'sig1=:xX3WjizJ9mW9Ncr7T6xi4Z+z+b4AhIVAzArtt92idJtZUbfGBihqG0e5aRh4Xd8IEP+6zol/Dbc5x+FensrqBQ==:',
};

// The §8.6(b) body is the initialize request carrying clientInfo.cnf.jwk; its
// SHA-256 is the vector's Content-Digest, checked below.
const VEC_B = {
  body: Buffer.from('{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"example-client","version":"1.0.0","cnf":{"jwk":{"kty":"OKP","crv":"Ed25519","x":"JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs"}}}}}'),
  nonce: 'EBESExQVFhcYGRobHB0eHw',
  contentDigest: 'sha-256=:SAACw3xSDh9Z6rkrf20rxFSUy3uFzlgM7fjJ6kWrw8o=:',
  baseLength: 347,
  baseSha256: '1c060d697ae8688c3008d7f969ef234c313044196145d2d7d126b8af9263bcc8',
  signatureAgent: '"data:application/http-message-signatures-directory+json;base64,eyJrZXlzIjpbeyJrdHkiOiJPS1AiLCJjcnYiOiJFZDI1NTE5IiwieCI6IkpyUUxqNVBfODlpWEVTOS12RmdySXkyOWNsRjlDQ19vUFBzdzNjNUQwYnMifV19"',
  signatureInput: 'sig1=("@method" "@target-uri" "content-digest");created=1767225600;nonce="EBESExQVFhcYGRobHB0eHw";keyid="poqkLGiymh_W0uP6PZFw-dvez3QJT5SolqXBCW38r0U";tag="poqkLGiymh_W0uP6PZFw-dvez3QJT5SolqXBCW38r0U"',
  signature: 'sig1=:Tmznhw8YYR2UEztSNJ/kmH8J6KB0F/tRYL8f2oYK8EUaKoEZ4KmjqbXQduZbYejWSwaeeofatfzS8zGy3z9bAg==:',
};

function signatureAgentFor(jwks, encode = (b) => b.toString('base64')) {
  return `"data:application/http-message-signatures-directory+json;base64,${encode(Buffer.from(JSON.stringify(jwks)))}"`;
}

function vectorA(overrides = {}) {
  return {
    method: 'POST',
    url: URL_MCP,
    body: VEC_A.body,
    headers: {
      'content-type': 'application/json',
      'mcp-protocol-version': '2025-06-18',
      'mcp-session-id': 'sess-4f9c2a',
      'content-digest': VEC_A.contentDigest,
      'signature-input': VEC_A.signatureInput,
      signature: VEC_A.signature,
      ...overrides,
    },
  };
}

function vectorB(overrides = {}) {
  return {
    method: 'POST',
    url: URL_MCP,
    body: VEC_B.body,
    headers: {
      'content-type': 'application/json',
      'content-digest': VEC_B.contentDigest,
      'signature-agent': VEC_B.signatureAgent,
      'signature-input': VEC_B.signatureInput,
      signature: VEC_B.signature,
      ...overrides,
    },
  };
}

// Signs with the third-party library. `params` is the ordered parameter list;
// values not given default to the SEP profile for the test key.
async function refSign(request, {
  key = testKey,
  label = 'sig1',
  components = SEP_COMPONENTS,
  params = ['created', 'nonce', 'keyid', 'tag'],
  values = {},
  signatureAgent,
} = {}) {
  const headers = { ...request.headers };
  if (!('content-digest' in headers)) headers['content-digest'] = contentDigestFor(request.body);
  if (signatureAgent !== undefined) headers['signature-agent'] = signatureAgent;
  const paramValues = {
    created: new Date(CREATED * 1000),
    nonce: crypto.randomBytes(16).toString('base64url'),
    keyid: TEST_THUMBPRINT,
    tag: TEST_THUMBPRINT,
    ...values,
  };
  const signed = await httpbis.signMessage({
    key: createSigner(key, 'ed25519'),
    name: label,
    fields: components,
    params,
    paramValues,
  }, { method: request.method, url: request.url, headers });
  const out = {};
  for (const [k, v] of Object.entries(signed.headers)) out[k.toLowerCase()] = v;
  return { ...request, headers: out };
}

function unsignedA(extra = {}) {
  return {
    method: 'POST',
    url: URL_MCP,
    body: VEC_A.body,
    headers: { 'content-type': 'application/json', 'mcp-protocol-version': '2025-06-18', 'mcp-session-id': 'sess-4f9c2a', ...extra },
  };
}

function flipBit(sigField, label = 'sig1') {
  const dict = parseDictionary(sigField);
  const bytes = Buffer.from(dict.get(label)[0]);
  bytes[10] ^= 0x01;
  dict.set(label, [bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length), new Map()]);
  return serializeDictionary(dict);
}

function buildBase(lines, signatureInputMember) {
  return [...lines, `"@signature-params": ${signatureInputMember.slice(signatureInputMember.indexOf('=') + 1)}`].join('\n');
}

const v = (request, options = {}) => verifyRequest(request, { now: CREATED, ...options });

async function main() {
  // --- the reference values themselves ---------------------------------------
  is(await calculateJwkThumbprint(TEST_JWK, 'sha256'), TEST_THUMBPRINT, 'jose: RFC 7638 thumbprint of RFC 9421 test-key-ed25519');
  is(await calculateJwkThumbprint(OTHER_JWK, 'sha256'), OTHER_THUMBPRINT, 'jose: RFC 7638 thumbprint of RFC 8037 A.2 key (A.3)');
  const derived = crypto.createPublicKey(testKey).export({ format: 'jwk' });
  is(derived.x, TEST_JWK.x, 'test-key-ed25519: x derived from the private key equals the published x');
  is(contentDigestFor(Buffer.alloc(0)), 'sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:', 'RFC 9530: Content-Digest of the empty body');
  is(contentDigestFor(Buffer.from('{"hello": "world"}')), 'sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:', 'RFC 9530 Appendix D: Content-Digest of {"hello": "world"}');

  // --- §8.6(a): reproduce byte for byte --------------------------------------
  // SPEC-NOTES §8.6(a) labels this body "98 bytes", but the bytes whose
  // digest is the vector's Content-Digest are 97; the digest is authoritative.
  is(VEC_A.body.length, 97, '§8.6(a): body is 97 bytes');
  is(contentDigestFor(VEC_A.body), VEC_A.contentDigest, '§8.6(a): Content-Digest');
  const baseA = buildBase([
    '"@method": POST',
    `"@target-uri": ${URL_MCP}`,
    `"content-digest": ${VEC_A.contentDigest}`,
    '"mcp-protocol-version": 2025-06-18',
    '"mcp-session-id": sess-4f9c2a',
  ], VEC_A.signatureInput);
  is(Buffer.byteLength(baseA), VEC_A.baseLength, '§8.6(a): signature base length');
  is(crypto.createHash('sha256').update(baseA).digest('hex'), VEC_A.baseSha256, '§8.6(a): signature base SHA-256');
  is(`sig1=:${crypto.sign(null, Buffer.from(baseA), testKey).toString('base64')}:`, VEC_A.signature, '§8.6(a): Node crypto Ed25519 over the base gives the vector Signature');
  const refA = await refSign(unsignedA(), { values: { nonce: VEC_A.nonce } });
  is(refA.headers['signature-input'], VEC_A.signatureInput, '§8.6(a): http-message-signatures reproduces Signature-Input');
  is(refA.headers.signature, VEC_A.signature, '§8.6(a): http-message-signatures reproduces Signature');

  // --- §8.6(b): reproduce byte for byte --------------------------------------
  is(contentDigestFor(VEC_B.body), VEC_B.contentDigest, '§8.6(b): Content-Digest of the initialize body');
  const baseB = buildBase([
    '"@method": POST',
    `"@target-uri": ${URL_MCP}`,
    `"content-digest": ${VEC_B.contentDigest}`,
  ], VEC_B.signatureInput);
  is(Buffer.byteLength(baseB), VEC_B.baseLength, '§8.6(b): signature base length');
  is(crypto.createHash('sha256').update(baseB).digest('hex'), VEC_B.baseSha256, '§8.6(b): signature base SHA-256');
  is(signatureAgentFor({ keys: [TEST_JWK] }), VEC_B.signatureAgent, '§8.6(b): Signature-Agent from the JWK Set, standard base64');
  const refB = await refSign({ method: 'POST', url: URL_MCP, body: VEC_B.body, headers: { 'content-type': 'application/json' } },
    { components: INIT_COMPONENTS, values: { nonce: VEC_B.nonce } });
  is(refB.headers['signature-input'], VEC_B.signatureInput, '§8.6(b): http-message-signatures reproduces Signature-Input');
  is(refB.headers.signature, VEC_B.signature, '§8.6(b): http-message-signatures reproduces Signature');

  // --- the verifier accepts the references -----------------------------------
  let r = await v(vectorA(), { jwk: TEST_JWK, expectComponents: SEP_COMPONENTS, requireLabel: 'sig1' });
  accepts(r, '§8.6(a) verifies with the explicit JWK');
  is(r.labels.sig1?.keyid, TEST_THUMBPRINT, '§8.6(a): reported keyid');
  is(r.labels.sig1?.nonce, VEC_A.nonce, '§8.6(a): reported nonce');
  is(r.labels.sig1?.created, CREATED, '§8.6(a): reported created');
  is(Buffer.byteLength(r.labels.sig1?.base ?? ''), VEC_A.baseLength, '§8.6(a): the library rebuilds the same 452-byte base');
  accepts(await v(vectorA({ 'signature-agent': VEC_B.signatureAgent })), '§8.6(a) verifies with the key from Signature-Agent (not covered, so it may be added)');
  r = await v(vectorB(), { expectComponents: INIT_COMPONENTS });
  accepts(r, '§8.6(b) verifies with the key from Signature-Agent alone');
  is(r.signatureAgent?.form, 'string', '§8.6(b): Signature-Agent parsed as the SEP sf-string');
  accepts(await v(vectorB(), { jwk: TEST_JWK }), '§8.6(b) verifies with the explicit JWK (Signature-Agent agrees)');
  for (const field of [VEC_A.signatureInput, VEC_B.signatureInput, VEC_A.signature]) {
    is(serializeDictionary(parseDictionary(field)), field, `structured-headers round-trips ${field.slice(0, 40)}...`);
  }

  // --- forgeries of the reference requests -----------------------------------
  const bodyA = Buffer.from(VEC_A.body);
  bodyA[bodyA.length - 5] ^= 0x01;
  rejects(await v({ ...vectorA(), body: bodyA }, { jwk: TEST_JWK }), /Content-Digest sha-256 mismatch/, 'forgery: (a) body changed by one byte');
  const bodyB = Buffer.from(VEC_B.body);
  bodyB[20] = 0x20;
  rejects(await v({ ...vectorB(), body: bodyB }), /Content-Digest sha-256 mismatch/, 'forgery: (b) body changed by one byte');
  rejects(await v(vectorA({ 'mcp-session-id': 'sess-4f9c2b' }), { jwk: TEST_JWK }), /signature does not verify/, 'forgery: (a) MCP-Session-Id value changed');
  rejects(await v(vectorA({ 'mcp-protocol-version': '2025-03-26' }), { jwk: TEST_JWK }), /signature does not verify/, 'forgery: (a) MCP-Protocol-Version value changed');
  rejects(await v({ ...vectorA(), url: 'https://mcp.example.com/mcp/' }, { jwk: TEST_JWK }), /signature does not verify/, 'forgery: (a) target URI changed');
  rejects(await v({ ...vectorA(), method: 'PUT' }, { jwk: TEST_JWK }), /signature does not verify/, 'forgery: (a) method changed');
  rejects(await v(vectorA({ signature: flipBit(VEC_A.signature) }), { jwk: TEST_JWK }), /signature does not verify/, 'forgery: (a) one signature bit flipped');
  rejects(await v(vectorB({ signature: flipBit(VEC_B.signature) })), /signature does not verify/, 'forgery: (b) one signature bit flipped');
  {
    // Digest and body swapped together: the digest matches, the signature does not.
    const body = Buffer.from(VEC_A.body.toString().replace('"hi"', '"ho"'));
    rejects(await v({ ...vectorA({ 'content-digest': contentDigestFor(body) }), body }, { jwk: TEST_JWK }), /signature does not verify/,
      'forgery: (a) body and Content-Digest both replaced');
  }

  // keyid must be the thumbprint, even when the signature itself is valid.
  let forged = await refSign(unsignedA(), { values: { keyid: 'test-key-ed25519' } });
  rejects(await v(forged, { jwk: TEST_JWK }), /not a 43-character|not the RFC 7638 thumbprint/, 'forgery: valid signature, keyid "test-key-ed25519" (RFC 9421 style) is not the thumbprint');
  forged = await refSign(unsignedA(), { values: { keyid: OTHER_THUMBPRINT } });
  rejects(await v(forged, { jwk: TEST_JWK }), /not the RFC 7638 thumbprint/, 'forgery: valid signature, keyid is the thumbprint of another key');
  forged = await refSign(unsignedA(), { values: { keyid: OTHER_THUMBPRINT }, signatureAgent: signatureAgentFor({ keys: [OTHER_JWK] }) });
  rejects(await v(forged), /signature does not verify/, 'forgery: keyid and Signature-Agent name another key than the one that signed');

  // alg must be absent even when the signature is valid.
  forged = await refSign(unsignedA(), { params: ['created', 'nonce', 'keyid', 'tag', 'alg'], values: { alg: 'ed25519' } });
  rejects(await v(forged, { jwk: TEST_JWK }), /"alg" parameter is present/, 'forgery: valid signature carrying alg="ed25519"');

  // Coverage of the MCP headers follows their presence.
  forged = await refSign(unsignedA(), { components: ['@method', '@target-uri', 'content-digest', 'mcp-protocol-version'] });
  rejects(await v(forged, { jwk: TEST_JWK }), /"mcp-session-id" is not covered/, 'forgery: MCP-Session-Id present but not covered');
  forged = await refSign(unsignedA(), { components: ['@method', '@target-uri', 'content-digest', 'mcp-session-id'] });
  rejects(await v(forged, { jwk: TEST_JWK }), /"mcp-protocol-version" is not covered/, 'forgery: MCP-Protocol-Version present but not covered');
  forged = await refSign(unsignedA(), { components: ['@method', '@target-uri', 'mcp-protocol-version', 'mcp-session-id'] });
  rejects(await v(forged, { jwk: TEST_JWK }), /"content-digest" is not covered/, 'forgery: Content-Digest not covered');
  forged = await refSign(unsignedA(), { components: ['@method', 'content-digest', 'mcp-protocol-version', 'mcp-session-id'] });
  rejects(await v(forged, { jwk: TEST_JWK }), /"@target-uri" is not covered/, 'forgery: @target-uri not covered');
  forged = await refSign(unsignedA(), { components: ['@method', '@target-uri', 'content-digest', 'mcp-protocol-version', 'MCP-Session-Id'] });
  rejects(await v(forged, { jwk: TEST_JWK }), /not lowercase/, 'forgery: component name not lowercase');
  {
    const signed = await refSign(unsignedA());
    delete signed.headers['mcp-session-id'];
    rejects(await v(signed, { jwk: TEST_JWK }), /covered but the header is absent/, 'forgery: MCP-Session-Id covered but removed from the request');
  }

  // A Signature-Agent that names a different key than the signing key.
  rejects(await v(vectorB({ 'signature-agent': signatureAgentFor({ keys: [OTHER_JWK] }) })), /not the RFC 7638 thumbprint of any Signature-Agent key/,
    'forgery: (b) with Signature-Agent replaced by another key');
  rejects(await v(vectorB({ 'signature-agent': signatureAgentFor({ keys: [OTHER_JWK] }) }), { jwk: TEST_JWK }), /Signature-Agent announces a different key/,
    'forgery: Signature-Agent disagrees with the bound key');

  // Parameters and freshness.
  accepts(await v(vectorA(), { jwk: TEST_JWK, now: CREATED + 300 }), 'created exactly 300 s old is accepted');
  rejects(await v(vectorA(), { jwk: TEST_JWK, now: CREATED + 301 }), /more than 300 s before now/, 'created 301 s old is rejected');
  accepts(await v(vectorA(), { jwk: TEST_JWK, now: CREATED - 60 }), 'created 60 s in the future is accepted');
  rejects(await v(vectorA(), { jwk: TEST_JWK, now: CREATED - 61 }), /more than 60 s after now/, 'created 61 s in the future is rejected');
  for (const [name, params] of [
    ['created', ['nonce', 'keyid', 'tag']],
    ['nonce', ['created', 'keyid', 'tag']],
    ['keyid', ['created', 'nonce', 'tag']],
    ['tag', ['created', 'nonce', 'keyid']],
  ]) {
    forged = await refSign(unsignedA(), { params });
    rejects(await v(forged, { jwk: TEST_JWK }), new RegExp(`"${name}" parameter is missing`), `forgery: valid signature without ${name}`);
  }
  forged = await refSign(unsignedA(), { values: { nonce: Buffer.alloc(12, 7).toString('base64url') } });
  accepts(await v(forged, { jwk: TEST_JWK }), 'a 96-bit nonce is accepted');
  forged = await refSign(unsignedA(), { values: { nonce: Buffer.alloc(11, 7).toString('base64url') } });
  rejects(await v(forged, { jwk: TEST_JWK }), /fewer than 12 \(96 bits\)/, 'an 88-bit nonce is rejected');
  forged = await refSign(unsignedA(), { values: { nonce: `${Buffer.alloc(16, 7).toString('base64')}` } });
  rejects(await v(forged, { jwk: TEST_JWK }), /not unpadded base64url/, 'a padded standard-base64 nonce is rejected');
  forged = await refSign(unsignedA(), { values: { nonce: 'srv-nonce-123' } });
  accepts(await v(forged, { jwk: TEST_JWK, expectNonce: 'srv-nonce-123' }), 'a server-supplied nonce copied verbatim is accepted when expected');
  rejects(await v(forged, { jwk: TEST_JWK, expectNonce: 'srv-nonce-124' }), /expected the server's/, 'a nonce other than the server-supplied one is rejected');

  // Structure of the signature fields.
  rejects(await v(unsignedA({ 'content-digest': contentDigestFor(VEC_A.body) }), { jwk: TEST_JWK }), /not signed/, 'an unsigned request is rejected');
  rejects(await v(vectorA({ 'content-digest': undefined }), { jwk: TEST_JWK }), /Content-Digest header is missing/, 'a request without Content-Digest is rejected');
  rejects(await v(vectorA({ 'content-digest': `md5=:${crypto.createHash('md5').update(VEC_A.body).digest('base64')}:` }), { jwk: TEST_JWK }),
    /not sha-256 or sha-512|no sha-256 member/, 'a deprecated-algorithm Content-Digest is rejected');
  rejects(await v(vectorA({ signature: VEC_A.signature.replace('sig1=', 'sig2=') }), { jwk: TEST_JWK }), /not in Signature/, 'Signature-Input and Signature labels differ');
  rejects(await v(vectorA(), { jwk: TEST_JWK, requireLabel: 'sig2' }), /required label sig2 is absent/, 'a required label that is absent is reported');
  rejects(await v(vectorA(), { jwk: TEST_JWK, expectComponents: INIT_COMPONENTS }), /expected \(/, 'an unexpected component list is reported');
  rejects(await v(vectorA({ 'signature-input': VEC_A.signatureInput.replace('" "@target-uri"', '"  "@target-uri"') }), { jwk: TEST_JWK }),
    /not in canonical RFC 8941 form/, 'a non-canonical Signature-Input (double space) is rejected');
  rejects(await v(vectorA({ 'signature-agent': undefined })), /no key/, 'no Signature-Agent and no explicit key is rejected');
  forged = await refSign(unsignedA(), { key: otherKey, values: { keyid: OTHER_THUMBPRINT }, signatureAgent: signatureAgentFor({ keys: [OTHER_PRIVATE_JWK] }) });
  rejects(await v(forged), /private members: d/, 'a Signature-Agent JWK that leaks the private key is rejected');

  // Two signatures in one request must each be checked.
  {
    const one = await refSign(unsignedA(), { label: 'sig-old' });
    const both = await refSign(one, { label: 'sig-new' });
    r = await v(both, { jwk: TEST_JWK });
    accepts(r, 'two valid labels with distinct nonces are accepted');
    is(Object.keys(r.labels).join(','), 'sig-old,sig-new', 'both labels are reported');
    const badFirst = { ...both, headers: { ...both.headers, signature: flipBit(both.headers.signature, 'sig-old') } };
    rejects(await v(badFirst, { jwk: TEST_JWK }), /^sig-old: signature does not verify/, 'a bad first label is caught even though the last label is valid');
    const lib = await httpbis.verifyMessage({
      keyLookup: async () => ({ verify: createVerifier(crypto.createPublicKey(testKey), 'ed25519') }),
      notAfter: CREATED + 60,
      all: true,
    }, { method: badFirst.method, url: badFirst.url, headers: badFirst.headers }).catch((e) => e);
    diag(`http-message-signatures verifyMessage(all:true) alone on the same request returns: ${lib instanceof Error ? lib.message : lib}`);
  }

  // Signature-Agent encodings and forms.
  {
    // A `kid` member is varied until the standard alphabet needs '+' or '/'
    // and padding, which makes the two alphabets distinguishable.
    let json;
    for (let i = 0; i < 1000; i += 1) {
      const candidate = JSON.stringify({ keys: [{ ...TEST_JWK, kid: `k${i}?` }] });
      const b64 = Buffer.from(candidate).toString('base64');
      if (/[+/]/.test(b64) && b64.endsWith('=')) {
        json = candidate;
        break;
      }
    }
    ok(json !== undefined, 'found a directory payload whose base64 and base64url differ');
    const std = Buffer.from(json).toString('base64');
    const url = Buffer.from(json).toString('base64url');
    const prefix = 'data:application/http-message-signatures-directory+json;base64,';
    r = await v(vectorB({ 'signature-agent': `"${prefix}${std}"` }));
    accepts(r, 'Signature-Agent in standard base64 with padding is accepted');
    is(r.signatureAgent?.encoding, 'base64', 'standard base64 is reported as such');
    r = await v(vectorB({ 'signature-agent': `"${prefix}${url}"` }));
    accepts(r, 'Signature-Agent in base64url without padding is accepted');
    is(r.signatureAgent?.encoding, 'base64url', 'base64url is reported as such');
    rejects(await v(vectorB({ 'signature-agent': `"${prefix}_${std.slice(1)}"` })),
      /mixes base64 and base64url/, 'Signature-Agent mixing both alphabets is rejected');
    r = await v(vectorB({ 'signature-agent': `agent1="${prefix}${std}"` }));
    accepts(r, 'Signature-Agent in the later sf-dictionary form is accepted');
    is(r.signatureAgent?.form, 'dictionary', 'the dictionary form is reported as such');
    rejects(await v(vectorB({ 'signature-agent': `"data:application/json;base64,${std}"` })), /media type/, 'Signature-Agent with the wrong media type is rejected');
    rejects(await v(vectorB({ 'signature-agent': '"https://agent.example/.well-known/http-message-signatures-directory"' })), /not a data: URI/,
      'Signature-Agent that is not a data: URI is rejected (no network fetches)');
    const parsed = parseSignatureAgent(VEC_B.signatureAgent);
    is(JSON.stringify(parsed.jwks), JSON.stringify({ keys: [TEST_JWK] }), 'the §8.6(b) directory decodes to the test key');
  }

  // Empty bodies (GET/DELETE) still carry and cover the digest.
  {
    const get = await refSign({ method: 'GET', url: URL_MCP, body: Buffer.alloc(0), headers: { 'mcp-protocol-version': '2025-06-18', 'mcp-session-id': 'sess-4f9c2a' } });
    is(get.headers['content-digest'], 'sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:', 'empty-body request carries the empty-body digest');
    accepts(await v(get, { jwk: TEST_JWK }), 'a signed empty-body GET verifies');
    rejects(await v({ ...get, body: Buffer.from('x') }, { jwk: TEST_JWK }), /Content-Digest sha-256 mismatch/, 'forgery: body added to a signed empty-body GET');
  }

  // The other key signs correctly for itself: the verifier is not tied to the test key.
  {
    const req = await refSign(unsignedA(), { key: otherKey, values: { keyid: OTHER_THUMBPRINT, tag: 'stable-client-tag' }, signatureAgent: signatureAgentFor({ keys: [OTHER_JWK] }) });
    r = await v(req);
    accepts(r, 'a request signed by a second key verifies against its own Signature-Agent');
    is(r.labels.sig1?.tag, 'stable-client-tag', 'a tag other than the keyid is reported as sent');
  }
}

const watchdog = setTimeout(() => {
  console.log('Bail out! selftest did not finish within 60 s');
  process.exit(1);
}, 60_000);
watchdog.unref();

try {
  await main();
} catch (e) {
  console.log(`Bail out! ${e.stack?.split('\n')[0] ?? e}`);
  diag(e.stack ?? String(e));
  process.exit(1);
}
done();
