#!/usr/bin/env bash
# Runs every libFuzzer target in BUILD/ briefly on its seed corpus: parsers for SECS seconds, the
# stateful whole-engine targets (fuzz_engine*, fuzz_tcp*) for ENGINE_SECS. Fails if any target finds a crash.
set -euo pipefail
build=$(cd "${1:-build-fuzz}" && pwd)
secs=${2:-10}
engine_secs=${3:-60}
top=$(cd "$(dirname "$0")/.." && pwd)
shopt -s nullglob
targets=("$build"/bin/fuzz_*)
if ((${#targets[@]} == 0)); then
  echo "run-fuzzers: no fuzz targets in $build/bin" >&2
  exit 1
fi
fails=0
passed=0
for t in "${targets[@]}"; do
  name=$(basename "$t")
  corpus="$top/fuzz/corpus/$name"
  work=$(mktemp -d)
  [ -d "$corpus" ] && cp -r "$corpus"/. "$work"/ 2>/dev/null || true
  s=$secs
  case "$name" in fuzz_engine* | fuzz_tcp*) s=$engine_secs ;; esac
  echo "fuzz: $name for ${s}s"
  if (cd "$work" && "$t" -max_total_time="$s" -print_final_stats=1 -max_len=9000 "$work" \
    >"$work/log" 2>&1); then
    passed=$((passed + 1))
    grep -E 'stat::number_of_executed_units' "$work/log" | sed "s/^/  /" || true
  else
    fails=$((fails + 1))
    echo "fuzz: $name FAILED; last output:" >&2
    tail -n 40 "$work/log" >&2
    mkdir -p "$top/build-fuzz/crashes"
    cp "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$top/build-fuzz/crashes/" 2>/dev/null || true
  fi
  rm -rf "$work"
done
echo "fuzz: $passed passed, $fails failed"
[ "$fails" = 0 ]
