/*
 * TCP segment arrival: header checks and dispatch, RSTs for segments to no socket (RFC 9293
 * 3.10.7.1), RFC 5961 challenge ACKs, PAWS (RFC 7323), ACK acceptability, SACK and D-SACK blocks
 * in our ACKs (RFC 2018, RFC 2883), delivery of reordered, duplicated and overlapping data
 * (a randomised test against the source bytes), the out-of-order memory bound, delayed ACKs, zero
 * windows, and ICMP errors (RFC 5927, RFC 1191).
 */
#include "common/prng.h"
#include "engine/stack.h"
#include "engine/tcp.h"
#include "harness.h"
#include "tcp_harness.h"
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

static const struct toe_counters_tcp *ctr(const struct harness *h)
{
  return &toe_stack_counters(h->st)->tcp;
}

/* ---- segments to no socket, and bad segments ---- */

TEST(rst_for_syn_to_closed_port)
{
  struct harness h;
  h_init(&h);
  h_learn_peer(&h);
  uint8_t f[256];
  size_t n =
      h_build_tcp(f, H_PEER_IP, 40000, H_OUR_IP, 9999, 5000, 0, H_SYN, 1000, NULL, 0, NULL, 0);
  h_input(&h, f, n);
  struct h_tcp t;
  REQUIRE(h_tcp_get(&h, -1, &t));
  /* <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK> */
  CHECK_EQ(t.flags, H_RST | H_ACK);
  CHECK_EQ(t.seq, 0);
  CHECK_EQ(t.ack, 5001);
  CHECK_EQ(t.sport, 9999);
  CHECK_EQ(t.dport, 40000);
  CHECK(t.csum_ok);
  CHECK_EQ(ctr(&h)->rx_drop_no_socket, 1);
  CHECK_EQ(ctr(&h)->in_segs, 1);

  /* data+FIN without ACK: SEG.LEN counts the FIN */
  h_clear(&h);
  n = h_build_tcp(f, H_PEER_IP, 40000, H_OUR_IP, 9999, 7000, 0, H_FIN, 1000, NULL, 0, "xyz", 3);
  h_input(&h, f, n);
  REQUIRE(h_tcp_get(&h, -1, &t));
  CHECK_EQ(t.ack, 7004);

  /* an ACK-bearing segment: <SEQ=SEG.ACK><CTL=RST> */
  h_clear(&h);
  n = h_build_tcp(f, H_PEER_IP, 40000, H_OUR_IP, 9999, 5000, 123456, H_ACK, 1000, NULL, 0, "x", 1);
  h_input(&h, f, n);
  REQUIRE(h_tcp_get(&h, -1, &t));
  CHECK_EQ(t.flags, H_RST);
  CHECK_EQ(t.seq, 123456);

  /* a RST is never answered */
  h_clear(&h);
  n = h_build_tcp(f, H_PEER_IP, 40000, H_OUR_IP, 9999, 5000, 0, H_RST, 0, NULL, 0, NULL, 0);
  h_input(&h, f, n);
  CHECK_EQ(h_tcp_count(&h), 0);
  CHECK_EQ(ctr(&h)->rx_drop_no_socket, 4);
  h_fini(&h);
}

TEST(bad_checksum_and_malformed_dropped)
{
  struct harness h;
  h_init(&h);
  h_learn_peer(&h);
  uint8_t f[256];
  size_t n =
      h_build_tcp(f, H_PEER_IP, 40000, H_OUR_IP, 9999, 5000, 0, H_SYN, 1000, NULL, 0, NULL, 0);
  f[14 + 20 + 16] ^= 0x5a; /* checksum */
  h_input(&h, f, n);
  CHECK_EQ(h_tcp_count(&h), 0);
  CHECK_EQ(ctr(&h)->rx_drop_checksum, 1);
  CHECK_EQ(ctr(&h)->in_errs, 1);

  /* data offset 4 (< 5), then one past the segment */
  n = h_build_tcp(f, H_PEER_IP, 40000, H_OUR_IP, 9999, 5000, 0, H_SYN, 1000, NULL, 0, NULL, 0);
  f[14 + 20 + 12] = 0x40;
  h_input(&h, f, n);
  f[14 + 20 + 12] = 0x60;
  h_input(&h, f, n);
  /* shorter than a header */
  uint8_t tiny[12] = {0};
  n = h_build_ipv4(f, H_PEER_IP, H_OUR_IP, 6, 1, 0, 64, tiny, sizeof(tiny));
  h_input(&h, f, n);
  CHECK_EQ(ctr(&h)->rx_drop_malformed, 3);
  CHECK_EQ(ctr(&h)->in_errs, 4);
  CHECK_EQ(h_tcp_count(&h), 0);

  /* an option whose length runs past the header */
  uint8_t opt[4] = {2, 8, 5, 0xb4};
  n = h_build_tcp(f, H_PEER_IP, 40000, H_OUR_IP, 9999, 5000, 0, H_SYN, 1000, opt, 4, NULL, 0);
  h_input(&h, f, n);
  CHECK_EQ(ctr(&h)->rx_drop_bad_opts, 1);

  /* to the subnet broadcast: no answer (RFC 1122 4.2.3.10) */
  n = h_build_tcp(f, H_PEER_IP, 40000, 0xc61200ffu, 9999, 5000, 0, H_SYN, 1000, NULL, 0, NULL, 0);
  h_input(&h, f, n);
  CHECK_EQ(h_tcp_count(&h), 0);
  CHECK_EQ(ctr(&h)->rx_drop_not_unicast, 1);
  /* port 0 */
  n = h_build_tcp(f, H_PEER_IP, 0, H_OUR_IP, 9999, 5000, 0, H_SYN, 1000, NULL, 0, NULL, 0);
  h_input(&h, f, n);
  CHECK_EQ(ctr(&h)->rx_drop_bad_port, 1);
  CHECK_EQ(h_tcp_count(&h), 0);
  h_fini(&h);
}

