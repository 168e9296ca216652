#!/bin/sh
# Faults in the keystore, against invariant 1 (no signature under a key that
# is not durably stored; see daemon/keystore.c):
#
#  1. writes that fail: a read-only keystore (chmod 0500, with the agent run
#     as uid 65534 so the modes apply), a full file system (a tmpfs filled
#     up; root only), and RLIMIT_FSIZE (prlimit). Each request that needs a
#     write fails with exit 1 and a keystore message, prints no signature, no
#     proof and no public key of a key it could not store, and keys already
#     stored keep working; the agent survives, and after the fault the
#     keystore loads with every binding and key id as before.
#  2. kill -9 during first contact: the test agent's crash points around the
#     binding's durable write (and the identity's), then rounds of many
#     first contacts with the agent killed at a random moment. Every binding
#     a client saw a signature for is there after the restart, with the key
#     id the client saw, and the keystore always loads.
#
# The measured figures go to $top_builddir/reliability/faults.tsv. Prints TAP.

# As root, the test runs in a mount namespace of its own: its tmpfs goes away
# with it, whatever happens.
if [ -z "${MCPSIG_FAULTS_NS:-}" ] && [ "$(id -u)" -eq 0 ] && command -v unshare >/dev/null 2>&1 &&
	unshare -m --propagation private true 2>/dev/null; then
	MCPSIG_FAULTS_NS=1
	export MCPSIG_FAULTS_NS
	exec unshare -m --propagation private /bin/sh "$0" "$@"
fi

. "${top_srcdir:-.}/tests/lib.sh"

started=$(date +%s)
TEST_AGENT=$top_builddir/tests/mcpsig-agent-test
[ -x "$TEST_AGENT" ] || bail "$TEST_AGENT is not built"
REL=$top_builddir/reliability
mkdir -p "$REL" || bail "cannot create $REL"
TSV=$REL/faults.tsv
: >"$TSV"
metric() { printf '%s\t%s\n' "$1" "$2" >>"$TSV"; }

# The agent and its clients run as uid 65534 when we are root, so that file
# modes apply to the agent as they do for a user.
W=$TMP/w
if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null 2>&1; then
	U=65534
	AS="setpriv --reuid=$U --regid=$U --clear-groups --inh-caps=-all"
	# The build tree may sit in a directory uid 65534 cannot enter: run copies.
	programs_for_other_uid mcpsig-agent-test || bail "cannot copy the programs for uid $U"
	TEST_AGENT=$TMP/bin/mcpsig-agent-test
	mkdir -m 0700 "$W"
	chown "$U:$U" "$W"
else
	U=$(id -u)
	AS=
	mkdir -m 0700 "$W"
fi
SOCK=$W/agent.sock
KS=$W/ks
TMPFS=no
if [ -n "${MCPSIG_FAULTS_NS:-}" ] && mkdir -m 0700 "$W/t" && chown "$U" "$W/t" &&
	mount -t tmpfs -o size=4m,nr_inodes=4096,mode=0700,uid="$U" mcpsig-faults "$W/t" 2>/dev/null; then
	TMPFS=yes
	KS=$W/t/ks # the keystore lives on a small tmpfs, to be filled up later
	# Detached before lib.sh removes $TMP, even after a bail-out.
	trap 'for p in $AGENT_PIDS; do kill -KILL "$p" 2>/dev/null; done; umount -l "$W/t"; cleanup' EXIT
fi
LOG=$TMP/agent.log
mkfifo "$TMP/log.fifo"

c() { $AS "$CLI" -a "$SOCK" "$@"; }
RUN_AGENT=$AGENT

# up [PREFIX...]: starts $RUN_AGENT on $SOCK and $KS as the test user, after
# PREFIX (e.g. prlimit). Its output reaches the log
# through a pipe, to which RLIMIT_FSIZE does not apply. Sets AGENT_PID.
up() {
	cat "$TMP/log.fifo" >>"$LOG" &
	AGENT_PIDS="$AGENT_PIDS $!"
	# shellcheck disable=SC2086
	$AS "$@" "$RUN_AGENT" -D -a "$SOCK" --keystore "$KS" >"$TMP/log.fifo" 2>&1 &
	AGENT_PID=$!
	AGENT_PIDS="$AGENT_PIDS $AGENT_PID"
	wait_for 10 c status
}
down() { # stops the agent if it still runs; 0 when it was running
	if kill -0 "$AGENT_PID" 2>/dev/null; then
		stop_agent "$AGENT_PID"
		return 0
	fi
	wait "$AGENT_PID" 2>/dev/null
	return 1
}
# pairs: "identity origin keyid" for each binding, from list --json on stdin.
pairs() { awk -F'"' '/"identity":/ { id = $4 } /"origin":/ { o = $4 } /"keyid":/ { print id " " o " " $4 }'; }
keyid_of() { awk -F'"' '/"keyid":/ { print $4; exit }' "$1"; }
leftovers() { find "$KS" -name '*.tmp' -o -name '*.old' -o -name '*.discard' | wc -l; }

