/*
 * The capture filter language (src/transport/capture_filter.c): what compiles, where a bad
 * expression is reported, and what matches, on hand-built Ethernet frames (ARP, ICMP, TCP, UDP,
 * an 802.1Q-tagged frame, a non-first fragment, truncated frames).
 */
#include "testlib.h"
#include "toe/errno.h"
#include "transport/capture_filter.h"

#include <string.h>

static size_t eth(uint8_t *f, uint16_t type, bool vlan)
{
  memset(f, 0, 14);
  f[0] = 0x02;
  f[6] = 0x02;
  f[11] = 1;
  size_t o = 12;
  if (vlan) {
    f[o++] = 0x81;
    f[o++] = 0x00;
    f[o++] = 0x00;
    f[o++] = 0x05;
  }
  f[o++] = (uint8_t)(type >> 8);
  f[o++] = (uint8_t)type;
  return o;
}

/* An IPv4 datagram src -> dst (last octets under 198.18.0.0) with proto and ports. */
static size_t ip4(uint8_t *f, bool vlan, uint8_t proto, uint8_t src, uint8_t dst, uint16_t sport,
                  uint16_t dport, uint16_t frag)
{
  size_t o = eth(f, 0x0800, vlan);
  uint8_t *h = f + o;
  memset(h, 0, 28);
  h[0] = 0x45;
  h[3] = 28;
  h[6] = (uint8_t)(frag >> 8);
  h[7] = (uint8_t)frag;
  h[8] = 64;
  h[9] = proto;
  h[12] = 198, h[13] = 18, h[15] = src;
  h[16] = 198, h[17] = 18, h[19] = dst;
  h[20] = (uint8_t)(sport >> 8), h[21] = (uint8_t)sport;
  h[22] = (uint8_t)(dport >> 8), h[23] = (uint8_t)dport;
  return o + 28;
}

static size_t arp(uint8_t *f, uint8_t spa, uint8_t tpa)
{
  size_t o = eth(f, 0x0806, false);
  uint8_t *a = f + o;
  memset(a, 0, 28);
  a[1] = 1;
  a[2] = 0x08;
  a[4] = 6;
  a[5] = 4;
  a[7] = 1;
  a[14] = 198, a[15] = 18, a[17] = spa;
  a[24] = 198, a[25] = 18, a[27] = tpa;
  return o + 28;
}

static bool m(const char *expr, const uint8_t *f, size_t len)
{
  struct toe_capf c;
  if (toe_capf_compile(&c, expr, strlen(expr), NULL, NULL) != 0) {
    testlib_fail(__FILE__, __LINE__, "\"%s\" does not compile", expr);
    return false;
  }
  return toe_capf_match(&c, f, len);
}

TEST(compiles_and_reports_errors)
{
  struct toe_capf c;
  const char *good[] = {"",
                        "  ",
                        "tcp",
                        "tcp port 80",
                        "tcp and port 80",
                        "not arp",
                        "!(udp || icmp)",
                        "host 198.18.0.2 and (port 7 or port 9)",
                        "src host 1.2.3.4 && dst port 65535",
                        "((((tcp))))"};
  for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
    if (toe_capf_compile(&c, good[i], strlen(good[i]), NULL, NULL) != 0)
      testlib_fail(__FILE__, __LINE__, "\"%s\" refused", good[i]);
  struct {
    const char *e;
    size_t pos;
  } bad[] = {
      {"tcp and", 7},        {"port", 4},          {"port 65536", 5},     {"host 1.2.3", 5},
      {"host 1.2.3.256", 5}, {"(tcp", 4},          {"tcp)", 3},           {"src tcp", 4},
      {"ipv6", 0},           {"tcp or or udp", 7}, {"host 1.2.3.4.5", 5}, {"port -1", 5},
      {"tcp & udp", 4},
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    size_t pos = 999;
    const char *msg = NULL;
    int rc = toe_capf_compile(&c, bad[i].e, strlen(bad[i].e), &pos, &msg);
    if (rc != -TOE_EINVAL || pos != bad[i].pos || !msg)
      testlib_fail(__FILE__, __LINE__, "\"%s\": rc %d pos %zu (want %zu)", bad[i].e, rc, pos,
                   bad[i].pos);
  }
  /* Bounded: nesting and length. */
  char deep[64];
  memset(deep, '(', 40);
  memcpy(deep + 40, "tcp", 4);
  CHECK_EQ(toe_capf_compile(&c, deep, strlen(deep), NULL, NULL), -TOE_EINVAL);
  char lng[1024] = "";
  for (int i = 0; i < 80; i++)
    strcat(lng, i ? " or tcp" : "tcp");
  CHECK_EQ(toe_capf_compile(&c, lng, strlen(lng), NULL, NULL), -TOE_EINVAL);
  /* Not NUL-terminated: only len bytes are read. */
  CHECK_EQ(toe_capf_compile(&c, "tcpXXXX", 3, NULL, NULL), 0);
  /* A failed compile leaves a filter that matches everything. */
  uint8_t f[64];
  size_t n = arp(f, 1, 2);
  CHECK_EQ(toe_capf_compile(&c, "bogus", 5, NULL, NULL), -TOE_EINVAL);
  CHECK(toe_capf_match(&c, f, n));
}

