/*
 * libtoe (src/host) against an in-process fake device: a thread that speaks the transport ABI
 * (docs/transport.md) on a Unix socket in /tmp, with the same handshake, region, rings and
 * descriptor validation (src/transport) as toed, and a loopback "network" inside: TCP connects
 * reach listeners of the same device, UDP datagrams reach bound sockets. Nothing leaves the
 * process, so this runs without toed, namespaces or root.
 *
 * Covered: attach (errors: no socket, nobody listening, refusal, a closed socket, a bad reply, an
 * unsealed region; the default control path), argument and state errors of every call, TCP
 * connect/accept/send/recv both copying and zero-copy, EOF, reset on close with unread data,
 * flow control (a reader that stops makes the writer see EAGAIN, and holds at most RXBUFS
 * buffers), UDP datagrams larger than one buffer (F_MORE pieces), empty and truncated datagrams,
 * soft errors, ABI 1.5 per-datagram metadata (toe_recvmsg), the pollable event descriptor (readable
 * exactly while something is pending), malformed completions from the device (counted, ignored),
 * device loss (every call returns promptly with the documented errors, within a second), and
 * several threads sharing a device.
 *
 * Both ports of libtoe (src/host/port.h) run this file: with the POSIX port (TOE_TEST_PORT_POSIX,
 * build-posix/) the fake device answers the 1.3 POSIX doorbells with the transport's POSIX
 * region set-up (src/transport/os/region_posix.c: an shm object, a pipe, a socket pair). The
 * test "own_syscalls" interposes the socket calls in this executable and checks that the Linux
 * port's calls never reach them (raw system calls), while the POSIX port's do.
 */
#define _GNU_SOURCE

#include "common/prng.h"
#include "testlib.h"
#include "toe/abi.h"
#include "toe/toe.h"
#include "transport/abi_validate.h"
#include "transport/os/region_os.h"
#include "transport/ring.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------------------------ */
/* The fake device                                                                            */

#define FD_HANDLES 64
#define FD_QCAP (256u * 1024u) /* bytes a socket's receive queue holds in the device */
#define FD_PENDING 256

/* FD_SHORT: the region descriptor is smaller than the layout says (both ports refuse it).
 * FD_OLD: a 1.2 device, which does not grant the POSIX doorbells. */
enum fd_mode { FD_NORMAL, FD_REFUSE, FD_HANGUP, FD_BADMAGIC, FD_NOSEAL, FD_SHORT, FD_OLD };

struct fsock {
  bool used;
  uint8_t proto;
  uint16_t family; /* TOE_ABI_AF_INET, or TOE_ABI_AF_INET6 (1.7): then its address is 2001:db8::1 */
  uint32_t handle;
  uint64_t sock_data;
  uint16_t lport;
  int peer;         /* TCP: the other end's index, -1 */
  bool fin_pending; /* the peer shut down: EV_PEER_CLOSED once the queue is delivered */
  bool fin_posted;
  bool reset_pending;
  bool listening;
  int backlog[8];
  int nbacklog;
  uint8_t *q; /* TCP: bytes; UDP: records [u32 len][u16 port][data] */
  uint32_t qlen;
  int64_t opts[16];
  bool rxmeta;      /* 1.5 SO_RXMETA: a struct toe_abi_rx_meta before each datagram */
  int32_t soft_err; /* UDP: an error to post as a soft EV_ERROR */
};

struct fdev {
  char path[108];
  enum fd_mode mode;
  _Atomic uint16_t meta_size; /* the size written in meta records (0: TOE_ABI_RX_META_SIZE) */
  int lfd, cfd, kick, notify;
  bool posix; /* the 1.3 POSIX doorbells (notify is a socket) */
  uint8_t *region;
  struct toe_abi_layout layout;
  struct toe_abi_client abi;
  struct toe_abi_hslot slots[FD_HANDLES];
  uint32_t *bufs;
  uint32_t *freeb; /* device-owned buffers ready to fill */
  uint32_t nfree;
  struct toe_ring sq, cq, fq;
  struct fsock socks[FD_HANDLES];
  struct toe_abi_sqe pending[FD_PENDING];
  int npending;
  uint16_t next_port;
  pthread_t thr;
  atomic_bool stop;
  atomic_bool kill;     /* test: hang up the control socket (device death) */
  atomic_int inject;    /* test: malformed CQEs to post */
  atomic_bool sessions; /* a session is up */
  atomic_int paused;    /* test: 1 = stop reading the SQ */
  atomic_uint_least64_t cqes_posted;
  uint64_t cqes_flushed;
};

static void fd_post(struct fdev *f, const struct toe_abi_cqe *c)
{
  if (toe_ring_prod_write(&f->cq, c, 1) == 1)
    atomic_fetch_add(&f->cqes_posted, 1);
}

static void fd_flush(struct fdev *f)
{
  uint64_t posted = atomic_load(&f->cqes_posted);
  if (posted == f->cqes_flushed)
    return; /* ring the host only for new entries */
  f->cqes_flushed = posted;
  toe_ring_publish(&f->cq);
  if (toe_ring_prod_needs_wakeup(&f->cq))
    toe_bell_ring(f->notify, f->posix);
}

static void fd_complete(struct fdev *f, const struct toe_abi_sqe *sqe, int res,
                        struct toe_abi_cqe *c)
{
  struct toe_abi_cqe z;
  if (!c) {
    memset(&z, 0, sizeof(z));
    c = &z;
  }
  c->user_data = sqe->user_data;
  c->res = res;
  if (!c->handle)
    c->handle = sqe->handle;
  c->type = TOE_ABI_CQE_OP;
  c->opcode = sqe->opcode;
  fd_post(f, c);
}

static void fd_event(struct fdev *f, struct fsock *k, uint8_t type, int res, uint16_t flags)
{
  struct toe_abi_cqe c;
  memset(&c, 0, sizeof(c));
  c.user_data = k->sock_data;
  c.res = res;
  c.handle = k->handle;
  c.type = type;
  c.flags = flags;
  fd_post(f, &c);
}

static struct fsock *fd_sock_new(struct fdev *f, uint8_t proto, uint16_t family, uint32_t *h)
{
  if (toe_abi_handle_alloc(&f->abi, proto, family, h) < 0)
    return NULL;
  struct fsock *k = &f->socks[TOE_ABI_HANDLE_INDEX(*h)];
  memset(k, 0, sizeof(*k));
  k->used = true;
  k->proto = proto;
  k->family = family;
  k->handle = *h;
  k->peer = -1;
  k->q = malloc(FD_QCAP);
  return k;
}

static void fd_sock_free(struct fdev *f, struct fsock *k)
{
  free(k->q);
  k->q = NULL;
  k->used = false;
  toe_abi_handle_free(&f->abi, TOE_ABI_HANDLE_INDEX(k->handle));
}

static struct fsock *fd_find_port(struct fdev *f, uint8_t proto, uint16_t port, bool listening)
{
  for (int i = 0; i < FD_HANDLES; i++) {
    struct fsock *k = &f->socks[i];
    if (k->used && k->proto == proto && k->lport == port && (!listening || k->listening))
      return k;
  }
  return NULL;
}

static void fd_local(const struct fsock *k, struct toe_abi_sockaddr *a)
{
  memset(a, 0, sizeof(*a));
  if (k->family == TOE_ABI_AF_INET6) {
    a->family = TOE_ABI_AF_INET6;
    a->port = k->lport;
    a->addr[0] = 0x20;
    a->addr[1] = 0x01;
    a->addr[2] = 0x0d;
    a->addr[3] = 0xb8;
    a->addr[15] = 1;
    return;
  }
  a->family = TOE_ABI_AF_INET;
  a->port = k->lport;
  a->addr[0] = 10;
  a->addr[3] = 1;
}

/* Ops that wait: ACCEPT (for a connection), SEND (for room in the peer's queue). Returns true if
 * the op completed. */
static bool fd_try(struct fdev *f, const struct toe_abi_sqe *sqe)
{
  uint32_t idx = TOE_ABI_HANDLE_INDEX(sqe->handle);
  struct fsock *k = &f->socks[idx];
  struct toe_abi_cqe c;
  memset(&c, 0, sizeof(c));
  if (sqe->opcode == TOE_ABI_OP_ACCEPT) {
    if (k->nbacklog == 0)
      return false;
    struct fsock *n = &f->socks[k->backlog[0]];
    memmove(k->backlog, k->backlog + 1, sizeof(int) * (size_t)--k->nbacklog);
    n->sock_data = sqe->u.accept.sock_data;
    c.u.accept.handle = n->handle;
    fd_local(&f->socks[n->peer], &c.u.accept.peer);
    fd_complete(f, sqe, 0, &c);
    return true;
  }
  /* SEND */
  uint32_t len = sqe->u.send.len;
  const uint8_t *data = f->region + sqe->u.send.buf_off;
  if (k->proto == TOE_ABI_PROTO_TCP) {
    if (k->peer < 0) {
      fd_complete(f, sqe, -TOE_EPIPE, NULL);
      return true;
    }
    struct fsock *p = &f->socks[k->peer];
    if (p->qlen + len > FD_QCAP)
      return false; /* flow control: wait for the reader */
    memcpy(p->q + p->qlen, data, len);
    p->qlen += len;
    fd_complete(f, sqe, (int)len, NULL);
    return true;
  }
  uint16_t port = sqe->u.send.dst.family ? sqe->u.send.dst.port : (uint16_t)k->opts[15];
  if (!k->lport)
    k->lport = f->next_port++;
  struct fsock *p = fd_find_port(f, TOE_ABI_PROTO_UDP, port, false);
  if (!p || p == k) {
    k->soft_err = -TOE_ECONNREFUSED; /* as an ICMP port unreachable would */
  } else if (p->qlen + len + 6 <= FD_QCAP) {
    memcpy(p->q + p->qlen, &len, 4);
    memcpy(p->q + p->qlen + 4, &k->lport, 2);
    memcpy(p->q + p->qlen + 6, data, len);
    p->qlen += len + 6;
  }
  fd_complete(f, sqe, (int)len, NULL);
  return true;
}

static void fd_close(struct fdev *f, const struct toe_abi_sqe *sqe)
{
  uint32_t idx = TOE_ABI_HANDLE_INDEX(sqe->handle);
  struct fsock *k = &f->socks[idx];
  /* Pending ops of this handle complete first (-ECONNABORTED). */
  for (int i = 0; i < f->npending;) {
    if (f->pending[i].handle == sqe->handle) {
      fd_complete(f, &f->pending[i], -TOE_ECONNABORTED, NULL);
      memmove(&f->pending[i], &f->pending[i + 1],
              sizeof(f->pending[0]) * (size_t)(--f->npending - i));
    } else {
      i++;
    }
  }
  if (k->peer >= 0) {
    struct fsock *p = &f->socks[k->peer];
    bool abort = (sqe->u.close.close_flags & TOE_ABI_CLOSE_F_ABORT) || k->opts[10];
    if (abort)
      p->reset_pending = true;
    else
      p->fin_pending = true;
    p->peer = -1;
  }
  for (int i = 0; i < k->nbacklog; i++) {
    struct fsock *n = &f->socks[k->backlog[i]];
    if (n->peer >= 0)
      f->socks[n->peer].reset_pending = true, f->socks[n->peer].peer = -1;
    fd_sock_free(f, n);
  }
  fd_sock_free(f, k);
  fd_complete(f, sqe, 0, NULL);
}

