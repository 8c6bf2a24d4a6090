/*
 * Loss recovery through the whole stack: a connection opened with the scripted peer of
 * tcp_harness.h, bulk data from our socket, and a simulated receiver that drops, delays or
 * delivers each of our data segments and answers every segment it gets with an ACK carrying
 * SACK/D-SACK blocks (RFC 2018, RFC 2883) and timestamps (RFC 7323) like a real receiver.
 *
 * Covered: recovery from one loss and from several losses in one window (RACK + RFC 6675 + PRR),
 * a lost retransmission found by RACK, a tail loss repaired by a TLP probe, repeated RTOs with
 * backoff, spurious retransmissions undone (Eifel after an RTO, D-SACK after fast recovery), and
 * NewReno without SACK (fast retransmit, partial ACK, full ACK).
 */
#include "engine/stack.h"
#include "engine/tcp.h"
#include "harness.h"
#include "tcp_harness.h"
#include "testlib.h"

#include <stdlib.h>
#include <string.h>

#define RTT TOE_MSEC(5)
#define MAXB (1u << 20) /* receiver bitmap: bytes */
#define MAXSEG 1024
#define MAXHELD 512

/* ---- the simulated receiver ---- */

struct seg_in {
  uint32_t off, len, tsval;
  int rounds; /* for held segments: rounds left */
};

struct range {
  uint32_t s, e;
};

struct peer {
  struct harness h;
  struct h_conn c;
  uint32_t base; /* sequence number of the first data byte */
  uint32_t mss;
  uint8_t got[MAXB];
  uint32_t rcv; /* offset of the first byte missing */
  struct range blk[8];
  int nblk;
  uint32_t ts_recent;
  uint16_t xmits[MAXSEG];                             /* transmissions seen per segment index */
  int (*fate)(struct peer *p, uint32_t idx, int nth); /* < 0 drop, 0 deliver, k > 0 hold k rounds */
  struct seg_in held[MAXHELD];
  int nheld;
  int acks;
  int dsacks;
};

static struct peer P;

static int fate_all(struct peer *p, uint32_t idx, int nth)
{
  (void)p;
  (void)idx;
  (void)nth;
  return 0;
}

static struct toe_tcb *tcb(void)
{
  return toe_tcb(P.c.s);
}
static const struct toe_counters_tcp *ctr(void)
{
  return &toe_stack_counters(P.h.st)->tcp;
}

/* Opens a connection (SACK and timestamps as asked) and sets the receiver up. */
static bool rig_up(bool sack, bool ts, uint8_t cc)
{
  struct toe_config cfg;
  memset(&P, 0, sizeof(P));
  h_default_cfg(&cfg);
  cfg.tcp_cc = cc;
  cfg.pbuf_count = 2048;
  h_init_cfg(&P.h, &cfg);
  h_conn_init(&P.c, &P.h, 5555);
  P.c.syn_opt.sack_perm = sack;
  P.c.syn_opt.ts = ts;
  if (h_conn_connect(&P.c, 0) != 0)
    return false;
  if (toe_sock_setopt(P.h.st, P.c.s, TOE_TCP_NODELAY, 1) != 0)
    return false;
  /* The scripted handshake takes no virtual time: forget its zero RTT (as RACK's min_RTT and
   * as SRTT), or reo_wnd (min_RTT / 4) and the PTO (2 SRTT) would be near zero from the start. */
  tcb()->min_rtt_us = 0;
  tcb()->srtt_us = 0;
  P.base = P.c.iss + 1;
  P.mss = toe_tcp_eff_mss(tcb());
  P.fate = fate_all;
  h_clear(&P.h);
  return true;
}

static void rig_down(void)
{
  h_fini(&P.h);
}

static int send_bytes(uint32_t n)
{
  static uint8_t buf[256 * 1024];
  for (uint32_t i = 0; i < n && i < sizeof(buf); i++)
    buf[i] = (uint8_t)(i * 7 + 3);
  return toe_tcp_send(P.h.st, P.c.s, buf, n, 0);
}

