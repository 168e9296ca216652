#!/bin/sh
# Key rotation end to end: a real agent, the real mcpsig CLI and two long-
# running hosts against the SEP-2752 test server (tests/node/mcp-server.mjs),
# which verifies every request with independent libraries and implements
# signatures/rotateKey. Prints TAP.
#
#  1. two hosts sign concurrently while `mcpsig rotate URL` runs: neither
#     restarts or reconnects, every request succeeds within one retry,
#     signatures before the commit use k1 and after it k2, the tag stays;
#  2. after the commit the server refuses k1 (a fresh request signed by the
#     test itself from k1's known seed);
#  3. aborts on a JSON-RPC error and on a 4xx, and what is refused after;
#  4. unknown outcomes: the server drops the connection after or before
#     applying the rotation, or answers 5xx, and --resume settles it;
#  5. subscribers see begin, commit and abort, in order, with the keyids.

. "${top_srcdir:-.}/tests/lib.sh"

HOST=$top_builddir/tests/rotate-host
[ -x "$HOST" ] || bail "$HOST is not built"
[ -x "$NODE" ] || bail "run npm ci in tests/node"

SOCK=$TMP/agent.sock
KS=$TMP/ks
start_agent "$SOCK" "$KS" || bail "the agent did not start"
MCPSIG_AUTH_SOCK=$SOCK
export MCPSIG_AUTH_SOCK

"$NODE" "$top_srcdir/tests/node/mcp-server.mjs" --lifetime 600 >"$TMP/server.out" 2>"$TMP/server.log" &
SERVER_PID=$!
AGENT_PIDS="$AGENT_PIDS $SERVER_PID"
wait_for 20 grep -q '^PORT ' "$TMP/server.out" || bail "the test server did not start"
PORT=$(sed -n 's/^PORT //p' "$TMP/server.out")
URL=http://127.0.0.1:$PORT/mcp
BASE=http://127.0.0.1:$PORT

# json FILE EXPR: evaluates a JavaScript expression over the JSON in FILE (as j).
json() {
	"$NODE" -e 'const fs=require("fs");const j=JSON.parse(fs.readFileSync(process.argv[1],"utf8"));
		const v=(0,eval)("(j)=>("+process.argv[2]+")")(j);process.stdout.write(typeof v==="string"?v:JSON.stringify(v))' "$1" "$2"
}
stats() { curl -sf "$BASE/__stats" >"$TMP/stats.json"; }
fault() { curl -sf -X POST -H 'Content-Type: application/json' -d "$1" "$BASE/__fault" >/dev/null; }
binding_state() { # binding_state FILE: list --json of this origin's binding, default identity
	"$CLI" rotate --status --origin "$URL" --json >"$1"
}
lines() { wc -l <"$1" 2>/dev/null || echo 0; }

# ---- set-up: k1 from a known seed ------------------------------------------------

"$NODE" -e 'process.stdout.write(require("crypto").createHash("sha256").update("mcpsig rotation test: the k1 seed").digest())' >"$TMP/k1.seed"
"$CLI" import --origin "$URL" --seed "$TMP/k1.seed" --json >"$TMP/import.json"
ok $? "k1 is imported from a known seed"
K1=$(json "$TMP/import.json" j.keyid)
TAG=$(json "$TMP/import.json" j.tag)
"$NODE" "$top_srcdir/tests/node/old-key.mjs" "$URL" "$TMP/k1.seed" "$TAG" 200 >"$TMP/old1.out" 2>&1
ok $? "before the rotation the server accepts k1, signed by the test itself (control)"

"$CLI" watch --json --count 6 >"$TMP/events.jsonl" 2>"$TMP/watch.err" &
WATCH_PID=$!
AGENT_PIDS="$AGENT_PIDS $WATCH_PID"

# ---- 1. a live rotation under two hosts ---------------------------------------------

