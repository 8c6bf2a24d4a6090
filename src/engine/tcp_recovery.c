/*
 * Loss recovery: what to do after an ACK, a retransmission timeout, a tail-loss probe timeout or
 * a RACK reordering timeout. The scoreboard it reads is kept by tcp_sack.c.
 *
 * Detection
 *   - With SACK: RACK (RFC 8985 6): a segment is lost when a segment sent later was delivered and
 *     more than RACK.rtt + reo_wnd has passed since it was sent; reo_wnd is min_RTT/4 scaled by
 *     D-SACK feedback (6.2 step 4), 0 while no reordering was seen and DupThresh segments are
 *     SACKed (which gives RFC 6675's DupThresh rule). The REO timer catches the rest (6.3).
 *     TLP (RFC 8985 7) probes a silent tail after a PTO of 2*SRTT.
 *   - Without SACK: NewReno (RFC 6582): three duplicate ACKs, then partial ACKs.
 *   - RTO (RFC 6298 5.4-5.7): everything outstanding is lost (RFC 6675 5.1, RFC 8985 6.3).
 *
 * Response
 *   - Fast recovery with SACK: RFC 6675 (RecoveryPoint = SND.MAX, lost segments first: NextSeg
 *     rule 1, then new data) with Proportional Rate Reduction (RFC 6937, PRR-SSRB) setting cwnd
 *     on each ACK; cc->on_loss once per episode; the episode ends when SND.UNA reaches recover.
 *   - NewReno: cwnd = ssthresh + 3*SMSS, inflation by one SMSS per duplicate ACK, partial ACKs
 *     retransmit the next hole and deflate, a full ACK ends it (RFC 6582 3.2).
 *   - After an RTO: cwnd = 1 SMSS, retransmission of the lost segments in order as cwnd allows
 *     (slow start), until SND.UNA reaches the SND.MAX of the timeout.
 *
 * Undo (spurious retransmissions)
 *   - Timestamps: an ACK echoing a TSval older than the episode's first retransmission was caused
 *     by an original transmission (Eifel detection, RFC 3522; response RFC 4015): checked on the
 *     first ACK after a timeout and on the ACK that ends fast recovery.
 *   - D-SACK: when every byte retransmitted in the episode came back as a duplicate (RFC 3708).
 *   Undoing restores cwnd/ssthresh (cc->undo), drops the lost marks and notes reordering.
 */
#include "engine/div64.h"
#include "engine/stack.h"
#include "engine/tcp.h"

#include <string.h>

#define DUPTHRESH 3u               /* RFC 5681 / RFC 6675 */
#define RACK_REO_PERSIST 16u       /* RFC 8985 6.2 step 4 */
#define TLP_WCDELACK TOE_MSEC(200) /* RFC 8985 7.2 WCDelAckT */
#define TLP_SLACK TOE_MSEC(2)      /* added to 2*SRTT (as Linux): timer tick and ACK jitter */
/* Lower bound of the PTO. RFC 8985 7.2 has none, but with sub-millisecond RTTs 2*SRTT + slack is
 * shorter than a scheduling hiccup of either end, and every probe sent then is spurious (a D-SACK
 * comes back); Linux's floor (2*SRTT + 2 jiffies) is 8 ms at HZ=250. */
#define TLP_PTO_MIN TOE_MSEC(10)
#define TLP_NO_SRTT TOE_SEC(1)     /* RFC 8985 7.2: PTO without an RTT sample */
#define TLP_RTO_MARGIN TOE_MSEC(2) /* a PTO cut to the RTO fires this much before it */
#define RTO_BACKOFF_MAX 16u

static void cc_ensure(struct toe_stack *st, struct toe_tcb *tp)
{
  if (!tp->cc || !tp->cwnd)
    toe_tcp_cc_init(st, tp);
}

/*
 * RFC 8985 6.2 RACK_sent_after(RACK.xmit_ts, RACK.end_seq, seg.xmit_ts, seg.end_seq): was the
 * segment sent before the newest delivered one? Equal times are ordered by sequence number, which
 * holds only between original transmissions: a retransmission made at the same instant as new
 * data (one input call sends both) may have left before or after it. Then nothing is concluded,
 * so that a retransmission is not declared lost by data it may have preceded.
 */
static bool rack_seg_sent_before(const struct toe_tcb *tp, const struct toe_tcp_seg *seg,
                                 uint32_t end)
{
  if (seg->xmit_ts != tp->rack_xmit_ts)
    return seg->xmit_ts < tp->rack_xmit_ts;
  if (tp->rack_retx || (seg->flags & TOE_SEG_RETRANS))
    return false;
  return toe_seq_lt(end, tp->rack_end_seq);
}

