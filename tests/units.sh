#!/bin/sh
# The systemd user units (systemd/*.in), with no service manager running:
#
#  - systemd-analyze verify accepts both, as generated for the build tree;
#  - make install puts them, the environment.d snippet and the man pages
#    where they belong, and --with-systemduserunitdir moves the units;
#  - systemd-analyze security --offline scores the service 2.0 or lower;
#  - the keystore and %t/mcpsig stay writable under its Protect* settings;
#  - every system call the agent makes in the integration suite passes its
#    SystemCallFilter;
#  - it sets PrivateUsers=yes, and no option that a user manager skips.
# Each check is also run on a broken unit or trace that it must reject.
# Prints TAP.

. "${top_srcdir:-.}/tests/lib.sh"

command -v systemd-analyze >/dev/null 2>&1 || bail "systemd-analyze is required (Debian package systemd)"
command -v strace >/dev/null 2>&1 || bail "strace is required"
BUILD=$(cd "$top_builddir" && pwd)
SRC=$(cd "$top_srcdir" && pwd)
U=$TMP/units
mkdir -p "$U"
make -C "$BUILD" systemd/mcpsig-agent.socket systemd/mcpsig-agent.service >/dev/null 2>&1 ||
	bail "cannot generate the units"
cp "$BUILD/systemd/mcpsig-agent.socket" "$U/"
# As for the build tree: ExecStart runs the agent just built.
sed -e "s|^ExecStart=.*|ExecStart=$BUILD/daemon/mcpsig-agent -D|" \
	-e "s|^ExecReload=[^ ]*/mcpsig-agent |ExecReload=$BUILD/daemon/mcpsig-agent |" "$BUILD/systemd/mcpsig-agent.service" \
	>"$U/mcpsig-agent.service"
SERVICE=$U/mcpsig-agent.service

verify() { # verify DIR: systemd-analyze verify both units in DIR
	(cd "$1" && XDG_RUNTIME_DIR=$TMP systemd-analyze verify --user --man=no \
		./mcpsig-agent.socket ./mcpsig-agent.service) >"$TMP/verify.out" 2>&1 &&
		! grep -qiE 'unknown|invalid|failed|ignoring' "$TMP/verify.out"
}

# ---- verify ------------------------------------------------------------------------------

verify "$U"
ok $? "systemd-analyze verify accepts the socket and the service"
diag <"$TMP/verify.out"
mkdir -p "$TMP/bad"
cp "$U/mcpsig-agent.socket" "$TMP/bad/"
sed 's|^ExecStart=.*|ExecStart=/nonexistent/mcpsig-agent -D|; s|^ProtectSystem=strict|ProtectSytem=strict|' \
	"$SERVICE" >"$TMP/bad/mcpsig-agent.service"
verify "$TMP/bad"
ok $(( $? == 0 )) "forgery: a missing ExecStart binary and a misspelt setting are reported"

grep -q '^ListenStream=%t/mcpsig/agent.sock$' "$U/mcpsig-agent.socket" &&
	grep -q '^SocketMode=0600$' "$U/mcpsig-agent.socket" && grep -q '^DirectoryMode=0700$' "$U/mcpsig-agent.socket"
ok $? "the socket: %t/mcpsig/agent.sock, 0600, in a 0700 directory"
grep -q '^ExecStartPost=.*systemctl --user set-environment MCPSIG_AUTH_SOCK=%t/mcpsig/agent.sock$' \
	"$U/mcpsig-agent.socket" &&
	grep -q '^ExecStopPost=.*systemctl --user unset-environment MCPSIG_AUTH_SOCK$' "$U/mcpsig-agent.socket" &&
	grep -q '^WantedBy=sockets.target$' "$U/mcpsig-agent.socket"
ok $? "the socket exports MCPSIG_AUTH_SOCK, unexports it on stop, and is wanted by sockets.target"
grep -q '^Type=notify$' "$SERVICE" && grep -q '^ExecReload=.*/mcpsig-agent --reload \$MAINPID$' "$SERVICE" &&
	! grep -q '^Exec[A-Za-z]*=.*kill ' "$SERVICE"
ok $? "the service is Type=notify and reloads through the agent's own binary (no kill(1))"

# ---- install ----------------------------------------------------------------------------------

make -C "$BUILD" install DESTDIR="$TMP/inst" >"$TMP/install.log" 2>&1
ok $? "make install (DESTDIR)"
prefix=$(sed -n 's/^prefix = //p' "$BUILD/Makefile")
unitdir=$(pkg-config --define-variable=prefix="$prefix" --variable=systemduserunitdir systemd 2>/dev/null)
[ -n "$unitdir" ] || unitdir=$prefix/lib/systemd/user
ok "$([ -f "$TMP/inst$unitdir/mcpsig-agent.socket" ] && [ -f "$TMP/inst$unitdir/mcpsig-agent.service" ] && echo 0 || echo 1)" \
	"the units are installed in $unitdir"
