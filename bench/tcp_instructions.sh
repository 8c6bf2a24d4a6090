#!/usr/bin/env bash
# Instructions per full-sized TCP segment, sender side and receiver side, counted exactly with
# callgrind on bench_engine_e2e (see bench/README.md). The benchmark runs on its virtual clock
# (a fixed step per loop iteration), so every run executes the same instructions and the three
# runs below agree with each other:
#   1. everything in the steady state (instrumentation switched on by the program after the
#      warm-up and off after N data segments), broken down by the benchmark's wrappers with
#      callgrind_annotate --inclusive, plus the engine's most expensive functions;
#   2. --toggle-collect on the sender's entry points only: toe_tcp_send (copy in, segmentation,
#      output down to the link), toe_stack_input of the ACKs it receives, toe_stack_poll;
#   3. --toggle-collect on the receiver's: toe_stack_input of data segments (and the ACKs that
#      input sends), toe_tcp_recv (copy out, window updates), toe_stack_poll;
#   4. (short) run 1 again with the link marking frames checksum-verified, as a NIC with receive
#      checksum offload would: the software checksum's share of the receive path;
#   5./6. runs 2 and 3 with checksums offloaded both ways (--rx-csum-offload --tx-csum-offload:
#      the engines leave TCP checksums to the link, which bench_dma completes as a NIC would).
#   8.-11. runs 2, 3, 5 and 6 with --burst: each round of frames to a stack is one receive burst
#      (toe_stack_burst_begin/_end, as toed's drivers hand over their rings), so a connection
#      makes one ACK and output decision per burst; the deferred output (bench_burst_end_*) is
#      counted on the side that runs it.
# The link's copy of each frame into the other stack's pool (bench_dma) is the benchmark's, not the
# engine's, and is shown apart.
#
# Usage: bash bench/tcp_instructions.sh BINDIR    (no root needed)
# Environment: BENCH_SEGMENTS (measured segments, default 20000), BENCH_WARMUP (default 2000).
set -u
BINDIR=${1:?usage: bash bench/tcp_instructions.sh BINDIR}
B=$BINDIR/bench_engine_e2e
SEGS=${BENCH_SEGMENTS:-20000}
WARM=${BENCH_WARMUP:-2000}
[ -x "$B" ] || {
  echo "no $B (build first)" >&2
  exit 2
}
command -v valgrind >/dev/null || {
  echo "== tcp_instructions: skipped: valgrind is not installed (apt-get install valgrind)"
  exit 0
}
T=$(mktemp -d /tmp/toe-bench-cg.XXXXXX)
trap 'rm -rf "$T"' EXIT

echo "== tcp_instructions: instructions per data segment, engine to engine (callgrind)"
echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(valgrind --version), $SEGS segments measured after $WARM of warm-up"
echo "# bench_engine_e2e --clock virtual: MTU 1500, cc cubic, timestamps and SACK on, 64 KiB send/recv calls"

ARGS=(--segments "$SEGS" --warmup "$WARM" --clock virtual)
CG=(valgrind --tool=callgrind --instr-atstart=no)
SENDER_FNS=(bench_send bench_input_sender bench_poll_sender bench_burst_end_sender)
RECEIVER_FNS=(bench_input_receiver bench_recv bench_poll_receiver bench_burst_end_receiver)

