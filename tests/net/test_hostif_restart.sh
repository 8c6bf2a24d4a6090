#!/usr/bin/env bash
# The host interface over time (docs/coexistence.md):
#  - outbound: a non-preloaded kernel curl on the host reaches a peer HTTP server through toe0 while
#    an offloaded connection (toe-nc) to the same peer port is open; the peer sees the two with
#    source ports on either side of the device's reserved ephemeral range, and no RST from us;
#  - link state: toe0 loses its carrier when the wire does, and gets it back;
#  - restart: stopping toed removes toe0 (the OS's address and routes on it go too); starting it
#    again brings toe0 back with its address, and an OS TCP connection opened before the restart
#    carries data again afterwards (its segments in between are retransmitted). Echo is given to
#    the OS the second time (--icmp-echo host): ping is still answered exactly once.
# Usage: bash tests/net/test_hostif_restart.sh BINDIR
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/transport_lib.sh"
net_init "$1" 100
tr_init
tr_need "$TOE_NC"
command -v curl >/dev/null || net_die "missing tool curl (run: make deps)"
net_setup
D=$NET_DEV_ADDR P=$NET_PEER_ADDR
PCAP=$NET_TMP/peer.pcap

# The peer: an HTTP/1.1 server (keep-alive) on 8000 and a TCP echo server on 9000.
mkdir -p "$NET_TMP/www" && echo "peer-page" >"$NET_TMP/www/index.html"
peer_bg timeout 90 "$NET_PY" -c '
import http.server, sys
class H(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("'"$P"'", 8000),
    lambda *a: H(*a, directory=sys.argv[1])).serve_forever()' "$NET_TMP/www" </dev/null >/dev/null 2>&1
peer_bg timeout 90 "$NET_PY" -c '
import socket, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("'"$P"'", 9000)); s.listen(8)
def serve(c):
    while True:
        d = c.recv(4096)
        if not d: return
        c.sendall(d)
while True:
    c, _ = s.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()' </dev/null >/dev/null 2>&1
wait_for 10 peer_listening 8000 || net_die "peer HTTP server did not listen"
wait_for 10 peer_listening 9000 || net_die "peer echo server did not listen"

tr_start_toed --host-if toe0 --host-addr "$D/$NET_PREFIX"
peer_capture_start "$PCAP" || net_die "no peer-side capture"
# What the OS itself sees and sends: a capture on toe0.
dev_bg tcpdump -i toe0 -n -U --immediate-mode -s 0 -w "$NET_TMP/toe0.pcap" >"$NET_TMP/tcpdump0.log" 2>&1 </dev/null
TOE0_CAP=$BG_PID
wait_for 5 grep -q 'listening on' "$NET_TMP/tcpdump0.log" || net_fail "no capture on toe0"

# ---- outbound: offloaded and kernel connections to the same peer port ----
mkfifo "$NET_TMP/nc.in"
exec 7<>"$NET_TMP/nc.in" # read-write: neither this open nor toe-nc's blocks
dev_bg timeout 30 "$TOE_NC" --ctl "$CTL" "$P" 8000 <"$NET_TMP/nc.in" >"$NET_TMP/nc.out" 2>&1
printf 'GET /index.html HTTP/1.1\r\nHost: peer\r\n\r\n' >&7
wait_for 10 grep -q peer-page "$NET_TMP/nc.out" || net_fail "offloaded GET got no page"
offl=$(peer ss -Htn state established "( sport = :8000 )" | grep -c "$D:")
check_eq "offloaded connection established while the kernel curl runs" "$offl" 1
out=$(dev curl -s -m 10 -w ' code=%{http_code} lport=%{local_port}' "http://$P:8000/index.html")
check "kernel curl through toe0 gets the page" grep -q 'peer-page' <<<"$out"
check "kernel curl through toe0: HTTP 200" grep -q 'code=200' <<<"$out"
lport=$(sed -n 's/.*lport=\([0-9]*\).*/\1/p' <<<"$out")
check_range "kernel curl's source port outside the device's range" "${lport:-x}" 1 49151
eport=$(peer ss -Htn state established "( sport = :8000 )" | awk '{print $4}' | grep "$D:" | sed 's/.*://')
check_range "offloaded connection's source port in the device's range" "${eport:-x}" 49152 65535
printf 'GET /index.html HTTP/1.1\r\nHost: peer\r\nConnection: close\r\n\r\n' >&7
exec 7>&-
wait_for 10 bash -c "[ \$(grep -c peer-page '$NET_TMP/nc.out') -ge 2 ]" ||
  net_fail "second offloaded GET got no page"

# ---- carrier follows the wire ----
dev ip link set "$NET_DEV_IF" down
check "toe0 loses carrier with the wire" \
  wait_for 10 bash -c "ip netns exec $NET_DEV_NS ip link show toe0 | grep -q NO-CARRIER"
