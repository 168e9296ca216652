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

# Every descriptor the agent holds beyond 0-2 is close-on-exec (flags in fdinfo are octal).
fds=0
leaky=
for info in /proc/"$AGENT_PID"/fdinfo/*; do
	fd=${info##*/}
	[ "$fd" -le 2 ] && continue
	flags=$(sed -n 's/^flags:[[:space:]]*//p' "$info" 2>/dev/null) || continue
	[ -n "$flags" ] || continue
	fds=$((fds + 1))
	[ $((0$flags & 02000000)) -ne 0 ] || leaky="$leaky $fd($(readlink "/proc/$AGENT_PID/fd/$fd"))"
done
ok "$([ "$fds" -ge 4 ] && [ -z "$leaky" ] && echo 0 || echo 1)" "all $fds descriptors of the agent beyond 0-2 are close-on-exec${leaky:+; not:$leaky}"

cat "$TSV.part" >"$TSV" 2>/dev/null
printf 'agent_fds_without_cloexec\t%s\n' "$(echo "$leaky" | wc -w)" >>"$TSV"
rm -f "$TSV.part"
done_testing
