/*
 * The link layer: input filtering (each drop reason counted once), VLAN handling, chains up to GSO
 * super-frame size, pool exhaustion on input, output framing (tags, short headroom, shared heads),
 * and timers running before a frame is processed.
 */
#include "engine/stack.h"
#include "harness.h"
#include "testlib.h"

#include <stdlib.h>

static const uint8_t FOREIGN_MAC[6] = {0x02, 0, 0, 0, 0, 0x99};
static const uint8_t MCAST_MAC[6] = {0x01, 0x00, 0x5e, 0x00, 0x00, 0x01};
static const uint8_t V6_MCAST_MAC[6] = {0x33, 0x33, 0x00, 0x00, 0x00, 0x01};

static void put16(uint8_t *p, uint16_t v)
{
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}

/* An Ethernet frame: dst, peer as source, optional tags (tci < 0: none), then type and payload. */
static size_t frame(uint8_t *out, const uint8_t *dst, int tag_type, int tci, int tag2_type,
                    int tci2, uint16_t type, size_t payload_len)
{
  size_t n = 0;
  memcpy(out, dst, 6);
  memcpy(out + 6, H_PEER_MAC, 6);
  n = 12;
  if (tag_type >= 0) {
    put16(out + n, (uint16_t)tag_type);
    put16(out + n + 2, (uint16_t)tci);
    n += 4;
  }
  if (tag2_type >= 0) {
    put16(out + n, (uint16_t)tag2_type);
    put16(out + n + 2, (uint16_t)tci2);
    n += 4;
  }
  put16(out + n, type);
  n += 2;
  for (size_t i = 0; i < payload_len; i++)
    out[n + i] = (uint8_t)(i * 7);
  return n + payload_len;
}

/* An ARP request from the peer for our address, optionally tagged. */
static size_t arp_req(uint8_t *out, const uint8_t *dst, int tci)
{
  uint8_t tmp[64];
  static const uint8_t zero[6];
  size_t n = h_build_arp(tmp, 1, H_PEER_MAC, H_PEER_IP, zero, H_OUR_IP, dst);
  if (tci < 0) {
    memcpy(out, tmp, n);
    return n;
  }
  memcpy(out, tmp, 12);
  put16(out + 12, 0x8100);
  put16(out + 14, (uint16_t)tci);
  memcpy(out + 16, tmp + 12, n - 12);
  return n + 4;
}

#define DROPS(c)                                                                                   \
  ((c).rx_drop_malformed + (c).rx_drop_not_for_us + (c).rx_drop_vlan + (c).rx_drop_ethertype +     \
   (c).rx_drop_nobuf)

/* Feeds one frame and checks that exactly the counter at `which` (an offset into the link
 * counters, or -1 for "accepted: no drop") moved. */
static void expect(struct harness *h, const void *f, size_t len, long which, int line)
{
  struct toe_counters_link before = toe_stack_counters(h->st)->link;
  h_input(h, f, len);
  struct toe_counters_link after = toe_stack_counters(h->st)->link;
  if (after.rx_frames != before.rx_frames + 1 || after.rx_bytes != before.rx_bytes + len)
    testlib_fail(__FILE__, line, "rx_frames/rx_bytes not counted");
  uint64_t drops = DROPS(after) - DROPS(before);
  if (which < 0) {
    if (drops != 0)
      testlib_fail(__FILE__, line, "accepted frame counted as a drop");
    return;
  }
  uint64_t b = *(const uint64_t *)((const uint8_t *)&before + which);
  uint64_t a = *(const uint64_t *)((const uint8_t *)&after + which);
  if (a != b + 1 || drops != 1)
    testlib_fail(__FILE__, line, "drop counter at offset %ld moved by %llu, all drops by %llu",
                 which, (unsigned long long)(a - b), (unsigned long long)drops);
}

#define EXPECT_DROP(h, f, len, field)                                                              \
  expect((h), (f), (len), (long)offsetof(struct toe_counters_link, field), __LINE__)
#define EXPECT_ACCEPT(h, f, len) expect((h), (f), (len), -1, __LINE__)

static void check_no_leak(struct harness *h, int line)
{
  h_clear(h);
  if (toe_stack_counters(h->st)->pbuf.inuse != 0)
    testlib_fail(__FILE__, line, "pbufs still in use: %llu",
                 (unsigned long long)toe_stack_counters(h->st)->pbuf.inuse);
}
#define CHECK_NO_LEAK(h) check_no_leak((h), __LINE__)

