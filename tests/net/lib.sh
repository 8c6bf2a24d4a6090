# Shared code of the namespace interop tests (tests/net/test_*.sh) and scripts/demo.sh.
# Sourced, never run. See tests/net/README.md.
#
# Topology made by net_setup (names are unique per run: $$ is the test script's PID):
#
#   netns toe-$$-dev                         netns toe-$$-peer
#   +---------------------------+            +---------------------------+
#   | toed --wire wire0         |   veth     | Linux kernel              |
#   |  engine 198.18.0.1/24     |<---------->| peer0 198.18.0.2/24       |
#   |  wire0: no kernel address |            | no default route          |
#   +---------------------------+            +---------------------------+
#
# Only 198.18.0.0/15 addresses, no routes off the link, IPv6 disabled in both namespaces so that
# nothing but the test's own traffic (and ARP) crosses the veth. Everything is torn down in an EXIT
# trap: only the PIDs this script started are killed, only its namespaces deleted.

# Addresses and names (overridable from the environment only for debugging).
NET_DEV_NS=toe-$$-dev
NET_PEER_NS=toe-$$-peer
NET_DEV_IF=wire0
NET_PEER_IF=peer0
NET_DEV_ADDR=198.18.0.1
NET_PEER_ADDR=198.18.0.2
NET_PREFIX=24
# A locally administered unicast MAC ("toe" in bytes 2..4), set on the device's veth end and given to
# toed with --mac, so the expected MAC does not depend on toed's default.
NET_DEV_MAC=02:74:6f:65:00:01
# Debian's python has scapy; the `python3` on PATH may be a pyenv without it.
NET_PY=/usr/bin/python3
NET_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

NET_PASS=0
NET_FAIL=0
NET_TMP=
NET_BINDIR=
NET_TOED=
NET_TOED_PID=
NET_TOED_STATUS=
NET_TOED_LOG=
NET_PCAP=
NET_PIDS=()
NET_PEER_MAC= # the peer veth end's MAC, set by net_setup
NET_WATCHDOG_PID=
NET_NS_MADE=0
NET_QUIET=0

# ---- output and checks ------------------------------------------------------------------------

net_log() { [ "$NET_QUIET" = 1 ] || echo "# $*"; }
net_ok() {
  NET_PASS=$((NET_PASS + 1))
  echo "ok   - $*"
}
net_fail() {
  NET_FAIL=$((NET_FAIL + 1))
  echo "FAIL - $*"
}

# check NAME CMD...: ok if CMD succeeds. CMD's output goes to checks.log in the temp dir.
check() {
  local name=$1
  shift
  echo "== $name: $*" >>"${NET_TMP:-/tmp}/checks.log"
  if "$@" >>"${NET_TMP:-/tmp}/checks.log" 2>&1; then net_ok "$name"; else net_fail "$name"; fi
}

# check_eq NAME GOT WANT
check_eq() {
  if [ "$2" = "$3" ]; then net_ok "$1 ($2)"; else net_fail "$1 (got '$2', want '$3')"; fi
}

# check_range NAME GOT LO HI: integer LO <= GOT <= HI
check_range() {
  local name=$1 got=$2 lo=$3 hi=$4
  if [[ "$got" =~ ^-?[0-9]+$ ]] && ((got >= lo && got <= hi)); then
    net_ok "$name ($got, want $lo..$hi)"
  else
    net_fail "$name (got '$got', want $lo..$hi)"
  fi
}

# check_ge NAME GOT MIN
check_ge() {
  if [[ "$2" =~ ^-?[0-9]+$ ]] && (($2 >= $3)); then
    net_ok "$1 ($2 >= $3)"
  else
    net_fail "$1 (got '$2', want >= $3)"
  fi
}

# net_finish: prints the summary line and exits with the right status. Call at the end of a test.
net_finish() {
  echo "$NET_PASS passed, $NET_FAIL failed"
  if ((NET_FAIL > 0 || NET_PASS == 0)); then exit 1; fi
  exit 0
}

