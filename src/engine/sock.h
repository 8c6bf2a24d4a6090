/*
 * Sockets: the common part of every protocol's socket, and the socket table that demultiplexes
 * received datagrams/segments to them with hashes.
 */
#ifndef TOE_ENGINE_SOCK_H
#define TOE_ENGINE_SOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "toe/engine.h"

#define TOE_SOCK_F_BOUND 0x01u
#define TOE_SOCK_F_CONNECTED 0x02u

/* Embedded first in each protocol's socket. */
struct toe_sock {
  uint8_t proto;  /* TOE_IPPROTO_* ; 0 = free slot */
  uint8_t flags;  /* TOE_SOCK_F_* */
  int16_t soft_err; /* pending error, negative TOE_E*, 0 = none */
  uint32_t laddr; /* host order, 0 = any */
  uint16_t lport;
  uint16_t rport;
  uint32_t raddr;
  void *user;
  struct toe_sock *hnext; /* socket table chain */
};

struct toe_socktab {
  struct toe_sock **bind_hash; /* by (proto, lport) */
  uint32_t mask;
  uint16_t next_ephemeral;     /* rotating cursor */
};

size_t toe_socktab_mem_size(const struct toe_config *cfg);
void toe_socktab_init(struct toe_stack *st, void *mem);

/* Adds a bound socket (proto, lport set) to the table. */
void toe_socktab_insert(struct toe_stack *st, struct toe_sock *s);
/* Removes it (harmless if absent). */
void toe_socktab_remove(struct toe_stack *st, struct toe_sock *s);

/*
 * Best match for a datagram to (laddr, lport) from (raddr, rport): a connected socket with exact
 * remote beats an unconnected one; a socket bound to laddr beats one bound to any. NULL if none.
 */
struct toe_sock *toe_socktab_lookup(const struct toe_stack *st, uint8_t proto, uint32_t laddr,
                                    uint16_t lport, uint32_t raddr, uint16_t rport);

/* True if some socket of `proto` holds `lport` on laddr (any-address binds conflict with all). */
bool toe_socktab_port_in_use(const struct toe_stack *st, uint8_t proto, uint32_t laddr,
                             uint16_t lport);

/* Picks a free ephemeral port for `proto` (RFC 6056 style randomised search). 0 if none. */
uint16_t toe_socktab_ephemeral(struct toe_stack *st, uint8_t proto, uint32_t laddr);

/* Calls the stack's sock_event callback for `s`. */
void toe_sock_notify(struct toe_stack *st, struct toe_sock *s, uint32_t events);

/* Sets a soft error and notifies TOE_EV_ERROR. */
void toe_sock_set_error(struct toe_stack *st, struct toe_sock *s, int err);

#endif
