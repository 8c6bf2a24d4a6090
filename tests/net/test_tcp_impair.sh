#!/usr/bin/env bash
# TCP echo through an impaired link: toed's echo service and the kernel in the peer namespace with
# toe-impair in a namespace between them (lib.sh net_setup_impaired):
#
#   toed --wire wire0 (198.18.0.1) <-> [mid: toe-impair ARGS] <-> peer0 198.18.0.2 (kernel client)
#
# For each impairment the kernel client sends a deterministic pseudo-random stream to echo while
# reading the echo (tcp_tool.py echo); the echo must come back complete with the same SHA-256.
# Impairments: --loss 1%, --loss 5%, --delay 20ms --jitter 5ms --reorder 5%, --dup 2%,
# --corrupt 0.5%. The tool's counters must show the impairment happened (frames lost, reordered,
# duplicated, corrupted) and the device's counters that it coped (retransmissions, out-of-order
# queueing, D-SACKs, checksum drops) and that every connection closed gracefully.
#
# Sizes: the issue asks for 256 MiB per run, and that is the default (about 4 minutes under an ASan
# build on a 2-vCPU machine: 5% loss runs at ~20 Mbit/s, the 40 ms RTT at ~40 Mbit/s).
# TOE_TCP_IMPAIR_MIB sets another size for a quicker run.
# Usage (as root): bash tests/net/test_tcp_impair.sh BUILD/bin
set -u
# shellcheck source=tests/net/lib.sh
source "$(dirname "$0")/lib.sh"

SIZE_MIB=${TOE_TCP_IMPAIR_MIB:-256}
LIMIT=$((SIZE_MIB >= 128 ? 590 : 290))
net_init "${1:-}" "$LIMIT"
[ -x "$NET_BINDIR/toe-impair" ] || net_die "no toe-impair in $NET_BINDIR (build first)"
net_setup_impaired
MIB=$((1 << 20))
net_log "$SIZE_MIB MiB per impairment"

# The forwarder first (toed must answer a ping through it to count as started). A queue limit far
# above the default 1000 frames: with --delay the queue must hold delay x throughput.
impair_start --limit 100000 || net_die "toe-impair does not start"
start_toed_nopcap --service echo

RUNS=0
PER_RUN_LIMIT=$((SIZE_MIB >= 128 ? 200 : LIMIT / 5))
# run_impaired NAME COUNTER... -- IMPAIR-ARGS...: one echo transfer through toe-impair IMPAIR-ARGS;
# checks the transfer, and that each named tool counter (summed over both directions) is non-zero.
run_impaired() {
  local name=$1 counters=() c
  shift
  while [ "$1" != -- ]; do
    counters+=("$1")
    shift
  done
  shift
  impair_stop
  if ! impair_start --limit 100000 --seed $((RUNS + 11)) "$@"; then
    net_fail "$name: toe-impair starts"
    return
  fi
  RUNS=$((RUNS + 1))
  local out
  out=$(peer_py "$PER_RUN_LIMIT" tcp_tool.py echo "$NET_DEV_ADDR" 7 --bytes $((SIZE_MIB * MIB)) \
    --seed $((RUNS + 100)) --timeout 60)
  echo "$out" >"$NET_TMP/echo.$RUNS.out"
  impair_stop
  check_eq "$name: $SIZE_MIB MiB echoed, SHA-256 equal, no error" \
    "$(kv received "$out")/$([ "$(kv received_sha256 "$out")" = "$(kv sent_sha256 "$out")" ] && echo equal)/$(kv first_bad_offset "$out")/$(kv send_error "$out")/$(kv recv_error "$out")" \
    "$((SIZE_MIB * MIB))/equal/-1/none/none"
  net_log "$name: $(kv seconds "$out") s, $(kv mbit_per_s "$out") Mbit/s each way"
  local line="" total
  for c in "${counters[@]}"; do
    total=$(($(impair_counter 'a->b' "$c") + $(impair_counter 'b->a' "$c")))
    line="$line $c=$total"
    check_ge "$name: toe-impair $c frames (both directions)" "$total" 1
  done
  net_log "$name: toe-impair final: $(grep '^toe-impair: final' "$NET_IMPAIR_LOG" | tr '\n' ' ')"
  check_eq "$name: toe-impair exits 0" "$NET_IMPAIR_STATUS" 0
}

run_impaired "--loss 1%" lost -- --loss 1%
run_impaired "--loss 5%" lost -- --loss 5%
run_impaired "--delay 20ms --jitter 5ms --reorder 5%" reordered -- --delay 20ms --jitter 5ms --reorder 5%
run_impaired "--dup 2%" duplicated -- --dup 2%
run_impaired "--corrupt 0.5%" corrupted -- --corrupt 0.5%

# toed stops through a working link (its last frames need no answer, but keep the path up).
impair_start --limit 100000 || net_fail "toe-impair restarts for the end"
sleep 0.5
check_toed_exit
impair_stop

check_eq "svc tcp/echo:7: $RUNS connections, each closed gracefully (accepted/closed/reset/aborted)" \
  "$(toed_counter svc_tcp_echo_7.accepted)/$(toed_counter svc_tcp_echo_7.closed)/$(toed_counter svc_tcp_echo_7.reset)/$(toed_counter svc_tcp_echo_7.aborted)" \
  "$RUNS/$RUNS/0/0"
check_eq "svc tcp/echo:7: every byte read was sent back" \
  "$(toed_counter svc_tcp_echo_7.tx_bytes)" "$(toed_counter svc_tcp_echo_7.rx_bytes)"
if engine_only "engine counters"; then
  check_ge "tcp: segments retransmitted (loss)" "$(toed_counter tcp.retrans_segs)" 1
  check_ge "tcp: out-of-order segments queued (loss, reordering)" "$(toed_counter tcp.rx_ooo_segs)" 1
  check_ge "tcp: duplicate data seen (duplication)" \
    "$(($(toed_counter tcp.rx_drop_dup) + $(toed_counter tcp.rx_dsacks)))" 1
  check_ge "corrupted frames dropped by a checksum (IP or TCP)" \
    "$(($(toed_counter tcp.rx_drop_checksum) + $(toed_counter ip.rx_drop_checksum) + $(toed_counter ip.rx_drop_malformed) + $(toed_counter tcp.rx_drop_malformed)))" 1
  check_eq "tcp: only the listener holds a tcb at the end" "$(toed_counter tcp.socks_inuse)" 1
  check_eq "pbuf: every buffer returned" "$(toed_counter pbuf.inuse)" 0
  net_log "engine: $(grep -oE 'tcp\.(retrans_segs|rto_expired|rec_[a-z_]+|rx_ooo_segs|rx_dsacks|rx_drop_[a-z_]+)=[0-9]+' "$NET_TOED_LOG" | tr '\n' ' ')"
fi

net_finish
