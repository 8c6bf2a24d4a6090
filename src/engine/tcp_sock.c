/*
 * TCP sockets: the public API of include/toe/tcp.h (open, bind, connect, listen, accept, send,
 * recv, shutdown, close, abort, options, info), the tcb pool carved from the stack's memory, the
 * end of connections (drop, final close), and socket events.
 *
 * Ownership: a tcb is "owned" while the application holds its handle (from toe_tcp_open or
 * toe_tcp_accept until close/abort). A connection the application closed lives on as an orphan
 * (TOE_TF_ORPHAN) until its FIN handshake is done, and is freed by the engine; a connection that
 * ends while still owned keeps its tcb (state CLOSED, unread data kept) until the application
 * closes the handle. Connections waiting in a listener's accept queue are owned by nobody.
 *
 * Events are queued on the tcb and delivered from toe_tcp_notify_flush(), at the end of socket
 * calls and timers (and of segment input), never from inside protocol processing: a callback may
 * close or abort any socket, which must not free a tcb some caller is still working on.
 */
#include "engine/div64.h"
#include "engine/stack.h"
#include "engine/tcp.h"
#include "wire/checksum.h"

#include <string.h>

#define MEM_ALIGN 64u
#define DEFAULT_BUF (256u * 1024u)
#define DEFAULT_BUF_MAX (4u * 1024u * 1024u)
#define MIN_BUF 2048u
#define DEFAULT_BACKLOG 1024u
#define MAX_KEEP_SECS 32767u /* Linux's MAX_TCP_KEEPIDLE / KEEPINTVL */
#define MAX_KEEP_CNT 127u
#define MIN_USER_MSS 88u /* Linux's TCP_MIN_MSS */
#define EPHEMERAL_TRIES 16

static size_t align_up(size_t v)
{
  return (v + MEM_ALIGN - 1u) & ~(size_t)(MEM_ALIGN - 1u);
}

static uint32_t min_u32(uint32_t a, uint32_t b)
{
  return a < b ? a : b;
}

/* ------------------------------------------------------------------------------------------ */
/* Memory and the tcb pool */

size_t toe_tcp_mem_size(const struct toe_config *cfg)
{
  size_t n = align_up((size_t)cfg->tcp_socks * sizeof(struct toe_tcb));
  n += align_up(toe_tcp_demux_mem_size(cfg));
  n += align_up(toe_tcp_syncache_mem_size(cfg));
  n += align_up(toe_tcp_timewait_mem_size(cfg));
  n += align_up(toe_tcp6_mem_size(cfg));
  return n;
}

static void notify_timer_fire(struct toe_stack *st, struct toe_timer *t)
{
  (void)t;
  toe_tcp_notify_flush(st);
}

void toe_tcp_init(struct toe_stack *st, void *mem)
{
  const struct toe_config *cfg = &st->cfg;
  struct toe_tcp_tables *tt = &st->tcp;
  uint8_t *p = mem;
  tt->tcbs = (struct toe_tcb *)(void *)p;
  tt->count = cfg->tcp_socks;
  tt->free = NULL;
  tt->inuse = 0;
  /* the free list back to front, so slot 0 is handed out first */
  for (uint32_t i = tt->count; i-- > 0;) {
    struct toe_tcb *tp = &tt->tcbs[i];
    memset(tp, 0, sizeof(*tp));
    tp->sk.hnext = tt->free ? &tt->free->sk : NULL;
    tt->free = tp;
  }
  p += align_up((size_t)cfg->tcp_socks * sizeof(struct toe_tcb));
  tt->notify_head = tt->notify_tail = NULL;
  tt->notify_busy = 0;
  toe_timer_init(&tt->notify_timer, notify_timer_fire);

  toe_tcp_demux_init(st, p);
  p += align_up(toe_tcp_demux_mem_size(cfg));
  toe_tcp_syncache_init(st, p);
  p += align_up(toe_tcp_syncache_mem_size(cfg));
  toe_tcp_timewait_init(st, p);
  p += align_up(toe_tcp_timewait_mem_size(cfg));
  toe_tcp6_init(st, p);
}

struct toe_tcb *toe_tcp_sock(const struct toe_stack *st, const struct toe_sock *s)
{
  if (s == NULL || st == NULL || st->tcp.tcbs == NULL)
    return NULL;
  /* a stale or foreign handle must not reach into memory: it has to be one of our slots */
  uintptr_t base = (uintptr_t)st->tcp.tcbs;
  uintptr_t a = (uintptr_t)s;
  if (a < base || a >= base + (uintptr_t)st->tcp.count * sizeof(struct toe_tcb))
    return NULL;
  if ((a - base) % sizeof(struct toe_tcb) != 0)
    return NULL;
  if (s->proto != TOE_IPPROTO_TCP)
    return NULL;
  return (struct toe_tcb *)(uintptr_t)s;
}

/* An application handle: an open TCP socket of this stack that the application holds. */
static struct toe_tcb *app_tcb(const struct toe_stack *st, const struct toe_sock *s)
{
  struct toe_tcb *tp = toe_tcp_sock(st, s);
  return tp && tp->owned ? tp : NULL;
}

static uint16_t secs_of(toe_time_t ns, uint16_t fallback)
{
  if (ns == 0)
    return fallback;
  toe_time_t s = toe_div1000(toe_div1000000(ns)); /* ns / TOE_SEC(1) */
  if (s == 0)
    s = 1;
  return (uint16_t)(s > MAX_KEEP_SECS ? MAX_KEEP_SECS : s);
}

struct toe_tcb *toe_tcb_alloc(struct toe_stack *st)
{
  struct toe_tcp_tables *tt = &st->tcp;
  struct toe_tcb *tp = tt->free;
  if (tp == NULL)
    return NULL;
  tt->free = tp->sk.hnext ? (struct toe_tcb *)(void *)tp->sk.hnext : NULL;
  memset(tp, 0, sizeof(*tp));
  const struct toe_config *cfg = &st->cfg;
  tp->sk.proto = TOE_IPPROTO_TCP;
  tp->state = TOE_TCP_CLOSED;
  toe_tcp_timers_init(tp);
  uint32_t rmax = toe_tcp_rcvbuf_max(st);
  tp->rcvbuf = min_u32(cfg->tcp_rcvbuf ? cfg->tcp_rcvbuf : DEFAULT_BUF, rmax);
  tp->sndbuf = cfg->tcp_sndbuf ? cfg->tcp_sndbuf : DEFAULT_BUF;
  tp->rto_us = toe_tcp_rto_initial_us(st);
  tp->pmtu = cfg->mtu;
  tp->snd_mss = 536; /* RFC 9293 3.7.1 until the peer tells */
  tp->rcv_mss = toe_tcp_mss_offer(st, tp);
  tp->ssthresh = UINT32_MAX; /* RFC 5681 3.1: "arbitrarily high" */
  tp->cc = toe_cc_by_id(cfg->tcp_cc ? cfg->tcp_cc : TOE_CC_CUBIC);
  tp->keep_idle = secs_of(cfg->tcp_keep_idle, 7200);
  tp->keep_intvl = secs_of(cfg->tcp_keep_intvl, 75);
  tp->keep_cnt = cfg->tcp_keep_cnt ? cfg->tcp_keep_cnt : 9;
  tt->inuse++;
  st->ctr.tcp.socks_inuse++;
  return tp;
}

/* ------------------------------------------------------------------------------------------ */
/* Events */

static void notify_unlink(struct toe_stack *st, struct toe_tcb *tp)
{
  struct toe_tcp_tables *tt = &st->tcp;
  if (tp->notify_queued) {
    struct toe_tcb *prev = NULL;
    for (struct toe_tcb *q = tt->notify_head; q; prev = q, q = q->notify_next) {
      if (q != tp)
        continue;
      if (prev)
        prev->notify_next = q->notify_next;
      else
        tt->notify_head = q->notify_next;
      if (tt->notify_tail == q)
        tt->notify_tail = prev;
      break;
    }
    tp->notify_queued = 0;
    tp->notify_next = NULL;
  }
  tp->pending_events = 0;
}

