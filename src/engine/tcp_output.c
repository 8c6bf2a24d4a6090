/*
 * Segment output: building segments (header and options in the headroom of a fresh buffer,
 * payload copied from the send queue), and the rules that decide what goes out when:
 *   - the peer's window and the congestion window (RFC 5681, pipe of RFC 6675 from tcp-rec);
 *   - sender silly-window avoidance (RFC 9293 3.8.6.2.1) and Nagle (RFC 9293 3.7.4, RFC 896);
 *   - receiver silly-window avoidance and window updates (RFC 9293 3.8.6.2.2, RFC 1122 4.2.3.3),
 *     never shrinking the right edge we advertised (RFC 9293 3.8.6, RFC 7323 2.4);
 *   - delayed ACKs (RFC 1122 4.2.3.2, RFC 5681 4.2), with quick ACKs at the start;
 *   - zero-window probes (RFC 9293 3.8.6.1, RFC 1122 4.2.2.17), keepalives (RFC 1122 4.2.3.6);
 *   - RSTs for segments that belong to no connection (RFC 9293 3.10.7.1).
 */
#include "engine/stack.h"
#include "engine/tcp.h"
#include "engine/tcp_ecn.h"
#include "wire/checksum.h"

#include <string.h>

#define TS_OPT_LEN 12u    /* NOP NOP TS: what the timestamp option costs every segment */
#define DEFAULT_MSS 536u  /* RFC 9293 3.7.1 / RFC 1122 4.2.2.6 when the peer sent none */
#define QUICKACK_SEGS 16u /* segments acknowledged one by one at the start (Linux's quickack) */

/* ------------------------------------------------------------------------------------------ */
/* Small helpers */

static uint32_t min_u32(uint32_t a, uint32_t b)
{
  return a < b ? a : b;
}
static uint32_t max_u32(uint32_t a, uint32_t b)
{
  return a > b ? a : b;
}

/* The local address segments carry: 0 for an IPv6 connection (tcp.h: its raddr is a key). */
static uint32_t laddr_of(const struct toe_stack *st, const struct toe_tcb *tp)
{
  if (tp->sk.laddr)
    return tp->sk.laddr;
  return (tp->sk.v6flags & TOE_SOCK6_CONN6) ? 0 : st->cfg.addr;
}

uint32_t toe_tcp_ts_now(const struct toe_stack *st, const struct toe_tcb *tp)
{
  /* RFC 7323 5.4: a millisecond clock (within 1 ms..1 s per tick), offset per connection */
  return toe_tcp_now_ms(st) + tp->ts_offset;
}

uint8_t toe_tcp_wscale_offer(const struct toe_config *cfg)
{
  if (!cfg->tcp_wscale)
    return 0;
  uint32_t max = max_u32(cfg->tcp_rcvbuf_max, cfg->tcp_rcvbuf);
  if (max == 0)
    max = 4u * 1024 * 1024;
  /* RFC 7323 2.3: the shift that lets the 16-bit field express the largest window we may offer;
   * at most 14 (2.3: a larger shift is treated as 14) */
  uint8_t s = 0;
  while (s < 14 && (max >> s) > 65535u)
    s++;
  return s;
}

uint16_t toe_tcp_mss_offer(const struct toe_stack *st, const struct toe_tcb *tp)
{
  /* RFC 9293 3.7.1: the largest segment we can receive: MTU less fixed IP and TCP headers; the
   * link's MTU, not the path's (RFC 1191 3.1: lowering the option would defeat PMTU discovery) */
  uint32_t mtu = st->cfg.mtu ? st->cfg.mtu : 1500u;
  /* IPv6: MTU - 60 (RFC 8200 8.3, RFC 6691) */
  uint32_t hdrs = (tp->sk.v6flags & TOE_SOCK6_CONN6) ? 60u : 40u;
  uint32_t mss = mtu > hdrs ? mtu - hdrs : DEFAULT_MSS;
  if (tp->user_mss && tp->user_mss < mss)
    mss = tp->user_mss;
  return (uint16_t)min_u32(mss, 65535u);
}

uint32_t toe_tcp_eff_mss(const struct toe_tcb *tp)
{
  /* RFC 9293 3.7.1: Eff.snd.MSS = min(SendMSS + 20, MMS_S) - TCPhdrsize - IPoptionsize, where
   * TCPhdrsize counts the options every segment carries (the timestamp option) */
  uint32_t mss = tp->snd_mss ? tp->snd_mss : DEFAULT_MSS;
  if (tp->flags & TOE_TF_TS_OK)
    mss = mss > TS_OPT_LEN + 8u ? mss - TS_OPT_LEN : 8u;
  return mss;
}

/* RFC 6928: the initial window, used if congestion control has not set one. */
static uint32_t initial_cwnd(const struct toe_tcb *tp)
{
  uint32_t mss = toe_tcp_eff_mss(tp);
  return min_u32(10u * mss, max_u32(2u * mss, 14600u));
}

/* Receive states: we still expect data (the peer has not sent its FIN). */
static bool may_receive(const struct toe_tcb *tp)
{
  if (tp->flags & TOE_TF_RCVD_FIN)
    return false;
  return tp->state == TOE_TCP_ESTABLISHED || tp->state == TOE_TCP_FIN_WAIT_1 ||
         tp->state == TOE_TCP_FIN_WAIT_2;
}

/* States in which data and the FIN may be sent. */
static bool may_send(const struct toe_tcb *tp)
{
  switch (tp->state) {
  case TOE_TCP_ESTABLISHED:
  case TOE_TCP_CLOSE_WAIT:
  case TOE_TCP_FIN_WAIT_1:
  case TOE_TCP_CLOSING:
  case TOE_TCP_LAST_ACK:
    return true;
  default:
    return false;
  }
}

/* ------------------------------------------------------------------------------------------ */
/* The receive window */

uint32_t toe_tcp_rcv_window(const struct toe_stack *st, const struct toe_tcb *tp)
{
  uint8_t ws = (tp->flags & TOE_TF_WS_OK) ? tp->rcv_wscale : 0;
  uint32_t max_wnd = 65535u << ws;
  uint32_t buf = tp->rcvbuf;
  uint32_t used = tp->rcvq_bytes + tp->ooo_bytes;
  bool shut_rd = (tp->flags & TOE_TF_SHUT_RD) != 0;
  uint32_t space = buf > used ? buf - used : 0;
  if (shut_rd)
    space = buf; /* data after SHUT_RD is dropped on arrival: never close the window on it */
  space = min_u32(space, max_wnd);

  /* what is left of the window we advertised last; the right edge never moves left (RFC 9293
   * 3.8.6: "the window SHOULD NOT be shrunk") */
  int32_t cur_s = (int32_t)(tp->rcv_adv - tp->rcv_nxt);
  uint32_t cur = cur_s > 0 ? (uint32_t)cur_s : 0;
  if (cur > max_wnd)
    cur = 0; /* rcv_adv never set yet */

  /* Receiver SWS avoidance (RFC 9293 3.8.6.2.2, RFC 1122 4.2.3.3): move the right edge only by
   * at least min(RCV.BUFF / 2, Eff.snd.MSS) */
  uint32_t mss = tp->rcv_mss ? tp->rcv_mss : DEFAULT_MSS;
  uint32_t thresh = min_u32(buf / 2u, mss);
  /* no more than the pool lets this connection hold now (pbuf_charge.c): a window its buffers
   * could not take would only be dropped on arrival. The clamp only ever lowers `space`, so it
   * is computed only when `space` would move the edge (most segments sent or received leave the
   * edge where it is, and skip the pool arithmetic). */
  if (!shut_rd && space > cur && space - cur >= thresh)
    space = min_u32(space, toe_tcp_rx_room_bytes(st, tp));
  uint32_t wnd;
  if (space <= cur || space - cur < thresh)
    wnd = cur;
  else
    wnd = space;

  if (ws) {
    /* the field carries wnd >> ws: round down to what it can say, but never below the edge
     * already advertised (rounding up by less than one unit is allowed by RFC 7323 2.4) */
    uint32_t unit = 1u << ws;
    uint32_t down = wnd & ~(unit - 1u);
    if (down < cur)
      down = (cur + unit - 1u) & ~(unit - 1u);
    wnd = min_u32(down, max_wnd & ~(unit - 1u));
  }
  return wnd;
}

