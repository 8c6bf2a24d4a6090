/*
 * Command execution: the operations table, SQE dispatch after validation, OPEN / BIND / LISTEN /
 * CONNECT / ACCEPT / SEND / SHUTDOWN / CLOSE against the engine, a socket's send queue, and
 * closing sockets.
 */
#define _GNU_SOURCE

#include "device/session/session_internal.h"

#include <string.h>

/* ------------------------------------------------------------------------------------------ */
/* Operations table                                                                           */

static uint32_t op_alloc(struct ctl_client *cl, const struct toe_abi_sqe *sqe)
{
  uint32_t i = cl->ops_free;
  if (i == CTL_NONE)
    return CTL_NONE; /* not reached: an SQE is taken only with a free op */
  cl->ops_free = cl->ops[i].next;
  cl->ops_navail--;
  cl->ops[i].sqe = *sqe;
  cl->ops[i].done = 0;
  cl->ops[i].next = CTL_NONE;
  return i;
}

static void op_free(struct ctl_client *cl, uint32_t i)
{
  cl->ops[i].next = cl->ops_free;
  cl->ops_free = i;
  cl->ops_navail++;
  cl->resources = true; /* an SQE that waited for an op slot may go now */
}

static void q_push(struct ctl_client *cl, uint32_t *head, uint32_t *tail, uint32_t i)
{
  cl->ops[i].next = CTL_NONE;
  if (*tail == CTL_NONE)
    *head = i;
  else
    cl->ops[*tail].next = i;
  *tail = i;
}

static uint32_t q_pop(struct ctl_client *cl, uint32_t *head, uint32_t *tail)
{
  uint32_t i = *head;
  if (i == CTL_NONE)
    return CTL_NONE;
  *head = cl->ops[i].next;
  if (*head == CTL_NONE)
    *tail = CTL_NONE;
  return i;
}

/* ------------------------------------------------------------------------------------------ */
/* Closing sockets                                                                            */

/* Completes every op still waiting on k with `err` (or drops them silently if `quiet`). */
void ses_cancel_ops(struct ctl_client *cl, struct ctl_sock *k, int err, bool sends, bool quiet)
{
  uint32_t i;
  if (k->connect_op != CTL_NONE) {
    i = k->connect_op;
    k->connect_op = CTL_NONE;
    if (!quiet)
      ses_finish_res(cl, &cl->ops[i].sqe, err);
    op_free(cl, i);
  }
  while ((i = q_pop(cl, &k->acceptq_head, &k->acceptq_tail)) != CTL_NONE) {
    if (!quiet)
      ses_finish_res(cl, &cl->ops[i].sqe, err);
    op_free(cl, i);
  }
  if (!sends)
    return;
  while ((i = q_pop(cl, &k->sendq_head, &k->sendq_tail)) != CTL_NONE) {
    if (!quiet)
      ses_finish_res(cl, &cl->ops[i].sqe, err);
    op_free(cl, i);
  }
}

/* Frees k's handle and record (the engine socket is closed already). */
static void sock_release(struct ctl_client *cl, struct ctl_sock *k)
{
  ses_list_remove(cl, k);
  if (k->index < cl->abi.layout.max_handles && cl->hs[k->index] == k) {
    cl->hs[k->index] = NULL;
    toe_abi_handle_free(&cl->abi, k->index);
  }
  if (k->charged)
    ctl_quota_give(cl->dev, cl->uid, k->proto == TOE_ABI_PROTO_TCP ? CTL_Q_TCP : CTL_Q_UDP);
  ses_sock_free(cl->dev, k);
  if (cl->dev->stats.socks_inuse)
    cl->dev->stats.socks_inuse--;
  cl->resources = true; /* a handle came free: a waiting ACCEPT may proceed */
}

/* Closes k in the engine: gracefully (FIN after queued data; RST if data is unread, RFC 9293
 * 3.6) or with a reset, and frees it. */