# cg_run NAME EXTRA_VALGRIND_ARGS... -- EXTRA_BENCH_ARGS...: runs one callgrind, bounded in time.
cg_run() {
  local name=$1
  shift
  local vg=() ba=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do
    vg+=("$1")
    shift
  done
  [ $# -gt 0 ] && shift
  ba=("$@")
  if ! timeout -k 5 900 "${CG[@]}" "${vg[@]}" --callgrind-out-file="$T/$name.cg" \
    "$B" "${ARGS[@]}" "${ba[@]}" >"$T/$name.out" 2>"$T/$name.err"; then
    echo "# run $name failed:"
    tail -40 "$T/$name.err" | grep -v '^==' | sed 's/^/#   /'
    tail -5 "$T/$name.out" | sed 's/^/#   /'
    return 1
  fi
}
# Collected instructions of a run (the "totals" line of its output file).
cg_total() { awk '/^totals:/ { print $2; exit }' "$T/$1.cg"; }
# Inclusive instructions of a function in a run.
cg_incl() {
  callgrind_annotate --inclusive=yes --threshold=100 "$T/$1.cg" 2>/dev/null |
    awk -v f="$2" '{ for (i = 2; i <= NF; i++) if ($i ~ ("[:]" f "( |$|\\[)") || $i == f) { gsub(/,/, "", $1); print $1; exit } }'
}
segs_of() { awk '$1 == "kv" && $2 == "data_segments" { print $3 }' "$T/$1.out"; }
bytes_of() { awk '$1 == "kv" && $2 == "bytes" { print $3 }' "$T/$1.out"; }
per() { awk -v a="$1" -v s="$2" 'BEGIN { if (a == "" || s + 0 == 0) print "n/a"; else printf "%.0f", a / s }'; }

tog() {
  local f a=()
  for f in "$@"; do a+=(--toggle-collect="$f"); done
  echo "${a[@]}"
}

cg_run all -- || exit 0
# shellcheck disable=SC2046
cg_run sender --collect-atstart=no $(tog "${SENDER_FNS[@]}") -- || exit 0
# shellcheck disable=SC2046
cg_run receiver --collect-atstart=no $(tog "${RECEIVER_FNS[@]}") -- || exit 0
cg_run offload -- --rx-csum-offload || true
# shellcheck disable=SC2046
cg_run sender_off --collect-atstart=no $(tog "${SENDER_FNS[@]}") -- --rx-csum-offload --tx-csum-offload || true
# shellcheck disable=SC2046
cg_run receiver_off --collect-atstart=no $(tog "${RECEIVER_FNS[@]}") -- --rx-csum-offload --tx-csum-offload || true
# TSO: the sender hands over super-segments (a data segment the receiver counts is then one of
# up to 64 KiB), so its cost is given per 1448 payload bytes, the MSS of the other runs
# shellcheck disable=SC2046
cg_run sender_tso --collect-atstart=no $(tog "${SENDER_FNS[@]}") -- --rx-csum-offload --tso \
  --segments $((SEGS / 20 + 1)) --warmup $((WARM / 20 + 1)) || true

# shellcheck disable=SC2046
cg_run sender_burst --collect-atstart=no $(tog "${SENDER_FNS[@]}") -- --burst || true
# shellcheck disable=SC2046
cg_run receiver_burst --collect-atstart=no $(tog "${RECEIVER_FNS[@]}") -- --burst || true
# shellcheck disable=SC2046
cg_run sender_burst_off --collect-atstart=no $(tog "${SENDER_FNS[@]}") -- --burst \
  --rx-csum-offload --tx-csum-offload || true
# shellcheck disable=SC2046
cg_run receiver_burst_off --collect-atstart=no $(tog "${RECEIVER_FNS[@]}") -- --burst \
  --rx-csum-offload --tx-csum-offload || true
S=$(segs_of all)
for r in sender receiver; do
  if [ "$(segs_of $r)" != "$S" ]; then
    echo "# warning: run $r measured $(segs_of $r) segments, run 1 $S (the runs should be identical)"
  fi
done
echo "# measured: $S data segments, $(bytes_of all) payload bytes ($(per "$(bytes_of all)" "$S") per segment)"
echo
echo "| part | instructions | per data segment |"
echo "|---|---|---|"
line() { printf "| %s | %s | %s |\n" "$1" "${2:-n/a}" "$(per "$2" "$S")"; }
line "sender: toe_tcp_send (copy in, segmentation, output to the link)" "$(cg_incl all bench_send)"
line "sender: toe_stack_input of ACKs" "$(cg_incl all bench_input_sender)"
line "sender: toe_stack_poll (timers)" "$(cg_incl all bench_poll_sender)"
line "**sender total** (run 2, --toggle-collect)" "$(cg_total sender)"
line "receiver: toe_stack_input of data segments (ACKs sent included)" "$(cg_incl all bench_input_receiver)"
line "receiver: toe_tcp_recv (copy out, window updates)" "$(cg_incl all bench_recv)"
line "receiver: toe_stack_poll (timers)" "$(cg_incl all bench_poll_receiver)"
line "**receiver total** (run 3, --toggle-collect)" "$(cg_total receiver)"
ENG=$(awk -v a="$(cg_total sender)" -v b="$(cg_total receiver)" 'BEGIN { if (a != "" && b != "") print a + b }')
line "**engine total, both sides**" "$ENG"
line "link copy into the other pool (bench_dma: the benchmark's, not the engine's)" "$(cg_incl all bench_dma)"
line "whole steady-state loop (run 1: engine, link, application)" "$(cg_total all)"
if [ -s "$T/offload.cg" ]; then
  OS=$(segs_of offload)
  printf "| %s | %s | %s |\n" "receiver: data segment input, checksums verified by the link (run 4)" \
    "$(cg_incl offload bench_input_receiver)" "$(per "$(cg_incl offload bench_input_receiver)" "$OS")"
  printf "| %s | %s | %s |\n" "sender: ACK input, checksums verified by the link (run 4)" \
    "$(cg_incl offload bench_input_sender)" "$(per "$(cg_incl offload bench_input_sender)" "$OS")"
fi
for r in sender receiver; do
  if [ -s "$T/${r}_off.cg" ]; then
    printf "| %s | %s | %s |\n" "**$r total, checksums offloaded both ways** (run $([ $r = sender ] && echo 5 || echo 6))" \
      "$(cg_total ${r}_off)" "$(per "$(cg_total ${r}_off)" "$(segs_of ${r}_off)")"
  fi
done
if [ -s "$T/sender_tso.cg" ]; then
  TB=$(bytes_of sender_tso)
  TS=$(awk -v b="$TB" 'BEGIN { if (b + 0 > 0) printf "%.0f", b / 1448 }')
  printf "| %s | %s | %s |\n" "**sender total, TSO and checksums offloaded** (run 7; per 1448 payload bytes, $(segs_of sender_tso) super-segments)" \
    "$(cg_total sender_tso)" "$(per "$(cg_total sender_tso)" "$TS")"
fi
for r in sender_burst receiver_burst sender_burst_off receiver_burst_off; do
  if [ -s "$T/$r.cg" ]; then
    case $r in
    sender_burst) l="sender total, receive bursts (run 8)" ;;
    receiver_burst) l="receiver total, receive bursts (run 9)" ;;
    sender_burst_off) l="sender total, receive bursts, checksums offloaded both ways (run 10)" ;;
    *) l="receiver total, receive bursts, checksums offloaded both ways (run 11)" ;;
    esac
    printf "| **%s** | %s | %s |\n" "$l" "$(cg_total $r)" "$(per "$(cg_total $r)" "$(segs_of $r)")"
  fi
done
echo
echo "Engine functions by own (exclusive) instructions per data segment, run 1 (top 15):"
echo
echo "| instructions per segment | function |"
echo "|---|---|"
callgrind_annotate --threshold=100 "$T/all.cg" 2>/dev/null |
  awk -v s="$S" '/^[ 0-9,]+ \(/ && /:/ { v = $1; gsub(/,/, "", v); fn = $0; sub(/^[^)]*\) +/, "", fn);
                   sub(/ \[.*$/, "", fn); n = split(fn, a, ":"); f = a[n];
                   if (f ~ /^(bench_|main$|0x|\(below)/ || ++k > 15) next;
                   printf "| %.0f | %s |\n", v / s, f }'
exit 0
