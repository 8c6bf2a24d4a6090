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

/* Longer buffers are summed in chunks of this size, so that no accumulator below can overflow
 * (the SIMD lanes are the tightest bound: see sum_simd). Even, so chunk offsets stay even. */
#define CSUM_CHUNK ((size_t)1 << 19)

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

/* a + b with the carry out of bit 63 added back in at bit 0 (2^64 = 1 mod 0xffff): the
 * ones'-complement sum of 64-bit words. Compilers turn this into add + add-with-carry. */
static inline uint64_t add_carry64(uint64_t a, uint64_t b)
{
  uint64_t s = a + b;
  return s + (s < b);
}

/*
 * The tail under one vector/word block: whole 64-bit words with end-around carry, then 4, 2
 * and 1 bytes. Returns a 64-bit partial sum.
 */
static inline uint64_t sum_tail(const uint8_t *p, size_t len, uint64_t acc)
{
  while (len >= 8) {
    acc = add_carry64(acc, load64(p));
    p += 8;
    len -= 8;
  }
  if (len >= 4) {
    acc = add_carry64(acc, load32(p));
    p += 4;
    len -= 4;
  }
  if (len >= 2) {
    acc = add_carry64(acc, load16(p));
    p += 2;
    len -= 2;
  }
  if (len) {
    /* A trailing odd byte is the first (high-order in network order) byte of a word whose second
     * byte is zero (RFC 1071 4.1). Building that word in memory keeps it endian-neutral. */
    uint8_t last[2] = {p[0], 0};
    acc = add_carry64(acc, load16(last));
  }
  return acc;
}

#if defined(__SSE2__) && defined(__GNUC__) && !defined(TOE_CSUM_PORTABLE)
/*
 * SSE2 (every x86-64 has it), through the compiler's vector builtins so that no header beyond
 * the freestanding ones is needed. PMADDWD multiplies signed 16-bit words by 1 and adds pairs
 * into 32-bit lanes: one instruction sums eight words into four lanes. The words are unsigned,
 * so each is first XORed with 0x8000, which turns every word u into the signed value u - 32768:
 * the exact unsigned sum is then the lanes' sum plus 32768 per word. Per 16 bytes: an XOR with
 * the load folded in, PMADDWD, PADDD. A lane of one PMADDWD lies in [-2^16, 2^16 - 2] and each of
 * the two accumulators takes one per 32 bytes, so over CSUM_CHUNK = 2^19 bytes (2^14 additions)
 * it stays within [-2^30, 2^30): no 32-bit lane can overflow.
 */
typedef short toe_v8hi __attribute__((vector_size(16)));
typedef int toe_v4si __attribute__((vector_size(16)));
typedef long long toe_v2di __attribute__((vector_size(16)));
#define TOE_CSUM_SIMD 1

static inline toe_v8hi loadv(const uint8_t *p)
{
  toe_v8hi v;
  memcpy(&v, p, sizeof v);
  return v;
}

static inline uint64_t lanes_total(toe_v4si a, toe_v4si b, size_t words)
{
  int64_t t = (int64_t)a[0] + a[1] + a[2] + a[3] + b[0] + b[1] + b[2] + b[3];
  return (uint64_t)(t + (int64_t)words * 32768);
}

/* Sums len bytes (a multiple of 32) with SSE2; also copies them to dst when dst != NULL. */
static uint64_t sum_simd(uint8_t *dst, const uint8_t *p, size_t len)
{
  const toe_v8hi flip = {(short)0x8000, (short)0x8000, (short)0x8000, (short)0x8000,
                         (short)0x8000, (short)0x8000, (short)0x8000, (short)0x8000};
  const toe_v8hi ones = {1, 1, 1, 1, 1, 1, 1, 1};
  toe_v4si a0 = {0, 0, 0, 0}, a1 = {0, 0, 0, 0};
  size_t words = len / 2;
  if (dst) {
    for (; len >= 64; len -= 64, p += 64, dst += 64) {
      toe_v8hi v0 = loadv(p), v1 = loadv(p + 16), v2 = loadv(p + 32), v3 = loadv(p + 48);
      memcpy(dst, &v0, 16);
      memcpy(dst + 16, &v1, 16);
      memcpy(dst + 32, &v2, 16);
      memcpy(dst + 48, &v3, 16);
      a0 += (toe_v4si)__builtin_ia32_pmaddwd128(v0 ^ flip, ones);
      a1 += (toe_v4si)__builtin_ia32_pmaddwd128(v1 ^ flip, ones);
      a0 += (toe_v4si)__builtin_ia32_pmaddwd128(v2 ^ flip, ones);
      a1 += (toe_v4si)__builtin_ia32_pmaddwd128(v3 ^ flip, ones);
    }
    if (len) { /* 32 left */
      toe_v8hi v0 = loadv(p), v1 = loadv(p + 16);
      memcpy(dst, &v0, 16);
      memcpy(dst + 16, &v1, 16);
      a0 += (toe_v4si)__builtin_ia32_pmaddwd128(v0 ^ flip, ones);
      a1 += (toe_v4si)__builtin_ia32_pmaddwd128(v1 ^ flip, ones);
    }
  } else {
    for (; len >= 64; len -= 64, p += 64) {
      toe_v8hi v0 = loadv(p), v1 = loadv(p + 16), v2 = loadv(p + 32), v3 = loadv(p + 48);
      a0 += (toe_v4si)__builtin_ia32_pmaddwd128(v0 ^ flip, ones);
      a1 += (toe_v4si)__builtin_ia32_pmaddwd128(v1 ^ flip, ones);
      a0 += (toe_v4si)__builtin_ia32_pmaddwd128(v2 ^ flip, ones);
      a1 += (toe_v4si)__builtin_ia32_pmaddwd128(v3 ^ flip, ones);
    }
    if (len) { /* 32 left */
      a0 += (toe_v4si)__builtin_ia32_pmaddwd128(loadv(p) ^ flip, ones);
      a1 += (toe_v4si)__builtin_ia32_pmaddwd128(loadv(p + 16) ^ flip, ones);
    }
  }
  return lanes_total(a0, a1, words);
}
#endif

