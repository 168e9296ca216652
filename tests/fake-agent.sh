#!/bin/sh
# Hostile neighbours: a fake agent owned by another uid must learn nothing.
#
# Without XDG_RUNTIME_DIR and /run/user/UID, clients look for the agent at
# ${TMPDIR:-/tmp}/mcpsig-UID/agent.sock, a name any user can take first.
# Here uid 65534 takes it, in a shared sticky directory standing in for
# /tmp, and runs tests/fake-listener there, which logs every byte it is sent
# and every connection. Then, as the test's own uid:
#
#  1. every mcpsig command that talks to the agent, by the default path, by
#     -a and by MCPSIG_AUTH_SOCK, a libmcpsig host (examples/c/sign-request
#     and tests/list-pages) and the Node package (tests/fake-agent-host.mjs:
#     AgentClient and signingFetch) refuse it, naming the path, its owner
#     and the fix, and the fake's log stays empty: not a byte, not even a
#     connection (the directory check comes before connect());
#  2. the same fake behind a directory that passes (root's, 0700), with its
#     socket moved in: libmcpsig and mcpsig refuse it by SO_PEERCRED after
#     connecting and before sending; the Node package by the socket file's
#     owner;
#  3. mcpsig-agent, detached, makes a private directory instead of the
#     taken one and publishes it in MCPSIG_AUTH_SOCK, through which every
#     client reaches it; in the foreground it still refuses to start;
#  4. the controls, so that each check above can fail: the same fake run as
#     the test's own uid at the fallback path is talked to by every client
#     (its log fills with their requests), and a directory of the user's with
#     mode 0777, or a sticky shared one, is refused.
#
# Needs root (to run the fake as another uid) and setpriv. Prints TAP.

# The default path rule prefers /run/user/UID when it exists: hide it in a
# private mount namespace, so that the rule falls through to the fixed path.
if [ -z "${MCPSIG_FAKE_NS:-}" ] && [ "$(id -u)" -eq 0 ] && [ -d "/run/user/$(id -u)" ] &&
	command -v unshare >/dev/null 2>&1; then
	MCPSIG_FAKE_NS=1
	export MCPSIG_FAKE_NS
	exec unshare -m --propagation private /bin/sh -c \
		'mount -t tmpfs -o mode=0755 mcpsig-fake /run/user && exec /bin/sh "$0"' "$0"
fi

. "${top_srcdir:-.}/tests/lib.sh"

if [ "$(id -u)" -ne 0 ] || ! command -v setpriv >/dev/null 2>&1; then
	echo "1..0 # SKIP needs root and setpriv: the fake agent runs as another uid"
	exit 0
fi
[ -d "/run/user/$(id -u)" ] && bail "/run/user/$(id -u) exists and could not be hidden (no unshare?)"
[ -x "$NODE" ] || bail "no Node at $NODE: run npm ci in tests/node"
[ -f "$top_srcdir/bindings/node/node_modules/@msgpack/msgpack/package.json" ] ||
	bail "run npm ci in bindings/node"

ME=$(id -u)
U=65534
AS_U="setpriv --reuid=$U --regid=$U --clear-groups --inh-caps=-all"
programs_for_other_uid fake-listener || bail "cannot copy the programs for uid $U"
FAKE=$TMP/bin/fake-listener
EXAMPLE=$top_builddir/examples/c/sign-request
LISTP=$top_builddir/tests/list-pages
BINDING=$(cd "$top_srcdir/bindings/node" && pwd)
HOST=$(cd "$top_srcdir/tests" && pwd)/fake-agent-host.mjs

# A shared temporary directory, as /tmp is: anyone may create names in it.
SHARED=$TMP/tmp
mkdir -m 1777 "$SHARED" || bail "cannot make $SHARED"
FIXED=$SHARED/mcpsig-$ME/agent.sock
# The fakes' logs, in a directory uid 65534 may write.
FL=$TMP/fakelog
mkdir -m 0755 "$FL" && chown "$U" "$FL" || bail "cannot make $FL"