TEST(listener_ignores_rst_and_resets_synack)
{
  struct harness h;
  h_init(&h);
  struct h_conn c;
  h_conn_init(&c, &h, 6100);
  struct toe_sock *ls = NULL;
  REQUIRE(toe_tcp_open(h.st, NULL, &ls) == 0);
  struct toe_sockaddr l = {.family = TOE_AF_INET, .port = 90, .addr = 0};
  REQUIRE(toe_sock_bind(h.st, ls, &l) == 0);
  REQUIRE(toe_tcp_listen(h.st, ls, 4) == 0);
  c.lport = 90;
  h_conn_send_raw(&c, 100, 0, H_RST, 0, NULL, NULL, 0);
  CHECK_EQ(h_tcp_count(&h), 0);
  h_conn_send_raw(&c, 100, 4242, H_SYN | H_ACK, 1000, NULL, NULL, 0);
  struct h_tcp t;
  REQUIRE(h_tcp_get(&h, -1, &t));
  CHECK_EQ(t.flags, H_RST);
  CHECK_EQ(t.seq, 4242);
  /* neither SYN nor ACK nor RST: dropped */
  h_clear(&h);
  h_conn_send_raw(&c, 100, 0, H_PSH, 1000, NULL, "x", 1);
  CHECK_EQ(h_tcp_count(&h), 0);
  CHECK_EQ(ctr(&h)->rx_drop_listen, 3);
  h_fini(&h);
}

/* ---- RFC 5961 ---- */

TEST(rst_in_window_gets_challenge_ack)
{
  struct harness h;
  h_init(&h);
  struct h_conn c;
  h_conn_init(&c, &h, 5100);
  REQUIRE(h_conn_connect(&c, 0) == 0);
  int before = h.ntx;
  h_conn_send_at(&c, c.snd_nxt + 1000, H_RST, NULL, 0);
  CHECK_EQ(toe_tcb(c.s)->state, TOE_TCP_ESTABLISHED);
  CHECK_EQ(h_conn_count_flags(&c, before, H_ACK), 1);
  struct h_tcp a;
  REQUIRE(h_conn_last(&c, &a));
  CHECK_EQ(a.flags, H_ACK);
  CHECK_EQ(a.ack, c.snd_nxt);
  CHECK_EQ(a.seq, c.iss + 1);
  CHECK_EQ(ctr(&h)->challenge_acks, 1);
  /* a RST outside the window: silently dropped */
  before = h.ntx;
  h_conn_send_at(&c, c.snd_nxt + 0x40000000u, H_RST, NULL, 0);
  h_conn_send_at(&c, c.snd_nxt - 1, H_RST, NULL, 0);
  CHECK_EQ(h.ntx, before);
  CHECK_EQ(toe_tcb(c.s)->state, TOE_TCP_ESTABLISHED);
  CHECK_EQ(ctr(&h)->rx_drop_rst, 3);
  /* exactly at rcv_nxt: reset */
  h_conn_send(&c, H_RST, NULL, 0);
  CHECK_EQ(toe_sock_error(h.st, c.s), -TOE_ECONNRESET);
  CHECK_EQ(ctr(&h)->rx_resets, 1);
  h_fini(&h);
}

