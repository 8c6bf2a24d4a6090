/*
 * Steering and the filter table (toe/steer.h): filters follow the engine's sockets (UDP binds, TCP
 * listeners, connections, TIME_WAIT), frames are steered by them, ICMP errors by the flow they
 * quote, ARP to both sides, and explicit binds are claimed through cfg.port_claim.
 */
#include "harness.h"
#include "tcp_harness.h"
#include "testlib.h"
#include "toe/steer.h"
#include "toe/tcp.h"

#include <string.h>

static void steer_cfg(struct toe_config *c)
{
  h_default_cfg(c);
  c->steering = 1;
}

static uint8_t fr[2048];

static unsigned steer_udp(struct harness *h, uint16_t sport, uint16_t dport)
{
  size_t n = h_build_udp(fr, H_PEER_IP, sport, H_OUR_IP, dport, "x", 1);
  return toe_steer_frame(h->st, fr, n);
}

static unsigned steer_tcp(struct harness *h, uint16_t sport, uint16_t dport, uint8_t flags)
{
  size_t n =
      h_build_tcp(fr, H_PEER_IP, sport, H_OUR_IP, dport, 1, 0, flags, 1000, NULL, 0, NULL, 0);
  return toe_steer_frame(h->st, fr, n);
}

TEST(off_by_default_everything_to_engine)
{
  struct harness h;
  h_init(&h);
  CHECK_EQ(toe_filter_capacity(h.st), 0);
  CHECK_EQ(steer_udp(&h, 1000, 53), TOE_STEER_ENGINE);
  h_fini(&h);
}

TEST(udp_bind_filter_follows_socket)
{
  struct toe_config c;
  steer_cfg(&c);
  struct harness h;
  h_init_cfg(&h, &c);
  CHECK(toe_filter_capacity(h.st) > 0);
  CHECK_EQ(steer_udp(&h, 1000, 7000), TOE_STEER_HOST);
  struct toe_sock *s;
  REQUIRE(toe_udp_open(h.st, NULL, &s) == 0);
  struct toe_sockaddr a = {.family = TOE_AF_INET, .port = 7000, .addr = 0};
  REQUIRE(toe_sock_bind(h.st, s, &a) == 0);
  CHECK_EQ(toe_filter_count(h.st), 1);
  CHECK_EQ(steer_udp(&h, 1000, 7000), TOE_STEER_ENGINE);
  CHECK_EQ(steer_udp(&h, 1000, 7001), TOE_STEER_HOST);
  CHECK_EQ(steer_tcp(&h, 1000, 7000, 0x02), TOE_STEER_HOST); /* other protocol */
  toe_sock_close(h.st, s);
  CHECK_EQ(toe_filter_count(h.st), 0);
  CHECK_EQ(steer_udp(&h, 1000, 7000), TOE_STEER_HOST);
  const struct toe_counters_steer *k = &toe_stack_counters(h.st)->steer;
  CHECK_EQ(k->udp_engine, 1);
  CHECK_EQ(k->udp_host, 3);
  CHECK_EQ(k->tcp_host, 1);
  h_fini(&h);
}

struct seen {
  int n, conn, tw, local;
  uint64_t frames;
};

static void count_filter(void *arg, const struct toe_filter_info *f)
{
  struct seen *s = arg;
  s->n++;
  s->conn += f->kind == TOE_FILTER_CONN;
  s->tw += f->kind == TOE_FILTER_TIMEWAIT;
  s->local += f->kind == TOE_FILTER_LOCAL;
  s->frames += f->frames;
}