/* A window update is worth a pure ACK: the application's reads opened the window by at least the
 * SWS threshold, and the peer may be short of window (what it has is less than half the new). */
static bool window_update_due(const struct toe_stack *st, const struct toe_tcb *tp)
{
  if (!may_receive(tp))
    return false;
  /* Nothing received since the handshake: nothing was read, so no read opened the window. The
   * peer knows the window of our SYN or SYN-ACK (an unscaled field, at most 65535 bytes, RFC 7323
   * 2.2; or already the full window, if we sent anything since) and has used none of it: it is
   * not short of window. The scaled window goes with the next segment we send anyway, at the
   * latest the ACK of the peer's first data; an ACK just for it would add a segment to every
   * passive open (Linux and BSD send none either). */
  if (tp->rcv_nxt == tp->irs + 1u && tp->bytes_received == 0)
    return false;
  int32_t cur_s = (int32_t)(tp->rcv_adv - tp->rcv_nxt);
  uint32_t cur = cur_s > 0 ? (uint32_t)cur_s : 0;
  uint32_t wnd = toe_tcp_rcv_window(st, tp);
  if (wnd <= cur)
    return false;
  uint32_t mss = tp->rcv_mss ? tp->rcv_mss : DEFAULT_MSS;
  uint32_t thresh = min_u32(tp->rcvbuf / 2u, mss);
  return wnd - cur >= thresh && (cur == 0 || wnd / 2u >= cur);
}

/* ------------------------------------------------------------------------------------------ */
/* Building and sending one segment */

struct xmit {
  uint32_t laddr, raddr;
  uint16_t lport, rport;
  uint32_t seq, ack;
  uint8_t flags;
  uint16_t window;
  const struct toe_tcp_opts *opts;
  size_t opt_cap;        /* option bytes allowed (MTU) */
  struct toe_pbuf *data; /* payload: a whole send-queue segment (borrowed), NULL for none */
  uint32_t len;          /* payload bytes from data */
  struct toe_pbuf *gso;  /* or a TSO super-segment's payload: views of several segments
                            (consumed), cut by the link at gso_size bytes */
  uint16_t gso_size;
  uint8_t tos; /* the IP header's ECN field (tcp_ecn.c) */
  bool ae;     /* the AE flag (RFC 9768), header byte 12 bit 0 */
};

/* The sum of segment header `h` (hlen bytes) and its payload, without the pseudo-header. */
static inline uint32_t seg_sum(const struct xmit *x, const struct toe_pbuf *frame, const uint8_t *h,
                               uint32_t hlen)
{
  uint32_t sum = toe_csum_partial(h, hlen, 0);
  if (x->len) {
    /* the payload's sum kept since the copy-in, else computed now */
    const struct toe_tcp_seg *m = toe_tcp_seg(x->data);
    uint32_t psum = (x->data->tot_len == x->len && (m->flags & TOE_SEG_CSUM))
                        ? m->csum
                        : toe_pbuf_csum(frame->next, 0, x->len);
    sum = toe_csum_add32(sum, psum);
  }
  return sum;
}

/*
 * The IPv6 end of xmit_raw: the RFC 8200 8.1 checksum in software (ipv6_output does not pass a
 * partial-checksum request on, and the link segments no IPv6 super-frames, so an IPv6
 * connection never batches), then IPv6 output with the connection's flow label.
 */
__attribute__((noinline)) static int xmit6_finish(struct toe_stack *st, const struct xmit *x,
                                                  struct toe_pbuf *frame, uint8_t *h, uint32_t hlen)
{
  uint16_t csum = toe_tcp6_csum_finish(st, x->raddr, seg_sum(x, frame, h, hlen), frame->tot_len);
  memcpy(h + 16, &csum, 2);
  if (x->flags & TOE_TCP_RST)
    st->ctr.tcp.out_rsts++;
  int rc = toe_tcp6_ip_output(st, x->raddr, x->lport, x->rport, x->tos, frame);
  if (rc < 0)
    st->ctr.tcp.out_errors++;
  return rc;
}

/* Builds and sends the segment. Returns -TOE_ENOBUFS if no frame could be built (nothing left),
 * else 0 or IPv4's error for a frame that was handed over (and dropped there). */
static int xmit_raw(struct toe_stack *st, const struct xmit *x)
{
  struct toe_counters_tcp *c = &st->ctr.tcp;
  /*
   * No payload copy (as lwIP does): the frame is a fresh header buffer chained to the segment's
   * own send-queue buffers, each holding one more reference while the frame is in flight. The
   * send queue keeps every segment at most one MSS and cut at segment boundaries when data is
   * queued (tcp_sock.c sndq_append), so a (re)transmission always sends whole segments and never
   * needs a view into the middle of a buffer. A shared buffer's descriptor is the frame's too, so
   * the queue never changes a buffer in place while toe_pbuf_shared() says a frame holds it
   * (tcp_sack.c copies the rest of a partly acknowledged busy segment; seg_split() waits).
   */
  struct toe_pbuf *frame = toe_pbuf_alloc(st, TOE_PBUF_HEADROOM);
  if (frame == NULL) {
    toe_pbuf_free(st, x->gso);
    c->out_drop_nobuf++;
    return -TOE_ENOBUFS;
  }
  if (x->gso) {
    toe_pbuf_cat(frame, x->gso);
    frame->flags |= TOE_PBUF_F_GSO_TCPV4;
    frame->gso_size = x->gso_size;
  } else if (x->len) {
    if (x->data->tot_len == x->len) {
      toe_pbuf_ref(x->data);
      toe_pbuf_cat(frame, x->data);
    } else {
      /* not a whole segment (no caller does this today): copy the range */
      struct toe_pbuf *cp = toe_pbuf_copy_range(st, x->data, 0, x->len, 0);
      if (cp == NULL) {
        toe_pbuf_free(st, frame);
        c->out_drop_nobuf++;
        return -TOE_ENOBUFS;
      }
      toe_pbuf_cat(frame, cp);
    }
  }
  uint8_t optbuf[40];
  size_t olen =
      x->opts ? toe_tcp_write_opts(optbuf, min_u32((uint32_t)x->opt_cap, 40u), x->opts) : 0;
  uint8_t *h = toe_pbuf_push(frame, (uint16_t)(TOE_TCP_HLEN + olen));
  if (h == NULL) { /* cannot happen with TOE_PBUF_HEADROOM; keep it a counted drop */
    toe_pbuf_free(st, frame);
    c->out_drop_nobuf++;
    return -TOE_ENOBUFS;
  }
  struct toe_tcp_fields f = {
      .src_port = x->lport,
      .dst_port = x->rport,
      .seq = x->seq,
      .ack = (x->flags & TOE_TCP_ACK) ? x->ack : 0,
      .flags = x->flags,
      .window = x->window,
      .urg_ptr = 0,
  };
  toe_tcp_write(h, &f, olen);
  if (x->ae)
    h[12] |= 1u; /* AccECN's AE flag (tcp_ecn.c) */
  if (olen)
    memcpy(h + TOE_TCP_HLEN, optbuf, olen);
  uint32_t tot = frame->tot_len;
  uint32_t hlen = TOE_TCP_HLEN + (uint32_t)olen; /* even: options come in 4-byte words */
  if (x->laddr == 0)
    return xmit6_finish(st, x, frame, h, hlen); /* IPv6 (tcp.h): raddr is the pair's key */
  if ((st->cfg.link_caps & TOE_LINK_CAP_TX_CSUM) || x->gso) {
    /* The link sums the segment (checksum offload): leave the pseudo-header's folded sum in the
     * field, which its sum then includes (RFC 9293 3.1's checksum over pseudo-header and segment
     * all the same). IPv4 and the link add their header lengths to csum_start. */
    uint16_t ps = (uint16_t)~toe_csum_fold(
        toe_csum_pseudo_v4(x->laddr, x->raddr, TOE_IPPROTO_TCP, (uint16_t)tot));
    memcpy(h + 16, &ps, 2);
    frame->flags |= TOE_PBUF_F_CSUM_PARTIAL;
    frame->csum_start = 0;
    frame->csum_offset = 16;
    goto out;
  }
  uint16_t csum =
      toe_tcp_csum_finish(seg_sum(x, frame, h, hlen), x->laddr, x->raddr, (uint16_t)tot);
  memcpy(h + 16, &csum, 2);

out:;
  struct toe_ip_tx tx = {
      .src = x->laddr,
      .dst = x->raddr,
      .proto = TOE_IPPROTO_TCP,
      .ttl = 0,
      .tos = x->tos,
      .df = true, /* RFC 1191 path MTU discovery; segments are sized to the path MTU */
  };
  if (x->flags & TOE_TCP_RST)
    c->out_rsts++;
  int rc = toe_ipv4_output(st, frame, &tx);
  if (rc < 0)
    c->out_errors++;
  return rc;
}

