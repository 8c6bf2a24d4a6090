#!/usr/bin/env bash
# What an unprivileged member of the control socket's group must not be able to do to toed
# (issue 12, items 2, 3 and 6). The member is `nobody` in group `nogroup`, which owns the socket.
#
#  - descriptors passed with empty messages (SCM_RIGHTS on a zero-length SOCK_SEQPACKET message,
#    and more of them than toed's control buffer holds): 200 such connections leave toed's
#    descriptor count where it was, and root's toectl still gets a session;
#  - ports below the namespace's net.ipv4.ip_unprivileged_port_start: the member's bind (and a
#    connect from such a source port) is refused with EACCES, as the kernel refuses it; a port
#    above it works; root may bind the privileged port;
#  - the proxy origin and owner tags: the member cannot claim them (its flows show as native),
#    root can;
#  - STATS ENGINE: the member reads the device's traffic counters and the transport's gauges, not
#    the transport's record of what other clients did; root reads everything.
#
# Usage: bash tests/net/test_device_abuse.sh BINDIR
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/transport_lib.sh"
net_init "$1" 150
command -v setpriv >/dev/null || net_die "missing tool setpriv (util-linux)"
getent group nogroup >/dev/null || net_die "no group nogroup"
net_setup
tr_init

# The socket lives where other users can reach it (the temp dir is 0700).
CTLDIR=$NET_TMP/ctl
mkdir -p "$CTLDIR"
chmod 0711 "$NET_TMP"
chmod 0755 "$CTLDIR"
CTL=$CTLDIR/toed.sock
export TOE_CTL=$CTL
start_toed --service echo:7 --ctl "$CTL" --ctl-group nogroup
for _ in $(seq 50); do
  [ -S "$CTL" ] && break
  sleep 0.1
done
[ -S "$CTL" ] || net_die "toed made no control socket at $CTL"
MEMBER=(setpriv --reuid nobody --regid nogroup --clear-groups)
toed_fds() { ls "/proc/$NET_TOED_PID/fd" 2>/dev/null | wc -l; }

# ---- 2: descriptors passed with empty messages ------------------------------------------------
cat >"$NET_TMP/passfds.py" <<'EOF'
import os, socket, sys, time
path, conns = sys.argv[1], int(sys.argv[2])
fds = [os.open("/dev/null", os.O_RDONLY) for _ in range(64)]
sent = 0
for i in range(conns):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(path)
    # Odd connections: 3 descriptors (fit toed's buffer); even ones: 64 (more than fit).
    n = 3 if i % 2 else 64
    s.sendmsg([], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, bytes(memoryview(__import__("array").array("i", fds[:n]))))])
    sent += n
    # Wait for toed to end the connection (it reads the message, then hangs up).
    s.settimeout(5)
    try:
        s.recv(64)
    except OSError:
        pass
    s.close()
print("connections", conns)
print("fds_sent", sent)
EOF
before=$(toed_fds)
dev timeout -k 2 60 "${MEMBER[@]}" "$NET_PY" "$NET_TMP/passfds.py" "$CTL" 200 \
  >"$NET_TMP/passfds.out" 2>"$NET_TMP/passfds.err"
check_eq "2: a group member made 200 connections passing descriptors with empty messages" \
  "$(awk '$1 == "connections" {print $2}' "$NET_TMP/passfds.out")" 200
after=$(toed_fds)
net_log "toed's descriptors: $before before, $after after"
check_range "2: toed's descriptor count stays flat" "$after" 0 $((before + 2))
check "2: root's toectl still gets a session" toectl_run status

