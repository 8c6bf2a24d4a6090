/*
 * IPv6 steering with a host interface (toe/steer.h, docs/coexistence.md rules 12-15): Neighbor
 * Discovery for shared addresses to both sides and answered once by the engine, ND for the OS's
 * own addresses and MLD to the host, RAs and redirects to both, echo to one side, ICMPv6 errors
 * by the flow they quote, TCP and UDP by the filter table (IPv6 exact filters, family-blind local
 * ones). Frames are built by hand here.
 */
#include "engine/filter_table.h"
#include "engine/stack.h"
#include "harness.h"
#include "testlib.h"
#include "toe/steer.h"

#include <string.h>

static const uint8_t OUR6[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 1};
static const uint8_t PEER6[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 2};
static const uint8_t OS_ONLY6[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 0x99}; /* toe0's, not ours */
/* fe80::ff:fe00:1: modified EUI-64 of H_OUR_MAC (RFC 4291 2.5.1), the engine's and the OS's */
static const uint8_t OUR_LL[16] = {0xfe, 0x80, [11] = 0xff, [12] = 0xfe, [15] = 1};
static const uint8_t PEER_LL[16] = {0xfe, 0x80, [11] = 0xff, [12] = 0xfe, [15] = 2};
static const uint8_t ALL_NODES[16] = {0xff, 0x02, [15] = 1};
static const uint8_t SNM_1[16] = {0xff, 0x02, [11] = 1, [12] = 0xff, [15] = 1};
static const uint8_t UNSPEC[16];
static const uint8_t SNM_1_MAC[6] = {0x33, 0x33, 0xff, 0, 0, 1};
static const uint8_t ALL_NODES_MAC[6] = {0x33, 0x33, 0, 0, 0, 1};
static const uint8_t OTHER_MAC[6] = {0x02, 0, 0, 0, 0, 0x77};

static uint8_t fr[2048];

static const struct toe_counters_steer *sc(const struct harness *h)
{
  return &toe_stack_counters(h->st)->steer;
}

static void setup(struct harness *h, bool echo_host)
{
  struct toe_config cfg;
  h_default_cfg(&cfg);
  cfg.steering = 1;
  cfg.icmp_echo_host = echo_host;
  cfg.ipv6 = 1;
  cfg.addr6_count = 1;
  memcpy(cfg.addr6[0], OUR6, 16);
  cfg.addr6_prefix_len[0] = 64;
  cfg.dad_transmits = 0;
  h_init_cfg(h, &cfg);
}

static uint32_t pseudo6(const uint8_t *src, const uint8_t *dst, uint32_t len, uint8_t nh)
{
  uint32_t s = 0;
  for (int i = 0; i < 16; i += 2)
    s += (uint32_t)(src[i] << 8 | src[i + 1]) + (uint32_t)(dst[i] << 8 | dst[i + 1]);
  return s + (len >> 16) + (len & 0xffff) + nh;
}

/* An IPv6 frame from the peer to `eth_dst` carrying `l4` of protocol `nh` (ICMPv6 checksummed). */
static size_t build6(const uint8_t *eth_dst, const uint8_t *src, const uint8_t *dst, uint8_t nh,
                     uint8_t hop, const uint8_t *l4, size_t l4len)
{
  memcpy(fr, eth_dst, 6);
  memcpy(fr + 6, H_PEER_MAC, 6);
  fr[12] = 0x86;
  fr[13] = 0xdd;
  uint8_t *ip = fr + 14;
  memset(ip, 0, 8);
  ip[0] = 0x60;
  ip[4] = (uint8_t)(l4len >> 8);
  ip[5] = (uint8_t)l4len;
  ip[6] = nh;
  ip[7] = hop;
  memcpy(ip + 8, src, 16);
  memcpy(ip + 24, dst, 16);
  uint8_t *p = ip + 40;
  memcpy(p, l4, l4len);
  if (nh == 58) {
    p[2] = p[3] = 0;
    uint16_t cs = h_csum(p, l4len, pseudo6(src, dst, (uint32_t)l4len, 58));
    p[2] = (uint8_t)(cs >> 8);
    p[3] = (uint8_t)cs;
  }
  return 14 + 40 + l4len;
}

static unsigned steer(struct harness *h, size_t n)
{
  return toe_steer_frame(h->st, fr, n);
}

