/*
 * ICMPv4 messages (RFC 792).
 */
#ifndef TOE_WIRE_ICMPV4_H
#define TOE_WIRE_ICMPV4_H

#include <stddef.h>
#include <stdint.h>

#define TOE_ICMP_HLEN 8
#define TOE_ICMP_ECHO_REPLY 0
#define TOE_ICMP_DEST_UNREACH 3
#define TOE_ICMP_SOURCE_QUENCH 4
#define TOE_ICMP_REDIRECT 5
#define TOE_ICMP_ECHO_REQUEST 8
#define TOE_ICMP_TIME_EXCEEDED 11
#define TOE_ICMP_PARAM_PROBLEM 12
#define TOE_ICMP_TIMESTAMP 13

/* Destination unreachable codes */
#define TOE_ICMP_NET_UNREACH 0
#define TOE_ICMP_HOST_UNREACH 1
#define TOE_ICMP_PROTO_UNREACH 2
#define TOE_ICMP_PORT_UNREACH 3
#define TOE_ICMP_FRAG_NEEDED 4

/* A checked ICMP header; the body follows at p + TOE_ICMP_HLEN. */
struct toe_icmp_view {
  uint8_t type;
  uint8_t code;
  uint16_t id;       /* echo: identifier (host order) */
  uint16_t seq;      /* echo: sequence number (host order) */
  uint16_t next_mtu; /* dest unreachable/frag needed: next-hop MTU (RFC 1191), else 0 */
  uint8_t pointer;   /* parameter problem: pointer */
  const uint8_t *body;
  size_t body_len;
};

/*
 * Parses an ICMP message of `len` bytes (contiguous). Checks the length (>= 8) only; the checksum
 * is checked by the caller over the whole message (which may be a chain) with toe_csum_*.
 * Returns 0 or -TOE_EINVAL.
 */
int toe_icmp_parse(struct toe_icmp_view *v, const uint8_t *p, size_t len);

/* True for the error message types (3, 4, 5, 11, 12) that quote an offending datagram. */
int toe_icmp_is_error(uint8_t type);

/*
 * Writes an 8-byte ICMP header with checksum field zero: type, code and the 4-byte "rest of
 * header" (`rest`, host order, written big-endian). The caller computes the checksum over header
 * and body and stores it at offset 2.
 */
void toe_icmp_write_hdr(uint8_t *p, uint8_t type, uint8_t code, uint32_t rest);

#endif
