/*
 * TCP over IPv6 in the engine (issue 11): handshakes both ways, data and ACKs, checksums against a
 * reference (RFC 8200 8.1), the MSS of RFC 8200 8.3 (MTU - 60), the RFC 6437 flow label, TIME_WAIT,
 * SYN cookies under a flood, dual stack and V6ONLY, link-local source selection and ICMPv6
 * errors. Frames are built by hand with a reference checksum independent of the wire code, and
 * time is the harness's virtual clock.
 */
#include "engine/filter_table.h"
#include "engine/stack.h"
#include "engine/tcp.h"
#include "harness.h"
#include "testlib.h"
#include "toe/steer.h"

#include <string.h>

static const uint8_t OUR6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
static const uint8_t PEER6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
static const uint8_t PEER_LL[16] = {0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
static const uint8_t ANY6[16];

#define MTU 1500u

static const struct toe_counters *ctr(const struct harness *h)
{
  return toe_stack_counters(h->st);
}

static void setup_cfg(struct harness *h, unsigned syncache, uint8_t cookies)
{
  struct toe_config cfg;
  h_default_cfg(&cfg);
  cfg.ipv6 = 1;
  cfg.addr6_count = 1;
  memcpy(cfg.addr6[0], OUR6, 16);
  cfg.addr6_prefix_len[0] = 64;
  cfg.dad_transmits = 0;
  cfg.mtu = MTU;
  if (syncache)
    cfg.tcp_syncache = syncache;
  cfg.tcp_syncookies = cookies;
  h_init_cfg(h, &cfg);
}

static void setup(struct harness *h)
{
  setup_cfg(h, 0, 1);
}

static uint32_t pseudo6(const uint8_t *src, const uint8_t *dst, uint32_t len, uint8_t nh)
{
  uint32_t s = 0;
  for (int i = 0; i < 16; i += 2)
    s += (uint32_t)(src[i] << 8 | src[i + 1]) + (uint32_t)(dst[i] << 8 | dst[i + 1]);
  return s + (len >> 16) + (len & 0xffff) + nh;
}

static void put32(uint8_t *p, uint32_t v)
{
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (24 - 8 * i));
}

/* An IPv6 frame to our MAC from the peer's carrying `l4` (next header nh), checksum at csum_off
 * filled in by the reference sum (or as given when csum_off is 0). */
static size_t build6(uint8_t *out, const uint8_t *eth_dst, const uint8_t *src, const uint8_t *dst,
                     uint8_t nh, uint8_t hop, const uint8_t *l4, size_t l4len, size_t csum_off)
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
  ip[7] = hop;
  memcpy(ip + 8, src, 16);
  memcpy(ip + 24, dst, 16);
  uint8_t *p = ip + 40;
  memcpy(p, l4, l4len);
  if (csum_off) {
    p[csum_off] = p[csum_off + 1] = 0;
    uint16_t cs = h_csum(p, l4len, pseudo6(src, dst, (uint32_t)l4len, nh));
    p[csum_off] = (uint8_t)(cs >> 8);
    p[csum_off + 1] = (uint8_t)cs;
  }
  return 14 + 40 + l4len;
}

/* A TCP segment from `src`:sport to `dst`:dport (options `opt`, a multiple of 4 bytes). */
static size_t tcp6(uint8_t *out, const uint8_t *src, const uint8_t *dst, uint16_t sport,
                   uint16_t dport, uint32_t seq, uint32_t ack, uint8_t flags, const uint8_t *opt,
                   size_t olen, const void *data, size_t dlen)
{
  uint8_t t[1600];
  memset(t, 0, 20);
  t[0] = (uint8_t)(sport >> 8);
  t[1] = (uint8_t)sport;
  t[2] = (uint8_t)(dport >> 8);
  t[3] = (uint8_t)dport;
  put32(t + 4, seq);
  put32(t + 8, ack);
  t[12] = (uint8_t)(((20 + olen) / 4) << 4);
  t[13] = flags;
  t[14] = 0xff;
  t[15] = 0xff;
  if (olen)
    memcpy(t + 20, opt, olen);
  if (dlen)
    memcpy(t + 20 + olen, data, dlen);
  return build6(out, H_OUR_MAC, src, dst, 6, 64, t, 20 + olen + dlen, 16);
}

