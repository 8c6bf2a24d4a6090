#!/usr/bin/env bash
# The transport's device side (toed --ctl) against hostile and well-behaved host clients.
#
#  - the control socket: mode 0660 and --ctl-group; a user outside the group cannot attach, one in
#    it can but is not given the device-wide flow table (root is);
#  - hostile clients (tests/net/hostile_client.c, which speaks the ABI itself): broken hellos;
#    garbage, zeroed and reserved-field SQEs, out-of-range and stale handles, offsets in the
#    header, the rings or past the region, wrapping lengths, bad fill entries, scribbling over
#    the rings and the header: every bad descriptor gets its error completion (or is ignored) and
#    the session keeps working; a flood of bad descriptors, a broken ring index and a stray
#    control message end the session; random bytes over a whole region; toed survives them all;
#  - meanwhile two well-behaved clients move TCP data through the device to a kernel echo server
#    and a third accepts kernel connections and echoes them: every byte intact; UDP datagrams of
#    many sizes (in pieces of 2 KiB buffers) come back intact;
#  - client death: a client holding a connection is SIGKILLed; the kernel peer sees the reset
#    within a second and the device has freed the session's sockets;
#  - afterwards toed still answers ping and the UDP echo service, exits 0 on SIGTERM with no
#    sanitizer report, and its transport counters account for all of it.
# When libtoe's toe-nc is built next to toed, a transfer through it runs concurrently too.
#
# Usage: bash tests/net/test_transport_hostile.sh BINDIR
# TOE_TEST_BIG=1 moves 256 MiB per well-behaved client instead of 32 MiB.
source "$(dirname "$0")/lib.sh"
net_init "$1" 280
HC=$NET_BINDIR/hostile_client
[ -x "$HC" ] || net_die "no hostile_client in $NET_BINDIR (build first)"
command -v setpriv >/dev/null || net_die "missing tool setpriv (util-linux)"
net_setup

# The socket lives where other users can reach it (the temp dir is 0700).
CTLDIR=$NET_TMP/ctl
mkdir -p "$CTLDIR"
chmod 0711 "$NET_TMP"
chmod 0755 "$CTLDIR"
CTL=$CTLDIR/toed.sock
GROUP=nogroup
start_toed --service echo:7 --ctl "$CTL" --ctl-group "$GROUP" --poll-us 50

MB=$((1024 * 1024))
if [ "${TOE_TEST_BIG:-0}" = 1 ]; then BIG=$((256 * MB)); else BIG=$((32 * MB)); fi
net_log "well-behaved TCP clients move $((BIG / MB)) MiB each (TOE_TEST_BIG=1: 256 MiB)"

# kv KEY FILE: the value of a "key value" line.
kv() { awk -v k="$1" '$1 == k { print $2; exit }' "$2"; }
# hc NAME ARGS...: runs the client in the device namespace, output in $NET_TMP/NAME.out.
hc() {
  local name=$1
  shift
  dev timeout -k 2 60 "$HC" "$@" >"$NET_TMP/$name.out" 2>"$NET_TMP/$name.err"
  sed "s/^/#   $name: /" "$NET_TMP/$name.out" | head -80 >>"$NET_TMP/checks.log"
}
toed_alive() { kill -0 "$NET_TOED_PID" 2>/dev/null; }

# ---- peer side: kernel echo servers and a client -------------------------------------------
cat >"$NET_TMP/peer.py" <<'EOF'
import hashlib, os, socket, sys, threading, time
mode = sys.argv[1]
if mode == "tcp-echo":
    srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", int(sys.argv[2]))); srv.listen(64)
    def serve(c):
        try:
            while True:
                d = c.recv(1 << 20)
                if not d: break
                c.sendall(d)
            c.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        c.close()
    print("ready", flush=True)
    while True:
        c, _ = srv.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()
elif mode == "udp-echo":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    s.bind(("0.0.0.0", int(sys.argv[2])))
    print("ready", flush=True)
    while True:
        d, a = s.recvfrom(65535)
        s.sendto(d, a)
