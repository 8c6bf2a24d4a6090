#!/usr/bin/env bash
# IPv6 with the host interface (docs/coexistence.md rules 12-16): toed --host-if toe0 --addr6
# 2001:db8::2/64, the OS's toe0 carrying the same address and (same MAC, same modified EUI-64) the
# same link-local one; the Linux kernel in the peer namespace with 2001:db8::1/64.
#  - ping -6 from the peer to the shared global and link-local addresses: exactly one reply per
#    request (no DUP!), and on the peer's capture exactly one neighbour advertisement per
#    solicitation for a shared address (the engine's; the OS's are dropped and counted,
#    host_if.drop_nd_adv);
#  - the OS still does IPv6: it resolves the peer and pings it from toe0;
#  - a kernel TCP service (http.server on [2001:db8::2]:8080) and a kernel UDP echo (6000) on toe0
#    serve the peer over IPv6 while the device's UDP echo on 7 (a dual-stack socket) does too;
#  - net.ipv4.ip_local_reserved_ports applies to the OS's IPv6 ports as well (50 ephemeral binds
#    on toe0's address, all below the device's 49152-65535);
#  - explicit binds conflict both ways over IPv6 as over IPv4 (toed's shadow sockets bind the
#    shared IPv6 address too): the OS cannot bind [2001:db8::2]:7, the device cannot bind 6000;
#  - toectl filters: the UDP bind on 7 counted the IPv6 datagrams it steered;
#  - the peer's capture: no RST from the shared address, nothing malformed.
# Usage: bash tests/net/test_hostif_v6.sh BINDIR
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/transport_lib.sh"
net_init "$1" 90
tr_init
tr_need "$TOE_NC"
command -v curl >/dev/null || net_die "missing tool curl (run: make deps)"
net_setup
D=$NET_DEV_ADDR
DEV6=2001:db8::2
PEER6=2001:db8::1
# fe80::/64 + modified EUI-64 of NET_DEV_MAC (02:74:6f:65:00:01), the engine's and toe0's.
DEV_LL=fe80::74:6fff:fe65:1
PCAP=$NET_TMP/peer.pcap

for k in accept_dad=0 router_solicitations=0 accept_ra=0 disable_ipv6=0; do
  net_sysctl "$NET_PEER_NS" "net.ipv6.conf.$NET_PEER_IF.${k%=*}" "${k#*=}"
done
net_sysctl "$NET_PEER_NS" net.ipv6.conf.all.disable_ipv6 0
ip -n "$NET_PEER_NS" -6 addr add "$PEER6/64" dev "$NET_PEER_IF" nodad || net_die "peer IPv6 address"
# The device namespace: IPv6 on for interfaces made from now on (toe0), without DAD delay or
# router solicitations; the wire port stays without it (it is toed's).
net_sysctl "$NET_DEV_NS" net.ipv6.conf.all.disable_ipv6 0
net_sysctl "$NET_DEV_NS" "net.ipv6.conf.$NET_DEV_IF.disable_ipv6" 1
for k in disable_ipv6=0 accept_dad=0 router_solicitations=0 accept_ra=0; do
  net_sysctl "$NET_DEV_NS" "net.ipv6.conf.default.${k%=*}" "${k#*=}"
done

tr_start_toed --host-if toe0 --host-addr "$D/$NET_PREFIX" --addr6 "$DEV6/64" --service echo:7
dev ip -6 addr add "$DEV6/64" dev toe0 nodad || net_fail "cannot add $DEV6 to toe0"

ping_received() { sed -n 's/.* \([0-9]\+\) received.*/\1/p' | head -1; }
# The engine's addresses are tentative until its DAD passes (up to ~2 s).
check "the shared address $DEV6 answers" net_wait_ping6 "$DEV6"
# From here on: while the engine's addresses were tentative it rightly answered no solicitation
# for them (RFC 4862 5.4.3), and the peer's early ones would count as unanswered.
peer_capture_start "$PCAP" || net_die "no peer-side capture"

# ---- Neighbor Discovery and echo, exactly once ----
for i in 1 2 3; do
  peer ip -6 neigh flush dev "$NET_PEER_IF" >/dev/null 2>&1
  peer ping -6 -c 1 -W 2 "$DEV6" >/dev/null 2>&1
