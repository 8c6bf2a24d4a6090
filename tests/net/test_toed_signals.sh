#!/usr/bin/env bash
# What toed leaves behind (issue 12, items 10 and 11): nothing, whatever signal stops it, and what
# a crash leaves, `toed --cleanup IFNAME` removes.
#  - SIGHUP (the terminal closed), SIGQUIT, SIGUSR2, SIGALRM and a real-time signal each stop toed
#    cleanly: exit 0, its nftables guard table gone, the reserved-port range gone (the
#    namespace's own reserved port 1234 kept), the control socket file gone; SIGUSR1 logs the
#    counters and toed runs on;
#  - after SIGKILL the table, the range and the socket file stay; `toed --cleanup wire0` refuses
#    while a live toed owns the port, and removes all three after a crash;
#  - a toed started after a crash does not take the crashed one's range for "the original": when
#    it stops, the range goes;
#  - two toeds with --host-if in one namespace: the first to stop leaves the other's reservation;
#    the last one removes it;
#  - a zombie toed (killed, its parent never reaps it) owns nothing: a new toed takes the port.
# Usage: bash tests/net/test_toed_signals.sh BINDIR
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/transport_lib.sh" # wait_for
net_init "$1" 150
net_setup
TABLE=toed_$NET_DEV_IF
CTL=$NET_TMP/toed.sock
RANGE=49152-65535
ADMIN_PORT=1234
net_sysctl "$NET_DEV_NS" net.ipv4.ip_local_reserved_ports "$ADMIN_PORT" ||
  net_die "cannot set ip_local_reserved_ports in the device namespace"

reserved() { dev cat /proc/sys/net/ipv4/ip_local_reserved_ports; }
has_table() { dev nft list table netdev "$TABLE" >/dev/null 2>&1; }
# left STEP: checks that toed left nothing (table, range, socket file).
left_nothing() {
  check "$1: no guard table left" bash -c "! ip netns exec $NET_DEV_NS nft list table netdev $TABLE >/dev/null 2>&1"
  check_eq "$1: reserved ports back to the namespace's own" "$(reserved)" "$ADMIN_PORT"
  check "$1: no control socket file left" test ! -e "$CTL"
}
# start_hif: toed with a host interface (so it reserves the range) and a control socket.
start_hif() { start_toed --host-if toe0 --ctl "$CTL"; }
# stop_by SIG: sends SIG to toed and waits for it (10 s); sets NET_TOED_STATUS.
stop_by() {
  local pid=$NET_TOED_PID _
  kill -"$1" "$pid"
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    NET_TOED_STATUS=hung
    stop_toed
  else
    wait "$pid"
    NET_TOED_STATUS=$?
    NET_TOED_PID=
  fi
}
wait_for_log() { wait_for "$1" grep -q "$2" "$NET_TOED_LOG"; }
no_sanitizer() {
  check "$1: no sanitizer report" bash -c "! grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' $NET_TOED_LOG"
}

# ---- item 10: every terminating signal cleans up; SIGUSR1 dumps the counters ------------------
start_hif
check "toed installed its guard table" has_table
check "toed reserved $RANGE" grep -q "$RANGE" <<<"$(reserved)"
check "toed made its control socket" test -S "$CTL"
kill -USR1 "$NET_TOED_PID"
check "SIGUSR1: counters logged" wait_for_log 5 'counters after'
check "SIGUSR1: toed keeps running" kill -0 "$NET_TOED_PID"
check "SIGUSR1: toed still answers ping" peer ping -c 1 -W 2 -q "$NET_DEV_ADDR"
for sig in HUP QUIT USR2 ALRM RTMIN+2; do
  [ "$sig" = HUP ] || start_hif
  stop_by "$sig"
  check_eq "SIG$sig: toed exits 0" "$NET_TOED_STATUS" 0
  check "SIG$sig: the summary says why it stopped" grep -q "stopped on SIG$sig" "$NET_TOED_LOG"
  left_nothing "SIG$sig"
  no_sanitizer "SIG$sig"
done

