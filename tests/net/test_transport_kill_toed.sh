#!/usr/bin/env bash
# Device death: kill -9 of toed in the middle of transfers, then a restart.
#
#   bash tests/net/test_transport_kill_toed.sh BINDIR      (root; toed, toectl, toe-nc)
#
# Two host clients (toe-nc in the device namespace) move data through the device to kernel nc's
# in the peer namespace, one sending and one receiving. toed is killed with SIGKILL. Checks
# (docs/transport.md "Death", include/toe/toe.h "DEVICE LOSS"):
#   - each client reports the device's loss (the control socket's hang-up) and exits non-zero:
#     nothing hangs;
#   - while toed is down, a new attach fails at once with an error message and a non-zero status
#     (toe-nc, and toectl), again and again;
#   - toed restarted on the same control socket serves new clients: toectl works, and a toe-nc
#     transfer to the kernel peer arrives intact.
set -u
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/transport_lib.sh"

NET_REQUIRED_TOOLS="ip ping nc ss timeout sha256sum $NET_PY"
net_init "${1:-}" 100
tr_init
tr_need "$TOE_NC"
PS=5301 # the sender's peer
PR=5302 # the receiver's peer
PN=5303 # after the restart

net_setup
tr_start_toed

peer_bg timeout -k 2 60 nc -l "$PS" >/dev/null 2>/dev/null </dev/null
peer_bg timeout -k 2 60 nc -l "$PR" </dev/zero >/dev/null 2>/dev/null
wait_for 5 peer_listening "$PS" || net_fail "kernel nc listening on $PS"
wait_for 5 peer_listening "$PR" || net_fail "kernel nc listening on $PR"

dev_bg "$TOE_NC" "$NET_PEER_ADDR" "$PS" </dev/zero >/dev/null 2>"$NET_TMP/snd.err"
SND=$BG_PID
dev_bg "$TOE_NC" "$NET_PEER_ADDR" "$PR" </dev/null >/dev/null 2>"$NET_TMP/rcv.err"
RCV=$BG_PID

F=$NET_TMP/flows.json
transfers_running() {
  toectl_json "$F" flows || return 1
  local s r
  s=$(flow_get "$F" "$SND" tcp tx_bytes)
  r=$(flow_get "$F" "$RCV" tcp rx_bytes)
  [[ "$s$r" =~ ^[0-9]+$ ]] && ((s > 1000000 && r > 1000000))
}
if wait_for 15 transfers_running; then
  net_ok "two transfers running through the device (>1 MB each way)"
else
  net_fail "two transfers running through the device"
  sed 's/^/#   /' "$NET_TMP/snd.err" "$NET_TMP/rcv.err"
fi

# ---- kill -9 toed ------------------------------------------------------------------------------

T0=$(date +%s%N)
kill -KILL "$NET_TOED_PID"
wait "$NET_TOED_PID" 2>/dev/null
NET_TOED_PID=

for x in SND:sender RCV:receiver; do
  var=${x%%:*}
  name=${x#*:}
  pid=${!var}
  err=$NET_TMP/$(tr 'A-Z' 'a-z' <<<"$var").err
  if wait_exit "$pid" 5000 "$T0"; then
    # The hang-up of the control socket is the signal (no timer in libtoe): the client's line
    # must name the device's loss, and how long it took is printed, not judged (a loaded
    # machine delays the wake-up; the 5 s above is the hang detector).
    net_ok "the $name (toe-nc) exited ${WAIT_MS} ms after toed's death"
    if grep -q "device lost" "$err"; then
      net_ok "the $name saw the device's loss (not a timeout of its own)"
    else
      net_fail "the $name did not report the device's loss: $(head -1 "$err")"
    fi
    check_ge "the $name exits non-zero (status $WAIT_STATUS)" "$WAIT_STATUS" 1
  else
    net_fail "the $name (toe-nc) still runs 5 s after toed's death"
  fi
  if [ -s "$err" ]; then
    net_ok "the $name says why: $(head -1 "$err")"
  else
    net_fail "the $name printed no error message"
  fi
done

# ---- attach while the device is down ---------------------------------------------------------------

for i in 1 2; do
  t=$(date +%s%N)
  dev timeout -k 1 5 "$TOE_NC" "$NET_PEER_ADDR" "$PN" </dev/null >/dev/null 2>"$NET_TMP/down.err"
  rc=$?
  ms=$(ms_since "$t")
  check_eq "toe-nc while toed is down ($i): exit 1" "$rc" 1
  check_range "toe-nc while toed is down ($i): fails at once (ms)" "$ms" 0 2000
  if [ -s "$NET_TMP/down.err" ]; then
    net_ok "toe-nc while toed is down ($i): $(head -1 "$NET_TMP/down.err")"
  else
    net_fail "toe-nc while toed is down ($i): no error message"
  fi
done
t=$(date +%s%N)
dev timeout -k 1 5 "$TOECTL" --ctl "$CTL" status >/dev/null 2>"$NET_TMP/down.err"
rc=$?
check_eq "toectl while toed is down: exit 1" "$rc" 1
check_range "toectl while toed is down: fails at once (ms)" "$(ms_since "$t")" 0 2000
check "toectl while toed is down: a message" grep -q "cannot attach to $CTL" "$NET_TMP/down.err"

# ---- restart --------------------------------------------------------------------------------------

# The port guard of the killed toed may still be in place and its socket file still there: the new
# toed must cope with both.
NET_QUIET=1
tr_start_toed
NET_QUIET=0
toectl_run status >"$NET_TMP/status.txt"
check_eq "toectl after the restart: exit 0" "$?" 0
check "toectl after the restart: one client (itself)" grep -qE '^clients +1 attached' \
  "$NET_TMP/status.txt"

peer_bg timeout -k 2 30 nc -l "$PN" >"$NET_TMP/recv.bin" 2>/dev/null </dev/null
PEER_N=$BG_PID
wait_for 5 peer_listening "$PN" || net_fail "kernel nc listening on $PN"
head -c 3000000 /dev/urandom >"$NET_TMP/send.bin"
dev timeout -k 2 30 "$TOE_NC" -N "$NET_PEER_ADDR" "$PN" <"$NET_TMP/send.bin" >/dev/null \
  2>"$NET_TMP/after.err"
check_eq "toe-nc after the restart: exit 0" "$?" 0
wait_exit "$PEER_N" 10000
check_eq "the kernel peer got every byte (3 MB, SHA-256)" \
  "$(sha256sum <"$NET_TMP/recv.bin" | cut -d' ' -f1)" "$(sha256sum <"$NET_TMP/send.bin" | cut -d' ' -f1)"

check_toed_exit
net_finish
