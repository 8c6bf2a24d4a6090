#!/usr/bin/env bash
# IPv6 through the host side (ABI 1.7, TOE_ABI_CAP_IPV6): toe-nc -6 over libtoe against the
# Linux kernel in the peer namespace. toed has 2001:db8::2/64 beside 198.18.0.1, the kernel
# 2001:db8::1/64 (no default route: nothing leaves the link).
#  - UDP, active: `toe-nc -6 -u` to a kernel echo server on [2001:db8::1]: the echoed bytes equal
#    the sent ones (SHA-256), the server saw the device's IPv6 address as the source;
#  - UDP, passive: `toe-nc -6 -u -l` takes a kernel client's datagram (written out intact),
#    answers it over IPv6, and `toectl flows` shows the flow with its [v6]:port peer;
#  - TCP, dual-stack: `toe-nc -6 -l` listens on [::] and serves a kernel `nc` over IPv4: the data
#    arrives intact and -v names the peer by its v4-mapped address (::ffff:198.18.0.2), as Linux;
#  - TCP over IPv6 both ways: `toe-nc -6 -N` to a kernel `nc -l` on [2001:db8::1], and a kernel
#    `nc -N` to `toe-nc -6 -l` (data intact, -v names the IPv6 peer);
#  - no sanitizer report from toe-nc, toed exits cleanly.
# Costs about 15 s wall on a loaded 2-vCPU machine (5 of them the namespace set-up every net test
# pays, about 1 the DAD wait, 1 toe-nc's -w 1 idle end), about 4 s of CPU.
# Usage: bash tests/net/test_host_ipv6_nc.sh BINDIR
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/transport_lib.sh"
NET_REQUIRED_TOOLS="ip ping timeout nc ss sha256sum $NET_PY"
net_init "$1" 120
TOE_NC=$NET_BINDIR/toe-nc
TOECTL=$NET_BINDIR/toectl
CTL=$NET_TMP/toed.sock
[ -x "$TOE_NC" ] || net_die "no toe-nc at $TOE_NC (build first)"
net_setup

DEV6=2001:db8::2
PEER6=2001:db8::1
for k in accept_dad=0 router_solicitations=0 accept_ra=0 disable_ipv6=0; do
  net_sysctl "$NET_PEER_NS" "net.ipv6.conf.$NET_PEER_IF.${k%=*}" "${k#*=}"
done
net_sysctl "$NET_PEER_NS" net.ipv6.conf.all.disable_ipv6 0
ip -n "$NET_PEER_NS" -6 addr add "$PEER6/64" dev "$NET_PEER_IF" nodad || net_die "peer IPv6 address"

start_toed_nopcap --ctl "$CTL" --addr6 "$DEV6/64"
wait_for 5 test -S "$CTL" || net_die "toed made no control socket at $CTL"
# DAD first (about 1 s): poll until the global address answers.
wait_for 5 bash -c "ip netns exec '$NET_PEER_NS' ping -6 -c 1 -W 1 -q '$DEV6' >/dev/null 2>&1" ||
  net_die "the device does not answer on $DEV6"

grepq() { grep -q "$1" "$2" 2>/dev/null; }
nc_sanitizer() {
  if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' "$2" 2>/dev/null; then
    net_fail "$1: sanitizer report"
    grep -E -A5 'AddressSanitizer|LeakSanitizer|runtime error:' "$2" | head -20 | sed 's/^/#   /'
  fi
}

# ---- UDP, active: toe-nc -6 -u -> a kernel echo server ----------------------------------------
head -c 1200 /dev/urandom >"$NET_TMP/u.bin"
peer "$NET_PY" - "$PEER6" 5007 1200 >"$NET_TMP/echo.out" <<'PYEOF' &
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
s.settimeout(5.0)
srcs, left = set(), int(sys.argv[3])
try:
    while left > 0:  # every byte toe-nc sends, then done (5 s without one: given up)
        d, a = s.recvfrom(65535)
        srcs.add(a[0])
        s.sendto(d, a)
        left -= len(d)
