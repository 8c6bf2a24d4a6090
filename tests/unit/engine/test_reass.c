/*
 * IPv4 reassembly through the engine harness: orders, duplicates, overlaps (RFC 5722 rule),
 * timeouts with ICMP time exceeded, memory bounds, and a large fragmented echo whose fragmented
 * reply is reassembled here and checked.
 */
#include "common/prng.h"
#include "engine/stack.h"
#include "harness.h"
#include "testlib.h"

#include <stdlib.h>
#include <string.h>

/* The tree's one PRNG (src/common/prng.h) instead of the C library's rand(): the same numbers
 * with every libc (the cross runs too), so a failure reproduces anywhere. */
static uint64_t rng_state;
static int rnd(void)
{
  return (int)(toe_prng_next(&rng_state) >> 33); /* 0 .. 2^31 - 1, as rand() */
}

static const struct toe_counters_ip *ipc(const struct harness *h)
{
  return &toe_stack_counters(h->st)->ip;
}
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

/* An ICMP echo request message of 8 + dlen bytes. */
static size_t echo_msg(uint8_t *m, uint16_t id, uint16_t seq, size_t dlen)
{
  m[0] = 8;
  m[1] = 0;
  put16(m + 2, 0);
  put16(m + 4, id);
  put16(m + 6, seq);
  for (size_t i = 0; i < dlen; i++)
    m[8 + i] = (uint8_t)(i * 31 + seq);
  put16(m + 2, h_csum(m, 8 + dlen, 0));
  return 8 + dlen;
}

struct piece {
  uint16_t off, len;
  bool mf;
};

/* Sends one fragment of `msg` (IP id `id`, protocol `proto`). */
static void send_frag(struct harness *h, const uint8_t *msg, uint16_t id, uint8_t proto,
                      struct piece p)
{
  static uint8_t f[2048];
  uint16_t field = (uint16_t)((p.mf ? 0x2000 : 0) | (p.off / 8));
  size_t n = h_build_ipv4(f, H_PEER_IP, H_OUR_IP, proto, id, field, 64, msg + p.off, p.len);
  h_input(h, f, n);
}

/* Splits [0, len) into pieces of `step` bytes (multiple of 8). Returns the count. */
static int split(struct piece *out, size_t len, uint16_t step)
{
  int n = 0;
  for (size_t off = 0; off < len; off += step) {
    size_t l = len - off < step ? len - off : step;
    out[n++] = (struct piece){(uint16_t)off, (uint16_t)l, off + l < len};
  }
  return n;
}

/* Checks that exactly one echo reply matching request `msg` (len bytes) was sent, unfragmented. */
static void check_one_reply(const struct harness *h, const uint8_t *msg, size_t len)
{
  CHECK_EQ(h_count_tx(h, 0x0800, 1), 1);
  int i = h_find_tx(h, 0x0800, 1, 0);
  if (i < 0)
    return;
  const uint8_t *ip = h->tx[i].bytes + 14;
  CHECK_EQ(h_be16(ip + 2), 20 + len);
  CHECK_EQ(h_be16(ip + 6) & 0x3fff, 0);
  CHECK_EQ(ip[20], 0);
  CHECK_MEM(ip + 24, msg + 4, len - 4); /* id, seq, data */
  CHECK_EQ(h_csum(ip + 20, len, 0), 0);
}

static void setup(struct harness *h)
{
  h_init(h);
  h_learn_peer(h);
}

static void run_order(const int *order, int n, uint16_t step, size_t dlen)
{
  struct harness h;
  setup(&h);
  uint32_t free0 = pool_free(&h);
  uint8_t msg[4096];
  size_t len = echo_msg(msg, 7, 9, dlen);
  struct piece p[64];
  int np = split(p, len, step);
  REQUIRE(np == n);
  for (int i = 0; i < n; i++) {
    send_frag(&h, msg, 0x4242, 1, p[order[i]]);
    if (i < n - 1)
      CHECK_EQ(h_count_tx(&h, 0x0800, 1), 0);
  }
  CHECK_EQ(ipc(&h)->rx_fragments, n);
  CHECK_EQ(ipc(&h)->reass_ok, 1);
  CHECK_EQ(ipc(&h)->reass_inuse, 0);
  check_one_reply(&h, msg, len);
  h_clear(&h);
  CHECK_EQ(pool_free(&h), free0);
  h_fini(&h);
}

