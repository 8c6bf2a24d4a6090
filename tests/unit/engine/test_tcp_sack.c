/*
 * The sender's scoreboard (tcp_sack.c) on a hand-made connection block: cumulative ACKs free and
 * trim segments, SACK blocks mark them (RFC 2018), D-SACK blocks are recognised (RFC 2883), the
 * byte totals behind pipe (RFC 6675) stay in step with the per-segment marks, RACK's state
 * (RFC 8985 6.2) and the RTT sample (RFC 6298, Karn) come out right, across sequence wrap.
 */
#include "engine/stack.h"
#include "engine/tcp.h"
#include "harness.h"
#include "testlib.h"

#include <stdio.h>
#include <string.h>

#define SEG 1000u

static struct harness H;
static struct toe_tcb T;
static uint32_t BASE; /* first data sequence number */
static int NSEG;

static uint8_t pat(uint32_t off)
{
  return (uint8_t)(off * 13u + 5u);
}

static struct toe_pbuf *mkseg(uint32_t seq, uint32_t off, uint32_t len, toe_time_t ts)
{
  struct toe_pbuf *p = toe_pbuf_alloc(H.st, 0);
  if (!p)
    return NULL;
  uint8_t *d = toe_pbuf_put(p, (uint16_t)len);
  for (uint32_t i = 0; i < len; i++)
    d[i] = pat(off + i);
  struct toe_tcp_seg *m = toe_tcp_seg(p);
  memset(m, 0, sizeof(*m));
  m->seq = seq;
  m->xmits = 1;
  m->xmit_ts = ts;
  return p;
}

static void append(struct toe_pbuf *p)
{
  p->qnext = NULL;
  if (T.sndq_tail)
    T.sndq_tail->qnext = p;
  else
    T.sndq_head = p;
  T.sndq_tail = p;
  T.sndq_bytes += p->tot_len;
}

/* A connection with `n` sent segments of SEG bytes from sequence iss + 1, sent 10 us apart and
 * ending 10 ms ago. */
static void setup(uint32_t iss, int n)
{
  h_init(&H);
  memset(&T, 0, sizeof(T));
  T.sk.proto = TOE_IPPROTO_TCP;
  T.state = TOE_TCP_ESTABLISHED;
  T.flags = TOE_TF_SACK_OK;
  T.snd_mss = SEG;
  T.iss = iss;
  T.sndbuf = 1u << 20;
  T.snd_wnd = 1u << 20;
  toe_tcp_timers_init(&T);
  T.cc = &toe_cc_newreno;
  toe_tcp_cc_init(H.st, &T);
  BASE = iss + 1;
  NSEG = n;
  toe_time_t now = toe_stack_now(H.st);
  for (int i = 0; i < n; i++)
    append(mkseg(BASE + (uint32_t)i * SEG, (uint32_t)i * SEG, SEG,
                 now - TOE_MSEC(10) - (toe_time_t)(n - i) * 10000u));
  T.snd_una = BASE;
  T.snd_max = T.snd_nxt = BASE + (uint32_t)n * SEG;
}

static void teardown(void)
{
  toe_timer_cancel(H.st, &T.timer);
  toe_pbuf_free_queue(H.st, T.sndq_head);
  T.sndq_head = T.sndq_tail = NULL;
  h_fini(&H);
}

static struct toe_pbuf *seg_at(int i)
{
  struct toe_pbuf *p = T.sndq_head;
  while (p && toe_tcp_seg(p)->seq != BASE + (uint32_t)i * SEG)
    p = p->qnext;
  return p;
}

static int count_segs(void)
{
  int n = 0;
  for (struct toe_pbuf *p = T.sndq_head; p; p = p->qnext)
    n++;
  return n;
}

static void ack(uint32_t a, int nblk, const uint32_t (*blk)[2])
{
  struct toe_tcp_opts o;
  memset(&o, 0, sizeof(o));
  if (nblk) {
    o.has = TOE_TCPOPT_HAS_SACK;
    o.sack_count = (uint8_t)nblk;
    for (int i = 0; i < nblk; i++) {
      o.sack[i].start = blk[i][0];
      o.sack[i].end = blk[i][1];
    }
  }
  toe_tcp_ack_process(H.st, &T, a, &o, 0);
}

