/*
 * IPv4 output (RFC 791, RFC 1122 3.3.1): routing (on-link, or the default gateway), the 20-byte
 * header, and fragmentation to the link MTU (RFC 791 3.2 fragmentation procedure).
 */
#include "engine/stack.h"
#include "wire/ethernet.h"
#include "wire/ipv4.h"

#include <string.h>

#define IP_MAXPACKET 65535u

bool toe_ipv4_on_link(const struct toe_stack *st, uint32_t a)
{
  uint32_t m = toe_ipv4_mask(st->cfg.prefix_len);
  return (a & m) == (st->cfg.addr & m);
}

/*
 * Prepends the IP header. The header goes into the head buffer's headroom when it is ours alone
 * and has room; otherwise (a shared buffer, or one received with little headroom) into a fresh
 * buffer chained in front. Returns the new head, or NULL (pb freed) if no buffer was left.
 */
static struct toe_pbuf *push_header(struct toe_stack *st, struct toe_pbuf *pb,
                                    const struct toe_ipv4_fields *f)
{
  uint8_t *h = NULL;
  if (pb->refcnt == 1 && toe_pbuf_headroom(pb) >= TOE_IPV4_HLEN)
    h = toe_pbuf_push(pb, TOE_IPV4_HLEN);
  /* a checksum the link completes starts behind this header (include/toe/pbuf.h) */
  uint16_t cstart = (uint16_t)(pb->csum_start + TOE_IPV4_HLEN), coff = pb->csum_offset;
  if (!h) {
    struct toe_pbuf *nh = toe_pbuf_alloc(st, TOE_PBUF_HEADROOM);
    if (!nh || !(h = toe_pbuf_put(nh, TOE_IPV4_HLEN))) {
      toe_pbuf_free(st, nh);
      toe_pbuf_free(st, pb);
      return NULL;
    }
    nh->flags = pb->flags;
    nh->gso_size = pb->gso_size;
    toe_pbuf_cat(nh, pb);
    pb = nh;
  }
  if (pb->flags & TOE_PBUF_F_CSUM_PARTIAL) {
    pb->csum_start = cstart;
    pb->csum_offset = coff;
  }
  toe_ipv4_write(h, f);
  return pb;
}

/* Where a datagram goes on the link: a MAC known without ARP, or an on-link next hop. */
struct route {
  const uint8_t *mac; /* broadcast/multicast: send straight to this MAC */
  uint8_t mcast[6];
  uint32_t nexthop; /* unicast: resolve this address with ARP */
};

static int route_lookup(struct toe_stack *st, uint32_t dst, struct route *rt)
{
  static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  const struct toe_config *cfg = &st->cfg;
  rt->mac = NULL;
  rt->nexthop = 0;
  if (toe_ipv4_is_broadcast(dst, cfg->addr, cfg->prefix_len)) {
    /* Limited or our directed broadcast: to every station on the link, no ARP. */
    rt->mac = bcast;
    return 0;
  }
  if (toe_ipv4_is_multicast(dst)) {
    /* RFC 1112 6.4: 01:00:5e followed by the group's low 23 bits. */
    rt->mcast[0] = 0x01;
    rt->mcast[1] = 0x00;
    rt->mcast[2] = 0x5e;
    rt->mcast[3] = (uint8_t)((dst >> 16) & 0x7f);
    rt->mcast[4] = (uint8_t)(dst >> 8);
    rt->mcast[5] = (uint8_t)dst;
    rt->mac = rt->mcast;
    return 0;
  }
  if (dst == 0 || dst == cfg->addr || toe_ipv4_is_loopback(dst)) {
    /* No loopback path in the engine, and these must never reach the wire (RFC 1122 3.2.1.3). */
    st->ctr.ip.tx_drop_bad_dst++;
    return -TOE_EINVAL;
  }
  if (toe_ipv4_on_link(st, dst)) {
    rt->nexthop = dst;
    return 0;
  }
  if (cfg->gateway != 0) {
    rt->nexthop = cfg->gateway;
    return 0;
  }
  st->ctr.ip.tx_drop_no_route++;
  return -TOE_ENETUNREACH;
}

static int send_routed(struct toe_stack *st, struct toe_pbuf *pb, const struct route *rt)
{
  if (rt->mac) {
    toe_link_output(st, pb, rt->mac, TOE_ETHERTYPE_IPV4);
    return 0;
  }
  return toe_arp_output(st, pb, rt->nexthop);
}