static unsigned ns(struct harness *h, const uint8_t *eth_dst, const uint8_t *src,
                   const uint8_t *dst, const uint8_t *target)
{
  uint8_t m[32] = {135, 0};
  memcpy(m + 8, target, 16);
  size_t len = 24;
  if (memcmp(src, UNSPEC, 16) != 0) {
    m[24] = 1;
    m[25] = 1;
    memcpy(m + 26, H_PEER_MAC, 6);
    len = 32;
  }
  return steer(h, build6(eth_dst, src, dst, 58, 255, m, len));
}

static unsigned icmp6(struct harness *h, const uint8_t *eth_dst, const uint8_t *dst, uint8_t type)
{
  uint8_t m[32] = {type, 0};
  return steer(h, build6(eth_dst, PEER_LL, dst, 58, 255, m, sizeof m));
}

static unsigned udp6(struct harness *h, const uint8_t *src, uint16_t sport, const uint8_t *dst,
                     uint16_t dport)
{
  uint8_t u[9] = {(uint8_t)(sport >> 8),
                  (uint8_t)sport,
                  (uint8_t)(dport >> 8),
                  (uint8_t)dport,
                  0,
                  9,
                  0,
                  0,
                  'x'};
  return steer(h, build6(H_OUR_MAC, src, dst, 17, 64, u, sizeof u));
}

static unsigned tcp6(struct harness *h, uint16_t sport, uint16_t dport)
{
  uint8_t t[20] = {(uint8_t)(sport >> 8), (uint8_t)sport, (uint8_t)(dport >> 8), (uint8_t)dport};
  t[12] = 5 << 4;
  t[13] = 0x02; /* SYN */
  return steer(h, build6(H_OUR_MAC, PEER6, OUR6, 6, 64, t, sizeof t));
}

/* An ICMPv6 error of `type` quoting an IPv6 packet of `proto` from qsrc:sport to PEER6:dport. */
static unsigned error6(struct harness *h, uint8_t type, const uint8_t *qsrc, uint8_t proto,
                       uint16_t sport, uint16_t dport)
{
  uint8_t m[8 + 40 + 8];
  memset(m, 0, sizeof m);
  m[0] = type;
  if (type == 2)
    m[6] = 0x05, m[7] = 0x00; /* MTU 1280 */
  uint8_t *q = m + 8;
  q[0] = 0x60;
  q[5] = 8;
  q[6] = proto;
  q[7] = 64;
  memcpy(q + 8, qsrc, 16);
  memcpy(q + 24, PEER6, 16);
  q[40] = (uint8_t)(sport >> 8);
  q[41] = (uint8_t)sport;
  q[42] = (uint8_t)(dport >> 8);
  q[43] = (uint8_t)dport;
  return steer(h, build6(H_OUR_MAC, PEER6, OUR6, 58, 64, m, sizeof m));
}

TEST(ns_for_a_shared_address_goes_to_both_and_is_answered_once_by_the_engine)
{
  struct harness h;
  setup(&h, false);
  CHECK_EQ(ns(&h, SNM_1_MAC, PEER6, SNM_1, OUR6), TOE_STEER_BOTH);
  /* The engine answers it (the OS's own NA for it is dropped on the way out, host_if.c). */
  h_input(&h, fr, 14 + 40 + 32);
  REQUIRE(h.ntx == 1);
  CHECK_EQ(h.tx[0].bytes[14 + 40], 136); /* a Neighbor Advertisement */
  CHECK_EQ(memcmp(h.tx[0].bytes + 14 + 40 + 8, OUR6, 16), 0);
  /* The link-local address comes from the shared MAC: the OS has the same one. */
  CHECK_EQ(ns(&h, SNM_1_MAC, PEER_LL, SNM_1, OUR_LL), TOE_STEER_BOTH);
  /* A DAD probe (source ::, RFC 4862 5.4.2) for a shared address: both must see it. */
  CHECK_EQ(ns(&h, SNM_1_MAC, UNSPEC, SNM_1, OUR6), TOE_STEER_BOTH);
  /* Unicast NS (reachability confirmation) to a shared address. */
  CHECK_EQ(ns(&h, H_OUR_MAC, PEER6, OUR6, OUR6), TOE_STEER_BOTH);
  CHECK_EQ(sc(&h)->nd_both, 4);
  CHECK_EQ(sc(&h)->nd_host, 0);
  h_fini(&h);
}

