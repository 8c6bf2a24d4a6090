/*
 * Neighbor Discovery (RFC 4861) views, validity checks and builders, and the MLDv2 report (RFC
 * 3810), against packets built by scapy (ipv6_vectors.h).
 */
#include "ipv6_vectors.h"
#include "testlib.h"
#include "toe/errno.h"
#include "wire/icmpv6.h"
#include "wire/ipv6.h"
#include "wire/mld.h"
#include "wire/ndp.h"

#include <stdint.h>
#include <string.h>

static const uint8_t MAC_A[6] = {0x02, 0x00, 0x5e, 0x10, 0x00, 0x01};
static const uint8_t MAC_B[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};

/* A packet copy to mutate: IPv6 view, ND view and the bytes. */
struct pk {
  uint8_t b[256];
  size_t len;
  struct toe_ipv6_view ip;
  struct toe_nd_view nd;
};

static int load(struct pk *k, const uint8_t *p, size_t len)
{
  memcpy(k->b, p, len);
  k->len = len;
  return toe_ipv6_parse(&k->ip, k->b, len, len);
}

/* The ICMPv6 checksum of the scapy packet is right, and the ND checks pass or fail. */
static int nd(struct pk *k)
{
  struct toe_icmpv6_view v;
  if (toe_ipv6_parse(&k->ip, k->b, k->len, k->len) != 0)
    return 2000;
  if (toe_icmpv6_parse(&v, k->b + 40, k->ip.payload_len, &k->ip.src, &k->ip.dst, false) != 0)
    return 1000;
  return toe_nd_parse(&k->nd, &k->ip, k->b + 40, k->ip.payload_len, false);
}

/* Rewrites the checksum after a mutation of the message. */
static void fix(struct pk *k)
{
  toe_ipv6_parse(&k->ip, k->b, k->len, k->len);
  toe_icmpv6_finish(k->b + 40, k->ip.payload_len, &k->ip.src, &k->ip.dst);
}

/* Finishes a built message with the addresses of scapy's packet and compares. */
static void same_as(const uint8_t *want, size_t want_len, uint8_t *m, int n)
{
  CHECK_EQ(n, (int)want_len - 40);
  if (n != (int)want_len - 40)
    return;
  struct toe_in6_addr s, d;
  memcpy(s.b, want + 8, 16);
  memcpy(d.b, want + 24, 16);
  toe_icmpv6_finish(m, (size_t)n, &s, &d);
  CHECK_MEM(m, want + 40, (size_t)n);
}

TEST(ns_scapy)
{
  struct pk k;
  REQUIRE(load(&k, v_ns, sizeof v_ns) == 0);
  REQUIRE(nd(&k) == 0);
  CHECK_EQ(k.nd.type, TOE_ICMPV6_ND_NS);
  CHECK_MEM(k.nd.target.b, v_echo_req + 24, 16); /* 2001:db8::2 */
  REQUIRE(k.nd.sll != NULL);
  CHECK_MEM(k.nd.sll, MAC_A, 6);
  CHECK(k.nd.tll == NULL);
  CHECK(k.nd.nonce == NULL);
  uint8_t m[128];
  same_as(v_ns, sizeof v_ns, m, toe_nd_write_ns(m, sizeof m, &k.nd.target, MAC_A, NULL));
  /* The destination is the target's solicited-node group. */
  struct toe_in6_addr g;
  toe_in6_solicited_node(&g, &k.nd.target);
  CHECK(toe_in6_equal(&g, &k.ip.dst));

  /* DAD probe: from ::, a nonce (RFC 7527), no link-layer option. */
  REQUIRE(load(&k, v_ns_dad, sizeof v_ns_dad) == 0);
  REQUIRE(nd(&k) == 0);
  REQUIRE(k.nd.nonce != NULL);
  CHECK_EQ(k.nd.nonce_len, 6);
  CHECK_MEM(k.nd.nonce, "\x01\x02\x03\x04\x05\x06", 6);
  CHECK(k.nd.sll == NULL);
  same_as(v_ns_dad, sizeof v_ns_dad, m,
          toe_nd_write_ns(m, sizeof m, &k.nd.target, NULL,
                          (const uint8_t *)"\x01\x02\x03\x04\x05\x06"));
  CHECK_EQ(toe_nd_write_ns(m, 31, &k.nd.target, MAC_A, NULL), -TOE_EMSGSIZE);
}

