#!/usr/bin/env bash
# clang-format settles formatting: every C source and header in the tree must be formatted as the
# repository's .clang-format says. Prints the files that are not, and how to fix them.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 2
command -v clang-format >/dev/null || {
  echo "clang-format missing (make deps installs it)"
  exit 2
}
mapfile -t files < <(git ls-files '*.c' '*.h' 2>/dev/null || find include src tests fuzz bench -name '*.[ch]')
bad=0
for f in "${files[@]}"; do
  if ! clang-format --dry-run -Werror "$f" >/dev/null 2>&1; then
    echo "not formatted: $f"
    bad=$((bad + 1))
  fi
done
good=$((${#files[@]} - bad))
[ "$bad" = 0 ] || echo "run 'make format' (clang-format -i) and commit the result"
echo "$good passed, $bad failed"
[ "$bad" = 0 ]
