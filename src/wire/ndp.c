/*
 * Neighbor Discovery messages (RFC 4861): validity checks, option decoding and builders.
 */
#include "wire/ndp.h"

#include "common/byteorder.h"
#include "toe/errno.h"
#include "wire/icmpv6.h"

#include <string.h>

#define NA_ROUTER 0x80000000u
#define NA_SOLICITED 0x40000000u
#define NA_OVERRIDE 0x20000000u
#define RA_MANAGED 0x80
#define RA_OTHER 0x40
#define PI_ONLINK 0x80
#define PI_AUTO 0x40

static size_t fixed_len(uint8_t type)
{
  switch (type) {
  case TOE_ICMPV6_ND_RS:
    return TOE_ND_RS_LEN;
  case TOE_ICMPV6_ND_RA:
    return TOE_ND_RA_LEN;
  case TOE_ICMPV6_ND_NS:
    return TOE_ND_NS_LEN;
  case TOE_ICMPV6_ND_NA:
    return TOE_ND_NA_LEN;
  case TOE_ICMPV6_ND_REDIRECT:
    return TOE_ND_REDIRECT_LEN;
  default:
    return 0;
  }
}

/* Walks the options: every one has a non-zero length in 8-byte units and fits (RFC 4861 4.6,
 * 6.1.1, 6.1.2, 7.1.1, 7.1.2, 8.1: "All included options have a length that is greater than
 * zero"). Records the first of each kind whose length suits Ethernet. */
static int walk_opts(struct toe_nd_view *v, const uint8_t *o, size_t len, bool *any_sll)
{
  size_t i = 0;
  while (i < len) {
    if (len - i < 2 || o[i + 1] == 0 || (size_t)o[i + 1] * 8 > len - i)
      return -TOE_EINVAL;
    size_t olen = (size_t)o[i + 1] * 8;
    const uint8_t *d = o + i;
    switch (d[0]) {
    case TOE_ND_OPT_SLLA:
      *any_sll = true;
      if (olen == 8 && !v->sll) /* Ethernet: 6 bytes in one unit (RFC 2464 6) */
        v->sll = d + 2;
      break;
    case TOE_ND_OPT_TLLA:
      if (olen == 8 && !v->tll)
        v->tll = d + 2;
      break;
    case TOE_ND_OPT_PREFIX:
      /* RFC 4861 4.6.2: 32 bytes, prefix length 0..128; others are ignored. */
      if (olen == 32 && d[2] <= 128 && v->n_prefix < 255)
        v->n_prefix++;
      break;
    case TOE_ND_OPT_MTU:
      if (olen == 8 && v->mtu == 0)
        v->mtu = toe_load_be32(d + 4);
      break;
    case TOE_ND_OPT_REDIRECTED:
      /* Type, length, 6 reserved bytes, then the quoted packet (RFC 4861 4.6.3). */
      if (!v->redirected) {
        v->redirected = d + 8;
        v->redirected_len = (uint16_t)(olen - 8);
      }
      break;
    case TOE_ND_OPT_NONCE:
      if (!v->nonce) {
        v->nonce = d + 2;
        v->nonce_len = (uint8_t)(olen - 2);
      }
      break;
    default: /* unknown options are ignored (RFC 4861 4.6) */
      break;
    }
    i += olen;
  }
  return 0;
}