# Every client runs as a user with no XDG_RUNTIME_DIR and TMPDIR=$SHARED.
c() { env -u XDG_RUNTIME_DIR -u MCPSIG_AUTH_SOCK TMPDIR="$SHARED" "$@"; }

# fake NAME SOCKET [as-other]: starts a fake listener; its logs are $FL/NAME.bytes and $FL/NAME.conns.
fake() {
	if [ "${3:-}" = as-other ]; then
		$AS_U "$FAKE" "$2" "$FL/$1.bytes" "$FL/$1.conns" >"$TMP/$1.out" 2>&1 &
	else
		"$FAKE" "$2" "$FL/$1.bytes" "$FL/$1.conns" >"$TMP/$1.out" 2>&1 &
	fi
	FAKE_PID=$!
	AGENT_PIDS="$AGENT_PIDS $FAKE_PID"
	wait_for 10 grep -q listening "$TMP/$1.out" || bail "the fake $1 did not start: $(cat "$TMP/$1.out")"
}
size() { stat -c %s "$1" 2>/dev/null || echo missing; }
conns() { wc -l <"$1" 2>/dev/null | tr -d ' '; }
# What a fake received, as text, to look for method names and secrets.
received() { tr -c '[:print:]' '.' <"$FL/$1.bytes"; }

SEED=$TMP/seed
head -c 32 /dev/urandom >"$SEED"
printf '{"kty":"OKP","crv":"Ed25519","d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"}' >"$TMP/k.jwk"
chmod 0600 "$SEED" "$TMP/k.jwk"
O=https://fake.example
# Every command that talks to the agent, each with something worth stealing.
COMMANDS="status
status --json
list
list --json
sign -u $O/mcp
sign -X POST -u $O/mcp -H Authorization:Bearer_cli-secret-token -d {"secret":"cli-body"}
dpop -X POST -u $O/mcp --origin $O --token cli-access-token --nonce n0nce
import --origin https://imported.example --seed $SEED
import --origin https://imported-jwk.example --jwk $TMP/k.jwk
jwk --origin $O
add-identity work
remove --origin $O
--identity work remove --all
rotate --status --origin $O
rotate --begin --origin $O
rotate --commit --origin $O
rotate --abort --origin $O
rotate $O/mcp
rotate --resume $O/mcp
watch --count 1"
NCMD=$(printf '%s\n' "$COMMANDS" | wc -l)

# refused_by_cli LABEL PATTERN PREFIX: each command, run as PREFIX COMMAND,
# exits 2 with "cannot reach the agent" and a message matching PATTERN, and
# prints nothing on stdout. (No word of PREFIX or of a command holds a space.)
refused_by_cli() {
	label=$1
	pattern=$2
	prefix=$3
	bad=0
	: >"$TMP/cli.err"
	set -f
	while IFS= read -r cmd; do
		# shellcheck disable=SC2086
		$prefix $cmd >"$TMP/cmd.out" 2>"$TMP/cmd.err" </dev/null
		rc=$?
		if [ "$rc" -ne 2 ] || ! grep -q "^mcpsig: cannot reach the agent: " "$TMP/cmd.err" ||
			! grep -Eq -e "$pattern" "$TMP/cmd.err" || [ -s "$TMP/cmd.out" ]; then
			bad=$((bad + 1))
			{
				echo "mcpsig $cmd: exit $rc"
				cat "$TMP/cmd.out" "$TMP/cmd.err"
			} >>"$TMP/cli.err"
		fi
	done <<EOF
$COMMANDS
EOF
	set +f
	ok "$bad" "$label: all $NCMD mcpsig commands refuse it (exit 2, cannot reach the agent, /$pattern/)"
	[ "$bad" -eq 0 ] || diag <"$TMP/cli.err"
}

# node_host LABEL PATTERN [SOCKET]: all 9 Node calls fail with EPEER, messages matching PATTERN.
node_host() {
	c "$NODE" "$HOST" "$BINDING" ${3:+"$3"} >"$TMP/node.out" 2>&1
	n=$(grep -c . "$TMP/node.out")
	bad=$(grep -v -E "^[A-Za-z.]+ EPEER cannot reach mcpsig-agent: .*$2" "$TMP/node.out" | grep -c .)
	ok "$([ "$n" -eq 9 ] && [ "$bad" -eq 0 ] && echo 0 || echo 1)" \
		"$1: the Node package refuses it in all $n calls (EPEER, /$2/)"
	[ "$bad" -eq 0 ] && [ "$n" -eq 9 ] || diag <"$TMP/node.out"
}