static void fd_sqe(struct fdev *f, const struct toe_abi_sqe *sqe)
{
  uint32_t idx = UINT32_MAX;
  int rc = toe_abi_validate_sqe(&f->abi, sqe, &idx);
  if (rc < 0) {
    struct toe_abi_cqe c;
    toe_abi_cqe_error(&c, sqe, rc);
    fd_post(f, &c);
    return;
  }
  struct fsock *k = idx < FD_HANDLES ? &f->socks[idx] : NULL;
  struct toe_abi_hslot *sl = idx < FD_HANDLES ? &f->slots[idx] : NULL;
  struct toe_abi_cqe c;
  memset(&c, 0, sizeof(c));
  /* One socket's ops take effect in order: anything behind a waiting op waits too. */
  for (int i = 0; k && i < f->npending; i++) {
    if (f->pending[i].handle == sqe->handle && sqe->opcode != TOE_ABI_OP_CLOSE) {
      if (f->npending < FD_PENDING)
        f->pending[f->npending++] = *sqe;
      return;
    }
  }
  switch (sqe->opcode) {
  case TOE_ABI_OP_NOP:
    fd_complete(f, sqe, 0, NULL);
    break;
  case TOE_ABI_OP_OPEN: {
    uint32_t h;
    struct fsock *n = fd_sock_new(f, sqe->u.open.proto, sqe->u.open.family, &h);
    if (!n) {
      fd_complete(f, sqe, -TOE_EMFILE, NULL);
      break;
    }
    n->sock_data = sqe->u.open.sock_data;
    c.handle = h;
    fd_complete(f, sqe, 0, &c);
    break;
  }
  case TOE_ABI_OP_BIND: {
    uint16_t port = sqe->u.addr.addr.port ? sqe->u.addr.addr.port : f->next_port++;
    if (fd_find_port(f, k->proto, port, false)) {
      fd_complete(f, sqe, -TOE_EADDRINUSE, NULL);
      break;
    }
    k->lport = port;
    sl->state = TOE_ABI_HS_BOUND;
    fd_local(k, &c.u.addr.local);
    fd_complete(f, sqe, 0, &c);
    break;
  }
  case TOE_ABI_OP_LISTEN:
    k->listening = true;
    sl->state = TOE_ABI_HS_LISTENING;
    fd_complete(f, sqe, 0, NULL);
    break;
  case TOE_ABI_OP_CONNECT: {
    if (!k->lport)
      k->lport = f->next_port++;
    if (k->proto == TOE_ABI_PROTO_UDP) {
      k->opts[15] = sqe->u.addr.addr.port;
      sl->state = sqe->u.addr.addr.family ? TOE_ABI_HS_CONNECTED : TOE_ABI_HS_BOUND;
      fd_local(k, &c.u.addr.local);
      fd_complete(f, sqe, 0, &c);
      break;
    }
    struct fsock *l = fd_find_port(f, TOE_ABI_PROTO_TCP, sqe->u.addr.addr.port, true);
    uint32_t h;
    struct fsock *n = NULL;
    if (!l || l->nbacklog == 8 || !(n = fd_sock_new(f, TOE_ABI_PROTO_TCP, l->family, &h))) {
      sl->state = TOE_ABI_HS_BOUND;
      fd_complete(f, sqe, -TOE_ECONNREFUSED, NULL);
      break;
    }
    f->slots[TOE_ABI_HANDLE_INDEX(h)].state = TOE_ABI_HS_CONNECTED;
    n->lport = l->lport;
    n->peer = (int)idx;
    k->peer = (int)TOE_ABI_HANDLE_INDEX(h);
    l->backlog[l->nbacklog++] = (int)TOE_ABI_HANDLE_INDEX(h);
    sl->state = TOE_ABI_HS_CONNECTED;
    fd_local(k, &c.u.addr.local);
    fd_complete(f, sqe, 0, &c);
    break;
  }
  case TOE_ABI_OP_ACCEPT:
  case TOE_ABI_OP_SEND:
    if (!fd_try(f, sqe) && f->npending < FD_PENDING)
      f->pending[f->npending++] = *sqe;
    break;
  case TOE_ABI_OP_SHUTDOWN:
    if (sqe->u.shutdown.how != TOE_ABI_SHUT_RD) {
      sl->flags |= TOE_ABI_HF_SHUT_WR;
      if (k->peer >= 0)
        f->socks[k->peer].fin_pending = true;
    }
    fd_complete(f, sqe, 0, NULL);
    break;
  case TOE_ABI_OP_CLOSE:
    fd_close(f, sqe);
    break;
  case TOE_ABI_OP_SETSOCKOPT:
    if (sqe->u.sockopt.opt == TOE_ABI_SO_RXBUFS)
      sl->rx_max = (uint32_t)sqe->u.sockopt.value;
    else if (sqe->u.sockopt.opt == TOE_ABI_SO_RXMETA)
      k->rxmeta = sqe->u.sockopt.value != 0;
    else if (sqe->u.sockopt.opt < 15)
      k->opts[sqe->u.sockopt.opt] = sqe->u.sockopt.value;
    fd_complete(f, sqe, 0, NULL);
    break;
  case TOE_ABI_OP_GETSOCKOPT:
    if (sqe->u.sockopt.opt == TOE_ABI_SO_RXBUFS)
      c.u.sockopt.value = sl->rx_max;
    else if (sqe->u.sockopt.opt == TOE_ABI_SO_NREAD)
      c.u.sockopt.value = k->qlen;
    else if (sqe->u.sockopt.opt < 15)
      c.u.sockopt.value = k->opts[sqe->u.sockopt.opt];
    fd_complete(f, sqe, 0, &c);
    break;
  case TOE_ABI_OP_STATS: {
    static const char text[] = "fake.stat 42\n";
    uint32_t n = sqe->u.stats.len < sizeof(text) - 1 ? sqe->u.stats.len : sizeof(text) - 1;
    memcpy(f->region + sqe->u.stats.buf_off, text, n);
    fd_complete(f, sqe, (int)sizeof(text) - 1, NULL);
    break;
  }
  default:
    fd_complete(f, sqe, -TOE_EOPNOTSUPP, NULL);
  }
}

/* Lends filled buffers for every socket with queued data and credit left. */
static void fd_deliver(struct fdev *f)
{
  uint32_t bs = f->layout.buf_size;
  for (int i = 0; i < FD_HANDLES; i++) {
    struct fsock *k = &f->socks[i];
    if (!k->used || (k->listening && k->proto == TOE_ABI_PROTO_TCP))
      continue;
    struct toe_abi_hslot *sl = &f->slots[i];
    while (k->qlen && f->nfree && sl->rx_lent < sl->rx_max) {
      uint32_t len = k->qlen, skip = 0, from = 0;
      uint16_t port = 0;
      if (k->proto == TOE_ABI_PROTO_UDP) {
        memcpy(&len, k->q, 4);
        memcpy(&port, k->q + 4, 2);
        skip = 6;
        /* a datagram larger than a buffer goes in pieces, each lent on its own; with
         * SO_RXMETA the first starts with the 32-byte record (TOS 0x2e, TTL 17, to 10.0.0.1,
         * at 1234.000000567 s) */
        uint32_t mo = k->rxmeta ? TOE_ABI_RX_META_SIZE : 0;
        uint32_t pieces = len + mo > bs ? 1 + (len - (bs - mo) + bs - 1) / bs : 1;
        if (pieces > f->nfree || sl->rx_lent + pieces > sl->rx_max)
          break;
        for (uint32_t p = 0; p < pieces; p++) {
          uint32_t id = f->freeb[--f->nfree];
          uint32_t off = p == 0 ? mo : 0;
          uint32_t n = len - from < bs - off ? len - from : bs - off;
          uint8_t *buf = f->region + toe_abi_buf_offset(&f->abi, id);
          if (off) {
            struct toe_abi_rx_meta m;
            memset(&m, 0, sizeof(m));
            uint16_t ms = atomic_load(&f->meta_size);
            m.size = ms ? ms : TOE_ABI_RX_META_SIZE;
            m.family = TOE_ABI_AF_INET;
            m.tos = 0x2e;
            m.ttl = 17;
            m.flags = TOE_ABI_RX_META_F_DST | TOE_ABI_RX_META_F_TOS | TOE_ABI_RX_META_F_TTL |
                      TOE_ABI_RX_META_F_TIME;
            m.time_ns = 1234000000567ull;
            m.dst[0] = 10;
            m.dst[3] = 1;
            memcpy(buf, &m, sizeof(m));
          }
          memcpy(buf + off, k->q + skip + from, n);
          toe_abi_buf_lend(&f->abi, id, k->handle);
          struct toe_abi_cqe c;
          memset(&c, 0, sizeof(c));
          c.user_data = k->sock_data;
          c.res = (int)n;
          c.handle = k->handle;
          c.type = TOE_ABI_EV_DATA;
          c.flags = (uint16_t)((p + 1 < pieces ? TOE_ABI_CQE_F_MORE : 0) |
                               (off ? TOE_ABI_CQE_F_META : 0));
          c.u.data.buf_id = id;
          c.u.data.offset = off;
          c.u.data.len = n;
          if (p == 0) {
            struct fsock sender = {.family = k->family, .lport = (uint16_t)port};
            fd_local(&sender, &c.u.data.from); /* the sender is of the receiver's family */
          }
          fd_post(f, &c);
          from += n;
        }
        uint32_t rec = len + 6;
        memmove(k->q, k->q + rec, k->qlen - rec);
        k->qlen -= rec;
        continue;
      }
      uint32_t id = f->freeb[--f->nfree];
      uint32_t n = len < bs - 16 ? len : bs - 16; /* offset 16: data need not start at 0 */
      memcpy(f->region + toe_abi_buf_offset(&f->abi, id) + 16, k->q, n);
      toe_abi_buf_lend(&f->abi, id, k->handle);
      struct toe_abi_cqe c;
      memset(&c, 0, sizeof(c));
      c.user_data = k->sock_data;
      c.res = (int)n;
      c.handle = k->handle;
      c.type = TOE_ABI_EV_DATA;
      c.u.data.buf_id = id;
      c.u.data.offset = 16;
      c.u.data.len = n;
      fd_post(f, &c);
      memmove(k->q, k->q + n, k->qlen - n);
      k->qlen -= n;
    }
    if (!k->qlen && k->fin_pending && !k->fin_posted) {
      k->fin_posted = true;
      fd_event(f, k, TOE_ABI_EV_PEER_CLOSED, 0, 0);
    }
    if (k->reset_pending) {
      k->reset_pending = false;
      fd_event(f, k, TOE_ABI_EV_RESET, -TOE_ECONNRESET, 0);
    }
    if (k->soft_err) {
      fd_event(f, k, TOE_ABI_EV_ERROR, k->soft_err, 0);
      k->soft_err = 0;
    }
  }
}

static void fd_inject(struct fdev *f)
{
  struct toe_abi_cqe c;
  memset(&c, 0, sizeof(c));
  c.type = TOE_ABI_EV_DATA; /* a buffer the host never gave */
  c.u.data.buf_id = 0xfffffff0u;
  c.res = 10;
  c.u.data.len = 10;
  fd_post(f, &c);
  memset(&c, 0, sizeof(c));
  c.type = TOE_ABI_CQE_OP; /* a completion of nothing */
  c.opcode = TOE_ABI_OP_SEND;
  c.user_data = 0x1234567800000003ull;
  fd_post(f, &c);
  memset(&c, 0, sizeof(c));
  c.type = 99; /* an unknown type */
  fd_post(f, &c);
}