elif mode == "hold":
    # Accepts one connection, reads until it ends; prints how it ended and when (wall clock).
    srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", int(sys.argv[2]))); srv.listen(1)
    print("ready", flush=True)
    c, _ = srv.accept()
    print("accepted", flush=True)
    try:
        while True:
            d = c.recv(4096)
            if not d:
                print("end fin %.6f" % time.time(), flush=True); break
    except ConnectionResetError:
        print("end rst %.6f" % time.time(), flush=True)
elif mode == "clients":
    # N concurrent connections to HOST:PORT, each sends SIZE random bytes and checks the echo.
    host, port, n, size = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    ok = []
    def one(i):
        data = os.urandom(size)
        try:
            c = socket.create_connection((host, port), timeout=20)
            got = bytearray()
            def rd():
                while True:
                    d = c.recv(1 << 20)
                    if not d: break
                    got.extend(d)
            t = threading.Thread(target=rd); t.start()
            c.sendall(data); c.shutdown(socket.SHUT_WR); t.join(30); c.close()
            ok.append(hashlib.sha256(got).digest() == hashlib.sha256(data).digest())
        except OSError as e:
            print("client_error", e, flush=True); ok.append(False)
    ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    [t.start() for t in ts]; [t.join(60) for t in ts]
    print("clients_ok", sum(ok), flush=True)
EOF
peer_bg() { # NAME ARGS...: a peer.py server in the background, waits for "ready"
  local name=$1
  shift
  peer timeout -k 2 250 "$NET_PY" "$NET_TMP/peer.py" "$@" >"$NET_TMP/$name.out" 2>&1 &
  net_bg_add $!
  for _ in $(seq 50); do
    grep -q ready "$NET_TMP/$name.out" && return 0
    sleep 0.1
  done
  net_fail "$name did not start: $(cat "$NET_TMP/$name.out")"
}
peer_bg tcpecho tcp-echo 7001
peer_bg udpecho udp-echo 7002

# ---- the control socket ---------------------------------------------------------------------
check_eq "control socket mode" "$(stat -c %a "$CTL")" 660
check_eq "control socket group" "$(stat -c %G "$CTL")" "$GROUP"
dev setpriv --reuid 12345 --regid 12345 --clear-groups "$HC" stats "$CTL" >"$NET_TMP/outsider.out" 2>&1
check_eq "a user outside the group cannot attach (EACCES)" "$(kv stats_attach "$NET_TMP/outsider.out")" -13
dev setpriv --reuid nobody --regid nogroup --clear-groups "$HC" stats "$CTL" >"$NET_TMP/member.out" 2>&1
check_eq "a member of the group attaches" "$(kv stats_attach "$NET_TMP/member.out")" 0
check_eq "... without the flow table capability" "$(kv stats_caps_flows "$NET_TMP/member.out")" 0
check_eq "... STATS FLOWS refused (-EINVAL)" "$(kv stats_flows_res "$NET_TMP/member.out")" -22
check_ge "... STATS ENGINE answered" "$(kv stats_engine_bytes "$NET_TMP/member.out")" 1000

# ---- a baseline of well-behaved traffic ----------------------------------------------------
hc udp udp "$CTL" "$NET_PEER_ADDR" 7002 200
check_eq "UDP through the device: datagrams echoed intact" "$(kv udp_ok "$NET_TMP/udp.out")" 200
check_ge "UDP: large datagrams arrived in pieces (F_MORE)" "$(kv udp_pieces_max "$NET_TMP/udp.out")" 32
hc tcp0 tcp "$CTL" "$NET_PEER_ADDR" 7001 $((4 * MB))
check_eq "TCP through the device: 4 MiB echoed intact" "$(kv tcp_ok "$NET_TMP/tcp0.out")" 1
net_log "4 MiB round trip took $(kv tcp_ms "$NET_TMP/tcp0.out") ms"

