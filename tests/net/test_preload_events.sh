#!/usr/bin/env bash
# libtoe-preload under an event-loop program of our own (tests/net/preload_events.c), run in the
# device namespace with TOE_STRICT=1 against kernel servers and a kernel client in the peer
# (docs/interception.md):
#  - poll, ppoll, select, pselect on a pipe, an AF_UNIX socketpair, an offloaded client and an
#    offloaded listener together;
#  - on a connection the offloaded listener accepted from a kernel client in the peer: EPOLLET
#    (one edge per arrival once drained to EAGAIN, none without new data), EPOLLONESHOT re-armed
#    with EPOLL_CTL_MOD, EPOLL_CTL_DEL (no events, data kept; ENOENT/EEXIST as the kernel), an
#    epoll descriptor inside another epoll set;
#  - one epoll set, inside another, holding an AF_UNIX socketpair, a pipe (EPOLLET), the offloaded
#    client and the accepted connection, 1 MiB arriving on each at once, every byte checked;
#  - EPOLLRDHUP (only where asked) then EPOLLHUP after both directions shut; a socket and its dup
#    in one set (both reported; the closed number's registration lives while the file is open;
#    EBADF/ENOENT for DEL); a thread asleep on a shared set and a forked child asleep on an
#    inherited set both woken by an arrival; EPOLLEXCLUSIVE (EINVAL with ONESHOT and for MOD, one
#    arrival wakes at least one of two waiting sets);
#  - epoll sets served in the process (offloaded sockets waited on through epoll only): EPOLLOUT
#    and EPOLLIN edges, ET|ONESHOT re-armed by MOD, max 1 with two ready members, a dup of the
#    set and one passed over SCM_RIGHTS, no lost wake-up between two threads asleep on two sets,
#    a sleeper woken by a ready member added, EPOLLEXCLUSIVE with two threads, a closed member;
#    blocking recv with SO_RCVTIMEO and signals (EINTR, SA_RESTART); the library's counter shows
#    the waits were served in the process;
#  - dup, dup2, dup3, F_DUPFD_CLOEXEC from and onto offloaded descriptors: data through the
#    duplicate, closing one number leaves the others working, dup2 over an offloaded connection
#    closes it (the peer sees EOF), a pipe over an offloaded number and back;
#  - SOCK_CLOEXEC / FD_CLOEXEC: a shell exec'd by a forked child lists its descriptors; the
#    close-on-exec offloaded sockets are absent, the others present;
#  - non-blocking errno: EINPROGRESS then SO_ERROR 0, EAGAIN, ECONNREFUSED through SO_ERROR,
#    ECONNRESET after the peer's RST, EPIPE with SIGPIPE and without it under MSG_NOSIGNAL,
#    EADDRINUSE for a second listener.
#  - poll, ppoll, select, pselect served in the process (tests/net/preload_poll.c): timeouts,
#    wake-ups (another thread's too), POLLNVAL, ppoll's signal mask and EINTR, select's timeval
#    (time left), EBADF, the exact revents of TCP (writable, RDHUP/HUP, reset, refused) and UDP;
#    on the device, with TOE_PROFILE=latency, and on the kernel.
# It runs a second time on the device with TOE_PROFILE=latency (spin-then-sleep).
# The same program then runs in the peer namespace on the kernel (TOE_OFFLOAD=none, its peer child
# in the same namespace), so every check describes the kernel's behaviour, not just ours.
# Usage: bash tests/net/test_preload_events.sh BINDIR
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/transport_lib.sh"
source "$(dirname "$0")/preload_lib.sh"
NET_REQUIRED_TOOLS="ip timeout ss $NET_PY"
net_init "$1" 300
tr_init
preload_init
PROG=$NET_BINDIR/preload_events
[ -x "$PROG" ] || net_die "no preload_events at $PROG (build first)"
ECHO=7200
RST=7201
CLOSED=7202
LISTEN=7203

net_setup
start_toed_nopcap --ctl "$CTL"
wait_for 5 test -S "$CTL" || net_die "toed made no control socket at $CTL"

# The peer's servers (peer_servers.py): TCP echo, TCP that resets after the first bytes, UDP echo.
peer_bg timeout -k 2 280 "$NET_PY" "$(dirname "$0")/peer_servers.py" "$NET_PEER_ADDR" "$ECHO" "$RST" \
  >"$NET_TMP/servers.log" 2>&1 </dev/null
wait_for 10 peer_listening "$RST" || net_die "the peer's servers did not start"