static int fd_handshake(struct fdev *f)
{
  struct toe_abi_hello h;
  ssize_t n = recv(f->cfd, &h, sizeof(h), 0);
  if (n <= 0)
    return -1;
  if (f->mode == FD_HANGUP)
    return -1;
  struct toe_abi_limits lim;
  toe_abi_limits_default(&lim); /* every capability, the POSIX doorbells included */
  lim.handles_max = FD_HANDLES;
  if (f->mode == FD_OLD)
    lim.caps = TOE_ABI_CAPS_1_2;
  struct toe_abi_hello_reply rep;
  toe_abi_negotiate(&h, (size_t)n, &lim, 7, &rep);
  if (f->mode == FD_REFUSE) {
    rep.status = -TOE_EMFILE;
    rep.nfds = 0;
  }
  if (rep.status < 0) {
    send(f->cfd, &rep, sizeof(rep), MSG_NOSIGNAL);
    return -1;
  }
  f->layout = rep.layout;
  /* The POSIX kind through the transport's own set-up (what a device on another POSIX system
   * would use); the eventfd kind by hand, to make the broken regions below. */
  struct toe_region_os ro;
  toe_region_os_clear(&ro);
  int mfd = -1;
  f->posix = (rep.caps & TOE_ABI_CAP_POSIX_BELLS) != 0;
  if (f->posix) {
    if (toe_region_os_create_shm(&ro, &f->layout, rep.caps, 7) < 0)
      return -1;
    f->region = ro.region;
    f->kick = ro.kick;
    f->notify = ro.notify;
    mfd = ro.host[TOE_ABI_FD_REGION];
    toe_abi_region_init(f->region, &f->layout, rep.caps, 7, UINT32_MAX - 5); /* wrap-around */
  } else {
    mfd = memfd_create("fake-toe", MFD_ALLOW_SEALING | MFD_CLOEXEC);
    if (mfd < 0 || ftruncate(mfd, (off_t)f->layout.region_size) < 0)
      return -1;
    f->region = mmap(NULL, f->layout.region_size, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    toe_abi_region_init(f->region, &f->layout, rep.caps, 7, UINT32_MAX - 5);
  }
  if (f->mode == FD_SHORT && ftruncate(mfd, (off_t)f->layout.region_size / 2) < 0)
    return -1;
  if (!f->posix && f->mode != FD_NOSEAL)
    fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
  if (!f->posix) {
    f->kick = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    f->notify = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  }
  if (f->mode == FD_BADMAGIC)
    rep.magic = 0;
  int fds[TOE_ABI_FD_MAX] = {mfd, f->kick, f->notify, -1};
  if (f->posix)
    memcpy(fds, ro.host, sizeof(fds));
  size_t nfds = TOE_ABI_NFDS(rep.caps);
  union {
    struct cmsghdr h;
    char buf[CMSG_SPACE(sizeof(fds))];
  } cm;
  memset(&cm, 0, sizeof(cm));
  struct iovec iov = {.iov_base = &rep, .iov_len = sizeof(rep)};
  struct msghdr mh = {.msg_iov = &iov,
                      .msg_iovlen = 1,
                      .msg_control = cm.buf,
                      .msg_controllen = CMSG_SPACE(sizeof(int) * nfds)};
  struct cmsghdr *cmsg = CMSG_FIRSTHDR(&mh);
  cmsg->cmsg_level = SOL_SOCKET;
  cmsg->cmsg_type = SCM_RIGHTS;
  cmsg->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
  memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * nfds);
  sendmsg(f->cfd, &mh, MSG_NOSIGNAL);
  if (f->posix)
    toe_region_os_handed(&ro); /* the host's copies; the region, kick and notify stay ours */
  else
    close(mfd);
  if (rep.magic != TOE_ABI_REPLY_MAGIC || f->mode == FD_SHORT)
    return -1;
  f->bufs = calloc(f->layout.buf_count, sizeof(uint32_t));
  f->freeb = calloc(f->layout.buf_count, sizeof(uint32_t));
  toe_abi_client_init(&f->abi, &f->layout, rep.caps, f->slots, f->bufs);
  const struct toe_abi_layout *l = &f->layout;
  toe_ring_init_cons(&f->sq, (void *)(f->region + l->sq_ctl_off), f->region + l->sq_off,
                     l->sq_entries, TOE_ABI_SQE_SIZE);
  toe_ring_init_prod(&f->cq, (void *)(f->region + l->cq_ctl_off), f->region + l->cq_off,
                     l->cq_entries, TOE_ABI_CQE_SIZE);
  toe_ring_init_cons(&f->fq, (void *)(f->region + l->fq_ctl_off), f->region + l->fq_off,
                     l->fq_entries, TOE_ABI_FQE_SIZE);
  f->next_port = 40000;
  return 0;
}

static void fd_session_end(struct fdev *f)
{
  for (int i = 0; i < FD_HANDLES; i++)
    if (f->socks[i].used)
      free(f->socks[i].q), f->socks[i].used = false;
  if (f->region)
    munmap(f->region, f->layout.region_size);
  f->region = NULL;
  free(f->bufs);
  free(f->freeb);
  f->bufs = f->freeb = NULL;
  if (f->kick >= 0)
    close(f->kick), close(f->notify);
  f->kick = f->notify = -1;
  close(f->cfd);
  f->cfd = -1;
  f->npending = 0;
  atomic_store(&f->sessions, false);
}

static void fd_serve(struct fdev *f)
{
  atomic_store(&f->sessions, true);
  while (!atomic_load(&f->stop)) {
    if (atomic_load(&f->kill)) {
      atomic_store(&f->kill, false);
      break; /* the device "dies": the control socket hangs up */
    }
    uint32_t ids[64];
    int n = toe_ring_consume(&f->fq, ids, 64);
    for (int i = 0; i < n; i++)
      if (toe_abi_fill_take(&f->abi, ids[i]) == 0)
        f->freeb[f->nfree++] = ids[i];
    bool busy = n > 0;
    if (!atomic_load(&f->paused)) {
      struct toe_abi_sqe sqes[16];
      int m = toe_ring_consume(&f->sq, sqes, 16);
      for (int i = 0; i < m; i++)
        fd_sqe(f, &sqes[i]);
      busy |= m > 0;
    }
    for (int i = 0; i < f->npending;) {
      struct toe_abi_sqe sqe = f->pending[i];
      /* only the first waiting op of a handle may go */
      bool first = true;
      for (int j = 0; j < i; j++)
        first &= f->pending[j].handle != sqe.handle;
      if (first && (sqe.opcode == TOE_ABI_OP_ACCEPT || sqe.opcode == TOE_ABI_OP_SEND
                        ? fd_try(f, &sqe)
                        : (fd_sqe(f, &sqe), true))) {
        memmove(&f->pending[i], &f->pending[i + 1], sizeof(sqe) * (size_t)(--f->npending - i));
        busy = true;
      } else {
        i++;
      }
    }
    fd_deliver(f);
    for (int k = atomic_exchange(&f->inject, 0); k > 0; k--)
      fd_inject(f);
    fd_flush(f);
    if (!busy) {
      struct pollfd p[2] = {{.fd = f->kick, .events = POLLIN}, {.fd = f->cfd, .events = POLLIN}};
      if (poll(p, 2, 1) > 0) {
        if (p[1].revents)
          break; /* the client hung up */
        uint64_t v;
        ssize_t r = read(f->kick, &v, sizeof(v));
        (void)r;
      }
    }
  }
  fd_session_end(f);
}

static void *fd_main(void *arg)
{
  struct fdev *f = arg;
  while (!atomic_load(&f->stop)) {
    struct pollfd p = {.fd = f->lfd, .events = POLLIN};
    if (poll(&p, 1, 20) <= 0)
      continue;
    f->cfd = accept4(f->lfd, NULL, NULL, SOCK_CLOEXEC);
    if (f->cfd < 0)
      continue;
    if (fd_handshake(f) < 0) {
      fd_session_end(f);
      continue;
    }
    fd_serve(f);
  }
  return NULL;
}

static struct fdev *fd_start(enum fd_mode mode)
{
  static int seq;
  struct fdev *f = calloc(1, sizeof(*f));
  f->mode = mode;
  f->cfd = f->kick = f->notify = -1;
  snprintf(f->path, sizeof(f->path), "/tmp/libtoe-test-%d-%d.sock", (int)getpid(), seq++);
  unlink(f->path);
  f->lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  struct sockaddr_un sun = {.sun_family = AF_UNIX};
  strcpy(sun.sun_path, f->path);
  if (bind(f->lfd, (struct sockaddr *)&sun, sizeof(sun)) < 0 || listen(f->lfd, 8) < 0) {
    perror("fake device");
    exit(2);
  }
  pthread_create(&f->thr, NULL, fd_main, f);
  return f;
}

static void fd_stop(struct fdev *f)
{
  atomic_store(&f->stop, true);
  pthread_join(f->thr, NULL);
  close(f->lfd);
  unlink(f->path);
  free(f);
}

/* ------------------------------------------------------------------------------------------ */
/* Helpers                                                                                    */

static struct toe_attach_opts small_opts(void)
{
  struct toe_attach_opts o;
  toe_attach_opts_init(&o);
  o.sq_entries = 64;
  o.cq_entries = 256;
  o.buf_count = 64;
  o.buf_size = 4096;
  o.max_handles = 32;
  o.op_timeout_ms = 2000;
  o.spin_us = 20;
  return o;
}

static struct sockaddr_in sin_of(const char *ip, uint16_t port)
{
  struct sockaddr_in a;
  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, ip, &a.sin_addr);
  return a;
}

#define SA(a) ((struct sockaddr *)&(a))

static uint64_t ms_now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* A connected pair over the fake device: *c the client, *s the accepted server side. */
static int tcp_pair(toe_dev *d, uint16_t port, int *c, int *s, int *l)
{
  *l = toe_socket(d, TOE_SOCK_STREAM);
  struct sockaddr_in a = sin_of("0.0.0.0", port);
  if (*l < 0 || toe_bind(d, *l, SA(a), sizeof(a)) < 0 || toe_listen(d, *l, 4) < 0)
    return -1;
  *c = toe_socket(d, TOE_SOCK_STREAM);
  struct sockaddr_in p = sin_of("10.0.0.1", port);
  if (*c < 0 || toe_connect_blocking(d, *c, SA(p), sizeof(p), 2000) < 0)
    return -2;
  *s = toe_accept_blocking(d, *l, NULL, NULL, 2000);
  return *s < 0 ? -3 : 0;
}

/* n bytes of the tree's one PRNG (src/common/prng.h) from `seed`. */
static void fill_pattern(uint8_t *p, size_t n, uint32_t seed)
{
  uint64_t s;
  toe_prng_seed(&s, seed);
  for (size_t i = 0; i < n; i++)
    p[i] = (uint8_t)(toe_prng_next(&s) >> 56);
}

/* ------------------------------------------------------------------------------------------ */
/* Attach                                                                                     */

