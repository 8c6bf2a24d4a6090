#!/usr/bin/env bash
# System calls per request of a preloaded redis-server (docs/interception.md, "Readiness"):
# redis-server runs under the library in the device namespace under `strace -f -c` (every thread,
# the pump included); a kernel redis-benchmark in the peer sends N requests over one connection
# (-c 1, GET). Prints strace's table and the calls per request. Counts, not times: valid on a
# loaded machine. Then the same for a blocking client: a preloaded `sockperf ping-pong --tcp`
# (blocking recv, 3 s) against a kernel sockperf server in the peer, per message exchanged. Then
# a client waiting in poll(): a preloaded Python loop against a kernel TCP echo, per request.
# Usage: bash bench/preload_syscalls.sh BINDIR [N]
source "$(dirname "$0")/../tests/net/lib.sh"
source "$(dirname "$0")/../tests/net/transport_lib.sh"
source "$(dirname "$0")/../tests/net/preload_lib.sh"
NET_REQUIRED_TOOLS="ip timeout ss strace redis-server redis-benchmark redis-cli sockperf"
net_init "$1" 240
tr_init
preload_init
N=${2:-20000}
PORT=6379
net_setup
start_toed_nopcap --ctl "$CTL"
wait_for 5 test -S "$CTL" || net_die "toed made no control socket at $CTL"
mkdir -p "$NET_TMP/r"
dev_bg strace -f -c -o "$NET_TMP/strace.txt" "${PRE[@]}" redis-server --port "$PORT" \
  --bind "$NET_DEV_ADDR" --save '' --appendonly no --protected-mode no --daemonize no \
  --dir "$NET_TMP/r" --logfile "$NET_TMP/r/redis.log" </dev/null >"$NET_TMP/r/stdout" 2>&1
SPID=$BG_PID
up() { ip netns exec "$NET_PEER_NS" redis-cli -h "$NET_DEV_ADDR" -p "$PORT" ping 2>/dev/null | grep -q PONG; }
wait_for 30 up || net_die "preloaded redis-server does not answer"
peer timeout -k 2 200 redis-benchmark -h "$NET_DEV_ADDR" -p "$PORT" -c 1 -n "$N" -t get --csv \
  >"$NET_TMP/bench.csv" 2>&1
check_eq "redis-benchmark exit status" "$?" 0
# redis-server (strace's child, started here) ends on SIGTERM; strace writes its table then.
RPID=$(pgrep -P "$SPID" -x redis-server)
[ -n "$RPID" ] && kill -TERM "$RPID"
wait "$SPID" 2>/dev/null
cat "$NET_TMP/strace.txt"
awk -v n="$N" '$NF == "total" { printf "# system calls per request: %.2f (%d calls, %d requests)\n", $(NF-2)/n, $(NF-2), n }' \
  "$NET_TMP/strace.txt"

# ---- sockperf: blocking calls --------------------------------------------------------------------
peer_bg timeout -k 2 60 sockperf server --tcp -i "$NET_PEER_ADDR" -p 11111 >"$NET_TMP/ss.log" 2>&1 </dev/null
wait_for 10 peer_listening 11111 tcp || net_die "kernel sockperf server not up"
ip netns exec "$NET_DEV_NS" timeout -k 2 40 strace -f -c -o "$NET_TMP/strace2.txt" "${PRE[@]}" \
  sockperf ping-pong --tcp -i "$NET_PEER_ADDR" -p 11111 -t 3 -m 64 >"$NET_TMP/sc.log" 2>&1 </dev/null
check_eq "sockperf ping-pong exit status" "$?" 0
cat "$NET_TMP/strace2.txt"
msgs=$(sed 's/\x1b\[[0-9;]*m//g' "$NET_TMP/sc.log" | sed -n 's/.*\[Total Run\].*ReceivedMessages=\([0-9]*\).*/\1/p')
awk -v n="${msgs:-0}" '$NF == "total" && n > 0 { printf "# system calls per message: %.2f (%d calls, %d messages)\n", $(NF-2)/n, $(NF-2), n }' \
  "$NET_TMP/strace2.txt"

# ---- poll: a client waiting in poll() ----------------------------------------------------------
# A preloaded Python client waits in poll() for each echo of N/4 32-byte requests from the peer's
# TCP echo (tests/net/peer_servers.py), per request.
peer_bg timeout -k 2 100 "$NET_PY" "$(dirname "$0")/../tests/net/peer_servers.py" "$NET_PEER_ADDR" \
  7500 7501 >"$NET_TMP/servers.log" 2>&1 </dev/null
wait_for 10 peer_listening 7501 || net_die "the peer's echo server did not start"
cat >"$NET_TMP/pollc.py" <<'PY'
import select, socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
s.setblocking(False)
p = select.poll()
p.register(s, select.POLLIN)
for i in range(int(sys.argv[3])):
    s.send(b"x" * 32)
    got = 0
    while got < 32:
        p.poll(5000)
        got += len(s.recv(64))
print("done")
PY
NP=$((N / 4))
out=$(ip netns exec "$NET_DEV_NS" timeout -k 2 60 strace -f -c -o "$NET_TMP/strace3.txt" "${PRE[@]}" \
  "$NET_PY" "$NET_TMP/pollc.py" "$NET_PEER_ADDR" 7500 "$NP" 2>"$NET_TMP/pollc.err" </dev/null)
check_eq "poll client" "$out" done
cat "$NET_TMP/strace3.txt"
awk -v n="$NP" '$NF == "total" { printf "# poll client: system calls per request: %.2f (%d calls, %d requests)\n", $(NF-2)/n, $(NF-2), n }' \
  "$NET_TMP/strace3.txt"
net_finish
