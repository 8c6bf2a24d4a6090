/*
 * Segment arrival for a connection: RFC 9293 3.10.7.3 (SYN-SENT) and 3.10.7.4 (the other states),
 * with RFC 5961 (blind RST/SYN/data injection), RFC 7323 (PAWS, timestamps, window scaling),
 * RFC 2018/2883 (SACK and D-SACK blocks, via tcp_reass.c), RFC 1122 4.2.3.2 and RFC 5681 4.2
 * (when to acknowledge), RFC 6093 (urgent data is ordinary data).
 *
 * The order of the checks is RFC 9293's: sequence number (after PAWS), RST, SYN, ACK, URG, text,
 * FIN. Every segment ends here as queued payload or a counted drop; a reply ACK goes out through
 * toe_tcp_output() (or toe_tcp_send_ack() for a drop that asks for one), and socket events are
 * delivered last, after the tcb is consistent, because the callback may close the socket.
 */
#include "engine/stack.h"
#include "engine/tcp.h"
#include "engine/tcp_ecn.h"

/* Challenge and duplicate ACKs a connection sends per second at most (RFC 5961 7). */
#define ACK_LIMIT_PER_SEC 10u
/* RFC 7323 5.5: TS.Recent is invalid after 24 days of idleness (ms). */
#define TS_RECENT_IDLE_MS (24u * 24u * 3600u * 1000u)
/* RFC 9293 3.7.1 / RFC 1122 4.2.2.6: the send MSS without an MSS option. */
#define DEFAULT_SND_MSS 536u
/* Payloads up to this size are copied into the tail buffer of the receive queue when they fit. */
#define COALESCE_MAX 512u

static bool counts_estab(uint8_t s)
{
  return s == TOE_TCP_ESTABLISHED || s == TOE_TCP_CLOSE_WAIT;
}

void toe_tcp_set_state(struct toe_stack *st, struct toe_tcb *tp, uint8_t state)
{
  bool was = counts_estab(tp->state), is = counts_estab(state);
  if (was && !is && st->ctr.tcp.curr_estab > 0)
    st->ctr.tcp.curr_estab--;
  else if (!was && is)
    st->ctr.tcp.curr_estab++;
  tp->state = state;
}

/* Links `pb` at the end of the receive queue. */
static void rcvq_link(struct toe_tcb *tp, struct toe_pbuf *pb, uint32_t len)
{
  pb->qnext = NULL;
  if (tp->rcvq_tail)
    tp->rcvq_tail->qnext = pb;
  else
    tp->rcvq_head = pb;
  tp->rcvq_tail = pb;
  tp->rcvq_bytes += len;
}

int toe_tcp_rcvq_append(struct toe_stack *st, struct toe_tcb *tp, struct toe_pbuf *pb)
{
  uint32_t len = pb->tot_len;
  if (len == 0) {
    toe_pbuf_free(st, pb);
    return 0;
  }
  /* Leading empty buffers (a reassembled datagram's header buffer) go first. */
  while (pb->len == 0 && pb->next) {
    struct toe_pbuf *nx = pb->next;
    pb->next = NULL;
    toe_pbuf_free(st, pb);
    pb = nx;
  }
  struct toe_pbuf *t = tp->rcvq_tail;
  if (t && len <= COALESCE_MAX) {
    struct toe_pbuf *last = t;
    while (last->next)
      last = last->next;
    if (last->refcnt == 1 && toe_pbuf_tailroom(last) >= len) {
      toe_pbuf_copy_out(pb, 0, last->data + last->len, len);
      last->len = (uint16_t)(last->len + len);
      for (struct toe_pbuf *p = t; p; p = p->next)
        p->tot_len += len; /* every buffer's tot_len counts to the end of its chain */
      tp->rcvq_bytes += len;
      toe_pbuf_free(st, pb);
      return 0;
    }
  }
  uint32_t owner = toe_tcp_rx_owner(st, tp);
  uint32_t limit = toe_tcp_rx_buf_limit(st, tp);
  if (pb->owner != 0) {
    /* From the out-of-order queue: charged (and admitted) when it arrived. */
    rcvq_link(tp, pb, len);
    return 0;
  }
  /* Fresh from the wire. A small payload in a buffer of its own is the tail that the next small
   * payloads fill (the copy above), so tiny segments cost about one buffer per 1.8 KB; a sparse
   * chain (tiny IPv4 fragments) is compacted into full buffers. */
  if (pb->next != NULL)
    pb = toe_pbuf_compact(st, pb, 0);
  if (toe_pbuf_charge_check(st, owner, toe_pbuf_chain_bufs(pb), limit) < 0) {
    toe_pbuf_free(st, pb);
    return -TOE_ENOBUFS;
  }
  toe_pbuf_charge(st, pb, owner);
  rcvq_link(tp, pb, len);
  return 0;
}

