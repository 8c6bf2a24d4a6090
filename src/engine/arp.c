/*
 * ARP for IPv4 over Ethernet (RFC 826), with the address-conflict rules of RFC 5227 and the
 * cache-validation advice of RFC 1122 2.3.2.1. The state machine is described in arp.h; the
 * table itself (hash, free list, LRU) is in arp_cache.c.
 */
#include "engine/arp.h"

#include "engine/stack.h"
#include "wire/arp.h"
#include "wire/ethernet.h"

#include <string.h>

static const uint8_t zero_mac[TOE_ETH_ALEN];
static const uint8_t bcast_mac[TOE_ETH_ALEN] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

/* Timing from the config, guarded so that a zero can neither spin a timer nor skip resolution. */
static toe_time_t retry_interval(const struct toe_stack *st)
{
  return st->cfg.arp_retry_interval ? st->cfg.arp_retry_interval : TOE_MSEC(1);
}

static uint8_t max_retries(const struct toe_stack *st)
{
  return st->cfg.arp_max_retries ? st->cfg.arp_max_retries : 1;
}

/* How long a FAILED entry makes sends fail fast before it is forgotten. */
static toe_time_t failed_hold(const struct toe_stack *st)
{
  return retry_interval(st) * max_retries(st);
}

/* Our subnet's directed broadcast, or 0 if the prefix has none (/31 per RFC 3021, and /32). */
static uint32_t subnet_broadcast(const struct toe_stack *st)
{
  uint8_t plen = st->cfg.prefix_len;
  if (plen > 30)
    return 0;
  uint32_t host_mask = plen == 0 ? 0xffffffffu : (0xffffffffu >> plen);
  return st->cfg.addr | host_mask;
}

/*
 * A sender protocol address no station may hold: 0.0.0.0/8 (0 itself is an RFC 5227 probe and
 * handled before this), 127/8 loopback, 224/4 multicast and 240/4 reserved (which includes the
 * limited broadcast), and our subnet's broadcast (RFC 1122 3.2.1.3).
 */
static bool bogus_sender_ip(const struct toe_stack *st, uint32_t ip)
{
  uint8_t first = (uint8_t)(ip >> 24);
  if (first == 0 || first == 127 || first >= 224)
    return true;
  return ip == subnet_broadcast(st);
}

/*
 * Builds one ARP packet with our MAC as sender hardware address and hands it to the link layer.
 * Returns false (counted in link.tx_drop_nobuf) when the pool is empty.
 */
static bool send_arp(struct toe_stack *st, uint16_t op, uint32_t spa, const uint8_t *tha,
                     uint32_t tpa, const uint8_t *eth_dst)
{
  struct toe_pbuf *pb = toe_pbuf_alloc(st, TOE_PBUF_HEADROOM);
  if (!pb) {
    st->ctr.link.tx_drop_nobuf++;
    return false;
  }
  uint8_t *p = toe_pbuf_put(pb, TOE_ARP_LEN);
  if (!p) {
    /* A pool configured with buffers too small for an ARP packet: as good as no buffer. */
    toe_pbuf_free(st, pb);
    st->ctr.link.tx_drop_nobuf++;
    return false;
  }
  toe_arp_write(p, op, st->cfg.mac.b, spa, tha, tpa);
  toe_link_output(st, pb, eth_dst, TOE_ETHERTYPE_ARP);
  return true;
}

/*
 * A request for e->ip: broadcast while resolving, unicast to the cached MAC when re-validating a
 * stale entry (RFC 1122 2.3.2.1 suggests unicast polls so the rest of the link is not bothered).
 * The target hardware address is left zero (RFC 826: "don't care" in a request).
 */
static void send_request(struct toe_stack *st, struct toe_neigh *e, bool unicast)
{
  e->retries++;
  if (send_arp(st, TOE_ARP_OP_REQUEST, st->cfg.addr, zero_mac, e->ip, unicast ? e->mac : bcast_mac))
    st->ctr.arp.tx_requests++;
}

