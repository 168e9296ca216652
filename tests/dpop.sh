#!/bin/sh
# DPoP interop: proofs from a real mcpsig-agent, made through the mcpsig CLI,
# checked by jose and by RFC 9449's rules (tests/node/dpop.mjs). The agent
# harness is shared with interop.sh. Prints TAP.

top_srcdir=${top_srcdir:-.}
exec sh "$top_srcdir/tests/interop.sh" dpop.mjs
