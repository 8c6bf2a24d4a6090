/*
 * Fuzzes the ICMP parser and the header writer, and (since ICMP checksums cover the whole
 * message) the checksum routines on the message at every alignment against a byte loop.
 */
#include "toe/errno.h"
#include "wire/checksum.h"
#include "wire/icmpv4.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile unsigned sink;

static uint16_t ref_csum_be(const uint8_t *p, size_t n)
{
  uint32_t s = 0;
  for (size_t i = 0; i < n; i++)
    s += (i & 1) ? p[i] : (uint32_t)p[i] << 8;
  while (s >> 16)
    s = (s & 0xffff) + (s >> 16);
  return (uint16_t)~s;
}

static uint16_t be_of(uint16_t field)
{
  uint8_t b[2];
  memcpy(b, &field, 2);
  return (uint16_t)(b[0] << 8 | b[1]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct toe_icmp_view v;
  int r = toe_icmp_parse(&v, data, size);
  if ((r == 0) != (size >= 8))
    abort();

  /* Checksum over the message from every starting offset 0..7 (alignments), and split in two at
   * an odd and an even point. */
  uint8_t *copy = malloc(size + 8);
  if (!copy)
    return 0;
  for (size_t off = 0; off < 8; off++) {
    memcpy(copy + off, data, size);
    if (be_of(toe_csum(copy + off, size)) != ref_csum_be(data, size))
      abort();
  }
  free(copy);
  if (size) {
    size_t k = data[0] % size;
    uint32_t s =
        toe_csum_combine(toe_csum_partial(data, k, 0), toe_csum_partial(data + k, size - k, 0), k);
    if (be_of(toe_csum_fold(s)) != ref_csum_be(data, size))
      abort();
  }
  if (r != 0)
    return 0;

  if (v.type != data[0] || v.code != data[1] || v.body != data + 8 || v.body_len != size - 8)
    abort();
  unsigned acc = v.id ^ v.seq ^ v.next_mtu ^ v.pointer ^ (unsigned)toe_icmp_is_error(v.type);
  for (size_t i = 0; i < v.body_len; i++)
    acc += v.body[i];
  sink = acc;
  if (v.next_mtu && !(v.type == TOE_ICMP_DEST_UNREACH && v.code == TOE_ICMP_FRAG_NEEDED))
    abort();
  if (v.pointer && v.type != TOE_ICMP_PARAM_PROBLEM)
    abort();

  /* Re-emit the header with the original "rest" bytes: identical apart from the checksum. */
  uint8_t *m = malloc(size);
  if (!m)
    return 0;
  uint32_t rest =
      (uint32_t)data[4] << 24 | (uint32_t)data[5] << 16 | (uint32_t)data[6] << 8 | data[7];
  toe_icmp_write_hdr(m, v.type, v.code, rest);
  if (m[2] || m[3] || m[0] != data[0] || m[1] != data[1] || memcmp(m + 4, data + 4, 4))
    abort();
  memcpy(m + 8, data + 8, size - 8);
  uint16_t c = toe_csum(m, size);
  memcpy(m + 2, &c, 2);
  if (toe_csum(m, size) != 0)
    abort();
  struct toe_icmp_view w;
  if (toe_icmp_parse(&w, m, size) != 0 || w.type != v.type || w.code != v.code || w.id != v.id ||
      w.seq != v.seq || w.next_mtu != v.next_mtu || w.pointer != v.pointer ||
      w.body_len != v.body_len)
    abort();
  free(m);
  return 0;
}
