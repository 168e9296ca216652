#!/bin/sh
# Integration: real agents on temporary sockets and keystores, driven through
# the mcpsig command. Prints TAP.
. "${top_srcdir:-.}/tests/lib.sh"

S=$TMP/a.sock
K=$TMP/ks
start_agent "$S" "$K" || bail "the agent did not start"
m() { "$CLI" -a "$S" "$@"; }

# ---- CLI contract: errors and exit codes ----
m sign >/dev/null 2>"$TMP/err"
ok $(( $? != 1 )) "sign without -u exits 1"
check "  with a one-line reason naming -u" grep -q -- "-u URL is required" "$TMP/err"
m sign --bogus >/dev/null 2>&1
ok $(( $? != 1 )) "an unknown option exits 1"
m frobnicate >/dev/null 2>&1
ok $(( $? != 1 )) "an unknown command exits 1"
for c in status list add-identity remove import jwk sign; do
	m "$c" --help >"$TMP/help" 2>&1
	ok $(( $? != 0 )) "mcpsig $c --help exits 0"
	check "  and shows its usage" grep -q "^Usage: mcpsig $c" "$TMP/help"
done
check "mcpsig --help" "$CLI" --help
check "mcpsig-agent --help" "$AGENT" --help
"$AGENT" --no-such-option >/dev/null 2>&1
ok $(( $? != 1 )) "mcpsig-agent with a bad option exits 1"
"$CLI" -a "$TMP/nothing.sock" status >/dev/null 2>"$TMP/err"
ok $(( $? != 2 )) "an unreachable agent exits 2, distinct from errors"
check "  and says where it looked" grep -q -e "$TMP/nothing.sock" "$TMP/err"
m sign -u https://a.example/mcp --identity typo >/dev/null 2>"$TMP/err"
ok $(( $? != 1 )) "an unknown identity is refused (exit 1)"
check "  saying how to add it" grep -q "add-identity typo" "$TMP/err"
m sign -u 'https://A.example/mcp' >/dev/null 2>&1
ok $(( $? != 1 )) "a URI that a server would rebuild differently is refused"
check "  and created no binding" sh -c "! '$CLI' -a '$S' list --json | grep -q 'a.example'"

# ---- same origin, same tag; different origins and identities differ ----
# A plain "wait" would wait for the agent too: wait for these jobs only.
pids=
for i in 1 2 3 4 5 6 7 8; do
	m jwk --origin https://same.example >"$TMP/same.$i" &
	pids="$pids $!"
done
for p in $pids; do wait "$p"; done
n=$(cat "$TMP"/same.* | sort -u | wc -l)
ok $(( n != 1 )) "8 concurrent clients get one key for one origin"
m jwk --origin https://other.example >"$TMP/other"
check "a different origin gets a different key" sh -c "! cmp -s '$TMP/other' '$TMP/same.1'"
check "add-identity work" m add-identity work
m --identity work jwk --origin https://same.example >"$TMP/work"
check "a different identity gets a different key for the same origin" sh -c "! cmp -s '$TMP/work' '$TMP/same.1'"
m add-identity work >/dev/null 2>&1
ok $(( $? != 1 )) "adding an existing identity exits 1"

# ---- the extension's capability entry (SEP-2752 as io.modelcontextprotocol/http-message-signatures) ----
m jwk --origin https://same.example --extension >"$TMP/ext"
ok $? "jwk --extension prints the capability entry"
tr -d ' \n' <"$TMP/ext" >"$TMP/ext.flat"
want="{\"io.modelcontextprotocol/http-message-signatures\":{\"algorithms\":[\"ed25519\"],\"keyResolution\":[\"signature-agent\",\"cnf\"],\"contentDigest\":[\"rfc9530\"],\"cnf\":{\"jwk\":$(cat "$TMP/same.1")}}}"
check "  with the binding's JWK in cnf.jwk and its algorithm" test "$(cat "$TMP/ext.flat")" = "$want"
m --identity work jwk --origin https://same.example --extension | tr -d ' \n' >"$TMP/ext.work"
check "  control: another identity's entry carries another key" sh -c "! cmp -s '$TMP/ext.work' '$TMP/ext.flat'"

