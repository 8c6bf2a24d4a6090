/*
 * UDP header (RFC 768).
 */
#ifndef TOE_WIRE_UDP_H
#define TOE_WIRE_UDP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TOE_UDP_HLEN 8

struct toe_udp_view {
  uint16_t src_port; /* host order */
  uint16_t dst_port;
  uint16_t len;  /* length field: header + payload, 8..dgram_len */
  uint16_t csum; /* as stored (0 = none sent) */
};

/*
 * Parses a UDP header at `p` with `avail` contiguous bytes (>= 8) in a datagram of `dgram_len`
 * bytes (the IP payload length). Checks the length field (>= 8, <= dgram_len; bytes past it are
 * IP padding and ignored). The checksum is verified by the caller (toe_udp_csum_ok). Returns 0 or
 * -TOE_EINVAL.
 */
int toe_udp_parse(struct toe_udp_view *v, const uint8_t *p, size_t avail, size_t dgram_len);

/*
 * Checks a UDP checksum given the partial sum `sum` of the `len` bytes of the datagram (header
 * included, as toe_csum_partial computes it). A zero checksum field means "not computed" over
 * IPv4 and is accepted.
 */
bool toe_udp_csum_ok(const struct toe_udp_view *v, uint32_t sum, uint32_t src, uint32_t dst);

/* Writes an 8-byte header with checksum zero. */
void toe_udp_write(uint8_t *p, uint16_t src_port, uint16_t dst_port, uint16_t len);

/*
 * Finishes a UDP checksum: `sum` is the partial sum over header (checksum field zero) and payload.
 * Returns the field value; a computed 0 is sent as 0xffff (RFC 768).
 */
uint16_t toe_udp_csum_finish(uint32_t sum, uint32_t src, uint32_t dst, uint16_t len);

#endif
