# Shared code of the network benchmarks (bench/*.sh but run-all.sh and tcp_instructions.sh).
# Sourced, never run.
#
# Two identical topologies side by side, each a veth pair between two namespaces:
#
#   device:  toe-$$-peer (kernel client, peer0 198.18.0.2) <--veth--> toe-$$-dev (toed on wire0,
#            198.18.0.1, the kernel kept off the port by toed's port guard)
#   kernel:  toe-$$-kpeer (kernel client, peer0 198.18.0.2) <--veth--> toe-$$-kdev (kernel on
#            wire0, 198.18.0.1, bench_netblast's reference servers)
#
# The device pair and toed come from tests/net/lib.sh (net_setup, wait_toed_ready, teardown); the
# kernel pair is made the same way here. Clients run pinned to BENCH_CLIENT_CPU, servers (toed or
# the kernel servers) to BENCH_SERVER_CPU. Everything is torn down on exit: only the PIDs started
# here are killed, only the namespaces made here deleted.

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../tests/net/lib.sh
source "$BENCH_DIR/../tests/net/lib.sh"

BENCH_CLIENT_CPU=${BENCH_CLIENT_CPU:-0}
BENCH_SERVER_CPU=${BENCH_SERVER_CPU:-1}
BENCH_KDEV_NS=toe-$$-kdev
BENCH_KPEER_NS=toe-$$-kpeer
BENCH_KNS_MADE=0
CLK_TCK=$(getconf CLK_TCK)
NCPU=$(nproc)

bench_cleanup() {
  local rc=$? p
  trap '' INT TERM
  for p in "${NET_PIDS[@]}"; do net_kill_pid "$p"; done
  if [ "$BENCH_KNS_MADE" = 1 ]; then
    ip netns del "$BENCH_KDEV_NS" 2>/dev/null
    ip netns del "$BENCH_KPEER_NS" 2>/dev/null
  fi
  if [ "${BENCH_XNS_MADE:-0}" = 1 ]; then
    ip netns del "$BENCH_XDEV_NS" 2>/dev/null
    ip netns del "$BENCH_XPEER_NS" 2>/dev/null
  fi
  (exit $rc)
  net_cleanup
}

# bench_init BINDIR LIMIT_SECONDS: lib.sh's net_init (root, toed present, temp dir, watchdog), plus
# the kernel pair's teardown and the tools the benchmarks need.
bench_init() {
  NET_REQUIRED_TOOLS="ip ping timeout taskset awk"
  NET_QUIET=1
  net_init "$1" "$2"
  trap bench_cleanup EXIT
  BENCH_NETBLAST=$NET_BINDIR/bench_netblast
  [ -x "$BENCH_NETBLAST" ] || net_die "no bench_netblast in $NET_BINDIR (build first)"
  if ((NCPU < 2)); then
    BENCH_CLIENT_CPU=0
    BENCH_SERVER_CPU=0
  fi
}

# bench_pair_make FLAG DEV_NS PEER_NS: two namespaces (IPv6 off, lo up) joined by a veth pair named
# as lib.sh's (NET_DEV_IF in DEV_NS, NET_PEER_IF in PEER_NS), no addresses yet. FLAG (the name of
# a variable) is set to 1 as soon as a namespace exists, so that bench_cleanup deletes them.
bench_pair_make() {
  local dev=$2 peer=$3 ns
  ip netns add "$dev" || net_die "ip netns add $dev"
  printf -v "$1" 1
  ip netns add "$peer" || net_die "ip netns add $peer"
  for ns in "$dev" "$peer"; do
    net_sysctl "$ns" net.ipv6.conf.all.disable_ipv6 1
    net_sysctl "$ns" net.ipv6.conf.default.disable_ipv6 1
    ip -n "$ns" link set lo up
  done
  ip -n "$dev" link add "$NET_DEV_IF" type veth peer name "$NET_PEER_IF" netns "$peer" ||
    net_die "veth pair $dev <-> $peer"
}

