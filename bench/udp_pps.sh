#!/usr/bin/env bash
# UDP echo datagrams/s of 64-byte payloads, kernel client -> toed's echo service (port 7) versus
# kernel client -> toed with the AF_XDP driver (--link afxdp), versus
# kernel client -> a kernel echo server (bench_netblast udp-echo-server: recvmmsg/sendmmsg in
# batches of 64) over an identical veth pair, in one run (see bench/README.md). Two loads:
#   flood:     the client sends batches as fast as its socket takes them and counts the echoes
#              (throughput; loss shows where the server falls behind);
#   window 64: the client keeps 64 datagrams outstanding (a latency-bound rate: each wake-up of
#              the server answers what has arrived).
# Figures: echoed datagrams/s at the client, sent/s, loss, CPU of the server process and of the
# machine (/proc/stat), ratios device/kernel.
#
# Usage: sudo bash bench/udp_pps.sh BINDIR     (BINDIR: a release build's bin, e.g. build/bin)
# Environment: BENCH_SECONDS (default 4) per run, BENCH_REPEAT (default 3) runs per figure (median); BENCH_CLIENT_CPU / BENCH_SERVER_CPU (0 / 1);
# BENCH_UDP_SIZE (payload bytes, default 64).
source "$(dirname "$0")/lib-bench.sh"
bench_init "$1" $(((BENCH_SECONDS + 1) * 6 * BENCH_REPEAT + 150))
SIZE=${BENCH_UDP_SIZE:-64}

echo "== udp_pps: UDP echo of ${SIZE}-byte datagrams, toed (afpacket, afxdp) vs kernel over veth"
bench_machine
echo "# placement: kernel client on CPU $BENCH_CLIENT_CPU; toed and the kernel echo server on CPU $BENCH_SERVER_CPU"
echo "# ${BENCH_SECONDS} s per run, ${BENCH_REPEAT} runs per figure, interleaved (shared machine: compare only figures from one run)"

bench_background
net_setup
bench_start_toed --service echo:7
bench_kernel_setup
bench_kstart KECHO "$BENCH_NETBLAST" udp-echo-server --port 7
bench_xdp_start_toed --service echo:7
echo "# polling: toed sleeps in epoll when idle ($(bench_toed_link)); the kernel servers block in their socket calls"
[ "$BENCH_XDP" = 1 ] && echo "# toed afxdp: $(bench_xdp_link)"

run() { # NAME CLIENT_NS SERVER_PID WINDOW
  bench_measure "$1" "$2" "$3" udp-echo --addr "$NET_DEV_ADDR" --port 7 --size "$SIZE" \
    --window "$4" --seconds "$BENCH_SECONDS"
}
for ((rep = 1; rep <= BENCH_REPEAT; rep++)); do
  run dev_flood.r$rep "$NET_PEER_NS" "$NET_TOED_PID" 0
  [ "$BENCH_XDP" = 1 ] && run xdp_flood.r$rep "$BENCH_XPEER_NS" "$BENCH_XTOED_PID" 0
  run kern_flood.r$rep "$BENCH_KPEER_NS" "$KECHO" 0
  run dev_win.r$rep "$NET_PEER_NS" "$NET_TOED_PID" 64
  [ "$BENCH_XDP" = 1 ] && run xdp_win.r$rep "$BENCH_XPEER_NS" "$BENCH_XTOED_PID" 64
  run kern_win.r$rep "$BENCH_KPEER_NS" "$KECHO" 64
done
XDP_RUNS=()
[ "$BENCH_XDP" = 1 ] && XDP_RUNS=(xdp_flood xdp_win)
for n in dev_flood kern_flood dev_win kern_win "${XDP_RUNS[@]}"; do bench_median $n pps; done
stop_toed
bench_xdp_stop_toed

row() {
  local n=$1 label=$2 o=$NET_TMP/$1.out sc busy sirq c0 c1
  read -r sc busy sirq c0 c1 <"$NET_TMP/$n.cpu"
  printf "| %-28s | %s | %s | %s | %s | %s | %s | %s | %s / %s |\n" "$label" "$(kv pps "$o")" \
    "$(spread "$n")" "$(kv sent_pps "$o")" "$(kv loss_pct "$o")" "$sc" "$busy" "$sirq" "$c0" "$c1"
}
echo
echo "Median of $BENCH_REPEAT runs (other figures from the median run):"
echo
echo "| test | echoed/s | range | sent/s | loss % | server process CPU % | machine busy % (of $NCPU CPUs) | softirq % | CPU0 / CPU1 busy % |"
echo "|---|---|---|---|---|---|---|---|---|"
row dev_flood "flood -> toed echo"
[ "$BENCH_XDP" = 1 ] && row xdp_flood "flood -> toed echo (afxdp)"
row kern_flood "flood -> kernel echo"
row dev_win "window 64 -> toed echo"
[ "$BENCH_XDP" = 1 ] && row xdp_win "window 64 -> toed echo (afxdp)"
row kern_win "window 64 -> kernel echo"
echo
p() { kv pps "$NET_TMP/$1.out"; }
echo "| ratio device/kernel | flood | window 64 |"
echo "|---|---|---|"
echo "| echoed datagrams/s | $(ratio "$(p dev_flood)" "$(p kern_flood)") | $(ratio "$(p dev_win)" "$(p kern_win)") |"
[ "$BENCH_XDP" = 1 ] &&
  echo "| echoed datagrams/s, afxdp | $(ratio "$(p xdp_flood)" "$(p kern_flood)") | $(ratio "$(p xdp_win)" "$(p kern_win)") |"
echo "# toed counters: udp.rx_datagrams $(toed_counter udp.rx_datagrams), udp.tx_datagrams $(toed_counter udp.tx_datagrams)," \
  "udp.rx_drop_queue_full $(toed_counter udp.rx_drop_queue_full), link.rx_drop_nobuf $(toed_counter link.rx_drop_nobuf)," \
  "driver.rx_drop_kernel $(toed_counter driver.rx_drop_kernel), pbuf.alloc_failures $(toed_counter pbuf.alloc_failures)"
if [ "$BENCH_XDP" = 1 ]; then
  echo "# toed afxdp counters: udp.rx_datagrams $(xdp_counter udp.rx_datagrams), udp.tx_datagrams $(xdp_counter udp.tx_datagrams)," \
    "udp.rx_drop_queue_full $(xdp_counter udp.rx_drop_queue_full), link.rx_drop_nobuf $(xdp_counter link.rx_drop_nobuf)," \
    "driver.rx_drop_kernel $(xdp_counter driver.rx_drop_kernel), driver.tx_drop_ring_full $(xdp_counter driver.tx_drop_ring_full)"
fi
echo "# echo bursts: afpacket svc_udp_echo_7.burst_max $(toed_counter svc_udp_echo_7.burst_max)" \
  "(bursts $(toed_counter svc_udp_echo_7.bursts)), driver.tx_kicks $(toed_counter driver.tx_kicks)"
exit 0