dev ip link set "$NET_DEV_IF" up
check "toe0 gets carrier back" \
  wait_for 10 bash -c "ip netns exec $NET_DEV_NS ip link show toe0 | grep -q LOWER_UP"
wait_for 10 bash -c "ip netns exec $NET_PEER_NS ping -c1 -W1 $D >/dev/null" || net_fail "no ping after link up"

# ---- an OS connection across a restart of toed ----
rm -f "$NET_TMP/go"
dev_bg timeout 60 "$NET_PY" -c '
import os, socket, sys, time
go, out = sys.argv[1], sys.argv[2]
s = socket.create_connection(("'"$P"'", 9000), timeout=30)
s.sendall(b"before|")
a = s.recv(100)
open(out, "w").write("first " + a.decode() + "\n")
while not os.path.exists(go):
    time.sleep(0.05)
s.sendall(b"after")
b = b""
while len(b) < 5:
    b += s.recv(100)
open(out, "a").write("second " + b.decode() + "\n")' "$NET_TMP/go" "$NET_TMP/os_conn.out" </dev/null >"$NET_TMP/os_conn.err" 2>&1
OS_CONN=$BG_PID
wait_for 10 grep -qs '^first' "$NET_TMP/os_conn.out" || net_fail "OS connection did not start"
check_eq "OS connection through toe0 before the restart" "$(kv first "$(cat "$NET_TMP/os_conn.out")")" "before|"

net_kill_pid "$TOE0_CAP"
# The OS never saw a segment of the offloaded connection, nor sent one (no RST of its own).
# One tshark pass for the three counts: each start is a second of CPU, 20 s of wall time at load
# 19, and three of them outlasted the OS connection's 60 s budget.
F_EPORT="tcp.port == ${eport:-0}"
F_LPORT="tcp.port == ${lport:-0}"
F_ORST="tcp.flags.reset == 1 && ip.src == $D"
tshark_prefetch "$NET_TMP/toe0.pcap" "$F_EPORT" "$F_LPORT" "$F_ORST"
check_eq "toe0 capture: no segment of the offloaded connection" \
  "$(tshark_count "$NET_TMP/toe0.pcap" "$F_EPORT")" 0
check_ge "toe0 capture: the kernel curl's segments" \
  "$(tshark_count "$NET_TMP/toe0.pcap" "$F_LPORT")" 4
check_eq "toe0 capture: no RST sent by the OS" "$(tshark_count "$NET_TMP/toe0.pcap" "$F_ORST")" 0
stop_toed
check_eq "toed exits 0 on SIGTERM" "$NET_TOED_STATUS" 0
toed_log_keep first
check_eq "no OS segment of an owned flow had to be dropped" "$(toed_counter host_if.drop_owned_flow)" 0
check "toe0 is gone while toed is down" bash -c "! ip netns exec $NET_DEV_NS ip link show toe0 >/dev/null 2>&1"
check "the OS's connection survives toe0's removal" \
  bash -c "ip netns exec $NET_DEV_NS ss -Htn state established '( dport = :9000 )' | grep -q ."

tr_start_toed --host-if toe0 --host-addr "$D/$NET_PREFIX" --icmp-echo host
check "toe0 is back after the restart" bash -c "ip netns exec $NET_DEV_NS ip -br addr show toe0 | grep -q '$D/$NET_PREFIX'"
touch "$NET_TMP/go"
wait_for 30 grep -qs '^second' "$NET_TMP/os_conn.out" || net_fail "OS connection carried nothing after the restart"
check_eq "OS connection carries data after the restart" "$(kv second "$(cat "$NET_TMP/os_conn.out")")" "after"
out=$(peer ping -c 5 -i 0.2 -W 2 "$D" 2>&1)
check_eq "ping answered by the OS (--icmp-echo host)" "$(sed -n 's/.* \([0-9]\+\) received.*/\1/p' <<<"$out")" 5
check "ping: no duplicate replies" bash -c '! grep -q "DUP!" <<<"$1"' _ "$out"
check_toed_exit
check_ge "echo requests steered to the OS" "$(toed_counter steer.echo_host)" 5
check_eq "the engine answered no echo" "$(toed_counter icmp.tx_echo_replies)" 0
peer_capture_stop

F_KRST="tcp.flags.reset == 1 && ip.src == $D && tcp.srcport < 49152"
# (tshark rates every RST a warning; toe-nc's own close may reset its offloaded connection.)
F_PEERS="ip.src == $D && !(tcp.flags.reset == 1 && tcp.srcport >= 49152)"
tshark_prefetch "$PCAP" "$F_KRST" "$(pcap_clean_filter "$F_PEERS")"
check_eq "peer capture: no RST from the shared address to the kernel's ports" \
  "$(tshark_count "$PCAP" "$F_KRST")" 0
check_pcap_clean "peer capture, frames from the shared address" "$PCAP" "$F_PEERS"
net_finish
