#!/usr/bin/env bash
# toed's command line and its hold on the port.
#  - bad arguments (missing or unknown interface, malformed --addr/--mac/--mtu/--gateway/--vlan,
#    unknown service, a missing --ctl-group or --ctl directory, no privileges, ...): exit status 2, nothing on stdout, exactly one line on stderr that names
#    the offending value; --help: usage on stdout, status 0;
#  - the port guard: the device namespace's kernel is given the SAME address as toed on the port
#    (the coexistence case). Before toed runs, the kernel answers the peer (control: the checks
#    below can fail). While toed runs: its nftables table exists, the peer's pings are answered
#    once (no DUP! from the kernel), each ARP request gets exactly one reply, and the kernel's own
#    transmissions (a ping with a permanent neighbour entry) never reach the peer;
#  - SIGINT (toed started from a script, where SIGINT starts ignored): exit 0, counter summary;
#    afterwards the table is gone and the kernel talks on the port again;
#  - a second toed on the same port refuses to start (exit 1) and leaves the first one's guard;
#  - a stale table left by a crashed toed is replaced at start; a port that was down is brought
#    up and put down again; --quiet prints nothing on a clean run;
#  - the pcap is readable and clean.
# Usage: bash tests/net/test_toed_cli.sh BINDIR
source "$(dirname "$0")/lib.sh"
net_init "$1" 150
net_setup

TABLE=toed_$NET_DEV_IF
OKADDR=$NET_DEV_ADDR/$NET_PREFIX

# ---- arguments --------------------------------------------------------------------------------

# args_case NAME WANT_STATUS NEEDLE ARGS...: runs toed in the device namespace (where the port
# exists, so only the intended problem can be the reason). For status 2: stdout empty, stderr one
# line starting "toed: " and containing NEEDLE.
args_case() {
  local name=$1 want=$2 needle=$3 rc lines
  shift 3
  dev timeout 10 "${AS_USER[@]}" "$NET_TOED" "$@" >"$NET_TMP/args.out" 2>"$NET_TMP/args.err" </dev/null
  rc=$?
  lines=$(wc -l <"$NET_TMP/args.err")
  if [ "$rc" != "$want" ]; then
    net_fail "$name: exit status $rc, want $want ($(head -c 300 "$NET_TMP/args.err" | tr '\n' ' '))"
    return
  fi
  if [ "$want" = 2 ]; then
    if [ "$lines" != 1 ] || [ -s "$NET_TMP/args.out" ]; then
      net_fail "$name: want exactly one stderr line and no stdout, got $lines lines: $(head -c 300 "$NET_TMP/args.err" | tr '\n' '|')"
      return
    fi
    if ! grep -q '^toed: ' "$NET_TMP/args.err" || ! grep -qF -- "$needle" "$NET_TMP/args.err"; then
      net_fail "$name: message does not start with 'toed: ' or lacks '$needle': $(cat "$NET_TMP/args.err")"
      return
    fi
  fi
  net_ok "$name: status $rc: $(head -1 "$NET_TMP/args.err")"
}

