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
echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -r), ${NCPU} CPUs ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo))"
echo "# placement: the applications (nginx, redis-server, iperf3 -s, sockperf ping-pong) on CPU $APP_CPU;" \
  "toed and the load (wrk, redis-benchmark, iperf3 -c, sockperf server) on CPU $LOAD_CPU"
echo "# ${BENCH_SECONDS} s per run, ${BENCH_REPEAT} runs per figure, device and kernel interleaved (shared machine: compare only figures from one run)"


# app_cmd MODE: sets APP to the prefix that runs a command in MODE's application namespace on the
# application CPU, preloaded in "dev"; load_cmd MODE: LOAD, the peer namespace on the load CPU.
# (ip netns exec, taskset and env all exec: a background job's $! is the program's own pid.)
app_cmd() {
  if [ "$1" = dev ]; then
    APP=(ip netns exec "$NET_DEV_NS" taskset -c "$APP_CPU" env LD_PRELOAD="$PRELOAD" TOE_CTL="$CTL"
      TOE_STRICT=1)
  else
    APP=(ip netns exec "$BENCH_KDEV_NS" taskset -c "$APP_CPU")
  fi
}
load_cmd() {
  local ns=$NET_PEER_NS
  [ "$1" = kern ] && ns=$BENCH_KPEER_NS
  LOAD=(ip netns exec "$ns" taskset -c "$LOAD_CPU")
}
app() {
  app_cmd "$1"
  shift
  "${APP[@]}" "$@"
}
load() {
  load_cmd "$1"
  shift
  "${LOAD[@]}" timeout -k 2 "$BENCH_LIMIT" "$@"
}
# app_bg MODE CMD... / load_bg MODE CMD...: in the background, registered for the teardown
DEV_PIDS=()
app_bg() {
  local mode=$1
  app_cmd "$mode"
  shift
  "${APP[@]}" "$@" </dev/null &
  net_bg_add "$!"
  [ "$mode" = dev ] && DEV_PIDS+=("$!")
}
load_bg() {
  load_cmd "$1"
  shift
  "${LOAD[@]}" "$@" </dev/null &
  net_bg_add "$!"
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
  mkdir -p "$d/tmp"
  # master_process off: one process serves, the same on both sides of the comparison
  cat >"$d/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $d/tmp;
  proxy_temp_path $d/tmp;
  fastcgi_temp_path $d/tmp;
  uwsgi_temp_path $d/tmp;
  scgi_temp_path $d/tmp;
  keepalive_requests 1000000;
  server { listen $NET_DEV_ADDR:$WEB_PORT; root $WWW; }
}
EOF
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
  awk '/^Requests\/sec:/ { print $2 }' "$out.raw" >"$out"
  if grep -q 'Socket errors\|Non-2xx' "$out.raw"; then
    echo "# $(basename "$out"): $(grep 'Socket errors\|Non-2xx' "$out.raw" | tr '\n' ' ')"
  fi
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
  app "$mode" timeout -k 2 "$BENCH_LIMIT" sockperf ping-pong "${flag[@]}" -i "$NET_PEER_ADDR" -p "$port" \
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

# med NAME MODE: the median of the runs' numbers ("" if none); rng NAME MODE: "min..max"
vals() { for ((r = 1; r <= BENCH_REPEAT; r++)); do cat "$NET_TMP/$1.$2.r$r" 2>/dev/null; done | grep -E '^[0-9.]+$' | sort -g; }
med() { vals "$1" "$2" | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'; }
rng() { vals "$1" "$2" | awk 'NR == 1 { lo = $1 } { hi = $1 } END { if (NR > 1) printf "%s..%s", lo, hi }'; }

row() { # NAME LABEL UNIT BETTER
  local d k
  d=$(med "$1" dev)
  k=$(med "$1" kern)
  printf "| %-44s | %s | %s (%s) | %s (%s) | %s |\n" "$2" "$3" "${d:-n/a}" "$(rng "$1" dev)" \
    "${k:-n/a}" "$(rng "$1" kern)" "$(ratio "$d" "$k")"
}

echo
echo "Median of $BENCH_REPEAT runs (range in brackets); ratio = preloaded / kernel (above 1 is better for"
echo "rates, worse for latencies):"
echo
echo "| test | unit | preloaded on toed | kernel | ratio |"
echo "|---|---|---|---|---|"
row web_ka "nginx + wrk -c32, keep-alive" "requests/s"
row web_close "nginx + wrk -c32, Connection: close" "requests/s"
row redis_set "redis-benchmark -c32 SET" "ops/s"
row redis_get "redis-benchmark -c32 GET" "ops/s"
row sp_avg_tcp "sockperf ping-pong TCP 64 B, average" "us half-RTT"
row sp_p99_tcp "sockperf ping-pong TCP 64 B, p99" "us half-RTT"
row sp_avg_udp "sockperf ping-pong UDP 64 B, average" "us half-RTT"
row sp_p99_udp "sockperf ping-pong UDP 64 B, p99" "us half-RTT"
row iperf_up "iperf3 TCP, peer -> application" "Gbit/s"
row iperf_down "iperf3 TCP, application -> peer (-R)" "Gbit/s"
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
