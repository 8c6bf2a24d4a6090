/*
 * ICMPv4 through the engine harness: echo, error generation (quoting, 576-byte bound, the
 * suppression rules, the token bucket over virtual time), and received errors mapped to socket
 * errors.
 */
#include "engine/stack.h"
#include "harness.h"
#include "testlib.h"

#include <stdlib.h>
#include <string.h>

#define DIRECTED_BCAST 0xc61200ffu

static const struct toe_counters_icmp *icmpc(const struct harness *h)
{
  return &toe_stack_counters(h->st)->icmp;
}
static uint32_t pool_free(const struct harness *h)
{
  return toe_pbuf_pool_free_count(h->st);
}

static void put16(uint8_t *p, uint16_t v)
{
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}

static void setup(struct harness *h)
{
  h_init(h);
  h_learn_peer(h);
}

/* ---- echo ---- */

TEST(echo_reply_fields_and_checksum)
{
  struct harness h;
  setup(&h);
  uint32_t free0 = pool_free(&h);
  uint8_t data[56], f[256];
  for (int i = 0; i < 56; i++)
    data[i] = (uint8_t)(0xa0 + i);
  size_t n = h_build_icmp_echo(f, H_PEER_IP, H_OUR_IP, 0xbeef, 0x0102, data, sizeof(data));
  h_input(&h, f, n);
  CHECK_EQ(icmpc(&h)->rx_echo_requests, 1);
  CHECK_EQ(icmpc(&h)->tx_echo_replies, 1);
  REQUIRE(h.ntx == 1);
  const uint8_t *e = h.tx[0].bytes;
  CHECK_MEM(e, H_PEER_MAC, 6);
  CHECK_MEM(e + 6, H_OUR_MAC, 6);
  CHECK_EQ(h_be16(e + 12), 0x0800);
  const uint8_t *ip = e + 14;
  CHECK_EQ(ip[0], 0x45);
  CHECK_EQ(h_be16(ip + 2), 20 + 8 + 56);
  CHECK_EQ(h_be16(ip + 6) & 0x3fff, 0);
  CHECK_EQ(ip[8], 64);
  CHECK_EQ(ip[9], 1);
  CHECK_EQ(h_be32(ip + 12), H_OUR_IP);
  CHECK_EQ(h_be32(ip + 16), H_PEER_IP);
  CHECK_EQ(h_csum(ip, 20, 0), 0);
  const uint8_t *m = ip + 20;
  CHECK_EQ(m[0], 0);
  CHECK_EQ(m[1], 0);
  CHECK_EQ(h_be16(m + 4), 0xbeef);
  CHECK_EQ(h_be16(m + 6), 0x0102);
  CHECK_MEM(m + 8, data, sizeof(data));
  CHECK_EQ(h_csum(m, 8 + 56, 0), 0);
  CHECK_EQ(h.tx[0].len, 14u + 20u + 64u);
  h_clear(&h);
  CHECK_EQ(pool_free(&h), free0);
  h_fini(&h);
}

TEST(echo_with_odd_length_and_checksum_corner)
{
  struct harness h;
  setup(&h);
  /* several lengths and ids so the incremental checksum update meets varied sums */
  for (uint16_t id = 0; id < 64; id++) {
    uint8_t data[33], f[128];
    for (int i = 0; i < 33; i++)
      data[i] = (uint8_t)(id * 3 + i);
    size_t dl = id % 34;
    h_input(&h, f,
            h_build_icmp_echo(f, H_PEER_IP, H_OUR_IP, (uint16_t)(id * 0x0401), id, data, dl));
  }
  CHECK_EQ(h_count_tx(&h, 0x0800, 1), 64);
  for (int k = 0; k < h.ntx; k++) {
    const uint8_t *ip = h.tx[k].bytes + 14;
    CHECK_EQ(h_csum(ip + 20, h_be16(ip + 2) - 20u, 0), 0);
  }
  h_fini(&h);
}

TEST(echo_bad_checksum_dropped)
{
  struct harness h;
  setup(&h);
  uint8_t data[16] = {1, 2, 3}, f[128];
  size_t n = h_build_icmp_echo(f, H_PEER_IP, H_OUR_IP, 1, 1, data, sizeof(data));
  f[14 + 20 + 8] ^= 0x40; /* corrupt the data */
  h_input(&h, f, n);
  CHECK_EQ(icmpc(&h)->rx_drop_checksum, 1);
  CHECK_EQ(h.ntx, 0);
  h_fini(&h);
}