TEST(attach_errors)
{
  toe_dev *d = (toe_dev *)1;
  CHECK_EQ(toe_attach("/nonexistent/toe.sock", NULL, &d), -ENOENT);
  CHECK(d == NULL);
  CHECK_EQ(toe_attach("/tmp", NULL, &d), -ECONNREFUSED); /* not a socket */
  CHECK_EQ(toe_attach("", NULL, &d), -TOE_EINVAL);
  CHECK_EQ(toe_attach("/tmp/x", NULL, NULL), -TOE_EINVAL);
  char longp[200];
  memset(longp, 'a', sizeof(longp) - 1);
  longp[sizeof(longp) - 1] = 0;
  CHECK_EQ(toe_attach(longp, NULL, &d), -TOE_EINVAL);

  /* A socket file with nobody behind it: ECONNREFUSED, at once. */
  char path[108];
  snprintf(path, sizeof(path), "/tmp/libtoe-dead-%d.sock", (int)getpid());
  int s = socket(AF_UNIX, SOCK_SEQPACKET, 0);
  struct sockaddr_un sun = {.sun_family = AF_UNIX};
  strcpy(sun.sun_path, path);
  unlink(path);
  REQUIRE(bind(s, (struct sockaddr *)&sun, sizeof(sun)) == 0);
  close(s);
  CHECK_EQ(toe_attach(path, NULL, &d), -ECONNREFUSED);
  unlink(path);

  struct toe_attach_opts o = small_opts();
  struct fdev *f = fd_start(FD_REFUSE);
  CHECK_EQ(toe_attach(f->path, &o, &d), -TOE_EMFILE);
  fd_stop(f);
  f = fd_start(FD_HANGUP);
  CHECK_EQ(toe_attach(f->path, &o, &d), -TOE_ECONNREFUSED);
  fd_stop(f);
  f = fd_start(FD_BADMAGIC);
  CHECK_EQ(toe_attach(f->path, &o, &d), -TOE_EPROTO);
  fd_stop(f);
#ifndef TOE_TEST_PORT_POSIX
  /* Seals exist only on Linux; the POSIX port trusts the device not to shrink the region. */
  f = fd_start(FD_NOSEAL);
  CHECK_EQ(toe_attach(f->path, &o, &d), -TOE_EPROTO);
  fd_stop(f);
#endif
  f = fd_start(FD_SHORT);
  CHECK_EQ(toe_attach(f->path, &o, &d), -TOE_EPROTO);
  fd_stop(f);
  CHECK(d == NULL);
  /* A 1.2 device: the Linux port attaches as ever (eventfds); the POSIX port cannot (it has no
   * doorbell of its own to ring) and says so. */
  f = fd_start(FD_OLD);
#ifdef TOE_TEST_PORT_POSIX
  CHECK_EQ(toe_attach(f->path, &o, &d), -TOE_EPROTONOSUPPORT);
  CHECK(d == NULL);
#else
  CHECK_EQ(toe_attach(f->path, &o, &d), 0);
  struct toe_dev_info info;
  CHECK_EQ(toe_dev_info(d, &info), 0);
  CHECK(!(info.caps & TOE_ABI_CAP_POSIX_BELLS));
  toe_detach(d, 0);
  d = NULL;
#endif
  fd_stop(f);
}

TEST(ctl_default)
{
  char buf[128];
  setenv("TOE_CTL", "/some/where.sock", 1);
  CHECK_EQ(toe_ctl_default(buf, sizeof(buf)), 0);
  CHECK(strcmp(buf, "/some/where.sock") == 0);
  CHECK_EQ(toe_ctl_default(buf, 4), -TOE_E2BIG);
  CHECK_EQ(toe_ctl_default(NULL, 4), -TOE_EINVAL);
  unsetenv("TOE_CTL");
}

/* ------------------------------------------------------------------------------------------ */
/* libtoe's own system calls (src/host/port_sys.h)                                            */

/* Interposers, as an LD_PRELOAD library has them: this executable's definitions come first in
 * symbol lookup, so every call libtoe makes through the C library lands here. They count the
 * calls of the thread that set tl_counting, and pass everything on. */
static __thread bool tl_counting;
static atomic_int g_interposed;

#define PASS_ON(ret, name, params, args)                                                           \
  ret name params;                                                                                 \
  ret name params                                                                                  \
  {                                                                                                \
    static ret(*real) params;                                                                      \
    if (!real)                                                                                     \
      *(void **)&real = dlsym(RTLD_NEXT, #name);                                                   \
    if (tl_counting)                                                                               \
      atomic_fetch_add(&g_interposed, 1);                                                          \
    return real args;                                                                              \
  }

PASS_ON(int, socket, (int a, int b, int c), (a, b, c))
PASS_ON(int, connect, (int a, const struct sockaddr *b, socklen_t c), (a, b, c))
PASS_ON(int, poll, (struct pollfd * a, nfds_t b, int c), (a, b, c))
PASS_ON(ssize_t, send, (int a, const void *b, size_t c, int d), (a, b, c, d))
PASS_ON(ssize_t, recvmsg, (int a, struct msghdr *b, int c), (a, b, c))
PASS_ON(int, shutdown, (int a, int b), (a, b))
PASS_ON(int, epoll_ctl, (int a, int b, int c, struct epoll_event *d), (a, b, c, d))
PASS_ON(int, epoll_create1, (int a), (a))

/*
 * Attach, a TCP connection through the fake device, data both ways, a wait that sleeps, device
 * loss, detach: with the Linux port none of libtoe's calls reaches the interposers (it makes raw
 * system calls, so a preload library needs no special case for it). With the POSIX port they do
 * (plain POSIX calls): that is what shows the interposers work.
 */
TEST(own_syscalls)
{
  struct fdev *f = fd_start(FD_NORMAL);
  struct toe_attach_opts o = small_opts();
  toe_dev *d = NULL;
  atomic_store(&g_interposed, 0);
  tl_counting = true;
  REQUIRE(toe_attach(f->path, &o, &d) == 0);
  int c, s, l;
  REQUIRE(tcp_pair(d, 7100, &c, &s, &l) == 0);
  char b[8];
  CHECK_EQ(toe_send(d, c, "own", 3, 0), 3);
  struct toe_event ev[4];
  CHECK_EQ(toe_poll_ctl(d, s, TOE_POLLIN, NULL), 0);
  CHECK(toe_poll(d, ev, 4, 2000) >= 1);
  CHECK_EQ(toe_recv(d, s, b, sizeof(b), 0), 3);
  CHECK_EQ(toe_poll(d, ev, 4, 30), 0); /* sleeps on the doorbell */
  atomic_store(&f->kill, true);
  int n = 0;
  for (int i = 0; i < 100 && toe_dev_status(d) == 0; i++)
    n += toe_poll(d, ev, 4, 20) > 0;
  CHECK(toe_dev_status(d) < 0);
  toe_detach(d, 0);
  tl_counting = false;
  int seen = atomic_load(&g_interposed);
  printf("# port %s: %d of libtoe's calls reached the interposers (%d events)\n",
#ifdef TOE_TEST_PORT_POSIX
         "posix", seen, n);
  CHECK(seen > 0);
#else
         "linux", seen, n);
  CHECK_EQ(seen, 0);
#endif
  fd_stop(f);
}

TEST(attach_detach)
{
  struct fdev *f = fd_start(FD_NORMAL);
  struct toe_attach_opts o = small_opts();
  o.comm = "unit";
  toe_dev *d = NULL;
  REQUIRE(toe_attach(f->path, &o, &d) == 0);
  struct toe_dev_info info;
  CHECK_EQ(toe_dev_info(d, &info), 0);
  CHECK_EQ(info.client_id, 7);
  CHECK_EQ(info.buf_size, 4096);
  CHECK_EQ(info.buf_count, 64);
  CHECK_EQ(info.rx_bufs, 32);
  CHECK_EQ(info.sq_entries, 64);
  CHECK_EQ(toe_dev_status(d), 0);
  CHECK(toe_event_fd(d) >= 0);
  char st[64];
  CHECK_EQ(toe_stats(d, -1, TOE_STATS_ENGINE, st, sizeof(st)), 13);
  CHECK(memcmp(st, "fake.stat 42\n", 13) == 0);
  CHECK_EQ(toe_stats(d, -1, 77, st, sizeof(st)), -TOE_EINVAL);
  CHECK_EQ(toe_detach(d, 1000), 0);
  CHECK_EQ(toe_detach(NULL, 0), 0);
  fd_stop(f);
}

/* ------------------------------------------------------------------------------------------ */
/* Arguments and states                                                                       */

TEST(argument_errors)
{
  struct fdev *f = fd_start(FD_NORMAL);
  struct toe_attach_opts o = small_opts();
  toe_dev *d = NULL;
  REQUIRE(toe_attach(f->path, &o, &d) == 0);
  char b[16];
  CHECK_EQ(toe_socket(NULL, TOE_SOCK_STREAM), -TOE_EBADF);
  CHECK_EQ(toe_socket(d, 3), -TOE_EINVAL);
  CHECK_EQ(toe_send(d, 5, b, 1, 0), -TOE_EBADF);
  CHECK_EQ(toe_recv(d, -1, b, 1, 0), -TOE_EBADF);
  CHECK_EQ(toe_close(d, 1000), -TOE_EBADF);

  int t = toe_socket(d, TOE_SOCK_STREAM);
  int u = toe_socket(d, TOE_SOCK_DGRAM);
  REQUIRE(t >= 0 && u >= 0);
  CHECK(t != u);
  CHECK_EQ(toe_send(d, t, b, 1, 0), -TOE_ENOTCONN);
  CHECK_EQ(toe_recv(d, t, b, 1, 0), -TOE_ENOTCONN);
  CHECK_EQ(toe_listen(d, t, 1), -TOE_EINVAL); /* not bound */
  CHECK_EQ(toe_listen(d, u, 1), -TOE_EOPNOTSUPP);
  CHECK_EQ(toe_accept(d, t, NULL, NULL), -TOE_EINVAL);
  CHECK_EQ(toe_shutdown(d, t, TOE_SHUT_WR), -TOE_ENOTCONN);
  CHECK_EQ(toe_shutdown(d, u, TOE_SHUT_WR), -TOE_EOPNOTSUPP);
  CHECK_EQ(toe_shutdown(d, t, 7), -TOE_EINVAL);
  CHECK_EQ(toe_send(d, u, b, 1, 0), -TOE_EDESTADDRREQ);
  CHECK_EQ(toe_recv(d, u, b, 1, 0), -TOE_EAGAIN);
  struct sockaddr_in6 a6;
  memset(&a6, 0, sizeof(a6));
  a6.sin6_family = AF_INET6;
  CHECK_EQ(toe_bind(d, t, SA(a6), sizeof(a6)), -TOE_EAFNOSUPPORT);
  struct sockaddr_in a = sin_of("0.0.0.0", 5000);
  CHECK_EQ(toe_bind(d, t, SA(a), 4), -TOE_EINVAL);
  CHECK_EQ(toe_bind(d, t, NULL, sizeof(a)), -TOE_EINVAL);
  CHECK_EQ(toe_bind(d, t, SA(a), sizeof(a)), 0);
  CHECK_EQ(toe_bind(d, t, SA(a), sizeof(a)), -TOE_EINVAL); /* already bound */
  struct sockaddr_in got;
  socklen_t gl = sizeof(got);
  CHECK_EQ(toe_getsockname(d, t, SA(got), &gl), 0);
  CHECK_EQ(ntohs(got.sin_port), 5000);
  CHECK_EQ(gl, sizeof(got));
  gl = sizeof(got);
  CHECK_EQ(toe_getpeername(d, t, SA(got), &gl), -TOE_ENOTCONN);
  int v = toe_socket(d, TOE_SOCK_DGRAM);
  CHECK_EQ(toe_bind(d, v, SA(a), sizeof(a)), 0); /* UDP 5000 is another port than TCP 5000 */
  int w = toe_socket(d, TOE_SOCK_DGRAM);
  CHECK_EQ(toe_bind(d, w, SA(a), sizeof(a)), -TOE_EADDRINUSE);

  int64_t val = -1;
  CHECK_EQ(toe_setsockopt(d, t, TOE_OPT_NODELAY, 1), 0);
  CHECK_EQ(toe_getsockopt(d, t, TOE_OPT_NODELAY, &val), 0);
  CHECK_EQ(val, 1);
  CHECK_EQ(toe_setsockopt(d, u, TOE_OPT_NODELAY, 1), -TOE_ENOPROTOOPT);
  CHECK_EQ(toe_setsockopt(d, t, 0x7777, 1), -TOE_ENOPROTOOPT);
  CHECK_EQ(toe_setsockopt(d, t, TOE_OPT_ERROR, 1), -TOE_ENOPROTOOPT);
  CHECK_EQ(toe_getsockopt(d, t, TOE_OPT_ERROR, &val), 0);
  CHECK_EQ(val, 0);
  CHECK_EQ(toe_getsockopt(d, t, TOE_OPT_ERROR, NULL), -TOE_EINVAL);
  CHECK_EQ(toe_setsockopt(d, t, TOE_OPT_TXBUFS, 0), -TOE_EINVAL);
  CHECK_EQ(toe_setsockopt(d, t, TOE_OPT_TXBUFS, 4), 0);
  CHECK_EQ(toe_getsockopt(d, t, TOE_OPT_TXBUFS, &val), 0);
  CHECK_EQ(val, 4);
  /* A value the device refuses comes back as its error. */
  CHECK_EQ(toe_setsockopt(d, t, TOE_OPT_RXBUFS, -1), -TOE_EINVAL);

  struct toe_zc zc;
  CHECK_EQ(toe_recv_zc_release(d, &zc), -TOE_EINVAL);
  struct toe_txbuf tb;
  memset(&tb, 0, sizeof(tb));
  CHECK_EQ(toe_send_buf_commit(d, &tb, 1, 0, NULL, 0), -TOE_EINVAL);
  CHECK_EQ(toe_send_buf_cancel(d, &tb), -TOE_EINVAL);
  CHECK_EQ(toe_send_buf_get(d, u, 70000, &tb), -TOE_EMSGSIZE);
  CHECK_EQ(toe_sendto(d, u, b, 70000, 0, SA(a), sizeof(a)), -TOE_EMSGSIZE);
  CHECK_EQ(toe_poll(d, NULL, 1, 0), -TOE_EINVAL);
  CHECK_EQ(toe_poll_ctl(d, 999, TOE_POLLIN, NULL), -TOE_EBADF);

  CHECK_EQ(toe_close(d, t), 0);
  CHECK_EQ(toe_close(d, t), -TOE_EBADF);
  CHECK_EQ(toe_send(d, t, b, 1, 0), -TOE_EBADF);
  CHECK_EQ(toe_detach(d, 1000), 0);
  fd_stop(f);
}

