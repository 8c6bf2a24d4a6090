/*
 * IPv4 (RFC 791, RFC 1122 3.2.1/3.3): input validation and demultiplexing, output with routing
 * (on-link or via the gateway) and fragmentation, and reassembly with bounded memory.
 *
 * Files: ipv4_input.c (validation, address filtering, demultiplexing), ipv4_output.c (routing,
 * header, fragmentation), ipv4_reass.c (reassembly).
 */
#ifndef TOE_ENGINE_IPV4_H
#define TOE_ENGINE_IPV4_H

#include "engine/timer_wheel.h"
#include "toe/engine.h"
#include "wire/ipv4.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* toe_reass.flags */
#define TOE_REASS_F_POISONED 0x01u /* discarded (overlap/inconsistency): drop its fragments */

/*
 * One datagram being reassembled (RFC 791 3.2, keyed by src, dst, proto, id).
 *
 * Each held fragment is a pbuf chain with data at its IP header (linearized) and
 * meta[0] = payload offset in bytes, meta[1] = payload length, meta[2] = IP header length.
 */
struct toe_reass {
  uint32_t src, dst;
  uint16_t id;
  uint8_t proto;
  uint8_t in_use;
  uint8_t flags;           /* TOE_REASS_F_* */
  uint32_t nbufs;          /* pbufs held */
  uint32_t total_len;      /* payload length once the last fragment is seen, else 0 */
  uint32_t have_len;       /* payload bytes held */
  struct toe_pbuf *frags;  /* fragments ordered by offset (qnext-linked; data at IP header) */
  struct toe_timer timer;  /* reassembly timeout */
  struct toe_reass *hnext; /* hash chain, or the free list while unused */
};

struct toe_ipv4_state {
  uint16_t next_id;         /* IP identification, a counter seeded randomly */
  struct toe_reass *reass;  /* reass_slots of them */
  struct toe_reass **rhash; /* buckets */
  uint32_t rhash_mask;
  uint32_t reass_bufs;     /* pbufs held by all reassemblies (<= reass_max_bufs) */
  struct toe_reass *rfree; /* unused slots, linked by hnext */
};

size_t toe_ipv4_mem_size(const struct toe_config *cfg);
void toe_ipv4_init(struct toe_stack *st, void *mem);

/*
 * Handles a received IPv4 packet (data at the IP header; consumed): validates it, reassembles
 * fragments, and hands complete datagrams to ICMP/UDP/TCP with data at the L4 header.
 */
void toe_ipv4_input(struct toe_stack *st, struct toe_pbuf *pb);

/* What an upper layer asks IPv4 to send. */
struct toe_ip_tx {
  uint32_t src; /* host order; 0 = our address */
  uint32_t dst;
  uint8_t proto;
  uint8_t ttl; /* 0 = default */
  uint8_t tos;
  bool df; /* set DF; a datagram larger than the MTU then fails with -TOE_EMSGSIZE */
};

/*
 * Sends `pb` (data at the L4 header, TOE_PBUF_HEADROOM headroom in the head; consumed) as one
 * IPv4 datagram, fragmented to the MTU when needed (RFC 791 3.2 fragmentation procedure).
 * A head with too little headroom (or shared with another holder) gets a fresh header buffer.
 * Returns 0, -TOE_ENETUNREACH (off-link, no gateway), -TOE_EMSGSIZE (too big with DF, or over
 * 65535), -TOE_EINVAL (destination 0, loopback or our own address), -TOE_ENOBUFS, or
 * toe_arp_output()'s errors.
 */
int toe_ipv4_output(struct toe_stack *st, struct toe_pbuf *pb, const struct toe_ip_tx *tx);

/*
 * ARP gave up on the next hop of `pb` (one of our datagrams, data at its IP header; not consumed):
 * tells the socket that sent it, as Linux does with a local ICMP host unreachable. A TCP
 * connection in SYN-SENT ends with -TOE_EHOSTUNREACH; a synchronized one keeps it as its soft
 * error and goes on retransmitting (RFC 1122 4.2.3.9); a UDP socket gets it as its pending error
 * (the next call reports it once) only with TOE_IP_RECVERR, as on Linux. Returns true if a
 * socket was told.
 */
bool toe_ipv4_link_failure(struct toe_stack *st, const struct toe_pbuf *pb);

/* True if `a` is on our link. */
bool toe_ipv4_on_link(const struct toe_stack *st, uint32_t a);

/* ---- reassembly (ipv4_reass.c), used by ipv4_input.c ---- */

/* Bytes of stack memory reassembly needs, and its layout into it. */
size_t toe_ipv4_reass_mem_size(const struct toe_config *cfg);
void toe_ipv4_reass_init(struct toe_stack *st, void *mem);

/*
 * Takes a validated fragment `pb` (data at its linearized IP header, trimmed to total_len;
 * consumed) described by `v`. Returns the complete datagram once the last missing piece arrived
 * (a chain with data at a rewritten, unfragmented IP header; `*v` then describes it), else NULL.
 */
struct toe_pbuf *toe_ipv4_reass(struct toe_stack *st, struct toe_pbuf *pb, struct toe_ipv4_view *v);

#endif
