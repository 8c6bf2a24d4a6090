#!/usr/bin/env bash
# toectl against a running device: status, stats and flows, as text and as JSON (parsed with
# Python's json), before and while toe-nc clients move data through the device to the kernel peer.
#
#   bash tests/net/test_toectl.sh BINDIR        (root; BINDIR holds toed, toectl, toe-nc)
#
# Checks: usage errors exit 2 and a missing device exits 1 with a message; the counters of every
# layer (link, arp, ip, icmp, udp, tcp, transport) are there and match what happened (pings,
# ARP, a TCP and a UDP transfer); text output is in aligned columns; the flow table shows the
# TCP connection and the UDP socket of the clients with pid, command name and origin, ESTAB, the
# right addresses, a growing byte count, cwnd and MSS; status counts the clients and flows; after
# the clients exit, their flows and sessions are gone. An unprivileged member of --ctl-group gets
# the counters but not the flow table (with a clear message); a user outside the group is refused.
set -u
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/transport_lib.sh"

NET_REQUIRED_TOOLS="ip ping nc ss timeout $NET_PY"
net_init "${1:-}" 100
tr_init
tr_need "$TOE_NC"
TCP_PORT=5101
UDP_PORT=5102

net_setup
tr_start_toed

# ---- usage and errors ---------------------------------------------------------------------------

"$TOECTL" >/dev/null 2>&1
check_eq "no command: usage, exit 2" "$?" 2
"$TOECTL" --ctl "$CTL" frobnicate >/dev/null 2>"$NET_TMP/err"
check_eq "unknown command: exit 2" "$?" 2
check "unknown command: says so" grep -q "unknown command" "$NET_TMP/err"
"$TOECTL" --ctl "$CTL" --bogus stats >/dev/null 2>&1
check_eq "unknown option: exit 2" "$?" 2
"$TOECTL" --help | grep -q "status" && "$TOECTL" --help | grep -q "flows"
check_eq "--help: usage on stdout, exit 0" "$?" 0
timeout 10 "$TOECTL" --ctl "$NET_TMP/nothing.sock" status >/dev/null 2>"$NET_TMP/err"
check_eq "no device at the path: exit 1" "$?" 1
check "no device at the path: one-line message naming it" \
  grep -q "cannot attach to $NET_TMP/nothing.sock" "$NET_TMP/err"
TOE_CTL=$NET_TMP/nothing.sock timeout 10 "$TOECTL" stats >/dev/null 2>"$NET_TMP/err"
check_eq "\$TOE_CTL is the default path" "$(grep -c "nothing.sock" "$NET_TMP/err")" 1

# ---- an idle device -----------------------------------------------------------------------------

toectl_run status >"$NET_TMP/status.txt"
check_eq "status: exit 0" "$?" 0
check "status: the ABI version" grep -qE '^abi +toekit transport ABI 1\.[0-9]+' "$NET_TMP/status.txt"
check "status: one client (toectl itself)" grep -qE '^clients +1 attached' "$NET_TMP/status.txt"
check "status: the flow count" grep -qE '^flows +[0-9]+' "$NET_TMP/status.txt"
sed 's/^/#   /' "$NET_TMP/status.txt"

toectl_json "$NET_TMP/status.json" status
check_eq "status --json: exit 0" "$?" 0
check_eq "status --json: abi major" "$(json_eval "$NET_TMP/status.json" "d['abi'].split('.')[0]")" 1
check_eq "status --json: stats and flows granted (root)" \
  "$(json_eval "$NET_TMP/status.json" "'stats' in d['caps'] and 'flows' in d['caps']")" 1
check_eq "status --json: transport.clients_attached" \
  "$(json_eval "$NET_TMP/status.json" "d['gauges']['transport.clients_attached']")" 1
check_eq "status --json: no client flows" \
  "$(json_eval "$NET_TMP/status.json" "d['flows']['total']")" 0

