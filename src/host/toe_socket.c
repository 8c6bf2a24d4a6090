/*
 * libtoe: socket calls (docs/transport.md "Commands"): socket, bind, listen, accept, connect,
 * shutdown, close, options, names, statistics.
 *
 * Control calls (OPEN, BIND, LISTEN, UDP CONNECT, SET/GETSOCKOPT, STATS) complete at once in the
 * device, so they are submitted and waited for (bounded). TCP CONNECT and ACCEPT wait for the
 * network: they are asynchronous. A listener keeps a few ACCEPTs posted, each with a socket
 * record made in advance (its sock_data names it, so the new connection's events find it even
 * before the ACCEPT completion); taken connections wait in the listener's queue for toe_accept.
 * At most TOE_ACCEPTS_POSTED connections are pulled out of the device per listener; the rest
 * wait in the engine's backlog, so an application that stops accepting stops its listener, not
 * the library's socket table.
 */
#define _GNU_SOURCE

#include "host/toe_internal.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------ */
/* Socket records                                                                             */

struct sock *toe_sock_get(struct toe_dev *d, int sd)
{
  if (sd < 0 || (uint32_t)sd >= d->nsocks)
    return NULL;
  struct sock *s = &d->socks[sd];
  if (s->state == S_FREE || s->state == S_EMBRYO || s->state == S_CLOSING)
    return NULL;
  return s;
}

struct sock *toe_sock_enter(struct toe_dev *d, int sd)
{
  toe_dev_lock(d);
  toe_dev_progress(d);
  return toe_sock_get(d, sd);
}

uint64_t toe_sock_data(const struct toe_dev *d, const struct sock *s)
{
  return ((uint64_t)s->gen << 32) | (uint32_t)(s - d->socks);
}

struct sock *toe_sock_alloc(struct toe_dev *d, uint8_t type)
{
  uint32_t idx = d->sock_free_head;
  if (idx == TOE_NONE)
    return NULL;
  struct sock *s = &d->socks[idx];
  d->sock_free_head = s->next;
  if (d->sock_free_head == TOE_NONE)
    d->sock_free_tail = TOE_NONE;
  uint32_t gen = s->gen;
  memset(s, 0, sizeof(*s));
  s->gen = gen;
  s->type = type;
  s->state = S_OPEN;
  s->rx_head = s->rx_tail = TOE_NONE;
  s->tx_part = TOE_NONE;
  s->tx_max = d->tx_default;
  s->acc_head = s->acc_tail = TOE_NONE;
  s->listener = TOE_NONE;
  s->next = TOE_NONE;
  s->rprev = s->rnext = TOE_NONE;
  s->interest = TOE_POLLIN;
  return s;
}

void toe_sock_free(struct toe_dev *d, struct sock *s)
{
  toe_dev_changed(d);
  toe_sock_drop_buffers(d, s);
  s->state = S_FREE;
  toe_sock_update(d, s); /* leaves the ready list */
  if (s->flags & F_CLOSE_DEFER)
    d->deferred_closes--;
  s->flags = 0;
  s->handle = 0;
  if (++s->gen == 0) /* sock_data with gen 0 never names a socket */
    s->gen = 1;
  uint32_t idx = (uint32_t)(s - d->socks);
  s->next = TOE_NONE;
  if (d->sock_free_tail != TOE_NONE)
    d->socks[d->sock_free_tail].next = idx;
  else
    d->sock_free_head = idx;
  d->sock_free_tail = idx;
}

static uint32_t sock_idx(const struct toe_dev *d, const struct sock *s)
{
  return (uint32_t)(s - d->socks);
}

/* A non-async op record, waiting (bounded) for one to free up. */
static struct op *op_alloc_wait(struct toe_dev *d, uint8_t opcode, uint32_t sock)
{
  uint64_t deadline = toe_deadline((int)d->op_timeout_ms);
  struct op *op;
  while (!(op = toe_op_alloc(d, opcode, sock, false))) {
    if (d->status || toe_mono_ns() >= deadline)
      return NULL;
    toe_dev_wait(d, deadline, false);
  }
  return op;
}

/* The device's hand on this session's rings: what it consumed of the submission and fill rings,
 * and produced on the completion ring. Free-running; any change is work the device did for us. */
static uint32_t device_activity(const struct toe_dev *d)
{
  return atomic_load_explicit(toe_ring_atomic_(&d->sq.ctl->cons), memory_order_acquire) +
         atomic_load_explicit(toe_ring_atomic_(&d->cq.ctl->prod), memory_order_acquire) +
         atomic_load_explicit(toe_ring_atomic_(&d->fq.ctl->cons), memory_order_acquire);
}

int toe_op_sync(struct toe_dev *d, struct toe_abi_sqe *sqe, uint8_t opcode, uint32_t sock,
                uint32_t buf_first, uint32_t buf_n, struct toe_abi_cqe *cqe)
{
  if (d->status)
    return -TOE_ENETDOWN;
  struct op *op = op_alloc_wait(d, opcode, sock);
  if (!op)
    return d->status ? -TOE_ENETDOWN : -TOE_ETIMEDOUT;
  op->sync = true;
  op->buf_first = buf_first;
  op->buf_n = buf_n;
  toe_sqe_init(d, sqe, op, sqe->handle);
  int rc = toe_sq_push(d, sqe);
  if (rc < 0) {
    toe_op_free(d, op);
    return rc;
  }
  uint64_t deadline = toe_deadline((int)d->op_timeout_ms);
  uint32_t seen = device_activity(d);
  while (op->state == OP_PENDING) {
    if (toe_mono_ns() >= deadline && device_activity(d) != seen) {
      /* op_timeout_ms bounds the device's silence, not the call: an op queued behind this
       * socket's SENDs waits for the peer's window, however slow, as long as the device works
       * (include/toe/toe.h, "Control calls"). */
      seen = device_activity(d);
      deadline = toe_deadline((int)d->op_timeout_ms);
    } else if (toe_mono_ns() >= deadline) {
      /* The completion may still come: the record stays until then (complete_op frees it). It
       * no longer counts for the socket, which the caller may free at once. */
      if (op->sock != TOE_NONE && d->socks[op->sock].ops > 0)
        d->socks[op->sock].ops--;
      op->sock = TOE_NONE;
      op->state = OP_ABANDONED;
      return -TOE_ETIMEDOUT;
    }
    toe_dev_wait(d, deadline, false);
  }
  *cqe = op->cqe;
  toe_op_free(d, op);
  if (d->status && cqe->res == -TOE_ECONNABORTED)
    return -TOE_ENETDOWN; /* completed locally: the session ended */
  return cqe->res;
}

