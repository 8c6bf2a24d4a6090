/*
 * IPv4 input validation and demultiplexing, and output routing and fragmentation, through the
 * engine harness (hand-built frames, virtual clock).
 */
#include "engine/stack.h"
#include "harness.h"
#include "testlib.h"

#include <stdlib.h>
#include <string.h>

#define OTHER_IP 0xc6120009u /* 198.18.0.9: on our link, not us */
#define DIRECTED_BCAST 0xc61200ffu
#define GATEWAY_IP 0xc61200feu
#define OFFLINK_IP 0xc6130005u /* 198.19.0.5 */

static const struct toe_counters_ip *ipc(const struct harness *h)
{
  return &toe_stack_counters(h->st)->ip;
}
static const struct toe_counters_icmp *icmpc(const struct harness *h)
{
  return &toe_stack_counters(h->st)->icmp;
}

static void put16(uint8_t *p, uint16_t v)
{
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}
static void put32(uint8_t *p, uint32_t v)
{
  put16(p, (uint16_t)(v >> 16));
  put16(p + 2, (uint16_t)v);
}

/* A configurable IPv4 frame: every field the tests want to break. */
struct ipb {
  uint8_t version; /* 0 = 4 */
  int ihl;         /* 0 = from options */
  int total_adj;   /* added to the true total length */
  bool bad_csum;
  uint32_t src, dst;
  uint8_t proto;
  uint16_t frag;
  const uint8_t *opts;
  size_t optlen;
  const uint8_t *eth_dst; /* NULL = our MAC */
  size_t pad;             /* link padding after the datagram */
};

static size_t build(uint8_t *out, const struct ipb *b, const void *payload, size_t plen)
{
  memcpy(out, b->eth_dst ? b->eth_dst : H_OUR_MAC, 6);
  memcpy(out + 6, H_PEER_MAC, 6);
  put16(out + 12, 0x0800);
  uint8_t *ip = out + 14;
  size_t hl = 20 + b->optlen;
  int ihl = b->ihl ? b->ihl : (int)(hl / 4);
  ip[0] = (uint8_t)((b->version ? b->version : 4) << 4 | (ihl & 0x0f));
  ip[1] = 0;
  put16(ip + 2, (uint16_t)((int)(hl + plen) + b->total_adj));
  put16(ip + 4, 0x1234);
  put16(ip + 6, b->frag);
  ip[8] = 64;
  ip[9] = b->proto;
  put16(ip + 10, 0);
  put32(ip + 12, b->src);
  put32(ip + 16, b->dst);
  if (b->optlen)
    memcpy(ip + 20, b->opts, b->optlen);
  put16(ip + 10, (uint16_t)(h_csum(ip, hl, 0) ^ (b->bad_csum ? 0x0101 : 0)));
  memcpy(ip + hl, payload, plen);
  memset(ip + hl + plen, 0, b->pad);
  return 14 + hl + plen + b->pad;
}

/* An ICMP echo request message of 8 + dlen bytes. */
static size_t echo_msg(uint8_t *m, uint16_t id, uint16_t seq, size_t dlen)
{
  m[0] = 8;
  m[1] = 0;
  put16(m + 2, 0);
  put16(m + 4, id);
  put16(m + 6, seq);
  for (size_t i = 0; i < dlen; i++)
    m[8 + i] = (uint8_t)(i * 7 + 3);
  put16(m + 2, h_csum(m, 8 + dlen, 0));
  return 8 + dlen;
}

static void setup(struct harness *h)
{
  h_init(h);
  h_learn_peer(h);
}

static uint32_t pool_free(const struct harness *h)
{
  return toe_pbuf_pool_free_count(h->st);
}

/* ---- input validation ---- */

TEST(valid_echo_is_delivered_and_answered)
{
  struct harness h;
  setup(&h);
  uint8_t m[128], f[256];
  size_t ml = echo_msg(m, 1, 1, 32);
  struct ipb b = {.src = H_PEER_IP, .dst = H_OUR_IP, .proto = 1};
  h_input(&h, f, build(f, &b, m, ml));
  CHECK_EQ(ipc(&h)->rx_packets, 1);
  CHECK_EQ(ipc(&h)->rx_delivered, 1);
  CHECK_EQ(icmpc(&h)->tx_echo_replies, 1);
  CHECK_EQ(h_count_tx(&h, 0x0800, 1), 1);
  h_fini(&h);
}

