#!/usr/bin/env bash
# toe-nc (netcat over libtoe) through the device against the Linux kernel's own nc:
#  - TCP, active open through the device: `toe-nc -N` sends a file to a kernel `nc -l` in the peer
#    namespace; the peer receives every byte (SHA-256 equal) and both ends exit 0;
#  - TCP, passive open: a kernel `nc -N` sends a file to `toe-nc -l`, which writes it out intact;
#  - UDP both ways: toe-nc -u to a kernel `nc -u -l`, and a kernel `nc -u` to `toe-nc -u -l`
#    (datagrams of up to 8 KiB from toe-nc, paced; of 16 KiB from nc: fragmented on the wire, and
#    larger than one transport buffer on the way in);
#  - toe-nc's errors: a refused connect (status 1, one line), bad usage (status 2), no device;
#  - device loss: toed killed under a running toe-nc, which exits 1 within a second; attaching
#    then fails cleanly.
# The size of each TCP transfer is TOE_TEST_BIG MiB (default 256; the UDP transfers are 256 KiB).
# toe-nc runs in the device namespace beside toed, as the host's applications would.
# Usage: bash tests/net/test_transport_nc.sh BINDIR
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/transport_lib.sh"
# grepq PATTERN FILE: grep -q that is quiet while FILE does not exist yet.
grepq() { grep -q "$1" "$2" 2>/dev/null; }
BIG_MB=${TOE_TEST_BIG:-256}
UDP_KB=256
NET_REQUIRED_TOOLS="ip ping timeout nc sha256sum ss $NET_PY"
net_init "$1" 560
TOE_NC=$NET_BINDIR/toe-nc
CTL=$NET_TMP/toed.sock
[ -x "$TOE_NC" ] || net_die "no toe-nc at $TOE_NC (build first)"
# A transfer must take at most this long (each side runs under `timeout`).
XFER_LIMIT=$((60 + BIG_MB))

net_setup
# Room for a burst of fragmented datagrams in the peer's socket buffers.
net_sysctl "$NET_PEER_NS" net.core.rmem_default 4194304
net_sysctl "$NET_PEER_NS" net.core.rmem_max 4194304
start_toed_nopcap --ctl "$CTL"
wait_for 5 test -S "$CTL" || net_die "toed made no control socket at $CTL"

fsize() { stat -c %s "$1" 2>/dev/null || echo 0; }
# nc_sanitizer NAME FILE: a sanitizer report in a toe-nc stderr file is a failure.
nc_sanitizer() {
  if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' "$2" 2>/dev/null; then
    net_fail "$1: sanitizer report"
    grep -E -A5 'AddressSanitizer|LeakSanitizer|runtime error:' "$2" | head -20 | sed 's/^/#   /'
  fi
}
# rate BYTES MS: MiB/s
rate() { awk -v b="$1" -v ms="$2" 'BEGIN { if (ms < 1) ms = 1; printf "%.1f", b / 1048576 / (ms / 1000) }'; }

net_log "making ${BIG_MB} MiB of random data"
DATA=$NET_TMP/data.bin
head -c "$((BIG_MB * 1048576))" /dev/urandom >"$DATA" || net_die "cannot write $DATA"
DATA_SHA=$(sha "$DATA")
UDATA=$NET_TMP/udp.bin
head -c "$((UDP_KB * 1024))" /dev/urandom >"$UDATA"
UDATA_SHA=$(sha "$UDATA")

# ---- TCP, active open: toe-nc -> kernel nc -l ---------------------------------------------------
peer bash -c "exec timeout -k 2 $XFER_LIMIT nc -l $NET_PEER_ADDR 5001 </dev/null | sha256sum >$NET_TMP/peer_rx.sha" &
PEER_PID=$!
net_bg_add "$PEER_PID"
wait_for 5 peer_listening 5001 || net_fail "kernel nc -l did not listen on 5001"
t0=$(date +%s%N)
dev timeout -k 2 "$XFER_LIMIT" "$TOE_NC" --ctl "$CTL" -N "$NET_PEER_ADDR" 5001 <"$DATA" \
  >"$NET_TMP/nc1.out" 2>"$NET_TMP/nc1.err"
rc=$?
ms=$(ms_since "$t0")
check_eq "TCP active open: toe-nc -N exits 0" "$rc" 0
[ "$rc" = 0 ] || sed 's/^/#   toe-nc: /' "$NET_TMP/nc1.err"
wait_exit "$PEER_PID" 10000 || net_kill_pid "$PEER_PID"
check_eq "TCP active open: kernel nc -l got ${BIG_MB} MiB intact (SHA-256)" \
  "$(awk '{print $1}' "$NET_TMP/peer_rx.sha" 2>/dev/null)" "$DATA_SHA"
check_eq "TCP active open: toe-nc printed nothing" "$(fsize "$NET_TMP/nc1.out")" 0
nc_sanitizer "toe-nc (active)" "$NET_TMP/nc1.err"
net_log "toe-nc -> kernel: ${BIG_MB} MiB in ${ms} ms ($(rate $((BIG_MB * 1048576)) "$ms") MiB/s)"

