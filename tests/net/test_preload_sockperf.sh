#!/usr/bin/env bash
# libtoe-preload with unmodified sockperf (docs/interception.md). Preloaded programs run in the
# device namespace with TOE_STRICT=1, where the kernel has no address and no route: whatever
# reaches the peer went through the device. Four ping-pong runs of 3 s with 64-byte messages:
#  - a preloaded `sockperf ping-pong` against a kernel `sockperf server` in the peer, UDP and TCP;
#  - the reverse: a kernel `sockperf ping-pong` in the peer against a preloaded `sockperf server`
#    bound to 198.18.0.1 (an address only the device has), UDP and TCP.
# Then the preloaded client again, UDP and TCP, with TOE_PROFILE=latency (spin 50 us before
# sleeping, completions processed by the waiting thread): the same checks, and its exit report
# (TOE_PRELOAD_DEBUG) must show that its waits went through the spin.
# Each run's output must have the summary (average latency, the 50th and 99th percentiles), as
# many messages received as sent (more than a floor), and zero dropped, duplicated and
# out-of-order messages. Latency figures are printed, never asserted (shared 2-vCPU VM; see
# bench/interception.sh for the comparison with the kernel).
# Usage: bash tests/net/test_preload_sockperf.sh BINDIR
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/transport_lib.sh"
source "$(dirname "$0")/preload_lib.sh"
NET_REQUIRED_TOOLS="ip ping timeout ss sockperf $NET_PY"
net_init "$1" 150
tr_init
preload_init
SECS=3
MIN_MSGS=200 # a working ping-pong does thousands in 3 s, even under the sanitizers


# sockperf colours its output: strip the escape sequences
plain() { sed 's/\x1b\[[0-9;]*m//g' "$1"; }
# field FILE REGEX: the first number after REGEX in FILE
field() { plain "$1" | sed -n "s/.*$2 *\([0-9.]*\).*/\1/p" | head -1; }

# dev_has PROTO PORT: the device holds a socket bound to PORT (toectl flows)
dev_has() {
  toectl_json "$NET_TMP/lflows.json" flows &&
    [ "$(json_eval "$NET_TMP/lflows.json" "len([f for f in d['flows'] if f['proto'] == '$1' and f['local']['port'] == $2])")" -ge 1 ]
}

# run NAME SERVER_SIDE PROTO PORT [VAR=VALUE...]: sockperf server on SERVER_SIDE ("peer": kernel;
# "dev": preloaded), ping-pong from the other side, output in $NET_TMP/NAME.{s,c}.log; checks the
# output. The variables are added to the preloaded program's environment.
run() {
  local name=$1 side=$2 proto=$3 port=$4 addr flag=() extra=("${@:5}")
  [ "$proto" = tcp ] && flag=(--tcp)
  if [ "$side" = peer ]; then
    addr=$NET_PEER_ADDR
    peer_bg timeout -k 2 60 sockperf server "${flag[@]}" -i "$addr" -p "$port" \
      >"$NET_TMP/$name.s.log" 2>&1 </dev/null
    local spid=$BG_PID
    wait_for 10 peer_listening "$port" "$proto" || net_fail "$name: kernel sockperf server not up"
    dev timeout -k 2 40 "${PRE[@]}" "${extra[@]}" sockperf ping-pong "${flag[@]}" -i "$addr" -p "$port" -t "$SECS" \
      -m 64 >"$NET_TMP/$name.c.log" 2>&1 </dev/null
  else
    addr=$NET_DEV_ADDR
    dev_bg timeout -k 2 60 "${PRE[@]}" "${extra[@]}" sockperf server "${flag[@]}" -i "$addr" -p "$port" \
      >"$NET_TMP/$name.s.log" 2>&1 </dev/null
    local spid=$BG_PID
    wait_for 10 dev_has "$proto" "$port" || net_fail "$name: preloaded sockperf server not up"
    peer timeout -k 2 40 sockperf ping-pong "${flag[@]}" -i "$addr" -p "$port" -t "$SECS" -m 64 \
      >"$NET_TMP/$name.c.log" 2>&1 </dev/null
  fi
  check_eq "$name: sockperf ping-pong exit status" "$?" 0
  check "$name: the server is still running" kill -0 "$spid"
  net_kill_pid "$spid"
  local c=$NET_TMP/$name.c.log sent recv avg p50 p99
  sent=$(plain "$c" | sed -n 's/.*\[Valid Duration\].*SentMessages=\([0-9]*\).*/\1/p')
  recv=$(plain "$c" | sed -n 's/.*\[Valid Duration\].*ReceivedMessages=\([0-9]*\).*/\1/p')
  avg=$(field "$c" 'avg-latency=')
  p50=$(field "$c" 'percentile 50.000 =')
  p99=$(field "$c" 'percentile 99.000 =')
  check_ge "$name: messages received" "${recv:-none}" "$MIN_MSGS"
  check_eq "$name: as many received as sent" "${recv:-none}" "${sent:-missing}"
  check "$name: summary line" grep -q 'Summary: Latency is [0-9.]* usec' <(plain "$c")
  check "$name: average and percentiles reported" test -n "$avg" -a -n "$p50" -a -n "$p99"
  check "$name: zero dropped, duplicated, out-of-order" \
    grep -q '# dropped messages = 0; # duplicated messages = 0; # out-of-order messages = 0' <(plain "$c")
  check "$name: no error in the output" bash -c "! grep -qiE 'error|fail' $c $NET_TMP/$name.s.log"
  net_log "$name: $recv round trips; half-RTT latency avg $avg us, p50 $p50 us, p99 $p99 us" \
    "(unpinned, blocking)"
}

