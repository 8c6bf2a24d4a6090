/*
 * Sockets: the common part of every protocol's socket, and the socket table that demultiplexes
 * received datagrams/segments to them with hashes.
 *
 * The table is a chained hash keyed by (proto, local port). It holds every bound socket of every
 * protocol: UDP sockets, and later TCP listeners and bound TCP sockets. TCP will add a second,
 * established 4-tuple hash of its own (with its own chain link in its socket); the bind hash then
 * stays small (listeners and binds) and is consulted only when the 4-tuple hash misses.
 */
#ifndef TOE_ENGINE_SOCK_H
#define TOE_ENGINE_SOCK_H

#include "toe/engine.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TOE_SOCK_F_BOUND 0x01u
#define TOE_SOCK_F_CONNECTED 0x02u
#define TOE_SOCK_F_LADDR_AUTO 0x04u /* laddr was filled in by connect (undone on disconnect) */
#define TOE_SOCK_F_CLAIMED 0x08u    /* cfg.port_claim granted the port: release it on unbind */
#define TOE_SOCK_F_REUSEADDR                                                                       \
  0x10u /* UDP: SO_REUSEADDR, the port may be shared (toe_sock_bind_local) */
#define TOE_SOCK_F_RECVERR                                                                         \
  0x40u /* UDP: IP_RECVERR, told of errors that are not fatal (toe_udp_link_failure) */
#define TOE_SOCK_F_REUSEPORT                                                                       \
  0x20u /* SO_REUSEPORT: one of a group sharing the port, flows spread by hash (sock_table.c) */

/* Embedded first in each protocol's socket. */
struct toe_sock {
  uint8_t proto;    /* TOE_IPPROTO_* ; 0 = free slot */
  uint8_t flags;    /* TOE_SOCK_F_* */
  int16_t soft_err; /* pending error, negative TOE_E*, 0 = none */
  uint32_t laddr;   /* host order, 0 = any */
  uint16_t lport;
  uint16_t rport;
  uint32_t raddr;
  uint32_t owner; /* who may share a SO_REUSEPORT port with it (toe_sock_set_owner; 0 default) */
  void *user;
  struct toe_sock *hnext; /* socket table chain (free list while the slot is free) */
};

struct toe_socktab {
  struct toe_sock **bind_hash; /* by (proto, lport) */
  uint32_t mask;               /* buckets - 1 (a power of two minus one) */
  uint8_t hash_shift;          /* 32 - log2(buckets), for the multiplicative hash */
  uint16_t next_ephemeral;     /* the last ephemeral port handed out (diagnostics) */
  uint32_t bound;              /* sockets in the table */
};

size_t toe_socktab_mem_size(const struct toe_config *cfg);
void toe_socktab_init(struct toe_stack *st, void *mem);

/* Adds a bound socket (proto, lport set) to the table. No conflict check: callers check first. */
void toe_socktab_insert(struct toe_stack *st, struct toe_sock *s);
/* Removes it (harmless if absent). */
void toe_socktab_remove(struct toe_stack *st, struct toe_sock *s);

/*
 * Best match for a datagram to (laddr, lport) from (raddr, rport): a connected socket with exact
 * remote beats an unconnected one; a socket bound to laddr beats one bound to any. Sockets bound to
 * another address, or connected to another remote, never match. When the best match belongs to a
 * SO_REUSEPORT group (UDP sockets, or TCP listeners, of one owner with the same best score), one
 * member is chosen by a keyed hash of the 4-tuple: a flow keeps going to the same member while the
 * group is unchanged (as Linux's reuseport_select_sock). NULL if none.
 */
struct toe_sock *toe_socktab_lookup(const struct toe_stack *st, uint8_t proto, uint32_t laddr,
                                    uint16_t lport, uint32_t raddr, uint16_t rport);

/* True if some socket of `proto` holds `lport` on laddr (any-address binds conflict with all). */
bool toe_socktab_port_in_use(const struct toe_stack *st, uint8_t proto, uint32_t laddr,
                             uint16_t lport);

/*
 * Picks a free ephemeral port for `proto` on `laddr` from cfg.ephemeral_lo..hi: RFC 6056 3.3.1
 * (algorithm 1), a random starting point then a linear search. 0 if none is free.
 */
uint16_t toe_socktab_ephemeral(struct toe_stack *st, uint8_t proto, uint32_t laddr);

/*
 * Binds `s` (proto set, not yet bound) to `laddr` (0 or our address) and `lport` (0 = ephemeral)
 * and inserts it in the table. The conflict rule is Linux's: a port is held once per protocol,
 * unless both binds name different specific addresses, or (UDP) both sockets set SO_REUSEADDR
 * (TOE_SOCK_F_REUSEADDR), or both set SO_REUSEPORT (TOE_SOCK_F_REUSEPORT) and have the same owner.
 * An explicit port is first claimed with cfg.port_claim, if set (released on removal). Returns 0,
 * -TOE_EINVAL (already bound), -TOE_EADDRNOTAVAIL (address not ours, or no ephemeral port left) or
 * -TOE_EADDRINUSE (taken here, or by the host OS according to port_claim).
 */
int toe_sock_bind_local(struct toe_stack *st, struct toe_sock *s, uint32_t laddr, uint16_t lport);

/* Calls the stack's sock_event callback for `s`. */
void toe_sock_notify(struct toe_stack *st, struct toe_sock *s, uint32_t events);

/* Sets a soft error and notifies TOE_EV_ERROR. */
void toe_sock_set_error(struct toe_stack *st, struct toe_sock *s, int err);

#endif
