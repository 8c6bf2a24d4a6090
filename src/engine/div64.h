/* SPDX-License-Identifier: MIT */
/*
 * 64-bit division without libgcc on 32-bit firmware targets.
 *
 * The engine's clock is a 64-bit nanosecond count, so the per-packet paths divide 64-bit values
 * (ns to us and ms, CUBIC's window arithmetic). A 32-bit core (Cortex-M7, armhf, i386) has no
 * 64-bit divide instruction: a plain `/` there becomes a call to libgcc's __aeabi_uldivmod or
 * __udivdi3, a dependency the firmware build forbids (firmware/linkcheck.sh) and a slow loop in
 * the per-packet path. These helpers give the same results as `/` and `%`:
 *  - by the constants 10^3, 10^6 and 10^10: a multiply by a precomputed reciprocal and a shift
 *    (the 64x64 -> 128 high half built from four 32x32 -> 64 multiplies, which every 32-bit core
 *    has in hardware);
 *  - by a variable: a 32-bit hardware divide when both operands fit in 32 bits (the usual case),
 *    otherwise a shift-and-subtract loop of at most 64 steps.
 * On 64-bit targets they are plain `/` and `%` (one instruction; the compiler does the
 * reciprocal itself). The portable versions are always defined so that a 64-bit host can test
 * them against `/` (tests/unit/engine/test_div64.c).
 */
#ifndef TOE_ENGINE_DIV64_H
#define TOE_ENGINE_DIV64_H

#include <stdint.h>

#if UINTPTR_MAX > 0xffffffffu && !defined(TOE_DIV64_PORTABLE)
#define TOE_DIV64_NATIVE 1
#else
#define TOE_DIV64_NATIVE 0
#endif

/* The high 64 bits of the 128-bit product a * b. */
static inline uint64_t toe_mulhi64(uint64_t a, uint64_t b)
{
  uint64_t al = (uint32_t)a, ah = a >> 32, bl = (uint32_t)b, bh = b >> 32;
  uint64_t ll = al * bl, hl = ah * bl, lh = al * bh, hh = ah * bh;
  /* At most 3 * (2^32 - 1) + ... < 2^64: no carry is lost. */
  uint64_t mid = (ll >> 32) + (uint32_t)hl + lh;
  return hh + (hl >> 32) + (mid >> 32);
}

/* The reciprocals are the round-up of 2^(64+s)/d for the shift s that makes the result exact for
 * every 64-bit dividend (the same constants GCC and Clang use on 64-bit targets). */
static inline uint64_t toe_div1000_portable(uint64_t x)
{
  return toe_mulhi64(x >> 3, 0x20c49ba5e353f7cfull) >> 4;
}

static inline uint64_t toe_div1000000_portable(uint64_t x)
{
  return toe_mulhi64(x, 0x431bde82d7b634dbull) >> 18;
}

static inline uint64_t toe_div1e10_portable(uint64_t x)
{
  return toe_mulhi64(x, 0xdbe6fecebdedd5bfull) >> 33;
}

/* floor(x * m / d) with 32-bit operations only, for small constants (m < d, d * m < 2^32): with
 * x = q*d + r, x*m/d = q*m + r*m/d exactly. GCC at -Os would otherwise call __aeabi_uldivmod for
 * the 64-bit product divided by a constant. */
static inline uint32_t toe_muldiv32(uint32_t x, uint32_t m, uint32_t d)
{
  return x / d * m + x % d * m / d;
}

/* n / d and n % d (into *rem when not NULL); d must not be 0. */
static inline uint64_t toe_udivmod64_portable(uint64_t n, uint64_t d, uint64_t *rem)
{
  uint64_t q = 0, r = 0;
  if ((n >> 32) == 0 && (d >> 32) == 0) {
    q = (uint32_t)n / (uint32_t)d; /* one hardware divide */
    r = n - q * d;
  } else if (d > n) {
    r = n;
  } else if (d >> 63) {
    q = 1; /* n >= d > 2^63: the quotient is 1 */
    r = n - d;
  } else {
    /* Restoring division, one quotient bit per step; r < d < 2^63, so r << 1 cannot overflow. */
    for (int i = 63; i >= 0; i--) {
      r = (r << 1) | ((n >> i) & 1u);
      if (r >= d) {
        r -= d;
        q |= 1ull << i;
      }
    }
  }
  if (rem)
    *rem = r;
  return q;
}

#if TOE_DIV64_NATIVE
static inline uint64_t toe_div1000(uint64_t x)
{
  return x / 1000u;
}
static inline uint64_t toe_div1000000(uint64_t x)
{
  return x / 1000000u;
}
static inline uint64_t toe_div1e10(uint64_t x)
{
  return x / 10000000000ull;
}
static inline uint64_t toe_udiv64(uint64_t n, uint64_t d)
{
  return n / d;
}
static inline uint64_t toe_umod64(uint64_t n, uint64_t d)
{
  return n % d;
}
#else
static inline uint64_t toe_div1000(uint64_t x)
{
  return toe_div1000_portable(x);
}
static inline uint64_t toe_div1000000(uint64_t x)
{
  return toe_div1000000_portable(x);
}
static inline uint64_t toe_div1e10(uint64_t x)
{
  return toe_div1e10_portable(x);
}
static inline uint64_t toe_udiv64(uint64_t n, uint64_t d)
{
  return toe_udivmod64_portable(n, d, 0);
}
static inline uint64_t toe_umod64(uint64_t n, uint64_t d)
{
  uint64_t r;
  toe_udivmod64_portable(n, d, &r);
  return r;
}
#endif

#endif