static void notify_queue(struct toe_stack *st, struct toe_tcb *tp, uint32_t events)
{
  struct toe_tcp_tables *tt = &st->tcp;
  tp->pending_events = (uint8_t)(tp->pending_events | events);
  if (!tp->notify_queued) {
    tp->notify_queued = 1;
    tp->notify_next = NULL;
    if (tt->notify_tail)
      tt->notify_tail->notify_next = tp;
    else
      tt->notify_head = tp;
    tt->notify_tail = tp;
  }
  /* delivered at the next poll at the latest, if no caller flushes before */
  if (!toe_timer_pending(&tt->notify_timer) && !tt->notify_busy)
    toe_timer_arm(st, &tt->notify_timer, toe_stack_now(st));
}

void toe_tcp_notify(struct toe_stack *st, struct toe_tcb *tp, uint32_t events)
{
  if (!tp->owned)
    return; /* nobody to tell: an orphan, or a connection waiting to be accepted */
  if (events & TOE_EV_READABLE) {
    /* edge-triggered: once until the application has seen the queue empty */
    if (tp->ev_seen & TOE_EV_READABLE)
      events &= ~TOE_EV_READABLE;
    else
      tp->ev_seen |= TOE_EV_READABLE;
  }
  events &= TOE_EV_READABLE | TOE_EV_WRITABLE | TOE_EV_ERROR | TOE_EV_HUP;
  if (events)
    notify_queue(st, tp, events);
}

/* Events that bypass the edge filter (the end of a connection). */
static void notify_force(struct toe_stack *st, struct toe_tcb *tp, uint32_t events)
{
  if (!tp->owned)
    return;
  tp->ev_seen |= TOE_EV_READABLE;
  notify_queue(st, tp, events);
}

void toe_tcp_notify_flush(struct toe_stack *st)
{
  struct toe_tcp_tables *tt = &st->tcp;
  if (tt->notify_busy || tt->notify_head == NULL)
    return;
  tt->notify_busy = 1;
  struct toe_tcb *tp;
  while ((tp = tt->notify_head) != NULL) {
    tt->notify_head = tp->notify_next;
    if (tt->notify_head == NULL)
      tt->notify_tail = NULL;
    tp->notify_next = NULL;
    tp->notify_queued = 0;
    uint32_t ev = tp->pending_events;
    tp->pending_events = 0;
    /* the callback may close/abort this or any socket: tp is not touched after it */
    if (ev && tp->owned)
      toe_sock_notify(st, &tp->sk, ev);
  }
  tt->notify_busy = 0;
  toe_timer_cancel(st, &tt->notify_timer);
}

/* ------------------------------------------------------------------------------------------ */
/* The end of connections */

static bool tcb_alive(const struct toe_tcb *tp)
{
  return tp->sk.proto == TOE_IPPROTO_TCP;
}

static void acceptq_unlink(struct toe_tcb *tp)
{
  struct toe_tcb *l = tp->listener;
  if (l == NULL)
    return;
  struct toe_tcb *prev = NULL;
  for (struct toe_tcb *q = l->acceptq_head; q; prev = q, q = q->acceptq_next) {
    if (q != tp)
      continue;
    if (prev)
      prev->acceptq_next = q->acceptq_next;
    else
      l->acceptq_head = q->acceptq_next;
    if (l->acceptq_tail == q)
      l->acceptq_tail = prev;
    if (l->acceptq_len)
      l->acceptq_len--;
    break;
  }
  tp->listener = NULL;
  tp->acceptq_next = NULL;
}

static void free_rcvq(struct toe_stack *st, struct toe_tcb *tp)
{
  toe_pbuf_free_queue(st, tp->rcvq_head);
  tp->rcvq_head = tp->rcvq_tail = NULL;
  tp->rcvq_bytes = 0;
}

/*
 * Releases what a connection holds: timers, hash and table entries, queued segments. The receive
 * queue stays if `keep_rcvq` (the application may still read what arrived before the end).
 */
static void tcb_release(struct toe_stack *st, struct toe_tcb *tp, bool keep_rcvq)
{
  toe_timer_cancel(st, &tp->timer);
  toe_tcp_output_undefer(st, tp);
  for (int k = 0; k < TOE_TT_COUNT; k++)
    tp->deadline[k] = 0;
  toe_tcp_hash_remove(st, tp);
  if (tp->sk.flags & TOE_SOCK_F_BOUND) {
    toe_socktab_remove(st, &tp->sk); /* harmless for passive connections, never inserted */
    tp->sk.flags &= (uint8_t)~TOE_SOCK_F_BOUND;
  }
  acceptq_unlink(tp);
  toe_pbuf_free_queue(st, tp->sndq_head);
  tp->sndq_head = tp->sndq_tail = tp->snd_next_seg = NULL;
  toe_tcp_sack_run_clear(tp);
  tp->sndq_bytes = 0;
  toe_tcp_reass_purge(st, tp);
  if (!keep_rcvq)
    free_rcvq(st, tp);
}

/* Returns a tcb nobody holds to the pool. */
static void tcb_destroy(struct toe_stack *st, struct toe_tcb *tp)
{
  struct toe_tcp_tables *tt = &st->tcp;
  if (tp->state != TOE_TCP_CLOSED)
    toe_tcp_set_state(st, tp, TOE_TCP_CLOSED); /* keeps the curr_estab gauge */
  notify_unlink(st, tp);
  tcb_release(st, tp, false);
  memset(tp, 0, sizeof(*tp));
  tp->sk.hnext = tt->free ? &tt->free->sk : NULL;
  tt->free = tp;
  if (tt->inuse)
    tt->inuse--;
  if (st->ctr.tcp.socks_inuse)
    st->ctr.tcp.socks_inuse--;
}

void toe_tcb_free(struct toe_stack *st, struct toe_tcb *tp)
{
  if (tp == NULL || !tcb_alive(tp))
    return;
  if (tp->owned) {
    /* the application still holds the handle: keep the tcb until it closes it */
    toe_tcp_close_final(st, tp);
    return;
  }
  tcb_destroy(st, tp);
}

void toe_tcp_close_final(struct toe_stack *st, struct toe_tcb *tp)
{
  if (tp == NULL || !tcb_alive(tp))
    return;
  if (!tp->owned) {
    tcb_destroy(st, tp);
    return;
  }
  if (tp->state != TOE_TCP_CLOSED)
    toe_tcp_set_state(st, tp, TOE_TCP_CLOSED);
  tcb_release(st, tp, true);
  uint32_t ev = TOE_EV_HUP | TOE_EV_READABLE;
  if (tp->close_err)
    ev |= TOE_EV_ERROR | TOE_EV_WRITABLE;
  notify_force(st, tp, ev);
}

void toe_tcp_drop(struct toe_stack *st, struct toe_tcb *tp, int err)
{
  if (tp == NULL || !tcb_alive(tp))
    return;
  struct toe_counters_tcp *c = &st->ctr.tcp;
  switch (tp->state) {
  case TOE_TCP_SYN_SENT:
  case TOE_TCP_SYN_RECEIVED:
    c->attempt_fails++; /* RFC 4022 tcpAttemptFails */
    break;
  case TOE_TCP_ESTABLISHED:
  case TOE_TCP_CLOSE_WAIT:
    c->estab_resets++; /* RFC 4022 tcpEstabResets */
    break;
  default:
    break;
  }
  tp->close_err = (int16_t)(err ? err : -TOE_ECONNABORTED);
  if (tp->owned)
    tp->sk.soft_err = tp->close_err;
  toe_tcp_close_final(st, tp);
}

