/*
 * IPv6 fragmentation and reassembly through the engine harness (RFC 8200 4.5): echo requests sent
 * in fragments (in order, reversed, with a duplicate), the replies fragmented to the link or path
 * MTU and put back together here by an independent reference, overlaps (RFC 5722), the 60 s
 * timeout with its Time Exceeded, the per-source share and the shared buffer budget.
 */
#include "engine/stack.h"
#include "harness.h"
#include "testlib.h"

#include <string.h>

static const uint8_t OUR6[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 1};
static const uint8_t PEER6[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 2};
static const uint8_t PEER6B[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 3};
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

static uint8_t g_hop = 64; /* hop limit of the frames built */

/* An IPv6 frame from the peer's MAC: header (next header `nh`), then `len` bytes at `body`. */
static size_t build6(uint8_t *out, const uint8_t *eth_dst, const uint8_t *src, const uint8_t *dst,
                     uint8_t nh, const uint8_t *body, size_t len)
{
  memcpy(out, eth_dst, 6);
  memcpy(out + 6, H_PEER_MAC, 6);
  out[12] = 0x86;
  out[13] = 0xdd;
  uint8_t *ip = out + 14;
  memset(ip, 0, 8);
  ip[0] = 0x60;
  ip[4] = (uint8_t)(len >> 8);
  ip[5] = (uint8_t)len;
  ip[6] = nh;
  ip[7] = g_hop;
  memcpy(ip + 8, src, 16);
  memcpy(ip + 24, dst, 16);
  memcpy(ip + 40, body, len);
  return 14 + 40 + len;
}

/* An echo request of `dlen` data bytes (a pattern) from `src` to us, checksummed whole. */
static size_t echo_msg(uint8_t *m, const uint8_t *src, uint16_t seq, size_t dlen)
{
  memset(m, 0, 8);
  m[0] = 128;
  m[5] = 7;
  m[6] = (uint8_t)(seq >> 8);
  m[7] = (uint8_t)seq;
  for (size_t i = 0; i < dlen; i++)
    m[8 + i] = (uint8_t)(i * 7 + 3);
  uint16_t cs = h_csum(m, 8 + dlen, pseudo6(src, OUR6, (uint32_t)(8 + dlen), 58));
  m[2] = (uint8_t)(cs >> 8);
  m[3] = (uint8_t)cs;
  return 8 + dlen;
}

/* Feeds bytes [off, off+len) of `msg` as one fragment of datagram `id` from `src`. */
static void send_frag(struct harness *h, const uint8_t *src, uint32_t id, const uint8_t *msg,
                      uint32_t off, uint32_t len, bool more)
{
  static uint8_t body[2048], f[2200];
  body[0] = 58;
  body[1] = 0;
  uint16_t fo = (uint16_t)(off | (more ? 1u : 0u));
  body[2] = (uint8_t)(fo >> 8);
  body[3] = (uint8_t)fo;
  body[4] = (uint8_t)(id >> 24);
  body[5] = (uint8_t)(id >> 16);
  body[6] = (uint8_t)(id >> 8);
  body[7] = (uint8_t)id;
  memcpy(body + 8, msg + off, len);
  h_input(h, f, build6(f, H_OUR_MAC, src, OUR6, 44, body, 8 + len));
}

/* A solicited, overriding advertisement of the peer's link address (RFC 4861 7.2.5), so that a
 * packet waiting for resolution goes out. */
static void advertise(struct harness *h, const uint8_t *peer)
{
  uint8_t m[32] = {136, 0, 0, 0, 0x60}, f[128];
  memcpy(m + 8, peer, 16);
  m[24] = 2;
  m[25] = 1;
  memcpy(m + 26, H_PEER_MAC, 6);
  uint16_t cs = h_csum(m, 32, pseudo6(peer, OUR6, 32, 58));
  m[2] = (uint8_t)(cs >> 8);
  m[3] = (uint8_t)cs;
  size_t n = build6(f, H_OUR_MAC, peer, OUR6, 58, m, 32);
  f[14 + 7] = 255;
  h_input(h, f, n);
}

