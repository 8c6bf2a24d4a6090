/*
 * IPv4 header (RFC 791) with options skipped safely.
 */
#ifndef TOE_WIRE_IPV4_H
#define TOE_WIRE_IPV4_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TOE_IPV4_HLEN 20 /* header without options */
#define TOE_IPV4_MAX_HLEN 60
#define TOE_IPPROTO_ICMP 1
#define TOE_IPPROTO_TCP 6
#define TOE_IPPROTO_UDP 17
#define TOE_IPV4_DF 0x4000
#define TOE_IPV4_MF 0x2000
#define TOE_IPV4_OFFMASK 0x1fff

/* A checked IPv4 header. Addresses are host order. */
struct toe_ipv4_view {
  const uint8_t *hdr;
  uint16_t hdr_len;   /* IHL * 4, 20..60 */
  uint16_t total_len; /* header + payload, <= the packet length given to parse */
  uint8_t tos;
  uint8_t ttl;
  uint8_t proto;
  uint16_t id;
  uint16_t frag_off; /* offset of this fragment's payload in bytes (field * 8) */
  bool mf;           /* more fragments */
  bool df;           /* don't fragment */
  uint32_t src;
  uint32_t dst;
};

/*
 * Parses the IPv4 header at `p`. `avail` is how many bytes are contiguous at p (must cover the
 * whole header, options included); `pkt_len` is the length of the whole packet from p (>= avail).
 * Checks: version 4, IHL >= 5, header within avail, total length >= header and <= pkt_len, the
 * header checksum (unless `csum_ok` says the link checked it), the reserved flag clear, and that
 * the options are well formed (each option's length inside the header; RFC 791 3.1).
 * Returns 0, -TOE_EINVAL (malformed) or -TOE_EBADMSG (bad header checksum).
 */
int toe_ipv4_parse(struct toe_ipv4_view *v, const uint8_t *p, size_t avail, size_t pkt_len,
                   bool csum_ok);

/* True if this header describes a fragment (MF set or non-zero offset). */
static inline bool toe_ipv4_is_fragment(const struct toe_ipv4_view *v)
{
  return v->mf || v->frag_off != 0;
}

/*
 * Checks the `len` option bytes of a header (RFC 791 3.1): EOL ends the list, NOP is one byte,
 * every other option has a length >= 2 that stays inside `opts`. Returns 0 or -TOE_EINVAL.
 * toe_ipv4_parse() already applies it; callers may use it to tell bad options from other
 * malformations.
 */
int toe_ipv4_opts_check(const uint8_t *opts, size_t len);

/* Fields to write a 20-byte header (no options). */
struct toe_ipv4_fields {
  uint8_t tos;
  uint8_t ttl;
  uint8_t proto;
  uint16_t id;
  uint16_t total_len;
  uint16_t frag_off; /* bytes, multiple of 8 */
  bool mf;
  bool df;
  uint32_t src;
  uint32_t dst;
};

/* Writes a 20-byte header with its checksum to `hdr`. Returns TOE_IPV4_HLEN. */
size_t toe_ipv4_write(uint8_t *hdr, const struct toe_ipv4_fields *f);

/* Address classes (host order). */
bool toe_ipv4_is_multicast(uint32_t a); /* 224.0.0.0/4 */
bool toe_ipv4_is_loopback(uint32_t a);  /* 127.0.0.0/8 */
/* Limited broadcast or the directed broadcast of (addr, prefix_len). */
bool toe_ipv4_is_broadcast(uint32_t a, uint32_t our_addr, uint8_t prefix_len);
/* Netmask of a prefix length 0..32, host order. */
uint32_t toe_ipv4_mask(uint8_t prefix_len);

/* Reads/writes a big-endian IPv4 address from/to 4 bytes. */
uint32_t toe_ipv4_load(const uint8_t *p);
void toe_ipv4_store(uint8_t *p, uint32_t a);

#endif
