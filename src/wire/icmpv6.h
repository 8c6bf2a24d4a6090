/*
 * ICMPv6 messages (RFC 4443): the checked view, the checksum over the IPv6 pseudo-header, the
 * echo and error builders and the rules on when an error may be sent.
 *
 * Builders write into a caller buffer of `cap` bytes and return the message length, or
 * -TOE_EMSGSIZE if it does not fit. They leave the checksum to toe_icmpv6_finish(), which needs
 * the IPv6 source and destination the message will carry.
 */
#ifndef TOE_WIRE_ICMPV6_H
#define TOE_WIRE_ICMPV6_H

#include "wire/ipv6.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TOE_ICMPV6_HLEN 8

/* Types (RFC 4443 2.1, RFC 4861 4, RFC 3810 5). Below 128: errors. */
#define TOE_ICMPV6_DEST_UNREACH 1
#define TOE_ICMPV6_PKT_TOO_BIG 2
#define TOE_ICMPV6_TIME_EXCEEDED 3
#define TOE_ICMPV6_PARAM_PROBLEM 4
#define TOE_ICMPV6_ECHO_REQUEST 128
#define TOE_ICMPV6_ECHO_REPLY 129
#define TOE_ICMPV6_MLD_QUERY 130
#define TOE_ICMPV6_ND_RS 133
#define TOE_ICMPV6_ND_RA 134
#define TOE_ICMPV6_ND_NS 135
#define TOE_ICMPV6_ND_NA 136
#define TOE_ICMPV6_ND_REDIRECT 137
#define TOE_ICMPV6_MLD2_REPORT 143

/* Destination Unreachable codes (RFC 4443 3.1). */
#define TOE_ICMPV6_NO_ROUTE 0
#define TOE_ICMPV6_ADMIN_PROHIBITED 1
#define TOE_ICMPV6_BEYOND_SCOPE 2
#define TOE_ICMPV6_ADDR_UNREACH 3
#define TOE_ICMPV6_PORT_UNREACH 4
/* Time Exceeded codes (RFC 4443 3.3). */
#define TOE_ICMPV6_HOP_LIMIT 0
#define TOE_ICMPV6_REASSEMBLY 1
/* Parameter Problem codes are TOE_IPV6_PP_* in wire/ipv6.h. */

/* An error quotes "as much of invoking packet as possible without the ICMPv6 packet exceeding
 * the minimum IPv6 MTU" (RFC 4443 2.4 (c)): 1280 - 40 - 8 bytes when sent without extension
 * headers. */
#define TOE_ICMPV6_MAX_QUOTE (TOE_IPV6_MIN_MTU - TOE_IPV6_HLEN - TOE_ICMPV6_HLEN)

/* A checked ICMPv6 message; the body follows the 8-byte header. */
struct toe_icmpv6_view {
  uint8_t type;
  uint8_t code;
  uint16_t id;      /* echo: identifier */
  uint16_t seq;     /* echo: sequence number */
  uint32_t mtu;     /* packet too big: MTU of the next hop */
  uint32_t pointer; /* parameter problem: offset of the offending byte in the quoted packet */
  const uint8_t *msg;
  size_t len; /* whole message, header included */
  const uint8_t *body;
  size_t body_len;
};

/*
 * Parses the `len`-byte ICMPv6 message at `p` (contiguous), carried from `src` to `dst`. Checks the
 * length (>= 8) and, unless `csum_ok` says the link verified it, the checksum, which ICMPv6 always
 * has (RFC 4443 2.3: pseudo-header of RFC 8200 8.1 with next header 58).
 * Returns 0, -TOE_EINVAL (too short) or -TOE_EBADMSG (bad checksum).
 */
int toe_icmpv6_parse(struct toe_icmpv6_view *v, const uint8_t *p, size_t len,
                     const struct toe_in6_addr *src, const struct toe_in6_addr *dst, bool csum_ok);

/* True for error messages (types 0..127, RFC 4443 2.1). */
static inline bool toe_icmpv6_is_error(uint8_t type)
{
  return type < 128;
}

/* The checksum field value for the `len`-byte message at `p` from src to dst, with whatever the
 * field holds treated as zero. */
uint16_t toe_icmpv6_csum(const uint8_t *p, size_t len, const struct toe_in6_addr *src,
                         const struct toe_in6_addr *dst);

/* Stores the checksum of the `len`-byte message at `p` from src to dst in it. */
void toe_icmpv6_finish(uint8_t *p, size_t len, const struct toe_in6_addr *src,
                       const struct toe_in6_addr *dst);

/*
 * Echo request or reply (RFC 4443 4.1, 4.2): `type`, identifier, sequence and `data_len` bytes of
 * `data` (may overlap p + 8: a reply built in place of its request). Returns the length or
 * -TOE_EMSGSIZE.
 */
int toe_icmpv6_write_echo(uint8_t *p, size_t cap, uint8_t type, uint16_t id, uint16_t seq,
                          const uint8_t *data, size_t data_len);

/*
 * How many bytes of an `invoking_len`-byte packet an error may quote, when the error itself is
 * sent behind `ext_len` bytes of extension headers: as much as fits in 1280 (RFC 4443 2.4 (c)).
 */
size_t toe_icmpv6_quote_len(size_t invoking_len, size_t ext_len);

/*
 * An error message (RFC 4443 3): `type` (1..4), `code`, `param` (the MTU for packet too big, the
 * pointer for parameter problem, unused otherwise) and as much of the invoking packet (`invoking`,
 * `invoking_len`, its IPv6 header first) as toe_icmpv6_quote_len(invoking_len, 0) allows and `cap`
 * holds. Returns the length, or -TOE_EMSGSIZE if `cap` is below 8, or -TOE_EINVAL for a type that
 * is not an error.
 */
int toe_icmpv6_write_error(uint8_t *p, size_t cap, uint8_t type, uint8_t code, uint32_t param,
                           const uint8_t *invoking, size_t invoking_len);

/*
 * RFC 4443 2.4 (e): whether an error (type, code) may be sent about the invoking packet `inv`.
 * Never about an ICMPv6 error or a redirect (`inv_icmp_type`: the ICMPv6 type if the invoking
 * packet's upper layer is ICMPv6 and the type byte was readable, else -1), nor about a packet to
 * an IPv6 multicast address or received as link-layer multicast or broadcast (`ll_group`), except
 * Packet Too Big and Parameter Problem code 2 (e.3, e.4, e.5); never about a packet whose source
 * does not name a single node: unspecified or multicast (e.6). Rate limiting (2.4 (f)) is the
 * engine's.
 */
bool toe_icmpv6_error_allowed(uint8_t type, uint8_t code, const struct toe_ipv6_view *inv,
                              bool ll_group, int inv_icmp_type);

/*
 * Parses the packet an error quotes (v's body): its IPv6 header and the extension headers that fit
 * the quote. The quote is usually truncated, so its Payload Length is not compared with what is
 * there. On success `ip` holds the quoted header and `ext` where its upper layer starts (which may
 * be at or past v->body_len if the quote stops earlier: check before reading ports).
 * Returns 0 or -TOE_EINVAL (no IPv6 header, or headers cut off or refused).
 */
int toe_icmpv6_parse_quoted(struct toe_ipv6_view *ip, struct toe_ipv6_ext *ext,
                            const struct toe_icmpv6_view *v);

#endif