int toe_ipv4_output(struct toe_stack *st, struct toe_pbuf *pb, const struct toe_ip_tx *tx)
{
  struct toe_counters_ip *c = &st->ctr.ip;
  const struct toe_config *cfg = &st->cfg;
  uint32_t plen = pb->tot_len;
  int rc;

  if (plen + TOE_IPV4_HLEN > IP_MAXPACKET) {
    c->tx_drop_too_big++;
    rc = -TOE_EMSGSIZE;
    goto drop;
  }
  struct route rt;
  rc = route_lookup(st, tx->dst, &rt);
  if (rc != 0)
    goto drop;

  struct toe_ipv4_fields f = {
      .tos = tx->tos,
      .ttl = tx->ttl ? tx->ttl : cfg->default_ttl,
      .proto = tx->proto,
      .id = st->ip.next_id++,
      .total_len = (uint16_t)(plen + TOE_IPV4_HLEN),
      .frag_off = 0,
      .mf = false,
      .df = tx->df,
      .src = tx->src ? tx->src : cfg->addr,
      .dst = tx->dst,
  };

  /* A TSO super-segment (TOE_LINK_CAP_TSO) is larger than the MTU by design: the link cuts it into
   * MTU-sized pieces, each with the next IP id, so the ids of all its pieces are taken now. */
  bool gso = (pb->flags & TOE_PBUF_F_GSO_TCPV4) && pb->gso_size != 0;
  if (gso) {
    /* pieces = the TCP payload (behind the header in the head buffer) in gso_size steps; the
     * first takes f.id, the others the ids reserved here */
    uint32_t thl = pb->len >= 20u ? (uint32_t)(pb->data[12] >> 4) * 4u : plen;
    uint32_t payload = plen > thl ? plen - thl : 0;
    uint32_t pieces = (payload + pb->gso_size - 1u) / pb->gso_size;
    if (pieces > 1u)
      st->ip.next_id = (uint16_t)(st->ip.next_id + pieces - 1u);
  }
  if (plen + TOE_IPV4_HLEN <= cfg->mtu || gso) {
    pb = push_header(st, pb, &f);
    if (!pb) {
      c->tx_drop_nobuf++;
      return -TOE_ENOBUFS;
    }
    c->tx_packets++;
    return send_routed(st, pb, &rt);
  }
  if (tx->df) {
    /* RFC 1122 3.3.1.4 / RFC 1191: the sender asked not to fragment; let it find out. */
    c->tx_drop_df++;
    rc = -TOE_EMSGSIZE;
    goto drop;
  }

  /*
   * RFC 791 3.2: every fragment but the last carries a multiple of 8 payload bytes, as many as
   * the MTU allows. All fragments are built before any is sent so that running out of buffers
   * half-way never puts a datagram that cannot be reassembled on the wire.
   */
  uint32_t maxp = ((uint32_t)cfg->mtu - TOE_IPV4_HLEN) & ~7u;
  struct toe_pbuf *frags = NULL, **tail = &frags;
  uint32_t nfrags = 0;
  for (uint32_t off = 0; off < plen; off += maxp) {
    uint32_t n = plen - off < maxp ? plen - off : maxp;
    struct toe_pbuf *fp = toe_pbuf_copy_range(st, pb, off, n, TOE_PBUF_HEADROOM);
    if (fp) {
      f.total_len = (uint16_t)(n + TOE_IPV4_HLEN);
      f.frag_off = (uint16_t)off;
      f.mf = off + n < plen;
      fp = push_header(st, fp, &f);
    }
    if (!fp) {
      toe_pbuf_free_queue(st, frags);
      c->tx_drop_nobuf++;
      rc = -TOE_ENOBUFS;
      goto drop;
    }
    *tail = fp;
    tail = &fp->qnext;
    nfrags++;
  }
  toe_pbuf_free(st, pb);

  c->tx_packets++;
  c->tx_fragments += nfrags;
  rc = 0;
  while (frags) {
    struct toe_pbuf *fp = frags;
    frags = fp->qnext;
    fp->qnext = NULL;
    if (rc != 0) { /* an earlier fragment failed: the datagram is lost anyway */
      toe_pbuf_free(st, fp);
      continue;
    }
    rc = send_routed(st, fp, &rt);
  }
  return rc;

drop:
  toe_pbuf_free(st, pb);
  return rc;
}

bool toe_ipv4_link_failure(struct toe_stack *st, const struct toe_pbuf *pb)
{
  /* Our own header (options are never sent, but allow them) and the first 8 transport bytes, the
   * same view an ICMP error would quote (RFC 792). Copied out: the chain's layout is not ours to
   * assume (a header buffer may be chained in front of the payload). */
  uint8_t buf[60 + 8];
  size_t n = toe_pbuf_copy_out(pb, 0, buf, sizeof(buf));
  if (n < TOE_IPV4_HLEN)
    return false;
  size_t hl = (size_t)(buf[0] & 0x0f) * 4u;
  struct toe_ipv4_view q;
  if (hl < TOE_IPV4_HLEN || n < hl + 8u || toe_ipv4_parse(&q, buf, hl, 0xffff, true) != 0)
    return false;
  /* Only a first fragment carries the ports; the other fragments of the datagram tell nobody. */
  if (q.src != st->cfg.addr || q.frag_off != 0)
    return false;
  switch (q.proto) {
  case TOE_IPPROTO_TCP:
    return toe_tcp_link_failure(st, &q, buf + hl);
  case TOE_IPPROTO_UDP:
    return toe_udp_link_failure(st, &q, buf + hl);
  default:
    return false;
  }
}
