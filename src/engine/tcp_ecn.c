/*
 * Explicit Congestion Notification for TCP: RFC 3168 and Accurate ECN (RFC 9768).
 *
 * RFC 3168 in short: the SYN asks with ECE|CWR, the SYN-ACK agrees with ECE alone (6.1.1); new
 * data then carries ECT(0) in the IP header, never pure ACKs, retransmissions or window probes
 * (6.1.4-6.1.6); a receiver that gets a CE-marked segment sets ECE on its ACKs until a segment
 * with CWR arrives (6.1.3); the sender halves its window on ECE at most once per window of data,
 * as for a loss, and sets CWR on its next new data (6.1.2).
 *
 * Accurate ECN (RFC 9768) replaces the one-bit echo with a counter: the SYN asks with AE|CWR|ECE
 * (3.1.1); the SYN-ACK's AE/CWR/ECE say what IP ECN field the SYN arrived with (table 2) and the
 * client's first ACK says the same of the SYN-ACK (table 3); from then on every segment's ACE
 * field (AE, CWR, ECE read as a 3-bit number) is the count of CE-marked segments received, modulo
 * 8, starting from 5 (3.2.2). The sender's reaction to an increase is the same one reduction per
 * window as RFC 3168 (the congestion control modules here are classic ones). The optional AccECN
 * TCP option (3.2.3) is neither sent nor read.
 *
 * The mode is cfg.tcp_ecn (include/toe/engine.h), as Linux's net.ipv4.tcp_ecn.
 */
#include "engine/tcp_ecn.h"

#include "engine/stack.h"
#include "engine/tcp.h"

/* RFC 9768 3.2.1: both counters start at 5, so a zeroed ACE field is not a plausible value. */
#define ACE_INIT 5u

/* RFC 9768 tables 2 and 3: the handshake feedback of an IP ECN field as an ACE value
 * (AE, CWR, ECE): Not-ECT 0b010, ECT(1) 0b011, ECT(0) 0b100, CE 0b110. */
static const uint8_t hs_ace[4] = {2u, 3u, 4u, 6u};

static uint16_t ace_bits(uint32_t ace)
{
  uint16_t f = 0;
  if (ace & 4u)
    f |= TOE_TCP_AE;
  if (ace & 2u)
    f |= TOE_TCP_CWR;
  if (ace & 1u)
    f |= TOE_TCP_ECE;
  return f;
}

uint8_t toe_tcp_ecn_ace(const struct toe_tcp_view *th)
{
  uint8_t ace = (uint8_t)((th->hdr[12] & 1u) << 2);
  if (th->flags & TOE_TCP_CWR)
    ace |= 2u;
  if (th->flags & TOE_TCP_ECE)
    ace |= 1u;
  return ace;
}

/* ------------------------------------------------------------------------------------------ */
/* Sending */

void toe_tcp_ecn_tx(struct toe_stack *st, struct toe_tcb *tp, uint8_t flags, bool data,
                    struct toe_tcp_ecn_tx *out)
{
  out->flags = 0;
  out->tos = TOE_ECN_NOT_ECT;
  if (flags & TOE_TCP_SYN) {
    if ((flags & TOE_TCP_ACK) || tp->state != TOE_TCP_SYN_SENT) {
      /* A SYN-ACK from a tcb is a simultaneous open: no ECN on it (syn_sent_input cleared the
       * offer). Passive opens answer from the SYN cache. */
      return;
    }
    tp->ecn_flags &= (uint16_t) ~(TOE_ECNF_OFFERED | TOE_ECNF_ACC_OFFER);
    /* RFC 3168 6.1.1.1: a retransmitted SYN goes without the request, in case a middlebox
     * drops ECN-setup SYNs (Linux does the same). The SYN itself is never ECT (6.1.1). */
    if (tp->syn_retries > 0)
      return;
    if (st->cfg.tcp_ecn == TOE_TCP_ECN_ON) {
      tp->ecn_flags |= TOE_ECNF_OFFERED;
      out->flags = TOE_TCP_ECE | TOE_TCP_CWR;
    } else if (st->cfg.tcp_ecn == TOE_TCP_ECN_ACCECN) {
      tp->ecn_flags |= TOE_ECNF_OFFERED | TOE_ECNF_ACC_OFFER;
      out->flags = TOE_TCP_AE | TOE_TCP_ECE | TOE_TCP_CWR; /* RFC 9768 3.1.1 */
    }
    return;
  }
  uint16_t ef = tp->ecn_flags;
  if (!(ef & (TOE_ECNF_OK | TOE_ECNF_ACC)))
    return;
  /* ECT(0) on new data only: not on pure ACKs (RFC 3168 6.1.4), retransmissions (6.1.5) or
   * window probes (6.1.6); RFC 9768 keeps those rules for AccECN. */
  bool ect = data && !(ef & TOE_ECNF_NOECT) && !(flags & TOE_TCP_RST);
  if (ect) {
    out->tos = TOE_ECN_ECT0;
    st->ctr.tcp.ecn_ect_sent++;
  }
  if (ef & TOE_ECNF_ACC) {
    /* RFC 9768 3.2.2: ACE on every segment after the handshake; the client's first ACK feeds
     * back the SYN-ACK's IP ECN field instead (table 3). */
    if (ef & TOE_ECNF_HS_ACE) {
      if (flags & TOE_TCP_ACK) {
        out->flags = ace_bits(hs_ace[tp->ecn_hs_ipecn & 3u]);
        tp->ecn_flags &= (uint16_t)~TOE_ECNF_HS_ACE;
      }
      return;
    }
    out->flags = ace_bits(tp->ecn_r_cep);
    return;
  }
  /* RFC 3168 6.1.3: ECE on every ACK until the peer's CWR. */
  if ((ef & TOE_ECNF_ECE) && (flags & TOE_TCP_ACK))
    out->flags |= TOE_TCP_ECE;
  /* 6.1.2: CWR on the first new data segment after the reduction. */
  if ((ef & TOE_ECNF_CWR) && ect) {
    out->flags |= TOE_TCP_CWR;
    tp->ecn_flags &= (uint16_t)~TOE_ECNF_CWR;
    st->ctr.tcp.ecn_cwr_sent++;
  }
}