# bench_kernel_setup: the kernel pair, made like lib.sh's net_setup (IPv6 off, same addresses and
# device MAC), with the address on the "device" end because the kernel is the device here.
bench_kernel_setup() {
  bench_pair_make BENCH_KNS_MADE "$BENCH_KDEV_NS" "$BENCH_KPEER_NS"
  ip -n "$BENCH_KDEV_NS" link set "$NET_DEV_IF" address "$NET_DEV_MAC"
  ip -n "$BENCH_KDEV_NS" addr add "$NET_DEV_ADDR/$NET_PREFIX" dev "$NET_DEV_IF" || net_die "kdev addr"
  ip -n "$BENCH_KPEER_NS" addr add "$NET_PEER_ADDR/$NET_PREFIX" dev "$NET_PEER_IF" ||
    net_die "kpeer addr"
  ip -n "$BENCH_KDEV_NS" link set "$NET_DEV_IF" up
  ip -n "$BENCH_KPEER_NS" link set "$NET_PEER_IF" up
  for _ in $(seq 50); do
    ip netns exec "$BENCH_KPEER_NS" ping -c1 -W1 -q "$NET_DEV_ADDR" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  net_die "kernel pair: no ping"
}

# bench_start_toed ARGS...: toed on the device pair, pinned to the server CPU, without a pcap (a
# capture of a bulk transfer would cost more than the transfer). Waits for a ping, and with
# `--ctl PATH` among ARGS for the control socket too.
bench_start_toed() {
  NET_TOED_LOG=$NET_TMP/toed.log
  NET_TOED_STATUS=
  local ctl=(--ctl none) want= prev= a
  for a in "$@"; do
    [ "$prev" = --ctl ] && want=$a && ctl=()
    prev=$a
  done
  # No control socket unless asked: the default path is per interface name, which other runs share.
  "$NET_TOED" --help 2>&1 | grep -q -- '--ctl PATH' || ctl=()
  # ip netns exec and taskset both exec: $! is toed's own PID.
  ip netns exec "$NET_DEV_NS" taskset -c "$BENCH_SERVER_CPU" "$NET_TOED" --wire "$NET_DEV_IF" \
    --addr "$NET_DEV_ADDR/$NET_PREFIX" --mac "$NET_DEV_MAC" "${ctl[@]}" "$@" >"$NET_TOED_LOG" 2>&1 \
    </dev/null &
  NET_TOED_PID=$!
  wait_toed_ready "${BENCH_TOED_WAIT:-10}" # a toed sized for a million connections takes longer
  [ -n "$want" ] || return 0
  for _ in $(seq 50); do
    [ -S "$want" ] && return 0
    sleep 0.1
  done
  net_die "toed made no control socket at $want"
}

# toed's link and polling, from its start-up line ("link afpacket tpacket_v2 rx ring ..."): the
# driver decides how toed waits for frames.
bench_toed_link() {
  grep -m1 'up on' "$NET_TOED_LOG" | sed -n 's/.*; \(link [^;]*\).*/\1/p'
}

# bench_start_listening VAR NS CPU CMD...: starts CMD in namespace NS pinned to CPU, in the
# background, registered for the teardown; its PID goes to VAR. Waits until it prints "listening".
bench_start_listening() {
  local var=$1 ns=$2 cpu=$3 log
  shift 3
  log=$NET_TMP/server.$RANDOM.log
  ip netns exec "$ns" taskset -c "$cpu" "$@" >"$log" 2>&1 </dev/null &
  local pid=$!
  net_bg_add "$pid"
  printf -v "$var" %s "$pid"
  for _ in $(seq 50); do
    grep -q listening "$log" && return 0
    sleep 0.1
  done
  net_die "server in $ns did not start: $* ($(cat "$log"))"
}

# bench_kstart VAR CMD...: bench_start_listening in the kernel "device" namespace on the server CPU.
bench_kstart() {
  local var=$1
  shift
  bench_start_listening "$var" "$BENCH_KDEV_NS" "$BENCH_SERVER_CPU" "$@"
}

# Offload settings of an interface in a namespace, short: "tso on, gso on, gro off".
bench_offloads() {
  local ns=$1 dev=$2
  command -v ethtool >/dev/null || {
    echo "ethtool missing"
    return
  }
  ip netns exec "$ns" ethtool -k "$dev" 2>/dev/null | awk '
    /^tcp-segmentation-offload:/ {t=$2} /^generic-segmentation-offload:/ {g=$2}
    /^generic-receive-offload:/ {r=$2} /^tx-checksumming:/ {c=$2}
    END {printf "tso %s, gso %s, gro %s, tx-csum %s", t, g, r, c}'
}

# bench_set_offloads NS DEV on|off: TSO, GSO and GRO together.
bench_set_offloads() {
  ip netns exec "$1" ethtool -K "$2" tso "$3" gso "$3" gro "$3" >/dev/null 2>&1
}

# ---- CPU accounting ---------------------------------------------------------------------------

# /proc/stat "cpu" lines as "name total idle softirq" (jiffies; idle includes iowait).
stat_snap() {
  awk '/^cpu/ { t = 0; for (i = 2; i <= NF; i++) t += $i; print $1, t, $5 + $6, $8 }' /proc/stat
}

