#!/usr/bin/env bash
# TCP path MTU discovery (RFC 1191) through a router: the device's offloaded connection learns a
# smaller path MTU from the router's ICMP "fragmentation needed" and completes a 64 MiB transfer
# intact; the kernel peer does the same the other way.
#
#   bash tests/net/test_tcp_pmtu.sh BINDIR        (root; BINDIR holds toed, toectl, toe-nc)
#
#   netns dev                      netns mid (a Linux router)                   netns peer
#   toed --wire wire0 <---------> ma 198.18.0.254/24   mb 198.19.0.254/24 <---------> peer0 198.19.0.2/24
#   198.18.0.1/24, gw .254         routes to both subnets with "mtu lock 1280"       route 198.18.0.0/24 via .254
#
# Every link is MTU 1500 (so both ends announce an MSS of 1460), but the router forwards at most
# 1280 bytes each way: its kernel answers a larger datagram with DF set by an ICMP destination
# unreachable code 4 (next-hop MTU 1280) and drops it. Checks: the device's connection (toe-nc ->
# kernel nc) delivers 64 MiB intact (SHA-256); the device counted the PMTU update
# (tcp.icmp_pmtu) and the flow's MSS became 1240 while it ran; a `toectl capture --filter icmp`
# holds the router's frag-needed with MTU 1280 quoting the device's segment; a second connection
# to the peer starts at the cached path MTU (tcp.pmtu_from_cache, no new reduction) and delivers
# 8 MiB intact; the reverse direction (kernel nc -> toe-nc -l, 8 MiB) arrives intact too.
#
# toed runs with its host interface (toe0, sharing the device's MAC and address, issue 6 /
# docs/coexistence.md), so the same hop is also met by an ordinary kernel connection of the host
# OS: a plain nc in the device namespace sends 64 MiB through toe0 and the router; the router's
# frag-needed quotes the OS's segment, so the device steers it up to toe0 (steer.icmp_err_host),
# the OS's kernel learns the path MTU (ip route get shows it) and its transfer arrives intact.
set -u
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/transport_lib.sh"

NET_REQUIRED_TOOLS="ip ping nc ss tshark timeout sha256sum $NET_PY"
net_init "${1:-}" 110
tr_init
tr_need "$TOE_NC"

NET_PEER_ADDR=198.19.0.2
GW_DEV=198.18.0.254
GW_PEER=198.19.0.254
PATH_MTU=1280
PORT=5301
RPORT=5302
BIG_MB=64

# ---- topology --------------------------------------------------------------------------------------

# lib.sh's three namespaces; the middle one is a router with an address on each side.
net_setup_mid
ip -n "$NET_MID_NS" addr add "$GW_DEV/24" dev ma || net_die "router address on ma"
ip -n "$NET_MID_NS" addr add "$GW_PEER/24" dev mb || net_die "router address on mb"
net_sysctl "$NET_MID_NS" net.ipv4.ip_forward 1
# The narrow hop: forwarded datagrams over 1280 bytes get "fragmentation needed" (a forwarding
# router honours a route's MTU, and "lock" keeps it from being changed by what it learns).
ip -n "$NET_MID_NS" route replace 198.18.0.0/24 dev ma src "$GW_DEV" mtu lock "$PATH_MTU" ||
  net_die "router route to the device with mtu $PATH_MTU"
ip -n "$NET_MID_NS" route replace 198.19.0.0/24 dev mb src "$GW_PEER" mtu lock "$PATH_MTU" ||
  net_die "router route to the peer with mtu $PATH_MTU"
# No default route anywhere: the peer reaches only the device's subnet, through the router.
ip -n "$NET_PEER_NS" route add 198.18.0.0/24 via "$GW_PEER" || net_die "peer route"
# The router's ICMP errors must not be rate-limited away while a whole window is dropped.
net_sysctl "$NET_MID_NS" net.ipv4.icmp_ratelimit 0

tr_start_toed --gateway "$GW_DEV" --host-if toe0 --host-addr "$NET_DEV_ADDR/24"
# The OS's own route to the peer's subnet, through the host interface and the router.
dev ip route add 198.19.0.0/24 via "$GW_DEV" dev toe0 || net_die "OS route via toe0"

# (No large DF ping before the transfers: the peer's kernel would learn the path MTU from it and
# announce a smaller MSS, and the device would never meet the narrow hop.)

# ---- device -> peer: the offloaded connection learns the path MTU --------------------------------

dev_bg timeout -k 2 90 "$TOECTL" --ctl "$CTL" capture "$NET_TMP/icmp.pcap" --filter icmp \
  2>"$NET_TMP/cap.err" </dev/null
