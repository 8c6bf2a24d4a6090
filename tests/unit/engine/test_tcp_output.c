/*
 * TCP output seen on the wire: SYN options, segment sizes, Nagle (RFC 9293 3.7.4) and NODELAY,
 * TOE_SEND_MORE, the peer's window and sender SWS avoidance (3.8.6.2.1), receiver SWS avoidance
 * and window updates (3.8.6.2.2), window scaling, delayed ACKs (RFC 1122 4.2.3.2), SACK and
 * D-SACK blocks, the FIN after data, and RSTs for segments to no socket (3.10.7.1).
 */
#include "engine/stack.h"
#include "engine/tcp.h"
#include "harness.h"
#include "tcp_harness.h"
#include "testlib.h"
#include "wire/checksum.h"

#include <string.h>

static struct harness h; /* big: keep it off the stack */
static uint8_t pattern[1 << 17];

static const struct toe_counters_tcp *tc(void)
{
  return &toe_stack_counters(h.st)->tcp;
}

static void fill_pattern(void)
{
  for (size_t i = 0; i < sizeof(pattern); i++)
    pattern[i] = (uint8_t)(i * 7 + 3);
}

/* Our data segments of connection `c` captured at index >= from, in order. */
static int data_segs(const struct h_conn *c, int from, struct h_tcp *out, int max)
{
  int n = 0;
  for (int i = from; i < h.ntx && n < max; i++) {
    struct h_tcp t;
    if (!h_tcp_parse(h.tx[i].bytes, h.tx[i].len, &t) || t.dport != c->pport || t.dlen == 0)
      continue;
    out[n++] = t;
  }
  return n;
}

/* The peer acknowledges everything we sent so far, with window field `win`. */
static void ack_all(struct h_conn *c, uint16_t win)
{
  c->rcv_nxt = toe_tcb(c->s)->snd_max;
  h_conn_send_raw(c, c->snd_nxt, c->rcv_nxt, H_ACK, win, NULL, NULL, 0);
}

/* TOE_LINK_CAP_TX_CSUM: every TCP segment leaves marked for the link to complete its checksum
 * (pseudo-header sum in the field, csum_start at the TCP header, csum_offset 16); completed as a
 * NIC would (the harness does), each one is valid and carries the right payload. Without the
 * capability nothing is marked and the engine's own checksums are valid. */
TEST(tx_csum_offload_marks_segments)
{
  for (int offload = 0; offload < 2; offload++) {
    struct toe_config cfg;
    h_default_cfg(&cfg);
    if (offload)
      cfg.link_caps |= TOE_LINK_CAP_TX_CSUM;
    h_init_cfg(&h, &cfg);
    fill_pattern();
    struct h_conn c;
    h_conn_init(&c, &h, 6011);
    REQUIRE(h_conn_connect(&c, 0) == 0);
    CHECK_EQ(toe_tcp_send(h.st, c.s, pattern, 5001, 0), 5001); /* an odd tail */
    struct h_tcp d[8];
    int n = data_segs(&c, 0, d, 8);
    REQUIRE(n == 4);
    size_t off = 0;
    for (int i = 0; i < n; i++) {
      CHECK(d[i].csum_ok);
      CHECK_MEM(d[i].data, pattern + off, d[i].dlen);
      off += d[i].dlen;
    }
    int tcp = 0;
    for (int i = 0; i < h.ntx; i++) {
      const struct h_frame *f = &h.tx[i];
      struct h_tcp t;
      if (!h_tcp_parse(f->bytes, f->len, &t))
        continue;
      tcp++;
      CHECK(t.csum_ok);
      CHECK_EQ(f->csum_partial, offload != 0);
      if (!offload)
        continue;
      CHECK_EQ(f->csum_start, 14u + 20u);
      CHECK_EQ(f->csum_offset, 16u);
      /* the field held the pseudo-header's folded sum, not complemented */
      uint16_t seg_len = (uint16_t)(f->len - 34u);
      uint16_t want = (uint16_t)~toe_csum_fold(
          toe_csum_pseudo_v4(H_OUR_IP, H_PEER_IP, TOE_IPPROTO_TCP, seg_len));
      CHECK_EQ(f->csum_field_before, want);
    }
    CHECK(tcp >= 5); /* SYN, ACK and the data */
    h_fini(&h);
  }
}

