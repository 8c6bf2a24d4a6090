/*
 * IPv6 through the engine harness (docs/ipv6.md, first step): addresses from the config, input
 * checks and the extension-header rules, ICMPv6 echo and errors (quote, suppression, rate limit),
 * Neighbor Discovery (answering solicitations, resolving our own sends with retries and failure,
 * DAD defence, the table's reclaim rule). Frames are built by hand here with a reference checksum,
 * independent of the wire code under test.
 */
#include "engine/stack.h"
#include "harness.h"
#include "testlib.h"
#include "toe/steer.h"

#include <stdlib.h>
#include <string.h>

/* Our global address 2001:db8::1/64, the peer 2001:db8::2 (MAC 02:00:00:00:00:02), our link-local
 * fe80::ff:fe00:1 (modified EUI-64 of 02:00:00:00:00:01: the U/L bit flips to 0). */
static const uint8_t OUR6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
static const uint8_t PEER6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
static const uint8_t OUR_LL[16] = {0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xfe, 0, 0, 1};
static const uint8_t PEER_LL[16] = {0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xfe, 0, 0, 2};
static const uint8_t ALL_NODES[16] = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
static const uint8_t UNSPEC[16];
/* Solicited-node groups (RFC 4291 2.7.1): ff02::1:ff + low 24 bits. */
static const uint8_t SNM_1[16] = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 1};
static const uint8_t SNM_2[16] = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 2};
static const uint8_t SNM_1_MAC[6] = {0x33, 0x33, 0xff, 0, 0, 1};
static const uint8_t SNM_2_MAC[6] = {0x33, 0x33, 0xff, 0, 0, 2};
static const uint8_t ALL_NODES_MAC[6] = {0x33, 0x33, 0, 0, 0, 1};

static const struct toe_counters *ctr(const struct harness *h)
{
  return toe_stack_counters(h->st);
}

static void setup_cfg(struct harness *h, uint32_t nd_entries)
{
  struct toe_config cfg;
  h_default_cfg(&cfg);
  cfg.ipv6 = 1;
  cfg.addr6_count = 1;
  memcpy(cfg.addr6[0], OUR6, 16);
  cfg.addr6_prefix_len[0] = 64;
  if (nd_entries)
    cfg.nd_entries = nd_entries;
  cfg.dad_transmits = 0; /* addresses usable at once; the DAD tests turn it on */
  h_init_cfg(h, &cfg);
}

static void setup(struct harness *h)
{
  setup_cfg(h, 0);
}

/* RFC 8200 8.1 pseudo-header sum, for the reference checksum. */
static uint32_t pseudo6(const uint8_t *src, const uint8_t *dst, uint32_t len, uint8_t nh)
{
  uint32_t s = 0;
  for (int i = 0; i < 16; i += 2)
    s += (uint32_t)(src[i] << 8 | src[i + 1]) + (uint32_t)(dst[i] << 8 | dst[i + 1]);
  return s + (len >> 16) + (len & 0xffff) + nh;
}

/* An IPv6 frame from the peer's MAC to `eth_dst`: header, `ext` (extension headers, their Next
 * Header chain already written, the first one's type in `nh`), then `l4`. For ICMPv6 (`l4_proto`
 * 58) the checksum at l4+2 is filled in. */
static size_t build6(uint8_t *out, const uint8_t *eth_dst, const uint8_t *src, const uint8_t *dst,
                     uint8_t nh, uint8_t hop, const uint8_t *ext, size_t elen, uint8_t l4_proto,
                     const uint8_t *l4, size_t l4len)
{
  memcpy(out, eth_dst, 6);
  memcpy(out + 6, H_PEER_MAC, 6);
  out[12] = 0x86;
  out[13] = 0xdd;
  uint8_t *ip = out + 14;
  size_t plen = elen + l4len;
  ip[0] = 0x60;
  ip[1] = 0;
  ip[2] = 0;
  ip[3] = 0;
  ip[4] = (uint8_t)(plen >> 8);
  ip[5] = (uint8_t)plen;
  ip[6] = nh;
  ip[7] = hop;
  memcpy(ip + 8, src, 16);
  memcpy(ip + 24, dst, 16);
  if (elen)
    memcpy(ip + 40, ext, elen);
  uint8_t *p = ip + 40 + elen;
  memcpy(p, l4, l4len);
  if (l4_proto == 58 && l4len >= 4) {
    p[2] = p[3] = 0;
    uint16_t cs = h_csum(p, l4len, pseudo6(src, dst, (uint32_t)l4len, 58));
    p[2] = (uint8_t)(cs >> 8);
    p[3] = (uint8_t)cs;
  }
  return 14 + 40 + plen;
}

static size_t build_echo6(uint8_t *out, const uint8_t *eth_dst, const uint8_t *src,
                          const uint8_t *dst, uint16_t id, uint16_t seq, const void *data,
                          size_t dlen)
{
  uint8_t m[1500];
  m[0] = 128;
  m[1] = 0;
  m[4] = (uint8_t)(id >> 8);
  m[5] = (uint8_t)id;
  m[6] = (uint8_t)(seq >> 8);
  m[7] = (uint8_t)seq;
  memcpy(m + 8, data, dlen);
  return build6(out, eth_dst, src, dst, 58, 64, NULL, 0, 58, m, 8 + dlen);
}

