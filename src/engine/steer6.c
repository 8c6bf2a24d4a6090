/*
 * Steering IPv6 frames between the engine and the host interface (include/toe/steer.h has the
 * rules, docs/coexistence.md why). The engine's addresses (its link-local one, from the shared
 * MAC, and the --addr6 ones) are "shared": the OS's interface carries them too. Only headers are
 * read, in place.
 */
#include "engine/steer6.h"

#include "common/byteorder.h"
#include "engine/filter_table.h"
#include "engine/ipv6.h"
#include "engine/stack.h"
#include "toe/steer.h"
#include "wire/icmpv6.h"
#include "wire/ipv6.h"

#include <string.h>

bool toe_steer_shared6(const struct toe_stack *st, const uint8_t addr[16])
{
  if (!st->ip6.enabled)
    return false;
  struct toe_in6_addr a;
  memcpy(a.b, addr, 16);
  return toe_ip6_addr_find(st, &a) >= 0;
}

static bool shared(const struct toe_stack *st, const struct toe_in6_addr *a)
{
  return toe_ip6_addr_find(st, a) >= 0;
}

static bool hit6(struct toe_stack *st, uint8_t proto, uint16_t lport, const struct toe_in6_addr *ra,
                 uint16_t rport, size_t len)
{
  struct toe_filter *f = toe_filt_lookup6(st, proto, lport, ra, rport);
  if (!f)
    return false;
  f->frames++;
  f->bytes += len;
  return true;
}

/*
 * An ICMPv6 error carries as much of the invoking packet as fits (RFC 4443 2.4 (c)): its IPv6
 * header and, for a packet without extension headers, the TCP or UDP ports. The invoking packet
 * is one we (or the OS) sent: its source is a shared address and its source port the local one.
 * A quote whose upper layer is not directly after the fixed header goes to the host: the engine
 * sends no extension headers on TCP or UDP.
 */
static unsigned steer_icmp6_error(struct toe_stack *st, const struct toe_icmpv6_view *ic,
                                  size_t len)
{
  struct toe_counters_steer *c = &st->ctr.steer;
  const uint8_t *q = ic->body;
  if (ic->body_len < TOE_IPV6_HLEN + 4 || (q[0] >> 4) != 6)
    goto host;
  uint8_t proto = q[6];
  struct toe_in6_addr src, dst;
  memcpy(src.b, q + 8, 16);
  memcpy(dst.b, q + 24, 16);
  if (!shared(st, &src) || (proto != TOE_IPPROTO_TCP && proto != TOE_IPPROTO_UDP))
    goto host;
  const uint8_t *l4 = q + TOE_IPV6_HLEN;
  if (hit6(st, proto, toe_load_be16(l4), &dst, toe_load_be16(l4 + 2), len)) {
    c->icmp_err_engine++;
    return toe_steer_verdict(st, TOE_STEER_ENGINE);
  }
host:
  c->icmp_err_host++;
  return toe_steer_verdict(st, TOE_STEER_HOST);
}

/* ICMPv6 other than errors: Neighbor Discovery (RFC 4861), MLD (RFC 3810), echo (RFC 4443). */
static unsigned steer_icmp6(struct toe_stack *st, const struct toe_icmpv6_view *ic, bool unicast,
                            size_t len)
{
  struct toe_counters_steer *c = &st->ctr.steer;
  if (toe_icmpv6_is_error(ic->type))
    return unicast ? steer_icmp6_error(st, ic, len) : toe_steer_verdict(st, TOE_STEER_HOST);
  switch (ic->type) {
  case TOE_ICMPV6_ECHO_REQUEST:
    /* One answer per request, unicast or to a group we are in (RFC 4443 4.1). */
    if (st->cfg.icmp_echo_host) {
      c->echo_host++;
      return toe_steer_verdict(st, TOE_STEER_HOST);
    }
    c->echo_engine++;
    return toe_steer_verdict(st, TOE_STEER_ENGINE);
  case TOE_ICMPV6_ND_NS: {
    /* RFC 4861 4.3: the target follows the 4 reserved bytes (the view's 8-byte header holds
     * them, so it opens the body). A solicitation for a shared address
     * goes to both, as ARP requests do: the engine answers it (the OS's advertisement for it is
     * dropped on the way out, host_if.c), and both learn the solicitor's link-layer address
     * (7.2.3). One for an address only the OS has is the OS's. */
    struct toe_in6_addr target;
    if (ic->body_len < 16) {
      c->malformed++;
      return toe_steer_verdict(st, TOE_STEER_ENGINE);
    }
    memcpy(target.b, ic->body, 16);
    if (shared(st, &target)) {
      c->nd_both++;
      return toe_steer_verdict(st, TOE_STEER_BOTH);
    }
    c->nd_host++;
    return toe_steer_verdict(st, TOE_STEER_HOST);
  }
  case TOE_ICMPV6_ND_NA:
    /* Either side may have solicited it; the other has no entry for the target and discards it
     * (RFC 4861 7.2.5). An advertisement for a shared address from elsewhere is a duplicate the
     * engine's DAD must see (RFC 4862 5.4.4) and the OS's too. */
    c->nd_both++;
    return toe_steer_verdict(st, TOE_STEER_BOTH);
  case TOE_ICMPV6_ND_RA:
  case TOE_ICMPV6_ND_REDIRECT:
    /* Routers, prefixes and better first hops are facts about the link both sides route over
     * (RFC 4861 6.3.4, 8.3). */
    c->ra_both++;
    return toe_steer_verdict(st, TOE_STEER_BOTH);
  case TOE_ICMPV6_ND_RS:
    c->nd_host++; /* for routers; the OS may be one, the engine never is (RFC 4861 6.2.6) */
    return toe_steer_verdict(st, TOE_STEER_HOST);
  case TOE_ICMPV6_MLD_QUERY:
  case 131: /* MLDv1 report (RFC 2710 3.2) */
  case 132: /* MLDv1 done */
  case TOE_ICMPV6_MLD2_REPORT:
    /* The OS's interface is in every group the engine is in (the solicited-node groups of the
     * shared addresses, all-nodes), so its reports answer the router for both (RFC 3810 6.2). */
    c->mld_host++;
    return toe_steer_verdict(st, TOE_STEER_HOST);
  default:
    c->icmp_other++;
    return toe_steer_verdict(st, TOE_STEER_HOST);
  }
}