static size_t peer_seg(uint8_t *out, uint16_t sport, uint16_t dport, uint32_t seq, uint32_t ack,
                       uint8_t flags, const void *data, size_t dlen)
{
  return tcp6(out, PEER6, OUR6, sport, dport, seq, ack, flags, NULL, 0, data, dlen);
}

/* Teaches the stack the link-layer address of `peer` with a neighbour solicitation from it. */
static void learn(struct harness *h, const uint8_t *peer)
{
  uint8_t m[32] = {135, 0};
  static const uint8_t snm1[16] = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 1};
  static const uint8_t snm_mac[6] = {0x33, 0x33, 0xff, 0, 0, 1};
  memcpy(m + 8, OUR6, 16);
  m[24] = 1;
  m[25] = 1;
  memcpy(m + 26, H_PEER_MAC, 6);
  uint8_t f[256];
  h_input(h, f, build6(f, snm_mac, peer, snm1, 58, 255, m, 32, 2));
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

/* The IPv6 TCP segment of frame i: header, addresses and checksum checked (reference sum). */
static const uint8_t *check_tcp6(const struct harness *h, int i, const uint8_t *src,
                                 const uint8_t *dst)
{
  const uint8_t *e = h->tx[i].bytes;
  CHECK_MEM(e, H_PEER_MAC, 6);
  CHECK_EQ(h_be16(e + 12), 0x86dd);
  const uint8_t *ip = e + 14;
  CHECK_EQ(ip[0] >> 4, 6);
  CHECK_EQ(ip[6], 6);
  CHECK_MEM(ip + 8, src, 16);
  CHECK_MEM(ip + 24, dst, 16);
  uint16_t plen = h_be16(ip + 4);
  CHECK_EQ(h->tx[i].len, 14u + 40u + plen);
  CHECK(!h->tx[i].csum_partial);
  CHECK_EQ(h_csum(ip + 40, plen, pseudo6(ip + 8, ip + 24, plen, 6)), 0);
  return ip + 40;
}

/* The frame's RFC 6437 flow label. */
static uint32_t flow_of(const struct harness *h, int i)
{
  const uint8_t *ip = h->tx[i].bytes + 14;
  return (uint32_t)(ip[1] & 0x0f) << 16 | (uint32_t)ip[2] << 8 | ip[3];
}

/* The MSS option of a SYN's header `t`, 0 if none. */
static uint16_t mss_opt(const uint8_t *t)
{
  unsigned hl = (unsigned)(t[12] >> 4) * 4u;
  for (unsigned o = 20; o + 1 < hl;) {
    if (t[o] == 0)
      break;
    if (t[o] == 1) {
      o++;
      continue;
    }
    if (t[o] == 2 && t[o + 1] == 4)
      return h_be16(t + o + 2);
    if (t[o + 1] < 2)
      break;
    o += t[o + 1];
  }
  return 0;
}

/* Frame index of the last IPv6 frame sent, -1 if none. */
static int last6(const struct harness *h)
{
  for (int i = h->ntx; i-- > 0;)
    if (h->tx[i].len >= 54 && h_be16(h->tx[i].bytes + 12) == 0x86dd)
      return i;
  return -1;
}

static struct toe_sock *listener6(struct harness *h, uint16_t port, bool v6only)
{
  struct toe_sock *l;
  if (toe_tcp_open(h->st, NULL, &l) != 0)
    return NULL;
  if (v6only && toe_sock_setopt(h->st, l, TOE_IPV6_V6ONLY, 1) != 0)
    return NULL;
  struct toe_sockaddr any = sa6(ANY6, port);
  if (toe_sock_bind(h->st, l, &any) != 0 || toe_tcp_listen(h->st, l, 64) != 0)
    return NULL;
  return l;
}

