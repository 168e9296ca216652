#!/bin/sh
# Security properties of the agent, checked from outside the process:
#
#  1. it cannot be read by its own user: run as uid 65534, its /proc/PID/mem
#     belongs to root and PTRACE_ATTACH from another uid-65534 process fails,
#     while a plain process of that uid is attachable (the control);
#  2. a connection from any other uid (root, a third uid) is closed without a
#     reply and logged, while the owner is served;
#  3. the keystore is 0700/0600 after use, whatever the caller's umask, and
#     the agent refuses to start on looser modes, a foreign owner or a
#     symbolic link, saying how to fix it;
#  4. no key leaves the agent: a known seed, once imported, is not found in
#     the debug log, the socket traffic or the client's output, in any common
#     encoding, while the public key is (the control);
#  5. valgrind memcheck finds no error in the agent through the integration
#     suite and a sequence of every other command.
#
# The measured figures go to $top_builddir/reliability/security.tsv. Prints TAP.
. "${top_srcdir:-.}/tests/lib.sh"

started=$(date +%s)
PTRACE_ATTACH=$top_builddir/tests/ptrace-attach
REL=$top_builddir/reliability
mkdir -p "$REL" || bail "cannot create $REL"
TSV=$REL/security.tsv
: >"$TSV"
metric() { printf '%s\t%s\n' "$1" "$2" >>"$TSV"; }
flag() { [ "$1" -eq 0 ] && echo 1 || echo 0; } # flag STATUS: 1 when STATUS is 0