SEED=$TMP/seed
head -c 32 /dev/urandom >"$SEED"
chmod 0644 "$SEED"
OLD=https://old.example

up || bail "the agent did not start"
{ c sign -u "$OLD/mcp" && c add-identity work && c --identity work sign -u "$OLD/mcp" &&
	c sign -u https://other.example/mcp; } >/dev/null || bail "cannot set up the keystore"
STATE0=$(c list --json)
K_OLD=$(c list --json | pairs | awk -v o="$OLD" '$1 == "default" && $2 == o { print $3 }')

# ---- 1. writes that fail -----------------------------------------------------------

unsaved=0 # signatures, proofs or public keys printed for a key that was not stored
survived=0
scenarios=0

# revive: when the agent has died, counts it and starts it again under the
# same fault, so that each request is tried on its own.
revive() {
	kill -0 "$AGENT_PID" 2>/dev/null && return 0
	wait "$AGENT_PID" 2>/dev/null
	st=$?
	deaths=$((deaths + 1))
	how="exit $st"
	[ "$st" -gt 128 ] && how="killed by SIG$(kill -l $((st - 128)))"
	# shellcheck disable=SC2086
	up $FAULT_PREFIX
}

# expect_refused DESCRIPTION CLI-ARGS...: the request fails with exit 1, a
# keystore message, and nothing on stdout.
expect_refused() {
	desc=$1
	shift
	revive
	c "$@" >"$TMP/o" 2>"$TMP/e"
	rc=$?
	n=$(grep -c -e '^Signature' -e '"Signature"' -e '"proof"' -e '"x"' -e '"pending_keyid": "' "$TMP/o")
	unsaved=$((unsaved + n))
	ok "$([ "$rc" -eq 1 ] && [ "$n" -eq 0 ] && echo 0 || echo 1)" "$fault: $desc fails (exit $rc) and prints no key material"
	grep -Eiq 'cannot (store|write|create|remove)|keystore' "$TMP/e"
	ok $? "  with a keystore message: $(head -c 200 "$TMP/e" | head -n 1)"
}

# fault NAME: the requests under the fault that fault_on_NAME set up, then
# fault_off_NAME, a restart and the checks that nothing changed.
fault() {
	fault=$1
	scenarios=$((scenarios + 1))
	deaths=0
	how=
	FAULT_PREFIX=
	"fault_on_$fault" || { ok 1 "$fault: the fault is in place"; return; }
	expect_refused "a first contact (sign)" sign --json -X POST -u "https://new-$fault.example/mcp" -d '{}'
	expect_refused "a first contact (jwk)" jwk --origin "https://jwk-$fault.example"
	expect_refused "a first contact (dpop)" dpop -X POST -u "https://dpop-$fault.example/token" \
		--origin "https://dpop-$fault.example"
	expect_refused "an import" import --origin "https://imp-$fault.example" --seed "$SEED"
	expect_refused "rotate --begin" rotate --begin --origin "$OLD" --json
	revive
	c sign --key pending -u "$OLD/mcp" >"$TMP/o" 2>"$TMP/e"
	rc=$?
	n=$(grep -c '^Signature' "$TMP/o")
	unsaved=$((unsaved + n))
	ok "$([ "$rc" -eq 1 ] && [ "$n" -eq 0 ] && echo 0 || echo 1)" "$fault: sign --key pending then fails too (exit $rc)"
	expect_refused "add-identity" add-identity "id-$fault"
	revive
	c sign --json -u "$OLD/mcp" >"$TMP/o" 2>"$TMP/e"
	ok "$([ "$(keyid_of "$TMP/o")" = "$K_OLD" ] && echo 0 || echo 1)" "$fault: a stored key still signs"
	revive
	alive=$(( deaths != 0 ))
	ok $alive "$fault: the agent survives the failed writes (it died $deaths times${how:+, last $how})"
	down
	"fault_off_$fault"
	up
	loads=$?
	ok $loads "$fault: after the fault the keystore loads"
	if [ "$loads" -ne 0 ]; then
		tail -n 3 "$LOG" | diag
		# Set it right by hand (what an interrupted add-identity leaves), so
		# the rest of the test can run.
		down
		rm -rf "$KS/identities/id-$fault"
		up || bail "the keystore does not load even without identities/id-$fault"
	fi
	[ "$STATE0" = "$(c list --json)" ]
	same=$?
	ok $same "$fault: every binding, tag and key id is as before, and no other"
	c rotate --status --origin "$OLD" --json | grep -q '"pending_keyid": null'
	ok $? "$fault: no rotation is pending"
	ok "$(leftovers)" "$fault: no temporary file is left in the keystore"
	[ "$alive" -eq 0 ] && [ "$loads" -eq 0 ] && [ "$same" -eq 0 ] && survived=$((survived + 1))
}

fault_on_readonly() {
	[ -n "$AS" ] || [ "$(id -u)" -ne 0 ] || return 1
	chmod 0500 "$KS/identities" "$KS"/identities/*/bindings
}
fault_off_readonly() { chmod 0700 "$KS/identities" "$KS"/identities/*/bindings; }
fault readonly

if [ "$TMPFS" = yes ]; then
	fault_on_enospc() {
		head -c 8388608 /dev/zero >"$W/t/fill" 2>/dev/null
		# Not a block left: even a one-byte file cannot be written.
		! $AS sh -c "printf x >'$KS/probe'" 2>/dev/null
	}
	fault_off_enospc() { rm -f "$W/t/fill" "$KS/probe"; }
	fault enospc
else
	skip "not root or no mount namespace: no full file system"
fi

# The largest file the agent may write: more than agent.lock (its pid), less
# than any record.
fault_on_fsize() {
	down
	FAULT_PREFIX="prlimit --fsize=24"
	# shellcheck disable=SC2086
	up $FAULT_PREFIX
}
fault_off_fsize() { :; }
fault fsize

metric write_fault_scenarios "$scenarios"
metric write_faults_survived "$survived"

# ---- 2. kill -9 during first contact ---------------------------------------------------

# The test agent's crash points around the binding's durable write: before
# the rename (the binding must not exist afterwards) and after it (it may).
# No client sees a signature in either case, and the keystore loads.
cp_run=0
for point in replace.synced:.binding replace.renamed:.binding; do
	cp_run=$((cp_run + 1))
	down
	RUN_AGENT=$TEST_AGENT
	up env "MCPSIG_TEST_CRASH=$point" || bail "the test agent did not start"
	RUN_AGENT=$AGENT
	victim=$AGENT_PID
	o=https://crash-$cp_run.example
	c sign --json -u "$o/mcp" >"$TMP/o" 2>"$TMP/e"
	rc=$?
	wait_for 5 sh -c "! kill -0 $victim"
	died=$?
	ok "$([ "$died" -eq 0 ] && [ "$rc" -eq 2 ] && ! grep -q Signature "$TMP/o" && echo 0 || echo 1)" \
		"first contact, kill -9 at $point: the agent dies there and the client gets no signature (exit $rc)"
	down
	up
	ok $? "  the keystore loads"
	k=$(c list --json | pairs | awk -v o="$o" '$2 == o { print $3 }')
	case $point in
	replace.synced:*) ok "$([ -z "$k" ] && echo 0 || echo 1)" "  the binding was not created (rename never happened)" ;;
	*) ok "$([ -n "$k" ] && echo 0 || echo 1)" "  the binding exists (renamed before the kill)" ;;
	esac
	c sign --json -u "$o/mcp" >"$TMP/o"
	s=$(keyid_of "$TMP/o")
	[ -n "$s" ] && [ "$s" = "$(c list --json | pairs | awk -v o="$o" '$2 == o { print $3 }')" ] &&
		{ [ -z "$k" ] || [ "$s" = "$k" ]; }
	ok $? "  the next signature for it uses the stored key"
	ok "$(leftovers)" "  no temporary file is left"
