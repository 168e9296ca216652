#!/bin/sh
# The MCP conformance suite's DPoP client scenarios, auth/dpop and
# auth/dpop-nonce (@modelcontextprotocol/conformance, pinned in
# tests/conformance/package.json), against tests/conformance/client.mjs: a thin
# OAuth + MCP client whose every DPoP proof comes from a real mcpsig-agent, on a
# temporary socket and keystore, through the real `mcpsig dpop`. Prints TAP.
#
# Each scenario runs with
#   - the default identity (Ed25519), the client offering the authorization
#     server's dpop_signing_alg_values_supported (the test server lists only
#     ES256, so the agent gives this origin a P-256 key);
#   - the identity p256id (add-identity --alg p256);
#   - the default identity with the client offering EdDSA,ES256, so the proofs
#     are Ed25519 ones (the test servers verify EdDSA too).
# For each run:
#   1. the runner exits 0 and its checks.json has no FAILURE or WARNING, and
#      every DPoP check of the scenario is SUCCESS;
#   2. the proofs came from the agent: its binding for the MCP server's origin
#      has the expected key type, and its keyid is the jkt of every proof the
#      client sent and the cnf.jkt of the token the authorization server issued.
# Negative controls (CONFORMANCE_BREAK: the client flips one character of each
# proof's signature): broken resource proofs make auth/dpop fail its fresh-proof
# check, broken token-endpoint proofs make auth/dpop-nonce fail its token-request
# check, both with "signature does not verify".
#
# Run from the build directory; automake sets top_builddir and top_srcdir. Needs
# `npm ci` in tests/node (Node 22) and in tests/conformance.

. "${top_srcdir:-.}/tests/lib.sh"

CONF=$(cd "$top_srcdir/tests/conformance" 2>/dev/null && pwd) || bail "no tests/conformance in $top_srcdir"
RUNNER=$CONF/node_modules/@modelcontextprotocol/conformance/dist/index.js
[ -x "$NODE" ] || bail "run npm ci in tests/node"
for f in "$RUNNER" "$CONF/node_modules/@modelcontextprotocol/sdk/package.json"; do
	[ -f "$f" ] || bail "run npm ci in tests/conformance ($f is missing)"
done
case $CONF in
*"'"*) bail "$CONF: the runner takes a command line, and this path has a quote in it" ;;
esac
NODE=$(cd "$(dirname "$NODE")" && pwd)/node
# The client runs the CLI itself, so hand it an absolute path.
MCPSIG=$(cd "$(dirname "$CLI")" && pwd)/mcpsig
"$MCPSIG" dpop --help >/dev/null 2>&1 || bail "$MCPSIG has no dpop command"

# The runner spawns the client through a shell: node must be Node 22.
PATH=$(dirname "$NODE"):$PATH
export PATH
unset MCPSIG_IDENTITY CONFORMANCE_BREAK CONFORMANCE_DPOP_ALGS
COMMAND="node '$CONF/client.mjs'"

SOCK=$TMP/agent.sock
start_agent "$SOCK" "$TMP/ks" || bail "the agent did not start"
MCPSIG_AUTH_SOCK=$SOCK
export MCPSIG_AUTH_SOCK MCPSIG

timeout 10 "$MCPSIG" add-identity p256id --alg p256 >"$TMP/add.out" 2>&1
status=$?
ok $status "mcpsig add-identity p256id --alg p256"
[ "$status" -eq 0 ] || diag <"$TMP/add.out"

strip() { sed 's/\x1b\[[0-9;]*m//g'; }
results() { timeout 20 "$NODE" "$CONF/results.mjs" "$@"; }

run_n=0
# conformance SCENARIO [VAR=VALUE...]: one run of the runner; sets DIR and STATUS.
conformance() {
	scenario=$1
	shift
	run_n=$((run_n + 1))
	DIR=$TMP/run$run_n
	mkdir -p "$DIR"
	env "$@" timeout -k 5 120 "$NODE" "$RUNNER" client --command "$COMMAND" --scenario "$scenario" \
		--timeout 60000 -o "$DIR" >"$DIR/runner.log" 2>&1
	STATUS=$?
}

show_run() { # the runner's summary and the client's output, as TAP comments
	echo "# runner exit status $STATUS; its last lines:"
	tail -n 25 "$DIR/runner.log" | strip | diag
}

# passes SCENARIO LABEL IDENTITY KEYTYPE [VAR=VALUE...]: a run that must pass.
passes() {
	scenario=$1
	label=$2
	identity=$3
	keytype=$4
	shift 4
	conformance "$scenario" "$@"
	results verdict "$DIR" "$scenario" >"$DIR/verdict" 2>&1
	v=$?
	ok $((STATUS != 0 || v != 0)) "$scenario, $label: the suite passes"
	if [ "$STATUS" -ne 0 ] || [ "$v" -ne 0 ]; then
		diag <"$DIR/verdict"
		show_run
	fi
	timeout 10 "$MCPSIG" list --json >"$DIR/list.json" 2>"$DIR/list.err"
	l=$?
	results binding "$DIR" "$DIR/list.json" "$identity" "$keytype" >"$DIR/binding" 2>&1
	b=$?
	ok $((l != 0 || b != 0)) "$scenario, $label: every proof came from the agent's key for the server's origin"
	if [ "$l" -ne 0 ] || [ "$b" -ne 0 ]; then
		cat "$DIR/list.err" "$DIR/binding" | diag
	else
		diag <"$DIR/binding"
	fi
	forget
}

# fails SCENARIO LABEL CHECK_ID TEXT [VAR=VALUE...]: a negative control.
fails() {
	scenario=$1
	label=$2
	check_id=$3
	text=$4
	shift 4
	conformance "$scenario" "$@"
	results failed "$DIR" "$check_id" "$text" >"$DIR/failed" 2>&1
	f=$?
	ok $((STATUS == 0 || f != 0)) "$scenario, $label: the suite fails ($check_id)"
	if [ "$STATUS" -eq 0 ] || [ "$f" -ne 0 ]; then
		diag <"$DIR/failed"
		show_run
	else
		diag <"$DIR/failed"
	fi
	forget
}

# forget: removes the run's bindings, so a later run on a reused port starts afresh.
forget() {
	origin=$(sed -n 's/^server .* origin=//p' "$DIR"/*/*/stdout.txt 2>/dev/null | head -n 1)
	[ -n "$origin" ] || return 0
	for id in default p256id; do
		timeout 10 "$MCPSIG" --identity "$id" remove --origin "$origin" >/dev/null 2>&1
	done
}

for scenario in auth/dpop auth/dpop-nonce; do
	passes "$scenario" "default identity (Ed25519), the AS's algorithms" default ed25519
	passes "$scenario" "identity p256id (P-256)" p256id ecdsa-p256-sha256 MCPSIG_IDENTITY=p256id
	passes "$scenario" "default identity (Ed25519), offering EdDSA,ES256" default ed25519 CONFORMANCE_DPOP_ALGS=EdDSA,ES256
done

fails auth/dpop "resource proofs with a broken signature" \
	sep-1932-client-fresh-proof "signature does not verify" CONFORMANCE_BREAK=resource
fails auth/dpop-nonce "token-endpoint proofs with a broken signature" \
	sep-1932-client-token-request-proof "signature does not verify" CONFORMANCE_BREAK=token

done_testing
