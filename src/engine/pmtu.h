/*
 * The path MTU cache (RFC 1191 5-6): what ICMP "fragmentation needed" taught us about each
 * destination, so that a new connection to it starts at the right segment size instead of losing
 * its first full flight again, and so that every estimate ages: RFC 1191 6.3 asks that a lowered
 * estimate be raised again after a while (10 minutes recommended) to find out whether the path
 * grew. When an entry ages out, every connection to that destination that still uses a lowered
 * estimate goes back to the link MTU (the next too-big segment gets a new report if the path is
 * still narrow).
 *
 * A fixed table of TOE_PMTU_ENTRIES in the stack (no allocation): a lookup scans it, which is
 * cheap at this size and happens only when a connection starts, an ICMP error arrives or an entry
 * ages out. When it is full, the entry closest to ageing out makes room (its connections keep
 * their own lowered estimate until they age with it). One wheel timer, armed for the earliest
 * expiry.
 */
#ifndef TOE_ENGINE_PMTU_H
#define TOE_ENGINE_PMTU_H

#include "engine/timer_wheel.h"
#include "toe/engine.h"

#include <stdint.h>

#define TOE_PMTU_ENTRIES 64u
#define TOE_PMTU_AGE TOE_SEC(600) /* RFC 1191 6.3: raise the estimate after 10 minutes */

struct toe_pmtu_entry {
  uint32_t dst; /* destination address (host order) */
  uint16_t mtu; /* path MTU estimate, below the link MTU */
  uint16_t reserved;
  toe_time_t expires; /* when the estimate is raised back to the link MTU */
};

struct toe_pmtu_cache {
  struct toe_pmtu_entry e[TOE_PMTU_ENTRIES];
  uint32_t n;
  struct toe_timer timer; /* the earliest expiry */
};

void toe_pmtu_init(struct toe_stack *st);

/* The path MTU to use for `dst` now: the cached estimate, else the link MTU. */
uint16_t toe_pmtu_get(const struct toe_stack *st, uint32_t dst);

/* A report (already validated and floored by the caller) that the path to `dst` carries at most
 * `mtu` bytes: lowers (or adds) the entry and restarts its ageing (RFC 1191 6.3: "reset each time
 * the estimate is decreased"). Reports at or above the link MTU, or above the entry, change
 * nothing. */
void toe_pmtu_lower(struct toe_stack *st, uint32_t dst, uint16_t mtu);

#endif