TEST(truncated_icmp_dropped)
{
  struct harness h;
  setup(&h);
  uint8_t msg[4] = {8, 0, 0xf7, 0xff}, f[128];
  h_input(&h, f, h_build_ipv4(f, H_PEER_IP, H_OUR_IP, 1, 1, 0, 64, msg, sizeof(msg)));
  CHECK_EQ(icmpc(&h)->rx_drop_malformed, 1);
  CHECK_EQ(h.ntx, 0);
  h_fini(&h);
}

TEST(echo_to_broadcast_not_answered)
{
  struct harness h;
  setup(&h);
  uint8_t data[8] = {0}, f[128];
  size_t n = h_build_icmp_echo(f, H_PEER_IP, DIRECTED_BCAST, 1, 1, data, sizeof(data));
  memcpy(f, H_BCAST_MAC, 6);
  h_input(&h, f, n);
  CHECK_EQ(icmpc(&h)->rx_echo_requests, 1);
  CHECK_EQ(icmpc(&h)->rx_echo_broadcast, 1);
  CHECK_EQ(h.ntx, 0);
  h_fini(&h);
}

TEST(unanswered_types_counted)
{
  struct harness h;
  setup(&h);
  uint8_t msg[20] = {13, 0}, f[128]; /* timestamp request */
  put16(msg + 2, h_csum(msg, sizeof(msg), 0));
  h_input(&h, f, h_build_ipv4(f, H_PEER_IP, H_OUR_IP, 1, 1, 0, 64, msg, sizeof(msg)));
  uint8_t sq[36] = {4, 0}; /* source quench */
  sq[8] = 0x45;
  put16(sq + 2, h_csum(sq, sizeof(sq), 0));
  h_input(&h, f, h_build_ipv4(f, H_PEER_IP, H_OUR_IP, 1, 2, 0, 64, sq, sizeof(sq)));
  CHECK_EQ(icmpc(&h)->rx_drop_type, 2);
  CHECK_EQ(h.ntx, 0);
  h_fini(&h);
}

/* ---- error generation ---- */

TEST(port_unreachable_quotes_datagram)
{
  struct harness h;
  setup(&h);
  uint32_t free0 = pool_free(&h);
  uint8_t data[100], f[256];
  for (int i = 0; i < 100; i++)
    data[i] = (uint8_t)i;
  size_t n = h_build_udp(f, H_PEER_IP, 40000, H_OUR_IP, 9, data, sizeof(data));
  h_input(&h, f, n);
  CHECK_EQ(icmpc(&h)->tx_dest_unreach, 1);
  int i = h_find_tx(&h, 0x0800, 1, 0);
  REQUIRE(i >= 0);
  const uint8_t *ip = h.tx[i].bytes + 14;
  CHECK_EQ(h_be32(ip + 12), H_OUR_IP);
  CHECK_EQ(h_be32(ip + 16), H_PEER_IP);
  CHECK_EQ(h_csum(ip, 20, 0), 0);
  CHECK_EQ(h_be16(ip + 2), 20 + 8 + (n - 14));
  CHECK_EQ(ip[20], 3);
  CHECK_EQ(ip[21], 3);
  CHECK_EQ(h_be32(ip + 24), 0);
  CHECK_EQ(h_csum(ip + 20, 8 + (n - 14), 0), 0);
  CHECK_MEM(ip + 28, f + 14, n - 14);
  h_clear(&h);
  CHECK_EQ(pool_free(&h), free0);
  h_fini(&h);
}

TEST(error_quote_bounded_by_576)
{
  struct harness h;
  setup(&h);
  static uint8_t data[1400], f[1600];
  for (size_t i = 0; i < sizeof(data); i++)
    data[i] = (uint8_t)(i * 5);
  size_t n = h_build_udp(f, H_PEER_IP, 40000, H_OUR_IP, 9, data, sizeof(data));
  h_input(&h, f, n);
  int i = h_find_tx(&h, 0x0800, 1, 0);
  REQUIRE(i >= 0);
  const uint8_t *ip = h.tx[i].bytes + 14;
  CHECK_EQ(h_be16(ip + 2), 576);
  CHECK_MEM(ip + 28, f + 14, 576 - 28);
  CHECK_EQ(h_csum(ip + 20, 576 - 20, 0), 0);
  h_fini(&h);
}

