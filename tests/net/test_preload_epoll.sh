#!/usr/bin/env bash
# libtoe-preload with a program of our own (tests/net/preload_check.c), run in the device namespace
# with TOE_STRICT=1 against kernel servers in the peer (docs/interception.md):
#  - mix: one epoll set with an AF_UNIX socketpair (the kernel's) and offloaded TCP connections:
#    4 MiB relayed AF_UNIX -> TCP -> kernel echo -> TCP and compared; EPOLLET (one edge per
#    change, none after draining), EPOLLONESHOT (no event until re-armed), EPOLLRDHUP;
#    the mix runs a second time under TOE_PROFILE=throughput (waits take the device's events);
#  - errors: the kernel's errno behaviour through the device: EINPROGRESS then POLLERR and
#    SO_ERROR = ECONNREFUSED, blocking ECONNREFUSED, EAGAIN, ECONNRESET then EOF, EPIPE with one
#    SIGPIPE (none with MSG_NOSIGNAL), EADDRINUSE; options replayed at the switch, names,
#    TCP_INFO, FIONREAD, FIONBIO, O_NONBLOCK, MSG_PEEK, dup/dup2, writev/recvmsg, half-close with
#    POLLRDHUP, FD_CLOEXEC across fork+exec, ENOTCONN in a forked child, UDP sendto/recvfrom/
#    sendmsg and ECONNREFUSED from an ICMP port unreachable;
#  - rules from TOE_OFFLOAD_FILE: first match, '!' declines, no match is the kernel, a malformed
#    rule is reported;
#  - bad TOE_PROFILE / TOE_SPIN_US / TOE_BATCH values are named on stderr and ignored;
#  - a preloaded python runs a subprocess (vfork, and close_range in the child): its connection
#    survives;
#  - a preloaded process that forked a long-lived child is killed: its connection leaves the device
#    within about a second (the child kept no copy of the session);
#  - the same program on the kernel (in the peer namespace: errors preloaded with TOE_OFFLOAD=none,
#    mix not preloaded) passes the same checks, so they describe the kernel's behaviour and not
#    just ours (except the fork rule, which is the library's own).
# Usage: bash tests/net/test_preload_epoll.sh BINDIR
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/transport_lib.sh"
source "$(dirname "$0")/preload_lib.sh"
NET_REQUIRED_TOOLS="ip ping timeout ss tcpdump $NET_PY"
net_init "$1" 300
tr_init
preload_init
CHECK=$NET_BINDIR/preload_check
[ -x "$CHECK" ] || net_die "no preload_check at $CHECK (build first)"
ECHO=7100
RST=7101
CLOSED=7102
LOCAL=7103

net_setup
start_toed_nopcap --ctl "$CTL"
wait_for 5 test -S "$CTL" || net_die "toed made no control socket at $CTL"

# The peer's servers (peer_servers.py): TCP echo, TCP that resets after the first bytes, UDP echo.
peer_bg timeout -k 2 280 "$NET_PY" "$(dirname "$0")/peer_servers.py" "$NET_PEER_ADDR" "$ECHO" "$RST" \
  >"$NET_TMP/servers.log" 2>&1 </dev/null
wait_for 10 peer_listening "$RST" || net_die "the peer's servers did not start"

# run_check NAME NS ENV... -- ARGS...: runs preload_check, passes its ok/FAIL lines on (prefixed)
# and counts them.
run_check() { preload_run "$@"; }

run_check mix dev timeout -k 2 90 "${PRE[@]}" "$CHECK" mix "$NET_PEER_ADDR" "$ECHO"
# The same under TOE_PROFILE=throughput: every epoll_wait first takes the device's events in the
# waiting thread (docs/interception.md, "Spinning").
run_check mix-throughput dev timeout -k 2 90 "${PRE[@]}" TOE_PROFILE=throughput "$CHECK" mix \
  "$NET_PEER_ADDR" "$ECHO"
run_check errors dev timeout -k 2 90 "${PRE[@]}" "$CHECK" errors "$NET_PEER_ADDR" "$ECHO" "$RST" \
  "$CLOSED" "$LOCAL"
# The same checks against the kernel itself: the library off, in the peer namespace.
run_check kernel-errors peer timeout -k 2 90 "${PRE[@]}" TOE_OFFLOAD=none PRELOAD_CHECK_KERNEL=1 "$CHECK" errors \
  "$NET_PEER_ADDR" "$ECHO" "$RST" "$CLOSED" "$LOCAL"
run_check kernel-mix peer timeout -k 2 90 "$CHECK" mix "$NET_PEER_ADDR" "$ECHO"

# Rules from a file: the first match decides, '!' declines, no match means the kernel, a malformed
# rule is reported once and skipped. nc -z tries 7100..7102 in turn.
printf '%s\n' '# rules for the test' "!tcp:$NET_PEER_ADDR:$RST   # declined" \
  "tcp:198.18.0.0/24:$ECHO-$RST" 'tcp:bogus:*' >"$NET_TMP/rules.txt"
dev timeout -k 2 20 "${PRE_BASE[@]}" "TOE_CTL=$CTL" "TOE_OFFLOAD_FILE=$NET_TMP/rules.txt" TOE_PRELOAD_DEBUG=1 \
  nc -n -z -w 2 "$NET_PEER_ADDR" "$ECHO-$CLOSED" >/dev/null 2>"$NET_TMP/rules.err"
check "rules: $ECHO matches the range -> device" \
  grep -q "connect $NET_PEER_ADDR:$ECHO -> device" "$NET_TMP/rules.err"