# ---- hostile clients while good ones move data --------------------------------------------
good() { # NAME BYTES: a well-behaved TCP client in the background
  dev timeout -k 2 240 "$HC" tcp "$CTL" "$NET_PEER_ADDR" 7001 "$2" >"$NET_TMP/$1.out" 2>&1 &
  net_bg_add $!
  eval "PID_$1=$!"
}
good good1 "$BIG"
good good2 "$BIG"
dev timeout -k 2 200 "$HC" serve "$CTL" 7100 6 >"$NET_TMP/serve.out" 2>&1 &
SERVE_PID=$!
net_bg_add $SERVE_PID
for _ in $(seq 50); do grep -q listening "$NET_TMP/serve.out" && break; sleep 0.1; done
peer timeout -k 2 120 "$NET_PY" "$NET_TMP/peer.py" clients "$NET_DEV_ADDR" 7100 6 $((2 * MB)) \
  >"$NET_TMP/clients.out" 2>&1 &
CLIENTS_PID=$!
net_bg_add $CLIENTS_PID
TOENC_PID=
if [ -x "$NET_BINDIR/toe-nc" ]; then
  head -c $((8 * MB)) /dev/urandom >"$NET_TMP/nc.in"
  peer timeout -k 2 120 nc -l 7200 >"$NET_TMP/nc.out" 2>/dev/null &
  net_bg_add $!
  NC_PID=$!
  sleep 0.5
  dev timeout -k 2 120 "$NET_BINDIR/toe-nc" --ctl "$CTL" -N "$NET_PEER_ADDR" 7200 <"$NET_TMP/nc.in" \
    >/dev/null 2>"$NET_TMP/toenc.err" &
  TOENC_PID=$!
  net_bg_add $TOENC_PID
fi

hc hello hello "$CTL"
check_eq "hello: too short -> refused -EPROTO" "$(kv short "$NET_TMP/hello.out")" -71
check_eq "hello: bad magic -> -EPROTO" "$(kv bad_magic "$NET_TMP/hello.out")" -71
check_eq "hello: other major -> -EPROTONOSUPPORT" "$(kv bad_major "$NET_TMP/hello.out")" -93
check_eq "hello: size field lies -> -EPROTO" "$(kv bad_size "$NET_TMP/hello.out")" -71
check_eq "hello: ring size not a power of two -> -EINVAL" "$(kv sq_not_pow2 "$NET_TMP/hello.out")" -22
check_eq "hello: reserved byte set -> -EINVAL" "$(kv reserved "$NET_TMP/hello.out")" -22
check_eq "hello: no socket protocol -> -EPROTONOSUPPORT" "$(kv no_protocol "$NET_TMP/hello.out")" -93
check_eq "hello: oversized message -> -EPROTO" "$(kv oversized "$NET_TMP/hello.out")" -71
check_eq "hello: with a passed fd and bad magic -> -EPROTO" "$(kv passed_fd "$NET_TMP/hello.out")" -71
check_eq "hello: huge geometry clamped, attached" "$(kv huge_geometry "$NET_TMP/hello.out")" 0
check_range "hello: huge geometry's region capped (MiB)" "$(kv huge_region_mib "$NET_TMP/hello.out")" 1 64
check_eq "hello: a silent client is dropped" "$(kv silent "$NET_TMP/hello.out")" 1
check_eq "hello: a good one works afterwards (NOP)" "$(kv good_nop "$NET_TMP/hello.out")" 0

hc abuse abuse "$CTL" "$NET_PEER_ADDR"
check_eq "garbage SQEs: each refused with its own completion" "$(kv garbage_refused "$NET_TMP/abuse.out")" 16
check_eq "hostile descriptors: the expected error for each" \
  "$(kv specific_ok "$NET_TMP/abuse.out")" "$(kv specific_tried "$NET_TMP/abuse.out")"
