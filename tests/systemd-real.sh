#!/bin/sh
# The user units under a real systemd: a Debian 12 root file system (made by
# mmdebstrap, cached outside the source tree), the sources built and
# `make install`ed inside it, booted with systemd-nspawn (systemd 252 as
# PID 1, a real `systemd --user` manager for a lingering test user), and the
# README's steps run as that user through PAM login sessions. Nothing here is
# a stand-in. Prints TAP.
#
#  1. negative controls: the unit as it was before (CapabilityBoundingSet=
#     without PrivateUsers=) fails at activation with 218/CAPABILITIES, and
#     without PrivateUsers= and the capability options the manager skips the
#     namespaces (seen at debug level);
#  2. the shipped unit: the socket activates the service on first connect,
#     MCPSIG_AUTH_SOCK is in the manager's environment, StatusText is set,
#     and the manager (at debug level) ignores none of its options;
#  3. every command: sign, dpop, jwk, add-identity, import, remove, watch,
#     rotate (against the verifying test server on the host), reload;
#  4. journal records carry identity, origin, tag, keyid, the peer's pid and
#     the program (comm and command line; the executable where readable);
#  5. the sandbox seen from inside the agent's own namespaces (read-only
#     home and system, writable keystore and socket directory, private /tmp
#     and /dev, only "lo"), from /proc/PID/status, and from a probe run
#     under a copy of the unit; each beside a control outside the sandbox;
#  6. systemd-analyze --user security scores it 2.0 or lower, and every
#     option it credits is one of those checked;
#  7. reload keeps the MainPID; a stop and re-activation keep the keys;
#  8. mlock() denied by seccomp is named as that, and a start-up failure
#     leaves one clear journal line; at the end no unit has failed.
#
# Needs root, mmdebstrap and systemd-nspawn (Debian packages mmdebstrap and
# systemd-container), and the Debian mirror. Where the machine cannot boot a
# container, it says so and fails: it never reports a pass.
#
# MCPSIG_TEST_CACHE (default /var/cache/mcpsig-test) holds the root file
# system tarball; MCPSIG_DEBIAN_MIRROR (default http://deb.debian.org/debian)
# is where mmdebstrap gets it.

. "${top_srcdir:-.}/tests/lib.sh"

SRC=$(cd "$top_srcdir" && pwd)
[ "$(id -u)" -eq 0 ] || bail "this suite boots a container and must run as root"
command -v mmdebstrap >/dev/null 2>&1 || bail "mmdebstrap is required (Debian package mmdebstrap)"
command -v systemd-nspawn >/dev/null 2>&1 || bail "systemd-nspawn is required (Debian package systemd-container)"
command -v nsenter >/dev/null 2>&1 || bail "nsenter is required (util-linux)"
[ -x "$NODE" ] || bail "run npm ci in tests/node (the test server runs on its Node)"

