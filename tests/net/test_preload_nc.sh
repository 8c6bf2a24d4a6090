#!/usr/bin/env bash
# libtoe-preload with unmodified netcat (netcat-openbsd) and python's http.server
# (docs/interception.md). Every preloaded program runs in the device namespace with TOE_STRICT=1,
# where the kernel has no address and no route: whatever reaches the peer went through the device.
#  - TCP, active open: preloaded `nc -N` sends a file to a kernel `nc -l` (SHA-256 equal);
#  - TCP, passive open: a kernel `nc -N` sends a file to a preloaded `nc -l 198.18.0.1 PORT` (an
#    address only the device has);
#  - TCP, both directions at once in one connection (preloaded nc and kernel nc each send a file);
#  - UDP both ways: preloaded `nc -u` to a kernel `nc -u -l`, and a kernel `nc -u` to a preloaded
#    `nc -u -l`;
#  - a preloaded `python3 -m http.server` (threads, blocking sockets) serves four kernel curls at
#    once from the peer, and then one more after they are done: every file intact;
#  - a refused connect gives nc's usual error.
# Usage: bash tests/net/test_preload_nc.sh BINDIR
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/transport_lib.sh"
source "$(dirname "$0")/preload_lib.sh"
grepq() { grep -q "$1" "$2" 2>/dev/null; }
NET_REQUIRED_TOOLS="ip ping timeout nc curl sha256sum ss $NET_PY"
net_init "$1" 400
tr_init
preload_init
SIZE_MB=${TOE_TEST_BIG:+64}
SIZE_MB=${SIZE_MB:-16}
UDP_KB=128


fsize() { stat -c %s "$1" 2>/dev/null || echo 0; }

net_setup
net_sysctl "$NET_PEER_NS" net.core.rmem_default 4194304
net_sysctl "$NET_PEER_NS" net.core.rmem_max 4194304
start_toed_nopcap --ctl "$CTL"
wait_for 5 test -S "$CTL" || net_die "toed made no control socket at $CTL"

DATA=$NET_TMP/data.bin
head -c "$((SIZE_MB * 1048576))" /dev/urandom >"$DATA" || net_die "cannot write $DATA"
DATA_SHA=$(sha "$DATA")
DATA2=$NET_TMP/data2.bin
head -c $((3 * 1048576 + 12345)) /dev/urandom >"$DATA2"
UDATA=$NET_TMP/udp.bin
head -c "$((UDP_KB * 1024))" /dev/urandom >"$UDATA"

# ---- TCP, active open: preloaded nc -> kernel nc -l --------------------------------------------
peer bash -c "exec timeout -k 2 120 nc -l $NET_PEER_ADDR 5001 </dev/null | sha256sum >$NET_TMP/p1.sha" &
PEER_PID=$!
net_bg_add "$PEER_PID"
wait_for 5 peer_listening 5001 || net_fail "kernel nc -l did not listen on 5001"
T0=$(date +%s%N)
dev timeout -k 2 120 "${PRE[@]}" nc -N "$NET_PEER_ADDR" 5001 <"$DATA" >"$NET_TMP/nc1.out" \
  2>"$NET_TMP/nc1.err"
check_eq "TCP active open: preloaded nc -N exits 0" "$?" 0
net_log "preloaded nc -> kernel: ${SIZE_MB} MiB in $(ms_since "$T0") ms"
wait_exit "$PEER_PID" 10000 || net_kill_pid "$PEER_PID"
check_eq "TCP active open: kernel nc -l got ${SIZE_MB} MiB intact" \
  "$(awk '{print $1}' "$NET_TMP/p1.sha" 2>/dev/null)" "$DATA_SHA"
check_eq "TCP active open: nc said nothing" "$(fsize "$NET_TMP/nc1.err")" 0

# ---- TCP, passive open: kernel nc -> preloaded nc -l ---------------------------------------------
dev bash -c "set -o pipefail; exec 2>$NET_TMP/nc2.err; timeout -k 2 120 ${PRE[*]} nc -n -v -l $NET_DEV_ADDR 5002 </dev/null | sha256sum >$NET_TMP/d2.sha" &
DEV_PID=$!
net_bg_add "$DEV_PID"
wait_for 10 grepq '^Listening on' "$NET_TMP/nc2.err" || net_fail "preloaded nc -l did not listen"
T0=$(date +%s%N)
peer timeout -k 2 120 nc -N "$NET_DEV_ADDR" 5002 <"$DATA" >/dev/null 2>"$NET_TMP/p2.err"
check_eq "TCP passive open: kernel nc -N exits 0" "$?" 0
wait_exit "$DEV_PID" 10000 "$T0"
check_eq "TCP passive open: preloaded nc -l exits 0" "$WAIT_STATUS" 0
net_log "kernel -> preloaded nc -l: ${SIZE_MB} MiB in $WAIT_MS ms"
check_eq "TCP passive open: preloaded nc -l got ${SIZE_MB} MiB intact" \
  "$(awk '{print $1}' "$NET_TMP/d2.sha" 2>/dev/null)" "$DATA_SHA"
check "TCP passive open: nc -v named the peer" grep -q "Connection received on $NET_PEER_ADDR" \
  "$NET_TMP/nc2.err"

# ---- TCP, both directions at once -------------------------------------------------------------------
peer bash -c "exec timeout -k 2 120 nc -N -l $NET_PEER_ADDR 5003 <$DATA2 >$NET_TMP/p3.out" &
PEER_PID=$!
net_bg_add "$PEER_PID"
wait_for 5 peer_listening 5003 || net_fail "kernel nc -l did not listen on 5003"
dev timeout -k 2 120 "${PRE[@]}" nc -N "$NET_PEER_ADDR" 5003 <"$DATA" >"$NET_TMP/d3.out" \
  2>"$NET_TMP/nc3.err"