TEST(ns_rules)
{
  struct pk k;
  /* DAD probe with a source link-layer option (7.1.1). */
  REQUIRE(load(&k, v_ns, sizeof v_ns) == 0);
  memset(k.b + 8, 0, 16);
  fix(&k);
  CHECK_EQ(nd(&k), -TOE_EINVAL);
  /* DAD probe to a unicast destination. */
  REQUIRE(load(&k, v_ns_dad, sizeof v_ns_dad) == 0);
  memcpy(k.b + 24, v_ns + 8, 16);
  fix(&k);
  CHECK_EQ(nd(&k), -TOE_EINVAL);
  /* Multicast target. */
  REQUIRE(load(&k, v_ns, sizeof v_ns) == 0);
  k.b[48] = 0xff;
  fix(&k);
  CHECK_EQ(nd(&k), -TOE_EINVAL);
  /* A link-layer option of the wrong size is ignored, the message kept. */
  REQUIRE(load(&k, v_ns, sizeof v_ns) == 0);
  uint8_t big[88];
  memcpy(big, v_ns, 64);
  memset(big + 64, 0, 24);
  big[64] = TOE_ND_OPT_SLLA;
  big[65] = 3;
  big[5] = 48; /* payload 24 + 24 */
  REQUIRE(load(&k, big, sizeof big) == 0);
  fix(&k);
  REQUIRE(nd(&k) == 0);
  CHECK(k.nd.sll == NULL);
}

TEST(na_scapy)
{
  struct pk k;
  uint8_t m[128];
  REQUIRE(load(&k, v_na, sizeof v_na) == 0);
  REQUIRE(nd(&k) == 0);
  CHECK_EQ(k.nd.type, TOE_ICMPV6_ND_NA);
  CHECK(!k.nd.router);
  CHECK(k.nd.solicited);
  CHECK(k.nd.override);
  REQUIRE(k.nd.tll != NULL);
  CHECK_MEM(k.nd.tll, MAC_B, 6);
  same_as(v_na, sizeof v_na, m,
          toe_nd_write_na(m, sizeof m, &k.nd.target, false, true, true, MAC_B));

  REQUIRE(load(&k, v_na_unsolicited, sizeof v_na_unsolicited) == 0);
  REQUIRE(nd(&k) == 0);
  CHECK(k.nd.router);
  CHECK(!k.nd.solicited);
  same_as(v_na_unsolicited, sizeof v_na_unsolicited, m,
          toe_nd_write_na(m, sizeof m, &k.nd.target, true, false, true, MAC_B));
  /* Solicited to a multicast destination (7.1.2). */
  k.b[44] |= 0x40;
  fix(&k);
  CHECK_EQ(nd(&k), -TOE_EINVAL);
  /* Multicast target. */
  REQUIRE(load(&k, v_na, sizeof v_na) == 0);
  k.b[48] = 0xff;
  fix(&k);
  CHECK_EQ(nd(&k), -TOE_EINVAL);
}

TEST(rs_scapy)
{
  struct pk k;
  uint8_t m[64];
  REQUIRE(load(&k, v_rs, sizeof v_rs) == 0);
  REQUIRE(nd(&k) == 0);
  CHECK_EQ(k.nd.type, TOE_ICMPV6_ND_RS);
  REQUIRE(k.nd.sll != NULL);
  CHECK_MEM(k.nd.sll, MAC_B, 6);
  same_as(v_rs, sizeof v_rs, m, toe_nd_write_rs(m, sizeof m, MAC_B));
  /* From :: with a link-layer option (6.1.1). */
  memset(k.b + 8, 0, 16);
  fix(&k);
  CHECK_EQ(nd(&k), -TOE_EINVAL);
  /* From :: without: fine. */
  int n = toe_nd_write_rs(k.b + 40, sizeof k.b - 40, NULL);
  REQUIRE(n == 8);
  k.b[5] = 8;
  k.len = 48;
  fix(&k);
  CHECK_EQ(nd(&k), 0);
}

