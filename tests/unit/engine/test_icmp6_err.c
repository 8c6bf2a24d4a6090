/*
 * Received ICMPv6 errors (RFC 4443 3, engine/icmp6_err.c) and path MTU over IPv6 (RFC 8201):
 * port unreachable to a connected UDP socket as ECONNREFUSED (not to an unconnected one unless
 * it asked with TOE_IP_RECVERR, as Linux's UDPv6), Packet Too Big lowering the cache and the next
 * datagram going out in fragments, an MTU below 1280 ignored, errors about packets we did not
 * send or with a cut quote counted and dropped, and a large UDP send fragmented. Frames are built
 * by hand with a reference checksum.
 */
#include "engine/stack.h"
#include "harness.h"
#include "testlib.h"
#include "toe/tcp.h"

#include <string.h>

static const uint8_t OUR6[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 1};
static const uint8_t PEER6[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 2};
static const uint8_t ROUTER6[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 0xfe};
static const uint8_t OTHER6[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 9};
static const uint8_t SNM_1[16] = {0xff, 0x02, [11] = 1, [12] = 0xff, [15] = 1};
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

/* An ICMPv6 message from `src` to us, checksummed. */
static size_t build_icmp6(uint8_t *out, const uint8_t *src, const uint8_t *m, size_t len,
                          uint8_t hop)
{
  memcpy(out, H_OUR_MAC, 6);
  memcpy(out + 6, H_PEER_MAC, 6);
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
  memcpy(ip + 24, OUR6, 16);
  memcpy(ip + 40, m, len);
  uint8_t *p = ip + 40;
  p[2] = p[3] = 0;
  uint16_t cs = h_csum(p, len, pseudo6(src, OUR6, (uint32_t)len, 58));
  p[2] = (uint8_t)(cs >> 8);
  p[3] = (uint8_t)cs;
  return 14 + 40 + len;
}

/* An error (type, code, param) from `src` quoting up to `qmax` bytes of the frame we sent. */
static void input_error(struct harness *h, const uint8_t *src, uint8_t type, uint8_t code,
                        uint32_t param, const struct h_frame *sent, size_t qmax)
{
  static uint8_t m[1300], f[1400];
  size_t q = sent->len - 14;
  if (q > qmax)
    q = qmax;
  memset(m, 0, 8);
  m[0] = type;
  m[1] = code;
  m[4] = (uint8_t)(param >> 24);
  m[5] = (uint8_t)(param >> 16);
  m[6] = (uint8_t)(param >> 8);
  m[7] = (uint8_t)param;
  memcpy(m + 8, sent->bytes + 14, q);
  h_input(h, f, build_icmp6(f, src, m, 8 + q, 64));
}

static void learn(struct harness *h)
{
  uint8_t m[32] = {135, 0}, f[128];
  memcpy(m + 8, OUR6, 16);
  m[24] = 1;
  m[25] = 1;
  memcpy(m + 26, H_PEER_MAC, 6);
  memcpy(f, SNM_1_MAC, 6);
  memcpy(f + 6, H_PEER_MAC, 6);
  f[12] = 0x86;
  f[13] = 0xdd;
  uint8_t *ip = f + 14;
  memset(ip, 0, 40);
  ip[0] = 0x60;
  ip[5] = 32;
  ip[6] = 58;
  ip[7] = 255;
  memcpy(ip + 8, PEER6, 16);
  memcpy(ip + 24, SNM_1, 16);
  uint16_t cs = h_csum(m, 32, pseudo6(PEER6, SNM_1, 32, 58));
  m[2] = (uint8_t)(cs >> 8);
  m[3] = (uint8_t)cs;
  memcpy(ip + 40, m, 32);
  h_input(h, f, 14 + 40 + 32);
  h_clear(h);
}

static struct toe_sockaddr sa6(const uint8_t *a, uint16_t port)
{
  struct toe_sockaddr sa = {.family = TOE_AF_INET6, .port = port};
  memcpy(sa.addr6, a, 16);
  return sa;
}