TEST(drop_short_frames)
{
  struct harness h;
  h_init(&h);
  uint8_t f[64];
  memset(f, 0, sizeof(f));
  EXPECT_DROP(&h, f, 0, rx_drop_malformed);
  EXPECT_DROP(&h, f, 1, rx_drop_malformed);
  frame(f, H_OUR_MAC, -1, 0, -1, 0, 0x0800, 0);
  EXPECT_DROP(&h, f, 13, rx_drop_malformed);
  /* a tag announced but cut short */
  frame(f, H_OUR_MAC, 0x8100, 0, -1, 0, 0x0806, 0);
  EXPECT_DROP(&h, f, 16, rx_drop_malformed);
  EXPECT_DROP(&h, f, 17, rx_drop_malformed);
  CHECK_EQ(toe_stack_input_copy(h.st, NULL, 100, h.now), 0);
  CHECK_EQ(toe_stack_counters(h.st)->link.rx_drop_malformed, 6);
  toe_stack_input(h.st, NULL, h.now);
  CHECK_EQ(toe_stack_counters(h.st)->link.rx_drop_malformed, 7);
  /* a header-only frame is not malformed at this layer */
  frame(f, H_OUR_MAC, -1, 0, -1, 0, 0x0800, 0);
  EXPECT_ACCEPT(&h, f, 14);
  CHECK_NO_LEAK(&h);
  h_fini(&h);
}

TEST(drop_foreign_and_multicast_destinations)
{
  struct harness h;
  h_init(&h);
  uint8_t f[128];
  size_t n = frame(f, FOREIGN_MAC, -1, 0, -1, 0, 0x0800, 46);
  EXPECT_DROP(&h, f, n, rx_drop_not_for_us);
  n = frame(f, MCAST_MAC, -1, 0, -1, 0, 0x0800, 46);
  EXPECT_DROP(&h, f, n, rx_drop_not_for_us);
  n = frame(f, V6_MCAST_MAC, -1, 0, -1, 0, 0x86dd, 46);
  EXPECT_DROP(&h, f, n, rx_drop_not_for_us);
  CHECK_EQ(toe_stack_counters(h.st)->link.rx_broadcast, 0);
  /* broadcast is ours */
  n = arp_req(f, H_BCAST_MAC, -1);
  EXPECT_ACCEPT(&h, f, n);
  CHECK_EQ(toe_stack_counters(h.st)->link.rx_broadcast, 1);
  /* and so is unicast to our MAC */
  n = arp_req(f, H_OUR_MAC, -1);
  EXPECT_ACCEPT(&h, f, n);
  CHECK_EQ(toe_stack_counters(h.st)->link.rx_broadcast, 1);
  CHECK_NO_LEAK(&h);
  h_fini(&h);
}

TEST(drop_unknown_ethertypes)
{
  struct harness h;
  h_init(&h);
  uint8_t f[128];
  size_t n = frame(f, H_OUR_MAC, -1, 0, -1, 0, 0x86dd, 60); /* IPv6 */
  EXPECT_DROP(&h, f, n, rx_drop_ethertype);
  n = frame(f, H_OUR_MAC, -1, 0, -1, 0, 0x88cc, 60); /* LLDP */
  EXPECT_DROP(&h, f, n, rx_drop_ethertype);
  n = frame(f, H_OUR_MAC, -1, 0, -1, 0, 0x0040, 60); /* 802.3 length field */
  EXPECT_DROP(&h, f, n, rx_drop_ethertype);
  n = frame(f, H_BCAST_MAC, -1, 0, -1, 0, 0x8035, 60); /* RARP, broadcast */
  EXPECT_DROP(&h, f, n, rx_drop_ethertype);
  CHECK_NO_LEAK(&h);
  h_fini(&h);
}

TEST(vlan_untagged_stack)
{
  struct harness h;
  h_init(&h); /* vlan_id 0 */
  uint8_t f[128];
  uint64_t tagged0 = toe_stack_counters(h.st)->link.rx_vlan;
  size_t n = frame(f, H_OUR_MAC, 0x8100, 5, -1, 0, 0x0800, 46);
  EXPECT_DROP(&h, f, n, rx_drop_vlan);
  CHECK_EQ(toe_stack_counters(h.st)->link.rx_vlan, tagged0 + 1);
  /* priority-tagged (VID 0, PCP 5): belongs to the untagged VLAN (IEEE 802.1Q) */
  n = arp_req(f, H_BCAST_MAC, 0xa000);
  EXPECT_ACCEPT(&h, f, n);
  /* stacked tags: not terminated */
  n = frame(f, H_OUR_MAC, 0x88a8, 5, 0x8100, 0, 0x0800, 46);
  EXPECT_DROP(&h, f, n, rx_drop_vlan);
  n = frame(f, H_OUR_MAC, 0x8100, 0, 0x8100, 0, 0x0800, 46);
  EXPECT_DROP(&h, f, n, rx_drop_vlan);
  CHECK_NO_LEAK(&h);
  h_fini(&h);
}

