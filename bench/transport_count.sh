#!/usr/bin/env bash
# What bulk TCP through the transport costs in exact counts (not time: the figures do not depend
# on the machine's load): submissions (SQEs), completions and events (CQEs), the host's doorbells
# to the device (kicks), its sleeps, the device's doorbells to the host (notifies) and buffers
# lent, per MiB, from libtoe's counters and the device's STATS CLIENT (bench_transport_count.c).
#
#   toe-$$-dev  bench_transport_count (libtoe) -> toed (engine, AF_PACKET on wire0)
#               --veth--> toe-$$-peer  kernel nc 198.18.0.2
#
#   send   bench_transport_count sends TC_MIB MiB in 64 KiB vectors of 16 pieces of 4 KiB to a
#          kernel `nc -l` in the peer namespace: with toe_sendv (one call per vector) and, as a
#          writev cost before toe_sendv, one toe_send per piece (--per-piece);
#   recv   a kernel `nc -N` in the peer namespace sends TC_MIB MiB to bench_transport_count.
# Each case runs with the device's default buffers and with 8 KiB ones (--buf-size 8192: what a
# 1.5 client got). Counts in the receive direction depend on how far the host lags the device
# (coalescing follows the lag), so they vary a little between runs; the send counts do not.
#
# Usage: sudo bash bench/transport_count.sh BINDIR   (holding toed and bench_transport_count)
# Environment: TC_MIB (64), TC_CASES (the cases to run, default all: "send-sendv
# send-piece send-piece-8k send-sendv-8k recv recv-8k"), BENCH_CLIENT_CPU (0), BENCH_SERVER_CPU (1).
source "$(dirname "$0")/lib-bench.sh"

TC_MIB=${TC_MIB:-64}
TC_CASES=${TC_CASES:-send-sendv send-piece send-sendv-8k send-piece-8k recv recv-8k}
bench_init "$1" $((120 + 20 * TC_MIB))
command -v nc >/dev/null || net_die "missing tool nc (run: make deps)"
TC=$NET_BINDIR/bench_transport_count
[ -x "$TC" ] || net_die "no bench_transport_count in $NET_BINDIR (build first)"
CTL=$NET_TMP/toed.sock

echo "== transport_count: bulk TCP through libtoe and toed, ${TC_MIB} MiB per case, exact counts"
net_setup
bench_start_toed --ctl "$CTL"
echo "# $(grep -m1 'up on' "$NET_TOED_LOG" | cut -c1-200)"
DATA=$NET_TMP/data.bin
head -c "$((TC_MIB * 1048576))" /dev/urandom >"$DATA" || net_die "cannot write $DATA"

PORT=5201
tc_kv() { awk -v k="$1" '$1 == k { print $2; exit }' "$2"; }
run_case() {
  local name=$1 out=$NET_TMP/$1.out args=() pid
  case $name in *-8k) args+=(--buf-size 8192) ;; esac
  PORT=$((PORT + 1))
  case $name in
  send-*)
    [[ $name == send-piece* ]] && args+=(--per-piece)
    peer timeout 120 nc -l "$NET_PEER_ADDR" "$PORT" </dev/null >/dev/null &
    pid=$!
    net_bg_add "$pid"
    for _ in $(seq 50); do
      peer ss -Hltn "sport = :$PORT" | grep -q . && break
      sleep 0.1
    done
    dev taskset -c "$BENCH_CLIENT_CPU" timeout 120 "$TC" --ctl "$CTL" "${args[@]}" send \
      "$NET_PEER_ADDR" "$PORT" "$TC_MIB" >"$out" 2>&1 || net_fail "$name: $(tail -n1 "$out")"
    wait "$pid" 2>/dev/null
    ;;
  recv*)
    dev taskset -c "$BENCH_CLIENT_CPU" timeout 120 "$TC" --ctl "$CTL" "${args[@]}" recv "$PORT" \
      >"$out" 2>&1 &
    pid=$!
    net_bg_add "$pid"
    for _ in $(seq 50); do
      grep -q listening "$out" && break
      sleep 0.1
    done
    peer timeout 120 nc -N "$NET_DEV_ADDR" "$PORT" <"$DATA" >/dev/null ||
      net_fail "$name: the peer's nc failed"
    wait "$pid" || net_fail "$name: $(tail -n1 "$out")"
    ;;
  esac
  printf '%-15s buf %6s B' "$name" "$(tc_kv buf_size "$out")"
  local k
  for k in host.sqes host.cqes host.kicks host.sleeps dev.completions dev.events dev.bufs_lent \
    dev.notifies; do
    printf '  %s %s' "${k#*.}" "$(tc_kv "per_mib.$k" "$out")"
  done
  printf '   (per MiB)\n'
  net_ok "$name: $TC_MIB MiB moved"
}

echo "# case            buffer      counts per MiB moved (host: sqes cqes kicks sleeps; device: completions events bufs_lent notifies)"
for c in $TC_CASES; do run_case "$c"; done
stop_toed
net_finish
