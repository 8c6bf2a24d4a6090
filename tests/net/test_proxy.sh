#!/usr/bin/env bash
# toe-proxyd, the transparent proxy (docs/interception.md "toe-proxyd"). In the device namespace:
# toed and toe-proxyd; in the peer: a kernel HTTP server (python3 -m http.server) and a UDP echo.
#  - --dry-run prints the nft table and the ip rules; bad rules exit 2, no device exits 1;
#  - a plain curl and a statically linked busybox wget to an included destination are carried by
#    the device: SHA-256 equal, the device's TCP counters grew by the file, `toectl flows` shows the
#    flow with origin "proxy" and the application's pid and comm while it runs, and the kernel of
#    the device namespace holds only the local leg (every TCP socket's peer is another local
#    socket: nothing of the flow leaves through the kernel);
#  - an excluded destination (198.19.0.2, reached by the device namespace's kernel over a second
#    veth pair) bypasses the proxy: the transfer crossed that veth, the device saw no connection;
#  - half-close both ways (every byte before the client's FIN reaches the server, its answer comes
#    back, then EOF), a peer's reset reaches the application as ECONNRESET, and a closed
#    destination port shows as a reset after a successful connect (the kernel's local leg);
#  - a UDP flow through the proxy: every datagram echoed byte-identical, the echo server saw the
#    device's address, the flow is in `toectl flows` as the client's;
#  - SIGTERM: exit 0, counters printed, no nft table and no ip rule of the proxy left, and the
#    destination is unreachable again; after kill -9 the rules stay, and the next start removes
#    them (saying so once).
# Usage: bash tests/net/test_proxy.sh BINDIR
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/transport_lib.sh"
NET_REQUIRED_TOOLS="ip ping timeout curl busybox nft sha256sum ss $NET_PY"
net_init "$1" 120
tr_init
PROXYD=$NET_BINDIR/toe-proxyd
[ -x "$PROXYD" ] || net_die "no toe-proxyd at $PROXYD (build first)"
PORT=8080
UPORT=7777
KERN_DEV=198.19.0.1  # the device namespace kernel's own path to the peer (excluded traffic)
KERN_PEER=198.19.0.2
SIZE_MB=8
TPORT=9000  # proxy_tcp.py's server; TPORT+1 is closed
RULES=(--include "tcp:198.18.0.0/15:$PORT" --include "udp:198.18.0.0/15:*"
  --include "tcp:198.18.0.0/15:$TPORT-$((TPORT + 1))" --exclude "tcp:$KERN_PEER/32:*")

no_sanitizer() {
  if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' "$2" 2>/dev/null; then
    net_fail "$1: sanitizer report"
    grep -E -A5 'AddressSanitizer|LeakSanitizer|runtime error:' "$2" | head -20 | sed 's/^/#   /'
  fi
}
proxy_rules_gone() {
  ! dev nft list table inet toe_proxyd >/dev/null 2>&1 &&
    [ "$(dev ip -4 rule show | awk -F: '$1 >= 10000 && $1 <= 10258' | wc -l)" = 0 ] &&
    [ -z "$(dev ip -4 route show table 7399)" ]
}

# ---- 1. arguments ------------------------------------------------------------------------------
OUT=$("$PROXYD" --dry-run "${RULES[@]}" 2>&1)
check_eq "--dry-run: exit 0" "$?" 0
printf '%s\n' "$OUT" >"$NET_TMP/dry.txt"
check "--dry-run: the nft table" grep -q '^table inet toe_proxyd {' "$NET_TMP/dry.txt"
check "--dry-run: TPROXY for the TCP include" \
  grep -q "meta l4proto tcp ip daddr 198.18.0.0/15 th dport $PORT tproxy ip to 127.0.0.1:7399 accept" "$NET_TMP/dry.txt"
check "--dry-run: TPROXY for the UDP include (any port)" \
  grep -q "meta l4proto udp ip daddr 198.18.0.0/15 tproxy ip to 127.0.0.1:7399 accept" "$NET_TMP/dry.txt"
