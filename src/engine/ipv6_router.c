/*
 * Router discovery for a host (RFC 4861 6.3.4), stateless address autoconfiguration (RFC 4862
 * 5.5.3) and redirects (RFC 4861 8.3).
 *
 * From router advertisements: the default router list (Router Lifetime), the on-link prefixes
 * (Prefix Information with L), the link MTU (MTU option), Cur Hop Limit, BaseReachableTime and
 * RetransTimer; the router's link-layer address goes into the neighbour cache with IsRouter. For
 * a prefix with A set and 64 bits long, an address is formed from the prefix and the modified
 * EUI-64 interface identifier of the MAC (RFC 4291 2.5.1, appendix A: the same identifier as the
 * link-local address, so no new solicited-node group is needed), DAD-checked like the configured
 * addresses, and kept for its valid lifetime; after its preferred lifetime it is deprecated (no
 * source for new flows, ipv6_addr.c). RFC 7217 stable identifiers are not used: the device has
 * no stable secret of its own across restarts, and EUI-64 is what the kernel on the same MAC
 * (addr_gen_mode 0) would form.
 *
 * All lists are small fixed arrays; one timer, armed for the earliest lifetime end, ages them.
 */
#include "common/byteorder.h"
#include "engine/ipv6.h"
#include "engine/stack.h"
#include "wire/icmpv6.h"
#include "wire/ndp.h"

#include <string.h>

#define INFINITE_LIFETIME 0xffffffffu
#define TWO_HOURS_S 7200u         /* RFC 4862 5.5.3 (e) */
#define REDIRECT_AGE TOE_SEC(600) /* a redirect is forgotten after 10 minutes */
#define MAX_REACHABLE_MS 3600000u /* RFC 4861 6.2.1: at most one hour */

static toe_time_t lifetime_end(const struct toe_stack *st, uint32_t secs)
{
  return secs == INFINITE_LIFETIME ? TOE_TIME_NEVER : st->now + TOE_SEC((toe_time_t)secs);
}

static void rearm(struct toe_stack *st)
{
  struct toe_ipv6_state *s = &st->ip6;
  toe_time_t t = TOE_TIME_NEVER;
  for (unsigned i = 0; i < TOE_IP6_MAX_ROUTERS; i++)
    if (s->routers[i].in_use && s->routers[i].expires < t)
      t = s->routers[i].expires;
  for (unsigned i = 0; i < TOE_IP6_MAX_PREFIXES; i++)
    if (s->prefixes[i].in_use && s->prefixes[i].expires < t)
      t = s->prefixes[i].expires;
  for (unsigned i = 0; i < TOE_IP6_MAX_REDIRECTS; i++)
    if (s->redirects[i].in_use && s->redirects[i].expires < t)
      t = s->redirects[i].expires;
  for (unsigned i = 0; i < s->naddr; i++)
    if (s->addrs[i].autoconf && s->addrs[i].valid_until < t)
      t = s->addrs[i].valid_until;
  if (t == TOE_TIME_NEVER)
    toe_timer_cancel(st, &s->ra_timer);
  else
    toe_timer_arm(st, &s->ra_timer, t);
}

static void remove_addr(struct toe_ipv6_state *s, unsigned i)
{
  for (unsigned j = i + 1; j < s->naddr; j++)
    s->addrs[j - 1] = s->addrs[j];
  s->naddr--;
}

static void on_timer(struct toe_stack *st, struct toe_timer *t)
{
  (void)t;
  struct toe_ipv6_state *s = &st->ip6;
  struct toe_counters_nd *c = &st->ctr.nd;
  for (unsigned i = 0; i < TOE_IP6_MAX_ROUTERS; i++) {
    if (s->routers[i].in_use && s->routers[i].expires <= st->now) {
      s->routers[i].in_use = false;
      c->routers_inuse--;
    }
  }
  for (unsigned i = 0; i < TOE_IP6_MAX_PREFIXES; i++) {
    if (s->prefixes[i].in_use && s->prefixes[i].expires <= st->now) {
      s->prefixes[i].in_use = false;
      c->prefixes_inuse--;
    }
  }
  for (unsigned i = 0; i < TOE_IP6_MAX_REDIRECTS; i++)
    if (s->redirects[i].in_use && s->redirects[i].expires <= st->now)
      s->redirects[i].in_use = false;
  /* RFC 4862 5.5.4: an address whose valid lifetime ends is removed from the interface. */
  for (unsigned i = 1; i < s->naddr;) {
    if (s->addrs[i].autoconf && s->addrs[i].valid_until <= st->now) {
      remove_addr(s, i);
      c->slaac_expired++;
    } else {
      i++;
    }
  }
  rearm(st);
}

