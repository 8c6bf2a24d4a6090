/*
 * Per-socket work and receive delivery: the engine's socket events recorded (ctl_sock_event),
 * the work and wait lists, received data lent to the host in the buffers of the fill ring within
 * the socket's credit (SO_RXBUFS) with, when asked (1.5 SO_RXMETA), a metadata record before
 * each datagram, and the events owed to each socket.
 */
#define _GNU_SOURCE

#include "device/session/session_internal.h"

#include <string.h>
#include <time.h>

/* ------------------------------------------------------------------------------------------ */
/* Work and wait lists (intrusive, doubly linked: a socket can leave either at any time)      */

void ses_list_remove(struct ctl_client *cl, struct ctl_sock *k)
{
  if (k->list == CTL_LIST_NONE)
    return;
  struct ctl_sock **head = k->list == CTL_LIST_WORK ? &cl->work_head : &cl->wait_head;
  struct ctl_sock **tail = k->list == CTL_LIST_WORK ? &cl->work_tail : &cl->wait_tail;
  if (k->prev)
    k->prev->next = k->next;
  else
    *head = k->next;
  if (k->next)
    k->next->prev = k->prev;
  else
    *tail = k->prev;
  k->prev = k->next = NULL;
  k->list = CTL_LIST_NONE;
}

void ses_list_add(struct ctl_client *cl, struct ctl_sock *k, uint8_t which)
{
  if (k->list == which)
    return;
  ses_list_remove(cl, k);
  struct ctl_sock **head = which == CTL_LIST_WORK ? &cl->work_head : &cl->wait_head;
  struct ctl_sock **tail = which == CTL_LIST_WORK ? &cl->work_tail : &cl->wait_tail;
  k->prev = *tail;
  k->next = NULL;
  if (*tail)
    (*tail)->next = k;
  else
    *head = k;
  *tail = k;
  k->list = which;
}

/* Every waiting socket gets another look (buffers, credit, handles or CQ room came back). */
void ses_requeue_waiting(struct ctl_client *cl)
{
  while (cl->wait_head)
    ses_list_add(cl, cl->wait_head, CTL_LIST_WORK);
}

/* ------------------------------------------------------------------------------------------ */
/* Socket records                                                                             */

struct ctl_sock *ses_sock_alloc(struct toed_ctl_dev *dev)
{
  struct ctl_sock *k = dev->sock_free;
  if (!k)
    return NULL;
  dev->sock_free = k->free_next;
  memset(k, 0, sizeof(*k));
  k->sendq_head = k->sendq_tail = CTL_NONE;
  k->acceptq_head = k->acceptq_tail = CTL_NONE;
  k->connect_op = CTL_NONE;
  return k;
}

void ses_sock_free(struct toed_ctl_dev *dev, struct ctl_sock *k)
{
  memset(k, 0, sizeof(*k)); /* cl == NULL: a late event for it is ignored */
  k->free_next = dev->sock_free;
  dev->sock_free = k;
}

bool ctl_sock_event(struct toed_ctl_dev *dev, void *user, uint32_t events)
{
  uintptr_t base = (uintptr_t)dev->socks, p = (uintptr_t)user;
  if (!dev->socks || p < base || p >= base + (uintptr_t)dev->nsocks * sizeof(struct ctl_sock) ||
      (p - base) % sizeof(struct ctl_sock) != 0)
    return false;
  struct ctl_sock *k = user;
  if (!k->cl)
    return true; /* freed since the engine queued the event, or a shared socket's anchor */
  if (k->sh) {
    /* Every holder sees the shared socket's events (a kernel socket wakes every process
     * waiting on it); which one takes the connection or the datagram is settled by who asks. */
    struct ctl_sock *h = k->sh->holders;
    if (h) {
      do {
        h->ev |= events;
        ses_list_add(h->cl, h, CTL_LIST_WORK);
        h = h->sh_next;
      } while (h != k->sh->holders);
    }
    return true;
  }
  k->ev |= events;
  ses_list_add(k->cl, k, CTL_LIST_WORK);
  return true;
}

/* ------------------------------------------------------------------------------------------ */
/* Receiving                                                                                  */