static void expect_drop(struct ipb *b, const void *payload, size_t plen, size_t field_off,
                        int which)
{
  struct harness h;
  setup(&h);
  uint32_t free0 = pool_free(&h);
  uint8_t f[256];
  h_input(&h, f, build(f, b, payload, plen));
  const struct toe_counters_ip *c = ipc(&h);
  uint64_t v = *(const uint64_t *)((const uint8_t *)c + field_off);
  if (v != 1)
    testlib_fail(__FILE__, __LINE__, "drop counter #%d = %llu, want 1", which,
                 (unsigned long long)v);
  CHECK_EQ(c->rx_delivered, 0);
  CHECK_EQ(h.ntx, 0);
  CHECK_EQ(pool_free(&h), free0);
  h_fini(&h);
}

#define DROP_OFF(field) offsetof(struct toe_counters_ip, field)

TEST(bad_version_dropped)
{
  uint8_t m[64];
  size_t ml = echo_msg(m, 1, 1, 8);
  struct ipb b = {.version = 6, .src = H_PEER_IP, .dst = H_OUR_IP, .proto = 1};
  expect_drop(&b, m, ml, DROP_OFF(rx_drop_malformed), 1);
}

TEST(ihl_below_5_dropped)
{
  uint8_t m[64];
  size_t ml = echo_msg(m, 1, 1, 8);
  struct ipb b = {.ihl = 4, .src = H_PEER_IP, .dst = H_OUR_IP, .proto = 1};
  expect_drop(&b, m, ml, DROP_OFF(rx_drop_malformed), 2);
}

TEST(total_length_lies_dropped)
{
  uint8_t m[64];
  size_t ml = echo_msg(m, 1, 1, 8);
  struct ipb longer = {.total_adj = 1, .src = H_PEER_IP, .dst = H_OUR_IP, .proto = 1};
  expect_drop(&longer, m, ml, DROP_OFF(rx_drop_malformed), 3);
  /* shorter than the header itself */
  struct ipb shorter = {.total_adj = -(int)ml - 1, .src = H_PEER_IP, .dst = H_OUR_IP, .proto = 1};
  expect_drop(&shorter, m, ml, DROP_OFF(rx_drop_malformed), 4);
}

TEST(truncated_header_dropped)
{
  struct harness h;
  setup(&h);
  uint8_t f[64], m[64];
  size_t ml = echo_msg(m, 1, 1, 8);
  struct ipb b = {.src = H_PEER_IP, .dst = H_OUR_IP, .proto = 1};
  build(f, &b, m, ml);
  h_input(&h, f, 14 + 12); /* 12 bytes of IP header */
  CHECK_EQ(ipc(&h)->rx_drop_malformed, 1);
  CHECK_EQ(h.ntx, 0);
  h_fini(&h);
}

TEST(bad_checksum_dropped)
{
  uint8_t m[64];
  size_t ml = echo_msg(m, 1, 1, 8);
  struct ipb b = {.bad_csum = true, .src = H_PEER_IP, .dst = H_OUR_IP, .proto = 1};
  expect_drop(&b, m, ml, DROP_OFF(rx_drop_checksum), 5);
}

TEST(not_for_us_dropped)
{
  uint8_t m[64];
  size_t ml = echo_msg(m, 1, 1, 8);
  struct ipb other = {.src = H_PEER_IP, .dst = OTHER_IP, .proto = 1};
  expect_drop(&other, m, ml, DROP_OFF(rx_drop_not_for_us), 6);
  struct ipb mcast = {.src = H_PEER_IP, .dst = 0xe0000001u, .proto = 1};
  expect_drop(&mcast, m, ml, DROP_OFF(rx_drop_not_for_us), 7);
  /* RFC 1122 3.3.6: unicast to us but sent as a link broadcast */
  struct ipb lbc = {.src = H_PEER_IP, .dst = H_OUR_IP, .proto = 1, .eth_dst = H_BCAST_MAC};
  expect_drop(&lbc, m, ml, DROP_OFF(rx_drop_not_for_us), 8);
}

