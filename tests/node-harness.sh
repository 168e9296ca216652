# node-harness.sh: a private mcpsig-agent for the Node tests, on a temporary
# socket and keystore, stopped (bounded) at exit. Sourced by interop.sh and
# node-binding.sh after they set top_builddir. Sets agent and cli (absolute
# paths), tmp, agent_pid; exports MCPSIG_AUTH_SOCK and MCPSIG. Call
# harness_done STATUS at the end: it shows the agent's log when STATUS is not 0.

agent=$top_builddir/daemon/mcpsig-agent
cli=$top_builddir/cli/mcpsig
for bin in "$agent" "$cli"; do
	[ -x "$bin" ] || {
		echo "Bail out! $bin is not built"
		exit 1
	}
done
# The tests run both themselves, so hand them absolute paths.
agent=$(cd "$(dirname "$agent")" && pwd)/mcpsig-agent
cli=$(cd "$(dirname "$cli")" && pwd)/mcpsig

# A short directory keeps the socket path well under the sun_path limit.
tmp=$(mktemp -d "/tmp/mcpsig-node.XXXXXX") || {
	echo "Bail out! mktemp failed"
	exit 1
}
agent_pid=

# Both functions run from the EXIT trap, which shellcheck cannot see.
# shellcheck disable=SC2317
stop_agent() {
	[ -n "$agent_pid" ] || return 0
	kill -TERM "$agent_pid" 2>/dev/null
	# Bounded: an agent that ignores SIGTERM is killed after 5 s.
	i=0
	while kill -0 "$agent_pid" 2>/dev/null && [ "$i" -lt 50 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	if kill -0 "$agent_pid" 2>/dev/null; then
		echo "# mcpsig-agent ignored SIGTERM for 5 s; sending SIGKILL"
		kill -KILL "$agent_pid" 2>/dev/null
	fi
	wait "$agent_pid" 2>/dev/null
	agent_pid=
}

# shellcheck disable=SC2317
cleanup() {
	stop_agent
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

"$agent" -D -a "$tmp/agent.sock" --keystore "$tmp/ks" >"$tmp/agent.log" 2>&1 &
agent_pid=$!

# Wait (at most 10 s) until the agent answers.
i=0
until "$cli" -a "$tmp/agent.sock" status >/dev/null 2>&1; do
	if ! kill -0 "$agent_pid" 2>/dev/null; then
		echo "Bail out! mcpsig-agent exited before answering"
		sed 's/^/# /' "$tmp/agent.log"
		exit 1
	fi
	i=$((i + 1))
	if [ "$i" -ge 100 ]; then
		echo "Bail out! mcpsig-agent did not answer within 10 s"
		sed 's/^/# /' "$tmp/agent.log"
		exit 1
	fi
	sleep 0.1
done

MCPSIG_AUTH_SOCK=$tmp/agent.sock
MCPSIG=$cli
export MCPSIG_AUTH_SOCK MCPSIG

harness_done() {
	if [ "$1" -ne 0 ] && [ -s "$tmp/agent.log" ]; then
		echo "# mcpsig-agent log:"
		sed 's/^/#   /' "$tmp/agent.log"
	fi
}
