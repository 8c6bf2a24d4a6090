/*
 * ICMPv6 (RFC 4443) views and builders, against packets built by scapy (ipv6_vectors.h).
 */
#include "ipv6_vectors.h"
#include "testlib.h"
#include "toe/errno.h"
#include "wire/icmpv6.h"
#include "wire/ipv6.h"

#include <stdint.h>
#include <string.h>

static struct toe_in6_addr addr_at(const uint8_t *p)
{
  struct toe_in6_addr a;
  memcpy(a.b, p, 16);
  return a;
}

/* Parses the IPv6 header of a scapy packet and its ICMPv6 message (right after the header). */
static int parse_pkt(struct toe_ipv6_view *ip, struct toe_icmpv6_view *v, const uint8_t *p,
                     size_t len)
{
  if (toe_ipv6_parse(ip, p, len, len) != 0 || ip->next_hdr != TOE_IPPROTO_ICMPV6)
    return -1;
  return toe_icmpv6_parse(v, p + 40, ip->payload_len, &ip->src, &ip->dst, false);
}

TEST(echo_scapy)
{
  struct toe_ipv6_view ip;
  struct toe_icmpv6_view v;
  REQUIRE(parse_pkt(&ip, &v, v_echo_req, sizeof v_echo_req) == 0);
  CHECK_EQ(v.type, TOE_ICMPV6_ECHO_REQUEST);
  CHECK_EQ(v.code, 0);
  CHECK_EQ(v.id, 0x1234);
  CHECK_EQ(v.seq, 7);
  CHECK_EQ(v.body_len, 11);
  CHECK_MEM(v.body, "toekit-ping", 11);
  CHECK(!toe_icmpv6_is_error(v.type));

  /* The reply, built from the request's fields, is scapy's reply byte for byte. */
  uint8_t m[64];
  int n =
      toe_icmpv6_write_echo(m, sizeof m, TOE_ICMPV6_ECHO_REPLY, v.id, v.seq, v.body, v.body_len);
  REQUIRE(n == 19);
  toe_icmpv6_finish(m, (size_t)n, &ip.dst, &ip.src);
  CHECK_MEM(m, v_echo_rep + 40, 19);
  /* Built in place of the request. */
  uint8_t q[sizeof v_echo_req];
  memcpy(q, v_echo_req, sizeof q);
  n = toe_icmpv6_write_echo(q + 40, sizeof q - 40, TOE_ICMPV6_ECHO_REPLY, 0x1234, 7, q + 48, 11);
  REQUIRE(n == 19);
  toe_icmpv6_finish(q + 40, 19, &ip.dst, &ip.src);
  CHECK_MEM(q + 40, v_echo_rep + 40, 19);
  CHECK_EQ(toe_icmpv6_csum(q + 40, 19, &ip.dst, &ip.src), toe_icmpv6_csum(m, 19, &ip.dst, &ip.src));
  /* No room. */
  CHECK_EQ(toe_icmpv6_write_echo(m, 18, TOE_ICMPV6_ECHO_REPLY, 1, 2, v.body, 11), -TOE_EMSGSIZE);
  CHECK_EQ(toe_icmpv6_write_echo(m, 7, TOE_ICMPV6_ECHO_REPLY, 1, 2, NULL, 0), -TOE_EMSGSIZE);
  CHECK_EQ(toe_icmpv6_write_echo(m, 8, TOE_ICMPV6_ECHO_REPLY, 1, 2, NULL, 0), 8);
}

TEST(checksum_checked)
{
  struct toe_ipv6_view ip;
  struct toe_icmpv6_view v;
  uint8_t p[sizeof v_echo_req];
  memcpy(p, v_echo_req, sizeof p);
  for (size_t i = 40; i < sizeof p; i++) {
    p[i] ^= 0x01;
    CHECK_EQ(parse_pkt(&ip, &v, p, sizeof p), -TOE_EBADMSG);
    /* The link verified it: not looked at. */
    CHECK_EQ(toe_icmpv6_parse(&v, p + 40, 19, &ip.src, &ip.dst, true), 0);
    p[i] ^= 0x01;
  }
  /* The addresses are covered too (pseudo-header). */
  p[23] ^= 0x04;
  CHECK_EQ(parse_pkt(&ip, &v, p, sizeof p), -TOE_EBADMSG);
  p[23] ^= 0x04;
  CHECK_EQ(parse_pkt(&ip, &v, p, sizeof p), 0);
  for (size_t n = 0; n < 8; n++)
    CHECK_EQ(toe_icmpv6_parse(&v, p + 40, n, &ip.src, &ip.dst, true), -TOE_EINVAL);
}