TEST(syn_in_established_gets_challenge_ack)
{
  struct harness h;
  h_init(&h);
  struct h_conn c;
  h_conn_init(&c, &h, 5101);
  REQUIRE(h_conn_connect(&c, 0) == 0);
  /* a SYN at rcv_nxt (a peer that restarted, or an attacker) and one elsewhere in the window */
  uint32_t seqs[2] = {c.snd_nxt, c.snd_nxt + 500};
  for (int i = 0; i < 2; i++) {
    int before = h.ntx;
    h_conn_send_at(&c, seqs[i], H_SYN, NULL, 0);
    CHECK_EQ(toe_tcb(c.s)->state, TOE_TCP_ESTABLISHED);
    CHECK_EQ(h_conn_count_flags(&c, before, H_ACK), 1);
    struct h_tcp a;
    REQUIRE(h_conn_last(&c, &a));
    CHECK_EQ(a.flags, H_ACK);
    CHECK_EQ(a.ack, c.snd_nxt);
  }
  CHECK_EQ(ctr(&h)->challenge_acks, 2);
  CHECK_EQ(ctr(&h)->rx_drop_syn, 2);
  /* still usable */
  h_conn_send(&c, H_ACK, "ok", 2);
  char buf[4];
  CHECK_EQ(h_conn_read(&c, buf, sizeof(buf)), 2);
  h_fini(&h);
}

TEST(challenge_acks_are_rate_limited)
{
  struct harness h;
  h_init(&h);
  struct h_conn c;
  h_conn_init(&c, &h, 5102);
  REQUIRE(h_conn_connect(&c, 0) == 0);
  int before = h.ntx;
  for (int i = 0; i < 50; i++)
    h_conn_send_at(&c, c.snd_nxt + 100 + (uint32_t)i, H_RST, NULL, 0);
  int sent = h_conn_count_flags(&c, before, H_ACK);
  CHECK(sent >= 1 && sent <= 10);
  CHECK_EQ(ctr(&h)->challenge_acks_limited, 50 - sent);
  /* the budget is per second */
  h_advance(&h, TOE_SEC(1));
  before = h.ntx;
  h_conn_send_at(&c, c.snd_nxt + 100, H_RST, NULL, 0);
  CHECK_EQ(h_conn_count_flags(&c, before, H_ACK), 1);
  h_fini(&h);
}

TEST(ack_of_unsent_or_too_old_data_is_dropped)
{
  struct harness h;
  h_init(&h);
  struct h_conn c;
  h_conn_init(&c, &h, 5103);
  REQUIRE(h_conn_connect(&c, 0) == 0);
  int before = h.ntx;
  /* acknowledges data we never sent: ACK back, segment (and its data) dropped */
  h_conn_send_raw(&c, c.snd_nxt, c.rcv_nxt + 1000, H_ACK, c.win, NULL, "zz", 2);
  CHECK_EQ(h_conn_count_flags(&c, before, H_ACK), 1);
  CHECK_EQ(toe_tcp_rx_pending(c.s), 0);
  /* RFC 5961 5.2: older than SND.UNA - MAX.SND.WND */
  h_conn_send_raw(&c, c.snd_nxt, c.rcv_nxt - 0x20000000u, H_ACK, c.win, NULL, "zz", 2);
  CHECK_EQ(toe_tcp_rx_pending(c.s), 0);
  CHECK_EQ(ctr(&h)->rx_drop_bad_ack, 2);
  /* an old but acceptable ACK still delivers the data */
  h_conn_send_raw(&c, c.snd_nxt, c.rcv_nxt - 10, H_ACK, c.win, NULL, "zz", 2);
  CHECK_EQ(toe_tcp_rx_pending(c.s), 2);
  /* no ACK bit: dropped */
  h_conn_send_raw(&c, c.snd_nxt + 2, 0, 0, c.win, NULL, "yy", 2);
  CHECK_EQ(toe_tcp_rx_pending(c.s), 2);
  CHECK_EQ(ctr(&h)->rx_drop_no_ack, 1);
  h_fini(&h);
}

/* ---- sequence numbers and timestamps ---- */

TEST(unacceptable_segment_gets_ack_and_dsack)
{
  struct harness h;
  h_init(&h);
  struct h_conn c;
  h_conn_init(&c, &h, 5104);
  REQUIRE(h_conn_connect(&c, 0) == 0);
  h_conn_send(&c, H_ACK, "0123456789", 10);
  char buf[32];
  CHECK_EQ(h_conn_read(&c, buf, sizeof(buf)), 10);
  /* the same segment again (a spurious retransmission): D-SACK for it, nothing delivered */
  int before = h.ntx;
  h_conn_send_at(&c, c.snd_nxt - 10, H_ACK, "0123456789", 10);
  CHECK_EQ(h_conn_count_flags(&c, before, H_ACK), 1);
  struct h_tcp a;
  REQUIRE(h_conn_last(&c, &a));
  CHECK_EQ(a.ack, c.snd_nxt);
  REQUIRE(a.nsack >= 1);
  CHECK_EQ(a.sack[0][0], c.snd_nxt - 10);
  CHECK_EQ(a.sack[0][1], c.snd_nxt);
  CHECK_EQ(toe_tcp_rx_pending(c.s), 0);
  /* partly old, partly new: the new part is delivered once, the old part D-SACKed */
  h_conn_send_at(&c, c.snd_nxt - 5, H_ACK, "56789ABCDE", 10);
  c.snd_nxt += 5;
  REQUIRE(h_conn_last(&c, &a));
  REQUIRE(a.nsack >= 1);
  CHECK_EQ(a.sack[0][0], c.snd_nxt - 10);
  CHECK_EQ(a.sack[0][1], c.snd_nxt - 5);
  CHECK_EQ(h_conn_read(&c, buf, sizeof(buf)), 5);
  CHECK_MEM(buf, "ABCDE", 5);
  /* far beyond the window: ACK, dropped */
  before = h.ntx;
  h_conn_send_at(&c, c.snd_nxt + 0x10000000u, H_ACK, "x", 1);
  CHECK_EQ(h_conn_count_flags(&c, before, H_ACK), 1);
  CHECK_EQ(toe_tcp_rx_pending(c.s), 0);
  CHECK(ctr(&h)->rx_drop_out_of_window >= 2);
  h_fini(&h);
}

