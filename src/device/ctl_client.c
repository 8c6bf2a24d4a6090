/*
 * A host client's session (docs/transport.md): commands from the submission ring executed against
 * the engine, socket events and received data turned into completion entries, buffers and
 * credit accounted, abuse counted, and everything reset when the session ends.
 *
 * Rules kept throughout:
 *   - every descriptor is copied out of shared memory, then validated (toe_abi_validate_sqe), then
 *     used; nothing the session relies on is read back from the region;
 *   - a CQ entry is reserved for every taken SQE until its completion is written, and events go
 *     only into the free space beyond the reservations, so the CQ never overflows and a
 *     completion never waits;
 *   - received data leaves the engine only into a buffer the host gave (fill ring) and only within
 *     the socket's credit (SO_RXBUFS); otherwise it stays in the engine and TCP's window closes
 *     (RFC 9293 3.8.6), so toed buffers nothing for a slow host;
 *   - a SEND is copied from the region straight into the engine's send buffer (one copy) and
 *     completes when every byte is in; a SEND that does not fit waits in its socket's queue, with
 *     the ops submitted after it, until the engine reports space (never buffered in toed);
 *   - engine calls happen here, never in the sock_event callback (ctl_sock_event only records).
 */
#define _GNU_SOURCE

#include "device/ctl_client.h"

#include "toe/steer.h"
#include "transport/os/region_os.h"
#include "transport/region.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <unistd.h>

#define SQ_BATCH 64u        /* SQEs copied out per ring read */
#define SQ_BUDGET 1024u     /* SQEs per session per round (then the engine and others run) */
#define FQ_BATCH 256u       /* fill entries per ring read */
#define WORK_BUDGET 4096u   /* socket work items per session per round */
#define RETRY_NS 1000000ull /* re-check of waits no doorbell announces (CQ room, engine pool) */

enum { CTL_LIST_NONE = 0, CTL_LIST_WORK, CTL_LIST_WAIT };

/* ctl_sock.flags */
#define SF_RX 0x0001u            /* data, end of stream or an error may wait in the engine */
#define SF_EOF 0x0002u           /* the engine reported end of stream */
#define SF_EOF_POSTED 0x0004u    /* EV_PEER_CLOSED posted */
#define SF_DEAD 0x0008u          /* the connection is over (reset, failed, or fully closed) */
#define SF_END_POSTED 0x0010u    /* EV_RESET / fatal EV_ERROR posted (or not owed) */
#define SF_WANT_WRITABLE 0x0020u /* a DONTWAIT SEND fell short: EV_WRITABLE when space opens */
#define SF_WRITABLE_PEND 0x0040u /* EV_WRITABLE to post */
#define SF_ERR_PEND 0x0080u      /* a soft EV_ERROR to post */
#define SF_CLOSING 0x0100u       /* a graceful CLOSE waits in the send queue */
#define SF_SHUT_RD 0x0200u       /* the host shut reading: nothing more is delivered */
#define SF_ERR_POSTED 0x0400u    /* err_cq_idx names the last soft EV_ERROR */
#define SF_STALLED 0x0800u       /* delivery stall counted (once per stall) */
#define SF_SEND_NOBUF 0x1000u    /* a SEND waits for the engine's packet pool */

static void sock_work(struct ctl_client *cl, struct ctl_sock *k);

/* ------------------------------------------------------------------------------------------ */
/* Small helpers                                                                              */

static uint32_t min_u32(uint32_t a, uint32_t b)
{
  return a < b ? a : b;
}

/* ABI address (port a little-endian integer, address bytes in network order) -> engine. */
static void addr_to_engine(const struct toe_abi_sockaddr *a, struct toe_sockaddr *e)
{
  memset(e, 0, sizeof(*e));
  if (a->family != TOE_ABI_AF_INET)
    return; /* UNSPEC: family 0 ("none"; connect dissolves a UDP association) */
  e->family = TOE_AF_INET;
  e->port = a->port;
  e->addr = (uint32_t)a->addr[0] << 24 | (uint32_t)a->addr[1] << 16 | (uint32_t)a->addr[2] << 8 |
            (uint32_t)a->addr[3];
}

static void addr_to_abi(const struct toe_sockaddr *e, struct toe_abi_sockaddr *a)
{
  memset(a, 0, sizeof(*a));
  if (e->family != TOE_AF_INET)
    return;
  a->family = TOE_ABI_AF_INET;
  a->port = e->port;
  a->addr[0] = (uint8_t)(e->addr >> 24);
  a->addr[1] = (uint8_t)(e->addr >> 16);
  a->addr[2] = (uint8_t)(e->addr >> 8);
  a->addr[3] = (uint8_t)e->addr;
}

/* The region header is informational for the host; the device only writes it. */
static void region_state(struct ctl_client *cl, uint32_t state, int32_t status)
{
  if (!cl->region)
    return;
  volatile struct toe_abi_region_hdr *h = (volatile struct toe_abi_region_hdr *)cl->region;
  h->dev_status = status;
  h->dev_state = state;
}

void ctl_session_fail(struct ctl_client *cl, int status, enum ctl_end_kind kind)
{
  if (cl->end_status)
    return; /* the first reason stands */
  cl->end_status = status < 0 ? status : -TOE_EPROTO;
  cl->end_kind = kind;
}

/* ------------------------------------------------------------------------------------------ */
/* Work and wait lists (intrusive, doubly linked: a socket can leave either at any time)      */

static void list_remove(struct ctl_client *cl, struct ctl_sock *k)
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

static void list_add(struct ctl_client *cl, struct ctl_sock *k, uint8_t which)
{
  if (k->list == which)
    return;
  list_remove(cl, k);
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
static void requeue_waiting(struct ctl_client *cl)
{
  while (cl->wait_head)
    list_add(cl, cl->wait_head, CTL_LIST_WORK);
}

/* ------------------------------------------------------------------------------------------ */
/* Socket records                                                                             */

static struct ctl_sock *sock_alloc(struct toed_ctl_dev *dev)
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

static void sock_free(struct toed_ctl_dev *dev, struct ctl_sock *k)
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
        list_add(h->cl, h, CTL_LIST_WORK);
        h = h->sh_next;
      } while (h != k->sh->holders);
    }
    return true;
  }
  k->ev |= events;
  list_add(k->cl, k, CTL_LIST_WORK);
  return true;
}

/* ------------------------------------------------------------------------------------------ */
/* Shared sockets (SHARE/ADOPT, ABI 1.2)                                                      */

static void share_link(struct ctl_share *sh, struct ctl_sock *k)
{
  k->sh = sh;
  if (!sh->holders) {
    k->sh_next = k->sh_prev = k;
    sh->holders = k;
  } else {
    struct ctl_sock *h = sh->holders;
    k->sh_next = h;
    k->sh_prev = h->sh_prev;
    h->sh_prev->sh_next = k;
    h->sh_prev = k;
  }
}

static void share_unlink(struct ctl_share *sh, struct ctl_sock *k)
{
  if (k->sh_next == k) {
    sh->holders = NULL;
  } else {
    k->sh_prev->sh_next = k->sh_next;
    k->sh_next->sh_prev = k->sh_prev;
    if (sh->holders == k)
      sh->holders = k->sh_next;
  }
  if (sh->rr == k)
    sh->rr = NULL;
  k->sh = NULL;
  k->sh_next = k->sh_prev = NULL;
}

/* The engine socket's events go to a record that exists: a holder, else the anchor. */
static void share_retarget(struct toed_ctl_dev *dev, struct ctl_share *sh)
{
  if (sh->holders) {
    if (sh->anchor) {
      sock_free(dev, sh->anchor);
      sh->anchor = NULL;
    }
    toe_sock_set_user(sh->s, sh->holders);
    return;
  }
  if (!sh->anchor) {
    sh->anchor = sock_alloc(dev); /* cl stays NULL: its events are dropped */
    if (sh->anchor)
      sh->anchor->s = sh->s;
  }
  toe_sock_set_user(sh->s, sh->anchor);
}

/* One reference less; the last one closes the engine socket. */
static void share_put(struct toed_ctl_dev *dev, struct ctl_share *sh)
{
  if (--sh->refs > 0) {
    share_retarget(dev, sh);
    return;
  }
  if (sh->anchor)
    sock_free(dev, sh->anchor);
  toe_sock_close(dev->st, sh->s); /* a listener resets what waits in its queue; UDP: closed */
  if (dev->stats.share_inuse)
    dev->stats.share_inuse--;
  free(sh);
}

void ctl_tokens_expire(struct toed_ctl_dev *dev, toe_time_t now)
{
  for (uint32_t i = 0; dev->tokens_live && i < CTL_TOKENS; i++) {
    struct ctl_token *t = &dev->tokens[i];
    if (!t->token || now < t->expires)
      continue;
    struct ctl_share *sh = t->sh;
    ctl_quota_give(dev, t->uid, CTL_Q_TOKEN);
    memset(t, 0, sizeof(*t));
    dev->tokens_live--;
    dev->stats.share_expired++;
    share_put(dev, sh);
  }
}

