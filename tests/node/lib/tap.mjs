// tap.mjs: TAP output shared by the Node tests. The plan is printed last,
// by done(), because the count follows the cases.
let count = 0;
let failures = 0;

export function diag(text) {
  for (const line of String(text).split('\n')) console.log(`# ${line}`);
}

export function ok(cond, desc, detail) {
  count += 1;
  if (!cond) failures += 1;
  console.log(`${cond ? 'ok' : 'not ok'} ${count} - ${desc}`);
  if (!cond && detail !== undefined) diag(typeof detail === 'function' ? detail() : detail);
  return cond;
}

export function is(got, want, desc) {
  return ok(got === want, desc, `got:  ${JSON.stringify(got)}\nwant: ${JSON.stringify(want)}`);
}

export function isnt(got, unwanted, desc) {
  return ok(got !== unwanted, desc, `both are ${JSON.stringify(got)}`);
}

export function done() {
  console.log(`1..${count}`);
  process.exitCode = failures ? 1 : 0;
}

export function bail(msg) {
  console.log(`Bail out! ${msg}`);
  process.exit(1);
}

// Runs an async main under a watchdog, then prints the plan. A throw or an
// overrun is a "Bail out!" line; cleanup runs in every case.
export async function runTests(name, main, { watchdogMs = 240_000, cleanup = () => {} } = {}) {
  const watchdog = setTimeout(() => {
    console.log(`Bail out! ${name} did not finish within ${watchdogMs / 1000} s`);
    cleanup();
    process.exit(1);
  }, watchdogMs);
  watchdog.unref();
  try {
    await main();
  } catch (e) {
    console.log(`Bail out! ${String(e.message ?? e).split('\n')[0]}`);
    diag(e.stack ?? String(e));
    cleanup();
    process.exit(1);
  }
  cleanup();
  done();
}
