/*
 * IPv6 in the engine (docs/ipv6.md): the interface's addresses, input (ipv6_input.c), output
 * (ipv6_output.c), ICMPv6 (icmp6.c) and Neighbor Discovery with the neighbour cache (nd.c).
 *
 * First step only: the device answers on the link. Addresses are the link-local one (from the MAC)
 * and the configured global ones, all usable at once (no DAD yet); destinations must be on link
 * (no router discovery yet); no fragmentation or reassembly; TCP and UDP are not carried yet.
 */
#ifndef TOE_ENGINE_IPV6_H
#define TOE_ENGINE_IPV6_H

#include "engine/icmp.h"
#include "engine/nd_cache.h"
#include "engine/timer_wheel.h"
#include "toe/engine.h"
#include "wire/ipv6.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Index 0 is the link-local address; 1.. the configured global ones. */
#define TOE_IP6_MAX_ADDRS (1 + TOE_MAX_ADDR6)

/* Address states (RFC 4862 2): tentative while DAD runs, then preferred, or duplicate for good. */
enum toe_ip6_addr_state {
  TOE_IP6_PREFERRED = 0,
  TOE_IP6_TENTATIVE,
  TOE_IP6_DUPLICATE,
};

struct toe_ip6_ifaddr {
  struct toe_in6_addr addr;
  struct toe_in6_addr snm; /* its solicited-node group (RFC 4291 2.7.1) */
  uint8_t prefix_len;      /* on-link prefix: /64 for the link-local address (RFC 4291 2.5.6) */
  uint8_t state;           /* enum toe_ip6_addr_state */
  uint8_t dad_left;        /* DAD probes still to send */
  uint8_t nonce[6];        /* of our last DAD probe (RFC 7527) */
};

/* One neighbour cache entry: the RFC 4861 state machine (nd_cache.c) plus what the table needs. */
struct toe_nd_slot {
  struct toe_nd_entry e;  /* the RFC 4861 state (NONE until first used) */
  bool in_use;            /* the slot holds a neighbour */
  bool used;              /* we have sent (or tried to) to this neighbour */
  uint16_t qlen;          /* packets queued while INCOMPLETE */
  struct toe_pbuf *qhead; /* data at the IPv6 header, qnext-linked */
  struct toe_pbuf *qtail;
  toe_time_t last_use; /* LRU: last send or confirmation */
  struct toe_timer timer;
};

struct toe_ipv6_state {
  bool enabled;
  uint8_t naddr; /* addresses in addrs[] */
  struct toe_ip6_ifaddr addrs[TOE_IP6_MAX_ADDRS];
  struct toe_icmp_state icmp6_bucket; /* RFC 4443 2.4 (f) rate limit, separate from IPv4's */
  struct toe_nd_params nd_params;
  struct toe_nd_slot *nd;     /* cfg.nd_entries of them */
  uint32_t nd_count;          /* entries in use */
  struct toe_timer dad_timer; /* DAD and the MLD report's repetition (ipv6_dad.c) */
  bool dad_waiting;           /* the timer ends a probe's wait (else: the initial delay) */
};

/* Memory for the neighbour table (0 without cfg.ipv6), and the layout of the IPv6 state in it. */
size_t toe_ipv6_mem_size(const struct toe_config *cfg);
void toe_ipv6_init(struct toe_stack *st, void *mem);

/* Checks the IPv6 part of a config: addresses unicast, not link-local, loopback, v4-mapped or
 * unspecified, prefixes 1..128, no duplicates. */
bool toe_ipv6_config_ok(const struct toe_config *cfg);

/* Index into addrs[] of our usable (preferred) unicast address `a`, or -1. */
int toe_ip6_addr_index(const struct toe_stack *st, const struct toe_in6_addr *a);

/* Index into addrs[] of `a` whatever its state (tentative, duplicate), or -1. */
int toe_ip6_addr_find(const struct toe_stack *st, const struct toe_in6_addr *a);

/* Starts DAD for every address (RFC 4862 5.4) and joins the solicited-node groups with an MLDv2
 * report (RFC 3810 6.1); called by toe_stack_start(). */
void toe_ipv6_start(struct toe_stack *st);

/* DAD found `idx` (tentative) in use by another node (RFC 4862 5.4.3, 5.4.4): never used. */
void toe_ip6_dad_duplicate(struct toe_stack *st, unsigned idx);

