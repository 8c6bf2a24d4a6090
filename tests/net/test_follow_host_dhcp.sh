#!/usr/bin/env bash
# toed --follow-host with DHCP (docs/coexistence.md "Addresses that follow the OS"): dnsmasq in the
# peer namespace serves DHCPv4 on the link (a 198.18.0.50-60 pool, router 198.18.0.2 = the peer);
# the OS's DHCP client (busybox udhcpc, from busybox-static) configures toe0 through the device;
# toed, started with no address at all, takes the lease's address, prefix and router from toe0:
#  - the DHCP exchange crosses the device (steering gives the server's offers to the OS);
#  - the peer pings the leased address and gets one reply per request, from the engine;
#  - TCP echo (the device's, port 7) answers on the leased address.
# Usage: bash tests/net/test_follow_host_dhcp.sh BINDIR
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/transport_lib.sh"
net_init "$1" 90
tr_init
command -v dnsmasq >/dev/null || net_die "missing tool dnsmasq (run: make deps)"
command -v busybox >/dev/null || net_die "missing tool busybox (run: make deps)"
net_setup

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
out=$(peer timeout 10 "$NET_PY" -c '
import socket, sys
t = socket.create_connection((sys.argv[1], 7), timeout=5)
t.sendall(b"leased")
print(t.recv(100).decode())' "$L" 2>&1)
check_eq "TCP echo on the leased address" "$out" leased

check_toed_exit
check_ge "echo requests answered by the engine" "$(toed_counter steer.echo_engine)" 5
net_finish
