/*
 * NewReno congestion control: RFC 5681 window growth and reduction. The recovery mechanics of
 * RFC 6582 (fast retransmit, partial ACKs, window inflation) live in tcp_recovery.c; this module
 * only sets cwnd and ssthresh.
 *
 *   slow start            cwnd += min(acked, L) per ACK with L = 2*SMSS (RFC 3465 2.2)
 *   congestion avoidance  cwnd += SMSS once a full cwnd of bytes was acknowledged (RFC 3465 2.1,
 *                         RFC 5681 3.1 "byte counting")
 *   loss                  ssthresh = max(FlightSize / 2, 2*SMSS) (RFC 5681 equation 4)
 *   timeout               cwnd = LW = 1 SMSS (RFC 5681 3.1)
 */
#include "engine/stack.h"
#include "engine/tcp.h"

static uint32_t reno_ssthresh(const struct toe_tcb *tp)
{
  uint32_t mss = toe_cc_mss(tp);
  uint32_t half = toe_cc_flight(tp) / 2u;
  return half > 2u * mss ? half : 2u * mss;
}

static void reno_init(struct toe_stack *st, struct toe_tcb *tp)
{
  (void)st;
  tp->cwnd = toe_cc_iw(tp);
  tp->ssthresh = TOE_CC_SSTHRESH_INF; /* RFC 5681 3.1: arbitrarily high */
  tp->bytes_acked_ca = 0;
}

static void reno_on_ack(struct toe_stack *st, struct toe_tcb *tp, uint32_t acked, uint32_t rtt_us)
{
  (void)st;
  (void)rtt_us;
  uint32_t mss = toe_cc_mss(tp);
  if (tp->cwnd < tp->ssthresh) {
    acked = toe_cc_slow_start(tp, acked, 2u * mss);
    if (!acked)
      return;
  }
  /* Congestion avoidance by byte counting: one SMSS per cwnd of acknowledged bytes. */
  tp->bytes_acked_ca += acked;
  if (tp->bytes_acked_ca >= tp->cwnd) {
    tp->bytes_acked_ca -= tp->cwnd;
    if (tp->cwnd < TOE_CC_CWND_MAX)
      tp->cwnd += mss;
  }
}

static void reno_on_loss(struct toe_stack *st, struct toe_tcb *tp)
{
  (void)st;
  tp->ssthresh = reno_ssthresh(tp);
  tp->cwnd = tp->ssthresh;
  tp->bytes_acked_ca = 0;
}

static void reno_on_rto(struct toe_stack *st, struct toe_tcb *tp)
{
  (void)st;
  /* RFC 5681 3.1: ssthresh is held on a repeated timeout (rec_state not OPEN). */
  if (tp->rec_state == TOE_REC_OPEN)
    tp->ssthresh = reno_ssthresh(tp);
  tp->cwnd = toe_cc_mss(tp);
  tp->bytes_acked_ca = 0;
}

static void reno_on_recovery_exit(struct toe_stack *st, struct toe_tcb *tp)
{
  (void)st;
  /* RFC 6675 / RFC 6937: the episode ends with cwnd = ssthresh. */
  if (tp->ssthresh < TOE_CC_SSTHRESH_INF)
    tp->cwnd = tp->ssthresh;
  tp->bytes_acked_ca = 0;
}

static void reno_undo(struct toe_stack *st, struct toe_tcb *tp)
{
  (void)st;
  if (tp->cwnd < tp->prior_cwnd)
    tp->cwnd = tp->prior_cwnd;
  if (tp->ssthresh < tp->prior_ssthresh)
    tp->ssthresh = tp->prior_ssthresh;
  tp->bytes_acked_ca = 0;
}

const struct toe_cc_ops toe_cc_newreno = {
    .name = "newreno",
    .id = TOE_CC_NEWRENO,
    .init = reno_init,
    .on_ack = reno_on_ack,
    .on_loss = reno_on_loss,
    .on_rto = reno_on_rto,
    .on_recovery_exit = reno_on_recovery_exit,
    .undo = reno_undo,
};
