#!/bin/sh
# identity.list in pages: 20,000 bindings and more.
#
# One reply holding every binding outgrows the protocol's message limit at
# about 6,500 bindings. The agent answers identity.list in pages of at most
# 1,000 entries, each within one message; libmcpsig (and so mcpsig) and the
# Node package follow the cursors and join the pages. Checked here:
#
#  1. 20,000 bindings of one identity and 3 of another: mcpsig list --json
#     prints all 20,003, each once and in order, and so do list --identity,
#     the text listing, status and the Node package's identityList();
#  2. on the wire (tests/list-pages, raw requests): every page fits the
#     limit, the pages join into the whole listing, and a client that sends
#     no parameter (one from before pages) gets a first page that fits, with
#     "next" saying there is more;
#  3. the control: the same listing encoded as one reply is refused by a
#     client's framing (ETOOBIG), while a small agent's listing fits in one;
#  4. limit and after: pages of 1 and of 7 entries give the same listing;
#     a cursor past the end is the last page; a limit out of range, a limit
#     that is not an integer and a cursor that is not one are refused.
#
# Prints TAP.
. "${top_srcdir:-.}/tests/lib.sh"

LISTP=$top_builddir/tests/list-pages
[ -x "$LISTP" ] || bail "$LISTP is not built"
[ -x "$NODE" ] || bail "no Node at $NODE: run npm ci in tests/node"
BINDING=$(cd "$top_srcdir/bindings/node" && pwd)
[ -f "$BINDING/node_modules/@msgpack/msgpack/package.json" ] || bail "run npm ci in bindings/node"

S=$TMP/a.sock
start_agent "$S" "$TMP/ks" || bail "the agent did not start"
BIG_PID=$AGENT_PID
m() { "$CLI" -a "$S" "$@"; }
# val KEY FILE: the value of a "key value" line of tests/list-pages.
val() { sed -n "s/^$1 //p" "$2"; }

N=20000
"$LISTP" make "$S" "$N" many >"$TMP/make.out" 2>&1
ok $? "$N first contacts over one libmcpsig connection"
ok "$([ "$(val created "$TMP/make.out")" = "$N" ] && echo 0 || echo 1)" "  created $(val created "$TMP/make.out") bindings"
m add-identity work >/dev/null &&
	for o in https://w1.example https://w2.example https://w3.example; do
		m --identity work jwk --origin "$o" >/dev/null || exit 1
	done
ok $? "and an identity 'work' with 3 bindings, listed after all of default's"
TOTAL=$((N + 3))

# ---- 1. every client gets everything -------------------------------------------------------

# count.mjs: reads a JSON array of bindings on stdin; prints how many, how many
# distinct (identity, origin) pairs, and how many are out of order.
cat >"$TMP/count.mjs" <<'EOF'
let text = '';
for await (const chunk of process.stdin) text += chunk;
const list = JSON.parse(text);
const keys = new Set(list.map((b) => `${b.identity} ${b.origin}`));
let disorder = 0;
for (let i = 1; i < list.length; i++) {
  const a = list[i - 1], b = list[i];
  if (!(b.identity > a.identity || (b.identity === a.identity && b.origin > a.origin))) disorder++;
}
console.log(`${list.length} ${keys.size} ${disorder}`);
EOF
m list --json >"$TMP/list.json" 2>"$TMP/list.err"
ok $? "mcpsig list --json succeeds with $TOTAL bindings"
diag <"$TMP/list.err"
got=$("$NODE" "$TMP/count.mjs" <"$TMP/list.json")
ok "$([ "$got" = "$TOTAL $TOTAL 0" ] && echo 0 || echo 1)" \
	"  and prints all $TOTAL, each once, in order (count, distinct, out of order: $got)"
m list --json --identity work | "$NODE" "$TMP/count.mjs" >"$TMP/work.count"
ok "$([ "$(cat "$TMP/work.count")" = "3 3 0" ] && echo 0 || echo 1)" \
	"mcpsig list --json --identity work: the 3 bindings of the last page ($(cat "$TMP/work.count"))"
n=$(m list | grep -c '^    tag ')
ok $(( n != TOTAL )) "mcpsig list (text): $n bindings"
n=$(m status --json | sed -n 's/.*"bindings": \([0-9]*\).*/\1/p')
ok "$([ "$n" = "$TOTAL" ] && echo 0 || echo 1)" "mcpsig status counts $n bindings"
cat >"$TMP/node-list.mjs" <<EOF
import { AgentClient } from '$BINDING/index.js';
const agent = new AgentClient({ socketPath: '$S' });
const { identities, bindings } = await agent.identityList();
agent.close();
console.log(identities.map((i) => i.name).join(',') + ' ' + bindings.length + ' ' + new Set(bindings.map((b) => b.identity + ' ' + b.origin)).size);
EOF
got=$("$NODE" "$TMP/node-list.mjs" 2>&1)
ok "$([ "$got" = "default,work $TOTAL $TOTAL" ] && echo 0 || echo 1)" \
	"the Node package's identityList(): both identities, all $TOTAL bindings, each once ($got)"

# ---- 2. the pages on the wire --------------------------------------------------------------

"$LISTP" pages "$S" >"$TMP/pages" 2>&1
ok $? "reading every page with raw requests"
diag <"$TMP/pages"
max=$(val max_msg_len "$TMP/pages")
pages=$(val pages "$TMP/pages")
ok "$([ "$(val bindings "$TMP/pages")" = "$TOTAL" ] && [ "$(val identities "$TMP/pages")" = 2 ] &&
	[ "$(val out_of_order "$TMP/pages")" = 0 ] && echo 0 || echo 1)" \
	"  $pages pages join into all $TOTAL bindings and 2 identities, in order"