#if defined(TOE_CSUM_SIMD) && defined(__x86_64__)
/*
 * AVX2, where the CPU has it (most x86-64 since 2013): the same XOR + PMADDWD + PADDD scheme as
 * sum_simd on 32-byte vectors, half the instructions per byte. Compiled for AVX2 with a function
 * attribute and chosen at run time (__builtin_cpu_supports reads the CPU model libgcc or
 * compiler-rt filled in at start-up), so the binary still runs on any x86-64. Bounds as in
 * sum_simd: each accumulator takes one PMADDWD lane per 64 bytes, 2^13 of them per CSUM_CHUNK,
 * so a 32-bit lane stays within [-2^29, 2^29).
 */
#define TOE_CSUM_AVX2 1
typedef short toe_v16hi __attribute__((vector_size(32)));
typedef int toe_v8si __attribute__((vector_size(32)));

__attribute__((target("avx2"))) static inline toe_v16hi loadv32(const uint8_t *p)
{
  toe_v16hi v;
  memcpy(&v, p, sizeof v);
  return v;
}

/* Sums len bytes (a multiple of 32) with AVX2; also copies them to dst when dst != NULL. */
__attribute__((target("avx2"))) static uint64_t sum_avx2(uint8_t *dst, const uint8_t *p, size_t len)
{
  const toe_v16hi flip = {(short)0x8000, (short)0x8000, (short)0x8000, (short)0x8000,
                          (short)0x8000, (short)0x8000, (short)0x8000, (short)0x8000,
                          (short)0x8000, (short)0x8000, (short)0x8000, (short)0x8000,
                          (short)0x8000, (short)0x8000, (short)0x8000, (short)0x8000};
  const toe_v16hi ones = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
  toe_v8si a0 = {0, 0, 0, 0, 0, 0, 0, 0}, a1 = {0, 0, 0, 0, 0, 0, 0, 0};
  size_t words = len / 2;
  if (dst) {
    for (; len >= 64; len -= 64, p += 64, dst += 64) {
      toe_v16hi v0 = loadv32(p), v1 = loadv32(p + 32);
      memcpy(dst, &v0, 32);
      memcpy(dst + 32, &v1, 32);
      a0 += (toe_v8si)__builtin_ia32_pmaddwd256(v0 ^ flip, ones);
      a1 += (toe_v8si)__builtin_ia32_pmaddwd256(v1 ^ flip, ones);
    }
    if (len) { /* 32 left */
      toe_v16hi v0 = loadv32(p);
      memcpy(dst, &v0, 32);
      a0 += (toe_v8si)__builtin_ia32_pmaddwd256(v0 ^ flip, ones);
    }
  } else {
    for (; len >= 64; len -= 64, p += 64) {
      a0 += (toe_v8si)__builtin_ia32_pmaddwd256(loadv32(p) ^ flip, ones);
      a1 += (toe_v8si)__builtin_ia32_pmaddwd256(loadv32(p + 32) ^ flip, ones);
    }
    if (len) /* 32 left */
      a0 += (toe_v8si)__builtin_ia32_pmaddwd256(loadv32(p) ^ flip, ones);
  }
  a0 += a1;
  int64_t t = (int64_t)a0[0] + a0[1] + a0[2] + a0[3] + a0[4] + a0[5] + a0[6] + a0[7];
  return (uint64_t)(t + (int64_t)words * 32768);
}
#endif

