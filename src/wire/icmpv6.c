/*
 * ICMPv6 messages (RFC 4443).
 */
#include "wire/icmpv6.h"

#include "common/byteorder.h"
#include "toe/errno.h"
#include "wire/checksum.h"

#include <string.h>

uint16_t toe_icmpv6_csum(const uint8_t *p, size_t len, const struct toe_in6_addr *src,
                         const struct toe_in6_addr *dst)
{
  /* RFC 4443 2.3: the checksum covers the pseudo-header (RFC 8200 8.1, next header 58) and the
   * message with the checksum field taken as zero: sum around it. */
  uint32_t s = toe_ipv6_pseudo_csum(src, dst, (uint32_t)len, TOE_IPPROTO_ICMPV6);
  s = toe_csum_add32(s, toe_csum_partial(p, len < 2 ? len : 2, 0));
  if (len > 4)
    s = toe_csum_add32(s, toe_csum_partial(p + 4, len - 4, 0));
  return toe_csum_fold(s);
}

void toe_icmpv6_finish(uint8_t *p, size_t len, const struct toe_in6_addr *src,
                       const struct toe_in6_addr *dst)
{
  uint16_t c = toe_icmpv6_csum(p, len, src, dst);
  memcpy(p + 2, &c, 2);
}

int toe_icmpv6_parse(struct toe_icmpv6_view *v, const uint8_t *p, size_t len,
                     const struct toe_in6_addr *src, const struct toe_in6_addr *dst, bool csum_ok)
{
  if (len < TOE_ICMPV6_HLEN)
    return -TOE_EINVAL;
  if (!csum_ok) {
    uint32_t s = toe_ipv6_pseudo_csum(src, dst, (uint32_t)len, TOE_IPPROTO_ICMPV6);
    if (toe_csum_fold(toe_csum_add32(s, toe_csum_partial(p, len, 0))) != 0)
      return -TOE_EBADMSG;
  }
  v->type = p[0];
  v->code = p[1];
  v->id = 0;
  v->seq = 0;
  v->mtu = 0;
  v->pointer = 0;
  switch (v->type) {
  case TOE_ICMPV6_ECHO_REQUEST:
  case TOE_ICMPV6_ECHO_REPLY:
    v->id = toe_load_be16(p + 4);
    v->seq = toe_load_be16(p + 6);
    break;
  case TOE_ICMPV6_PKT_TOO_BIG:
    v->mtu = toe_load_be32(p + 4);
    break;
  case TOE_ICMPV6_PARAM_PROBLEM:
    v->pointer = toe_load_be32(p + 4);
    break;
  default:
    break;
  }
  v->msg = p;
  v->len = len;
  v->body = p + TOE_ICMPV6_HLEN;
  v->body_len = len - TOE_ICMPV6_HLEN;
  return 0;
}

static void write_hdr(uint8_t *p, uint8_t type, uint8_t code, uint32_t rest)
{
  p[0] = type;
  p[1] = code;
  p[2] = 0;
  p[3] = 0;
  toe_store_be32(p + 4, rest);
}

int toe_icmpv6_write_echo(uint8_t *p, size_t cap, uint8_t type, uint16_t id, uint16_t seq,
                          const uint8_t *data, size_t data_len)
{
  if (cap < TOE_ICMPV6_HLEN || data_len > cap - TOE_ICMPV6_HLEN ||
      data_len > 0xffffu - TOE_IPV6_HLEN - TOE_ICMPV6_HLEN)
    return -TOE_EMSGSIZE;
  if (data_len && data != p + TOE_ICMPV6_HLEN)
    memmove(p + TOE_ICMPV6_HLEN, data, data_len);
  write_hdr(p, type, 0, (uint32_t)id << 16 | seq);
  return (int)(TOE_ICMPV6_HLEN + data_len);
}

size_t toe_icmpv6_quote_len(size_t invoking_len, size_t ext_len)
{
  size_t room = TOE_ICMPV6_MAX_QUOTE;
  room = ext_len >= room ? 0 : room - ext_len;
  return invoking_len < room ? invoking_len : room;
}

int toe_icmpv6_write_error(uint8_t *p, size_t cap, uint8_t type, uint8_t code, uint32_t param,
                           const uint8_t *invoking, size_t invoking_len)
{
  if (!toe_icmpv6_is_error(type))
    return -TOE_EINVAL;
  if (cap < TOE_ICMPV6_HLEN)
    return -TOE_EMSGSIZE;
  size_t q = toe_icmpv6_quote_len(invoking_len, 0);
  if (q > cap - TOE_ICMPV6_HLEN)
    q = cap - TOE_ICMPV6_HLEN;
  /* The quote may already sit where it goes (an error built in place). */
  if (q && invoking != p + TOE_ICMPV6_HLEN)
    memmove(p + TOE_ICMPV6_HLEN, invoking, q);
  /* The 4 bytes after the checksum: unused (zero) for destination unreachable and time exceeded
   * (RFC 4443 3.1, 3.3), the MTU (3.2) or the pointer (3.4). */
  uint32_t rest = type == TOE_ICMPV6_PKT_TOO_BIG || type == TOE_ICMPV6_PARAM_PROBLEM ? param : 0;
  write_hdr(p, type, code, rest);
  return (int)(TOE_ICMPV6_HLEN + q);
}

bool toe_icmpv6_error_allowed(uint8_t type, uint8_t code, const struct toe_ipv6_view *inv,
                              bool ll_group, int inv_icmp_type)
{
  /* (e.1) not about an error, (e.2) nor about a redirect. */
  if (inv_icmp_type >= 0 &&
      (toe_icmpv6_is_error((uint8_t)inv_icmp_type) || inv_icmp_type == TOE_ICMPV6_ND_REDIRECT))
    return false;
  /* (e.6) not to a source that does not uniquely identify a node. */
  if (toe_in6_is_unspecified(&inv->src) || toe_in6_is_multicast(&inv->src))
    return false;
  /* (e.3)-(e.5): group destinations get only Packet Too Big (for path MTU discovery on multicast)
   * and the code 2 an option with action 10 asks for. */
  if (toe_in6_is_multicast(&inv->dst) || ll_group)
    return type == TOE_ICMPV6_PKT_TOO_BIG ||
           (type == TOE_ICMPV6_PARAM_PROBLEM && code == TOE_IPV6_PP_OPTION);
  return true;
}

int toe_icmpv6_parse_quoted(struct toe_ipv6_view *ip, struct toe_ipv6_ext *ext,
                            const struct toe_icmpv6_view *v)
{
  /* The quoted header's Payload Length describes the original packet, of which only a prefix is
   * here: parse it against the largest packet it could describe, and let the walk stop at the
   * quote's end (-TOE_EAGAIN there means the quote is cut inside the headers). */
  if (toe_ipv6_parse(ip, v->body, v->body_len, TOE_IPV6_HLEN + 0xffffu) != 0)
    return -TOE_EINVAL;
  if (toe_ipv6_ext_walk(ext, ip, v->body, v->body_len) != 0)
    return -TOE_EINVAL;
  return 0;
}
