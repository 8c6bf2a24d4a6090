#!/usr/bin/env bash
# Children started without fork() that use an offloaded connection (issue 13, the last program
# patterns): tests/net/preload_spawn.c accepts one connection and has a child echo it with cat,
# started by posix_spawnp (file actions dup2'ing the connection to stdin and stdout, as inetd;
# with and without POSIX_SPAWN_SETSID), by system(), by popen(..., "r") (the parent writes what
# the pipe brings back to the connection), and by a raw syscall(SYS_clone, SIGCHLD) (a fork
# without the C library's fork hooks). glibc makes the first three with clone(CLONE_VM |
# CLONE_VFORK) and its own execve, which no wrapper of execve sees.
# Each mode runs twice with the same assertions: preloaded on the device (TOE_STRICT=1), and on
# the kernel (server and client in the peer namespace, over its own address). The client
# (preload_inherit client, not preloaded) sends 8 MiB and half-closes; what comes back must be
# SHA-256 equal, the server's checks pass and no sanitizer or library message appears. The
# server's listener stays open meanwhile (shared for the child's start, which does not keep it):
# afterwards it accepts a second connection (1 MiB) that the parent echoes itself.
# Cost: about 4 s of CPU (ten 8 MiB echoes; 21 s wall on a machine at load 22).
# Usage: bash tests/net/test_preload_spawn.sh BINDIR  (SPAWN_MODES="system popen": some modes only)
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/transport_lib.sh"
source "$(dirname "$0")/preload_lib.sh"
NET_REQUIRED_TOOLS="ip timeout sha256sum cat $NET_PY"
net_init "$1" 200
tr_init
preload_init
PS=$NET_BINDIR/preload_spawn
PI=$NET_BINDIR/preload_inherit
[ -x "$PS" ] || net_die "no preload_spawn at $PS (build first)"
[ -x "$PI" ] || net_die "no preload_inherit at $PI (build first)"

net_setup
start_toed_nopcap --ctl "$CTL"
wait_for 5 test -S "$CTL" || net_die "toed made no control socket at $CTL"

head -c $((8 << 20)) /dev/urandom >"$NET_TMP/in.bin"
IN_SHA=$(sha "$NET_TMP/in.bin")
head -c $((1 << 20)) /dev/urandom >"$NET_TMP/in2.bin"
IN2_SHA=$(sha "$NET_TMP/in2.bin")

# one WHERE MODE PORT: a preload_spawn server of MODE (WHERE: device or kernel) and the client.
one() {
  local where=$1 mode=$2 port=$3 name="$1 $2" tag="$1-$2" addr srv cli rc
  if [ "$where" = device ]; then
    addr=$NET_DEV_ADDR
    dev_bg timeout -k 2 60 "${PRE[@]}" "$PS" "$mode" "$addr" "$port" \
      >"$NET_TMP/$tag.out" 2>"$NET_TMP/$tag.err" </dev/null
  else
    addr=$NET_PEER_ADDR
    peer_bg timeout -k 2 60 "$PS" "$mode" "$addr" "$port" \
      >"$NET_TMP/$tag.out" 2>"$NET_TMP/$tag.err" </dev/null
  fi
  srv=$BG_PID
  wait_for 10 grep -q '^# listening' "$NET_TMP/$tag.out" || net_fail "$name: the server did not listen"
  peer_bg timeout -k 2 60 "$PI" client "$addr" "$port" "$NET_TMP/in.bin" "$NET_TMP/$tag.got" \
    </dev/null 2>"$NET_TMP/$tag.client.err"
  cli=$BG_PID
  wait "$cli"
  check_eq "$name: the client finished" "$?" 0
  wait_for 20 grep -q '^# second' "$NET_TMP/$tag.out" || net_fail "$name: no second accept"
  peer timeout -k 2 60 "$PI" client "$addr" "$port" "$NET_TMP/in2.bin" "$NET_TMP/$tag.got2" \
    </dev/null 2>"$NET_TMP/$tag.client2.err"
  check_eq "$name: the second client finished" "$?" 0
  wait "$srv"
  rc=$?
  while IFS= read -r line; do
    case "$line" in
    "ok   - "*) net_ok "$name: ${line#ok   - }" ;;
    "FAIL - "*) net_fail "$name: ${line#FAIL - }" ;;
    esac
  done <"$NET_TMP/$tag.out"
  check_eq "$name: server exit status" "$rc" 0
  [ "$rc" = 0 ] || sed 's/^/#   stderr: /' "$NET_TMP/$tag.err" | head -10
  check_eq "$name: 8 MiB echoed, SHA-256 equal" "$(sha "$NET_TMP/$tag.got")" "$IN_SHA"
  check_eq "$name: then 1 MiB echoed by the parent on its listener's next connection" \
    "$(sha "$NET_TMP/$tag.got2")" "$IN2_SHA"
  no_sanitizer "$name" "$NET_TMP/$tag.err"
  if grep -q '^toe-preload' "$NET_TMP/$tag.err"; then
    net_fail "$name: the library wrote to stderr"
    grep '^toe-preload' "$NET_TMP/$tag.err" | head -5 | sed 's/^/#   /'
  fi
}

port=7400
for mode in ${SPAWN_MODES:-spawn spawn-setsid system popen clone}; do
  one kernel "$mode" "$port"
  one device "$mode" "$port"
  port=$((port + 1))
done

check_toed_exit
net_finish
