/*
 * libtoe: op records, completion processing, batching and doorbells, adaptive waiting, the ready
 * list behind toe_poll() and the pollable event descriptor, and the end of a session.
 *
 * Rings (docs/transport.md "Rings", "Doorbells and adaptive polling"): we produce the SQ and the
 * FQ and consume the CQ. Submissions of one API call are written into the rings and published
 * once, when the call unlocks the device; the kick eventfd is rung only if the device said it
 * sleeps (NEED_WAKEUP on the ring it consumes). On the CQ we are the consumer: NEED_WAKEUP is set
 * at all times except while a waiting thread spins on the ring, so that an application sleeping
 * in epoll on toe_event_fd() is woken by the device's doorbell.
 *
 * Descriptors are touched only through the port layer (port.h) and its system calls
 * (port_sys.h): the doorbells, the event descriptor and the sleep differ between ports.
 */
#define _GNU_SOURCE

#include "host/port_sys.h"
#include "host/toe_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define cpu_relax() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define cpu_relax() __asm__ __volatile__("yield" ::: "memory")
#else
#define cpu_relax() atomic_signal_fence(memory_order_seq_cst)
#endif

#define NS_PER_MS 1000000ull
#define WAIT_SLICE_NS (1000ull * NS_PER_MS) /* a wait re-checks the device at least this often */
#define CTL_CHECK_NS (100ull * NS_PER_MS)   /* a busy caller polls the control socket this often */
#define CQ_BATCH 64u

/* The marker of a completion made up locally when the session ended (never from the device). */
#define CQE_LOCAL 0x4c4f43u

uint64_t toe_mono_ns(void)
{
  return toe_port_mono_ns();
}

uint64_t toe_deadline(int timeout_ms)
{
  if (timeout_ms < 0)
    return UINT64_MAX;
  return toe_mono_ns() + (uint64_t)timeout_ms * NS_PER_MS;
}

/* ------------------------------------------------------------------------------------------ */
/* Ready list                                                                                 */

static bool sock_visible(const struct sock *s)
{
  return s->state != S_FREE && s->state != S_EMBRYO && s->state != S_CLOSING;
}

uint32_t toe_sock_ready(const struct toe_dev *d, const struct sock *s)
{
  uint32_t m = 0;
  if (s->soerror)
    m |= TOE_POLLIN | TOE_POLLERR;
  if (s->flags & F_DEV_GONE)
    return m | TOE_POLLIN | TOE_POLLOUT | TOE_POLLHUP | TOE_POLLRDHUP;
  if (s->type == TOE_SOCK_STREAM) {
    if (s->state == S_LISTEN) {
      if (s->acc_count || s->accept_err)
        m |= TOE_POLLIN;
      return m;
    }
    if (s->flags & F_CONN_DEAD)
      return m | TOE_POLLIN | TOE_POLLOUT | TOE_POLLHUP;
    if (s->rx_bytes || (s->flags & (F_PEER_CLOSED | F_SHUT_RD)))
      m |= TOE_POLLIN;
    if (s->flags & F_PEER_CLOSED)
      m |= TOE_POLLRDHUP;
    if ((s->flags & F_PEER_CLOSED) && (s->flags & F_SHUT_WR))
      m |= TOE_POLLHUP;
    if (s->state == S_CONNECTED && !(s->flags & F_SHUT_WR) && toe_sock_can_send(d, s))
      m |= TOE_POLLOUT;
    return m;
  }
  if (s->rx_dgrams)
    m |= TOE_POLLIN;
  if (toe_sock_can_send(d, s))
    m |= TOE_POLLOUT;
  return m;
}

static void ready_unlink(struct toe_dev *d, struct sock *s)
{
  if (!s->on_ready)
    return;
  if (s->rprev != TOE_NONE)
    d->socks[s->rprev].rnext = s->rnext;
  else
    d->ready_head = s->rnext;
  if (s->rnext != TOE_NONE)
    d->socks[s->rnext].rprev = s->rprev;
  else
    d->ready_tail = s->rprev;
  s->on_ready = false;
  s->rprev = s->rnext = TOE_NONE;
  d->ready_count--;
}

