/*
 * The sender's scoreboard: what an ACK says about the segments in the send queue.
 *
 * Each sent segment is one pbuf of the send queue with its history in toe_tcp_seg (tcp.h): SACKED
 * (covered by a SACK block, RFC 2018), LOST (marked lost by RACK, RFC 6582/6675 or an RTO) and
 * RXMIT (a retransmission is in flight). The tcb keeps byte totals of each mark so that "pipe"
 * (RFC 6675 2, with RFC 8985's lost marks) costs nothing to compute:
 *
 *   pipe = (SND.MAX - SND.UNA) - sacked_bytes - lost_bytes + retrans_out
 *
 * toe_tcp_ack_process() applies one ACK: frees what it acknowledges cumulatively, marks what its
 * SACK blocks cover, recognises D-SACK blocks (RFC 2883), feeds RACK (RFC 8985 6.2 steps 1-3) and
 * takes the RTT sample (RFC 6298 with Karn's rule, RFC 7323 timestamps). The decisions that follow
 * (loss detection, recovery, congestion control) are toe_tcp_recovery_on_ack() in tcp_recovery.c.
 */
#include "engine/div64.h"
#include "engine/stack.h"
#include "engine/tcp.h"

#include <string.h>

#define RTT_MAX_US 3600000000u /* an hour: anything longer is a bogus sample */

/* ---- scoreboard marks ---- */

static uint32_t sub_sat(uint32_t a, uint32_t b)
{
  return a > b ? a - b : 0;
}

/* Drops the marks of `n` bytes of segment `seg` from the totals (the bytes leave the queue). */
static void seg_unaccount(struct toe_tcb *tp, const struct toe_tcp_seg *seg, uint32_t n, bool whole)
{
  if (seg->flags & TOE_SEG_SACKED) {
    tp->sacked_bytes = sub_sat(tp->sacked_bytes, n);
    if (whole && tp->sacked_segs)
      tp->sacked_segs--;
  }
  if (seg->flags & TOE_SEG_LOST)
    tp->lost_bytes = sub_sat(tp->lost_bytes, n);
  if (seg->flags & TOE_SEG_RXMIT)
    tp->retrans_out = sub_sat(tp->retrans_out, n);
}

bool toe_tcp_mark_lost(struct toe_stack *st, struct toe_tcb *tp, struct toe_pbuf *p)
{
  (void)st;
  struct toe_tcp_seg *seg = toe_tcp_seg(p);
  if (seg->flags & TOE_SEG_SACKED)
    return false;
  bool was_rxmit = (seg->flags & TOE_SEG_RXMIT) != 0;
  if (was_rxmit) {
    /* The retransmission is lost too: it no longer counts as in flight. */
    seg->flags &= (uint8_t)~TOE_SEG_RXMIT;
    tp->retrans_out = sub_sat(tp->retrans_out, p->tot_len);
  }
  if (seg->flags & TOE_SEG_LOST)
    return was_rxmit;
  seg->flags |= TOE_SEG_LOST;
  tp->lost_bytes += p->tot_len;
  return true;
}

uint32_t toe_tcp_pipe(const struct toe_tcb *tp)
{
  uint32_t flight = tp->snd_max - tp->snd_una;
  uint64_t left = (uint64_t)tp->sacked_bytes + tp->lost_bytes;
  uint64_t pipe = left >= flight ? 0 : flight - left;
  pipe += tp->retrans_out;
  if (!(tp->flags & TOE_TF_SACK_OK) && tp->rec_state == TOE_REC_OPEN && tp->dupacks) {
    /* RFC 3042 limited transmit: each of the first two duplicate ACKs lets one new segment out
     * without changing cwnd (it left the network, Linux counts it as "sacked" the same way). */
    uint32_t lt = (tp->dupacks < 2 ? tp->dupacks : 2u) * toe_cc_mss(tp);
    pipe = pipe > lt ? pipe - lt : 0;
  }
  return pipe > UINT32_MAX ? UINT32_MAX : (uint32_t)pipe;
}

/* ---- per-ACK bookkeeping ---- */

/* RFC 8985 6.2: RACK_sent_after(t1, seq1, t2, seq2). */
static bool rack_sent_after(toe_time_t t1, uint32_t seq1, toe_time_t t2, uint32_t seq2)
{
  return t1 > t2 || (t1 == t2 && toe_seq_gt(seq1, seq2));
}

