#!/usr/bin/env bash
# 64-byte TCP ping-pong latency through libtoe and the device, against the same over the kernel's
# sockets, in one run (see bench/TRANSPORT.md):
#
#   device:  toe-$$-dev  bench_pingpong --libtoe -> libtoe rings -> toed (engine, AF_PACKET)
#                        --veth--> toe-$$-peer  bench_pingpong --server (kernel, blocking)
#   kernel:  toe-$$-kdev bench_pingpong --kernel (kernel 198.18.0.1 on wire0)
#                        --veth--> toe-$$-kpeer bench_pingpong --server (kernel, blocking)
#
# Three cases, each PP_RUNS (3) times, interleaved so that the machine's noise falls on all of
# them alike; every figure is the median of its runs:
#   libtoe        the libtoe client, spin-then-sleep (toe_spin for spin_us = PP_SPIN_US, then
#                 poll(2) on toe_event_fd), through toed (--poll-us: PP_TOED_POLL_US)
#   kernel        the kernel client, blocking recv (the default of an ordinary program)
#   kernel-spin   the kernel client, recv(MSG_DONTWAIT) for PP_SPIN_US, then blocking recv: the
#                 same polling as the libtoe client, for a like-for-like ratio
#   kernel-spin2  as kernel-spin, and the server spins the same way: toed keeps the server's CPU
#                 awake by spinning on it (--poll-us), which spares the server side the wake-up
#                 of an idle vCPU; this case gives the kernel the same advantage
# The server is the same kernel echo server (blocking recv/send) in both topologies, on the same
# CPU (a second one, spinning, serves kernel-spin2). Figures: half round trip (RTT / 2) average, p50, p99 in microseconds, round trips/s, the
# client's CPU (getrusage), toed's and the server's CPU (/proc/PID/stat utime + stime deltas over
# the timed round trips, in % of one CPU), and the machine's busy CPU (/proc/stat).
#
# Usage: sudo bash bench/transport_pingpong.sh BINDIR   (BINDIR: a release build's bin, e.g.
# build/bin, holding toed and bench_pingpong; libtoe is found by the binary's rpath)
# Environment: PP_COUNT (timed round trips, 20000), PP_WARMUP (1000), PP_SIZE (64), PP_RUNS (3),
# PP_SPIN_US (libtoe spin_us and the kernel-spin case, 50), PP_TOED_POLL_US (toed --poll-us, 50),
# BENCH_CLIENT_CPU (the clients, 0), BENCH_SERVER_CPU (toed, 1), PP_PEER_CPU (the echo servers, 1).
source "$(dirname "$0")/lib-bench.sh"

PP_COUNT=${PP_COUNT:-20000}
PP_WARMUP=${PP_WARMUP:-1000}
PP_SIZE=${PP_SIZE:-64}
PP_RUNS=${PP_RUNS:-3}
PP_SPIN_US=${PP_SPIN_US:-50}
PP_TOED_POLL_US=${PP_TOED_POLL_US:-50}
PP_PEER_CPU=${PP_PEER_CPU:-1}
PP_PORT=7000
# A round trip through the device may take a few ms on a loaded machine: 20000 of them, three
# times, stay well inside this.
bench_init "$1" $((PP_RUNS * (PP_COUNT + PP_WARMUP) / 100 + 240))
((NCPU >= 2)) || PP_PEER_CPU=0
PP=$NET_BINDIR/bench_pingpong
[ -x "$PP" ] || net_die "no bench_pingpong in $NET_BINDIR (build first)"
CTL=$NET_TMP/toed.sock
# A client must finish its round trips within this many seconds (each runs under timeout).
PP_LIMIT=$((PP_COUNT / 200 + 60))

echo "== transport_pingpong: ${PP_SIZE}-byte TCP ping-pong, libtoe through toed vs kernel sockets over veth"
bench_machine
echo "# placement: clients on CPU $BENCH_CLIENT_CPU; toed on CPU $BENCH_SERVER_CPU; kernel echo servers (peer namespaces) on CPU $PP_PEER_CPU"
echo "# polling: libtoe client spin_us $PP_SPIN_US (toe_spin, then poll(2) on toe_event_fd); toed --poll-us $PP_TOED_POLL_US (spins on the host rings after activity, else epoll on its packet socket)"
echo "#          kernel client: blocking recv (kernel), or recv(MSG_DONTWAIT) for $PP_SPIN_US us then blocking recv (kernel-spin, kernel-spin2)"
echo "#          echo servers: blocking recv/send; kernel-spin2's server spins like the client; TCP_NODELAY everywhere"
echo "# $PP_COUNT timed round trips after $PP_WARMUP untimed, $PP_RUNS runs per case, interleaved; figures are medians of the runs"