TEST(vlan_tagged_stack)
{
  struct harness h;
  struct toe_config cfg;
  h_default_cfg(&cfg);
  cfg.vlan_id = 5;
  h_init_cfg(&h, &cfg);
  uint8_t f[128];
  size_t n = arp_req(f, H_BCAST_MAC, -1);
  EXPECT_DROP(&h, f, n, rx_drop_vlan); /* untagged on a tagged stack */
  n = arp_req(f, H_BCAST_MAC, 6);
  EXPECT_DROP(&h, f, n, rx_drop_vlan); /* another VLAN */
  n = arp_req(f, H_BCAST_MAC, 0);
  EXPECT_DROP(&h, f, n, rx_drop_vlan); /* priority tag = untagged */
  n = arp_req(f, H_BCAST_MAC, 5);
  EXPECT_ACCEPT(&h, f, n);
  n = arp_req(f, H_BCAST_MAC, 0xe005); /* PCP 7, DEI 0, VID 5 */
  EXPECT_ACCEPT(&h, f, n);
  n = frame(f, H_OUR_MAC, 0x8100, 5, -1, 0, 0x86dd, 46);
  EXPECT_DROP(&h, f, n, rx_drop_ethertype); /* right VLAN, wrong protocol */
  CHECK_NO_LEAK(&h);
  h_fini(&h);
}

TEST(big_frames_become_chains_and_are_freed)
{
  struct harness h;
  h_init(&h);
  static uint8_t f[65553 + 16];
  static const size_t sizes[] = {1514, 1518, 9000, 9018, 60000, 65553};
  for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
    size_t len = sizes[i];
    uint64_t allocs = toe_stack_counters(h.st)->pbuf.allocs;
    /* unknown ethertype: dropped by the link layer itself */
    frame(f, H_OUR_MAC, -1, 0, -1, 0, 0x86dd, len - 14);
    EXPECT_DROP(&h, f, len, rx_drop_ethertype);
    size_t bufs = (len + 2 + h.cfg.pbuf_size - 1) / h.cfg.pbuf_size;
    CHECK_EQ(toe_stack_counters(h.st)->pbuf.allocs - allocs, bufs);
    CHECK_NO_LEAK(&h);
    /* IPv4 (to an address that is not ours): the Ethernet header is pulled off a chain and the
     * chain handed up, where it is dropped and freed */
    frame(f, H_OUR_MAC, -1, 0, -1, 0, 0x0800, len - 14);
    uint8_t *ip = f + 14;
    memset(ip, 0, 20);
    ip[0] = 0x45;
    put16(ip + 2, (uint16_t)(len - 14 > 65535 ? 65535 : len - 14));
    ip[8] = 64;
    ip[9] = 17;
    memcpy(ip + 12, (const uint8_t[]){198, 18, 0, 2}, 4);
    memcpy(ip + 16, (const uint8_t[]){198, 18, 0, 77}, 4);
    put16(ip + 10, h_csum(ip, 20, 0));
    allocs = toe_stack_counters(h.st)->pbuf.allocs;
    EXPECT_ACCEPT(&h, f, len);
    CHECK(toe_stack_counters(h.st)->pbuf.allocs - allocs >= bufs);
    CHECK_NO_LEAK(&h);
  }
  h_fini(&h);
}

TEST(input_copy_pool_empty)
{
  struct harness h;
  h_init(&h);
  uint32_t n = h.cfg.pbuf_count;
  struct toe_pbuf **held = calloc(n, sizeof(*held));
  for (uint32_t i = 0; i < n; i++)
    held[i] = toe_pbuf_alloc(h.st, 0);
  uint8_t f[128];
  size_t len = arp_req(f, H_BCAST_MAC, -1);
  EXPECT_DROP(&h, f, len, rx_drop_nobuf);
  CHECK_EQ(toe_stack_input_copy(h.st, f, len, h.now), -TOE_ENOBUFS);
  CHECK_EQ(toe_stack_counters(h.st)->link.rx_drop_nobuf, 2);
  /* room for a small frame but not a big one */
  toe_pbuf_free(h.st, held[0]);
  held[0] = NULL;
  static uint8_t big[9000];
  frame(big, H_OUR_MAC, -1, 0, -1, 0, 0x86dd, sizeof(big) - 14);
  CHECK_EQ(toe_stack_input_copy(h.st, big, sizeof(big), h.now), -TOE_ENOBUFS);
  CHECK_EQ(toe_stack_counters(h.st)->link.rx_drop_nobuf, 3);
  CHECK_EQ(toe_pbuf_pool_free_count(h.st), 1); /* the partial chain came back */
  for (uint32_t i = 1; i < n; i++)
    toe_pbuf_free(h.st, held[i]);
  free(held);
  CHECK_NO_LEAK(&h);
  h_fini(&h);
}

