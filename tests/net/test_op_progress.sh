#!/usr/bin/env bash
# libtoe's limit on a control call bounds the device's silence, not the call (include/toe/toe.h
# "Control calls"; issue 12 item 17: at load 20 a setsockopt behind a slow transfer gave
# ETIMEDOUT). tests/net/op_progress.c attaches with op_timeout_ms 1000, connects to a kernel peer
# that reads 32 KiB/s, and fills its 16 send buffers of 8 KiB until the device holds them all:
#  - a setsockopt the device keeps behind those sends (what changes a socket stays in order; a
#    getsockopt is answered at once) waits about
#    4 s, as the peer reads: it succeeds, after longer than the 1 s limit, because the device kept
#    completing sends meanwhile;
#  - with toed stopped (SIGSTOP), a getsockopt fails with ETIMEDOUT after the limit (at least
#    1000 ms, and well before the 4 s a restarted limit would allow twice over);
#  - toed, continued, still serves the session and exits cleanly.
# About 10 s.
# Usage: bash tests/net/test_op_progress.sh BINDIR
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/transport_lib.sh"
NET_REQUIRED_TOOLS="ip timeout ss $NET_PY"
net_init "$1" 120
tr_init
PROG=$NET_BINDIR/op_progress
tr_need "$PROG"
PORT=7310
RATE=32768 # bytes/s the peer reads: 128 KiB held in the device take about 4 s
LIMIT_MS=1000

net_setup
tr_start_toed

# The slow reader: a small receive buffer (the window stays small), then 4 KiB every 1/8 s.
peer_bg timeout -k 2 60 "$NET_PY" -c '
import socket, sys, time
rate = int(sys.argv[2])
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
l.bind(("0.0.0.0", int(sys.argv[1])))
l.listen(1)
c, _ = l.accept()
t0, got = time.monotonic(), 0
while True:
    b = c.recv(4096)
    if not b:
        break
    got += len(b)
    ahead = got / rate - (time.monotonic() - t0)
    if ahead > 0:
        time.sleep(ahead)
print("read", got)
' "$PORT" "$RATE" >"$NET_TMP/peer.out" 2>"$NET_TMP/peer.err" </dev/null
PEER=$BG_PID
wait_for 5 peer_listening "$PORT" || net_die "the peer's reader did not listen"

GO=$NET_TMP/go
STOPPED=$NET_TMP/stopped
dev_bg timeout -k 2 60 "$PROG" "$CTL" "$NET_PEER_ADDR" "$PORT" "$LIMIT_MS" "$GO" "$STOPPED" \
  >"$NET_TMP/prog.out" 2>"$NET_TMP/prog.err" </dev/null
CLIENT=$BG_PID
# Phase 2: once the client says so, stop toed, let the client's call run into the limit, go on.
wait_for 40 test -e "$GO" || net_fail "the client never reached the silent phase"
if [ -e "$GO" ]; then
  kill -STOP "$NET_TOED_PID"
  touch "$STOPPED"
  wait_for 10 grep -q '^silent_ms ' "$NET_TMP/prog.out"
  kill -CONT "$NET_TOED_PID"
fi
wait_exit "$CLIENT" 20000
check_eq "op_progress: exit status" "$WAIT_STATUS" 0
[ "$WAIT_STATUS" = 0 ] || sed 's/^/#   stderr: /' "$NET_TMP/prog.err" | head -10
out=$(cat "$NET_TMP/prog.out")
net_log "client: $(tr '\n' ' ' <<<"$out")"
check_eq "a setsockopt behind held sends succeeds while the device takes data" \
  "$(kv busy_rc "$out")" 0
check_ge "... after waiting longer than the ${LIMIT_MS} ms limit (the case the rule is for)" \
  "$(num "$(kv busy_ms "$out")")" $((LIMIT_MS + 1))
check_eq "with toed stopped, a getsockopt fails with ETIMEDOUT" "$(kv silent_rc "$out")" -110
check_range "... after the limit of device silence (ms)" "$(num "$(kv silent_ms "$out")")" \
  "$LIMIT_MS" $((3 * LIMIT_MS))

# toed continued: it still answers, and stops cleanly.
check "toed answers after SIGCONT" peer ping -c 1 -W 2 -q "$NET_DEV_ADDR"
net_kill_pid "$PEER"
check_toed_exit
net_finish