bench_background
net_setup
bench_start_toed --ctl "$CTL" --poll-us "$PP_TOED_POLL_US"
bench_kernel_setup

# pp_server NS VAR PORT [ARGS]: the kernel echo server in NS pinned to PP_PEER_CPU; its PID goes
# to VAR.
pp_server() {
  local ns=$1 var=$2 port=$3
  shift 3
  bench_start_listening "$var" "$ns" "$PP_PEER_CPU" "$PP" --server --port "$port" --size "$PP_SIZE" "$@"
}
pp_server "$NET_PEER_NS" DEV_SERVER "$PP_PORT"
pp_server "$BENCH_KPEER_NS" KERN_SERVER "$PP_PORT"
pp_server "$BENCH_KPEER_NS" KERN_SERVER2 $((PP_PORT + 1)) --spin-us "$PP_SPIN_US"

echo "# $(grep -m1 'up on' "$NET_TOED_LOG" | cut -c1-300)"
echo "# device pair: peer0 $(bench_offloads "$NET_PEER_NS" "$NET_PEER_IF"); kernel pair: peer0 $(bench_offloads "$BENCH_KPEER_NS" "$NET_PEER_IF"), wire0 $(bench_offloads "$BENCH_KDEV_NS" "$NET_DEV_IF")"

# run_case NAME RUN CLIENT_NS SERVER_PID PORT CLIENT_ARGS...: one timed client run. Leaves the
# client's output in NAME.RUN.out and "toed_pct server_pct busy softirq cpu0 cpu1" in NAME.RUN.cpu.
run_case() {
  local name=$1 run=$2 ns=$3 spid=$4 port=$5
  shift 5
  local out=$NET_TMP/$name.$run.out s0=$NET_TMP/$name.$run.s0 s1=$NET_TMP/$name.$run.s1
  local tp0 tp1 sp0 sp1 t0 t1
  stat_snap >"$s0"
  tp0=$(proc_ticks "$NET_TOED_PID")
  sp0=$(proc_ticks "$spid")
  t0=$(date +%s.%N)
  ip netns exec "$ns" timeout -k 2 "$PP_LIMIT" taskset -c "$BENCH_CLIENT_CPU" "$PP" "$@" \
    --addr "$NET_PEER_ADDR" --port "$port" --size "$PP_SIZE" --count "$PP_COUNT" \
    --warmup "$PP_WARMUP" >"$out" 2>&1
  local rc=$?
  t1=$(date +%s.%N)
  tp1=$(proc_ticks "$NET_TOED_PID")
  sp1=$(proc_ticks "$spid")
  stat_snap >"$s1"
  ((rc == 0)) || echo "# $name run $run: client exit status $rc: $(grep -m1 '^error' "$out")" >&2
  # The warm-up is inside the window too; it is 1/20 of the round trips by default. What the
  # process figures cover is the whole client run (connect, warm-up, timed round trips).
  {
    awk -v a=$((tp1 - tp0)) -v b=$((sp1 - sp0)) -v hz="$CLK_TCK" -v t0="$t0" -v t1="$t1" \
      'BEGIN { s = t1 - t0; if (s <= 0) s = 1; printf "%.0f %.0f ", 100 * a / hz / s, 100 * b / hz / s }'
    stat_delta "$s0" "$s1"
  } >"$NET_TMP/$name.$run.cpu"
}

CASES=(libtoe kernel kernel-spin kernel-spin2)
P=$PP_PORT
for r in $(seq "$PP_RUNS"); do
  run_case libtoe "$r" "$NET_DEV_NS" "$DEV_SERVER" "$P" --libtoe --ctl "$CTL" --spin-us "$PP_SPIN_US"
  run_case kernel "$r" "$BENCH_KDEV_NS" "$KERN_SERVER" "$P" --kernel
  run_case kernel-spin "$r" "$BENCH_KDEV_NS" "$KERN_SERVER" "$P" --kernel --spin-us "$PP_SPIN_US"
  run_case kernel-spin2 "$r" "$BENCH_KDEV_NS" "$KERN_SERVER2" $((P + 1)) --kernel \
    --spin-us "$PP_SPIN_US"
