/*
 * MLDv2 (RFC 3810) reports: what a host sends to join its solicited-node groups, so that switches
 * that snoop MLD deliver neighbour solicitations to it (RFC 4861 7.2.1, RFC 3810 5.2).
 */
#ifndef TOE_WIRE_MLD_H
#define TOE_WIRE_MLD_H

#include "wire/ipv6.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Multicast address record types (RFC 3810 5.2.12). */
#define TOE_MLD2_MODE_IS_INCLUDE 1
#define TOE_MLD2_MODE_IS_EXCLUDE 2   /* current state, in answer to a query */
#define TOE_MLD2_CHANGE_TO_INCLUDE 3 /* leave (with no sources) */
#define TOE_MLD2_CHANGE_TO_EXCLUDE 4 /* join (with no sources) */
#define TOE_MLD2_ALLOW_NEW 5
#define TOE_MLD2_BLOCK_OLD 6

#define TOE_MLD2_HLEN 8     /* type, code, checksum, reserved, number of records */
#define TOE_MLD2_REC_LEN 20 /* a record with no sources and no auxiliary data */

/*
 * Writes an MLDv2 report (ICMPv6 type 143, checksum zero) with one source-less record of type
 * `rec_type` per group of `groups[0..n)`. Returns the length or -TOE_EMSGSIZE if `cap` is too small
 * or n > 65535.
 */
int toe_mld2_write_report(uint8_t *p, size_t cap, uint8_t rec_type,
                          const struct toe_in6_addr *groups, unsigned n);

/*
 * Writes a whole IPv6 packet carrying such a report, as RFC 3810 5.2.13-5.2.15 wants it: from
 * `src` (the link-local address, or :: while it is tentative: RFC 3590 4), to ff02::16, hop limit
 * 1, with a hop-by-hop Router Alert (value 0, RFC 2711) and the checksum stored. Returns the packet
 * length or -TOE_EMSGSIZE.
 */
int toe_mld2_build_packet(uint8_t *pkt, size_t cap, const struct toe_in6_addr *src,
                          uint8_t rec_type, const struct toe_in6_addr *groups, unsigned n);

/* A checked MLD query (RFC 2710 3 for version 1, RFC 3810 5.1 for version 2). */
struct toe_mld_query {
  bool v2;                   /* MLDv2 query (28 bytes or more) */
  uint32_t max_resp_ms;      /* Maximum Response Delay, decoded (RFC 3810 5.1.3) */
  struct toe_in6_addr group; /* :: for a general query */
  bool suppress;             /* S flag: routers skip timer updates (v2) */
  uint8_t qrv;               /* Querier's Robustness Variable, 0 = unset (v2) */
  uint32_t qqi_s;            /* Querier's Query Interval in seconds, decoded (v2, RFC 3810 5.1.9) */
  uint16_t n_sources;        /* source addresses, 16 bytes each at `sources` (v2) */
  const uint8_t *sources;
};

/*
 * Checks and decodes the MLD query `msg` (`len` bytes, ICMPv6 type 130, checksum already verified)
 * carried by `ip`; `router_alert` says the walk found a hop-by-hop Router Alert with value 0.
 * Checks (RFC 3810 5.1.14, 6.2; RFC 2710 3): a link-local source, hop limit 1, the Router Alert,
 * a multicast or unspecified group, a length of 24 (v1) or 28 plus 16 per source (v2). Lengths
 * 25..27 are neither and are refused (RFC 3810 8.1 says to ignore them).
 * Returns 0 or -TOE_EINVAL.
 */
int toe_mld_parse_query(struct toe_mld_query *q, const struct toe_ipv6_view *ip, bool router_alert,
                        const uint8_t *msg, size_t len);

#endif