check_eq "another client naming this one's handle: -EBADF" "$(kv other_client_handle "$NET_TMP/abuse.out")" -9
check_eq "... nor can it close it: -EBADF" "$(kv other_client_close "$NET_TMP/abuse.out")" -9
check_eq "... the owner's socket is untouched" "$(kv own_handle_after_other "$NET_TMP/abuse.out")" 0
check_eq "bad fill entries ignored, session alive (NOP)" "$(kv nop_after_bad_fill "$NET_TMP/abuse.out")" 0
check_eq "rings' entries and header scribbled: session alive (NOP)" "$(kv nop_after_scribble "$NET_TMP/abuse.out")" 0
check_eq "... and its socket answers (STATS SOCKET bytes)" "$(kv sock_stats_after_scribble "$NET_TMP/abuse.out")" 104
check_eq "a flood of bad descriptors ends the session" "$(kv flood_disconnected "$NET_TMP/abuse.out")" 1
check_ge "... the refusals before the end are visible" "$(kv flood_refusals_seen "$NET_TMP/abuse.out")" 1
check_eq "... region says GONE" "$(kv flood_dev_state "$NET_TMP/abuse.out")" 3
check_eq "... with -EPROTO" "$(kv flood_dev_status "$NET_TMP/abuse.out")" -71

hc killidx kill-index "$CTL"
check_eq "SQ producer index beyond the ring: session ended" "$(kv badindex_disconnected "$NET_TMP/killidx.out")" 1
check_eq "... dev_status -EPROTO" "$(kv badindex_dev_status "$NET_TMP/killidx.out")" -71
check_eq "FQ producer index backwards: session ended" "$(kv badfill_disconnected "$NET_TMP/killidx.out")" 1
check_eq "CQ consumer index ahead of the producer: session ended" "$(kv badcq_disconnected "$NET_TMP/killidx.out")" 1
hc ctlmsg kill-ctlmsg "$CTL"
check_eq "a message on the control socket after the hello ends the session" \
  "$(kv ctlmsg_disconnected "$NET_TMP/ctlmsg.out")" 1
for seed in 1 2 3; do
  hc scribble$seed scribble "$CTL" $seed
  check "random bytes over a whole region (seed $seed): toed alive" toed_alive
done

# ---- the good ones ----------------------------------------------------------------------------
wait "$PID_good1" 2>/dev/null
wait "$PID_good2" 2>/dev/null
for g in good1 good2; do
  check_eq "$g: $((BIG / MB)) MiB echoed intact through the device during the abuse" \
    "$(kv tcp_ok "$NET_TMP/$g.out")" 1
  net_log "$g: $(tr '\n' ' ' <"$NET_TMP/$g.out")"
done
if grep -q "tcp_ok 0" "$NET_TMP/good1.out" "$NET_TMP/good2.out"; then
  net_log "peer's view: $(peer ss -tni 2>&1 | tr '\n' ' ')"
  dev "$HC" stats "$CTL" | grep '^flow' | sed 's/^/# /'
fi
wait $CLIENTS_PID 2>/dev/null
wait $SERVE_PID 2>/dev/null
check_eq "kernel clients to a host listener: 6 x 2 MiB echoed intact" "$(awk '$1 == "clients_ok" {print $2}' "$NET_TMP/clients.out")" 6
check_eq "host listener accepted 6" "$(kv serve_accepted "$NET_TMP/serve.out")" 6
check_eq "host listener closed 6 gracefully" "$(kv serve_closed "$NET_TMP/serve.out")" 6
check_eq "host listener saw no errors" "$(kv serve_errors "$NET_TMP/serve.out")" 0
if [ -n "$TOENC_PID" ]; then
  wait "$TOENC_PID" 2>/dev/null
  wait "$NC_PID" 2>/dev/null
  check_eq "toe-nc (libtoe) sent 8 MiB intact to a kernel nc during the abuse" \
    "$(sha256sum <"$NET_TMP/nc.out" | cut -c1-64)" "$(sha256sum <"$NET_TMP/nc.in" | cut -c1-64)"