/* ------------------------------------------------------------------------------------------ */
/* TCP                                                                                        */

TEST(tcp_stream)
{
  struct fdev *f = fd_start(FD_NORMAL);
  struct toe_attach_opts o = small_opts();
  toe_dev *d = NULL;
  REQUIRE(toe_attach(f->path, &o, &d) == 0);
  int c, s, l;
  REQUIRE(tcp_pair(d, 7000, &c, &s, &l) == 0);
  CHECK_EQ(toe_sock_events(d, c) & TOE_POLLOUT, TOE_POLLOUT);
  struct sockaddr_in pn;
  socklen_t pl = sizeof(pn);
  CHECK_EQ(toe_getpeername(d, c, SA(pn), &pl), 0);
  CHECK_EQ(ntohs(pn.sin_port), 7000);
  struct sockaddr_in sa = sin_of("10.0.0.1", 7000);
  CHECK_EQ(toe_connect(d, c, SA(sa), sizeof(sa)), -TOE_EISCONN);

  /* 1 MiB each way, in odd-sized pieces, through buffers of 4 KiB: every byte in order. */
  size_t total = 1u << 20;
  uint8_t *out = malloc(total), *in = malloc(total);
  fill_pattern(out, total, 1);
  size_t sent = 0, got = 0;
  uint64_t t0 = ms_now();
  while (got < total && ms_now() - t0 < 20000) {
    if (sent < total) {
      size_t k = total - sent < 7777 ? total - sent : 7777;
      ssize_t n = toe_send(d, c, out + sent, k, 0);
      if (n > 0)
        sent += (size_t)n;
      else
        CHECK_EQ(n, -TOE_EAGAIN);
    }
    ssize_t r = toe_recv(d, s, in + got, total - got < 5000 ? total - got : 5000, 0);
    if (r > 0)
      got += (size_t)r;
    else if (r != -TOE_EAGAIN)
      CHECK_EQ(r, -TOE_EAGAIN);
    if (r == -TOE_EAGAIN)
      toe_wait(d, s, TOE_POLLIN, 100);
  }
  CHECK_EQ(got, total);
  CHECK(memcmp(in, out, total) == 0);

  /* Peek leaves data in place. */
  CHECK_EQ(toe_send_all(d, s, "hello", 5, 1000), 5);
  char pk[8] = {0};
  CHECK_EQ(toe_recv_blocking(d, c, pk, 0, 1000), 0);
  toe_wait(d, c, TOE_POLLIN, 1000);
  CHECK_EQ(toe_recv(d, c, pk, 3, TOE_MSG_PEEK), 3);
  CHECK_EQ(toe_recv(d, c, pk, 8, 0), 5);
  CHECK(memcmp(pk, "hello", 5) == 0);
  int64_t nread = -1;
  CHECK_EQ(toe_getsockopt(d, c, TOE_OPT_NREAD, &nread), 0);
  CHECK_EQ(nread, 0);

  /* Zero-copy both ways. */
  struct toe_txbuf tb;
  CHECK_EQ(toe_send_buf_get(d, c, 10000, &tb), 0);
  CHECK(tb.cap >= 1 && tb.cap <= 10000);
  memset(tb.data, 'z', tb.cap);
  CHECK_EQ(toe_send_buf_commit(d, &tb, tb.cap, 0, NULL, 0), (ssize_t)tb.cap);
  CHECK_EQ(toe_send_buf_commit(d, &tb, 1, 0, NULL, 0), -TOE_EINVAL); /* used up */
  size_t zgot = 0;
  struct toe_zc zc;
  t0 = ms_now();
  size_t want = 10000 < 8 * 4096 ? 10000 : 8 * 4096;
  while (zgot < want && ms_now() - t0 < 5000) {
    ssize_t r = toe_recv_zc(d, s, &zc);
    if (r == -TOE_EAGAIN) {
      toe_wait(d, s, TOE_POLLIN, 100);
      continue;
    }
    REQUIRE(r > 0);
    for (ssize_t i = 0; i < r; i++)
      if (((const char *)zc.data)[i] != 'z')
        CHECK(0);
    zgot += (size_t)r;
    CHECK_EQ(toe_recv_zc_release(d, &zc), 0);
    CHECK_EQ(toe_recv_zc_release(d, &zc), -TOE_EINVAL); /* twice */
  }
  CHECK_EQ(zgot, want);
  CHECK_EQ(toe_send_buf_get(d, c, 100, &tb), 0);
  CHECK_EQ(toe_send_buf_cancel(d, &tb), 0);

  /* EOF: the client shuts down for writing; the server reads 0 and POLLRDHUP. */
  CHECK_EQ(toe_shutdown(d, c, TOE_SHUT_WR), 0);
  CHECK_EQ(toe_send(d, c, "x", 1, 0), -TOE_EPIPE);
  CHECK(toe_wait(d, s, TOE_POLLIN, 2000) & TOE_POLLIN);
  CHECK_EQ(toe_recv(d, s, in, 10, 0), 0);
  CHECK_EQ(toe_sock_events(d, s) & TOE_POLLRDHUP, TOE_POLLRDHUP);
  /* The server still sends; then closes; the client sees data, then EOF, then HUP. */
  CHECK_EQ(toe_send_all(d, s, "bye", 3, 1000), 3);
  CHECK_EQ(toe_flush(d, s, 1000), 0);
  CHECK_EQ(toe_close(d, s), 0);
  CHECK_EQ(toe_recv_blocking(d, c, pk, 8, 2000), 3);
  CHECK_EQ(toe_recv_blocking(d, c, pk, 8, 2000), 0);
  CHECK_EQ(toe_sock_events(d, c) & TOE_POLLHUP, TOE_POLLHUP);
  CHECK_EQ(toe_close(d, c), 0);
  CHECK_EQ(toe_close(d, l), 0);

  /* Refused: nobody listens. */
  int x = toe_socket(d, TOE_SOCK_STREAM);
  struct sockaddr_in nob = sin_of("10.0.0.1", 7999);
  CHECK_EQ(toe_connect(d, x, SA(nob), sizeof(nob)), -TOE_EINPROGRESS);
  CHECK_EQ(toe_connect(d, x, SA(nob), sizeof(nob)) == -TOE_EALREADY ||
               toe_sock_events(d, x) & TOE_POLLERR,
           1);
  CHECK(toe_wait(d, x, TOE_POLLOUT, 2000) & TOE_POLLERR);
  int64_t err = 0;
  CHECK_EQ(toe_getsockopt(d, x, TOE_OPT_ERROR, &err), 0);
  CHECK_EQ(err, -TOE_ECONNREFUSED);
  int y = toe_socket(d, TOE_SOCK_STREAM);
  CHECK_EQ(toe_connect_blocking(d, y, SA(nob), sizeof(nob), 2000), -TOE_ECONNREFUSED);
  free(out);
  free(in);
  CHECK_EQ(toe_detach(d, 1000), 0);
  fd_stop(f);
}

/* toe_sendv: the pieces of a vector (empty ones among them, one crossing buffers) are gathered
 * into the region in order and go out in one SEND where a toe_send per piece needs one each;
 * UDP: the pieces make one datagram; bad vectors are refused before anything is sent. */
