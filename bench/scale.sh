#!/usr/bin/env bash
# make bench-scale: how many TCP connections one toed holds, what each costs, and how fast it
# takes short ones, beside the kernel in the same run (issue 12 item 16). Not part of make test.
#
#   hold   BENCH_SCALE_CONNS (default 1,000,000) concurrent connections from kernel clients in the
#          peer namespace, split over processes of at most 25,000 connections, each from its own
#          source address (198.18.0.100 and up; BENCH_SCALE_SRCS sets how many addresses the
#          rate test uses, by default one per process) to toed's echo service; then every connection answers one echo; then all
#          close. Reported: the engine's bytes per connection (its own sizing,
#          bench_engine_mem), toed's RSS per connection (held - before), the time of each phase,
#          and after the closes every TCP socket and packet buffer back (toed's exit counters).
#   rate   connections per second, each connect + 16-byte echo + close, BENCH_SCALE_CONC at a
#          time, toed's echo service against the kernel's (bench_conn_scale echo-server in the
#          kernel pair), interleaved, BENCH_REPEAT runs of BENCH_SECONDS, medians.
# Usage: bash bench/scale.sh BINDIR (root). Needs ~6 GB of memory for a million connections
# (mostly the peer kernel's sockets).
source "$(dirname "$0")/lib-bench.sh"
BENCH_REPEAT=${BENCH_REPEAT:-3}
BENCH_SECONDS=${BENCH_SECONDS:-5}
N=${BENCH_SCALE_CONNS:-1000000}
SRCS=${BENCH_SCALE_SRCS:-}
CONC=${BENCH_SCALE_CONC:-64}
# Descriptors per client process: what the hard limit allows (raising it needs CAP_SYS_RESOURCE,
# which a container may not give), at most 250,000.
HARD_NOFILE=$(ulimit -Hn)
[ "$HARD_NOFILE" = unlimited ] && HARD_NOFILE=1048576
PER_PROC=$((HARD_NOFILE - 200 < 25000 ? HARD_NOFILE - 200 : 25000))
procs=$(((N + PER_PROC - 1) / PER_PROC))
# One source address per client process: the kernel looks for a free ephemeral port of an address
# in the odd half of the range first (about 32,000), and past that its search becomes slow enough
# to stall connect() (seen: a third process on one address waited minutes). So at most 25,000
# connections per process and per address.
[ -n "$SRCS" ] || SRCS=$procs
bench_init "$1" $((600 + N / 1000 + 4 * BENCH_REPEAT * (BENCH_SECONDS + 5)))
SCALE=$NET_BINDIR/bench_conn_scale
[ -x "$SCALE" ] || net_die "no bench_conn_scale in $NET_BINDIR (build first)"
((SRCS >= 1 && SRCS <= 150)) || net_die "BENCH_SCALE_SRCS=$SRCS: 1..150 source addresses"
((SRCS >= procs)) || net_die "BENCH_SCALE_SRCS=$SRCS: $N connections need $procs source addresses (one per client process)"

echo "== scale: concurrent connections held by one toed, and the connection rate against the kernel"
echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -r), ${NCPU} CPUs ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
echo "# placement: toed (or the kernel's echo server) on CPU $BENCH_SERVER_CPU, the clients on CPU $BENCH_CLIENT_CPU"
bench_background

net_setup
bench_kernel_setup
# The clients' side: source addresses, every ephemeral port, TIME_WAIT reuse (the rate test's
# clients close first), in both peer namespaces alike.
for ns in "$NET_PEER_NS" "$BENCH_KPEER_NS"; do
  for ((i = 0; i < SRCS; i++)); do
    ip -n "$ns" addr add "198.18.0.$((100 + i))/$NET_PREFIX" dev "$NET_PEER_IF" || net_die "source address"
  done
  net_sysctl "$ns" net.ipv4.ip_local_port_range "1024 65535"
  net_sysctl "$ns" net.ipv4.tcp_tw_reuse 1
done
net_sysctl "$BENCH_KDEV_NS" net.core.somaxconn 65535
net_sysctl "$BENCH_KDEV_NS" net.ipv4.tcp_max_syn_backlog 65535

# The device: the echo service, room for N connections (toed doubles it for closing ones).
BENCH_TOED_WAIT=$((10 + N / 20000)) # its tables (about 1.5 GiB for a million) are cleared at start
bench_start_toed --service echo --max-conns "$N" --pbufs 262144
bench_kstart KECHO prlimit --nofile="$HARD_NOFILE" "$SCALE" echo-server --addr "$NET_DEV_ADDR" --port 7

# client_cmd NS: CLIENT, the prefix that runs bench_conn_scale in NS on the client CPU with every
# descriptor the hard limit allows (ip netns exec, taskset and prlimit exec: a background job's $!
# is timeout's own PID, and timeout passes a SIGTERM on to the client).
client_cmd() {
  CLIENT=(ip netns exec "$1" taskset -c "$BENCH_CLIENT_CPU" prlimit --nofile="$HARD_NOFILE"
    timeout -k 2 $((300 + N / 1000)) "$SCALE")
}

