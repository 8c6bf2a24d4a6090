#!/usr/bin/env bash
# Installation as a user does it (issue 14): a staged install, programs built against it through
# pkg-config and the CMake package talking to the installed toed, the uninstall, and the Debian
# package installed and removed with dpkg.
#
#   bash tests/net/test_install.sh BINDIR        (root; BINDIR is a build's bin/, e.g. build-san/bin)
#
# 1. `cmake --install BUILD --prefix /usr` with DESTDIR=stage (what `make install DESTDIR=stage
#    PREFIX=/usr` does after building): the files are where GNUInstallDirs puts them, the staged
#    binaries run from the stage (RUNPATH $ORIGIN/..), answer --version.
# 2. examples/ built with `pkg-config --cflags --libs libtoe` (PKG_CONFIG_SYSROOT_DIR=stage) and
#    with find_package(toekit); the staged toed runs in a namespace; the example client talks to
#    the kernel peer's echo through it, and the example server answers the peer's nc.
# 3. `make uninstall BUILD=... DESTDIR=stage` leaves the stage empty.
# 4. `cpack -G DEB`, `dpkg -i` (into the real /usr: removed again in every case by the EXIT trap),
#    the unit validated with systemd-analyze verify, `dpkg -r`: none of the package's files is
#    left, and dpkg no longer knows the package. Skipped if a toekit package was already installed
#    (it is not ours to remove).
set -u
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/transport_lib.sh"

NET_REQUIRED_TOOLS="ip ping nc timeout cc pkg-config cmake cpack dpkg dpkg-deb $NET_PY"
net_init "${1:-}" 240
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$(cd "$NET_BINDIR/.." && pwd)
STAGE=$NET_TMP/stage
DEB_INSTALLED=0

# Whatever happens, a package this test installed is removed again (before lib.sh's teardown).
ops_cleanup() {
  local rc=$?
  if [ "$DEB_INSTALLED" = 1 ]; then
    dpkg -r toekit >/dev/null 2>&1 || echo "# WARNING: dpkg -r toekit failed: remove it by hand"
    DEB_INSTALLED=0
  fi
  return $rc
}
trap 'ops_cleanup; net_cleanup' EXIT

# ---- 1. staged install --------------------------------------------------------------------------
DESTDIR=$STAGE cmake --install "$BUILD" --prefix /usr >"$NET_TMP/install.log" 2>&1
check_eq "cmake --install into the stage: exit 0" "$?" 0
LIBDIR=$(dirname "$(find "$STAGE/usr/lib" -name libtoe.so.1 | head -1)")
check "libtoe.so.1 installed" test -f "$LIBDIR/libtoe.so.1"
check "libtoe.so (link for -ltoe) installed" test -L "$LIBDIR/libtoe.so"
check "libtoe-preload.so installed" test -f "$LIBDIR/libtoe-preload.so"
for b in toed toectl toe-nc toe-impair toe-proxyd toe-run; do
  check "bin/$b installed" test -x "$STAGE/usr/bin/$b"
done
for h in toe.h abi.h errno.h engine.h counters.h pbuf.h steer.h tcp.h; do
  check "include/toe/$h installed" test -f "$STAGE/usr/include/toe/$h"
done
check "libtoe.pc installed" test -f "$LIBDIR/pkgconfig/libtoe.pc"
check "libtoe.pc names the prefix /usr" grep -qx 'prefix=/usr' "$LIBDIR/pkgconfig/libtoe.pc"
check "CMake package installed" test -f "$LIBDIR/cmake/toekit/toekitConfig.cmake"
check "systemd unit installed" test -f "$STAGE/usr/lib/systemd/system/toed@.service"
check "toe-run profiles installed" test -f "$STAGE/usr/share/toekit/profiles/latency.conf"
check "man pages installed (toed.8, toectl.1)" test -f "$STAGE/usr/share/man/man8/toed.8" -a -f "$STAGE/usr/share/man/man1/toectl.1"
check "bash completion installed for toectl" test -f "$STAGE/usr/share/bash-completion/completions/toectl"
check "unit names the installed toed" grep -q '^ExecStart=/usr/bin/toed ' \
  "$STAGE/usr/lib/systemd/system/toed@.service"
check "staged toectl: RUNPATH relative to itself" \
  bash -c "readelf -d '$STAGE/usr/bin/toe-nc' | grep -q 'RUNPATH.*\\\$ORIGIN/\\.\\./lib'"