static void ready_append(struct toe_dev *d, struct sock *s)
{
  uint32_t idx = (uint32_t)(s - d->socks);
  s->rprev = d->ready_tail;
  s->rnext = TOE_NONE;
  if (d->ready_tail != TOE_NONE)
    d->socks[d->ready_tail].rnext = idx;
  else
    d->ready_head = idx;
  d->ready_tail = idx;
  s->on_ready = true;
  d->ready_count++;
}

void toe_sock_update(struct toe_dev *d, struct sock *s)
{
  bool want =
      sock_visible(s) && (toe_sock_ready(d, s) & (s->interest | TOE_POLLERR | TOE_POLLHUP)) != 0;
  if (want && !s->on_ready)
    ready_append(d, s);
  else if (!want && s->on_ready)
    ready_unlink(d, s);
}

void toe_sock_update_all(struct toe_dev *d)
{
  for (uint32_t i = 0; i < d->nsocks; i++)
    if (d->socks[i].state != S_FREE)
      toe_sock_update(d, &d->socks[i]);
}

/* Keeps toe_event_fd() readable while toe_poll() has something to report (level-triggered). */
static void self_arm(struct toe_dev *d)
{
  bool want = d->ready_count > 0 || d->ev_dead_pending || d->ev_stop_pending;
  if (want && !d->self_armed) {
    toe_port_self_set(d);
    d->self_armed = true;
  }
}

static void self_disarm_if_idle(struct toe_dev *d)
{
  if (d->self_armed && d->ready_count == 0 && !d->ev_dead_pending && !d->ev_stop_pending) {
    d->self_armed = false;
    toe_port_self_clear(d);
  }
}

/* ------------------------------------------------------------------------------------------ */
/* Ops                                                                                        */

/* Takes an op out of the in-flight counts (once). */
static void op_retire(struct toe_dev *d, struct op *op)
{
  if (op->state != OP_PENDING && op->state != OP_ABANDONED)
    return;
  d->ops_inflight--;
  if (op->async)
    d->ops_async--;
  if (op->sock != TOE_NONE && op->sock < d->nsocks && d->socks[op->sock].ops > 0)
    d->socks[op->sock].ops--;
}

struct op *toe_op_alloc(struct toe_dev *d, uint8_t opcode, uint32_t sock, bool async)
{
  if (d->op_free == TOE_NONE || (async && d->ops_async >= d->ops_async_max)) {
    d->ops_starved = true;
    return NULL;
  }
  struct op *op = &d->ops[d->op_free];
  d->op_free = op->next_free;
  uint32_t gen = op->gen;
  memset(op, 0, sizeof(*op));
  op->gen = gen;
  op->opcode = opcode;
  op->state = OP_PENDING;
  op->async = async;
  op->sock = sock;
  op->aux = TOE_NONE;
  op->buf_first = TOE_NONE;
  op->next_free = TOE_NONE;
  d->ops_inflight++;
  if (async)
    d->ops_async++;
  if (sock != TOE_NONE)
    d->socks[sock].ops++;
  return op;
}

void toe_op_free(struct toe_dev *d, struct op *op)
{
  op_retire(d, op);
  op->state = OP_FREE;
  op->gen++; /* a late or forged completion naming this record is refused from now on */
  op->next_free = d->op_free;
  d->op_free = (uint32_t)(op - d->ops);
  if (d->ops_starved) {
    d->ops_starved = false;
    if (d->deferred_closes)
      toe_retry_deferred_closes(d);
    toe_sock_update_all(d);
  }
}

void toe_sqe_init(struct toe_dev *d, struct toe_abi_sqe *sqe, const struct op *op, uint32_t handle)
{
  sqe->opcode = op->opcode;
  sqe->flags = 0;
  sqe->reserved0 = 0;
  sqe->handle = handle;
  sqe->user_data = ((uint64_t)op->gen << 32) | (uint32_t)(op - d->ops);
}