# nothing_received NAME LABEL: the fake NAME got no byte and no connection.
nothing_received() {
	b=$(size "$FL/$1.bytes")
	n=$(conns "$FL/$1.conns")
	ok "$([ "$b" = 0 ] && [ "$n" = 0 ] && echo 0 || echo 1)" "$2: the fake's log is empty ($b bytes, $n connections)"
	[ "$b" = 0 ] || received "$1" | head -c 2000 | diag
}

# ---- 1. a fake of uid 65534 at the fixed fallback path ---------------------------------

fake hostile "$FIXED" as-other
HOSTILE_PID=$FAKE_PID
owner=$(stat -c %u "$(dirname "$FIXED")")
ok "$([ "$owner" = "$U" ] && [ -S "$FIXED" ] && echo 0 || echo 1)" \
	"uid $U listens at the fallback path $FIXED, in a directory it owns (uid $owner)"

# The message names the path, its owner and the fix.
c "$CLI" status >/dev/null 2>"$TMP/status.err"
rc=$?
diag <"$TMP/status.err"
ok "$([ "$rc" -eq 2 ] && echo 0 || echo 1)" "mcpsig status by the default path: exit 2 (got $rc)"
grep -qF -e "$FIXED" "$TMP/status.err" && grep -q "owned by uid $U, not by you (uid $ME)" "$TMP/status.err"
ok $? "  the message names the socket $FIXED and its owner, uid $U"
grep -qF "Remove the directory $(dirname "$FIXED"), owned by uid $U" "$TMP/status.err" &&
	grep -qF "set MCPSIG_AUTH_SOCK to your own agent's socket; eval \"\$(mcpsig-agent)\" starts one in a private directory" \
		"$TMP/status.err"
ok $? "  and the fix: remove that directory, or set MCPSIG_AUTH_SOCK, or eval \"\$(mcpsig-agent)\""

PAT="$FIXED is in .*, owned by uid $U, not by you"
refused_by_cli "the default path" "$PAT" "c $CLI"
refused_by_cli "-a $FIXED" "$PAT" "c $CLI -a $FIXED"
refused_by_cli "MCPSIG_AUTH_SOCK=$FIXED" "$PAT" "env -u XDG_RUNTIME_DIR TMPDIR=$SHARED MCPSIG_AUTH_SOCK=$FIXED $CLI"

c "$EXAMPLE" "$O/mcp" >"$TMP/ex.out" 2>"$TMP/ex.err"
rc=$?
ok "$([ "$rc" -eq 2 ] && [ ! -s "$TMP/ex.out" ] && grep -q "the socket is not the agent of this user" "$TMP/ex.err" &&
	echo 0 || echo 1)" "a libmcpsig host (examples/c/sign-request, default path) refuses it: MCPSIG_EPEER (exit $rc)"
diag <"$TMP/ex.err"
c "$LISTP" make "$FIXED" 3 host >"$TMP/lp.out" 2>"$TMP/lp.err"
rc=$?
ok "$([ "$rc" -eq 2 ] && grep -Eq -e "$PAT" "$TMP/lp.err" && echo 0 || echo 1)" \
	"a libmcpsig host (tests/list-pages) refuses it, with mcpsig_connect_explain's message (exit $rc)"
node_host "the default path" "$PAT"
node_host "socketPath $FIXED" "$PAT" "$FIXED"
nothing_received hostile "after $((3 * NCMD)) mcpsig commands, 2 C hosts and 18 Node calls"

# ---- 2. a directory that passes, a listener that does not ------------------------------