/* Delivery of k stopped for want of a buffer or credit (counted once per stall). */
static bool rx_stall(struct ctl_client *cl, struct ctl_sock *k, bool credit)
{
  if (!(k->flags & SF_STALLED)) {
    k->flags |= SF_STALLED;
    if (credit) {
      cl->abi.stats.rx_stall_credit++;
      cl->dev->stats.rx_stall_credit++;
    } else {
      cl->abi.stats.rx_stall_nobuf++;
      cl->dev->stats.rx_stall_nobuf++;
    }
  }
  return true;
}

/* Checks what lending one more buffer to k needs; returns true if it must wait. */
static bool rx_blocked(struct ctl_client *cl, struct ctl_sock *k)
{
  const struct toe_abi_hslot *sl = &cl->slots[k->index];
  if (!ses_ev_room(cl))
    return ses_wait_cq(cl, k);
  if (sl->rx_lent >= sl->rx_max)
    return rx_stall(cl, k, true);
  if (cl->nfree_bufs == 0)
    return rx_stall(cl, k, false);
  return false;
}

/*
 * Receive coalescing (TCP): while the host has not yet consumed the socket's last EV_DATA, less
 * than a buffer of new data stays in the engine. The host has bytes of this socket to read before
 * it could want these, so lending them now would only cost it a completion and a buffer for a
 * few bytes; held, they go out with what arrives meanwhile, in one EV_DATA of up to a buffer. The
 * hold ends when the host consumes that entry (looked at every round of the session while a
 * hold lasts; a sleeping session is woken by the fill-ring doorbell of the host giving the
 * buffer back), when a buffer's worth has gathered, or after HOLD_MAX_NS whatever the host does. A
 * host that keeps up (a request and response exchange) never meets it. Returns true if k's data
 * must wait.
 */
static bool rx_hold(struct ctl_client *cl, struct ctl_sock *k, uint32_t bsize)
{
  if (!(k->flags & SF_DATA_POSTED) || ses_cq_consumed(cl, k->data_cq_idx)) {
    k->flags &= (uint16_t) ~(SF_DATA_POSTED | SF_HELD);
    return false;
  }
  if (toe_tcp_rx_pending(k->s) >= bsize)
    return false;
  if (!(k->flags & SF_HELD)) {
    k->flags |= SF_HELD;
    k->held_since = cl->now;
    cl->dev->stats.rx_held++;
  } else if (cl->now - k->held_since >= HOLD_MAX_NS) {
    return false;
  }
  /* No timer but the hold's end: a host that consumed the entry gives the buffer back on the
   * fill ring once it read it, and rings us if we sleep (NEED_WAKEUP on the fill ring); the
   * round that follows finds the entry consumed. While awake every round looks (rx_holding). */
  cl->rx_holding = true;
  if (cl->retry_at > k->held_since + HOLD_MAX_NS)
    cl->retry_at = k->held_since + HOLD_MAX_NS;
  return true;
}

/* Lends buffer b holding n bytes of k's data with an EV_DATA (room was checked). */
static void rx_lend(struct ctl_client *cl, struct ctl_sock *k, uint32_t b, uint32_t off, uint32_t n,
                    uint16_t flags, const struct toe_sockaddr *from)
{
  toe_abi_buf_lend(&cl->abi, b, k->handle);
  struct toe_abi_cqe cqe;
  memset(&cqe, 0, sizeof(cqe));
  cqe.u.data.buf_id = b;
  cqe.u.data.offset = off;
  cqe.u.data.len = n;
  if (from)
    addr_to_abi(from, &cqe.u.data.from);
  k->data_cq_idx = cl->cq.local;
  k->flags = (uint16_t)((k->flags | SF_DATA_POSTED) & ~SF_HELD);
  ses_post_event(cl, k, TOE_ABI_EV_DATA, (int32_t)n, flags, &cqe);
  k->rx_bytes += n;
  k->flags &= (uint16_t)~SF_STALLED;
  cl->abi.stats.rx_bytes += n;
  cl->dev->stats.rx_bytes += n;
  cl->dev->stats.bufs_lent++;
}