# ---- 20 clients making first contact with one new origin at the same moment ----
pids=
for i in $(seq 1 20); do
	m sign --json -X POST -u https://race.example/mcp -d '{}' >"$TMP/race.$i" 2>&1 &
	pids="$pids $!"
done
for p in $pids; do wait "$p"; done
keyids=$(grep -h '"keyid"' "$TMP"/race.* | sort -u | wc -l)
ok $(( keyids != 1 )) "20 simultaneous first contacts: one keyid"
tags=$(grep -h '"tag"' "$TMP"/race.* | sort -u | wc -l)
ok $(( tags != 1 )) "20 simultaneous first contacts: one tag"
n=$(m list --json | grep -c '"origin": "https://race.example"')
ok $(( n != 1 )) "20 simultaneous first contacts: exactly one binding"
files=$(ls "$K"/identities/default/bindings | grep -c '\.binding$')
all=$(m list --json | grep -c '"identity": "default"')
ok $(( files != all )) "one key file per binding ($files)"

# ---- restart keeps tags and keys ----
before=$(m list --json)
stop_agent "$AGENT_PID"
ok $? "SIGTERM stops the agent"
check "  and removes its socket" test ! -e "$S"
start_agent "$S" "$K" || bail "the agent did not restart"
after=$(m list --json)
[ "$before" = "$after" ]
ok $? "after a restart every binding, tag and key id is the same"

# ---- one agent per keystore; one per socket; stale sockets are replaced ----
"$AGENT" -D -a "$TMP/b.sock" --keystore "$K" >/dev/null 2>"$TMP/err" &
p=$!
AGENT_PIDS="$AGENT_PIDS $p"
wait_for 5 sh -c "! kill -0 $p"
ok $? "a second agent on the same keystore exits"
check "  naming the running agent's pid" grep -q "pid $AGENT_PID" "$TMP/err"
"$AGENT" -D -a "$S" --keystore "$TMP/ks2" >/dev/null 2>"$TMP/err" &
p=$!
AGENT_PIDS="$AGENT_PIDS $p"
wait_for 5 sh -c "! kill -0 $p"
ok $? "a second agent on a live socket exits"
check "  saying another agent listens there" grep -q "another agent is listening" "$TMP/err"
check "  and leaves the live socket working" m status
kill -KILL "$AGENT_PID"
wait "$AGENT_PID" 2>/dev/null
check "after kill -9 the socket file remains (stale)" test -S "$S"
start_agent "$S" "$K"
ok $? "a new agent replaces the stale socket"
after=$(m list --json)
[ "$before" = "$after" ]
ok $? "  and holds every key after the kill"
touch "$TMP/plain"
"$AGENT" -D -a "$TMP/plain" --keystore "$TMP/ks3" >/dev/null 2>"$TMP/err"
ok $(( $? != 1 )) "the agent refuses to replace a file that is not a socket"
check "  and leaves it in place" test -f "$TMP/plain"

# ---- permissions ----
mode=$(stat -c %a "$S")
ok $(( mode != 600 )) "the socket is 0600 (got $mode)"
mode=$(stat -c %a "$K")
ok $(( mode != 700 )) "the keystore is 0700 (got $mode)"
bad=$(find "$K" -type f ! -perm 600 | wc -l)
ok $(( bad != 0 )) "every keystore file is 0600"

# ---- malformed and oversized input: error or close; others unaffected ----
bytes c1 | "$RAWSEND" "$S" >"$TMP/raw"
check "a byte that is not msgpack: error reply then close" grep -q closed "$TMP/raw"
grep -q "reply 0 bytes" "$TMP/raw"
ok $(( $? == 0 )) "  the error reply is sent before closing"
bytes dd ff ff ff ff | "$RAWSEND" "$S" >"$TMP/raw"
check "an array header declaring 4G elements: closed at once" grep -q closed "$TMP/raw"
bytes 94 00 01 a5 68 65 6c 6c 6f 91 91 91 91 91 91 91 91 91 90 | "$RAWSEND" "$S" >"$TMP/raw"
check "nesting beyond the limit: closed" grep -q closed "$TMP/raw"
bytes 94 00 07 a5 68 65 6c 6c 6f 91 81 a3 66 6f 6f 01 | "$RAWSEND" "$S" >"$TMP/raw"
check "a well-framed but invalid request: error reply, connection stays open" grep -q open "$TMP/raw"
head -c 3000000 /dev/zero | sed 's/^/x/' | "$RAWSEND" "$S" >"$TMP/raw" 2>/dev/null
check "3 MB of junk: closed" grep -q closed "$TMP/raw"
# A 1.5 MiB string declared up front, never completed: more than the limit.
{ bytes 94 00 01 a9 73 69 67 6e 2e 68 74 74 70 91 81 a3 75 72 69 db 00 18 00 00; head -c 100 /dev/zero; } |
	"$RAWSEND" "$S" >"$TMP/raw"