# CPU ticks (user + system) of a process, 0 if it is gone.
proc_ticks() {
  local pid=$1
  if [ -z "$pid" ] || [ ! -r "/proc/$pid/stat" ]; then
    echo 0
    return
  fi
  # Fields after the ")" that ends the command name: state is 1, utime 12, stime 13.
  sed 's/.*) //' "/proc/$pid/stat" | awk '{ print $12 + $13 }'
}

# stat_delta BEFORE AFTER: "busy_pct softirq_pct cpu0_busy_pct cpu1_busy_pct" over the machine
# (busy = not idle/iowait; percentages of all CPUs for the first two, of one CPU for the rest).
stat_delta() {
  awk 'NR == FNR { t[$1] = $2; i[$1] = $3; s[$1] = $4; next }
       { dt = $2 - t[$1]; di = $3 - i[$1]; ds = $4 - s[$1]
         if (dt <= 0) dt = 1
         b[$1] = 100 * (dt - di) / dt; q[$1] = 100 * ds / dt }
       END { printf "%.0f %.0f %.0f %.0f\n", b["cpu"], q["cpu"], b["cpu0"], b["cpu1"] }' "$1" "$2"
}

# bench_background: machine CPU busy % over 2 s before the runs (other users of a shared machine
# show here, and inflate every machine-wide figure that follows).
bench_background() {
  stat_snap >"$NET_TMP/bg.s0"
  sleep 2
  stat_snap >"$NET_TMP/bg.s1"
  local b
  b=$(stat_delta "$NET_TMP/bg.s0" "$NET_TMP/bg.s1")
  echo "# background load before the runs: machine busy ${b%% *}% of $NCPU CPUs (load average $(cut -d' ' -f1-3 /proc/loadavg))"
}

# kv KEY FILE: value of a "key value" line.
kv() { awk -v k="$1" '$1 == k { print $2; exit }' "$2"; }

# bench_measure NAME CLIENT_NS SERVER_PID CLIENT_ARGS...: runs bench_netblast in CLIENT_NS on the
# client CPU with a time limit, around snapshots of /proc/stat and the server's CPU ticks. Leaves
# the client's output in $NET_TMP/NAME.out and "server_cpu_pct busy softirq cpu0 cpu1" in
# $NET_TMP/NAME.cpu.
bench_measure() {
  local name=$1 ns=$2 spid=$3
  shift 3
  local out=$NET_TMP/$name.out
  stat_snap >"$NET_TMP/$name.s0"
  local p0 p1 t0 t1
  p0=$(proc_ticks "$spid")
  t0=$(date +%s.%N)
  ip netns exec "$ns" timeout -k 2 "$BENCH_LIMIT" taskset -c "$BENCH_CLIENT_CPU" \
    "$BENCH_NETBLAST" "$@" >"$out" 2>&1
  t1=$(date +%s.%N)
  p1=$(proc_ticks "$spid")
  stat_snap >"$NET_TMP/$name.s1"
  local span
  span=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
  {
    awk -v d=$((p1 - p0)) -v hz="$CLK_TCK" -v s="$span" 'BEGIN { printf "%.0f ", 100 * d / hz / s }'
    stat_delta "$NET_TMP/$name.s0" "$NET_TMP/$name.s1"
  } >"$NET_TMP/$name.cpu"
  grep '^error' "$out" | sed "s/^/# $name: /" >&2
}

# bench_median NAME KEY: of the runs NAME.r1 .. NAME.rN (BENCH_REPEAT), copies the one with the
# median KEY value to NAME.out / NAME.cpu, and writes "min max n" of KEY to NAME.spread. A run
# without the key counts as 0.
bench_median() {
  local name=$1 key=$2 r
  for ((r = 1; r <= BENCH_REPEAT; r++)); do
    echo "$(kv "$key" "$NET_TMP/$name.r$r.out" | grep . || echo 0) $r"
  done | sort -g >"$NET_TMP/$name.sorted"
  r=$(awk -v n="$BENCH_REPEAT" 'NR == int((n + 1) / 2) { print $2 }' "$NET_TMP/$name.sorted")
  cp "$NET_TMP/$name.r$r.out" "$NET_TMP/$name.out"
  cp "$NET_TMP/$name.r$r.cpu" "$NET_TMP/$name.cpu"
  awk 'NR == 1 { lo = $1 } { hi = $1 } END { print lo, hi, NR }' "$NET_TMP/$name.sorted" \
    >"$NET_TMP/$name.spread"
}

