/*
 * Per-connection timers: one wheel timer per tcb, armed for the earliest of its deadlines
 * (retransmission, tail-loss probe, RACK reordering, persist, delayed ACK, keepalive, orphaned
 * FIN_WAIT_2), and what each one does when it expires.
 *
 * Deadlines move often (the RTO is restarted by nearly every ACK, RFC 6298 5.3), so moving one
 * later only writes deadline[]; the wheel timer keeps its earlier expiry, finds nothing due when
 * it fires, and re-arms itself for the new earliest deadline. Only a deadline earlier than the
 * wheel timer touches the wheel.
 */
#include "engine/stack.h"
#include "engine/tcp.h"

/* The order expired deadlines are handled in: losses first, then probes, then ACKs. */
static const uint8_t timer_order[TOE_TT_COUNT] = {
    TOE_TT_RTO, TOE_TT_TLP, TOE_TT_REO, TOE_TT_PERSIST, TOE_TT_DELACK, TOE_TT_KEEP, TOE_TT_FINWAIT2,
};

#define DEFAULT_SYN_RETRIES 6u
#define DEFAULT_RETRIES2 15u
#define DEFAULT_KEEP_CNT 9u
#define MAX_PERSIST_SHIFT 16u

static bool tcb_alive(const struct toe_tcb *tp)
{
  return tp->sk.proto == TOE_IPPROTO_TCP;
}

static toe_time_t earliest_deadline(const struct toe_tcb *tp)
{
  toe_time_t min = 0;
  for (int k = 0; k < TOE_TT_COUNT; k++) {
    toe_time_t d = tp->deadline[k];
    if (d != 0 && (min == 0 || d < min))
      min = d;
  }
  return min;
}

static toe_time_t us_to_ns(uint32_t us)
{
  return (toe_time_t)us * 1000u;
}

void toe_tcp_timer_set(struct toe_stack *st, struct toe_tcb *tp, enum toe_tcp_timer_kind k,
                       toe_time_t when)
{
  if ((unsigned)k >= TOE_TT_COUNT)
    return;
  if (when == 0)
    when = 1; /* 0 means "not armed" */
  tp->deadline[k] = when;
  if (!toe_timer_pending(&tp->timer) || tp->timer.expires > when)
    toe_timer_arm(st, &tp->timer, when);
}

void toe_tcp_timer_clear(struct toe_stack *st, struct toe_tcb *tp, enum toe_tcp_timer_kind k)
{
  /* Not armed: nothing changes. (The wheel timer is never pending with every deadline clear:
   * clearing the last one cancels it, and a firing one re-arms only for a deadline left.) Most
   * calls are of this kind -- every ACK clears timers that are not set -- and the scan of the
   * deadlines below is what they would cost. */
  if ((unsigned)k >= TOE_TT_COUNT || tp->deadline[k] == 0)
    return;
  tp->deadline[k] = 0;
  /* the wheel timer stays (lazily) unless nothing is armed at all */
  if (earliest_deadline(tp) == 0)
    toe_timer_cancel(st, &tp->timer);
}

static toe_time_t persist_interval(const struct toe_stack *st, const struct toe_tcb *tp)
{
  /* RFC 9293 3.8.6.1 / RFC 1122 4.2.2.17: the first probe after one RTO, then exponentially
   * backed off, bounded like the RTO */
  struct toe_tcb tmp = *tp;
  tmp.rto_backoff =
      (uint8_t)(tp->persist_backoff > MAX_PERSIST_SHIFT ? MAX_PERSIST_SHIFT : tp->persist_backoff);
  return us_to_ns(toe_tcp_rto_us(st, &tmp));
}

