#!/usr/bin/env bash
# toectl's live views and the device's identity (issue 14): status shows what the device is
# (version, port, link driver, MAC, address, MTU, uptime, attached clients; ABI 1.3 STATS
# DEVICE); `stats -i 1 -c 3` prints three reports of changes and rates (text and JSON lines);
# counter patterns; `top -n 1`; ss-style filters for `flows`; `stats --prometheus` parses
# (prom_check.py); the JSON carries a timestamp. Traffic: the peer pings the device every 0.2 s and
# toe-nc streams to a kernel nc.
#
#   bash tests/net/test_toectl_live.sh BINDIR        (root)
set -u
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/transport_lib.sh"

NET_REQUIRED_TOOLS="ip ping nc ss timeout $NET_PY"
net_init "${1:-}" 90
tr_init
tr_need "$TOE_NC"
SRC=$(cd "$(dirname "$0")/../.." && pwd)
VER=$(awk -F'"' '/^#define TOE_VERSION "/ {print $2}' "$SRC/include/toe/toe.h")
TCP_PORT=5301
net_setup
tr_start_toed

# ---- traffic ------------------------------------------------------------------------------------
peer_bg timeout -k 2 60 ping -q -i 0.2 "$NET_DEV_ADDR" >/dev/null 2>&1 </dev/null
peer_bg timeout -k 2 60 nc -l "$TCP_PORT" >/dev/null 2>&1 </dev/null
wait_for 5 peer_listening "$TCP_PORT" || net_fail "kernel nc listening on $TCP_PORT"
# A slow stream (a line every 10 ms) so the connection stays up and moves bytes all along.
dev_bg bash -c "while echo 0123456789abcdef0123456789abcdef; do sleep 0.01; done | '$TOE_NC' '$NET_PEER_ADDR' $TCP_PORT" \
  >/dev/null 2>"$NET_TMP/nc.err"
nc_up() {
  toectl_json "$NET_TMP/flows.json" flows &&
    [ "$(json_eval "$NET_TMP/flows.json" "sum(1 for f in d['flows'] if f['comm'] == 'toe-nc' and f['tx_bytes'] > 0)")" = 1 ]
}
wait_for 10 nc_up || net_fail "toe-nc's connection did not start"

# ---- status: the device's identity --------------------------------------------------------------
toectl_run status >"$NET_TMP/status.txt"
check_eq "status: exit 0" "$?" 0
sed 's/^/#   /' "$NET_TMP/status.txt"
check "status: version and uptime" grep -qE "^version +toekit $VER \\(toed pid $NET_TOED_PID\\), up " "$NET_TMP/status.txt"
check "status: the port and its link driver" grep -qE "^port +$NET_DEV_IF: [a-z]" "$NET_TMP/status.txt"
check "status: the MAC" grep -qE "^mac +$NET_DEV_MAC$" "$NET_TMP/status.txt"
check "status: address and MTU" grep -qE "^address +$NET_DEV_ADDR/$NET_PREFIX, gateway none, mtu 1500" "$NET_TMP/status.txt"
check "status: the clients, toe-nc among them" grep -qE "^ +[0-9]+ +[0-9]+ +0 +libtoe +1 +[0-9.hms]+ +toe-nc$" "$NET_TMP/status.txt"
toectl_json "$NET_TMP/status.json" status
check_eq "status --json: device.version" "$(json_eval "$NET_TMP/status.json" "d['device']['version']")" "$VER"
check_eq "status --json: device.mac" "$(json_eval "$NET_TMP/status.json" "d['device']['mac']")" "$NET_DEV_MAC"
check_eq "status --json: device.wire" "$(json_eval "$NET_TMP/status.json" "d['device']['wire']")" "$NET_DEV_IF"
check_eq "status --json: device.pid" "$(json_eval "$NET_TMP/status.json" "d['device']['pid']")" "$NET_TOED_PID"
check_ge "status --json: device.uptime_ms" "$(json_eval "$NET_TMP/status.json" "d['device']['uptime_ms']")" 100
check_eq "status --json: the clients list has toectl and toe-nc" \
  "$(json_eval "$NET_TMP/status.json" "sorted(c['comm'] for c in d['clients'])")" "['toe-nc', 'toectl']"