TEST(ra_scapy)
{
  struct pk k;
  REQUIRE(load(&k, v_ra, sizeof v_ra) == 0);
  REQUIRE(nd(&k) == 0);
  CHECK_EQ(k.nd.type, TOE_ICMPV6_ND_RA);
  CHECK_EQ(k.nd.cur_hop_limit, 64);
  CHECK(!k.nd.managed);
  CHECK(k.nd.other);
  CHECK_EQ(k.nd.router_lifetime, 1800);
  CHECK_EQ(k.nd.reachable_ms, 30000);
  CHECK_EQ(k.nd.retrans_ms, 1000);
  CHECK_EQ(k.nd.mtu, 1500);
  REQUIRE(k.nd.sll != NULL);
  CHECK_MEM(k.nd.sll, MAC_A, 6);
  CHECK_EQ(k.nd.n_prefix, 2);
  struct toe_nd_prefix pf[3];
  size_t cur = 0;
  REQUIRE(toe_nd_prefix_next(&k.nd, &cur, &pf[0]));
  REQUIRE(toe_nd_prefix_next(&k.nd, &cur, &pf[1]));
  CHECK(!toe_nd_prefix_next(&k.nd, &cur, &pf[2]));
  CHECK(!toe_nd_prefix_next(&k.nd, &cur, &pf[2])); /* stays at the end */
  CHECK_EQ(pf[0].len, 64);
  CHECK(pf[0].on_link && pf[0].autonomous);
  CHECK_EQ(pf[0].valid, 86400);
  CHECK_EQ(pf[0].preferred, 14400);
  static const uint8_t p1[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 1};
  CHECK_MEM(pf[0].prefix.b, p1, 16);
  CHECK_EQ(pf[1].len, 48);
  CHECK(pf[1].on_link && !pf[1].autonomous);
  CHECK_EQ(pf[1].valid, 0xffffffffu);

  struct toe_nd_ra_fields f = {.cur_hop_limit = 64,
                               .other = true,
                               .router_lifetime = 1800,
                               .reachable_ms = 30000,
                               .retrans_ms = 1000,
                               .sll = MAC_A,
                               .mtu = 1500,
                               .prefixes = pf,
                               .n_prefixes = 2};
  uint8_t m[160];
  same_as(v_ra, sizeof v_ra, m, toe_nd_write_ra(m, sizeof m, &f));
  CHECK_EQ(toe_nd_write_ra(m, 95, &f), -TOE_EMSGSIZE);
  CHECK_EQ(toe_nd_write_ra(m, 10, &f), -TOE_EMSGSIZE);

  /* A prefix length over 128 makes the option ignored, by the count and by the iterator. */
  REQUIRE(load(&k, v_ra, sizeof v_ra) == 0);
  k.b[40 + 32 + 2] = 129; /* the first prefix option follows SLLA and MTU */
  fix(&k);
  REQUIRE(nd(&k) == 0);
  CHECK_EQ(k.nd.n_prefix, 1);
  cur = 0;
  REQUIRE(toe_nd_prefix_next(&k.nd, &cur, &pf[0]));
  CHECK_EQ(pf[0].len, 48);
  CHECK(!toe_nd_prefix_next(&k.nd, &cur, &pf[0]));

  /* From a global address (6.1.2). */
  REQUIRE(load(&k, v_ra, sizeof v_ra) == 0);
  memcpy(k.b + 8, v_ns + 8, 16);
  fix(&k);
  CHECK_EQ(nd(&k), -TOE_EINVAL);
}