/* A segment without a connection (RSTs for segments to no socket). */
struct tcp_ctl {
  uint32_t laddr, raddr;
  uint16_t lport, rport;
  uint32_t seq, ack;
  uint8_t flags;
  uint16_t window;
};

static int xmit_ctl(struct toe_stack *st, const struct tcp_ctl *ctl)
{
  struct xmit x = {
      .laddr = ctl->laddr, /* 0: IPv6 (raddr is the pair's key) */
      .raddr = ctl->raddr,
      .lport = ctl->lport,
      .rport = ctl->rport,
      .seq = ctl->seq,
      .ack = ctl->ack,
      .flags = ctl->flags,
      .window = ctl->window,
      .opts = NULL,
      .opt_cap = 0,
      .data = NULL,
      .len = 0,
  };
  st->ctr.tcp.out_segs++;
  return xmit_raw(st, &x);
}

/*
 * Sends one segment of connection `tp`: `len` payload bytes from `data` at `seq`, with `flags`.
 * Adds the options the connection uses and the current window, and records what the ACK field
 * and window told the peer. Returns as xmit_raw().
 */
static int tcp_xmit_ex(struct toe_stack *st, struct toe_tcb *tp, uint32_t seq, uint8_t flags,
                       struct toe_pbuf *data, uint32_t len, struct toe_pbuf *gso, uint16_t gso_size)
{
  bool syn = (flags & TOE_TCP_SYN) != 0;
  struct toe_tcp_opts o;
  memset(&o, 0, sizeof(o));
  if (tp->flags & TOE_TF_TS_OK) {
    /* RFC 7323 3.2: TSopt in every segment once negotiated (and offered in our SYN); TSecr is
     * TS.Recent when the ACK bit is on, else zero */
    o.has |= TOE_TCPOPT_HAS_TS;
    o.ts_val = toe_tcp_ts_now(st, tp);
    o.ts_ecr = (flags & TOE_TCP_ACK) ? tp->ts_recent : 0;
  }
  bool dsack_sent = false;
  if (syn) {
    o.has |= TOE_TCPOPT_HAS_MSS;
    o.mss = toe_tcp_mss_offer(st, tp);
    tp->rcv_mss = o.mss;
    if (tp->flags & TOE_TF_WS_OK) {
      o.has |= TOE_TCPOPT_HAS_WSCALE;
      o.wscale = tp->rcv_wscale;
    }
    if (tp->flags & TOE_TF_SACK_OK)
      o.has |= TOE_TCPOPT_HAS_SACK_PERM;
  } else if ((tp->flags & TOE_TF_SACK_OK) && (flags & TOE_TCP_ACK)) {
    /* RFC 2883: a D-SACK block goes first; then RFC 2018 4: the most recent block first, then
     * the others most recent first, as many as fit (write_opts cuts to the space) */
    unsigned n = 0;
    if ((tp->flags & TOE_TF_NEED_DSACK) && toe_seq_lt(tp->dsack.start, tp->dsack.end)) {
      o.sack[n++] = tp->dsack;
      dsack_sent = true;
    }
    for (unsigned i = 0;
         i < tp->sack_gen_count && i < TOE_TCP_MAX_SACK_GEN && n < TOE_TCP_MAX_SACK_BLOCKS; i++)
      o.sack[n++] = tp->sack_gen[i];
    if (n) {
      o.has |= TOE_TCPOPT_HAS_SACK;
      o.sack_count = (uint8_t)n;
    }
  }

  /* The window: unscaled in SYNs (RFC 7323 2.2), else scaled by our shift when negotiated. */
  uint32_t wnd;
  uint16_t field;
  if (syn) {
    wnd = min_u32(tp->rcvbuf, 65535u);
    field = (uint16_t)wnd;
  } else {
    wnd = toe_tcp_rcv_window(st, tp);
    uint8_t ws = (tp->flags & TOE_TF_WS_OK) ? tp->rcv_wscale : 0;
    field = (uint16_t)min_u32(wnd >> ws, 65535u);
  }

  /* ECN (tcp_ecn.c): the SYN's request, ECE/CWR or AccECN's ACE, ECT on new data */
  struct toe_tcp_ecn_tx ecn = {.flags = 0, .tos = 0};
  if (tp->ecn_flags || (flags & TOE_TCP_SYN)) /* nothing to do for a connection without ECN */
    toe_tcp_ecn_tx(st, tp, flags, len > 0 || gso != NULL, &ecn);
  flags |= (uint8_t)ecn.flags;

  uint32_t mtu = tp->pmtu ? tp->pmtu : st->cfg.mtu;
  uint32_t piece = gso ? gso_size : len; /* a super-segment's options go with every piece */
  uint32_t room = mtu > 40u + piece ? mtu - 40u - piece : 0;
  struct xmit x = {
      .laddr = laddr_of(st, tp),
      .raddr = tp->sk.raddr,
      .lport = tp->sk.lport,
      .rport = tp->sk.rport,
      .seq = seq,
      .ack = tp->rcv_nxt,
      .flags = flags,
      .window = field,
      .opts = o.has ? &o : NULL,
      .opt_cap = min_u32(room, 40u),
      .data = data,
      .len = len,
      .gso = gso,
      .gso_size = gso_size,
      .tos = ecn.tos,
      .ae = (ecn.flags & TOE_TCP_AE) != 0,
  };
  int rc = xmit_raw(st, &x);
  if (rc == -TOE_ENOBUFS)
    return rc;

