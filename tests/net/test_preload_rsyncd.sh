#!/usr/bin/env bash
# rsync over rsync:// with one end preloaded on the device and the other on the kernel in the peer
# namespace (issue 13: a daemon that forks per connection; rsync's receiving side, which forks a
# receiver that reads the connection while its parent, the generator, writes to it).
#  1. rsync --daemon --no-detach preloaded on the device (TOE_STRICT), a module in the temp dir: a
#     kernel client pulls a tree from it twice (two connections: the listener keeps accepting
#     after a fork) and pushes a tree to it (the daemon's child forks again: generator and
#     receiver share the connection); each copy compared with its source (names, modes, link
#     targets, every file's SHA-256);
#  2. a kernel rsync daemon in the peer, a preloaded client on the device pulls a tree from it (a
#     non-blocking connect, then the forked receiver reads); the copy compared likewise;
#  3. the daemon's port binds again at once after it exited.
# Usage: bash tests/net/test_preload_rsyncd.sh BINDIR
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/transport_lib.sh"
source "$(dirname "$0")/preload_lib.sh"
NET_REQUIRED_TOOLS="ip timeout sha256sum find $NET_PY"
net_init "$1" 120
tr_init
preload_init
RSYNC=$(command -v rsync)
if [ -z "$RSYNC" ]; then
  echo "skip - preloaded rsync (no rsync: install it, as 'make deps' does)"
  exit 0
fi
PI=$NET_BINDIR/preload_inherit
[ -x "$PI" ] || net_die "no preload_inherit at $PI (build first)"
PORT=8730

# make_tree DIR: nested directories, 40 small files, 4 of 1-4 MiB, an empty file, a symlink.
make_tree() {
  local d=$1 i
  mkdir -p "$d/a/b/c" "$d/empty_dir"
  for i in $(seq 40); do head -c $((i * 97)) /dev/urandom >"$d/a/small$i"; done
  for i in 1 2 3 4; do head -c $((i << 20)) /dev/urandom >"$d/a/b/big$i"; done
  : >"$d/a/b/c/empty"
  chmod 640 "$d/a/small7"
  ln -s ../a/b/big1 "$d/a/link"
}
# tree_sum DIR: every entry's type, mode, path and link target, then every file's SHA-256.
tree_sum() {
  (
    cd "$1" || exit 1
    find . -mindepth 1 -printf '%y %m %p %l\n' | LC_ALL=C sort
    find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum
  )
}
# same NAME A B: A and B hold the same tree.
same() {
  tree_sum "$2" >"$NET_TMP/sum.a"
  tree_sum "$3" >"$NET_TMP/sum.b"
  if [ -s "$NET_TMP/sum.a" ] && cmp -s "$NET_TMP/sum.a" "$NET_TMP/sum.b"; then
    net_ok "$1 ($(wc -l <"$NET_TMP/sum.a") lines of names, modes and hashes equal)"
  else
    net_fail "$1"
    diff "$NET_TMP/sum.a" "$NET_TMP/sum.b" | head -5 | sed 's/^/#   /'
  fi
}
# rsyncd_conf FILE DIR: a daemon config with module m at DIR, writable, as root, no chroot (and
# symlinks kept as they are: without a chroot the daemon would munge them).
rsyncd_conf() {
  cat >"$1" <<EOF
[m]
  path = $2
  read only = false
  uid = root
  gid = root
  use chroot = false
  munge symlinks = false
EOF
}

net_setup
tr_start_toed

make_tree "$NET_TMP/src"
mkdir -p "$NET_TMP/mod"
make_tree "$NET_TMP/mod/tree"

# 1. The daemon preloaded on the device, the kernel client in the peer.
rsyncd_conf "$NET_TMP/dev.conf" "$NET_TMP/mod"
dev_bg timeout -k 2 100 "${PRE[@]}" "$RSYNC" --daemon --no-detach --config="$NET_TMP/dev.conf" \
  --address="$NET_DEV_ADDR" --port="$PORT" --log-file="$NET_TMP/rsyncd.log" </dev/null \
  >"$NET_TMP/rsyncd.out" 2>"$NET_TMP/rsyncd.err"