/* ------------------------------------------------------------------------------------------ */
/* Addresses                                                                                  */

int toe_sa_in(const struct sockaddr *sa, socklen_t len, struct toe_abi_sockaddr *out,
              bool allow_unspec)
{
  memset(out, 0, sizeof(*out));
  if (!sa || len < (socklen_t)sizeof(sa_family_t))
    return -TOE_EINVAL;
  if (sa->sa_family == AF_UNSPEC && allow_unspec)
    return 0;
  if (sa->sa_family == AF_INET6) {
    /* 1.7: the device checks the family against the socket's and its capability. */
    struct sockaddr_in6 sin6;
    if (len < (socklen_t)sizeof(sin6))
      return -TOE_EINVAL; /* as Linux: a short sockaddr_in6 is EINVAL */
    memcpy(&sin6, sa, sizeof(sin6));
    out->family = TOE_ABI_AF_INET6;
    out->port = ntohs(sin6.sin6_port);
    out->scope_id = sin6.sin6_scope_id;
    memcpy(out->addr, &sin6.sin6_addr, 16);
    return 0;
  }
  if (sa->sa_family != AF_INET)
    return -TOE_EAFNOSUPPORT;
  if (len < (socklen_t)sizeof(struct sockaddr_in))
    return -TOE_EINVAL;
  struct sockaddr_in sin;
  memcpy(&sin, sa, sizeof(sin));
  out->family = TOE_ABI_AF_INET;
  out->port = ntohs(sin.sin_port);
  memcpy(out->addr, &sin.sin_addr, 4);
  return 0;
}

void toe_sa_out_af(const struct toe_abi_sockaddr *in, bool v6, struct sockaddr *sa, socklen_t *len)
{
  if (!sa || !len)
    return;
  if (v6 || (in && in->family == TOE_ABI_AF_INET6)) {
    struct sockaddr_in6 sin6;
    memset(&sin6, 0, sizeof(sin6));
    sin6.sin6_family = AF_INET6;
    if (in && in->family == TOE_ABI_AF_INET6) {
      sin6.sin6_port = htons(in->port);
      sin6.sin6_scope_id = in->scope_id;
      memcpy(&sin6.sin6_addr, in->addr, 16);
    } else if (in && in->family == TOE_ABI_AF_INET) {
      /* an IPv4 address on an IPv6 socket: v4-mapped (RFC 4291 2.5.5.2), as Linux shows it */
      sin6.sin6_port = htons(in->port);
      sin6.sin6_addr.s6_addr[10] = 0xff;
      sin6.sin6_addr.s6_addr[11] = 0xff;
      memcpy(&sin6.sin6_addr.s6_addr[12], in->addr, 4);
    }
    size_t n = *len < (socklen_t)sizeof(sin6) ? (size_t)*len : sizeof(sin6);
    memcpy(sa, &sin6, n);
    *len = (socklen_t)sizeof(sin6);
    return;
  }
  struct sockaddr_in sin;
  memset(&sin, 0, sizeof(sin));
  sin.sin_family = AF_INET;
  if (in && in->family == TOE_ABI_AF_INET) {
    sin.sin_port = htons(in->port);
    memcpy(&sin.sin_addr, in->addr, 4);
  }
  size_t n = *len < (socklen_t)sizeof(sin) ? (size_t)*len : sizeof(sin);
  memcpy(sa, &sin, n);
  *len = (socklen_t)sizeof(sin);
}

void toe_sa_out(const struct toe_abi_sockaddr *in, struct sockaddr *sa, socklen_t *len)
{
  toe_sa_out_af(in, false, sa, len);
}

/* ------------------------------------------------------------------------------------------ */
/* socket, bind, listen, connect                                                              */

int toe_socket(toe_dev *d, int type)
{
  return toe_socket_af(d, AF_INET, type);
}

int toe_socket_af(toe_dev *d, int af, int type)
{
  if (!d)
    return -TOE_EBADF;
  if (type != TOE_SOCK_STREAM && type != TOE_SOCK_DGRAM)
    return -TOE_EINVAL;
  if (af != AF_INET && af != AF_INET6)
    return -TOE_EAFNOSUPPORT;
  toe_dev_lock(d);
  toe_dev_progress(d);
  int rc;
  struct sock *s = NULL;
  if (d->status) {
    rc = -TOE_ENETDOWN;
  } else if (!(d->caps & (type == TOE_SOCK_STREAM ? TOE_ABI_CAP_TCP : TOE_ABI_CAP_UDP))) {
    rc = -TOE_EPROTONOSUPPORT;
  } else if (af == AF_INET6 && !(d->caps & TOE_ABI_CAP_IPV6)) {
    rc = -TOE_EAFNOSUPPORT; /* a device before ABI 1.7 */
  } else if (!(s = toe_sock_alloc(d, (uint8_t)type))) {
    rc = -TOE_EMFILE;
  } else {
    struct toe_abi_sqe sqe;
    struct toe_abi_cqe cqe;
    memset(&sqe, 0, sizeof(sqe));
    sqe.u.open.family = af == AF_INET6 ? TOE_ABI_AF_INET6 : TOE_ABI_AF_INET;
    sqe.u.open.proto = type == TOE_SOCK_STREAM ? TOE_ABI_PROTO_TCP : TOE_ABI_PROTO_UDP;
    sqe.u.open.sock_data = toe_sock_data(d, s);
    rc = toe_op_sync(d, &sqe, TOE_ABI_OP_OPEN, sock_idx(d, s), TOE_NONE, 0, &cqe);
    if (rc == 0 && cqe.handle == TOE_ABI_HANDLE_NONE)
      rc = -TOE_EPROTO;
    if (rc < 0) {
      toe_sock_free(d, s);
    } else {
      s->handle = cqe.handle;
      s->v6 = af == AF_INET6;
      rc = (int)sock_idx(d, s);
      toe_sock_update(d, s);
    }
  }
  toe_dev_unlock(d);
  return rc;
}