ROOT=no
[ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null 2>&1 && ROOT=yes
U=65534 # the agent's user in sections 1 and 2
U3=65533 # a third user
as() { # as UID COMMAND...: runs COMMAND as UID, with no groups and no capabilities
	uid=$1
	shift
	setpriv --reuid="$uid" --regid="$uid" --clear-groups --inh-caps=-all "$@"
}
# The same as a plain command, for background jobs: "as ... &" would be a
# subshell, and $! its pid rather than the program's.
AS_U="setpriv --reuid=$U --regid=$U --clear-groups --inh-caps=-all"

# ---- 1. not dumpable, not traceable --------------------------------------------------

if [ "$ROOT" = yes ] && [ -x "$PTRACE_ATTACH" ]; then
	# The build tree may sit in a directory uid 65534 cannot enter: run copies.
	programs_for_other_uid ptrace-attach || bail "cannot copy the programs for uid $U"
	PTRACE_ATTACH=$TMP/bin/ptrace-attach
	UD=$TMP/u
	mkdir -m 0700 "$UD"
	chown "$U:$U" "$UD"
	US=$UD/agent.sock
	$AS_U "$AGENT" -D -a "$US" --keystore "$UD/ks" >>"$TMP/u.log" 2>&1 &
	UPID=$!
	AGENT_PIDS="$AGENT_PIDS $UPID"
	wait_for 10 as "$U" "$CLI" -a "$US" status || { diag <"$TMP/u.log"; bail "the uid $U agent did not start"; }
	ok "$([ "$(awk '/^Uid:/ { print $2 " " $3 }' "/proc/$UPID/status")" = "$U $U" ] &&
		grep -qx mcpsig-agent "/proc/$UPID/comm" && echo 0 || echo 1)" "the agent runs as uid $U (pid $UPID)"

	owner=$(stat -c %u "/proc/$UPID/mem")
	ok $(( owner != 0 )) "its /proc/PID/mem belongs to root, not to uid $U (PR_SET_DUMPABLE 0; got uid $owner)"
	metric proc_mem_owner_root "$(flag $(( owner != 0 )))"
	out=$(as "$U" "$PTRACE_ATTACH" "$UPID")
	rc=$?
	echo "# ptrace-attach as uid $U: $out"
	ok "$([ "$rc" -eq 1 ] && echo "$out" | grep -q EPERM && echo 0 || echo 1)" \
		"PTRACE_ATTACH from a process of the same uid fails with EPERM"
	metric ptrace_attach_refused "$(flag "$([ "$rc" -eq 1 ] && echo 0 || echo 1)")"
	grep -Eq '^Max core file size +0 +0 ' "/proc/$UPID/limits"
	ok $? "  and it dumps no core (RLIMIT_CORE 0)"
	check "  and it still serves its owner" as "$U" "$CLI" -a "$US" status

	# The control: an ordinary process of that uid is readable and traceable,
	# so the two checks above can fail.
	$AS_U sleep 30 &
	SPID=$!
	AGENT_PIDS="$AGENT_PIDS $SPID"
	# (setpriv itself, between its setresuid and its exec, is not dumpable)
	wait_for 5 grep -qx sleep "/proc/$SPID/comm"
	owner=$(stat -c %u "/proc/$SPID/mem")
	ok $(( owner != U )) "control: a plain process of uid $U has /proc/PID/mem owned by uid $U (got $owner)"
	out=$(as "$U" "$PTRACE_ATTACH" "$SPID")
	ok $? "control: PTRACE_ATTACH to it from the same uid succeeds ($out)"
	kill -KILL "$SPID" 2>/dev/null
	wait "$SPID" 2>/dev/null

	# ---- 2. another uid is refused ----------------------------------------------------

	bytes 94 00 01 a5 68 65 6c 6c 6f 90 >"$TMP/hello"
	"$RAWSEND" "$US" <"$TMP/hello" >"$TMP/raw"
	grep -q closed "$TMP/raw" && grep -q "reply 0 bytes" "$TMP/raw"
	r_root=$?
	ok $r_root "root connecting to the uid $U agent is closed without a byte of reply"
	wait_for 5 grep -q "refused a connection from uid 0 " "$TMP/u.log"
	ok $? "  and the agent logs the refusal of uid 0"
	"$CLI" -a "$US" status >"$TMP/st.out" 2>"$TMP/st.err"
	rc=$?
	ok "$([ "$rc" -ne 0 ] && [ ! -s "$TMP/st.out" ] && echo 0 || echo 1)" \
		"  and mcpsig status as root gets no answer (exit $rc)"
	# A third uid can reach the socket only once its directory and mode allow it.
	chmod 0711 "$UD"
	chmod 0666 "$US"
	as "$U3" "$RAWSEND" "$US" <"$TMP/hello" >"$TMP/raw"
	grep -q closed "$TMP/raw" && grep -q "reply 0 bytes" "$TMP/raw"
	r_third=$?
	ok $r_third "uid $U3 connecting through a 0666 socket is closed without a byte of reply"
	wait_for 5 grep -q "refused a connection from uid $U3 " "$TMP/u.log"
	ok $? "  and the agent logs the refusal of uid $U3"
	as "$U" "$RAWSEND" "$US" <"$TMP/hello" >"$TMP/raw"
	grep -q open "$TMP/raw" && ! grep -q "reply 0 bytes" "$TMP/raw"
	ok $? "control: the owner's hello on the same socket is answered"
	chmod 0600 "$US"
	chmod 0700 "$UD"
	metric foreign_uid_refused "$(flag $(( r_root + r_third )))"
	kill -0 "$UPID"
	ok $? "the uid $U agent is still running"
	stop_agent "$UPID"
else
	skip "not root (or no setpriv, or $PTRACE_ATTACH not built): cannot run the agent as another uid"
	metric proc_mem_owner_root NA
	metric ptrace_attach_refused NA
	metric foreign_uid_refused NA
fi

# ---- 3. keystore modes -----------------------------------------------------------------

S=$TMP/a.sock
K=$TMP/ks
m() { "$CLI" -a "$S" "$@"; }
# The agent's modes must not depend on the umask it inherits.
old_umask=$(umask)
umask 000
start_agent "$S" "$K" || bail "the agent did not start"
umask "$old_umask"
SEED=$TMP/seed
head -c 32 /dev/urandom >"$SEED"
chmod 0600 "$SEED"
fails=0
for cmd in "sign -u https://a.example/mcp" "sign -X POST -u https://b.example/mcp -d {}" \
	"add-identity work" "--identity work jwk --origin https://a.example" \
	"import --origin https://imported.example --seed $SEED" \
	"rotate --begin --origin https://a.example" "sign --key pending -u https://a.example/mcp" \
	"rotate --commit --origin https://a.example" "rotate --begin --origin https://b.example"; do
	# shellcheck disable=SC2086
	m $cmd >/dev/null 2>>"$TMP/use.err" || fails=$((fails + 1))
