/*
 * ICMPv6 (RFC 4443): the checksum over the pseudo-header, echo replies, Neighbor Discovery handed
 * to nd.c, and error generation with the RFC 4443 2.4 (e) rules and the 2.4 (f) rate limit.
 */
#include "common/byteorder.h"
#include "engine/ipv6.h"
#include "engine/stack.h"
#include "wire/checksum.h"
#include "wire/icmpv6.h"

#include <string.h>

/* The checksum of the whole message (a chain, perhaps) with its pseudo-header (RFC 4443 2.3,
 * RFC 8200 8.1): the folded value, 0 when the stored checksum is right. */
static uint16_t msg_csum(const struct toe_pbuf *pb, const struct toe_in6_addr *src,
                         const struct toe_in6_addr *dst)
{
  uint32_t sum = toe_ipv6_pseudo_csum(src, dst, pb->tot_len, TOE_IPPROTO_ICMPV6);
  return toe_csum_fold(toe_csum_add32(sum, toe_pbuf_csum(pb, 0, pb->tot_len)));
}

void toe_icmp6_send_error(struct toe_stack *st, const struct toe_pbuf *orig,
                          const struct toe_ipv6_view *ip, bool ll_group, uint8_t type, uint8_t code,
                          uint32_t param)
{
  struct toe_counters_icmp6 *c = &st->ctr.icmp6;
  /* RFC 4443 2.4 (e.1, e.2): never about an ICMPv6 error or a redirect. The type is read only
   * when ICMPv6 follows the fixed header directly; behind extension headers the packet is one
   * we refuse anyway, and the wire rule then errs on the side of answering. */
  int inv_type = -1;
  uint8_t t;
  if (ip->next_hdr == TOE_IPPROTO_ICMPV6 && toe_pbuf_copy_out(orig, TOE_IPV6_HLEN, &t, 1) == 1)
    inv_type = t;
  if (!toe_icmpv6_error_allowed(type, code, ip, ll_group, inv_type)) {
    c->tx_suppressed++;
    return;
  }
  if (!toe_icmp_bucket_take(st, &st->ip6.icmp6_bucket)) {
    c->tx_rate_limited++;
    return;
  }
  struct toe_pbuf *pb = toe_pbuf_alloc(st, TOE_PBUF_HEADROOM);
  if (!pb) {
    st->ctr.link.tx_drop_nobuf++;
    return;
  }
  /* RFC 4443 2.4 (c): as much of the invoking packet as keeps the error within 1280 bytes. */
  size_t qlen = toe_icmpv6_quote_len(orig->tot_len, 0);
  if (qlen + TOE_ICMPV6_HLEN > toe_pbuf_tailroom(pb))
    qlen = toe_pbuf_tailroom(pb) - TOE_ICMPV6_HLEN; /* not with a valid pbuf_size */
  uint8_t *p = toe_pbuf_put(pb, (uint16_t)(TOE_ICMPV6_HLEN + qlen));
  p[0] = type;
  p[1] = code;
  p[2] = 0;
  p[3] = 0;
  toe_store_be32(p + 4, param); /* the MTU, the pointer, or unused (zero) */
  toe_pbuf_copy_out(orig, 0, p + TOE_ICMPV6_HLEN, qlen);

  /* RFC 4443 2.2: from the address the packet was sent to if it was one of our unicast ones,
   * else from the address best suited to reach the sender. */
  struct toe_ip6_tx tx = {.dst = ip->src, .next_hdr = TOE_IPPROTO_ICMPV6};
  tx.src = toe_ip6_addr_index(st, &ip->dst) >= 0 ? ip->dst : *toe_ip6_src_for(st, &ip->src);
  toe_icmpv6_finish(p, TOE_ICMPV6_HLEN + qlen, &tx.src, &tx.dst);
  if (toe_ipv6_output(st, pb, &tx) != 0)
    return;
  if (type == TOE_ICMPV6_PARAM_PROBLEM)
    c->tx_param_problem++;
  else if (type == TOE_ICMPV6_DEST_UNREACH)
    c->tx_dest_unreach++;
  else if (type == TOE_ICMPV6_TIME_EXCEEDED)
    c->tx_time_exceeded++;
}