check_eq "status --json: a timestamp (RFC 3339, UTC)" \
  "$(json_eval "$NET_TMP/status.json" "__import__('re').fullmatch(r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z', d['timestamp']) is not None")" 1
check_eq "status --json: unix_ms is now" \
  "$(json_eval "$NET_TMP/status.json" "abs(d['unix_ms'] / 1000 - __import__('time').time()) < 30")" 1

# ---- stats -i 1 -c 3 ----------------------------------------------------------------------------
T0=$(date +%s%N)
toectl_run stats -i 1 -c 3 'icmp.*' 'link.rx_frames' >"$NET_TMP/live.txt"
check_eq "stats -i 1 -c 3: exit 0" "$?" 0
MS=$(ms_since "$T0")
sed 's/^/#   /' "$NET_TMP/live.txt"
check_range "stats -i 1 -c 3: about 3 s" "$MS" 2800 6000
check_eq "stats -i 1 -c 3: three reports" "$(grep -cE '^[0-9]{2}:[0-9]{2}:[0-9]{2} +[0-9.]+ s, [0-9]+ counters? changed' "$NET_TMP/live.txt")" 3
check_eq "stats -i: the echo requests' rate in each report" \
  "$(grep -cE '^ +icmp\.rx_echo_requests +[0-9]+ +\+[0-9]+ +[0-9]+\.[0-9]$' "$NET_TMP/live.txt")" 3
check_eq "stats -i: only the counters asked for" \
  "$(grep -E '^ +[a-z]' "$NET_TMP/live.txt" | grep -vcE '^ +(icmp\.|link\.rx_frames |counter )')" 0
toectl_run --json stats -i 0.5 -c 2 >"$NET_TMP/live.jsonl"
check_eq "stats --json -i 0.5 -c 2: exit 0" "$?" 0
check_eq "stats --json -i: two JSON lines" "$(wc -l <"$NET_TMP/live.jsonl")" 2
"$NET_PY" - "$NET_TMP/live.jsonl" >"$NET_TMP/live.check" 2>&1 <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
for r in lines:
    assert r["timestamp"].endswith("Z"), r["timestamp"]
    assert 0.3 < r["interval_s"] < 2.0, r["interval_s"]
    c = r["counters"]["icmp.rx_echo_requests"]
    assert c["delta"] >= 1, c
    assert abs(c["rate"] - c["delta"] / r["interval_s"]) < 0.01 * c["delta"] / r["interval_s"] + 0.002, c
    g = r["counters"].get("pbuf.inuse")
    assert g is None or g["rate"] is None, g
print("ok")
PY
check_eq "stats --json -i: rate = delta / interval in every report" "$(tail -1 "$NET_TMP/live.check")" ok
dev timeout -k 2 10 "$TOECTL" --ctl "$CTL" stats 'nosuch.*' >/dev/null 2>"$NET_TMP/err"
check_eq "stats PATTERN that matches nothing: exit 1" "$?" 1
check "stats PATTERN that matches nothing: says so" grep -q "no counter matches nosuch" "$NET_TMP/err"
toectl_run stats icmp >"$NET_TMP/icmp.txt"
check "stats LAYER: that layer only" bash -c "grep -E '^[a-z]+\\.' '$NET_TMP/icmp.txt' | grep -v '^icmp\\.' | wc -l | grep -qx 0"
check "stats LAYER: icmp.rx_echo_requests" grep -qE '^icmp\.rx_echo_requests +[1-9]' "$NET_TMP/icmp.txt"

# ---- top -n 1 -----------------------------------------------------------------------------------
toectl_run top -n 1 -i 0.5 >"$NET_TMP/top.txt"
check_eq "top -n 1: exit 0" "$?" 0
sed 's/^/#   /' "$NET_TMP/top.txt"
check "top -n 1: a header" grep -qE '^toectl top - [0-9:]+ - .* - [0-9]+ flows' "$NET_TMP/top.txt"
check "top -n 1: no terminal control codes when not on a terminal" bash -c "! grep -q $'\\033' '$NET_TMP/top.txt'"
check "top -n 1: toe-nc's connection first (the only one moving)" \
  bash -c "grep -A1 '^Proto' '$NET_TMP/top.txt' | tail -1 | grep -qE '^tcp +ESTAB .*toe-nc$'"
toectl_run --json top -n 1 -i 0.5 >"$NET_TMP/top.json"
check_ge "top --json: toe-nc's send rate (bytes/s)" \
  "$(json_eval "$NET_TMP/top.json" "int([f for f in d['flows'] if f['comm'] == 'toe-nc'][0]['tx_bytes_per_s'])")" 100

# ---- flows filters ------------------------------------------------------------------------------
nflows() { toectl_json "$NET_TMP/ff.json" flows "$@" && json_eval "$NET_TMP/ff.json" "len(d['flows'])"; }
check_eq "flows state established: toe-nc's" "$(nflows state established)" 1
check_eq "flows dport $TCP_PORT" "$(nflows dport "$TCP_PORT")" 1
check_eq "flows dport = :$TCP_PORT (ss syntax)" "$(nflows dport = ":$TCP_PORT")" 1
check_eq "flows dport 1: none" "$(nflows dport 1)" 0
check_eq "flows state listen: none" "$(nflows state listen)" 0
check_eq "flows udp: none" "$(nflows udp)" 0
check_eq "flows dst $NET_PEER_ADDR/24 and src $NET_DEV_ADDR" "$(nflows tcp dst "$NET_PEER_ADDR/24" src "$NET_DEV_ADDR")" 1
check_eq "flows dst 198.19.0.0/16: none" "$(nflows dst 198.19.0.0/16)" 0
check_eq "flows comm toe-nc" "$(nflows comm toe-nc)" 1
dev timeout -k 2 10 "$TOECTL" --ctl "$CTL" flows state nosuch >/dev/null 2>"$NET_TMP/err"
check_eq "flows with a bad state: exit 2" "$?" 2
check_eq "flows with a bad state: one line" "$(wc -l <"$NET_TMP/err")" 1

# ---- Prometheus ---------------------------------------------------------------------------------
toectl_run stats --prometheus >"$NET_TMP/metrics.prom"
check_eq "stats --prometheus: exit 0" "$?" 0
head -12 "$NET_TMP/metrics.prom" | sed 's/^/#   /'
"$NET_PY" "$(dirname "$0")/prom_check.py" "$NET_TMP/metrics.prom" >"$NET_TMP/prom.check" 2>&1
check_eq "stats --prometheus: the exposition parses (prom_check.py)" "$?" 0
sed 's/^/#   /' "$NET_TMP/prom.check" | head -10
check "prometheus: toekit_info with the device's version" grep -qE "^toekit_info\\{.*device_version=\"$VER\".*\\} 1$" "$NET_TMP/metrics.prom"
check "prometheus: a counter" grep -qE '^toekit_icmp_rx_echo_requests_total\{ctl="[^"]+"\} [1-9][0-9]*$' "$NET_TMP/metrics.prom"
check "prometheus: a gauge" grep -qE '^# TYPE toekit_tcp_curr_estab gauge$' "$NET_TMP/metrics.prom"
# The checker rejects what it must (a test of the test).
printf 'toekit_x_total{ctl="a"} 1\ntoekit_x_total{ctl="a"} 2\nbad name 1\n' >"$NET_TMP/bad.prom"
"$NET_PY" "$(dirname "$0")/prom_check.py" "$NET_TMP/bad.prom" >/dev/null 2>&1
check_eq "prom_check.py refuses a broken exposition" "$?" 1
check_toed_exit
net_finish
