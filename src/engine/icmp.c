/*
 * ICMPv4 (RFC 792, RFC 1122 3.2.2): echo replies, received errors turned into socket errors, and
 * error generation with the suppression rules of RFC 1122 3.2.2 / RFC 1812 4.3.2.7 and the token
 * bucket rate limit of RFC 1812 4.3.2.8.
 */
#include "engine/div64.h"
#include "engine/stack.h"
#include "engine/tcp.h"
#include "wire/checksum.h"
#include "wire/icmpv4.h"
#include "wire/ipv4.h"

#include <string.h>

#define ICMP_ERR_MAX 576u /* RFC 1812 4.3.2.3: an error never exceeds 576 bytes */
#define MILLI 1000u
#define IPTOS_PREC_INTERNETCONTROL 0xc0u

void toe_icmp_init(struct toe_stack *st)
{
  toe_icmp_bucket_init(st, &st->icmp);
}

void toe_icmp_bucket_init(struct toe_stack *st, struct toe_icmp_state *s)
{
  s->tokens_milli = (uint64_t)st->cfg.icmp_burst * MILLI;
  s->last_refill = st->now;
}

/*
 * Token bucket (RFC 1812 4.3.2.8): icmp_rate_per_sec tokens a second, at most icmp_burst saved.
 * Tokens are kept in thousandths; the refill moves last_refill forward only by the time it turned
 * into tokens, so frequent calls never lose the fractions.
 */
bool toe_icmp_bucket_take(struct toe_stack *st, struct toe_icmp_state *s)
{
  uint64_t cap = (uint64_t)st->cfg.icmp_burst * MILLI;
  uint64_t rate = st->cfg.icmp_rate_per_sec;
  toe_time_t now = st->now;

  if (now > s->last_refill && rate != 0 && s->tokens_milli < cap) {
    toe_time_t el = now - s->last_refill;
    uint64_t add;
    if (el > toe_udiv64(UINT64_MAX, rate))
      add = cap;
    else
      add = toe_div1000000(el * rate); /* ns * tokens/s * 1000 milli / 1e9 */
    if (add != 0) {
      s->tokens_milli += add;
      s->last_refill += toe_udiv64(add * 1000000u, rate);
      if (s->tokens_milli >= cap) {
        s->tokens_milli = cap;
        s->last_refill = now;
      }
    }
  } else if (s->tokens_milli >= cap || now < s->last_refill) {
    /* A full bucket does not save up; keep the reference time current. */
    s->last_refill = now;
  }
  if (s->tokens_milli < MILLI)
    return false;
  s->tokens_milli -= MILLI;
  return true;
}

/* ICMP types that are queries/replies, not errors (RFC 792, RFC 950, RFC 1256). */
static bool icmp_type_informational(uint8_t t)
{
  switch (t) {
  case TOE_ICMP_ECHO_REPLY:
  case TOE_ICMP_ECHO_REQUEST:
  case 9:  /* router advertisement */
  case 10: /* router solicitation */
  case TOE_ICMP_TIMESTAMP:
  case 14: /* timestamp reply */
  case 15: /* information request */
  case 16: /* information reply */
  case 17: /* address mask request */
  case 18: /* address mask reply */
    return true;
  default:
    return false;
  }
}

/* RFC 1122 3.2.2 (last paragraph) / 3.2.1.3: the source must define a single host. */
static bool src_is_unicast_host(const struct toe_stack *st, uint32_t a)
{
  const struct toe_config *cfg = &st->cfg;
  if (a == 0 || a == cfg->addr || toe_ipv4_is_loopback(a) || toe_ipv4_is_multicast(a))
    return false;
  if ((a & 0xf0000000u) == 0xf0000000u) /* class E, the limited broadcast included */
    return false;
  return !toe_ipv4_is_broadcast(a, cfg->addr, cfg->prefix_len);
}

