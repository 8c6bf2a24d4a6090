/*
 * TIME_WAIT in compact entries (RFC 9293 3.6.1 and 3.10.7.4, RFC 1337, RFC 6191, RFC 7323 5).
 *
 * The side that closes first waits 2*MSL after the close so that a lost final ACK can be repeated
 * for the peer's retransmitted FIN, and so that old duplicates of this incarnation die before the
 * 4-tuple is used again. A tcb (about 1 KiB) is far more than that needs: on entry the tcb is
 * released and a small entry keeps the 4-tuple, both sequence numbers, the timestamp state and the
 * expiry, in its own 4-tuple hash.
 *
 * Every entry lives the same 2*MSL, so a FIFO list is also the expiry order: one wheel timer,
 * armed for the oldest entry, serves the whole table, and restarting an entry's 2*MSL (a
 * retransmitted FIN) moves it to the tail. When the table is full the oldest entry is recycled
 * early (counted): the alternative, refusing to close, would be worse.
 *
 * In TIME_WAIT:
 *   - RST is ignored (RFC 1337: a RST must not assassinate TIME_WAIT);
 *   - a SYN may reopen the 4-tuple through the listener if it is clearly from a new incarnation:
 *     a newer timestamp, or a higher sequence number (RFC 6191, RFC 1122 4.2.2.13); otherwise it
 *     is answered by an ACK (RFC 9293 3.10.7.4, RFC 5961 4.2);
 *   - a retransmitted FIN is ACKed again and restarts the 2*MSL wait (RFC 9293 3.10.7.4);
 *   - an old duplicate (PAWS, RFC 7323 5.3) or any other unacceptable segment gets an ACK;
 *   - an acceptable bare ACK is dropped silently (nothing to answer; no ACK loops).
 */
#include "engine/stack.h"
#include "engine/tcp.h"
#include "toe/steer.h"
#include "wire/tcp.h"

#include <string.h>

#define TW_F_TS 0x01u        /* timestamps were in use */
#define TW_F_REUSEPORT 0x02u /* its socket had SO_REUSEPORT: a bind with it passes */

struct toe_tw_entry {
  struct toe_tw_entry *hnext; /* hash chain, or the free list */
  struct toe_tw_entry *older; /* expiry list */
  struct toe_tw_entry *newer;
  toe_time_t expires;
  uint32_t laddr, raddr;
  uint16_t lport, rport;
  uint32_t snd_nxt; /* after our FIN */
  uint32_t rcv_nxt; /* after the peer's FIN */
  uint32_t ts_recent;
  uint32_t ts_recent_age; /* toe_tcp_now_ms() when ts_recent was last set */
  uint32_t ts_base;       /* our TSval at entry ... */
  uint32_t ts_base_ms;    /* ... and toe_tcp_now_ms() then: TSvals go on from there */
  uint16_t window;        /* the window field of our ACKs (already scaled) */
  uint8_t flags;          /* TW_F_* */
  uint8_t in_use;
};

_Static_assert(sizeof(struct toe_tw_entry) <= 80, "TIME_WAIT entries must stay compact");

#define TW_REUSE_AGE_MS 1000u /* Linux tcp_tw_reuse: PAWS protects reuse after a second */

static toe_time_t tw_len(const struct toe_stack *st)
{
  toe_time_t msl = st->cfg.tcp_msl ? st->cfg.tcp_msl : TOE_SEC(30);
  return 2 * msl;
}

static uint32_t tw_hash(const struct toe_stack *st, uint32_t laddr, uint16_t lport, uint32_t raddr,
                        uint16_t rport)
{
  uint8_t b[13];
  memcpy(b, &laddr, 4);
  memcpy(b + 4, &raddr, 4);
  memcpy(b + 8, &lport, 2);
  memcpy(b + 10, &rport, 2);
  b[12] = 'W';
  return (uint32_t)toe_keyed_hash(st, b, sizeof(b)) & st->tcp.tw_hash_mask;
}