/* Builds an error about `inv` from B to A and compares it with scapy's `want` packet. */
static void check_error(const uint8_t *want, size_t want_len, uint8_t type, uint8_t code,
                        uint32_t param, const uint8_t *inv, size_t inv_len)
{
  struct toe_in6_addr a = addr_at(want + 24), b = addr_at(want + 8);
  static uint8_t m[2048];
  int n = toe_icmpv6_write_error(m, sizeof m, type, code, param, inv, inv_len);
  CHECK_EQ(n, (int)want_len - 40);
  if (n != (int)want_len - 40)
    return;
  toe_icmpv6_finish(m, (size_t)n, &b, &a);
  CHECK_MEM(m, want + 40, (size_t)n);
  struct toe_icmpv6_view v;
  CHECK_EQ(toe_icmpv6_parse(&v, m, (size_t)n, &b, &a, false), 0);
  CHECK_EQ(v.type, type);
  CHECK_EQ(v.code, code);
  CHECK(toe_icmpv6_is_error(type));
}

TEST(errors_scapy)
{
  /* 1400 bytes quoted as 1232: the error is exactly 1280 bytes (RFC 4443 2.4 (c)). */
  CHECK_EQ(sizeof v_ptb, 1280);
  check_error(v_ptb, sizeof v_ptb, TOE_ICMPV6_PKT_TOO_BIG, 0, 1280, v_invoking_big,
              sizeof v_invoking_big);
  check_error(v_port_unreach, sizeof v_port_unreach, TOE_ICMPV6_DEST_UNREACH,
              TOE_ICMPV6_PORT_UNREACH, 0, v_invoking_small, sizeof v_invoking_small);
  check_error(v_time_exceeded, sizeof v_time_exceeded, TOE_ICMPV6_TIME_EXCEEDED,
              TOE_ICMPV6_REASSEMBLY, 0, v_invoking_small, sizeof v_invoking_small);
  check_error(v_param_problem, sizeof v_param_problem, TOE_ICMPV6_PARAM_PROBLEM,
              TOE_IPV6_PP_NEXT_HEADER, 6, v_invoking_small, sizeof v_invoking_small);
  /* "param" is not written where the type has no such field. */
  check_error(v_port_unreach, sizeof v_port_unreach, TOE_ICMPV6_DEST_UNREACH,
              TOE_ICMPV6_PORT_UNREACH, 0xdeadbeef, v_invoking_small, sizeof v_invoking_small);

  struct toe_ipv6_view ip;
  struct toe_icmpv6_view v;
  REQUIRE(parse_pkt(&ip, &v, v_ptb, sizeof v_ptb) == 0);
  CHECK_EQ(v.mtu, 1280);
  REQUIRE(parse_pkt(&ip, &v, v_param_problem, sizeof v_param_problem) == 0);
  CHECK_EQ(v.pointer, 6);
}

TEST(error_quote_bounds)
{
  uint8_t m[300];
  /* A small buffer truncates the quote; the header always fits or nothing is written. */
  CHECK_EQ(toe_icmpv6_write_error(m, 100, 1, 4, 0, v_invoking_big, sizeof v_invoking_big), 100);
  CHECK_MEM(m + 8, v_invoking_big, 92);
  CHECK_EQ(toe_icmpv6_write_error(m, 7, 1, 4, 0, v_invoking_big, 10), -TOE_EMSGSIZE);
  CHECK_EQ(toe_icmpv6_write_error(m, 8, 1, 4, 0, v_invoking_big, 10), 8);
  CHECK_EQ(toe_icmpv6_write_error(m, sizeof m, TOE_ICMPV6_ECHO_REPLY, 0, 0, NULL, 0), -TOE_EINVAL);
  CHECK_EQ(toe_icmpv6_quote_len(5000, 0), 1232);
  CHECK_EQ(toe_icmpv6_quote_len(100, 0), 100);
  CHECK_EQ(toe_icmpv6_quote_len(5000, 8), 1224); /* behind an 8-byte extension header */
  CHECK_EQ(toe_icmpv6_quote_len(5000, 4000), 0);
  /* Built in place: the quote is already where it belongs. */
  memcpy(m + 8, v_invoking_small, sizeof v_invoking_small);
  CHECK_EQ(toe_icmpv6_write_error(m, sizeof m, 1, 4, 0, m + 8, sizeof v_invoking_small),
           8 + (int)sizeof v_invoking_small);
  CHECK_MEM(m + 8, v_invoking_small, sizeof v_invoking_small);
  CHECK_MEM(m, v_port_unreach + 40, 2); /* type and code */
}

