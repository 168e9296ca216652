#!/bin/sh
# The keystore as a hostile file system, with a real agent:
#
#  1. a FIFO where a record belongs stops the start at once with a message
#     that names it (exit 78); a FIFO left as a temporary is unlinked;
#  2. a 2 GiB sparse leftover is unlinked, not filled with zeros: its block
#     count, read through a descriptor the test holds, does not change; a
#     small leftover of one link is still overwritten (the control, and how
#     removed keys are destroyed);
#  3. a file of the user's hard-linked into the keystore, as a leftover or as
#     agent.lock, keeps its bytes;
#  4. a snapshot taken with cp -al in the middle of a rotation keeps its
#     bytes through the commit, and restores: the agent starts on it with
#     the rotation pending and signs with the old key;
#  5. a keystore under a directory that another user can write, or that
#     another user owns, is refused before anything is created, with the fix
#     named (exit 78); the same path made safe, and a root-owned sticky
#     directory (like /tmp), are the controls. Under a user namespace that
#     maps only the user (systemd's PrivateUsers=), root's directories
#     appear as the overflow uid and are still accepted.
#
# Every start is given 10 s (a generous bound: the start itself takes
# milliseconds); what is checked is that it ends, and what it wrote. The
# measured figures go to $top_builddir/reliability/keystore-hostile.tsv.
# Prints TAP.
. "${top_srcdir:-.}/tests/lib.sh"

REL=$top_builddir/reliability
mkdir -p "$REL" || bail "cannot create $REL"
TSV=$REL/keystore-hostile.tsv
: >"$TSV"
metric() { printf '%s\t%s\n' "$1" "$2" >>"$TSV"; }

