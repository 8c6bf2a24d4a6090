/*
 * Round-trip time estimation and the retransmission timeout (RFC 6298).
 *
 * Units are microseconds. The clock granularity G of RFC 6298 2 is one millisecond (the timer
 * wheel's tick, and our timestamp clock), so RTO = SRTT + max(G, K*RTTVAR) with K = 4, then
 * clamped to [cfg.tcp_rto_min, cfg.tcp_rto_max] (RFC 6298 2.4 and 2.5; the minimum defaults to
 * 200 ms like Linux rather than the RFC's conservative 1 s). Samples come from the ACK processing
 * (tcp-rec): from timestamps (RFC 7323 4) or from segments never retransmitted (Karn's rule,
 * RFC 6298 3).
 */
#include "engine/div64.h"
#include "engine/stack.h"
#include "engine/tcp.h"

#define RTT_G_US 1000u /* clock granularity G */
#define RTT_K 4u
#define DEFAULT_RTO_MIN_US 200000u
#define DEFAULT_RTO_MAX_US 60000000u
#define DEFAULT_RTO_INIT_US 1000000u
#define MAX_BACKOFF_SHIFT 16u

static uint32_t ns_to_us_clamped(toe_time_t ns, uint32_t fallback)
{
  if (ns == 0)
    return fallback;
  toe_time_t us = toe_div1000(ns);
  if (us == 0)
    return 1;
  return us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

static uint32_t rto_min_us(const struct toe_stack *st)
{
  return ns_to_us_clamped(st->cfg.tcp_rto_min, DEFAULT_RTO_MIN_US);
}

static uint32_t rto_max_us(const struct toe_stack *st)
{
  uint32_t mx = ns_to_us_clamped(st->cfg.tcp_rto_max, DEFAULT_RTO_MAX_US);
  uint32_t mn = rto_min_us(st);
  return mx < mn ? mn : mx;
}

static uint32_t rto_clamp(const struct toe_stack *st, uint64_t rto)
{
  uint32_t mn = rto_min_us(st), mx = rto_max_us(st);
  if (rto < mn)
    return mn;
  if (rto > mx)
    return mx;
  return (uint32_t)rto;
}

/* The RTO before any sample (RFC 6298 2.1: 1 s by default). Used by toe_tcb_alloc. */
uint32_t toe_tcp_rto_initial_us(const struct toe_stack *st)
{
  return rto_clamp(st, ns_to_us_clamped(st->cfg.tcp_rto_initial, DEFAULT_RTO_INIT_US));
}

void toe_tcp_rtt_sample(struct toe_stack *st, struct toe_tcb *tp, uint32_t rtt_us)
{
  if (rtt_us == 0)
    rtt_us = 1; /* srtt_us == 0 means "no sample yet" */
  if (tp->srtt_us == 0) {
    /* RFC 6298 2.2: the first measurement R: SRTT = R, RTTVAR = R/2 */
    tp->srtt_us = rtt_us;
    tp->rttvar_us = rtt_us / 2;
  } else {
    /* RFC 6298 2.3: RTTVAR = (1 - beta) RTTVAR + beta |SRTT - R'|, beta = 1/4;
     * SRTT = (1 - alpha) SRTT + alpha R', alpha = 1/8 (RTTVAR first, with the old SRTT) */
    uint32_t delta = tp->srtt_us > rtt_us ? tp->srtt_us - rtt_us : rtt_us - tp->srtt_us;
    tp->rttvar_us = (uint32_t)(((uint64_t)tp->rttvar_us * 3u + delta) / 4u);
    tp->srtt_us = (uint32_t)(((uint64_t)tp->srtt_us * 7u + rtt_us) / 8u);
    if (tp->srtt_us == 0)
      tp->srtt_us = 1;
  }
  uint64_t var = (uint64_t)tp->rttvar_us * RTT_K;
  tp->rto_us = rto_clamp(st, (uint64_t)tp->srtt_us + (var > RTT_G_US ? var : RTT_G_US));
  if (tp->min_rtt_us == 0 || rtt_us < tp->min_rtt_us)
    tp->min_rtt_us = rtt_us;
  /* Karn / RFC 6298 5.7 spirit: a valid sample ends the backed-off period */
  tp->rto_backoff = 0;
}

uint32_t toe_tcp_rto_us(const struct toe_stack *st, const struct toe_tcb *tp)
{
  uint32_t base = tp->rto_us ? tp->rto_us : toe_tcp_rto_initial_us(st);
  unsigned shift = tp->rto_backoff > MAX_BACKOFF_SHIFT ? MAX_BACKOFF_SHIFT : tp->rto_backoff;
  /* RFC 6298 5.5: each expiry doubles the RTO; 2.5: a maximum may be placed on it */
  return rto_clamp(st, (uint64_t)base << shift);
}