TEST(tcp_listener_connection_and_timewait)
{
  struct toe_config c;
  steer_cfg(&c);
  struct harness h;
  h_init_cfg(&h, &c);
  struct h_conn cn;
  h_conn_init(&cn, &h, 40000);
  REQUIRE(h_conn_accept(&cn, 80) == 0);
  struct seen s = {0};
  toe_filter_visit(h.st, count_filter, &s);
  CHECK_EQ(s.local, 1); /* the listener */
  CHECK_EQ(s.conn, 1);  /* the accepted connection */
  CHECK_EQ(steer_tcp(&h, 40000, 80, 0x10), TOE_STEER_ENGINE);
  CHECK_EQ(steer_tcp(&h, 40001, 80, 0x02), TOE_STEER_ENGINE); /* a SYN to the listener */
  CHECK_EQ(steer_tcp(&h, 40000, 81, 0x10), TOE_STEER_HOST);
  /* The listener goes; the connection's segments are still the engine's, a new SYN is not. */
  toe_sock_close(h.st, cn.ls);
  CHECK_EQ(steer_tcp(&h, 40000, 80, 0x10), TOE_STEER_ENGINE);
  CHECK_EQ(steer_tcp(&h, 40001, 80, 0x02), TOE_STEER_HOST);
  /* We close first: FIN_WAIT, then TIME_WAIT; the 4-tuple stays the engine's through it. */
  toe_sock_close(h.st, cn.s);
  struct h_tcp fin;
  REQUIRE(h_conn_last(&cn, &fin) && (fin.flags & H_FIN));
  cn.rcv_nxt = fin.seq + 1;
  h_conn_send(&cn, H_ACK, NULL, 0);
  h_conn_send(&cn, H_FIN | H_ACK, NULL, 0);
  memset(&s, 0, sizeof s);
  toe_filter_visit(h.st, count_filter, &s);
  CHECK_EQ(s.n, 1);
  CHECK_EQ(s.tw, 1);
  CHECK(s.frames >= 1); /* the counter lived on from the connection's filter */
  CHECK_EQ(steer_tcp(&h, 40000, 80, 0x10), TOE_STEER_ENGINE);
  h_advance(&h, 2 * c.tcp_msl + TOE_SEC(1));
  CHECK_EQ(toe_filter_count(h.st), 0);
  CHECK_EQ(steer_tcp(&h, 40000, 80, 0x10), TOE_STEER_HOST);
  h_fini(&h);
}

TEST(active_open_has_exact_and_local_filter)
{
  struct toe_config c;
  steer_cfg(&c);
  struct harness h;
  h_init_cfg(&h, &c);
  struct h_conn cn;
  h_conn_init(&cn, &h, 8080);
  REQUIRE(h_conn_connect(&cn, 0) == 0);
  struct seen s = {0};
  toe_filter_visit(h.st, count_filter, &s);
  CHECK_EQ(s.conn, 1);
  CHECK_EQ(s.local, 1);
  CHECK(toe_steer_owned(h.st, 6, cn.lport, H_PEER_IP, 8080));
  CHECK(!toe_steer_owned(h.st, 6, (uint16_t)(cn.lport + 1), H_PEER_IP, 8080));
  toe_tcp_abort(h.st, cn.s);
  CHECK_EQ(toe_filter_count(h.st), 0);
  h_fini(&h);
}

/* An ICMP error from a router quoting a datagram from us:sport to peer:dport. */
static size_t build_icmp_err(uint8_t *out, uint8_t proto, uint16_t sport, uint16_t dport)
{
  uint8_t msg[8 + 28];
  memset(msg, 0, sizeof msg);
  msg[0] = 3; /* destination unreachable */
  msg[1] = 4; /* fragmentation needed */
  msg[6] = 0x05;
  msg[7] = 0xdc; /* next-hop MTU 1500 */
  uint8_t *q = msg + 8;
  q[0] = 0x45;
  q[2] = 0x05;
  q[3] = 0xdc;
  q[8] = 64;
  q[9] = proto;
  uint32_t a = H_OUR_IP, b = H_PEER_IP;
  for (int i = 0; i < 4; i++) {
    q[12 + i] = (uint8_t)(a >> (24 - 8 * i));
    q[16 + i] = (uint8_t)(b >> (24 - 8 * i));
  }
  q[20] = (uint8_t)(sport >> 8);
  q[21] = (uint8_t)sport;
  q[22] = (uint8_t)(dport >> 8);
  q[23] = (uint8_t)dport;
  uint16_t ck = h_csum(msg, sizeof msg, 0);
  msg[2] = (uint8_t)(ck >> 8);
  msg[3] = (uint8_t)ck;
  return h_build_ipv4(out, H_PEER_IP, H_OUR_IP, 1, 9, 0, 64, msg, sizeof msg);
}

