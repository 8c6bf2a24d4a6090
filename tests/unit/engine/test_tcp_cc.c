/*
 * Congestion control modules on a hand-made connection block and the virtual clock:
 * NewReno's slow start and congestion avoidance (RFC 5681, RFC 3465), its reductions; CUBIC's
 * window following W_cubic(t) (RFC 9438 4.2), its Reno-friendly region (4.3), fast convergence
 * (4.7), timeout and undo; HyStart++ leaving slow start on an RTT increase (RFC 9406).
 */
#include "engine/stack.h"
#include "engine/tcp.h"
#include "harness.h"
#include "testlib.h"

#include <string.h>

static struct harness H;
static struct toe_tcb T;

static void setup(const struct toe_cc_ops *cc, uint16_t mss)
{
  h_init(&H);
  memset(&T, 0, sizeof(T));
  T.sk.proto = TOE_IPPROTO_TCP;
  T.state = TOE_TCP_ESTABLISHED;
  T.snd_mss = mss;
  T.cc = cc;
  toe_tcp_cc_init(H.st, &T);
  T.snd_una = T.snd_max = 1000;
}

static void teardown(void)
{
  h_fini(&H);
}

/* n ACKs of `each` bytes at the current time */
static void acks(int n, uint32_t each, uint32_t rtt_us)
{
  for (int i = 0; i < n; i++) {
    T.snd_una += each;
    if (toe_seq_gt(T.snd_una, T.snd_max))
      T.snd_max = T.snd_una;
    T.cc->on_ack(H.st, &T, each, rtt_us);
  }
}

/* One round trip with a full window: the window's MSS-sized ACKs arrive now, then an RTT
 * passes until the ACKs of what they released. */
static void round_trip(toe_time_t rtt, uint32_t rtt_us)
{
  uint32_t mss = T.snd_mss;
  T.snd_max = T.snd_una + T.cwnd;
  int n = (int)(T.cwnd / mss);
  acks(n, mss, rtt_us);
  h_advance(&H, rtt);
}

/* The generic part of a loss episode (tcp_recovery.c does this before calling the module). */
static void loss(void)
{
  T.prior_cwnd = T.cwnd;
  T.prior_ssthresh = T.ssthresh;
  T.snd_max = T.snd_una + T.cwnd; /* a full window in flight */
  T.cc->on_loss(H.st, &T);
}

static double cube(double x)
{
  return x * x * x;
}

/* cbrt by bisection (no libm) */
static double cbrt_d(double v)
{
  double lo = 0, hi = v > 1 ? v : 1;
  for (int i = 0; i < 200; i++) {
    double m = (lo + hi) / 2;
    if (m * m * m > v)
      hi = m;
    else
      lo = m;
  }
  return lo;
}

TEST(cc_by_id)
{
  CHECK(toe_cc_by_id(TOE_CC_NEWRENO) == &toe_cc_newreno);
  CHECK(toe_cc_by_id(TOE_CC_CUBIC) == &toe_cc_cubic);
  CHECK(toe_cc_by_id(0) == NULL);
  CHECK(toe_cc_by_id(99) == NULL);
  CHECK(strcmp(toe_cc_newreno.name, "newreno") == 0);
  CHECK(strcmp(toe_cc_cubic.name, "cubic") == 0);
  CHECK_EQ(toe_cc_cubic.id, TOE_CC_CUBIC);
}

TEST(initial_window_rfc6928)
{
  CHECK_EQ(toe_cc_initial_window(1460), 14600);
  CHECK_EQ(toe_cc_initial_window(1448), 14480);
  CHECK_EQ(toe_cc_initial_window(536), 5360);
  CHECK_EQ(toe_cc_initial_window(9000), 18000);
  CHECK_EQ(toe_cc_initial_window(100), 1000);
  setup(&toe_cc_cubic, 1460);
  CHECK_EQ(T.cwnd, 14600);
  CHECK_EQ(T.ssthresh, TOE_CC_SSTHRESH_INF);
  teardown();
  setup(&toe_cc_newreno, 536);
  CHECK_EQ(T.cwnd, 5360);
  /* RFC 5681 3.1: after a lost SYN or SYN-ACK, one segment */
  T.syn_retries = 1;
  toe_tcp_cc_init(H.st, &T);
  CHECK_EQ(T.cwnd, 536);
  T.cc = &toe_cc_cubic;
  toe_tcp_cc_init(H.st, &T);
  CHECK_EQ(T.cwnd, 536);
  teardown();
  /* no module chosen: the configured one */
  setup(NULL, 1000);
  REQUIRE(T.cc != NULL);
  uint8_t want = toe_stack_config(H.st)->tcp_cc;
  CHECK_EQ(T.cc->id, want ? want : TOE_CC_CUBIC);
  teardown();
}