# The fake's socket, moved into root's own 0700 directory: only the
# listener's uid (SO_PEERCRED) gives it away.
mkdir -m 0700 "$FL/p" && chown "$U" "$FL/p"
fake peer "$FL/p/agent.sock" as-other
PEER_PID=$FAKE_PID
R=$TMP/rootdir
mkdir -m 0700 "$R"
mv "$FL/p/agent.sock" "$R/agent.sock"
PPAT="listening on $R/agent.sock runs as uid $U, not as you \(uid $ME\) or root"
refused_by_cli "uid $U listening behind root's 0700 directory" "$PPAT" "c $CLI -a $R/agent.sock"
c "$LISTP" make "$R/agent.sock" 3 host >"$TMP/lp.out" 2>"$TMP/lp.err"
rc=$?
ok "$([ "$rc" -eq 2 ] && grep -Eq -e "$PPAT" "$TMP/lp.err" && echo 0 || echo 1)" \
	"  a libmcpsig host refuses it by SO_PEERCRED (exit $rc)"
diag <"$TMP/lp.err"
node_host "  the socket file owned by uid $U" "$R/agent.sock is a socket owned by uid $U" "$R/agent.sock"
b=$(size "$FL/peer.bytes")
n=$(conns "$FL/peer.conns")
# The C clients do connect (the directory passes) and hang up before sending.
ok "$([ "$b" = 0 ] && [ "$n" -ge "$NCMD" ] && echo 0 || echo 1)" \
	"  the fake was connected to $n times and received $b bytes: the uid is read before the first byte"
# What the Node package cannot see: a socket file of root's, another uid's listener.
chown 0 "$R/agent.sock"
c "$CLI" -a "$R/agent.sock" sign -u "$O/mcp" >/dev/null 2>"$TMP/root-owned.err"
rc=$?
ok "$([ "$rc" -eq 2 ] && grep -Eq -e "$PPAT" "$TMP/root-owned.err" && [ "$(size "$FL/peer.bytes")" = 0 ] &&
	echo 0 || echo 1)" "  with the socket file made root's, mcpsig still refuses the uid $U listener (exit $rc)"
c "$NODE" "$HOST" "$BINDING" "$R/agent.sock" >"$TMP/node-weak.out" 2>&1
echo "# the weaker Node check (bindings/node/README.md): with the socket file made root's," \
	"$(grep -vc EPEER "$TMP/node-weak.out") of 9 Node calls got past it; the listener received" \
	"$(size "$FL/peer.bytes") bytes"
kill -KILL "$PEER_PID" 2>/dev/null

# ---- 3. the agent: a private directory instead of the taken one -----------------------

c "$AGENT" -D --keystore "$TMP/ks-fg" >"$TMP/fg.out" 2>&1 &
p=$!
AGENT_PIDS="$AGENT_PIDS $p"
wait_for 10 sh -c "! kill -0 $p 2>/dev/null"
ok $? "mcpsig-agent -D at the taken fixed path refuses to start"
grep -q "belongs to uid $U" "$TMP/fg.out"
ok $? "  naming the directory's owner"
diag <"$TMP/fg.out"
c "$AGENT" --keystore "$TMP/ks" >"$TMP/env.out" 2>"$TMP/env.err"
ok $? "mcpsig-agent, detached, starts all the same"
diag <"$TMP/env.err"
PRIV=$(sed -n 's/^MCPSIG_AUTH_SOCK=\([^;]*\);.*/\1/p' "$TMP/env.out")
APID=$(sed -n 's/^MCPSIG_AGENT_PID=\([0-9]*\);.*/\1/p' "$TMP/env.out")
[ -n "$APID" ] && AGENT_PIDS="$AGENT_PIDS $APID"
case $PRIV in
"$SHARED"/mcpsig.??????/agent.sock) r=0 ;;
*) r=1 ;;
esac
ok $r "  in a private directory it publishes in MCPSIG_AUTH_SOCK ($PRIV)"
PD=$(dirname "$PRIV")
ok "$([ "$(stat -c '%u %a' "$PD" 2>/dev/null)" = "$ME 700" ] && echo 0 || echo 1)" \
	"  a directory of the user's, mode 0700 ($(stat -c 'uid %u, mode %a' "$PD" 2>&1))"
