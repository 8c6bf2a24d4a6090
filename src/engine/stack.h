/*
 * The stack instance: everything the engine knows hangs off it (no global state).
 */
#ifndef TOE_ENGINE_STACK_H
#define TOE_ENGINE_STACK_H

#include <stddef.h>
#include <stdint.h>

#include "engine/arp.h"
#include "engine/icmp.h"
#include "engine/ipv4.h"
#include "engine/pbuf_pool.h"
#include "engine/sock.h"
#include "engine/timer_wheel.h"
#include "engine/udp.h"
#include "toe/engine.h"

#define toe_container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

struct toe_stack {
  struct toe_config cfg;
  toe_time_t now;
  uint64_t rng;           /* xorshift state */
  struct toe_counters ctr;
  struct toe_pbuf_pool pool;
  struct toe_timer_wheel tw;
  struct toe_arp arp;
  struct toe_ipv4_state ip;
  struct toe_icmp_state icmp;
  struct toe_socktab socks;
  struct toe_udp_state udp;
  void *mem_to_free;      /* set by toe_stack_new() */
};

/* A 64-bit pseudo-random number (not for secrets; see toe_keyed_hash for those). */
uint64_t toe_random(struct toe_stack *st);

/* SipHash-2-4 style keyed hash of `len` bytes under the stack's secret. */
uint64_t toe_keyed_hash(const struct toe_stack *st, const void *data, size_t len);

/*
 * Link output: prepends an Ethernet header (with our MAC as source and the configured VLAN tag)
 * to `pb` (consumed) and hands it to the transmit callback. Counts it.
 */
void toe_link_output(struct toe_stack *st, struct toe_pbuf *pb, const uint8_t *dst_mac,
                     uint16_t ethertype);

#endif
