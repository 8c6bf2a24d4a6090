/*
 * MLDv2 report builder (RFC 3810 5.2).
 */
#include "wire/mld.h"

#include "toe/errno.h"
#include "wire/byteorder.h"
#include "wire/icmpv6.h"

#include <string.h>

#define HBH_LEN 8

int toe_mld2_write_report(uint8_t *p, size_t cap, uint8_t rec_type,
                          const struct toe_in6_addr *groups, unsigned n)
{
  if (n > 0xffffu || cap < TOE_MLD2_HLEN || n > (cap - TOE_MLD2_HLEN) / TOE_MLD2_REC_LEN)
    return -TOE_EMSGSIZE;
  p[0] = TOE_ICMPV6_MLD2_REPORT;
  p[1] = 0;
  p[2] = p[3] = 0; /* checksum */
  p[4] = p[5] = 0; /* reserved */
  toe_store_be16(p + 6, (uint16_t)n);
  uint8_t *r = p + TOE_MLD2_HLEN;
  for (unsigned i = 0; i < n; i++, r += TOE_MLD2_REC_LEN) {
    r[0] = rec_type;
    r[1] = 0;        /* aux data len */
    r[2] = r[3] = 0; /* number of sources */
    memcpy(r + 4, groups[i].b, 16);
  }
  return (int)(TOE_MLD2_HLEN + (size_t)n * TOE_MLD2_REC_LEN);
}

int toe_mld2_build_packet(uint8_t *pkt, size_t cap, const struct toe_in6_addr *src,
                          uint8_t rec_type, const struct toe_in6_addr *groups, unsigned n)
{
  const size_t hdrs = TOE_IPV6_HLEN + HBH_LEN;
  if (cap < hdrs)
    return -TOE_EMSGSIZE;
  size_t room = cap - hdrs;
  if (room > 0xffffu - HBH_LEN)
    room = 0xffffu - HBH_LEN; /* Payload Length is 16 bits */
  int len = toe_mld2_write_report(pkt + hdrs, room, rec_type, groups, n);
  if (len < 0)
    return len;
  struct toe_ipv6_fields f = {.payload_len = (uint16_t)(HBH_LEN + (size_t)len),
                              .next_hdr = TOE_IPPROTO_HOPOPTS,
                              .hop_limit = 1,
                              .src = *src};
  toe_in6_all_mldv2_routers(&f.dst);
  toe_ipv6_write(pkt, &f);
  toe_ipv6_write_hbh_router_alert(pkt + TOE_IPV6_HLEN, TOE_IPPROTO_ICMPV6, 0);
  /* The checksum's pseudo-header names ICMPv6, not the hop-by-hop header (RFC 8200 8.1). */
  toe_icmpv6_finish(pkt + hdrs, (size_t)len, src, &f.dst);
  return (int)(hdrs + (size_t)len);
}
