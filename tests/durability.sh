#!/bin/sh
# Invariant 1, shown by tracing system calls: for a new binding, the agent
# calls fsync(file), then rename, then fsync(directory) before it sends the
# first signature made with the new key. kill -9 cannot show a missing fsync
# (the page cache survives it), so the test reads an strace log instead. The
# checker is then fed the same log with each step removed or moved, and must
# reject every one, so it is known to be able to fail. Prints TAP.
. "${top_srcdir:-.}/tests/lib.sh"

STRACE=${STRACE:-strace}
command -v "$STRACE" >/dev/null 2>&1 || bail "strace is required (apt-get install strace)"
[ -x "$NODE" ] || bail "run npm ci in tests/node"
CHECK=$top_srcdir/tests/durability-check.mjs

S=$TMP/d.sock
"$STRACE" -f -o "$TMP/trace" -s 256 \
	-e trace=accept,accept4,openat,open,fsync,fdatasync,rename,renameat,renameat2,write,writev,sendmsg,sendto,read,close \
	"$AGENT" -D -a "$S" --keystore "$TMP/ks" >"$TMP/agent.log" 2>&1 &
AGENT_PIDS="$AGENT_PIDS $!"
wait_for 20 "$CLI" -a "$S" status || bail "the traced agent did not start"
"$CLI" -a "$S" sign -X POST -u https://durable.example/mcp -d '{}' >"$TMP/sig"
ok $? "the first request to a new origin is signed"
kill -TERM $AGENT_PIDS 2>/dev/null
for p in $AGENT_PIDS; do wait_for 10 sh -c "! kill -0 $p"; done

"$NODE" "$CHECK" "$TMP/trace" >"$TMP/out"
ok $? "fsync(file) < rename < fsync(dir) < the signed reply"
diag <"$TMP/out"

# Mutations of the real trace: each must be rejected.
fsfile=$(grep -n 'O_CREAT' "$TMP/trace" | grep '\.binding\.tmp' | head -1 | sed 's/.*= \([0-9]*\)$/\1/')
rn=$(grep -n 'rename.*\.binding")' "$TMP/trace" | head -1 | cut -d: -f1)
dirfd=$(sed -n "${rn}p" "$TMP/trace" | sed 's/.*rename[a-z0-9]*(\([0-9]*\),.*/\1/')
[ -n "$fsfile" ] && [ -n "$rn" ] && [ -n "$dirfd" ] || bail "cannot locate the steps in the trace"

awk -v fd="$fsfile" -v rn="$rn" 'NR < rn && $0 ~ "fsync\\(" fd "\\)" { next } { print }' "$TMP/trace" >"$TMP/m1"
"$NODE" "$CHECK" "$TMP/m1" >/dev/null
ok $(( $? == 0 )) "forgery: without fsync(file) the checker fails"

sed "${rn}d" "$TMP/trace" >"$TMP/m2"
"$NODE" "$CHECK" "$TMP/m2" >/dev/null
ok $(( $? == 0 )) "forgery: without the rename the checker fails"

awk -v fd="$dirfd" -v rn="$rn" 'NR > rn && !done && $0 ~ "fsync\\(" fd "\\)" { done = 1; next } { print }' "$TMP/trace" >"$TMP/m3"
"$NODE" "$CHECK" "$TMP/m3" >/dev/null
ok $(( $? == 0 )) "forgery: without fsync(dir) the checker fails"

# The signed reply moved to just before the directory fsync.
awk -v fd="$dirfd" -v rn="$rn" '
	{ line[NR] = $0 }
	NR > rn && !fs && $0 ~ "fsync\\(" fd "\\)" { fs = NR }
	/sig1=/ && !rp { rp = NR }
	END { for (i = 1; i <= NR; i++) { if (i == fs) print line[rp]; if (i != rp) print line[i] } }' "$TMP/trace" >"$TMP/m4"
"$NODE" "$CHECK" "$TMP/m4" >/dev/null
ok $(( $? == 0 )) "forgery: a reply sent before fsync(dir) fails the checker"

done_testing