else
  echo "skip - toe-nc (libtoe) transfer: no toe-nc in $NET_BINDIR"
fi

# ---- client death ---------------------------------------------------------------------------------
peer_bg hold hold 7003
# `ip netns exec` execs the client, so $! is the client itself (a shell function would fork).
ip netns exec "$NET_DEV_NS" "$HC" hold "$CTL" "$NET_PEER_ADDR" 7003 >"$NET_TMP/holder.out" 2>&1 &
HOLDER=$!
net_bg_add $HOLDER
for _ in $(seq 100); do grep -q holding "$NET_TMP/holder.out" && break; sleep 0.05; done
check_eq "holder connected" "$(kv hold_connect "$NET_TMP/holder.out")" 0
T0=$(date +%s.%N)
kill -KILL $HOLDER
wait $HOLDER 2>/dev/null
for _ in $(seq 40); do grep -q '^end' "$NET_TMP/hold.out" && break; sleep 0.05; done
check_eq "killed client: the kernel peer sees a reset" "$(awk '$1 == "end" {print $2}' "$NET_TMP/hold.out")" rst
T1=$(awk '$1 == "end" {print $3}' "$NET_TMP/hold.out")
MS=$(awk -v a="$T0" -v b="${T1:-0}" 'BEGIN { printf "%d", (b - a) * 1000 }')
check_range "... within a second (ms)" "$MS" 0 1000
hc after stats "$CTL"
check_eq "... the device freed its sockets (transport.socks_inuse)" \
  "$(kv transport.socks_inuse "$NET_TMP/after.out")" 0
check_eq "... and its session (only the asking client attached)" \
  "$(kv transport.clients_attached "$NET_TMP/after.out")" 1

# ---- the device is fine ---------------------------------------------------------------------------
check "toed still answers ping" peer ping -c 3 -i 0.2 -W 2 -q "$NET_DEV_ADDR"
out=$(peer_py 30 udp_tool.py echo --port 7 --count 50 --max 1472 --timeout 1 --retries 3 2>&1)
check_eq "toed's UDP echo service still answers" "$(awk '$1 == "ok" {print $2}' <<<"$out")" 50
hc udp2 udp "$CTL" "$NET_PEER_ADDR" 7002 20
check_eq "a new client still works (UDP)" "$(kv udp_ok "$NET_TMP/udp2.out")" 20

check_toed_exit
check_ge "transport.ended_abuse" "$(toed_counter transport.ended_abuse)" 1
check_ge "transport.ended_protocol" "$(toed_counter transport.ended_protocol)" 4
check_ge "transport.ended_client" "$(toed_counter transport.ended_client)" 8
# 16 garbage + 19 hostile + the flood's until the 65th strike (3 bad fill entries count too).
check_ge "transport.err_validation" "$(toed_counter transport.err_validation)" 60
check_ge "transport.err_badf" "$(toed_counter transport.err_badf)" 30
check_ge "transport.err_fault" "$(toed_counter transport.err_fault)" 6
check_ge "transport.fill_bad" "$(toed_counter transport.fill_bad)" 3
check_ge "transport.hello_refused" "$(toed_counter transport.hello_refused)" 9
check_ge "transport.socks_reset_on_end (the killed client's 3)" "$(toed_counter transport.socks_reset_on_end)" 3
check_ge "transport.rx_bytes" "$(toed_counter transport.rx_bytes)" $((2 * BIG))
check_ge "transport.tx_bytes" "$(toed_counter transport.tx_bytes)" $((2 * BIG))
check_eq "transport.clients_attached at exit" "$(toed_counter transport.clients_attached)" 0
check_eq "transport.socks_inuse at exit" "$(toed_counter transport.socks_inuse)" 0
net_log "toed transport summary: $(grep -o 'transport\.[a-z_]*=[0-9]*' "$NET_TOED_LOG" | tr '\n' ' ')"
net_finish
