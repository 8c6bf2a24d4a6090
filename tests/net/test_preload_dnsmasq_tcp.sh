#!/usr/bin/env bash
# dnsmasq over TCP, preloaded on the device (issue 13 item 4): dnsmasq serves each TCP connection
# in a forked child (the connection inherited across fork). dig in the peer namespace asks the
# same names over UDP and over TCP (+tcp, three connections in a row: the listener keeps
# accepting after each fork); every TCP answer equals the UDP one, which is the configured
# address; its sockets are on the device (TOE_STRICT, toectl flows) and the library said nothing.
# Usage: bash tests/net/test_preload_dnsmasq_tcp.sh BINDIR
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/transport_lib.sh"
source "$(dirname "$0")/preload_lib.sh"
NET_REQUIRED_TOOLS="ip timeout dig $NET_PY"
net_init "$1" 60
tr_init
preload_init
# An uninstrumented dnsmasq with the ASan runtime preloaded never gets to main (as curl): the
# release build's run checks it (make test runs both).
preload_skip_under_asan dnsmasq
DNSMASQ=$(command -v dnsmasq) || {
  echo "skip - preloaded dnsmasq over TCP (no dnsmasq: install dnsmasq-base, as 'make deps' does)"
  exit 0
}

net_setup
tr_start_toed --host-if toe0 --host-addr "$NET_DEV_ADDR/$NET_PREFIX"
dev_bg "${PRE[@]}" "$DNSMASQ" --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts \
  --user=root --pid-file="$NET_TMP/dnsmasq.pid" --log-facility=- \
  --address=/toe.test/198.18.0.77 --address=/other.toe.test/198.18.0.78 \
  >"$NET_TMP/dnsmasq.out" 2>"$NET_TMP/dnsmasq.err" </dev/null
DNS_PID=$BG_PID
wait_for 10 bash -c "'$TOECTL' --ctl '$CTL' flows 2>/dev/null | grep -q ':53 .*dnsmasq'" ||
  net_die "dnsmasq: no socket on port 53 in the device's flow table"

for name in host.toe.test x.other.toe.test; do
  udp=$(peer timeout 10 dig @"$NET_DEV_ADDR" -p 53 +short +tries=1 +time=3 "$name" A 2>&1)
  case $name in
  host.*) want=198.18.0.77 ;;
  *) want=198.18.0.78 ;;
  esac
  check_eq "dnsmasq over UDP answers $name" "$udp" "$want"
  for i in 1 2 3; do
    tcp=$(peer timeout 10 dig @"$NET_DEV_ADDR" -p 53 +tcp +short +tries=1 +time=3 "$name" A 2>&1)
    check_eq "dnsmasq over TCP answers $name (connection $i), as over UDP" "$tcp" "$udp"
  done
done
check "dnsmasq's TCP listener is on the device" \
  bash -c "'$TOECTL' --ctl '$CTL' flows | grep 'LISTEN' | grep -q ':53 .*dnsmasq'"
net_kill_pid "$DNS_PID"
no_sanitizer dnsmasq "$NET_TMP/dnsmasq.err"
if grep -q '^toe-preload' "$NET_TMP/dnsmasq.err"; then
  net_fail "dnsmasq: the library wrote to stderr"
  grep '^toe-preload' "$NET_TMP/dnsmasq.err" | head -5 | sed 's/^/#   /'
fi

check_toed_exit
net_finish