/* Sends a RST if the peer thinks the connection is open, counts, and destroys. */
static void abort_conn(struct toe_stack *st, struct toe_tcb *tp)
{
  struct toe_counters_tcp *c = &st->ctr.tcp;
  switch (tp->state) {
  case TOE_TCP_SYN_RECEIVED:
  case TOE_TCP_ESTABLISHED:
  case TOE_TCP_FIN_WAIT_1:
  case TOE_TCP_FIN_WAIT_2:
  case TOE_TCP_CLOSE_WAIT:
    /* RFC 9293 3.10.5 ABORT: in these states "send a reset segment" */
    toe_tcp_send_rst_conn(st, tp);
    break;
  default:
    break; /* SYN-SENT, CLOSING, LAST-ACK, TIME-WAIT: just delete the TCB */
  }
  if (tp->state == TOE_TCP_SYN_SENT || tp->state == TOE_TCP_SYN_RECEIVED)
    c->attempt_fails++;
  else if (tp->state == TOE_TCP_ESTABLISHED || tp->state == TOE_TCP_CLOSE_WAIT)
    c->estab_resets++;
  tcb_destroy(st, tp);
}

/* A listener goes: its SYN cache entries, and the connections nobody accepted (reset). */
static void listener_close(struct toe_stack *st, struct toe_tcb *lp)
{
  toe_tcp_syncache_listener_closed(st, lp);
  struct toe_tcb *c;
  while ((c = lp->acceptq_head) != NULL) {
    acceptq_unlink(c);
    abort_conn(st, c);
  }
  tcb_destroy(st, lp);
}

/* ------------------------------------------------------------------------------------------ */
/* Open, bind, connect, listen, accept */

int toe_tcp_open(struct toe_stack *st, void *user, struct toe_sock **out)
{
  if (st == NULL || out == NULL)
    return -TOE_EINVAL;
  struct toe_tcb *tp = toe_tcb_alloc(st);
  if (tp == NULL)
    return -TOE_EMFILE;
  tp->owned = 1;
  tp->sk.user = user;
  *out = &tp->sk;
  return 0;
}

/*
 * bind() of an IPv6 TCP socket: :: (dual stack unless V6ONLY), ::ffff:a.b.c.d (IPv4 only) or an
 * IPv6 address of ours (toe_sock_bind_local6 says which are refused).
 */
static int bind6(struct toe_stack *st, struct toe_tcb *tp, const struct toe_sockaddr *local)
{
  struct toe_sock *s = &tp->sk;
  if (tp->state != TOE_TCP_CLOSED || (s->flags & (TOE_SOCK_F_BOUND | TOE_SOCK_F_CONNECTED)))
    return -TOE_EINVAL;
  int rc = toe_sock_make_v6(st, s);
  if (rc < 0)
    return rc;
  struct toe_in6_addr a;
  memcpy(a.b, local->addr6, 16);
  bool mapped = toe_in6_is_v4mapped(&a);
  uint32_t v4 = mapped ? toe_in6_mapped_v4(&a) : 0;
  if (local->port != 0 && !(tp->flags & TOE_TF_REUSEADDR) &&
      toe_tcp_timewait_port_used(st, v4, local->port, (s->flags & TOE_SOCK_F_REUSEPORT) != 0))
    return -TOE_EADDRINUSE;
  return toe_sock_bind_local6(st, s, &a, local->port);
}

int toe_tcp_bind(struct toe_stack *st, struct toe_sock *s, const struct toe_sockaddr *local)
{
  struct toe_tcb *tp = app_tcb(st, s);
  if (tp == NULL)
    return -TOE_EBADF;
  if (local != NULL && local->family == TOE_AF_INET6)
    return bind6(st, tp, local);
  if (local == NULL || local->family != TOE_AF_INET)
    return -TOE_EINVAL;
  if (s->family == TOE_AF_INET6)
    return -TOE_EAFNOSUPPORT;
  if (tp->state != TOE_TCP_CLOSED || (s->flags & (TOE_SOCK_F_BOUND | TOE_SOCK_F_CONNECTED)))
    return -TOE_EINVAL;
  /* a port held by TIME_WAIT connections is taken unless TOE_SO_REUSEADDR (as Linux) */
  if (local->port != 0 && !(tp->flags & TOE_TF_REUSEADDR) &&
      toe_tcp_timewait_port_used(st, local->addr, local->port,
                                 (s->flags & TOE_SOCK_F_REUSEPORT) != 0))
    return -TOE_EADDRINUSE;
  return toe_sock_bind_local(st, s, local->addr, local->port);
}

/* Where a connection cannot go: not a unicast host we can route to. */
static int check_destination(const struct toe_stack *st, uint32_t raddr)
{
  const struct toe_config *cfg = &st->cfg;
  uint8_t first = (uint8_t)(raddr >> 24);
  if (raddr == cfg->addr || first == 127 || first == 0)
    return -TOE_EINVAL; /* no loopback path in the engine */
  /* TCP is unicast only (RFC 1122 4.2.3.10): multicast, class E, broadcasts */
  if (first >= 224 || toe_ipv4_is_broadcast(raddr, cfg->addr, cfg->prefix_len))
    return -TOE_ENETUNREACH;
  if (!toe_ipv4_on_link(st, raddr) && cfg->gateway == 0)
    return -TOE_ENETUNREACH;
  /* ARP gave up on the next hop moments ago (arp.h: FAILED is remembered for as long as the
   * resolution took): the SYN would be refused by toe_arp_output() and the connect would only
   * learn it from retransmissions. Say so now. */
  const struct toe_neigh *e =
      toe_arp_lookup(st, toe_ipv4_on_link(st, raddr) ? raddr : cfg->gateway);
  if (e && e->state == TOE_NEIGH_FAILED)
    return -TOE_EHOSTUNREACH;
  return 0;
}