# ---- item 10: toed --cleanup after SIGKILL -----------------------------------------------------
start_hif
dev "$NET_TOED" --cleanup "$NET_DEV_IF" >"$NET_TMP/cleanup_live.out" 2>&1
check_eq "--cleanup refuses while toed runs: status" "$?" 1
check "--cleanup says toed is running" grep -q "is running" "$NET_TMP/cleanup_live.out"
check "--cleanup left the live toed's table" has_table
kill -KILL "$NET_TOED_PID"
wait "$NET_TOED_PID" 2>/dev/null
NET_TOED_PID=
check "SIGKILL leaves the table (the crash case)" has_table
check "SIGKILL leaves the range" grep -q "$RANGE" <<<"$(reserved)"
check "SIGKILL leaves the socket file" test -S "$CTL"
dev "$NET_TOED" --cleanup "$NET_DEV_IF" >"$NET_TMP/cleanup.out" 2>&1
check_eq "--cleanup after the crash: status" "$?" 0
sed 's/^/#   /' "$NET_TMP/cleanup.out"
left_nothing "--cleanup"
check "after --cleanup the kernel has the port again (no guard)" \
  bash -c "! ip netns exec $NET_DEV_NS nft list tables | grep -q $TABLE"

# ---- item 11: a crash's range is not "the original" --------------------------------------------
start_hif
kill -KILL "$NET_TOED_PID"
wait "$NET_TOED_PID" 2>/dev/null
NET_TOED_PID=
start_hif
check "a toed after a crash starts" kill -0 "$NET_TOED_PID"
stop_by TERM
check_eq "... and exits 0" "$NET_TOED_STATUS" 0
left_nothing "after a crash and a clean run"

# ---- item 11: two toeds with --host-if in one namespace ---------------------------------------
# The second port: a veth pair inside the device namespace (no traffic crosses it).
dev ip link add wire1 type veth peer name wire1p || net_die "second veth pair"
dev ip link set wire1p up
start_hif
A=$NET_TOED_PID
ip netns exec "$NET_DEV_NS" "$NET_TOED" --wire wire1 --addr 198.18.1.1/24 --mac 02:74:6f:65:00:02 --host-if toe1 \
  --ctl "$NET_TMP/b.sock" >"$NET_TMP/toed_b.log" 2>&1 </dev/null &
B=$!
net_bg_add "$B"
wait_for_file() {
  local _
  for _ in $(seq 100); do
    [ -S "$1" ] && return 0
    sleep 0.1
  done
  return 1
}
check "second toed (wire1, toe1) starts" wait_for_file "$NET_TMP/b.sock"
stop_by TERM
check_eq "first toed exits 0" "$NET_TOED_STATUS" 0
check "the first to stop leaves the second's reservation ($RANGE)" grep -q "$RANGE" <<<"$(reserved)"
kill -TERM "$B"
wait "$B"
check_eq "second toed exits 0" "$?" 0
check_eq "the last to stop removes the range" "$(reserved)" "$ADMIN_PORT"

# ---- item 11: a zombie toed is not a live owner ------------------------------------------------
# toed's parent execs sleep, which never reaps it: killed, toed stays a zombie.
ip netns exec "$NET_DEV_NS" bash -c "'$NET_TOED' --wire $NET_DEV_IF --addr $NET_DEV_ADDR/$NET_PREFIX \
  --mac $NET_DEV_MAC --ctl '$NET_TMP/z.sock' >'$NET_TMP/toed_z.log' 2>&1 </dev/null &
  echo \$! >'$NET_TMP/z.pid'; exec sleep 60" &
ZPARENT=$!
net_bg_add "$ZPARENT"
check "toed under a non-reaping parent starts" wait_for_file "$NET_TMP/z.sock"
Z=$(cat "$NET_TMP/z.pid")
kill -KILL "$Z"
wait_zombie() { [ "$(awk '{print $3}' "/proc/$Z/stat" 2>/dev/null)" = Z ]; }
check "the killed toed is a zombie" wait_for 5 wait_zombie
start_toed --ctl "$CTL"
check "a new toed takes the port from the zombie's table" kill -0 "$NET_TOED_PID"
check "... its table is in place" has_table
check_toed_exit
kill "$ZPARENT" 2>/dev/null

net_finish