static void learn(struct harness *h, const uint8_t *peer)
{
  uint8_t m[32] = {135, 0}, f[128];
  memcpy(m + 8, OUR6, 16);
  m[24] = 1;
  m[25] = 1;
  memcpy(m + 26, H_PEER_MAC, 6);
  uint16_t cs = h_csum(m, 32, pseudo6(peer, SNM_1, 32, 58));
  m[2] = (uint8_t)(cs >> 8);
  m[3] = (uint8_t)cs;
  size_t n = build6(f, SNM_1_MAC, peer, SNM_1, 58, m, 32);
  f[14 + 7] = 255;
  h_input(h, f, n);
  h_clear(h);
}

/* Frames sent that are ICMPv6 of `type` (the neighbour probes the clock's advance causes are
 * not counted). */
static int count_icmp6(const struct harness *h, uint8_t type)
{
  int n = 0;
  for (int i = 0; i < h->ntx; i++) {
    const uint8_t *ip = h->tx[i].bytes + 14;
    if (h_be16(h->tx[i].bytes + 12) == 0x86dd && ip[6] == 58 && ip[40] == type)
      n++;
  }
  return n;
}

static int find_icmp6(const struct harness *h, uint8_t type)
{
  for (int i = 0; i < h->ntx; i++) {
    const uint8_t *ip = h->tx[i].bytes + 14;
    if (h_be16(h->tx[i].bytes + 12) == 0x86dd && ip[6] == 58 && ip[40] == type)
      return i;
  }
  return -1;
}

/*
 * Reference reassembly of the frames sent to `dst` from tx[first..]: checks each is an IPv6
 * fragment of at most `mtu` bytes with one id, 8-byte aligned pieces, M set on all but the last,
 * and copies the pieces into `out`. Returns the reassembled payload's length (0 on a failure).
 */
static size_t reassemble_tx(const struct harness *h, int first, size_t mtu, const uint8_t *dst,
                            uint8_t *out, int *nfrags)
{
  size_t total = 0;
  uint32_t id = 0;
  *nfrags = 0;
  for (int i = first; i < h->ntx; i++) {
    const uint8_t *ip = h->tx[i].bytes + 14;
    if (h_be16(h->tx[i].bytes + 12) != 0x86dd || memcmp(ip + 24, dst, 16) != 0)
      continue;
    CHECK_EQ(ip[6], 44);
    if (ip[6] != 44)
      return 0;
    size_t plen = h_be16(ip + 4);
    CHECK(40 + plen <= mtu);
    CHECK_EQ(h->tx[i].len, 14 + 40 + plen);
    const uint8_t *fh = ip + 40;
    CHECK_EQ(fh[0], 58);
    uint16_t fo = h_be16(fh + 2);
    uint32_t off = fo & 0xfff8u;
    bool more = fo & 1;
    if (*nfrags == 0)
      id = h_be32(fh + 4);
    CHECK_EQ(h_be32(fh + 4), id);
    size_t n = plen - 8;
    if (more)
      CHECK_EQ(n % 8, 0);
    memcpy(out + off, fh + 8, n);
    if (off + n > total)
      total = off + n;
    (*nfrags)++;
    if (!more)
      break;
  }
  return total;
}