int toe_sq_push(struct toe_dev *d, const struct toe_abi_sqe *sqe)
{
  if (d->status)
    return -TOE_ENETDOWN;
  int k = toe_ring_prod_write(&d->sq, sqe, 1);
  if (k < 0) {
    toe_dev_die(d, -TOE_EPROTO);
    return -TOE_ENETDOWN;
  }
  if (k == 0) /* cannot happen: every SQE in the ring holds one of sq_entries op records */
    return -TOE_EAGAIN;
  d->sq_dirty = true;
  d->info.sqes++;
  return 0;
}

void toe_fq_return(struct toe_dev *d, uint32_t id)
{
  d->bstate[id] = B_DEV;
  if (d->status)
    return; /* the session is over: nobody to give it to */
  /* The FQ holds every buffer at once (fq_entries >= buf_count), so this never finds it full. */
  if (toe_ring_prod_write(&d->fq, &id, 1) < 0) {
    toe_dev_die(d, -TOE_EPROTO);
    return;
  }
  d->fq_dirty = true;
}

/* Publishes the batch and rings the device if it sleeps. */
static void dev_flush(struct toe_dev *d)
{
  bool kick = false;
  if (d->sq_dirty) {
    toe_ring_publish(&d->sq);
    d->sq_dirty = false;
    kick |= toe_ring_prod_needs_wakeup(&d->sq);
  }
  if (d->fq_dirty) {
    toe_ring_publish(&d->fq);
    d->fq_dirty = false;
    kick |= toe_ring_prod_needs_wakeup(&d->fq);
  }
  if (kick && !d->status) {
    toe_port_kick(d);
    d->info.kicks++;
  }
}

/* ------------------------------------------------------------------------------------------ */
/* Completions                                                                                */

static struct sock *sock_of_event(struct toe_dev *d, const struct toe_abi_cqe *c)
{
  uint32_t idx = (uint32_t)c->user_data, gen = (uint32_t)(c->user_data >> 32);
  if (idx >= d->nsocks)
    return NULL;
  struct sock *s = &d->socks[idx];
  if (s->state == S_FREE || s->gen != gen)
    return NULL;
  if (s->handle == 0 && s->state == S_EMBRYO && c->handle != 0)
    s->handle = c->handle; /* an accepted socket's event ahead of its ACCEPT completion */
  if (s->handle != c->handle)
    return NULL;
  return s;
}

/* A socket the device opened for an OPEN we stopped waiting for: nobody will use it. */
static void close_orphan(struct toe_dev *d, uint32_t handle)
{
  struct op *op = toe_op_alloc(d, TOE_ABI_OP_CLOSE, TOE_NONE, false);
  if (!op)
    return; /* it lives until the session ends */
  struct toe_abi_sqe sqe;
  memset(&sqe, 0, sizeof(sqe));
  toe_sqe_init(d, &sqe, op, handle);
  sqe.u.close.close_flags = TOE_ABI_CLOSE_F_ABORT;
  if (toe_sq_push(d, &sqe) < 0)
    toe_op_free(d, op);
}

static void complete_op(struct toe_dev *d, struct op *op, const struct toe_abi_cqe *c)
{
  bool abandoned = op->state == OP_ABANDONED;
  op_retire(d, op);
  switch (op->opcode) {
  case TOE_ABI_OP_SEND:
    toe_on_send_done(d, op, c);
    break;
  case TOE_ABI_OP_CONNECT:
    if (!op->sync)
      toe_on_connect_done(d, op, c);
    break;
  case TOE_ABI_OP_ACCEPT:
    toe_on_accept_done(d, op, c);
    break;
  case TOE_ABI_OP_CLOSE:
    toe_on_close_done(d, op, c);
    break;
  case TOE_ABI_OP_OPEN:
  case TOE_ABI_OP_ADOPT:
    if (abandoned && c->res >= 0 && c->handle != TOE_ABI_HANDLE_NONE)
      close_orphan(d, c->handle);
    if (!abandoned && op->opcode == TOE_ABI_OP_ADOPT && c->res >= 0 &&
        c->handle != TOE_ABI_HANDLE_NONE && op->sock < d->nsocks) {
      /* The adopted socket's data may follow right behind (the device looks at what waits at
       * once), in this same batch, before toe_adopt's thread runs: it must find its socket. */
      d->socks[op->sock].handle = c->handle;
      if (c->u.adopt.proto == TOE_ABI_PROTO_UDP)
        d->socks[op->sock].type = TOE_SOCK_DGRAM;
    }
    break;
  case TOE_ABI_OP_STATS:
    if (abandoned && op->buf_first != TOE_NONE) {
      toe_tx_unref(d, op->buf_first, op->buf_n);
      op->buf_first = TOE_NONE;
    }
    break;
  default:
    break;
  }
  if (op->sync && !abandoned) {
    /* The waiting thread takes the result and frees the record. */
    op->cqe = *c;
    op->state = OP_DONE;
    return;
  }
  op->state = OP_DONE;
  toe_op_free(d, op);
}