/* Recomputes the SACK blocks after [off, end) arrived (most recent first, RFC 2018 4). */
static void sack_update(uint32_t off)
{
  uint32_t s = off, e = off;
  while (s > P.rcv && P.got[s - 1])
    s--;
  while (e < MAXB && P.got[e])
    e++;
  int n = 0;
  struct range keep[8];
  if (s > P.rcv)
    keep[n++] = (struct range){s, e};
  for (int i = 0; i < P.nblk && n < 8; i++) {
    if (P.blk[i].e <= P.rcv)
      continue;
    if (P.blk[i].s >= s && P.blk[i].e <= e)
      continue; /* merged into the new block */
    keep[n++] = P.blk[i];
  }
  memcpy(P.blk, keep, sizeof(keep[0]) * (size_t)n);
  P.nblk = n;
}

/* One segment arrives: the receiver's state moves and it sends an ACK. */
static void peer_recv(const struct seg_in *sg)
{
  bool dup = true;
  for (uint32_t i = sg->off; i < sg->off + sg->len; i++)
    if (!P.got[i])
      dup = false;
  /* RFC 7323 4.3: TS.Recent from a segment at or below the left edge */
  if (sg->off <= P.rcv)
    P.ts_recent = sg->tsval;
  for (uint32_t i = sg->off; i < sg->off + sg->len; i++)
    P.got[i] = 1;
  while (P.rcv < MAXB && P.got[P.rcv])
    P.rcv++;
  if (!dup)
    sack_update(sg->off);
  else
    sack_update(P.rcv); /* drop blocks below the edge */

  struct h_tcp_opt o;
  h_tcp_opt_none(&o);
  if (P.c.ts) {
    o.ts = true;
    o.tsval = P.c.tsval++;
    o.tsecr = P.ts_recent;
  }
  if (P.c.sack) {
    int max = P.c.ts ? 3 : 4;
    if (dup) {
      /* RFC 2883: the duplicate first */
      o.sack[o.nsack][0] = P.base + sg->off;
      o.sack[o.nsack][1] = P.base + sg->off + sg->len;
      o.nsack++;
      P.dsacks++;
    }
    for (int i = 0; i < P.nblk && o.nsack < max; i++) {
      if (P.blk[i].e <= P.rcv)
        continue;
      o.sack[o.nsack][0] = P.base + P.blk[i].s;
      o.sack[o.nsack][1] = P.base + P.blk[i].e;
      o.nsack++;
    }
  }
  h_conn_send_raw(&P.c, P.c.snd_nxt, P.base + P.rcv, H_ACK, P.c.win, &o, NULL, 0);
  P.acks++;
}

/* One round trip: what we sent since the last round travels (dropped, held or delivered), time
 * passes, and the receiver acknowledges what arrived. Returns the segments delivered. */
static int peer_round(void)
{
  struct seg_in arr[2 * MAXHELD];
  int na = 0;
  for (int i = 0; i < P.nheld;) {
    if (--P.held[i].rounds <= 0) {
      if (na < 2 * MAXHELD)
        arr[na++] = P.held[i];
      P.held[i] = P.held[--P.nheld];
    } else {
      i++;
    }
  }
  for (int i = 0; i < P.h.ntx; i++) {
    struct h_tcp t;
    if (!h_tcp_parse(P.h.tx[i].bytes, P.h.tx[i].len, &t) || t.dport != P.c.pport || t.dlen == 0)
      continue;
    struct seg_in sg = {t.seq - P.base, (uint32_t)t.dlen, t.tsval, 0};
    uint32_t idx = sg.off / P.mss;
    if (sg.off + sg.len > MAXB || idx >= MAXSEG)
      continue;
    int nth = P.xmits[idx]++;
    int f = P.fate(&P, idx, nth);
    if (f < 0)
      continue;
    if (f > 0 && P.nheld < MAXHELD) {
      sg.rounds = f;
      P.held[P.nheld++] = sg;
      continue;
    }
    if (na < 2 * MAXHELD)
      arr[na++] = sg;
  }
  h_clear(&P.h);
  h_advance(&P.h, RTT);
  for (int i = 0; i < na; i++)
    peer_recv(&arr[i]);
  return na;
}