void toe_arp_announce(struct toe_stack *st)
{
  /* RFC 5227 2.3: an ARP Announcement is a request with sender and target IP both ours; the
   * target hardware address is ignored and set to zero. */
  if (send_arp(st, TOE_ARP_OP_REQUEST, st->cfg.addr, zero_mac, st->cfg.addr, bcast_mac))
    st->ctr.arp.tx_gratuitous++;
}

/* Hands every queued packet, oldest first, to the link now that e->mac is known. */
static void flush_queue(struct toe_stack *st, struct toe_neigh *e)
{
  struct toe_pbuf *q = e->qhead;
  e->qhead = e->qtail = NULL;
  e->qlen = 0;
  while (q) {
    struct toe_pbuf *next = q->qnext;
    q->qnext = NULL;
    toe_link_output(st, q, e->mac, TOE_ETHERTYPE_IPV4);
    q = next;
  }
}

/* The neighbour proved it is at `mac` (RFC 826 merge, or a new entry learned). */
static void enter_reachable(struct toe_stack *st, struct toe_neigh *e, const uint8_t *mac)
{
  uint8_t prev = e->state;

  memcpy(e->mac, mac, TOE_ETH_ALEN);
  e->state = TOE_NEIGH_REACHABLE;
  e->retries = 0;
  e->updated = st->now;
  /* A REACHABLE entry's timer already points at (or before) its expiry: the callback re-arms it
   * for updated + reachable_time, so a refresh costs no timer operation. */
  if (prev != TOE_NEIGH_REACHABLE || !toe_timer_pending(&e->timer))
    toe_timer_arm(st, &e->timer, st->now + st->cfg.arp_reachable_time);
  if (prev == TOE_NEIGH_INCOMPLETE)
    flush_queue(st, e);
}

/*
 * Resolution or re-validation ran out of requests. Every queued packet is dropped, and the socket
 * that sent it is told the host is unreachable (RFC 1122 2.3.2.2 leaves the queue to the
 * implementation; like Linux, which reports ICMP host unreachable to the sender of each packet it
 * gives up on, a connect in SYN-SENT then ends with EHOSTUNREACH instead of retrying for
 * minutes). The entry is FAILED before anyone hears of it, so a socket that sends again from
 * its callback fails fast instead of queueing on this entry.
 */
static void enter_failed(struct toe_stack *st, struct toe_neigh *e)
{
  struct toe_pbuf *q = e->qhead;
  st->ctr.arp.resolve_failed++;
  st->ctr.arp.queue_drop_failed += e->qlen;
  e->qhead = e->qtail = NULL;
  e->qlen = 0;
  e->state = TOE_NEIGH_FAILED;
  e->updated = st->now;
  toe_timer_arm(st, &e->timer, st->now + failed_hold(st));
  /* The list is detached: whatever the callbacks do to `e` (even evict it) cannot touch it. */
  while (q) {
    struct toe_pbuf *next = q->qnext;
    q->qnext = NULL;
    if (toe_ipv4_link_failure(st, q))
      st->ctr.arp.fail_notified++;
    toe_pbuf_free(st, q);
    q = next;
  }
}

void toe_arp_timer_expired(struct toe_stack *st, struct toe_timer *t)
{
  struct toe_neigh *e = toe_container_of(t, struct toe_neigh, timer);
  toe_time_t now = st->now;

  switch (e->state) {
  case TOE_NEIGH_INCOMPLETE:
  case TOE_NEIGH_PROBE:
    if (e->retries < max_retries(st)) {
      send_request(st, e, e->state == TOE_NEIGH_PROBE);
      toe_timer_arm(st, &e->timer, now + retry_interval(st));
    } else {
      enter_failed(st, e);
    }
    break;
  case TOE_NEIGH_REACHABLE: {
    toe_time_t expiry = e->updated + st->cfg.arp_reachable_time;
    if (now < expiry) {
      toe_timer_arm(st, &e->timer, expiry); /* confirmed again since the timer was armed */
    } else {
      e->state = TOE_NEIGH_STALE;
      e->updated = now;
      /* Any use moves a STALE entry to PROBE, so this deadline never has to move. */
      toe_timer_arm(st, &e->timer, now + st->cfg.arp_stale_time);
    }
    break;
  }
  case TOE_NEIGH_STALE:
  case TOE_NEIGH_FAILED:
    st->ctr.arp.entries_expired++;
    toe_neigh_release(st, e);
    break;
  default:
    break;
  }
}

