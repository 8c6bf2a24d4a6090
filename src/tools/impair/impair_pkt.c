/* toe-impair: frame parsing, checksum completion and software segmentation.
 *
 * Frames arrive from an AF_PACKET socket exactly as the sending kernel left them. On veth that
 * means two things a real wire would never carry: TCP/UDP checksums that are only "partial" (the
 * sender relied on checksum offload, RFC 1071 sum not yet done) and GSO super-frames of up to 64
 * KiB. We finish both here so that what we forward is an ordinary, correct wire frame that the
 * receiver verifies in full; only then can a corrupted bit be caught by its checksum.
 *
 * Frames are read with the tree's one frame parser, the wire layer's frame view (wire/frame.h),
 * and TCP/UDP checksums computed by it, so toe-impair, the capture filter and toed's link drivers
 * agree on what a frame holds. */
#include "common/byteorder.h"
#include "impair.h"
#include "wire/checksum.h"
#include "wire/frame.h"

#include <string.h>

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

int pkt_parse(const uint8_t *f, size_t len, struct pkt_info *pi)
{
  memset(pi, 0, sizeof(*pi));
  struct toe_frame_view v;
  if (toe_frame_parse(&v, f, len, len) != 0)
    return -1;
  pi->l2len = v.eth.hdr_len;
  pi->ethertype = v.eth.ethertype;
  pi->l3off = v.l3_off;
  pi->ipver = v.ipver;
  pi->ip_end = v.ip_end;
  pi->l4proto = v.l4_proto;
  pi->fragment = v.fragment;
  /* A fragment's L4 checksum spans other fragments: nothing to reach for here. */
  pi->l4off = v.fragment ? 0 : v.l4_off;
  return 0;
}

bool pkt_is_neigh(const uint8_t *f, size_t len)
{
  struct pkt_info pi;
  if (pkt_parse(f, len, &pi) != 0)
    return false;
  if (pi.ethertype == TOE_ETHERTYPE_ARP)
    return true;
  /* RFC 4861: router solicitation/advertisement, neighbour solicitation/advertisement, redirect. */
  if (pi.ipver == 6 && pi.l4proto == TOE_IPPROTO_ICMPV6 && pi.l4off && pi.l4off < pi.ip_end)
    return f[pi.l4off] >= 133 && f[pi.l4off] <= 137;
  return false;
}

int pkt_l4_csum(uint8_t *f, size_t len)
{
  struct toe_frame_view v;
  if (toe_frame_parse(&v, f, len, len) != 0 || toe_frame_l4_csum(f, &v) != 0)
    return -1;
  return 0;
}

int pkt_fix_csum(uint8_t *f, size_t len, size_t csum_start, size_t csum_offset)
{
  struct toe_frame_view v;
  if (toe_frame_parse(&v, f, len, len) != 0)
    return -1;
  /* The common case, recomputed from the headers so nothing depends on the partial sum. Only when
   * the kernel's csum_start is the header we found: a tunnel's inner checksum is not ours. */
  if (v.ipver && !v.fragment && v.l4_off == csum_start &&
      (v.l4_proto == TOE_IPPROTO_TCP || v.l4_proto == TOE_IPPROTO_UDP) &&
      toe_frame_l4_csum(f, &v) == 0)
    return 0;
  size_t end = v.ipver ? v.ip_end : len;
  if (csum_start < v.eth.hdr_len || csum_start >= end || csum_start + csum_offset + 2 > end)
    return -1;
  if (v.ipver && !v.fragment && v.l4_proto == IMP_PROTO_SCTP && v.l4_off == csum_start &&
      csum_offset == 8) {
    /* SCTP: CRC32c over the whole packet with the checksum field zeroed, stored least significant
     * byte first (RFC 9260 appendix A; Linux writes it as __le32). */
    uint8_t *c = f + csum_start + csum_offset;
    memset(c, 0, 4);
    toe_store_le32(c, pkt_crc32c(f + csum_start, end - csum_start));
    return 0;
  }
  /* What a NIC with generic checksum offload does: the field already holds the pseudo-header sum,
   * so sum from csum_start to the end and store the complement (RFC 1071). */
  uint16_t c = toe_csum(f + csum_start, end - csum_start);
  memcpy(f + csum_start + csum_offset, &c, 2);
  return 0;
}

int pkt_segment(const uint8_t *f, size_t len, bool udp, unsigned gso_size, uint8_t *scratch,
                pkt_seg_fn fn, void *ctx)
{
  struct pkt_info pi;
  if (pkt_parse(f, len, &pi) != 0 || !pi.ipver || !pi.l4off)
    return -1;
  if (pi.l4proto != (udp ? TOE_IPPROTO_UDP : TOE_IPPROTO_TCP) || gso_size == 0)
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
  uint32_t seq = udp ? 0 : toe_load_be32(f + pi.l4off + 4);
  uint16_t id = pi.ipver == 4 ? toe_load_be16(f + pi.l3off + 4) : 0;
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
      toe_store_be16(ip + 2, (uint16_t)ip_len);
      toe_store_be16(ip + 4, (uint16_t)(id + n));
      toe_store_be16(ip + 10, 0);
      uint16_t c = toe_csum(ip, ihl);
      memcpy(ip + 10, &c, 2);
    } else {
      toe_store_be16(scratch + pi.l3off + 4, (uint16_t)(ip_len - 40));
    }
    uint8_t *l4 = scratch + pi.l4off;
    if (udp) {
      toe_store_be16(l4 + 4, (uint16_t)(8 + chunk));
    } else {
      /* RFC 9293 / RFC 3168 section 6.1.2: sequence numbers advance by the payload; FIN and PSH
       * belong to the last segment only, CWR to the first only. */
      toe_store_be32(l4 + 4, seq + (uint32_t)off);
      if (!last)
        l4[13] &= (uint8_t) ~(0x01 | 0x08);
      if (n > 0)
        l4[13] &= (uint8_t)~0x80;
    }
    pkt_l4_csum(scratch, hl + chunk); /* the segment read afresh, its own lengths now set */
    fn(ctx, scratch, hl + chunk);
    n++;
    off += chunk;
  } while (off < payload);
  return n;
}
