/*
 * ARP (RFC 826) and the neighbour cache.
 *
 * Entry states: INCOMPLETE (resolving: requests sent every arp_retry_interval, up to
 * arp_max_retries, packets queued), REACHABLE (confirmed by a reply or a request from the
 * neighbour within arp_reachable_time), STALE (older: still used, and the next send re-requests
 * it), FAILED (resolution ran out of retries: sends fail with -TOE_EHOSTUNREACH for
 * arp_retry_interval * arp_max_retries, then the entry is freed). Entries are reclaimed LRU when
 * the table is full (never INCOMPLETE ones with queued packets, unless all are).
 */
#ifndef TOE_ENGINE_ARP_H
#define TOE_ENGINE_ARP_H

#include <stddef.h>
#include <stdint.h>

#include "engine/timer_wheel.h"
#include "toe/engine.h"

enum toe_neigh_state {
  TOE_NEIGH_FREE = 0,
  TOE_NEIGH_INCOMPLETE,
  TOE_NEIGH_REACHABLE,
  TOE_NEIGH_STALE,
  TOE_NEIGH_FAILED,
};

struct toe_neigh {
  uint32_t ip;               /* host order */
  uint8_t mac[6];
  uint8_t state;             /* enum toe_neigh_state */
  uint8_t retries;           /* requests sent in this resolution */
  uint16_t qlen;             /* packets queued */
  struct toe_pbuf *qhead;    /* packets awaiting resolution (qnext-linked, data at IP header) */
  struct toe_pbuf *qtail;
  toe_time_t updated;        /* last confirmation / state change */
  toe_time_t used;           /* last use, for LRU */
  struct toe_neigh *hnext;   /* hash chain */
  struct toe_timer timer;    /* retry / expiry */
};

struct toe_arp {
  struct toe_neigh *entries; /* arp_entries of them */
  struct toe_neigh **hash;   /* hash_size buckets */
  uint32_t hash_mask;
  uint32_t count;
};

size_t toe_arp_mem_size(const struct toe_config *cfg);
void toe_arp_init(struct toe_stack *st, void *mem);

/* Handles a received ARP packet; `pb` (data at the ARP header) is consumed. */
void toe_arp_input(struct toe_stack *st, struct toe_pbuf *pb);

/*
 * Sends the IPv4 packet `pb` (data at the IP header; consumed) to on-link next hop `nexthop`:
 * at once if the neighbour is known, else queued while it is resolved.
 * Returns 0 (sent or queued), -TOE_EHOSTUNREACH (resolution recently failed), -TOE_ENOBUFS
 * (queue full, or no buffer for a request; the packet is dropped and counted).
 */
int toe_arp_output(struct toe_stack *st, struct toe_pbuf *pb, uint32_t nexthop);

/* Sends a gratuitous ARP announcing our address (a request with spa = tpa = our address). */
void toe_arp_announce(struct toe_stack *st);

/* Looks up a neighbour without side effects (tests, toectl). NULL if absent. */
const struct toe_neigh *toe_arp_lookup(const struct toe_stack *st, uint32_t ip);

#endif