done

# Rounds of concurrent first contacts, with the agent killed at a random
# moment; the clients record the keyid of every signature they get.
ROUNDS=${FAULTS_ROUNDS:-10}
CLIENTS=4
PER=15
seen=0
lost=0
interrupted=0
rand() { od -An -N2 -tu2 /dev/urandom | tr -d ' '; }
mkdir "$TMP/r"
down
up || bail "the agent did not start"
round=1
while [ "$round" -le "$ROUNDS" ]; do
	pids=
	j=1
	while [ "$j" -le "$CLIENTS" ]; do
		(
			i=1
			while [ "$i" -le "$PER" ]; do
				c sign --json -u "https://r$round-$j-$i.example/mcp" >"$TMP/r/$round-$j-$i" 2>/dev/null
				echo $? >"$TMP/r/$round-$j-$i.rc"
				i=$((i + 1))
			done
		) &
		pids="$pids $!"
		j=$((j + 1))
	done
	ms=$(( $(rand) % 300 + 20 ))
	sleep "$(printf '0.%03d' "$ms")"
	kill -KILL "$AGENT_PID" 2>/dev/null
	wait "$AGENT_PID" 2>/dev/null
	for p in $pids; do wait "$p"; done
	up
	loads=$?
	ok $loads "round $round: kill -9 after ${ms} ms; the keystore loads"
	[ "$loads" -eq 0 ] || tail -n 3 "$LOG" | diag
	c list --json | pairs >"$TMP/pairs"
	n_seen=0
	n_lost=0
	for f in "$TMP"/r/"$round"-*; do
		case $f in *.rc) continue ;; esac
		k=$(keyid_of "$f")
		[ -n "$k" ] || continue
		n_seen=$((n_seen + 1))
		o=https://r$(basename "$f").example
		grep -qx "default $o $k" "$TMP/pairs" || { n_lost=$((n_lost + 1)); echo "# lost: $o $k"; }
	done
	n_fail=$(cat "$TMP"/r/"$round"-*.rc | grep -vcx 0)
	[ "$n_fail" -gt 0 ] && [ "$n_seen" -gt 0 ] && interrupted=$((interrupted + 1))
	ok $n_lost "round $round: $n_seen signed first contacts all have their binding and key id ($n_lost lost; $n_fail cut off)"
	seen=$((seen + n_seen))
	lost=$((lost + n_lost))
	round=$((round + 1))
