/*
 * Fuzzes the UDP parser and checksum helpers: decisions against a model, the checksum check
 * against a byte loop, and emit -> finish -> verify round trips.
 */
#include "toe/errno.h"
#include "wire/checksum.h"
#include "wire/udp.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile unsigned sink;

/* Sum over pseudo-header and datagram, folded, big-endian numbers. */
static uint16_t ref_sum(const uint8_t *d, size_t len, uint32_t src, uint32_t dst)
{
  uint32_t s = (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff) + 17 + (uint32_t)len;
  for (size_t i = 0; i < len; i++)
    s += (i & 1) ? d[i] : (uint32_t)d[i] << 8;
  while (s >> 16)
    s = (s & 0xffff) + (s >> 16);
  return (uint16_t)s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 9)
    return 0;
  /* 8 bytes of addresses, then the datagram. */
  uint32_t src =
      (uint32_t)data[0] << 24 | (uint32_t)data[1] << 16 | (uint32_t)data[2] << 8 | data[3];
  uint32_t dst =
      (uint32_t)data[4] << 24 | (uint32_t)data[5] << 16 | (uint32_t)data[6] << 8 | data[7];
  data += 8;
  size -= 8;

  struct toe_udp_view v;
  int r = toe_udp_parse(&v, data, size, size);
  size_t flen = size >= 8 ? (size_t)(data[4] << 8 | data[5]) : 0;
  int want_ok = size >= 8 && flen >= 8 && flen <= size;
  if ((r == 0) != want_ok)
    abort();
  if (r != 0)
    return 0;
  if (v.len < 8 || v.len > size || v.src_port != (data[0] << 8 | data[1]) ||
      v.dst_port != (data[2] << 8 | data[3]))
    abort();

  uint32_t sum = toe_csum_partial(data, v.len, 0);
  int ok = toe_udp_csum_ok(&v, sum, src, dst);
  int want = (data[6] == 0 && data[7] == 0) || ref_sum(data, v.len, src, dst) == 0xffff;
  if (ok != want)
    abort();
  unsigned acc = 0;
  for (size_t i = 8; i < v.len; i++)
    acc += data[i];
  sink = acc;

  /* Rebuild the datagram and checksum it: the receiver's check must pass and the field is never
   * zero (RFC 768). */
  uint8_t *d = malloc(v.len);
  if (!d)
    return 0;
  toe_udp_write(d, v.src_port, v.dst_port, v.len);
  memcpy(d + 8, data + 8, v.len - 8u);
  uint16_t c = toe_udp_csum_finish(toe_csum_partial(d, v.len, 0), src, dst, v.len);
  if (c == 0)
    abort();
  memcpy(d + 6, &c, 2);
  struct toe_udp_view w;
  if (toe_udp_parse(&w, d, v.len, v.len) != 0 || w.src_port != v.src_port ||
      w.dst_port != v.dst_port || w.len != v.len || w.csum != c)
    abort();
  if (!toe_udp_csum_ok(&w, toe_csum_partial(d, v.len, 0), src, dst))
    abort();
  if (ref_sum(d, v.len, src, dst) != 0xffff)
    abort();
  free(d);
  return 0;
}