done
ok $fails "normal use under umask 000: bindings, an identity, an import, a rotation, a pending one"
[ "$fails" -eq 0 ] || diag <"$TMP/use.err"
ls "$K"/identities/default/bindings/*.pending >/dev/null 2>&1
ok $? "  (a pending key file exists)"
bad_dirs=$(find "$K" -type d ! -perm 0700 | wc -l)
bad_files=$(find "$K" -type f ! -perm 0600 | wc -l)
others=$(find "$K" ! -type d ! -type f | wc -l)
ok $(( bad_dirs != 0 )) "every keystore directory is 0700 ($(find "$K" -type d | wc -l) directories, $bad_dirs not)"
ok $(( bad_files != 0 )) "every keystore file is 0600 ($(find "$K" -type f | wc -l) files, $bad_files not)"
ok $(( others != 0 )) "the keystore holds nothing but directories and regular files"
mode=$(stat -c %a "$S")
ok $(( mode != 600 )) "the socket is 0600 (got $mode)"
find "$K" ! -perm 0600 ! -perm 0700 -exec stat -c '%a %n' {} + | diag
metric keystore_bad_modes $(( bad_dirs + bad_files + others ))
BEFORE=$(m list --json)
stop_agent "$AGENT_PID"

BDIR=$K/identities/default/bindings
BFILE=$(find "$BDIR" -name "*.binding" | head -n 1)
PFILE=$(find "$BDIR" -name "*.pending" | head -n 1)
cases=0
refused=0
# refuses DESCRIPTION FIX-REGEX: the agent, started on $K, exits 1 with a
# message that matches FIX-REGEX (the fix it names).
refuses() {
	cases=$((cases + 1))
	"$AGENT" -D -a "$TMP/r.sock" --keystore "$K" >"$TMP/r.out" 2>&1 &
	p=$!
	AGENT_PIDS="$AGENT_PIDS $p"
	wait_for 10 sh -c "! kill -0 $p || '$CLI' -a '$TMP/r.sock' status"
	if kill -0 "$p" 2>/dev/null; then
		stop_agent "$p"
		ok 1 "$1: the agent refuses to start (it started)"
		skip "  (no message to check)"
		return
	fi
	wait "$p"
	rc=$?
	cat "$TMP/r.out" >>"$TMP/refused.log"
	# 78 (EX_CONFIG): a keystore the agent cannot use, which a restart cannot fix.
	[ "$rc" -eq 78 ] && refused=$((refused + 1))
	ok $(( rc != 78 )) "$1: the agent refuses to start (exit $rc, 78: not fixed by a restart)"
	grep -Eq -e "$2" "$TMP/r.out"
	ok $? "  saying how to fix it ($2)"
	diag <"$TMP/r.out"
}
chmod 0640 "$BFILE"
refuses "a group-readable binding file (0640)" "chmod 600 $BFILE"
chmod 0600 "$BFILE"
chmod 0604 "$K/identities/default/identity"
refuses "a world-readable identity file (0604)" "chmod 600 $K/identities/default/identity"
chmod 0600 "$K/identities/default/identity"
chmod 0660 "$PFILE"
refuses "a group-writable pending key file (0660)" "chmod 600 $PFILE"
chmod 0600 "$PFILE"
for d in "$K" "$K/identities" "$K/identities/default" "$BDIR"; do
	chmod 0755 "$d"
	refuses "a world-readable directory (0755 ${d#"$TMP"/})" "chmod 700 $d"
	chmod 0700 "$d"
done
if [ "$ROOT" = yes ]; then
	chown "$U" "$K/identities/default"
	refuses "a directory owned by uid $U" "chown|chmod|move it aside"
	chown 0 "$K/identities/default"
	chown "$U" "$BFILE"
	refuses "a binding file owned by uid $U" "chown|chmod|move it aside"
	chown 0 "$BFILE"
else
	skip "not root: cannot make a file of another uid"
fi
# O_NOFOLLOW: a symbolic link to a perfectly good copy is still refused.
mv "$BFILE" "$TMP/real.binding"
ln -s "$TMP/real.binding" "$BFILE"
refuses "a symbolic link in place of a binding file" "$BFILE"
rm -f "$BFILE"
mv "$TMP/real.binding" "$BFILE"
mv "$BDIR" "$TMP/real.bindings"
ln -s "$TMP/real.bindings" "$BDIR"
refuses "a symbolic link in place of the bindings directory" "bindings"
rm -f "$BDIR"
mv "$TMP/real.bindings" "$BDIR"
metric loose_keystore_cases "$cases"
metric loose_keystore_refused "$refused"
start_agent "$S" "$K"
ok $? "control: the repaired keystore loads"
[ "$BEFORE" = "$(m list --json)" ]
ok $? "  with every binding, tag and key id as before"
stop_agent "$AGENT_PID"

# ---- 4. no key leaves the agent --------------------------------------------------------

# tok FILE / tok_str STRING: bytes as " xx" hex tokens, so a search can only
# match whole bytes; raw bytes, text and traces are all compared this way.
tok() { od -An -v -tx1 "$1" | tr -d '\n'; }
tok_str() { printf '%s' "$1" | od -An -v -tx1 | tr -d '\n'; }
hex() { od -An -v -tx1 "$1" | tr -d ' \n'; }
b64() { base64 -w0; }
b64url() { base64 -w0 | tr '+/' '-_'; }
# patterns LABEL FILE: each form of the secret in FILE, one "label<TAB>tokens"
# line each: raw, lower- and uppercase hex, base64 and base64url with and
# without padding, and every 16-byte window in raw and hex. A window in
# base64 depends on where the encoded string starts, so for each window the
# base64 and base64url of its first 15 bytes are searched: a 15-byte run
# encodes to 20 characters of its own, and the windows at offsets 0, 1, 2
# (mod 3) cover every alignment.
patterns() {
	label=$1
	f=$2
	len=$(wc -c <"$f")
	t=$(tok "$f")
	h=$(hex "$f")
	H=$(printf '%s' "$h" | tr a-f A-F)
	printf '%s raw\t%s\n' "$label" "$t"
	printf '%s hex\t%s\n' "$label" "$(tok_str "$h")"
	printf '%s HEX\t%s\n' "$label" "$(tok_str "$H")"
	s=$(b64 <"$f")
	printf '%s base64\t%s\n' "$label" "$(tok_str "$s")"
	printf '%s base64-nopad\t%s\n' "$label" "$(tok_str "$(printf '%s' "$s" | tr -d =)")"
	s=$(b64url <"$f")
	printf '%s base64url\t%s\n' "$label" "$(tok_str "$s")"
	printf '%s base64url-nopad\t%s\n' "$label" "$(tok_str "$(printf '%s' "$s" | tr -d =)")"
	o=0
	while [ $((o + 16)) -le "$len" ]; do
		w="${label}[$o:$((o + 16))]"
		printf '%s raw\t%s\n' "$w" "$(printf '%s' "$t" | cut -c $((3 * o + 1))-$((3 * o + 48)))"
		printf '%s hex\t%s\n' "$w" "$(tok_str "$(printf '%s' "$h" | cut -c $((2 * o + 1))-$((2 * o + 32)))")"
		printf '%s HEX\t%s\n' "$w" "$(tok_str "$(printf '%s' "$H" | cut -c $((2 * o + 1))-$((2 * o + 32)))")"
		printf '%s base64\t%s\n' "$w" "$(tok_str "$(tail -c +$((o + 1)) "$f" | head -c 15 | b64)")"
		printf '%s base64url\t%s\n' "$w" "$(tok_str "$(tail -c +$((o + 1)) "$f" | head -c 15 | b64url)")"
		o=$((o + 1))
	done
}
# found PATTERNS ARTIFACT: the labels of the patterns found in ARTIFACT (tokens).
found() {
	grep -qF -f "$1.tok" "$2" || return 0
	tab=$(printf '\t')
	while IFS=$tab read -r label pat; do
		grep -qF -e "$pat" "$2" && echo "$label"
	done <"$1"
}
# traffic TRACE ALL: the bytes of the data system calls in an strace -xx log
# as tokens: with ALL=0 only those on sockets from accept (until closed), so
# the keystore files the agent reads at startup are left out.
traffic() {
	awk -v all="$2" '
	{ c = $0; sub(/^[0-9]+ +/, "", c); name = c; sub(/\(.*/, "", name)
	  fd = c; sub(/^[a-z0-9_]+\(/, "", fd); sub(/[,)].*/, "", fd)
	  ret = c; sub(/.*\) += /, "", ret); sub(/ .*/, "", ret) }
	(name == "accept" || name == "accept4") && ret ~ /^[0-9]+$/ { live[ret] = 1; next }
	name == "close" { delete live[fd]; next }
	name ~ /^(read|write|readv|writev|recvfrom|sendto|recvmsg|sendmsg)$/ && (all || (fd in live)) {
		s = c
		while (match(s, /"(\\x[0-9a-f][0-9a-f])*"/)) {
			d = substr(s, RSTART + 1, RLENGTH - 2); gsub(/\\x/, " ", d); printf "%s", d
			s = substr(s, RSTART + RLENGTH)
		}
	}' "$1"
}