void ses_sock_close(struct ctl_client *cl, struct ctl_sock *k, bool abort)
{
  struct toe_stack *st = cl->dev->st;
  struct toe_sock *s = k->s;
  k->s = NULL;
  if (k->held) {
    toe_pbuf_free(st, k->held);
    k->held = NULL;
  }
  struct ctl_share *sh = k->sh;
  if (sh) {
    /* One holder less: the socket lives on while another holder or a token has it. */
    ses_share_unlink(sh, k);
    sock_release(cl, k);
    ses_share_put(cl->dev, sh);
    return;
  }
  /* The record goes first: the engine may report other sockets' events from inside the close,
   * never this one's (it unlinks them), and nothing may find a half-freed record. */
  uint8_t proto = k->proto;
  sock_release(cl, k);
  if (!s)
    return;
  if (proto == TOE_ABI_PROTO_TCP && abort)
    toe_tcp_abort(st, s);
  else
    toe_sock_close(st, s); /* TCP: graceful close; UDP: closed */
}

/* ------------------------------------------------------------------------------------------ */
/* Sending                                                                                    */

/*
 * Moves as much of SEND `sqe` as the engine takes (bytes so far in *done). Returns true when the
 * SEND is finished (result in *res), false when it must wait for send space.
 */
static bool send_try(struct ctl_client *cl, struct ctl_sock *k, const struct toe_abi_sqe *sqe,
                     uint32_t *done, int *res)
{
  struct toe_stack *st = cl->dev->st;
  const uint8_t *base = cl->region + sqe->u.send.buf_off; /* validated inside the buffer area */
  const uint32_t len = sqe->u.send.len;
  const bool dontwait = (sqe->u.send.send_flags & TOE_ABI_SEND_F_DONTWAIT) != 0;
  k->flags &= (uint16_t)~SF_SEND_NOBUF;

  if (k->proto == TOE_ABI_PROTO_UDP) {
    struct toe_sockaddr dst;
    addr_to_engine(&sqe->u.send.dst, &dst);
    int n = toe_udp_sendto(st, k->s, base, len, dst.family ? &dst : NULL);
    if (n >= 0) {
      k->tx_bytes += len;
      cl->abi.stats.tx_bytes += len;
      cl->dev->stats.tx_bytes += len;
      struct toe_abi_hslot *sl = &cl->slots[k->index];
      if (sl->state == TOE_ABI_HS_OPEN)
        sl->state = TOE_ABI_HS_BOUND; /* the engine bound an ephemeral port */
    }
    *res = n;
    return true;
  }

  const unsigned fl = (sqe->u.send.send_flags & TOE_ABI_SEND_F_MORE) ? TOE_SEND_MORE : 0;
  if (len == 0) {
    int n = toe_tcp_send(st, k->s, base, 0, fl); /* reports the state's error, if any */
    *res = n < 0 ? n : 0;
    return true;
  }
  while (*done < len) {
    int n = toe_tcp_send(st, k->s, base + *done, len - *done, fl);
    if (n > 0) {
      *done += (uint32_t)n;
      k->tx_bytes += (uint32_t)n;
      cl->abi.stats.tx_bytes += (uint32_t)n;
      cl->dev->stats.tx_bytes += (uint32_t)n;
      continue;
    }
    if (n == 0 || n == -TOE_EAGAIN || (n == -TOE_ENOBUFS && !dontwait)) {
      if (dontwait) {
        k->flags |= SF_WANT_WRITABLE; /* one EV_WRITABLE when space opens */
        *res = *done ? (int)*done : -TOE_EAGAIN;
        return true;
      }
      if (n == -TOE_ENOBUFS) {
        /* The engine's packet pool is empty: no event says when it refills. */
        k->flags |= SF_SEND_NOBUF;
        if (cl->retry_at > cl->now + RETRY_NS)
          cl->retry_at = cl->now + RETRY_NS;
      }
      return false;
    }
    /* The connection failed: what was taken counts, else the error. */
    *res = *done ? (int)*done : n;
    return true;
  }
  *res = (int)len;
  return true;
}

/* ------------------------------------------------------------------------------------------ */
/* Executing commands                                                                         */

