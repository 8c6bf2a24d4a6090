#!/usr/bin/env bash
# libtoe-preload with unmodified iperf3 (docs/interception.md). Preloaded programs run in the device
# namespace with TOE_STRICT=1, where the kernel has no address and no route: whatever reaches the
# peer went through the device. Each run is 3 s, checked from both sides' JSON (-J):
#  - TCP, preloaded server <- kernel client: received bytes above a floor, both sides agree, and
#    with -R (the preloaded server sends) the server's per-interval TCP_INFO (snd_cwnd, rtt) is
#    the device's, not zero;
#  - TCP, preloaded client (-C reno, so TCP_CONGESTION goes to the device) -> kernel server: the
#    same, the client's TCP_INFO has snd_cwnd and rtt, the congestion control reported is reno;
#  - TCP_MAXSEG and buffers: a preloaded `-M 1200 -w 256K` client reads back MSS 1200 and moves
#    data; `-C bbr` (the device has reno and cubic) fails as on a kernel without bbr (ENOENT);
#  - UDP at 200 Mbit/s both ways: datagrams received, the loss percentage reported and sane (within
#    0..100, fewer lost than sent), both sides agree. The preloaded UDP server binds a second
#    socket to its port while the first, connected to the client, still holds it (SO_REUSEADDR on
#    the device);
#  - the device's counters (tcp.passive_opens, tcp.active_opens, udp datagrams) grew.
# Usage: bash tests/net/test_preload_iperf3.sh BINDIR
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/transport_lib.sh"
source "$(dirname "$0")/preload_lib.sh"
NET_REQUIRED_TOOLS="ip ping timeout ss iperf3 $NET_PY"
net_init "$1" 180
tr_init
preload_init
SECS=3
# Floors far below what the device carries (gigabits), far above what a broken run would move.
TCP_FLOOR=$((16 * 1048576))


# j FILE EXPR: a value from an iperf3 JSON file
j() { json_eval "$@"; }
port_listening() { ip netns exec "$1" ss -Hltn "sport = :$2" 2>/dev/null | grep -q .; }

# run NAME SERVER_SIDE PORT CLIENT_ARGS...: an iperf3 server (-1: one test) in the server side's
# namespace ("dev": preloaded, bound to the device's address; "peer": kernel), the client on the
# other side; JSON of both in $NET_TMP/NAME.{s,c}.json. Returns the client's exit status.
run() {
  local name=$1 side=$2 port=$3 saddr cns
  shift 3
  if [ "$side" = dev ]; then
    saddr=$NET_DEV_ADDR
    dev_bg timeout -k 2 60 "${PRE[@]}" iperf3 -s -1 -J -B "$saddr" -p "$port" \
      >"$NET_TMP/$name.s.json" 2>"$NET_TMP/$name.s.err" </dev/null
    cns=$NET_PEER_NS
  else
    saddr=$NET_PEER_ADDR
    peer_bg timeout -k 2 60 iperf3 -s -1 -J -B "$saddr" -p "$port" \
      >"$NET_TMP/$name.s.json" 2>"$NET_TMP/$name.s.err" </dev/null
    cns=$NET_DEV_NS
  fi
  local spid=$BG_PID
  if [ "$side" = peer ]; then
    wait_for 10 port_listening "$NET_PEER_NS" "$port" || net_fail "$name: kernel iperf3 -s did not listen"
  else
    # the device's listener is not in the device namespace's kernel: toectl shows it
    wait_for 10 dev_listening "$port" || net_fail "$name: preloaded iperf3 -s did not listen"
  fi
  local rc
  if [ "$side" = dev ]; then
    ip netns exec "$cns" timeout -k 2 40 iperf3 -J -c "$saddr" -p "$port" -t "$SECS" "$@" \
      >"$NET_TMP/$name.c.json" 2>"$NET_TMP/$name.c.err" </dev/null
  else
    ip netns exec "$cns" timeout -k 2 40 "${PRE[@]}" iperf3 -J -c "$saddr" -p "$port" -t "$SECS" "$@" \
      >"$NET_TMP/$name.c.json" 2>"$NET_TMP/$name.c.err" </dev/null
  fi
  rc=$?
  wait_exit "$spid" 15000 || net_kill_pid "$spid"
  return $rc
}

