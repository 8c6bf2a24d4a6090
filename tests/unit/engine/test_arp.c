/*
 * ARP (RFC 826) and the neighbour cache: answering, learning, resolution with queueing, retries,
 * failure, ageing, eviction, conflicts (RFC 5227) and hostile input. Frames are hand-built with the
 * harness; time is the harness's virtual clock.
 */
#include "engine/stack.h"
#include "harness.h"
#include "testlib.h"
#include "wire/arp.h"

static struct harness h;
static uint32_t pool_start;

#define IP(d) (0xc6120000u | (d)) /* 198.18.0.d */

static const uint8_t ZERO_MAC[6];

static void mac_of(uint8_t *mac, uint8_t d)
{
  static const uint8_t base[6] = {0x02, 0, 0, 0, 0, 0};
  memcpy(mac, base, 6);
  mac[5] = d;
}

/* Test timing: short, distinct values so that each transition is easy to place. */
static void arp_cfg(struct toe_config *cfg)
{
  h_default_cfg(cfg);
  cfg->arp_reachable_time = TOE_SEC(30);
  cfg->arp_stale_time = TOE_SEC(60);
  cfg->arp_retry_interval = TOE_SEC(1);
  cfg->arp_max_retries = 3;
  cfg->arp_queue_len = 8;
  cfg->arp_entries = 16;
}

static void start_cfg(const struct toe_config *cfg)
{
  if (h.st) /* the previous test stopped at a failed REQUIRE */
    h_fini(&h);
  h_init_cfg(&h, cfg);
  pool_start = toe_pbuf_pool_free_count(h.st);
}

static void start(void)
{
  struct toe_config cfg;
  arp_cfg(&cfg);
  start_cfg(&cfg);
}

/* Every test ends here: nothing may still hold a buffer. */
static void finish(void)
{
  h_clear(&h);
  CHECK_EQ(toe_pbuf_pool_free_count(h.st), pool_start);
  h_fini(&h);
}

static const struct toe_counters_arp *ctr(void)
{
  return &toe_stack_counters(h.st)->arp;
}

static void feed_arp(uint16_t op, const uint8_t *sha, uint32_t spa, const uint8_t *tha,
                     uint32_t tpa, const uint8_t *eth_dst)
{
  uint8_t f[64];
  size_t n = h_build_arp(f, op, sha, spa, tha, tpa, eth_dst);
  h_input(&h, f, n);
}

/* A neighbour at 198.18.0.d with MAC 02:00:00:00:00:d answers our request for it. */
static void feed_reply_from(uint8_t d)
{
  uint8_t mac[6];
  mac_of(mac, d);
  feed_arp(TOE_ARP_OP_REPLY, mac, IP(d), H_OUR_MAC, H_OUR_IP, H_OUR_MAC);
}

/* An IP-looking packet whose identification field carries `tag`, so order can be checked. */
static struct toe_pbuf *ip_packet(uint16_t tag, uint32_t dst)
{
  struct toe_pbuf *pb = toe_pbuf_alloc(h.st, TOE_PBUF_HEADROOM);
  if (!pb)
    return NULL;
  uint8_t *p = toe_pbuf_put(pb, 28);
  if (!p) {
    toe_pbuf_free(h.st, pb);
    return NULL;
  }
  memset(p, 0, 28);
  p[0] = 0x45;
  p[3] = 28;
  p[4] = (uint8_t)(tag >> 8);
  p[5] = (uint8_t)tag;
  p[8] = 64;
  p[9] = 17;
  p[12] = 198, p[13] = 18, p[14] = 0, p[15] = 1;
  p[16] = (uint8_t)(dst >> 24), p[17] = (uint8_t)(dst >> 16), p[18] = (uint8_t)(dst >> 8);
  p[19] = (uint8_t)dst;
  return pb;
}

static int send_to(uint32_t nexthop, uint16_t tag)
{
  struct toe_pbuf *pb = ip_packet(tag, nexthop);
  if (!pb)
    return -9999;
  return toe_arp_output(h.st, pb, nexthop);
}

/* Checks captured frame `i` is an ARP packet with these fields (Ethernet and ARP headers). */
static void check_arp_frame(int i, const uint8_t *eth_dst, uint16_t op, uint32_t spa,
                            const uint8_t *tha, uint32_t tpa)
{
  if (i < 0 || i >= h.ntx) {
    testlib_fail(__FILE__, __LINE__, "no frame %d (have %d)", i, h.ntx);
    return;
  }
  const uint8_t *f = h.tx[i].bytes;
  CHECK(h.tx[i].len >= 14 + 28);
  if (h.tx[i].len < 14 + 28)
    return;
  CHECK_MEM(f, eth_dst, 6);
  CHECK_MEM(f + 6, H_OUR_MAC, 6);
  CHECK_EQ(h_be16(f + 12), 0x0806);
  const uint8_t *a = f + 14;
  CHECK_EQ(h_be16(a), 1);
  CHECK_EQ(h_be16(a + 2), 0x0800);
  CHECK_EQ(a[4], 6);
  CHECK_EQ(a[5], 4);
  CHECK_EQ(h_be16(a + 6), op);
  CHECK_MEM(a + 8, H_OUR_MAC, 6);
  CHECK_EQ(h_be32(a + 14), spa);
  CHECK_MEM(a + 18, tha, 6);
  CHECK_EQ(h_be32(a + 24), tpa);
}