/* The segment after which nothing was sent (NULL if nothing was). */
static struct toe_pbuf *last_sent(const struct toe_tcb *tp)
{
  struct toe_pbuf *last = NULL;
  for (struct toe_pbuf *p = tp->sndq_head; p && p != tp->snd_next_seg; p = p->qnext)
    last = p;
  return last;
}

/* ---- retransmission ---- */

static int rec_retransmit(struct toe_stack *st, struct toe_tcb *tp, struct toe_pbuf *p)
{
  struct toe_tcp_seg *seg = toe_tcp_seg(p);
  int r = toe_tcp_retransmit(st, tp, p);
  if (r < 0)
    return r;
  uint32_t len = p->tot_len; /* after a PMTU split, only the first part went out */
  /* What RACK (xmit_ts) and Karn's rule (RETRANS) rely on, whatever the output path set. */
  seg->flags |= TOE_SEG_RETRANS;
  seg->xmit_ts = toe_stack_now(st);
  seg->delivered = tp->delivered;
  if (!(seg->flags & TOE_SEG_RXMIT)) {
    seg->flags |= TOE_SEG_RXMIT;
    tp->retrans_out += len;
  }
  if (tp->rec_state == TOE_REC_RECOVERY)
    tp->prr_out += len;
  if (tp->rec_state != TOE_REC_OPEN && (tp->rec_flags & TOE_RECF_UNDO)) {
    tp->undo_retrans += len;
    if (toe_seq_gt(seg->seq + len, tp->undo_rxt_high))
      tp->undo_rxt_high = seg->seq + len;
    if (!(tp->rec_flags & TOE_RECF_UNDO_RETX) && (tp->flags & TOE_TF_TS_OK)) {
      /* The episode's first retransmission: Eifel compares echoes with its TSval. */
      tp->undo_tsval = toe_tcp_ts_now(st, tp);
      tp->rec_flags |= TOE_RECF_UNDO_TS;
    }
    tp->rec_flags |= TOE_RECF_UNDO_RETX;
  }
  return 0;
}

/* RFC 6675 NextSeg rule 1 with RACK's marks: lost segments, lowest first, while cwnd allows. */
static void send_lost(struct toe_stack *st, struct toe_tcb *tp)
{
  if (!tp->lost_bytes)
    return;
  /* lost_bytes is the sum over the LOST segments: once all of them were seen, stop (the rest of
   * a long queue has nothing to send) */
  uint32_t unseen = tp->lost_bytes;
  for (struct toe_pbuf *p = tp->sndq_head; p && p != tp->snd_next_seg && unseen; p = p->qnext) {
    tp->sack_walk++;
    p = toe_tcp_sack_skip(tp, p); /* SACKed segments are never retransmitted here */
    uint8_t f = toe_tcp_seg(p)->flags;
    if (f & TOE_SEG_LOST)
      unseen = unseen > p->tot_len ? unseen - p->tot_len : 0;
    if ((f & (TOE_SEG_LOST | TOE_SEG_RXMIT | TOE_SEG_SACKED)) != TOE_SEG_LOST)
      continue;
    if ((uint64_t)toe_tcp_pipe(tp) + p->tot_len > tp->cwnd)
      break;
    if (rec_retransmit(st, tp, p) < 0)
      break;
  }
}

/* ---- RACK (RFC 8985 6) ---- */

/* 6.2 step 4: the reordering window (us). */
static uint32_t rack_reo_wnd_us(const struct toe_tcb *tp)
{
  if (!(tp->rec_flags & TOE_RECF_REORDER)) {
    if (tp->rec_state != TOE_REC_OPEN)
      return 0;
    if (tp->sacked_segs >= DUPTHRESH)
      return 0;
  }
  uint32_t mult = tp->rack_reo_wnd_mult ? tp->rack_reo_wnd_mult : 1u;
  uint64_t w = (uint64_t)mult * tp->min_rtt_us / 4u;
  if (tp->srtt_us && w > tp->srtt_us)
    w = tp->srtt_us;
  return (uint32_t)w;
}