TEST(icmp_errors_follow_the_quoted_flow_echo_once)
{
  struct toe_config c;
  steer_cfg(&c);
  struct harness h;
  h_init_cfg(&h, &c);
  struct toe_sock *s;
  REQUIRE(toe_udp_open(h.st, NULL, &s) == 0);
  struct toe_sockaddr a = {.family = TOE_AF_INET, .port = 5000, .addr = 0};
  REQUIRE(toe_sock_bind(h.st, s, &a) == 0);
  size_t n = build_icmp_err(fr, 17, 5000, 9);
  CHECK_EQ(toe_steer_frame(h.st, fr, n), TOE_STEER_ENGINE);
  n = build_icmp_err(fr, 17, 5001, 9);
  CHECK_EQ(toe_steer_frame(h.st, fr, n), TOE_STEER_HOST);
  n = build_icmp_err(fr, 6, 5000, 9); /* TCP: the OS's */
  CHECK_EQ(toe_steer_frame(h.st, fr, n), TOE_STEER_HOST);
  n = h_build_icmp_echo(fr, H_PEER_IP, H_OUR_IP, 1, 1, "p", 1);
  CHECK_EQ(toe_steer_frame(h.st, fr, n), TOE_STEER_ENGINE);
  n = h_build_arp(fr, 1, H_PEER_MAC, H_PEER_IP, H_BCAST_MAC, H_OUR_IP, H_BCAST_MAC);
  CHECK_EQ(toe_steer_frame(h.st, fr, n), TOE_STEER_BOTH);
  const struct toe_counters_steer *k = &toe_stack_counters(h.st)->steer;
  CHECK_EQ(k->icmp_err_engine, 1);
  CHECK_EQ(k->icmp_err_host, 2);
  CHECK_EQ(k->echo_engine, 1);
  CHECK_EQ(k->to_both, 1);
  h_fini(&h);

  c.icmp_echo_host = 1;
  h_init_cfg(&h, &c);
  n = h_build_icmp_echo(fr, H_PEER_IP, H_OUR_IP, 1, 1, "p", 1);
  CHECK_EQ(toe_steer_frame(h.st, fr, n), TOE_STEER_HOST);
  h_fini(&h);
}

struct claims {
  int claimed, released;
  uint16_t refuse;
};

static struct claims g_claims; /* the harness owns the callback context */

static int claim_cb(void *ctx, uint8_t proto, uint16_t port, bool claim)
{
  (void)proto;
  (void)ctx;
  if (!claim) {
    g_claims.released++;
    return 0;
  }
  if (port == g_claims.refuse)
    return -TOE_EADDRINUSE;
  g_claims.claimed++;
  return 0;
}

TEST(explicit_binds_are_claimed)
{
  struct toe_config c;
  steer_cfg(&c);
  c.port_claim = claim_cb;
  struct harness h;
  h_init_cfg(&h, &c);
  memset(&g_claims, 0, sizeof g_claims);
  g_claims.refuse = 8080;
  struct toe_sock *s, *t;
  REQUIRE(toe_udp_open(h.st, NULL, &s) == 0);
  REQUIRE(toe_udp_open(h.st, NULL, &t) == 0);
  struct toe_sockaddr a = {.family = TOE_AF_INET, .port = 8080, .addr = 0};
  CHECK_EQ(toe_sock_bind(h.st, s, &a), -TOE_EADDRINUSE);
  CHECK_EQ(toe_filter_count(h.st), 0);
  a.port = 8081;
  CHECK_EQ(toe_sock_bind(h.st, s, &a), 0);
  a.port = 0; /* ephemeral: not claimed */
  CHECK_EQ(toe_sock_bind(h.st, t, &a), 0);
  CHECK_EQ(g_claims.claimed, 1);
  toe_sock_close(h.st, s);
  toe_sock_close(h.st, t);
  CHECK_EQ(g_claims.released, 1);
  h_fini(&h);
}

TEST_MAIN()
