// The declarations (index.d.ts, dpop.d.ts) compile against the pinned v1 and
// v2 SDKs, and refuse what they must refuse (test/types/check.ts).

import test from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { NODE, PACKAGE, run } from './helpers.mjs';

test('types: index.d.ts and dpop.d.ts fit the v1 and v2 SDKs (tsc --noEmit)', { timeout: 60_000 }, async () => {
  const tsc = path.join(PACKAGE, 'node_modules/typescript/bin/tsc');
  const r = await run(NODE, [tsc, '-p', path.join(PACKAGE, 'test/types')], { timeoutMs: 55_000 });
  assert.equal(r.code, 0, `tsc reports:\n${r.stdout}${r.stderr}`);
});
