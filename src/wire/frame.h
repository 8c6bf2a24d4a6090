/*
 * A whole frame as an observer sees it: the Ethernet header (one 802.1Q tag), then ARP, IPv4 or
 * IPv6 with its extension headers walked, then where the transport header starts and, for TCP and
 * UDP, its ports. It serves the code that looks at frames without terminating them: the capture
 * filter (src/transport/capture_filter.c), toe-impair (src/tools/impair) and the link drivers'
 * completion of checksums a local sender left partial (src/device). It is built from the engine's
 * own checked views (toe_eth_parse, toe_arp_parse, toe_ipv4_parse, toe_ipv6_parse,
 * toe_ipv6_ext_walk), so every reader of frames in the tree agrees on what a frame holds, and the
 * wire fuzzers plus fuzz_capture_filter cover one parser instead of four.
 *
 * What the engine's views refuse, the frame view does not describe: a frame with stacked (QinQ)
 * tags has no view at all, an IP header that fails its checks (bad version, lengths outside the
 * frame, malformed IPv4 options, a multicast IPv6 source) leaves `ipver` 0, and an IPv6 extension
 * chain the host would refuse (a routing header with segments left, RFC 8200 4.4; limits of RFC
 * 8504 5.3) leaves no transport header (`l4_off` 0). The IPv4 header checksum is not judged: an
 * observer describes what is there.
 */
#ifndef TOE_WIRE_FRAME_H
#define TOE_WIRE_FRAME_H

#include "wire/arp.h"
#include "wire/ethernet.h"
#include "wire/ipv4.h"
#include "wire/ipv6.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A checked view of a whole frame. Offsets count from the first byte of the frame; the view is
 * valid only while the frame bytes are. */
struct toe_frame_view {
  uint32_t len;            /* bytes at hand, as given to toe_frame_parse */
  struct toe_eth_view eth; /* always valid after a successful parse */
  bool arp;                /* ethertype ARP and toe_arp_parse accepted it: `arp_view` holds it */
  struct toe_arp_view arp_view;
  uint8_t ipver;   /* 4 or 6 when the IP header passed its view's checks, else 0 */
  uint32_t l3_off; /* where the IP (or ARP) header starts: eth.hdr_len */
  uint32_t ip_end; /* past the IP packet by its length field (the frame may carry padding; with
                      TOE_FRAME_LEN_UNKNOWN it may lie past len) */
  struct toe_ipv4_view v4; /* when ipver is 4 */
  struct toe_ipv6_view v6; /* when ipver is 6 */
  uint8_t l4_proto;        /* IPv4 protocol, or IPv6's upper layer after the extension headers */
  bool fragment;           /* part of a fragmented datagram (RFC 791 3.2, RFC 8200 4.5): the
                              transport checksum covers bytes this frame does not hold */
  uint32_t l4_off;         /* where the transport header starts; 0 when this frame does not hold
                              it (a fragment other than the first, a refused IPv6 chain) */
  bool ports;              /* TCP or UDP whose two port fields lie inside the IP packet and
                              inside len */
  uint16_t sport, dport;   /* host order, when `ports` */
};

/* toe_frame_parse's `wire_len` when only the first bytes of a frame are at hand (a capture filter
 * deciding on the headers): the IP length fields are then taken at their word. */
#define TOE_FRAME_LEN_UNKNOWN 0

/*
 * Parses the frame at `frame`, of which `len` bytes are at hand, into `v`. `wire_len` is the
 * length of the whole frame (>= len; less is taken as len), or TOE_FRAME_LEN_UNKNOWN: an IP
 * packet must fit in a known wire length, and only the headers inside `len` are described (so
 * the view of a frame's first bytes that hold its headers is the view of the whole frame).
 * Returns 0 when the Ethernet header parsed (the rest of the view says how far the frame could be
 * read), or -TOE_EINVAL for a runt frame or stacked tags (v is then zeroed). Never reads past len.
 */
int toe_frame_parse(struct toe_frame_view *v, const uint8_t *frame, size_t len, size_t wire_len);

/*
 * Computes the TCP or UDP checksum of the frame `v` describes, in place (`frame` is the same
 * bytes, writable), from scratch: pseudo-header (RFC 9293 3.1 and RFC 768 for IPv4, RFC 8200 8.1
 * for IPv6) and the whole segment, the UDP length field bounding a datagram. A computed UDP
 * checksum of zero is stored as 0xffff (RFC 768; zero means "none" over IPv4 and is invalid over
 * IPv6). Returns 0, or -TOE_EINVAL when the bytes at hand hold no whole TCP or UDP segment (not
 * IP, a fragment, another protocol, a header that does not fit, a packet past len).
 */
int toe_frame_l4_csum(uint8_t *frame, const struct toe_frame_view *v);

#endif
