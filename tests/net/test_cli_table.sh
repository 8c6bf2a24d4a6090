#!/usr/bin/env bash
# Every toekit program keeps the same command-line conventions (src/tools/common/toe_cli.h):
# --help prints usage on stdout and exits 0, --version prints "PROG (toekit) VERSION", the
# transport ABI and libtoe versions and exits 0, and each entry of a table of bad inputs is
# answered with exactly one line on stderr that names the program, and exit status 2.
#
#   bash tests/net/test_cli_table.sh BINDIR
#
# No namespaces or devices: nothing here gets as far as the network (every bad input is refused
# while parsing). About a second.
set -u
BIN=${1:?usage: bash test_cli_table.sh BINDIR}
SRC=$(cd "$(dirname "$0")/../.." && pwd)
VER=$(awk -F'"' '/^#define TOE_VERSION "/ {print $2}' "$SRC/include/toe/toe.h")
ABI="$(awk '/^#define TOE_ABI_MAJOR / {print $3}' "$SRC/include/toe/abi.h").$(awk '/^#define TOE_ABI_MINOR / {print $3}' "$SRC/include/toe/abi.h")"
TMP=$(mktemp -d /tmp/toe-cli.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
export ASAN_OPTIONS=detect_leaks=0
PASS=0
FAIL=0
ok() { echo "ok   - $*"; PASS=$((PASS + 1)); }
bad() { echo "FAIL - $*"; FAIL=$((FAIL + 1)); }

TOOLS="toed toectl toe-nc toe-impair toe-proxyd toe-run"
for t in $TOOLS; do
  [ -x "$BIN/$t" ] || { bad "$t: not built at $BIN/$t"; continue; }
  "$BIN/$t" --help >"$TMP/out" 2>"$TMP/err"
  rc=$?
  if [ "$rc" = 0 ] && grep -q "usage" "$TMP/out" && [ ! -s "$TMP/err" ]; then ok "$t --help: usage on stdout, exit 0"; else bad "$t --help (exit $rc)"; fi
  "$BIN/$t" --version >"$TMP/out" 2>"$TMP/err"
  rc=$?
  if [ "$rc" = 0 ] && [ "$(head -1 "$TMP/out")" = "$t (toekit) $VER" ] &&
    grep -qx "transport ABI $ABI" "$TMP/out" && grep -q "^libtoe $VER" "$TMP/out"; then
    ok "$t --version: $VER, ABI $ABI, libtoe"
  else
    bad "$t --version (exit $rc): $(tr '\n' '|' <"$TMP/out")"
  fi
done

# TOOL|ARGS (split on spaces): each must exit 2 with one line "TOOL: ..." on stderr.
table="
toed|--bogus
toed|--wire
toed|--wire eth9 --addr 1.2.3
toed|--wire eth9 --addr 198.18.0.1/24 --mtu 12345678
toed|--wire eth9 --addr 198.18.0.1/24 --poll-us x
toed|--wire eth9
toed|stray
toed|--log-level loud --wire eth9 --addr 198.18.0.1/24
toed|--config
toed|--config /nonexistent/toed.conf --wire eth9
toectl|
toectl|--bogus status
toectl|frobnicate
toectl|status stats
toectl|--ctl
toectl|-i 0 stats
toectl|-i 1 -c x stats
toectl|-c 3 status
toectl|-n 1 stats
toectl|--prometheus flows
toectl|flows state nosuch
toectl|flows dport 70000
toectl|flows src 1.2.3.4/40
toectl|top -i x
toectl|status extra
toectl|-c 5 capture x
toe-nc|
toe-nc|--bogus 198.18.0.2 80
toe-nc|-w x 198.18.0.2 80
toe-nc|198.18.0.2 99999
toe-nc|198.18.0.2 nosuchservice
toe-nc|198.18.0.2 80 extra
toe-nc|-l
toe-impair|
toe-impair|--bogus
toe-impair|--a x --b y --loss 200%
toe-impair|--a x --b y --delay soon
toe-impair|--a x
toe-proxyd|
toe-proxyd|--bogus
toe-proxyd|--include tcp --port x
toe-proxyd|--include tcp stray
toe-run|
toe-run|--bogus -- true
toe-run|--profile nosuch -- true
toe-run|--ctl
"
while IFS='|' read -r t args; do
  [ -n "$t" ] || continue
  # shellcheck disable=SC2086
  timeout 10 "$BIN/$t" $args >"$TMP/out" 2>"$TMP/err" </dev/null
  rc=$?
  lines=$(wc -l <"$TMP/err")
  if [ "$rc" = 2 ] && [ "$lines" = 1 ] && grep -q "^$t: " "$TMP/err"; then
    ok "$t $args: exit 2, one line: $(cat "$TMP/err")"
  else
    bad "$t $args: exit $rc, $lines lines on stderr (want 2, one line '$t: ...'):"
    sed 's/^/#   /' "$TMP/err" | head -5
  fi
done <<<"$table"

# ---- manual pages: generated from --help (scripts/gen-man.sh), committed, must match ------------
if "$SRC/scripts/gen-man.sh" "$BIN" "$TMP/man" >"$TMP/gen.err" 2>&1; then
  for page in "$SRC"/packaging/man/*.[18]; do
    name=$(basename "$page")
    if diff -u "$page" "$TMP/man/$name" >"$TMP/man.diff"; then
      ok "man page $name matches ${name%.*} --help"
    else
      bad "man page $name differs from ${name%.*} --help: run scripts/gen-man.sh build/bin"
      head -10 "$TMP/man.diff" | sed 's/^/#   /'
    fi
  done
  for t in $TOOLS; do
    if ls "$SRC"/packaging/man/"$t".[18] >/dev/null 2>&1; then ok "$t has a man page"; else bad "$t has no man page"; fi
  done
  if command -v groff >/dev/null; then
    for page in "$SRC"/packaging/man/*.[18]; do
      w=$(groff -man -Tutf8 -ww -z "$page" 2>&1 | wc -l)
      if [ "$w" = 0 ]; then ok "$(basename "$page"): groff has no warning"; else bad "$(basename "$page"): groff warns"; fi
    done
  fi
else
  bad "scripts/gen-man.sh failed: $(cat "$TMP/gen.err")"
fi

# ---- bash completion (packaging/completion/toekit) ----------------------------------------------
comp() {
  bash -c 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _toekit; echo "${COMPREPLY[*]}"' \
    _ "$SRC/packaging/completion/toekit" "$@"
}
export PATH="$BIN:$PATH"
while IFS='|' read -r want words; do
  [ -n "$want" ] || continue
  # shellcheck disable=SC2086
  got=$(comp $words)
  if [ "$got" = "$want" ]; then ok "completion of '$words': $got"; else bad "completion of '$words': got '$got', want '$want'"; fi
done <<'TABLE'
flows|toectl fl
--json|toectl --js
state|toectl --ctl x flows st
established|toectl flows state est
latency|toe-run --profile l
debug|toed --log-level d
--verbose --version|toe-nc --ver
--prometheus|toectl --prom
--wire|toed --wi
TABLE

echo "$PASS passed, $FAIL failed"
((FAIL == 0 && PASS > 0))