CACHE=${MCPSIG_TEST_CACHE:-/var/cache/mcpsig-test}
MIRROR=${MCPSIG_DEBIAN_MIRROR:-http://deb.debian.org/debian}
PACKAGES=systemd,systemd-sysv,dbus,dbus-user-session,libpam-systemd,build-essential,autoconf,automake,libtool
PACKAGES=$PACKAGES,pkg-config,libuv1-dev,libsodium-dev,libmsgpack-dev,libsystemd-dev,libssl-dev,libjansson-dev
PACKAGES=$PACKAGES,libcurl4-openssl-dev
USER_NAME=alice
ROOT=$TMP/root
T=/opt/mcpsig-test   # scripts and results, inside the root
NSPAWN_PID=
LEADER=
CGROUPS=

# ---- the container ----------------------------------------------------------------------

teardown() {
	if [ -n "$NSPAWN_PID" ] && kill -0 "$NSPAWN_PID" 2>/dev/null; then
		kill -TERM "$NSPAWN_PID" 2>/dev/null # nspawn asks the container's systemd to halt
		n=300
		while [ "$n" -gt 0 ] && kill -0 "$NSPAWN_PID" 2>/dev/null; do
			sleep 0.1
			n=$((n - 1))
		done
		kill -KILL "$NSPAWN_PID" 2>/dev/null
	fi
	for cg in $CGROUPS; do rmdir "$cg" 2>/dev/null; done
	# Nothing of the host's may stay mounted in the root that cleanup removes.
	[ -n "${DEVNULL_LENT:-}" ] && umount "$ROOT/dev/null" 2>/dev/null
	cleanup
}
trap teardown EXIT

rootfs_tarball() { # prints the path of the cached root file system, making it first if needed
	key=$(printf 'bookworm minbase %s' "$PACKAGES" | sha256sum | cut -c1-16)
	tarball=$CACHE/bookworm-$key.tar
	if [ ! -s "$tarball" ]; then
		mkdir -p "$CACHE" || return 1
		echo "# making the root file system (mmdebstrap, once per package list): $tarball" >&2
		# (mmdebstrap picks the output format from the name: keep ".tar" last.)
		mmdebstrap --quiet --variant=minbase --include="$PACKAGES" bookworm "$tarball.tmp.tar" "$MIRROR" \
			</dev/null >"$TMP/mmdebstrap.log" 2>&1 || {
			diag <"$TMP/mmdebstrap.log" >&2
			rm -rf "$tarball.tmp.tar"
			return 1
		}
		mv "$tarball.tmp.tar" "$tarball" || return 1
	fi
	echo "$tarball"
}

# copy_sources DIR: the source tree as git sees it (tracked and untracked, not ignored).
copy_sources() {
	mkdir -p "$1"
	if [ -d "$SRC/.git" ] && command -v git >/dev/null 2>&1; then
		(cd "$SRC" && git ls-files -z -co --exclude-standard | xargs -0 cp --parents -d -t "$1" 2>/dev/null) ||
			return 1
	else
		tar -C "$SRC" --exclude='./build*' --exclude=node_modules --exclude=.git -cf - . | tar -C "$1" -xf -
	fi
}

in_root() { # in_root COMMAND...: a command in the root, before it boots
	chroot "$ROOT" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root "$@"
}

# boot: systemd-nspawn from cgroups of its own (plain nspawn, in the shell's
# cgroup, fails here with "Failed to open system bus"). Sets LEADER, the
# container's PID 1 as the host sees it.
boot() {
	for base in /sys/fs/cgroup/systemd /sys/fs/cgroup/unified /sys/fs/cgroup; do
		[ -w "$base/cgroup.procs" ] || continue
		mkdir -p "$base/mcpsig-test-$$" 2>/dev/null && CGROUPS="$CGROUPS $base/mcpsig-test-$$"
		[ -f /sys/fs/cgroup/cgroup.controllers ] && break # cgroup v2 only: one hierarchy
	done
	CG="$CGROUPS" sh -c 'for cg in $CG; do echo $$ >"$cg/cgroup.procs"; done
		exec systemd-nspawn --quiet --register=no --keep-unit -D "$1" -b --console=passive \
			--capability=CAP_IPC_LOCK' sh "$ROOT" >"$TMP/nspawn.log" 2>&1 &
	NSPAWN_PID=$!
	n=300
	while [ "$n" -gt 0 ]; do
		LEADER=$(for s in /proc/[0-9]*/stat; do
			awk -v p="$NSPAWN_PID" '$4 == p { print $1 }' "$s" 2>/dev/null
		done | head -1)
		[ -n "$LEADER" ] && break
		kill -0 "$NSPAWN_PID" 2>/dev/null || break
		sleep 0.1
		n=$((n - 1))
	done
	[ -n "$LEADER" ] || return 1
	timeout 120 nsenter -t "$LEADER" -a systemctl is-system-running --wait >"$TMP/boot.state" 2>&1
	case $(cat "$TMP/boot.state") in
	running | degraded) return 0 ;;
	*) return 1 ;;
	esac
}

as_root() { # as_root COMMAND...: a command in the booted container, as its root
	timeout 120 nsenter -t "$LEADER" -a "$@" </dev/null
}

# as_user SCRIPT: runs the sh script SCRIPT (text) as the test user, in a
# PAM login session, as `systemd-run --pipe -p PAMName=login` gives it.
# Its standard output is ours; its exit status is returned.
as_user() {
	as_user_n=$((${as_user_n:-0} + 1))
	# The script changes to the home itself: with WorkingDirectory=~ the
	# manager's own chdir failed (EACCES) for some callers of systemd-run.
	printf 'cd || exit 200\n%s\n' "$1" >"$ROOT$T/step$as_user_n.sh"
	timeout 300 nsenter -t "$LEADER" -a systemd-run --quiet --wait --pipe -p User="$USER_NAME" -p PAMName=login \
		-p CollectMode=inactive-or-failed /bin/sh "$T/step$as_user_n.sh" </dev/null 2>"$TMP/as_user.err"
	as_user_rc=$?
	[ -s "$TMP/as_user.err" ] && cat "$TMP/as_user.err" >&2
	echo "step$as_user_n rc=$as_user_rc" >>"$TMP/as_user.log"
	return $as_user_rc
}

# ---- set-up -------------------------------------------------------------------------------

tarball=$(rootfs_tarball) || bail "mmdebstrap could not make a Debian 12 root file system from $MIRROR"
mkdir -p "$ROOT" && tar -C "$ROOT" -xf "$tarball" || bail "cannot unpack $tarball"
copy_sources "$ROOT/src" || bail "cannot copy the sources into the root"
mkdir -p "$ROOT$T/out" && chmod 0755 "$ROOT$T" && chmod 1777 "$ROOT$T/out"
# A root made inside a container may have no device nodes (mknod is refused
# there), and the build's shell needs /dev/null: lend it the host's for the
# steps run in the root before it boots (the booted container has its own /dev).
DEVNULL_LENT=
if [ ! -c "$ROOT/dev/null" ]; then
	rm -f "$ROOT/dev/null" && : >"$ROOT/dev/null" && mount --bind /dev/null "$ROOT/dev/null" && DEVNULL_LENT=1
fi
in_root sh -c 'cd /src && autoreconf -fi && mkdir -p /build && cd /build &&
	/src/configure --quiet --prefix=/usr/local && make -j"$(nproc)" && make install && ldconfig &&
	mkdir -p /usr/local/libexec && cc -O2 -Wall -o /usr/local/libexec/mcpsig-sandbox-probe /src/tests/sandbox-probe.c' \
	>"$TMP/build.log" 2>&1
