/*
 * Fuzzes the ICMPv6 parser (checksum against a byte loop), the quoted-packet parser, the Neighbor
 * Discovery parser with its prefix iterator, the MLD query parser, and the builders on what they
 * parsed. Input: one control byte (hop limit 255, 1 or from the input; fragmented; router alert;
 * source/destination classes), 32 bytes of source and destination address, then the ICMPv6
 * message, copied to a buffer of exactly its size.
 */
#include "toe/errno.h"
#include "wire/icmpv6.h"
#include "wire/ipv6.h"
#include "wire/mld.h"
#include "wire/ndp.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile unsigned sink;

/* RFC 4443 2.3 by bytes: pseudo-header then message, big-endian 16-bit words. */
static int ref_csum_ok(const uint8_t *src, const uint8_t *dst, const uint8_t *m, size_t n)
{
  uint32_t s = 0;
  for (int i = 0; i < 16; i += 2)
    s += (uint32_t)src[i] << 8 | src[i + 1];
  for (int i = 0; i < 16; i += 2)
    s += (uint32_t)dst[i] << 8 | dst[i + 1];
  s += (uint32_t)(n >> 16) + (uint32_t)(n & 0xffff) + 58;
  for (size_t i = 0; i < n; i++)
    s += (i & 1) ? m[i] : (uint32_t)m[i] << 8;
  while (s >> 16)
    s = (s & 0xffff) + (s >> 16);
  return s == 0xffff;
}