int toe_tcp_connect(struct toe_stack *st, struct toe_sock *s, const struct toe_sockaddr *remote)
{
  struct toe_tcb *tp = app_tcb(st, s);
  if (tp == NULL)
    return -TOE_EBADF;
  struct toe_sockaddr r4;
  if (remote != NULL && remote->family == TOE_AF_INET6) {
    /* An IPv6 socket reaches IPv4 peers through v4-mapped addresses (RFC 4291 2.5.5.2), IPv6
     * peers over IPv6 (tcp_v6.c). */
    struct toe_in6_addr a;
    memcpy(a.b, remote->addr6, 16);
    if (toe_sock_make_v6(st, s) < 0)
      return -TOE_EAFNOSUPPORT;
    if (!toe_in6_is_v4mapped(&a))
      return toe_tcp_connect6(st, tp, remote);
    if (s->v6flags & (TOE_SOCK6_V6ONLY | TOE_SOCK6_BOUND6))
      return -TOE_EAFNOSUPPORT;
    r4.family = TOE_AF_INET;
    r4.port = remote->port;
    r4.addr = toe_in6_mapped_v4(&a);
    remote = &r4;
  } else if (remote != NULL && s->family == TOE_AF_INET6) {
    return -TOE_EAFNOSUPPORT;
  }
  if (remote == NULL || remote->family != TOE_AF_INET || remote->addr == 0 || remote->port == 0)
    return -TOE_EINVAL;
  switch (tp->state) {
  case TOE_TCP_CLOSED:
    break;
  case TOE_TCP_SYN_SENT:
  case TOE_TCP_SYN_RECEIVED:
    return -TOE_EALREADY;
  default:
    return -TOE_EISCONN; /* LISTEN as well, as Linux */
  }
  if (s->flags & TOE_SOCK_F_CONNECTED)
    return -TOE_EISCONN; /* a connection that ended: open a new socket */
  int rc = check_destination(st, remote->addr);
  if (rc < 0)
    return rc;

  const struct toe_config *cfg = &st->cfg;
  uint32_t laddr = cfg->addr;
  uint32_t iss_floor = 0;
  bool reuse = false;
  if (!(s->flags & TOE_SOCK_F_BOUND)) {
    /* an ephemeral port (RFC 6056) whose 4-tuple is free: no connection and no TIME_WAIT */
    uint16_t port = 0;
    for (int i = 0; i < EPHEMERAL_TRIES && port == 0; i++) {
      uint16_t p = toe_socktab_ephemeral(st, TOE_IPPROTO_TCP, 0);
      if (p == 0)
        return -TOE_EADDRNOTAVAIL;
      if (toe_tcp_lookup(st, laddr, p, remote->addr, remote->port))
        continue;
      int tw = toe_tcp_timewait_connect(st, laddr, p, remote->addr, remote->port, &iss_floor);
      if (tw < 0)
        continue;
      reuse = tw == 1;
      port = p;
    }
    if (port == 0)
      return -TOE_EADDRNOTAVAIL;
    rc = toe_sock_bind_local(st, s, 0, port);
    if (rc < 0)
      return rc;
  } else {
    if (toe_tcp_lookup(st, laddr, s->lport, remote->addr, remote->port))
      return -TOE_EADDRNOTAVAIL;
    int tw = toe_tcp_timewait_connect(st, laddr, s->lport, remote->addr, remote->port, &iss_floor);
    if (tw < 0)
      return -TOE_EADDRNOTAVAIL;
    reuse = tw == 1;
  }
  if (s->laddr == 0) {
    s->laddr = laddr;
    s->flags |= TOE_SOCK_F_LADDR_AUTO;
  }
  if (s->family == TOE_AF_INET6)
    s->v6flags |= TOE_SOCK6_CONN4; /* an IPv4 connection under IPv6 names */
  s->raddr = remote->addr;
  s->rport = remote->port;
  s->flags |= TOE_SOCK_F_CONNECTED;

  /* RFC 9293 3.10.1 OPEN (active): ISS, SYN, SYN-SENT */
  uint32_t iss = toe_tcp_isn(st, s->laddr, s->lport, s->raddr, s->rport);
  if (reuse && toe_seq_lt(iss, iss_floor))
    iss = iss_floor; /* RFC 6191: beyond the old incarnation's sequence space */
  tp->iss = tp->snd_una = tp->snd_nxt = tp->snd_max = iss;
  tp->ts_offset = toe_tcp_ts_offset(st, s->laddr, s->lport, s->raddr, s->rport);
  /* Segments sized for what the path is known to carry (RFC 1191, engine/pmtu.c); the MSS we
   * offer stays the link's (RFC 1191 3.1: never lowered for the path). */
  tp->pmtu = toe_pmtu_get(st, s->raddr);
  if (tp->pmtu < cfg->mtu)
    st->ctr.tcp.pmtu_from_cache++;
  tp->rcv_mss = toe_tcp_mss_offer(st, tp);
  /* what our SYN offers (the input path keeps those the SYN-ACK answers) */
  if (cfg->tcp_timestamps)
    tp->flags |= TOE_TF_TS_OK;
  if (cfg->tcp_sack)
    tp->flags |= TOE_TF_SACK_OK;
  if (cfg->tcp_wscale) {
    tp->flags |= TOE_TF_WS_OK;
    tp->rcv_wscale = toe_tcp_wscale_offer(cfg);
  }
  toe_tcp_set_state(st, tp, TOE_TCP_SYN_SENT);
  toe_tcp_hash_insert(st, tp);
  st->ctr.tcp.active_opens++;
  toe_tcp_output(st, tp); /* the SYN; the RTO is armed */
  toe_tcp_notify_flush(st);
  return -TOE_EINPROGRESS;
}

int toe_tcp_listen(struct toe_stack *st, struct toe_sock *s, int backlog)
{
  struct toe_tcb *tp = app_tcb(st, s);
  if (tp == NULL)
    return -TOE_EBADF;
  uint32_t max = st->cfg.tcp_max_backlog ? st->cfg.tcp_max_backlog : DEFAULT_BACKLOG;
  uint32_t b = backlog < 1 ? 1u : (uint32_t)backlog;
  if (b > max)
    b = max;
  if (tp->state == TOE_TCP_LISTEN) {
    tp->backlog = (uint16_t)b; /* listen again: a new backlog, as Linux allows */
    return 0;
  }
  if (tp->state != TOE_TCP_CLOSED || !(s->flags & TOE_SOCK_F_BOUND) ||
      (s->flags & TOE_SOCK_F_CONNECTED))
    return -TOE_EINVAL;
  tp->backlog = (uint16_t)b;
  toe_tcp_set_state(st, tp, TOE_TCP_LISTEN);
  return 0;
}

