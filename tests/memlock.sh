#!/bin/sh
# When the agent cannot lock its key memory (RLIMIT_MEMLOCK too low for a
# user without CAP_IPC_LOCK), it says so at start, in the log, and in
# mcpsig status; with a sufficient limit it reports the memory locked.
# The agent runs as uid 65534 through setpriv (the tests run as root, and
# root may always lock memory). Prints TAP.

. "${top_srcdir:-.}/tests/lib.sh"

command -v setpriv >/dev/null 2>&1 || bail "setpriv (util-linux) is missing"
command -v prlimit >/dev/null 2>&1 || bail "prlimit (util-linux) is missing"
[ "$(id -u)" -eq 0 ] || bail "this test runs the agent as another uid, and needs root for that"
NOBODY=65534

D=$TMP/nobody
mkdir -m 0700 "$D"
chown "$NOBODY:$NOBODY" "$D"
# The build tree may sit in a directory uid 65534 cannot enter: run copies.
programs_for_other_uid || bail "cannot copy the programs for uid $NOBODY"

# run_agent_as_nobody MEMLOCK NAME: an agent as uid 65534, with no supplementary groups and no
# capabilities, and that RLIMIT_MEMLOCK.
run_agent_as_nobody() {
	memlock=$1
	name=$2
	prlimit --memlock="$memlock" setpriv --reuid=$NOBODY --regid=$NOBODY --clear-groups --inh-caps=-all \
		env HOME="$D" "$AGENT" -D -a "$D/$name.sock" --keystore "$D/$name.ks" >"$TMP/$name.log" 2>&1 &
	pid=$!
	AGENT_PIDS="$AGENT_PIDS $pid"
	wait_for 10 setpriv --reuid=$NOBODY --regid=$NOBODY --clear-groups "$CLI" -a "$D/$name.sock" status
}

if agent_has_sanitizer; then
	# The sanitizers' mlock() is a no-op that reports success: this build
	# cannot show a failure to lock, so the checks are skipped, not passed.
	skip "the agent is built with a sanitizer, whose mlock() always succeeds"
	mkdir -p "$top_builddir/reliability"
	printf 'memlock_failure_reported\tNA\n' >"$top_builddir/reliability/memlock.tsv"
	done_testing
	exit
fi

run_agent_as_nobody 0 nolock
ok $? "an agent runs as uid $NOBODY with RLIMIT_MEMLOCK 0"
grep -q 'cannot lock key memory' "$TMP/nolock.log"
ok $? "it warns at start that key memory cannot be locked"
diag <"$TMP/nolock.log"
setpriv --reuid=$NOBODY --regid=$NOBODY --clear-groups "$CLI" -a "$D/nolock.sock" status >"$TMP/nolock.status" 2>"$TMP/nolock.err"
grep -q 'key memory: NOT LOCKED' "$TMP/nolock.status" && grep -q 'could not lock its key memory' "$TMP/nolock.err"
ok $? "mcpsig status says NOT LOCKED, and warns on stderr how to fix it"
setpriv --reuid=$NOBODY --regid=$NOBODY --clear-groups "$CLI" -a "$D/nolock.sock" status --json 2>/dev/null |
	grep -q '"memory_locked": false'
ok $? "mcpsig status --json reports memory_locked false"
setpriv --reuid=$NOBODY --regid=$NOBODY --clear-groups "$CLI" -a "$D/nolock.sock" sign -u https://a.example/ >/dev/null 2>&1
ok $? "it still signs (the keys are guarded, only not locked)"

# The most this process may allow (raising the hard limit needs CAP_SYS_RESOURCE).
hard=$(ulimit -H -l)
[ "$hard" = unlimited ] && limit=unlimited || limit=$((hard * 1024))
run_agent_as_nobody "$limit" locked
ok $? "an agent runs as uid $NOBODY with RLIMIT_MEMLOCK $limit"
setpriv --reuid=$NOBODY --regid=$NOBODY --clear-groups "$CLI" -a "$D/locked.sock" status >"$TMP/locked.status" 2>"$TMP/locked.err"
grep -q 'key memory: locked' "$TMP/locked.status" && ! grep -q 'could not lock' "$TMP/locked.err" &&
	! grep -q 'cannot lock key memory' "$TMP/locked.log"
ok $? "with enough RLIMIT_MEMLOCK: locked, and no warning anywhere"

mkdir -p "$top_builddir/reliability"
printf 'memlock_failure_reported\t%s\n' "$(grep -c 'NOT LOCKED' "$TMP/nolock.status")" >"$top_builddir/reliability/memlock.tsv"
done_testing