/*
 * One ACK that a drop asks for (a duplicate ACK for an unacceptable segment, a challenge ACK),
 * at most ACK_LIMIT_PER_SEC per connection and second (RFC 5961 7; a per-connection budget, so
 * the limiter tells an off-path attacker nothing about other connections).
 */
static bool ack_budget(struct toe_stack *st, struct toe_tcb *tp)
{
  uint32_t sec = toe_tcp_now_ms(st) / 1000u;
  if (tp->chack_sec != sec) {
    tp->chack_sec = sec;
    tp->chack_count = 0;
  }
  if (tp->chack_count >= ACK_LIMIT_PER_SEC) {
    st->ctr.tcp.challenge_acks_limited++;
    return false;
  }
  tp->chack_count++;
  return true;
}

/*
 * The duplicate ACK an unacceptable segment asks for (RFC 9293 3.10.7.4). Segments that carry data
 * (and no SYN) are answered without the budget, as Linux does: they cannot be part of an ACK loop,
 * and a sender whose retransmissions of data we already hold must learn that, or it backs off
 * RTO after RTO.
 */
static void drop_ack(struct toe_stack *st, struct toe_tcb *tp, uint32_t plen, uint8_t fl)
{
  if ((plen > 0 && !(fl & TOE_TCP_SYN)) || ack_budget(st, tp))
    toe_tcp_send_ack(st, tp);
}

static void challenge_ack(struct toe_stack *st, struct toe_tcb *tp)
{
  if (ack_budget(st, tp)) {
    st->ctr.tcp.challenge_acks++;
    toe_tcp_send_ack(st, tp);
  }
}

/* What is left of the window we advertised (the right edge never moves back, RFC 9293
 * 3.8.6.2.2). */
static uint32_t advertised_window(const struct toe_tcb *tp)
{
  uint32_t adv = toe_seq_gt(tp->rcv_adv, tp->rcv_nxt) ? tp->rcv_adv - tp->rcv_nxt : 0;
  uint32_t most = 65535u << (tp->rcv_wscale > 14 ? 14 : tp->rcv_wscale);
  if (adv > most) /* an edge never advertised (set before rcv_nxt was known) */
    adv = most;
  return adv;
}

/* The window a segment is tested against: what we advertised, or more if there is room for it
 * now. The tests against it only ever ask whether something lies inside, so callers test against
 * advertised_window() first, which nearly every segment fits, and compute this (the buffer and
 * pool arithmetic of toe_tcp_rcv_window) only for a segment that does not. */
static uint32_t acceptable_window(const struct toe_stack *st, const struct toe_tcb *tp)
{
  uint32_t adv = advertised_window(tp);
  uint32_t now = toe_tcp_rcv_window(st, tp);
  return adv > now ? adv : now;
}

/* RFC 9293 3.10.7.4's acceptability test of a segment of `seglen` (text, SYN and FIN) at `seq`
 * against the receive window [rnxt, rnxt + wnd). A segment acceptable in a window is acceptable
 * in any larger one. */
static bool seq_acceptable(uint32_t seq, uint32_t seglen, uint32_t rnxt, uint32_t wnd)
{
  if (seglen == 0)
    return wnd == 0 ? seq == rnxt : toe_seq_ge(seq, rnxt) && toe_seq_lt(seq, rnxt + wnd);
  /* "special allowance should be made to accept valid ACKs, URGs, and RSTs": with a zero window
   * a segment at rcv_nxt is taken for its controls; its text is cut off by text_input(). */
  if (wnd == 0)
    return seq == rnxt;
  uint32_t last = seq + seglen - 1;
  return (toe_seq_ge(seq, rnxt) && toe_seq_lt(seq, rnxt + wnd)) ||
         (toe_seq_ge(last, rnxt) && toe_seq_lt(last, rnxt + wnd));
}

/* RFC 7323 4.1 (RTTM): the ACK of our SYN echoing our TSval gives the first RTT sample (later
 * ACKs are sampled by toe_tcp_ack_process). */
static void ts_rtt_sample(struct toe_stack *st, struct toe_tcb *tp, const struct toe_tcp_opts *o)
{
  if (!(tp->flags & TOE_TF_TS_OK) || !(o->has & TOE_TCPOPT_HAS_TS) || o->ts_ecr == 0)
    return;
  uint32_t ms = toe_tcp_ts_now(st, tp) - o->ts_ecr;
  if (ms > 3600u * 1000u) /* an echo from the future or absurdly old: not a sample */
    return;
  toe_tcp_rtt_sample(st, tp, ms == 0 ? 1u : ms * 1000u); /* < 1 ms: as tcp_sack.c does */
}