static void op_open(struct ctl_client *cl, const struct toe_abi_sqe *sqe)
{
  struct toed_ctl_dev *dev = cl->dev;
  struct toe_abi_cqe cqe;
  memset(&cqe, 0, sizeof(cqe));
  if (cl->abi.handles_inuse >= cl->abi.layout.max_handles) {
    ses_finish(cl, &cqe, sqe, -TOE_EMFILE);
    return;
  }
  uint8_t proto = sqe->u.open.proto;
  enum ctl_quota_kind qk = proto == TOE_ABI_PROTO_TCP ? CTL_Q_TCP : CTL_Q_UDP;
  int q = ctl_quota_take(dev, cl->uid, qk, true); /* the uid's fair share (ctl_quota.c) */
  if (q < 0) {
    ses_finish(cl, &cqe, sqe, q);
    return;
  }
  struct ctl_sock *k = ses_sock_alloc(dev);
  if (!k) {
    ctl_quota_give(dev, cl->uid, qk);
    ses_finish(cl, &cqe, sqe, -TOE_EMFILE); /* every engine socket is in use */
    return;
  }
  k->cl = cl;
  struct toe_sock *s = NULL;
  int rc = proto == TOE_ABI_PROTO_TCP ? toe_tcp_open(dev->st, k, &s) : toe_udp_open(dev->st, k, &s);
  uint32_t h = 0;
  if (rc == 0 && sqe->u.open.family == TOE_ABI_AF_INET6) {
    /* 1.7: an AF_INET6 handle is an IPv6 engine socket from the start, dual-stack as Linux's
     * default (bindv6only 0); -TOE_EAFNOSUPPORT if the device runs without IPv6. */
    rc = toe_sock_setopt(dev->st, s, TOE_IPV6_V6ONLY, 0);
    if (rc < 0)
      toe_sock_close(dev->st, s);
  }
  if (rc == 0) {
    rc = toe_abi_handle_alloc(&cl->abi, proto, sqe->u.open.family, &h);
    if (rc < 0)
      toe_sock_close(dev->st, s);
  }
  if (rc < 0) {
    ses_sock_free(dev, k);
    ctl_quota_give(dev, cl->uid, qk);
    ses_finish(cl, &cqe, sqe, rc);
    return;
  }
  k->charged = true;
  k->s = s;
  k->proto = proto;
  k->handle = h;
  k->index = TOE_ABI_HANDLE_INDEX(h);
  k->sock_data = sqe->u.open.sock_data;
  cl->hs[k->index] = k;
  dev->stats.socks_inuse++;
  dev->stats.socks_opened++;
  cqe.handle = h;
  ses_finish(cl, &cqe, sqe, 0);
}

static void op_bind(struct ctl_client *cl, struct ctl_sock *k, const struct toe_abi_sqe *sqe)
{
  struct toe_abi_cqe cqe;
  memset(&cqe, 0, sizeof(cqe));
  struct toe_sockaddr la;
  addr_to_engine(&sqe->u.addr.addr, &la);
  /* As the kernel does (inet_bind): a port below ip_unprivileged_port_start is root's. Binding
   * is the only way to choose a source port, so this covers privileged source ports too. */
  int rc = la.port && la.port < cl->priv_port_start && !cl->bind_priv
               ? -TOE_EACCES
               : toe_sock_bind(cl->dev->st, k->s, &la);
  if (rc == -TOE_EADDRINUSE && ctl_tokens_reap(cl->dev) > 0)
    rc = toe_sock_bind(cl->dev->st, k->s, &la); /* a dead process's token held the port */
  if (rc == 0) {
    cl->slots[k->index].state = TOE_ABI_HS_BOUND;
    struct toe_sockaddr local;
    toe_sock_name(k->s, &local, NULL);
    addr_to_abi(&local, &cqe.u.addr.local);
  }
  ses_finish(cl, &cqe, sqe, rc);
}

