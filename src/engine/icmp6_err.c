/*
 * ICMPv6 errors received (RFC 4443 3, 2.4 (d)): the quoted packet is parsed, checked to be one we
 * sent, matched to its flow and handed to the upper layer; Packet Too Big lowers the path MTU
 * estimate of the quoted destination (RFC 8201 4) in the cache IPv4 uses (engine/pmtu.c).
 *
 * The error numbers and the "fatal" flag are those of Linux's icmpv6_err_convert(), and UDP
 * reports them as Linux's __udp6_lib_err() does: a hard error goes to a connected socket; with
 * TOE_SOCK_F_RECVERR (IPV6_RECVERR) any error goes to the socket, connected or not. A Packet Too
 * Big counts as hard for UDP (Linux: unless IPV6_PMTUDISC_DONT), so a connected socket hears
 * EMSGSIZE once; the datagrams it sends next are fragmented to the new estimate.
 */
#include "engine/ipv6.h"
#include "engine/sock.h"
#include "engine/stack.h"
#include "engine/tcp.h"
#include "wire/icmpv6.h"
#include "wire/udp.h"

/* The most an error can quote and still be within the IPv6 minimum MTU (RFC 4443 2.4 (c)). */
#define MAX_ERR_LEN (TOE_IPV6_MIN_MTU - TOE_IPV6_HLEN)

static void convert(struct toe_icmp6_err *e)
{
  e->fatal = false;
  switch (e->type) {
  case TOE_ICMPV6_DEST_UNREACH:
    switch (e->code) {
    case TOE_ICMPV6_NO_ROUTE:
      e->err = -TOE_ENETUNREACH;
      break;
    case TOE_ICMPV6_PORT_UNREACH:
      e->err = -TOE_ECONNREFUSED;
      e->fatal = true;
      break;
    case TOE_ICMPV6_BEYOND_SCOPE:
    case TOE_ICMPV6_ADDR_UNREACH:
      e->err = -TOE_EHOSTUNREACH;
      break;
    default: /* 1 administratively prohibited, 5 policy, 6 reject route (RFC 4443 3.1) */
      e->err = -TOE_EACCES;
      e->fatal = true;
      break;
    }
    break;
  case TOE_ICMPV6_PKT_TOO_BIG:
    e->err = -TOE_EMSGSIZE;
    break;
  case TOE_ICMPV6_PARAM_PROBLEM:
    e->err = -TOE_EPROTO;
    e->fatal = true;
    break;
  default: /* time exceeded, and error types RFC 4443 does not define */
    e->err = -TOE_EHOSTUNREACH;
    break;
  }
}

bool toe_udp_icmp6_error(struct toe_stack *st, const struct toe_icmp6_err *e)
{
  uint16_t sport = (uint16_t)(e->ql4[0] << 8 | e->ql4[1]);
  uint16_t dport = (uint16_t)(e->ql4[2] << 8 | e->ql4[3]);
  /* the quoted datagram went from (src, sport) to (dst, dport) */
  struct toe_sock *s =
      toe_socktab_lookup6(st, TOE_IPPROTO_UDP, &e->qip->src, sport, &e->qip->dst, dport);
  if (!s)
    return false;
  bool hard = e->fatal || e->type == TOE_ICMPV6_PKT_TOO_BIG;
  if (!(s->flags & TOE_SOCK_F_RECVERR) && !(hard && (s->flags & TOE_SOCK_F_CONNECTED)))
    return false;
  toe_sock_set_error(st, s, e->err);
  return true;
}

void toe_icmp6_error_input(struct toe_stack *st, struct toe_pbuf *pb,
                           const struct toe_ipv6_view *ip)
{
  struct toe_counters_icmp6 *c = &st->ctr.icmp6;
  c->rx_errors++;
  uint32_t n = pb->tot_len < MAX_ERR_LEN ? pb->tot_len : MAX_ERR_LEN;
  uint32_t room = (uint32_t)pb->len + toe_pbuf_tailroom(pb); /* what the head buffer can hold */
  if (n > room)
    n = room; /* a shorter quote: the headers usually fit anyway */
  struct toe_icmpv6_view v;
  struct toe_ipv6_view qip;
  struct toe_ipv6_ext qext;
  if (toe_pbuf_linearize_head(st, pb, (uint16_t)n) != 0 ||
      toe_icmpv6_parse(&v, pb->data, n, &ip->src, &ip->dst, true) != 0 ||
      toe_icmpv6_parse_quoted(&qip, &qext, &v) != 0) {
    c->rx_err_bad_quote++;
    goto drop;
  }
  /* Only about a packet we sent: its source is one of our addresses (RFC 4443 2.4 (d) hands the
   * error to the process that sent it; nobody else's traffic concerns us). RFC 5927 4.1-style
   * checks against the flow follow in the upper layer (ports, and for TCP the sequence). */
  if (toe_ip6_addr_find(st, &qip.src) < 0) {
    c->rx_err_not_ours++;
    goto drop;
  }
  struct toe_icmp6_err e = {.type = v.type, .code = v.code, .qip = &qip, .qext = &qext};
  convert(&e);
  if (v.type == TOE_ICMPV6_PKT_TOO_BIG) {
    /* RFC 8201 4: an MTU below 1280 is discarded; one at or above the estimate changes nothing
     * (the cache keeps the lowest report until it ages out). */
    if (v.mtu < TOE_IPV6_MIN_MTU) {
      c->rx_ptb_ignored++;
      goto drop;
    }
    e.mtu = v.mtu > 0xffffu ? 0xffffu : v.mtu;
    c->rx_ptb++;
    toe_pmtu6_lower(st, &qip.dst, (uint16_t)e.mtu);
  }
  /* The upper layer needs its ports: 8 bytes of its header in the quote. */
  if ((size_t)qext.offset + 8 > v.body_len) {
    c->rx_err_unmatched++;
    goto drop;
  }
  e.ql4 = v.body + qext.offset;
  bool taken = false;
  if (qext.proto == TOE_IPPROTO_UDP)
    taken = toe_udp_icmp6_error(st, &e);
  else if (qext.proto == TOE_IPPROTO_TCP)
    taken = toe_tcp_icmp6_error(st, &qip.src, &qip.dst, e.ql4, e.err, e.mtu);
  if (taken)
    c->rx_err_delivered++;
  else
    c->rx_err_unmatched++;
drop:
  toe_pbuf_free(st, pb);
}
