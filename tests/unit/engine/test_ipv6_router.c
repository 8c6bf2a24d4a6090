/*
 * Router discovery, SLAAC and redirects through the engine harness (RFC 4861 6.3.4, 8.3; RFC 4862
 * 5.5.3): an RA gives a default router, an on-link prefix, the link MTU, the hop limit and a
 * SLAAC address (modified EUI-64 of the MAC); an off-link peer is then reached through the router
 * (fragmented to the RA's MTU); a router lifetime of 0 withdraws it; the address ends with its
 * valid lifetime; DAD runs for it when enabled; redirects are taken only from the current
 * first-hop router. Frames are built by hand with a reference checksum.
 */
#include "engine/stack.h"
#include "harness.h"
#include "testlib.h"

#include <string.h>

static const uint8_t ROUTER_LL[16] = {0xfe, 0x80, [15] = 0xfe};
static const uint8_t OTHER_LL[16] = {0xfe, 0x80, [15] = 0x77};
static const uint8_t ROUTER_MAC[6] = {0x02, 0, 0, 0, 0, 0xfe};
static const uint8_t OTHER_MAC[6] = {0x02, 0, 0, 0, 0, 0x77};
static const uint8_t ALL_NODES[16] = {0xff, 0x02, [15] = 1};
static const uint8_t ALL_NODES_MAC[6] = {0x33, 0x33, 0, 0, 0, 1};
/* 2001:db8:1::/64 and our SLAAC address in it: the modified EUI-64 of 02:00:00:00:00:01. */
static const uint8_t PREFIX[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 1};
static const uint8_t SLAAC[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0xff, 0xfe, 0, 0, 1};
static const uint8_t FAR[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0x99, [15] = 5};

static const struct toe_counters *ctr(const struct harness *h)
{
  return toe_stack_counters(h->st);
}

static void setup(struct harness *h, uint8_t dad)
{
  struct toe_config cfg;
  h_default_cfg(&cfg);
  cfg.ipv6 = 1;
  cfg.addr6_count = 0; /* only the link-local address: the rest comes from RAs */
  cfg.dad_transmits = dad;
  h_init_cfg(h, &cfg);
  toe_stack_start(h->st, h->now);
  h_advance(h, TOE_SEC(3)); /* DAD of the link-local address, if any */
  h_clear(h);
}

static uint32_t pseudo6(const uint8_t *src, const uint8_t *dst, uint32_t len, uint8_t nh)
{
  uint32_t s = 0;
  for (int i = 0; i < 16; i += 2)
    s += (uint32_t)(src[i] << 8 | src[i + 1]) + (uint32_t)(dst[i] << 8 | dst[i + 1]);
  return s + (len >> 16) + (len & 0xffff) + nh;
}

static size_t build6(uint8_t *out, const uint8_t *eth_src, const uint8_t *eth_dst,
                     const uint8_t *src, const uint8_t *dst, uint8_t hop, const uint8_t *m,
                     size_t len)
{
  memcpy(out, eth_dst, 6);
  memcpy(out + 6, eth_src, 6);
  out[12] = 0x86;
  out[13] = 0xdd;
  uint8_t *ip = out + 14;
  memset(ip, 0, 40);
  ip[0] = 0x60;
  ip[4] = (uint8_t)(len >> 8);
  ip[5] = (uint8_t)len;
  ip[6] = 58;
  ip[7] = hop;
  memcpy(ip + 8, src, 16);
  memcpy(ip + 24, dst, 16);
  uint8_t *p = ip + 40;
  memcpy(p, m, len);
  p[2] = p[3] = 0;
  uint16_t cs = h_csum(p, len, pseudo6(src, dst, (uint32_t)len, 58));
  p[2] = (uint8_t)(cs >> 8);
  p[3] = (uint8_t)cs;
  return 14 + 40 + len;
}