int toe_bind(toe_dev *d, int sd, const struct sockaddr *addr, socklen_t len)
{
  if (!d)
    return -TOE_EBADF;
  struct toe_abi_sqe sqe;
  memset(&sqe, 0, sizeof(sqe));
  int rc = toe_sa_in(addr, len, &sqe.u.addr.addr, false);
  if (rc < 0)
    return rc;
  struct sock *s = toe_sock_enter(d, sd);
  if (!s) {
    rc = -TOE_EBADF;
  } else if (d->status) {
    rc = -TOE_ENETDOWN;
  } else if (s->state != S_OPEN || (s->flags & F_BOUND)) {
    rc = -TOE_EINVAL;
  } else {
    struct toe_abi_cqe cqe;
    sqe.handle = s->handle;
    rc = toe_op_sync(d, &sqe, TOE_ABI_OP_BIND, (uint32_t)sd, TOE_NONE, 0, &cqe);
    if (rc >= 0) {
      rc = 0;
      s->flags |= F_BOUND;
      s->local = cqe.u.addr.local;
    }
  }
  toe_dev_unlock(d);
  return rc;
}

void toe_listener_refill(struct toe_dev *d, struct sock *l)
{
  uint32_t target = l->backlog < TOE_ACCEPTS_POSTED ? l->backlog : TOE_ACCEPTS_POSTED;
  if (target == 0)
    target = 1;
  if ((l->flags & (F_ACC_LAZY | F_ACC_WANT)) == F_ACC_LAZY)
    return; /* shared, and nobody here asked for a connection yet */
  while (!d->status && l->state == S_LISTEN && !l->accept_err &&
         l->acc_posted + l->acc_count < target) {
    struct sock *e = toe_sock_alloc(d, TOE_SOCK_STREAM);
    if (!e)
      break; /* our table is full: connections wait in the device's backlog */
    e->state = S_EMBRYO;
    e->listener = sock_idx(d, l);
    struct op *op = toe_op_alloc(d, TOE_ABI_OP_ACCEPT, sock_idx(d, l), true);
    if (!op) {
      toe_sock_free(d, e);
      break; /* refilled when an op record frees (toe_sock_update_all -> next call) */
    }
    op->aux = sock_idx(d, e);
    struct toe_abi_sqe sqe;
    memset(&sqe, 0, sizeof(sqe));
    toe_sqe_init(d, &sqe, op, l->handle);
    sqe.u.accept.sock_data = toe_sock_data(d, e);
    if (toe_sq_push(d, &sqe) < 0) {
      toe_op_free(d, op);
      toe_sock_free(d, e);
      break;
    }
    l->acc_posted++;
  }
}

int toe_listen(toe_dev *d, int sd, int backlog)
{
  if (!d)
    return -TOE_EBADF;
  int rc;
  struct sock *s = toe_sock_enter(d, sd);
  if (!s) {
    rc = -TOE_EBADF;
  } else if (s->type != TOE_SOCK_STREAM) {
    rc = -TOE_EOPNOTSUPP;
  } else if (d->status) {
    rc = -TOE_ENETDOWN;
  } else if (s->state == S_LISTEN) {
    rc = 0; /* already listening (the device keeps its backlog) */
  } else if (s->state != S_OPEN || !(s->flags & F_BOUND)) {
    rc = -TOE_EINVAL;
  } else {
    struct toe_abi_sqe sqe;
    struct toe_abi_cqe cqe;
    memset(&sqe, 0, sizeof(sqe));
    sqe.handle = s->handle;
    sqe.u.listen.backlog = backlog < 1 ? 1u : (uint32_t)backlog;
    rc = toe_op_sync(d, &sqe, TOE_ABI_OP_LISTEN, (uint32_t)sd, TOE_NONE, 0, &cqe);
    if (rc >= 0) {
      rc = 0;
      s->state = S_LISTEN;
      s->backlog = sqe.u.listen.backlog;
      toe_listener_refill(d, s);
      toe_sock_update(d, s);
    }
  }
  toe_dev_unlock(d);
  return rc;
}

void toe_on_accept_done(struct toe_dev *d, struct op *op, const struct toe_abi_cqe *c)
{
  struct sock *l = &d->socks[op->sock];
  struct sock *e = op->aux < d->nsocks ? &d->socks[op->aux] : NULL;
  if (l->acc_posted)
    l->acc_posted--;
  if (!e || e->state != S_EMBRYO || e->listener != op->sock) {
    d->info.bad_cqes++;
    return;
  }
  uint32_t h = c->u.accept.handle;
  if (c->res >= 0 && h != TOE_ABI_HANDLE_NONE && (e->handle == 0 || e->handle == h)) {
    e->handle = h;
    e->peer = c->u.accept.peer;
    e->local = l->local;
    e->v6 = l->v6; /* a connection has its listener's family */
    e->flags |= F_BOUND;
    if (l->state == S_LISTEN) {
      e->flags |= F_HELD_ACCEPT;
      e->next = TOE_NONE;
      if (l->acc_tail != TOE_NONE)
        d->socks[l->acc_tail].next = op->aux;
      else
        l->acc_head = op->aux;
      l->acc_tail = op->aux;
      l->acc_count++;
    } else {
      toe_sock_submit_close(d, e, true); /* the listener is closing: reset it */
    }
  } else {
    /* No connection came of it (cancelled by our close, or refused by the device). */
    toe_sock_free(d, e);
    if (c->res < 0 && c->res != -TOE_ECONNABORTED && l->state == S_LISTEN)
      l->accept_err = c->res;
    else if (c->res >= 0)
      d->info.bad_cqes++;
  }
  if (l->state == S_LISTEN)
    toe_listener_refill(d, l);
  toe_sock_update(d, l);
}