static uint32_t S(int i)
{
  return BASE + (uint32_t)i * SEG;
}

/* The byte totals agree with the marks on the segments. */
static void check_totals(void)
{
  uint32_t sacked = 0, lost = 0, rx = 0, bytes = 0;
  for (struct toe_pbuf *p = T.sndq_head; p; p = p->qnext) {
    uint8_t f = toe_tcp_seg(p)->flags;
    bytes += p->tot_len;
    if (f & TOE_SEG_SACKED)
      sacked += p->tot_len;
    if (f & TOE_SEG_LOST)
      lost += p->tot_len;
    if (f & TOE_SEG_RXMIT)
      rx += p->tot_len;
  }
  CHECK_EQ(T.sacked_bytes, sacked);
  CHECK_EQ(T.lost_bytes, lost);
  CHECK_EQ(T.retrans_out, rx);
  CHECK_EQ(T.sndq_bytes, bytes);
}

TEST(cumulative_ack_frees_segments)
{
  setup(1000000, 10);
  uint32_t free0 = toe_pbuf_pool_free_count(H.st);
  ack(S(3), 0, NULL);
  CHECK_EQ(T.snd_una, S(3));
  CHECK_EQ(count_segs(), 7);
  CHECK_EQ(T.sndq_bytes, 7 * SEG);
  CHECK_EQ(toe_pbuf_pool_free_count(H.st), free0 + 3);
  CHECK_EQ(T.delivered, 3 * SEG);
  CHECK_EQ(T.bytes_acked, 3 * SEG);
  CHECK_EQ(T.ack_acked, 3 * SEG);
  CHECK(T.ack_flags & TOE_ACKF_UNA);
  CHECK_EQ(toe_tcp_seg(T.sndq_head)->seq, S(3));
  /* a duplicate ACK changes nothing */
  ack(S(3), 0, NULL);
  CHECK_EQ(count_segs(), 7);
  CHECK(!(T.ack_flags & TOE_ACKF_UNA));
  CHECK_EQ(T.ack_delivered, 0);
  /* everything */
  ack(S(10), 0, NULL);
  CHECK(T.sndq_head == NULL && T.sndq_tail == NULL);
  CHECK_EQ(T.sndq_bytes, 0);
  CHECK_EQ(toe_tcp_pipe(&T), 0);
  teardown();
}

TEST(ack_beyond_snd_max_ignored)
{
  setup(5000, 4);
  ack(S(4) + 1, 0, NULL);
  CHECK_EQ(T.snd_una, S(0));
  CHECK_EQ(count_segs(), 4);
  teardown();
}

TEST(partial_ack_trims_head)
{
  setup(77, 4);
  ack(S(1) + 300, 0, NULL);
  CHECK_EQ(T.snd_una, S(1) + 300);
  CHECK_EQ(count_segs(), 3);
  struct toe_pbuf *h = T.sndq_head;
  CHECK_EQ(toe_tcp_seg(h)->seq, S(1) + 300);
  CHECK_EQ(h->tot_len, SEG - 300);
  uint8_t buf[SEG];
  CHECK_EQ(toe_pbuf_copy_out(h, 0, buf, SEG - 300), SEG - 300);
  int bad = 0;
  for (uint32_t i = 0; i < SEG - 300; i++)
    bad += buf[i] != pat(SEG + 300 + i);
  CHECK_EQ(bad, 0);
  CHECK_EQ(T.delivered, SEG + 300);
  check_totals();
  teardown();
}

