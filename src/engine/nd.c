/*
 * Neighbor Discovery (RFC 4861) for our own addresses and our own sends: answering solicitations
 * (7.2.4), defending our addresses against DAD probes (RFC 4862 5.4.3), and the neighbour table
 * around the per-entry state machine of nd_cache.c (7.2.2 resolution with a packet queue, 7.3.3
 * reachability, 7.2.3/7.2.5 learning).
 *
 * The table is a fixed array of cfg.nd_entries slots searched linearly (a hash, as arp_cache.c
 * has, is for when sockets make it hot; docs/ipv6.md). When it is full, a send reclaims the least
 * recently used slot that is not resolving; a link-layer address learned from someone else's
 * solicitation may only take a free slot or one we never sent to, so a flood of solicitations from
 * made-up sources cannot push out the neighbours we talk to.
 */
#include "engine/ipv6.h"
#include "engine/stack.h"
#include "wire/ethernet.h"
#include "wire/icmpv6.h"
#include "wire/ndp.h"

#include <string.h>

static struct toe_nd_slot *slot_find(const struct toe_stack *st, const struct toe_in6_addr *ip)
{
  const struct toe_ipv6_state *s = &st->ip6;
  for (uint32_t i = 0; i < st->cfg.nd_entries; i++)
    if (s->nd[i].in_use && toe_in6_equal(&s->nd[i].e.ip, ip))
      return &s->nd[i];
  return NULL;
}

const struct toe_nd_entry *toe_nd_lookup(const struct toe_stack *st, const struct toe_in6_addr *ip)
{
  if (!st->ip6.enabled)
    return NULL;
  const struct toe_nd_slot *sl = slot_find(st, ip);
  return sl ? &sl->e : NULL;
}

static void slot_release(struct toe_stack *st, struct toe_nd_slot *sl)
{
  toe_timer_cancel(st, &sl->timer);
  toe_pbuf_free_queue(st, sl->qhead);
  sl->qhead = sl->qtail = NULL;
  sl->qlen = 0;
  sl->in_use = false;
  sl->e.state = TOE_ND_NONE;
  st->ip6.nd_count--;
  st->ctr.nd.entries_inuse--;
}

static void nd_timer_expired(struct toe_stack *st, struct toe_timer *t);

/* A slot for `ip` (not in the table), state NONE. `for_output`: any slot but a resolving one may
 * be reclaimed; otherwise only one never sent to. NULL if none may be taken. */
static struct toe_nd_slot *slot_alloc(struct toe_stack *st, const struct toe_in6_addr *ip,
                                      bool for_output)
{
  struct toe_ipv6_state *s = &st->ip6;
  struct toe_nd_slot *victim = NULL;
  for (uint32_t i = 0; i < st->cfg.nd_entries; i++) {
    struct toe_nd_slot *sl = &s->nd[i];
    if (!sl->in_use) {
      victim = sl;
      break;
    }
    if (sl->e.state == TOE_ND_INCOMPLETE || (!for_output && sl->used))
      continue;
    if (!victim || sl->last_use < victim->last_use)
      victim = sl;
  }
  if (!victim)
    return NULL;
  if (victim->in_use) {
    st->ctr.nd.entries_evicted++;
    slot_release(st, victim);
  }
  toe_nd_entry_init(&victim->e, ip);
  toe_timer_init(&victim->timer, nd_timer_expired);
  victim->in_use = true;
  victim->used = false;
  victim->last_use = st->now;
  s->nd_count++;
  st->ctr.nd.entries_created++;
  st->ctr.nd.entries_inuse++;
  return victim;
}

/* Our source for an NS about `target`: the address sharing its scope and prefix (RFC 4861 7.2.2
 * prefers the source of the packet that prompted it; ours are all equally valid here). */
static void send_ns(struct toe_stack *st, const struct toe_nd_slot *sl, bool multicast)
{
  struct toe_pbuf *pb = toe_pbuf_alloc(st, TOE_PBUF_HEADROOM);
  if (!pb) {
    st->ctr.link.tx_drop_nobuf++;
    return;
  }
  uint8_t *p = toe_pbuf_put(pb, TOE_ND_NS_LEN + 8);
  int n = toe_nd_write_ns(p, TOE_ND_NS_LEN + 8, &sl->e.ip, st->cfg.mac.b, NULL);
  if (n < 0) {
    toe_pbuf_free(st, pb);
    return;
  }
  toe_pbuf_trim(st, pb, (uint32_t)n);
  struct toe_ip6_tx tx = {.next_hdr = TOE_IPPROTO_ICMPV6, .hop_limit = TOE_ND_HOP_LIMIT};
  uint8_t mac[6];
  tx.src = *toe_ip6_src_for(st, &sl->e.ip);
  if (multicast) {
    /* RFC 4861 7.2.2: to the target's solicited-node group. */
    toe_in6_solicited_node(&tx.dst, &sl->e.ip);
    toe_in6_mc_mac(mac, &tx.dst);
  } else {
    /* 7.3.3 PROBE: unicast to the cached address. */
    tx.dst = sl->e.ip;
    memcpy(mac, sl->e.mac, 6);
  }
  toe_icmpv6_finish(p, (size_t)n, &tx.src, &tx.dst);
  if (toe_ipv6_output_mac(st, pb, &tx, mac) == 0)
    st->ctr.nd.tx_ns++;
}

