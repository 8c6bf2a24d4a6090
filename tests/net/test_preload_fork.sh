#!/usr/bin/env bash
# libtoe-preload and fork (docs/interception.md, "fork"): a preloaded listener behaves as on the
# kernel across any number of forks. tests/net/preload_fork.c, run in the device namespace with
# TOE_STRICT=1 (its listener on the device, connections from the peer), then the same checks in
# the peer namespace on the kernel itself (not preloaded), so they describe the kernel's behaviour:
#  - select, poll, epoll: accept, fork (the child exits, or keeps the listener unused), accept,
#    fork again, ...: the listener wakes for every new connection (the second fork used to leave
#    it asleep);
#  - blocked-accept, blocked-poll: a thread asleep in accept()/poll() on the listener while the
#    process forks gets the next connection (it used to sleep for ever);
#  - per-conn: a fork-per-connection server keeps accepting while its children come and go;
#  - child-accepts: a child that polls the inherited listener accepts too, and the parent after it;
#  - sigchld: the postgres postmaster's way, forking from the SIGCHLD handler while in pselect().
# Usage: bash tests/net/test_preload_fork.sh BINDIR
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/transport_lib.sh"
source "$(dirname "$0")/preload_lib.sh"
NET_REQUIRED_TOOLS="ip ping timeout $NET_PY"
net_init "$1" 240
tr_init
preload_init
PF=$NET_BINDIR/preload_fork
[ -x "$PF" ] || net_die "no preload_fork at $PF (build first)"

net_setup
start_toed_nopcap --ctl "$CTL"
wait_for 5 test -S "$CTL" || net_die "toed made no control socket at $CTL"

# run_pf NAME CMD...: runs preload_fork, passes its ok/FAIL lines on (prefixed) and counts them.
run_pf() { preload_run "$@"; }

# Each mode its own port: a closed shared listener may hold its port a few seconds (issue 13).
port=7200
for mode in select poll epoll blocked-accept blocked-poll per-conn child-accepts sigchld; do
  run_pf "dev-$mode" dev timeout -k 2 60 "${PRE[@]}" "$PF" "$mode" "$NET_DEV_ADDR" "$port" \
    "/var/run/netns/$NET_PEER_NS"
  run_pf "kernel-$mode" peer timeout -k 2 60 "$PF" "$mode" "$NET_PEER_ADDR" "$((port + 100))" -
  port=$((port + 1))
done

check_toed_exit
net_finish
