/*
 * UDP through the whole engine: hand-built frames in, captured frames out, on a virtual clock.
 * Frames are checked against the harness's reference checksum, not the wire layer's.
 */
#include "engine/stack.h"
#include "harness.h"
#include "testlib.h"

#include <stdlib.h>

#define ETH 14
#define IPH 20
#define UDP_OFF (ETH + IPH)
#define PAY_OFF (UDP_OFF + 8)

static uint8_t frame[70000];
static struct harness h; /* big: keep it off the stack */

static struct toe_sockaddr sa(uint32_t addr, uint16_t port)
{
  struct toe_sockaddr a = {.family = TOE_AF_INET, .port = port, .addr = addr};
  return a;
}

static void put16(uint8_t *p, uint16_t v)
{
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}

/* A bound socket on our side. */
static struct toe_sock *bound(uint32_t addr, uint16_t port, void *user)
{
  struct toe_sock *s = NULL;
  if (toe_udp_open(h.st, user, &s) != 0)
    return NULL;
  struct toe_sockaddr l = sa(addr, port);
  if (toe_sock_bind(h.st, s, &l) != 0) {
    toe_sock_close(h.st, s);
    return NULL;
  }
  return s;
}

/* Feeds a datagram from src:sport to dst:dport. */
static void feed(uint32_t src, uint16_t sport, uint32_t dst, uint16_t dport, const void *data,
                 size_t dlen)
{
  size_t n = h_build_udp(frame, src, sport, dst, dport, data, dlen);
  h_input(&h, frame, n);
}

/*
 * A datagram with a chosen length field: `dlen` payload bytes follow the header in the IP
 * packet, the UDP length field says `lenfield`, and the checksum covers min(lenfield, 8+dlen)
 * bytes (or is zero when `csum` is false).
 */
static size_t build_raw(uint8_t *out, uint16_t sport, uint16_t dport, uint16_t lenfield,
                        const void *data, size_t dlen, int csum)
{
  static uint8_t seg[70000];
  put16(seg, sport);
  put16(seg + 2, dport);
  put16(seg + 4, lenfield);
  put16(seg + 6, 0);
  memcpy(seg + 8, data, dlen);
  if (csum) {
    size_t cover = lenfield < 8 + dlen ? lenfield : 8 + dlen;
    uint16_t c = h_csum(seg, cover, h_pseudo_sum(H_PEER_IP, H_OUR_IP, 17, lenfield));
    put16(seg + 6, c ? c : 0xffff);
  }
  return h_build_ipv4(out, H_PEER_IP, H_OUR_IP, 17, 7, 0, 64, seg, 8 + dlen);
}

static uint32_t pool_free(void)
{
  return toe_pbuf_pool_free_count(h.st);
}
static const struct toe_counters_udp *udpc(void)
{
  return &toe_stack_counters(h.st)->udp;
}

/* Counts captured events of `ev` kind for `s`. */
static int count_ev(struct toe_sock *s, uint32_t ev)
{
  int n = 0;
  for (int i = 0; i < h.nev; i++)
    n += h.ev[i].sock == s && (h.ev[i].events & ev);
  return n;
}

TEST(receive_datagram)
{
  h_init(&h);
  int cookie;
  struct toe_sock *s = bound(0, 7000, &cookie);
  REQUIRE(s);
  feed(H_PEER_IP, 1234, H_OUR_IP, 7000, "hello", 5);
  CHECK_EQ(udpc()->rx_datagrams, 1);
  CHECK_EQ(udpc()->rx_delivered, 1);
  uint32_t bytes = 0;
  CHECK_EQ(toe_udp_rx_pending(s, &bytes), 1);
  CHECK_EQ(bytes, 5);
  REQUIRE(h.nev >= 1);
  CHECK(h.ev[0].sock == s);
  CHECK(h.ev[0].user == &cookie);
  CHECK(h.ev[0].events & TOE_EV_READABLE);

  char buf[64];
  struct toe_sockaddr from = {0};
  CHECK_EQ(toe_udp_recvfrom(h.st, s, buf, sizeof(buf), &from), 5);
  CHECK_MEM(buf, "hello", 5);
  CHECK_EQ(from.family, TOE_AF_INET);
  CHECK_EQ(from.addr, H_PEER_IP);
  CHECK_EQ(from.port, 1234);
  CHECK_EQ(toe_udp_recvfrom(h.st, s, buf, sizeof(buf), &from), -TOE_EAGAIN);
  CHECK_EQ(toe_udp_rx_pending(s, &bytes), 0);
  CHECK_EQ(bytes, 0);
  CHECK_EQ(h.ntx, 0); /* nothing answered */
  toe_sock_close(h.st, s);
  h_fini(&h);
}

