#!/usr/bin/env bash
# libtoe-preload and raw system calls (docs/interception.md, "Raw system calls"): a program making
# its socket calls through libc's syscall() (as libuv does for sendmmsg/recvmmsg) is carried by the
# device, not lost in the placeholder. tests/net/preload_syscall.c, in the device namespace with
# TOE_STRICT=1 against the peer's TCP and UDP echo (peer_servers.py); the debug log must show
# each socket going to the device. The same checks then run on the kernel (not preloaded, in the
# peer namespace), so they describe the kernel's behaviour.
# Then dig (bind9-dnsutils: libuv sends with syscall(SYS_sendmmsg)) over UDP and TCP against a
# tiny DNS answerer in the peer (dns_answerer.py), preloaded and on the kernel.
# Usage: bash tests/net/test_preload_syscall.sh BINDIR
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/transport_lib.sh"
source "$(dirname "$0")/preload_lib.sh"
NET_REQUIRED_TOOLS="ip ping timeout $NET_PY"
net_init "$1" 120
tr_init
preload_init
PS=$NET_BINDIR/preload_syscall
[ -x "$PS" ] || net_die "no preload_syscall at $PS (build first)"
ECHO=7110
RST=7111

net_setup
start_toed_nopcap --ctl "$CTL"
wait_for 5 test -S "$CTL" || net_die "toed made no control socket at $CTL"
peer_bg timeout -k 2 110 "$NET_PY" "$(dirname "$0")/peer_servers.py" "$NET_PEER_ADDR" "$ECHO" "$RST" \
  >"$NET_TMP/servers.log" 2>&1 </dev/null
wait_for 10 peer_listening "$RST" || net_die "the peer's servers did not start"

# run_ps NAME CMD...: runs preload_syscall, passes its ok/FAIL lines on (prefixed), counts them.
run_ps() { preload_run "$@"; }

run_ps dev dev timeout -k 2 60 "${PRE[@]}" TOE_PRELOAD_DEBUG=1 "$PS" "$NET_PEER_ADDR" "$ECHO"
check_eq "dev: the C library's UDP connect went to the device (debug log)" \
  "$(grep -c "udp connect $NET_PEER_ADDR:$ECHO -> device" "$NET_TMP/dev.err")" 1
check_eq "dev: the raw UDP socket's first sendto went to the device (debug log)" \
  "$(grep -c "udp sendto -> device" "$NET_TMP/dev.err")" 1
check_eq "dev: the TCP connection went to the device (debug log)" \
  "$(grep -c "tcp connect $NET_PEER_ADDR:$ECHO -> device" "$NET_TMP/dev.err")" 1
run_ps kernel peer timeout -k 2 60 "$PS" "$NET_PEER_ADDR" "$ECHO"

# A write no interposition can see (the syscall instruction): carried on the kernel; under the
# library the socket fails with EIO and the library says why, once.
run_ps dev-bypass dev timeout -k 2 60 "${PRE[@]}" "$PS" "$NET_PEER_ADDR" "$ECHO" refused
if grep -q '^ok   - bypass: skipped' "$NET_TMP/dev-bypass.out"; then
  net_ok "dev-bypass: no warning to look for (not x86_64)"
else
  check_eq "dev-bypass: one warning names what happened" \
    "$(grep -c 'written to through a call the library did not see' "$NET_TMP/dev-bypass.err")" 1
fi
run_ps kernel-bypass peer timeout -k 2 60 "$PS" "$NET_PEER_ADDR" "$ECHO" carried

# dig (bind9's, over libuv, which sends with syscall(SYS_sendmmsg)) against a DNS answerer in the
# peer (dns_answerer.py), over UDP and TCP: preloaded, the answer comes through the device; on
# the kernel, the same answer.
DNS=7153
ANSWER=198.18.0.77
if ! command -v dig >/dev/null; then
  net_fail "dig is missing (package bind9-dnsutils: run make deps)"
else
  peer_bg timeout -k 2 100 "$NET_PY" "$(dirname "$0")/dns_answerer.py" "$NET_PEER_ADDR" "$DNS" \
    "$ANSWER" >"$NET_TMP/dns.log" 2>&1 </dev/null
  wait_for 10 grep -q ready "$NET_TMP/dns.log" || net_die "the DNS answerer did not start"
  for proto in udp tcp; do
    flag=+notcp
    [ "$proto" = tcp ] && flag=+tcp
    out=$(dev timeout -k 2 20 "${PRE[@]}" TOE_PRELOAD_DEBUG=1 dig "@$NET_PEER_ADDR" -p "$DNS" \
      +tries=1 +time=3 "$flag" +short a.example.test A 2>"$NET_TMP/dig-$proto.err")
    check_eq "dig over $proto, preloaded: the answer comes back" "$out" "$ANSWER"
    check "dig over $proto: its socket went to the device (debug log)" \
      grep -qE "$proto (connect $NET_PEER_ADDR:$DNS|sendto) -> device" "$NET_TMP/dig-$proto.err"
    no_sanitizer "dig over $proto" "$NET_TMP/dig-$proto.err"
    out=$(peer timeout -k 2 20 dig "@$NET_PEER_ADDR" -p "$DNS" +tries=1 +time=3 "$flag" +short \
      a.example.test A 2>/dev/null)
    check_eq "dig over $proto on the kernel: the same answer" "$out" "$ANSWER"
  done
fi

check_toed_exit
net_finish
