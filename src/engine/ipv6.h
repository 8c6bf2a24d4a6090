/*
 * IPv6 in the engine (docs/ipv6.md): the interface's addresses, input (ipv6_input.c), output
 * (ipv6_output.c), ICMPv6 (icmp6.c) and Neighbor Discovery with the neighbour cache (nd.c).
 *
 * Addresses are the link-local one (from the MAC), the configured global ones and those SLAAC
 * forms from router advertisements (ipv6_router.c), each DAD-checked (ipv6_dad.c); off-link
 * destinations go through a default router or a redirect's target; packets over the path MTU are
 * fragmented (ipv6_frag.c) and fragments reassembled (ipv6_reass.c); received ICMPv6 errors reach
 * the path MTU cache and the sockets (icmp6_err.c).
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
  struct toe_in6_addr snm;    /* its solicited-node group (RFC 4291 2.7.1) */
  uint8_t prefix_len;         /* on-link prefix: /64 for the link-local address (RFC 4291 2.5.6) */
  uint8_t state;              /* enum toe_ip6_addr_state */
  uint8_t dad_left;           /* DAD probes still to send */
  uint8_t nonce[6];           /* of our last DAD probe (RFC 7527) */
  bool autoconf;              /* formed by SLAAC (ipv6_router.c), with the lifetimes below */
  toe_time_t valid_until;     /* RFC 4862 5.5.3: the address goes (TOE_TIME_NEVER: configured) */
  toe_time_t preferred_until; /* after it the address is deprecated: no source for new flows */
};

/* Router discovery (ipv6_router.c, RFC 4861 6.3.4): bounded lists, oldest replaced. */
#define TOE_IP6_MAX_ROUTERS 4
#define TOE_IP6_MAX_PREFIXES 8
#define TOE_IP6_MAX_REDIRECTS 8

struct toe_ip6_router {
  struct toe_in6_addr addr; /* link-local address of a default router */
  toe_time_t expires;       /* from its Router Lifetime */
  bool in_use;
};

struct toe_ip6_prefix {
  struct toe_in6_addr prefix; /* an on-link prefix from a Prefix Information option (L set) */
  uint8_t len;
  bool in_use;
  toe_time_t expires; /* its valid lifetime; TOE_TIME_NEVER for infinity */
};

