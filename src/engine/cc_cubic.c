/*
 * CUBIC congestion control (RFC 9438) with HyStart++ slow start (RFC 9406), in integers only.
 *
 * Units: windows in bytes (the RFC's formulas are in segments: every "segment" below is
 * toe_cc_mss(tp) bytes), time in milliseconds of the stack clock, RTTs in microseconds.
 *
 *   W_cubic(t) = C * (t - K)^3 + W_max                      (RFC 9438 4.2, figure 1)
 *   K          = cbrt((W_max - cwnd_epoch) / C)              (figure 2)
 *   with C = 0.4 segments/s^3, so in bytes and ms:
 *     C * d^3 * SMSS = 4 * d_ms^3 * SMSS / 10^10
 *     K_ms^3         = (W_max - cwnd_epoch) * 2.5 * 10^9 / SMSS
 *   beta_cubic = 0.7, alpha_cubic = 3 * (1 - beta) / (1 + beta) = 9/17 (figure 4).
 */
#include "engine/div64.h"
#include "engine/stack.h"
#include "engine/tcp.h"

#include <string.h>

/* HyStart++ constants (RFC 9406 4.3). */
#define HS_MIN_RTT_THRESH_US 4000u
#define HS_MAX_RTT_THRESH_US 16000u
#define HS_MIN_RTT_DIVISOR 8u
#define HS_N_RTT_SAMPLE 8u
#define HS_CSS_GROWTH_DIVISOR 4u
#define HS_CSS_ROUNDS 5u
#define HS_L 8u /* segments per ACK in slow start when not pacing (RFC 9406 4.3) */
#define HS_RTT_INF UINT32_MAX

enum { HS_SS = 0, HS_CSS = 1, HS_DONE = 2 };

#define CUBIC_F_EPOCH 0x01u    /* a congestion avoidance epoch is running (epoch_ms, k_ms valid) */
#define CUBIC_F_RESET_WM 0x02u /* next epoch: K = 0, W_max = cwnd (RFC 9438 4.8, 4.10) */
#define CUBIC_F_HS_ROUND 0x04u /* HyStart++ round_end is valid */

struct cubic {
  uint32_t w_max;      /* bytes: window before the last reduction, after fast convergence */
  uint32_t w_max_undo; /* w_max before the last reduction (RFC 9438 4.9) */
  uint32_t k_ms;       /* K */
  uint32_t epoch_ms;   /* start of the current congestion avoidance stage */
  uint32_t w_est;      /* Reno-friendly estimate (RFC 9438 4.3), bytes */
  uint32_t est_acc;    /* remainder of the W_est increase, in bytes*17 units */
  /* HyStart++ (RFC 9406 4.2) */
  uint32_t round_end;   /* windowEnd: the round ends when SND.UNA reaches it */
  uint32_t last_min_us; /* lastRoundMinRTT */
  uint32_t cur_min_us;  /* currentRoundMinRTT */
  uint32_t css_base_us; /* cssBaselineMinRtt */
  uint8_t samples;      /* rttSampleCount */
  uint8_t css_rounds;
  uint8_t hs_state;
  uint8_t flags; /* CUBIC_F_* */
};
_Static_assert(sizeof(struct cubic) <= sizeof(((struct toe_tcb *)0)->cc_priv),
               "CUBIC state must fit in tcb.cc_priv");

static struct cubic *cubic_of(struct toe_tcb *tp)
{
  return (struct cubic *)(void *)tp->cc_priv;
}

static uint32_t now_ms(const struct toe_stack *st)
{
  return (uint32_t)toe_div1000000(toe_stack_now(st));
}

/* floor(cbrt(x)) by binary search on the 22 bits the result can have (2642245^3 < 2^64). */
static uint32_t icbrt64(uint64_t x)
{
  uint32_t y = 0;
  for (int bit = 21; bit >= 0; bit--) {
    uint64_t c = (uint64_t)y | (1ull << bit);
    if (c <= 2642245u && c * c * c <= x)
      y = (uint32_t)c;
  }
  return y;
}

