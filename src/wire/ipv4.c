/*
 * IPv4 header (RFC 791) parsing with options skipped safely, and emission of option-less headers.
 */
#include "wire/ipv4.h"

#include "common/byteorder.h"
#include "toe/errno.h"
#include "wire/checksum.h"

#include <string.h>

#define IPV4_RF 0x8000 /* reserved flag, "must be zero" (RFC 791 3.1 "Flags") */

#define IPOPT_EOL 0 /* end of option list */
#define IPOPT_NOP 1 /* no operation */

uint32_t toe_ipv4_load(const uint8_t *p)
{
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

void toe_ipv4_store(uint8_t *p, uint32_t a)
{
  p[0] = (uint8_t)(a >> 24);
  p[1] = (uint8_t)(a >> 16);
  p[2] = (uint8_t)(a >> 8);
  p[3] = (uint8_t)a;
}

/*
 * RFC 791 3.1 "Options": two formats. Case 1 is a single octet (only End of Option List and No
 * Operation have it); case 2 is type, length (counting type and length octets, so >= 2) and data.
 * End of Option List ends the list; whatever follows up to the end of the header is padding.
 * Every option must lie inside the header.
 */
int toe_ipv4_opts_check(const uint8_t *opts, size_t len)
{
  size_t i = 0;
  while (i < len) {
    uint8_t type = opts[i];
    if (type == IPOPT_EOL)
      return 0;
    if (type == IPOPT_NOP) {
      i++;
      continue;
    }
    if (len - i < 2)
      return -TOE_EINVAL; /* no room for the length octet */
    uint8_t olen = opts[i + 1];
    if (olen < 2 || olen > len - i)
      return -TOE_EINVAL;
    i += olen;
  }
  return 0;
}

int toe_ipv4_parse(struct toe_ipv4_view *v, const uint8_t *p, size_t avail, size_t pkt_len,
                   bool csum_ok)
{
  /* The caller promises avail <= pkt_len; never trust more than both say. */
  if (avail > pkt_len)
    avail = pkt_len;
  if (avail < TOE_IPV4_HLEN)
    return -TOE_EINVAL;
  if ((p[0] >> 4) != 4)
    return -TOE_EINVAL;
  uint16_t hlen = (uint16_t)((p[0] & 0x0f) * 4);
  if (hlen < TOE_IPV4_HLEN || hlen > avail)
    return -TOE_EINVAL;
  uint16_t tot = toe_load_be16(p + 2);
  /* Total length covers header and data (RFC 791 3.1); the link may add padding after it (short
   * Ethernet frames), so it may be less than pkt_len but never more. */
  if (tot < hlen || tot > pkt_len)
    return -TOE_EINVAL;
  /* The header checksum covers the header only, options included (RFC 791 3.1): a correct one
   * sums to 0xffff, i.e. the complemented fold is zero. */
  if (!csum_ok && toe_csum(p, hlen) != 0)
    return -TOE_EBADMSG;
  uint16_t fl = toe_load_be16(p + 6);
  if (fl & IPV4_RF)
    return -TOE_EINVAL;
  if (hlen > TOE_IPV4_HLEN && toe_ipv4_opts_check(p + TOE_IPV4_HLEN, hlen - TOE_IPV4_HLEN) != 0)
    return -TOE_EINVAL;

  v->hdr = p;
  v->hdr_len = hlen;
  v->total_len = tot;
  v->tos = p[1];
  v->id = toe_load_be16(p + 4);
  v->df = (fl & TOE_IPV4_DF) != 0;
  v->mf = (fl & TOE_IPV4_MF) != 0;
  v->frag_off = (uint16_t)((fl & TOE_IPV4_OFFMASK) * 8); /* <= 65528 */
  v->ttl = p[8];
  v->proto = p[9];
  v->src = toe_ipv4_load(p + 12);
  v->dst = toe_ipv4_load(p + 16);
  return 0;
}

size_t toe_ipv4_write(uint8_t *hdr, const struct toe_ipv4_fields *f)
{
  uint16_t fl = (uint16_t)((f->frag_off / 8) & TOE_IPV4_OFFMASK);
  if (f->df)
    fl |= TOE_IPV4_DF;
  if (f->mf)
    fl |= TOE_IPV4_MF;
  hdr[0] = 0x45; /* version 4, IHL 5 */
  hdr[1] = f->tos;
  toe_store_be16(hdr + 2, f->total_len);
  toe_store_be16(hdr + 4, f->id);
  toe_store_be16(hdr + 6, fl);
  hdr[8] = f->ttl;
  hdr[9] = f->proto;
  hdr[10] = 0;
  hdr[11] = 0;
  toe_ipv4_store(hdr + 12, f->src);
  toe_ipv4_store(hdr + 16, f->dst);
  uint16_t c = toe_csum(hdr, TOE_IPV4_HLEN);
  memcpy(hdr + 10, &c, 2);
  return TOE_IPV4_HLEN;
}

bool toe_ipv4_is_multicast(uint32_t a)
{
  return (a & 0xf0000000u) == 0xe0000000u;
}

bool toe_ipv4_is_loopback(uint32_t a)
{
  return (a >> 24) == 127;
}

uint32_t toe_ipv4_mask(uint8_t prefix_len)
{
  if (prefix_len == 0)
    return 0; /* a shift by 32 would be undefined */
  if (prefix_len >= 32)
    return 0xffffffffu;
  return 0xffffffffu << (32 - prefix_len);
}

bool toe_ipv4_is_broadcast(uint32_t a, uint32_t our_addr, uint8_t prefix_len)
{
  if (a == 0xffffffffu)
    return true; /* limited broadcast (RFC 1122 3.2.1.3 (c)) */
  /* Directed broadcast: our network with an all-ones host part (RFC 1122 3.2.1.3 (d)).
   * /31 (RFC 3021) and /32 have no broadcast address. */
  if (prefix_len > 30)
    return false;
  uint32_t m = toe_ipv4_mask(prefix_len);
  return (a & m) == (our_addr & m) && (a | m) == 0xffffffffu;
}
