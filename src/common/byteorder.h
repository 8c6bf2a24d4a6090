/*
 * Loads and stores of 16-, 32- and 64-bit fields in big-endian (network) and little-endian order,
 * bytewise: safe at any alignment (no unaligned pointer casts, which UBSan rejects) and free of
 * host-order assumptions, so the same on x86-64, s390x and the firmware targets. Compilers turn
 * each into one load/store plus a byte swap where one is needed.
 *
 * Header-only and freestanding (the engine and the wire layer use it): no libc, no global state.
 * Big-endian is the order of every IETF protocol field (RFC 1700 "Data Notations"); little-endian
 * is the order of the transport ABI, the pcap file formats and SipHash's message words.
 */
#ifndef TOE_COMMON_BYTEORDER_H
#define TOE_COMMON_BYTEORDER_H

#include <stdint.h>

static inline uint16_t toe_load_be16(const uint8_t *p)
{
  return (uint16_t)((p[0] << 8) | p[1]);
}

static inline uint32_t toe_load_be32(const uint8_t *p)
{
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline uint64_t toe_load_be64(const uint8_t *p)
{
  return ((uint64_t)toe_load_be32(p) << 32) | toe_load_be32(p + 4);
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

static inline void toe_store_be64(uint8_t *p, uint64_t v)
{
  toe_store_be32(p, (uint32_t)(v >> 32));
  toe_store_be32(p + 4, (uint32_t)v);
}

static inline uint16_t toe_load_le16(const uint8_t *p)
{
  return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t toe_load_le32(const uint8_t *p)
{
  return p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static inline uint64_t toe_load_le64(const uint8_t *p)
{
  return toe_load_le32(p) | ((uint64_t)toe_load_le32(p + 4) << 32);
}

static inline void toe_store_le16(uint8_t *p, uint16_t v)
{
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}

static inline void toe_store_le32(uint8_t *p, uint32_t v)
{
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}

static inline void toe_store_le64(uint8_t *p, uint64_t v)
{
  toe_store_le32(p, (uint32_t)v);
  toe_store_le32(p + 4, (uint32_t)(v >> 32));
}

#endif