static void op_listen(struct ctl_client *cl, struct ctl_sock *k, const struct toe_abi_sqe *sqe)
{
  uint32_t b = sqe->u.listen.backlog;
  int rc = toe_tcp_listen(cl->dev->st, k->s, b > 65535u ? 65535 : (int)b); /* engine clamps */
  if (rc == -TOE_EADDRINUSE && ctl_tokens_reap(cl->dev) > 0)
    rc = toe_tcp_listen(cl->dev->st, k->s, b > 65535u ? 65535 : (int)b);
  if (rc == 0)
    cl->slots[k->index].state = TOE_ABI_HS_LISTENING;
  ses_finish_res(cl, sqe, rc);
}

/* The completion of a CONNECT: res 0 with the local address, or the error. */
static void connect_done(struct ctl_client *cl, struct ctl_sock *k, const struct toe_abi_sqe *sqe,
                         int rc)
{
  struct toe_abi_cqe cqe;
  memset(&cqe, 0, sizeof(cqe));
  if (rc == 0) {
    struct toe_sockaddr local;
    toe_sock_name(k->s, &local, NULL);
    addr_to_abi(&local, &cqe.u.addr.local);
  }
  ses_finish(cl, &cqe, sqe, rc);
}

static void op_connect(struct ctl_client *cl, struct ctl_sock *k, const struct toe_abi_sqe *sqe)
{
  struct toe_stack *st = cl->dev->st;
  struct toe_abi_hslot *sl = &cl->slots[k->index];
  struct toe_sockaddr ra;
  addr_to_engine(&sqe->u.addr.addr, &ra);
  int rc = toe_sock_connect(st, k->s, &ra);
  if (k->proto == TOE_ABI_PROTO_UDP) {
    if (rc == 0) {
      struct toe_sockaddr local;
      toe_sock_name(k->s, &local, NULL);
      sl->state = ra.family    ? TOE_ABI_HS_CONNECTED
                  : local.port ? TOE_ABI_HS_BOUND
                               : TOE_ABI_HS_OPEN;
    }
    connect_done(cl, k, sqe, rc);
    return;
  }
  if (rc == -TOE_EINPROGRESS) {
    /* The handshake runs; the completion comes with its end (ses_sock_work). */
    sl->state = TOE_ABI_HS_CONNECTING;
    k->connect_op = op_alloc(cl, sqe);
    return;
  }
  if (rc == 0)
    sl->state = TOE_ABI_HS_CONNECTED;
  connect_done(cl, k, sqe, rc);
}

/* A TCP CONNECT in progress: finished once the handshake is over, one way or the other. */
void ses_connect_check(struct ctl_client *cl, struct ctl_sock *k)
{
  struct toe_tcp_info info;
  if (toe_tcp_get_info(cl->dev->st, k->s, &info) < 0)
    return;
  if (info.state == TOE_TCP_SYN_SENT || info.state == TOE_TCP_SYN_RECEIVED)
    return;
  uint32_t i = k->connect_op;
  k->connect_op = CTL_NONE;
  struct toe_abi_hslot *sl = &cl->slots[k->index];
  int rc = 0;
  if (info.state == TOE_TCP_CLOSED) {
    rc = k->fatal_err ? k->fatal_err : toe_sock_error(cl->dev->st, k->s);
    if (rc >= 0)
      rc = -TOE_ECONNREFUSED;
    /* The failure is the CONNECT's answer; no event repeats it. */
    k->flags |= SF_DEAD | SF_END_POSTED;
    sl->state = TOE_ABI_HS_BOUND;
  } else {
    sl->state = TOE_ABI_HS_CONNECTED;
  }
  connect_done(cl, k, &cl->ops[i].sqe, rc);
  op_free(cl, i);
}

/* Takes connections from the engine for the waiting ACCEPTs, in submission order. Returns true
 * if one waits for a free handle. */
