/*
 * TCP header and options (RFC 9293 3.1, RFC 7323, RFC 2018).
 */
#include "wire/tcp.h"

#include "common/byteorder.h"
#include "toe/errno.h"
#include "wire/checksum.h"
#include "wire/ipv4.h"

#include <string.h>

#define TCPOLEN_MSS 4
#define TCPOLEN_WSCALE 3
#define TCPOLEN_SACK_PERM 2
#define TCPOLEN_TIMESTAMP 10
#define TCPOLEN_SACK_BASE 2
#define TCPOLEN_SACK_PERBLOCK 8
#define TCP_MAX_OPTLEN 40

int toe_tcp_parse(struct toe_tcp_view *v, const uint8_t *p, size_t avail, size_t seg_len)
{
  if (avail > seg_len)
    avail = seg_len; /* bytes past the segment are not ours to read */
  if (avail < TOE_TCP_HLEN)
    return -TOE_EINVAL;
  /* Data offset: header length in 32-bit words, at least 5 (RFC 9293 3.1). */
  uint16_t hlen = (uint16_t)((p[12] >> 4) * 4);
  if (hlen < TOE_TCP_HLEN || hlen > avail)
    return -TOE_EINVAL;
  v->hdr = p;
  v->src_port = toe_load_be16(p);
  v->dst_port = toe_load_be16(p + 2);
  v->seq = toe_load_be32(p + 4);
  v->ack = toe_load_be32(p + 8);
  v->hdr_len = hlen;
  v->flags = p[13];
  v->window = toe_load_be16(p + 14);
  memcpy(&v->csum, p + 16, 2);
  v->urg_ptr = toe_load_be16(p + 18);
  return 0;
}

int toe_tcp_parse_opts(const struct toe_tcp_view *v, struct toe_tcp_opts *o)
{
  memset(o, 0, sizeof *o);
  const uint8_t *opt = v->hdr + TOE_TCP_HLEN;
  size_t len = (size_t)v->hdr_len - TOE_TCP_HLEN; /* parse checked hdr_len >= 20 */
  bool syn = (v->flags & TOE_TCP_SYN) != 0;
  size_t i = 0;
  while (i < len) {
    uint8_t kind = opt[i];
    if (kind == TOE_TCPOPT_EOL)
      break; /* the rest is padding (RFC 9293 3.1 "End of Option List") */
    if (kind == TOE_TCPOPT_NOP) {
      i++;
      continue;
    }
    /* Every other option has a length octet counting kind and length (RFC 9293 3.1); one that
     * is missing, < 2 or runs past the header makes the rest unparseable (RFC 9293 3.2: a
     * receiver must not loop or overrun on an illegal option length). */
    if (len - i < 2)
      return -TOE_EINVAL;
    uint8_t olen = opt[i + 1];
    if (olen < 2 || olen > len - i)
      return -TOE_EINVAL;
    const uint8_t *d = opt + i + 2;
    switch (kind) {
    case TOE_TCPOPT_MSS:
      /* Only meaningful on SYN segments (RFC 9293 3.7.1). */
      if (olen == TCPOLEN_MSS && syn) {
        o->mss = toe_load_be16(d);
        o->has |= TOE_TCPOPT_HAS_MSS;
      }
      break;
    case TOE_TCPOPT_WSCALE:
      /* Sent only in SYNs; ignored elsewhere (RFC 7323 2.2). */
      if (olen == TCPOLEN_WSCALE && syn) {
        o->wscale = d[0];
        o->has |= TOE_TCPOPT_HAS_WSCALE;
      }
      break;
    case TOE_TCPOPT_SACK_PERM:
      /* Sent only in SYNs (RFC 2018 2). */
      if (olen == TCPOLEN_SACK_PERM && syn)
        o->has |= TOE_TCPOPT_HAS_SACK_PERM;
      break;
    case TOE_TCPOPT_SACK: {
      /* Kind 5, length 2 + 8n, n blocks of left/right edges (RFC 2018 3); at most 4 blocks fit
       * in 40 bytes of options. */
      size_t body = (size_t)olen - TCPOLEN_SACK_BASE;
      size_t n = body / TCPOLEN_SACK_PERBLOCK;
      if (body % TCPOLEN_SACK_PERBLOCK == 0 && n >= 1 && n <= TOE_TCP_MAX_SACK_BLOCKS) {
        for (size_t b = 0; b < n; b++) {
          o->sack[b].start = toe_load_be32(d + b * 8);
          o->sack[b].end = toe_load_be32(d + b * 8 + 4);
        }
        o->sack_count = (uint8_t)n;
        o->has |= TOE_TCPOPT_HAS_SACK;
      }
      break;
    }
    case TOE_TCPOPT_TIMESTAMP:
      /* TSval and TSecr (RFC 7323 3.2); valid on any segment. */
      if (olen == TCPOLEN_TIMESTAMP) {
        o->ts_val = toe_load_be32(d);
        o->ts_ecr = toe_load_be32(d + 4);
        o->has |= TOE_TCPOPT_HAS_TS;
      }
      break;
    default:
      break; /* unknown: skipped by its length (RFC 9293 3.1, RFC 1122 4.2.2.5) */
    }
    i += olen;
  }
  return 0;
}