resolved_libtoe() { readlink -f "$(ldd "$1" | awk '/libtoe\.so\.1/ {print $3; exit}')"; }
check_eq "staged toe-nc finds the staged libtoe" "$(resolved_libtoe "$STAGE/usr/bin/toe-nc")" \
  "$(readlink -f "$LIBDIR/libtoe.so.1")"
VER=$(awk -F'"' '/^#define TOE_VERSION "/ {print $2}' "$SRC/include/toe/toe.h")
check "staged toectl --version: $VER" bash -c "'$STAGE/usr/bin/toectl' --version | grep -qx 'toectl (toekit) $VER'"
check "staged toe-nc --version: libtoe $VER loaded" \
  bash -c "'$STAGE/usr/bin/toe-nc' --version | grep -q '^libtoe $VER '"
check "staged toe-run finds the staged preload" \
  bash -c "'$STAGE/usr/bin/toe-run' --version | grep -q 'preloaded: $LIBDIR/libtoe-preload.so'"

# ---- 2. programs built against the install ------------------------------------------------------
export PKG_CONFIG_SYSROOT_DIR=$STAGE PKG_CONFIG_LIBDIR=$LIBDIR/pkgconfig
check_eq "pkg-config --modversion libtoe" "$(pkg-config --modversion libtoe)" "$VER"
SANFLAGS=
if grep -q '^TOE_SANITIZE:BOOL=ON' "$BUILD/CMakeCache.txt" 2>/dev/null; then
  SANFLAGS="-fsanitize=address,undefined" # the staged libtoe is the sanitizer build's
fi
EX=$NET_TMP/examples
cp -r "$SRC/examples" "$EX"
# shellcheck disable=SC2046,SC2086
cc -std=c11 -D_DEFAULT_SOURCE -Wall -Wextra -Werror $SANFLAGS $(pkg-config --cflags libtoe) \
  "$EX/toe_echo_client.c" -o "$EX/client" $(pkg-config --libs libtoe) -Wl,-rpath,"$LIBDIR" \
  2>"$NET_TMP/cc.err"
check_eq "example client builds with pkg-config" "$?" 0
# shellcheck disable=SC2046,SC2086
cc -std=c11 -D_DEFAULT_SOURCE -Wall -Wextra -Werror $SANFLAGS $(pkg-config --cflags libtoe) \
  "$EX/toe_echo_server.c" -o "$EX/server" $(pkg-config --libs libtoe) -Wl,-rpath,"$LIBDIR" \
  2>>"$NET_TMP/cc.err"
check_eq "example server builds with pkg-config" "$?" 0
sed 's/^/#   /' "$NET_TMP/cc.err"
unset PKG_CONFIG_SYSROOT_DIR PKG_CONFIG_LIBDIR
CFLAGS="$SANFLAGS" LDFLAGS="$SANFLAGS" cmake -S "$EX" -B "$EX/build" -DCMAKE_PREFIX_PATH="$STAGE/usr" \
  >"$NET_TMP/cmake-ex.log" 2>&1 && cmake --build "$EX/build" >>"$NET_TMP/cmake-ex.log" 2>&1
check_eq "examples build with find_package(toekit)" "$?" 0
check_eq "the CMake build links the staged libtoe" "$(resolved_libtoe "$EX/build/toe_echo_client")" \
  "$(readlink -f "$LIBDIR/libtoe.so.1")"

net_setup
NET_TOED=$STAGE/usr/bin/toed # the installed daemon
tr_init
tr_start_toed
ECHO=7101
RST=7102
peer_bg timeout -k 2 100 "$NET_PY" "$(dirname "$0")/peer_servers.py" "$NET_PEER_ADDR" "$ECHO" "$RST" \
  >"$NET_TMP/peer.out" 2>&1
for _ in $(seq 50); do grep -q ready "$NET_TMP/peer.out" && break; sleep 0.1; done
out=$(dev timeout 20 env ASAN_OPTIONS=detect_leaks=0 "$EX/client" "$NET_PEER_ADDR" "$ECHO" \
  "hello from an installed libtoe" 2>"$NET_TMP/client.err")
check_eq "pkg-config client: exit 0" "$?" 0
check_eq "pkg-config client: the peer's echo through the installed toed" "$out" \
  "hello from an installed libtoe"
sed 's/^/#   /' "$NET_TMP/client.err"
dev_bg timeout 30 env ASAN_OPTIONS=detect_leaks=0 "$EX/build/toe_echo_server" 7103 1 \
  >"$NET_TMP/server.out" 2>&1