int toe_tcp_accept(struct toe_stack *st, struct toe_sock *listener, void *user,
                   struct toe_sock **out)
{
  struct toe_tcb *lp = app_tcb(st, listener);
  if (lp == NULL)
    return -TOE_EBADF;
  if (out == NULL || lp->state != TOE_TCP_LISTEN)
    return -TOE_EINVAL;
  struct toe_tcb *c = lp->acceptq_head;
  if (c == NULL) {
    lp->ev_seen &= (uint8_t)~TOE_EV_READABLE;
    return -TOE_EAGAIN;
  }
  acceptq_unlink(c);
  if (lp->acceptq_head == NULL)
    lp->ev_seen &= (uint8_t)~TOE_EV_READABLE;
  c->owned = 1;
  c->sk.user = user;
  c->ev_seen = 0;
  /* what happened while it waited: data or the peer's FIN to read */
  if (c->rcvq_bytes > 0 || (c->flags & TOE_TF_RCVD_FIN))
    toe_tcp_notify(st, c, TOE_EV_READABLE);
  *out = &c->sk;
  toe_tcp_notify_flush(st);
  return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Send and receive */

/* Bytes a send could queue now, ignoring the state (and the buffer allowance: toe_tcp_send). */
static uint32_t snd_space(const struct toe_tcb *tp)
{
  return tp->sndbuf > tp->sndq_bytes ? tp->sndbuf - tp->sndq_bytes : 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Buffer accounting (docs/transport.md "Buffer accounting", engine/pbuf_pool.h) */

static uint32_t tcb_index(const struct toe_stack *st, const struct toe_tcb *tp)
{
  return (uint32_t)(tp - st->tcp.tcbs);
}

uint32_t toe_tcp_rx_owner(const struct toe_stack *st, const struct toe_tcb *tp)
{
  return toe_pbuf_owner_tcp_rx(tcb_index(st, tp));
}

uint32_t toe_tcp_rx_buf_limit(const struct toe_stack *st, const struct toe_tcb *tp)
{
  uint32_t b = tp->rcvbuf ? tp->rcvbuf : DEFAULT_BUF;
  return toe_pbuf_bufs_for_bytes(st, b);
}

/* The send queue's allowance in buffers: its byte allowance at half a buffer per segment, so a
 * peer that asks for 88-byte segments gets at most 264 buffers (23 KB) out of a 256 KB SO_SNDBUF,
 * not 3,000; and no more than four of the largest windows the peer ever offered, in segments
 * (queuing more than the peer takes buys nothing, the idea of sndbuf_expand below): a peer with a
 * 2 KiB window and an 88-byte MSS holds about a hundred buffers, not 264. */
static uint32_t tx_buf_limit(const struct toe_stack *st, const struct toe_tcb *tp)
{
  uint32_t n = toe_pbuf_bufs_for_bytes(st, tp->sndbuf);
  uint32_t mss = toe_tcp_eff_mss(tp);
  if (mss == 0)
    mss = 1;
  uint64_t wsegs = 4ull * ((uint64_t)tp->max_sndwnd / mss + 1u);
  if (wsegs < 16u)
    wsegs = 16u;
  return wsegs < n ? (uint32_t)wsegs : n;
}

uint32_t toe_tcp_rx_room_bytes(const struct toe_stack *st, const struct toe_tcb *tp)
{
  uint32_t room = toe_pbuf_charge_room(st, toe_tcp_rx_owner(st, tp), toe_tcp_rx_buf_limit(st, tp));
  /* a buffer holds one full segment of the MSS we announced, or several small ones (they are
   * copied together): mid-sized segments can make this promise too much, and are then dropped
   * and counted (tcp.rx_drop_nomem), never the pool */
  uint32_t per = tp->rcv_mss;
  if (per == 0)
    per = 536;
  uint64_t b = (uint64_t)room * per;
  return b > UINT32_MAX ? UINT32_MAX : (uint32_t)b;
}

uint32_t toe_tcp_rcvbuf_max(const struct toe_stack *st)
{
  uint32_t max = st->cfg.tcp_rcvbuf_max ? st->cfg.tcp_rcvbuf_max : DEFAULT_BUF_MAX;
  /* A window the socket's buffer cap could not hold even at half a buffer per segment would be
   * a promise the pool cannot keep: the window is clamped instead (RFC 9293 3.8.6). */
  uint64_t cap = (uint64_t)st->pool.sock_max * (st->pool.size / 2u);
  if (cap < MIN_BUF)
    cap = MIN_BUF;
  return cap < max ? (uint32_t)cap : max;
}

/*
 * Send-buffer auto-tuning (the idea of Linux's tcp_sndbuf_expand, in our terms). Called when a
 * send finds the buffer full. The buffer holds what is in flight (kept for retransmission until
 * acknowledged) plus what waits to go, so a buffer smaller than the window caps the flow at one
 * buffer per RTT no matter how large cwnd grows. When the buffer, not the network, is what limits
 * the sender -- nothing (or less than a segment, Nagle's tail) is waiting to go and cwnd has room
 * for another full segment -- the buffer grows to two windows: one in flight and one queued to
 * leave as the ACKs free room. "Window" is cwnd, bounded by the peer's window when that is
 * smaller (queuing more than the peer will take buys nothing). Bounded by cfg.tcp_sndbuf_max and
 * by a quarter of the pbuf pool (each queued segment holds a buffer; one connection must not be
 * able to starve the others and the receive path of buffers). Never shrinks; not when the
 * application set TOE_SO_SNDBUF (like SO_SNDBUF on Linux, which locks the size).
 */
static void sndbuf_expand(struct toe_stack *st, struct toe_tcb *tp)
{
  if (tp->sndbuf_locked)
    return;
  uint32_t mss = toe_tcp_eff_mss(tp);
  uint32_t flight = tp->snd_max - tp->snd_una;
  uint32_t unsent = tp->sndq_bytes > flight ? tp->sndq_bytes - flight : 0;
  if (unsent >= mss)
    return; /* output is holding data back: cwnd or the peer's window limits, not the buffer */
  if ((uint64_t)toe_tcp_pipe(tp) + mss > tp->cwnd)
    return; /* cwnd is full: a bigger buffer would only queue */
  uint32_t wnd = tp->cwnd;
  if (tp->snd_wnd > 0 && tp->snd_wnd < wnd)
    wnd = tp->snd_wnd;
  uint64_t target = (uint64_t)wnd * 2u;
  uint32_t max = st->cfg.tcp_sndbuf_max ? st->cfg.tcp_sndbuf_max : DEFAULT_BUF_MAX;
  /* payload one pool buffer carries in the send queue (one segment per buffer when it fits) */
  uint32_t per_buf = min_u32(mss, st->pool.size);
  uint64_t pool_cap = (uint64_t)(st->pool.count / 4u) * per_buf;
  if (target > max)
    target = max;
  if (target > pool_cap)
    target = pool_cap;
  if (target <= tp->sndbuf)
    return;
  tp->sndbuf = (uint32_t)target;
  st->ctr.tcp.sndbuf_grows++;
}

/* The connection was established once (our SYN was acknowledged). */
static bool was_established(const struct toe_tcb *tp)
{
  return (tp->sk.flags & TOE_SOCK_F_CONNECTED) && tp->snd_una != tp->iss;
}

/* Why a send cannot queue data now, or 0. */
static int send_state_error(const struct toe_tcb *tp)
{
  if (tp->close_err) {
    if (!was_established(tp))
      return -TOE_ENOTCONN;
    return tp->close_err == -TOE_ECONNRESET ? -TOE_ECONNRESET : -TOE_EPIPE;
  }
  if (tp->flags & (TOE_TF_FIN_QUEUED | TOE_TF_ORPHAN))
    return -TOE_EPIPE;
  switch (tp->state) {
  case TOE_TCP_ESTABLISHED:
  case TOE_TCP_CLOSE_WAIT:
    return 0;
  case TOE_TCP_CLOSED:
    return was_established(tp) ? -TOE_EPIPE : -TOE_ENOTCONN;
  case TOE_TCP_LISTEN:
  case TOE_TCP_SYN_SENT:
  case TOE_TCP_SYN_RECEIVED:
    return -TOE_ENOTCONN;
  default:
    return -TOE_EPIPE;
  }
}

/* Appends up to `n` bytes to segment chain `seg` (within its last buffer, then new ones).
 * Returns the bytes appended (fewer if the pool ran out). */
static uint32_t seg_append(struct toe_stack *st, struct toe_tcb *tp, struct toe_pbuf *seg,
                           const uint8_t *p, uint32_t n)
{
  struct toe_pbuf *last = seg;
  while (last->next)
    last = last->next;
  uint32_t done = 0;
  uint32_t owner = toe_pbuf_owner_tcp_tx(tcb_index(st, tp));
  while (done < n) {
    uint32_t room = toe_pbuf_tailroom(last);
    if (room == 0) {
      struct toe_pbuf *b = toe_pbuf_alloc_charged(st, 0, owner, tx_buf_limit(st, tp));
      if (b == NULL)
        break;
      last->next = b;
      last = b;
      continue;
    }
    uint32_t k = min_u32(room, n - done);
    uint32_t at = seg->tot_len; /* offset of these bytes in the segment's payload */
    uint8_t *d = toe_pbuf_put(last, (uint16_t)k);
    /* Copy and checksum in one pass: output then only adds the header's sum (tcp_output.c). */
    struct toe_tcp_seg *m = toe_tcp_seg(seg);
    if (st->cfg.link_caps & TOE_LINK_CAP_TX_CSUM) {
      memcpy(d, p + done, k); /* the link sums the segment: no sum to keep */
    } else if (at == 0) {
      m->csum = toe_csum_copy(d, p + done, k, 0);
      m->flags |= TOE_SEG_CSUM;
    } else if (m->flags & TOE_SEG_CSUM) {
      m->csum = toe_csum_combine(m->csum, toe_csum_copy(d, p + done, k, 0), at);
    } else {
      memcpy(d, p + done, k);
    }
    done += k;
    /* every buffer's tot_len counts to the end of its chain */
    for (struct toe_pbuf *q = seg; q != last; q = q->next)
      q->tot_len += k;
  }
  return done;
}

/*
 * Copies `n` bytes into the send queue as segments of one MSS each: the unsent tail segment is
 * filled first (small writes coalesce there, which is what Nagle waits for). Returns the bytes
 * queued (fewer than n if the pool ran out).
 */
static uint32_t sndq_append(struct toe_stack *st, struct toe_tcb *tp, const uint8_t *p, uint32_t n)
{
  uint32_t mss = toe_tcp_eff_mss(tp);
  uint32_t done = 0;
  struct toe_pbuf *tail = tp->sndq_tail;
  if (tail && tp->snd_next_seg != NULL && tail->tot_len < mss) {
    /* unsent segments are always at the end: the tail is unsent */
    uint32_t want = min_u32(n, mss - tail->tot_len);
    uint32_t k = seg_append(st, tp, tail, p, want);
    done += k;
    if (k < want) {
      tp->sndq_bytes += done;
      return done;
    }
  }
  uint32_t owner = toe_pbuf_owner_tcp_tx(tcb_index(st, tp));
  while (done < n) {
    /* every segment buffer is charged to the connection's send side (pbuf_charge.c) */
    struct toe_pbuf *seg = toe_pbuf_alloc_charged(st, 0, owner, tx_buf_limit(st, tp));
    if (seg == NULL)
      break;
    uint32_t k = seg_append(st, tp, seg, p + done, min_u32(n - done, mss));
    if (k == 0) {
      toe_pbuf_free(st, seg);
      break;
    }
    struct toe_tcp_seg *m = toe_tcp_seg(seg);
    m->seq = tail ? toe_tcp_seg(tail)->seq + tail->tot_len : tp->snd_max;
    seg->qnext = NULL;
    if (tail)
      tail->qnext = seg;
    else
      tp->sndq_head = seg;
    tp->sndq_tail = tail = seg;
    if (tp->snd_next_seg == NULL)
      tp->snd_next_seg = seg;
    done += k;
  }
  tp->sndq_bytes += done;
  return done;
}

int toe_tcp_send(struct toe_stack *st, struct toe_sock *s, const void *data, size_t len,
                 unsigned flags)
{
  struct toe_tcb *tp = app_tcb(st, s);
  if (tp == NULL)
    return -TOE_EBADF;
  if (data == NULL && len != 0)
    return -TOE_EINVAL;
  int err = send_state_error(tp);
  if (err)
    return err;
  if (len == 0)
    return 0;
  uint32_t space = snd_space(tp);
  if (space == 0) {
    /* the buffer is full (the last send was partial, or this one would be -EAGAIN): it may be
     * the buffer, not the network, that limits */
    sndbuf_expand(st, tp);
    space = snd_space(tp);
  }
  if (space == 0) {
    tp->flags |= TOE_TF_WRITABLE_WAIT;
    return -TOE_EAGAIN;
  }
  uint32_t want = len > (size_t)space ? space : (uint32_t)len;
  if (want > 0x7fffffffu)
    want = 0x7fffffffu; /* the return value is an int */
  uint32_t n = sndq_append(st, tp, data, want);
  if (n < want)
    st->ctr.tcp.snd_buf_limited++;
  if (n == 0) {
    /* Out of buffers. If this connection holds some, its own ACKs free them: wait for
     * WRITABLE like a full send buffer. If it holds none, the pool is short for everyone
     * (pressure or the reserve) and no event of ours will say when that ends. */
    if (toe_pbuf_owner_held(st, toe_pbuf_owner_tcp_tx(tcb_index(st, tp))) > 0) {
      tp->flags |= TOE_TF_WRITABLE_WAIT;
      return -TOE_EAGAIN;
    }
    return -TOE_ENOBUFS;
  }
  if (flags & TOE_SEND_MORE)
    tp->flags |= TOE_TF_MORE;
  else
    tp->flags &= ~TOE_TF_MORE;
  toe_tcp_output(st, tp);
  toe_tcp_notify_flush(st);
  return (int)n;
}

/*
 * Receive-buffer auto-tuning (the idea of Linux's dynamic right-sizing): the application read
 * `rcv_space` bytes in the last smoothed RTT. The sender can deliver at most one window per RTT,
 * so when the reads approach the buffer the window is what limits the flow: the buffer doubles,
 * up to cfg.tcp_rcvbuf_max. Not when the application set TOE_SO_RCVBUF.
 */
static void rcvbuf_autotune(struct toe_stack *st, struct toe_tcb *tp, uint32_t copied)
{
  uint32_t max = toe_tcp_rcvbuf_max(st);
  if (tp->rcvbuf_locked || tp->rcvbuf >= max || tp->srtt_us == 0)
    return;
  toe_time_t now = toe_stack_now(st);
  tp->rcv_space += copied;
  if (tp->rcv_space_ts == 0) {
    tp->rcv_space_ts = now;
    return;
  }
  if (now - tp->rcv_space_ts < (toe_time_t)tp->srtt_us * 1000u)
    return;
  if ((uint64_t)tp->rcv_space * 4u >= (uint64_t)tp->rcvbuf * 3u) {
    uint64_t nb = (uint64_t)tp->rcvbuf * 2u;
    tp->rcvbuf = nb > max ? max : (uint32_t)nb;
    st->ctr.tcp.rcvbuf_grows++;
  }
  tp->rcv_space = 0;
  tp->rcv_space_ts = now;
}

int toe_tcp_recv(struct toe_stack *st, struct toe_sock *s, void *buf, size_t cap)
{
  struct toe_tcb *tp = app_tcb(st, s);
  if (tp == NULL)
    return -TOE_EBADF;
  if (buf == NULL && cap != 0)
    return -TOE_EINVAL;
  if (tp->state == TOE_TCP_LISTEN)
    return -TOE_ENOTCONN;
  if (tp->flags & TOE_TF_SHUT_RD) {
    free_rcvq(st, tp); /* SHUT_RD: what is queued is discarded, the stream reads as ended */
    return 0;
  }
  if (tp->rcvq_bytes > 0) {
    if (cap == 0)
      return 0;
    uint32_t want = cap > tp->rcvq_bytes ? tp->rcvq_bytes : (uint32_t)cap;
    if (want > 0x7fffffffu)
      want = 0x7fffffffu;
    uint8_t *dst = buf;
    uint32_t done = 0;
    struct toe_pbuf *pb;
    while (done < want && (pb = tp->rcvq_head) != NULL) {
      uint32_t k = min_u32(pb->tot_len, want - done);
      toe_pbuf_copy_out(pb, 0, dst + done, k);
      done += k;
      if (k == pb->tot_len) {
        tp->rcvq_head = pb->qnext;
        if (tp->rcvq_head == NULL)
          tp->rcvq_tail = NULL;
        pb->qnext = NULL;
        toe_pbuf_free(st, pb);
      } else {
        struct toe_pbuf *nh = toe_pbuf_drop_front(st, pb, k);
        tp->rcvq_head = nh;
        if (tp->rcvq_tail == pb)
          tp->rcvq_tail = nh;
      }
    }
    tp->rcvq_bytes -= done;
    if (tp->rcvq_bytes == 0)
      tp->ev_seen &= (uint8_t)~TOE_EV_READABLE; /* drained: the next data is news */
    rcvbuf_autotune(st, tp, done);
    /* the window may have opened enough for an update (RFC 9293 3.8.6.2.2), even while an ACK
     * is delayed (TOE_TF_READ: output looks at the window then too) */
    tp->flags |= TOE_TF_READ;
    toe_tcp_output(st, tp);
    toe_tcp_notify_flush(st);
    return (int)done;
  }
  tp->ev_seen &= (uint8_t)~TOE_EV_READABLE;
  if (tp->flags & TOE_TF_RCVD_FIN)
    return 0; /* end of stream */
  if (tp->close_err) {
    if (!was_established(tp))
      return -TOE_ENOTCONN;
    return tp->close_err == -TOE_ECONNRESET ? -TOE_ECONNRESET : tp->close_err;
  }
  switch (tp->state) {
  case TOE_TCP_CLOSED:
    return was_established(tp) ? 0 : -TOE_ENOTCONN;
  default:
    return -TOE_EAGAIN;
  }
}

uint32_t toe_tcp_rx_pending(const struct toe_sock *s)
{
  if (s == NULL || s->proto != TOE_IPPROTO_TCP)
    return 0;
  return ((const struct toe_tcb *)(const void *)s)->rcvq_bytes;
}

uint32_t toe_tcp_tx_pending(const struct toe_sock *s)
{
  if (s == NULL || s->proto != TOE_IPPROTO_TCP)
    return 0;
  return ((const struct toe_tcb *)(const void *)s)->sndq_bytes;
}

uint32_t toe_tcp_tx_space(const struct toe_sock *s)
{
  if (s == NULL || s->proto != TOE_IPPROTO_TCP)
    return 0;
  const struct toe_tcb *tp = (const struct toe_tcb *)(const void *)s;
  if (send_state_error(tp) != 0)
    return 0;
  return snd_space(tp);
}

/* ------------------------------------------------------------------------------------------ */
/* Shutdown, close, abort */

int toe_tcp_shutdown(struct toe_stack *st, struct toe_sock *s, int how)
{
  struct toe_tcb *tp = app_tcb(st, s);
  if (tp == NULL)
    return -TOE_EBADF;
  if (how != TOE_SHUT_RD && how != TOE_SHUT_WR && how != TOE_SHUT_RDWR)
    return -TOE_EINVAL;
  switch (tp->state) {
  case TOE_TCP_CLOSED:
  case TOE_TCP_LISTEN:
    return -TOE_ENOTCONN;
  default:
    break;
  }
  if (how == TOE_SHUT_RD || how == TOE_SHUT_RDWR) {
    tp->flags |= TOE_TF_SHUT_RD;
    free_rcvq(st, tp);
  }
  if ((how == TOE_SHUT_WR || how == TOE_SHUT_RDWR) && !(tp->flags & TOE_TF_FIN_QUEUED)) {
    switch (tp->state) {
    case TOE_TCP_SYN_SENT:
    case TOE_TCP_SYN_RECEIVED:
    case TOE_TCP_ESTABLISHED:
    case TOE_TCP_CLOSE_WAIT:
      /* RFC 9293 3.10.4: the FIN follows the queued data (sent by output, which moves to
       * FIN-WAIT-1 / LAST-ACK when it leaves; after the handshake for an early shutdown) */
      tp->flags |= TOE_TF_FIN_QUEUED;
      break;
    default:
      break; /* our FIN was sent already */
    }
  }
  toe_tcp_output(st, tp);
  toe_tcp_notify_flush(st);
  return 0;
}

void toe_tcp_close(struct toe_stack *st, struct toe_sock *s)
{
  struct toe_tcb *tp = app_tcb(st, s);
  if (tp == NULL)
    return;
  /* the handle is invalid to the caller from here on: no more events */
  notify_unlink(st, tp);
  tp->owned = 0;
  tp->sk.user = NULL;
  struct toe_counters_tcp *c = &st->ctr.tcp;
  switch (tp->state) {
  case TOE_TCP_LISTEN:
    listener_close(st, tp);
    toe_tcp_notify_flush(st);
    return;
  case TOE_TCP_CLOSED:
  case TOE_TCP_TIME_WAIT:
    tcb_destroy(st, tp);
    return;
  case TOE_TCP_SYN_SENT:
    /* RFC 9293 3.10.4 CLOSE in SYN-SENT: delete the TCB */
    c->attempt_fails++;
    tcb_destroy(st, tp);
    return;
  default:
    break;
  }
  if (tp->flags & TOE_TF_LINGER_ABORT) {
    abort_conn(st, tp);
    toe_tcp_notify_flush(st);
    return;
  }
  if (tp->rcvq_bytes > 0) {
    /* RFC 9293 3.6 / RFC 2525 2.17: closing with data unread loses it: tell the peer with a
     * RST instead of a FIN */
    c->close_unread_rsts++;
    abort_conn(st, tp);
    toe_tcp_notify_flush(st);
    return;
  }
  tp->flags |= TOE_TF_ORPHAN;
  switch (tp->state) {
  case TOE_TCP_SYN_RECEIVED:
  case TOE_TCP_ESTABLISHED:
  case TOE_TCP_CLOSE_WAIT:
    tp->flags |= TOE_TF_FIN_QUEUED; /* the FIN after the queued data */
    break;
  default:
    break; /* FIN-WAIT-1/2, CLOSING, LAST-ACK: closing already */
  }
  toe_tcp_output(st, tp); /* the FIN; an orphan in FIN-WAIT-2 gets its timeout */
  toe_tcp_notify_flush(st);
}

void toe_tcp_abort(struct toe_stack *st, struct toe_sock *s)
{
  struct toe_tcb *tp = app_tcb(st, s);
  if (tp == NULL)
    return;
  notify_unlink(st, tp);
  tp->owned = 0;
  tp->sk.user = NULL;
  if (tp->state == TOE_TCP_LISTEN)
    listener_close(st, tp);
  else
    abort_conn(st, tp);
  toe_tcp_notify_flush(st);
}

/* ------------------------------------------------------------------------------------------ */
/* Options */

static int set_flag(struct toe_tcb *tp, uint32_t flag, int64_t value)
{
  if (value != 0 && value != 1)
    return -TOE_EINVAL;
  if (value)
    tp->flags |= flag;
  else
    tp->flags &= ~flag;
  return 0;
}

/* A 0/1 option kept in the common socket flags (port sharing, sock_table.c). */
static int set_sock_flag(struct toe_sock *s, uint8_t flag, int64_t value)
{
  if (value != 0 && value != 1)
    return -TOE_EINVAL;
  if (value)
    s->flags |= flag;
  else
    s->flags &= (uint8_t)~flag;
  return 0;
}

/* The options a UDP socket has in the engine: SO_REUSEADDR and SO_REUSEPORT (port sharing),
 * IP_RECVERR (which errors it hears of). */
static uint8_t udp_opt_flag(int opt)
{
  switch (opt) {
  case TOE_SO_REUSEADDR:
    return TOE_SOCK_F_REUSEADDR;
  case TOE_SO_REUSEPORT:
    return TOE_SOCK_F_REUSEPORT;
  case TOE_IP_RECVERR:
    return TOE_SOCK_F_RECVERR;
  default:
    return 0;
  }
}

static int udp_setopt(struct toe_sock *s, int opt, int64_t value)
{
  uint8_t flag = udp_opt_flag(opt);
  return flag ? set_sock_flag(s, flag, value) : -TOE_ENOPROTOOPT;
}

int toe_sock_setopt(struct toe_stack *st, struct toe_sock *s, int opt, int64_t value)
{
  struct toe_tcb *tp = app_tcb(st, s);
  if (opt == TOE_IPV6_V6ONLY) {
    if (tp == NULL && !(s && s->proto == TOE_IPPROTO_UDP))
      return -TOE_EBADF;
    return toe_sock_set_v6only(st, s, value);
  }
  if (tp == NULL)
    return (s && s->proto == TOE_IPPROTO_UDP) ? udp_setopt(s, opt, value) : -TOE_EBADF;
  if (opt == TOE_SO_REUSEPORT)
    return set_sock_flag(s, TOE_SOCK_F_REUSEPORT, value); /* bind and lookup read it */
  const struct toe_config *cfg = &st->cfg;
  int rc = 0;
  switch (opt) {
  case TOE_SO_RCVBUF: {
    uint32_t max = toe_tcp_rcvbuf_max(st);
    if (value < 0)
      return -TOE_EINVAL;
    uint32_t v = value > (int64_t)max ? max : (uint32_t)value;
    tp->rcvbuf = v < MIN_BUF ? MIN_BUF : v;
    tp->rcvbuf_locked = 1;
    break;
  }
  case TOE_SO_SNDBUF: {
    uint32_t max = cfg->tcp_sndbuf_max ? cfg->tcp_sndbuf_max : DEFAULT_BUF_MAX;
    if (value < 0)
      return -TOE_EINVAL;
    uint32_t v = value > (int64_t)max ? max : (uint32_t)value;
    tp->sndbuf = v < MIN_BUF ? MIN_BUF : v;
    tp->sndbuf_locked = 1;
    break;
  }
  case TOE_SO_KEEPALIVE:
    rc = set_flag(tp, TOE_TF_KEEPALIVE, value);
    if (rc == 0) {
      if (!value)
        toe_tcp_timer_clear(st, tp, TOE_TT_KEEP);
      else if (toe_tcp_synchronized(tp) && tp->deadline[TOE_TT_KEEP] == 0)
        toe_tcp_timer_set(st, tp, TOE_TT_KEEP, toe_stack_now(st) + TOE_SEC(tp->keep_idle));
    }
    break;
  case TOE_SO_REUSEADDR:
    rc = set_flag(tp, TOE_TF_REUSEADDR, value);
    break;
  case TOE_TCP_NODELAY:
    rc = set_flag(tp, TOE_TF_NODELAY, value);
    if (rc == 0 && value && toe_tcp_synchronized(tp))
      toe_tcp_output(st, tp); /* what Nagle held goes now */
    break;
  case TOE_TCP_KEEPIDLE:
    if (value < 1 || value > MAX_KEEP_SECS)
      return -TOE_EINVAL;
    tp->keep_idle = (uint16_t)value;
    if ((tp->flags & TOE_TF_KEEPALIVE) && toe_tcp_synchronized(tp) && tp->keep_probes == 0)
      toe_tcp_timer_set(st, tp, TOE_TT_KEEP, tp->rcv_tstamp + TOE_SEC(tp->keep_idle));
    break;
  case TOE_TCP_KEEPINTVL:
    if (value < 1 || value > MAX_KEEP_SECS)
      return -TOE_EINVAL;
    tp->keep_intvl = (uint16_t)value;
    break;
  case TOE_TCP_KEEPCNT:
    if (value < 1 || value > MAX_KEEP_CNT)
      return -TOE_EINVAL;
    tp->keep_cnt = (uint8_t)value;
    break;
  case TOE_TCP_CONGESTION: {
    if (value < 0 || value > 255)
      return -TOE_EINVAL;
    const struct toe_cc_ops *cc = toe_cc_by_id((uint32_t)value);
    if (cc == NULL)
      return -TOE_EINVAL;
    if (cc != tp->cc) {
      tp->cc = cc;
      if (toe_tcp_synchronized(tp) && cc->init) {
        /* a new module starts its own state from the window we have now */
        uint32_t cwnd = tp->cwnd, ssthresh = tp->ssthresh;
        memset(tp->cc_priv, 0, sizeof(tp->cc_priv));
        cc->init(st, tp);
        if (cwnd)
          tp->cwnd = cwnd;
        tp->ssthresh = ssthresh;
      }
    }
    break;
  }
  case TOE_SO_LINGER_ABORT:
    rc = set_flag(tp, TOE_TF_LINGER_ABORT, value);
    break;
  case TOE_TCP_MAXSEG:
    /* a clamp on the MSS announced and used, before the connection exists (0 = none) */
    if (value != 0 && (value < MIN_USER_MSS || value > 65535))
      return -TOE_EINVAL;
    if (tp->state != TOE_TCP_CLOSED && tp->state != TOE_TCP_LISTEN)
      return -TOE_EINVAL;
    tp->user_mss = (uint16_t)value;
    tp->rcv_mss = toe_tcp_mss_offer(st, tp);
    break;
  default:
    return -TOE_ENOPROTOOPT;
  }
  if (rc == 0)
    toe_tcp_notify_flush(st);
  return rc;
}

int toe_sock_getopt(const struct toe_stack *st, const struct toe_sock *s, int opt, int64_t *value)
{
  const struct toe_tcb *tp = app_tcb(st, s);
  if (opt == TOE_IPV6_V6ONLY && (tp != NULL || (s && s->proto == TOE_IPPROTO_UDP))) {
    if (value == NULL)
      return -TOE_EINVAL;
    *value = (s->v6flags & TOE_SOCK6_V6ONLY) ? 1 : 0;
    return 0;
  }
  if (tp == NULL && s && s->proto == TOE_IPPROTO_UDP) {
    uint8_t flag = udp_opt_flag(opt);
    if (flag == 0)
      return -TOE_ENOPROTOOPT;
    if (value == NULL)
      return -TOE_EINVAL;
    *value = (s->flags & flag) ? 1 : 0;
    return 0;
  }
  if (tp == NULL)
    return -TOE_EBADF;
  if (value == NULL)
    return -TOE_EINVAL;
  if (opt == TOE_SO_REUSEPORT) {
    *value = (s->flags & TOE_SOCK_F_REUSEPORT) ? 1 : 0;
    return 0;
  }
  switch (opt) {
  case TOE_SO_RCVBUF:
    *value = tp->rcvbuf;
    break;
  case TOE_SO_SNDBUF:
    *value = tp->sndbuf;
    break;
  case TOE_SO_KEEPALIVE:
    *value = (tp->flags & TOE_TF_KEEPALIVE) ? 1 : 0;
    break;
  case TOE_SO_REUSEADDR:
    *value = (tp->flags & TOE_TF_REUSEADDR) ? 1 : 0;
    break;
  case TOE_TCP_NODELAY:
    *value = (tp->flags & TOE_TF_NODELAY) ? 1 : 0;
    break;
  case TOE_TCP_KEEPIDLE:
    *value = tp->keep_idle;
    break;
  case TOE_TCP_KEEPINTVL:
    *value = tp->keep_intvl;
    break;
  case TOE_TCP_KEEPCNT:
    *value = tp->keep_cnt;
    break;
  case TOE_TCP_CONGESTION:
    *value = tp->cc ? tp->cc->id : (st->cfg.tcp_cc ? st->cfg.tcp_cc : TOE_CC_CUBIC);
    break;
  case TOE_SO_LINGER_ABORT:
    *value = (tp->flags & TOE_TF_LINGER_ABORT) ? 1 : 0;
    break;
  case TOE_TCP_MAXSEG:
    /* the send MSS in use (as toe_tcp_info.snd_mss); before the handshake the clamp or the
     * RFC 9293 default */
    if (toe_tcp_synchronized(tp))
      *value = tp->snd_mss;
    else
      *value = tp->user_mss ? tp->user_mss : 536;
    break;
  default:
    return -TOE_ENOPROTOOPT;
  }
  return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Information */

const char *toe_tcp_state_name(int state)
{
  static const char *const names[] = {
      "CLOSED",     "LISTEN",     "SYN_SENT", "SYN_RECEIVED", "ESTABLISHED", "FIN_WAIT_1",
      "FIN_WAIT_2", "CLOSE_WAIT", "CLOSING",  "LAST_ACK",     "TIME_WAIT",
  };
  if (state < 0 || state >= (int)(sizeof(names) / sizeof(names[0])))
    return "UNKNOWN";
  return names[state];
}

static void fill_info(const struct toe_stack *st, const struct toe_tcb *tp,
                      struct toe_tcp_info *info)
{
  memset(info, 0, sizeof(*info));
  info->state = tp->state;
  info->snd_wscale = tp->snd_wscale;
  info->rcv_wscale = tp->rcv_wscale;
  if (tp->flags & TOE_TF_TS_OK)
    info->options |= TOE_TCPI_OPT_TIMESTAMPS;
  if (tp->flags & TOE_TF_SACK_OK)
    info->options |= TOE_TCPI_OPT_SACK;
  if (tp->flags & TOE_TF_WS_OK)
    info->options |= TOE_TCPI_OPT_WSCALE;
  info->snd_mss = tp->snd_mss; /* the MSS agreed (segments carry it less the TS option) */
  info->rcv_mss = tp->rcv_mss;
  info->rtt_us = tp->srtt_us;
  info->rttvar_us = tp->rttvar_us;
  info->rto_us = toe_tcp_rto_us(st, tp);
  info->snd_cwnd = tp->cwnd;
  info->snd_ssthresh = tp->ssthresh;
  info->snd_wnd = tp->snd_wnd;
  info->rcv_wnd = tp->rcv_wnd;
  info->unacked = tp->snd_max - tp->snd_una;
  info->sacked = tp->sacked_bytes;
  info->lost = tp->lost_bytes;
  info->retrans = tp->retrans_out;
  info->rx_queued = tp->rcvq_bytes;
  info->tx_queued = tp->sndq_bytes;
  info->sndbuf = tp->sndbuf;
  info->total_retrans = tp->total_retrans;
  info->bytes_acked = tp->bytes_acked;
  info->bytes_received = tp->bytes_received;
  info->rto_count = tp->rto_count;
  info->ca_algo = tp->cc ? tp->cc->id : 0;
}

int toe_tcp_get_info(const struct toe_stack *st, const struct toe_sock *s,
                     struct toe_tcp_info *info)
{
  const struct toe_tcb *tp = app_tcb(st, s);
  if (tp == NULL)
    return -TOE_EBADF;
  if (info == NULL)
    return -TOE_EINVAL;
  fill_info(st, tp, info);
  return 0;
}

void toe_tcp_visit(const struct toe_stack *st, toe_tcp_visit_fn fn, void *arg)
{
  if (st == NULL || fn == NULL)
    return;
  const struct toe_tcp_tables *tt = &st->tcp;
  for (uint32_t i = 0; i < tt->count; i++) {
    const struct toe_tcb *tp = &tt->tcbs[i];
    if (!tcb_alive(tp))
      continue;
    struct toe_sockaddr local, remote;
    toe_sock_name(&tp->sk, &local, &remote);
    struct toe_tcp_info info;
    fill_info(st, tp, &info);
    fn(arg, &tp->sk, &local, &remote, &info);
  }
  toe_tcp_timewait_visit(st, fn, arg);
}