TEST(syn_carries_mss_wscale_sack_ts)
{
  h_init(&h);
  struct h_conn c;
  h_conn_init(&c, &h, 6001);
  REQUIRE(h_conn_connect(&c, 0) == 0);
  struct h_tcp *s = &c.syn;
  CHECK_EQ(s->flags, H_SYN);
  CHECK(s->has_mss);
  CHECK_EQ(s->mss, 1460);
  CHECK(s->has_ws);
  CHECK_EQ(s->ws, 7); /* 4 MiB tcp_rcvbuf_max needs a shift of 7 (RFC 7323 2.3) */
  CHECK(s->sack_perm);
  CHECK(s->has_ts);
  CHECK(s->tsval != 0);
  CHECK_EQ(s->tsecr, 0);
  CHECK_EQ(s->win, 65535); /* unscaled in a SYN: min(rcvbuf, 65535) */
  CHECK(s->df);            /* path MTU discovery */
  CHECK(s->csum_ok);
  CHECK(s->ipcsum_ok);
  CHECK_EQ(s->dlen, 0);
  CHECK_EQ(s->ack, 0);
  h_fini(&h);
}

TEST(syn_without_options_when_disabled_and_mss_from_mtu)
{
  struct toe_config cfg;
  h_default_cfg(&cfg);
  cfg.tcp_timestamps = 0;
  cfg.tcp_sack = 0;
  cfg.tcp_wscale = 0;
  cfg.mtu = 1000;
  h_init_cfg(&h, &cfg);
  struct h_conn c;
  h_conn_init(&c, &h, 6002);
  REQUIRE(h_conn_connect(&c, 0) == 0);
  CHECK(c.syn.has_mss);
  CHECK_EQ(c.syn.mss, 960); /* MTU - 40 */
  CHECK(!c.syn.has_ws);
  CHECK(!c.syn.sack_perm);
  CHECK(!c.syn.has_ts);
  /* the peer offered 1460: we send at most what our MTU carries */
  fill_pattern();
  h_clear(&h);
  REQUIRE(toe_sock_setopt(h.st, c.s, TOE_TCP_NODELAY, 1) == 0);
  CHECK_EQ(toe_tcp_send(h.st, c.s, pattern, 3000, 0), 3000);
  struct h_tcp d[8];
  int n = data_segs(&c, 0, d, 8);
  REQUIRE(n == 4);
  CHECK_EQ(d[0].dlen, 960);
  CHECK_EQ(d[3].dlen, 3000 - 3 * 960);
  CHECK(!d[0].has_ts);
  h_fini(&h);
}

TEST(data_segments_are_mss_sized_and_in_order)
{
  h_init(&h);
  fill_pattern();
  struct h_conn c;
  h_conn_init(&c, &h, 6003);
  REQUIRE(h_conn_connect(&c, 0) == 0);
  h_clear(&h);
  CHECK_EQ(toe_tcp_send(h.st, c.s, pattern, 5000, 0), 5000);
  struct h_tcp d[8];
  int n = data_segs(&c, 0, d, 8);
  /* timestamps take 12 bytes of each 1460: 1448-byte segments, and the short tail goes too
   * (Minshall's Nagle: only full-sized segments are in flight) */
  REQUIRE(n == 4);
  uint32_t seq = c.iss + 1;
  size_t off = 0;
  for (int i = 0; i < n; i++) {
    CHECK_EQ(d[i].seq, seq);
    CHECK_EQ(d[i].dlen, i < 3 ? 1448u : 5000u - 3u * 1448u);
    CHECK_MEM(d[i].data, pattern + off, d[i].dlen);
    CHECK(d[i].flags & H_ACK);
    CHECK_EQ(d[i].ack, c.snd_nxt);
    CHECK(d[i].has_ts);
    CHECK(d[i].csum_ok);
    CHECK(d[i].df);
    seq += (uint32_t)d[i].dlen;
    off += d[i].dlen;
  }
  CHECK(!(d[0].flags & H_PSH));
  CHECK(d[3].flags & H_PSH);       /* the end of what was written */
  CHECK_EQ(tc()->out_segs, 2 + 4); /* SYN, ACK, data */
  h_fini(&h);
}

