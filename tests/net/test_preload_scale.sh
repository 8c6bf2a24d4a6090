#!/usr/bin/env bash
# The cost of a served epoll wait does not grow with the members of the set (docs/interception.md,
# "Readiness served in user space"): tests/net/preload_scale.c, preloaded in the device namespace,
# holds IDLE offloaded members that never become ready (UDP sockets and TCP listeners on the
# device's address) and one UDP socket that exchanges REQS datagrams with a kernel echo in the
# peer, one epoll_wait per request. The library's counter (TOE_PRELOAD_DEBUG=1) gives the
# ready-list entries the waits looked at. A run with 20 idle members and one with 2,000, each for
# two request counts: the extra entries per extra request (the steady state, the set's first wait
# excluded) must be the same small number, whatever the idle count; a scan of every member would
# look at 2,001 per request.
# Usage: bash tests/net/test_preload_scale.sh BINDIR
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/transport_lib.sh"
source "$(dirname "$0")/preload_lib.sh"
NET_REQUIRED_TOOLS="ip timeout ss $NET_PY"
net_init "$1" 240
tr_init
preload_init
PROG=$NET_BINDIR/preload_scale
[ -x "$PROG" ] || net_die "no preload_scale at $PROG (build first)"
ECHO=7300
RST=7301

net_setup
start_toed_nopcap --ctl "$CTL"
wait_for 5 test -S "$CTL" || net_die "toed made no control socket at $CTL"
peer_bg timeout -k 2 200 "$NET_PY" "$(dirname "$0")/peer_servers.py" "$NET_PEER_ADDR" "$ECHO" "$RST" \
  >"$NET_TMP/servers.log" 2>&1 </dev/null
wait_for 10 peer_listening "$RST" || net_die "the peer's servers did not start"

# run IDLE REQS: runs the program and passes its checks on; sets V to the entries looked at.
run() {
  local name=idle$1-req$2
  preload_run "$name" dev timeout -k 2 100 "${PRE[@]}" TOE_OFFLOAD='*' TOE_PRELOAD_DEBUG=1 "$PROG" \
    "$NET_PEER_ADDR" "$ECHO" "$NET_DEV_ADDR" 20000 "$1" "$2"
  V=$(num "$(sed -n 's/.*waits served in the process, \([0-9]*\) ready-list entries.*/\1/p' \
    "$NET_TMP/$name.err" | tail -1)")
}

run 20 200
a=$V
run 20 1200
b=$V
run 2000 200
c=$V
run 2000 1200
d=$V
net_log "ready-list entries looked at: idle 20: $a (200 requests), $b (1200); idle 2000: $c, $d"
small=$(((b - a) * 100 / 1000))
large=$(((d - c) * 100 / 1000))
net_log "per request (x100): idle 20: $small, idle 2000: $large"
check "idle 20: a request's wait looks at a few entries (x100: $small <= 400)" test "$small" -le 400
check "idle 2000: the same (x100: $large <= 400)" test "$large" -le 400
check "idle 2000 costs no more per request than idle 20 (x100: $large <= $small + 50)" \
  test "$large" -le "$((small + 50))"
check "the first wait of the 2000-member set looked at its members once (entries $c >= 2000)" \
  test "$c" -ge 2000

check_toed_exit
net_finish
