#!/usr/bin/env bash
# toe-impair between two Linux kernels (docs/impair.md). Topology, all made and removed here:
#
#   netns toeimp-$$-a          netns toeimp-$$-mid                 netns toeimp-$$-b
#   veth0 198.18.0.1/24 <----> ma  [toe-impair --a ma --b mb]  mb <----> veth0 198.18.0.2/24
#                              (no addresses, IPv6 off, nftables ingress drop: the kernel of mid
#                               leaves these ports to the tool)
#
# Checks: bad arguments exit 2 with one line; with no impairment ping works and a 20 MiB TCP
# transfer arrives intact; --loss 10% loses a plausible share of ping -c 100 and exactly what the
# tool counted; --delay 20ms makes RTT >= 40 ms; --dup 50% makes ping report DUP!; --corrupt 5%
# leaves a 20 MiB TCP transfer intact (the receiver's checksums catch every flipped bit) while the
# tool counts corruptions; --rate 10mbit stretches a 5 MiB transfer to >= 3.5 s; the same seed gives
# the same drops on the same UDP burst; --reorder delivers a UDP burst out of order; the tool exits 0
# on SIGTERM every time.
# Usage (as root): bash tests/net/test_impair.sh BUILD/bin
set -u

BIN=${1:-}
if [ -z "$BIN" ]; then
  echo "usage: bash $0 BINDIR   (the build's bin directory, holding toe-impair)" >&2
  exit 2
fi
TOOL=$BIN/toe-impair
PY=/usr/bin/python3
NS_A=toeimp-$$-a
NS_M=toeimp-$$-mid
NS_B=toeimp-$$-b
ADDR_A=198.18.0.1
ADDR_B=198.18.0.2
MAC_A=02:74:69:6d:00:01
MAC_B=02:74:69:6d:00:02
LIMIT=110 # seconds for the whole test

PASS=0
FAIL=0
TMP=
TOOL_PID=
TOOL_LOG=
TOOL_RUNS=0
TOOL_BAD_EXITS=0
BG_PIDS=()
WATCHDOG_PID=
NS_MADE=0

ok() {
  PASS=$((PASS + 1))
  echo "ok   - $*"
}
fail() {
  FAIL=$((FAIL + 1))
  echo "FAIL - $*"
}
log() { echo "# $*"; }
# check_range NAME GOT LO HI (integers)
check_range() {
  if [[ "$2" =~ ^[0-9]+$ ]] && (($2 >= $3 && $2 <= $4)); then
    ok "$1 ($2, want $3..$4)"
  else
    fail "$1 (got '$2', want $3..$4)"
  fi
}
check_eq() {
  if [ "$2" = "$3" ]; then ok "$1 ($2)"; else fail "$1 (got '$2', want '$3')"; fi
}
check_gt0() {
  if [[ "$2" =~ ^[0-9]+$ ]] && (($2 > 0)); then ok "$1 ($2)"; else fail "$1 (got '$2', want > 0)"; fi
}

# shellcheck disable=SC2317 # called from the EXIT trap
cleanup() {
  local p
  [ -n "$WATCHDOG_PID" ] && kill "$WATCHDOG_PID" 2>/dev/null
  [ -n "$TOOL_PID" ] && kill -TERM "$TOOL_PID" 2>/dev/null
  for p in "${BG_PIDS[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  if [ "$NS_MADE" = 1 ]; then
    ip netns del "$NS_A" 2>/dev/null
    ip netns del "$NS_M" 2>/dev/null
    ip netns del "$NS_B" 2>/dev/null
  fi
  [ -n "$TMP" ] && rm -rf "$TMP"
}
finish() {
  trap - TERM
  echo "$PASS passed, $FAIL failed"
  if [ "$FAIL" = 0 ]; then exit 0; else exit 1; fi
}
trap cleanup EXIT
trap 'echo "# interrupted"; exit 130' INT
trap 'fail "time limit of ${LIMIT}s reached (watchdog)"; finish' TERM

