/*
 * ARP (RFC 826) and the neighbour cache.
 *
 * Entry states and what moves an entry between them (each entry has one timer, armed only for
 * its next state change):
 *
 *   FREE -> INCOMPLETE  toe_arp_output() to an unknown next hop: a broadcast request is sent and
 *                       the packet queued (at most arp_queue_len; over that the OLDEST is dropped).
 *   INCOMPLETE          a request every arp_retry_interval, arp_max_retries requests in all; then
 *                       -> FAILED, and the queued packets are dropped, each sender told the host
 *                       is unreachable (toe_ipv4_link_failure: a connect ends, as on Linux).
 *   any -> REACHABLE    a reply or a request from the neighbour (RFC 826 merge); an INCOMPLETE
 *                       entry flushes its queue, in order. A request to us from an unknown sender
 *                       creates a REACHABLE entry; a reply or gratuitous ARP never creates one.
 *   REACHABLE -> STALE  arp_reachable_time after the last confirmation.
 *   STALE -> PROBE      the entry is used: the packet is sent at once to the cached MAC and a
 *                       unicast request goes to that MAC (RFC 1122 2.3.2.1), repeated every
 *                       arp_retry_interval; after arp_max_retries unanswered -> FAILED. Packets
 *                       keep going to the cached MAC meanwhile.
 *   STALE -> FREE       arp_stale_time in STALE without being used (entries_expired).
 *   FAILED -> FREE      after arp_retry_interval * arp_max_retries; meanwhile sends fail fast
 *                       with -TOE_EHOSTUNREACH (entries_expired).
 *
 * When the table is full, toe_arp_output() reclaims the least recently used entry that is not
 * INCOMPLETE (INCOMPLETE entries hold queued packets and are never evicted; they become FAILED
 * and then free within arp_retry_interval * arp_max_retries * 2). An entry learned from a
 * received request may only displace an entry we never sent to, or a FAILED one, so a flood of
 * requests from made-up senders cannot push out the neighbours we are talking to.
 *
 * Conflicts (RFC 5227 2.4): a packet claiming our address from another MAC is counted and never
 * learned; we defend with one announcement at most every TOE_ARP_DEFEND_INTERVAL.
 */
#ifndef TOE_ENGINE_ARP_H
#define TOE_ENGINE_ARP_H

#include "engine/timer_wheel.h"
#include "toe/engine.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* RFC 5227 2.4 (b): DEFEND_INTERVAL. */
#define TOE_ARP_DEFEND_INTERVAL TOE_SEC(10)

enum toe_neigh_state {
  TOE_NEIGH_FREE = 0,
  TOE_NEIGH_INCOMPLETE,
  TOE_NEIGH_REACHABLE,
  TOE_NEIGH_STALE,
  TOE_NEIGH_FAILED,
  TOE_NEIGH_PROBE, /* stale entry in use, being re-confirmed with unicast requests */
};

/* toe_neigh.flags */
#define TOE_NEIGH_F_USED 0x01u /* we have sent (or tried to send) to this neighbour */

struct toe_neigh {
  uint32_t ip; /* host order */
  uint8_t mac[6];
  uint8_t state;          /* enum toe_neigh_state */
  uint8_t retries;        /* requests sent in this resolution / probe */
  uint16_t qlen;          /* packets queued */
  uint8_t flags;          /* TOE_NEIGH_F_* */
  struct toe_pbuf *qhead; /* packets awaiting resolution (qnext-linked, data at IP header) */
  struct toe_pbuf *qtail;
  toe_time_t updated;         /* last confirmation / state change */
  toe_time_t used;            /* last use by toe_arp_output() */
  struct toe_neigh *hnext;    /* hash chain (free list while FREE) */
  struct toe_neigh *lru_prev; /* LRU list of entries in use: head = least recently used */
  struct toe_neigh *lru_next;
  struct toe_timer timer; /* retry / expiry */
};

struct toe_arp {
  struct toe_neigh *entries; /* arp_entries of them */
  struct toe_neigh **hash;   /* hash_mask + 1 buckets (a power of two) */
  uint32_t hash_mask;
  uint32_t count;              /* entries in use */
  uint32_t hash_key;           /* from the stack secret: bucket choice is not predictable */
  struct toe_neigh *free_list; /* FREE entries, linked by hnext */
  struct toe_neigh *lru_head;  /* least recently used entry in use */
  struct toe_neigh *lru_tail;  /* most recently used */
  bool defended;               /* an announcement defended our address at last_defend */
  toe_time_t last_defend;
};

size_t toe_arp_mem_size(const struct toe_config *cfg);
void toe_arp_init(struct toe_stack *st, void *mem);

/* Handles a received ARP packet; `pb` (data at the ARP header) is consumed. */
void toe_arp_input(struct toe_stack *st, struct toe_pbuf *pb);

/*
 * Sends the IPv4 packet `pb` (data at the IP header; consumed) to on-link next hop `nexthop`:
 * at once if the neighbour is known, else queued while it is resolved. The limited broadcast
 * 255.255.255.255 and our subnet's broadcast address go to ff:ff:ff:ff:ff:ff, multicast groups to
 * their RFC 1112 6.4 MAC, without ARP.
 * Returns 0 (sent or queued; a full queue drops its oldest packet), or, with the packet dropped
 * and counted: -TOE_EHOSTUNREACH (resolution recently failed), -TOE_ENOBUFS (neighbour table
 * full of entries still resolving), -TOE_EINVAL (next hop 0 or our own address).
 */
int toe_arp_output(struct toe_stack *st, struct toe_pbuf *pb, uint32_t nexthop);

/* Sends a gratuitous ARP announcing our address (a request with spa = tpa = our address). */
void toe_arp_announce(struct toe_stack *st);

/* Looks up a neighbour without side effects (tests, toectl). NULL if absent. */
const struct toe_neigh *toe_arp_lookup(const struct toe_stack *st, uint32_t ip);

/* ---------------------------------------------------------------------------------------------
 * Internal to arp.c and arp_cache.c (the neighbour table).
 */

/* The entry for `ip`, or NULL. */
struct toe_neigh *toe_neigh_find(const struct toe_arp *a, uint32_t ip);

/*
 * Takes a FREE entry for `ip` (not in the table), reclaiming the least recently used evictable
 * entry if none is free: for_output allows any entry but INCOMPLETE ones, otherwise only FAILED
 * entries or ones never sent to. Returns the entry in the hash and at the LRU tail, state
 * INCOMPLETE with everything else cleared (the caller sets the state), or NULL.
 */
struct toe_neigh *toe_neigh_alloc(struct toe_stack *st, uint32_t ip, bool for_output);

/* Cancels the timer, drops any queued packets (not counted: the caller counts), frees `e`. */
void toe_neigh_release(struct toe_stack *st, struct toe_neigh *e);

/* Marks `e` most recently used. */
void toe_neigh_touch(struct toe_arp *a, struct toe_neigh *e);

/* The per-entry timer callback (arp.c). */
void toe_arp_timer_expired(struct toe_stack *st, struct toe_timer *t);

#endif
