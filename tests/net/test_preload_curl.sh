#!/usr/bin/env bash
# libtoe-preload with an unmodified curl (docs/interception.md):
#  - a preloaded curl in the device namespace fetches a file (20 MiB; 100 MiB with TOE_TEST_BIG=1)
#    from a kernel HTTP server (python3 -m http.server) in the peer namespace: exit 0, SHA-256
#    equal. The device namespace's kernel has no address and no route to the peer, so the bytes
#    can only have come through the device; toectl's counters (tcp.rx_bytes, transport.rx_bytes,
#    tcp.active_opens) say so too, and `toectl flows` shows the connection of a slower, rate-limited
#    fetch owned by curl's pid and comm while it runs;
#  - the errors a kernel socket gives: a connect to a closed port is refused (curl exit 7);
#  - rules: with TOE_OFFLOAD declining the destination, curl goes to the kernel (in the peer
#    namespace, where the kernel reaches the server) and never talks to the device;
#  - fallback: with no device at TOE_CTL, a preloaded curl still works through the kernel and says
#    so in exactly one line on stderr; with TOE_STRICT=1 it fails instead.
# Usage: bash tests/net/test_preload_curl.sh BINDIR
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/transport_lib.sh"
source "$(dirname "$0")/preload_lib.sh"
NET_REQUIRED_TOOLS="ip ping timeout curl sha256sum ss $NET_PY"
net_init "$1" 400
tr_init
preload_init
SIZE_MB=20
[ "${TOE_TEST_BIG:-0}" = 1 ] && SIZE_MB=100
PORT=8080
preload_skip_under_asan curl

net_setup
start_toed_nopcap --ctl "$CTL"
wait_for 5 test -S "$CTL" || net_die "toed made no control socket at $CTL"

# ---- the server: a kernel HTTP server in the peer ----------------------------------------------
WWW=$NET_TMP/www
mkdir -p "$WWW"
head -c "$((SIZE_MB * 1048576))" /dev/urandom >"$WWW/data.bin" || net_die "cannot write the data"
head -c $((4 * 1048576)) /dev/urandom >"$WWW/slow.bin"
DATA_SHA=$(sha "$WWW/data.bin")
peer_bg timeout -k 2 380 "$NET_PY" -m http.server "$PORT" --bind "$NET_PEER_ADDR" --directory "$WWW" \
  >"$NET_TMP/httpd.log" 2>&1 </dev/null
wait_for 10 peer_listening "$PORT" || net_die "http.server did not listen on $PORT"
URL=http://$NET_PEER_ADDR:$PORT

# ---- 1. a preloaded curl through the device -----------------------------------------------------
toectl_json "$NET_TMP/stats0.json" stats
T0=$(date +%s%N)
dev timeout -k 2 120 "${PRE_BASE[@]}" TOE_CTL="$CTL" TOE_STRICT=1 curl -sS --fail -o "$NET_TMP/got.bin" \
  "$URL/data.bin" 2>"$NET_TMP/curl1.err"
RC=$?
MS=$(ms_since "$T0")
check_eq "preloaded curl: exit status" "$RC" 0
check_eq "preloaded curl: SHA-256 of ${SIZE_MB} MiB" "$(sha "$NET_TMP/got.bin" 2>/dev/null)" "$DATA_SHA"
net_log "${SIZE_MB} MiB in ${MS} ms"
check_eq "preloaded curl: nothing on stderr" "$(wc -c <"$NET_TMP/curl1.err")" 0
no_sanitizer "preloaded curl" "$NET_TMP/curl1.err"
# The kernel of the device namespace cannot reach the peer at all (no address, no route): the
# same curl without the library fails.
dev timeout -k 2 10 curl -sS -m 3 -o /dev/null "$URL/data.bin" 2>/dev/null
check "plain curl in the device namespace cannot reach the peer" test "$?" != 0
toectl_json "$NET_TMP/stats1.json" stats
d() { echo $(($(num "$(stat_get "$NET_TMP/stats1.json" "$1")") - $(num "$(stat_get "$NET_TMP/stats0.json" "$1")"))); }
check_ge "device counters: tcp.rx_bytes grew by the file" "$(d tcp.rx_bytes)" $((SIZE_MB * 1048576))
check_ge "device counters: tcp.active_opens" "$(d tcp.active_opens)" 1
check_ge "device counters: transport.rx_bytes (to the host)" "$(d transport.rx_bytes)" $((SIZE_MB * 1048576))

# ---- 2. while it runs, the flow is curl's --------------------------------------------------------
# (env execs curl: BG_PID is curl's own pid, which toectl shows). curl writes into a FIFO nobody
# reads yet, so it stops at its first body bytes with the connection open for as long as the
# checks take (a transfer that could end before toectl looked made this test flaky under load).
mkfifo "$NET_TMP/slow2.fifo"
dev_bg "${PRE_BASE[@]}" TOE_CTL="$CTL" curl -sS --fail -m 60 --limit-rate 1M -o "$NET_TMP/slow2.fifo" \
  "$URL/slow.bin" 2>"$NET_TMP/curl2.err"
CURL_PID=$BG_PID
has_flow() {
  toectl_json "$NET_TMP/flows.json" flows &&
    [ "$(flow_get "$NET_TMP/flows.json" "$CURL_PID" tcp state)" = ESTAB ]
}
if wait_for 10 has_flow; then
  F=$NET_TMP/flows.json
  check_eq "toectl flows: the connection's pid is curl's" "$(flow_get "$F" "$CURL_PID" tcp pid)" "$CURL_PID"
  check_eq "toectl flows: comm" "$(flow_get "$F" "$CURL_PID" tcp comm)" curl
  check_eq "toectl flows: origin" "$(flow_get "$F" "$CURL_PID" tcp origin)" preload
  check_eq "toectl flows: remote" "$(flow_get "$F" "$CURL_PID" tcp remote)" "$NET_PEER_ADDR:$PORT"
