#!/usr/bin/env bash
# UDP and TCP over IPv6 against the Linux kernel (issue 11 step 2): toed with --addr6
# 2001:db8::2/64 and its echo (7) and discard (9) services, the kernel in the peer namespace with
# 2001:db8::1/64 (no default route: nothing leaves the link).
#  - UDP echo over IPv6: 200 datagrams of 1..1400 random bytes, every answer equal to its request,
#    SHA-256 of all sent equal to all received; the same service answers IPv4 clients too (its
#    socket is a dual-stack one on [::]);
#  - UDP to a closed port: ICMPv6 port unreachable (the kernel's connected socket sees
#    ECONNREFUSED); a datagram with a zero checksum is dropped and counted (RFC 8200 8.1);
#  - TCP over IPv6 to a closed port: refused at once by the device's RST (test_ipv6_tcp.sh carries
#    the connections);
#  - tshark on the device's capture: no malformed frame, good checksums.
# Usage: bash tests/net/test_ipv6_transport.sh BINDIR
source "$(dirname "$0")/lib.sh"
net_init "$1" 120
net_setup

DEV6=2001:db8::2
PEER6=2001:db8::1
PY=/usr/bin/python3

for k in accept_dad=0 router_solicitations=0 accept_ra=0 disable_ipv6=0; do
  net_sysctl "$NET_PEER_NS" "net.ipv6.conf.$NET_PEER_IF.${k%=*}" "${k#*=}"
done
net_sysctl "$NET_PEER_NS" net.ipv6.conf.all.disable_ipv6 0
ip -n "$NET_PEER_NS" -6 addr add "$PEER6/64" dev "$NET_PEER_IF" nodad || net_die "peer IPv6 address"

start_toed --addr6 "$DEV6/64" --service echo:7 --service discard:9

# DAD first (up to ~2 s): poll until the global address answers.
check "the device answers on $DEV6 once DAD has passed" net_wait_ping6 "$DEV6"

# udp_echo FAMILY ADDR: 200 datagrams, one at a time (UDP may lose one on a loaded machine: it is
# sent again, at most 3 times); prints "sent_sha recv_sha mismatches lost".
udp_echo() {
  peer "$PY" - "$1" "$2" <<'PYEOF'
import hashlib, os, socket, sys
fam = socket.AF_INET6 if sys.argv[1] == "6" else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
s.settimeout(1.0)
s.connect((sys.argv[2], 7))
hs, hr, bad, lost = hashlib.sha256(), hashlib.sha256(), 0, 0
for i in range(200):
    msg = os.urandom(1 + (i * 7919) % 1400)
    hs.update(msg)
    for attempt in range(3):
        s.send(msg)
        try:
            r = s.recv(65535)
            break
        except socket.timeout:
            r = None
    if r is None:
        lost += 1
        continue
    if r != msg:
        bad += 1
    hr.update(r)
print(hs.hexdigest(), hr.hexdigest(), bad, lost)
PYEOF
}

read -r sent got bad lost < <(udp_echo 6 "$DEV6")
net_log "UDP echo over IPv6: sent $sent, received $got, $bad wrong, $lost lost"
check_eq "UDP echo over IPv6: every answer equals its request" "$bad" 0
check_eq "UDP echo over IPv6: no datagram lost" "$lost" 0
check_eq "UDP echo over IPv6: SHA-256 of the received stream equals the sent one" "$got" "$sent"

read -r sent got bad lost < <(udp_echo 4 "$NET_DEV_ADDR")
check_eq "UDP echo over IPv4 to the dual-stack service: SHA-256 equal" "$got" "$sent"

# A closed port: the kernel's connected UDP socket learns of the ICMPv6 port unreachable.
res=$(peer "$PY" - "$DEV6" <<'PYEOF'
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.settimeout(2.0)
s.connect((sys.argv[1], 4444))
s.send(b"anyone?")
try:
    s.recv(100)
    print("answered")
except ConnectionRefusedError:
    print("refused")
except socket.timeout:
    print("timeout")
PYEOF
)
check_eq "UDP to a closed IPv6 port: ICMPv6 port unreachable (ECONNREFUSED)" "$res" refused

# A datagram with a zero checksum (legal over IPv4 only): dropped, counted, not answered. The
# kernel always sums UDP over IPv6, so the packet is written whole to a raw socket.
res=$(peer "$PY" - "$PEER6" "$DEV6" <<'PYEOF'
import socket, struct, sys
raw = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_UDP)
u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
u.bind((sys.argv[1], 40007))
u.settimeout(1.0)
payload = b"zero checksum"
raw.sendto(struct.pack("!HHHH", 40007, 7, 8 + len(payload), 0) + payload, (sys.argv[2], 0))
try:
    u.recv(100)
    print("answered")
except socket.timeout:
    print("dropped")
PYEOF
)
check_eq "UDP over IPv6 with a zero checksum: not answered" "$res" dropped

# TCP over IPv6 to a closed port: refused at once (the device's RST), not left to time out.
start=$SECONDS
if peer timeout 5 bash -c "exec 3<>/dev/tcp/$DEV6/4445" 2>"$NET_TMP/tcp6.err"; then
  net_fail "TCP connect to [$DEV6]:4445 succeeded (nothing listens there)"
else
  check "TCP connect over IPv6 refused (RST)" grep -q "refused" "$NET_TMP/tcp6.err"
  check "TCP connect over IPv6 refused within 2 s" test $((SECONDS - start)) -le 2
fi

check_toed_exit
if engine_only "engine counters"; then
  check_ge "udp.rx_datagrams6" "$(toed_counter udp.rx_datagrams6)" 200
  check_eq "udp.rx_drop_zero_csum6 (the zero-checksum datagram)" \
    "$(toed_counter udp.rx_drop_zero_csum6)" 1
  check_ge "icmp6.tx_dest_unreach (the closed UDP port)" "$(toed_counter icmp6.tx_dest_unreach)" 1
  check_ge "tcp.out_rsts (the SYN over IPv6)" "$(toed_counter tcp.out_rsts)" 1
fi

P=$NET_PCAP M=$NET_DEV_MAC
check_ge "pcap: UDP over IPv6 from the device (echo answers)" \
  "$(tshark_count "$P" "eth.src == $M && ipv6.src == $DEV6 && udp.srcport == 7")" 200
check_ge "pcap: ICMPv6 port unreachable from the device" \
  "$(tshark_count "$P" "eth.src == $M && icmpv6.type == 1 && icmpv6.code == 4")" 1
check_ge "pcap: TCP RST over IPv6 from the device" \
  "$(tshark_count "$P" "eth.src == $M && ipv6 && tcp.flags.reset == 1")" 1
check_eq "pcap: device frames over IPv6 with a bad UDP/TCP checksum" \
  "$(tshark_count "$P" "eth.src == $M && ipv6 && (udp.checksum.status == \"Bad\" || tcp.checksum.status == \"Bad\")")" 0
# The peer's zero-checksum datagram is bad on purpose: the device's frames are judged, all but the
# expected RST (tshark flags every RST as a warning; its checksum is checked above).
check_pcap_clean "pcap: the device's frames" "$P" \
  "eth.src == $M && !(ipv6 && tcp.flags.reset == 1 && tcp.srcport == 4445)"
net_finish