TEST(in_order)
{
  const int o[] = {0, 1, 2, 3};
  run_order(o, 4, 64, 8 + 64 * 3); /* 8 + 200 bytes -> 64,64,64,16 */
}

TEST(reverse_order)
{
  const int o[] = {3, 2, 1, 0};
  run_order(o, 4, 64, 200);
}

TEST(random_orders)
{
  toe_prng_seed(&rng_state, 12345);
  for (int round = 0; round < 20; round++) {
    int o[10];
    for (int i = 0; i < 10; i++)
      o[i] = i;
    for (int i = 9; i > 0; i--) {
      int j = rnd() % (i + 1), t = o[i];
      o[i] = o[j];
      o[j] = t;
    }
    run_order(o, 10, 48, 8 * 55); /* 448 bytes of message: 9 x 48 + 16 */
  }
}

TEST(interleaved_datagrams)
{
  struct harness h;
  setup(&h);
  uint8_t a[512], b[512];
  size_t la = echo_msg(a, 1, 1, 200), lb = echo_msg(b, 2, 2, 200);
  struct piece pa[8], pb[8];
  int na = split(pa, la, 64), nb = split(pb, lb, 64);
  REQUIRE(na == nb);
  for (int i = 0; i < na; i++) {
    send_frag(&h, a, 100, 1, pa[i]);
    send_frag(&h, b, 101, 1, pb[na - 1 - i]);
  }
  CHECK_EQ(ipc(&h)->reass_ok, 2);
  CHECK_EQ(h_count_tx(&h, 0x0800, 1), 2);
  h_fini(&h);
}

TEST(exact_duplicates_ignored)
{
  struct harness h;
  setup(&h);
  uint32_t free0 = pool_free(&h);
  uint8_t msg[512];
  size_t len = echo_msg(msg, 7, 9, 200);
  struct piece p[8];
  int n = split(p, len, 64);
  send_frag(&h, msg, 5, 1, p[0]);
  send_frag(&h, msg, 5, 1, p[0]);
  send_frag(&h, msg, 5, 1, p[2]);
  send_frag(&h, msg, 5, 1, p[2]);
  for (int i = 1; i < n; i++)
    send_frag(&h, msg, 5, 1, p[i]);
  CHECK_EQ(ipc(&h)->reass_drop_duplicate, 3);
  CHECK_EQ(ipc(&h)->reass_ok, 1);
  check_one_reply(&h, msg, len);
  h_clear(&h);
  CHECK_EQ(pool_free(&h), free0);
  h_fini(&h);
}

TEST(overlap_discards_datagram_and_poisons_key)
{
  struct harness h;
  setup(&h);
  uint32_t free0 = pool_free(&h);
  uint8_t msg[512];
  size_t len = echo_msg(msg, 7, 9, 200); /* 208 bytes */
  send_frag(&h, msg, 6, 1, (struct piece){0, 64, true});
  send_frag(&h, msg, 6, 1, (struct piece){128, 80, false});
  /* overlaps the first by 8 bytes with different extent: ambiguous */
  send_frag(&h, msg, 6, 1, (struct piece){56, 72, true});
  CHECK_EQ(ipc(&h)->reass_drop_overlap, 1);
  /* everything is released except the poisoned key */
  CHECK_EQ(pool_free(&h), free0);
  /* the missing middle would now complete it, but the datagram is gone for good */
  send_frag(&h, msg, 6, 1, (struct piece){0, 64, true});
  send_frag(&h, msg, 6, 1, (struct piece){64, 64, true});
  send_frag(&h, msg, 6, 1, (struct piece){128, 80, false});
  CHECK_EQ(ipc(&h)->reass_drop_poisoned, 3);
  CHECK_EQ(ipc(&h)->reass_ok, 0);
  CHECK_EQ(h_count_tx(&h, 0x0800, 1), 0);
  /* after the timeout the key is free again and a clean copy reassembles */
  h_advance(&h, TOE_SEC(31));
  CHECK_EQ(ipc(&h)->reass_inuse, 0);
  CHECK_EQ(ipc(&h)->reass_timeout, 0); /* a poisoned slot is not a timeout */
  CHECK_EQ(h_count_tx(&h, 0x0800, 1), 0);
  send_frag(&h, msg, 6, 1, (struct piece){0, 64, true});
  send_frag(&h, msg, 6, 1, (struct piece){64, 64, true});
  send_frag(&h, msg, 6, 1, (struct piece){128, 80, false});
  CHECK_EQ(ipc(&h)->reass_ok, 1);
  check_one_reply(&h, msg, len);
  h_clear(&h);
  CHECK_EQ(pool_free(&h), free0);
  h_fini(&h);
}

