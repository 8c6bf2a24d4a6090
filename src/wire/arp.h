/*
 * ARP for IPv4 over Ethernet (RFC 826).
 */
#ifndef TOE_WIRE_ARP_H
#define TOE_WIRE_ARP_H

#include <stddef.h>
#include <stdint.h>

#define TOE_ARP_LEN 28 /* Ethernet/IPv4 ARP packet */
#define TOE_ARP_OP_REQUEST 1
#define TOE_ARP_OP_REPLY 2

/* A checked ARP packet. Addresses are host order; MACs point into the packet. */
struct toe_arp_view {
  uint16_t op;
  const uint8_t *sha; /* sender hardware address */
  uint32_t spa;       /* sender protocol address */
  const uint8_t *tha; /* target hardware address */
  uint32_t tpa;       /* target protocol address */
};

/*
 * Parses an ARP packet of `len` bytes (trailing padding allowed). Returns 0, or -TOE_EINVAL when
 * it is truncated, or not Ethernet (htype 1, hlen 6) / IPv4 (ptype 0x0800, plen 4), or the
 * operation is neither request nor reply.
 */
int toe_arp_parse(struct toe_arp_view *v, const uint8_t *p, size_t len);

/* Writes a 28-byte Ethernet/IPv4 ARP packet to `p`. Returns TOE_ARP_LEN. */
size_t toe_arp_write(uint8_t *p, uint16_t op, const uint8_t *sha, uint32_t spa, const uint8_t *tha,
                     uint32_t tpa);

#endif