ok "$([ "$pages" -ge $(((TOTAL + 2 + 999) / 1000)) ] && echo 0 || echo 1)" "  at most 1,000 entries a page ($pages pages)"
largest=$(val largest_page_bytes "$TMP/pages")
ok $(( largest > max )) "  the largest page is $largest bytes, within the $max-byte message limit"
first=$(val first_page_bytes "$TMP/pages")
ok "$([ "$first" -le "$max" ] && [ "$(val first_page_next "$TMP/pages")" = set ] &&
	[ "$(val first_page_bindings "$TMP/pages")" -le 1000 ] && echo 0 || echo 1)" \
	"  a request without parameters (a client from before pages) gets a first page that fits ($first bytes), with next set"

# ---- 3. the control: one unpaged reply ------------------------------------------------------

unpaged=$(val unpaged_bytes "$TMP/pages")
ok "$([ "$unpaged" -gt "$max" ] && [ "$(val unpaged_frame "$TMP/pages")" = ETOOBIG ] && echo 0 || echo 1)" \
	"control: the same listing as one reply is $unpaged bytes, over the limit: a client's framing refuses it (ETOOBIG)"

S2=$TMP/small.sock
start_agent "$S2" "$TMP/ks2" || bail "the second agent did not start"
"$LISTP" make "$S2" 25 small >/dev/null &&
	"$CLI" -a "$S2" add-identity a-work >/dev/null && "$CLI" -a "$S2" add-identity zz >/dev/null &&
	"$CLI" -a "$S2" --identity zz jwk --origin https://z.example >/dev/null
ok $? "a small agent: 26 bindings, 3 identities"
"$LISTP" pages "$S2" >"$TMP/small.pages" 2>&1
ok "$([ "$(val unpaged_frame "$TMP/small.pages")" = fits ] && [ "$(val pages "$TMP/small.pages")" = 1 ] &&
	[ "$(val bindings "$TMP/small.pages")" = 26 ] && echo 0 || echo 1)" \
	"control: its listing is one page, and as one reply it fits ($(val unpaged_bytes "$TMP/small.pages") bytes)"

# ---- 4. limit and after ---------------------------------------------------------------------

"$CLI" -a "$S2" list --json >"$TMP/small.json"
for l in 1 7; do
	"$LISTP" pages "$S2" "$l" >"$TMP/p$l" 2>&1
	ok "$([ "$(val pages "$TMP/p$l")" = $(((26 + 3 + l - 1) / l)) ] && [ "$(val bindings "$TMP/p$l")" = 26 ] &&
		[ "$(val identities "$TMP/p$l")" = 3 ] && [ "$(val out_of_order "$TMP/p$l")" = 0 ] && echo 0 || echo 1)" \
		"limit $l: $(val pages "$TMP/p$l") pages of the 29 entries, all there, in order"
done
"$LISTP" ask "$S2" limit=5 >"$TMP/ask5"
cursor=$(val next "$TMP/ask5")
"$LISTP" ask "$S2" "after=$cursor" limit=1000 >"$TMP/ask-rest"
ok "$([ "$(val identities "$TMP/ask5")" = 2 ] && [ "$(val bindings "$TMP/ask5")" = 3 ] &&
	[ "$(val bindings "$TMP/ask-rest")" = 23 ] && [ "$(val identities "$TMP/ask-rest")" = 1 ] &&
	[ "$(val next "$TMP/ask-rest")" = nil ] && echo 0 || echo 1)" \
	"after the cursor of a 5-entry page ('$cursor'): the other 24 entries, and next nil"
"$LISTP" ask "$S2" "after=zzzz https://z.example" >"$TMP/ask-end"
ok "$([ "$(val bindings "$TMP/ask-end")" = 0 ] && [ "$(val next "$TMP/ask-end")" = nil ] && echo 0 || echo 1)" \
	"a cursor past the last entry (of an identity that no longer exists) is the empty last page"
refused() { # refused DESCRIPTION PATTERN ARGS...
	d=$1
	p=$2
	shift 2
	"$LISTP" ask "$S2" "$@" >"$TMP/ask.out" 2>&1
	grep -Eq -e "^error 1005 .*$p" "$TMP/ask.out"
	ok $? "$d is refused: EPARAM ($(cat "$TMP/ask.out"))"
}
refused "limit 0" "params.limit: must be from 1 to 1000" limit=0
refused "limit 1001" "params.limit: must be from 1 to 1000" limit=1001
refused "limit -1" "params.limit: must be from 1 to 1000" limit=-1
refused "a limit that is a string" "params.limit: expected an integer" limit=1 limit-type=str
refused "a cursor without a space" "params.after: not a cursor" after=default
refused "a cursor with an invalid identity name" "params.after: not a cursor" "after=bad/name https://a.example"
"$LISTP" ask "$S2" limit=1000 >"$TMP/ask1000"
ok "$(grep -qx ok "$TMP/ask1000" && [ "$(val next "$TMP/ask1000")" = nil ] && echo 0 || echo 1)" \
	"control: limit 1000 is taken (one page, next nil)"
got=$("$NODE" "$TMP/count.mjs" <"$TMP/small.json")
ok "$([ "$got" = "26 26 0" ] && echo 0 || echo 1)" "mcpsig list --json of the small agent: 26 bindings, in order ($got)"

stop_agent "$AGENT_PID"
stop_agent "$BIG_PID"
done_testing