int toe_accept(toe_dev *d, int sd, struct sockaddr *peer, socklen_t *len)
{
  if (!d)
    return -TOE_EBADF;
  int rc;
  struct sock *l = toe_sock_enter(d, sd);
  if (!l) {
    rc = -TOE_EBADF;
  } else if (l->type != TOE_SOCK_STREAM) {
    rc = -TOE_EOPNOTSUPP;
  } else if (l->state != S_LISTEN) {
    rc = -TOE_EINVAL;
  } else if (l->acc_count == 0) {
    if ((l->flags & (F_ACC_LAZY | F_ACC_WANT)) == F_ACC_LAZY) {
      l->flags |= F_ACC_WANT; /* a shared listener asks for connections from now on */
      toe_listener_refill(d, l);
    }
    if (l->accept_err) {
      rc = l->accept_err;
      l->accept_err = 0;
      toe_listener_refill(d, l);
    } else {
      rc = d->status ? -TOE_ENETDOWN : -TOE_EAGAIN;
    }
    toe_sock_update(d, l);
  } else {
    uint32_t idx = l->acc_head;
    struct sock *e = &d->socks[idx];
    l->acc_head = e->next;
    if (l->acc_head == TOE_NONE)
      l->acc_tail = TOE_NONE;
    l->acc_count--;
    e->next = TOE_NONE;
    e->flags &= (uint16_t)~F_HELD_ACCEPT;
    e->listener = TOE_NONE;
    e->state = S_CONNECTED;
    if ((e->flags & F_DEV_GONE) && !e->soerror)
      e->soerror = -TOE_ENETDOWN;
    toe_sa_out(&e->peer, peer, len);
    toe_sock_update(d, e);
    toe_listener_refill(d, l);
    toe_sock_update(d, l);
    rc = (int)idx;
  }
  toe_dev_unlock(d);
  return rc;
}

int toe_share(toe_dev *d, int sd, uint64_t *token)
{
  if (!d || !token)
    return -TOE_EBADF;
  int rc;
  struct sock *s = toe_sock_enter(d, sd);
  if (!s) {
    rc = -TOE_EBADF;
  } else if (d->status) {
    rc = -TOE_ENETDOWN;
  } else if (!(d->caps & TOE_ABI_CAP_SHARE)) {
    rc = -TOE_EOPNOTSUPP;
  } else if (s->type == TOE_SOCK_STREAM && s->state != S_LISTEN && s->state != S_CONNECTED) {
    rc = -TOE_EOPNOTSUPP;
  } else {
    /* The device hands back our posted ACCEPTs (-ECONNABORTED, before the SHARE completes):
     * no reposting until this process asks for connections again. A connection's delivery to
     * us stops instead, until TOE_OPT_RXBUFS is set again (the device's side, transport.md). */
    uint16_t old = s->flags;
    if (s->type == TOE_SOCK_STREAM && s->state == S_LISTEN)
      s->flags = (uint16_t)((s->flags | F_ACC_LAZY) & ~F_ACC_WANT);
    struct toe_abi_sqe sqe;
    struct toe_abi_cqe cqe;
    memset(&sqe, 0, sizeof(sqe));
    sqe.handle = s->handle;
    rc = toe_op_sync(d, &sqe, TOE_ABI_OP_SHARE, (uint32_t)sd, TOE_NONE, 0, &cqe);
    if (rc >= 0) {
      rc = 0;
      *token = cqe.u.share.token;
    } else {
      s->flags = old;
      if (s->state == S_LISTEN)
        toe_listener_refill(d, s);
    }
    toe_sock_update(d, s);
  }
  toe_dev_unlock(d);
  return rc;
}

int toe_adopt(toe_dev *d, uint64_t token)
{
  if (!d)
    return -TOE_EBADF;
  toe_dev_lock(d);
  toe_dev_progress(d);
  int rc;
  struct sock *s = NULL;
  if (d->status) {
    rc = -TOE_ENETDOWN;
  } else if (!(d->caps & TOE_ABI_CAP_SHARE)) {
    rc = -TOE_EOPNOTSUPP;
  } else if (!token) {
    rc = -TOE_ENOENT;
  } else if (!(s = toe_sock_alloc(d, TOE_SOCK_STREAM))) {
    rc = -TOE_EMFILE;
  } else {
    struct toe_abi_sqe sqe;
    struct toe_abi_cqe cqe;
    memset(&sqe, 0, sizeof(sqe));
    sqe.u.adopt.token = token;
    sqe.u.adopt.sock_data = toe_sock_data(d, s);
    rc = toe_op_sync(d, &sqe, TOE_ABI_OP_ADOPT, sock_idx(d, s), TOE_NONE, 0, &cqe);
    if (rc == 0 && (cqe.handle == TOE_ABI_HANDLE_NONE || (cqe.u.adopt.proto != TOE_ABI_PROTO_TCP &&
                                                          cqe.u.adopt.proto != TOE_ABI_PROTO_UDP)))
      rc = -TOE_EPROTO;
    if (rc < 0) {
      toe_sock_free(d, s);
    } else {
      s->handle = cqe.handle;
      s->local = cqe.u.adopt.local;
      s->v6 = cqe.u.adopt.local.family == TOE_ABI_AF_INET6; /* 1.7 */
      s->flags |= F_BOUND;
      if (cqe.u.adopt.proto == TOE_ABI_PROTO_TCP &&
          cqe.u.adopt.state == TOE_ABI_ADOPT_TCP_CONNECTED) {
        s->type = TOE_SOCK_STREAM;
        s->state = S_CONNECTED;
        memset(&s->peer, 0, sizeof(s->peer));
        s->peer.family = s->v6 ? TOE_ABI_AF_INET6 : TOE_ABI_AF_INET;
        s->peer.port = cqe.u.adopt.peer_port;
        if (!s->v6) /* an IPv6 peer does not fit: toe_getpeername asks STATS SOCKET */
          memcpy(s->peer.addr, cqe.u.adopt.peer_addr, sizeof(cqe.u.adopt.peer_addr));
      } else if (cqe.u.adopt.proto == TOE_ABI_PROTO_TCP) {
        s->type = TOE_SOCK_STREAM;
        s->state = S_LISTEN;
        s->backlog = TOE_ACCEPTS_POSTED;
        s->flags |= F_ACC_LAZY;
      } else {
        s->type = TOE_SOCK_DGRAM;
        s->state = cqe.u.adopt.state == TOE_ABI_ADOPT_CONNECTED ? S_CONNECTED : S_OPEN;
      }
      rc = (int)sock_idx(d, s);
      toe_sock_update(d, s);
    }
  }
  toe_dev_unlock(d);
  return rc;
}