TEST(newreno_slow_start_abc)
{
  setup(&toe_cc_newreno, 1000);
  uint32_t w = T.cwnd;
  acks(1, 1000, 0);
  CHECK_EQ(T.cwnd, w + 1000); /* one SMSS per SMSS acknowledged */
  acks(1, 4000, 0);
  CHECK_EQ(T.cwnd, w + 3000); /* RFC 3465: at most L = 2 SMSS per ACK */
  acks(1, 500, 0);
  CHECK_EQ(T.cwnd, w + 3500); /* byte counting */
  /* a round of full-window ACKs doubles the window */
  w = T.cwnd;
  round_trip(TOE_MSEC(10), 10000);
  CHECK_EQ(T.cwnd, 2 * w - (w % 1000));
  /* slow start stops at ssthresh; the rest of the ACK counts for avoidance */
  T.ssthresh = T.cwnd + 500;
  acks(1, 1000, 0);
  CHECK_EQ(T.cwnd, T.ssthresh);
  CHECK_EQ(T.bytes_acked_ca, 500);
  teardown();
}

TEST(newreno_congestion_avoidance_curve)
{
  setup(&toe_cc_newreno, 1000);
  T.cwnd = T.ssthresh = 20000;
  acks(19, 1000, 0);
  CHECK_EQ(T.cwnd, 20000);
  acks(1, 1000, 0);
  CHECK_EQ(T.cwnd, 21000); /* one SMSS per window of acknowledged bytes (RFC 5681 3.1) */
  /* linear growth: +1 SMSS per round trip */
  for (int r = 0; r < 30; r++)
    round_trip(TOE_MSEC(10), 10000);
  CHECK(T.cwnd >= 50000 && T.cwnd <= 52000);
  teardown();
}

TEST(newreno_reductions)
{
  setup(&toe_cc_newreno, 1000);
  T.cwnd = 50000;
  T.snd_max = T.snd_una + 40000;
  T.prior_cwnd = T.cwnd;
  T.cc->on_loss(H.st, &T);
  CHECK_EQ(T.ssthresh, 20000); /* FlightSize / 2 (RFC 5681 equation 4) */
  CHECK_EQ(T.cwnd, 20000);
  T.snd_max = T.snd_una + 1000;
  T.cc->on_loss(H.st, &T);
  CHECK_EQ(T.ssthresh, 2000); /* at least 2 SMSS */
  /* timeout */
  T.cwnd = 30000;
  T.snd_max = T.snd_una + 30000;
  T.rec_state = TOE_REC_OPEN;
  T.cc->on_rto(H.st, &T);
  CHECK_EQ(T.cwnd, 1000); /* the loss window, 1 SMSS */
  CHECK_EQ(T.ssthresh, 15000);
  T.rec_state = TOE_REC_LOSS;
  T.snd_max = T.snd_una + 4000;
  T.cc->on_rto(H.st, &T);
  CHECK_EQ(T.ssthresh, 15000); /* held on a repeated timeout (RFC 5681 3.1) */
  CHECK_EQ(T.cwnd, 1000);
  /* exit and undo */
  T.cwnd = 5000;
  T.cc->on_recovery_exit(H.st, &T);
  CHECK_EQ(T.cwnd, 15000);
  T.prior_cwnd = 40000;
  T.prior_ssthresh = TOE_CC_SSTHRESH_INF;
  T.cc->undo(H.st, &T);
  CHECK_EQ(T.cwnd, 40000);
  CHECK_EQ(T.ssthresh, TOE_CC_SSTHRESH_INF);
  teardown();
}

/* Runs CUBIC from a loss at cwnd = w0 segments with the given RTT and checks cwnd against
 * W_cubic(t) each round trip. */
TEST(cubic_follows_w_cubic)
{
  const uint32_t mss = 1000;
  setup(&toe_cc_cubic, mss);
  T.cwnd = 100 * mss;
  T.ssthresh = 50 * mss; /* in congestion avoidance */
  T.srtt_us = T.min_rtt_us = 100000;
  loss();
  CHECK_EQ(T.ssthresh, 70 * mss); /* beta_cubic = 0.7 */
  CHECK_EQ(T.cwnd, 70 * mss);
  const double wmax = 100, C = 0.4, beta = 0.7;
  const double K = cbrt_d(wmax * (1 - beta) / C); /* RFC 9438 figure 2: about 4.217 s */
  int worst_round = -1;
  double worst = 0;
  for (int r = 0; r <= 80; r++) {
    double t = r * 0.1;
    double expect = C * cube(t - K) + wmax;
    double got = (double)T.cwnd / mss;
    double err = got > expect ? got - expect : expect - got;
    if (err > 2.5 + 0.02 * expect && err > worst) {
      worst = err;
      worst_round = r;
    }
    round_trip(TOE_MSEC(100), 100000);
  }
  CHECK_EQ(worst_round, -1);
  /* the plateau around K sits at W_max, then the convex region takes off */
  teardown();
}

