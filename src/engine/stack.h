/*
 * The stack instance: everything the engine knows hangs off it (no global state).
 */
#ifndef TOE_ENGINE_STACK_H
#define TOE_ENGINE_STACK_H

#include "engine/arp.h"
#include "engine/filter_table.h"
#include "engine/icmp.h"
#include "engine/ipv4.h"
#include "engine/ipv6.h"
#include "engine/pbuf_pool.h"
#include "engine/pmtu.h"
#include "engine/sock.h"
#include "engine/tcp.h"
#include "engine/timer_wheel.h"
#include "engine/udp.h"
#include "toe/engine.h"

#include <stddef.h>
#include <stdint.h>

#define toe_container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

struct toe_stack {
  struct toe_config cfg;
  toe_time_t now;
  uint64_t rng; /* xorshift state */
  struct toe_counters ctr;
  struct toe_pbuf_pool pool;
  struct toe_timer_wheel tw;
  struct toe_arp arp;
  struct toe_ipv4_state ip;
  struct toe_icmp_state icmp;
  struct toe_socktab socks;
  struct toe_udp_state udp;
  struct toe_tcp_tables tcp;    /* TCP tables (engine/tcp.h; laid out by toe_tcp_init) */
  struct toe_filter_table filt; /* steering filters (engine/filter_table.h), if cfg.steering */
  struct toe_pmtu_cache pmtu;   /* path MTU estimates per destination (engine/pmtu.h) */
  struct toe_ipv6_state ip6;    /* IPv6 addresses, ICMPv6, neighbour table (engine/ipv6.h) */
  void *mem_to_free;            /* set by toe_stack_new() */
};

/* A usable unicast host address for us or our gateway on a `prefix_len` subnet (stack.c; also
 * for run-time changes, addr_live.c). */
bool toe_stack_host_addr_ok(uint32_t a, uint8_t prefix_len);

/* Seeds toe_random() (called at creation with cfg.random_seed; any seed, 0 included, is fine). */
void toe_random_seed(struct toe_stack *st, uint64_t seed);

/* Moves the stack's clock to `now` (never backwards) and runs the timers due by then. The first
 * step of every entry point that takes a time (input, poll, start). */
void toe_stack_advance(struct toe_stack *st, toe_time_t now);

/* MurmurHash3's 32-bit finalizer: every input bit affects every output bit. Spreads a keyed
 * 4-tuple over a hash table (tcp_demux.c) or a SO_REUSEPORT group (sock_table.c). */
static inline uint32_t toe_mix32(uint32_t h)
{
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  h *= 0xc2b2ae35u;
  h ^= h >> 16;
  return h;
}

/* A 64-bit pseudo-random number (not for secrets; see toe_keyed_hash for those). */
uint64_t toe_random(struct toe_stack *st);

/* SipHash-2-4 style keyed hash of `len` bytes under the stack's secret. */
uint64_t toe_keyed_hash(const struct toe_stack *st, const void *data, size_t len);

/* SipHash-2-4 of `len` bytes under a 16-byte key (toe_keyed_hash with an explicit key). */
uint64_t toe_siphash24(const uint8_t key[16], const void *data, size_t len);

/*
 * Link output: prepends an Ethernet header (with our MAC as source and the configured VLAN tag)
 * to `pb` (consumed) and hands it to the transmit callback. Counts it.
 */
void toe_link_output(struct toe_stack *st, struct toe_pbuf *pb, const uint8_t *dst_mac,
                     uint16_t ethertype);

#endif