/* 6.2 step 4: D-SACK feedback widens reo_wnd, at most once per round trip. */
static void rack_update_reo_wnd(struct toe_tcb *tp)
{
  if ((tp->rec_flags & TOE_RECF_DSACK_ROUND) && toe_seq_ge(tp->snd_una, tp->rack_dsack_round))
    tp->rec_flags &= (uint8_t)~TOE_RECF_DSACK_ROUND;
  if (!(tp->rec_flags & TOE_RECF_DSACK_ROUND) && (tp->ack_flags & TOE_ACKF_DSACK)) {
    tp->rack_dsack_round = tp->snd_max;
    tp->rec_flags |= TOE_RECF_DSACK_ROUND;
    if (!tp->rack_reo_wnd_mult)
      tp->rack_reo_wnd_mult = 1;
    if (tp->rack_reo_wnd_mult < 64)
      tp->rack_reo_wnd_mult++;
    tp->rack_reo_wnd_persist = RACK_REO_PERSIST;
  }
}

/*
 * 6.2 step 5 and 6.3: marks the segments RACK deems lost, arms the REO timer for the others.
 * Returns true if a segment was newly marked.
 *
 * Cost: the scan stops at the first original transmission (no TOE_SEG_RETRANS) that was not
 * sent before RACK.segment. No segment after it can be marked lost or given a REO deadline, so
 * the result is that of a scan of the whole queue. Let j be that segment and k any later one:
 *   - Originals leave in sequence order (toe_tcp_output() sends only from snd_next_seg on) and
 *     the stack's clock never goes back (toe_stack_advance), so k's first transmission left at
 *     or after j's: xmit_ts(k) >= xmit_ts(j) >= RACK.xmit_ts. A PMTU split copies the meta to
 *     the remainder, which keeps the segment's place in this order.
 *   - If k is an original too: a larger xmit_ts is not "before"; an equal one is ordered by
 *     end_seq (end(k) > end(j) >= RACK.end_seq), or, when RACK.segment is a retransmission,
 *     never "before" (rack_seg_sent_before).
 *   - If k was retransmitted, its xmit_ts is that of its latest transmission, later than or
 *     equal to its first: still >= RACK.xmit_ts, and equal times never make a retransmission
 *     "before". So retransmissions, which break the sequence order, cannot lie beyond j either.
 * In the steady state without loss (nothing SACKed or retransmitted), RACK.segment is the last
 * segment cumulatively acknowledged and sndq_head left after it: the scan stops at once, O(1)
 * per ACK instead of O(segments in flight). With SACK holes it covers the segments up to the
 * newest delivered one (and retransmissions among them): those RACK may mark.
 */
static bool rack_detect_loss(struct toe_stack *st, struct toe_tcb *tp)
{
  bool newly = false;
  toe_time_t timeout = 0;
  toe_time_t now = toe_stack_now(st);
  if (!(tp->flags & TOE_TF_SACK_OK) || !tp->rack_xmit_ts) {
    toe_tcp_timer_clear(st, tp, TOE_TT_REO);
    return false;
  }
  toe_time_t wait = ((toe_time_t)tp->rack_rtt_us + rack_reo_wnd_us(tp)) * 1000u;
  for (struct toe_pbuf *p = tp->sndq_head; p && p != tp->snd_next_seg; p = p->qnext) {
    tp->sack_walk++;
    /* The SACKed run holds nothing to mark: go on from its last segment, which the checks below
     * see like any other (the scan may still stop there). Only the scan's early stop can differ:
     * it may now meet a retransmission beyond a stop point inside the run, which RFC 8985 6.2
     * (every segment sent before RACK.segment) examines too. */
    p = toe_tcp_sack_skip(tp, p);
    struct toe_tcp_seg *seg = toe_tcp_seg(p);
    uint32_t end = seg->seq + p->tot_len;
    bool before = rack_seg_sent_before(tp, seg, end);
    if (!before && !(seg->flags & TOE_SEG_RETRANS))
      break; /* it and every segment after it left after RACK.segment (see above) */
    if (seg->flags & TOE_SEG_SACKED)
      continue;
    if ((seg->flags & (TOE_SEG_LOST | TOE_SEG_RXMIT)) == TOE_SEG_LOST)
      continue; /* known lost, waiting for its retransmission */
    if (!before)
      continue; /* sent after the newest delivered segment: nothing is known about it yet */
    toe_time_t deadline = seg->xmit_ts + wait;
    if (deadline <= now) {
      if (toe_tcp_mark_lost(st, tp, p)) {
        newly = true;
        st->ctr.tcp.rec_rack_lost++;
      }
    } else if (deadline - now > timeout) {
      timeout = deadline - now;
    }
  }
  if (timeout)
    toe_tcp_timer_set(st, tp, TOE_TT_REO, now + timeout);
  else
    toe_tcp_timer_clear(st, tp, TOE_TT_REO);
  return newly;
}

