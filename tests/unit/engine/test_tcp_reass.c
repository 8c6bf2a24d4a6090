/*
 * The out-of-order queue and SACK/D-SACK block generation (tcp_reass.c) on a bare tcb: overlap
 * trimming, merging, the memory bound, the order of SACK blocks (RFC 2018 4), D-SACK blocks
 * (RFC 2883), and a randomised test that delivered bytes always equal the source exactly once.
 */
#include "common/prng.h"
#include "engine/stack.h"
#include "engine/tcp.h"
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

#define BASE 1000u /* rcv_nxt at the start */

struct rq {
  struct harness h;
  struct toe_tcb tp;
  uint8_t src[200000];
};

static struct rq *rq_new(uint32_t pbufs)
{
  struct rq *r = calloc(1, sizeof(*r));
  struct toe_config cfg;
  h_default_cfg(&cfg);
  cfg.pbuf_count = pbufs;
  h_init_cfg(&r->h, &cfg);
  r->tp.rcv_nxt = BASE;
  r->tp.rcvbuf = 1u << 20;
  r->tp.flags = TOE_TF_SACK_OK;
  for (size_t i = 0; i < sizeof(r->src); i++)
    r->src[i] = (uint8_t)(i * 131u + (i >> 8) * 7u + 3u);
  return r;
}

/* Frees the queues and checks every buffer came back. */
static void rq_free(struct rq *r)
{
  struct toe_stack *st = r->h.st;
  toe_tcp_reass_purge(st, &r->tp);
  toe_pbuf_free_queue(st, r->tp.rcvq_head);
  CHECK_EQ(toe_pbuf_pool_free_count(st), st->cfg.pbuf_count);
  h_fini(&r->h);
  free(r);
}

/* Payload bytes [seq, seq+len) of the source stream (seq relative to BASE). */
static struct toe_pbuf *seg(struct rq *r, uint32_t seq, uint32_t len)
{
  struct toe_pbuf *p = toe_pbuf_from_bytes(r->h.st, r->src + (seq - BASE), len, 64);
  CHECK(p != NULL);
  return p;
}

static uint32_t ins(struct rq *r, uint32_t seq, uint32_t len)
{
  struct toe_pbuf *p = toe_pbuf_from_bytes(r->h.st, r->src + (seq - BASE), len, 64);
  if (!p)
    return 0xffffffffu;
  return toe_tcp_reass_insert(r->h.st, &r->tp, p, seq);
}

/* The queue as a list of [start, end) ranges. */
static int ranges(const struct rq *r, uint32_t out[][2], int max)
{
  int n = 0;
  for (const struct toe_pbuf *e = r->tp.ooo_head; e && n < max; e = e->qnext, n++) {
    out[n][0] = (uint32_t)e->meta[0];
    out[n][1] = (uint32_t)e->meta[0] + e->tot_len;
  }
  return n;
}

/* Every queued range holds exactly the source bytes of its sequence numbers. */
static bool contents_ok(const struct rq *r)
{
  static uint8_t buf[200000];
  for (const struct toe_pbuf *e = r->tp.ooo_head; e; e = e->qnext) {
    uint32_t s = (uint32_t)e->meta[0];
    if (toe_pbuf_copy_out(e, 0, buf, e->tot_len) != e->tot_len)
      return false;
    if (memcmp(buf, r->src + (s - BASE), e->tot_len) != 0)
      return false;
  }
  return true;
}

/* Moves the receive queue's bytes out. */
static size_t drain(struct rq *r, uint8_t *out)
{
  size_t n = 0;
  struct toe_pbuf *p = r->tp.rcvq_head;
  while (p) {
    struct toe_pbuf *nx = p->qnext;
    n += toe_pbuf_copy_out(p, 0, out + n, p->tot_len);
    toe_pbuf_free(r->h.st, p);
    p = nx;
  }
  r->tp.rcvq_head = r->tp.rcvq_tail = NULL;
  r->tp.rcvq_bytes = 0;
  return n;
}