/* Checks captured frame `i` is the tagged IPv4 packet, sent to `mac`. */
static void check_ip_frame(int i, const uint8_t *mac, uint16_t tag)
{
  if (i < 0 || i >= h.ntx) {
    testlib_fail(__FILE__, __LINE__, "no frame %d (have %d)", i, h.ntx);
    return;
  }
  const uint8_t *f = h.tx[i].bytes;
  CHECK(h.tx[i].len >= 14 + 28);
  if (h.tx[i].len < 14 + 28)
    return;
  CHECK_MEM(f, mac, 6);
  CHECK_MEM(f + 6, H_OUR_MAC, 6);
  CHECK_EQ(h_be16(f + 12), 0x0800);
  CHECK_EQ(h_be16(f + 14 + 4), tag);
}

static int state_of(uint32_t ip)
{
  const struct toe_neigh *n = toe_arp_lookup(h.st, ip);
  return n ? n->state : TOE_NEIGH_FREE;
}

/* Resolves 198.18.0.d by sending it one packet and feeding its reply. */
static void resolve(uint8_t d)
{
  CHECK_EQ(send_to(IP(d), 0), 0);
  feed_reply_from(d);
  CHECK_EQ(state_of(IP(d)), TOE_NEIGH_REACHABLE);
  h_clear(&h);
}

/* --------------------------------------------------------------------------------------------- */

TEST(answers_request_for_our_address_once)
{
  start();
  feed_arp(TOE_ARP_OP_REQUEST, H_PEER_MAC, H_PEER_IP, ZERO_MAC, H_OUR_IP, H_BCAST_MAC);
  CHECK_EQ(h.ntx, 1);
  /* RFC 826: reply unicast to the requester, our addresses as sender, the requester's as target */
  check_arp_frame(0, H_PEER_MAC, TOE_ARP_OP_REPLY, H_OUR_IP, H_PEER_MAC, H_PEER_IP);
  CHECK_EQ(ctr()->rx_requests, 1);
  CHECK_EQ(ctr()->tx_replies, 1);
  CHECK_EQ(ctr()->tx_requests, 0);
  finish();
}

TEST(answers_padded_and_unicast_requests)
{
  start();
  uint8_t f[64] = {0};
  size_t n =
      h_build_arp(f, TOE_ARP_OP_REQUEST, H_PEER_MAC, H_PEER_IP, ZERO_MAC, H_OUR_IP, H_BCAST_MAC);
  (void)n;
  h_input(&h, f, 60); /* minimum Ethernet frame: 18 bytes of padding after the ARP packet */
  CHECK_EQ(h.ntx, 1);
  check_arp_frame(0, H_PEER_MAC, TOE_ARP_OP_REPLY, H_OUR_IP, H_PEER_MAC, H_PEER_IP);
  h_clear(&h);
  /* RFC 1122 2.3.2.1 unicast poll: answered the same way */
  feed_arp(TOE_ARP_OP_REQUEST, H_PEER_MAC, H_PEER_IP, ZERO_MAC, H_OUR_IP, H_OUR_MAC);
  CHECK_EQ(h.ntx, 1);
  check_arp_frame(0, H_PEER_MAC, TOE_ARP_OP_REPLY, H_OUR_IP, H_PEER_MAC, H_PEER_IP);
  CHECK_EQ(ctr()->tx_replies, 2);
  finish();
}

TEST(no_answer_for_another_address)
{
  start();
  feed_arp(TOE_ARP_OP_REQUEST, H_PEER_MAC, H_PEER_IP, ZERO_MAC, IP(99), H_BCAST_MAC);
  CHECK_EQ(h.ntx, 0);
  CHECK_EQ(ctr()->rx_requests, 1);
  CHECK_EQ(ctr()->rx_drop_not_for_us, 1);
  CHECK_EQ(ctr()->tx_replies, 0);
  /* not learned either: it was not talking to us */
  CHECK(toe_arp_lookup(h.st, H_PEER_IP) == NULL);
  CHECK_EQ(ctr()->entries_inuse, 0);
  finish();
}

TEST(learns_sender_of_request_to_us)
{
  start();
  h_learn_peer(&h);
  const struct toe_neigh *n = toe_arp_lookup(h.st, H_PEER_IP);
  REQUIRE(n != NULL);
  CHECK_EQ(n->state, TOE_NEIGH_REACHABLE);
  CHECK_MEM(n->mac, H_PEER_MAC, 6);
  CHECK_EQ(ctr()->entries_inuse, 1);
  CHECK_EQ(ctr()->entries_created, 1);

  /* sending to it now needs no resolution */
  CHECK_EQ(send_to(H_PEER_IP, 7), 0);
  CHECK_EQ(h.ntx, 1);
  check_ip_frame(0, H_PEER_MAC, 7);
  CHECK_EQ(h_count_tx(&h, 0x0806, 0), 0);
  CHECK_EQ(ctr()->queued, 0);
  finish();
}

