#!/usr/bin/env python3
"""Writes the seed corpus of fuzz/fuzz_engine.c into fuzz/corpus/fuzz_engine/.

Record format (see fuzz_engine.c): u16 length (big endian), u8 time step, then `length` bytes of
Ethernet frame; a record of length 0 is a socket operation chosen by the time byte.
The stack under test is 198.18.0.1/24 with MAC 02:00:00:00:00:01; the known peer is 198.18.0.2
with MAC 02:00:00:00:00:02. Standard library only.
"""
import os
import struct
import sys

OUR_MAC = bytes([2, 0, 0, 0, 0, 1])
PEER_MAC = bytes([2, 0, 0, 0, 0, 2])
OTHER_MAC = bytes([2, 0, 0, 0, 0, 3])
BCAST_MAC = b"\xff" * 6
OUR_IP = bytes([198, 18, 0, 1])
PEER_IP = bytes([198, 18, 0, 2])
OTHER_IP = bytes([198, 18, 0, 3])
BCAST_IP = bytes([198, 18, 0, 255])


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def eth(dst, src, ethertype, payload):
    return dst + src + struct.pack("!H", ethertype) + payload


def arp(op, sha, spa, tha, tpa, dst):
    body = struct.pack("!HHBBH", 1, 0x0800, 6, 4, op) + sha + spa + tha + tpa
    return eth(dst, sha, 0x0806, body)


def ipv4(src, dst, proto, payload, ident=1, frag=0x4000, ttl=64, src_mac=PEER_MAC,
         dst_mac=OUR_MAC):
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, frag, ttl, proto, 0,
                      src, dst)
    hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
    return eth(dst_mac, src_mac, 0x0800, hdr + payload)


def udp_segment(src, dst, sport, dport, data):
    length = 8 + len(data)
    seg = struct.pack("!HHHH", sport, dport, length, 0) + data
    pseudo = src + dst + struct.pack("!BBH", 0, 17, length)
    c = csum(pseudo + seg) or 0xFFFF
    return seg[:6] + struct.pack("!H", c) + seg[8:]


def udp(sport, dport, data, src=PEER_IP, dst=OUR_IP, **kw):
    return ipv4(src, dst, 17, udp_segment(src, dst, sport, dport, data), **kw)


def icmp_echo(ident, seq, data, src=PEER_IP):
    msg = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + data
    msg = msg[:2] + struct.pack("!H", csum(msg)) + msg[4:]
    return ipv4(src, OUR_IP, 1, msg, frag=0)