/* NS for `target` from `src` (with SLLA = the peer's MAC unless src is ::). */
static size_t build_ns(uint8_t *out, const uint8_t *eth_dst, const uint8_t *src, const uint8_t *dst,
                       const uint8_t *target)
{
  uint8_t m[32] = {135, 0};
  memcpy(m + 8, target, 16);
  size_t n = 24;
  if (memcmp(src, UNSPEC, 16) != 0) {
    m[24] = 1;
    m[25] = 1;
    memcpy(m + 26, H_PEER_MAC, 6);
    n = 32;
  }
  return build6(out, eth_dst, src, dst, 58, 255, NULL, 0, 58, m, n);
}

/* NA for `target` from the peer with flags (R 0x80, S 0x40, O 0x20) and TLLA = `mac`. */
static size_t build_na(uint8_t *out, const uint8_t *src, const uint8_t *dst, const uint8_t *target,
                       uint8_t flags, const uint8_t *mac)
{
  uint8_t m[32] = {136, 0};
  m[4] = flags;
  memcpy(m + 8, target, 16);
  m[24] = 2;
  m[25] = 1;
  memcpy(m + 26, mac, 6);
  return build6(out, H_OUR_MAC, src, dst, 58, 255, NULL, 0, 58, m, 32);
}

/* Checks a captured IPv6 frame's header and ICMPv6 checksum; returns the ICMPv6 message. */
static const uint8_t *check_icmp6(const struct h_frame *f, const uint8_t *eth_dst,
                                  const uint8_t *src, const uint8_t *dst, uint8_t hop)
{
  const uint8_t *e = f->bytes;
  CHECK_MEM(e, eth_dst, 6);
  CHECK_MEM(e + 6, H_OUR_MAC, 6);
  CHECK_EQ(h_be16(e + 12), 0x86dd);
  const uint8_t *ip = e + 14;
  CHECK_EQ(ip[0] >> 4, 6);
  CHECK_EQ(ip[6], 58);
  CHECK_EQ(ip[7], hop);
  CHECK_MEM(ip + 8, src, 16);
  CHECK_MEM(ip + 24, dst, 16);
  uint16_t plen = h_be16(ip + 4);
  CHECK_EQ(f->len, 14u + 40u + plen);
  CHECK_EQ(h_csum(ip + 40, plen, pseudo6(ip + 8, ip + 24, plen, 58)), 0);
  return ip + 40;
}

/* Teaches the stack the peer's global address by a solicitation, then clears the answer. */
static void learn_peer6(struct harness *h)
{
  uint8_t f[256];
  h_input(h, f, build_ns(f, SNM_1_MAC, PEER6, SNM_1, OUR6));
  h_clear(h);
}

/* ---- configuration ---- */