/* True if `dst` is for us: one of our addresses, their solicited-node groups, or ff02::1. */
bool toe_ip6_dst_is_ours(const struct toe_stack *st, const struct toe_in6_addr *dst);

/* True if a frame to link-layer group `mac` (33:33:...) may carry a group we listen to. */
bool toe_ip6_mc_mac_is_ours(const struct toe_stack *st, const uint8_t mac[6]);

/* Our best source address for `dst` (RFC 6724 simplified: a global address whose prefix covers
 * dst, else the first global one for a global dst, else the link-local one). */
const struct toe_in6_addr *toe_ip6_src_for(const struct toe_stack *st,
                                           const struct toe_in6_addr *dst);

/* True if `dst` is on our link: link-local, multicast of link scope or below, or inside one of
 * our prefixes. */
bool toe_ip6_on_link(const struct toe_stack *st, const struct toe_in6_addr *dst);

/* Handles a received IPv6 packet (data at its header; consumed). */
void toe_ipv6_input(struct toe_stack *st, struct toe_pbuf *pb);

struct toe_ip6_tx {
  struct toe_in6_addr src;
  struct toe_in6_addr dst;
  uint8_t next_hdr;
  uint8_t hop_limit; /* 0 = the default (cfg.default_ttl) */
  uint8_t tclass;
  uint32_t flow; /* 20-bit flow label, 0 = none */
};

/*
 * Sends `pb` (data at the upper-layer header, with room for 40 bytes in front or a fresh buffer is
 * chained; consumed) as one IPv6 packet: multicast to its RFC 2464 7 MAC, on-link unicast through
 * the neighbour cache. Returns 0 (sent or queued) or, with the packet dropped and counted,
 * -TOE_EHOSTUNREACH (off-link: no router yet; or the neighbour failed), -TOE_EMSGSIZE (over the
 * MTU: no fragmentation yet), -TOE_ENOBUFS.
 */
int toe_ipv6_output(struct toe_stack *st, struct toe_pbuf *pb, const struct toe_ip6_tx *tx);

/* Writes the IPv6 header in front of `pb` (consumed) and sends it to `mac` without the
 * neighbour cache (ND's own messages, flushed queues are sent by nd.c). Returns 0 or -TOE_ENOBUFS.
 */
int toe_ipv6_output_mac(struct toe_stack *st, struct toe_pbuf *pb, const struct toe_ip6_tx *tx,
                        const uint8_t mac[6]);

/* ICMPv6 (icmp6.c). `pb` has data at the ICMPv6 header; `ip` and `ext` describe its packet. */
void toe_icmp6_input(struct toe_stack *st, struct toe_pbuf *pb, const struct toe_ipv6_view *ip,
                     const struct toe_ipv6_ext *ext);

/*
 * Sends an ICMPv6 error (type, code, param) about `orig` (data at its IPv6 header; borrowed),
 * described by `ip`; `ll_group` says it arrived as link-layer multicast. Applies RFC 4443 2.4 (e)
 * (toe_icmpv6_error_allowed) and the 2.4 (f) token bucket; counts what it does.
 */
void toe_icmp6_send_error(struct toe_stack *st, const struct toe_pbuf *orig,
                          const struct toe_ipv6_view *ip, bool ll_group, uint8_t type, uint8_t code,
                          uint32_t param);

/* Neighbor Discovery (nd.c): NS and NA input (`pb` at the ICMPv6 header, `len` contiguous message
 * bytes, checksum verified; consumed). */
void toe_nd_input(struct toe_stack *st, struct toe_pbuf *pb, const struct toe_ipv6_view *ip,
                  const struct toe_ipv6_ext *ext);

/* Sends `pb` (data at the IPv6 header, complete; consumed) to on-link `nexthop` through the
 * neighbour cache. Returns as toe_ipv6_output(). */
int toe_nd_resolve(struct toe_stack *st, struct toe_pbuf *pb, const struct toe_in6_addr *nexthop);

/* The cache entry for `ip` (tests, toectl), or NULL. */
const struct toe_nd_entry *toe_nd_lookup(const struct toe_stack *st, const struct toe_in6_addr *ip);

/* Upper-layer confirmation of reachability (RFC 4861 7.3.1), for TCP later. */
void toe_nd_confirm_reachable(struct toe_stack *st, const struct toe_in6_addr *ip);

#endif
