#!/usr/bin/env python3
"""Writes the seed corpus of fuzz/fuzz_steer.c into fuzz/corpus/fuzz_steer/.

Input (see fuzz_steer.c): u8 mode, then records u16 length (big endian) | u8 ms | Ethernet frame.
The engine is 198.18.0.1 with MAC 02:00:00:00:00:01, UDP on 7000 and 5353 (connected to
198.18.0.2:53), a TCP listener on 80 and a connection to 198.18.0.2:8080. Frames are built with
make_engine_corpus.py's helpers. Standard library only.
"""
import os
import struct
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_engine_corpus import (BCAST_MAC, OUR_IP, OUR_MAC, PEER_IP, PEER_MAC, arp, csum,  # noqa
                                icmp_echo, ipv4, rec, udp, udp_segment)


def tcp(sport, dport, flags, seq=1000, ack=0, src=PEER_IP, dst=OUR_IP, **kw):
    seg = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 0x50, flags, 8192, 0, 0)
    pseudo = src + dst + struct.pack("!BBH", 0, 6, len(seg))
    seg = seg[:16] + struct.pack("!H", csum(pseudo + seg)) + seg[18:]
    return ipv4(src, dst, 6, seg, **kw)


def icmp_unreach(quoted):
    msg = struct.pack("!BBHI", 3, 3, 0, 0) + quoted
    msg = msg[:2] + struct.pack("!H", csum(msg)) + msg[4:]
    return ipv4(PEER_IP, OUR_IP, 1, msg, frag=0)


def vlan(frame, vid=5):
    return frame[:12] + struct.pack("!HH", 0x8100, vid) + frame[12:]


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fuzz_steer")
    os.makedirs(out, exist_ok=True)
    # what our UDP socket on 5353 sent to the peer's 53, quoted by an ICMP error (IP header + 8)
    sent = udp(5353, 53, b"q", src=OUR_IP, dst=PEER_IP)[14:14 + 28]
    seeds = {
        "udp_bound": b"\x00" + rec(udp(1000, 7000, b"hi")) + rec(udp(1000, 7001, b"no")),
        "tcp_listener": b"\x00" + rec(tcp(40000, 80, 0x02)) + rec(tcp(40000, 22, 0x02), 5),
        "icmp": b"\x00" + rec(icmp_echo(1, 1, b"ping")) + rec(icmp_unreach(sent)),
        "echo_host": b"\x01" + rec(icmp_echo(1, 2, b"ping")),
        "arp": b"\x00" + rec(arp(1, PEER_MAC, PEER_IP, bytes(6), OUR_IP, BCAST_MAC))
        + rec(arp(2, OUR_MAC, OUR_IP, PEER_MAC, PEER_IP, PEER_MAC)),
        "os_rst": b"\x00" + rec(tcp(80, 40000, 0x14, src=OUR_IP, dst=PEER_IP, src_mac=OUR_MAC,
                                    dst_mac=PEER_MAC)),
        "vlan": b"\x02" + rec(vlan(udp(1000, 7000, b"v"))) + rec(udp(1000, 7000, b"untagged")),
        "fragment": b"\x00" + rec(udp(1000, 7000, b"x" * 16, frag=0x2000)),
        "steering_off": b"\x04" + rec(udp(1000, 7000, b"hi")),
    }
    for name, data in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
