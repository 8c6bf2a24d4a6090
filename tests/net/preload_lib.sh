# Shared code of the libtoe-preload tests (test_preload_*.sh, docs/interception.md): the
# environment that preloads the library into a program, the sanitizer build's special cases, and
# checks of what a preloaded program wrote. Sourced after lib.sh and transport_lib.sh, never run.

# preload_init: finds the build's library and sets
#  PRELOAD           the path of libtoe-preload.so (dies when it was not built);
#  PRELOAD_ASAN_RT   the ASan runtime the library links (empty in a release build);
#  PRELOAD_LIST      the LD_PRELOAD value: the ASan runtime first (ASan insists on coming before
#                    any other library, and the programs under test are not built with it), then
#                    the library, then the UBSan runtime;
#  PRE_BASE          (env LD_PRELOAD=... ASAN_OPTIONS=...): the prefix of a command that preloads
#                    the library (leak checks off: the programs under test are not ours);
#  PRE               PRE_BASE with TOE_CTL=$CTL and TOE_STRICT=1 (fail rather than fall back to
#                    the kernel), and TOE_PRELOAD_DEBUG=1 when it is set in the test's environment.
# Call after net_init and tr_init (CTL).
preload_init() {
  local ubsan_rt
  PRELOAD=$(cd "$NET_BINDIR/../lib" 2>/dev/null && pwd)/libtoe-preload.so
  [ -f "$PRELOAD" ] || net_die "no libtoe-preload.so at $PRELOAD (build first)"
  PRELOAD_LIST=$PRELOAD
  PRELOAD_ASAN_RT=$(ldd "$PRELOAD" 2>/dev/null | awk '/libasan/ {print $3; exit}')
  [ -n "$PRELOAD_ASAN_RT" ] && PRELOAD_LIST="$PRELOAD_ASAN_RT:$PRELOAD"
  ubsan_rt=$(ldd "$PRELOAD" 2>/dev/null | awk '/libubsan/ {print $3; exit}')
  [ -n "$ubsan_rt" ] && PRELOAD_LIST="$PRELOAD_LIST:$ubsan_rt"
  PRE_BASE=(env "LD_PRELOAD=$PRELOAD_LIST" "ASAN_OPTIONS=detect_leaks=0:verify_asan_link_order=0")
  PRE=("${PRE_BASE[@]}" "TOE_CTL=$CTL" TOE_STRICT=1 ${TOE_PRELOAD_DEBUG:+TOE_PRELOAD_DEBUG=1})
}

# preload_skip_under_asan PROGRAM: in the sanitizer build, says the test is skipped and exits 0.
# For tests of a program that cannot run with the ASan runtime preloaded (an uninstrumented curl
# deadlocks in glibc's setlocale before main, with or without our library; nginx likewise): the
# release build runs them (make test runs both), and test_preload_epoll.sh and
# test_preload_events.sh cover the library under the sanitizers. Call after preload_init.
preload_skip_under_asan() {
  if [ -n "$PRELOAD_ASAN_RT" ]; then
    echo "skip - preloaded $1 (a sanitizer build of the library: $1 cannot run with ASan)"
    exit 0
  fi
}

# no_sanitizer NAME FILE: fails NAME when FILE (a preloaded program's output) holds a sanitizer
# report, and shows its start.
no_sanitizer() {
  if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error:' "$2" 2>/dev/null; then
    net_fail "$1: sanitizer report"
    grep -E -A5 'AddressSanitizer|LeakSanitizer|runtime error:' "$2" | head -20 | sed 's/^/#   /'
  fi
}

# preload_lines FILE: how many lines the library wrote in FILE (a preloaded program's stderr).
preload_lines() { grep -c '^toe-preload' "$1" 2>/dev/null; }

# preload_run NAME CMD...: runs CMD (one of our check programs, which print "ok   - " and
# "FAIL - " lines), passes its lines on prefixed with NAME and counts them, then checks its exit
# status and that no sanitizer spoke; shows the start of its stderr when it failed.
preload_run() {
  local name=$1 out=$NET_TMP/$1.out
  shift
  "$@" >"$out" 2>"$NET_TMP/$name.err"
  local rc=$?
  local line
  while IFS= read -r line; do
    case "$line" in
    "ok   - "*) net_ok "$name: ${line#ok   - }" ;;
    "FAIL - "*) net_fail "$name: ${line#FAIL - }" ;;
    esac
  done <"$out"
  check_eq "$name: exit status" "$rc" 0
  no_sanitizer "$name" "$NET_TMP/$name.err"
  [ "$rc" = 0 ] || sed 's/^/#   stderr: /' "$NET_TMP/$name.err" | head -10
}
