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
#include "wire/ipv6.h"

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
/* Takes no IPv4 traffic: an IPv6 socket with V6ONLY, bound to an IPv6 address of ours, or
 * connected to an IPv6 peer (sock6_refresh in sock_table.c keeps it). The IPv4 lookup tests this
 * one bit, so dual stack costs the IPv4 path nothing else. */
#define TOE_SOCK_F_NOT_V4 0x80u

/* toe_sock.v6flags: the IPv6 side of a socket of family TOE_AF_INET6. */
#define TOE_SOCK6_V6ONLY 0x01u /* TOE_IPV6_V6ONLY set */
#define TOE_SOCK6_BOUND4 0x02u /* bound to a v4-mapped address: laddr holds it */
#define TOE_SOCK6_CONN4 0x04u  /* connected to a v4-mapped peer: raddr holds it */
#define TOE_SOCK6_CONN6 0x08u  /* connected to an IPv6 peer: raddr6 holds it */
#define TOE_SOCK6_BOUND6 0x10u /* bound to an IPv6 address of ours: laddr6 holds it */
#define TOE_SOCK6_AUTO6 0x20u  /* laddr6 was filled in by connect (undone on disconnect) */

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
  /* IPv6 (include/toe/engine.h): the family tag, and the 16-byte addresses an IPv6 socket uses
   * for IPv6 peers. IPv4 traffic of any socket, dual-stack ones included, uses laddr/raddr above,
   * so the IPv4 paths never read these. */
  uint8_t family;             /* 0 or TOE_AF_INET: IPv4 socket; TOE_AF_INET6 */
  uint8_t v6flags;            /* TOE_SOCK6_* */
  struct toe_in6_addr laddr6; /* :: = any */
  struct toe_in6_addr raddr6; /* with TOE_SOCK6_CONN6 */
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

/*
 * IPv6 sockets (sock_table.c). toe_sock_make_v6 turns an unbound IPv4 socket into an IPv6 one
 * (0), is a no-op for an IPv6 one, and refuses a bound IPv4 socket (-TOE_EINVAL) or any socket
 * of a stack without IPv6 (-TOE_EAFNOSUPPORT).
 */
int toe_sock_make_v6(const struct toe_stack *st, struct toe_sock *s);

/* TOE_IPV6_V6ONLY: 0 or -TOE_EINVAL (bad value, or the socket is bound). */
int toe_sock_set_v6only(const struct toe_stack *st, struct toe_sock *s, int64_t value);

/*
 * Binds IPv6 socket `s` to `a` (:: any, ::ffff:a.b.c.d our IPv4 address, or an IPv6 address of
 * ours) and `lport` (0 = ephemeral), with the port rules of toe_sock_bind_local for both
 * families. Returns as toe_sock_bind_local.
 */
int toe_sock_bind_local6(struct toe_stack *st, struct toe_sock *s, const struct toe_in6_addr *a,
                         uint16_t lport);

/*
 * Best IPv6 socket for a datagram or segment to (laddr, lport) from (raddr, rport); the rules of
 * toe_socktab_lookup (SO_REUSEPORT groups included) among sockets that take IPv6. NULL if none.
 */
struct toe_sock *toe_socktab_lookup6(const struct toe_stack *st, uint8_t proto,
                                     const struct toe_in6_addr *laddr, uint16_t lport,
                                     const struct toe_in6_addr *raddr, uint16_t rport);

/* Recomputes TOE_SOCK_F_NOT_V4 from the IPv6 state after a bind, connect or disconnect. */
void toe_sock6_refresh(struct toe_sock *s);

/* A name of `s`: IPv4 address `a4` or IPv6 address `a6` (per its state), in the family the
 * socket has (v4-mapped for IPv4 on an IPv6 socket). */
void toe_sock_fill_name(const struct toe_sock *s, struct toe_sockaddr *sa, uint16_t port, bool v6,
                        uint32_t a4, const struct toe_in6_addr *a6);

/* Calls the stack's sock_event callback for `s`. */
void toe_sock_notify(struct toe_stack *st, struct toe_sock *s, uint32_t events);

/* Sets a soft error and notifies TOE_EV_ERROR. */
void toe_sock_set_error(struct toe_stack *st, struct toe_sock *s, int err);

#endif
