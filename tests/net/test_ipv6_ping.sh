#!/usr/bin/env bash
# IPv6 on the link (docs/ipv6.md, first step): toed with --addr6 2001:db8::2/64, the Linux kernel in
# the peer namespace with 2001:db8::1/64.
#  - ping -6 to the global address and to the link-local one (from the MAC, modified EUI-64) are
#    answered; the kernel's neighbour cache holds the device's MAC for both (it resolved them with
#    NS, the device answered with NA);
#  - an address that is not the device's stays unresolved (no NA for it); a TCP connect over IPv6
#    to a port nothing listens on (this toed runs no services) is refused at once (RST);
#  - fragments both ways (RFC 8200 4.5): ping -6 -s 3000, the kernel fragments the request to the
#    1500-byte link, the device reassembles it and sends its 3048-byte reply in fragments, which
#    the kernel reassembles (ping checks the data) and tshark reassembles without complaint;
#  - the device's pcap: every IPv6 frame it sent is from one of its two addresses (or :: for its DAD
#    probes), to the peer or a link-scope group (nothing leaves the link), hop limit 255 on ND, MLDv2
#    reports joining its solicited-node group, and tshark finds nothing wrong;
#  - DAD: toed given the peer's own address finds it duplicate (the kernel defends it) and never
#    sends from it.
# Usage: bash tests/net/test_ipv6_ping.sh BINDIR
source "$(dirname "$0")/lib.sh"
net_init "$1" 120
net_setup

DEV6=2001:db8::2
PEER6=2001:db8::1
# fe80::/64 + modified EUI-64 of NET_DEV_MAC (02:74:6f:65:00:01): the U/L bit flipped, ff:fe inside.
DEV_LL=fe80::74:6fff:fe65:1

# IPv6 on the peer's end only (net_setup turned it off everywhere): no DAD delay, no router
# solicitations, so the link carries the test's traffic, the kernel's ND and its MLD reports.
for k in accept_dad=0 router_solicitations=0 accept_ra=0 disable_ipv6=0; do
  net_sysctl "$NET_PEER_NS" "net.ipv6.conf.$NET_PEER_IF.${k%=*}" "${k#*=}"
done
net_sysctl "$NET_PEER_NS" net.ipv6.conf.all.disable_ipv6 0
ip -n "$NET_PEER_NS" -6 addr add "$PEER6/64" dev "$NET_PEER_IF" nodad || net_die "peer IPv6 address"

start_toed --addr6 "$DEV6/64"

ping_received() { sed -n 's/.* \([0-9]\+\) received.*/\1/p' | head -1; }

# The device's addresses are tentative until DAD passes (RFC 4862: a random delay of up to 1 s,
# then one probe and 1 s of waiting): poll until the global address answers, at most 6 s.
check "the device answers on $DEV6 once DAD has passed" net_wait_ping6 "$DEV6"

out=$(peer ping -6 -c 5 -i 0.2 -W 2 "$DEV6" 2>&1)
check_eq "ping -6 $DEV6: replies" "$(ping_received <<<"$out")" 5
check "ping -6 $DEV6: no duplicates or damaged replies" \
  bash -c '! grep -qE "DUP!|wrong data|corrupted" <<<"$1"' _ "$out"

out=$(peer ping -6 -c 5 -i 0.2 -W 2 "$DEV_LL%$NET_PEER_IF" 2>&1)
check_eq "ping -6 $DEV_LL (link-local): replies" "$(ping_received <<<"$out")" 5

# A larger one that still fits the MTU (1400 + 8 + 40 bytes).
out=$(peer ping -6 -c 2 -i 0.2 -W 2 -s 1400 "$DEV6" 2>&1)
check_eq "ping -6 -s 1400: replies" "$(ping_received <<<"$out")" 2

# The kernel resolved both addresses through the device's NAs.
neigh=$(peer ip -6 neigh show dev "$NET_PEER_IF")
net_log "peer's neighbours: $(tr '\n' ';' <<<"$neigh")"
check "ip -6 neigh: $DEV6 at the device's MAC" \
  grep -qE "^$DEV6 lladdr $NET_DEV_MAC (REACHABLE|STALE|DELAY|PROBE)" <<<"$neigh"
check "ip -6 neigh: $DEV_LL at the device's MAC" \
  grep -qE "^$DEV_LL lladdr $NET_DEV_MAC (REACHABLE|STALE|DELAY|PROBE)" <<<"$neigh"

# Not the device's address: nobody answers the NS, the kernel gives up.
out=$(peer ping -6 -c 1 -W 2 2001:db8::9 2>&1)
check_eq "ping -6 2001:db8::9 (not the device's): no reply" "$(ping_received <<<"$out")" 0
check "ip -6 neigh: 2001:db8::9 unresolved" \
  bash -c '! ip netns exec "$1" ip -6 neigh show 2001:db8::9 dev "$2" | grep -q lladdr' _ \
  "$NET_PEER_NS" "$NET_PEER_IF"

# Nothing listens (no services here): the connect is refused at once by a RST, not left to time out.
start=$SECONDS
if peer timeout 5 bash -c "exec 3<>/dev/tcp/$DEV6/7" 2>"$NET_TMP/tcp6.err"; then
  net_fail "TCP connect to [$DEV6]:7 succeeded (this toed runs no services)"
else
  check "TCP connect over IPv6 refused (RST)" grep -q "refused" "$NET_TMP/tcp6.err"
  check "TCP connect over IPv6 refused within 2 s" test $((SECONDS - start)) -le 2
fi

