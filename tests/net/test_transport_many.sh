#!/usr/bin/env bash
# Many clients at once: 64 host processes with 16 TCP connections each, concurrently, through one
# device to an echo server on the kernel peer.
#
#   bash tests/net/test_transport_many.sh BINDIR      (root; toed, toectl, multi_client)
#
# Each multi_client (tests/net/multi_client.c, over libtoe) attaches on its own, opens 16
# connections in one toe_poll() loop, sends each a pattern of its own (seeded per process and
# connection) and checks that exactly those bytes come back before the server's FIN. Checks: all
# 64 exit 0 with 16/16 connections intact; the echo server saw 1024 connections and echoed every
# byte; toed survived and still answers; toectl saw the 64 sessions at their peak and, at the end,
# no client sessions, no client sockets and no ESTAB flows.
#
# TOE_TEST_BIG=1 sends 1 MiB per connection (1 GiB each way in all; time limit 500 s, more than
# the sanitizer build needs on 2 cores); the default is 32 KiB (about 5 s). TOE_TEST_LIMIT sets
# the time limit in seconds.
set -u
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/transport_lib.sh"

NET_REQUIRED_TOOLS="ip ping ss timeout $NET_PY"
NCLIENTS=${TOE_TEST_CLIENTS:-64}
NCONNS=16
if [ "${TOE_TEST_BIG:-0}" = 1 ]; then
  BYTES=1048576
  LIMIT=${TOE_TEST_LIMIT:-500}
else
  BYTES=32768
  LIMIT=${TOE_TEST_LIMIT:-110}
fi
net_init "${1:-}" "$LIMIT"
tr_init
tr_need "$MULTI_CLIENT"
PORT=5401
TOTAL=$((NCLIENTS * NCONNS))

net_setup
# Room for every client (and toectl) in case toed's default limit is lower.
if "$NET_TOED" --help 2>&1 | grep -q -- '--max-clients'; then
  tr_start_toed --max-clients $((NCLIENTS + 16))
else
  tr_start_toed
fi

# The echo server: one thread, non-blocking sockets, selectors. It stops reading a connection
# while it has more than 256 KiB unsent for it (so a slow reader pushes back through TCP, not
# into the server's memory), echoes everything, and closes after the client's FIN once all is
# echoed. One line per finished connection in the log: "done BYTES".
cat >"$NET_TMP/echo.py" <<'EOF'
import selectors, socket, sys
port, log = int(sys.argv[1]), open(sys.argv[2], "w", buffering=1)
sel = selectors.DefaultSelector()
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("0.0.0.0", port))
ls.listen(4096)
ls.setblocking(False)
sel.register(ls, selectors.EVENT_READ, None)
log.write("listening\n")
HIGH = 256 * 1024

class Conn:
    def __init__(self, s):
        self.s, self.out, self.eof, self.total = s, bytearray(), False, 0

def update(c):
    ev = 0
    if not c.eof and len(c.out) < HIGH:
        ev |= selectors.EVENT_READ
    if c.out:
        ev |= selectors.EVENT_WRITE
    if ev == 0:  # everything echoed after the client's FIN
        sel.unregister(c.s)
        c.s.close()
        log.write("done %d\n" % c.total)
        return
    sel.modify(c.s, ev, c)

while True:
    for key, ev in sel.select():
        if key.data is None:
            while True:
                try:
                    s, _ = ls.accept()
                except BlockingIOError:
                    break
                s.setblocking(False)
                sel.register(s, selectors.EVENT_READ, Conn(s))
            continue
        c = key.data
        try:
            if ev & selectors.EVENT_READ:
                d = c.s.recv(65536)
                if d:
                    c.out += d
                    c.total += len(d)
                else:
                    c.eof = True
            if c.out:
                n = c.s.send(c.out)
                del c.out[:n]
        except (BlockingIOError, InterruptedError):
            pass
        except OSError as e:
            log.write("error %s\n" % e)
            sel.unregister(c.s)
            c.s.close()
            continue
        update(c)
EOF
peer_bg timeout -k 2 $((LIMIT - 5)) "$NET_PY" "$NET_TMP/echo.py" "$PORT" "$NET_TMP/echo.log" \
  >"$NET_TMP/echo.err" 2>&1 </dev/null
wait_for 5 peer_listening "$PORT" || net_die "echo server listening on $PORT"

