/*
 * Receive bursts (toe_stack_burst_begin/_end: the frames a driver took from its ring in one go):
 * one ACK and one output decision per connection per burst, as GRO gives the kernel. What must be
 * acknowledged at once still is, segment by segment (out-of-order data and the segment filling
 * the hole: RFC 5681 4.2, RFC 9293 3.10.7.4); in-order data is acknowledged at least once per
 * GRO super-frame's worth (64 KiB) and per quarter window, each super-frame of two or more
 * segments at once, every segment of the quick-ACK start; a lone segment still waits for the
 * delayed-ACK timer (RFC 1122 4.2.3.2). The frames are hand-built, the clock virtual.
 */
#include "engine/stack.h"
#include "engine/tcp.h"
#include "harness.h"
#include "tcp_harness.h"
#include "testlib.h"

#include <string.h>

static struct harness h; /* big: keep it off the stack */
static uint8_t pattern[1 << 17];
static uint8_t buf[1 << 18];

static const struct toe_counters_tcp *tc(void)
{
  return &toe_stack_counters(h.st)->tcp;
}

/* A connection past the quick-ACK start (its first 16 segments are acknowledged one by one),
 * everything read, nothing captured. */
static int conn_past_quickack(struct h_conn *c, uint16_t port)
{
  for (size_t i = 0; i < sizeof(pattern); i++)
    pattern[i] = (uint8_t)(i * 7 + 3);
  h_conn_init(c, &h, port);
  if (h_conn_connect(c, 0) != 0)
    return -1;
  for (int i = 0; i < 16; i++)
    h_conn_send(c, H_ACK, pattern, 1448);
  h_conn_read(c, buf, sizeof(buf));
  h_clear(&h);
  return 0;
}

/* Our pure ACKs (no data, no SYN/FIN/RST) of connection c captured at index >= from. */
static int acks_since(const struct h_conn *c, int from)
{
  int n = 0;
  for (int i = from; i < h.ntx; i++) {
    struct h_tcp t;
    if (h_tcp_parse(h.tx[i].bytes, h.tx[i].len, &t) && t.dport == c->pport && t.dlen == 0 &&
        t.flags == H_ACK)
      n++;
  }
  return n;
}

TEST(in_order_segments_of_one_burst_get_one_ack)
{
  h_init(&h);
  struct h_conn c;
  REQUIRE(conn_past_quickack(&c, 6101) == 0);
  /* the same eight segments outside a burst: an ACK for every second one */
  for (int i = 0; i < 8; i++)
    h_conn_send(&c, H_ACK, pattern + i * 1448, 1448);
  CHECK_EQ(acks_since(&c, 0), 4);
  h_conn_read(&c, buf, sizeof(buf));
  h_clear(&h);

  uint64_t deferred0 = tc()->out_burst_deferred;
  toe_stack_burst_begin(h.st);
  for (int i = 0; i < 8; i++)
    h_conn_send(&c, H_ACK, pattern + i * 1448, 1448);
  CHECK_EQ(h_tcp_count(&h), 0); /* nothing before the burst ends */
  CHECK(h.st->tcp.out_head != NULL);
  toe_stack_burst_end(h.st);
  CHECK(h.st->tcp.out_head == NULL);
  REQUIRE(h_tcp_count(&h) == 1);
  struct h_tcp a;
  REQUIRE(h_conn_last(&c, &a));
  CHECK_EQ(a.flags, H_ACK);
  CHECK_EQ(a.ack, c.snd_nxt); /* all eight */
  CHECK_EQ(tc()->out_burst_deferred, deferred0 + 8);
  CHECK_EQ(h_conn_read(&c, buf, sizeof(buf)), 8 * 1448);
  CHECK_MEM(buf, pattern, 8 * 1448);

  /* a burst of one segment: the ACK is delayed, as without bursts (RFC 1122 4.2.3.2) */
  h_clear(&h);
  toe_stack_burst_begin(h.st);
  h_conn_send(&c, H_ACK, pattern, 1448);
  toe_stack_burst_end(h.st);
  CHECK_EQ(h_tcp_count(&h), 0);
  h_advance(&h, TOE_MSEC(39));
  CHECK_EQ(h_tcp_count(&h), 0);
  h_advance(&h, TOE_MSEC(1));
  REQUIRE(h_tcp_count(&h) == 1);
  REQUIRE(h_conn_last(&c, &a));
  CHECK_EQ(a.ack, c.snd_nxt);
  h_fini(&h);
}