TEST(partial_ack_of_chained_segment)
{
  setup(1, 0);
  /* one 1000-byte segment in two buffers of 600 + 400 */
  struct toe_pbuf *a = mkseg(BASE, 0, 600, toe_stack_now(H.st) - TOE_MSEC(5));
  struct toe_pbuf *b = mkseg(0, 600, 400, 0);
  REQUIRE(a && b);
  toe_pbuf_cat(a, b);
  append(a);
  T.snd_max = T.snd_nxt = BASE + 1000;
  uint32_t free0 = toe_pbuf_pool_free_count(H.st);
  ack(BASE + 700, 0, NULL);
  CHECK_EQ(T.sndq_head->tot_len, 300);
  CHECK_EQ(toe_tcp_seg(T.sndq_head)->seq, BASE + 700);
  uint8_t buf[300];
  CHECK_EQ(toe_pbuf_copy_out(T.sndq_head, 0, buf, 300), 300);
  int bad = 0;
  for (uint32_t i = 0; i < 300; i++)
    bad += buf[i] != pat(700 + i);
  CHECK_EQ(bad, 0);
  /* the emptied first buffer goes back to the pool; the segment's meta moved to the second */
  CHECK_EQ(toe_pbuf_pool_free_count(H.st), free0 + 1);
  ack(BASE + 1000, 0, NULL);
  CHECK(T.sndq_head == NULL);
  CHECK_EQ(toe_pbuf_pool_free_count(H.st), free0 + 2);
  teardown();
}

TEST(sack_marks_whole_segments)
{
  setup(1000, 10);
  uint32_t flight = 10 * SEG;
  const uint32_t b1[][2] = {{S(2), S(4)}};
  ack(S(0), 1, b1);
  CHECK(toe_tcp_seg(seg_at(2))->flags & TOE_SEG_SACKED);
  CHECK(toe_tcp_seg(seg_at(3))->flags & TOE_SEG_SACKED);
  CHECK(!(toe_tcp_seg(seg_at(1))->flags & TOE_SEG_SACKED));
  CHECK(!(toe_tcp_seg(seg_at(4))->flags & TOE_SEG_SACKED));
  CHECK_EQ(T.sacked_bytes, 2 * SEG);
  CHECK_EQ(T.sacked_segs, 2);
  CHECK_EQ(T.high_sacked, S(4));
  CHECK_EQ(T.delivered, 2 * SEG);
  CHECK(T.ack_flags & TOE_ACKF_SACKED);
  CHECK_EQ(toe_tcp_pipe(&T), flight - 2 * SEG);
  /* the same block again: nothing new */
  ack(S(0), 1, b1);
  CHECK(!(T.ack_flags & TOE_ACKF_SACKED));
  CHECK_EQ(T.sacked_bytes, 2 * SEG);
  /* a block that covers a segment partly does not mark it */
  const uint32_t b2[][2] = {{S(5) + 500, S(7)}, {S(2), S(4)}};
  ack(S(0), 2, b2);
  CHECK(!(toe_tcp_seg(seg_at(5))->flags & TOE_SEG_SACKED));
  CHECK(toe_tcp_seg(seg_at(6))->flags & TOE_SEG_SACKED);
  CHECK_EQ(T.sacked_bytes, 3 * SEG);
  /* the cumulative ACK passes the SACKed segments: totals return to zero */
  ack(S(7), 0, NULL);
  CHECK_EQ(T.sacked_bytes, 0);
  CHECK_EQ(T.sacked_segs, 0);
  CHECK_EQ(T.delivered, 7 * SEG); /* SACKed bytes are not delivered twice */
  check_totals();
  teardown();
}

TEST(sack_blocks_unsorted_and_many)
{
  setup(1000, 12);
  const uint32_t b[][2] = {{S(9), S(10)}, {S(1), S(2)}, {S(5), S(7)}, {S(3), S(4)}};
  ack(S(0), 4, b);
  int marked = 0;
  for (int i = 0; i < 12; i++)
    marked += (toe_tcp_seg(seg_at(i))->flags & TOE_SEG_SACKED) != 0;
  CHECK_EQ(marked, 5);
  CHECK(toe_tcp_seg(seg_at(9))->flags & TOE_SEG_SACKED);
  CHECK(toe_tcp_seg(seg_at(6))->flags & TOE_SEG_SACKED);
  CHECK_EQ(T.high_sacked, S(10));
  check_totals();
  teardown();
}