# ---- 64 clients at once --------------------------------------------------------------------------

PIDS=()
T0=$(date +%s%N)
for i in $(seq "$NCLIENTS"); do
  dev_bg "$MULTI_CLIENT" -n "$NCONNS" -b "$BYTES" -t $((LIMIT - 30)) -s "$i" "$NET_PEER_ADDR" \
    "$PORT" >"$NET_TMP/mc.$i.out" 2>"$NET_TMP/mc.$i.err" </dev/null
  PIDS+=("$BG_PID")
done

# The peak: every client attached at once (sampled while they run).
PEAK=0
peak_sample() {
  local v
  v=$(stat_now transport.clients_attached)
  [[ "$v" =~ ^[0-9]+$ ]] && ((v > PEAK)) && PEAK=$v
  # Done sampling once every client has exited.
  local p
  for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && return 1; done
  return 0
}
wait_for $((LIMIT - 25)) peak_sample
ELAPSED=$(ms_since "$T0")

ok=0
intact=0
for i in $(seq "$NCLIENTS"); do
  pid=${PIDS[$((i - 1))]}
  if wait_exit "$pid" 5000 && [ "$WAIT_STATUS" = 0 ]; then
    ok=$((ok + 1))
  else
    net_log "client $i (pid $pid) status ${WAIT_STATUS:-still running}:"
    sed 's/^/#   /' "$NET_TMP/mc.$i.out" "$NET_TMP/mc.$i.err" | head -5
  fi
  n=$(sed -n 's|^multi_client: \([0-9]*\)/.*|\1|p' "$NET_TMP/mc.$i.out")
  intact=$((intact + ${n:-0}))
done
check_eq "clients exiting 0" "$ok" "$NCLIENTS"
check_eq "connections intact ($NCLIENTS x $NCONNS, $BYTES bytes each way, ${ELAPSED} ms)" \
  "$intact" "$TOTAL"
check_eq "the echo server finished every connection" "$(grep -c '^done ' "$NET_TMP/echo.log")" \
  "$TOTAL"
check_eq "the echo server echoed every byte" \
  "$(awk '/^done / { s += $2 } END { print s + 0 }' "$NET_TMP/echo.log")" $((TOTAL * BYTES))
check_eq "the echo server saw no errors" "$(grep -c '^error' "$NET_TMP/echo.log")" 0
check_ge "toectl saw the clients attached together (peak of transport.clients_attached)" \
  "$PEAK" $((NCLIENTS / 2))

# ---- the device afterwards -------------------------------------------------------------------------

check "toed still running" kill -0 "$NET_TOED_PID"
check "toed still answers ping" peer ping -c 1 -W 2 -q "$NET_DEV_ADDR"
settled() {
  toectl_json "$NET_TMP/stats.json" stats &&
    [ "$(stat_get "$NET_TMP/stats.json" transport.socks_inuse)" = 0 ] &&
    [ "$(stat_get "$NET_TMP/stats.json" transport.clients_attached)" = 1 ]
}
wait_for 3 settled
S=$NET_TMP/stats.json
check_eq "transport.clients_attached: toectl alone" "$(stat_get "$S" transport.clients_attached)" 1
check_eq "transport.socks_inuse: none" "$(stat_get "$S" transport.socks_inuse)" 0
check_ge "transport.sessions" "$(stat_get "$S" transport.sessions)" $((NCLIENTS + 1))
check_eq "transport.ended_abuse: none" "$(stat_get "$S" transport.ended_abuse)" 0
check_eq "transport.ended_protocol: none" "$(stat_get "$S" transport.ended_protocol)" 0
check_eq "transport.err_validation: none" "$(stat_get "$S" transport.err_validation)" 0
check_ge "tcp.active_opens" "$(stat_get "$S" tcp.active_opens)" "$TOTAL"
check_eq "tcp.curr_estab: none" "$(stat_get "$S" tcp.curr_estab)" 0
toectl_json "$NET_TMP/flows.json" flows
check_eq "flows: no ESTAB connection left" \
  "$(json_eval "$NET_TMP/flows.json" "len([f for f in d['flows'] if f['state'] == 'ESTAB'])")" 0
check_eq "flows: no client owns a flow" \
  "$(json_eval "$NET_TMP/flows.json" "len([f for f in d['flows'] if f['client_id'] != 0])")" 0

check_toed_exit
net_finish