# net_die MSG: a setup step failed; counts as a failure and ends the test.
net_die() {
  net_fail "$*"
  net_finish
}

# ---- setup and teardown -----------------------------------------------------------------------

# net_init BINDIR [TIMEOUT_SECONDS]: checks prerequisites, makes the temp dir, installs the EXIT trap
# and a watchdog that ends the whole test after TIMEOUT_SECONDS (default 110).
net_init() {
  NET_BINDIR=${1:-}
  NET_LIMIT=${2:-110}
  if [ -z "$NET_BINDIR" ]; then
    echo "usage: bash $0 BINDIR   (the build's bin directory, holding toed)" >&2
    exit 2
  fi
  NET_BINDIR=$(cd "$NET_BINDIR" 2>/dev/null && pwd) || {
    echo "$0: no such directory: $1" >&2
    exit 2
  }
  NET_TOED=$NET_BINDIR/toed
  trap net_cleanup EXIT
  trap 'echo "# interrupted"; exit 130' INT
  trap 'net_fail "time limit of ${NET_LIMIT}s reached (watchdog)"; net_finish' TERM
  if [ "$(id -u)" != 0 ]; then net_die "must run as root (network namespaces)"; fi
  [ -x "$NET_TOED" ] || net_die "no toed at $NET_TOED (build first)"
  local t
  for t in ${NET_REQUIRED_TOOLS:-ip ping tshark timeout $NET_PY}; do
    command -v "$t" >/dev/null || net_die "missing tool $t (run: make deps)"
  done
  NET_TMP=$(mktemp -d /tmp/toe-net.XXXXXX) || net_die "mktemp failed"
  # Watchdog: a subshell that, after the limit, sends TERM to this script and then to the script's
  # other children (so that a hung foreground command returns and the script's TERM trap runs). It
  # kills its own sleep when told to stop.
  (
    sleep "$NET_LIMIT" &
    s=$!
    trap 'kill $s 2>/dev/null; exit 0' TERM
    if wait $s; then
      kill -TERM $$ 2>/dev/null
      for c in $(cat /proc/$$/task/*/children 2>/dev/null || ps -o pid= --ppid $$ 2>/dev/null); do
        [ "$c" != "$BASHPID" ] && kill -TERM "$c" 2>/dev/null
      done
    fi
  ) &
  NET_WATCHDOG_PID=$!
}

# net_bg_add PID: registers a background process to kill at teardown.
net_bg_add() { NET_PIDS+=("$1"); }

# Kills PID (TERM, then KILL after ~2 s) and reaps it. Only ever called with PIDs we started.
net_kill_pid() {
  local pid=$1
  kill -0 "$pid" 2>/dev/null || {
    wait "$pid" 2>/dev/null
    return 0
  }
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 20); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  return 0
}

net_cleanup() {
  local rc=$? p
  # Nothing may interrupt the teardown: the watchdog goes first, signals are ignored meanwhile.
  trap - EXIT
  trap '' INT TERM
  if [ -n "$NET_WATCHDOG_PID" ]; then
    kill -TERM "$NET_WATCHDOG_PID" 2>/dev/null
    wait "$NET_WATCHDOG_PID" 2>/dev/null
  fi
  if [ -n "$NET_TOED_PID" ]; then net_kill_pid "$NET_TOED_PID"; fi
  for p in "${NET_PIDS[@]}"; do net_kill_pid "$p"; done
  if [ "$NET_NS_MADE" = 1 ]; then
    # Whatever still runs inside the namespaces this script made was started by it (a background
    # job whose recorded PID was only its subshell's): end those processes too, by PID.
    local ns
    for ns in "$NET_DEV_NS" "$NET_PEER_NS" ${NET_MID_NS:+"$NET_MID_NS"}; do
      for p in $(ip netns pids "$ns" 2>/dev/null); do net_kill_pid "$p"; done
    done
    ip netns del "$NET_DEV_NS" 2>/dev/null
    ip netns del "$NET_PEER_NS" 2>/dev/null
    # the middle namespace of net_setup_impaired, if made
    [ "${NET_MID_MADE:-0}" = 1 ] && ip netns del "$NET_MID_NS" 2>/dev/null
  fi
  if [ -n "$NET_TMP" ] && [ -d "$NET_TMP" ]; then
    if ((NET_FAIL > 0)) || [ "${NET_KEEP:-0}" = 1 ]; then
      echo "# logs and captures kept in $NET_TMP"
    else
      rm -rf "$NET_TMP"
    fi
  fi
  exit $rc
}

# peer CMD...: runs CMD in the peer (plain kernel) namespace. dev CMD...: in the device namespace.
peer() { ip netns exec "$NET_PEER_NS" "$@"; }
# net_wait_ping6 ADDR [TRIES]: polls until the peer's ping -6 to ADDR is answered (TRIES rounds of
# a 1 s ping and 0.4 s, default 12). The device's addresses are tentative until its DAD passes
# (RFC 4862 5.4: a random delay of up to 1 s, a probe, then 1 s of waiting). 0 once answered.
net_wait_ping6() {
  local addr=$1 tries=${2:-12}
  for _ in $(seq "$tries"); do
    peer ping -6 -c 1 -W 1 -q "$addr" >/dev/null 2>&1 && return 0
    sleep 0.4
  done
  return 1
}
dev() { ip netns exec "$NET_DEV_NS" "$@"; }

# Writes a sysctl in a namespace through /proc (the sysctl binary may be absent).
net_sysctl() {
  local ns=$1 key=$2 val=$3
  ip netns exec "$ns" sh -c "echo $val > /proc/sys/${key//.//}" 2>/dev/null
}

# net_setup: two namespaces, a veth pair between them, the peer's address. The device end has no
# kernel address: the port belongs to toed.
net_setup() {
  ip netns add "$NET_DEV_NS" || net_die "ip netns add $NET_DEV_NS"
  NET_NS_MADE=1
  ip netns add "$NET_PEER_NS" || net_die "ip netns add $NET_PEER_NS"
  local ns
  for ns in "$NET_DEV_NS" "$NET_PEER_NS"; do
    # Before the veth exists, so "default" applies to it: no IPv6 chatter (RS, MLD, DAD) on the link.
    net_sysctl "$ns" net.ipv6.conf.all.disable_ipv6 1
    net_sysctl "$ns" net.ipv6.conf.default.disable_ipv6 1
    ip -n "$ns" link set lo up
  done
  # Created inside the device namespace with its peer moved at once: no name clash in the root ns.
  ip -n "$NET_DEV_NS" link add "$NET_DEV_IF" type veth peer name "$NET_PEER_IF" netns "$NET_PEER_NS" ||
    net_die "veth pair"
  ip -n "$NET_DEV_NS" link set "$NET_DEV_IF" address "$NET_DEV_MAC" || net_die "set device MAC"
  ip -n "$NET_PEER_NS" addr add "$NET_PEER_ADDR/$NET_PREFIX" dev "$NET_PEER_IF" || net_die "peer addr"
  ip -n "$NET_DEV_NS" link set "$NET_DEV_IF" up || net_die "device link up"
  ip -n "$NET_PEER_NS" link set "$NET_PEER_IF" up || net_die "peer link up"
  # shellcheck disable=SC2034 # used by the tests
  NET_PEER_MAC=$(ip -n "$NET_PEER_NS" -br link show "$NET_PEER_IF" | awk '{print $3}')
}

# start_toed [ARGS...]: runs toed on the device end with a pcap in the temp dir and waits until the
# peer can ping it (at most ~10 s). Extra ARGS go to toed (e.g. --service echo:7), after the words
# of $NET_TOED_EXTRA_ARGS (from the environment, e.g. NET_TOED_EXTRA_ARGS='--offload none' to run
# a test with the driver's offloads off).
# net_ctl_default ARGS...: prints "--ctl $NET_TMP/ctl.sock" unless ARGS already name a control socket,
# so that concurrent or leftover toeds never meet at the default /run/toekit/IFNAME.sock.
net_ctl_default() {
  local a
  for a in "$@"; do
    [ "$a" = --ctl ] && return 0
  done
  printf '%s\n' --ctl "$NET_TMP/ctl.sock"
}

# net_link_args ARGS...: prints "--link $TOED_LINK" when the environment names a link driver
# (TOED_LINK=afpacket|afxdp, e.g. to run the suite with the AF_XDP driver) and ARGS name none.
net_link_args() {
  local a
  [ -n "${TOED_LINK:-}" ] || return 0
  for a in "$@"; do
    [ "$a" = --link ] && return 0
  done
  printf '%s\n' --link "$TOED_LINK"
}

start_toed() {
  NET_TOED_LOG=$NET_TMP/toed.log
  NET_PCAP=$NET_TMP/device.pcap
  NET_TOED_STATUS=
  # `ip netns exec` execs toed, so $! is toed's own PID and signals reach it directly.
  ip netns exec "$NET_DEV_NS" "$NET_TOED" --wire "$NET_DEV_IF" --addr "$NET_DEV_ADDR/$NET_PREFIX" \
    --mac "$NET_DEV_MAC" --pcap "$NET_PCAP" $(net_ctl_default "$@") $(net_link_args "$@") ${NET_TOED_EXTRA_ARGS:-} "$@" >"$NET_TOED_LOG" 2>&1 </dev/null &
  NET_TOED_PID=$!
  wait_toed_ready 10
}

# wait_toed_ready SECONDS: polls with single pings from the peer until one is answered.
wait_toed_ready() {
  local limit=${1:-10} start=$SECONDS
  while ((SECONDS - start < limit)); do
    if ! kill -0 "$NET_TOED_PID" 2>/dev/null; then
      wait "$NET_TOED_PID" 2>/dev/null
      NET_TOED_STATUS=$?
      NET_TOED_PID=
      net_log "toed log:"
      sed 's/^/#   /' "$NET_TOED_LOG"
      net_die "toed exited during start-up with status $NET_TOED_STATUS"
    fi
    if peer ping -c1 -W1 -q "$NET_DEV_ADDR" >/dev/null 2>&1; then
      net_log "toed ready after $((SECONDS - start))s"
      return 0
    fi
    sleep 0.1
  done
  net_log "toed log:"
  sed 's/^/#   /' "$NET_TOED_LOG"
  net_die "toed did not answer ping within ${limit}s"
}

# stop_toed: SIGTERM, wait at most 10 s, then sets NET_TOED_STATUS (exit status, or "killed").
# SIGTERM rather than SIGINT: a background job of a non-interactive shell starts with SIGINT ignored.
stop_toed() {
  local pid=$NET_TOED_PID
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    NET_TOED_STATUS=killed
  else
    wait "$pid" 2>/dev/null
    NET_TOED_STATUS=$?
  fi
  NET_TOED_PID=
}

# check_toed_exit: stops toed and checks it exited 0 with no sanitizer report in its log.
check_toed_exit() {
  stop_toed
  check_eq "toed exits 0 on SIGTERM" "$NET_TOED_STATUS" 0
  if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' "$NET_TOED_LOG"; then
    net_fail "sanitizer report in toed log"
    grep -E -A5 'AddressSanitizer|LeakSanitizer|runtime error:' "$NET_TOED_LOG" | head -30 |
      sed 's/^/#   /'
  fi
}

# is_refdev: true when the "toed" under test is tests/net/refdev/toed (the kernel standing in for the
# engine), which has neither the engine's counters nor its announcements: checks of those are skipped.
is_refdev() { grep -q '^refdev:' "$NET_TOED_LOG" 2>/dev/null; }

# engine_only NAME: true for a real toed; for refdev prints a "skip" line and returns false.
engine_only() {
  if is_refdev; then
    echo "skip - $1 (refdev)"
    return 1
  fi
  return 0
}

# toed_counter LAYER.NAME: value of a counter from toed's exit summary (0 if not printed: the summary
# lists only non-zero counters). Accepts "layer.name 12", "layer.name: 12", "layer.name=12", and a
# layer heading ("udp:" or "[udp]") followed by indented "name 12" lines.
toed_counter() {
  local want=$1
  awk -v want="$want" '
    function val(s) { gsub(/[^0-9]/, "", s); return s }
    {
      line = $0
      sub(/^toed: */, "", line)
      n = split(line, f, /[ \t:=]+/)
      # "layer.name value" anywhere on the line
      for (i = 1; i < n; i++) if (f[i] == want && f[i+1] ~ /^[0-9]+$/) { print f[i+1]; found = 1; exit }
      # layer heading on its own line
      if (line ~ /^\[?[a-z_]+\]?:?[ \t]*$/) { layer = line; gsub(/[^a-z_]/, "", layer); next }
      if (layer != "" && line ~ /^[ \t]/) {
        for (i = 1; i < n; i++) if (layer "." f[i] == want && f[i+1] ~ /^[0-9]+$/) { print f[i+1]; found = 1; exit }
      }
    }
    END { if (!found) print 0 }' "$NET_TOED_LOG"
}