TEST(readable_only_when_queue_becomes_non_empty)
{
  h_init(&h);
  struct toe_sock *s = bound(0, 7000, NULL);
  REQUIRE(s);
  feed(H_PEER_IP, 1, H_OUR_IP, 7000, "a", 1);
  feed(H_PEER_IP, 1, H_OUR_IP, 7000, "b", 1);
  CHECK_EQ(count_ev(s, TOE_EV_READABLE), 1);
  char c;
  CHECK_EQ(toe_udp_recvfrom(h.st, s, &c, 1, NULL), 1);
  CHECK_EQ(c, 'a');
  feed(H_PEER_IP, 1, H_OUR_IP, 7000, "c", 1);
  CHECK_EQ(count_ev(s, TOE_EV_READABLE), 1); /* queue was not empty */
  CHECK_EQ(toe_udp_recvfrom(h.st, s, &c, 1, NULL), 1);
  CHECK_EQ(c, 'b');
  CHECK_EQ(toe_udp_recvfrom(h.st, s, &c, 1, NULL), 1);
  CHECK_EQ(c, 'c');
  feed(H_PEER_IP, 1, H_OUR_IP, 7000, "d", 1);
  CHECK_EQ(count_ev(s, TOE_EV_READABLE), 2);
  toe_sock_close(h.st, s);
  h_fini(&h);
}

TEST(zero_length_and_truncation)
{
  h_init(&h);
  struct toe_sock *s = bound(0, 7000, NULL);
  REQUIRE(s);
  feed(H_PEER_IP, 1, H_OUR_IP, 7000, "", 0);
  feed(H_PEER_IP, 1, H_OUR_IP, 7000, "0123456789", 10);
  uint32_t bytes;
  CHECK_EQ(toe_udp_rx_pending(s, &bytes), 2);
  CHECK_EQ(bytes, 10);
  char buf[16];
  memset(buf, 'x', sizeof(buf));
  CHECK_EQ(toe_udp_recvfrom(h.st, s, buf, sizeof(buf), NULL), 0);
  /* like MSG_TRUNC: the full length is returned, only cap bytes are copied */
  CHECK_EQ(toe_udp_recvfrom(h.st, s, buf, 4, NULL), 10);
  CHECK_MEM(buf, "0123", 4);
  CHECK_EQ(buf[4], 'x');
  toe_sock_close(h.st, s);
  h_fini(&h);
}

TEST(checksum_zero_accepted)
{
  h_init(&h);
  struct toe_sock *s = bound(0, 7000, NULL);
  REQUIRE(s);
  size_t n = build_raw(frame, 1234, 7000, 8 + 4, "data", 4, 0);
  CHECK_EQ(h_be16(frame + UDP_OFF + 6), 0);
  h_input(&h, frame, n);
  CHECK_EQ(udpc()->rx_drop_checksum, 0);
  char buf[8];
  CHECK_EQ(toe_udp_recvfrom(h.st, s, buf, sizeof(buf), NULL), 4);
  CHECK_MEM(buf, "data", 4);
  toe_sock_close(h.st, s);
  h_fini(&h);
}

TEST(bad_checksum_dropped)
{
  h_init(&h);
  struct toe_sock *s = bound(0, 7000, NULL);
  REQUIRE(s);
  uint32_t start = pool_free();
  size_t n = h_build_udp(frame, H_PEER_IP, 1234, H_OUR_IP, 7000, "payload", 7);
  frame[PAY_OFF + 2] ^= 0x01;
  h_input(&h, frame, n);
  CHECK_EQ(udpc()->rx_drop_checksum, 1);
  CHECK_EQ(udpc()->rx_delivered, 0);
  CHECK_EQ(toe_udp_rx_pending(s, NULL), 0);
  CHECK_EQ(count_ev(s, TOE_EV_READABLE), 0);
  CHECK_EQ(h.ntx, 0); /* no ICMP for a corrupted datagram */
  CHECK_EQ(pool_free(), start);

  /* a wrong checksum in the header itself, also to a closed port: dropped, not answered */
  n = h_build_udp(frame, H_PEER_IP, 1234, H_OUR_IP, 7001, "payload", 7);
  frame[UDP_OFF + 7] ^= 0x10;
  h_input(&h, frame, n);
  CHECK_EQ(udpc()->rx_drop_checksum, 2);
  CHECK_EQ(udpc()->rx_drop_no_port, 0);
  CHECK_EQ(h.ntx, 0);
  toe_sock_close(h.st, s);
  h_fini(&h);
}

