#!/usr/bin/env bash
# Ancillary data on offloaded UDP sockets (issue 13 item 4). preload_cmsg.c, a UDP server that
# asks for IP_PKTINFO, IP_RECVTOS, IP_RECVTTL and SO_TIMESTAMPNS on a wildcard bind (as dnsmasq
# does), receives three datagrams that a kernel sender in the peer namespace sends with TOS 0x28
# and TTL 33, and checks:
#  - each control message and its value: the destination address (ipi_addr, ipi_spec_dst), the
#    interface (the host interface toe0 that holds the device's address), TOS, TTL, and an arrival
#    time between the server's "ready" and the return of recvmsg;
#  - the reply sent with sendmsg and IP_PKTINFO naming that address as its source reaches the
#    sender from the address and port it wrote to; a source that is not local gets ENETUNREACH,
#    an interface that does not exist ENODEV (the kernel's answers);
#  - MSG_CTRUNC when the control buffer holds one message only, MSG_TRUNC (and recvmsg(MSG_TRUNC)'s
#    full length) for a short data buffer;
#  - options the device cannot do are refused (ENOPROTOOPT), not accepted and ignored.
# The same program runs on the kernel first (server and sender in the peer namespace, over the
# peer's own address), so every expected value is the kernel's. Last, dnsmasq in its default mode
# (wildcard sockets and IP_PKTINFO), preloaded, answers dig from the peer.
# Usage: bash tests/net/test_preload_cmsg.sh BINDIR
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/transport_lib.sh"
source "$(dirname "$0")/preload_lib.sh"
net_init "$1" 120
tr_init
preload_init
PROG=$NET_BINDIR/preload_cmsg
[ -x "$PROG" ] || net_die "no preload_cmsg at $PROG (build first)"
PORT=6053
TOS=0x28
TTL=33

net_setup
tr_start_toed --host-if toe0 --host-addr "$NET_DEV_ADDR/$NET_PREFIX"

# run WHO DST IFINDEX MODE SERVER-PREFIX... : the server (in the background until "ready"), then
# the sender from the peer namespace, then both programs' checks
run() {
  local who=$1 dst=$2 ifx=$3 mode=$4
  shift 4
  "$@" "$PROG" serve "$PORT" "$dst" "$TOS" "$TTL" "$ifx" "$mode" >"$NET_TMP/$who.srv" \
    2>"$NET_TMP/$who.srv.err" &
  local spid=$!
  net_bg_add "$spid"
  wait_for 10 grep -q '^ready' "$NET_TMP/$who.srv" || net_fail "$who: the server did not start"
  preload_run "$who sender" timeout -k 2 30 ip netns exec "$NET_PEER_NS" "$PROG" send "$dst" \
    "$PORT" "$TOS" "$TTL"
  local rc=killed
  wait_exit "$spid" 15000 && rc=$WAIT_STATUS
  [ "$rc" = killed ] && net_kill_pid "$spid"
  local line
  while IFS= read -r line; do
    case "$line" in
    "ok   - "*) net_ok "$who: ${line#ok   - }" ;;
    "FAIL - "*) net_fail "$who: ${line#FAIL - }" ;;
    esac
  done <"$NET_TMP/$who.srv"
  check_eq "$who: server exit status" "$rc" 0
  no_sanitizer "$who server" "$NET_TMP/$who.srv.err"
  [ "$rc" = 0 ] || sed 's/^/#   stderr: /' "$NET_TMP/$who.srv.err" | head -10
}

# ---- the kernel: server and sender in the peer namespace (delivery over lo: any interface index) --
run kernel "$NET_PEER_ADDR" -1 kernel ip netns exec "$NET_PEER_NS"

# ---- the device: the server preloaded in the device namespace, the kernel sender in the peer --------
IFX=$(dev cat /sys/class/net/toe0/ifindex)
run device "$NET_DEV_ADDR" "$IFX" device ip netns exec "$NET_DEV_NS" "${PRE[@]}"
check "device: the refused options were explained on stderr" \
  grep -q 'refused with ENOPROTOOPT' "$NET_TMP/device.srv.err"

# ---- dnsmasq in its default mode (wildcard sockets, IP_PKTINFO), preloaded -----------------------
# It places each query by IP_PKTINFO (interface and destination) and answers from that address
# with sendmsg's IP_PKTINFO; without the control message it dropped every query in silence.
if [ -n "$PRELOAD_ASAN_RT" ]; then
  # An uninstrumented dnsmasq with the ASan runtime preloaded never gets to main (as curl, see
  # preload_skip_under_asan): the release build runs this part (make test runs both).
  net_log "skip dnsmasq: a sanitizer build of the library (the release build's run checks it)"
elif command -v dnsmasq >/dev/null && command -v dig >/dev/null; then
  dev_bg "${PRE[@]}" dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts \
    --user=root --pid-file="$NET_TMP/dnsmasq.pid" --log-facility=- --log-queries \
    --address=/toe.test/198.18.0.77 >"$NET_TMP/dnsmasq.out" 2>"$NET_TMP/dnsmasq.err"
  DNS_PID=$BG_PID
  wait_for 10 bash -c "'$TOECTL' --ctl '$CTL' flows 2>/dev/null | grep -q ':53 .*dnsmasq'" ||
    net_fail "dnsmasq: no UDP socket on port 53 in the device's flow table"
  ans=$(peer timeout 10 dig @"$NET_DEV_ADDR" -p 53 +short +tries=1 +time=3 host.toe.test A 2>&1)
  check_eq "dnsmasq (preloaded, default mode) answers a query from the peer" "$ans" 198.18.0.77
  # (Not over TCP here: dnsmasq serves each TCP connection in a forked child, which is issue 13
  # item 2, connections inherited across fork.)
  check "dnsmasq's sockets were offloaded (no fallback under TOE_STRICT)" \
    bash -c "'$TOECTL' --ctl '$CTL' flows | grep -q ':53 .*dnsmasq'"
  net_kill_pid "$DNS_PID"
  no_sanitizer dnsmasq "$NET_TMP/dnsmasq.err"
  if ! grep -q 'reply host.toe.test is 198.18.0.77' "$NET_TMP/dnsmasq.out" "$NET_TMP/dnsmasq.err"; then
    sed 's/^/#   dnsmasq: /' "$NET_TMP/dnsmasq.err" "$NET_TMP/dnsmasq.out" | head -20
  fi
else
  net_fail "dnsmasq or dig missing (run: make deps)"
fi

check_toed_exit
net_finish
