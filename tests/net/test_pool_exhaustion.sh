#!/usr/bin/env bash
# Pool exhaustion by a hostile peer or client (issue 12, item 1; docs/transport.md "Buffer
# accounting"), against a toed with a small pool (16,384 buffers, a quarter of the default) so that each attack, as it worked
# before the buffer accounting, takes the whole pool within seconds.
#
# Each attack gets a fresh toed, on which a well-behaved kernel peer first measures its unloaded
# upload (to discard:9) and download (from chargen:19) rates, 2 s each:
# 1. Chargen to tiny-MSS peers: 40 kernel connections with TCP_MAXSEG 88 and a 2 KiB receive buffer
#    that never read.
# 2. A host client that never returns its receive buffers: 30 connections with SO_RCVBUF 4 MiB to a
#    kernel server that sends as fast as it can.
# 3. 64 UDP datagrams of 256 eight-byte IPv4 fragments each (scapy) to a client's UDP port that it
#    never reads.
# While the attack holds, the device must answer ping (every one of 10) and ARP (after the peer's
# neighbour entry is flushed), the pool must not be exhausted, and the well-behaved peer must move
# data at no less than half its unloaded rate, both ways. Afterwards the counters must show the
# refusals and that no allocation ever found the pool empty.
# Usage (as root): bash tests/net/test_pool_exhaustion.sh BUILD/bin
set -u
# shellcheck source=tests/net/lib.sh
source "$(dirname "$0")/lib.sh"

net_init "${1:-}" 300
HC=$NET_BINDIR/hostile_client
TOECTL=$NET_BINDIR/toectl
[ -x "$HC" ] || net_die "no hostile_client in $NET_BINDIR (build first)"
[ -x "$TOECTL" ] || net_die "no toectl in $NET_BINDIR (build first)"
net_setup

PBUFS=16384
CTL=$NET_TMP/toed.sock

# stat NAME: a counter of the running toed (toectl stats), 0 if not listed.
stat() {
  "$TOECTL" --ctl "$CTL" stats 2>/dev/null | awk -v k="$1" '
    { for (i = 1; i < NF; i++) if ($i == k || $i == k ":") { v = $(i + 1); gsub(/[^0-9]/, "", v); print v; f = 1; exit } }
    END { if (!f) print 0 }'
}
rate() {
  local out
  out=$(peer_py 30 pool_attack.py rate "$NET_DEV_ADDR" 2)
  echo "$out" >>"$NET_TMP/rates.out"
  UP=$(kv up_bps "$out")
  DOWN=$(kv down_bps "$out")
  UP=${UP:-0}
  DOWN=${DOWN:-0}
}
# alive LABEL: ping, ARP and the well-behaved peer's rates against the unloaded ones.
alive() {
  local label=$1 answered
  answered=$(peer ping -c 10 -i 0.2 -W 1 "$NET_DEV_ADDR" | awk '/received/ { print $4 }')
  check_eq "$label: every ping answered" "${answered:-0}" 10
  peer ip neigh flush dev "$NET_PEER_IF"
  check "$label: ARP resolves the device again (a ping after the neighbour entry is flushed)" \
    peer ping -c 1 -W 2 "$NET_DEV_ADDR"
  rate
  net_log "$label: well-behaved peer up $((UP / 1000000)) Mbit/s (unloaded $((UP0 / 1000000))), down $((DOWN / 1000000)) Mbit/s (unloaded $((DOWN0 / 1000000)))"
  check "$label: upload at least half the unloaded rate ($UP >= $UP0 / 2 bit/s)" test $((UP * 2)) -ge "$UP0"
  check "$label: download at least half the unloaded rate ($DOWN >= $DOWN0 / 2 bit/s)" \
    test $((DOWN * 2)) -ge "$DOWN0"
  local inuse reserve
  inuse=$(stat pbuf.inuse)
  net_log "$label: pbuf.inuse $inuse of $PBUFS, charged $(stat pbuf.charged), refused sock/pressure/reserve $(stat pbuf.refused_sock)/$(stat pbuf.refused_press)/$(stat pbuf.refused_rsv)"
  check "$label: the pool is not exhausted (pbuf.inuse $inuse < $PBUFS)" test "$inuse" -lt "$PBUFS"
}

