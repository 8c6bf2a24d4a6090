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
#include "wire/ipv6.h"

#include <stdint.h>

#define TOE_PMTU_ENTRIES 64u
#define TOE_PMTU_AGE TOE_SEC(600) /* RFC 1191 6.3: raise the estimate after 10 minutes */

struct toe_pmtu_entry {
  uint32_t dst;             /* IPv4 destination address (host order); 0 for an IPv6 entry */
  uint16_t mtu;             /* path MTU estimate, below the link MTU */
  uint16_t v6;              /* 1: an IPv6 entry, for dst6 (RFC 8201) */
  toe_time_t expires;       /* when the estimate is raised back to the link MTU */
  struct toe_in6_addr dst6; /* IPv6 destination (v6 entries) */
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

/*
 * IPv6 (RFC 8201) in the same table and with the same ageing: the path MTU to use for `dst` now
 * (the cached estimate, else the link MTU), and a Packet Too Big report lowering it. The caller
 * has validated the report; an MTU under 1280 is ignored here (RFC 8201 4: a node never lowers
 * its estimate below the IPv6 minimum MTU). An IPv6 entry that ages out is simply gone: IPv6
 * output reads the estimate for every packet it sends (ipv6_output.c), so UDP and ICMPv6 follow
 * at once; TCP over IPv6 may read toe_pmtu6_get() when it sizes segments.
 */
uint16_t toe_pmtu6_get(const struct toe_stack *st, const struct toe_in6_addr *dst);
void toe_pmtu6_lower(struct toe_stack *st, const struct toe_in6_addr *dst, uint16_t mtu);

#endif