TEST(passive_open_data_close_and_time_wait)
{
  struct harness h;
  setup(&h);
  learn(&h, PEER6);
  struct toe_sock *l = listener6(&h, 80, false);
  REQUIRE(l != NULL);
  uint8_t f[1700];
  static const uint8_t mss1440[4] = {2, 4, 0x05, 0xa0};
  h_input(&h, f, tcp6(f, PEER6, OUR6, 40000, 80, 1000, 0, 0x02, mss1440, 4, NULL, 0));
  int i = last6(&h);
  REQUIRE(i >= 0);
  const uint8_t *t = check_tcp6(&h, i, OUR6, PEER6);
  CHECK_EQ(t[13], 0x12);
  CHECK_EQ(h_be16(t), 80);
  CHECK_EQ(h_be16(t + 2), 40000);
  CHECK_EQ(h_be32(t + 8), 1001);
  CHECK_EQ(mss_opt(t), MTU - 60); /* RFC 8200 8.3: room for the 40-byte header */
  uint32_t label = flow_of(&h, i);
  CHECK(label != 0);
  uint32_t iss = h_be32(t + 4);
  CHECK_EQ(ctr(&h)->tcp.syncache_adds, 1);

  h_clear(&h);
  h_input(&h, f, peer_seg(f, 40000, 80, 1001, iss + 1, 0x10, NULL, 0));
  struct toe_sock *c = NULL;
  REQUIRE(toe_tcp_accept(h.st, l, NULL, &c) == 0);
  struct toe_sockaddr ln, rn;
  CHECK_EQ(toe_sock_name(c, &ln, &rn), 0);
  CHECK_EQ(ln.family, TOE_AF_INET6);
  CHECK_MEM(ln.addr6, OUR6, 16);
  CHECK_EQ(ln.port, 80);
  CHECK_EQ(rn.family, TOE_AF_INET6);
  CHECK_MEM(rn.addr6, PEER6, 16);
  CHECK_EQ(rn.port, 40000);

  /* Data in, data out: the reply carries the same flow label and a correct checksum. */
  h_input(&h, f, peer_seg(f, 40000, 80, 1001, iss + 1, 0x18, "hello", 5));
  char buf[64];
  CHECK_EQ(toe_tcp_recv(h.st, c, buf, sizeof buf), 5);
  CHECK_MEM(buf, "hello", 5);
  h_clear(&h);
  CHECK_EQ(toe_tcp_send(h.st, c, "world!", 6, 0), 6);
  i = last6(&h);
  REQUIRE(i >= 0);
  t = check_tcp6(&h, i, OUR6, PEER6);
  CHECK_EQ(h_be32(t + 4), iss + 1);
  CHECK_EQ(h_be32(t + 8), 1006);
  CHECK_EQ(h.tx[i].len, 14u + 40u + 20u + 6u);
  CHECK_MEM(t + 20, "world!", 6);
  CHECK_EQ(flow_of(&h, i), label); /* RFC 6437: stable for the connection */

  /* Our close: FIN; the peer's ACK and FIN put us in TIME_WAIT, which answers a repeated FIN
   * over IPv6 and lets the address pair go when it ends. */
  h_clear(&h);
  h_input(&h, f, peer_seg(f, 40000, 80, 1006, iss + 7, 0x10, NULL, 0));
  toe_sock_close(h.st, c);
  i = last6(&h);
  REQUIRE(i >= 0);
  t = check_tcp6(&h, i, OUR6, PEER6);
  CHECK_EQ(t[13] & 0x01, 0x01);
  h_input(&h, f, peer_seg(f, 40000, 80, 1006, iss + 8, 0x11, NULL, 0));
  CHECK_EQ(ctr(&h)->tcp.tw_entered, 1);
  h_clear(&h);
  h_input(&h, f, peer_seg(f, 40000, 80, 1006, iss + 8, 0x11, NULL, 0));
  CHECK_EQ(ctr(&h)->tcp.tw_fin_acked, 1);
  i = last6(&h);
  REQUIRE(i >= 0);
  t = check_tcp6(&h, i, OUR6, PEER6);
  CHECK_EQ(t[13], 0x10);
  CHECK_EQ(h_be32(t + 8), 1007);
  CHECK_EQ(h.st->tcp.p6_inuse, 1);
  h_advance(&h, TOE_SEC(300));
  CHECK_EQ(ctr(&h)->tcp.tw_inuse, 0);
  CHECK_EQ(h.st->tcp.p6_inuse, 0);
  toe_sock_close(h.st, l);
  h_fini(&h);
}