/* C * d^3 in bytes for d in ms: 4 * d^3 * mss / 10^10. */
static uint64_t cubic_term(uint64_t d_ms, uint32_t mss)
{
  if (d_ms > (1u << 20)) /* ~17 minutes: far beyond any window that fits the clamp below */
    d_ms = 1u << 20;
  uint64_t d3 = d_ms * d_ms * d_ms; /* < 2^61 */
  uint64_t m4 = 4ull * mss;
  if (d3 <= UINT64_MAX / m4)
    return toe_div1e10(d3 * m4);
  return toe_div1e10(d3) * m4;
}

/* W_cubic(t) in bytes, t in ms since the epoch began (RFC 9438 figure 1). */
static uint32_t w_cubic(const struct cubic *c, uint32_t t_ms, uint32_t mss)
{
  uint64_t w;
  if (t_ms >= c->k_ms) {
    w = (uint64_t)c->w_max + cubic_term(t_ms - c->k_ms, mss);
  } else {
    uint64_t d = cubic_term(c->k_ms - t_ms, mss);
    w = d < c->w_max ? c->w_max - d : 0;
  }
  return w > TOE_CC_CWND_MAX ? TOE_CC_CWND_MAX : (uint32_t)w;
}

static void cubic_reset_hystart(struct cubic *c)
{
  c->hs_state = HS_SS;
  c->last_min_us = HS_RTT_INF;
  c->cur_min_us = HS_RTT_INF;
  c->css_base_us = HS_RTT_INF;
  c->samples = 0;
  c->css_rounds = 0;
  c->flags &= (uint8_t)~CUBIC_F_HS_ROUND;
}

static void cubic_init(struct toe_stack *st, struct toe_tcb *tp)
{
  (void)st;
  struct cubic *c = cubic_of(tp);
  memset(c, 0, sizeof(*c));
  cubic_reset_hystart(c);
  tp->cwnd = toe_cc_iw(tp);
  tp->ssthresh = TOE_CC_SSTHRESH_INF;
  tp->bytes_acked_ca = 0;
}

/* Starts a congestion avoidance stage (RFC 9438 4.2: cwnd_epoch, K; 4.3: W_est = cwnd_epoch). */
static void cubic_start_epoch(struct toe_stack *st, struct toe_tcb *tp, struct cubic *c)
{
  uint32_t mss = toe_cc_mss(tp);
  c->epoch_ms = now_ms(st);
  c->flags |= CUBIC_F_EPOCH;
  if ((c->flags & CUBIC_F_RESET_WM) || c->w_max <= tp->cwnd) {
    /* After a timeout or a slow start left without loss (RFC 9438 4.8, 4.10): K = 0 and W_max is
     * the window at the start of the stage. */
    c->w_max = tp->cwnd;
    c->k_ms = 0;
    c->flags &= (uint8_t)~CUBIC_F_RESET_WM;
  } else {
    uint64_t k3 = toe_udiv64((uint64_t)(c->w_max - tp->cwnd) * 2500000000ull, mss);
    c->k_ms = icbrt64(k3);
  }
  c->w_est = tp->cwnd;
  c->est_acc = 0;
  tp->bytes_acked_ca = 0;
}

/* RFC 9438 4.3-4.5: one ACK of `acked` bytes in congestion avoidance. */
static void cubic_ca(struct toe_stack *st, struct toe_tcb *tp, struct cubic *c, uint32_t acked)
{
  uint32_t mss = toe_cc_mss(tp);
  if (!(c->flags & CUBIC_F_EPOCH))
    cubic_start_epoch(st, tp, c);
  uint32_t t = now_ms(st) - c->epoch_ms;
  uint32_t rtt_ms = (tp->srtt_us ? tp->srtt_us : tp->min_rtt_us) / 1000u;

  /* Reno-friendly region: W_est += alpha * segments_acked / cwnd (segments), alpha = 9/17 until
   * W_est reaches the window before the last reduction, 1 afterwards (4.3). */
  uint32_t a_num = c->w_est >= tp->prior_cwnd ? 17u : 9u;
  uint64_t est = (uint64_t)c->est_acc + (uint64_t)acked * mss * a_num;
  uint64_t div = (uint64_t)tp->cwnd * 17u;
  uint64_t inc = toe_udiv64(est, div);
  est -= inc * div;
  c->est_acc = est <= UINT32_MAX ? (uint32_t)est : 0;
  uint64_t w_est = (uint64_t)c->w_est + inc;
  c->w_est = w_est > TOE_CC_CWND_MAX ? TOE_CC_CWND_MAX : (uint32_t)w_est;

  if (w_cubic(c, t, mss) < c->w_est) {
    /* 4.3: in the Reno-friendly region cwnd follows W_est. */
    if (tp->cwnd < c->w_est)
      tp->cwnd = c->w_est;
    return;
  }

  /* 4.4/4.5: target = W_cubic(t + RTT) clamped to [cwnd, 1.5 cwnd]; cwnd grows by
   * (target - cwnd) / cwnd per segment acknowledged. */
  uint32_t target = w_cubic(c, t + rtt_ms, mss);
  uint32_t hi = tp->cwnd + tp->cwnd / 2u;
  if (target > hi)
    target = hi;
  if (target <= tp->cwnd)
    return;
  uint64_t acc = (uint64_t)tp->bytes_acked_ca + (uint64_t)(target - tp->cwnd) * acked;
  uint64_t grow = toe_udiv64(acc, tp->cwnd);
  tp->bytes_acked_ca = (uint32_t)(acc - grow * tp->cwnd);
  uint64_t w = (uint64_t)tp->cwnd + grow;
  tp->cwnd = w > TOE_CC_CWND_MAX ? TOE_CC_CWND_MAX : (uint32_t)w;
}

