/*
 * The tree's one pseudo-random generator: xorshift64* (Marsaglia's xorshift with Vigna's
 * multiplicative output scrambling, "An experimental exploration of Marsaglia's xorshift
 * generators, scrambled", 2016), seeded through splitmix64 (Steele, Lea, Flood, "Fast splittable
 * pseudorandom number generators", 2014) so that any seed, 0 included, gives a non-zero,
 * well-mixed state.
 *
 * Fast, reproducible from its seed and good enough for IP identifications, port choice, test
 * traffic and impairment decisions; predictable from its outputs, so never used where an attacker
 * must not guess (the engine's ISNs and SYN cookies use its keyed hash).
 *
 * Header-only and freestanding (the engine uses it): no libc, no division, no global state. The
 * caller owns the 64-bit state word.
 */
#ifndef TOE_COMMON_PRNG_H
#define TOE_COMMON_PRNG_H

#include <stdint.h>

/* splitmix64: advances *x by the golden-ratio increment and returns a mixed 64-bit word. Also a
 * generator on its own (every output of a counter run through its finaliser). */
static inline uint64_t toe_splitmix64(uint64_t *x)
{
  uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* Seeds the state word *s from any 64-bit seed; the state is never 0, xorshift's fixed point. */
static inline void toe_prng_seed(uint64_t *s, uint64_t seed)
{
  uint64_t x = seed;
  do
    *s = toe_splitmix64(&x);
  while (*s == 0);
}

/* The next 64-bit output of xorshift64* from the state word *s (which must not be 0; seed it with
 * toe_prng_seed, or any non-zero constant). Its high bits are the better ones. */
static inline uint64_t toe_prng_next(uint64_t *s)
{
  uint64_t x = *s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *s = x;
  return x * 0x2545f4914f6cdd1dull;
}

#endif