else
  net_fail "toectl flows: no ESTAB flow owned by curl (pid $CURL_PID)"
  cat "$NET_TMP/flows.json" 2>/dev/null | head -20 | sed 's/^/#   /'
fi
cat "$NET_TMP/slow2.fifo" >"$NET_TMP/slow.got" &
CAT_PID=$!
wait_exit "$CURL_PID" 30000
wait "$CAT_PID"
check_eq "rate-limited preloaded curl: exit status" "$WAIT_STATUS" 0
check_eq "rate-limited preloaded curl: SHA-256" "$(sha "$NET_TMP/slow.got" 2>/dev/null)" "$(sha "$WWW/slow.bin")"

# ---- 3. a refused connect --------------------------------------------------------------------------
dev timeout -k 2 20 "${PRE_BASE[@]}" TOE_CTL="$CTL" curl -v -sS -o /dev/null "http://$NET_PEER_ADDR:1/" \
  2>"$NET_TMP/curl3.err"
check_eq "preloaded curl to a closed port: exit 7 (couldn't connect)" "$?" 7
check "  and curl saw ECONNREFUSED" grep -q 'failed: Connection refused' "$NET_TMP/curl3.err"

# ---- 4. rules: a declined destination goes to the kernel -----------------------------------------
toectl_json "$NET_TMP/stats2.json" stats
peer timeout -k 2 60 "${PRE_BASE[@]}" TOE_CTL="$CTL" TOE_OFFLOAD="!tcp:$NET_PEER_ADDR:*,tcp:*:*" \
  TOE_PRELOAD_DEBUG=1 curl -sS --fail -o "$NET_TMP/got4.bin" "$URL/data.bin" 2>"$NET_TMP/curl4.err"
check_eq "TOE_OFFLOAD declining the server: curl exit status" "$?" 0
check_eq "  SHA-256" "$(sha "$NET_TMP/got4.bin" 2>/dev/null)" "$DATA_SHA"
check "  the library's decision: kernel" grep -q "connect $NET_PEER_ADDR:$PORT -> kernel" "$NET_TMP/curl4.err"
check "  and it never attached" bash -c "! grep -q attached $NET_TMP/curl4.err"
toectl_json "$NET_TMP/stats3.json" stats
check_eq "  device: no new connection" \
  "$(($(num "$(stat_get "$NET_TMP/stats3.json" tcp.active_opens)") - $(num "$(stat_get "$NET_TMP/stats2.json" tcp.active_opens)")))" 0

# ---- 5. no device: the kernel, with one warning; TOE_STRICT=1 fails ------------------------------
peer timeout -k 2 60 "${PRE_BASE[@]}" TOE_CTL="$NET_TMP/nothing.sock" curl -sS --fail \
  -o "$NET_TMP/got5.bin" "$URL/data.bin" "$URL/slow.bin" -o "$NET_TMP/got5b.bin" 2>"$NET_TMP/curl5.err"
check_eq "no device: curl through the kernel, exit status" "$?" 0
check_eq "  SHA-256" "$(sha "$NET_TMP/got5.bin" 2>/dev/null)" "$DATA_SHA"
check_eq "  exactly one warning line (two connections)" "$(preload_lines "$NET_TMP/curl5.err")" 1
check "  which names the control socket" grep -q "no device at $NET_TMP/nothing.sock" "$NET_TMP/curl5.err"
check_eq "  and nothing else on stderr" "$(grep -vc '^toe-preload' "$NET_TMP/curl5.err")" 0
peer timeout -k 2 60 "${PRE_BASE[@]}" TOE_CTL="$NET_TMP/nothing.sock" TOE_STRICT=1 curl -sS \
  -o /dev/null "$URL/slow.bin" 2>"$NET_TMP/curl6.err"
check_eq "no device, TOE_STRICT=1: curl fails to connect (exit 7)" "$?" 7
check "  with the library's explanation" grep -q "TOE_STRICT=1" "$NET_TMP/curl6.err"

# toed stopped under a fresh preloaded curl: the transfer fails promptly instead of hanging. curl
# waits on a FIFO (no reader yet) with its connection open until toed is gone; once a reader
# comes, its next call into the library finds the device lost.
mkfifo "$NET_TMP/slow7.fifo"
dev_bg "${PRE_BASE[@]}" TOE_CTL="$CTL" curl -sS -m 60 -o "$NET_TMP/slow7.fifo" \
  "$URL/slow.bin" 2>"$NET_TMP/curl7.err"
CURL_PID=$BG_PID
wait_for 30 has_flow || net_fail "no flow of the last curl: the device-loss check below means nothing"
check_toed_exit
T0=$(date +%s%N)
cat "$NET_TMP/slow7.fifo" >/dev/null &
CAT_PID=$!
net_bg_add "$CAT_PID"
wait_exit "$CURL_PID" 5000 "$T0"
check "device gone under a running curl: it ends within 5 s" test "$WAIT_MS" != timeout
check "  with an error status" test "${WAIT_STATUS:-0}" != 0
check "  after the library's one line about the lost device" grep -q 'device lost' "$NET_TMP/curl7.err"
for f in "$NET_TMP"/curl*.err; do no_sanitizer "$(basename "$f")" "$f"; done

net_finish
