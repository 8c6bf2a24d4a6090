/*
 * Pseudo-random numbers and the keyed hash.
 *
 * toe_random(): the tree's one PRNG (src/common/prng.h: xorshift64* seeded through splitmix64,
 * so that any seed, 0 included, gives a non-zero, well-mixed state). Fast and fine for IP
 * identifications and port choice; predictable from its outputs, so never used where an attacker
 * must not guess (RFC 6528 ISNs, SYN cookies, hash bucket choice): those use toe_keyed_hash().
 *
 * toe_keyed_hash(): SipHash-2-4 (Aumasson and Bernstein, "SipHash: a fast short-input PRF", 2012)
 * keyed with the 16-byte cfg.secret, implemented from the paper's description: the key is two
 * little-endian 64-bit words k0, k1; the state is four words initialised from the key and the
 * constants "somepseudorandomlygeneratedbytes"; each 8-byte little-endian message word m is
 * absorbed as v3 ^= m, two SipRounds, v0 ^= m; the final word holds the remaining bytes and, in
 * its top byte, the message length mod 256; finalisation is v2 ^= 0xff, four SipRounds, and the
 * output is v0 ^ v1 ^ v2 ^ v3.
 */
#include "common/byteorder.h"
#include "common/prng.h"
#include "engine/stack.h"

void toe_random_seed(struct toe_stack *st, uint64_t seed)
{
  toe_prng_seed(&st->rng, seed);
}

uint64_t toe_random(struct toe_stack *st)
{
  return toe_prng_next(&st->rng);
}

static inline uint64_t rotl(uint64_t x, unsigned b)
{
  return (x << b) | (x >> (64 - b));
}

struct sip {
  uint64_t v0, v1, v2, v3;
};

static inline void sip_round(struct sip *s)
{
  s->v0 += s->v1;
  s->v1 = rotl(s->v1, 13);
  s->v1 ^= s->v0;
  s->v0 = rotl(s->v0, 32);
  s->v2 += s->v3;
  s->v3 = rotl(s->v3, 16);
  s->v3 ^= s->v2;
  s->v0 += s->v3;
  s->v3 = rotl(s->v3, 21);
  s->v3 ^= s->v0;
  s->v2 += s->v1;
  s->v1 = rotl(s->v1, 17);
  s->v1 ^= s->v2;
  s->v2 = rotl(s->v2, 32);
}

static inline void sip_absorb(struct sip *s, uint64_t m)
{
  s->v3 ^= m;
  sip_round(s); /* c = 2 compression rounds */
  sip_round(s);
  s->v0 ^= m;
}

/* SipHash-2-4 of `len` bytes under the 16-byte `key`. */
uint64_t toe_siphash24(const uint8_t key[16], const void *data, size_t len)
{
  const uint8_t *p = data;
  uint64_t k0 = toe_load_le64(key), k1 = toe_load_le64(key + 8);
  struct sip s = {
      .v0 = k0 ^ 0x736f6d6570736575ull, /* "somepseu" */
      .v1 = k1 ^ 0x646f72616e646f6dull, /* "dorandom" */
      .v2 = k0 ^ 0x6c7967656e657261ull, /* "lygenera" */
      .v3 = k1 ^ 0x7465646279746573ull, /* "tedbytes" */
  };
  size_t whole = len & ~(size_t)7;
  for (size_t i = 0; i < whole; i += 8)
    sip_absorb(&s, toe_load_le64(p + i));
  uint64_t last = (uint64_t)(len & 0xff) << 56;
  for (size_t i = 0; i < (len & 7); i++)
    last |= (uint64_t)p[whole + i] << (8 * i);
  sip_absorb(&s, last);
  s.v2 ^= 0xff;
  for (int i = 0; i < 4; i++) /* d = 4 finalisation rounds */
    sip_round(&s);
  return s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
}

uint64_t toe_keyed_hash(const struct toe_stack *st, const void *data, size_t len)
{
  return toe_siphash24(st->cfg.secret, data, len);
}
