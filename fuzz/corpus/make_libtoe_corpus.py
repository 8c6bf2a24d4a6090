#!/usr/bin/env python3
"""Writes the seed corpus of fuzz/fuzz_libtoe.c into fuzz/corpus/fuzz_libtoe/.

Input (see fuzz_libtoe.c): u8 k | k answers of 16 bytes (u8 mode, u8 events, u8 event type,
u8 event flags, i32 res, u32 selector, u32 length) | calls of 2 bytes (u8 op, u8 argument).
Standard library only.
"""
import os
import struct
import sys


def ans(mode=0, nev=0, evt=0, evf=0, res=0, sel=0, ln=0):
    return struct.pack("<BBBBiII", mode, nev, evt, evf, res, sel, ln)


def calls(*c):
    return b"".join(bytes([a, b]) for a, b in c)


SOCKET, CONNECT, LISTEN, ACCEPT, SEND, RECV, CLOSE, POLL, GETOPT, STATS, SHUT, SENDTO, RECVFROM, \
    INFO = range(14)


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fuzz_libtoe")
    os.makedirs(out, exist_ok=True)
    seeds = {
        # every answer right: a socket, a connect, a send, data the device pushed, a receive
        "proper": bytes([4]) + ans() + ans() + ans(nev=2, evt=2, ln=100) + ans()
        + calls((SOCKET, 0), (CONNECT, 1), (POLL, 0), (SEND, 5), (RECV, 3), (POLL, 1),
                (INFO, 0), (CLOSE, 0)),
        "udp": bytes([3]) + ans() + ans(nev=1, evt=2, ln=40) + ans()
        + calls((SOCKET, 1), (SENDTO, 2), (RECVFROM, 0), (POLL, 0), (CLOSE, 0)),
        "listen_accept": bytes([4]) + ans() + ans() + ans() + ans(nev=1, evt=4)
        + calls((SOCKET, 0), (LISTEN, 0), (ACCEPT, 0), (POLL, 0), (RECV, 0), (CLOSE, 0)),
        # garbled answers: wrong user_data, wrong opcode, another handle, silence, bad buffers
        "garbled": bytes([6]) + ans(mode=1, sel=0x1234) + ans(mode=2) + ans(mode=4, sel=1)
        + ans(mode=8) + ans(nev=3, evt=2, sel=0x80FFF000, ln=5000) + ans(nev=2, evt=9)
        + calls((SOCKET, 0), (SOCKET, 1), (CONNECT, 0), (SEND, 9), (RECV, 0), (STATS, 3),
                (GETOPT, 5), (SHUT, 1), (POLL, 2), (CLOSE, 1)),
        "events": bytes([2]) + ans(nev=5, evt=5, res=-104) + ans(nev=4, evt=7)
        + calls((SOCKET, 0), (POLL, 0), (RECV, 0), (SEND, 1), (POLL, 0)),
    }
    for name, data in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
