#!/usr/bin/env python3
"""Writes the seed corpus of fuzz/fuzz_abi.c into fuzz/corpus/fuzz_abi/.

Input format (see fuzz_abi.c): u8 mode | 136 bytes of hello | u8 region pages | u8 caps mask |
records (a tag byte and its arguments). Standard library only; structures little-endian as the
ABI's (include/toe/abi.h).
"""
import os
import struct
import sys

HELLO_MAGIC = 0x48454F54
CAPS = 0x3FF


def hello(sq=8, cq=16, fq=0, bc=16, bs=2048, mh=4, caps=CAPS, size=128):
    h = struct.pack("<IHHIIQII", HELLO_MAGIC, 1, 3, size, 0, caps, 1234, 0)
    h += struct.pack("<6I", sq, cq, fq, bc, bs, mh) + struct.pack("<Q", 0)
    h += b"fuzz".ljust(16, b"\0") + bytes(48)
    return h.ljust(136, b"\0")


def sqe(op, handle=0, user=0, u=b""):
    return struct.pack("<BBHIQ", op, 0, 0, handle, user) + u.ljust(48, b"\0")


def sockaddr(port, ip):
    return struct.pack("<HHI", 2, port, 0) + bytes(ip).ljust(16, b"\0")


H0 = 1 << 16  # handle of slot 0, generation 1


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fuzz_abi")
    os.makedirs(out, exist_ok=True)
    head = bytes([0x88]) + hello() + bytes([40, 0xFF])
    seeds = {
        "hello_only": bytes([0x08]) + hello() + bytes([40, 0xFF]),
        "hello_short": bytes([0x07]) + hello(size=127) + bytes([40, 0xFF]),
        "hello_defaults": bytes([0x08]) + hello(0, 0, 0, 0, 0, 0) + bytes([255, 0xFF]),
        "tcp_listen": head
        + b"\x00" + sqe(2, 0, 1, struct.pack("<HBB", 2, 6, 0))
        + b"\x00" + sqe(3, H0, 2, sockaddr(80, [0, 0, 0, 0]))
        + b"\x00" + sqe(4, H0, 3, struct.pack("<I", 8))
        + b"\x00" + sqe(6, H0, 4)
        + b"\x00" + sqe(9, H0, 5),
        "udp_send": head
        + b"\x00" + sqe(2, 0, 1, struct.pack("<HBB", 2, 17, 0))
        + b"\x00" + sqe(7, H0, 2, struct.pack("<QII", 0, 100, 0) + sockaddr(9, [198, 18, 0, 2]))
        + b"\x01" + struct.pack("<H", 3)
        + b"\x02" + struct.pack("<HB", 3, 0)
        + b"\x01" + struct.pack("<H", 3),
        "fill_ring": head
        + b"\x04" + struct.pack("<H", 4) + struct.pack("<4H", 0, 1, 1, 16)
        + b"\x03" + struct.pack("<H", 0)
        + b"\x05" + struct.pack("<HH", 100, 0)
        + b"\x06" + bytes(96) + bytes(128),
    }
    for name, data in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
