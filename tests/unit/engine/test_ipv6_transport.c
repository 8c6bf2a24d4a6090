/*
 * UDP and TCP over IPv6 in the engine (issue 11 step 2): one socket table for both families with
 * Linux's dual-stack rules, UDP over IPv6 (mandatory checksum, RFC 8200 8.1; port unreachable,
 * RFC 4443 3.1), TCP over IPv6 answered as a closed port (RFC 9293 3.10.7.1), and a dual-stack
 * TCP listener on :: taking an IPv4 peer under v4-mapped names. Frames are built by hand with a
 * reference checksum, independent of the wire code under test.
 */
#include "engine/stack.h"
#include "harness.h"
#include "testlib.h"

#include <string.h>

static const uint8_t OUR6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
static const uint8_t PEER6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
static const uint8_t OTHER6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9};
static const uint8_t ANY6[16];
/* ::ffff:198.18.0.1 and ::ffff:198.18.0.2 */
static const uint8_t OUR_MAPPED[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 18, 0, 1};
static const uint8_t PEER_MAPPED[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 18, 0, 2};
static const uint8_t SNM_1_MAC[6] = {0x33, 0x33, 0xff, 0, 0, 1};

static const struct toe_counters *ctr(const struct harness *h)
{
  return toe_stack_counters(h->st);
}

static void setup(struct harness *h)
{
  struct toe_config cfg;
  h_default_cfg(&cfg);
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

/* An IPv6 frame from the peer's MAC to `eth_dst` carrying `l4` of protocol `nh`, the checksum at
 * l4 + csum_off filled in unless csum_off is 0 (then the bytes are sent as given). */
static size_t build6(uint8_t *out, const uint8_t *eth_dst, const uint8_t *src, const uint8_t *dst,
                     uint8_t nh, const uint8_t *l4, size_t l4len, size_t csum_off)
{
  memcpy(out, eth_dst, 6);
  memcpy(out + 6, H_PEER_MAC, 6);
  out[12] = 0x86;
  out[13] = 0xdd;
  uint8_t *ip = out + 14;
  memset(ip, 0, 40);
  ip[0] = 0x60;
  ip[4] = (uint8_t)(l4len >> 8);
  ip[5] = (uint8_t)l4len;
  ip[6] = nh;
  ip[7] = 64;
  memcpy(ip + 8, src, 16);
  memcpy(ip + 24, dst, 16);
  uint8_t *p = ip + 40;
  memcpy(p, l4, l4len);
  if (csum_off) {
    p[csum_off] = p[csum_off + 1] = 0;
    uint16_t cs = h_csum(p, l4len, pseudo6(src, dst, (uint32_t)l4len, nh));
    if (nh == 17 && cs == 0)
      cs = 0xffff;
    p[csum_off] = (uint8_t)(cs >> 8);
    p[csum_off + 1] = (uint8_t)cs;
  }
  return 14 + 40 + l4len;
}

static size_t build_udp6(uint8_t *out, const uint8_t *src, uint16_t sport, const uint8_t *dst,
                         uint16_t dport, const void *data, size_t dlen, bool csum)
{
  uint8_t u[1500];
  u[0] = (uint8_t)(sport >> 8);
  u[1] = (uint8_t)sport;
  u[2] = (uint8_t)(dport >> 8);
  u[3] = (uint8_t)dport;
  u[4] = (uint8_t)((8 + dlen) >> 8);
  u[5] = (uint8_t)(8 + dlen);
  u[6] = u[7] = 0;
  memcpy(u + 8, data, dlen);
  return build6(out, H_OUR_MAC, src, dst, 17, u, 8 + dlen, csum ? 6 : 0);
}

static size_t build_tcp6(uint8_t *out, uint16_t sport, uint16_t dport, uint32_t seq, uint32_t ack,
                         uint8_t flags, size_t dlen)
{
  uint8_t t[256] = {0};
  t[0] = (uint8_t)(sport >> 8);
  t[1] = (uint8_t)sport;
  t[2] = (uint8_t)(dport >> 8);
  t[3] = (uint8_t)dport;
  for (int i = 0; i < 4; i++) {
    t[4 + i] = (uint8_t)(seq >> (24 - 8 * i));
    t[8 + i] = (uint8_t)(ack >> (24 - 8 * i));
  }
  t[12] = 5 << 4;
  t[13] = flags;
  t[14] = 0xff;
  t[15] = 0xff;
  return build6(out, H_OUR_MAC, PEER6, OUR6, 6, t, 20 + dlen, 16);
}

/* Teaches the stack the peer's link-layer address with a neighbour solicitation. */
static void learn_peer6(struct harness *h)
{
  uint8_t m[32] = {135, 0};
  static const uint8_t snm1[16] = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 1};
  memcpy(m + 8, OUR6, 16);
  m[24] = 1;
  m[25] = 1;
  memcpy(m + 26, H_PEER_MAC, 6);
  uint8_t f[256];
  uint8_t *p;
  size_t n = build6(f, SNM_1_MAC, PEER6, snm1, 58, m, 32, 2);
  p = f + 14;
  p[7] = 255; /* ND needs hop limit 255 (RFC 4861 7.1.1) */
  h_input(h, f, n);
  h_clear(h);
}

