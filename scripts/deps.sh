#!/usr/bin/env bash
# Installs the Debian packages toekit's build, tests and demo need, and only those missing.
set -euo pipefail

# package: what needs it
pkgs=(
  cmake gcc make clang-format # build and formatting
  clang libclang-rt-14-dev # fuzzers (libFuzzer) and sanitizer runtimes
  iproute2 nftables ethtool   # namespaces, veth, keeping the kernel off the device's port
  iputils-ping netcat-openbsd # interop peers
  tshark tcpdump              # pcap checks
  libpcap-dev                 # toectl capture: tcpdump expressions compiled by pcap_compile
  python3 python3-scapy       # hand-made frames in interop tests
  hping3 iperf3               # floods and throughput
  curl                        # libtoe-preload tests (tests/net/test_preload_*.sh)
  nginx-light wrk             # interception tests and benchmarks: a real web server and load
  redis-server redis-tools    # ... a real key-value server and redis-benchmark
  sockperf                    # ... latency ping-pong
  busybox-static              # ... a statically linked client (wget) for the proxy
  libcap2-bin                 # setcap: an AT_SECURE program (tests/net/test_preload_secure.sh)
  libxdp-dev libbpf-dev pkg-config # toed's AF_XDP link driver (toed --link afxdp)
  gcc-arm-none-eabi picolibc-arm-none-eabi            # make firmware: Cortex-M7 and Cortex-A7
  gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf # ... and RISC-V 64 (docs/firmware.md)
  crossbuild-essential-s390x crossbuild-essential-i386 # make test-cross: big-endian and 32-bit
  qemu-user                                            # ... unit tests, run under qemu-user
  file                                                 # ... names what was built in the log
  qemu-system-arm                                      # make firmware-qemu: the bare-metal example
  bind9-dnsutils # dig: a libuv program's raw syscall(SYS_sendmmsg) (test_preload_syscall.sh)
  dnsmasq-base   # a DNS server in its default (wildcard, IP_PKTINFO) mode, preloaded (test_preload_cmsg.sh)
  openssh-server # sshd re-exec'ing per connection, preloaded, with scp from the peer (test_preload_sshd.sh)
  postgresql     # the postmaster forking backends, preloaded, with pgbench from the peer (test_preload_postgres.sh)
  rsync          # rsync --daemon forking per connection and rsync:// pulls (test_preload_rsyncd.sh)
  unbound        # a DNS server with SO_REUSEPORT and two threads, preloaded (test_preload_unbound.sh)
)
# (gcc-multilib would give 32-bit x86 too, but Debian makes it conflict with the cross compilers.)

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

if [ "$(id -u)" != 0 ]; then
  echo "deps: missing packages: ${missing[*]}; run 'make deps' as root to install them" >&2
  exit 1
fi

echo "deps: installing missing packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# wireshark-common asks whether non-root users may capture; answer no, without a prompt
echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
apt-get update -qq
# Server packages (nginx, redis) start their service on install; toekit's tests run their own
# instances inside namespaces, so the install must start nothing: a policy-rc.d that refuses every
# start, only for this install, and only when the machine has none of its own.
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  made_policy=1
fi
status=0
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || status=$?
[ "$made_policy" = 1 ] && rm -f "$policy"
if [ "$status" != 0 ]; then
  echo "deps: apt-get install failed (status $status); see its messages above" >&2
  exit "$status"
fi
echo "deps: done"