/* Everything one ACK delivered, gathered while walking the queue. */
struct ack_walk {
  toe_time_t now;
  uint32_t fack_before; /* RACK.fack before this ACK */
  uint32_t ts_now;      /* our TSval now (valid with TOE_ACKF_TS) */
  /* RACK: the most recently sent segment this ACK delivered that may update RACK (step 2) */
  bool rack_have;
  bool rack_retx;
  toe_time_t rack_ts;
  uint32_t rack_end;
  /* RFC 6298: the earliest never-retransmitted segment delivered, cumulatively / by SACK */
  bool cum_rtt_have, sack_rtt_have;
  toe_time_t cum_rtt_ts, sack_rtt_ts;
};

static uint32_t rtt_us_since(toe_time_t now, toe_time_t then)
{
  if (now <= then)
    return 0;
  uint64_t us = toe_div1000(now - then);
  return us > RTT_MAX_US ? RTT_MAX_US : (uint32_t)us;
}

/* A segment (or its first bytes, up to `end`) was delivered: RACK steps 2-3 and RTT candidates. */
static void seg_delivered(struct toe_tcb *tp, struct ack_walk *w, const struct toe_tcp_seg *seg,
                          uint32_t end, bool by_sack)
{
  bool retrans = (seg->flags & TOE_SEG_RETRANS) != 0;

  /* RFC 8985 6.2 step 3: a never-retransmitted segment delivered below data already delivered
   * means the network reordered. */
  if (!retrans && toe_seq_lt(end, w->fack_before))
    tp->rec_flags |= TOE_RECF_REORDER;
  if (toe_seq_gt(end, tp->rack_fack))
    tp->rack_fack = end;

  /* RFC 6298 3 (Karn): only never-retransmitted segments give an RTT sample. */
  if (!retrans && seg->xmit_ts) {
    if (by_sack) {
      if (!w->sack_rtt_have || seg->xmit_ts < w->sack_rtt_ts) {
        w->sack_rtt_have = true;
        w->sack_rtt_ts = seg->xmit_ts;
      }
    } else if (!w->cum_rtt_have || seg->xmit_ts < w->cum_rtt_ts) {
      w->cum_rtt_have = true;
      w->cum_rtt_ts = seg->xmit_ts;
    }
  }

  /* RFC 8985 6.2 step 2: a retransmitted segment may have been delivered by its original
   * transmission; skip it when the ACK could not have been caused by the retransmission. */
  if (retrans) {
    uint32_t rtt = rtt_us_since(w->now, seg->xmit_ts);
    if (tp->min_rtt_us && rtt < tp->min_rtt_us)
      return;
    /* The timestamp test only works for cumulative ACKs: a receiver echoes TS.Recent, which
     * out-of-order (SACKed) segments do not update (RFC 7323 4.3), so it would reject every
     * SACKed retransmission (Linux skips it too). */
    if (!by_sack && (tp->ack_flags & TOE_ACKF_TS)) {
      /* TSval the retransmission carried (our TS clock is ms; 1 ms of slack for rounding). */
      uint32_t tx_tsval = w->ts_now - rtt / 1000u - 1u;
      if (toe_seq_lt(tp->ack_ts_ecr, tx_tsval))
        return;
    }
  }
  if (!w->rack_have || rack_sent_after(seg->xmit_ts, end, w->rack_ts, w->rack_end)) {
    w->rack_have = true;
    w->rack_retx = retrans;
    w->rack_ts = seg->xmit_ts;
    w->rack_end = end;
  }
}