/* A long burst of single-segment frames: an ACK before the next segment would take the
 * unacknowledged data past 64 KiB (where GRO closes a super-frame and the kernel acknowledges it),
 * then one for the rest at the end. 100 segments: ACKs at 45 and 90, and one at the end. */
TEST(a_long_burst_is_acknowledged_every_gro_frame_worth)
{
  struct toe_config cfg;
  h_default_cfg(&cfg);
  cfg.tcp_rcvbuf = 1u << 20; /* a quarter of the window is more than 64 KiB */
  cfg.pbuf_count = 2048;
  cfg.sock_max_bufs = 1024;
  h_init_cfg(&h, &cfg);
  struct h_conn c;
  REQUIRE(conn_past_quickack(&c, 6102) == 0);
  struct h_tcp a;
  /* our window must take the whole burst, and its quarter must not be the rule that acts */
  REQUIRE(h_tcp_count(&h) == 0);
  REQUIRE(toe_tcb(c.s)->rcv_wnd >= 4u * 65535u);
  uint32_t start = c.snd_nxt;
  toe_stack_burst_begin(h.st);
  for (int i = 0; i < 100; i++) {
    h_conn_send(&c, H_ACK, pattern + (i % 64) * 1448, 1448);
    /* 45 segments are 65,160 bytes: a 46th would make 66,608 > 65,535 */
    CHECK_EQ(h_tcp_count(&h), (i + 1) / 45);
    if (i + 1 == 45) {
      REQUIRE(h_conn_last(&c, &a));
      CHECK_EQ(a.ack, start + 45u * 1448u);
    }
  }
  REQUIRE(h_conn_last(&c, &a));
  CHECK_EQ(a.ack, start + 90u * 1448u);
  toe_stack_burst_end(h.st);
  REQUIRE(h_tcp_count(&h) == 3);
  REQUIRE(h_conn_last(&c, &a));
  CHECK_EQ(a.ack, c.snd_nxt);
  CHECK_EQ(acks_since(&c, 0), 3);
  h_fini(&h);
}

/* Super-frames (GSO from a kernel peer, LRO): each carries two or more full-sized segments and
 * gets its own ACK at once, as the kernel acknowledges each GRO frame (RFC 5681 4.2's "every
 * second full-sized segment"; a stretch ACK for two super-frames would halve the ACKs the peer's
 * congestion control counts on). Nothing is left for the burst's end. */
TEST(each_super_frame_of_a_burst_gets_its_own_ack)
{
  h_init(&h);
  struct h_conn c;
  REQUIRE(conn_past_quickack(&c, 6107) == 0);
  REQUIRE(toe_tcb(c.s)->rcv_wnd >= 3u * 30u * 1448u);
  struct h_tcp a;
  toe_stack_burst_begin(h.st);
  for (int k = 1; k <= 3; k++) {
    h_conn_send(&c, H_ACK, pattern + (k - 1) * 30 * 1448, 30u * 1448u);
    REQUIRE(h_tcp_count(&h) == k);
    REQUIRE(h_conn_last(&c, &a));
    CHECK_EQ(a.flags, H_ACK);
    CHECK_EQ(a.ack, c.snd_nxt);
  }
  /* a super-frame of exactly two full-sized segments too (the super-frames made the largest
   * segment seen our MSS, 1460: the harness's connection has no timestamps) */
  REQUIRE(toe_tcb(c.s)->rcv_seg_max == 1460);
  h_conn_send(&c, H_ACK, pattern, 2u * 1460u);
  CHECK_EQ(h_tcp_count(&h), 4);
  toe_stack_burst_end(h.st);
  CHECK_EQ(h_tcp_count(&h), 4);
  CHECK_EQ(h_conn_read(&c, buf, sizeof(buf)), 90 * 1448 + 2 * 1460);
  CHECK_MEM(buf, pattern, 90 * 1448);
  h_fini(&h);
}

/* A small window: an ACK whenever a quarter of the window last advertised is unacknowledged, so
 * the peer, which may send no more than the window, keeps its ACK clock within one burst. Nothing
 * is read here, so each ACK advertises less and the next comes sooner: 32,768 / 4 = 8,192 bytes
 * take 6 segments, then 24,080 / 4 takes 5, 16,840 / 4 and 12,496 / 4 take 3, 8,152 / 4 takes 2
 * (two full-sized segments being the least an ACK waits for). */
