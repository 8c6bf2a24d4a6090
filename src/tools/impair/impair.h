/* toe-impair: a userspace network impairment tool for tests (this kernel has no netem).
 *
 * Shared declarations of the frame-level helpers (impair_pkt.c) and the seeded PRNG used by the
 * forwarding loop (impair_main.c). Ordinary Linux C, not engine code. */
#ifndef TOE_IMPAIR_H
#define TOE_IMPAIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Largest frame we read from a packet socket: veth peers hand over GSO super-frames of up to 64 KiB
 * of IP packet, plus the Ethernet header and up to two VLAN tags. */
#define IMP_MAX_FRAME (65536 + 64)

/* Ethernet, IP and transport numbers are the wire layer's (TOE_ETHERTYPE_*, TOE_IPPROTO_*); SCTP
 * is the one the engine does not speak. */
#define IMP_PROTO_SCTP 132

/* What pkt_parse found in a frame. Offsets are from the start of the Ethernet header. */
struct pkt_info {
  size_t l2len;       /* Ethernet header plus any VLAN tags */
  uint16_t ethertype; /* innermost ethertype */
  int ipver;          /* 4, 6 or 0 (not IP, or a malformed IP header) */
  size_t l3off;
  size_t ip_end;   /* end of the IP packet per its length field (frame may carry padding) */
  size_t l4off;    /* 0 if there is no L4 header we can reach */
  uint8_t l4proto; /* upper-layer protocol after IPv6 extension headers */
  bool fragment;   /* IPv4/IPv6 fragment: the L4 checksum covers bytes we do not have */
};

/* Parses Ethernet (+ one 802.1Q tag), IPv4/IPv6 (+ IPv6 extension headers) with the wire layer's
 * frame view (wire/frame.h). Never reads past len. Returns 0 if the Ethernet header was there, -1
 * for a runt frame or stacked (QinQ) tags, which the view does not read. An IPv6 extension chain
 * the view refuses (a routing header with segments left: its pseudo-header destination is not the
 * header's) leaves l4off 0. */
int pkt_parse(const uint8_t *f, size_t len, struct pkt_info *pi);

/* True for neighbour resolution traffic: ARP, and ICMPv6 router/neighbour discovery (types
 * 133..137). These are forwarded unimpaired unless --impair-arp. */
bool pkt_is_neigh(const uint8_t *f, size_t len);

/* Completes a checksum the sender left for "hardware" (CHECKSUM_PARTIAL: the kernel stored only the
 * pseudo-header sum and expects the NIC to finish it). TCP and UDP over IPv4/IPv6 are recomputed
 * from scratch; anything else is finished from csum_start/csum_offset as the NIC would (SCTP gets
 * CRC32c). Returns 0 on success, -1 if the frame gives no place to put a checksum. */
int pkt_fix_csum(uint8_t *f, size_t len, size_t csum_start, size_t csum_offset);

/* Recomputes the TCP or UDP checksum of the IPv4/IPv6 packet in the len-byte frame f from scratch
 * (toe_frame_l4_csum). -1 if not applicable. */
int pkt_l4_csum(uint8_t *f, size_t len);

/* Called once per segment built by pkt_segment; frame is valid only during the call. */
typedef void (*pkt_seg_fn)(void *ctx, const uint8_t *frame, size_t len);

/* Software GSO: splits a TCP (TSO) or UDP (USO, VIRTIO_NET_HDR_GSO_UDP_L4) super-frame into wire
 * frames carrying at most gso_size bytes of payload each, with correct lengths, IPv4 IDs and header
 * checksums, TCP sequence numbers and flags, and L4 checksums. scratch must hold IMP_MAX_FRAME
 * bytes. Returns the number of segments, or -1 if the frame is not something we can split. */
int pkt_segment(const uint8_t *f, size_t len, bool udp, unsigned gso_size, uint8_t *scratch,
                pkt_seg_fn fn, void *ctx);

uint32_t pkt_crc32c(const uint8_t *p, size_t n);

/* ---- seeded PRNG: the tree's one, src/common/prng.h ------------------------------------------ */

struct imp_rng {
  uint64_t s;
};

void rng_seed(struct imp_rng *r, uint64_t seed);
uint64_t rng_next(struct imp_rng *r);
/* Uniform in [0, 1) with 53 random bits. */
double rng_double(struct imp_rng *r);

/* ---- argument parsing (impair_opts.c) ------------------------------------------------------- */

/* Each returns 0 and stores the value, or -1 if the text is not a valid value. */
int parse_prob(const char *s, double *out);      /* "2%" or "0.02", in [0, 1] */
int parse_time_ns(const char *s, uint64_t *out); /* "10ms", "500us", "1s", "250ns", "0" */
int parse_rate(const char *s, uint64_t *out);    /* "500mbit", "1gbit", "100kbit", "64000bit" */
int parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out);
int parse_secs_ns(const char *s, uint64_t *out); /* "2", "0.5" (seconds) or a time with a unit */

#endif