/* ---- episodes ---- */

static void undo_start(struct toe_tcb *tp)
{
  tp->prior_cwnd = tp->cwnd;
  tp->prior_ssthresh = tp->ssthresh;
  tp->undo_marker = tp->snd_una;
  tp->undo_rxt_high = tp->snd_una;
  tp->undo_retrans = 0;
  tp->rec_flags |= TOE_RECF_UNDO;
  tp->rec_flags &= (uint8_t) ~(TOE_RECF_UNDO_TS | TOE_RECF_UNDO_RETX | TOE_RECF_NR_PARTIAL);
  tp->flags |= TOE_TF_CC_UNDO_OK;
}

static void enter_recovery(struct toe_stack *st, struct toe_tcb *tp)
{
  undo_start(tp);
  tp->cc->on_loss(st, tp); /* RFC 6675 4.2 / RFC 5681: ssthresh, once per episode */
  tp->rec_state = TOE_REC_RECOVERY;
  tp->flags |= TOE_TF_IN_RECOVERY;
  tp->recover = tp->snd_max; /* RecoveryPoint = HighData (+1) */
  tp->rec_flags |= TOE_RECF_RECOVER_OK;
  /* RFC 6937: RecoverFS = FlightSize at the start. */
  tp->prr_delivered = 0;
  tp->prr_out = 0;
  tp->recover_fs = toe_cc_flight(tp) ? toe_cc_flight(tp) : 1u;
  tp->prr_snd_max = tp->snd_max;
  /* The episode's response covers a loss a pending probe may have repaired (as Linux does). */
  tp->tlp_pending = 0;
  toe_tcp_timer_clear(st, tp, TOE_TT_TLP);
  st->ctr.tcp.rec_episodes++;
}

static void leave_episode(struct toe_tcb *tp)
{
  tp->rec_state = TOE_REC_OPEN;
  tp->flags &= ~TOE_TF_IN_RECOVERY;
  tp->dupacks = 0;
  /* RFC 8985 6.2 step 4: reo_wnd's inflation persists for 16 episodes. */
  if (tp->rack_reo_wnd_persist && --tp->rack_reo_wnd_persist == 0)
    tp->rack_reo_wnd_mult = 1;
}

/* RFC 6937: cwnd for this ACK of fast recovery (PRR-SSRB). */
static void prr_update(struct toe_stack *st, struct toe_tcb *tp, uint32_t delivered)
{
  (void)st;
  uint32_t mss = toe_cc_mss(tp);
  if (toe_seq_gt(tp->snd_max, tp->prr_snd_max)) /* new data the output sent since */
    tp->prr_out += tp->snd_max - tp->prr_snd_max;
  tp->prr_snd_max = tp->snd_max;
  tp->prr_delivered += delivered;
  uint32_t pipe = toe_tcp_pipe(tp);
  int64_t sndcnt;
  if (pipe > tp->ssthresh) {
    /* Proportional rate reduction: ceil(prr_delivered * ssthresh / RecoverFS) - prr_out */
    uint64_t num = (uint64_t)tp->prr_delivered * tp->ssthresh + tp->recover_fs - 1u;
    sndcnt = (int64_t)toe_udiv64(num, tp->recover_fs) - (int64_t)tp->prr_out;
  } else {
    /* Slow-start reduction bound: catch up to ssthresh, at most one SMSS beyond what left. */
    int64_t limit = (int64_t)tp->prr_delivered - (int64_t)tp->prr_out;
    if (limit < (int64_t)delivered)
      limit = delivered;
    limit += mss;
    sndcnt = (int64_t)tp->ssthresh - pipe;
    if (sndcnt > limit)
      sndcnt = limit;
  }
  if (sndcnt < 0)
    sndcnt = 0;
  /* The fast retransmit itself leaves at once (RFC 6675 4.3, RFC 6937 6). */
  if (!tp->prr_out && sndcnt < (int64_t)mss && tp->lost_bytes)
    sndcnt = mss;
  uint64_t cwnd = (uint64_t)pipe + (uint64_t)sndcnt;
  tp->cwnd = cwnd > TOE_CC_CWND_MAX ? TOE_CC_CWND_MAX : (uint32_t)cwnd;
}

/* ---- undo ---- */

static bool ts_says_spurious(const struct toe_tcb *tp)
{
  return (tp->rec_flags & TOE_RECF_UNDO_TS) && (tp->ack_flags & TOE_ACKF_TS) &&
         toe_seq_lt(tp->ack_ts_ecr, tp->undo_tsval);
}