void toe_icmp_send_error(struct toe_stack *st, const struct toe_pbuf *orig, uint8_t type,
                         uint8_t code, uint32_t rest)
{
  struct toe_counters_icmp *c = &st->ctr.icmp;
  const struct toe_config *cfg = &st->cfg;

  /* The header is read by hand rather than parsed: the caller may have trimmed the datagram
   * (UDP cuts IP padding), so its total length field need not match the chain any more. The
   * header itself was validated on input and is contiguous. */
  const uint8_t *h = orig->data;
  if (orig->len < TOE_IPV4_HLEN || (h[0] >> 4) != 4 || (unsigned)(h[0] & 0x0f) * 4u > orig->len ||
      (h[0] & 0x0f) < 5) {
    c->tx_suppressed++;
    return;
  }
  unsigned hl = (unsigned)(h[0] & 0x0f) * 4u;
  uint8_t proto = h[9];
  uint16_t frag = (uint16_t)(h[6] << 8 | h[7]);
  uint32_t src = toe_ipv4_load(h + 12);
  uint32_t dst = toe_ipv4_load(h + 16);

  /* RFC 1122 3.2.2 / RFC 1812 4.3.2.7: never about a link broadcast, an IP broadcast or
   * multicast, a non-initial fragment, a source that is not one host, or an ICMP error. */
  bool suppress = (orig->flags & TOE_PBUF_F_BROADCAST) ||
                  toe_ipv4_is_broadcast(dst, cfg->addr, cfg->prefix_len) ||
                  toe_ipv4_is_multicast(dst) || (frag & TOE_IPV4_OFFMASK) != 0 ||
                  !src_is_unicast_host(st, src);
  if (!suppress && proto == TOE_IPPROTO_ICMP) {
    /* Unknown types count as errors (the safe reading: never answer what might be one). */
    uint8_t t;
    if (toe_pbuf_copy_out(orig, hl, &t, 1) != 1 || !icmp_type_informational(t))
      suppress = true;
  }
  if (suppress) {
    c->tx_suppressed++;
    return;
  }
  if (!toe_icmp_bucket_take(st, &st->icmp)) {
    c->tx_rate_limited++;
    return;
  }

  /* Quote the header and as much data as keeps the error within 576 bytes (RFC 1812 4.3.2.3);
   * RFC 792 asks for at least the header and 8 bytes. */
  uint32_t qlen = orig->tot_len;
  if (qlen > ICMP_ERR_MAX - TOE_IPV4_HLEN - TOE_ICMP_HLEN)
    qlen = ICMP_ERR_MAX - TOE_IPV4_HLEN - TOE_ICMP_HLEN;
  struct toe_pbuf *pb = toe_pbuf_alloc(st, TOE_PBUF_HEADROOM);
  if (!pb) {
    st->ctr.link.tx_drop_nobuf++;
    return;
  }
  if (qlen + TOE_ICMP_HLEN > toe_pbuf_tailroom(pb))
    qlen = toe_pbuf_tailroom(pb) - TOE_ICMP_HLEN; /* cannot happen with a valid pbuf_size */
  uint8_t *p = toe_pbuf_put(pb, (uint16_t)(TOE_ICMP_HLEN + qlen));
  toe_icmp_write_hdr(p, type, code, rest);
  toe_pbuf_copy_out(orig, 0, p + TOE_ICMP_HLEN, qlen);
  uint16_t cs = toe_csum(p, TOE_ICMP_HLEN + qlen);
  memcpy(p + 2, &cs, 2);

  /* RFC 1812 4.3.2.5: errors go with precedence "internetwork control". */
  struct toe_ip_tx tx = {
      .src = cfg->addr, .dst = src, .proto = TOE_IPPROTO_ICMP, .tos = IPTOS_PREC_INTERNETCONTROL};
  if (toe_ipv4_output(st, pb, &tx) != 0)
    return;
  if (type == TOE_ICMP_DEST_UNREACH)
    c->tx_dest_unreach++;
  else if (type == TOE_ICMP_TIME_EXCEEDED)
    c->tx_time_exceeded++;
}

/* RFC 792 echo: the same identifier, sequence number and data back to the sender. */
static void icmp_echo(struct toe_stack *st, struct toe_pbuf *pb, const struct toe_ipv4_view *ip)
{
  struct toe_counters_icmp *c = &st->ctr.icmp;
  c->rx_echo_requests++;
  /* RFC 1122 3.2.2.6 lets a host ignore echo to a broadcast; answering makes us an amplifier. */
  if (ip->dst != st->cfg.addr || (pb->flags & TOE_PBUF_F_BROADCAST)) {
    c->rx_echo_broadcast++;
    toe_pbuf_free(st, pb);
    return;
  }
  /* The reply reuses the request's buffers (a reassembled request is a chain; output fragments
   * the reply). Only the head's first 4 bytes change; a shared head is copied first. */
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
  uint16_t oldw, neww, cs;
  memcpy(&oldw, h, 2);
  h[0] = TOE_ICMP_ECHO_REPLY;
  h[1] = 0;
  memcpy(&neww, h, 2);
  memcpy(&cs, h + 2, 2);
  cs = toe_csum_update16(cs, oldw, neww); /* RFC 1624: only the type/code word changed */
  if (cs == 0) {
    /* RFC 1624 eqn. 3 gives 0x0000 both when the sum is -0 (right) and for an all-zero message
     * (id 0, seq 0, zero data), which must carry 0xffff. Rare (1 in 65536): just recompute. */
    memset(h + 2, 0, 2);
    cs = toe_csum_fold(toe_pbuf_csum(pb, 0, pb->tot_len));
  }
  memcpy(h + 2, &cs, 2);
  pb->flags = 0; /* receive-side flags mean nothing on the way out */

  struct toe_ip_tx tx = {
      .src = st->cfg.addr, .dst = ip->src, .proto = TOE_IPPROTO_ICMP, .tos = ip->tos};
  if (toe_ipv4_output(st, pb, &tx) == 0)
    c->tx_echo_replies++;
}