# ---- TCP, passive open: kernel nc -> toe-nc -l -------------------------------------------------
dev bash -c "set -o pipefail; exec 2>$NET_TMP/nc2.err; timeout -k 2 $XFER_LIMIT \"$TOE_NC\" --ctl \"$CTL\" -v -l 5002 </dev/null | sha256sum >$NET_TMP/dev_rx.sha" &
DEV_PID=$!
net_bg_add "$DEV_PID"
wait_for 10 grepq '^Listening on' "$NET_TMP/nc2.err" || net_fail "toe-nc -l did not say it listens"
t0=$(date +%s%N)
peer timeout -k 2 "$XFER_LIMIT" nc -N "$NET_DEV_ADDR" 5002 <"$DATA" >"$NET_TMP/peer2.out" 2>&1
rc=$?
check_eq "TCP passive open: kernel nc -N exits 0" "$rc" 0
# Counted from the transfer's start, so the limit is the transfer's own (XFER_LIMIT, as for the
# two processes): a fixed 10 s here was a hidden rate bound (25.6 MiB/s for 256 MiB) that a loaded
# machine missed while toe-nc was still writing what it had received.
wait_exit "$DEV_PID" $((XFER_LIMIT * 1000)) "$t0"
ms=$WAIT_MS
check_eq "TCP passive open: toe-nc -l exits 0" "$WAIT_STATUS" 0
[ "$WAIT_STATUS" = 0 ] || sed 's/^/#   toe-nc: /' "$NET_TMP/nc2.err"
check_eq "TCP passive open: toe-nc -l got ${BIG_MB} MiB intact (SHA-256)" \
  "$(awk '{print $1}' "$NET_TMP/dev_rx.sha" 2>/dev/null)" "$DATA_SHA"
check "TCP passive open: toe-nc -v named the peer" \
  grep -q "^Connection received on $NET_PEER_ADDR " "$NET_TMP/nc2.err"
nc_sanitizer "toe-nc (passive)" "$NET_TMP/nc2.err"
[ "$ms" != timeout ] &&
  net_log "kernel -> toe-nc: ${BIG_MB} MiB in ${ms} ms ($(rate $((BIG_MB * 1048576)) "$ms") MiB/s)"

# ---- UDP: toe-nc -u -> kernel nc -u -l ---------------------------------------------------------
PEER_UDP=$NET_TMP/peer_udp.bin
# UDP promises no delivery: a receiver that falls behind loses datagrams at its socket buffer
# (UdpRcvbufErrors), and on a loaded machine kernel nc, descheduled for a few tens of ms, did (4
# of 32 datagrams with the default 208 KiB buffer, which holds about 14 fragmented 8 KiB ones).
# So the receiver gets room for the whole transfer (-I: SO_RCVBUF, which nc sets on UDP sockets
# too; the kernel doubles it, rmem_max allows it; rmem_default cannot be raised in a namespace):
# then the only way to lose data is the device or toe-nc, which is what this checks.
UDP_RCVBUF=$((4 * UDP_KB * 1024))
peer bash -c "exec timeout -k 2 60 nc -u -l -I $UDP_RCVBUF $NET_PEER_ADDR 5003 </dev/null >$PEER_UDP" &
PEER_PID=$!
net_bg_add "$PEER_PID"
wait_for 5 peer_listening 5003 udp || net_fail "kernel nc -u -l did not bind 5003"
# Paced (8 KiB every 10 ms) so that toe-nc reads, and sends, datagrams of up to 8 KiB.
for i in $(seq 0 $((UDP_KB / 8 - 1))); do
  dd if="$UDATA" bs=8192 skip="$i" count=1 2>/dev/null
  sleep 0.01
done | dev timeout -k 2 30 "$TOE_NC" --ctl "$CTL" -u -w 2 "$NET_PEER_ADDR" 5003 \
  >"$NET_TMP/nc3.out" 2>"$NET_TMP/nc3.err"
rc=${PIPESTATUS[1]}
check_eq "UDP: toe-nc -u -w 2 exits 0 (idle timeout)" "$rc" 0
[ "$rc" = 0 ] || sed 's/^/#   toe-nc: /' "$NET_TMP/nc3.err"
wait_for 5 test "$(fsize "$PEER_UDP")" -ge $((UDP_KB * 1024))
net_kill_pid "$PEER_PID"
check_eq "UDP: kernel nc -u -l got ${UDP_KB} KiB intact (datagrams of up to 8 KiB)" \
  "$(sha "$PEER_UDP")" "$UDATA_SHA"
# Had the peer's buffer overflowed anyway, its kernel counted it (the namespace's own counters).
check_eq "UDP: the peer's kernel dropped no datagram for want of buffer (UdpRcvbufErrors)" \
  "$(peer awk '/^Udp:/ { if (!h) { for (i = 1; i <= NF; i++) c[$i] = i; h = 1 } else print $c["RcvbufErrors"] }' /proc/net/snmp)" 0
nc_sanitizer "toe-nc -u" "$NET_TMP/nc3.err"