/* Transmissions of segment `idx` captured since the last round. */
static int sent_now(uint32_t idx)
{
  int n = 0;
  for (int i = 0; i < P.h.ntx; i++) {
    struct h_tcp t;
    if (h_tcp_parse(P.h.tx[i].bytes, P.h.tx[i].len, &t) && t.dlen && t.seq == P.base + idx * P.mss)
      n++;
  }
  return n;
}

/* Rounds until everything sent is acknowledged (or `max` rounds). */
static int run_until_acked(int max)
{
  int r = 0;
  for (; r < max; r++) {
    if (tcb()->snd_una == tcb()->snd_max && tcb()->snd_next_seg == NULL && P.nheld == 0)
      break;
    peer_round();
  }
  return r;
}

/* ---- tests ---- */

static uint32_t drop_idx[8];
static int ndrop;
static int drop_times; /* how many transmissions of each listed segment are lost */

static int fate_drop_listed(struct peer *p, uint32_t idx, int nth)
{
  (void)p;
  for (int i = 0; i < ndrop; i++)
    if (drop_idx[i] == idx && nth < drop_times)
      return -1;
  return 0;
}

TEST(one_loss_rack_fast_recovery)
{
  REQUIRE(rig_up(true, true, TOE_CC_CUBIC));
  CHECK(tcb()->flags & TOE_TF_SACK_OK);
  REQUIRE(send_bytes(60 * P.mss) > 0);
  ndrop = 1;
  drop_idx[0] = 3;
  drop_times = 1;
  P.fate = fate_drop_listed;
  /* first flight: IW = 10 segments (RFC 6928) */
  int n = 0;
  for (int i = 0; i < P.h.ntx; i++) {
    struct h_tcp t;
    if (h_tcp_parse(P.h.tx[i].bytes, P.h.tx[i].len, &t) && t.dlen)
      n++;
  }
  CHECK_EQ(n, 10);
  uint32_t cwnd_before = 0;
  for (int r = 0; r < 40 && !ctr()->rec_episodes; r++) {
    cwnd_before = tcb()->cwnd;
    peer_round();
  }
  CHECK_EQ(ctr()->rec_episodes, 1);
  CHECK(ctr()->rec_rack_lost >= 1);
  CHECK_EQ(tcb()->rec_state, TOE_REC_RECOVERY);
  /* CUBIC: ssthresh = 0.7 cwnd at the loss (RFC 9438 4.6), cwnd then reduced by PRR */
  CHECK(tcb()->prior_cwnd >= cwnd_before);
  CHECK_EQ(tcb()->ssthresh, tcb()->prior_cwnd * 7 / 10);
  CHECK(tcb()->cwnd < tcb()->prior_cwnd);
  run_until_acked(200);
  CHECK_EQ(tcb()->snd_una, tcb()->snd_max);
  CHECK_EQ(P.rcv, 60 * P.mss);
  CHECK_EQ(P.xmits[3], 2); /* one fast retransmission, nothing else resent */
  uint32_t extra = 0;
  for (int i = 0; i < 60; i++)
    extra += P.xmits[i] > 1 && i != 3;
  CHECK_EQ(extra, 0);
  CHECK_EQ(ctr()->rec_episodes, 1);
  CHECK_EQ(ctr()->rec_rto, 0);
  CHECK_EQ(tcb()->rec_state, TOE_REC_OPEN);
  CHECK_EQ(tcb()->lost_bytes, 0);
  CHECK_EQ(tcb()->sacked_bytes, 0);
  CHECK_EQ(tcb()->retrans_out, 0);
  rig_down();
}

