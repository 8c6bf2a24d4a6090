#!/usr/bin/env bash
# ARP interop (RFC 826, RFC 5227): the Linux kernel in the peer namespace resolves toed's engine.
#  - after a ping, the kernel's neighbour table holds the device's MAC for 198.18.0.1;
#  - hand-made requests (scapy): exactly one reply for 198.18.0.1, with the right fields, unicast to
#    the requester; none for other addresses (198.18.0.77, the subnet broadcast, the peer's own);
#    a request from another sender is answered to that sender; an RFC 5227 probe is answered;
#    malformed requests get nothing and do no harm;
#  - the device announced its address with a gratuitous ARP when it started;
#  - a station claiming the device's address is counted as a conflict and the device defends it.
# Usage: bash tests/net/test_arp.sh BINDIR
source "$(dirname "$0")/lib.sh"
net_init "$1" 100
net_setup
start_toed

D=$NET_DEV_ADDR M=$NET_DEV_MAC
neigh=$(peer ip neigh show "$D" dev "$NET_PEER_IF")
net_log "peer: ip neigh show $D: $neigh"
check "kernel neighbour table: $D is at $M" grep -qi "lladdr $M" <<<"$neigh"
check "kernel neighbour entry is usable (REACHABLE/STALE/DELAY)" grep -qE 'REACHABLE|STALE|DELAY' <<<"$neigh"

# Forget the device and resolve it again through an ordinary ping.
peer ip neigh flush dev "$NET_PEER_IF"
check "ping after flushing the kernel's neighbour table" peer ping -c 2 -i 0.2 -W 2 -q "$D"
check "kernel learned $M again" grep -qi "lladdr $M" <<<"$(peer ip neigh show "$D" dev "$NET_PEER_IF")"

OTHER_MAC=02:00:5e:00:00:99
out=$(peer_py 30 arp_tool.py "$NET_PEER_IF" \
  own:req:$D other:req:198.18.0.77 bcast:req:198.18.0.255 peeraddr:req:$NET_PEER_ADDR \
  sender99:req:$D:198.18.0.99:$OTHER_MAC probe:req:$D:0.0.0.0 \
  short:short:$D badhlen:badhlen:$D 2>&1)
net_log "arp_tool output:"
sed 's/^/#   /' <<<"$out"
count() { awk -v n="$1" '$1 == n && $2 == "replies" { print $3 }' <<<"$out"; }
reply() { awk -v n="$1" '$1 == n && $2 == "reply" { $1 = ""; $2 = ""; print substr($0, 3) }' <<<"$out" | head -1; }
lc() { tr '[:upper:]' '[:lower:]'; }
PM=$(lc <<<"$NET_PEER_MAC")

check_eq "request for $D: replies" "$(count own)" 1
check_eq "reply: op, sender MAC/IP, target MAC/IP, Ethernet src/dst" "$(reply own | lc)" \
  "2 $M $D $PM $NET_PEER_ADDR $M $PM"
check_eq "request for 198.18.0.77 (not ours): replies" "$(count other)" 0
check_eq "request for the subnet broadcast address: replies" "$(count bcast)" 0
check_eq "request for the peer's own address: replies from the device" \
  "$(reply peeraddr | awk -v m="$M" 'tolower($2) == m' | wc -l)" 0
check_eq "request from another station (198.18.0.99): replies" "$(count sender99)" 1
check_eq "reply goes to that station" "$(reply sender99 | lc)" \
  "2 $M $D $OTHER_MAC 198.18.0.99 $M $OTHER_MAC"
check_eq "RFC 5227 probe (sender 0.0.0.0) for $D: replies" "$(count probe)" 1
check_eq "truncated request: replies" "$(count short)" 0
check_eq "request with hardware length 5: replies" "$(count badhlen)" 0
check "device still answers ping after the malformed requests" peer ping -c 1 -W 2 -q "$D"

# Someone else claims the device's address: RFC 5227 2.4 (b): the device defends it once with an
# announcement. The peer's kernel may take the bogus claim for a while; the defence corrects it.
out=$(peer_py 20 arp_tool.py "$NET_PEER_IF" conflict:reply:$D::$OTHER_MAC --wait 1 2>&1)
net_log "conflict: $out"

check_toed_exit
net_log "toed summary:"
sed 's/^/#   /' "$NET_TOED_LOG" | tail -60

P=$NET_PCAP
# The claim below is a deliberate duplicate address: don't let tshark flag it (or the defence).
net_tshark_prefs
NET_TSHARK_PREFS+=(-o arp.detect_duplicate_ips:FALSE)
# The independent counts of the capture in one tshark pass (each start is a second of CPU, 10 to
# 20 s of wall time at load 19: five of them ran this test into its watchdog).
F_GARP="arp.opcode == 1 && eth.src == $M && eth.dst == ff:ff:ff:ff:ff:ff && arp.src.proto_ipv4 == $D && arp.dst.proto_ipv4 == $D"
F_CLAIM="arp.opcode == 2 && eth.src == $M && arp.src.proto_ipv4 != $D"
F_BCAST="arp.opcode == 2 && eth.src == $M && eth.dst == ff:ff:ff:ff:ff:ff"
# The two deliberately malformed requests are the only frames allowed to be flagged.
F_OK_BAD="!(arp.hw.size == 5) && !(frame.len < 42 && eth.src == $NET_PEER_MAC)"
tshark_prefetch "$P" "$F_GARP" "$F_CLAIM" "$F_BCAST" "$(pcap_clean_filter "$F_OK_BAD")"
engine_only "gratuitous ARP at start-up" &&
  check_ge "pcap: gratuitous ARP announcing $D at start-up" "$(tshark_count "$P" "$F_GARP")" 1
check_eq "pcap: the device's ARP replies all claim $D only" "$(tshark_count "$P" "$F_CLAIM")" 0
check_eq "pcap: no ARP replies broadcast by the device" "$(tshark_count "$P" "$F_BCAST")" 0
# The conflict frame is the only ARP reply in the capture from $OTHER_MAC claiming $D; what follows it
# from the device must include an announcement (a gratuitous request or reply for $D).
t_conflict=$(tshark_fields "$P" "arp.opcode == 2 && eth.src == $OTHER_MAC && arp.src.proto_ipv4 == $D" frame.number | head -1)
if ! engine_only "defence against a conflicting claim"; then
  :
elif [ -n "$t_conflict" ]; then
  check_ge "pcap: device defends $D after the conflicting claim" \
    "$(tshark_count "$P" "frame.number > $t_conflict && eth.src == $M && arp.src.proto_ipv4 == $D && arp.dst.proto_ipv4 == $D")" 1
else
  net_fail "pcap: conflicting claim not captured"
fi
check_pcap_clean "pcap" "$P" "$F_OK_BAD"

if engine_only "toed counters"; then
  check_ge "counter arp.tx_replies" "$(toed_counter arp.tx_replies)" 4
  check_ge "counter arp.rx_drop_not_for_us" "$(toed_counter arp.rx_drop_not_for_us)" 3
  check_ge "counter arp.rx_drop_malformed" "$(toed_counter arp.rx_drop_malformed)" 2
  check_ge "counter arp.rx_conflict" "$(toed_counter arp.rx_conflict)" 1
  check_ge "counter arp.tx_gratuitous (start-up + defence)" "$(toed_counter arp.tx_gratuitous)" 2
fi
net_finish