S=$TMP/a.sock
K=$TMP/ks
URL=https://hostile.example/mcp
LOG=$TMP/agent.log
m() { "$CLI" -a "$S" "$@"; }
ROOT=no
[ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null 2>&1 && ROOT=yes
settled=0   # hostile files after which the start did what it should
damaged=0   # other files whose bytes changed, or sparse files that grew
refused_unsafe=0
unsafe_cases=0

# try_start KEYSTORE [SOCKET]: a foreground agent, given 10 s to be ready or
# to exit. Sets started (yes/no), rc (its exit status when it exited), pid
# and secs (how long it took, whole seconds); its output is in $TMP/try.log.
try_start() {
	sock=${2:-$TMP/try.sock}
	t0=$(date +%s)
	"$AGENT" -D -a "$sock" --keystore "$1" >"$TMP/try.log" 2>&1 &
	pid=$!
	AGENT_PIDS="$AGENT_PIDS $pid"
	wait_for 10 sh -c "! kill -0 $pid || '$CLI' -a '$sock' status"
	secs=$(($(date +%s) - t0))
	if kill -0 "$pid" 2>/dev/null && "$CLI" -a "$sock" status >/dev/null 2>&1; then
		started=yes
		rc=
	elif kill -0 "$pid" 2>/dev/null; then
		started=hung
		rc=
		kill -KILL "$pid"
		wait "$pid" 2>/dev/null
	else
		started=no
		wait "$pid"
		rc=$?
	fi
	cat "$TMP/try.log" >>"$LOG"
}
stop_try() { [ "$started" = yes ] && stop_agent "$pid"; }
# refused DESCRIPTION REGEX: the last try_start exited 78 within 10 s, with a
# message that matches REGEX.
refused() {
	ok "$([ "$started" = no ] && [ "$rc" -eq 78 ] && echo 0 || echo 1)" \
		"$1: the agent refuses to start (${started}${rc:+, exit $rc}, ${secs} s)"
	grep -Eq -e "$2" "$TMP/try.log"
	ok $? "  saying so ($2)"
	diag <"$TMP/try.log"
}
blocks() { stat -L -c %b "$1"; }

start_agent "$S" "$K" || bail "the agent did not start"
m sign -u "$URL" >/dev/null || bail "no first contact"
m sign -u https://second.example/mcp >/dev/null || bail "no second binding"
stop_agent "$AGENT_PID"
BDIR=$K/identities/default/bindings
BFILE=$(find "$BDIR" -name '*.binding' | head -n 1)
[ -f "$BFILE" ] || bail "no binding file"

# ---- 1. FIFOs ------------------------------------------------------------------------

mv "$BFILE" "$TMP/aside"
mkfifo -m 0600 "$BFILE"
try_start "$K"
refused "a FIFO in place of a binding file" "$BFILE is a FIFO, not a regular file; move it aside"
[ "$started" = no ] && [ "$rc" -eq 78 ] && settled=$((settled + 1))
rm -f "$BFILE"
mv "$TMP/aside" "$BFILE"

mkfifo -m 0600 "$K/identities/default/identity.fifo-as-record"
mv "$K/identities/default/identity" "$TMP/aside"
mv "$K/identities/default/identity.fifo-as-record" "$K/identities/default/identity"
try_start "$K"
refused "a FIFO in place of an identity record" "identities/default/identity is a FIFO"
[ "$started" = no ] && [ "$rc" -eq 78 ] && settled=$((settled + 1))
rm -f "$K/identities/default/identity"
mv "$TMP/aside" "$K/identities/default/identity"

mkfifo -m 0600 "$BFILE.tmp"
try_start "$K"
ok "$([ "$started" = yes ] && [ ! -e "$BFILE.tmp" ] && echo 0 || echo 1)" \
	"a FIFO left as a temporary is unlinked and the agent starts ($started, $secs s)"
grep -qF -e "$BFILE.tmp was a FIFO" "$TMP/try.log"
r=$?
ok $r "  saying what it was"
[ "$started" = yes ] && [ "$r" -eq 0 ] && settled=$((settled + 1))
stop_try

# ---- 2. a huge sparse leftover ----------------------------------------------------------

OLD=$BFILE.old
truncate -s 2G "$OLD" || bail "cannot make a sparse file"
exec 7<"$OLD"
b0=$(blocks /proc/$$/fd/7)
try_start "$K"
b1=$(blocks /proc/$$/fd/7)
exec 7<&-
ok "$([ "$started" = yes ] && [ ! -e "$OLD" ] && echo 0 || echo 1)" \
	"a 2 GiB sparse leftover: the agent starts and unlinks it ($started, $secs s)"
ok "$([ "$b1" = "$b0" ] && echo 0 || echo 1)" "  without writing into it ($b0 blocks before, $b1 after)"
[ "$b1" = "$b0" ] || damaged=$((damaged + 1))
grep -qF -e "$OLD (2147483648 bytes) is larger than any file the agent writes" "$TMP/try.log"
ok $? "  saying why it was not overwritten"
[ "$started" = yes ] && [ "$b1" = "$b0" ] && settled=$((settled + 1))
stop_try
# The control: a leftover of one link, of a record's size, is still overwritten.
head -c 1000 /dev/urandom >"$OLD"
exec 8<"$OLD"
try_start "$K"
zeros=$(od -An -v -tx1 /proc/$$/fd/8 | tr -s ' \n' '\n\n' | grep -c '^00$')
exec 8<&-
ok "$([ "$started" = yes ] && [ ! -e "$OLD" ] && [ "$zeros" -eq 1000 ] && echo 0 || echo 1)" \
	"control: a 1000-byte leftover of one link is overwritten with zeros and unlinked ($zeros zero bytes)"
stop_try

# ---- 3. hard links to a file of the user's ------------------------------------------

printf 'notes the user keeps\n' >"$TMP/user.txt"
cp "$TMP/user.txt" "$TMP/user.ref"
ln "$TMP/user.txt" "$BFILE.tmp"
try_start "$K"
cmp -s "$TMP/user.txt" "$TMP/user.ref"
r=$?
ok "$([ "$started" = yes ] && [ "$r" -eq 0 ] && [ ! -e "$BFILE.tmp" ] && echo 0 || echo 1)" \
	"a user's file hard-linked into bindings/ as a leftover: unlinked, its bytes kept ($started)"
[ "$r" -eq 0 ] || damaged=$((damaged + 1))
grep -qF -e "$BFILE.tmp has other hard links" "$TMP/try.log"
ok $? "  and the agent says the other link still holds them"
[ "$started" = yes ] && [ "$r" -eq 0 ] && settled=$((settled + 1))
stop_try

rm -f "$K/agent.lock"
ln "$TMP/user.txt" "$K/agent.lock"
try_start "$K"
cmp -s "$TMP/user.txt" "$TMP/user.ref"
r=$?
ok "$([ "$started" = yes ] && [ "$r" -eq 0 ] && echo 0 || echo 1)" \
	"a user's file hard-linked as agent.lock: the agent starts and writes nothing into it ($started)"
[ "$r" -eq 0 ] || damaged=$((damaged + 1))
ok "$([ "$(stat -c %h "$K/agent.lock")" = 1 ] && [ "$(stat -c %i "$K/agent.lock")" != "$(stat -c %i "$TMP/user.txt")" ] &&
	echo 0 || echo 1)" "  agent.lock is a file of its own now"