TEST(fragmented_echo_reassembled_and_reply_fragmented)
{
  struct harness h;
  setup(&h);
  learn(&h, PEER6);
  uint64_t base = ctr(&h)->pbuf.inuse;
  static uint8_t msg[3100], out[4000];
  size_t n = echo_msg(msg, PEER6, 1, 3000); /* 3008 bytes: 1448 + 1448 + 112 */
  send_frag(&h, PEER6, 0x1234, msg, 0, 1448, true);
  send_frag(&h, PEER6, 0x1234, msg, 1448, 1448, true);
  CHECK_EQ(h.ntx, 0);
  CHECK_EQ(ctr(&h)->ip6.reass_inuse, 1);
  send_frag(&h, PEER6, 0x1234, msg, 2896, (uint32_t)n - 2896, false);
  CHECK_EQ(ctr(&h)->ip6.reass_ok, 1);
  CHECK_EQ(ctr(&h)->ip6.reass_inuse, 0);
  CHECK_EQ(ctr(&h)->icmp6.tx_echo_replies, 1);
  /* The 3048-byte reply does not fit the 1500-byte link: three fragments. */
  int nf;
  size_t got = reassemble_tx(&h, 0, 1500, PEER6, out, &nf);
  CHECK_EQ(nf, 3);
  CHECK_EQ(got, n);
  CHECK_EQ(out[0], 129);
  CHECK_MEM(out + 4, msg + 4, n - 4);
  CHECK_EQ(h_csum(out, got, pseudo6(OUR6, PEER6, (uint32_t)got, 58)), 0);
  CHECK_EQ(ctr(&h)->ip6.tx_frag_datagrams, 1);
  CHECK_EQ(ctr(&h)->ip6.tx_fragments, 3);
  int first_reply = h.ntx;
  /* Reversed order and a duplicate: still one reply, the duplicate counted; a new id. */
  send_frag(&h, PEER6, 0x1235, msg, 2896, (uint32_t)n - 2896, false);
  send_frag(&h, PEER6, 0x1235, msg, 1448, 1448, true);
  send_frag(&h, PEER6, 0x1235, msg, 1448, 1448, true);
  CHECK_EQ(ctr(&h)->ip6.reass_drop_duplicate, 1);
  send_frag(&h, PEER6, 0x1235, msg, 0, 1448, true);
  CHECK_EQ(ctr(&h)->icmp6.tx_echo_replies, 2);
  got = reassemble_tx(&h, first_reply, 1500, PEER6, out, &nf);
  CHECK_EQ(got, n);
  /* Two replies, two identifications (RFC 7739: not a guessable sequence; here just distinct). */
  CHECK(h_be32(h.tx[0].bytes + 14 + 44) != h_be32(h.tx[first_reply].bytes + 14 + 44));
  CHECK_EQ(ctr(&h)->pbuf.inuse, base);
  h_fini(&h);
}

TEST(overlap_drops_the_whole_datagram_and_its_later_fragments)
{
  struct harness h;
  setup(&h);
  learn(&h, PEER6);
  uint64_t base = ctr(&h)->pbuf.inuse;
  static uint8_t msg[3100];
  size_t n = echo_msg(msg, PEER6, 2, 3000);
  send_frag(&h, PEER6, 9, msg, 0, 1448, true);
  send_frag(&h, PEER6, 9, msg, 1440, 1448, true); /* overlaps the first by 8 bytes */
  CHECK_EQ(ctr(&h)->ip6.reass_drop_overlap, 1);
  send_frag(&h, PEER6, 9, msg, 2888, (uint32_t)n - 2888, false);
  send_frag(&h, PEER6, 9, msg, 1448, 1440, true);
  CHECK_EQ(ctr(&h)->ip6.reass_drop_poisoned, 2);
  CHECK_EQ(ctr(&h)->icmp6.tx_echo_replies, 0);
  CHECK_EQ(h.ntx, 0);
  /* The poisoned slot goes at the timeout, silently (no Time Exceeded for a datagram we
   * dropped ourselves), and then the id may be used afresh. */
  h_advance(&h, TOE_SEC(61));
  CHECK_EQ(ctr(&h)->ip6.reass_inuse, 0);
  CHECK_EQ(ctr(&h)->ip6.reass_timeout, 0);
  CHECK_EQ(count_icmp6(&h, 3), 0);
  /* Fragments disagreeing on the end: dropped too. */
  send_frag(&h, PEER6, 10, msg, 1448, 1448, false);
  send_frag(&h, PEER6, 10, msg, 2896, (uint32_t)n - 2896, false);
  CHECK_EQ(ctr(&h)->ip6.reass_drop_bad_frag, 1);
  CHECK_EQ(ctr(&h)->icmp6.tx_echo_replies, 0);
  h_advance(&h, TOE_SEC(61));
  h_advance(&h, TOE_SEC(30)); /* neighbour resolutions for the errors end too */
  CHECK_EQ(ctr(&h)->pbuf.inuse, base);
  h_fini(&h);
}