TEST(nagle_coalesces_small_writes_while_unacked)
{
  h_init(&h);
  fill_pattern();
  struct h_conn c;
  h_conn_init(&c, &h, 6004);
  REQUIRE(h_conn_connect(&c, 0) == 0);
  h_clear(&h);
  /* the first small write goes at once: nothing is in flight */
  CHECK_EQ(toe_tcp_send(h.st, c.s, pattern, 10, 0), 10);
  struct h_tcp d[8];
  CHECK_EQ(data_segs(&c, 0, d, 8), 1);
  /* more small writes wait for the ACK of the first */
  for (int i = 0; i < 5; i++)
    CHECK_EQ(toe_tcp_send(h.st, c.s, pattern + 10 + 10 * i, 10, 0), 10);
  CHECK_EQ(data_segs(&c, 0, d, 8), 1);
  CHECK_EQ(toe_tcp_tx_pending(c.s), 60);
  /* the ACK releases them as one segment */
  c.rcv_nxt = c.iss + 1 + 10;
  h_conn_send(&c, H_ACK, NULL, 0);
  REQUIRE(data_segs(&c, 0, d, 8) == 2);
  CHECK_EQ(d[1].dlen, 50);
  CHECK_EQ(d[1].seq, c.iss + 1 + 10);
  CHECK_MEM(d[1].data, pattern + 10, 50);
  /* a write that fills a segment does not wait */
  CHECK_EQ(toe_tcp_send(h.st, c.s, pattern, 3000, 0), 3000);
  int n = data_segs(&c, 0, d, 8);
  CHECK(n >= 4);
  CHECK_EQ(d[2].dlen, 1448);
  h_fini(&h);
}

TEST(nodelay_sends_each_write)
{
  h_init(&h);
  fill_pattern();
  struct h_conn c;
  h_conn_init(&c, &h, 6005);
  REQUIRE(h_conn_connect(&c, 0) == 0);
  REQUIRE(toe_sock_setopt(h.st, c.s, TOE_TCP_NODELAY, 1) == 0);
  h_clear(&h);
  for (int i = 0; i < 5; i++)
    CHECK_EQ(toe_tcp_send(h.st, c.s, pattern + i, 1, 0), 1);
  struct h_tcp d[8];
  REQUIRE(data_segs(&c, 0, d, 8) == 5);
  for (int i = 0; i < 5; i++) {
    CHECK_EQ(d[i].dlen, 1);
    CHECK_EQ(d[i].seq, c.iss + 1 + (uint32_t)i);
  }
  /* switching Nagle off releases what it held */
  REQUIRE(toe_sock_setopt(h.st, c.s, TOE_TCP_NODELAY, 0) == 0);
  CHECK_EQ(toe_tcp_send(h.st, c.s, pattern, 7, 0), 7);
  CHECK_EQ(data_segs(&c, 0, d, 8), 5);
  REQUIRE(toe_sock_setopt(h.st, c.s, TOE_TCP_NODELAY, 1) == 0);
  REQUIRE(data_segs(&c, 0, d, 8) == 6);
  CHECK_EQ(d[5].dlen, 7);
  h_fini(&h);
}

TEST(send_more_holds_a_partial_segment)
{
  h_init(&h);
  fill_pattern();
  struct h_conn c;
  h_conn_init(&c, &h, 6006);
  REQUIRE(h_conn_connect(&c, 0) == 0);
  REQUIRE(toe_sock_setopt(h.st, c.s, TOE_TCP_NODELAY, 1) == 0);
  h_clear(&h);
  CHECK_EQ(toe_tcp_send(h.st, c.s, pattern, 100, TOE_SEND_MORE), 100);
  CHECK_EQ(toe_tcp_send(h.st, c.s, pattern + 100, 100, TOE_SEND_MORE), 100);
  struct h_tcp d[4];
  CHECK_EQ(data_segs(&c, 0, d, 4), 0);
  CHECK_EQ(toe_tcp_send(h.st, c.s, pattern + 200, 50, 0), 50);
  REQUIRE(data_segs(&c, 0, d, 4) == 1);
  CHECK_EQ(d[0].dlen, 250);
  CHECK_MEM(d[0].data, pattern, 250);
  /* full segments are not held by MORE */
  CHECK_EQ(toe_tcp_send(h.st, c.s, pattern, 2000, TOE_SEND_MORE), 2000);
  REQUIRE(data_segs(&c, 0, d, 4) == 2);
  CHECK_EQ(d[1].dlen, 1448);
  h_fini(&h);
}