done
out=$(peer ping -6 -c 10 -i 0.1 -W 2 "$DEV6" 2>&1)
check_eq "ping -6 -c 10 $DEV6: replies" "$(ping_received <<<"$out")" 10
check "ping -6 $DEV6: no duplicate replies" bash -c '! grep -q "DUP!" <<<"$1"' _ "$out"
peer ip -6 neigh flush dev "$NET_PEER_IF" >/dev/null 2>&1
out=$(peer ping -6 -c 5 -i 0.1 -W 2 "$DEV_LL%$NET_PEER_IF" 2>&1)
check_eq "ping -6 -c 5 $DEV_LL (shared link-local): replies" "$(ping_received <<<"$out")" 5
check "ping -6 link-local: no duplicate replies" bash -c '! grep -q "DUP!" <<<"$1"' _ "$out"
# The OS keeps its IPv6: it resolves the peer (the NA reaches both sides) and pings it.
out=$(dev ping -6 -c 2 -i 0.2 -W 2 "$PEER6" 2>&1)
check_eq "the OS pings the peer from toe0" "$(ping_received <<<"$out")" 2

# ---- kernel services on toe0 and the device's, over IPv6 at the same time ----
mkdir -p "$NET_TMP/www" && echo "kernel-served-v6" >"$NET_TMP/www/index.html"
dev_bg timeout 60 "$NET_PY" -m http.server --bind "$DEV6" 8080 --directory "$NET_TMP/www" \
  >"$NET_TMP/http.log" 2>&1 </dev/null
dev_bg timeout 60 "$NET_PY" -c '
import socket
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.bind(("'"$DEV6"'", 6000))
while True:
    d, a = s.recvfrom(2048)
    s.sendto(b"kernel:" + d, a)' >"$NET_TMP/udpecho.log" 2>&1 </dev/null
wait_for 10 bash -c "ip netns exec $NET_DEV_NS ss -Hltn 'sport = :8080' | grep -q ." ||
  net_fail "http.server did not listen"
wait_for 10 bash -c "ip netns exec $NET_DEV_NS ss -Hlun 'sport = :6000' | grep -q ." ||
  net_fail "kernel UDP echo did not bind"