static struct toe_tw_entry *tw_lookup(const struct toe_stack *st, uint32_t laddr, uint16_t lport,
                                      uint32_t raddr, uint16_t rport)
{
  if (st->tcp.tw_hash == NULL || st->tcp.tw_inuse == 0)
    return NULL;
  for (struct toe_tw_entry *e = st->tcp.tw_hash[tw_hash(st, laddr, lport, raddr, rport)]; e;
       e = e->hnext) {
    if (e->laddr == laddr && e->lport == lport && e->raddr == raddr && e->rport == rport)
      return e;
  }
  return NULL;
}

static void list_unlink(struct toe_stack *st, struct toe_tw_entry *e)
{
  if (e->older)
    e->older->newer = e->newer;
  else
    st->tcp.tw_oldest = e->newer;
  if (e->newer)
    e->newer->older = e->older;
  else
    st->tcp.tw_newest = e->older;
  e->older = e->newer = NULL;
}

static void list_append(struct toe_stack *st, struct toe_tw_entry *e)
{
  e->newer = NULL;
  e->older = st->tcp.tw_newest;
  if (st->tcp.tw_newest)
    st->tcp.tw_newest->newer = e;
  else
    st->tcp.tw_oldest = e;
  st->tcp.tw_newest = e;
}

/* Keeps the table's timer on the oldest entry's expiry. */
static void tw_rearm(struct toe_stack *st)
{
  if (st->tcp.tw_oldest)
    toe_timer_arm(st, &st->tcp.tw_timer, st->tcp.tw_oldest->expires);
  else
    toe_timer_cancel(st, &st->tcp.tw_timer);
}

static void tw_remove(struct toe_stack *st, struct toe_tw_entry *e)
{
  struct toe_tw_entry **pp = &st->tcp.tw_hash[tw_hash(st, e->laddr, e->lport, e->raddr, e->rport)];
  while (*pp && *pp != e)
    pp = &(*pp)->hnext;
  if (*pp)
    *pp = e->hnext;
  list_unlink(st, e);
  if (e->laddr == 0) {
    toe_tcp6_filter(st, false, 0, e->lport, e->raddr, e->rport);
    toe_tcp6_release(st, e->raddr); /* an IPv6 entry's hold on its pair (tcp.h) */
  } else
    toe_filt_del(st, TOE_IPPROTO_TCP, e->lport, e->raddr, e->rport);
  e->in_use = 0;
  e->hnext = st->tcp.tw_free;
  st->tcp.tw_free = e;
  st->tcp.tw_inuse--;
  st->ctr.tcp.tw_inuse = st->tcp.tw_inuse;
}

static void tw_timer_fn(struct toe_stack *st, struct toe_timer *t)
{
  (void)t;
  toe_time_t now = toe_stack_now(st);
  while (st->tcp.tw_oldest && st->tcp.tw_oldest->expires <= now) {
    st->ctr.tcp.tw_expired++;
    tw_remove(st, st->tcp.tw_oldest);
  }
  tw_rearm(st);
}

size_t toe_tcp_timewait_mem_size(const struct toe_config *cfg)
{
  uint32_t n = cfg->tcp_timewait;
  uint32_t buckets = 1;
  while (buckets < n && buckets < (1u << 30))
    buckets <<= 1;
  return (size_t)n * sizeof(struct toe_tw_entry) + (size_t)buckets * sizeof(struct toe_tw_entry *);
}

void toe_tcp_timewait_init(struct toe_stack *st, void *mem)
{
  uint32_t n = st->cfg.tcp_timewait;
  uint32_t buckets = 1;
  while (buckets < n && buckets < (1u << 30))
    buckets <<= 1;
  memset(mem, 0, toe_tcp_timewait_mem_size(&st->cfg));
  struct toe_tw_entry *pool = mem;
  st->tcp.tw_pool = pool;
  st->tcp.tw_hash = (struct toe_tw_entry **)(void *)(pool + n);
  st->tcp.tw_hash_mask = buckets - 1;
  st->tcp.tw_count = n;
  st->tcp.tw_inuse = 0;
  st->tcp.tw_oldest = st->tcp.tw_newest = NULL;
  st->tcp.tw_free = NULL;
  for (uint32_t i = n; i-- > 0;) {
    pool[i].hnext = st->tcp.tw_free;
    st->tcp.tw_free = &pool[i];
  }
  toe_timer_init(&st->tcp.tw_timer, tw_timer_fn);
}

