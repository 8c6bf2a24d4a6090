#!/usr/bin/env python3
"""Writes the seed corpus of fuzz/fuzz_preload_msg.c into fuzz/corpus/fuzz_preload_msg/.

Input (see fuzz_preload_msg.c): records, a tag byte (tag % 3: 0 a vector, with bit 7 lengths only;
1 control messages; 2 a sockaddr) and its arguments, little endian. The seeds cover a vector cut
by the bounce buffer, lengths that add up past SSIZE_MAX, IP_PKTINFO/IP_TOS/IP_TTL messages that
fit, one cut in the middle, one with room for its header only, no buffer at all, and AF_INET,
AF_INET6, AF_UNSPEC and short addresses returned into buffers of several sizes. Standard library
only.
"""
import os
import struct

SOL_IP, SOL_SOCKET = 0, 1
IP_TOS, IP_TTL, IP_PKTINFO, SO_TIMESTAMPNS = 1, 2, 8, 35
AF_UNSPEC, AF_INET, AF_INET6 = 0, 2, 10


def vector(lens, cap, fill=b"abcdefgh"):
    b = bytes([0, len(lens)])
    for n in lens:
        b += struct.pack("<H", n) + (fill * (n // len(fill) + 1))[:n]
    return b + struct.pack("<H", cap)


def totals(lens):
    return bytes([0x81, len(lens)]) + b"".join(struct.pack("<Q", n) for n in lens)


def cmsgs(cap, misalign, recs):
    b = bytes([1]) + struct.pack("<H", cap) + bytes([misalign, len(recs)])
    for level, typ, data in recs:
        b += bytes([level, typ]) + struct.pack("<H", len(data)) + data
    return b


def sockaddr(raw, unspec, outlen):
    return bytes([2, len(raw), unspec]) + raw + bytes([outlen])


SIN = struct.pack("<H", AF_INET) + struct.pack(">H", 5001) + bytes([198, 18, 0, 2]) + bytes(8)
PKTINFO = (SOL_IP, IP_PKTINFO, bytes(12))

SEEDS = {
    "iov_three": vector([3, 0, 10], 64),
    "iov_cut": vector([100, 200, 50], 120),
    "iov_many": vector([1] * 39, 20),
    "iov_totals_overflow": totals([2**63 - 1, 1, 5]),
    "iov_totals_max": totals([2**62, 2**62 - 1]),
    "cmsg_pktinfo_tos_ttl": cmsgs(128, 0, [PKTINFO, (SOL_IP, IP_TOS, b"\x10"),
                                           (SOL_IP, IP_TTL, b"\x40\0\0\0")]),
    "cmsg_truncated": cmsgs(40, 3, [PKTINFO, (SOL_SOCKET, SO_TIMESTAMPNS, bytes(16))]),
    "cmsg_header_only": cmsgs(16, 1, [PKTINFO]),
    "cmsg_no_buffer": cmsgs(0, 0, [PKTINFO]),
    "sa_inet": sockaddr(SIN, 0, 16),
    "sa_inet_short_out": sockaddr(SIN, 0, 5),
    "sa_inet6_refused": sockaddr(struct.pack("<H", AF_INET6) + bytes(26), 0, 28),
    "sa_unspec": sockaddr(struct.pack("<H", AF_UNSPEC), 1, 16),
    "sa_too_short": sockaddr(SIN[:12], 0, 32),
    "mixed": vector([5, 7], 9) + cmsgs(64, 5, [PKTINFO]) + sockaddr(SIN, 0, 32),
}


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fuzz_preload_msg")
    os.makedirs(out, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    print(f"{len(SEEDS)} seeds in {out}")


if __name__ == "__main__":
    main()