void toe_tcp_rearm_rto(struct toe_stack *st, struct toe_tcb *tp)
{
  toe_time_t now = toe_stack_now(st);
  if (tp->state == TOE_TCP_SYN_SENT || tp->state == TOE_TCP_SYN_RECEIVED) {
    toe_tcp_timer_set(st, tp, TOE_TT_RTO, now + us_to_ns(toe_tcp_rto_us(st, tp)));
    return;
  }
  if (tp->snd_una == tp->snd_max) {
    /* RFC 6298 5.2: all outstanding data acknowledged: turn the timer off */
    toe_tcp_timer_clear(st, tp, TOE_TT_RTO);
    toe_tcp_timer_clear(st, tp, TOE_TT_TLP);
    if (toe_tcp_zero_window_wait(tp) && tp->deadline[TOE_TT_PERSIST] == 0)
      toe_tcp_timer_set(st, tp, TOE_TT_PERSIST, now + persist_interval(st, tp));
    return;
  }
  if (toe_tcp_zero_window_wait(tp)) {
    /* what is outstanding is a window probe: the persist timer retransmits it, with its own
     * backoff and without the tcp_retries2 limit (RFC 1122 4.2.2.17) */
    toe_tcp_timer_clear(st, tp, TOE_TT_RTO);
    toe_tcp_timer_clear(st, tp, TOE_TT_TLP);
    if (tp->deadline[TOE_TT_PERSIST] == 0)
      toe_tcp_timer_set(st, tp, TOE_TT_PERSIST, now + persist_interval(st, tp));
    return;
  }
  toe_tcp_timer_clear(st, tp, TOE_TT_PERSIST);
  /* RFC 6298 5.3: (re)start so that it expires after RTO */
  toe_tcp_timer_set(st, tp, TOE_TT_RTO, now + us_to_ns(toe_tcp_rto_us(st, tp)));
  toe_tcp_tlp_schedule(st, tp);
}

/* The error a connection that timed out reports: an ICMP soft error seen meanwhile (RFC 1122
 * 4.2.3.9, as Linux reports EHOSTUNREACH for an unreachable peer), else -TOE_ETIMEDOUT. */
static int timeout_error(const struct toe_tcb *tp)
{
  return tp->icmp_soft_err ? tp->icmp_soft_err : -TOE_ETIMEDOUT;
}

static void on_rto_timer(struct toe_stack *st, struct toe_tcb *tp)
{
  const struct toe_config *cfg = &st->cfg;
  toe_time_t now = toe_stack_now(st);
  switch (tp->state) {
  case TOE_TCP_SYN_SENT:
  case TOE_TCP_SYN_RECEIVED: {
    /* RFC 9293 3.8.1 / RFC 6298 5.5 for the SYN: retransmit with backoff; RFC 1122 4.2.3.5:
     * give up after a bounded number of retransmissions (R2 for the SYN) */
    uint8_t limit = cfg->tcp_syn_retries ? cfg->tcp_syn_retries : DEFAULT_SYN_RETRIES;
    st->ctr.tcp.rto_expired++;
    tp->rto_count++;
    if (tp->syn_retries >= limit) {
      st->ctr.tcp.timeout_drops++;
      toe_tcp_drop(st, tp, timeout_error(tp));
      return;
    }
    tp->syn_retries++;
    if (tp->rto_backoff < 31)
      tp->rto_backoff++;
    tp->snd_nxt = tp->iss; /* toe_tcp_output sends the SYN (SYN-ACK) again */
    toe_tcp_output(st, tp);
    toe_tcp_timer_set(st, tp, TOE_TT_RTO, now + us_to_ns(toe_tcp_rto_us(st, tp)));
    return;
  }
  case TOE_TCP_CLOSED:
  case TOE_TCP_LISTEN:
  case TOE_TCP_TIME_WAIT:
    return;
  default:
    break;
  }
  if (tp->snd_una == tp->snd_max)
    return; /* everything was acknowledged meanwhile */
  if (toe_tcp_zero_window_wait(tp)) {
    toe_tcp_rearm_rto(st, tp); /* hands over to the persist timer */
    return;
  }
  st->ctr.tcp.rto_expired++;
  tp->rto_count++;
  if (tp->rto_una != tp->snd_una) {
    /* the connection progressed since the last expiry: a new count (RFC 1122 4.2.3.5 counts
     * retransmissions of the same segment) */
    tp->rto_una = tp->snd_una;
    tp->rto_retries = 0;
  }
  uint8_t limit = cfg->tcp_retries2 ? cfg->tcp_retries2 : DEFAULT_RETRIES2;
  if (tp->rto_retries >= limit) {
    st->ctr.tcp.timeout_drops++;
    toe_tcp_drop(st, tp, timeout_error(tp));
    return;
  }
  tp->rto_retries++;

  /* tcp-rec marks the flight lost, tells congestion control, retransmits the first segment,
   * backs off (RFC 6298 5.4-5.6) and re-arms */
  uint32_t retrans_before = tp->total_retrans;
  uint8_t backoff_before = tp->rto_backoff;
  toe_tcp_on_rto(st, tp);
  if (!tcb_alive(tp) || tp->state == TOE_TCP_CLOSED || tp->snd_una == tp->snd_max)
    return;
  /* RFC 6298 5.4-5.6 must happen whatever recovery did: retransmit the earliest unacknowledged
   * segment, double the RTO, restart the timer */
  if (tp->total_retrans == retrans_before) {
    if (tp->sndq_head != NULL && tp->sndq_head != tp->snd_next_seg) {
      (void)toe_tcp_retransmit(st, tp, tp->sndq_head);
    } else if (tp->flags & TOE_TF_FIN_SENT) {
      tp->snd_nxt = tp->snd_max - 1u;
      toe_tcp_output(st, tp);
    }
  }
  if (tp->rto_backoff == backoff_before && tp->rto_backoff < 31)
    tp->rto_backoff++;
  toe_tcp_timer_set(st, tp, TOE_TT_RTO, now + us_to_ns(toe_tcp_rto_us(st, tp)));
}