TEST(sendv)
{
  struct fdev *f = fd_start(FD_NORMAL);
  struct toe_attach_opts o = small_opts();
  toe_dev *d = NULL;
  REQUIRE(toe_attach(f->path, &o, &d) == 0);
  int c, s, l;
  REQUIRE(tcp_pair(d, 7100, &c, &s, &l) == 0);
  static uint8_t out[20000], in[40000];
  fill_pattern(out, sizeof(out), 3);
  const size_t len[7] = {1, 0, 4095, 3000, 7000, 0, 20000 - 14096};
  struct iovec iov[7];
  size_t at = 0;
  for (int i = 0; i < 7; i++) {
    iov[i].iov_base = len[i] ? out + at : NULL;
    iov[i].iov_len = len[i];
    at += len[i];
  }
  REQUIRE(at == sizeof(out));
  struct toe_dev_info i0, i1;
  CHECK_EQ(toe_dev_info(d, &i0), 0);
  CHECK_EQ(toe_sendv(d, c, iov, 7, 0, NULL, 0), (ssize_t)sizeof(out));
  CHECK_EQ(toe_dev_info(d, &i1), 0);
  CHECK_EQ(i1.sqes - i0.sqes, 1); /* 20000 bytes: one run of 5 buffers of 4 KiB, one SEND */
  size_t got = 0;
  uint64_t t0 = ms_now();
  while (got < sizeof(out) && ms_now() - t0 < 5000) {
    ssize_t r = toe_recv_blocking(d, s, in + got, sizeof(in) - got, 1000);
    if (r <= 0)
      break;
    got += (size_t)r;
  }
  CHECK_EQ(got, sizeof(out));
  CHECK(memcmp(in, out, sizeof(out)) == 0);
  /* The same vector a piece at a time: a SEND for each piece at least. */
  CHECK_EQ(toe_flush(d, c, 2000), 0);
  CHECK_EQ(toe_dev_info(d, &i1), 0);
  for (int i = 0; i < 7; i++)
    if (len[i])
      CHECK_EQ(toe_send_all(d, c, iov[i].iov_base, len[i], 2000), (ssize_t)len[i]);
  CHECK_EQ(toe_dev_info(d, &i0), 0);
  CHECK(i0.sqes - i1.sqes >= 5);
  t0 = ms_now();
  while (got < 2 * sizeof(out) && ms_now() - t0 < 5000) {
    ssize_t r = toe_recv_blocking(d, s, in + got, sizeof(in) - got, 1000);
    if (r <= 0)
      break;
    got += (size_t)r;
  }
  CHECK_EQ(got, 2 * sizeof(out));
  CHECK(memcmp(in + sizeof(out), out, sizeof(out)) == 0);

  /* Refused: no vector, a negative or too large count, a NULL base with a length. */
  CHECK_EQ(toe_sendv(d, c, NULL, 1, 0, NULL, 0), -TOE_EINVAL);
  CHECK_EQ(toe_sendv(d, c, iov, -1, 0, NULL, 0), -TOE_EINVAL);
  CHECK_EQ(toe_sendv(d, c, iov, TOE_IOV_MAX + 1, 0, NULL, 0), -TOE_EINVAL);
  struct iovec bad[2] = {{out, 10}, {NULL, 5}};
  CHECK_EQ(toe_sendv(d, c, bad, 2, 0, NULL, 0), -TOE_EINVAL);
  CHECK_EQ(toe_sendv(d, c, iov, 0, 0, NULL, 0), 0);
  CHECK_EQ(toe_sendv(NULL, c, iov, 1, 0, NULL, 0), -TOE_EBADF);
  CHECK_EQ(toe_recv(d, s, in, sizeof(in), 0), -TOE_EAGAIN); /* nothing was sent */

  /* UDP: three pieces, one datagram of their concatenation. */
  int a = toe_socket(d, TOE_SOCK_DGRAM), b = toe_socket(d, TOE_SOCK_DGRAM);
  struct sockaddr_in aa = sin_of("0.0.0.0", 9101), ba = sin_of("10.0.0.1", 9102);
  CHECK_EQ(toe_bind(d, a, SA(aa), sizeof(aa)), 0);
  CHECK_EQ(toe_bind(d, b, SA(ba), sizeof(ba)), 0);
  struct iovec u[3] = {{out, 100}, {out + 100, 5000}, {out + 5100, 7}};
  CHECK_EQ(toe_sendv(d, a, u, 3, 0, SA(ba), sizeof(ba)), 5107);
  CHECK_EQ(toe_recvfrom_blocking(d, b, in, sizeof(in), NULL, NULL, 2000), 5107);
  CHECK(memcmp(in, out, 5107) == 0);
  CHECK_EQ(toe_recv(d, b, in, sizeof(in), 0), -TOE_EAGAIN);
  CHECK_EQ(toe_close(d, a), 0);
  CHECK_EQ(toe_close(d, b), 0);
  CHECK_EQ(toe_close(d, c), 0);
  CHECK_EQ(toe_close(d, s), 0);
  CHECK_EQ(toe_close(d, l), 0);
  CHECK_EQ(toe_detach(d, 1000), 0);
  fd_stop(f);
}

TEST(tcp_reset_on_unread_close)
{
  struct fdev *f = fd_start(FD_NORMAL);
  struct toe_attach_opts o = small_opts();
  toe_dev *d = NULL;
  REQUIRE(toe_attach(f->path, &o, &d) == 0);
  int c, s, l;
  REQUIRE(tcp_pair(d, 7001, &c, &s, &l) == 0);
  CHECK_EQ(toe_send_all(d, c, "unread", 6, 1000), 6);
  CHECK(toe_wait(d, s, TOE_POLLIN, 2000) & TOE_POLLIN);
  CHECK_EQ(toe_close(d, s), 0); /* with data unread: a reset */
  CHECK(toe_wait(d, c, TOE_POLLIN, 2000) & TOE_POLLHUP);
  char b[8];
  CHECK_EQ(toe_recv(d, c, b, 8, 0), -TOE_ECONNRESET);
  CHECK_EQ(toe_recv(d, c, b, 8, 0), 0);
  CHECK_EQ(toe_send(d, c, b, 1, 0), -TOE_EPIPE);
  CHECK_EQ(toe_detach(d, 1000), 0);
  fd_stop(f);
}

TEST(tcp_flow_control)
{
  struct fdev *f = fd_start(FD_NORMAL);
  struct toe_attach_opts o = small_opts();
  toe_dev *d = NULL;
  REQUIRE(toe_attach(f->path, &o, &d) == 0);
  int c, s, l;
  REQUIRE(tcp_pair(d, 7002, &c, &s, &l) == 0);
  CHECK_EQ(toe_setsockopt(d, s, TOE_OPT_RXBUFS, 3), 0);
  /* The server never reads: the device lends it 3 buffers and keeps the rest (FD_QCAP); then
   * sends wait in the device and the client's send space runs out. */
  static uint8_t chunk[16384];
  size_t sent = 0;
  int eagain = 0;
  uint64_t t0 = ms_now();
  while (eagain < 20 && ms_now() - t0 < 5000) {
    ssize_t n = toe_send(d, c, chunk, sizeof(chunk), 0);
    if (n > 0) {
      sent += (size_t)n;
      eagain = 0;
    } else {
      CHECK_EQ(n, -TOE_EAGAIN);
      eagain++;
      usleep(2000);
    }
  }
  CHECK(eagain >= 20);
  CHECK(sent >= FD_QCAP);
  CHECK(sent <= FD_QCAP + 3 * 4096 + 8 * 4096);
  CHECK_EQ(toe_sock_events(d, c) & TOE_POLLOUT, 0);
  int64_t nread = 0;
  CHECK_EQ(toe_getsockopt(d, s, TOE_OPT_NREAD, &nread), 0);
  CHECK(nread > 0);
  /* Reading everything lets the rest through. */
  static uint8_t sink[65536];
  size_t got = 0;
  t0 = ms_now();
  while (got < sent && ms_now() - t0 < 10000) {
    ssize_t r = toe_recv_blocking(d, s, sink, sizeof(sink), 500);
    if (r > 0)
      got += (size_t)r;
  }
  CHECK_EQ(got, sent);
  CHECK(toe_wait(d, c, TOE_POLLOUT, 1000) & TOE_POLLOUT);
  CHECK_EQ(toe_detach(d, 1000), 0);
  fd_stop(f);
}

/* ------------------------------------------------------------------------------------------ */
/* UDP                                                                                        */

TEST(udp_datagrams)
{
  struct fdev *f = fd_start(FD_NORMAL);
  struct toe_attach_opts o = small_opts();
  toe_dev *d = NULL;
  REQUIRE(toe_attach(f->path, &o, &d) == 0);
  int a = toe_socket(d, TOE_SOCK_DGRAM), b = toe_socket(d, TOE_SOCK_DGRAM);
  struct sockaddr_in aa = sin_of("0.0.0.0", 9001), ba = sin_of("10.0.0.1", 9002);
  CHECK_EQ(toe_bind(d, a, SA(aa), sizeof(aa)), 0);
  CHECK_EQ(toe_bind(d, b, SA(ba), sizeof(ba)), 0);
  static uint8_t big[10000], rbuf[12000];
  fill_pattern(big, sizeof(big), 7);
  /* larger than one 4 KiB buffer: three pieces, one datagram */
  CHECK_EQ(toe_sendto(d, a, big, sizeof(big), 0, SA(ba), sizeof(ba)), (ssize_t)sizeof(big));
  CHECK_EQ(toe_sendto(d, a, big, 0, 0, SA(ba), sizeof(ba)), 0);
  CHECK_EQ(toe_sendto(d, a, big, 100, 0, SA(ba), sizeof(ba)), 100);
  struct sockaddr_in from;
  socklen_t fl = sizeof(from);
  CHECK_EQ(toe_recvfrom_blocking(d, b, rbuf, sizeof(rbuf), SA(from), &fl, 2000),
           (ssize_t)sizeof(big));
  CHECK(memcmp(rbuf, big, sizeof(big)) == 0);
  CHECK_EQ(ntohs(from.sin_port), 9001);
  CHECK_EQ(toe_recvfrom_blocking(d, b, rbuf, sizeof(rbuf), NULL, NULL, 2000), 0);
  /* truncated: the rest of the datagram is gone */
  CHECK_EQ(toe_recvfrom_blocking(d, b, rbuf, 10, NULL, NULL, 2000), 10);
  CHECK_EQ(toe_recv(d, b, rbuf, sizeof(rbuf), 0), -TOE_EAGAIN);

  /* Connected, zero-copy, pieces flagged MORE. */
  CHECK_EQ(toe_connect(d, a, SA(ba), sizeof(ba)), 0);
  struct toe_txbuf tb;
  CHECK_EQ(toe_send_buf_get(d, a, sizeof(big), &tb), 0);
  CHECK_EQ(tb.cap, sizeof(big));
  memcpy(tb.data, big, sizeof(big));
  CHECK_EQ(toe_send_buf_commit(d, &tb, sizeof(big), 0, NULL, 0), (ssize_t)sizeof(big));
  size_t got = 0;
  int pieces = 0;
  struct toe_zc zc;
  for (;;) {
    CHECK(toe_wait(d, b, TOE_POLLIN, 2000) & TOE_POLLIN);
    ssize_t r = toe_recv_zc(d, b, &zc);
    REQUIRE(r >= 0);
    CHECK(memcmp(zc.data, big + got, (size_t)r) == 0);
    got += (size_t)r;
    pieces++;
    unsigned more = zc.flags & TOE_ZC_MORE;
    CHECK_EQ(toe_recv_zc_release(d, &zc), 0);
    if (!more)
      break;
  }
  CHECK_EQ(got, sizeof(big));
  CHECK_EQ(pieces, 3);

  /* A datagram to a port nobody has: the soft error comes back once. */
  struct sockaddr_in nob = sin_of("10.0.0.1", 9999);
  CHECK_EQ(toe_sendto(d, a, big, 10, 0, SA(nob), sizeof(nob)), 10);
  CHECK(toe_wait(d, a, TOE_POLLIN, 2000) & TOE_POLLERR);
  CHECK_EQ(toe_recv(d, a, rbuf, 10, 0), -TOE_ECONNREFUSED);
  CHECK_EQ(toe_recv(d, a, rbuf, 10, 0), -TOE_EAGAIN);
  CHECK_EQ(toe_detach(d, 1000), 0);
  fd_stop(f);
}

/* ABI 1.5: per-datagram metadata. With TOE_OPT_RXMETA the device writes a record before the
 * first piece of each datagram; toe_recvmsg hands it out with the datagram's whole length (also
 * when it was cut short, and for a datagram in three pieces); without the option, or for a record
 * that claims a size below 1.5's, none (the bad one counted). */
