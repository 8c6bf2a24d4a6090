/*
 * Fuzzes the checksum routines against a byte loop: every alignment, splits at fuzzer-chosen
 * offsets, and RFC 1624 incremental updates against recomputation.
 */
#include "wire/checksum.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint16_t ref_sum(const uint8_t *p, size_t n)
{
  uint32_t s = 0;
  for (size_t i = 0; i < n; i++)
    s += (i & 1) ? p[i] : (uint32_t)p[i] << 8;
  while (s >> 16)
    s = (s & 0xffff) + (s >> 16);
  return (uint16_t)s;
}

static uint16_t be_of(uint16_t field)
{
  uint8_t b[2];
  memcpy(b, &field, 2);
  return (uint16_t)(b[0] << 8 | b[1]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 4)
    return 0;
  size_t k1 = data[0], k2 = data[1];
  uint32_t seed = (uint32_t)data[2] << 24 | (uint32_t)data[3] << 16 | data[2];
  data += 4;
  size -= 4;
  uint16_t want = (uint16_t)~ref_sum(data, size);

  uint8_t *b = malloc(size + 8);
  if (!b)
    return 0;
  for (size_t off = 0; off < 8; off++) {
    memcpy(b + off, data, size);
    if (be_of(toe_csum(b + off, size)) != want)
      abort();
  }
  /* The SIMD and portable paths and the fused copy agree with the byte loop (and copy exactly). */
  if (be_of(toe_csum_fold(toe_csum_partial_portable(data, size, 0))) != want)
    abort();
  memset(b, 0, size + 8);
  if (be_of(toe_csum_fold(toe_csum_copy(b + (k1 & 7), data, size, 0))) != want ||
      memcmp(b + (k1 & 7), data, size) != 0)
    abort();
  if (toe_csum_fold(toe_csum_partial_portable(data, size, seed)) !=
      toe_csum_fold(toe_csum_partial(data, size, seed)))
    abort();
  /* Three pieces at fuzzer-chosen split points. */
  size_t i = size ? k1 % (size + 1) : 0;
  size_t j = i + (size - i ? k2 % (size - i + 1) : 0);
  uint32_t s = toe_csum_partial(data, i, seed);
  s = toe_csum_combine(s, toe_csum_partial(data + i, j - i, 0), i);
  s = toe_csum_combine(s, toe_csum_partial(data + j, size - j, 0), j);
  uint32_t t = toe_csum_add32(toe_csum_partial(data, size, 0), seed);
  if (toe_csum_fold(s) != toe_csum_fold(t))
    abort();

  /* Incremental update of an even-aligned 16- and 32-bit field against recomputation. The region
   * must not be all zero after the change (the -0/+0 case RFC 1624 3 describes). */
  if (size >= 8 && size % 2 == 0) {
    memcpy(b, data, size);
    size_t fo = (k1 * 2) % (size - 4);
    uint16_t c = toe_csum(b, size);
    uint32_t oldf, newf = seed ^ (uint32_t)k2 << 8;
    memcpy(&oldf, b + fo, 4);
    memcpy(b + fo, &newf, 4);
    int nonzero = 0;
    for (size_t q = 0; q < size; q++)
      nonzero |= b[q];
    if (nonzero && toe_csum_update32(c, oldf, newf) != toe_csum(b, size))
      abort();
    uint16_t o16, n16 = (uint16_t)(seed >> 8);
    c = toe_csum(b, size);
    memcpy(&o16, b + fo, 2);
    memcpy(b + fo, &n16, 2);
    nonzero = 0;
    for (size_t q = 0; q < size; q++)
      nonzero |= b[q];
    if (nonzero && toe_csum_update16(c, o16, n16) != toe_csum(b, size))
      abort();
  }
  free(b);
  return 0;
}