TEST(nd_for_addresses_only_the_os_has_goes_to_the_host)
{
  struct harness h;
  setup(&h, false);
  uint8_t snm[16];
  memcpy(snm, SNM_1, 16);
  snm[15] = 0x99;
  const uint8_t snm_mac[6] = {0x33, 0x33, 0xff, 0, 0, 0x99};
  CHECK_EQ(ns(&h, snm_mac, PEER6, snm, OS_ONLY6), TOE_STEER_HOST);
  /* unicast to the OS-only address: not ours at all */
  CHECK_EQ(ns(&h, H_OUR_MAC, PEER6, OS_ONLY6, OS_ONLY6), TOE_STEER_HOST);
  CHECK_EQ(icmp6(&h, (const uint8_t[6]){0x33, 0x33, 0, 0, 0, 2},
                 (const uint8_t[16]){0xff, 0x02, [15] = 2}, 133),
           TOE_STEER_HOST); /* RS: for routers */
  CHECK_EQ(sc(&h)->nd_host, 2);
  CHECK_EQ(sc(&h)->not_ours, 1);
  CHECK_EQ(sc(&h)->nd_both, 0);
  /* Nothing reached the engine, so it answered nothing. */
  CHECK_EQ(h.ntx, 0);
  h_fini(&h);
}

TEST(na_ra_and_redirect_go_to_both_mld_to_the_host)
{
  struct harness h;
  setup(&h, false);
  CHECK_EQ(icmp6(&h, H_OUR_MAC, OUR_LL, 136), TOE_STEER_BOTH);
  CHECK_EQ(icmp6(&h, ALL_NODES_MAC, ALL_NODES, 136), TOE_STEER_BOTH); /* unsolicited */
  CHECK_EQ(icmp6(&h, ALL_NODES_MAC, ALL_NODES, 134), TOE_STEER_BOTH);
  CHECK_EQ(icmp6(&h, H_OUR_MAC, OUR_LL, 137), TOE_STEER_BOTH);
  CHECK_EQ(icmp6(&h, ALL_NODES_MAC, ALL_NODES, 130), TOE_STEER_HOST); /* MLD query */
  CHECK_EQ(icmp6(&h, ALL_NODES_MAC, ALL_NODES, 143), TOE_STEER_HOST); /* MLDv2 report */
  CHECK_EQ(icmp6(&h, ALL_NODES_MAC, ALL_NODES, 131), TOE_STEER_HOST); /* MLDv1 report */
  CHECK_EQ(sc(&h)->nd_both, 2);
  CHECK_EQ(sc(&h)->ra_both, 2);
  CHECK_EQ(sc(&h)->mld_host, 3);
  CHECK_EQ(sc(&h)->to_both, 4);
  CHECK_EQ(sc(&h)->to_host, 3);
  h_fini(&h);
}

TEST(echo_goes_to_one_side)
{
  struct harness h;
  setup(&h, false);
  CHECK_EQ(icmp6(&h, H_OUR_MAC, OUR6, 128), TOE_STEER_ENGINE);
  CHECK_EQ(icmp6(&h, ALL_NODES_MAC, ALL_NODES, 128), TOE_STEER_ENGINE);
  CHECK_EQ(icmp6(&h, H_OUR_MAC, OUR6, 129), TOE_STEER_HOST); /* a reply to the OS's ping */
  CHECK_EQ(icmp6(&h, H_OUR_MAC, OS_ONLY6, 128), TOE_STEER_HOST);
  /* A unicast packet for a shared address to another MAC is not ours either. */
  CHECK_EQ(icmp6(&h, OTHER_MAC, OUR6, 128), TOE_STEER_HOST);
  CHECK_EQ(sc(&h)->echo_engine, 2);
  CHECK_EQ(sc(&h)->icmp_other, 1);
  CHECK_EQ(sc(&h)->not_ours, 2);
  h_fini(&h);
  setup(&h, true);
  CHECK_EQ(icmp6(&h, H_OUR_MAC, OUR6, 128), TOE_STEER_HOST);
  CHECK_EQ(icmp6(&h, ALL_NODES_MAC, ALL_NODES, 128), TOE_STEER_HOST);
  CHECK_EQ(sc(&h)->echo_host, 2);
  h_fini(&h);
}