bool ses_accept_run(struct ctl_client *cl, struct ctl_sock *k)
{
  struct toed_ctl_dev *dev = cl->dev;
  while (k->acceptq_head != CTL_NONE) {
    if (cl->abi.handles_inuse >= cl->abi.layout.max_handles || !dev->sock_free)
      return true; /* retried when a handle comes free */
    uint32_t i = k->acceptq_head;
    /* The engine made the connection's socket already: only the uid's share is checked. */
    int q = ctl_quota_take(dev, cl->uid, CTL_Q_TCP, false);
    if (q < 0) {
      q_pop(cl, &k->acceptq_head, &k->acceptq_tail);
      ses_finish_res(cl, &cl->ops[i].sqe, q);
      op_free(cl, i);
      continue;
    }
    struct ctl_sock *n = ses_sock_alloc(dev);
    n->cl = cl; /* events of the new connection may come from inside the accept */
    n->charged = true;
    struct toe_sock *s = NULL;
    int rc = toe_tcp_accept(dev->st, k->s, n, &s);
    if (rc == -TOE_EAGAIN) {
      ses_list_remove(cl, n);
      ses_sock_free(dev, n);
      ctl_quota_give(dev, cl->uid, CTL_Q_TCP);
      return false;
    }
    q_pop(cl, &k->acceptq_head, &k->acceptq_tail);
    struct toe_abi_cqe cqe;
    memset(&cqe, 0, sizeof(cqe));
    uint32_t h = 0;
    if (rc == 0) {
      /* A connection has its listener's family (a dual-stack listener's IPv4 peers are
       * v4-mapped AF_INET6 addresses, as on Linux). */
      rc = toe_abi_handle_alloc(&cl->abi, TOE_ABI_PROTO_TCP, cl->slots[k->index].family, &h);
      if (rc < 0)
        toe_tcp_abort(dev->st, s); /* not reached: a handle was checked free */
    }
    if (rc < 0) {
      ses_list_remove(cl, n);
      ses_sock_free(dev, n);
      ctl_quota_give(dev, cl->uid, CTL_Q_TCP);
      ses_finish(cl, &cqe, &cl->ops[i].sqe, rc);
      op_free(cl, i);
      continue;
    }
    n->s = s;
    n->proto = TOE_ABI_PROTO_TCP;
    n->handle = h;
    n->index = TOE_ABI_HANDLE_INDEX(h);
    n->sock_data = cl->ops[i].sqe.u.accept.sock_data;
    cl->hs[n->index] = n;
    cl->slots[n->index].state = TOE_ABI_HS_CONNECTED;
    dev->stats.socks_inuse++;
    dev->stats.socks_opened++;
    /* Data or a FIN may have arrived while it waited in the accept queue. */
    n->flags |= SF_RX;
    ses_list_add(cl, n, CTL_LIST_WORK);
    struct toe_sockaddr peer;
    toe_sock_name(s, NULL, &peer);
    cqe.u.accept.handle = h;
    addr_to_abi_fam(&peer, cl->slots[n->index].family, &cqe.u.accept.peer);
    ses_finish(cl, &cqe, &cl->ops[i].sqe, 0);
    op_free(cl, i);
    if (k->sh && k->sh->holders != k->sh->holders->sh_next) {
      /* A shared listener: one connection per holder and round, so that every holder that
       * asks gets its turn (pre-forked workers share the load). The others look now; this one
       * looks again next round. */
      k->sh->rr = k;
      for (struct ctl_sock *o = k->sh_next; o != k; o = o->sh_next)
        if (o->acceptq_head != CTL_NONE)
          ses_list_add(o->cl, o, CTL_LIST_WORK);
      if (k->acceptq_head != CTL_NONE) {
        ses_list_add(cl, k, CTL_LIST_WAIT);
        cl->resources = true;
      }
      return false;
    }
  }
  return false;
}

static void op_shutdown(struct ctl_client *cl, struct ctl_sock *k, const struct toe_abi_sqe *sqe)
{
  uint32_t how = sqe->u.shutdown.how;
  int rc = toe_tcp_shutdown(cl->dev->st, k->s, (int)how);
  if (rc == 0) {
    struct toe_abi_hslot *sl = &cl->slots[k->index];
    if (how != TOE_ABI_SHUT_RD)
      sl->flags |= TOE_ABI_HF_SHUT_WR;
    if (how != TOE_ABI_SHUT_WR) {
      sl->flags |= TOE_ABI_HF_SHUT_RD;
      k->flags |= SF_SHUT_RD; /* the engine discards what arrives; nothing more is delivered */
    }
  }
  ses_finish_res(cl, sqe, rc);
}