TEST(paws_rejects_old_timestamp)
{
  struct harness h;
  h_init(&h);
  struct h_conn c;
  h_conn_init(&c, &h, 5105);
  c.tsval = 100000;
  REQUIRE(h_conn_connect(&c, 0) == 0);
  h_conn_send(&c, H_ACK, "new", 3);
  CHECK_EQ(toe_tcp_rx_pending(c.s), 3);
  /* the next bytes with a TSval older than TS.Recent: an old duplicate from a previous
   * incarnation as far as PAWS can tell (RFC 7323 5.3 R1) */
  struct h_tcp_opt o;
  h_tcp_opt_none(&o);
  o.ts = true;
  o.tsval = 50000;
  o.tsecr = 0;
  int before = h.ntx;
  h_conn_send_raw(&c, c.snd_nxt, c.rcv_nxt, H_ACK, c.win, &o, "old", 3);
  CHECK_EQ(toe_tcp_rx_pending(c.s), 3);
  CHECK_EQ(ctr(&h)->rx_drop_paws, 1);
  CHECK_EQ(h_conn_count_flags(&c, before, H_ACK), 1);
  /* a RST is not subject to PAWS: it resets */
  h_conn_send_raw(&c, c.snd_nxt, 0, H_RST, 0, &o, NULL, 0);
  CHECK_EQ(toe_sock_error(h.st, c.s), -TOE_ECONNRESET);
  h_fini(&h);
}

TEST(paws_expires_after_24_days_idle)
{
  struct harness h;
  h_init(&h);
  struct h_conn c;
  h_conn_init(&c, &h, 5106);
  c.tsval = 100000;
  REQUIRE(h_conn_connect(&c, 0) == 0);
  /* RFC 7323 5.5: TS.Recent is invalid once the connection idled more than 24 days */
  toe_tcb(c.s)->ts_recent_age -= 25u * 24u * 3600u * 1000u;
  struct h_tcp_opt o;
  h_tcp_opt_none(&o);
  o.ts = true;
  o.tsval = 5; /* the peer's clock wrapped far behind */
  h_conn_send_raw(&c, c.snd_nxt, c.rcv_nxt, H_ACK, c.win, &o, "abc", 3);
  CHECK_EQ(toe_tcp_rx_pending(c.s), 3);
  CHECK_EQ(ctr(&h)->rx_drop_paws, 0);
  /* and TS.Recent follows the new clock */
  CHECK_EQ(toe_tcb(c.s)->ts_recent, 5);
  h_fini(&h);
}

TEST(missing_timestamp_dropped_once_agreed)
{
  struct harness h;
  h_init(&h);
  struct h_conn c;
  h_conn_init(&c, &h, 5107);
  REQUIRE(h_conn_connect(&c, 0) == 0);
  struct h_tcp_opt o;
  h_tcp_opt_none(&o);
  h_conn_send_raw(&c, c.snd_nxt, c.rcv_nxt, H_ACK, c.win, &o, "abc", 3);
  CHECK_EQ(toe_tcp_rx_pending(c.s), 0);
  CHECK_EQ(ctr(&h)->rx_drop_no_ts, 1);
  /* a RST without one still counts (RFC 7323 3.2) */
  h_conn_send_raw(&c, c.snd_nxt, 0, H_RST, 0, &o, NULL, 0);
  CHECK_EQ(toe_sock_error(h.st, c.s), -TOE_ECONNRESET);
  h_fini(&h);
}

