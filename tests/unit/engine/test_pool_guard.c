/*
 * Pool exhaustion by hostile peers (issue 12, item 1; docs/transport.md "Buffer accounting"):
 * each attack that once took every packet buffer -- chargen to tiny-MSS peers that never read,
 * tiny IPv4 fragments to an unread UDP port, TCP data in tiny segments, out-of-order pieces and
 * tiny fragments, and an application that never reads a 4 MiB SO_RCVBUF -- is run against a stack
 * of 1,024 buffers. Afterwards the device must still answer ARP and ping, accept a new connection
 * and move a well-behaved connection's data, and the pool must never have gone below its control
 * reserve.
 */
#include "engine/stack.h"
#include "harness.h"
#include "tcp_harness.h"
#include "testlib.h"

#include <stdlib.h>
#include <string.h>

#define POOL 1024u

static struct harness h;

static const struct toe_counters *ctr(void)
{
  return toe_stack_counters(h.st);
}

static void init_pool(void)
{
  struct toe_config cfg;
  h_default_cfg(&cfg);
  cfg.pbuf_count = POOL;
  cfg.sock_max_bufs = 0; /* the defaults: count/8 = 128 per socket, reserve count/32 = 32 */
  h_init_cfg(&h, &cfg);
}

/* The pool never went below the reserve: the fewest free buffers seen is inuse_max's complement.
 */
static void check_reserve_kept(void)
{
  uint64_t low = POOL - ctr()->pbuf.inuse_max;
  CHECK(low >= toe_pbuf_pool_reserve(h.st) - 1); /* -1: a frame in flight while it was charged */
  CHECK(toe_pbuf_pool_free_count(h.st) >= toe_pbuf_pool_reserve(h.st));
}

/* An ARP request and a ping are answered; a new passive connection is accepted and its data read;
 * a new active connection sends 256 KiB to a peer that acknowledges everything. A second later
 * than the attack: what the hostile sockets hold is then "not moving". */
static void check_device_alive(uint16_t port)
{
  h_advance(&h, TOE_SEC(2));
  uint8_t f[2048];
  h_clear(&h);
  static const uint8_t zero[6];
  size_t n = h_build_arp(f, 1, H_PEER_MAC, H_PEER_IP, zero, H_OUR_IP, H_BCAST_MAC);
  h_input(&h, f, n);
  CHECK_EQ(h_count_tx(&h, 0x0806, 0), 1);
  uint8_t data[56] = {1, 2, 3};
  n = h_build_icmp_echo(f, H_PEER_IP, H_OUR_IP, 0x77, 1, data, sizeof data);
  h_input(&h, f, n);
  CHECK_EQ(h_count_tx(&h, 0x0800, 1), 1);

  /* a well-behaved peer connects and sends 200 full segments, which the application reads */
  struct h_conn good;
  h_conn_init(&good, &h, (uint16_t)(port + 1));
  REQUIRE(h_conn_accept(&good, port) == 0);
  uint8_t seg[1400];
  for (size_t i = 0; i < sizeof seg; i++)
    seg[i] = (uint8_t)i;
  uint8_t rd[32768];
  size_t got = 0;
  for (int i = 0; i < 200; i++) {
    h_conn_send(&good, H_ACK, seg, sizeof seg);
    got += h_conn_read(&good, rd, sizeof rd);
    h_clear(&h);
  }
  CHECK_EQ(got, 200u * sizeof seg);

  /* and the device sends 256 KiB to a well-behaved peer that acknowledges what it gets */
  struct h_conn out;
  h_conn_init(&out, &h, (uint16_t)(port + 2));
  REQUIRE(h_conn_connect(&out, 0) == 0);
  static uint8_t big[16384];
  size_t sent = 0;
  for (int round = 0; round < 2000 && sent < (256u << 10); round++) {
    int rc = toe_tcp_send(h.st, out.s, big, sizeof big, 0);
    if (rc > 0)
      sent += (size_t)rc;
    struct h_tcp t;
    if (h_conn_last(&out, &t)) {
      out.rcv_nxt = t.seq + (uint32_t)t.dlen;
      h_conn_send(&out, H_ACK, NULL, 0);
    }
    h_clear(&h);
    h_advance(&h, TOE_MSEC(1));
  }
  CHECK(sent >= (256u << 10));
}

/* The chargen attack: peers announce MSS 88 and a 2 KiB window and never acknowledge anything
 * past it; the application writes until refused. */
