/*
 * Neighbor Discovery messages (RFC 4861): router solicitation and advertisement, neighbor
 * solicitation and advertisement, redirect, with their options, for Ethernet links (link-layer
 * addresses of 6 bytes, RFC 2464 6).
 *
 * Builders write the ICMPv6 message (checksum zero) into a caller buffer of `cap` bytes and return
 * its length, or -TOE_EMSGSIZE if it does not fit; toe_icmpv6_finish() then stores the checksum.
 * The IPv6 header of every ND message has hop limit 255 (TOE_ND_HOP_LIMIT, RFC 4861 4).
 */
#ifndef TOE_WIRE_NDP_H
#define TOE_WIRE_NDP_H

#include "wire/ipv6.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TOE_ND_HOP_LIMIT 255

/* Fixed part of each message, ICMPv6 header included (RFC 4861 4.1-4.5). */
#define TOE_ND_RS_LEN 8
#define TOE_ND_RA_LEN 16
#define TOE_ND_NS_LEN 24
#define TOE_ND_NA_LEN 24
#define TOE_ND_REDIRECT_LEN 40

/* Option types (RFC 4861 4.6, RFC 7527 for the nonce of enhanced DAD). */
#define TOE_ND_OPT_SLLA 1
#define TOE_ND_OPT_TLLA 2
#define TOE_ND_OPT_PREFIX 3
#define TOE_ND_OPT_REDIRECTED 4
#define TOE_ND_OPT_MTU 5
#define TOE_ND_OPT_NONCE 14

/* Prefix Information (RFC 4861 4.6.2). Lifetimes in seconds, 0xffffffff = infinity. */
struct toe_nd_prefix {
  uint8_t len;     /* prefix length, 0..128 */
  bool on_link;    /* L */
  bool autonomous; /* A: usable for SLAAC (RFC 4862 5.5.3) */
  uint32_t valid;
  uint32_t preferred;
  struct toe_in6_addr prefix;
};

/* A checked ND message. Pointers point into the message. */
struct toe_nd_view {
  uint8_t type;                     /* TOE_ICMPV6_ND_* */
  struct toe_in6_addr target;       /* NS, NA, redirect */
  struct toe_in6_addr dest;         /* redirect */
  bool router, solicited, override; /* NA flags R, S, O */
  uint8_t cur_hop_limit;            /* RA; 0 = unspecified */
  bool managed, other;              /* RA flags M, O */
  uint16_t router_lifetime;         /* RA, seconds; 0 = not a default router */
  uint32_t reachable_ms;            /* RA; 0 = unspecified */
  uint32_t retrans_ms;              /* RA; 0 = unspecified */
  const uint8_t *sll;               /* source link-layer address (6 bytes) or NULL */
  const uint8_t *tll;               /* target link-layer address (6 bytes) or NULL */
  uint32_t mtu;                     /* RA MTU option, 0 if none */
  const uint8_t *redirected;        /* redirect: the quoted packet, or NULL */
  uint16_t redirected_len;
  const uint8_t *nonce; /* NS/NA nonce option data (RFC 7527), or NULL */
  uint8_t nonce_len;
  uint8_t n_prefix;    /* well-formed prefix information options */
  const uint8_t *opts; /* the options, for toe_nd_prefix_next() */
  uint16_t opts_len;
};

/*
 * Checks and decodes the ND message `msg` (`len` bytes, the ICMPv6 payload of `ip`, its checksum
 * already verified by toe_icmpv6_parse()). `fragmented` says the packet carried a fragment header:
 * ND messages must not (RFC 6980 5). Applies every validity check of RFC 4861: hop limit 255,
 * code 0, the length of the fixed part, options of non-zero length that fit; per type:
 * RS (6.1.1): no source link-layer option from the unspecified address.
 * RA (6.1.2): source is link-local.
 * NS (7.1.1): target not multicast; from the unspecified address (DAD) only to a solicited-node
 *   group and without source link-layer option.
 * NA (7.1.2): target not multicast; to a multicast destination the Solicited flag is clear.
 * Redirect (8.1): source link-local, destination not multicast, target link-local or equal to the
 *   destination. (That the source is the current first-hop router is the engine's check.)
 * Options whose length does not fit their type on Ethernet are ignored (RFC 4861 4.6: "silently
 * ignore"), as are unknown options; the first of each kind counts.
 * Returns 0 or -TOE_EINVAL (discard silently).
 */
int toe_nd_parse(struct toe_nd_view *v, const struct toe_ipv6_view *ip, const uint8_t *msg,
                 size_t len, bool fragmented);

/* The next prefix information option of an RA after `*cursor` (start with 0), skipping those of
 * the wrong size or with a prefix length over 128 (not counted in n_prefix either). Returns true
 * and fills `out`, or false at the end. */
bool toe_nd_prefix_next(const struct toe_nd_view *v, size_t *cursor, struct toe_nd_prefix *out);

/* Router solicitation with an optional source link-layer address (`sll`, NULL from ::). */
int toe_nd_write_rs(uint8_t *p, size_t cap, const uint8_t *sll);

/* Neighbor solicitation for `target` with optional `sll` (NULL for DAD) and optional 6-byte
 * `nonce` (RFC 7527, for DAD; NULL for none). */
int toe_nd_write_ns(uint8_t *p, size_t cap, const struct toe_in6_addr *target, const uint8_t *sll,
                    const uint8_t *nonce);

/* Neighbor advertisement for `target` with flags R, S, O and optional `tll`. */
int toe_nd_write_na(uint8_t *p, size_t cap, const struct toe_in6_addr *target, bool router,
                    bool solicited, bool override, const uint8_t *tll);

/* Fields of a router advertisement. */
struct toe_nd_ra_fields {
  uint8_t cur_hop_limit;
  bool managed, other;
  uint16_t router_lifetime;
  uint32_t reachable_ms, retrans_ms;
  const uint8_t *sll; /* NULL: none */
  uint32_t mtu;       /* 0: no MTU option */
  const struct toe_nd_prefix *prefixes;
  unsigned n_prefixes;
};

int toe_nd_write_ra(uint8_t *p, size_t cap, const struct toe_nd_ra_fields *f);

/*
 * Redirect (RFC 4861 4.5) of `dest` to `target`, with optional `tll` and a Redirected Header
 * option quoting as much of the invoking packet as keeps the IPv6 packet within 1280 bytes (RFC
 * 4861 4.6.3, 8.2), padded to 8 bytes; invoking may be NULL.
 */
int toe_nd_write_redirect(uint8_t *p, size_t cap, const struct toe_in6_addr *target,
                          const struct toe_in6_addr *dest, const uint8_t *tll,
                          const uint8_t *invoking, size_t invoking_len);

#endif