TEST(peer_window_limits_and_sender_sws)
{
  h_init(&h);
  fill_pattern();
  struct h_conn c;
  h_conn_init(&c, &h, 6007);
  c.syn_opt.wscale = -1; /* windows in plain bytes */
  c.win = 4000;
  REQUIRE(h_conn_connect(&c, 0) == 0);
  REQUIRE(toe_sock_setopt(h.st, c.s, TOE_TCP_NODELAY, 1) == 0);
  h_clear(&h);
  CHECK_EQ(toe_tcp_send(h.st, c.s, pattern, 20000, 0), 20000);
  /* two full segments fit in 4000; the 1104 bytes left of the window are less than half the
   * largest window offered, so no small segment goes (RFC 9293 3.8.6.2.1) */
  struct h_tcp d[32];
  REQUIRE(data_segs(&c, 0, d, 32) == 2);
  CHECK_EQ(d[0].dlen, 1448);
  CHECK_EQ(d[1].dlen, 1448);
  ack_all(&c, 4000);
  int n = data_segs(&c, 0, d, 32);
  CHECK_EQ(n, 4);
  /* 552 bytes after a full segment are still less than half the largest window */
  ack_all(&c, 2000);
  n = data_segs(&c, 0, d, 32);
  REQUIRE(n == 5);
  CHECK_EQ(d[4].dlen, 1448);
  /* never beyond the right edge */
  for (int i = 0; i < n; i++)
    CHECK(toe_seq_le(d[i].seq + (uint32_t)d[i].dlen, d[i].seq + 4000));
  h_fini(&h);
}

TEST(small_peer_window_takes_partial_segments)
{
  h_init(&h);
  fill_pattern();
  struct h_conn c;
  h_conn_init(&c, &h, 6008);
  c.syn_opt.wscale = -1;
  c.win = 1000; /* a receiver whose whole buffer is smaller than a segment */
  REQUIRE(h_conn_connect(&c, 0) == 0);
  h_clear(&h);
  CHECK_EQ(toe_tcp_send(h.st, c.s, pattern, 5000, 0), 5000);
  struct h_tcp d[16];
  REQUIRE(data_segs(&c, 0, d, 16) == 1);
  CHECK_EQ(d[0].dlen, 1000);
  /* the next 1000 bytes go as one segment, although they straddle two queued ones */
  for (int i = 1; i < 5; i++) {
    ack_all(&c, 1000);
    REQUIRE(data_segs(&c, 0, d, 16) == i + 1);
    CHECK_EQ(d[i].dlen, 1000);
    CHECK_EQ(d[i].seq, c.iss + 1 + 1000u * (uint32_t)i);
    CHECK_MEM(d[i].data, pattern + 1000 * i, 1000);
  }
  CHECK_EQ(toe_tcb(c.s)->sndq_bytes, 1000); /* the last 1000 are not acknowledged yet */
  h_fini(&h);
}

