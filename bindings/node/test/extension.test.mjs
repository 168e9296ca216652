// The client's capability entry for SEP-2752 as an extension: the entry a host
// merges into capabilities.extensions carries the binding's public JWK in cnf.jwk,
// and its algorithms name the binding's key type. Against a real agent.

import test from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { AgentClient, EXTENSION_NAME } from 'mcpsig';
import { sharedSocket } from './helpers.mjs';

test('extensionEntry: the extension name, its settings and cnf.jwk of the binding', async (t) => {
  const agent = new AgentClient({ socketPath: sharedSocket() });
  t.after(() => agent.close());
  const origin = 'https://extension-entry.example';
  const entry = await agent.extensionEntry({ origin });
  assert.equal(EXTENSION_NAME, 'io.modelcontextprotocol/http-message-signatures');
  assert.deepEqual(Object.keys(entry), [EXTENSION_NAME]);
  const settings = entry[EXTENSION_NAME];
  assert.deepEqual(settings.algorithms, ['ed25519']);
  assert.deepEqual(settings.keyResolution, ['signature-agent', 'cnf']);
  assert.deepEqual(settings.contentDigest, ['rfc9530']);
  const pub = await agent.identityPublic({ origin });
  assert.deepEqual(settings.cnf.jwk, JSON.parse(pub.jwk));
  assert.ok(!('d' in settings.cnf.jwk), 'no private member');
  // The keyid a server will see in every signature is the RFC 7638 thumbprint of this JWK.
  const { crv, kty, x } = settings.cnf.jwk;
  const thumb = crypto.createHash('sha256').update(JSON.stringify({ crv, kty, x })).digest('base64url');
  assert.equal(thumb, pub.keyid);
  // Control: another origin has another key, so another entry.
  const other = await agent.extensionEntry({ origin: 'https://extension-other.example' });
  assert.notDeepEqual(other[EXTENSION_NAME].cnf.jwk, settings.cnf.jwk);
});
