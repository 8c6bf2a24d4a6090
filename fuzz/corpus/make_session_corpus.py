#!/usr/bin/env python3
"""Writes the seed corpus of fuzz/fuzz_session.c into fuzz/corpus/fuzz_session/.

Input (see fuzz_session.c): u8 cfg, then records: a tag byte (tag & 7 the kind) and its
arguments. The peer is 198.18.0.2 with TCP 5001 (accepts, drains) and UDP 5002 (echo).
Standard library only.
"""
import os
import struct
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_abi_corpus import sockaddr, sqe  # noqa: E402

PEER = [198, 18, 0, 2]
OPEN, BIND, LISTEN, CONNECT, ACCEPT, SEND, SHUTDOWN, CLOSE = 2, 3, 4, 5, 6, 7, 8, 9
SETOPT, GETOPT, STATS, SHARE, ADOPT, CAPTURE = 10, 11, 12, 13, 14, 15


def submit(e, own_handle=True, fold=False):
    return bytes([(0x80 if own_handle else 0) | (0x40 if fold else 0)]) + e


def step(ms=1):
    return bytes([1, ms])


def take(n=32, give=True):
    return bytes([0x82 if give else 0x02, n])


def rounds(k, ms=1, give=True):
    return (step(ms) + take(32, give)) * k


def open_(proto, user=1):
    return submit(sqe(OPEN, 0, user, struct.pack("<HBB", 2, proto, 0)), own_handle=False)


def send(n, dst=b""):
    return submit(sqe(SEND, 0, 9, struct.pack("<QII", 0, n, 0) + dst), fold=True)


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fuzz_session")
    os.makedirs(out, exist_ok=True)
    tcp = (open_(6) + rounds(2)
           + submit(sqe(CONNECT, 0, 2, sockaddr(5001, PEER))) + rounds(5)
           + bytes([5, 0x10]) + rounds(5) + send(3000) + rounds(5)
           + submit(sqe(SHUTDOWN, 0, 3, struct.pack("<I", 1))) + rounds(3)
           + submit(sqe(CLOSE, 0, 4)) + rounds(3))
    udp = (open_(17) + rounds(2) + send(100, sockaddr(5002, PEER)) + rounds(5)
           + submit(sqe(CLOSE, 0, 4)) + rounds(2))
    listen = (open_(6) + rounds(1) + submit(sqe(BIND, 0, 2, sockaddr(80, [0, 0, 0, 0])))
              + rounds(1) + submit(sqe(LISTEN, 0, 3, struct.pack("<I", 4))) + rounds(1)
              + submit(sqe(SHARE, 0, 4)) + rounds(1) + submit(sqe(ACCEPT, 0, 5)) + rounds(3))
    capture = (submit(sqe(CAPTURE, 0, 1), own_handle=False) + rounds(1) + udp
               + rounds(3))
    stats = (submit(sqe(STATS, 0, 1, struct.pack("<IIQ", 2, 4096, 0)), own_handle=False,
                    fold=True) + rounds(2) + open_(6) + rounds(1)
             + submit(sqe(GETOPT, 0, 2, struct.pack("<I", 1))) + rounds(1))
    # a small pool, a peer that streams, a host that never returns its buffers
    hog = (open_(6) + rounds(2) + submit(sqe(CONNECT, 0, 2, sockaddr(5001, PEER))) + rounds(5)
           + (bytes([5, 0xF0]) + step(2) + take(32, give=False)) * 12 + rounds(4, 50, False))
    abuse = (open_(17) + rounds(1) + b"\x03\xff\xff" + b"\x03\x00\x00" + b"\x03\x00\x00"
             + rounds(1) + bytes([0x04, 0xFF, 0xFF, 0xFF, 0x7F]) + rounds(2) + b"\x07")
    lossy = bytes([6, 60, 20, 20]) + tcp
    seeds = {
        "tcp_connect_send": b"\x00" + tcp,
        "udp_echo": b"\x00" + udp,
        "listen_share": b"\x00" + listen,
        "capture": b"\x00" + capture,
        "stats": b"\x00" + stats,
        "small_pool_hog": b"\x01" + hog,
        "abuse": b"\x00" + abuse,
        "lossy_link": b"\x00" + lossy,
    }
    for name, data in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