static bool dsack_says_spurious(const struct toe_tcb *tp)
{
  return (tp->rec_flags & TOE_RECF_UNDO) && (tp->rec_flags & TOE_RECF_UNDO_RETX) &&
         tp->undo_retrans == 0;
}

static void do_undo(struct toe_stack *st, struct toe_tcb *tp, bool rto)
{
  tp->cc->undo(st, tp);
  /* Nothing was lost after all: what was marked lost was in flight all along (a retransmission
   * of it may be in flight too, and counts in retrans_out until acknowledged). */
  for (struct toe_pbuf *p = tp->sndq_head; p && p != tp->snd_next_seg; p = p->qnext)
    toe_tcp_seg(p)->flags &= (uint8_t)~TOE_SEG_LOST;
  tp->lost_bytes = 0;
  tp->rec_flags &= (uint8_t) ~(TOE_RECF_UNDO | TOE_RECF_UNDO_TS | TOE_RECF_UNDO_RETX);
  tp->rec_flags |= TOE_RECF_REORDER; /* the network delays or reorders: RACK waits longer */
  tp->flags &= ~TOE_TF_CC_UNDO_OK;
  if (tp->rec_state != TOE_REC_OPEN)
    leave_episode(tp);
  if (rto)
    st->ctr.tcp.rec_spurious_rto++;
  else
    st->ctr.tcp.rec_spurious_fr++;
}

/*
 * A partial ACK during fast recovery whose echo predates the first retransmission filled the
 * hole with an original transmission (Eifel, RFC 3522): with no retransmission left in flight,
 * the episode was caused by reordering or delay and is undone at once (as Linux's partial undo)
 * instead of at its end; RACK, now aware of reordering, marks anything really lost again.
 */
static bool partial_undo(struct toe_stack *st, struct toe_tcb *tp)
{
  if (!(tp->ack_flags & TOE_ACKF_UNA) || tp->retrans_out || !ts_says_spurious(tp))
    return false;
  do_undo(st, tp, false);
  return true;
}

/* ---- TLP (RFC 8985 7) ---- */

/* 7.4: did the last probe repair a loss? */
static void tlp_on_ack(struct toe_stack *st, struct toe_tcb *tp)
{
  if (!tp->tlp_pending || toe_seq_lt(tp->snd_una, tp->tlp_end_seq))
    return;
  if (!(tp->rec_flags & TOE_RECF_TLP_RETX) || (tp->ack_flags & TOE_ACKF_DSACK_TLP)) {
    /* New data was the probe (RACK judges it), or the retransmission was a duplicate. */
    tp->tlp_pending = 0;
    return;
  }
  if (toe_seq_gt(tp->snd_una, tp->tlp_end_seq)) {
    /* Acknowledged beyond the probe with no D-SACK for it: the probe repaired a loss, which calls
     * for the congestion response of a loss (7.4.2), once. */
    tp->tlp_pending = 0;
    st->ctr.tcp.rec_tlp_recovered++;
    if (tp->rec_state == TOE_REC_OPEN) {
      undo_start(tp);
      tp->rec_flags &= (uint8_t)~TOE_RECF_UNDO;
      tp->cc->on_loss(st, tp);
    }
    return;
  }
  if (!(tp->ack_flags & (TOE_ACKF_UNA | TOE_ACKF_SACKED)))
    tp->tlp_pending = 0; /* a pure duplicate at end_seq: original and probe both arrived */
}

void toe_tcp_tlp_schedule(struct toe_stack *st, struct toe_tcb *tp)
{
  bool ok = (tp->flags & TOE_TF_SACK_OK) && toe_tcp_synchronized(tp) &&
            tp->rec_state == TOE_REC_OPEN && !tp->tlp_pending && tp->snd_una != tp->snd_max &&
            tp->sndq_head && tp->sndq_head != tp->snd_next_seg;
  if (!ok) {
    toe_tcp_timer_clear(st, tp, TOE_TT_TLP);
    return;
  }
  toe_time_t pto;
  if (tp->srtt_us) {
    pto = (toe_time_t)tp->srtt_us * 2000u;
    if (toe_cc_flight(tp) <= toe_cc_mss(tp))
      pto += TLP_WCDELACK; /* one segment out: the peer may delay its ACK */
    else
      pto += TLP_SLACK;
    if (pto < TLP_PTO_MIN)
      pto = TLP_PTO_MIN;
  } else {
    pto = TLP_NO_SRTT;
  }
  toe_time_t now = toe_stack_now(st);
  toe_time_t when = now + pto;
  toe_time_t rto = tp->deadline[TOE_TT_RTO];
  if (rto && when + TLP_RTO_MARGIN > rto) {
    /* 7.2: a PTO later than the RTO is cut to the RTO's time, so that the probe (which then
     * re-arms the RTO) comes first. The margin keeps the two apart on the wheel: expired
     * together, the RTO would run first. */
    if (rto <= now + TLP_RTO_MARGIN) {
      toe_tcp_timer_clear(st, tp, TOE_TT_TLP);
      return;
    }
    when = rto - TLP_RTO_MARGIN;
  }
  toe_tcp_timer_set(st, tp, TOE_TT_TLP, when);
}