/* Records the peer's TSval as TS.Recent (RFC 7323 4.3, 5.3 R2, Appendix D). */
static void ts_update(struct toe_stack *st, struct toe_tcb *tp, uint32_t seg_seq,
                      const struct toe_tcp_opts *o)
{
  if (!(tp->flags & TOE_TF_TS_OK) || !(o->has & TOE_TCPOPT_HAS_TS))
    return;
  uint32_t now = toe_tcp_now_ms(st);
  bool stale = now - tp->ts_recent_age > TS_RECENT_IDLE_MS;
  if (toe_seq_le(seg_seq, tp->last_ack_sent) && (toe_seq_ge(o->ts_val, tp->ts_recent) || stale)) {
    tp->ts_recent = o->ts_val;
    tp->ts_recent_age = now;
  }
}

/* The send MSS from the peer's MSS option (536 without one, RFC 9293 3.7.1), clamped to the path
 * MTU and to the user's TOE_TCP_MAXSEG; never below TOE_TCP_MIN_MSS (as Linux's tcp_min_snd_mss:
 * a tiny MSS would only cost us per-segment work). Option space is taken off per segment. */
static void set_snd_mss(const struct toe_stack *st, struct toe_tcb *tp,
                        const struct toe_tcp_opts *o)
{
  uint32_t mss = (o->has & TOE_TCPOPT_HAS_MSS) ? o->mss : DEFAULT_SND_MSS;
  tp->peer_mss = (uint16_t)(mss > 65535u ? 65535u : mss);
  uint32_t mtu = tp->pmtu ? tp->pmtu : st->cfg.mtu;
  uint32_t hdrs = toe_tcp_ip_hlen(tp->sk.laddr) + TOE_TCP_HLEN; /* IPv6: RFC 8200 8.3 */
  if (mtu > hdrs && mss > mtu - hdrs)
    mss = mtu - hdrs;
  if (tp->user_mss && mss > tp->user_mss)
    mss = tp->user_mss;
  if (mss < TOE_TCP_MIN_MSS)
    mss = TOE_TCP_MIN_MSS;
  tp->snd_mss = (uint16_t)mss;
}

/*
 * The options of the peer's SYN-ACK against what our SYN offered (the TF_*_OK flags in SYN_SENT):
 * each is on only if both sides sent it (RFC 7323 2.2, 3.2; RFC 2018 2).
 */
static void negotiate_synack(struct toe_stack *st, struct toe_tcb *tp, const struct toe_tcp_opts *o)
{
  set_snd_mss(st, tp, o);
  if ((tp->flags & TOE_TF_WS_OK) && (o->has & TOE_TCPOPT_HAS_WSCALE)) {
    /* RFC 7323 2.3: a shift above 14 is used as 14. */
    tp->snd_wscale = o->wscale > 14 ? 14 : o->wscale;
  } else {
    tp->flags &= ~TOE_TF_WS_OK;
    tp->snd_wscale = 0;
    tp->rcv_wscale = 0;
  }
  if ((tp->flags & TOE_TF_TS_OK) && (o->has & TOE_TCPOPT_HAS_TS)) {
    tp->ts_recent = o->ts_val;
    tp->ts_recent_age = toe_tcp_now_ms(st);
  } else {
    tp->flags &= ~TOE_TF_TS_OK;
  }
  if (!(o->has & TOE_TCPOPT_HAS_SACK_PERM))
    tp->flags &= ~TOE_TF_SACK_OK;
}

/*
 * Congestion control when our active (or simultaneous) open becomes ESTABLISHED: the send MSS is
 * known only now, so the initial window is computed here (IW10, RFC 6928). If our SYN (or the
 * SYN-ACK of a simultaneous open) had to be retransmitted, the initial window is one segment
 * (RFC 5681 3.1, RFC 6928 2) and the RTO is re-initialized to 3 s if it is shorter (RFC 6298 5.7;
 * the next RTT sample recomputes it), as the SYN cache does for passive opens (tcp_syncache.c).
 * Called after the handshake's RTT sample, if any.
 */
static void handshake_cc_init(struct toe_stack *st, struct toe_tcb *tp)
{
  toe_tcp_cc_init(st, tp);
  if (tp->syn_retries == 0)
    return;
  tp->cwnd = toe_cc_mss(tp); /* one segment of SMSS (RFC 5681 2) */
  if (tp->rto_us < TOE_TCP_RTO_SYN_LOST_US)
    tp->rto_us = TOE_TCP_RTO_SYN_LOST_US;
}

static bool our_fin_acked(const struct toe_tcb *tp)
{
  return (tp->flags & TOE_TF_FIN_SENT) && tp->snd_una == tp->snd_max;
}

/*
 * In-order data owes an ACK (RFC 1122 4.2.3.2, RFC 5681 4.2): TOE_TF_DELACK, which output turns
 * into an ACK at once for every second full-sized segment or while quick ACKs are due, else arms
 * the delayed-ACK timer. The largest payload seen is the "full-sized segment" (never above the
 * MSS we announced: a reassembled jumbo datagram must not make ACKs rarer).
 */
static void ack_decision(struct toe_tcb *tp, uint32_t plen)
{
  uint32_t cap = tp->rcv_mss ? tp->rcv_mss : 1460u;
  uint32_t seg = plen < cap ? plen : cap;
  if (seg > tp->rcv_seg_max)
    tp->rcv_seg_max = (uint16_t)seg;
  tp->flags |= TOE_TF_DELACK;
}