static void check_nd(const struct toe_ipv6_view *ip, const uint8_t *m, size_t n, bool frag)
{
  struct toe_nd_view v;
  int e = toe_nd_parse(&v, ip, m, n, frag);
  if (e != 0 && e != -TOE_EINVAL)
    abort();
  if (e != 0)
    return;
  if (frag || ip->hop_limit != 255 || m[1] != 0 || v.type < 133 || v.type > 137)
    abort();
  const uint8_t *lo = m, *hi = m + n;
  if ((v.sll && (v.sll < lo || v.sll + 6 > hi)) || (v.tll && (v.tll < lo || v.tll + 6 > hi)) ||
      (v.redirected && (v.redirected < lo || v.redirected + v.redirected_len > hi)) ||
      (v.nonce && (v.nonce < lo || v.nonce + v.nonce_len > hi)))
    abort();
  if ((v.type == TOE_ICMPV6_ND_NS || v.type == TOE_ICMPV6_ND_NA) && toe_in6_is_multicast(&v.target))
    abort();
  if ((v.type == TOE_ICMPV6_ND_RA || v.type == TOE_ICMPV6_ND_REDIRECT) &&
      !toe_in6_is_link_local(&ip->src))
    abort();
  /* The iterator finds exactly the prefixes the parse counted, and stops. */
  size_t cur = 0;
  unsigned k = 0;
  struct toe_nd_prefix pf;
  while (toe_nd_prefix_next(&v, &cur, &pf)) {
    if (++k > 255 || pf.len > 128)
      abort();
  }
  if (k != v.n_prefix || toe_nd_prefix_next(&v, &cur, &pf))
    abort();

  /* Rebuild NS and NA from the view and parse the result: the same target and addresses. */
  uint8_t b[64];
  struct toe_nd_view w;
  if (v.type == TOE_ICMPV6_ND_NA) {
    int len = toe_nd_write_na(b, sizeof b, &v.target, v.router, v.solicited, v.override, v.tll);
    if (len < 24 || toe_nd_parse(&w, ip, b, (size_t)len, false) != 0 ||
        !toe_in6_equal(&w.target, &v.target) || w.solicited != v.solicited ||
        (v.tll && memcmp(w.tll, v.tll, 6)))
      abort();
  } else if (v.type == TOE_ICMPV6_ND_NS) {
    int len = toe_nd_write_ns(b, sizeof b, &v.target, v.sll, v.nonce_len == 6 ? v.nonce : NULL);
    if (len < 24 || toe_nd_parse(&w, ip, b, (size_t)len, false) != 0 ||
        !toe_in6_equal(&w.target, &v.target))
      abort();
  }
  sink = v.mtu + v.router_lifetime + v.reachable_ms + v.retrans_ms + v.cur_hop_limit;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 33)
    return 0;
  uint8_t ctl = data[0];
  struct toe_ipv6_view ip;
  memset(&ip, 0, sizeof ip);
  memcpy(ip.src.b, data + 1, 16);
  memcpy(ip.dst.b, data + 17, 16);
  /* Steer the addresses towards the classes ND cares about. */
  if (ctl & 0x04)
    memset(ip.src.b, 0, 16);
  if (ctl & 0x08) {
    ip.src.b[0] = 0xfe;
    ip.src.b[1] = 0x80;
  }
  if (ctl & 0x10)
    toe_in6_solicited_node(&ip.dst, &ip.dst);
  ip.hop_limit = (ctl & 1) ? 255 : (ctl & 0x40) ? 1 : data[1];
  bool frag = (ctl & 2) != 0;
  data += 33;
  size -= 33;
  if (size > 0xffff)
    return 0;
  uint8_t *m = malloc(size ? size : 1);
  if (!m)
    return 0;
  memcpy(m, data, size);
  ip.payload_len = (uint16_t)size;

  struct toe_icmpv6_view v;
  int e = toe_icmpv6_parse(&v, m, size, &ip.src, &ip.dst, false);
  if (size < 8) {
    if (e != -TOE_EINVAL)
      abort();
  } else if (e != (ref_csum_ok(ip.src.b, ip.dst.b, m, size) ? 0 : -TOE_EBADMSG)) {
    abort();
  }
  /* Trusting the link, every message of 8 bytes or more parses. */
  e = toe_icmpv6_parse(&v, m, size, &ip.src, &ip.dst, true);
  if ((e == 0) != (size >= 8))
    abort();
  if (e == 0) {
    if (v.body != m + 8 || v.body_len != size - 8 || v.type != m[0] || v.code != m[1])
      abort();
    /* Recomputing the checksum makes the message verify. */
    uint8_t *c = malloc(size);
    if (!c)
      abort();
    memcpy(c, m, size);
    toe_icmpv6_finish(c, size, &ip.src, &ip.dst);
    if (toe_icmpv6_parse(&v, c, size, &ip.src, &ip.dst, false) != 0 ||
        memcmp(c + 4, m + 4, size - 4))
      abort();
    free(c);
    toe_icmpv6_parse(&v, m, size, &ip.src, &ip.dst, true);
    if (toe_icmpv6_is_error(v.type)) {
      struct toe_ipv6_view in;
      struct toe_ipv6_ext x;
      if (toe_icmpv6_parse_quoted(&in, &x, &v) == 0 && (x.offset < 40 || x.offset > v.body_len))
        abort();
    }
    /* An error about this message: bounded by 1280 and quoting its start. */
    static uint8_t err[1400];
    int n =
        toe_icmpv6_write_error(err, sizeof err, TOE_ICMPV6_PARAM_PROBLEM, ctl & 3, size, m, size);
    if (n < 8 || n > 1280 - 40 || memcmp(err + 8, m, (size_t)n - 8))
      abort();
    sink = toe_icmpv6_error_allowed(ctl & 3 ? 4 : 2, ctl >> 6, &ip, ctl & 0x20, v.type);
  }
  struct toe_mld_query q;
  if (toe_mld_parse_query(&q, &ip, ctl & 0x80, m, size) == 0) {
    if (size < 24 || m[0] != TOE_ICMPV6_MLD_QUERY || ip.hop_limit != 1 || !(ctl & 0x80) ||
        (q.v2 && q.sources + (size_t)q.n_sources * 16 > m + size) || (!q.v2 && size != 24))
      abort();
    sink = q.max_resp_ms + q.qqi_s + q.qrv;
  }
  if (size >= 4)
    check_nd(&ip, m, size, frag);
  else if (toe_nd_parse(&(struct toe_nd_view){0}, &ip, m, size, frag) != -TOE_EINVAL)
    abort();
  free(m);
  return 0;
}
