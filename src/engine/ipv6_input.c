/*
 * IPv6 input (RFC 8200): header checks, destination and source filtering, the extension-header
 * walk (wire/ipv6.c's toe_ipv6_ext_walk, which holds the RFC 8200 4 rules) and the dispatch on the
 * upper-layer protocol. Every discarded packet is counted in exactly one ip6.rx_drop_* counter.
 */
#include "engine/ipv6.h"
#include "engine/stack.h"
#include "wire/icmpv6.h"
#include "wire/ipv4.h"

#include <string.h>

/* The most bytes the walk can need contiguous: the fixed header, TOE_IPV6_MAX_EXT_LEN bytes of
 * extension headers and the 8 bytes of the header that ends the chain. */
#define WALK_SPAN (TOE_IPV6_HLEN + TOE_IPV6_MAX_EXT_LEN + 8u)

/* RFC 4291 2.5.2/2.5.3 and RFC 4291 2.5.5.2: a packet from ::1 or ::ffff:0:0/96 did not come
 * over this link honestly; one from our own address is a loop or a spoof. The unspecified source
 * is legal for DAD probes (RFC 4862 5.4.2) and judged by ND. */
static bool src_is_bad(const struct toe_stack *st, const struct toe_in6_addr *src)
{
  return toe_in6_is_loopback(src) || toe_in6_is_v4mapped(src) || toe_ip6_addr_index(st, src) >= 0;
}

static int walk(struct toe_stack *st, struct toe_pbuf *pb, const struct toe_ipv6_view *v,
                struct toe_ipv6_ext *ext)
{
  int rc = toe_ipv6_ext_walk(ext, v, pb->data, pb->len);
  if (rc != -TOE_EAGAIN)
    return rc;
  /* A header lies past the head buffer: gather the bytes the walk may need, then walk again. */
  uint32_t n = pb->tot_len < WALK_SPAN ? pb->tot_len : WALK_SPAN;
  if (toe_pbuf_linearize_head(st, pb, (uint16_t)n) != 0)
    return -TOE_EINVAL;
  /* The view's pointer moved with the bytes only if the head was rebuilt; re-parse to be safe. */
  struct toe_ipv6_view v2;
  if (toe_ipv6_parse(&v2, pb->data, pb->len, pb->tot_len) != 0)
    return -TOE_EINVAL;
  rc = toe_ipv6_ext_walk(ext, &v2, pb->data, pb->len);
  return rc == -TOE_EAGAIN ? -TOE_EINVAL : rc;
}

void toe_ipv6_input(struct toe_stack *st, struct toe_pbuf *pb)
{
  struct toe_counters_ip6 *c = &st->ctr.ip6;
  struct toe_ipv6_view v;
  struct toe_ipv6_ext ext;
  c->rx_packets++;
  if (toe_pbuf_linearize_head(st, pb, TOE_IPV6_HLEN) != 0 ||
      toe_ipv6_parse(&v, pb->data, pb->len, pb->tot_len) != 0) {
    c->rx_drop_malformed++;
    goto drop;
  }
  /* Link padding after the packet goes (RFC 8200 3: Payload Length is authoritative). */
  if (pb->tot_len > (uint32_t)TOE_IPV6_HLEN + v.payload_len)
    toe_pbuf_trim(st, pb, (uint32_t)TOE_IPV6_HLEN + v.payload_len);
  if (!toe_ip6_dst_is_ours(st, &v.dst)) {
    c->rx_drop_not_for_us++;
    goto drop;
  }
  if (src_is_bad(st, &v.src)) {
    c->rx_drop_bad_source++;
    goto drop;
  }
  bool ll_group = (pb->flags & TOE_PBUF_F_BROADCAST) != 0;
  bool reassembled = false;

again:;
  int rc = walk(st, pb, &v, &ext);
  /* The walk may have moved bytes into the head buffer: the view is taken again. */
  if (toe_ipv6_parse(&v, pb->data, pb->len, pb->tot_len) != 0) {
    c->rx_drop_malformed++; /* not reached: the header parsed before */
    goto drop;
  }
  if (rc != 0) {
    if (rc == -TOE_EPROTO) {
      c->rx_drop_param++;
      toe_icmp6_send_error(st, pb, &v, ll_group, TOE_ICMPV6_PARAM_PROBLEM, ext.pp_code,
                           ext.pp_pointer);
    } else {
      c->rx_drop_ext++;
    }
    goto drop;
  }

  /* RFC 6980 5: Neighbor Discovery arriving in fragments is refused; the reassembled packet has
   * no fragment header left, so its walk is told. */
  if (reassembled)
    ext.has_frag = true;
  switch (ext.proto) {
  case TOE_IPPROTO_ICMPV6:
    break;
  case TOE_IPPROTO_FRAGMENT:
    /* Atomic fragments never get here (RFC 8021). A reassembled packet has no fragment header
     * left (RFC 8200 4.1: at most one), so a second one is refused, not reassembled again. */
    if (reassembled) {
      c->rx_drop_frag++;
      goto drop;
    }
    pb = toe_ipv6_reass(st, pb, &v, &ext);
    if (!pb)
      return;
    reassembled = true;
    /* The whole packet: its headers after the fragment header are walked now (RFC 8200 4.5). */
    if (toe_ipv6_parse(&v, pb->data, pb->len, pb->tot_len) != 0) {
      c->rx_drop_malformed++; /* not reached: the first fragment's header was valid */
      goto drop;
    }
    goto again;
  case TOE_IPPROTO_NONE:
    /* RFC 8200 4.7: nothing follows; anything there is ignored. */
    c->rx_drop_no_next++;
    goto drop;
  case TOE_IPPROTO_UDP:
  case TOE_IPPROTO_TCP:
    break;
  default:
    /* RFC 8200 4: an unrecognized Next Header value gets Parameter Problem code 1 pointing at
     * the field that named it. */
    c->rx_drop_proto++;
    toe_icmp6_send_error(st, pb, &v, ll_group, TOE_ICMPV6_PARAM_PROBLEM, TOE_IPV6_PP_NEXT_HEADER,
                         ext.nh_off);
    goto drop;
  }
  /* The headers were contiguous for the walk; the view's addresses are copies. */
  if (ext.offset > pb->len && toe_pbuf_linearize_head(st, pb, ext.offset) != 0) {
    c->rx_drop_malformed++;
    goto drop;
  }
  toe_pbuf_pull(pb, ext.offset);
  c->rx_delivered++;
  if (ext.proto == TOE_IPPROTO_UDP)
    toe_udp_input6(st, pb, &v, &ext, ll_group);
  else if (ext.proto == TOE_IPPROTO_TCP)
    toe_tcp_input6(st, pb, &v, &ext);
  else
    toe_icmp6_input(st, pb, &v, &ext);
  return;
drop:
  toe_pbuf_free(st, pb);
}