/* With steering (--host-if), an IPv6 connection owns its exact filter while it lives and its
 * TIME_WAIT entry after it, so the OS never sees (and never resets) its segments; the filter goes
 * with the TIME_WAIT entry. */
TEST(ipv6_connection_and_time_wait_keep_their_steering_filter)
{
  struct harness h;
  struct toe_config cfg;
  h_default_cfg(&cfg);
  cfg.ipv6 = 1;
  cfg.addr6_count = 1;
  memcpy(cfg.addr6[0], OUR6, 16);
  cfg.addr6_prefix_len[0] = 64;
  cfg.dad_transmits = 0;
  cfg.mtu = MTU;
  cfg.steering = 1;
  h_init_cfg(&h, &cfg);
  learn(&h, PEER6);
  struct toe_sock *l = listener6(&h, 80, false);
  REQUIRE(l != NULL);
  struct toe_in6_addr peer;
  memcpy(peer.b, PEER6, 16);
  uint8_t f[1700];
  h_input(&h, f, tcp6(f, PEER6, OUR6, 40000, 80, 1000, 0, 0x02, NULL, 0, NULL, 0));
  int i = last6(&h);
  REQUIRE(i >= 0);
  uint32_t iss = h_be32(check_tcp6(&h, i, OUR6, PEER6) + 4);
  h_input(&h, f, peer_seg(f, 40000, 80, 1001, iss + 1, 0x10, NULL, 0));
  struct toe_sock *c = NULL;
  REQUIRE(toe_tcp_accept(h.st, l, NULL, &c) == 0);
  struct toe_filter *flt = toe_filt_lookup6(h.st, TOE_IPPROTO_TCP, 80, &peer, 40000);
  REQUIRE(flt != NULL);
  CHECK_EQ(flt->kind, TOE_FILTER_CONN);
  toe_sock_close(h.st, l);

  /* Our FIN, the peer's ACK and FIN: TIME_WAIT keeps the flow the engine's. */
  toe_sock_close(h.st, c);
  h_input(&h, f, peer_seg(f, 40000, 80, 1001, iss + 2, 0x11, NULL, 0));
  CHECK_EQ(ctr(&h)->tcp.tw_entered, 1);
  flt = toe_filt_lookup6(h.st, TOE_IPPROTO_TCP, 80, &peer, 40000);
  REQUIRE(flt != NULL);
  CHECK_EQ(flt->kind, TOE_FILTER_TIMEWAIT);
  h_advance(&h, TOE_SEC(300));
  CHECK_EQ(ctr(&h)->tcp.tw_inuse, 0);
  CHECK(toe_filt_lookup6(h.st, TOE_IPPROTO_TCP, 80, &peer, 40000) == NULL);
  h_fini(&h);
}