check "--dry-run: the exclude returns before" grep -q "meta l4proto tcp ip daddr $KERN_PEER/32 return" "$NET_TMP/dry.txt"
check "--dry-run: ip rule for the exclude jumps past the includes" \
  grep -q "^ip rule add pref 10002 to $KERN_PEER/32 ipproto tcp goto 10258 protocol 116$" "$NET_TMP/dry.txt"
check "--dry-run: ip rule for the TCP include" \
  grep -q "^ip rule add pref 10130 to 198.18.0.0/15 ipproto tcp dport $PORT iif lo lookup 7399 protocol 116$" "$NET_TMP/dry.txt"
check "--dry-run: the local route" grep -q '^ip route add local 0.0.0.0/0 dev lo src 127.0.0.1 table 7399 proto 116$' "$NET_TMP/dry.txt"
"$PROXYD" --dry-run --include "tcp:198.18.0.0/33:80" >/dev/null 2>"$NET_TMP/bad.err"
check_eq "a bad rule: exit 2" "$?" 2
check "  and says which" grep -q "bad rule 'tcp:198.18.0.0/33:80'" "$NET_TMP/bad.err"
"$PROXYD" --dry-run >/dev/null 2>&1
check_eq "no --include: exit 2" "$?" 2

net_setup
# The device namespace's kernel gets its own path to the peer (for the excluded destination).
ip -n "$NET_DEV_NS" link add kern0 type veth peer name kern1 netns "$NET_PEER_NS" || net_die "veth kern"
ip -n "$NET_DEV_NS" addr add "$KERN_DEV/16" dev kern0 && ip -n "$NET_PEER_NS" addr add "$KERN_PEER/16" dev kern1 ||
  net_die "kern addresses"
ip -n "$NET_DEV_NS" link set kern0 up && ip -n "$NET_PEER_NS" link set kern1 up || net_die "kern links"
# Small kernel socket buffers in the device namespace: otherwise the local leg (curl's receive
# buffer, the proxy's send buffer) soaks up a rate-limited download in a moment and the device's
# connection is over long before curl is.
net_sysctl "$NET_DEV_NS" net.ipv4.tcp_rmem "4096 65536 262144"
net_sysctl "$NET_DEV_NS" net.ipv4.tcp_wmem "4096 16384 262144"

dev timeout -k 2 10 "$PROXYD" --ctl "$NET_TMP/nothing.sock" "${RULES[@]}" 2>"$NET_TMP/nodev.err"
check_eq "no device: exit 1" "$?" 1
check "  and says where it looked" grep -q "no device at $NET_TMP/nothing.sock" "$NET_TMP/nodev.err"
check "  and installed nothing" proxy_rules_gone

tr_start_toed
WWW=$NET_TMP/www
mkdir -p "$WWW"
head -c $((SIZE_MB * 1048576)) /dev/urandom >"$WWW/data.bin" || net_die "cannot write the data"
head -c $((2 * 1048576)) /dev/urandom >"$WWW/slow.bin"
DATA_SHA=$(sha "$WWW/data.bin")
peer_bg timeout -k 2 110 "$NET_PY" -m http.server "$PORT" --bind 0.0.0.0 --directory "$WWW" \
  >"$NET_TMP/httpd.log" 2>&1 </dev/null
peer_bg timeout -k 2 110 "$NET_PY" "$NET_LIB_DIR/proxy_udp.py" server "$NET_PEER_ADDR" "$UPORT" \
  >"$NET_TMP/udpecho.log" 2>&1 </dev/null
peer_bg timeout -k 2 110 "$NET_PY" "$NET_LIB_DIR/proxy_tcp.py" server "$NET_PEER_ADDR" "$TPORT" \
  >"$NET_TMP/tcpsrv.log" 2>&1 </dev/null
wait_for 10 peer_listening "$PORT" || net_die "http.server did not listen on $PORT"
wait_for 10 peer_listening "$UPORT" udp || net_die "the UDP echo did not listen on $UPORT"
wait_for 10 peer_listening "$TPORT" || net_die "proxy_tcp.py did not listen on $TPORT"
URL=http://$NET_PEER_ADDR:$PORT

