/*
 * Fuzzes the TCP header and option parsers: invariants of the views, options re-emitted with
 * toe_tcp_write_opts()/toe_tcp_write() and parsed back, checksum finish -> verify.
 */
#include "toe/errno.h"
#include "wire/checksum.h"
#include "wire/tcp.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile unsigned sink;

#define SYN_ONLY (TOE_TCPOPT_HAS_MSS | TOE_TCPOPT_HAS_WSCALE | TOE_TCPOPT_HAS_SACK_PERM)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct toe_tcp_view v;
  int r = toe_tcp_parse(&v, data, size, size);
  int want_ok = size >= 20 && (data[12] >> 4) >= 5 && (size_t)(data[12] >> 4) * 4 <= size;
  if ((r == 0) != want_ok)
    abort();
  if (r != 0)
    return 0;
  /* Parse again from an exact-size copy of the header, so ASan sees any read past it (the
   * options parser may only look at hdr_len bytes). */
  uint8_t *hdr = malloc(v.hdr_len);
  if (!hdr)
    return 0;
  memcpy(hdr, data, v.hdr_len);
  if (toe_tcp_parse(&v, hdr, v.hdr_len, size) != 0)
    abort();
  if (v.hdr != hdr || v.hdr_len < 20 || v.hdr_len > 60 || v.hdr_len % 4 || v.flags != data[13])
    abort();

  struct toe_tcp_opts o;
  int ro = toe_tcp_parse_opts(&v, &o);
  if (ro != 0 && ro != -TOE_EINVAL)
    abort();
  if (o.has & ~0x1fu)
    abort();
  if (!(v.flags & TOE_TCP_SYN) && (o.has & SYN_ONLY))
    abort();
  if (((o.has & TOE_TCPOPT_HAS_SACK) != 0) != (o.sack_count != 0) ||
      o.sack_count > TOE_TCP_MAX_SACK_BLOCKS)
    abort();
  unsigned acc = v.src_port ^ v.dst_port ^ v.seq ^ v.ack ^ v.window ^ v.urg_ptr ^ v.csum;
  acc += o.mss + o.wscale + o.ts_val + o.ts_ecr + toe_seq_lt(v.seq, v.ack);
  for (unsigned i = 0; i < o.sack_count; i++)
    acc += o.sack[i].start ^ o.sack[i].end;
  sink = acc;

  /* Re-emit header and options, parse back. */
  uint8_t s[60 + 16];
  memset(s, 0xa5, sizeof s);
  size_t ol = toe_tcp_write_opts(s + 20, 40, &o);
  if (ol > 40 || ol % 4)
    abort();
  for (size_t i = 20 + ol; i < sizeof s; i++)
    if (s[i] != 0xa5)
      abort();
  struct toe_tcp_fields f = {.src_port = v.src_port,
                             .dst_port = v.dst_port,
                             .seq = v.seq,
                             .ack = v.ack,
                             .flags = v.flags,
                             .window = v.window,
                             .urg_ptr = v.urg_ptr};
  size_t hl = toe_tcp_write(s, &f, ol);
  if (hl != 20 + ol)
    abort();
  memcpy(s + hl, "payload", 7);
  struct toe_tcp_view w;
  struct toe_tcp_opts p;
  if (toe_tcp_parse(&w, s, hl, hl + 7) != 0 || toe_tcp_parse_opts(&w, &p) != 0)
    abort();
  if (w.hdr_len != hl || w.src_port != v.src_port || w.dst_port != v.dst_port || w.seq != v.seq ||
      w.ack != v.ack || w.flags != v.flags || w.window != v.window || w.urg_ptr != v.urg_ptr)
    abort();
  /* Everything but SACK blocks always fits (20 bytes at most); SACK is cut to what remains. */
  if ((p.has & ~TOE_TCPOPT_HAS_SACK) != (o.has & ~TOE_TCPOPT_HAS_SACK))
    abort();
  if ((o.has & TOE_TCPOPT_HAS_MSS) && p.mss != o.mss)
    abort();
  if ((o.has & TOE_TCPOPT_HAS_WSCALE) && p.wscale != o.wscale)
    abort();
  if ((o.has & TOE_TCPOPT_HAS_TS) && (p.ts_val != o.ts_val || p.ts_ecr != o.ts_ecr))
    abort();
  if (p.sack_count > o.sack_count || (o.sack_count && !p.sack_count))
    abort();
  for (unsigned i = 0; i < p.sack_count; i++)
    if (p.sack[i].start != o.sack[i].start || p.sack[i].end != o.sack[i].end)
      abort();
  if (p.sack_count < o.sack_count && 40 - ol >= 8)
    abort(); /* room was left, yet a block was dropped */

  /* Checksum: finish, then verify; a flipped payload bit must fail. */
  uint32_t a = (uint32_t)v.seq, b = v.ack;
  uint16_t len = (uint16_t)(hl + 7);
  uint16_t c = toe_tcp_csum_finish(toe_csum_partial(s, len, 0), a, b, len);
  memcpy(s + 16, &c, 2);
  if (!toe_tcp_csum_ok(toe_csum_partial(s, len, 0), a, b, len))
    abort();
  s[hl] ^= 0x01;
  if (toe_tcp_csum_ok(toe_csum_partial(s, len, 0), a, b, len))
    abort();
  free(hdr);
  return 0;
}