TEST(length_field_lies)
{
  h_init(&h);
  struct toe_sock *s = bound(0, 7000, NULL);
  REQUIRE(s);
  uint32_t start = pool_free();
  /* longer than the IP payload */
  size_t n = build_raw(frame, 1234, 7000, 8 + 20, "0123456789", 10, 1);
  h_input(&h, frame, n);
  CHECK_EQ(udpc()->rx_drop_malformed, 1);
  /* shorter than the header */
  n = build_raw(frame, 1234, 7000, 7, "0123456789", 10, 0);
  h_input(&h, frame, n);
  CHECK_EQ(udpc()->rx_drop_malformed, 2);
  /* IP payload shorter than a UDP header */
  n = h_build_ipv4(frame, H_PEER_IP, H_OUR_IP, 17, 9, 0, 64, "\x04\xd2\x1b\x58", 4);
  h_input(&h, frame, n);
  CHECK_EQ(udpc()->rx_drop_malformed + toe_stack_counters(h.st)->ip.rx_drop_malformed, 3);
  CHECK_EQ(udpc()->rx_delivered, 0);
  CHECK_EQ(toe_udp_rx_pending(s, NULL), 0);
  CHECK_EQ(pool_free(), start);

  /* shorter than the IP payload: the rest is padding, the datagram is the first 4 bytes */
  n = build_raw(frame, 1234, 7000, 8 + 4, "0123456789", 10, 1);
  h_input(&h, frame, n);
  CHECK_EQ(udpc()->rx_drop_checksum, 0);
  char buf[16];
  CHECK_EQ(toe_udp_recvfrom(h.st, s, buf, sizeof(buf), NULL), 4);
  CHECK_MEM(buf, "0123", 4);
  toe_sock_close(h.st, s);
  CHECK_EQ(pool_free(), start);
  h_fini(&h);
}

TEST(ethernet_padding_ignored)
{
  h_init(&h);
  struct toe_sock *s = bound(0, 7000, NULL);
  REQUIRE(s);
  size_t n = h_build_udp(frame, H_PEER_IP, 1234, H_OUR_IP, 7000, "hi", 2);
  memset(frame + n, 0xee, 60 - n); /* minimum frame: padded to 60 bytes */
  h_input(&h, frame, 60);
  char buf[16];
  CHECK_EQ(toe_udp_recvfrom(h.st, s, buf, sizeof(buf), NULL), 2);
  CHECK_MEM(buf, "hi", 2);
  toe_sock_close(h.st, s);
  h_fini(&h);
}

TEST(connected_socket_filters_peers)
{
  h_init(&h);
  struct toe_sock *s = bound(0, 7000, NULL);
  REQUIRE(s);
  struct toe_sockaddr peer = sa(H_PEER_IP, 9999);
  CHECK_EQ(toe_sock_connect(h.st, s, &peer), 0);
  feed(H_PEER_IP, 1234, H_OUR_IP, 7000, "wrong port", 10);
  feed(0xc6120003u, 9999, H_OUR_IP, 7000, "wrong host", 10);
  CHECK_EQ(toe_udp_rx_pending(s, NULL), 0);
  CHECK_EQ(udpc()->rx_drop_no_port, 2);
  feed(H_PEER_IP, 9999, H_OUR_IP, 7000, "right", 5);
  char buf[16];
  struct toe_sockaddr from;
  CHECK_EQ(toe_udp_recvfrom(h.st, s, buf, sizeof(buf), &from), 5);
  CHECK_EQ(from.port, 9999);

  /* dissolving the association accepts everyone again */
  struct toe_sockaddr unspec = {0};
  CHECK_EQ(toe_sock_connect(h.st, s, &unspec), 0);
  feed(0xc6120003u, 9999, H_OUR_IP, 7000, "other", 5);
  CHECK_EQ(toe_udp_recvfrom(h.st, s, buf, sizeof(buf), &from), 5);
  CHECK_EQ(from.addr, 0xc6120003u);
  toe_sock_close(h.st, s);
  h_fini(&h);
}

TEST(specific_and_any_binds)
{
  h_init(&h);
  struct toe_sock *ours = bound(H_OUR_IP, 7000, NULL);
  struct toe_sock *any = bound(0, 7001, NULL);
  REQUIRE(ours && any);
  const uint32_t bcast = 0xc61200ffu;
  feed(H_PEER_IP, 1, bcast, 7000, "b0", 2); /* not for a socket bound to our address */
  feed(H_PEER_IP, 1, bcast, 7001, "b1", 2);
  feed(H_PEER_IP, 1, H_OUR_IP, 7000, "u0", 2);
  char buf[4];
  CHECK_EQ(toe_udp_rx_pending(ours, NULL), 1);
  CHECK_EQ(toe_udp_recvfrom(h.st, ours, buf, sizeof(buf), NULL), 2);
  CHECK_MEM(buf, "u0", 2);
  CHECK_EQ(toe_udp_rx_pending(any, NULL), 1);
  CHECK_EQ(toe_udp_recvfrom(h.st, any, buf, sizeof(buf), NULL), 2);
  CHECK_MEM(buf, "b1", 2);
  CHECK_EQ(udpc()->rx_drop_no_port, 1);
  CHECK_EQ(h_count_tx(&h, 0x0800, 1), 0); /* no ICMP about a broadcast (RFC 1122 4.1.3.1) */
  toe_sock_close(h.st, ours);
  toe_sock_close(h.st, any);
  h_fini(&h);
}

