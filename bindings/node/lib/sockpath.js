// Where the agent listens. This is the rule that the agent, libmcpsig and the
// CLI share (proto/sockpath.c, DESIGN.md), checked against the same table,
// tests/vectors/socket-path.tsv.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

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

const FIX =
  'set MCPSIG_AUTH_SOCK to your own agent\'s socket; eval "$(mcpsig-agent)" starts one in a private directory';

/**
 * Why the socket at `socketFile` cannot be trusted to be this user's agent,
 * or null when it can. Anyone may create ${TMPDIR:-/tmp}/mcpsig-UID before
 * the user's agent does and listen there; a client that connected would send
 * it private keys (identity.import), access tokens (dpop.proof) and request
 * headers and bodies (sign.http).
 *
 * The check, before connecting: the socket's directory is a directory (not a
 * symbolic link) owned by this user or root that neither group nor others
 * may write, and the socket file is owned by this user or root. This is the
 * weaker of the two checks of mcpsig: libmcpsig and the mcpsig command also
 * ask the kernel which uid listens (SO_PEERCRED), which Node cannot do
 * without native code. The lstat checks what the path is, which can only
 * change later if its directory is writable by someone else, and that is
 * refused. A missing directory or socket is left to connect() to report.
 */
export function socketRefusal(socketFile, { uid = currentEuid() } = {}) {
  const dir = path.dirname(socketFile);
  let st;
  try {
    st = fs.lstatSync(dir);
  } catch {
    return null;
  }
  if (st.isSymbolicLink()) {
    return `the agent's socket ${socketFile} is in ${dir}, a symbolic link (owned by uid ${st.uid}) that can be pointed at another user's listener; nothing was sent. Use the real directory, or ${FIX}`;
  }
  if (!st.isDirectory()) return null;
  if (st.uid !== uid && st.uid !== 0) {
    return `the agent's socket ${socketFile} is in ${dir}, owned by uid ${st.uid}, not by you (uid ${uid}): whoever owns it can listen there in place of your agent; nothing was sent. Remove the directory ${dir}, owned by uid ${st.uid} (as root or its owner), or ${FIX}`;
  }
  if (st.mode & 0o022) {
    const mode = (st.mode & 0o7777).toString(8).padStart(4, '0');
    return st.uid === uid
      ? `the agent's socket ${socketFile} is in ${dir} (owned by you, uid ${uid}), which group or others may write (mode ${mode}): anyone can put a listener there in place of your agent; nothing was sent. Fix it with: chmod 700 ${dir}, or ${FIX}`
      : `the agent's socket ${socketFile} is in ${dir} (owned by uid 0), which group or others may write (mode ${mode}): anyone can take that name before your agent does; nothing was sent. Put the socket in a directory of your own (mode 0700), or ${FIX}`;
  }
  let sock;
  try {
    sock = fs.lstatSync(socketFile);
  } catch {
    return null;
  }
  if (sock.isSymbolicLink() || (sock.uid !== uid && sock.uid !== 0)) {
    const what = sock.isSymbolicLink() ? 'is a symbolic link' : 'is a socket';
    return `the agent's socket ${socketFile} ${what} owned by uid ${sock.uid}, not by you (uid ${uid}) or root: it is not your agent's; nothing was sent. Remove ${socketFile}, or ${FIX}`;
  }
  return null;
}

// The agent serves only peers of its own effective uid; a client trusts only
// an agent of its own effective uid, or root.
function currentEuid() {
  if (typeof process.geteuid === 'function') return process.geteuid();
  return currentUid();
}

function currentUid() {
  if (typeof process.getuid === 'function') return process.getuid();
  return os.userInfo().uid;
}
