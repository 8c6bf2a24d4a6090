#!/usr/bin/env bash
# Unmodified clients through toe-proxyd (the transparent proxy) versus the same clients on the
# Linux kernel, side by side in one run (see bench/README.md, section 8):
#   curl bulk     one download of BENCH_PROXY_MIB MiB (default 512, a sparse file: nginx sendfile)
#   wrk           keep-alive requests/s, 32 connections, a 1 KiB file
# nginx serves in the peer namespace (the kernel's, in both pairs). curl and wrk run in the
# "device" namespace: over the device pair their flows are intercepted by toe-proxyd and carried
# by toed; in the kernel pair that namespace's kernel has the address and carries them itself.
# No assertions; the ratio is proxy / kernel (above 1: the proxy is faster).
#
# Usage: sudo bash bench/proxy.sh BINDIR     (BINDIR: a release build's bin, e.g. build/bin)
# Environment: BENCH_SECONDS (default 4) per wrk run, BENCH_REPEAT (default 3) runs per figure
# (median), BENCH_PROXY_MIB (default 512), BENCH_CLIENT_CPU (default 0: curl/wrk and toe-proxyd) /
# BENCH_SERVER_CPU (default 1: toed and nginx), BENCH_PROXY_PERF=PATH: `perf record -g` of
# toe-proxyd during each proxied curl, to PATH.rN (perf report -i PATH.rN).
source "$(dirname "$0")/lib-bench.sh"
MIB=${BENCH_PROXY_MIB:-512}
bench_init "$1" $((BENCH_REPEAT * (2 * (BENCH_SECONDS + 4) + 2 * 30) + 120))
for t in nginx wrk curl nft "$NET_PY"; do
  command -v "$t" >/dev/null || net_die "missing tool $t (run: bash scripts/deps.sh)"
done
PROXYD=$NET_BINDIR/toe-proxyd
[ -x "$PROXYD" ] || net_die "no toe-proxyd at $PROXYD (build first)"
if ldd "$PROXYD" | grep -q libasan; then net_die "a sanitizer build: benchmark a release build"; fi
CTL=$NET_TMP/toed.sock
CLI_CPU=$BENCH_CLIENT_CPU
SRV_CPU=$BENCH_SERVER_CPU
WEB_PORT=8080

echo "== proxy: curl and wrk through toe-proxyd (carried by toed) vs the kernel"
bench_machine
echo "# placement: the clients (curl, wrk) and toe-proxyd on CPU $CLI_CPU; toed and nginx (in the peer) on CPU $SRV_CPU"
echo "# curl: ${MIB} MiB once per run; wrk: ${BENCH_SECONDS} s per run; ${BENCH_REPEAT} runs per figure," \
  "proxy and kernel interleaved (shared machine: compare only figures from one run)"

# cli MODE CMD...: CMD in MODE's client namespace (the one with the device's address) on the
# client CPU, bounded in time.
cli() {
  local mode=$1
  shift
  bench_in "$mode" app "$CLI_CPU" "$@"
}

bench_background
net_setup
bench_start_toed --ctl "$CTL"
bench_kernel_setup
echo "# polling: toed keeps polling a session's rings for $(sed -n 's/.*, poll \([0-9]*\) us.*/\1/p' "$NET_TOED_LOG") us" \
  "after its last activity, then sleeps in epoll ($(bench_toed_link)); toe-proxyd sleeps in epoll_wait (no host spinning)"

# ---- nginx in each peer namespace, toe-proxyd in the device namespace ----------------------------
WWW=$NET_TMP/www
mkdir -p "$WWW"
head -c 1024 /dev/urandom >"$WWW/1k.bin"
truncate -s "${MIB}M" "$WWW/bulk.bin" # sparse: no disk, nginx sends it with sendfile
for mode in dev kern; do
  d=$NET_TMP/nginx.$mode
  bench_nginx_conf "$d" "$NET_PEER_ADDR:$WEB_PORT" "$WWW" "sendfile on;"
  bench_bg "$mode" peer "$SRV_CPU" nginx -p "$d" -e "$d/error.log" -c "$d/nginx.conf" >"$d/out" 2>&1
done
ip netns exec "$NET_DEV_NS" taskset -c "$CLI_CPU" "$PROXYD" --ctl "$CTL" \
  --include "tcp:$NET_PEER_ADDR/32:$WEB_PORT" 2>"$NET_TMP/proxyd.log" </dev/null &
PROXY_PID=$!
net_bg_add "$PROXY_PID"
for _ in $(seq 100); do
  grep -q intercepting "$NET_TMP/proxyd.log" && break
  sleep 0.1
