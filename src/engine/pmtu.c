/*
 * The path MTU cache (pmtu.h): per-destination estimates from ICMP "fragmentation needed"
 * (RFC 1191 5-6) and ICMPv6 Packet Too Big (RFC 8201), aged out after TOE_PMTU_AGE (RFC 1191 6.3,
 * RFC 8201 4: at least 5 minutes, 10 recommended).
 */
#include "engine/pmtu.h"

#include "engine/stack.h"

#include <string.h>

static uint16_t link_mtu(const struct toe_stack *st)
{
  return st->cfg.mtu ? st->cfg.mtu : 1500;
}

static void rearm(struct toe_stack *st)
{
  struct toe_pmtu_cache *c = &st->pmtu;
  toe_time_t t = TOE_TIME_NEVER;
  for (uint32_t i = 0; i < c->n; i++)
    if (c->e[i].expires < t)
      t = c->e[i].expires;
  if (t == TOE_TIME_NEVER)
    toe_timer_cancel(st, &c->timer);
  else
    toe_timer_arm(st, &c->timer, t);
}

static void remove_at(struct toe_pmtu_cache *c, uint32_t i)
{
  c->e[i] = c->e[--c->n];
}

/* RFC 1191 6.3: estimates older than TOE_PMTU_AGE go; the connections that use them try the
 * link MTU again. */
static void on_expire(struct toe_stack *st, struct toe_timer *t)
{
  (void)t;
  struct toe_pmtu_cache *c = &st->pmtu;
  for (uint32_t i = 0; i < c->n;) {
    if (c->e[i].expires > st->now) {
      i++;
      continue;
    }
    uint32_t dst = c->e[i].dst;
    bool v6 = c->e[i].v6 != 0;
    remove_at(c, i);
    st->ctr.ip.pmtu_expired++;
    if (!v6)
      toe_tcp_pmtu_raise(st, dst, link_mtu(st));
  }
  rearm(st);
}

void toe_pmtu_init(struct toe_stack *st)
{
  st->pmtu.n = 0;
  toe_timer_init(&st->pmtu.timer, on_expire);
}

uint16_t toe_pmtu_get(const struct toe_stack *st, uint32_t dst)
{
  const struct toe_pmtu_cache *c = &st->pmtu;
  for (uint32_t i = 0; i < c->n; i++)
    if (!c->e[i].v6 && c->e[i].dst == dst && c->e[i].expires > st->now)
      return c->e[i].mtu;
  return link_mtu(st);
}

/* The entry for (v6 ? dst6 : dst), or c->n. */
static uint32_t find(const struct toe_pmtu_cache *c, bool v6, uint32_t dst,
                     const struct toe_in6_addr *dst6)
{
  uint32_t i;
  for (i = 0; i < c->n; i++) {
    if ((c->e[i].v6 != 0) != v6)
      continue;
    if (v6 ? toe_in6_equal(&c->e[i].dst6, dst6) : c->e[i].dst == dst)
      break;
  }
  return i;
}

static void lower(struct toe_stack *st, bool v6, uint32_t dst, const struct toe_in6_addr *dst6,
                  uint16_t mtu)
{
  struct toe_pmtu_cache *c = &st->pmtu;
  if (mtu >= link_mtu(st))
    return;
  uint32_t i = find(c, v6, dst, dst6);
  if (i < c->n && c->e[i].mtu <= mtu && c->e[i].expires > st->now)
    return; /* we know of a narrower path already */
  if (i == c->n) {
    if (c->n == TOE_PMTU_ENTRIES) {
      /* Full: the estimate closest to ageing out makes room. */
      i = 0;
      for (uint32_t k = 1; k < c->n; k++)
        if (c->e[k].expires < c->e[i].expires)
          i = k;
      st->ctr.ip.pmtu_evicted++;
    } else {
      c->n++;
    }
  }
  c->e[i].dst = v6 ? 0 : dst;
  c->e[i].mtu = mtu;
  c->e[i].v6 = v6;
  if (v6)
    c->e[i].dst6 = *dst6;
  else
    memset(&c->e[i].dst6, 0, sizeof(c->e[i].dst6));
  c->e[i].expires = st->now + TOE_PMTU_AGE;
  st->ctr.ip.pmtu_lowered++;
  rearm(st);
}

void toe_pmtu_lower(struct toe_stack *st, uint32_t dst, uint16_t mtu)
{
  lower(st, false, dst, NULL, mtu);
}

uint16_t toe_pmtu6_get(const struct toe_stack *st, const struct toe_in6_addr *dst)
{
  const struct toe_pmtu_cache *c = &st->pmtu;
  uint32_t i = find(c, true, 0, dst);
  if (i < c->n && c->e[i].expires > st->now)
    return c->e[i].mtu;
  return link_mtu(st);
}

void toe_pmtu6_lower(struct toe_stack *st, const struct toe_in6_addr *dst, uint16_t mtu)
{
  /* RFC 8201 4: the estimate never goes below the IPv6 minimum link MTU. */
  if (mtu < TOE_IPV6_MIN_MTU)
    return;
  lower(st, true, 0, dst, mtu);
}