/*
 * HyStart++ (RFC 9406 4.2) bookkeeping for one ACK during the initial slow start: rounds, the
 * per-round minimum RTT, and the decisions SS -> CSS (RTT grew), CSS -> SS (it did not last),
 * CSS -> congestion avoidance (after CSS_ROUNDS rounds).
 */
static void hystart_on_ack(struct toe_stack *st, struct toe_tcb *tp, struct cubic *c,
                           uint32_t rtt_us)
{
  if (!(c->flags & CUBIC_F_HS_ROUND) || toe_seq_ge(tp->snd_una, c->round_end)) {
    /* A new round: windowEnd = SND.NXT (the highest sequence sent). */
    bool first = !(c->flags & CUBIC_F_HS_ROUND);
    c->flags |= CUBIC_F_HS_ROUND;
    c->round_end = tp->snd_max;
    c->last_min_us = c->cur_min_us;
    c->cur_min_us = HS_RTT_INF;
    c->samples = 0;
    if (!first && c->hs_state == HS_CSS && ++c->css_rounds >= HS_CSS_ROUNDS) {
      /* CSS lasted CSS_ROUNDS rounds: enter congestion avoidance. */
      tp->ssthresh = tp->cwnd;
      c->hs_state = HS_DONE;
      return;
    }
  }
  if (rtt_us) {
    if (rtt_us < c->cur_min_us)
      c->cur_min_us = rtt_us;
    if (c->samples < 255)
      c->samples++;
  }
  if (c->samples < HS_N_RTT_SAMPLE || c->cur_min_us == HS_RTT_INF)
    return;
  if (c->hs_state == HS_SS) {
    if (c->last_min_us == HS_RTT_INF)
      return;
    uint32_t thresh = c->last_min_us / HS_MIN_RTT_DIVISOR;
    if (thresh < HS_MIN_RTT_THRESH_US)
      thresh = HS_MIN_RTT_THRESH_US;
    if (thresh > HS_MAX_RTT_THRESH_US)
      thresh = HS_MAX_RTT_THRESH_US;
    if ((uint64_t)c->cur_min_us >= (uint64_t)c->last_min_us + thresh) {
      c->css_base_us = c->cur_min_us;
      c->hs_state = HS_CSS;
      c->css_rounds = 0;
      st->ctr.tcp.rec_hystart_exits++;
    }
  } else if (c->hs_state == HS_CSS && c->cur_min_us < c->css_base_us) {
    /* The RTT increase was spurious: back to slow start. */
    c->css_base_us = HS_RTT_INF;
    c->hs_state = HS_SS;
  }
}