toectl_json "$NET_TMP/stats0.json" stats
check_eq "stats --json: exit 0" "$?" 0
for layer in link arp ip icmp udp tcp pbuf transport; do
  check_eq "stats --json: layer $layer present" \
    "$(json_eval "$NET_TMP/stats0.json" "'$layer' in d['counters'] and len(d['counters']['$layer']) > 0")" 1
done
# start_toed waited for a ping: the peer resolved the device (ARP) and pinged it.
check_ge "stats: link.rx_frames" "$(stat_get "$NET_TMP/stats0.json" link.rx_frames)" 2
check_ge "stats: link.tx_frames" "$(stat_get "$NET_TMP/stats0.json" link.tx_frames)" 2
check_ge "stats: arp requests + replies received" \
  $(($(num "$(stat_get "$NET_TMP/stats0.json" arp.rx_requests)") + $(num "$(stat_get "$NET_TMP/stats0.json" arp.rx_replies)"))) 1
check_ge "stats: icmp.rx_echo_requests" "$(stat_get "$NET_TMP/stats0.json" icmp.rx_echo_requests)" 1
check_ge "stats: icmp.tx_echo_replies" "$(stat_get "$NET_TMP/stats0.json" icmp.tx_echo_replies)" 1
check_eq "stats: tcp.curr_estab" "$(stat_get "$NET_TMP/stats0.json" tcp.curr_estab)" 0
check_ge "stats: transport.sessions (toectl's own)" \
  "$(stat_get "$NET_TMP/stats0.json" transport.sessions)" 1

# Text: "layer.name value" rows in two aligned columns (values right-aligned: every row equally
# long), zero counters left out unless -z.
toectl_run stats >"$NET_TMP/stats.txt"
check_eq "stats: exit 0" "$?" 0
check "stats: link.rx_frames row" grep -qE '^link\.rx_frames +[0-9]+$' "$NET_TMP/stats.txt"
check_eq "stats: value column aligned" \
  "$(tail -n +3 "$NET_TMP/stats.txt" | awk '{ print length($0) }' | sort -u | wc -l)" 1
check_eq "stats: no zero rows without -z" \
  "$(tail -n +3 "$NET_TMP/stats.txt" | awk '$2 == 0 && $1 !~ /\*$/' | wc -l)" 0
toectl_run stats -z >"$NET_TMP/statsz.txt"
check_eq "stats -z: a row for every counter" "$(($(wc -l <"$NET_TMP/statsz.txt") - 2))" \
  "$(json_eval "$NET_TMP/stats0.json" "sum(len(v) for v in d['counters'].values())")"

# ---- while clients move data ----------------------------------------------------------------------

# TCP: toe-nc streams zeros to a kernel nc.
peer_bg timeout -k 2 80 nc -l "$TCP_PORT" >/dev/null 2>&1 </dev/null
wait_for 5 peer_listening "$TCP_PORT" || net_fail "kernel nc listening on $TCP_PORT"
dev_bg "$TOE_NC" "$NET_PEER_ADDR" "$TCP_PORT" </dev/zero >/dev/null 2>"$NET_TMP/nc_tcp.err"
NC_TCP=$BG_PID

# UDP: toe-nc sends a line every 0.1 s (fed through a FIFO we hold open) to a kernel nc -u.
peer_bg timeout -k 2 80 nc -u -l "$UDP_PORT" >"$NET_TMP/udp.out" 2>&1 </dev/null
wait_for 5 peer_listening "$UDP_PORT" udp || net_fail "kernel nc -u listening on $UDP_PORT"
mkfifo "$NET_TMP/udp.fifo"
# Opened read-write here first, so that neither side's open of the FIFO waits for the other.
exec 7<>"$NET_TMP/udp.fifo"
dev_bg "$TOE_NC" -u "$NET_PEER_ADDR" "$UDP_PORT" <"$NET_TMP/udp.fifo" >/dev/null \
  2>"$NET_TMP/nc_udp.err"
