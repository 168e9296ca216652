#!/bin/sh
# A binding's history never blocks loading, with a real agent. After 150
# rotations through the agent its file lists the newest 100 retired keyids;
# that file is then forged to the size of 100,000 rotations (4.5 MB, as an
# agent before the cap would have left it; 5,810 passed the 256 KiB record
# limit and made every later start fail). The agent must start on it, warn
# naming the file, keep the binding's tag, key and newest keyids, sign,
# reload on SIGHUP and sign, restart and sign; its next rotation writes the
# file short again. As a control, a record that is as large for another
# reason than its history is still refused, by name. The 10,000 rotations
# themselves are in tests/test-history.c. Prints TAP; the measured figures
# go to $top_builddir/reliability/history.tsv.
. "${top_srcdir:-.}/tests/lib.sh"

FORGE=$top_builddir/tests/history-forge
[ -x "$FORGE" ] || bail "$FORGE is not built"
[ -x "$NODE" ] || bail "run npm ci in tests/node"
REL=$top_builddir/reliability
mkdir -p "$REL" || bail "cannot create $REL"
TSV=$REL/history.tsv
: >"$TSV"
metric() { printf '%s\t%s\n' "$1" "$2" >>"$TSV"; }

S=$TMP/h.sock
K=$TMP/ks
URL=https://history.example/mcp
ORIGIN=https://history.example
ROTATIONS=150
FORGED=100000
LOG=$TMP/agent.log
m() { "$CLI" -a "$S" "$@"; }
# field FILE EXPR: a value from the binding of ORIGIN in a `mcpsig list --json` file.
field() {
	"$NODE" -e 'const l=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8"));
		const b=l.find((x)=>x.origin===process.argv[2]);const v=b&&(0,eval)("(b)=>("+process.argv[3]+")")(b);
		process.stdout.write(v===undefined||v===null?"":String(v))' "$1" "$ORIGIN" "$2"
}
# signs KEYID TAG: a signature from the agent, made with KEYID under TAG.
signs() {
	m sign -u "$URL" >"$TMP/sig" 2>"$TMP/sig.err" && grep -q "keyid=\"$1\"" "$TMP/sig" && grep -q "tag=\"$2\"" "$TMP/sig"
}
warnings() { grep -c "over the 256 KiB limit" "$LOG"; }

start_agent "$S" "$K" || bail "the agent did not start"
m sign -u "$URL" >/dev/null
ok $? "first contact makes the binding"
i=0
fails=0
while [ "$i" -lt "$ROTATIONS" ]; do
	{ m rotate --begin --origin "$URL" && m rotate --commit --origin "$URL"; } >/dev/null 2>>"$TMP/rot.err" ||
		fails=$((fails + 1))
	i=$((i + 1))
done
ok "$fails" "$ROTATIONS rotations through the agent ($fails failed)"
m list --json >"$TMP/l0.json"
TAG=$(field "$TMP/l0.json" b.tag)
KEY=$(field "$TMP/l0.json" b.keyid)
NEWEST=$(field "$TMP/l0.json" 'b.retired.join(",")')
ok "$([ "$(field "$TMP/l0.json" b.retired.length)" = 100 ] && echo 0 || echo 1)" \
	"mcpsig list --json shows the newest 100 retired keyids (of $ROTATIONS)"
stop_agent "$AGENT_PID" || bail "the agent did not stop"

BFILE=$(find "$K/identities/default/bindings" -name '*.binding')
[ -f "$BFILE" ] || bail "no binding file"
before=$(wc -c <"$BFILE")
forged=$("$FORGE" "$BFILE" $((FORGED - 100)))
echo "# $BFILE: $before bytes after $ROTATIONS rotations, $forged bytes forged"
ok "$([ "$before" -lt 16384 ] && echo 0 || echo 1)" "the agent kept the file short ($before bytes)"
ok "$([ "${forged:-0}" -gt 262144 ] && echo 0 || echo 1)" \
	"the record forged to $FORGED retired keyids passes the 256 KiB limit ($forged bytes)"
cp -p "$BFILE" "$TMP/forged.binding"