static void arm_rto(struct toe_stack *st, struct toe_tcb *tp)
{
  toe_tcp_timer_set(st, tp, TOE_TT_RTO,
                    toe_stack_now(st) + (toe_time_t)toe_tcp_rto_us(st, tp) * 1000u);
}

void toe_tcp_on_tlp(struct toe_stack *st, struct toe_tcb *tp)
{
  toe_tcp_timer_clear(st, tp, TOE_TT_TLP);
  if (!toe_tcp_synchronized(tp) || tp->snd_una == tp->snd_max || tp->rec_state != TOE_REC_OPEN ||
      tp->tlp_pending)
    return;
  cc_ensure(st, tp);
  uint32_t before = tp->snd_max;
  bool sent = false, retx = false;
  if (tp->snd_next_seg) {
    /* 7.3: new data if the peer's window allows, one segment, regardless of cwnd. */
    uint32_t saved = tp->cwnd;
    uint32_t want = toe_tcp_pipe(tp) + toe_cc_mss(tp);
    if (tp->cwnd < want)
      tp->cwnd = want;
    toe_tcp_output(st, tp);
    tp->cwnd = saved;
    sent = toe_seq_gt(tp->snd_max, before);
  }
  if (!sent) {
    /* ... else the highest segment sent so far. */
    struct toe_pbuf *last = last_sent(tp);
    if (last && !(toe_tcp_seg(last)->flags & TOE_SEG_SACKED) && rec_retransmit(st, tp, last) == 0) {
      toe_tcp_seg(last)->flags |= TOE_SEG_TLP;
      sent = retx = true;
    }
  }
  if (sent) {
    tp->tlp_pending = 1;
    tp->tlp_end_seq = tp->snd_max;
    if (retx)
      tp->rec_flags |= TOE_RECF_TLP_RETX;
    else
      tp->rec_flags &= (uint8_t)~TOE_RECF_TLP_RETX;
    st->ctr.tcp.rec_tlp_probes++;
  }
  toe_tcp_timer_clear(st, tp, TOE_TT_TLP);
  arm_rto(st, tp); /* 7.3: after a probe, the RTO (not another PTO) */
}

/* ---- RTO ---- */

void toe_tcp_on_rto(struct toe_stack *st, struct toe_tcb *tp)
{
  if (!toe_tcp_synchronized(tp) || tp->snd_una == tp->snd_max)
    return;
  cc_ensure(st, tp);
  st->ctr.tcp.rec_rto++;

  if (tp->rec_state == TOE_REC_OPEN)
    undo_start(tp);       /* a new episode; in recovery the episode's undo state carries on */
  tp->cc->on_rto(st, tp); /* cwnd = LW; ssthresh only when rec_state is OPEN (RFC 5681 3.1) */
  tp->rec_state = TOE_REC_LOSS;
  tp->flags &= ~TOE_TF_IN_RECOVERY;
  tp->recover = tp->snd_max;
  tp->rec_flags |= TOE_RECF_RECOVER_OK;
  tp->dupacks = 0;
  tp->tlp_pending = 0;
  if (tp->rto_streak < 255)
    tp->rto_streak++;

  /* A SACKed segment at SND.UNA that the cumulative ACK never covered: the receiver reneged
   * (discarded data it had SACKed). Forget all SACK information, as RFC 2018 8 asks, so that
   * everything is sent again. Otherwise SACK marks are kept (RFC 6675 5.1 allows it). */
  if (tp->sndq_head && tp->sndq_head != tp->snd_next_seg &&
      (toe_tcp_seg(tp->sndq_head)->flags & TOE_SEG_SACKED)) {
    for (struct toe_pbuf *p = tp->sndq_head; p && p != tp->snd_next_seg; p = p->qnext)
      toe_tcp_seg(p)->flags &= (uint8_t)~TOE_SEG_SACKED;
    toe_tcp_sack_run_clear(tp);
    tp->sacked_bytes = 0;
    tp->sacked_segs = 0;
    tp->high_sacked = tp->snd_una;
    st->ctr.tcp.rec_sack_reneged++;
  }
  /* RFC 6675 5.1 / RFC 8985 6.3: everything not SACKed is lost. */
  struct toe_pbuf *first = NULL;
  for (struct toe_pbuf *p = tp->sndq_head; p && p != tp->snd_next_seg; p = p->qnext) {
    if (toe_tcp_seg(p)->flags & TOE_SEG_SACKED)
      continue;
    toe_tcp_mark_lost(st, tp, p);
    if (!first)
      first = p;
  }
  /* RFC 6298 5.4: retransmit the earliest segment not acknowledged. */
  if (first) {
    rec_retransmit(st, tp, first);
  } else if (tp->flags & TOE_TF_FIN_SENT) {
    /* Only the FIN is outstanding: the output path sends it again from snd_nxt. */
    tp->snd_nxt = tp->snd_una;
    toe_tcp_output(st, tp);
  }

  /* 5.5-5.6: back off and restart the timer. */
  if (tp->rto_backoff < RTO_BACKOFF_MAX)
    tp->rto_backoff++;
  toe_tcp_timer_clear(st, tp, TOE_TT_TLP);
  toe_tcp_timer_clear(st, tp, TOE_TT_REO);
  arm_rto(st, tp);
}

