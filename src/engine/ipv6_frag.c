/*
 * IPv6 fragmentation on output (RFC 8200 4.5): a packet larger than the path MTU is sent as
 * fragments, each a copy of its share of the payload behind the fixed header and a fragment
 * header. Only the source fragments in IPv6; the engine adds no extension headers of its own to
 * packets big enough to need it, so the unfragmentable part is the fixed header alone.
 *
 * The identification (RFC 7739): a keyed hash (the stack's secret) of the addresses and a running
 * counter, so that an off-path observer can neither predict the next value nor learn from one
 * destination's values how much is sent to another (RFC 7739 4 and 5), while values for one
 * destination do not repeat within any reassembly lifetime in practice (a 32-bit hash output).
 */
#include "engine/ipv6.h"
#include "engine/stack.h"
#include "wire/ethernet.h"

#include <string.h>

static uint32_t frag_id(struct toe_stack *st, const struct toe_ip6_tx *tx)
{
  uint8_t k[36];
  memcpy(k, tx->src.b, 16);
  memcpy(k + 16, tx->dst.b, 16);
  uint32_t seq = st->ip6.frag_seq++;
  k[32] = (uint8_t)(seq >> 24);
  k[33] = (uint8_t)(seq >> 16);
  k[34] = (uint8_t)(seq >> 8);
  k[35] = (uint8_t)seq;
  return (uint32_t)toe_keyed_hash(st, k, sizeof(k));
}

int toe_ipv6_fragment(struct toe_stack *st, struct toe_pbuf *pb, const struct toe_ip6_tx *tx,
                      uint16_t mtu, const uint8_t *mac, const struct toe_in6_addr *nexthop)
{
  struct toe_counters_ip6 *c = &st->ctr.ip6;
  /* RFC 8200 4.5: every fragment but the last carries a multiple of 8 bytes. */
  uint32_t chunk = ((uint32_t)mtu - TOE_IPV6_HLEN - TOE_IPV6_FRAG_HLEN) & ~7u;
  uint32_t total = pb->tot_len;
  uint32_t id = frag_id(st, tx);
  struct toe_ip6_tx ftx = *tx;
  ftx.next_hdr = TOE_IPPROTO_FRAGMENT;
  c->tx_frag_datagrams++;
  int rc = 0;
  for (uint32_t off = 0; off < total; off += chunk) {
    uint32_t n = total - off < chunk ? total - off : chunk;
    bool more = off + n < total;
    struct toe_pbuf *f = toe_pbuf_copy_range(st, pb, off, n, TOE_PBUF_HEADROOM);
    uint8_t *fh = f ? toe_pbuf_push(f, TOE_IPV6_FRAG_HLEN) : NULL;
    if (!fh) {
      /* The rest of the datagram is useless to the peer without this piece. */
      if (f)
        toe_pbuf_free(st, f);
      c->tx_frag_nobuf++;
      rc = -TOE_ENOBUFS;
      break;
    }
    toe_ipv6_write_frag(fh, tx->next_hdr, (uint16_t)off, more, id);
    c->tx_fragments++;
    int r =
        mac ? toe_ipv6_output_mac(st, f, &ftx, mac) : toe_ipv6_output_resolve(st, f, &ftx, nexthop);
    if (r != 0) {
      rc = r;
      break;
    }
  }
  toe_pbuf_free(st, pb);
  return rc;
}
