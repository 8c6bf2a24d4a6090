#!/usr/bin/env bash
# toed under descriptor exhaustion and unfair clients (issue 12, items 4 and 5).
#  - toed raises its own RLIMIT_NOFILE to what its tables need: started with a soft limit of 128
#    and --host-if (4096 shadow sockets), its soft limit is at least 4096 + the sessions';
#  - out of descriptors (its limit lowered from outside to what it holds), clients waiting in the
#    control socket's backlog do not make toed spin: sampled over 3 s it is runnable at most a
#    fifth of the time (a level-triggered listener it cannot accept from keeps it runnable all the
#    time), and it counts the back-offs; once descriptors are back, a new client (root's toectl) gets a session.
#  - fair shares of the device-wide tables (members of --ctl-group nogroup, not root): a uid gets
#    at most a quarter of the UDP table (its next socket: -EMFILE), four uids together cannot take
#    the reserve (the fourth gets -ENOBUFS), root still opens sockets; a uid's second session gets
#    no TCP socket once its first holds its quarter, and the device's TCP echo service still
#    accepts a peer's connection; a uid gets a quarter of the share tokens; a uid gets half of
#    --max-clients sessions and root still gets one; `toectl status` shows the limits.
# Usage: bash tests/net/test_device_limits.sh BINDIR
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/transport_lib.sh"
net_init "$1" 150
command -v prlimit >/dev/null || net_die "missing tool prlimit (util-linux)"
command -v setpriv >/dev/null || net_die "missing tool setpriv (util-linux)"
net_setup
tr_init
DC=$NET_BINDIR/device_client
tr_need "$DC"
# The socket lives where the group's members can reach it (the temp dir is 0700).
mkdir -p "$NET_TMP/ctl"
chmod 0711 "$NET_TMP"
chmod 0755 "$NET_TMP/ctl"
CTL=$NET_TMP/ctl/toed.sock
export TOE_CTL=$CTL

# toed under prlimit (which execs it: the pid is toed's), with a host interface.
NET_TOED_LOG=$NET_TMP/toed.log
ip netns exec "$NET_DEV_NS" prlimit --nofile=128:"$(ulimit -Hn)" "$NET_TOED" --wire "$NET_DEV_IF" \
  --addr "$NET_DEV_ADDR/$NET_PREFIX" --mac "$NET_DEV_MAC" --ctl "$CTL" --host-if toe0 \
  --ctl-group nogroup --max-clients 8 --service echo:7 >"$NET_TOED_LOG" 2>&1 </dev/null &
NET_TOED_PID=$!
wait_toed_ready 10
for _ in $(seq 50); do
  [ -S "$CTL" ] && break
  sleep 0.1
done
soft=$(awk '/^Max open files/ {print $4}' "/proc/$NET_TOED_PID/limits")
net_log "toed's RLIMIT_NOFILE soft limit: $soft (started with 128)"
check_ge "4: toed raised its descriptor limit for its tables" "$soft" $((4096 + 3 * 8))

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

# ---- 5: fair shares ---------------------------------------------------------------------------
mkfifo "$NET_TMP/hold"
exec 8<>"$NET_TMP/hold" # holders read it until the test ends (never written)
# hold NAME UID ARGS...: device_client ARGS as UID (group nogroup: a member of the socket's
# group) in the background, holding what it got.
hold() {
  local name=$1 uid=$2
  shift 2
  dev_bg setpriv --reuid "$uid" --regid nogroup --clear-groups "$DC" "$@" <"$NET_TMP/hold" >"$NET_TMP/$name.out" 2>&1
  wait_for 20 grep -qE "^(error|attach -)" "$NET_TMP/$name.out" || net_fail "$name: no answer"
}
val() { awk -v k="$2" '$1 == k {print $2; exit}' "$NET_TMP/$1.out"; }
udp_share=$(stat_now transport.limit_udp_per_uid)
net_log "per-uid shares: udp $udp_share, tcp $(stat_now transport.limit_tcp_per_uid), tokens $(stat_now transport.limit_tokens_per_uid), sessions $(stat_now transport.limit_sessions_per_uid)"
hold k1 12348 shares "$CTL" 100
check_eq "5: a uid gets a quarter of the share tokens (-EMFILE after)" \
  "$(val k1 shared) $(val k1 error)" "64 -24"