TEST(resolution_queues_then_flushes_in_order)
{
  start();
  uint8_t mac3[6];
  mac_of(mac3, 3);

  CHECK_EQ(send_to(IP(3), 1), 0);
  CHECK_EQ(send_to(IP(3), 2), 0);
  CHECK_EQ(send_to(IP(3), 3), 0);
  /* one broadcast request, nothing else, while the packets wait */
  CHECK_EQ(h.ntx, 1);
  check_arp_frame(0, H_BCAST_MAC, TOE_ARP_OP_REQUEST, H_OUR_IP, ZERO_MAC, IP(3));
  CHECK_EQ(ctr()->tx_requests, 1);
  CHECK_EQ(ctr()->queued, 3);
  const struct toe_neigh *n = toe_arp_lookup(h.st, IP(3));
  REQUIRE(n != NULL);
  CHECK_EQ(n->state, TOE_NEIGH_INCOMPLETE);
  CHECK_EQ(n->qlen, 3);
  CHECK_EQ(pool_start - toe_pbuf_pool_free_count(h.st), 3);

  h_clear(&h);
  feed_reply_from(3);
  CHECK_EQ(h.ntx, 3);
  check_ip_frame(0, mac3, 1);
  check_ip_frame(1, mac3, 2);
  check_ip_frame(2, mac3, 3);
  CHECK_EQ(n->state, TOE_NEIGH_REACHABLE);
  CHECK_EQ(n->qlen, 0);
  CHECK_MEM(n->mac, mac3, 6);
  CHECK_EQ(ctr()->rx_replies, 1);

  /* no further requests once resolved */
  h_clear(&h);
  h_advance(&h, TOE_SEC(5));
  CHECK_EQ(h_count_tx(&h, 0x0806, 0), 0);
  CHECK_EQ(ctr()->tx_requests, 1);
  finish();
}

TEST(retries_then_failed_then_freed)
{
  start();
  toe_time_t t0 = h.now;
  CHECK_EQ(send_to(IP(4), 1), 0);
  CHECK_EQ(send_to(IP(4), 2), 0);
  CHECK_EQ(h_count_tx(&h, 0x0806, 0), 1);

  h_advance(&h, TOE_MSEC(999));
  CHECK_EQ(h_count_tx(&h, 0x0806, 0), 1); /* not early */
  h_advance(&h, TOE_MSEC(3));
  CHECK_EQ(h_count_tx(&h, 0x0806, 0), 2); /* at the interval (at most a tick late) */
  h_advance(&h, TOE_MSEC(1003));
  CHECK_EQ(h_count_tx(&h, 0x0806, 0), 3);
  CHECK_EQ(state_of(IP(4)), TOE_NEIGH_INCOMPLETE);
  for (int i = 0; i < 3; i++)
    check_arp_frame(h_find_tx(&h, 0x0806, 0, i), H_BCAST_MAC, TOE_ARP_OP_REQUEST, H_OUR_IP,
                    ZERO_MAC, IP(4));

  /* third interval over: no fourth request, FAILED, queued packets dropped and counted */
  h_advance(&h, TOE_MSEC(1003));
  CHECK_EQ(h_count_tx(&h, 0x0806, 0), 3);
  CHECK_EQ(ctr()->tx_requests, 3);
  CHECK_EQ(state_of(IP(4)), TOE_NEIGH_FAILED);
  CHECK_EQ(ctr()->resolve_failed, 1);
  CHECK_EQ(ctr()->queue_drop_failed, 2);
  CHECK_EQ(toe_pbuf_pool_free_count(h.st), pool_start);
  CHECK_EQ(h_count_tx(&h, 0x0800, 0), 0);

  /* sends fail fast while the failure is remembered, and send nothing */
  h_clear(&h);
  CHECK_EQ(send_to(IP(4), 3), -TOE_EHOSTUNREACH);
  CHECK_EQ(ctr()->drop_unreachable, 1);
  CHECK_EQ(h.ntx, 0);

  /* remembered for retry_interval * max_retries, then forgotten */
  h_advance(&h, t0 + TOE_SEC(6) - TOE_MSEC(100) - h.now);
  CHECK_EQ(state_of(IP(4)), TOE_NEIGH_FAILED);
  h_advance(&h, TOE_MSEC(120));
  CHECK(toe_arp_lookup(h.st, IP(4)) == NULL);
  CHECK_EQ(ctr()->entries_expired, 1);
  CHECK_EQ(ctr()->entries_inuse, 0);
  CHECK_EQ(h.ntx, 0);

  /* a new send starts a fresh resolution */
  CHECK_EQ(send_to(IP(4), 4), 0);
  CHECK_EQ(h_count_tx(&h, 0x0806, 0), 1);
  feed_reply_from(4);
  CHECK_EQ(h_count_tx(&h, 0x0800, 0), 1);
  finish();
}