/* ------------------------------------------------------------------------------------------ */
/* The handshake */

static void agreed(struct toe_stack *st, struct toe_tcb *tp, uint8_t mode)
{
  tp->ecn_flags &= (uint16_t) ~(TOE_ECNF_OK | TOE_ECNF_ACC);
  if (mode == TOE_ECNF_ACC) {
    tp->ecn_flags |= TOE_ECNF_ACC;
    tp->ecn_r_cep = ACE_INIT;
    tp->ecn_s_cep = ACE_INIT;
    st->ctr.tcp.ecn_accecn_negotiated++;
  } else if (mode == TOE_ECNF_OK) {
    tp->ecn_flags |= TOE_ECNF_OK;
    st->ctr.tcp.ecn_negotiated++;
  }
}

void toe_tcp_ecn_synack_input(struct toe_stack *st, struct toe_tcb *tp,
                              const struct toe_tcp_view *th, uint8_t ipecn)
{
  uint16_t ef = tp->ecn_flags;
  tp->ecn_flags &= (uint16_t) ~(TOE_ECNF_OFFERED | TOE_ECNF_ACC_OFFER);
  if (!(ef & TOE_ECNF_OFFERED) || !(th->flags & TOE_TCP_ACK))
    return; /* not asked, or a simultaneous open (a bare SYN): no ECN */
  uint8_t ace = toe_tcp_ecn_ace(th);
  if (ef & TOE_ECNF_ACC_OFFER) {
    /* RFC 9768 3.1.2 table 2: 0b000 no ECN, 0b001 RFC 3168 ECN, 0b111 not a valid answer (a
     * reflector of our SYN's flags: no ECN); everything else is AccECN, the reserved 0b101
     * included (3.1.3: forward compatibility). */
    if (ace == 1u) {
      agreed(st, tp, TOE_ECNF_OK);
    } else if (ace != 0u && ace != 7u) {
      agreed(st, tp, TOE_ECNF_ACC);
      tp->ecn_hs_ipecn = (uint8_t)(ipecn & 3u);
      tp->ecn_flags |= TOE_ECNF_HS_ACE;
    }
    return;
  }
  /* RFC 3168 6.1.1: ECE set and CWR clear agrees. */
  if ((th->flags & (TOE_TCP_ECE | TOE_TCP_CWR)) == TOE_TCP_ECE)
    agreed(st, tp, TOE_ECNF_OK);
}

uint8_t toe_tcp_ecn_syn_mode(const struct toe_stack *st, const struct toe_tcp_view *th)
{
  uint8_t mode = st->cfg.tcp_ecn;
  if (mode != TOE_TCP_ECN_ON && mode != TOE_TCP_ECN_PASSIVE && mode != TOE_TCP_ECN_ACCECN)
    return 0;
  if ((th->flags & (TOE_TCP_ECE | TOE_TCP_CWR)) != (TOE_TCP_ECE | TOE_TCP_CWR))
    return 0;
  /* RFC 9768 3.1.1: AE|CWR|ECE asks for AccECN; a server that does not do AccECN answers it as
   * an RFC 3168 request (3.1.2). */
  if ((th->hdr[12] & 1u) && mode == TOE_TCP_ECN_ACCECN)
    return TOE_ECNF_ACC;
  return TOE_ECNF_OK;
}

