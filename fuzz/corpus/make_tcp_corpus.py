#!/usr/bin/env python3
"""Writes the seed corpus of fuzz/fuzz_tcp.c into fuzz/corpus/fuzz_tcp/.

Record formats (see fuzz_tcp.c):
  segment (op < 0xf0): op, flags, seq offset (i16), ack offset (i16), window (u16), TSval delta
      (i8), payload length / 6, time step, extra -- 12 bytes, offsets relative to the target
      connection's rcv_nxt / snd_una; op bits: target (0 active, 1 passive, 2 listener, 3 closed
      port), 0x04 bad checksum, 0x08 timestamps, 0x10 SACK, 0x20 SYN options, 0x40 raw options.
  application (0xf0..0xfe): op, arg -- send, recv, shutdown(WR), shutdown(RD), close, abort,
      reopen, wait (op & 7) on connection arg & 1.
  raw frame (0xff): u16 length, bytes.
Standard library only.
"""
import os
import struct
import sys

FIN, SYN, RST, PSH, ACK, URG = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
TS, SACK, SYNOPT, RAWOPT, BADSUM = 0x08, 0x10, 0x20, 0x40, 0x04


def seg(target, flags, seq=0, ack=0, win=1024, tsd=0, dlen=0, t=1, extra=0, opt=TS, raw=b""):
    op = (target & 3) | opt
    if raw:
        op |= RAWOPT
        extra |= (len(raw) // 2) << 4
    return struct.pack("!BBhhHbBBB", op, flags, seq, ack, win, tsd, dlen, t, extra) + raw


def app(kind, arg=0):
    return bytes([0xF0 | kind, arg])


SEND, RECV, SHUT_WR, SHUT_RD, CLOSE, ABORT, REOPEN, WAIT = range(8)

SEEDS = {
    "in_order_data": seg(0, ACK | PSH, dlen=10) + seg(0, ACK | PSH, dlen=200) + app(RECV),
    "out_of_order_fill": seg(0, ACK, seq=600, dlen=20)
    + seg(0, ACK, seq=1200, dlen=20)
    + seg(0, ACK, seq=0, dlen=100)
    + seg(0, ACK, seq=-60, dlen=30),
    "rst_and_syn_challenges": seg(1, RST, seq=100, opt=0)
    + seg(1, SYN, seq=5)
    + seg(1, ACK, ack=2000)
    + seg(1, RST, opt=0),
    "passive_close": seg(1, ACK | FIN, dlen=5) + app(RECV, 1) + app(CLOSE, 1) + seg(1, ACK, ack=1),
    "active_close": app(SHUT_WR, 0) + seg(0, ACK, ack=1) + seg(0, ACK | FIN) + app(WAIT, 60),
    "simultaneous_close": app(CLOSE, 0) + seg(0, ACK | FIN) + seg(0, ACK, ack=1, t=250),
    "send_and_sack": app(SEND, 80)
    + seg(0, ACK, ack=0, opt=TS | SACK, extra=0x04)
    + seg(0, ACK, ack=0, opt=TS | SACK, extra=0x08)
    + seg(0, ACK, ack=1448)
    + app(WAIT, 3),
    "listener": seg(2, SYN, opt=TS | SYNOPT, t=5) + seg(2, ACK, seq=1, ack=1) + app(RECV),
    "paws_and_no_ts": seg(0, ACK, dlen=3, tsd=-100) + seg(0, ACK, dlen=3, opt=0),
    "closed_port": seg(3, SYN, opt=SYNOPT) + seg(3, ACK, dlen=2) + seg(3, RST),
    "bad_checksum": seg(0, ACK, dlen=5, opt=TS | BADSUM),
    "raw_options": seg(0, ACK, dlen=2, raw=b"\x01\x01\x05\x0a\x00\x00"),
    "zero_window_probe": app(SEND, 120) + seg(0, ACK, win=0) + app(WAIT, 5) + seg(0, ACK, win=100),
    "reopen": app(ABORT, 0) + app(REOPEN, 0) + seg(0, ACK | PSH, dlen=4) + app(REOPEN, 1),
    "urgent_and_big_jumps": seg(0, ACK | URG, dlen=3)
    + seg(0, ACK, seq=1, dlen=10, extra=2)
    + seg(0, ACK, seq=-1, extra=3),
}


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fuzz_tcp")
    if len(sys.argv) > 1:
        out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