/* Queues `pb` on an INCOMPLETE entry; a full queue gives up its oldest packet. */
static void enqueue(struct toe_stack *st, struct toe_neigh *e, struct toe_pbuf *pb)
{
  uint16_t limit = st->cfg.arp_queue_len;

  if (limit == 0) {
    st->ctr.arp.queue_drop_full++;
    toe_pbuf_free(st, pb);
    return;
  }
  if (e->qlen >= limit) {
    /* The oldest packet is the most likely to be stale for its sender already (RFC 1122
     * 2.3.2.2 only asks that at least one, the latest, be kept). */
    struct toe_pbuf *old = e->qhead;
    e->qhead = old->qnext;
    if (!e->qhead)
      e->qtail = NULL;
    old->qnext = NULL;
    toe_pbuf_free(st, old);
    e->qlen--;
    st->ctr.arp.queue_drop_full++;
  }
  pb->qnext = NULL;
  if (e->qtail)
    e->qtail->qnext = pb;
  else
    e->qhead = pb;
  e->qtail = pb;
  e->qlen++;
  st->ctr.arp.queued++;
}

int toe_arp_output(struct toe_stack *st, struct toe_pbuf *pb, uint32_t nexthop)
{
  if (!pb)
    return -TOE_EINVAL;
  if (nexthop == 0 || nexthop == st->cfg.addr) {
    toe_pbuf_free(st, pb);
    return -TOE_EINVAL;
  }
  if (nexthop == 0xffffffffu || nexthop == subnet_broadcast(st)) {
    toe_link_output(st, pb, bcast_mac, TOE_ETHERTYPE_IPV4);
    return 0;
  }
  if ((nexthop >> 28) == 0xe) {
    /* RFC 1112 6.4: 01:00:5e followed by the low 23 bits of the group address. */
    uint8_t mac[TOE_ETH_ALEN] = {0x01,
                                 0x00,
                                 0x5e,
                                 (uint8_t)((nexthop >> 16) & 0x7f),
                                 (uint8_t)(nexthop >> 8),
                                 (uint8_t)nexthop};
    toe_link_output(st, pb, mac, TOE_ETHERTYPE_IPV4);
    return 0;
  }

  struct toe_neigh *e = toe_neigh_find(&st->arp, nexthop);
  if (e) {
    e->used = st->now;
    e->flags |= TOE_NEIGH_F_USED;
    toe_neigh_touch(&st->arp, e);
    switch (e->state) {
    case TOE_NEIGH_REACHABLE:
    case TOE_NEIGH_PROBE:
      toe_link_output(st, pb, e->mac, TOE_ETHERTYPE_IPV4);
      return 0;
    case TOE_NEIGH_STALE:
      /* Keep using the cached address but check it (RFC 1122 2.3.2.1): this packet goes now. */
      toe_link_output(st, pb, e->mac, TOE_ETHERTYPE_IPV4);
      e->state = TOE_NEIGH_PROBE;
      e->retries = 0;
      e->updated = st->now;
      send_request(st, e, true);
      toe_timer_arm(st, &e->timer, st->now + retry_interval(st));
      return 0;
    case TOE_NEIGH_INCOMPLETE:
      enqueue(st, e, pb);
      return 0;
    default: /* FAILED */
      st->ctr.arp.drop_unreachable++;
      toe_pbuf_free(st, pb);
      return -TOE_EHOSTUNREACH;
    }
  }

  e = toe_neigh_alloc(st, nexthop, true);
  if (!e) {
    st->ctr.arp.drop_no_entry++;
    toe_pbuf_free(st, pb);
    return -TOE_ENOBUFS;
  }
  e->flags |= TOE_NEIGH_F_USED;
  enqueue(st, e, pb);
  /* If the request cannot be built now, the retry timer sends the next one. */
  send_request(st, e, false);
  toe_timer_arm(st, &e->timer, st->now + retry_interval(st));
  return 0;
}