TEST(receiver_sws_avoidance_and_window_updates)
{
  struct toe_config cfg;
  h_default_cfg(&cfg);
  cfg.tcp_rcvbuf = 16384;
  cfg.tcp_wscale = 0;
  h_init_cfg(&h, &cfg);
  fill_pattern();
  struct h_conn c;
  h_conn_init(&c, &h, 6009);
  REQUIRE(h_conn_connect(&c, 0) == 0);
  CHECK_EQ(c.syn.win, 16384);
  /* the peer fills the window and the application does not read */
  uint32_t edge = c.snd_nxt + 16384;
  int sent = 0;
  while (sent + 1448 <= 16384) {
    h_conn_send(&c, H_ACK, pattern, 1448);
    sent += 1448;
  }
  h_conn_send(&c, H_ACK, pattern, (size_t)(16384 - sent));
  struct h_tcp a;
  REQUIRE(h_conn_last(&c, &a));
  CHECK_EQ(a.ack, c.snd_nxt);
  CHECK_EQ(a.win, 0);
  /* the right edge never moved left on the way (RFC 9293 3.8.6) */
  for (int i = 0; i < h.ntx; i++) {
    struct h_tcp t;
    if (h_tcp_parse(h.tx[i].bytes, h.tx[i].len, &t) && t.dport == c.pport && t.flags == H_ACK &&
        t.ack != c.irs + 1)
      CHECK(toe_seq_ge(t.ack + t.win, edge - 1));
  }
  /* reading less than min(RCV.BUFF/2, MSS) opens nothing: no window update, and an ACK would
   * still show a zero window */
  h_clear(&h);
  static uint8_t buf[20000];
  CHECK_EQ(toe_tcp_recv(h.st, c.s, buf, 1000), 1000);
  CHECK_EQ(h_tcp_count(&h), 0);
  CHECK_EQ(toe_tcp_rcv_window(h.st, toe_tcb(c.s)), 0);
  /* past the threshold: one window update */
  CHECK_EQ(toe_tcp_recv(h.st, c.s, buf, 600), 600);
  REQUIRE(h_tcp_count(&h) == 1);
  REQUIRE(h_conn_last(&c, &a));
  CHECK_EQ(a.flags, H_ACK);
  CHECK_EQ(a.win, 1600);
  CHECK_EQ(tc()->out_win_updates, 1);
  /* small further reads do not each send one */
  CHECK_EQ(toe_tcp_recv(h.st, c.s, buf, 100), 100);
  CHECK_EQ(toe_tcp_recv(h.st, c.s, buf, 100), 100);
  CHECK_EQ(h_tcp_count(&h), 1);
  /* reading everything: the window doubles at least, another update */
  CHECK(toe_tcp_recv(h.st, c.s, buf, sizeof(buf)) > 0);
  REQUIRE(h_tcp_count(&h) == 2);
  REQUIRE(h_conn_last(&c, &a));
  CHECK_EQ(a.win, 16384);
  h_fini(&h);
}

TEST(window_field_is_scaled)
{
  h_init(&h);
  struct h_conn c;
  h_conn_init(&c, &h, 6010);
  REQUIRE(h_conn_connect(&c, 0) == 0);
  struct h_tcp a;
  REQUIRE(h_conn_last(&c, &a));
  CHECK_EQ(c.our_ws, 7);
  /* 256 KiB of buffer, announced >> 7 */
  CHECK_EQ(a.win, (256u * 1024u) >> 7);
  h_conn_send(&c, H_ACK | H_PSH, "abcd", 4);
  REQUIRE(h_conn_last(&c, &a));
  /* 4 bytes queued: the right edge may not move left, so the scaled field is rounded up (by
   * less than one unit, RFC 7323 2.4) rather than down */
  CHECK_EQ(a.win, (256u * 1024u) >> 7);
  CHECK_EQ(a.ack, c.irs + 1 + 4);
  h_fini(&h);
}