TEST(port_unreachable_to_connected_udp6_socket_only)
{
  struct harness h;
  setup(&h);
  learn(&h);
  struct toe_sock *c, *u;
  REQUIRE(toe_udp_open(h.st, NULL, &c) == 0);
  REQUIRE(toe_udp_open(h.st, NULL, &u) == 0);
  struct toe_sockaddr peer = sa6(PEER6, 4000);
  CHECK_EQ(toe_sock_connect(h.st, c, &peer), 0);
  CHECK_EQ(toe_udp_sendto(h.st, c, "a", 1, NULL), 1);
  struct toe_sockaddr any = sa6((const uint8_t[16]){0}, 0);
  CHECK_EQ(toe_sock_bind(h.st, u, &any), 0);
  CHECK_EQ(toe_udp_sendto(h.st, u, "b", 1, &peer), 1);
  REQUIRE(h.ntx == 2);
  input_error(&h, PEER6, 1, 4, 0, &h.tx[0], 1232);
  CHECK_EQ(toe_sock_error(h.st, c), -TOE_ECONNREFUSED);
  CHECK_EQ(toe_sock_error(h.st, c), 0); /* read once */
  CHECK_EQ(ctr(&h)->icmp6.rx_err_delivered, 1);
  /* The unconnected socket is not told (Linux: only with IPV6_RECVERR)... */
  input_error(&h, PEER6, 1, 4, 0, &h.tx[1], 1232);
  CHECK_EQ(toe_sock_error(h.st, u), 0);
  CHECK_EQ(ctr(&h)->icmp6.rx_err_unmatched, 1);
  /* ... unless it asked. */
  CHECK_EQ(toe_sock_setopt(h.st, u, TOE_IP_RECVERR, 1), 0);
  input_error(&h, PEER6, 1, 4, 0, &h.tx[1], 1232);
  CHECK_EQ(toe_sock_error(h.st, u), -TOE_ECONNREFUSED);
  /* A soft error (address unreachable) is not fatal: the connected socket without RECVERR does
   * not hear it. */
  input_error(&h, PEER6, 1, 3, 0, &h.tx[0], 1232);
  CHECK_EQ(toe_sock_error(h.st, c), 0);
  /* Errors about what we did not send, or whose quote lost the ports, are dropped, counted. */
  static uint8_t fake[200];
  memcpy(fake, h.tx[0].bytes, h.tx[0].len);
  memcpy(fake + 14 + 8, OTHER6, 16); /* the quoted source: not ours */
  struct h_frame ff = {.len = h.tx[0].len, .bytes = fake};
  input_error(&h, PEER6, 1, 4, 0, &ff, 1232);
  CHECK_EQ(ctr(&h)->icmp6.rx_err_not_ours, 1);
  input_error(&h, PEER6, 1, 4, 0, &h.tx[0], 20);
  CHECK_EQ(ctr(&h)->icmp6.rx_err_bad_quote, 1);
  input_error(&h, PEER6, 1, 4, 0, &h.tx[0], 44); /* header, and only 4 bytes of UDP */
  CHECK_EQ(toe_sock_error(h.st, c), 0);
  toe_sock_close(h.st, c);
  toe_sock_close(h.st, u);
  h_fini(&h);
}

TEST(packet_too_big_lowers_pmtu_and_next_datagram_is_fragmented)
{
  struct harness h;
  setup(&h);
  learn(&h);
  struct toe_sock *c;
  REQUIRE(toe_udp_open(h.st, NULL, &c) == 0);
  struct toe_sockaddr peer = sa6(PEER6, 4000);
  CHECK_EQ(toe_sock_connect(h.st, c, &peer), 0);
  static uint8_t data[3000];
  memset(data, 0x5a, sizeof(data));
  CHECK_EQ(toe_udp_sendto(h.st, c, data, 1400, NULL), 1400);
  REQUIRE(h.ntx == 1);
  CHECK_EQ(h.tx[0].len, 14u + 40 + 8 + 1400);
  struct toe_in6_addr p6;
  memcpy(p6.b, PEER6, 16);
  /* Below the IPv6 minimum: discarded (RFC 8201 4). */
  input_error(&h, ROUTER6, 2, 0, 1000, &h.tx[0], 1232);
  CHECK_EQ(ctr(&h)->icmp6.rx_ptb_ignored, 1);
  CHECK_EQ(toe_pmtu6_get(h.st, &p6), 1500);
  CHECK_EQ(toe_sock_error(h.st, c), 0);
  /* 1280 from a router on the path: the estimate, and EMSGSIZE once on the connected socket. */
  input_error(&h, ROUTER6, 2, 0, 1280, &h.tx[0], 1232);
  CHECK_EQ(ctr(&h)->icmp6.rx_ptb, 1);
  CHECK_EQ(toe_pmtu6_get(h.st, &p6), 1280);
  CHECK_EQ(toe_sock_error(h.st, c), -TOE_EMSGSIZE);
  h_clear(&h);
  /* The same datagram again: two fragments within 1280, reassembling to the datagram. */
  CHECK_EQ(toe_udp_sendto(h.st, c, data, 1400, NULL), 1400);
  REQUIRE(h.ntx == 2);
  CHECK(h.tx[0].len - 14 <= 1280);
  CHECK_EQ(h.tx[0].bytes[14 + 6], 44);
  CHECK_EQ(h.tx[0].bytes[14 + 40], 17); /* the fragment header names UDP */
  CHECK_EQ(h_be16(h.tx[1].bytes + 14 + 42) & 0xfff8u, h.tx[0].len - 14 - 48);
  CHECK_EQ((h.tx[0].len - 14 - 48) + (h.tx[1].len - 14 - 48), 8u + 1400);
  /* A larger MTU report does not raise the estimate (RFC 8201 4). */
  input_error(&h, ROUTER6, 2, 0, 1400, &h.tx[0], 1232);
  CHECK_EQ(toe_pmtu6_get(h.st, &p6), 1280);
  /* 3000 bytes to another destination: the link's 1500, three fragments. */
  h_clear(&h);
  struct toe_sockaddr other = sa6(OTHER6, 4000);
  struct toe_sock *u;
  REQUIRE(toe_udp_open(h.st, NULL, &u) == 0);
  CHECK_EQ(toe_udp_sendto(h.st, u, data, 3000, &other), 3000); /* queued: resolving */
  CHECK_EQ(ctr(&h)->ip6.tx_frag_datagrams, 2);
  toe_sock_close(h.st, c);
  toe_sock_close(h.st, u);
  h_fini(&h);
}

TEST_MAIN()
