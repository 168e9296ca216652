#!/bin/sh
# hostile.sh: how much two hostile clients slow a well-behaved one.
#
#   bench/hostile.sh [BUILD_DIR]      (default: build)
#
# Starts its own mcpsig-agent on a temporary keystore and socket, then, for
# each of ROUNDS rounds (default 7), times one client signing SIGNATURES
# typical MCP requests (default 20000) first alone, then beside a client that
# holds half a message and one that floods requests without reading replies
# (started fresh each round; the good client starts once the flooder has
# filled its output queue and the agent has stopped reading it). Prints the
# signatures/s of every run, the medians, and the ratio of the medians
# (beside / alone; 1.00 means no effect).
#
# It builds nothing: it needs tests/load-client and tests/hostile-client in
# BUILD_DIR (make check builds them). The figures depend on the machine and
# on what else runs on it; nothing is asserted.
set -u

BUILD=${1:-build}
ROUNDS=${ROUNDS:-7}
SIGNATURES=${SIGNATURES:-20000}
AGENT=$BUILD/daemon/mcpsig-agent
CLI=$BUILD/cli/mcpsig
LOAD=$BUILD/tests/load-client
HOSTILE=$BUILD/tests/hostile-client

die() {
	echo "hostile.sh: $*" >&2
	exit 1
}

for bin in "$AGENT" "$CLI" "$LOAD" "$HOSTILE"; do
	[ -x "$bin" ] || die "$bin is not built (run make check in $BUILD first)"
done
case $ROUNDS in '' | *[!0-9]* | 0) die "ROUNDS must be a positive number" ;; esac
case $SIGNATURES in '' | *[!0-9]* | 0) die "SIGNATURES must be a positive number" ;; esac

TMP=$(mktemp -d /tmp/mcpsig-bench.XXXXXX) || die "mktemp failed"
PIDS=
cleanup() {
	for p in $PIDS; do
		kill -KILL "$p" 2>/dev/null
	done
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

# wait_until SECONDS COMMAND...: retries every 0.1 s until COMMAND succeeds.
wait_until() {
	w=$(($1 * 10))
	shift
	while [ "$w" -gt 0 ]; do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
		w=$((w - 1))
	done
	return 1
}

# reap PID SECONDS: waits for PID at most SECONDS, then kills it.
reap() {
	r=$(($2 * 10))
	while kill -0 "$1" 2>/dev/null && [ "$r" -gt 0 ]; do
		sleep 0.1
		r=$((r - 1))
	done
	kill -KILL "$1" 2>/dev/null
	wait "$1" 2>/dev/null
}

# good FILE: one client signing SIGNATURES requests; writes its signatures/s
# to FILE, or fails. Bounded, so a wedged agent cannot hang the benchmark.
good() {
	"$LOAD" "$SOCK" --clients 1 --signatures "$SIGNATURES" >"$TMP/good.out" 2>"$TMP/good.err" &
	g=$!
	PIDS="$PIDS $g"
	reap "$g" 120
	grep -qx "errors 0" "$TMP/good.out" || {
		cat "$TMP/good.err" >&2
		return 1
	}
	sed -n 's/^signatures_per_second //p' "$TMP/good.out" >"$1"
}

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "NA"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.0f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

SOCK=$TMP/agent.sock
"$AGENT" -D -a "$SOCK" --keystore "$TMP/ks" >"$TMP/agent.log" 2>&1 &
AGENT_PID=$!
PIDS="$PIDS $AGENT_PID"
wait_until 10 "$CLI" -a "$SOCK" status || {
	cat "$TMP/agent.log" >&2
	die "the agent did not start"
}
good "$TMP/rate" || die "the warm-up run failed" # creates the binding

echo "one client, $SIGNATURES signatures per run, $ROUNDS rounds, $(nproc 2>/dev/null || echo '?') CPUs"
printf '%-6s %14s %14s %7s\n' round alone/s beside/s ratio
: >"$TMP/alone"
: >"$TMP/beside"
round=1
while [ "$round" -le "$ROUNDS" ]; do
	good "$TMP/rate" || die "round $round: the good client failed alone"
	alone=$(cat "$TMP/rate")

	rm -f "$TMP/stop"
	"$HOSTILE" half "$SOCK" --until "$TMP/stop" --max-seconds 25 >"$TMP/half.out" 2>&1 &
	half=$!
	"$HOSTILE" flood "$SOCK" --until "$TMP/stop" --max-seconds 25 >"$TMP/flood.out" 2>&1 &
	flood=$!
	PIDS="$PIDS $half $flood"
	wait_until 20 grep -q '^blocked' "$TMP/flood.out" || die "round $round: the flooder never filled its queue"
	wait_until 5 grep -q '^half_sent_bytes' "$TMP/half.out" || die "round $round: the half-message client did not start"
	good "$TMP/rate" || die "round $round: the good client failed beside the hostile clients"
	beside=$(cat "$TMP/rate")
	touch "$TMP/stop"
	reap "$half" 15
	reap "$flood" 30
	grep -qx 'kept 1' "$TMP/half.out" || echo "round $round: the half-message connection was not kept" >&2
	grep -qx 'kept 1' "$TMP/flood.out" || echo "round $round: the flooder's connection was not kept" >&2

	echo "$alone" >>"$TMP/alone"
	echo "$beside" >>"$TMP/beside"
	printf '%-6s %14s %14s %7s\n' "$round" "$alone" "$beside" \
		"$(awk -v a="$alone" -v b="$beside" 'BEGIN { printf "%.2f", (a > 0 ? b / a : 0) }')"
	round=$((round + 1))
done

m_alone=$(median <"$TMP/alone")
m_beside=$(median <"$TMP/beside")
printf '%-6s %14s %14s %7s\n' median "$m_alone" "$m_beside" \
	"$(awk -v a="$m_alone" -v b="$m_beside" 'BEGIN { printf "%.2f", (a > 0 ? b / a : 0) }')"
echo "signatures/s, medians: alone $m_alone, beside the hostile clients $m_beside"
