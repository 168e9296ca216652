// Where the agent listens. This is the rule that the agent, libmcpsig and the
// CLI share (proto/sockpath.c, DESIGN.md), checked against the same table,
// tests/vectors/socket-path.tsv.

import fs from 'node:fs';
import os from 'node:os';

/**
 * The default socket path:
 *   1. $XDG_RUNTIME_DIR/mcpsig/agent.sock, if XDG_RUNTIME_DIR is absolute
 *      (the XDG spec says a relative value is invalid and must be ignored);
 *   2. /run/user/UID/mcpsig/agent.sock, if that directory exists, is a
 *      directory and belongs to UID;
 *   3. ${TMPDIR:-/tmp}/mcpsig-UID/agent.sock, with /tmp when TMPDIR is not
 *      absolute.
 * Every input can be given, for tests; by default they come from the process.
 */
export function defaultSocketPath({
  xdgRuntimeDir = process.env.XDG_RUNTIME_DIR,
  tmpdir = process.env.TMPDIR,
  uid = currentUid(),
  runUserRoot = '/run/user',
} = {}) {
  if (typeof xdgRuntimeDir === 'string' && xdgRuntimeDir.startsWith('/')) return `${xdgRuntimeDir}/mcpsig/agent.sock`;
  const runUser = `${runUserRoot}/${uid}`;
  let st = null;
  try {
    st = fs.statSync(runUser);
  } catch {
    // Absent or unreadable: fall through to the temporary directory.
  }
  if (st && st.isDirectory() && st.uid === uid) return `${runUser}/mcpsig/agent.sock`;
  const tmp = typeof tmpdir === 'string' && tmpdir.startsWith('/') ? tmpdir : '/tmp';
  return `${tmp}/mcpsig-${uid}/agent.sock`;
}

/**
 * The agent's socket: $MCPSIG_AUTH_SOCK when it is set and not empty, else
 * the default path. `env` defaults to process.env.
 */
export function socketPath(env = process.env) {
  const explicit = env.MCPSIG_AUTH_SOCK;
  if (typeof explicit === 'string' && explicit !== '') return explicit;
  return defaultSocketPath({ xdgRuntimeDir: env.XDG_RUNTIME_DIR, tmpdir: env.TMPDIR });
}

function currentUid() {
  if (typeof process.getuid === 'function') return process.getuid();
  return os.userInfo().uid;
}