/*
 * The portable block sum: 64-bit words with end-around carry, four independent accumulators so
 * the carries do not serialise the loop. Copies to dst as well when dst != NULL.
 */
static uint64_t sum_words(uint8_t *dst, const uint8_t *p, size_t len)
{
  uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
  for (; len; len -= 32, p += 32) {
    uint64_t w0 = load64(p), w1 = load64(p + 8), w2 = load64(p + 16), w3 = load64(p + 24);
    if (dst) {
      memcpy(dst, &w0, 8);
      memcpy(dst + 8, &w1, 8);
      memcpy(dst + 16, &w2, 8);
      memcpy(dst + 24, &w3, 8);
      dst += 32;
    }
    a0 = add_carry64(a0, w0);
    a1 = add_carry64(a1, w1);
    a2 = add_carry64(a2, w2);
    a3 = add_carry64(a3, w3);
  }
  return add_carry64(add_carry64(a0, a1), add_carry64(a2, a3));
}

/* Sums (and copies, when dst != NULL) len <= CSUM_CHUNK bytes at any alignment. */
static uint64_t sum_block(uint8_t *dst, const uint8_t *p, size_t len)
{
  size_t big = len & ~(size_t)31;
  uint64_t acc = 0;
  if (big) {
#ifdef TOE_CSUM_SIMD
    /* headers (20-60 bytes) are cheaper in words than with the vector set-up and reduction */
    if (big < 128)
      acc = sum_words(dst, p, big);
#ifdef TOE_CSUM_AVX2
    else if (__builtin_cpu_supports("avx2"))
      acc = sum_avx2(dst, p, big);
#endif
    else
      acc = sum_simd(dst, p, big);
#else
    acc = sum_words(dst, p, big);
#endif
    p += big;
    len -= big;
    if (dst)
      dst += big;
  }
  if (dst && len)
    memcpy(dst, p, len);
  return sum_tail(p, len, acc);
}

/*
 * Headers and other short buffers (len < 128): 32-bit words added into a 64-bit accumulator
 * without carry handling (32 words of < 2^32 plus a 32-bit seed stay far below 2^64), 16 bytes
 * per step, then the 1-3 byte tail. About half the instructions of the end-around-carry loop.
 */
static inline uint64_t sum_short(const uint8_t *p, size_t len, uint64_t acc)
{
  for (; len >= 16; len -= 16, p += 16)
    acc += (uint64_t)load32(p) + load32(p + 4) + (uint64_t)load32(p + 8) + load32(p + 12);
  if (len >= 8) {
    acc += (uint64_t)load32(p) + load32(p + 4);
    p += 8;
    len -= 8;
  }
  if (len >= 4) {
    acc += load32(p);
    p += 4;
    len -= 4;
  }
  if (len >= 2) {
    acc += load16(p);
    p += 2;
    len -= 2;
  }
  if (len) {
    uint8_t last[2] = {p[0], 0}; /* RFC 1071 4.1, as in sum_tail */
    acc += load16(last);
  }
  return acc;
}

/* Payloads (len >= 128), kept out of line so that the short path below needs no saved
 * registers: headers are summed several times per frame. */
__attribute__((noinline)) static uint32_t csum_long(const uint8_t *p, size_t len, uint32_t sum)
{
  uint64_t acc = sum;
  while (len > CSUM_CHUNK) {
    acc = add_carry64(acc, sum_block(NULL, p, CSUM_CHUNK));
    p += CSUM_CHUNK;
    len -= CSUM_CHUNK;
  }
  return fold64(add_carry64(acc, sum_block(NULL, p, len)));
}

uint32_t toe_csum_partial(const void *data, size_t len, uint32_t sum)
{
  const uint8_t *p = data;
  if (len < 128) /* headers: words straight away, no block set-up */
    return fold64(sum_short(p, len, sum));
  return csum_long(p, len, sum);
}

uint32_t toe_csum_copy(void *dst, const void *src, size_t len, uint32_t sum)
{
  uint8_t *d = dst;
  const uint8_t *p = src;
  uint64_t acc = sum;
  while (len > CSUM_CHUNK) {
    acc = add_carry64(acc, sum_block(d, p, CSUM_CHUNK));
    p += CSUM_CHUNK;
    d += CSUM_CHUNK;
    len -= CSUM_CHUNK;
  }
  return fold64(add_carry64(acc, sum_block(d, p, len)));
}

uint32_t toe_csum_partial_portable(const void *data, size_t len, uint32_t sum)
{
  const uint8_t *p = data;
  uint64_t acc = sum;
  while (len) {
    size_t n = len > CSUM_CHUNK ? CSUM_CHUNK : len;
    size_t big = n & ~(size_t)31;
    acc = add_carry64(acc, sum_tail(p + big, n - big, big ? sum_words(NULL, p, big) : 0));
    p += n;
    len -= n;
  }
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