int toe_nd_parse(struct toe_nd_view *v, const struct toe_ipv6_view *ip, const uint8_t *msg,
                 size_t len, bool fragmented)
{
  memset(v, 0, sizeof *v);
  if (len < 4 || len > 0xffffu)
    return -TOE_EINVAL;
  size_t fl = fixed_len(msg[0]);
  /* Common checks: hop limit 255, so the message cannot come from off-link (RFC 4861 3.1); code
   * 0; the fixed part present; not fragmented (RFC 6980 5). */
  if (fl == 0 || len < fl || msg[1] != 0 || ip->hop_limit != TOE_ND_HOP_LIMIT || fragmented)
    return -TOE_EINVAL;
  v->type = msg[0];
  bool any_sll = false;
  if (walk_opts(v, msg + fl, len - fl, &any_sll) != 0)
    return -TOE_EINVAL;
  v->opts = msg + fl;
  v->opts_len = (uint16_t)(len - fl);
  bool src_unspec = toe_in6_is_unspecified(&ip->src);

  switch (v->type) {
  case TOE_ICMPV6_ND_RS:
    if (src_unspec && any_sll) /* 6.1.1 */
      return -TOE_EINVAL;
    break;
  case TOE_ICMPV6_ND_RA: {
    if (!toe_in6_is_link_local(&ip->src)) /* 6.1.2 */
      return -TOE_EINVAL;
    v->cur_hop_limit = msg[4];
    v->managed = (msg[5] & RA_MANAGED) != 0;
    v->other = (msg[5] & RA_OTHER) != 0;
    v->router_lifetime = toe_load_be16(msg + 6);
    v->reachable_ms = toe_load_be32(msg + 8);
    v->retrans_ms = toe_load_be32(msg + 12);
    break;
  }
  case TOE_ICMPV6_ND_NS:
    memcpy(v->target.b, msg + 8, 16);
    if (toe_in6_is_multicast(&v->target)) /* 7.1.1 */
      return -TOE_EINVAL;
    /* DAD probes (RFC 4862 5.4.2) go to the target's solicited-node group and cannot carry a
     * link-layer address (7.1.1). */
    if (src_unspec && (!toe_in6_is_solicited_node(&ip->dst) || any_sll))
      return -TOE_EINVAL;
    break;
  case TOE_ICMPV6_ND_NA: {
    uint32_t fl32 = toe_load_be32(msg + 4);
    v->router = (fl32 & NA_ROUTER) != 0;
    v->solicited = (fl32 & NA_SOLICITED) != 0;
    v->override = (fl32 & NA_OVERRIDE) != 0;
    memcpy(v->target.b, msg + 8, 16);
    if (toe_in6_is_multicast(&v->target)) /* 7.1.2 */
      return -TOE_EINVAL;
    if (toe_in6_is_multicast(&ip->dst) && v->solicited)
      return -TOE_EINVAL;
    break;
  }
  default: /* TOE_ICMPV6_ND_REDIRECT */
    memcpy(v->target.b, msg + 8, 16);
    memcpy(v->dest.b, msg + 24, 16);
    /* 8.1: from a link-local router address; the destination is a unicast address; the target is
     * a link-local router or the destination itself (on-link). */
    if (!toe_in6_is_link_local(&ip->src) || toe_in6_is_multicast(&v->dest))
      return -TOE_EINVAL;
    if (!toe_in6_is_link_local(&v->target) && !toe_in6_equal(&v->target, &v->dest))
      return -TOE_EINVAL;
    break;
  }
  return 0;
}

bool toe_nd_prefix_next(const struct toe_nd_view *v, size_t *cursor, struct toe_nd_prefix *out)
{
  /* The options were checked by toe_nd_parse(): every length fits, none is zero. */
  size_t i = *cursor;
  while (i + 2 <= v->opts_len) {
    const uint8_t *d = v->opts + i;
    size_t olen = (size_t)d[1] * 8;
    if (olen == 0 || olen > v->opts_len - i)
      break;
    i += olen;
    if (d[0] != TOE_ND_OPT_PREFIX || olen != 32 || d[2] > 128)
      continue; /* ignored, as toe_nd_parse() did */
    /* RFC 4861 4.6.2: type, length, prefix length, L|A flags, valid and preferred lifetimes,
     * 4 reserved bytes, prefix. Bits after the prefix length are ignored by receivers. */
    out->len = d[2];
    out->on_link = (d[3] & PI_ONLINK) != 0;
    out->autonomous = (d[3] & PI_AUTO) != 0;
    out->valid = toe_load_be32(d + 4);
    out->preferred = toe_load_be32(d + 8);
    memcpy(out->prefix.b, d + 16, 16);
    *cursor = i;
    return true;
  }
  *cursor = v->opts_len;
  return false;
}

/* ---- builders ---- */

static size_t opt_lladdr(uint8_t *p, uint8_t type, const uint8_t *mac)
{
  p[0] = type;
  p[1] = 1;
  memcpy(p + 2, mac, 6);
  return 8;
}

int toe_nd_write_rs(uint8_t *p, size_t cap, const uint8_t *sll)
{
  size_t n = TOE_ND_RS_LEN + (sll ? 8u : 0u);
  if (cap < n)
    return -TOE_EMSGSIZE;
  memset(p, 0, TOE_ND_RS_LEN);
  p[0] = TOE_ICMPV6_ND_RS;
  if (sll)
    opt_lladdr(p + TOE_ND_RS_LEN, TOE_ND_OPT_SLLA, sll);
  return (int)n;
}

int toe_nd_write_ns(uint8_t *p, size_t cap, const struct toe_in6_addr *target, const uint8_t *sll,
                    const uint8_t *nonce)
{
  size_t n = TOE_ND_NS_LEN + (sll ? 8u : 0u) + (nonce ? 8u : 0u);
  if (cap < n)
    return -TOE_EMSGSIZE;
  memset(p, 0, TOE_ND_NS_LEN);
  p[0] = TOE_ICMPV6_ND_NS;
  memcpy(p + 8, target->b, 16);
  size_t o = TOE_ND_NS_LEN;
  if (sll)
    o += opt_lladdr(p + o, TOE_ND_OPT_SLLA, sll);
  if (nonce) {
    p[o] = TOE_ND_OPT_NONCE; /* RFC 7527 4: one unit, 6 bytes of nonce */
    p[o + 1] = 1;
    memcpy(p + o + 2, nonce, 6);
  }
  return (int)n;
}