TEST(input_chain_with_split_header)
{
  /* A driver may hand over a chain whose Ethernet header is itself split across buffers. */
  struct harness h;
  h_init(&h);
  uint8_t f[128];
  static const uint16_t split[][3] = {{5, 3, 200}, {1, 1, 200}, {13, 4, 200}, {17, 1, 200}};
  for (size_t s = 0; s < 4; s++) {
    for (int tagged = 0; tagged < 2; tagged++) {
      size_t n = tagged ? frame(f, FOREIGN_MAC, 0x8100, 5, -1, 0, 0x0800, 60)
                        : frame(f, FOREIGN_MAC, -1, 0, -1, 0, 0x0800, 60);
      /* build the chain by hand: pieces of split[s][0], split[s][1], then the rest */
      struct toe_pbuf *head = NULL;
      size_t off = 0;
      for (int k = 0; k < 3 && off < n; k++) {
        size_t piece = split[s][k] < n - off ? split[s][k] : n - off;
        struct toe_pbuf *p = toe_pbuf_alloc(h.st, 0);
        REQUIRE(p != NULL);
        memcpy(toe_pbuf_put(p, (uint16_t)piece), f + off, piece);
        off += piece;
        if (head)
          toe_pbuf_cat(head, p);
        else
          head = p;
      }
      struct toe_counters_link before = toe_stack_counters(h.st)->link;
      toe_stack_input(h.st, head, h.now);
      struct toe_counters_link after = toe_stack_counters(h.st)->link;
      /* the header was parsed correctly: the destination MAC was seen as foreign */
      CHECK_EQ(after.rx_drop_not_for_us, before.rx_drop_not_for_us + 1);
      CHECK_EQ(after.rx_vlan, before.rx_vlan + (uint64_t)tagged);
      CHECK_EQ(after.rx_bytes, before.rx_bytes + n);
      CHECK_NO_LEAK(&h);
    }
  }
  h_fini(&h);
}

static struct toe_pbuf *payload(struct harness *h, uint16_t headroom, size_t len)
{
  struct toe_pbuf *p = toe_pbuf_alloc(h->st, headroom);
  if (!p)
    return NULL;
  uint8_t *d = toe_pbuf_put(p, (uint16_t)len);
  for (size_t i = 0; i < len; i++)
    d[i] = (uint8_t)(0x40 + i);
  return p;
}

static bool payload_ok(const uint8_t *d, size_t len)
{
  for (size_t i = 0; i < len; i++)
    if (d[i] != (uint8_t)(0x40 + i))
      return false;
  return true;
}

TEST(output_untagged)
{
  struct harness h;
  h_init(&h);
  struct toe_pbuf *p = payload(&h, TOE_PBUF_HEADROOM, 50);
  REQUIRE(p != NULL);
  toe_link_output(h.st, p, H_PEER_MAC, 0x0800);
  REQUIRE(h.ntx == 1);
  const uint8_t *f = h.tx[0].bytes;
  CHECK_EQ(h.tx[0].len, 64);
  CHECK_MEM(f, H_PEER_MAC, 6);
  CHECK_MEM(f + 6, H_OUR_MAC, 6);
  CHECK_EQ(h_be16(f + 12), 0x0800);
  CHECK(payload_ok(f + 14, 50));
  CHECK_EQ(toe_stack_counters(h.st)->link.tx_frames, 1);
  CHECK_EQ(toe_stack_counters(h.st)->link.tx_bytes, 64);
  CHECK_NO_LEAK(&h);
  h_fini(&h);
}

TEST(output_tagged)
{
  struct harness h;
  struct toe_config cfg;
  h_default_cfg(&cfg);
  cfg.vlan_id = 300;
  h_init_cfg(&h, &cfg);
  struct toe_pbuf *p = payload(&h, TOE_PBUF_HEADROOM, 28);
  REQUIRE(p != NULL);
  toe_link_output(h.st, p, H_BCAST_MAC, 0x0806);
  REQUIRE(h.ntx == 1);
  const uint8_t *f = h.tx[0].bytes;
  CHECK_EQ(h.tx[0].len, 18 + 28);
  CHECK_MEM(f, H_BCAST_MAC, 6);
  CHECK_EQ(h_be16(f + 12), 0x8100);
  CHECK_EQ(h_be16(f + 14) & 0x0fff, 300);
  CHECK_EQ(h_be16(f + 16), 0x0806);
  CHECK(payload_ok(f + 18, 28));
  CHECK_EQ(toe_stack_counters(h.st)->link.tx_bytes, 46);
  CHECK_NO_LEAK(&h);
  h_fini(&h);
}

