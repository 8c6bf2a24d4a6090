#!/usr/bin/env bash
# UDP services interop: the kernel in the peer namespace talks to toed's built-in services.
#  - echo (RFC 862, port 7): 1000 datagrams of sizes spread over 0..1472 bytes (no fragmentation),
#    20 of 4000 bytes (the kernel fragments them, the engine reassembles the request and fragments the
#    echo) and a few odd sizes up to the largest datagram (65507 bytes, 45 fragments), each returned
#    byte-identical; stop-and-wait with a small retry, retries counted (there should be none on veth);
#  - the same with the peer's transmit checksum offload off (by default the kernel hands veth frames
#    with partial checksums, which toed must complete; with it off, the checksums are the kernel's);
#  - chargen (RFC 864, port 19): one reply per request, the rotating printable pattern;
#  - discard (RFC 863, port 9): nothing comes back, the datagrams are counted as delivered.
# Usage: bash tests/net/test_udp_echo.sh BINDIR
source "$(dirname "$0")/lib.sh"
net_init "$1" 110
net_setup
start_toed --service echo:7 --service discard:9 --service chargen:19

# kv KEY <<<"$out": the value of a "key value" line of udp_tool.py's output.
kv() { awk -v k="$1" '$1 == k { $1 = ""; print substr($0, 2); exit }'; }

run_tool() { # LABEL ARGS...: runs udp_tool.py, logs its output, leaves it in $out
  local label=$1
  shift
  out=$(peer_py 60 udp_tool.py "$@" 2>&1)
  net_log "$label: $(tr '\n' ' ' <<<"$out")"
}

run_tool "echo sweep" echo --port 7 --count 1000 --max 1472 --big 20 --big-size 4000 \
  --sizes 1473,2952,2953,8000,16384,65507 --timeout 1 --retries 3
check_eq "echo: datagrams returned byte-identical (sizes 0..1472, 20x4000, up to 65507)" \
  "$(kv ok <<<"$out")" 1026
check_eq "echo: lost after retries" "$(kv lost <<<"$out")" 0
check_eq "echo: mismatched replies" "$(kv mismatch <<<"$out")" 0
check_range "echo: retries needed" "$(kv retries <<<"$out")" 0 5
ECHOED=$(kv ok <<<"$out")

# Checksums complete on the wire: turn the peer's transmit checksum offload off and echo again.
if command -v ethtool >/dev/null && peer ethtool -K "$NET_PEER_IF" tx off >/dev/null 2>&1; then
  run_tool "echo, peer tx checksum offload off" echo --port 7 --count 100 --max 1472 --big 5 \
    --big-size 4000 --seed 2 --timeout 1 --retries 3
  check_eq "echo with the peer's tx checksum offload off" "$(kv ok <<<"$out")" 105
  check_eq "echo with the peer's tx checksum offload off: mismatched" "$(kv mismatch <<<"$out")" 0
  peer ethtool -K "$NET_PEER_IF" tx on >/dev/null 2>&1
else
  net_log "ethtool missing or failed: skipping the offload-off round"
fi

run_tool "chargen" chargen --port 19 --count 20 --timeout 1
check_eq "chargen: one reply per request" "$(kv replies <<<"$out")" 20
check_eq "chargen: replies in the RFC 864 rotating pattern" "$(kv bad_pattern <<<"$out")" 0
check_eq "chargen: no extra replies" "$(kv extra <<<"$out")" 0
check_range "chargen: reply length at most 512 (RFC 864: a random 0..512)" "$(kv len_max <<<"$out")" 0 512

run_tool "discard" discard --port 9 --count 50 --timeout 0.5
check_eq "discard: nothing comes back" "$(kv received <<<"$out")" 0
check_eq "discard: no ICMP error either (port is open)" "$(kv refused <<<"$out")" 0

check "device still answers ping" peer ping -c 1 -W 2 -q "$NET_DEV_ADDR"
check_toed_exit
net_log "toed summary:"
sed 's/^/#   /' "$NET_TOED_LOG" | tail -60

P=$NET_PCAP D=$NET_DEV_ADDR
check_ge "pcap: echo replies from port 7" \
  "$(tshark_count "$P" "ip.src == $D && udp.srcport == 7")" $((ECHOED + 105))
check_ge "pcap: 4000-byte echoes left in 3 fragments" \
  "$(tshark_count "$P" "ip.src == $D && udp.srcport == 7 && udp.length == 4008 && ip.fragment.count == 3")" 25
check_ge "pcap: the 65507-byte echo left in 45 fragments" \
  "$(tshark_count "$P" "ip.src == $D && udp.srcport == 7 && udp.length == 65515 && ip.fragment.count == 45")" 1
check_eq "pcap: nothing sent from the discard port" "$(tshark_count "$P" "ip.src == $D && udp.srcport == 9")" 0
check_eq "pcap: no ICMP errors from the device" "$(tshark_count "$P" "ip.src == $D && icmp.type == 3")" 0
check_pcap_clean "pcap" "$P"

# 1026 + 105 echoed, 20 chargen, 50 discard: all delivered to sockets.
check_ge "counter udp.rx_delivered" "$(toed_counter udp.rx_delivered)" $((ECHOED + 105 + 20 + 50))
check_ge "counter udp.tx_datagrams" "$(toed_counter udp.tx_datagrams)" $((ECHOED + 105 + 20))
check_eq "counter udp.rx_drop_checksum" "$(toed_counter udp.rx_drop_checksum)" 0
check_eq "counter udp.rx_drop_no_port" "$(toed_counter udp.rx_drop_no_port)" 0
check_ge "counter ip.reass_ok" "$(toed_counter ip.reass_ok)" 30
if engine_only "toed service and driver counters"; then
  check_eq "counter svc_udp_discard_9.rx_datagrams (discard saw every datagram)" \
    "$(toed_counter svc_udp_discard_9.rx_datagrams)" 50
  check_eq "counter svc_udp_discard_9.tx_datagrams" "$(toed_counter svc_udp_discard_9.tx_datagrams)" 0
  check_eq "counter svc_udp_chargen_19.tx_datagrams" "$(toed_counter svc_udp_chargen_19.tx_datagrams)" 20
  check_eq "counters svc_udp_echo_7: every datagram received was sent back" \
    "$(toed_counter svc_udp_echo_7.tx_datagrams)" "$(toed_counter svc_udp_echo_7.rx_datagrams)"
  # The peer's kernel leaves partial checksums on veth frames; toed's driver completes them.
  check_ge "counter driver.rx_csum_fixed (partial checksums completed)" \
    "$(toed_counter driver.rx_csum_fixed)" 1000
fi
net_finish