/* Sends `count` datagrams of an unknown protocol; each provokes a protocol unreachable. */
static void provoke(struct harness *h, int count)
{
  uint8_t body[16] = {0}, f[128];
  for (int i = 0; i < count; i++)
    h_input(h, f, h_build_ipv4(f, H_PEER_IP, H_OUR_IP, 99, (uint16_t)i, 0, 64, body, sizeof(body)));
}

TEST(rate_limit_burst_then_refill)
{
  struct harness h;
  setup(&h); /* defaults: 100 per second, burst 10 */
  provoke(&h, 15);
  CHECK_EQ(h_count_tx(&h, 0x0800, 1), 10);
  CHECK_EQ(icmpc(&h)->tx_rate_limited, 5);
  h_clear(&h);
  /* 50 ms at 100/s refill 5 tokens */
  h_advance(&h, TOE_MSEC(50));
  provoke(&h, 10);
  CHECK_EQ(h_count_tx(&h, 0x0800, 1), 5);
  CHECK_EQ(icmpc(&h)->tx_rate_limited, 10);
  h_clear(&h);
  /* a long quiet time refills only up to the burst */
  h_advance(&h, TOE_SEC(10));
  provoke(&h, 15);
  CHECK_EQ(h_count_tx(&h, 0x0800, 1), 10);
  h_clear(&h);
  /* a steady trickle faster than the rate keeps its long-term rate: 1 every 2 ms for 1 s
   * (500 attempts) gets ~100 through, whatever the fractions */
  int sent = 0;
  for (int k = 0; k < 500; k++) {
    h_advance(&h, TOE_MSEC(2));
    provoke(&h, 1);
    sent += h_count_tx(&h, 0x0800, 1);
    h_clear(&h);
  }
  CHECK(sent >= 99 && sent <= 101);
  h_fini(&h);
}

TEST(rate_limit_config)
{
  struct toe_config cfg;
  h_default_cfg(&cfg);
  cfg.icmp_rate_per_sec = 1;
  cfg.icmp_burst = 2;
  struct harness h;
  h_init_cfg(&h, &cfg);
  h_learn_peer(&h);
  provoke(&h, 5);
  CHECK_EQ(h_count_tx(&h, 0x0800, 1), 2);
  h_clear(&h);
  h_advance(&h, TOE_MSEC(999));
  provoke(&h, 1);
  CHECK_EQ(h_count_tx(&h, 0x0800, 1), 0);
  h_advance(&h, TOE_MSEC(2));
  provoke(&h, 2);
  CHECK_EQ(h_count_tx(&h, 0x0800, 1), 1);
  h_fini(&h);
}

/* A borrowed "original datagram" pbuf from raw IP bytes, as toe_icmp_send_error sees them. */
static struct toe_pbuf *orig_pbuf(struct harness *h, uint32_t src, uint32_t dst, uint8_t proto,
                                  uint16_t frag, const uint8_t *l4, size_t l4len, uint16_t flags)
{
  uint8_t f[256];
  size_t n = h_build_ipv4(f, src, dst, proto, 1, frag, 64, l4, l4len);
  struct toe_pbuf *p = toe_pbuf_from_bytes(h->st, f + 14, n - 14, TOE_PBUF_HEADROOM);
  if (p)
    p->flags = flags;
  return p;
}

/* Calls toe_icmp_send_error on a crafted original and reports whether an error went out. */
static bool sends(struct harness *h, uint32_t src, uint32_t dst, uint8_t proto, uint16_t frag,
                  const uint8_t *l4, size_t l4len, uint16_t flags)
{
  struct toe_pbuf *p = orig_pbuf(h, src, dst, proto, frag, l4, l4len, flags);
  if (!p)
    return false;
  h_clear(h);
  toe_icmp_send_error(h->st, p, 3, 3, 0);
  toe_pbuf_free(h->st, p);
  return h_count_tx(h, 0x0800, 1) == 1;
}

