#!/usr/bin/env bash
# Instructions per echoed UDP datagram in toed (issue 9, udp_pps), counted exactly with callgrind:
# toed runs under valgrind with collection switched on only inside its data path (the link
# driver's receive burst with the engine input it drives, the burst's deferred output, the
# services' run that answers the queue, the engine's timer poll) and a kernel client in the peer
# namespace keeps BENCH_WINDOW datagrams of BENCH_UDP_SIZE bytes in flight for BENCH_SECONDS.
# The count divided by the datagrams echoed is load-independent (wall-clock rates under valgrind
# mean nothing); toed's own counters say how many datagrams each receive burst and each service
# run took (batching) and how many frames each TX kick sent.
#
# Usage: sudo bash bench/udp_instructions.sh BINDIR   (BINDIR: a release build's bin)
# Environment: BENCH_SECONDS (default 5), BENCH_WINDOW (default 64), BENCH_UDP_SIZE (default 64),
#   TOED_ARGS (extra toed flags, e.g. "--link afxdp").
BENCH_SECONDS=${BENCH_SECONDS:-5}
source "$(dirname "$0")/lib-bench.sh"
bench_init "$1" $((BENCH_SECONDS + 120))
command -v valgrind >/dev/null || {
  echo "== udp_instructions: skipped: valgrind is not installed (apt-get install valgrind)"
  exit 0
}
SIZE=${BENCH_UDP_SIZE:-64}
WINDOW=${BENCH_WINDOW:-64}
echo "== udp_instructions: instructions per echoed ${SIZE}-byte UDP datagram in toed (callgrind)"
echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(valgrind --version), window $WINDOW, ${BENCH_SECONDS} s"
net_setup
# toed under callgrind: a wrapper that execs valgrind, so the PID lib.sh keeps is valgrind's (toed's).
REAL_TOED=$NET_TOED
CG_OUT=$NET_TMP/toed.cg
NET_TOED=$NET_TMP/toed-callgrind
cat >"$NET_TOED" <<EOF
#!/bin/sh
exec valgrind --tool=callgrind --collect-atstart=no --toggle-collect=afp_rx_burst \
  --toggle-collect=afx_rx_burst --toggle-collect=toe_stack_burst_end \
  --toggle-collect=toed_services_run --toggle-collect=toe_stack_poll \
  --callgrind-out-file=$CG_OUT "$REAL_TOED" "\$@"
EOF
chmod +x "$NET_TOED"
# shellcheck disable=SC2086
BENCH_TOED_WAIT=60 bench_start_toed --service echo:7 ${TOED_ARGS:-}
echo "# $(bench_toed_link)"
# Warm-up: the first datagrams (ARP, the start of toed's loop under valgrind) are not measured;
# the counts start from zero after it (callgrind_control -z) and the counters from a dump.
peer "$BENCH_NETBLAST" udp-echo --addr "$NET_DEV_ADDR" --port 7 --size "$SIZE" \
  --window "$WINDOW" --seconds 2 >"$NET_TMP/warmup.out" 2>&1
callgrind_control -z "$NET_TOED_PID" >/dev/null 2>&1 || net_die "callgrind_control -z failed"
kill -USR1 "$NET_TOED_PID"
sleep 0.5
cp "$NET_TOED_LOG" "$NET_TMP/before.log"
peer "$BENCH_NETBLAST" udp-echo --addr "$NET_DEV_ADDR" --port 7 --size "$SIZE" \
  --window "$WINDOW" --seconds "$BENCH_SECONDS" >"$NET_TMP/client.out" 2>&1 ||
  net_die "the client failed: $(tail -3 "$NET_TMP/client.out")"
kill -USR1 "$NET_TOED_PID"
sleep 0.5
cp "$NET_TOED_LOG" "$NET_TMP/after.log"
stop_toed
[ -n "${BENCH_KEEP:-}" ] && cp "$NET_TMP"/*.log "$NET_TMP/client.out" "$CG_OUT" "$BENCH_KEEP"/
[ -s "$CG_OUT" ] || net_die "callgrind wrote no profile (toed status $NET_TOED_STATUS)"
kvc() { awk -v k="$1" '$1 == k { print $2; exit }' "$NET_TMP/client.out"; }
TOTAL=$(awk '/^totals:/ { print $2; exit }' "$CG_OUT")
# A counter's growth between the two SIGUSR1 dumps (toed prints "layer.name=value" words).
delta() {
  local b a
  b=$(grep -o "[^ ]*$1=[0-9]*" "$NET_TMP/before.log" | tail -1 | cut -d= -f2)
  a=$(grep -o "[^ ]*$1=[0-9]*" "$NET_TMP/after.log" | tail -1 | cut -d= -f2)
  echo $((${a:-0} - ${b:-0}))
}
# the datagrams the echo service answered in the measured interval (the client counts late
# answers apart, and toed under valgrind answers late)
GOT=$(delta "echo_7.tx_datagrams")
echo "# client: sent $(kvc sent), answered in time $(kvc received), late $(kvc late); toed echoed $GOT"
((GOT > 0)) || net_die "nothing was echoed"
per() { awk -v a="$1" -v s="$2" 'BEGIN { if (s + 0 == 0) print "n/a"; else printf "%.1f", a / s }'; }
echo
echo "| figure | value |"
echo "|---|---|"
echo "| instructions in toed's data path (callgrind) | $TOTAL |"
echo "| datagrams echoed | $GOT |"
echo "| **instructions per echoed datagram** | $(per "$TOTAL" "$GOT") |"
echo "| datagrams per service run (echo rx_datagrams / bursts) | $(per "$(delta echo_7.rx_datagrams)" "$(delta echo_7.bursts)") |"
echo "| frames per TX kick (driver tx_frames / tx_kicks) | $(per "$(delta driver.tx_frames)" "$(delta driver.tx_kicks)") |"
echo
echo "toed functions by own instructions per echoed datagram (top 15):"
echo
echo "| instructions per datagram | function |"
echo "|---|---|"
callgrind_annotate --threshold=100 "$CG_OUT" 2>/dev/null |
  awk -v s="$GOT" '/^[ 0-9,]+ \(/ && /:/ { v = $1; gsub(/,/, "", v); fn = $0; sub(/^[^)]*\) +/, "", fn);
                   sub(/ \[.*$/, "", fn); n = split(fn, a, ":"); f = a[n];
                   if (f ~ /^(main$|0x|\(below|__libc_start)/ || ++k > 15) next;
                   printf "| %.1f | %s |\n", v / s, f }'
exit 0