TEST(queue_overflow_drops_oldest)
{
  struct toe_config cfg;
  arp_cfg(&cfg);
  cfg.arp_queue_len = 4;
  start_cfg(&cfg);
  uint8_t mac5[6];
  mac_of(mac5, 5);

  for (uint16_t tag = 1; tag <= 7; tag++)
    CHECK_EQ(send_to(IP(5), tag), 0);
  const struct toe_neigh *n = toe_arp_lookup(h.st, IP(5));
  REQUIRE(n != NULL);
  CHECK_EQ(n->qlen, 4);
  CHECK_EQ(ctr()->queued, 7);
  CHECK_EQ(ctr()->queue_drop_full, 3);
  CHECK_EQ(pool_start - toe_pbuf_pool_free_count(h.st), 4); /* bounded: only 4 held */
  CHECK_EQ(h_count_tx(&h, 0x0806, 0), 1);

  h_clear(&h);
  feed_reply_from(5);
  CHECK_EQ(h.ntx, 4);
  for (int i = 0; i < 4; i++)
    check_ip_frame(i, mac5, (uint16_t)(4 + i)); /* the newest four, in order */
  finish();
}

TEST(table_full_evicts_least_recently_used)
{
  struct toe_config cfg;
  arp_cfg(&cfg);
  cfg.arp_entries = 4;
  start_cfg(&cfg);

  resolve(10);
  resolve(11);
  resolve(12);
  resolve(13);
  CHECK_EQ(ctr()->entries_inuse, 4);
  /* use .10 again: .11 becomes the least recently used */
  CHECK_EQ(send_to(IP(10), 1), 0);
  h_clear(&h);

  CHECK_EQ(send_to(IP(14), 2), 0);
  CHECK_EQ(ctr()->entries_evicted, 1);
  CHECK(toe_arp_lookup(h.st, IP(11)) == NULL);
  CHECK_EQ(state_of(IP(10)), TOE_NEIGH_REACHABLE);
  CHECK_EQ(state_of(IP(12)), TOE_NEIGH_REACHABLE);
  CHECK_EQ(state_of(IP(13)), TOE_NEIGH_REACHABLE);
  CHECK_EQ(state_of(IP(14)), TOE_NEIGH_INCOMPLETE);
  CHECK_EQ(ctr()->entries_inuse, 4);
  check_arp_frame(0, H_BCAST_MAC, TOE_ARP_OP_REQUEST, H_OUR_IP, ZERO_MAC, IP(14));

  /* next victim is .12 */
  CHECK_EQ(send_to(IP(15), 3), 0);
  CHECK(toe_arp_lookup(h.st, IP(12)) == NULL);
  CHECK_EQ(ctr()->entries_evicted, 2);
  feed_reply_from(14);
  feed_reply_from(15);
  CHECK_EQ(h_count_tx(&h, 0x0800, 0), 2);
  finish();
}

TEST(table_full_of_incomplete_refuses)
{
  struct toe_config cfg;
  arp_cfg(&cfg);
  cfg.arp_entries = 2;
  start_cfg(&cfg);

  CHECK_EQ(send_to(IP(20), 1), 0);
  CHECK_EQ(send_to(IP(21), 2), 0);
  /* both entries hold queued packets: they are never evicted */
  CHECK_EQ(send_to(IP(22), 3), -TOE_ENOBUFS);
  CHECK_EQ(ctr()->drop_no_entry, 1);
  CHECK_EQ(ctr()->entries_evicted, 0);
  CHECK(toe_arp_lookup(h.st, IP(22)) == NULL);
  CHECK_EQ(state_of(IP(20)), TOE_NEIGH_INCOMPLETE);
  CHECK_EQ(state_of(IP(21)), TOE_NEIGH_INCOMPLETE);
  CHECK_EQ(h_count_tx(&h, 0x0806, 0), 2);

  /* once they fail they can be reclaimed */
  h_advance(&h, TOE_MSEC(3100));
  CHECK_EQ(state_of(IP(20)), TOE_NEIGH_FAILED);
  CHECK_EQ(send_to(IP(22), 4), 0);
  CHECK_EQ(ctr()->entries_evicted, 1);
  CHECK_EQ(state_of(IP(22)), TOE_NEIGH_INCOMPLETE);
  feed_reply_from(22);
  finish();
}

TEST(requests_cannot_evict_neighbours_in_use)
{
  struct toe_config cfg;
  arp_cfg(&cfg);
  cfg.arp_entries = 2;
  start_cfg(&cfg);
  uint8_t m[6];

  resolve(30);
  resolve(31);
  /* a request from a new host is answered but does not push out a neighbour we talk to */
  mac_of(m, 32);
  feed_arp(TOE_ARP_OP_REQUEST, m, IP(32), ZERO_MAC, H_OUR_IP, H_BCAST_MAC);
  CHECK_EQ(ctr()->tx_replies, 1);
  CHECK(toe_arp_lookup(h.st, IP(32)) == NULL);
  CHECK_EQ(state_of(IP(30)), TOE_NEIGH_REACHABLE);
  CHECK_EQ(state_of(IP(31)), TOE_NEIGH_REACHABLE);
  CHECK_EQ(ctr()->entries_evicted, 0);

  /* a sender we only learned may be displaced by the next one */
  struct toe_config cfg2;
  arp_cfg(&cfg2);
  cfg2.arp_entries = 2;
  finish();
  start_cfg(&cfg2);
  resolve(30);
  mac_of(m, 33);
  feed_arp(TOE_ARP_OP_REQUEST, m, IP(33), ZERO_MAC, H_OUR_IP, H_BCAST_MAC);
  CHECK_EQ(state_of(IP(33)), TOE_NEIGH_REACHABLE);
  mac_of(m, 34);
  feed_arp(TOE_ARP_OP_REQUEST, m, IP(34), ZERO_MAC, H_OUR_IP, H_BCAST_MAC);
  CHECK_EQ(state_of(IP(34)), TOE_NEIGH_REACHABLE);
  CHECK(toe_arp_lookup(h.st, IP(33)) == NULL);
  CHECK_EQ(state_of(IP(30)), TOE_NEIGH_REACHABLE);
  CHECK_EQ(ctr()->entries_evicted, 1);
  CHECK_EQ(ctr()->tx_replies, 2);
  finish();
}

