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
  python3 python3-scapy       # hand-made frames in interop tests
  hping3 iperf3               # floods and throughput
  curl                        # libtoe-preload tests (tests/net/test_preload_*.sh)
)

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
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "deps: done"