if [ "$(id -u)" != 0 ]; then
  echo "$0: must run as root (network namespaces)" >&2
  exit 1
fi
[ -x "$TOOL" ] || {
  echo "$0: no toe-impair at $TOOL (build first)" >&2
  exit 1
}
for t in ip ping timeout sha256sum "$PY"; do
  command -v "$t" >/dev/null || {
    echo "$0: missing tool $t" >&2
    exit 1
  }
done
TMP=$(mktemp -d /tmp/toeimp-$$.XXXXXX) || exit 1
(
  sleep "$LIMIT" &
  s=$!
  trap 'kill $s 2>/dev/null; exit 0' TERM
  wait $s && kill -TERM $$ 2>/dev/null
) &
WATCHDOG_PID=$!

# ---- helpers ---------------------------------------------------------------------------------

cat >"$TMP/xfer.py" <<'EOF'
# Test traffic: TCP bulk transfer (recv/send) and a numbered UDP burst (udpsink/udpsend).
import socket, sys, time

role = sys.argv[1]
if role == "recv":  # recv PORT OUTFILE READYFILE: prints seconds from accept to EOF
    port, out, ready = int(sys.argv[2]), sys.argv[3], sys.argv[4]
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(1)
    s.settimeout(30)
    open(ready, "w").close()
    c, _ = s.accept()
    c.settimeout(30)
    t0 = time.monotonic()
    with open(out, "wb") as f:
        while True:
            b = c.recv(1 << 20)
            if not b:
                break
            f.write(b)
    print("%.3f" % (time.monotonic() - t0))
    c.close()
elif role == "send":  # send HOST PORT INFILE
    host, port, inp = sys.argv[2], int(sys.argv[3]), sys.argv[4]
    deadline = time.monotonic() + 10
    while True:
        try:
            c = socket.create_connection((host, port), timeout=5)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    c.settimeout(60)
    with open(inp, "rb") as f:
        c.sendall(f.read())
    c.shutdown(socket.SHUT_WR)
    c.recv(1)  # the receiver closes once it has everything
    c.close()
elif role == "udpsink":  # udpsink PORT READYFILE: prints "received inversions"
    port, ready = int(sys.argv[2]), sys.argv[3]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    s.bind(("0.0.0.0", port))
    open(ready, "w").close()
    s.settimeout(15)
    n = inv = 0
    top = -1
    while True:
        try:
            b = s.recv(2048)
        except socket.timeout:
            break
        s.settimeout(1.0)
        seq = int.from_bytes(b[:4], "big")
        n += 1
        if seq < top:
            inv += 1
        top = max(top, seq)
    print(n, inv)
elif role == "udpsend":  # udpsend HOST PORT COUNT GAP_SECONDS
    host, port, count, gap = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for i in range(count):
        s.sendto(i.to_bytes(4, "big") + b"x" * 60, (host, port))
        time.sleep(gap)
EOF

in_a() { ip netns exec "$NS_A" "$@"; }
in_b() { ip netns exec "$NS_B" "$@"; }

wait_file() { # FILE: up to 5 s
  local _
  for _ in $(seq 50); do
    [ -e "$1" ] && return 0
    sleep 0.1
  done
  return 1
}

# start_tool ARGS...: toe-impair in mid between ma and mb; waits until it forwards.
start_tool() {
  TOOL_RUNS=$((TOOL_RUNS + 1))
  TOOL_LOG=$TMP/tool.$TOOL_RUNS.log
  log "toe-impair $*"
  ip netns exec "$NS_M" "$TOOL" --a ma --b mb "$@" >"$TOOL_LOG" 2>&1 &
  TOOL_PID=$!
  local _
  for _ in $(seq 50); do
    grep -q 'forwarding ma <-> mb' "$TOOL_LOG" && return 0
    kill -0 "$TOOL_PID" 2>/dev/null || break
    sleep 0.1
  done
  log "toe-impair did not start:"
  sed 's/^/#   /' "$TOOL_LOG"
  return 1
}