# Without the proxy the device namespace's kernel cannot reach 198.18.0.2 at all.
dev timeout -k 2 10 curl -sS -m 3 -o /dev/null "$URL/data.bin" 2>/dev/null
check "before the proxy: no route from the device namespace's kernel" test "$?" != 0

# proxy_start: toe-proxyd in the device namespace; waits for its "intercepting" line.
proxy_start() {
  PROXY_LOG=$NET_TMP/proxyd.$1.log
  dev_bg "$PROXYD" --ctl "$CTL" "${RULES[@]}" -v 2>"$PROXY_LOG" </dev/null
  PROXY_PID=$BG_PID
  wait_for 10 grep -q 'intercepting' "$PROXY_LOG" || {
    sed 's/^/#   /' "$PROXY_LOG"
    net_die "toe-proxyd did not start"
  }
}
proxy_start 1

# ---- 2. a plain curl, carried by the device ----------------------------------------------------
toectl_json "$NET_TMP/stats0.json" stats
T0=$(date +%s%N)
dev timeout -k 2 60 curl -sS --fail -o "$NET_TMP/got.bin" "$URL/data.bin" 2>"$NET_TMP/curl1.err"
check_eq "curl through the proxy: exit status" "$?" 0
net_log "$SIZE_MB MiB through the proxy in $(ms_since "$T0") ms"
check_eq "  SHA-256 of $SIZE_MB MiB" "$(sha "$NET_TMP/got.bin" 2>/dev/null)" "$DATA_SHA"
toectl_json "$NET_TMP/stats1.json" stats
d() { echo $(($(num "$(stat_get "$NET_TMP/stats1.json" "$1")") - $(num "$(stat_get "$NET_TMP/stats0.json" "$1")"))); }
check_ge "  device: tcp.rx_bytes grew by the file" "$(d tcp.rx_bytes)" $((SIZE_MB * 1048576))
check_ge "  device: tcp.active_opens" "$(d tcp.active_opens)" 1

# ---- 3. while a slow curl runs: toectl flows, and the kernel holds only the local leg -----------
# curl writes into a FIFO nobody reads until the snapshots are taken, so its connection stays
# open for them (curl's rate limit alone let a fast proxy finish 2 MiB in 0.4 s, before its
# first speed estimate: the snapshots then found nothing).
mkfifo "$NET_TMP/slow.fifo"
T0=$(date +%s%N)
dev_bg curl -sS --fail -m 60 --limit-rate 256K -o "$NET_TMP/slow.fifo" "$URL/slow.bin" 2>"$NET_TMP/curl2.err"
CURL_PID=$BG_PID
# The device's connection is ESTAB, or CLOSE-WAIT once the server has sent everything and the
# device holds the rest for the slow reader.
has_flow() {
  toectl_json "$NET_TMP/flows.json" flows &&
    [[ "$(flow_get "$NET_TMP/flows.json" "$CURL_PID" tcp state)" =~ ^(ESTAB|CLOSE-WAIT|LAST-ACK)$ ]]
}
if wait_for 20 has_flow; then
  # Snapshots first, checks after: on a loaded machine the checks take long enough for the
  # rate-limited curl to finish meanwhile.
  dev ss -Htn state connected | awk '$1 != "TIME-WAIT"' >"$NET_TMP/ss.txt"
  toectl_run flows >"$NET_TMP/flows.txt"
  F=$NET_TMP/flows.json
  check_eq "toectl flows: the proxied connection is curl's (pid)" "$(flow_get "$F" "$CURL_PID" tcp pid)" "$CURL_PID"
  check_eq "  comm" "$(flow_get "$F" "$CURL_PID" tcp comm)" curl
  check_eq "  origin" "$(flow_get "$F" "$CURL_PID" tcp origin)" proxy
  check_eq "  remote: the original destination" "$(flow_get "$F" "$CURL_PID" tcp remote)" "$NET_PEER_ADDR:$PORT"
  check "  the table shows it too" grep -qE "[A-Z-]+ .* proxy +$CURL_PID +curl" "$NET_TMP/flows.txt"
  # Kernel TCP sockets of the device namespace (TIME-WAIT left aside: earlier flows' remains):
  # each one's peer is another socket of this namespace (curl <-> the proxy over loopback); none
  # talks to the network.
  check_ge "  the kernel holds the local leg (curl and the proxy's end)" "$(wc -l <"$NET_TMP/ss.txt")" 2
  NONLOCAL=$(awk '{loc[$4] = 1; peer[NR] = $5} END {for (i in peer) if (!(peer[i] in loc)) print peer[i]}' "$NET_TMP/ss.txt")
  [ -n "$NONLOCAL" ] && sed 's/^/#   ss: /' "$NET_TMP/ss.txt"
  check_eq "  and no kernel socket with a peer outside the namespace" "${NONLOCAL:-none}" none
