#!/usr/bin/env bash
# OpenSSH's sshd preloaded on the device, the kernel's ssh and scp in the peer namespace (issue 13:
# the classic fork-and-exec server). sshd forks per connection and the child re-execs sshd with
# the connection on its stdin/stdout (the exec inheritance path: TOE_INHERIT), which forks again
# for privilege separation (a preauth child that chroots to /run/sshd and becomes the sshd user,
# then a child for the logged-in session). Checks:
#  - ssh runs a command (its output and exit status come back);
#  - scp of a 50 MiB file to the device and back, SHA-256 equal both ways;
#  - `toectl flows` names an sshd process other than the listener as the connection's owner, not
#    "(device)", while the session runs;
#  - after sshd exited, the port binds again at once;
#  - closefrom(3) in a preloaded program with a device session (as sshd's session child) leaves
#    the files it opens afterwards open (preload_inherit closefrom).
# sshd runs with a config file, host key and authorized key of its own in the test's temp dir
# (-D -e -f, UsePAM no, StrictModes no), as root with key login only; IPQoS none: the device
# sends with its own TOS and refuses IP_TOS (sshd would log the refusal and carry on).
# Usage: bash tests/net/test_preload_sshd.sh BINDIR
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/transport_lib.sh"
source "$(dirname "$0")/preload_lib.sh"
NET_REQUIRED_TOOLS="ip timeout sha256sum ssh scp ssh-keygen $NET_PY"
net_init "$1" 120
tr_init
preload_init
SSHD=/usr/sbin/sshd
if [ ! -x "$SSHD" ]; then
  echo "skip - preloaded sshd (no $SSHD: install openssh-server, as 'make deps' does)"
  exit 0
fi
id sshd >/dev/null 2>&1 || net_die "no user sshd (openssh-server's privilege separation user)"
PI=$NET_BINDIR/preload_inherit
[ -x "$PI" ] || net_die "no preload_inherit at $PI (build first)"
PORT=7322

# sshd's preauth child chroots into /run/sshd (the package makes it at boot with tmpfiles).
if [ ! -d /run/sshd ]; then
  mkdir -m 755 /run/sshd || net_die "cannot make /run/sshd (sshd's privilege separation dir)"
fi

S=$NET_TMP/ssh
mkdir -m 700 "$S"
ssh-keygen -q -t ed25519 -N '' -f "$S/host_key" || net_die "ssh-keygen (host key) failed"
ssh-keygen -q -t ed25519 -N '' -f "$S/id" || net_die "ssh-keygen (user key) failed"
cp "$S/id.pub" "$S/authorized_keys"
cat >"$S/sshd_config" <<EOF
Port $PORT
ListenAddress $NET_DEV_ADDR
HostKey $S/host_key
PidFile none
AuthorizedKeysFile $S/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
UseDNS no
PrintMotd no
PrintLastLog no
Subsystem sftp internal-sftp
IPQoS none
EOF
printf '%s %s\n' "[$NET_DEV_ADDR]:$PORT" "$(cut -d' ' -f1,2 "$S/host_key.pub")" >"$S/known_hosts"
SSH_OPTS=(-F /dev/null -i "$S/id" -o UserKnownHostsFile="$S/known_hosts" -o StrictHostKeyChecking=yes
  -o BatchMode=yes -o ConnectTimeout=10 -o LogLevel=ERROR)

net_setup
tr_start_toed
dev_bg timeout -k 2 100 "${PRE[@]}" "$SSHD" -D -e -f "$S/sshd_config" </dev/null >"$NET_TMP/sshd.out" \
  2>"$NET_TMP/sshd.err"
SSHD_PID=$BG_PID
for _ in $(seq 100); do
  grep -q 'Server listening' "$NET_TMP/sshd.err" && break
  kill -0 "$SSHD_PID" 2>/dev/null || break
  sleep 0.1
done
grep -q 'Server listening' "$NET_TMP/sshd.err" || {
  sed 's/^/#   sshd: /' "$NET_TMP/sshd.err" | head -20
  net_die "sshd did not start"
}
# The listening sshd: timeout's child.
LISTENER=$(ps -o pid= --ppid "$SSHD_PID" 2>/dev/null | head -1 | tr -d ' ')
[ -n "$LISTENER" ] || net_die "no sshd under timeout ($SSHD_PID)"

# 1. A command, its output and exit status.
out=$(peer timeout -k 2 30 ssh "${SSH_OPTS[@]}" -p "$PORT" "root@$NET_DEV_ADDR" \
  'echo "hello from $(uname -n)"; exit 7' 2>"$NET_TMP/ssh.err")