TEST(timeout_after_60s_time_exceeded_only_with_the_first_fragment)
{
  struct harness h;
  setup(&h);
  learn(&h, PEER6);
  uint64_t base = ctr(&h)->pbuf.inuse;
  static uint8_t msg[3100];
  echo_msg(msg, PEER6, 3, 3000);
  send_frag(&h, PEER6, 20, msg, 0, 1448, true);    /* first fragment: error on timeout */
  send_frag(&h, PEER6, 21, msg, 1448, 1448, true); /* no first fragment: silence */
  h_advance(&h, TOE_SEC(59));
  CHECK_EQ(count_icmp6(&h, 3), 0);
  CHECK_EQ(ctr(&h)->ip6.reass_inuse, 2);
  h_advance(&h, TOE_SEC(2));
  CHECK_EQ(ctr(&h)->ip6.reass_timeout, 2);
  CHECK_EQ(ctr(&h)->ip6.reass_inuse, 0);
  advertise(&h, PEER6); /* in case the neighbour entry aged out meanwhile */
  REQUIRE(count_icmp6(&h, 3) == 1);
  const uint8_t *ip = h.tx[find_icmp6(&h, 3)].bytes + 14;
  CHECK_EQ(ip[6], 58);
  CHECK_MEM(ip + 24, PEER6, 16);
  const uint8_t *e = ip + 40;
  CHECK_EQ(e[0], 3); /* Time Exceeded */
  CHECK_EQ(e[1], 1); /* fragment reassembly time exceeded (RFC 4443 3.3) */
  /* It quotes the first fragment: its IPv6 header and fragment header with id 20. */
  CHECK_EQ(e[8 + 6], 44);
  CHECK_EQ(h_be32(e + 8 + 40 + 4), 20);
  size_t plen = h_be16(ip + 4);
  CHECK_EQ(h_csum(e, plen, pseudo6(ip + 8, ip + 24, (uint32_t)plen, 58)), 0);
  h_advance(&h, TOE_SEC(30));
  CHECK_EQ(ctr(&h)->pbuf.inuse, base);
  h_fini(&h);
}

TEST(per_source_share_and_shared_buffer_budget)
{
  struct harness h;
  setup(&h);
  learn(&h, PEER6);
  uint64_t base = ctr(&h)->pbuf.inuse;
  static uint8_t msg[3100];
  echo_msg(msg, PEER6, 4, 3000);
  for (uint32_t id = 0; id < TOE_IP6_REASS_PER_SRC + 1; id++)
    send_frag(&h, PEER6, 100 + id, msg, 0, 1448, true);
  CHECK_EQ(ctr(&h)->ip6.reass_inuse, TOE_IP6_REASS_PER_SRC);
  CHECK_EQ(ctr(&h)->ip6.reass_drop_nomem, 1);
  /* Another source still has its share. */
  send_frag(&h, PEER6B, 100, msg, 0, 1448, true);
  CHECK_EQ(ctr(&h)->ip6.reass_inuse, TOE_IP6_REASS_PER_SRC + 1);
  /* The buffers count against the budget IPv4 reassembly uses. */
  CHECK(h.st->ip.reass_bufs >= TOE_IP6_REASS_PER_SRC + 1);
  h_advance(&h, TOE_SEC(61));
  CHECK_EQ(h.st->ip.reass_bufs, 0);
  CHECK_EQ(ctr(&h)->ip6.reass_inuse, 0);
  h_advance(&h, TOE_SEC(30)); /* neighbour resolutions for the errors end too */
  CHECK_EQ(ctr(&h)->pbuf.inuse, base);
  h_fini(&h);
}

