#!/usr/bin/env bash
# toed under descriptor exhaustion (issue 12, item 4).
#  - toed raises its own RLIMIT_NOFILE to what its tables need: started with a soft limit of 128
#    and --host-if (4096 shadow sockets), its soft limit is at least 4096 + the sessions';
#  - out of descriptors (its limit lowered from outside to what it holds), clients waiting in the
#    control socket's backlog do not make toed spin: sampled over 3 s it is runnable at most a
#    fifth of the time (a level-triggered listener it cannot accept from keeps it runnable all the
#    time), and it counts the back-offs; once descriptors are back, a new client (root's toectl) gets a session.
# Usage: bash tests/net/test_device_limits.sh BINDIR
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/transport_lib.sh"
net_init "$1" 120
command -v prlimit >/dev/null || net_die "missing tool prlimit (util-linux)"
net_setup
tr_init

# toed under prlimit (which execs it: the pid is toed's), with a host interface.
NET_TOED_LOG=$NET_TMP/toed.log
ip netns exec "$NET_DEV_NS" prlimit --nofile=128:"$(ulimit -Hn)" "$NET_TOED" --wire "$NET_DEV_IF" \
  --addr "$NET_DEV_ADDR/$NET_PREFIX" --mac "$NET_DEV_MAC" --ctl "$CTL" --host-if toe0 \
  --service echo:7 >"$NET_TOED_LOG" 2>&1 </dev/null &
NET_TOED_PID=$!
wait_toed_ready 10
for _ in $(seq 50); do
  [ -S "$CTL" ] && break
  sleep 0.1
done
soft=$(awk '/^Max open files/ {print $4}' "/proc/$NET_TOED_PID/limits")
net_log "toed's RLIMIT_NOFILE soft limit: $soft (started with 128)"
check_ge "4: toed raised its descriptor limit for its tables" "$soft" $((4096 + 3 * 64))

# ---- out of descriptors -----------------------------------------------------------------------
# The lowest free descriptor number becomes the limit: every new descriptor fails with EMFILE.
lowfree=$(ls "/proc/$NET_TOED_PID/fd" | sort -n | awk 'BEGIN {n = 0} $1 == n {n++} END {print n}')
prlimit --pid "$NET_TOED_PID" --nofile="$lowfree":"$(ulimit -Hn)" || net_die "prlimit --pid"
net_log "toed's descriptor limit set to $lowfree (its lowest free descriptor number)"
cat >"$NET_TMP/hold.py" <<'EOF'
import socket, sys, time
socks = []
for _ in range(40):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(sys.argv[1])
    socks.append(s)
print("connected", len(socks), flush=True)
time.sleep(float(sys.argv[2]))
EOF
cpu_ticks() { awk '{print $14 + $15}' "/proc/$NET_TOED_PID/stat"; }
dev_bg "$NET_PY" "$NET_TMP/hold.py" "$CTL" 6 >"$NET_TMP/hold.out" 2>&1 </dev/null
HOLD=$BG_PID
wait_for 5 grep -q connected "$NET_TMP/hold.out" || net_fail "the clients did not connect"
sleep 0.5
# Whether toed is runnable (R) or asleep, sampled 60 times over 3 s: a loop spinning on a listener
# it cannot accept from is always runnable, however loaded the machine is (CPU time would be
# shared out by the load); one that backs off sleeps but for a moment every 100 ms.
t0=$(cpu_ticks)
running=0
for _ in $(seq 60); do
  [ "$(awk '{print $3}' "/proc/$NET_TOED_PID/stat")" = R ] && running=$((running + 1))
  sleep 0.05
done
t1=$(cpu_ticks)
net_log "toed while it cannot accept: runnable in $running of 60 samples, $((t1 - t0)) CPU ticks in ~3 s"
check_range "4: toed does not spin on a listener it cannot accept from (runnable samples)" "$running" 0 12
prlimit --pid "$NET_TOED_PID" --nofile="$(ulimit -Hn)":"$(ulimit -Hn)" || net_fail "prlimit --pid (restore)"
kill "$HOLD" 2>/dev/null
wait "$HOLD" 2>/dev/null
check "4: with descriptors back, root's toectl gets a session" wait_for 5 toectl_run status
check "toed still answers ping" peer ping -c 2 -i 0.2 -W 2 -q "$NET_DEV_ADDR"
check_toed_exit
check_ge "4: toed counted the back-offs (transport.accept_backoffs)" \
  "$(toed_counter transport.accept_backoffs)" 1

net_finish
