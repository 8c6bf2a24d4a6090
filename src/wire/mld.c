/*
 * MLDv2 report builder (RFC 3810 5.2).
 */
#include "wire/mld.h"

#include "common/byteorder.h"
#include "toe/errno.h"
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

/* RFC 3810 5.1.3 and 5.1.9: small values are literal; large ones a 3-bit exponent and a mantissa
 * with an implicit leading one, shifted by exp + 3. */
static uint32_t float_code(uint32_t code, unsigned bits)
{
  if (code < (1u << (bits - 1)))
    return code;
  unsigned mant_bits = bits - 4;
  uint32_t exp = (code >> mant_bits) & 7;
  uint32_t mant = code & ((1u << mant_bits) - 1);
  return (mant | (1u << mant_bits)) << (exp + 3);
}

int toe_mld_parse_query(struct toe_mld_query *q, const struct toe_ipv6_view *ip, bool router_alert,
                        const uint8_t *msg, size_t len)
{
  memset(q, 0, sizeof *q);
  if (len < 24 || msg[0] != TOE_ICMPV6_MLD_QUERY)
    return -TOE_EINVAL;
  /* RFC 3810 5.1.14: a query from a non-link-local source is discarded; MLD travels with hop
   * limit 1 and a Router Alert (RFC 3810 5, RFC 2710 3). */
  if (!toe_in6_is_link_local(&ip->src) || ip->hop_limit != 1 || !router_alert)
    return -TOE_EINVAL;
  memcpy(q->group.b, msg + 8, 16);
  if (!toe_in6_is_multicast(&q->group) && !toe_in6_is_unspecified(&q->group))
    return -TOE_EINVAL;
  uint16_t mrc = toe_load_be16(msg + 4);
  if (len == 24) { /* MLDv1: the delay in milliseconds (RFC 2710 3.4) */
    q->max_resp_ms = mrc;
    return 0;
  }
  if (len < 28)
    return -TOE_EINVAL;
  q->v2 = true;
  q->max_resp_ms = float_code(mrc, 16);
  q->suppress = (msg[24] & 0x08) != 0;
  q->qrv = msg[24] & 0x07;
  q->qqi_s = float_code(msg[25], 8);
  q->n_sources = toe_load_be16(msg + 26);
  if ((size_t)q->n_sources * 16 > len - 28)
    return -TOE_EINVAL;
  q->sources = msg + 28;
  return 0;
}
