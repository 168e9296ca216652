// examples/node/client.mjs, exactly as README.md shows it, against the test
// MCP server: it runs, and every request it made was verified.
//
// The example is run from a temporary directory whose node_modules links
// `mcpsig` to this package and the SDK to this package's pinned copy, which
// is what `npm ci` in examples/node gives it.

import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { NODE, PACKAGE, REPO, run, sharedSocket, startMcpServer, tempDir } from './helpers.mjs';

const EXAMPLE = process.env.MCPSIG_EXAMPLE ?? path.join(REPO, 'examples/node/client.mjs');

test('examples/node/client.mjs signs every request of a real MCP session', { timeout: 60_000 }, async (t) => {
  assert.ok(fs.existsSync(EXAMPLE), `${EXAMPLE} exists`);
  const server = await startMcpServer(t);
  const dir = tempDir(t);
  fs.mkdirSync(path.join(dir, 'node_modules/@modelcontextprotocol'), { recursive: true });
  fs.symlinkSync(PACKAGE, path.join(dir, 'node_modules/mcpsig'));
  fs.symlinkSync(path.join(PACKAGE, 'node_modules/@modelcontextprotocol/sdk'), path.join(dir, 'node_modules/@modelcontextprotocol/sdk'));
  fs.writeFileSync(path.join(dir, 'package.json'), '{"type":"module","private":true}\n');
  fs.copyFileSync(EXAMPLE, path.join(dir, 'client.mjs'));

  const r = await run(NODE, [path.join(dir, 'client.mjs'), server.url.href], {
    timeoutMs: 30_000,
    env: { ...process.env, MCPSIG_AUTH_SOCK: sharedSocket() },
  });
  assert.equal(r.code, 0, `the example exits 0:\n${r.stdout}${r.stderr}`);
  assert.match(r.stdout, /^tools: echo$/m);
  assert.match(r.stdout, /^echo: signed by mcpsig$/m);

  const s = await server.stats();
  assert.ok(s.requests.length >= 5, `a whole session reached the server (${s.requests.length} requests)`);
  assert.equal(s.rejected, 0, JSON.stringify(s.requests.filter((e) => !e.ok).map((e) => e.errors)));
  assert.equal(s.verified, s.requests.length, 'every request verified');
  assert.ok(s.requests.some((e) => e.method === 'DELETE'), 'including the DELETE that ends the session');
});