except socket.timeout:
    pass
print(" ".join(sorted(srcs)))
PYEOF
ECHO_PID=$!
net_bg_add "$ECHO_PID"
wait_for 5 peer_listening 5007 udp || net_fail "the kernel echo server did not bind 5007"
dev timeout -k 2 20 "$TOE_NC" --ctl "$CTL" -6 -u -w 1 "$PEER6" 5007 <"$NET_TMP/u.bin" \
  >"$NET_TMP/u.out" 2>"$NET_TMP/u.err"
check_eq "UDP over IPv6: toe-nc -6 -u -w 1 exits 0" "$?" 0
sed 's/^/#   toe-nc: /' "$NET_TMP/u.err" | head -5
check_eq "UDP over IPv6: the echo equals what toe-nc sent (SHA-256)" \
  "$(sha "$NET_TMP/u.out")" "$(sha "$NET_TMP/u.bin")"
wait "$ECHO_PID"
check_eq "UDP over IPv6: the kernel saw the device's IPv6 address as the source" \
  "$(cat "$NET_TMP/echo.out")" "$DEV6"
nc_sanitizer "toe-nc -6 -u" "$NET_TMP/u.err"

# ---- UDP, passive: a kernel client -> toe-nc -6 -u -l; toectl flows shows the v6 peer ----------
# toe-nc's stdin gives its answer only once the flow was looked at (the fifo is written then). UDP
# has no end: toe-nc is stopped (by its PID, through timeout) once the answer arrived.
mkfifo "$NET_TMP/ans.fifo"
dev bash -c "exec timeout -k 2 20 '$TOE_NC' --ctl '$CTL' -6 -u -l -v -w 20 5008 <'$NET_TMP/ans.fifo' >'$NET_TMP/l.out' 2>'$NET_TMP/l.err'" &
LNC_PID=$!
net_bg_add "$LNC_PID"
exec 7<>"$NET_TMP/ans.fifo" # held open: toe-nc sees no EOF before the answer
wait_for 5 grepq '^Listening on' "$NET_TMP/l.err" || net_fail "toe-nc -6 -u -l did not say it listens"
check "toe-nc -6 -u -l -v: listening on ::" grep -q '^Listening on :: 5008$' "$NET_TMP/l.err"
peer "$NET_PY" - "$PEER6" "$DEV6" >"$NET_TMP/client.out" <<'PYEOF' &
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 40555))
s.settimeout(8.0)
s.sendto(b"hello over six\n", (sys.argv[2], 5008))
try:
    d, a = s.recvfrom(100)
    print(a[0], a[1], d.decode().strip())
except socket.timeout:
    print("timeout")
PYEOF
CLIENT_PID=$!
net_bg_add "$CLIENT_PID"
wait_for 5 grepq 'hello over six' "$NET_TMP/l.out" || net_fail "toe-nc -6 -u -l wrote no datagram"
check "toectl flows: the UDP flow with its [v6]:port peer" \
  bash -c "'$TOECTL' --ctl '$CTL' flows | grep -q '^udp .*\[$DEV6\]:5008 .*\[$PEER6\]:40555'"
echo "answer over six" >&7
exec 7>&-
wait "$CLIENT_PID"
check_eq "UDP over IPv6: the kernel client got toe-nc's answer from [$DEV6]:5008" \
  "$(cat "$NET_TMP/client.out")" "$DEV6 5008 answer over six"
kill -TERM "$LNC_PID" 2>/dev/null
wait "$LNC_PID"
check_eq "toe-nc -6 -u -l wrote the datagram" "$(cat "$NET_TMP/l.out")" "hello over six"
nc_sanitizer "toe-nc -6 -u -l" "$NET_TMP/l.err"

