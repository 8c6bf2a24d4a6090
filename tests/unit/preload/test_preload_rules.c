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

TEST_MAIN()