  if (flags & TOE_TCP_ACK) {
    /* whatever carries an ACK answers what we owed (RFC 1122 4.2.3.2 piggybacking) */
    tp->last_ack_sent = tp->rcv_nxt;
    tp->flags &= ~(TOE_TF_ACK_NOW | TOE_TF_DELACK);
    if (dsack_sent)
      tp->flags &= ~TOE_TF_NEED_DSACK;
    if (tp->deadline[TOE_TT_DELACK])
      toe_tcp_timer_clear(st, tp, TOE_TT_DELACK);
    /* toe_tcp_rcv_window() never moves the edge left, so this never shrinks it */
    tp->rcv_wnd = wnd;
    tp->rcv_adv = tp->rcv_nxt + wnd;
  } else if (syn) {
    tp->rcv_wnd = wnd; /* the input path sets rcv_adv when it learns rcv_nxt */
  }
  if (rc == -TOE_EHOSTUNREACH || rc == -TOE_ENETUNREACH)
    tp->icmp_soft_err = (int16_t)rc; /* reported if the connection times out (RFC 1122 4.2.3.9) */
  return rc;
}

static int tcp_xmit(struct toe_stack *st, struct toe_tcb *tp, uint32_t seq, uint8_t flags,
                    struct toe_pbuf *data, uint32_t len)
{
  return tcp_xmit_ex(st, tp, seq, flags, data, len, NULL, 0);
}

/* ------------------------------------------------------------------------------------------ */
/* The send queue */

/* Splits segment `seg` after `n` bytes: the rest becomes a new segment right behind it with the
 * same history. Returns 0 or -TOE_ENOBUFS (no buffer, or a frame still in flight references the
 * segment's buffers: only a sent segment can be busy, and the caller retries at the next RTO). */
static int seg_split(struct toe_stack *st, struct toe_tcb *tp, struct toe_pbuf *seg, uint32_t n)
{
  uint32_t len = seg->tot_len;
  if (n == 0 || n >= len)
    return 0;
  if (toe_pbuf_shared(seg))
    return -TOE_ENOBUFS; /* a frame in flight still uses the buffers: try again later */
  struct toe_pbuf *rest = toe_pbuf_copy_range(st, seg, n, len - n, 0);
  if (rest == NULL)
    return -TOE_ENOBUFS;
  toe_tcp_seg(seg)->flags &= (uint8_t)~TOE_SEG_CSUM; /* the bytes of both halves change */
  memcpy(rest->meta, seg->meta, sizeof(rest->meta));
  toe_tcp_seg(rest)->seq = toe_tcp_seg(seg)->seq + n;
  rest->qnext = seg->qnext;
  seg->qnext = rest;
  if (tp->sndq_tail == seg)
    tp->sndq_tail = rest;
  toe_pbuf_trim(st, seg, n);
  return 0;
}

/* Appends `n` bytes of chain `src` (from its start) to segment `seg`; false if the pool ran out
 * (then nothing is appended). */
static bool seg_append_chain(struct toe_stack *st, struct toe_pbuf *seg, const struct toe_pbuf *src,
                             uint32_t n)
{
  struct toe_pbuf *last = seg;
  while (last->next)
    last = last->next;
  uint32_t room = toe_pbuf_tailroom(last);
  struct toe_pbuf *extra = NULL;
  if (room < n) {
    extra = toe_pbuf_copy_range(st, src, room, n - room, 0);
    if (extra == NULL)
      return false;
  }
  uint32_t k = room < n ? room : n;
  if (k) {
    uint8_t *d = toe_pbuf_put(last, (uint16_t)k);
    toe_pbuf_copy_out(src, 0, d, k);
  }
  for (struct toe_pbuf *q = seg; q != last; q = q->next)
    q->tot_len += k; /* every buffer's tot_len counts to the end of its chain */
  if (extra)
    toe_pbuf_cat(seg, extra);
  return true;
}

/*
 * Tops up the unsent segment `seg` to `mss` bytes from the unsent segments behind it. Splits for
 * a window or a path MTU leave short pieces behind; sending them as they are would be exactly
 * the small segments SWS avoidance is about, so the queue is packed again before they go.
 */
static void seg_fill(struct toe_stack *st, struct toe_tcb *tp, struct toe_pbuf *seg, uint32_t mss)
{
  while (seg->tot_len < mss && seg->qnext != NULL) {
    struct toe_pbuf *nx = seg->qnext;
    uint32_t k = mss - seg->tot_len;
    if (k > nx->tot_len)
      k = nx->tot_len;
    if (!seg_append_chain(st, seg, nx, k))
      return; /* no buffer: send it as it is */
    toe_tcp_seg(seg)->flags &= (uint8_t)~TOE_SEG_CSUM;
    toe_tcp_seg(nx)->flags &= (uint8_t)~TOE_SEG_CSUM;
    if (k == nx->tot_len) {
      seg->qnext = nx->qnext;
      if (tp->sndq_tail == nx)
        tp->sndq_tail = seg;
      nx->qnext = NULL;
      toe_pbuf_free(st, nx);
    } else {
      struct toe_pbuf *nh = toe_pbuf_drop_front(st, nx, k);
      toe_tcp_seg(nh)->seq += k;
      seg->qnext = nh;
      if (tp->sndq_tail == nx)
        tp->sndq_tail = nh;
    }
  }
}

static void arm_rto_if_idle(struct toe_stack *st, struct toe_tcb *tp)
{
  /* RFC 6298 5.1: whenever data is sent, start the timer if it is not running */
  if (tp->deadline[TOE_TT_RTO] == 0 && !toe_tcp_zero_window_wait(tp))
    toe_tcp_timer_set(st, tp, TOE_TT_RTO,
                      toe_stack_now(st) + (toe_time_t)toe_tcp_rto_us(st, tp) * 1000u);
}

/* The FIN's state change (RFC 9293 3.10.4 CLOSE: ESTABLISHED -> FIN-WAIT-1, CLOSE-WAIT ->
 * LAST-ACK) happens when it leaves, which for a close during the handshake is after it. */
static void fin_sent(struct toe_stack *st, struct toe_tcb *tp)
{
  tp->flags |= TOE_TF_FIN_SENT;
  if (tp->state == TOE_TCP_ESTABLISHED)
    toe_tcp_set_state(st, tp, TOE_TCP_FIN_WAIT_1);
  else if (tp->state == TOE_TCP_CLOSE_WAIT)
    toe_tcp_set_state(st, tp, TOE_TCP_LAST_ACK);
}

/* The flags of the never-sent segment `seg` (with the FIN if `fin`). */
static uint8_t new_seg_flags(const struct toe_pbuf *seg, bool fin)
{
  uint8_t flags = TOE_TCP_ACK;
  if (seg->qnext == NULL)
    flags |= TOE_TCP_PSH; /* the last queued data: deliver it (RFC 9293 3.9.1 PUSH) */
  if (fin)
    flags |= TOE_TCP_FIN;
  return flags;
}

/* Records that the never-sent segment at snd_next_seg left (with the FIN if `fin`). */
static inline void new_seg_sent(struct toe_stack *st, struct toe_tcb *tp, struct toe_pbuf *seg,
                                bool fin)
{
  struct toe_tcp_seg *m = toe_tcp_seg(seg);
  uint32_t len = seg->tot_len;
  st->ctr.tcp.out_segs++;
  m->xmits = 1;
  m->flags &= TOE_SEG_CSUM; /* a fresh history; the payload's sum stays valid */
  if (len < toe_tcp_eff_mss(tp)) {
    tp->sml_out = 1;
    tp->snd_sml = m->seq + len;
  }
  m->xmit_ts = toe_stack_now(st);
  m->delivered = tp->delivered;
  tp->snd_next_seg = seg->qnext;
  tp->snd_max = m->seq + len + (fin ? 1u : 0u);
  tp->snd_nxt = tp->snd_max;
  if (fin)
    fin_sent(st, tp);
  arm_rto_if_idle(st, tp);
}