W=(--wire "$NET_DEV_IF")
AS_USER=() # a command prefix (setpriv ...) that runs toed as another user
args_case "no arguments" 2 "--wire"
args_case "no --addr" 2 "--addr" "${W[@]}"
args_case "missing interface" 2 "nosuch0" --wire nosuch0 --addr "$OKADDR"
args_case "overlong interface name" 2 "no such network interface" --wire abcdefghijklmnopqrstuvwxyz --addr "$OKADDR"
args_case "--addr 198.18.0.300/24" 2 "198.18.0.300/24" "${W[@]}" --addr 198.18.0.300/24
args_case "--addr without prefix" 2 "198.18.0.1" "${W[@]}" --addr 198.18.0.1
args_case "--addr prefix 33" 2 "/33" "${W[@]}" --addr 198.18.0.1/33
args_case "--addr junk" 2 "banana" "${W[@]}" --addr banana
args_case "--addr network address" 2 "198.18.0.0/24" "${W[@]}" --addr 198.18.0.0/24
args_case "--addr multicast" 2 "224.0.0.1/24" "${W[@]}" --addr 224.0.0.1/24
args_case "--addr without value" 2 "--addr" "${W[@]}" --addr
args_case "--mac too short" 2 "02:00:00:00:00" "${W[@]}" --addr "$OKADDR" --mac 02:00:00:00:00
args_case "--mac not hex" 2 "02:00:00:00:00:zz" "${W[@]}" --addr "$OKADDR" --mac 02:00:00:00:00:zz
args_case "--mac multicast" 2 "01:00:5e:00:00:01" "${W[@]}" --addr "$OKADDR" --mac 01:00:5e:00:00:01
args_case "--mac zero" 2 "00:00:00:00:00:00" "${W[@]}" --addr "$OKADDR" --mac 00:00:00:00:00:00
args_case "--mtu 67" 2 "--mtu 67" "${W[@]}" --addr "$OKADDR" --mtu 67
args_case "--mtu 9001" 2 "--mtu 9001" "${W[@]}" --addr "$OKADDR" --mtu 9001
args_case "--mtu abc" 2 "--mtu abc" "${W[@]}" --addr "$OKADDR" --mtu abc
args_case "--mtu 1500x" 2 "--mtu 1500x" "${W[@]}" --addr "$OKADDR" --mtu 1500x
args_case "--mtu above the port's MTU" 2 "--mtu 9000" "${W[@]}" --addr "$OKADDR" --mtu 9000
args_case "--link bogus" 2 "--link bogus" "${W[@]}" --addr "$OKADDR" --link bogus
args_case "--link twice" 2 "--link given twice" "${W[@]}" --addr "$OKADDR" --link afxdp --link afpacket
args_case "unknown service" 2 "bogus" "${W[@]}" --addr "$OKADDR" --service bogus:7
args_case "service port 0" 2 "echo:0" "${W[@]}" --addr "$OKADDR" --service echo:0
args_case "service port 65536" 2 "echo:65536" "${W[@]}" --addr "$OKADDR" --service echo:65536
args_case "two services on one port" 2 "discard:7" "${W[@]}" --addr "$OKADDR" --service echo --service discard:7
args_case "--gateway off-link" 2 "10.1.1.1" "${W[@]}" --addr "$OKADDR" --gateway 10.1.1.1
args_case "--gateway malformed" 2 "198.18.0.999" "${W[@]}" --addr "$OKADDR" --gateway 198.18.0.999
args_case "--vlan 4095" 2 "--vlan 4095" "${W[@]}" --addr "$OKADDR" --vlan 4095
args_case "unknown option" 2 "--frobnicate" "${W[@]}" --addr "$OKADDR" --frobnicate
args_case "stray argument" 2 "stray" "${W[@]}" --addr "$OKADDR" stray
args_case "--addr twice" 2 "twice" "${W[@]}" --addr "$OKADDR" --addr "$OKADDR"
args_case "--pcap in a missing directory" 2 "/nonexistent-dir/x.pcap" "${W[@]}" --addr "$OKADDR" --pcap /nonexistent-dir/x.pcap
args_case "--ctl-group of a missing group" 2 "--ctl-group nosuchgroup$$: no such group" "${W[@]}" --addr "$OKADDR" --ctl "$NET_TMP/t.sock" --ctl-group nosuchgroup$$
args_case "--ctl in a missing directory" 2 "the directory $NET_TMP/nosuchdir does not exist" "${W[@]}" --addr "$OKADDR" --ctl "$NET_TMP/nosuchdir/t.sock"
args_case "--ctl-group of a missing group, default --ctl" 2 "nosuchgroup$$" "${W[@]}" --addr "$OKADDR" --ctl-group nosuchgroup$$
# Not root: one line saying what it needs.
AS_USER=(setpriv --reuid nobody --regid nogroup --clear-groups)
if "${AS_USER[@]}" test -x "$NET_TOED"; then
  args_case "as a user without privileges" 2 "needs root, or CAP_NET_ADMIN and CAP_NET_RAW" "${W[@]}" --addr "$OKADDR"
  AS_USER+=(--inh-caps +net_raw --ambient-caps +net_raw)
  args_case "as a user with CAP_NET_RAW only" 2 "needs root, or CAP_NET_ADMIN and CAP_NET_RAW" "${W[@]}" --addr "$OKADDR"
else
  net_log "skip - the unprivileged case (nobody cannot run $NET_TOED)"
fi
AS_USER=()
args_case "--help" 0 "" --help
check "--help prints usage on stdout" grep -q '^usage: toed --wire' "$NET_TMP/args.out"
check "--help prints nothing on stderr" test ! -s "$NET_TMP/args.err"
args_case "-h" 0 "" -h
check "no nftables table left by the failed starts" bash -c "! ip netns exec $NET_DEV_NS nft list table netdev $TABLE >/dev/null 2>&1"

