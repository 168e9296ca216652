#!/bin/sh
# What hostile neighbours of the same user cannot make the agent do: hold
# memory without bound, stall its event loop, or lock other clients out.
# Real agents, real sockets, the agent's peak RSS read from /proc. Prints TAP.
#
#  1. one 64 KiB write of pipelined identity.list requests, with 2,000
#     bindings, from 3 connections that never read: the agent's peak RSS
#     stays under 64 MiB, agent.status counts the queued memory, and another
#     client's hello keeps being answered;
#  2. 200 subscribers that never read, during 1,000 rotations: peak RSS under
#     64 MiB, and a subscriber that reads is told of every event, or of how
#     many it lost;
#  3. 256 idle connections held by one process do not stop another client
#     from signing: the longest idle is closed to make room, and told why;
#  4. a program named with a newline makes one log line.
#
# Wall-clock bounds are 10 times what the issue names (standards: the
# machines are shared); the measured figures are printed.

. "${top_srcdir:-.}/tests/lib.sh"

BC=$top_builddir/tests/bounds-client
[ -x "$BC" ] || bail "$BC is not built"
MIB=$((1024 * 1024))

hwm_kib() { sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB$/\1/p' "/proc/$1/status"; }
# rss_check NAME PID: the agent's peak RSS under 64 MiB. Under AddressSanitizer the
# figure measures ASan's shadow memory and quarantine, not the agent: not measurable.
rss_check() {
	if agent_has_sanitizer; then
		metric "$1" NA
		skip "peak RSS is not measurable under AddressSanitizer (its shadow memory and quarantine)"
		return
	fi
	peak=$(( $(hwm_kib "$2") / 1024 ))
	metric "$1" "$peak"
	ok "$([ "$peak" -lt 64 ] && echo 0 || echo 1)" "the agent's peak RSS stays under 64 MiB ($peak MiB)"
}
status_field() { # status_field SOCKET NAME: a number from mcpsig status --json
	"$CLI" -a "$1" status --json 2>/dev/null | sed -n "s/^ *\"$2\": *\\([0-9]*\\).*/\\1/p"
}
# The measured figures go to $top_builddir/reliability/bounds.tsv, for tests/RELIABILITY.md.
TSV=$top_builddir/reliability/bounds.tsv
mkdir -p "$top_builddir/reliability" && : >"$TSV"
metric() {
	printf '%s\t%s\n' "$1" "$2" >>"$TSV"
	echo "# metric $1 $2"
}

# ---- 1. pipelined requests -----------------------------------------------------------------

S1=$TMP/a1.sock
start_agent "$S1" "$TMP/ks1" || bail "the agent did not start"
A1=$AGENT_PID
"$BC" bindings "$S1" 2000 >"$TMP/bindings.out" 2>&1
ok $? "2,000 bindings made"
"$CLI" -a "$S1" list --json >"$TMP/list.json" 2>/dev/null
reply=$(wc -c <"$TMP/list.json")
echo "# one identity.list reply is about $reply bytes (as JSON)"
"$BC" ping "$S1" 8 >"$TMP/ping1.out" 2>&1 &
PING=$!
sleep 1
"$BC" pipeline "$S1" 3 6 >"$TMP/pipeline.out" 2>&1 &
PIPE=$!
AGENT_PIDS="$AGENT_PIDS $PING $PIPE"
sleep 3
queued=$(status_field "$S1" output_queued_max)
wait "$PIPE"
ok $? "3 connections each wrote one 64 KiB block of pipelined identity.list requests and never read"
wait "$PING"
n=$(sed -n 's/^requests_per_connection //p' "$TMP/pipeline.out")
demand=$(( ${n:-0} * reply * 3 / MIB ))
echo "# $n requests per connection: about $demand MiB of replies asked for, none read"
ok "$([ "$demand" -gt 256 ] && echo 0 || echo 1)" "control: the requests ask for far more than the bound ($demand MiB)"
rss_check pipeline_peak_rss_mib "$A1"
echo "# agent.status output_queued_max during the flood: $queued"
# Each flooder gets one turn's replies (256 KiB and the reply that crosses
# it); the rest wait, unparsed, until it reads what it was sent.
ok "$([ "${queued:-0}" -gt 0 ] && [ "${queued:-0}" -le $((4 * MIB + reply)) ] && echo 0 || echo 1)" \
	"agent.status reports the memory queued for the flooders: some, and at most the 4 MiB limit plus one reply ($queued bytes)"
pings=$(sed -n 's/^pings //p' "$TMP/ping1.out")
failed=$(sed -n 's/^failed //p' "$TMP/ping1.out")
max=$(sed -n 's/^max_ms //p' "$TMP/ping1.out")
med=$(sed -n 's/^median_ms //p' "$TMP/ping1.out")
metric pipeline_hello_max_ms "$(awk -v m="$max" 'BEGIN { printf "%d", (m == int(m)) ? m : int(m) + 1 }')"
ok "$([ "${pings:-0}" -gt 50 ] && [ "${failed:-1}" -eq 0 ] && echo 0 || echo 1)" \
	"another client's hello was answered $pings times throughout, none failed"
ok "$(awk -v m="$max" 'BEGIN { exit !(m != "" && m < 1000) }' && echo 0 || echo 1)" \
	"each within 1 s (10 times the 100 ms bound): median $med ms, max $max ms"
"$CLI" -a "$S1" sign -X GET -u https://b1.example/mcp >/dev/null 2>&1
ok $? "after the flooders are gone, the agent signs"
stop_agent "$A1"

# ---- 2. subscribers that never read -----------------------------------------------------------

S2=$TMP/a2.sock
start_agent "$S2" "$TMP/ks2" || bail "the agent did not start"
A2=$AGENT_PID
"$CLI" -a "$S2" jwk --origin https://rot.example >/dev/null 2>&1
"$BC" subscribers "$S2" 200 40 >"$TMP/subs.out" 2>&1 &
SUBS=$!
"$BC" watch "$S2" 40 >"$TMP/watch.out" 2>&1 &
WATCH=$!
AGENT_PIDS="$AGENT_PIDS $SUBS $WATCH"
wait_for 20 grep -q subscribers "$TMP/subs.out"
wait_for 20 grep -q subscribed "$TMP/watch.out"
"$BC" rotations "$S2" https://rot.example 1000 >"$TMP/rot.out" 2>&1
ok $? "1,000 rotations (2,000 events) while 200 subscribers never read"
sleep 2
kill "$WATCH" 2>/dev/null
sleep 0.5
# The watcher prints its counts when its time is up; it was stopped early, so ask again.
"$BC" watch "$S2" 1 >/dev/null 2>&1
rss_check subscribers_peak_rss_mib "$A2"
kill "$SUBS" 2>/dev/null
stop_agent "$A2"
# A reading subscriber, on its own agent so nothing else competes: every event, or a count.
S3=$TMP/a3.sock
start_agent "$S3" "$TMP/ks3" || bail "the agent did not start"
A3=$AGENT_PID
"$CLI" -a "$S3" jwk --origin https://rot.example >/dev/null 2>&1
"$BC" subscribers "$S3" 200 30 >"$TMP/subs3.out" 2>&1 &
SUBS=$!
"$BC" watch "$S3" 12 >"$TMP/watch3.out" 2>&1 &
WATCH=$!
AGENT_PIDS="$AGENT_PIDS $SUBS $WATCH"
wait_for 20 grep -q subscribers "$TMP/subs3.out"
wait_for 20 grep -q subscribed "$TMP/watch3.out"
"$BC" rotations "$S3" https://rot.example 1000 >/dev/null 2>&1
wait "$WATCH"
events=$(sed -n 's/^events //p' "$TMP/watch3.out")
lost=$(sed -n 's/^lost //p' "$TMP/watch3.out")
echo "# the reading subscriber: $events events, $lost told lost"
metric reading_subscriber_events_unaccounted "$(( 2000 - ${events:-0} - ${lost:-0} ))"
ok "$([ $(( ${events:-0} + ${lost:-0} )) -eq 2000 ] && echo 0 || echo 1)" \
	"a subscriber that reads gets every one of the 2,000 events, or a count of those it lost ($events + $lost)"
# One that falls behind and reads only after the rotations: what it missed is counted for it.
"$BC" watch "$S3" 10 6 >"$TMP/late.out" 2>&1 &
LATE=$!
AGENT_PIDS="$AGENT_PIDS $LATE"
wait_for 20 grep -q subscribed "$TMP/late.out"
"$BC" rotations "$S3" https://rot.example 1000 >/dev/null 2>&1
wait "$LATE"
events=$(sed -n 's/^events //p' "$TMP/late.out")
lost=$(sed -n 's/^lost //p' "$TMP/late.out")
notices=$(sed -n 's/^lost_notices //p' "$TMP/late.out")
echo "# the late subscriber: $events events, $lost told lost in $notices notice(s)"
metric late_subscriber_events_unaccounted "$(( 2000 - ${events:-0} - ${lost:-0} ))"
metric late_subscriber_events_lost "${lost:-0}"
ok "$([ $(( ${events:-0} + ${lost:-0} )) -eq 2000 ] && [ "${lost:-0}" -gt 0 ] && echo 0 || echo 1)" \
	"a subscriber that fell behind is told how many it lost: events and the lost count add up to 2,000"
# The same through libmcpsig and mcpsig watch: stopped while the rotations run, it reads
# afterwards and prints how many the agent dropped.
"$CLI" -a "$S3" watch --json >"$TMP/watch-cli.out" 2>"$TMP/watch-cli.err" &
WCLI=$!
AGENT_PIDS="$AGENT_PIDS $WCLI"
sleep 1
kill -STOP "$WCLI"
"$BC" rotations "$S3" https://rot.example 1000 >/dev/null 2>&1
kill -CONT "$WCLI"
wait_for 10 grep -q '"event":"lost"' "$TMP/watch-cli.out"
sleep 1
kill "$WCLI" 2>/dev/null
seen=$(grep -c '"event":"\(begin\|abort\)"' "$TMP/watch-cli.out")
cli_lost=$(sed -n 's/.*"event":"lost","count":\([0-9]*\).*/\1/p' "$TMP/watch-cli.out" | awk '{ n += $1 } END { print n + 0 }')
echo "# mcpsig watch, stopped and resumed: $seen events printed, $cli_lost reported lost"
ok "$([ "$cli_lost" -gt 0 ] && [ $((seen + cli_lost)) -eq 2000 ] && echo 0 || echo 1)" \
	"mcpsig watch that fell behind prints the count it lost, and the two add up to 2,000"
grep -q 'dropped .* rotation event' "$TMP/watch-cli.err"
ok $? "and warns on stderr"
grep -c 'does not read its notifications' "$TMP/agent.log" >"$TMP/dropped.n" 2>/dev/null
ok "$([ "$(cat "$TMP/dropped.n")" -ge 200 ] && echo 0 || echo 1)" \
	"control: the 200 that never read had their notifications dropped, and the log says so ($(cat "$TMP/dropped.n"))"
kill "$SUBS" 2>/dev/null
stop_agent "$A3"

# ---- 3. idle connections ------------------------------------------------------------------------

S4=$TMP/a4.sock
start_agent "$S4" "$TMP/ks4" || bail "the agent did not start"
A4=$AGENT_PID
"$BC" idle "$S4" 256 6 >"$TMP/idle.out" 2>&1 &
IDLE=$!
AGENT_PIDS="$AGENT_PIDS $IDLE"
wait_for 10 grep -q opened "$TMP/idle.out"
sleep 1
conns=$(status_field "$S4" connections)
echo "# connections with the idle holder (status itself included): $conns"
"$CLI" -a "$S4" sign -X GET -u https://idle.example/mcp >"$TMP/idle-sign.out" 2>&1
rc=$?
metric idle_holder_blocked_signer "$rc"
ok "$rc" "256 idle connections held by one process: another client still signs"
wait "$IDLE"
closed=$(sed -n 's/^closed_by_agent //p' "$TMP/idle.out")
ok "$([ "${closed:-0}" -ge 1 ] && echo 0 || echo 1)" "the agent closed the longest-idle connections to make room ($closed)"
grep -q 'this one was idle longest' "$TMP/agent.log"
ok $? "and logged why"

# ---- 4. a program named with a newline ---------------------------------------------------------------

nl='
'
bad="$TMP/bin/mcp${nl}sig"
mkdir -p "$TMP/bin" && cp "$top_builddir/tests/mcpsig-standalone" "$bad" 2>/dev/null || cp "$CLI" "$bad"
before=$(wc -l <"$TMP/agent.log")
"$bad" -a "$S4" jwk --origin https://newline.example >/dev/null 2>&1
ok $? "a client whose executable's name holds a newline is served"
sleep 0.2
tail -n +"$((before + 1))" "$TMP/agent.log" >"$TMP/newline.log"
n=$(grep -c 'newline.example' "$TMP/newline.log")
metric newline_program_log_lines "$n"
ok "$([ "$n" -eq 1 ] && grep 'newline.example' "$TMP/newline.log" | grep -q 'mcp\\x0asig' && echo 0 || echo 1)" \
	"it makes one log line, with the newline escaped"
diag <"$TMP/newline.log"
! grep -q '^sig' "$TMP/newline.log"
ok $? "no log line starts with the part after the newline"
# An error that echoes the request: one line, on the agent's side and in the CLI's output.
"$CLI" -a "$S4" --identity "evil${nl}identity" sign -X GET -u https://newline.example/mcp >/dev/null 2>"$TMP/echo.err"
ok "$([ "$(wc -l <"$TMP/echo.err")" -eq 1 ] && grep -q 'evil\\x0aidentity' "$TMP/echo.err" && echo 0 || echo 1)" \
	"an error that echoes a name with a newline is one line, the newline escaped: $(cat "$TMP/echo.err")"
esc=$(printf '\033')
"$CLI" -a "$S4" --identity "red${esc}[31m" sign -X GET -u https://newline.example/mcp >/dev/null 2>"$TMP/esc.err"
! grep -q -e "$esc" "$TMP/esc.err" && grep -q 'red\\x1b\[31m' "$TMP/esc.err"
ok $? "a terminal escape sequence in an echoed name reaches the terminal defused"
stop_agent "$A4"

done_testing
