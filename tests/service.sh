#!/bin/sh
# Running under systemd, with stand-ins for the manager (none runs here):
#
#  - socket activation through systemd-socket-activate: the inherited socket
#    is served and never removed; unexpected LISTEN_* settings are refused;
#  - readiness: READY=1 only once the whole keystore is loaded (slowed down
#    by a test hook), STATUS= with a summary that follows changes, a reload
#    on SIGHUP that keeps connections, STOPPING=1 on SIGTERM;
#  - idle exit under an activator that restarts the agent like systemd,
#    including a client that arrives while the agent is exiting.
# Prints TAP.

. "${top_srcdir:-.}/tests/lib.sh"

TEST_AGENT=$top_builddir/tests/mcpsig-agent-test
NOTIFY=$top_builddir/tests/notify-listen
ACTIVATOR=$top_builddir/tests/activator
for bin in "$TEST_AGENT" "$NOTIFY" "$ACTIVATOR"; do
	[ -x "$bin" ] || bail "$bin is not built"
done
command -v systemd-socket-activate >/dev/null 2>&1 || bail "systemd-socket-activate is required (Debian package systemd)"

keyid_of() { # keyid_of SOCKET ORIGIN: the keyid the agent signs with for ORIGIN
	"$CLI" -a "$1" sign --json -u "$2/mcp" -d '{}' | sed -n 's/.*"keyid": "\([^"]*\)".*/\1/p'
}
bindings_of() { # bindings_of SOCKET: how many bindings list --json shows
	"$CLI" -a "$1" list --json | grep -c '"origin"'
}

# ---- socket activation ---------------------------------------------------------------

