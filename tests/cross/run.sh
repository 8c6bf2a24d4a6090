#!/usr/bin/env bash
# Builds the unit tests for another architecture and runs them (docs/firmware.md):
#   tests/cross/run.sh s390x [JOBS [full]]   big-endian 64-bit, under qemu-s390x (qemu-user)
#   tests/cross/run.sh i686 [JOBS [full]]    32-bit little-endian, under qemu-i386 (qemu-user)
# Without `full`, the tests labelled `slow` (minutes each under emulation; tests/cross/CMakeLists.txt)
# are left out.
# into build-cross-<target>/ of the repository. Needs the packages of scripts/deps.sh.
set -euo pipefail

target=${1:?usage: $0 s390x|i686 [JOBS]}
jobs=${2:-$(nproc)}
label=(-L quick)
[ "${3:-}" = full ] && label=()
root=$(cd "$(dirname "$0")/../.." && pwd)
tc=$root/cmake/toolchain-$target-linux-gnu.cmake
[ -f "$tc" ] || { echo "cross: no toolchain file $tc (targets: s390x, i686)" >&2; exit 2; }
build=$root/build-cross-$target

start=$(date +%s)
cmake -S "$root/tests/cross" -B "$build" -DCMAKE_TOOLCHAIN_FILE="$tc" >/dev/null
cmake --build "$build" -j "$jobs" >/dev/null
built=$(date +%s)
# The file utility names what was built, so a log shows the run was not the host's own.
echo "cross/$target: $(file -b "$build/test_checksum" 2>/dev/null | cut -d, -f1-2)"
(cd "$build" && ctest "${label[@]}" -j "$jobs" --output-on-failure)
echo "cross/$target: build $((built - start)) s, tests $(($(date +%s) - built)) s"