/* ---- REO timer ---- */

void toe_tcp_on_reo_timer(struct toe_stack *st, struct toe_tcb *tp)
{
  toe_tcp_timer_clear(st, tp, TOE_TT_REO);
  if (!toe_tcp_synchronized(tp) || tp->snd_una == tp->snd_max)
    return;
  cc_ensure(st, tp);
  st->ctr.tcp.rec_reo_timeouts++;
  rack_detect_loss(st, tp);
  if (!tp->lost_bytes)
    return;
  if (tp->rec_state == TOE_REC_OPEN)
    enter_recovery(st, tp);
  if (tp->rec_state == TOE_REC_RECOVERY)
    prr_update(st, tp, 0);
  send_lost(st, tp);
}

/* ---- per ACK ---- */

/* RFC 7661 spirit: grow cwnd only when the sender is using it. */
static bool cwnd_limited(const struct toe_tcb *tp)
{
  uint32_t pipe = tp->ack_prior_pipe;
  if (tp->cwnd < tp->ssthresh)
    return (uint64_t)pipe * 2u >= tp->cwnd; /* slow start: using over half of it */
  return (uint64_t)pipe + 3u * toe_cc_mss(tp) >= tp->cwnd;
}

static void grow(struct toe_stack *st, struct toe_tcb *tp, bool check_limited)
{
  if (!tp->ack_acked)
    return;
  if (check_limited && !cwnd_limited(tp))
    return;
  tp->cc->on_ack(st, tp, tp->ack_acked, tp->ack_rtt_us);
}

/* NewReno (RFC 6582 3.2), when SACK is off. */
static void newreno_on_ack(struct toe_stack *st, struct toe_tcb *tp, bool dup_ack)
{
  uint32_t mss = toe_cc_mss(tp);
  bool una = (tp->ack_flags & TOE_ACKF_UNA) != 0;
  if (tp->rec_state == TOE_REC_OPEN) {
    if (una) {
      tp->dupacks = 0;
      grow(st, tp, true);
      return;
    }
    if (!dup_ack)
      return;
    if (tp->dupacks < 255)
      tp->dupacks++;
    if (tp->dupacks != DUPTHRESH)
      return; /* 1 and 2: limited transmit (toe_tcp_pipe), RFC 3042 */
    /* Step 2: no new episode while SND.UNA has not passed the previous one's recover. */
    if ((tp->rec_flags & TOE_RECF_RECOVER_OK) && toe_seq_lt(tp->snd_una, tp->recover))
      return;
    struct toe_pbuf *head = tp->sndq_head;
    enter_recovery(st, tp);
    st->ctr.tcp.rec_newreno++;
    if (head && head != tp->snd_next_seg) {
      toe_tcp_mark_lost(st, tp, head);
      rec_retransmit(st, tp, head);
    }
    tp->cwnd = tp->ssthresh + DUPTHRESH * mss; /* step 3 */
    return;
  }
  if (tp->rec_state != TOE_REC_RECOVERY)
    return;
  if (dup_ack) {
    tp->cwnd += mss; /* step 4: inflate */
    return;
  }
  if (!una)
    return;
  if (toe_seq_ge(tp->snd_una, tp->recover)) {
    /* Full acknowledgment (step 3 of 3.2's exit): cwnd = min(ssthresh, max(FlightSize, SMSS) +
     * SMSS). */
    if (ts_says_spurious(tp)) {
      do_undo(st, tp, false);
      return;
    }
    tp->cc->on_recovery_exit(st, tp);
    uint32_t fl = toe_cc_flight(tp);
    uint32_t w = (fl > mss ? fl : mss) + mss;
    if (w < tp->cwnd)
      tp->cwnd = w;
    leave_episode(tp);
    return;
  }
  if (partial_undo(st, tp))
    return;
  /* Partial acknowledgment (step 5): retransmit the first unacknowledged segment, deflate by the
   * amount acknowledged and add back one SMSS if at least that much was acknowledged. */
  struct toe_pbuf *head = tp->sndq_head;
  if (head && head != tp->snd_next_seg && !(toe_tcp_seg(head)->flags & TOE_SEG_RXMIT)) {
    toe_tcp_mark_lost(st, tp, head);
    rec_retransmit(st, tp, head);
  }
  uint32_t acked = tp->ack_acked;
  tp->cwnd = tp->cwnd > acked ? tp->cwnd - acked : 0;
  if (acked >= mss)
    tp->cwnd += mss;
  if (tp->cwnd < mss)
    tp->cwnd = mss;
  tp->rec_flags |= TOE_RECF_NR_PARTIAL;
}