TEST(cubic_plateau_and_convex_region)
{
  const uint32_t mss = 1000;
  setup(&toe_cc_cubic, mss);
  T.cwnd = 100 * mss;
  T.ssthresh = 50 * mss;
  T.srtt_us = T.min_rtt_us = 100000;
  loss();
  for (int r = 0; r < 42; r++) /* t = K */
    round_trip(TOE_MSEC(100), 100000);
  CHECK(T.cwnd >= 98 * mss && T.cwnd <= 102 * mss);
  uint32_t at_k = T.cwnd;
  for (int r = 0; r < 10; r++)
    round_trip(TOE_MSEC(100), 100000);
  CHECK(T.cwnd - at_k < 2 * mss); /* flat: 0.4 * 1^3 = 0.4 segments in a second */
  for (int r = 0; r < 30; r++)
    round_trip(TOE_MSEC(100), 100000);
  /* t = K + 4 s: 0.4 * 64 = 25.6 segments above W_max */
  CHECK(T.cwnd >= 122 * mss && T.cwnd <= 130 * mss);
  teardown();
}

TEST(cubic_reno_friendly_region)
{
  /* A short RTT: W_cubic(t) barely moves in 1-ms rounds, the Reno estimate grows by
   * alpha = 3(1-beta)/(1+beta) = 0.53 segment per round (RFC 9438 4.3), then by 1 once it
   * passed the window before the loss. */
  const uint32_t mss = 1000;
  setup(&toe_cc_cubic, mss);
  T.cwnd = 100 * mss;
  T.ssthresh = 50 * mss;
  T.srtt_us = T.min_rtt_us = 1000;
  loss();
  for (int r = 0; r < 20; r++)
    round_trip(TOE_MSEC(1), 1000);
  double w = (double)T.cwnd / mss;
  CHECK(w >= 70 + 20 * 9.0 / 17 - 1.5 && w <= 70 + 20 * 9.0 / 17 + 1.5);
  for (int r = 0; r < 50; r++)
    round_trip(TOE_MSEC(1), 1000);
  uint32_t a = T.cwnd;
  CHECK(a > 100 * mss);
  for (int r = 0; r < 10; r++)
    round_trip(TOE_MSEC(1), 1000);
  CHECK(T.cwnd - a >= 8 * mss && T.cwnd - a <= 12 * mss);
  teardown();
}

TEST(cubic_fast_convergence)
{
  const uint32_t mss = 1000;
  setup(&toe_cc_cubic, mss);
  /* windows large enough for the cubic region to dominate the Reno-friendly one */
  T.cwnd = 1000 * mss;
  T.ssthresh = 500 * mss;
  T.srtt_us = T.min_rtt_us = 100000;
  loss(); /* W_max = 1000 */
  T.cwnd = 800 * mss;
  loss(); /* below W_max: W_max = 800 * (1 + 0.7) / 2 = 680 (RFC 9438 4.7) */
  CHECK_EQ(T.ssthresh, 560 * mss);
  /* K = cbrt((680 - 560) / 0.4) = 6.7 s: the plateau is at 680, not 800 */
  for (int r = 0; r < 67; r++)
    round_trip(TOE_MSEC(100), 100000);
  CHECK(T.cwnd >= 670 * mss && T.cwnd <= 690 * mss);
  teardown();
}

TEST(cubic_timeout_and_undo)
{
  const uint32_t mss = 1000;
  setup(&toe_cc_cubic, mss);
  T.cwnd = 100 * mss;
  T.ssthresh = 60 * mss;
  T.rec_state = TOE_REC_OPEN;
  T.prior_cwnd = T.cwnd;
  T.prior_ssthresh = T.ssthresh;
  T.cc->on_rto(H.st, &T);
  CHECK_EQ(T.cwnd, mss);
  CHECK_EQ(T.ssthresh, 70 * mss);
  T.rec_state = TOE_REC_LOSS;
  T.cc->on_rto(H.st, &T);
  CHECK_EQ(T.ssthresh, 70 * mss); /* repeated: held */
  T.cc->undo(H.st, &T);
  CHECK_EQ(T.cwnd, 100 * mss);
  CHECK_EQ(T.ssthresh, 70 * mss); /* max(current, prior) */
  /* after a timeout, slow start up to ssthresh, then the cubic epoch starts at that window
   * (K = 0, RFC 9438 4.8): no jump towards the old W_max */
  T.rec_state = TOE_REC_OPEN;
  T.cwnd = 100 * mss;
  T.prior_cwnd = T.cwnd;
  T.cc->on_rto(H.st, &T);
  T.srtt_us = T.min_rtt_us = 100000;
  int guard = 0;
  while (T.cwnd < T.ssthresh && guard++ < 100)
    round_trip(TOE_MSEC(100), 100000);
  uint32_t start = T.cwnd;
  round_trip(TOE_MSEC(100), 100000);
  CHECK(T.cwnd - start <= 2 * mss);
  teardown();
}

