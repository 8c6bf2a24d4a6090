#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_ipv6_reass (the 8-byte fragment records of
fuzz/fuzz_ipv6_reass.c): python3 fuzz/corpus/make_ipv6_reass_corpus.py"""
import os

top = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
d = os.path.join(top, "fuzz", "corpus", "fuzz_ipv6_reass")
os.makedirs(d, exist_ok=True)

M, REAL, DSTOPT = 0x10, 0x20, 0x40


def rec(src, ident, flags, off, length, fill=0, t=1):
    return bytes([src | ident << 2 | flags, off >> 8, off & 0xFF, length >> 8, length & 0xFF,
                  fill, t, 0])


def write(name, records):
    with open(os.path.join(d, name), "wb") as f:
        f.write(b"".join(records))


# The 3008-byte echo request in three real fragments: in order, reversed, with a duplicate.
whole = [rec(0, 0, M | REAL, 0, 1400), rec(0, 0, M | REAL, 1400, 1400),
         rec(0, 0, REAL, 2800, 208)]
write("in_order", whole)
write("reversed", whole[::-1])
write("duplicate", [whole[0], whole[0], whole[1], whole[2]])
write("dstopt", [rec(1, 1, M | REAL | DSTOPT, 0, 1400), rec(1, 1, M | REAL, 1400, 1400),
                 rec(1, 1, REAL, 2800, 208)])
# An overlap, then the rest: nothing completes.
write("overlap", [rec(0, 0, M | REAL, 0, 1400), rec(0, 0, M | REAL, 1392, 1400),
                  rec(0, 0, REAL, 2800, 208)])
# Disagreeing ends; a first fragment left to time out (t = 255: 56 s per record).
write("bad_end", [rec(2, 0, REAL, 1400, 1400), rec(2, 0, REAL, 2800, 208)])
write("timeout", [rec(3, 2, M | REAL, 0, 1400, t=255), rec(3, 2, M, 1400, 8, t=255)])
# Every id of one source at once: the per-source share.
write("share", [rec(0, i, M, 0, 1400) for i in range(4)] + [rec(1, 0, M, 0, 1400)])