/* TCP: engine receive queue -> lent buffers. Returns true if it must wait for resources. */
static bool rx_tcp(struct ctl_client *cl, struct ctl_sock *k)
{
  struct toe_stack *st = cl->dev->st;
  const uint32_t bsize = cl->abi.layout.buf_size;
  while (k->flags & SF_RX) {
    if (k->flags & SF_SHUT_RD) {
      k->flags &= (uint16_t)~SF_RX;
      break;
    }
    int n;
    uint32_t b = CTL_NONE;
    if (toe_tcp_rx_pending(k->s) == 0) {
      /* No data: the call tells end of stream, an error or "nothing yet" apart. */
      uint8_t dummy;
      n = toe_tcp_recv(st, k->s, &dummy, 0);
    } else {
      if (rx_hold(cl, k, bsize) || rx_blocked(cl, k))
        return true;
      b = cl->free_bufs[--cl->nfree_bufs];
      n = toe_tcp_recv(st, k->s, cl->region + toe_abi_buf_offset(&cl->abi, b), bsize);
      if (n > 0) {
        rx_lend(cl, k, b, 0, (uint32_t)n, 0, NULL);
        continue;
      }
      cl->free_bufs[cl->nfree_bufs++] = b;
    }
    k->flags &= (uint16_t)~SF_RX;
    if (n == 0 && toe_tcp_rx_pending(k->s) == 0) {
      struct toe_tcp_info info;
      /* 0 from an empty queue: end of stream (the peer's FIN, or a connection fully closed). */
      if (toe_tcp_get_info(st, k->s, &info) == 0 && info.state != TOE_TCP_ESTABLISHED &&
          info.state != TOE_TCP_SYN_SENT && info.state != TOE_TCP_SYN_RECEIVED &&
          info.state != TOE_TCP_LISTEN)
        k->flags |= SF_EOF;
    } else if (n < 0 && n != -TOE_EAGAIN && n != -TOE_ENOTCONN) {
      k->flags |= SF_DEAD;
      if (!k->fatal_err)
        k->fatal_err = n;
    }
  }
  return false;
}

/* The buffer the next lend takes (rx_blocked said there is one). */
static uint32_t b_peek(const struct ctl_client *cl)
{
  return cl->free_bufs[cl->nfree_bufs - 1];
}

/* Nanoseconds since the Unix epoch of the host's realtime clock. */
static uint64_t realtime_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* 1.5: the record before a datagram's first piece (TOE_ABI_SO_RXMETA). The engine's clock is
 * toed's CLOCK_MONOTONIC (or a test's virtual one), but SO_TIMESTAMP speaks the realtime clock:
 * the arrival is placed that long before realtime now, as the session's clock measures it. */
static void rx_meta_write(const struct ctl_client *cl, const struct toe_pbuf *pb, uint16_t fam,
                          uint8_t *dst)
{
  struct toe_udp_rxinfo ri;
  toe_udp_pbuf_rxinfo(pb, &ri);
  struct toe_abi_rx_meta m;
  memset(&m, 0, sizeof(m));
  m.size = TOE_ABI_RX_META_SIZE;
  m.family = fam; /* 1.7: an AF_INET6 socket's record is AF_INET6 */
  m.tos = ri.tos;
  m.ttl = ri.ttl;
  m.flags = TOE_ABI_RX_META_F_DST | TOE_ABI_RX_META_F_TOS | TOE_ABI_RX_META_F_TTL |
            TOE_ABI_RX_META_F_TIME;
  uint64_t rt = realtime_ns();
  uint64_t age = cl->now > ri.at ? cl->now - ri.at : 0;
  m.time_ns = rt > age ? rt - age : 0;
  uint8_t *a = m.dst;
  if (m.family == TOE_ABI_AF_INET6) {
    /* The engine keeps an IPv4 datagram's destination only: on an IPv6 socket that is the
     * v4-mapped ::ffff:a.b.c.d (Linux's IPV6_PKTINFO for it); an IPv6 datagram has none. */
    if (ri.dst == 0)
      m.flags &= (uint16_t)~TOE_ABI_RX_META_F_DST;
    else
      m.dst[10] = m.dst[11] = 0xff;
    a = m.dst + 12;
  }
  a[0] = (uint8_t)(ri.dst >> 24);
  a[1] = (uint8_t)(ri.dst >> 16);
  a[2] = (uint8_t)(ri.dst >> 8);
  a[3] = (uint8_t)ri.dst;
  memcpy(dst, &m, sizeof(m));
}