TEST(buffer_budget_full_refuses_new_fragments)
{
  struct harness h;
  struct toe_config cfg;
  h_default_cfg(&cfg);
  cfg.ipv6 = 1;
  cfg.addr6_count = 1;
  memcpy(cfg.addr6[0], OUR6, 16);
  cfg.addr6_prefix_len[0] = 64;
  cfg.dad_transmits = 0;
  cfg.reass_max_bufs = 2;
  h_init_cfg(&h, &cfg);
  learn(&h, PEER6);
  uint64_t base = ctr(&h)->pbuf.inuse;
  static uint8_t msg[3100];
  size_t n = echo_msg(msg, PEER6, 5, 3000);
  send_frag(&h, PEER6, 1, msg, 0, 1448, true);
  send_frag(&h, PEER6, 1, msg, 1448, 1448, true);
  send_frag(&h, PEER6, 1, msg, 2896, (uint32_t)n - 2896, false);
  CHECK(ctr(&h)->ip6.reass_drop_nomem >= 1);
  CHECK_EQ(ctr(&h)->icmp6.tx_echo_replies, 0);
  h_advance(&h, TOE_SEC(61));
  CHECK_EQ(h.st->ip.reass_bufs, 0);
  h_advance(&h, TOE_SEC(30)); /* the neighbour resolution for the error ends too */
  CHECK_EQ(ctr(&h)->pbuf.inuse, base);
  h_fini(&h);
}

TEST(packet_too_big_lowers_the_path_mtu_for_replies_floor_1280)
{
  struct harness h;
  setup(&h);
  learn(&h, PEER6);
  uint64_t base = ctr(&h)->pbuf.inuse;
  struct toe_in6_addr peer;
  memcpy(peer.b, PEER6, 16);
  /* Below the IPv6 minimum: ignored (RFC 8201 4). */
  toe_pmtu6_lower(h.st, &peer, 1000);
  CHECK_EQ(toe_pmtu6_get(h.st, &peer), 1500);
  toe_pmtu6_lower(h.st, &peer, 1280);
  CHECK_EQ(toe_pmtu6_get(h.st, &peer), 1280);
  /* An IPv4 lookup of the same bits does not see the IPv6 entry. */
  CHECK_EQ(toe_pmtu_get(h.st, 0x20010db8u), 1500);
  uint8_t msg[1500], f[1600], out[1600];
  size_t n = echo_msg(msg, PEER6, 6, 1400);
  h_input(&h, f, build6(f, H_OUR_MAC, PEER6, OUR6, 58, msg, n));
  CHECK_EQ(ctr(&h)->icmp6.tx_echo_replies, 1);
  int nf;
  CHECK_EQ(reassemble_tx(&h, 0, 1280, PEER6, out, &nf), n);
  CHECK_EQ(nf, 2);
  /* RFC 8201 4 / RFC 1191 6.3: the estimate ages out after 10 minutes. */
  h_advance(&h, TOE_SEC(601));
  CHECK_EQ(toe_pmtu6_get(h.st, &peer), 1500);
  CHECK_EQ(ctr(&h)->pbuf.inuse, base);
  h_fini(&h);
}

TEST(neighbor_solicitation_in_fragments_is_refused)
{
  struct harness h;
  setup(&h);
  /* A valid NS for our address with hop limit 255, but in two fragments: RFC 6980 5 says drop. */
  uint8_t m[32] = {135, 0};
  memcpy(m + 8, OUR6, 16);
  m[24] = 1;
  m[25] = 1;
  memcpy(m + 26, H_PEER_MAC, 6);
  uint16_t cs = h_csum(m, 32, pseudo6(PEER6, OUR6, 32, 58));
  m[2] = (uint8_t)(cs >> 8);
  m[3] = (uint8_t)cs;
  g_hop = 255;
  send_frag(&h, PEER6, 77, m, 0, 8, true);
  send_frag(&h, PEER6, 77, m, 8, 24, false);
  g_hop = 64;
  CHECK_EQ(ctr(&h)->ip6.reass_ok, 1);
  CHECK_EQ(ctr(&h)->nd.rx_drop_invalid, 1);
  CHECK_EQ(ctr(&h)->nd.tx_na, 0);
  CHECK_EQ(h.ntx, 0);
  h_fini(&h);
}

TEST_MAIN()
