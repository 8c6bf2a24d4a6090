/*
 * Fuzzes the IPv4 header parser. The first input byte picks the split between contiguous bytes
 * and packet length and whether the link "verified" the checksum; the rest is the packet, copied
 * into a buffer of exactly `avail` bytes so that any read past it trips AddressSanitizer.
 * Every decision is compared with an independent model; accepted headers are re-emitted.
 */
#include "toe/errno.h"
#include "wire/checksum.h"
#include "wire/ipv4.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile unsigned sink;

static unsigned be16(const uint8_t *p)
{
  return (unsigned)p[0] << 8 | p[1];
}

static int model_opts_ok(const uint8_t *o, size_t len)
{
  for (size_t i = 0; i < len;) {
    if (o[i] == 0)
      return 1;
    if (o[i] == 1) {
      i += 1;
      continue;
    }
    if (i + 1 >= len || o[i + 1] < 2 || i + o[i + 1] > len)
      return 0;
    i += o[i + 1];
  }
  return 1;
}

/* 0 ok, 1 malformed, 2 bad checksum */
static int model(const uint8_t *p, size_t avail, size_t pkt_len, int csum_ok)
{
  if (avail > pkt_len)
    avail = pkt_len;
  if (avail < 20 || p[0] >> 4 != 4)
    return 1;
  size_t hl = (size_t)(p[0] & 15) * 4;
  if (hl < 20 || hl > avail)
    return 1;
  size_t tot = be16(p + 2);
  if (tot < hl || tot > pkt_len)
    return 1;
  if (!csum_ok) {
    uint32_t s = 0;
    for (size_t i = 0; i < hl; i += 2)
      s += be16(p + i);
    while (s >> 16)
      s = (s & 0xffff) + (s >> 16);
    if (s != 0xffff)
      return 2;
  }
  if (p[6] & 0x80)
    return 1;
  return model_opts_ok(p + 20, hl - 20) ? 0 : 1;
}

/* Field by field: struct padding is not part of the view. */
static int same_view(const struct toe_ipv4_view *a, const struct toe_ipv4_view *b)
{
  return a->hdr == b->hdr && a->hdr_len == b->hdr_len && a->total_len == b->total_len &&
         a->tos == b->tos && a->ttl == b->ttl && a->proto == b->proto && a->id == b->id &&
         a->frag_off == b->frag_off && a->mf == b->mf && a->df == b->df && a->src == b->src &&
         a->dst == b->dst;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 1)
    return 0;
  uint8_t ctl = data[0];
  data++;
  size--;
  int csum_ok = ctl & 1;
  size_t avail = size, pkt_len = size;
  if (ctl & 2)
    avail = size > (size_t)(ctl >> 2) ? size - (ctl >> 2) : 0; /* header contiguous, rest not */
  if (ctl & 0x80)
    pkt_len = size + (ctl & 0x7c); /* packet continues in further buffers */
  uint8_t *buf = malloc(avail ? avail : 1);
  if (!buf)
    return 0;
  memcpy(buf, data, avail);

  struct toe_ipv4_view v;
  int r = toe_ipv4_parse(&v, buf, avail, pkt_len, csum_ok);
  int m = model(buf, avail, pkt_len, csum_ok);
  if ((m == 0 && r != 0) || (m == 1 && r != -TOE_EINVAL) || (m == 2 && r != -TOE_EBADMSG))
    abort();
  if (r != 0) {
    free(buf);
    return 0;
  }

  if (v.hdr != buf || v.hdr_len < 20 || v.hdr_len > 60 || v.hdr_len % 4 || v.hdr_len > avail ||
      v.total_len < v.hdr_len || v.total_len > pkt_len)
    abort();
  if (v.frag_off % 8 || toe_ipv4_is_fragment(&v) != (v.mf || v.frag_off))
    abort();
  if (toe_ipv4_opts_check(buf + 20, v.hdr_len - 20u) != 0)
    abort();
  /* With the checksum verified, trusting the link must give the same answer. */
  struct toe_ipv4_view w;
  if (!csum_ok && (toe_ipv4_parse(&w, buf, avail, pkt_len, true) != 0 || !same_view(&w, &v)))
    abort();
  unsigned acc = v.tos ^ v.ttl ^ v.proto ^ v.id ^ v.src ^ v.dst;
  acc += toe_ipv4_is_multicast(v.dst) + toe_ipv4_is_loopback(v.src) +
         toe_ipv4_is_broadcast(v.dst, v.src, (uint8_t)(ctl & 0x3f)) + toe_ipv4_mask(ctl & 0x3f);
  for (size_t i = 0; i < v.hdr_len; i++)
    acc += buf[i];
  sink = acc;

  /* Re-emit without options and parse again: every field survives. */
  struct toe_ipv4_fields f = {.tos = v.tos,
                              .ttl = v.ttl,
                              .proto = v.proto,
                              .id = v.id,
                              .total_len = (uint16_t)(v.total_len - v.hdr_len + 20),
                              .frag_off = v.frag_off,
                              .mf = v.mf,
                              .df = v.df,
                              .src = v.src,
                              .dst = v.dst};
  uint8_t h[20];
  if (toe_ipv4_write(h, &f) != 20)
    abort();
  if (toe_ipv4_parse(&w, h, 20, f.total_len, false) != 0)
    abort();
  if (w.hdr_len != 20 || w.total_len != f.total_len || w.tos != v.tos || w.ttl != v.ttl ||
      w.proto != v.proto || w.id != v.id || w.frag_off != v.frag_off || w.mf != v.mf ||
      w.df != v.df || w.src != v.src || w.dst != v.dst)
    abort();
  /* An option-less header with a verified checksum re-emits byte for byte, except that a stored
   * 0xffff and a computed 0x0000 are the same ones'-complement value. */
  if (v.hdr_len == 20 && !csum_ok) {
    if (memcmp(h, buf, 10) != 0 || memcmp(h + 12, buf + 12, 8) != 0)
      abort();
    if (memcmp(h + 10, buf + 10, 2) != 0 &&
        !(buf[10] == 0xff && buf[11] == 0xff && h[10] == 0 && h[11] == 0))
      abort();
  }
  if (toe_csum(h, 20) != 0)
    abort();
  free(buf);
  return 0;
}