status=$?
[ "$status" -eq 0 ] || tail -30 "$TMP/build.log" | diag
ok "$status" "the sources build and make install inside a fresh Debian 12 root"
ok "$([ -f "$ROOT/usr/local/lib/systemd/user/mcpsig-agent.service" ] && [ -f "$ROOT/usr/local/lib/systemd/user/mcpsig-agent.socket" ] && echo 0 || echo 1)" \
	"make install puts the units where the user manager looks (/usr/local/lib/systemd/user)"
ok "$([ ! -e "$ROOT/usr/bin/kill" ] && [ ! -e "$ROOT/bin/kill" ] && echo 0 || echo 1)" \
	"the root is slim: no kill(1) (procps is not installed), so reload must not need it"
in_root useradd -m -s /bin/sh "$USER_NAME" || bail "useradd failed"
UID_=$(in_root id -u "$USER_NAME")
[ -n "$DEVNULL_LENT" ] && umount "$ROOT/dev/null" && rm -f "$ROOT/dev/null"
# loginctl enable-linger, done before boot: the user manager starts at boot.
mkdir -p "$ROOT/var/lib/systemd/linger" && : >"$ROOT/var/lib/systemd/linger/$USER_NAME"
# A module directory for ProtectKernelModules= to hide (a minbase root has none).
mkdir -p "$ROOT/usr/lib/modules/mcpsig-probe" && : >"$ROOT/usr/lib/modules/mcpsig-probe/marker"
# The unit as it was before this suite existed, for the negative control.
sed 's|@bindir@|/usr/local/bin|g; s|@MKDIR@|/usr/bin/mkdir|g; s|@KILL@|/usr/bin/kill|g' \
	"$SRC/tests/systemd-real/before-fix.service.in" >"$ROOT$T/before-fix.service"

boot || {
	diag <"$TMP/nspawn.log"
	diag <"$TMP/boot.state"
	bail "this machine cannot boot a systemd container (systemd-nspawn), so the units cannot be tested: failing"
}
ok 0 "the container boots: systemd $(as_root systemctl --version | sed -n '1s/^systemd \([0-9]*\).*/\1/p') as PID 1 ($(cat "$TMP/boot.state"))"
# Container artefact: nspawn overlays a FIFO on /proc/kmsg, and a service
# with PrivateUsers= and ProtectKernelLogs= then fails with 226/NAMESPACE
# (it cannot bind over the FIFO). A real machine has no such overlay.
as_root sh -c 'grep -q " /proc/kmsg " /proc/self/mountinfo && umount /proc/kmsg; true'
as_user 'systemctl --user is-system-running --wait' >"$TMP/user.state" 2>&1
ok "$(grep -qx -e running -e degraded "$TMP/user.state" && echo 0 || echo 1)" \
	"the test user's systemd --user manager runs ($(cat "$TMP/user.state"))"

# agent_main_pid: the service's MainPID (0 when not running).
agent_main_pid() { as_user 'systemctl --user show -P MainPID mcpsig-agent.service'; }
# journal_mark NAME, then journal_since NAME: the test user's processes' journal
# messages (its manager's and the service's), at every level, since the mark.
journal_mark() {
	as_root journalctl --no-pager -n 0 --show-cursor | sed -n 's/^-- cursor: //p' >"$TMP/mark.$1"
}
journal_since() {
	as_root journalctl --no-pager -o cat -p debug --after-cursor="$(cat "$TMP/mark.$1")" "_UID=$UID_"
}

# ---- 1. negative controls -------------------------------------------------------------------

as_user "mkdir -p ~/.config/systemd/user && cp $T/before-fix.service ~/.config/systemd/user/mcpsig-agent.service &&
	systemctl --user daemon-reload && systemctl --user enable --now mcpsig-agent.socket >/dev/null 2>&1
	mcpsig status >/dev/null 2>&1; echo status=\$?
	sleep 2
	systemctl --user show -P ExecMainStatus mcpsig-agent.service" >"$TMP/before.out" 2>&1
ok "$(grep -qx 'status=2' "$TMP/before.out" && grep -qx 218 "$TMP/before.out" && echo 0 || echo 1)" \
	"control: the unit as it was fails at activation (exit 218/CAPABILITIES), and mcpsig status cannot reach the agent"
diag <"$TMP/before.out"

# The issue's measurement: without PrivateUsers= and with the
# capability-dropping options removed, the service starts, but the manager
# skips its namespaces, saying so only at debug level.
journal_mark nouserns
as_user "systemctl --user stop mcpsig-agent.socket mcpsig-agent.service; systemctl --user reset-failed
	sed -e '/^PrivateUsers=/d' -e '/^CapabilityBoundingSet=/d' -e '/^PrivateDevices=/d' -e '/^ProtectKernelModules=/d' \
		-e '/^ProtectKernelLogs=/d' -e '/^ProtectClock=/d' /usr/local/lib/systemd/user/mcpsig-agent.service \
		>~/.config/systemd/user/mcpsig-agent.service
	systemctl --user daemon-reload && systemctl --user log-level debug
	systemctl --user start mcpsig-agent.socket && mcpsig status >/dev/null; echo status=\$?
	systemctl --user log-level info" >"$TMP/nouserns.out" 2>&1
