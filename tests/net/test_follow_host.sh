#!/usr/bin/env bash
# toed --host-if toe0 --follow-host (docs/coexistence.md "Addresses that follow the OS"), started
# with no address at all: the device takes the OS's IPv4 address on toe0, live, through
# rtnetlink. The peer is the Linux kernel in its namespace, with dnsmasq serving DHCPv4 on the link
# (a 198.18.0.50-60 pool, router 198.18.0.2 = the peer).
#  - the OS's DHCP client (busybox udhcpc, from busybox-static) leases an address on toe0 through
#    the device (steering gives the server's offers to the OS); toed takes its address, prefix
#    and router;
#  - the peer pings the leased address (one reply per request, from the engine) and holds a TCP
#    connection to the device's echo on 7;
#  - ip addr del on toe0: the held connection is reset (the peer's kernel reports ECONNRESET) and
#    the old address goes silent;
#  - ip addr add 198.18.0.9/24: the device answers ping and TCP echo there.
# One toed and one DHCP exchange for all of it (CI time).
# Usage: bash tests/net/test_follow_host.sh BINDIR
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/transport_lib.sh"
net_init "$1" 90
tr_init
command -v dnsmasq >/dev/null || net_die "missing tool dnsmasq (run: make deps)"
command -v busybox >/dev/null || net_die "missing tool busybox (run: make deps)"
net_setup
D2=198.18.0.9

# The OS's DHCP client applies the lease with this script (udhcpc(8) environment).
cat >"$NET_TMP/udhcpc.sh" <<'SCRIPT'
#!/bin/sh
case "$1" in
deconfig) ip -4 addr flush dev "$interface" ;;
bound | renew)
  ip addr replace "$ip/${mask:-24}" dev "$interface"
  [ -n "$router" ] && ip route replace default via "${router%% *}" dev "$interface"
  echo "lease $ip/${mask:-24} router ${router%% *}" >>"$LEASE_LOG"
  ;;
esac
exit 0
SCRIPT
chmod +x "$NET_TMP/udhcpc.sh"

peer dnsmasq --no-daemon --conf-file=/dev/null --port=0 --interface="$NET_PEER_IF" \
  --bind-interfaces --dhcp-range=198.18.0.50,198.18.0.60,255.255.255.0,1h \
  --dhcp-option=3,"$NET_PEER_ADDR" --dhcp-leasefile="$NET_TMP/leases" --pid-file= \
  >"$NET_TMP/dnsmasq.log" 2>&1 </dev/null &
net_bg_add $!

NET_TOED_LOG=$NET_TMP/toed.log
ip netns exec "$NET_DEV_NS" "$NET_TOED" --wire "$NET_DEV_IF" --mac "$NET_DEV_MAC" --ctl "$CTL" \
  --host-if toe0 --follow-host --service echo:7 >"$NET_TOED_LOG" 2>&1 </dev/null &
NET_TOED_PID=$!
wait_for 10 bash -c "ip netns exec $NET_DEV_NS ip link show toe0 >/dev/null 2>&1" ||
  net_die "toed made no toe0"

# -q: quit once bound; -n: fail rather than retry forever; -t 5 -T 1: five discovers a second apart.
dev env LEASE_LOG="$NET_TMP/lease.log" timeout 20 busybox udhcpc -i toe0 -s "$NET_TMP/udhcpc.sh" \
  -q -n -t 5 -T 1 >"$NET_TMP/udhcpc.log" 2>&1
lease=$(awk '{print $2}' "$NET_TMP/lease.log" 2>/dev/null | tail -1)
L=${lease%/*}
net_log "lease: $lease (router $(awk '{print $4}' "$NET_TMP/lease.log" 2>/dev/null | tail -1))"
check "the OS got a lease from the peer's DHCP server through the device" \
  bash -c "[[ '$L' == 198.18.0.5[0-9] || '$L' == 198.18.0.60 ]]"
[ -n "$L" ] || net_die "no lease (udhcpc log: $(tr '\n' ' ' <"$NET_TMP/udhcpc.log"))"

wait_for 10 grep -q -- "--follow-host: address $L/24, gateway $NET_PEER_ADDR" "$NET_TOED_LOG"
check "toed took the lease's address and router" \
  grep -q -- "--follow-host: address $L/24, gateway $NET_PEER_ADDR" "$NET_TOED_LOG"

ping_received() { sed -n 's/.* \([0-9]\+\) received.*/\1/p' | head -1; }
out=$(peer ping -c 5 -i 0.2 -W 2 "$L" 2>&1)
check_eq "ping $L (leased): replies" "$(ping_received <<<"$out")" 5
check "ping $L: no duplicates" bash -c '! grep -q "DUP!" <<<"$1"' _ "$out"
# A connection the peer holds open to the device's TCP echo, waiting for the reset.
peer timeout 30 "$NET_PY" -c '
import socket, sys
t = socket.create_connection((sys.argv[1], 7), timeout=20)
t.sendall(b"hello")
print("echo", t.recv(100).decode(), flush=True)
try:
    d = t.recv(100)
    print("end", "eof" if not d else "data")
except ConnectionResetError:
    print("end", "reset")
except socket.timeout:
    print("end", "timeout")
' "$L" >"$NET_TMP/conn.out" 2>&1 &
CONN_PID=$!
net_bg_add "$CONN_PID"
wait_for 10 grep -q '^echo' "$NET_TMP/conn.out" || net_fail "no echo on the held connection"
check_eq "held connection echoes" "$(kv echo "$(cat "$NET_TMP/conn.out")")" hello

dev ip addr del "$L/24" dev toe0 || net_fail "ip addr del"
wait_for 10 grep -q '^end' "$NET_TMP/conn.out"
check_eq "the peer's connection is reset when the address goes" \
  "$(kv end "$(cat "$NET_TMP/conn.out")")" reset
out=$(peer ping -c 1 -W 1 "$L" 2>&1)
check_eq "the old address $L is silent" "$(ping_received <<<"$out")" 0

dev ip addr add "$D2/$NET_PREFIX" dev toe0 || net_fail "ip addr add"
wait_for 10 grep -q -- "--follow-host: address $D2/$NET_PREFIX" "$NET_TOED_LOG"
check "toed took the new address" grep -q -- "--follow-host: address $D2/$NET_PREFIX" "$NET_TOED_LOG"
out=$(peer ping -c 3 -i 0.2 -W 2 "$D2" 2>&1)
check_eq "ping $D2: replies" "$(ping_received <<<"$out")" 3
check "ping $D2: no duplicates" bash -c '! grep -q "DUP!" <<<"$1"' _ "$out"
out=$(peer timeout 10 "$NET_PY" -c '
import socket, sys
t = socket.create_connection((sys.argv[1], 7), timeout=5)
t.sendall(b"again")
print(t.recv(100).decode())' "$D2" 2>&1)
check_eq "TCP echo on the new address" "$out" again

check_toed_exit
check_ge "echo requests answered by the engine" "$(toed_counter steer.echo_engine)" 8
check_ge "the OS's ARP replies for the followed address dropped" \
  "$(toed_counter host_if.drop_arp_reply)" 1
net_finish
