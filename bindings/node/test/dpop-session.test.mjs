// AgentDpopSession against a real agent: it is a DpopSession of the v2 SDK,
// its proofs are RFC 9449 proofs made with the agent's key for the MCP
// server's origin, and it feeds the SDK's nonce, token and algorithm choices
// through to the agent.

import test from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { DpopSession, withDpop } from '@modelcontextprotocol/client';
import { AgentDpopSession } from 'mcpsig/dpop';
import { AgentClient, McpsigError } from 'mcpsig';
import { NO_P256, agentHasP256, sharedSocket, startRecorder } from './helpers.mjs';

function decode(jws) {
  const [h, p, s] = jws.split('.');
  return { header: JSON.parse(Buffer.from(h, 'base64url')), payload: JSON.parse(Buffer.from(p, 'base64url')), signature: Buffer.from(s, 'base64url'), signed: `${h}.${p}` };
}

// Checks the JWS signature with node:crypto and the proof's own jwk.
function verifies(jws) {
  const { header, signature, signed } = decode(jws);
  const key = crypto.createPublicKey({ key: header.jwk, format: 'jwk' });
  const hash = { ES256: 'sha256', ES384: 'sha384' }[header.alg] ?? null;
  return crypto.verify(hash, Buffer.from(signed), hash ? { key, dsaEncoding: 'ieee-p1363' } : key, signature);
}

// RFC 7638: SHA-256 of the required members in lexicographic order.
function thumbprint(jwk) {
  const members = jwk.kty === 'EC' ? { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y } : { crv: jwk.crv, kty: jwk.kty, x: jwk.x };
  return crypto.createHash('sha256').update(JSON.stringify(members)).digest('base64url');
}

function uniqueOrigin(name) {
  return `https://${name}-${crypto.randomBytes(4).toString('hex')}.example`;
}

test('AgentDpopSession: a v2 DpopSession whose proofs come from the agent key of the origin', async (t) => {
  const agent = new AgentClient({ socketPath: sharedSocket() });
  t.after(() => agent.close());
  const origin = uniqueOrigin('mcp');
  const proofs = [];
  const session = new AgentDpopSession({ origin: `${origin}/mcp`, agent, onProof: (p) => proofs.push(p) });
  assert.ok(session instanceof DpopSession, 'an instance of the SDK DpopSession');
  assert.equal(session.origin, origin, 'the key scope is the origin');
  assert.equal(session.thumbprint, undefined, 'no key is known before the first proof');

  const tokenProof = await session.buildProof({ htm: 'post', htu: 'https://as.example.com/token?x=1#frag' });
  const a = decode(tokenProof);
  assert.equal(a.header.typ, 'dpop+jwt');
  assert.equal(a.header.alg, 'EdDSA');
  assert.equal(a.payload.htm, 'POST', 'htm in uppercase, as the SDK does');
  assert.equal(a.payload.htu, 'https://as.example.com/token', 'htu without query and fragment');
  assert.equal(a.payload.ath, undefined, 'no ath without a token');
  assert.equal(a.payload.nonce, undefined);
  assert.ok(verifies(tokenProof), 'the proof verifies with its jwk');
  const pub = await agent.identityPublic({ origin });
  assert.equal(thumbprint(a.header.jwk), pub.keyid, 'made with the agent key of the MCP origin, not of the AS');
  assert.equal(session.thumbprint, pub.keyid, 'thumbprint is the jkt');
  assert.equal(session.alg, 'EdDSA');
  assert.deepEqual(session.publicJwk, JSON.parse(pub.jwk));

  // The SDK's nonce bookkeeping: a remembered nonce is used for its origin only.
  session.rememberNonce('https://as.example.com/anything', 'as-nonce-1');
  const withNonce = decode(await session.buildProof({ htm: 'POST', htu: 'https://as.example.com/token' }));
  assert.equal(withNonce.payload.nonce, 'as-nonce-1', 'the remembered nonce of the AS origin');
  const explicit = decode(await session.buildProof({ htm: 'POST', htu: 'https://as.example.com/token', nonce: 'given' }));
  assert.equal(explicit.payload.nonce, 'given', 'an explicit nonce wins');
  const token = 'Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU';
  const rs = decode(await session.buildProof({ htm: 'GET', htu: new URL(`${origin}/mcp`), accessToken: token }));
  assert.equal(rs.payload.nonce, undefined, 'no nonce for the MCP origin');
  assert.equal(rs.payload.ath, crypto.createHash('sha256').update(token, 'ascii').digest('base64url'), 'ath binds the token');
  assert.notEqual(rs.payload.jti, a.payload.jti, 'a fresh jti');
  assert.equal(proofs.length, 4, 'onProof saw each proof');
  assert.deepEqual(proofs.map((p) => p.accessToken), [false, false, false, true]);

  // An agent error reaches the SDK as McpsigError.
  const stranger = new AgentDpopSession({ origin, agent, identity: 'no-such-identity' });
  const err = await stranger.buildProof({ htm: 'POST', htu: 'https://as.example.com/token' }).catch((e) => e);
  assert.ok(err instanceof McpsigError);
  assert.equal(err.code, 'ENOIDENT');
  assert.throws(() => new AgentDpopSession({ agent }), /origin is required/);
});

