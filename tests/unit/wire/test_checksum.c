/*
 * Internet checksum (RFC 1071) and incremental update (RFC 1624): the wide-word implementation is
 * compared against a plain byte loop over every length, alignment and split point that matters.
 */
#include "common/prng.h"
#include "testlib.h"
#include "wire/checksum.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Deterministic PRNG (the tree's one, src/common/prng.h), so failures reproduce. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void)
{
  return (uint32_t)(toe_prng_next(&rng_state) >> 32);
}
static void fill_random(uint8_t *p, size_t n)
{
  for (size_t i = 0; i < n; i++)
    p[i] = (uint8_t)rnd();
}

/* Reference: RFC 1071 straight from the definition, big-endian 16-bit words, one at a time.
 * Returns the folded (not complemented) sum as a number. */
static uint16_t ref_sum(const uint8_t *p, size_t len)
{
  uint32_t s = 0;
  for (size_t i = 0; i < len; i++) {
    s += (i & 1) ? p[i] : (uint32_t)p[i] << 8;
    s = (s & 0xffff) + (s >> 16);
  }
  return (uint16_t)s;
}
static uint16_t ref_csum(const uint8_t *p, size_t len)
{
  return (uint16_t)~ref_sum(p, len);
}

/* Packet representation (memcpy'd field) <-> big-endian number. */
static uint16_t to_num(uint16_t field)
{
  uint8_t b[2];
  memcpy(b, &field, 2);
  return (uint16_t)(b[0] << 8 | b[1]);
}
static uint16_t to_field(uint16_t num)
{
  uint8_t b[2] = {(uint8_t)(num >> 8), (uint8_t)num};
  uint16_t f;
  memcpy(&f, b, 2);
  return f;
}

TEST(rfc1071_example)
{
  /* RFC 1071 3: bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2, so the checksum is 220d. */
  const uint8_t b[8] = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
  uint16_t c = toe_csum(b, sizeof b);
  uint8_t out[2];
  memcpy(out, &c, 2);
  CHECK_EQ(out[0], 0x22);
  CHECK_EQ(out[1], 0x0d);
  CHECK_EQ(to_num((uint16_t)~toe_csum_fold(toe_csum_partial(b, 8, 0))), 0xddf2);
  /* Storing the checksum into the data makes the whole verify to zero. */
  uint8_t w[10];
  memcpy(w, b, 8);
  memcpy(w + 8, &c, 2);
  CHECK_EQ(toe_csum(w, 10), 0);
}

TEST(empty_and_zero)
{
  uint8_t z[64] = {0};
  CHECK_EQ(toe_csum(z, 0), 0xffff);
  CHECK_EQ(toe_csum(z, 64), 0xffff);
  CHECK_EQ(toe_csum_partial(z, 0, 1234), 1234);
}

TEST(every_length_and_alignment)
{
  /* Lengths 0..300 (odd and even, shorter and longer than the 32-byte unrolled loop) at every
   * offset 0..7 of a buffer, against the byte loop. */
  static uint8_t buf[400];
  fill_random(buf, sizeof buf);
  for (size_t off = 0; off < 8; off++)
    for (size_t len = 0; len <= 300; len++) {
      uint16_t got = to_num(toe_csum(buf + off, len));
      uint16_t want = ref_csum(buf + off, len);
      if (got != want) {
        testlib_fail(__FILE__, __LINE__, "off %zu len %zu: got %04x want %04x", off, len, got,
                     want);
        return;
      }
    }
}

TEST(random_buffers)
{
  static uint8_t buf[9100];
  for (int iter = 0; iter < 300; iter++) {
    size_t len = rnd() % 9000;
    size_t off = rnd() % 64;
    fill_random(buf, off + len);
    /* Sometimes saturate with 0xff / 0x00 runs to stress the carries. */
    if (iter % 3 == 1)
      memset(buf + off, 0xff, len);
    if (iter % 7 == 2)
      memset(buf + off, 0x00, len / 2);
    CHECK_EQ(to_num(toe_csum(buf + off, len)), ref_csum(buf + off, len));
  }
}

TEST(all_ones_large)
{
  /* 1 MiB of 0xff: every 16-bit word is 0xffff; the accumulators run long without folding. */
  size_t n = 1u << 20;
  uint8_t *b = malloc(n + 1);
  REQUIRE(b != NULL);
  memset(b, 0xff, n + 1);
  CHECK_EQ(to_num(toe_csum(b, n)), ref_csum(b, n));
  CHECK_EQ(to_num(toe_csum(b, n + 1)), ref_csum(b, n + 1));
  CHECK_EQ(to_num(toe_csum(b + 1, n - 1)), ref_csum(b + 1, n - 1));
  free(b);
}

