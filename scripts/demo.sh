#!/usr/bin/env bash
# toekit demo: toed runs the engine on one end of a veth pair; the plain Linux kernel on the other end
# talks to it with ordinary tools (ip, ping, nc). Needs root (network namespaces).
#
#   scripts/demo.sh [BINDIR]      (default build/bin, as built by `make demo`)
#
# Makes two namespaces with unique names, addresses only from 198.18.0.0/15 and no default route, and
# removes everything on exit, even when interrupted. Finishes in about 40 seconds.
#
# What it shows: the engine answering ARP, ping, UDP and TCP itself; a host application (toe-nc,
# linked with libtoe) reaching the peer through the device; toectl's view of the device; then
# the whole system of docs/coexistence.md and docs/interception.md: the OS's own interface toe0
# sharing the device's MAC and address (a kernel web server beside the device's services on one
# IP), an unmodified curl moved onto the device by libtoe-preload.so, and a plain curl carried by
# the transparent proxy toe-proxyd.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$ROOT/tests/net/lib.sh"

NET_REQUIRED_TOOLS="ip ping nc timeout"
net_init "${1:-$ROOT/build/bin}" 150
# The demo is not a test: no "N passed" line, and a failed step ends it with a message.
net_die() {
  echo "demo: $*" >&2
  NET_FAIL=1
  exit 1
}

bold=
plain=
if [ -t 1 ]; then
  bold=$(printf '\033[1m')
  plain=$(printf '\033[0m')
fi
# indent: two spaces before every line, and a final newline even if the output lacked one.
indent() { awk '{ print "  " $0 }'; }
heading() { printf '\n%s== %s ==%s\n' "$bold" "$*" "$plain"; }
# run_peer CMD...: shows the command as typed in the peer's shell, runs it there, indents its output.
run_peer() {
  printf '%speer$ %s%s\n' "$bold" "$*" "$plain"
  peer timeout 10 "$@" 2>&1 | indent
  return "${PIPESTATUS[0]}"
}
# run_peer_sh 'PIPELINE': the same for a shell pipeline.
run_peer_sh() {
  printf '%speer$ %s%s\n' "$bold" "$1" "$plain"
  peer timeout 10 bash -c "$1" 2>&1 | indent
}

heading "toekit demo: a device (toed) serving a Linux kernel peer"
cat <<EOF
  namespace $NET_DEV_NS                      namespace $NET_PEER_NS
  toed --wire $NET_DEV_IF                          Linux kernel, $NET_PEER_IF
  engine $NET_DEV_ADDR/$NET_PREFIX  <-------- veth -------->  $NET_PEER_ADDR/$NET_PREFIX
  ($NET_DEV_MAC)                       ordinary tools: ip, ping, nc

  The device end has no kernel address: toed owns the port and its engine answers ARP, ICMP and
  UDP itself; the peer is the plain kernel with no idea it is talking to anything unusual.
EOF

net_setup
heading "Start toed on the device's port"
# The transport: host applications attach to toed on its control socket (--ctl), when this toed
# has it (the host half of the demo below needs it).
DEMO_CTL=
DEMO_CTL_ARGS=()
if "$NET_TOED" --help 2>&1 | grep -q -- '--ctl'; then
  DEMO_CTL=$NET_TMP/toed.sock
  DEMO_CTL_ARGS=(--ctl "$DEMO_CTL")
fi
# The host interface (toe0): the OS's own view of the port, sharing the device's MAC and address.
DEMO_HOSTIF=
if "$NET_TOED" --help 2>&1 | grep -q -- '--host-if'; then
  DEMO_HOSTIF=toe0
  DEMO_CTL_ARGS+=(--host-if toe0 --host-addr "$NET_DEV_ADDR/$NET_PREFIX")
fi
printf '%sdevice# %s %s%s%s%s\n' "$bold" "$(basename "$NET_TOED")" \
  "--wire $NET_DEV_IF --addr $NET_DEV_ADDR/$NET_PREFIX --mac $NET_DEV_MAC --service echo:7 --service discard:9 --service chargen:19 --pcap device.pcap" \
  "${DEMO_CTL:+ --ctl $DEMO_CTL}" "${DEMO_HOSTIF:+ --host-if toe0 --host-addr $NET_DEV_ADDR/$NET_PREFIX}" "$plain"
NET_QUIET=1
start_toed --service echo:7 --service discard:9 --service chargen:19 "${DEMO_CTL_ARGS[@]}"
sed 's/^/  /' "$NET_TOED_LOG"
TOED_LOG_LINES=$(wc -l <"$NET_TOED_LOG")