toe_time_t ctl_tokens_next(const struct toed_ctl_dev *dev)
{
  toe_time_t t = TOE_TIME_NEVER;
  for (uint32_t i = 0; dev->tokens_live && i < CTL_TOKENS; i++)
    if (dev->tokens[i].token && dev->tokens[i].expires < t)
      t = dev->tokens[i].expires;
  return t;
}

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
/* Completion queue                                                                           */

/* Writes one CQE (its slot was reserved or checked free). */
static void cq_write(struct ctl_client *cl, const struct toe_abi_cqe *cqe)
{
  if (toe_ring_prod_write(&cl->cq, cqe, 1) != 1) {
    /* Reserved room that is not there means the host moved its consumer index backwards. */
    ctl_session_fail(cl, -TOE_EPROTO, CTL_END_PROTOCOL);
    return;
  }
  cl->cq_dirty = true;
}

/* The completion of `sqe` with `res`; `cqe` carries the payload (or is zero). */
static void finish(struct ctl_client *cl, struct toe_abi_cqe *cqe, const struct toe_abi_sqe *sqe,
                   int res)
{
  cqe->user_data = sqe->user_data;
  cqe->res = res;
  if (!cqe->handle)
    cqe->handle = sqe->handle;
  cqe->type = TOE_ABI_CQE_OP;
  cqe->opcode = sqe->opcode;
  if (cl->cq_reserved)
    cl->cq_reserved--;
  cq_write(cl, cqe);
  cl->abi.stats.completions++;
  cl->dev->stats.completions++;
  if (res < 0) {
    cl->abi.stats.err_op++;
    cl->dev->stats.err_op++;
  }
}

static void finish_res(struct ctl_client *cl, const struct toe_abi_sqe *sqe, int res)
{
  struct toe_abi_cqe cqe;
  memset(&cqe, 0, sizeof(cqe));
  finish(cl, &cqe, sqe, res);
}

/* True if an event may be posted: a free CQ slot beyond the completions owed and `keep` more. */
static bool ev_room_keep(struct ctl_client *cl, uint32_t keep)
{
  int r = toe_ring_prod_reserve(&cl->cq, cl->cq_reserved + 1 + keep);
  if (r < 0) {
    ctl_session_fail(cl, r, CTL_END_PROTOCOL);
    return false;
  }
  return (uint32_t)r >= cl->cq_reserved + 1 + keep;
}

static bool ev_room(struct ctl_client *cl)
{
  return ev_room_keep(cl, 0);
}

/* Posts an event of socket k (or of the session: k NULL). False if the CQ has no room. */
static bool post_event(struct ctl_client *cl, struct ctl_sock *k, uint8_t type, int32_t res,
                       uint16_t flags, struct toe_abi_cqe *cqe)
{
  if (!ev_room(cl))
    return false;
  cqe->user_data = k ? k->sock_data : 0;
  cqe->handle = k ? k->handle : 0;
  cqe->type = type;
  cqe->res = res;
  cqe->flags = flags;
  cq_write(cl, cqe);
  cl->abi.stats.events++;
  cl->dev->stats.events++;
  return true;
}

/* Socket k waits for CQ room: nothing rings a doorbell when the host drains the CQ, so look
 * again shortly. */
static bool wait_cq(struct ctl_client *cl, struct ctl_sock *k)
{
  cl->abi.stats.cq_full_waits++;
  cl->dev->stats.cq_full_waits++;
  if (cl->retry_at > cl->now + RETRY_NS)
    cl->retry_at = cl->now + RETRY_NS;
  (void)k;
  return true;
}

/* Has the host consumed CQ entry `idx`? (Re-reads its consumer index.) */
static bool cq_consumed(struct ctl_client *cl, uint32_t idx)
{
  if (toe_ring_prod_outstanding(&cl->cq) < 0) {
    ctl_session_fail(cl, -TOE_EPROTO, CTL_END_PROTOCOL);
    return true;
  }
  return (int32_t)(cl->cq.cached - idx) > 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Closing sockets                                                                            */

/* Completes every op still waiting on k with `err` (or drops them silently if `quiet`). */
static void cancel_ops(struct ctl_client *cl, struct ctl_sock *k, int err, bool sends, bool quiet)
{
  uint32_t i;
  if (k->connect_op != CTL_NONE) {
    i = k->connect_op;
    k->connect_op = CTL_NONE;
    if (!quiet)
      finish_res(cl, &cl->ops[i].sqe, err);
    op_free(cl, i);
  }
  while ((i = q_pop(cl, &k->acceptq_head, &k->acceptq_tail)) != CTL_NONE) {
    if (!quiet)
      finish_res(cl, &cl->ops[i].sqe, err);
    op_free(cl, i);
  }
  if (!sends)
    return;
  while ((i = q_pop(cl, &k->sendq_head, &k->sendq_tail)) != CTL_NONE) {
    if (!quiet)
      finish_res(cl, &cl->ops[i].sqe, err);
    op_free(cl, i);
  }
}

/* Frees k's handle and record (the engine socket is closed already). */
static void sock_release(struct ctl_client *cl, struct ctl_sock *k)
{
  list_remove(cl, k);
  if (k->index < cl->abi.layout.max_handles && cl->hs[k->index] == k) {
    cl->hs[k->index] = NULL;
    toe_abi_handle_free(&cl->abi, k->index);
  }
  if (k->charged)
    ctl_quota_give(cl->dev, cl->uid, k->proto == TOE_ABI_PROTO_TCP ? CTL_Q_TCP : CTL_Q_UDP);
  sock_free(cl->dev, k);
  if (cl->dev->stats.socks_inuse)
    cl->dev->stats.socks_inuse--;
  cl->resources = true; /* a handle came free: a waiting ACCEPT may proceed */
}

/* Closes k in the engine: gracefully (FIN after queued data; RST if data is unread, RFC 9293
 * 3.6) or with a reset, and frees it. */
static void sock_close(struct ctl_client *cl, struct ctl_sock *k, bool abort)
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
    share_unlink(sh, k);
    sock_release(cl, k);
    share_put(cl->dev, sh);
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
    finish(cl, &cqe, sqe, -TOE_EMFILE);
    return;
  }
  uint8_t proto = sqe->u.open.proto;
  enum ctl_quota_kind qk = proto == TOE_ABI_PROTO_TCP ? CTL_Q_TCP : CTL_Q_UDP;
  int q = ctl_quota_take(dev, cl->uid, qk, true); /* the uid's fair share (ctl_quota.c) */
  if (q < 0) {
    finish(cl, &cqe, sqe, q);
    return;
  }
  struct ctl_sock *k = sock_alloc(dev);
  if (!k) {
    ctl_quota_give(dev, cl->uid, qk);
    finish(cl, &cqe, sqe, -TOE_EMFILE); /* every engine socket is in use */
    return;
  }
  k->cl = cl;
  struct toe_sock *s = NULL;
  int rc = proto == TOE_ABI_PROTO_TCP ? toe_tcp_open(dev->st, k, &s) : toe_udp_open(dev->st, k, &s);
  uint32_t h = 0;
  if (rc == 0) {
    rc = toe_abi_handle_alloc(&cl->abi, proto, sqe->u.open.family, &h);
    if (rc < 0)
      toe_sock_close(dev->st, s);
  }
  if (rc < 0) {
    sock_free(dev, k);
    ctl_quota_give(dev, cl->uid, qk);
    finish(cl, &cqe, sqe, rc);
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
  finish(cl, &cqe, sqe, 0);
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
  if (rc == 0) {
    cl->slots[k->index].state = TOE_ABI_HS_BOUND;
    struct toe_sockaddr local;
    toe_sock_name(k->s, &local, NULL);
    addr_to_abi(&local, &cqe.u.addr.local);
  }
  finish(cl, &cqe, sqe, rc);
}

static void op_listen(struct ctl_client *cl, struct ctl_sock *k, const struct toe_abi_sqe *sqe)
{
  uint32_t b = sqe->u.listen.backlog;
  int rc = toe_tcp_listen(cl->dev->st, k->s, b > 65535u ? 65535 : (int)b); /* engine clamps */
  if (rc == 0)
    cl->slots[k->index].state = TOE_ABI_HS_LISTENING;
  finish_res(cl, sqe, rc);
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
  finish(cl, &cqe, sqe, rc);
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
    /* The handshake runs; the completion comes with its end (sock_work). */
    sl->state = TOE_ABI_HS_CONNECTING;
    k->connect_op = op_alloc(cl, sqe);
    return;
  }
  if (rc == 0)
    sl->state = TOE_ABI_HS_CONNECTED;
  connect_done(cl, k, sqe, rc);
}