# ---- the port guard ---------------------------------------------------------------------------

# start_toed's readiness ping can be answered by the device kernel before toed has taken the port
# (the kernel has the same address here): wait for the guard table, after which only toed can
# answer, then ping again.
wait_guarded() {
  local i
  for i in $(seq 100); do
    if dev nft list table netdev "$TABLE" 2>/dev/null | grep -q 'hook egress'; then
      wait_toed_ready 10
      return 0
    fi
    kill -0 "$NET_TOED_PID" 2>/dev/null || break
    sleep 0.1
  done
  net_log "toed log:"
  sed 's/^/#   /' "$NET_TOED_LOG"
  net_die "toed did not install its port guard"
}

# The kernel of the device namespace gets toed's own address on the port, and knows the peer's MAC
# without ARP, so nothing but the guard can keep it quiet.
dev ip addr add "$OKADDR" dev "$NET_DEV_IF" || net_die "kernel address on the port"
dev ip neigh replace "$NET_PEER_ADDR" lladdr "$NET_PEER_MAC" dev "$NET_DEV_IF" nud permanent ||
  net_die "permanent neighbour"

check "control: without toed the device kernel answers the peer's ping" \
  peer ping -c 1 -W 2 -q "$NET_DEV_ADDR"
check "control: without toed the device kernel reaches the peer" \
  dev ping -c 1 -W 2 -q "$NET_PEER_ADDR"

start_toed --service echo:7
wait_guarded
TOED_PID=$NET_TOED_PID
check "nftables table $TABLE installed" dev nft list table netdev "$TABLE"
check "guard has an ingress chain with policy drop" \
  bash -c "ip netns exec $NET_DEV_NS nft list table netdev $TABLE | grep -A2 'hook ingress' | grep -q 'policy drop'"
check "guard has an egress chain with policy drop" \
  bash -c "ip netns exec $NET_DEV_NS nft list table netdev $TABLE | grep -A2 'hook egress' | grep -q 'policy drop'"

# A second toed on the same port must refuse (replacing the table would unguard the first).
dev timeout 10 "$NET_TOED" --wire "$NET_DEV_IF" --addr "$OKADDR" >"$NET_TMP/second.out" 2>&1 </dev/null
check_eq "second toed on the same port: exit status" "$?" 1
check "second toed says the port is taken" grep -q "already owns $NET_DEV_IF" "$NET_TMP/second.out"
check "first toed's guard still in place" \
  bash -c "ip netns exec $NET_DEV_NS nft list table netdev $TABLE | grep -q 'hook egress'"

peer_capture_start "$NET_TMP/peer.pcap" || net_fail "peer capture did not start"
out=$(peer ping -c 10 -i 0.2 -W 2 "$NET_DEV_ADDR" 2>&1)
check_eq "ping answered by toed only: replies" "$(sed -n 's/.* \([0-9]\+\) received.*/\1/p' <<<"$out")" 10
check "ping answered once (no DUP! from the kernel)" bash -c '! grep -q "DUP!" <<<"$1"' _ "$out"
# Fresh ARP exchanges: each request for our address must get exactly one reply.
for i in 1 2 3; do
  peer ip neigh flush dev "$NET_PEER_IF"
  peer ping -c 1 -W 2 -q "$NET_DEV_ADDR" >/dev/null 2>&1
done
# The kernel tries to talk: with a permanent neighbour its echo requests need no ARP.
dev ping -c 3 -i 0.2 -W 1 -q "$NET_PEER_ADDR" >/dev/null 2>&1
sleep 0.5
peer_capture_stop
P=$NET_TMP/peer.pcap
# Every count of this capture in one tshark pass (a tshark start is a second of CPU, several on a
# loaded machine).
F_ARPQ="arp.opcode == 1 && arp.src.proto_ipv4 == $NET_PEER_ADDR && arp.dst.proto_ipv4 == $NET_DEV_ADDR"
F_ARPR="arp.opcode == 2 && arp.src.proto_ipv4 == $NET_DEV_ADDR && eth.dst == $NET_PEER_MAC"
F_KREQ="icmp.type == 8 && ip.src == $NET_DEV_ADDR"
F_REP="icmp.type == 0 && ip.src == $NET_DEV_ADDR"
F_REQ="icmp.type == 8 && ip.src == $NET_PEER_ADDR"
tshark_prefetch "$P" "$F_ARPQ" "$F_ARPR" "$F_KREQ" "$F_REP" "$F_REQ"
requests=$(tshark_count "$P" "$F_ARPQ")
replies=$(tshark_count "$P" "$F_ARPR")
check_ge "peer sent ARP requests for the device" "$requests" 3
check_eq "exactly one ARP reply per request" "$replies" "$requests"
check_eq "no echo request from the device kernel reached the peer" \
  "$(tshark_count "$P" "$F_KREQ")" 0