TEST(bad_sources_dropped)
{
  uint8_t m[64];
  size_t ml = echo_msg(m, 1, 1, 8);
  const uint32_t bad[] = {H_OUR_IP,   0,          0xffffffffu, DIRECTED_BCAST,
                          0xe0000005, 0x7f000001, 0xef000001u};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    struct ipb b = {.src = bad[i], .dst = H_OUR_IP, .proto = 1};
    expect_drop(&b, m, ml, DROP_OFF(rx_drop_bad_source), 100 + (int)i);
  }
}

TEST(broadcast_destinations_accepted)
{
  struct harness h;
  setup(&h);
  uint8_t m[64], f[256];
  size_t ml = echo_msg(m, 1, 1, 8);
  struct ipb lim = {.src = H_PEER_IP, .dst = 0xffffffffu, .proto = 1, .eth_dst = H_BCAST_MAC};
  h_input(&h, f, build(f, &lim, m, ml));
  struct ipb dir = {.src = H_PEER_IP, .dst = DIRECTED_BCAST, .proto = 1, .eth_dst = H_BCAST_MAC};
  h_input(&h, f, build(f, &dir, m, ml));
  CHECK_EQ(ipc(&h)->rx_delivered, 2);
  /* delivered, but echo to a broadcast is not answered */
  CHECK_EQ(icmpc(&h)->rx_echo_broadcast, 2);
  CHECK_EQ(h.ntx, 0);
  h_fini(&h);
}

TEST(valid_options_skipped)
{
  struct harness h;
  setup(&h);
  uint8_t m[64], f[256];
  size_t ml = echo_msg(m, 0x55, 2, 16);
  /* NOP, a timestamp option (type 68, length 8, pointer 5, flags 0, one empty slot), EOL pad */
  const uint8_t opts[12] = {1, 68, 8, 5, 0, 0, 0, 0, 0, 0, 0, 0};
  struct ipb b = {.src = H_PEER_IP, .dst = H_OUR_IP, .proto = 1, .opts = opts, .optlen = 12};
  h_input(&h, f, build(f, &b, m, ml));
  CHECK_EQ(ipc(&h)->rx_delivered, 1);
  int i = h_find_tx(&h, 0x0800, 1, 0);
  REQUIRE(i >= 0);
  const uint8_t *r = h.tx[i].bytes + 14;
  CHECK_EQ(r[0], 0x45);             /* reply without options */
  CHECK_EQ(r[20], 0);               /* echo reply */
  CHECK_EQ(h_be16(r + 24), 0x55);   /* identifier from the ICMP header, not the options */
  CHECK_MEM(r + 28, m + 8, ml - 8); /* data */
  h_fini(&h);
}

TEST(malformed_options_dropped)
{
  uint8_t m[64];
  size_t ml = echo_msg(m, 1, 1, 8);
  /* an option whose length runs past the header */
  const uint8_t opts[4] = {7, 12, 4, 0};
  struct ipb b = {.src = H_PEER_IP, .dst = H_OUR_IP, .proto = 1, .opts = opts, .optlen = 4};
  expect_drop(&b, m, ml, DROP_OFF(rx_drop_options), 9);
}

TEST(link_padding_trimmed)
{
  struct harness h;
  setup(&h);
  uint8_t m[64], f[256];
  size_t ml = echo_msg(m, 3, 4, 2); /* 10-byte message: the frame gets padded to 60 */
  struct ipb b = {.src = H_PEER_IP, .dst = H_OUR_IP, .proto = 1, .pad = 16};
  size_t n = build(f, &b, m, ml);
  memset(f + n - 16, 0xee, 16); /* padding that would break the checksum if kept */
  h_input(&h, f, n);
  CHECK_EQ(icmpc(&h)->rx_drop_checksum, 0);
  int i = h_find_tx(&h, 0x0800, 1, 0);
  REQUIRE(i >= 0);
  CHECK_EQ(h_be16(h.tx[i].bytes + 14 + 2), 20 + ml);
  h_fini(&h);
}

