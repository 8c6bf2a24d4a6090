/*
 * The link layer: Ethernet II input filtering and demultiplexing, and output framing.
 *
 * Input accepts frames addressed to our MAC or to broadcast, untagged when no VLAN is configured
 * (or priority-tagged: VID 0, IEEE 802.1Q 9.6) and tagged with exactly cfg.vlan_id otherwise,
 * carrying ARP or IPv4, or IPv6 when cfg.ipv6 is set. Everything else is dropped and counted in
 * exactly one link.rx_drop_* counter. IPv4 multicast destinations are dropped (no IGMP membership
 * to accept them by); IPv6 ones are taken for the groups we listen to (ff02::1 and our
 * solicited-node groups, RFC 2464 7) and marked like broadcasts (link-layer group).
 */
#include "engine/stack.h"
#include "wire/ethernet.h"

#include <string.h>

/* Room in front of a copied frame: 2 bytes put the IPv4 header behind a 14-byte Ethernet header
 * (or an 18-byte tagged one) on a 4-byte boundary of the 64-byte aligned buffer. */
#define RX_COPY_HEADROOM 2

/* Classifies and dispatches a frame whose rx counters are already taken. Consumes `frame`. */
static void link_input(struct toe_stack *st, struct toe_pbuf *frame)
{
  struct toe_counters_link *c = &st->ctr.link;
  uint32_t want = frame->tot_len < TOE_ETH_VLAN_HLEN ? frame->tot_len : TOE_ETH_VLAN_HLEN;
  struct toe_eth_view eth;

  if (frame->tot_len < TOE_ETH_HLEN) {
    c->rx_drop_malformed++;
    goto drop;
  }
  int rc = toe_pbuf_linearize_head(st, frame, (uint16_t)want);
  if (rc < 0) {
    /* Only a chain with a shared second buffer needs a buffer to linearize. */
    if (rc == -TOE_ENOBUFS)
      c->rx_drop_nobuf++;
    else
      c->rx_drop_malformed++;
    goto drop;
  }
  if (toe_eth_parse(&eth, frame->data, frame->len) < 0) {
    /* Either truncated, or long enough but with stacked tags (802.1ad/QinQ): a VLAN we do not
     * terminate. */
    const uint8_t *t = frame->data + 12;
    uint16_t outer = (uint16_t)(t[0] << 8 | t[1]);
    if (frame->len >= TOE_ETH_VLAN_HLEN &&
        (outer == TOE_ETHERTYPE_VLAN || outer == TOE_ETHERTYPE_QINQ))
      c->rx_drop_vlan++;
    else
      c->rx_drop_malformed++;
    goto drop;
  }
  if (eth.tagged)
    c->rx_vlan++;

  const uint8_t *dst = toe_eth_dst(&eth);
  bool bcast = toe_mac_is_broadcast(dst);
  bool ip6 = eth.ethertype == TOE_ETHERTYPE_IPV6 && st->ip6.enabled;
  if (bcast) {
    c->rx_broadcast++;
  } else if (ip6 && toe_ip6_mc_mac_is_ours(st, dst)) {
    bcast = true; /* a link-layer group: the same rules as broadcast (RFC 4443 2.4 (e.3)) */
  } else if (memcmp(dst, st->cfg.mac.b, TOE_ETH_ALEN) != 0) {
    /* Foreign unicast (a promiscuous port or a bridge flooding) or a multicast group. */
    c->rx_drop_not_for_us++;
    goto drop;
  }

  uint16_t vid = eth.tagged ? toe_eth_vid(&eth) : 0;
  if (vid != st->cfg.vlan_id) {
    c->rx_drop_vlan++;
    goto drop;
  }

  if (eth.ethertype != TOE_ETHERTYPE_ARP && eth.ethertype != TOE_ETHERTYPE_IPV4 && !ip6) {
    /* IPv6 without cfg.ipv6, LLDP, 802.3 length-field frames, ... */
    c->rx_drop_ethertype++;
    goto drop;
  }

  uint16_t type = eth.ethertype;
  if (bcast)
    frame->flags |= TOE_PBUF_F_BROADCAST;
  else
    frame->flags &= (uint16_t)~TOE_PBUF_F_BROADCAST;
  toe_pbuf_pull(frame, eth.hdr_len);
  if (type == TOE_ETHERTYPE_ARP)
    toe_arp_input(st, frame);
  else if (ip6)
    toe_ipv6_input(st, frame);
  else
    toe_ipv4_input(st, frame);
  return;

drop:
  toe_pbuf_free(st, frame);
}

static void count_rx(struct toe_stack *st, uint64_t bytes)
{
  st->ctr.link.rx_frames++;
  st->ctr.link.rx_bytes += bytes;
}

void toe_stack_input(struct toe_stack *st, struct toe_pbuf *frame, toe_time_t now)
{
  /* Timers first, so the frame meets current protocol state (an expired neighbour entry, a
   * reassembly that has timed out). */
  toe_stack_advance(st, now);
  if (!frame) {
    count_rx(st, 0);
    st->ctr.link.rx_drop_malformed++;
    return;
  }
  count_rx(st, frame->tot_len);
  frame->qnext = NULL;
  link_input(st, frame);
}

int toe_stack_input_copy(struct toe_stack *st, const void *frame, size_t len, toe_time_t now)
{
  toe_stack_advance(st, now);
  count_rx(st, len);
  if (!frame || len < TOE_ETH_HLEN) {
    st->ctr.link.rx_drop_malformed++;
    return 0;
  }
  /* Frames longer than a buffer become chains: a veth peer with GSO hands over super-frames of
   * up to 64 KiB. */
  struct toe_pbuf *p = toe_pbuf_from_bytes(st, frame, len, RX_COPY_HEADROOM);
  if (!p) {
    st->ctr.link.rx_drop_nobuf++;
    return -TOE_ENOBUFS;
  }
  link_input(st, p);
  return 0;
}

void toe_link_output(struct toe_stack *st, struct toe_pbuf *pb, const uint8_t *dst_mac,
                     uint16_t ethertype)
{
  if (!pb)
    return;
  bool tagged = st->cfg.vlan_id != 0;
  uint16_t hlen = tagged ? TOE_ETH_VLAN_HLEN : TOE_ETH_HLEN;

  /* The header goes in front of the head buffer when there is room and the buffer is ours alone
   * (pushing into a shared head would change the other holder's view of it). Otherwise a fresh
   * buffer carries the header, chained in front. */
  if (toe_pbuf_headroom(pb) < hlen || pb->refcnt > 1) {
    struct toe_pbuf *h = toe_pbuf_alloc(st, hlen);
    if (!h) {
      st->ctr.link.tx_drop_nobuf++;
      toe_pbuf_free(st, pb);
      return;
    }
    h->flags = pb->flags;
    h->csum_start = pb->csum_start;
    h->csum_offset = pb->csum_offset;
    h->gso_size = pb->gso_size;
    h->tot_len = pb->tot_len;
    h->next = pb;
    pb->qnext = NULL;
    pb = h;
  }
  uint8_t *hdr = toe_pbuf_push(pb, hlen);
  if (pb->flags & TOE_PBUF_F_CSUM_PARTIAL)
    pb->csum_start = (uint16_t)(pb->csum_start + hlen);
  toe_eth_write(hdr, dst_mac, st->cfg.mac.b, ethertype, tagged, st->cfg.vlan_id);
  pb->qnext = NULL;
  st->ctr.link.tx_frames++;
  st->ctr.link.tx_bytes += pb->tot_len;
  st->cfg.tx(st->cfg.ctx, pb);
}