static void handle_completion(struct toe_dev *d, const struct toe_abi_cqe *c)
{
  uint32_t idx = (uint32_t)c->user_data, gen = (uint32_t)(c->user_data >> 32);
  if (idx >= d->nops) {
    d->info.bad_cqes++;
    return;
  }
  struct op *op = &d->ops[idx];
  if (op->gen != gen || (op->state != OP_PENDING && op->state != OP_ABANDONED) ||
      op->opcode != c->opcode) {
    d->info.bad_cqes++;
    return;
  }
  complete_op(d, op, c);
}

static void handle_event(struct toe_dev *d, const struct toe_abi_cqe *c)
{
  struct sock *s = sock_of_event(d, c);
  if (c->type == TOE_ABI_EV_DATA) {
    toe_on_data(d, s, c); /* checks the buffer; gives it back if s is NULL */
    return;
  }
  if (!s) {
    /* Events may race with our close; anything else is a device bug. Either way: ignored. */
    return;
  }
  switch (c->type) {
  case TOE_ABI_EV_WRITABLE:
    break; /* we never send with DONTWAIT; readiness is recomputed below anyway */
  case TOE_ABI_EV_PEER_CLOSED:
    s->flags |= F_PEER_CLOSED;
    break;
  case TOE_ABI_EV_RESET:
    s->flags |= F_CONN_DEAD;
    s->soerror = c->res < 0 ? c->res : -TOE_ECONNRESET;
    break;
  case TOE_ABI_EV_ERROR:
    if (c->res < 0)
      s->soerror = c->res;
    if (c->flags & TOE_ABI_CQE_F_FATAL)
      s->flags |= F_CONN_DEAD;
    break;
  default:
    break;
  }
  toe_sock_update(d, s);
}

static void handle_cqe(struct toe_dev *d, const struct toe_abi_cqe *c)
{
  switch (c->type) {
  case TOE_ABI_CQE_OP:
    handle_completion(d, c);
    break;
  case TOE_ABI_EV_DATA:
  case TOE_ABI_EV_WRITABLE:
  case TOE_ABI_EV_PEER_CLOSED:
  case TOE_ABI_EV_RESET:
  case TOE_ABI_EV_ERROR:
    handle_event(d, c);
    break;
  case TOE_ABI_EV_SHUTDOWN:
    if (!d->stopping) {
      d->stopping = true;
      d->ev_stop_pending = true;
    }
    break;
  default:
    d->info.bad_cqes++;
    break;
  }
}

static void process_cq(struct toe_dev *d)
{
  struct toe_abi_cqe batch[CQ_BATCH];
  while (!d->status) {
    /* Copy out, release, then handle: the device may refill the slots while we work. */
    int n = toe_ring_cons_read(&d->cq, batch, CQ_BATCH);
    if (n < 0) {
      toe_dev_die(d, -TOE_EPROTO);
      return;
    }
    if (n == 0)
      return;
    toe_ring_cons_release(&d->cq, (uint32_t)n);
    d->info.cqes += (uint64_t)n;
    toe_dev_changed(d);
    for (int i = 0; i < n && !d->status; i++)
      handle_cqe(d, &batch[i]);
  }
}