TEST(chargen_to_tiny_mss_peers_that_never_read)
{
  init_pool();
  static uint8_t buf[65536];
  for (int i = 0; i < 20; i++) {
    struct h_conn c;
    h_conn_init(&c, &h, (uint16_t)(7000 + i));
    c.syn_opt.mss = 88;
    c.syn_opt.wscale = -1;
    c.win = 2048;
    REQUIRE(h_conn_connect(&c, 0) == 0);
    int rc;
    int rounds = 0;
    while ((rc = toe_tcp_send(h.st, c.s, buf, sizeof buf, 0)) > 0 && rounds++ < 100)
      ;
    CHECK(rc == -TOE_EAGAIN || rc == -TOE_ENOBUFS);
    h_clear(&h);
  }
  check_reserve_kept();
  CHECK(ctr()->tcp.snd_buf_limited > 0);
  /* each connection stopped at its own allowance: 264 buffers of a 256 KiB send buffer, capped at
   * 128, or earlier under pressure */
  CHECK(ctr()->pbuf.refused_sock + ctr()->pbuf.refused_press > 0);
  check_device_alive(8000);
  h_fini(&h);
}

/* 64 datagrams of 128 eight-byte fragments each to a UDP socket nobody reads. */
TEST(tiny_fragments_to_an_unread_udp_port)
{
  init_pool();
  struct toe_sock *u = NULL;
  REQUIRE(toe_udp_open(h.st, NULL, &u) == 0);
  struct toe_sockaddr a = {.family = TOE_AF_INET, .port = 5555, .addr = 0};
  REQUIRE(toe_sock_bind(h.st, u, &a) == 0);
  h_learn_peer(&h);
  enum { NFRAG = 128, DGRAMS = 64 };
  static uint8_t dg[8 + NFRAG * 8];
  uint8_t f[256];
  for (int d = 0; d < DGRAMS; d++) {
    size_t plen = sizeof dg;
    /* UDP header with checksum 0 (none), then the payload */
    dg[0] = 0x12;
    dg[1] = 0x34;
    dg[2] = 5555 >> 8;
    dg[3] = 5555 & 0xff;
    dg[4] = (uint8_t)(plen >> 8);
    dg[5] = (uint8_t)plen;
    dg[6] = dg[7] = 0;
    for (size_t i = 8; i < plen; i++)
      dg[i] = (uint8_t)(d + i);
    for (size_t off = 0; off < plen; off += 8) {
      uint16_t field = (uint16_t)(off / 8);
      if (off + 8 < plen)
        field |= 0x2000; /* MF */
      size_t n =
          h_build_ipv4(f, H_PEER_IP, H_OUR_IP, 17, (uint16_t)(100 + d), field, 64, dg + off, 8);
      h_input(&h, f, n);
    }
  }
  CHECK_EQ(ctr()->ip.reass_ok, DGRAMS);
  /* every datagram is queued, compacted to one buffer each */
  CHECK_EQ(toe_udp_rx_pending(u, NULL), DGRAMS);
  CHECK(ctr()->pbuf.compacted >= DGRAMS);
  CHECK(toe_pbuf_pool_charged(h.st) <= DGRAMS);
  check_reserve_kept();
  /* the payload survived the compaction */
  uint8_t rd[2048];
  struct toe_sockaddr from;
  int n = toe_udp_recvfrom(h.st, u, rd, sizeof rd, &from);
  REQUIRE(n == NFRAG * 8);
  CHECK_EQ(rd[0], (uint8_t)(0 + 8));
  CHECK_EQ(rd[NFRAG * 8 - 1], (uint8_t)(0 + 8 + NFRAG * 8 - 1));

  /* more than the socket's cap (128 buffers): the rest is dropped and counted, the device lives */
  for (int d = 0; d < 200; d++) {
    size_t k = h_build_udp(f, H_PEER_IP, 1000, H_OUR_IP, 5555, "x", 1);
    h_input(&h, f, k);
  }
  CHECK(ctr()->udp.rx_drop_nomem > 0);
  CHECK(toe_udp_rx_pending(u, NULL) <= 128u);
  check_reserve_kept();
  check_device_alive(8100);
  h_fini(&h);
}

/* TCP: tiny in-order segments, out-of-order pieces and data in tiny IPv4 fragments, to
 * applications that never read. */
