#!/usr/bin/env bash
# Single-connection TCP bulk throughput, device versus kernel, over the same kind of veth pair, in
# one run (see bench/README.md):
#   send:  the kernel client writes to a discard server (port 9) for BENCH_SECONDS, then waits for
#          the server's FIN, so the time covers every byte up to its consumption;
#   recv:  the kernel client reads from a chargen server (port 19) for BENCH_SECONDS.
# Servers: toed (--service discard:9 --service chargen:19) with the AF_PACKET driver, the same with
# the AF_XDP driver (--link afxdp) on a second namespace pair, then bench_netblast's kernel servers
# in a third; the kernel is measured with the veth's default offloads (TSO/GSO/GRO: the
# kernel moves 64 KiB super-frames) and with them off (MTU-sized frames, as the device sees them).
# Figures: Gbit/s at the kernel client, CPU of the server process (/proc/PID/stat), of the client
# (getrusage), and of the whole machine (/proc/stat deltas: busy and softirq), ratios device/kernel.
#
# Usage: sudo bash bench/tcp_bulk.sh BINDIR     (BINDIR: a release build's bin, e.g. build/bin)
# Environment: BENCH_SECONDS (default 4) per run, BENCH_REPEAT (default 3) runs per figure (median); BENCH_CLIENT_CPU / BENCH_SERVER_CPU (0 / 1).
source "$(dirname "$0")/lib-bench.sh"
bench_init "$1" $(((BENCH_SECONDS + 3) * 8 * BENCH_REPEAT + 210))

echo "== tcp_bulk: single-connection TCP bulk throughput, toed vs kernel over veth"
bench_machine
echo "# placement: kernel clients on CPU $BENCH_CLIENT_CPU; toed and the kernel servers on CPU $BENCH_SERVER_CPU"
echo "# ${BENCH_SECONDS} s per run, ${BENCH_REPEAT} runs per figure, interleaved (shared machine: compare only figures from one run)"

bench_background
net_setup
bench_start_toed --service discard:9 --service chargen:19
bench_kernel_setup
bench_kstart KDISCARD "$BENCH_NETBLAST" tcp-server --port 9 --mode discard
bench_kstart KCHARGEN "$BENCH_NETBLAST" tcp-server --port 19 --mode chargen
bench_xdp_start_toed --service discard:9 --service chargen:19

echo "# device pair: peer0 $(bench_offloads "$NET_PEER_NS" "$NET_PEER_IF")"
echo "# polling: toed sleeps in epoll when idle ($(bench_toed_link)); the kernel servers block in their socket calls"
[ "$BENCH_XDP" = 1 ] && echo "# toed afxdp: $(bench_xdp_link); its peer0 $(bench_offloads "$BENCH_XPEER_NS" "$NET_PEER_IF")"
echo "# kernel pair: peer0 $(bench_offloads "$BENCH_KPEER_NS" "$NET_PEER_IF"), wire0 $(bench_offloads "$BENCH_KDEV_NS" "$NET_DEV_IF")"

D=$NET_DEV_ADDR
run() { # NAME CLIENT_NS SERVER_PID CMD PORT
  bench_measure "$1" "$2" "$3" "$4" --addr "$D" --port "$5" --seconds "$BENCH_SECONDS"
}
for ((rep = 1; rep <= BENCH_REPEAT; rep++)); do
  bench_set_offloads "$BENCH_KPEER_NS" "$NET_PEER_IF" on
  bench_set_offloads "$BENCH_KDEV_NS" "$NET_DEV_IF" on
  run dev_send.r$rep "$NET_PEER_NS" "$NET_TOED_PID" tcp-send 9
  [ "$BENCH_XDP" = 1 ] && run xdp_send.r$rep "$BENCH_XPEER_NS" "$BENCH_XTOED_PID" tcp-send 9
  run kern_send.r$rep "$BENCH_KPEER_NS" "$KDISCARD" tcp-send 9
  run dev_recv.r$rep "$NET_PEER_NS" "$NET_TOED_PID" tcp-recv 19
  [ "$BENCH_XDP" = 1 ] && run xdp_recv.r$rep "$BENCH_XPEER_NS" "$BENCH_XTOED_PID" tcp-recv 19
  run kern_recv.r$rep "$BENCH_KPEER_NS" "$KCHARGEN" tcp-recv 19
  bench_set_offloads "$BENCH_KPEER_NS" "$NET_PEER_IF" off
  bench_set_offloads "$BENCH_KDEV_NS" "$NET_DEV_IF" off
  [ "$rep" = 1 ] && echo "# kernel pair with offloads off: peer0 $(bench_offloads "$BENCH_KPEER_NS" "$NET_PEER_IF"), wire0 $(bench_offloads "$BENCH_KDEV_NS" "$NET_DEV_IF")"
  run kno_send.r$rep "$BENCH_KPEER_NS" "$KDISCARD" tcp-send 9
  run kno_recv.r$rep "$BENCH_KPEER_NS" "$KCHARGEN" tcp-recv 19