/* Cumulative acknowledgment: frees the segments below `ack`, trims a partly acked one. */
static uint32_t ack_cumulative(struct toe_stack *st, struct toe_tcb *tp, struct ack_walk *w,
                               uint32_t ack)
{
  uint32_t freed = 0;
  struct toe_pbuf *p;
  while ((p = tp->sndq_head) != NULL && p != tp->snd_next_seg) {
    struct toe_tcp_seg *seg = toe_tcp_seg(p);
    uint32_t len = p->tot_len;
    uint32_t end = seg->seq + len;
    if (toe_seq_le(end, ack)) {
      if (!(seg->flags & TOE_SEG_SACKED)) {
        tp->delivered += len;
        seg_delivered(tp, w, seg, end, false);
      }
      seg_unaccount(tp, seg, len, true);
      if (p == tp->sack_run_start) {
        if (p == tp->sack_run_end)
          toe_tcp_sack_run_clear(tp);
        else
          tp->sack_run_start = p->qnext; /* still SACKed, up to the run's end */
      }
      tp->sndq_head = p->qnext;
      if (!tp->sndq_head)
        tp->sndq_tail = NULL;
      p->qnext = NULL;
      toe_pbuf_free(st, p);
      tp->sndq_bytes = sub_sat(tp->sndq_bytes, len);
      freed += len;
      continue;
    }
    if (toe_seq_lt(seg->seq, ack)) {
      /* Partly acknowledged (the peer acked part of a segment, e.g. after a PMTU change):
       * keep the rest, with its marks. */
      uint32_t n = ack - seg->seq;
      struct toe_pbuf *nh;
      if (p == tp->sack_run_start || p == tp->sack_run_end)
        toe_tcp_sack_run_clear(tp); /* the descriptor may be replaced below */
      if (toe_pbuf_shared(p)) {
        /* A frame still in flight references these buffers (segments go out without a payload
         * copy): their descriptors are that frame's too and must not change. Keep a private
         * copy of the rest instead; without a buffer for it, the trim waits for a later ACK
         * (the segment stays whole and accounted as unacknowledged until then). */
        nh = toe_pbuf_copy_range(st, p, n, len - n, 0);
        if (nh == NULL)
          break;
        nh->qnext = p->qnext;
        p->qnext = NULL;
      } else {
        nh = NULL;
      }
      if (!(seg->flags & TOE_SEG_SACKED)) {
        tp->delivered += n;
        seg_delivered(tp, w, seg, ack, false);
      }
      seg_unaccount(tp, seg, n, false);
      if (nh != NULL) {
        memcpy(nh->meta, p->meta, sizeof(nh->meta));
        toe_pbuf_free(st, p);
      } else
        nh = toe_pbuf_drop_front(st, p, n);
      toe_tcp_seg(nh)->seq = ack;
      toe_tcp_seg(nh)->flags &= (uint8_t)~TOE_SEG_CSUM; /* fewer bytes: the kept sum is stale */
      tp->sndq_head = nh;
      if (tp->sndq_tail == p)
        tp->sndq_tail = nh;
      tp->sndq_bytes = sub_sat(tp->sndq_bytes, n);
      freed += n;
    }
    break;
  }
  return freed;
}

/* RFC 2883 4: the first block reports a duplicate if it lies below the cumulative ACK or inside
 * the second block. */
static bool is_dsack(const struct toe_tcp_opts *o, uint32_t ack)
{
  const struct toe_tcp_sack_block *b = o->sack;
  if (toe_seq_lt(b[0].start, ack))
    return true;
  return o->sack_count > 1 && toe_seq_ge(b[0].start, b[1].start) && toe_seq_le(b[0].end, b[1].end);
}

static void dsack_received(struct toe_stack *st, struct toe_tcb *tp,
                           const struct toe_tcp_sack_block *b)
{
  uint32_t len = b->end - b->start;
  /* Only what we sent can have been duplicated. */
  if (!toe_seq_lt(b->start, b->end) || len > tp->snd_max - tp->iss ||
      toe_seq_gt(b->end, tp->snd_max)) {
    st->ctr.tcp.rec_sack_invalid++;
    return;
  }
  st->ctr.tcp.rec_dsacks_rcvd++;
  tp->ack_flags |= TOE_ACKF_DSACK;
  /* RFC 3708 idea: each D-SACK for data retransmitted in the current episode says that
   * retransmission was unnecessary; when all of them were, the episode was spurious. Only the
   * range the episode retransmitted counts (the network duplicates segments too). */
  if ((tp->rec_flags & TOE_RECF_UNDO) && toe_seq_ge(b->start, tp->undo_marker) &&
      toe_seq_le(b->end, tp->undo_rxt_high))
    tp->undo_retrans = sub_sat(tp->undo_retrans, len);
  /* RFC 8985 7.4.1: a D-SACK for the tail-loss probe's retransmission: no loss was repaired. */
  if (tp->tlp_pending && (tp->rec_flags & TOE_RECF_TLP_RETX) &&
      toe_seq_le(b->end, tp->tlp_end_seq) && toe_seq_ge(b->end, tp->tlp_end_seq - 1u))
    tp->ack_flags |= TOE_ACKF_DSACK_TLP;
}

/* Grows the SACKed run by the newly SACKed segment `p` when it borders the run; else `p` starts
 * a new run (the one growing now is the one worth jumping over). */
static void run_add(struct toe_tcb *tp, struct toe_pbuf *p)
{
  if (tp->sack_run_end != NULL && tp->sack_run_end->qnext == p)
    tp->sack_run_end = p;
  else if (tp->sack_run_start != NULL && p->qnext == tp->sack_run_start)
    tp->sack_run_start = p;
  else
    tp->sack_run_start = tp->sack_run_end = p;
}