static void cubic_on_ack(struct toe_stack *st, struct toe_tcb *tp, uint32_t acked, uint32_t rtt_us)
{
  struct cubic *c = cubic_of(tp);
  uint32_t mss = toe_cc_mss(tp);
  if (!acked)
    return;
  if (tp->cwnd < tp->ssthresh) {
    /* HyStart++ only in the first slow start: afterwards ssthresh already bounds it. */
    bool hs = tp->ssthresh == TOE_CC_SSTHRESH_INF && c->hs_state != HS_DONE;
    if (hs) {
      hystart_on_ack(st, tp, c, rtt_us);
      if (tp->cwnd >= tp->ssthresh)
        goto ca; /* CSS just ended */
    }
    if (hs && c->hs_state == HS_CSS) {
      /* Conservative slow start: a quarter of the growth (RFC 9406 4.2). */
      uint32_t inc = acked < HS_L * mss ? acked : HS_L * mss;
      inc /= HS_CSS_GROWTH_DIVISOR;
      tp->cwnd = tp->cwnd + inc > TOE_CC_CWND_MAX ? TOE_CC_CWND_MAX : tp->cwnd + inc;
      return;
    }
    acked = toe_cc_slow_start(tp, acked, (hs ? HS_L : 2u) * mss);
    if (!acked)
      return;
  }
ca:
  if (tp->cwnd >= TOE_CC_CWND_MAX)
    return;
  cubic_ca(st, tp, c, acked);
}

/* RFC 9438 4.6 and 4.7: multiplicative decrease with fast convergence. */
static void cubic_reduce(struct toe_tcb *tp, struct cubic *c)
{
  uint32_t mss = toe_cc_mss(tp);
  c->w_max_undo = c->w_max;
  if (c->w_max && tp->cwnd < c->w_max)
    c->w_max = toe_muldiv32(tp->cwnd, 17u, 20u); /* cwnd * (1 + beta) / 2 */
  else
    c->w_max = tp->cwnd;
  uint32_t ss = toe_muldiv32(tp->cwnd, 7u, 10u); /* cwnd * beta_cubic */
  tp->ssthresh = ss > 2u * mss ? ss : 2u * mss;
  c->flags &= (uint8_t) ~(CUBIC_F_EPOCH | CUBIC_F_RESET_WM);
  c->hs_state = HS_DONE;
  tp->bytes_acked_ca = 0;
}

static void cubic_on_loss(struct toe_stack *st, struct toe_tcb *tp)
{
  (void)st;
  struct cubic *c = cubic_of(tp);
  cubic_reduce(tp, c);
  tp->cwnd = tp->ssthresh;
}

static void cubic_on_rto(struct toe_stack *st, struct toe_tcb *tp)
{
  (void)st;
  struct cubic *c = cubic_of(tp);
  /* RFC 9438 4.8: ssthresh as for a loss (once per episode, RFC 5681 3.1), cwnd = 1 SMSS, and the
   * first congestion avoidance stage afterwards starts with K = 0, W_max = cwnd then. */
  if (tp->rec_state == TOE_REC_OPEN)
    cubic_reduce(tp, c);
  c->flags &= (uint8_t)~CUBIC_F_EPOCH;
  c->flags |= CUBIC_F_RESET_WM;
  c->hs_state = HS_DONE;
  tp->cwnd = toe_cc_mss(tp);
  tp->bytes_acked_ca = 0;
}

static void cubic_on_recovery_exit(struct toe_stack *st, struct toe_tcb *tp)
{
  (void)st;
  if (tp->ssthresh < TOE_CC_SSTHRESH_INF)
    tp->cwnd = tp->ssthresh;
  tp->bytes_acked_ca = 0;
}

static void cubic_undo(struct toe_stack *st, struct toe_tcb *tp)
{
  (void)st;
  struct cubic *c = cubic_of(tp);
  /* RFC 9438 4.9: restore the state before the spurious congestion event; the epoch restarts
   * from the restored window. */
  if (tp->cwnd < tp->prior_cwnd)
    tp->cwnd = tp->prior_cwnd;
  if (tp->ssthresh < tp->prior_ssthresh)
    tp->ssthresh = tp->prior_ssthresh;
  c->w_max = c->w_max_undo;
  c->flags &= (uint8_t) ~(CUBIC_F_EPOCH | CUBIC_F_RESET_WM);
  tp->bytes_acked_ca = 0;
}

const struct toe_cc_ops toe_cc_cubic = {
    .name = "cubic",
    .id = TOE_CC_CUBIC,
    .init = cubic_init,
    .on_ack = cubic_on_ack,
    .on_loss = cubic_on_loss,
    .on_rto = cubic_on_rto,
    .on_recovery_exit = cubic_on_recovery_exit,
    .undo = cubic_undo,
};