TEST(several_losses_one_window)
{
  REQUIRE(rig_up(true, true, TOE_CC_NEWRENO));
  REQUIRE(send_bytes(80 * P.mss) > 0);
  /* Let the window grow first, then lose three segments of one flight. */
  peer_round();
  peer_round();
  uint32_t first = tcb()->snd_una - P.base;
  uint32_t f = first / P.mss;
  ndrop = 3;
  drop_idx[0] = f + 2;
  drop_idx[1] = f + 5;
  drop_idx[2] = f + 9;
  drop_times = 1;
  P.fate = fate_drop_listed;
  run_until_acked(300);
  CHECK_EQ(tcb()->snd_una, tcb()->snd_max);
  CHECK_EQ(P.rcv, 80 * P.mss);
  CHECK_EQ(ctr()->rec_episodes, 1); /* one episode for the whole window */
  for (int i = 0; i < 3; i++)
    CHECK_EQ(P.xmits[drop_idx[i]], 2);
  CHECK_EQ(ctr()->rec_rto, 0);
  CHECK_EQ(tcb()->rec_state, TOE_REC_OPEN);
  rig_down();
}

TEST(lost_retransmission_found_by_rack)
{
  REQUIRE(rig_up(true, true, TOE_CC_CUBIC));
  REQUIRE(send_bytes(100 * P.mss) > 0);
  peer_round();
  peer_round();
  uint32_t f = (tcb()->snd_una - P.base) / P.mss;
  ndrop = 1;
  drop_idx[0] = f + 3;
  drop_times = 2; /* the first retransmission is lost too */
  P.fate = fate_drop_listed;
  run_until_acked(300);
  CHECK_EQ(tcb()->snd_una, tcb()->snd_max);
  CHECK_EQ(P.rcv, 100 * P.mss);
  CHECK_EQ(P.xmits[f + 3], 3);
  CHECK_EQ(ctr()->rec_rto, 0); /* RACK, not the RTO, found the lost retransmission */
  CHECK(ctr()->rec_rack_lost >= 2);
  CHECK_EQ(ctr()->rec_episodes, 1);
  rig_down();
}

static int fate_tail(struct peer *p, uint32_t idx, int nth)
{
  (void)p;
  return (idx >= 7 && nth == 0) ? -1 : 0; /* segments 7, 8, 9: first transmission lost */
}

TEST(tail_loss_probe)
{
  REQUIRE(rig_up(true, true, TOE_CC_CUBIC));
  REQUIRE(send_bytes(10 * P.mss) > 0);
  P.fate = fate_tail;
  peer_round(); /* 0..6 acknowledged */
  CHECK_EQ(tcb()->snd_una, P.base + 7 * P.mss);
  CHECK_EQ(ctr()->rec_tlp_probes, 0);
  CHECK(tcb()->deadline[TOE_TT_TLP] != 0);
  /* Silence: the PTO (2*SRTT, at least 10 ms) fires well before the RTO (>= 200 ms). */
  toe_time_t t0 = P.h.now;
  h_advance(&P.h, TOE_MSEC(40));
  CHECK_EQ(ctr()->rec_tlp_probes, 1);
  CHECK_EQ(ctr()->rec_rto, 0);
  int probes = 0;
  for (int i = 0; i < P.h.ntx; i++) {
    struct h_tcp t;
    if (h_tcp_parse(P.h.tx[i].bytes, P.h.tx[i].len, &t) && t.dlen) {
      probes++;
      CHECK_EQ(t.seq, P.base + 9 * P.mss); /* the last segment (no new data to send) */
    }
  }
  CHECK_EQ(probes, 1);
  (void)t0;
  /* The probe's SACK reveals 7 and 8: RACK recovers them. */
  run_until_acked(50);
  CHECK_EQ(tcb()->snd_una, tcb()->snd_max);
  CHECK_EQ(P.rcv, 10 * P.mss);
  CHECK_EQ(ctr()->rec_rto, 0);
  CHECK_EQ(P.xmits[7], 2);
  CHECK_EQ(P.xmits[8], 2);
  CHECK_EQ(P.xmits[9], 2);
  rig_down();
}