TEST(receive_queue_bound)
{
  struct toe_config cfg;
  h_default_cfg(&cfg);
  cfg.udp_rcvq_len = 4;
  h_init_cfg(&h, &cfg);
  struct toe_sock *s = bound(0, 7000, NULL);
  REQUIRE(s);
  uint32_t start = pool_free();
  for (uint8_t i = 0; i < 6; i++)
    feed(H_PEER_IP, 1234, H_OUR_IP, 7000, &i, 1);
  CHECK_EQ(toe_udp_rx_pending(s, NULL), 4);
  CHECK_EQ(udpc()->rx_drop_queue_full, 2);
  CHECK_EQ(udpc()->rx_delivered, 4);
  for (uint8_t i = 0; i < 4; i++) {
    uint8_t b = 0xff;
    CHECK_EQ(toe_udp_recvfrom(h.st, s, &b, 1, NULL), 1);
    CHECK_EQ(b, i); /* oldest first; the late ones were dropped */
  }
  CHECK_EQ(pool_free(), start);
  /* room again */
  feed(H_PEER_IP, 1234, H_OUR_IP, 7000, "z", 1);
  CHECK_EQ(toe_udp_rx_pending(s, NULL), 1);
  toe_sock_close(h.st, s);
  h_fini(&h);
}

/* Checks the IPv4 + UDP headers of captured frame `idx` and returns the UDP header pointer. */
static const uint8_t *check_udp_frame(int idx, uint16_t sport, uint32_t dst, uint16_t dport,
                                      const void *payload, size_t plen)
{
  const uint8_t *f = h.tx[idx].bytes;
  CHECK(h.tx[idx].len >= PAY_OFF + plen);
  if (h.tx[idx].len < PAY_OFF + plen)
    return NULL;
  CHECK_MEM(f + 6, H_OUR_MAC, 6);
  CHECK_EQ(h_be16(f + 12), 0x0800);
  const uint8_t *ip = f + ETH;
  CHECK_EQ(ip[0], 0x45);
  CHECK_EQ(h_be16(ip + 2), IPH + 8 + plen);
  CHECK_EQ(ip[9], 17);
  CHECK_EQ(ip[8], 64);
  CHECK_EQ(h_be32(ip + 12), H_OUR_IP);
  CHECK_EQ(h_be32(ip + 16), dst);
  CHECK_EQ(h_csum(ip, IPH, 0), 0);
  const uint8_t *u = ip + IPH;
  CHECK_EQ(h_be16(u), sport);
  CHECK_EQ(h_be16(u + 2), dport);
  CHECK_EQ(h_be16(u + 4), 8 + plen);
  CHECK(h_be16(u + 6) != 0); /* we always compute it */
  CHECK_EQ(h_csum(u, 8 + plen, h_pseudo_sum(H_OUR_IP, dst, 17, (uint16_t)(8 + plen))), 0);
  CHECK_MEM(u + 8, payload, plen);
  return u;
}

TEST(send_frame)
{
  h_init(&h);
  h_learn_peer(&h);
  struct toe_sock *s = bound(0, 7000, NULL);
  REQUIRE(s);
  struct toe_sockaddr dst = sa(H_PEER_IP, 9999);
  CHECK_EQ(toe_udp_sendto(h.st, s, "payload", 7, &dst), 7);
  REQUIRE(h.ntx == 1);
  CHECK_MEM(h.tx[0].bytes, H_PEER_MAC, 6);
  check_udp_frame(0, 7000, H_PEER_IP, 9999, "payload", 7);
  CHECK_EQ(udpc()->tx_datagrams, 1);

  /* odd lengths and the empty datagram checksum right too */
  h_clear(&h);
  CHECK_EQ(toe_udp_sendto(h.st, s, "abc", 3, &dst), 3);
  CHECK_EQ(toe_udp_sendto(h.st, s, NULL, 0, &dst), 0);
  REQUIRE(h.ntx == 2);
  check_udp_frame(0, 7000, H_PEER_IP, 9999, "abc", 3);
  check_udp_frame(1, 7000, H_PEER_IP, 9999, "", 0);
  toe_sock_close(h.st, s);
  h_fini(&h);
}

TEST(send_autobinds_and_connected_default)
{
  h_init(&h);
  h_learn_peer(&h);
  struct toe_sock *s = NULL;
  REQUIRE(toe_udp_open(h.st, NULL, &s) == 0);
  struct toe_sockaddr dst = sa(H_PEER_IP, 9999), l;
  CHECK_EQ(toe_udp_sendto(h.st, s, "x", 1, NULL), -TOE_EDESTADDRREQ);
  CHECK_EQ(toe_udp_sendto(h.st, s, "x", 1, &dst), 1);
  toe_sock_name(s, &l, NULL);
  CHECK(l.port >= 49152);
  REQUIRE(h.ntx == 1);
  check_udp_frame(0, l.port, H_PEER_IP, 9999, "x", 1);

  struct toe_sockaddr peer2 = sa(H_PEER_IP, 8888);
  CHECK_EQ(toe_sock_connect(h.st, s, &peer2), 0);
  CHECK_EQ(toe_udp_sendto(h.st, s, "yy", 2, NULL), 2);
  REQUIRE(h.ntx == 2);
  check_udp_frame(1, l.port, H_PEER_IP, 8888, "yy", 2);
  toe_sock_close(h.st, s);
  h_fini(&h);
}

