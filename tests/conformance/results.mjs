// results.mjs: reads what one run of the conformance runner left behind, for
// tests/conformance.sh. Node built-ins only.
//
//   node results.mjs verdict DIR SCENARIO
//       exit 0 when the run passed: checks.json has at least one SUCCESS, no
//       FAILURE and no WARNING, and every DPoP check the scenario defines is
//       there and SUCCESS. Prints the checks that are not.
//   node results.mjs binding DIR LIST_JSON IDENTITY KEYTYPE
//       exit 0 when the proofs came from the agent: the agent's binding for
//       IDENTITY (whose key type is KEYTYPE) and the MCP server's origin (from `mcpsig list --json`) exists,
//       its keyid is the jkt of every proof the client logged and the cnf.jkt of
//       the access token the authorization server issued, and its key type is
//       the one the agent must have picked from the offered algorithms (the
//       identity's own type, or ecdsa-p256-sha256 for an Ed25519 identity when
//       neither EdDSA nor Ed25519 is offered); every proof's alg matches it.
//       Prints what it compared.
//   node results.mjs failed DIR CHECK_ID TEXT
//       exit 0 when check CHECK_ID is FAILURE and its message contains TEXT
//       (negative controls).
//
// DIR is the runner's --output-dir: it holds SCENARIO-TIMESTAMP/checks.json and
// the client's stdout.txt and stderr.txt beside it.

import { readFileSync, readdirSync } from 'node:fs';
import { join, dirname } from 'node:path';

const DPOP_CHECKS = {
  'auth/dpop': ['sep-1932-client-token-request-proof', 'sep-1932-client-dpop-auth-scheme', 'sep-1932-client-fresh-proof'],
  'auth/dpop-nonce': [
    'sep-1932-client-token-request-proof',
    'sep-1932-client-dpop-auth-scheme',
    'sep-1932-client-fresh-proof',
    'sep-1932-client-as-nonce',
    'sep-1932-client-rs-nonce'
  ]
};

function die(msg) {
  process.stdout.write(msg + '\n');
  process.exit(1);
}

function load(dir) {
  const found = readdirSync(dir, { recursive: true }).filter((f) => f === 'checks.json' || f.endsWith('/checks.json'));
  if (found.length !== 1) die(`expected one checks.json under ${dir}, found ${found.length}`);
  const file = join(dir, found[0]);
  const checks = JSON.parse(readFileSync(file, 'utf8'));
  let stdout = '';
  let stderr = '';
  try {
    stdout = readFileSync(join(dirname(file), 'stdout.txt'), 'utf8');
    stderr = readFileSync(join(dirname(file), 'stderr.txt'), 'utf8');
  } catch {
    // a run whose client never started has no output files
  }
  return { checks, stdout, stderr };
}

function describe(c) {
  return `${c.status} ${c.id}: ${c.errorMessage ?? c.description}`;
}

function b64json(part) {
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
}

function verdict(dir, scenario) {
  const required = DPOP_CHECKS[scenario];
  if (!required) die(`unknown scenario ${scenario}`);
  const { checks, stderr } = load(dir);
  const bad = checks.filter((c) => c.status === 'FAILURE' || c.status === 'WARNING');
  const problems = bad.map(describe);
  for (const id of required) {
    const c = checks.filter((x) => x.id === id);
    if (c.length === 0) problems.push(`MISSING ${id}`);
    else c.filter((x) => x.status !== 'SUCCESS' && !bad.includes(x)).forEach((x) => problems.push(describe(x)));
  }
  const ok = checks.filter((c) => c.status === 'SUCCESS').length;
  if (ok === 0) problems.push('no SUCCESS check at all');
  if (problems.length > 0) {
    process.stdout.write(problems.join('\n') + '\n');
    if (stderr.trim()) process.stdout.write('client stderr:\n' + stderr.trim() + '\n');
    process.exit(1);
  }
  process.stdout.write(`${ok} checks SUCCESS, none FAILURE or WARNING; ${required.join(', ')} SUCCESS\n`);
}

