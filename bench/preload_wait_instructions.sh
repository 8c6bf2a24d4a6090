#!/usr/bin/env bash
# Instructions a served epoll wait costs as the set grows (docs/interception.md, "Readiness served
# in user space"): tests/net/preload_scale.c, preloaded in the device namespace under callgrind
# with instrumentation on inside epoll_wait only (--toggle-collect), holds IDLE idle offloaded
# members and one UDP socket exchanging REQS datagrams with a kernel echo in the peer (one wait
# per request, sometimes two). Runs IDLE=20 and IDLE=2000 and prints the instructions per request.
# Counts, not times: valid on a loaded machine. Needs the release build (valgrind and ASan do not
# mix).
# Usage: bash bench/preload_wait_instructions.sh BINDIR [REQS]
source "$(dirname "$0")/../tests/net/lib.sh"
source "$(dirname "$0")/../tests/net/transport_lib.sh"
source "$(dirname "$0")/../tests/net/preload_lib.sh"
NET_REQUIRED_TOOLS="ip timeout ss valgrind $NET_PY"
net_init "$1" 500
tr_init
preload_init
[ -n "$PRELOAD_ASAN_RT" ] && net_die "a sanitizer build: use the release build (build/bin)"
PROG=$NET_BINDIR/preload_scale
[ -x "$PROG" ] || net_die "no preload_scale at $PROG (build first)"
REQS=${2:-300}
net_setup
start_toed_nopcap --ctl "$CTL"
wait_for 5 test -S "$CTL" || net_die "toed made no control socket at $CTL"
peer_bg timeout -k 2 450 "$NET_PY" "$(dirname "$0")/../tests/net/peer_servers.py" "$NET_PEER_ADDR" \
  7300 7301 >"$NET_TMP/servers.log" 2>&1 </dev/null
wait_for 10 peer_listening 7301 || net_die "the peer's servers did not start"
for idle in 20 2000; do
  dev timeout -k 2 200 env "LD_PRELOAD=$PRELOAD_LIST" "TOE_CTL=$CTL" TOE_OFFLOAD='*' \
    valgrind --tool=callgrind --toggle-collect=epoll_wait --callgrind-out-file="$NET_TMP/cg.$idle" \
    "$PROG" "$NET_PEER_ADDR" 7300 "$NET_DEV_ADDR" 20000 "$idle" "$REQS" >"$NET_TMP/out.$idle" \
    2>"$NET_TMP/err.$idle"
  check_eq "idle $idle: preload_scale exit status" "$?" 0
  ins=$(sed -n 's/^summary: \([0-9]*\).*/\1/p' "$NET_TMP/cg.$idle")
  echo "# idle $idle: ${ins:-?} instructions in epoll_wait, $((${ins:-0} / REQS)) per request ($REQS requests)"
done
net_finish
