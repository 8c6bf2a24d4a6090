/*
 * UDP (RFC 768, RFC 1122 4.1): sockets, checksum, ICMP port unreachable for closed ports, and
 * ICMP errors turned into soft errors on the socket that sent the quoted datagram.
 */
#ifndef TOE_ENGINE_UDP_H
#define TOE_ENGINE_UDP_H

#include "engine/sock.h"
#include "toe/engine.h"
#include "wire/ipv4.h"
#include "wire/ipv6.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct toe_udp_sock {
  struct toe_sock sk;        /* must be first */
  struct toe_pbuf *rxq_head; /* datagrams, data at the payload, qnext-linked; source address and
                                port stored in meta[0] */
  struct toe_pbuf *rxq_tail;
  uint32_t rxq_len;
  uint32_t rxq_bytes;
};

/* How a queued datagram's source is kept in pb->meta[0]: address << 16 | port. */
#define TOE_UDP_META_FROM(addr, port) (((uint64_t)(addr) << 16) | (uint64_t)(port))
#define TOE_UDP_META_ADDR(m) ((uint32_t)((m) >> 16))
#define TOE_UDP_META_PORT(m) ((uint16_t)((m)&0xffffu))
/* An IPv6 datagram: meta[0] = TOE_UDP_META_V6 | hop limit << 40 | traffic class << 32 | port,
 * the source address's first 8 bytes big-endian in meta[1], its last 8 in meta[3]. */
#define TOE_UDP_META_V6 ((uint64_t)1 << 63)
/* pb->meta[1] keeps the destination address, TOS and TTL (toe_udp_pbuf_rxinfo), meta[2] the
 * arrival time. */
#define TOE_UDP_META_RX(dst, tos, ttl)                                                             \
  ((uint64_t)(dst) | ((uint64_t)(tos) << 32) | ((uint64_t)(ttl) << 40))

struct toe_udp_state {
  struct toe_udp_sock *socks; /* udp_socks slots */
  struct toe_udp_sock *free;  /* free slots (linked through sk.hnext) */
  uint32_t count;             /* udp_socks */
};

size_t toe_udp_mem_size(const struct toe_config *cfg);
void toe_udp_init(struct toe_stack *st, void *mem);

/* Handles a received datagram (data at the UDP header; consumed). */
void toe_udp_input(struct toe_stack *st, struct toe_pbuf *pb, const struct toe_ipv4_view *ip);

/*
 * Handles a received IPv6 datagram (data at the UDP header; consumed): `ip` and `ext` describe
 * its packet, whose headers (ext->offset bytes) are still in front of the data; `ll_group` says it
 * came as link-layer multicast. Checksum mandatory (RFC 8200 8.1); a closed port gets ICMPv6
 * port unreachable (RFC 4443 3.1).
 */
void toe_udp_input6(struct toe_stack *st, struct toe_pbuf *pb, const struct toe_ipv6_view *ip,
                    const struct toe_ipv6_ext *ext, bool ll_group);

/*
 * An ICMP error quoting a UDP datagram we sent: `qip` is the quoted IP header, `ql4` points at the
 * quoted UDP header (at least 8 bytes). `err` is the mapped error (-TOE_ECONNREFUSED, ...).
 * Delivered as a soft error to the socket connected to the quoted destination from the quoted
 * source port (RFC 1122 4.1.3.3 leaves reporting to the application; like Linux, unconnected
 * sockets are not told). Returns true if a socket took it.
 */
bool toe_udp_icmp_error(struct toe_stack *st, const struct toe_ipv4_view *qip, const uint8_t *ql4,
                        int err);

/*
 * ARP gave up on the destination of a datagram we queued (`qip`, `ql4` as above). Linux counts
 * host unreachable as a soft error that UDP reports only to a socket with IP_RECVERR (connected or
 * not: udp_err sets sk_err either way then); so here only a socket with TOE_IP_RECVERR set gets
 * -TOE_EHOSTUNREACH as its pending error. Returns true if one did.
 */
bool toe_udp_link_failure(struct toe_stack *st, const struct toe_ipv4_view *qip,
                          const uint8_t *ql4);

#endif