TEST(suppression_rules)
{
  struct toe_config cfg;
  h_default_cfg(&cfg);
  cfg.icmp_burst = 1000; /* keep the rate limiter out of the way */
  struct harness h;
  h_init_cfg(&h, &cfg);
  h_learn_peer(&h);
  uint32_t free0 = pool_free(&h);
  uint8_t udp[16] = {0x9c, 0x40, 0, 9, 0, 16, 0, 0};
  uint8_t icmp_err[36] = {3, 3, 0, 0, 0, 0, 0, 0, 0x45};
  uint8_t icmp_echo[16] = {8, 0};
  uint8_t icmp_unknown[16] = {200, 0};
  const uint64_t s0 = icmpc(&h)->tx_suppressed;

  /* the control case: a plain unicast UDP datagram gets its error */
  CHECK(sends(&h, H_PEER_IP, H_OUR_IP, 17, 0, udp, sizeof(udp), 0));
  /* an ICMP query may be answered with an error, an ICMP error never */
  CHECK(sends(&h, H_PEER_IP, H_OUR_IP, 1, 0, icmp_echo, sizeof(icmp_echo), 0));
  CHECK(!sends(&h, H_PEER_IP, H_OUR_IP, 1, 0, icmp_err, sizeof(icmp_err), 0));
  CHECK(!sends(&h, H_PEER_IP, H_OUR_IP, 1, 0, icmp_unknown, sizeof(icmp_unknown), 0));
  /* non-initial fragment; an initial one is fine */
  CHECK(!sends(&h, H_PEER_IP, H_OUR_IP, 17, 0x2000 | 10, udp, sizeof(udp), 0));
  CHECK(!sends(&h, H_PEER_IP, H_OUR_IP, 17, 10, udp, sizeof(udp), 0));
  CHECK(sends(&h, H_PEER_IP, H_OUR_IP, 17, 0x2000, udp, sizeof(udp), 0));
  /* link broadcast */
  CHECK(!sends(&h, H_PEER_IP, H_OUR_IP, 17, 0, udp, sizeof(udp), TOE_PBUF_F_BROADCAST));
  /* IP broadcast and multicast destinations */
  CHECK(!sends(&h, H_PEER_IP, 0xffffffffu, 17, 0, udp, sizeof(udp), 0));
  CHECK(!sends(&h, H_PEER_IP, DIRECTED_BCAST, 17, 0, udp, sizeof(udp), 0));
  CHECK(!sends(&h, H_PEER_IP, 0xe00000fbu, 17, 0, udp, sizeof(udp), 0));
  /* sources that are not one host */
  const uint32_t bad_src[] = {0,           0x7f000001u, 0xe0000001u, 0xffffffffu, DIRECTED_BCAST,
                              0xf0000001u, H_OUR_IP};
  for (size_t i = 0; i < sizeof(bad_src) / sizeof(bad_src[0]); i++)
    if (sends(&h, bad_src[i], H_OUR_IP, 17, 0, udp, sizeof(udp), 0))
      testlib_fail(__FILE__, __LINE__, "error sent about source %08x", bad_src[i]);
  CHECK_EQ(icmpc(&h)->tx_suppressed - s0, 8 + 7);
  CHECK_EQ(icmpc(&h)->tx_rate_limited, 0);
  h_clear(&h);
  CHECK_EQ(pool_free(&h), free0);
  h_fini(&h);
}

TEST(suppressed_errors_use_no_tokens)
{
  struct harness h;
  setup(&h);
  uint8_t udp[16] = {0x9c, 0x40, 0, 9, 0, 16, 0, 0};
  for (int i = 0; i < 50; i++)
    CHECK(!sends(&h, H_PEER_IP, DIRECTED_BCAST, 17, 0, udp, sizeof(udp), 0));
  CHECK(sends(&h, H_PEER_IP, H_OUR_IP, 17, 0, udp, sizeof(udp), 0));
  CHECK_EQ(icmpc(&h)->tx_rate_limited, 0);
  h_fini(&h);
}

TEST(error_to_offlink_source_goes_via_gateway)
{
  struct toe_config cfg;
  h_default_cfg(&cfg);
  cfg.gateway = 0xc61200feu;
  struct harness h;
  h_init_cfg(&h, &cfg);
  uint8_t udp[16] = {0x9c, 0x40, 0, 9, 0, 16, 0, 0};
  struct toe_pbuf *p = orig_pbuf(&h, 0xc6130005u, H_OUR_IP, 17, 0, udp, sizeof(udp), 0);
  REQUIRE(p);
  toe_icmp_send_error(h.st, p, 3, 3, 0);
  toe_pbuf_free(h.st, p);
  int i = h_find_tx(&h, 0x0806, 0, 0); /* resolving the gateway */
  REQUIRE(i >= 0);
  CHECK_EQ(h_be32(h.tx[i].bytes + 14 + 24), 0xc61200feu);
  h_fini(&h);
}