NC_UDP=$BG_PID
(
  for _ in $(seq 600); do
    echo "datagram from the host" || exit 0
    sleep 0.1
  done
) >&7 2>/dev/null &
FEEDER=$!
net_bg_add "$FEEDER"

tcp_flow_up() {
  toectl_json "$NET_TMP/flows.json" flows &&
    [ "$(flow_get "$NET_TMP/flows.json" "$NC_TCP" tcp tx_bytes)" -gt 0 ] 2>/dev/null
}
udp_flow_up() {
  toectl_json "$NET_TMP/flows.json" flows && [ "$(flows_of "$NET_TMP/flows.json" "$NC_UDP")" = 1 ]
}
wait_for 10 tcp_flow_up
check_eq "flows: the TCP client's connection is listed with its pid" \
  "$(flow_get "$NET_TMP/flows.json" "$NC_TCP" tcp pid)" "$NC_TCP"
wait_for 10 udp_flow_up
check_eq "flows: the UDP client's socket is listed with its pid" \
  "$(flow_get "$NET_TMP/flows.json" "$NC_UDP" udp pid)" "$NC_UDP"

F=$NET_TMP/flows.json
cp "$F" "$NET_TMP/flows1.json"
check_eq "flows --json: count matches the list" \
  "$(json_eval "$F" "d['count'] == len(d['flows']) and not d['truncated']")" 1
check_eq "tcp flow: state" "$(flow_get "$F" "$NC_TCP" tcp state)" ESTAB
check_eq "tcp flow: comm" "$(flow_get "$F" "$NC_TCP" tcp comm)" toe-nc
check_eq "tcp flow: origin (ABI 1.2: a program linking libtoe)" "$(flow_get "$F" "$NC_TCP" tcp origin)" libtoe
check_eq "tcp flow: remote" "$(flow_get "$F" "$NC_TCP" tcp remote)" "$NET_PEER_ADDR:$TCP_PORT"
check_eq "tcp flow: local address" \
  "$(json_eval "$F" "next(f for f in d['flows'] if f['pid'] == $NC_TCP)['local']['addr']")" \
  "$NET_DEV_ADDR"
check_range "tcp flow: local port (ephemeral)" \
  "$(json_eval "$F" "next(f for f in d['flows'] if f['pid'] == $NC_TCP)['local']['port']")" 1024 65535
check_ge "tcp flow: client_id" "$(flow_get "$F" "$NC_TCP" tcp client_id)" 1
check_eq "tcp flow: uid" "$(flow_get "$F" "$NC_TCP" tcp uid)" 0
check_range "tcp flow: mss" "$(flow_get "$F" "$NC_TCP" tcp mss)" 536 1460
check_ge "tcp flow: cwnd (bytes)" "$(flow_get "$F" "$NC_TCP" tcp cwnd)" 536
check_ge "tcp flow: rtt_us" "$(flow_get "$F" "$NC_TCP" tcp rtt_us)" 0
check_ge "tcp flow: retrans" "$(flow_get "$F" "$NC_TCP" tcp retrans)" 0
TX1=$(flow_get "$F" "$NC_TCP" tcp tx_bytes)
check_eq "udp flow: state (connected)" "$(flow_get "$F" "$NC_UDP" udp state)" ESTAB
check_eq "udp flow: comm" "$(flow_get "$F" "$NC_UDP" udp comm)" toe-nc
check_eq "udp flow: remote" "$(flow_get "$F" "$NC_UDP" udp remote)" "$NET_PEER_ADDR:$UDP_PORT"
check_eq "the two clients are different sessions" \
  "$([ "$(flow_get "$F" "$NC_TCP" tcp client_id)" != "$(flow_get "$F" "$NC_UDP" udp client_id)" ] && echo yes)" yes
sleep 0.5
toectl_json "$F" flows
TX2=$(flow_get "$F" "$NC_TCP" tcp tx_bytes)
if [[ "$TX1" =~ ^[0-9]+$ && "$TX2" =~ ^[0-9]+$ ]] && ((TX2 > TX1)); then
  net_ok "tcp flow: tx_bytes grows while the transfer runs ($TX1 -> $TX2)"
