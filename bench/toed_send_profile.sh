#!/usr/bin/env bash
# Where toed's time goes when it sends bulk TCP to a kernel receiver (issue 9): toed chargen ->
# bench_netblast tcp-recv in the peer namespace, one run of BENCH_SECONDS, with toed's counters
# (SIGUSR1 before and after: frames per kick, super-segments, ACKs per receive burst) and, when
# perf is installed and BENCH_PERF=1, a `perf record -g` of toed during the run (software clock
# events: this VM has no PMU). Figures from a loaded machine are noisy; the counters and the
# profile's shape are what this is for.
#
# Usage: sudo bash bench/toed_send_profile.sh BINDIR   (BINDIR: a release build's bin)
# Environment: BENCH_SECONDS (default 4), BENCH_PERF (0/1, default 0), TOED_ARGS (extra toed flags).
source "$(dirname "$0")/lib-bench.sh"
bench_init "$1" $((BENCH_SECONDS + 60))
net_setup
# shellcheck disable=SC2086
bench_start_toed --service chargen:19 --ctl "$NET_TMP/ctl.sock" ${TOED_ARGS:-}
echo "# $(bench_toed_link); peer0 $(bench_offloads "$NET_PEER_NS" "$NET_PEER_IF")"
kill -USR1 "$NET_TOED_PID"
sleep 0.3
cp "$NET_TOED_LOG" "$NET_TMP/before.log"
PERF_PID=
if [ "${BENCH_PERF:-0}" = 1 ] && command -v perf >/dev/null; then
  perf record -g -e cpu-clock -F 2000 -p "$NET_TOED_PID" -o "$NET_TMP/perf.data" \
    -- sleep "$BENCH_SECONDS" >/dev/null 2>&1 &
  PERF_PID=$!
fi
# the connection's state half-way (cwnd, RTT, queues), as `toectl flows` shows it
(sleep $((BENCH_SECONDS / 2)) && "$NET_BINDIR/toectl" --ctl "$NET_TMP/ctl.sock" flows state established \
  >"$NET_TMP/flows" 2>&1) &
FLOWS_PID=$!
bench_measure recv "$NET_PEER_NS" "$NET_TOED_PID" tcp-recv --addr "$NET_DEV_ADDR" --port 19 \
  --seconds "$BENCH_SECONDS"
[ -n "$PERF_PID" ] && wait "$PERF_PID"
wait "$FLOWS_PID"
sed 's/^/# flows: /' "$NET_TMP/flows"
kill -USR1 "$NET_TOED_PID"
sleep 0.3
echo "# client: $(tr '\n' ' ' <"$NET_TMP/recv.out")"
read -r sc busy _ <"$NET_TMP/recv.cpu"
echo "# toed CPU ${sc}%, machine busy ${busy}%"
# Counter deltas between the two dumps (toed prints "layer.name=value" words).
cdump() { grep -o '[a-z0-9_]*\.[a-z0-9_]*=[0-9]*' "$1" | tr '=' ' '; }
awk 'NR == FNR { b[$1] = $2; next } { a[$1] = $2 }
     END { for (k in a) if (a[k] - b[k] != 0) printf "%s %d\n", k, a[k] - b[k] }' \
  <(cdump "$NET_TMP/before.log") <(tail -n +"$(($(wc -l <"$NET_TMP/before.log") + 1))" "$NET_TOED_LOG" | cdump /dev/stdin) |
  sort >"$NET_TMP/delta"
grep -E '^(driver|tcp|link|pbuf)\.' "$NET_TMP/delta" | sed 's/^/#   /'
d() { awk -v k="$1" '$1 == k { print $2 }' "$NET_TMP/delta"; }
awk -v f="$(d driver.tx_frames)" -v k="$(d driver.tx_kicks)" -v g="$(d driver.tx_gso_frames)" \
  -v r="$(d driver.rx_frames)" -v bl="$(d driver.rx_blocks)" -v tb="$(d driver.tx_bytes)" \
  -v ts="$(d tcp.out_tso_frames)" 'BEGIN {
    printf "# frames per kick %.2f; super-segments %d of %d frames, %.0f bytes per frame sent\n", f / (k ? k : 1), g, f, tb / (f ? f : 1);
    printf "# frames received per receive burst %.2f (%d frames, %d bursts)\n", r / (bl ? bl : 1), r, bl }'
if [ -s "$NET_TMP/perf.data" ]; then
  echo "# perf report (toed, self time, top 40)"
  perf report -i "$NET_TMP/perf.data" --no-children --sort symbol --stdio 2>/dev/null |
    grep -E '^ +[0-9]' | head -40
  echo "# perf report (with children, top 40)"
  perf report -i "$NET_TMP/perf.data" --children --sort symbol --stdio -g none 2>/dev/null |
    grep -E '^ +[0-9]' | head -40
fi
stop_toed