if ! command -v strace >/dev/null 2>&1 || ! command -v openssl >/dev/null 2>&1; then
	skip "strace and openssl are needed to look for key material"
	metric key_material_matches NA
else
	LS=$TMP/l.sock
	LK=$TMP/lks
	L=https://leak.example
	# The import sends the seed to the agent: that is its purpose. It happens
	# here, before any capture; the agent is then restarted under strace,
	# loads the key from its keystore, and everything captured from then on
	# (signatures, proofs, public keys, listings, a rotation) must not carry it.
	start_agent "$LS" "$LK" -v -v || bail "the agent did not start"
	"$CLI" -a "$LS" import --origin "$L" --seed "$SEED" >"$TMP/imp.out" 2>&1
	ok $? "import a key from a known 32-byte seed"
	"$CLI" -a "$LS" jwk --origin "$L" >"$TMP/jwk.before"
	stop_agent "$AGENT_PID"

	SYSCALLS=read,write,recvfrom,sendto,recvmsg,sendmsg,writev,readv,accept,accept4,close
	# (In a sanitizer build: LeakSanitizer cannot work under ptrace.)
	NOLEAKS="ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
	env "$NOLEAKS" MCPSIG_LOG_LEVEL=debug strace -f -qq -o "$TMP/agent.trace" -e trace=$SYSCALLS -s 1048576 -xx \
		"$AGENT" -D -v -v -a "$LS" --keystore "$LK" >"$TMP/leak.log" 2>&1 &
	TRACER=$!
	AGENT_PIDS="$AGENT_PIDS $TRACER"
	wait_for 20 "$CLI" -a "$LS" status || bail "the traced agent did not start"
	TRACED=$(sed -n 's/^MCPSIG_AGENT_PID=\([0-9]*\);.*/\1/p' "$TMP/leak.log")
	[ -n "$TRACED" ] || bail "no MCPSIG_AGENT_PID in the traced agent's output"
	AGENT_PIDS="$AGENT_PIDS $TRACED"
	l() { "$CLI" -a "$LS" "$@"; }
	: >"$TMP/client.out"
	fails=0
	# The client's side too, for a signature and a public key.
	env "$NOLEAKS" strace -f -qq -o "$TMP/client1.trace" -e trace=$SYSCALLS -s 1048576 -xx \
		"$CLI" -a "$LS" sign --json -X POST -u "$L/mcp" -d '{"jsonrpc":"2.0","id":1,"method":"ping"}' \
		>>"$TMP/client.out" 2>&1 || fails=$((fails + 1))
	env "$NOLEAKS" strace -f -qq -o "$TMP/client2.trace" -e trace=$SYSCALLS -s 1048576 -xx \
		"$CLI" -a "$LS" jwk --origin "$L" >>"$TMP/client.out" 2>&1 || fails=$((fails + 1))
	cat "$TMP/client1.trace" "$TMP/client2.trace" >"$TMP/client.trace"
	nreq=2
	for cmd in "sign -u $L/mcp" "sign -X POST -u $L/mcp -d x=1" "jwk --origin $L" \
		"dpop -X POST -u $L/token --origin $L --token t0k3n --nonce n0nce --json" "list --json" "list" \
		"status --json" "rotate --status --origin $L --json" "rotate --begin --origin $L --json" \
		"sign --key pending -u $L/mcp" "rotate --abort --origin $L"; do
		# shellcheck disable=SC2086
		l $cmd >>"$TMP/client.out" 2>&1 || fails=$((fails + 1))
		nreq=$((nreq + 1))
	done
	ok $fails "$nreq requests with the imported key (signatures, a DPoP proof, listings, a rotation) succeed"
	grep -q "^Signature: sig1=" "$TMP/client.out" && grep -q '"proof"' "$TMP/client.out"
	ok $? "  and produced signatures and a proof"
	grep -q "signature: identity=default origin=$L" "$TMP/leak.log"
	ok $? "  logged at debug level (each signature is logged)"
	l jwk --origin "$L" >"$TMP/jwk.after"
	cmp -s "$TMP/jwk.before" "$TMP/jwk.after"
	ok $? "the restarted agent holds the imported key (same public key)"
	kill -TERM "$TRACED"
	wait_for 10 sh -c "! kill -0 $TRACER" || bail "the traced agent did not stop"

	# The secrets: the seed, and SHA-512(seed) whose first half, clamped, is
	# the secret scalar and whose second half is the nonce key.
	openssl dgst -sha512 -binary "$SEED" >"$TMP/h512"
	h=$(head -c 32 "$TMP/h512" | od -An -v -tx1 | tr -d ' \n')
	b0=$(printf %02x $(( 0x$(printf '%s' "$h" | cut -c 1-2) & 248 )))
	b31=$(printf %02x $(( (0x$(printf '%s' "$h" | cut -c 63-64) & 127) | 64 )))
	{ bytes "$b0"; head -c 31 "$TMP/h512" | tail -c 30; bytes "$b31"; } >"$TMP/scalar"
	tail -c 32 "$TMP/h512" >"$TMP/prefix"
	{ patterns seed "$SEED"; patterns scalar "$TMP/scalar"; patterns nonce-key "$TMP/prefix"; } >"$TMP/secret.pat"
	x=$(sed -n 's/.*"x":"\([^"]*\)".*/\1/p' "$TMP/jwk.before")
	printf '%s=' "$x" | tr -- '-_' '+/' | base64 -d >"$TMP/pub" 2>/dev/null
	patterns public-x "$TMP/pub" >"$TMP/public.pat"
	cut -f2 "$TMP/secret.pat" >"$TMP/secret.pat.tok"
	cut -f2 "$TMP/public.pat" >"$TMP/public.pat.tok"
	npat=$(wc -l <"$TMP/secret.pat")

	# The artifacts, as tokens.
	traffic "$TMP/agent.trace" 0 >"$TMP/a.traffic"
	traffic "$TMP/client.trace" 1 >"$TMP/c.traffic"
	tok "$TMP/leak.log" >"$TMP/a.log"
	tok "$TMP/agent.log" >"$TMP/a.log0" # the import's agent, also at debug level
	tok "$TMP/client.out" >"$TMP/c.out"
	tok "$TMP/imp.out" >"$TMP/c.imp"
	nbytes=$(wc -w <"$TMP/a.traffic")
	ok $(( nbytes < 1000 )) "captured $nbytes bytes of socket traffic on the agent's side"
	total=0
	for a in a.traffic:"the agent's socket traffic" c.traffic:"the client's system calls" \
		a.log:"the agent's debug log" a.log0:"the importing agent's debug log" \
		c.out:"the client's output" c.imp:"the import's output"; do
		f=${a%%:*}
		found "$TMP/secret.pat" "$TMP/$f" >"$TMP/hits"
		n=$(wc -l <"$TMP/hits")
		total=$((total + n))
		ok $(( n != 0 )) "no form of the seed, the secret scalar or the nonce key in ${a#*:} ($n of $npat patterns)"
		diag <"$TMP/hits"
	done
	metric key_material_patterns "$npat"
	metric key_material_matches "$total"
	metric socket_traffic_bytes "$nbytes"

	# The controls: the search finds what is there.
	n=$(found "$TMP/public.pat" "$TMP/a.traffic" | wc -l)
	ok $(( n == 0 )) "control: the public key x is found in the agent's socket traffic ($n patterns)"
	found "$TMP/public.pat" "$TMP/a.traffic" | grep -q '^public-x base64url-nopad$'
	ok $? "  as base64url without padding, as the JWK carries it"
	n=$(found "$TMP/public.pat" "$TMP/c.traffic" | wc -l)
	ok $(( n == 0 )) "control: and in the client's system calls ($n patterns)"
	tok "$SEED" >"$TMP/seedfile"
	found "$TMP/secret.pat" "$TMP/seedfile" | grep -q '^seed raw$'
	ok $? "control: the seed is found in the seed file that was imported"
	tok "$(ls "$LK"/identities/default/bindings/*.binding)" >"$TMP/kfile"
	found "$TMP/secret.pat" "$TMP/kfile" | grep -q '^seed raw$'
	ok $? "control: the seed is found in the agent's own binding file, where it must be"
	# Every pattern is found in a file holding every encoding of the secrets,
	# the base64 ones shifted by 0, 1 and 2 bytes: no pattern is malformed.
	for f in "$SEED" "$TMP/scalar" "$TMP/prefix"; do
		cat "$f"
		echo
		hex "$f"
		echo
		hex "$f" | tr a-f A-F
		echo
		for k in "" x xy; do
			{ printf '%s' "$k"; cat "$f"; } | b64
			echo
			{ printf '%s' "$k"; cat "$f"; } | b64url
			echo
		done
	done >"$TMP/encoded"
	tok "$TMP/encoded" >"$TMP/encoded.tok"
	n=$(found "$TMP/secret.pat" "$TMP/encoded.tok" | wc -l)
	ok $(( n != npat )) "control: all $npat patterns are found in a file of every encoding of the secrets ($n)"