journal_since nouserns >"$TMP/nouserns.log"
# What the manager says, at debug level, when it skips a setting. (A plain
# "Failed to mount proc" is an internal attempt it falls back from; with
# subset= or hidepid= options it is ProcSubset=/ProtectProc= being dropped.)
IGNORED='assuming containerized execution|is configured, but .* ignoring|ignoring namespace setup|access prohibited, ignoring'
IGNORED="$IGNORED|Failed to mount proc.*(subset|hidepid)=|Restricting /proc/ access"
ok "$(grep -qx 'status=0' "$TMP/nouserns.out" && grep -qE -e "$IGNORED" "$TMP/nouserns.log" && echo 0 || echo 1)" \
	"control: without PrivateUsers= the manager starts it with its namespaces silently skipped, and this suite sees it"
grep -E -e "$IGNORED" "$TMP/nouserns.log" | sort -u | head -5 | diag
as_user 'systemctl --user stop mcpsig-agent.socket mcpsig-agent.service; systemctl --user disable mcpsig-agent.socket
	rm -f ~/.config/systemd/user/mcpsig-agent.service; systemctl --user reset-failed; systemctl --user daemon-reload
	rm -rf ~/.local/share/mcpsig' >/dev/null 2>&1

# ---- 2. the shipped units, as the README says ---------------------------------------------------

as_user "systemctl --user daemon-reload && systemctl --user enable --now mcpsig-agent.socket" >"$TMP/enable.out" 2>&1
ok $? "systemctl --user enable --now mcpsig-agent.socket"
as_user 'systemctl --user is-active mcpsig-agent.service' >"$TMP/before-first.out" 2>&1
ok "$(grep -qx inactive "$TMP/before-first.out" && echo 0 || echo 1)" "the service is not running before the first connection"
as_user 'systemctl --user show-environment' >"$TMP/env.out" 2>&1
ok "$(grep -qx "MCPSIG_AUTH_SOCK=/run/user/$UID_/mcpsig/agent.sock" "$TMP/env.out" && echo 0 || echo 1)" \
	"MCPSIG_AUTH_SOCK is in systemctl --user show-environment"
journal_mark start
as_user "systemctl --user log-level debug; mcpsig status; echo status=\$?
	systemctl --user log-level info" >"$TMP/status.out" 2>&1
ok "$(grep -qx 'status=0' "$TMP/status.out" && grep -q '^agent: *running' "$TMP/status.out" && echo 0 || echo 1)" \
	"the first connection (mcpsig status) activates the service and is answered"
diag <"$TMP/status.out"
ok "$(grep -q '^key memory: locked' "$TMP/status.out" && echo 0 || echo 1)" "key memory is locked in the service"
journal_since start >"$TMP/start.log"
grep -E -e "$IGNORED" "$TMP/start.log" >"$TMP/ignored" 2>/dev/null
ok "$([ -s "$TMP/start.log" ] && [ ! -s "$TMP/ignored" ] && echo 0 || echo 1)" \
	"at debug level the manager ignores none of the unit's options ($(wc -l <"$TMP/start.log") lines read)"
diag <"$TMP/ignored"
as_user 'systemctl --user show -P StatusText mcpsig-agent.service' >"$TMP/statustext" 2>&1
ok "$(grep -q 'connection' "$TMP/statustext" && echo 0 || echo 1)" "StatusText is set: $(head -1 "$TMP/statustext")"
MAINPID=$(agent_main_pid)
ok "$([ "${MAINPID:-0}" -gt 1 ] && echo 0 || echo 1)" "the service has a MainPID ($MAINPID)"

# ---- 3. every command --------------------------------------------------------------------------------

# The service was started above with the manager logging at debug level, and
# journald caches a sender's metadata for a while: records the agent sends
# soon after such a start can carry its pre-exec context (init.scope). Start
# it again as it normally starts, so the journal checks below see what a user
# sees with journalctl --user -u mcpsig-agent.
as_user 'systemctl --user stop mcpsig-agent.service; sleep 6; mcpsig status >/dev/null' >/dev/null 2>&1

"$NODE" "$SRC/tests/node/mcp-server.mjs" --lifetime 900 >"$TMP/server.out" 2>"$TMP/server.log" &
AGENT_PIDS="$AGENT_PIDS $!"
wait_for 20 grep -q '^PORT ' "$TMP/server.out" || bail "the test server did not start"
PORT=$(sed -n 's/^PORT //p' "$TMP/server.out")
URL=http://127.0.0.1:$PORT/mcp   # the container shares the host's network; the agent's sandbox does not

as_user 'sh -c '\''echo pid=$$; exec mcpsig sign -X POST -u https://mcp.example.com/mcp -H "MCP-Protocol-Version: 2025-06-18" -d "{}" --json'\''' \
	>"$TMP/sign.out" 2>&1
SIGN_PID=$(sed -n 's/^pid=//p' "$TMP/sign.out")
ok "$(grep -q '"Signature-Input"' "$TMP/sign.out" && grep -q '"Signature-Agent"' "$TMP/sign.out" && echo 0 || echo 1)" \
	"mcpsig sign through the activated service"
