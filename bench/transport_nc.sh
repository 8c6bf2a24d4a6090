#!/usr/bin/env bash
# Bulk TCP through the transport: toe-nc (netcat over libtoe) through the device against the
# kernel's own nc, both ways, in one run (see bench/TRANSPORT.md):
#
#   device:  toe-$$-dev  toe-nc --ctl (libtoe rings) -> toed (engine, AF_PACKET on wire0)
#                        --veth--> toe-$$-peer  kernel nc 198.18.0.2
#   kernel:  toe-$$-kdev kernel nc (198.18.0.1 on wire0, no toed)
#                        --veth--> toe-$$-kpeer kernel nc 198.18.0.2
#
#   send:  the device side's nc (toe-nc, or kernel nc) -N sends NC_MIB MiB from a file to a
#          kernel `nc -l` in the peer namespace, which writes to /dev/null;
#   recv:  a kernel `nc -N` in the peer namespace sends the file to the device side's nc -l.
# The time runs from the sender's start (connect included) until both processes have exited,
# which is after the receiver read the sender's FIN, i.e. every byte. The kernel pair is measured
# with the veth's default offloads (TSO/GSO: 64 KiB super-frames) and with TSO/GSO/GRO off
# (MTU-sized frames, as the device handles them). Each case runs NC_RUNS (3) times, interleaved;
# every figure is the median of its runs.
# CPU: each nc's own utime + stime (read from its wrapper shell's /proc/PID/stat cutime + cstime
# once it has been reaped), toed's from /proc/PID/stat deltas, all in % of one CPU over the
# transfer's wall time; the machine's busy and softirq time from /proc/stat (of all CPUs).
#
# Usage: sudo bash bench/transport_nc.sh BINDIR   (BINDIR: a release build's bin, e.g. build/bin)
# Environment: NC_MIB (512), NC_RUNS (3), BENCH_CLIENT_CPU (the device side's nc, 0),
# BENCH_SERVER_CPU (toed, 1), NC_PEER_CPU (the peer's kernel nc, 1), NC_TOED_POLL_US (toed
# --poll-us, 50).
source "$(dirname "$0")/lib-bench.sh"

NC_MIB=${NC_MIB:-512}
NC_RUNS=${NC_RUNS:-3}
NC_PEER_CPU=${NC_PEER_CPU:-1}
NC_TOED_POLL_US=${NC_TOED_POLL_US:-50}
bench_init "$1" $((300 + NC_RUNS * NC_MIB / 2))
((NCPU >= 2)) || NC_PEER_CPU=0
command -v nc >/dev/null || net_die "missing tool nc (run: make deps)"
command -v ss >/dev/null || net_die "missing tool ss (run: make deps)"
TOE_NC=$NET_BINDIR/toe-nc
[ -x "$TOE_NC" ] || net_die "no toe-nc in $NET_BINDIR (build first)"
CTL=$NET_TMP/toed.sock
# One transfer must end within this many seconds (at 5 MiB/s it would not).
XFER_LIMIT=$((60 + NC_MIB / 5))

echo "== transport_nc: TCP bulk, toe-nc through toed vs kernel nc over veth, ${NC_MIB} MiB each way"
bench_machine
echo "# placement: device side's nc (toe-nc or kernel nc) on CPU $BENCH_CLIENT_CPU; toed on CPU $BENCH_SERVER_CPU; peer's kernel nc on CPU $NC_PEER_CPU"
echo "# polling: toe-nc spin-then-sleep (toe_spin for libtoe's default spin_us, then epoll on toe_event_fd); toed --poll-us $NC_TOED_POLL_US; kernel nc: poll(2), blocking"
echo "# $NC_RUNS runs per case, interleaved; figures are medians of the runs"