int toe_nd_write_na(uint8_t *p, size_t cap, const struct toe_in6_addr *target, bool router,
                    bool solicited, bool override, const uint8_t *tll)
{
  size_t n = TOE_ND_NA_LEN + (tll ? 8u : 0u);
  if (cap < n)
    return -TOE_EMSGSIZE;
  memset(p, 0, TOE_ND_NA_LEN);
  p[0] = TOE_ICMPV6_ND_NA;
  toe_store_be32(p + 4, (router ? NA_ROUTER : 0) | (solicited ? NA_SOLICITED : 0) |
                            (override ? NA_OVERRIDE : 0));
  memcpy(p + 8, target->b, 16);
  if (tll)
    opt_lladdr(p + TOE_ND_NA_LEN, TOE_ND_OPT_TLLA, tll);
  return (int)n;
}

int toe_nd_write_ra(uint8_t *p, size_t cap, const struct toe_nd_ra_fields *f)
{
  size_t n = TOE_ND_RA_LEN + (f->sll ? 8u : 0u) + (f->mtu ? 8u : 0u);
  if (f->n_prefixes > (cap > n ? (cap - n) / 32 : 0) || cap < n)
    return -TOE_EMSGSIZE;
  n += (size_t)f->n_prefixes * 32;
  memset(p, 0, TOE_ND_RA_LEN);
  p[0] = TOE_ICMPV6_ND_RA;
  p[4] = f->cur_hop_limit;
  p[5] = (uint8_t)((f->managed ? RA_MANAGED : 0) | (f->other ? RA_OTHER : 0));
  toe_store_be16(p + 6, f->router_lifetime);
  toe_store_be32(p + 8, f->reachable_ms);
  toe_store_be32(p + 12, f->retrans_ms);
  size_t o = TOE_ND_RA_LEN;
  if (f->sll)
    o += opt_lladdr(p + o, TOE_ND_OPT_SLLA, f->sll);
  if (f->mtu) {
    p[o] = TOE_ND_OPT_MTU; /* RFC 4861 4.6.4 */
    p[o + 1] = 1;
    p[o + 2] = p[o + 3] = 0;
    toe_store_be32(p + o + 4, f->mtu);
    o += 8;
  }
  for (unsigned k = 0; k < f->n_prefixes; k++) {
    const struct toe_nd_prefix *pi = &f->prefixes[k];
    uint8_t *d = p + o;
    memset(d, 0, 32);
    d[0] = TOE_ND_OPT_PREFIX;
    d[1] = 4;
    d[2] = pi->len;
    d[3] = (uint8_t)((pi->on_link ? PI_ONLINK : 0) | (pi->autonomous ? PI_AUTO : 0));
    toe_store_be32(d + 4, pi->valid);
    toe_store_be32(d + 8, pi->preferred);
    memcpy(d + 16, pi->prefix.b, 16);
    o += 32;
  }
  return (int)n;
}

int toe_nd_write_redirect(uint8_t *p, size_t cap, const struct toe_in6_addr *target,
                          const struct toe_in6_addr *dest, const uint8_t *tll,
                          const uint8_t *invoking, size_t invoking_len)
{
  size_t n = TOE_ND_REDIRECT_LEN + (tll ? 8u : 0u);
  if (cap < n)
    return -TOE_EMSGSIZE;
  memset(p, 0, TOE_ND_REDIRECT_LEN);
  p[0] = TOE_ICMPV6_ND_REDIRECT;
  memcpy(p + 8, target->b, 16);
  memcpy(p + 24, dest->b, 16);
  if (tll)
    opt_lladdr(p + TOE_ND_REDIRECT_LEN, TOE_ND_OPT_TLLA, tll);
  if (invoking && invoking_len) {
    /* RFC 4861 4.6.3, 8.2: as much of the packet as keeps the redirect within the minimum MTU;
     * the option is whole 8-byte units, so round the quote down and pad the last unit. */
    size_t room = TOE_IPV6_MIN_MTU - TOE_IPV6_HLEN - n;
    if (cap - n < room)
      room = cap - n;
    if (room >= 16) {
      size_t q = room - 8;
      q &= ~(size_t)7;
      if (q > ((invoking_len + 7) & ~(size_t)7))
        q = (invoking_len + 7) & ~(size_t)7;
      size_t copy = invoking_len < q ? invoking_len : q;
      uint8_t *d = p + n;
      memmove(d + 8, invoking, copy);
      memset(d, 0, 8);
      d[0] = TOE_ND_OPT_REDIRECTED;
      d[1] = (uint8_t)((q + 8) / 8);
      memset(d + 8 + copy, 0, q - copy);
      n += q + 8;
    }
  }
  return (int)n;
}