static struct toe_sockaddr sa6(const uint8_t *a, uint16_t port)
{
  struct toe_sockaddr s;
  memset(&s, 0, sizeof(s));
  s.family = TOE_AF_INET6;
  s.port = port;
  memcpy(s.addr6, a, 16);
  return s;
}

/* The captured IPv6 frame at `i`: checks header, addresses and the transport checksum. */
static const uint8_t *check_ip6(const struct harness *h, int i, uint8_t nh, const uint8_t *src,
                                const uint8_t *dst)
{
  /* Callers REQUIRE the frame exists: REQUIRE returns, and this function returns a value. */
  const uint8_t *e = h->tx[i].bytes;
  CHECK_MEM(e, H_PEER_MAC, 6);
  CHECK_EQ(h_be16(e + 12), 0x86dd);
  const uint8_t *ip = e + 14;
  CHECK_EQ(ip[6], nh);
  CHECK_MEM(ip + 8, src, 16);
  CHECK_MEM(ip + 24, dst, 16);
  uint16_t plen = h_be16(ip + 4);
  CHECK_EQ(h->tx[i].len, 14u + 40u + plen);
  CHECK_EQ(h_csum(ip + 40, plen, pseudo6(ip + 8, ip + 24, plen, nh)), 0);
  return ip + 40;
}