TEST(merge_adjacent_and_fill_hole)
{
  struct rq *r = rq_new(512);
  CHECK_EQ(ins(r, BASE + 100, 100), 100);
  CHECK_EQ(ins(r, BASE + 300, 100), 100);
  uint32_t g[8][2];
  CHECK_EQ(ranges(r, g, 8), 2);
  /* adjacent on both sides: one range */
  CHECK_EQ(ins(r, BASE + 200, 100), 100);
  CHECK_EQ(ranges(r, g, 8), 1);
  CHECK_EQ(g[0][0], BASE + 100);
  CHECK_EQ(g[0][1], BASE + 400);
  CHECK_EQ(r->tp.ooo_bytes, 300);
  CHECK_EQ(r->tp.sack_gen_count, 1);
  CHECK_EQ(r->tp.sack_gen[0].start, BASE + 100);
  CHECK_EQ(r->tp.sack_gen[0].end, BASE + 400);
  CHECK(contents_ok(r));
  CHECK(!(r->tp.flags & TOE_TF_NEED_DSACK));

  /* the hole at rcv_nxt is filled by in-order data (appended by the input path), then pulled */
  struct toe_pbuf *p = seg(r, BASE, 100);
  toe_tcp_rcvq_append(r->h.st, &r->tp, p);
  r->tp.rcv_nxt += 100;
  CHECK_EQ(toe_tcp_reass_pull(r->h.st, &r->tp), 300);
  CHECK_EQ(r->tp.rcv_nxt, BASE + 400);
  CHECK(r->tp.ooo_head == NULL);
  CHECK_EQ(r->tp.ooo_bytes, 0);
  CHECK_EQ(r->tp.ooo_count, 0);
  CHECK_EQ(r->tp.sack_gen_count, 0);
  static uint8_t out[1000];
  CHECK_EQ(drain(r, out), 400);
  CHECK_MEM(out, r->src, 400);
  rq_free(r);
}

TEST(overlap_trimmed_with_dsack)
{
  struct rq *r = rq_new(512);
  CHECK_EQ(ins(r, BASE + 100, 100), 100);
  /* overlaps the end of the range by 50: only 50 new bytes kept */
  CHECK_EQ(ins(r, BASE + 150, 100), 50);
  uint32_t g[8][2];
  CHECK_EQ(ranges(r, g, 8), 1);
  CHECK_EQ(g[0][1], BASE + 250);
  CHECK_EQ(r->tp.ooo_bytes, 150);
  CHECK(r->tp.flags & TOE_TF_NEED_DSACK);
  CHECK_EQ(r->tp.dsack.start, BASE + 150);
  CHECK_EQ(r->tp.dsack.end, BASE + 200);
  r->tp.flags &= ~TOE_TF_NEED_DSACK;
  /* overlaps the start of the range */
  CHECK_EQ(ins(r, BASE + 50, 100), 50);
  CHECK_EQ(ranges(r, g, 8), 1);
  CHECK_EQ(g[0][0], BASE + 50);
  CHECK_EQ(r->tp.dsack.start, BASE + 100);
  CHECK_EQ(r->tp.dsack.end, BASE + 150);
  CHECK_EQ(r->tp.ooo_bytes, 200);
  CHECK(contents_ok(r));
  rq_free(r);
}

TEST(new_segment_covering_ranges_replaces_them)
{
  struct rq *r = rq_new(512);
  CHECK_EQ(ins(r, BASE + 200, 100), 100);
  CHECK_EQ(ins(r, BASE + 400, 100), 100);
  CHECK_EQ(ins(r, BASE + 600, 100), 100);
  /* covers the first two entirely and half of the third: 300 bytes more in the queue */
  CHECK_EQ(ins(r, BASE + 100, 550), 300);
  uint32_t g[8][2];
  CHECK_EQ(ranges(r, g, 8), 1);
  CHECK_EQ(g[0][0], BASE + 100);
  CHECK_EQ(g[0][1], BASE + 700);
  CHECK_EQ(r->tp.ooo_bytes, 600);
  CHECK(contents_ok(r));
  /* the first duplicate range is reported */
  CHECK_EQ(r->tp.dsack.start, BASE + 200);
  CHECK_EQ(r->tp.dsack.end, BASE + 300);
  rq_free(r);
}

