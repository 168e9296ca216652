#!/bin/sh
# Load and hostile clients: a real agent under many concurrent hosts, and
# beside clients that misbehave. Prints TAP.
#
#  1. 64 concurrent clients (tests/load-client, one libmcpsig connection
#     each) sign 2,000 typical MCP requests each: zero errors, every reply
#     well-formed, and the agent's own signature counter agrees. One
#     deliberately invalid request must be counted as an error, apart.
#  2. A client that sends half a message and stops, and one that floods
#     requests without reading a reply (tests/hostile-client), stay connected
#     while a well-behaved client signs 2,000 requests.
#  3. The flooder's queued output stays within what the agent guarantees
#     (mcpsig status --json: output_queued_max, output_queued_limit, polled
#     from another connection), and the agent's RSS stays bounded.
#  4. With --partial-timeout, the agent does close a connection that holds
#     half a message.
#
# Throughput and the hostile clients' effect on the good one are printed, never
# asserted (bench/hostile.sh measures the latter). The measured figures are
# written to $top_builddir/reliability/load.tsv, also when a check fails.

. "${top_srcdir:-.}/tests/lib.sh"

LOAD=$top_builddir/tests/load-client
HOSTILE=$top_builddir/tests/hostile-client
for bin in "$LOAD" "$HOSTILE"; do
	[ -x "$bin" ] || bail "$bin is not built"
done

CLIENTS=64
PER_CLIENT=2000
GOOD=2000
# PROTOCOL.md §1 and §4: the per-connection output limit (SERVER_MAX_PENDING_OUT).
DOC_LIMIT=4194304
RSS_GROWTH_MAX_KIB=65536
# The most bytes the agent can hold unparsed for one connection, and so read
# in one go: its receive buffer is capped at MCPSIG_MAX_MSG_LEN (proto/proto.h,
# 1 MiB + 256 KiB) plus one READ_CHUNK (daemon/server.c, 64 KiB).
MAX_MSG_LEN=1310720
READ_CHUNK=65536

started_at=$(cut -d ' ' -f 1 /proc/uptime)

mkdir -p "$top_builddir/reliability" || bail "cannot create $top_builddir/reliability"
TSV=$top_builddir/reliability/load.tsv
: >"$TSV" || bail "cannot write $TSV"
# record METRIC VALUE: one line of load.tsv, written as soon as it is measured.
record() { printf '%s\t%s\n' "$1" "${2:-NA}" >>"$TSV"; }

# val NAME FILE: the value of a "NAME value" line.
val() { sed -n "s/^$1 //p" "$2" 2>/dev/null | head -n 1; }
# json_num NAME FILE: a number member of mcpsig status --json.
json_num() { sed -n "s/^[[:space:]]*\"$1\":[[:space:]]*\\([0-9][0-9]*\\).*/\\1/p" "$2" 2>/dev/null | head -n 1; }
# is_num VALUE...: all are whole numbers.
is_num() {
	for v in "$@"; do
		case $v in '' | *[!0-9]*) return 1 ;; esac
	done
}
# kib FIELD FILE: a "Field: N kB" line of a /proc file.
kib() { sed -n "s/^$1:[[:space:]]*\\([0-9][0-9]*\\) kB/\\1/p" "$2" 2>/dev/null | head -n 1; }
rss() { kib VmRSS "/proc/$AGENT_PID/status"; }
dirty() { kib Private_Dirty "/proc/$AGENT_PID/smaps_rollup"; }

# reap PID SECONDS: waits for PID at most SECONDS, then kills it; its exit status.
reap() {
	reap_n=$(($2 * 10))
	while kill -0 "$1" 2>/dev/null && [ "$reap_n" -gt 0 ]; do
		sleep 0.1
		reap_n=$((reap_n - 1))
	done
	kill -KILL "$1" 2>/dev/null
	wait "$1"
}