TEST(active_open_to_global_peer)
{
  struct harness h;
  setup(&h);
  learn(&h, PEER6);
  struct toe_sock *s;
  REQUIRE(toe_tcp_open(h.st, NULL, &s) == 0);
  struct toe_sockaddr p = sa6(PEER6, 9000);
  CHECK_EQ(toe_sock_connect(h.st, s, &p), -TOE_EINPROGRESS);
  int i = last6(&h);
  REQUIRE(i >= 0);
  const uint8_t *t = check_tcp6(&h, i, OUR6, PEER6); /* the global source for a global peer */
  CHECK_EQ(t[13], 0x02);
  CHECK_EQ(h_be16(t + 2), 9000);
  CHECK_EQ(mss_opt(t), MTU - 60);
  uint32_t label = flow_of(&h, i);
  CHECK(label != 0);
  uint16_t lport = h_be16(t);
  uint32_t iss = h_be32(t + 4);
  struct toe_sockaddr ln, rn;
  CHECK_EQ(toe_sock_name(s, &ln, &rn), 0);
  CHECK_EQ(ln.family, TOE_AF_INET6);
  CHECK_MEM(ln.addr6, OUR6, 16);
  CHECK_EQ(ln.port, lport);
  CHECK_MEM(rn.addr6, PEER6, 16);

  /* SYN-ACK with MSS 1220: the handshake's ACK, then our data cut to that MSS. */
  h_clear(&h);
  static const uint8_t mss1220[4] = {2, 4, 0x04, 0xc4};
  uint8_t f[1700];
  h_input(&h, f, tcp6(f, PEER6, OUR6, 9000, lport, 5000, iss + 1, 0x12, mss1220, 4, NULL, 0));
  i = last6(&h);
  REQUIRE(i >= 0);
  t = check_tcp6(&h, i, OUR6, PEER6);
  CHECK_EQ(t[13], 0x10);
  CHECK_EQ(h_be32(t + 8), 5001);
  CHECK_EQ(flow_of(&h, i), label);
  h_clear(&h);
  static uint8_t big[3000];
  for (unsigned k = 0; k < sizeof big; k++)
    big[k] = (uint8_t)(k * 13);
  CHECK_EQ(toe_tcp_send(h.st, s, big, sizeof big, 0), (int)sizeof big);
  CHECK(h.ntx >= 2);
  t = check_tcp6(&h, 0, OUR6, PEER6);
  CHECK_EQ(h.tx[0].len, 14u + 40u + 20u + 1220u);
  CHECK_MEM(t + 20, big, 1220);

  /* The peer ACKs everything, then a RST at rcv_nxt ends the connection and frees the pair. */
  h_input(&h, f, peer_seg(f, 9000, lport, 5001, iss + 1 + 3000, 0x10, NULL, 0));
  CHECK_EQ(toe_tcp_tx_pending(s), 0);
  h_input(&h, f, peer_seg(f, 9000, lport, 5001, 0, 0x04, NULL, 0));
  char b;
  CHECK_EQ(toe_tcp_recv(h.st, s, &b, 1), -TOE_ECONNRESET);
  toe_sock_close(h.st, s);
  CHECK_EQ(h.st->tcp.p6_inuse, 0);
  h_fini(&h);
}

TEST(active_open_to_link_local_peer_uses_link_local_source)
{
  struct harness h;
  setup(&h);
  learn(&h, PEER_LL);
  struct toe_sock *s;
  REQUIRE(toe_tcp_open(h.st, NULL, &s) == 0);
  struct toe_sockaddr p = sa6(PEER_LL, 22);
  CHECK_EQ(toe_sock_connect(h.st, s, &p), -TOE_EINPROGRESS);
  int i = last6(&h);
  REQUIRE(i >= 0);
  const uint8_t *ip = h.tx[i].bytes + 14;
  CHECK_EQ(ip[8], 0xfe);
  CHECK_EQ(ip[9], 0x80);
  CHECK_MEM(ip + 24, PEER_LL, 16);
  const uint8_t *t = check_tcp6(&h, i, ip + 8, PEER_LL);
  CHECK_EQ(t[13], 0x02);
  toe_tcp_abort(h.st, s);
  CHECK_EQ(h.st->tcp.p6_inuse, 0);
  h_fini(&h);
}

TEST(syn_flood_answered_with_cookies_that_complete)
{
  struct harness h;
  setup_cfg(&h, 4, 1);
  learn(&h, PEER6);
  struct toe_sock *l = listener6(&h, 80, true);
  REQUIRE(l != NULL);
  uint8_t f[1700];
  /* 12 SYNs: the first 4 fill the SYN cache, the rest get cookies (RFC 4987 3.6). */
  for (int k = 0; k < 12; k++)
    h_input(&h, f, peer_seg(f, (uint16_t)(41000 + k), 80, 7000u + (uint32_t)k, 0, 0x02, NULL, 0));
  CHECK_EQ(ctr(&h)->tcp.syncache_adds, 4);
  CHECK_EQ(ctr(&h)->tcp.syncookies_sent, 8);
  CHECK_EQ(h_count_tx(&h, 0x86dd, 0), 12);
  /* The last SYN-ACK is a cookie: the ACK that returns it makes a connection. */
  int i = last6(&h);
  REQUIRE(i >= 0);
  const uint8_t *t = check_tcp6(&h, i, OUR6, PEER6);
  CHECK_EQ(t[13], 0x12);
  CHECK_EQ(h_be16(t + 2), 41011);
  uint32_t cookie = h_be32(t + 4);
  h_input(&h, f, peer_seg(f, 41011, 80, 7012, cookie + 1, 0x10, NULL, 0));
  CHECK_EQ(ctr(&h)->tcp.syncookies_recv, 1);
  struct toe_sock *c = NULL;
  REQUIRE(toe_tcp_accept(h.st, l, NULL, &c) == 0);
  struct toe_sockaddr ln, rn;
  CHECK_EQ(toe_sock_name(c, &ln, &rn), 0);
  CHECK_EQ(rn.family, TOE_AF_INET6);
  CHECK_MEM(rn.addr6, PEER6, 16);
  CHECK_EQ(rn.port, 41011);
  /* A forged cookie (wrong ACK) makes nothing. */
  h_input(&h, f, peer_seg(f, 41010, 80, 7011, cookie + 99, 0x10, NULL, 0));
  CHECK_EQ(ctr(&h)->tcp.syncookies_failed, 1);
  CHECK_EQ(toe_tcp_accept(h.st, l, NULL, &c), -TOE_EAGAIN);
  h_fini(&h);
}

