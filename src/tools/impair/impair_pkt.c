/* toe-impair: frame parsing, checksum completion and software segmentation.
 *
 * Frames arrive from an AF_PACKET socket exactly as the sending kernel left them. On veth that
 * means two things a real wire would never carry: TCP/UDP checksums that are only "partial" (the
 * sender relied on checksum offload, RFC 1071 sum not yet done) and GSO super-frames of up to 64
 * KiB. We finish both here so that what we forward is an ordinary, correct wire frame that the
 * receiver verifies in full; only then can a corrupted bit be caught by its checksum. */
#include "impair.h"

#include <string.h>

static uint16_t rd16(const uint8_t *p)
{
  return (uint16_t)(p[0] << 8 | p[1]);
}
static uint32_t rd32(const uint8_t *p)
{
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static void wr16(uint8_t *p, uint16_t v)
{
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}
static void wr32(uint8_t *p, uint32_t v)
{
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

uint64_t pkt_sum(const uint8_t *p, size_t n, uint64_t acc)
{
  /* RFC 1071: sum of big-endian 16-bit words; an odd last byte is padded with a zero byte. */
  while (n >= 2) {
    acc += (uint32_t)p[0] << 8 | p[1];
    p += 2;
    n -= 2;
  }
  if (n)
    acc += (uint32_t)p[0] << 8;
  return acc;
}

uint16_t pkt_fold(uint64_t acc)
{
  while (acc >> 16)
    acc = (acc & 0xffff) + (acc >> 16);
  return (uint16_t)acc;
}

uint32_t pkt_crc32c(const uint8_t *p, size_t n)
{
  /* CRC32c (Castagnoli, reflected polynomial 0x82F63B78), as SCTP uses (RFC 9260 appendix A). */
  uint32_t c = ~0u;
  while (n--) {
    c ^= *p++;
    for (int k = 0; k < 8; k++)
      c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
  }
  return ~c;
}

static void parse_ipv4(const uint8_t *f, size_t len, struct pkt_info *pi)
{
  size_t off = pi->l3off;
  if (len < off + 20 || (f[off] >> 4) != 4)
    return;
  size_t ihl = (size_t)(f[off] & 0x0f) * 4;
  size_t tot = rd16(f + off + 2);
  if (ihl < 20 || tot < ihl || off + tot > len)
    return;
  pi->ipver = 4;
  pi->ip_end = off + tot;
  pi->l4proto = f[off + 9];
  /* RFC 791: a fragment has MF set or a non-zero offset; its L4 checksum spans other fragments. */
  uint16_t frag = rd16(f + off + 6);
  pi->fragment = (frag & 0x3fff) != 0;
  if (!pi->fragment)
    pi->l4off = off + ihl;
}

static void parse_ipv6(const uint8_t *f, size_t len, struct pkt_info *pi)
{
  size_t off = pi->l3off;
  if (len < off + 40 || (f[off] >> 4) != 6)
    return;
  size_t plen = rd16(f + off + 4);
  /* A zero payload length means a jumbogram (RFC 2675); not something a 1500-byte link carries. */
  if (plen == 0 || off + 40 + plen > len)
    return;
  pi->ipver = 6;
  pi->ip_end = off + 40 + plen;
  uint8_t nh = f[off + 6];
  size_t p = off + 40;
  /* RFC 8200 section 4: walk the extension header chain to the upper-layer header. */
  for (int i = 0; i < 8; i++) {
    size_t hl;
    if (nh == 0 || nh == 43 || nh == 60) {
      if (p + 8 > pi->ip_end)
        return;
      hl = ((size_t)f[p + 1] + 1) * 8;
      if (nh == 43 && f[p + 3] != 0)
        pi->v6_routing = true; /* segments left: the pseudo-header uses the final destination */
    } else if (nh == 44) {
      if (p + 8 > pi->ip_end)
        return;
      hl = 8;
      uint16_t fo = rd16(f + p + 2);
      if ((fo & 0xfff9) != 0) /* offset or M flag */
        pi->fragment = true;
    } else if (nh == 51) {
      if (p + 8 > pi->ip_end)
        return;
      hl = ((size_t)f[p + 1] + 2) * 4; /* RFC 4302: AH length is in 4-octet units, minus 2 */
    } else {
      break;
    }
    if (p + hl > pi->ip_end)
      return;
    nh = f[p];
    p += hl;
  }
  pi->l4proto = nh;
  if (!pi->fragment)
    pi->l4off = p;
}

int pkt_parse(const uint8_t *f, size_t len, struct pkt_info *pi)
{
  memset(pi, 0, sizeof(*pi));
  if (len < IMP_ETH_HLEN)
    return -1;
  size_t off = IMP_ETH_HLEN;
  uint16_t et = rd16(f + 12);
  for (int i = 0; i < 2 && (et == IMP_ETHERTYPE_VLAN || et == IMP_ETHERTYPE_QINQ); i++) {
    if (len < off + 4)
      break;
    et = rd16(f + off + 2);
    off += 4;
  }
  pi->l2len = off;
  pi->ethertype = et;
  pi->l3off = off;
  if (et == IMP_ETHERTYPE_IPV4)
    parse_ipv4(f, len, pi);
  else if (et == IMP_ETHERTYPE_IPV6)
    parse_ipv6(f, len, pi);
  return 0;
}

bool pkt_is_neigh(const uint8_t *f, size_t len)
{
  struct pkt_info pi;
  if (pkt_parse(f, len, &pi) != 0)
    return false;
  if (pi.ethertype == IMP_ETHERTYPE_ARP)
    return true;
  /* RFC 4861: router solicitation/advertisement, neighbour solicitation/advertisement, redirect. */
  if (pi.ipver == 6 && pi.l4proto == IMP_PROTO_ICMPV6 && pi.l4off && pi.l4off < pi.ip_end)
    return f[pi.l4off] >= 133 && f[pi.l4off] <= 137;
  return false;
}

int pkt_l4_csum(uint8_t *f, const struct pkt_info *pi)
{
  if (!pi->ipver || !pi->l4off || pi->fragment || pi->v6_routing || pi->l4off > pi->ip_end)
    return -1;
  size_t l4len = pi->ip_end - pi->l4off;
  size_t coff;
  if (pi->l4proto == IMP_PROTO_TCP) {
    if (l4len < 20)
      return -1;
    coff = 16;
  } else if (pi->l4proto == IMP_PROTO_UDP) {
    if (l4len < 8)
      return -1;
    size_t ulen = rd16(f + pi->l4off + 4);
    if (ulen < 8 || ulen > l4len)
      return -1;
    l4len = ulen;
    coff = 6;
  } else {
    return -1;
  }
  /* Pseudo-header: RFC 793 section 3.1 / RFC 768 for IPv4, RFC 8200 section 8.1 for IPv6. */
  uint64_t s;
  if (pi->ipver == 4)
    s = pkt_sum(f + pi->l3off + 12, 8, 0);
  else
    s = pkt_sum(f + pi->l3off + 8, 32, 0);
  s += pi->l4proto;
  s += (l4len >> 16) + (l4len & 0xffff);
  wr16(f + pi->l4off + coff, 0);
  s = pkt_sum(f + pi->l4off, l4len, s);
  uint16_t c = (uint16_t)~pkt_fold(s);
  /* RFC 768: a computed UDP checksum of zero is sent as all ones (zero means "none" in IPv4, and
   * is invalid in IPv6, RFC 8200 section 8.1). */
  if (pi->l4proto == IMP_PROTO_UDP && c == 0)
    c = 0xffff;
  wr16(f + pi->l4off + coff, c);
  return 0;
}

int pkt_fix_csum(uint8_t *f, size_t len, size_t csum_start, size_t csum_offset)
{
  struct pkt_info pi;
  if (pkt_parse(f, len, &pi) != 0)
    return -1;
  /* The common case, recomputed from the headers so nothing depends on the partial sum. Only when
   * the kernel's csum_start is the header we found: a tunnel's inner checksum is not ours. */
  if (pi.ipver && pi.l4off == csum_start &&
      (pi.l4proto == IMP_PROTO_TCP || pi.l4proto == IMP_PROTO_UDP) && pkt_l4_csum(f, &pi) == 0)
    return 0;
  size_t end = pi.ipver ? pi.ip_end : len;
  if (csum_start < pi.l2len || csum_start >= end || csum_start + csum_offset + 2 > end)
    return -1;
  if (pi.ipver && pi.l4proto == IMP_PROTO_SCTP && pi.l4off == csum_start && csum_offset == 8) {
    /* SCTP: CRC32c over the whole packet with the checksum field zeroed, stored least significant
     * byte first (RFC 9260 appendix A; Linux writes it as __le32). */
    uint8_t *c = f + csum_start + csum_offset;
    memset(c, 0, 4);
    uint32_t crc = pkt_crc32c(f + csum_start, end - csum_start);
    c[0] = (uint8_t)crc;
    c[1] = (uint8_t)(crc >> 8);
    c[2] = (uint8_t)(crc >> 16);
    c[3] = (uint8_t)(crc >> 24);
    return 0;
  }
  /* What a NIC with generic checksum offload does: the field already holds the pseudo-header sum,
   * so sum from csum_start to the end and store the complement. */
  uint64_t s = pkt_sum(f + csum_start, end - csum_start, 0);
  wr16(f + csum_start + csum_offset, (uint16_t)~pkt_fold(s));
  return 0;
}

int pkt_segment(const uint8_t *f, size_t len, bool udp, unsigned gso_size, uint8_t *scratch,
                pkt_seg_fn fn, void *ctx)
{
  struct pkt_info pi;
  if (pkt_parse(f, len, &pi) != 0 || !pi.ipver || !pi.l4off || pi.fragment || pi.v6_routing)
    return -1;
  if (pi.l4proto != (udp ? IMP_PROTO_UDP : IMP_PROTO_TCP) || gso_size == 0)
    return -1;
  size_t hl;
  if (udp) {
    hl = pi.l4off + 8;
  } else {
    if (pi.l4off + 20 > pi.ip_end)
      return -1;
    size_t doff = (size_t)(f[pi.l4off + 12] >> 4) * 4;
    if (doff < 20)
      return -1;
    hl = pi.l4off + doff;
  }
  if (hl > pi.ip_end || hl > IMP_MAX_FRAME)
    return -1;
  size_t payload = pi.ip_end - hl;
  uint32_t seq = udp ? 0 : rd32(f + pi.l4off + 4);
  uint16_t id = pi.ipver == 4 ? rd16(f + pi.l3off + 4) : 0;
  size_t ihl = (size_t)(f[pi.l3off] & 0x0f) * 4;
  int n = 0;
  size_t off = 0;
  do {
    size_t chunk = payload - off < gso_size ? payload - off : gso_size;
    bool last = off + chunk >= payload;
    memcpy(scratch, f, hl);
    memcpy(scratch + hl, f + hl + off, chunk);
    size_t ip_len = hl - pi.l3off + chunk;
    if (pi.ipver == 4) {
      /* Each segment is its own datagram: own length, next ID (as Linux's software GSO does),
       * header checksum redone (RFC 791). */
      uint8_t *ip = scratch + pi.l3off;
      wr16(ip + 2, (uint16_t)ip_len);
      wr16(ip + 4, (uint16_t)(id + n));
      wr16(ip + 10, 0);
      wr16(ip + 10, (uint16_t)~pkt_fold(pkt_sum(ip, ihl, 0)));
    } else {
      wr16(scratch + pi.l3off + 4, (uint16_t)(ip_len - 40));
    }
    uint8_t *l4 = scratch + pi.l4off;
    if (udp) {
      wr16(l4 + 4, (uint16_t)(8 + chunk));
    } else {
      /* RFC 9293 / RFC 3168 section 6.1.2: sequence numbers advance by the payload; FIN and PSH
       * belong to the last segment only, CWR to the first only. */
      wr32(l4 + 4, seq + (uint32_t)off);
      if (!last)
        l4[13] &= (uint8_t) ~(0x01 | 0x08);
      if (n > 0)
        l4[13] &= (uint8_t)~0x80;
    }
    struct pkt_info si = pi;
    si.ip_end = hl + chunk;
    pkt_l4_csum(scratch, &si);
    fn(ctx, scratch, hl + chunk);
    n++;
    off += chunk;
  } while (off < payload);
  return n;
}