# run_prog NAME CMD...: runs preload_events, passes its ok/FAIL lines on (prefixed) and counts them.
run_prog() {
  local name=$1 out=$NET_TMP/$1.out line
  shift
  "$@" >"$out" 2>"$NET_TMP/$name.err"
  local rc=$?
  while IFS= read -r line; do
    case "$line" in
    "ok   - "*) net_ok "$name: ${line#ok   - }" ;;
    "FAIL - "*) net_fail "$name: ${line#FAIL - }" ;;
    "# "*) net_log "$name: ${line#\# }" ;;
    esac
  done <"$out"
  check_eq "$name: exit status" "$rc" 0
  check "$name: at least 60 checks ran" test "$(grep -c '^ok   - ' "$out")" -ge 60
  if grep -qE 'AddressSanitizer|runtime error:' "$NET_TMP/$name.err"; then
    net_fail "$name: sanitizer report"
    head -20 "$NET_TMP/$name.err" | sed 's/^/#   /'
  fi
  [ "$rc" = 0 ] || sed 's/^/#   stderr: /' "$NET_TMP/$name.err" | head -10
}

toectl_json "$NET_TMP/stats0.json" stats
# TOE_PRELOAD_DEBUG=1: the library's counters at exit say whether epoll waits were served in the
# process (docs/interception.md, "Readiness served in user space") rather than by the kernel.
run_prog device dev timeout -k 2 120 "${PRE[@]}" TOE_PRELOAD_DEBUG=1 "$PROG" "$NET_PEER_ADDR" "$ECHO" \
  "$RST" "$CLOSED" "$LISTEN" "$NET_DEV_ADDR" "/var/run/netns/$NET_PEER_NS"
served=$(sed -n 's/.*epoll: \([0-9]*\) waits served in the process.*/\1/p' "$NET_TMP/device.err" | tail -1)
check_ge "device: epoll waits served in the process" "$(num "$served")" 50
# The program's sockets really were the device's: the engine accepted the peer's connections and
# opened the connections to the echo and reset servers.
toectl_json "$NET_TMP/stats1.json" stats
for c in tcp.passive_opens tcp.active_opens; do
  a=$(num "$(stat_get "$NET_TMP/stats0.json" "$c")")
  b=$(num "$(stat_get "$NET_TMP/stats1.json" "$c")")
  check_ge "device: $c grew by the program's connections" "$((b - a))" 2
done
# Again on the device with TOE_PROFILE=latency: every wait spins and processes the device's
# completions in the waiting thread (docs/interception.md, "Spinning"); the behaviour must not
# change.
run_prog device_latency dev timeout -k 2 120 "${PRE[@]}" TOE_PROFILE=latency "$PROG" \
  "$NET_PEER_ADDR" "$ECHO" "$RST" "$CLOSED" "$((LISTEN + 10))" "$NET_DEV_ADDR" "/var/run/netns/$NET_PEER_NS"
# The same program on the kernel: preloaded with the library off, in the peer namespace (its peer
# child connects to the listener in the same namespace).
run_prog kernel peer timeout -k 2 120 "${PRE[@]}" TOE_OFFLOAD=none "$PROG" "$NET_PEER_ADDR" "$ECHO" \
  "$RST" "$CLOSED" "$LISTEN" "$NET_PEER_ADDR" "/var/run/netns/$NET_PEER_NS"

# poll, ppoll, select, pselect on offloaded sockets (tests/net/preload_poll.c): served in the
# process on the device (the library's counter says so), and the same checks on the kernel.
POLLPROG=$NET_BINDIR/preload_poll
[ -x "$POLLPROG" ] || net_die "no preload_poll at $POLLPROG (build first)"
preload_run poll-device dev timeout -k 2 60 "${PRE[@]}" TOE_PRELOAD_DEBUG=1 "$POLLPROG" \
  "$NET_PEER_ADDR" "$ECHO" "$RST" "$CLOSED"
served=$(sed -n 's/.*poll\/select: \([0-9]*\) calls served in the process.*/\1/p' \
  "$NET_TMP/poll-device.err" | tail -1)
check_ge "poll-device: poll/select calls served in the process" "$(num "$served")" 20
preload_run poll-device-latency dev timeout -k 2 60 "${PRE[@]}" TOE_PROFILE=latency "$POLLPROG" \
  "$NET_PEER_ADDR" "$ECHO" "$RST" "$CLOSED"
preload_run poll-kernel peer timeout -k 2 60 "${PRE[@]}" TOE_OFFLOAD=none "$POLLPROG" \
  "$NET_PEER_ADDR" "$ECHO" "$RST" "$CLOSED"

check_toed_exit
net_finish