void toe_ipv6_router_init(struct toe_stack *st)
{
  toe_timer_init(&st->ip6.ra_timer, on_timer);
}

/* RFC 4861 6.3.4: a router is added, refreshed, or (lifetime 0) removed. */
static void update_router(struct toe_stack *st, const struct toe_in6_addr *r, uint16_t lifetime)
{
  struct toe_ipv6_state *s = &st->ip6;
  struct toe_ip6_router *slot = NULL, *oldest = NULL, *free_slot = NULL;
  for (unsigned i = 0; i < TOE_IP6_MAX_ROUTERS; i++) {
    struct toe_ip6_router *e = &s->routers[i];
    if (!e->in_use) {
      if (!free_slot)
        free_slot = e;
    } else if (toe_in6_equal(&e->addr, r)) {
      slot = e;
    } else if (!oldest || e->expires < oldest->expires) {
      oldest = e;
    }
  }
  if (lifetime == 0) {
    if (slot) {
      slot->in_use = false;
      st->ctr.nd.routers_inuse--;
    }
    return;
  }
  if (!slot) {
    slot = free_slot ? free_slot : oldest;
    if (slot == free_slot)
      st->ctr.nd.routers_inuse++;
    slot->addr = *r;
    slot->in_use = true;
  }
  slot->expires = st->now + TOE_SEC((toe_time_t)lifetime);
}

/* RFC 4861 6.3.4: an on-link prefix (L set). */
static void update_prefix(struct toe_stack *st, const struct toe_nd_prefix *p)
{
  struct toe_ipv6_state *s = &st->ip6;
  struct toe_ip6_prefix *slot = NULL, *oldest = NULL, *free_slot = NULL;
  for (unsigned i = 0; i < TOE_IP6_MAX_PREFIXES; i++) {
    struct toe_ip6_prefix *e = &s->prefixes[i];
    if (!e->in_use) {
      if (!free_slot)
        free_slot = e;
    } else if (e->len == p->len && toe_in6_prefix_match(&e->prefix, &p->prefix, p->len)) {
      slot = e;
    } else if (!oldest || e->expires < oldest->expires) {
      oldest = e;
    }
  }
  if (p->valid == 0) {
    /* "time out the prefix immediately" */
    if (slot) {
      slot->in_use = false;
      st->ctr.nd.prefixes_inuse--;
    }
    return;
  }
  if (!slot) {
    slot = free_slot ? free_slot : oldest;
    if (slot == free_slot)
      st->ctr.nd.prefixes_inuse++;
    slot->prefix = p->prefix;
    slot->len = p->len;
    slot->in_use = true;
  }
  slot->expires = lifetime_end(st, p->valid);
}