/* A TCP CONNECT in progress: finished once the handshake is over, one way or the other. */
static void connect_check(struct ctl_client *cl, struct ctl_sock *k)
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
static bool accept_run(struct ctl_client *cl, struct ctl_sock *k)
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
      finish_res(cl, &cl->ops[i].sqe, q);
      op_free(cl, i);
      continue;
    }
    struct ctl_sock *n = sock_alloc(dev);
    n->cl = cl; /* events of the new connection may come from inside the accept */
    n->charged = true;
    struct toe_sock *s = NULL;
    int rc = toe_tcp_accept(dev->st, k->s, n, &s);
    if (rc == -TOE_EAGAIN) {
      list_remove(cl, n);
      sock_free(dev, n);
      ctl_quota_give(dev, cl->uid, CTL_Q_TCP);
      return false;
    }
    q_pop(cl, &k->acceptq_head, &k->acceptq_tail);
    struct toe_abi_cqe cqe;
    memset(&cqe, 0, sizeof(cqe));
    uint32_t h = 0;
    if (rc == 0) {
      rc = toe_abi_handle_alloc(&cl->abi, TOE_ABI_PROTO_TCP, TOE_ABI_AF_INET, &h);
      if (rc < 0)
        toe_tcp_abort(dev->st, s); /* not reached: a handle was checked free */
    }
    if (rc < 0) {
      list_remove(cl, n);
      sock_free(dev, n);
      ctl_quota_give(dev, cl->uid, CTL_Q_TCP);
      finish(cl, &cqe, &cl->ops[i].sqe, rc);
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
    list_add(cl, n, CTL_LIST_WORK);
    struct toe_sockaddr peer;
    toe_sock_name(s, NULL, &peer);
    cqe.u.accept.handle = h;
    addr_to_abi(&peer, &cqe.u.accept.peer);
    finish(cl, &cqe, &cl->ops[i].sqe, 0);
    op_free(cl, i);
    if (k->sh && k->sh->holders != k->sh->holders->sh_next) {
      /* A shared listener: one connection per holder and round, so that every holder that
       * asks gets its turn (pre-forked workers share the load). The others look now; this one
       * looks again next round. */
      k->sh->rr = k;
      for (struct ctl_sock *o = k->sh_next; o != k; o = o->sh_next)
        if (o->acceptq_head != CTL_NONE)
          list_add(o->cl, o, CTL_LIST_WORK);
      if (k->acceptq_head != CTL_NONE) {
        list_add(cl, k, CTL_LIST_WAIT);
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
  finish_res(cl, sqe, rc);
}

/* Socket-level options the engine keeps only for TCP: a UDP socket remembers them. (SO_REUSEADDR
 * goes to the engine, where it lets UDP sockets share a port.) */
static bool udp_local_opt(uint32_t opt)
{
  return opt == TOE_ABI_SO_RCVBUF || opt == TOE_ABI_SO_SNDBUF;
}

static void op_setsockopt(struct ctl_client *cl, struct ctl_sock *k, const struct toe_abi_sqe *sqe)
{
  uint32_t opt = sqe->u.sockopt.opt;
  int64_t v = sqe->u.sockopt.value;
  int rc = 0;
  if (opt == TOE_ABI_SO_OWNER_PID || opt == TOE_ABI_SO_OWNER_COMM_LO ||
      opt == TOE_ABI_SO_OWNER_COMM_HI) {
    /* Only a proxy speaks for other programs; anyone else would be forging the flow table. */
    if (cl->origin != TOE_ABI_ORIGIN_PROXY) {
      rc = -TOE_EPERM;
    } else if (opt == TOE_ABI_SO_OWNER_PID) {
      k->owner_pid = (uint32_t)v; /* validated: 0..INT32_MAX */
      k->owner_set = true;
    } else {
      /* 8 name bytes, little-endian in the value; shown only after sanitising (flow_owner) */
      uint8_t *dst = (uint8_t *)k->owner_comm + (opt == TOE_ABI_SO_OWNER_COMM_HI ? 8 : 0);
      for (int i = 0; i < 8; i++)
        dst[i] = (uint8_t)((uint64_t)v >> (8 * i));
      k->owner_set = true;
    }
  } else if (opt == TOE_ABI_SO_RXBUFS) {
    struct toe_abi_hslot *sl = &cl->slots[k->index];
    bool more = (uint32_t)v > sl->rx_max;
    sl->rx_max = (uint32_t)v; /* validated: 1..buf_count */
    if (more) {
      k->flags |= SF_RX; /* more credit: delivery may resume */
      list_add(cl, k, CTL_LIST_WORK);
    }
  } else if (k->proto == TOE_ABI_PROTO_UDP && udp_local_opt(opt)) {
    k->udp_opt[opt] = v;
  } else {
    rc = toe_sock_setopt(cl->dev->st, k->s, (int)opt, v);
  }
  finish_res(cl, sqe, rc);
}

/* Bytes the device holds for k that the host has not been lent. */
static uint32_t sock_nread(const struct ctl_sock *k)
{
  if (k->proto == TOE_ABI_PROTO_TCP)
    return toe_tcp_rx_pending(k->s);
  uint32_t bytes = 0;
  toe_udp_rx_pending(k->s, &bytes);
  if (k->held)
    bytes += k->held->tot_len - k->held_off;
  return bytes;
}

static void op_getsockopt(struct ctl_client *cl, struct ctl_sock *k, const struct toe_abi_sqe *sqe)
{
  struct toe_abi_cqe cqe;
  memset(&cqe, 0, sizeof(cqe));
  uint32_t opt = sqe->u.sockopt.opt;
  int64_t v = 0;
  int rc = 0;
  switch (opt) {
  case TOE_ABI_SO_ERROR:
    /* The pending error, cleared: the latest soft error, else what the engine holds. */
    v = k->so_error;
    k->so_error = 0;
    if (v == 0 && k->s) {
      int e = toe_sock_error(cl->dev->st, k->s);
      v = e < 0 ? e : 0;
    }
    break;
  case TOE_ABI_SO_RXBUFS:
    v = cl->slots[k->index].rx_max;
    break;
  case TOE_ABI_SO_NREAD:
    v = sock_nread(k);
    break;
  case TOE_ABI_SO_OWNER_PID:
    v = k->owner_pid;
    break;
  case TOE_ABI_SO_OWNER_COMM_LO:
  case TOE_ABI_SO_OWNER_COMM_HI: {
    const uint8_t *src = (const uint8_t *)k->owner_comm + (opt == TOE_ABI_SO_OWNER_COMM_HI ? 8 : 0);
    uint64_t u = 0;
    for (int i = 0; i < 8; i++)
      u |= (uint64_t)src[i] << (8 * i);
    v = (int64_t)u;
    break;
  }
  default:
    if (k->proto == TOE_ABI_PROTO_UDP && udp_local_opt(opt))
      v = k->udp_opt[opt];
    else
      rc = toe_sock_getopt(cl->dev->st, k->s, (int)opt, &v);
    break;
  }
  cqe.u.sockopt.value = rc == 0 ? v : 0;
  finish(cl, &cqe, sqe, rc);
}

static void sock_stats(struct ctl_client *cl, struct ctl_sock *k, struct toe_abi_sock_stats *ss)
{
  memset(ss, 0, sizeof(*ss));
  ss->proto = k->proto;
  ss->rx_lent = cl->slots[k->index].rx_lent;
  struct toe_sockaddr l, r;
  if (toe_sock_name(k->s, &l, &r) == 0) {
    addr_to_abi(&l, &ss->local);
    addr_to_abi(&r, &ss->remote);
  }
  ss->rx_bytes = k->rx_bytes;
  ss->tx_bytes = k->tx_bytes;
  ss->rx_queued = sock_nread(k);
  struct toe_tcp_info info;
  if (k->proto == TOE_ABI_PROTO_TCP && toe_tcp_get_info(cl->dev->st, k->s, &info) == 0) {
    ss->tcp_state = info.state;
    ss->tx_queued = info.tx_queued;
    ss->rtt_us = info.rtt_us;
    ss->snd_cwnd = info.snd_cwnd;
    ss->snd_mss = info.snd_mss;
    ss->rcv_wnd = info.rcv_wnd;
    ss->retrans_segs = info.total_retrans;
  }
}

static void op_stats(struct ctl_client *cl, struct ctl_sock *k, const struct toe_abi_sqe *sqe)
{
  struct toed_ctl_dev *dev = cl->dev;
  const void *src = NULL;
  size_t full = 0;
  struct toe_abi_sock_stats ss;
  switch (sqe->u.stats.kind) {
  case TOE_ABI_STATS_CLIENT:
    src = &cl->abi.stats;
    full = sizeof(cl->abi.stats);
    break;
  case TOE_ABI_STATS_SOCKET:
    sock_stats(cl, k, &ss);
    src = &ss;
    full = sizeof(ss);
    break;
  case TOE_ABI_STATS_ENGINE: { /* who may read what: ctl_stats.c */
    const char *text = NULL;
    full = ctl_engine_stats(dev, cl->privileged, cl->now, &text);
    src = text;
    break;
  }
  case TOE_ABI_STATS_FLOWS:
    full = ctl_flows_build(dev);
    src = dev->scratch;
    break;
  case TOE_ABI_STATS_FILTERS:
    full = ctl_filters_text(dev);
    src = dev->scratch;
    break;
  case TOE_ABI_STATS_DEVICE: /* 1.3 (ctl_info.c) */
    full = ctl_device_text(dev, (cl->abi.caps & TOE_ABI_CAP_FLOWS) != 0);
    src = dev->scratch;
    break;
  default: /* refused by validation */
    break;
  }
  if (!src || full == SIZE_MAX) {
    finish_res(cl, sqe, -TOE_ENOMEM);
    return;
  }
  /* The range was validated inside the buffer area. */
  size_t n = full < sqe->u.stats.len ? full : sqe->u.stats.len;
  memcpy(cl->region + sqe->u.stats.buf_off, src, n);
  finish_res(cl, sqe, full > INT32_MAX ? INT32_MAX : (int)full);
}

/* ------------------------------------------------------------------------------------------ */
/* Capture (1.2): copies of the frames the device sees, as pcap records in lent buffers        */

/* Takes the session off the device's list of captures. */
static void cap_unlist(struct ctl_client *cl)
{
  struct toed_ctl_dev *dev = cl->dev;
  cl->cap.on = false;
  for (uint32_t i = 0; i < dev->capturing; i++)
    if (dev->capturers[i] == cl) {
      dev->capturers[i] = dev->capturers[--dev->capturing];
      break;
    }
}

/* Lends the buffer being filled with an EV_CAPTURE. False if the CQ has no room (it stays). */
static bool cap_post(struct ctl_client *cl)
{
  struct ctl_capture *cp = &cl->cap;
  if (cp->buf == CTL_NONE || cp->records == 0)
    return true;
  /* A frame the engine sends from inside a receive (a window update from toe_tcp_recv) comes
   * here between that receive's room check and its EV_DATA: the slot it checked is not ours. */
  if (!ev_room_keep(cl, cl->rx_handoff ? 1u : 0u))
    return false;
  if (toe_abi_buf_give(&cl->abi, cp->buf) < 0)
    return true; /* not reached: the buffer is the device's while it is being filled */
  cp->frames += cp->pending;
  struct toe_abi_cqe cqe;
  memset(&cqe, 0, sizeof(cqe));
  cqe.u.capture.buf_id = cp->buf;
  cqe.u.capture.len = cp->used;
  cqe.u.capture.records = cp->records;
  cqe.u.capture.frames = cp->frames;
  cqe.u.capture.dropped = cp->dropped;
  post_event(cl, NULL, TOE_ABI_EV_CAPTURE, (int32_t)cp->used, 0, &cqe);
  cl->dev->stats.capture_frames += cp->pending;
  cl->dev->stats.bufs_lent++;
  cp->buf = CTL_NONE;
  cp->used = cp->records = 0;
  cp->pending = 0;
  return true;
}

/* Ends the capture: the buffer being filled goes to the host if the CQ has room, else its
 * frames count as dropped and it stays the device's. */
static void cap_end(struct ctl_client *cl)
{
  struct ctl_capture *cp = &cl->cap;
  if (!cp->on)
    return;
  if (!cap_post(cl)) {
    cp->dropped += cp->pending;
    cl->dev->stats.capture_dropped += cp->pending;
  }
  if (cp->buf != CTL_NONE)
    cl->free_bufs[cl->nfree_bufs++] = cp->buf;
  cp->buf = CTL_NONE;
  cp->used = cp->records = 0;
  cp->pending = 0;
  cap_unlist(cl);
}

static void op_capture(struct ctl_client *cl, const struct toe_abi_sqe *sqe)
{
  struct ctl_capture *cp = &cl->cap;
  struct toe_abi_cqe cqe;
  memset(&cqe, 0, sizeof(cqe));
  if (sqe->u.capture.capture_flags & TOE_ABI_CAPTURE_F_STOP) {
    if (!cp->on) {
      finish_res(cl, sqe, -TOE_ENOENT);
      return;
    }
    cap_end(cl);
    cqe.u.capture.frames = cp->frames;
    cqe.u.capture.dropped = cp->dropped;
    finish(cl, &cqe, sqe, 0);
    return;
  }
  if (cp->on || cl->dev->capturing >= TOED_CTL_CAPTURES_MAX) {
    finish_res(cl, sqe, -TOE_EBUSY);
    return;
  }
  /* The text is the host's and may change under us: compile a private copy. */
  char text[TOE_ABI_CAPTURE_FILTER_MAX];
  uint32_t n = sqe->u.capture.len; /* validated: <= the maximum, inside the buffer area */
  if (n)
    memcpy(text, cl->region + sqe->u.capture.buf_off, n);
  if (toe_capf_compile(&cp->filter, text, n, NULL, NULL) < 0) {
    finish_res(cl, sqe, -TOE_EINVAL);
    return;
  }
  uint32_t room = cl->abi.layout.buf_size - TOE_ABI_CAPTURE_REC_HDR;
  cp->snaplen =
      sqe->u.capture.snaplen && sqe->u.capture.snaplen < room ? sqe->u.capture.snaplen : room;
  cp->buf = CTL_NONE;
  cp->used = cp->records = 0;
  cp->frames = cp->pending = cp->dropped = 0;
  cp->on = true;
  cl->dev->capturers[cl->dev->capturing++] = cl;
  cl->dev->stats.captures++;
  finish_res(cl, sqe, 0);
}

static void put_le32(uint8_t *p, uint32_t v)
{
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}

void ctl_session_capture(struct ctl_client *cl, const uint8_t *bytes, size_t len,
                         const struct toe_pbuf *chain, uint64_t ts_ns)
{
  struct ctl_capture *cp = &cl->cap;
  if (!cp->on || cl->end_status)
    return;
  /* The filter reads headers only: a chain's first bytes are gathered into one place. */
  uint8_t head[TOE_CAPF_HEADER_BYTES];
  const uint8_t *hp = bytes;
  size_t hlen = len;
  if (chain) {
    len = chain->tot_len;
    hlen = 0;
    for (const struct toe_pbuf *b = chain; b && hlen < sizeof(head); b = b->next) {
      size_t k = b->len < sizeof(head) - hlen ? b->len : sizeof(head) - hlen;
      memcpy(head + hlen, b->data, k);
      hlen += k;
    }
    hp = head;
  }
  if (!toe_capf_match(&cp->filter, hp, hlen))
    return;
  const uint32_t bsize = cl->abi.layout.buf_size;
  uint32_t incl = len < cp->snaplen ? (uint32_t)len : cp->snaplen;
  uint32_t need = TOE_ABI_CAPTURE_REC_HDR + incl;
  if (cp->buf != CTL_NONE && cp->used + need > bsize)
    (void)cap_post(cl); /* full: lend it (if the CQ has no room, it stays and this frame drops) */
  if (cp->buf == CTL_NONE && cl->nfree_bufs)
    cp->buf = cl->free_bufs[--cl->nfree_bufs];
  if (cp->buf == CTL_NONE || cp->used + need > bsize) {
    cp->dropped++;
    cl->dev->stats.capture_dropped++;
    return;
  }
  uint8_t *p = cl->region + toe_abi_buf_offset(&cl->abi, cp->buf) + cp->used;
  /* A classic pcap record header (nanosecond variant), little-endian like the ABI. */
  put_le32(p, (uint32_t)(ts_ns / 1000000000ull));
  put_le32(p + 4, (uint32_t)(ts_ns % 1000000000ull));
  put_le32(p + 8, incl);
  put_le32(p + 12, len > UINT32_MAX ? UINT32_MAX : (uint32_t)len);
  p += TOE_ABI_CAPTURE_REC_HDR;
  if (chain) {
    uint32_t left = incl;
    for (const struct toe_pbuf *b = chain; b && left; b = b->next) {
      uint32_t k = b->len < left ? b->len : left;
      memcpy(p, b->data, k);
      p += k;
      left -= k;
    }
  } else {
    memcpy(p, bytes, incl);
  }
  cp->used += need;
  cp->records++;
  cp->pending++;
}

/*
 * SHARE: a token that lets a session of the same uid (any uid if the sharer is root) adopt k (a
 * listener or a UDP socket). A
 * listener's posted ACCEPTs are handed back first (-ECONNABORTED): from now on connections go
 * only to holders that ask for them, so a process that shares a listener and never accepts on
 * it again (a pre-fork server's master) does not take connections nobody will serve.
 */
static void op_share(struct ctl_client *cl, struct ctl_sock *k, const struct toe_abi_sqe *sqe)
{
  struct toed_ctl_dev *dev = cl->dev;
  ctl_tokens_expire(dev, cl->now);
  struct ctl_token *t = NULL;
  for (uint32_t i = 0; i < CTL_TOKENS && !t; i++)
    if (!dev->tokens[i].token)
      t = &dev->tokens[i];
  if (!t) {
    finish_res(cl, sqe, -TOE_EMFILE);
    return;
  }
  int q = ctl_quota_take(dev, cl->uid, CTL_Q_TOKEN, true); /* given back at adopt or expiry */
  if (q < 0) {
    finish_res(cl, sqe, q);
    return;
  }
  uint64_t tok = 0;
  while (!tok) {
    if (getrandom(&tok, sizeof(tok), 0) != (ssize_t)sizeof(tok)) {
      ctl_quota_give(dev, cl->uid, CTL_Q_TOKEN);
      finish_res(cl, sqe, -TOE_EAGAIN);
      return;
    }
  }
  if (!k->sh) {
    struct ctl_share *sh = calloc(1, sizeof(*sh));
    if (!sh) {
      ctl_quota_give(dev, cl->uid, CTL_Q_TOKEN);
      finish_res(cl, sqe, -TOE_ENOMEM);
      return;
    }
    sh->s = k->s;
    sh->proto = k->proto;
    sh->refs = 1;
    share_link(sh, k);
    dev->stats.share_inuse++;
  }
  if (k->proto == TOE_ABI_PROTO_TCP)
    cancel_ops(cl, k, -TOE_ECONNABORTED, false, false);
  k->sh->refs++;
  t->token = tok;
  t->uid = cl->uid;
  t->expires = cl->now + CTL_TOKEN_TTL_NS;
  t->sh = k->sh;
  dev->tokens_live++;
  dev->stats.share_tokens++;
  struct toe_abi_cqe cqe;
  memset(&cqe, 0, sizeof(cqe));
  cqe.u.share.token = tok;
  finish(cl, &cqe, sqe, 0);
}

/* ADOPT: a handle of this session to the socket a token names (the token is used up). */
static void op_adopt(struct ctl_client *cl, const struct toe_abi_sqe *sqe)
{
  struct toed_ctl_dev *dev = cl->dev;
  struct toe_abi_cqe cqe;
  memset(&cqe, 0, sizeof(cqe));
  ctl_tokens_expire(dev, cl->now);
  struct ctl_token *t = NULL;
  for (uint32_t i = 0; i < CTL_TOKENS && !t; i++)
    if (dev->tokens[i].token && dev->tokens[i].token == sqe->u.adopt.token)
      t = &dev->tokens[i];
  /* A token is the adopter's only if it has the sharer's uid, or the sharer is root: a root
   * daemon that forks workers and lets them drop privileges (nginx's "user nobody") hands them
   * its sockets, as it would its kernel sockets. The token itself never leaves the processes
   * forked from the sharer (it is random and lives in their memory). */
  if (!t || (t->uid != cl->uid && t->uid != 0)) {
    /* Unknown and foreign tokens look the same: a client learns nothing of others'. */
    dev->stats.share_refused++;
    finish(cl, &cqe, sqe, -TOE_ENOENT);
    return;
  }
  if (cl->abi.handles_inuse >= cl->abi.layout.max_handles) {
    finish(cl, &cqe, sqe, -TOE_EMFILE); /* the token stays: the client may close one and retry */
    return;
  }
  struct ctl_share *sh = t->sh;
  enum ctl_quota_kind qk = sh->proto == TOE_ABI_PROTO_TCP ? CTL_Q_TCP : CTL_Q_UDP;
  int q = ctl_quota_take(dev, cl->uid, qk, false); /* the socket exists: the uid's share only */
  if (q < 0) {
    finish(cl, &cqe, sqe, q); /* the token stays */
    return;
  }
  uint32_t h = 0;
  struct ctl_sock *n = sock_alloc(dev);
  int rc = n ? toe_abi_handle_alloc(&cl->abi, sh->proto, TOE_ABI_AF_INET, &h) : -TOE_EMFILE;
  if (rc < 0) {
    if (n)
      sock_free(dev, n);
    ctl_quota_give(dev, cl->uid, qk);
    finish(cl, &cqe, sqe, rc);
    return;
  }
  n->charged = true;
  ctl_quota_give(dev, t->uid, CTL_Q_TOKEN);
  memset(t, 0, sizeof(*t)); /* its reference goes to the new holder */
  dev->tokens_live--;
  n->cl = cl;
  n->s = sh->s;
  n->proto = sh->proto;
  n->handle = h;
  n->index = TOE_ABI_HANDLE_INDEX(h);
  n->sock_data = sqe->u.adopt.sock_data;
  cl->hs[n->index] = n;
  share_link(sh, n);
  share_retarget(dev, sh);
  struct toe_sockaddr local, remote;
  toe_sock_name(sh->s, &local, &remote);
  uint8_t state;
  if (sh->proto == TOE_ABI_PROTO_TCP) {
    state = TOE_ABI_ADOPT_LISTENING;
    cl->slots[n->index].state = TOE_ABI_HS_LISTENING;
  } else if (remote.family) {
    state = TOE_ABI_ADOPT_CONNECTED;
    cl->slots[n->index].state = TOE_ABI_HS_CONNECTED;
  } else {
    state = TOE_ABI_ADOPT_BOUND;
    cl->slots[n->index].state = TOE_ABI_HS_BOUND;
  }
  dev->stats.socks_inuse++;
  dev->stats.socks_opened++;
  dev->stats.share_adopted++;
  if (sh->proto == TOE_ABI_PROTO_UDP) {
    n->flags |= SF_RX; /* datagrams may be waiting already */
    list_add(cl, n, CTL_LIST_WORK);
  }
  addr_to_abi(&local, &cqe.u.adopt.local);
  cqe.u.adopt.proto = sh->proto;
  cqe.u.adopt.state = state;
  cqe.handle = h;
  finish(cl, &cqe, sqe, 0);
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
    if (accept_run(cl, k))
      list_add(cl, k, CTL_LIST_WAIT);
    break;
  }
  case TOE_ABI_OP_SEND: {
    uint32_t done = 0;
    int res;
    if (send_try(cl, k, sqe, &done, &res)) {
      finish_res(cl, sqe, res);
    } else {
      uint32_t i = op_alloc(cl, sqe);
      cl->ops[i].done = done;
      q_push(cl, &k->sendq_head, &k->sendq_tail, i);
      if (k->flags & SF_SEND_NOBUF)
        list_add(cl, k, CTL_LIST_WAIT);
    }
    break;
  }
  case TOE_ABI_OP_SHUTDOWN:
    op_shutdown(cl, k, sqe);
    break;
  case TOE_ABI_OP_SETSOCKOPT:
    op_setsockopt(cl, k, sqe);
    break;
  case TOE_ABI_OP_GETSOCKOPT:
    op_getsockopt(cl, k, sqe);
    break;
  case TOE_ABI_OP_STATS:
    op_stats(cl, k, sqe);
    break;
  case TOE_ABI_OP_SHARE:
    op_share(cl, k, sqe);
    break;
  default:
    finish_res(cl, sqe, -TOE_EOPNOTSUPP); /* not reached: validated */
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
  cancel_ops(cl, k, -TOE_ECONNABORTED, abort, false);
  if (k->sendq_head != CTL_NONE) {
    k->flags |= SF_CLOSING;
    q_push(cl, &k->sendq_head, &k->sendq_tail, op_alloc(cl, sqe));
    return;
  }
  sock_close(cl, k, abort);
  finish_res(cl, sqe, 0);
}

/*
 * Runs k's send queue: SENDs in order as space allows, and the ops that waited behind them.
 * Returns true if a CLOSE in it freed k.
 */
static bool sendq_run(struct ctl_client *cl, struct ctl_sock *k)
{
  while (k->sendq_head != CTL_NONE) {
    uint32_t i = k->sendq_head;
    struct ctl_op *op = &cl->ops[i];
    if (op->sqe.opcode == TOE_ABI_OP_SEND) {
      int res;
      if (!send_try(cl, k, &op->sqe, &op->done, &res))
        return false;
      q_pop(cl, &k->sendq_head, &k->sendq_tail);
      finish_res(cl, &op->sqe, res);
      op_free(cl, i);
      continue;
    }
    q_pop(cl, &k->sendq_head, &k->sendq_tail);
    struct toe_abi_sqe sqe = op->sqe;
    op_free(cl, i);
    if (sqe.opcode == TOE_ABI_OP_CLOSE) {
      bool abort = (sqe.u.close.close_flags & TOE_ABI_CLOSE_F_ABORT) != 0;
      cancel_ops(cl, k, -TOE_ECONNABORTED, true, false); /* nothing follows a CLOSE */
      sock_close(cl, k, abort);
      finish_res(cl, &sqe, 0);
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
  cq_write(cl, &cqe);
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
static void submit(struct ctl_client *cl, const struct toe_abi_sqe *sqe)
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
    finish_res(cl, sqe, 0);
    return;
  case TOE_ABI_OP_OPEN:
    op_open(cl, sqe);
    return;
  case TOE_ABI_OP_ADOPT:
    op_adopt(cl, sqe);
    return;
  case TOE_ABI_OP_STATS:
    if (!k) {
      op_stats(cl, NULL, sqe);
      return;
    }
    break;
  case TOE_ABI_OP_CAPTURE:
    op_capture(cl, sqe);
    return;
  case TOE_ABI_OP_CLOSE:
    op_close(cl, k, sqe);
    return;
  default:
    break;
  }
  if (k->sendq_head != CTL_NONE) {
    /* In submission order: behind the SEND that waits (docs: a SHUTDOWN, SETSOCKOPT, ... after
     * a waiting SEND waits for it). */
    q_push(cl, &k->sendq_head, &k->sendq_tail, op_alloc(cl, sqe));
    return;
  }
  exec_op(cl, k, sqe);
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
  if (!ev_room(cl))
    return wait_cq(cl, k);
  if (sl->rx_lent >= sl->rx_max)
    return rx_stall(cl, k, true);
  if (cl->nfree_bufs == 0)
    return rx_stall(cl, k, false);
  return false;
}

/* Lends buffer b holding n bytes of k's data with an EV_DATA (room was checked). */
static void rx_lend(struct ctl_client *cl, struct ctl_sock *k, uint32_t b, uint32_t n,
                    uint16_t flags, const struct toe_sockaddr *from)
{
  toe_abi_buf_lend(&cl->abi, b, k->handle);
  struct toe_abi_cqe cqe;
  memset(&cqe, 0, sizeof(cqe));
  cqe.u.data.buf_id = b;
  cqe.u.data.offset = 0;
  cqe.u.data.len = n;
  if (from)
    addr_to_abi(from, &cqe.u.data.from);
  post_event(cl, k, TOE_ABI_EV_DATA, (int32_t)n, flags, &cqe);
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
      if (rx_blocked(cl, k))
        return true;
      b = cl->free_bufs[--cl->nfree_bufs];
      n = toe_tcp_recv(st, k->s, cl->region + toe_abi_buf_offset(&cl->abi, b), bsize);
      if (n > 0) {
        rx_lend(cl, k, b, (uint32_t)n, 0, NULL);
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
      uint32_t n = min_u32(tot - k->held_off, bsize);
      uint32_t b = cl->free_bufs[--cl->nfree_bufs];
      toe_pbuf_copy_out(k->held, k->held_off, cl->region + toe_abi_buf_offset(&cl->abi, b), n);
      bool first = k->held_off == 0;
      k->held_off += n;
      bool last = k->held_off >= tot;
      rx_lend(cl, k, b, n, last ? 0 : TOE_ABI_CQE_F_MORE, first ? &k->held_from : NULL);
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
    if (!post_event(cl, k, TOE_ABI_EV_WRITABLE, 0, 0, &cqe))
      return wait_cq(cl, k);
    k->flags &= (uint16_t)~SF_WRITABLE_PEND;
  }
  if (k->flags & SF_ERR_PEND) {
    /* One soft error in the CQ at a time; a newer one merges into it (SO_ERROR keeps the
     * latest). */
    if ((k->flags & SF_ERR_POSTED) && !cq_consumed(cl, k->err_cq_idx)) {
      k->flags &= (uint16_t)~SF_ERR_PEND;
    } else {
      uint32_t idx = cl->cq.local;
      memset(&cqe, 0, sizeof(cqe));
      if (!post_event(cl, k, TOE_ABI_EV_ERROR, k->so_error ? k->so_error : -TOE_EIO, 0, &cqe))
        return wait_cq(cl, k);
      k->err_cq_idx = idx;
      k->flags |= SF_ERR_POSTED;
      k->flags &= (uint16_t)~SF_ERR_PEND;
    }
  }
  if (k->flags & SF_RX)
    return false; /* data first: the end events follow the last EV_DATA */
  if ((k->flags & (SF_EOF | SF_EOF_POSTED | SF_SHUT_RD)) == SF_EOF) {
    memset(&cqe, 0, sizeof(cqe));
    if (!post_event(cl, k, TOE_ABI_EV_PEER_CLOSED, 0, 0, &cqe))
      return wait_cq(cl, k);
    k->flags |= SF_EOF_POSTED;
  }
  if ((k->flags & (SF_DEAD | SF_END_POSTED)) == SF_DEAD && k->fatal_err) {
    memset(&cqe, 0, sizeof(cqe));
    bool reset = k->fatal_err == -TOE_ECONNRESET;
    if (!post_event(cl, k, reset ? TOE_ABI_EV_RESET : TOE_ABI_EV_ERROR, k->fatal_err,
                    reset ? 0 : TOE_ABI_CQE_F_FATAL, &cqe))
      return wait_cq(cl, k);
    k->flags |= SF_END_POSTED;
  }
  return false;
}

/* Everything socket k has to do after engine events or a resource change. */
static void sock_work(struct ctl_client *cl, struct ctl_sock *k)
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
      connect_check(cl, k);
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
    wait = accept_run(cl, k);
  if (k->sendq_head != CTL_NONE) {
    if (sendq_run(cl, k))
      return; /* closed */
    if (k->flags & SF_SEND_NOBUF)
      wait = true;
  }
  if (k->flags & SF_RX) {
    cl->rx_handoff = true; /* a capture keeps off the CQ slot a receive checked (cap_post) */
    wait = (k->proto == TOE_ABI_PROTO_TCP ? rx_tcp(cl, k) : rx_udp(cl, k)) || wait;
    cl->rx_handoff = false;
  }
  if (post_pending(cl, k))
    wait = true;
  if (wait && k->list == CTL_LIST_NONE)
    list_add(cl, k, CTL_LIST_WAIT);
}

/* ------------------------------------------------------------------------------------------ */
/* Rings                                                                                      */

/* Buffers the host gives back on the fill ring. Returns how many entries were read. */
static uint32_t take_fill(struct ctl_client *cl)
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

/* Submissions, as far as free op slots and CQ room allow. Returns how many were taken. */
static uint32_t take_sqes(struct ctl_client *cl, uint32_t budget)
{
  struct toe_abi_sqe batch[SQ_BATCH];
  uint32_t total = 0;
  cl->sq_blocked = false;
  while (total < budget && !cl->end_status) {
    int fr = toe_ring_prod_reserve(&cl->cq, cl->cq.size);
    if (fr < 0) {
      ctl_session_fail(cl, fr, CTL_END_PROTOCOL);
      break;
    }
    uint32_t room = (uint32_t)fr > cl->cq_reserved ? (uint32_t)fr - cl->cq_reserved : 0;
    uint32_t want = min_u32(min_u32(room, cl->ops_navail), min_u32(SQ_BATCH, budget - total));
    if (want == 0) {
      /* The host's CQ (or our op table) is full: the SQ waits; looked at again shortly. */
      int avail = toe_ring_cons_avail(&cl->sq);
      if (avail < 0)
        ctl_session_fail(cl, avail, CTL_END_PROTOCOL);
      else if (avail > 0) {
        cl->sq_blocked = true;
        cl->sq_retry_at = cl->now + RETRY_NS;
      }
      break;
    }
    int n = toe_ring_cons_read(&cl->sq, batch, want);
    if (n < 0) {
      ctl_session_fail(cl, n, CTL_END_PROTOCOL);
      break;
    }
    if (n == 0)
      break;
    for (int i = 0; i < n && !cl->end_status; i++) {
      cl->cq_reserved++;
      submit(cl, &batch[i]);
    }
    toe_ring_cons_release(&cl->sq, (uint32_t)n);
    total += (uint32_t)n;
  }
  return total;
}

static void publish(struct ctl_client *cl)
{
  if (!cl->cq_dirty)
    return;
  cl->cq_dirty = false;
  toe_ring_publish(&cl->cq);
  /* The host rings nothing when it drains the CQ; it said whether it sleeps. */
  if (toe_ring_prod_needs_wakeup(&cl->cq)) {
    if (toe_bell_ring(cl->notify, cl->posix_bells)) {
      cl->abi.stats.notifies++;
      cl->dev->stats.notifies++;
    }
  }
}

static void wake(struct ctl_client *cl, toe_time_t now)
{
  if (!cl->awake) {
    cl->awake = true;
    toe_ring_cons_clear_wakeup(&cl->sq);
    toe_ring_cons_clear_wakeup(&cl->fq);
  }
  cl->last_active = now;
}

void ctl_session_kick(struct ctl_client *cl, toe_time_t now)
{
  uint64_t v;
  if (read(cl->kick, &v, sizeof v) == (ssize_t)sizeof v) {
    cl->abi.stats.kicks++;
    cl->dev->stats.kicks++;
  }
  if (cl->state == CTL_CS_ACTIVE)
    wake(cl, now);
}

void ctl_session_run(struct ctl_client *cl, toe_time_t now)
{
  if (cl->state != CTL_CS_ACTIVE || cl->end_status)
    return;
  cl->now = now;
  bool active = false;
  if (cl->awake || cl->resources || (cl->sq_blocked && now >= cl->sq_retry_at)) {
    if (take_fill(cl))
      active = true;
    if (take_sqes(cl, SQ_BUDGET))
      active = true;
  }
  if (cl->wait_head && (cl->resources || now >= cl->retry_at)) {
    requeue_waiting(cl);
    cl->retry_at = TOE_TIME_NEVER;
  }
  cl->resources = false;
  for (uint32_t budget = WORK_BUDGET; cl->work_head && budget && !cl->end_status; budget--) {
    struct ctl_sock *k = cl->work_head;
    list_remove(cl, k);
    sock_work(cl, k);
  }
  if (cl->end_status)
    return;
  /* Captured frames go out once per round (a batch of the loop), not per frame. */
  if (cl->cap.records)
    (void)cap_post(cl); /* no CQ room: looked at again in RETRY_NS (ctl_session_next_wake) */
  if (cl->cq_dirty)
    active = true;
  publish(cl);
  if (active)
    cl->last_active = now;

  /* Adaptive polling: after --poll-us without anything to do, announce the sleep (NEED_WAKEUP on
   * both rings the host produces) and re-check, so a submission racing with it is not missed. */
  if (cl->awake && !cl->work_head && now - cl->last_active >= cl->dev->poll_ns) {
    int a = toe_ring_cons_prepare_sleep(&cl->sq);
    int b = toe_ring_cons_prepare_sleep(&cl->fq);
    if (a < 0 || b < 0) {
      ctl_session_fail(cl, -TOE_EPROTO, CTL_END_PROTOCOL);
      return;
    }
    if ((a > 0 && !cl->sq_blocked) || b > 0) {
      toe_ring_cons_clear_wakeup(&cl->sq);
      toe_ring_cons_clear_wakeup(&cl->fq);
      cl->last_active = now;
    } else {
      cl->awake = false;
    }
  }
}

toe_time_t ctl_session_next_wake(const struct ctl_client *cl, toe_time_t now)
{
  if (cl->state == CTL_CS_HELLO)
    return cl->hello_deadline;
  if (cl->state != CTL_CS_ACTIVE)
    return TOE_TIME_NEVER;
  if (cl->end_status || cl->work_head || cl->resources || cl->cq_dirty)
    return now;
  if (cl->awake)
    return now; /* spinning */
  toe_time_t t = TOE_TIME_NEVER;
  if (cl->wait_head && cl->retry_at < t)
    t = cl->retry_at;
  if (cl->sq_blocked && cl->sq_retry_at < t)
    t = cl->sq_retry_at;
  if (cl->cap.records && now + RETRY_NS < t)
    t = now + RETRY_NS; /* records wait for CQ room */
  if (cl->dev->stopping && !cl->shutdown_posted && now + RETRY_NS < t)
    t = now + RETRY_NS;
  return t;
}

void ctl_session_post_shutdown(struct ctl_client *cl)
{
  if (cl->state != CTL_CS_ACTIVE || cl->shutdown_posted || cl->end_status)
    return;
  region_state(cl, TOE_ABI_DEV_STOPPING, 0);
  struct toe_abi_cqe cqe;
  memset(&cqe, 0, sizeof(cqe));
  if (post_event(cl, NULL, TOE_ABI_EV_SHUTDOWN, 0, 0, &cqe)) {
    cl->shutdown_posted = true;
    publish(cl);
  }
}

/* ------------------------------------------------------------------------------------------ */
/* Start and end                                                                              */

static void session_free(struct ctl_client *cl)
{
  struct toed_ctl_dev *dev = cl->dev;
  if (cl->kick >= 0) {
    epoll_ctl(dev->epfd, EPOLL_CTL_DEL, cl->kick, NULL); /* the host holds the same file */
    close(cl->kick);
  }
  if (cl->notify >= 0)
    close(cl->notify);
  cl->kick = cl->notify = -1;
  if (cl->region)
    munmap(cl->region, cl->region_size);
  cl->region = NULL;
  free(cl->slots);
  free(cl->bufs);
  free(cl->hs);
  free(cl->ops);
  free(cl->free_bufs);
  cl->slots = NULL;
  cl->bufs = NULL;
  cl->hs = NULL;
  cl->ops = NULL;
  cl->free_bufs = NULL;
}

int ctl_session_start(struct ctl_client *cl, const struct toe_abi_hello_reply *rep,
                      int fds[TOE_ABI_FD_MAX], toe_time_t now)
{
  const struct toe_abi_layout *l = &rep->layout;
  struct toed_ctl_dev *dev = cl->dev;
  int rc = -TOE_ENOMEM;
  for (int i = 0; i < TOE_ABI_FD_MAX; i++)
    fds[i] = -1;
  cl->kick = cl->notify = -1;
  cl->region = NULL;
  memset(&cl->cap, 0, sizeof(cl->cap));
  cl->cap.buf = CTL_NONE;

  /* The region (header and rings written) and the doorbells: the transport's set-up. */
  struct toe_region_os ro;
  rc = toe_region_os_create_sealed(&ro, l, rep->caps, rep->client_id);
  if (rc < 0)
    return rc;
  cl->region = ro.region;
  cl->region_size = ro.region_size;
  cl->kick = ro.kick;
  cl->notify = ro.notify;
  cl->posix_bells = ro.posix;
  memcpy(fds, ro.host, sizeof(ro.host));

  cl->slots = calloc(l->max_handles, sizeof(*cl->slots));
  cl->bufs = calloc(l->buf_count, sizeof(*cl->bufs));
  cl->hs = calloc(l->max_handles, sizeof(*cl->hs));
  cl->ops = calloc(l->sq_entries, sizeof(*cl->ops));
  cl->free_bufs = calloc(l->buf_count, sizeof(*cl->free_bufs));
  if (!cl->slots || !cl->bufs || !cl->hs || !cl->ops || !cl->free_bufs)
    goto fail;
  rc = toe_abi_client_init(&cl->abi, l, rep->caps, cl->slots, cl->bufs);
  if (rc < 0)
    goto fail;
  struct toe_region_rings rings;
  rc = toe_region_rings_device(&rings, cl->region, l);
  if (rc < 0)
    goto fail;
  cl->sq = rings.sq;
  cl->cq = rings.cq;
  cl->fq = rings.fq;
  for (uint32_t i = 0; i < l->sq_entries; i++)
    cl->ops[i].next = i + 1 < l->sq_entries ? i + 1 : CTL_NONE;
  cl->ops_free = 0;
  cl->ops_navail = l->sq_entries;
  cl->cq_reserved = 0;
  cl->nfree_bufs = 0;
  cl->work_head = cl->work_tail = cl->wait_head = cl->wait_tail = NULL;
  cl->resources = cl->cq_dirty = cl->shutdown_posted = cl->sq_blocked = false;
  cl->awake = true;
  cl->last_active = now;
  cl->retry_at = cl->sq_retry_at = TOE_TIME_NEVER;
  cl->now = now;
  cl->end_status = 0;

  struct epoll_event ev = {.events = EPOLLIN, .data.u64 = ctl_tag(cl->slot, cl->gen, CTL_TAG_KICK)};
  if (epoll_ctl(dev->epfd, EPOLL_CTL_ADD, cl->kick, &ev) < 0) {
    rc = -TOE_ENOMEM;
    goto fail;
  }
  return 0;

fail:
  if (rc >= 0)
    rc = -TOE_ENOMEM;
  ctl_session_handed(cl, fds, TOE_ABI_FD_MAX);
  session_free(cl);
  return rc;
}

void ctl_session_handed(struct ctl_client *cl, int fds[TOE_ABI_FD_MAX], uint32_t nfds)
{
  for (uint32_t i = 0; i < nfds && i < TOE_ABI_FD_MAX; i++) {
    if (fds[i] >= 0 && fds[i] != cl->kick && fds[i] != cl->notify)
      close(fds[i]);
    fds[i] = -1;
  }
}

void ctl_session_end(struct ctl_client *cl, int status, enum ctl_end_kind kind)
{
  if (cl->state != CTL_CS_ACTIVE || cl->ending)
    return;
  cl->ending = true;
  struct toed_ctl_dev *dev = cl->dev;
  toe_time_t now = cl->now;

  if (kind == CTL_END_CLIENT && !cl->end_status) {
    /* The host's last words: what it submitted before closing the control socket is executed,
     * so a CLOSE it sent on its way out is a graceful close, not a reset. */
    cl->awake = true;
    take_fill(cl);
    take_sqes(cl, cl->sq.size);
    for (uint32_t budget = WORK_BUDGET; cl->work_head && budget && !cl->end_status; budget--) {
      struct ctl_sock *k = cl->work_head;
      list_remove(cl, k);
      sock_work(cl, k);
    }
  }
  if (cl->cap.on)
    cap_unlist(cl); /* nobody will read the records */
  /* The completions written so far (the refusals that ended it, say) become visible. */
  if (!toe_ring_error(&cl->cq))
    publish(cl);
  region_state(cl, TOE_ABI_DEV_GONE, status);

  /* What is left open is reset: its owner is gone and will read nothing (the issue: RST to the
   * peers). Waiting ops die without completions; nobody reads them. */
  for (uint32_t i = 0; cl->hs && i < cl->abi.layout.max_handles; i++) {
    struct ctl_sock *k = cl->hs[i];
    if (!k)
      continue;
    cancel_ops(cl, k, 0, true, true);
    dev->stats.socks_reset_on_end++;
    sock_close(cl, k, true);
  }
  cl->work_head = cl->work_tail = cl->wait_head = cl->wait_tail = NULL;
  session_free(cl);
  switch (kind) {
  case CTL_END_CLIENT:
    dev->stats.ended_client++;
    break;
  case CTL_END_ABUSE:
    dev->stats.ended_abuse++;
    break;
  case CTL_END_PROTOCOL:
    dev->stats.ended_protocol++;
    break;
  case CTL_END_SHUTDOWN:
    dev->stats.ended_shutdown++;
    break;
  case CTL_END_SETUP:
    dev->stats.setup_errors++;
    break;
  }
  if (dev->stats.clients_attached)
    dev->stats.clients_attached--;
  (void)now;
}

/* ------------------------------------------------------------------------------------------ */
/* Introspection: the flow table and the counters                                             */

static bool scratch_reserve(struct toed_ctl_dev *dev, size_t need)
{
  if (need <= dev->scratch_cap)
    return true;
  size_t cap = dev->scratch_cap ? dev->scratch_cap : 65536;
  while (cap < need)
    cap *= 2;
  char *p = realloc(dev->scratch, cap);
  if (!p)
    return false;
  dev->scratch = p;
  dev->scratch_cap = cap;
  return true;
}

struct text_ctx {
  struct toed_ctl_dev *dev;
  size_t len;
  bool failed;
};

static void text_add(void *arg, const char *layer, const char *name, uint64_t value)
{
  struct text_ctx *t = arg;
  char line[160];
  int n = snprintf(line, sizeof line, "%s.%s %llu\n", layer, name, (unsigned long long)value);
  if (n <= 0 || (size_t)n >= sizeof line || !scratch_reserve(t->dev, t->len + (size_t)n)) {
    t->failed = true;
    return;
  }
  memcpy(t->dev->scratch + t->len, line, (size_t)n);
  t->len += (size_t)n;
}

size_t ctl_counters_text(struct toed_ctl_dev *dev)
{
  struct text_ctx t = {dev, 0, false};
  toe_counters_visit(toe_stack_counters(dev->st), text_add, &t);
#define TEXT_STAT_(name) text_add(&t, "transport", #name, dev->stats.name);
  TOED_CTL_STATS(TEXT_STAT_)
#undef TEXT_STAT_
  return t.failed ? SIZE_MAX : t.len;
}

static void filter_line(void *arg, const struct toe_filter_info *f)
{
  struct text_ctx *t = arg;
  static const char *const kinds[] = {"?", "local", "conn", "timewait"};
  char line[160];
  int n = snprintf(line, sizeof line, "%s %s %u.%u.%u.%u %u %u.%u.%u.%u %u %u %llu %llu\n",
                   f->proto == 6 ? "tcp" : "udp", kinds[f->kind <= 3 ? f->kind : 0], f->laddr >> 24,
                   (f->laddr >> 16) & 255u, (f->laddr >> 8) & 255u, f->laddr & 255u, f->lport,
                   f->raddr >> 24, (f->raddr >> 16) & 255u, (f->raddr >> 8) & 255u, f->raddr & 255u,
                   f->rport, f->refs, (unsigned long long)f->frames, (unsigned long long)f->bytes);
  if (n <= 0 || (size_t)n >= sizeof line || !scratch_reserve(t->dev, t->len + (size_t)n)) {
    t->failed = true;
    return;
  }
  memcpy(t->dev->scratch + t->len, line, (size_t)n);
  t->len += (size_t)n;
}

size_t ctl_filters_text(struct toed_ctl_dev *dev)
{
  struct text_ctx t = {dev, 0, false};
  /* An empty table still answers (a zero-length result), so reserve the first byte. */
  if (!scratch_reserve(dev, 1))
    return SIZE_MAX;
  toe_filter_visit(dev->st, filter_line, &t);
  return t.failed ? SIZE_MAX : t.len;
}

struct owner {
  uintptr_t s;
  const struct ctl_sock *k;
};

static int owner_cmp(const void *a, const void *b)
{
  uintptr_t x = ((const struct owner *)a)->s, y = ((const struct owner *)b)->s;
  return x < y ? -1 : x > y;
}

struct flows_ctx {
  struct toed_ctl_dev *dev;
  struct owner *owners;
  size_t nowners;
  size_t len;
  uint32_t count;
  bool failed;
};

static struct toe_abi_flow *flow_next(struct flows_ctx *f)
{
  if (!scratch_reserve(f->dev, f->len + sizeof(struct toe_abi_flow))) {
    f->failed = true;
    return NULL;
  }
  struct toe_abi_flow *r = (struct toe_abi_flow *)(void *)(f->dev->scratch + f->len);
  memset(r, 0, sizeof(*r));
  f->len += sizeof(*r);
  f->count++;
  return r;
}

static void flow_owner(struct toe_abi_flow *r, const struct ctl_sock *k)
{
  const struct ctl_client *cl = k->cl;
  r->client_id = cl->client_id;
  r->origin = cl->origin;
  r->pid = (uint32_t)cl->pid;
  r->uid = (uint32_t)cl->uid;
  memcpy(r->comm, cl->comm, sizeof(r->comm));
  if (k->owner_set) {
    /* A proxy's flow belongs to the program it carries: its tag, made printable like a hello's
     * name (cl->comm already is), stops at the first NUL. */
    r->pid = k->owner_pid;
    memset(r->comm, 0, sizeof(r->comm));
    for (size_t i = 0; i < sizeof(r->comm) - 1 && k->owner_comm[i]; i++)
      r->comm[i] = isprint((unsigned char)k->owner_comm[i]) ? k->owner_comm[i] : '?';
  }
  r->rx_bytes = k->rx_bytes;
  r->tx_bytes = k->tx_bytes;
}

static void flow_tcp(void *arg, const struct toe_sock *s, const struct toe_sockaddr *local,
                     const struct toe_sockaddr *remote, const struct toe_tcp_info *info)
{
  struct flows_ctx *f = arg;
  struct toe_abi_flow *r = flow_next(f);
  if (!r)
    return;
  r->proto = TOE_ABI_PROTO_TCP;
  r->tcp_state = info->state;
  addr_to_abi(local, &r->local);
  addr_to_abi(remote, &r->remote);
  r->rx_queued = info->rx_queued;
  r->tx_queued = info->tx_queued;
  r->snd_cwnd = info->snd_cwnd;
  r->rtt_us = info->rtt_us;
  r->rcv_wnd = info->rcv_wnd;
  r->snd_mss = info->snd_mss;
  r->retrans_segs = info->total_retrans;
  if (s && f->nowners) {
    struct owner key = {(uintptr_t)s, NULL};
    const struct owner *o = bsearch(&key, f->owners, f->nowners, sizeof(*o), owner_cmp);
    if (o)
      flow_owner(r, o->k);
  }
}

size_t ctl_flows_build(struct toed_ctl_dev *dev)
{
  struct flows_ctx f = {dev, NULL, 0, sizeof(struct toe_abi_flows_hdr), 0, false};
  if (!scratch_reserve(dev, f.len))
    return SIZE_MAX;
  /* The clients' engine sockets, sorted, to find each connection's owner. */
  f.owners = malloc((size_t)dev->nsocks * sizeof(*f.owners) + 1);
  if (!f.owners)
    return SIZE_MAX;
  for (uint32_t i = 0; i < dev->nsocks; i++) {
    const struct ctl_sock *k = &dev->socks[i];
    if (k->cl && k->s && k->proto == TOE_ABI_PROTO_TCP)
      f.owners[f.nowners++] = (struct owner){(uintptr_t)k->s, k};
  }
  qsort(f.owners, f.nowners, sizeof(*f.owners), owner_cmp);
  toe_tcp_visit(dev->st, flow_tcp, &f);
  /* UDP: the engine has no visitor; the clients' sockets are known here. */
  for (uint32_t i = 0; i < dev->nsocks && !f.failed; i++) {
    const struct ctl_sock *k = &dev->socks[i];
    if (!k->cl || !k->s || k->proto != TOE_ABI_PROTO_UDP)
      continue;
    struct toe_abi_flow *r = flow_next(&f);
    if (!r)
      break;
    r->proto = TOE_ABI_PROTO_UDP;
    struct toe_sockaddr l, rm;
    if (toe_sock_name(k->s, &l, &rm) == 0) {
      addr_to_abi(&l, &r->local);
      addr_to_abi(&rm, &r->remote);
    }
    r->rx_queued = sock_nread(k);
    flow_owner(r, k);
  }
  free(f.owners);
  if (f.failed)
    return SIZE_MAX;
  struct toe_abi_flows_hdr *h = (struct toe_abi_flows_hdr *)(void *)dev->scratch;
  memset(h, 0, sizeof(*h));
  h->record_size = sizeof(struct toe_abi_flow);
  h->count = f.count;
  return f.len;
}
