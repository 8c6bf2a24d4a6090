/*
 * Big-endian (network order) loads and stores of 16- and 32-bit fields, bytewise: safe at any
 * alignment (no unaligned pointer casts, which UBSan rejects) and free of host-order assumptions.
 * Compilers turn each into one load/store plus a byte swap.
 */
#ifndef TOE_WIRE_BYTEORDER_H
#define TOE_WIRE_BYTEORDER_H

#include <stdint.h>

static inline uint16_t toe_load_be16(const uint8_t *p)
{
  return (uint16_t)((p[0] << 8) | p[1]);
}

static inline uint32_t toe_load_be32(const uint8_t *p)
{
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline void toe_store_be16(uint8_t *p, uint16_t v)
{
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}

static inline void toe_store_be32(uint8_t *p, uint32_t v)
{
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

#endif
