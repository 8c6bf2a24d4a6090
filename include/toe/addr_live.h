/*
 * Changing the engine's IPv4 address while it runs (toed --follow-host: the device's address
 * follows the one the OS's DHCP client puts on the host interface, docs/coexistence.md).
 */
#ifndef TOE_ADDR_LIVE_H
#define TOE_ADDR_LIVE_H

#include "toe/engine.h"

#include <stdint.h>

/*
 * Makes `addr`/`prefix_len` (host order) the stack's IPv4 address and `gateway` (0: none, else
 * on-link) its default gateway, as toe_config has them at creation. If the address changes, every
 * TCP connection on the old one is reset: a RST to the peer in the states where RFC 9293 3.10.5
 * (ABORT) sends one, and the owner sees the connection fail with -TOE_ENETDOWN (toe_sock_error),
 * as it would on a reset; the socket stays the owner's to close. Listeners and UDP sockets stay:
 * those bound to "any" take the new address's traffic. The resets count as any other
 * (tcp.estab_resets, tcp.attempt_fails). Between calls only, like every other engine call. Returns
 * 0, or -TOE_EINVAL (not a usable unicast address for the prefix, prefix > 32, or a gateway that is
 * not on the new subnet); nothing changes on error.
 */
int toe_stack_set_addr4(struct toe_stack *st, uint32_t addr, uint8_t prefix_len, uint32_t gateway);

#endif