TEST(contained_overlap_discards)
{
  struct harness h;
  setup(&h);
  uint8_t msg[512];
  echo_msg(msg, 7, 9, 200);
  send_frag(&h, msg, 8, 1, (struct piece){0, 128, true});
  send_frag(&h, msg, 8, 1, (struct piece){64, 32, true}); /* inside the first */
  CHECK_EQ(ipc(&h)->reass_drop_overlap, 1);
  h_fini(&h);
}

TEST(bad_fragments_dropped)
{
  struct harness h;
  setup(&h);
  uint32_t free0 = pool_free(&h);
  uint8_t msg[512];
  echo_msg(msg, 7, 9, 200);
  /* non-final fragment not a multiple of 8 */
  send_frag(&h, msg, 9, 1, (struct piece){0, 60, true});
  CHECK_EQ(ipc(&h)->reass_drop_bad_frag, 1);
  /* would end beyond 65535 */
  static uint8_t big[65536 + 16];
  send_frag(&h, big, 10, 1, (struct piece){65528, 16, false});
  CHECK_EQ(ipc(&h)->reass_drop_too_big, 1);
  /* two fragments disagreeing about the end: the datagram is discarded */
  send_frag(&h, msg, 11, 1, (struct piece){64, 64, false});
  send_frag(&h, msg, 11, 1, (struct piece){128, 64, false});
  CHECK_EQ(ipc(&h)->reass_drop_bad_frag, 2);
  /* a fragment past a known end */
  send_frag(&h, msg, 12, 1, (struct piece){64, 64, false});
  send_frag(&h, msg, 12, 1, (struct piece){128, 64, true});
  CHECK_EQ(ipc(&h)->reass_drop_bad_frag, 3);
  CHECK_EQ(ipc(&h)->reass_ok, 0);
  CHECK_EQ(h.ntx, 0);
  h_advance(&h, TOE_SEC(31));
  CHECK_EQ(ipc(&h)->reass_inuse, 0);
  CHECK_EQ(pool_free(&h), free0);
  h_fini(&h);
}

TEST(timeout_with_fragment_zero_sends_time_exceeded)
{
  struct harness h;
  setup(&h);
  uint32_t free0 = pool_free(&h);
  uint8_t msg[512];
  echo_msg(msg, 7, 9, 200);
  send_frag(&h, msg, 20, 1, (struct piece){0, 64, true});
  send_frag(&h, msg, 20, 1, (struct piece){128, 80, false});
  CHECK_EQ(ipc(&h)->reass_inuse, 1);
  CHECK(pool_free(&h) < free0);
  h_advance(&h, TOE_SEC(29));
  CHECK_EQ(ipc(&h)->reass_timeout, 0);
  CHECK_EQ(h.ntx, 0);
  h_advance(&h, TOE_SEC(2));
  CHECK_EQ(ipc(&h)->reass_timeout, 1);
  CHECK_EQ(ipc(&h)->reass_inuse, 0);
  CHECK_EQ(icmpc(&h)->tx_time_exceeded, 1);
  int i = h_find_tx(&h, 0x0800, 1, 0);
  REQUIRE(i >= 0);
  const uint8_t *ip = h.tx[i].bytes + 14;
  CHECK_EQ(h_be32(ip + 16), H_PEER_IP);
  CHECK_EQ(ip[20], 11);
  CHECK_EQ(ip[21], 1);
  CHECK_EQ(h_csum(ip + 20, h_be16(ip + 2) - 20u, 0), 0);
  /* quotes fragment zero's header (id 20, MF) and its first data bytes */
  CHECK_EQ(h_be16(ip + 28 + 4), 20);
  CHECK_EQ(h_be16(ip + 28 + 6), 0x2000);
  CHECK_MEM(ip + 48, msg, 8);
  h_clear(&h);
  CHECK_EQ(pool_free(&h), free0);
  h_fini(&h);
}