# ---- 3: privileged ports ---------------------------------------------------------------------
unpriv_start=$(dev cat /proc/sys/net/ipv4/ip_unprivileged_port_start)
net_log "net.ipv4.ip_unprivileged_port_start in the device namespace: $unpriv_start"
PRIV_PORT=$((unpriv_start > 22 ? 22 : unpriv_start - 1))
# What the kernel says to the same user, for comparison.
kernel_err=$(dev "${MEMBER[@]}" "$NET_PY" -c '
import socket, sys
s = socket.socket()
try:
    s.bind(("127.0.0.1", int(sys.argv[1]))); print("ok")
except OSError as e:
    print(e.errno)' "$PRIV_PORT")
check_eq "3: the kernel refuses the member port $PRIV_PORT (EACCES)" "$kernel_err" 13

DC=$NET_BINDIR/device_client
tr_need "$DC"
dc() { dev timeout -k 2 20 "$@" 2>>"$NET_TMP/dc.err"; }
out=$(dc "${MEMBER[@]}" "$DC" bind "$CTL" tcp "$PRIV_PORT")
check_eq "3: toed refuses the member a TCP listen on port $PRIV_PORT (-EACCES)" "$(kv bind "$out")" -13
out=$(dc "${MEMBER[@]}" "$DC" bind "$CTL" udp "$((unpriv_start - 1))")
check_eq "3: ... and a UDP bind on port $((unpriv_start - 1)) (-EACCES)" "$(kv bind "$out")" -13
peer_bg "$NET_PY" -c '
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 8099)); s.listen(8)
while True: s.accept()[0].close()' >/dev/null 2>&1
wait_for 5 peer_listening 8099 || net_fail "the peer's listener did not start"
out=$(dc "${MEMBER[@]}" "$DC" connect-from "$CTL" 1000 "$NET_PEER_ADDR" 8099)
check_eq "3: ... and a connection from source port 1000 (-EACCES)" "$(kv bind "$out")" -13
out=$(dc "${MEMBER[@]}" "$DC" bind "$CTL" tcp "$unpriv_start")
check_eq "3: the member may listen on port $unpriv_start" "$(kv bind "$out")" 0
out=$(dc "$DC" bind "$CTL" tcp "$PRIV_PORT")
check_eq "3: root may listen on port $PRIV_PORT" "$(kv bind "$out")" 0
out=$(dc setpriv --reuid nobody --regid nogroup --clear-groups --inh-caps +net_bind_service \
  --ambient-caps +net_bind_service "$DC" bind "$CTL" tcp "$PRIV_PORT")
check_eq "3: so may the member with CAP_NET_BIND_SERVICE" "$(kv bind "$out")" 0
out=$(dc "$DC" connect-from "$CTL" 1000 "$NET_PEER_ADDR" 8099)
check_eq "3: root may connect from source port 1000" "$(kv connect "$out")" 0

# ---- 6: the proxy origin ----------------------------------------------------------------------
out=$(dc "${MEMBER[@]}" "$DC" origin "$CTL" proxy)
check_eq "6: the member cannot claim the proxy origin (-EPERM)" "$(kv attach "$out")" -1
out=$(dc "${MEMBER[@]}" "$DC" origin "$CTL" native)
check_eq "6: a native member session cannot tag its flows (-EPERM)" "$(kv owner "$out")" -1
out=$(dc "$DC" origin "$CTL" proxy)
check_eq "6: root may claim the proxy origin" "$(kv attach "$out")" 0
check_eq "6: ... and tag its flows" "$(kv owner "$out")" 0

# ---- 9: who reads which counters (STATS ENGINE) ------------------------------------------------
HC=$NET_BINDIR/hostile_client
tr_need "$HC"
dev timeout -k 2 20 "${MEMBER[@]}" "$HC" stats "$CTL" >"$NET_TMP/stats_member.out" 2>&1
dev timeout -k 2 20 "$HC" stats "$CTL" >"$NET_TMP/stats_root.out" 2>&1
check_ge "9: a member reads the device's traffic counters (link.rx_frames)" \
  "$(awk '$1 == "link.rx_frames" {print $2}' "$NET_TMP/stats_member.out")" 1
check_ge "9: ... and the transport's gauges (transport.clients_attached)" \
  "$(awk '$1 == "transport.clients_attached" {print $2}' "$NET_TMP/stats_member.out")" 1
check_eq "9: ... not what other clients did (no transport.hello_refused line)" \
  "$(grep -c '^transport.hello_refused ' "$NET_TMP/stats_member.out")" 0
check_eq "9: ... nor their bytes (no transport.rx_bytes line)" \
  "$(grep -c '^transport.rx_bytes ' "$NET_TMP/stats_member.out")" 0
check_ge "9: root reads every counter (transport.hello_refused)" \
  "$(awk '$1 == "transport.hello_refused" {print $2}' "$NET_TMP/stats_root.out")" 1

check "toed still answers ping" peer ping -c 2 -i 0.2 -W 2 -q "$NET_DEV_ADDR"
check_toed_exit
net_finish