signed_after=0
start_agent "$S" "$K"
ok $? "the agent starts on it"
wait_for 5 grep -q "over the 256 KiB limit" "$LOG"
ok $? "  and warns"
grep "over the 256 KiB limit" "$LOG" | grep -qF -e "$BFILE"
ok $? "  naming the file"
m list --json >"$TMP/l1.json"
[ "$(field "$TMP/l1.json" b.tag)" = "$TAG" ] && [ "$(field "$TMP/l1.json" b.keyid)" = "$KEY" ] &&
	[ "$(field "$TMP/l1.json" 'b.retired.join(",")')" = "$NEWEST" ]
ok $? "  with the same tag, key and newest 100 retired keyids"
signs "$KEY" "$TAG"
r=$?
ok $r "  and it signs"
[ "$r" -eq 0 ] && signed_after=$((signed_after + 1))
"$AGENT" --reload "$AGENT_PID"
wait_for 10 grep -q "reloaded the keystore" "$LOG"
ok $? "SIGHUP: the agent reloads the keystore"
! grep -q "reload failed" "$LOG"
ok $? "  without failing"
ok "$([ "$(warnings)" -eq 2 ] && echo 0 || echo 1)" "  warning again"
signs "$KEY" "$TAG"
r=$?
ok $r "  and it signs"
[ "$r" -eq 0 ] && signed_after=$((signed_after + 1))
stop_agent "$AGENT_PID"
start_agent "$S" "$K"
ok $? "the agent restarts on the same record"
signs "$KEY" "$TAG"
r=$?
ok $r "  and it signs"
[ "$r" -eq 0 ] && signed_after=$((signed_after + 1))
cmp -s "$BFILE" "$TMP/forged.binding"
ok $? "loading never rewrote the file"

{ m rotate --begin --origin "$URL" && m rotate --commit --origin "$URL"; } >/dev/null
ok $? "a rotation commits"
after=$(wc -c <"$BFILE")
ok "$([ "$after" -lt 16384 ] && echo 0 || echo 1)" "  and writes the file short again ($after bytes)"
m list --json >"$TMP/l2.json"
[ "$(field "$TMP/l2.json" b.retired.length)" = 100 ] && [ "$(field "$TMP/l2.json" 'b.retired[99]')" = "$KEY" ] &&
	[ "$(field "$TMP/l2.json" b.tag)" = "$TAG" ]
ok $? "  retiring the key it had, under the same tag"
KEY2=$(field "$TMP/l2.json" b.keyid)
stop_agent "$AGENT_PID"
start_agent "$S" "$K"
ok $? "the agent restarts"
ok "$([ "$(warnings)" -eq 3 ] && echo 0 || echo 1)" "  with no warning now: the control for the warnings above"
signs "$KEY2" "$TAG"
ok $? "  and signs with the new key"
stop_agent "$AGENT_PID"

# Control: as large, but not because of its history. The agent must refuse
# it (exit 78, a keystore it cannot use), naming the file.
cp -p "$BFILE" "$TMP/good.binding"
"$FORGE" "$BFILE" $((FORGED - 100)) --note 300000 >/dev/null
"$AGENT" -D -a "$S" --keystore "$K" >"$TMP/refused.log" 2>&1 &
p=$!
AGENT_PIDS="$AGENT_PIDS $p"
wait_for 10 sh -c "! kill -0 $p"
if kill -0 "$p" 2>/dev/null; then
	stop_agent "$p"
	rc=started
else
	wait "$p"
	rc=$?
fi
ok "$([ "$rc" = 78 ] && echo 0 || echo 1)" "control: a record that large for another reason is refused (exit $rc)"
grep -F -e "$BFILE" "$TMP/refused.log" | grep -q "damaged"
ok $? "  as damaged, naming the file"
diag <"$TMP/refused.log"
cp -p "$TMP/good.binding" "$BFILE"
start_agent "$S" "$K"
ok $? "  and the agent starts once it is back"
stop_agent "$AGENT_PID"

metric history_forged_retired_loaded_by_agent "$FORGED"
metric history_forged_starts_and_reloads_signed "$signed_after"
done_testing
