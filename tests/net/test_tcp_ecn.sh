#!/usr/bin/env bash
# ECN interop (RFC 3168): the kernel in the peer namespace, with net.ipv4.tcp_ecn=1, against
# toed --ecn on (ask in our own SYNs, agree when asked; the default, passive, answers through the
# same code and only does not ask, which tests/unit/engine/test_tcp_ecn.c covers). Topology of
# lib.sh (toed on wire0 <- veth -> kernel 198.18.0.2).
#
# nftables rules in the peer namespace mark part of the ECT(0) traffic CE, one rule each way:
#   - kernel -> toed (discard, 2 MiB): on the peer's output, so toed receives CE marks; toed must
#     echo ECE until the kernel's CWR (RFC 3168 6.1.3);
#   - toed -> kernel (chargen, 2 MiB): on the peer's input, so the kernel receives CE marks and
#     echoes ECE; toed must reduce its window once per window and send CWR (6.1.2);
#   - toed's own connection (toe-nc, 1 MiB) to a kernel listener: toed's SYN asks with ECE|CWR,
#     the kernel agrees, toed's data is ECT(0) and marked on the peer's input as above.
# Checked in the device's capture (one tshark pass): the kernel's SYN asks with ECE|CWR, toed's
# SYN-ACK answers ECE alone and is Not-ECT; both sides' data is ECT(0) (or CE where marked);
# toed's pure ACKs are Not-ECT; toed sends ACKs with ECE and segments with CWR; the kernel sends
# ECE and CWR. toed's counters agree (tcp.ecn_*), the data arrives intact, the capture is clean.
# Accurate ECN: the kernel is asked for tcp_ecn=3 (RFC 9768); this one refuses it (the AccECN
# code is in 6.18, the sysctl values that turn it on are not), which is logged, not judged.
# Runs in about 5 s of wall time on a quiet machine (the transfers are 2 MiB each way).
# Usage (as root): bash tests/net/test_tcp_ecn.sh BUILD/bin
set -u
# shellcheck source=tests/net/lib.sh
source "$(dirname "$0")/lib.sh"
NET_REQUIRED_TOOLS="ip ping tshark timeout nft $NET_PY"

net_init "${1:-}" 120
net_setup

MIB=$((1 << 20))
# The client runs on one CPU: a veth carries frames sent from two CPUs out of order (MACHINE-FACTS),
# which the receiver answers with SACKs and the sender with spurious retransmissions.
tool() { peer timeout -k 2 "$1" taskset -c 0 "$NET_PY" "$NET_LIB_DIR/tcp_tool.py" "${@:2}"; }

net_sysctl "$NET_PEER_NS" net.ipv4.tcp_ecn 1
check_eq "peer kernel: net.ipv4.tcp_ecn=1" "$(peer cat /proc/sys/net/ipv4/tcp_ecn)" 1
if peer sh -c 'echo 3 > /proc/sys/net/ipv4/tcp_ecn' 2>/dev/null; then
  net_log "this kernel takes tcp_ecn=3 (AccECN): not exercised here, back to 1"
  net_sysctl "$NET_PEER_NS" net.ipv4.tcp_ecn 1
else
  net_log "this kernel refuses net.ipv4.tcp_ecn=3: no AccECN negotiation to test against"
fi

# CE marks on about one ECT(0) packet in 8, in each direction (payload mangling of the IP
# header; nft fixes the header checksum).
peer nft -f - <<EOF || net_die "nft rules for CE marking"
table ip ecnmark {
  chain out {
    type filter hook output priority 0; policy accept;
    ip daddr $NET_DEV_ADDR tcp dport 9 ip ecn ect0 numgen random mod 8 < 1 counter ip ecn set ce
  }
  chain in {
    type filter hook input priority 0; policy accept;
    ip saddr $NET_DEV_ADDR tcp sport 19 ip ecn ect0 numgen random mod 8 < 1 counter ip ecn set ce
    ip saddr $NET_DEV_ADDR tcp dport 5001 ip ecn ect0 numgen random mod 8 < 1 counter ip ecn set ce
  }
}
EOF

start_toed --ecn on --service discard --service chargen
discard_out=$(tool 60 discard "$NET_DEV_ADDR" 9 --bytes $((2 * MIB)))
chargen_out=$(tool 60 chargen "$NET_DEV_ADDR" 19 --bytes $((2 * MIB)))
# toed's active open: a kernel listener that counts what it reads, toe-nc sending 1 MiB to it
peer timeout -k 2 30 "$NET_PY" -c '
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 5001))
s.listen(1)
print("listening", flush=True)
c, _ = s.accept()
n = 0
while True:
    b = c.recv(65536)
    if not b:
        break
    n += len(b)
