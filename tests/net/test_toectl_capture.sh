#!/usr/bin/env bash
# toectl capture: a pcap of what the device sees on the wire, streamed over the transport (ABI 1.2
# CAPTURE), while the peer pings the device and an offloaded TCP connection (toe-nc, a host client
# of the device) sends a file to a kernel nc on the peer.
#
#   bash tests/net/test_toectl_capture.sh BINDIR        (root; BINDIR holds toed, toectl, toe-nc)
#
# Six captures run at once: everything; --filter icmp --count 3; --filter "tcp port P" (stopped
# by SIGTERM); the issue's tcpdump expression 'tcp[13] & 2 != 0 and net 198.18.0.0/24' given as
# words after FILE (compiled by libpcap, run as classic BPF in the device: ABI 1.4); "icmp" into a
# pcapng; "tcp port P" with --snaplen 100. Checks: tshark reads each file with nothing malformed and
# checksums valid; the full capture has the echo requests and replies and the offloaded
# connection's three-way handshake, in both directions; --count gives exactly that many frames;
# every frame of a filtered capture matches its filter and the filtered capture has the handshake
# too; the tcpdump expression selects exactly the SYN and the SYN-ACK; the pcapng marks the 5
# echo requests inbound and the 5 replies outbound (frame.packet_flags_direction), the pcap has
# no directions; --snaplen 100 cuts every frame there and keeps the length on the wire; toectl's
# summary agrees with the file; usage errors (a filter libpcap refuses, one the device could not
# run, a snap length out of range, an unknown format) exit 2 saying why; a capture whose reader is stuck
# makes the device drop (and count) captured frames while a 16 MiB offloaded transfer still
# arrives intact; at most 8 captures run at once; a user allowed on the control socket but not root
# is refused with a clear message.
set -u
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/transport_lib.sh"

NET_REQUIRED_TOOLS="ip ping nc tshark timeout sha256sum $NET_PY"
net_init "${1:-}" 240
tr_init
tr_need "$TOE_NC"
TCP_PORT=5201

net_setup
tr_start_toed

# ---- usage -------------------------------------------------------------------------------------

"$TOECTL" --ctl "$CTL" capture >/dev/null 2>"$NET_TMP/err"
check_eq "capture without FILE: exit 2" "$?" 2
"$TOECTL" --ctl "$CTL" capture "$NET_TMP/x.pcap" --filter "tcp and port" >/dev/null 2>"$NET_TMP/err"
check_eq "bad filter: exit 2" "$?" 2
check "bad filter: libpcap's reason" grep -q 'bad filter "tcp and port": .*syntax error' "$NET_TMP/err"
"$TOECTL" --ctl "$CTL" capture "$NET_TMP/x.pcap" --count 0 >/dev/null 2>"$NET_TMP/err"
check_eq "--count 0: exit 2" "$?" 2
"$TOECTL" --ctl "$CTL" capture "$NET_TMP/x.pcap" ip protochain 6 >/dev/null 2>"$NET_TMP/err"
check_eq "a filter the device cannot run (protochain loops): exit 2" "$?" 2
check "protochain: says why" grep -q "a program the device does not run" "$NET_TMP/err"
for bad in 262145 -1 100k ""; do
  "$TOECTL" --ctl "$CTL" capture "$NET_TMP/x.pcap" --snaplen "$bad" >/dev/null 2>"$NET_TMP/err"
  check_eq "--snaplen '$bad': exit 2" "$?" 2
  check "--snaplen '$bad': says the range" grep -q "snaplen needs a number of bytes, 0..262144" \
    "$NET_TMP/err"
done
"$TOECTL" --ctl "$CTL" capture "$NET_TMP/x.pcap" --format erf >/dev/null 2>"$NET_TMP/err"
check_eq "--format erf: exit 2" "$?" 2
"$TOECTL" --ctl "$CTL" capture "$NET_TMP/x.pcap" --filter icmp arp >/dev/null 2>"$NET_TMP/err"
check_eq "a filter given twice: exit 2" "$?" 2

toectl_json "$NET_TMP/status.json" status
check_eq "status --json: capture granted (root)" \
  "$(json_eval "$NET_TMP/status.json" "'capture' in d['caps']")" 1

# ---- three captures while traffic runs -----------------------------------------------------------

