// The default socket path rule, driven by the table that the C tests use
// (tests/vectors/socket-path.tsv, read by tests/test-sockpath.c), and the
// check of the socket's directory and file made before every connection.

import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { defaultSocketPath, socketPath, socketRefusal, AgentClient, McpsigError } from 'mcpsig';
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

test('socketRefusal: the directory and the socket file must be ours or root\'s, and private', async (t) => {
  const root = tempDir(t);
  const dir = path.join(root, 'd');
  fs.mkdirSync(dir, { mode: 0o700 });
  const sock = path.join(dir, 'agent.sock');
  const server = net.createServer((c) => c.destroy());
  await new Promise((resolve) => server.listen(sock, resolve));
  t.after(() => server.close());

  assert.equal(socketRefusal(sock), null, 'our own socket in our own 0700 directory passes');
  fs.chmodSync(dir, 0o755);
  assert.equal(socketRefusal(sock), null, '0755 passes: others may read it, not write it');
  for (const mode of [0o770, 0o703, 0o777]) {
    fs.chmodSync(dir, mode);
    const why = socketRefusal(sock);
    const octal = mode.toString(8).padStart(4, '0');
    assert.match(why ?? '', new RegExp(`${dir} \\(owned by you, uid ${uid}\\), which group or others may write \\(mode ${octal}\\)`), `mode ${octal} is refused`);
    assert.match(why, new RegExp(`chmod 700 ${dir}`), `  with the fix for mode ${octal}`);
  }
  fs.chmodSync(dir, 0o700);
  const link = path.join(root, 'link');
  fs.symlinkSync(dir, link);
  assert.match(socketRefusal(path.join(link, 'agent.sock')) ?? '', /a symbolic link/, 'a directory reached through a symbolic link is refused');
  assert.equal(socketRefusal(path.join(root, 'absent', 'agent.sock')), null, 'a missing directory is left to connect() to report');

  if (uid !== 0) {
    // Without root, "another user's directory" is ours seen from uid + 1.
    assert.match(socketRefusal(sock, { uid: uid + 1 }) ?? '', new RegExp(`owned by uid ${uid}, not by you \\(uid ${uid + 1}\\)`), 'another uid\'s directory is refused');
    t.diagnostic('not root: the cases of a socket file of another uid are left out');
  } else {
    // Root's directory passes for anyone; the socket file is checked then.
    assert.equal(socketRefusal(sock, { uid: 1000 }), null, 'root\'s directory and socket file pass for any uid');
    fs.chownSync(sock, 65534, 65534);
    assert.match(socketRefusal(sock) ?? '', /is a socket owned by uid 65534, not by you \(uid 0\) or root/, 'a socket file of uid 65534 is refused');
    fs.chownSync(sock, 0, 0);
    fs.chownSync(dir, 65534, 65534);
    assert.match(socketRefusal(sock) ?? '', /owned by uid 65534, not by you \(uid 0\)/, 'a directory of uid 65534 is refused, even to root');
    fs.chownSync(dir, 0, 0);
  }

  // The client refuses before it connects.
  fs.chmodSync(dir, 0o777);
  let connected = 0;
  server.on('connection', () => connected++);
  const client = new AgentClient({ socketPath: sock, timeoutMs: 2_000 });
  t.after(() => client.close());
  const err = await client.hello().then(() => null, (e) => e);
  assert.ok(err instanceof McpsigError, 'an McpsigError');
  assert.equal(err.code, 'EPEER');
  assert.equal(err.errno, 1025);
  assert.match(err.message, /^cannot reach mcpsig-agent: .*mode 0777/);
  assert.equal(connected, 0, 'and no connection was made');
  fs.chmodSync(dir, 0o700);
  const err2 = await client.hello().then(() => null, (e) => e);
  assert.equal(err2?.code, 'ECLOSED', 'control: after chmod 700 the same client connects (this listener hangs up)');
  assert.equal(connected, 1, '  once');
});
