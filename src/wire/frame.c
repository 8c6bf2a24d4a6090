/*
 * The observers' frame view: one walk from the Ethernet header to the transport ports, made of the
 * engine's checked views (wire/frame.h).
 */
#include "wire/frame.h"

#include "common/byteorder.h"
#include "toe/errno.h"
#include "wire/checksum.h"
#include "wire/tcp.h"
#include "wire/udp.h"

#include <string.h>

static void frame_ipv4(struct toe_frame_view *v, const uint8_t *l3, size_t l3_len, size_t l3_pkt)
{
  /* csum_ok: the header checksum is not the observer's to judge (wire/frame.h). */
  if (toe_ipv4_parse(&v->v4, l3, l3_len, l3_pkt, true) != 0)
    return;
  v->ipver = 4;
  v->ip_end = v->l3_off + v->v4.total_len;
  v->l4_proto = v->v4.proto;
  v->fragment = toe_ipv4_is_fragment(&v->v4);
  /* RFC 791 3.2: only the fragment at offset 0 carries the transport header. */
  if (v->v4.frag_off == 0)
    v->l4_off = v->l3_off + v->v4.hdr_len;
}

static void frame_ipv6(struct toe_frame_view *v, const uint8_t *l3, size_t l3_len, size_t l3_pkt)
{
  if (toe_ipv6_parse(&v->v6, l3, l3_len, l3_pkt) != 0)
    return;
  v->ipver = 6;
  v->ip_end = v->l3_off + TOE_IPV6_HLEN + v->v6.payload_len;
  struct toe_ipv6_ext ext;
  /* A chain the walk refuses, or one that runs past the bytes at hand (-TOE_EAGAIN), leaves no
   * transport header. */
  if (toe_ipv6_ext_walk(&ext, &v->v6, l3, l3_len) != 0)
    return;
  if (ext.proto != TOE_IPPROTO_FRAGMENT) { /* whole, or an atomic fragment (RFC 8021) */
    v->l4_proto = ext.proto;
    v->l4_off = v->l3_off + ext.offset;
    return;
  }
  /* A fragment to reassemble (RFC 8200 4.5): the first one holds the headers that follow the
   * fragment header. */
  v->fragment = true;
  v->l4_proto = ext.frag_nh;
  if (ext.frag_off == 0)
    v->l4_off = v->l3_off + ext.offset;
}

int toe_frame_parse(struct toe_frame_view *v, const uint8_t *frame, size_t len, size_t wire_len)
{
  memset(v, 0, sizeof(*v));
  if (toe_eth_parse(&v->eth, frame, len) != 0) {
    memset(v, 0, sizeof(*v));
    return -TOE_EINVAL;
  }
  v->len = (uint32_t)len;
  v->l3_off = v->eth.hdr_len;
  const uint8_t *l3 = frame + v->l3_off;
  size_t l3_len = len - v->l3_off;
  /* Unknown: the largest IP packet the length fields can name, so they are taken at their word. */
  size_t l3_pkt = wire_len == TOE_FRAME_LEN_UNKNOWN ? 65535u + TOE_IPV6_HLEN
                  : wire_len < len                  ? l3_len
                                                    : wire_len - v->l3_off;
  switch (v->eth.ethertype) {
  case TOE_ETHERTYPE_ARP:
    v->arp = toe_arp_parse(&v->arp_view, l3, l3_len) == 0;
    break;
  case TOE_ETHERTYPE_IPV4:
    frame_ipv4(v, l3, l3_len, l3_pkt);
    break;
  case TOE_ETHERTYPE_IPV6:
    frame_ipv6(v, l3, l3_len, l3_pkt);
    break;
  default:
    break;
  }
  if (v->l4_off && (v->l4_proto == TOE_IPPROTO_TCP || v->l4_proto == TOE_IPPROTO_UDP) &&
      v->ip_end >= v->l4_off && v->ip_end - v->l4_off >= 4 && len >= v->l4_off &&
      len - v->l4_off >= 4) {
    v->ports = true;
    v->sport = toe_load_be16(frame + v->l4_off);
    v->dport = toe_load_be16(frame + v->l4_off + 2);
  }
  return 0;
}

int toe_frame_l4_csum(uint8_t *frame, const struct toe_frame_view *v)
{
  if (!v->ipver || !v->l4_off || v->fragment || v->l4_off > v->ip_end || v->ip_end > v->len)
    return -TOE_EINVAL;
  uint8_t *seg = frame + v->l4_off;
  size_t seg_len = v->ip_end - v->l4_off;
  size_t field;
  if (v->l4_proto == TOE_IPPROTO_TCP) {
    struct toe_tcp_view t;
    if (toe_tcp_parse(&t, seg, seg_len, seg_len) != 0)
      return -TOE_EINVAL;
    field = 16;
  } else if (v->l4_proto == TOE_IPPROTO_UDP) {
    struct toe_udp_view u;
    if (toe_udp_parse(&u, seg, seg_len, seg_len) != 0)
      return -TOE_EINVAL;
    seg_len = u.len; /* the length field bounds the checksummed bytes; the rest is IP padding */
    field = 6;
  } else {
    return -TOE_EINVAL;
  }
  uint32_t sum;
  if (v->ipver == 4)
    sum = toe_csum_pseudo_v4(v->v4.src, v->v4.dst, v->l4_proto, (uint16_t)seg_len);
  else
    sum = toe_ipv6_pseudo_csum(&v->v6.src, &v->v6.dst, (uint32_t)seg_len, v->l4_proto);
  seg[field] = 0;
  seg[field + 1] = 0;
  uint16_t c = toe_csum_fold(toe_csum_partial(seg, seg_len, sum));
  if (v->l4_proto == TOE_IPPROTO_UDP && c == 0)
    c = 0xffff;
  memcpy(seg + field, &c, 2);
  return 0;
}