TEST(udp_and_tcp_follow_the_filters_local_ones_for_both_families)
{
  struct harness h;
  setup(&h, false);
  CHECK_EQ(udp6(&h, PEER6, 1000, OUR6, 7000), TOE_STEER_HOST);
  CHECK_EQ(tcp6(&h, 1000, 7000), TOE_STEER_HOST);
  struct toe_sock *s;
  REQUIRE(toe_udp_open(h.st, NULL, &s) == 0);
  struct toe_sockaddr a = {.family = TOE_AF_INET6, .port = 7000};
  REQUIRE(toe_sock_bind(h.st, s, &a) == 0); /* [::]:7000, dual-stack */
  CHECK_EQ(udp6(&h, PEER6, 1000, OUR6, 7000), TOE_STEER_ENGINE);
  CHECK_EQ(udp6(&h, PEER_LL, 1000, OUR_LL, 7000), TOE_STEER_ENGINE);
  CHECK_EQ(udp6(&h, PEER6, 1000, OUR6, 7001), TOE_STEER_HOST);
  CHECK_EQ(tcp6(&h, 1000, 7000), TOE_STEER_HOST); /* other protocol */
  /* to a group: the OS's (the engine's sockets join none) */
  CHECK_EQ(udp6(&h, PEER6, 1000, ALL_NODES, 7000), TOE_STEER_HOST);
  /* The same socket's IPv4 side is steered by the same local filter. */
  size_t n = h_build_udp(fr, H_PEER_IP, 1000, H_OUR_IP, 7000, "x", 1);
  CHECK_EQ(toe_steer_frame(h.st, fr, n), TOE_STEER_ENGINE);
  CHECK_EQ(sc(&h)->udp_engine, 3);
  CHECK_EQ(sc(&h)->udp_host, 2);
  CHECK_EQ(sc(&h)->tcp_host, 2);
  toe_sock_close(h.st, s);
  CHECK_EQ(udp6(&h, PEER6, 1000, OUR6, 7000), TOE_STEER_HOST);
  CHECK_EQ(toe_filter_count(h.st), 0);
  h_fini(&h);
}

struct seen6 {
  int n, v6;
  uint8_t laddr6[16], raddr6[16];
  uint16_t lport, rport;
  uint64_t frames;
};

static void see(void *arg, const struct toe_filter_info *f)
{
  struct seen6 *s = arg;
  s->n++;
  if (f->family != 6)
    return;
  s->v6++;
  memcpy(s->laddr6, f->laddr6, 16);
  memcpy(s->raddr6, f->raddr6, 16);
  s->lport = f->lport;
  s->rport = f->rport;
  s->frames = f->frames;
}

TEST(ipv6_exact_filters_key_on_the_whole_peer_address)
{
  struct harness h;
  setup(&h, false);
  struct toe_in6_addr l, r, r2;
  memcpy(l.b, OUR6, 16);
  memcpy(r.b, PEER6, 16);
  r2 = r;
  r2.b[0] ^= 0x80; /* same low 32 bits: an IPv4-sized key would mix them up */
  toe_filt_add6(h.st, TOE_FILTER_CONN, 6, 8080, &l, &r, 40000);
  CHECK_EQ(toe_filter_count(h.st), 1);
  CHECK(toe_steer_owned6(h.st, 6, 8080, PEER6, 40000));
  CHECK(!toe_steer_owned6(h.st, 6, 8080, r2.b, 40000));
  CHECK(!toe_steer_owned6(h.st, 6, 8080, PEER6, 40001));
  CHECK(!toe_steer_owned6(h.st, 17, 8080, PEER6, 40000));
  /* an IPv4 peer whose address is PEER6's last 4 bytes does not match it */
  CHECK(!toe_steer_owned(h.st, 6, 8080, 2, 40000));
  CHECK_EQ(tcp6(&h, 40000, 8080), TOE_STEER_ENGINE);
  CHECK_EQ(tcp6(&h, 40001, 8080), TOE_STEER_HOST);
  struct seen6 s;
  memset(&s, 0, sizeof s);
  CHECK_EQ(toe_filter_visit(h.st, see, &s), 1);
  CHECK_EQ(s.v6, 1);
  CHECK_EQ(memcmp(s.laddr6, OUR6, 16), 0);
  CHECK_EQ(memcmp(s.raddr6, PEER6, 16), 0);
  CHECK_EQ(s.lport, 8080);
  CHECK_EQ(s.rport, 40000);
  CHECK_EQ(s.frames, 1);
  /* TIME_WAIT takes the connection's filter over, as for IPv4 (references counted) */
  toe_filt_add6(h.st, TOE_FILTER_TIMEWAIT, 6, 8080, &l, &r, 40000);
  toe_filt_del6(h.st, 6, 8080, &r, 40000);
  CHECK(toe_steer_owned6(h.st, 6, 8080, PEER6, 40000));
  toe_filt_del6(h.st, 6, 8080, &r2, 40000); /* absent: no effect */
  CHECK_EQ(toe_filter_count(h.st), 1);
  toe_filt_del6(h.st, 6, 8080, &r, 40000);
  CHECK_EQ(toe_filter_count(h.st), 0);
  CHECK(!toe_steer_owned6(h.st, 6, 8080, PEER6, 40000));
  h_fini(&h);
}