/* ---- received errors ---- */

/* Builds an ICMP error from the peer quoting `quoted` (IP header + 8 bytes or more). */
static size_t build_error(uint8_t *f, uint8_t type, uint8_t code, uint32_t rest,
                          const uint8_t *quoted, size_t qlen)
{
  uint8_t msg[600];
  msg[0] = type;
  msg[1] = code;
  put16(msg + 2, 0);
  put16(msg + 4, (uint16_t)(rest >> 16));
  put16(msg + 6, (uint16_t)rest);
  memcpy(msg + 8, quoted, qlen);
  put16(msg + 2, h_csum(msg, 8 + qlen, 0));
  return h_build_ipv4(f, H_PEER_IP, H_OUR_IP, 1, 77, 0, 64, msg, 8 + qlen);
}

TEST(errors_map_to_socket_errors)
{
  struct harness h;
  setup(&h);
  struct toe_sock *s = NULL;
  REQUIRE(toe_udp_open(h.st, NULL, &s) == 0);
  struct toe_sockaddr peer = {.family = TOE_AF_INET, .port = 7777, .addr = H_PEER_IP};
  REQUIRE(toe_sock_connect(h.st, s, &peer) == 0);
  REQUIRE(toe_udp_sendto(h.st, s, "hello", 5, NULL) == 5);
  int i = h_find_tx(&h, 0x0800, 17, 0);
  REQUIRE(i >= 0);
  uint8_t quoted[64];
  memcpy(quoted, h.tx[i].bytes + 14, 28);
  h_clear(&h);

  const struct {
    uint8_t type, code;
    int err;
  } cases[] = {
      {3, 3, -TOE_ECONNREFUSED},  {3, 0, -TOE_ENETUNREACH}, {3, 1, -TOE_EHOSTUNREACH},
      {3, 2, -TOE_ENOPROTOOPT},   {3, 4, -TOE_EMSGSIZE},    {3, 13, -TOE_EHOSTUNREACH},
      {11, 0, -TOE_EHOSTUNREACH}, {12, 0, -TOE_EPROTO},
  };
  uint8_t f[256];
  for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
    h_input(
        &h, f,
        build_error(f, cases[k].type, cases[k].code, cases[k].code == 4 ? 1400 : 0, quoted, 28));
    int got = toe_sock_error(h.st, s);
    if (got != cases[k].err)
      testlib_fail(__FILE__, __LINE__, "type %u code %u: error %d, want %d", cases[k].type,
                   cases[k].code, got, cases[k].err);
  }
  CHECK_EQ(icmpc(&h)->rx_errors_delivered, 8);
  CHECK_EQ(icmpc(&h)->rx_dest_unreach, 6);
  CHECK_EQ(icmpc(&h)->rx_time_exceeded, 1);
  CHECK_EQ(icmpc(&h)->rx_param_problem, 1);
  CHECK_EQ(h.ntx, 0); /* never an error about an error */

  /* an error about a datagram no socket sent (another source port) */
  quoted[20] ^= 0x55;
  h_input(&h, f, build_error(f, 3, 3, 0, quoted, 28));
  CHECK_EQ(icmpc(&h)->rx_errors_no_socket, 1);
  CHECK_EQ(toe_sock_error(h.st, s), 0);
  quoted[20] ^= 0x55;
  /* an error about a datagram we did not send (quoted source not ours) */
  uint8_t forged[28];
  memcpy(forged, quoted, 28);
  forged[15] = 0x63;
  h_input(&h, f, build_error(f, 3, 3, 0, forged, 28));
  CHECK_EQ(icmpc(&h)->rx_errors_no_socket, 2);
  CHECK_EQ(toe_sock_error(h.st, s), 0);
  /* quoted transport header cut short */
  h_input(&h, f, build_error(f, 3, 3, 0, quoted, 24));
  CHECK_EQ(icmpc(&h)->rx_drop_malformed, 1);
  /* quoted IP header with IHL < 5 */
  uint8_t bad[28];
  memcpy(bad, quoted, 28);
  bad[0] = 0x44;
  h_input(&h, f, build_error(f, 3, 3, 0, bad, 28));
  CHECK_EQ(icmpc(&h)->rx_drop_malformed, 2);
  CHECK_EQ(toe_sock_error(h.st, s), 0);
  toe_sock_close(h.st, s);
  h_fini(&h);
}

TEST_MAIN()
