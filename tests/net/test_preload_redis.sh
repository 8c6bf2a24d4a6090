#!/usr/bin/env bash
# libtoe-preload with unmodified redis (docs/interception.md). Preloaded programs run in the device
# namespace with TOE_STRICT=1, where the kernel has no address and no route: whatever reaches the
# peer went through the device.
#  (a) redis-server preloaded in the device namespace, bound to 198.18.0.1 (an address only the
#      device has); from the peer, a kernel redis-benchmark runs every listed command (each must
#      report requests/s > 0, nothing on stderr) and a kernel redis-cli sets values (a short one,
#      a 1 MiB one) and reads them back; `toectl flows` shows redis-server's listener and the
#      device's tcp.passive_opens grew by at least the benchmark's clients;
#  (b) the reverse: a preloaded redis-benchmark in the device namespace against a kernel
#      redis-server in the peer, same checks, and the device's tcp.active_opens grew.
# Usage: bash tests/net/test_preload_redis.sh BINDIR
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/transport_lib.sh"
source "$(dirname "$0")/preload_lib.sh"
NET_REQUIRED_TOOLS="ip ping timeout ss redis-server redis-benchmark redis-cli $NET_PY"
net_init "$1" 240
tr_init
preload_init
PORT=6379
N=${TOE_REDIS_N:-2000}
CLIENTS=8
TESTS=ping,set,get,incr,lpush,rpush,lpop,rpop,sadd,hset,spop,lrange_100,mset
# redis-benchmark's names for them in the CSV, first word (ping runs as PING_INLINE and PING_MBULK;
# "LRANGE_100 (first 100 elements)", "MSET (10 keys)")
WANT="PING_INLINE PING_MBULK SET GET INCR LPUSH RPUSH LPOP RPOP SADD HSET SPOP LRANGE_100 MSET"



# check_bench NAME CSV ERR: every test of WANT in redis-benchmark's CSV with requests/s > 0, and
# nothing on stderr.
check_bench() {
  local name=$1 csv=$2 err=$3 t rps ok=0 bad=""
  for t in $WANT; do
    rps=$(awk -F, -v t="$t" '{ gsub(/"/, ""); split($1, w, " ") }
      w[1] == t { print $2; exit }' "$csv")
    if awk -v r="$rps" 'BEGIN { exit !(r + 0 > 0) }'; then
      ok=$((ok + 1))
    else
      bad="$bad $t=${rps:-missing}"
    fi
  done
  check_eq "$name: every command with requests/s > 0${bad:+ (not:$bad)}" "$ok" "$(wc -w <<<"$WANT")"
  net_log "$name: requests/s $(awk -F, 'NR > 1 { gsub(/"/, ""); split($1, w, " "); printf "%s=%d ", w[1], $2 }' "$csv")"
  check_eq "$name: nothing on stderr" "$(grep -v '^$' "$err" | grep -c .)" 0
  grep -v '^$' "$err" | head -5 | sed 's/^/#   /'
}

# redis_roundtrip NAME NS ADDR: redis-cli (kernel, in namespace NS) sets a short value and a 1 MiB
# value on ADDR and reads both back.
redis_roundtrip() {
  local name=$1 ns=$2 addr=$3 big got
  big=$(head -c 786432 /dev/urandom | base64 -w0)
  ip netns exec "$ns" timeout -k 2 20 redis-cli -h "$addr" -p "$PORT" set toekit:short "hello device" \
    >"$NET_TMP/cli.out" 2>&1
  check_eq "$name: redis-cli SET" "$(cat "$NET_TMP/cli.out")" OK
  got=$(ip netns exec "$ns" timeout -k 2 20 redis-cli -h "$addr" -p "$PORT" get toekit:short 2>&1)
  check_eq "$name: redis-cli GET reads it back" "$got" "hello device"
  printf '%s' "$big" >"$NET_TMP/big.val"
  ip netns exec "$ns" timeout -k 2 20 redis-cli -h "$addr" -p "$PORT" -x set toekit:big \
    <"$NET_TMP/big.val" >"$NET_TMP/cli.out" 2>&1
  check_eq "$name: redis-cli SET of 1 MiB" "$(cat "$NET_TMP/cli.out")" OK
  ip netns exec "$ns" timeout -k 2 20 redis-cli -h "$addr" -p "$PORT" --raw get toekit:big \
    >"$NET_TMP/big.got" 2>&1
  check_eq "$name: redis-cli GET of 1 MiB reads it back" \
    "$(head -c -1 "$NET_TMP/big.got" | sha256sum | cut -d' ' -f1)" \
    "$(sha256sum <"$NET_TMP/big.val" | cut -d' ' -f1)"
  got=$(ip netns exec "$ns" timeout -k 2 20 redis-cli -h "$addr" -p "$PORT" incrby toekit:n 41 2>&1)
  got=$(ip netns exec "$ns" timeout -k 2 20 redis-cli -h "$addr" -p "$PORT" incr toekit:n 2>&1)
  check_eq "$name: redis-cli INCRBY then INCR" "$got" 42
}

redis_up() { ip netns exec "$1" redis-cli -h "$2" -p "$PORT" ping 2>/dev/null | grep -q PONG; }

net_setup
start_toed_nopcap --ctl "$CTL"
wait_for 5 test -S "$CTL" || net_die "toed made no control socket at $CTL"