TEST(ts_recent_follows_in_order_segments_only)
{
  struct harness h;
  h_init(&h);
  struct h_conn c;
  h_conn_init(&c, &h, 5108);
  c.tsval = 1000;
  REQUIRE(h_conn_connect(&c, 0) == 0);
  struct h_tcp_opt o;
  h_tcp_opt_none(&o);
  o.ts = true;
  /* out of order with a newer TSval: not recorded (its SEQ is beyond Last.ACK.sent) */
  o.tsval = 5000;
  h_conn_send_raw(&c, c.snd_nxt + 100, c.rcv_nxt, H_ACK, c.win, &o, "x", 1);
  CHECK(toe_tcb(c.s)->ts_recent != 5000);
  /* in order: recorded, and echoed */
  o.tsval = 6000;
  h_conn_send_raw(&c, c.snd_nxt, c.rcv_nxt, H_ACK | H_PSH, c.win, &o, "y", 1);
  CHECK_EQ(toe_tcb(c.s)->ts_recent, 6000);
  h_advance(&h, TOE_MSEC(500)); /* any delayed ACK goes out */
  struct h_tcp a;
  REQUIRE(h_conn_last(&c, &a));
  CHECK_EQ(a.tsecr, 6000);
  h_fini(&h);
}

/* ---- SACK and D-SACK ---- */

TEST(sack_blocks_for_out_of_order_data)
{
  struct harness h;
  h_init(&h);
  struct h_conn c;
  h_conn_init(&c, &h, 5110);
  REQUIRE(h_conn_connect(&c, 0) == 0);
  uint32_t b = c.snd_nxt;
  static uint8_t d[1000];
  memset(d, 'q', sizeof(d));
  /* segments 2 and 4 of 1..4 arrive: each answered at once with a duplicate ACK + SACK */
  int before = h.ntx;
  h_conn_send_at(&c, b + 100, H_ACK, d, 100);
  CHECK_EQ(h_conn_count_flags(&c, before, H_ACK), 1);
  struct h_tcp a;
  REQUIRE(h_conn_last(&c, &a));
  CHECK_EQ(a.ack, b);
  REQUIRE(a.nsack == 1);
  CHECK_EQ(a.sack[0][0], b + 100);
  CHECK_EQ(a.sack[0][1], b + 200);
  h_conn_send_at(&c, b + 300, H_ACK, d, 100);
  REQUIRE(h_conn_last(&c, &a));
  REQUIRE(a.nsack == 2);
  /* RFC 2018 4: the block of the segment that triggered the ACK first */
  CHECK_EQ(a.sack[0][0], b + 300);
  CHECK_EQ(a.sack[1][0], b + 100);
  /* a duplicate of SACKed data: D-SACK first, then its block (RFC 2883 4.1.2) */
  h_conn_send_at(&c, b + 120, H_ACK, d, 50);
  REQUIRE(h_conn_last(&c, &a));
  REQUIRE(a.nsack >= 2);
  CHECK_EQ(a.sack[0][0], b + 120);
  CHECK_EQ(a.sack[0][1], b + 170);
  CHECK_EQ(a.sack[1][0], b + 100);
  CHECK_EQ(a.sack[1][1], b + 200);
  /* the D-SACK is sent once */
  h_conn_send_at(&c, b + 500, H_ACK, d, 10);
  REQUIRE(h_conn_last(&c, &a));
  CHECK(a.sack[0][0] == b + 500 && a.sack[0][1] == b + 510);
  /* the hole at the front fills: cumulative ACK moves to the next hole */
  before = h.ntx;
  h_conn_send_at(&c, b, H_ACK, d, 100);
  CHECK_EQ(h_conn_count_flags(&c, before, H_ACK), 1);
  REQUIRE(h_conn_last(&c, &a));
  CHECK_EQ(a.ack, b + 200);
  REQUIRE(a.nsack == 2);
  CHECK_EQ(a.sack[0][0], b + 500);
  CHECK_EQ(a.sack[1][0], b + 300);
  CHECK_EQ(toe_tcp_rx_pending(c.s), 200);
  h_fini(&h);
}

TEST(no_sack_blocks_without_sack_permitted)
{
  struct harness h;
  h_init(&h);
  struct h_conn c;
  h_conn_init(&c, &h, 5111);
  c.syn_opt.sack_perm = false;
  REQUIRE(h_conn_connect(&c, 0) == 0);
  h_conn_send_at(&c, c.snd_nxt + 100, H_ACK, "abc", 3);
  struct h_tcp a;
  REQUIRE(h_conn_last(&c, &a));
  CHECK_EQ(a.ack, c.snd_nxt);
  CHECK_EQ(a.nsack, 0);
  h_fini(&h);
}

/* ---- delivery ---- */

TEST(urgent_data_delivered_in_band)
{
  struct harness h;
  h_init(&h);
  struct h_conn c;
  h_conn_init(&c, &h, 5112);
  REQUIRE(h_conn_connect(&c, 0) == 0);
  /* RFC 6093: URG's pointer is ignored, the byte is ordinary data */
  h_conn_send(&c, H_ACK | H_URG, "u!", 2);
  char buf[4];
  CHECK_EQ(h_conn_read(&c, buf, sizeof(buf)), 2);
  CHECK_MEM(buf, "u!", 2);
  h_fini(&h);
}