done
ok "$([ "$interrupted" -gt 0 ] && echo 0 || echo 1)" \
	"the kill fell amid first contacts in $interrupted of $ROUNDS rounds (some signed, some cut off)"
metric kill9_first_contact_rounds "$ROUNDS"
metric kill9_rounds_amid_first_contacts "$interrupted"
metric kill9_signed_first_contacts "$seen"
metric keys_lost "$lost"

# The identity's durable write, before and after its rename: the keystore
# must still load (add-identity was never answered).
for point in replace.synced:identity replace.renamed:identity; do
	down
	RUN_AGENT=$TEST_AGENT
	up env "MCPSIG_TEST_CRASH=$point" || bail "the test agent did not start"
	RUN_AGENT=$AGENT
	victim=$AGENT_PID
	c add-identity crashed >/dev/null 2>&1
	wait_for 5 sh -c "! kill -0 $victim"
	ok $? "add-identity, kill -9 at $point: the agent dies there"
	down
	up
	loads=$?
	ok $loads "  the keystore loads"
	if [ "$loads" -ne 0 ]; then
		tail -n 2 "$LOG" | diag
		down
		rm -rf "$KS/identities/crashed"
		up || bail "the keystore does not load even without identities/crashed"
	fi
	c --identity crashed remove --all >/dev/null 2>&1
done
c list --json | pairs >"$TMP/pairs"
[ "$(grep -c "^default https://old.example $K_OLD\$" "$TMP/pairs")" -eq 1 ]
ok $? "at the end the first binding still has its first key"
down

# In a sanitizer build, a report in the agents' log is a failure too.
grep -E 'ERROR: [A-Za-z]+Sanitizer|runtime error:|Sanitizer has encountered' "$LOG" >"$TMP/san"
ok $(( $(wc -l <"$TMP/san") != 0 )) "no sanitizer report in the agents' log"
diag <"$TMP/san"

metric signatures_under_unsaved_keys "$unsaved"
elapsed=$(( $(date +%s) - started ))
metric faults_runtime_seconds "$elapsed"
echo "# runtime ${elapsed}s; figures in $TSV"
done_testing
