#!/usr/bin/env bash
# IPv6 through a Linux router: router advertisements, SLAAC, path MTU (RFC 4861 6.3.4, RFC 4862
# 5.5.3, RFC 8201) against the kernel.
#
#   netns dev                         netns mid (a Linux IPv6 router)                 netns peer
#   toed --wire wire0 <------------> ma 2001:db8::fe/64    mb 2001:db8:1::fe/64 <-----> peer0 2001:db8:1::2/64
#   --addr6 2001:db8::2/64            + fe80:: link-local   MTU 1280 on this link        MTU 1280
#
# - The router (its kernel has no radvd here) sends one RA built with scapy from its link-local
#   address on ma: router lifetime 1800 s, its link-layer address, prefix 2001:db8:5::/64 with A
#   and L. The device forms 2001:db8:5:0:74:6fff:fe65:1 (modified EUI-64 of its MAC), runs DAD on it
#   and logs it ready; the far peer pings that address through the router (the device's replies
#   go to its default router from the RA);
# - the router's neighbour entry for the device (learned by its NS, answered by the device's
#   solicited NA) is REACHABLE right after;
# - path MTU: the peer's link is 1280, so the peer's kernel fragments its 1448-byte requests
#   (the device reassembles them) and the device's 1448-byte replies meet the router's 1280-byte
#   hop: the router sends Packet Too Big (MTU 1280), the device enters it in its path MTU cache
#   and sends the next replies in fragments of at most 1280 bytes, which arrive;
# - tshark finds nothing malformed in the device's capture.
# Run time: about 15 s.
# Usage: bash tests/net/test_ipv6_router.sh BINDIR
set -u
source "$(dirname "$0")/lib.sh"

NET_REQUIRED_TOOLS="ip ping tshark $NET_PY"
net_init "${1:-}" 90

DEV6=2001:db8::2
GW6=2001:db8::fe
GW6_PEER=2001:db8:1::fe
PEER6=2001:db8:1::2
SLAAC_PREFIX=2001:db8:5::
# 2001:db8:5::/64 + modified EUI-64 of NET_DEV_MAC (02:74:6f:65:00:01).
SLAAC6=2001:db8:5:0:74:6fff:fe65:1 # as inet_ntop and ip print it (RFC 5952 4.2.2)
NET_PEER_ADDR=198.19.0.2
GW_DEV=198.18.0.254
GW_PEER=198.19.0.254

