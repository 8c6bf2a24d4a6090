#!/usr/bin/env bash
# The device's packet capture (toed --pcap) of a whole run, checked by tshark:
#   ping, ping -s 3000 (fragments both ways), UDP echo of 0..1472 and 4000-byte (fragmented)
#   datagrams, a closed port (ICMP port unreachable).
#  - the file is a classic pcap of Ethernet frames with sane timestamps (within the run, in order);
#  - with IP/UDP/TCP checksum validation on (ICMP's is always checked), the filter
#    `_ws.malformed || _ws.expert.severity >= "warning"` finds nothing: every frame the device sent
#    is well formed, and so is every frame it recorded from the peer (whose kernel leaves partial
#    checksums on veth frames that toed completes before the engine and the pcap see them);
#  - the expected number of frames of each kind, and only those;
#  - a capture on the peer's side (tcpdump in the peer namespace) holds the same frames from the
#    device, also clean.
# Usage: bash tests/net/test_pcap.sh BINDIR
source "$(dirname "$0")/lib.sh"
net_init "$1" 110
net_setup
PEER_PCAP=$NET_TMP/peer.pcap
t_start=$(date +%s)
peer_capture_start "$PEER_PCAP" || net_log "no peer-side capture"
start_toed --service echo:7

kv() { awk -v k="$1" '$1 == k { $1 = ""; print substr($0, 2); exit }'; }
received() { sed -n 's/.* \([0-9]\+\) received.*/\1/p' | head -1; }

# Distinct sizes tell this run's pings from the readiness pings (56 bytes of data, 84-byte IP).
check_eq "ping -c 10 -s 100" "$(peer ping -c 10 -s 100 -i 0.05 -W 2 "$NET_DEV_ADDR" | received)" 10
check_eq "ping -c 3 -s 3000" "$(peer ping -c 3 -s 3000 -i 0.1 -W 2 "$NET_DEV_ADDR" | received)" 3
out=$(peer_py 60 udp_tool.py echo --port 7 --count 50 --max 1472 --big 5 --big-size 4000 --timeout 1)
net_log "echo: $(tr '\n' ' ' <<<"$out")"
check_eq "UDP echo: 50 datagrams of 0..1472 bytes and 5 of 4000 bytes" "$(kv ok <<<"$out")" 55
RETRIES=$(kv retries <<<"$out")
out=$(peer_py 30 udp_tool.py refused --port 5000 --count 3 --timeout 1)
check_eq "closed port: ECONNREFUSED" "$(kv refused <<<"$out")" 3

check_toed_exit
peer_capture_stop
t_end=$(date +%s)

P=$NET_PCAP D=$NET_DEV_ADDR PA=$NET_PEER_ADDR M=$NET_DEV_MAC PM=$NET_PEER_MAC
check "pcap file exists and is not empty" test -s "$P"
info=$(capinfos -t -E -T "$P" 2>/dev/null | tail -1)
net_log "capinfos: $info"
check "pcap: classic pcap format" grep -qiE 'pcap[[:space:]]' <<<"$info"
check "pcap: Ethernet link type" grep -qi 'ether' <<<"$info"
# Every count below in one pass of tshark per file (tshark_prefetch): each start costs a second
# of CPU, and twenty of them took this test past its time limit on a loaded machine.
F_RDY="icmp.type == 0 && ip.src == $D && ip.len == 84"
F_P100="icmp.type == 0 && ip.src == $D && ip.len == 128"
F_P3000="icmp.type == 0 && ip.src == $D && ip.len == 68 && ip.fragment.count == 3"
F_ICMP="eth.src == $M && ip.proto == 1"
F_UNREACH="icmp.type == 3 && icmp.code == 3 && ip.src == $D && udp.dstport >= 5000 && udp.dstport < 5003"
F_UDP="eth.src == $M && ip.proto == 17 && !icmp"
F_U4000="ip.src == $D && udp.srcport == 7 && udp.length == 4008 && ip.fragment.count == 3"
F_NOTIP="eth.src == $M && !ip && !arp"
F_ODDIP="eth.src == $M && ip && (ip.hdr_len != 20 || ip.ttl != 64 || ip.dst != $PA || eth.dst != $PM)"
F_ARP="eth.src == $M && arp"
F_OTHER="!(eth.src == $M) && !(eth.src == $PM)"
F_PEER="eth.src == $PM"
F_DEV="eth.src == $M"
tshark_prefetch "$P" "($NET_BAD_FILTER)" "$F_RDY" "$F_P100" "$F_P3000" "$F_ICMP" "$F_UNREACH" \
  "$F_UDP" "$F_U4000" "$F_NOTIP" "$F_ODDIP" "$F_ARP" "$F_OTHER" "$F_PEER" "$F_DEV"