as_user 'mcpsig dpop -X POST -u https://auth.example.com/token --origin https://mcp.example.com --json' >"$TMP/dpop.out" 2>&1
ok "$(grep -q '"proof": *"ey' "$TMP/dpop.out" && echo 0 || echo 1)" "mcpsig dpop"
as_user 'mcpsig jwk --origin https://mcp.example.com' >"$TMP/jwk1.out" 2>&1
ok "$(grep -q '"kty"' "$TMP/jwk1.out" && echo 0 || echo 1)" "mcpsig jwk"
as_user 'mcpsig add-identity work && mcpsig --identity work sign -X GET -u https://mcp.example.com/mcp >/dev/null &&
	head -c 32 /dev/urandom >seed && mcpsig import --origin https://imported.example.com --seed seed && rm -f seed &&
	mcpsig remove --origin https://imported.example.com && mcpsig list --json >'$T'/out/list.json' >"$TMP/cmds.out" 2>&1
ok "$(grep -q '"identity": *"work"' "$ROOT$T/out/list.json" && ! grep -q imported.example "$ROOT$T/out/list.json" &&
	grep -q 'imported.example' "$TMP/cmds.out" && echo 0 || echo 1)" \
	"mcpsig add-identity, import, remove and list"
as_user "mcpsig sign -X GET -u $URL >/dev/null && mcpsig rotate --status --origin $URL --json >$T/out/before.json &&
	(mcpsig watch --json --count 2 >$T/out/watch.out 2>&1 &) ; sleep 1
	mcpsig rotate $URL; echo rotate=\$?; sleep 1; mcpsig rotate --status --origin $URL --json >$T/out/after.json" \
	>"$TMP/rotate.out" 2>&1
ok "$(grep -qx 'rotate=0' "$TMP/rotate.out" && grep -q '^committed' "$TMP/rotate.out" && echo 0 || echo 1)" \
	"mcpsig rotate commits against the verifying test server"
diag <"$TMP/rotate.out"
ok "$(grep -c '"event"' "$ROOT$T/out/watch.out" | grep -qx 2 && echo 0 || echo 1)" \
	"mcpsig watch sees the rotation's begin and commit"
curl -sf "http://127.0.0.1:$PORT/__stats" >"$TMP/stats.json" 2>/dev/null
# The server, which verifies every request itself, now holds the new key under the same tag, and has retired the old one.
"$NODE" -e 'const fs = require("fs"); const [s, b, a] = process.argv.slice(1).map((f) => JSON.parse(fs.readFileSync(f, "utf8")));
	const ok = b.tag === a.tag && b.keyid !== a.keyid && s.bindings[a.tag] === a.keyid && s.retired.includes(b.keyid);
	process.exit(ok ? 0 : 1)' "$TMP/stats.json" "$ROOT$T/out/before.json" "$ROOT$T/out/after.json"
ok $? "the test server holds the new key under the same tag and refuses the old one"

# ---- 4. the journal ----------------------------------------------------------------------------------

# The record of the key that mcpsig sign's first contact created (the journal may
# take a moment to have it: asked again for up to 10 s).
created_record() {
	as_root journalctl --no-pager -o export MESSAGE_ID=a6353c071846408aab6c12a03f6a67e5 \
		MCPSIG_ORIGIN=https://mcp.example.com >"$TMP/created.export" 2>&1
	awk -v RS= '/MCPSIG_IDENTITY=default/' "$TMP/created.export" | head -40 >"$TMP/created.rec"
	grep -q '^MCPSIG_ORIGIN=' "$TMP/created.rec"
}
wait_for 10 created_record || {
	echo "# no key-created record found; the journal of the test user says:"
	as_root journalctl --no-pager -o short-monotonic "_UID=$UID_" 2>&1 | tail -40 | diag
	head -c 2000 "$TMP/created.export" | diag
}
grep -q '^_SYSTEMD_USER_UNIT=mcpsig-agent.service$' "$TMP/created.rec"
ok $? "the record comes from the user service (_SYSTEMD_USER_UNIT=mcpsig-agent.service)"
for f in MCPSIG_IDENTITY=default MCPSIG_ORIGIN=https://mcp.example.com MCPSIG_TAG= MCPSIG_KEYID= \
	"MCPSIG_PEER_PID=$SIGN_PID" MCPSIG_PEER_COMM=mcpsig "MCPSIG_PEER_CMDLINE=mcpsig sign -X POST"; do
	grep -q "^$f" "$TMP/created.rec"
	ok $? "the journal record of the first signature carries $f"
done
if grep -q '^MCPSIG_PEER_EXE=' "$TMP/created.rec"; then
	grep -q '^MCPSIG_PEER_EXE=/usr/local/bin/mcpsig$' "$TMP/created.rec"
	ok $? "where it can be read, the executable: $(sed -n 's/^MCPSIG_PEER_EXE=//p' "$TMP/created.rec")"
else
	ok 0 "the executable path is not recorded (unreadable from the user namespace), and the record says nothing false"
fi
grep -q '^MCPSIG_PEER_PID=1$' "$TMP/created.rec"
ok $(( $? == 0 )) "forgery check: the record does not name another pid (1)"
diag <"$TMP/created.rec"

# ---- 5. the sandbox, from inside -------------------------------------------------------------------------