heading "The kernel resolves the device by ARP"
peer ip neigh flush dev "$NET_PEER_IF"
run_peer ip neigh show dev "$NET_PEER_IF"
echo "  (empty: the neighbour table was just flushed)"
run_peer_sh "ping -c 1 -W 2 $NET_DEV_ADDR | head -2"
run_peer ip neigh show dev "$NET_PEER_IF"

heading "ping"
run_peer ping -c 3 -i 0.2 -W 2 "$NET_DEV_ADDR"

heading "ping with 3000 bytes: the request arrives in fragments, the engine reassembles it and fragments the reply"
run_peer ping -c 2 -s 3000 -i 0.2 -W 2 "$NET_DEV_ADDR"

heading "UDP echo (RFC 862, port 7)"
run_peer_sh "echo hello | nc -u -w1 $NET_DEV_ADDR 7"

heading "UDP chargen (RFC 864, port 19): one datagram in, 0..512 characters of the pattern out"
run_peer_sh "echo | nc -u -w1 $NET_DEV_ADDR 19 | head -4"

heading "A closed port: the engine answers with ICMP port unreachable, the kernel reports it"
run_peer_sh "exec 3<>/dev/udp/$NET_DEV_ADDR/9999; echo hi >&3; timeout 2 cat <&3"

# ---- the host side: applications through the device (the transport, libtoe, toectl) ----
# run_dev CMD...: shows the command as typed on the host (beside the device), runs it in the
# device's namespace with a time limit, indents its output.
run_dev() {
  local shown=("$(basename "$1")" "${@:2}")
  printf '%shost$ %s%s\n' "$bold" "${shown[*]}" "$plain"
  dev timeout 10 "$@" 2>&1 | indent
  return "${PIPESTATUS[0]}"
}
# demo_listening PORT: true once the peer's kernel listens on TCP PORT.
demo_listening() {
  local _
  for _ in $(seq 50); do
    peer ss -Hltn "sport = :$1" 2>/dev/null | grep -q . && return 0
    sleep 0.1
  done
  return 1
}
# demo_http_peer PORT: a kernel web server in the peer (python3 -m http.server) serving $NET_TMP/www.
demo_http_peer() {
  ip netns exec "$NET_PEER_NS" timeout 60 python3 -m http.server "$1" --bind "$NET_PEER_ADDR" \
    --directory "$NET_TMP/www" >/dev/null 2>&1 </dev/null &
  net_bg_add $!
  demo_listening "$1" || net_die "the peer's web server did not listen on $1"
}

# demo_wait_flow ORIGIN: waits (at most 3 s) until toectl flows shows a flow of that origin (open
# or closing), so that the table shown next has it (the proxy's device leg may finish well before
# the rate-limited curl does: the local leg's socket buffers hold the rest).
demo_wait_flow() {
  local _
  for _ in $(seq 60); do
    dev "$TOECTL_BIN" flows 2>/dev/null | grep -qE " $1 +[0-9]+ " && return 0
    sleep 0.05
  done
  return 0
}