grep -qF -e "$K/agent.lock had 2 hard links" "$TMP/try.log"
ok $? "  and the agent says so"
[ "$started" = yes ] && [ "$r" -eq 0 ] && settled=$((settled + 1))
stop_try

rm -f "$K/agent.lock"
mkfifo -m 0600 "$K/agent.lock"
try_start "$K"
refused "a FIFO as agent.lock" "$K/agent.lock is a FIFO, not a regular file; remove it"
[ "$started" = no ] && [ "$rc" -eq 78 ] && settled=$((settled + 1))
rm -f "$K/agent.lock"

# ---- 4. a snapshot taken with cp -al in the middle of a rotation ---------------------------

start_agent "$S" "$K" || bail "the agent did not start"
m rotate --begin --origin "$URL" --json >"$TMP/begin.json" || bail "rotate --begin failed"
K1=$(sed -n 's/.*"keyid": *"\([^"]*\)".*/\1/p' "$TMP/begin.json")
K2=$(sed -n 's/.*"pending_keyid": *"\([^"]*\)".*/\1/p' "$TMP/begin.json")
[ -n "$K1" ] && [ -n "$K2" ] || bail "no keyids from rotate --begin --json"
cp -al "$K" "$TMP/snap" || bail "cp -al failed"
cp -a "$TMP/snap" "$TMP/ref" || bail "cp -a failed"
m rotate --commit --origin "$URL" >/dev/null
ok $? "a rotation commits after a cp -al snapshot of the keystore"
m remove --origin https://second.example >/dev/null
ok $? "  and another binding is removed"
stop_agent "$AGENT_PID"
diff -r "$TMP/snap" "$TMP/ref" >"$TMP/diff" 2>&1
r=$?
ok $r "  the snapshot still holds every byte it had (diff -r against a copy made with it)"
[ "$r" -eq 0 ] || { damaged=$((damaged + 1)); diag <"$TMP/diff"; }
grep -q "\.binding\.old has other hard links" "$LOG" && grep -q "\.discard has other hard links" "$LOG"
ok $? "  and the agent said it left the replaced binding and the discarded pending key to the other links"
start_agent "$S" "$K"
[ "$(m rotate --status --origin "$URL" --json | sed -n 's/.*"keyid": *"\([^"]*\)".*/\1/p')" = "$K2" ]
ok $? "control: the live keystore has the new key active"
stop_agent "$AGENT_PID"
mv "$K" "$TMP/ks.after"
mv "$TMP/snap" "$K"
start_agent "$S" "$K"
ok $? "the snapshot, put back, loads"
m rotate --status --origin "$URL" --json >"$TMP/st.json"
grep -q "\"keyid\": *\"$K1\"" "$TMP/st.json" && grep -q "\"pending_keyid\": *\"$K2\"" "$TMP/st.json"
r=$?
ok $r "  with the rotation pending, both keys there"
m sign -u "$URL" | grep -q "keyid=\"$K1\""
r2=$?
ok $r2 "  and signs with the old key"
[ "$r" -eq 0 ] && [ "$r2" -eq 0 ] && metric snapshot_restored_mid_rotation 1 || metric snapshot_restored_mid_rotation 0
m remove --origin https://second.example >/dev/null
ok $? "  and it holds the binding the live keystore removed"
stop_agent "$AGENT_PID"

metric hostile_keystore_files_settled "$settled"
metric hostile_keystore_other_files_changed "$damaged"

# ---- 5. directories above the keystore ------------------------------------------------------

# unsafe DESCRIPTION DIR REGEX: a keystore under DIR is refused, nothing is
# created, and the message matches REGEX.
unsafe() {
	unsafe_cases=$((unsafe_cases + 1))
	try_start "$2/ks"
	refused "$1" "$3"
	[ ! -e "$2/ks" ]
	ok $? "  and nothing was created there"
	[ "$started" = no ] && [ "$rc" -eq 78 ] && [ ! -e "$2/ks" ] && refused_unsafe=$((refused_unsafe + 1))
}
# safe DESCRIPTION DIR: the control; a keystore under DIR starts.
safe() {
	try_start "$2/ks"
	ok "$([ "$started" = yes ] && echo 0 || echo 1)" "$1: the agent starts ($started${rc:+, exit $rc})"
	[ "$started" = yes ] || diag <"$TMP/try.log"
	stop_try
	rm -rf "$2/ks"
}
OPEN=$TMP/open
mkdir -m 0777 "$OPEN"
chmod 0777 "$OPEN"
if [ "$ROOT" = yes ]; then
	chown 65534:65534 "$OPEN"
	unsafe "under a directory of uid 65534, mode 0777" "$OPEN" \
		"$OPEN above it belongs to uid 65534, who could move the keystore away.*--keystore DIR"
	chmod 0755 "$OPEN"
	unsafe "under a directory of uid 65534, mode 0755" "$OPEN" "$OPEN above it belongs to uid 65534"
	chown 0:0 "$OPEN"
	chmod 0777 "$OPEN"
fi
unsafe "under a directory that every user can write (mode 0777, not sticky)" "$OPEN" \
	"$OPEN above it is writable by every user .*fix it with: chmod go-w $OPEN"
chmod 0775 "$OPEN"
unsafe "under a directory its group can write (mode 0775)" "$OPEN" "$OPEN above it is writable by its group"
ln -s "$OPEN" "$TMP/link"
chmod 0777 "$OPEN"
unsafe "through a symbolic link to such a directory" "$TMP/link" "$OPEN above it is writable by every user"
chmod 0755 "$OPEN"
safe "control: the same directory, mode 0755" "$OPEN"
safe "control: through the symbolic link to it, now safe" "$TMP/link"
if [ "$ROOT" = yes ]; then
	chmod 1777 "$OPEN"
	safe "control: a root-owned sticky directory, mode 1777 (like /tmp)" "$OPEN"
	chown 65534:65534 "$OPEN"
	unsafe "but a sticky directory of uid 65534 (its owner may still rename)" "$OPEN" "belongs to uid 65534"
fi
metric unsafe_keystore_ancestors_tried "$unsafe_cases"
metric unsafe_keystore_ancestors_accepted $((unsafe_cases - refused_unsafe))

# Under a user namespace that maps only the user, as the systemd unit runs it.
U=1000
if [ "$ROOT" = yes ] && command -v unshare >/dev/null 2>&1 &&
	setpriv --reuid=$U --regid=$U --clear-groups unshare -U --map-user=$U --map-group=$U true 2>/dev/null; then
	programs_for_other_uid || bail "cannot copy the programs for uid $U"
	UD=$TMP/u$U
	mkdir -m 0700 "$UD" && chown "$U:$U" "$UD"
	NS="setpriv --reuid=$U --regid=$U --clear-groups --inh-caps=-all unshare -U --map-user=$U --map-group=$U"
	owner=$($NS stat -c %u /)
	ok "$([ "$owner" = "$(cat /proc/sys/kernel/overflowuid)" ] && echo 0 || echo 1)" \
		"(inside the namespace, / belongs to the overflow uid $owner)"
	$NS "$AGENT" -D -a "$UD/a.sock" --keystore "$UD/ks" >"$TMP/ns.log" 2>&1 &
	npid=$!
	AGENT_PIDS="$AGENT_PIDS $npid"
	wait_for 10 setpriv --reuid=$U --regid=$U --clear-groups "$CLI" -a "$UD/a.sock" status
	ok $? "in a user namespace that maps only uid $U, root's directories above the keystore are accepted"
	diag <"$TMP/ns.log"
	stop_agent "$npid"
	mkdir -m 0777 "$UD/open" && chown 65534:65534 "$UD/open" && chmod 0777 "$UD/open"
	$NS "$AGENT" -D -a "$UD/b.sock" --keystore "$UD/open/ks" >"$TMP/ns2.log" 2>&1 &
	npid=$!
	AGENT_PIDS="$AGENT_PIDS $npid"
	wait_for 10 sh -c "! kill -0 $npid"
	if kill -0 "$npid" 2>/dev/null; then
		stop_agent "$npid"
		rc=started
	else
		wait "$npid"
		rc=$?
	fi
	ok "$([ "$rc" = 78 ] && grep -q -e "$UD/open above it is writable by every user" "$TMP/ns2.log" && echo 0 || echo 1)" \
		"  while a directory every user can write is still refused there (exit $rc)"
	diag <"$TMP/ns2.log"
else
	skip "no root, setpriv or unprivileged user namespaces: cannot run the agent as systemd's PrivateUsers= does"
fi

done_testing
