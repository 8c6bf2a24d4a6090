#!/usr/bin/env bash
# toe-proxyd beside others (issue 12, items 7, 12 and the proxy's half of 4).
#  - ip rule preferences with the most rules a list holds, all of them '*' (two lines each): every
#    exclusion comes before every inclusion, every inclusion before the end rule the exclusions
#    jump to, all inside the documented range;
#  - a second toe-proxyd beside a live one refuses to start (exit 1, naming the live one's pid)
#    and leaves the live one's table and rules alone; the live one still carries flows;
#  - an ip rule of someone else's in the proxy's preference range, or a foreign route in its
#    routing table: the proxy refuses to start (exit 1, naming the rule) and leaves it in place;
#    what it installs is tagged (protocol 116, the table's owner comment) and at exit it removes
#    exactly that: a foreign rule added beside it while it runs stays;
#  - flow limits: with --max-flows-per-uid 3, a user's fourth and fifth TCP flows are reset and
#    counted, its first three carry data; root's flow still goes through; 200 UDP flows (distinct
#    source ports, hashed lookup) each get their own echo back;
#  - out of descriptors (its limit lowered from outside), applications waiting in the listener's
#    backlog do not make the proxy spin (sampled: it is mostly asleep) and it counts the back-offs.
# Usage: bash tests/net/test_proxy_guard.sh BINDIR
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/transport_lib.sh"
NET_REQUIRED_TOOLS="ip ping timeout nft setpriv prlimit $NET_PY"
net_init "$1" 150
tr_init
PROXYD=$NET_BINDIR/toe-proxyd
[ -x "$PROXYD" ] || net_die "no toe-proxyd at $PROXYD (build first)"
PREF=10000
TPORT=9000
UPORT=7777