check "a declared string beyond the size limit: closed without waiting for it" grep -q closed "$TMP/raw"
check "meanwhile another client keeps working" m sign -u https://same.example/mcp

# ---- at least 128 connections at once ----
# Each rawsend sends hello and then holds its connection open for 2 s.
pids=
for i in $(seq 1 140); do
	bytes 94 00 01 a5 68 65 6c 6c 6f 90 | "$RAWSEND" "$S" >"$TMP/conn.$i" &
	pids="$pids $!"
done
for p in $pids; do wait "$p"; done
served=$(grep -l "^open" "$TMP"/conn.* | xargs grep -L "reply 0 bytes" | wc -l)
ok $(( served != 140 )) "140 connections at once are all served (got $served)"
kill -0 "$AGENT_PID"
ok $? "the agent is still running"

# ---- a 1 MiB body crosses the socket; a bigger one is digested by the host ----
head -c 1048576 /dev/urandom >"$TMP/big1"
m sign --json -X POST -u https://same.example/mcp --data-binary "@$TMP/big1" >"$TMP/s1"
ok $? "a 1 MiB body is signed by the agent"
head -c 3000000 /dev/urandom >"$TMP/big3"
m sign --json -X POST -u https://same.example/mcp --data-binary "@$TMP/big3" >"$TMP/s3"
ok $? "a 3 MB body is digested by the client and signed"
want=$(openssl dgst -sha256 -binary "$TMP/big3" | base64)
grep -q "sha-256=:$want:" "$TMP/s3"
ok $? "  with the right Content-Digest"

