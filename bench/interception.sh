#!/usr/bin/env bash
# Unmodified applications preloaded onto the device (libtoe-preload.so) versus the same programs on
# the Linux kernel, side by side in one run (see bench/README.md, section 7):
#   nginx + wrk        requests/s, keep-alive and Connection: close (1 KiB file, 32 connections)
#   redis              redis-benchmark SET and GET ops/s (32 clients, no pipelining)
#   sockperf           ping-pong half-RTT latency, TCP and UDP, 64-byte messages: average and p99
#   iperf3             TCP throughput, peer -> server and server -> peer (-R)
# The server-side program (nginx, redis-server, iperf3 -s, the sockperf ping-pong client) runs in
# the "device" namespace: preloaded over toed in the device pair, plain in the kernel pair, where
# that namespace's kernel has the address instead of toed. The load (wrk, redis-benchmark, the
# iperf3 client, sockperf server) is always the kernel's, in the peer namespace. No assertions.
#
# Usage: sudo bash bench/interception.sh BINDIR     (BINDIR: a release build's bin, e.g. build/bin)
# Environment: BENCH_SECONDS (default 4) per run, BENCH_REPEAT (default 3) runs per figure (median),
# BENCH_CLIENT_CPU (default 0: the applications) / BENCH_SERVER_CPU (default 1: toed and the load).
source "$(dirname "$0")/lib-bench.sh"
bench_init "$1" $((BENCH_REPEAT * (14 * (BENCH_SECONDS + 4)) + 240))
for t in nginx wrk redis-server redis-benchmark sockperf iperf3 "$NET_PY"; do
  command -v "$t" >/dev/null || net_die "missing tool $t (run: bash scripts/deps.sh)"
done
PRELOAD=$(cd "$NET_BINDIR/../lib" 2>/dev/null && pwd)/libtoe-preload.so
[ -f "$PRELOAD" ] || net_die "no libtoe-preload.so at $PRELOAD (build first)"
if ldd "$PRELOAD" | grep -q libasan; then net_die "a sanitizer build: benchmark a release build"; fi
CTL=$NET_TMP/toed.sock
APP_CPU=$BENCH_CLIENT_CPU
LOAD_CPU=$BENCH_SERVER_CPU
REDIS_N=${BENCH_REDIS_N:-40000}
WEB_PORT=8080
REDIS_PORT=6379
IPERF_PORT=5201
SP_TCP=11111
SP_UDP=11112

echo "== interception: unmodified applications, preloaded onto toed vs the kernel"
bench_machine
echo "# placement: the applications (nginx, redis-server, iperf3 -s, sockperf ping-pong) on CPU $APP_CPU;" \
  "toed and the load (wrk, redis-benchmark, iperf3 -c, sockperf server) on CPU $LOAD_CPU"
echo "# ${BENCH_SECONDS} s per run, ${BENCH_REPEAT} runs per figure, device and kernel interleaved (shared machine: compare only figures from one run)"


# app MODE CMD... / load MODE CMD...: CMD in MODE's application namespace on the application CPU
# (preloaded onto toed in "dev") / in the peer namespace on the load CPU, bounded in time.
# app_bg MODE CMD... / load_bg MODE CMD...: the same in the background, registered for the teardown.
PRELOAD_ENV=(env LD_PRELOAD="$PRELOAD" TOE_CTL="$CTL" TOE_STRICT=1)
app_env() { [ "$1" = dev ] && APP_ENV=("${PRELOAD_ENV[@]}") || APP_ENV=(); }
app() {
  local mode=$1
  shift
  app_env "$mode"
  bench_in "$mode" app "$APP_CPU" "${APP_ENV[@]}" "$@"
}
load() {
  local mode=$1
  shift
  bench_in "$mode" peer "$LOAD_CPU" "$@"
}
DEV_PIDS=() # the preloaded servers: they end before toed
app_bg() {
  local mode=$1
  shift
  app_env "$mode"
  bench_bg "$mode" app "$APP_CPU" "${APP_ENV[@]}" "$@"
  [ "$mode" = dev ] && DEV_PIDS+=("$BENCH_BG_PID")
}
load_bg() {
  local mode=$1
  shift
  bench_bg "$mode" peer "$LOAD_CPU" "$@"
}
# up MODE CMD...: retries CMD (in the peer namespace) for up to 10 s
up() {
  local mode=$1
  shift
  for _ in $(seq 100); do
    load "$mode" "$@" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  return 1
}

