#!/usr/bin/python3
"""Writes tests/unit/ipv6_vectors.h: IPv6, ICMPv6, ND and MLDv2 packets built by scapy, the
reference the wire layer's parsers and builders are compared with in test_wire_ipv6.c,
test_wire_icmpv6.c and test_wire_ndp.c.

Offline only: scapy builds bytes here, it sends nothing. Run with Debian's python3 (which has
python3-scapy): /usr/bin/python3 tests/unit/gen_ipv6_vectors.py > tests/unit/ipv6_vectors.h
then clang-format -i tests/unit/ipv6_vectors.h (the repository style check covers it).
Addresses: 2001:db8::/32 (RFC 3849) and link-local ones only.
"""
from scapy.all import (IPv6, UDP, TCP, Raw, ICMPv6EchoRequest, ICMPv6EchoReply,
                       ICMPv6PacketTooBig, ICMPv6DestUnreach, ICMPv6TimeExceeded,
                       ICMPv6ParamProblem, ICMPv6ND_NS, ICMPv6ND_NA, ICMPv6ND_RS, ICMPv6ND_RA,
                       ICMPv6ND_Redirect, ICMPv6NDOptSrcLLAddr, ICMPv6NDOptDstLLAddr,
                       ICMPv6NDOptPrefixInfo, ICMPv6NDOptMTU, ICMPv6NDOptRedirectedHdr,
                       ICMPv6NDOptUnknown, IPv6ExtHdrHopByHop, IPv6ExtHdrDestOpt,
                       IPv6ExtHdrRouting, IPv6ExtHdrFragment, RouterAlert, PadN,
                       ICMPv6MLReport2, ICMPv6MLDMultAddrRec, ICMPv6MLQuery, ICMPv6MLQuery2, fragment6, in6_getnsma,
                       in6_getnsmac, in6_mactoifaceid)
from socket import inet_pton, inet_ntop, AF_INET6


def nsma(a):
    """The solicited-node group of a, as text."""
    return inet_ntop(AF_INET6, in6_getnsma(inet_pton(AF_INET6, a)))


MAC_A = "02:00:5e:10:00:01"
MAC_B = "52:54:00:12:34:56"
A = "2001:db8::1"
B = "2001:db8::2"
LL_A = "fe80::1"
LL_B = "fe80::5054:ff:fe12:3456"  # from MAC_B by modified EUI-64

vectors = []


def add(name, pkt):
    vectors.append((name, bytes(pkt)))


# IPv6 + UDP with traffic class and flow label; UDP checksum computed by scapy.
add("udp6", IPv6(src=A, dst=B, tc=0xb8, fl=0x12345, hlim=64) / UDP(sport=40000, dport=7) /
    Raw(b"toekit over IPv6"))
# TCP SYN (the pseudo-header checksum with next header 6)
add("tcp6_syn", IPv6(src=A, dst=B, hlim=64) / TCP(sport=40001, dport=80, flags="S", seq=1000,
                                                   window=65535))
# Extension headers: hop-by-hop (router alert), destination options (PadN only), routing type 0
# with segments left 0 (ignored), then UDP.
add("ext_chain", IPv6(src=A, dst=B) / IPv6ExtHdrHopByHop(options=[RouterAlert(value=0)]) /
    IPv6ExtHdrDestOpt(options=[PadN(optdata=b"\x00\x00\x00\x00")]) /
    IPv6ExtHdrRouting(type=0, segleft=0, addresses=[]) / UDP(sport=1, dport=2) / Raw(b"x" * 8))
# Routing type 0 with segments left 1: must be refused.
add("rh0_segleft", IPv6(src=A, dst=B) / IPv6ExtHdrRouting(type=0, segleft=1, addresses=["2001:db8::9"]) /
    UDP(sport=1, dport=2))
# An atomic fragment (offset 0, M clear, RFC 8021) around UDP.
add("atomic_frag", IPv6(src=A, dst=B) / IPv6ExtHdrFragment(offset=0, m=0, id=0xabcdef01) /
    UDP(sport=5, dport=6) / Raw(b"atomic"))
# A UDP datagram of 3000 bytes in fragments of at most 1280 bytes.
frags = fragment6(IPv6(src=A, dst=B) / IPv6ExtHdrFragment(id=0x1234) / UDP(sport=9, dport=10) /
                  Raw(bytes(range(256)) * 12), 1280)
add("frag_first", frags[0])
add("frag_second", frags[1])
add("frag_last", frags[-1])

# ICMPv6 echo request and reply.
add("echo_req", IPv6(src=A, dst=B, hlim=64) / ICMPv6EchoRequest(id=0x1234, seq=7, data=b"toekit-ping"))
add("echo_rep", IPv6(src=B, dst=A, hlim=64) / ICMPv6EchoReply(id=0x1234, seq=7, data=b"toekit-ping"))
# Errors about a 1400-byte invoking packet: the quote stops at 1280 - 48 bytes (RFC 4443 2.4 (c)).
big = bytes(IPv6(src=A, dst=B, hlim=64) / UDP(sport=40000, dport=9) / Raw((bytes(range(256)) * 6)[:1352]))
add("invoking_big", big)
add("ptb", IPv6(src=B, dst=A, hlim=64) / ICMPv6PacketTooBig(mtu=1280) / Raw(big[:1232]))
small = bytes(IPv6(src=A, dst=B, hlim=64) / UDP(sport=40000, dport=9) / Raw(b"hello"))
add("invoking_small", small)
add("port_unreach", IPv6(src=B, dst=A, hlim=64) / ICMPv6DestUnreach(code=4) / Raw(small))
add("time_exceeded", IPv6(src=B, dst=A, hlim=64) / ICMPv6TimeExceeded(code=1) / Raw(small))
add("param_problem", IPv6(src=B, dst=A, hlim=64) / ICMPv6ParamProblem(code=1, ptr=6) / Raw(small))

