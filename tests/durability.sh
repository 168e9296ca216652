#!/bin/sh
# Invariant 1, shown by tracing system calls: for a new binding, the agent
# calls fsync(file), then rename, then fsync(directory) before it sends the
# first signature made with the new key. kill -9 cannot show a missing fsync
# (the page cache survives it), so the test reads an strace log instead. The
# same holds for a key rotation: the pending key k2 is durable before the
# first signature made with it, and the commit and abort records are durable
# before their replies. For every check the checker is then fed the same log
# with each step removed or moved, and must reject every one, so it is known
# to be able to fail. Prints TAP.
. "${top_srcdir:-.}/tests/lib.sh"

STRACE=${STRACE:-strace}
command -v "$STRACE" >/dev/null 2>&1 || bail "strace is required (apt-get install strace)"
[ -x "$NODE" ] || bail "run npm ci in tests/node"
CHECK=$top_srcdir/tests/durability-check.mjs
URL=https://durable.example/mcp
T=$TMP/trace

S=$TMP/d.sock
"$STRACE" -f -o "$T" -s 4096 \
	-e trace=accept,accept4,openat,open,fsync,fdatasync,rename,renameat,renameat2,unlink,unlinkat,write,writev,sendmsg,sendto,read,close \
	"$AGENT" -D -a "$S" --keystore "$TMP/ks" >"$TMP/agent.log" 2>&1 &
STRACE_PID=$!
AGENT_PIDS="$AGENT_PIDS $STRACE_PID"
wait_for 20 "$CLI" -a "$S" status || bail "the traced agent did not start"
# The agent itself, not strace, must be stopped: strace detaches on SIGTERM
# and would leave the agent running.
TRACED=$(sed -n 's/^MCPSIG_AGENT_PID=\([0-9]*\);.*/\1/p' "$TMP/agent.log")
[ -n "$TRACED" ] || bail "no MCPSIG_AGENT_PID in the agent's output"
AGENT_PIDS="$AGENT_PIDS $TRACED"
"$CLI" -a "$S" sign -X POST -u "$URL" -d '{}' >"$TMP/sig"
ok $? "the first request to a new origin is signed"

# A rotation: begin (k2), a signature with k2, commit; then begin (k3), abort.
"$CLI" -a "$S" rotate --begin --origin "$URL" --json >"$TMP/begin"
ok $? "rotate --begin"
K1=$(sed -n 's/.*"keyid": *"\([^"]*\)".*/\1/p' "$TMP/begin")
K2=$(sed -n 's/.*"pending_keyid": *"\([^"]*\)".*/\1/p' "$TMP/begin")
[ -n "$K1" ] && [ -n "$K2" ] || bail "no keyid and pending_keyid from rotate --begin --json"
"$CLI" -a "$S" sign --key pending -X POST -u "$URL" -d '{}' >"$TMP/sig2"
grep -q "keyid=\"$K2\"" "$TMP/sig2"
ok $? "sign --key pending signs with k2"
check "rotate --commit" "$CLI" -a "$S" rotate --commit --origin "$URL"
check "rotate --begin again" "$CLI" -a "$S" rotate --begin --origin "$URL"
check "rotate --abort" "$CLI" -a "$S" rotate --abort --origin "$URL"

kill -TERM "$TRACED"
wait_for 10 sh -c "! kill -0 $STRACE_PID" || bail "the traced agent did not stop"

# Each check locates the steps in the trace itself, independently of the
# checker, then feeds it the log with each step removed or moved.