uint16_t toe_tcp_ecn_synack_bits(uint8_t mode, uint8_t syn_ipecn)
{
  if (mode == TOE_ECNF_ACC)
    return ace_bits(hs_ace[syn_ipecn & 3u]); /* RFC 9768 table 2: the SYN's IP ECN field */
  if (mode == TOE_ECNF_OK)
    return TOE_TCP_ECE; /* RFC 3168 6.1.1 */
  return 0;
}

void toe_tcp_ecn_passive_init(struct toe_stack *st, struct toe_tcb *tp, uint8_t mode,
                              const struct toe_tcp_view *th)
{
  if (mode == TOE_ECNF_ACC && toe_tcp_ecn_ace(th) == 0) {
    /* RFC 9768 3.2.2.3: a zero ACE on the handshake's ACK means the field was cleared on the
     * path, so feedback cannot be trusted: no ECN on this connection. */
    st->ctr.tcp.ecn_fallback++;
    return;
  }
  agreed(st, tp, mode);
  if (mode == TOE_ECNF_ACC)
    tp->ecn_flags |= TOE_ECNF_HS_SKIP; /* the same ACK reaches toe_tcp_ecn_input next */
}

/* ------------------------------------------------------------------------------------------ */
/* Receiving */

/*
 * The sender's response to congestion feedback (RFC 3168 6.1.2): the same reduction as for a
 * loss, through the congestion control module, at most once per window of data: not while loss
 * recovery already reduced the window, and not again until data sent after this reduction is
 * acknowledged. (cwnd drops at once: there is no proportional rate reduction for ECN here.)
 */
static void reduce(struct toe_stack *st, struct toe_tcb *tp)
{
  if (tp->rec_state != TOE_REC_OPEN || tp->cc == NULL)
    return;
  if (tp->ecn_cwr_end != 0 && !toe_seq_gt(tp->snd_una, tp->ecn_cwr_end))
    return;
  tp->cc->on_loss(st, tp);
  tp->ecn_cwr_end = tp->snd_max;
  if (tp->ecn_cwr_end == 0)
    tp->ecn_cwr_end = 1; /* 0 means "no reduction yet" */
  st->ctr.tcp.ecn_cwnd_reduced++;
  if (tp->ecn_flags & TOE_ECNF_OK)
    tp->ecn_flags |= TOE_ECNF_CWR;
}

void toe_tcp_ecn_input(struct toe_stack *st, struct toe_tcb *tp, const struct toe_tcp_view *th,
                       uint8_t ipecn, uint32_t plen)
{
  uint16_t ef = tp->ecn_flags;
  if (!(ef & (TOE_ECNF_OK | TOE_ECNF_ACC)))
    return;
  struct toe_counters_tcp *c = &st->ctr.tcp;
  bool ce = (ipecn & 3u) == TOE_ECN_CE;
  if (ce)
    c->ecn_ce_rcvd++;

  if (ef & TOE_ECNF_ACC) {
    if (ce) {
      tp->ecn_r_cep++;
      /* RFC 9768 3.2.2.5.1: a CE-marked data segment is acknowledged at once, so the ACE field
       * (3 bits) cannot wrap unseen between ACKs. */
      if (plen > 0)
        tp->flags |= TOE_TF_ACK_NOW;
    }
    /* The ACE counter of an ACK that is not older than what we know (a reordered old ACK would
     * read as a wrap of the counter). */
    if (ef & TOE_ECNF_HS_SKIP) {
      tp->ecn_flags &= (uint16_t)~TOE_ECNF_HS_SKIP; /* table 3 feedback, read at the handshake */
      return;
    }
    if ((th->flags & TOE_TCP_ACK) && th->ack == tp->snd_una) {
      uint32_t delta = (toe_tcp_ecn_ace(th) - tp->ecn_s_cep) & 7u;
      if (delta) {
        tp->ecn_s_cep += delta;
        c->ecn_ece_rcvd += delta;
        reduce(st, tp);
      }
    }
    return;
  }

  /* RFC 3168 6.1.3: CWR first (it ends the echo of earlier marks), then this segment's CE. */
  if ((th->flags & TOE_TCP_CWR) && (ef & TOE_ECNF_ECE)) {
    tp->ecn_flags &= (uint16_t)~TOE_ECNF_ECE;
    c->ecn_cwr_rcvd++;
  }
  if (ce && !(tp->ecn_flags & TOE_ECNF_ECE)) {
    tp->ecn_flags |= TOE_ECNF_ECE;
    tp->flags |= TOE_TF_ACK_NOW; /* the sender learns of it without the delayed-ACK wait */
  }
  if ((th->flags & (TOE_TCP_ECE | TOE_TCP_ACK)) == (TOE_TCP_ECE | TOE_TCP_ACK)) {
    c->ecn_ece_rcvd++;
    reduce(st, tp);
  }
}