/* RFC 4862 5.5.3: stateless autoconfiguration from a prefix with A set. */
static void slaac(struct toe_stack *st, const struct toe_nd_prefix *p)
{
  struct toe_ipv6_state *s = &st->ip6;
  /* (c) preferred > valid: ignore; a prefix that leaves no 64-bit interface identifier cannot be
   * used on Ethernet (RFC 4862 5.5.3 (d), RFC 2464 4). */
  if (p->preferred > p->valid || p->len != 64)
    return;
  struct toe_in6_addr a = p->prefix;
  toe_in6_eui64(a.b + 8, st->cfg.mac.b);
  int i = toe_ip6_addr_find(st, &a);
  if (i >= 0) {
    struct toe_ip6_ifaddr *ia = &s->addrs[i];
    if (!ia->autoconf)
      return; /* configured: its lifetimes are the operator's */
    /* (e): the preferred lifetime is taken; the valid one only as far as the two-hour rule
     * allows, so that a forged RA cannot end an address quickly. */
    ia->preferred_until = lifetime_end(st, p->preferred);
    toe_time_t remaining = ia->valid_until > st->now ? ia->valid_until - st->now : 0;
    toe_time_t two_hours = TOE_SEC((toe_time_t)TWO_HOURS_S);
    toe_time_t received =
        p->valid == INFINITE_LIFETIME ? TOE_TIME_NEVER : TOE_SEC((toe_time_t)p->valid);
    if (received > two_hours || received > remaining)
      ia->valid_until = lifetime_end(st, p->valid);
    else if (remaining > two_hours)
      ia->valid_until = st->now + two_hours;
    return;
  }
  if (p->valid == 0)
    return;
  if (s->naddr >= TOE_IP6_MAX_ADDRS) {
    st->ctr.nd.slaac_no_room++;
    return;
  }
  struct toe_ip6_ifaddr *ia = &s->addrs[s->naddr++];
  memset(ia, 0, sizeof(*ia));
  ia->addr = a;
  ia->prefix_len = 64;
  toe_in6_solicited_node(&ia->snm, &a);
  ia->autoconf = true;
  ia->valid_until = lifetime_end(st, p->valid);
  ia->preferred_until = lifetime_end(st, p->preferred);
  st->ctr.nd.slaac_added++;
  if (st->cfg.dad_transmits == 0) {
    ia->state = TOE_IP6_PREFERRED;
    return;
  }
  /* RFC 4862 5.4: tentative until DAD passes; the DAD timer (ipv6_dad.c) sends the probes. */
  ia->state = TOE_IP6_TENTATIVE;
  ia->dad_left = st->cfg.dad_transmits;
  if (!toe_timer_pending(&s->dad_timer)) {
    s->dad_waiting = true;
    toe_timer_arm(st, &s->dad_timer, st->now + TOE_MSEC(1));
  }
}

void toe_ip6_ra_input(struct toe_stack *st, struct toe_pbuf *pb, const struct toe_ipv6_view *ip,
                      const struct toe_ipv6_ext *ext)
{
  struct toe_ipv6_state *s = &st->ip6;
  struct toe_counters_nd *c = &st->ctr.nd;
  struct toe_nd_view v;
  if (toe_pbuf_linearize_head(st, pb, (uint16_t)pb->tot_len) != 0 ||
      toe_nd_parse(&v, ip, pb->data, pb->len, ext->has_frag) != 0 || v.type != TOE_ICMPV6_ND_RA) {
    c->rx_ra_invalid++;
    goto drop;
  }
  c->rx_ra++;
  if (v.cur_hop_limit)
    s->ra_hop_limit = v.cur_hop_limit;
  if (v.reachable_ms && v.reachable_ms <= MAX_REACHABLE_MS &&
      v.reachable_ms != s->base_reachable_ms) {
    /* RFC 4861 6.3.4: a new BaseReachableTime draws ReachableTime again (0.5..1.5 x). */
    s->base_reachable_ms = v.reachable_ms;
    uint32_t r = (uint32_t)(toe_random(st) & 0x7fffffffu) % (v.reachable_ms + 1u);
    s->nd_params.reachable_time = TOE_MSEC((toe_time_t)(v.reachable_ms / 2u + r));
  }
  if (v.retrans_ms)
    s->nd_params.retrans_timer = TOE_MSEC((toe_time_t)v.retrans_ms);
  if (v.mtu) {
    /* RFC 4861 6.3.4: LinkMTU from the option if at least 1280 and not above the link's own. */
    if (v.mtu >= TOE_IPV6_MIN_MTU && v.mtu <= st->cfg.mtu) {
      s->ra_mtu = (uint16_t)v.mtu;
      c->ra_mtu_set++;
    } else {
      c->ra_mtu_ignored++;
    }
  }
  if (v.sll)
    toe_nd_learn_lladdr(st, &ip->src, v.sll, true);
  update_router(st, &ip->src, v.router_lifetime);
  size_t cur = 0;
  struct toe_nd_prefix p;
  while (toe_nd_prefix_next(&v, &cur, &p)) {
    /* RFC 4861 6.3.4 / RFC 4862 5.5.3 (b): the link-local prefix is ours already. */
    if (toe_in6_is_link_local(&p.prefix))
      continue;
    if (p.on_link)
      update_prefix(st, &p);
    if (p.autonomous)
      slaac(st, &p);
  }
  rearm(st);
drop:
  toe_pbuf_free(st, pb);
}

