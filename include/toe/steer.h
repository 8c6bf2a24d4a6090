/*
 * Steering: which received frames the engine terminates and which go up to the host interface
 * (the OS's own view of the NIC), so the device and the OS share one MAC and one IPv4 address
 * without conflict (docs/coexistence.md).
 *
 * The device's filter table holds one filter per thing the engine owns:
 *   - exact filters (protocol, local address, local port, remote address, remote port) for TCP
 *     connections, TIME_WAIT included, so the OS never sees a late segment of an offloaded flow;
 *   - local filters (protocol, local address, local port) for TCP listeners and bound sockets and
 *     for UDP binds.
 * The engine keeps the table in step with its sockets by itself (a filter is created and removed
 * with the socket state it stands for) when toe_config.steering is set; nothing else edits it.
 * Lookups are one hash probe for the exact filter, then one for the local one. Every filter counts
 * the frames and bytes it steered.
 *
 * toe_steer_frame() classifies one received frame without consuming it. The caller (the device's
 * driver loop) then gives the frame to toe_stack_input*() and/or to the host interface. Steering
 * performs no I/O and keeps the engine's sans-IO contract.
 */
#ifndef TOE_STEER_H
#define TOE_STEER_H

#include "toe/engine.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Where a frame goes (bit mask). */
#define TOE_STEER_ENGINE 0x1u /* give it to toe_stack_input*() */
#define TOE_STEER_HOST 0x2u   /* give it to the host interface */
#define TOE_STEER_BOTH (TOE_STEER_ENGINE | TOE_STEER_HOST)

/*
 * Classifies a received Ethernet frame (borrowed, not modified). Returns TOE_STEER_ENGINE,
 * TOE_STEER_HOST or TOE_STEER_BOTH and counts the decision (layer "steer") and, on a filter hit,
 * the filter's frames and bytes. The rules, in order:
 *   - ARP: both (the engine answers requests for the shared address and learns neighbours; the OS
 *     learns them too; the device drops the OS's own replies for the shared address on the way
 * out);
 *   - IPv6, when the engine has IPv6 on (toe_config.ipv6): the engine's addresses (its link-local
 *     one and cfg.addr6) are shared with the OS, and
 *       - Neighbor Solicitations for a shared address: both (the engine answers; the device drops
 *         the OS's advertisements for shared addresses on the way out); for other addresses and
 *         Router Solicitations: host;
 *       - Neighbor Advertisements, Router Advertisements, Redirects: both (RFC 4861);
 *       - MLD: host (the OS's interface is in every group the engine is in, RFC 3810);
 *       - echo requests to a shared address or a group: as ICMP echo below;
 *       - ICMPv6 errors (RFC 4443 types 1-4): the side owning the quoted flow;
 *       - TCP, UDP, fragments to a shared address: as for IPv4 below (toe_filt_lookup6);
 *       - anything else, and packets for other addresses: host;
 *     without IPv6 on, every IPv6 frame goes to the host;
 *   - anything but IPv4 to the shared address (other addresses, broadcast, multicast, other
 *     ethertypes, another VLAN): host;
 *   - IPv4 fragments: engine (non-first fragments carry no ports; the engine reassembles);
 *   - TCP, UDP: engine on an exact or a local filter hit, else host;
 *   - ICMP echo request: engine, or host if toe_config.icmp_echo_host;
 *   - ICMP errors (RFC 792 types 3, 4, 5, 11, 12): the side owning the quoted flow (filter lookup
 *     on the quoted header, RFC 1122 3.2.2: it carries the quoted datagram's ports);
 *   - other ICMP (echo replies, timestamps, ...): host;
 *   - malformed frames: engine (it counts them by reason and drops them).
 * With toe_config.steering off every frame goes to the engine (TOE_STEER_ENGINE).
 */
unsigned toe_steer_frame(struct toe_stack *st, const uint8_t *frame, size_t len);

/*
 * True if the engine owns TCP/UDP traffic of (proto, local port, remote address, remote port) on
 * the shared address: an exact filter or a local one. For the device's host-to-wire path, which
 * must never let the OS send a segment of an offloaded flow (such as a RST). Counts nothing.
 */
bool toe_steer_owned(const struct toe_stack *st, uint8_t proto, uint16_t lport, uint32_t raddr,
                     uint16_t rport);

/* True if `addr` (16 bytes) is one of the engine's IPv6 addresses, whatever its DAD state: the
 * addresses the device and the OS share. False with IPv6 off. */
bool toe_steer_shared6(const struct toe_stack *st, const uint8_t addr[16]);

/*
 * The same for an IPv6 peer (`raddr` 16 bytes, network order): an IPv6 exact filter or the port's
 * local filter (local filters own a port in both families).
 */
bool toe_steer_owned6(const struct toe_stack *st, uint8_t proto, uint16_t lport,
                      const uint8_t raddr[16], uint16_t rport);

/* Filter kinds. */
#define TOE_FILTER_LOCAL 1    /* (proto, local addr, local port): listener, bind */
#define TOE_FILTER_CONN 2     /* exact 5-tuple: a connection */
#define TOE_FILTER_TIMEWAIT 3 /* exact 5-tuple: a connection in TIME_WAIT */

/* One filter as toe_filter_visit() shows it. Addresses and ports host order. */
struct toe_filter_info {
  uint8_t kind;  /* TOE_FILTER_* */
  uint8_t proto; /* 6 TCP, 17 UDP */
  uint16_t lport;
  uint32_t laddr;  /* the shared address (the engine has one) */
  uint32_t raddr;  /* 0 for local filters */
  uint16_t rport;  /* 0 for local filters */
  uint16_t refs;   /* engine objects behind it (a connection and its TIME_WAIT successor, ...) */
  uint64_t frames; /* frames steered to the engine by it */
  uint64_t bytes;
  uint8_t family;     /* 4, or 6 for an IPv6 exact filter (laddr and raddr 0, see below) */
  uint8_t laddr6[16]; /* family 6: our address of the flow, network order */
  uint8_t raddr6[16]; /* family 6: the peer's address */
};

typedef void (*toe_filter_visit_fn)(void *arg, const struct toe_filter_info *f);

/* Calls `fn` once per filter, in table order. Returns how many there were. */
uint32_t toe_filter_visit(const struct toe_stack *st, toe_filter_visit_fn fn, void *arg);

/* Filters in the table now, and the table's capacity (0 with steering off). */
uint32_t toe_filter_count(const struct toe_stack *st);
uint32_t toe_filter_capacity(const struct toe_stack *st);

#endif
