#!/bin/sh
# Crash safety of key rotation (DESIGN.md invariant 2). The agent built with
# fault points (tests/mcpsig-agent-test) kills itself with SIGKILL at a named
# point of a real `mcpsig rotate URL` against the test server: before and
# after each durable write, and between begin, sign, commit and abort. After
# each kill:
#
#  - the restarted agent loads the keystore;
#  - it holds every key the server may hold: the key the server has bound to
#    the tag is the agent's active or pending key;
#  - --resume (when still pending) brings it to ACTIVE, on the key the server
#    holds, and a freshly signed request is accepted.
#
# Every point is run in a rotation the server accepts and in one it refuses,
# and each run checks that its point was really reached. Prints TAP.

. "${top_srcdir:-.}/tests/lib.sh"

AGENT=$top_builddir/tests/mcpsig-agent-test
[ -x "$AGENT" ] || bail "$AGENT is not built"
[ -x "$NODE" ] || bail "run npm ci in tests/node"

SOCK=$TMP/agent.sock
KS=$TMP/ks
MCPSIG_AUTH_SOCK=$SOCK
export MCPSIG_AUTH_SOCK

"$NODE" "$top_srcdir/tests/node/mcp-server.mjs" --lifetime 900 >"$TMP/server.out" 2>"$TMP/server.log" &
AGENT_PIDS="$AGENT_PIDS $!"
wait_for 20 grep -q '^PORT ' "$TMP/server.out" || bail "the test server did not start"
PORT=$(sed -n 's/^PORT //p' "$TMP/server.out")
URL=http://127.0.0.1:$PORT/mcp
BASE=http://127.0.0.1:$PORT

json() { # json FILE EXPR
	"$NODE" -e 'const j=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8"));
		const v=(0,eval)("(j)=>("+process.argv[2]+")")(j);process.stdout.write(v===undefined||v===null?"":String(v))' "$1" "$2"
}
fault() { curl -sf -X POST -H 'Content-Type: application/json' -d "$1" "$BASE/__fault" >/dev/null; }
server_key() { # server_key TAG: the key the server binds to TAG
	curl -sf "$BASE/__stats" >"$TMP/stats.json" && json "$TMP/stats.json" "j.bindings[\"$1\"]"
}

INIT='{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"crash-test","version":"0"}}}'
accepted() { # accepted ID: a fresh initialize signed by the agent for ID is accepted
	"$CLI" --identity "$1" sign -X POST -u "$URL" -H 'Content-Type: application/json' \
		-H 'Accept: application/json, text/event-stream' --data-raw "$INIT" >"$TMP/h" || return 1
	code=$(curl -s -o /dev/null -w '%{http_code}' -H @"$TMP/h" -H 'Content-Type: application/json' \
		-H 'Accept: application/json, text/event-stream' --data-raw "$INIT" "$URL")
	[ "$code" = 200 ]
}

start_agent "$SOCK" "$KS" || bail "the agent did not start"

# run_point N POINT SCENARIO FIRES: one rotation that dies at POINT.
# SCENARIO is commit (the server accepts) or abort (it answers an error);
# FIRES is yes when POINT lies on that path.
run_point() {
	point=$2 scenario=$3 fires=$4
	id=crash$1
	what="$point ($scenario)"
	"$CLI" add-identity "$id" >/dev/null && "$CLI" --identity "$id" jwk --origin "$URL" >/dev/null ||
		bail "cannot prepare identity $id"
	"$CLI" --identity "$id" rotate --status --origin "$URL" --json >"$TMP/s0.json"
	tag=$(json "$TMP/s0.json" j.tag)
	k1=$(json "$TMP/s0.json" j.keyid)

	stop_agent "$AGENT_PID" || bail "the agent did not stop"
	MCPSIG_TEST_CRASH=$point
	export MCPSIG_TEST_CRASH
	start_agent "$SOCK" "$KS" || bail "the agent with crash point $point did not start"
	unset MCPSIG_TEST_CRASH
	victim=$AGENT_PID
	[ "$scenario" = abort ] && fault '{"rotate":"error"}'
	"$CLI" --identity "$id" rotate "$URL" --json >"$TMP/r.json" 2>"$TMP/r.err"
	rc=$?
	fault '{"rotate":null}'
	wait_for 5 sh -c "! kill -0 $victim"
	if kill -0 "$victim" 2>/dev/null; then
		died=no
		stop_agent "$victim"
	else
		died=yes
		crashes=$((crashes + 1))
		wait "$victim" 2>/dev/null
	fi
	ok "$([ "$died" = "$fires" ] && echo 0 || echo 1)" "$what: the agent $([ "$fires" = yes ] && echo dies there || echo never gets there)"
	ok "$([ "$rc" -le 3 ] && echo 0 || echo 1)" "$what: mcpsig rotate reports it and exits $rc, without crashing"
	[ "$rc" -le 3 ] || diag <"$TMP/r.err"

	start_agent "$SOCK" "$KS"
	ok $? "$what: the restarted agent loads the keystore"
	"$CLI" --identity "$id" rotate --status --origin "$URL" --json >"$TMP/s1.json"
	active=$(json "$TMP/s1.json" j.keyid)
	pending=$(json "$TMP/s1.json" j.pending_keyid)
	held=$(server_key "$tag")
	kept=$([ -n "$held" ] && { [ "$held" = "$active" ] || [ "$held" = "$pending" ]; } && echo 0 || echo 1)
	lost=$((lost + kept))
	ok "$kept" "$what: the agent holds the key the server holds (server ${held:-none}, agent $active${pending:+ + $pending})"
	if [ -n "$pending" ]; then
		"$CLI" --identity "$id" rotate --resume "$URL" --json >"$TMP/res.json" 2>"$TMP/res.err"
		rrc=$?
		ok "$([ "$rrc" -eq 0 ] || [ "$rrc" -eq 1 ] && echo 0 || echo 1)" \
			"$what: --resume settles it ($(json "$TMP/res.json" j.outcome))"
	fi
	"$CLI" --identity "$id" rotate --status --origin "$URL" --json >"$TMP/s2.json"
	held=$(server_key "$tag")
	ok "$(json "$TMP/s2.json" "j.state==='active' && j.keyid==='$held' && j.tag==='$tag' ? 0 : 1")" \
		"$what: ACTIVE on the server's key, same tag"
	if [ "$scenario" = abort ]; then
		ok "$([ "$held" = "$k1" ] && echo 0 || echo 1)" "$what: a refused rotation ends on k1"
	fi
	accepted "$id"
	ok $? "$what: a freshly signed request is accepted"
}

# (lib.sh's wait_for uses $n, so the run counter has its own name.)
run=0
crashes=0
lost=0
for p in replace.synced:.pending replace.renamed:.pending begin signed \
	replace.synced:.binding replace.renamed:.binding discard.renamed commit; do
	run=$((run + 1))
	run_point "$run" "$p" commit yes
done
for p in replace.synced:.pending replace.renamed:.pending begin signed discard.renamed abort; do
	run=$((run + 1))
	run_point "$run" "$p" abort yes
done
# Points off the refused path must not fire there (the hook is that precise).
for p in replace.synced:.binding commit; do
	run=$((run + 1))
	run_point "$run" "$p" abort no
done

mkdir -p "$top_builddir/reliability"
printf 'rotation_crashes_survived\t%s\nrotation_keys_lost\t%s\n' "$crashes" "$lost" >"$top_builddir/reliability/rotate-crash.tsv"
if [ "$tap_failed" -gt 0 ]; then
	echo "# server log (last 30 lines):"
	tail -n 30 "$TMP/server.log" | diag
fi
done_testing