static bool router_valid(const struct toe_stack *st, const struct toe_ip6_router *r)
{
  return r->in_use && r->expires > st->now;
}

bool toe_ip6_next_hop(const struct toe_stack *st, const struct toe_in6_addr *dst,
                      struct toe_in6_addr *nexthop)
{
  const struct toe_ipv6_state *s = &st->ip6;
  for (unsigned i = 0; i < TOE_IP6_MAX_REDIRECTS; i++) {
    const struct toe_ip6_redirect *r = &s->redirects[i];
    if (r->in_use && r->expires > st->now && toe_in6_equal(&r->dst, dst)) {
      *nexthop = r->target;
      return true;
    }
  }
  if (toe_ip6_on_link(st, dst)) {
    *nexthop = *dst;
    return true;
  }
  /* RFC 4861 6.3.6: a router that is (probably) reachable first, else any. */
  const struct toe_ip6_router *any = NULL;
  for (unsigned i = 0; i < TOE_IP6_MAX_ROUTERS; i++) {
    const struct toe_ip6_router *r = &s->routers[i];
    if (!router_valid(st, r))
      continue;
    const struct toe_nd_entry *e = toe_nd_lookup(st, &r->addr);
    if (e && e->state != TOE_ND_INCOMPLETE && e->state != TOE_ND_NONE) {
      *nexthop = r->addr;
      return true;
    }
    if (!any)
      any = r;
  }
  if (!any)
    return false;
  *nexthop = any->addr;
  return true;
}

void toe_ip6_redirect_input(struct toe_stack *st, struct toe_pbuf *pb,
                            const struct toe_ipv6_view *ip, const struct toe_ipv6_ext *ext)
{
  struct toe_ipv6_state *s = &st->ip6;
  struct toe_counters_nd *c = &st->ctr.nd;
  struct toe_nd_view v;
  struct toe_in6_addr current;
  /* RFC 4861 8.1: valid only from the router we use for that destination now. */
  if (toe_pbuf_linearize_head(st, pb, (uint16_t)pb->tot_len) != 0 ||
      toe_nd_parse(&v, ip, pb->data, pb->len, ext->has_frag) != 0 ||
      v.type != TOE_ICMPV6_ND_REDIRECT || !toe_ip6_next_hop(st, &v.dest, &current) ||
      !toe_in6_equal(&current, &ip->src) || toe_in6_equal(&current, &v.dest)) {
    c->rx_redirect_rejected++;
    goto drop;
  }
  c->rx_redirect++;
  bool on_link = toe_in6_equal(&v.target, &v.dest);
  /* RFC 4861 8.3: the target's link-layer address, IsRouter unless the target is the dest. */
  if (v.tll)
    toe_nd_learn_lladdr(st, &v.target, v.tll, !on_link);
  struct toe_ip6_redirect *slot = NULL;
  for (unsigned i = 0; i < TOE_IP6_MAX_REDIRECTS && !slot; i++)
    if (s->redirects[i].in_use && toe_in6_equal(&s->redirects[i].dst, &v.dest))
      slot = &s->redirects[i];
  for (unsigned i = 0; i < TOE_IP6_MAX_REDIRECTS && !slot; i++)
    if (!s->redirects[i].in_use)
      slot = &s->redirects[i];
  if (!slot) {
    slot = &s->redirects[0];
    for (unsigned i = 1; i < TOE_IP6_MAX_REDIRECTS; i++)
      if (s->redirects[i].expires < slot->expires)
        slot = &s->redirects[i];
  }
  slot->dst = v.dest;
  slot->target = v.target;
  slot->in_use = true;
  slot->expires = st->now + REDIRECT_AGE;
  rearm(st);
drop:
  toe_pbuf_free(st, pb);
}

uint16_t toe_ip6_link_mtu(const struct toe_stack *st)
{
  return st->ip6.ra_mtu ? st->ip6.ra_mtu : st->cfg.mtu;
}

uint8_t toe_ip6_hop_limit(const struct toe_stack *st)
{
  return st->ip6.ra_hop_limit ? st->ip6.ra_hop_limit : st->cfg.default_ttl;
}