MAINPID=$(agent_main_pid)
cat >"$ROOT$T/inside.sh" <<EOF
# Run in the agent's namespaces (or, as the control, outside them), as the user.
try() { if sh -c "\$2" >/dev/null 2>&1; then echo "\$1=yes"; else echo "\$1=no"; fi; }
try home_writable 'touch /home/$USER_NAME/.probe && rm /home/$USER_NAME/.probe'
try usr_readonly 'touch /usr/.probe 2>&1 | grep -q "Read-only"'
try keystore_writable 'touch /home/$USER_NAME/.local/share/mcpsig/.probe && rm /home/$USER_NAME/.local/share/mcpsig/.probe'
try sockdir_writable 'touch /run/user/$UID_/mcpsig/.probe && rm /run/user/$UID_/mcpsig/.probe'
try tmp_shared 'test -e /tmp/mcpsig-host-marker'
try net_only_lo 'test "\$(sed -n "3,\\\$ s/^ *\\([^:]*\\):.*/\\1/p" /proc/net/dev)" = lo'
try dev_console 'test -e /dev/console'
try kmsg_readable 'head -c1 /proc/kmsg'
try modules_visible 'test -e /usr/lib/modules/mcpsig-probe/marker'
try sysctl_writable 'grep -q " /proc/sys rw\\| /proc/sys .* rw," /proc/self/mountinfo || ! grep -q " /proc/sys " /proc/self/mountinfo'
try cgroup_ro 'grep " /sys/fs/cgroup " /proc/self/mountinfo | grep -q " ro,\\| ro "'
EOF
as_root sh -c ': >/tmp/mcpsig-host-marker; chmod 0644 /tmp/mcpsig-host-marker'
as_root nsenter -t "$MAINPID" -U -m -n -u -S "$UID_" -G "$UID_" -- sh "$T/inside.sh" >"$TMP/inside.out" 2>&1
as_user "sh $T/inside.sh" >"$TMP/outside.out" 2>&1
diag <"$TMP/inside.out"
inside() { grep -qx -e "$1" "$TMP/inside.out"; }
outside() { grep -qx -e "$1" "$TMP/outside.out"; }
# expect NAME INSIDE OUTSIDE DESCRIPTION: the agent's view gives INSIDE, the control's OUTSIDE.
expect() {
	inside "$1=$2"
	ok $? "inside the agent's namespaces: $4"
	outside "$1=$3"
	ok $? "control, outside: $1=$3 (so the check above can fail)"
}
expect home_writable no yes "the home is read-only (ProtectHome=read-only)"
expect usr_readonly yes no "/usr is read-only (ProtectSystem=strict)"
ok "$(inside keystore_writable=yes && inside sockdir_writable=yes && echo 0 || echo 1)" \
	"the keystore and %t/mcpsig stay writable (ReadWritePaths=)"
expect tmp_shared no yes "/tmp is private (PrivateTmp=)"
expect net_only_lo yes no "only lo is visible (PrivateNetwork=)"
expect dev_console no yes "/dev holds only pseudo-devices (PrivateDevices=)"
expect modules_visible no yes "kernel modules are hidden (ProtectKernelModules=)"
inside cgroup_ro=yes
got=$?
if outside cgroup_ro=no; then
	ok $got "inside the agent's namespaces: the cgroup file system is read-only (ProtectControlGroups=); outside it is writable"
else
	ok $got "inside the agent's namespaces: the cgroup file system is read-only (ProtectControlGroups=); outside nspawn mounts it read-only too, so here this shows it is read-only, not which layer made it so"
fi
inside kmsg_readable=no
ok $? "the kernel log is unreadable (ProtectKernelLogs=)"
for ns in user mnt net uts; do
	a=$(as_root readlink "/proc/$MAINPID/ns/$ns")
	b=$(as_root readlink "/proc/1/ns/$ns")
	ok "$([ -n "$a" ] && [ "$a" != "$b" ] && echo 0 || echo 1)" "the agent has its own $ns namespace ($a)"
done
as_root cat "/proc/$MAINPID/status" >"$TMP/pstatus"
as_root cat "/proc/$MAINPID/uid_map" >"$TMP/uidmap"
as_root cat "/proc/$MAINPID/limits" >"$TMP/limits"
for want in 'NoNewPrivs:	1' 'CapEff:	0000000000000000' 'CapPrm:	0000000000000000' \
	'CapBnd:	0000000000000000' 'CapAmb:	0000000000000000' 'Seccomp:	2' 'Umask:	0077'; do
	grep -qx -e "$want" "$TMP/pstatus"
	ok $? "/proc/MAINPID/status: $want"
done
ok "$([ "$(awk '{ print $1, $2, $3 }' "$TMP/uidmap")" = "$UID_ $UID_ 1" ] && echo 0 || echo 1)" \
	"PrivateUsers=: only the user's own uid is mapped, to itself ($(cat "$TMP/uidmap" | tr -s ' '))"
ok "$(grep -q '^Max core file size *0 *0 ' "$TMP/limits" && echo 0 || echo 1)" "LimitCORE=0"

# The system-call sandbox: a probe under a copy of the shipped unit (only
# ExecStart= and Type= changed), and the same probe outside as the control.
as_user "mkdir -p ~/.config/systemd/user &&
	sed -e 's|^ExecStart=.*|ExecStart=/bin/sh -c \"/usr/local/libexec/mcpsig-sandbox-probe %h/.local/share/mcpsig >%t/mcpsig/probe.out 2>\&1\"|' \
		-e 's|^Type=.*|Type=oneshot|' -e '/^ExecReload=/d' -e '/^Restart=/d' -e '/^Requires=/d' -e '/^After=/d' -e '/^Also=/d' \
		/usr/local/lib/systemd/user/mcpsig-agent.service >~/.config/systemd/user/mcpsig-probe.service &&
	systemctl --user daemon-reload && systemctl --user start mcpsig-probe.service; cat /run/user/$UID_/mcpsig/probe.out" \
	>"$TMP/probe-in.out" 2>&1