TEST(delayed_ack_every_second_segment_or_timer)
{
  h_init(&h);
  fill_pattern();
  struct h_conn c;
  h_conn_init(&c, &h, 6011);
  REQUIRE(h_conn_connect(&c, 0) == 0);
  static uint8_t buf[1 << 16];
  /* quick ACKs for the first segments: each one is acknowledged at once */
  for (int i = 0; i < 16; i++) {
    int before = h_tcp_count(&h);
    h_conn_send(&c, H_ACK, pattern, 1448);
    CHECK_EQ(h_tcp_count(&h), before + 1);
  }
  h_conn_read(&c, buf, sizeof(buf));
  h_clear(&h);
  /* then an ACK for every second full-sized segment */
  h_conn_send(&c, H_ACK, pattern, 1448);
  CHECK_EQ(h_tcp_count(&h), 0);
  h_conn_send(&c, H_ACK, pattern, 1448);
  REQUIRE(h_tcp_count(&h) == 1);
  struct h_tcp a;
  REQUIRE(h_conn_last(&c, &a));
  CHECK_EQ(a.ack, c.snd_nxt);
  /* a lone segment waits for the delayed-ACK timer (cfg.tcp_delack = 40 ms) */
  h_clear(&h);
  h_conn_send(&c, H_ACK, pattern, 1448);
  CHECK_EQ(h_tcp_count(&h), 0);
  h_advance(&h, TOE_MSEC(39));
  CHECK_EQ(h_tcp_count(&h), 0);
  h_advance(&h, TOE_MSEC(1));
  REQUIRE(h_tcp_count(&h) == 1);
  REQUIRE(h_conn_last(&c, &a));
  CHECK_EQ(a.ack, c.snd_nxt);
  CHECK_EQ(tc()->out_acks_delayed, 1);
  /* data of ours carries the owed ACK: no separate ACK, and the timer does nothing */
  h_clear(&h);
  h_conn_send(&c, H_ACK, pattern, 100);
  CHECK_EQ(h_tcp_count(&h), 0);
  CHECK_EQ(toe_tcp_send(h.st, c.s, "reply", 5, 0), 5);
  REQUIRE(h_tcp_count(&h) == 1);
  REQUIRE(h_conn_last(&c, &a));
  CHECK_EQ(a.dlen, 5);
  CHECK_EQ(a.ack, c.snd_nxt);
  h_advance(&h, TOE_MSEC(100));
  CHECK_EQ(h_tcp_count(&h), 1);
  h_fini(&h);
}

/* A read that opens the window sends the ACK owed at once, even while it is delayed: a sender
 * that filled the window waits for exactly that ACK, and the delayed-ACK timer would stall it for
 * 40 ms (the engine_e2e TSO stall: every window ended with one lone segment). A read too small
 * to be worth an update still leaves the ACK to the timer. */
TEST(read_sends_the_delayed_ack_with_the_window_update)
{
  struct toe_config cfg;
  h_default_cfg(&cfg);
  cfg.tcp_rcvbuf = 16384;
  cfg.tcp_wscale = 0;
  h_init_cfg(&h, &cfg);
  fill_pattern();
  struct h_conn c;
  h_conn_init(&c, &h, 6019);
  REQUIRE(h_conn_connect(&c, 0) == 0);
  /* a fixed buffer (no auto-tuning), so that the window is the buffer less what is queued */
  REQUIRE(toe_sock_setopt(h.st, c.s, TOE_SO_RCVBUF, 16384) == 0);
  static uint8_t buf[1 << 16];
  /* past the quick ACKs of the start */
  for (int i = 0; i < 16; i++) {
    h_conn_send(&c, H_ACK, pattern, 1448);
    h_conn_read(&c, buf, sizeof(buf));
  }
  h_advance(&h, TOE_MSEC(100));
  h_clear(&h);
  uint64_t delayed0 = tc()->out_acks_delayed, upd0 = tc()->out_win_updates;
  /* the peer fills most of the window with an odd number of segments: the last one's ACK is
   * delayed */
  for (int i = 0; i < 11; i++)
    h_conn_send(&c, H_ACK, pattern, 1448);
  CHECK_EQ(h_tcp_count(&h), 5);
  struct h_tcp a;
  REQUIRE(h_conn_last(&c, &a));
  CHECK_EQ(a.ack, c.snd_nxt - 1448);
  CHECK(a.ack + a.win - c.snd_nxt < 1448); /* what is left is no room for another segment */
  /* a read under the SWS threshold: no update, the ACK still waits */
  CHECK_EQ(toe_tcp_recv(h.st, c.s, buf, 100), 100);
  CHECK_EQ(h_tcp_count(&h), 5);
  /* reading the rest: one ACK at once, for everything, with the open window */
  CHECK_EQ(h_conn_read(&c, buf, sizeof(buf)), 11u * 1448u - 100u);
  REQUIRE(h_tcp_count(&h) == 6);
  REQUIRE(h_conn_last(&c, &a));
  CHECK_EQ(a.flags, H_ACK);
  CHECK_EQ(a.ack, c.snd_nxt);
  CHECK_EQ(a.win, 16384);
  CHECK_EQ(tc()->out_win_updates, upd0 + 1);
  /* nothing is owed any more: the timer sends nothing */
  h_advance(&h, TOE_MSEC(100));
  CHECK_EQ(h_tcp_count(&h), 6);
  CHECK_EQ(tc()->out_acks_delayed, delayed0);
  /* the control: a lone segment and no read still waits for the timer */
  h_conn_send(&c, H_ACK, pattern, 1448);
  CHECK_EQ(h_tcp_count(&h), 6);
  h_advance(&h, TOE_MSEC(40));
  CHECK_EQ(h_tcp_count(&h), 7);
  CHECK_EQ(tc()->out_acks_delayed, delayed0 + 1);
  h_fini(&h);
}