# capture_bg NAME ARGS...: toectl capture into $NET_TMP/NAME.pcap in the device namespace; waits
# until the device confirmed the start. Sets CAP_PID.
capture_bg() {
  local name=$1
  shift
  # Bounded by its own --seconds, not by timeout(1): timeout would forward our SIGTERM and then
  # SIGKILL toectl 2 s later if the device (slow under ASan on a busy machine) took longer to
  # confirm the stop.
  dev_bg "$TOECTL" --ctl "$CTL" capture "$NET_TMP/$name.pcap" --seconds 60 "$@" \
    2>"$NET_TMP/$name.err" </dev/null
  CAP_PID=$BG_PID
  wait_for 10 grep -q "capturing on" "$NET_TMP/$name.err" ||
    net_fail "capture $name did not start: $(cat "$NET_TMP/$name.err")"
}
capture_bg all
CAP_ALL=$CAP_PID
capture_bg icmp --filter icmp --count 3
CAP_ICMP=$CAP_PID
capture_bg tcp --filter "tcp port $TCP_PORT"
CAP_TCP=$CAP_PID
capture_bg syn 'tcp[13] & 2 != 0 and net 198.18.0.0/24'
CAP_SYN=$CAP_PID
capture_bg dir --format pcapng icmp
CAP_DIR=$CAP_PID
capture_bg snap -s 100 --filter "tcp port $TCP_PORT"
CAP_SNAP=$CAP_PID

peer ping -c 5 -i 0.2 -q "$NET_DEV_ADDR" >"$NET_TMP/ping.out" 2>&1
check "ping through the device: 5 replies" grep -q "5 received" "$NET_TMP/ping.out"