// The access token the authorization server issued, from its logged token response.
function issuedToken(checks) {
  const r = checks.find(
    (c) => c.id === 'outgoing-auth-response' && c.details?.path === '/token' && c.details?.statusCode === 200
  );
  return r?.details?.body?.access_token;
}

// The authorization server's dpop_signing_alg_values_supported, from its logged metadata response.
function advertisedAlgs(checks) {
  const r = checks.find(
    (c) => c.id === 'outgoing-auth-response' && c.details?.body && 'dpop_signing_alg_values_supported' in c.details.body
  );
  return r?.details?.body?.dpop_signing_alg_values_supported;
}

function binding(dir, listFile, identity, identityType) {
  const { checks, stdout } = load(dir);
  const lines = stdout.split('\n');
  const originLine = lines.find((l) => l.startsWith('server '));
  if (!originLine) die('the client logged no server line');
  const origin = /origin=(\S+)/.exec(originLine)[1];
  const proofs = lines
    .filter((l) => l.startsWith('dpop '))
    .map((l) => Object.fromEntries([...l.matchAll(/(\w+)=(\S+)/g)].map((m) => [m[1], m[2]])));
  if (proofs.length === 0) die('the client logged no proof');
  const offeredLine = lines.find((l) => l.startsWith('offered '));
  const offered = offeredLine ? offeredLine.slice('offered '.length).split(',') : advertisedAlgs(checks) ?? [];

  const list = JSON.parse(readFileSync(listFile, 'utf8'));
  const mine = list.filter((b) => b.identity === identity && b.origin === origin);
  if (mine.length !== 1) die(`the agent has ${mine.length} bindings for identity ${identity} and ${origin}`);
  const b = mine[0];

  const token = issuedToken(checks);
  if (!token) die('the authorization server issued no access token');
  const cnf = b64json(token.split('.')[1]).cnf;

  const wantType =
    identityType === 'ed25519' && !offered.some((a) => a === 'EdDSA' || a === 'Ed25519') ? 'ecdsa-p256-sha256' : identityType;
  const wantJose = { ed25519: ['EdDSA', 'Ed25519'], 'ecdsa-p256-sha256': ['ES256'] }[wantType];
  if (!wantJose) die(`unknown key type ${wantType}`);

  const problems = [];
  if (b.alg !== wantType) problems.push(`the binding's alg is ${b.alg}, not ${wantType} (offered: ${offered.join(',')})`);
  if (!cnf || cnf.jkt !== b.keyid) problems.push(`the token's cnf.jkt ${cnf?.jkt} is not the binding's keyid ${b.keyid}`);
  for (const p of proofs) {
    if (p.jkt !== b.keyid) problems.push(`a proof's jkt ${p.jkt} is not the binding's keyid ${b.keyid}`);
    if (!wantJose.includes(p.alg)) problems.push(`a proof's alg is ${p.alg}, not ${wantJose.join(' or ')}`);
  }
  if (problems.length > 0) die(problems.join('\n'));
  process.stdout.write(
    `${identity} ${origin}: ${b.alg} keyid ${b.keyid} = cnf.jkt = jkt of ${proofs.length} proofs (${[...new Set(proofs.map((p) => p.alg))].join(',')}); offered ${offered.join(',')}\n`
  );
}

function failed(dir, id, text) {
  const { checks } = load(dir);
  const c = checks.filter((x) => x.id === id);
  if (c.length === 0) die(`no check ${id}`);
  const f = c.find((x) => x.status === 'FAILURE' && (x.errorMessage ?? '').includes(text));
  if (!f) die(`${id} is ${c.map((x) => x.status).join(',')}, not FAILURE with "${text}"`);
  process.stdout.write(describe(f) + '\n');
}

const [cmd, ...args] = process.argv.slice(2);
if (cmd === 'verdict' && args.length === 2) verdict(...args);
else if (cmd === 'binding' && args.length === 4) binding(...args);
else if (cmd === 'failed' && args.length === 3) failed(...args);
else die('usage: results.mjs verdict DIR SCENARIO | binding DIR LIST_JSON IDENTITY KEYTYPE | failed DIR CHECK_ID TEXT');