else
  net_fail "toectl flows: no open flow owned by curl (pid $CURL_PID)"
  head -30 "$NET_TMP/flows.json" 2>/dev/null | sed 's/^/#   /'
fi
cat "$NET_TMP/slow.fifo" >"$NET_TMP/slow.got" &
CAT_PID=$!
net_bg_add "$CAT_PID"
wait_exit "$CURL_PID" 30000 "$T0"
wait "$CAT_PID"
net_log "the rate-limited curl took $WAIT_MS ms"
check_eq "rate-limited curl: exit status" "$WAIT_STATUS" 0
check_eq "  SHA-256" "$(sha "$NET_TMP/slow.got" 2>/dev/null)" "$(sha "$WWW/slow.bin")"

# ---- 4. a statically linked client: busybox wget -------------------------------------------------
toectl_json "$NET_TMP/stats0.json" stats
dev timeout -k 2 60 busybox wget -q -O "$NET_TMP/bb.bin" "$URL/data.bin" 2>"$NET_TMP/bb.err"
check_eq "busybox wget (static) through the proxy: exit status" "$?" 0
check_eq "  SHA-256" "$(sha "$NET_TMP/bb.bin" 2>/dev/null)" "$DATA_SHA"
toectl_json "$NET_TMP/stats1.json" stats
check_ge "  device: tcp.rx_bytes grew by the file" "$(d tcp.rx_bytes)" $((SIZE_MB * 1048576))

# ---- 5. an excluded destination bypasses the proxy -----------------------------------------------
toectl_json "$NET_TMP/stats0.json" stats
RX0=$(dev cat /sys/class/net/kern0/statistics/rx_bytes)
dev timeout -k 2 60 curl -sS --fail -o "$NET_TMP/ex.bin" "http://$KERN_PEER:$PORT/data.bin" 2>"$NET_TMP/curl3.err"
check_eq "excluded destination: curl exit status" "$?" 0
check_eq "  SHA-256" "$(sha "$NET_TMP/ex.bin" 2>/dev/null)" "$DATA_SHA"
RX1=$(dev cat /sys/class/net/kern0/statistics/rx_bytes)
check_ge "  the bytes came over the kernel's own veth (kern0 rx_bytes)" $((RX1 - RX0)) $((SIZE_MB * 1048576))
toectl_json "$NET_TMP/stats1.json" stats
check_eq "  the device saw no new connection" "$(d tcp.active_opens)" 0

# ---- 6. half-close and resets, both ways ---------------------------------------------------------
TOUT=$(dev timeout -k 2 30 "$NET_PY" "$NET_LIB_DIR/proxy_tcp.py" client "$NET_PEER_ADDR" "$TPORT" half)
check_eq "half-close: the server got every byte before the client's FIN (count and SHA-256)" \
  "$(awk '$1 == "answer" {print $2 " " $3}' <<<"$TOUT")" "$(kv sent "$TOUT") $(kv sha "$TOUT")"
check_eq "  and its answer came back after it, then EOF" "$(kv eof "$TOUT")" 1
TOUT=$(dev timeout -k 2 30 "$NET_PY" "$NET_LIB_DIR/proxy_tcp.py" client "$NET_PEER_ADDR" "$TPORT" reset)
check_eq "the peer resets: the application sees ECONNRESET" "$(kv result "$TOUT")" reset
TOUT=$(dev timeout -k 2 30 "$NET_PY" "$NET_LIB_DIR/proxy_tcp.py" client "$NET_PEER_ADDR" "$((TPORT + 1))" refused)
check_eq "a closed destination port: connect succeeds (the kernel's local leg)" "$(kv connect "$TOUT")" ok
check_eq "  then the device's refusal arrives as a reset" "$(kv result "$TOUT")" reset

