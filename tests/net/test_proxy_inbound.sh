#!/usr/bin/env bash
# toe-proxyd with a broad include beside the kernel's own services (issue 13 item 6). The device
# namespace has a host interface (toe0, the device's MAC and address); its kernel serves HTTP on
# toe0 and echoes UDP there, and toe-proxyd runs with `--include tcp:198.18.0.0/15:*` and
# `--include udp:198.18.0.0/15:*`, which select the peer's address and every port:
#  - a kernel client in the peer fetches 8 MiB from the device namespace's kernel web server
#    (SHA-256 equal), and the kernel UDP echo answers the peer: the replies of inbound flows are
#    not routed into the proxy's table (only flows this namespace originates are intercepted);
#  - at the same time a curl in the device namespace to the peer is still carried by the proxy:
#    `toectl flows` shows it with origin "proxy" and curl's pid while it runs, SHA-256 equal;
#  - SIGTERM: exit 0, and every rule of the proxy (the reply bypass included) is gone.
# Usage: bash tests/net/test_proxy_inbound.sh BINDIR
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/transport_lib.sh"
NET_REQUIRED_TOOLS="ip timeout curl nft sha256sum $NET_PY"
net_init "$1" 90
tr_init
PROXYD=$NET_BINDIR/toe-proxyd
[ -x "$PROXYD" ] || net_die "no toe-proxyd at $PROXYD (build first)"
D=$NET_DEV_ADDR
KPORT=8081 # the device namespace kernel's web server (on toe0)
KUPORT=6000 # ... and its UDP echo
PPORT=8080 # the peer's web server
SIZE_MB=8
RULES=(--include "tcp:198.18.0.0/15:*" --include "udp:198.18.0.0/15:*")

proxy_rules_gone() {
  ! dev nft list table inet toe_proxyd >/dev/null 2>&1 &&
    [ "$(dev ip -4 rule show | awk -F: '$1 >= 10000 && $1 <= 10258' | wc -l)" = 0 ] &&
    [ -z "$(dev ip -4 route show table 7399)" ]
}

net_setup
# Small kernel socket buffers in the device namespace, as in test_proxy.sh: the rate-limited
# download below must still be open on the device while toectl looks.
net_sysctl "$NET_DEV_NS" net.ipv4.tcp_rmem "4096 65536 262144"
net_sysctl "$NET_DEV_NS" net.ipv4.tcp_wmem "4096 16384 262144"
tr_start_toed --host-if toe0 --host-addr "$D/$NET_PREFIX"

WWW=$NET_TMP/www
mkdir -p "$WWW"
head -c $((SIZE_MB * 1048576)) /dev/urandom >"$WWW/data.bin" || net_die "cannot write the data"
head -c $((2 * 1048576)) /dev/urandom >"$WWW/slow.bin"
DATA_SHA=$(sha "$WWW/data.bin")
dev_bg timeout -k 2 80 "$NET_PY" -m http.server "$KPORT" --bind "$D" --directory "$WWW" \
  >"$NET_TMP/khttp.log" 2>&1 </dev/null
dev_bg timeout -k 2 80 "$NET_PY" "$NET_LIB_DIR/proxy_udp.py" server "$D" "$KUPORT" \
  >"$NET_TMP/kudp.log" 2>&1 </dev/null
peer_bg timeout -k 2 80 "$NET_PY" -m http.server "$PPORT" --bind 0.0.0.0 --directory "$WWW" \
  >"$NET_TMP/phttp.log" 2>&1 </dev/null
wait_for 10 bash -c "ip netns exec $NET_DEV_NS ss -Hltn 'sport = :$KPORT' | grep -q ." ||
  net_die "the kernel web server did not listen on $KPORT"
wait_for 10 bash -c "ip netns exec $NET_DEV_NS ss -Hlun 'sport = :$KUPORT' | grep -q ." ||
  net_die "the kernel UDP echo did not bind $KUPORT"
wait_for 10 peer_listening "$PPORT" || net_die "the peer's web server did not listen on $PPORT"

# The setup itself: without the proxy the peer reaches the kernel's web server.
peer timeout -k 2 20 curl -sS --fail -m 15 -o "$NET_TMP/pre.bin" "http://$D:$KPORT/slow.bin" 2>"$NET_TMP/pre.err"
check_eq "before the proxy: the peer fetches from the kernel web server on toe0" "$?" 0