# The whole system: the OS's interface beside the engine, the preload and the proxy.
demo_whole_system() {
  local preload=$NET_BINDIR/../lib/libtoe-preload.so proxyd=$NET_BINDIR/toe-proxyd pid
  heading "The OS's own interface: toe0 shares the device's MAC and address (docs/coexistence.md)"
  echo "  toed steers each frame: the flows the engine owns (its filter table) to the engine,"
  echo "  everything else up to toe0, where the host's kernel sees an ordinary Ethernet port."
  run_dev ip -br link show toe0
  run_dev ip -br addr show toe0
  mkdir -p "$NET_TMP/www" "$NET_TMP/hostwww"
  echo "served by the host's kernel, through toe0" >"$NET_TMP/hostwww/index.html"
  head -c 2097152 /dev/urandom >"$NET_TMP/www/file.bin"
  ip netns exec "$NET_DEV_NS" timeout 60 python3 -m http.server 8080 --bind "$NET_DEV_ADDR" \
    --directory "$NET_TMP/hostwww" >/dev/null 2>&1 </dev/null &
  net_bg_add $!
  local _
  for _ in $(seq 50); do
    dev ss -Hltn "sport = :8080" 2>/dev/null | grep -q . && break
    sleep 0.1
  done
  printf '%shost$ python3 -m http.server 8080 --bind %s &   # a kernel service on the shared IP%s\n' \
    "$bold" "$NET_DEV_ADDR" "$plain"
  echo "  One address, two stacks: the kernel's web server on 8080 and the device's echo on 7."
  run_peer curl -sS -m 5 "http://$NET_DEV_ADDR:8080/"
  run_peer_sh "echo 'to the device echo service' | nc -N -w2 $NET_DEV_ADDR 7"
  echo "  ARP and ping are answered exactly once (by the engine), though the OS has the address too:"
  run_peer_sh "ping -c 3 -i 0.2 -W 2 $NET_DEV_ADDR | tail -2"
  echo "  The OS cannot take a port the device holds (toed keeps a shadow socket for its bind):"
  printf '%shost$ python3 -c "...bind((%s, 7))"%s\n' "$bold" "$NET_DEV_ADDR" "$plain"
  dev python3 -c "import socket; s=socket.socket(); s.bind(('$NET_DEV_ADDR', 7))" 2>&1 | tail -1 | indent
  run_dev "$TOECTL_BIN" filters

  demo_http_peer 8000
  printf '%speer$ python3 -m http.server 8000 &   # a kernel web server in the peer%s\n' "$bold" "$plain"
  if [ -f "$preload" ]; then
    heading "An unmodified curl, preloaded: its sockets move onto the device (docs/interception.md)"
    printf '%shost$ LD_PRELOAD=libtoe-preload.so curl --limit-rate 1M -o file.bin http://%s:8000/file.bin &%s\n' \
      "$bold" "$NET_PEER_ADDR" "$plain"
    ip netns exec "$NET_DEV_NS" env TOE_CTL="$DEMO_CTL" LD_PRELOAD="$preload" \
      timeout 20 curl -sS --limit-rate 1M -o "$NET_TMP/pre.bin" "http://$NET_PEER_ADDR:8000/file.bin" \
      2>&1 </dev/null | indent &
    pid=$!
    demo_wait_flow preload
    run_dev "$TOECTL_BIN" flows
    wait "$pid"
    cmp -s "$NET_TMP/pre.bin" "$NET_TMP/www/file.bin" || net_die "the preloaded curl's file differs"
    echo "  (the 2 MiB arrived intact; the host kernel saw none of it: its ss shows no such socket)"
  fi
  if [ -x "$proxyd" ]; then
    heading "A program that is not preloaded, carried by the transparent proxy toe-proxyd"
    echo "  toe-proxyd installs nftables TPROXY and policy-routing rules that hand the selected"
    echo "  outbound flows of ordinary kernel sockets to it; it carries each one over the device."
    printf '%shost# toe-proxyd --include tcp:198.18.0.0/15:8000 &%s\n' "$bold" "$plain"
    ip netns exec "$NET_DEV_NS" "$proxyd" --ctl "$DEMO_CTL" --include tcp:198.18.0.0/15:8000 \
      >"$NET_TMP/proxyd.log" 2>&1 </dev/null &
    local proxy=$!
    net_bg_add "$proxy"
    for _ in $(seq 50); do
      dev nft list table inet toe_proxyd >/dev/null 2>&1 && break
      sleep 0.1
    done
    sleep 0.3
    printf '%shost$ curl --limit-rate 1M -o file.bin http://%s:8000/file.bin &   # plain curl%s\n' \
      "$bold" "$NET_PEER_ADDR" "$plain"
    ip netns exec "$NET_DEV_NS" timeout 20 curl -sS --limit-rate 1M -o "$NET_TMP/px.bin" \
      "http://$NET_PEER_ADDR:8000/file.bin" 2>&1 </dev/null | indent &
    pid=$!
    demo_wait_flow proxy
    run_dev "$TOECTL_BIN" flows
    wait "$pid"
    cmp -s "$NET_TMP/px.bin" "$NET_TMP/www/file.bin" || net_die "the proxied curl's file differs"
    echo "  (intact; the host kernel held only curl's local leg to the proxy)"
    printf '%shost# kill %s   # toe-proxyd removes its rules%s\n' "$bold" "$proxy" "$plain"
    kill -TERM "$proxy" 2>/dev/null
    wait "$proxy" 2>/dev/null
    run_dev nft list tables
    echo "  Without the proxy the same plain curl goes through the host's own stack, on toe0:"
    run_dev curl -sS -m 5 -o /dev/null -w '  HTTP %{http_code}, %{size_download} bytes via the kernel\n' \
      "http://$NET_PEER_ADDR:8000/file.bin"
  fi
}

