#!/bin/sh
# No test passes a value it did not write itself (a generated key id, tag
# or nonce, a path, a parameter) to grep where it can be read as an option:
# a key id that starts with "-" would be taken for one, and the check would
# pass or fail for the wrong reason. Every such pattern must follow -e, -f
# or --. Checks every shell script in the tree, and a planted bad line first.
# Prints TAP.

. "${top_srcdir:-.}/tests/lib.sh"

# offenders FILE...: lines where grep's first operand is an expansion.
offenders() {
	grep -nE '(^|[^[:alnum:]_-])grep( +-[[:alnum:]]+)* +"?\$' "$@" 2>/dev/null |
		grep -vE 'grep( +-[[:alnum:]]+)* +-(-|e|f|[[:alnum:]]*[ef]) '
}

cat >"$TMP/bad.sh" <<'BAD'
grep -q "$K4" "$TMP/second.err"
ok "$(grep -rl "$K3" "$KS" >/dev/null && echo 1)"
grep -q -- "$K4" "$TMP/fine.err"
grep -qF -e "$pat" "$TMP/fine"
grep -qx -- "$1" "$TMP/fine"
BAD
n=$(offenders "$TMP/bad.sh" | wc -l)
ok "$([ "$n" -eq 2 ] && echo 0 || echo 1)" "control: the check finds the 2 planted bad lines and passes the 3 good ones ($n found)"

files=$(cd "$top_srcdir" && ls tests/*.sh build.sh bench/*.sh .ci/run 2>/dev/null | grep -v -x tests/option-args.sh)
[ -n "$files" ] || bail "no scripts found under $top_srcdir"
(cd "$top_srcdir" && offenders $files) >"$TMP/found"
ok "$([ ! -s "$TMP/found" ] && echo 0 || echo 1)" \
	"no script passes an expanded value to grep where it can be read as an option ($(echo $files | wc -w) scripts)"
diag <"$TMP/found"

done_testing