unsigned toe_steer_ipv6(struct toe_stack *st, const uint8_t *frame, size_t len, size_t l3_off,
                        bool mac_ours)
{
  struct toe_counters_steer *c = &st->ctr.steer;
  const uint8_t *l3 = frame + l3_off;
  size_t l3_len = len - l3_off;
  struct toe_ipv6_view ip;
  if (toe_ipv6_parse(&ip, l3, l3_len, l3_len) < 0) {
    c->malformed++;
    return toe_steer_verdict(st, TOE_STEER_ENGINE);
  }
  bool mcast = toe_in6_is_multicast(&ip.dst);
  /* A unicast packet is ours if it is for a shared address and to our MAC; multicast ones are
   * looked at (ND, MLD, echo), the rest of them are the OS's. */
  if (mcast ? mac_ours : (!mac_ours || !shared(st, &ip.dst))) {
    c->not_ours++;
    return toe_steer_verdict(st, TOE_STEER_HOST);
  }
  struct toe_ipv6_ext ext;
  int rc = toe_ipv6_ext_walk(&ext, &ip, l3, l3_len);
  if (rc < 0) {
    /* The engine counts it and answers with a Parameter Problem where RFC 4443 3.4 says so;
     * a multicast one is the OS's (neither side answers errors to multicast, 2.4 (e)). */
    if (mcast) {
      c->not_ours++;
      return toe_steer_verdict(st, TOE_STEER_HOST);
    }
    c->malformed++;
    return toe_steer_verdict(st, TOE_STEER_ENGINE);
  }
  if (ext.proto == TOE_IPPROTO_FRAGMENT) {
    /* Only the first fragment carries the ports; the engine reassembles (as IPv4, rule 7). */
    if (mcast) {
      c->not_ours++;
      return toe_steer_verdict(st, TOE_STEER_HOST);
    }
    c->fragments++;
    return toe_steer_verdict(st, TOE_STEER_ENGINE);
  }
  const uint8_t *l4 = l3 + ext.offset;
  size_t l4_len = TOE_IPV6_HLEN + (size_t)ip.payload_len - ext.offset;
  switch (ext.proto) {
  case TOE_IPPROTO_TCP:
  case TOE_IPPROTO_UDP: {
    bool tcp = ext.proto == TOE_IPPROTO_TCP;
    if (mcast) {
      c->not_ours++; /* the engine joins no groups for its sockets */
      return toe_steer_verdict(st, TOE_STEER_HOST);
    }
    if (l4_len < 4) {
      c->malformed++;
      return toe_steer_verdict(st, TOE_STEER_ENGINE);
    }
    if (hit6(st, ext.proto, toe_load_be16(l4 + 2), &ip.src, toe_load_be16(l4), len)) {
      if (tcp)
        c->tcp_engine++;
      else
        c->udp_engine++;
      return toe_steer_verdict(st, TOE_STEER_ENGINE);
    }
    if (tcp)
      c->tcp_host++;
    else
      c->udp_host++;
    return toe_steer_verdict(st, TOE_STEER_HOST);
  }
  case TOE_IPPROTO_ICMPV6: {
    struct toe_icmpv6_view ic;
    /* The checksum is the engine's to verify (csum_ok): steering reads, it does not judge. */
    if (toe_icmpv6_parse(&ic, l4, l4_len, &ip.src, &ip.dst, true) < 0) {
      c->malformed++;
      return toe_steer_verdict(st, TOE_STEER_ENGINE);
    }
    return steer_icmp6(st, &ic, !mcast, len);
  }
  default:
    c->other_proto++;
    return toe_steer_verdict(st, TOE_STEER_HOST);
  }
}