# ---- pcap checks ------------------------------------------------------------------------------

# tshark checksum-validation options that this tshark knows (ICMP's is always checked; newer versions
# may add a preference for it).
net_tshark_prefs() {
  if [ -z "${NET_TSHARK_PREFS+x}" ]; then
    NET_TSHARK_PREFS=()
    local known p
    known=$(tshark -G defaultprefs 2>/dev/null | grep -o '^#[a-z]*\.check_checksum' | tr -d '#')
    for p in ip udp tcp icmp; do
      if grep -qx "$p.check_checksum" <<<"$known"; then
        NET_TSHARK_PREFS+=(-o "$p.check_checksum:TRUE")
      fi
    done
  fi
}

# tshark_prefetch PCAP FILTER...: counts the frames matching each display filter in one pass of
# tshark (its io,stat table, one column per filter) and keeps the counts for tshark_count. One
# tshark start costs about a second of CPU, several on a loaded machine: a test with twenty
# counts of one file pays it once. Filters must not contain commas (io,stat's separator).
declare -A NET_TSHARK_CACHE=()
tshark_prefetch() {
  local pcap=$1 out i=0 f
  shift
  net_tshark_prefs
  local args=() filters=("$@")
  for f in "${filters[@]}"; do
    [[ $f == *,* ]] && net_die "tshark_prefetch: a comma in filter '$f'"
    args+=("$f")
  done
  local IFS=,
  out=$(tshark -n -r "$pcap" "${NET_TSHARK_PREFS[@]}" -q -z "io,stat,0,${args[*]}" \
    2>"$NET_TMP/tshark.err") || return 0 # tshark_count asks again and reports the error
  unset IFS
  # The one data row: "| 0.000 <> 8.318 | frames | bytes | frames | bytes |...".
  local row
  row=$(grep '<>' <<<"$out" | tail -1)
  local -a cols
  IFS='|' read -r -a cols <<<"$row"
  unset IFS
  for f in "${filters[@]}"; do
    local n=${cols[2 + 2 * i]// /}
    [[ $n =~ ^[0-9]+$ ]] && NET_TSHARK_CACHE["$pcap|$f"]=$n
    i=$((i + 1))
  done
}

# tshark_count PCAP FILTER: number of frames matching the display filter (checksums validated),
# from tshark_prefetch's counts when it counted this filter. Prints "error" (which no numeric
# check accepts) if tshark fails.
tshark_count() {
  local pcap=$1 filter=$2 out
  if [ -n "${NET_TSHARK_CACHE["$pcap|$filter"]+x}" ]; then
    echo "${NET_TSHARK_CACHE["$pcap|$filter"]}"
    return 0
  fi
  net_tshark_prefs
  if ! out=$(tshark -n -r "$pcap" "${NET_TSHARK_PREFS[@]}" -Y "$filter" -T fields -e frame.number \
    2>"$NET_TMP/tshark.err"); then
    sed 's/^/#   tshark: /' "$NET_TMP/tshark.err" >&2
    echo error
    return 1
  fi
  grep -c . <<<"$out"
}

# tshark_fields PCAP FILTER FIELD...: the fields of matching frames, one frame a line, tab separated.
tshark_fields() {
  local pcap=$1 filter=$2
  shift 2
  local args=() f
  for f in "$@"; do args+=(-e "$f"); done
  net_tshark_prefs
  tshark -n -r "$pcap" "${NET_TSHARK_PREFS[@]}" -Y "$filter" -T fields "${args[@]}" \
    2>"$NET_TMP/tshark.err"
}

# The filter of frames that a careful dissector finds wrong: malformed, or any expert item of
# warning severity or worse (bad checksums are errors). Plain `-z expert` misses some bad headers.
NET_BAD_FILTER='_ws.malformed || _ws.expert.severity >= "warning"'

# pcap_clean_filter [EXTRA_FILTER]: the display filter check_pcap_clean counts (to pass to
# tshark_prefetch with a test's other filters, so that the check costs no tshark start of its own).
pcap_clean_filter() {
  local extra=${1:-} filter
  filter="($NET_BAD_FILTER)"
  [ -n "$extra" ] && filter="$filter && ($extra)"
  # refdev's pcap comes from tcpdump, which sees the peer's partial (offloaded) checksums as they are.
  if is_refdev; then filter="$filter && !(ip.src == $NET_PEER_ADDR && (udp || tcp))"; fi
  echo "$filter"
}

# check_pcap_clean NAME PCAP [EXTRA_FILTER]: no frame of PCAP (restricted by EXTRA_FILTER) matches
# NET_BAD_FILTER; shows the first offenders otherwise.
check_pcap_clean() {
  local name=$1 pcap=$2 extra=${3:-} filter n
  filter=$(pcap_clean_filter "$extra")
  n=$(tshark_count "$pcap" "$filter")
  check_eq "$name: frames flagged malformed or with warnings" "$n" 0
  if [ "$n" != 0 ]; then
    tshark -n -r "$pcap" "${NET_TSHARK_PREFS[@]}" -Y "$filter" 2>/dev/null | head -10 |
      sed 's/^/#   /'
  fi
}

# ---- peer-side helpers ------------------------------------------------------------------------

# peer_py SECONDS SCRIPT ARGS...: runs a helper python script from tests/net in the peer namespace,
# bounded in time.
peer_py() {
  local limit=$1 script=$2
  shift 2
  peer timeout -k 2 "$limit" "$NET_PY" "$NET_LIB_DIR/$script" "$@"
}

# peer_capture_start FILE: tcpdump on the peer's veth end in the background (waits until it listens).
# -B 65536: a 64 MiB ring. libpcap cuts its TPACKET_V3 ring into blocks of at least one
# snapshot (512 KiB at -s 0), so the default 2 MiB held four blocks, and with --immediate-mode a
# block is handed over per wake-up: a tcpdump that the scheduler left waiting on a loaded machine
# lost frames after a handful of arrivals ("50 packets dropped by kernel" in a 180-frame run).
# 128 blocks ride out such waits; peer_capture_drops reports any loss that remains.
peer_capture_start() {
  local file=$1
  command -v tcpdump >/dev/null || {
    net_log "tcpdump missing: no peer-side capture"
    return 1
  }
  ip netns exec "$NET_PEER_NS" tcpdump -i "$NET_PEER_IF" -n -U --immediate-mode -B 65536 -s 0 -w "$file" \
    >"$NET_TMP/tcpdump.log" 2>&1 </dev/null &
  NET_PEER_CAPTURE_PID=$!
  net_bg_add "$NET_PEER_CAPTURE_PID"
  for _ in $(seq 50); do
    grep -q 'listening on' "$NET_TMP/tcpdump.log" && return 0
    sleep 0.1
  done
  return 1
}

# peer_capture_stop: stops the tcpdump started by peer_capture_start (it flushes on SIGTERM).
peer_capture_stop() {
  [ -n "${NET_PEER_CAPTURE_PID:-}" ] && net_kill_pid "$NET_PEER_CAPTURE_PID"
  NET_PEER_CAPTURE_PID=
}

# peer_capture_drops: after peer_capture_stop, the frames the peer-side capture itself lost
# ("N packets dropped by kernel", tcpdump's own count on exit); empty if it did not say.
peer_capture_drops() {
  sed -n 's/^\([0-9][0-9]*\) packets\{0,1\} dropped by kernel$/\1/p' "$NET_TMP/tcpdump.log" | tail -1
}

# ---- TCP helpers (tests/net/test_tcp_*.sh) ----------------------------------------------------

# start_toed_nopcap [ARGS...]: start_toed without the packet capture, for transfers whose capture
# would take hundreds of MiB.
start_toed_nopcap() {
  NET_TOED_LOG=$NET_TMP/toed.log
  NET_PCAP=
  NET_TOED_STATUS=
  ip netns exec "$NET_DEV_NS" "$NET_TOED" --wire "$NET_DEV_IF" --addr "$NET_DEV_ADDR/$NET_PREFIX" \
    --mac "$NET_DEV_MAC" $(net_ctl_default "$@") $(net_link_args "$@") ${NET_TOED_EXTRA_ARGS:-} "$@" >"$NET_TOED_LOG" 2>&1 </dev/null &
  NET_TOED_PID=$!
  wait_toed_ready 10
}

# toed_log_keep NAME: copies the log of the toed just stopped to $NET_TMP/toed.NAME.log and points
# NET_TOED_LOG (and so toed_counter) at the copy, so a later start_toed does not overwrite it.
toed_log_keep() {
  cp "$NET_TOED_LOG" "$NET_TMP/toed.$1.log" && NET_TOED_LOG=$NET_TMP/toed.$1.log
}

# kv KEY TEXT: the value of a "key value" line (as tcp_tool.py and udp_tool.py print them).
# sha FILE: the SHA-256 of FILE, or "missing FILE" (two missing files must never compare equal to
# each other as two empty hashes would).
sha() {
  if [ -f "$1" ]; then
    sha256sum "$1" | awk '{print $1}'
  else
    echo "missing $1"
  fi
}
kv() { awk -v k="$1" '$1 == k { print $2; exit }' <<<"$2"; }

# ---- a middle namespace with toe-impair between the device and the peer ------------------------
#
#   netns toe-$$-dev            netns toe-$$-mid                          netns toe-$$-peer
#   toed --wire wire0 <-------> ma  [toe-impair --a ma --b mb ARGS]  mb <-------> peer0 198.18.0.2/24
#
# The middle namespace has no addresses, IPv6 off and an nftables ingress drop on both ports, so
# its kernel leaves them to the tool (docs/impair.md). Deleted by the EXIT trap with the others.
NET_MID_NS=toe-$$-mid
NET_MID_MADE=0
NET_IMPAIR_PID=
NET_IMPAIR_LOG=
NET_IMPAIR_RUNS=0
NET_IMPAIR_STATUS=

# net_setup_mid: the three namespaces above (all deleted by the EXIT trap) and two veth pairs, IPv6
# off, every link up, $NET_PEER_ADDR/$NET_PREFIX on the peer's end, NET_DEV_MAC on the device's end
# (which has no kernel address); sets NET_PEER_MAC. What the middle namespace does with ma and mb is
# the caller's: net_setup_impaired leaves them to toe-impair, test_tcp_pmtu.sh makes it a router.
net_setup_mid() {
  ip netns add "$NET_DEV_NS" || net_die "ip netns add $NET_DEV_NS"
  NET_NS_MADE=1
  ip netns add "$NET_PEER_NS" || net_die "ip netns add $NET_PEER_NS"
  ip netns add "$NET_MID_NS" || net_die "ip netns add $NET_MID_NS"
  NET_MID_MADE=1
  local ns
  for ns in "$NET_DEV_NS" "$NET_MID_NS" "$NET_PEER_NS"; do
    net_sysctl "$ns" net.ipv6.conf.all.disable_ipv6 1
    net_sysctl "$ns" net.ipv6.conf.default.disable_ipv6 1
    ip -n "$ns" link set lo up
  done
  ip -n "$NET_DEV_NS" link add "$NET_DEV_IF" type veth peer name ma netns "$NET_MID_NS" ||
    net_die "veth pair device-mid"
  ip -n "$NET_PEER_NS" link add "$NET_PEER_IF" type veth peer name mb netns "$NET_MID_NS" ||
    net_die "veth pair peer-mid"
  ip -n "$NET_DEV_NS" link set "$NET_DEV_IF" address "$NET_DEV_MAC" || net_die "set device MAC"
  ip -n "$NET_PEER_NS" addr add "$NET_PEER_ADDR/$NET_PREFIX" dev "$NET_PEER_IF" || net_die "peer addr"
  ip -n "$NET_DEV_NS" link set "$NET_DEV_IF" up || net_die "device link up"
  ip -n "$NET_PEER_NS" link set "$NET_PEER_IF" up || net_die "peer link up"
  ip -n "$NET_MID_NS" link set dev ma up || net_die "mid link ma up"
  ip -n "$NET_MID_NS" link set dev mb up || net_die "mid link mb up"
  # shellcheck disable=SC2034 # used by the tests
  NET_PEER_MAC=$(ip -n "$NET_PEER_NS" -br link show "$NET_PEER_IF" | awk '{print $3}')
}

# net_setup_impaired: net_setup_mid with the middle's kernel kept off ma and mb (no addresses, an
# nftables ingress drop on both). Nothing crosses until impair_start.
net_setup_impaired() {
  net_setup_mid
  printf '%s\n' 'table netdev toemid {' \
    '  chain ma { type filter hook ingress device "ma" priority 0; policy drop; }' \
    '  chain mb { type filter hook ingress device "mb" priority 0; policy drop; }' '}' |
    ip netns exec "$NET_MID_NS" nft -f - || net_log "nftables ingress drop not available in mid"
}

# impair_start [ARGS...]: toe-impair (from BINDIR) between ma and mb with ARGS; waits until it
# forwards (at most 5 s). Returns non-zero if it did not start.
impair_start() {
  NET_IMPAIR_RUNS=$((NET_IMPAIR_RUNS + 1))
  NET_IMPAIR_LOG=$NET_TMP/impair.$NET_IMPAIR_RUNS.log
  ip netns exec "$NET_MID_NS" "$NET_BINDIR/toe-impair" --a ma --b mb "$@" >"$NET_IMPAIR_LOG" 2>&1 &
  NET_IMPAIR_PID=$!
  net_bg_add "$NET_IMPAIR_PID"
  local _
  for _ in $(seq 50); do
    grep -q 'forwarding ma <-> mb' "$NET_IMPAIR_LOG" && return 0
    kill -0 "$NET_IMPAIR_PID" 2>/dev/null || break
    sleep 0.1
  done
  net_log "toe-impair $* did not start:"
  sed 's/^/#   /' "$NET_IMPAIR_LOG"
  return 1
}

# impair_stop: SIGTERM (the tool prints its final counters and exits 0); NET_IMPAIR_STATUS is its
# exit status.
impair_stop() {
  [ -n "$NET_IMPAIR_PID" ] || return 0
  kill -TERM "$NET_IMPAIR_PID" 2>/dev/null
  wait "$NET_IMPAIR_PID" 2>/dev/null
  # shellcheck disable=SC2034 # read by the tests
  NET_IMPAIR_STATUS=$?
  NET_IMPAIR_PID=
}

# impair_counter DIR NAME: a counter of the last run's final statistics (DIR: a->b or b->a; a is
# the device's side).
impair_counter() {
  local v
  v=$(sed -n "s/^toe-impair: final $1 .* $2=\([0-9]*\).*/\1/p" "$NET_IMPAIR_LOG" | head -1)
  echo "${v:-0}"
}