/* Maps a received error to the errno its socket should see (RFC 1122 3.2.2.1). */
static int icmp_error_errno(uint8_t type, uint8_t code)
{
  if (type == TOE_ICMP_TIME_EXCEEDED)
    return -TOE_EHOSTUNREACH;
  if (type == TOE_ICMP_PARAM_PROBLEM)
    return -TOE_EPROTO;
  switch (code) {
  case TOE_ICMP_NET_UNREACH:
  case 6:  /* destination network unknown */
  case 9:  /* network administratively prohibited */
  case 11: /* network unreachable for TOS */
    return -TOE_ENETUNREACH;
  case TOE_ICMP_PROTO_UNREACH:
    return -TOE_ENOPROTOOPT;
  case TOE_ICMP_PORT_UNREACH:
    return -TOE_ECONNREFUSED;
  case TOE_ICMP_FRAG_NEEDED:
    return -TOE_EMSGSIZE;
  default: /* host unreachable, unknown, isolated, prohibited, filtered, ... */
    return -TOE_EHOSTUNREACH;
  }
}

/*
 * A destination unreachable, time exceeded or parameter problem: find the transport whose
 * datagram is quoted (IP header + at least 8 bytes, RFC 792) and hand it the error.
 */
static void icmp_error_input(struct toe_stack *st, struct toe_pbuf *pb,
                             const struct toe_icmp_view *v)
{
  struct toe_counters_icmp *c = &st->ctr.icmp;
  uint8_t type = v->type, code = v->code;
  uint16_t next_mtu = v->next_mtu;
  if (toe_pbuf_linearize_head(st, pb, TOE_ICMP_HLEN + TOE_IPV4_HLEN) != 0)
    goto malformed;
  uint16_t qhl = (uint16_t)((pb->data[TOE_ICMP_HLEN] & 0x0f) * 4u);
  if (qhl < TOE_IPV4_HLEN ||
      toe_pbuf_linearize_head(st, pb, (uint16_t)(TOE_ICMP_HLEN + qhl + 8u)) != 0)
    goto malformed;
  /* Only the quoted header's structure is checked: its total length describes the original
   * datagram (not the quote) and its checksum may predate a router's TTL decrement. */
  struct toe_ipv4_view q;
  if (toe_ipv4_parse(&q, pb->data + TOE_ICMP_HLEN, qhl, 0xffff, true) != 0)
    goto malformed;
  const uint8_t *ql4 = pb->data + TOE_ICMP_HLEN + qhl;

  int err = icmp_error_errno(type, code);
  bool delivered = false;
  /* Only datagrams we sent, and only a first fragment carries the ports. */
  if (q.src == st->cfg.addr && q.frag_off == 0) {
    switch (q.proto) {
    case TOE_IPPROTO_UDP:
      delivered = toe_udp_icmp_error(st, &q, ql4, err);
      break;
    case TOE_IPPROTO_TCP:
      delivered = toe_tcp_icmp_error(st, &q, ql4, err, next_mtu);
      break;
    default:
      break;
    }
  }
  if (delivered)
    c->rx_errors_delivered++;
  else
    c->rx_errors_no_socket++;
  toe_pbuf_free(st, pb);
  return;
malformed:
  c->rx_drop_malformed++;
  toe_pbuf_free(st, pb);
}

void toe_icmp_input(struct toe_stack *st, struct toe_pbuf *pb, const struct toe_ipv4_view *ip)
{
  struct toe_counters_icmp *c = &st->ctr.icmp;
  struct toe_icmp_view v;
  c->rx_msgs++;
  if (toe_pbuf_linearize_head(st, pb, TOE_ICMP_HLEN) != 0 ||
      toe_icmp_parse(&v, pb->data, pb->len) != 0) {
    c->rx_drop_malformed++;
    toe_pbuf_free(st, pb);
    return;
  }
  /* The checksum covers the whole message (RFC 792), which may be a reassembled chain. */
  if (toe_csum_fold(toe_pbuf_csum(pb, 0, pb->tot_len)) != 0) {
    c->rx_drop_checksum++;
    toe_pbuf_free(st, pb);
    return;
  }
  switch (v.type) {
  case TOE_ICMP_ECHO_REQUEST:
    icmp_echo(st, pb, ip);
    return;
  case TOE_ICMP_ECHO_REPLY:
    c->rx_echo_replies++; /* no ping sockets yet */
    break;
  case TOE_ICMP_DEST_UNREACH:
    c->rx_dest_unreach++;
    icmp_error_input(st, pb, &v);
    return;
  case TOE_ICMP_TIME_EXCEEDED:
    c->rx_time_exceeded++;
    icmp_error_input(st, pb, &v);
    return;
  case TOE_ICMP_PARAM_PROBLEM:
    c->rx_param_problem++;
    icmp_error_input(st, pb, &v);
    return;
  default:
    /* Source quench is deprecated (RFC 6633) and ignored; redirects do not apply with a single
     * default gateway; timestamps and the rest are not answered. */
    c->rx_drop_type++;
    break;
  }
  toe_pbuf_free(st, pb);
}