TEST(send_errors)
{
  h_init(&h);
  h_learn_peer(&h);
  struct toe_sock *s = bound(0, 7000, NULL);
  REQUIRE(s);
  uint32_t start = pool_free();
  static uint8_t big[65508];
  struct toe_sockaddr dst = sa(H_PEER_IP, 9999);
  CHECK_EQ(toe_udp_sendto(h.st, s, big, 65508, &dst), -TOE_EMSGSIZE);
  struct toe_sockaddr port0 = sa(H_PEER_IP, 0), addr0 = sa(0, 9999), fam = sa(H_PEER_IP, 9999);
  fam.family = 99; /* neither TOE_AF_INET nor TOE_AF_INET6 */
  CHECK_EQ(toe_udp_sendto(h.st, s, "x", 1, &port0), -TOE_EINVAL);
  CHECK_EQ(toe_udp_sendto(h.st, s, "x", 1, &addr0), -TOE_EINVAL);
  CHECK_EQ(toe_udp_sendto(h.st, s, "x", 1, &fam), -TOE_EINVAL);
  /* off-link with no gateway: no route */
  struct toe_sockaddr far = sa(0xc6130001u, 9999);
  CHECK_EQ(toe_udp_sendto(h.st, s, "x", 1, &far), -TOE_ENETUNREACH);
  CHECK_EQ(h.ntx, 0);
  CHECK_EQ(udpc()->tx_datagrams, 0);
  CHECK(udpc()->tx_errors >= 5);
  CHECK_EQ(pool_free(), start);
  toe_sock_close(h.st, s);
  h_fini(&h);
}

TEST(send_pool_exhausted)
{
  struct toe_config cfg;
  h_default_cfg(&cfg);
  cfg.pbuf_count = 16;
  h_init_cfg(&h, &cfg);
  h_learn_peer(&h);
  struct toe_sock *s = bound(0, 7000, NULL);
  REQUIRE(s);
  uint32_t start = pool_free();
  static uint8_t big[60000]; /* needs about 30 buffers of 2048 */
  struct toe_sockaddr dst = sa(H_PEER_IP, 9999);
  CHECK_EQ(toe_udp_sendto(h.st, s, big, sizeof(big), &dst), -TOE_ENOBUFS);
  CHECK_EQ(pool_free(), start);
  CHECK_EQ(toe_udp_sendto(h.st, s, "ok", 2, &dst), 2); /* and it recovers */
  toe_sock_close(h.st, s);
  h_fini(&h);
}

TEST(send_max_datagram)
{
  h_init(&h);
  h_learn_peer(&h);
  struct toe_sock *s = bound(0, 7000, NULL);
  REQUIRE(s);
  static uint8_t big[65507];
  for (size_t i = 0; i < sizeof(big); i++)
    big[i] = (uint8_t)(i * 13);
  struct toe_sockaddr dst = sa(H_PEER_IP, 9999);
  CHECK_EQ(toe_udp_sendto(h.st, s, big, sizeof(big), &dst), 65507);
  CHECK_EQ(h_count_tx(&h, 0x0800, 17), 45); /* ceil(65515 / 1480) */
  toe_sock_close(h.st, s);
  h_fini(&h);
}

/* Reassembles the captured fragments of one datagram into `out`; returns its payload length. */
static size_t reassemble(uint8_t *out, size_t cap)
{
  size_t total = 0, got = 0;
  for (int k = 0;; k++) {
    int i = h_find_tx(&h, 0x0800, 17, k);
    if (i < 0)
      break;
    const uint8_t *ip = h.tx[i].bytes + ETH;
    CHECK_EQ(h_csum(ip, IPH, 0), 0);
    uint16_t ff = h_be16(ip + 6);
    size_t off = (size_t)(ff & 0x1fff) * 8, len = h_be16(ip + 2) - IPH;
    if (off + len > cap)
      return 0;
    memcpy(out + off, ip + IPH, len);
    got += len;
    if (!(ff & 0x2000))
      total = off + len;
  }
  return got == total ? total : 0;
}

TEST(large_sendto_fragments)
{
  h_init(&h);
  h_learn_peer(&h);
  struct toe_sock *s = bound(0, 7000, NULL);
  REQUIRE(s);
  static uint8_t data[4000];
  for (size_t i = 0; i < sizeof(data); i++)
    data[i] = (uint8_t)(i * 7 + 3);
  struct toe_sockaddr dst = sa(H_PEER_IP, 9999);
  CHECK_EQ(toe_udp_sendto(h.st, s, data, sizeof(data), &dst), 4000);
  CHECK_EQ(h_count_tx(&h, 0x0800, 17), 3); /* 4008 bytes at 1480 per fragment */
  static uint8_t dg[8000];
  size_t n = reassemble(dg, sizeof(dg));
  REQUIRE(n == 4008);
  CHECK_EQ(h_be16(dg), 7000);
  CHECK_EQ(h_be16(dg + 2), 9999);
  CHECK_EQ(h_be16(dg + 4), 4008);
  CHECK_EQ(h_csum(dg, n, h_pseudo_sum(H_OUR_IP, H_PEER_IP, 17, 4008)), 0);
  CHECK_MEM(dg + 8, data, sizeof(data));
  CHECK_EQ(udpc()->tx_datagrams, 1);
  toe_sock_close(h.st, s);
  h_fini(&h);
}