/* What the input path decided, carried to the end of processing. */
struct in_ctx {
  uint32_t ev;   /* socket events to deliver */
  bool gone;     /* the tcb was freed (reset, TIME_WAIT, closed) */
  uint32_t plen; /* the segment's payload as it arrived (a receive burst's ACK rule) */
};

/* The peer's FIN, in order (RFC 9293 3.10.7.4 "eighth"). */
static void fin_input(struct toe_stack *st, struct toe_tcb *tp, struct in_ctx *cx)
{
  tp->rcv_nxt++;
  tp->flags |= TOE_TF_RCVD_FIN | TOE_TF_ACK_NOW;
  /* Anything queued beyond the end of the stream was never part of it. */
  toe_tcp_reass_purge(st, tp);
  cx->ev |= TOE_EV_READABLE;
  switch (tp->state) {
  case TOE_TCP_SYN_RECEIVED:
  case TOE_TCP_ESTABLISHED:
    toe_tcp_set_state(st, tp, TOE_TCP_CLOSE_WAIT);
    break;
  case TOE_TCP_FIN_WAIT_1:
  case TOE_TCP_FIN_WAIT_2:
    if (tp->state == TOE_TCP_FIN_WAIT_1 && !our_fin_acked(tp)) {
      toe_tcp_set_state(st, tp, TOE_TCP_CLOSING); /* simultaneous close */
      break;
    }
    /* Acknowledge the FIN, then hand the connection to the compact TIME_WAIT (RFC 9293 3.6). */
    toe_tcp_send_ack(st, tp);
    toe_tcp_notify(st, tp, cx->ev | TOE_EV_HUP);
    cx->ev = 0;
    toe_tcp_enter_timewait(st, tp);
    cx->gone = true;
    break;
  default: /* CLOSE_WAIT, CLOSING, LAST_ACK: a FIN was already counted; nothing changes */
    break;
  }
}

/*
 * The in-window text of a segment, trimmed to start at or after rcv_nxt, and its FIN (seventh and
 * eighth steps). `pb` (data at the payload) is consumed; cx->gone says if the tcb was freed.
 */
static void data_input(struct toe_stack *st, struct toe_tcb *tp, struct toe_pbuf *pb, uint32_t seq,
                       bool fin, struct in_ctx *cx)
{
  struct toe_counters_tcp *c = &st->ctr.tcp;
  uint32_t plen = pb->tot_len;

  if (tp->state != TOE_TCP_ESTABLISHED && tp->state != TOE_TCP_FIN_WAIT_1 &&
      tp->state != TOE_TCP_FIN_WAIT_2) {
    /* CLOSE_WAIT, CLOSING, LAST_ACK: the peer's FIN came already; text cannot follow it. */
    toe_pbuf_free(st, pb);
    return;
  }
  if (plen > 0 && (tp->flags & TOE_TF_ORPHAN)) {
    /* New data for a socket the application closed: nobody will read it. RFC 9293 3.6 (and RFC
     * 2525 2.17) say to answer with a RST so the peer learns that data was lost. */
    c->rx_drop_after_close++;
    toe_pbuf_free(st, pb);
    toe_tcp_send_rst_conn(st, tp);
    toe_tcp_drop(st, tp, -TOE_ECONNRESET);
    cx->gone = true;
    return;
  }

  if (seq != tp->rcv_nxt) {
    /* Out of order: keep it and acknowledge at once, RFC 5681 4.2 (the duplicate ACK carries the
     * SACK blocks). A FIN is remembered until the data before it is complete. */
    tp->flags |= TOE_TF_ACK_NOW;
    if (fin && !tp->ooo_fin) {
      tp->ooo_fin = 1;
      tp->ooo_fin_seq = seq + plen;
    }
    if (plen > 0 && !(tp->flags & TOE_TF_SHUT_RD)) {
      c->rx_data_segs++;
      toe_tcp_reass_insert(st, tp, pb, seq);
    } else {
      /* (after shutdown(SHUT_RD) nothing is kept: it comes again in order, to be discarded) */
      toe_pbuf_free(st, pb);
    }
    return;
  }

  /* In order. A FIN seen earlier out of order ends the stream where it said. */
  if (tp->ooo_fin && toe_seq_gt(seq + plen, tp->ooo_fin_seq)) {
    uint32_t keep = tp->ooo_fin_seq - seq;
    toe_pbuf_trim(st, pb, keep);
    plen = keep;
    fin = true;
  }
  if (plen > 0) {
    c->rx_data_segs++;
    if (tp->flags & TOE_TF_SHUT_RD) {
      /* shutdown(SHUT_RD): acknowledged and discarded */
      c->rx_shut_rd_bytes += plen;
      toe_pbuf_free(st, pb);
      tp->rcv_nxt += plen;
    } else if (toe_tcp_rcvq_append(st, tp, pb) < 0) {
      /* The connection's buffer allowance (or the pool) is used up: not acknowledged, so the
       * peer sends it again once the application has read (the duplicate ACK says where we
       * are). A FIN riding on it comes again with it. */
      c->rx_drop_nomem++;
      tp->flags |= TOE_TF_ACK_NOW;
      fin = false;
    } else {
      tp->rcv_nxt += plen;
      tp->bytes_received += plen;
      c->rx_bytes += plen;
      cx->ev |= TOE_EV_READABLE;
    }
    pb = NULL;
    if (tp->ooo_head) {
      /* It filled (part of) a hole: acknowledge at once, RFC 5681 4.2. */
      tp->flags |= TOE_TF_ACK_NOW;
      if (toe_tcp_reass_pull(st, tp) > 0 && !(tp->flags & TOE_TF_SHUT_RD))
        cx->ev |= TOE_EV_READABLE;
    }
    ack_decision(tp, plen);
  } else {
    toe_pbuf_free(st, pb);
  }
  if (fin || (tp->ooo_fin && tp->rcv_nxt == tp->ooo_fin_seq))
    fin_input(st, tp, cx);
}