check_eq "echo replies reached the peer once per request" \
  "$(tshark_count "$P" "$F_REP")" "$(tshark_count "$P" "$F_REQ")"

# SIGINT from a script (background jobs start with SIGINT ignored; toed must still take it).
kill -INT "$TOED_PID"
for i in $(seq 100); do kill -0 "$TOED_PID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$TOED_PID" 2>/dev/null; then
  net_fail "toed ignored SIGINT"
  stop_toed
else
  wait "$TOED_PID"
  check_eq "toed exits 0 on SIGINT" "$?" 0
  NET_TOED_PID=
fi
check "summary says why it stopped" grep -q 'stopped on SIGINT' "$NET_TOED_LOG"
check_ge "summary: icmp.tx_echo_replies" "$(toed_counter icmp.tx_echo_replies)" 10
check_ge "summary: driver.tx_frames" "$(toed_counter driver.tx_frames)" 10
check_ge "summary: pcap.frames" "$(toed_counter pcap.frames)" 20
check "no sanitizer report" bash -c "! grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' $NET_TOED_LOG"
check "table removed on exit" bash -c "! ip netns exec $NET_DEV_NS nft list table netdev $TABLE >/dev/null 2>&1"
check "after exit the kernel answers on the port again" peer ping -c 1 -W 2 -q "$NET_DEV_ADDR"
check "after exit the kernel reaches the peer again" dev ping -c 1 -W 2 -q "$NET_PEER_ADDR"

D=$NET_PCAP
F_GARP="arp.isannouncement == 1 || arp.isgratuitous == 1"
tshark_prefetch "$D" frame "$F_REP" "$F_REQ" "$F_GARP" "$(pcap_clean_filter)"
check_ge "pcap readable: tshark reads at least the 20 frames of the pings" "$(tshark_count "$D" frame)" 20
check_ge "pcap: echo replies sent by toed" "$(tshark_count "$D" "$F_REP")" 10
check_ge "pcap: echo requests received" "$(tshark_count "$D" "$F_REQ")" 10
check_ge "pcap: gratuitous ARP at start" "$(tshark_count "$D" "$F_GARP")" 1
check_pcap_clean "pcap" "$D"

# ---- stale table, port down at start, --quiet -------------------------------------------------

dev nft -f - <<EOF || net_fail "could not plant a stale table"
table netdev $TABLE {
  chain stale_marker {
    type filter hook ingress device "$NET_DEV_IF" priority 0; policy accept;
  }
}
EOF
dev ip link set "$NET_DEV_IF" down
start_toed --quiet
wait_guarded
check "stale table replaced (no stale chain)" \
  bash -c "ip netns exec $NET_DEV_NS nft list table netdev $TABLE | grep -q 'hook egress' && ! ip netns exec $NET_DEV_NS nft list table netdev $TABLE | grep -q stale_marker"
check "port brought up" bash -c "ip -n $NET_DEV_NS link show $NET_DEV_IF | grep -q '[<,]UP[,>]'"
out=$(peer ping -c 3 -i 0.2 -W 2 "$NET_DEV_ADDR" 2>&1)
check "ping answered without duplicates after the stale table" \
  bash -c '[[ "$1" == *" 3 received"* ]] && ! grep -q "DUP!" <<<"$1"' _ "$out"
check_toed_exit
check "--quiet: nothing logged" test ! -s "$NET_TOED_LOG"
check "table removed again" bash -c "! ip netns exec $NET_DEV_NS nft list table netdev $TABLE >/dev/null 2>&1"
check "port put down again" bash -c "! ip -n $NET_DEV_NS link show $NET_DEV_IF | grep -q '[<,]UP[,>]'"

net_finish
