// durability-check.mjs: reads an strace log of mcpsig-agent and checks that a
// file the agent renames into place is durable before the reply that depends
// on it: fsync(temp file), then rename into place, then fsync(directory), all
// before the reply on the client connection. With no options it checks
// invariant 1 for the first binding file: its reply is the first one that
// carries a signature.
//
// Usage: node durability-check.mjs [OPTIONS] TRACE [SUFFIX]
//   --rename SUFFIX  the rename whose target name ends with SUFFIX (default
//                    .binding; the old positional SUFFIX means the same)
//   --nth N          the Nth such rename in the trace (default 1)
//   --no-tmp         the renamed file is not a fresh temporary, so no
//                    fsync(file) is required (e.g. .pending -> .discard)
//   --has TEXT       the reply is the first write on a client socket that
//                    contains TEXT; repeat to require several (default sig1=)
//   --conn           the reply is the first write on the client connection
//                    that was open at the rename (the request that caused it)
// An fsync counts only on the same fd before it is closed. The trace needs
// accept4, openat, fsync, rename*, close and the write/send calls.
// Prints one line and exits 0 when the order holds, 1 when it does not.
import { readFileSync } from 'node:fs';

const args = process.argv.slice(2);
const opt = { rename: '.binding', nth: 1, tmp: true, has: [], conn: false };
const pos = [];
while (args.length) {
  const a = args.shift();
  if (a === '--rename') opt.rename = args.shift();
  else if (a === '--nth') opt.nth = Number(args.shift());
  else if (a === '--no-tmp') opt.tmp = false;
  else if (a === '--has') opt.has.push(args.shift());
  else if (a === '--conn') opt.conn = true;
  else pos.push(a);
}
const [file, suffix = opt.rename] = pos;
if (!opt.has.length) opt.has = ['sig1='];

const lines = readFileSync(file, 'utf8').split('\n');
const call = (l) => l.replace(/^\d+\s+/, '').replace(/^\[pid\s+\d+\]\s+/, '');
const fail = (why) => {
  console.log(`FAIL: ${why}`);
  process.exit(1);
};

// The Nth rename that puts a *SUFFIX file in place.
const renameRe = /^rename(?:at2?)?\((?:(\d+), )?"([^"]+)", (?:(\d+), )?"([^"]+)"(?:, \w+)?\)\s+= 0/;
let r = -1;
let m;
for (let i = 0, seen = 0; i < lines.length; i++) {
  m = renameRe.exec(call(lines[i]));
  if (m && m[4].endsWith(suffix) && ++seen === opt.nth) {
    r = i;
    break;
  }
}
const which = opt.nth === 1 ? '' : ` #${opt.nth}`;
if (r < 0) fail(`no rename${which} of a *${suffix} file into place`);
const [, , tmp, dirfd] = m;

// The first fsync(fd) in [from, to), unless fd is closed first.
const fsyncOf = (fd, from, to) => {
  for (let i = from; i < to; i++) {
    const c = call(lines[i]);
    if (new RegExp(`^f(?:data)?sync\\(${fd}\\)\\s+= 0`).test(c)) return i;
    if (c.startsWith(`close(${fd})`)) return -1;
  }
  return -1;
};

// The temporary's fd: the last O_CREAT openat of that name before the rename.
let openAt = -1;
let fsFile = -1;
if (opt.tmp) {
  let fileFd = null;
  for (let i = r - 1; i >= 0; i--) {
    const o = /^openat\(\d+, "([^"]+)", [^)]*O_CREAT[^)]*\)\s+= (\d+)/.exec(call(lines[i]));
    if (o && o[1] === tmp) {
      fileFd = o[2];
      openAt = i;
      break;
    }
  }
  if (fileFd === null) fail(`no open of ${tmp} before its rename`);
  fsFile = fsyncOf(fileFd, openAt + 1, r);
  if (fsFile < 0) fail(`no fsync(${fileFd}) of ${tmp} between its open and the rename`);
}
const fsDir = fsyncOf(dirfd, r + 1, lines.length);
if (fsDir < 0) fail(`no fsync(${dirfd}) of the directory after the rename, before the fd is closed`);

// Writes on client sockets (fds from accept, until closed), and the
// connections open at the rename, each named by the line that accepted it.
const writes = [];
const open = new Map();
let openAtRename = [];
for (let i = 0; i < lines.length; i++) {
  const c = call(lines[i]);
  if (i === r) openAtRename = [...open.values()];
  let a;
  if ((a = /^accept4?\(.*\)\s+= (\d+)$/.exec(c))) open.set(a[1], i);
  else if ((a = /^close\((\d+)\)/.exec(c))) open.delete(a[1]);
  else if ((a = /^(?:write|writev|sendmsg|sendto)\((\d+),/.exec(c)) && open.has(a[1]))
    writes.push({ i, conn: open.get(a[1]), text: c });
}
let w;
if (opt.conn) {
  if (openAtRename.length !== 1) fail(`${openAtRename.length} client connections open at the rename, expected 1`);
  w = writes.find((x) => x.conn === openAtRename[0]);
} else {
  w = writes.find((x) => opt.has.every((t) => x.text.includes(t)));
}
const what = opt.conn || opt.has.join() !== 'sig1=' ? 'reply' : 'signed reply';
if (!w) fail(`no ${what} on a client socket`);
const reply = w.i;
if (reply < r) fail(`the ${what} (line ${reply + 1}) comes before the rename (line ${r + 1})`);
if (reply < fsDir) fail(`the ${what} (line ${reply + 1}) comes before fsync of the directory (line ${fsDir + 1})`);
const head = opt.tmp ? `open ${openAt + 1} < fsync(file) ${fsFile + 1} < ` : '';
console.log(`OK: ${head}rename ${r + 1} < fsync(dir) ${fsDir + 1} < ${what} ${reply + 1}`);