bench_background
net_setup
bench_start_toed --ctl "$CTL"
bench_kernel_setup
echo "# polling: toed keeps polling a session's rings for $(sed -n 's/.*, poll \([0-9]*\) us.*/\1/p' "$NET_TOED_LOG") us" \
  "after its last activity (--poll-us), then sleeps in epoll ($(bench_toed_link)); the preload's pump" \
  "thread sleeps in poll() on libtoe's event descriptor (no spinning on the host); the applications" \
  "block in epoll_wait/recvfrom as they always do; the kernel baseline never spins"

# ---- the servers, once per mode ---------------------------------------------------------------
WWW=$NET_TMP/www
mkdir -p "$WWW"
head -c 1024 /dev/urandom >"$WWW/1k.bin"
for mode in dev kern; do
  d=$NET_TMP/nginx.$mode
  bench_nginx_conf "$d" "$NET_DEV_ADDR:$WEB_PORT" "$WWW"
  app_bg "$mode" nginx -p "$d" -e "$d/error.log" -c "$d/nginx.conf" >"$d/out" 2>&1
  mkdir -p "$NET_TMP/redis.$mode"
  app_bg "$mode" redis-server --port "$REDIS_PORT" --bind "$NET_DEV_ADDR" --save '' --appendonly no \
    --protected-mode no --daemonize no --dir "$NET_TMP/redis.$mode" \
    --logfile "$NET_TMP/redis.$mode/redis.log" >/dev/null 2>&1
  app_bg "$mode" iperf3 -s -B "$NET_DEV_ADDR" -p "$IPERF_PORT" >"$NET_TMP/iperf3.$mode.log" 2>&1
  load_bg "$mode" sockperf server --tcp -i "$NET_PEER_ADDR" -p "$SP_TCP" >"$NET_TMP/sp_tcp.$mode.log" 2>&1
  load_bg "$mode" sockperf server -i "$NET_PEER_ADDR" -p "$SP_UDP" >"$NET_TMP/sp_udp.$mode.log" 2>&1
  up "$mode" curl -sf -o /dev/null "http://$NET_DEV_ADDR:$WEB_PORT/1k.bin" || net_die "nginx ($mode) does not answer"
  up "$mode" sh -c "redis-cli -h $NET_DEV_ADDR -p $REDIS_PORT ping | grep -q PONG" ||
    net_die "redis-server ($mode) does not answer"
done
sleep 1 # iperf3 -s and the sockperf servers

# ---- the runs ------------------------------------------------------------------------------------
# Each writes one number (or nothing) to $NET_TMP/NAME.MODE.rN, its raw output to NAME.MODE.rN.raw.
S=$BENCH_SECONDS
run_wrk() { # NAME MODE R [ARGS]
  local out=$NET_TMP/$1.$2.r$3 mode=$2
  shift 3
  load "$mode" wrk -t1 -c32 -d"${S}s" "$@" "http://$NET_DEV_ADDR:$WEB_PORT/1k.bin" >"$out.raw" 2>&1
  bench_wrk_result "$out.raw" "$out"
}
run_redis() { # MODE R
  local raw=$NET_TMP/redis.$1.r$2.raw
  load "$1" redis-benchmark -h "$NET_DEV_ADDR" -p "$REDIS_PORT" -c 32 -n "$REDIS_N" -t set,get \
    --csv >"$raw" 2>&1
  awk -F, '{ gsub(/"/, "") } $1 == "SET" { print $2 }' "$raw" >"$NET_TMP/redis_set.$1.r$2"
  awk -F, '{ gsub(/"/, "") } $1 == "GET" { print $2 }' "$raw" >"$NET_TMP/redis_get.$1.r$2"
}
run_sockperf() { # PROTO MODE R
  local proto=$1 mode=$2 r=$3 flag=() port=$SP_UDP raw
  [ "$proto" = tcp ] && flag=(--tcp) && port=$SP_TCP
  raw=$NET_TMP/sp_$proto.$mode.r$r.raw
  app "$mode" sockperf ping-pong "${flag[@]}" -i "$NET_PEER_ADDR" -p "$port" \
    -t "$S" -m 64 </dev/null >"$raw" 2>&1
  sed 's/\x1b\[[0-9;]*m//g' "$raw" | sed -n 's/.*avg-latency=\([0-9.]*\).*/\1/p' \
    >"$NET_TMP/sp_avg_$proto.$mode.r$r"
  sed 's/\x1b\[[0-9;]*m//g' "$raw" | sed -n 's/.*percentile 99.000 = *\([0-9.]*\).*/\1/p' \
    >"$NET_TMP/sp_p99_$proto.$mode.r$r"
}
run_iperf3() { # NAME MODE R [ARGS]
  local out=$NET_TMP/$1.$2.r$3 mode=$2
  shift 3
  load "$mode" iperf3 -J -c "$NET_DEV_ADDR" -p "$IPERF_PORT" -t "$S" "$@" >"$out.raw" 2>&1
  "$NET_PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print("%.3f" % (d["end"]["sum_received"]["bits_per_second"] / 1e9))' \
    "$out.raw" >"$out" 2>/dev/null
}