# ---- 7: preferences never overlap -------------------------------------------------------------
args=()
for i in $(seq 0 63); do args+=(--exclude "*:198.19.$i.0/24:*"); done
for i in $(seq 0 63); do args+=(--include "*:198.18.$i.0/24:*"); done
"$PROXYD" --dry-run "${args[@]}" >"$NET_TMP/dry64.txt" 2>&1
check_eq "7: --dry-run with 64 '*' includes and 64 '*' excludes: exit 0" "$?" 0
read -r exc_max inc_min inc_max nop goto_bad < <(awk '
  /^ip rule add pref/ {
    p = $5
    if ($0 ~ / goto /) { if (p > em) em = p; for (i = 1; i <= NF; i++) if ($i == "goto") g[$(i+1)] = 1 }
    else if ($0 ~ / lookup / && $0 !~ /fwmark/) { if (im == "" || p < im) im = p; if (p > ix) ix = p }
    else if ($0 ~ / nop/) nop = p
  }
  END { bad = 0; for (t in g) if (t != nop) bad++; print em, im, ix, nop, bad }' "$NET_TMP/dry64.txt")
net_log "exclusions up to $exc_max, inclusions $inc_min..$inc_max, end rule $nop"
check "7: every exclusion before every inclusion" test "$exc_max" -lt "$inc_min"
check "7: every inclusion before the end rule" test "$inc_max" -lt "$nop"
check_eq "7: every exclusion jumps to the end rule" "$goto_bad" 0
# (goto: the 128 exclusions and the replies' bypass; lookup: the 128 inclusions and the fwmark rule)
check_eq "7: 128 exclusion and 128 inclusion lines" \
  "$(grep -c ' goto ' "$NET_TMP/dry64.txt") $(grep -c ' lookup 7399 protocol' "$NET_TMP/dry64.txt")" "129 129"
check "7: all inside the range the proxy removes (usage: N..N+258)" test "$nop" -le $((PREF + 258))

net_setup
rules_in_range() { dev ip -4 rule show | awk -F: -v lo=$PREF -v hi=$((PREF + 258)) '$1 >= lo && $1 <= hi' | wc -l; }
RULES=(--include "tcp:198.18.0.0/15:$TPORT" --include "udp:198.18.0.0/15:$UPORT")

tr_start_toed
# A TCP echo server in the peer (a thread per connection, echoes until the client's FIN).
peer_bg timeout -k 2 140 "$NET_PY" -c '
import socket, sys, threading
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((sys.argv[1], int(sys.argv[2]))); srv.listen(64)
def serve(c):
    try:
        while True:
            d = c.recv(65536)
            if not d: break
            c.sendall(d)
    except OSError:
        pass
    c.close()
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()' "$NET_PEER_ADDR" "$TPORT" \
  >"$NET_TMP/tcpsrv.log" 2>&1 </dev/null
peer_bg timeout -k 2 140 "$NET_PY" "$NET_LIB_DIR/proxy_udp.py" server "$NET_PEER_ADDR" "$UPORT" \
  >"$NET_TMP/udpecho.log" 2>&1 </dev/null
wait_for 10 peer_listening "$TPORT" || net_die "proxy_tcp.py did not listen on $TPORT"
wait_for 10 peer_listening "$UPORT" udp || net_die "the UDP echo did not listen on $UPORT"

# proxy_start NAME ARGS...: toe-proxyd in the background; waits for its "intercepting" line.
proxy_start() {
  local name=$1
  shift
  PROXY_LOG=$NET_TMP/proxyd.$name.log
  dev_bg "$PROXYD" --ctl "$CTL" "$@" 2>"$PROXY_LOG" </dev/null
  PROXY_PID=$BG_PID
  wait_for 10 grep -q 'intercepting' "$PROXY_LOG" || {
    sed 's/^/#   /' "$PROXY_LOG"
    net_die "toe-proxyd did not start"
  }
}
proxy_stop() {
  kill -TERM "$PROXY_PID"
  wait_exit "$PROXY_PID" 10000 || net_fail "toe-proxyd did not stop"
}
# tcp_echo: one TCP exchange to the peer's server through the proxy (kernel socket, as root).
tcp_echo() {
  dev timeout -k 2 10 "$NET_PY" -c '
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
s.sendall(b"ping-through-proxy\n"); s.shutdown(socket.SHUT_WR)
d = b""
while True:
    b = s.recv(4096)
    if not b: break
    d += b
print("ok" if b"ping-through-proxy" in d else "bad")' "$NET_PEER_ADDR" "$TPORT" 2>/dev/null
}
tcp_echo_ok() { [ "$(tcp_echo)" = ok ]; }

# ---- 12: a second proxy beside a live one ------------------------------------------------------
proxy_start a "${RULES[@]}"
A=$PROXY_PID
A_LOG=$PROXY_LOG
before=$(rules_in_range)
dev timeout -k 2 10 "$PROXYD" --ctl "$CTL" "${RULES[@]}" >"$NET_TMP/second.out" 2>&1 </dev/null
check_eq "12: a second toe-proxyd beside a live one: exit 1" "$?" 1
check "12: ... it names the live one" grep -q "toe-proxyd (pid $A) is running here already" "$NET_TMP/second.out"
check "12: ... the live one's table is still there" dev nft list table inet toe_proxyd
check_eq "12: ... and its ip rules" "$(rules_in_range)" "$before"
check_eq "12: ... and it still carries flows" "$(tcp_echo)" ok

# A foreign rule added beside the running proxy, inside its range: it must survive the proxy's exit.
dev ip rule add pref $((PREF + 200)) from 198.18.99.1 lookup main || net_fail "cannot add a foreign rule"
proxy_stop
check_eq "12: exit 0" "$WAIT_STATUS" 0
check "12: its table is gone" bash -c "! ip netns exec $NET_DEV_NS nft list table inet toe_proxyd >/dev/null 2>&1"
check_eq "12: its rules are gone, the foreign one stays" "$(rules_in_range)" 1
check "12: the foreign rule is the one left" bash -c "ip netns exec $NET_DEV_NS ip rule show | grep -q '^$((PREF + 200)):.*198.18.99.1'"

# ---- 12: refuse to start over foreign rules -----------------------------------------------------
dev timeout -k 2 10 "$PROXYD" --ctl "$CTL" "${RULES[@]}" >"$NET_TMP/foreign.out" 2>&1 </dev/null
check_eq "12: over a foreign rule in its range: exit 1" "$?" 1
check "12: ... naming the rule and what to do" grep -q "ip rule '$((PREF + 200)): from 198.18.99.1.*choose another --pref" "$NET_TMP/foreign.out"
check "12: ... the foreign rule is still there" bash -c "ip netns exec $NET_DEV_NS ip rule show | grep -q '^$((PREF + 200)):'"
check "12: ... and nothing was installed" bash -c "! ip netns exec $NET_DEV_NS nft list table inet toe_proxyd >/dev/null 2>&1"
dev ip rule del pref $((PREF + 200))
dev ip route add unreachable 198.18.77.0/24 table 7399
dev timeout -k 2 10 "$PROXYD" --ctl "$CTL" "${RULES[@]}" >"$NET_TMP/foreign_route.out" 2>&1 </dev/null
check_eq "12: over a foreign route in its routing table: exit 1" "$?" 1
check "12: ... naming the table" grep -q "routing table 7399 holds a route that is not toe-proxyd's" "$NET_TMP/foreign_route.out"
check "12: ... the route is still there" bash -c "ip netns exec $NET_DEV_NS ip route show table 7399 | grep -q 198.18.77.0"
dev ip route del unreachable 198.18.77.0/24 table 7399

# ---- 12: a crashed proxy's leftovers are its own: removed at the next start ---------------------
proxy_start b "${RULES[@]}"
kill -KILL "$PROXY_PID"
wait "$PROXY_PID" 2>/dev/null
check "12: after kill -9 its table stays" dev nft list table inet toe_proxyd
proxy_start c "${RULES[@]}" --max-flows-per-uid 3
check "12: the next start removes the dead one's rules (says so)" \
  grep -q 'removed the interception rules an earlier toe-proxyd left' "$PROXY_LOG"

# ---- 7: flow limits ---------------------------------------------------------------------------
cat >"$NET_TMP/flows.py" <<'EOF'
import socket, sys, time
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
socks, ok, reset = [], 0, 0
for i in range(n):
    # A refused flow's reset may come before connect() returns (the kernel completed the
    # handshake, but this thread ran after the proxy's reset arrived): then connect() fails.
    try:
        socks.append(socket.create_connection((host, port), timeout=5))
    except ConnectionResetError:
        socks.append(None)
    time.sleep(0.2)  # the proxy accepts (or refuses) one at a time
for s in socks:
    if s is None:
        reset += 1
        continue
    try:
        s.sendall(b"hello-limit\n")
        s.settimeout(5)
        d = s.recv(4096)
        if b"hello-limit" in d:
            ok += 1
        else:
            reset += 1
    except OSError:
        reset += 1
print("ok", ok)
print("refused", reset)
EOF
chmod 0711 "$NET_TMP"
chmod 0644 "$NET_TMP/flows.py"
out=$(dev timeout -k 2 40 setpriv --reuid nobody --regid nogroup --clear-groups \
  "$NET_PY" "$NET_TMP/flows.py" "$NET_PEER_ADDR" "$TPORT" 5 2>&1)
net_log "a user's 5 flows with --max-flows-per-uid 3: $(tr '\n' ' ' <<<"$out")"
check_eq "7: the user's first 3 flows carry data" "$(kv ok "$out")" 3
check_eq "7: its 4th and 5th are refused (reset)" "$(kv refused "$out")" 2
check_eq "7: root's flow still goes through" "$(tcp_echo)" ok
cat >"$NET_TMP/udpflows.py" <<'EOF'
import socket, sys
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
socks = []
for i in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(3)
    s.connect((host, port))
    socks.append(s)
ok = 0
for i, s in enumerate(socks):
    msg = b"flow-%d" % i
    for attempt in range(3):
        s.send(msg)
        try:
            if s.recv(2048) == msg:
                ok += 1
                break
        except OSError:
            pass
print("ok", ok)
EOF
out=$(dev timeout -k 2 60 "$NET_PY" "$NET_TMP/udpflows.py" "$NET_PEER_ADDR" "$UPORT" 200 2>&1)
check_eq "7: 200 UDP flows (root's), each its own echo" "$(kv ok "$out")" 200

# ---- 4: the proxy out of descriptors ------------------------------------------------------------
lowfree=$(ls "/proc/$PROXY_PID/fd" | sort -n | awk 'BEGIN {n = 0} $1 == n {n++} END {print n}')
prlimit --pid "$PROXY_PID" --nofile="$lowfree":"$(ulimit -Hn)" || net_fail "prlimit --pid"
cat >"$NET_TMP/pending.py" <<'EOF'
import socket, sys, time
socks = []
for _ in range(4):
    s = socket.socket()
    s.setblocking(False)
    try:
        s.connect((sys.argv[1], int(sys.argv[2])))
    except BlockingIOError:
        pass
    socks.append(s)
print("connecting", flush=True)
time.sleep(float(sys.argv[3]))
EOF
dev_bg "$NET_PY" "$NET_TMP/pending.py" "$NET_PEER_ADDR" "$TPORT" 6 >"$NET_TMP/pending.out" 2>&1 </dev/null
PEND=$BG_PID
wait_for 5 grep -q connecting "$NET_TMP/pending.out" || net_fail "the pending clients did not start"
sleep 0.5
running=0
for _ in $(seq 60); do
  [ "$(awk '{print $3}' "/proc/$PROXY_PID/stat")" = R ] && running=$((running + 1))
  sleep 0.05
done
net_log "toe-proxyd out of descriptors: runnable in $running of 60 samples"
check_range "4: toe-proxyd does not spin on a listener it cannot accept from" "$running" 0 12
prlimit --pid "$PROXY_PID" --nofile="$(ulimit -Hn)":"$(ulimit -Hn)" || net_fail "prlimit --pid (restore)"
kill "$PEND" 2>/dev/null
wait "$PEND" 2>/dev/null
check "4: with descriptors back, flows go through again" wait_for 5 tcp_echo_ok

kill -USR1 "$PROXY_PID"
wait_for 5 grep -q 'counters (SIGUSR1)' "$PROXY_LOG"
ctr() { grep 'counters (SIGUSR1)' "$PROXY_LOG" | tail -1 | grep -o " $1=[0-9]*" | cut -d= -f2; }
check_eq "7: toe-proxyd counted the refused flows" "$(ctr flows_refused)" 2
check_ge "4: toe-proxyd counted the back-offs" "$(ctr accept_backoffs)" 1
proxy_stop
check_eq "toe-proxyd exits 0" "$WAIT_STATUS" 0
check_eq "nothing of the proxy's left" "$(rules_in_range)" 0
if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' "$NET_TMP"/proxyd.*.log; then
  net_fail "sanitizer report in a toe-proxyd log"
fi
check_toed_exit
net_finish