/*
 * SYN-SENT (RFC 9293 3.10.7.3). Returns true if processing goes on with the text and FIN of the
 * segment (a SYN-ACK that established the connection); `pb` is then still the caller's, else it
 * was consumed.
 */
static bool syn_sent_input(struct toe_stack *st, struct toe_tcb *tp, struct toe_pbuf *pb,
                           const struct toe_ipv4_view *ip, const struct toe_tcp_view *th,
                           const struct toe_tcp_opts *opts, struct in_ctx *cx)
{
  struct toe_counters_tcp *c = &st->ctr.tcp;
  uint8_t fl = th->flags;

  /* first: the ACK must acknowledge our SYN and nothing more */
  if ((fl & TOE_TCP_ACK) && (toe_seq_le(th->ack, tp->iss) || toe_seq_gt(th->ack, tp->snd_max))) {
    c->rx_drop_syn_sent++;
    if (!(fl & TOE_TCP_RST))
      toe_tcp_send_reset(st, ip, th, pb->tot_len + !!(fl & TOE_TCP_SYN) + !!(fl & TOE_TCP_FIN));
    toe_pbuf_free(st, pb);
    return false;
  }
  /* second: RST. Only one that acknowledges our SYN is believed (RFC 5961 3.2, RFC 9293). */
  if (fl & TOE_TCP_RST) {
    toe_pbuf_free(st, pb);
    if (fl & TOE_TCP_ACK) {
      c->rx_resets++;
      toe_tcp_drop(st, tp, -TOE_ECONNREFUSED);
      cx->gone = true;
    } else {
      c->rx_drop_syn_sent++;
    }
    return false;
  }
  /* fourth: SYN (the third, security, does not apply) */
  if (!(fl & TOE_TCP_SYN)) {
    c->rx_drop_syn_sent++;
    toe_pbuf_free(st, pb);
    return false;
  }
  tp->irs = th->seq;
  tp->rcv_nxt = th->seq + 1;
  tp->rcv_adv = tp->rcv_nxt + tp->rcv_wnd; /* the window our SYN offered, from here */
  tp->last_ack_sent = tp->rcv_nxt;
  tp->rcv_tstamp = toe_stack_now(st);
  negotiate_synack(st, tp, opts);
  toe_tcp_ecn_synack_input(st, tp, th, ip->tos); /* RFC 3168 6.1.1, RFC 9768 3.1 */
  /* RFC 7323 2.2: the window of a SYN is never scaled. */
  tp->snd_wnd = th->window;
  tp->max_sndwnd = th->window;
  tp->snd_wl1 = th->seq;
  tp->snd_wl2 = th->ack;

  if (fl & TOE_TCP_ACK) {
    /* Our SYN is acknowledged: ESTABLISHED. The SYN is not in the send queue, so only the
     * sequence space and the retransmission timer change. */
    ts_rtt_sample(st, tp, opts);
    tp->snd_una = th->ack;
    if (toe_seq_lt(tp->snd_nxt, tp->snd_una))
      tp->snd_nxt = tp->snd_una;
    tp->rto_backoff = 0;
    toe_tcp_set_state(st, tp, TOE_TCP_ESTABLISHED);
    toe_tcp_rearm_rto(st, tp); /* nothing outstanding: stops the SYN timer */
    handshake_cc_init(st, tp);
    tp->flags |= TOE_TF_ACK_NOW;
    cx->ev |= TOE_EV_WRITABLE;
    return true;
  }

  /*
   * Simultaneous open (RFC 9293 3.5 figure 8): SYN-RECEIVED, and our SYN goes out again as a
   * SYN-ACK (output sends SYN-ACK in SYN_RECEIVED when snd_nxt == iss). Text in the SYN is not
   * kept: the peer sends it again once the handshake is complete.
   */
  toe_tcp_set_state(st, tp, TOE_TCP_SYN_RECEIVED);
  tp->snd_nxt = tp->iss;
  tp->flags |= TOE_TF_ACK_NOW;
  toe_pbuf_free(st, pb);
  toe_tcp_output(st, tp);
  return false;
}