TEST(udp6_datagram_both_ways_with_mandatory_checksum)
{
  struct harness h;
  setup(&h);
  learn_peer6(&h);
  struct toe_sock *s;
  REQUIRE(toe_udp_open(h.st, NULL, &s) == 0);
  struct toe_sockaddr any = sa6(ANY6, 7000);
  CHECK_EQ(toe_sock_bind(h.st, s, &any), 0);
  uint8_t f[1600];
  h_input(&h, f, build_udp6(f, PEER6, 5555, OUR6, 7000, "hello", 5, true));
  char buf[64];
  struct toe_sockaddr from;
  CHECK_EQ(toe_udp_recvfrom(h.st, s, buf, sizeof buf, &from), 5);
  CHECK_MEM(buf, "hello", 5);
  CHECK_EQ(from.family, TOE_AF_INET6);
  CHECK_EQ(from.port, 5555);
  CHECK_MEM(from.addr6, PEER6, 16);
  CHECK_EQ(ctr(&h)->udp.rx_datagrams6, 1);

  /* The reply: from our global address, checksum over the IPv6 pseudo-header. */
  CHECK_EQ(toe_udp_sendto(h.st, s, "world!", 6, &from), 6);
  REQUIRE(h.ntx == 1);
  const uint8_t *u = check_ip6(&h, 0, 17, OUR6, PEER6);
  CHECK_EQ(h_be16(u), 7000);
  CHECK_EQ(h_be16(u + 2), 5555);
  CHECK_EQ(h_be16(u + 4), 14);
  CHECK(h_be16(u + 6) != 0);
  CHECK_MEM(u + 8, "world!", 6);

  /* Zero checksum: dropped and counted (RFC 8200 8.1); a wrong one too. */
  h_clear(&h);
  h_input(&h, f, build_udp6(f, PEER6, 5555, OUR6, 7000, "x", 1, false));
  CHECK_EQ(ctr(&h)->udp.rx_drop_zero_csum6, 1);
  size_t n = build_udp6(f, PEER6, 5555, OUR6, 7000, "y", 1, true);
  f[n - 1] ^= 0x40;
  h_input(&h, f, n);
  CHECK_EQ(ctr(&h)->udp.rx_drop_checksum, 1);
  CHECK_EQ(toe_udp_recvfrom(h.st, s, buf, sizeof buf, NULL), -TOE_EAGAIN);
  CHECK_EQ(h.ntx, 0);

  /* Names: bound to :: */
  struct toe_sockaddr l;
  CHECK_EQ(toe_sock_name(s, &l, NULL), 0);
  CHECK_EQ(l.family, TOE_AF_INET6);
  CHECK_EQ(l.port, 7000);
  CHECK_MEM(l.addr6, ANY6, 16);
  toe_sock_close(h.st, s);
  h_fini(&h);
}

TEST(udp6_closed_port_gets_icmpv6_port_unreachable)
{
  struct harness h;
  setup(&h);
  learn_peer6(&h);
  uint8_t f[256];
  size_t n = build_udp6(f, PEER6, 5555, OUR6, 9, "ping", 4, true);
  h_input(&h, f, n);
  CHECK_EQ(ctr(&h)->udp.rx_drop_no_port, 1);
  CHECK_EQ(ctr(&h)->icmp6.tx_dest_unreach, 1);
  REQUIRE(h.ntx == 1);
  const uint8_t *m = check_ip6(&h, 0, 58, OUR6, PEER6);
  CHECK_EQ(m[0], 1);                /* destination unreachable */
  CHECK_EQ(m[1], 4);                /* port unreachable */
  CHECK_MEM(m + 8, f + 14, n - 14); /* the invoking packet from its IPv6 header */
  h_fini(&h);
}

TEST(udp6_connected_socket_filters_and_sends_by_default)
{
  struct harness h;
  setup(&h);
  learn_peer6(&h);
  struct toe_sock *s;
  REQUIRE(toe_udp_open(h.st, NULL, &s) == 0);
  struct toe_sockaddr peer = sa6(PEER6, 4000);
  CHECK_EQ(toe_sock_connect(h.st, s, &peer), 0);
  struct toe_sockaddr l, r;
  CHECK_EQ(toe_sock_name(s, &l, &r), 0);
  CHECK_EQ(l.family, TOE_AF_INET6);
  CHECK_MEM(l.addr6, OUR6, 16); /* the source connect chose */
  CHECK(l.port != 0);
  CHECK_MEM(r.addr6, PEER6, 16);
  CHECK_EQ(r.port, 4000);
  CHECK_EQ(toe_udp_sendto(h.st, s, "a", 1, NULL), 1);
  REQUIRE(h.ntx == 1);
  check_ip6(&h, 0, 17, OUR6, PEER6);
  /* From another port of the peer: not this socket's (port unreachable instead). */
  uint8_t f[256];
  h_input(&h, f, build_udp6(f, PEER6, 4001, OUR6, l.port, "b", 1, true));
  CHECK_EQ(ctr(&h)->udp.rx_drop_no_port, 1);
  h_input(&h, f, build_udp6(f, PEER6, 4000, OUR6, l.port, "c", 1, true));
  char c = 0;
  CHECK_EQ(toe_udp_recvfrom(h.st, s, &c, 1, NULL), 1);
  CHECK_EQ(c, 'c');
  /* An IPv4 address given to an IPv6 socket is refused, as Linux's AF_INET6 sockets do. */
  struct toe_sockaddr v4 = {.family = TOE_AF_INET, .port = 1, .addr = H_PEER_IP};
  CHECK_EQ(toe_udp_sendto(h.st, s, "d", 1, &v4), -TOE_EAFNOSUPPORT);
  toe_sock_close(h.st, s);
  h_fini(&h);
}