TEST(protocols_hosts_ports)
{
  uint8_t t[128], u[128], i[128], a[128];
  size_t tn = ip4(t, false, 6, 1, 2, 40000, 80, 0);
  size_t un = ip4(u, false, 17, 2, 1, 53000, 7, 0);
  size_t in = ip4(i, false, 1, 2, 1, 0x0800, 0, 0);
  size_t an = arp(a, 2, 1);
  CHECK(m("", t, tn));
  CHECK(m("tcp", t, tn) && !m("tcp", u, un) && !m("tcp", i, in) && !m("tcp", a, an));
  CHECK(m("udp", u, un) && !m("udp", t, tn));
  CHECK(m("icmp", i, in) && !m("icmp", t, tn));
  CHECK(m("arp", a, an) && !m("arp", t, tn));
  CHECK(m("ip", t, tn) && m("ip", i, in) && !m("ip", a, an));
  CHECK(m("port 80", t, tn) && m("port 40000", t, tn) && !m("port 81", t, tn));
  CHECK(m("dst port 80", t, tn) && !m("src port 80", t, tn));
  CHECK(m("src port 53000", u, un));
  CHECK(!m("port 2048", i, in)); /* ICMP has no ports */
  CHECK(m("host 198.18.0.1", t, tn) && m("host 198.18.0.2", t, tn) && !m("host 198.18.0.3", t, tn));
  CHECK(m("src host 198.18.0.1", t, tn) && !m("dst host 198.18.0.1", t, tn));
  /* ARP: sender and target protocol addresses */
  CHECK(m("src host 198.18.0.2", a, an) && m("dst host 198.18.0.1", a, an));
  /* Operators and precedence: not > and > or */
  CHECK(m("tcp port 80 or icmp", i, in));
  CHECK(!m("tcp and port 81 or udp", t, tn));
  CHECK(m("tcp and (port 81 or port 80)", t, tn));
  CHECK(m("not udp and not arp", t, tn) && !m("not (udp or tcp)", t, tn));
  CHECK(m("! ! tcp", t, tn));
}

TEST(vlan_fragments_truncation)
{
  uint8_t f[128];
  size_t n = ip4(f, true, 6, 1, 2, 1234, 80, 0);
  CHECK(m("tcp port 80", f, n)); /* one 802.1Q tag is looked through */
  /* A non-first fragment carries no transport header: no ports. */
  n = ip4(f, false, 17, 1, 2, 1234, 80, 185);
  CHECK(m("udp", f, n) && !m("port 80", f, n));
  /* Truncated frames: nothing is read beyond len. */
  n = ip4(f, false, 6, 1, 2, 1234, 80, 0);
  CHECK(!m("port 80", f, n - 5));
  CHECK(!m("tcp", f, 20));
  CHECK(!m("arp", f, 5));
  CHECK(m("not tcp", f, 13));
}

TEST_MAIN()