TEST(delayed_ack_every_second_full_segment)
{
  struct harness h;
  h_init(&h);
  struct h_conn c;
  h_conn_init(&c, &h, 5113);
  REQUIRE(h_conn_connect(&c, 0) == 0);
  static uint8_t d[1448];
  /* past the quick-ACK start */
  for (int i = 0; i < 40; i++)
    h_conn_send(&c, H_ACK, d, sizeof(d));
  h_advance(&h, TOE_SEC(1));
  int before = h.ntx;
  h_conn_send(&c, H_ACK, d, sizeof(d));
  CHECK_EQ(h_conn_count_flags(&c, before, H_ACK), 0); /* one full segment: ACK delayed */
  h_conn_send(&c, H_ACK, d, sizeof(d));
  CHECK_EQ(h_conn_count_flags(&c, before, H_ACK), 1); /* the second: ACK now */
  before = h.ntx;
  h_conn_send(&c, H_ACK, d, 100);
  CHECK_EQ(h_conn_count_flags(&c, before, H_ACK), 0);
  h_advance(&h, h.cfg.tcp_delack + TOE_MSEC(2)); /* the bound of the delay */
  CHECK_EQ(h_conn_count_flags(&c, before, H_ACK), 1);
  struct h_tcp a;
  REQUIRE(h_conn_last(&c, &a));
  CHECK_EQ(a.ack, c.snd_nxt);
  h_fini(&h);
}

TEST(zero_window_drops_data_keeps_acks)
{
  struct harness h;
  struct toe_config cfg;
  h_default_cfg(&cfg);
  cfg.tcp_rcvbuf = 4096;
  cfg.tcp_rcvbuf_max = 4096;
  h_init_cfg(&h, &cfg);
  struct h_conn c;
  h_conn_init(&c, &h, 5114);
  REQUIRE(h_conn_connect(&c, 0) == 0);
  static uint8_t d[1000];
  memset(d, 'w', sizeof(d));
  /* fill what we offer, never reading */
  for (int i = 0; i < 20; i++) {
    struct h_tcp a;
    h_advance(&h, TOE_MSEC(50)); /* the delayed ACK tells the window */
    h_conn_last(&c, &a);
    uint32_t wnd = (uint32_t)a.win << c.our_ws;
    uint32_t room = a.ack + wnd - c.snd_nxt;
    if ((int32_t)room <= 0)
      break;
    h_conn_send(&c, H_ACK, d, room < sizeof(d) ? room : sizeof(d));
  }
  h_advance(&h, TOE_MSEC(500));
  struct h_tcp a;
  REQUIRE(h_conn_last(&c, &a));
  CHECK_EQ(a.win, 0);
  uint32_t queued = toe_tcp_rx_pending(c.s);
  CHECK(queued > 0);
  /* data into the zero window: not kept, answered with an ACK showing the window */
  int before = h.ntx;
  h_conn_send_at(&c, c.snd_nxt, H_ACK, d, 10);
  CHECK_EQ(toe_tcp_rx_pending(c.s), queued);
  CHECK_EQ(h_conn_count_flags(&c, before, H_ACK), 1);
  REQUIRE(h_conn_last(&c, &a));
  CHECK_EQ(a.ack, c.snd_nxt);
  CHECK_EQ(a.win, 0);
  /* reading opens it again */
  static uint8_t buf[8192];
  CHECK_EQ(h_conn_read(&c, buf, sizeof(buf)), queued);
  REQUIRE(h_conn_last(&c, &a));
  CHECK(a.win > 0);
  h_fini(&h);
}

TEST(send_window_update_rules)
{
  struct harness h;
  h_init(&h);
  struct h_conn c;
  h_conn_init(&c, &h, 5115);
  REQUIRE(h_conn_connect(&c, 0) == 0);
  struct toe_tcb *tp = toe_tcb(c.s);
  /* windows after the SYN are scaled by the peer's shift (7) */
  h_conn_send_raw(&c, c.snd_nxt, c.rcv_nxt, H_ACK, 100, NULL, NULL, 0);
  CHECK_EQ(tp->snd_wnd, 100u << 7);
  /* an older segment (lower SEQ) cannot change it (SND.WL1/WL2, RFC 9293 3.10.7.4) */
  h_conn_send(&c, H_ACK, "abc", 3);
  uint32_t w = tp->snd_wnd;
  h_conn_send_raw(&c, c.snd_nxt - 3, c.rcv_nxt, H_ACK, 1, NULL, NULL, 0);
  CHECK_EQ(tp->snd_wnd, w);
  h_conn_send_raw(&c, c.snd_nxt, c.rcv_nxt, H_ACK, 7, NULL, NULL, 0);
  CHECK_EQ(tp->snd_wnd, 7u << 7);
  h_fini(&h);
}

/*
 * The stream property: whatever the segmentation, reordering, duplication, overlap and loss, the
 * application reads exactly the bytes sent, each once, in order.
 */