static void on_persist_timer(struct toe_stack *st, struct toe_tcb *tp)
{
  const struct toe_config *cfg = &st->cfg;
  switch (tp->state) {
  case TOE_TCP_ESTABLISHED:
  case TOE_TCP_CLOSE_WAIT:
  case TOE_TCP_FIN_WAIT_1:
  case TOE_TCP_CLOSING:
  case TOE_TCP_LAST_ACK:
    break;
  default:
    return;
  }
  if (tp->snd_next_seg == NULL && tp->snd_una == tp->snd_max) {
    tp->persist_backoff = 0; /* nothing waits any more */
    return;
  }
  if (!toe_tcp_zero_window_wait(tp)) {
    /* the window is open: send what the rules allow now */
    uint32_t before = tp->snd_max;
    toe_tcp_output(st, tp);
    if (!tcb_alive(tp) || tp->snd_max != before || tp->snd_una != tp->snd_max ||
        tp->snd_next_seg == NULL)
      return; /* progress, or data in flight whose ACKs will open the window further */
    /* still nothing sent and nothing in flight: a window smaller than sender SWS avoidance
     * accepts, which no ACK will enlarge. RFC 9293 3.8.6.2.1's override timeout: send what
     * fits (toe_tcp_send_window_probe) */
  }
  uint8_t limit = cfg->tcp_retries2 ? cfg->tcp_retries2 : DEFAULT_RETRIES2;
  if ((tp->flags & TOE_TF_ORPHAN) && tp->persist_backoff >= limit) {
    /* RFC 1122 4.2.2.17 keeps probing while the peer answers; a connection nobody owns any more
     * is not kept forever by a peer that never reads (as Linux's orphan retries) */
    st->ctr.tcp.timeout_drops++;
    toe_tcp_drop(st, tp, -TOE_ETIMEDOUT);
    return;
  }
  toe_tcp_send_window_probe(st, tp);
  if (!tcb_alive(tp))
    return;
  st->ctr.tcp.out_win_probes++;
  if (tp->persist_backoff < 255)
    tp->persist_backoff++;
  toe_tcp_timer_set(st, tp, TOE_TT_PERSIST, toe_stack_now(st) + persist_interval(st, tp));
}