TEST(full_duplicate_dropped_dsack_then_its_block)
{
  struct rq *r = rq_new(512);
  CHECK_EQ(ins(r, BASE + 100, 100), 100);
  CHECK_EQ(ins(r, BASE + 300, 100), 100);
  CHECK_EQ(r->tp.sack_gen[0].start, BASE + 300);
  uint64_t dups = r->h.st->ctr.tcp.rx_drop_dup;
  CHECK_EQ(ins(r, BASE + 120, 50), 0);
  CHECK_EQ(r->h.st->ctr.tcp.rx_drop_dup, dups + 1);
  CHECK_EQ(r->tp.ooo_bytes, 200);
  /* RFC 2883 4.1.2: D-SACK block, then the block holding the duplicate */
  CHECK(r->tp.flags & TOE_TF_NEED_DSACK);
  CHECK(r->tp.flags & TOE_TF_ACK_NOW);
  CHECK_EQ(r->tp.dsack.start, BASE + 120);
  CHECK_EQ(r->tp.dsack.end, BASE + 170);
  CHECK_EQ(r->tp.sack_gen_count, 2);
  CHECK_EQ(r->tp.sack_gen[0].start, BASE + 100);
  CHECK_EQ(r->tp.sack_gen[1].start, BASE + 300);
  rq_free(r);
}

TEST(no_dsack_without_sack)
{
  struct rq *r = rq_new(512);
  r->tp.flags = 0;
  CHECK_EQ(ins(r, BASE + 100, 100), 100);
  CHECK_EQ(ins(r, BASE + 100, 100), 0);
  CHECK(!(r->tp.flags & TOE_TF_NEED_DSACK));
  CHECK(r->tp.flags & TOE_TF_ACK_NOW);
  rq_free(r);
}

TEST(sack_blocks_most_recent_first)
{
  struct rq *r = rq_new(512);
  ins(r, BASE + 100, 10);
  ins(r, BASE + 300, 10);
  ins(r, BASE + 500, 10);
  CHECK_EQ(r->tp.sack_gen_count, 3);
  CHECK_EQ(r->tp.sack_gen[0].start, BASE + 500);
  CHECK_EQ(r->tp.sack_gen[1].start, BASE + 300);
  CHECK_EQ(r->tp.sack_gen[2].start, BASE + 100);
  /* a segment growing the middle range makes it first, grown */
  ins(r, BASE + 310, 10);
  CHECK_EQ(r->tp.sack_gen[0].start, BASE + 300);
  CHECK_EQ(r->tp.sack_gen[0].end, BASE + 320);
  CHECK_EQ(r->tp.sack_gen[1].start, BASE + 500);
  CHECK_EQ(r->tp.sack_gen[2].start, BASE + 100);
  /* five ranges: only the four most recent are remembered */
  ins(r, BASE + 700, 10);
  ins(r, BASE + 900, 10);
  CHECK_EQ(r->tp.sack_gen_count, 4);
  CHECK_EQ(r->tp.sack_gen[0].start, BASE + 900);
  CHECK_EQ(r->tp.sack_gen[1].start, BASE + 700);
  CHECK_EQ(r->tp.sack_gen[2].start, BASE + 300);
  CHECK_EQ(r->tp.sack_gen[3].start, BASE + 500);
  /* merging two listed ranges leaves one block for both */
  ins(r, BASE + 510, 190);
  CHECK_EQ(r->tp.sack_gen[0].start, BASE + 500);
  CHECK_EQ(r->tp.sack_gen[0].end, BASE + 710);
  CHECK_EQ(r->tp.sack_gen[1].start, BASE + 900);
  CHECK_EQ(r->tp.sack_gen[2].start, BASE + 300);
  CHECK_EQ(r->tp.sack_gen_count, 3);
  /* once rcv_nxt passes a range its block goes */
  struct toe_pbuf *p = seg(r, BASE, 320);
  toe_tcp_rcvq_append(r->h.st, &r->tp, p);
  r->tp.rcv_nxt += 320;
  CHECK_EQ(toe_tcp_reass_pull(r->h.st, &r->tp), 0);
  p = seg(r, BASE + 320, 180);
  toe_tcp_rcvq_append(r->h.st, &r->tp, p);
  r->tp.rcv_nxt += 180;
  CHECK_EQ(toe_tcp_reass_pull(r->h.st, &r->tp), 210);
  CHECK_EQ(r->tp.sack_gen_count, 1);
  CHECK_EQ(r->tp.sack_gen[0].start, BASE + 900);
  rq_free(r);
}

