/*
 * ARP for IPv4 over Ethernet (RFC 826).
 */
#include "wire/arp.h"

#include "common/byteorder.h"
#include "toe/errno.h"

#include <string.h>

#define ARP_HTYPE_ETHER 1
#define ARP_PTYPE_IPV4 0x0800

/*
 * Layout (RFC 826 "Packet format"): hrd(2) pro(2) hln(1) pln(1) op(2) sha(6) spa(4) tha(6) tpa(4).
 * Only the Ethernet/IPv4 combination is accepted, so the address lengths are fixed and every
 * offset below is a constant inside the 28 checked bytes.
 */
int toe_arp_parse(struct toe_arp_view *v, const uint8_t *p, size_t len)
{
  if (len < TOE_ARP_LEN)
    return -TOE_EINVAL;
  if (toe_load_be16(p) != ARP_HTYPE_ETHER || toe_load_be16(p + 2) != ARP_PTYPE_IPV4 || p[4] != 6 ||
      p[5] != 4)
    return -TOE_EINVAL;
  uint16_t op = toe_load_be16(p + 6);
  if (op != TOE_ARP_OP_REQUEST && op != TOE_ARP_OP_REPLY)
    return -TOE_EINVAL;
  v->op = op;
  v->sha = p + 8;
  v->spa = toe_load_be32(p + 14);
  v->tha = p + 18;
  v->tpa = toe_load_be32(p + 24);
  return 0;
}

size_t toe_arp_write(uint8_t *p, uint16_t op, const uint8_t *sha, uint32_t spa, const uint8_t *tha,
                     uint32_t tpa)
{
  /* The addresses are copied out first: a reply may be built in place over the request, with
   * sha/tha pointing into this very buffer (RFC 826 "swap" step). */
  uint8_t s[6], t[6];
  memcpy(s, sha, 6);
  memcpy(t, tha, 6);
  toe_store_be16(p, ARP_HTYPE_ETHER);
  toe_store_be16(p + 2, ARP_PTYPE_IPV4);
  p[4] = 6;
  p[5] = 4;
  toe_store_be16(p + 6, op);
  memcpy(p + 8, s, 6);
  toe_store_be32(p + 14, spa);
  memcpy(p + 18, t, 6);
  toe_store_be32(p + 24, tpa);
  return TOE_ARP_LEN;
}