void toe_tcp_recovery_on_ack(struct toe_stack *st, struct toe_tcb *tp, uint32_t acked_bytes,
                             bool dup_ack)
{
  (void)acked_bytes; /* tp->ack_acked counts the payload; SYN and FIN do not grow cwnd */
  if (!toe_tcp_synchronized(tp))
    return;
  cc_ensure(st, tp);
  bool sack = (tp->flags & TOE_TF_SACK_OK) != 0;
  bool una = (tp->ack_flags & TOE_ACKF_UNA) != 0;

  tlp_on_ack(st, tp);

  /* A late D-SACK may prove an episode (over or not) spurious (RFC 3708). */
  if ((tp->ack_flags & TOE_ACKF_DSACK) && tp->rec_state != TOE_REC_LOSS &&
      dsack_says_spurious(tp)) {
    do_undo(st, tp, false);
  }

  if (!sack) {
    if (tp->rec_state == TOE_REC_LOSS)
      goto loss;
    newreno_on_ack(st, tp, dup_ack);
    goto out;
  }

  rack_update_reo_wnd(tp);
  bool newly_lost = rack_detect_loss(st, tp);

  switch (tp->rec_state) {
  case TOE_REC_OPEN:
    if (newly_lost || tp->lost_bytes) {
      enter_recovery(st, tp);
      prr_update(st, tp, tp->ack_delivered);
      send_lost(st, tp);
    } else {
      grow(st, tp, true);
    }
    break;
  case TOE_REC_RECOVERY:
    if (toe_seq_ge(tp->snd_una, tp->recover)) {
      if (ts_says_spurious(tp) || dsack_says_spurious(tp)) {
        do_undo(st, tp, false);
      } else {
        tp->cc->on_recovery_exit(st, tp);
        leave_episode(tp);
      }
      break;
    }
    if (partial_undo(st, tp))
      break;
    prr_update(st, tp, tp->ack_delivered);
    send_lost(st, tp);
    break;
  case TOE_REC_LOSS:
    goto loss;
  }
  goto out;

loss:
  /* After an RTO. Eifel (RFC 3522): the first ACK of new data tells whether it answers the
   * original transmission; later ACKs cannot. */
  if (una && (tp->rec_flags & TOE_RECF_UNDO_TS)) {
    if (ts_says_spurious(tp)) {
      do_undo(st, tp, true);
      goto out;
    }
    tp->rec_flags &= (uint8_t)~TOE_RECF_UNDO_TS;
  }
  if (toe_seq_ge(tp->snd_una, tp->recover)) {
    if (dsack_says_spurious(tp)) {
      do_undo(st, tp, true);
    } else {
      leave_episode(tp);
      grow(st, tp, false);
    }
    goto out;
  }
  grow(st, tp, false); /* slow start from the loss window (RFC 5681 3.1) */
  send_lost(st, tp);

out:
  if (tp->rec_state == TOE_REC_OPEN)
    toe_tcp_tlp_schedule(st, tp);
  else
    toe_tcp_timer_clear(st, tp, TOE_TT_TLP);
}