for _ in $(seq 50); do grep -q listening "$NET_TMP/server.out" && break; sleep 0.1; done
check "CMake-built server: listening" grep -q "listening on port 7103 (libtoe $VER)" "$NET_TMP/server.out"
got=$(printf 'ping through the device\n' | peer timeout 10 nc -N -w 5 "$NET_DEV_ADDR" 7103)
check_eq "CMake-built server: echoes the kernel peer's bytes" "$got" "ping through the device"
for _ in $(seq 50); do grep -q echoed "$NET_TMP/server.out" && break; sleep 0.1; done
check "CMake-built server: one connection served" grep -q "echoed 24 bytes" "$NET_TMP/server.out"
check_toed_exit

# ---- 3. uninstall -------------------------------------------------------------------------------
make -s -C "$SRC" uninstall BUILD="$BUILD" DESTDIR="$STAGE" >"$NET_TMP/uninstall.log" 2>&1
check_eq "make uninstall: exit 0" "$?" 0
left=$(find "$STAGE" \( -type f -o -type l \) | wc -l)
check_eq "make uninstall: no file left in the stage" "$left" 0
find "$STAGE" \( -type f -o -type l \) | head -5 | sed 's/^/#   left: /'

# ---- 4. the Debian package ----------------------------------------------------------------------
if dpkg-query -W -f='${Status}' toekit 2>/dev/null | grep -q "install ok"; then
  echo "skip - dpkg -i/-r: a toekit package is already installed on this machine (not ours)"
else
  (cd "$NET_TMP" && cpack -G DEB --config "$BUILD/CPackConfig.cmake" -B "$NET_TMP/deb") \
    >"$NET_TMP/cpack.log" 2>&1
  check_eq "cpack -G DEB: exit 0" "$?" 0
  DEB=$(ls "$NET_TMP"/deb/toekit_*.deb 2>/dev/null | head -1)
  check "the .deb is there" test -f "$DEB"
  dpkg-deb -c "$DEB" | awk '{print $6}' | sed 's,^\./,/,; s,/$,,' >"$NET_TMP/deb.files"
  check "the package holds /usr/bin/toed" grep -qx /usr/bin/toed "$NET_TMP/deb.files"
  check "the package holds libtoe.pc" grep -q '/pkgconfig/libtoe.pc$' "$NET_TMP/deb.files"
  # Only the package's own files and directories (not /usr, /usr/bin, ...) must go with it.
  : >"$NET_TMP/deb.new"
  while read -r f; do
    [ -n "$f" ] && [ ! -e "$f" ] && echo "$f" >>"$NET_TMP/deb.new"
  done <"$NET_TMP/deb.files"
  check_ge "files the package adds to this machine" "$(wc -l <"$NET_TMP/deb.new")" 10
  DEB_INSTALLED=1
  dpkg -i "$DEB" >"$NET_TMP/dpkg-i.log" 2>&1
  check_eq "dpkg -i: exit 0" "$?" 0
  check "installed: /usr/bin/toectl --version" bash -c "/usr/bin/toectl --version | grep -qx 'toectl (toekit) $VER'"
  check "installed: toe-nc finds libtoe" bash -c "/usr/bin/toe-nc --version | grep -q '^libtoe $VER '"
  check_eq "installed: pkg-config finds libtoe" "$(pkg-config --modversion libtoe 2>/dev/null)" "$VER"
  if command -v systemd-analyze >/dev/null; then
    systemd-analyze verify /usr/lib/systemd/system/toed@.service >"$NET_TMP/verify.log" 2>&1
    check_eq "systemd-analyze verify toed@.service: exit 0" "$?" 0
    grep -v '^$' "$NET_TMP/verify.log" | sed 's/^/#   /'
  else
    echo "skip - systemd-analyze verify (not installed)"
  fi
  dpkg -r toekit >"$NET_TMP/dpkg-r.log" 2>&1
  check_eq "dpkg -r: exit 0" "$?" 0
  DEB_INSTALLED=0
  left=0
  while read -r f; do
    if [ -e "$f" ] || [ -L "$f" ]; then
      echo "#   left behind: $f"
      left=$((left + 1))
    fi
  done <"$NET_TMP/deb.new"
  check_eq "dpkg -r: none of the package's files left" "$left" 0
  check "dpkg -r: the package is gone from dpkg's database" \
    bash -c "! dpkg-query -W -f='\${Status}' toekit 2>/dev/null | grep -q installed"
fi

net_finish