def fragments(sport, dport, data, ident, chunk=1480, reverse=False):
    seg = udp_segment(PEER_IP, OUR_IP, sport, dport, data)
    frames = []
    for off in range(0, len(seg), chunk):
        piece = seg[off:off + chunk]
        more = 0x2000 if off + chunk < len(seg) else 0
        frames.append(ipv4(PEER_IP, OUR_IP, 17, piece, ident=ident, frag=more | (off // 8)))
    return frames[::-1] if reverse else frames


# IPv6 (fuzz_engine.c turns it on with 2001:db8::1/64; the link-local address is fe80::ff:fe00:1).
OUR6 = bytes.fromhex("20010db8000000000000000000000001")
PEER6 = bytes.fromhex("20010db8000000000000000000000002")
OTHER6 = bytes.fromhex("20010db8000000000000000000000003")
OUR_LL = bytes.fromhex("fe80000000000000000000fffe000001")
PEER_LL = bytes.fromhex("fe80000000000000000000fffe000002")
SNM_OUR = bytes.fromhex("ff0200000000000000000001ff000001")
SNM_OUR_MAC = bytes([0x33, 0x33, 0xFF, 0, 0, 1])
ALL_NODES = bytes.fromhex("ff020000000000000000000000000001")
ALL_NODES_MAC = bytes([0x33, 0x33, 0, 0, 0, 1])


def ipv6(src, dst, nh, payload, hop=64, dst_mac=OUR_MAC, l4=58, l4_off=0):
    """An IPv6 frame; when the upper layer (at l4_off in payload) is ICMPv6, its checksum is set."""
    if l4 == 58:
        msg = payload[l4_off:]
        pseudo = src + dst + struct.pack("!IxxxB", len(msg), 58)
        c = csum(pseudo + msg[:2] + b"\0\0" + msg[4:])
        payload = payload[:l4_off] + msg[:2] + struct.pack("!H", c) + msg[4:]
    hdr = struct.pack("!IHBB16s16s", 6 << 28, len(payload), nh, hop, src, dst)
    return eth(dst_mac, PEER_MAC, 0x86DD, hdr + payload)


def echo6(src, dst, data, dst_mac=OUR_MAC):
    return ipv6(src, dst, 58, struct.pack("!BBHHH", 128, 0, 0, 7, 1) + data, dst_mac=dst_mac)


def ns6(src, target, dst=SNM_OUR, dst_mac=SNM_OUR_MAC):
    body = struct.pack("!BBHI", 135, 0, 0, 0) + target
    if src != bytes(16):
        body += bytes([1, 1]) + PEER_MAC
    return ipv6(src, dst, 58, body, hop=255, dst_mac=dst_mac)


def na6(src, target, flags=0x60):
    body = struct.pack("!BBHI", 136, 0, 0, flags << 24) + target + bytes([2, 1]) + PEER_MAC
    return ipv6(src, OUR6, 58, body, hop=255)


def rec(frame, t=1):
    return struct.pack("!HB", len(frame), t) + frame


def op(code):
    return struct.pack("!HB", 0, code)


def seeds():
    payload = bytes((i * 7 + 3) & 0xFF for i in range(3000))
    arp_req = arp(1, PEER_MAC, PEER_IP, b"\0" * 6, OUR_IP, BCAST_MAC)
    arp_req_other = arp(1, OTHER_MAC, OTHER_IP, b"\0" * 6, OUR_IP, BCAST_MAC)
    arp_reply = arp(2, OTHER_MAC, OTHER_IP, OUR_MAC, OUR_IP, OUR_MAC)
    yield "arp_request", rec(arp_req)
    yield "arp_request_reply", rec(arp_req_other) + rec(arp_reply)
    yield "ping", rec(icmp_echo(0x1234, 1, b"ping data 0123456789"))
    yield "ping_unknown_host", rec(icmp_echo(7, 1, b"x" * 56, src=OTHER_IP), 250)
    yield "udp_echo", rec(udp(40000, 7, b"hello, echo"))
    yield "udp_zero_copy", rec(udp(40001, 9, b"zero copy"))
    yield "udp_connected", rec(udp(6000, 5000, b"from the peer")) + rec(udp(6001, 5000, b"wrong"))
    yield "udp_closed_port", rec(udp(40002, 4444, b"nobody"))
    yield "udp_broadcast", rec(udp(40003, 7, b"bcast", dst=BCAST_IP, dst_mac=BCAST_MAC))
    yield "udp_fragments", b"".join(rec(f) for f in fragments(40004, 7, payload, 0x4242))
    yield "udp_fragments_reversed", b"".join(
        rec(f) for f in fragments(40005, 9, payload, 0x4343, chunk=512, reverse=True))
    yield "udp_fragment_timeout", rec(fragments(40006, 7, payload, 0x4444)[0], 220)
    yield "ops", b"".join(op(c) for c in range(8)) + rec(udp(6003, 5000, b"after connect"), 3)
    yield "ipv6_ns_echo", rec(ns6(PEER6, OUR6)) + rec(echo6(PEER6, OUR6, b"ping6 data"))
    yield "ipv6_echo_resolve", (rec(echo6(PEER_LL, OUR_LL, b"x" * 40)) +
                                rec(na6(PEER_LL, PEER_LL), 250) + rec(echo6(OTHER6, OUR6, b"y"), 220))
    yield "ipv6_echo_all_nodes", rec(echo6(PEER_LL, ALL_NODES, b"mc", dst_mac=ALL_NODES_MAC))
    yield "ipv6_dad_probe", rec(ns6(bytes(16), OUR6)) + rec(na6(PEER6, OUR6, 0x20))
    hbh = bytes([58, 0, 0x9E, 4, 0, 0, 0, 0])
    rh0 = bytes([58, 2, 0, 1, 0, 0, 0, 0]) + PEER6
    frag = bytes([58, 0, 0, 1, 0, 0, 0, 9])
    atomic = bytes([58, 0, 0, 0, 0, 0, 0, 9])
    ping = struct.pack("!BBHHH", 128, 0, 0, 1, 1) + b"ext"
    yield "ipv6_ext_headers", (rec(ns6(PEER6, OUR6)) +
                               rec(ipv6(PEER6, OUR6, 0, hbh + ping, l4_off=8)) +
                               rec(ipv6(PEER6, OUR6, 43, rh0 + ping, l4_off=24)) +
                               rec(ipv6(PEER6, OUR6, 44, frag + ping, l4_off=8)) +
                               rec(ipv6(PEER6, OUR6, 44, atomic + ping, l4_off=8)) +
                               rec(ipv6(PEER6, OUR6, 253, b"unknown", l4=253)) +
                               rec(ipv6(PEER6, OUR6, 6, bytes(20), l4=6)))
    yield "mixed", (rec(arp_req) + rec(icmp_echo(1, 2, b"abc")) + op(3) + rec(udp(1, 7, b"e")) +
                    b"".join(rec(f, 0) for f in fragments(2, 7, payload[:2000], 9)) + op(6) +
                    rec(udp(3, 4444, b"closed"), 240))


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fuzz_engine")
    if len(sys.argv) > 1:
        out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name, data in seeds():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