check "rules: $RST is declined by the '!' rule before it -> kernel" \
  grep -q "connect $NET_PEER_ADDR:$RST -> kernel" "$NET_TMP/rules.err"
check "rules: $CLOSED matches nothing -> kernel" \
  grep -q "connect $NET_PEER_ADDR:$CLOSED -> kernel" "$NET_TMP/rules.err"
check "rules: the malformed rule is reported" grep -q "1 malformed rule(s) ignored (bad rule 'tcp:bogus:\*')" \
  "$NET_TMP/rules.err"

# Python's subprocess spawns with vfork (sharing the parent's memory, no fork handlers) and the
# child closes every descriptor (close_range) before exec: the parent's connection must survive.
cat >"$NET_TMP/spawner.py" <<'EOF'
import socket, subprocess, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
s.sendall(b"one")
a = s.recv(10)
r = subprocess.run(["/bin/true"], close_fds=True)
s.sendall(b"two")
b = s.recv(10)
print(a.decode(), r.returncode, b.decode())
EOF
out=$(dev timeout -k 2 20 "${PRE[@]}" "$NET_PY" "$NET_TMP/spawner.py" "$NET_PEER_ADDR" "$ECHO" 2>"$NET_TMP/spawner.err")
check_eq "subprocess (vfork, close_range in the child): the connection survives" "$out" "one 0 two"

# Bad waiting settings are named and ignored (docs/interception.md, "Spinning"): the same
# connection works under the default profile.
out=$(dev timeout -k 2 20 "${PRE[@]}" TOE_PROFILE=fast TOE_SPIN_US=lots TOE_BATCH=0 "$NET_PY" \
  "$NET_TMP/spawner.py" "$NET_PEER_ADDR" "$ECHO" 2>"$NET_TMP/badprofile.err")
check_eq "bad TOE_PROFILE/TOE_SPIN_US/TOE_BATCH: the program still works" "$out" "one 0 two"
check "TOE_PROFILE=fast is named" grep -q 'TOE_PROFILE=fast is not a profile' "$NET_TMP/badprofile.err"
check "TOE_SPIN_US=lots is named" grep -q 'TOE_SPIN_US=lots is not a number' "$NET_TMP/badprofile.err"
check "TOE_BATCH=0 is named" grep -q 'TOE_BATCH=0 is not a batch size' "$NET_TMP/badprofile.err"

# A preloaded process that forked a long-lived child dies: the device must still see the death
# (the child holds no copy of the session).
cat >"$NET_TMP/forker.py" <<'EOF'
import os, socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
s.sendall(b"x")
s.recv(1)
pid = os.fork()
if pid == 0:
    time.sleep(60)
    os._exit(0)
print(pid, flush=True)
time.sleep(60)
EOF
dev_bg "${PRE[@]}" "$NET_PY" "$NET_TMP/forker.py" "$NET_PEER_ADDR" "$ECHO" >"$NET_TMP/forker.out" \
  2>"$NET_TMP/forker.err" </dev/null
FORKER=$BG_PID
wait_for 10 test -s "$NET_TMP/forker.out" || net_fail "the forking client did not start"
CHILD=$(head -1 "$NET_TMP/forker.out")
[[ "$CHILD" =~ ^[0-9]+$ ]] && net_bg_add "$CHILD"
toectl_json "$NET_TMP/fflows0.json" flows
check_eq "fork: the parent's connection is on the device" "$(flows_of "$NET_TMP/fflows0.json" "$FORKER")" 1
# The parent's death must reach the device (its session ends and the parent no longer owns the
# flow), but the connection itself lives on, as on the kernel: the child still holds the
# descriptor (issue 13's inheritance), so the device keeps it for the child's share and sends
# the peer nothing. No wall-clock bound here: toectl's own start-up under load took 2.4 s
# (load 18), which timed the tool, not the device.
FPORT=$(json_eval "$NET_TMP/fflows0.json" "[f['local']['port'] for f in d['flows'] if f['pid'] == $FORKER][0]")
peer_bg tcpdump -i "$NET_PEER_IF" -n -U --immediate-mode -s 128 -w "$NET_TMP/frst.pcap" \
  "src host $NET_DEV_ADDR and tcp port $FPORT and tcp[tcpflags] & (tcp-rst|tcp-fin) != 0" \
  >"$NET_TMP/frst.log" 2>&1 </dev/null
FRST_PID=$BG_PID
wait_for 5 grep -q 'listening on' "$NET_TMP/frst.log" || net_die "tcpdump in the peer namespace"
{ kill -KILL "$FORKER" && wait "$FORKER"; } 2>/dev/null
gone() { toectl_json "$NET_TMP/fflows1.json" flows && [ "$(flows_of "$NET_TMP/fflows1.json" "$FORKER")" = 0 ]; }
# The limit only keeps a broken device from hanging the test.
check "fork: the parent killed, the device no longer counts it as the connection's owner" wait_for 20 gone
check_eq "fork: the connection stays established for the child that holds it" \
  "$(json_eval "$NET_TMP/fflows1.json" "[f['state'] for f in d['flows'] if f['local']['port'] == $FPORT]")" \
  "['ESTAB']"
net_kill_pid "$FRST_PID"
check_eq "fork: no RST or FIN to the peer while the child holds the connection" \
  "$(tcpdump -r "$NET_TMP/frst.pcap" -n 2>/dev/null | wc -l)" 0
if [[ "$CHILD" =~ ^[0-9]+$ ]]; then
  check "  (the child is still alive)" kill -0 "$CHILD"
  net_kill_pid "$CHILD"
fi

check_toed_exit
net_finish