TEST(timeout_without_fragment_zero_is_silent)
{
  struct harness h;
  setup(&h);
  uint32_t free0 = pool_free(&h);
  uint8_t msg[512];
  echo_msg(msg, 7, 9, 200);
  send_frag(&h, msg, 21, 1, (struct piece){64, 64, true});
  send_frag(&h, msg, 21, 1, (struct piece){128, 80, false});
  h_advance(&h, TOE_SEC(31));
  CHECK_EQ(ipc(&h)->reass_timeout, 1);
  CHECK_EQ(icmpc(&h)->tx_time_exceeded, 0);
  CHECK_EQ(h.ntx, 0);
  CHECK_EQ(pool_free(&h), free0);
  h_fini(&h);
}

TEST(buffer_bound_respected)
{
  struct toe_config cfg;
  h_default_cfg(&cfg);
  cfg.reass_max_bufs = 5;
  struct harness h;
  h_init_cfg(&h, &cfg);
  h_learn_peer(&h);
  uint32_t free0 = pool_free(&h);
  uint8_t msg[512];
  echo_msg(msg, 7, 9, 200);
  /* 8 first fragments of 8 datagrams: only 5 buffers may be held */
  for (uint16_t id = 0; id < 8; id++)
    send_frag(&h, msg, (uint16_t)(300 + id), 1, (struct piece){0, 64, true});
  CHECK_EQ(ipc(&h)->reass_drop_nomem, 3);
  CHECK_EQ(ipc(&h)->reass_inuse, 5);
  CHECK_EQ(free0 - pool_free(&h), 5);
  h_advance(&h, TOE_SEC(31));
  CHECK_EQ(ipc(&h)->reass_inuse, 0);
  h_clear(&h); /* the time exceeded errors */
  CHECK_EQ(pool_free(&h), free0);
  h_fini(&h);
}

TEST(slot_bound_respected)
{
  struct toe_config cfg;
  h_default_cfg(&cfg);
  cfg.reass_slots = 2;
  struct harness h;
  h_init_cfg(&h, &cfg);
  h_learn_peer(&h);
  uint32_t free0 = pool_free(&h);
  uint8_t msg[512];
  size_t len = echo_msg(msg, 7, 9, 200);
  send_frag(&h, msg, 400, 1, (struct piece){0, 64, true});
  send_frag(&h, msg, 401, 1, (struct piece){0, 64, true});
  send_frag(&h, msg, 402, 1, (struct piece){0, 64, true});
  CHECK_EQ(ipc(&h)->reass_drop_nomem, 1);
  CHECK_EQ(ipc(&h)->reass_inuse, 2);
  /* an existing reassembly still completes */
  send_frag(&h, msg, 400, 1, (struct piece){64, 64, true});
  send_frag(&h, msg, 400, 1, (struct piece){128, 80, false});
  CHECK_EQ(ipc(&h)->reass_ok, 1);
  check_one_reply(&h, msg, len);
  h_advance(&h, TOE_SEC(31));
  h_clear(&h);
  CHECK_EQ(ipc(&h)->reass_inuse, 0);
  CHECK_EQ(pool_free(&h), free0);
  h_fini(&h);
}