TEST(output_short_headroom_and_shared_head)
{
  struct harness h;
  h_init(&h);
  /* no headroom at all: a header buffer is chained in front */
  struct toe_pbuf *p = payload(&h, 0, 100);
  REQUIRE(p != NULL);
  toe_link_output(h.st, p, H_PEER_MAC, 0x0800);
  REQUIRE(h.ntx == 1);
  CHECK_EQ(h.tx[0].len, 114);
  CHECK_EQ(h_be16(h.tx[0].bytes + 12), 0x0800);
  CHECK(payload_ok(h.tx[0].bytes + 14, 100));
  CHECK_NO_LEAK(&h);

  /* 13 bytes of headroom: one short */
  p = payload(&h, 13, 10);
  REQUIRE(p != NULL);
  toe_link_output(h.st, p, H_PEER_MAC, 0x0806);
  REQUIRE(h.ntx == 1);
  CHECK_EQ(h.tx[0].len, 24);
  CHECK(payload_ok(h.tx[0].bytes + 14, 10));
  CHECK_NO_LEAK(&h);

  /* a head someone else also holds (e.g. a retransmission queue) is not modified */
  p = payload(&h, TOE_PBUF_HEADROOM, 40);
  REQUIRE(p != NULL);
  toe_pbuf_ref(p);
  uint8_t *data = p->data;
  toe_link_output(h.st, p, H_PEER_MAC, 0x0800);
  REQUIRE(h.ntx == 1);
  CHECK(p->data == data);
  CHECK_EQ(p->len, 40);
  CHECK_EQ(p->tot_len, 40);
  CHECK_EQ(p->refcnt, 1);
  CHECK_EQ(h.tx[0].len, 54);
  CHECK(payload_ok(h.tx[0].bytes + 14, 40));
  toe_pbuf_free(h.st, p);
  CHECK_NO_LEAK(&h);

  /* the header buffer cannot be had: counted, the packet freed, nothing sent */
  uint32_t n = h.cfg.pbuf_count;
  struct toe_pbuf **held = calloc(n, sizeof(*held));
  p = payload(&h, 0, 20);
  REQUIRE(p != NULL);
  for (uint32_t i = 0; i < n - 1; i++)
    held[i] = toe_pbuf_alloc(h.st, 0);
  toe_link_output(h.st, p, H_PEER_MAC, 0x0800);
  CHECK_EQ(h.ntx, 0);
  CHECK_EQ(toe_stack_counters(h.st)->link.tx_drop_nobuf, 1);
  CHECK_EQ(toe_pbuf_pool_free_count(h.st), 1);
  for (uint32_t i = 0; i < n - 1; i++)
    toe_pbuf_free(h.st, held[i]);
  free(held);
  CHECK_NO_LEAK(&h);
  h_fini(&h);
}

/* Timers run before the frame is looked at. */
static uint64_t g_rx_seen = 99;
static toe_time_t g_now_seen;
static void rx_probe(struct toe_stack *st, struct toe_timer *t)
{
  (void)t;
  g_rx_seen = toe_stack_counters(st)->link.rx_frames;
  g_now_seen = toe_stack_now(st);
}

TEST(timers_run_before_input)
{
  struct harness h;
  h_init(&h);
  struct toe_timer t;
  toe_timer_init(&t, rx_probe);
  toe_timer_arm(h.st, &t, h.now + TOE_MSEC(5));
  uint8_t f[128];
  size_t n = arp_req(f, H_BCAST_MAC, -1);
  h.now += TOE_MSEC(4);
  h_input(&h, f, n);
  CHECK_EQ(g_rx_seen, 99); /* not yet due */
  h.now += TOE_MSEC(1);
  h_input(&h, f, n);
  CHECK_EQ(g_rx_seen, 1); /* ran before the second frame was counted */
  CHECK_EQ(g_now_seen, h.now);
  /* a frame stamped earlier than the engine's now does not move time back */
  toe_time_t now = toe_stack_now(h.st);
  CHECK_EQ(toe_stack_input_copy(h.st, f, n, now - TOE_SEC(1)), 0);
  CHECK_EQ(toe_stack_now(h.st), now);
  CHECK_NO_LEAK(&h);
  h_fini(&h);
}

TEST_MAIN()
