#!/usr/bin/env bash
# Many TCP connections to toed's echo service, and every one's memory returned afterwards
# (topology of lib.sh: toed on wire0 <- veth -> kernel 198.18.0.2).
#
# 1. An idle toed (started, pinged, stopped): the idle level of the engine's gauges.
# 2. TOE_TCP_CONNS_SEQ (default 10,000) connections one after another, then TOE_TCP_CONNS_CONC
#    (default 1,000) at once, from the kernel (tcp_tool.py conns): each sends its own 1000 bytes,
#    half-closes, reads the echo to EOF and checks it. Every connection must succeed.
# 3. After toed's SIGTERM, its summary: the echo service accepted and gracefully closed every
#    connection (none reset, aborted or still open at the stop), and the engine is back at its idle
#    level: only the listener holds a tcb, no connection is established or half-open, pbuf.inuse is
#    the idle value.
# Usage (as root): bash tests/net/test_tcp_conns.sh BUILD/bin
set -u
# shellcheck source=tests/net/lib.sh
source "$(dirname "$0")/lib.sh"

net_init "${1:-}" 290
net_setup

SEQ=${TOE_TCP_CONNS_SEQ:-10000}
CONC=${TOE_TCP_CONNS_CONC:-1000}
BYTES=1000

# ---- 1. idle levels --------------------------------------------------------------------------

start_toed_nopcap --service echo
check_toed_exit
toed_log_keep idle
idle_pbufs=$(toed_counter pbuf.inuse)
idle_socks=$(toed_counter tcp.socks_inuse)
net_log "idle: pbuf.inuse=$idle_pbufs tcp.socks_inuse=$idle_socks"
check_eq "idle toed: the listener is the only tcb" "$idle_socks" 1

# ---- 2. the connections ----------------------------------------------------------------------

start_toed_nopcap --service echo --max-conns 4096
out=$(peer_py 240 tcp_tool.py conns "$NET_DEV_ADDR" 7 --sequential "$SEQ" --bytes "$BYTES" \
  --timeout 20)
echo "$out" >"$NET_TMP/sequential.out"
check_eq "$SEQ sequential connections: all echoed intact and closed (failures: $(kv sequential_failures "$out"))" \
  "$(kv sequential_ok "$out")" "$SEQ"
net_log "sequential: $(kv sequential_seconds "$out") s"
out=$(peer_py 120 tcp_tool.py conns "$NET_DEV_ADDR" 7 --concurrent "$CONC" --bytes "$BYTES" \
  --timeout 60)
echo "$out" >"$NET_TMP/concurrent.out"
check_eq "$CONC concurrent connections: all echoed intact and closed (failures: $(kv concurrent_failures "$out"))" \
  "$(kv concurrent_ok "$out")" "$CONC"
net_log "concurrent: $(kv concurrent_seconds "$out") s"

# The device closes after the client's FIN (it is the passive closer: LAST_ACK, no TIME_WAIT); give
# the last ACKs of our FINs a moment to arrive.
sleep 1
check_toed_exit
toed_log_keep conns

# ---- 3. the summary --------------------------------------------------------------------------

total=$((SEQ + CONC))
check_eq "svc tcp/echo:7: accepted every connection" "$(toed_counter svc_tcp_echo_7.accepted)" "$total"
check_eq "svc tcp/echo:7: closed every one gracefully (closed/reset/aborted/open at stop)" \
  "$(toed_counter svc_tcp_echo_7.closed)/$(toed_counter svc_tcp_echo_7.reset)/$(toed_counter svc_tcp_echo_7.aborted)/$(toed_counter svc_tcp_echo_7.stop_aborted)" \
  "$total/0/0/0"
check_eq "svc tcp/echo:7: no connection held at the end" "$(toed_counter svc_tcp_echo_7.active)" 0
check_eq "svc tcp/echo:7: read and sent every byte" \
  "$(toed_counter svc_tcp_echo_7.rx_bytes)/$(toed_counter svc_tcp_echo_7.tx_bytes)" \
  "$((total * BYTES))/$((total * BYTES))"
net_log "svc: active_max=$(toed_counter svc_tcp_echo_7.active_max) accept_deferred=$(toed_counter svc_tcp_echo_7.accept_deferred)"
if engine_only "engine gauges back at the idle level"; then
  check_eq "tcp: passive opens" "$(toed_counter tcp.passive_opens)" "$total"
  check_eq "tcp: only the listener holds a tcb (socks_inuse as idle)" \
    "$(toed_counter tcp.socks_inuse)" "$idle_socks"
  check_eq "tcp: no connection established (curr_estab)" "$(toed_counter tcp.curr_estab)" 0
  check_eq "tcp: no SYN-cache entry held" "$(toed_counter tcp.syncache_inuse)" 0
  check_eq "tcp: no TIME_WAIT held (the device closed passively)" "$(toed_counter tcp.tw_inuse)" 0
  check_eq "pbuf: buffers in use back at the idle level" "$(toed_counter pbuf.inuse)" "$idle_pbufs"
  # A RST is right for a segment of a connection that has ended (the kernel may retransmit its FIN
  # after our LAST_ACK closed, if our ACK of it came late): the listener answers such ACKs with a
  # RST (RFC 9293 3.10.7.2). Any other RST would be a connection torn down.
  check_eq "tcp: every RST sent answered a segment of an ended connection (out_rsts = syncache_bad_acks)" \
    "$(toed_counter tcp.out_rsts)" "$(toed_counter tcp.syncache_bad_acks)"
  check_eq "tcp: no connection dropped by a timeout" "$(toed_counter tcp.timeout_drops)" 0
  net_log "engine: pbuf.inuse_max=$(toed_counter pbuf.inuse_max) tcp.syncookies_sent=$(toed_counter tcp.syncookies_sent) tcp.syncache_overflow=$(toed_counter tcp.syncache_overflow) tcp.listen_drops=$(toed_counter tcp.listen_drops) tcp.retrans_segs=$(toed_counter tcp.retrans_segs)"
fi

net_finish