static void on_keep_timer(struct toe_stack *st, struct toe_tcb *tp)
{
  const struct toe_config *cfg = &st->cfg;
  if (!(tp->flags & TOE_TF_KEEPALIVE))
    return;
  switch (tp->state) {
  case TOE_TCP_ESTABLISHED:
  case TOE_TCP_CLOSE_WAIT:
  case TOE_TCP_FIN_WAIT_2:
    break;
  default:
    return;
  }
  toe_time_t now = toe_stack_now(st);
  toe_time_t idle = TOE_SEC(tp->keep_idle ? tp->keep_idle : 7200u);
  toe_time_t intvl = TOE_SEC(tp->keep_intvl ? tp->keep_intvl : 75u);
  if (tp->snd_una != tp->snd_max || tp->snd_next_seg != NULL) {
    /* data in flight or waiting: the RTO and persist timers find out about the peer (RFC 1122
     * 4.2.3.6 probes only idle connections) */
    tp->keep_probes = 0;
    toe_tcp_timer_set(st, tp, TOE_TT_KEEP, now + idle);
    return;
  }
  toe_time_t last = tp->rcv_tstamp;
  toe_time_t elapsed = now > last ? now - last : 0;
  if (tp->keep_probes == 0 && elapsed < idle) {
    toe_tcp_timer_set(st, tp, TOE_TT_KEEP, last + idle);
    return;
  }
  if (tp->keep_probes > 0 && elapsed < intvl) {
    /* something arrived since the last probe went out: the peer is alive */
    tp->keep_probes = 0;
    toe_tcp_timer_set(st, tp, TOE_TT_KEEP, last + idle);
    return;
  }
  uint8_t cnt =
      tp->keep_cnt ? tp->keep_cnt : (cfg->tcp_keep_cnt ? cfg->tcp_keep_cnt : DEFAULT_KEEP_CNT);
  if (tp->keep_probes >= cnt) {
    st->ctr.tcp.keepalive_drops++;
    st->ctr.tcp.timeout_drops++;
    toe_tcp_drop(st, tp, timeout_error(tp));
    return;
  }
  toe_tcp_send_keepalive(st, tp);
  if (!tcb_alive(tp))
    return;
  st->ctr.tcp.out_keepalives++;
  tp->keep_probes++;
  toe_tcp_timer_set(st, tp, TOE_TT_KEEP, now + intvl);
}

static void on_finwait2_timer(struct toe_stack *st, struct toe_tcb *tp)
{
  if (tp->state != TOE_TCP_FIN_WAIT_2 || !(tp->flags & TOE_TF_ORPHAN))
    return;
  /* An orphan waiting for a FIN that does not come: nobody would read it anyway. Tell the peer
   * with a RST (as Linux does) rather than leave it half-open, and release the connection. */
  st->ctr.tcp.finwait2_timeouts++;
  toe_tcp_send_rst_conn(st, tp);
  toe_tcp_close_final(st, tp);
}

static void run_kind(struct toe_stack *st, struct toe_tcb *tp, int k)
{
  switch (k) {
  case TOE_TT_RTO:
    on_rto_timer(st, tp);
    break;
  case TOE_TT_TLP:
    if (toe_tcp_synchronized(tp) && tp->snd_una != tp->snd_max)
      toe_tcp_on_tlp(st, tp);
    break;
  case TOE_TT_REO:
    if (toe_tcp_synchronized(tp))
      toe_tcp_on_reo_timer(st, tp);
    break;
  case TOE_TT_PERSIST:
    on_persist_timer(st, tp);
    break;
  case TOE_TT_DELACK:
    if ((tp->flags & TOE_TF_DELACK) && toe_tcp_synchronized(tp)) {
      st->ctr.tcp.out_acks_delayed++;
      toe_tcp_send_ack(st, tp);
    }
    break;
  case TOE_TT_KEEP:
    on_keep_timer(st, tp);
    break;
  case TOE_TT_FINWAIT2:
    on_finwait2_timer(st, tp);
    break;
  default:
    break;
  }
}

static void tcp_timer_fire(struct toe_stack *st, struct toe_timer *t)
{
  struct toe_tcb *tp = toe_container_of(t, struct toe_tcb, timer);
  toe_time_t now = toe_stack_now(st);
  for (int i = 0; i < TOE_TT_COUNT; i++) {
    int k = timer_order[i];
    toe_time_t d = tp->deadline[k];
    if (d == 0 || d > now)
      continue;
    tp->deadline[k] = 0;
    run_kind(st, tp, k);
    if (!tcb_alive(tp)) {
      /* freed by the handler (dropped, closed): its timer went with it */
      toe_tcp_notify_flush(st);
      return;
    }
  }
  toe_time_t next = earliest_deadline(tp);
  if (next != 0 && !(toe_timer_pending(&tp->timer) && tp->timer.expires <= next))
    toe_timer_arm(st, &tp->timer, next);
  toe_tcp_notify_flush(st);
}

void toe_tcp_timers_init(struct toe_tcb *tp)
{
  toe_timer_init(&tp->timer, tcp_timer_fire);
  for (int k = 0; k < TOE_TT_COUNT; k++)
    tp->deadline[k] = 0;
}
