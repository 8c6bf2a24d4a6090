/*
 * Engine test harness: a stack on a virtual clock whose transmitted frames are captured, and
 * builders for hand-made frames. The builders write bytes directly and compute checksums with a
 * plain reference implementation, so they do not depend on the wire layer under test.
 *
 * Default identity: our MAC 02:00:00:00:00:01, address 198.18.0.1/24; the peer is
 * 198.18.0.2 with MAC 02:00:00:00:00:02.
 */
#ifndef TOE_TEST_HARNESS_H
#define TOE_TEST_HARNESS_H

#include "toe/engine.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define H_OUR_IP 0xc6120001u    /* 198.18.0.1 */
#define H_PEER_IP 0xc6120002u   /* 198.18.0.2 */
#define H_ROUTER_IP 0xc6120063u /* 198.18.0.99: a router on the path (ICMP errors) */
#define H_MAX_FRAMES 4096
#define H_MAX_FRAME 65600

extern const uint8_t H_OUR_MAC[6];
extern const uint8_t H_PEER_MAC[6];
extern const uint8_t H_BCAST_MAC[6];

struct h_frame {
  size_t len;
  uint8_t *bytes;
  /* transmit checksum offload as the engine marked the frame (TOE_PBUF_F_CSUM_PARTIAL): the
   * capture completes the checksum as a NIC would, keeping the field's value from before */
  bool csum_partial;
  uint16_t csum_start, csum_offset;
  uint16_t csum_field_before; /* packet representation */
};

struct h_event {
  struct toe_sock *sock;
  void *user;
  uint32_t events;
};

/* A TSO super-segment the engine handed over (TOE_LINK_CAP_TSO), when the harness cuts them. */
struct h_gso {
  size_t len;        /* the super-frame's length */
  uint16_t gso_size; /* its MSS */
  int first, pieces; /* the pieces in tx[] (first index and count) */
};
#define H_MAX_GSO 1024

struct harness {
  struct toe_stack *st;
  struct toe_config cfg;
  toe_time_t now;
  struct h_frame tx[H_MAX_FRAMES]; /* captured transmitted frames, oldest first */
  int ntx;
  struct h_event ev[H_MAX_FRAMES];
  int nev;
  /* Set before traffic to capture TSO super-segments as the link would send them: cut with
   * toe_gso_segment() (checksums by it when gso_sw_csum, else completed as a NIC would), each
   * piece captured in tx[]; the super-segment itself is logged in gso[]. */
  bool gso_cut, gso_sw_csum;
  struct h_gso gso[H_MAX_GSO];
  int ngso;
};

/* Fills `cfg` with the harness defaults (small pools, our identity). Callers may adjust it and
 * then call h_init_cfg(). */
void h_default_cfg(struct toe_config *cfg);
/* Creates the stack at time 1 s (not started: no gratuitous ARP yet). */
void h_init(struct harness *h);
void h_init_cfg(struct harness *h, const struct toe_config *cfg);
void h_fini(struct harness *h);

/* Drops the captured frames / events. */
void h_clear(struct harness *h);

/* Feeds a frame at the current virtual time. */
void h_input(struct harness *h, const void *frame, size_t len);
/* Advances the virtual clock by `ns` in steps, polling at every deadline on the way. */
void h_advance(struct harness *h, toe_time_t ns);

/* Puts the peer into our neighbour cache by feeding an ARP request from it for our address, then
 * clears the captured reply. */
void h_learn_peer(struct harness *h);

/* Reference checksum (RFC 1071, byte by byte), for building and checking frames. */
uint16_t h_csum(const void *data, size_t len, uint32_t initial);
uint32_t h_pseudo_sum(uint32_t src, uint32_t dst, uint8_t proto, uint16_t len);

/* Builders: each writes a whole Ethernet frame into `out` and returns its length. */
size_t h_build_arp(uint8_t *out, uint16_t op, const uint8_t *sha, uint32_t spa, const uint8_t *tha,
                   uint32_t tpa, const uint8_t *eth_dst);
/* IPv4 frame from the peer to us with `payload`. frag_field = raw flags+offset field (host order).
 */
size_t h_build_ipv4(uint8_t *out, uint32_t src, uint32_t dst, uint8_t proto, uint16_t id,
                    uint16_t frag_field, uint8_t ttl, const void *payload, size_t plen);
size_t h_build_udp(uint8_t *out, uint32_t src, uint16_t sport, uint32_t dst, uint16_t dport,
                   const void *data, size_t dlen);
size_t h_build_icmp_echo(uint8_t *out, uint32_t src, uint32_t dst, uint16_t id, uint16_t seq,
                         const void *data, size_t dlen);

/* Feeds an ICMP error (type, code) from `src`, quoting the IP header and the first 8 bytes of the
 * Ethernet frame `frame` (one the stack sent: RFC 792); `mtu` goes into the next-hop MTU field of
 * a "fragmentation needed" (type 3 code 4, RFC 1191 4), 0 otherwise. */
void h_input_icmp_error(struct harness *h, uint32_t src, const uint8_t *frame, uint8_t type,
                        uint8_t code, uint16_t mtu);

/* Field readers for captured frames (big endian). */
uint16_t h_be16(const uint8_t *p);
uint32_t h_be32(const uint8_t *p);

/* Index of the n-th captured frame with this ethertype (and, for IPv4, IP protocol if proto != 0),
 * or -1. */
int h_find_tx(const struct harness *h, uint16_t ethertype, uint8_t proto, int nth);
int h_count_tx(const struct harness *h, uint16_t ethertype, uint8_t proto);

#endif