/* HyStart++: rounds of a full window with per-ACK RTT samples. */
static void hs_round(uint32_t rtt_us)
{
  uint32_t mss = T.snd_mss;
  T.snd_max = T.snd_una + T.cwnd;
  int n = (int)(T.cwnd / mss);
  h_advance(&H, (toe_time_t)rtt_us * 1000u);
  acks(n, mss, rtt_us);
}

TEST(hystart_exits_on_rtt_increase)
{
  setup(&toe_cc_cubic, 1000);
  const struct toe_counters_tcp *c = &toe_stack_counters(H.st)->tcp;
  uint32_t w[16];
  for (int r = 0; r < 4; r++) {
    w[r] = T.cwnd;
    hs_round(20000);
  }
  CHECK_EQ(T.cwnd, 16 * w[0]); /* plain slow start so far */
  CHECK_EQ(T.ssthresh, TOE_CC_SSTHRESH_INF);
  CHECK_EQ(c->rec_hystart_exits, 0);
  /* the queue builds: min RTT 20 -> 40 ms, more than RttThresh = max(4 ms, 20/8) above */
  w[4] = T.cwnd;
  hs_round(40000);
  CHECK_EQ(c->rec_hystart_exits, 1);
  CHECK(T.cwnd < 2 * w[4] * 7 / 10); /* growth slowed once CSS began (after 8 samples) */
  CHECK(T.cwnd > w[4]);
  CHECK_EQ(T.ssthresh, TOE_CC_SSTHRESH_INF); /* CSS, not yet avoidance */
  /* CSS: a quarter of slow start's growth per round */
  uint32_t a = T.cwnd;
  hs_round(40000);
  CHECK(T.cwnd >= a + a / 4 - 1000 && T.cwnd <= a + a / 4 + 1000);
  /* after CSS_ROUNDS rounds: congestion avoidance with ssthresh = cwnd */
  for (int r = 0; r < 5 && T.ssthresh == TOE_CC_SSTHRESH_INF; r++)
    hs_round(40000);
  CHECK(T.ssthresh != TOE_CC_SSTHRESH_INF);
  CHECK(T.ssthresh <= T.cwnd);
  uint32_t b = T.cwnd;
  hs_round(40000);
  CHECK(T.cwnd < b + b / 8); /* no more slow start */
  teardown();
}

TEST(hystart_keeps_slow_start_on_steady_rtt)
{
  setup(&toe_cc_cubic, 1000);
  uint32_t w0 = T.cwnd;
  for (int r = 0; r < 8; r++)
    hs_round(20000 + (uint32_t)(r % 2) * 1000); /* 1 ms of jitter: below MIN_RTT_THRESH */
  CHECK_EQ(T.cwnd, 256 * w0);
  CHECK_EQ(T.ssthresh, TOE_CC_SSTHRESH_INF);
  CHECK_EQ(toe_stack_counters(H.st)->tcp.rec_hystart_exits, 0);
  teardown();
}

TEST(hystart_css_back_to_slow_start)
{
  setup(&toe_cc_cubic, 1000);
  for (int r = 0; r < 4; r++)
    hs_round(20000);
  hs_round(40000); /* into CSS */
  CHECK_EQ(toe_stack_counters(H.st)->tcp.rec_hystart_exits, 1);
  hs_round(20000); /* the RTT was a blip: back to slow start within this round */
  uint32_t a = T.cwnd;
  hs_round(20000);
  CHECK(T.cwnd + 1000 > 2 * a); /* doubling again (whole-MSS ACKs of a window) */
  CHECK_EQ(T.ssthresh, TOE_CC_SSTHRESH_INF);
  teardown();
}

TEST(newreno_has_no_hystart)
{
  setup(&toe_cc_newreno, 1000);
  for (int r = 0; r < 4; r++)
    hs_round(20000);
  uint32_t a = T.cwnd;
  hs_round(60000);
  CHECK_EQ(T.cwnd, 2 * a);
  teardown();
}

TEST_MAIN()