fi

# ---- 5. valgrind memcheck --------------------------------------------------------------

if agent_has_sanitizer; then
	# valgrind cannot run a program built with a sanitizer runtime; the
	# sanitizer build checks memory its own way.
	skip "the agent is built with a sanitizer: no valgrind"
	metric valgrind_errors NA
elif ! command -v valgrind >/dev/null 2>&1; then
	ok 1 "valgrind is installed (apt-get install valgrind)"
	metric valgrind_errors NA
else
	# The integration suite starts the agent through lib.sh as
	# $top_builddir/daemon/mcpsig-agent: it is run against a build directory
	# of links whose agent is a script that execs the real one under
	# valgrind (same pid, so the suite's signals reach it).
	VB=$TMP/vgbuild
	VL=$TMP/vglogs
	mkdir -p "$VB/daemon" "$VB/cli" "$VB/tests" "$VL"
	ABS_BUILD=$(cd "$top_builddir" && pwd)
	ABS_SRC=$(cd "$top_srcdir" && pwd)
	supp=
	[ -f "$ABS_SRC/tests/valgrind.supp" ] && supp="--suppressions=$ABS_SRC/tests/valgrind.supp"
	cat >"$VB/daemon/mcpsig-agent" <<EOF
#!/bin/sh
exec valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite --track-fds=no \\
	$supp --log-file='$VL/vg.%p' '$ABS_BUILD/daemon/mcpsig-agent' "\$@"