TEST(invalid_sack_blocks_ignored)
{
  setup(1000, 10);
  const struct toe_counters_tcp *c = &toe_stack_counters(H.st)->tcp;
  uint64_t inv0 = c->rec_sack_invalid;
  /* beyond SND.MAX; empty; reversed */
  const uint32_t b[][2] = {{S(5), S(6)}, {S(9), S(12)}, {S(3), S(3)}, {S(8), S(7)}};
  ack(S(0), 4, b);
  CHECK_EQ(c->rec_sack_invalid, inv0 + 3);
  CHECK_EQ(T.sacked_bytes, SEG);
  CHECK(!(toe_tcp_seg(seg_at(9))->flags & TOE_SEG_SACKED));
  check_totals();
  teardown();
}

TEST(dsack_detected)
{
  setup(1000, 10);
  const struct toe_counters_tcp *c = &toe_stack_counters(H.st)->tcp;
  ack(S(3), 0, NULL);
  /* RFC 2883 4 case 1: first block below the cumulative ACK */
  const uint32_t b1[][2] = {{S(1), S(2)}, {S(5), S(6)}};
  T.rec_flags |= TOE_RECF_UNDO;
  T.undo_marker = S(0);
  T.undo_rxt_high = S(3);
  T.undo_retrans = 3 * SEG;
  ack(S(3), 2, b1);
  CHECK(T.ack_flags & TOE_ACKF_DSACK);
  CHECK_EQ(c->rec_dsacks_rcvd, 1);
  CHECK_EQ(T.undo_retrans, 2 * SEG); /* one retransmission reported as unnecessary */
  CHECK(toe_tcp_seg(seg_at(5))->flags & TOE_SEG_SACKED);
  /* case 2: first block inside the second */
  const uint32_t b2[][2] = {{S(7), S(8)}, {S(6), S(9)}};
  ack(S(3), 2, b2);
  CHECK(T.ack_flags & TOE_ACKF_DSACK);
  CHECK_EQ(c->rec_dsacks_rcvd, 2);
  CHECK(toe_tcp_seg(seg_at(6))->flags & TOE_SEG_SACKED); /* the second block still counts */
  CHECK_EQ(T.undo_retrans, 2 * SEG); /* beyond what the episode retransmitted: not counted */
  CHECK(toe_tcp_seg(seg_at(8))->flags & TOE_SEG_SACKED);
  /* an ordinary first block is not a D-SACK */
  const uint32_t b3[][2] = {{S(4), S(5)}};
  ack(S(3), 1, b3);
  CHECK(!(T.ack_flags & TOE_ACKF_DSACK));
  CHECK_EQ(c->rec_dsacks_rcvd, 2);
  check_totals();
  teardown();
}

TEST(lost_marks_and_pipe)
{
  setup(1000, 10);
  struct toe_pbuf *s1 = seg_at(1), *s2 = seg_at(2);
  CHECK(toe_tcp_mark_lost(H.st, &T, s1));
  CHECK(!toe_tcp_mark_lost(H.st, &T, s1)); /* already */
  CHECK(toe_tcp_mark_lost(H.st, &T, s2));
  CHECK_EQ(T.lost_bytes, 2 * SEG);
  CHECK_EQ(toe_tcp_pipe(&T), 8 * SEG);
  /* a retransmission of 1 in flight counts again */
  toe_tcp_seg(s1)->flags |= TOE_SEG_RXMIT | TOE_SEG_RETRANS;
  T.retrans_out += SEG;
  CHECK_EQ(toe_tcp_pipe(&T), 9 * SEG);
  check_totals();
  /* that retransmission is lost too */
  CHECK(toe_tcp_mark_lost(H.st, &T, s1));
  CHECK_EQ(T.retrans_out, 0);
  CHECK_EQ(T.lost_bytes, 2 * SEG);
  check_totals();
  /* SACK of a lost segment clears the mark */
  const uint32_t b[][2] = {{S(2), S(3)}};
  ack(S(0), 1, b);
  CHECK(!(toe_tcp_seg(s2)->flags & TOE_SEG_LOST));
  CHECK_EQ(T.lost_bytes, SEG);
  CHECK_EQ(T.sacked_bytes, SEG);
  CHECK(!toe_tcp_mark_lost(H.st, &T, s2)); /* SACKed: never lost */
  /* the cumulative ACK removes the rest */
  ack(S(3), 0, NULL);
  CHECK_EQ(T.lost_bytes, 0);
  CHECK_EQ(T.sacked_bytes, 0);
  CHECK_EQ(toe_tcp_pipe(&T), 7 * SEG);
  check_totals();
  teardown();
}