static int fate_blackhole = 1;
static int fate_blackhole_fn(struct peer *p, uint32_t idx, int nth)
{
  (void)p;
  (void)idx;
  (void)nth;
  return fate_blackhole ? -1 : 0;
}

TEST(repeated_rto_backoff)
{
  REQUIRE(rig_up(true, true, TOE_CC_NEWRENO));
  /* one round with ACKs so that the window and SRTT are known */
  REQUIRE(send_bytes(40 * P.mss) > 0);
  peer_round();
  uint32_t cwnd0 = tcb()->cwnd;
  P.fate = fate_blackhole_fn;
  fate_blackhole = 1;
  h_clear(&P.h);
  /* Watch the first unacknowledged segment being sent again, millisecond by millisecond. */
  uint32_t first = tcb()->snd_una;
  toe_time_t times[8];
  int nt = 0;
  uint32_t ssthresh_first = 0;
  for (int ms = 0; ms < 3200 && nt < 4; ms++) {
    h_advance(&P.h, TOE_MSEC(1));
    for (int i = 0; i < P.h.ntx; i++) {
      struct h_tcp t;
      if (h_tcp_parse(P.h.tx[i].bytes, P.h.tx[i].len, &t) && t.dlen && t.seq == first) {
        times[nt++] = P.h.now;
        if (nt == 1) {
          CHECK_EQ(tcb()->cwnd, P.mss); /* RFC 5681 3.1: the loss window */
          CHECK(tcb()->ssthresh < cwnd0);
          ssthresh_first = tcb()->ssthresh;
        } else {
          CHECK_EQ(tcb()->ssthresh, ssthresh_first); /* held on repeated timeouts */
        }
      }
    }
    if (nt < 4)
      h_clear(&P.h); /* the 4th timeout's retransmission stays for the receiver below */
  }
  REQUIRE(nt == 4);
  CHECK_EQ(ctr()->rec_rto, 4);
  CHECK_EQ(tcb()->rec_state, TOE_REC_LOSS);
  /* RFC 6298 5.5: each interval doubles (1 ms timer tick of slack) */
  for (int i = 1; i < 3; i++) {
    toe_time_t a = times[i] - times[i - 1], b = times[i + 1] - times[i];
    CHECK(b + TOE_MSEC(2) >= 2 * a && b <= 2 * a + TOE_MSEC(2));
  }
  /* The path comes back: everything is repaired and the backoff ends. */
  fate_blackhole = 0;
  P.fate = fate_all;
  run_until_acked(1000);
  CHECK_EQ(tcb()->snd_una, tcb()->snd_max);
  CHECK_EQ(P.rcv, 40 * P.mss);
  CHECK_EQ(tcb()->rec_state, TOE_REC_OPEN);
  CHECK_EQ(tcb()->rto_backoff, 0);
  rig_down();
}

static int fate_late_originals(struct peer *p, uint32_t idx, int nth)
{
  (void)p;
  (void)idx;
  /* originals arrive after 500 ms (after the probe at the RTO's time and the RTO 200 ms later),
   * retransmissions much later still */
  return nth == 0 ? 100 : 250;
}

TEST(spurious_rto_undone_by_timestamps)
{
  REQUIRE(rig_up(true, true, TOE_CC_CUBIC));
  REQUIRE(send_bytes(4 * P.mss) > 0);
  uint32_t cwnd0 = tcb()->cwnd;
  P.fate = fate_late_originals;
  for (int r = 0; r < 120 && tcb()->snd_una != tcb()->snd_max; r++)
    peer_round();
  CHECK_EQ(ctr()->rec_tlp_probes, 1); /* no RTT sample yet: the PTO is the RTO's time */
  CHECK_EQ(ctr()->rec_rto, 1);
  CHECK_EQ(ctr()->rec_spurious_rto, 1); /* Eifel: the ACK echoed the original's TSval */
  CHECK_EQ(tcb()->snd_una, tcb()->snd_max);
  CHECK(tcb()->cwnd >= cwnd0); /* RFC 4015: the window is restored */
  CHECK_EQ(tcb()->rec_state, TOE_REC_OPEN);
  CHECK_EQ(tcb()->lost_bytes, 0);
  rig_down();
}

