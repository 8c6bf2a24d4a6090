#!/usr/bin/env bash
# Ping interop: the Linux kernel in the peer namespace pings toed's engine across a veth.
#  - ping -c 20: 20 replies;
#  - ping -c 5 -s 3000: 5 replies; the 3028-byte requests arrive as fragments (the engine reassembles
#    them) and the replies leave as fragments (the engine fragments them), which the device's pcap
#    must show: every reply is made of 3 fragments at MTU 1500 (1480 + 1480 + 48 bytes of ICMP).
# Usage: bash tests/net/test_ping.sh BINDIR
source "$(dirname "$0")/lib.sh"
net_init "$1" 100
net_setup
start_toed

# ping prints "N packets transmitted, M received"; take M.
ping_received() { sed -n 's/.* \([0-9]\+\) received.*/\1/p' | head -1; }

out=$(peer ping -c 20 -i 0.2 -W 2 "$NET_DEV_ADDR" 2>&1)
check_eq "ping -c 20: replies" "$(ping_received <<<"$out")" 20
check "ping -c 20: no duplicates or damaged replies" \
  bash -c '! grep -qE "DUP!|wrong data|corrupted" <<<"$1"' _ "$out"

out=$(peer ping -c 5 -s 3000 -i 0.2 -W 2 "$NET_DEV_ADDR" 2>&1)
check_eq "ping -c 5 -s 3000: replies" "$(ping_received <<<"$out")" 5
check "ping -s 3000: replies carry 3008 bytes" grep -q '^3008 bytes from' <<<"$out"
check "ping -s 3000: no duplicates or damaged replies" \
  bash -c '! grep -qE "DUP!|wrong data|corrupted" <<<"$1"' _ "$out"

# A size that needs no fragmentation at all (1472 + 28 = 1500) and one that just does (1473).
out=$(peer ping -c 2 -s 1472 -i 0.2 -W 2 -M "do" "$NET_DEV_ADDR" 2>&1)
check_eq "ping -s 1472 -M do (exactly the MTU): replies" "$(ping_received <<<"$out")" 2
out=$(peer ping -c 2 -s 1473 -i 0.2 -W 2 "$NET_DEV_ADDR" 2>&1)
check_eq "ping -s 1473 (one byte over the MTU): replies" "$(ping_received <<<"$out")" 2

check_toed_exit
net_log "toed summary:"
sed 's/^/#   /' "$NET_TOED_LOG" | tail -40

P=$NET_PCAP D=$NET_DEV_ADDR
# tshark shows ip.frag_offset in 8-byte units in some versions and in bytes in others: accept both.
off() { echo "(ip.frag_offset == $1 || ip.frag_offset == $(($1 / 8)))"; }
# Every count below in one tshark pass (tshark_prefetch): a tshark start took 8 s of wall clock
# at load 18, and nine of them came near this test's watchdog.
tshark_prefetch "$P" "($NET_BAD_FILTER)" \
  "icmp.type == 0 && ip.src == $D" \
  "icmp.type == 0 && ip.src == $D && ip.fragment.count == 3 && ip.len == 68" \
  "ip.src == $D && ip.flags.mf == 1 && ip.frag_offset == 0 && ip.len == 1500 && ip.proto == 1" \
  "ip.src == $D && ip.flags.mf == 1 && $(off 1480) && ip.proto == 1" \
  "ip.src == $D && ip.flags.mf == 0 && $(off 2960) && ip.len == 68" \
  "icmp.type == 0 && ip.src == $D && ip.fragment.count == 2 && $(off 1480) && ip.len == 21" \
  "ip.src == $D && ip.len > 1500" \
  "icmp.type == 8 && ip.src == $NET_PEER_ADDR && ip.fragment.count == 3"
# Echo replies sent by the device, as tshark reassembles them (one match per reassembled datagram).
check_ge "pcap: echo replies from the device" \
  "$(tshark_count "$P" "icmp.type == 0 && ip.src == $D")" 29
# The big replies: 3008 bytes of ICMP in 3 fragments each (offsets 0, 1480, 2960).
check_eq "pcap: 3008-byte echo replies reassembled from fragments" \
  "$(tshark_count "$P" "icmp.type == 0 && ip.src == $D && ip.fragment.count == 3 && ip.len == 68")" 5
check_eq "pcap: first fragments of replies (MF, offset 0, 1500 bytes)" \
  "$(tshark_count "$P" "ip.src == $D && ip.flags.mf == 1 && ip.frag_offset == 0 && ip.len == 1500 && ip.proto == 1")" 7
check_eq "pcap: middle fragments of replies (MF, offset 1480)" \
  "$(tshark_count "$P" "ip.src == $D && ip.flags.mf == 1 && $(off 1480) && ip.proto == 1")" 5
check_eq "pcap: last fragments of 3008-byte replies (offset 2960, 68 bytes)" \
  "$(tshark_count "$P" "ip.src == $D && ip.flags.mf == 0 && $(off 2960) && ip.len == 68")" 5
# The 1473-byte pings: 1481 bytes of ICMP = 1480 + 1.
check_eq "pcap: replies to 1473-byte pings in 2 fragments" \
  "$(tshark_count "$P" "icmp.type == 0 && ip.src == $D && ip.fragment.count == 2 && $(off 1480) && ip.len == 21")" 2
check_eq "pcap: no reply fragment larger than the MTU" \
  "$(tshark_count "$P" "ip.src == $D && ip.len > 1500")" 0
check_eq "pcap: requests from the kernel were fragmented too (3 fragments each)" \
  "$(tshark_count "$P" "icmp.type == 8 && ip.src == $NET_PEER_ADDR && ip.fragment.count == 3")" 5
check_pcap_clean "pcap" "$P"
net_finish