TEST(rack_follows_most_recent_delivery)
{
  setup(1000, 10);
  toe_time_t now = toe_stack_now(H.st);
  const uint32_t b[][2] = {{S(5), S(6)}};
  ack(S(0), 1, b);
  struct toe_tcp_seg *s5 = toe_tcp_seg(seg_at(5));
  CHECK_EQ(T.rack_xmit_ts, s5->xmit_ts);
  CHECK_EQ(T.rack_end_seq, S(6));
  CHECK_EQ(T.rack_rtt_us, (now - s5->xmit_ts) / 1000u);
  CHECK_EQ(T.rack_fack, S(6));
  CHECK(!(T.rec_flags & TOE_RECF_REORDER));
  /* an older segment delivered later does not move RACK.xmit_ts */
  const uint32_t b2[][2] = {{S(2), S(3)}, {S(5), S(6)}};
  ack(S(0), 2, b2);
  CHECK_EQ(T.rack_xmit_ts, s5->xmit_ts);
  /* ... but being delivered after segment 5 without a retransmission, it shows reordering
   * (RFC 8985 6.2 step 3) */
  CHECK(T.rec_flags & TOE_RECF_REORDER);
  teardown();
}

TEST(no_reordering_from_retransmitted_segments)
{
  setup(1000, 10);
  const uint32_t b[][2] = {{S(5), S(6)}};
  ack(S(0), 1, b);
  struct toe_tcp_seg *s0 = toe_tcp_seg(seg_at(0));
  s0->flags |= TOE_SEG_RETRANS; /* repaired by a retransmission */
  s0->xmit_ts = toe_stack_now(H.st) - TOE_MSEC(20);
  ack(S(1), 1, b);
  CHECK(!(T.rec_flags & TOE_RECF_REORDER));
  teardown();
}

TEST(rtt_sample_karn)
{
  setup(1000, 10);
  toe_time_t now = toe_stack_now(H.st);
  struct toe_tcp_seg *s0 = toe_tcp_seg(seg_at(0));
  uint32_t expect = (uint32_t)((now - s0->xmit_ts) / 1000u);
  ack(S(2), 0, NULL);
  CHECK_EQ(T.ack_rtt_us, expect); /* the earliest segment the ACK covers */
  CHECK_EQ(T.min_rtt_us, expect);
  /* a retransmitted segment gives no sample (no timestamps here) */
  toe_tcp_seg(seg_at(2))->flags |= TOE_SEG_RETRANS;
  ack(S(3), 0, NULL);
  CHECK_EQ(T.ack_rtt_us, 0);
  /* a SACKed one does */
  const uint32_t b[][2] = {{S(6), S(7)}};
  ack(S(3), 1, b);
  CHECK(T.ack_rtt_us > 0);
  teardown();
}

TEST(sequence_wrap)
{
  setup(0xfffff000u, 10); /* the data runs across 2^32 */
  CHECK(S(9) < S(0));
  const uint32_t b[][2] = {{S(6), S(8)}};
  ack(S(3), 1, b);
  CHECK_EQ(T.snd_una, S(3));
  CHECK_EQ(count_segs(), 7);
  CHECK_EQ(T.sacked_bytes, 2 * SEG);
  CHECK(toe_tcp_seg(seg_at(6))->flags & TOE_SEG_SACKED);
  CHECK_EQ(T.high_sacked, S(8));
  CHECK_EQ(toe_tcp_pipe(&T), 5 * SEG);
  const uint32_t d[][2] = {{S(1), S(2)}};
  ack(S(3), 1, d);
  CHECK(T.ack_flags & TOE_ACKF_DSACK);
  ack(S(10), 0, NULL);
  CHECK(T.sndq_head == NULL);
  CHECK_EQ(T.sacked_bytes, 0);
  teardown();
}

