/*
 * The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
 *
 * Everything here works in "native" representation: 16-bit words are loaded from the buffer with
 * memcpy in host byte order and summed as they are. RFC 1071 2(B) shows the ones'-complement sum is
 * byte-order independent: summing byte-swapped words gives the byte-swapped sum. So the folded,
 * complemented result, stored back with memcpy, is the correct field value on either endianness,
 * and no byte swapping is needed on the data path.
 *
 * Wide words: a 64-bit word is the sum of its four 16-bit words times 2^(16k), and
 * 2^16 = 1 (mod 0xffff), so summing 64-bit (or 32-bit) words and folding at the end gives the same
 * ones'-complement value as summing 16-bit words (RFC 1071 2(C), "parallel summation").
 */
#include "wire/checksum.h"

#include <string.h>

/* 1 GiB: at 32 bytes per iteration each accumulator gains < 2^34 per iteration, so 2^25
 * iterations stay far below 2^64. Longer buffers are summed in chunks of this size. */
#define CSUM_CHUNK ((size_t)1 << 30)

static inline uint64_t load64(const uint8_t *p)
{
  uint64_t w;
  memcpy(&w, p, sizeof w);
  return w;
}

static inline uint32_t load32(const uint8_t *p)
{
  uint32_t w;
  memcpy(&w, p, sizeof w);
  return w;
}

static inline uint16_t load16(const uint8_t *p)
{
  uint16_t w;
  memcpy(&w, p, sizeof w);
  return w;
}

/* Folds a 64-bit accumulator to 32 bits, keeping its value mod 0xffff. */
static inline uint32_t fold64(uint64_t a)
{
  a = (a & 0xffffffffu) + (a >> 32); /* <= 2^33 */
  a = (a & 0xffffffffu) + (a >> 32); /* <= 2^32 */
  return (uint32_t)a + (uint32_t)(a >> 32);
}

/*
 * Sums `len` bytes (any alignment; memcpy loads compile to plain unaligned loads where the CPU
 * allows them). Each 64-bit word is split into its two 32-bit halves and added to two
 * accumulators: no carry has to be tracked inside the loop, so the iterations are independent and
 * the compiler can keep several in flight or vectorise them.
 */
static uint64_t sum_block(const uint8_t *p, size_t len)
{
  uint64_t lo = 0, hi = 0;
  while (len >= 32) {
    uint64_t w0 = load64(p), w1 = load64(p + 8), w2 = load64(p + 16), w3 = load64(p + 24);
    lo += (w0 & 0xffffffffu) + (w1 & 0xffffffffu) + (w2 & 0xffffffffu) + (w3 & 0xffffffffu);
    hi += (w0 >> 32) + (w1 >> 32) + (w2 >> 32) + (w3 >> 32);
    p += 32;
    len -= 32;
  }
  while (len >= 8) {
    uint64_t w = load64(p);
    lo += w & 0xffffffffu;
    hi += w >> 32;
    p += 8;
    len -= 8;
  }
  if (len >= 4) {
    lo += load32(p);
    p += 4;
    len -= 4;
  }
  if (len >= 2) {
    lo += load16(p);
    p += 2;
    len -= 2;
  }
  if (len) {
    /* A trailing odd byte is the first (high-order in network order) byte of a word whose second
     * byte is zero (RFC 1071 4.1). Building that word in memory keeps it endian-neutral. */
    uint8_t last[2] = {p[0], 0};
    lo += load16(last);
  }
  /* lo and hi are each < 2^63 here; fold each before adding so the sum cannot overflow. */
  return (uint64_t)fold64(lo) + fold64(hi);
}

uint32_t toe_csum_partial(const void *data, size_t len, uint32_t sum)
{
  const uint8_t *p = data;
  uint64_t acc = sum;
  while (len > CSUM_CHUNK) {
    acc = fold64(acc + sum_block(p, CSUM_CHUNK)); /* CSUM_CHUNK is even: offsets stay even */
    p += CSUM_CHUNK;
    len -= CSUM_CHUNK;
  }
  acc += sum_block(p, len);
  return fold64(acc);
}

/* Folds a partial sum to 16 bits with end-around carry, without complementing. */
static inline uint16_t fold16(uint32_t s)
{
  s = (s & 0xffffu) + (s >> 16); /* <= 0x1fffe */
  s = (s & 0xffffu) + (s >> 16); /* <= 0xffff */
  return (uint16_t)s;
}

uint32_t toe_csum_combine(uint32_t a, uint32_t b, size_t offset)
{
  if (offset & 1) {
    /* A piece starting at an odd offset had each of its bytes summed in the other half of the
     * 16-bit word than it occupies in the region: swapping the bytes of its folded sum fixes
     * that (RFC 1071 2(B), byte-order independence). */
    uint16_t f = fold16(b);
    b = (uint16_t)((f << 8) | (f >> 8));
  }
  return toe_csum_add32(a, b);
}

uint16_t toe_csum_fold(uint32_t sum)
{
  return (uint16_t)~fold16(sum);
}

uint16_t toe_csum(const void *data, size_t len)
{
  return toe_csum_fold(toe_csum_partial(data, len, 0));
}

uint32_t toe_csum_pseudo_v4(uint32_t src, uint32_t dst, uint8_t proto, uint16_t len)
{
  /* The pseudo-header is src, dst, zero, protocol, length (RFC 768; RFC 9293 3.1). Its sum in
   * network order fits easily in 32 bits; convert the folded value to native representation by
   * storing it big-endian and loading it back, which is correct on either endianness. */
  uint32_t s = (src >> 16) + (src & 0xffffu) + (dst >> 16) + (dst & 0xffffu) + proto + len;
  uint16_t f = fold16(s);
  uint8_t be[2] = {(uint8_t)(f >> 8), (uint8_t)f};
  return load16(be);
}

/*
 * RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'). Unlike eqn. 2 (HC' = HC - ~m - m'), it computes
 * through a ones'-complement sum, which is never +0 unless every term is zero, so the result is
 * never 0xffff for a header that is not all zeros: exactly what a full recomputation gives
 * (RFC 1624 section 3). Working on 16-bit words in native representation is byte-order
 * independent, like the sum itself.
 */
uint16_t toe_csum_update16(uint16_t csum, uint16_t old_field, uint16_t new_field)
{
  uint32_t s = (uint32_t)(uint16_t)~csum + (uint16_t)~old_field + new_field;
  return (uint16_t)~fold16(s);
}

uint16_t toe_csum_update32(uint16_t csum, uint32_t old_field, uint32_t new_field)
{
  /* The two 16-bit words of the field in memory are the low and high halves of the native value
   * (in some order, which a sum does not care about). */
  uint32_t s = (uint32_t)(uint16_t)~csum + (uint16_t) ~(old_field & 0xffffu) +
               (uint16_t) ~(old_field >> 16) + (new_field & 0xffffu) + (new_field >> 16);
  return (uint16_t)~fold16(s);
}