net_setup
start_toed_nopcap --ctl "$CTL"
wait_for 5 test -S "$CTL" || net_die "toed made no control socket at $CTL"
toectl_json "$NET_TMP/stats0.json" stats

run udp_dev_client peer udp 11111
run tcp_dev_client peer tcp 11112
run udp_dev_server dev udp 11113
run tcp_dev_server dev tcp 11114

# The latency profile: spin-then-sleep. The client's exit report counts its waits that processed
# completions themselves (before sleeping) and those that found their socket ready that way.
for proto in udp tcp; do
  [ "$proto" = udp ] && port=11115 || port=11116
  run "latency_$proto" peer "$proto" "$port" TOE_PROFILE=latency TOE_PRELOAD_DEBUG=1
  c=$NET_TMP/latency_$proto.c.log
  check "latency_$proto: the profile was taken" grep -q 'profile latency: spin 50 us' "$c"
  spun=$(sed -n 's/.*waits: \([0-9]*\) processed completions.*/\1/p' "$c")
  hits=$(sed -n 's/.*, \([0-9]*\) of them found a ready descriptor.*/\1/p' "$c")
  check_ge "latency_$proto: waits that spun" "${spun:-none}" "$MIN_MSGS"
  net_log "latency_$proto: ${spun:-?} waits spun, ${hits:-?} of them found the reply while spinning"
done

toectl_json "$NET_TMP/stats1.json" stats
d() { echo $(($(num "$(stat_get "$NET_TMP/stats1.json" "$1")") - $(num "$(stat_get "$NET_TMP/stats0.json" "$1")"))); }
check_ge "device: udp.rx_delivered (both UDP runs)" "$(d udp.rx_delivered)" $((2 * MIN_MSGS))
check_ge "device: udp.tx_datagrams (both UDP runs)" "$(d udp.tx_datagrams)" $((2 * MIN_MSGS))
check_ge "device: tcp.active_opens" "$(d tcp.active_opens)" 1
check_ge "device: tcp.passive_opens" "$(d tcp.passive_opens)" 1
for f in "$NET_TMP"/*.log; do no_sanitizer "$(basename "$f")" "$f"; done
check "the library said nothing (default profile)" \
  bash -c "! cat \$(ls $NET_TMP/*.log | grep -v /latency_) | grep -q '^toe-preload'"
check_toed_exit
net_finish