static uint32_t reorder_idx;
static bool drop_rexmit;
static int fate_reorder(struct peer *p, uint32_t idx, int nth)
{
  (void)p;
  if (idx != reorder_idx)
    return 0;
  if (nth == 0)
    return 1; /* the original arrives one round late */
  return drop_rexmit ? -1 : 0;
}

/* With D-SACK: the retransmission arrives as a duplicate (RFC 3708 detection). With timestamps:
 * the retransmission is lost, and the ACK that ends recovery echoes a TSval older than it
 * (Eifel, RFC 3522). */
static void spurious_fast_retransmit(bool ts)
{
  drop_rexmit = ts;
  REQUIRE(rig_up(true, ts, TOE_CC_CUBIC));
  REQUIRE(send_bytes(80 * P.mss) > 0);
  peer_round();
  peer_round();
  reorder_idx = (tcb()->snd_una - P.base) / P.mss + 2;
  uint32_t cwnd_before = 0;
  P.fate = fate_reorder;
  for (int r = 0; r < 10 && !ctr()->rec_episodes; r++) {
    cwnd_before = tcb()->cwnd;
    peer_round();
  }
  REQUIRE(ctr()->rec_episodes == 1); /* the reordering looked like a loss */
  CHECK(tcb()->ssthresh < cwnd_before);
  for (int r = 0; r < 10 && !ctr()->rec_spurious_fr; r++)
    peer_round();
  CHECK_EQ(ctr()->rec_spurious_fr, 1);
  CHECK(tcb()->cwnd >= cwnd_before);          /* undone */
  CHECK(tcb()->rec_flags & TOE_RECF_REORDER); /* RACK now allows for reordering */
  CHECK_EQ(tcb()->rec_state, TOE_REC_OPEN);
  run_until_acked(200);
  CHECK_EQ(P.rcv, 80 * P.mss);
  rig_down();
}

TEST(spurious_fast_retransmit_undone_by_dsack)
{
  spurious_fast_retransmit(false);
}
TEST(spurious_fast_retransmit_undone_with_timestamps)
{
  spurious_fast_retransmit(true);
}

TEST(newreno_without_sack)
{
  REQUIRE(rig_up(false, true, TOE_CC_NEWRENO));
  CHECK(!(tcb()->flags & TOE_TF_SACK_OK));
  REQUIRE(send_bytes(60 * P.mss) > 0);
  ndrop = 2;
  drop_idx[0] = 2;
  drop_idx[1] = 5;
  drop_times = 1;
  P.fate = fate_drop_listed;
  uint32_t flight = 0;
  for (int r = 0; r < 20 && !ctr()->rec_episodes; r++) {
    flight = tcb()->snd_max - tcb()->snd_una;
    peer_round();
  }
  CHECK_EQ(ctr()->rec_newreno, 1);
  CHECK_EQ(ctr()->rec_episodes, 1);
  /* RFC 6582 3.2 step 2/3: ssthresh = max(FlightSize / 2, 2*SMSS), cwnd = ssthresh + 3*SMSS
   * (+1 SMSS per further duplicate ACK) */
  CHECK(tcb()->ssthresh >= flight / 2);
  CHECK(tcb()->ssthresh <= (flight + 6 * P.mss) / 2);
  CHECK(tcb()->cwnd >= tcb()->ssthresh + 3 * P.mss);
  CHECK_EQ(sent_now(2), 1); /* the fast retransmission, on the third duplicate ACK */
  /* The retransmission of 2 brings a partial ACK (5 is missing): 5 is sent at once. */
  int r = 0;
  for (; r < 5 && P.xmits[5] < 2; r++)
    peer_round();
  CHECK_EQ(P.xmits[5], 2);
  CHECK(tcb()->rec_flags & TOE_RECF_NR_PARTIAL);
  CHECK_EQ(ctr()->rec_episodes, 1);
  run_until_acked(200);
  CHECK_EQ(tcb()->snd_una, tcb()->snd_max);
  CHECK_EQ(P.rcv, 60 * P.mss);
  CHECK_EQ(ctr()->rec_episodes, 1);
  CHECK_EQ(ctr()->rec_rto, 0);
  CHECK_EQ(tcb()->rec_state, TOE_REC_OPEN);
  CHECK(tcb()->cwnd <= tcb()->ssthresh + 8 * P.mss);
  rig_down();
}

