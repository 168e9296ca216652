#!/bin/sh
# The hostile-input suite (tests/hostile.c) against a live agent: every field
# of every method with every wrong type and bad value, the framing cases, and a
# connection that sends half a message and waits (closed after the 2 s
# partial-message timeout), while a well-behaved client keeps signing. Prints TAP;
# the tally goes to $top_builddir/reliability/hostile.tsv.

. "${top_srcdir:-.}/tests/lib.sh"

HOSTILE=$top_builddir/tests/hostile
[ -x "$HOSTILE" ] || bail "$HOSTILE is not built"
mkdir -p "$top_builddir/reliability"
TSV=$top_builddir/reliability/hostile.tsv
rm -f "$TSV"

start_agent "$TMP/agent.sock" "$TMP/ks" --partial-timeout=2 || bail "the agent did not start"
timeout 300 "$HOSTILE" "$TMP/agent.sock" "$TSV.part" 2 >"$TMP/hostile.out" 2>&1
status=$?
# The program's own TAP lines, renumbered into this script's plan.
grep -E '^(ok|not ok) ' "$TMP/hostile.out" | sed -E 's/^(ok|not ok) [0-9]+ - //' >"$TMP/hostile.desc"
grep -E '^(ok|not ok) ' "$TMP/hostile.out" | while IFS= read -r line; do
	case $line in
	"not ok"*) echo 1 ;;
	*) echo 0 ;;
	esac
done >"$TMP/hostile.res"
exec 3<"$TMP/hostile.res"
while IFS= read -r desc; do
	read -r res <&3
	ok "$res" "$desc"
done <"$TMP/hostile.desc"
exec 3<&-
grep '^#' "$TMP/hostile.out"
ok "$([ "$status" -eq 0 ] && echo 0 || echo 1)" "the hostile-input program exits 0 (status $status)"
kill -0 "$AGENT_PID" 2>/dev/null
ok $? "the agent is still running after every hostile case"

cat "$TSV.part" >"$TSV" 2>/dev/null
rm -f "$TSV.part"
done_testing