# bounded SECONDS OUT COMMAND...: runs COMMAND (stdout to OUT, stderr to
# OUT.err) for at most SECONDS; its exit status.
bounded() {
	bounded_secs=$1
	bounded_out=$2
	shift 2
	"$@" >"$bounded_out" 2>"$bounded_out.err" &
	bounded_pid=$!
	AGENT_PIDS="$AGENT_PIDS $bounded_pid"
	reap "$bounded_pid" "$bounded_secs"
}

SOCK=$TMP/agent.sock
start_agent "$SOCK" "$TMP/ks" || bail "the agent did not start"
"$CLI" -a "$SOCK" status --json >"$TMP/status0.json" 2>/dev/null

# ---- 1. 64 concurrent clients --------------------------------------------------------

bounded 60 "$TMP/load.out" "$LOAD" "$SOCK" --clients "$CLIENTS" --signatures "$PER_CLIENT" --control
load_rc=$?
n_ok=$(val ok "$TMP/load.out")
n_err=$(val errors "$TMP/load.out")
n_ctl=$(val control_errors "$TMP/load.out")
rate=$(val signatures_per_second "$TMP/load.out")
record clients "$(val clients "$TMP/load.out")"
record signatures_per_client "$(val signatures_per_client "$TMP/load.out")"
record signatures_total "$n_ok"
record errors "$n_err"
record control_errors "$n_ctl"
record signatures_per_second "$rate"

ok "$([ "$(val checker_selftest "$TMP/load.out")" = ok ] && echo 0 || echo 1)" \
	"the reply checker refuses broken replies (wrong keyid, label, alg, digest, Signature form)"
ok "$([ "$n_ctl" = 1 ] && [ "$(val control_code "$TMP/load.out")" = -1009 ] && echo 0 || echo 1)" \
	"control: one deliberately invalid request is counted as exactly one error (EURI), apart from the totals"
ok "$([ "$load_rc" -eq 0 ] && [ "$n_ok" = $((CLIENTS * PER_CLIENT)) ] && [ "$n_err" = 0 ] && echo 0 || echo 1)" \
	"$CLIENTS concurrent clients x $PER_CLIENT signatures: ${n_ok:-?} well-formed, ${n_err:-?} errors"
echo "$CLIENTS x $PER_CLIENT: ${n_ok:-?} signatures in $(val seconds "$TMP/load.out") s, ${rate:-?} signatures/s" | diag
if [ "$load_rc" -ne 0 ] || [ "$n_err" != 0 ]; then
	head -n 20 "$TMP/load.out.err" | diag
fi
"$CLI" -a "$SOCK" status --json >"$TMP/status1.json" 2>/dev/null
s0=$(json_num signatures "$TMP/status0.json")
s1=$(json_num signatures "$TMP/status1.json")
ok "$(is_num "$s0" "$s1" && [ $((s1 - s0)) -eq $((CLIENTS * PER_CLIENT)) ] && echo 0 || echo 1)" \
	"the agent's own counter agrees: $(is_num "$s0" "$s1" && echo $((s1 - s0)) || echo '?') signatures made"

# ---- 2. hostile clients beside a good one -----------------------------------------------

# The good client alone, for comparison.
bounded 30 "$TMP/alone.out" "$LOAD" "$SOCK" --clients 1 --signatures "$GOOD"
alone_rc=$?
rate_alone=$(val signatures_per_second "$TMP/alone.out")
ok "$([ "$alone_rc" -eq 0 ] && [ "$(val ok "$TMP/alone.out")" = "$GOOD" ] && echo 0 || echo 1)" \
	"the good client alone: $GOOD signatures (${rate_alone:-?}/s)"

