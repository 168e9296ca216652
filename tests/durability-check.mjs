// durability-check.mjs: reads an strace log of mcpsig-agent and checks
// invariant 1 for the first binding file it creates: fsync(temp file), then
// rename into place, then fsync(directory), all before the first reply on the
// client connection that carries a signature.
//
// Usage: node durability-check.mjs TRACE [SUFFIX]   (SUFFIX default ".binding")
// Prints one line and exits 0 when the order holds, 1 when it does not.
import { readFileSync } from 'node:fs';

const [, , file, suffix = '.binding'] = process.argv;
const lines = readFileSync(file, 'utf8').split('\n');
const call = (l) => l.replace(/^\d+\s+/, '').replace(/^\[pid\s+\d+\]\s+/, '');
const fail = (why) => {
  console.log(`FAIL: ${why}`);
  process.exit(1);
};

// The rename that puts the first binding file in place.
const renameRe = /^rename(?:at2?)?\((?:(\d+), )?"([^"]+)", (?:(\d+), )?"([^"]+)"(?:, \w+)?\)\s+= 0/;
let r = -1;
let m;
for (let i = 0; i < lines.length; i++) {
  m = renameRe.exec(call(lines[i]));
  if (m && m[4].endsWith(suffix)) {
    r = i;
    break;
  }
}
if (r < 0) fail(`no rename of a *${suffix} file into place`);
const [, , tmp, dirfd] = m;

// The temporary's fd: the last openat of that name before the rename.
let fileFd = null;
let openAt = -1;
for (let i = r - 1; i >= 0; i--) {
  const o = /^openat\(\d+, "([^"]+)", [^)]*O_CREAT[^)]*\)\s+= (\d+)/.exec(call(lines[i]));
  if (o && o[1] === tmp) {
    fileFd = o[2];
    openAt = i;
    break;
  }
}
if (fileFd === null) fail(`no open of ${tmp} before its rename`);

const fsyncOf = (fd, from, to) => {
  for (let i = from; i < to; i++) if (new RegExp(`^f(?:data)?sync\\(${fd}\\)\\s+= 0`).test(call(lines[i]))) return i;
  return -1;
};
const fsFile = fsyncOf(fileFd, openAt + 1, r);
if (fsFile < 0) fail(`no fsync(${fileFd}) of ${tmp} between its open and the rename`);
const fsDir = fsyncOf(dirfd, r + 1, lines.length);
if (fsDir < 0) fail(`no fsync(${dirfd}) of the directory after the rename`);

// The first write that carries a signature, on any socket.
let reply = -1;
for (let i = 0; i < lines.length; i++) {
  const c = call(lines[i]);
  if (/^(write|writev|sendmsg|sendto)\(/.test(c) && c.includes('sig1=')) {
    reply = i;
    break;
  }
}
if (reply < 0) fail('no reply carrying a signature');
if (reply < fsDir) fail(`the signed reply (line ${reply + 1}) comes before fsync of the directory (line ${fsDir + 1})`);
if (reply < r) fail('the signed reply comes before the rename');
console.log(`OK: open ${openAt + 1} < fsync(file) ${fsFile + 1} < rename ${r + 1} < fsync(dir) ${fsDir + 1} < signed reply ${reply + 1}`);