static uint32_t tw_tsval(const struct toe_stack *st, const struct toe_tw_entry *e)
{
  return e->ts_base + (toe_tcp_now_ms(st) - e->ts_base_ms);
}

/* An ACK from TIME_WAIT: <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>, with timestamps if in use. */
static void tw_send_ack(struct toe_stack *st, const struct toe_tw_entry *e)
{
  struct toe_tcp_opts o;
  memset(&o, 0, sizeof(o));
  if (e->flags & TW_F_TS) {
    o.has = TOE_TCPOPT_HAS_TS;
    o.ts_val = tw_tsval(st, e);
    o.ts_ecr = e->ts_recent;
  }
  toe_tcp_xmit_bare(st, e->laddr, e->lport, e->raddr, e->rport, e->snd_nxt, e->rcv_nxt, TOE_TCP_ACK,
                    e->window, &o);
}

void toe_tcp_enter_timewait(struct toe_stack *st, struct toe_tcb *tp)
{
  struct toe_tcp_tables *t = &st->tcp;
  if (t->tw_hash == NULL || t->tw_count == 0) {
    toe_tcp_close_final(st, tp);
    return;
  }
  const struct toe_sock *s = &tp->sk;
  /* A stale entry of an earlier incarnation of this 4-tuple gives way to the new one. */
  struct toe_tw_entry *e = tw_lookup(st, s->laddr, s->lport, s->raddr, s->rport);
  if (e)
    tw_remove(st, e);
  if (t->tw_free == NULL) {
    st->ctr.tcp.tw_recycled++;
    tw_remove(st, t->tw_oldest);
  }
  e = t->tw_free;
  t->tw_free = e->hnext;

  uint32_t now_ms = toe_tcp_now_ms(st);
  e->laddr = s->laddr;
  e->raddr = s->raddr;
  e->lport = s->lport;
  e->rport = s->rport;
  e->snd_nxt = tp->snd_max;
  e->rcv_nxt = tp->rcv_nxt;
  e->flags = (uint8_t)(((tp->flags & TOE_TF_TS_OK) ? TW_F_TS : 0) |
                       ((s->flags & TOE_SOCK_F_REUSEPORT) ? TW_F_REUSEPORT : 0));
  e->ts_recent = tp->ts_recent;
  e->ts_recent_age = tp->ts_recent_age ? tp->ts_recent_age : now_ms;
  e->ts_base = toe_tcp_ts_now(st, tp);
  e->ts_base_ms = now_ms;
  uint32_t w = tp->rcv_wnd >> tp->rcv_wscale;
  e->window = (uint16_t)(w > 65535u ? 65535u : w);
  e->expires = toe_stack_now(st) + tw_len(st);
  e->in_use = 1;
  uint32_t b = tw_hash(st, e->laddr, e->lport, e->raddr, e->rport);
  e->hnext = t->tw_hash[b];
  t->tw_hash[b] = e;
  list_append(st, e);
  /* Late segments of the connection stay the engine's (RFC 9293 3.6.1): the host OS must never
   * see one and answer it with a RST. Taken before the connection's own filter goes. */
  if (e->laddr == 0) {
    toe_tcp6_hold(st, e->raddr);
    toe_tcp6_filter(st, true, TOE_FILTER_TIMEWAIT, e->lport, e->raddr, e->rport);
  } else
    toe_filt_add(st, TOE_FILTER_TIMEWAIT, TOE_IPPROTO_TCP, e->lport, e->raddr, e->rport);
  t->tw_inuse++;
  st->ctr.tcp.tw_inuse = t->tw_inuse;
  st->ctr.tcp.tw_entered++;
  if (t->tw_oldest == e)
    tw_rearm(st);

  toe_tcp_close_final(st, tp);
}

/* The listener a SYN for this 4-tuple would reach, or NULL. */
static struct toe_tcb *find_listener(struct toe_stack *st, uint32_t laddr, uint16_t lport,
                                     uint32_t raddr, uint16_t rport)
{
  struct toe_sock *s;
  if (laddr == 0) {
    /* IPv6: raddr is the key of the pair (tcp.h) */
    const struct toe_tcp6_pair *p = toe_tcp6_pair_get(st, raddr);
    if (p == NULL)
      return NULL;
    s = toe_socktab_lookup6(st, TOE_IPPROTO_TCP, &p->local, lport, &p->remote, rport);
  } else {
    s = toe_socktab_lookup(st, TOE_IPPROTO_TCP, laddr, lport, raddr, rport);
  }
  if (s == NULL || s->proto != TOE_IPPROTO_TCP)
    return NULL;
  struct toe_tcb *tp = toe_tcb(s);
  return tp->state == TOE_TCP_LISTEN ? tp : NULL;
}