TEST(a_small_window_is_acknowledged_every_quarter)
{
  static const int want[20] = {0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 5, 5};
  struct toe_config cfg;
  h_default_cfg(&cfg);
  cfg.tcp_rcvbuf = 32768;
  cfg.tcp_rcvbuf_max = 32768;
  h_init_cfg(&h, &cfg);
  struct h_conn c;
  REQUIRE(conn_past_quickack(&c, 6108) == 0);
  REQUIRE(toe_tcb(c.s)->rcv_wnd == 32768u);
  toe_stack_burst_begin(h.st);
  for (int i = 0; i < 20; i++) {
    h_conn_send(&c, H_ACK, pattern + i * 1448, 1448);
    CHECK_EQ(h_tcp_count(&h), want[i]);
  }
  toe_stack_burst_end(h.st);
  CHECK_EQ(acks_since(&c, 0), 5); /* the 20th segment alone waits for the delayed-ACK timer */
  h_advance(&h, TOE_MSEC(40));
  CHECK_EQ(acks_since(&c, 0), 6);
  CHECK_EQ(h_conn_read(&c, buf, sizeof(buf)), 20 * 1448);
  CHECK_MEM(buf, pattern, 20 * 1448);
  h_fini(&h);
}

/* The quick-ACK start (a connection's first 16 segments, Linux's quickack) is not coalesced:
 * every segment is acknowledged as it comes, in a burst as outside one, since the peer's slow
 * start grows with each ACK. From the 17th segment on, the burst's ACK waits for its end. */
TEST(the_quick_ack_start_is_not_coalesced)
{
  h_init(&h);
  for (size_t i = 0; i < sizeof(pattern); i++)
    pattern[i] = (uint8_t)(i * 7 + 3);
  struct h_conn c;
  h_conn_init(&c, &h, 6109);
  REQUIRE(h_conn_connect(&c, 0) == 0);
  h_clear(&h);
  toe_stack_burst_begin(h.st);
  for (int i = 0; i < 20; i++) {
    h_conn_send(&c, H_ACK, pattern + i * 1448, 1448);
    CHECK_EQ(h_tcp_count(&h), i < 16 ? i + 1 : 16);
  }
  toe_stack_burst_end(h.st);
  CHECK_EQ(acks_since(&c, 0), 17);
  struct h_tcp a;
  REQUIRE(h_conn_last(&c, &a));
  CHECK_EQ(a.ack, c.snd_nxt);
  h_fini(&h);
}

/* Out-of-order data in a burst is acknowledged at once, each segment (duplicate ACKs with SACK
 * blocks: the peer's fast retransmit counts them), and so is the segment that fills the hole. */
TEST(out_of_order_in_a_burst_is_acknowledged_at_once)
{
  h_init(&h);
  struct h_conn c;
  REQUIRE(conn_past_quickack(&c, 6103) == 0);
  struct h_tcp a;
  toe_stack_burst_begin(h.st);
  h_conn_send(&c, H_ACK, pattern, 1448); /* in order: waits for the end */
  CHECK_EQ(h_tcp_count(&h), 0);
  uint32_t hole = c.snd_nxt;
  c.snd_nxt += 1448; /* the next segment is "lost" */
  h_conn_send(&c, H_ACK, pattern + 2 * 1448, 1448);
  REQUIRE(h_tcp_count(&h) == 1);
  REQUIRE(h_conn_last(&c, &a));
  CHECK_EQ(a.ack, hole);
  CHECK_EQ(a.nsack, 1);
  h_conn_send(&c, H_ACK, pattern + 3 * 1448, 1448);
  REQUIRE(h_tcp_count(&h) == 2);
  REQUIRE(h_conn_last(&c, &a));
  CHECK_EQ(a.ack, hole);
  CHECK_EQ(a.nsack, 1);
  CHECK_EQ(a.sack[0][1] - a.sack[0][0], 2u * 1448u);
  h_conn_send_at(&c, hole, H_ACK, pattern + 1448, 1448); /* fills the hole */
  REQUIRE(h_tcp_count(&h) == 3);
  REQUIRE(h_conn_last(&c, &a));
  CHECK_EQ(a.ack, c.snd_nxt);
  CHECK_EQ(a.nsack, 0);
  toe_stack_burst_end(h.st);
  CHECK_EQ(h_tcp_count(&h), 3); /* nothing more owed */
  CHECK_EQ(h_conn_read(&c, buf, sizeof(buf)), 4 * 1448);
  CHECK_MEM(buf, pattern, 4 * 1448);
  h_fini(&h);
}

