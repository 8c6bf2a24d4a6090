#!/usr/bin/env bash
# libtoe-preload's bulk send paths with a program of our own (tests/net/preload_bulk.c), run in the
# device namespace with TOE_STRICT=1 against a slow kernel reader in the peer (it waits half a
# second before it reads each connection, so the sends fill the device's and the library's send
# space and the kernel's partial-acceptance rules show):
#  - writev and sendmsg of 1,000 small pieces, and of 3 x 1 MiB, on a blocking socket (every call
#    takes its whole vector) and a non-blocking one (a prefix or EAGAIN, then the rest), and a
#    blocking sendmmsg of 4 vectors: SHA-256 at the peer equal to what was meant;
#  - sendfile of a 64 MiB file (TOE_TEST_BIG: 256 MiB): a NULL offset advances the file position,
#    an offset of its own leaves it alone, past the end gives the rest and then 0: SHA-256 equal;
#  - the vector checks once more on the kernel (not preloaded, in the peer namespace), so that they
#    describe the kernel's behaviour.
# Costs about 22 s (release) and 24 s (ASan) in make test on a 2-vCPU machine at load average 26;
# most of it is toed's start, the reader's five 0.5 s waits and the 64 MiB file.
# Usage: bash tests/net/test_preload_bulk.sh BINDIR
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/transport_lib.sh"
source "$(dirname "$0")/preload_lib.sh"
NET_REQUIRED_TOOLS="ip timeout ss sha256sum $NET_PY"
net_init "$1" 300
tr_init
preload_init
BULK=$NET_BINDIR/preload_bulk
[ -x "$BULK" ] || net_die "no preload_bulk at $BULK (build first)"
PORT=7300
FILE_MB=${TOE_TEST_BIG:+256}
FILE_MB=${FILE_MB:-64}

net_setup
start_toed_nopcap --ctl "$CTL"
wait_for 5 test -S "$CTL" || net_die "toed made no control socket at $CTL"

# The slow reader: one connection after another; each waits 0.5 s, then reads to the end and
# writes the SHA-256 of what it read to $NET_TMP/peer.N, then closes.
cat >"$NET_TMP/reader.py" <<'PY'
import hashlib, socket, sys, time
host, port, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((host, port))
s.listen(4)
n = 0
while True:
    c, _ = s.accept()
    time.sleep(0.5)
    h = hashlib.sha256()
    while True:
        b = c.recv(1 << 20)
        if not b:
            break
        h.update(b)
    n += 1
    with open("%s.%d" % (out, n), "w") as f:
        f.write(h.hexdigest() + "\n")
    c.close()
PY
peer_bg timeout -k 2 280 "$NET_PY" "$NET_TMP/reader.py" "$NET_PEER_ADDR" "$PORT" "$NET_TMP/peer" \
  >"$NET_TMP/reader.log" 2>&1 </dev/null
wait_for 10 peer_listening "$PORT" || net_die "the peer's reader did not start"

CONN=0
# got_sha: the SHA-256 the reader wrote for connection $CONN (once it has).
got_sha() {
  wait_for 30 test -s "$NET_TMP/peer.$CONN" || {
    echo "none"
    return
  }
  awk '{print $1}' "$NET_TMP/peer.$CONN"
}

for mode in block nb; do
  CONN=$((CONN + 1))
  preload_run "vec-$mode" dev timeout -k 2 120 "${PRE[@]}" "$BULK" vec "$NET_PEER_ADDR" "$PORT" "$mode" \
    "$NET_TMP/sent.$mode"
  check_eq "vec-$mode: the peer read what was sent (SHA-256)" "$(got_sha)" "$(sha "$NET_TMP/sent.$mode")"
done

# The same checks on the kernel itself (not preloaded, in the peer namespace, to the reader over
# its loopback): they describe the kernel's behaviour, not just ours.
for mode in block nb; do
  CONN=$((CONN + 1))
  preload_run "kernel-vec-$mode" peer timeout -k 2 120 env PRELOAD_BULK_KERNEL=1 "$BULK" vec "$NET_PEER_ADDR" "$PORT" "$mode" \
    "$NET_TMP/ksent.$mode"
  check_eq "kernel-vec-$mode: the peer read what was sent (SHA-256)" "$(got_sha)" "$(sha "$NET_TMP/ksent.$mode")"
done

head -c "$((FILE_MB * 1048576))" /dev/urandom >"$NET_TMP/file.bin" || net_die "cannot write the file"
CONN=$((CONN + 1))
preload_run file dev timeout -k 2 120 "${PRE[@]}" "$BULK" file "$NET_PEER_ADDR" "$PORT" "$NET_TMP/file.bin"
check_eq "file: the peer read the ${FILE_MB} MiB file (SHA-256)" "$(got_sha)" "$(sha "$NET_TMP/file.bin")"

check_toed_exit
net_finish