/* Executes an op on socket k now (nothing ahead of it waits). */
static void exec_op(struct ctl_client *cl, struct ctl_sock *k, const struct toe_abi_sqe *sqe)
{
  switch (sqe->opcode) {
  case TOE_ABI_OP_BIND:
    op_bind(cl, k, sqe);
    break;
  case TOE_ABI_OP_LISTEN:
    op_listen(cl, k, sqe);
    break;
  case TOE_ABI_OP_CONNECT:
    op_connect(cl, k, sqe);
    break;
  case TOE_ABI_OP_ACCEPT: {
    uint32_t i = op_alloc(cl, sqe);
    q_push(cl, &k->acceptq_head, &k->acceptq_tail, i);
    if (ses_accept_run(cl, k))
      ses_list_add(cl, k, CTL_LIST_WAIT);
    break;
  }
  case TOE_ABI_OP_SEND: {
    uint32_t done = 0;
    int res;
    if (send_try(cl, k, sqe, &done, &res)) {
      ses_finish_res(cl, sqe, res);
    } else {
      uint32_t i = op_alloc(cl, sqe);
      cl->ops[i].done = done;
      q_push(cl, &k->sendq_head, &k->sendq_tail, i);
      if (k->flags & SF_SEND_NOBUF)
        ses_list_add(cl, k, CTL_LIST_WAIT);
    }
    break;
  }
  case TOE_ABI_OP_SHUTDOWN:
    op_shutdown(cl, k, sqe);
    break;
  case TOE_ABI_OP_SETSOCKOPT:
    ses_op_setsockopt(cl, k, sqe);
    break;
  case TOE_ABI_OP_GETSOCKOPT:
    ses_op_getsockopt(cl, k, sqe);
    break;
  case TOE_ABI_OP_STATS:
    ses_op_stats(cl, k, sqe);
    break;
  case TOE_ABI_OP_SHARE:
    ses_op_share(cl, k, sqe);
    break;
  default:
    ses_finish_res(cl, sqe, -TOE_EOPNOTSUPP); /* not reached: validated */
    break;
  }
}

/*
 * CLOSE: a pending CONNECT and the waiting ACCEPTs are cancelled (-ECONNABORTED); with ABORT the
 * waiting SENDs too, and the connection is reset; otherwise the CLOSE waits behind the SENDs
 * (their data goes first) and the engine closes gracefully.
 */
static void op_close(struct ctl_client *cl, struct ctl_sock *k, const struct toe_abi_sqe *sqe)
{
  bool abort = (sqe->u.close.close_flags & TOE_ABI_CLOSE_F_ABORT) != 0;
  ses_cancel_ops(cl, k, -TOE_ECONNABORTED, abort, false);
  if (k->sendq_head != CTL_NONE) {
    k->flags |= SF_CLOSING;
    q_push(cl, &k->sendq_head, &k->sendq_tail, op_alloc(cl, sqe));
    return;
  }
  ses_sock_close(cl, k, abort);
  ses_finish_res(cl, sqe, 0);
}

/*
 * Runs k's send queue: SENDs in order as space allows, and the ops that waited behind them.
 * Returns true if a CLOSE in it freed k.
 */
bool ses_sendq_run(struct ctl_client *cl, struct ctl_sock *k)
{
  while (k->sendq_head != CTL_NONE) {
    uint32_t i = k->sendq_head;
    struct ctl_op *op = &cl->ops[i];
    if (op->sqe.opcode == TOE_ABI_OP_SEND) {
      int res;
      if (!send_try(cl, k, &op->sqe, &op->done, &res))
        return false;
      q_pop(cl, &k->sendq_head, &k->sendq_tail);
      ses_finish_res(cl, &op->sqe, res);
      op_free(cl, i);
      continue;
    }
    q_pop(cl, &k->sendq_head, &k->sendq_tail);
    struct toe_abi_sqe sqe = op->sqe;
    op_free(cl, i);
    if (sqe.opcode == TOE_ABI_OP_CLOSE) {
      bool abort = (sqe.u.close.close_flags & TOE_ABI_CLOSE_F_ABORT) != 0;
      ses_cancel_ops(cl, k, -TOE_ECONNABORTED, true, false); /* nothing follows a CLOSE */
      ses_sock_close(cl, k, abort);
      ses_finish_res(cl, &sqe, 0);
      return true;
    }
    exec_op(cl, k, &sqe);
  }
  return false;
}