# ---- -d and --data-binary send the same bytes as curl ----
printf '{"a":\r\n1}\n' >"$TMP/crlf.json"
d1=$(m sign --json -X POST -u https://same.example/mcp -d "@$TMP/crlf.json" | grep Content-Digest)
want=$(printf '{"a":1}' | openssl dgst -sha256 -binary | base64)
echo "$d1" | grep -q "sha-256=:$want:"
ok $? "-d @file strips CR and LF, as curl does"
d2=$(m sign --json -X POST -u https://same.example/mcp --data-binary "@$TMP/crlf.json" | grep Content-Digest)
want=$(openssl dgst -sha256 -binary "$TMP/crlf.json" | base64)
echo "$d2" | grep -q "sha-256=:$want:"
ok $? "--data-binary @file keeps every byte"
d3=$(m sign --json -X POST -u https://same.example/mcp -d a=1 -d b=2 | grep Content-Digest)
want=$(printf 'a=1&b=2' | openssl dgst -sha256 -binary | base64)
echo "$d3" | grep -q "sha-256=:$want:"
ok $? "repeated -d are joined with '&', as curl does"
if command -v curl >/dev/null 2>&1 && [ -x "$NODE" ]; then
	# A one-line server that answers with the SHA-256 of the body it got.
	"$NODE" -e '
		const h = require("http"), c = require("crypto");
		const s = h.createServer((q, r) => { const b = []; q.on("data", d => b.push(d));
			q.on("end", () => r.end(c.createHash("sha256").update(Buffer.concat(b)).digest("base64"))); });
		s.listen(0, "127.0.0.1", () => console.log(s.address().port));
		setTimeout(() => process.exit(0), 60000);' >"$TMP/port" &
	np=$!
	wait_for 10 test -s "$TMP/port"
	port=$(cat "$TMP/port")
	for flags in "-d @$TMP/crlf.json" "--data-binary @$TMP/crlf.json" "-d x=1 -d y=2"; do
		# shellcheck disable=SC2086
		got=$(curl -s $flags "http://127.0.0.1:$port/")
		# shellcheck disable=SC2086
		m sign --json -X POST -u https://same.example/mcp $flags | grep -q "sha-256=:$got:"
		ok $? "mcpsig sign $flags digests exactly what curl sends"
	done
	kill "$np" 2>/dev/null
else
	skip "curl or node missing: cannot compare with curl"
fi

# ---- import and remove ----
printf '\237\203\142\370\172\110\112\225\116\156\164\014\133\114\016\204\042\221\071\242\012\250\253\126\377\146\130\157\152\175\051\305' >"$TMP/seed"
m import --origin https://imported.example --seed "$TMP/seed" >"$TMP/imp"
ok $? "import a raw 32-byte seed"
check "  its tag is the RFC 9421 test key's thumbprint" grep -q "poqkLGiymh_W0uP6PZFw-dvez3QJT5SolqXBCW38r0U" "$TMP/imp"
m import --origin https://imported.example --seed "$TMP/seed" >/dev/null 2>"$TMP/err"
ok $(( $? != 1 )) "importing into an existing binding is refused"
printf 'short' >"$TMP/short"
m import --origin https://x.example --seed "$TMP/short" >/dev/null 2>&1
ok $(( $? != 1 )) "a seed file that is not 32 bytes is refused"
printf '{"kty":"OKP","crv":"Ed25519","d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"}' >"$TMP/k.jwk"
m import --origin https://jwk.example --jwk "$TMP/k.jwk" >"$TMP/imp"
check "import a private JWK (RFC 8037 A.1)" grep -q "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k" "$TMP/imp"
file=$(grep -l . "$K"/identities/default/bindings/*.binding | wc -l)
check "remove --origin" m remove --origin https://jwk.example
left=$(grep -l . "$K"/identities/default/bindings/*.binding | wc -l)
ok $(( left != file - 1 )) "  deletes that binding's key file"
m remove --origin https://jwk.example >/dev/null 2>&1
ok $(( $? != 1 )) "removing it again is an error"
m remove >/dev/null 2>&1
ok $(( $? != 1 )) "remove needs --origin or --all"
check "remove --all --identity work" m --identity work remove --all
check "  deletes the identity's directory" test ! -e "$K/identities/work"

# ---- peer uid check ----
if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null 2>&1; then
	mkdir -m 0700 "$TMP/open"
	start_agent "$TMP/open/u.sock" "$TMP/ksu" || bail "agent for the uid test"
	upid=$AGENT_PID
	chmod 0711 "$TMP" # let uid 65534 traverse to it
	chmod 0777 "$TMP/open"
	chmod 0666 "$TMP/open/u.sock" # let another uid reach the socket at all
	bytes 94 00 01 a5 68 65 6c 6c 6f 90 | setpriv --reuid=65534 --regid=65534 --clear-groups "$RAWSEND" "$TMP/open/u.sock" >"$TMP/raw"
	check "a connection from another uid is closed" grep -q closed "$TMP/raw"
	check "  without a single byte of reply" grep -q "reply 0 bytes" "$TMP/raw"
	check "  and the refusal is logged" grep -q "refused a connection from uid 65534" "$TMP/agent.log"
	bytes 94 00 01 a5 68 65 6c 6c 6f 90 | "$RAWSEND" "$TMP/open/u.sock" >"$TMP/raw"
	check "the owner's connection on the same socket is served" grep -q open "$TMP/raw"
	stop_agent "$upid"
else
	skip "not root: cannot connect as another uid"
fi

# ---- detached mode and -k ----
out=$(env -u MCPSIG_AGENT_PID "$AGENT" -a "$TMP/d.sock" --keystore "$TMP/ksd")
ok $? "mcpsig-agent without -D detaches"
eval "$out" >/dev/null
AGENT_PIDS="$AGENT_PIDS $MCPSIG_AGENT_PID"
[ "$MCPSIG_AUTH_SOCK" = "$TMP/d.sock" ] && [ -n "$MCPSIG_AGENT_PID" ]
ok $? "  and prints eval-able MCPSIG_AUTH_SOCK and MCPSIG_AGENT_PID"
MCPSIG_AUTH_SOCK=$TMP/d.sock "$CLI" status >/dev/null
ok $? "  its socket answers as soon as the parent returns"
# --reload PID (the unit's ExecReload=): SIGHUP to an agent, refused for any other process.
sleep 30 &
other=$!
"$AGENT" --reload "$other" 2>"$TMP/reload.err"
rc=$?
kill -0 "$other" 2>/dev/null
ok $(( rc != 1 || $? != 0 )) "--reload refuses a pid that is not an agent's, and sends it nothing"
check "  saying what it is" grep -q 'is sleep, not an mcpsig-agent' "$TMP/reload.err"
MCPSIG_AGENT_PID=$other "$AGENT" -k >/dev/null 2>&1
rc=$?
kill -0 "$other" 2>/dev/null
ok $(( rc != 1 || $? != 0 )) "-k refuses a stale MCPSIG_AGENT_PID that names another program"
kill "$other" 2>/dev/null
"$AGENT" --reload "$MCPSIG_AGENT_PID" && MCPSIG_AUTH_SOCK=$TMP/d.sock "$CLI" status >/dev/null
ok $? "--reload PID reloads a running agent, which keeps answering"
"$AGENT" --reload x12 >/dev/null 2>&1
ok $(( $? != 1 )) "--reload with something that is not a pid is an error"
"$AGENT" --reload "$MCPSIG_AGENT_PID" -D >/dev/null 2>&1
ok $(( $? != 1 )) "--reload takes no other options"
"$AGENT" -k >/dev/null
ok $? "mcpsig-agent -k"
wait_for 5 sh -c "! kill -0 $MCPSIG_AGENT_PID"
ok $? "  stops the agent named by MCPSIG_AGENT_PID"
check "  which removes its socket" test ! -e "$TMP/d.sock"
env -u MCPSIG_AGENT_PID "$AGENT" -k >/dev/null 2>&1
ok $(( $? != 1 )) "-k without MCPSIG_AGENT_PID is an error"

# ---- the default socket path when XDG_RUNTIME_DIR is unset ----
uid=$(id -u)
if [ -d "/run/user/$uid" ] && [ "$(stat -c %u "/run/user/$uid")" = "$uid" ]; then
	expect=/run/user/$uid/mcpsig/agent.sock
else
	expect=$TMP/mcpsig-$uid/agent.sock
fi
if [ -e "$expect" ]; then
	skip "an agent already uses $expect"
else
	env -u XDG_RUNTIME_DIR -u MCPSIG_AUTH_SOCK TMPDIR="$TMP" "$AGENT" -D --keystore "$TMP/ksx" >"$TMP/x.log" 2>&1 &
	xp=$!
	AGENT_PIDS="$AGENT_PIDS $xp"
	wait_for 10 test -S "$expect"
	ok $? "without XDG_RUNTIME_DIR the agent listens on $expect"
	env -u XDG_RUNTIME_DIR -u MCPSIG_AUTH_SOCK TMPDIR="$TMP" "$CLI" status >/dev/null
	ok $? "  and the client finds it by the same rule"
	mode=$(stat -c %a "$(dirname "$expect")")
	ok $(( mode != 700 )) "  in a 0700 directory (got $mode)"
	stop_agent "$xp"
fi
mkdir -m 0700 "$TMP/xdg"
env -u MCPSIG_AUTH_SOCK XDG_RUNTIME_DIR="$TMP/xdg" "$AGENT" -D --keystore "$TMP/ksy" >"$TMP/y.log" 2>&1 &
yp=$!
AGENT_PIDS="$AGENT_PIDS $yp"
wait_for 10 test -S "$TMP/xdg/mcpsig/agent.sock"
ok $? "with XDG_RUNTIME_DIR the agent listens on \$XDG_RUNTIME_DIR/mcpsig/agent.sock"
env -u MCPSIG_AUTH_SOCK XDG_RUNTIME_DIR="$TMP/xdg" "$CLI" status >/dev/null
ok $? "  and the client finds it"
stop_agent "$yp"

stop_agent "$AGENT_PID"
done_testing