/* Carries out what the state machine asked for, then (re)arms the slot's timer. May free it. */
static void apply(struct toe_stack *st, struct toe_nd_slot *sl, unsigned act)
{
  struct toe_counters_nd *c = &st->ctr.nd;
  if (act & TOE_ND_ACT_MCAST_NS)
    send_ns(st, sl, true);
  if (act & TOE_ND_ACT_UCAST_NS)
    send_ns(st, sl, false);
  if (act & TOE_ND_ACT_FLUSH) {
    struct toe_pbuf *q = sl->qhead;
    sl->qhead = sl->qtail = NULL;
    sl->qlen = 0;
    while (q) {
      struct toe_pbuf *next = q->qnext;
      q->qnext = NULL;
      toe_link_output(st, q, sl->e.mac, TOE_ETHERTYPE_IPV6);
      q = next;
    }
  }
  if (act & TOE_ND_ACT_FAIL) {
    /* RFC 4861 7.2.2 asks for an address unreachable error per queued packet; every packet we
     * queue today is one of our own replies, so there is nobody local to tell. */
    c->resolve_failed++;
    c->queue_drop_failed += sl->qlen;
    slot_release(st, sl);
    return;
  }
  if (sl->e.deadline != 0)
    toe_timer_arm(st, &sl->timer, sl->e.deadline);
  else
    toe_timer_cancel(st, &sl->timer);
}

static void nd_timer_expired(struct toe_stack *st, struct toe_timer *t)
{
  struct toe_nd_slot *sl = toe_container_of(t, struct toe_nd_slot, timer);
  apply(st, sl, toe_nd_timer(&sl->e, st->now, &st->ip6.nd_params));
}

int toe_nd_resolve(struct toe_stack *st, struct toe_pbuf *pb, const struct toe_in6_addr *nexthop)
{
  struct toe_counters_nd *c = &st->ctr.nd;
  struct toe_nd_slot *sl = slot_find(st, nexthop);
  if (!sl)
    sl = slot_alloc(st, nexthop, true);
  if (!sl) {
    c->drop_no_entry++;
    toe_pbuf_free(st, pb);
    return -TOE_ENOBUFS;
  }
  sl->used = true;
  sl->last_use = st->now;
  unsigned act = toe_nd_output(&sl->e, st->now, &st->ip6.nd_params);
  if (act & TOE_ND_ACT_QUEUE) {
    if (sl->qlen >= st->cfg.arp_queue_len) {
      /* Keep the newest, as the ARP queue does. */
      struct toe_pbuf *old = sl->qhead;
      sl->qhead = old->qnext;
      if (!sl->qhead)
        sl->qtail = NULL;
      old->qnext = NULL;
      toe_pbuf_free(st, old);
      sl->qlen--;
      c->queue_drop_full++;
    }
    pb->qnext = NULL;
    if (sl->qtail)
      sl->qtail->qnext = pb;
    else
      sl->qhead = pb;
    sl->qtail = pb;
    sl->qlen++;
    c->queued++;
  } else if (act & TOE_ND_ACT_SEND) {
    toe_link_output(st, pb, sl->e.mac, TOE_ETHERTYPE_IPV6);
  } else {
    toe_pbuf_free(st, pb); /* not reached: output always queues or sends */
  }
  apply(st, sl, act & ~(unsigned)(TOE_ND_ACT_QUEUE | TOE_ND_ACT_SEND));
  return 0;
}

void toe_nd_confirm_reachable(struct toe_stack *st, const struct toe_in6_addr *ip)
{
  struct toe_nd_slot *sl = st->ip6.enabled ? slot_find(st, ip) : NULL;
  if (!sl)
    return;
  sl->last_use = st->now;
  apply(st, sl, toe_nd_confirm(&sl->e, st->now, &st->ip6.nd_params));
}

/* RFC 4861 7.2.3: a solicitation with a source link-layer address creates or updates the entry of
 * its sender (STALE when new or changed). */
static void learn(struct toe_stack *st, const struct toe_in6_addr *ip, const uint8_t *mac)
{
  struct toe_nd_slot *sl = slot_find(st, ip);
  if (!sl)
    sl = slot_alloc(st, ip, false);
  if (!sl) {
    st->ctr.nd.unsolicited_ignored++;
    return;
  }
  apply(st, sl, toe_nd_lladdr(&sl->e, mac, false));
}

