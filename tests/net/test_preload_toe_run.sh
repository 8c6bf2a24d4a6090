#!/usr/bin/env bash
# toe-run, the launcher (docs/operations.md "toe-run"), like OpenOnload's `onload`:
#  - --help documents every TOE_* variable the preload and libtoe read (each getenv("TOE_...") in
#    src/preload and src/host must be listed), --version answers, bad usage is one line and exit 2;
#  - --dry-run shows what a profile sets: LD_PRELOAD (the build tree's libtoe-preload.so first),
#    TOE_CTL from --ctl, TOE_OFFLOAD from --offload, TOE_PROFILE and TOE_SPIN_US from the profile
#    file, and a variable already in the environment wins over the profile;
#  - `toe-run --profile latency --ctl CTL -- curl URL` carries curl through the device: the file
#    arrives intact, and while a rate-limited fetch runs `toectl flows` shows its connection owned
#    by curl with origin "preload". (The sanitizer build skips this part: curl cannot run with the
#    ASan runtime preloaded; make test runs the test on the release build too.)
# Usage: bash tests/net/test_preload_toe_run.sh BINDIR
set -u
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/transport_lib.sh"
source "$(dirname "$0")/preload_lib.sh"
NET_REQUIRED_TOOLS="ip ping timeout curl sha256sum ss $NET_PY"
net_init "${1:-}" 120
tr_init
preload_init
SRC=$(cd "$(dirname "$0")/../.." && pwd)
RUN=$NET_BINDIR/toe-run
[ -x "$RUN" ] || net_die "no toe-run at $RUN (build first)"

# ---- help, version, usage errors ----------------------------------------------------------------
"$RUN" --help >"$NET_TMP/help.txt"
check_eq "--help: exit 0" "$?" 0
vars=$(grep -rhoE 'getenv\("TOE_[A-Z0-9_]+"\)' "$SRC/src/preload" "$SRC/src/host" |
  sed -E 's/getenv\("(.*)"\)/\1/' | sort -u)
for v in $vars TOE_SPIN_US TOE_PROFILE; do
  check "--help documents $v" grep -qE "^  $v " "$NET_TMP/help.txt"
done
check "--help: the spin variable's meaning" grep -q "TOE_SPIN_US *spin before sleeping (us)" "$NET_TMP/help.txt"
check "--help: the profile variable's values" grep -q "TOE_PROFILE *latency|throughput|default" "$NET_TMP/help.txt"
"$RUN" --version >"$NET_TMP/version.txt"
check_eq "--version: exit 0" "$?" 0
check "--version: the preload it would use" grep -q "preloaded: $PRELOAD" "$NET_TMP/version.txt"
for bad in "--profile nosuch -- true" "--bogus -- true" "--profile" "" "--ctl -- true"; do
  # shellcheck disable=SC2086
  "$RUN" $bad >/dev/null 2>"$NET_TMP/bad.err"
  rc=$?
  check_eq "bad usage '$bad': exit 2" "$rc" 2
  check_eq "bad usage '$bad': one line on stderr" "$(wc -l <"$NET_TMP/bad.err")" 1
done

# ---- what a profile sets ------------------------------------------------------------------------
env -u TOE_SPIN_US -u TOE_PROFILE "$RUN" --dry-run --profile latency --ctl "$CTL" --offload tcp:198.18.0.0/15 \
  -- curl -V >"$NET_TMP/dry.txt"
check_eq "--dry-run: exit 0" "$?" 0
sed 's/^/#   /' "$NET_TMP/dry.txt"
kv_of() { awk -F= -v k="$1" '$1 == k { sub(/^[^=]*=/, ""); print; exit }' "$NET_TMP/dry.txt"; }
# (after the ASan runtime in a sanitizer build, which must come first)
check_eq "latency: LD_PRELOAD has the build's library" \
  "$(kv_of LD_PRELOAD | tr ':' '\n' | grep -cx "$(readlink -f "$PRELOAD")")" 1
check_eq "latency: TOE_CTL from --ctl" "$(kv_of TOE_CTL)" "$CTL"
check_eq "latency: TOE_OFFLOAD from --offload" "$(kv_of TOE_OFFLOAD)" "tcp:198.18.0.0/15"
check_eq "latency: TOE_PROFILE" "$(kv_of TOE_PROFILE)" latency
check_eq "latency: TOE_SPIN_US from latency.conf" "$(kv_of TOE_SPIN_US)" \
  "$(awk -F= '$1 == "TOE_SPIN_US" {print $2}' "$SRC/packaging/profiles/latency.conf")"
check "the command follows" grep -qx "exec curl -V" "$NET_TMP/dry.txt"
TOE_SPIN_US=7 "$RUN" -n -p throughput -- true >"$NET_TMP/dry2.txt"
check "the environment wins over the profile" grep -qx "TOE_SPIN_US=7" "$NET_TMP/dry2.txt"
check "throughput: TOE_PROFILE" grep -qx "TOE_PROFILE=throughput" "$NET_TMP/dry2.txt"
"$RUN" --list-profiles >"$NET_TMP/profiles.txt"
for p in default latency throughput; do
  check "--list-profiles: $p" grep -q "^$p " "$NET_TMP/profiles.txt"
done

# ---- curl carried by the device -----------------------------------------------------------------
preload_skip_under_asan curl
PORT=8081
net_setup
start_toed_nopcap --ctl "$CTL"
wait_for 5 test -S "$CTL" || net_die "toed made no control socket at $CTL"
WWW=$NET_TMP/www
mkdir -p "$WWW"
head -c $((2 * 1048576)) /dev/urandom >"$WWW/data.bin"
peer_bg timeout -k 2 100 "$NET_PY" -m http.server "$PORT" --bind "$NET_PEER_ADDR" --directory "$WWW" \
  >"$NET_TMP/httpd.log" 2>&1 </dev/null
wait_for 10 peer_listening "$PORT" || net_die "http.server did not listen on $PORT"
URL=http://$NET_PEER_ADDR:$PORT/data.bin

# A slow fetch (1 MiB/s: about 2 s) so that the flow table can be read while it runs. The server
# (HTTP/1.0) sends the whole file and closes at once: the 2 MiB fit in the device's and the
# transport's buffers, so for most of the fetch curl's connection is in CLOSE-WAIT, still open on
# curl's side (seen: 11 of 14 snapshots), and either state counts.
dev_bg timeout -k 2 60 "$RUN" --profile latency --ctl "$CTL" --strict -- \
  curl -sS --fail --limit-rate 1M -o "$NET_TMP/got.bin" "$URL" 2>"$NET_TMP/curl.err"
CURL_PID=$BG_PID
seen=0
for _ in $(seq 40); do
  "$TOECTL" --ctl "$CTL" --json flows >"$NET_TMP/flows.json" 2>/dev/null
  if [ "$(json_eval "$NET_TMP/flows.json" "any(f['comm'] == 'curl' and f['origin'] == 'preload' and f['state'] in ('ESTAB', 'CLOSE-WAIT') and f['remote'] and f['remote']['port'] == $PORT for f in d['flows'])")" = 1 ]; then
    seen=1
    break
  fi
  sleep 0.1
done
check_eq "toectl flows: curl's connection, origin preload, while it runs" "$seen" 1
wait "$CURL_PID"
check_eq "curl under toe-run: exit 0" "$?" 0
check_eq "curl under toe-run: the file intact" "$(sha "$NET_TMP/got.bin" 2>/dev/null)" "$(sha "$WWW/data.bin")"
check_eq "curl under toe-run: nothing on stderr" "$(wc -c <"$NET_TMP/curl.err")" 0
check_toed_exit
net_finish