grep -q "^ExecStart=$prefix/bin/mcpsig-agent -D$" "$TMP/inst$unitdir/mcpsig-agent.service"
ok $? "the installed service runs the installed agent"
ok "$([ -f "$TMP/inst$prefix/lib/environment.d/60-mcpsig.conf" ] && echo 0 || echo 1)" \
	"the environment.d snippet is installed"
ok "$([ -f "$TMP/inst$prefix/share/man/man1/mcpsig-agent.1" ] && [ -f "$TMP/inst$prefix/share/man/man1/mcpsig.1" ] && echo 0 || echo 1)" \
	"the man pages are installed"
mkdir -p "$TMP/cfg"
(cd "$TMP/cfg" && "$SRC/configure" --quiet --with-systemduserunitdir=/opt/units) >/dev/null 2>&1 &&
	grep -q '^systemduserunitdir = /opt/units$' "$TMP/cfg/Makefile"
ok $? "--with-systemduserunitdir=DIR moves the units"

# ---- security score -------------------------------------------------------------------------

score() { # score UNIT: the exposure level systemd-analyze gives, e.g. 1.3
	systemd-analyze security --offline=true "$1" 2>/dev/null | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p'
}
s=$(score "$SERVICE")
echo "# systemd-analyze security: exposure $s"
ok "$(awk -v s="$s" 'BEGIN { exit !(s != "" && s <= 2.0) }' && echo 0 || echo 1)" "the service scores $s, 2.0 or lower"
awk '/^\[Service\]/ { print; print "Type=notify"; print "ExecStart=/bin/true"; exit } { print }' "$SERVICE" \
	>"$TMP/bare.service"
b=$(score "$TMP/bare.service")
ok "$(awk -v s="$b" 'BEGIN { exit !(s > 2.0) }' && echo 0 || echo 1)" "forgery: without the hardening it scores $b"

# ---- writable paths ------------------------------------------------------------------------------

# writable UNIT PATH: under the unit's ProtectSystem=/ProtectHome= and
# ReadWritePaths=, may the agent write PATH? PATH uses %t and %h as the
# unit does; the rules are those of systemd.exec(5).
writable() {
	awk -v path="$2" '
		function under(p, dir) { return p == dir || index(p, dir "/") == 1 }
		/^ProtectSystem=/ { ps = substr($0, 15) }
		/^ProtectHome=/ { ph = substr($0, 13) }
		/^(ReadWritePaths|ReadOnlyPaths|InaccessiblePaths)=/ {
			split($0, kv, "="); n = split(kv[2], ps_, " ")
			for (i = 1; i <= n; i++) { p = ps_[i]; sub(/^[-+]/, "", p); rules[kv[1], p] = 1 }
		}
		END {
			for (k in rules) { split(k, a, SUBSEP); if (a[1] == "InaccessiblePaths" && under(path, a[2])) exit 1 }
			for (k in rules) { split(k, a, SUBSEP); if (a[1] == "ReadWritePaths" && under(path, a[2])) exit 0 }
			for (k in rules) { split(k, a, SUBSEP); if (a[1] == "ReadOnlyPaths" && under(path, a[2])) exit 1 }
			if (ps == "strict") exit 1
			if (index(path, "%h") == 1 || index(path, "%t") == 1) { if (ph == "yes" || ph == "true" || ph == "read-only" || ph == "tmpfs") exit 1 }
			exit 0
		}' "$1"
}
writable "$SERVICE" "%h/.local/share/mcpsig" && writable "$SERVICE" "%h/.local/share/mcpsig/identities/default" &&
	writable "$SERVICE" "%t/mcpsig"
ok $? "the keystore (%h/.local/share/mcpsig) and %t/mcpsig stay writable"
grep -q '^ProtectSystem=strict$' "$SERVICE" && grep -q '^ProtectHome=read-only$' "$SERVICE" &&
	! writable "$SERVICE" "%h/.ssh" && ! writable "$SERVICE" "/etc/mcpsig"
ok $? "and nothing else in the home or the system is"
env -u XDG_DATA_HOME -u MCPSIG_KEYSTORE HOME=/home/u "$AGENT" --help >/dev/null 2>&1
grep -q '\${XDG_DATA_HOME:-~/.local/share}/mcpsig' "$top_srcdir/daemon/main.c"
ok $? "(the agent's default keystore is that directory)"
grep -v '^ReadWritePaths=' "$SERVICE" >"$TMP/ro.service"
! writable "$TMP/ro.service" "%h/.local/share/mcpsig" && ! writable "$TMP/ro.service" "%t/mcpsig"
ok $? "forgery: without ReadWritePaths= both are read-only"
sed 's/^ProtectHome=.*/ProtectHome=yes/; s/^ReadWritePaths=.*/ReadWritePaths=%t\/mcpsig/' "$SERVICE" >"$TMP/rw.service"
! writable "$TMP/rw.service" "%h/.local/share/mcpsig"
ok $? "forgery: ProtectHome=yes without the keystore in ReadWritePaths= hides it"

