#!/usr/bin/env bash
# toed as a service (docs/operations.md "As a service"): the config file, the log levels, and the
# readiness protocol systemd's Type=notify uses, checked without systemd:
#  - --config FILE supplies the settings (the device answers ping at the file's address); a flag
#    on the command line wins over the file; a bad key is refused with its file and line (exit 2);
#  - --log-level info: every line has a UTC timestamp and a level, the session lines (debug) are
#    left out; --log-level debug shows them; nothing is lost at exit (the summary is there);
#  - $NOTIFY_SOCKET: a datagram socket made by the test (as systemd would) receives READY=1 with
#    the port in STATUS once the device serves, then STOPPING=1 at SIGTERM.
#
#   bash tests/net/test_toed_service.sh BINDIR        (root)
set -u
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/transport_lib.sh"
NET_REQUIRED_TOOLS="ip ping timeout $NET_PY"
net_init "${1:-}" 90
tr_init
net_setup

# ---- bad config ---------------------------------------------------------------------------------
printf 'addr 198.18.0.1/24\nfrobnicate 1\n' >"$NET_TMP/bad.conf"
dev "$NET_TOED" --config "$NET_TMP/bad.conf" --wire "$NET_DEV_IF" >/dev/null 2>"$NET_TMP/err"
check_eq "config with an unknown key: exit 2" "$?" 2
check "config with an unknown key: names file and line" grep -q "bad.conf:2: unknown option '--frobnicate'" "$NET_TMP/err"

# ---- config + log level + notify ----------------------------------------------------------------
cat >"$NET_TMP/toed.conf" <<CONF
# a comment, then settings with the flags' keys
addr 198.18.0.99/24     # the command line's --addr wins over this
mac=$NET_DEV_MAC
log-level info
CONF
NOTIFY=$NET_TMP/notify.sock
"$NET_PY" - "$NOTIFY" >"$NET_TMP/notify.out" 2>&1 <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(60)
print("bound", flush=True)
while True:
    try:
        m = s.recv(4096).decode()
    except socket.timeout:
        break
    print(m.replace("\n", "|"), flush=True)
    if "STOPPING=1" in m:
        break
PY
net_bg_add $!
wait_for 5 grep -q bound "$NET_TMP/notify.out" || net_die "the notify listener did not start"

NET_TOED_LOG=$NET_TMP/toed.log
ip netns exec "$NET_DEV_NS" env NOTIFY_SOCKET="$NOTIFY" "$NET_TOED" --config "$NET_TMP/toed.conf" \
  --wire "$NET_DEV_IF" --addr "$NET_DEV_ADDR/$NET_PREFIX" --ctl "$CTL" >"$NET_TOED_LOG" 2>&1 </dev/null &
NET_TOED_PID=$!
wait_toed_ready 10
check "the command line's --addr won over the file's" true # (the peer pinged $NET_DEV_ADDR)
wait_for 5 grep -q READY=1 "$NET_TMP/notify.out"
check "READY=1 sent to \$NOTIFY_SOCKET" grep -q "READY=1" "$NET_TMP/notify.out"
check "READY's STATUS names the port" grep -q "STATUS=$NET_DEV_IF" "$NET_TMP/notify.out"
toectl_run status >/dev/null # one session: its lines are debug
check_toed_exit
wait_for 5 grep -q STOPPING=1 "$NET_TMP/notify.out"
check "STOPPING=1 at SIGTERM" grep -q "STOPPING=1" "$NET_TMP/notify.out"
sed 's/^/#   /' "$NET_TOED_LOG" | head -8
STAMP='^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z (error|warning|info|debug) +toed'
check_eq "log-level info: every line stamped with time and level" "$(grep -cvE "$STAMP" "$NET_TOED_LOG")" 0
check "log-level info: the start line" grep -qE "info +toed: up on $NET_DEV_IF" "$NET_TOED_LOG"
check "log-level info: the summary at exit is not lost" grep -qE "info +toed: stopped" "$NET_TOED_LOG"
check_eq "log-level info: no session lines (debug)" "$(grep -c 'ctl: session' "$NET_TOED_LOG")" 0

# ---- debug ---------------------------------------------------------------------------------------
start_toed_nopcap --ctl "$CTL" --log-level debug
toectl_run status >/dev/null
check_toed_exit
check "log-level debug: the session lines" grep -qE "debug +toed: ctl: session" "$NET_TOED_LOG"
net_finish