as_user "mkdir -p /tmp/probe-dir && /usr/local/libexec/mcpsig-sandbox-probe /tmp/probe-dir" >"$TMP/probe-out.out" 2>&1
diag <"$TMP/probe-in.out"
ok "$(grep -qx done=ok "$TMP/probe-in.out" && grep -qx done=ok "$TMP/probe-out.out" && echo 0 || echo 1)" \
	"the probe ran under a copy of the unit and outside it"
probe() { # probe NAME SETTING: refused inside; says whether the control shows the difference
	got=$(sed -n "s/^$1=//p" "$TMP/probe-in.out")
	ctl=$(sed -n "s/^$1=//p" "$TMP/probe-out.out")
	[ -n "$got" ] && [ "$got" != ok ]
	refused=$?
	if [ "$ctl" = ok ]; then
		ok $refused "$2: $1 refused ($got); outside it succeeds"
	else
		ok $refused "$2: $1 refused ($got); outside the kernel refuses it too ($ctl), so here this shows the call is not allowed, not which layer refused"
	fi
}
probe wx_mmap MemoryDenyWriteExecute=
probe personality LockPersonality=
probe ptrace "SystemCallFilter=@system-service"
probe socket_inet RestrictAddressFamilies=AF_UNIX
probe unshare_user RestrictNamespaces=
probe realtime RestrictRealtime=
probe suid RestrictSUIDSGID=
probe sethostname ProtectHostname=
probe clock_settime ProtectClock=
probe keyctl "SystemCallFilter=~@keyring"
probe i386_syscall SystemCallArchitectures=native
ok "$(grep -qx mlock=ok "$TMP/probe-in.out" && echo 0 || echo 1)" "and mlock(), which the agent needs, still works"
as_user 'systemctl --user stop mcpsig-probe.service; rm -f ~/.config/systemd/user/mcpsig-probe.service
	systemctl --user reset-failed; systemctl --user daemon-reload' >/dev/null 2>&1

# ---- 6. systemd-analyze security ---------------------------------------------------------------------

as_user 'systemd-analyze --user security --no-pager mcpsig-agent.service' >"$TMP/security.out" 2>&1
score=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' "$TMP/security.out")
ok "$(awk -v s="$score" 'BEGIN { exit !(s != "" && s <= 2.0) }' && echo 0 || echo 1)" \
	"systemd-analyze --user security, inside the container: $score (2.0 or lower)"
# Every credited option, and the check above that shows it applies. An
# option credited by systemd's own defaults for a user service is named so.
checked() {
	case $1 in
	SystemCallFilter=*) echo "probe ptrace, keyctl; Seccomp: 2" ;;
	CapabilityBoundingSet=* | AmbientCapabilities=) echo "CapBnd, CapAmb, CapEff 0" ;;
	NoNewPrivileges=) echo "NoNewPrivs: 1" ;;
	RestrictAddressFamilies=*) echo "probe socket_inet" ;;
	RestrictNamespaces=*) echo "probe unshare_user" ;;
	RestrictRealtime=) echo "probe realtime" ;;
	RestrictSUIDSGID=) echo "probe suid" ;;
	MemoryDenyWriteExecute=) echo "probe wx_mmap" ;;
	LockPersonality=) echo "probe personality" ;;
	SystemCallArchitectures=) echo "probe i386_syscall" ;;
	ProtectSystem=) echo "/usr read-only" ;;
	ProtectHome=) echo "home read-only" ;;
	PrivateTmp=) echo "private /tmp" ;;
	PrivateNetwork=) echo "only lo" ;;
	PrivateDevices=) echo "no /dev/console" ;;
	PrivateUsers=) echo "uid_map" ;;
	PrivateMounts=) echo "own mnt namespace" ;;
	ProtectKernelModules=) echo "modules hidden" ;;
	ProtectKernelLogs=) echo "kmsg unreadable" ;;
	ProtectKernelTunables=) echo "/proc/sys read-only (below)" ;;
	ProtectControlGroups=) echo "cgroup read-only" ;;
	ProtectClock=) echo "probe clock_settime" ;;
	ProtectHostname=) echo "own uts namespace, probe sethostname" ;;
	UMask=) echo "Umask: 0077" ;;
	KeyringMode=) echo "probe keyctl: the keyring system calls are filtered (~@keyring)" ;;
	Delegate= | NotifyAccess= | RemoveIPC= | SupplementaryGroups=) echo "systemd's default for a user service" ;;
	*) return 1 ;;
	esac
}
unchecked=
for opt in $(sed -n 's/^✓ \([^ ]*\).*/\1/p' "$TMP/security.out"); do
	checked "$opt" >/dev/null || unchecked="$unchecked $opt"
done
ok "$([ -z "$unchecked" ] && [ -n "$score" ] && echo 0 || echo 1)" \
	"every option systemd-analyze credits is one this suite checks from inside${unchecked:+ (unchecked:$unchecked)}"