/* ADOPT with a flag (F_BIND, F_DROP): acts on a token, makes no socket. */
static int token_op(toe_dev *d, uint64_t token, uint32_t flags, pid_t pid)
{
  if (!d)
    return -TOE_EBADF;
  toe_dev_lock(d);
  toe_dev_progress(d);
  int rc;
  if (d->status) {
    rc = -TOE_ENETDOWN;
  } else if (!(d->caps & TOE_ABI_CAP_SHARE)) {
    rc = -TOE_EOPNOTSUPP;
  } else if (!token || pid < 0) {
    rc = token ? -TOE_EINVAL : -TOE_ENOENT;
  } else {
    struct toe_abi_sqe sqe;
    struct toe_abi_cqe cqe;
    memset(&sqe, 0, sizeof(sqe));
    sqe.u.adopt.token = token;
    sqe.u.adopt.adopt_flags = flags;
    sqe.u.adopt.pid = (uint32_t)pid;
    rc = toe_op_sync(d, &sqe, TOE_ABI_OP_ADOPT, TOE_NONE, TOE_NONE, 0, &cqe);
    if (rc > 0)
      rc = 0;
  }
  toe_dev_unlock(d);
  return rc;
}

int toe_token_bind(toe_dev *d, uint64_t token, pid_t pid)
{
  return token_op(d, token, TOE_ABI_ADOPT_F_BIND, pid);
}

int toe_token_drop(toe_dev *d, uint64_t token)
{
  return token_op(d, token, TOE_ABI_ADOPT_F_DROP, 0);
}

int toe_connect(toe_dev *d, int sd, const struct sockaddr *addr, socklen_t len)
{
  if (!d)
    return -TOE_EBADF;
  toe_dev_lock(d);
  toe_dev_progress(d);
  int rc;
  struct toe_abi_sqe sqe;
  memset(&sqe, 0, sizeof(sqe));
  struct sock *s = toe_sock_get(d, sd);
  if (!s) {
    rc = -TOE_EBADF;
  } else if ((rc = toe_sa_in(addr, len, &sqe.u.addr.addr, s->type == TOE_SOCK_DGRAM)) < 0) {
    /* rc set */
  } else if (d->status) {
    rc = -TOE_ENETDOWN;
  } else if (s->type == TOE_SOCK_DGRAM) {
    struct toe_abi_cqe cqe;
    sqe.handle = s->handle;
    rc = toe_op_sync(d, &sqe, TOE_ABI_OP_CONNECT, (uint32_t)sd, TOE_NONE, 0, &cqe);
    if (rc >= 0) {
      rc = 0;
      s->peer = sqe.u.addr.addr;
      s->state = s->peer.family ? S_CONNECTED : S_OPEN;
      if (cqe.u.addr.local.family) {
        s->local = cqe.u.addr.local;
        s->flags |= F_BOUND;
      }
      toe_sock_update(d, s);
    }
  } else if (s->state == S_CONNECTING) {
    rc = -TOE_EALREADY;
  } else if (s->state == S_CONNECTED || s->state == S_LISTEN) {
    rc = -TOE_EISCONN;
  } else {
    struct op *op = toe_op_alloc(d, TOE_ABI_OP_CONNECT, (uint32_t)sd, true);
    if (!op) {
      rc = -TOE_EAGAIN;
    } else {
      toe_sqe_init(d, &sqe, op, s->handle);
      rc = toe_sq_push(d, &sqe);
      if (rc < 0) {
        toe_op_free(d, op);
      } else {
        s->flags &= (uint16_t)~F_CONN_DEAD;
        s->soerror = 0;
        s->state = S_CONNECTING;
        s->peer = sqe.u.addr.addr;
        toe_sock_update(d, s);
        rc = -TOE_EINPROGRESS;
      }
    }
  }
  toe_dev_unlock(d);
  return rc;
}

void toe_on_connect_done(struct toe_dev *d, struct op *op, const struct toe_abi_cqe *c)
{
  struct sock *s = &d->socks[op->sock];
  if (s->state != S_CONNECTING)
    return; /* closed meanwhile */
  if (c->res >= 0) {
    s->state = S_CONNECTED;
    s->local = c->u.addr.local;
    s->flags |= F_BOUND;
  } else {
    s->state = S_OPEN;
    s->flags |= F_CONN_DEAD;
    s->soerror = c->res;
  }
  toe_sock_update(d, s);
}

/* ------------------------------------------------------------------------------------------ */
/* shutdown, close                                                                            */

