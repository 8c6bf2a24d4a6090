/*
 * libtoe-preload's offload rules (src/preload/pl_rules.c over src/rules/toe_rules.c,
 * docs/interception.md): the list syntax (separators, comments, malformed rules skipped and
 * counted), the '!' and `listen` kinds, and the first-match decision.
 */
#define _GNU_SOURCE /* preload.h declares the GNU socket calls it interposes */

#include "preload/preload.h"
#include "testlib.h"

#include <arpa/inet.h>

static uint32_t ip(const char *s)
{
  struct in_addr a;
  inet_pton(AF_INET, s, &a);
  return a.s_addr;
}

TEST(list_syntax)
{
  struct pl_rules rs;
  memset(&rs, 0, sizeof rs);
  char err[128] = "";
  CHECK_EQ(pl_rules_parse(&rs, "tcp:198.18.0.0/15:80, udp;listen:*:8080 # a comment, tcp\n*", err,
                          sizeof err),
           0);
  REQUIRE(rs.n == 4);
  CHECK_EQ(rs.r[0].kinds, PL_K_TCP);
  CHECK_EQ(rs.r[0].net, 0xc6120000u);
  CHECK_EQ(rs.r[0].len, 15);
  CHECK_EQ(rs.r[0].port_lo, 80);
  CHECK_EQ(rs.r[0].port_hi, 80);
  CHECK_EQ(rs.r[1].kinds, PL_K_UDP);
  CHECK_EQ(rs.r[1].port_hi, 65535);
  CHECK_EQ(rs.r[2].kinds, PL_K_LISTEN);
  CHECK_EQ(rs.r[2].port_lo, 8080);
  CHECK_EQ(rs.r[3].kinds, PL_K_TCP | PL_K_UDP | PL_K_LISTEN);
  CHECK(!rs.r[3].negated);

  /* Malformed rules are skipped and counted; the first is named. */
  memset(&rs, 0, sizeof rs);
  CHECK_EQ(pl_rules_parse(&rs, "icmp:* !tcp:1.2.3.4 tcp:*:90-80 tcp:1.2.3", err, sizeof err), 3);
  CHECK(strcmp(err, "bad rule 'icmp:*'") == 0);
  REQUIRE(rs.n == 1);
  CHECK(rs.r[0].negated);
  CHECK_EQ(rs.r[0].net, 0x01020304u);
  CHECK_EQ(rs.r[0].len, 32);
}

TEST(first_match_decides)
{
  struct pl_rules rs;
  memset(&rs, 0, sizeof rs);
  char err[128] = "";
  CHECK_EQ(
      pl_rules_parse(&rs, "!tcp:198.18.0.9 tcp:198.18.0.0/15 listen:*:8000-8099", err, sizeof err),
      0);
  CHECK(pl_rules_match(&rs, PL_K_TCP, ip("198.18.0.2"), 80));
  CHECK(!pl_rules_match(&rs, PL_K_TCP, ip("198.18.0.9"), 80)); /* the '!' comes first */
  CHECK(!pl_rules_match(&rs, PL_K_TCP, ip("198.20.0.2"), 80)); /* no rule: the kernel */
  CHECK(!pl_rules_match(&rs, PL_K_UDP, ip("198.18.0.2"), 53)); /* kinds are separate */
  CHECK(pl_rules_match(&rs, PL_K_LISTEN, ip("0.0.0.0"), 8080));
  CHECK(!pl_rules_match(&rs, PL_K_LISTEN, ip("0.0.0.0"), 8100));
}

static const uint8_t *ip6(const char *s)
{
  static uint8_t a[4][16];
  static int k;
  uint8_t *r = a[k++ & 3];
  CHECK_EQ(inet_pton(AF_INET6, s, r), 1);
  return r;
}

/* IPv6 rules: '[' addr ']' with an optional prefix and ports; IPv4 rules cover the v4-mapped
 * addresses of their network (a dual-stack socket's IPv4 peers), '*' every address, and an IPv6
 * rule no IPv4 address. */