/* Answers a request for our address, unicast to the requester (RFC 826: swap the fields, put our
 * address in the sender fields, opcode reply). */
static void send_reply(struct toe_stack *st, const struct toe_arp_view *v)
{
  if (send_arp(st, TOE_ARP_OP_REPLY, st->cfg.addr, v->sha, v->spa, v->sha))
    st->ctr.arp.tx_replies++;
}

/* Someone else claims our address (RFC 5227 2.4). */
static void handle_conflict(struct toe_stack *st)
{
  struct toe_arp *a = &st->arp;

  st->ctr.arp.rx_conflict++;
  /* 2.4 (b): defend with a single announcement, then not again within DEFEND_INTERVAL, so two
   * hosts that both defend do not flood the link. The address is kept either way: a device that
   * gave it up would cut off every host flow it carries. */
  if (!a->defended || st->now - a->last_defend >= TOE_ARP_DEFEND_INTERVAL) {
    a->defended = true;
    a->last_defend = st->now;
    toe_arp_announce(st);
  }
}

void toe_arp_input(struct toe_stack *st, struct toe_pbuf *pb)
{
  /* 28 bytes: copying them out is cheaper than caring whether the chain's head holds them all,
   * and the frame can go back to the pool before any reply is built. */
  uint8_t buf[TOE_ARP_LEN];
  size_t n = toe_pbuf_copy_out(pb, 0, buf, sizeof(buf));
  toe_pbuf_free(st, pb);

  struct toe_arp_view v;
  if (toe_arp_parse(&v, buf, n) != 0) {
    st->ctr.arp.rx_drop_malformed++;
    return;
  }
  if (v.op == TOE_ARP_OP_REQUEST)
    st->ctr.arp.rx_requests++;
  else
    st->ctr.arp.rx_replies++;

  /* A group or zero address cannot be a station; our own MAC is our frame looped back, or a
   * station impersonating us. Learning any of these would misdirect traffic. */
  if (toe_mac_is_multicast(v.sha) || toe_mac_is_zero(v.sha) ||
      memcmp(v.sha, st->cfg.mac.b, TOE_ETH_ALEN) == 0) {
    st->ctr.arp.rx_drop_bogus_sender++;
    return;
  }

  bool for_us = v.tpa == st->cfg.addr;

  if (v.spa == 0) {
    /* RFC 5227 2.1.1: an ARP Probe (sender IP zero) from a host checking whether an address is
     * free. Never learned (it claims no address). A probe for our address is answered like a
     * request, as Linux does, so the prober sees the address is taken. */
    if (v.op != TOE_ARP_OP_REQUEST) {
      st->ctr.arp.rx_drop_bogus_sender++;
    } else if (!for_us) {
      st->ctr.arp.rx_drop_not_for_us++;
    } else {
      send_reply(st, &v);
    }
    return;
  }
  if (v.spa == st->cfg.addr) {
    handle_conflict(st);
    return;
  }
  if (bogus_sender_ip(st, v.spa)) {
    st->ctr.arp.rx_drop_bogus_sender++;
    return;
  }

  /* RFC 826 packet reception: if the sender is in the table, update its hardware address
   * ("merge"), whatever the target; a gratuitous ARP (spa == tpa) lands here too. */
  struct toe_neigh *e = toe_neigh_find(&st->arp, v.spa);
  bool merged = e != NULL;
  if (e)
    enter_reachable(st, e, v.sha);

  if (v.op == TOE_ARP_OP_REQUEST) {
    if (!for_us) {
      st->ctr.arp.rx_drop_not_for_us++;
      return;
    }
    /* ...and if we are the target and the sender was not merged, add it: it is about to talk to
     * us and will want an answer. Only requests create entries; a reply we did not ask for could
     * be anyone's attempt to fill the table. */
    if (!merged) {
      e = toe_neigh_alloc(st, v.spa, false);
      if (e)
        enter_reachable(st, e, v.sha);
    }
    send_reply(st, &v);
    return;
  }
  if (!merged)
    st->ctr.arp.rx_drop_unsolicited++;
}