/* An IPv4 SYN from the harness peer to `port`. */
static void syn4(struct harness *h, uint16_t port)
{
  uint8_t syn[20] = {0x9c, 0x40, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff};
  syn[2] = (uint8_t)(port >> 8);
  syn[3] = (uint8_t)port;
  uint16_t cs = h_csum(syn, 20, h_pseudo_sum(H_PEER_IP, H_OUR_IP, 6, 20));
  syn[16] = (uint8_t)(cs >> 8);
  syn[17] = (uint8_t)cs;
  uint8_t f[256];
  h_input(h, f, h_build_ipv4(f, H_PEER_IP, H_OUR_IP, 6, 1, 0x4000, 64, syn, 20));
}

TEST(v6only_listener_refuses_ipv4_dual_stack_takes_both)
{
  struct harness h;
  setup(&h);
  h_learn_peer(&h);
  learn(&h, PEER6);
  struct toe_sock *only = listener6(&h, 81, true);
  struct toe_sock *dual = listener6(&h, 82, false);
  REQUIRE(only != NULL && dual != NULL);
  syn4(&h, 81);
  int i = h_find_tx(&h, 0x0800, 6, 0);
  REQUIRE(i >= 0);
  CHECK_EQ(h.tx[i].bytes[14 + 20 + 13], 0x14); /* RST,ACK: nobody listens on IPv4 */
  h_clear(&h);
  syn4(&h, 82);
  i = h_find_tx(&h, 0x0800, 6, 0);
  REQUIRE(i >= 0);
  CHECK_EQ(h.tx[i].bytes[14 + 20 + 13], 0x12);
  h_clear(&h);
  uint8_t f[256];
  h_input(&h, f, peer_seg(f, 40001, 81, 1, 0, 0x02, NULL, 0));
  h_input(&h, f, peer_seg(f, 40002, 82, 1, 0, 0x02, NULL, 0));
  CHECK_EQ(h_count_tx(&h, 0x86dd, 0), 2);
  for (int k = 0; k < 2; k++) {
    const uint8_t *t = check_tcp6(&h, k, OUR6, PEER6);
    CHECK_EQ(t[13], 0x12);
  }
  CHECK_EQ(ctr(&h)->tcp.syncache_adds, 3);
  h_fini(&h);
}