TEST(reo_timer_marks_loss_without_dupthresh)
{
  /* One segment missing, only one later segment SACKed: RACK waits reo_wnd (RFC 8985 6.3)
   * and then retransmits from the REO timer, without three duplicate ACKs. */
  REQUIRE(rig_up(true, true, TOE_CC_CUBIC));
  REQUIRE(send_bytes(2 * P.mss) > 0);
  ndrop = 1;
  drop_idx[0] = 0;
  drop_times = 1;
  P.fate = fate_drop_listed;
  peer_round(); /* segment 1 arrives: SACK [1] */
  CHECK_EQ(ctr()->rec_episodes, 0);
  CHECK(tcb()->deadline[TOE_TT_REO] != 0);
  h_advance(&P.h, TOE_MSEC(5));
  CHECK_EQ(ctr()->rec_reo_timeouts, 1);
  CHECK_EQ(ctr()->rec_episodes, 1);
  run_until_acked(20);
  CHECK_EQ(P.xmits[0], 2);
  CHECK_EQ(tcb()->snd_una, tcb()->snd_max);
  CHECK_EQ(ctr()->rec_rto, 0);
  rig_down();
}

TEST(reneged_sack_forgotten_at_rto)
{
  /* The receiver SACKs everything, then discards it (RFC 2018 8 allows that): the cumulative ACK
   * never moves. The RTO must not trust the SACK marks, or nothing would ever be resent. */
  REQUIRE(rig_up(true, true, TOE_CC_CUBIC));
  REQUIRE(send_bytes(4 * P.mss) > 0);
  h_clear(&P.h);
  h_advance(&P.h, RTT);
  struct h_tcp_opt o;
  h_tcp_opt_none(&o);
  o.ts = true;
  o.tsval = P.c.tsval++;
  o.tsecr = P.c.ts_recent;
  o.nsack = 1;
  o.sack[0][0] = P.base + P.mss; /* 1..3 */
  o.sack[0][1] = P.base + 4 * P.mss;
  h_conn_send_raw(&P.c, P.c.snd_nxt, P.base, H_ACK, P.c.win, &o, NULL, 0);
  o.tsval = P.c.tsval++;
  o.sack[0][0] = P.base; /* and now 0..3: SND.UNA's segment SACKed but never acknowledged */
  h_conn_send_raw(&P.c, P.c.snd_nxt, P.base, H_ACK, P.c.win, &o, NULL, 0);
  CHECK_EQ(tcb()->sacked_bytes, 4 * P.mss);
  h_clear(&P.h);
  for (int i = 0; i < 4000 && !ctr()->rec_rto; i++)
    h_advance(&P.h, TOE_MSEC(1));
  CHECK_EQ(ctr()->rec_rto, 1);
  CHECK_EQ(ctr()->rec_sack_reneged, 1);
  CHECK_EQ(tcb()->sacked_bytes, 0);
  CHECK_EQ(sent_now(0), 1); /* the head segment is sent again */
  run_until_acked(200);
  CHECK_EQ(tcb()->snd_una, tcb()->snd_max);
  CHECK_EQ(P.rcv, 4 * P.mss);
  rig_down();
}

/* ---- RACK's scan bound (rack_detect_loss stops at the first original sent after RACK.segment) */