/*
 * RFC 6191 section 2 (with RFC 1122 4.2.2.13 for connections without timestamps): may this SYN
 * open a new incarnation of the 4-tuple while it is in TIME_WAIT?
 */
static bool syn_may_reopen(const struct toe_stack *st, const struct toe_tw_entry *e,
                           const struct toe_tcp_view *th, const struct toe_tcp_opts *opts)
{
  bool new_ts = st->cfg.tcp_timestamps && (opts->has & TOE_TCPOPT_HAS_TS);
  /* "greater than the last sequence number seen": the peer's FIN was rcv_nxt - 1 */
  bool seq_higher = toe_seq_ge(th->seq, e->rcv_nxt);
  if (e->flags & TW_F_TS) {
    if (new_ts)
      return toe_seq_gt(opts->ts_val, e->ts_recent) || (opts->ts_val == e->ts_recent && seq_higher);
    return seq_higher;
  }
  return new_ts || seq_higher;
}

bool toe_tcp_timewait_input(struct toe_stack *st, struct toe_pbuf *pb,
                            const struct toe_ipv4_view *ip, const struct toe_tcp_view *th,
                            const struct toe_tcp_opts *opts)
{
  struct toe_tw_entry *e = tw_lookup(st, ip->dst, th->dst_port, ip->src, th->src_port);
  if (e == NULL)
    return false;
  struct toe_counters_tcp *c = &st->ctr.tcp;
  uint8_t fl = th->flags;

  /* RFC 1337: a RST in TIME_WAIT is ignored, so old duplicates cannot end the wait early. */
  if (fl & TOE_TCP_RST) {
    c->tw_rst_ignored++;
    toe_pbuf_free(st, pb);
    return true;
  }

  if ((fl & (TOE_TCP_SYN | TOE_TCP_ACK)) == TOE_TCP_SYN) {
    if (syn_may_reopen(st, e, th, opts)) {
      struct toe_tcb *l = find_listener(st, e->laddr, e->lport, e->raddr, e->rport);
      if (l) {
        /* RFC 9293 3.4 / Linux: start the new connection beyond the old sequence space, so
         * stray segments of the old one cannot look acceptable to the new one. */
        uint32_t floor = e->snd_nxt + 65535u + 2u;
        c->tw_reopened++;
        tw_remove(st, e);
        tw_rearm(st);
        toe_tcp_syn_input_reopen(st, l, pb, ip, th, opts, floor);
        return true;
      }
    }
    /* RFC 9293 3.10.7.4 fourth check / RFC 5961 4.2: answer with an ACK, keep waiting. */
    c->tw_acks++;
    tw_send_ack(st, e);
    toe_pbuf_free(st, pb);
    return true;
  }

  /* PAWS (RFC 7323 5.3 R1): an old duplicate is acknowledged and dropped. */
  if ((e->flags & TW_F_TS) && (opts->has & TOE_TCPOPT_HAS_TS) &&
      toe_seq_lt(opts->ts_val, e->ts_recent)) {
    c->rx_drop_paws++;
    c->tw_acks++;
    tw_send_ack(st, e);
    toe_pbuf_free(st, pb);
    return true;
  }
  if (fl & TOE_TCP_SYN) {
    /* SYN-ACK: RFC 5961 4.2 challenge ACK */
    c->tw_acks++;
    tw_send_ack(st, e);
    toe_pbuf_free(st, pb);
    return true;
  }
  if (!(fl & TOE_TCP_ACK)) {
    /* RFC 9293 3.10.7.4 fifth check: "if the ACK bit is off, drop the segment" */
    c->rx_drop_no_ack++;
    toe_pbuf_free(st, pb);
    return true;
  }

  uint32_t l4 = (uint32_t)ip->total_len - ip->hdr_len;
  uint32_t dlen = l4 > th->hdr_len ? l4 - th->hdr_len : 0;
  bool ts_update = (e->flags & TW_F_TS) && (opts->has & TOE_TCPOPT_HAS_TS) &&
                   toe_seq_ge(opts->ts_val, e->ts_recent);
  if ((fl & TOE_TCP_FIN) && th->seq + dlen + 1u == e->rcv_nxt) {
    /* The peer did not get our ACK of its FIN: ACK again and restart the 2*MSL wait. */
    if (ts_update) {
      e->ts_recent = opts->ts_val;
      e->ts_recent_age = toe_tcp_now_ms(st);
    }
    c->tw_fin_acked++;
    tw_send_ack(st, e);
    list_unlink(st, e);
    e->expires = toe_stack_now(st) + tw_len(st);
    list_append(st, e);
    tw_rearm(st);
    toe_pbuf_free(st, pb);
    return true;
  }
  if (dlen == 0 && !(fl & TOE_TCP_FIN) && th->seq == e->rcv_nxt) {
    /* An acceptable bare ACK (our FIN's ACK repeated, a keepalive answer): nothing to say. */
    if (ts_update) {
      e->ts_recent = opts->ts_val;
      e->ts_recent_age = toe_tcp_now_ms(st);
    }
    toe_pbuf_free(st, pb);
    return true;
  }
  /* Not acceptable (the receive window is closed in TIME_WAIT): RFC 9293 3.10.7.4 first check
   * says to send an ACK in reply. */
  c->rx_drop_out_of_window++;
  c->tw_acks++;
  tw_send_ack(st, e);
  toe_pbuf_free(st, pb);
  return true;
}