TEST(icmp6_errors_reach_the_connection)
{
  struct harness h;
  setup(&h);
  learn(&h, PEER6);
  struct toe_sock *s;
  REQUIRE(toe_tcp_open(h.st, NULL, &s) == 0);
  struct toe_sockaddr p = sa6(PEER6, 9000);
  CHECK_EQ(toe_sock_connect(h.st, s, &p), -TOE_EINPROGRESS);
  int i = last6(&h);
  REQUIRE(i >= 0);
  const uint8_t *t = h.tx[i].bytes + 54;
  uint16_t lport = h_be16(t);
  uint32_t iss = h_be32(t + 4);
  uint8_t f[1700];
  static const uint8_t mss1460[4] = {2, 4, 0x05, 0xb4};
  h_input(&h, f, tcp6(f, PEER6, OUR6, 9000, lport, 5000, iss + 1, 0x12, mss1460, 4, NULL, 0));
  struct toe_tcb *tp = toe_tcp_sock(h.st, s);
  REQUIRE(tp != NULL);
  CHECK_EQ(tp->state, TOE_TCP_ESTABLISHED);
  CHECK_EQ(tp->snd_mss, 1440);
  h_clear(&h);
  static uint8_t big[4000];
  CHECK_EQ(toe_tcp_send(h.st, s, big, sizeof big, 0), (int)sizeof big);
  REQUIRE(h.ntx >= 1);
  uint8_t q[8];
  memcpy(q, h.tx[0].bytes + 54, 8);
  struct toe_in6_addr a, b;
  memcpy(a.b, OUR6, 16);
  memcpy(b.b, PEER6, 16);
  /* A quote of a segment not in flight is not believed (RFC 5927 4.1). */
  uint8_t stale[8];
  memcpy(stale, q, 8);
  put32(stale + 4, iss - 5);
  CHECK(!toe_tcp_icmp6_error(h.st, &a, &b, stale, -TOE_EMSGSIZE, 1280));
  /* Packet Too Big, 1280: the MSS follows (1280 - 60), what was lost is resent at that size. */
  h_clear(&h);
  CHECK(toe_tcp_icmp6_error(h.st, &a, &b, q, -TOE_EMSGSIZE, 1280));
  CHECK_EQ(tp->snd_mss, 1220);
  REQUIRE(h.ntx >= 1);
  check_tcp6(&h, 0, OUR6, PEER6);
  CHECK_EQ(h.tx[0].len, 14u + 40u + 20u + 1220u);
  /* Below the IPv6 minimum is raised to it (RFC 8200 5). */
  CHECK(toe_tcp_icmp6_error(h.st, &a, &b, q, -TOE_EMSGSIZE, 600));
  CHECK_EQ(tp->snd_mss, 1220);
  /* Destination unreachable while synchronized: a soft error (RFC 5461). */
  CHECK(toe_tcp_icmp6_error(h.st, &a, &b, q, -TOE_EHOSTUNREACH, 0));
  CHECK_EQ(tp->state, TOE_TCP_ESTABLISHED);
  CHECK_EQ(tp->icmp_soft_err, -TOE_EHOSTUNREACH);
  toe_tcp_abort(h.st, s);
  h_fini(&h);
}

TEST(segments_with_bad_addresses_or_checksums_are_counted_drops)
{
  struct harness h;
  setup(&h);
  learn(&h, PEER6);
  struct toe_sock *l = listener6(&h, 80, false);
  REQUIRE(l != NULL);
  uint8_t f[256];
  size_t n = peer_seg(f, 40000, 80, 1, 0, 0x02, NULL, 0);
  f[n - 1] ^= 0x01; /* the urgent pointer: only the checksum notices */
  h_input(&h, f, n);
  CHECK_EQ(ctr(&h)->tcp.rx_drop_checksum, 1);
  /* to the all-nodes group: TCP is unicast only (RFC 1122 4.2.3.10), no RST either */
  static const uint8_t ALL_NODES[16] = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  n = tcp6(f, PEER6, ALL_NODES, 40000, 80, 1, 0, 0x02, NULL, 0, NULL, 0);
  static const uint8_t all_nodes_mac[6] = {0x33, 0x33, 0, 0, 0, 1};
  memcpy(f, all_nodes_mac, 6);
  h_input(&h, f, n);
  CHECK_EQ(ctr(&h)->tcp.rx_drop_not_unicast, 1);
  /* a header length past the segment */
  n = peer_seg(f, 40000, 80, 1, 0, 0x02, NULL, 0);
  f[14 + 40 + 12] = 0xf0;
  h_input(&h, f, n);
  CHECK_EQ(ctr(&h)->tcp.rx_drop_malformed, 1);
  CHECK_EQ(h.ntx, 0);
  CHECK_EQ(h.st->tcp.p6_inuse, 0);
  h_fini(&h);
}

TEST_MAIN()