grep -q "is not this user's (owned by uid $U" "$TMP/env.err"
ok $? "  and it says why on stderr"
ac() { env -u XDG_RUNTIME_DIR TMPDIR="$SHARED" MCPSIG_AUTH_SOCK="$PRIV" "$@"; }
ac "$CLI" sign -u "$O/mcp" >"$TMP/priv.out" 2>&1 && ac "$CLI" status >>"$TMP/priv.out" 2>&1 &&
	ac "$EXAMPLE" "$O/mcp" >>"$TMP/priv.out" 2>&1
ok $? "  mcpsig and a libmcpsig host reach it through MCPSIG_AUTH_SOCK"
ac "$NODE" "$HOST" "$BINDING" >"$TMP/node-priv.out" 2>&1
n=$(grep -c ' ok$' "$TMP/node-priv.out")
ok $(( n != 9 )) "  and so does the Node package ($n of 9 calls)"
[ "$n" -eq 9 ] || diag <"$TMP/node-priv.out"
nothing_received hostile "  and the fake still at the fixed path"
env MCPSIG_AGENT_PID="$APID" "$AGENT" -k >/dev/null 2>&1

# ---- 4. controls ------------------------------------------------------------------------

# The same fake, run as the test's own uid at the same fixed path: every
# client talks to it, and its log fills with their requests.
kill -KILL "$HOSTILE_PID" 2>/dev/null
wait "$HOSTILE_PID" 2>/dev/null
rm -rf "$(dirname "$FIXED")"
fake own "$FIXED"
OWN_PID=$FAKE_PID
c "$CLI" sign -X POST -u "$O/mcp" -H "Authorization: Bearer cli-secret-token" -d '{"secret":"cli-body"}' >/dev/null 2>&1
received own | grep -q "sign.http.*cli-secret-token.*cli-body"
ok $? "control: the fake run as uid $ME at $FIXED receives mcpsig sign's request, token and body"
c "$CLI" import --origin https://imported.example --seed "$SEED" >/dev/null 2>&1
received own | grep -q "identity.import"
ok $? "control: and mcpsig import's request (with the seed)"
before=$(size "$FL/own.bytes")
c "$EXAMPLE" "$O/mcp" >/dev/null 2>&1
after=$(size "$FL/own.bytes")
ok $(( after <= before )) "control: and a libmcpsig host's sign.http ($before -> $after bytes)"
c "$NODE" "$HOST" "$BINDING" >"$TMP/node-own.out" 2>&1
received own | grep -q "node-secret-token" && received own | grep -q "node-access-token" &&
	received own | grep -qF '{"fetch":1}'
ok $? "control: and the Node package's calls (signHttp's token, dpopProof's token, signingFetch's body)"
grep -q EPEER "$TMP/node-own.out"
ok $(( $? == 0 )) "control: no Node call was refused with EPEER"
kill -KILL "$OWN_PID" 2>/dev/null

# A directory of the user's own that anyone may write.
L=$TMP/loose
mkdir "$L"
chmod 0777 "$L"
fake loose "$L/agent.sock"
LOOSE_PID=$FAKE_PID
LPAT="$L/agent.sock is in $L \(owned by you, uid $ME\), which group or others may write \(mode 0777\).*chmod 700 $L"
refused_by_cli "control: the user's own fake in a 0777 directory" "$LPAT" "c $CLI -a $L/agent.sock"
node_host "control: the user's own fake in a 0777 directory" "mode 0777" "$L/agent.sock"
nothing_received loose "control: the 0777 directory"
kill -KILL "$LOOSE_PID" 2>/dev/null
# A shared sticky directory, as /tmp itself, is no private directory either.
fake sticky "$SHARED/agent.sock"
STICKY_PID=$FAKE_PID
c "$CLI" -a "$SHARED/agent.sock" status >/dev/null 2>"$TMP/sticky.err"
rc=$?
ok "$([ "$rc" -eq 2 ] && grep -q "mode 1777" "$TMP/sticky.err" && [ "$(size "$FL/sticky.bytes")" = 0 ] &&
	echo 0 || echo 1)" "control: a socket directly in a sticky shared directory (mode 1777) is refused (exit $rc)"
kill -KILL "$STICKY_PID" 2>/dev/null

done_testing