for ((rep = 1; rep <= BENCH_REPEAT; rep++)); do
  for mode in dev kern; do
    run_wrk web_ka "$mode" "$rep"
    run_wrk web_close "$mode" "$rep" -H 'Connection: close'
    run_redis "$mode" "$rep"
    run_sockperf tcp "$mode" "$rep"
    run_sockperf udp "$mode" "$rep"
    run_iperf3 iperf_up "$mode" "$rep"
    run_iperf3 iperf_down "$mode" "$rep" -R
  done
done

echo
echo "Median of $BENCH_REPEAT runs (range in brackets); ratio = preloaded / kernel (above 1 is better for"
echo "rates, worse for latencies):"
echo
echo "| test | unit | preloaded on toed | kernel | ratio |"
echo "|---|---|---|---|---|"
bench_row web_ka "nginx + wrk -c32, keep-alive" "requests/s"
bench_row web_close "nginx + wrk -c32, Connection: close" "requests/s"
bench_row redis_set "redis-benchmark -c32 SET" "ops/s"
bench_row redis_get "redis-benchmark -c32 GET" "ops/s"
bench_row sp_avg_tcp "sockperf ping-pong TCP 64 B, average" "us half-RTT"
bench_row sp_p99_tcp "sockperf ping-pong TCP 64 B, p99" "us half-RTT"
bench_row sp_avg_udp "sockperf ping-pong UDP 64 B, average" "us half-RTT"
bench_row sp_p99_udp "sockperf ping-pong UDP 64 B, p99" "us half-RTT"
bench_row iperf_up "iperf3 TCP, peer -> application" "Gbit/s"
bench_row iperf_down "iperf3 TCP, application -> peer (-R)" "Gbit/s"
echo
echo "# sockperf: the ping-pong client is the application (CPU $APP_CPU, blocking recvfrom), the server is the kernel's on CPU $LOAD_CPU;" \
  "on different CPUs; in the kernel baseline every round trip wakes a sleeping CPU, over toed the device's 50 us polling window often spares one wake-up"
for f in "$NET_TMP"/nginx.dev/error.log "$NET_TMP"/redis.dev/redis.log; do
  grep -iE '\[(error|crit|alert|emerg)\]|# .*error' "$f" 2>/dev/null | head -3 | sed "s|^|# $(basename "$(dirname "$f")"): |"
done
# the preloaded servers end first, so that toed does not wait for their sessions
for p in "${DEV_PIDS[@]}"; do net_kill_pid "$p"; done
stop_toed
echo "# toed counters: tcp.passive_opens $(toed_counter tcp.passive_opens), tcp.active_opens $(toed_counter tcp.active_opens)," \
  "tcp.retrans_segs $(toed_counter tcp.retrans_segs), udp.rx_drop_queue_full $(toed_counter udp.rx_drop_queue_full)," \
  "link.rx_drop_nobuf $(toed_counter link.rx_drop_nobuf), pbuf.alloc_failures $(toed_counter pbuf.alloc_failures)"
exit 0