TEST(redirect_scapy)
{
  struct pk k;
  REQUIRE(load(&k, v_redirect, sizeof v_redirect) == 0);
  REQUIRE(nd(&k) == 0);
  CHECK_EQ(k.nd.type, TOE_ICMPV6_ND_REDIRECT);
  CHECK_EQ(k.nd.target.b[0], 0xfe);
  CHECK_EQ(k.nd.target.b[15], 2);
  CHECK_MEM(k.nd.dest.b, v_redirect_invoking + 24, 16);
  REQUIRE(k.nd.tll != NULL);
  CHECK_MEM(k.nd.tll, MAC_B, 6);
  REQUIRE(k.nd.redirected != NULL);
  CHECK_EQ(k.nd.redirected_len, 56);
  CHECK_MEM(k.nd.redirected, v_redirect_invoking, sizeof v_redirect_invoking);
  uint8_t m[1400];
  same_as(v_redirect, sizeof v_redirect, m,
          toe_nd_write_redirect(m, sizeof m, &k.nd.target, &k.nd.dest, MAC_B, v_redirect_invoking,
                                sizeof v_redirect_invoking));
  /* A 1400-byte invoking packet: the redirect stays within 1280 bytes of IPv6 packet, its option
   * whole 8-byte units. */
  int n = toe_nd_write_redirect(m, sizeof m, &k.nd.target, &k.nd.dest, MAC_B, v_invoking_big,
                                sizeof v_invoking_big);
  CHECK(n > 1200 && n + 40 <= 1280);
  CHECK_EQ(m[48], TOE_ND_OPT_REDIRECTED);
  CHECK_EQ(m[49] * 8 + 48, n);
  CHECK_MEM(m + 56, v_invoking_big, (size_t)n - 56);
  /* No room for the quote: none. */
  CHECK_EQ(toe_nd_write_redirect(m, 48, &k.nd.target, &k.nd.dest, MAC_B, v_invoking_big, 100), 48);
  CHECK_EQ(toe_nd_write_redirect(m, 47, &k.nd.target, &k.nd.dest, MAC_B, NULL, 0), -TOE_EMSGSIZE);

  /* 8.1: source not link-local; destination multicast; target neither link-local nor dest. */
  REQUIRE(load(&k, v_redirect, sizeof v_redirect) == 0);
  memcpy(k.b + 8, v_ns + 8, 16);
  fix(&k);
  CHECK_EQ(nd(&k), -TOE_EINVAL);
  REQUIRE(load(&k, v_redirect, sizeof v_redirect) == 0);
  k.b[64] = 0xff;
  fix(&k);
  CHECK_EQ(nd(&k), -TOE_EINVAL);
  REQUIRE(load(&k, v_redirect, sizeof v_redirect) == 0);
  k.b[48] = 0x20;
  k.b[49] = 0x01;
  fix(&k);
  CHECK_EQ(nd(&k), -TOE_EINVAL);
  /* Target equal to the destination: the destination is on-link; fine. */
  memcpy(k.b + 48, k.b + 64, 16);
  fix(&k);
  CHECK_EQ(nd(&k), 0);
}