/* The sending side: the ACKs of one burst release new data once, at the end: with TSO, one
 * super-segment instead of one per ACK. */
TEST(acks_of_one_burst_send_once_at_its_end)
{
  struct toe_config cfg;
  h_default_cfg(&cfg);
  cfg.pbuf_count = 2048;
  cfg.sock_max_bufs = 1024;
  cfg.link_caps |= TOE_LINK_CAP_TX_CSUM | TOE_LINK_CAP_TSO;
  h_init_cfg(&h, &cfg);
  for (size_t i = 0; i < sizeof(pattern); i++)
    pattern[i] = (uint8_t)(i * 7 + 3);
  struct h_conn c;
  h_conn_init(&c, &h, 6104);
  REQUIRE(h_conn_connect(&c, 0) == 0);
  struct toe_tcb *tp = toe_tcb(c.s);
  REQUIRE(toe_tcp_send(h.st, c.s, pattern, 40 * 1448, 0) == 40 * 1448);
  uint32_t sent0 = tp->snd_max - tp->snd_una; /* the initial window */
  REQUIRE(sent0 > 0 && sent0 < 40u * 1448u);
  h_clear(&h);
  toe_stack_burst_begin(h.st);
  for (int k = 1; k <= 4; k++) {
    /* the peer acknowledges two segments at a time, as a kernel receiver does */
    c.rcv_nxt = tp->snd_una + 2u * 1448u;
    h_conn_send_raw(&c, c.snd_nxt, c.rcv_nxt, H_ACK, c.win, NULL, NULL, 0);
  }
  CHECK_EQ(h_tcp_count(&h), 0); /* without the burst: new data after every ACK */
  toe_stack_burst_end(h.st);
  REQUIRE(h_tcp_count(&h) == 1); /* one super-segment for all four ACKs */
  struct h_tcp a;
  REQUIRE(h_conn_last(&c, &a));
  CHECK_EQ(a.seq, c.rcv_nxt + sent0 - 8u * 1448u);
  CHECK(a.dlen >= 8u * 1448u); /* at least what the ACKs freed, slow start adds more */
  CHECK_EQ(a.dlen % 1448u, 0);
  CHECK_MEM(a.data, pattern + (a.seq - c.iss - 1u), a.dlen);
  h_fini(&h);
}

/* A connection reset in the middle of a burst leaves the burst's list: its deferred output
 * never runs, and the burst's end sends nothing for it. */
TEST(a_connection_reset_mid_burst_leaves_the_list)
{
  h_init(&h);
  struct h_conn c;
  REQUIRE(conn_past_quickack(&c, 6105) == 0);
  toe_stack_burst_begin(h.st);
  h_conn_send(&c, H_ACK, pattern, 1448);
  REQUIRE(h.st->tcp.out_head == toe_tcb(c.s));
  h_conn_send(&c, H_RST | H_ACK, NULL, 0);
  CHECK(h.st->tcp.out_head == NULL);
  toe_stack_burst_end(h.st);
  CHECK_EQ(h_tcp_count(&h), 0);
  CHECK_EQ(toe_tcp_send(h.st, c.s, "x", 1, 0) < 0, 1);
  toe_sock_close(h.st, c.s);
  /* and a poll with a burst left open ends it (its output must not wait longer) */
  struct h_conn d;
  REQUIRE(conn_past_quickack(&d, 6106) == 0);
  toe_stack_burst_begin(h.st);
  for (int i = 0; i < 4; i++)
    h_conn_send(&d, H_ACK, pattern, 1448);
  CHECK_EQ(h_tcp_count(&h), 0);
  toe_stack_poll(h.st, toe_stack_now(h.st));
  CHECK_EQ(h_tcp_count(&h), 1);
  CHECK_EQ(h.st->tcp.in_burst, 0);
  h_fini(&h);
}

TEST_MAIN()