as_root nsenter -t "$MAINPID" -U -m -S "$UID_" -G "$UID_" -- sh -c 'echo 1 >/proc/sys/kernel/ns_last_pid' >"$TMP/sysctl.out" 2>&1
ok "$(grep -qi 'read-only' "$TMP/sysctl.out" && echo 0 || echo 1)" "/proc/sys is read-only inside (ProtectKernelTunables=)"
[ "$tap_failed" -gt 0 ] && diag <"$TMP/security.out"

# ---- 7. reload, restart, failed units -----------------------------------------------------------------

before=$(agent_main_pid)
journal_mark reload
as_user "systemctl --user reload mcpsig-agent.service; echo reload=\$?" >"$TMP/reload.out" 2>&1
sleep 1
after=$(agent_main_pid)
journal_since reload >"$TMP/reload.log"
ok "$(grep -qx reload=0 "$TMP/reload.out" && [ "$before" = "$after" ] && [ "${after:-0}" -gt 1 ] && echo 0 || echo 1)" \
	"systemctl --user reload succeeds and keeps the MainPID ($before, $after)"
ok "$(grep -q 'reloaded' "$TMP/reload.log" && echo 0 || echo 1)" "the agent logged the reload"
as_user 'mcpsig jwk --origin https://mcp.example.com; systemctl --user stop mcpsig-agent.service
	systemctl --user is-active mcpsig-agent.service; mcpsig jwk --origin https://mcp.example.com' >"$TMP/restart.out" 2>&1
again=$(agent_main_pid)
ok "$([ "$(grep -c '"kty"' "$TMP/restart.out")" -eq 2 ] && [ "$(grep '"kty"' "$TMP/restart.out" | sort -u | wc -l)" -eq 1 ] &&
	grep -qx inactive "$TMP/restart.out" && [ "$again" != "$after" ] && echo 0 || echo 1)" \
	"a stop and a re-activation keep the keys (the same JWK, a new MainPID $again)"
# ---- 8. failures that name their cause -------------------------------------------------------------------

# mlock() refused by a seccomp filter (a drop-in) is reported as that, not as a low limit.
as_user 'mkdir -p ~/.config/systemd/user/mcpsig-agent.service.d &&
	printf "[Service]\nSystemCallFilter=~mlock mlock2\n" >~/.config/systemd/user/mcpsig-agent.service.d/nomlock.conf &&
	systemctl --user daemon-reload && systemctl --user stop mcpsig-agent.service; mcpsig status' >"$TMP/nomlock.out" 2>&1
ok "$(grep -q 'NOT LOCKED' "$TMP/nomlock.out" && grep -q 'not permitted (seccomp or container)' "$TMP/nomlock.out" &&
	! grep -q 'RLIMIT_MEMLOCK' "$TMP/nomlock.out" && echo 0 || echo 1)" \
	"mlock() denied by a seccomp filter: mcpsig status names that cause, not a low limit"
as_root journalctl --no-pager -o cat -p warning _SYSTEMD_USER_UNIT=mcpsig-agent.service >"$TMP/warn.log" 2>&1
ok "$(grep -q 'cannot lock key memory (not permitted (seccomp or container)' "$TMP/warn.log" && echo 0 || echo 1)" \
	"and the journal says the same at warning level"
diag <"$TMP/nomlock.out"
# A start-up failure (a keystore other users can read) leaves one clear line at the default level.
as_user 'rm -rf ~/.config/systemd/user/mcpsig-agent.service.d; systemctl --user daemon-reload
	systemctl --user stop mcpsig-agent.service; chmod 0755 ~/.local/share/mcpsig; mcpsig status >/dev/null 2>&1
	sleep 1; chmod 0700 ~/.local/share/mcpsig; systemctl --user reset-failed' >/dev/null 2>&1
as_root journalctl --no-pager -o cat -p err _SYSTEMD_USER_UNIT=mcpsig-agent.service >"$TMP/err.log" 2>&1
ok "$(grep -q '/home/alice/.local/share/mcpsig' "$TMP/err.log" && grep -qi 'chmod\|mode\|other users' "$TMP/err.log" && echo 0 || echo 1)" \
	"a start-up failure leaves an error line in the journal naming the keystore and the fix"
diag <"$TMP/err.log"
as_user 'mcpsig status >/dev/null && mcpsig jwk --origin https://mcp.example.com' >"$TMP/after-fix.out" 2>&1
ok "$(grep -q '"kty"' "$TMP/after-fix.out" && echo 0 || echo 1)" "once fixed, the next connection starts it again, with its keys"
grep -q '"kty"' "$TMP/after-fix.out" || {
	diag <"$TMP/after-fix.out"
	as_user 'systemctl --user status --no-pager mcpsig-agent.socket mcpsig-agent.service' 2>&1 | diag
	as_root journalctl --no-pager -o cat _SYSTEMD_USER_UNIT=mcpsig-agent.socket USER_UNIT=mcpsig-agent.socket 2>&1 | tail -20 | diag
}

as_user 'systemctl --user --failed --no-legend --plain' >"$TMP/failed-user" 2>&1
as_root systemctl --failed --no-legend --plain >"$TMP/failed-system" 2>&1
ok "$([ ! -s "$TMP/failed-user" ] && [ ! -s "$TMP/failed-system" ] && echo 0 || echo 1)" \
	"no unit has failed, the user's or the system's"
cat "$TMP/failed-user" "$TMP/failed-system" | diag

done_testing
