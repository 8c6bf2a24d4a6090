#!/usr/bin/env bash
# Boots the bare-metal example (fw_example.elf) on QEMU's mps2-an386 (Cortex-M4 + LAN9118) with
# its NIC on a TAP device inside a network namespace this script creates, and checks that the
# Linux kernel in that namespace gets answers from the engine: ping (ICMP echo) and a TCP echo
# (port 7) of a short line and of 256 KiB of random bytes. Addresses: 198.18.0.1 (Linux, TAP),
# 198.18.0.2 (the firmware). The namespace, the TAP device and QEMU are torn down on every exit.
# The code is built for Cortex-M7; the M4 of AN386 runs it (both ARMv7E-M, and the build uses no
# FPU). QEMU 7.2's AN500 (the M7 image) does not answer at the LAN9118's address 0x40200000.
#
#   firmware/example/run-qemu.sh [build-firmware-cortex-m7/example/fw_example.elf]   (root)
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
elf=${1:-$root/build-firmware-cortex-m7/example/fw_example.elf}
[ -f "$elf" ] || { echo "run-qemu: no $elf (make firmware builds it)" >&2; exit 2; }
command -v qemu-system-arm >/dev/null || { echo "run-qemu: qemu-system-arm missing (scripts/deps.sh)" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "run-qemu: needs root (network namespace, TAP)" >&2; exit 2; }

ns=toefw$$
tmp=$(mktemp -d /tmp/toefw.XXXXXX)
qpid=""
# shellcheck disable=SC2317 # called by the trap
cleanup() {
  [ -n "$qpid" ] && kill "$qpid" 2>/dev/null && wait "$qpid" 2>/dev/null
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

ip netns add "$ns"
ip -n "$ns" link set lo up
ip -n "$ns" tuntap add dev tap0 mode tap
ip -n "$ns" addr add 198.18.0.1/24 dev tap0
ip -n "$ns" link set tap0 up

ip netns exec "$ns" qemu-system-arm -M mps2-an386 -nographic -monitor none -serial none \
  -semihosting-config enable=on,target=native \
  -nic tap,ifname=tap0,script=no,downscript=no,model=lan9118,mac=02:00:5e:12:00:02 \
  -kernel "$elf" >"$tmp/console" 2>&1 &
qpid=$!

for _ in $(seq 1 120); do
  grep -q "fw: up" "$tmp/console" && break
  kill -0 "$qpid" 2>/dev/null || break
  sleep 0.5
done
if ! grep -q "fw: up" "$tmp/console"; then
  echo "run-qemu: FAIL: the firmware did not come up; its console:" >&2
  cat "$tmp/console" >&2
  exit 1
fi
sed 's/^/  firmware: /' "$tmp/console"

fail=0
if ip netns exec "$ns" ping -c 3 -W 5 198.18.0.2 >"$tmp/ping" 2>&1; then
  echo "run-qemu: ping ok: $(grep -o '[0-9]* received' "$tmp/ping"), $(grep rtt "$tmp/ping" | cut -d= -f2)"
else
  echo "run-qemu: FAIL: ping 198.18.0.2" >&2
  cat "$tmp/ping" >&2
  fail=1
fi

line="hello from the Linux kernel over TAP $$"
got=$(echo "$line" | ip netns exec "$ns" timeout 30 nc -N 198.18.0.2 7 || true)
if [ "$got" = "$line" ]; then
  echo "run-qemu: TCP echo ok (one line)"
else
  echo "run-qemu: FAIL: TCP echo of one line returned '$got'" >&2
  fail=1
fi

head -c 262144 /dev/urandom >"$tmp/bulk"
ip netns exec "$ns" timeout 120 nc -N 198.18.0.2 7 <"$tmp/bulk" >"$tmp/bulk.back" || true
if cmp -s "$tmp/bulk" "$tmp/bulk.back"; then
  echo "run-qemu: TCP echo ok (256 KiB, byte for byte)"
else
  echo "run-qemu: FAIL: TCP echo of 256 KiB: $(stat -c %s "$tmp/bulk.back") bytes back, differ" >&2
  fail=1
fi
sed -n '/fw: up/!s/^/  firmware: /p' "$tmp/console" | tail -5
exit "$fail"