# ---- (a) preloaded redis-server, kernel clients in the peer -------------------------------------
mkdir -p "$NET_TMP/dev-redis" "$NET_TMP/peer-redis"
toectl_json "$NET_TMP/stats0.json" stats
# --protected-mode no: without a password, redis 7 answers clients that are not on loopback with
# an error instead of serving them (the kernel redis-server of (b) too).
dev_bg "${PRE[@]}" redis-server --port "$PORT" --bind "$NET_DEV_ADDR" --save '' --appendonly no --protected-mode no \
  --daemonize no --dir "$NET_TMP/dev-redis" --pidfile "$NET_TMP/dev-redis/redis.pid" \
  --logfile "$NET_TMP/dev-redis/redis.log" </dev/null >"$NET_TMP/dev-redis/stdout" 2>&1
SERVER_PID=$BG_PID
wait_for 20 redis_up "$NET_PEER_NS" "$NET_DEV_ADDR" || {
  sed 's/^/#   /' "$NET_TMP/dev-redis/redis.log" "$NET_TMP/dev-redis/stdout" | tail -20
  net_die "preloaded redis-server does not answer PING from the peer"
}
toectl_json "$NET_TMP/flows.json" flows
check_eq "toectl flows: redis-server's listener is on the device" \
  "$(flow_get "$NET_TMP/flows.json" "$SERVER_PID" tcp state)" LISTEN
check_eq "toectl flows: its comm" "$(flow_get "$NET_TMP/flows.json" "$SERVER_PID" tcp comm)" redis-server
peer timeout -k 2 120 redis-benchmark -h "$NET_DEV_ADDR" -p "$PORT" -c "$CLIENTS" -n "$N" -t "$TESTS" \
  --csv >"$NET_TMP/bench_a.csv" 2>"$NET_TMP/bench_a.err"
check_eq "(a) kernel redis-benchmark against preloaded redis-server: exit status" "$?" 0
check_bench "(a) kernel redis-benchmark -> preloaded redis-server" "$NET_TMP/bench_a.csv" \
  "$NET_TMP/bench_a.err"
redis_roundtrip "(a) preloaded redis-server" "$NET_PEER_NS" "$NET_DEV_ADDR"
toectl_json "$NET_TMP/stats1.json" stats
d() { echo $(($(num "$(stat_get "$NET_TMP/$3.json" "$1")") - $(num "$(stat_get "$NET_TMP/$2.json" "$1")"))); }
check_ge "(a) device: tcp.passive_opens grew by the benchmark's clients" \
  "$(d tcp.passive_opens stats0 stats1)" "$CLIENTS"
check_ge "(a) device: tcp.rx_bytes grew by at least the 1 MiB value" "$(d tcp.rx_bytes stats0 stats1)" 1048576
check "(a) redis-server still running" kill -0 "$SERVER_PID"
net_kill_pid "$SERVER_PID"
check "(a) redis-server's log: no error" bash -c "! grep -iE 'error|warning.*(socket|accept)' \
  $NET_TMP/dev-redis/redis.log"
check "(a) the library said nothing" bash -c "! grep -q '^toe-preload' $NET_TMP/dev-redis/stdout"
no_sanitizer "(a) redis-server" "$NET_TMP/dev-redis/stdout"

# ---- (b) kernel redis-server in the peer, preloaded clients in the device namespace ------------
peer_bg redis-server --port "$PORT" --bind "$NET_PEER_ADDR" --save '' --appendonly no --protected-mode no \
  --daemonize no --dir "$NET_TMP/peer-redis" --pidfile "$NET_TMP/peer-redis/redis.pid" \
  --logfile "$NET_TMP/peer-redis/redis.log" </dev/null >/dev/null 2>&1
PEER_SERVER_PID=$BG_PID
wait_for 20 redis_up "$NET_PEER_NS" "$NET_PEER_ADDR" || net_die "kernel redis-server in the peer does not answer"
toectl_json "$NET_TMP/stats2.json" stats
dev timeout -k 2 120 "${PRE[@]}" redis-benchmark -h "$NET_PEER_ADDR" -p "$PORT" -c "$CLIENTS" -n "$N" \
  -t "$TESTS" --csv >"$NET_TMP/bench_b.csv" 2>"$NET_TMP/bench_b.err"
check_eq "(b) preloaded redis-benchmark against kernel redis-server: exit status" "$?" 0
check_bench "(b) preloaded redis-benchmark -> kernel redis-server" "$NET_TMP/bench_b.csv" \
  "$NET_TMP/bench_b.err"
toectl_json "$NET_TMP/stats3.json" stats
check_ge "(b) device: tcp.active_opens grew by the benchmark's clients" \
  "$(d tcp.active_opens stats2 stats3)" "$CLIENTS"
# The data went through the device: the kernel redis-server counts the commands it served.
CMDS=$(peer redis-cli -h "$NET_PEER_ADDR" -p "$PORT" info commandstats 2>/dev/null |
  awk -F'[:=,]' '/^cmdstat_(set|get|lpush|mset):/ { s += $3 } END { print s + 0 }')
check_ge "(b) the kernel redis-server served the preloaded client's SET/GET/LPUSH/MSET" "$CMDS" $((4 * N))
# redis-cli, preloaded, against the kernel server: set and read back
dev timeout -k 2 20 "${PRE[@]}" redis-cli -h "$NET_PEER_ADDR" -p "$PORT" set toekit:from-device abc123 \
  >"$NET_TMP/cli_b.out" 2>&1
check_eq "(b) preloaded redis-cli SET" "$(cat "$NET_TMP/cli_b.out")" OK
check_eq "(b) the kernel side reads it back" \
  "$(peer redis-cli -h "$NET_PEER_ADDR" -p "$PORT" get toekit:from-device 2>&1)" abc123
net_kill_pid "$PEER_SERVER_PID"
no_sanitizer "(b) redis-benchmark" "$NET_TMP/bench_b.err"

check_toed_exit
net_finish