TEST(dual_stack_socket_takes_ipv4_as_v4_mapped_unless_v6only)
{
  struct harness h;
  setup(&h);
  h_learn_peer(&h);
  learn_peer6(&h);
  struct toe_sock *s;
  REQUIRE(toe_udp_open(h.st, NULL, &s) == 0);
  struct toe_sockaddr any = sa6(ANY6, 7000);
  CHECK_EQ(toe_sock_bind(h.st, s, &any), 0);
  uint8_t f[256];
  h_input(&h, f, h_build_udp(f, H_PEER_IP, 6000, H_OUR_IP, 7000, "v4", 2));
  char buf[16];
  struct toe_sockaddr from;
  CHECK_EQ(toe_udp_recvfrom(h.st, s, buf, sizeof buf, &from), 2);
  CHECK_EQ(from.family, TOE_AF_INET6);
  CHECK_MEM(from.addr6, PEER_MAPPED, 16);
  CHECK_EQ(from.port, 6000);
  /* The answer to the mapped address goes out as IPv4. */
  h_clear(&h);
  CHECK_EQ(toe_udp_sendto(h.st, s, "r4", 2, &from), 2);
  CHECK_EQ(h_count_tx(&h, 0x0800, 17), 1);
  CHECK_EQ(h_count_tx(&h, 0x86dd, 0), 0);
  toe_sock_close(h.st, s);

  /* V6ONLY: IPv4 to the port is nobody's. */
  REQUIRE(toe_udp_open(h.st, NULL, &s) == 0);
  CHECK_EQ(toe_sock_setopt(h.st, s, TOE_IPV6_V6ONLY, 1), 0);
  int64_t v = 0;
  CHECK_EQ(toe_sock_getopt(h.st, s, TOE_IPV6_V6ONLY, &v), 0);
  CHECK_EQ(v, 1);
  CHECK_EQ(toe_sock_bind(h.st, s, &any), 0);
  CHECK_EQ(toe_sock_setopt(h.st, s, TOE_IPV6_V6ONLY, 0), -TOE_EINVAL); /* bound */
  h_clear(&h);
  h_input(&h, f, h_build_udp(f, H_PEER_IP, 6000, H_OUR_IP, 7000, "v4", 2));
  CHECK_EQ(toe_udp_recvfrom(h.st, s, buf, sizeof buf, NULL), -TOE_EAGAIN);
  CHECK_EQ(ctr(&h)->udp.rx_drop_no_port, 1);
  CHECK_EQ(toe_udp_sendto(h.st, s, "x", 1, &from), -TOE_ENETUNREACH); /* no IPv4 path */
  toe_sock_close(h.st, s);
  h_fini(&h);
}