bool toe_tcp_csum_ok(uint32_t sum, uint32_t src, uint32_t dst, uint16_t len)
{
  sum = toe_csum_add32(sum, toe_csum_pseudo_v4(src, dst, TOE_IPPROTO_TCP, len));
  return toe_csum_fold(sum) == 0;
}

/*
 * Layouts follow what peers commonly send, keeping 4-byte fields 4-byte aligned (RFC 7323
 * Appendix A for the timestamp option):
 *   MSS:                      02 04 mm mm
 *   SACK-permitted + TS:      04 02 08 0a <TSval> <TSecr>          (12)
 *   TS alone:                 01 01 08 0a <TSval> <TSecr>          (12)
 *   SACK-permitted alone:     01 01 04 02                          (4)
 *   window scale:             01 03 03 ss                          (4)
 *   SACK:                     01 01 05 len <blocks>                (4 + 8n)
 * Each piece is a multiple of 4 bytes, so the result needs no trailing padding. A piece that does
 * not fit in min(cap, 40) is left out; SACK blocks are cut to what fits.
 */
size_t toe_tcp_write_opts(uint8_t *p, size_t cap, const struct toe_tcp_opts *o)
{
  size_t lim = (cap < TCP_MAX_OPTLEN ? cap : TCP_MAX_OPTLEN) & ~(size_t)3;
  size_t n = 0;
  bool sp = (o->has & TOE_TCPOPT_HAS_SACK_PERM) != 0;
  bool ts = (o->has & TOE_TCPOPT_HAS_TS) != 0;

  if ((o->has & TOE_TCPOPT_HAS_MSS) && lim - n >= 4) {
    p[n] = TOE_TCPOPT_MSS;
    p[n + 1] = TCPOLEN_MSS;
    toe_store_be16(p + n + 2, o->mss);
    n += 4;
  }
  if (sp && ts && lim - n >= 12) {
    p[n] = TOE_TCPOPT_SACK_PERM;
    p[n + 1] = TCPOLEN_SACK_PERM;
    n += 2;
    sp = false;
  } else if (ts && lim - n >= 12) {
    p[n] = TOE_TCPOPT_NOP;
    p[n + 1] = TOE_TCPOPT_NOP;
    n += 2;
  } else {
    ts = false; /* does not fit */
  }
  if (ts) {
    p[n] = TOE_TCPOPT_TIMESTAMP;
    p[n + 1] = TCPOLEN_TIMESTAMP;
    toe_store_be32(p + n + 2, o->ts_val);
    toe_store_be32(p + n + 6, o->ts_ecr);
    n += 10;
  }
  if (sp && lim - n >= 4) {
    p[n] = TOE_TCPOPT_NOP;
    p[n + 1] = TOE_TCPOPT_NOP;
    p[n + 2] = TOE_TCPOPT_SACK_PERM;
    p[n + 3] = TCPOLEN_SACK_PERM;
    n += 4;
  }
  if ((o->has & TOE_TCPOPT_HAS_WSCALE) && lim - n >= 4) {
    p[n] = TOE_TCPOPT_NOP;
    p[n + 1] = TOE_TCPOPT_WSCALE;
    p[n + 2] = TCPOLEN_WSCALE;
    p[n + 3] = o->wscale;
    n += 4;
  }
  if ((o->has & TOE_TCPOPT_HAS_SACK) && o->sack_count > 0 && lim - n >= 12) {
    size_t nb = (lim - n - 4) / TCPOLEN_SACK_PERBLOCK;
    if (nb > o->sack_count)
      nb = o->sack_count;
    if (nb > TOE_TCP_MAX_SACK_BLOCKS)
      nb = TOE_TCP_MAX_SACK_BLOCKS;
    p[n] = TOE_TCPOPT_NOP;
    p[n + 1] = TOE_TCPOPT_NOP;
    p[n + 2] = TOE_TCPOPT_SACK;
    p[n + 3] = (uint8_t)(TCPOLEN_SACK_BASE + nb * TCPOLEN_SACK_PERBLOCK);
    n += 4;
    for (size_t b = 0; b < nb; b++) {
      toe_store_be32(p + n, o->sack[b].start);
      toe_store_be32(p + n + 4, o->sack[b].end);
      n += 8;
    }
  }
  return n;
}

size_t toe_tcp_write(uint8_t *p, const struct toe_tcp_fields *f, size_t opt_len)
{
  /* The data offset can only express whole words up to 60 bytes; keep the returned length and
   * the field consistent even if a caller breaks the contract. */
  if (opt_len > TCP_MAX_OPTLEN)
    opt_len = TCP_MAX_OPTLEN;
  opt_len &= ~(size_t)3;
  size_t hlen = TOE_TCP_HLEN + opt_len;
  toe_store_be16(p, f->src_port);
  toe_store_be16(p + 2, f->dst_port);
  toe_store_be32(p + 4, f->seq);
  toe_store_be32(p + 8, f->ack);
  p[12] = (uint8_t)((hlen / 4) << 4);
  p[13] = f->flags;
  toe_store_be16(p + 14, f->window);
  p[16] = 0;
  p[17] = 0;
  toe_store_be16(p + 18, f->urg_ptr);
  return hlen;
}

uint16_t toe_tcp_csum_finish(uint32_t sum, uint32_t src, uint32_t dst, uint16_t len)
{
  return toe_csum_fold(toe_csum_add32(sum, toe_csum_pseudo_v4(src, dst, TOE_IPPROTO_TCP, len)));
}
