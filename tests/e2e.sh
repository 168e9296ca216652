#!/bin/sh
# End-to-end test: an MCP session against an SDK server that verifies every
# request independently (tests/node/e2e.mjs), signed by a real mcpsig-agent.
# The agent harness is shared with interop.sh. Prints TAP.

top_srcdir=${top_srcdir:-.}
exec sh "$top_srcdir/tests/interop.sh" e2e.mjs