# The sampler polls mcpsig status --json (its own connection) and the agent's
# memory, one line per sample: queued connections rss dirty.
sampler() {
	i=0
	while [ ! -e "$TMP/sampler.stop" ] && [ "$i" -lt 600 ]; do
		"$CLI" -a "$SOCK" status --json >"$TMP/sample.json" 2>/dev/null
		q=$(json_num output_queued_max "$TMP/sample.json")
		c=$(json_num connections "$TMP/sample.json")
		r=$(rss)
		d=$(dirty)
		echo "${q:-NA} ${c:-NA} ${r:-NA} ${d:-NA}" >>"$TMP/samples"
		sleep 0.1
		i=$((i + 1))
	done
}
samples() { wc -l <"$TMP/samples" 2>/dev/null || echo 0; }

rss_before=$(rss)
dirty_before=$(dirty)
"$CLI" -a "$SOCK" status --json >"$TMP/status2.json" 2>/dev/null
limit=$(json_num output_queued_limit "$TMP/status2.json")
record output_queued_limit_bytes "$limit"
: >"$TMP/samples"
sampler &
SAMPLER_PID=$!
AGENT_PIDS="$AGENT_PIDS $SAMPLER_PID"

# The partial-message timeout is 30 s by default: this phase holds the half
# message for a few seconds only (checked below).
"$HOSTILE" half "$SOCK" --until "$TMP/stop" --max-seconds 25 >"$TMP/half.out" 2>&1 &
HALF_PID=$!
"$HOSTILE" flood "$SOCK" --until "$TMP/stop" --max-seconds 25 >"$TMP/flood.out" 2>&1 &
FLOOD_PID=$!
AGENT_PIDS="$AGENT_PIDS $HALF_PID $FLOOD_PID"
wait_for 10 grep -q '^half_sent_bytes' "$TMP/half.out"
half_up=$?
wait_for 20 grep -q '^blocked' "$TMP/flood.out"
flood_up=$?
ok "$([ "$half_up" -eq 0 ] && [ "$flood_up" -eq 0 ] && echo 0 || echo 1)" \
	"one client sent half a message; the flooder filled its queue and the agent stopped reading it"
sed -n 's/^blocked //p' "$TMP/flood.out" | sed 's/^/the flooder was blocked after: /' | diag
# Let the sampler see the full queue before the good client starts.
n_at_block=$(samples)
wait_for 5 sh -c "[ \$(wc -l <'$TMP/samples') -ge $((n_at_block + 2)) ]"

bounded 30 "$TMP/good.out" "$LOAD" "$SOCK" --clients 1 --signatures "$GOOD"
good_rc=$?
good_ok=$(val ok "$TMP/good.out")
rate_beside=$(val signatures_per_second "$TMP/good.out")
record good_client_signatures_beside_hostile "$good_ok"
record good_client_errors_beside_hostile "$(val errors "$TMP/good.out")"
ok "$([ "$good_rc" -eq 0 ] && [ "$good_ok" = "$GOOD" ] && echo 0 || echo 1)" \
	"beside them a well-behaved client completes $GOOD signatures with zero errors"
[ "$good_rc" -eq 0 ] || head -n 20 "$TMP/good.out.err" | diag
hostiles_running=$(
	n=0
	kill -0 "$HALF_PID" 2>/dev/null && n=$((n + 1))
	kill -0 "$FLOOD_PID" 2>/dev/null && n=$((n + 1))
	echo "$n"
)
n_at_good=$(samples)
wait_for 5 sh -c "[ \$(wc -l <'$TMP/samples') -ge $((n_at_good + 1)) ]"
touch "$TMP/sampler.stop"
reap "$SAMPLER_PID" 10
"$CLI" -a "$SOCK" status --json >"$TMP/status3.json" 2>/dev/null
conns=$(json_num connections "$TMP/status3.json")
ok "$([ "$hostiles_running" -eq 2 ] && [ "$conns" = 3 ] && echo 0 || echo 1)" \
	"after it, the agent still has ${conns:-?} connections open: the two hostile clients' and the one asking"