# locate SUFFIX N: rn, the line of the Nth rename to *SUFFIX; dirfd; op and
# ffd, the O_CREAT open of the renamed temporary and its fd (empty if none).
locate() {
	rn=$(grep -nE "^[0-9]+ +rename[a-z0-9]*\(.*\"[^\"]*\\$1\"(, [A-Z_|]+)?\) += 0$" "$T" | sed -n "$2p" | cut -d: -f1)
	[ -n "$rn" ] || bail "no rename #$2 to *$1 in the trace"
	line=$(sed -n "${rn}p" "$T")
	dirfd=$(printf '%s\n' "$line" | sed 's/^[0-9]* *rename[a-z0-9]*(\([0-9]*\),.*/\1/')
	src=$(printf '%s\n' "$line" | sed 's/^[^"]*"\([^"]*\)".*/\1/')
	of=$(awk -v rn="$rn" -v name="\"$src\"" \
		'NR < rn && /openat\(/ && /O_CREAT/ && index($0, name) { op = NR; fd = $NF } END { print op " " fd }' "$T")
	op=${of% *}
	ffd=${of#* }
}

# reply_line FROM [TEXT [TEXT]]: the first write on a client socket (an fd
# from accept, not yet closed) after line FROM that contains each TEXT.
reply_line() {
	awk -v from="$1" -v m1="${2:-}" -v m2="${3:-}" '
	{ c = $0; sub(/^[0-9]+ +/, "", c); fd = c; sub(/^[a-z0-9]+\(/, "", fd); sub(/[,)].*/, "", fd) }
	c ~ /^accept4?\(/ { a = c; sub(/.*= /, "", a); if (a ~ /^[0-9]+$/) client[a] = 1 }
	c ~ /^close\(/ { delete client[fd] }
	NR > from && c ~ /^(write|writev|sendmsg|sendto)\(/ && (fd in client) &&
	    (m1 == "" || index(c, m1)) && (m2 == "" || index(c, m2)) { print NR; exit }' "$T"
}

# reject DESCRIPTION CHECKER-OPTIONS...: the mutated trace $TMP/m must fail
# the checker; its reason is shown.
reject() {
	desc=$1
	shift
	"$NODE" "$CHECK" "$@" "$TMP/m" >"$TMP/out"
	ok $(($? == 0)) "forgery${label:+ ($label)}: $desc"
	diag <"$TMP/out"
}

# forgeries LABEL CHECKER-OPTIONS...: with rn, dirfd, op, ffd and rp (the
# reply's line) set, each step removed or moved must fail the checker.
forgeries() {
	label=$1
	shift
	if [ -n "$op" ]; then
		awk -v a="$op" -v b="$rn" -v fd="$ffd" 'NR > a && NR < b && $0 ~ "fsync\\(" fd "\\)" { next } { print }' "$T" >"$TMP/m"
		reject "without fsync(file) the checker fails" "$@"
	fi
	sed "${rn}d" "$T" >"$TMP/m"
	reject "without the rename the checker fails" "$@"
	# Every fsync(dir) between the rename and the close of that fd.
	awk -v rn="$rn" -v fd="$dirfd" '
	NR > rn && !shut { if ($0 ~ "close\\(" fd "\\)") shut = 1; else if ($0 ~ "fsync\\(" fd "\\)") next }
	{ print }' "$T" >"$TMP/m"
	reject "without fsync(dir) the checker fails" "$@"
	# The reply moved to just before the directory fsync.
	awk -v fd="$dirfd" -v rn="$rn" -v rp="$rp" '
	{ line[NR] = $0 }
	NR > rn && !fs && $0 ~ "fsync\\(" fd "\\)" { fs = NR }
	END { for (i = 1; i <= NR; i++) { if (i == fs) print line[rp]; if (i != rp) print line[i] } }' "$T" >"$TMP/m"
	reject "a reply sent before fsync(dir) fails the checker" "$@"
}

# check_durable DESCRIPTION CHECKER-OPTIONS...: the real trace passes.
check_durable() {
	desc=$1
	shift
	"$NODE" "$CHECK" "$@" "$T" >"$TMP/out"
	ok $? "$desc"
	diag <"$TMP/out"
}

# The first binding: its temporary, rename and directory before the first signature.
check_durable "fsync(file) < rename < fsync(dir) < the signed reply"
locate .binding 1
rp=$(reply_line 0 'sig1=')
[ -n "$op" ] && [ -n "$rp" ] || bail "cannot locate the steps in the trace"
forgeries ""

# k2, the pending key: durable before the first signature made with it.
set -- --rename .pending --has 'sig1=' --has "$K2"
check_durable "k2: fsync(file) < rename(.pending) < fsync(dir) < the first reply signed with k2" "$@"
locate .pending 1
rp=$(reply_line 0 'sig1=' "$K2")
[ -n "$op" ] && [ -n "$rp" ] || bail "cannot locate the k2 steps in the trace"
forgeries k2 "$@"

# commit: the rewritten binding (the second .binding rename) before the reply.
set -- --rename .binding --nth 2 --conn
check_durable "commit: fsync(file) < rename(.binding) < fsync(dir) < the commit reply" "$@"
locate .binding 2
rp=$(reply_line "$rn")
[ -n "$op" ] && [ -n "$rp" ] || bail "cannot locate the commit steps in the trace"
sed -n "${rp}p" "$T" | grep -q "state.*active.*retired.*$K1"
ok $? "the commit reply is the active binding with k1 retired"
forgeries commit "$@"

# abort: the pending key moved to .discard (the second such rename) before the reply.
set -- --rename .discard --nth 2 --no-tmp --conn
check_durable "abort: rename(.pending -> .discard) < fsync(dir) < the abort reply" "$@"
locate .discard 2
rp=$(reply_line "$rn")
[ -z "$op" ] && [ -n "$rp" ] || bail "cannot locate the abort steps in the trace"
forgeries abort "$@"

done_testing
