/*
 * The neighbour reachability state machine of IPv6 Neighbor Discovery (RFC 4861 7.3.2, 7.2.3,
 * 7.2.5, appendix C), for one neighbour cache entry, without the table around it.
 *
 * Not wired into the stack yet (docs/ipv6.md, step 3): the table, its memory budget, the packet
 * queue and the timer belong to the code that will own entries, as in arp.c/arp_cache.c. Each
 * event below updates the entry and returns what the owner must do (TOE_ND_ACT_* bits); the owner
 * calls toe_nd_timer() once `deadline` has passed (0 = no timer wanted).
 *
 *   NONE -> INCOMPLETE   a packet to send: multicast NS, packet queued
 *   INCOMPLETE           multicast NS every RetransTimer, MAX_MULTICAST_SOLICIT in all, then fail
 *   INCOMPLETE -> REACHABLE / STALE   an NA (solicited / not), or any ND message carrying the
 *                        neighbour's link-layer address (STALE); queued packets go out
 *   REACHABLE -> STALE   ReachableTime without confirmation
 *   STALE -> DELAY       a packet sent; DELAY_FIRST_PROBE_TIME for an upper-layer confirmation
 *   DELAY -> PROBE       unicast NS every RetransTimer, MAX_UNICAST_SOLICIT in all, then fail
 *   any -> REACHABLE     a solicited NA, or an upper-layer confirmation (RFC 4861 7.3.1)
 */
#ifndef TOE_ENGINE_ND_CACHE_H
#define TOE_ENGINE_ND_CACHE_H

#include "toe/engine.h"
#include "wire/ndp.h"

#include <stdbool.h>
#include <stdint.h>

enum toe_nd_state {
  TOE_ND_NONE = 0, /* no entry (free) */
  TOE_ND_INCOMPLETE,
  TOE_ND_REACHABLE,
  TOE_ND_STALE,
  TOE_ND_DELAY,
  TOE_ND_PROBE,
};

/* Protocol constants and host variables (RFC 4861 10, 6.3.2). */
struct toe_nd_params {
  toe_time_t reachable_time; /* ReachableTime: 0.5..1.5 x BaseReachableTime, drawn by the owner */
  toe_time_t retrans_timer;  /* RetransTimer, 1 s unless an RA says otherwise */
  toe_time_t delay_first_probe;  /* DELAY_FIRST_PROBE_TIME, 5 s */
  uint8_t max_multicast_solicit; /* 3 */
  uint8_t max_unicast_solicit;   /* 3 */
};

/* The RFC 4861 10 defaults, with ReachableTime = BaseReachableTime (30 s). */
void toe_nd_params_default(struct toe_nd_params *p);

struct toe_nd_entry {
  struct toe_in6_addr ip;
  uint8_t mac[6];
  uint8_t state;  /* enum toe_nd_state */
  uint8_t probes; /* solicitations sent in this INCOMPLETE or PROBE period */
  bool is_router; /* IsRouter (RFC 4861 5.1) */
  toe_time_t deadline;
};

#define TOE_ND_ACT_QUEUE 0x01u    /* hold the packet until the address is known */
#define TOE_ND_ACT_SEND 0x02u     /* send the packet now, to `mac` */
#define TOE_ND_ACT_MCAST_NS 0x04u /* send an NS for `ip` to its solicited-node group */
#define TOE_ND_ACT_UCAST_NS 0x08u /* send an NS for `ip` to `ip`, at `mac` */
#define TOE_ND_ACT_FLUSH 0x10u    /* send the queued packets to `mac`, in order */
#define TOE_ND_ACT_FAIL                                                                            \
  0x20u /* resolution failed: drop the queue with address unreachable                              \
           errors (RFC 4861 7.2.2), free the entry (state is NONE) */
#define TOE_ND_ACT_ROUTER_LOST                                                                     \
  0x40u /* IsRouter went false: drop it as a default router (7.2.5)                                \
         */

/* Starts an entry for `ip` in state NONE. */
void toe_nd_entry_init(struct toe_nd_entry *e, const struct toe_in6_addr *ip);

/* A packet is to be sent to the neighbour (RFC 4861 7.2.2, 7.3.3). */
unsigned toe_nd_output(struct toe_nd_entry *e, toe_time_t now, const struct toe_nd_params *p);

/* The entry's deadline has come (or not yet: then nothing happens). */
unsigned toe_nd_timer(struct toe_nd_entry *e, toe_time_t now, const struct toe_nd_params *p);

/* Upper-layer proof of forward progress, e.g. new data acknowledged by TCP (RFC 4861 7.3.1). Only
 * an entry with a link-layer address becomes REACHABLE. */
unsigned toe_nd_confirm(struct toe_nd_entry *e, toe_time_t now, const struct toe_nd_params *p);

/*
 * An NS, RS, RA or redirect from the neighbour carried its link-layer address `mac` (RFC 4861
 * 7.2.3, 6.2.6, 6.3.4, 8.3): a new or changed address makes the entry STALE (an INCOMPLETE one
 * flushes its queue). `from_router` (an RA) sets IsRouter.
 */
unsigned toe_nd_lladdr(struct toe_nd_entry *e, const uint8_t mac[6], bool from_router);

/* A neighbor advertisement for the entry's address, already checked by toe_nd_parse() (RFC 4861
 * 7.2.5). Without an entry (NONE) it is ignored. */
unsigned toe_nd_advert(struct toe_nd_entry *e, toe_time_t now, const struct toe_nd_view *na,
                       const struct toe_nd_params *p);

#endif