# Now the hostile clients check their connections: the half-message client
# finds no EOF, sends the rest and gets its reply; the flooder reads every reply.
touch "$TMP/stop"
reap "$HALF_PID" 15
half_rc=$?
reap "$FLOOD_PID" 30
flood_rc=$?
half_kept=$(val kept "$TMP/half.out")
flood_kept=$(val kept "$TMP/flood.out")
held=$(val held_seconds "$TMP/half.out")
record hostile_connections_kept $((${half_kept:-0} + ${flood_kept:-0}))
ok "$([ "$half_rc" -eq 0 ] && [ "$half_kept" = 1 ] && echo 0 || echo 1)" \
	"the half-message connection was kept: no EOF after ${held:-?} s, and its completed message was answered"
ok "$(awk -v h="${held:-99}" 'BEGIN { exit !(h < 20) }' && echo 0 || echo 1)" \
	"the half message was held well under the 30 s partial timeout (${held:-?} s)"
ok "$([ "$flood_rc" -eq 0 ] && [ "$flood_kept" = 1 ] && echo 0 || echo 1)" \
	"the flooder's connection was kept: once it read, all $(val requests_sent "$TMP/flood.out") requests were answered in order, no EOF"
[ "$half_rc" -eq 0 ] || diag <"$TMP/half.out"
[ "$flood_rc" -eq 0 ] || diag <"$TMP/flood.out"

# ---- 3. the flooder's queue and the agent's memory -----------------------------------------

qmax=$(awk '$1 ~ /^[0-9]+$/ && $1 > m { m = $1 } END { print m + 0 }' "$TMP/samples")
n_samples=$(awk '$1 ~ /^[0-9]+$/ { n++ } END { print n + 0 }' "$TMP/samples")
rss_max=$(awk '$3 ~ /^[0-9]+$/ && $3 > m { m = $3 } END { print m + 0 }' "$TMP/samples")
dirty_max=$(awk '$4 ~ /^[0-9]+$/ && $4 > m { m = $4 } END { print m + 0 }' "$TMP/samples")
rss_after=$(rss)
dirty_after=$(dirty)
req=$(val request_bytes_min "$TMP/flood.out")
rep=$(val reply_bytes_max "$TMP/flood.out")
record flooder_output_queued_max_bytes "$qmax"
record status_samples "$n_samples"

ok "$([ "$limit" = "$DOC_LIMIT" ] && echo 0 || echo 1)" \
	"the agent reports output_queued_limit ${limit:-?}, the documented 4 MiB (PROTOCOL.md §4)"
ok "$(is_num "$limit" && [ "$qmax" -gt "$limit" ] && echo 0 || echo 1)" \
	"the flood filled the queue past the limit ($qmax bytes seen in $n_samples samples): the bound below is exercised"
# What the agent guarantees: it checks its queue after handling each read and
# stops reading once the queue exceeds the limit. So at the start of any read
# the queue is at most the limit, and one read adds the replies to the whole
# messages in the receive buffer: at most (MAX_MSG_LEN + READ_CHUNK) / (the
# flooder's request size) of them, each at most the largest reply it got. The
# queue is only ever larger than that while the agent is not reading, and then
# it only shrinks. (output_queued_max is the largest queue of any connection;
# during the flood that is the flooder's.)
bound=NA
if is_num "$limit" "$req" "$rep" && [ "$req" -gt 0 ]; then
	whole_msgs=$(((MAX_MSG_LEN + READ_CHUNK) / req))
	bound=$((limit + whole_msgs * rep))
fi
record output_queued_bound_bytes "$bound"
ok "$(is_num "$bound" && [ "$qmax" -le "$bound" ] && echo 0 || echo 1)" \
	"the flooder's queued output stays within limit + the replies to one read: $qmax <= $bound bytes"
if is_num "$limit" "$rep" && [ "$rep" -gt 0 ]; then
	echo "flooder output queued max $qmax bytes = limit $limit + $((qmax - limit)) bytes (~$(((qmax - limit + rep - 1) / rep)) replies of <= $rep bytes; requests $req bytes); bound $bound" | diag
fi