# spread NAME: "min..max" of a test's repeated runs (empty for a single run).
spread() {
  awk '$3 > 1 { printf "%g..%g", $1, $2 }' "$NET_TMP/$1.spread" 2>/dev/null
}

# ratio A B: A/B with two decimals, "n/a" if either is missing or B is zero.
ratio() {
  awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "n/a";
                                    else printf "%.2f", a / b }'
}

# bench_machine: the "# date, kernel, CPUs (model)" line every benchmark's output starts with.
bench_machine() {
  echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -r), ${NCPU} CPUs ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo))"
}

# Seconds of wall time per client run, and runs per figure (the median is reported; the runs of all
# tests are interleaved, so a change in the background load spreads over all of them alike).
BENCH_SECONDS=${BENCH_SECONDS:-4}
BENCH_REPEAT=${BENCH_REPEAT:-3}
BENCH_LIMIT=$((BENCH_SECONDS * 3 + 20))

# ---- toed with the AF_XDP driver beside the AF_PACKET one ------------------------------------
# A third pair, made like lib.sh's device pair: toe-$$-xpeer (kernel client, peer0 198.18.0.2)
# <--veth--> toe-$$-xdev (a second toed with --link afxdp on wire0, 198.18.0.1), so that both
# drivers and the kernel are measured interleaved in one run. Only one toed is busy at a time;
# the other sleeps in epoll.
BENCH_XDEV_NS=toe-$$-xdev
BENCH_XPEER_NS=toe-$$-xpeer
BENCH_XNS_MADE=0
BENCH_XDP=0 # 1 once the AF_XDP toed answers
BENCH_XTOED_PID=
BENCH_XTOED_LOG=

# bench_xdp_start_toed ARGS...: the pair and the AF_XDP toed (pinned to the server CPU, no pcap, no
# control socket). Leaves BENCH_XDP=0 with a note when this toed was built without the driver.
bench_xdp_start_toed() {
  bench_pair_make BENCH_XNS_MADE "$BENCH_XDEV_NS" "$BENCH_XPEER_NS"
  ip -n "$BENCH_XDEV_NS" link set "$NET_DEV_IF" address "$NET_DEV_MAC"
  ip -n "$BENCH_XPEER_NS" addr add "$NET_PEER_ADDR/$NET_PREFIX" dev "$NET_PEER_IF" ||
    net_die "xpeer addr"
  ip -n "$BENCH_XDEV_NS" link set "$NET_DEV_IF" up
  ip -n "$BENCH_XPEER_NS" link set "$NET_PEER_IF" up
  BENCH_XTOED_LOG=$NET_TMP/toed.afxdp.log
  ip netns exec "$BENCH_XDEV_NS" taskset -c "$BENCH_SERVER_CPU" "$NET_TOED" --wire "$NET_DEV_IF" \
    --addr "$NET_DEV_ADDR/$NET_PREFIX" --mac "$NET_DEV_MAC" --ctl none --link afxdp "$@" \
    >"$BENCH_XTOED_LOG" 2>&1 </dev/null &
  BENCH_XTOED_PID=$!
  net_bg_add "$BENCH_XTOED_PID"
  for _ in $(seq 50); do
    if ! kill -0 "$BENCH_XTOED_PID" 2>/dev/null; then
      if grep -q 'built without the AF_XDP driver' "$BENCH_XTOED_LOG"; then
        echo "# toed afxdp: not measured (this toed was built without the AF_XDP driver)"
        return 0
      fi
      net_die "toed --link afxdp exited during start-up: $(tail -3 "$BENCH_XTOED_LOG")"
    fi
    if ip netns exec "$BENCH_XPEER_NS" ping -c1 -W1 -q "$NET_DEV_ADDR" >/dev/null 2>&1; then
      BENCH_XDP=1
      return 0
    fi
    sleep 0.2
  done
  net_die "toed --link afxdp did not answer ping: $(tail -3 "$BENCH_XTOED_LOG")"
}

# bench_xdp_stop_toed: SIGTERM to the AF_XDP toed and wait for its summary.
bench_xdp_stop_toed() {
  [ -n "$BENCH_XTOED_PID" ] || return 0
  net_kill_pid "$BENCH_XTOED_PID"
}

# bench_xdp_link: the AF_XDP toed's link description from its start-up line.
bench_xdp_link() {
  grep -m1 'up on' "$BENCH_XTOED_LOG" | sed -n 's/.*; \(link [^;]*\).*/\1/p'
}