TEST(config_link_local_from_mac_and_bad_configs)
{
  struct harness h;
  setup(&h);
  CHECK_EQ(h.st->ip6.naddr, 2);
  CHECK_MEM(h.st->ip6.addrs[0].addr.b, OUR_LL, 16);
  CHECK_EQ(h.st->ip6.addrs[0].prefix_len, 64);
  CHECK_MEM(h.st->ip6.addrs[1].addr.b, OUR6, 16);
  CHECK_MEM(h.st->ip6.addrs[1].snm.b, SNM_1, 16);
  h_fini(&h);

  struct toe_config cfg;
  h_default_cfg(&cfg);
  cfg.tx = (toe_tx_fn)abort;
  cfg.ipv6 = 1;
  CHECK(toe_stack_mem_size(&cfg) > 0); /* link-local only is fine */
  static const uint8_t bad[][16] = {
      {0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5}, /* link-local: derived, not given */
      {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, /* multicast */
      {0},                                                    /* unspecified */
      {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1},       /* loopback */
      {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 18, 0, 1}, /* v4-mapped */
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    cfg.addr6_count = 1;
    memcpy(cfg.addr6[0], bad[i], 16);
    cfg.addr6_prefix_len[0] = 64;
    CHECK_EQ(toe_stack_mem_size(&cfg), 0);
  }
  memcpy(cfg.addr6[0], OUR6, 16);
  CHECK(toe_stack_mem_size(&cfg) > 0);
  cfg.addr6_prefix_len[0] = 0;
  CHECK_EQ(toe_stack_mem_size(&cfg), 0);
  cfg.addr6_prefix_len[0] = 129;
  CHECK_EQ(toe_stack_mem_size(&cfg), 0);
  cfg.addr6_prefix_len[0] = 64;
  cfg.addr6_count = 2;
  memcpy(cfg.addr6[1], OUR6, 16); /* duplicate */
  CHECK_EQ(toe_stack_mem_size(&cfg), 0);
  cfg.addr6_count = 1;
  cfg.steering = 1; /* shared with a host interface (test_steer6.c) */
  CHECK(toe_stack_mem_size(&cfg) > 0);
  cfg.steering = 0;
  cfg.mtu = 1200; /* below IPv6's minimum link MTU */
  CHECK_EQ(toe_stack_mem_size(&cfg), 0);
  cfg.mtu = 1500;
  cfg.ipv6 = 0; /* addresses without IPv6 on */
  CHECK_EQ(toe_stack_mem_size(&cfg), 0);
}

TEST(ipv6_off_drops_as_before)
{
  struct harness h;
  h_init(&h);
  uint8_t f[256], d[8] = {0};
  h_input(&h, f, build_echo6(f, H_OUR_MAC, PEER6, OUR6, 1, 1, d, sizeof d));
  h_input(&h, f, build_ns(f, SNM_1_MAC, PEER6, SNM_1, OUR6));
  CHECK_EQ(ctr(&h)->link.rx_drop_ethertype, 1);
  CHECK_EQ(ctr(&h)->link.rx_drop_not_for_us, 1); /* the group MAC is not ours */
  CHECK_EQ(ctr(&h)->ip6.rx_packets, 0);
  CHECK_EQ(h.ntx, 0);
  h_fini(&h);
}

/* ---- Neighbor Discovery: answering ---- */

TEST(ns_for_our_address_answered_with_solicited_override_na)
{
  struct harness h;
  setup(&h);
  uint32_t free0 = toe_pbuf_pool_free_count(h.st);
  uint8_t f[256];
  h_input(&h, f, build_ns(f, SNM_1_MAC, PEER6, SNM_1, OUR6));
  CHECK_EQ(ctr(&h)->nd.rx_ns, 1);
  CHECK_EQ(ctr(&h)->nd.tx_na, 1);
  REQUIRE(h.ntx == 1);
  /* RFC 4861 7.2.4: unicast to the solicitor at the address its SLLA gave, from the target. */
  const uint8_t *m = check_icmp6(&h.tx[0], H_PEER_MAC, OUR6, PEER6, 255);
  CHECK_EQ(m[0], 136);
  CHECK_EQ(m[1], 0);
  CHECK_EQ(m[4], 0x60); /* S and O, not R */
  CHECK_MEM(m + 8, OUR6, 16);
  CHECK_EQ(m[24], 2); /* target link-layer address option */
  CHECK_EQ(m[25], 1);
  CHECK_MEM(m + 26, H_OUR_MAC, 6);
  /* 7.2.3: the solicitor's entry is created STALE; sending the NA moved it to DELAY. */
  struct toe_in6_addr peer;
  memcpy(peer.b, PEER6, 16);
  const struct toe_nd_entry *e = toe_nd_lookup(h.st, &peer);
  REQUIRE(e != NULL);
  CHECK_EQ(e->state, TOE_ND_DELAY);
  CHECK_MEM(e->mac, H_PEER_MAC, 6);
  h_clear(&h);
  /* DELAY_FIRST_PROBE_TIME later with no confirmation: a unicast NS probes (7.3.3). */
  h_advance(&h, TOE_SEC(5) + TOE_MSEC(10));
  REQUIRE(h.ntx == 1);
  m = check_icmp6(&h.tx[0], H_PEER_MAC, OUR6, PEER6, 255);
  CHECK_EQ(m[0], 135);
  CHECK_MEM(m + 8, PEER6, 16);
  CHECK_EQ(e->state, TOE_ND_PROBE);
  h_clear(&h);
  /* The solicited NA makes it REACHABLE. */
  h_input(&h, f, build_na(f, PEER6, OUR6, PEER6, 0x60, H_PEER_MAC));
  CHECK_EQ(e->state, TOE_ND_REACHABLE);
  CHECK_EQ(h.ntx, 0);
  CHECK_EQ(toe_pbuf_pool_free_count(h.st), free0);
  h_fini(&h);
}

TEST(ns_for_link_local_and_to_unicast_answered)
{
  struct harness h;
  setup(&h);
  uint8_t f[256];
  /* Link-local target via our solicited-node group (same low 24 bits as the global here). */
  h_input(&h, f, build_ns(f, SNM_1_MAC, PEER_LL, SNM_1, OUR_LL));
  REQUIRE(h.ntx == 1);
  const uint8_t *m = check_icmp6(&h.tx[0], H_PEER_MAC, OUR_LL, PEER_LL, 255);
  CHECK_EQ(m[0], 136);
  CHECK_MEM(m + 8, OUR_LL, 16);
  h_clear(&h);
  /* A unicast NS (reachability probe) to our address. */
  h_input(&h, f, build_ns(f, H_OUR_MAC, PEER6, OUR6, OUR6));
  REQUIRE(h.ntx == 1);
  m = check_icmp6(&h.tx[0], H_PEER_MAC, OUR6, PEER6, 255);
  CHECK_EQ(m[4], 0x60);
  CHECK_EQ(ctr(&h)->nd.tx_na, 2);
  h_fini(&h);
}

TEST(ns_invalid_or_not_ours_ignored)
{
  struct harness h;
  setup(&h);
  uint8_t f[256];
  static const uint8_t other[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9};
  /* Target not ours (same group MAC would differ; send to ours to reach the check). */
  h_input(&h, f, build_ns(f, H_OUR_MAC, PEER6, OUR6, other));
  CHECK_EQ(ctr(&h)->nd.rx_ns_not_ours, 1);
  /* Hop limit below 255: RFC 4861 7.1.1 says it crossed a router: invalid. */
  size_t n = build_ns(f, SNM_1_MAC, PEER6, SNM_1, OUR6);
  f[14 + 7] = 64;
  h_input(&h, f, n);
  CHECK_EQ(ctr(&h)->nd.rx_drop_invalid, 1);
  /* A group we do not listen to, by MAC and by address. */
  h_input(&h, f, build_ns(f, SNM_2_MAC, PEER6, SNM_2, OUR6));
  CHECK_EQ(ctr(&h)->link.rx_drop_not_for_us, 1);
  h_input(&h, f, build_ns(f, SNM_1_MAC, PEER6, SNM_2, OUR6));
  CHECK_EQ(ctr(&h)->ip6.rx_drop_not_for_us, 1);
  CHECK_EQ(h.ntx, 0);
  CHECK_EQ(ctr(&h)->nd.entries_inuse, 0);
  h_fini(&h);
}

TEST(dad_probe_for_our_address_defended_na_to_all_nodes)
{
  struct harness h;
  setup(&h);
  uint8_t f[256];
  h_input(&h, f, build_ns(f, SNM_1_MAC, UNSPEC, SNM_1, OUR6));
  CHECK_EQ(ctr(&h)->nd.rx_dad_probe, 1);
  REQUIRE(h.ntx == 1);
  const uint8_t *m = check_icmp6(&h.tx[0], ALL_NODES_MAC, OUR6, ALL_NODES, 255);
  CHECK_EQ(m[0], 136);
  CHECK_EQ(m[4], 0x20); /* override only: unsolicited (RFC 4861 7.2.4) */
  CHECK_EQ(ctr(&h)->nd.entries_inuse, 0);
  h_fini(&h);
}

TEST(na_claiming_our_address_counted_not_learned)
{
  struct harness h;
  setup(&h);
  uint8_t f[256];
  h_input(&h, f, build_na(f, PEER6, ALL_NODES, OUR6, 0x20, H_PEER_MAC));
  CHECK_EQ(ctr(&h)->nd.rx_na_conflict, 1);
  CHECK_EQ(ctr(&h)->nd.entries_inuse, 0);
  CHECK_EQ(h.ntx, 0);
  h_fini(&h);
}

/* ---- ICMPv6 echo ---- */

TEST(echo_to_global_and_link_local_answered)
{
  struct harness h;
  setup(&h);
  learn_peer6(&h);
  uint32_t free0 = toe_pbuf_pool_free_count(h.st);
  uint8_t f[512], d[56];
  for (int i = 0; i < 56; i++)
    d[i] = (uint8_t)(i * 3);
  h_input(&h, f, build_echo6(f, H_OUR_MAC, PEER6, OUR6, 0x1234, 7, d, sizeof d));
  CHECK_EQ(ctr(&h)->icmp6.rx_echo_requests, 1);
  CHECK_EQ(ctr(&h)->icmp6.tx_echo_replies, 1);
  REQUIRE(h.ntx == 1);
  const uint8_t *m = check_icmp6(&h.tx[0], H_PEER_MAC, OUR6, PEER6, 64);
  CHECK_EQ(m[0], 129);
  CHECK_EQ(m[1], 0);
  CHECK_EQ(h_be16(m + 4), 0x1234);
  CHECK_EQ(h_be16(m + 6), 7);
  CHECK_MEM(m + 8, d, sizeof d);
  h_clear(&h);
  CHECK_EQ(toe_pbuf_pool_free_count(h.st), free0);

  /* To the link-local address from the peer's link-local one: resolved first (no entry yet). */
  h_input(&h, f, build_echo6(f, H_OUR_MAC, PEER_LL, OUR_LL, 1, 2, d, 8));
  REQUIRE(h.ntx == 1);
  m = check_icmp6(&h.tx[0], SNM_2_MAC, OUR_LL, SNM_2, 255);
  CHECK_EQ(m[0], 135);
  CHECK_MEM(m + 8, PEER_LL, 16);
  CHECK_EQ(m[24], 1); /* our SLLA */
  CHECK_MEM(m + 26, H_OUR_MAC, 6);
  CHECK_EQ(ctr(&h)->nd.queued, 1);
  h_clear(&h);
  h_input(&h, f, build_na(f, PEER_LL, OUR_LL, PEER_LL, 0x60, H_PEER_MAC));
  REQUIRE(h.ntx == 1);
  m = check_icmp6(&h.tx[0], H_PEER_MAC, OUR_LL, PEER_LL, 64);
  CHECK_EQ(m[0], 129);
  CHECK_EQ(h_be16(m + 6), 2);
  h_fini(&h);
}

TEST(echo_to_all_nodes_answered_from_unicast)
{
  struct harness h;
  setup(&h);
  uint8_t f[256], d[4] = {1, 2, 3, 4};
  /* Teach the link-local peer first. */
  h_input(&h, f, build_ns(f, SNM_1_MAC, PEER_LL, SNM_1, OUR_LL));
  h_clear(&h);
  h_input(&h, f, build_echo6(f, ALL_NODES_MAC, PEER_LL, ALL_NODES, 9, 9, d, sizeof d));
  CHECK_EQ(ctr(&h)->icmp6.rx_echo_multicast, 1);
  REQUIRE(h.ntx == 1);
  const uint8_t *m = check_icmp6(&h.tx[0], H_PEER_MAC, OUR_LL, PEER_LL, 64);
  CHECK_EQ(m[0], 129);
  CHECK_MEM(m + 8, d, sizeof d);
  h_fini(&h);
}

TEST(bad_checksum_malformed_and_bad_source_counted)
{
  struct harness h;
  setup(&h);
  learn_peer6(&h);
  uint8_t f[256], d[8] = {0};
  size_t n = build_echo6(f, H_OUR_MAC, PEER6, OUR6, 1, 1, d, sizeof d);
  f[n - 1] ^= 1;
  h_input(&h, f, n);
  CHECK_EQ(ctr(&h)->icmp6.rx_drop_checksum, 1);
  /* Payload length beyond the frame. */
  n = build_echo6(f, H_OUR_MAC, PEER6, OUR6, 1, 1, d, sizeof d);
  f[14 + 5] = 200;
  h_input(&h, f, n);
  /* Version 4 in an IPv6 frame. */
  n = build_echo6(f, H_OUR_MAC, PEER6, OUR6, 1, 1, d, sizeof d);
  f[14] = 0x40;
  h_input(&h, f, n);
  /* Truncated header. */
  h_input(&h, f, 14 + 30);
  CHECK_EQ(ctr(&h)->ip6.rx_drop_malformed, 3);
  /* From our own address, from loopback. */
  h_input(&h, f, build_echo6(f, H_OUR_MAC, OUR6, OUR6, 1, 1, d, sizeof d));
  static const uint8_t lo[16] = {[15] = 1};
  h_input(&h, f, build_echo6(f, H_OUR_MAC, lo, OUR6, 1, 1, d, sizeof d));
  CHECK_EQ(ctr(&h)->ip6.rx_drop_bad_source, 2);
  /* Link padding after a short packet is trimmed, not a checksum error. */
  n = build_echo6(f, H_OUR_MAC, PEER6, OUR6, 1, 1, d, 0);
  memset(f + n, 0xee, 10);
  h_input(&h, f, n + 10);
  CHECK_EQ(ctr(&h)->icmp6.tx_echo_replies, 1);
  CHECK_EQ(h.ntx, 1);
  h_fini(&h);
}

/* ---- extension headers and errors ---- */

TEST(unknown_next_header_gets_parameter_problem_code_1)
{
  struct harness h;
  setup(&h);
  learn_peer6(&h);
  uint8_t f[256], body[16] = {0};
  size_t n = build6(f, H_OUR_MAC, PEER6, OUR6, 253, 64, NULL, 0, 253, body, sizeof body);
  h_input(&h, f, n);
  CHECK_EQ(ctr(&h)->ip6.rx_drop_proto, 1);
  CHECK_EQ(ctr(&h)->icmp6.tx_param_problem, 1);
  REQUIRE(h.ntx == 1);
  const uint8_t *m = check_icmp6(&h.tx[0], H_PEER_MAC, OUR6, PEER6, 64);
  CHECK_EQ(m[0], 4);
  CHECK_EQ(m[1], 1);
  CHECK_EQ(h_be32(m + 4), 6);       /* the Next Header field of the fixed header */
  CHECK_MEM(m + 8, f + 14, n - 14); /* the whole invoking packet fits the quote */
  h_fini(&h);
}

/* TCP and UDP over IPv6: tests/unit/engine/test_ipv6_transport.c. */

TEST(hop_by_hop_option_action_bits)
{
  struct harness h;
  setup(&h);
  learn_peer6(&h);
  uint8_t f[256], m[8] = {128, 0, 0, 0, 0, 1, 0, 1};
  /* Option type 0x1e (00: skip), then echo: answered. */
  uint8_t hbh[8] = {58, 0, 0x1e, 4, 0, 0, 0, 0};
  h_input(&h, f, build6(f, H_OUR_MAC, PEER6, OUR6, 0, 64, hbh, 8, 58, m, 8));
  CHECK_EQ(ctr(&h)->icmp6.tx_echo_replies, 1);
  /* 0x5e (01: discard silently). */
  hbh[2] = 0x5e;
  h_input(&h, f, build6(f, H_OUR_MAC, PEER6, OUR6, 0, 64, hbh, 8, 58, m, 8));
  CHECK_EQ(ctr(&h)->ip6.rx_drop_ext, 1);
  /* 0x9e (10: discard, Parameter Problem code 2 pointing at the option type). */
  hbh[2] = 0x9e;
  h_clear(&h);
  h_input(&h, f, build6(f, H_OUR_MAC, PEER6, OUR6, 0, 64, hbh, 8, 58, m, 8));
  CHECK_EQ(ctr(&h)->ip6.rx_drop_param, 1);
  REQUIRE(h.ntx == 1);
  const uint8_t *e = check_icmp6(&h.tx[0], H_PEER_MAC, OUR6, PEER6, 64);
  CHECK_EQ(e[0], 4);
  CHECK_EQ(e[1], 2);
  CHECK_EQ(h_be32(e + 4), 42);
  /* 0xde (11: the same, but silently when the destination is a group). */
  hbh[2] = 0xde;
  h_clear(&h);
  h_input(&h, f, build6(f, ALL_NODES_MAC, PEER6, ALL_NODES, 0, 64, hbh, 8, 58, m, 8));
  CHECK_EQ(ctr(&h)->ip6.rx_drop_ext, 2);
  CHECK_EQ(h.ntx, 0);
  h_input(&h, f, build6(f, H_OUR_MAC, PEER6, OUR6, 0, 64, hbh, 8, 58, m, 8));
  CHECK_EQ(ctr(&h)->ip6.rx_drop_param, 2);
  CHECK_EQ(h.ntx, 1);
  h_fini(&h);
}

TEST(routing_type_0_refused_fragments_held_atomic_accepted)
{
  struct harness h;
  setup(&h);
  learn_peer6(&h);
  uint8_t f[256], m[8] = {128, 0, 0, 0, 0, 1, 0, 1};
  /* Routing header type 0 with segments left 1 (RFC 5095): code 0 at the Routing Type field. */
  uint8_t rh[24] = {58, 2, 0, 1};
  memcpy(rh + 8, PEER6, 16);
  h_input(&h, f, build6(f, H_OUR_MAC, PEER6, OUR6, 43, 64, rh, 24, 58, m, 8));
  CHECK_EQ(ctr(&h)->ip6.rx_drop_param, 1);
  REQUIRE(h.ntx == 1);
  const uint8_t *e = check_icmp6(&h.tx[0], H_PEER_MAC, OUR6, PEER6, 64);
  CHECK_EQ(e[0], 4);
  CHECK_EQ(e[1], 0);
  CHECK_EQ(h_be32(e + 4), 42);
  h_clear(&h);
  /* A first fragment (M set): held for reassembly (test_ipv6_frag.c), nothing sent. */
  uint8_t fh[8] = {58, 0, 0, 1, 0, 0, 0, 7};
  h_input(&h, f, build6(f, H_OUR_MAC, PEER6, OUR6, 44, 64, fh, 8, 58, m, 8));
  CHECK_EQ(ctr(&h)->ip6.reass_inuse, 1);
  CHECK_EQ(h.ntx, 0);
  /* An atomic fragment (offset 0, M clear) is a whole packet (RFC 8021). */
  fh[3] = 0;
  h_input(&h, f, build6(f, H_OUR_MAC, PEER6, OUR6, 44, 64, fh, 8, 58, m, 8));
  CHECK_EQ(ctr(&h)->icmp6.tx_echo_replies, 1);
  /* Next Header 59: nothing to deliver. */
  h_input(&h, f, build6(f, H_OUR_MAC, PEER6, OUR6, 59, 64, NULL, 0, 59, m, 8));
  CHECK_EQ(ctr(&h)->ip6.rx_drop_no_next, 1);
  h_fini(&h);
}

TEST(error_rate_limit_and_suppression)
{
  struct harness h;
  setup(&h);
  learn_peer6(&h);
  uint8_t f[256], body[8] = {0};
  for (int i = 0; i < 25; i++)
    h_input(&h, f, build6(f, H_OUR_MAC, PEER6, OUR6, 253, 64, NULL, 0, 253, body, 8));
  /* RFC 4443 2.4 (f): the bucket (10 deep) empties, the rest are counted. */
  CHECK_EQ(ctr(&h)->icmp6.tx_param_problem, 10);
  CHECK_EQ(ctr(&h)->icmp6.tx_rate_limited, 15);
  h_advance(&h, TOE_MSEC(100)); /* 100/s: ten more tokens */
  for (int i = 0; i < 12; i++)
    h_input(&h, f, build6(f, H_OUR_MAC, PEER6, OUR6, 253, 64, NULL, 0, 253, body, 8));
  CHECK_EQ(ctr(&h)->icmp6.tx_param_problem, 20);
  CHECK_EQ(ctr(&h)->icmp6.tx_rate_limited, 17);
  /* 2.4 (e.3): not about a packet to a group (code 1 is not the exception), nor (e.1) about an
   * ICMPv6 error. */
  h_input(&h, f, build6(f, ALL_NODES_MAC, PEER6, ALL_NODES, 253, 64, NULL, 0, 253, body, 8));
  CHECK_EQ(ctr(&h)->icmp6.tx_suppressed, 1);
  h_fini(&h);
}

/* ---- Neighbor Discovery: resolving our sends ---- */

TEST(resolution_retries_then_fails_and_frees)
{
  struct harness h;
  setup(&h);
  uint32_t free0 = toe_pbuf_pool_free_count(h.st);
  uint8_t f[256], d[8] = {0};
  /* An echo from a peer we have no entry for: the reply waits for resolution. */
  h_input(&h, f, build_echo6(f, H_OUR_MAC, PEER6, OUR6, 1, 1, d, sizeof d));
  h_input(&h, f, build_echo6(f, H_OUR_MAC, PEER6, OUR6, 1, 2, d, sizeof d));
  CHECK_EQ(ctr(&h)->nd.queued, 2);
  CHECK_EQ(h.ntx, 1); /* one NS, not one per packet */
  h_advance(&h, TOE_MSEC(2999));
  CHECK_EQ(ctr(&h)->nd.tx_ns, 3); /* MAX_MULTICAST_SOLICIT, RetransTimer apart */
  for (int i = 0; i < h.ntx; i++) {
    const uint8_t *m = check_icmp6(&h.tx[i], SNM_2_MAC, OUR6, SNM_2, 255);
    CHECK_EQ(m[0], 135);
  }
  h_advance(&h, TOE_MSEC(20));
  CHECK_EQ(ctr(&h)->nd.resolve_failed, 1);
  CHECK_EQ(ctr(&h)->nd.queue_drop_failed, 2);
  CHECK_EQ(ctr(&h)->nd.entries_inuse, 0);
  CHECK_EQ(h.ntx, 3);
  h_clear(&h);
  CHECK_EQ(toe_pbuf_pool_free_count(h.st), free0);
  h_fini(&h);
}

TEST(queue_bounded_oldest_dropped_then_flushed_in_order)
{
  struct harness h;
  setup(&h);
  uint8_t f[256], d[8] = {0};
  unsigned qmax = h.cfg.arp_queue_len;
  for (unsigned i = 0; i < qmax + 3; i++)
    h_input(&h, f, build_echo6(f, H_OUR_MAC, PEER6, OUR6, 1, (uint16_t)i, d, sizeof d));
  CHECK_EQ(ctr(&h)->nd.queue_drop_full, 3);
  h_clear(&h);
  /* An unsolicited NA (S clear) with the address resolves too: STALE, the queue flushed. */
  h_input(&h, f, build_na(f, PEER6, OUR6, PEER6, 0x20, H_PEER_MAC));
  REQUIRE(h.ntx == (int)qmax);
  for (unsigned i = 0; i < qmax; i++) {
    const uint8_t *m = check_icmp6(&h.tx[i], H_PEER_MAC, OUR6, PEER6, 64);
    CHECK_EQ(h_be16(m + 6), i + 3);
  }
  struct toe_in6_addr peer;
  memcpy(peer.b, PEER6, 16);
  CHECK_EQ(toe_nd_lookup(h.st, &peer)->state, TOE_ND_STALE);
  h_fini(&h);
}

TEST(off_link_destination_has_no_route_yet)
{
  struct harness h;
  setup(&h);
  uint8_t f[256], d[8] = {0};
  static const uint8_t far[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
  h_input(&h, f, build_echo6(f, H_OUR_MAC, far, OUR6, 1, 1, d, sizeof d));
  CHECK_EQ(ctr(&h)->ip6.tx_drop_no_route, 1);
  CHECK_EQ(h.ntx, 0);
  h_fini(&h);
}

TEST(table_full_unsolicited_cannot_evict_neighbours_in_use)
{
  struct harness h;
  setup_cfg(&h, 2);
  uint8_t f[256], d[8] = {0};
  /* Two neighbours we answer (used). */
  h_input(&h, f, build_ns(f, SNM_1_MAC, PEER6, SNM_1, OUR6));
  h_input(&h, f, build_ns(f, SNM_1_MAC, PEER_LL, SNM_1, OUR_LL));
  CHECK_EQ(ctr(&h)->nd.entries_inuse, 2);
  /* A third solicitor: its address is not learned, the NA goes out through resolution, which
   * may reclaim (it is our send) the least recently used entry. */
  static const uint8_t third[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3};
  h_clear(&h);
  h_input(&h, f, build_ns(f, SNM_1_MAC, third, SNM_1, OUR6));
  CHECK_EQ(ctr(&h)->nd.unsolicited_ignored, 1);
  CHECK_EQ(ctr(&h)->nd.entries_evicted, 1);
  CHECK_EQ(ctr(&h)->nd.entries_inuse, 2);
  REQUIRE(h.ntx == 1); /* the multicast NS resolving the third */
  const uint8_t *m =
      check_icmp6(&h.tx[0], (const uint8_t[]){0x33, 0x33, 0xff, 0, 0, 3}, OUR6,
                  (const uint8_t[]){0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 3}, 255);
  CHECK_EQ(m[0], 135);
  (void)d;
  h_fini(&h);
}

/* ---- coexistence with a host interface (docs/ipv6.md): the OS keeps IPv6 ---- */

TEST(steering_sends_ipv6_to_the_host_and_the_engine_stays_silent)
{
  struct toe_config cfg;
  h_default_cfg(&cfg);
  cfg.steering = 1;
  struct harness h;
  h_init_cfg(&h, &cfg);
  uint8_t f[256], d[4] = {0};
  size_t n = build_ns(f, SNM_1_MAC, PEER6, SNM_1, OUR6);
  CHECK_EQ(toe_steer_frame(h.st, f, n), TOE_STEER_HOST);
  /* Even if a driver handed it to the engine as well, the solicitation is answered once: by
   * the OS. */
  h_input(&h, f, n);
  n = build_echo6(f, H_OUR_MAC, PEER6, OUR6, 1, 1, d, sizeof d);
  CHECK_EQ(toe_steer_frame(h.st, f, n), TOE_STEER_HOST);
  h_input(&h, f, n);
  CHECK_EQ(ctr(&h)->steer.not_ours, 2);
  CHECK_EQ(ctr(&h)->ip6.rx_packets, 0);
  CHECK_EQ(h.ntx, 0);
  h_fini(&h);
}

/* ---- duplicate address detection (RFC 4862 5.4) and the MLD join ---- */

static void setup_dad(struct harness *h)
{
  struct toe_config cfg;
  h_default_cfg(&cfg);
  cfg.ipv6 = 1;
  cfg.addr6_count = 1;
  memcpy(cfg.addr6[0], OUR6, 16);
  cfg.addr6_prefix_len[0] = 64;
  h_init_cfg(h, &cfg); /* dad_transmits: the default, 1 */
  toe_stack_start(h->st, h->now);
}

/* Index of the n-th captured frame to `mac`, or -1. */
static int find_to(const struct harness *h, const uint8_t *mac, int nth)
{
  for (int i = 0; i < h->ntx; i++)
    if (memcmp(h->tx[i].bytes, mac, 6) == 0 && nth-- == 0)
      return i;
  return -1;
}

static const uint8_t MLD_MAC[6] = {0x33, 0x33, 0, 0, 0, 0x16};
static const uint8_t ALL_MLD[16] = {0xff, 0x02, [15] = 0x16};

TEST(dad_probes_then_addresses_usable_mld_join)
{
  struct harness h;
  setup_dad(&h);
  /* The join goes out at once: from :: (RFC 3590), hop limit 1, Router Alert, one record for
   * the one solicited-node group both addresses share. */
  int i = find_to(&h, MLD_MAC, 0);
  REQUIRE(i >= 0);
  const uint8_t *ip = h.tx[i].bytes + 14;
  CHECK_EQ(ip[6], 0); /* hop-by-hop */
  CHECK_EQ(ip[7], 1);
  CHECK_MEM(ip + 8, UNSPEC, 16);
  CHECK_MEM(ip + 24, ALL_MLD, 16);
  CHECK_EQ(ip[40], 58);
  CHECK_EQ(ip[42], 5); /* Router Alert */
  const uint8_t *m = ip + 48;
  CHECK_EQ(m[0], 143);
  CHECK_EQ(h_be16(m + 6), 1);
  CHECK_EQ(m[8], 4); /* CHANGE_TO_EXCLUDE: a join */
  CHECK_MEM(m + 12, SNM_1, 16);
  CHECK_EQ(h_csum(m, 28, pseudo6(ip + 8, ip + 24, 28, 58)), 0);
  CHECK_EQ(ctr(&h)->nd.tx_mld_reports, 1);

  /* Tentative: echo to the address is not for us, a unicast-source NS is not answered. */
  uint8_t f[256], d[4] = {1, 2, 3, 4};
  h_clear(&h);
  h_input(&h, f, build_echo6(f, H_OUR_MAC, PEER6, OUR6, 1, 1, d, sizeof d));
  CHECK_EQ(ctr(&h)->ip6.rx_drop_not_for_us, 1);
  h_input(&h, f, build_ns(f, SNM_1_MAC, PEER6, SNM_1, OUR6));
  CHECK_EQ(ctr(&h)->nd.rx_tentative_ignored, 1);
  CHECK_EQ(h.ntx, 0);

  /* After the random delay (at most 1 s): one probe per address and the repeated report. */
  h_advance(&h, TOE_MSEC(1001));
  CHECK_EQ(ctr(&h)->nd.tx_dad_ns, 2);
  CHECK_EQ(ctr(&h)->nd.tx_mld_reports, 2);
  for (int k = 0; k < 2; k++) {
    i = find_to(&h, SNM_1_MAC, k);
    REQUIRE(i >= 0);
    m = check_icmp6(&h.tx[i], SNM_1_MAC, UNSPEC, SNM_1, 255);
    CHECK_EQ(m[0], 135);
    CHECK_MEM(m + 8, k == 0 ? OUR_LL : OUR6, 16);
    CHECK_EQ(h_be16(h.tx[i].bytes + 18), 32); /* NS + nonce option, no SLLA */
    CHECK_EQ(m[24], 14);
    CHECK_EQ(m[25], 1);
  }
  CHECK_EQ(ctr(&h)->nd.dad_completed, 0);
  /* RetransTimer later with no answer: both addresses preferred. */
  h_advance(&h, TOE_MSEC(1001));
  CHECK_EQ(ctr(&h)->nd.dad_completed, 2);
  CHECK_EQ(ctr(&h)->nd.dad_duplicates, 0);
  learn_peer6(&h);
  h_input(&h, f, build_echo6(f, H_OUR_MAC, PEER6, OUR6, 1, 2, d, sizeof d));
  CHECK_EQ(ctr(&h)->icmp6.tx_echo_replies, 1);
  h_fini(&h);
}

TEST(dad_na_marks_address_duplicate_for_good)
{
  struct harness h;
  setup_dad(&h);
  h_advance(&h, TOE_MSEC(1001));
  REQUIRE(ctr(&h)->nd.tx_dad_ns == 2);
  uint8_t f[256], d[4] = {0};
  /* Another node answers for the global address (RFC 4862 5.4.4). */
  h_input(&h, f, build_na(f, PEER6, ALL_NODES, OUR6, 0x20, H_PEER_MAC));
  CHECK_EQ(ctr(&h)->nd.dad_duplicates, 1);
  h_advance(&h, TOE_MSEC(1001));
  CHECK_EQ(ctr(&h)->nd.dad_completed, 1); /* the link-local one */
  CHECK_EQ(h.st->ip6.addrs[1].state, TOE_IP6_DUPLICATE);
  /* What toed reports from (toe_stack_addr6). */
  uint8_t a[16];
  CHECK_EQ(toe_stack_addr6(h.st, 0, a), TOE_ADDR6_PREFERRED);
  CHECK_MEM(a, OUR_LL, 16);
  CHECK_EQ(toe_stack_addr6(h.st, 1, a), TOE_ADDR6_DUPLICATE);
  CHECK_MEM(a, OUR6, 16);
  CHECK_EQ(toe_stack_addr6(h.st, 2, a), -TOE_ENOENT);
  h_clear(&h);
  /* Never used: not answered by ND, not a destination, not a source. */
  h_input(&h, f, build_ns(f, SNM_1_MAC, PEER6, SNM_1, OUR6));
  CHECK_EQ(ctr(&h)->nd.rx_ns_not_ours, 1);
  h_input(&h, f, build_echo6(f, H_OUR_MAC, PEER6, OUR6, 1, 1, d, sizeof d));
  CHECK_EQ(ctr(&h)->ip6.rx_drop_not_for_us, 1);
  CHECK_EQ(h.ntx, 0);
  /* The link-local address works. */
  h_input(&h, f, build_ns(f, SNM_1_MAC, PEER_LL, SNM_1, OUR_LL));
  CHECK_EQ(ctr(&h)->nd.tx_na, 1);
  h_fini(&h);
}

TEST(dad_own_probe_ignored_foreign_probe_is_duplicate)
{
  struct harness h;
  setup_dad(&h);
  h_advance(&h, TOE_MSEC(1001));
  int i = find_to(&h, SNM_1_MAC, 1); /* the global address's probe */
  REQUIRE(i >= 0);
  uint8_t own[128];
  size_t n = h.tx[i].len;
  REQUIRE(n <= sizeof own);
  memcpy(own, h.tx[i].bytes, n);
  /* Our own probe, looped back by the link (same nonce, RFC 7527): not a duplicate. */
  h_input(&h, own, n);
  CHECK_EQ(ctr(&h)->nd.dad_own_looped, 1);
  CHECK_EQ(ctr(&h)->nd.dad_duplicates, 0);
  /* Another node probing for the same address at the same time (no nonce): duplicate. */
  uint8_t f[256];
  h_input(&h, f, build_ns(f, SNM_1_MAC, UNSPEC, SNM_1, OUR6));
  CHECK_EQ(ctr(&h)->nd.dad_duplicates, 1);
  h_advance(&h, TOE_MSEC(1001));
  CHECK_EQ(ctr(&h)->nd.dad_completed, 1);
  h_fini(&h);
}

TEST_MAIN()
