#!/usr/bin/env bash
# unbound with SO_REUSEPORT and two threads, preloaded on the device (issue 13, "what it must
# show"): unbound (so-reuseport: yes, num-threads: 2) gives each thread its own UDP socket and TCP
# listener on port 53 of the device's address, so the device holds a SO_REUSEPORT group of two
# UDP sockets (and one of two listeners) for one program. It serves a local zone only (no
# upstream, no traffic beyond the test's namespaces). dig in the peer namespace asks over UDP
# (each query from its own source port) and over TCP:
#  - every answer is the configured record;
#  - toectl flows shows two UDP sockets on :53 owned by unbound, and the queries spread across
#    both (each received some bytes), as do unbound's own per-thread counters (unbound-control
#    stats over its local control socket, which stays on the kernel: AF_UNIX);
#  - both threads' sockets are on the device (TOE_STRICT), the library said nothing.
# Cost: about 2 s on an idle machine (one unbound start, two dig runs).
# Usage: bash tests/net/test_preload_unbound.sh BINDIR
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/transport_lib.sh"
source "$(dirname "$0")/preload_lib.sh"
NET_REQUIRED_TOOLS="ip timeout dig $NET_PY"
net_init "$1" 120
tr_init
preload_init
UNBOUND=$(command -v unbound || echo /usr/sbin/unbound)
UCTL=$(command -v unbound-control || echo /usr/sbin/unbound-control)
if [ ! -x "$UNBOUND" ] || [ ! -x "$UCTL" ]; then
  echo "skip - preloaded unbound (no unbound: install unbound, as 'make deps' does)"
  exit 0
fi
NQ=24 # UDP queries: both sockets get some unless the hash sends all 24 to one (2^-23)

net_setup
tr_start_toed
cat >"$NET_TMP/unbound.conf" <<EOF
server:
  interface: $NET_DEV_ADDR
  port: 53
  so-reuseport: yes
  num-threads: 2
  do-ip4: yes
  do-ip6: no
  do-udp: yes
  do-tcp: yes
  access-control: 0.0.0.0/0 refuse
  access-control: 198.18.0.0/15 allow
  chroot: ""
  username: ""
  directory: "$NET_TMP"
  pidfile: "$NET_TMP/unbound.pid"
  do-daemonize: no
  use-syslog: no
  logfile: ""
  verbosity: 1
  module-config: "iterator"
  extended-statistics: no
  statistics-cumulative: no
  local-zone: "toe.test." static
  local-data: "host.toe.test. 300 IN A 198.18.0.77"
  local-data: "other.toe.test. 300 IN A 198.18.0.78"
remote-control:
  control-enable: yes
  control-interface: "$NET_TMP/unbound.ctl"
  control-use-cert: no
EOF
dev_bg "${PRE[@]}" "$UNBOUND" -d -c "$NET_TMP/unbound.conf" >"$NET_TMP/unbound.out" \
  2>"$NET_TMP/unbound.err" </dev/null
UB_PID=$BG_PID
udp53() { json_eval "$1" "len([f for f in d['flows'] if f['proto'] == 'udp' and f['local']['port'] == 53 and f['comm'] == 'unbound'])"; }
wait_for 10 bash -c "'$TOECTL' --ctl '$CTL' flows 2>/dev/null | grep -c 'udp.*:53 .*unbound' | grep -q 2" ||
  net_die "unbound: not two UDP sockets on port 53 in the device's flow table: $(sed 's/^/  /' "$NET_TMP/unbound.err" | tail -5)"

# One dig run per transport (a process start costs more than the queries): dig sends each query
# of its command line from a socket of its own, so each UDP query has its own source port.
args=()
want=()
for i in $(seq "$NQ"); do
  case $((i % 2)) in
  0) args+=(host.toe.test A) want+=(198.18.0.77) ;;
  *) args+=(other.toe.test A) want+=(198.18.0.78) ;;
  esac
done
got=$(peer timeout 30 dig @"$NET_DEV_ADDR" -p 53 +short +tries=1 +time=5 "${args[@]}" 2>&1)
check_eq "unbound answers $NQ UDP queries (each from its own source port), in order" \
  "$(echo $got)" "$(echo "${want[@]}")"
got=$(peer timeout 30 dig @"$NET_DEV_ADDR" -p 53 +tcp +short +tries=1 +time=5 host.toe.test A \
  other.toe.test A host.toe.test A other.toe.test A 2>&1)
check_eq "unbound answers 4 queries over TCP" "$(echo $got)" \
  "198.18.0.77 198.18.0.78 198.18.0.77 198.18.0.78"

# The device's picture: one program, two UDP sockets on :53 (one group), each received some.
toectl_json "$NET_TMP/flows.json" flows || net_fail "toectl flows failed"
check_eq "two UDP sockets of unbound on port 53 (one SO_REUSEPORT group)" "$(udp53 "$NET_TMP/flows.json")" 2
check_eq "two TCP listeners of unbound on port 53" \
  "$(json_eval "$NET_TMP/flows.json" "len([f for f in d['flows'] if f['proto'] == 'tcp' and f['state'] == 'LISTEN' and f['local']['port'] == 53 and f['comm'] == 'unbound'])")" 2
rx=$(json_eval "$NET_TMP/flows.json" "' '.join(str(f['rx_bytes']) for f in d['flows'] if f['proto'] == 'udp' and f['local']['port'] == 53 and f['comm'] == 'unbound')")
net_log "UDP :53 sockets' received bytes: $rx"
read -r rx_a rx_b <<<"$rx"
check_ge "the first UDP socket received some queries" "$(num "$rx_a")" 1
check_ge "the second UDP socket received some queries" "$(num "$rx_b")" 1

# unbound's own view: each thread answered some queries, all of them in all.
dev timeout -k 2 10 "$UCTL" -c "$NET_TMP/unbound.conf" stats_noreset >"$NET_TMP/stats.txt" 2>&1 ||
  net_fail "unbound-control stats failed: $(head -3 "$NET_TMP/stats.txt")"
t0=$(awk -F= '$1 == "thread0.num.queries" {print $2}' "$NET_TMP/stats.txt")
t1=$(awk -F= '$1 == "thread1.num.queries" {print $2}' "$NET_TMP/stats.txt")
net_log "unbound per-thread queries: thread0 $t0, thread1 $t1"
check_ge "unbound's thread 0 answered some queries" "$(num "$t0")" 1
check_ge "unbound's thread 1 answered some queries" "$(num "$t1")" 1
check_eq "unbound's threads answered every query" "$(($(num "$t0") + $(num "$t1")))" "$((NQ + 4))"

net_kill_pid "$UB_PID"
no_sanitizer unbound "$NET_TMP/unbound.err"
if grep -q '^toe-preload' "$NET_TMP/unbound.err"; then
  net_fail "unbound: the library wrote to stderr"
  grep '^toe-preload' "$NET_TMP/unbound.err" | head -5 | sed 's/^/#   /'
fi

check_toed_exit
net_finish
