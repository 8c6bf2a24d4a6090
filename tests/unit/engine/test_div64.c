/*
 * src/engine/div64.h: the divisions that replace `/` and `%` in the engine's per-packet paths on
 * 32-bit targets (reciprocal multiplies and a shift-and-subtract loop) must give exactly what `/`
 * gives. The portable versions are checked here against the compiler's own division on edge
 * values (powers of two and their neighbours, multiples of the divisor and their neighbours,
 * UINT64_MAX) and on a million pseudo-random values of every magnitude.
 */
#include "common/prng.h"
#include "engine/div64.h"
#include "testlib.h"

#include <stdint.h>

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd64(void)
{
  return toe_prng_next(&rng_state);
}

/* A value of random magnitude: uniform 64-bit values are almost all huge, so shift them down. */
static uint64_t rnd_any(void)
{
  uint64_t v = rnd64();
  return v >> (rnd64() % 64u);
}

static int fails;

static void check_consts(uint64_t x)
{
  if (toe_div1000_portable(x) != x / 1000u || toe_div1000000_portable(x) != x / 1000000u ||
      toe_div1e10_portable(x) != x / 10000000000ull || toe_div1000(x) != x / 1000u ||
      toe_div1000000(x) != x / 1000000u || toe_div1e10(x) != x / 10000000000ull) {
    if (fails++ < 5)
      testlib_fail(__FILE__, __LINE__, "constant division of %llu", (unsigned long long)x);
  }
}

static void check_var(uint64_t n, uint64_t d)
{
  if (d == 0)
    return;
  uint64_t r = ~0ull;
  uint64_t q = toe_udivmod64_portable(n, d, &r);
  if (q != n / d || r != n % d || toe_udiv64(n, d) != n / d || toe_umod64(n, d) != n % d) {
    if (fails++ < 5)
      testlib_fail(__FILE__, __LINE__, "%llu / %llu: got %llu rem %llu", (unsigned long long)n,
                   (unsigned long long)d, (unsigned long long)q, (unsigned long long)r);
  }
}

TEST(mulhi64)
{
  CHECK(toe_mulhi64(0, ~0ull) == 0);
  CHECK(toe_mulhi64(~0ull, ~0ull) == ~0ull - 1u); /* (2^64-1)^2 = 2^128 - 2^65 + 1 */
  CHECK(toe_mulhi64(1ull << 32, 1ull << 32) == 1u);
  CHECK(toe_mulhi64(1ull << 63, 2u) == 1u);
  CHECK(toe_mulhi64(0xffffffffull, 0xffffffffull) == 0);
  CHECK(toe_mulhi64(0x100000000ull + 1u, 0xffffffff00000000ull) == 0xffffffffull);
}

TEST(constant_divisors_edges)
{
  fails = 0;
  static const uint64_t divs[] = {1000u, 1000000u, 10000000000ull};
  for (unsigned b = 0; b < 64; b++)
    for (int k = -2; k <= 2; k++)
      check_consts((1ull << b) + (uint64_t)(int64_t)k);
  for (unsigned i = 0; i < 3; i++)
    for (uint64_t m = 1; m < 5000; m++)
      for (int k = -1; k <= 1; k++) {
        check_consts(m * divs[i] + (uint64_t)(int64_t)k);
        check_consts(~0ull / divs[i] * divs[i] - m * divs[i] + (uint64_t)(int64_t)k);
      }
  check_consts(~0ull);
  check_consts(~0ull - 1u);
  CHECK_EQ(fails, 0);
}

TEST(constant_divisors_random)
{
  fails = 0;
  for (int i = 0; i < 1000000; i++)
    check_consts(rnd_any());
  CHECK_EQ(fails, 0);
}

TEST(variable_divisors)
{
  fails = 0;
  /* Both halves: 32-bit operands (the hardware divide), 64-bit ones (the loop), divisors with the
   * top bit set, divisors larger than the dividend. */
  static const uint64_t edge[] = {1u,
                                  2u,
                                  3u,
                                  7u,
                                  1000u,
                                  0xffffffffull,
                                  0x100000000ull,
                                  0x100000001ull,
                                  1ull << 63,
                                  (1ull << 63) + 1u,
                                  ~0ull - 1u,
                                  ~0ull};
  for (unsigned i = 0; i < sizeof(edge) / sizeof(edge[0]); i++)
    for (unsigned j = 0; j < sizeof(edge) / sizeof(edge[0]); j++)
      check_var(edge[i], edge[j]);
  for (int i = 0; i < 300000; i++)
    check_var(rnd_any(), rnd_any());
  CHECK_EQ(fails, 0);
}

TEST(muldiv32)
{
  static const uint32_t edge[] = {0u,  1u,    9u,     10u,         19u,         20u,
                                  21u, 1460u, 65535u, 0x7fffffffu, 0xfffffff0u, 0xffffffffu};
  for (unsigned i = 0; i < sizeof(edge) / sizeof(edge[0]); i++) {
    uint32_t x = edge[i];
    CHECK_EQ(toe_muldiv32(x, 17u, 20u), (uint32_t)((uint64_t)x * 17u / 20u));
    CHECK_EQ(toe_muldiv32(x, 7u, 10u), (uint32_t)((uint64_t)x * 7u / 10u));
  }
  fails = 0;
  for (int i = 0; i < 200000; i++) {
    uint32_t x = (uint32_t)rnd_any();
    if (toe_muldiv32(x, 17u, 20u) != (uint32_t)((uint64_t)x * 17u / 20u) ||
        toe_muldiv32(x, 7u, 10u) != (uint32_t)((uint64_t)x * 7u / 10u))
      fails++;
  }
  CHECK_EQ(fails, 0);
}

TEST_MAIN()
