#!/usr/bin/env bash
# UDP echo in bursts: a backlog of datagrams that reaches toed all at once is answered in one go.
# toed is stopped (SIGSTOP) while the peer sends 400 datagrams, which wait in the link's receive
# ring; on SIGCONT toed drains the ring in one wake-up, the engine queues all 400 on the echo
# socket (its queue limit is sized for a drain of the ring, not the engine's default 256), and the
# echo service answers the whole queue in one run, one burst at the next link flush:
#  - every datagram comes back byte-identical, none is dropped at the socket's queue;
#  - the service counts one burst of all 400 (svc_udp_echo_7.burst_max);
#  - the link was kicked far fewer times than it sent frames.
# Usage: bash tests/net/test_udp_echo_burst.sh BINDIR
source "$(dirname "$0")/lib.sh"
net_init "$1" 110
net_setup
start_toed --service echo:7

N=400
# The client: stops toed, sends N numbered datagrams, lets the kernel deliver them into toed's
# ring, resumes toed, collects the echoes for at most 10 s.
out=$(peer timeout -k 2 60 "$NET_PY" - "$NET_DEV_ADDR" "$NET_TOED_PID" "$N" <<'EOF' 2>&1
import os, select, signal, socket, sys, time
addr, pid, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
s.connect((addr, 7))
payload = lambda i: b"burst %05d " % i + bytes((i + k) & 0xff for k in range(52))
os.kill(pid, signal.SIGSTOP)
try:
    for i in range(n):
        s.send(payload(i))
    time.sleep(0.5)  # the kernel hands the frames to toed's ring meanwhile
finally:
    os.kill(pid, signal.SIGCONT)
got, bad = set(), 0
deadline = time.monotonic() + 10
while len(got) < n and time.monotonic() < deadline:
    if not select.select([s], [], [], 0.5)[0]:
        continue
    d = s.recv(2048)
    try:
        i = int(d[6:11])
    except ValueError:
        bad += 1
        continue
    if 0 <= i < n and d == payload(i):
        got.add(i)
    else:
        bad += 1
print("received", len(got))
print("bad", bad)
EOF
)
net_log "client: $(tr '\n' ' ' <<<"$out")"
check_eq "echo burst: every datagram came back" "$(awk '$1 == "received" {print $2}' <<<"$out")" $N
check_eq "echo burst: no reply damaged or unexpected" "$(awk '$1 == "bad" {print $2}' <<<"$out")" 0

check_toed_exit
check_eq "udp.rx_drop_queue_full: the echo socket's queue held the whole backlog" \
  "$(toed_counter udp.rx_drop_queue_full)" 0
if engine_only "toed service and driver counters"; then
  check_eq "svc_udp_echo_7: every datagram answered" \
    "$(toed_counter svc_udp_echo_7.tx_datagrams)" $N
  check_ge "svc_udp_echo_7.burst_max: the backlog answered in one run" \
    "$(toed_counter svc_udp_echo_7.burst_max)" $N
  kicks=$(toed_counter driver.tx_kicks)
  frames=$(toed_counter driver.tx_frames)
  net_log "driver: tx_frames $frames, tx_kicks $kicks ($(toed_counter svc_udp_echo_7.bursts) echo bursts)"
  check "driver: at least 10 frames per TX kick on average ($frames frames, $kicks kicks)" \
    test $((kicks * 10)) -le "$frames"
fi
net_finish