/* RFC 4443 4.2: the identifier, sequence number and data of the request, back to its source. */
static void echo_reply(struct toe_stack *st, struct toe_pbuf *pb, const struct toe_ipv6_view *ip)
{
  struct toe_counters_icmp6 *c = &st->ctr.icmp6;
  c->rx_echo_requests++;
  if (toe_in6_is_unspecified(&ip->src)) {
    c->tx_suppressed++; /* nobody to answer */
    toe_pbuf_free(st, pb);
    return;
  }
  struct toe_ip6_tx tx = {.dst = ip->src, .next_hdr = TOE_IPPROTO_ICMPV6, .tclass = ip->tclass};
  if (toe_in6_is_multicast(&ip->dst)) {
    /* RFC 4443 4.2: a reply to a multicast request comes from a unicast address of ours. */
    c->rx_echo_multicast++;
    tx.src = *toe_ip6_src_for(st, &ip->src);
  } else {
    tx.src = ip->dst;
  }
  /* The reply reuses the request's buffers; a shared head is copied first. */
  if (pb->refcnt != 1) {
    struct toe_pbuf *cp = toe_pbuf_copy_range(st, pb, 0, pb->tot_len, TOE_PBUF_HEADROOM);
    toe_pbuf_free(st, pb);
    if (!cp) {
      st->ctr.link.tx_drop_nobuf++;
      return;
    }
    pb = cp;
  }
  uint8_t *h = pb->data;
  h[0] = TOE_ICMPV6_ECHO_REPLY;
  h[1] = 0;
  h[2] = 0;
  h[3] = 0;
  /* Recomputed whole: the pseudo-header changes when the request went to a group. */
  uint16_t cs = msg_csum(pb, &tx.src, &tx.dst);
  memcpy(h + 2, &cs, 2);
  if (toe_ipv6_output(st, pb, &tx) == 0)
    c->tx_echo_replies++;
}

void toe_icmp6_input(struct toe_stack *st, struct toe_pbuf *pb, const struct toe_ipv6_view *ip,
                     const struct toe_ipv6_ext *ext)
{
  struct toe_counters_icmp6 *c = &st->ctr.icmp6;
  c->rx_msgs++;
  if (pb->tot_len < TOE_ICMPV6_HLEN || toe_pbuf_linearize_head(st, pb, TOE_ICMPV6_HLEN) != 0) {
    c->rx_drop_malformed++;
    goto drop;
  }
  /* RFC 4443 2.3: the checksum is mandatory and covers the pseudo-header. */
  if (msg_csum(pb, &ip->src, &ip->dst) != 0) {
    c->rx_drop_checksum++;
    goto drop;
  }
  uint8_t type = pb->data[0];
  switch (type) {
  case TOE_ICMPV6_ECHO_REQUEST:
    echo_reply(st, pb, ip);
    return;
  case TOE_ICMPV6_ND_NS:
  case TOE_ICMPV6_ND_NA:
    toe_nd_input(st, pb, ip, ext);
    return;
  case TOE_ICMPV6_ND_RA:
    toe_ip6_ra_input(st, pb, ip, ext); /* ipv6_router.c */
    return;
  case TOE_ICMPV6_ND_REDIRECT:
    toe_ip6_redirect_input(st, pb, ip, ext);
    return;
  case TOE_ICMPV6_ECHO_REPLY:
    c->rx_echo_replies++;
    goto drop;
  case TOE_ICMPV6_DEST_UNREACH:
  case TOE_ICMPV6_PKT_TOO_BIG:
  case TOE_ICMPV6_TIME_EXCEEDED:
  case TOE_ICMPV6_PARAM_PROBLEM:
    toe_icmp6_error_input(st, pb, ip); /* icmp6_err.c */
    return;
  default:
    /* RS/RA/redirect (router discovery is step 5), MLD (step 6), and unknown informational
     * messages, which RFC 4443 2.4 (b) says to discard silently. */
    c->rx_drop_type++;
    goto drop;
  }
drop:
  toe_pbuf_free(st, pb);
}