times=$(tshark_fields "$P" "" frame.time_epoch)
first=$(head -1 <<<"$times" | cut -d. -f1)
check_range "pcap: first timestamp within the run (epoch seconds)" "${first:-0}" $((t_start - 2)) $((t_end + 2))
check "pcap: timestamps never go backwards" awk 'NR > 1 && $1 < prev { exit 1 } { prev = $1 }' <<<"$times"

check_pcap_clean "device pcap" "$P"

# Frame counts. Readiness pings (56 bytes) vary in number; everything else is exact (plus any
# retries of the UDP client, which would each add one echo).
R=$(tshark_count "$P" "$F_RDY")
check_ge "readiness echo replies" "$R" 1
check_eq "echo replies of 100 bytes" "$(tshark_count "$P" "$F_P100")" 10
check_eq "echo replies of 3000 bytes, each reassembled from 3 fragments" \
  "$(tshark_count "$P" "$F_P3000")" 3
check_eq "ICMP frames from the device (replies and fragments, unreachables)" \
  "$(tshark_count "$P" "$F_ICMP")" $((R + 10 + 3 * 3 + 3))
check_eq "port unreachables for the closed port" \
  "$(tshark_count "$P" "$F_UNREACH")" 3
check_eq "UDP frames from the device (echoes: 50 + 5 x 3 fragments)" \
  "$(tshark_count "$P" "$F_UDP")" $((50 + 5 * 3 + RETRIES))
check_eq "UDP echoes of 4000 bytes in 3 fragments" \
  "$(tshark_count "$P" "$F_U4000")" 5
# One IP ID per fragmented datagram: 3 ping replies and 5 UDP echoes, each with its own ID.
ids=$(tshark_fields "$P" "eth.src == $M && (ip.flags.mf == 1 || ip.frag_offset > 0)" ip.id | sort -u | wc -l)
check_eq "distinct IP IDs among the device's fragments" "$ids" 8
check_eq "frames from the device that are neither IPv4 nor ARP" \
  "$(tshark_count "$P" "$F_NOTIP")" 0
check_eq "IPv4 from the device with options, TTL other than 64, or not to the peer" \
  "$(tshark_count "$P" "$F_ODDIP")" 0
check_ge "ARP frames from the device (replies)" "$(tshark_count "$P" "$F_ARP")" 1
check_eq "frames not from the device nor from the peer" \
  "$(tshark_count "$P" "$F_OTHER")" 0
check_ge "frames from the peer: requests in (pings, fragments, datagrams, ARP)" \
  "$(tshark_count "$P" "$F_PEER")" $((R + 10 + 3 * 3 + 50 + 5 * 3 + 3))

if [ -s "$PEER_PCAP" ]; then
  # The comparison below needs a peer-side capture that lost nothing: tcpdump counts its own
  # losses, so a capture starved on a loaded machine is named as such, not blamed on the device.
  check_eq "peer-side capture: frames tcpdump itself dropped" "$(peer_capture_drops)" 0
  from_dev=$(tshark_count "$P" "$F_DEV")
  tshark_prefetch "$PEER_PCAP" "$F_DEV" "($NET_BAD_FILTER) && ($F_DEV)"
  check_eq "peer-side capture: same number of frames from the device" \
    "$(tshark_count "$PEER_PCAP" "$F_DEV")" "$from_dev"
  check_pcap_clean "peer-side capture, frames from the device" "$PEER_PCAP" "eth.src == $M"
else
  net_fail "peer-side capture missing"
fi
net_finish