/* ------------------------------------------------------------------------------------------ */
/* Liveness and the end of a session                                                          */

void toe_dev_check_ctl(struct toe_dev *d)
{
  if (d->status)
    return;
  struct pollfd p = {.fd = d->ctl_fd, .events = POLLIN};
  if (toe_sys_poll(&p, 1, 0) <= 0 || p.revents == 0)
    return;
  /* Hang-up or error: the device is gone. Readable data is a protocol violation in 1.0 (the
   * control socket carries nothing after the reply): we end the session too. */
  toe_dev_die(d, -TOE_ENETDOWN);
}

void toe_dev_die(struct toe_dev *d, int err)
{
  if (d->status)
    return;
  /* Prefer the device's own reason when it wrote one before closing (docs: "Death"). */
  uint32_t st = __atomic_load_n(&d->hdr->dev_state, __ATOMIC_ACQUIRE);
  int32_t why = __atomic_load_n(&d->hdr->dev_status, __ATOMIC_RELAXED);
  if (err == -TOE_ENETDOWN && st == TOE_ABI_DEV_GONE && why < 0 && why > -4096)
    err = why;
  d->status = err;
  /* Our half: end the session so a device still alive tears it down as well. */
  toe_sys_shutdown(d->ctl_fd, SHUT_RDWR);
  toe_port_ctl_gone(d);
  /* Complete every waiting op locally (docs: "libtoe completes every waiting operation locally
   * with -ECONNABORTED"). CLOSEs last: they free their socket, which other ops still name. */
  struct toe_abi_cqe c;
  for (int pass = 0; pass < 2; pass++) {
    for (uint32_t i = 0; i < d->nops; i++) {
      struct op *op = &d->ops[i];
      if (op->state != OP_PENDING && op->state != OP_ABANDONED)
        continue;
      if ((op->opcode == TOE_ABI_OP_CLOSE) != (pass == 1))
        continue;
      memset(&c, 0, sizeof(c));
      c.user_data = ((uint64_t)op->gen << 32) | i;
      c.res = -TOE_ECONNABORTED;
      c.type = TOE_ABI_CQE_OP;
      c.opcode = op->opcode;
      c.reserved0 = CQE_LOCAL;
      complete_op(d, op, &c);
    }
  }
  for (uint32_t i = 0; i < d->nsocks; i++) {
    struct sock *s = &d->socks[i];
    if (s->state == S_FREE)
      continue;
    if (s->state == S_EMBRYO || s->state == S_CLOSING) {
      /* Nothing will complete for these any more. */
      if (s->state == S_EMBRYO && (s->flags & F_HELD_ACCEPT)) {
        s->flags |= F_DEV_GONE | F_CONN_DEAD;
        continue; /* still on its listener's queue: toe_accept hands it out, dead */
      }
      toe_sock_free(d, s);
      continue;
    }
    s->flags |= F_DEV_GONE | F_CONN_DEAD;
    if (!s->soerror)
      s->soerror = -TOE_ENETDOWN;
    toe_sock_update(d, s);
  }
  d->ev_dead_pending = true;
  if (d->waiter)
    toe_port_wake(d);
  pthread_cond_broadcast(&d->cv);
}

/* ------------------------------------------------------------------------------------------ */
/* Locking, progress, waiting                                                                 */

void toe_dev_lock(struct toe_dev *d)
{
  pthread_mutex_lock(&d->lock);
  d->seq_at_lock = d->seq;
}

void toe_dev_progress(struct toe_dev *d)
{
  if (d->status)
    return;
  uint64_t now = toe_mono_ns();
  if (now >= d->next_ctl_check ||
      __atomic_load_n(&d->hdr->dev_state, __ATOMIC_RELAXED) == TOE_ABI_DEV_GONE) {
    d->next_ctl_check = now + CTL_CHECK_NS;
    toe_dev_check_ctl(d);
  }
  process_cq(d);
}

/* Before the lock is released: if this thread changed something (completions handled, sockets
 * closed), other waiting threads may be satisfied, or be waiting for a socket that is gone. */
