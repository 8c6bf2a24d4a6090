#!/usr/bin/env python3
"""Writes the seed corpora of fuzz_wire_ipv6 and fuzz_wire_icmpv6 from the scapy-built packets in
tests/unit/ipv6_vectors.h (no scapy needed here): python3 fuzz/corpus/make_ipv6_corpus.py"""
import os
import re

top = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
text = open(os.path.join(top, "tests", "unit", "ipv6_vectors.h")).read()
vec = {}
for m in re.finditer(r"v_(\w+)\[\d+\] = \{([^}]*)\}", text):
    vec[m.group(1)] = bytes(int(x, 16) for x in re.findall(r"0x[0-9a-f]{2}", m.group(2)))


def write(target, name, data):
    d = os.path.join(top, "fuzz", "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


for name, b in vec.items():
    if len(b) < 40 or b[0] >> 4 != 6:
        continue  # addresses, not packets
    # fuzz_wire_ipv6: control byte 0 (all contiguous, no padding), then the packet; and a split one.
    write("fuzz_wire_ipv6", name, b"\x00" + b)
    write("fuzz_wire_ipv6", name + "_split", b"\x51" + b)
    # fuzz_wire_icmpv6: when the upper layer right after the header is ICMPv6 (or the MLD report's
    # message after its 8-byte hop-by-hop header): control (hop limit 255 kept), addresses, message.
    off = 40 if b[6] == 58 else 48 if b[6] == 0 and b[40] == 58 else None
    if off is not None:
        ctl = 0x01 if b[7] == 255 else 0xc0 if b[7] == 1 else 0x00  # 0xc0: hop limit 1, router alert
        write("fuzz_wire_icmpv6", name, bytes([ctl]) + b[8:40] + b[off:])
