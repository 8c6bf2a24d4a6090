/*
 * The device's filter table (the engine side of include/toe/steer.h): a fixed pool of filters in a
 * keyed hash. The engine's socket code calls toe_filt_add/del when the state a filter stands for
 * begins and ends; toe_steer_frame() looks frames up in it.
 *
 * Keys: (proto, local port, remote address, remote port); local filters have remote 0:0. The local
 * address is not part of the key: the engine has exactly one address (the shared one), and a
 * socket bound to "any" and one bound to that address both own its traffic (a socket's laddr may
 * change from 0 to the address at connect, so keying on it would lose the filter).
 */
#ifndef TOE_ENGINE_FILTER_TABLE_H
#define TOE_ENGINE_FILTER_TABLE_H

#include "toe/engine.h"
#include "wire/ipv6.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct toe_filter {
  struct toe_filter *next; /* hash chain, or the free list */
  uint32_t raddr;
  uint16_t lport;
  uint16_t rport;
  uint8_t proto; /* 0: free */
  uint8_t kind;  /* TOE_FILTER_* */
  uint16_t refs;
  uint64_t frames;
  uint64_t bytes;
  /* IPv6 exact filters (toe_filt_add6): the key's remote address is raddr6 (raddr is 0), and
   * laddr6 is shown by toe_filter_visit() (not part of the key, as for IPv4). */
  bool v6;
  struct toe_in6_addr raddr6;
  struct toe_in6_addr laddr6;
};

struct toe_filter_table {
  struct toe_filter **hash; /* NULL: steering off */
  struct toe_filter *pool;
  struct toe_filter *free;
  uint32_t mask; /* buckets - 1 */
  uint32_t cap;
  uint32_t count;
};

/* Bytes the table needs for this config (0 with steering off). */
size_t toe_filt_mem_size(const struct toe_config *cfg);
/* Lays the table out in `mem` (NULL or unused with steering off). */
void toe_filt_init(struct toe_stack *st, void *mem);

/*
 * Adds a reference to the filter for the key, creating it with `kind` if absent (an existing one
 * takes the new kind: a connection's filter becomes a TIME_WAIT filter). Counters survive. A full
 * table is counted in steer.filter_full (the pool is sized for every socket and TIME_WAIT entry the
 * config allows, so it cannot happen). No-op with steering off.
 */
void toe_filt_add(struct toe_stack *st, uint8_t kind, uint8_t proto, uint16_t lport, uint32_t raddr,
                  uint16_t rport);
/* Drops one reference; the filter goes with the last. No-op if absent or steering is off. */
void toe_filt_del(struct toe_stack *st, uint8_t proto, uint16_t lport, uint32_t raddr,
                  uint16_t rport);

/* The exact filter for the flow, else the local filter of the port, else NULL. */
struct toe_filter *toe_filt_lookup(const struct toe_stack *st, uint8_t proto, uint16_t lport,
                                   uint32_t raddr, uint16_t rport);

/*
 * The IPv6 exact filters (a connection to or from an IPv6 peer): the same as toe_filt_add/del
 * with the peer's 16-byte address. `laddr` (ours) is kept for display only. Local filters are
 * per port and family-blind: an engine listener or bind owns its port for IPv4 and IPv6 alike
 * (docs/coexistence.md rule 13), so they are added with toe_filt_add(..., 0, 0) whatever the
 * socket's family.
 */
void toe_filt_add6(struct toe_stack *st, uint8_t kind, uint8_t proto, uint16_t lport,
                   const struct toe_in6_addr *laddr, const struct toe_in6_addr *raddr,
                   uint16_t rport);
void toe_filt_del6(struct toe_stack *st, uint8_t proto, uint16_t lport,
                   const struct toe_in6_addr *raddr, uint16_t rport);

/* The IPv6 exact filter for the flow, else the local filter of the port, else NULL. */
struct toe_filter *toe_filt_lookup6(const struct toe_stack *st, uint8_t proto, uint16_t lport,
                                    const struct toe_in6_addr *raddr, uint16_t rport);

#endif