TEST(udp_rxmeta)
{
  struct fdev *f = fd_start(FD_NORMAL);
  struct toe_attach_opts o = small_opts();
  toe_dev *d = NULL;
  REQUIRE(toe_attach(f->path, &o, &d) == 0);
  int a = toe_socket(d, TOE_SOCK_DGRAM), b = toe_socket(d, TOE_SOCK_DGRAM);
  struct sockaddr_in aa = sin_of("0.0.0.0", 9011), ba = sin_of("10.0.0.1", 9012);
  CHECK_EQ(toe_bind(d, a, SA(aa), sizeof(aa)), 0);
  CHECK_EQ(toe_bind(d, b, SA(ba), sizeof(ba)), 0);
  static uint8_t big[10000], rbuf[12000];
  fill_pattern(big, sizeof(big), 3);
  struct toe_rxmeta m;
  struct sockaddr_in from;
  socklen_t fl = sizeof(from);

  /* off: nothing but the length */
  CHECK_EQ(toe_sendto(d, a, big, 100, 0, SA(ba), sizeof(ba)), 100);
  CHECK(toe_wait(d, b, TOE_POLLIN, 2000) & TOE_POLLIN);
  CHECK_EQ(toe_recvmsg(d, b, rbuf, sizeof(rbuf), 0, SA(from), &fl, &m), 100);
  CHECK_EQ(m.flags, 0);
  CHECK_EQ(m.full_len, 100);

  /* on */
  CHECK_EQ(toe_setsockopt(d, b, TOE_OPT_RXMETA, 1), 0);
  CHECK_EQ(toe_sendto(d, a, big, 100, 0, SA(ba), sizeof(ba)), 100);
  CHECK_EQ(toe_sendto(d, a, big, sizeof(big), 0, SA(ba), sizeof(ba)), (ssize_t)sizeof(big));
  CHECK(toe_wait(d, b, TOE_POLLIN, 2000) & TOE_POLLIN);
  fl = sizeof(from);
  CHECK_EQ(toe_recvmsg(d, b, rbuf, 10, TOE_MSG_PEEK, SA(from), &fl, &m), 10);
  CHECK_EQ(m.full_len, 100); /* cut short: MSG_TRUNC's length */
  CHECK_EQ(toe_recvmsg(d, b, rbuf, sizeof(rbuf), 0, SA(from), &fl, &m), 100);
  CHECK(memcmp(rbuf, big, 100) == 0);
  CHECK_EQ(ntohs(from.sin_port), 9011);
  CHECK_EQ(m.flags, TOE_RXMETA_DST | TOE_RXMETA_TOS | TOE_RXMETA_TTL | TOE_RXMETA_TIME);
  CHECK_EQ(m.dst, inet_addr("10.0.0.1"));
  CHECK_EQ(m.tos, 0x2e);
  CHECK_EQ(m.ttl, 17);
  CHECK_EQ(m.time_ns, 1234000000567ull);
  CHECK_EQ(m.full_len, 100);
  CHECK(toe_wait(d, b, TOE_POLLIN, 2000) & TOE_POLLIN);
  CHECK_EQ(toe_recvmsg(d, b, rbuf, sizeof(rbuf), 0, NULL, NULL, &m), (ssize_t)sizeof(big));
  CHECK(memcmp(rbuf, big, sizeof(big)) == 0); /* three pieces, the first after the record */
  CHECK_EQ(m.ttl, 17);
  CHECK_EQ(m.full_len, sizeof(big));

  /* a record that says it is smaller than 1.5's: not believed, counted */
  struct toe_dev_info before, after;
  CHECK_EQ(toe_dev_info(d, &before), 0);
  atomic_store(&f->meta_size, 8);
  CHECK_EQ(toe_sendto(d, a, big, 50, 0, SA(ba), sizeof(ba)), 50);
  CHECK(toe_wait(d, b, TOE_POLLIN, 2000) & TOE_POLLIN);
  CHECK_EQ(toe_recvmsg(d, b, rbuf, sizeof(rbuf), 0, NULL, NULL, &m), 50);
  CHECK(memcmp(rbuf, big, 50) == 0);
  CHECK_EQ(m.flags, 0);
  CHECK_EQ(toe_dev_info(d, &after), 0);
  CHECK_EQ(after.bad_cqes, before.bad_cqes + 1);
  atomic_store(&f->meta_size, 0);

  /* off again */
  CHECK_EQ(toe_setsockopt(d, b, TOE_OPT_RXMETA, 0), 0);
  CHECK_EQ(toe_sendto(d, a, big, 20, 0, SA(ba), sizeof(ba)), 20);
  CHECK(toe_wait(d, b, TOE_POLLIN, 2000) & TOE_POLLIN);
  CHECK_EQ(toe_recvmsg(d, b, rbuf, sizeof(rbuf), 0, NULL, NULL, &m), 20);
  CHECK_EQ(m.flags, 0);
  /* not on a stream (the fake device validates as toed does) */
  int t = toe_socket(d, TOE_SOCK_STREAM);
  CHECK_EQ(toe_setsockopt(d, t, TOE_OPT_RXMETA, 1), -TOE_ENOPROTOOPT);
  CHECK_EQ(toe_detach(d, 1000), 0);
  fd_stop(f);
}

/* ------------------------------------------------------------------------------------------ */
/* Events                                                                                     */

static int fd_readable(int fd, int ms)
{
  struct pollfd p = {.fd = fd, .events = POLLIN};
  return poll(&p, 1, ms) > 0 && (p.revents & POLLIN);
}

/* 1.7: AF_INET6 sockets take and give struct sockaddr_in6; a device without the capability
 * (or another family) gets -EAFNOSUPPORT from libtoe itself. */
TEST(ipv6_sockets)
{
  struct toe_attach_opts o = small_opts();
  toe_dev *d = NULL;
  struct fdev *f = fd_start(FD_OLD); /* a 1.2 device: no IPv6 */
#ifndef TOE_TEST_PORT_POSIX
  REQUIRE(toe_attach(f->path, &o, &d) == 0);
  CHECK_EQ(toe_socket_af(d, AF_INET6, TOE_SOCK_DGRAM), -TOE_EAFNOSUPPORT);
  CHECK_EQ(toe_socket_af(d, AF_INET6, TOE_SOCK_STREAM), -TOE_EAFNOSUPPORT);
  int s4 = toe_socket_af(d, AF_INET, TOE_SOCK_DGRAM);
  CHECK(s4 >= 0);
  struct sockaddr_in6 x;
  memset(&x, 0, sizeof(x));
  x.sin6_family = AF_INET6;
  x.sin6_port = htons(9100);
  CHECK_EQ(toe_bind(d, s4, SA(x), sizeof(x)), -TOE_EAFNOSUPPORT); /* validated as toed does */
  toe_detach(d, 0);
  d = NULL;
#endif
  fd_stop(f);

  f = fd_start(FD_NORMAL);
  REQUIRE(toe_attach(f->path, &o, &d) == 0);
  CHECK_EQ(toe_socket_af(d, AF_UNIX, TOE_SOCK_DGRAM), -TOE_EAFNOSUPPORT);
  int a = toe_socket_af(d, AF_INET6, TOE_SOCK_DGRAM),
      b = toe_socket_af(d, AF_INET6, TOE_SOCK_DGRAM);
  REQUIRE(a >= 0 && b >= 0);
  /* IPV6_V6ONLY reaches the device for an AF_INET6 socket; an AF_INET one has no such option */
  CHECK_EQ(toe_setsockopt(d, a, TOE_OPT_V6ONLY, 0), 0);
  CHECK_EQ(toe_setsockopt(d, a, TOE_OPT_V6ONLY, 2), -TOE_EINVAL);
  int c4 = toe_socket(d, TOE_SOCK_DGRAM);
  REQUIRE(c4 >= 0);
  CHECK_EQ(toe_setsockopt(d, c4, TOE_OPT_V6ONLY, 1), -TOE_ENOPROTOOPT);
  toe_close(d, c4);
  /* unbound: [::]:0 as a sockaddr_in6, as Linux names an unbound AF_INET6 socket */
  struct sockaddr_in6 n6;
  socklen_t nl = sizeof(n6);
  memset(&n6, 0xaa, sizeof(n6));
  CHECK_EQ(toe_getsockname(d, a, SA(n6), &nl), 0);
  CHECK_EQ(nl, sizeof(struct sockaddr_in6));
  CHECK_EQ(n6.sin6_family, AF_INET6);
  CHECK_EQ(n6.sin6_port, 0);
  CHECK(IN6_IS_ADDR_UNSPECIFIED(&n6.sin6_addr));
  /* a sockaddr_in6 cut short is EINVAL; an IPv4 address on it the device refuses */
  struct sockaddr_in6 aa;
  memset(&aa, 0, sizeof(aa));
  aa.sin6_family = AF_INET6;
  aa.sin6_port = htons(9101);
  CHECK_EQ(toe_bind(d, a, SA(aa), sizeof(struct sockaddr_in)), -TOE_EINVAL);
  struct sockaddr_in a4 = sin_of("0.0.0.0", 9101);
  CHECK_EQ(toe_bind(d, a, SA(a4), sizeof(a4)), -TOE_EAFNOSUPPORT);
  CHECK_EQ(toe_bind(d, a, SA(aa), sizeof(aa)), 0);
  struct sockaddr_in6 ba = aa;
  ba.sin6_port = htons(9102);
  ba.sin6_scope_id = 0;
  CHECK_EQ(inet_pton(AF_INET6, "2001:db8::1", &ba.sin6_addr), 1);
  CHECK_EQ(toe_bind(d, b, SA(ba), sizeof(ba)), 0);
  /* bound: the device's address, as a sockaddr_in6 (cut to the room given, full size told) */
  nl = sizeof(n6);
  CHECK_EQ(toe_getsockname(d, b, SA(n6), &nl), 0);
  CHECK_EQ(nl, sizeof(struct sockaddr_in6));
  CHECK_EQ(n6.sin6_family, AF_INET6);
  CHECK_EQ(ntohs(n6.sin6_port), 9102);
  CHECK(memcmp(&n6.sin6_addr, &ba.sin6_addr, 16) == 0);
  struct sockaddr_in small;
  nl = sizeof(small);
  CHECK_EQ(toe_getsockname(d, b, SA(small), &nl), 0);
  CHECK_EQ(nl, sizeof(struct sockaddr_in6));
  /* a datagram a -> b: b sees an IPv6 sender with a's port */
  CHECK_EQ(toe_sendto(d, a, "v6!", 3, 0, SA(ba), sizeof(ba)), 3);
  char buf[16];
  struct sockaddr_in6 from;
  socklen_t fl = sizeof(from);
  memset(&from, 0, sizeof(from));
  CHECK_EQ(toe_recvfrom_blocking(d, b, buf, sizeof(buf), SA(from), &fl, 2000), 3);
  CHECK(memcmp(buf, "v6!", 3) == 0);
  CHECK_EQ(fl, sizeof(struct sockaddr_in6));
  CHECK_EQ(from.sin6_family, AF_INET6);
  CHECK_EQ(ntohs(from.sin6_port), 9101);
  CHECK(memcmp(&from.sin6_addr, &ba.sin6_addr, 16) == 0);
  /* connected to it: getpeername gives it back */
  CHECK_EQ(toe_connect(d, a, SA(ba), sizeof(ba)), 0);
  nl = sizeof(n6);
  CHECK_EQ(toe_getpeername(d, a, SA(n6), &nl), 0);
  CHECK_EQ(n6.sin6_family, AF_INET6);
  CHECK_EQ(ntohs(n6.sin6_port), 9102);
  toe_detach(d, 0);
  fd_stop(f);
}