/* Marks the sent segments that the (valid, sorted) blocks cover entirely. */
static void sack_mark(struct toe_stack *st, struct toe_tcb *tp, struct ack_walk *w,
                      const struct toe_tcp_sack_block *blk, int n)
{
  (void)st;
  struct toe_pbuf *p = tp->sndq_head;
  for (int i = 0; i < n && p && p != tp->snd_next_seg; i++) {
    for (; p && p != tp->snd_next_seg; p = p->qnext) {
      tp->sack_walk++;
      if (p == tp->sack_run_start) {
        /* Jump over the SACKed run when the block covers its end (nothing in it can change),
         * landing on its last segment, which the checks below see as known already. */
        struct toe_pbuf *e = tp->sack_run_end;
        if (toe_seq_le(toe_tcp_seg(e)->seq + e->tot_len, blk[i].end))
          p = e;
      }
      struct toe_tcp_seg *seg = toe_tcp_seg(p);
      uint32_t end = seg->seq + p->tot_len;
      if (toe_seq_le(end, blk[i].start))
        continue; /* below the block */
      if (toe_seq_gt(end, blk[i].end))
        break; /* reaches past the block: the next block may cover it */
      if (toe_seq_lt(seg->seq, blk[i].start) || (seg->flags & TOE_SEG_SACKED))
        continue; /* partly covered, or known already */
      seg_delivered(tp, w, seg, end, true);
      if (seg->flags & TOE_SEG_LOST) {
        seg->flags &= (uint8_t)~TOE_SEG_LOST;
        tp->lost_bytes = sub_sat(tp->lost_bytes, p->tot_len);
      }
      if (seg->flags & TOE_SEG_RXMIT) {
        seg->flags &= (uint8_t)~TOE_SEG_RXMIT;
        tp->retrans_out = sub_sat(tp->retrans_out, p->tot_len);
      }
      seg->flags |= TOE_SEG_SACKED;
      run_add(tp, p);
      tp->sacked_bytes += p->tot_len;
      if (tp->sacked_segs < UINT16_MAX)
        tp->sacked_segs++;
      tp->delivered += p->tot_len;
      tp->ack_flags |= TOE_ACKF_SACKED;
      if (toe_seq_gt(end, tp->high_sacked))
        tp->high_sacked = end;
    }
  }
}

static void sack_process(struct toe_stack *st, struct toe_tcb *tp, struct ack_walk *w,
                         const struct toe_tcp_opts *o, uint32_t ack)
{
  struct toe_tcp_sack_block blk[TOE_TCP_MAX_SACK_BLOCKS];
  int n = 0;
  int cnt = o->sack_count < TOE_TCP_MAX_SACK_BLOCKS ? o->sack_count : TOE_TCP_MAX_SACK_BLOCKS;
  int first = 0;
  if (is_dsack(o, ack)) {
    dsack_received(st, tp, &o->sack[0]);
    first = 1;
  }
  for (int i = first; i < cnt; i++) {
    struct toe_tcp_sack_block b = o->sack[i];
    /* RFC 2018 3: a block names data received above SND.UNA and below what we sent; a block that
     * straddles SND.UNA is clipped, anything else is bogus or stale. */
    if (!toe_seq_lt(b.start, b.end) || toe_seq_gt(b.end, tp->snd_max) ||
        toe_seq_le(b.end, tp->snd_una) || b.end - b.start > tp->snd_max - tp->snd_una) {
      st->ctr.tcp.rec_sack_invalid++;
      continue;
    }
    if (toe_seq_lt(b.start, tp->snd_una))
      b.start = tp->snd_una;
    st->ctr.tcp.rec_sack_blocks++;
    /* insertion sort by left edge (at most four blocks) */
    int j = n++;
    while (j > 0 && toe_seq_gt(blk[j - 1].start, b.start)) {
      blk[j] = blk[j - 1];
      j--;
    }
    blk[j] = b;
  }
  if (n)
    sack_mark(st, tp, w, blk, n);
}

/* Wakes a writer that saw -EAGAIN once a useful amount of the send buffer is free again. */
static void maybe_writable(struct toe_stack *st, struct toe_tcb *tp)
{
  if (!(tp->flags & TOE_TF_WRITABLE_WAIT))
    return;
  uint32_t used = tp->sndq_bytes;
  uint32_t space = tp->sndbuf > used ? tp->sndbuf - used : 0;
  /* Low-water mark: a third of the buffer free (as Linux's sk_stream_wspace rule of thumb). */
  if (space >= tp->sndbuf / 3u || used == 0) {
    tp->flags &= ~TOE_TF_WRITABLE_WAIT;
    toe_tcp_notify(st, tp, TOE_EV_WRITABLE);
  }
}