/* A redirect (RFC 4861 8.3): packets to `dst` go to `target` (== dst: dst is on link). */
struct toe_ip6_redirect {
  struct toe_in6_addr dst;
  struct toe_in6_addr target;
  bool in_use;
  toe_time_t expires;
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

/* IPv6 reassembly (ipv6_reass.c, RFC 8200 4.5): a fixed table of datagrams under way. Buffers
 * count against the same budget as IPv4's (cfg.reass_max_bufs, st->ip.reass_bufs). */
#define TOE_IP6_REASS_SLOTS 16u
#define TOE_IP6_REASS_PER_SRC 4u          /* datagrams one source may have under way */
#define TOE_IP6_REASS_TIMEOUT TOE_SEC(60) /* RFC 8200 4.5: 60 s from the first fragment */
#define TOE_IP6_REASS_F_POISONED 0x01u    /* overlap seen (RFC 5722): drop till the timeout */

/* One datagram being reassembled, keyed by (source, destination, identification) (RFC 8200 4.5).
 * Each held fragment is a pbuf chain with data at its IPv6 header, the headers up to its data
 * contiguous, and meta[0] = fragment offset, meta[1] = data length, meta[2] = bytes before the
 * data, meta[3] = the Per-Fragment headers' length | the offset of the Next Header field that
 * names the fragment header << 16. */
struct toe_reass6 {
  struct toe_in6_addr src;
  struct toe_in6_addr dst;
  uint32_t id;
  uint8_t in_use;
  uint8_t flags;          /* TOE_IP6_REASS_F_* */
  uint8_t frag_nh;        /* Next Header of the first fragment's fragment header */
  uint32_t nbufs;         /* pbufs held */
  uint32_t total_len;     /* fragmentable part's length once the last fragment is seen, else 0 */
  uint32_t have_len;      /* data bytes held */
  struct toe_pbuf *frags; /* fragments ordered by offset (qnext-linked) */
  struct toe_timer timer; /* the 60 s reassembly timeout */
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
  struct toe_reass6 reass[TOE_IP6_REASS_SLOTS];
  struct toe_ip6_router routers[TOE_IP6_MAX_ROUTERS];
  struct toe_ip6_prefix prefixes[TOE_IP6_MAX_PREFIXES];
  struct toe_ip6_redirect redirects[TOE_IP6_MAX_REDIRECTS];
  struct toe_timer ra_timer;  /* the earliest router, prefix, redirect or address lifetime */
  uint16_t ra_mtu;            /* LinkMTU from an RA's MTU option (RFC 4861 6.3.4), 0: cfg.mtu */
  uint8_t ra_hop_limit;       /* CurHopLimit from an RA, 0: cfg.default_ttl */
  uint32_t base_reachable_ms; /* BaseReachableTime last taken from an RA, 0: the default */
  uint32_t frag_seq;          /* input of the fragment identification hash (ipv6_frag.c) */
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

/* Prepares the DAD timer (ipv6_dad.c); called by toe_ipv6_init(). */
void toe_ipv6_dad_init(struct toe_stack *st);

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
 * the neighbour cache, off-link ones to a default router (RFC 4861 5.2); fragmented when over
 * the path MTU (toe_pmtu6_get). Returns 0 (sent or queued) or, with the packet dropped and counted,
 * -TOE_EHOSTUNREACH (off-link and no router), -TOE_EMSGSIZE (over 65535 bytes of payload),
 * -TOE_ENOBUFS.
 */
int toe_ipv6_output(struct toe_stack *st, struct toe_pbuf *pb, const struct toe_ip6_tx *tx);

/* Writes the IPv6 header in front of `pb` (consumed) and sends it to `nexthop` (on link: the
 * destination or a router) through the neighbour cache, without any MTU check. Returns as
 * toe_ipv6_output(). */
int toe_ipv6_output_resolve(struct toe_stack *st, struct toe_pbuf *pb, const struct toe_ip6_tx *tx,
                            const struct toe_in6_addr *nexthop);

/*
 * Sends `pb` (data at the upper-layer header, consumed) as fragments of at most `mtu` bytes
 * (RFC 8200 4.5; ipv6_frag.c), to `mac` if not NULL, else to `nexthop` through the neighbour
 * cache. Returns 0 or the first error (-TOE_ENOBUFS: a fragment could not be built; the rest are
 * not sent).
 */
int toe_ipv6_fragment(struct toe_stack *st, struct toe_pbuf *pb, const struct toe_ip6_tx *tx,
                      uint16_t mtu, const uint8_t *mac, const struct toe_in6_addr *nexthop);

/* Writes the IPv6 header in front of `pb` (consumed) and sends it to `mac` without the
 * neighbour cache (ND's own messages, flushed queues are sent by nd.c). Returns 0 or -TOE_ENOBUFS.
 */
int toe_ipv6_output_mac(struct toe_stack *st, struct toe_pbuf *pb, const struct toe_ip6_tx *tx,
                        const uint8_t mac[6]);

/* Router discovery, SLAAC and redirects (ipv6_router.c). */
void toe_ipv6_router_init(struct toe_stack *st);

/* A router advertisement (RFC 4861 6.3.4) or redirect (8.3): `pb` at the ICMPv6 header,
 * checksum verified; consumed. */
void toe_ip6_ra_input(struct toe_stack *st, struct toe_pbuf *pb, const struct toe_ipv6_view *ip,
                      const struct toe_ipv6_ext *ext);
void toe_ip6_redirect_input(struct toe_stack *st, struct toe_pbuf *pb,
                            const struct toe_ipv6_view *ip, const struct toe_ipv6_ext *ext);

/* The next hop for unicast `dst` (RFC 4861 5.2): a redirect's target, `dst` itself when on link,
 * else a default router. Returns false if there is none. */
bool toe_ip6_next_hop(const struct toe_stack *st, const struct toe_in6_addr *dst,
                      struct toe_in6_addr *nexthop);

/* The link MTU: an RA's MTU option, else cfg.mtu. */
uint16_t toe_ip6_link_mtu(const struct toe_stack *st);

/* The hop limit for our packets: an RA's Cur Hop Limit, else cfg.default_ttl. */
uint8_t toe_ip6_hop_limit(const struct toe_stack *st);

/* Reassembly (ipv6_reass.c): slots and timers, called by toe_ipv6_init(). */
void toe_ipv6_reass_init(struct toe_stack *st);

/*
 * Takes a fragment (`pb`, data at its IPv6 header, consumed; `v` and `ext` from the walk, which
 * stopped at its fragment header). Returns NULL while the datagram is incomplete or when the
 * fragment was dropped (counted), else the whole packet: data at its IPv6 header, the fragment
 * header removed, Payload Length and the Next Header that named it rewritten (RFC 8200 4.5).
 */
struct toe_pbuf *toe_ipv6_reass(struct toe_stack *st, struct toe_pbuf *pb,
                                const struct toe_ipv6_view *v, const struct toe_ipv6_ext *ext);

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

/*
 * A received ICMPv6 error about a packet we sent (icmp6_err.c), as handed to the upper layer that
 * sent it: `qip`/`qext` describe the quoted packet (its source is ours), `ql4` points at 8 bytes
 * of its upper-layer header (ports). `err` is the negative TOE_E* Linux's icmpv6_err_convert()
 * gives and `fatal` its "hard error" flag; `mtu` is the Packet Too Big MTU (>= 1280), already
 * entered in the path MTU cache.
 */
struct toe_icmp6_err {
  uint8_t type;
  uint8_t code;
  bool fatal;
  int err;
  uint32_t mtu;
  const struct toe_ipv6_view *qip;
  const struct toe_ipv6_ext *qext;
  const uint8_t *ql4;
};

/* Handles an ICMPv6 error message (`pb` at the ICMPv6 header, checksum verified; consumed):
 * parses the quote, updates the path MTU cache for Packet Too Big and delivers the error. */
void toe_icmp6_error_input(struct toe_stack *st, struct toe_pbuf *pb,
                           const struct toe_ipv6_view *ip);

/* UDP's part: the soft error to the socket that sent the quoted datagram, as Linux's UDPv6 does
 * (a hard error to a connected socket; any error with TOE_SOCK_F_RECVERR). Returns true if a
 * socket took it. */
bool toe_udp_icmp6_error(struct toe_stack *st, const struct toe_icmp6_err *e);

/* Neighbor Discovery (nd.c): NS and NA input (`pb` at the ICMPv6 header, `len` contiguous message
 * bytes, checksum verified; consumed). */
void toe_nd_input(struct toe_stack *st, struct toe_pbuf *pb, const struct toe_ipv6_view *ip,
                  const struct toe_ipv6_ext *ext);

/* Sends `pb` (data at the IPv6 header, complete; consumed) to on-link `nexthop` through the
 * neighbour cache. Returns as toe_ipv6_output(). */
int toe_nd_resolve(struct toe_stack *st, struct toe_pbuf *pb, const struct toe_in6_addr *nexthop);

/* An RA or redirect carried the link-layer address of `ip` (RFC 4861 6.3.4, 8.3): create or
 * update its entry (STALE when new or changed); `router` sets IsRouter. */
void toe_nd_learn_lladdr(struct toe_stack *st, const struct toe_in6_addr *ip, const uint8_t mac[6],
                         bool router);

/* The cache entry for `ip` (tests, toectl), or NULL. */
const struct toe_nd_entry *toe_nd_lookup(const struct toe_stack *st, const struct toe_in6_addr *ip);

/* Upper-layer confirmation of reachability (RFC 4861 7.3.1), for TCP later. */
void toe_nd_confirm_reachable(struct toe_stack *st, const struct toe_in6_addr *ip);

#endif