/*
 * The text and FIN of a segment whose controls were accepted: trimmed to [rcv_nxt, window) and
 * handed to data_input(). `pb` (data at the payload) is consumed.
 */
static void text_input(struct toe_stack *st, struct toe_tcb *tp, struct toe_pbuf *pb, uint32_t seq,
                       bool fin, struct in_ctx *cx)
{
  uint32_t rnxt = tp->rcv_nxt;
  uint32_t wnd = advertised_window(tp); /* acceptable_window() if the text does not fit */
  uint32_t plen = pb->tot_len;
  if (toe_seq_lt(seq, rnxt)) {
    uint32_t d = rnxt - seq;
    if (d >= plen) {
      if (plen > 0) {
        toe_tcp_dsack_note(st, tp, seq, seq + plen);
        toe_pbuf_trim(st, pb, 0);
      }
      if (d > plen)
        fin = false; /* the FIN is old too */
      plen = 0;
    } else {
      toe_tcp_dsack_note(st, tp, seq, rnxt);
      /* cut d bytes off the front: whole buffers first, then the rest of the head */
      while (pb->next && d >= pb->len) {
        struct toe_pbuf *nx = pb->next;
        d -= pb->len;
        pb->next = NULL;
        toe_pbuf_free(st, pb);
        pb = nx;
      }
      if (d > 0)
        (void)toe_pbuf_pull(pb, (uint16_t)d);
      plen = pb->tot_len;
    }
    seq = rnxt;
  }
  if (plen > 0 && toe_seq_gt(seq + plen, rnxt + wnd))
    wnd = acceptable_window(st, tp);
  if (plen > 0 && toe_seq_gt(seq + plen, rnxt + wnd)) {
    /* Past the window (a zero window included): not kept, and the FIN with it. */
    uint32_t keep = toe_seq_gt(rnxt + wnd, seq) ? rnxt + wnd - seq : 0;
    toe_pbuf_trim(st, pb, keep);
    plen = keep;
    fin = false;
    tp->flags |= TOE_TF_ACK_NOW;
  }
  if (plen > 0 || fin)
    data_input(st, tp, pb, seq, fin, cx);
  else
    toe_pbuf_free(st, pb);
}

/* The end of processing a segment that was not dropped: send, then tell the application. */
static void finish(struct toe_stack *st, struct toe_tcb *tp, struct in_ctx *cx)
{
  if (cx->gone)
    return;
  if (st->tcp.in_burst)
    toe_tcp_output_or_defer(st, tp, cx->plen); /* one output per connection per burst */
  else
    toe_tcp_output(st, tp);
  if (cx->ev)
    toe_tcp_notify(st, tp, cx->ev);
}

/*
 * The ACK of a segment in a synchronized state (RFC 9293 3.10.7.4 "fifth"), after its acceptability
 * was checked: the send queue, recovery and the send window.
 */
static void ack_input(struct toe_stack *st, struct toe_tcb *tp, const struct toe_tcp_view *th,
                      const struct toe_tcp_opts *opts, uint32_t plen, uint8_t fl)
{
  uint32_t ack = th->ack;
  uint32_t old_una = tp->snd_una;
  uint32_t nwnd = (uint32_t)th->window << tp->snd_wscale;
  if (toe_seq_gt(ack, old_una)) {
    /* New data (or our FIN) acknowledged: the send queue, RTT samples (RFC 6298, RFC 7323 4.1)
     * and SACK information are tcp-rec's (tcp_sack.c), then the recovery decisions. */
    toe_tcp_ack_process(st, tp, ack, opts, opts->ts_ecr);
    toe_tcp_recovery_on_ack(st, tp, tp->snd_una - old_una, false);
  } else if (ack == old_una) {
    /* RFC 5681 2: a duplicate ACK has data outstanding, no text, no SYN/FIN, the same window. */
    bool dup =
        plen == 0 && !(fl & TOE_TCP_FIN) && tp->snd_max != tp->snd_una && nwnd == tp->snd_wnd;
    if (dup || (opts->has & TOE_TCPOPT_HAS_SACK)) {
      toe_tcp_ack_process(st, tp, ack, opts, opts->ts_ecr);
      toe_tcp_recovery_on_ack(st, tp, 0, dup);
    }
  }
  /* Window update: only from a segment not older than the last one used (WL1/WL2), so a
   * reordered old segment cannot shrink the window. */
  if (toe_seq_le(tp->snd_una, ack) && (toe_seq_lt(tp->snd_wl1, th->seq) ||
                                       (tp->snd_wl1 == th->seq && toe_seq_le(tp->snd_wl2, ack)))) {
    tp->snd_wnd = nwnd;
    tp->snd_wl1 = th->seq;
    tp->snd_wl2 = ack;
    if (nwnd > tp->max_sndwnd)
      tp->max_sndwnd = nwnd;
  }
}

