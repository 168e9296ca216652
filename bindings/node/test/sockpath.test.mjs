// The default socket path rule, driven by the table that the C tests use
// (tests/vectors/socket-path.tsv, read by tests/test-sockpath.c).

import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { defaultSocketPath, socketPath, AgentClient } from 'mcpsig';
import { REPO, tempDir } from './helpers.mjs';

const TABLE = process.env.MCPSIG_SOCKPATH_TABLE ?? path.join(REPO, 'tests/vectors/socket-path.tsv');
const uid = process.getuid();

function field(value) {
  if (value === '-') return undefined;
  if (value === '""') return '';
  return value;
}

function rows() {
  return fs
    .readFileSync(TABLE, 'utf8')
    .split('\n')
    .filter((line) => line && !line.startsWith('#'))
    .map((line) => line.split('\t'));
}

test('the socket path table: every row gives the path libmcpsig gives', async (t) => {
  const table = rows();
  assert.ok(table.length >= 10, `the shared table has at least 10 rows (has ${table.length})`);
  const root = tempDir(t);
  for (const cols of table) {
    assert.equal(cols.length, 5, `row "${cols[0]}" has 5 columns`);
    const [name, xdg, tmpdir, state, want] = cols;
    await t.test(`socket path: ${name}`, () => {
      // The user's directory under a stand-in for /run/user, in the row's state.
      let rowUid = uid;
      const dir = (u) => path.join(root, String(u));
      for (const u of [uid, uid + 1]) fs.rmSync(dir(u), { recursive: true, force: true });
      if (state === 'ours') fs.mkdirSync(dir(uid), { mode: 0o700 });
      else if (state === 'other') {
        if (uid === 0) {
          fs.mkdirSync(dir(uid), { mode: 0o700 });
          fs.chownSync(dir(uid), 65534, 65534);
        } else {
          // Only root can give a directory away. For another user, ask for
          // uid+1, whose directory here belongs to us: not that user's.
          rowUid = uid + 1;
          fs.mkdirSync(dir(rowUid), { mode: 0o700 });
        }
      } else if (state === 'file') fs.writeFileSync(dir(uid), '');
      else assert.equal(state, 'absent', `known state ${state}`);
      const expected = want.replaceAll('RUN', root).replaceAll('UID', String(rowUid));
      const got = defaultSocketPath({ xdgRuntimeDir: field(xdg), tmpdir: field(tmpdir), uid: rowUid, runUserRoot: root });
      assert.equal(got, expected);
    });
  }
});

test('socket discovery: MCPSIG_AUTH_SOCK first, then the default rule', () => {
  assert.equal(socketPath({ MCPSIG_AUTH_SOCK: '/some/where.sock', XDG_RUNTIME_DIR: '/xdg' }), '/some/where.sock', 'MCPSIG_AUTH_SOCK wins');
  assert.equal(socketPath({ MCPSIG_AUTH_SOCK: '', XDG_RUNTIME_DIR: '/xdg' }), '/xdg/mcpsig/agent.sock', 'an empty MCPSIG_AUTH_SOCK falls back to the default path');
  assert.equal(socketPath({ XDG_RUNTIME_DIR: '/xdg' }), '/xdg/mcpsig/agent.sock', 'unset MCPSIG_AUTH_SOCK: the default path');
  const saved = process.env.MCPSIG_AUTH_SOCK;
  try {
    process.env.MCPSIG_AUTH_SOCK = '/from/env.sock';
    assert.equal(new AgentClient().socketPath, '/from/env.sock', 'AgentClient reads MCPSIG_AUTH_SOCK by default');
    assert.equal(new AgentClient({ socketPath: '/given.sock' }).socketPath, '/given.sock', 'an explicit socketPath wins over the environment');
  } finally {
    if (saved === undefined) delete process.env.MCPSIG_AUTH_SOCK;
    else process.env.MCPSIG_AUTH_SOCK = saved;
  }
});