DAEMON=$BG_PID
wait_for 10 grep -qs 'rsyncd version .* starting, listening on port' "$NET_TMP/rsyncd.log" || {
  sed 's/^/#   rsyncd: /' "$NET_TMP/rsyncd.log" "$NET_TMP/rsyncd.err" | tail -10
  net_die "the preloaded rsync daemon did not start"
}
peer timeout -k 2 60 "$RSYNC" -a "rsync://$NET_DEV_ADDR:$PORT/m/tree/" "$NET_TMP/pulled/" \
  2>"$NET_TMP/pull.err"
rc=$?
check_eq "kernel client pulls from the preloaded daemon: exit status" "$rc" 0
[ "$rc" = 0 ] || sed 's/^/#   rsync: /' "$NET_TMP/pull.err" | head -5
same "kernel client pulls from the preloaded daemon: the trees compare equal" "$NET_TMP/mod/tree" \
  "$NET_TMP/pulled"
peer timeout -k 2 60 "$RSYNC" -a "rsync://$NET_DEV_ADDR:$PORT/m/tree/" "$NET_TMP/pulled2/" \
  2>"$NET_TMP/pull2.err"
rc=$?
check_eq "kernel client pulls again (a second connection): exit status" "$rc" 0
[ "$rc" = 0 ] || sed 's/^/#   rsync: /' "$NET_TMP/pull2.err" | head -5
same "kernel client pulls again: the trees compare equal" "$NET_TMP/mod/tree" "$NET_TMP/pulled2"

peer timeout -k 2 60 "$RSYNC" -a "$NET_TMP/src/" "rsync://$NET_DEV_ADDR:$PORT/m/pushed/" \
  2>"$NET_TMP/push.err"
rc=$?
check_eq "kernel client pushes to the preloaded daemon: exit status" "$rc" 0
[ "$rc" = 0 ] || sed 's/^/#   rsync: /' "$NET_TMP/push.err" | head -5
same "kernel client pushes to the preloaded daemon: the trees compare equal" "$NET_TMP/src" \
  "$NET_TMP/mod/pushed"

# 2. A kernel daemon in the peer, the preloaded client on the device.
rsyncd_conf "$NET_TMP/peer.conf" "$NET_TMP/src"
peer_bg timeout -k 2 100 "$RSYNC" --daemon --no-detach --config="$NET_TMP/peer.conf" \
  --address="$NET_PEER_ADDR" --port="$PORT" --log-file="$NET_TMP/rsyncd.peer.log" </dev/null \
  >/dev/null 2>"$NET_TMP/rsyncd.peer.err"
wait_for 10 peer_listening "$PORT" || net_die "the kernel rsync daemon did not start"
dev timeout -k 2 60 "${PRE[@]}" "$RSYNC" -a "rsync://$NET_PEER_ADDR:$PORT/m/" "$NET_TMP/dev_pulled/" \
  2>"$NET_TMP/dev_pull.err"
rc=$?
check_eq "preloaded client pulls from the kernel daemon: exit status" "$rc" 0
[ "$rc" = 0 ] || sed 's/^/#   rsync: /' "$NET_TMP/dev_pull.err" | head -5
no_sanitizer "preloaded client" "$NET_TMP/dev_pull.err"
same "preloaded client pulls from the kernel daemon: the trees compare equal" "$NET_TMP/src" \
  "$NET_TMP/dev_pulled"

# 3. The daemon ends; its port is free at once.
kill -TERM "$DAEMON" 2>/dev/null
wait "$DAEMON" 2>/dev/null
no_sanitizer "rsync daemon" "$NET_TMP/rsyncd.err"
for f in rsyncd.err dev_pull.err; do
  if grep -q '^toe-preload' "$NET_TMP/$f"; then
    net_fail "$f: the library wrote to stderr"
    grep '^toe-preload' "$NET_TMP/$f" | head -5 | sed 's/^/#   /'
  fi
done
preload_run "restart" dev timeout -k 2 20 "${PRE[@]}" "$PI" bind "$NET_DEV_ADDR" "$PORT"

check_toed_exit
net_finish
