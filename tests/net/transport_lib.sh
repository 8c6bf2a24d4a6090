# Shared code of the transport's end-to-end tests (test_transport_*.sh, test_toectl.sh): toed
# serving host clients on a control socket in the test's temp dir, and toectl/JSON helpers.
# Sourced after lib.sh and net_init, never run.
#
# The "host" processes (toe-nc, multi_client, toectl) run in the device namespace, beside toed, as
# the applications of a machine with the device plugged in would; the kernel peer is the far end
# of the network.

# tr_init: the binaries and the control socket's path (exported as TOE_CTL, the default of libtoe
# and toectl). Call after net_init.
tr_init() {
  TOECTL=$NET_BINDIR/toectl
  TOE_NC=$NET_BINDIR/toe-nc
  MULTI_CLIENT=$NET_BINDIR/multi_client
  CTL=$NET_TMP/toed.sock
  export TOE_CTL=$CTL
  [ -x "$TOECTL" ] || net_die "no toectl at $TOECTL (build first)"
}

# tr_need BIN...: dies unless each binary (toe-nc, multi_client) was built.
tr_need() {
  local b
  for b in "$@"; do [ -x "$b" ] || net_die "no $(basename "$b") at $b (libtoe not built?)"; done
}

# dev_bg CMD... / peer_bg CMD...: start CMD in the background in the device / peer namespace and
# set BG_PID to the process's own pid (`ip netns exec` execs CMD; a backgrounded shell function
# such as `dev CMD &` would be a subshell instead, whose pid neither SO_PEERCRED nor a kill
# reaches). Redirections given to the call apply to CMD, stdin included. The process is
# registered for the teardown.
dev_bg() {
  ip netns exec "$NET_DEV_NS" "$@" <&0 &
  BG_PID=$!
  net_bg_add "$BG_PID"
}
peer_bg() {
  ip netns exec "$NET_PEER_NS" "$@" <&0 &
  BG_PID=$!
  net_bg_add "$BG_PID"
}

# num VALUE: VALUE if it is a number, else 0 (for arithmetic on values that may be "none").
num() { if [[ "$1" =~ ^[0-9]+$ ]]; then echo "$1"; else echo 0; fi; }

# tr_start_toed [ARGS...]: toed with --ctl on the temp dir's socket; waits until the socket exists.
# No device capture (when lib.sh can start toed without one): these tests stream hundreds of MB,
# and writing them to a pcap slows toed down enough to overflow its receive ring.
tr_start_toed() {
  if declare -F start_toed_nopcap >/dev/null; then
    start_toed_nopcap --ctl "$CTL" "$@"
  else
    start_toed --ctl "$CTL" "$@"
  fi
  local _
  for _ in $(seq 50); do
    [ -S "$CTL" ] && return 0
    sleep 0.1
  done
  net_die "toed made no control socket at $CTL"
}

# toectl_run ARGS...: toectl in the device namespace (bounded); stdout as is, stderr appended to
# toectl.err.
toectl_run() { dev timeout -k 2 10 "$TOECTL" --ctl "$CTL" "$@" 2>>"$NET_TMP/toectl.err"; }

# toectl_json FILE ARGS...: `toectl --json ARGS` into FILE. Returns toectl's status.
toectl_json() {
  local out=$1
  shift
  toectl_run --json "$@" >"$out"
}

# json_eval FILE EXPR: prints the Python expression EXPR evaluated with d = the JSON in FILE
# (booleans as 0/1), or "error" if the file is not JSON or the expression fails.
json_eval() {
  "$NET_PY" -c '
import json, sys
try:
    d = json.load(open(sys.argv[1]))
    r = eval(sys.argv[2], {"d": d})
except Exception:
    print("error")
    sys.exit(0)
if isinstance(r, bool):
    r = int(r)
if isinstance(r, dict) and "addr" in r:
    r = "%s:%s" % (r["addr"], r["port"])
print(r)' "$1" "$2"
}

# stat_get FILE LAYER.NAME: a counter from `toectl stats --json` output ("error" if absent).
stat_get() {
  local layer=${2%%.*} name=${2#*.}
  json_eval "$1" "d['counters']['$layer']['$name']"
}

# stat_now LAYER.NAME: the counter's value now.
stat_now() {
  local f=$NET_TMP/stat_now.json
  toectl_json "$f" stats || {
    echo error
    return 1
  }
  stat_get "$f" "$1"
}

# flow_get FILE PID PROTO FIELD: FIELD of the first flow of `toectl flows --json` owned by PID
# with protocol PROTO ("none" if there is none; addresses as addr:port).
flow_get() {
  json_eval "$1" "next((f for f in d['flows'] if f['pid'] == $2 and f['proto'] == '$3'), {}).get('$4', 'none')"
}

# flows_of FILE PID: how many flows PID owns.
flows_of() { json_eval "$1" "len([f for f in d['flows'] if f['pid'] == $2])"; }

# wait_for SECONDS CMD...: runs CMD every 50 ms until it succeeds (0) or the time is up (1).
wait_for() {
  local limit=$1 end
  shift
  end=$(($(date +%s%N) + limit * 1000000000))
  while :; do
    "$@" && return 0
    (($(date +%s%N) >= end)) && return 1
    sleep 0.05
  done
}

# peer_listening PORT [udp]: true once a kernel socket in the peer listens on PORT.
peer_listening() {
  if [ "${2:-}" = udp ]; then
    peer ss -Hlun "sport = :$1" 2>/dev/null | grep -q .
  else
    peer ss -Hltn "sport = :$1" 2>/dev/null | grep -q .
  fi
}

# ms_since T0_NS: milliseconds since T0 (from `date +%s%N`).
ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }

# wait_exit PID MS [T0_NS]: waits up to MS milliseconds after T0 (default: now) for PID, a child
# of this shell, to exit, polling every 10 ms. Sets WAIT_MS (milliseconds from T0 to the exit, or
# "timeout") and WAIT_STATUS (its exit status; empty on timeout). Not for $(...): it sets variables.
wait_exit() {
  local pid=$1 limit=$2 t0=${3:-$(date +%s%N)}
  WAIT_STATUS=
  WAIT_MS=timeout
  while kill -0 "$pid" 2>/dev/null; do
    (($(ms_since "$t0") >= limit)) && return 1
    sleep 0.01
  done
  WAIT_MS=$(ms_since "$t0")
  wait "$pid" 2>/dev/null
  WAIT_STATUS=$?
  return 0
}