static void wake_others(struct toe_dev *d)
{
  if (d->seq != d->seq_at_lock) {
    if (d->cv_waiters)
      pthread_cond_broadcast(&d->cv);
    if (d->waiter)
      toe_port_wake(d);
  }
  d->seq_at_lock = d->seq;
}

void toe_dev_unlock(struct toe_dev *d)
{
  dev_flush(d);
  wake_others(d);
  self_arm(d);
  pthread_mutex_unlock(&d->lock);
}

static void cv_wait_until(struct toe_dev *d, uint64_t until)
{
  d->cv_waiters++;
  toe_port_cond_wait_until(d, until);
  d->cv_waiters--;
}

/*
 * Busy-polls the CQ's producer index (lock released, we are d->waiter) until it moves or `end`.
 * NEED_WAKEUP is off meanwhile, so the device does not ring a doorbell nobody sleeps on; the
 * caller sets it again (toe_ring_cons_prepare_sleep) before it sleeps or returns to the
 * application.
 */
static void spin_until(struct toe_dev *d, uint64_t end)
{
  _Atomic uint32_t *prod = (_Atomic uint32_t *)(void *)&d->cq.ctl->prod;
  uint32_t snap = d->cq.local;
  toe_ring_cons_clear_wakeup(&d->cq);
  pthread_mutex_unlock(&d->lock);
  for (uint32_t i = 1;; i++) {
    if (atomic_load_explicit(prod, memory_order_acquire) != snap)
      break;
    if ((i & 63) == 0 && toe_mono_ns() >= end)
      break;
    cpu_relax();
  }
  pthread_mutex_lock(&d->lock);
  d->info.spins++;
}

void toe_dev_wait(struct toe_dev *d, uint64_t deadline, bool for_poll)
{
  dev_flush(d);
  wake_others(d);
  self_arm(d);
  uint64_t now = toe_mono_ns();
  if (d->status || deadline <= now)
    return;
  uint64_t until = deadline - now > WAIT_SLICE_NS ? now + WAIT_SLICE_NS : deadline;
  if (d->waiter) {
    /* Another thread is on the doorbell; it broadcasts when it saw progress. */
    cv_wait_until(d, until);
    d->seq_at_lock = d->seq;
    toe_dev_progress(d);
    return;
  }
  d->waiter = true;
  uint64_t seen = d->seq;

  /* Spin: lowest latency while the device is busy. */
  if (d->spin_ns)
    spin_until(d, now + d->spin_ns < until ? now + d->spin_ns : until);

  /* Announce the sleep, then look once more (the Dekker pattern of ring.h). */
  int n = toe_ring_cons_prepare_sleep(&d->cq);
  if (n < 0) {
    toe_dev_die(d, -TOE_EPROTO);
  } else if (n == 0 && d->seq == seen && !d->status &&
             !(for_poll && (d->ready_count || d->ev_stop_pending))) {
    now = toe_mono_ns();
    if (until > now) {
      int ms = (int)((until - now + NS_PER_MS - 1) / NS_PER_MS);
      if (toe_port_sleep(d, ms, for_poll))
        toe_dev_check_ctl(d);
    }
  }
  d->waiter = false;
  d->seq_at_lock = d->seq;
  toe_dev_progress(d);
  if (d->cv_waiters)
    pthread_cond_broadcast(&d->cv);
}

/* ------------------------------------------------------------------------------------------ */
/* toe_poll and friends                                                                       */

int toe_event_fd(toe_dev *d)
{
  return d ? toe_port_event_fd(d) : -TOE_EBADF;
}

int toe_poll_ctl(toe_dev *d, int sd, uint32_t events, void *udata)
{
  if (!d)
    return -TOE_EBADF;
  toe_dev_lock(d);
  struct sock *s = toe_sock_get(d, sd);
  int rc = -TOE_EBADF;
  if (s) {
    s->interest = events & (TOE_POLLIN | TOE_POLLOUT | TOE_POLLRDHUP);
    s->udata = udata;
    if ((s->interest & TOE_POLLIN) && s->state == S_LISTEN &&
        (s->flags & (F_ACC_LAZY | F_ACC_WANT)) == F_ACC_LAZY) {
      s->flags |= F_ACC_WANT; /* a shared listener: someone here waits for connections */
      toe_listener_refill(d, s);
    }
    toe_sock_update(d, s);
    rc = 0;
  }
  toe_dev_unlock(d);
  return rc;
}

