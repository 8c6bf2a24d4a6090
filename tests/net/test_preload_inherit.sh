#!/usr/bin/env bash
# Connections inherited across fork and exec (docs/interception.md "fork and exec", issue 13
# item 2). tests/net/preload_inherit.c runs preloaded in the device namespace (TOE_STRICT=1, so
# nothing falls back to the kernel) and the same program, not preloaded, is the client on the
# kernel in the peer namespace:
#  - a fork-per-connection server: the child echoes the connection its parent accepted (the
#    parent closed its copy at once); 64 MiB each way, SHA-256 equal; `toectl flows` names the
#    child as the connection's owner while it runs;
#  - an inetd-style server: the child dup2s the connection to stdin/stdout and execs `cat`
#    (preloaded again: it adopts what the old image handed on); 64 MiB each way, SHA-256 equal;
#    `toectl flows` names cat;
#  - after each server exited, the same port binds again at once (no share token holds it), freed
#    by the exit itself: each mode's child exit is seen through its pidfd in toed's epoll set
#    (transport.share_pidfd_exits moves) and no timer looks at live processes (share_pid_polls 0).
# Usage: bash tests/net/test_preload_inherit.sh BINDIR
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/transport_lib.sh"
source "$(dirname "$0")/preload_lib.sh"
NET_REQUIRED_TOOLS="ip timeout sha256sum cat $NET_PY"
net_init "$1" 300
tr_init
preload_init
PI=$NET_BINDIR/preload_inherit
[ -x "$PI" ] || net_die "no preload_inherit at $PI (build first)"

net_setup
start_toed_nopcap --ctl "$CTL"
wait_for 5 test -S "$CTL" || net_die "toed made no control socket at $CTL"

head -c $((64 << 20)) /dev/urandom >"$NET_TMP/in.bin"
IN_SHA=$(sha "$NET_TMP/in.bin")

# one MODE PORT OWNER_CHECK: a server of MODE serving one 64 MiB echo, then a restart on PORT.
one() {
  local mode=$1 port=$2 srv seen=none
  dev_bg timeout -k 2 120 "${PRE[@]}" "$PI" "$mode" "$NET_DEV_ADDR" "$port" 1 \
    >"$NET_TMP/$mode.out" 2>"$NET_TMP/$mode.err" </dev/null
  srv=$BG_PID
  rm -f "$NET_TMP/$mode.go"
  peer_bg timeout -k 2 120 env PI_HOLD="$NET_TMP/$mode.go" "$PI" client "$NET_DEV_ADDR" "$port" "$NET_TMP/in.bin" \
    "$NET_TMP/$mode.got" </dev/null 2>"$NET_TMP/$mode.client.err"
  local cli=$BG_PID
  # The owner while the connection is served (the client keeps it open until $mode.go exists):
  # the pid and command of its row. Until the child's first read it is the parent's (the only
  # holder then) or the device's (the parent closed, the child has not adopted yet); once the
  # child (or the cat it became) adopted it, it is the child's.
  local comm=$3 row child
  for _ in $(seq 200); do
    "$TOECTL" --ctl "$CTL" --json flows >"$NET_TMP/flows.json" 2>/dev/null
    row=$(json_eval "$NET_TMP/flows.json" "next(('%s %s' % (f['pid'], f['comm']) for f in d['flows'] if f['state'] == 'ESTAB' and f['local'] and f['local']['port'] == $port), 'none')")
    [ "$row" != none ] && [ "$row" != error ] && seen=$row
    child=$(awk '$1 == "child" {print $2; exit}' "$NET_TMP/$mode.err")
    [ -n "$child" ] && [ "$seen" = "$child $comm" ] && break
    kill -0 "$cli" 2>/dev/null || break
    sleep 0.05
  done
  touch "$NET_TMP/$mode.go"
  wait "$cli"
  check_eq "$mode: the client finished" "$?" 0
  wait "$srv"
  local rc=$?
  while IFS= read -r line; do
    case "$line" in
    "ok   - "*) net_ok "$mode: ${line#ok   - }" ;;
    "FAIL - "*) net_fail "$mode: ${line#FAIL - }" ;;
    esac
  done <"$NET_TMP/$mode.out"
  check_eq "$mode: server exit status" "$rc" 0
  no_sanitizer "$mode" "$NET_TMP/$mode.err"
  [ "$rc" = 0 ] || sed 's/^/#   stderr: /' "$NET_TMP/$mode.err" | head -10
  check_eq "$mode: 64 MiB echoed, SHA-256 equal" "$(sha "$NET_TMP/$mode.got")" "$IN_SHA"
  child=$(awk '$1 == "child" {print $2; exit}' "$NET_TMP/$mode.err")
  check_eq "$mode: toectl flows names the child ($comm) as the connection's owner" "$seen" \
    "$child $comm"
  # The restart: the same port, at once.
  preload_run "$mode-restart" dev timeout -k 2 20 "${PRE[@]}" "$PI" bind "$NET_DEV_ADDR" "$port"
  local exits polls
  exits=$(stat_now transport.share_pidfd_exits)
  polls=$(stat_now transport.share_pid_polls)
  check_ge "$mode: the child's bound tokens were freed on its exit, through its pidfd" \
    "$(num "$exits")" $((PIDFD_EXITS + 1))
  check_eq "$mode: no timed look at a live process's tokens (share_pid_polls)" "$polls" 0
  PIDFD_EXITS=$(num "$exits")
}

PIDFD_EXITS=0

one fork 7301 preload_inherit
one inetd 7302 cat

check_toed_exit
net_finish