TEST(reachable_then_stale_then_expired)
{
  start();
  toe_time_t t0 = h.now;
  h_learn_peer(&h);
  h_advance(&h, TOE_SEC(30) - TOE_MSEC(10));
  CHECK_EQ(state_of(H_PEER_IP), TOE_NEIGH_REACHABLE);
  h_advance(&h, TOE_MSEC(20));
  CHECK_EQ(state_of(H_PEER_IP), TOE_NEIGH_STALE);
  /* STALE unused for arp_stale_time: freed */
  h_advance(&h, t0 + TOE_SEC(90) - TOE_MSEC(10) - h.now);
  CHECK_EQ(state_of(H_PEER_IP), TOE_NEIGH_STALE);
  CHECK_EQ(ctr()->entries_expired, 0);
  h_advance(&h, TOE_MSEC(20));
  CHECK(toe_arp_lookup(h.st, H_PEER_IP) == NULL);
  CHECK_EQ(ctr()->entries_expired, 1);
  CHECK_EQ(ctr()->entries_inuse, 0);
  /* ageing sends nothing */
  CHECK_EQ(h.ntx, 0);
  finish();
}

TEST(confirmation_restarts_reachable_time)
{
  start();
  toe_time_t t0 = h.now;
  h_learn_peer(&h);
  h_advance(&h, TOE_SEC(20));
  /* the neighbour asks again at t0 + 20 s: reachable until t0 + 50 s */
  h_learn_peer(&h);
  h_advance(&h, t0 + TOE_SEC(49) - h.now);
  CHECK_EQ(state_of(H_PEER_IP), TOE_NEIGH_REACHABLE);
  h_advance(&h, TOE_MSEC(1020));
  CHECK_EQ(state_of(H_PEER_IP), TOE_NEIGH_STALE);
  finish();
}

TEST(stale_entry_used_is_sent_and_reprobed_unicast)
{
  start();
  h_learn_peer(&h);
  h_advance(&h, TOE_SEC(31));
  REQUIRE(state_of(H_PEER_IP) == TOE_NEIGH_STALE);
  h_clear(&h);

  CHECK_EQ(send_to(H_PEER_IP, 9), 0);
  /* the packet goes at once to the cached MAC, and a unicast request checks it */
  CHECK_EQ(h.ntx, 2);
  CHECK_EQ(h_count_tx(&h, 0x0800, 0), 1);
  check_ip_frame(h_find_tx(&h, 0x0800, 0, 0), H_PEER_MAC, 9);
  check_arp_frame(h_find_tx(&h, 0x0806, 0, 0), H_PEER_MAC, TOE_ARP_OP_REQUEST, H_OUR_IP, ZERO_MAC,
                  H_PEER_IP);
  CHECK_EQ(state_of(H_PEER_IP), TOE_NEIGH_PROBE);

  /* further sends go out without more requests */
  CHECK_EQ(send_to(H_PEER_IP, 10), 0);
  CHECK_EQ(h_count_tx(&h, 0x0800, 0), 2);
  CHECK_EQ(h_count_tx(&h, 0x0806, 0), 1);

  /* the answer confirms it */
  feed_arp(TOE_ARP_OP_REPLY, H_PEER_MAC, H_PEER_IP, H_OUR_MAC, H_OUR_IP, H_OUR_MAC);
  CHECK_EQ(state_of(H_PEER_IP), TOE_NEIGH_REACHABLE);
  h_clear(&h);
  h_advance(&h, TOE_SEC(5));
  CHECK_EQ(h.ntx, 0);
  finish();
}

TEST(stale_probe_unanswered_fails)
{
  start();
  h_learn_peer(&h);
  h_advance(&h, TOE_SEC(31));
  h_clear(&h);
  CHECK_EQ(send_to(H_PEER_IP, 1), 0);
  h_advance(&h, TOE_MSEC(3100));
  /* arp_max_retries unicast requests in all, then FAILED */
  CHECK_EQ(h_count_tx(&h, 0x0806, 0), 3);
  for (int i = 0; i < 3; i++)
    check_arp_frame(h_find_tx(&h, 0x0806, 0, i), H_PEER_MAC, TOE_ARP_OP_REQUEST, H_OUR_IP, ZERO_MAC,
                    H_PEER_IP);
  CHECK_EQ(state_of(H_PEER_IP), TOE_NEIGH_FAILED);
  CHECK_EQ(ctr()->resolve_failed, 1);
  CHECK_EQ(send_to(H_PEER_IP, 2), -TOE_EHOSTUNREACH);
  finish();
}