TEST(port_rules_across_families_are_linux_ones)
{
  struct harness h;
  setup(&h);
  struct toe_sock *a, *b, *c, *d;
  REQUIRE(toe_udp_open(h.st, NULL, &a) == 0);
  REQUIRE(toe_udp_open(h.st, NULL, &b) == 0);
  REQUIRE(toe_udp_open(h.st, NULL, &c) == 0);
  REQUIRE(toe_udp_open(h.st, NULL, &d) == 0);
  struct toe_sockaddr v4any = {.family = TOE_AF_INET, .port = 53, .addr = 0};
  struct toe_sockaddr v6any = sa6(ANY6, 53);
  struct toe_sockaddr v6our = sa6(OUR6, 53);
  /* IPv4 any, then IPv6 any (dual stack): the same port for IPv4, refused. */
  CHECK_EQ(toe_sock_bind(h.st, a, &v4any), 0);
  CHECK_EQ(toe_sock_bind(h.st, b, &v6any), -TOE_EADDRINUSE);
  /* ... but an IPv6-only one, or one on our IPv6 address, shares nothing with IPv4. */
  CHECK_EQ(toe_sock_setopt(h.st, b, TOE_IPV6_V6ONLY, 1), 0);
  CHECK_EQ(toe_sock_bind(h.st, b, &v6any), 0);
  CHECK_EQ(toe_sock_bind(h.st, c, &v6our), -TOE_EADDRINUSE); /* b holds :: for IPv6 */
  toe_sock_close(h.st, b);
  CHECK_EQ(toe_sock_bind(h.st, c, &v6our), 0);
  /* An address not ours; a v4-mapped one that is not ours either. */
  struct toe_sockaddr other = sa6(OTHER6, 54);
  CHECK_EQ(toe_sock_bind(h.st, d, &other), -TOE_EADDRNOTAVAIL);
  struct toe_sockaddr m = sa6(PEER_MAPPED, 54);
  CHECK_EQ(toe_sock_bind(h.st, d, &m), -TOE_EADDRNOTAVAIL);
  /* The mapped form of our IPv4 address conflicts with the IPv4 any bind of port 53. */
  struct toe_sockaddr m53 = sa6(OUR_MAPPED, 53);
  CHECK_EQ(toe_sock_bind(h.st, d, &m53), -TOE_EADDRINUSE);
  m53.port = 55;
  CHECK_EQ(toe_sock_bind(h.st, d, &m53), 0);
  struct toe_sockaddr l;
  CHECK_EQ(toe_sock_name(d, &l, NULL), 0);
  CHECK_EQ(l.family, TOE_AF_INET6);
  CHECK_MEM(l.addr6, OUR_MAPPED, 16);
  /* An IPv4 socket that is bound stays IPv4. */
  CHECK_EQ(toe_sock_setopt(h.st, a, TOE_IPV6_V6ONLY, 1), -TOE_EINVAL);
  toe_sock_close(h.st, a);
  toe_sock_close(h.st, c);
  toe_sock_close(h.st, d);
  h_fini(&h);
}

TEST(tcp6_segments_meet_a_closed_port)
{
  struct harness h;
  setup(&h);
  learn_peer6(&h);
  uint8_t f[256];
  /* SYN: <SEQ=0><ACK=SEG.SEQ+1><CTL=RST,ACK> (RFC 9293 3.10.7.1). */
  h_input(&h, f, build_tcp6(f, 40000, 80, 1000, 0, 0x02, 0));
  REQUIRE(h.ntx == 1);
  const uint8_t *t = check_ip6(&h, 0, 6, OUR6, PEER6);
  CHECK_EQ(h_be16(t), 80);
  CHECK_EQ(h_be16(t + 2), 40000);
  CHECK_EQ(h_be32(t + 4), 0);
  CHECK_EQ(h_be32(t + 8), 1001);
  CHECK_EQ(t[13], 0x14);
  /* ACK with 10 data bytes: <SEQ=SEG.ACK><CTL=RST>. */
  h_clear(&h);
  h_input(&h, f, build_tcp6(f, 40000, 80, 1000, 777, 0x10, 10));
  REQUIRE(h.ntx == 1);
  t = check_ip6(&h, 0, 6, OUR6, PEER6);
  CHECK_EQ(h_be32(t + 4), 777);
  CHECK_EQ(t[13], 0x04);
  /* A RST is never answered; a bad checksum is dropped and counted. */
  h_clear(&h);
  h_input(&h, f, build_tcp6(f, 40000, 80, 1000, 777, 0x04, 0));
  size_t n = build_tcp6(f, 40000, 80, 1000, 0, 0x02, 0);
  f[n - 3] ^= 1;
  h_input(&h, f, n);
  CHECK_EQ(h.ntx, 0);
  CHECK_EQ(ctr(&h)->tcp.rx_drop_checksum, 1);
  CHECK_EQ(ctr(&h)->tcp.out_rsts, 2);
  h_fini(&h);
}