check_eq "TCP both ways: preloaded nc exits 0" "$?" 0
wait_exit "$PEER_PID" 10000 || net_kill_pid "$PEER_PID"
check_eq "TCP both ways: the kernel got ${SIZE_MB} MiB intact" "$(sha "$NET_TMP/p3.out")" "$DATA_SHA"
check_eq "TCP both ways: the preloaded nc got 3 MiB intact" "$(sha "$NET_TMP/d3.out")" "$(sha "$DATA2")"

# ---- UDP: preloaded nc -u -> kernel nc -u -l ---------------------------------------------------------
peer bash -c "exec timeout -k 2 60 nc -u -l $NET_PEER_ADDR 5004 </dev/null >$NET_TMP/p4.out" &
PEER_PID=$!
net_bg_add "$PEER_PID"
wait_for 5 peer_listening 5004 udp || net_fail "kernel nc -u -l did not bind 5004"
# Paced datagrams of 4 KiB (nc sends what one read of stdin gives).
for i in $(seq 0 $((UDP_KB / 4 - 1))); do
  dd if="$UDATA" bs=4096 skip="$i" count=1 2>/dev/null
  sleep 0.01
done | dev timeout -k 2 30 "${PRE[@]}" nc -u -q 1 "$NET_PEER_ADDR" 5004 >/dev/null 2>"$NET_TMP/nc4.err"
RC=${PIPESTATUS[1]}
check_eq "UDP: preloaded nc -u exits 0" "$RC" 0
wait_for 5 test "$(fsize "$NET_TMP/p4.out")" -ge $((UDP_KB * 1024))
net_kill_pid "$PEER_PID"
check_eq "UDP: kernel nc -u -l got ${UDP_KB} KiB intact" "$(sha "$NET_TMP/p4.out")" "$(sha "$UDATA")"

# ---- UDP: kernel nc -u -> preloaded nc -u -l ---------------------------------------------------------
dev_bg "${PRE[@]}" nc -n -v -u -l "$NET_DEV_ADDR" 5005 </dev/null >"$NET_TMP/d5.out" 2>"$NET_TMP/nc5.err"
DEV_PID=$BG_PID
wait_for 10 grepq '^Bound on' "$NET_TMP/nc5.err" || net_fail "preloaded nc -u -l did not bind"
for i in $(seq 0 $((UDP_KB / 4 - 1))); do
  dd if="$UDATA" bs=4096 skip="$i" count=1 2>/dev/null
  sleep 0.01
done | peer timeout -k 2 30 nc -u -q 1 "$NET_DEV_ADDR" 5005 >/dev/null 2>&1
wait_for 5 test "$(fsize "$NET_TMP/d5.out")" -ge $((UDP_KB * 1024))
net_kill_pid "$DEV_PID"
check_eq "UDP: preloaded nc -u -l got ${UDP_KB} KiB intact" "$(sha "$NET_TMP/d5.out")" "$(sha "$UDATA")"
check "UDP: nc -v named the sender" grep -q "^Connection received on $NET_PEER_ADDR" "$NET_TMP/nc5.err"

# ---- a refused connect -----------------------------------------------------------------------------
dev timeout -k 2 20 "${PRE[@]}" nc -v "$NET_PEER_ADDR" 5999 </dev/null >/dev/null 2>"$NET_TMP/nc6.err"
check_eq "refused connect: nc exits 1" "$?" 1
check "refused connect: nc says 'Connection refused'" grep -q 'Connection refused' "$NET_TMP/nc6.err"

# ---- python http.server, preloaded, serving kernel curls ----------------------------------------------
WWW=$NET_TMP/www
mkdir -p "$WWW"
cp "$DATA" "$WWW/data.bin"
cp "$DATA2" "$WWW/small.bin"
dev_bg "${PRE[@]}" "$NET_PY" -m http.server 8081 --bind "$NET_DEV_ADDR" --directory "$WWW" \
  >"$NET_TMP/httpd.log" 2>&1 </dev/null
HTTPD_PID=$BG_PID
up() { peer curl -s -m 2 -o /dev/null "http://$NET_DEV_ADDR:8081/small.bin"; }
wait_for 15 up || net_fail "preloaded http.server does not answer"
pids=()
for i in 1 2 3 4; do
  peer timeout -k 2 120 curl -sS --fail -o "$NET_TMP/h$i.bin" "http://$NET_DEV_ADDR:8081/data.bin" \
    2>"$NET_TMP/h$i.err" &
  pids+=($!)
done
ok=0
for i in 1 2 3 4; do
  wait "${pids[$((i - 1))]}" && [ "$(sha "$NET_TMP/h$i.bin")" = "$DATA_SHA" ] && ok=$((ok + 1))
done
check_eq "http.server: four concurrent kernel curls got ${SIZE_MB} MiB intact" "$ok" 4
peer timeout -k 2 60 curl -sS --fail -o "$NET_TMP/h5.bin" "http://$NET_DEV_ADDR:8081/small.bin" \
  2>"$NET_TMP/h5.err"
check_eq "http.server: one more curl afterwards" "$(sha "$NET_TMP/h5.bin")" "$(sha "$DATA2")"
check "http.server: the library said nothing" bash -c "! grep -q '^toe-preload' $NET_TMP/httpd.log"
toectl_json "$NET_TMP/flows.json" flows
check_eq "toectl flows: http.server's listener is on the device" \
  "$(flow_get "$NET_TMP/flows.json" "$HTTPD_PID" tcp state)" LISTEN
net_kill_pid "$HTTPD_PID"

for f in "$NET_TMP"/nc*.err "$NET_TMP/httpd.log"; do no_sanitizer "$(basename "$f")" "$f"; done
check_toed_exit
net_finish