TEST(conflict_detected_and_defended_at_most_every_10s)
{
  start();
  uint8_t intruder[6];
  mac_of(intruder, 0x99);

  /* someone announces our address */
  feed_arp(TOE_ARP_OP_REQUEST, intruder, H_OUR_IP, ZERO_MAC, H_OUR_IP, H_BCAST_MAC);
  CHECK_EQ(ctr()->rx_conflict, 1);
  CHECK_EQ(h.ntx, 1);
  /* RFC 5227 2.4 (b): one announcement in defence */
  check_arp_frame(0, H_BCAST_MAC, TOE_ARP_OP_REQUEST, H_OUR_IP, ZERO_MAC, H_OUR_IP);
  CHECK_EQ(ctr()->tx_gratuitous, 1);
  CHECK(toe_arp_lookup(h.st, H_OUR_IP) == NULL);

  /* again within 10 s (as a reply this time): counted, not defended */
  h_advance(&h, TOE_SEC(5));
  feed_arp(TOE_ARP_OP_REPLY, intruder, H_OUR_IP, H_PEER_MAC, H_PEER_IP, H_BCAST_MAC);
  CHECK_EQ(ctr()->rx_conflict, 2);
  CHECK_EQ(h.ntx, 1);
  /* ...and a request for someone else that claims our address as sender: same */
  feed_arp(TOE_ARP_OP_REQUEST, intruder, H_OUR_IP, ZERO_MAC, IP(9), H_BCAST_MAC);
  CHECK_EQ(ctr()->rx_conflict, 3);
  CHECK_EQ(h.ntx, 1);

  /* 10 s after the defence: defended again */
  h_advance(&h, TOE_SEC(5));
  feed_arp(TOE_ARP_OP_REQUEST, intruder, H_OUR_IP, ZERO_MAC, H_PEER_IP, H_BCAST_MAC);
  CHECK_EQ(ctr()->rx_conflict, 4);
  CHECK_EQ(h.ntx, 2);
  check_arp_frame(1, H_BCAST_MAC, TOE_ARP_OP_REQUEST, H_OUR_IP, ZERO_MAC, H_OUR_IP);
  CHECK_EQ(ctr()->tx_gratuitous, 2);
  CHECK_EQ(ctr()->tx_replies, 0);
  CHECK_EQ(ctr()->entries_inuse, 0);
  finish();
}

TEST(probe_for_our_address_is_answered_not_learned)
{
  start();
  uint8_t prober[6];
  mac_of(prober, 0x42);
  /* RFC 5227 probe: sender IP 0 */
  feed_arp(TOE_ARP_OP_REQUEST, prober, 0, ZERO_MAC, H_OUR_IP, H_BCAST_MAC);
  CHECK_EQ(h.ntx, 1);
  check_arp_frame(0, prober, TOE_ARP_OP_REPLY, H_OUR_IP, prober, 0);
  CHECK_EQ(ctr()->entries_inuse, 0);
  CHECK_EQ(ctr()->rx_conflict, 0);
  CHECK(toe_arp_lookup(h.st, 0) == NULL);
  /* a probe for another address: silence */
  h_clear(&h);
  feed_arp(TOE_ARP_OP_REQUEST, prober, 0, ZERO_MAC, IP(77), H_BCAST_MAC);
  CHECK_EQ(h.ntx, 0);
  CHECK_EQ(ctr()->rx_drop_not_for_us, 1);
  finish();
}

TEST(unsolicited_replies_and_gratuitous_do_not_create_entries)
{
  start();
  uint8_t m[6];
  mac_of(m, 50);
  feed_arp(TOE_ARP_OP_REPLY, m, IP(50), H_OUR_MAC, H_OUR_IP, H_OUR_MAC);
  CHECK(toe_arp_lookup(h.st, IP(50)) == NULL);
  CHECK_EQ(ctr()->rx_drop_unsolicited, 1);
  /* gratuitous announcement from an unknown host */
  mac_of(m, 51);
  feed_arp(TOE_ARP_OP_REQUEST, m, IP(51), ZERO_MAC, IP(51), H_BCAST_MAC);
  CHECK(toe_arp_lookup(h.st, IP(51)) == NULL);
  /* gratuitous reply form from an unknown host */
  feed_arp(TOE_ARP_OP_REPLY, m, IP(51), H_BCAST_MAC, IP(51), H_BCAST_MAC);
  CHECK(toe_arp_lookup(h.st, IP(51)) == NULL);
  CHECK_EQ(ctr()->rx_drop_unsolicited, 2);
  CHECK_EQ(ctr()->entries_inuse, 0);
  CHECK_EQ(h.ntx, 0);
  finish();
}