EOF
	chmod 0755 "$VB/daemon/mcpsig-agent"
	ln -s "$ABS_BUILD/cli/mcpsig" "$VB/cli/mcpsig"
	ln -s "$ABS_BUILD/tests/rawsend" "$VB/tests/rawsend"
	top_builddir=$VB top_srcdir=$ABS_SRC sh "$ABS_SRC/tests/integration.sh" >"$TMP/vg-integration.out" 2>&1
	rc=$?
	n=$(grep -c '^ok' "$TMP/vg-integration.out")
	ok $rc "the integration suite passes with the agent under valgrind ($n passed)"
	grep '^not ok' "$TMP/vg-integration.out" | diag

	# Then every command the integration suite does not cover.
	VS=$TMP/vg.sock
	"$VB/daemon/mcpsig-agent" -D -v -a "$VS" --keystore "$TMP/vgks" >"$TMP/vg-seq.log" 2>&1 &
	VP=$!
	AGENT_PIDS="$AGENT_PIDS $VP"
	wait_for 30 "$CLI" -a "$VS" status || bail "the agent under valgrind did not start"
	V=https://vg.example
	printf '{"kty":"OKP","crv":"Ed25519","d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"}' >"$TMP/k.jwk"
	fails=0
	ncmd=0
	: >"$TMP/vg-seq.err"
	for cmd in "add-identity ec --alg p256" "add-identity ec384 --alg p384" "sign -X POST -u $V/mcp -d {}" \
		"--identity ec sign --json -u $V/mcp" "--identity ec384 sign -u $V/mcp" "--identity ec jwk --origin $V" \
		"dpop -X POST -u $V/token --origin $V --token t --nonce n --json" "--identity ec dpop -X GET -u $V/mcp --origin $V" \
		"sign --alg ecdsa-p256-sha256 -u https://ec.example/mcp" "import --origin https://seed.example --seed $SEED" \
		"import --origin https://jwk.example --jwk $TMP/k.jwk" "rotate --begin --origin $V" \
		"sign --key pending -u $V/mcp" "rotate --status --origin $V --json" "rotate --commit --origin $V" \
		"--identity ec rotate --begin --origin $V" "--identity ec rotate --abort --origin $V" \
		"list --json" "status --json" "remove --origin https://jwk.example" "--identity ec384 remove --all"; do
		# shellcheck disable=SC2086
		"$CLI" -a "$VS" $cmd >/dev/null 2>>"$TMP/vg-seq.err" || { fails=$((fails + 1)); echo "failed: $cmd" >>"$TMP/vg-seq.err"; }
		ncmd=$((ncmd + 1))
	done
	# Errors the agent answers, and a reload.
	for cmd in "--identity nobody sign -u $V/mcp" "import --origin $V --seed $SEED" "rotate --commit --origin $V" \
		"sign -u https://A.example/mcp" "remove --origin https://none.example"; do
		# shellcheck disable=SC2086
		"$CLI" -a "$VS" $cmd >/dev/null 2>&1 && { fails=$((fails + 1)); echo "succeeded: $cmd" >>"$TMP/vg-seq.err"; }
		ncmd=$((ncmd + 1))
	done
	kill -HUP "$VP"
	wait_for 10 grep -q "reloaded the keystore" "$TMP/vg-seq.log" || fails=$((fails + 1))
	"$CLI" -a "$VS" sign -u "$V/mcp" >/dev/null || fails=$((fails + 1))
	ncmd=$((ncmd + 2))
	ok $fails "$ncmd more commands (ECDSA, DPoP, imports, rotations, errors, a reload) behave under valgrind"
	[ "$fails" -eq 0 ] || diag <"$TMP/vg-seq.err"
	kill -TERM "$VP"
	wait_for 30 sh -c "! kill -0 $VP"
	ok $? "the agent under valgrind stops on SIGTERM"

	# Every valgrind log: its ERROR SUMMARY; a process killed with SIGKILL
	# (the suite does that) has none, so its error reports are counted.
	errors=0
	logs=0
	unfinished=0
	for f in "$VL"/vg.*; do
		[ -f "$f" ] || continue
		logs=$((logs + 1))
		e=$(sed -n 's/.*ERROR SUMMARY: \([0-9]*\) errors.*/\1/p' "$f" | tail -n 1)
		if [ -z "$e" ]; then
			unfinished=$((unfinished + 1))
			e=$(grep -cE '^==[0-9]+== (Invalid |Conditional jump|Use of uninitialised|Syscall param|Mismatched|Source and destination|Argument .* fishy|[0-9,]+ bytes in [0-9,]+ blocks are definitely)' "$f")
		fi
		errors=$((errors + e))
		if [ "$e" -gt 0 ]; then
			echo "# $(grep -m1 '== Command:' "$f" | sed 's/^==[0-9]*== //')"
			grep -E '^==[0-9]+== ( +(at|by) |[A-Z0-9])' "$f" | grep -v -e 'ERROR SUMMARY' -e 'HEAP SUMMARY' \
				-e 'LEAK SUMMARY' -e 'Memcheck,' -e 'Copyright' -e 'Using Valgrind' -e 'Command:' -e 'Parent PID' \
				-e 'For lists' -e 'To see' -e 'Rerun with' -e 'in use at exit' -e 'total heap usage' \
				-e 'All heap blocks' -e 'For counts' | head -n 12 | diag
		fi
	done
	echo "# valgrind: $logs agent processes, $unfinished killed before their summary, $errors errors"
	ok $(( logs < 10 )) "valgrind watched $logs agent processes"
	ok $(( errors != 0 )) "valgrind reports 0 errors (ERROR SUMMARY; got $errors)"
	metric valgrind_processes "$logs"
	metric valgrind_errors "$errors"
fi

# In a sanitizer build, a report in any agent's log is a failure too.
cat "$TMP"/*.log 2>/dev/null | grep -E 'ERROR: [A-Za-z]+Sanitizer|runtime error:|Sanitizer has encountered' >"$TMP/san"
ok $(( $(wc -l <"$TMP/san") != 0 )) "no sanitizer report in the agents' logs"
diag <"$TMP/san"

elapsed=$(( $(date +%s) - started ))
metric security_runtime_seconds "$elapsed"
echo "# runtime ${elapsed}s; figures in $TSV"
done_testing