else
  net_fail "tcp flow: tx_bytes grows while the transfer runs ($TX1 -> $TX2)"
fi

# Text: like ss -tan, aligned columns, the client's pid and command on its row.
toectl_run flows >"$NET_TMP/flows.txt"
check_eq "flows: exit 0" "$?" 0
sed 's/^/#   /' "$NET_TMP/flows.txt"
check "flows: header" grep -qE '^Proto +State +Recv-Q +Send-Q +Local Address:Port +Peer Address:Port +Cwnd +RTT\(ms\) +Retrans +Client +Origin +PID +Command$' "$NET_TMP/flows.txt"
ROW=$(grep -E "^tcp .* $NET_PEER_ADDR:$TCP_PORT " "$NET_TMP/flows.txt" | head -1)
check "flows: the TCP row shows ESTAB, the origin, the pid and toe-nc" \
  grep -qE "^tcp +ESTAB .* libtoe +$NC_TCP +toe-nc$" <<<"$ROW"
check "flows: the UDP row shows the pid and toe-nc" \
  grep -qE "^udp +ESTAB .*$NET_PEER_ADDR:$UDP_PORT .* $NC_UDP +toe-nc$" "$NET_TMP/flows.txt"
HDR=$(head -1 "$NET_TMP/flows.txt")
# Left-aligned columns start where their heading starts; right-aligned ones end where it ends.
pre=${HDR%%Peer Address:Port*}
rpre=${ROW%%"$NET_PEER_ADDR:$TCP_PORT"*}
check_eq "flows: peer column aligned with its heading" "${#rpre}" "${#pre}"
pre=${HDR%%PID*}
rpre=${ROW%%  toe-nc}
check_eq "flows: PID column right-aligned under its heading" "${#rpre}" "$((${#pre} + 3))"

# status while the clients run: three sessions (two toe-nc and toectl), the flows by state.
toectl_json "$NET_TMP/status2.json" status
check_eq "status --json: three clients attached" \
  "$(json_eval "$NET_TMP/status2.json" "d['gauges']['transport.clients_attached']")" 3
check_ge "status --json: tcp ESTAB flows" \
  "$(json_eval "$NET_TMP/status2.json" "d['flows']['states'].get('tcp.ESTAB', 0)")" 1
check_ge "status --json: udp flows" "$(json_eval "$NET_TMP/status2.json" "d['flows']['udp']")" 1
check_ge "status --json: tcp.curr_estab gauge" \
  "$(json_eval "$NET_TMP/status2.json" "d['gauges']['tcp.curr_estab']")" 1
check_ge "status --json: transport.socks_inuse gauge" \
  "$(json_eval "$NET_TMP/status2.json" "d['gauges']['transport.socks_inuse']")" 2
toectl_run status >"$NET_TMP/status2.txt"
check "status: three clients" grep -qE '^clients +3 attached' "$NET_TMP/status2.txt"
sed 's/^/#   /' "$NET_TMP/status2.txt"

# Counters of the transfer, in every layer it crossed.
toectl_json "$NET_TMP/stats1.json" stats
S=$NET_TMP/stats1.json
check_ge "stats: tcp.active_opens" "$(stat_get "$S" tcp.active_opens)" 1
check_ge "stats: tcp.out_segs" "$(stat_get "$S" tcp.out_segs)" 100
check_ge "stats: udp.tx_datagrams" "$(stat_get "$S" udp.tx_datagrams)" 1
check_ge "stats: ip.tx_packets" "$(stat_get "$S" ip.tx_packets)" 100
check_ge "stats: transport.tx_bytes (taken from the clients' SENDs)" \
  "$(stat_get "$S" transport.tx_bytes)" "$(num "$TX1")"
check_ge "stats: transport.sessions" "$(stat_get "$S" transport.sessions)" 3
check_ge "stats: link.tx_bytes grew" "$(stat_get "$S" link.tx_bytes)" \
  "$(($(num "$(stat_get "$NET_TMP/stats0.json" link.tx_bytes)") + $(num "$TX1") / 2))"