void toe_tcp_ack_process(struct toe_stack *st, struct toe_tcb *tp, uint32_t ack,
                         const struct toe_tcp_opts *opts, uint32_t ts_ecr)
{
  struct ack_walk w;
  memset(&w, 0, sizeof(w));
  w.now = toe_stack_now(st);

  tp->ack_flags = 0;
  tp->ack_delivered = 0;
  tp->ack_acked = 0;
  tp->ack_rtt_us = 0;
  tp->ack_ts_ecr = ts_ecr;
  tp->ack_prior_pipe = toe_tcp_pipe(tp);
  if ((tp->flags & TOE_TF_TS_OK) && opts && (opts->has & TOE_TCPOPT_HAS_TS)) {
    tp->ack_flags |= TOE_ACKF_TS;
    w.ts_now = toe_tcp_ts_now(st, tp);
  }
  /* An ACK of data never sent is the input path's to reject (RFC 9293 3.10.7.4, RFC 5961 5.2). */
  if (toe_seq_gt(ack, tp->snd_max))
    return;

  /* RACK.fack and high_sacked live in [SND.UNA, SND.MAX]; repair them after wrap or at start. */
  if (toe_seq_lt(tp->rack_fack, tp->snd_una) || toe_seq_gt(tp->rack_fack, tp->snd_max))
    tp->rack_fack = tp->snd_una;
  if (toe_seq_lt(tp->high_sacked, tp->snd_una) || toe_seq_gt(tp->high_sacked, tp->snd_max))
    tp->high_sacked = tp->snd_una;
  w.fack_before = tp->rack_fack;
  uint64_t delivered_before = tp->delivered;

  if (toe_seq_gt(ack, tp->snd_una)) {
    uint32_t freed = ack_cumulative(st, tp, &w, ack);
    tp->ack_acked = freed;
    tp->bytes_acked += freed;
    tp->snd_una = ack;
    if (toe_seq_lt(tp->snd_nxt, ack))
      tp->snd_nxt = ack;
    if (toe_seq_lt(tp->rack_fack, ack))
      tp->rack_fack = ack;
    if (toe_seq_lt(tp->high_sacked, ack))
      tp->high_sacked = ack;
    tp->ack_flags |= TOE_ACKF_UNA;
    /* Forward progress ends any backoff (RFC 6298 5.7 spirit; Linux resets it the same way). */
    tp->rto_backoff = 0;
    tp->rto_streak = 0;
  }

  if ((tp->flags & TOE_TF_SACK_OK) && opts && (opts->has & TOE_TCPOPT_HAS_SACK) && opts->sack_count)
    sack_process(st, tp, &w, opts, ack);

  tp->ack_delivered = (uint32_t)(tp->delivered - delivered_before);

  /* RACK.rtt and RACK.xmit_ts/end_seq from the most recently sent segment delivered. */
  if (w.rack_have) {
    tp->rack_rtt_us = rtt_us_since(w.now, w.rack_ts);
    if (rack_sent_after(w.rack_ts, w.rack_end, tp->rack_xmit_ts, tp->rack_end_seq)) {
      tp->rack_xmit_ts = w.rack_ts;
      tp->rack_end_seq = w.rack_end;
      tp->rack_retx = w.rack_retx;
    }
  }

  /* One RTT sample per ACK (RFC 6298 2-3): from a never-retransmitted segment when there is one
   * (microsecond clock), else from the timestamp echo, which names the transmission it answers
   * (RFC 7323 4.1) and so is valid for retransmitted data too. */
  uint32_t rtt = 0;
  if (w.cum_rtt_have)
    rtt = rtt_us_since(w.now, w.cum_rtt_ts);
  else if (w.sack_rtt_have)
    rtt = rtt_us_since(w.now, w.sack_rtt_ts);
  if (rtt) {
    if (!tp->min_rtt_us || rtt < tp->min_rtt_us)
      tp->min_rtt_us = rtt;
  } else if ((tp->ack_flags & (TOE_ACKF_TS | TOE_ACKF_UNA)) == (TOE_ACKF_TS | TOE_ACKF_UNA) &&
             ts_ecr) {
    uint32_t ms = w.ts_now - ts_ecr;
    if ((int32_t)ms >= 0 && ms < RTT_MAX_US / 1000u)
      rtt = ms ? ms * 1000u : 1u;
  }
  if (rtt) {
    tp->ack_rtt_us = rtt;
    toe_tcp_rtt_sample(st, tp, rtt);
  }

  if (tp->ack_flags & TOE_ACKF_UNA) {
    toe_tcp_rearm_rto(st, tp); /* RFC 6298 5.2/5.3 */
    maybe_writable(st, tp);
  }
}