CAP=$BG_PID
wait_for 10 grep -q "capturing on" "$NET_TMP/cap.err" || net_fail "capture did not start"

# peer_sha_sink PORT SECS OUT: a kernel nc -l on the peer's PORT (for at most SECS) that writes the
# SHA-256 of all it receives to OUT; RX is its pid (wait "$RX" waits for the checksum).
peer_sha_sink() {
  peer bash -c "exec timeout -k 2 $2 nc -l $NET_PEER_ADDR $1 </dev/null | sha256sum >$3" &
  RX=$!
  net_bg_add "$RX"
  wait_for 5 peer_listening "$1" || net_fail "kernel nc -l on $1"
}

head -c $((BIG_MB * 1048576)) /dev/urandom >"$NET_TMP/data"
DATA_SHA=$(sha256sum <"$NET_TMP/data" | cut -c1-64)
peer_sha_sink "$PORT" 80 "$NET_TMP/rx.sha"
t0=$(date +%s%N)
dev_bg "$TOE_NC" --ctl "$CTL" -N "$NET_PEER_ADDR" "$PORT" <"$NET_TMP/data" >/dev/null \
  2>"$NET_TMP/nc.err"
NC=$BG_PID

# While it runs: the flow's MSS is the path MTU minus 40 bytes of headers.
flow_mss() {
  json_eval "$NET_TMP/flows.json" \
    "next((f['mss'] for f in d['flows'] if f['pid'] == $NC and f['remote']['port'] == $PORT), 'none')"
}
mss_lowered() { toectl_json "$NET_TMP/flows.json" flows && [ "$(flow_mss)" = $((PATH_MTU - 40)) ]; }
wait_for 30 mss_lowered
check_eq "the offloaded flow's MSS follows the path MTU" "$(flow_mss)" $((PATH_MTU - 40))

wait "$NC"
check_eq "toe-nc -N exits 0" "$?" 0
ms=$(ms_since "$t0")
wait "$RX"
check_eq "device -> peer: ${BIG_MB} MiB arrived intact through the 1280-byte hop (SHA-256)" \
  "$(cut -c1-64 "$NET_TMP/rx.sha")" "$DATA_SHA"
net_log "device -> peer: ${BIG_MB} MiB in ${ms} ms"

toectl_json "$NET_TMP/stats.json" stats
check_ge "tcp.icmp_pmtu: the device lowered the path MTU" \
  "$(stat_get "$NET_TMP/stats.json" tcp.icmp_pmtu)" 1
check_ge "icmp.rx_dest_unreach: the router's frag-needed arrived" \
  "$(stat_get "$NET_TMP/stats.json" icmp.rx_dest_unreach)" 1
check_eq "tcp.icmp_bad_seq: none refused (each quoted a segment in flight)" \
  "$(stat_get "$NET_TMP/stats.json" tcp.icmp_bad_seq)" 0
net_log "tcp.retrans_segs $(stat_get "$NET_TMP/stats.json" tcp.retrans_segs)," \
  "icmp_pmtu $(stat_get "$NET_TMP/stats.json" tcp.icmp_pmtu)"

kill -TERM "$CAP" 2>/dev/null
wait "$CAP" 2>/dev/null
FN="icmp.type == 3 && icmp.code == 4 && ip.src == $GW_DEV && ip.dst == $NET_DEV_ADDR"
check_ge "the capture holds the router's frag-needed" "$(tshark_count "$NET_TMP/icmp.pcap" "$FN")" 1
check_eq "... every one with next-hop MTU $PATH_MTU" \
  "$(tshark_count "$NET_TMP/icmp.pcap" "$FN && icmp.mtu != $PATH_MTU")" 0
check_ge "... quoting the device's TCP segment to the peer" \
  "$(tshark_count "$NET_TMP/icmp.pcap" "$FN && tcp.srcport && tcp.dstport == $PORT")" 1

# ---- a second connection to the same peer starts from the device's path MTU cache ---------------

peer_sha_sink "$PORT" 60 "$NET_TMP/rx2.sha"
head -c 8388608 "$NET_TMP/data" >"$NET_TMP/data2"
dev timeout -k 2 60 "$TOE_NC" --ctl "$CTL" -N "$NET_PEER_ADDR" "$PORT" <"$NET_TMP/data2" \
  >/dev/null 2>"$NET_TMP/nc2.err"
check_eq "second connection: toe-nc -N exits 0" "$?" 0
wait "$RX"
check_eq "second connection: 8 MiB arrived intact" "$(cut -c1-64 "$NET_TMP/rx2.sha")" \
  "$(sha256sum <"$NET_TMP/data2" | cut -c1-64)"
toectl_json "$NET_TMP/stats2.json" stats
check_eq "second connection: started at the cached path MTU (tcp.pmtu_from_cache)" \
  "$(stat_get "$NET_TMP/stats2.json" tcp.pmtu_from_cache)" 1