"$HOST" "$URL" --until "$TMP/stop" >"$TMP/host1.out" 2>"$TMP/host1.err" &
H1=$!
"$HOST" "$URL" --until "$TMP/stop" >"$TMP/host2.out" 2>"$TMP/host2.err" &
H2=$!
AGENT_PIDS="$AGENT_PIDS $H1 $H2"
busy() { [ "$(lines "$TMP/host1.out")" -ge "$1" ] && [ "$(lines "$TMP/host2.out")" -ge "$1" ]; }
wait_for 30 busy 10
ok $? "two hosts are signing requests for the same origin"

"$CLI" rotate "$URL" --json >"$TMP/rotate1.json" 2>"$TMP/rotate1.err"
ok $? "mcpsig rotate URL exits 0 (committed) while the hosts run"
ok "$([ "$(json "$TMP/rotate1.json" j.outcome)" = committed ] && echo 0 || echo 1)" "the outcome is committed"
K2=$(json "$TMP/rotate1.json" j.new_keyid)
ok "$([ "$(json "$TMP/rotate1.json" j.old_keyid)" = "$K1" ] && [ "$K2" != "$K1" ] && [ ${#K2} -eq 43 ] && echo 0 || echo 1)" \
	"it rotated k1 to a new key k2"
ok "$([ "$(json "$TMP/rotate1.json" j.tag)" = "$TAG" ] && echo 0 || echo 1)" "the tag is unchanged"