hold u1 65534 socks "$CTL" udp 1000
check_eq "5: a uid gets a quarter of the UDP table" "$(val u1 opened)" 256
check_eq "5: ... its next socket: -EMFILE" "$(val u1 error)" -24
hold u2 12345 socks "$CTL" udp 1000
hold u3 12346 socks "$CTL" udp 1000
hold u4 12347 socks "$CTL" udp 1000
net_log "UDP sockets of four uids: $(val u1 opened) $(val u2 opened) $(val u3 opened) $(val u4 opened)"
check_eq "5: the fourth uid stops at the reserve: -ENOBUFS" "$(val u4 error)" -105
check_range "5: ... having got what was left above it" "$(val u4 opened)" 1 255
out=$(dev timeout -k 2 20 "$DC" socks "$CTL" udp 20 </dev/null)
check_eq "5: root still opens UDP sockets" "$(kv opened "$out") $(kv error "$out")" "20 0"
out=$(peer_py 20 udp_tool.py echo --port 7 --count 5 --max 100 --timeout 1 --retries 3 2>&1)
check_eq "5: the device's UDP echo still answers" "$(awk '$1 == "ok" {print $2}' <<<"$out")" 5

hold t1 65534 socks "$CTL" tcp 5000
hold t2 65534 socks "$CTL" tcp 5000
net_log "TCP sockets of one uid's two sessions: $(val t1 opened) $(val t2 opened) ($(val t2 error))"
check_eq "5: a uid's second session gets no TCP socket once the first holds its quarter" \
  "$(val t2 opened) $(val t2 error)" "0 -24"
out=$(peer_py 20 tcp_tool.py echo "$NET_DEV_ADDR" 7 --bytes 1000 --timeout 10 2>&1)
check_eq "5: the device's TCP echo service still accepts and echoes" \
  "$(kv received "$out")/$(kv recv_error "$out")" "1000/none"

check "5: toectl status shows the limits" bash -c "ip netns exec $NET_DEV_NS $TOECTL --ctl $CTL status | grep -q '^limits .*per user: 4096 tcp, 256 udp sockets, 64 share tokens, 4 sessions'"
# Sessions: 6 held now (u1-u4, t1, t2 ... k1 is the 7th) of --max-clients 8; free them first.
for p in "${NET_PIDS[@]}"; do
  [ "$p" != "$NET_TOED_PID" ] && kill "$p" 2>/dev/null
done
wait_for 10 bash -c "[ \"\$(ip netns exec $NET_DEV_NS $TOECTL --ctl $CTL stats --json | $NET_PY -c 'import json,sys; print(json.load(sys.stdin)[\"counters\"][\"transport\"][\"clients_attached\"])')\" = 1 ]" ||
  net_fail "the holders' sessions did not end"
out=$(dev timeout -k 2 20 setpriv --reuid 65534 --regid nogroup --clear-groups "$DC" socks "$CTL" udp 1000 </dev/null)
check_eq "5: once its sessions ended, the uid has its whole share again (nothing leaked)" \
  "$(kv opened "$out") $(kv error "$out")" "256 -24"
for i in 1 2 3 4 5; do hold s$i 65534 socks "$CTL" udp 1; done
check_eq "5: a uid gets half of --max-clients 8 sessions" \
  "$(val s1 attach) $(val s2 attach) $(val s3 attach) $(val s4 attach)" "0 0 0 0"
check_eq "5: ... its fifth is refused (-EMFILE)" "$(grep -h '^attach' "$NET_TMP/s5.out")" "attach -24"
check "5: root's toectl still gets a session" toectl_run status

check "toed still answers ping" peer ping -c 2 -i 0.2 -W 2 -q "$NET_DEV_ADDR"
check_toed_exit
check_ge "4: toed counted the back-offs (transport.accept_backoffs)" \
  "$(toed_counter transport.accept_backoffs)" 1

net_finish