TOE_NC_BIN=$NET_BINDIR/toe-nc
TOECTL_BIN=$NET_BINDIR/toectl
if [ -n "$DEMO_CTL" ] && [ -x "$TOE_NC_BIN" ] && [ -x "$TOECTL_BIN" ]; then
  export TOE_CTL=$DEMO_CTL # the default control socket of toe-nc and toectl
  heading "The host side: an application's TCP connection carried by the device"
  echo "  Host processes reach the network through the device, not through their kernel's TCP/IP:"
  echo "  libtoe hands socket operations and data to toed over shared-memory rings, and the"
  echo "  device's engine terminates the TCP connection. toe-nc is netcat over libtoe; the peer"
  echo "  runs the kernel's own nc. Host programs attach on toed's control socket:"
  echo "    TOE_CTL=$DEMO_CTL"
  # (ip netns exec directly, not the peer/dev functions: $! must be the process itself)
  ip netns exec "$NET_PEER_NS" timeout 10 nc -l 5001 >"$NET_TMP/demo_rx.txt" 2>/dev/null </dev/null &
  DEMO_PEER=$!
  net_bg_add "$DEMO_PEER"
  demo_listening 5001 || net_die "the peer's nc did not listen on 5001"
  printf '%speer$ nc -l 5001%s\n' "$bold" "$plain"
  printf '%shost$ echo "hello from a host application, through the device" | toe-nc -N %s 5001%s\n' \
    "$bold" "$NET_PEER_ADDR" "$plain"
  echo "hello from a host application, through the device" |
    dev timeout 10 "$TOE_NC_BIN" -N "$NET_PEER_ADDR" 5001 2>&1 | indent
  wait "$DEMO_PEER" 2>/dev/null
  echo "  the peer's nc printed:"
  indent <"$NET_TMP/demo_rx.txt"
  grep -q "hello from a host application" "$NET_TMP/demo_rx.txt" ||
    net_die "the kernel peer did not receive toe-nc's line"

  heading "toectl: the device's flow table and counters, while a host transfer runs"
  echo "  (with offload the host's own ss and nstat no longer see these flows: toectl asks the device)"
  ip netns exec "$NET_PEER_NS" timeout 20 nc -l 5002 >/dev/null 2>&1 </dev/null &
  net_bg_add $!
  demo_listening 5002 || net_die "the peer's nc did not listen on 5002"
  printf '%speer$ nc -l 5002 > /dev/null%s\n' "$bold" "$plain"
  printf '%shost$ toe-nc %s 5002 < /dev/zero &%s\n' "$bold" "$NET_PEER_ADDR" "$plain"
  ip netns exec "$NET_DEV_NS" "$TOE_NC_BIN" "$NET_PEER_ADDR" 5002 </dev/zero >/dev/null 2>&1 &
  DEMO_NC=$!
  net_bg_add "$DEMO_NC"
  sleep 1
  run_dev "$TOECTL_BIN" flows || net_die "toectl flows failed"
  echo
  run_dev "$TOECTL_BIN" status || net_die "toectl status failed"
  echo
  run_dev "$TOECTL_BIN" stats || net_die "toectl stats failed"
  echo
  printf '%shost$ kill %s   # the client goes: the device resets its connection%s\n' "$bold" \
    "$DEMO_NC" "$plain"
  kill -TERM "$DEMO_NC" 2>/dev/null
  wait "$DEMO_NC" 2>/dev/null
  sleep 0.3
  run_dev "$TOECTL_BIN" flows

  if [ -n "$DEMO_HOSTIF" ]; then
    demo_whole_system
  fi
else
  heading "The host side (toe-nc, toectl): skipped"
  echo "  this build has no toe-nc/toectl, or toed has no --ctl"
fi

heading "Stop toed: its counter summary"
stop_toed
tail -n +$((TOED_LOG_LINES + 1)) "$NET_TOED_LOG" | sed 's/^/  /'
if [ "$NET_TOED_STATUS" != 0 ]; then net_die "toed exited with status $NET_TOED_STATUS"; fi
echo "  (toed exited with status 0)"

if command -v tshark >/dev/null && [ -s "$NET_PCAP" ]; then
  heading "What the device saw: its own capture (toed --pcap), first frames"
  tshark -n -r "$NET_PCAP" -c 14 2>/dev/null | sed 's/^/  /'
  echo "  ... $(tshark -n -r "$NET_PCAP" 2>/dev/null | wc -l) frames in all"
fi

heading "Done"
echo "  namespaces $NET_DEV_NS and $NET_PEER_NS are removed on exit"