# ---- system calls -----------------------------------------------------------------------------

# expand NAME...: every system call a filter set (or name) stands for.
expand() {
	for item in "$@"; do
		case $item in
		@*) systemd-analyze syscall-filter "$item" 2>/dev/null |
			sed -n '2,$ s/^ *\([@a-z0-9_-]*\).*/\1/p' | grep -v '^$' | while read -r sub; do expand "$sub" </dev/null; done ;;
		*) echo "$item" ;;
		esac
	done
}
filter_allowed() { # filter_allowed UNIT: the system calls its SystemCallFilter= lines allow
	allow=$TMP/allow.$$
	deny=$TMP/deny.$$
	: >"$allow"
	: >"$deny"
	sed -n 's/^SystemCallFilter=//p' "$1" | while read -r line; do
		case $line in
		"~"*) expand ${line#\~} >>"$deny" </dev/null ;;
		*) expand $line >>"$allow" </dev/null ;;
		esac
	done
	sort -u "$allow" | grep -vxF -f "$deny"
	rm -f "$allow" "$deny"
}
filter_allowed "$SERVICE" >"$TMP/allowed"
ok "$([ "$(wc -l <"$TMP/allowed")" -gt 100 ] && echo 0 || echo 1)" \
	"the service's filter expands to $(wc -l <"$TMP/allowed") system calls"

mkdir -p "$TMP/traces"
AGENT_TRACE_DIR=$TMP/traces top_builddir=$BUILD sh "$top_srcdir/tests/integration.sh" >"$TMP/integration.out" 2>&1
ok $? "the integration suite passes with the agent traced"
cat "$TMP"/traces/trace.* 2>/dev/null | sed -n 's/^[0-9]* *\([a-z0-9_]*\)(.*/\1/p' | sort -u >"$TMP/used"
ok "$([ "$(wc -l <"$TMP/used")" -gt 20 ] && echo 0 || echo 1)" "the agent made $(wc -l <"$TMP/used") distinct system calls"
grep -vxF -f "$TMP/allowed" "$TMP/used" >"$TMP/denied"
ok "$([ ! -s "$TMP/denied" ] && echo 0 || echo 1)" "every one of them passes SystemCallFilter="
[ -s "$TMP/denied" ] && diag <"$TMP/denied"
sed 's/^SystemCallFilter=~@privileged @keyring$/SystemCallFilter=~@privileged @keyring @sync @file-system/' "$SERVICE" >"$TMP/tight.service"
filter_allowed "$TMP/tight.service" >"$TMP/allowed2"
grep -vxF -f "$TMP/allowed2" "$TMP/used" >"$TMP/denied2"
ok "$(grep -qx fsync "$TMP/denied2" && echo 0 || echo 1)" "forgery: a filter without @sync is caught (fsync)"

# ---- PrivateUsers ------------------------------------------------------------------------------

# A user manager can drop capabilities and build namespaces only inside a
# user namespace of the service's own (tests/systemd-real.sh measures it
# under a real one); without it the unit fails at step CAPABILITIES.
grep -q '^PrivateUsers=yes$' "$SERVICE" && ! grep -q '^DynamicUser=' "$SERVICE"
ok $? "the service sets PrivateUsers=yes (and not DynamicUser=)"
systemd-analyze security --offline=true "$SERVICE" 2>/dev/null | grep -q '✓ PrivateUsers='
ok $? "systemd-analyze agrees: a private user namespace"
grep -v '^PrivateUsers=' "$SERVICE" >"$TMP/nouserns.service"
grep -q '^PrivateUsers=yes$' "$TMP/nouserns.service"
ok $(( $? == 0 )) "forgery: a unit without PrivateUsers=yes is caught"
# Options a user manager cannot apply, which would only look like protection.
! grep -qE '^(ProcSubset|ProtectProc|IPAddressDeny|IPAddressAllow|DevicePolicy|KeyringMode)=' "$SERVICE" &&
	! grep -q '^ExecStartPre=+' "$SERVICE"
ok $? "no option that a user manager skips (ProcSubset=, ProtectProc=, IPAddressDeny=, DevicePolicy=, KeyringMode=, ExecStartPre=+)"
printf 'ProcSubset=pid\n' >>"$TMP/nouserns.service"
! grep -qE '^(ProcSubset|ProtectProc|IPAddressDeny|IPAddressAllow|DevicePolicy|KeyringMode)=' "$TMP/nouserns.service"
ok $(( $? == 0 )) "forgery: a unit with ProcSubset=pid is caught"
grep -q '^ExecStartPre=.*mkdir -p -m 0700 %h/.local/share/mcpsig$' "$U/mcpsig-agent.socket"
ok $? "the socket unit makes the keystore before the sandboxed service can start"

done_testing