TEST(large_echo_gets_fragmented_reply)
{
  struct harness h;
  setup(&h);
  uint32_t free0 = pool_free(&h);
  static uint8_t msg[4096];
  size_t len = echo_msg(msg, 0x1111, 0x2222, 3000 - 8); /* a 3000-byte ICMP message */
  struct piece p[8];
  int n = split(p, len, 1480);
  REQUIRE(n == 3);
  send_frag(&h, msg, 777, 1, p[1]);
  send_frag(&h, msg, 777, 1, p[2]);
  send_frag(&h, msg, 777, 1, p[0]);
  CHECK_EQ(ipc(&h)->reass_ok, 1);
  CHECK_EQ(icmpc(&h)->tx_echo_replies, 1);

  /* reassemble the reply here */
  int nf = h_count_tx(&h, 0x0800, 1);
  CHECK_EQ(nf, 3);
  static uint8_t got[4096];
  uint8_t have[4096 / 8] = {0};
  size_t total = 0;
  int id = -1;
  for (int k = 0; k < nf; k++) {
    const uint8_t *ip = h.tx[h_find_tx(&h, 0x0800, 1, k)].bytes + 14;
    CHECK_EQ(h_csum(ip, 20, 0), 0);
    CHECK_EQ(h_be32(ip + 12), H_OUR_IP);
    CHECK_EQ(h_be32(ip + 16), H_PEER_IP);
    if (id < 0)
      id = h_be16(ip + 4);
    CHECK_EQ(h_be16(ip + 4), id);
    uint16_t ff = h_be16(ip + 6);
    size_t off = (size_t)(ff & 0x1fff) * 8, pl = h_be16(ip + 2) - 20u;
    CHECK(h_be16(ip + 2) <= 1500);
    REQUIRE(off + pl <= sizeof(got));
    memcpy(got + off, ip + 20, pl);
    for (size_t b = off / 8; b < (off + pl + 7) / 8; b++)
      have[b] = 1;
    if (!(ff & 0x2000))
      total = off + pl;
    else
      CHECK_EQ(pl % 8, 0);
  }
  CHECK_EQ(total, len);
  for (size_t b = 0; b < (len + 7) / 8; b++)
    CHECK(have[b]);
  CHECK_EQ(got[0], 0); /* echo reply */
  CHECK_EQ(got[1], 0);
  CHECK_MEM(got + 4, msg + 4, len - 4);
  CHECK_EQ(h_csum(got, len, 0), 0);
  h_clear(&h);
  CHECK_EQ(pool_free(&h), free0);
  h_fini(&h);
}

TEST(fragmented_udp_to_closed_port_quotes_reassembled_datagram)
{
  struct harness h;
  setup(&h);
  /* a UDP datagram of 8 + 192 bytes in fragments */
  uint8_t dg[256];
  put16(dg, 5555);
  put16(dg + 2, 9);
  put16(dg + 4, 200);
  put16(dg + 6, 0); /* no checksum */
  for (int i = 8; i < 200; i++)
    dg[i] = (uint8_t)i;
  send_frag(&h, dg, 900, 17, (struct piece){0, 64, true});
  send_frag(&h, dg, 900, 17, (struct piece){64, 136, false});
  CHECK_EQ(ipc(&h)->reass_ok, 1);
  /* needs UDP: a closed port answers with port unreachable about the whole datagram */
  int i = h_find_tx(&h, 0x0800, 1, 0);
  if (i >= 0) {
    const uint8_t *ip = h.tx[i].bytes + 14;
    CHECK_EQ(ip[20], 3);
    CHECK_EQ(ip[21], 3);
    /* the quoted header is the reassembled one: no MF, full length */
    CHECK_EQ(h_be16(ip + 28 + 2), 220);
    CHECK_EQ(h_be16(ip + 28 + 6) & 0x3fff, 0);
    CHECK_MEM(ip + 48, dg, 200);
  } else {
    CHECK(0);
  }
  h_fini(&h);
}

TEST_MAIN()