/* UDP: datagrams -> lent buffers, in pieces of buf_size (F_MORE on all but the last). */
static bool rx_udp(struct ctl_client *cl, struct ctl_sock *k)
{
  struct toe_stack *st = cl->dev->st;
  const uint32_t bsize = cl->abi.layout.buf_size;
  while (k->flags & SF_RX) {
    if (!k->held) {
      if (toe_udp_rx_pending(k->s, NULL) == 0) {
        k->flags &= (uint16_t)~SF_RX;
        break;
      }
      if (rx_blocked(cl, k))
        return true;
      k->held = toe_udp_recv_pbuf(st, k->s, &k->held_from);
      k->held_off = 0;
      if (!k->held) {
        k->flags &= (uint16_t)~SF_RX;
        break;
      }
    }
    while (k->held) {
      if (rx_blocked(cl, k))
        return true;
      uint32_t tot = k->held->tot_len;
      bool first = k->held_off == 0;
      uint8_t *dst = cl->region + toe_abi_buf_offset(&cl->abi, b_peek(cl));
      uint32_t off = 0;
      uint16_t flags = 0;
      if (first && k->rxmeta) {
        rx_meta_write(cl, k->held, cl->slots[k->index].family, dst);
        off = TOE_ABI_RX_META_SIZE;
        flags = TOE_ABI_CQE_F_META;
      }
      uint32_t n = min_u32(tot - k->held_off, bsize - off);
      uint32_t b = cl->free_bufs[--cl->nfree_bufs];
      toe_pbuf_copy_out(k->held, k->held_off, dst + off, n);
      k->held_off += n;
      bool last = k->held_off >= tot;
      if (!last)
        flags |= TOE_ABI_CQE_F_MORE;
      rx_lend(cl, k, b, off, n, flags, first ? &k->held_from : NULL);
      if (last) {
        toe_pbuf_free(st, k->held);
        k->held = NULL;
      }
    }
  }
  return false;
}

/* Events owed to k, in the order the ABI promises. Returns true if one waits for CQ room. */
static bool post_pending(struct ctl_client *cl, struct ctl_sock *k)
{
  struct toe_abi_cqe cqe;
  if (k->flags & SF_WRITABLE_PEND) {
    memset(&cqe, 0, sizeof(cqe));
    if (!ses_post_event(cl, k, TOE_ABI_EV_WRITABLE, 0, 0, &cqe))
      return ses_wait_cq(cl, k);
    k->flags &= (uint16_t)~SF_WRITABLE_PEND;
  }
  if (k->flags & SF_ERR_PEND) {
    /* One soft error in the CQ at a time; a newer one merges into it (SO_ERROR keeps the
     * latest). */
    if ((k->flags & SF_ERR_POSTED) && !ses_cq_consumed(cl, k->err_cq_idx)) {
      k->flags &= (uint16_t)~SF_ERR_PEND;
    } else {
      uint32_t idx = cl->cq.local;
      memset(&cqe, 0, sizeof(cqe));
      if (!ses_post_event(cl, k, TOE_ABI_EV_ERROR, k->so_error ? k->so_error : -TOE_EIO, 0, &cqe))
        return ses_wait_cq(cl, k);
      k->err_cq_idx = idx;
      k->flags |= SF_ERR_POSTED;
      k->flags &= (uint16_t)~SF_ERR_PEND;
    }
  }
  if (k->flags & SF_RX)
    return false; /* data first: the end events follow the last EV_DATA */
  if ((k->flags & (SF_EOF | SF_EOF_POSTED | SF_SHUT_RD)) == SF_EOF) {
    memset(&cqe, 0, sizeof(cqe));
    if (!ses_post_event(cl, k, TOE_ABI_EV_PEER_CLOSED, 0, 0, &cqe))
      return ses_wait_cq(cl, k);
    k->flags |= SF_EOF_POSTED;
  }
  if ((k->flags & (SF_DEAD | SF_END_POSTED)) == SF_DEAD && k->fatal_err) {
    memset(&cqe, 0, sizeof(cqe));
    bool reset = k->fatal_err == -TOE_ECONNRESET;
    if (!ses_post_event(cl, k, reset ? TOE_ABI_EV_RESET : TOE_ABI_EV_ERROR, k->fatal_err,
                        reset ? 0 : TOE_ABI_CQE_F_FATAL, &cqe))
      return ses_wait_cq(cl, k);
    k->flags |= SF_END_POSTED;
  }
  return false;
}

