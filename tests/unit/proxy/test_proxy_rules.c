/*
 * toe-proxyd's rules (src/proxy/px_rules.c, docs/interception.md "toe-proxyd"): the grammar, and
 * the selection: some include matches and no exclude does; loopback never.
 */
#include "proxy/proxyd.h"
#include "testlib.h"

#include <arpa/inet.h>
#include <errno.h>

static uint32_t ip(const char *s)
{
  struct in_addr a;
  inet_pton(AF_INET, s, &a);
  return a.s_addr;
}

static struct toe_rule parse_ok(const char *text)
{
  struct toe_rule r;
  char err[128] = "";
  int rc = px_rule_parse(text, &r, err, sizeof err);
  if (rc != 0)
    testlib_fail(__FILE__, __LINE__, "'%s' refused: %s", text, err);
  return r;
}

TEST(grammar)
{
  struct toe_rule r = parse_ok("tcp:198.18.0.0/15:80");
  CHECK_EQ(r.kinds, PX_TCP);
  CHECK_EQ(r.net, 0xc6120000u);
  CHECK_EQ(r.len, 15);
  CHECK_EQ(r.port_lo, 80);
  CHECK_EQ(r.port_hi, 80);
  r = parse_ok("udp:198.19.7.7/15:5000-5100"); /* host bits are masked off */
  CHECK_EQ(r.kinds, PX_UDP);
  CHECK_EQ(r.net, 0xc6120000u);
  CHECK_EQ(r.port_lo, 5000);
  CHECK_EQ(r.port_hi, 5100);
  r = parse_ok("*");
  CHECK_EQ(r.kinds, PX_TCP | PX_UDP);
  CHECK_EQ(r.len, 0);
  CHECK_EQ(r.port_lo, 0);
  CHECK_EQ(r.port_hi, 65535);
  r = parse_ok("tcp:10.1.2.3");
  CHECK_EQ(r.len, 32);
  CHECK_EQ(r.port_hi, 65535);
  r = parse_ok("udp:*:*");
  CHECK_EQ(r.len, 0);
  char s[64];
  px_rule_str(
      &(struct toe_rule){
          .kinds = PX_TCP, .net = 0xc6120000u, .len = 15, .port_lo = 80, .port_hi = 90},
      s, sizeof s);
  CHECK(strcmp(s, "tcp:198.18.0.0/15:80-90") == 0);

  const char *bad[] = {"",
                       "icmp:*",
                       "tcp:",
                       "tcp:1.2.3",
                       "tcp:1.2.3.4/33",
                       "tcp:256.0.0.1",
                       "tcp:*:70000",
                       "tcp:*:90-80",
                       "tcp:*:8x",
                       "!tcp:*",
                       "listen:*:80",
                       "tcp:1.2.3.4:80:1",
                       "tcp:[2001:db8::]/32:443"}; /* IPv6: not carried by the proxy yet */
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    struct toe_rule x;
    char err[128] = "";
    CHECK_EQ(px_rule_parse(bad[i], &x, err, sizeof err), -EINVAL);
    CHECK(strstr(err, "bad rule") != NULL);
  }
}

TEST(selection)
{
  struct px_rules rs;
  memset(&rs, 0, sizeof rs);
  rs.inc[rs.ninc++] = parse_ok("tcp:198.18.0.0/15:80");
  rs.inc[rs.ninc++] = parse_ok("udp:198.18.0.0/15:*");
  rs.exc[rs.nexc++] = parse_ok("tcp:198.18.0.9/32:*");
  CHECK(px_rules_select(&rs, PX_TCP, ip("198.18.0.2"), 80));
  CHECK(px_rules_select(&rs, PX_TCP, ip("198.19.255.255"), 80));
  CHECK(!px_rules_select(&rs, PX_TCP, ip("198.18.0.2"), 81)); /* port */
  CHECK(!px_rules_select(&rs, PX_TCP, ip("198.20.0.2"), 80)); /* network */
  CHECK(!px_rules_select(&rs, PX_TCP, ip("198.18.0.9"), 80)); /* exclude wins */
  CHECK(px_rules_select(&rs, PX_UDP, ip("198.18.0.9"), 53));  /* the exclude is TCP only */
  CHECK(!px_rules_select(&rs, PX_UDP, ip("10.0.0.1"), 53));
  /* Loopback is never intercepted, whatever the rules say. */
  rs.inc[rs.ninc++] = parse_ok("*:*:*");
  CHECK(px_rules_select(&rs, PX_TCP, ip("8.8.8.8"), 443));
  CHECK(!px_rules_select(&rs, PX_TCP, ip("127.0.0.1"), 80));
  CHECK(!px_rules_select(&rs, PX_UDP, ip("127.1.2.3"), 53));
}

TEST_MAIN()