# ---- 7. UDP through the proxy ------------------------------------------------------------------
UOUT=$(dev timeout -k 2 30 "$NET_PY" "$NET_LIB_DIR/proxy_udp.py" client "$NET_PEER_ADDR" "$UPORT" 24)
check_eq "UDP through the proxy: datagrams echoed byte-identical" "$(kv ok "$UOUT")" 24
check_eq "  none lost or altered" "$(kv bad "$UOUT")/$(kv lost "$UOUT")" 0/0
check "  the echo server saw the device's address" grep -q "^from $NET_DEV_ADDR:" "$NET_TMP/udpecho.log"
toectl_json "$NET_TMP/flows.json" flows
check_eq "  toectl flows: a UDP flow of the proxy to the echo server" \
  "$(json_eval "$NET_TMP/flows.json" "[f['origin'] + ' ' + f['comm'] for f in d['flows'] if f['proto'] == 'udp' and f['remote']['port'] == $UPORT][0]")" \
  "proxy python3"

# ---- 8. SIGTERM: everything removed ----------------------------------------------------------------
check "while running: the nft table exists" dev nft list table inet toe_proxyd
kill -USR1 "$PROXY_PID"
check "SIGUSR1: the counters, and it keeps running" \
  wait_for 5 grep -qE 'counters \(SIGUSR1\):.* udp_flows=1 ' "$NET_TMP/proxyd.1.log"
check "  (still running)" kill -0 "$PROXY_PID"
kill -TERM "$PROXY_PID"
wait_exit "$PROXY_PID" 10000
check_eq "SIGTERM: toe-proxyd exits 0" "$WAIT_STATUS" 0
check "  no nft table, ip rule or route of the proxy left" proxy_rules_gone
check "  counters printed" grep -qE 'counters \(exit\):.* tcp_flows=[6-9]' "$NET_TMP/proxyd.1.log"
check "  the refused connection counted" grep -qE 'counters \(exit\):.* tcp_failed=1 ' "$NET_TMP/proxyd.1.log"
check "  and the resets" grep -qE 'counters \(exit\):.* tcp_resets=2 ' "$NET_TMP/proxyd.1.log"
check "  UDP counted" grep -qE 'udp_dgrams_in=24 ' "$NET_TMP/proxyd.1.log"
no_sanitizer "toe-proxyd" "$NET_TMP/proxyd.1.log"
dev timeout -k 2 10 curl -sS -m 3 -o /dev/null "$URL/data.bin" 2>/dev/null
check "  and the destination is unreachable again from the device namespace" test "$?" != 0

# ---- 9. kill -9, then the next start cleans up ------------------------------------------------------
proxy_start 2
kill -KILL "$PROXY_PID"
{ wait_exit "$PROXY_PID" 5000; } 2>/dev/null # (no "Killed" job notice from bash)
check "after kill -9 the rules are still there" dev nft list table inet toe_proxyd
proxy_start 3
check_eq "the next start removes them, saying so once" \
  "$(grep -c 'removed the interception rules an earlier toe-proxyd left' "$PROXY_LOG")" 1
dev timeout -k 2 60 curl -sS --fail -o "$NET_TMP/got3.bin" "$URL/slow.bin" 2>"$NET_TMP/curl4.err"
check_eq "  and intercepts again (curl SHA-256)" "$(sha "$NET_TMP/got3.bin" 2>/dev/null)" "$(sha "$WWW/slow.bin")"
kill -TERM "$PROXY_PID"
wait_exit "$PROXY_PID" 10000
check_eq "  SIGTERM: exit 0" "$WAIT_STATUS" 0
check "  nothing left" proxy_rules_gone
no_sanitizer "toe-proxyd (3)" "$NET_TMP/proxyd.3.log"
check_toed_exit
net_finish