/* A refused descriptor: an error completion and a strike. */
static void refuse(struct ctl_client *cl, const struct toe_abi_sqe *sqe, int rc)
{
  struct toed_ctl_stats *ds = &cl->dev->stats;
  struct toe_abi_cqe cqe;
  toe_abi_cqe_error(&cqe, sqe, rc);
  if (cl->cq_reserved)
    cl->cq_reserved--;
  ses_cq_write(cl, &cqe);
  cl->abi.stats.completions++;
  ds->completions++;
  cl->abi.stats.err_validation++;
  ds->err_validation++;
  switch (rc) {
  case -TOE_EBADF:
    ds->err_badf++;
    break;
  case -TOE_EFAULT:
    ds->err_fault++;
    break;
  case -TOE_EINVAL:
    ds->err_inval++;
    break;
  case -TOE_EOPNOTSUPP:
    ds->err_opnotsupp++;
    break;
  default:
    ds->err_other++;
    break;
  }
  if (toe_abi_client_strike(&cl->abi, cl->now))
    ctl_session_fail(cl, -TOE_EPROTO, CTL_END_ABUSE);
}

/* One SQE (a private copy), with its CQ entry reserved. */
void ses_submit(struct ctl_client *cl, const struct toe_abi_sqe *sqe)
{
  cl->abi.stats.sqes++;
  cl->dev->stats.sqes++;
  uint32_t idx;
  int rc = toe_abi_validate_sqe(&cl->abi, sqe, &idx);
  struct ctl_sock *k = NULL;
  if (rc == 0 && idx != UINT32_MAX) {
    k = cl->hs[idx];
    if (!k)
      rc = -TOE_EBADF; /* not reached: an open slot has its record */
    else if ((k->flags & SF_CLOSING) && !(sqe->opcode == TOE_ABI_OP_CLOSE &&
                                          (sqe->u.close.close_flags & TOE_ABI_CLOSE_F_ABORT)))
      rc = -TOE_EBADF; /* the handle is being closed: nothing may follow its CLOSE */
  }
  if (rc < 0) {
    refuse(cl, sqe, rc);
    return;
  }
  switch (sqe->opcode) {
  case TOE_ABI_OP_NOP:
    ses_finish_res(cl, sqe, 0);
    return;
  case TOE_ABI_OP_OPEN:
    op_open(cl, sqe);
    return;
  case TOE_ABI_OP_ADOPT:
    ses_op_adopt(cl, sqe);
    return;
  case TOE_ABI_OP_STATS:
    if (!k) {
      ses_op_stats(cl, NULL, sqe);
      return;
    }
    break;
  case TOE_ABI_OP_CAPTURE:
    ses_op_capture(cl, sqe);
    return;
  case TOE_ABI_OP_CLOSE:
    op_close(cl, k, sqe);
    return;
  default:
    break;
  }
  /* GETSOCKOPT and a socket's STATS only read: answered at once even behind a waiting SEND (a
   * getsockopt must not wait for the peer's window; docs/transport.md "Ordering"), their
   * completion may so come before that SEND's. */
  bool reads_only = sqe->opcode == TOE_ABI_OP_GETSOCKOPT || sqe->opcode == TOE_ABI_OP_STATS;
  if (k->sendq_head != CTL_NONE && !reads_only) {
    /* In submission order: behind the SEND that waits (docs: a SHUTDOWN, SETSOCKOPT, ... after
     * a waiting SEND waits for it). */
    q_push(cl, &k->sendq_head, &k->sendq_tail, op_alloc(cl, sqe));
    return;
  }
  exec_op(cl, k, sqe);
}