TEST(ipv6_rules)
{
  struct pl_rules rs;
  memset(&rs, 0, sizeof rs);
  char err[128] = "";
  CHECK_EQ(pl_rules_parse(&rs,
                          "!tcp:[2001:db8::9] tcp:[2001:db8::]/32:80-81 udp:[2001:db8:1::1]:53 "
                          "listen:[::]/0:8080 tcp:198.18.0.0/15",
                          err, sizeof err),
           0);
  REQUIRE(rs.n == 5);
  CHECK(rs.r[0].v6 && rs.r[0].negated);
  CHECK_EQ(rs.r[0].len6, 128);
  CHECK_EQ(rs.r[1].len6, 32);
  CHECK_EQ(rs.r[1].port_lo, 80);
  CHECK_EQ(rs.r[1].port_hi, 81);
  CHECK_MEM(rs.r[1].net6, ip6("2001:db8::"), 16);
  CHECK_EQ(rs.r[2].port_lo, 53);
  CHECK_EQ(rs.r[3].len6, 0);
  CHECK(!rs.r[4].v6);

  CHECK(pl_rules_match6(&rs, PL_K_TCP, ip6("2001:db8:5::1"), 80));
  CHECK(pl_rules_match6(&rs, PL_K_TCP, ip6("2001:db8::1"), 81));
  CHECK(!pl_rules_match6(&rs, PL_K_TCP, ip6("2001:db8::9"), 80)); /* the '!' comes first */
  CHECK(!pl_rules_match6(&rs, PL_K_TCP, ip6("2001:db8::1"), 82)); /* port outside */
  CHECK(!pl_rules_match6(&rs, PL_K_TCP, ip6("2001:db9::1"), 80)); /* prefix outside */
  CHECK(pl_rules_match6(&rs, PL_K_UDP, ip6("2001:db8:1::1"), 53));
  CHECK(!pl_rules_match6(&rs, PL_K_UDP, ip6("2001:db8:1::2"), 53));
  CHECK(pl_rules_match6(&rs, PL_K_LISTEN, ip6("::"), 8080));
  CHECK(pl_rules_match6(&rs, PL_K_LISTEN, ip6("2001:db8::2"), 8080));
  /* a dual-stack socket's IPv4 peer (v4-mapped) matches the IPv4 rule, other IPv6 does not */
  CHECK(pl_rules_match6(&rs, PL_K_TCP, ip6("::ffff:198.18.0.2"), 443));
  CHECK(!pl_rules_match6(&rs, PL_K_TCP, ip6("::ffff:198.20.0.2"), 443));
  CHECK(!pl_rules_match6(&rs, PL_K_TCP, ip6("::c612:2"), 443)); /* IPv4-compatible is not mapped */
  /* an IPv6 rule never matches an IPv4 address (not even [::]/0) */
  CHECK(!pl_rules_match(&rs, PL_K_LISTEN, ip("0.0.0.0"), 8080));
  CHECK(pl_rules_match(&rs, PL_K_TCP, ip("198.18.0.2"), 80));
  /* '*' covers both families */
  memset(&rs, 0, sizeof rs);
  CHECK_EQ(pl_rules_parse(&rs, "udp:*:53", err, sizeof err), 0);
  CHECK(pl_rules_match6(&rs, PL_K_UDP, ip6("2001:db8::1"), 53));
  CHECK(pl_rules_match(&rs, PL_K_UDP, ip("198.18.0.1"), 53));

  /* Malformed IPv6 rules are skipped and counted. */
  memset(&rs, 0, sizeof rs);
  CHECK_EQ(pl_rules_parse(&rs,
                          "tcp:[2001:db8::/32 tcp:[2001:db8::]/129 tcp:[] tcp:[1.2.3.4] "
                          "tcp:[2001:db8::1]x tcp:[2001:db8::1]:70000 tcp:2001:db8::1 "
                          "tcp:[2001:db8::1]/64:443",
                          err, sizeof err),
           7);
  CHECK(strcmp(err, "bad rule 'tcp:[2001:db8::/32'") == 0);
  REQUIRE(rs.n == 1);
  CHECK_EQ(rs.r[0].len6, 64);
  CHECK_MEM(rs.r[0].net6, ip6("2001:db8::"), 16); /* masked */
  CHECK_EQ(rs.r[0].port_lo, 443);
}

TEST_MAIN()