done
grep -q intercepting "$NET_TMP/proxyd.log" || net_die "toe-proxyd did not start: $(head -3 "$NET_TMP/proxyd.log")"
for mode in dev kern; do
  ok=0
  for _ in $(seq 100); do
    cli "$mode" curl -sf -o /dev/null "http://$NET_PEER_ADDR:$WEB_PORT/1k.bin" && ok=1 && break
    sleep 0.1
  done
  [ "$ok" = 1 ] || net_die "nginx ($mode) does not answer"
done

# ---- the runs ------------------------------------------------------------------------------------
# Each writes one number (or nothing) to $NET_TMP/NAME.MODE.rN, its raw output to NAME.MODE.rN.raw.
run_curl() { # MODE R
  local out=$NET_TMP/curl.$1.r$2 perf_pid=
  if [ "$1" = dev ] && [ -n "${BENCH_PROXY_PERF:-}" ]; then
    # a profile of toe-proxyd during the proxied downloads (software clock: no PMU in a VM)
    perf record -q -e cpu-clock -F 2000 -g -p "$PROXY_PID" -o "$BENCH_PROXY_PERF.r$2" \
      >/dev/null 2>&1 &
    perf_pid=$!
    sleep 0.5
  fi
  cli "$1" curl -sS -o /dev/null -w '%{speed_download} %{size_download}\n' \
    "http://$NET_PEER_ADDR:$WEB_PORT/bulk.bin" >"$out.raw" 2>&1
  if [ -n "$perf_pid" ]; then
    kill -INT "$perf_pid"
    wait "$perf_pid"
  fi
  # bytes/s -> Gbit/s, only for a complete download
  awk -v want=$((MIB * 1048576)) 'NF == 2 && $2 == want { printf "%.3f\n", $1 * 8 / 1e9 }' "$out.raw" >"$out"
}
run_wrk() { # MODE R
  local out=$NET_TMP/wrk.$1.r$2
  cli "$1" wrk -t1 -c32 -d"${BENCH_SECONDS}s" "http://$NET_PEER_ADDR:$WEB_PORT/1k.bin" >"$out.raw" 2>&1
  bench_wrk_result "$out.raw" "$out"
}
# toe-proxyd's CPU time (user + system ticks) during its curl and its wrk runs
PT_CURL=0
PT_WRK=0
for ((rep = 1; rep <= BENCH_REPEAT; rep++)); do
  for mode in dev kern; do
    t0=$(proc_ticks "$PROXY_PID")
    run_curl "$mode" "$rep"
    t1=$(proc_ticks "$PROXY_PID")
    run_wrk "$mode" "$rep"
    t2=$(proc_ticks "$PROXY_PID")
    if [ "$mode" = dev ]; then
      PT_CURL=$((PT_CURL + t1 - t0))
      PT_WRK=$((PT_WRK + t2 - t1))
    fi
  done
done

echo
echo "Median of $BENCH_REPEAT runs (range in brackets); ratio = through toe-proxyd / kernel (above 1: the proxy is faster):"
echo
echo "| test | unit | through toe-proxyd | kernel | ratio |"
echo "|---|---|---|---|---|"
bench_row curl "curl ${MIB} MiB from nginx" "Gbit/s"
bench_row wrk "nginx + wrk -c32, keep-alive" "requests/s"
echo
kill -USR1 "$PROXY_PID" 2>/dev/null
sleep 0.3
# Its CPU per unit of work (less sensitive to a loaded machine than the rates above): per GiB
# of the curl runs, per request of the wrk runs (wrk's totals from its raw output).
REQS=$(cat "$NET_TMP"/wrk.dev.r*.raw 2>/dev/null | awk '/requests in/ { n += $1 } END { print n + 0 }')
awk -v c="$PT_CURL" -v w="$PT_WRK" -v hz="$CLK_TCK" -v gib="$(awk -v m="$MIB" -v r="$BENCH_REPEAT" 'BEGIN { print m * r / 1024 }')" \
  -v reqs="$REQS" 'BEGIN { printf "# toe-proxyd CPU: %.3f s per GiB relayed (curl runs, %.2f s in all); %s us per request (wrk runs, %.2f s for %d requests)\n",
    c / hz / gib, c / hz, reqs ? sprintf("%.1f", w / hz / reqs * 1e6) : "n/a", w / hz, reqs }'
grep 'counters (SIGUSR1)' "$NET_TMP/proxyd.log" | tail -1 | sed 's/^/# /'
for f in "$NET_TMP"/nginx.*/error.log; do
  grep -iE '\[(error|crit|alert|emerg)\]' "$f" 2>/dev/null | head -3 | sed "s|^|# $(basename "$(dirname "$f")"): |"
done
net_kill_pid "$PROXY_PID"
stop_toed
echo "# toed counters: tcp.active_opens $(toed_counter tcp.active_opens), tcp.retrans_segs $(toed_counter tcp.retrans_segs)," \
  "link.rx_drop_nobuf $(toed_counter link.rx_drop_nobuf), pbuf.alloc_failures $(toed_counter pbuf.alloc_failures)"
exit 0
