/*
 * TCP header and options (RFC 9293 3.1, RFC 7323, RFC 2018, RFC 2883).
 */
#ifndef TOE_WIRE_TCP_H
#define TOE_WIRE_TCP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TOE_TCP_HLEN 20
#define TOE_TCP_MAX_HLEN 60

#define TOE_TCP_FIN 0x01
#define TOE_TCP_SYN 0x02
#define TOE_TCP_RST 0x04
#define TOE_TCP_PSH 0x08
#define TOE_TCP_ACK 0x10
#define TOE_TCP_URG 0x20
#define TOE_TCP_ECE 0x40
#define TOE_TCP_CWR 0x80

#define TOE_TCPOPT_EOL 0
#define TOE_TCPOPT_NOP 1
#define TOE_TCPOPT_MSS 2
#define TOE_TCPOPT_WSCALE 3
#define TOE_TCPOPT_SACK_PERM 4
#define TOE_TCPOPT_SACK 5
#define TOE_TCPOPT_TIMESTAMP 8

#define TOE_TCP_MAX_SACK_BLOCKS 4

struct toe_tcp_sack_block {
  uint32_t start; /* left edge */
  uint32_t end;   /* right edge (first sequence number after the block) */
};

/* Options found in a segment. `has` bits say which were present and valid. */
#define TOE_TCPOPT_HAS_MSS 0x01u
#define TOE_TCPOPT_HAS_WSCALE 0x02u
#define TOE_TCPOPT_HAS_SACK_PERM 0x04u
#define TOE_TCPOPT_HAS_SACK 0x08u
#define TOE_TCPOPT_HAS_TS 0x10u

struct toe_tcp_opts {
  uint32_t has;
  uint16_t mss;
  uint8_t wscale; /* as sent; the receiver clamps to 14 (RFC 7323 2.3) */
  uint8_t sack_count;
  uint32_t ts_val;
  uint32_t ts_ecr;
  struct toe_tcp_sack_block sack[TOE_TCP_MAX_SACK_BLOCKS];
};

/* A checked TCP header. */
struct toe_tcp_view {
  const uint8_t *hdr;
  uint16_t src_port; /* host order */
  uint16_t dst_port;
  uint32_t seq;
  uint32_t ack;
  uint16_t hdr_len; /* data offset * 4, 20..60 */
  uint8_t flags;    /* TOE_TCP_* */
  uint16_t window;  /* unscaled */
  uint16_t urg_ptr;
  uint16_t csum; /* as stored */
};

/*
 * Parses a TCP header at `p`: `avail` contiguous bytes must cover the whole header (options
 * included), `seg_len` is the segment length (IP payload). Checks data offset >= 5 and the header
 * within avail and seg_len. Returns 0 or -TOE_EINVAL. The checksum is checked by the caller
 * (toe_tcp_csum_ok).
 */
int toe_tcp_parse(struct toe_tcp_view *v, const uint8_t *p, size_t avail, size_t seg_len);

/*
 * Parses the options of a parsed header into `o`. Unknown options are skipped by their length;
 * options with a wrong length for their kind are ignored (not reported in `has`); an option whose
 * length runs past the header, or is < 2, ends parsing and returns -TOE_EINVAL (what was parsed
 * before stays in `o`). MSS/WSCALE/SACK_PERM are reported only on SYN segments (RFC 9293 3.2,
 * RFC 7323 2.2). Returns 0 otherwise.
 */
int toe_tcp_parse_opts(const struct toe_tcp_view *v, struct toe_tcp_opts *o);

/* Checks the checksum given the partial sum of all `len` segment bytes. */
bool toe_tcp_csum_ok(uint32_t sum, uint32_t src, uint32_t dst, uint16_t len);

/* Fields of a header to write. */
struct toe_tcp_fields {
  uint16_t src_port;
  uint16_t dst_port;
  uint32_t seq;
  uint32_t ack;
  uint8_t flags;
  uint16_t window;
  uint16_t urg_ptr;
};

/*
 * Writes the options in `o` (those flagged in `has`, SACK blocks up to what fits) at `p`, padded
 * with NOPs/EOL to a multiple of 4, in the usual order (MSS, SACK-permitted+timestamps,
 * window scale, SACK). Returns the bytes written (<= 40). `cap` bounds the writing.
 */
size_t toe_tcp_write_opts(uint8_t *p, size_t cap, const struct toe_tcp_opts *o);

/*
 * Writes a TCP header with `opt_len` bytes of options already at p + 20 (opt_len multiple of 4,
 * <= 40); the checksum field is zero. Returns the header length.
 */
size_t toe_tcp_write(uint8_t *p, const struct toe_tcp_fields *f, size_t opt_len);

/* Finishes the checksum: `sum` is the partial sum over header (field zero) and payload. */
uint16_t toe_tcp_csum_finish(uint32_t sum, uint32_t src, uint32_t dst, uint16_t len);

/* Sequence-number comparisons modulo 2^32 (RFC 9293 3.4). */
static inline bool toe_seq_lt(uint32_t a, uint32_t b)
{
  return (int32_t)(a - b) < 0;
}
static inline bool toe_seq_le(uint32_t a, uint32_t b)
{
  return (int32_t)(a - b) <= 0;
}
static inline bool toe_seq_gt(uint32_t a, uint32_t b)
{
  return (int32_t)(a - b) > 0;
}
static inline bool toe_seq_ge(uint32_t a, uint32_t b)
{
  return (int32_t)(a - b) >= 0;
}

#endif
