#!/usr/bin/env bash
# TCP echo over IPv6 through an impaired link (issue 11): toed's echo service on [::] and the
# kernel in the peer namespace, toe-impair between them (lib.sh net_setup_impaired; the tool reads
# IPv6 frames through wire/frame.h and leaves Neighbor Discovery alone):
#
#   toed --addr6 2001:db8::2 <-> [mid: toe-impair ARGS] <-> peer0 2001:db8::1 (kernel client)
#
# For each of --loss 2%, --delay 5ms --jitter 2ms --reorder 5%, --dup 2%, --corrupt 0.5% the
# client echoes TOE_IPV6_IMPAIR_MIB (default 2) MiB over IPv6: the echo must come back complete
# with the same SHA-256, the tool must have done its impairment, and the device must have coped
# (retransmissions, out-of-order queueing, duplicates seen, checksum drops) and closed every
# connection gracefully.
# Usage (as root): bash tests/net/test_ipv6_tcp_impair.sh BUILD/bin
set -u
# shellcheck source=tests/net/lib.sh
source "$(dirname "$0")/lib.sh"

SIZE_MIB=${TOE_IPV6_IMPAIR_MIB:-2}
net_init "${1:-}" 290
[ -x "$NET_BINDIR/toe-impair" ] || net_die "no toe-impair in $NET_BINDIR (build first)"
net_setup_impaired
MIB=$((1 << 20))
DEV6=2001:db8::2
PEER6=2001:db8::1

for k in accept_dad=0 router_solicitations=0 accept_ra=0 disable_ipv6=0; do
  net_sysctl "$NET_PEER_NS" "net.ipv6.conf.$NET_PEER_IF.${k%=*}" "${k#*=}"
done
net_sysctl "$NET_PEER_NS" net.ipv6.conf.all.disable_ipv6 0
ip -n "$NET_PEER_NS" -6 addr add "$PEER6/64" dev "$NET_PEER_IF" nodad || net_die "peer IPv6 address"

impair_start --limit 100000 || net_die "toe-impair does not start"
start_toed_nopcap --addr6 "$DEV6/64" --service echo:7
check "the device answers on $DEV6 through toe-impair" net_wait_ping6 "$DEV6"

RUNS=0
# run_impaired NAME COUNTER -- IMPAIR-ARGS...: one echo over IPv6 through toe-impair IMPAIR-ARGS.
run_impaired() {
  local name=$1 counter=$2
  shift 3
  impair_stop
  if ! impair_start --limit 100000 --seed $((RUNS + 21)) "$@"; then
    net_fail "$name: toe-impair starts"
    return
  fi
  RUNS=$((RUNS + 1))
  local out
  out=$(peer_py 60 tcp_tool.py echo "$DEV6" 7 --bytes $((SIZE_MIB * MIB)) --seed $((RUNS + 200)) \
    --timeout 30)
  impair_stop
  check_eq "$name over IPv6: $SIZE_MIB MiB echoed, SHA-256 equal, no error" \
    "$(kv received "$out")/$([ "$(kv received_sha256 "$out")" = "$(kv sent_sha256 "$out")" ] && echo equal)/$(kv first_bad_offset "$out")/$(kv send_error "$out")/$(kv recv_error "$out")" \
    "$((SIZE_MIB * MIB))/equal/-1/none/none"
  net_log "$name: $(kv seconds "$out") s, $(kv mbit_per_s "$out") Mbit/s each way"
  check_ge "$name: toe-impair $counter frames (both directions)" \
    "$(($(impair_counter 'a->b' "$counter") + $(impair_counter 'b->a' "$counter")))" 1
}

run_impaired "--loss 2%" lost -- --loss 2%
run_impaired "--delay 5ms --jitter 2ms --reorder 5%" reordered -- --delay 5ms --jitter 2ms --reorder 5%
run_impaired "--dup 2%" duplicated -- --dup 2%
run_impaired "--corrupt 0.5%" corrupted -- --corrupt 0.5%

impair_start --limit 100000 || net_fail "toe-impair restarts for the end"
sleep 0.5
check_toed_exit
impair_stop

check_eq "svc tcp/echo:7: $RUNS connections, each closed gracefully (accepted/closed/reset/aborted)" \
  "$(toed_counter svc_tcp_echo_7.accepted)/$(toed_counter svc_tcp_echo_7.closed)/$(toed_counter svc_tcp_echo_7.reset)/$(toed_counter svc_tcp_echo_7.aborted)" \
  "$RUNS/$RUNS/0/0"
if engine_only "engine counters"; then
  check_ge "tcp: segments retransmitted (loss)" "$(toed_counter tcp.retrans_segs)" 1
  check_ge "tcp: out-of-order segments queued (loss, reordering)" "$(toed_counter tcp.rx_ooo_segs)" 1
  check_ge "tcp: duplicate data seen (duplication)" \
    "$(($(toed_counter tcp.rx_drop_dup) + $(toed_counter tcp.rx_dsacks)))" 1
  check_ge "tcp: corrupted segments dropped by the RFC 8200 8.1 checksum" \
    "$(($(toed_counter tcp.rx_drop_checksum) + $(toed_counter tcp.rx_drop_malformed)))" 1
  check_eq "tcp: only the listener holds a tcb at the end" "$(toed_counter tcp.socks_inuse)" 1
  check_eq "pbuf: every buffer returned" "$(toed_counter pbuf.inuse)" 0
fi
net_finish