PROXY_LOG=$NET_TMP/proxyd.log
dev_bg "$PROXYD" --ctl "$CTL" "${RULES[@]}" -v 2>"$PROXY_LOG" </dev/null
PROXY_PID=$BG_PID
wait_for 10 grep -q 'intercepting' "$PROXY_LOG" || {
  sed 's/^/#   /' "$PROXY_LOG"
  net_die "toe-proxyd did not start"
}

# An outbound flow of the device namespace, kept open by a rate limit while the rest runs.
T0=$(date +%s%N)
dev_bg curl -sS --fail -m 60 --limit-rate 256K -o "$NET_TMP/slow.got" "http://$NET_PEER_ADDR:$PPORT/slow.bin" \
  2>"$NET_TMP/curl_out.err"
CURL_PID=$BG_PID
has_flow() {
  toectl_json "$NET_TMP/flows.json" flows &&
    [[ "$(flow_get "$NET_TMP/flows.json" "$CURL_PID" tcp state)" =~ ^(ESTAB|CLOSE-WAIT|LAST-ACK)$ ]]
}
if wait_for 20 has_flow; then
  F=$NET_TMP/flows.json
  check_eq "outbound curl: on the device, origin proxy" "$(flow_get "$F" "$CURL_PID" tcp origin)" proxy
  check_eq "  curl's pid" "$(flow_get "$F" "$CURL_PID" tcp pid)" "$CURL_PID"
  check_eq "  remote: the peer's web server" "$(flow_get "$F" "$CURL_PID" tcp remote)" "$NET_PEER_ADDR:$PPORT"
else
  net_fail "toectl flows: no open flow owned by curl (pid $CURL_PID): the outbound flow is not proxied"
  head -30 "$NET_TMP/flows.json" 2>/dev/null | sed 's/^/#   /'
fi

# Inbound, while the proxy runs (and while the outbound flow is open).
peer timeout -k 2 30 curl -sS --fail -m 25 -o "$NET_TMP/in.bin" "http://$D:$KPORT/data.bin" 2>"$NET_TMP/curl_in.err"
check_eq "proxy running: the peer fetches $SIZE_MB MiB from the kernel web server (exit status)" "$?" 0
check_eq "  SHA-256" "$(sha "$NET_TMP/in.bin" 2>/dev/null)" "$DATA_SHA"
# 4 datagrams: 1, 100, 1400 and 1472 bytes (proxy_udp.py's sizes), none fragmented: toed's
# steering hands IP fragments to the engine, not to toe0, whatever the port.
UOUT=$(peer timeout -k 2 30 "$NET_PY" "$NET_LIB_DIR/proxy_udp.py" client "$D" "$KUPORT" 4)
check_eq "proxy running: the kernel UDP echo answers the peer (datagrams echoed)" "$(kv ok "$UOUT")" 4
check "  the echo saw the peer itself" grep -q "^from $NET_PEER_ADDR:" "$NET_TMP/kudp.log"
kill -USR1 "$PROXY_PID"
wait_for 5 grep -q 'counters (SIGUSR1)' "$PROXY_LOG"
CTR=$(grep 'counters (SIGUSR1)' "$PROXY_LOG" | tail -1)
check_eq "  the proxy carried none of them: tcp_flows (only the outbound curl)" \
  "$(sed -n 's/.* tcp_flows=\([0-9]*\).*/\1/p' <<<"$CTR")" 1
check_eq "  udp_flows" "$(sed -n 's/.* udp_flows=\([0-9]*\).*/\1/p' <<<"$CTR")" 0

wait_exit "$CURL_PID" 30000 "$T0"
check_eq "outbound curl through the proxy: exit status" "$WAIT_STATUS" 0
check_eq "  SHA-256" "$(sha "$NET_TMP/slow.got" 2>/dev/null)" "$(sha "$WWW/slow.bin")"

kill -TERM "$PROXY_PID"
wait_exit "$PROXY_PID" 10000
check_eq "SIGTERM: toe-proxyd exits 0" "$WAIT_STATUS" 0
check "  no nft table, ip rule or route of the proxy left" proxy_rules_gone
if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' "$PROXY_LOG"; then
  net_fail "toe-proxyd: sanitizer report"
  grep -E -A5 'AddressSanitizer|LeakSanitizer|runtime error:' "$PROXY_LOG" | head -20 | sed 's/^/#   /'
fi
peer timeout -k 2 20 curl -sS --fail -m 15 -o /dev/null "http://$D:$KPORT/slow.bin" 2>/dev/null
check_eq "after the proxy: the kernel web server still answers" "$?" 0
check_toed_exit
net_finish