print("received", n, flush=True)
' "$NET_PEER_ADDR" >"$NET_TMP/listener.out" 2>&1 &
net_bg_add $!
for _ in $(seq 50); do
  grep -q listening "$NET_TMP/listener.out" && break
  sleep 0.1
done
head -c $MIB /dev/zero | dev timeout -k 2 30 "$NET_BINDIR/toe-nc" --ctl "$NET_TMP/ctl.sock" -N \
  "$NET_PEER_ADDR" 5001 >/dev/null 2>"$NET_TMP/toe-nc.err"
nc_rc=$?
for _ in $(seq 50); do
  grep -q received "$NET_TMP/listener.out" && break
  sleep 0.1
done
marks=$(peer nft list table ip ecnmark 2>/dev/null)
sleep 0.3 # the last ACKs of the closes
check_toed_exit
toed_log_keep run

check_eq "discard: 2 MiB sent, closed cleanly" \
  "$(kv sent "$discard_out")/$(kv eof "$discard_out")/$(kv error "$discard_out")" "$((2 * MIB))/1/none"
check_eq "chargen: 2 MiB in the RFC 864 pattern, closed cleanly" \
  "$(kv pattern_ok "$chargen_out")/$(kv eof "$chargen_out")/$(kv error "$chargen_out")" "1/1/none"
check_eq "toe-nc to the kernel: exit status, bytes the kernel read" \
  "$nc_rc/$(sed -n 's/^received //p' "$NET_TMP/listener.out")" "0/$MIB"

D="ip.src == $NET_DEV_ADDR"
P="ip.src == $NET_PEER_ADDR"
F_PSYN="$P && tcp.flags.syn == 1 && tcp.flags.ack == 0 && tcp.flags.ece == 1 && tcp.flags.cwr == 1"
F_DSYNACK="$D && tcp.flags.syn == 1 && tcp.flags.ack == 1 && tcp.flags.ece == 1 && tcp.flags.cwr == 0 && ip.dsfield.ecn == 0"
F_DSYNACK_ALL="$D && tcp.flags.syn == 1 && tcp.flags.ack == 1"
F_DSYN="$D && tcp.flags.syn == 1 && tcp.flags.ack == 0 && tcp.flags.ece == 1 && tcp.flags.cwr == 1 && ip.dsfield.ecn == 0"
F_PSYNACK="$P && tcp.flags.syn == 1 && tcp.flags.ack == 1 && tcp.flags.ece == 1 && tcp.flags.cwr == 0"
F_DNC="$D && tcp.len > 0 && tcp.dstport == 5001 && !tcp.analysis.retransmission"
F_DNC_ECT="$D && tcp.len > 0 && tcp.dstport == 5001 && !tcp.analysis.retransmission && ip.dsfield.ecn == 2"
F_PDATA="$P && tcp.len > 0"
# (the kernel's retransmissions are Not-ECT, RFC 3168 6.1.5, as toed's are)
F_PDATA_NOTECT="$P && tcp.len > 0 && ip.dsfield.ecn == 0 && !tcp.analysis.retransmission"
F_PCE="$P && tcp.len > 0 && ip.dsfield.ecn == 3"
F_DDATA="$D && tcp.len > 0 && tcp.srcport == 19 && !tcp.analysis.retransmission"
F_DDATA_ECT="$D && tcp.len > 0 && tcp.srcport == 19 && !tcp.analysis.retransmission && ip.dsfield.ecn == 2"
F_DACK_ECT="$D && tcp.len == 0 && tcp.flags.syn == 0 && ip.dsfield.ecn != 0"
F_DRETX_ECT="$D && tcp.len > 0 && tcp.analysis.retransmission && ip.dsfield.ecn != 0"
F_DECE="$D && tcp.srcport == 9 && tcp.flags.syn == 0 && tcp.flags.ece == 1"
F_PCWR="$P && tcp.dstport == 9 && tcp.flags.syn == 0 && tcp.flags.cwr == 1"
F_PECE="$P && tcp.dstport == 19 && tcp.flags.syn == 0 && tcp.flags.ece == 1"
F_DCWR="$D && tcp.srcport == 19 && tcp.flags.syn == 0 && tcp.flags.cwr == 1"
# Reordering on the veth (see tool above) still shows as duplicate ACKs, SACKs and "segment not
# captured" on a loaded machine: TCP doing its job, not an ECN finding; anything else counts.
# A full or zero window is flow control (the discard service's reader behind the kernel's writer).
REORDER="tcp.analysis.window_full || tcp.analysis.zero_window || tcp.options.sack.dsack || tcp.analysis.duplicate_ack || tcp.analysis.lost_segment || tcp.analysis.ack_lost_segment || tcp.analysis.retransmission || tcp.analysis.spurious_retransmission || tcp.analysis.out_of_order || tcp.analysis.fast_retransmission"
BAD=$(pcap_clean_filter "!($REORDER)")
tshark_prefetch "$NET_PCAP" "$F_PSYN" "$F_DSYNACK" "$F_DSYNACK_ALL" "$F_DSYN" "$F_PSYNACK" "$F_DNC" "$F_DNC_ECT" "$F_PDATA" "$F_PDATA_NOTECT" \
  "$F_PCE" "$REORDER" "$F_DDATA" "$F_DDATA_ECT" "$F_DACK_ECT" "$F_DRETX_ECT" "$F_DECE" "$F_PCWR" "$F_PECE" "$F_DCWR" "$BAD"