/* The flags of the queued segment starting at `idx`, or -1 if it is not queued. */
static int seg_flags(uint32_t idx)
{
  for (struct toe_pbuf *p = tcb()->sndq_head; p; p = p->qnext)
    if (toe_tcp_seg(p)->seq == P.base + idx * P.mss)
      return toe_tcp_seg(p)->flags;
  return -1;
}

TEST(rack_scans_past_retransmission_sent_after_rack_segment)
{
  /* Segments 0 and 5 of the first flight are lost. The SACKs of 1..3 get 0 marked lost and
   * retransmitted at once; when the SACK of 6 then arrives, RACK.segment (6, an original) was
   * sent before that retransmission, which therefore is not "before" RACK.segment, but segment
   * 5 behind it is: the scan must go past the retransmission and mark 5 lost on the same ACK. */
  REQUIRE(rig_up(true, true, TOE_CC_CUBIC));
  REQUIRE(send_bytes(20 * P.mss) > 0);
  ndrop = 2;
  drop_idx[0] = 0;
  drop_idx[1] = 5;
  drop_times = 1;
  P.fate = fate_drop_listed;
  peer_round(); /* the first flight (0..9) reaches the receiver, every ACK is processed */
  CHECK(seg_flags(0) >= 0 && (seg_flags(0) & TOE_SEG_RETRANS));
  CHECK(seg_flags(5) >= 0 && (seg_flags(5) & TOE_SEG_LOST));
  CHECK(ctr()->rec_rack_lost >= 2);
  CHECK_EQ(ctr()->rec_episodes, 1);
  run_until_acked(200);
  CHECK_EQ(tcb()->snd_una, tcb()->snd_max);
  CHECK_EQ(P.rcv, 20 * P.mss);
  CHECK_EQ(P.xmits[0], 2);
  CHECK_EQ(P.xmits[5], 2);
  CHECK_EQ(ctr()->rec_rto, 0);
  rig_down();
}

TEST(rack_detects_loss_in_large_window_after_steady_state)
{
  /* Loss-free rounds (where the scan stops at SND.UNA's segment at once) until the flight is
   * large, then two segments lost in its middle: on the ACKs of that flight RACK marks both (the
   * second one lies beyond SND.UNA's segment, the first loss), without an RTO; each is resent
   * once and nothing else is. */
  REQUIRE(rig_up(true, true, TOE_CC_CUBIC));
  REQUIRE(send_bytes(150 * P.mss) == (int)(150 * P.mss));
  for (int r = 0; r < 3; r++)
    peer_round();
  CHECK_EQ(ctr()->rec_rack_lost, 0);
  uint32_t una = (tcb()->snd_una - P.base) / P.mss;
  uint32_t inflight = (tcb()->snd_max - tcb()->snd_una) / P.mss;
  CHECK(inflight >= 20);
  ndrop = 2;
  drop_idx[0] = una + inflight / 2 - 4;
  drop_idx[1] = una + inflight / 2;
  drop_times = 1;
  P.fate = fate_drop_listed;
  peer_round();
  CHECK(seg_flags(drop_idx[0]) >= 0 && (seg_flags(drop_idx[0]) & TOE_SEG_LOST));
  CHECK(seg_flags(drop_idx[1]) >= 0 && (seg_flags(drop_idx[1]) & TOE_SEG_LOST));
  CHECK_EQ(ctr()->rec_rack_lost, 2);
  run_until_acked(300);
  CHECK_EQ(tcb()->snd_una, tcb()->snd_max);
  CHECK_EQ(P.rcv, 150 * P.mss);
  CHECK_EQ(P.xmits[drop_idx[0]], 2);
  CHECK_EQ(P.xmits[drop_idx[1]], 2);
  uint32_t extra = 0;
  for (uint32_t i = 0; i < 150; i++)
    extra += P.xmits[i] > 1 && i != drop_idx[0] && i != drop_idx[1];
  CHECK_EQ(extra, 0);
  CHECK_EQ(ctr()->rec_rack_lost, 2);
  CHECK_EQ(ctr()->rec_rto, 0);
  rig_down();
}

TEST_MAIN()