check "the kernel peer got the UDP datagrams" grep -q "datagram from the host" "$NET_TMP/udp.out"

# ---- the clients go ----------------------------------------------------------------------------

kill -TERM "$NC_TCP" "$NC_UDP" "$FEEDER" 2>/dev/null
exec 7>&-
wait_exit "$NC_TCP" 3000
wait_exit "$NC_UDP" 3000
clients_gone() {
  toectl_json "$NET_TMP/flows2.json" flows &&
    [ "$(flows_of "$NET_TMP/flows2.json" "$NC_TCP")" = 0 ] &&
    [ "$(flows_of "$NET_TMP/flows2.json" "$NC_UDP")" = 0 ]
}
wait_for 3 clients_gone
check_eq "flows: none of the exited clients' left" \
  "$(json_eval "$NET_TMP/flows2.json" "len([f for f in d['flows'] if f['pid'] in ($NC_TCP, $NC_UDP)])")" 0
check_eq "status: only toectl attached again" \
  "$(toectl_json "$NET_TMP/status3.json" status && json_eval "$NET_TMP/status3.json" "d['gauges']['transport.clients_attached']")" 1

# ---- an unprivileged user of the device ---------------------------------------------------------

# toed's socket is mode 0660 with --ctl-group: a member of the group may attach, but the flow
# table (other users' flows) is only for root and toed's own user (TOE_ABI_CAP_FLOWS).
NOBODY=(setpriv --reuid=65534 --regid=65534 --clear-groups)
if command -v setpriv >/dev/null && getent group nogroup >/dev/null &&
  "${NOBODY[@]}" test -x "$TOECTL"; then
  check_toed_exit # (the next start overwrites its log)
  chmod 711 "$NET_TMP" # the socket's directory: searchable by others
  NET_QUIET=1
  tr_start_toed --ctl-group nogroup
  NET_QUIET=0
  dev timeout 10 "${NOBODY[@]}" "$TOECTL" --ctl "$CTL" stats --json >"$NET_TMP/u_stats.json" \
    2>"$NET_TMP/u.err"
  check_eq "unprivileged member of --ctl-group: stats, exit 0" "$?" 0
  check_ge "unprivileged: stats has the counters" "$(stat_get "$NET_TMP/u_stats.json" link.rx_frames)" 1
  check_eq "unprivileged: flows not granted" \
    "$(json_eval "$NET_TMP/u_stats.json" "'flows' in d['caps']")" 0
  dev timeout 10 "${NOBODY[@]}" "$TOECTL" --ctl "$CTL" flows >/dev/null 2>"$NET_TMP/u.err"
  check_eq "unprivileged: flows, exit 1" "$?" 1
  check "unprivileged: flows says why" grep -q "does not show its flow table to this user" \
    "$NET_TMP/u.err"
  dev timeout 10 "${NOBODY[@]}" "$TOECTL" --ctl "$CTL" status >"$NET_TMP/u_status.txt" 2>&1
  check_eq "unprivileged: status, exit 0" "$?" 0
  check "unprivileged: status says the flows are not available" \
    grep -qE '^flows +not available' "$NET_TMP/u_status.txt"
  dev timeout 10 setpriv --reuid=65534 --regid=65533 --clear-groups "$TOECTL" --ctl "$CTL" \
    status >/dev/null 2>"$NET_TMP/u.err"
  check_eq "a user outside --ctl-group: exit 1" "$?" 1
  check "a user outside --ctl-group: permission denied" grep -q "permission denied" "$NET_TMP/u.err"
else
  echo "skip - unprivileged user checks (no setpriv or nogroup, or toectl not executable by nobody)"
fi

if [ -s "$NET_TMP/toectl.err" ]; then
  net_log "toectl stderr:"
  sed 's/^/#   /' "$NET_TMP/toectl.err"
fi
check_toed_exit
net_finish