/* Everything socket k has to do after engine events or a resource change. */
void ses_sock_work(struct ctl_client *cl, struct ctl_sock *k)
{
  struct toe_stack *st = cl->dev->st;
  uint32_t ev = k->ev;
  k->ev = 0;
  if (!k->s)
    return;
  if (k->proto == TOE_ABI_PROTO_TCP) {
    if ((ev & (TOE_EV_ERROR | TOE_EV_HUP)) && !(k->flags & SF_DEAD)) {
      /* TCP reports errors only when the connection ends (tcp.h). */
      struct toe_tcp_info info;
      if ((ev & TOE_EV_HUP) ||
          (toe_tcp_get_info(st, k->s, &info) == 0 && info.state == TOE_TCP_CLOSED)) {
        k->flags |= SF_DEAD;
        int e = toe_sock_error(st, k->s);
        if (e < 0)
          k->fatal_err = k->so_error = e; /* SO_ERROR reports it once too */
      }
    }
    if (ev & (TOE_EV_READABLE | TOE_EV_ERROR | TOE_EV_HUP))
      k->flags |= SF_RX;
    if (k->connect_op != CTL_NONE && ev)
      ses_connect_check(cl, k);
    if ((ev & TOE_EV_WRITABLE) && (k->flags & SF_WANT_WRITABLE)) {
      k->flags &= (uint16_t)~SF_WANT_WRITABLE;
      k->flags |= SF_WRITABLE_PEND;
    }
  } else {
    if (ev & TOE_EV_ERROR) {
      int e = toe_sock_error(st, k->s);
      if (e < 0) {
        k->so_error = e;
        k->flags |= SF_ERR_PEND;
      }
    }
    if (ev & TOE_EV_READABLE)
      k->flags |= SF_RX;
  }
  bool wait = false;
  if (k->acceptq_head != CTL_NONE)
    wait = ses_accept_run(cl, k);
  if (k->sendq_head != CTL_NONE) {
    if (ses_sendq_run(cl, k))
      return; /* closed */
    if (k->flags & SF_SEND_NOBUF)
      wait = true;
  }
  if (k->flags & SF_RX) {
    cl->rx_handoff = true; /* a capture keeps off the CQ slot a receive checked (ses_cap_post) */
    wait = (k->proto == TOE_ABI_PROTO_TCP ? rx_tcp(cl, k) : rx_udp(cl, k)) || wait;
    cl->rx_handoff = false;
  }
  if (post_pending(cl, k))
    wait = true;
  if (wait && k->list == CTL_LIST_NONE)
    ses_list_add(cl, k, CTL_LIST_WAIT);
}

/* ------------------------------------------------------------------------------------------ */
/* Rings                                                                                      */

/* Buffers the host gives back on the fill ring. Returns how many entries were read. */
uint32_t ses_take_fill(struct ctl_client *cl)
{
  uint32_t ids[FQ_BATCH];
  uint32_t total = 0;
  while (total < cl->fq.size && !cl->end_status) {
    int n = toe_ring_cons_read(&cl->fq, ids, FQ_BATCH);
    if (n < 0) {
      ctl_session_fail(cl, n, CTL_END_PROTOCOL);
      break;
    }
    if (n == 0)
      break;
    for (int i = 0; i < n; i++) {
      if (toe_abi_fill_take(&cl->abi, ids[i]) == 0) {
        cl->free_bufs[cl->nfree_bufs++] = ids[i]; /* at most buf_count are the device's */
        cl->dev->stats.fill_taken++;
      } else {
        cl->dev->stats.fill_bad++;
        if (toe_abi_client_strike(&cl->abi, cl->now))
          ctl_session_fail(cl, -TOE_EPROTO, CTL_END_ABUSE);
      }
    }
    toe_ring_cons_release(&cl->fq, (uint32_t)n);
    total += (uint32_t)n;
  }
  if (total)
    cl->resources = true;
  return total;
}