TEST(tcp_dropped_as_proto_without_icmp)
{
  struct harness h;
  setup(&h);
  uint8_t seg[20] = {0}, f[128];
  struct ipb b = {.src = H_PEER_IP, .dst = H_OUR_IP, .proto = 6};
  h_input(&h, f, build(f, &b, seg, sizeof(seg)));
  /* TCP may have landed (then it answers); otherwise: dropped as proto, no ICMP */
  if (ipc(&h)->rx_delivered == 0) {
    CHECK_EQ(ipc(&h)->rx_drop_proto, 1);
    CHECK_EQ(h_count_tx(&h, 0x0800, 1), 0);
  }
  h_fini(&h);
}

TEST(unknown_proto_gets_protocol_unreachable)
{
  struct harness h;
  setup(&h);
  uint32_t free0 = pool_free(&h);
  uint8_t data[40], f[128];
  for (int i = 0; i < 40; i++)
    data[i] = (uint8_t)i;
  struct ipb b = {.src = H_PEER_IP, .dst = H_OUR_IP, .proto = 99};
  size_t n = build(f, &b, data, sizeof(data));
  h_input(&h, f, n);
  CHECK_EQ(ipc(&h)->rx_drop_proto, 1);
  int i = h_find_tx(&h, 0x0800, 1, 0);
  REQUIRE(i >= 0);
  const uint8_t *r = h.tx[i].bytes + 14;
  CHECK_EQ(h_be32(r + 16), H_PEER_IP);
  CHECK_EQ(r[20], 3);
  CHECK_EQ(r[21], 2);
  CHECK_MEM(r + 28, f + 14, n - 14); /* the whole small datagram is quoted */
  /* to a broadcast: counted, no error */
  h_clear(&h);
  struct ipb bc = {.src = H_PEER_IP, .dst = DIRECTED_BCAST, .proto = 99, .eth_dst = H_BCAST_MAC};
  h_input(&h, f, build(f, &bc, data, sizeof(data)));
  CHECK_EQ(ipc(&h)->rx_drop_proto, 2);
  CHECK_EQ(h.ntx, 0);
  CHECK_EQ(pool_free(&h), free0);
  h_fini(&h);
}

/* ---- output ---- */

static struct toe_pbuf *payload_pbuf(struct harness *h, size_t len, uint8_t seed)
{
  uint8_t *buf = malloc(len);
  for (size_t i = 0; i < len; i++)
    buf[i] = (uint8_t)(i * 13 + seed);
  struct toe_pbuf *p = toe_pbuf_from_bytes(h->st, buf, len, TOE_PBUF_HEADROOM);
  free(buf);
  return p;
}

static void check_ip_hdr_csum(const uint8_t *ip)
{
  CHECK_EQ(h_csum(ip, (size_t)(ip[0] & 0x0f) * 4, 0), 0);
}

TEST(output_small_datagram)
{
  struct harness h;
  setup(&h);
  struct toe_pbuf *p = payload_pbuf(&h, 100, 1);
  REQUIRE(p);
  struct toe_ip_tx tx = {.dst = H_PEER_IP, .proto = 17, .tos = 0x10};
  CHECK_EQ(toe_ipv4_output(h.st, p, &tx), 0);
  REQUIRE(h.ntx == 1);
  const uint8_t *f = h.tx[0].bytes;
  CHECK_MEM(f, H_PEER_MAC, 6);
  const uint8_t *ip = f + 14;
  CHECK_EQ(ip[0], 0x45);
  CHECK_EQ(ip[1], 0x10);
  CHECK_EQ(h_be16(ip + 2), 120);
  CHECK_EQ(h_be16(ip + 6), 0);
  CHECK_EQ(ip[8], 64);
  CHECK_EQ(ip[9], 17);
  CHECK_EQ(h_be32(ip + 12), H_OUR_IP);
  CHECK_EQ(h_be32(ip + 16), H_PEER_IP);
  check_ip_hdr_csum(ip);
  CHECK_EQ(ipc(&h)->tx_packets, 1);
  CHECK_EQ(ipc(&h)->tx_fragments, 0);
  h_fini(&h);
}