void toe_nd_learn_lladdr(struct toe_stack *st, const struct toe_in6_addr *ip, const uint8_t mac[6],
                         bool router)
{
  struct toe_nd_slot *sl = slot_find(st, ip);
  if (!sl)
    sl = slot_alloc(st, ip, false);
  if (!sl) {
    st->ctr.nd.unsolicited_ignored++;
    return;
  }
  apply(st, sl, toe_nd_lladdr(&sl->e, mac, router));
}

/* A neighbor advertisement for our address `target` (RFC 4861 7.2.4) to `dst`. */
static void send_na(struct toe_stack *st, const struct toe_in6_addr *target,
                    const struct toe_in6_addr *dst, bool solicited)
{
  struct toe_pbuf *pb = toe_pbuf_alloc(st, TOE_PBUF_HEADROOM);
  if (!pb) {
    st->ctr.link.tx_drop_nobuf++;
    return;
  }
  uint8_t *p = toe_pbuf_put(pb, TOE_ND_NA_LEN + 8);
  /* Override set: our addresses are never anycast (7.2.4); Router clear: we forward nothing. */
  int n = toe_nd_write_na(p, TOE_ND_NA_LEN + 8, target, false, solicited, true, st->cfg.mac.b);
  if (n < 0) {
    toe_pbuf_free(st, pb);
    return;
  }
  toe_pbuf_trim(st, pb, (uint32_t)n);
  struct toe_ip6_tx tx = {
      .src = *target, .dst = *dst, .next_hdr = TOE_IPPROTO_ICMPV6, .hop_limit = TOE_ND_HOP_LIMIT};
  toe_icmpv6_finish(p, (size_t)n, &tx.src, &tx.dst);
  if (toe_ipv6_output(st, pb, &tx) == 0)
    st->ctr.nd.tx_na++;
}

void toe_nd_input(struct toe_stack *st, struct toe_pbuf *pb, const struct toe_ipv6_view *ip,
                  const struct toe_ipv6_ext *ext)
{
  struct toe_counters_nd *c = &st->ctr.nd;
  struct toe_nd_view nd;
  /* ND messages are small; one that does not fit a buffer is not one we need to read. */
  if (pb->tot_len > 0xffffu || toe_pbuf_linearize_head(st, pb, (uint16_t)pb->tot_len) != 0 ||
      toe_nd_parse(&nd, ip, pb->data, pb->tot_len, ext->has_frag) != 0) {
    c->rx_drop_invalid++;
    goto done;
  }
  if (nd.type == TOE_ICMPV6_ND_NS) {
    c->rx_ns++;
    int idx = toe_ip6_addr_find(st, &nd.target);
    if (idx < 0 || st->ip6.addrs[idx].state == TOE_IP6_DUPLICATE) {
      c->rx_ns_not_ours++;
      goto done;
    }
    if (st->ip6.addrs[idx].state == TOE_IP6_TENTATIVE) {
      /* RFC 4862 5.4.3: while ours is tentative, another node's probe for it means a duplicate
       * (unless it is our own probe come back: the same nonce, RFC 7527 4.2); a solicitation
       * from a unicast source is not answered. */
      if (!toe_in6_is_unspecified(&ip->src))
        c->rx_tentative_ignored++;
      else if (nd.nonce && nd.nonce_len >= 6 && memcmp(nd.nonce, st->ip6.addrs[idx].nonce, 6) == 0)
        c->dad_own_looped++;
      else
        toe_ip6_dad_duplicate(st, (unsigned)idx);
      goto done;
    }
    if (toe_in6_is_unspecified(&ip->src)) {
      /* RFC 4861 7.2.4 / RFC 4862 5.4.3: someone probes for an address we hold; answer to all
       * nodes, unsolicited, so the prober learns it is taken. */
      struct toe_in6_addr all;
      toe_in6_all_nodes(&all);
      c->rx_dad_probe++;
      send_na(st, &nd.target, &all, false);
      goto done;
    }
    if (nd.sll)
      learn(st, &ip->src, nd.sll);
    send_na(st, &nd.target, &ip->src, true);
    goto done;
  }
  /* Neighbor advertisement. */
  c->rx_na++;
  int mine = toe_ip6_addr_find(st, &nd.target);
  if (mine >= 0) {
    if (st->ip6.addrs[mine].state == TOE_IP6_TENTATIVE) {
      toe_ip6_dad_duplicate(st, (unsigned)mine); /* RFC 4862 5.4.4: the address is in use */
    } else {
      /* Another node claims one of our addresses after DAD: a configuration error for the
       * operator; counted, never learned. */
      c->rx_na_conflict++;
    }
    goto done;
  }
  struct toe_nd_slot *sl = slot_find(st, &nd.target);
  if (sl) {
    if (nd.solicited)
      sl->last_use = st->now;
    apply(st, sl, toe_nd_advert(&sl->e, st->now, &nd, &st->ip6.nd_params));
  }
done:
  toe_pbuf_free(st, pb);
}