n1=$(lines "$TMP/host1.out")
n2=$(lines "$TMP/host2.out")
after() { [ "$(lines "$TMP/host1.out")" -ge $((n1 + 10)) ] && [ "$(lines "$TMP/host2.out")" -ge $((n2 + 10)) ]; }
wait_for 30 after
touch "$TMP/stop"
host_ok=0
for h in "$H1" "$H2"; do
	i=0
	while kill -0 "$h" 2>/dev/null && [ "$i" -lt 300 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	wait "$h" || host_ok=1
done
ok "$host_ok" "both hosts ran to the end with every request succeeding within one retry"
for h in 1 2; do
	out=$TMP/host$h.out
	tail -n 1 "$out" | diag
	# shellcheck disable=SC2016
	verdict=$("$NODE" -e '
		const lines = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map(JSON.parse);
		const [k1, k2] = process.argv.slice(2);
		const reqs = lines.filter((l) => l.seq !== undefined);
		const sum = lines.find((l) => l.summary)?.summary;
		const bad = [];
		if (!sum) bad.push("no summary");
		if (reqs.some((r) => !r.ok)) bad.push("a request failed");
		if (reqs.some((r) => r.keyid !== k1 && r.keyid !== k2)) bad.push("a signature by an unknown key");
		if (!reqs.some((r) => r.first_keyid === k1) || !reqs.some((r) => r.keyid === k2)) bad.push("the rotation did not happen while the host ran");
		// The agent sends the commit event before any later reply on the same
		// connection: a signature asked for after the event must be k2, and a
		// k2 signature must come after the event.
		for (const r of reqs) {
			if (r.commit_before && r.first_keyid !== k2) bad.push(`request ${r.seq} was signed after the commit with ${r.first_keyid}`);
			if (r.first_keyid === k2 && !r.commit_after) bad.push(`request ${r.seq} was signed with k2 before the commit`);
			if (!r.commit_before && !r.commit_after && r.first_keyid !== k1) bad.push(`request ${r.seq} was signed before the commit with ${r.first_keyid}`);
		}
		const firstK2 = reqs.findIndex((r) => r.first_keyid === k2);
		if (firstK2 >= 0 && reqs.slice(firstK2).some((r) => r.first_keyid === k1)) bad.push("k1 was used again after k2");
		if (reqs.filter((r) => r.retried).length !== sum?.retries) bad.push("retries miscounted");
		console.log(bad.length ? bad.join("; ") : `ok: ${reqs.length} requests, ${sum.retries} retried once`);
	' "$out" "$K1" "$K2")
	echo "$verdict" | diag
	ok "$(case $verdict in ok:*) echo 0 ;; *) echo 1 ;; esac)" \
		"host $h: k1 before the commit, k2 after it, every retry counted and within one"
done

stats
ok "$([ "$(json "$TMP/stats.json" "j.bindings[\"$TAG\"]")" = "$K2" ] && echo 0 || echo 1)" \
	"the server now binds the unchanged tag to k2"
ok "$(json "$TMP/stats.json" "j.rotations.length===1 && j.rotations[0].tag==='$TAG' && j.rotations[0].old_keyid==='$K1' && j.rotations[0].new_keyid==='$K2' ? 0 : 1")" \
	"the server recorded exactly one rotation, k1 to k2 under the tag"
ok "$(json "$TMP/stats.json" "Object.keys(j.bindings).length===1 ? 0 : 1")" "no host ever presented another tag"
"$NODE" "$top_srcdir/tests/node/old-key.mjs" "$URL" "$TMP/k1.seed" "$TAG" 401 >"$TMP/old2.out" 2>&1
ok $? "after the commit the server refuses a fresh request signed with k1"
diag <"$TMP/old2.out"
binding_state "$TMP/state1.json"
ok "$(json "$TMP/state1.json" "j.state==='active' && j.keyid==='$K2' && j.retired.length===1 && j.retired[0]==='$K1' && j.tag==='$TAG' ? 0 : 1")" \
	"the agent: k2 active, k1's thumbprint retired, same tag"
ls "$KS"/identities/default/bindings/ >"$TMP/files1"
ok "$(grep -c '\.pending$' "$TMP/files1" | grep -qx 0 && echo 0 || echo 1)" "no pending key file is left"

# ---- 2. aborts ---------------------------------------------------------------------

fault '{"rotate":"error"}'
"$CLI" rotate "$URL" --json >"$TMP/rotate2.json" 2>"$TMP/rotate2.err"
ok "$([ $? -eq 1 ] && [ "$(json "$TMP/rotate2.json" j.outcome)" = aborted ] && echo 0 || echo 1)" \
	"a JSON-RPC error to rotateKey aborts (exit 1)"
K3=$(json "$TMP/rotate2.json" j.new_keyid)
binding_state "$TMP/state2.json"
ok "$(json "$TMP/state2.json" "j.state==='active' && j.keyid==='$K2' && j.pending_keyid===null && j.retired.length===1 ? 0 : 1")" \
	"after the abort k2 is still active and nothing more is retired"
ls "$KS"/identities/default/bindings/ >"$TMP/files2"
ok "$(grep -cE '\.(pending|discard)$' "$TMP/files2" | grep -qx 0 && echo 0 || echo 1)" "the aborted key's file is gone"
ok "$(grep -rl -e "$K3" "$KS" >/dev/null 2>&1 && echo 1 || echo 0)" "nothing in the keystore names the aborted key"
"$CLI" sign -u "$URL" -d '{}' --key pending >/dev/null 2>"$TMP/refuse1.err"
ok "$([ $? -eq 1 ] && grep -q 'no rotation is pending' "$TMP/refuse1.err" && echo 0 || echo 1)" \
	"after the abort, key pending is refused"
"$CLI" rotate --commit --origin "$URL" >/dev/null 2>"$TMP/refuse2.err"
ok "$([ $? -eq 1 ] && grep -q 'no rotation is pending' "$TMP/refuse2.err" && echo 0 || echo 1)" \
	"after the abort, commit is refused"

fault '{"rotate":"http-403"}'
"$CLI" rotate "$URL" --json >"$TMP/rotate3.json" 2>/dev/null
ok "$([ $? -eq 1 ] && [ "$(json "$TMP/rotate3.json" j.outcome)" = aborted ] && echo 0 || echo 1)" \
	"a 4xx to rotateKey aborts"

# ---- 3. unknown outcomes and --resume --------------------------------------------------

fault '{"rotate":"drop-after"}'
"$CLI" rotate "$URL" --json >"$TMP/rotate4.json" 2>/dev/null
ok "$([ $? -eq 3 ] && [ "$(json "$TMP/rotate4.json" j.outcome)" = pending ] && echo 0 || echo 1)" \
	"the server applies the rotation and drops the connection: exit 3, still pending"
K4=$(json "$TMP/rotate4.json" j.new_keyid)
"$CLI" rotate "$URL" >/dev/null 2>"$TMP/second.err"
rc=$?
ok "$([ "$rc" -eq 1 ] && [ -n "$K4" ] && grep -q -e "$K4" "$TMP/second.err" && echo 0 || echo 1)" \
	"a second rotation while one is pending is refused, naming the pending key"
[ "$rc" -eq 1 ] && grep -q -e "$K4" "$TMP/second.err" || { echo "# exit $rc, pending key '$K4':"; diag <"$TMP/second.err"; diag <"$TMP/rotate4.json"; }
"$CLI" rotate --resume "$URL" --json >"$TMP/resume4.json" 2>/dev/null
ok "$([ $? -eq 0 ] && [ "$(json "$TMP/resume4.json" j.outcome)" = committed ] && echo 0 || echo 1)" \
	"--resume finds the server holds the new key and commits"
stats
binding_state "$TMP/state4.json"
ok "$([ "$(json "$TMP/stats.json" "j.bindings[\"$TAG\"]")" = "$K4" ] && [ "$(json "$TMP/state4.json" j.keyid)" = "$K4" ] && echo 0 || echo 1)" \
	"agent and server agree on the new key"

fault '{"rotate":"drop-before"}'
"$CLI" rotate "$URL" --json >"$TMP/rotate5.json" 2>/dev/null
ok "$([ $? -eq 3 ] && echo 0 || echo 1)" "the server drops the connection before applying: exit 3"
"$CLI" rotate --resume "$URL" --json >"$TMP/resume5.json" 2>/dev/null
ok "$([ $? -eq 1 ] && [ "$(json "$TMP/resume5.json" j.outcome)" = aborted ] && echo 0 || echo 1)" \
	"--resume finds the server still holds the old key and aborts"
binding_state "$TMP/state5.json"
ok "$([ "$(json "$TMP/state5.json" j.keyid)" = "$K4" ] && [ "$(json "$TMP/state5.json" j.state)" = active ] && echo 0 || echo 1)" \
	"the old key stays active"

fault '{"rotate":"http-500"}'
"$CLI" rotate "$URL" >/dev/null 2>&1
ok "$([ $? -eq 3 ] && echo 0 || echo 1)" "a 5xx leaves the outcome unknown: exit 3"
fault '{"reject_all":true}'
"$CLI" rotate --resume "$URL" --json >"$TMP/resume6.json" 2>/dev/null
ok "$([ $? -eq 3 ] && [ "$(json "$TMP/resume6.json" j.outcome)" = pending ] && echo 0 || echo 1)" \
	"--resume while the server refuses everything stays pending"
fault '{"reject_all":false}'
"$CLI" rotate --resume "$URL" >/dev/null 2>&1
ok "$([ $? -eq 1 ] && echo 0 || echo 1)" "--resume once the server answers again: aborted (it never applied it)"

fault '{"rotate":"sse"}'
"$CLI" rotate "$URL" --json >"$TMP/rotate7.json" 2>/dev/null
ok "$([ $? -eq 0 ] && [ "$(json "$TMP/rotate7.json" j.outcome)" = committed ] && echo 0 || echo 1)" \
	"a rotateKey reply as text/event-stream commits"
K7=$(json "$TMP/rotate7.json" j.new_keyid)
stats
ok "$([ "$(json "$TMP/stats.json" "j.bindings[\"$TAG\"]")" = "$K7" ] && echo 0 || echo 1)" "and the server holds that key"

# ---- 4. notifications -------------------------------------------------------------------

wait_for 10 sh -c "[ \$(wc -l <'$TMP/events.jsonl') -ge 6 ]"
# shellcheck disable=SC2016
verdict=$("$NODE" -e '
	const ev = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map(JSON.parse);
	const [tag, k1, k2, k3] = process.argv.slice(2);
	const want = [["begin", k1, k2], ["commit", k1, k2], ["begin", k2, k3], ["abort", k2, k3]];
	const bad = [];
	want.forEach(([e, o, n], i) => {
		const g = ev[i];
		if (!g || g.event !== e || g.old_keyid !== o || g.new_keyid !== n || g.tag !== tag) bad.push(`event ${i}: ${JSON.stringify(g)}, want ${e} ${o} -> ${n}`);
	});
	console.log(bad.length ? bad.join("; ") : "ok");
' "$TMP/events.jsonl" "$TAG" "$K1" "$K2" "$K3")
echo "$verdict" | diag
ok "$([ "$verdict" = ok ] && echo 0 || echo 1)" "a subscriber saw begin, commit, begin, abort in order with the right keyids"

# ---- 4b. an ECDSA binding rotates the same way ----------------------------------------------

if "$CLI" status --json | grep -q ecdsa-p256-sha256; then
	"$CLI" add-identity ec --alg p256 >/dev/null &&
		"$CLI" --identity ec jwk --origin "$URL" >"$TMP/ec.jwk"
	ok $? "a P-256 identity gets a key for the server's origin"
	"$CLI" --identity ec rotate "$URL" --json >"$TMP/ec-rotate.json" 2>"$TMP/ec-rotate.err"
	ok "$([ $? -eq 0 ] && [ "$(json "$TMP/ec-rotate.json" j.outcome)" = committed ] && echo 0 || echo 1)" \
		"mcpsig rotate commits a P-256 rotation: the server verified sig-old and sig-new (ecdsa-p256-sha256)"
	diag <"$TMP/ec-rotate.err"
	ECTAG=$(json "$TMP/ec-rotate.json" j.tag)
	ECK2=$(json "$TMP/ec-rotate.json" j.new_keyid)
	stats
	ok "$([ -n "$ECK2" ] && [ "$(json "$TMP/stats.json" "j.bindings[\"$ECTAG\"]")" = "$ECK2" ] && echo 0 || echo 1)" \
		"the server holds the new P-256 key under the same tag"
	"$CLI" --identity ec rotate --status --origin "$URL" --json >"$TMP/ec-status.json"
	ok "$([ "$(json "$TMP/ec-status.json" j.alg)" = ecdsa-p256-sha256 ] && [ "$(json "$TMP/ec-status.json" j.keyid)" = "$ECK2" ] && echo 0 || echo 1)" \
		"the binding is still ecdsa-p256-sha256, now with the new key"
else
	"$CLI" add-identity ec --alg p256 >/dev/null 2>"$TMP/ec.err"
	ok "$([ $? -eq 1 ] && grep -q OpenSSL "$TMP/ec.err" && echo 0 || echo 1)" "without OpenSSL there is no P-256 identity to rotate"
fi

# ---- 5. the command line -----------------------------------------------------------------

"$CLI" rotate --begin --commit --origin "$URL" >/dev/null 2>&1
ok "$([ $? -eq 1 ] && echo 0 || echo 1)" "--begin with --commit is a usage error"
"$CLI" rotate >/dev/null 2>&1
ok "$([ $? -eq 1 ] && echo 0 || echo 1)" "rotate without a URL is a usage error"
"$CLI" rotate --timeout 0 "$URL" >/dev/null 2>&1
ok "$([ $? -eq 1 ] && echo 0 || echo 1)" "--timeout 0 is refused"
"$CLI" rotate --status --origin https://never.example --json >/dev/null 2>"$TMP/nob.err"
ok "$([ $? -eq 1 ] && grep -q 'no binding' "$TMP/nob.err" && echo 0 || echo 1)" "status of an origin without a key says so"
"$CLI" jwk --origin "http://127.0.0.1:1" >/dev/null
"$CLI" rotate "http://127.0.0.1:1/mcp" >/dev/null 2>"$TMP/unreach.err"
ok "$([ $? -eq 1 ] && grep -q 'nothing was changed' "$TMP/unreach.err" && echo 0 || echo 1)" \
	"an unreachable server: exit 1, nothing changed"
"$CLI" -a "$TMP/none.sock" rotate "$URL" >/dev/null 2>&1
ok "$([ $? -eq 2 ] && echo 0 || echo 1)" "no agent: exit 2"

if [ "$tap_failed" -gt 0 ]; then
	echo "# server log (last 40 lines):"
	tail -n 40 "$TMP/server.log" | diag
fi
done_testing