check_eq "second connection: no new PMTU reduction was needed (tcp.icmp_pmtu unchanged)" \
  "$(stat_get "$NET_TMP/stats2.json" tcp.icmp_pmtu)" "$(stat_get "$NET_TMP/stats.json" tcp.icmp_pmtu)"
check_eq "ip.pmtu_lowered: one estimate for the peer" \
  "$(stat_get "$NET_TMP/stats2.json" ip.pmtu_lowered)" 1

# ---- the host OS's own connection, through the host interface ------------------------------------
# (Before the peer -> device part: once the peer's kernel has learned the path MTU it announces a
# smaller MSS, and the OS's connection would never meet the narrow hop.)

KPORT=5303
peer_sha_sink "$KPORT" 80 "$NET_TMP/krx.sha"
toectl_json "$NET_TMP/stats3.json" stats
t0=$(date +%s%N)
dev timeout -k 2 80 nc -N "$NET_PEER_ADDR" "$KPORT" <"$NET_TMP/data" >/dev/null 2>"$NET_TMP/knc.err"
check_eq "OS connection via toe0: plain nc -N exits 0" "$?" 0
ms=$(ms_since "$t0")
wait "$RX"
check_eq "OS connection via toe0: ${BIG_MB} MiB arrived intact through the 1280-byte hop (SHA-256)" \
  "$(cut -c1-64 "$NET_TMP/krx.sha")" "$DATA_SHA"
net_log "OS via toe0 -> peer: ${BIG_MB} MiB in ${ms} ms"
dev ip route get "$NET_PEER_ADDR" >"$NET_TMP/kroute.out" 2>&1
check "the OS's kernel learned the path MTU from the frag-needed steered up to it" \
  grep -q "mtu $PATH_MTU" "$NET_TMP/kroute.out"
toectl_json "$NET_TMP/stats4.json" stats
check_ge "steer.icmp_err_host: the router's frag-needed for the OS's flow went up to toe0" \
  $(($(num "$(stat_get "$NET_TMP/stats4.json" steer.icmp_err_host)") - $(num "$(stat_get "$NET_TMP/stats3.json" steer.icmp_err_host)"))) 1
check_eq "... and none of them reached the engine's connections (tcp.icmp_pmtu unchanged)" \
  "$(stat_get "$NET_TMP/stats4.json" tcp.icmp_pmtu)" "$(stat_get "$NET_TMP/stats3.json" tcp.icmp_pmtu)"

# ---- peer -> device: the kernel learns it too, the device receives intact -------------------------

head -c 8388608 /dev/urandom >"$NET_TMP/rdata"
dev bash -c "set -o pipefail; exec 2>$NET_TMP/ncl.err; timeout -k 2 60 \"$TOE_NC\" --ctl \"$CTL\" -v -l $RPORT </dev/null | sha256sum >$NET_TMP/dev_rx.sha" &
DRX=$!
net_bg_add "$DRX"
wait_for 10 grep -q '^Listening on' "$NET_TMP/ncl.err" || net_fail "toe-nc -l did not listen"
peer timeout -k 2 60 nc -N "$NET_DEV_ADDR" "$RPORT" <"$NET_TMP/rdata" >/dev/null 2>&1
check_eq "peer -> device: kernel nc -N exits 0" "$?" 0
wait "$DRX"
check_eq "peer -> device: toe-nc -l exits 0" "$?" 0
check_eq "peer -> device: 8 MiB arrived intact (SHA-256)" "$(cut -c1-64 "$NET_TMP/dev_rx.sha")" \
  "$(sha256sum <"$NET_TMP/rdata" | cut -c1-64)"
peer ip route get "$NET_DEV_ADDR" >"$NET_TMP/route.out" 2>&1
check "the peer's kernel learned the path MTU too" grep -q "mtu $PATH_MTU" "$NET_TMP/route.out"

# The router itself: a large ping passes fragmented without DF and is refused with DF.
peer ping -c 1 -W 2 -s 1400 -M dont "$NET_DEV_ADDR" >/dev/null 2>&1
check_eq "a large ping without DF crosses the router (fragmented) and the device answers" "$?" 0
peer ping -c 1 -W 2 -s 1400 -M do "$NET_DEV_ADDR" >"$NET_TMP/ping_df.out" 2>&1
check "a large DF ping from the peer is refused (frag needed, mtu $PATH_MTU)" \
  grep -qiE "mtu ?=? ?$PATH_MTU|message too long" "$NET_TMP/ping_df.out"

stop_toed
check_eq "toed exits 0" "$NET_TOED_STATUS" 0
net_finish