TEST(randomised_reordered_duplicated_overlapping_delivery)
{
  for (unsigned round = 0; round < 4; round++) {
    struct harness h;
    h_init(&h);
    struct h_conn c;
    h_conn_init(&c, &h, (uint16_t)(5200 + round));
    if (round & 1)
      c.syn_opt.sack_perm = false;
    if (round & 2)
      c.syn_opt.ts = false;
    REQUIRE(h_conn_connect(&c, 0) == 0);
    toe_prng_seed(&rng_state, 77 + round);
    const uint32_t total = 150000;
    static uint8_t src[150000], got[150000];
    for (uint32_t i = 0; i < total; i++)
      src[i] = (uint8_t)(i * 7u + (i >> 9) + round);
    uint32_t base = c.snd_nxt;
    size_t ngot = 0;
    for (int iter = 0; iter < 2000 && ngot < total; iter++) {
      struct h_tcp a;
      REQUIRE(h_conn_last(&c, &a));
      uint32_t acked = a.ack - base;
      /* a flight of pieces in [acked - 3000, acked + 24000), shuffled, some missing */
      struct piece {
        uint32_t off, len, ts;
      } p[48];
      int np = 0;
      uint32_t off = acked;
      while (np < 40 && off < total && off < acked + 24000) {
        uint32_t len = 1 + (uint32_t)(rnd() % 1460);
        if (off + len > total)
          len = total - off;
        if (rnd() % 6 != 0)
          p[np++] = (struct piece){off, len, c.tsval + (uint32_t)np};
        off += len;
      }
      for (int k = 0; k < 6 && np < 48; k++) { /* duplicates and overlapping re-segmentation */
        uint32_t o =
            acked > 3000 ? acked - 3000 + (uint32_t)(rnd() % 6000) : (uint32_t)(rnd() % 3000);
        uint32_t len = 1 + (uint32_t)(rnd() % 3000);
        if (o >= total)
          continue;
        if (o + len > total)
          len = total - o;
        p[np++] = (struct piece){o, len, c.tsval + 40u + (uint32_t)k};
      }
      for (int k = np - 1; k > 0; k--) {
        int j = rnd() % (k + 1);
        struct piece t = p[k];
        p[k] = p[j];
        p[j] = t;
      }
      for (int k = 0; k < np; k++) {
        struct h_tcp_opt o;
        h_tcp_opt_none(&o);
        if (c.ts) {
          o.ts = true;
          o.tsval = p[k].ts; /* as stamped when sent: reordering keeps old stamps */
          o.tsecr = c.ts_recent;
        }
        h_conn_send_raw(&c, base + p[k].off, c.rcv_nxt, H_ACK, c.win, &o, src + p[k].off, p[k].len);
      }
      c.tsval += 50;
      if (rnd() % 3 == 0)
        h_advance(&h, TOE_MSEC(50));
      int n;
      while ((n = toe_tcp_recv(h.st, c.s, got + ngot, total - ngot)) > 0)
        ngot += (size_t)n;
    }
    CHECK_EQ(ngot, total);
    CHECK_MEM(got, src, total);
    const struct toe_counters_tcp *k = ctr(&h);
    CHECK(k->rx_ooo_segs > 0);
    CHECK_EQ(k->rx_bytes, total);
    /* nothing left anywhere once the connection is gone */
    toe_tcp_abort(h.st, c.s);
    h_advance(&h, TOE_SEC(5));
    CHECK_EQ(toe_pbuf_pool_free_count(h.st), h.cfg.pbuf_count);
    h_fini(&h);
  }
}

TEST(out_of_order_memory_is_bounded)
{
  struct harness h;
  h_init(&h);
  struct h_conn c;
  h_conn_init(&c, &h, 5116);
  REQUIRE(h_conn_connect(&c, 0) == 0);
  uint32_t pool = h.cfg.pbuf_count;
  /* one-byte segments with gaps each pin a buffer: the queue stops taking them */
  for (uint32_t i = 0; i < 400; i++)
    h_conn_send_at(&c, c.snd_nxt + 2 + 2 * i, H_ACK, "x", 1);
  uint32_t max = toe_tcp_reass_max_bufs(h.st);
  CHECK(toe_tcb(c.s)->ooo_count <= max);
  CHECK(ctr(&h)->rx_drop_ooo_full >= 400 - max);
  h_clear(&h);
  CHECK(toe_pbuf_pool_free_count(h.st) >= pool - max - 8);
  /* in-order data still gets through, and fills the first hole */
  h_conn_send(&c, H_ACK, "ab", 2);
  CHECK_EQ(toe_tcp_rx_pending(c.s), 3); /* "ab", then the queued "x" at +2; +3 is a hole */
  h_fini(&h);
}

