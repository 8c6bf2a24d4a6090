#!/usr/bin/env bash
# Proves that the engine needs nothing from outside but memcpy, memset, memcmp and memmove: links
# the given static libraries (every member, --whole-archive) into one relocatable object against
# nothing, lists the symbols still undefined, and fails on any other one: a libc function, a libgcc
# helper (__aeabi_uldivmod, __udivdi3: a 64-bit division; __aeabi_l2d, __floatdidf, __adddf3:
# floating point; __clzdi2: a bit builtin without an instruction), anything.
#
#   firmware/linkcheck.sh LIB.a...       TOE_FW_TOOL_PREFIX=arm-none-eabi- (ld and nm to use)
#   firmware/linkcheck.sh --self-test    shows that it does fail: a 64-bit division and a double
#                                        added to the objects must be caught, for every installed
#                                        firmware compiler
set -euo pipefail

allowed="memcpy memset memcmp memmove"
prefix=${TOE_FW_TOOL_PREFIX:-}

undefined_of() { # LIB.a... -> the sorted undefined symbols of their union
  local tmp
  tmp=$(mktemp -d)
  # shellcheck disable=SC2064
  trap "rm -rf '$tmp'" RETURN
  "${prefix}ld" -r -o "$tmp/all.o" --whole-archive "$@" --no-whole-archive
  "${prefix}nm" -u "$tmp/all.o" | awk '{print $NF}' | sort -u
}

check() { # LIB.a... ; prints a verdict, returns 1 on a forbidden symbol
  local syms bad=()
  syms=$(undefined_of "$@")
  for s in $syms; do
    case " $allowed " in
    *" $s "*) ;;
    *) bad+=("$s") ;;
    esac
  done
  if ((${#bad[@]})); then
    echo "linkcheck: FAIL: $* need symbols outside {$allowed}: ${bad[*]}" >&2
    echo "linkcheck: a 64-bit division (use src/engine/div64.h), floating point or a libc call" \
      "crept in; 'nm -u' on the objects shows which one uses it" >&2
    return 1
  fi
  echo "linkcheck: ok (${prefix%-}): undefined symbols are only: ${syms//$'\n'/ }"
}

if [ "${1:-}" = --self-test ]; then
  root=$(cd "$(dirname "$0")/.." && pwd)
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  printf '%s\n' '#include <stdint.h>' \
    'uint64_t fw_bad_div(uint64_t a, uint64_t b) { return a / b; }' \
    'double fw_bad_float(int64_t a) { return (double)a * 1.5; }' >"$tmp/bad.c"
  printf '%s\n' '#include <string.h>' \
    'void fw_good(void *d, const void *s, unsigned n) { memmove(d, s, n); }' >"$tmp/good.c"
  n=0
  for tc in "$root"/cmake/toolchain-cortex-m7.cmake "$root"/cmake/toolchain-riscv64.cmake; do
    cc=$(sed -n 's/^set(CMAKE_C_COMPILER \(.*\))$/\1/p' "$tc")
    flags=$(sed -n 's/^set(TOE_FW_ARCH_FLAGS "\(.*\)")$/\1/p' "$tc")
    command -v "$cc" >/dev/null || continue
    prefix=${cc%gcc}
    # shellcheck disable=SC2086
    "$cc" $flags --specs=picolibc.specs -O2 -c "$tmp/good.c" -o "$tmp/good.o"
    # shellcheck disable=SC2086
    "$cc" $flags --specs=picolibc.specs -O2 -c "$tmp/bad.c" -o "$tmp/bad.o"
    rm -f "$tmp/good.a" "$tmp/bad.a"
    "${prefix}ar" rc "$tmp/good.a" "$tmp/good.o"
    "${prefix}ar" rc "$tmp/bad.a" "$tmp/good.o" "$tmp/bad.o"
    check "$tmp/good.a" >/dev/null || { echo "linkcheck self-test: FAIL: memmove alone rejected ($cc)" >&2; exit 1; }
    if check "$tmp/bad.a" 2>/dev/null; then
      echo "linkcheck self-test: FAIL: a 64-bit division and a double passed ($cc)" >&2
      exit 1
    fi
    echo "linkcheck self-test: ok ($cc): rejects $(undefined_of "$tmp/bad.a" | grep -v '^mem' | tr '\n' ' ')"
    n=$((n + 1))
  done
  if [ "$n" = 0 ]; then
    echo "linkcheck self-test: FAIL: no firmware compiler installed (make deps)" >&2
    exit 1
  fi
  exit 0
fi

if [ $# = 0 ]; then
  echo "usage: $0 LIB.a... | --self-test" >&2
  exit 2
fi
check "$@"
