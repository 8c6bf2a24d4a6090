#!/usr/bin/env bash
# Measures the engine's code and RAM on the firmware targets, beside lwIP built by the same
# compiler with the same flags (docs/firmware.md, "Size and memory").
#
#   firmware/size.sh [LWIP_SRC]     LWIP_SRC: an lwIP source tree (the folder holding src/core) or
#                                   a .tar.gz/.zip of one; without it, `apt-get source lwip` is
#                                   tried in the scratch folder (needs deb-src in sources.list),
#                                   and the lwIP rows are left out if that fails too.
#
# Everything is built in a scratch folder that is removed at the end; nothing of lwIP is kept.
# For each target (Cortex-M7, RV64IMAC) and optimisation (-Os, -O2) it prints text/data/bss of
# libtoe_engine.a + libtoe_wire.a (all objects: an image linked with --gc-sections keeps less),
# the RAM toe_stack_mem_size() asks for (firmware/memsize.c: the defaults, "full", and a trimmed
# configuration: 64 TCP sockets, 512 buffers), and lwIP's text/data/bss for the same two sizings
# (its pools are static, so its RAM is its data + bss).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
lwip_arg=${1:-}
scratch=$(mktemp -d /tmp/toe-fwsize.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
jobs=${JOBS:-$(nproc)}

# ---- lwIP's source ------------------------------------------------------------------------
lwip=""
if [ -n "$lwip_arg" ]; then
  case "$lwip_arg" in
  *.tar.gz | *.tgz) mkdir "$scratch/lwip-src" && tar -xzf "$lwip_arg" -C "$scratch/lwip-src" ;;
  *.zip) mkdir "$scratch/lwip-src" && (cd "$scratch/lwip-src" && unzip -q "$lwip_arg") ;;
  *) cp -r "$lwip_arg" "$scratch/lwip-src" ;;
  esac
  lwip=$(dirname "$(find "$scratch/lwip-src" -path '*/src/core/tcp_in.c' | head -1)")
  lwip=${lwip%/src/core}
elif (cd "$scratch" && apt-get source -qq lwip >/dev/null 2>&1); then
  lwip=$(dirname "$(find "$scratch" -path '*/src/core/tcp_in.c' | head -1)")
  lwip=${lwip%/src/core}
fi
if [ -n "$lwip" ] && [ -f "$lwip/src/core/tcp_in.c" ]; then
  lwip_version=$(sed -n 's/^#define LWIP_VERSION_\(MAJOR\|MINOR\|REVISION\) *\([0-9]*\).*/\2/p' \
    "$lwip/src/include/lwip/init.h" | paste -sd.)
  echo "lwIP: $lwip_version from ${lwip_arg:-apt-get source lwip}"
else
  lwip=""
  echo "lwIP: no source (give a path: firmware/size.sh LWIP_SRC); its rows are left out" >&2
fi

# ---- lwIP's configuration: NO_SYS raw API, IPv4, ARP, ICMP, UDP, TCP with SACK (receive side:
# lwIP 2.x generates SACK blocks, LWIP_TCP_SACK_OUT, but does no SACK-based loss recovery), window
# scaling, timestamps, IP reassembly and fragmentation; no DHCP, DNS, IGMP, IPv6, sockets.
# $1 = TCP PCBs, $2 = pool buffers.
lwip_opts() {
  cat <<OPTS
#ifndef LWIPOPTS_H
#define LWIPOPTS_H
#define NO_SYS 1
#define SYS_LIGHTWEIGHT_PROT 0
#define LWIP_IPV4 1
#define LWIP_IPV6 0
#define LWIP_ARP 1
#define LWIP_ETHERNET 1
#define LWIP_ICMP 1
#define LWIP_UDP 1
#define LWIP_TCP 1
#define LWIP_RAW 0
#define LWIP_DHCP 0
#define LWIP_AUTOIP 0
#define LWIP_ACD 0
#define LWIP_IGMP 0
#define LWIP_DNS 0
#define LWIP_NETCONN 0
#define LWIP_SOCKET 0
#define LWIP_STATS 0
#define IP_REASSEMBLY 1
#define IP_FRAG 1
#define LWIP_TCP_SACK_OUT 1
#define LWIP_WND_SCALE 1
#define TCP_RCV_SCALE 2
#define LWIP_TCP_TIMESTAMPS 1
#define TCP_MSS 1460
#define TCP_WND (64 * TCP_MSS)
#define TCP_SND_BUF (64 * TCP_MSS)
#define TCP_SND_QUEUELEN 128
#define MEMP_NUM_TCP_SEG 256
#define MEMP_NUM_TCP_PCB $1
#define MEMP_NUM_TCP_PCB_LISTEN 16
#define MEMP_NUM_UDP_PCB 16
#define MEMP_NUM_PBUF 64
#define MEMP_NUM_REASSDATA 4
#define PBUF_POOL_SIZE $2
#define PBUF_POOL_BUFSIZE 1536
#define MEM_SIZE (64 * 1024)
#define MEM_ALIGNMENT 4
#define LWIP_CHECKSUM_ON_COPY 1
#endif
OPTS
}

