#!/usr/bin/env bash
# Runs every benchmark in sequence against one build (see bench/README.md):
#   1. bench_engine_e2e      engine to engine in memory, 1 GiB one way (both ends on one core),
#                            then again with TSO (64 KiB super-segments)
#   2. tcp_instructions.sh   instructions per segment, sender and receiver side (callgrind)
#   3. tcp_bulk.sh           TCP bulk throughput, toed vs kernel over veth        (root)
#   4. udp_pps.sh            UDP echo datagrams/s, toed vs kernel over veth      (root)
#   5. transport_nc.sh       toe-nc through the device vs kernel nc              (root)
#   6. transport_pingpong.sh 64-byte ping-pong: libtoe vs kernel sockets         (root)
#   7. interception.sh       nginx, redis, sockperf, iperf3 preloaded vs kernel  (root)
#   8. proxy.sh              curl bulk and wrk through toe-proxyd vs kernel      (root)
# Each is bounded in time; the whole run takes about 5 minutes with the defaults. The namespace
# benchmarks are skipped (with a note) when not running as root.
#
# Usage: bash bench/run-all.sh [BINDIR]      (default build/bin, a release build: make bench)
# Environment: BENCH_MIB (engine transfer, default 1024), BENCH_SECONDS (per network run, default
# 4), BENCH_REPEAT (network runs per figure, median reported, default 3), BENCH_SEGMENTS
# (callgrind, default 20000), BENCH_CLIENT_CPU / BENCH_SERVER_CPU.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
BINDIR=${1:-$HERE/../build/bin}
BINDIR=$(cd "$BINDIR" && pwd) || exit 2
MIB=${BENCH_MIB:-1024}
CPU=${BENCH_SERVER_CPU:-1}
[ "$(nproc)" -ge 2 ] || CPU=0
status=0

echo "# toekit benchmarks, $(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -r), $(nproc) CPUs," \
  "$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
echo "# binaries: $BINDIR; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo

echo "== engine_e2e: two engine stacks, in-memory link, ${MIB} MiB one way (pinned to CPU $CPU)"
if ! timeout -k 5 600 taskset -c "$CPU" "$BINDIR/bench_engine_e2e" --mib "$MIB"; then
  echo "# engine_e2e failed"
  status=1
fi
echo
echo "== engine_e2e with TSO: super-segments of up to 64 KiB on the in-memory link, delivered whole"
if ! timeout -k 5 600 taskset -c "$CPU" "$BINDIR/bench_engine_e2e" --mib "$MIB" --tso --rx-csum-offload \
  --warmup 100; then
  echo "# engine_e2e --tso failed"
  status=1
fi
echo

timeout -k 5 3000 bash "$HERE/tcp_instructions.sh" "$BINDIR" || status=1
echo

if [ "$(id -u)" = 0 ]; then
  bash "$HERE/tcp_bulk.sh" "$BINDIR" || status=1
  echo
  bash "$HERE/udp_pps.sh" "$BINDIR" || status=1
  echo
  bash "$HERE/transport_nc.sh" "$BINDIR" || status=1
  echo
  bash "$HERE/transport_pingpong.sh" "$BINDIR" || status=1
  echo
  bash "$HERE/interception.sh" "$BINDIR" || status=1
  echo
  bash "$HERE/proxy.sh" "$BINDIR" || status=1
else
  echo "== tcp_bulk, udp_pps, transport_nc, transport_pingpong, interception, proxy: skipped (they need root for network namespaces)"
fi
echo
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
exit $status
