/*
 * TCP over IPv6, first part: segment validation with the RFC 8200 8.1 pseudo-header and the
 * answer of a port with no connection. The engine holds no IPv6 TCP connection yet (a dual-stack
 * listener on :: takes IPv4 peers only, include/toe/engine.h), so every segment that passes the
 * checks meets RFC 9293 3.10.7.1's CLOSED state: a RST unless it carries one. A peer's connect
 * then fails at once with "connection refused", as against a host without the port.
 */
#include "engine/stack.h"
#include "wire/checksum.h"
#include "wire/tcp.h"

#include <string.h>

/* Sends RST for segment `th` (seg_len counts SYN and FIN) that `ip` carried to us. */
static void send_reset6(struct toe_stack *st, const struct toe_ipv6_view *ip,
                        const struct toe_tcp_view *th, uint32_t seg_len)
{
  struct toe_tcp_fields f;
  memset(&f, 0, sizeof(f));
  f.src_port = th->dst_port;
  f.dst_port = th->src_port;
  if (th->flags & TOE_TCP_ACK) {
    /* RFC 9293 3.10.7.1: <SEQ=SEG.ACK><CTL=RST> */
    f.seq = th->ack;
    f.flags = TOE_TCP_RST;
  } else {
    /* <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK> */
    f.ack = th->seq + seg_len;
    f.flags = TOE_TCP_RST | TOE_TCP_ACK;
  }
  struct toe_pbuf *pb = toe_pbuf_alloc(st, TOE_PBUF_HEADROOM);
  uint8_t *h = pb ? toe_pbuf_push(pb, TOE_TCP_HLEN) : NULL;
  if (h == NULL) {
    if (pb)
      toe_pbuf_free(st, pb);
    st->ctr.tcp.out_drop_nobuf++;
    return;
  }
  size_t hlen = toe_tcp_write(h, &f, 0);
  /* RFC 8200 8.1: the pseudo-header carries the addresses the packet travels with. */
  uint32_t sum =
      toe_csum_add32(toe_ipv6_pseudo_csum(&ip->dst, &ip->src, (uint32_t)hlen, TOE_IPPROTO_TCP),
                     toe_csum_partial(h, hlen, 0));
  uint16_t csum = toe_csum_fold(sum);
  memcpy(h + 16, &csum, 2);
  struct toe_ip6_tx tx = {.src = ip->dst, .dst = ip->src, .next_hdr = TOE_IPPROTO_TCP};
  if (toe_ipv6_output(st, pb, &tx) < 0) {
    st->ctr.tcp.out_errors++;
    return;
  }
  st->ctr.tcp.out_rsts++;
}

void toe_tcp_input6(struct toe_stack *st, struct toe_pbuf *pb, const struct toe_ipv6_view *ip,
                    const struct toe_ipv6_ext *ext)
{
  (void)ext;
  struct toe_counters_tcp *c = &st->ctr.tcp;
  struct toe_tcp_view th;
  c->in_segs++;
  uint32_t len = pb->tot_len;
  uint16_t want = len < 60u ? (uint16_t)len : 60u;
  if (len < TOE_TCP_HLEN || len > 0xffffu || toe_pbuf_linearize_head(st, pb, want) < 0 ||
      toe_tcp_parse(&th, pb->data, pb->len, len) < 0) {
    c->in_errs++;
    c->rx_drop_malformed++;
    goto drop;
  }
  if (!(pb->flags & TOE_PBUF_F_L4_CSUM_OK)) {
    uint32_t sum = toe_csum_add32(toe_pbuf_csum(pb, 0, len),
                                  toe_ipv6_pseudo_csum(&ip->src, &ip->dst, len, TOE_IPPROTO_TCP));
    if (toe_csum_fold(sum) != 0) {
      c->in_errs++;
      c->rx_drop_checksum++;
      goto drop;
    }
  }
  /* RFC 1122 4.2.3.10 (and RFC 8200's multicast): TCP is unicast only, never a RST to a group. */
  if (toe_in6_is_multicast(&ip->dst)) {
    c->rx_drop_not_unicast++;
    goto drop;
  }
  if (th.src_port == 0 || th.dst_port == 0) {
    c->rx_drop_bad_port++;
    goto drop;
  }
  c->rx_drop_no_socket++;
  /* RFC 9293 3.10.7.1: an incoming RST is discarded, anything else answered with RST. */
  if (!(th.flags & TOE_TCP_RST)) {
    uint32_t seg_len = len - th.hdr_len;
    seg_len += (th.flags & TOE_TCP_SYN) ? 1u : 0u;
    seg_len += (th.flags & TOE_TCP_FIN) ? 1u : 0u;
    send_reset6(st, ip, &th, seg_len);
  }
drop:
  toe_pbuf_free(st, pb);
}