TEST(event_fd)
{
  struct fdev *f = fd_start(FD_NORMAL);
  struct toe_attach_opts o = small_opts();
  toe_dev *d = NULL;
  REQUIRE(toe_attach(f->path, &o, &d) == 0);
  int c, s, l;
  REQUIRE(tcp_pair(d, 7003, &c, &s, &l) == 0);
  int efd = toe_event_fd(d);
  struct toe_event ev[8];
  char b[8];
  /* Interest: nothing but input. Drain what is pending: then the fd is quiet. */
  int dummy = 42;
  CHECK_EQ(toe_poll_ctl(d, s, TOE_POLLIN, &dummy), 0);
  CHECK_EQ(toe_poll_ctl(d, c, 0, NULL), 0);
  CHECK_EQ(toe_poll_ctl(d, l, 0, NULL), 0);
  toe_poll(d, ev, 8, 0);
  CHECK_EQ(toe_poll(d, ev, 8, 0), 0);
  CHECK(!fd_readable(efd, 50));
  /* Data for s: the fd becomes readable (the device's doorbell), toe_poll reports s. */
  CHECK_EQ(toe_send(d, c, "ping", 4, 0), 4);
  CHECK(fd_readable(efd, 2000));
  int n = toe_poll(d, ev, 8, 1000);
  CHECK_EQ(n, 1);
  CHECK_EQ(ev[0].sd, s);
  CHECK_EQ(ev[0].events, TOE_POLLIN);
  CHECK(ev[0].udata == &dummy);
  /* Level-triggered: still readable until read. */
  CHECK(fd_readable(efd, 0));
  CHECK_EQ(toe_poll(d, ev, 8, 0), 1);
  CHECK_EQ(toe_recv(d, s, b, 8, 0), 4);
  CHECK_EQ(toe_poll(d, ev, 8, 0), 0);
  CHECK(!fd_readable(efd, 50));
  /* toe_spin: nothing comes, 0 after the spin; data comes, 1 as soon as it is there. */
  uint64_t t1 = ms_now();
  CHECK_EQ(toe_spin(d, 20000), 0);
  CHECK(ms_now() - t1 >= 15);
  CHECK_EQ(toe_send(d, c, "spin", 4, 0), 4);
  t1 = ms_now();
  CHECK_EQ(toe_spin(d, 2000000), 1);
  CHECK(ms_now() - t1 < 1000);
  CHECK(fd_readable(efd, 0)); /* the ready socket keeps the descriptor readable */
  CHECK_EQ(toe_recv(d, s, b, 8, 0), 4);
  CHECK_EQ(toe_poll(d, ev, 8, 0), 0);
  /* A timeout with nothing: returns 0 after about that long. */
  uint64_t t0 = ms_now();
  CHECK_EQ(toe_poll(d, ev, 8, 120), 0);
  CHECK(ms_now() - t0 >= 100);
  /* POLLOUT interest on a writable socket: reported at once. */
  CHECK_EQ(toe_poll_ctl(d, c, TOE_POLLOUT, NULL), 0);
  CHECK(fd_readable(efd, 0));
  CHECK_EQ(toe_poll(d, ev, 8, 0), 1);
  CHECK_EQ(ev[0].sd, c);
  CHECK_EQ(ev[0].events, TOE_POLLOUT);
  /* Works from an epoll set, as applications use it. */
  CHECK_EQ(toe_poll_ctl(d, c, 0, NULL), 0);
  toe_poll(d, ev, 8, 0);
  int ep = epoll_create1(0);
  struct epoll_event ee = {.events = EPOLLIN};
  CHECK_EQ(epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ee), 0);
  CHECK_EQ(epoll_wait(ep, &ee, 1, 50), 0);
  CHECK_EQ(toe_send(d, c, "pong", 4, 0), 4);
  CHECK_EQ(epoll_wait(ep, &ee, 1, 2000), 1);
  close(ep);
  CHECK_EQ(toe_detach(d, 1000), 0);
  fd_stop(f);
}

TEST(bad_completions)
{
  struct fdev *f = fd_start(FD_NORMAL);
  struct toe_attach_opts o = small_opts();
  toe_dev *d = NULL;
  REQUIRE(toe_attach(f->path, &o, &d) == 0);
  atomic_store(&f->inject, 2);
  struct toe_event ev[4];
  uint64_t t0 = ms_now();
  struct toe_dev_info info;
  do {
    toe_poll(d, ev, 4, 10);
    toe_dev_info(d, &info);
  } while (info.bad_cqes < 6 && ms_now() - t0 < 2000);
  CHECK_EQ(info.bad_cqes, 6);
  CHECK_EQ(toe_dev_status(d), 0); /* ignored, the session goes on */
  int c, s, l;
  CHECK_EQ(tcp_pair(d, 7004, &c, &s, &l), 0);
  CHECK_EQ(toe_detach(d, 1000), 0);
  fd_stop(f);
}

/* ------------------------------------------------------------------------------------------ */
/* Device loss                                                                                */

TEST(device_loss)
{
  struct fdev *f = fd_start(FD_NORMAL);
  struct toe_attach_opts o = small_opts();
  toe_dev *d = NULL;
  REQUIRE(toe_attach(f->path, &o, &d) == 0);
  int c, s, l;
  REQUIRE(tcp_pair(d, 7005, &c, &s, &l) == 0);
  CHECK_EQ(toe_send_all(d, c, "queued", 6, 1000), 6);
  CHECK(toe_wait(d, s, TOE_POLLIN, 2000) & TOE_POLLIN);
  int u = toe_socket(d, TOE_SOCK_DGRAM);
  /* The device stops taking submissions: a control call times out (bounded), the session
   * goes on. */
  atomic_store(&f->paused, 1);
  uint64_t t0 = ms_now();
  int64_t v;
  CHECK_EQ(toe_getsockopt(d, c, TOE_OPT_NODELAY, &v), -TOE_ETIMEDOUT);
  CHECK(ms_now() - t0 >= 1900 && ms_now() - t0 < 4000);

  /* A blocking receive in progress when the device dies returns within a second. */
  atomic_store(&f->kill, true);
  t0 = ms_now();
  char b[16];
  ssize_t r = toe_recv_blocking(d, c, b, sizeof(b), 10000);
  CHECK_EQ(r, -TOE_ECONNRESET);
  CHECK(ms_now() - t0 < 1000);
  CHECK_EQ(toe_dev_status(d), -TOE_ENETDOWN);
  struct toe_event ev[8];
  int n = toe_poll(d, ev, 8, 0);
  CHECK(n >= 1);
  CHECK_EQ(ev[0].sd, TOE_SD_DEVICE);
  CHECK_EQ(ev[0].events, TOE_POLLHUP | TOE_POLLERR);
  /* Queued data is still there, then ECONNRESET; sends EPIPE; new work ENETDOWN. */
  CHECK_EQ(toe_recv(d, s, b, sizeof(b), 0), 6);
  CHECK_EQ(toe_recv(d, s, b, sizeof(b), 0), -TOE_ECONNRESET);
  CHECK_EQ(toe_send(d, s, b, 1, 0), -TOE_EPIPE);
  struct sockaddr_in ua = sin_of("10.0.0.1", 9000);
  CHECK_EQ(toe_sendto(d, u, b, 1, 0, SA(ua), sizeof(ua)), -TOE_EPIPE);
  CHECK_EQ(toe_sock_events(d, c) & (TOE_POLLHUP | TOE_POLLIN | TOE_POLLOUT),
           TOE_POLLHUP | TOE_POLLIN | TOE_POLLOUT);
  CHECK_EQ(toe_getsockopt(d, c, TOE_OPT_ERROR, &v), 0);
  CHECK_EQ(v, -TOE_ENETDOWN);
  CHECK_EQ(toe_socket(d, TOE_SOCK_STREAM), -TOE_ENETDOWN);
  CHECK_EQ(toe_accept(d, l, NULL, NULL), -TOE_ENETDOWN);
  CHECK_EQ(toe_setsockopt(d, c, TOE_OPT_NODELAY, 1), -TOE_ENETDOWN);
  CHECK_EQ(toe_stats(d, -1, TOE_STATS_ENGINE, b, sizeof(b)), -TOE_ENETDOWN);
  CHECK_EQ(toe_close(d, c), 0);
  t0 = ms_now();
  CHECK_EQ(toe_detach(d, 5000), 0);
  CHECK(ms_now() - t0 < 500);
  /* The fake device serves again: a new session works. */
  atomic_store(&f->paused, 0);
  REQUIRE(toe_attach(f->path, &o, &d) == 0);
  CHECK_EQ(tcp_pair(d, 7005, &c, &s, &l), 0);
  CHECK_EQ(toe_detach(d, 1000), 0);
  fd_stop(f);
}

/* ------------------------------------------------------------------------------------------ */
/* Threads                                                                                    */

struct reader {
  toe_dev *d;
  int sd;
  size_t want, got;
  int err;
};

static void *reader_main(void *arg)
{
  struct reader *r = arg;
  uint8_t buf[3000];
  uint8_t expect = 0;
  while (r->got < r->want) {
    ssize_t n = toe_recv_blocking(r->d, r->sd, buf, sizeof(buf), 5000);
    if (n <= 0) {
      r->err = (int)n;
      break;
    }
    for (ssize_t i = 0; i < n; i++)
      if (buf[i] != expect++)
        r->err = -1;
    r->got += (size_t)n;
  }
  return NULL;
}

TEST(threads)
{
  struct fdev *f = fd_start(FD_NORMAL);
  struct toe_attach_opts o = small_opts();
  toe_dev *d = NULL;
  REQUIRE(toe_attach(f->path, &o, &d) == 0);
  int c1, s1, l1, c2, s2, l2;
  REQUIRE(tcp_pair(d, 7006, &c1, &s1, &l1) == 0);
  REQUIRE(tcp_pair(d, 7007, &c2, &s2, &l2) == 0);
  struct reader r1 = {.d = d, .sd = s1, .want = 300000}, r2 = {.d = d, .sd = s2, .want = 300000};
  pthread_t t1, t2;
  pthread_create(&t1, NULL, reader_main, &r1);
  pthread_create(&t2, NULL, reader_main, &r2);
  static uint8_t data[300000];
  for (size_t i = 0; i < sizeof(data); i++)
    data[i] = (uint8_t)i;
  size_t o1 = 0, o2 = 0;
  uint64_t t0 = ms_now();
  while ((o1 < sizeof(data) || o2 < sizeof(data)) && ms_now() - t0 < 20000) {
    ssize_t n;
    if (o1 < sizeof(data) && (n = toe_send(d, c1, data + o1, sizeof(data) - o1, 0)) > 0)
      o1 += (size_t)n;
    if (o2 < sizeof(data) && (n = toe_send(d, c2, data + o2, sizeof(data) - o2, 0)) > 0)
      o2 += (size_t)n;
    toe_wait(d, c1, TOE_POLLOUT, 5);
  }
  pthread_join(t1, NULL);
  pthread_join(t2, NULL);
  CHECK_EQ(r1.got, sizeof(data));
  CHECK_EQ(r2.got, sizeof(data));
  CHECK_EQ(r1.err, 0);
  CHECK_EQ(r2.err, 0);

  /* A thread blocked on a socket that another thread closes returns at once (-EBADF). */
  struct reader r3 = {.d = d, .sd = s1, .want = 1};
  pthread_t t3;
  pthread_create(&t3, NULL, reader_main, &r3);
  usleep(50000);
  uint64_t tc = ms_now();
  CHECK_EQ(toe_close(d, s1), 0);
  pthread_join(t3, NULL);
  CHECK_EQ(r3.err, -TOE_EBADF);
  CHECK(ms_now() - tc < 500);
  CHECK_EQ(toe_detach(d, 1000), 0);
  fd_stop(f);
}

TEST_MAIN()