# xdp_counter LAYER.NAME: toed_counter for the AF_XDP toed.
xdp_counter() { NET_TOED_LOG=$BENCH_XTOED_LOG toed_counter "$1"; }

# ---- the same program on the device and on the kernel ------------------------------------------
# The application benchmarks (interception.sh, proxy.sh) run one program twice: MODE "dev" in the
# device pair (toed has the address), MODE "kern" in the kernel pair (that namespace's kernel has
# it). Side "app" is the namespace with the device's address, "peer" the one across the veth.

# bench_ns MODE app|peer: the namespace of that side of MODE's pair.
bench_ns() {
  case "$1.$2" in
  dev.app) echo "$NET_DEV_NS" ;;
  dev.peer) echo "$NET_PEER_NS" ;;
  kern.app) echo "$BENCH_KDEV_NS" ;;
  kern.peer) echo "$BENCH_KPEER_NS" ;;
  *) net_die "bench_ns: no side '$2' of mode '$1'" ;;
  esac
}

# bench_in MODE app|peer CPU CMD...: CMD in that namespace pinned to CPU, bounded by BENCH_LIMIT.
bench_in() {
  local ns cpu=$3
  ns=$(bench_ns "$1" "$2")
  shift 3
  ip netns exec "$ns" taskset -c "$cpu" timeout -k 2 "$BENCH_LIMIT" "$@"
}

# bench_bg MODE app|peer CPU CMD...: CMD in that namespace pinned to CPU, in the background with
# stdin closed, registered for the teardown; its PID is left in BENCH_BG_PID (ip netns exec,
# taskset and env all exec: it is the program's own PID).
bench_bg() {
  local ns cpu=$3
  ns=$(bench_ns "$1" "$2")
  shift 3
  ip netns exec "$ns" taskset -c "$cpu" "$@" </dev/null &
  BENCH_BG_PID=$!
  net_bg_add "$BENCH_BG_PID"
}

# bench_nginx_conf DIR ADDR:PORT ROOT [DIRECTIVE...]: DIR/nginx.conf for one nginx process
# (master_process off: one process serves, the same on both sides of a comparison) serving ROOT,
# without an access log, with its temporary files and error log in DIR; each DIRECTIVE (such as
# "sendfile on;") goes into the http block.
bench_nginx_conf() {
  local d=$1 listen=$2 root=$3 extra=
  shift 3
  [ $# -gt 0 ] && extra=$(printf '  %s\n' "$@")
  mkdir -p "$d/tmp"
  cat >"$d/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
$extra
  client_body_temp_path $d/tmp;
  proxy_temp_path $d/tmp;
  fastcgi_temp_path $d/tmp;
  uwsgi_temp_path $d/tmp;
  scgi_temp_path $d/tmp;
  keepalive_requests 1000000;
  server { listen $listen; root $root; }
}
EOF
}

# bench_wrk_result RAW OUT: wrk's requests/s from its output RAW into OUT (empty if it has none);
# socket errors and non-2xx answers are reported on a "# " line.
bench_wrk_result() {
  awk '/^Requests\/sec:/ { print $2 }' "$1" >"$2"
  if grep -q 'Socket errors\|Non-2xx' "$1"; then
    echo "# $(basename "$2"): $(grep 'Socket errors\|Non-2xx' "$1" | tr '\n' ' ')"
  fi
}

# The results of such runs: each run writes one number (or nothing) to $NET_TMP/NAME.MODE.rN.
# bench_vals NAME MODE: the runs' numbers, sorted; bench_med: their median ("" if none);
# bench_rng: "min..max" ("" for fewer than two).
bench_vals() {
  local r
  for ((r = 1; r <= BENCH_REPEAT; r++)); do cat "$NET_TMP/$1.$2.r$r" 2>/dev/null; done |
    grep -E '^[0-9.]+$' | sort -g
}
bench_med() { bench_vals "$1" "$2" | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'; }
bench_rng() { bench_vals "$1" "$2" | awk 'NR == 1 { lo = $1 } { hi = $1 } END { if (NR > 1) printf "%s..%s", lo, hi }'; }

# bench_row NAME LABEL UNIT: "| LABEL | UNIT | dev (range) | kern (range) | dev/kern |".
bench_row() {
  local d k
  d=$(bench_med "$1" dev)
  k=$(bench_med "$1" kern)
  printf "| %-44s | %s | %s (%s) | %s (%s) | %s |\n" "$2" "$3" "${d:-n/a}" "$(bench_rng "$1" dev)" \
    "${k:-n/a}" "$(bench_rng "$1" kern)" "$(ratio "$d" "$k")"
}