TEST(known_neighbour_updated_by_any_packet_from_it)
{
  start();
  h_learn_peer(&h);
  uint8_t newmac[6];
  mac_of(newmac, 0x77);

  /* RFC 826 merge: a gratuitous ARP from a known host moves it to its new MAC */
  feed_arp(TOE_ARP_OP_REQUEST, newmac, H_PEER_IP, ZERO_MAC, H_PEER_IP, H_BCAST_MAC);
  const struct toe_neigh *n = toe_arp_lookup(h.st, H_PEER_IP);
  REQUIRE(n != NULL);
  CHECK_MEM(n->mac, newmac, 6);
  CHECK_EQ(h.ntx, 0);

  /* so does a request for another address, and an unsolicited reply */
  feed_arp(TOE_ARP_OP_REQUEST, H_PEER_MAC, H_PEER_IP, ZERO_MAC, IP(9), H_BCAST_MAC);
  CHECK_MEM(n->mac, H_PEER_MAC, 6);
  feed_arp(TOE_ARP_OP_REPLY, newmac, H_PEER_IP, H_OUR_MAC, H_OUR_IP, H_OUR_MAC);
  CHECK_MEM(n->mac, newmac, 6);
  CHECK_EQ(h.ntx, 0);
  CHECK_EQ(ctr()->rx_drop_unsolicited, 0);
  CHECK_EQ(ctr()->entries_created, 1);

  CHECK_EQ(send_to(H_PEER_IP, 3), 0);
  check_ip_frame(0, newmac, 3);

  /* a STALE entry is refreshed to REACHABLE by a packet from the neighbour */
  h_advance(&h, TOE_SEC(31));
  REQUIRE(state_of(H_PEER_IP) == TOE_NEIGH_STALE);
  feed_arp(TOE_ARP_OP_REQUEST, H_PEER_MAC, H_PEER_IP, ZERO_MAC, IP(9), H_BCAST_MAC);
  CHECK_EQ(state_of(H_PEER_IP), TOE_NEIGH_REACHABLE);
  CHECK_MEM(n->mac, H_PEER_MAC, 6);
  finish();
}

TEST(malformed_packets_counted_and_ignored)
{
  start();
  uint8_t f[64];
  size_t n;

  /* truncated: 27 bytes of ARP */
  n = h_build_arp(f, TOE_ARP_OP_REQUEST, H_PEER_MAC, H_PEER_IP, ZERO_MAC, H_OUR_IP, H_BCAST_MAC);
  h_input(&h, f, n - 1);
  /* hardware type 6 (IEEE 802) */
  n = h_build_arp(f, TOE_ARP_OP_REQUEST, H_PEER_MAC, H_PEER_IP, ZERO_MAC, H_OUR_IP, H_BCAST_MAC);
  f[15] = 6;
  h_input(&h, f, n);
  /* protocol type IPv6 */
  n = h_build_arp(f, TOE_ARP_OP_REQUEST, H_PEER_MAC, H_PEER_IP, ZERO_MAC, H_OUR_IP, H_BCAST_MAC);
  f[16] = 0x86, f[17] = 0xdd;
  h_input(&h, f, n);
  /* hardware length 8 */
  n = h_build_arp(f, TOE_ARP_OP_REQUEST, H_PEER_MAC, H_PEER_IP, ZERO_MAC, H_OUR_IP, H_BCAST_MAC);
  f[18] = 8;
  h_input(&h, f, n);
  /* protocol length 16 */
  n = h_build_arp(f, TOE_ARP_OP_REQUEST, H_PEER_MAC, H_PEER_IP, ZERO_MAC, H_OUR_IP, H_BCAST_MAC);
  f[19] = 16;
  h_input(&h, f, n);
  /* operation 3 (RARP request) */
  n = h_build_arp(f, 3, H_PEER_MAC, H_PEER_IP, ZERO_MAC, H_OUR_IP, H_BCAST_MAC);
  h_input(&h, f, n);
  /* just the Ethernet header */
  h_input(&h, f, 14);

  CHECK_EQ(ctr()->rx_drop_malformed, 7);
  CHECK_EQ(ctr()->rx_requests, 0);
  CHECK_EQ(ctr()->rx_replies, 0);
  CHECK_EQ(ctr()->entries_inuse, 0);
  CHECK_EQ(h.ntx, 0);
  finish();
}

