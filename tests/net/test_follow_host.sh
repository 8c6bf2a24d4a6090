#!/usr/bin/env bash
# toed --host-if toe0 --follow-host (docs/coexistence.md "Addresses that follow the OS"): no
# --addr; the device takes the OS's IPv4 address on toe0, live, through rtnetlink. The peer is the
# Linux kernel in its namespace.
#  - toe0 gets 198.18.0.1/24 (--host-addr): the device answers ping there (the engine's echo, not
#    the OS's) and serves TCP echo on 7;
#  - ip addr del on toe0: a TCP connection the peer holds to the device's port 7 is reset (the
#    peer's kernel reports ECONNRESET), and the old address goes silent;
#  - ip addr add 198.18.0.9/24: the device answers ping and TCP echo there;
#  - ip route add default via 198.18.0.254 dev toe0: the device takes the gateway.
# Usage: bash tests/net/test_follow_host.sh BINDIR
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/transport_lib.sh"
net_init "$1" 90
tr_init
net_setup
D=$NET_DEV_ADDR
D2=198.18.0.9
GW=198.18.0.254

# No --addr: the address comes from toe0 (given to it by --host-addr here, by DHCP in the field).
NET_TOED_LOG=$NET_TMP/toed.log
ip netns exec "$NET_DEV_NS" "$NET_TOED" --wire "$NET_DEV_IF" --mac "$NET_DEV_MAC" --ctl "$CTL" \
  --host-if toe0 --host-addr "$D/$NET_PREFIX" --follow-host --service echo:7 \
  >"$NET_TOED_LOG" 2>&1 </dev/null &
NET_TOED_PID=$!
wait_toed_ready 10
check "toed took toe0's address" grep -q -- "--follow-host: address $D/$NET_PREFIX" "$NET_TOED_LOG"

ping_received() { sed -n 's/.* \([0-9]\+\) received.*/\1/p' | head -1; }
out=$(peer ping -c 3 -i 0.2 -W 2 "$D" 2>&1)
check_eq "ping $D: replies" "$(ping_received <<<"$out")" 3

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
' "$D" >"$NET_TMP/conn.out" 2>&1 &
CONN_PID=$!
net_bg_add "$CONN_PID"
wait_for 10 grep -q '^echo' "$NET_TMP/conn.out" || net_fail "no echo on the held connection"
check_eq "held connection echoes" "$(kv echo "$(cat "$NET_TMP/conn.out")")" hello

dev ip addr del "$D/$NET_PREFIX" dev toe0 || net_fail "ip addr del"
wait_for 10 grep -q '^end' "$NET_TMP/conn.out"
check_eq "the peer's connection is reset when the address goes" \
  "$(kv end "$(cat "$NET_TMP/conn.out")")" reset
out=$(peer ping -c 1 -W 1 "$D" 2>&1)
check_eq "the old address $D is silent" "$(ping_received <<<"$out")" 0

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

dev ip route add default via "$GW" dev toe0 || net_fail "ip route add default"
wait_for 10 grep -q -- "gateway $GW" "$NET_TOED_LOG"
check "toed took the default gateway" grep -q -- "--follow-host: address $D2/$NET_PREFIX, gateway $GW" "$NET_TOED_LOG"

check_toed_exit
check_ge "echo requests answered by the engine" "$(toed_counter steer.echo_engine)" 6
check_ge "the OS's ARP replies for the followed address dropped" \
  "$(toed_counter host_if.drop_arp_reply)" 1
net_finish