# Neighbor Discovery.
add("ns", IPv6(src=A, dst=nsma(B), hlim=255) / ICMPv6ND_NS(tgt=B) /
    ICMPv6NDOptSrcLLAddr(lladdr=MAC_A))
add("ns_dad", IPv6(src="::", dst=nsma(B), hlim=255) /
    ICMPv6ND_NS(tgt=B) / ICMPv6NDOptUnknown(type=14, len=1, data=b"\x01\x02\x03\x04\x05\x06"))
add("na", IPv6(src=B, dst=A, hlim=255) / ICMPv6ND_NA(tgt=B, R=0, S=1, O=1) /
    ICMPv6NDOptDstLLAddr(lladdr=MAC_B))
add("na_unsolicited", IPv6(src=B, dst="ff02::1", hlim=255) / ICMPv6ND_NA(tgt=B, R=1, S=0, O=1) /
    ICMPv6NDOptDstLLAddr(lladdr=MAC_B))
add("rs", IPv6(src=LL_B, dst="ff02::2", hlim=255) / ICMPv6ND_RS() / ICMPv6NDOptSrcLLAddr(lladdr=MAC_B))
add("ra", IPv6(src=LL_A, dst="ff02::1", hlim=255) /
    ICMPv6ND_RA(chlim=64, M=0, O=1, prf=0, routerlifetime=1800, reachabletime=30000, retranstimer=1000) /
    ICMPv6NDOptSrcLLAddr(lladdr=MAC_A) / ICMPv6NDOptMTU(mtu=1500) /
    ICMPv6NDOptPrefixInfo(prefixlen=64, L=1, A=1, validlifetime=86400, preferredlifetime=14400,
                          prefix="2001:db8:1::") /
    ICMPv6NDOptPrefixInfo(prefixlen=48, L=1, A=0, validlifetime=0xffffffff,
                          preferredlifetime=0xffffffff, prefix="2001:db8:2::"))
redir_inv = bytes(IPv6(src=A, dst="2001:db8:5::1", hlim=63) / UDP(sport=3, dport=4) / Raw(b"abc"))
add("redirect_invoking", redir_inv)
add("redirect", IPv6(src=LL_A, dst=A, hlim=255) /
    ICMPv6ND_Redirect(tgt="fe80::2", dst="2001:db8:5::1") / ICMPv6NDOptDstLLAddr(lladdr=MAC_B) /
    ICMPv6NDOptRedirectedHdr(pkt=redir_inv + b"\x00" * (-len(redir_inv) % 8)))

# MLDv2 report joining the solicited-node group of B, from B's link-local address.
add("mld2_report", IPv6(src=LL_B, dst="ff02::16", hlim=1) /
    IPv6ExtHdrHopByHop(options=[RouterAlert(value=0)]) /
    ICMPv6MLReport2(records=[ICMPv6MLDMultAddrRec(rtype=4, dst=nsma(B))]))

# MLD queries: v2 general query with a large (floating-point coded) delay and interval, v2 group
# and source specific, v1.
add("mld2_query", IPv6(src=LL_A, dst="ff02::1", hlim=1) /
    IPv6ExtHdrHopByHop(options=[RouterAlert(value=0)]) /
    ICMPv6MLQuery2(mrd=0x8a12, mladdr="::", S=0, QRV=2, QQIC=0x9c))
add("mld2_query_src", IPv6(src=LL_A, dst=nsma(B), hlim=1) /
    IPv6ExtHdrHopByHop(options=[RouterAlert(value=0)]) /
    ICMPv6MLQuery2(mrd=1000, mladdr=nsma(B), S=1, QRV=3, QQIC=125, sources=["2001:db8::7", "2001:db8::8"]))
add("mld1_query", IPv6(src=LL_A, dst="ff02::1", hlim=1) /
    IPv6ExtHdrHopByHop(options=[RouterAlert(value=0)]) / ICMPv6MLQuery(mrd=10000, mladdr="::"))

# Address derivations.
vectors.append(("nsma_b", in6_getnsma(inet_pton(AF_INET6, B))))
vectors.append(("nsmac_b", bytes.fromhex(in6_getnsmac(in6_getnsma(inet_pton(AF_INET6, B))).replace(":", ""))))
vectors.append(("iid_b", inet_pton(AF_INET6, "::" + in6_mactoifaceid(MAC_B))[8:]))
vectors.append(("ll_b", inet_pton(AF_INET6, LL_B)))

print("/* Generated by tests/unit/gen_ipv6_vectors.py with scapy; do not edit. */")
print("#ifndef TOE_TEST_IPV6_VECTORS_H")
print("#define TOE_TEST_IPV6_VECTORS_H")
print("#include <stdint.h>")
for name, b in vectors:
    print(f"static const uint8_t v_{name}[{len(b)}] = {{")
    for i in range(0, len(b), 16):
        print("  " + ", ".join(f"0x{x:02x}" for x in b[i:i + 16]) + ",")
    print("};")
print("#endif")
