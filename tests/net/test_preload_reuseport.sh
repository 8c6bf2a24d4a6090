#!/usr/bin/env bash
# SO_REUSEPORT through the device (issue 13 item 5): a preloaded program (reuse_tool.py serve, in
# the device namespace with TOE_STRICT=1) holds two SO_REUSEPORT TCP listeners and two
# SO_REUSEPORT UDP sockets on one port of the device's address; a kernel peer makes 64
# connections and sends 64 datagrams, each from its own source port, one send each and no retry.
#  - the second bind and listen succeed (they used to fail with EADDRINUSE);
#  - both listeners accept some connections and both UDP sockets receive some datagrams (a flow
#    hash spreads them), 64 of each in all, every connection and every datagram answered;
#  - the same programs on the kernel (both in the peer namespace, over its own address: the device
#    namespace has no kernel address) give the same picture, so the checks are the kernel's;
#  - a program of another uid cannot join the group (EADDRINUSE), one of the same uid can, as on
#    Linux.
# Usage: bash tests/net/test_preload_reuseport.sh BINDIR
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/transport_lib.sh"
source "$(dirname "$0")/preload_lib.sh"
NET_REQUIRED_TOOLS="ip ping timeout setpriv $NET_PY"
net_init "$1" 200
tr_init
getent group nogroup >/dev/null || net_die "no group nogroup"
# The control socket lives where another uid can reach it (the temp dir is 0700), for the last check.
CTLDIR=$NET_TMP/ctl
mkdir -p "$CTLDIR"
chmod 0711 "$NET_TMP"
chmod 0755 "$CTLDIR"
CTL=$CTLDIR/toed.sock
export TOE_CTL=$CTL
preload_init
TOOL=$(cd "$(dirname "$0")" && pwd)/reuse_tool.py
PORT=7300
N=64

net_setup
start_toed_nopcap --ctl "$CTL" --ctl-group nogroup
wait_for 5 test -S "$CTL" || net_die "toed made no control socket at $CTL"

# picture WHO FILE-OF-SERVER FILE-OF-CLIENT: the checks on one run
picture() {
  local who=$1 srv cli
  srv=$(tail -1 "$2" 2>/dev/null)
  cli=$(tail -1 "$3" 2>/dev/null)
  net_log "$who: server '$srv', client '$cli'"
  read -r _ ta tb _ ua ub <<<"$srv"
  check_eq "$who: every connection and datagram answered, each from its own port" "$cli" \
    "tcp_ok $N udp_ok $N ports $((2 * N))"
  check_eq "$who: the two listeners accepted $N connections in all" "$((ta + tb))" "$N"
  check_ge "$who: the first listener accepted some" "$ta" 1
  check_ge "$who: the second listener accepted some" "$tb" 1
  check_eq "$who: the two UDP sockets received $N datagrams in all" "$((ua + ub))" "$N"
  check_ge "$who: the first UDP socket received some" "$ua" 1
  check_ge "$who: the second UDP socket received some" "$ub" 1
}

# run WHO ADDR BASE SERVER-PREFIX... -- CLIENT-PREFIX...: the server on ADDR in the background until
# "ready", then the client (source ports from BASE), then the server's summary
run() {
  local who=$1 addr=$2 base=$3
  shift 3
  local srv=() cli=()
  while [ "$1" != -- ]; do
    srv+=("$1")
    shift
  done
  shift
  cli=("$@")
  "${srv[@]}" "$NET_PY" "$TOOL" serve "$addr" "$PORT" "$N" 60 >"$NET_TMP/$who.srv" \
    2>"$NET_TMP/$who.srv.err" &
  local spid=$!
  net_bg_add "$spid"
  wait_for 10 grep -q '^ready' "$NET_TMP/$who.srv" || net_fail "$who: the server did not bind"
  timeout -k 2 60 "${cli[@]}" "$NET_PY" "$TOOL" client "$addr" "$PORT" "$N" "$base" >"$NET_TMP/$who.cli" \
    2>"$NET_TMP/$who.cli.err"
  wait_exit "$spid" 15000 || net_kill_pid "$spid"
  picture "$who" "$NET_TMP/$who.srv" "$NET_TMP/$who.cli"
  no_sanitizer "$who server" "$NET_TMP/$who.srv.err"
}

# ---- the kernel: server and client in the peer namespace --------------------------------------------
run kernel "$NET_PEER_ADDR" 21000 ip netns exec "$NET_PEER_NS" -- ip netns exec "$NET_PEER_NS"

# ---- the device: the server preloaded in the device namespace, the kernel client in the peer -----------
run device "$NET_DEV_ADDR" 23000 ip netns exec "$NET_DEV_NS" "${PRE[@]}" -- ip netns exec "$NET_PEER_NS"

# ---- another uid cannot join a group -------------------------------------------------------------------
dev_bg "${PRE[@]}" "$NET_PY" -c "
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
s.bind(('$NET_DEV_ADDR', $PORT)); s.listen(4); print('ready', flush=True); time.sleep(30)
" >"$NET_TMP/owner.out" 2>"$NET_TMP/owner.err"
OWNER_PID=$BG_PID
wait_for 10 grep -q '^ready' "$NET_TMP/owner.out" || net_fail "uid 0's listener did not bind"
bind_as() { # USER: a SO_REUSEPORT listener on the same port, as that user (group nogroup)
  dev timeout -k 2 20 setpriv --reuid "$1" --regid nogroup --clear-groups "${PRE[@]}" "$NET_PY" -c "
import socket, errno
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
try:
    s.bind(('$NET_DEV_ADDR', $PORT)); s.listen(4); print('bound')
except OSError as e:
    print(errno.errorcode.get(e.errno, e.errno))
" 2>>"$NET_TMP/uid.err"
}
check_eq "another uid's SO_REUSEPORT bind on the port is refused" "$(bind_as nobody)" EADDRINUSE
check_eq "the same uid joins" "$(bind_as root)" bound
net_kill_pid "$OWNER_PID"

check_toed_exit
net_finish
