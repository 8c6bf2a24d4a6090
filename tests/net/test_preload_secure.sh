#!/usr/bin/env bash
# libtoe-preload in a program with AT_SECURE (issue 12, item 9): a set-user-ID or file-capability
# program runs with its owner's rights but its caller's environment, so the preload must not let
# TOE_CTL or TOE_OFFLOAD choose where such a program's connections go (secure_getenv).
#  - control: a plain copy of tests/net/preload_secure.c, run as nobody with TOE_CTL naming a
#    control socket this test serves, connects there (the preload attaches to "the device");
#  - the same program with a file capability (AT_SECURE set, checked with getauxval): the socket
#    TOE_CTL names sees no connection.
# No toed is needed: the "device" is a socket that only counts connections. The programs run in
# a namespace of their own with no route anywhere, so their kernel connect goes nowhere.
# Usage: bash tests/net/test_preload_secure.sh BINDIR
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/transport_lib.sh"
source "$(dirname "$0")/preload_lib.sh"
NET_REQUIRED_TOOLS="ip timeout setcap setpriv $NET_PY"
net_init "$1" 60
tr_init
preload_init
PS=$NET_BINDIR/preload_secure
tr_need "$PS"
net_setup

PUB=$NET_TMP/pub
mkdir -p "$PUB"
chmod 0711 "$NET_TMP"
chmod 0755 "$PUB"
FAKE=$PUB/fake.sock
cp "$PS" "$PUB/plain" && cp "$PS" "$PUB/secure" || net_die "cannot copy preload_secure"
chmod 0755 "$PUB/plain" "$PUB/secure"
setcap cap_net_raw+ep "$PUB/secure" || net_die "setcap failed (file capabilities unsupported here?)"

dev_bg "$NET_PY" -c '
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.bind(sys.argv[1]); os.chmod(sys.argv[1], 0o777); s.listen(8)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    print("connection", flush=True)
    c.close()' "$FAKE" >"$NET_TMP/fake.log" 2>&1 </dev/null
wait_for 5 grep -q ready "$NET_TMP/fake.log" || net_die "the fake control socket did not start"
conns() { grep -c '^connection' "$NET_TMP/fake.log"; }

# run NAME: the copy NAME as nobody with the environment a hostile caller would set.
run() {
  dev timeout -k 2 20 setpriv --reuid nobody --regid nogroup --clear-groups \
    env TOE_CTL="$FAKE" TOE_OFFLOAD="tcp:*:*" ASAN_OPTIONS=detect_leaks=0 \
    "$PUB/$1" "$PRELOAD" "$NET_PEER_ADDR" 9 >"$NET_TMP/$1.out" 2>&1
}
run plain
check_eq "control: a plain program is not AT_SECURE" "$(kv secure "$(cat "$NET_TMP/plain.out")")" 0
check_eq "control: its preload attaches where TOE_CTL says" "$(conns)" 1
run secure
sed 's/^/#   /' "$NET_TMP/secure.out" | head -5
check_eq "the file-capability copy runs with AT_SECURE" "$(kv secure "$(cat "$NET_TMP/secure.out")")" 1
check "... and got as far as its connect" grep -q '^connect ' "$NET_TMP/secure.out"
check_eq "... its preload ignores TOE_CTL (no connection to that socket)" "$(conns)" 1
net_finish