TEST(tcp_tiny_segments_ooo_pieces_and_fragments)
{
  init_pool();
  uint8_t one[8] = "abcdefg";
  /* 1. in-order 1-byte segments share buffers */
  struct h_conn c;
  h_conn_init(&c, &h, 7100);
  REQUIRE(h_conn_accept(&c, 7101) == 0);
  for (int i = 0; i < 3000; i++) {
    h_conn_send(&c, H_ACK, one, 1);
    if (h.ntx > 3000)
      h_clear(&h);
  }
  CHECK_EQ(toe_tcp_rx_pending(c.s), 3000u);
  CHECK(toe_pbuf_pool_charged(h.st) <= 4);
  h_clear(&h);

  /* 2. in-order data in 8-byte IPv4 fragments: compacted before it is queued */
  struct h_conn g;
  h_conn_init(&g, &h, 7400);
  REQUIRE(h_conn_accept(&g, 7401) == 0);
  uint8_t frame[2048], seg[1600], f[256];
  for (int s = 0; s < 10; s++) {
    uint8_t pay[1000];
    memset(pay, 'A' + s, sizeof pay);
    /* build the segment through the harness, then cut its IP payload into fragments */
    struct h_tcp_opt o;
    h_tcp_opt_none(&o);
    o.ts = g.ts; /* agreed in the handshake: every segment carries them (RFC 7323 3.2) */
    o.tsval = g.tsval++;
    o.tsecr = g.ts_recent;
    uint8_t opts[40];
    size_t ol = h_tcp_opts(opts, &o);
    size_t fl = h_build_tcp(frame, H_PEER_IP, g.pport, H_OUR_IP, g.lport, g.snd_nxt, g.rcv_nxt,
                            H_ACK, 65535, opts, ol, pay, sizeof pay);
    size_t tcp_len = fl - 14 - 20;
    memcpy(seg, frame + 14 + 20, tcp_len);
    for (size_t off = 0; off < tcp_len; off += 8) {
      size_t len = tcp_len - off < 8 ? tcp_len - off : 8;
      uint16_t field = (uint16_t)(off / 8);
      if (off + len < tcp_len)
        field |= 0x2000;
      size_t n =
          h_build_ipv4(f, H_PEER_IP, H_OUR_IP, 6, (uint16_t)(900 + s), field, 64, seg + off, len);
      h_input(&h, f, n);
    }
    g.snd_nxt += sizeof pay;
    h_clear(&h);
  }
  CHECK_EQ(toe_tcp_rx_pending(g.s), 10000u);
  /* 1,250 fragments, held in about a buffer per segment (3000 bytes of part 1 in 2) */
  CHECK(toe_pbuf_pool_charged(h.st) <= 14);
  uint8_t rd[10000];
  CHECK_EQ(toe_tcp_recv(h.st, g.s, rd, sizeof rd), 10000);
  CHECK_EQ(rd[0], 'A');
  CHECK_EQ(rd[9999], 'J');
  check_reserve_kept();
  /* 3. out-of-order pieces: every other byte above a hole, on 20 connections */
  for (int k = 0; k < 20; k++) {
    struct h_conn o;
    h_conn_init(&o, &h, (uint16_t)(7200 + k));
    REQUIRE(h_conn_accept(&o, (uint16_t)(7300 + k)) == 0);
    for (uint32_t i = 1; i < 600; i += 2)
      h_conn_send_at(&o, o.snd_nxt + i, H_ACK, one, 1);
    h_clear(&h);
  }
  CHECK(ctr()->tcp.rx_drop_ooo_full + ctr()->tcp.rx_drop_nomem > 0);
  check_reserve_kept();

  check_device_alive(8200);
  h_fini(&h);
}

/* Applications that never read, with a 4 MiB SO_RCVBUF (a host client that never returns its
 * receive buffers leaves exactly this in the engine): the window is clamped to what the socket's
 * cap holds, and pressure stops the sockets holding the pool. */
TEST(unread_4mib_receive_buffers)
{
  init_pool();
  static uint8_t seg[1448];
  memset(seg, 'z', sizeof seg);
  for (int k = 0; k < 30; k++) {
    struct h_conn c;
    h_conn_init(&c, &h, (uint16_t)(7500 + k));
    struct toe_sock *ls = NULL;
    REQUIRE(toe_tcp_open(h.st, NULL, &ls) == 0);
    REQUIRE(toe_sock_setopt(h.st, ls, TOE_SO_RCVBUF, 4 << 20) == 0);
    int64_t v = 0;
    REQUIRE(toe_sock_getopt(h.st, ls, TOE_SO_RCVBUF, &v) == 0);
    CHECK(v <= 128 * 1024); /* the cap (128 buffers) at half a buffer per segment */
    toe_sock_close(h.st, ls);
    REQUIRE(h_conn_accept(&c, (uint16_t)(7600 + k)) == 0);
    REQUIRE(toe_sock_setopt(h.st, c.s, TOE_SO_RCVBUF, 4 << 20) == 0);
    /* the peer sends 300 segments (more than any window): what fits is queued */
    for (int i = 0; i < 300; i++)
      h_conn_send(&c, H_ACK, seg, sizeof seg);
    h_clear(&h);
  }
  CHECK(ctr()->pbuf.refused_press + ctr()->pbuf.refused_sock > 0);
  check_reserve_kept();
  check_device_alive(8300);
  h_fini(&h);
}

TEST_MAIN()