# stop_tool: SIGTERM, expect exit 0 and the final counters.
stop_tool() {
  [ -n "$TOOL_PID" ] || return
  kill -TERM "$TOOL_PID" 2>/dev/null
  wait "$TOOL_PID"
  local rc=$?
  TOOL_PID=
  if [ "$rc" != 0 ]; then
    TOOL_BAD_EXITS=$((TOOL_BAD_EXITS + 1))
    log "toe-impair exited $rc; its output:"
    sed 's/^/#   /' "$TOOL_LOG"
  fi
  grep '^toe-impair: final' "$TOOL_LOG" | sed 's/^/#   /'
}

# counter DIR NAME: a counter from the last run's final statistics (DIR is a->b or b->a).
counter() {
  sed -n "s/^toe-impair: final $1 .* $2=\([0-9]*\).*/\1/p" "$TOOL_LOG" | head -1
}

ping_received() { sed -n 's/.* \([0-9]\+\) received.*/\1/p' | head -1; }
ping_min_rtt() { sed -n 's|^rtt min/avg/max/mdev = \([0-9.]*\)/.*|\1|p' | head -1; }

# tcp_xfer FILE PORT: sends FILE from a to b; prints the receiver's seconds; sets XFER_OK.
tcp_xfer() {
  local file=$1 port=$2 out=$TMP/rx.$2 ready=$TMP/ready.$2
  rm -f "$out" "$ready"
  in_b timeout 70 "$PY" "$TMP/xfer.py" recv "$port" "$out" "$ready" >"$TMP/secs.$port" 2>&1 &
  local rpid=$!
  BG_PIDS+=("$rpid")
  wait_file "$ready" || log "receiver did not start"
  in_a timeout 70 "$PY" "$TMP/xfer.py" send "$ADDR_B" "$port" "$file" 2>&1 | sed 's/^/#   /'
  wait "$rpid"
  XFER_SECS=$(tail -1 "$TMP/secs.$port")
  XFER_OK=0
  if [ -f "$out" ] && [ "$(sha256sum <"$out")" = "$(sha256sum <"$file")" ]; then XFER_OK=1; fi
  rm -f "$out"
}

# udp_burst COUNT PORT: numbered datagrams a -> b, 1 ms apart; sets UDP_RX and UDP_INV.
udp_burst() {
  local count=$1 port=$2 ready=$TMP/uready.$2
  rm -f "$ready"
  in_b timeout 30 "$PY" "$TMP/xfer.py" udpsink "$port" "$ready" >"$TMP/sink.$port" 2>&1 &
  local spid=$!
  BG_PIDS+=("$spid")
  wait_file "$ready" || log "UDP sink did not start"
  in_a timeout 30 "$PY" "$TMP/xfer.py" udpsend "$ADDR_B" "$port" "$count" 0.001
  wait "$spid"
  read -r UDP_RX UDP_INV <"$TMP/sink.$port"
}

# ---- bad arguments ---------------------------------------------------------------------------

out=$("$TOOL" --a x --b y --loss 2 2>&1)
rc=$?
if [ "$rc" = 2 ] && [ "$(wc -l <<<"$out")" = 1 ]; then
  ok "bad --loss value: exit 2 with one line ($out)"
else
  fail "bad --loss value: got exit $rc and '$out'"
fi
out=$("$TOOL" --a x --b y --rate fast 2>&1)
rc=$?
if [ "$rc" = 2 ] && [ "$(wc -l <<<"$out")" = 1 ]; then
  ok "bad --rate value: exit 2 with one line"
else
  fail "bad --rate value: got exit $rc and '$out'"
fi

# ---- topology --------------------------------------------------------------------------------