done
XDP_RUNS=()
[ "$BENCH_XDP" = 1 ] && XDP_RUNS=(xdp_send xdp_recv)
for n in dev_send kern_send kno_send dev_recv kern_recv kno_recv "${XDP_RUNS[@]}"; do bench_median $n gbps; done
stop_toed
bench_xdp_stop_toed

# row NAME LABEL: one table line from the run's files.
row() {
  local n=$1 label=$2 o=$NET_TMP/$1.out c g cl sc busy sirq c0 c1 per
  read -r sc busy sirq c0 c1 <"$NET_TMP/$n.cpu"
  g=$(kv gbps "$o")
  if [ -z "$g" ] || grep -q '^error connect' "$o"; then
    g="n/a ($(grep -m1 '^error' "$o" | cut -c7-60))"
  fi
  cl=$(awk '$1 == "cpu_user" {u = $2} $1 == "cpu_sys" {s = $2} $1 == "seconds" {t = $2}
            END { if (t > 0) printf "%.0f", 100 * (u + s) / t; else print "n/a" }' "$o")
  # Gbit/s per busy core of the machine: what the whole transfer cost, softirqs included.
  per=$(awk -v g="$(kv gbps "$o")" -v b="$busy" -v n="$NCPU" \
    'BEGIN { if (g == "" || b + 0 == 0) print "n/a"; else printf "%.2f", g / (b * n / 100) }')
  printf "| %-38s | %s | %s | %s | %s | %s | %s | %s / %s | %s |\n" "$label" "$g" "$(spread "$n")" \
    "$sc" "$cl" "$busy" "$sirq" "$c0" "$c1" "$per"
}

echo
echo "Median of $BENCH_REPEAT runs (CPU figures from the median run):"
echo
echo "| test | Gbit/s | range | server process CPU % | client CPU % | machine busy % (of $NCPU CPUs) | softirq % | CPU0 / CPU1 busy % | Gbit/s per busy core |"
echo "|---|---|---|---|---|---|---|---|---|"
row dev_send "send -> toed discard"
[ "$BENCH_XDP" = 1 ] && row xdp_send "send -> toed discard (afxdp)"
row kern_send "send -> kernel discard (offloads on)"
row kno_send "send -> kernel discard (offloads off)"
row dev_recv "recv <- toed chargen"
[ "$BENCH_XDP" = 1 ] && row xdp_recv "recv <- toed chargen (afxdp)"
row kern_recv "recv <- kernel chargen (offloads on)"
row kno_recv "recv <- kernel chargen (offloads off)"
echo
echo "| ratio device/kernel | offloads on | offloads off |"
echo "|---|---|---|"
g() { kv gbps "$NET_TMP/$1.out"; }
echo "| send throughput | $(ratio "$(g dev_send)" "$(g kern_send)") | $(ratio "$(g dev_send)" "$(g kno_send)") |"
echo "| recv throughput | $(ratio "$(g dev_recv)" "$(g kern_recv)") | $(ratio "$(g dev_recv)" "$(g kno_recv)") |"
if [ "$BENCH_XDP" = 1 ]; then
  echo "| send throughput, afxdp | $(ratio "$(g xdp_send)" "$(g kern_send)") | $(ratio "$(g xdp_send)" "$(g kno_send)") |"
  echo "| recv throughput, afxdp | $(ratio "$(g xdp_recv)" "$(g kern_recv)") | $(ratio "$(g xdp_recv)" "$(g kno_recv)") |"
fi
for n in dev_send dev_recv kern_send kern_recv kno_send kno_recv "${XDP_RUNS[@]}"; do
  if [ "$(kv drained_fin "$NET_TMP/$n.out")" = 0 ]; then
    echo "# $n: the server's FIN did not come within 10 s: the figure counts bytes written, not consumed"
  fi
done
echo "# toed counters: tcp.out_segs $(toed_counter tcp.out_segs), tcp.retrans_segs $(toed_counter tcp.retrans_segs)," \
  "tcp.rx_data_segs $(toed_counter tcp.rx_data_segs), tcp.rx_drop_ooo_full $(toed_counter tcp.rx_drop_ooo_full)," \
  "link.rx_drop_nobuf $(toed_counter link.rx_drop_nobuf), pbuf.alloc_failures $(toed_counter pbuf.alloc_failures)," \
  "driver.rx_gso_frames $(toed_counter driver.rx_gso_frames)"
if [ "$BENCH_XDP" = 1 ]; then
  echo "# toed afxdp counters: tcp.out_segs $(xdp_counter tcp.out_segs), tcp.retrans_segs $(xdp_counter tcp.retrans_segs)," \
    "tcp.rx_data_segs $(xdp_counter tcp.rx_data_segs), link.rx_drop_nobuf $(xdp_counter link.rx_drop_nobuf)," \
    "driver.rx_drop_kernel $(xdp_counter driver.rx_drop_kernel), driver.rx_csum_fixed $(xdp_counter driver.rx_csum_fixed)"
fi
exit 0