rc=$?
check_eq "ssh: the command's output came back" "$out" "hello from $(uname -n)"
check_eq "ssh: the command's exit status came back" "$rc" 7
[ "$rc" = 7 ] || sed 's/^/#   ssh: /' "$NET_TMP/ssh.err" | head -5

# 2. The owner of the connection in `toectl flows` while a session runs: an sshd that is not the
# listener (the re-exec'd child, or its privilege-separated children).
rm -f "$NET_TMP/go"
peer_bg timeout -k 2 60 ssh "${SSH_OPTS[@]}" -p "$PORT" "root@$NET_DEV_ADDR" \
  "for i in \$(seq 300); do [ -e $NET_TMP/go ] && break; sleep 0.1; done; echo done" \
  >"$NET_TMP/hold.out" 2>"$NET_TMP/hold.err" </dev/null
HOLD=$BG_PID
seen=none
for _ in $(seq 200); do
  "$TOECTL" --ctl "$CTL" --json flows >"$NET_TMP/flows.json" 2>/dev/null
  seen=$(json_eval "$NET_TMP/flows.json" "next(('%s %s' % (f['pid'], f['comm']) for f in d['flows'] if f['state'] == 'ESTAB' and f['local'] and f['local']['port'] == $PORT), 'none')")
  case "$seen" in
  *" sshd") [ "${seen%% *}" != "$LISTENER" ] && break ;;
  esac
  kill -0 "$HOLD" 2>/dev/null || break
  sleep 0.05
done
touch "$NET_TMP/go"
wait "$HOLD"
check_eq "ssh: the held session ended normally" "$?" 0
check_eq "ssh: the held session's output" "$(cat "$NET_TMP/hold.out")" done
owner_pid=${seen%% *}
owner_comm=${seen#* }
check_eq "toectl flows: the connection's owner is an sshd" "$owner_comm" sshd
if [[ "$owner_pid" =~ ^[0-9]+$ ]] && [ "$owner_pid" != "$LISTENER" ]; then
  net_ok "toectl flows: the owner ($owner_pid) is not the listening sshd ($LISTENER)"
else
  net_fail "toectl flows: the owner is '$seen' (the listening sshd is $LISTENER)"
fi

# 3. scp, 50 MiB each way (the issue's figure) (scp's default SFTP protocol: sshd's internal-sftp).
head -c $((50 << 20)) /dev/urandom >"$NET_TMP/up.bin"
UP_SHA=$(sha "$NET_TMP/up.bin")
peer timeout -k 2 60 scp -q "${SSH_OPTS[@]}" -P "$PORT" "$NET_TMP/up.bin" \
  "root@$NET_DEV_ADDR:$NET_TMP/on_device.bin" 2>"$NET_TMP/scp_up.err"
check_eq "scp to the device: exit status" "$?" 0
check_eq "scp to the device: 50 MiB, SHA-256 equal" "$(sha "$NET_TMP/on_device.bin")" "$UP_SHA"
peer timeout -k 2 60 scp -q "${SSH_OPTS[@]}" -P "$PORT" "root@$NET_DEV_ADDR:$NET_TMP/on_device.bin" \
  "$NET_TMP/back.bin" 2>"$NET_TMP/scp_down.err"
check_eq "scp from the device: exit status" "$?" 0
check_eq "scp from the device: 50 MiB, SHA-256 equal" "$(sha "$NET_TMP/back.bin")" "$UP_SHA"

# 4. sshd ends; its port is free at once.
kill -TERM "$SSHD_PID" 2>/dev/null
wait "$SSHD_PID" 2>/dev/null
no_sanitizer "sshd" "$NET_TMP/sshd.err"
if grep -q '^toe-preload' "$NET_TMP/sshd.err"; then
  net_fail "sshd: the library wrote to stderr"
  grep '^toe-preload' "$NET_TMP/sshd.err" | head -5 | sed 's/^/#   /'
fi
preload_run "restart" dev timeout -k 2 20 "${PRE[@]}" "$PI" bind "$NET_DEV_ADDR" "$PORT"

# 5. What sshd's session child does before it serves SFTP, made deterministic: a device session
# attached, then closefrom(3), then files on the freed numbers. The library once left its session
# to die there; its pump then closed libtoe's numbers again, by then the SFTP server's file (the
# upload stopped after two writes with "No such file or directory": EBADF). About 1.5 s.
preload_run "closefrom" dev timeout -k 2 20 "${PRE[@]}" "$PI" closefrom "$NET_DEV_ADDR" "$PORT"

check_toed_exit
net_finish