TEST(output_ids_differ)
{
  struct harness h;
  setup(&h);
  struct toe_ip_tx tx = {.dst = H_PEER_IP, .proto = 17};
  for (int i = 0; i < 3; i++)
    CHECK_EQ(toe_ipv4_output(h.st, payload_pbuf(&h, 10, 0), &tx), 0);
  REQUIRE(h.ntx == 3);
  uint16_t a = h_be16(h.tx[0].bytes + 18), b = h_be16(h.tx[1].bytes + 18),
           c = h_be16(h.tx[2].bytes + 18);
  CHECK(a != b && b != c && a != c);
  h_fini(&h);
}

TEST(output_fragments_4000_bytes)
{
  struct harness h;
  setup(&h);
  uint32_t free0 = pool_free(&h);
  const size_t len = 4000;
  struct toe_pbuf *p = payload_pbuf(&h, len, 5);
  REQUIRE(p);
  uint8_t *want = malloc(len);
  toe_pbuf_copy_out(p, 0, want, len);
  struct toe_ip_tx tx = {.dst = H_PEER_IP, .proto = 17};
  CHECK_EQ(toe_ipv4_output(h.st, p, &tx), 0);
  REQUIRE(h.ntx == 3);
  const uint16_t offs[3] = {0, 1480, 2960}, lens[3] = {1480, 1480, 1040};
  uint16_t id = h_be16(h.tx[0].bytes + 18);
  for (int i = 0; i < 3; i++) {
    const uint8_t *ip = h.tx[i].bytes + 14;
    CHECK_EQ(h.tx[i].len, 14u + 20u + lens[i]);
    CHECK_EQ(h_be16(ip + 2), 20 + lens[i]);
    CHECK_EQ(h_be16(ip + 4), id);
    uint16_t ff = h_be16(ip + 6);
    CHECK_EQ((ff & 0x1fff) * 8, offs[i]);
    CHECK_EQ(!!(ff & 0x2000), i < 2);
    CHECK_EQ(ff & 0x4000, 0);
    check_ip_hdr_csum(ip);
    CHECK_MEM(ip + 20, want + offs[i], lens[i]);
  }
  CHECK_EQ(ipc(&h)->tx_packets, 1);
  CHECK_EQ(ipc(&h)->tx_fragments, 3);
  CHECK_EQ(pool_free(&h), free0);
  free(want);
  h_fini(&h);
}

TEST(output_fragments_small_mtu_multiple_of_8)
{
  struct toe_config cfg;
  h_default_cfg(&cfg);
  cfg.mtu = 106; /* 86 bytes of room: 80 payload bytes per fragment */
  struct harness h;
  h_init_cfg(&h, &cfg);
  h_learn_peer(&h);
  struct toe_ip_tx tx = {.dst = H_PEER_IP, .proto = 17};
  CHECK_EQ(toe_ipv4_output(h.st, payload_pbuf(&h, 250, 0), &tx), 0);
  REQUIRE(h.ntx == 4);
  uint32_t sum = 0;
  for (int i = 0; i < 4; i++) {
    const uint8_t *ip = h.tx[i].bytes + 14;
    uint16_t pl = (uint16_t)(h_be16(ip + 2) - 20);
    CHECK(h_be16(ip + 2) <= 106);
    if (i < 3)
      CHECK_EQ(pl, 80);
    CHECK_EQ((h_be16(ip + 6) & 0x1fff) * 8, sum);
    sum += pl;
  }
  CHECK_EQ(sum, 250);
  h_fini(&h);
}

TEST(output_df_too_big)
{
  struct harness h;
  setup(&h);
  uint32_t free0 = pool_free(&h);
  struct toe_ip_tx tx = {.dst = H_PEER_IP, .proto = 17, .df = true};
  CHECK_EQ(toe_ipv4_output(h.st, payload_pbuf(&h, 1481, 0), &tx), -TOE_EMSGSIZE);
  CHECK_EQ(ipc(&h)->tx_drop_df, 1);
  CHECK_EQ(h.ntx, 0);
  /* exactly the MTU is fine, DF set on the wire */
  CHECK_EQ(toe_ipv4_output(h.st, payload_pbuf(&h, 1480, 0), &tx), 0);
  REQUIRE(h.ntx == 1);
  CHECK_EQ(h_be16(h.tx[0].bytes + 14 + 6), 0x4000);
  h_clear(&h);
  CHECK_EQ(pool_free(&h), free0);
  h_fini(&h);
}