int toe_shutdown(toe_dev *d, int sd, int how)
{
  if (!d)
    return -TOE_EBADF;
  int rc = 0;
  struct sock *s = toe_sock_enter(d, sd);
  if (!s) {
    rc = -TOE_EBADF;
  } else if (how < TOE_SHUT_RD || how > TOE_SHUT_RDWR) {
    rc = -TOE_EINVAL;
  } else if (s->type != TOE_SOCK_STREAM) {
    rc = -TOE_EOPNOTSUPP;
  } else if ((s->state != S_CONNECTED && s->state != S_CONNECTING) || (s->flags & F_DEV_GONE)) {
    rc = -TOE_ENOTCONN;
  } else {
    if (how != TOE_SHUT_WR) {
      s->flags |= F_SHUT_RD;
      /* Queued data is discarded; pieces lent by toe_recv_zc stay the caller's. */
      for (uint32_t id = s->rx_head; id != TOE_NONE;) {
        uint32_t next = d->rxb[id].next;
        toe_fq_return(d, id);
        id = next;
      }
      s->rx_head = s->rx_tail = TOE_NONE;
      s->rx_nbufs = s->rx_dgrams = 0;
      s->rx_bytes = 0;
    }
    toe_dev_changed(d);
    if (how != TOE_SHUT_RD) {
      s->flags |= F_SHUT_WR;
      if (s->tx_part != TOE_NONE) {
        toe_tx_unref(d, s->tx_part, 1);
        s->tx_part = TOE_NONE;
      }
    }
    if (!(s->flags & F_CONN_DEAD)) {
      /* Ordered after the sends already submitted (the FIN follows their data). The result
       * matters to nobody: the completion only frees the record. */
      struct op *op = op_alloc_wait(d, TOE_ABI_OP_SHUTDOWN, (uint32_t)sd);
      if (!op) {
        rc = d->status ? -TOE_ENOTCONN : -TOE_EAGAIN;
      } else {
        struct toe_abi_sqe sqe;
        memset(&sqe, 0, sizeof(sqe));
        toe_sqe_init(d, &sqe, op, s->handle);
        sqe.u.shutdown.how = (uint32_t)how;
        if (toe_sq_push(d, &sqe) < 0)
          toe_op_free(d, op);
      }
    }
    toe_sock_update(d, s);
  }
  toe_dev_unlock(d);
  return rc;
}

void toe_sock_submit_close(struct toe_dev *d, struct sock *s, bool abort)
{
  toe_dev_changed(d); /* a thread blocked on this socket returns (-EBADF) */
  s->state = S_CLOSING;
  toe_sock_drop_buffers(d, s);
  toe_sock_update(d, s);
  if (abort)
    s->flags |= F_LINGER_ABORT;
  if (d->status || s->handle == TOE_ABI_HANDLE_NONE) {
    if (s->ops == 0)
      toe_sock_free(d, s);
    return;
  }
  struct op *op = toe_op_alloc(d, TOE_ABI_OP_CLOSE, sock_idx(d, s), false);
  if (!op) {
    if (!(s->flags & F_CLOSE_DEFER)) {
      s->flags |= F_CLOSE_DEFER;
      d->deferred_closes++;
    }
    return;
  }
  struct toe_abi_sqe sqe;
  memset(&sqe, 0, sizeof(sqe));
  toe_sqe_init(d, &sqe, op, s->handle);
  sqe.u.close.close_flags = abort ? TOE_ABI_CLOSE_F_ABORT : 0;
  if (toe_sq_push(d, &sqe) < 0)
    toe_op_free(d, op); /* the session ended: toe_dev_die freed what was left */
}

void toe_retry_deferred_closes(struct toe_dev *d)
{
  for (uint32_t i = 0; i < d->nsocks && d->deferred_closes; i++) {
    struct sock *s = &d->socks[i];
    if (!(s->flags & F_CLOSE_DEFER))
      continue;
    s->flags &= (uint16_t)~F_CLOSE_DEFER;
    d->deferred_closes--;
    toe_sock_submit_close(d, s, (s->flags & F_LINGER_ABORT) != 0);
    if (s->flags & F_CLOSE_DEFER)
      break; /* still no record */
  }
}

void toe_close_locked(struct toe_dev *d, struct sock *s)
{
  /* Unread data at close means a reset (RFC 9293 3.6); so does SO_LINGER with timeout 0. */
  bool abort = (s->flags & F_LINGER_ABORT) || (s->type == TOE_SOCK_STREAM && s->rx_bytes > 0);
  if (s->state == S_LISTEN) {
    /* Connections taken from the device but never accepted: reset them. Posted ACCEPTs are
     * cancelled by the listener's CLOSE (-ECONNABORTED) and free their records then. */
    while (s->acc_head != TOE_NONE) {
      struct sock *e = &d->socks[s->acc_head];
      s->acc_head = e->next;
      e->next = TOE_NONE;
      e->flags &= (uint16_t)~F_HELD_ACCEPT;
      toe_sock_submit_close(d, e, true);
    }
    s->acc_tail = TOE_NONE;
    s->acc_count = 0;
  }
  toe_sock_submit_close(d, s, abort);
}

int toe_close(toe_dev *d, int sd)
{
  if (!d)
    return -TOE_EBADF;
  struct sock *s = toe_sock_enter(d, sd);
  int rc = -TOE_EBADF;
  if (s) {
    toe_close_locked(d, s);
    rc = 0;
  }
  toe_dev_unlock(d);
  return rc;
}

void toe_on_close_done(struct toe_dev *d, struct op *op, const struct toe_abi_cqe *c)
{
  (void)c;
  if (op->sock == TOE_NONE)
    return; /* the CLOSE of an orphan (an OPEN we stopped waiting for) */
  struct sock *s = &d->socks[op->sock];
  if (s->state == S_CLOSING && s->ops == 0)
    toe_sock_free(d, s);
}

/* ------------------------------------------------------------------------------------------ */
/* Options, names, statistics                                                                 */