lwip_build() { # target cc flags opt pcbs bufs -> "text data bss"
  local name=$1 cc=$2 flags=$3 opt=$4 pcbs=$5 bufs=$6 d
  d=$scratch/lwip-$name$opt-$pcbs
  mkdir -p "$d/arch"
  lwip_opts "$pcbs" "$bufs" >"$d/lwipopts.h"
  # A minimal port header: the platform hooks lwIP asks every port for.
  printf '%s\n' '#ifndef CC_H' '#define CC_H' '#include <stdint.h>' \
    '#define LWIP_PLATFORM_DIAG(x) do { } while (0)' \
    '#define LWIP_PLATFORM_ASSERT(x) do { for (;;) { } } while (0)' \
    '#define LWIP_RAND() ((u32_t)0x12345678)' '#endif' >"$d/arch/cc.h"
  local srcs=()
  for f in init def inet_chksum ip mem memp netif pbuf tcp tcp_in tcp_out timeouts udp; do
    srcs+=("$lwip/src/core/$f.c")
  done
  for f in etharp icmp ip4 ip4_addr ip4_frag; do srcs+=("$lwip/src/core/ipv4/$f.c"); done
  srcs+=("$lwip/src/netif/ethernet.c")
  local objs=()
  for s in "${srcs[@]}"; do
    local o
    o=$d/$(basename "$s" .c).o
    # shellcheck disable=SC2086
    "$cc" $flags --specs=picolibc.specs $opt -ffreestanding -fbuiltin -ffunction-sections \
      -fdata-sections -I"$d" -I"$lwip/src/include" -c "$s" -o "$o"
    objs+=("$o")
  done
  "${cc%gcc}size" -t "${objs[@]}" | awk 'END {print $1, $2, $3}'
}

engine_build() { # target opt -> "text data bss"
  local t=$1 opt=$2 b=$scratch/engine-$1$2
  cmake -S "$root/firmware" -B "$b" -DCMAKE_TOOLCHAIN_FILE="$root/cmake/toolchain-$t.cmake" \
    -DTOE_FW_OPT="$opt" >/dev/null
  cmake --build "$b" -j "$jobs" >/dev/null
  "$(sed -n 's/^set(TOE_FW_TOOL_PREFIX \(.*\))$/\1/p' "$root/cmake/toolchain-$t.cmake")size" -t \
    "$b/libtoe_engine.a" "$b/libtoe_wire.a" | awk 'END {print $1, $2, $3}'
}

# ---- toe_stack_mem_size() as each target computes it ---------------------------------------
memsize_lp64() { # RV64 (LP64) lays structs out as x86_64 does: the host's answer is the target's
  gcc -std=c11 -O1 -I"$root/include" -I"$root/src" "$root/firmware/memsize.c" \
    "$root"/src/engine/*.c "$root"/src/wire/*.c "$root"/src/common/*.c -o "$scratch/memsize-host"
  "$scratch/memsize-host"
}
memsize_cortex_m7() { # run on the target itself: MPS2 AN500 (Cortex-M7) under qemu-system-arm
  local b=$scratch/engine-cortex-m7-Os
  arm-none-eabi-gcc -mcpu=cortex-m7 -mthumb -mfloat-abi=soft --specs=picolibc.specs \
    --oslib=semihost -Os -DTOE_MEMSIZE_SEMIHOST -I"$root/include" -I"$root/src" \
    -Wl,--defsym=__flash=0x0 -Wl,--defsym=__flash_size=0x400000 \
    -Wl,--defsym=__ram=0x20000000 -Wl,--defsym=__ram_size=0x400000 \
    -Wl,--defsym=__stack_size=0x4000 "$root/firmware/memsize.c" "$b/libtoe_engine.a" \
    "$b/libtoe_wire.a" -o "$scratch/memsize-m7.elf"
  timeout 60 qemu-system-arm -M mps2-an500 -nographic -monitor none -serial none \
    -semihosting-config enable=on,target=native -kernel "$scratch/memsize-m7.elf" 2>&1
}

declare -A ram
row() { printf '| %-9s | %-3s | %-26s | %8s | %6s | %8s | %s |\n' "$@"; }

echo
row target opt build text data bss "RAM asked (full / trimmed)"
row --- --- --- --- --- --- ---
for t in cortex-m7 riscv64; do
  cc=$(sed -n 's/^set(CMAKE_C_COMPILER \(.*\))$/\1/p' "$root/cmake/toolchain-$t.cmake")
  flags=$(sed -n 's/^set(TOE_FW_ARCH_FLAGS "\(.*\)")$/\1/p' "$root/cmake/toolchain-$t.cmake")
  for opt in -Os -O2; do
    read -r tx da bs < <(engine_build "$t" "$opt")
    if [ -z "${ram[$t]:-}" ]; then
      if [ "$t" = cortex-m7 ]; then out=$(memsize_cortex_m7); else out=$(memsize_lp64); fi
      full=$(echo "$out" | awk '$1 == "full" {print $2}')
      trim=$(echo "$out" | awk '$1 == "trimmed" {print $2}')
      ram[$t]="$full / $trim"
    fi
    row "$t" "$opt" "toekit engine + wire" "$tx" "$da" "$bs" "${ram[$t]} (toe_stack_mem_size)"
    if [ -n "$lwip" ]; then
      read -r tx da bs < <(lwip_build "$t" "$cc" "$flags" "$opt" 1024 4096)
      row "$t" "$opt" "lwIP $lwip_version, 1024 PCB/4096 buf" "$tx" "$da" "$bs" "$((da + bs)) (data + bss)"
      read -r tx da bs < <(lwip_build "$t" "$cc" "$flags" "$opt" 64 512)
      row "$t" "$opt" "lwIP $lwip_version, 64 PCB/512 buf" "$tx" "$da" "$bs" "$((da + bs)) (data + bss)"
    fi
  done
done