int toe_sock_events(toe_dev *d, int sd)
{
  if (!d)
    return -TOE_EBADF;
  struct sock *s = toe_sock_enter(d, sd);
  int rc = s ? (int)toe_sock_ready(d, s) : -TOE_EBADF;
  toe_dev_unlock(d);
  return rc;
}

/* Resets the doorbells that woke an epoll loop on toe_event_fd(), and notices a hang-up. */
static void poll_drain(struct toe_dev *d)
{
  if (toe_port_events_drain(d))
    toe_dev_check_ctl(d);
}

static int collect(struct toe_dev *d, struct toe_event *evs, int max)
{
  int n = 0;
  if (n < max && d->ev_dead_pending) {
    evs[n++] = (struct toe_event){.sd = TOE_SD_DEVICE, .events = TOE_POLLHUP | TOE_POLLERR};
    d->ev_dead_pending = false;
    d->ev_stop_pending = false;
  }
  if (n < max && d->ev_stop_pending) {
    evs[n++] = (struct toe_event){.sd = TOE_SD_DEVICE, .events = TOE_POLLRDHUP};
    d->ev_stop_pending = false;
  }
  /* Round-robin: each reported socket goes to the tail. */
  uint32_t todo = d->ready_count;
  while (n < max && todo-- > 0 && d->ready_head != TOE_NONE) {
    struct sock *s = &d->socks[d->ready_head];
    ready_unlink(d, s);
    uint32_t m = toe_sock_ready(d, s) & (s->interest | TOE_POLLERR | TOE_POLLHUP);
    if (!m || !sock_visible(s))
      continue;
    ready_append(d, s);
    evs[n++] = (struct toe_event){.sd = (int)(s - d->socks), .events = m, .udata = s->udata};
  }
  return n;
}

static bool poll_pending(const struct toe_dev *d)
{
  return d->ready_count > 0 || d->ev_dead_pending || d->ev_stop_pending;
}

int toe_spin(toe_dev *d, int spin_us)
{
  if (!d)
    return -TOE_EBADF;
  toe_dev_lock(d);
  toe_dev_progress(d);
  uint64_t ns = spin_us < 0 ? d->spin_ns : (uint64_t)spin_us * 1000u;
  uint64_t end = toe_mono_ns() + ns;
  /* One thread spins at a time; another one already on the doorbell will see the same. */
  while (!d->status && !poll_pending(d) && !d->waiter && toe_mono_ns() < end) {
    dev_flush(d); /* the device may be waiting for what this call's caller submitted */
    wake_others(d);
    d->waiter = true;
    spin_until(d, end);
    d->waiter = false;
    if (toe_ring_cons_prepare_sleep(&d->cq) < 0)
      toe_dev_die(d, -TOE_EPROTO);
    toe_dev_progress(d);
  }
  int rc = d->status && !poll_pending(d) ? -TOE_ENETDOWN : poll_pending(d) ? 1 : 0;
  toe_dev_unlock(d);
  return rc;
}

int toe_poll(toe_dev *d, struct toe_event *evs, int max, int timeout_ms)
{
  if (!d || max < 0 || (max > 0 && !evs))
    return -TOE_EINVAL;
  uint64_t deadline = toe_deadline(timeout_ms);
  toe_dev_lock(d);
  int n;
  for (;;) {
    if (!d->status)
      poll_drain(d);
    toe_dev_progress(d);
    n = collect(d, evs, max);
    if (n > 0 || max == 0 || timeout_ms == 0 || d->status || toe_mono_ns() >= deadline)
      break;
    self_disarm_if_idle(d);
    toe_dev_wait(d, deadline, true);
  }
  self_disarm_if_idle(d);
  toe_dev_unlock(d);
  return n;
}