/* Sends the never-sent segment at snd_next_seg (with the FIN if `fin`). */
static void send_new_seg(struct toe_stack *st, struct toe_tcb *tp, struct toe_pbuf *seg, bool fin)
{
  /* a frame that could not be built counts as lost: the RTO repairs it like any loss */
  (void)tcp_xmit(st, tp, toe_tcp_seg(seg)->seq, new_seg_flags(seg, fin), seg, seg->tot_len);
  new_seg_sent(st, tp, seg, fin);
}

/*
 * TSO (TOE_LINK_CAP_TSO): the new segments one output call lets go back to back are gathered and
 * leave as one super-segment, which the link cuts at the MSS into exactly these segments. Every
 * rule (window, congestion window, Nagle, the MSS from the path MTU) has been applied per segment
 * before a segment joins; the batch only changes how many frames carry them.
 */
struct tso_batch {
  struct toe_pbuf *first; /* first segment (the others follow it in the send queue) */
  uint32_t segs;          /* segments gathered */
  uint32_t max_segs;      /* most a super-segment may carry; < 2: no TSO */
  uint8_t flags;          /* the last segment's flags (PSH, FIN: the link keeps them last) */
};

/* Segments of `mss` bytes one super-segment may carry: tso_max less the IPv4 header and the
 * largest TCP header. */
static uint32_t tso_max_segs(const struct toe_stack *st, uint32_t mss)
{
  const uint32_t need = TOE_LINK_CAP_TSO | TOE_LINK_CAP_TX_CSUM;
  if ((st->cfg.link_caps & need) != need || mss == 0)
    return 0;
  uint32_t max = st->cfg.tso_max && st->cfg.tso_max < 65535u ? st->cfg.tso_max : 65535u;
  uint32_t hdrs = 20u + 60u;
  return max > hdrs ? (max - hdrs) / mss : 0;
}

/* Sends what the batch gathered (its segments are already accounted as sent). */
static void tso_flush(struct toe_stack *st, struct toe_tcb *tp, struct tso_batch *b, uint32_t mss)
{
  struct toe_pbuf *seg = b->first;
  uint32_t n = b->segs;
  b->first = NULL;
  b->segs = 0;
  if (n == 0)
    return;
  uint32_t seq = toe_tcp_seg(seg)->seq;
  if (n == 1) {
    (void)tcp_xmit(st, tp, seq, b->flags, seg, seg->tot_len);
    return;
  }
  /* The payload: zero-copy views of the segments (each holds a reference on the buffers it
   * views, as a single segment's frame does). */
  struct toe_pbuf *chain = NULL;
  struct toe_pbuf *s = seg;
  for (uint32_t i = 0; i < n; i++, s = s->qnext) {
    struct toe_pbuf *v = toe_pbuf_ref_range(st, s, 0, s->tot_len);
    if (v == NULL) {
      /* no buffer for the views: send the segments one by one instead (those that cannot be
       * built count as lost, as always) */
      toe_pbuf_free(st, chain);
      st->ctr.tcp.out_drop_nobuf++;
      s = seg;
      for (uint32_t k = 0; k < n; k++, s = s->qnext) {
        uint8_t fl = k + 1 == n ? b->flags : TOE_TCP_ACK;
        (void)tcp_xmit(st, tp, toe_tcp_seg(s)->seq, fl, s, s->tot_len);
      }
      return;
    }
    if (chain)
      toe_pbuf_cat(chain, v);
    else
      chain = v;
  }
  st->ctr.tcp.out_tso_frames++;
  (void)tcp_xmit_ex(st, tp, seq, b->flags, NULL, 0, chain, (uint16_t)mss);
}

/* Sends the segment `seg` now, or gathers it into the TSO batch. */
static void send_or_batch(struct toe_stack *st, struct toe_tcb *tp, struct tso_batch *b,
                          struct toe_pbuf *seg, bool fin, uint32_t mss)
{
  if (b->max_segs < 2) {
    send_new_seg(st, tp, seg, fin);
    return;
  }
  uint32_t len = seg->tot_len;
  if (b->segs == 0)
    b->first = seg;
  b->segs++;
  b->flags = new_seg_flags(seg, fin);
  new_seg_sent(st, tp, seg, fin);
  /* a short segment or the FIN ends a super-segment: only its last piece may be short */
  if (b->segs >= b->max_segs || len != mss || fin)
    tso_flush(st, tp, b, mss);
}

/* Sends a FIN without data (all data already sent), or again (retransmission). */
static void send_fin(struct toe_stack *st, struct toe_tcb *tp, bool retrans)
{
  uint32_t seq = retrans ? tp->snd_max - 1u : tp->snd_max;
  (void)tcp_xmit(st, tp, seq, TOE_TCP_FIN | TOE_TCP_ACK, NULL, 0);
  if (retrans) {
    st->ctr.tcp.retrans_segs++;
    tp->total_retrans++;
  } else {
    st->ctr.tcp.out_segs++;
    tp->snd_max = seq + 1u;
    fin_sent(st, tp);
  }
  tp->snd_nxt = tp->snd_max;
  arm_rto_if_idle(st, tp);
}