SA=$TMP/sa.sock
systemd-socket-activate -l "$SA" "$AGENT" -D --keystore "$TMP/ks" >"$TMP/sa.log" 2>&1 &
SA_PID=$!
AGENT_PIDS="$AGENT_PIDS $SA_PID"
wait_for 10 test -S "$SA"
K1=$(keyid_of "$SA" https://a.example)
ok "$([ ${#K1} -eq 43 ] && echo 0 || echo 1)" "a request is signed through the socket systemd passed"
grep -q 'socket from systemd' "$TMP/sa.log"
ok $? "the agent says it serves the inherited socket"
kill -TERM "$SA_PID"
wait_for 10 sh -c "! kill -0 $SA_PID"
ok $? "SIGTERM stops it"
test -S "$SA"
ok $? "the agent never removes the socket systemd owns"

# shellcheck disable=SC2016
env LISTEN_FDS=1 LISTEN_PID=1 "$AGENT" -D --keystore "$TMP/ks2" >/dev/null 2>"$TMP/e1"
ok "$([ $? -eq 1 ] && grep -q 'LISTEN_PID=1 is not this process' "$TMP/e1" && echo 0 || echo 1)" \
	"LISTEN_FDS meant for another process is refused, by name"
# shellcheck disable=SC2016
sh -c 'LISTEN_PID=$$ LISTEN_FDS=2 exec "$0" -D --keystore "$1"' "$AGENT" "$TMP/ks2" 3<"$TMP/e1" 4<"$TMP/e1" \
	>/dev/null 2>"$TMP/e2"
ok "$([ $? -eq 1 ] && grep -q 'passed 2 sockets' "$TMP/e2" && echo 0 || echo 1)" "two sockets are refused"
# shellcheck disable=SC2016
sh -c 'LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" -D --keystore "$1"' "$AGENT" "$TMP/ks2" 3<"$TMP/e1" \
	>/dev/null 2>"$TMP/e3"
ok "$([ $? -eq 1 ] && grep -q 'not a listening Unix stream socket' "$TMP/e3" && echo 0 || echo 1)" \
	"a passed fd that is not a listening Unix socket is refused"

# ---- a service manager that stops reading ------------------------------------------------

# Its datagram queue fills after 10 messages (net.unix.max_dgram_qlen); an agent
# that blocked on it would stop answering. A dozen status changes, one a second.
"$NOTIFY" "$TMP/deaf.sock" 60 --hold &
AGENT_PIDS="$AGENT_PIDS $!"
wait_for 10 test -S "$TMP/deaf.sock"
NOTIFY_SOCKET=$TMP/deaf.sock "$AGENT" -D -a "$TMP/deaf-agent.sock" --keystore "$TMP/deaf-ks" >"$TMP/deaf.log" 2>&1 &
DP=$!
AGENT_PIDS="$AGENT_PIDS $DP"
wait_for 10 "$CLI" -a "$TMP/deaf-agent.sock" status
answered=0
for i in 1 2 3 4 5 6 7 8 9 10 11 12 13; do
	timeout 5 "$CLI" -a "$TMP/deaf-agent.sock" sign -u "https://deaf$i.example/" >/dev/null 2>&1 && answered=$((answered + 1))
	sleep 1.1
done
ok "$([ "$answered" -eq 13 ] && echo 0 || echo 1)" \
	"with a notification socket nobody reads, the agent keeps answering ($answered of 13 requests over 14 s)"
kill -TERM "$DP" 2>/dev/null
wait_for 5 sh -c "! kill -0 $DP"
ok $? "and it still stops on SIGTERM"

# ---- readiness, status, reload, stopping ------------------------------------------------

# A keystore of five bindings, made by an ordinary agent.
start_agent "$TMP/seed.sock" "$TMP/ready-ks" || bail "the seeding agent did not start"
for o in a b c d e; do keyid_of "$TMP/seed.sock" "https://$o.example" >/dev/null; done
stop_agent "$AGENT_PID"
# Another keystore with one binding, to restore into the first one later.
start_agent "$TMP/other.sock" "$TMP/other-ks" || bail "the second agent did not start"
KF=$(keyid_of "$TMP/other.sock" https://f.example)
stop_agent "$AGENT_PID"

"$NOTIFY" "$TMP/notify.sock" 120 >"$TMP/notify.out" &
AGENT_PIDS="$AGENT_PIDS $!"
wait_for 10 test -S "$TMP/notify.sock"
R=$TMP/ready.sock
NOTIFY_SOCKET=$TMP/notify.sock MCPSIG_TEST_SLOW_LOAD_MS=300 \
	"$TEST_AGENT" -D -a "$R" --keystore "$TMP/ready-ks" >"$TMP/ready.log" 2>&1 &
RP=$!
AGENT_PIDS="$AGENT_PIDS $RP"
wait_for 20 grep -q 'READY=1' "$TMP/notify.out"
ok $? "READY=1 arrives"
n=$(bindings_of "$R")
ok "$([ "$n" -eq 5 ] && echo 0 || echo 1)" "at READY=1 the whole keystore answers at once ($n of 5 bindings, loading slowed to 1.5 s)"
grep 'READY=1' "$TMP/notify.out" | head -1 | grep -q 'STATUS=0 connections, 5 bindings, 0 signatures since start'
ok $? "STATUS= comes with READY=1: connections, bindings, signatures"
keyid_of "$R" https://a.example >/dev/null
wait_for 5 grep -q 'STATUS=.*1 signature since start' "$TMP/notify.out"
ok $? "STATUS= follows a change within a second"

"$CLI" -a "$R" watch --count 1 >"$TMP/watch.out" 2>&1 &
WP=$!
AGENT_PIDS="$AGENT_PIDS $WP"
wait_for 5 sh -c "grep -q 'STATUS=1 connection' '$TMP/notify.out'"
cp "$TMP"/other-ks/identities/default/bindings/*.binding "$TMP/ready-ks/identities/default/bindings/"
kill -HUP "$RP"
wait_for 5 grep -q 'RELOADING=1' "$TMP/notify.out"
ok $? "SIGHUP: RELOADING=1"
wait_for 5 sh -c "[ \$(grep -c 'READY=1' '$TMP/notify.out') -ge 2 ]"
ok $? "then READY=1 again"
ok "$([ "$(bindings_of "$R")" -eq 6 ] && [ "$(keyid_of "$R" https://f.example)" = "$KF" ] && echo 0 || echo 1)" \
	"the reload read the restored binding from disk, with its key"
"$CLI" -a "$R" rotate --begin --origin https://f.example >/dev/null
wait_for 5 sh -c "! kill -0 $WP"
wait "$WP"
ok "$([ $? -eq 0 ] && grep -q '^begin' "$TMP/watch.out" && echo 0 || echo 1)" \
	"a connection opened before the reload is still served after it"

kill -TERM "$RP"
wait_for 10 sh -c "! kill -0 $RP"
grep -q 'STOPPING=1' "$TMP/notify.out"
ok $? "SIGTERM: STOPPING=1"
diag <"$TMP/notify.out"

# ---- idle exit under an activator ---------------------------------------------------------

I=$TMP/idle.sock
MCPSIG_TEST_EXIT_DELAY_MS=1500 "$ACTIVATOR" "$I" 90 "$TEST_AGENT" -D --keystore "$TMP/idle-ks" --exit-idle=2 \
	>"$TMP/act.out" 2>"$TMP/act.err" &
AP=$!
AGENT_PIDS="$AGENT_PIDS $AP"
wait_for 10 test -S "$I"
KI=$(keyid_of "$I" https://idle.example)
ok "$([ ${#KI} -eq 43 ] && grep -c '^start' "$TMP/act.out" | grep -qx 1 && echo 0 || echo 1)" \
	"the first connection starts the agent"
wait_for 10 grep -q '^exit' "$TMP/act.out"
ok $? "with --exit-idle=2 it exits when idle"
grep '^exit' "$TMP/act.out" | head -1 | grep -q ' 0$'
ok $? "and exits with status 0"
KI2=$(keyid_of "$I" https://idle.example)
ok "$([ "$KI2" = "$KI" ] && [ "$(grep -c '^start' "$TMP/act.out")" -eq 2 ] && echo 0 || echo 1)" \
	"a new connection starts it again and is served, with the same key and tag"

# A client that arrives while the agent is exiting: it has closed its
# listener and lingers 1.5 s (test hook) before the process ends.
wait_for 10 grep -q 'exiting' "$TMP/act.err"
wait_for 10 sh -c "[ \$(grep -c 'no connection for' '$TMP/act.err') -ge 2 ]"
KI3=$(keyid_of "$I" https://idle.example)
ok "$([ "$KI3" = "$KI" ] && echo 0 || echo 1)" "a client arriving while the agent exits is served by the next one"
ok "$([ "$(grep -c '^start' "$TMP/act.out")" -eq 3 ] && echo 0 || echo 1)" "(the activator started a third agent for it)"
kill -TERM "$AP"
diag <"$TMP/act.out"

done_testing