TEST(send_to_broadcast)
{
  h_init(&h);
  struct toe_sock *s = bound(0, 7000, NULL);
  REQUIRE(s);
  struct toe_sockaddr dir = sa(0xc61200ffu, 9999), lim = sa(0xffffffffu, 9999);
  CHECK_EQ(toe_udp_sendto(h.st, s, "b", 1, &dir), 1);
  CHECK_EQ(toe_udp_sendto(h.st, s, "c", 1, &lim), 1);
  REQUIRE(h_count_tx(&h, 0x0800, 17) == 2);
  int i = h_find_tx(&h, 0x0800, 17, 0);
  CHECK_MEM(h.tx[i].bytes, H_BCAST_MAC, 6);
  check_udp_frame(i, 7000, 0xc61200ffu, 9999, "b", 1);
  i = h_find_tx(&h, 0x0800, 17, 1);
  CHECK_MEM(h.tx[i].bytes, H_BCAST_MAC, 6);
  check_udp_frame(i, 7000, 0xffffffffu, 9999, "c", 1);
  CHECK_EQ(h_count_tx(&h, 0x0806, 0), 0); /* no ARP needed */
  toe_sock_close(h.st, s);
  h_fini(&h);
}

TEST(send_waits_for_arp)
{
  h_init(&h);
  struct toe_sock *s = bound(0, 7000, NULL);
  REQUIRE(s);
  struct toe_sockaddr dst = sa(H_PEER_IP, 9999);
  CHECK_EQ(toe_udp_sendto(h.st, s, "q", 1, &dst), 1); /* queued counts as sent */
  CHECK_EQ(h_count_tx(&h, 0x0800, 17), 0);
  CHECK_EQ(h_count_tx(&h, 0x0806, 0), 1);
  uint8_t f[64];
  size_t n = h_build_arp(f, 2, H_PEER_MAC, H_PEER_IP, H_OUR_MAC, H_OUR_IP, H_OUR_MAC);
  h_input(&h, f, n);
  int i = h_find_tx(&h, 0x0800, 17, 0);
  REQUIRE(i >= 0);
  check_udp_frame(i, 7000, H_PEER_IP, 9999, "q", 1);
  toe_sock_close(h.st, s);
  h_fini(&h);
}

TEST(closed_port_icmp_unreachable)
{
  h_init(&h);
  h_learn_peer(&h);
  size_t n = h_build_udp(frame, H_PEER_IP, 1234, H_OUR_IP, 7777, "nobody home", 11);
  h_input(&h, frame, n);
  CHECK_EQ(udpc()->rx_drop_no_port, 1);
  REQUIRE(h_count_tx(&h, 0x0800, 1) == 1);
  int i = h_find_tx(&h, 0x0800, 1, 0);
  const uint8_t *f = h.tx[i].bytes;
  const uint8_t *ip = f + ETH;
  CHECK_MEM(f, H_PEER_MAC, 6);
  CHECK_EQ(h_be32(ip + 12), H_OUR_IP);
  CHECK_EQ(h_be32(ip + 16), H_PEER_IP);
  size_t iplen = h_be16(ip + 2);
  REQUIRE(iplen >= IPH + 8 + IPH + 8 && iplen <= h.tx[i].len - ETH);
  const uint8_t *icmp = ip + IPH;
  CHECK_EQ(icmp[0], 3);
  CHECK_EQ(icmp[1], 3);
  CHECK_EQ(h_csum(icmp, iplen - IPH, 0), 0);
  /* it quotes the offending IP header and (at least) the UDP header */
  CHECK_MEM(icmp + 8, frame + ETH, IPH + 8);
  toe_sock_close(h.st, NULL); /* harmless */
  h_fini(&h);
}

/* An ICMP destination unreachable from the peer quoting captured frame `idx`. */
static size_t build_unreach(uint8_t *out, int idx, uint8_t code)
{
  uint8_t msg[8 + IPH + 8];
  memset(msg, 0, sizeof(msg));
  msg[0] = 3;
  msg[1] = code;
  memcpy(msg + 8, h.tx[idx].bytes + ETH, IPH + 8);
  put16(msg + 2, h_csum(msg, sizeof(msg), 0));
  return h_build_ipv4(out, H_PEER_IP, H_OUR_IP, 1, 99, 0, 64, msg, sizeof(msg));
}

