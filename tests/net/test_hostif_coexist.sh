#!/usr/bin/env bash
# The host interface (toed --host-if): the device's engine and the OS share one MAC and one IPv4
# address without conflict (docs/coexistence.md). The peer is the Linux kernel in its namespace and
# captures everything on its side of the wire.
#  - toe0 exists in toed's namespace with the device's MAC, the shared address, up with carrier;
#    the device's ephemeral range is reserved from the OS while toed runs, and restored after;
#  - ARP: each request from the peer for the shared address gets exactly one reply on the wire
#    (the engine's; the OS's replies are dropped and counted), and the OS learns neighbours too;
#  - ping: each echo request gets exactly one reply;
#  - a kernel TCP service (python http.server on 8080 of toe0) and an offloaded one (toed's TCP
#    echo on 7) serve the peer at the same time, from one peer program; the same for UDP (a kernel
#    UDP echo on 6000 and the device's UDP echo on 7);
#  - port conflicts both ways: the OS cannot bind 7 (TCP or UDP: toed holds shadow sockets), the
#    device cannot bind 8080/TCP or 6000/UDP (toe-nc -l gets EADDRINUSE);
#  - the peer's capture: no RST from the shared address, nothing malformed.
# Usage: bash tests/net/test_hostif_coexist.sh BINDIR
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/transport_lib.sh"
net_init "$1" 90
tr_init
tr_need "$TOE_NC"
command -v curl >/dev/null || net_die "missing tool curl (run: make deps)"
net_setup
D=$NET_DEV_ADDR
PCAP=$NET_TMP/peer.pcap
RES_BEFORE=$(dev cat /proc/sys/net/ipv4/ip_local_reserved_ports)
tr_start_toed --host-if toe0 --host-addr "$D/$NET_PREFIX" --service echo:7
# From here on (the start-up ping of wait_toed_ready came before toed could answer its ARP).
peer_capture_start "$PCAP" || net_die "no peer-side capture"

# ---- the interface ----
link=$(dev ip -br link show toe0)
check "toe0 carries the device's MAC" grep -qi "$NET_DEV_MAC" <<<"$link"
check "toe0 is up with carrier" grep -q 'LOWER_UP' <<<"$link"
check "toe0 has the shared address" bash -c "ip netns exec $NET_DEV_NS ip -br addr show toe0 | grep -q '$D/$NET_PREFIX'"
check_eq "ephemeral range reserved from the OS" \
  "$(dev cat /proc/sys/net/ipv4/ip_local_reserved_ports)" "${RES_BEFORE:+$RES_BEFORE,}49152-65535"

# ---- ARP and ICMP, exactly once ----
for i in 1 2 3; do
  peer ip neigh flush dev "$NET_PEER_IF" >/dev/null 2>&1
  peer ping -c 1 -W 2 "$D" >/dev/null 2>&1
done
out=$(peer ping -c 10 -i 0.1 -W 2 "$D" 2>&1)
check_eq "ping -c 10: replies" "$(sed -n 's/.* \([0-9]\+\) received.*/\1/p' <<<"$out")" 10
check "ping: no duplicate replies" bash -c '! grep -q "DUP!" <<<"$1"' _ "$out"
# The OS learned the peer too (it saw the peer's requests, or asked itself).
dev ping -c 1 -W 2 "$NET_PEER_ADDR" >/dev/null 2>&1
check "the OS resolves the peer on toe0" \
  bash -c "ip netns exec $NET_DEV_NS ip neigh show dev toe0 | grep -q '$NET_PEER_ADDR .*lladdr'"

# ---- a kernel service and an offloaded service on the same IP at the same time ----
mkdir -p "$NET_TMP/www" && echo "kernel-served" >"$NET_TMP/www/index.html"
dev_bg timeout 60 "$NET_PY" -m http.server --bind "$D" 8080 --directory "$NET_TMP/www" \
  >"$NET_TMP/http.log" 2>&1 </dev/null
wait_for 10 bash -c "ip netns exec $NET_DEV_NS ss -Hltn 'sport = :8080' | grep -q ." ||
  net_fail "http.server did not listen"
dev_bg timeout 60 "$NET_PY" -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("'"$D"'", 6000))
while True:
    d, a = s.recvfrom(2048)
    s.sendto(b"kernel:" + d, a)' >"$NET_TMP/udpecho.log" 2>&1 </dev/null
wait_for 10 bash -c "ip netns exec $NET_DEV_NS ss -Hlun 'sport = :6000' | grep -q ." ||
  net_fail "kernel UDP echo did not bind"