# ---- UDP: kernel nc -u -> toe-nc -u -l ---------------------------------------------------------
DEV_UDP=$NET_TMP/dev_udp.bin
dev bash -c "exec timeout -k 2 60 \"$TOE_NC\" --ctl \"$CTL\" -v -u -l -w 3 5004 </dev/null >$DEV_UDP 2>$NET_TMP/nc4.err" &
DEV_PID=$!
net_bg_add "$DEV_PID"
wait_for 10 grepq '^Listening on' "$NET_TMP/nc4.err" || net_fail "toe-nc -u -l did not say it listens"
peer timeout -k 2 20 nc -u -w 1 "$NET_DEV_ADDR" 5004 <"$UDATA" >/dev/null 2>&1
wait_exit "$DEV_PID" 10000
check_eq "UDP: toe-nc -u -l -w 3 exits 0 after the idle time" "$WAIT_STATUS" 0
check_eq "UDP: toe-nc -u -l got ${UDP_KB} KiB intact (16 KiB datagrams, in pieces)" \
  "$(sha "$DEV_UDP")" "$UDATA_SHA"
nc_sanitizer "toe-nc -u -l" "$NET_TMP/nc4.err"

# ---- errors ------------------------------------------------------------------------------------
out=$(dev timeout -k 2 20 "$TOE_NC" --ctl "$CTL" "$NET_PEER_ADDR" 5999 </dev/null 2>&1)
rc=$?
check_eq "refused connect: status 1" "$rc" 1
check "refused connect: one line naming the error ($out)" \
  bash -c '[ "$(wc -l <<<"$1")" = 1 ] && grep -q "Connection refused" <<<"$1"' _ "$out"
out=$(dev timeout 5 "$TOE_NC" --ctl "$CTL" -w x "$NET_PEER_ADDR" 1 </dev/null 2>&1)
check_eq "bad -w: status 2" "$?" 2
out=$(dev timeout 5 "$TOE_NC" --ctl "$CTL" "$NET_PEER_ADDR" </dev/null 2>&1)
check_eq "missing port: status 2 (usage)" "$?" 2
out=$(dev timeout 5 "$TOE_NC" --ctl "$NET_TMP/nothing.sock" "$NET_PEER_ADDR" 1 </dev/null 2>&1)
check_eq "no device socket: status 1" "$?" 1
check "no device socket: says so ($out)" grep -q "No such file" <<<"$out"
# TOE_CTL is the default --ctl.
out=$(dev env TOE_CTL="$CTL" timeout -k 2 20 "$TOE_NC" "$NET_PEER_ADDR" 5999 </dev/null 2>&1)
check "TOE_CTL names the device when --ctl is absent ($out)" grep -q "Connection refused" <<<"$out"

# ---- device loss -------------------------------------------------------------------------------
# A toe-nc in the middle of a connection (the peer reads nothing, stdin stays open) when toed dies:
# it must notice within a second and exit 1 with one line; attaching afterwards fails cleanly.
peer bash -c "exec timeout -k 2 60 nc -l $NET_PEER_ADDR 5005 </dev/null >/dev/null" &
PEER_PID=$!
net_bg_add "$PEER_PID"
wait_for 5 peer_listening 5005
mkfifo "$NET_TMP/stdin.fifo"
sleep 60 >"$NET_TMP/stdin.fifo" &
HOLD_PID=$!
net_bg_add "$HOLD_PID"
dev timeout -k 2 60 "$TOE_NC" --ctl "$CTL" -v "$NET_PEER_ADDR" 5005 <"$NET_TMP/stdin.fifo" \
  >/dev/null 2>"$NET_TMP/nc5.err" &
NC_PID=$!
net_bg_add "$NC_PID"
wait_for 10 grepq succeeded "$NET_TMP/nc5.err" || net_fail "toe-nc did not connect to 5005"
if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' "$NET_TOED_LOG"; then
  net_fail "sanitizer report in toed log"
fi
kill -KILL "$NET_TOED_PID" 2>/dev/null
wait "$NET_TOED_PID" 2>/dev/null
NET_TOED_PID=
t0=$(date +%s%N)
wait_exit "$NC_PID" 3000 "$t0"
check_range "device loss: toe-nc exits within a second (ms)" "$WAIT_MS" 0 1000
check_eq "device loss: toe-nc exit status" "$WAIT_STATUS" 1
check "device loss: toe-nc says so" grep -q "device lost" "$NET_TMP/nc5.err"
nc_sanitizer "toe-nc (device loss)" "$NET_TMP/nc5.err"
t0=$(date +%s%N)
out=$(dev timeout -k 2 10 "$TOE_NC" --ctl "$CTL" "$NET_PEER_ADDR" 5005 </dev/null 2>&1)
rc=$?
ms=$(ms_since "$t0")
check_eq "after device loss: attach fails with status 1" "$rc" 1
check "after device loss: a clean error ($out)" \
  grep -qE "Connection refused|No such file" <<<"$out"
check_range "after device loss: at once (ms)" "$ms" 0 2000
net_kill_pid "$HOLD_PID"
net_kill_pid "$PEER_PID"
net_finish