# offloaded_transfer NAME BYTES: an offloaded connection: toe-nc (a client of the device) sends
# BYTES random bytes to a kernel nc on the peer's TCP_PORT; checks toe-nc's exit status and that
# they arrived intact (files $NET_TMP/NAME.{data,recv,nc.err}, blanks in NAME as '_').
offloaded_transfer() {
  local name=$1 bytes=$2 recv f=$NET_TMP/${1// /_}
  head -c "$bytes" /dev/urandom >"$f.data"
  peer_bg timeout -k 2 40 nc -l "$TCP_PORT" >"$f.recv" 2>/dev/null </dev/null
  recv=$BG_PID
  wait_for 5 peer_listening "$TCP_PORT" || net_fail "$name: kernel nc listening on $TCP_PORT"
  dev timeout -k 2 30 "$TOE_NC" -N "$NET_PEER_ADDR" "$TCP_PORT" <"$f.data" >/dev/null \
    2>"$f.nc.err"
  check_eq "$name: toe-nc exit 0" "$?" 0
  wait "$recv" 2>/dev/null
  check_eq "$name: the offloaded transfer of $bytes bytes arrived intact" \
    "$(sha256sum <"$f.recv" | cut -c1-64)" "$(sha256sum <"$f.data" | cut -c1-64)"
}
offloaded_transfer transfer 1048576

# The --count capture ended by itself after 3 ICMP frames.
wait_for 10 bash -c "! kill -0 $CAP_ICMP 2>/dev/null"
wait "$CAP_ICMP" 2>/dev/null
check_eq "--count 3: toectl exits 0 by itself" "$?" 0
for pid in "$CAP_ALL" "$CAP_TCP" "$CAP_SYN" "$CAP_DIR" "$CAP_SNAP"; do
  kill -TERM "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  check_eq "capture stopped by SIGTERM: exit 0" "$?" 0
done
sed 's/^/#   /' "$NET_TMP"/{all,icmp,tcp,syn,dir,snap}.err

# ---- what the files hold -----------------------------------------------------------------------

# capture_clean NAME: tshark finds nothing malformed or wrong in $NET_TMP/NAME.pcap. Flow control is not a
# finding (the kernel nc falling behind fills its window: "window full" is rated a warning). A
# capture from which the device dropped frames (its summary says so: a slow toectl on a busy
# machine) has holes tshark reports as unseen segments, so then only errors count (bad checksums,
# malformed frames).
# The transfers carry random bytes: tshark must not guess a protocol in them (its heuristic
# dissectors sometimes take them for Thrift and report "not enough data to decode").
net_tshark_prefs
NET_TSHARK_PREFS+=(-d "tcp.port==$TCP_PORT,data")
FLOWCTL="tcp.analysis.zero_window || tcp.analysis.window_full || tcp.analysis.zero_window_probe || tcp.analysis.zero_window_probe_ack"
# A D-SACK from the peer (RFC 2883; rated a warning) reports a segment it got twice. That is TCP
# working, not a bad capture, when the device did send that segment twice: a retransmission or a
# tail-loss probe (RFC 8985 7) that the peer's ACK, waiting in the ring while a loaded machine
# left toed unscheduled, would have made needless (seen at load 14: a TLP 16 ms after the ACK
# arrived). dsack_explained checks that each one is; any other is a finding.
DSACK="ip.src == $NET_PEER_ADDR && tcp.options.sack.dsack"
RETX="ip.src == $NET_DEV_ADDR && (tcp.analysis.retransmission || tcp.analysis.fast_retransmission || tcp.analysis.spurious_retransmission)"
dsack_explained() {
  local name=$1 pcap=$2 n bad
  n=$(tshark_count "$pcap" "$DSACK")
  [ "$n" = 0 ] && return 0
  # Relative sequence numbers: the peer's D-SACK edges are in the device's sequence space.
  bad=$(awk 'FILENAME == ARGV[1] { lo[$1] = lo[$1] " " $2; hi[$1] = hi[$1] " " $3; next }
    { split(lo[$1], l, " "); split(hi[$1], h, " "); ok = 0
      for (i in l) if (l[i] + 0 <= $2 + 0 && $3 + 0 <= h[i] + 0) ok = 1
      if (!ok) { print "#   frame " $4 ": D-SACK " $2 "-" $3 " (stream " $1 "), never sent twice" } }' \
    <(tshark_fields "$pcap" "$RETX" tcp.stream tcp.seq tcp.nxtseq) \
    <(tshark_fields "$pcap" "$DSACK" tcp.stream tcp.options.sack.dsack_le tcp.options.sack.dsack_re frame.number))
  check_eq "$name capture: each of the peer's $n D-SACKs reports a segment the device sent twice" \
    "$(grep -c . <<<"$bad")" 0
  [ -n "$bad" ] && echo "$bad"
  return 0
}
capture_clean() {
  local name=$1 dropped
  dropped=$(sed -n 's/.*and dropped \([0-9]*\).*/\1/p' "$NET_TMP/$name.err")
  if [ "${dropped:-0}" = 0 ]; then
    check_pcap_clean "$name capture" "$NET_TMP/$name.pcap" "!($FLOWCTL) && !($DSACK)"
    dsack_explained "$name" "$NET_TMP/$name.pcap"
  else
    net_log "$name: the device dropped $dropped frames from the capture: checking errors only"
    check_eq "$name capture: frames malformed or with errors" \
      "$(tshark_count "$NET_TMP/$name.pcap" '_ws.malformed || _ws.expert.severity >= "error"')" 0
  fi
}

A=$NET_TMP/all.pcap
D=$NET_DEV_ADDR
P=$NET_PEER_ADDR
SYN="tcp.flags.syn == 1 && tcp.flags.ack == 0 && ip.src == $D && tcp.dstport == $TCP_PORT"
SYNACK="tcp.flags.syn == 1 && tcp.flags.ack == 1 && ip.src == $P && tcp.srcport == $TCP_PORT"
# The counts of each file in one tshark pass (tshark_prefetch): a tshark start took 8 s of wall
# clock at load 18, and this test's 25 ran into its 240 s watchdog. The clean-capture filter is
# spelled as check_pcap_clean builds it, so that its count comes from the same pass.
CLEAN="($NET_BAD_FILTER) && (!($FLOWCTL) && !($DSACK))"
tshark_prefetch "$A" "frame" "icmp.type == 8 && ip.src == $P && ip.dst == $D" \
  "icmp.type == 0 && ip.src == $D && ip.dst == $P" "$SYN" "$SYNACK" \
  "tcp.flags.syn == 0 && ip.src == $D && tcp.dstport == $TCP_PORT" \
  "tcp.flags.fin == 1 && ip.src == $D && tcp.dstport == $TCP_PORT" "$CLEAN" "$DSACK"
tshark_prefetch "$NET_TMP/icmp.pcap" "frame" "icmp" "$CLEAN" "$DSACK"
tshark_prefetch "$NET_TMP/tcp.pcap" "frame" "!(tcp.port == $TCP_PORT)" "$SYN" "$SYNACK" "$CLEAN" \
  "$DSACK"
check "tshark reads the full capture" tshark -n -r "$A" -c 1 -q
check_ge "full: frames" "$(tshark_count "$A" "frame")" 20
check_eq "full: the 5 echo requests from the peer" \
  "$(tshark_count "$A" "icmp.type == 8 && ip.src == $P && ip.dst == $D")" 5
check_eq "full: the 5 echo replies of the device" \
  "$(tshark_count "$A" "icmp.type == 0 && ip.src == $D && ip.dst == $P")" 5
check_eq "full: the offloaded connection's SYN (sent by the device)" "$(tshark_count "$A" "$SYN")" 1
check_eq "full: the peer's SYN-ACK (received by the device)" "$(tshark_count "$A" "$SYNACK")" 1
check_ge "full: the handshake's ACK and data from the device" \
  "$(tshark_count "$A" "tcp.flags.syn == 0 && ip.src == $D && tcp.dstport == $TCP_PORT")" 1
check_ge "full: the device's FIN" \
  "$(tshark_count "$A" "tcp.flags.fin == 1 && ip.src == $D && tcp.dstport == $TCP_PORT")" 1
capture_clean all
line=$(grep "frames written" "$NET_TMP/all.err")
check_eq "full: toectl's summary counts the frames in the file" \
  "$(sed -n 's/.*: \([0-9]*\) frames written.*/\1/p' <<<"$line")" "$(tshark_count "$A" "frame")"

I=$NET_TMP/icmp.pcap
check_eq "--count 3: exactly 3 frames" "$(tshark_count "$I" "frame")" 3
check_eq "--filter icmp: every frame is ICMP" "$(tshark_count "$I" "icmp")" 3
capture_clean icmp

T=$NET_TMP/tcp.pcap
check_ge "--filter tcp port: frames" "$(tshark_count "$T" "frame")" 10
check_eq "--filter tcp port: nothing else" "$(tshark_count "$T" "!(tcp.port == $TCP_PORT)")" 0
check_eq "--filter tcp port: the SYN" "$(tshark_count "$T" "$SYN")" 1
check_eq "--filter tcp port: the SYN-ACK" "$(tshark_count "$T" "$SYNACK")" 1
capture_clean tcp

# One tshark run per file (each costs a second or more on a busy machine); the frames of these
# captures are also in the full one, which capture_clean checked.
S=$NET_TMP/syn.pcap
TAB=$'\t' # tshark -T fields separates with tabs
tshark_fields "$S" "" ip.src tcp.flags.syn tcp.flags.ack tcp.srcport tcp.dstport >"$S.txt"
check_eq "tcpdump expression (tcp[13] & 2 != 0 and net): exactly 2 frames" "$(wc -l <"$S.txt")" 2
check_eq "tcpdump expression: the SYN" \
  "$(grep -c "^$D${TAB}1${TAB}0${TAB}[0-9]*${TAB}$TCP_PORT\$" "$S.txt")" 1
check_eq "tcpdump expression: the SYN-ACK" \
  "$(grep -c "^$P${TAB}1${TAB}1${TAB}$TCP_PORT${TAB}[0-9]*\$" "$S.txt")" 1

N=$NET_TMP/dir.pcap
tshark_fields "$N" "" icmp.type ip.src frame.packet_flags_direction >"$N.txt"
check_eq "pcapng: 10 frames" "$(wc -l <"$N.txt")" 10
check_eq "pcapng: the 5 echo requests marked inbound" \
  "$(grep -c "^8${TAB}$P${TAB}0x0*1\$" "$N.txt")" 5
check_eq "pcapng: the 5 echo replies marked outbound" \
  "$(grep -c "^0${TAB}$D${TAB}0x0*2\$" "$N.txt")" 5
check_eq "pcapng: written as pcapng" "$(head -c 4 "$N" | od -An -tx1 | tr -d ' ')" 0a0d0d0a
check_eq "pcap (the default): no directions" \
  "$(tshark_count "$A" "frame.packet_flags_direction")" 0

C=$NET_TMP/snap.pcap
tshark_fields "$C" "" frame.cap_len frame.len >"$C.txt"
check_ge "--snaplen 100: frames" "$(wc -l <"$C.txt")" 10
check_eq "--snaplen 100: nothing kept past 100 bytes" "$(awk '$1 > 100' "$C.txt" | wc -l)" 0
check_ge "--snaplen 100: long frames cut at 100, their length kept" \
  "$(awk '$1 == 100 && $2 > 1000' "$C.txt" | wc -l)" 10

# --seconds: ends by itself (an ARP-only capture of an idle device may well hold no frame).
dev timeout -k 2 20 "$TOECTL" --ctl "$CTL" capture "$NET_TMP/sec.pcap" --seconds 1 --filter arp \
  2>"$NET_TMP/sec.err" </dev/null
check_eq "--seconds 1: toectl exits 0 by itself" "$?" 0
check "--seconds 1: a pcap tshark reads" tshark -n -r "$NET_TMP/sec.pcap" -q

# The device's counters: seven captures started.
toectl_json "$NET_TMP/stats.json" stats
check_eq "transport.captures" "$(stat_get "$NET_TMP/stats.json" transport.captures)" 7
check_ge "transport.capture_frames" "$(stat_get "$NET_TMP/stats.json" transport.capture_frames)" 30

# ---- a reader that does not keep up ---------------------------------------------------------------

# A capture whose output goes into a pipe nobody reads: toectl blocks after the pipe's 64 KiB and
# returns no buffers; the device must drop (and count) captured frames and carry its traffic as
# before. A 16 MiB offloaded transfer runs meanwhile and must arrive intact.
mkfifo "$NET_TMP/stuck.fifo"
exec 8<>"$NET_TMP/stuck.fifo" # held open, never read
dev_bg "$TOECTL" --ctl "$CTL" capture - >"$NET_TMP/stuck.fifo" 2>"$NET_TMP/stuck.err" </dev/null
STUCK=$BG_PID
wait_for 10 grep -q "capturing on" "$NET_TMP/stuck.err" || net_fail "stuck capture did not start"
offloaded_transfer "stuck capture" 16777216
toectl_json "$NET_TMP/stats2.json" stats
# Most of the frames the device handled meanwhile (the link's counters) found the capture full.
# In frames, not bytes: with TSO (toed --offload tso, the default) the device sends 64 KiB
# super-frames, so 16 MiB take some hundreds of frames rather than thousands.
link_frames() { echo $(($(stat_get "$1" link.rx_frames) + $(stat_get "$1" link.tx_frames))); }
during=$(($(link_frames "$NET_TMP/stats2.json") - $(link_frames "$NET_TMP/stats.json")))
check_ge "stuck capture: frames the device handled during the transfer" "$during" 200
check_ge "stuck capture: the device dropped most of them from the capture and counted them" \
  $(($(stat_get "$NET_TMP/stats2.json" transport.capture_dropped) - $(stat_get "$NET_TMP/stats.json" transport.capture_dropped))) \
  $((during / 2))
kill -KILL "$STUCK" 2>/dev/null
wait "$STUCK" 2>/dev/null
exec 8<&-
session_gone() {
  toectl_json "$NET_TMP/stats3.json" status &&
    [ "$(json_eval "$NET_TMP/stats3.json" "d['gauges']['transport.clients_attached']")" = 1 ]
}
wait_for 10 session_gone
check_eq "stuck capture: its session ended with toectl" \
  "$(json_eval "$NET_TMP/stats3.json" "d['gauges']['transport.clients_attached']")" 1

# ---- a bound on captures at once -----------------------------------------------------------------

CAPS8=()
for i in $(seq 8); do
  capture_bg "many$i" --filter "port 1"
  CAPS8+=("$CAP_PID")
done
dev timeout -k 2 20 "$TOECTL" --ctl "$CTL" capture "$NET_TMP/ninth.pcap" --seconds 1 \
  2>"$NET_TMP/ninth.err" </dev/null
check_eq "a ninth capture at once: exit 1" "$?" 1
check "a ninth capture at once: says the device runs as many as it allows" \
  grep -q "as many captures as it allows" "$NET_TMP/ninth.err"
for pid in "${CAPS8[@]}"; do kill -TERM "$pid" 2>/dev/null; done
for pid in "${CAPS8[@]}"; do wait "$pid" 2>/dev/null; done
dev timeout -k 2 20 "$TOECTL" --ctl "$CTL" capture "$NET_TMP/after.pcap" --seconds 1 \
  2>"$NET_TMP/after.err" </dev/null
check_eq "once they stopped, a capture starts again" "$?" 0

# ---- an unprivileged user ------------------------------------------------------------------------

NOBODY=(setpriv --reuid=65534 --regid=65534 --clear-groups)
if command -v setpriv >/dev/null && getent group nogroup >/dev/null &&
  "${NOBODY[@]}" test -x "$TOECTL"; then
  stop_toed
  chmod 711 "$NET_TMP"
  NET_QUIET=1
  tr_start_toed --ctl-group nogroup
  NET_QUIET=0
  dev timeout 10 "${NOBODY[@]}" "$TOECTL" --ctl "$CTL" capture /dev/null --count 1 \
    >/dev/null 2>"$NET_TMP/u.err"
  check_eq "unprivileged: capture, exit 1" "$?" 1
  check "unprivileged: says only root or toed's user may capture" \
    grep -q "lets only root or toed's own user capture packets" "$NET_TMP/u.err"
  sed 's/^/#   /' "$NET_TMP/u.err"
else
  echo "skip - unprivileged user check (no setpriv or nogroup, or toectl not executable by nobody)"
fi

stop_toed
check_eq "toed exits 0" "$NET_TOED_STATUS" 0
net_finish