static bool opt_known(int opt)
{
  return (opt >= TOE_OPT_RCVBUF && opt <= TOE_OPT_REUSEPORT) || opt == TOE_OPT_RXBUFS ||
         opt == TOE_OPT_NREAD || opt == TOE_OPT_ERROR || opt == TOE_OPT_TXBUFS ||
         opt == TOE_OPT_RECVERR || opt == TOE_OPT_RXMETA || /* 1.5: the device decides */
         opt == TOE_OPT_V6ONLY;                             /* 1.7: as does this */
}

static bool opt_tcp_only(int opt)
{
  return (opt >= TOE_OPT_NODELAY && opt <= TOE_OPT_MAXSEG) || opt == TOE_OPT_LINGER_ABORT;
}

int toe_setsockopt(toe_dev *d, int sd, int opt, int64_t value)
{
  if (!d)
    return -TOE_EBADF;
  int rc;
  struct sock *s = toe_sock_enter(d, sd);
  if (!s) {
    rc = -TOE_EBADF;
  } else if (!opt_known(opt) || opt == TOE_OPT_ERROR || opt == TOE_OPT_NREAD ||
             (s->type == TOE_SOCK_DGRAM && opt_tcp_only(opt))) {
    rc = -TOE_ENOPROTOOPT;
  } else if (opt == TOE_OPT_TXBUFS) {
    uint32_t tx_count = d->layout.buf_count - d->rx_count;
    if (value < 1 || value > (int64_t)tx_count) {
      rc = -TOE_EINVAL;
    } else {
      s->tx_max = (uint32_t)value;
      toe_sock_update(d, s);
      rc = 0;
    }
  } else if (d->status) {
    rc = -TOE_ENETDOWN;
  } else {
    struct toe_abi_sqe sqe;
    struct toe_abi_cqe cqe;
    memset(&sqe, 0, sizeof(sqe));
    sqe.handle = s->handle;
    sqe.u.sockopt.opt = (uint32_t)opt;
    sqe.u.sockopt.value = value;
    rc = toe_op_sync(d, &sqe, TOE_ABI_OP_SETSOCKOPT, (uint32_t)sd, TOE_NONE, 0, &cqe);
    if (rc >= 0) {
      rc = 0;
      if (opt == TOE_OPT_LINGER_ABORT) {
        if (value)
          s->flags |= F_LINGER_ABORT;
        else
          s->flags &= (uint16_t)~F_LINGER_ABORT;
      }
    }
  }
  toe_dev_unlock(d);
  return rc;
}

int toe_set_owner(toe_dev *d, int sd, uint32_t pid, const char *comm)
{
  if (!d)
    return -TOE_EBADF;
  if (pid > INT32_MAX)
    return -TOE_EINVAL;
  uint8_t name[16] = {0};
  if (comm)
    memcpy(name, comm, strnlen(comm, 15));
  uint64_t lo = 0, hi = 0;
  for (int i = 0; i < 8; i++) {
    lo |= (uint64_t)name[i] << (8 * i);
    hi |= (uint64_t)name[8 + i] << (8 * i);
  }
  const struct {
    uint32_t opt;
    int64_t value;
  } tag[] = {{TOE_ABI_SO_OWNER_PID, pid},
             {TOE_ABI_SO_OWNER_COMM_LO, (int64_t)lo},
             {TOE_ABI_SO_OWNER_COMM_HI, (int64_t)hi}};
  int rc = 0;
  struct sock *s = toe_sock_enter(d, sd);
  if (!s)
    rc = -TOE_EBADF;
  else if (!(d->caps & TOE_ABI_CAP_ORIGIN))
    rc = -TOE_ENOPROTOOPT;
  else if (d->status)
    rc = -TOE_ENETDOWN;
  for (size_t i = 0; rc == 0 && i < sizeof(tag) / sizeof(tag[0]); i++) {
    struct toe_abi_sqe sqe;
    struct toe_abi_cqe cqe;
    memset(&sqe, 0, sizeof(sqe));
    sqe.handle = s->handle;
    sqe.u.sockopt.opt = tag[i].opt;
    sqe.u.sockopt.value = tag[i].value;
    rc = toe_op_sync(d, &sqe, TOE_ABI_OP_SETSOCKOPT, (uint32_t)sd, TOE_NONE, 0, &cqe);
    if (rc > 0)
      rc = 0;
  }
  toe_dev_unlock(d);
  return rc;
}

int toe_getsockopt(toe_dev *d, int sd, int opt, int64_t *value)
{
  if (!d)
    return -TOE_EBADF;
  if (!value)
    return -TOE_EINVAL;
  int rc;
  struct sock *s = toe_sock_enter(d, sd);
  if (!s) {
    rc = -TOE_EBADF;
  } else if (!opt_known(opt) || (s->type == TOE_SOCK_DGRAM && opt_tcp_only(opt))) {
    rc = -TOE_ENOPROTOOPT;
  } else if (opt == TOE_OPT_ERROR) {
    /* Errors reach us as events; the pending one is here. Reading clears it. */
    *value = s->soerror;
    s->soerror = 0;
    toe_sock_update(d, s);
    rc = 0;
  } else if (opt == TOE_OPT_TXBUFS) {
    *value = s->tx_max;
    rc = 0;
  } else if (d->status) {
    if (opt == TOE_OPT_NREAD) {
      *value = (int64_t)s->rx_bytes;
      rc = 0;
    } else {
      rc = -TOE_ENETDOWN;
    }
  } else {
    struct toe_abi_sqe sqe;
    struct toe_abi_cqe cqe;
    memset(&sqe, 0, sizeof(sqe));
    sqe.handle = s->handle;
    sqe.u.sockopt.opt = (uint32_t)opt;
    rc = toe_op_sync(d, &sqe, TOE_ABI_OP_GETSOCKOPT, (uint32_t)sd, TOE_NONE, 0, &cqe);
    if (rc >= 0) {
      rc = 0;
      *value = cqe.u.sockopt.value;
      if (opt == TOE_OPT_NREAD) /* plus what is lent to us and not read yet */
        *value += (int64_t)s->rx_bytes;
    }
  }
  toe_dev_unlock(d);
  return rc;
}