test("AgentDpopSession: the AS's dpop_signing_alg_values_supported choose the key type", async (t) => {
  if (!(await agentHasP256())) return t.skip(NO_P256);
  const agent = new AgentClient({ socketPath: sharedSocket() });
  t.after(() => agent.close());
  const session = new AgentDpopSession({ origin: uniqueOrigin('es256'), agent });
  session.useAuthorizationServerMetadata({ issuer: 'https://as.example.com', dpop_signing_alg_values_supported: ['RS256', 'ES256'] });
  const proof = await session.buildProof({ htm: 'POST', htu: 'https://as.example.com/token' });
  const { header } = decode(proof);
  assert.equal(header.alg, 'ES256', 'ES256 for an AS that takes no EdDSA');
  assert.equal(header.jwk.crv, 'P-256');
  assert.ok(verifies(proof), 'the ES256 proof verifies (r||s, not DER)');
  assert.equal(session.thumbprint, thumbprint(header.jwk));

  // A function may supply the list; load() fills the key before any request.
  const lazy = new AgentDpopSession({ origin: uniqueOrigin('lazy'), agent, algorithms: async () => ['ES256'] });
  const loaded = await lazy.load();
  assert.equal(loaded.alg, 'ES256');
  assert.equal(lazy.thumbprint, loaded.thumbprint);
  const none = new AgentDpopSession({ origin: uniqueOrigin('rsa'), agent, algorithms: ['RS256'] });
  const err = await none.buildProof({ htm: 'POST', htu: 'https://as.example.com/token' }).catch((e) => e);
  assert.equal(err.code, 'EALG', 'an AS the agent cannot serve: EALG, not a silent EdDSA proof');
});

test("AgentDpopSession through the SDK's own withDpop middleware", async (t) => {
  const agent = new AgentClient({ socketPath: sharedSocket() });
  t.after(() => agent.close());
  const server = await startRecorder(t);
  const session = new AgentDpopSession({ origin: server.base, agent });
  const f = withDpop(session, () => 'the-token')(fetch);
  const res = await f(`${server.base}/mcp?q=1`, { method: 'POST', body: '{}' });
  await res.text();
  const got = server.requests.at(-1);
  assert.equal(got.headers.authorization, 'DPoP the-token');
  const { payload } = decode(got.headers.dpop);
  assert.equal(payload.htu, `${server.base}/mcp`);
  assert.equal(payload.htm, 'POST');
  assert.equal(payload.ath, crypto.createHash('sha256').update('the-token').digest('base64url'));
  assert.ok(verifies(got.headers.dpop));
});