TEST(icmp_port_unreachable_to_connected_socket)
{
  h_init(&h);
  h_learn_peer(&h);
  struct toe_sock *c = bound(0, 7000, NULL);
  struct toe_sock *u = bound(0, 7001, NULL);
  REQUIRE(c && u);
  struct toe_sockaddr peer = sa(H_PEER_IP, 9999);
  CHECK_EQ(toe_sock_connect(h.st, c, &peer), 0);
  CHECK_EQ(toe_udp_sendto(h.st, c, "x", 1, NULL), 1);
  CHECK_EQ(toe_udp_sendto(h.st, u, "y", 1, &peer), 1);
  REQUIRE(h.ntx == 2);
  uint8_t f[128];
  size_t n = build_unreach(f, 0, 3);
  size_t n2 = build_unreach(frame, 1, 3);
  h.nev = 0;
  h_input(&h, f, n);
  CHECK_EQ(count_ev(c, TOE_EV_ERROR), 1);
  CHECK_EQ(toe_sock_error(h.st, c), -TOE_ECONNREFUSED);
  CHECK_EQ(toe_sock_error(h.st, c), 0);
  CHECK_EQ(toe_stack_counters(h.st)->icmp.rx_errors_delivered, 1);

  /* the unconnected socket is not told (like Linux without IP_RECVERR) */
  h_input(&h, frame, n2);
  CHECK_EQ(count_ev(u, TOE_EV_ERROR), 0);
  CHECK_EQ(toe_sock_error(h.st, u), 0);
  /* ... unless it asked with IP_RECVERR: then it is, as Linux's udp_err tells it (issue 13
   * item 4) */
  CHECK_EQ(toe_sock_setopt(h.st, u, TOE_IP_RECVERR, 1), 0);
  h_input(&h, frame, n2);
  CHECK_EQ(count_ev(u, TOE_EV_ERROR), 1);
  CHECK_EQ(toe_sock_error(h.st, u), -TOE_ECONNREFUSED);
  CHECK_EQ(toe_sock_error(h.st, u), 0);

  /* after disconnecting, errors about the old peer are ignored too */
  struct toe_sockaddr unspec = {0};
  CHECK_EQ(toe_sock_connect(h.st, c, &unspec), 0);
  h_input(&h, f, n);
  CHECK_EQ(toe_sock_error(h.st, c), 0);
  toe_sock_close(h.st, c);
  toe_sock_close(h.st, u);
  h_fini(&h);
}

TEST(icmp_error_direct)
{
  /* the entry point the ICMP layer calls, with a hand-made quoted header view */
  h_init(&h);
  struct toe_sock *c = bound(0, 7000, NULL);
  REQUIRE(c);
  struct toe_sockaddr peer = sa(H_PEER_IP, 9999);
  CHECK_EQ(toe_sock_connect(h.st, c, &peer), 0);
  struct toe_ipv4_view q;
  memset(&q, 0, sizeof(q));
  q.src = H_OUR_IP;
  q.dst = H_PEER_IP;
  q.proto = 17;
  q.hdr_len = 20;
  uint8_t l4[8] = {0x1b, 0x58, 0x27, 0x0f, 0, 9, 0, 0}; /* 7000 -> 9999 */
  CHECK(toe_udp_icmp_error(h.st, &q, l4, -TOE_EHOSTUNREACH));
  CHECK_EQ(toe_sock_error(h.st, c), -TOE_EHOSTUNREACH);
  l4[3] = 0x10; /* other remote port */
  CHECK(!toe_udp_icmp_error(h.st, &q, l4, -TOE_ECONNREFUSED));
  l4[3] = 0x0f;
  q.src = 0xc6120007u; /* not sent by us */
  CHECK(!toe_udp_icmp_error(h.st, &q, l4, -TOE_ECONNREFUSED));
  CHECK_EQ(toe_sock_error(h.st, c), 0);
  toe_sock_close(h.st, c);
  h_fini(&h);
}

TEST(zero_copy_recv_and_send)
{
  h_init(&h);
  h_learn_peer(&h);
  struct toe_sock *s = bound(0, 7000, NULL);
  REQUIRE(s);
  uint32_t start = pool_free();
  feed(H_PEER_IP, 4321, H_OUR_IP, 7000, "zero-copy", 9);
  struct toe_sockaddr from;
  struct toe_pbuf *pb = toe_udp_recv_pbuf(h.st, s, &from);
  REQUIRE(pb);
  CHECK_EQ(pb->tot_len, 9);
  CHECK_MEM(pb->data, "zero-copy", 9);
  CHECK(pb->qnext == NULL);
  CHECK_EQ(from.addr, H_PEER_IP);
  CHECK_EQ(from.port, 4321);
  CHECK(toe_udp_recv_pbuf(h.st, s, NULL) == NULL);
  CHECK_EQ(toe_udp_rx_pending(s, NULL), 0);
  toe_pbuf_free(h.st, pb);
  CHECK_EQ(pool_free(), start);

  pb = toe_pbuf_from_bytes(h.st, "sent without copy", 17, TOE_PBUF_HEADROOM);
  REQUIRE(pb);
  CHECK_EQ(toe_udp_send_pbuf(h.st, s, pb, &from), 17);
  REQUIRE(h.ntx == 1);
  check_udp_frame(0, 7000, H_PEER_IP, 4321, "sent without copy", 17);
  CHECK_EQ(pool_free(), start);

  /* too little headroom: refused, and the chain is still consumed */
  pb = toe_pbuf_from_bytes(h.st, "tight", 5, 0);
  REQUIRE(pb);
  CHECK_EQ(toe_udp_send_pbuf(h.st, s, pb, &from), -TOE_EINVAL);
  CHECK_EQ(pool_free(), start);
  CHECK_EQ(h.ntx, 1);
  toe_sock_close(h.st, s);
  h_fini(&h);
}