setup() {
  ip netns add "$NS_A" && ip netns add "$NS_M" && ip netns add "$NS_B" || return 1
  NS_MADE=1
  local ns
  for ns in "$NS_A" "$NS_M" "$NS_B"; do
    # IPv6 off before the links exist: no link-local addresses, DAD, MLD or router solicitations
    # crossing the tool, so the only traffic is the test's own (and ARP).
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
      net.ipv6.conf.default.disable_ipv6=1 || return 1
    ip -n "$ns" link set dev lo up || return 1
  done
  ip -n "$NS_A" link add veth0 address "$MAC_A" type veth peer name ma netns "$NS_M" || return 1
  ip -n "$NS_B" link add veth0 address "$MAC_B" type veth peer name mb netns "$NS_M" || return 1
  ip -n "$NS_A" addr add "$ADDR_A/24" dev veth0 || return 1
  ip -n "$NS_B" addr add "$ADDR_B/24" dev veth0 || return 1
  ip -n "$NS_A" link set dev veth0 up && ip -n "$NS_B" link set dev veth0 up || return 1
  ip -n "$NS_M" link set dev ma up && ip -n "$NS_M" link set dev mb up || return 1
  # Keep the kernel of mid off the ports (packet sockets still see every frame).
  if ! ip netns exec "$NS_M" nft -f - <<EOF; then
table netdev toeimp {
  chain ma { type filter hook ingress device "ma" priority 0; policy drop; }
  chain mb { type filter hook ingress device "mb" priority 0; policy drop; }
}
EOF
    log "nftables ingress drop not available in mid (harmless: mid has no addresses)"
  fi
}
if ! setup; then
  fail "set up namespaces $NS_A, $NS_M, $NS_B"
  finish
fi

head -c $((20 << 20)) /dev/urandom >"$TMP/data20"
head -c $((5 << 20)) /dev/urandom >"$TMP/data5"

# ---- no impairment ---------------------------------------------------------------------------

if start_tool; then
  out=$(in_a ping -c 3 -i 0.2 -W 1 "$ADDR_B" 2>&1)
  check_eq "no impairment: ping -c 3 replies" "$(ping_received <<<"$out")" 3
  tcp_xfer "$TMP/data20" 5001
  check_eq "no impairment: 20 MiB TCP transfer intact (sha256 equal, ${XFER_SECS}s)" "$XFER_OK" 1
  stop_tool
  check_eq "no impairment: nothing lost, corrupted or refused" \
    "$(counter 'a->b' lost)$(counter 'b->a' lost)$(counter 'a->b' errors)$(counter 'b->a' errors)" "0000"
  log "offload handling a->b: gso_split=$(counter 'a->b' gso_split) csum_fixed=$(counter 'a->b' csum_fixed)"
  check_gt0 "no impairment: ARP forwarded unimpaired" \
    "$(($(counter 'a->b' unimpaired) + $(counter 'b->a' unimpaired)))"
else
  fail "toe-impair starts"
fi

# ---- loss ------------------------------------------------------------------------------------

if start_tool --loss 10% --seed 7; then
  out=$(in_a ping -c 100 -i 0.01 -W 1 "$ADDR_B" 2>&1)
  rx=$(ping_received <<<"$out")
  stop_tool
  lost=$((100 - ${rx:-0}))
  check_range "--loss 10%: ping -c 100 lost (both directions)" "$lost" 5 40
  check_eq "--loss 10%: ping's losses are the tool's loss counters" \
    "$(($(counter 'a->b' lost) + $(counter 'b->a' lost)))" "$lost"
fi

# ---- delay -----------------------------------------------------------------------------------

if start_tool --delay 20ms; then
  out=$(in_a ping -c 5 -i 0.2 -W 2 "$ADDR_B" 2>&1)
  stop_tool
  check_eq "--delay 20ms: ping -c 5 replies" "$(ping_received <<<"$out")" 5
  min=$(ping_min_rtt <<<"$out")
  if [ -n "$min" ] && awk -v m="$min" 'BEGIN { exit !(m >= 40.0) }'; then
    ok "--delay 20ms: min RTT ${min} ms >= 40 ms"
  else
    fail "--delay 20ms: min RTT '${min}' ms, want >= 40 ms"
  fi
fi

# ---- duplication -----------------------------------------------------------------------------