TEST(bogus_senders_counted_and_ignored)
{
  start();
  static const uint8_t mcast[6] = {0x01, 0x00, 0x5e, 0x00, 0x00, 0x01};
  static const uint8_t group_bit[6] = {0x03, 0, 0, 0, 0, 0x02};

  feed_arp(TOE_ARP_OP_REQUEST, H_BCAST_MAC, H_PEER_IP, ZERO_MAC, H_OUR_IP, H_BCAST_MAC);
  feed_arp(TOE_ARP_OP_REQUEST, mcast, H_PEER_IP, ZERO_MAC, H_OUR_IP, H_BCAST_MAC);
  feed_arp(TOE_ARP_OP_REQUEST, group_bit, H_PEER_IP, ZERO_MAC, H_OUR_IP, H_BCAST_MAC);
  feed_arp(TOE_ARP_OP_REQUEST, ZERO_MAC, H_PEER_IP, ZERO_MAC, H_OUR_IP, H_BCAST_MAC);
  feed_arp(TOE_ARP_OP_REQUEST, H_OUR_MAC, H_PEER_IP, ZERO_MAC, H_OUR_IP, H_BCAST_MAC);
  /* our own announcement reflected back is not a conflict */
  feed_arp(TOE_ARP_OP_REQUEST, H_OUR_MAC, H_OUR_IP, ZERO_MAC, H_OUR_IP, H_BCAST_MAC);
  /* sender IPs no host can have */
  feed_arp(TOE_ARP_OP_REQUEST, H_PEER_MAC, 0x7f000001u, ZERO_MAC, H_OUR_IP, H_BCAST_MAC);
  feed_arp(TOE_ARP_OP_REQUEST, H_PEER_MAC, 0xe0000001u, ZERO_MAC, H_OUR_IP, H_BCAST_MAC);
  feed_arp(TOE_ARP_OP_REQUEST, H_PEER_MAC, 0xffffffffu, ZERO_MAC, H_OUR_IP, H_BCAST_MAC);
  feed_arp(TOE_ARP_OP_REQUEST, H_PEER_MAC, IP(255), ZERO_MAC, H_OUR_IP, H_BCAST_MAC);
  feed_arp(TOE_ARP_OP_REPLY, H_PEER_MAC, 0, H_OUR_MAC, H_OUR_IP, H_OUR_MAC);

  CHECK_EQ(ctr()->rx_drop_bogus_sender, 11);
  CHECK_EQ(ctr()->rx_conflict, 0);
  CHECK_EQ(ctr()->tx_replies, 0);
  CHECK_EQ(ctr()->entries_inuse, 0);
  CHECK_EQ(h.ntx, 0);

  /* a bogus packet from a known neighbour's IP does not touch its entry */
  h_learn_peer(&h);
  feed_arp(TOE_ARP_OP_REQUEST, H_BCAST_MAC, H_PEER_IP, ZERO_MAC, H_OUR_IP, H_BCAST_MAC);
  const struct toe_neigh *n = toe_arp_lookup(h.st, H_PEER_IP);
  REQUIRE(n != NULL);
  CHECK_MEM(n->mac, H_PEER_MAC, 6);
  CHECK_EQ(h.ntx, 0);
  finish();
}

TEST(announces_on_start)
{
  start();
  CHECK_EQ(h.ntx, 0); /* created, not started: silent */
  toe_stack_start(h.st, h.now);
  CHECK_EQ(h_count_tx(&h, 0x0806, 0), 1);
  int i = h_find_tx(&h, 0x0806, 0, 0);
  /* RFC 5227 2.3 announcement: request, sender and target IP ours, target MAC zero */
  check_arp_frame(i, H_BCAST_MAC, TOE_ARP_OP_REQUEST, H_OUR_IP, ZERO_MAC, H_OUR_IP);
  CHECK_EQ(ctr()->tx_gratuitous, 1);
  CHECK_EQ(ctr()->tx_requests, 0);
  finish();
}

TEST(broadcast_and_multicast_next_hops_need_no_arp)
{
  start();
  static const uint8_t mdns_mac[6] = {0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb};
  CHECK_EQ(send_to(0xffffffffu, 1), 0);
  CHECK_EQ(send_to(IP(255), 2), 0);
  CHECK_EQ(send_to(0xe00000fbu, 3), 0); /* 224.0.0.251 */
  CHECK_EQ(h.ntx, 3);
  check_ip_frame(0, H_BCAST_MAC, 1);
  check_ip_frame(1, H_BCAST_MAC, 2);
  check_ip_frame(2, mdns_mac, 3);
  CHECK_EQ(ctr()->entries_inuse, 0);
  CHECK_EQ(send_to(0, 4), -TOE_EINVAL);
  CHECK_EQ(send_to(H_OUR_IP, 5), -TOE_EINVAL);
  CHECK_EQ(h.ntx, 3);
  finish();
}

TEST(many_neighbours_each_found)
{
  struct toe_config cfg;
  arp_cfg(&cfg);
  cfg.arp_entries = 200;
  start_cfg(&cfg);
  for (uint8_t d = 2; d < 202; d++) {
    uint8_t m[6];
    mac_of(m, d);
    feed_arp(TOE_ARP_OP_REQUEST, m, IP(d), ZERO_MAC, H_OUR_IP, H_BCAST_MAC);
  }
  CHECK_EQ(ctr()->entries_inuse, 200);
  CHECK_EQ(ctr()->tx_replies, 200);
  int found = 0;
  for (uint8_t d = 2; d < 202; d++) {
    const struct toe_neigh *n = toe_arp_lookup(h.st, IP(d));
    if (n && n->ip == IP(d) && n->mac[5] == d)
      found++;
  }
  CHECK_EQ(found, 200);
  CHECK(toe_arp_lookup(h.st, IP(202)) == NULL);
  /* all of them age out */
  h_advance(&h, TOE_SEC(91));
  CHECK_EQ(ctr()->entries_inuse, 0);
  CHECK_EQ(ctr()->entries_expired, 200);
  finish();
}

TEST_MAIN()