bench_background
net_setup
bench_start_toed --ctl "$CTL" --poll-us "$NC_TOED_POLL_US"
bench_kernel_setup
echo "# $(grep -m1 'up on' "$NET_TOED_LOG" | cut -c1-300)"
echo "# device pair: peer0 $(bench_offloads "$NET_PEER_NS" "$NET_PEER_IF") (the peer's kernel hands toed GSO super-frames over the veth)"
echo "# kernel pair: peer0 $(bench_offloads "$BENCH_KPEER_NS" "$NET_PEER_IF"), wire0 $(bench_offloads "$BENCH_KDEV_NS" "$NET_DEV_IF") (\"offloads off\": TSO, GSO, GRO off on both)"

DATA=$NET_TMP/data.bin
head -c "$((NC_MIB * 1048576))" /dev/urandom >"$DATA" || net_die "cannot write $DATA"
cat "$DATA" >/dev/null # in the page cache before the first run

# The wrapper around every nc: `bash -c "$WRAP" wrap REPORT CMD...` runs CMD (inheriting the
# redirections and the CPU affinity) and writes "start end cutime cstime status" to REPORT: wall
# clock stamps (s) around CMD, and CMD's own CPU ticks from this shell's /proc/PID/stat once CMD
# has been reaped (children's user and system time: fields 16 and 17).
# shellcheck disable=SC2016 # expanded by the inner bash
WRAP='rep=$1; shift; s=$EPOCHREALTIME; "$@"; rc=$?; e=$EPOCHREALTIME
read -r st </proc/$$/stat; st=${st##*) }; set -- $st
echo "$s $e ${14} ${15} $rc" >"$rep"'

# until SECONDS CMD...: runs CMD every 50 ms until it succeeds (0) or the time is up (1).
until_ok() {
  local end=$((SECONDS + $1))
  shift
  until "$@"; do
    ((SECONDS >= end)) && return 1
    sleep 0.05
  done
}

# ns_listening NS PORT: a kernel socket in NS listens on PORT.
# shellcheck disable=SC2317 # called through until_ok
ns_listening() { ip netns exec "$1" ss -Hltn "sport = :$2" 2>/dev/null | grep -q .; }

# wait_gone PID SECONDS: waits for a background child to exit; kills it after SECONDS.
wait_gone() {
  local i
  for ((i = 0; i < $2 * 20; i++)); do
    kill -0 "$1" 2>/dev/null || break
    sleep 0.05
  done
  net_kill_pid "$1"
}

PORT=5100
# xfer NAME RUN DIR STACK: one transfer. DIR send|recv; STACK toe|kern. Writes NAME.RUN.tx / .rx
# (the wrappers' reports), NAME.RUN.cpu ("toed_pct busy softirq cpu0 cpu1") and .err files.
xfer() {
  local name=$1 run=$2 dir=$3 stack=$4 base=$NET_TMP/$1.$2
  local dns=$NET_DEV_NS pns=$NET_PEER_NS
  if [ "$stack" = kern ]; then
    dns=$BENCH_KDEV_NS
    pns=$BENCH_KPEER_NS
  fi
  PORT=$((PORT + 1))
  rm -f "$base.tx" "$base.rx"
  local bg tp0 tp1
  # The listening side first (in the background), then the sender in the foreground.
  if [ "$dir" = send ]; then
    ip netns exec "$pns" taskset -c "$NC_PEER_CPU" timeout -k 2 "$XFER_LIMIT" \
      bash -c "$WRAP" wrap "$base.rx" nc -l "$NET_PEER_ADDR" "$PORT" </dev/null >/dev/null \
      2>"$base.rx.err" &
    bg=$!
    net_bg_add "$bg"
    until_ok 5 ns_listening "$pns" "$PORT" || echo "# $name: the peer's nc -l did not listen" >&2
  elif [ "$stack" = toe ]; then
    ip netns exec "$dns" taskset -c "$BENCH_CLIENT_CPU" timeout -k 2 "$XFER_LIMIT" \
      bash -c "$WRAP" wrap "$base.rx" "$TOE_NC" --ctl "$CTL" -v -l "$PORT" </dev/null \
      >/dev/null 2>"$base.rx.err" &
    bg=$!
    net_bg_add "$bg"
    until_ok 10 grep -q '^Listening on' "$base.rx.err" || echo "# $name: toe-nc -l did not listen" >&2
  else
    ip netns exec "$dns" taskset -c "$BENCH_CLIENT_CPU" timeout -k 2 "$XFER_LIMIT" \
      bash -c "$WRAP" wrap "$base.rx" nc -l "$NET_DEV_ADDR" "$PORT" </dev/null >/dev/null \
      2>"$base.rx.err" &
    bg=$!
    net_bg_add "$bg"
    until_ok 5 ns_listening "$dns" "$PORT" || echo "# $name: nc -l did not listen" >&2
  fi
  stat_snap >"$base.s0"
  tp0=$(proc_ticks "$NET_TOED_PID")
  if [ "$dir" = recv ]; then
    ip netns exec "$pns" taskset -c "$NC_PEER_CPU" timeout -k 2 "$XFER_LIMIT" \
      bash -c "$WRAP" wrap "$base.tx" nc -N "$NET_DEV_ADDR" "$PORT" <"$DATA" >/dev/null \
      2>"$base.tx.err"
  elif [ "$stack" = toe ]; then
    ip netns exec "$dns" taskset -c "$BENCH_CLIENT_CPU" timeout -k 2 "$XFER_LIMIT" \
      bash -c "$WRAP" wrap "$base.tx" "$TOE_NC" --ctl "$CTL" -N "$NET_PEER_ADDR" "$PORT" \
      <"$DATA" >/dev/null 2>"$base.tx.err"
  else
    ip netns exec "$dns" taskset -c "$BENCH_CLIENT_CPU" timeout -k 2 "$XFER_LIMIT" \
      bash -c "$WRAP" wrap "$base.tx" nc -N "$NET_PEER_ADDR" "$PORT" <"$DATA" >/dev/null \
      2>"$base.tx.err"
  fi
  wait_gone "$bg" 30
  tp1=$(proc_ticks "$NET_TOED_PID")
  stat_snap >"$base.s1"
  local f
  for f in tx rx; do
    if [ ! -s "$base.$f" ] || [ "$(awk '{ print $5 }' "$base.$f")" != 0 ]; then
      echo "# $name run $run: the $f side failed: $(cat "$base.$f" 2>/dev/null) $(head -c 200 "$base.$f.err" 2>/dev/null)" >&2
    fi
  done
  # toed's CPU over the transfer's span (the process reports' stamps: from the sender's start to
  # the last exit).
  local span
  span=$(span_of "$base")
  {
    awk -v d=$((tp1 - tp0)) -v hz="$CLK_TCK" -v s="$span" \
      'BEGIN { if (s <= 0) s = 1; printf "%.0f ", 100 * d / hz / s }'
    stat_delta "$base.s0" "$base.s1"
  } >"$base.cpu"
}

# span_of BASE: seconds from the sender's start to the later exit (0 if a report is missing).
span_of() {
  if [ -s "$1.tx" ] && [ -s "$1.rx" ]; then
    awk 'NR == 1 { s = $1; e = $2 } NR == 2 { if ($2 > e) e = $2 } END { printf "%.6f", e - s }' \
      "$1.tx" "$1.rx"
  else
    echo 0
  fi
}

for r in $(seq "$NC_RUNS"); do
  bench_set_offloads "$BENCH_KPEER_NS" "$NET_PEER_IF" on
  bench_set_offloads "$BENCH_KDEV_NS" "$NET_DEV_IF" on
  xfer toe_send "$r" send toe
  xfer kern_send "$r" send kern
  xfer toe_recv "$r" recv toe
  xfer kern_recv "$r" recv kern
  bench_set_offloads "$BENCH_KPEER_NS" "$NET_PEER_IF" off
  bench_set_offloads "$BENCH_KDEV_NS" "$NET_DEV_IF" off
  xfer kno_send "$r" send kern
  xfer kno_recv "$r" recv kern
done
bench_set_offloads "$BENCH_KPEER_NS" "$NET_PEER_IF" on
bench_set_offloads "$BENCH_KDEV_NS" "$NET_DEV_IF" on
stop_toed

# fig NAME RUN WHAT: one figure of one run: mibs, tx_pct, rx_pct (the processes' CPU in % of one
# CPU), toed_pct, busy, softirq (machine, % of all CPUs), per_core (MiB/s per busy core).
fig() {
  local base=$NET_TMP/$1.$2 span
  span=$(span_of "$base")
  [ "$span" = 0 ] && return 0
  local ok
  ok=$(awk '$5 != 0 { bad = 1 } END { print bad ? 0 : 1 }' "$base.tx" "$base.rx")
  [ "$ok" = 1 ] || return 0
  local toed busy sirq
  read -r toed busy sirq _ <"$base.cpu"
  case $3 in
  mibs) awk -v m="$NC_MIB" -v s="$span" 'BEGIN { printf "%.1f", m / s }' ;;
  tx_pct | rx_pct)
    awk -v hz="$CLK_TCK" -v s="$span" '{ printf "%.0f", 100 * ($3 + $4) / hz / s }' "$base.${3%_pct}"
    ;;
  toed_pct) echo "$toed" ;;
  busy) echo "$busy" ;;
  softirq) echo "$sirq" ;;
  per_core)
    awk -v m="$NC_MIB" -v s="$span" -v b="$busy" -v n="$NCPU" \
      'BEGIN { if (b + 0 == 0) print "n/a"; else printf "%.0f", m / s / (b * n / 100) }'
    ;;
  esac
}
# med NAME WHAT: the median of a figure over the runs (empty if no run succeeded).
med() {
  local r
  for r in $(seq "$NC_RUNS"); do fig "$1" "$r" "$2"; echo; done | grep -v '^$' | grep -v n/a |
    sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'
}