TEST(sack_and_dsack_blocks_in_acks)
{
  h_init(&h);
  fill_pattern();
  struct h_conn c;
  h_conn_init(&c, &h, 6012);
  REQUIRE(h_conn_connect(&c, 0) == 0);
  uint32_t base = c.snd_nxt;
  h_conn_send(&c, H_ACK, pattern, 1000);                 /* [base, base+1000) */
  h_conn_send_at(&c, base + 2000, H_ACK, pattern, 1000); /* a hole before it */
  struct h_tcp a;
  REQUIRE(h_conn_last(&c, &a));
  CHECK_EQ(a.ack, base + 1000);
  REQUIRE(a.nsack == 1);
  CHECK_EQ(a.sack[0][0], base + 2000);
  CHECK_EQ(a.sack[0][1], base + 3000);
  CHECK(a.has_ts); /* and the timestamp, both fit */
  /* the first segment again: a D-SACK block first (RFC 2883), then the SACK block */
  h_conn_send_at(&c, base, H_ACK, pattern, 1000);
  REQUIRE(h_conn_last(&c, &a));
  REQUIRE(a.nsack == 2);
  CHECK_EQ(a.sack[0][0], base);
  CHECK_EQ(a.sack[0][1], base + 1000);
  CHECK_EQ(a.sack[1][0], base + 2000);
  /* the next ACK does not repeat the D-SACK */
  h_conn_send_at(&c, base + 1000, H_ACK, pattern, 500);
  REQUIRE(h_conn_last(&c, &a));
  CHECK_EQ(a.ack, base + 1500);
  REQUIRE(a.nsack == 1);
  CHECK_EQ(a.sack[0][0], base + 2000);
  h_fini(&h);
}

TEST(fin_rides_on_the_last_segment)
{
  h_init(&h);
  fill_pattern();
  struct h_conn c;
  h_conn_init(&c, &h, 6013);
  REQUIRE(h_conn_connect(&c, 0) == 0);
  h_clear(&h);
  CHECK_EQ(toe_tcp_send(h.st, c.s, pattern, 100, 0), 100);
  CHECK_EQ(toe_tcp_send(h.st, c.s, pattern + 100, 50, 0), 50); /* held by Nagle */
  struct h_tcp d[4];
  CHECK_EQ(data_segs(&c, 0, d, 4), 1);
  CHECK_EQ(toe_tcp_shutdown(h.st, c.s, TOE_SHUT_WR), 0);
  /* closing sends what Nagle held, with the FIN on it */
  REQUIRE(data_segs(&c, 0, d, 4) == 2);
  CHECK_EQ(d[1].dlen, 50);
  CHECK(d[1].flags & H_FIN);
  CHECK_EQ(toe_tcb(c.s)->state, TOE_TCP_FIN_WAIT_1);
  CHECK_EQ(toe_tcb(c.s)->snd_max, c.iss + 1 + 150 + 1);
  /* the peer acknowledges everything: FIN_WAIT_2 */
  c.rcv_nxt = c.iss + 1 + 151;
  h_conn_send(&c, H_ACK, NULL, 0);
  CHECK_EQ(toe_tcb(c.s)->state, TOE_TCP_FIN_WAIT_2);
  h_fini(&h);
}