# Fragments both ways: the 3048-byte request and reply each travel in three fragments.
out=$(peer ping -6 -c 3 -i 0.2 -W 2 -s 3000 "$DEV6" 2>&1)
check_eq "ping -6 -s 3000 (fragments both ways): replies" "$(ping_received <<<"$out")" 3
check "ping -6 -s 3000: no duplicates or damaged replies" \
  bash -c '! grep -qE "DUP!|wrong data|corrupted" <<<"$1"' _ "$out"

check_toed_exit
check "toed logs its IPv6 addresses ready after DAD" grep -q "IPv6 address $DEV6 ready" "$NET_TOED_LOG"
net_log "toed summary:"
sed 's/^/#   /' "$NET_TOED_LOG" | grep -E 'ip6|icmp6|nd\.' | head -40

if engine_only "engine counters"; then
  check_ge "icmp6.tx_echo_replies" "$(toed_counter icmp6.tx_echo_replies)" 15
  check_ge "nd.tx_na (answers to the kernel's NS)" "$(toed_counter nd.tx_na)" 2
  check_eq "ip6.reass_ok (the 3000-byte pings)" "$(toed_counter ip6.reass_ok)" 3
  check_eq "ip6.tx_frag_datagrams (their replies)" "$(toed_counter ip6.tx_frag_datagrams)" 3
  check_eq "ip6.tx_fragments (three each)" "$(toed_counter ip6.tx_fragments)" 9
  check_eq "ip6.reass_inuse (nothing left half done)" "$(toed_counter ip6.reass_inuse)" 0
  check_ge "tcp.out_rsts (the RST for the TCP SYN over IPv6)" "$(toed_counter tcp.out_rsts)" 1
fi

P=$NET_PCAP M=$NET_DEV_MAC
mine="eth.src == $M && ipv6"
# One pass of tshark over the device's IPv6 frames (first occurrence of each field: an ICMPv6 error
# quotes another IPv6 header), then the checks on its lines: tshark is slow on a loaded machine.
F=$NET_TMP/dev6.tsv
net_tshark_prefs
tshark -n -r "$P" "${NET_TSHARK_PREFS[@]}" -Y "$mine" -T fields -E occurrence=f -e ipv6.src \
  -e ipv6.dst -e ipv6.hlim -e icmpv6.type -e icmpv6.nd.na.flag -e icmpv6.opt.type \
  -e ipv6.fraghdr.ident -e ipv6.fraghdr.more >"$F" \
  2>"$NET_TMP/tshark.err" || net_fail "tshark could not read $P"
# count [-v VAR=VALUE...] PROGRAM: how many lines PROGRAM counts in n.
count() {
  local prog=${!#}
  awk -F'\t' "${@:1:$#-1}" "$prog END { print n + 0 }" "$F"
}
check_ge "pcap: echo replies from the device" "$(count '$4 == 129 { n++ }')" 15
# The fragmented replies: three fragments per identification, M clear on the last of each.
check_eq "pcap: fragments from the device" "$(count '$7 != "" { n++ }')" 9
check_eq "pcap: distinct fragment identifications" \
  "$(count '$7 != "" && !seen[$7]++ { n++ }')" 3
check_eq "pcap: last fragments (M clear)" "$(count '$7 != "" && ($8 == "0" || $8 == "False") { n++ }')" 3
check_ge "pcap: neighbor advertisements from the device (solicited, override)" \
  "$(count '$4 == 136 && tolower($5) == "0x60000000" { n++ }')" 2
check_eq "pcap: device frames from another source address" \
  "$(count -v a="$DEV6" -v b="$DEV_LL" '$1 != a && $1 != b && $1 != "::" { n++ }')" 0
check_eq "pcap: device frames leaving the link (not to the peer, fe80::/10 or ff02::/16)" \
  "$(count -v p="$PEER6" '$2 != p && $2 !~ /^fe80:/ && $2 !~ /^ff02:/ { n++ }')" 0
check_eq "pcap: device ND without hop limit 255" \
  "$(count '$4 >= 133 && $4 <= 137 && $3 != 255 { n++ }')" 0
check_eq "pcap: DAD probes from :: for both addresses, with a nonce" \
  "$(count '$4 == 135 && $1 == "::" && $6 == 14 { n++ }')" 2
check_ge "pcap: MLDv2 reports joining the solicited-node group (to ff02::16, hop limit 1)" \
  "$(count '$4 == 143 && $2 == "ff02::16" && $3 == 1 { n++ }')" 2
# The device's RST to the TCP SYN over IPv6 is expected (tshark flags every RST as a warning).
check_pcap_clean "pcap" "$P" "!(ipv6 && tcp.flags.reset == 1 && tcp.srcport == 7)"

# DAD against the kernel: a device given the peer's own address finds it taken (the kernel answers
# the probe) and never uses it; its link-local address still passes.
start_toed --addr6 "$PEER6/64"
sleep 3
check_toed_exit
if engine_only "DAD counters"; then
  check_eq "DAD: the peer's address found duplicate" "$(toed_counter nd.dad_duplicates)" 1
  check_eq "DAD: the link-local address passed" "$(toed_counter nd.dad_completed)" 1
  check "DAD: toed warns, naming the address" \
    grep -q "warning: IPv6 address $PEER6 is already in use on $NET_DEV_IF" "$NET_TOED_LOG"
  check "DAD: toed says the link-local address is ready" \
    grep -q "IPv6 address $DEV_LL ready" "$NET_TOED_LOG"
  check_eq "DAD: no echo reply from the duplicate address" \
    "$(tshark_count "$NET_PCAP" "eth.src == $M && ipv6.src == $PEER6")" 0
fi
net_finish