TEST(small_segments_coalesce_in_receive_queue)
{
  struct harness h;
  h_init(&h);
  struct h_conn c;
  h_conn_init(&c, &h, 5117);
  REQUIRE(h_conn_connect(&c, 0) == 0);
  uint32_t free0 = toe_pbuf_pool_free_count(h.st);
  for (int i = 0; i < 100; i++)
    h_conn_send(&c, H_ACK, "tiny", 4);
  h_clear(&h);
  CHECK_EQ(toe_tcp_rx_pending(c.s), 400);
  /* 100 tiny segments do not hold 100 buffers */
  CHECK(free0 - toe_pbuf_pool_free_count(h.st) < 10);
  char buf[512];
  CHECK_EQ(h_conn_read(&c, buf, sizeof(buf)), 400);
  CHECK_MEM(buf, "tinytiny", 8);
  h_fini(&h);
}

/* ---- ICMP ---- */

/* An ICMP error from the peer quoting captured frame `idx` (IP header + 8 bytes). */
static void icmp_quote(struct harness *h, int idx, uint8_t type, uint8_t code, uint16_t mtu)
{
  h_input_icmp_error(h, H_PEER_IP, h->tx[idx].bytes, type, code, mtu);
}

TEST(icmp_frag_needed_lowers_mss_and_retransmits)
{
  struct harness h;
  h_init(&h);
  struct h_conn c;
  h_conn_init(&c, &h, 5120);
  REQUIRE(h_conn_connect(&c, 0) == 0);
  static uint8_t d[3000];
  memset(d, 'm', sizeof(d));
  int first = h.ntx;
  REQUIRE(toe_tcp_send(h.st, c.s, d, sizeof(d), 0) == (int)sizeof(d));
  /* the first full-sized segment sent */
  int idx = -1;
  struct h_tcp t;
  for (int i = first; i < h.ntx && idx < 0; i++)
    if (h_tcp_parse(h.tx[i].bytes, h.tx[i].len, &t) && t.dlen > 1000)
      idx = i;
  REQUIRE(idx >= 0);
  REQUIRE(t.seq == c.iss + 1);
  /* quoting a segment not in flight (RFC 5927): ignored */
  uint8_t *seqp = h.tx[idx].bytes + 14 + 20 + 4;
  uint8_t save[4];
  memcpy(save, seqp, 4);
  seqp[0] ^= 0x80;
  icmp_quote(&h, idx, 3, 4, 1000);
  CHECK_EQ(toe_tcb(c.s)->snd_mss, 1460);
  CHECK_EQ(ctr(&h)->icmp_bad_seq, 1);
  memcpy(seqp, save, 4);
  /* the real one: the MSS follows the MTU and the data goes again in smaller segments */
  int before = h.ntx;
  icmp_quote(&h, idx, 3, 4, 1000);
  CHECK_EQ(toe_tcb(c.s)->snd_mss, 960);
  CHECK_EQ(toe_tcb(c.s)->pmtu, 1000);
  CHECK_EQ(ctr(&h)->icmp_pmtu, 1);
  REQUIRE(h.ntx > before);
  struct h_tcp r;
  REQUIRE(h_tcp_get(&h, -1, &r));
  CHECK_EQ(r.seq, c.iss + 1);
  CHECK(r.dlen <= 960 - 12);
  /* a larger MTU never raises it (RFC 1191 3) */
  icmp_quote(&h, idx, 3, 4, 1400);
  CHECK_EQ(toe_tcb(c.s)->pmtu, 1000);
  h_fini(&h);
}

TEST(icmp_port_unreachable_aborts_connect)
{
  struct harness h;
  h_init(&h);
  struct h_conn c;
  h_conn_init(&c, &h, 5121);
  struct toe_sock *s = NULL;
  REQUIRE(toe_tcp_open(h.st, &c, &s) == 0);
  struct toe_sockaddr r = {.family = TOE_AF_INET, .port = c.pport, .addr = H_PEER_IP};
  toe_sock_connect(h.st, s, &r);
  int idx = h_tcp_find(&h, -1);
  REQUIRE(idx >= 0);
  icmp_quote(&h, idx, 3, 3, 0);
  CHECK_EQ(toe_sock_error(h.st, s), -TOE_ECONNREFUSED);
  CHECK_EQ(ctr(&h)->icmp_hard_aborts, 1);
  h_fini(&h);
}

TEST(icmp_host_unreachable_is_soft)
{
  struct harness h;
  h_init(&h);
  struct h_conn c;
  h_conn_init(&c, &h, 5122);
  REQUIRE(h_conn_connect(&c, 0) == 0);
  REQUIRE(toe_tcp_send(h.st, c.s, "data", 4, 0) == 4);
  int idx = h_tcp_find(&h, -1);
  icmp_quote(&h, idx, 3, 1, 0);
  CHECK_EQ(toe_tcb(c.s)->state, TOE_TCP_ESTABLISHED);
  CHECK_EQ(toe_tcb(c.s)->icmp_soft_err, -TOE_EHOSTUNREACH);
  CHECK_EQ(ctr(&h)->icmp_soft_errors, 1);
  h_fini(&h);
}

TEST_MAIN()