static bool sa_unknown(const struct toe_abi_sockaddr *a)
{
  static const uint8_t zero[16];
  return a->family == 0 || a->port == 0 ||
         memcmp(a->addr, zero, a->family == TOE_ABI_AF_INET6 ? 16 : 4) == 0;
}

/* STATS into `out` (lock held). */
static ssize_t stats_locked(struct toe_dev *d, struct sock *s, int kind, void *out, size_t len)
{
  if (!(d->caps & TOE_ABI_CAP_STATS))
    return -TOE_EOPNOTSUPP;
  if (kind != TOE_STATS_CLIENT && kind != TOE_STATS_SOCKET && kind != TOE_STATS_ENGINE &&
      kind != TOE_STATS_FLOWS && kind != TOE_STATS_DEVICE)
    return -TOE_EINVAL;
  if (kind == TOE_STATS_FLOWS && !(d->caps & TOE_ABI_CAP_FLOWS))
    return -TOE_EOPNOTSUPP;
  if (kind == TOE_STATS_DEVICE && !(d->caps & TOE_ABI_CAP_DEVICE))
    return -TOE_EOPNOTSUPP;
  if (kind == TOE_STATS_SOCKET && !s)
    return -TOE_EBADF;
  if (d->status)
    return -TOE_ENETDOWN;
  uint32_t bs = d->layout.buf_size;
  uint64_t nb64 = len ? (len + bs - 1) / bs : 1;
  if (nb64 > d->layout.buf_count - d->rx_count || len > UINT32_MAX)
    return -TOE_EMSGSIZE;
  uint32_t nb = (uint32_t)nb64, got = 0, first;
  uint64_t deadline = toe_deadline((int)d->op_timeout_ms);
  while ((first = toe_tx_alloc(d, nb, true, TOE_NONE, &got)) == TOE_NONE) {
    if (d->status)
      return -TOE_ENETDOWN;
    if (toe_mono_ns() >= deadline)
      return -TOE_ETIMEDOUT;
    d->tx_starved = true;
    toe_dev_wait(d, deadline, false);
  }
  struct toe_abi_sqe sqe;
  struct toe_abi_cqe cqe;
  memset(&sqe, 0, sizeof(sqe));
  sqe.handle = kind == TOE_STATS_SOCKET ? s->handle : 0;
  sqe.u.stats.kind = (uint32_t)kind;
  sqe.u.stats.len = (uint32_t)len;
  sqe.u.stats.buf_off = toe_buf_off(d, first);
  int rc = toe_op_sync(d, &sqe, TOE_ABI_OP_STATS, s ? sock_idx(d, s) : TOE_NONE, first, nb, &cqe);
  if (rc == -TOE_ETIMEDOUT)
    return rc; /* the late completion gives the buffers back */
  if (rc >= 0 && out)
    memcpy(out, toe_buf_ptr(d, first), (size_t)rc < len ? (size_t)rc : len);
  toe_tx_unref(d, first, nb);
  return rc;
}

ssize_t toe_stats(toe_dev *d, int sd, int kind, void *out, size_t len)
{
  if (!d)
    return -TOE_EBADF;
  if (len && !out)
    return -TOE_EINVAL;
  toe_dev_lock(d);
  toe_dev_progress(d);
  struct sock *s = kind == TOE_STATS_SOCKET ? toe_sock_get(d, sd) : NULL;
  ssize_t rc = stats_locked(d, s, kind, out, len);
  toe_dev_unlock(d);
  return rc;
}

int toe_getsockname(toe_dev *d, int sd, struct sockaddr *addr, socklen_t *len)
{
  if (!d)
    return -TOE_EBADF;
  if (!addr || !len)
    return -TOE_EINVAL;
  int rc = 0;
  struct sock *s = toe_sock_enter(d, sd);
  if (!s) {
    rc = -TOE_EBADF;
  } else {
    /* A wildcard bind or an accepted connection: the device knows the exact address. */
    if (sa_unknown(&s->local) && !d->status && s->handle && (d->caps & TOE_ABI_CAP_STATS)) {
      struct toe_abi_sock_stats st;
      if (stats_locked(d, s, TOE_STATS_SOCKET, &st, sizeof(st)) >= (ssize_t)sizeof(st) &&
          (st.local.family == TOE_ABI_AF_INET || st.local.family == TOE_ABI_AF_INET6) &&
          st.local.port != 0)
        s->local = st.local;
    }
    toe_sa_out_af(&s->local, s->v6, addr, len);
  }
  toe_dev_unlock(d);
  return rc;
}

int toe_getpeername(toe_dev *d, int sd, struct sockaddr *addr, socklen_t *len)
{
  if (!d)
    return -TOE_EBADF;
  if (!addr || !len)
    return -TOE_EINVAL;
  int rc = 0;
  struct sock *s = toe_sock_enter(d, sd);
  if (!s)
    rc = -TOE_EBADF;
  else if (s->state != S_CONNECTED || s->peer.family == 0)
    rc = -TOE_ENOTCONN;
  else {
    if (s->v6 && sa_unknown(&s->peer) && !d->status && s->handle) {
      /* an adopted IPv6 connection: ADOPT carries only an IPv4 peer (1.7) */
      struct toe_abi_sock_stats st;
      if (stats_locked(d, s, TOE_STATS_SOCKET, &st, sizeof(st)) >= (ssize_t)sizeof(st) &&
          st.remote.family == TOE_ABI_AF_INET6)
        s->peer = st.remote;
    }
    toe_sa_out_af(&s->peer, s->v6, addr, len);
  }
  toe_dev_unlock(d);
  return rc;
}