if start_tool --dup 50%; then
  out=$(in_a ping -c 20 -i 0.05 -W 1 "$ADDR_B" 2>&1)
  stop_tool
  if grep -q 'DUP!' <<<"$out"; then
    ok "--dup 50%: ping reports duplicates ($(grep -c 'DUP!' <<<"$out") DUP! lines)"
  else
    fail "--dup 50%: ping reports no DUP!"
  fi
  check_gt0 "--dup 50%: tool counted duplicates" \
    "$(($(counter 'a->b' duplicated) + $(counter 'b->a' duplicated)))"
fi

# ---- corruption ------------------------------------------------------------------------------

if start_tool --corrupt 5%; then
  tcp_xfer "$TMP/data20" 5002
  stop_tool
  check_eq "--corrupt 5%: 20 MiB TCP transfer intact (sha256 equal, ${XFER_SECS}s)" "$XFER_OK" 1
  check_gt0 "--corrupt 5%: tool counted corruptions" \
    "$(($(counter 'a->b' corrupted) + $(counter 'b->a' corrupted)))"
  log "receiver's kernel: $(in_b nstat -az 2>/dev/null | awk '/TcpInCsumErrors|IpExtInCsumErrors|IpInHdrErrors/ { printf "%s=%s ", $1, $2 }')"
fi

# ---- rate ------------------------------------------------------------------------------------

if start_tool --rate 10mbit; then
  tcp_xfer "$TMP/data5" 5003
  stop_tool
  check_eq "--rate 10mbit: 5 MiB TCP transfer intact" "$XFER_OK" 1
  if [ -n "$XFER_SECS" ] && awk -v s="$XFER_SECS" 'BEGIN { exit !(s >= 3.5 && s < 30) }'; then
    ok "--rate 10mbit: 5 MiB took ${XFER_SECS}s (want >= 3.5 s; 4.2 s at line rate)"
  else
    fail "--rate 10mbit: 5 MiB took '${XFER_SECS}'s, want 3.5..30 s"
  fi
fi

# ---- reproducibility -------------------------------------------------------------------------

# Static neighbours: no ARP exchange in the middle of the burst, so both runs see the same frames.
ip -n "$NS_A" neigh replace "$ADDR_B" lladdr "$MAC_B" dev veth0 nud permanent
ip -n "$NS_B" neigh replace "$ADDR_A" lladdr "$MAC_A" dev veth0 nud permanent
declare -a seed_lost seed_rx
for run in 1 2; do
  if start_tool --loss 10% --seed 42; then
    udp_burst 300 $((5010 + run))
    stop_tool
    seed_lost[run]=$(counter 'a->b' lost)
    seed_rx[run]=$UDP_RX
    log "run $run: tool lost ${seed_lost[run]} of $(counter 'a->b' received), sink received $UDP_RX"
  fi
done
check_eq "same seed, same 300-datagram burst: same drops (run 1 lost ${seed_lost[1]:-?})" \
  "${seed_lost[2]:-?}" "${seed_lost[1]:-none}"
check_range "--loss 10% on 300 datagrams: lost" "${seed_lost[1]:-x}" 10 60
check_eq "sink received exactly the datagrams the tool did not drop" \
  "${seed_rx[1]:-?}" "$((300 - ${seed_lost[1]:-300}))"
if start_tool --loss 10% --seed 43; then
  udp_burst 300 5013
  stop_tool
  log "seed 43 for comparison: lost $(counter 'a->b' lost)"
fi

# ---- reordering ------------------------------------------------------------------------------

if start_tool --reorder 20% --seed 5; then
  udp_burst 200 5020
  stop_tool
  check_eq "--reorder 20%: all 200 datagrams arrive" "$UDP_RX" 200
  check_gt0 "--reorder 20%: datagrams arrive out of order (inversions)" "$UDP_INV"
  check_eq "--reorder 20%: inversions seen = tool's reordered counter" \
    "$UDP_INV" "$(counter 'a->b' reordered)"
fi

check_eq "toe-impair exited 0 on SIGTERM in all $TOOL_RUNS runs (bad exits)" "$TOOL_BAD_EXITS" 0
finish