echo
echo "runs (MiB/s):"
for n in toe_send kern_send kno_send toe_recv kern_recv kno_recv; do
  printf "#   %-10s" "$n"
  for r in $(seq "$NC_RUNS"); do printf " %s" "$(fig "$n" "$r" mibs)"; done
  echo
done

echo
echo "| case | MiB/s | sender CPU % | receiver CPU % | toed CPU % | machine busy % (of $NCPU CPUs) | softirq % | MiB/s per busy core |"
echo "|---|---|---|---|---|---|---|---|"
row() {
  local n=$1 toed
  toed=$(med "$n" toed_pct)
  [[ "$n" == toe_* ]] || toed="-"
  printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n" "$2" "$(med "$n" mibs)" "$(med "$n" tx_pct)" \
    "$(med "$n" rx_pct)" "$toed" "$(med "$n" busy)" "$(med "$n" softirq)" "$(med "$n" per_core)"
}
row toe_send "send: toe-nc -> toed -> kernel nc -l"
row kern_send "send: kernel nc -> kernel nc -l (offloads on)"
row kno_send "send: kernel nc -> kernel nc -l (offloads off)"
row toe_recv "recv: kernel nc -> toed -> toe-nc -l"
row kern_recv "recv: kernel nc -> kernel nc -l (offloads on)"
row kno_recv "recv: kernel nc -> kernel nc -l (offloads off)"
echo
echo "| ratio toe/kernel | MiB/s, offloads on | MiB/s, offloads off | MiB/s per busy core, offloads on | per busy core, offloads off |"
echo "|---|---|---|---|---|"
for d in send recv; do
  echo "| $d | $(ratio "$(med toe_$d mibs)" "$(med kern_$d mibs)") | $(ratio "$(med toe_$d mibs)" "$(med kno_$d mibs)") |" \
    "$(ratio "$(med toe_$d per_core)" "$(med kern_$d per_core)") | $(ratio "$(med toe_$d per_core)" "$(med kno_$d per_core)") |"
done
echo "# toed counters: tcp.out_segs $(toed_counter tcp.out_segs), tcp.retrans_segs $(toed_counter tcp.retrans_segs)," \
  "tcp.rx_data_segs $(toed_counter tcp.rx_data_segs), link.rx_drop_nobuf $(toed_counter link.rx_drop_nobuf)," \
  "pbuf.alloc_failures $(toed_counter pbuf.alloc_failures), driver.rx_gso_frames $(toed_counter driver.rx_gso_frames)"
exit 0