TEST(simd_portable_and_copy_agree)
{
  /* The SIMD path (where the target has one), the portable 64-bit path and the fused
   * copy-and-sum against the byte loop, over random lengths (past the 32/64-byte blocks and the
   * 512 KiB chunk) and every source/destination alignment mix; the copy must be exact. */
  size_t cap = (1u << 20) + 200;
  uint8_t *src = malloc(cap), *dst = malloc(cap);
  REQUIRE(src != NULL && dst != NULL);
  for (int iter = 0; iter < 400; iter++) {
    size_t len = iter < 4 ? (1u << 20) - (size_t)iter * 7 : rnd() % (iter % 10 == 0 ? 70000 : 2000);
    size_t so = rnd() % 64, doff = rnd() % 64;
    fill_random(src, so + len);
    if (iter % 4 == 1)
      memset(src + so, 0xff, len); /* every lane at its extreme */
    if (iter % 4 == 2)
      memset(src + so, 0x80, len); /* words 0x8080: the signed view's most negative side */
    uint32_t seed = rnd();
    uint16_t want = ref_csum(src + so, len);
    uint32_t s1 = toe_csum_partial(src + so, len, 0);
    uint32_t s2 = toe_csum_partial_portable(src + so, len, 0);
    memset(dst, 0x5a, cap);
    uint32_t s3 = toe_csum_copy(dst + doff, src + so, len, 0);
    CHECK_EQ(to_num(toe_csum_fold(s1)), want);
    CHECK_EQ(to_num(toe_csum_fold(s2)), want);
    CHECK_EQ(to_num(toe_csum_fold(s3)), want);
    CHECK_EQ(memcmp(dst + doff, src + so, len), 0);
    CHECK(doff == 0 || dst[doff - 1] == 0x5a);
    CHECK_EQ(dst[doff + len], 0x5a); /* nothing written past the end */
    /* an initial sum is carried the same way by all three */
    CHECK_EQ(toe_csum_fold(toe_csum_partial(src + so, len, seed)),
             toe_csum_fold(toe_csum_partial_portable(src + so, len, seed)));
    CHECK_EQ(toe_csum_fold(toe_csum_copy(dst, src + so, len, seed)),
             toe_csum_fold(toe_csum_partial(src + so, len, seed)));
  }
  free(src);
  free(dst);
}

TEST(initial_sum_carried)
{
  /* A large incoming partial sum must not overflow: same as adding it afterwards. */
  uint8_t b[77];
  fill_random(b, sizeof b);
  uint32_t seeds[] = {0, 1, 0xffff, 0x10000, 0xfffffffe, 0xffffffff, 0x80000000};
  for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
    uint32_t a = toe_csum_partial(b, sizeof b, seeds[i]);
    uint32_t c = toe_csum_add32(toe_csum_partial(b, sizeof b, 0), seeds[i]);
    CHECK_EQ(toe_csum_fold(a), toe_csum_fold(c));
  }
}

TEST(combine_every_split)
{
  /* A buffer summed in two pieces, split at every point (odd splits need the byte swap), equals
   * the one-piece checksum. */
  uint8_t b[131];
  fill_random(b, sizeof b);
  for (size_t len = 0; len <= sizeof b; len += (len < 20 ? 1 : 7)) {
    uint16_t want = ref_csum(b, len);
    for (size_t k = 0; k <= len; k++) {
      uint32_t a = toe_csum_partial(b, k, 0);
      uint32_t c = toe_csum_partial(b + k, len - k, 0);
      uint16_t got = to_num(toe_csum_fold(toe_csum_combine(a, c, k)));
      if (got != want) {
        testlib_fail(__FILE__, __LINE__, "len %zu split %zu: %04x != %04x", len, k, got, want);
        return;
      }
    }
  }
}

TEST(combine_three_pieces)
{
  uint8_t b[200];
  fill_random(b, sizeof b);
  for (int iter = 0; iter < 500; iter++) {
    size_t len = rnd() % sizeof b;
    size_t i = len ? rnd() % (len + 1) : 0;
    size_t j = i + (len - i ? rnd() % (len - i + 1) : 0);
    uint32_t s = toe_csum_partial(b, i, 0);
    s = toe_csum_combine(s, toe_csum_partial(b + i, j - i, 0), i);
    s = toe_csum_combine(s, toe_csum_partial(b + j, len - j, 0), j);
    CHECK_EQ(to_num(toe_csum_fold(s)), ref_csum(b, len));
  }
}