TEST(common_rules)
{
  const struct {
    const uint8_t *p;
    size_t len;
  } all[] = {{v_ns, sizeof v_ns}, {v_ns_dad, sizeof v_ns_dad}, {v_na, sizeof v_na},
             {v_rs, sizeof v_rs}, {v_ra, sizeof v_ra},         {v_redirect, sizeof v_redirect}};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
    struct pk k;
    REQUIRE(load(&k, all[i].p, all[i].len) == 0);
    REQUIRE(nd(&k) == 0);
    /* Hop limit below 255: could come from off-link. */
    k.b[7] = 254;
    CHECK_EQ(nd(&k), -TOE_EINVAL);
    k.b[7] = 255;
    /* Code not 0. */
    k.b[41] = 1;
    fix(&k);
    CHECK_EQ(nd(&k), -TOE_EINVAL);
    k.b[41] = 0;
    fix(&k);
    REQUIRE(nd(&k) == 0);
    /* Fragmented (RFC 6980 5). */
    CHECK_EQ(toe_nd_parse(&k.nd, &k.ip, k.b + 40, k.ip.payload_len, true), -TOE_EINVAL);
    /* Every truncation: either the fixed part is missing or the options stop mid-option. */
    for (size_t n = 0; n < k.ip.payload_len; n++) {
      int e = toe_nd_parse(&k.nd, &k.ip, k.b + 40, n, false);
      if ((n - 8) % 8 == 0 && n >= 8) /* may end on an option boundary */
        continue;
      CHECK_EQ(e, -TOE_EINVAL);
    }
    /* The last option with length 0, or longer than what is left. */
    size_t fixed = k.b[40] == TOE_ICMPV6_ND_RS         ? 8
                   : k.b[40] == TOE_ICMPV6_ND_RA       ? 16
                   : k.b[40] == TOE_ICMPV6_ND_REDIRECT ? 40
                                                       : 24;
    size_t last = fixed;
    for (size_t o = fixed; o < k.ip.payload_len; o += (size_t)k.b[40 + o + 1] * 8)
      last = o;
    uint8_t olen = k.b[40 + last + 1];
    k.b[40 + last + 1] = 0;
    fix(&k);
    CHECK_EQ(nd(&k), -TOE_EINVAL);
    k.b[40 + last + 1] = (uint8_t)(olen + 1);
    fix(&k);
    CHECK_EQ(nd(&k), -TOE_EINVAL);
    k.b[40 + last + 1] = olen;
    fix(&k);
    CHECK_EQ(nd(&k), 0);
  }
  /* Not an ND type. */
  struct toe_ipv6_view ip;
  REQUIRE(toe_ipv6_parse(&ip, v_echo_req, sizeof v_echo_req, sizeof v_echo_req) == 0);
  ip.hop_limit = 255;
  struct toe_nd_view v;
  CHECK_EQ(toe_nd_parse(&v, &ip, v_echo_req + 40, 19, false), -TOE_EINVAL);
}

TEST(mld2_report_scapy)
{
  struct toe_in6_addr src, g;
  memcpy(src.b, v_mld2_report + 8, 16);
  memcpy(g.b, v_nsma_b, 16);
  uint8_t p[200];
  int n = toe_mld2_build_packet(p, sizeof p, &src, TOE_MLD2_CHANGE_TO_EXCLUDE, &g, 1);
  REQUIRE(n == (int)sizeof v_mld2_report);
  CHECK_MEM(p, v_mld2_report, sizeof v_mld2_report);
  /* It walks as hop-by-hop with Router Alert 0 (MLD), then ICMPv6, checksum right. */
  struct toe_ipv6_view ip;
  struct toe_ipv6_ext x;
  REQUIRE(toe_ipv6_parse(&ip, p, (size_t)n, (size_t)n) == 0);
  CHECK_EQ(ip.hop_limit, 1);
  REQUIRE(toe_ipv6_ext_walk(&x, &ip, p, (size_t)n) == 0);
  CHECK(x.router_alert);
  CHECK_EQ(x.ra_value, 0);
  CHECK_EQ(x.proto, TOE_IPPROTO_ICMPV6);
  struct toe_icmpv6_view v;
  CHECK_EQ(toe_icmpv6_parse(&v, p + x.offset, (size_t)n - x.offset, &ip.src, &ip.dst, false), 0);
  CHECK_EQ(v.type, TOE_ICMPV6_MLD2_REPORT);
  /* Two groups; sizes; no room. */
  struct toe_in6_addr gs[2] = {g, g};
  gs[1].b[15] ^= 1;
  CHECK_EQ(toe_mld2_write_report(p, sizeof p, TOE_MLD2_MODE_IS_EXCLUDE, gs, 2), 48);
  CHECK_EQ(p[7], 2);
  CHECK_EQ(p[8], TOE_MLD2_MODE_IS_EXCLUDE);
  CHECK_MEM(p + 32, gs[1].b, 16);
  CHECK_EQ(toe_mld2_write_report(p, 47, TOE_MLD2_MODE_IS_EXCLUDE, gs, 2), -TOE_EMSGSIZE);
  CHECK_EQ(toe_mld2_build_packet(p, 75, &src, 4, &g, 1), -TOE_EMSGSIZE);
  CHECK_EQ(toe_mld2_build_packet(p, 47, &src, 4, &g, 0), -TOE_EMSGSIZE);
}