int toe_tcp_timewait_connect(struct toe_stack *st, uint32_t laddr, uint16_t lport, uint32_t raddr,
                             uint16_t rport, uint32_t *iss_floor)
{
  struct toe_tw_entry *e = tw_lookup(st, laddr, lport, raddr, rport);
  if (e == NULL)
    return 0;
  /* With timestamps, the peer's PAWS rejects old duplicates of the old incarnation once our
   * clock has moved on, and our new ISS is placed beyond the old sequence space. */
  if ((e->flags & TW_F_TS) && st->cfg.tcp_timestamps &&
      toe_tcp_now_ms(st) - e->ts_recent_age >= TW_REUSE_AGE_MS) {
    if (iss_floor)
      *iss_floor = e->snd_nxt + 65535u + 2u;
    st->ctr.tcp.tw_reused++;
    tw_remove(st, e);
    tw_rearm(st);
    return 1;
  }
  return -TOE_EADDRINUSE;
}

bool toe_tcp_timewait_port_used(const struct toe_stack *st, uint32_t laddr, uint16_t lport,
                                bool reuseport)
{
  for (const struct toe_tw_entry *e = st->tcp.tw_oldest; e; e = e->newer) {
    if (reuseport && (e->flags & TW_F_REUSEPORT))
      continue;
    if (e->lport == lport && (laddr == 0 || e->laddr == 0 || e->laddr == laddr))
      return true;
  }
  return false;
}

void toe_tcp_timewait_visit(const struct toe_stack *st, toe_tcp_visit_fn fn, void *arg)
{
  if (fn == NULL)
    return;
  for (const struct toe_tw_entry *e = st->tcp.tw_oldest; e; e = e->newer) {
    struct toe_sockaddr local = {.family = TOE_AF_INET, .port = e->lport, .addr = e->laddr};
    struct toe_sockaddr remote = {.family = TOE_AF_INET, .port = e->rport, .addr = e->raddr};
    const struct toe_tcp6_pair *p = e->laddr ? NULL : toe_tcp6_pair_get(st, e->raddr);
    if (p) {
      local.family = remote.family = TOE_AF_INET6;
      memcpy(local.addr6, p->local.b, 16);
      memcpy(remote.addr6, p->remote.b, 16);
    }
    struct toe_tcp_info info;
    memset(&info, 0, sizeof(info));
    info.state = TOE_TCP_TIME_WAIT;
    if (e->flags & TW_F_TS)
      info.options = TOE_TCPI_OPT_TIMESTAMPS;
    fn(arg, NULL, &local, &remote, &info);
  }
}