# dev_listening PORT: the device holds a TCP listener on PORT (toectl flows)
dev_listening() {
  toectl_json "$NET_TMP/lflows.json" flows &&
    [ "$(json_eval "$NET_TMP/lflows.json" "len([f for f in d['flows'] if f['proto'] == 'tcp' and f['state'] == 'LISTEN' and str(f['local']['port']) == '$1'])")" -ge 1 ]
}

# check_tcp NAME [reverse]: both JSONs error-free; receiver's bytes above the floor and equal on
# both sides.
check_tcp() {
  local name=$1 c=$NET_TMP/$1.c.json s=$NET_TMP/$1.s.json cb sb
  check_eq "$name: client JSON without error" "$(j "$c" "d.get('error', 'none')")" none
  check_eq "$name: server JSON without error" "$(j "$s" "d.get('error', 'none')")" none
  cb=$(j "$c" "d['end']['sum_received']['bytes']")
  sb=$(j "$s" "d['end']['sum_received']['bytes']")
  check_ge "$name: bytes received" "$cb" "$TCP_FLOOR"
  if [ "${2:-}" = reverse ]; then
    # -R: the server sends and learns nothing of what the client received; the receiver stops
    # counting at its end time, so what was still in flight is sent but not counted received.
    check_eq "$name: client and server agree on the bytes sent" \
      "$(j "$s" "d['end']['sum_sent']['bytes']")" "$(j "$c" "d['end']['sum_sent']['bytes']")"
    check_eq "$name: no more received than sent" \
      "$(j "$c" "d['end']['sum_received']['bytes'] <= d['end']['sum_sent']['bytes']")" 1
  else
    check_eq "$name: client and server agree on the bytes received" "$sb" "$cb"
  fi
  net_log "$name: $(j "$c" "round(d['end']['sum_received']['bits_per_second'] / 1e6)") Mbit/s"
}

# check_tcp_info NAME SIDE: the sender's (SIDE: c or s) per-interval TCP_INFO figures are real:
# snd_cwnd and rtt non-zero in every interval.
check_tcp_info() {
  local f=$NET_TMP/$1.$2.json
  check_eq "$1: sender's TCP_INFO: snd_cwnd > 0 in every interval" \
    "$(j "$f" "all(i['streams'][0]['snd_cwnd'] > 0 for i in d['intervals']) and len(d['intervals']) > 0")" 1
  check_eq "$1: sender's TCP_INFO: rtt > 0 in every interval" \
    "$(j "$f" "all(i['streams'][0]['rtt'] > 0 for i in d['intervals'])")" 1
  net_log "$1: sender's snd_cwnd $(j "$f" "[i['streams'][0]['snd_cwnd'] for i in d['intervals']]"), rtt (us) $(j "$f" "[i['streams'][0]['rtt'] for i in d['intervals']]")"
}

# check_udp NAME: datagrams received, loss percentage sane, both sides agree.
check_udp() {
  local name=$1 c=$NET_TMP/$1.c.json s=$NET_TMP/$1.s.json r='d["end"]["sum_received"]'
  check_eq "$name: client JSON without error" "$(j "$c" "d.get('error', 'none')")" none
  check_eq "$name: server JSON without error" "$(j "$s" "d.get('error', 'none')")" none
  check_ge "$name: datagrams received" "$(j "$c" "${r}['packets'] - ${r}['lost_packets']")" 1000
  # (iperf3 divides by the highest sequence number seen, not by "packets": no exact relation)
  check_eq "$name: loss reported: 0 <= lost_percent < 100, 0 <= lost_packets < packets" \
    "$(j "$c" "0 <= ${r}['lost_percent'] < 100 and 0 <= ${r}['lost_packets'] < ${r}['packets']")" 1
  check_eq "$name: client and server agree on the datagrams" "$(j "$s" "${r}['packets']")" \
    "$(j "$c" "${r}['packets']")"
  check_eq "$name: client and server agree on the bytes" "$(j "$s" "${r}['bytes']")" "$(j "$c" "${r}['bytes']")"
  net_log "$name: $(j "$c" "${r}['packets']") datagrams, $(j "$c" "${r}['lost_packets']") lost ($(j "$c" "round(${r}['lost_percent'], 2)") %), $(j "$c" "round(${r}['bits_per_second'] / 1e6)") Mbit/s received"
}

net_setup
start_toed_nopcap --ctl "$CTL"
wait_for 5 test -S "$CTL" || net_die "toed made no control socket at $CTL"
toectl_json "$NET_TMP/stats0.json" stats