TEST(rst_for_segments_to_no_socket)
{
  h_init(&h);
  h_learn_peer(&h);
  uint8_t f[256];
  struct h_tcp t;
  /* SYN: <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK> */
  size_t n =
      h_build_tcp(f, H_PEER_IP, 33000, H_OUR_IP, 4444, 1000, 0, H_SYN, 512, NULL, 0, NULL, 0);
  h_input(&h, f, n);
  REQUIRE(h_tcp_get(&h, -1, &t));
  CHECK_EQ(t.flags, H_RST | H_ACK);
  CHECK_EQ(t.seq, 0);
  CHECK_EQ(t.ack, 1001);
  CHECK_EQ(t.sport, 4444);
  CHECK_EQ(t.dport, 33000);
  CHECK_EQ(t.src, H_OUR_IP);
  CHECK_EQ(t.dst, H_PEER_IP);
  CHECK_EQ(t.win, 0);
  CHECK_EQ(t.dlen, 0);
  CHECK(!t.has_ts && !t.has_mss);
  CHECK(t.csum_ok);
  /* data and FIN without ACK: SEG.LEN counts both */
  h_clear(&h);
  n = h_build_tcp(f, H_PEER_IP, 33000, H_OUR_IP, 4444, 5000, 0, H_FIN, 512, NULL, 0, "12345", 5);
  h_input(&h, f, n);
  REQUIRE(h_tcp_get(&h, -1, &t));
  CHECK_EQ(t.flags, H_RST | H_ACK);
  CHECK_EQ(t.ack, 5006);
  /* with ACK: <SEQ=SEG.ACK><CTL=RST> */
  h_clear(&h);
  n = h_build_tcp(f, H_PEER_IP, 33000, H_OUR_IP, 4444, 5000, 0xdeadbeefu, H_ACK | H_PSH, 512, NULL,
                  0, "x", 1);
  h_input(&h, f, n);
  REQUIRE(h_tcp_get(&h, -1, &t));
  CHECK_EQ(t.flags, H_RST);
  CHECK_EQ(t.seq, 0xdeadbeefu);
  CHECK_EQ(t.ack, 0);
  /* a RST is never answered */
  h_clear(&h);
  n = h_build_tcp(f, H_PEER_IP, 33000, H_OUR_IP, 4444, 5000, 1, H_RST | H_ACK, 0, NULL, 0, NULL, 0);
  h_input(&h, f, n);
  CHECK_EQ(h_tcp_count(&h), 0);
  CHECK_EQ(tc()->out_rsts, 3);
  h_fini(&h);
}

TEST(mss_follows_path_mtu_on_retransmission)
{
  h_init(&h);
  fill_pattern();
  struct h_conn c;
  h_conn_init(&c, &h, 6014);
  REQUIRE(h_conn_connect(&c, 0) == 0);
  CHECK_EQ(toe_tcp_send(h.st, c.s, pattern, 1448, 0), 1448);
  struct toe_tcb *tp = toe_tcb(c.s);
  /* the path MTU shrinks (as an ICMP "fragmentation needed" would make it) */
  tp->pmtu = 1000;
  tp->snd_mss = 960;
  h_clear(&h);
  REQUIRE(toe_tcp_retransmit(h.st, tp, tp->sndq_head) == 0);
  struct h_tcp d[4];
  REQUIRE(data_segs(&c, 0, d, 4) == 1);
  CHECK_EQ(d[0].dlen, 948); /* 960 less the timestamp option */
  CHECK_EQ(d[0].seq, c.iss + 1);
  CHECK_EQ(tc()->retrans_segs, 1);
  CHECK(toe_tcp_seg(tp->sndq_head)->flags & TOE_SEG_RETRANS);
  CHECK_EQ(toe_tcp_seg(tp->sndq_head)->xmits, 2);
  /* the rest became a segment of its own, right behind */
  REQUIRE(tp->sndq_head->qnext != NULL);
  CHECK_EQ(toe_tcp_seg(tp->sndq_head->qnext)->seq, c.iss + 1 + 948);
  CHECK_EQ(tp->sndq_head->qnext->tot_len, 500);
  CHECK_EQ(tp->sndq_bytes, 1448);
  h_fini(&h);
}

TEST_MAIN()