TEST(icmpv6_errors_go_to_the_side_owning_the_quoted_flow)
{
  struct harness h;
  setup(&h, false);
  struct toe_sock *s;
  REQUIRE(toe_udp_open(h.st, NULL, &s) == 0);
  struct toe_sockaddr a = {.family = TOE_AF_INET6, .port = 7000};
  REQUIRE(toe_sock_bind(h.st, s, &a) == 0);
  CHECK_EQ(error6(&h, 1, OUR6, 17, 7000, 9), TOE_STEER_ENGINE); /* port unreachable */
  CHECK_EQ(error6(&h, 1, OUR6, 17, 7001, 9), TOE_STEER_HOST);   /* the OS's datagram */
  CHECK_EQ(error6(&h, 1, OS_ONLY6, 17, 7000, 9), TOE_STEER_HOST);
  struct toe_in6_addr l, r;
  memcpy(l.b, OUR6, 16);
  memcpy(r.b, PEER6, 16);
  toe_filt_add6(h.st, TOE_FILTER_CONN, 6, 50000, &l, &r, 80);
  CHECK_EQ(error6(&h, 2, OUR6, 6, 50000, 80), TOE_STEER_ENGINE); /* packet too big */
  CHECK_EQ(error6(&h, 2, OUR6, 6, 50000, 81), TOE_STEER_HOST);
  CHECK_EQ(error6(&h, 3, OUR6, 58, 0, 0), TOE_STEER_HOST); /* quoting ICMPv6: the OS's ping */
  CHECK_EQ(sc(&h)->icmp_err_engine, 2);
  CHECK_EQ(sc(&h)->icmp_err_host, 4);
  toe_sock_close(h.st, s);
  h_fini(&h);
}

TEST(fragments_and_malformed_packets_to_the_engine)
{
  struct harness h;
  setup(&h, false);
  uint8_t f[16] = {17, 0, 0x00, 0x01, 0, 0, 0, 7}; /* fragment header: offset 0, M set */
  CHECK_EQ(steer(&h, build6(H_OUR_MAC, PEER6, OUR6, 44, 64, f, sizeof f)), TOE_STEER_ENGINE);
  CHECK_EQ(sc(&h)->fragments, 1);
  size_t n = build6(H_OUR_MAC, PEER6, OUR6, 17, 64, (const uint8_t[2]){0}, 2);
  CHECK_EQ(steer(&h, n), TOE_STEER_ENGINE);       /* UDP header cut short */
  CHECK_EQ(steer(&h, 14 + 20), TOE_STEER_ENGINE); /* IPv6 header cut short */
  CHECK_EQ(sc(&h)->malformed, 2);
  /* Another protocol to a shared address: the OS's. */
  CHECK_EQ(steer(&h, build6(H_OUR_MAC, PEER6, OUR6, 132, 64, f, 8)), TOE_STEER_HOST);
  CHECK_EQ(sc(&h)->other_proto, 1);
  CHECK(toe_steer_shared6(h.st, OUR6));
  CHECK(toe_steer_shared6(h.st, OUR_LL));
  CHECK(!toe_steer_shared6(h.st, OS_ONLY6));
  h_fini(&h);
}

TEST_MAIN()