# ---- TCP ------------------------------------------------------------------------------------------
run tcp_dev_server dev 5201
check_eq "TCP, kernel client -> preloaded server: client exit status" "$?" 0
check_tcp tcp_dev_server
run tcp_dev_server_r dev 5202 -R
check_eq "TCP -R, preloaded server sends: client exit status" "$?" 0
check_tcp tcp_dev_server_r reverse
check_tcp_info tcp_dev_server_r s
run tcp_dev_client peer 5203 -C reno
check_eq "TCP, preloaded client -> kernel server: client exit status" "$?" 0
check_tcp tcp_dev_client
check_tcp_info tcp_dev_client c
check_eq "tcp_dev_client: congestion control on the device (TCP_CONGESTION)" \
  "$(j "$NET_TMP/tcp_dev_client.c.json" "d['end'].get('sender_tcp_congestion', 'none')")" reno

# TCP_MAXSEG and the socket buffers (-M, -w) through the device; an algorithm the device lacks
# (-C bbr) gives the kernel's errno for it (ENOENT), which iperf3 reports
SECS=1 run tcp_mss peer 5206 -M 1200 -w 256K
check_eq "TCP -M 1200 -w 256K, preloaded client: exit status" "$?" 0
check_eq "tcp_mss: the MSS iperf3 read back (TCP_MAXSEG)" "$(j "$NET_TMP/tcp_mss.c.json" "d['start'].get('tcp_mss')")" 1200
check_ge "tcp_mss: bytes received" "$(j "$NET_TMP/tcp_mss.c.json" "d['end']['sum_received']['bytes']")" 1048576
peer_bg timeout -k 2 30 iperf3 -s -1 -B "$NET_PEER_ADDR" -p 5207 >/dev/null 2>&1 </dev/null
BBR_SERVER=$BG_PID
wait_for 10 port_listening "$NET_PEER_NS" 5207
dev timeout -k 2 20 "${PRE[@]}" iperf3 -c "$NET_PEER_ADDR" -p 5207 -t 1 -C bbr >"$NET_TMP/bbr.out" 2>&1 </dev/null
check_eq "-C bbr, preloaded client: iperf3 fails" "$?" 1
check "  because TCP_CONGESTION gave ENOENT" grep -q 'unable to set TCP_CONGESTION: Supplied congestion control algorithm not supported' "$NET_TMP/bbr.out"
net_kill_pid "$BBR_SERVER"

# ---- UDP ------------------------------------------------------------------------------------------
run udp_dev_server dev 5204 -u -b 200M
check_eq "UDP, kernel client -> preloaded server: client exit status" "$?" 0
check_udp udp_dev_server
run udp_dev_client peer 5205 -u -b 200M
check_eq "UDP, preloaded client -> kernel server: client exit status" "$?" 0
check_udp udp_dev_client

toectl_json "$NET_TMP/stats1.json" stats
d() { echo $(($(num "$(stat_get "$NET_TMP/stats1.json" "$1")") - $(num "$(stat_get "$NET_TMP/stats0.json" "$1")"))); }
check_ge "device: tcp.passive_opens (control and data connections)" "$(d tcp.passive_opens)" 4
check_ge "device: tcp.active_opens (control and data connections)" "$(d tcp.active_opens)" 3
check_ge "device: tcp.rx_bytes" "$(d tcp.rx_bytes)" "$TCP_FLOOR"
r='d["end"]["sum_received"]'
check_ge "device: udp.rx_delivered covers what the preloaded server received" "$(d udp.rx_delivered)" \
  "$(j "$NET_TMP/udp_dev_server.c.json" "${r}['packets'] - ${r}['lost_packets']")"
check_ge "device: udp.tx_datagrams covers what the kernel server received" "$(d udp.tx_datagrams)" \
  "$(j "$NET_TMP/udp_dev_client.c.json" "${r}['packets'] - ${r}['lost_packets']")"
net_log "device: udp.rx_drop_queue_full $(d udp.rx_drop_queue_full) (the UDP receive queue: $(j "$NET_TMP/udp_dev_server.c.json" "${r}['lost_packets']") lost)"
for f in "$NET_TMP"/*.err; do
  no_sanitizer "$(basename "$f")" "$f"
done
check "the library said nothing" bash -c "! cat $NET_TMP/*.err | grep -q '^toe-preload'"
check "iperf3 printed no warning" bash -c "! cat $NET_TMP/*.err $NET_TMP/*.json | grep -qi 'warning'"
check_toed_exit
net_finish
