/*
 * The software cut of a TCP/IPv4 super-segment (TOE_LINK_CAP_TSO, TOE_PBUF_F_GSO_TCPV4): what a
 * NIC with TSO does in hardware, for links and tests that need single segments. The rules are
 * those of a TSO engine (and Linux's tcp_gso_segment): every piece carries a copy of the headers;
 * piece i has the sequence number advanced by i * gso_size, the IPv4 id advanced by i (the engine
 * reserved those ids, ipv4_output.c), its own IPv4 total length and header checksum, FIN and PSH
 * only on the last piece and CWR only on the first (RFC 3168 6.1.2: CWR is set once per window
 * reduction), and its own TCP checksum. Payloads are zero-copy views of the super-segment.
 */
#include "common/byteorder.h"
#include "engine/stack.h"
#include "wire/checksum.h"
#include "wire/ethernet.h"
#include "wire/tcp.h"

#include <string.h>

#define GSO_HDR_MAX (TOE_ETH_VLAN_HLEN + 60u + 60u) /* Ethernet + tag, IPv4 and TCP at most */

/* Where the headers of a super-segment are. */
struct gso_hdrs {
  uint32_t l2, ip, l4, hlen; /* offsets of IPv4 and TCP headers; hlen = all headers */
  uint8_t bytes[GSO_HDR_MAX];
};

static int parse_hdrs(const struct toe_pbuf *f, struct gso_hdrs *g)
{
  size_t have = toe_pbuf_copy_out(f, 0, g->bytes, sizeof(g->bytes));
  if (have < TOE_ETH_HLEN + 20u + 20u)
    return -TOE_EINVAL;
  const uint8_t *b = g->bytes;
  uint32_t l2 = TOE_ETH_HLEN;
  uint16_t type = (uint16_t)(b[12] << 8 | b[13]);
  if (type == TOE_ETHERTYPE_VLAN) {
    l2 = TOE_ETH_VLAN_HLEN;
    type = (uint16_t)(b[16] << 8 | b[17]);
  }
  if (type != TOE_ETHERTYPE_IPV4)
    return -TOE_EINVAL;
  const uint8_t *ip = b + l2;
  uint32_t ihl = (uint32_t)(ip[0] & 0x0f) * 4u;
  if ((ip[0] >> 4) != 4 || ihl < 20u || ip[9] != TOE_IPPROTO_TCP || l2 + ihl + 20u > have)
    return -TOE_EINVAL;
  uint32_t thl = (uint32_t)(b[l2 + ihl + 12] >> 4) * 4u;
  if (thl < 20u || l2 + ihl + thl > have || l2 + ihl + thl > f->tot_len)
    return -TOE_EINVAL;
  g->l2 = l2;
  g->ip = l2;
  g->l4 = l2 + ihl;
  g->hlen = l2 + ihl + thl;
  return 0;
}

int toe_gso_segment(struct toe_stack *st, struct toe_pbuf *frame, bool sw_csum,
                    struct toe_pbuf **out)
{
  *out = NULL;
  if (!frame)
    return -TOE_EINVAL;
  if (!(frame->flags & TOE_PBUF_F_GSO_TCPV4)) {
    *out = frame;
    return 0;
  }
  struct gso_hdrs g;
  int rc = parse_hdrs(frame, &g);
  uint32_t mss = frame->gso_size;
  if (rc == 0 && mss == 0)
    rc = -TOE_EINVAL;
  if (rc < 0) {
    toe_pbuf_free(st, frame);
    return rc;
  }
  uint32_t payload = frame->tot_len - g.hlen;
  const uint8_t *ip0 = g.bytes + g.ip;
  uint32_t src = toe_load_be32(ip0 + 12), dst = toe_load_be32(ip0 + 16);
  uint16_t id0 = (uint16_t)(ip0[4] << 8 | ip0[5]);
  uint32_t seq0 = toe_load_be32(g.bytes + g.l4 + 4);
  uint8_t flags0 = g.bytes[g.l4 + 13];
  uint32_t ihl = g.l4 - g.ip, thl = g.hlen - g.l4;

  struct toe_pbuf *head = NULL, **tail = &head;
  uint32_t i = 0;
  for (uint32_t off = 0; off < payload || (payload == 0 && off == 0); off += mss, i++) {
    uint32_t n = payload - off < mss ? payload - off : mss;
    bool last = off + n >= payload;
    struct toe_pbuf *p = toe_pbuf_alloc(st, TOE_PBUF_HEADROOM);
    uint8_t *h = p ? toe_pbuf_put(p, (uint16_t)g.hlen) : NULL;
    if (!h)
      goto nobufs;
    if (n) {
      struct toe_pbuf *v = toe_pbuf_ref_range(st, frame, g.hlen + off, n);
      if (!v) {
        toe_pbuf_free(st, p);
        goto nobufs;
      }
      toe_pbuf_cat(p, v);
    }
    memcpy(h, g.bytes, g.hlen);
    uint8_t *ip = h + g.ip, *th = h + g.l4;
    toe_store_be16(ip + 2, (uint16_t)(ihl + thl + n));
    toe_store_be16(ip + 4, (uint16_t)(id0 + i));
    ip[10] = ip[11] = 0;
    uint16_t ipc = toe_csum(ip, ihl);
    memcpy(ip + 10, &ipc, 2);
    toe_store_be32(th + 4, seq0 + off);
    uint8_t fl = flags0;
    if (!last)
      fl &= (uint8_t) ~(TOE_TCP_FIN | TOE_TCP_PSH);
    if (off)
      fl &= (uint8_t)~TOE_TCP_CWR;
    th[13] = fl;
    uint16_t l4len = (uint16_t)(thl + n);
    if (sw_csum) {
      th[16] = th[17] = 0;
      uint32_t sum = toe_csum_partial(th, thl, 0); /* thl is a multiple of 4: payload even */
      if (n)
        sum = toe_csum_add32(sum, toe_pbuf_csum(p->next, 0, n));
      uint16_t c = toe_tcp_csum_finish(sum, src, dst, l4len);
      memcpy(th + 16, &c, 2);
      p->flags = 0;
    } else {
      uint16_t ps = (uint16_t)~toe_csum_fold(toe_csum_pseudo_v4(src, dst, TOE_IPPROTO_TCP, l4len));
      memcpy(th + 16, &ps, 2);
      p->flags = TOE_PBUF_F_CSUM_PARTIAL;
      p->csum_start = (uint16_t)g.l4;
      p->csum_offset = 16;
    }
    *tail = p;
    tail = &p->qnext;
    if (payload == 0)
      break;
  }
  toe_pbuf_free(st, frame); /* the pieces hold what they need of it */
  *out = head;
  return 0;

nobufs:
  toe_pbuf_free_queue(st, head);
  toe_pbuf_free(st, frame);
  return -TOE_ENOBUFS;
}
