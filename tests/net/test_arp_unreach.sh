#!/usr/bin/env bash
# A connect to a silent on-link address (198.18.0.77: on the link's /24, nobody has it, nobody
# answers its ARP) fails with EHOSTUNREACH in under 5 s, through the device as through the kernel
# (issue 13 item 7: the device used to say ETIMEDOUT after 123 s). The same tool (reuse_tool.py)
# runs preloaded in the device namespace (TOE_STRICT=1: only the device can carry it) and plainly
# in the peer namespace (the kernel), so the expectations are the kernel's:
#  - TCP: a blocking connect ends with errno EHOSTUNREACH in 2..5 s (three ARP requests a second
#    apart, as Linux's mcast_solicit 3 x retrans_time 1 s);
#  - UDP: a connected socket's sends all succeed, before and after ARP gave up: Linux reports a
#    host unreachable to UDP only with IP_RECVERR (not a "fatal" error for udp_err; checked on
#    this kernel: with IP_RECVERR the send after the failure says EHOSTUNREACH once), and the
#    preload has no IP_RECVERR yet, so the device must not invent an error either. (The engine's
#    TOE_IP_RECVERR, tests/unit/engine/test_arp_fail.c, does what the kernel does with it.)
# Usage: bash tests/net/test_arp_unreach.sh BINDIR
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/transport_lib.sh"
source "$(dirname "$0")/preload_lib.sh"
NET_REQUIRED_TOOLS="ip ping timeout $NET_PY"
net_init "$1" 120
tr_init
preload_init
TOOL=$(dirname "$0")/reuse_tool.py
SILENT=198.18.0.77
EHOSTUNREACH=113

net_setup
start_toed_nopcap --ctl "$CTL"

# field KEY LINE: the value of KEY=VALUE in LINE
field() { sed -n "s/.*\b$1=\([0-9-]*\).*/\1/p" <<<"$2"; }

run_tcp() { # WHO OUTPUT-PREFIX: one connect, checks errno and time
  local who=$1 out=$2 line
  line=$(cat "$out.out" 2>/dev/null)
  net_log "$who: $line"
  check_eq "$who: connect to a silent on-link address fails with EHOSTUNREACH" \
    "$(field errno "$line")" "$EHOSTUNREACH"
  check_range "$who: ... after the ARP requests, in under 5 s (ms)" "$(field ms "$line")" 2000 4999
}

run_udp() {
  local who=$1 out=$2 line
  line=$(cat "$out.out" 2>/dev/null)
  net_log "$who: $line"
  check_eq "$who: connected UDP to a silent address: sends before and after ARP gave up succeed" \
    "$line" "first=0 second=0 third=0"
}

# ---- the kernel, from the peer namespace ---------------------------------------------------------
peer timeout -k 2 20 "$NET_PY" "$TOOL" connect "$SILENT" 80 >"$NET_TMP/k_tcp.out" 2>&1
run_tcp kernel "$NET_TMP/k_tcp"
peer timeout -k 2 20 "$NET_PY" "$TOOL" udp "$SILENT" 9 4 >"$NET_TMP/k_udp.out" 2>&1
run_udp kernel "$NET_TMP/k_udp"

# ---- the device, preloaded in the device namespace -------------------------------------------------
dev timeout -k 2 20 "${PRE[@]}" "$NET_PY" "$TOOL" connect "$SILENT" 80 >"$NET_TMP/d_tcp.out" \
  2>"$NET_TMP/d_tcp.err"
run_tcp device "$NET_TMP/d_tcp"
no_sanitizer "device TCP" "$NET_TMP/d_tcp.err"
# Another address: the one above is remembered as failed for a few seconds.
SILENT=198.18.0.78
dev timeout -k 2 20 "${PRE[@]}" "$NET_PY" "$TOOL" udp "$SILENT" 9 4 >"$NET_TMP/d_udp.out" \
  2>"$NET_TMP/d_udp.err"
run_udp device "$NET_TMP/d_udp"
no_sanitizer "device UDP" "$NET_TMP/d_udp.err"

stop_toed
check_ge "toed: arp.fail_notified counts the SYNs whose connection was told" \
  "$(toed_counter arp.fail_notified)" 1
check_ge "toed: arp.resolve_failed (both addresses)" "$(toed_counter arp.resolve_failed)" 2
check_eq "toed: no tcp connection timed out" "$(toed_counter tcp.conn_timeouts)" 0
net_finish