# ---- TCP, dual-stack: toe-nc -6 -l on [::] serves a kernel client over IPv4 --------------------
head -c 300000 /dev/urandom >"$NET_TMP/t.bin"
dev bash -c "exec timeout -k 2 20 '$TOE_NC' --ctl '$CTL' -6 -l -v 5009 </dev/null >'$NET_TMP/t.out' 2>'$NET_TMP/t.err'" &
TNC_PID=$!
net_bg_add "$TNC_PID"
wait_for 5 grepq '^Listening on' "$NET_TMP/t.err" || net_fail "toe-nc -6 -l did not say it listens"
peer timeout -k 2 20 nc -N "$NET_DEV_ADDR" 5009 <"$NET_TMP/t.bin" >/dev/null 2>"$NET_TMP/knc.err"
check_eq "TCP over IPv4 to the [::] listener: kernel nc -N exits 0" "$?" 0
wait "$TNC_PID"
check_eq "TCP dual-stack: toe-nc -6 -l exits 0" "$?" 0
check_eq "TCP dual-stack: the data arrived intact (SHA-256)" \
  "$(sha "$NET_TMP/t.out")" "$(sha "$NET_TMP/t.bin")"
check "TCP dual-stack: -v names the IPv4 peer v4-mapped, as Linux" \
  grep -q "^Connection received on ::ffff:$NET_PEER_ADDR " "$NET_TMP/t.err"
sed 's/^/#   toe-nc: /' "$NET_TMP/t.err" | head -3
nc_sanitizer "toe-nc -6 -l" "$NET_TMP/t.err"

# ---- TCP over IPv6 both ways: toe-nc -6 -N -> kernel nc -l, kernel nc -N -> toe-nc -6 -l ---------
peer bash -c "exec timeout -k 2 20 nc -l $PEER6 5010 </dev/null | sha256sum >$NET_TMP/peer6.sha" &
P6_PID=$!
net_bg_add "$P6_PID"
wait_for 5 peer_listening 5010 || net_fail "kernel nc -l did not listen on [$PEER6]:5010"
dev timeout -k 2 20 "$TOE_NC" --ctl "$CTL" -6 -N "$PEER6" 5010 <"$NET_TMP/t.bin" >/dev/null \
  2>"$NET_TMP/a6.err"
check_eq "TCP over IPv6, active: toe-nc -6 -N exits 0" "$?" 0
sed 's/^/#   toe-nc: /' "$NET_TMP/a6.err" | head -3
wait "$P6_PID"
check_eq "TCP over IPv6, active: the kernel got the data intact (SHA-256)" \
  "$(awk '{print $1}' "$NET_TMP/peer6.sha")" "$(sha "$NET_TMP/t.bin")"
nc_sanitizer "toe-nc -6 (active)" "$NET_TMP/a6.err"
dev bash -c "exec timeout -k 2 20 '$TOE_NC' --ctl '$CTL' -6 -l -v 5011 </dev/null >'$NET_TMP/p6.out' 2>'$NET_TMP/p6.err'" &
T6_PID=$!
net_bg_add "$T6_PID"
wait_for 5 grepq '^Listening on' "$NET_TMP/p6.err" || net_fail "toe-nc -6 -l did not say it listens"
peer timeout -k 2 20 nc -N "$DEV6" 5011 <"$NET_TMP/t.bin" >/dev/null 2>"$NET_TMP/knc6.err"
check_eq "TCP over IPv6, passive: kernel nc -N exits 0" "$?" 0
wait "$T6_PID"
check_eq "TCP over IPv6, passive: toe-nc -6 -l exits 0" "$?" 0
check_eq "TCP over IPv6, passive: the data arrived intact (SHA-256)" \
  "$(sha "$NET_TMP/p6.out")" "$(sha "$NET_TMP/t.bin")"
check "TCP over IPv6, passive: -v names the IPv6 peer" \
  grep -q "^Connection received on $PEER6 " "$NET_TMP/p6.err"
nc_sanitizer "toe-nc -6 -l (IPv6 peer)" "$NET_TMP/p6.err"

stop_toed
check_toed_exit
net_finish