TEST(close_frees_queued)
{
  h_init(&h);
  h_learn_peer(&h); /* so the port unreachable below goes out instead of waiting for ARP */
  struct toe_sock *s = bound(0, 7000, NULL);
  REQUIRE(s);
  uint32_t start = pool_free();
  for (int i = 0; i < 3; i++)
    feed(H_PEER_IP, 1234, H_OUR_IP, 7000, "queued", 6);
  CHECK_EQ(toe_udp_rx_pending(s, NULL), 3);
  CHECK(pool_free() < start);
  toe_sock_close(h.st, s);
  CHECK_EQ(pool_free(), start);
  CHECK_EQ(udpc()->socks_inuse, 0);
  /* the port is free again and datagrams to it are refused */
  feed(H_PEER_IP, 1234, H_OUR_IP, 7000, "late", 4);
  CHECK_EQ(udpc()->rx_drop_no_port, 1);
  CHECK_EQ(pool_free(), start);
  h_fini(&h);
}

TEST(receive_chained_and_reassembled)
{
  /* jumbo frames in 2048-byte buffers: a datagram spans several, the checksum runs over the
   * chain */
  struct toe_config cfg;
  h_default_cfg(&cfg);
  cfg.mtu = 9000;
  h_init_cfg(&h, &cfg);
  struct toe_sock *s = bound(0, 7000, NULL);
  REQUIRE(s);
  uint32_t start = pool_free();
  static uint8_t data[3000], seg[3008], got[3000];
  for (size_t i = 0; i < sizeof(data); i++)
    data[i] = (uint8_t)(i ^ (i >> 8));
  feed(H_PEER_IP, 1234, H_OUR_IP, 7000, data, 2999);
  CHECK_EQ(toe_udp_recvfrom(h.st, s, got, sizeof(got), NULL), 2999);
  CHECK_MEM(got, data, 2999);

  /* a 3000-byte datagram in two IP fragments */
  put16(seg, 1234);
  put16(seg + 2, 7000);
  put16(seg + 4, 3008);
  put16(seg + 6, 0);
  memcpy(seg + 8, data, 3000);
  put16(seg + 6, h_csum(seg, 3008, h_pseudo_sum(H_PEER_IP, H_OUR_IP, 17, 3008)));
  size_t n = h_build_ipv4(frame, H_PEER_IP, H_OUR_IP, 17, 77, 0x2000, 64, seg, 1480);
  h_input(&h, frame, n);
  n = h_build_ipv4(frame, H_PEER_IP, H_OUR_IP, 17, 77, 1480 / 8, 64, seg + 1480, 3008 - 1480);
  h_input(&h, frame, n);
  memset(got, 0, sizeof(got));
  CHECK_EQ(toe_udp_recvfrom(h.st, s, got, sizeof(got), NULL), 3000);
  CHECK_MEM(got, data, 3000);
  CHECK_EQ(udpc()->rx_drop_checksum, 0);
  CHECK_EQ(pool_free(), start);
  toe_sock_close(h.st, s);
  h_fini(&h);
}

/* An event callback that reads inside the event and then closes the socket. */
static int cb_reads;
static void reentrant_cb(void *ctx, struct toe_sock *s, void *user, uint32_t events)
{
  struct harness *hh = ctx;
  char buf[16];
  if (events & TOE_EV_READABLE) {
    while (toe_udp_recvfrom(hh->st, s, buf, sizeof(buf), NULL) >= 0)
      cb_reads++;
    toe_sock_close(hh->st, s);
  }
}

TEST(event_callback_may_read_and_close)
{
  h_init(&h);
  h_learn_peer(&h);
  struct toe_sock *s = bound(0, 7000, NULL);
  REQUIRE(s);
  uint32_t start = pool_free();
  h.st->cfg.sock_event = reentrant_cb;
  cb_reads = 0;
  feed(H_PEER_IP, 1234, H_OUR_IP, 7000, "once", 4);
  CHECK_EQ(cb_reads, 1);
  CHECK_EQ(udpc()->socks_inuse, 0);
  feed(H_PEER_IP, 1234, H_OUR_IP, 7000, "twice", 5);
  CHECK_EQ(cb_reads, 1);
  CHECK_EQ(udpc()->rx_drop_no_port, 1);
  CHECK_EQ(pool_free(), start);
  h_fini(&h);
}

TEST_MAIN()