int toe_tcp_retransmit(struct toe_stack *st, struct toe_tcb *tp, struct toe_pbuf *seg)
{
  if (seg == NULL || !may_send(tp))
    return -TOE_EINVAL;
  struct toe_tcp_seg *m = toe_tcp_seg(seg);
  uint32_t mss = toe_tcp_eff_mss(tp);
  if (seg->tot_len > mss && seg_split(st, tp, seg, mss) < 0)
    return -TOE_ENOBUFS; /* the path MTU shrank (RFC 1191): resend in today's sizes */
  uint32_t len = seg->tot_len;
  uint8_t flags = TOE_TCP_ACK;
  /* the FIN rides on the last data segment if it was sent behind it */
  bool fin = (tp->flags & TOE_TF_FIN_SENT) && seg->qnext == NULL && tp->snd_next_seg == NULL &&
             m->seq + len == tp->snd_max - 1u;
  if (fin)
    flags |= TOE_TCP_FIN;
  if (seg->qnext == NULL || seg->qnext == tp->snd_next_seg)
    flags |= TOE_TCP_PSH;
  tp->ecn_flags |= TOE_ECNF_NOECT; /* RFC 3168 6.1.5: no ECT on retransmissions */
  int rc = tcp_xmit(st, tp, m->seq, flags, seg, len);
  tp->ecn_flags &= (uint16_t)~TOE_ECNF_NOECT;
  if (rc == -TOE_ENOBUFS)
    return rc;
  /* Karn (RFC 6298 3): a retransmitted segment gives no RTT sample */
  m->flags |= TOE_SEG_RETRANS;
  if (m->xmits < 255)
    m->xmits++;
  m->xmit_ts = toe_stack_now(st);
  m->delivered = tp->delivered;
  tp->total_retrans++;
  st->ctr.tcp.retrans_segs++;
  arm_rto_if_idle(st, tp);
  return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Control segments of a connection */

/*
 * The sequence number for a segment without data: SND.NXT, unless that lies past the peer's
 * window (after a zero-window probe, SND.NXT is one byte beyond a closed window). The peer would
 * then find the segment unacceptable (RFC 9293 3.10.7.4: with RCV.WND = 0 only SEG.SEQ = RCV.NXT
 * is) and drop our ACK or RST, so use the window's right edge instead, as Linux does.
 */
static uint32_t acceptable_seq(const struct toe_tcb *tp, uint32_t nxt)
{
  uint32_t wnd_end = tp->snd_una + tp->snd_wnd;
  return toe_seq_le(nxt, wnd_end) ? nxt : wnd_end;
}

void toe_tcp_send_ack(struct toe_stack *st, struct toe_tcb *tp)
{
  if (tp->state < TOE_TCP_SYN_RECEIVED)
    return; /* nothing to acknowledge yet */
  /* RFC 9293 3.10.7.4: <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK> */
  (void)tcp_xmit(st, tp, acceptable_seq(tp, tp->snd_nxt), TOE_TCP_ACK, NULL, 0);
  st->ctr.tcp.out_segs++;
}

void toe_tcp_send_rst_conn(struct toe_stack *st, struct toe_tcb *tp)
{
  /* RFC 9293 3.10.5 ABORT: <SEQ=SND.NXT><CTL=RST>; the ACK bit is added (as Linux and BSD do)
   * so that a peer checking RFC 5961 sees an acceptable segment */
  uint8_t flags = TOE_TCP_RST;
  if (tp->state >= TOE_TCP_SYN_RECEIVED)
    flags |= TOE_TCP_ACK;
  (void)tcp_xmit(st, tp,
                 tp->state >= TOE_TCP_ESTABLISHED ? acceptable_seq(tp, tp->snd_max) : tp->snd_max,
                 flags, NULL, 0);
  st->ctr.tcp.out_segs++;
}

/* A keepalive probe: RFC 1122 4.2.3.6, SEG.SEQ = SND.NXT - 1 with no data, which the peer must
 * answer with an ACK (it is outside the window). */
void toe_tcp_send_keepalive(struct toe_stack *st, struct toe_tcb *tp)
{
  (void)tcp_xmit(st, tp, tp->snd_una - 1u, TOE_TCP_ACK, NULL, 0);
  st->ctr.tcp.out_segs++;
}

void toe_tcp_send_window_probe(struct toe_stack *st, struct toe_tcb *tp)
{
  if (tp->snd_una != tp->snd_max) {
    /* an earlier probe (or data sent before the window closed) is unacknowledged: send it
     * again rather than more data the peer has no room for */
    if (tp->sndq_head != NULL && tp->sndq_head != tp->snd_next_seg)
      (void)toe_tcp_retransmit(st, tp, tp->sndq_head);
    else if (tp->flags & TOE_TF_FIN_SENT)
      send_fin(st, tp, true);
    if (tp->snd_wnd == 0)
      tp->zwp_out = 1;
    return;
  }
  struct toe_pbuf *seg = tp->snd_next_seg;
  if (seg == NULL)
    return;
  /* RFC 1122 4.2.2.17: probe with one octet of new data; RFC 9293 3.8.6.2.1's override: when a
   * small window is open but nothing is in flight to open it further, send what fits */
  int32_t usable_s = (int32_t)(tp->snd_una + tp->snd_wnd - toe_tcp_seg(seg)->seq);
  uint32_t n = usable_s > 0 ? (uint32_t)usable_s : 1u;
  if (n > toe_tcp_eff_mss(tp))
    n = toe_tcp_eff_mss(tp);
  if (n < seg->tot_len && seg_split(st, tp, seg, n) < 0)
    return; /* no buffer: the next probe tries again */
  bool fin = seg->qnext == NULL && (tp->flags & TOE_TF_FIN_QUEUED) &&
             !(tp->flags & TOE_TF_FIN_SENT) && usable_s > 0;
  if (usable_s <= 0)
    tp->ecn_flags |= TOE_ECNF_NOECT; /* RFC 3168 6.1.6: no ECT on window probes */
  send_new_seg(st, tp, seg, fin);
  tp->ecn_flags &= (uint16_t)~TOE_ECNF_NOECT;
  if (usable_s <= 0)
    tp->zwp_out = 1;
}

void toe_tcp_send_reset(struct toe_stack *st, const struct toe_ipv4_view *ip,
                        const struct toe_tcp_view *th, uint32_t seg_len)
{
  /* RFC 9293 3.10.7.1: an incoming RST is discarded, never answered */
  if (th->flags & TOE_TCP_RST)
    return;
  /* only for segments addressed to us alone (RFC 1122 4.2.3.10: no RST for broadcasts); dst 0
   * is a segment that came over IPv6 to one of our unicast addresses (tcp_v6.c) */
  if (ip->dst != st->cfg.addr && ip->dst != 0)
    return;
  struct tcp_ctl c = {
      .laddr = ip->dst,
      .raddr = ip->src,
      .lport = th->dst_port,
      .rport = th->src_port,
      .window = 0,
  };
  if (th->flags & TOE_TCP_ACK) {
    /* "If the incoming segment has an ACK field, the reset takes its sequence number from the
     * ACK field of the segment": <SEQ=SEG.ACK><CTL=RST> */
    c.seq = th->ack;
    c.ack = 0;
    c.flags = TOE_TCP_RST;
  } else {
    /* "otherwise the reset has sequence number zero and the ACK field is set to the sum of the
     * sequence number and segment length of the incoming segment":
     * <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK> (seg_len counts SYN and FIN already) */
    c.seq = 0;
    c.ack = th->seq + seg_len;
    c.flags = TOE_TCP_RST | TOE_TCP_ACK;
  }
  (void)xmit_ctl(st, &c);
}

/* ------------------------------------------------------------------------------------------ */
/* toe_tcp_output */

enum block_reason { BLOCK_NONE, BLOCK_WND, BLOCK_CWND, BLOCK_NAGLE, BLOCK_NOBUF };

/* Sends new data from snd_next_seg as the windows and Nagle allow (gathering it into `b` for
 * TSO). */
static enum block_reason output_segs(struct toe_stack *st, struct toe_tcb *tp, struct tso_batch *b,
                                     uint32_t mss)
{
  if (tp->cwnd == 0) {
    /* congestion control not set up (should not happen once ESTABLISHED): RFC 6928 */
    tp->cwnd = initial_cwnd(tp);
    if (tp->ssthresh == 0)
      tp->ssthresh = 0x7fffffffu;
  }
  if (tp->snd_wnd > tp->max_sndwnd)
    tp->max_sndwnd = tp->snd_wnd;
  if (tp->sml_out && !toe_seq_gt(tp->snd_sml, tp->snd_una))
    tp->sml_out = 0; /* the short segment was acknowledged */
  for (;;) {
    struct toe_pbuf *seg = tp->snd_next_seg;
    if (seg == NULL)
      return BLOCK_NONE;
    struct toe_tcp_seg *m = toe_tcp_seg(seg);
    if (seg->tot_len > mss && seg_split(st, tp, seg, mss) < 0)
      return BLOCK_NOBUF;
    if (seg->tot_len < mss)
      seg_fill(st, tp, seg, mss);
    uint32_t len = seg->tot_len;

    /* the peer's window: [snd_una, snd_una + snd_wnd) */
    int32_t usable_s = (int32_t)(tp->snd_una + tp->snd_wnd - m->seq);
    uint32_t usable = usable_s > 0 ? (uint32_t)usable_s : 0;
    /* the congestion window: what pipe leaves of cwnd; with nothing in flight one segment may
     * always go (RFC 5681's loss window is one segment) */
    uint32_t pipe = toe_tcp_pipe(tp);
    uint32_t room = tp->cwnd > pipe ? tp->cwnd - pipe : 0;
    bool idle = tp->snd_una == tp->snd_max;

    if (len > usable) {
      /* Sender SWS avoidance (RFC 9293 3.8.6.2.1): a piece smaller than the segment goes only
       * if it is at least half the largest window the peer has offered. */
      if (usable == 0 || usable < tp->max_sndwnd / 2u)
        return BLOCK_WND;
      if (seg_split(st, tp, seg, usable) < 0)
        return BLOCK_NOBUF;
      len = usable;
    }
    if (len > room && !idle)
      return BLOCK_CWND;

    bool last = seg->qnext == NULL;
    bool closing = (tp->flags & TOE_TF_FIN_QUEUED) != 0;
    if (len < mss && last && !closing) {
      /* TOE_SEND_MORE: the application said more follows at once (like MSG_MORE) */
      if (tp->flags & TOE_TF_MORE)
        return BLOCK_NAGLE;
      /* Nagle (RFC 9293 3.7.4, RFC 896) with Minshall's refinement (as Linux): a short segment
       * waits while an earlier short segment is unacknowledged, for the ACK or for enough data
       * to fill a segment. Full-sized segments in flight do not hold back the tail of a write. */
      if (!(tp->flags & TOE_TF_NODELAY) && !idle && tp->sml_out &&
          toe_seq_gt(tp->snd_sml, tp->snd_una))
        return BLOCK_NAGLE;
    }
    bool fin = last && closing && !(tp->flags & TOE_TF_FIN_SENT);
    send_or_batch(st, tp, b, seg, fin, mss);
  }
}

static enum block_reason output_data(struct toe_stack *st, struct toe_tcb *tp)
{
  uint32_t mss = toe_tcp_eff_mss(tp);
  /* TSO is for IPv4 only (TOE_PBUF_F_GSO_TCPV4); an IPv6 connection (laddr 0) sends segments */
  uint32_t tso = tp->sk.laddr ? tso_max_segs(st, mss) : 0;
  struct tso_batch b = {.first = NULL, .segs = 0, .max_segs = tso, .flags = 0};
  enum block_reason why = output_segs(st, tp, &b, mss);
  if (b.segs)
    tso_flush(st, tp, &b, mss);
  return why;
}

/* Keeps the timers in line with what is outstanding and waiting. */
static void sync_timers(struct toe_stack *st, struct toe_tcb *tp, enum block_reason why)
{
  toe_time_t now = toe_stack_now(st);
  const struct toe_config *cfg = &st->cfg;
  if (toe_tcp_zero_window_wait(tp) || (why == BLOCK_WND && tp->snd_una == tp->snd_max) ||
      why == BLOCK_NOBUF) {
    /* persist: probe the zero (or too small) window; or retry after running out of buffers */
    if (toe_tcp_zero_window_wait(tp)) {
      toe_tcp_timer_clear(st, tp, TOE_TT_RTO);
      toe_tcp_timer_clear(st, tp, TOE_TT_TLP);
    }
    if (tp->deadline[TOE_TT_PERSIST] == 0) {
      struct toe_tcb tmp = *tp;
      tmp.rto_backoff = tp->persist_backoff > 16 ? 16 : tp->persist_backoff;
      toe_tcp_timer_set(st, tp, TOE_TT_PERSIST, now + (toe_time_t)toe_tcp_rto_us(st, &tmp) * 1000u);
    }
  } else {
    if (tp->deadline[TOE_TT_PERSIST]) {
      toe_tcp_timer_clear(st, tp, TOE_TT_PERSIST);
    }
    tp->persist_backoff = 0;
  }
  if (tp->snd_una != tp->snd_max && tp->deadline[TOE_TT_RTO] == 0 && !toe_tcp_zero_window_wait(tp))
    toe_tcp_rearm_rto(st, tp);

  if ((tp->flags & TOE_TF_KEEPALIVE) && tp->deadline[TOE_TT_KEEP] == 0 &&
      (tp->state == TOE_TCP_ESTABLISHED || tp->state == TOE_TCP_CLOSE_WAIT ||
       tp->state == TOE_TCP_FIN_WAIT_2))
    toe_tcp_timer_set(st, tp, TOE_TT_KEEP, now + TOE_SEC(tp->keep_idle ? tp->keep_idle : 7200u));

  if ((tp->flags & TOE_TF_ORPHAN) && tp->state == TOE_TCP_FIN_WAIT_2 &&
      tp->deadline[TOE_TT_FINWAIT2] == 0)
    toe_tcp_timer_set(st, tp, TOE_TT_FINWAIT2,
                      now + (cfg->tcp_fin_timeout ? cfg->tcp_fin_timeout : TOE_SEC(60)));
}

/* The "full-sized segment" of RFC 5681 4.2: the largest payload the peer has sent (rcv_seg_max),
 * or our MSS less the timestamp option before anything arrived. */
static uint32_t full_sized(const struct toe_tcb *tp)
{
  uint32_t full = tp->rcv_seg_max;
  if (full == 0) {
    full = tp->rcv_mss ? tp->rcv_mss : DEFAULT_MSS;
    if ((tp->flags & TOE_TF_TS_OK) && full > TS_OPT_LEN)
      full -= TS_OPT_LEN;
  }
  return full;
}

/* The ACK we owe, if it should go now; else the delayed-ACK timer. */
static void output_ack(struct toe_stack *st, struct toe_tcb *tp)
{
  uint32_t read = tp->flags & TOE_TF_READ;
  tp->flags &= ~TOE_TF_READ;
  if (tp->flags & TOE_TF_ACK_NOW) {
    toe_tcp_send_ack(st, tp);
    return;
  }
  if (tp->flags & TOE_TF_DELACK) {
    /* RFC 5681 4.2 / RFC 1122 4.2.3.2: an ACK for at least every second full-sized segment;
     * "full-sized" is the largest payload the peer has sent (rcv_seg_max), or our MSS less the
     * timestamp option before anything arrived. The first QUICKACK_SEGS segments of a
     * connection are acknowledged one by one: the peer's slow start grows with every ACK, and
     * delaying them would stall it (Linux's quickack). */
    uint32_t full = full_sized(tp);
    uint32_t unacked = tp->rcv_nxt - tp->last_ack_sent;
    bool quick = tp->bytes_received <= (uint64_t)QUICKACK_SEGS * full;
    if (unacked >= 2u * full || quick) {
      toe_tcp_send_ack(st, tp);
      return;
    }
    /* A read that opened the window enough for an update (below) does not wait for the timer
     * either: the ACK we owe carries the news (RFC 9293 3.8.6.2.2; Linux's tcp_cleanup_rbuf
     * likewise). Otherwise a sender that filled the window and is waiting for it to open stalls
     * for the whole delayed-ACK timeout whenever the last segment before the read left an ACK
     * delayed -- every window with TSO, whose super-segments fill it in a few frames. */
    if ((read & TOE_TF_READ) && window_update_due(st, tp)) {
      st->ctr.tcp.out_win_updates++;
      toe_tcp_send_ack(st, tp);
      return;
    }
    if (tp->deadline[TOE_TT_DELACK] == 0) {
      toe_time_t d = st->cfg.tcp_delack ? st->cfg.tcp_delack : TOE_MSEC(40);
      toe_tcp_timer_set(st, tp, TOE_TT_DELACK, toe_stack_now(st) + d);
    }
    return;
  }
  if (window_update_due(st, tp)) {
    st->ctr.tcp.out_win_updates++;
    toe_tcp_send_ack(st, tp);
  }
}

void toe_tcp_output(struct toe_stack *st, struct toe_tcb *tp)
{
  switch (tp->state) {
  case TOE_TCP_CLOSED:
  case TOE_TCP_LISTEN:
  case TOE_TCP_TIME_WAIT:
    return;
  case TOE_TCP_SYN_SENT:
  case TOE_TCP_SYN_RECEIVED:
    if (tp->snd_nxt == tp->iss) {
      /* RFC 9293 3.10.4 OPEN / 3.10.7.3: <SEQ=ISS><CTL=SYN>, or <SEQ=ISS><ACK=RCV.NXT>
       * <CTL=SYN,ACK> answering the peer's SYN */
      bool again = tp->snd_max == tp->iss + 1u;
      uint8_t flags = TOE_TCP_SYN;
      if (tp->state == TOE_TCP_SYN_RECEIVED)
        flags |= TOE_TCP_ACK;
      (void)tcp_xmit(st, tp, tp->iss, flags, NULL, 0);
      if (again) {
        st->ctr.tcp.retrans_segs++;
        st->ctr.tcp.syn_retrans++;
        tp->total_retrans++;
      } else {
        st->ctr.tcp.out_segs++;
      }
      tp->snd_nxt = tp->snd_max = tp->iss + 1u;
      if (tp->deadline[TOE_TT_RTO] == 0)
        toe_tcp_rearm_rto(st, tp);
    } else if (tp->state == TOE_TCP_SYN_RECEIVED && (tp->flags & TOE_TF_ACK_NOW)) {
      toe_tcp_send_ack(st, tp);
    }
    return;
  default:
    break;
  }

  enum block_reason why = BLOCK_NONE;
  if (may_send(tp)) {
    if ((tp->flags & TOE_TF_FIN_SENT) && tp->snd_nxt != tp->snd_max) {
      /* the RTO path asks for the FIN again (only the FIN is outstanding) */
      if (tp->sndq_head == NULL)
        send_fin(st, tp, true);
      tp->snd_nxt = tp->snd_max;
    }
    tp->snd_nxt = tp->snd_max;
    if (tp->zwp_out && (tp->snd_wnd > 0 || tp->snd_una == tp->snd_max)) {
      /* The window opened after zero-window probing. A probe beyond a zero window is normally
       * dropped by the peer: if it is still unacknowledged, send it again at once rather than
       * after a retransmission timeout. */
      tp->zwp_out = 0;
      if (tp->snd_una != tp->snd_max && tp->sndq_head != NULL && tp->sndq_head != tp->snd_next_seg)
        (void)toe_tcp_retransmit(st, tp, tp->sndq_head);
    }
    uint32_t before = tp->snd_max;
    why = output_data(st, tp);
    /* RFC 8985 7.2: the probe timeout restarts whenever new data is sent (tcp-rec decides
     * whether a probe is allowed at all) */
    if (tp->snd_max != before && !toe_tcp_zero_window_wait(tp))
      toe_tcp_tlp_schedule(st, tp);
    if ((tp->flags & TOE_TF_FIN_QUEUED) && !(tp->flags & TOE_TF_FIN_SENT) &&
        tp->snd_next_seg == NULL)
      send_fin(st, tp, false);
  }
  output_ack(st, tp);
  if (!toe_tcp_synchronized(tp))
    return;
  sync_timers(st, tp, why);

  /* space came back for a writer that was told -TOE_EAGAIN: the low-water mark is a third of
   * the buffer free (as tcp-rec's ACK path uses) */
  if (tp->flags & TOE_TF_WRITABLE_WAIT) {
    uint32_t used = tp->sndq_bytes;
    uint32_t space = tp->sndbuf > used ? tp->sndbuf - used : 0;
    if (space >= tp->sndbuf / 3u || used == 0) {
      tp->flags &= ~TOE_TF_WRITABLE_WAIT;
      toe_tcp_notify(st, tp, TOE_EV_WRITABLE);
    }
  }
}

/* ------------------------------------------------------------------------------------------ */
/* Burst input: one output decision per connection per receive burst */

/* In-order data a burst may leave unacknowledged until its end: at most a GRO super-frame's worth
 * (the kernel's GRO stops merging before 64 KiB and sends one ACK per merged frame). */
#define BURST_ACK_MAX 65535u

/*
 * Whether the in-order data of a burst owes its ACK now rather than at the burst's end. RFC 5681
 * 4.2 and RFC 9293 3.8.6.3 ask for an ACK at least every second full-sized segment; a burst
 * coalesces them as GRO does for the kernel, but never into fewer ACKs than the kernel itself
 * would send, which the peer's congestion control is tuned to (RFC 3465's byte counting grows
 * cwnd by at most 2 segments per ACK):
 *  - the quick-ACK start (output_ack's rule): every segment is acknowledged, slow start needs it;
 *  - a super-frame (GSO/LRO, plen of two or more full-sized segments): its own ACK, as the kernel
 *    acknowledges each GRO frame;
 *  - frames of one segment: one ACK per GRO super-frame's worth (before the next segment would
 *    take the unacknowledged data past BURST_ACK_MAX), or per quarter of the window we
 *    advertised, whichever comes first, so a small window still sees its ACK clock.
 */
static bool burst_ack_due(const struct toe_tcb *tp, uint32_t plen)
{
  if (!(tp->flags & TOE_TF_DELACK))
    return false;
  uint32_t full = full_sized(tp);
  uint32_t unacked = tp->rcv_nxt - tp->last_ack_sent;
  if (unacked < 2u * full)
    return tp->bytes_received <= (uint64_t)QUICKACK_SEGS * full;
  return plen >= 2u * full || unacked + full > BURST_ACK_MAX || unacked >= tp->rcv_wnd / 4u ||
         tp->bytes_received <= (uint64_t)QUICKACK_SEGS * full;
}

void toe_tcp_output_or_defer(struct toe_stack *st, struct toe_tcb *tp, uint32_t plen)
{
  struct toe_tcp_tables *tt = &st->tcp;
  /* Only data states wait: a handshake's or a closing connection's segments go as they did.
   * TOE_TF_ACK_NOW is what the input path decided must not wait (out-of-order data, a hole
   * filled, a FIN, data past the window: RFC 5681 4.2, RFC 9293 3.10.7.4); each such segment
   * keeps its own ACK, so duplicate ACKs still count for the peer's fast retransmit. */
  bool data_state = tp->state == TOE_TCP_ESTABLISHED || tp->state == TOE_TCP_CLOSE_WAIT ||
                    tp->state == TOE_TCP_FIN_WAIT_1 || tp->state == TOE_TCP_FIN_WAIT_2;
  if (!tt->in_burst || !data_state || (tp->flags & TOE_TF_ACK_NOW) || burst_ack_due(tp, plen)) {
    toe_tcp_output(st, tp);
    return;
  }
  st->ctr.tcp.out_burst_deferred++;
  if (tp->out_queued)
    return;
  tp->out_queued = 1;
  tp->out_next = tt->out_head;
  tt->out_head = tp;
}

void toe_tcp_output_undefer(struct toe_stack *st, struct toe_tcb *tp)
{
  if (!tp->out_queued)
    return;
  struct toe_tcb **pp = &st->tcp.out_head;
  while (*pp && *pp != tp)
    pp = &(*pp)->out_next;
  if (*pp)
    *pp = tp->out_next;
  tp->out_next = NULL;
  tp->out_queued = 0;
}

void toe_tcp_output_burst_end(struct toe_stack *st)
{
  struct toe_tcp_tables *tt = &st->tcp;
  tt->in_burst = 0;
  struct toe_tcb *tp;
  /* taken off the list before its output runs: anything output does to other tcbs (or to
   * this one) finds a consistent list */
  while ((tp = tt->out_head) != NULL) {
    tt->out_head = tp->out_next;
    tp->out_next = NULL;
    tp->out_queued = 0;
    toe_tcp_output(st, tp);
  }
  toe_tcp_notify_flush(st);
}