TEST(writable_after_space_frees)
{
  setup(1000, 10);
  T.sndbuf = 10 * SEG;
  T.flags |= TOE_TF_WRITABLE_WAIT;
  ack(S(1), 0, NULL); /* 10 % free: below the low-water mark */
  CHECK(T.flags & TOE_TF_WRITABLE_WAIT);
  ack(S(5), 0, NULL); /* half free */
  CHECK(!(T.flags & TOE_TF_WRITABLE_WAIT));
  teardown();
}

/*
 * A peer with a tiny MSS (issue 12, the CVE-2019-11478 class): 4,000 sent segments of 48 bytes,
 * the first one lost, and an ACK per arriving segment whose SACK block grows by one segment.
 * Marking the new segment, RACK's loss scan and the lost-segment retransmission must cost each
 * ACK a bounded number of segment visits (tp->sack_walk counts them), not the queue length, and
 * the scoreboard must stay exact. On the old code each ACK walked the whole SACKed block.
 */
TEST(tiny_mss_sack_work_is_bounded)
{
  enum { N = 4000, LEN = 48 };
  struct toe_config cfg;
  h_default_cfg(&cfg);
  cfg.pbuf_count = N + 512;
  h_init_cfg(&H, &cfg);
  memset(&T, 0, sizeof(T));
  T.sk.proto = TOE_IPPROTO_TCP;
  T.state = TOE_TCP_ESTABLISHED;
  T.flags = TOE_TF_SACK_OK;
  T.snd_mss = LEN;
  T.iss = 1000;
  T.sndbuf = 1u << 22;
  T.snd_wnd = 1u << 22;
  toe_tcp_timers_init(&T);
  T.cc = &toe_cc_newreno;
  toe_tcp_cc_init(H.st, &T);
  BASE = T.iss + 1;
  toe_time_t now = toe_stack_now(H.st);
  for (uint32_t i = 0; i < N; i++) {
    struct toe_pbuf *p = mkseg(BASE + i * LEN, i * LEN, LEN, now - TOE_MSEC(50) + i);
    REQUIRE(p != NULL);
    append(p);
  }
  T.snd_una = BASE;
  T.snd_max = T.snd_nxt = BASE + N * LEN;
  T.cwnd = N * LEN;

  uint32_t worst = 0;
  for (uint32_t k = 1; k < N; k++) {
    uint32_t blk[1][2] = {{BASE + LEN, BASE + (k + 1) * LEN}};
    uint32_t before = T.sack_walk;
    ack(BASE, 1, blk);
    toe_tcp_recovery_on_ack(H.st, &T, 0, true);
    uint32_t w = T.sack_walk - before;
    if (w > worst)
      worst = w;
  }
  /* every segment but the first is SACKed, exactly once */
  CHECK_EQ(T.sacked_bytes, (N - 1) * LEN);
  CHECK_EQ(T.sacked_segs, N - 1);
  CHECK(toe_tcp_seg(T.sndq_head)->flags & TOE_SEG_LOST);
  CHECK(!(toe_tcp_seg(T.sndq_head)->flags & TOE_SEG_SACKED));
  check_totals();
  /* a handful of visits per ACK (the hole, the run's two ends, the new segment), whatever N */
  CHECK(worst <= 12);
  if (worst > 12)
    fprintf(stderr, "  worst visits per ACK: %u (queue %d)\n", worst, N);
  /* the repair: the cumulative ACK covers everything and frees the queue and the run */
  ack(BASE + N * LEN, 0, NULL);
  CHECK(T.sndq_head == NULL);
  CHECK(T.sack_run_start == NULL && T.sack_run_end == NULL);
  teardown();
}

TEST_MAIN()