both=$(peer timeout 30 "$NET_PY" -c '
import socket, subprocess, sys
d = sys.argv[1]
t = socket.create_connection((d, 7), timeout=5)       # offloaded: the device TCP echo
t.sendall(b"first|")
a = t.recv(100)
http = subprocess.run(["curl", "-s", "-m", "5", "http://%s:8080/index.html" % d],
                      capture_output=True, text=True).stdout.strip()
t.sendall(b"second")
b = b""
while len(b) < 6:
    b += t.recv(100)
t.close()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.settimeout(3)
got = {}
for port in (7, 6000):
    for _ in range(3):
        u.sendto(b"ping%d" % port, (d, port))
        try:
            m, src = u.recvfrom(2048)
            got[src[1]] = m.decode()
            break
        except socket.timeout:
            pass
print("tcp_echo", (a + b).decode())
print("http", http)
print("udp7", got.get(7, "none"))
print("udp6000", got.get(6000, "none"))
' "$D" 2>&1)
net_log "$both"
check_eq "offloaded TCP echo (port 7) across a kernel HTTP request" "$(kv tcp_echo "$both")" "first|second"
check_eq "kernel HTTP (port 8080) during an offloaded connection" "$(kv http "$both")" "kernel-served"
check_eq "offloaded UDP echo (port 7)" "$(kv udp7 "$both")" "ping7"
check_eq "kernel UDP echo (port 6000)" "$(kv udp6000 "$both")" "kernel:ping6000"

# ---- toectl filters: the engine's listeners and binds, with what they steered ----
toectl_json "$NET_TMP/filters.json" filters || net_fail "toectl --json filters failed"
check_eq "filters: TCP listener on 7, with frames" \
  "$(json_eval "$NET_TMP/filters.json" "len([f for f in d['filters'] if f['proto'] == 'tcp' and f['kind'] == 'local' and f['local_port'] == 7 and f['frames'] > 0])")" 1
check_eq "filters: UDP bind on 7, with frames" \
  "$(json_eval "$NET_TMP/filters.json" "len([f for f in d['filters'] if f['proto'] == 'udp' and f['kind'] == 'local' and f['local_port'] == 7 and f['frames'] > 0])")" 1
check_eq "filters: nothing for the OS's ports" \
  "$(json_eval "$NET_TMP/filters.json" "len([f for f in d['filters'] if f['local_port'] in (8080, 6000)])")" 0
out=$(toectl_run filters)
check "toectl filters (text): a line for the TCP listener" grep -qE "^tcp +local +$D:7 +\*:\*" <<<"$out"

# ---- port conflicts, both ways ----
bind_os() {
  dev "$NET_PY" -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if sys.argv[1] == "tcp" else socket.SOCK_DGRAM)
try:
    s.bind(("0.0.0.0", int(sys.argv[2])))
    print("bound")
except OSError as e:
    print(__import__("errno").errorcode[e.errno])' "$1" "$2" 2>&1
}
check_eq "OS bind 0.0.0.0:7/tcp while the device listens" "$(bind_os tcp 7)" EADDRINUSE
check_eq "OS bind 0.0.0.0:7/udp while the device is bound" "$(bind_os udp 7)" EADDRINUSE
check_eq "OS bind of a free port works" "$(bind_os tcp 7070)" bound
out=$(dev timeout 5 "$TOE_NC" --ctl "$CTL" -l 8080 2>&1 </dev/null)
check "device bind of 8080/tcp (the OS's) fails: EADDRINUSE" grep -q "Address already in use" <<<"$out"
out=$(dev timeout 5 "$TOE_NC" --ctl "$CTL" -u -l 6000 2>&1 </dev/null)
check "device bind of 6000/udp (the OS's) fails: EADDRINUSE" grep -q "Address already in use" <<<"$out"

sleep 0.5
check_toed_exit
peer_capture_stop
check_ge "the OS's ARP replies for the shared address dropped" "$(toed_counter host_if.drop_arp_reply)" 1
check_ge "ARP steered to both sides" "$(toed_counter steer.to_both)" 3
check_ge "port claims refused (the OS's ports)" "$(toed_counter host_if.port_refused)" 2

# ---- the peer's view of the wire ----
# Every count of the capture in one tshark pass (each start is a second of CPU, 10 to 20 s of wall
# time at load 19: nine of them ran this test into its watchdog).
F_AREQ="arp.opcode == 1 && arp.src.proto_ipv4 == $NET_PEER_ADDR && arp.dst.proto_ipv4 == $D"
F_AREP="arp.opcode == 2 && arp.src.proto_ipv4 == $D"
F_EREQ="icmp.type == 8 && ip.src == $NET_PEER_ADDR && ip.dst == $D"
F_EREP="icmp.type == 0 && ip.src == $D && ip.dst == $NET_PEER_ADDR"
F_RST="tcp.flags.reset == 1 && ip.src == $D"
F_T7="tcp.srcport == 7 && ip.src == $D"
F_T8080="tcp.srcport == 8080 && ip.src == $D"
tshark_prefetch "$PCAP" "$F_AREQ" "$F_AREP" "$F_EREQ" "$F_EREP" "$F_RST" "$F_T7" "$F_T8080" \
  "$(pcap_clean_filter "ip.src == $D")"
reqs=$(tshark_count "$PCAP" "$F_AREQ")
reps=$(tshark_count "$PCAP" "$F_AREP")
check_ge "ARP requests from the peer for the shared address" "$reqs" 3
check_eq "ARP replies for the shared address = requests" "$reps" "$reqs"
ereq=$(tshark_count "$PCAP" "$F_EREQ")
erep=$(tshark_count "$PCAP" "$F_EREP")
check_ge "echo requests to the shared address" "$ereq" 13
check_eq "echo replies = echo requests" "$erep" "$ereq"
check_eq "no RST from the shared address" "$(tshark_count "$PCAP" "$F_RST")" 0
check_ge "offloaded TCP segments seen (port 7)" "$(tshark_count "$PCAP" "$F_T7")" 3
check_ge "kernel TCP segments seen (port 8080)" "$(tshark_count "$PCAP" "$F_T8080")" 3
# (The peer's own frames are captured before its checksums are filled in: offload.)
check_pcap_clean "peer capture, frames from the shared address" "$PCAP" "ip.src == $D"

# ---- after toed ----
check "toe0 is gone with toed" bash -c "! ip netns exec $NET_DEV_NS ip link show toe0 >/dev/null 2>&1"
check_eq "reserved ports restored" "$(dev cat /proc/sys/net/ipv4/ip_local_reserved_ports)" "$RES_BEFORE"
net_finish
