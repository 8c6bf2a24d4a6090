/*
 * MLDv2 (RFC 3810) reports: what a host sends to join its solicited-node groups, so that switches
 * that snoop MLD deliver neighbour solicitations to it (RFC 4861 7.2.1, RFC 3810 5.2).
 */
#ifndef TOE_WIRE_MLD_H
#define TOE_WIRE_MLD_H

#include "wire/ipv6.h"

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

#endif