# phase NAME: a fresh toed, the well-behaved peer's unloaded rates on it.
phase() {
  net_log "---- $1"
  start_toed_nopcap --pbufs "$PBUFS" --service discard:9 --service chargen:19 --ctl "$CTL"
  rate
  UP0=$UP
  DOWN0=$DOWN
  net_log "$1, unloaded: up $((UP0 / 1000000)) Mbit/s, down $((DOWN0 / 1000000)) Mbit/s"
  check "$1, unloaded: the well-behaved peer moves data both ways" test "$UP0" -gt 0 -a "$DOWN0" -gt 0
}
# end_phase NAME: stops the attackers and toed; the pool never ran dry.
end_phase() {
  local p
  for p in "${NET_PIDS[@]}"; do net_kill_pid "$p"; done
  NET_PIDS=()
  check_toed_exit
  toed_log_keep "$1"
  if engine_only "$1: pool counters"; then
    net_log "$1: pool inuse_max $(toed_counter pbuf.inuse_max) of $PBUFS, alloc_failures $(toed_counter pbuf.alloc_failures), refused sock/pressure/reserve $(toed_counter pbuf.refused_sock)/$(toed_counter pbuf.refused_press)/$(toed_counter pbuf.refused_rsv)"
    check_eq "$1: no allocation ever found the pool empty" "$(toed_counter pbuf.alloc_failures)" 0
  fi
}
# hoard CONNS: the client that never returns its receive buffers (CONNS connections to the blast
# server, SO_RCVBUF 4 MiB) with its unread UDP socket on port 5353 (with CONNS 0 it lends no
# buffer at all, so every datagram stays in the device).
hoard() {
  timeout -k 2 200 "$HC" hoard "$CTL" "$NET_PEER_ADDR" 5001 "$1" $((4 * 1024 * 1024)) 5353 \
    >"$NET_TMP/hoard.out" 2>&1 &
  net_bg_add $!
  for _ in $(seq 200); do
    grep -q hoard_udp_bind "$NET_TMP/hoard.out" && break
    sleep 0.1
  done
  check_eq "hoard: $1 connections that never return buffers" \
    "$(kv hoard_connected "$(cat "$NET_TMP/hoard.out")")" "$1"
}

# ---- 1. chargen to tiny-MSS peers that never read ------------------------------------------------
phase "chargen to tiny-MSS peers"
peer timeout -k 2 200 "$NET_PY" "$NET_LIB_DIR/pool_attack.py" chargen "$NET_DEV_ADDR" 40 200 \
  >"$NET_TMP/chargen.out" 2>&1 &
net_bg_add $!
for _ in $(seq 100); do
  grep -q chargen_connected "$NET_TMP/chargen.out" && break
  sleep 0.1
done
check_eq "chargen: 40 tiny-MSS connections" "$(kv chargen_connected "$(cat "$NET_TMP/chargen.out")")" 40
sleep 2
alive "chargen attack"
end_phase chargen
if engine_only "chargen: refusals counted"; then
  check "chargen: sends cut short by the buffer allowance ($(toed_counter tcp.snd_buf_limited))" \
    test "$(toed_counter tcp.snd_buf_limited)" -gt 0
fi

# ---- 2. a host client that never returns its receive buffers ------------------------------------
phase "a client that never returns buffers"
peer timeout -k 2 200 "$NET_PY" "$NET_LIB_DIR/pool_attack.py" blast 5001 >"$NET_TMP/blast.out" 2>&1 &
net_bg_add $!
for _ in $(seq 50); do
  grep -q ready "$NET_TMP/blast.out" && break
  sleep 0.1
done
hoard 30
sleep 3
alive "hoarding client"
end_phase hoard
if engine_only "hoard: refusals counted"; then
  refused=$(($(toed_counter pbuf.refused_sock) + $(toed_counter pbuf.refused_press)))
  check "hoard: charges refused by the per-socket allowance or pressure ($refused)" test "$refused" -gt 0
fi

# ---- 3. tiny fragments to an unread UDP port ------------------------------------------------------
phase "tiny fragments to an unread UDP port"
hoard 0
out=$(peer_py 60 pool_attack.py frags "$NET_DEV_ADDR" 5353 64 256)
check_eq "frags: sent" "$(kv frags_sent "$out")" $((64 * 256))
sleep 1
alive "fragments"
charged=$(stat pbuf.charged)
# 2,056 bytes each (IP header and 2 KiB of UDP): two full buffers, not 256 fragments' buffers
check "frags: the 64 unread datagrams hold two buffers each (pbuf.charged $charged = 128)" \
  test "$charged" -eq 128
end_phase frags
if engine_only "frags: compaction counted"; then
  check_eq "frags: every datagram reassembled" "$(toed_counter ip.reass_ok)" 64
  check "frags: reassembled datagrams compacted ($(toed_counter pbuf.compacted)) and queued ($(toed_counter udp.rx_delivered))" \
    test "$(toed_counter pbuf.compacted)" -ge 64 -a "$(toed_counter udp.rx_delivered)" -eq 64
fi
net_finish