TEST(output_over_65535_refused)
{
  struct harness h;
  setup(&h);
  struct toe_ip_tx tx = {.dst = H_PEER_IP, .proto = 17};
  struct toe_pbuf *p = payload_pbuf(&h, 65535 - 20 + 1, 0);
  REQUIRE(p);
  CHECK_EQ(toe_ipv4_output(h.st, p, &tx), -TOE_EMSGSIZE);
  CHECK_EQ(h.ntx, 0);
  h_fini(&h);
}

TEST(output_routing)
{
  struct harness h;
  setup(&h);
  uint32_t free0 = pool_free(&h);
  struct toe_ip_tx off = {.dst = OFFLINK_IP, .proto = 17};
  CHECK_EQ(toe_ipv4_output(h.st, payload_pbuf(&h, 10, 0), &off), -TOE_ENETUNREACH);
  CHECK_EQ(ipc(&h)->tx_drop_no_route, 1);
  /* bad destinations never reach the wire */
  struct toe_ip_tx lo = {.dst = 0x7f000001u, .proto = 17};
  CHECK_EQ(toe_ipv4_output(h.st, payload_pbuf(&h, 10, 0), &lo), -TOE_EINVAL);
  struct toe_ip_tx self = {.dst = H_OUR_IP, .proto = 17};
  CHECK_EQ(toe_ipv4_output(h.st, payload_pbuf(&h, 10, 0), &self), -TOE_EINVAL);
  CHECK_EQ(h.ntx, 0);
  /* broadcasts go straight to ff:ff:ff:ff:ff:ff, no ARP */
  struct toe_ip_tx bc = {.dst = DIRECTED_BCAST, .proto = 17};
  CHECK_EQ(toe_ipv4_output(h.st, payload_pbuf(&h, 10, 0), &bc), 0);
  struct toe_ip_tx lbc = {.dst = 0xffffffffu, .proto = 17};
  CHECK_EQ(toe_ipv4_output(h.st, payload_pbuf(&h, 10, 0), &lbc), 0);
  REQUIRE(h.ntx == 2);
  CHECK_MEM(h.tx[0].bytes, H_BCAST_MAC, 6);
  CHECK_MEM(h.tx[1].bytes, H_BCAST_MAC, 6);
  CHECK_EQ(h_count_tx(&h, 0x0806, 0), 0);
  h_clear(&h);
  CHECK_EQ(pool_free(&h), free0);
  h_fini(&h);
}

TEST(output_via_gateway)
{
  struct toe_config cfg;
  h_default_cfg(&cfg);
  cfg.gateway = GATEWAY_IP;
  struct harness h;
  h_init_cfg(&h, &cfg);
  struct toe_ip_tx off = {.dst = OFFLINK_IP, .proto = 17};
  CHECK_EQ(toe_ipv4_output(h.st, payload_pbuf(&h, 10, 0), &off), 0);
  /* the gateway is resolved, not the destination */
  int i = h_find_tx(&h, 0x0806, 0, 0);
  REQUIRE(i >= 0);
  CHECK_EQ(h_be32(h.tx[i].bytes + 14 + 24), GATEWAY_IP);
  CHECK_EQ(h_count_tx(&h, 0x0800, 0), 0);
  h_fini(&h);
}

TEST(output_short_headroom_gets_header_buffer)
{
  struct harness h;
  setup(&h);
  uint8_t b[64];
  memset(b, 0xab, sizeof(b));
  struct toe_pbuf *p = toe_pbuf_from_bytes(h.st, b, sizeof(b), 0);
  REQUIRE(p);
  struct toe_ip_tx tx = {.dst = H_PEER_IP, .proto = 17};
  CHECK_EQ(toe_ipv4_output(h.st, p, &tx), 0);
  REQUIRE(h.ntx == 1);
  CHECK_EQ(h.tx[0].len, 14u + 20u + 64u);
  CHECK_MEM(h.tx[0].bytes + 34, b, 64);
  check_ip_hdr_csum(h.tx[0].bytes + 14);
  h_fini(&h);
}

TEST_MAIN()