# ---- rate --------------------------------------------------------------------------------------
for ((rep = 1; rep <= BENCH_REPEAT; rep++)); do
  for mode in dev kern; do
    ns=$NET_PEER_NS
    [ "$mode" = kern ] && ns=$BENCH_KPEER_NS
    client_cmd "$ns"
    "${CLIENT[@]}" rate --addr "$NET_DEV_ADDR" --port 7 --src-base 198.18.0.100 --src-count "$SRCS" --seconds "$BENCH_SECONDS" \
      --concurrency "$CONC" >"$NET_TMP/rate.$mode.$rep" 2>&1
  done
done
med() { for ((r = 1; r <= BENCH_REPEAT; r++)); do awk '$1 == "conn_rate" { print $2 }' "$NET_TMP/rate.$1.$r"; done | sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'; }
errs() { for ((r = 1; r <= BENCH_REPEAT; r++)); do awk '$1 == "errors" { print $2 }' "$NET_TMP/rate.$1.$r"; done | paste -sd/; }
rd=$(med dev)
rk=$(med kern)
echo
printf '%-58s %12s %12s %7s\n' "figure (median of $BENCH_REPEAT x ${BENCH_SECONDS}s)" toed kernel ratio
printf '%-58s %12s %12s %7s\n' "connections/s: connect, 16 B echo, close ($CONC at a time)" "${rd:-?}" "${rk:-?}" \
  "$(awk -v a="$rd" -v b="$rk" 'BEGIN { if (a > 0 && b > 0) printf "%.2f", a / b; else print "?" }')"
echo "# errors per run: toed $(errs dev), kernel $(errs kern)"

# ---- hold ----------------------------------------------------------------------------------------
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$NET_TOED_PID/status"; }
# Let the rate test's connections finish closing first (toed's LAST-ACKs, the clients' TIME_WAITs).
sleep 2
rss0=$(rss_kib)
# The client processes connect one after another (each waits for the one before to have all its
# connections up), so that at most 2,000 connects are outstanding at any time; they all hold
# their connections until every one is up and toed's memory is sampled; then they echo one after
# another too (each waits for its go file), then close.
client_cmd "$NET_PEER_NS"
pids=()
left=$N
t0=$SECONDS
for ((p = 0; p < procs; p++)); do
  share=$((left < PER_PROC ? left : PER_PROC))
  left=$((left - share))
  "${CLIENT[@]}" hold --addr "$NET_DEV_ADDR" --port 7 --src-base "198.18.0.$((100 + p))" --src-count 1 \
    --conns "$share" --inflight 2000 --go-file "$NET_TMP/go.$p" >"$NET_TMP/hold.$p" 2>&1 </dev/null &
  pids+=("$!")
  net_bg_add "$!"
  while ! grep -q '^established' "$NET_TMP/hold.$p" 2>/dev/null; do
    kill -0 "$!" 2>/dev/null || break
    sleep 0.2
  done
done
connect_s=$((SECONDS - t0))
sleep 3
rss_held=$(rss_kib)
t1=$SECONDS
for ((p = 0; p < procs; p++)); do
  : >"$NET_TMP/go.$p"
  while ! grep -q '^close_seconds' "$NET_TMP/hold.$p" 2>/dev/null; do
    kill -0 "${pids[$p]}" 2>/dev/null || break
    sleep 0.2
  done
done
echo_s=$((SECONDS - t1))
wait "${pids[@]}" 2>/dev/null
sum() { for ((p = 0; p < procs; p++)); do awk -v k="$1" '$1 == k { print $2 }' "$NET_TMP/hold.$p"; done | awk '{ s += $1 } END { print s + 0 }'; }
est=$(sum established)
ans=$(sum echo_answered)
sleep 3 # the last closes
stop_toed
engine=$("$NET_BINDIR/bench_engine_mem" "$N" | awk '$1 == "engine_bytes_per_tcp_socket" { print $2 }')
echo
echo "hold: $N connections from $SRCS source addresses in $procs client processes"
echo "  established               $est in $connect_s s ($((est / (connect_s > 0 ? connect_s : 1))) per second), failed $(sum connect_failed)"
echo "  answered an echo at end   $ans in $echo_s s (echoes and closes), wrong $(sum echo_wrong)"
echo "  engine bytes/connection   $engine (toe_stack_mem_size; toed sizes for 2 x --max-conns)"
echo "  toed RSS                  $((rss0 / 1024)) MiB before (its tables are sized and touched at start)," \
  "$((rss_held / 1024)) MiB held: $((rss_held * 1024 / N)) bytes per connection in all," \
  "$(((rss_held - rss0) * 1024 / N)) of them added while held"
echo "  after the closes          tcp.socks_inuse $(toed_counter tcp.socks_inuse) (the listener)," \
  "pbuf.inuse $(toed_counter pbuf.inuse), tcp.passive_opens $(toed_counter tcp.passive_opens)"
line=
for c in tcp.syncache_adds tcp.syncache_completed tcp.syncache_overflow tcp.syncache_timeouts \
  tcp.synack_retrans tcp.syncookies_sent tcp.syncookies_recv tcp.syncookies_failed \
  tcp.syncache_bad_acks tcp.out_rsts tcp.rx_resets driver.rx_drop_kernel link.rx_drop_nobuf; do
  line="$line $c=$(toed_counter "$c")"
done
echo "  toed's handshake counters$line"
for ((p = 0; p < procs; p++)); do
  grep -h '^bench_conn_scale' "$NET_TMP/hold.$p"
done | sort | uniq -c | sed 's/^/  client: /' | head -5
net_finish