done
stop_toed

# median NAME KEY: the median over the runs of a client output key ("" if no run has it).
median() {
  local r v vals=()
  for r in $(seq "$PP_RUNS"); do
    v=$(kv "$2" "$NET_TMP/$1.$r.out")
    [ -n "$v" ] && vals+=("$v")
  done
  ((${#vals[@]})) || return 0
  printf '%s\n' "${vals[@]}" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}
# median_cpu NAME FIELD: the median of field FIELD (1-based) of the runs' .cpu files.
median_cpu() {
  local r
  for r in $(seq "$PP_RUNS"); do
    [ -s "$NET_TMP/$1.$r.cpu" ] && awk -v f="$2" '{ print $f }' "$NET_TMP/$1.$r.cpu"
  done | sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'
}
# spun NAME: waits that ended in the spin, in % of all waits, over all runs.
spun() {
  awk '$1 == "waits_spun" { s += $2 } $1 == "waits_slept" { z += $2 }
       END { if (s + z) printf "%.0f", 100 * s / (s + z); else print "n/a" }' "$NET_TMP/$1".*.out
}

echo
echo "runs (half round trip in us: avg / p50 / p99):"
for c in "${CASES[@]}"; do
  for r in $(seq "$PP_RUNS"); do
    o=$NET_TMP/$c.$r.out
    printf "#   %-13s run %s: %s / %s / %s, %s round trips/s\n" "$c" "$r" "$(kv half_rtt_avg_us "$o")" \
      "$(kv half_rtt_p50_us "$o")" "$(kv half_rtt_p99_us "$o")" "$(kv round_trips_per_s "$o")"
  done
done

label() {
  case $1 in
  libtoe) echo "libtoe -> toed -> kernel server (spin $PP_SPIN_US us)" ;;
  kernel) echo "kernel -> kernel server (blocking)" ;;
  kernel-spin) echo "kernel -> kernel server (client spins $PP_SPIN_US us)" ;;
  kernel-spin2) echo "kernel -> kernel server (both spin $PP_SPIN_US us)" ;;
  esac
}
echo
echo "| case | half-RTT avg us | p50 us | p99 us | round trips/s | waits ended in the spin % | client CPU % | toed CPU % | server CPU % | machine busy % (of $NCPU CPUs) |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for c in "${CASES[@]}"; do
  toed_pct=$(median_cpu "$c" 1)
  [ "$c" = libtoe ] || toed_pct="-"
  printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n" "$(label "$c")" \
    "$(median "$c" half_rtt_avg_us)" "$(median "$c" half_rtt_p50_us)" \
    "$(median "$c" half_rtt_p99_us)" "$(median "$c" round_trips_per_s)" "$(spun "$c")" \
    "$(median "$c" cpu_pct)" "$toed_pct" "$(median_cpu "$c" 2)" "$(median_cpu "$c" 3)"
done
echo
echo "| ratio libtoe/kernel (half-RTT; > 1: the device path is slower) | avg | p50 | p99 |"
echo "|---|---|---|---|"
for k in kernel kernel-spin kernel-spin2; do
  echo "| vs $(label "$k") | $(ratio "$(median libtoe half_rtt_avg_us)" "$(median "$k" half_rtt_avg_us)") |" \
    "$(ratio "$(median libtoe half_rtt_p50_us)" "$(median "$k" half_rtt_p50_us)") |" \
    "$(ratio "$(median libtoe half_rtt_p99_us)" "$(median "$k" half_rtt_p99_us)") |"
done
lk=$(awk '$1 == "libtoe_kicks" { k += $2 } $1 == "round_trips" { n += $2 }
          END { if (n) printf "%.2f", k / n; else print "n/a" }' "$NET_TMP"/libtoe.*.out)
echo "# libtoe: doorbells rung to wake toed per round trip: $lk"
echo "# toed counters: tcp.out_segs $(toed_counter tcp.out_segs), tcp.retrans_segs $(toed_counter tcp.retrans_segs)," \
  "link.rx_drop_nobuf $(toed_counter link.rx_drop_nobuf)"
exit 0