# ---- topology --------------------------------------------------------------------------------------
net_setup_mid
ip -n "$NET_MID_NS" addr add "$GW_DEV/24" dev ma || net_die "router IPv4 on ma"
ip -n "$NET_MID_NS" addr add "$GW_PEER/24" dev mb || net_die "router IPv4 on mb"
net_sysctl "$NET_MID_NS" net.ipv4.ip_forward 1
ip -n "$NET_PEER_NS" route add 198.18.0.0/24 via "$GW_PEER" || net_die "peer IPv4 route"
# IPv6 on the router (both ends) and the peer only; no DAD delays, no RAs of their own.
for ns_if in "$NET_MID_NS:ma" "$NET_MID_NS:mb" "$NET_PEER_NS:$NET_PEER_IF"; do
  ns=${ns_if%%:*} ifc=${ns_if#*:}
  for k in accept_dad=0 router_solicitations=0 accept_ra=0 disable_ipv6=0; do
    net_sysctl "$ns" "net.ipv6.conf.$ifc.${k%=*}" "${k#*=}"
  done
  net_sysctl "$ns" net.ipv6.conf.all.disable_ipv6 0
done
net_sysctl "$NET_MID_NS" net.ipv6.conf.all.forwarding 1
# The narrow hop: the peer's link carries 1280 bytes (the IPv6 minimum).
ip -n "$NET_MID_NS" link set mb mtu 1280 || net_die "mb mtu"
ip -n "$NET_PEER_NS" link set "$NET_PEER_IF" mtu 1280 || net_die "peer0 mtu"
ip -n "$NET_MID_NS" -6 addr add "$GW6/64" dev ma nodad || net_die "router IPv6 on ma"
ip -n "$NET_MID_NS" -6 addr add "$GW6_PEER/64" dev mb nodad || net_die "router IPv6 on mb"
# The SLAAC prefix is on the device's link too (the router resolves the address with NS).
ip -n "$NET_MID_NS" -6 route add "$SLAAC_PREFIX/64" dev ma || net_die "router route to the SLAAC prefix"
ip -n "$NET_PEER_NS" -6 addr add "$PEER6/64" dev "$NET_PEER_IF" nodad || net_die "peer IPv6"
ip -n "$NET_PEER_NS" -6 route add 2001:db8::/64 via "$GW6_PEER" || net_die "peer route 1"
ip -n "$NET_PEER_NS" -6 route add "$SLAAC_PREFIX/64" via "$GW6_PEER" || net_die "peer route 2"

start_toed --gateway "$GW_DEV" --addr6 "$DEV6/64"

# The router's link-local address and MAC on ma (the kernel made it once IPv6 came up).
GW_LL=
for _ in $(seq 30); do
  GW_LL=$(ip -n "$NET_MID_NS" -6 -br addr show dev ma scope link | awk '{print $3}' | cut -d/ -f1)
  [ -n "$GW_LL" ] && break
  sleep 0.1
done
[ -n "$GW_LL" ] || net_die "no link-local address on the router's ma"
GW_MAC=$(ip -n "$NET_MID_NS" -br link show ma | awk '{print $3}')
net_log "router: $GW_LL ($GW_MAC)"

# One RA from the router (RFC 4861 4.2), hand-built.
ip netns exec "$NET_MID_NS" "$NET_PY" - "$GW_MAC" "$GW_LL" "$SLAAC_PREFIX" <<'EOF' ||
import sys
from scapy.all import (Ether, IPv6, ICMPv6ND_RA, ICMPv6NDOptSrcLLAddr, ICMPv6NDOptPrefixInfo,
                       conf, sendp)
conf.verb = 0
mac, ll, prefix = sys.argv[1:4]
ra = (Ether(src=mac, dst="33:33:00:00:00:01") / IPv6(src=ll, dst="ff02::1", hlim=255) /
      ICMPv6ND_RA(chlim=64, routerlifetime=1800) / ICMPv6NDOptSrcLLAddr(lladdr=mac) /
      ICMPv6NDOptPrefixInfo(prefixlen=64, L=1, A=1, validlifetime=3600, preferredlifetime=1800,
                            prefix=prefix))
sendp(ra, iface="ma")
EOF
  net_die "could not send the RA"

ping_received() { sed -n 's/.* \([0-9]\+\) received.*/\1/p' | head -1; }

# DAD of the SLAAC address takes about a second: poll from the far peer, at most 8 s.
check "the far peer reaches the SLAAC address $SLAAC6 through the router" net_wait_ping6 "$SLAAC6" 16
neigh=$(ip -n "$NET_MID_NS" -6 neigh show dev ma)
net_log "router's neighbours on ma: $(tr '\n' ';' <<<"$neigh")"
check "router's neighbour entry for $SLAAC6: the device's MAC, REACHABLE" \
  grep -qE "^$SLAAC6 lladdr $NET_DEV_MAC (router )?REACHABLE" <<<"$neigh"
check "toed logs the SLAAC address ready after DAD" grep -q "IPv6 address $SLAAC6 ready" "$NET_TOED_LOG"

out=$(peer ping -6 -c 3 -i 0.2 -W 2 "$SLAAC6" 2>&1)
check_eq "ping -6 $SLAAC6 from the far peer: replies" "$(ping_received <<<"$out")" 3

# Path MTU: the first big reply may die at the narrow hop (that is what teaches the device).
out=$(peer ping -6 -c 5 -i 0.3 -W 2 -s 1400 "$DEV6" 2>&1)
got=$(ping_received <<<"$out")
check_ge "ping -6 -s 1400 through the 1280-byte hop: replies" "${got:-0}" 4
check "ping -6 -s 1400: no duplicates or damaged replies" \
  bash -c '! grep -qE "DUP!|wrong data|corrupted" <<<"$1"' _ "$out"

check_toed_exit
if engine_only "engine counters"; then
  check_ge "nd.rx_ra" "$(toed_counter nd.rx_ra)" 1
  check_eq "nd.slaac_added" "$(toed_counter nd.slaac_added)" 1
  check_eq "nd.routers_inuse" "$(toed_counter nd.routers_inuse)" 1
  check_ge "icmp6.rx_ptb (the router's Packet Too Big)" "$(toed_counter icmp6.rx_ptb)" 1
  check_ge "ip6.reass_ok (the peer's fragmented requests)" "$(toed_counter ip6.reass_ok)" 4
  check_ge "ip6.tx_frag_datagrams (replies cut to 1280)" "$(toed_counter ip6.tx_frag_datagrams)" 4
fi

P=$NET_PCAP M=$NET_DEV_MAC
tshark_prefetch "$P" "icmpv6.type == 2 && icmpv6.mtu == 1280 && ipv6.src == $GW6" \
  "eth.src == $M && ipv6.dst == $PEER6 && ipv6.fraghdr && frame.len <= 1294" \
  "eth.src == $M && ipv6.dst == $PEER6 && frame.len > 1294" \
  "eth.src == $M && ipv6.src == $SLAAC6 && eth.dst == $GW_MAC"
check_ge "pcap: the router's Packet Too Big (MTU 1280)" \
  "$(tshark_count "$P" "icmpv6.type == 2 && icmpv6.mtu == 1280 && ipv6.src == $GW6")" 1
check_ge "pcap: the device's fragments to the peer within 1280 bytes" \
  "$(tshark_count "$P" "eth.src == $M && ipv6.dst == $PEER6 && ipv6.fraghdr && frame.len <= 1294")" 8
big=$(tshark_count "$P" "eth.src == $M && ipv6.dst == $PEER6 && frame.len > 1294")
check "pcap: device frames to the peer over 1280 bytes: at most the one before the PTB ($big)" \
  test "$big" -le 1
check_ge "pcap: replies from the SLAAC address sent to the router's MAC" \
  "$(tshark_count "$P" "eth.src == $M && ipv6.src == $SLAAC6 && eth.dst == $GW_MAC")" 3
check_pcap_clean "pcap" "$P"
net_finish