TEST(pull_trims_range_overlapping_in_order_data)
{
  struct rq *r = rq_new(512);
  ins(r, BASE + 100, 100);
  /* in-order data reaching into the queued range: the queued copy of those bytes goes */
  struct toe_pbuf *p = seg(r, BASE, 150);
  toe_tcp_rcvq_append(r->h.st, &r->tp, p);
  r->tp.rcv_nxt += 150;
  r->tp.flags &= ~TOE_TF_NEED_DSACK;
  CHECK_EQ(toe_tcp_reass_pull(r->h.st, &r->tp), 50);
  CHECK_EQ(r->tp.rcv_nxt, BASE + 200);
  CHECK(r->tp.flags & TOE_TF_NEED_DSACK);
  CHECK_EQ(r->tp.dsack.start, BASE + 100);
  CHECK_EQ(r->tp.dsack.end, BASE + 150);
  static uint8_t out[1000];
  CHECK_EQ(drain(r, out), 200);
  CHECK_MEM(out, r->src, 200);
  rq_free(r);
}

TEST(byte_bound_drops_new_data)
{
  struct rq *r = rq_new(512);
  r->tp.rcvbuf = 1000;
  r->tp.rcvq_bytes = 500; /* unread data counts against the buffer too */
  CHECK_EQ(ins(r, BASE + 100, 300), 300);
  uint64_t full = r->h.st->ctr.tcp.rx_drop_ooo_full;
  CHECK_EQ(ins(r, BASE + 600, 300), 0);
  CHECK_EQ(r->h.st->ctr.tcp.rx_drop_ooo_full, full + 1);
  CHECK_EQ(r->tp.ooo_bytes, 300);
  /* what fits still goes in */
  CHECK_EQ(ins(r, BASE + 600, 200), 200);
  r->tp.rcvq_bytes = 0;
  rq_free(r);
}

TEST(buffer_count_bound)
{
  /* One-byte segments with gaps each pin a buffer: the count bound stops them. */
  struct rq *r = rq_new(512);
  uint32_t max = toe_tcp_reass_max_bufs(r->h.st);
  CHECK(max >= 8 && max < 512);
  uint32_t i;
  for (i = 0; i < max; i++)
    CHECK_EQ(ins(r, BASE + 10 + 2 * i, 1), 1);
  CHECK_EQ(r->tp.ooo_count, max);
  uint64_t full = r->h.st->ctr.tcp.rx_drop_ooo_full;
  CHECK_EQ(ins(r, BASE + 10 + 2 * i, 1), 0);
  CHECK_EQ(r->h.st->ctr.tcp.rx_drop_ooo_full, full + 1);
  CHECK_EQ(r->tp.ooo_count, max);
  /* pool use is bounded: the queue holds max buffers, no more */
  CHECK_EQ(toe_pbuf_pool_free_count(r->h.st), 512 - max);
  /* a segment replacing queued ones is still accepted (it frees more than it takes): 19 new
   * bytes replace 9 queued ones */
  CHECK_EQ(ins(r, BASE + 10, 20), 10);
  CHECK(r->tp.ooo_count < max);
  rq_free(r);
}

TEST(ooo_fin_clips_data)
{
  struct rq *r = rq_new(512);
  r->tp.ooo_fin = 1;
  r->tp.ooo_fin_seq = BASE + 150;
  CHECK_EQ(ins(r, BASE + 100, 100), 50);
  CHECK_EQ(ins(r, BASE + 150, 10), 0);
  CHECK_EQ(r->tp.ooo_bytes, 50);
  rq_free(r);
}

TEST(chained_buffers_trimmed)
{
  /* Segments of 5000 bytes span three buffers: trimming crosses buffer boundaries. */
  struct rq *r = rq_new(512);
  CHECK_EQ(ins(r, BASE + 2000, 5000), 5000);
  CHECK_EQ(ins(r, BASE + 4000, 6000), 3000); /* the front 3000 bytes overlap: a buffer goes */
  CHECK_EQ(ins(r, BASE + 10, 1500), 1500);
  CHECK_EQ(ins(r, BASE + 500, 600), 0); /* bridges two ranges: all of it is held already */
  CHECK_EQ(ins(r, BASE + 1510, 100), 100);
  CHECK(contents_ok(r));
  uint32_t g[8][2];
  CHECK_EQ(ranges(r, g, 8), 2);
  struct toe_pbuf *p = seg(r, BASE, 10);
  toe_tcp_rcvq_append(r->h.st, &r->tp, p);
  r->tp.rcv_nxt += 10;
  CHECK_EQ(toe_tcp_reass_pull(r->h.st, &r->tp), 1600);
  static uint8_t out[20000];
  CHECK_EQ(drain(r, out), 1610);
  CHECK_MEM(out, r->src, 1610);
  rq_free(r);
}