static void put32(uint8_t *p, uint32_t v)
{
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

/* An RA from `src` (the router's MAC) with SLLA, an MTU option if `mtu`, and a prefix option. */
static void input_ra(struct harness *h, const uint8_t *src, uint16_t lifetime, uint32_t mtu,
                     uint8_t pflags, uint32_t valid, uint32_t preferred)
{
  uint8_t m[128] = {134, 0, 0, 0, 32, 0};
  m[6] = (uint8_t)(lifetime >> 8);
  m[7] = (uint8_t)lifetime;
  put32(m + 8, 20000); /* reachable time, ms */
  put32(m + 12, 500);  /* retrans timer, ms */
  size_t n = 16;
  m[n] = 1;
  m[n + 1] = 1;
  memcpy(m + n + 2, ROUTER_MAC, 6);
  n += 8;
  if (mtu) {
    m[n] = 5;
    m[n + 1] = 1;
    put32(m + n + 4, mtu);
    n += 8;
  }
  m[n] = 3;
  m[n + 1] = 4;
  m[n + 2] = 64;
  m[n + 3] = pflags;
  put32(m + n + 4, valid);
  put32(m + n + 8, preferred);
  memcpy(m + n + 16, PREFIX, 16);
  n += 32;
  uint8_t f[256];
  h_input(h, f, build6(f, ROUTER_MAC, ALL_NODES_MAC, src, ALL_NODES, 255, m, n));
}

/* An echo request of `dlen` bytes from `src` (off link: through the router's MAC) to `dst`. */
static void input_echo(struct harness *h, const uint8_t *src, const uint8_t *dst, size_t dlen)
{
  static uint8_t m[1600], f[1700];
  memset(m, 0, 8 + dlen);
  m[0] = 128;
  m[5] = 1;
  h_input(h, f, build6(f, ROUTER_MAC, H_OUR_MAC, src, dst, 60, m, 8 + dlen));
}

TEST(ra_gives_router_prefix_mtu_hop_limit_and_slaac_address)
{
  struct harness h;
  setup(&h, 0);
  input_ra(&h, ROUTER_LL, 1800, 1400, 0xc0, 3600, 1800);
  CHECK_EQ(ctr(&h)->nd.rx_ra, 1);
  CHECK_EQ(ctr(&h)->nd.routers_inuse, 1);
  CHECK_EQ(ctr(&h)->nd.prefixes_inuse, 1);
  CHECK_EQ(ctr(&h)->nd.ra_mtu_set, 1);
  CHECK_EQ(ctr(&h)->nd.slaac_added, 1);
  uint8_t a[16];
  CHECK_EQ(toe_stack_addr6(h.st, 1, a), TOE_ADDR6_PREFERRED);
  CHECK_MEM(a, SLAAC, 16);
  /* The router's link address was learned from the RA: a reply to a far peer goes straight to
   * its MAC, hop limit from the RA (32), fragmented to the RA's MTU of 1400. */
  input_echo(&h, FAR, SLAAC, 1400);
  CHECK_EQ(ctr(&h)->icmp6.tx_echo_replies, 1);
  REQUIRE(h.ntx == 2);
  for (int i = 0; i < 2; i++) {
    CHECK_MEM(h.tx[i].bytes, ROUTER_MAC, 6);
    const uint8_t *ip = h.tx[i].bytes + 14;
    CHECK(h.tx[i].len - 14 <= 1400);
    CHECK_EQ(ip[6], 44);
    CHECK_EQ(ip[7], 32);
    CHECK_MEM(ip + 8, SLAAC, 16);
    CHECK_MEM(ip + 24, FAR, 16);
  }
  h_clear(&h);
  /* Invalid RAs change nothing: from a global address (RFC 4861 6.1.2), an MTU under 1280. */
  input_ra(&h, FAR, 0, 0, 0xc0, 3600, 1800);
  CHECK_EQ(ctr(&h)->nd.rx_ra_invalid, 1);
  CHECK_EQ(ctr(&h)->nd.routers_inuse, 1);
  input_ra(&h, ROUTER_LL, 1800, 1000, 0xc0, 3600, 1800);
  CHECK_EQ(ctr(&h)->nd.ra_mtu_ignored, 1);
  CHECK_EQ(ctr(&h)->nd.slaac_added, 1); /* refreshed, not added again */
  /* Router lifetime 0: no longer a default router; the far peer is unreachable. */
  input_ra(&h, ROUTER_LL, 0, 0, 0xc0, 3600, 1800);
  CHECK_EQ(ctr(&h)->nd.routers_inuse, 0);
  input_echo(&h, FAR, SLAAC, 8);
  CHECK_EQ(ctr(&h)->ip6.tx_drop_no_route, 1);
  CHECK_EQ(h.ntx, 0);
  h_fini(&h);
}

TEST(slaac_lifetimes_two_hour_rule_and_expiry)
{
  struct harness h;
  setup(&h, 0);
  input_ra(&h, ROUTER_LL, 1800, 0, 0xc0, 600, 300);
  uint8_t a[16];
  CHECK_EQ(toe_stack_addr6(h.st, 1, a), TOE_ADDR6_PREFERRED);
  /* RFC 4862 5.5.3 (e): a shorter valid lifetime (60 s) than the remaining one (600 s, under two
   * hours) is ignored, so the address lives on past 60 s. */
  input_ra(&h, ROUTER_LL, 1800, 0, 0xc0, 60, 30);
  h_advance(&h, TOE_SEC(120));
  CHECK_EQ(toe_stack_addr6(h.st, 1, a), TOE_ADDR6_PREFERRED);
  CHECK_EQ(ctr(&h)->nd.slaac_expired, 0);
  /* After the preferred lifetime (30 s from the second RA) it is deprecated: still ours... */
  input_echo(&h, FAR, SLAAC, 8);
  CHECK_EQ(ctr(&h)->icmp6.tx_echo_replies, 1);
  /* ...and gone at the end of the valid one (600 s from the first RA). */
  h_advance(&h, TOE_SEC(500));
  CHECK_EQ(ctr(&h)->nd.slaac_expired, 1);
  CHECK_EQ(toe_stack_addr6(h.st, 1, a), -TOE_ENOENT);
  /* The on-link prefix (L) ended with its valid lifetime too; the router (1800 s) remains. */
  CHECK_EQ(ctr(&h)->nd.prefixes_inuse, 0);
  CHECK_EQ(ctr(&h)->nd.routers_inuse, 1);
  /* A prefix with A clear gives no address; one with preferred > valid is ignored. */
  input_ra(&h, ROUTER_LL, 1800, 0, 0x80, 600, 300);
  input_ra(&h, ROUTER_LL, 1800, 0, 0x40, 300, 600);
  CHECK_EQ(ctr(&h)->nd.slaac_added, 1);
  h_fini(&h);
}

TEST(slaac_address_is_dad_checked)
{
  struct harness h;
  setup(&h, 1);
  input_ra(&h, ROUTER_LL, 1800, 0, 0xc0, 3600, 1800);
  uint8_t a[16];
  CHECK_EQ(toe_stack_addr6(h.st, 1, a), TOE_ADDR6_TENTATIVE);
  h_advance(&h, TOE_MSEC(10));
  /* The probe: NS from :: for the new address. */
  int probes = 0;
  for (int i = 0; i < h.ntx; i++) {
    const uint8_t *ip = h.tx[i].bytes + 14;
    static const uint8_t unspec[16];
    if (ip[6] == 58 && ip[40] == 135 && memcmp(ip + 8, unspec, 16) == 0 &&
        memcmp(ip + 48, SLAAC, 16) == 0)
      probes++;
  }
  CHECK_EQ(probes, 1);
  h_advance(&h, TOE_SEC(2));
  CHECK_EQ(toe_stack_addr6(h.st, 1, a), TOE_ADDR6_PREFERRED);
  h_fini(&h);
}

TEST(redirect_only_from_the_current_first_hop_router)
{
  struct harness h;
  setup(&h, 0);
  input_ra(&h, ROUTER_LL, 1800, 0, 0xc0, 3600, 1800);
  /* Redirect: FAR is better reached through fe80::77 (with its link address). */
  uint8_t m[128] = {137, 0};
  memcpy(m + 8, OTHER_LL, 16);
  memcpy(m + 24, FAR, 16);
  m[40] = 2;
  m[41] = 1;
  memcpy(m + 42, OTHER_MAC, 6);
  uint8_t f[256];
  /* From another node than our router for FAR: rejected. */
  h_input(&h, f, build6(f, OTHER_MAC, H_OUR_MAC, OTHER_LL, SLAAC, 255, m, 48));
  CHECK_EQ(ctr(&h)->nd.rx_redirect_rejected, 1);
  h_input(&h, f, build6(f, ROUTER_MAC, H_OUR_MAC, ROUTER_LL, SLAAC, 255, m, 48));
  CHECK_EQ(ctr(&h)->nd.rx_redirect, 1);
  h_clear(&h);
  input_echo(&h, FAR, SLAAC, 8);
  REQUIRE(h.ntx == 1);
  CHECK_MEM(h.tx[0].bytes, OTHER_MAC, 6);
  CHECK_MEM(h.tx[0].bytes + 14 + 24, FAR, 16);
  h_fini(&h);
}

TEST_MAIN()