growth=NA
is_num "$rss_before" "$rss_max" && growth=$((rss_max - rss_before))
record agent_rss_before_kib "$rss_before"
record agent_rss_max_during_kib "$rss_max"
record agent_rss_after_kib "$rss_after"
record agent_rss_growth_kib "$growth"
record agent_private_dirty_before_kib "$dirty_before"
record agent_private_dirty_max_during_kib "$dirty_max"
record agent_private_dirty_after_kib "$dirty_after"
ok "$(is_num "$growth" && [ "$rss_max" -gt 0 ] && [ "$growth" -lt "$RSS_GROWTH_MAX_KIB" ] && echo 0 || echo 1)" \
	"the agent's RSS grew by ${growth} KiB during the flood (< $RSS_GROWTH_MAX_KIB KiB)"
echo "agent VmRSS KiB: before $rss_before, max during $rss_max, after $rss_after; Private_Dirty KiB: before ${dirty_before:-?}, max during $dirty_max, after ${dirty_after:-?}" | diag

ratio=NA
if [ -n "$rate_alone" ] && [ -n "$rate_beside" ]; then
	ratio=$(awk -v a="$rate_alone" -v b="$rate_beside" 'BEGIN { if (a > 0) printf "%.2f", b / a; else print "NA" }')
fi
record good_client_signatures_per_second_alone "$rate_alone"
record good_client_signatures_per_second_beside_hostile "$rate_beside"
record good_client_speed_ratio_beside_hostile "$ratio"
echo "good client: ${rate_alone:-?}/s alone, ${rate_beside:-?}/s beside the hostile clients (ratio $ratio; one run, see bench/hostile.sh)" | diag

# ---- 4. the partial-message timeout ---------------------------------------------------------

if "$AGENT" --help 2>/dev/null | grep -q -- '--partial-timeout'; then
	SOCK2=$TMP/agent2.sock
	start_agent "$SOCK2" "$TMP/ks2" --partial-timeout=2 || bail "the agent with --partial-timeout=2 did not start"
	# Control for the "kept" check of part 2: held past the timeout, the same
	# client must find its connection gone.
	"$HOSTILE" half "$SOCK2" --until "$TMP/stop2" --max-seconds 20 >"$TMP/half2.out" 2>&1 &
	HALF2_PID=$!
	AGENT_PIDS="$AGENT_PIDS $HALF2_PID"
	bounded 15 "$TMP/expire.out" "$HOSTILE" half "$SOCK2" --expect-close 8
	closed_after=$(val closed_after_seconds "$TMP/expire.out")
	code=$(val error_code "$TMP/expire.out")
	record partial_timeout_close_seconds "$closed_after"
	ok "$([ "$(val closed "$TMP/expire.out")" = 1 ] &&
		awk -v t="${closed_after:-0}" 'BEGIN { exit !(t >= 1.9 && t <= 7) }' && echo 0 || echo 1)" \
		"with --partial-timeout=2 the agent closes a connection holding half a message after ${closed_after:-?} s ($([ "${code:--1}" -ge 0 ] && echo "error reply $code, then EOF" || echo EOF))"
	touch "$TMP/stop2"
	reap "$HALF2_PID" 10
	half2_rc=$?
	ok "$([ "$half2_rc" -ne 0 ] && [ "$(val kept "$TMP/half2.out")" = 0 ] && echo 0 || echo 1)" \
		"control: a half message held past that timeout finds its connection closed ($(val state_before_completing "$TMP/half2.out"))"
	stop_agent "$AGENT_PID"
else
	record partial_timeout_close_seconds NA
	skip "mcpsig-agent has no --partial-timeout option"
fi

ended_at=$(cut -d ' ' -f 1 /proc/uptime)
runtime=$(awk -v a="$started_at" -v b="$ended_at" 'BEGIN { printf "%.1f", b - a }')
record runtime_seconds "$runtime"
echo "runtime ${runtime} s; figures in $TSV" | diag
done_testing