/* Parses a scapy query packet through the walk and the ICMPv6 checksum, then the query. */
static int query(struct toe_mld_query *q, uint8_t *p, size_t len)
{
  struct toe_ipv6_view ip;
  struct toe_ipv6_ext x;
  struct toe_icmpv6_view v;
  if (toe_ipv6_parse(&ip, p, len, len) != 0 || toe_ipv6_ext_walk(&x, &ip, p, len) != 0 ||
      x.proto != TOE_IPPROTO_ICMPV6 ||
      toe_icmpv6_parse(&v, p + x.offset, len - x.offset, &ip.src, &ip.dst, false) != 0)
    return 1000;
  return toe_mld_parse_query(q, &ip, x.router_alert && x.ra_value == 0, p + x.offset,
                             len - x.offset);
}

TEST(mld_query_scapy)
{
  struct toe_mld_query q;
  uint8_t p[128];
  memcpy(p, v_mld2_query, sizeof v_mld2_query);
  REQUIRE(query(&q, p, sizeof v_mld2_query) == 0);
  CHECK(q.v2);
  CHECK(toe_in6_is_unspecified(&q.group));
  CHECK_EQ(q.max_resp_ms, (0xa12 | 0x1000) << 3); /* exponent 0, mantissa 0xa12 */
  CHECK_EQ(q.qqi_s, (0xc | 0x10) << 4);           /* exponent 1, mantissa 0xc */
  CHECK_EQ(q.qrv, 2);
  CHECK(!q.suppress);
  CHECK_EQ(q.n_sources, 0);

  memcpy(p, v_mld2_query_src, sizeof v_mld2_query_src);
  REQUIRE(query(&q, p, sizeof v_mld2_query_src) == 0);
  CHECK_MEM(q.group.b, v_nsma_b, 16);
  CHECK_EQ(q.max_resp_ms, 1000);
  CHECK_EQ(q.qqi_s, 125);
  CHECK_EQ(q.qrv, 3);
  CHECK(q.suppress);
  REQUIRE(q.n_sources == 2);
  CHECK_EQ(q.sources[15], 7);
  CHECK_EQ(q.sources[31], 8);

  memcpy(p, v_mld1_query, sizeof v_mld1_query);
  REQUIRE(query(&q, p, sizeof v_mld1_query) == 0);
  CHECK(!q.v2);
  CHECK_EQ(q.max_resp_ms, 10000);

  /* Refused: hop limit 2, a global source, no router alert, a unicast group, a source count
   * past the end, a length between v1 and v2. */
  struct toe_ipv6_view ip;
  REQUIRE(toe_ipv6_parse(&ip, v_mld2_query_src, sizeof v_mld2_query_src, sizeof v_mld2_query_src) ==
          0);
  const uint8_t *m = v_mld2_query_src + 48;
  size_t n = sizeof v_mld2_query_src - 48;
  CHECK_EQ(toe_mld_parse_query(&q, &ip, true, m, n), 0);
  CHECK_EQ(toe_mld_parse_query(&q, &ip, false, m, n), -TOE_EINVAL);
  ip.hop_limit = 2;
  CHECK_EQ(toe_mld_parse_query(&q, &ip, true, m, n), -TOE_EINVAL);
  ip.hop_limit = 1;
  ip.src.b[0] = 0x20;
  CHECK_EQ(toe_mld_parse_query(&q, &ip, true, m, n), -TOE_EINVAL);
  ip.src.b[0] = 0xfe;
  CHECK_EQ(toe_mld_parse_query(&q, &ip, true, m, n - 1), -TOE_EINVAL);
  for (size_t k = 25; k < 28; k++)
    CHECK_EQ(toe_mld_parse_query(&q, &ip, true, m, k), -TOE_EINVAL);
  CHECK_EQ(toe_mld_parse_query(&q, &ip, true, m, 23), -TOE_EINVAL);
  memcpy(p, m, n);
  p[8] = 0x20; /* group 2001:... */
  CHECK_EQ(toe_mld_parse_query(&q, &ip, true, p, n), -TOE_EINVAL);
  p[8] = m[8];
  p[0] = TOE_ICMPV6_MLD2_REPORT;
  CHECK_EQ(toe_mld_parse_query(&q, &ip, true, p, n), -TOE_EINVAL);
}

TEST_MAIN()