TEST(error_allowed)
{
  struct toe_ipv6_view inv;
  REQUIRE(toe_ipv6_parse(&inv, v_invoking_small, sizeof v_invoking_small,
                         sizeof v_invoking_small) == 0);
  CHECK(toe_icmpv6_error_allowed(1, 4, &inv, false, -1));
  CHECK(toe_icmpv6_error_allowed(4, 0, &inv, false, TOE_ICMPV6_ECHO_REQUEST));
  /* Not about errors or redirects (e.1, e.2). */
  for (int t = 0; t < 128; t++)
    CHECK(!toe_icmpv6_error_allowed(1, 4, &inv, false, t));
  CHECK(!toe_icmpv6_error_allowed(4, 1, &inv, false, TOE_ICMPV6_ND_REDIRECT));
  /* Link-layer group delivery (e.4, e.5): only packet too big and code 2. */
  CHECK(!toe_icmpv6_error_allowed(1, 4, &inv, true, -1));
  CHECK(!toe_icmpv6_error_allowed(3, 0, &inv, true, -1));
  CHECK(!toe_icmpv6_error_allowed(4, 0, &inv, true, -1));
  CHECK(toe_icmpv6_error_allowed(2, 0, &inv, true, -1));
  CHECK(toe_icmpv6_error_allowed(4, 2, &inv, true, -1));
  /* Multicast destination (e.3): the same. */
  toe_in6_all_nodes(&inv.dst);
  CHECK(!toe_icmpv6_error_allowed(1, 4, &inv, false, -1));
  CHECK(toe_icmpv6_error_allowed(2, 0, &inv, false, -1));
  CHECK(toe_icmpv6_error_allowed(4, 2, &inv, false, -1));
  CHECK(!toe_icmpv6_error_allowed(4, 1, &inv, false, -1));
  /* Unspecified source (e.6): nothing, not even packet too big. */
  REQUIRE(toe_ipv6_parse(&inv, v_invoking_small, sizeof v_invoking_small,
                         sizeof v_invoking_small) == 0);
  memset(inv.src.b, 0, 16);
  CHECK(!toe_icmpv6_error_allowed(2, 0, &inv, false, -1));
  CHECK(!toe_icmpv6_error_allowed(4, 2, &inv, false, -1));
}

TEST(quoted_packet)
{
  struct toe_ipv6_view ip, in;
  struct toe_icmpv6_view v;
  struct toe_ipv6_ext x;
  REQUIRE(parse_pkt(&ip, &v, v_port_unreach, sizeof v_port_unreach) == 0);
  REQUIRE(toe_icmpv6_parse_quoted(&in, &x, &v) == 0);
  CHECK_MEM(in.src.b, v_invoking_small + 8, 16);
  CHECK_MEM(in.dst.b, v_invoking_small + 24, 16);
  CHECK_EQ(x.proto, 17);
  CHECK_EQ(x.offset, 40);
  /* A truncated quote (the too-big error quotes 1232 of 1400 bytes) still parses. */
  REQUIRE(parse_pkt(&ip, &v, v_ptb, sizeof v_ptb) == 0);
  REQUIRE(toe_icmpv6_parse_quoted(&in, &x, &v) == 0);
  CHECK_EQ(in.payload_len, 1360);
  CHECK_EQ(x.proto, 17);
  /* Cut inside the fixed header, or inside an extension header: refused. */
  v.body_len = 39;
  CHECK_EQ(toe_icmpv6_parse_quoted(&in, &x, &v), -TOE_EINVAL);
  static uint8_t m[200];
  int n = toe_icmpv6_write_error(m, sizeof m, 1, 4, 0, v_ext_chain, 50);
  REQUIRE(n == 58);
  REQUIRE(toe_icmpv6_parse(&v, m, (size_t)n, &ip.src, &ip.dst, true) == 0);
  CHECK_EQ(toe_icmpv6_parse_quoted(&in, &x, &v), -TOE_EINVAL);
  n = toe_icmpv6_write_error(m, sizeof m, 1, 4, 0, v_ext_chain, 64);
  REQUIRE(toe_icmpv6_parse(&v, m, (size_t)n, &ip.src, &ip.dst, true) == 0);
  CHECK_EQ(toe_icmpv6_parse_quoted(&in, &x, &v), 0);
  CHECK_EQ(x.proto, 17);
  CHECK_EQ(x.offset, 64);
}

TEST_MAIN()