n() { tshark_count "$NET_PCAP" "$1"; }

check_eq "kernel SYNs ask for ECN (ECE|CWR)" "$(n "$F_PSYN")" 2
check_eq "toed's SYN-ACKs agree (ECE, no CWR, Not-ECT), every one" \
  "$(n "$F_DSYNACK")/$(n "$F_DSYNACK_ALL")" "2/2"
check_eq "toed's own SYN asks for ECN (ECE|CWR, Not-ECT)" "$(n "$F_DSYN")" 1
check_eq "the kernel's SYN-ACK agrees (ECE, no CWR)" "$(n "$F_PSYNACK")" 1
dnc=$(n "$F_DNC")
check_ge "toed's data to the kernel listener captured" "$dnc" 10
check_eq "... all ECT(0)" "$(n "$F_DNC_ECT")" "$dnc"
check_ge "kernel data segments captured" "$(n "$F_PDATA")" 20
check_eq "kernel data: all ECT(0) or CE" "$(n "$F_PDATA_NOTECT")" 0
check_ge "kernel data marked CE on the way (nft)" "$(n "$F_PCE")" 1
ddata=$(n "$F_DDATA")
check_ge "toed data segments captured" "$ddata" 20
check_eq "toed's new data: all ECT(0)" "$(n "$F_DDATA_ECT")" "$ddata"
check_eq "toed's pure ACKs: Not-ECT" "$(n "$F_DACK_ECT")" 0
check_eq "toed's retransmissions: Not-ECT" "$(n "$F_DRETX_ECT")" 0
check_ge "toed echoes CE with ECE (discard)" "$(n "$F_DECE")" 1
check_ge "the kernel answers with CWR" "$(n "$F_PCWR")" 1
check_ge "the kernel echoes the marks of toed's data with ECE (chargen)" "$(n "$F_PECE")" 1
check_ge "toed sends CWR after reducing" "$(n "$F_DCWR")" 1
check_pcap_clean "device capture (reordering aside)" "$NET_PCAP" "!($REORDER)"

# nft's own counts of the packets it marked: chain out (towards toed), chain in (from toed)
marked_out=$(grep -o 'packets [0-9]*' <<<"$marks" | sed -n '1s/packets //p')
marked_in=$(grep -o 'packets [0-9]*' <<<"$marks" | sed -n '2s/packets //p')
check_ge "nft marked packets towards toed" "${marked_out:-0}" 1
check_ge "nft marked packets from toed" "${marked_in:-0}" 1
if engine_only "ECN counters"; then
  check_eq "tcp.ecn_negotiated (two passive opens, one active)" "$(toed_counter tcp.ecn_negotiated)" 3
  # every marked packet arrives as at least one CE segment (more if the link cut a super-frame)
  check_ge "tcp.ecn_ce_rcvd: every CE mark nft set was seen" "$(toed_counter tcp.ecn_ce_rcvd)" "${marked_out:-1}"
  check_ge "tcp.ecn_cwr_rcvd" "$(toed_counter tcp.ecn_cwr_rcvd)" 1
  check_ge "tcp.ecn_ece_rcvd" "$(toed_counter tcp.ecn_ece_rcvd)" 1
  check_ge "tcp.ecn_cwnd_reduced" "$(toed_counter tcp.ecn_cwnd_reduced)" 1
  check_ge "tcp.ecn_cwr_sent" "$(toed_counter tcp.ecn_cwr_sent)" 1
  check_ge "tcp.ecn_ect_sent" "$(toed_counter tcp.ecn_ect_sent)" "$((ddata + dnc))"
fi
net_log "frames showing reordering on the veth: $(n "$REORDER")"
net_finish
