#!/bin/sh
# build.sh: the two set-up commands of README.md.
#
#   ./build.sh run    install what is missing, build, and run mcpsig-agent in the
#                     foreground on the default socket
#   ./build.sh test   install what is missing, build, and run every test
#
# Debian packages are installed with apt-get, which needs root: run it as
# root, or as a user with sudo rights. The packages are listed below.
# The tests need root in any case: tests/systemd-real.sh boots a container.
set -eu

cd "$(dirname "$0")"
SRC=$(pwd)
BUILD=$SRC/build
BUILD_NO_OPENSSL=$SRC/build-no-openssl
BUILD_SANITIZERS=$SRC/build-sanitizers
BUILD_FUZZ=$SRC/build-fuzz

PACKAGES="build-essential autoconf automake libtool pkg-config libuv1-dev libsodium-dev libmsgpack-dev
libsystemd-dev libssl-dev libjansson-dev libcurl4-openssl-dev"
# systemd: systemd-analyze and systemd-socket-activate; mmdebstrap and
# systemd-container: the real-systemd suite (tests/systemd-real.sh).
TEST_PACKAGES="strace curl openssl util-linux procps ca-certificates clang valgrind git systemd mmdebstrap
systemd-container"

die() {
	echo "build.sh: $*" >&2
	exit 1
}

install_missing() {
	missing=
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
	done
	[ -z "$missing" ] && return 0
	echo "build.sh: installing:$missing"
	if [ "$(id -u)" -eq 0 ]; then
		sudo=
	elif command -v sudo >/dev/null 2>&1; then
		sudo=sudo
	else
		die "missing Debian packages:$missing. Installing them needs root: run this as root, or install them
first (as root: apt-get install$missing), or give this user sudo rights"
	fi
	$sudo apt-get update -qq || die "apt-get update failed (needs root or sudo rights)"
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing >/dev/null
}

build() {
	# shellcheck disable=SC2086
	install_missing $PACKAGES
	[ -x "$SRC/configure" ] && [ "$SRC/configure" -nt "$SRC/configure.ac" ] || autoreconf -fi "$SRC"
	mkdir -p "$BUILD"
	cd "$BUILD"
	[ -f Makefile ] || "$SRC/configure" --quiet
	make -j"$(nproc)" --quiet
}

# other_build DIR CONFIGURE-ARGS...: configures (once) and builds another tree of the same sources.
other_build() {
	dir=$1
	shift
	mkdir -p "$dir"
	cd "$dir"
	[ -f Makefile ] || "$SRC/configure" --quiet "$@"
	make -j"$(nproc)" --quiet
}

# report_failures DIR: each failing test of the build in DIR, with its first
# failing assertion (not the tail of the agents' logs).
report_failures() {
	for trs in "$1"/tests/*.trs; do
		[ -f "$trs" ] || continue
		grep -Eq '^:test-result: (FAIL|XPASS|ERROR)' "$trs" || continue
		log=${trs%.trs}.log
		echo "build.sh: FAILED: ${log#"$SRC"/}" >&2
		grep -m 3 -E '^(not ok|Bail out!)' "$log" | sed 's/^/build.sh:     /' >&2
	done
}

# fuzz_for SECONDS: runs every target in build-fuzz/fuzz/ at once, each from a
# copy of its committed corpus; fails on any crash, leak or timeout.
fuzz_for() {
	ok=0
	fuzz_summary=
	work=$(mktemp -d)
	for target in dispatch sfv; do
		mkdir -p "$work/$target"
		cp "$SRC/fuzz/corpus/$target/"* "$work/$target/"
		"$BUILD_FUZZ/fuzz/fuzz-$target" -max_total_time="$1" -timeout=10 -print_final_stats=1 \
			-artifact_prefix="$work/crash-$target-" "$work/$target" >"$work/$target.log" 2>&1 &
		eval "pid_$target=\$!"
	done
	for target in dispatch sfv; do
		eval "wait \$pid_$target" || {
			ok=1
			echo "build.sh: fuzz-$target found a problem:" >&2
			tail -40 "$work/$target.log" >&2
		}
		runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$target.log")
		fuzz_summary="$fuzz_summary fuzz-$target ${runs:-?} runs;"
	done
	rm -rf "$work"
	return "$ok"
}

case "${1:-}" in
run)
	build
	echo "build.sh: starting mcpsig-agent in the foreground (Ctrl-C stops it)"
	exec "$BUILD/daemon/mcpsig-agent" -D
	;;
test)
	# shellcheck disable=SC2086
	install_missing $PACKAGES $TEST_PACKAGES
	# Any npm will do: it only installs the pinned packages, Node 22 among them.
	command -v npm >/dev/null 2>&1 || install_missing npm
	build
	(cd "$SRC/tests/node" && npm ci --no-audit --no-fund --loglevel=error)
	# The MCP conformance suite, for its DPoP client scenarios (it runs on tests/node's Node 22).
	(cd "$SRC/tests/conformance" && npm ci --no-audit --no-fund --loglevel=error)
	# The Node package (bindings/node): msgpack, both MCP SDKs and TypeScript for its tests.
	(cd "$SRC/bindings/node" && npm ci --no-audit --no-fund --loglevel=error)
	status=0
	make -j"$(nproc)" check || status=$?
	# The units under a real systemd, booted in a container (build/ only).
	make check-systemd || status=1
	[ "$status" -eq 0 ] || report_failures "$BUILD"
	# The same sources without OpenSSL: Ed25519 only, and every ECDSA request
	# refused with a reason.
	other_build "$BUILD_NO_OPENSSL" --without-openssl
	make -j"$(nproc)" check-keytypes || { status=1; report_failures "$BUILD_NO_OPENSSL"; }
	# Every test again under AddressSanitizer and UndefinedBehaviorSanitizer.
	other_build "$BUILD_SANITIZERS" --enable-sanitizers
	make -j"$(nproc)" check || { status=1; report_failures "$BUILD_SANITIZERS"; }
	# Each libFuzzer target for 60 seconds, from the committed seed corpus.
	other_build "$BUILD_FUZZ" CC=clang --enable-fuzzing
	fuzz_for 60 || status=1
	# One line with every TAP result counted, not just every test program.
	trs="$BUILD/tests/*.trs $BUILD_NO_OPENSSL/tests/*.trs $BUILD_SANITIZERS/tests/*.trs"
	# shellcheck disable=SC2086
	pass=$(cat $trs 2>/dev/null | grep -c '^:test-result: PASS' || true)
	# shellcheck disable=SC2086
	fail=$(cat $trs 2>/dev/null | grep -Ec '^:test-result: (FAIL|XPASS|ERROR)' || true)
	# shellcheck disable=SC2086
	skip=$(cat $trs 2>/dev/null | grep -c '^:test-result: SKIP' || true)
	echo "$pass passed, $fail failed, $skip skipped (build/, build-no-openssl/, build-sanitizers/); fuzzing: $fuzz_summary"
	exit "$status"
	;;
*)
	echo "usage: ./build.sh run | ./build.sh test" >&2
	exit 2
	;;
esac