void toe_tcp_input_conn(struct toe_stack *st, struct toe_tcb *tp, struct toe_pbuf *pb,
                        const struct toe_ipv4_view *ip, const struct toe_tcp_view *th,
                        const struct toe_tcp_opts *opts)
{
  struct toe_counters_tcp *c = &st->ctr.tcp;
  struct in_ctx cx = {.ev = 0, .gone = false, .plen = 0};
  uint8_t fl = th->flags;
  uint32_t seq = th->seq;

  /* The demultiplexer linearized the header; the payload stays where it arrived. */
  if (toe_pbuf_pull(pb, th->hdr_len) == NULL) {
    c->rx_drop_malformed++;
    toe_pbuf_free(st, pb);
    return;
  }

  switch (tp->state) {
  case TOE_TCP_SYN_SENT:
    if (syn_sent_input(st, tp, pb, ip, th, opts, &cx)) {
      /* Established by a SYN-ACK: its text and FIN (rare) are processed like any other. */
      text_input(st, tp, pb, seq + 1, (fl & TOE_TCP_FIN) != 0, &cx);
      finish(st, tp, &cx);
    }
    return;
  case TOE_TCP_SYN_RECEIVED:
  case TOE_TCP_ESTABLISHED:
  case TOE_TCP_FIN_WAIT_1:
  case TOE_TCP_FIN_WAIT_2:
  case TOE_TCP_CLOSE_WAIT:
  case TOE_TCP_CLOSING:
  case TOE_TCP_LAST_ACK:
    break;
  default: /* CLOSED, LISTEN, TIME_WAIT tcbs are not in the connection hash */
    c->rx_drop_no_socket++;
    toe_pbuf_free(st, pb);
    return;
  }

  /*
   * Simultaneous open, the other half: in SYN-RECEIVED, the peer's SYN-ACK for our SYN repeats
   * its SYN (seq = IRS) and acknowledges ours exactly. Taken as the ACK it carries, as Linux does
   * (a strict reading would ACK, drop it, and wait for the peer's next segment).
   */
  if (tp->state == TOE_TCP_SYN_RECEIVED && !(tp->flags & TOE_TF_PASSIVE) &&
      (fl & (TOE_TCP_SYN | TOE_TCP_ACK | TOE_TCP_RST)) == (TOE_TCP_SYN | TOE_TCP_ACK) &&
      seq + 1 == tp->rcv_nxt && th->ack == tp->snd_max) {
    seq++;
    fl &= (uint8_t)~TOE_TCP_SYN;
  }

  uint32_t plen = pb->tot_len;
  uint32_t seglen = plen + !!(fl & TOE_TCP_SYN) + !!(fl & TOE_TCP_FIN);
  bool ts_ok = (tp->flags & TOE_TF_TS_OK) != 0;
  bool has_ts = ts_ok && (opts->has & TOE_TCPOPT_HAS_TS);

  /* RFC 7323 3.2: once timestamps are agreed, a non-RST segment without one is dropped. */
  if (ts_ok && !has_ts && !(fl & TOE_TCP_RST)) {
    c->rx_drop_no_ts++;
    toe_pbuf_free(st, pb);
    return;
  }

  /* PAWS, RFC 7323 5.3 R1 (RST segments are exempt; TS.Recent expires after 24 idle days). */
  if (has_ts && !(fl & TOE_TCP_RST) && toe_seq_lt(opts->ts_val, tp->ts_recent) &&
      toe_tcp_now_ms(st) - tp->ts_recent_age <= TS_RECENT_IDLE_MS) {
    c->rx_drop_paws++;
    if (plen > 0 && toe_seq_le(seq + plen, tp->rcv_nxt))
      toe_tcp_dsack_note(st, tp, seq, seq + plen); /* an old duplicate: tell the sender */
    toe_pbuf_free(st, pb);
    drop_ack(st, tp, plen, fl);
    return;
  }

  /* first: the sequence number (RFC 9293 3.10.7.4, the four cases); against the advertised
   * window first: acceptable there, acceptable in the larger window too */
  uint32_t rnxt = tp->rcv_nxt;
  bool ok = seq_acceptable(seq, seglen, rnxt, advertised_window(tp)) ||
            seq_acceptable(seq, seglen, rnxt, acceptable_window(st, tp));
  if (!ok) {
    toe_pbuf_free(st, pb);
    if (fl & TOE_TCP_RST) {
      c->rx_drop_rst++; /* RFC 5961 3.2: outside the window, silently */
      return;
    }
    c->rx_drop_out_of_window++;
    if (plen > 0 && toe_seq_lt(seq, rnxt)) {
      /* Old data again (a spurious retransmission): RFC 2883 4.1.1 D-SACK. */
      uint32_t dend = toe_seq_lt(seq + plen, rnxt) ? seq + plen : rnxt;
      toe_tcp_dsack_note(st, tp, seq, dend);
    }
    drop_ack(st, tp, plen, fl);
    return;
  }

  /* second: RST (RFC 5961 3.2: only an exact match resets; in the window, a challenge ACK) */
  if (fl & TOE_TCP_RST) {
    toe_pbuf_free(st, pb);
    if (seq != rnxt) {
      c->rx_drop_rst++;
      challenge_ack(st, tp);
      return;
    }
    c->rx_resets++;
    /* SYN-RECEIVED: refused (RFC 9293: a passive one would go back to LISTEN; ours come from
     * the SYN cache, so there is nothing to go back to). Otherwise reset. */
    toe_tcp_drop(st, tp, tp->state == TOE_TCP_SYN_RECEIVED ? -TOE_ECONNREFUSED : -TOE_ECONNRESET);
    return;
  }

  /* fourth: SYN in a synchronized state, whatever its sequence number (RFC 5961 4.2, RFC 9293) */
  if (fl & TOE_TCP_SYN) {
    c->rx_drop_syn++;
    toe_pbuf_free(st, pb);
    challenge_ack(st, tp);
    return;
  }

  /* fifth: ACK */
  if (!(fl & TOE_TCP_ACK)) {
    c->rx_drop_no_ack++;
    toe_pbuf_free(st, pb);
    return;
  }
  uint32_t ack = th->ack;
  if (tp->state == TOE_TCP_SYN_RECEIVED) {
    if (!(toe_seq_lt(tp->snd_una, ack) && toe_seq_le(ack, tp->snd_max))) {
      c->rx_drop_bad_ack++;
      toe_tcp_send_reset(st, ip, th, seglen);
      toe_pbuf_free(st, pb);
      return;
    }
    /* Our SYN is acknowledged: ESTABLISHED, with the window this ACK carries (scaled: it is not
     * a SYN). The SYN itself is not in the send queue. */
    ts_update(st, tp, th->seq, opts);
    ts_rtt_sample(st, tp, opts);
    tp->snd_una = ack;
    if (toe_seq_lt(tp->snd_nxt, ack))
      tp->snd_nxt = ack;
    tp->rto_backoff = 0;
    toe_tcp_set_state(st, tp, TOE_TCP_ESTABLISHED);
    toe_tcp_rearm_rto(st, tp); /* nothing outstanding: stops the SYN-ACK timer */
    tp->snd_wnd = (uint32_t)th->window << tp->snd_wscale;
    if (tp->snd_wnd > tp->max_sndwnd)
      tp->max_sndwnd = tp->snd_wnd;
    tp->snd_wl1 = th->seq;
    tp->snd_wl2 = ack;
    handshake_cc_init(st, tp);
    cx.ev |= TOE_EV_WRITABLE;
  } else {
    /* RFC 5961 5.2: acceptable if SND.UNA - MAX.SND.WND <= SEG.ACK <= SND.NXT. */
    if (toe_seq_gt(ack, tp->snd_max) || toe_seq_lt(ack, tp->snd_una - tp->max_sndwnd)) {
      c->rx_drop_bad_ack++;
      toe_pbuf_free(st, pb);
      challenge_ack(st, tp);
      return;
    }
    ts_update(st, tp, th->seq, opts);
    ack_input(st, tp, th, opts, plen, fl);
  }
  tp->rcv_tstamp = toe_stack_now(st);
  tp->keep_probes = 0;
  /* ECN feedback and CE marks (tcp_ecn.c), once the ACK moved snd_una */
  if (tp->ecn_flags)
    toe_tcp_ecn_input(st, tp, th, ip->tos, plen);

  /* Our FIN acknowledged: the closing states move on (RFC 9293 3.10.7.4 fifth). */
  if (our_fin_acked(tp)) {
    switch (tp->state) {
    case TOE_TCP_FIN_WAIT_1:
      /* (an orphan's FINWAIT2 timer is armed by output, which runs at the end) */
      toe_tcp_set_state(st, tp, TOE_TCP_FIN_WAIT_2);
      break;
    case TOE_TCP_CLOSING:
      toe_pbuf_free(st, pb);
      toe_tcp_notify(st, tp, cx.ev | TOE_EV_HUP);
      toe_tcp_enter_timewait(st, tp);
      return;
    case TOE_TCP_LAST_ACK:
      toe_pbuf_free(st, pb);
      toe_tcp_close_final(st, tp);
      return;
    default:
      break;
    }
  }

  /* sixth: URG. RFC 6093: urgent data is delivered in band; the pointer is ignored. */

  /* seventh and eighth: text and FIN */
  cx.plen = plen;
  text_input(st, tp, pb, seq, (fl & TOE_TCP_FIN) != 0, &cx);
  finish(st, tp, &cx);
}