TEST(tcp_dual_stack_listener_accepts_ipv4_under_mapped_names)
{
  struct harness h;
  setup(&h);
  h_learn_peer(&h);
  struct toe_sock *l;
  REQUIRE(toe_tcp_open(h.st, NULL, &l) == 0);
  struct toe_sockaddr any = sa6(ANY6, 8080);
  CHECK_EQ(toe_sock_bind(h.st, l, &any), 0);
  CHECK_EQ(toe_tcp_listen(h.st, l, 8), 0);
  /* SYN from the IPv4 peer: a SYN-ACK over IPv4. */
  uint8_t syn[20] = {0x9c, 0x40, 0x1f, 0x90, 0, 0, 0x10, 0, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff};
  uint8_t f[256];
  uint16_t cs = h_csum(syn, 20, h_pseudo_sum(H_PEER_IP, H_OUR_IP, 6, 20));
  syn[16] = (uint8_t)(cs >> 8);
  syn[17] = (uint8_t)cs;
  h_input(&h, f, h_build_ipv4(f, H_PEER_IP, H_OUR_IP, 6, 1, 0x4000, 64, syn, 20));
  int i = h_find_tx(&h, 0x0800, 6, 0);
  REQUIRE(i >= 0);
  const uint8_t *t = h.tx[i].bytes + 14 + 20;
  CHECK_EQ(t[13], 0x12);
  uint32_t iss = h_be32(t + 4);
  /* The handshake's ACK; the accepted socket names both ends as v4-mapped. */
  uint8_t ack[20] = {0x9c, 0x40, 0x1f, 0x90, 0, 0, 0x10, 1, 0, 0, 0, 0, 0x50, 0x10, 0xff, 0xff};
  for (int k = 0; k < 4; k++)
    ack[8 + k] = (uint8_t)((iss + 1) >> (24 - 8 * k));
  cs = h_csum(ack, 20, h_pseudo_sum(H_PEER_IP, H_OUR_IP, 6, 20));
  ack[16] = (uint8_t)(cs >> 8);
  ack[17] = (uint8_t)cs;
  h_input(&h, f, h_build_ipv4(f, H_PEER_IP, H_OUR_IP, 6, 2, 0x4000, 64, ack, 20));
  struct toe_sock *c = NULL;
  REQUIRE(toe_tcp_accept(h.st, l, NULL, &c) == 0);
  struct toe_sockaddr ln, rn;
  CHECK_EQ(toe_sock_name(c, &ln, &rn), 0);
  CHECK_EQ(ln.family, TOE_AF_INET6);
  CHECK_MEM(ln.addr6, OUR_MAPPED, 16);
  CHECK_EQ(ln.port, 8080);
  CHECK_EQ(rn.family, TOE_AF_INET6);
  CHECK_MEM(rn.addr6, PEER_MAPPED, 16);
  CHECK_EQ(rn.port, 40000);
  /* An IPv6 peer is reached over IPv6 (test_tcp_v6.c has the details). */
  struct toe_sock *x;
  REQUIRE(toe_tcp_open(h.st, NULL, &x) == 0);
  struct toe_sockaddr p6 = sa6(PEER6, 80);
  CHECK_EQ(toe_sock_connect(h.st, x, &p6), -TOE_EINPROGRESS);
  toe_tcp_abort(h.st, x);
  toe_tcp_abort(h.st, c);
  toe_sock_close(h.st, l);
  h_fini(&h);
}

TEST_MAIN()
