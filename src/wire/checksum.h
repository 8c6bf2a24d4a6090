/*
 * The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
 *
 * Representation: a "checksum" here is the 16-bit value exactly as it sits in the packet, read or
 * written with memcpy (so it is in network byte order in memory, whatever the host order). A
 * "partial sum" is an unfolded 32-bit accumulator; partial sums of consecutive pieces of one buffer
 * may be added with toe_csum_add32()/toe_csum_combine() and folded once at the end.
 */
#ifndef TOE_WIRE_CHECKSUM_H
#define TOE_WIRE_CHECKSUM_H

#include <stddef.h>
#include <stdint.h>

/*
 * Adds the bytes [data, data+len) to the partial sum `sum` and returns the new partial sum.
 * Works on any alignment and any length; it reads wide words, not bytes. `data` is treated as if it
 * started at an even offset of the checksummed region (use toe_csum_combine() for pieces that
 * start at odd offsets).
 */
uint32_t toe_csum_partial(const void *data, size_t len, uint32_t sum);

/*
 * Copies `len` bytes from `src` to `dst` (not overlapping) and returns
 * toe_csum_partial(src, len, sum): one pass over the bytes where they are copied anyway (the
 * send path's copy-in keeps the payload's sum with the buffer).
 */
uint32_t toe_csum_copy(void *dst, const void *src, size_t len, uint32_t sum);

/*
 * toe_csum_partial() without the SIMD path (64-bit words with end-around carry): the portable
 * code every target without SSE2 uses, kept callable on all of them so tests and the fuzzer can
 * compare both.
 */
uint32_t toe_csum_partial_portable(const void *data, size_t len, uint32_t sum);

/* Adds partial sum `b` of a piece starting at byte offset `offset` of the region to `a`. */
uint32_t toe_csum_combine(uint32_t a, uint32_t b, size_t offset);

/*
 * Adds two partial sums with end-around carry. 2^32 = 1 (mod 0xffff), so the carry out of bit 31
 * re-enters at bit 0 without changing the ones'-complement value (RFC 1071 2(A)).
 */
static inline uint32_t toe_csum_add32(uint32_t a, uint32_t b)
{
  uint32_t s = a + b;
  return s + (s < a);
}

/* Folds a partial sum to 16 bits and complements it: the value to store in a checksum field. */
uint16_t toe_csum_fold(uint32_t sum);

/* Checksum of one buffer: toe_csum_fold(toe_csum_partial(data, len, 0)). */
uint16_t toe_csum(const void *data, size_t len);

/*
 * Partial sum of the IPv4 pseudo-header (RFC 768, RFC 9293 3.1) for host-order addresses `src`,
 * `dst`, protocol `proto` and upper-layer length `len`.
 */
uint32_t toe_csum_pseudo_v4(uint32_t src, uint32_t dst, uint8_t proto, uint16_t len);

/*
 * RFC 1624 eqn. 3: the new checksum after a 16-bit field changed from `old_field` to `new_field`
 * (all three in packet representation, read with memcpy).
 */
uint16_t toe_csum_update16(uint16_t csum, uint16_t old_field, uint16_t new_field);

/* Same for a 32-bit field (e.g. an address), in packet representation. */
uint16_t toe_csum_update32(uint16_t csum, uint32_t old_field, uint32_t new_field);

#endif
