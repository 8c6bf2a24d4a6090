/*
 * IPv4 input (RFC 791, RFC 1122 3.2.1 and 3.3.6): header validation, address filtering,
 * fragments to reassembly, and demultiplexing of complete datagrams to ICMP, UDP and TCP.
 */
#include "engine/stack.h"
#include "engine/tcp.h"
#include "wire/icmpv4.h"
#include "wire/ipv4.h"

#include <string.h>

size_t toe_ipv4_mem_size(const struct toe_config *cfg)
{
  return toe_ipv4_reass_mem_size(cfg);
}

void toe_ipv4_init(struct toe_stack *st, void *mem)
{
  /* Identification values only need to be unique per (src, dst, proto) for the reassembly
   * lifetime (RFC 6864 4.1); a counter from a random start keeps them so without making them
   * trivially predictable across restarts. */
  st->ip.next_id = (uint16_t)toe_random(st);
  toe_ipv4_reass_init(st, mem);
}

/*
 * toe_ipv4_parse() reports every structural problem as -TOE_EINVAL; tell bad options apart from a
 * malformed base header so they are counted by reason. Called only after a parse failure; the
 * header is contiguous as far as IHL claims whenever IHL fits in the packet.
 */
static bool einval_is_options(const struct toe_pbuf *pb)
{
  const uint8_t *h = pb->data;
  unsigned hl = (unsigned)(h[0] & 0x0f) * 4u;
  unsigned total = (unsigned)h[2] << 8 | h[3];
  if ((h[0] >> 4) != 4 || hl <= TOE_IPV4_HLEN || hl > pb->len)
    return false;
  if (total < hl || total > pb->tot_len)
    return false;
  return toe_ipv4_opts_check(h + TOE_IPV4_HLEN, hl - TOE_IPV4_HLEN) != 0;
}

/*
 * Validates the header of `pb` and fills `v`. On failure the packet is freed, the drop counted,
 * and false returned.
 */
static bool ip_validate(struct toe_stack *st, struct toe_pbuf *pb, struct toe_ipv4_view *v)
{
  struct toe_counters_ip *c = &st->ctr.ip;
  if (toe_pbuf_linearize_head(st, pb, TOE_IPV4_HLEN) != 0) {
    c->rx_drop_malformed++;
    goto drop;
  }
  uint16_t hl = (uint16_t)((pb->data[0] & 0x0f) * 4u);
  if (hl > TOE_IPV4_HLEN && toe_pbuf_linearize_head(st, pb, hl) != 0) {
    c->rx_drop_malformed++;
    goto drop;
  }
  bool csum_ok = (pb->flags & TOE_PBUF_F_IP_CSUM_OK) != 0;
  int rc = toe_ipv4_parse(v, pb->data, pb->len, pb->tot_len, csum_ok);
  if (rc == -TOE_EBADMSG) {
    c->rx_drop_checksum++;
    goto drop;
  }
  if (rc != 0) {
    if (einval_is_options(pb))
      c->rx_drop_options++;
    else
      c->rx_drop_malformed++;
    goto drop;
  }
  /* Link padding (Ethernet minimum frame) and anything else past the datagram goes. */
  if (pb->tot_len > v->total_len)
    toe_pbuf_trim(st, pb, v->total_len);
  return true;
drop:
  toe_pbuf_free(st, pb);
  return false;
}

/*
 * RFC 1122 3.3.6: accept our address, the limited broadcast and our directed broadcast. Multicast
 * groups are not joined, so multicast is not for us either.
 */
static bool dst_is_ours(const struct toe_stack *st, uint32_t dst)
{
  if (dst == st->cfg.addr)
    return true;
  return toe_ipv4_is_broadcast(dst, st->cfg.addr, st->cfg.prefix_len);
}

/*
 * RFC 1122 3.2.1.3: a source must name one host. Ours (a loop or a spoof), 0 (only legal while a
 * host boots, which is not a peer we talk to), broadcasts, multicast and loopback never are.
 */
static bool src_is_bad(const struct toe_stack *st, uint32_t src)
{
  return src == st->cfg.addr || src == 0 ||
         toe_ipv4_is_broadcast(src, st->cfg.addr, st->cfg.prefix_len) ||
         toe_ipv4_is_multicast(src) || toe_ipv4_is_loopback(src);
}

/* Hands a complete datagram (data at the IP header, described by `v`) to its protocol. */
static void ip_deliver(struct toe_stack *st, struct toe_pbuf *pb, const struct toe_ipv4_view *v)
{
  struct toe_counters_ip *c = &st->ctr.ip;
  switch (v->proto) {
  case TOE_IPPROTO_ICMP:
  case TOE_IPPROTO_UDP:
  case TOE_IPPROTO_TCP:
    break;
  default:
    /* RFC 1122 3.2.2.1: protocol unreachable, only for datagrams addressed to us alone
     * (toe_icmp_send_error applies the other suppression rules). */
    c->rx_drop_proto++;
    if (v->dst == st->cfg.addr)
      toe_icmp_send_error(st, pb, TOE_ICMP_DEST_UNREACH, TOE_ICMP_PROTO_UNREACH, 0);
    toe_pbuf_free(st, pb);
    return;
  }
  /* The header is contiguous in the head buffer (validated), so this pull cannot fail; `v` keeps
   * pointing at the header bytes, which stay in the buffer's headroom. */
  toe_pbuf_pull(pb, v->hdr_len);
  c->rx_delivered++;
  if (v->proto == TOE_IPPROTO_TCP)
    toe_tcp_input(st, pb, v);
  else if (v->proto == TOE_IPPROTO_UDP)
    toe_udp_input(st, pb, v);
  else
    toe_icmp_input(st, pb, v);
}

void toe_ipv4_input(struct toe_stack *st, struct toe_pbuf *pb)
{
  struct toe_counters_ip *c = &st->ctr.ip;
  struct toe_ipv4_view v;
  c->rx_packets++;
  if (!ip_validate(st, pb, &v))
    return;

  if (!dst_is_ours(st, v.dst)) {
    c->rx_drop_not_for_us++;
    toe_pbuf_free(st, pb);
    return;
  }
  /* RFC 1122 3.3.6: a datagram that came as a link-layer broadcast but names a unicast
   * destination SHOULD be discarded silently. */
  if ((pb->flags & TOE_PBUF_F_BROADCAST) && v.dst == st->cfg.addr) {
    c->rx_drop_not_for_us++;
    toe_pbuf_free(st, pb);
    return;
  }
  if (src_is_bad(st, v.src)) {
    c->rx_drop_bad_source++;
    toe_pbuf_free(st, pb);
    return;
  }
  /* Options were checked for well-formedness by the parser and are otherwise ignored: none of
   * them asks anything of a host that terminates the datagram (RFC 1122 3.2.1.8). */

  if (toe_ipv4_is_fragment(&v)) {
    c->rx_fragments++;
    pb = toe_ipv4_reass(st, pb, &v);
    if (!pb)
      return;
  }
  ip_deliver(st, pb, &v);
}