/*
 * Random segments (duplicates, overlaps, reordering, chains) through the same steps as the input
 * path: in-order ones trimmed to rcv_nxt and appended, the others queued. The bytes delivered
 * must be the source, each exactly once, and the queue must never hold a byte twice.
 */
TEST(randomised_delivery_exact)
{
  for (unsigned round = 0; round < 6; round++) {
    struct rq *r = rq_new(1024);
    r->tp.flags = round & 1 ? TOE_TF_SACK_OK : 0;
    r->tp.rcvbuf = 1u << 24;
    toe_prng_seed(&rng_state, 1234 + round);
    const uint32_t total = 60000;
    static uint8_t out[200000];
    size_t got = 0;
    int steps = 0;
    while (r->tp.rcv_nxt != BASE + total && steps < 20000) {
      steps++;
      /* near rcv_nxt so progress is made, with jumps ahead and retransmissions behind */
      long o = (long)(r->tp.rcv_nxt - BASE);
      if (rnd() % 3 != 0)
        o += rnd() % 8000 - ((rnd() % 4 == 0) ? rnd() % 2000 : 0);
      if (o < 0)
        o = 0;
      if (o > (long)total - 1)
        o = (long)total - 1;
      uint32_t off = (uint32_t)o;
      uint32_t len = 1 + (uint32_t)(rnd() % (rnd() % 5 == 0 ? 4000 : 1460));
      if (off + len > total)
        len = total - off;
      uint32_t seq = BASE + off;
      struct toe_pbuf *p = toe_pbuf_from_bytes(r->h.st, r->src + off, len, 64);
      REQUIRE(p != NULL);
      if (toe_seq_le(seq, r->tp.rcv_nxt)) {
        uint32_t d = r->tp.rcv_nxt - seq;
        if (d >= len) {
          toe_pbuf_free(r->h.st, p);
          continue;
        }
        /* trim the front like the input path does */
        while (p->next && d >= p->len) {
          struct toe_pbuf *nx = p->next;
          d -= p->len;
          p->next = NULL;
          toe_pbuf_free(r->h.st, p);
          p = nx;
        }
        if (d)
          toe_pbuf_pull(p, (uint16_t)d);
        uint32_t n = p->tot_len;
        toe_tcp_rcvq_append(r->h.st, &r->tp, p);
        r->tp.rcv_nxt += n;
        toe_tcp_reass_pull(r->h.st, &r->tp);
      } else {
        toe_tcp_reass_insert(r->h.st, &r->tp, p, seq);
      }
      /* invariants: sorted, non-overlapping, non-adjacent ranges above rcv_nxt, right counts */
      uint32_t bytes = 0, bufs = 0, prev_end = r->tp.rcv_nxt;
      bool ok = true;
      for (struct toe_pbuf *e = r->tp.ooo_head; e; e = e->qnext) {
        uint32_t s = (uint32_t)e->meta[0];
        if (!toe_seq_gt(s, prev_end)) /* above rcv_nxt, and a gap after the previous range */
          ok = false;
        prev_end = s + e->tot_len;
        bytes += e->tot_len;
        for (struct toe_pbuf *b = e; b; b = b->next)
          bufs++;
      }
      CHECK(ok);
      CHECK_EQ(bytes, r->tp.ooo_bytes);
      CHECK_EQ(bufs, r->tp.ooo_count);
      for (unsigned k = 0; k < r->tp.sack_gen_count; k++)
        CHECK(toe_seq_gt(r->tp.sack_gen[k].start, r->tp.rcv_nxt));
      if (rnd() % 16 == 0)
        got += drain(r, out + got);
    }
    CHECK(contents_ok(r));
    got += drain(r, out + got);
    CHECK_EQ(r->tp.rcv_nxt, BASE + total);
    CHECK_EQ(got, total);
    CHECK_MEM(out, r->src, total);
    rq_free(r);
  }
}

TEST_MAIN()
