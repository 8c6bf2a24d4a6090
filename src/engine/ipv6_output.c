/*
 * IPv6 output (RFC 8200): the fixed header, the next hop (on link only for now) and the link
 * address (RFC 2464 7 for groups, the neighbour cache for unicast).
 */
#include "engine/ipv6.h"
#include "engine/stack.h"
#include "wire/ethernet.h"

#include <string.h>

/* Puts the 40-byte header in front of `pb` (a fresh head buffer if there is no room or the head is
 * shared). Returns the packet, or NULL with `pb` freed and the drop counted. */
static struct toe_pbuf *push_header(struct toe_stack *st, struct toe_pbuf *pb,
                                    const struct toe_ip6_tx *tx)
{
  uint32_t plen = pb->tot_len;
  if (toe_pbuf_headroom(pb) < TOE_IPV6_HLEN || pb->refcnt > 1) {
    struct toe_pbuf *h = toe_pbuf_alloc(st, TOE_PBUF_HEADROOM);
    if (!h) {
      st->ctr.ip6.tx_drop_nobuf++;
      toe_pbuf_free(st, pb);
      return NULL;
    }
    h->tot_len = pb->tot_len;
    h->next = pb;
    pb->qnext = NULL;
    pb = h;
  }
  struct toe_ipv6_fields f = {
      .tclass = tx->tclass,
      .flow = tx->flow,
      .payload_len = (uint16_t)plen,
      .next_hdr = tx->next_hdr,
      .hop_limit = tx->hop_limit ? tx->hop_limit : toe_ip6_hop_limit(st),
      .src = tx->src,
      .dst = tx->dst,
  };
  toe_ipv6_write(toe_pbuf_push(pb, TOE_IPV6_HLEN), &f);
  pb->flags = 0; /* receive-side flags (a reused request) mean nothing on the way out */
  return pb;
}

int toe_ipv6_output_mac(struct toe_stack *st, struct toe_pbuf *pb, const struct toe_ip6_tx *tx,
                        const uint8_t mac[6])
{
  pb = push_header(st, pb, tx);
  if (!pb)
    return -TOE_ENOBUFS;
  st->ctr.ip6.tx_packets++;
  toe_link_output(st, pb, mac, TOE_ETHERTYPE_IPV6);
  return 0;
}

int toe_ipv6_output_resolve(struct toe_stack *st, struct toe_pbuf *pb, const struct toe_ip6_tx *tx,
                            const struct toe_in6_addr *nexthop)
{
  pb = push_header(st, pb, tx);
  if (!pb)
    return -TOE_ENOBUFS;
  st->ctr.ip6.tx_packets++;
  return toe_nd_resolve(st, pb, nexthop);
}

int toe_ipv6_output(struct toe_stack *st, struct toe_pbuf *pb, const struct toe_ip6_tx *tx)
{
  struct toe_counters_ip6 *c = &st->ctr.ip6;
  bool mc = toe_in6_is_multicast(&tx->dst);
  /* The path MTU (RFC 8201, engine/pmtu.c) for unicast, the link's for groups; an RA may have
   * set a lower link MTU (RFC 4861 6.3.4). */
  uint16_t mtu = toe_ip6_link_mtu(st);
  if (!mc) {
    uint16_t pmtu = toe_pmtu6_get(st, &tx->dst);
    mtu = pmtu < mtu ? pmtu : mtu;
  }
  bool frag = pb->tot_len + TOE_IPV6_HLEN > mtu;
  /* RFC 8200 4.5: the reassembled payload is at most 65535 bytes, fragment header excluded; our
   * own hop-by-hop headers (MLD) must stay in every fragment, and those packets are small. A
   * packet whose checksum the link is to finish (offload) cannot be cut before it is. */
  if (pb->tot_len > 0xffffu || (!frag && pb->tot_len > 0xffffu - TOE_IPV6_HLEN) ||
      (frag && (mtu < TOE_IPV6_MIN_MTU || tx->next_hdr == TOE_IPPROTO_HOPOPTS ||
                (pb->flags & TOE_PBUF_F_CSUM_PARTIAL)))) {
    c->tx_drop_too_big++;
    toe_pbuf_free(st, pb);
    return -TOE_EMSGSIZE;
  }
  /* RFC 4861 5.2: on link, through a redirect's target, or through a default router. */
  struct toe_in6_addr nexthop = tx->dst;
  if (mc ? toe_in6_mc_scope(&tx->dst) > 2 : !toe_ip6_next_hop(st, &tx->dst, &nexthop)) {
    c->tx_drop_no_route++;
    toe_pbuf_free(st, pb);
    return -TOE_EHOSTUNREACH;
  }
  uint8_t mac[6];
  if (mc)
    toe_in6_mc_mac(mac, &tx->dst);
  if (frag)
    return toe_ipv6_fragment(st, pb, tx, mtu, mc ? mac : NULL, &nexthop);
  if (mc)
    return toe_ipv6_output_mac(st, pb, tx, mac);
  return toe_ipv6_output_resolve(st, pb, tx, &nexthop);
}