both=$(peer timeout 30 "$NET_PY" -c '
import socket, subprocess, sys
d = sys.argv[1]
u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
u.settimeout(3)
got = {}
def ask(port):
    for _ in range(3):
        u.sendto(b"ping%d" % port, (d, port))
        try:
            m, src = u.recvfrom(2048)
            got[src[1]] = m.decode()
            return
        except socket.timeout:
            pass
ask(7)
http = subprocess.run(["curl", "-s", "-g", "-m", "5", "http://[%s]:8080/index.html" % d],
                      capture_output=True, text=True).stdout.strip()
ask(6000)
ask(7)
print("udp7", got.get(7, "none"))
print("udp6000", got.get(6000, "none"))
print("http", http or "none")
' "$DEV6" 2>&1)
net_log "$both"
check_eq "device UDP echo on [$DEV6]:7" "$(kv udp7 "$both")" "ping7"
check_eq "kernel UDP echo on toe0 [$DEV6]:6000" "$(kv udp6000 "$both")" "kernel:ping6000"
check_eq "kernel HTTP on toe0 [$DEV6]:8080" "$(kv http "$both")" "kernel-served-v6"

# ---- ports: the reserved range holds for the OS's IPv6 sockets too ----
ports=$(dev "$NET_PY" -c '
import socket
ss = []
for _ in range(50):
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.bind(("'"$DEV6"'", 0))
    ss.append(s)
print(max(s.getsockname()[1] for s in ss))' 2>&1)
check_range "highest of 50 ephemeral IPv6 ports of the OS (below the device's range)" "$ports" 1024 49151

# ---- explicit binds conflict in both families (toed's shadow sockets on the IPv6 address too) ----
bind_os6() {
  dev "$NET_PY" -c '
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM if sys.argv[1] == "tcp" else socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
try:
    s.bind((sys.argv[3], int(sys.argv[2])))
    print("bound")
except OSError as e:
    print(__import__("errno").errorcode[e.errno])' "$1" "$2" "$3" 2>&1
}
check_eq "OS bind [$DEV6]:7/udp while the device is bound" "$(bind_os6 udp 7 "$DEV6")" EADDRINUSE
check_eq "OS bind [::]:7/tcp (IPv6 only) while the device listens" "$(bind_os6 tcp 7 ::)" EADDRINUSE
check_eq "OS bind [$DEV6]:7070/tcp, a free port" "$(bind_os6 tcp 7070 "$DEV6")" bound
out=$(dev timeout 5 "$TOE_NC" --ctl "$CTL" -u -l 6000 2>&1 </dev/null)
check "device bind of 6000/udp (the OS's, on $DEV6 only) fails: EADDRINUSE" \
  grep -q "Address already in use" <<<"$out"

toectl_json "$NET_TMP/filters.json" filters || net_fail "toectl --json filters failed"
check_eq "filters: the UDP bind on 7 steered frames" \
  "$(json_eval "$NET_TMP/filters.json" "len([f for f in d['filters'] if f['proto'] == 'udp' and f['kind'] == 'local' and f['local_port'] == 7 and f['frames'] >= 2])")" 1
check_eq "filters: nothing for the OS's ports" \
  "$(json_eval "$NET_TMP/filters.json" "len([f for f in d['filters'] if f['local_port'] in (8080, 6000)])")" 0

sleep 0.3
check_toed_exit
peer_capture_stop
check_ge "the OS's neighbour advertisements for shared addresses dropped" \
  "$(toed_counter host_if.drop_nd_adv)" 1
check_ge "solicitations for shared addresses steered to both" "$(toed_counter steer.nd_both)" 4

# ---- the peer's view of the wire, one tshark pass ----
F_NS="icmpv6.type == 135 && ipv6.src == $PEER6 && icmpv6.nd.ns.target_address == $DEV6"
F_NA="icmpv6.type == 136 && icmpv6.nd.na.target_address == $DEV6"
F_NSL="icmpv6.type == 135 && icmpv6.nd.ns.target_address == $DEV_LL"
F_NAL="icmpv6.type == 136 && icmpv6.nd.na.target_address == $DEV_LL"
F_EREQ="icmpv6.type == 128 && ipv6.src == $PEER6 && ipv6.dst == $DEV6"
F_EREP="icmpv6.type == 129 && ipv6.src == $DEV6 && ipv6.dst == $PEER6"
F_RST="tcp.flags.reset == 1 && ipv6.src == $DEV6"
F_K="tcp.srcport == 8080 && ipv6.src == $DEV6"
tshark_prefetch "$PCAP" "$F_NS" "$F_NA" "$F_NSL" "$F_NAL" "$F_EREQ" "$F_EREP" "$F_RST" "$F_K" \
  "$(pcap_clean_filter "ipv6.src == $DEV6 || ipv6.src == $DEV_LL")"
ns=$(tshark_count "$PCAP" "$F_NS")
na=$(tshark_count "$PCAP" "$F_NA")
net_log "NS for $DEV6: $ns, NA: $na"
check_ge "solicitations from the peer for $DEV6" "$ns" 3
check_eq "advertisements for $DEV6 = solicitations (one answer each)" "$na" "$ns"
nsl=$(tshark_count "$PCAP" "$F_NSL")
nal=$(tshark_count "$PCAP" "$F_NAL")
check_ge "solicitations for the shared link-local address" "$nsl" 1
check_eq "advertisements for the link-local address = solicitations" "$nal" "$nsl"
ereq=$(tshark_count "$PCAP" "$F_EREQ")
check_ge "echo requests to $DEV6" "$ereq" 13
check_eq "echo replies = echo requests" "$(tshark_count "$PCAP" "$F_EREP")" "$ereq"
check_eq "no RST from the shared address" "$(tshark_count "$PCAP" "$F_RST")" 0
check_ge "kernel TCP segments over IPv6 seen (port 8080)" "$(tshark_count "$PCAP" "$F_K")" 3
check_pcap_clean "peer capture, frames from the shared addresses" "$PCAP" \
  "ipv6.src == $DEV6 || ipv6.src == $DEV_LL"
net_finish