TEST(combine_without_swap_is_wrong_at_odd_offset)
{
  /* The test above must be able to fail: a plain add at an odd split gives a different value
   * for this data. */
  const uint8_t b[4] = {0x12, 0x34, 0x56, 0x78};
  uint32_t a = toe_csum_partial(b, 1, 0);
  uint32_t c = toe_csum_partial(b + 1, 3, 0);
  CHECK(to_num(toe_csum_fold(toe_csum_add32(a, c))) != ref_csum(b, 4));
  CHECK_EQ(to_num(toe_csum_fold(toe_csum_combine(a, c, 1))), ref_csum(b, 4));
}

TEST(pseudo_header_v4)
{
  for (int iter = 0; iter < 1000; iter++) {
    uint32_t src = rnd(), dst = rnd();
    uint8_t proto = (uint8_t)rnd();
    uint16_t len = (uint16_t)rnd();
    uint8_t ph[12] = {(uint8_t)(src >> 24),
                      (uint8_t)(src >> 16),
                      (uint8_t)(src >> 8),
                      (uint8_t)src,
                      (uint8_t)(dst >> 24),
                      (uint8_t)(dst >> 16),
                      (uint8_t)(dst >> 8),
                      (uint8_t)dst,
                      0,
                      proto,
                      (uint8_t)(len >> 8),
                      (uint8_t)len};
    CHECK_EQ(to_num(toe_csum_fold(toe_csum_pseudo_v4(src, dst, proto, len))), ref_csum(ph, 12));
  }
}

TEST(rfc1624_example)
{
  /* RFC 1624 4: the other header words sum to 0xcd7a and m = 0x5555, so HC = 0xdd2f. When m
   * becomes 0x3285 the right answer is 0x0000; eqn. 2 would give 0xffff. */
  uint16_t hc = to_field(0xdd2f);
  uint16_t got = toe_csum_update16(hc, to_field(0x5555), to_field(0x3285));
  CHECK_EQ(to_num(got), 0x0000);
  /* Same through a real buffer: 0xcd7a as one word plus m. */
  uint8_t b[4] = {0xcd, 0x7a, 0x32, 0x85};
  CHECK_EQ(to_num(toe_csum(b, 4)), 0x0000);
  /* And back again. */
  CHECK_EQ(to_num(toe_csum_update16(got, to_field(0x3285), to_field(0x5555))), 0xdd2f);
}

TEST(update16_matches_recompute)
{
  uint8_t h[40];
  for (int iter = 0; iter < 5000; iter++) {
    fill_random(h, sizeof h);
    h[0] |= 1; /* never all zero: the one case where an incremental update may differ (-0/+0) */
    size_t cs = 2 * (rnd() % 20), fo;
    do
      fo = 2 * (rnd() % 20);
    while (fo == cs);
    memset(h + cs, 0, 2);
    uint16_t c = toe_csum(h, sizeof h);
    memcpy(h + cs, &c, 2);
    uint16_t oldf, newf = (uint16_t)rnd();
    if (iter % 10 == 0)
      newf = (uint16_t)(iter % 20 == 0 ? 0 : 0xffff);
    memcpy(&oldf, h + fo, 2);
    memcpy(h + fo, &newf, 2);
    uint16_t inc = toe_csum_update16(c, oldf, newf);
    memset(h + cs, 0, 2);
    uint16_t full = toe_csum(h, sizeof h);
    if (inc != full) {
      testlib_fail(__FILE__, __LINE__, "iter %d: incremental %04x != recomputed %04x", iter, inc,
                   full);
      return;
    }
  }
}

TEST(update32_matches_recompute)
{
  uint8_t h[20];
  for (int iter = 0; iter < 5000; iter++) {
    fill_random(h, sizeof h);
    h[0] = 0x45;
    memset(h + 10, 0, 2);
    uint16_t c = toe_csum(h, sizeof h);
    memcpy(h + 10, &c, 2);
    size_t fo = (iter & 1) ? 12 : 16; /* source or destination address */
    uint32_t oldf, newf = rnd();
    memcpy(&oldf, h + fo, 4);
    memcpy(h + fo, &newf, 4);
    uint16_t inc = toe_csum_update32(c, oldf, newf);
    memset(h + 10, 0, 2);
    CHECK_EQ(inc, toe_csum(h, sizeof h));
    /* The header with the updated checksum verifies. */
    memcpy(h + 10, &inc, 2);
    CHECK_EQ(toe_csum(h, sizeof h), 0);
  }
}

TEST_MAIN()
