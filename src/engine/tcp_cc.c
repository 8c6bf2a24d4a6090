/*
 * Congestion control: the module table behind struct toe_cc_ops and the window arithmetic the
 * modules share (RFC 5681 slow start, RFC 3465 byte counting, RFC 6928 initial window).
 *
 * The modules (cc_newreno.c, cc_cubic.c) only move cwnd and ssthresh; deciding when a loss episode
 * starts or ends, and sending, belong to tcp_recovery.c.
 */
#include "engine/stack.h"
#include "engine/tcp.h"

const struct toe_cc_ops *toe_cc_by_id(uint32_t id)
{
  switch (id) {
  case TOE_CC_NEWRENO:
    return &toe_cc_newreno;
  case TOE_CC_CUBIC:
    return &toe_cc_cubic;
  default:
    return NULL;
  }
}

uint32_t toe_cc_mss(const struct toe_tcb *tp)
{
  /* RFC 5681 2: SMSS is the largest segment the sender transmits, options excluded: the output
   * path's effective MSS (536 without an MSS option, RFC 9293 3.7.1; less the timestamps). */
  return toe_tcp_eff_mss(tp);
}

uint32_t toe_cc_initial_window(uint32_t mss)
{
  /* RFC 6928 2: IW = min(10*MSS, max(2*MSS, 14600)). */
  uint32_t w = 2u * mss > 14600u ? 2u * mss : 14600u;
  return w < 10u * mss ? w : 10u * mss;
}

uint32_t toe_cc_iw(const struct toe_tcb *tp)
{
  /* RFC 5681 3.1: "if the SYN or SYN/ACK is lost, the initial window used by a sender after a
   * correctly transmitted SYN MUST be one segment". */
  if (tp->syn_retries)
    return toe_cc_mss(tp);
  return toe_cc_initial_window(toe_cc_mss(tp));
}

uint32_t toe_cc_flight(const struct toe_tcb *tp)
{
  return tp->snd_max - tp->snd_una;
}

uint32_t toe_cc_slow_start(struct toe_tcb *tp, uint32_t acked, uint32_t limit)
{
  /* RFC 3465 2.2: grow by the bytes acknowledged, at most L per ACK. */
  uint32_t inc = acked < limit ? acked : limit;
  uint32_t room = tp->ssthresh > tp->cwnd ? tp->ssthresh - tp->cwnd : 0;
  if (inc <= room) {
    tp->cwnd += inc;
    return 0;
  }
  /* Reaching ssthresh mid-ACK: the rest of this ACK counts for congestion avoidance. */
  tp->cwnd += room;
  return acked - room;
}

void toe_tcp_cc_init(struct toe_stack *st, struct toe_tcb *tp)
{
  if (!tp->cc) {
    tp->cc = toe_cc_by_id(st->cfg.tcp_cc);
    if (!tp->cc)
      tp->cc = &toe_cc_cubic; /* the default (include/toe/engine.h) */
  }
  tp->cc->init(st, tp);
}
