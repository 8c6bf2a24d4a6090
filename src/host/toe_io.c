/*
 * libtoe: the data path (docs/transport.md "Buffers and the data path", "Flow control").
 *
 * Send: bytes are copied once, from the caller into send buffers of the shared region, and
 * submitted as SEND ops naming that range; the device copies them into its engine and the SEND's
 * completion gives the buffers back. Small sends share a socket's partially filled buffer (each
 * SEND names only its own bytes; a buffer is free when its last reference goes), large ones take
 * runs of up to TOE_SEND_RUN_MAX consecutive buffers so one SEND carries up to 64 KiB. A socket
 * holds at most TOE_OPT_TXBUFS buffers and TOE_SENDS_MAX SENDs: beyond that send says EAGAIN,
 * which bounds what the device holds for us and keeps its op table from filling with the sends of
 * one slow connection.
 *
 * Receive: the device lends filled buffers with EV_DATA; they wait on the socket's queue until
 * read (copied out once) or lent on in place (toe_recv_zc), and go back through the fill ring
 * when consumed. Returning them is the socket's receive credit: a socket nobody reads keeps
 * TOE_OPT_RXBUFS buffers, the device then leaves the data in its engine and the TCP window closes.
 */
#define _GNU_SOURCE

#include "host/toe_internal.h"

#include <limits.h>
#include <string.h>
#include <sys/uio.h>

#define UDP_MAX 65507u

/* ------------------------------------------------------------------------------------------ */
/* Send buffers                                                                               */

static uint32_t owner_tag(const struct toe_dev *d, uint32_t sock)
{
  if (sock == TOE_NONE)
    return TOE_NONE;
  return ((d->socks[sock].gen & 0xffffu) << 16) | sock;
}

static bool tx_is_free(const struct toe_dev *d, uint32_t id)
{
  return (d->txmap[id / 64] >> (id % 64)) & 1u;
}

uint32_t toe_tx_alloc(struct toe_dev *d, uint32_t want, bool exact, uint32_t owner, uint32_t *got)
{
  uint32_t lo = d->rx_count, hi = d->layout.buf_count;
  if (want == 0)
    want = 1;
  if (d->tx_free == 0 || (exact && want > d->tx_free))
    return TOE_NONE;
  uint32_t best = TOE_NONE, best_len = 0, run = TOE_NONE, run_len = 0;
  uint32_t i = d->tx_cursor < lo || d->tx_cursor >= hi ? lo : d->tx_cursor;
  for (uint32_t step = 0; step < hi - lo; step++, i++) {
    if (i >= hi) {
      i = lo; /* runs do not wrap */
      run_len = 0;
    }
    if (i % 64 == 0 && i + 64 <= hi && d->txmap[i / 64] == 0 && step + 64 <= hi - lo) {
      i += 63; /* a whole word in use */
      step += 63;
      run_len = 0;
      continue;
    }
    if (!tx_is_free(d, i)) {
      run_len = 0;
      continue;
    }
    if (run_len++ == 0)
      run = i;
    if (run_len > best_len) {
      best_len = run_len;
      best = run;
    }
    if (run_len == want)
      break;
  }
  if (best == TOE_NONE || (exact && best_len < want))
    return TOE_NONE;
  uint32_t n = best_len < want ? best_len : want;
  uint32_t tag = owner_tag(d, owner);
  for (uint32_t k = best; k < best + n; k++) {
    d->txmap[k / 64] &= ~(1ull << (k % 64));
    d->txref[k] = 1;
    d->txowner[k] = tag;
  }
  d->tx_free -= n;
  d->tx_cursor = best + n;
  if (owner != TOE_NONE)
    d->socks[owner].tx_held += n;
  *got = n;
  return best;
}

void toe_tx_unref(struct toe_dev *d, uint32_t first, uint32_t n)
{
  bool freed = false;
  for (uint32_t k = first; k < first + n; k++) {
    if (k < d->rx_count || k >= d->layout.buf_count || d->txref[k] == 0)
      continue; /* not a referenced send buffer: a library bug, ignored rather than spread */
    if (--d->txref[k])
      continue;
    d->txmap[k / 64] |= 1ull << (k % 64);
    d->tx_free++;
    freed = true;
    uint32_t tag = d->txowner[k];
    d->txowner[k] = TOE_NONE;
    if (tag == TOE_NONE)
      continue;
    struct sock *s = &d->socks[tag & 0xffffu];
    if ((s->gen & 0xffffu) == tag >> 16 && s->state != S_FREE && s->tx_held > 0) {
      s->tx_held--;
      toe_sock_update(d, s);
    }
  }
  if (freed && d->tx_starved) {
    d->tx_starved = false;
    toe_sock_update_all(d);
  }
}

bool toe_sock_can_send(const struct toe_dev *d, const struct sock *s)
{
  if (s->sends >= TOE_SENDS_MAX || d->op_free == TOE_NONE || d->ops_async >= d->ops_async_max)
    return false;
  if (s->tx_part != TOE_NONE && s->tx_part_fill < d->layout.buf_size)
    return true;
  return s->tx_held < s->tx_max && d->tx_free > 0;
}

/* Errors a send gets from the socket's state, before anything is queued. */
static int send_state(struct sock *s)
{
  if (s->flags & F_DEV_GONE)
    return -TOE_EPIPE;
  if (s->soerror) {
    int rc = s->soerror; /* reported once, as a kernel does */
    s->soerror = 0;
    return rc;
  }
  if (s->type == TOE_SOCK_DGRAM)
    return 0;
  if (s->flags & (F_CONN_DEAD | F_SHUT_WR))
    return -TOE_EPIPE;
  if (s->state == S_CONNECTING)
    return -TOE_EAGAIN;
  if (s->state != S_CONNECTED)
    return -TOE_ENOTCONN;
  return 0;
}

/* Submits one SEND of [off, off + len) that references send buffers [first, first + n). */
static int submit_send(struct toe_dev *d, struct sock *s, uint64_t off, uint32_t len,
                       uint32_t first, uint32_t n, uint32_t send_flags,
                       const struct toe_abi_sockaddr *dst)
{
  uint32_t idx = (uint32_t)(s - d->socks);
  struct op *op = toe_op_alloc(d, TOE_ABI_OP_SEND, idx, true);
  if (!op)
    return -TOE_EAGAIN;
  op->buf_first = first;
  op->buf_n = n;
  op->len = len;
  struct toe_abi_sqe sqe;
  memset(&sqe, 0, sizeof(sqe));
  toe_sqe_init(d, &sqe, op, s->handle);
  sqe.u.send.buf_off = off;
  sqe.u.send.len = len;
  sqe.u.send.send_flags = send_flags;
  if (dst)
    sqe.u.send.dst = *dst;
  int rc = toe_sq_push(d, &sqe);
  if (rc < 0) {
    op->buf_first = TOE_NONE; /* the caller still holds its references */
    toe_op_free(d, op);
    return rc;
  }
  s->sends++;
  d->info.tx_bytes += len;
  return 0;
}

void toe_on_send_done(struct toe_dev *d, struct op *op, const struct toe_abi_cqe *c)
{
  if (op->buf_first != TOE_NONE) {
    toe_tx_unref(d, op->buf_first, op->buf_n);
    op->buf_first = TOE_NONE;
  }
  if (op->sock == TOE_NONE)
    return;
  struct sock *s = &d->socks[op->sock];
  if (s->sends)
    s->sends--;
  /* A failed send: the connection's own error event usually says why; a UDP send's failure
   * (no ARP answer, no route) is reported by the next call. */
  if (c->res < 0 && c->res != -TOE_ECONNABORTED && !s->soerror && !(s->flags & F_CONN_DEAD) &&
      s->state != S_CLOSING)
    s->soerror = c->res;
  toe_sock_update(d, s);
}

/* Where a send's bytes come from: one caller buffer, or a caller's iovec array (toe_sendv),
 * gathered straight into the region: one copy whatever the number of pieces. */
struct src {
  const struct iovec *iov;
  int n;      /* pieces left, from iov[0] */
  size_t off; /* bytes of iov[0] already taken */
};

static void src_copy(struct src *src, uint8_t *dst, size_t len)
{
  while (len) {
    size_t k = src->iov->iov_len - src->off;
    if (k == 0) {
      src->iov++;
      src->n--;
      src->off = 0;
      continue;
    }
    if (k > len)
      k = len;
    memcpy(dst, (const uint8_t *)src->iov->iov_base + src->off, k);
    dst += k;
    src->off += k;
    len -= k;
  }
}

/* TCP: copies and submits up to len bytes; returns bytes taken or an error. Every SEND names as
 * many consecutive bytes as fit, whatever pieces they came from. */
static ssize_t stream_send(struct toe_dev *d, struct sock *s, struct src *src, size_t len,
                           unsigned flags)
{
  uint32_t bs = d->layout.buf_size;
  uint32_t idx = (uint32_t)(s - d->socks);
  size_t done = 0;
  while (done < len && s->sends < TOE_SENDS_MAX) {
    size_t rest = len - done;
    uint32_t first, n;
    uint64_t off;
    size_t chunk;
    bool fresh;
    if (s->tx_part != TOE_NONE && s->tx_part_fill < bs) {
      fresh = false;
      first = s->tx_part;
      n = 1;
      off = toe_buf_off(d, first) + s->tx_part_fill;
      chunk = bs - s->tx_part_fill < rest ? bs - s->tx_part_fill : rest;
    } else {
      if (s->tx_part != TOE_NONE) {
        toe_tx_unref(d, s->tx_part, 1); /* full: only its SENDs hold it now */
        s->tx_part = TOE_NONE;
      }
      if (s->tx_held >= s->tx_max)
        break;
      uint64_t want = (rest + bs - 1) / bs;
      uint32_t cap = s->tx_max - s->tx_held;
      if (cap > TOE_SEND_RUN_MAX)
        cap = TOE_SEND_RUN_MAX;
      if (want > cap)
        want = cap;
      fresh = true;
      first = toe_tx_alloc(d, (uint32_t)want, false, idx, &n);
      if (first == TOE_NONE) {
        d->tx_starved = true;
        break;
      }
      off = toe_buf_off(d, first);
      chunk = (size_t)n * bs < rest ? (size_t)n * bs : rest;
    }
    struct src before = *src;
    src_copy(src, d->region + off, chunk);
    bool more = done + chunk < len || (flags & TOE_MSG_MORE);
    if (!fresh)
      d->txref[first]++; /* this SEND's reference */
    int rc =
        submit_send(d, s, off, (uint32_t)chunk, first, n, more ? TOE_ABI_SEND_F_MORE : 0, NULL);
    if (rc < 0) {
      *src = before; /* not taken */
      toe_tx_unref(d, first, n);
      if (done == 0 && rc != -TOE_EAGAIN)
        return rc == -TOE_ENETDOWN ? -TOE_EPIPE : rc;
      break;
    }
    if (fresh) {
      size_t tail = chunk - (size_t)(n - 1) * bs; /* bytes in the run's last buffer */
      if (tail < bs) {
        s->tx_part = first + n - 1; /* later small sends fill the rest of it */
        s->tx_part_fill = (uint32_t)tail;
        d->txref[s->tx_part]++;
      }
    } else {
      s->tx_part_fill += (uint32_t)chunk;
    }
    done += chunk;
  }
  return done ? (ssize_t)done : -TOE_EAGAIN;
}

/* UDP destination: the given address, or the connected peer (UNSPEC in the SQE). */
static int udp_dst(const struct sock *s, const struct sockaddr *dst, socklen_t dstlen,
                   struct toe_abi_sockaddr *out)
{
  memset(out, 0, sizeof(*out));
  if (dst)
    return toe_sa_in(dst, dstlen, out, false);
  if (s->state != S_CONNECTED)
    return -TOE_EDESTADDRREQ;
  return 0;
}

/* UDP: one datagram. */
static ssize_t dgram_send(struct toe_dev *d, struct sock *s, struct src *src, size_t len,
                          const struct toe_abi_sockaddr *dst)
{
  uint32_t bs = d->layout.buf_size;
  uint32_t idx = (uint32_t)(s - d->socks);
  if (len > UDP_MAX)
    return -TOE_EMSGSIZE;
  if (s->sends >= TOE_SENDS_MAX)
    return -TOE_EAGAIN;
  uint32_t first = TOE_NONE, n = 0;
  uint64_t off = d->layout.buf_off; /* an empty datagram names an empty range */
  bool fresh = false;
  if (len == 0) {
    /* nothing to reserve */
  } else if (s->tx_part != TOE_NONE && len <= bs - s->tx_part_fill) {
    first = s->tx_part;
    n = 1;
    off = toe_buf_off(d, first) + s->tx_part_fill;
    d->txref[first]++;
  } else {
    uint32_t need = (uint32_t)((len + bs - 1) / bs);
    if (need > d->layout.buf_count - d->rx_count)
      return -TOE_EMSGSIZE;
    if (s->tx_held > 0 && s->tx_held + need > s->tx_max)
      return -TOE_EAGAIN;
    first = toe_tx_alloc(d, need, true, idx, &n);
    if (first == TOE_NONE) {
      d->tx_starved = true;
      return -TOE_EAGAIN;
    }
    off = toe_buf_off(d, first);
    fresh = true;
  }
  if (len)
    src_copy(src, d->region + off, len);
  int rc = submit_send(d, s, off, (uint32_t)len, first, n, 0, dst);
  if (rc < 0) {
    if (first != TOE_NONE)
      toe_tx_unref(d, first, n);
    return rc == -TOE_ENETDOWN ? -TOE_EPIPE : rc;
  }
  if (fresh) {
    size_t tail = len - (size_t)(n - 1) * bs;
    if (tail < bs) {
      if (s->tx_part != TOE_NONE)
        toe_tx_unref(d, s->tx_part, 1);
      s->tx_part = first + n - 1;
      s->tx_part_fill = (uint32_t)tail;
      d->txref[s->tx_part]++;
    }
  } else if (first != TOE_NONE) {
    s->tx_part_fill += (uint32_t)len;
  }
  return (ssize_t)len;
}

ssize_t toe_send(toe_dev *d, int sd, const void *buf, size_t len, unsigned flags)
{
  return toe_sendto(d, sd, buf, len, flags, NULL, 0);
}

ssize_t toe_sendto(toe_dev *d, int sd, const void *buf, size_t len, unsigned flags,
                   const struct sockaddr *dst, socklen_t dstlen)
{
  if (len && !buf)
    return d ? -TOE_EINVAL : -TOE_EBADF;
  struct iovec one = {.iov_base = (void *)(uintptr_t)buf, .iov_len = len};
  return toe_sendv(d, sd, &one, 1, flags, dst, dstlen);
}

ssize_t toe_sendv(toe_dev *d, int sd, const struct iovec *iov, int iovcnt, unsigned flags,
                  const struct sockaddr *dst, socklen_t dstlen)
{
  if (!d)
    return -TOE_EBADF;
  if (iovcnt < 0 || iovcnt > TOE_IOV_MAX || (iovcnt && !iov))
    return -TOE_EINVAL;
  size_t len = 0;
  for (int i = 0; i < iovcnt; i++) {
    if ((iov[i].iov_len && !iov[i].iov_base) || iov[i].iov_len > SSIZE_MAX - len)
      return -TOE_EINVAL; /* as writev(2): the total must fit an ssize_t */
    len += iov[i].iov_len;
  }
  struct src src = {.iov = iov, .n = iovcnt, .off = 0};
  ssize_t rc;
  struct sock *s = toe_sock_enter(d, sd);
  struct toe_abi_sockaddr a;
  if (!s) {
    rc = -TOE_EBADF;
  } else if (s->state == S_LISTEN) {
    rc = -TOE_ENOTCONN;
  } else if (s->type == TOE_SOCK_STREAM) {
    if (dst)
      rc = s->state == S_CONNECTED ? -TOE_EISCONN : -TOE_ENOTCONN;
    else if ((rc = send_state(s)) == 0)
      rc = len ? stream_send(d, s, &src, len, flags) : 0;
  } else if ((rc = udp_dst(s, dst, dstlen, &a)) == 0 && (rc = send_state(s)) == 0) {
    rc = dgram_send(d, s, &src, len, &a);
  }
  if (s)
    toe_sock_update(d, s);
  toe_dev_unlock(d);
  return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Zero-copy send                                                                             */

int toe_send_buf_get(toe_dev *d, int sd, size_t want, struct toe_txbuf *tb)
{
  if (!d)
    return -TOE_EBADF;
  if (!tb)
    return -TOE_EINVAL;
  memset(tb, 0, sizeof(*tb));
  tb->first = TOE_NONE;
  toe_dev_lock(d);
  toe_dev_progress(d);
  int rc = 0;
  uint32_t bs = d->layout.buf_size;
  struct sock *s = toe_sock_get(d, sd);
  if (!s) {
    rc = -TOE_EBADF;
  } else if ((rc = send_state(s)) < 0) {
    /* rc set */
  } else if (s->type == TOE_SOCK_DGRAM && want > UDP_MAX) {
    rc = -TOE_EMSGSIZE;
  } else {
    uint64_t need = want ? (want + bs - 1) / bs : 1;
    bool exact = s->type == TOE_SOCK_DGRAM;
    if (exact && need > d->layout.buf_count - d->rx_count) {
      rc = -TOE_EMSGSIZE;
    } else {
      if (!exact) {
        uint32_t cap = s->tx_held < s->tx_max ? s->tx_max - s->tx_held : 0;
        if (cap > TOE_SEND_RUN_MAX)
          cap = TOE_SEND_RUN_MAX;
        if (need > cap)
          need = cap;
      } else if (s->tx_held > 0 && s->tx_held + need > s->tx_max) {
        need = 0;
      }
      uint32_t n = 0, first = TOE_NONE;
      if (need > 0)
        first = toe_tx_alloc(d, (uint32_t)need, exact, (uint32_t)sd, &n);
      if (first == TOE_NONE) {
        if (need > 0)
          d->tx_starved = true;
        rc = -TOE_EAGAIN;
      } else {
        tb->data = toe_buf_ptr(d, first);
        tb->cap = exact ? want : ((size_t)n * bs < want || want == 0 ? (size_t)n * bs : want);
        tb->first = first;
        tb->n = n;
        tb->sd = sd;
      }
    }
  }
  if (s)
    toe_sock_update(d, s);
  toe_dev_unlock(d);
  return rc;
}

/* True if tb names send buffers reserved by toe_send_buf_get for its socket. */
static bool txbuf_valid(const struct toe_dev *d, const struct toe_txbuf *tb)
{
  if (tb->n == 0 || tb->first < d->rx_count || tb->first >= d->layout.buf_count ||
      tb->n > d->layout.buf_count - tb->first || tb->sd < 0 || (uint32_t)tb->sd >= d->nsocks)
    return false;
  if (tb->data != toe_buf_ptr(d, tb->first))
    return false;
  for (uint32_t k = tb->first; k < tb->first + tb->n; k++)
    if (d->txref[k] == 0 || (d->txowner[k] & 0xffffu) != (uint32_t)tb->sd)
      return false;
  return true;
}

ssize_t toe_send_buf_commit(toe_dev *d, struct toe_txbuf *tb, size_t len, unsigned flags,
                            const struct sockaddr *dst, socklen_t dstlen)
{
  if (!d)
    return -TOE_EBADF;
  if (!tb)
    return -TOE_EINVAL;
  toe_dev_lock(d);
  toe_dev_progress(d);
  ssize_t rc;
  uint32_t bs = d->layout.buf_size;
  if (!txbuf_valid(d, tb)) {
    toe_dev_unlock(d);
    return -TOE_EINVAL;
  }
  struct sock *s = toe_sock_get(d, tb->sd);
  struct toe_abi_sockaddr a;
  memset(&a, 0, sizeof(a));
  uint32_t used = len ? (uint32_t)((len + bs - 1) / bs) : 1;
  if (!s) {
    rc = -TOE_EBADF;
  } else if (len > tb->cap) {
    rc = -TOE_EINVAL;
  } else if (s->type == TOE_SOCK_STREAM && len == 0) {
    rc = 0; /* cancelled */
  } else if (s->type == TOE_SOCK_STREAM && dst) {
    rc = -TOE_EISCONN;
  } else if (s->type == TOE_SOCK_DGRAM && (rc = udp_dst(s, dst, dstlen, &a)) < 0) {
    /* rc set */
  } else if ((rc = send_state(s)) < 0) {
    /* rc set */
  } else if (s->sends >= TOE_SENDS_MAX) {
    rc = -TOE_EAGAIN;
  } else {
    uint32_t more =
        (s->type == TOE_SOCK_STREAM && (flags & TOE_MSG_MORE)) ? TOE_ABI_SEND_F_MORE : 0;
    rc = submit_send(d, s, toe_buf_off(d, tb->first), (uint32_t)len, tb->first, used, more,
                     s->type == TOE_SOCK_DGRAM ? &a : NULL);
    if (rc == 0) {
      rc = (ssize_t)len;
      if (used < tb->n)
        toe_tx_unref(d, tb->first + used, tb->n - used); /* not needed */
      tb->n = 0;
      tb->data = NULL;
    } else if (rc == -TOE_ENETDOWN) {
      rc = -TOE_EPIPE;
    }
  }
  if (tb->n) { /* not sent: the space goes back */
    toe_tx_unref(d, tb->first, tb->n);
    tb->n = 0;
    tb->data = NULL;
  }
  if (s)
    toe_sock_update(d, s);
  toe_dev_unlock(d);
  return rc;
}

int toe_send_buf_cancel(toe_dev *d, struct toe_txbuf *tb)
{
  if (!d)
    return -TOE_EBADF;
  if (!tb)
    return -TOE_EINVAL;
  toe_dev_lock(d);
  int rc = -TOE_EINVAL;
  if (txbuf_valid(d, tb)) {
    toe_tx_unref(d, tb->first, tb->n);
    tb->n = 0;
    tb->data = NULL;
    rc = 0;
  }
  toe_dev_unlock(d);
  return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Receive                                                                                    */

_Static_assert(TOE_RXMETA_DST == TOE_ABI_RX_META_F_DST && TOE_RXMETA_TOS == TOE_ABI_RX_META_F_TOS &&
                   TOE_RXMETA_TTL == TOE_ABI_RX_META_F_TTL &&
                   TOE_RXMETA_TIME == TOE_ABI_RX_META_F_TIME,
               "libtoe's meta flags are the ABI's");
_Static_assert(TOE_OPT_RXMETA == TOE_ABI_SO_RXMETA && TOE_OPT_RECVERR == TOE_ABI_IP_RECVERR,
               "libtoe's options are the ABI's");

/* 1.5: the record the device put before a datagram's first piece (TOE_ABI_CQE_F_META). One
 * that does not fit before the data, or says it is smaller than 1.5's, is not believed. */
static void rx_meta_read(struct toe_dev *d, uint32_t id, struct rxb *b)
{
  struct toe_abi_rx_meta m;
  if (b->off < sizeof(m)) {
    d->info.bad_cqes++;
    return;
  }
  memcpy(&m, toe_buf_ptr(d, id) + b->off - sizeof(m), sizeof(m));
  if (m.size < sizeof(m) || m.size > b->off ||
      (m.family != TOE_ABI_AF_INET && m.family != TOE_ABI_AF_INET6)) {
    d->info.bad_cqes++;
    return;
  }
  b->mflags = m.flags & (TOE_RXMETA_DST | TOE_RXMETA_TOS | TOE_RXMETA_TTL | TOE_RXMETA_TIME);
  memcpy(&b->mdst, m.dst, 4);
  if (m.family == TOE_ABI_AF_INET6) {
    /* 1.7: an IPv6 socket's destination; only a v4-mapped one fits toe_rxmeta.dst (the socket
     * is AF_INET6, so the caller shows it as ::ffff:a.b.c.d). */
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(m.dst, mapped, sizeof(mapped)) == 0)
      memcpy(&b->mdst, m.dst + 12, 4);
    else
      b->mflags &= (uint16_t)~TOE_RXMETA_DST;
  }
  b->mtos = m.tos;
  b->mttl = m.ttl;
  b->mtime = m.time_ns;
}

void toe_on_data(struct toe_dev *d, struct sock *s, const struct toe_abi_cqe *c)
{
  uint32_t id = c->u.data.buf_id, off = c->u.data.offset, len = c->u.data.len;
  uint32_t bs = d->layout.buf_size;
  if (id >= d->rx_count || d->bstate[id] != B_DEV || off > bs || len > bs - off || c->res < 0 ||
      (uint32_t)c->res != len) {
    d->info.bad_cqes++; /* not a buffer we gave the device, or out of its bounds */
    return;
  }
  if (!s || s->state == S_CLOSING || (s->flags & F_SHUT_RD) ||
      (s->type == TOE_SOCK_STREAM && len == 0)) {
    toe_fq_return(d, id); /* nobody will read it */
    return;
  }
  struct rxb *b = &d->rxb[id];
  b->next = TOE_NONE;
  b->off = off;
  b->len = len;
  b->more = s->type == TOE_SOCK_DGRAM && (c->flags & TOE_ABI_CQE_F_MORE);
  b->from = c->u.data.from;
  b->mflags = 0;
  if ((c->flags & TOE_ABI_CQE_F_META) && s->type == TOE_SOCK_DGRAM)
    rx_meta_read(d, id, b);
  d->bstate[id] = B_QUEUED;
  if (s->rx_tail != TOE_NONE)
    d->rxb[s->rx_tail].next = id;
  else
    s->rx_head = id;
  s->rx_tail = id;
  s->rx_nbufs++;
  s->rx_bytes += len;
  if (s->type == TOE_SOCK_DGRAM && !b->more)
    s->rx_dgrams++;
  d->info.rx_bytes += len;
  toe_sock_update(d, s);
}

/* Takes the head buffer off a socket's queue (it stays lent to us: the caller decides). */
static uint32_t rxq_pop(struct toe_dev *d, struct sock *s)
{
  uint32_t id = s->rx_head;
  struct rxb *b = &d->rxb[id];
  s->rx_head = b->next;
  if (s->rx_head == TOE_NONE)
    s->rx_tail = TOE_NONE;
  b->next = TOE_NONE;
  s->rx_nbufs--;
  s->rx_bytes -= b->len;
  if (s->type == TOE_SOCK_DGRAM && !b->more && s->rx_dgrams)
    s->rx_dgrams--;
  d->bstate[id] = B_LOOSE;
  return id;
}

void toe_sock_drop_buffers(struct toe_dev *d, struct sock *s)
{
  while (s->rx_head != TOE_NONE)
    toe_fq_return(d, rxq_pop(d, s));
  s->rx_bytes = 0;
  s->rx_dgrams = 0;
  if (s->tx_part != TOE_NONE) {
    toe_tx_unref(d, s->tx_part, 1);
    s->tx_part = TOE_NONE;
  }
}

/* What a read returns when nothing is queued (TCP), or 1 if there is data. */
static int stream_empty_result(struct sock *s)
{
  if (s->rx_bytes)
    return 1;
  if (s->flags & F_SHUT_RD)
    return 0;
  if (s->flags & F_DEV_GONE)
    return -TOE_ECONNRESET;
  if (s->soerror) {
    int rc = s->soerror;
    s->soerror = 0;
    return rc;
  }
  if (s->flags & (F_PEER_CLOSED | F_CONN_DEAD))
    return 0;
  if (s->state == S_CONNECTED || s->state == S_CONNECTING)
    return -TOE_EAGAIN;
  return -TOE_ENOTCONN;
}

static int dgram_empty_result(struct sock *s)
{
  if (s->rx_dgrams)
    return 1;
  if (s->soerror) {
    int rc = s->soerror;
    s->soerror = 0;
    return rc;
  }
  if (s->flags & F_DEV_GONE)
    return -TOE_ECONNRESET;
  return -TOE_EAGAIN;
}

static ssize_t stream_recv(struct toe_dev *d, struct sock *s, uint8_t *buf, size_t len,
                           unsigned flags)
{
  size_t done = 0;
  uint32_t id = s->rx_head;
  while (done < len && id != TOE_NONE) {
    struct rxb *b = &d->rxb[id];
    size_t k = b->len < len - done ? b->len : len - done;
    memcpy(buf + done, toe_buf_ptr(d, id) + b->off, k);
    done += k;
    if (flags & TOE_MSG_PEEK) {
      id = b->next;
      continue;
    }
    b->off += (uint32_t)k;
    b->len -= (uint32_t)k;
    s->rx_bytes -= k;
    if (b->len == 0) {
      uint32_t next = b->next;
      rxq_pop(d, s);
      toe_fq_return(d, id); /* the device may lend it again: receive credit */
      id = next;
    }
  }
  return (ssize_t)done;
}

static ssize_t dgram_recv(struct toe_dev *d, struct sock *s, uint8_t *buf, size_t len,
                          unsigned flags, struct sockaddr *from, socklen_t *fromlen,
                          struct toe_rxmeta *meta)
{
  size_t done = 0, full = 0;
  uint32_t id = s->rx_head;
  toe_sa_out(&d->rxb[id].from, from, fromlen);
  if (meta) {
    const struct rxb *h = &d->rxb[id];
    meta->flags = h->mflags;
    meta->dst = h->mdst;
    meta->tos = h->mtos;
    meta->ttl = h->mttl;
    meta->time_ns = h->mtime;
  }
  for (;;) {
    struct rxb *b = &d->rxb[id];
    size_t k = b->len < len - done ? b->len : len - done;
    if (k)
      memcpy(buf + done, toe_buf_ptr(d, id) + b->off, k);
    done += k;
    full += b->len;
    bool last = !b->more;
    uint32_t next = b->next;
    if (!(flags & TOE_MSG_PEEK)) {
      rxq_pop(d, s);
      toe_fq_return(d, id); /* bytes beyond len are discarded, as recvfrom(2) does */
    }
    if (last || next == TOE_NONE)
      break;
    id = next;
  }
  if (meta)
    meta->full_len = full;
  return (ssize_t)done;
}

ssize_t toe_recv(toe_dev *d, int sd, void *buf, size_t len, unsigned flags)
{
  return toe_recvmsg(d, sd, buf, len, flags, NULL, NULL, NULL);
}

ssize_t toe_recvfrom(toe_dev *d, int sd, void *buf, size_t len, unsigned flags,
                     struct sockaddr *from, socklen_t *fromlen)
{
  return toe_recvmsg(d, sd, buf, len, flags, from, fromlen, NULL);
}

ssize_t toe_recvmsg(toe_dev *d, int sd, void *buf, size_t len, unsigned flags,
                    struct sockaddr *from, socklen_t *fromlen, struct toe_rxmeta *meta)
{
  if (meta)
    memset(meta, 0, sizeof(*meta));
  if (!d)
    return -TOE_EBADF;
  if (len && !buf)
    return -TOE_EINVAL;
  ssize_t rc;
  struct sock *s = toe_sock_enter(d, sd);
  if (!s) {
    rc = -TOE_EBADF;
  } else if (s->state == S_LISTEN) {
    rc = -TOE_EINVAL;
  } else if (s->type == TOE_SOCK_STREAM) {
    rc = stream_empty_result(s);
    if (rc > 0) {
      rc = stream_recv(d, s, buf, len, flags);
      if (from && fromlen)
        toe_sa_out(&s->peer, from, fromlen);
      if (meta)
        meta->full_len = (size_t)rc;
    }
  } else {
    rc = dgram_empty_result(s);
    if (rc > 0)
      rc = dgram_recv(d, s, buf, len, flags, from, fromlen, meta);
  }
  if (s)
    toe_sock_update(d, s);
  toe_dev_unlock(d);
  return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Zero-copy receive                                                                          */

ssize_t toe_recv_zc(toe_dev *d, int sd, struct toe_zc *zc)
{
  if (!d)
    return -TOE_EBADF;
  if (!zc)
    return -TOE_EINVAL;
  memset(zc, 0, sizeof(*zc));
  zc->id = TOE_NONE;
  ssize_t rc;
  struct sock *s = toe_sock_enter(d, sd);
  if (!s) {
    rc = -TOE_EBADF;
  } else if (s->state == S_LISTEN) {
    rc = -TOE_EINVAL;
  } else {
    rc = s->type == TOE_SOCK_STREAM ? stream_empty_result(s) : dgram_empty_result(s);
    if (rc > 0) {
      uint32_t id = rxq_pop(d, s);
      struct rxb *b = &d->rxb[id];
      d->bstate[id] = B_APP;
      zc->data = toe_buf_ptr(d, id) + b->off;
      zc->len = b->len;
      zc->flags = b->more ? TOE_ZC_MORE : 0;
      zc->id = id;
      if (s->type == TOE_SOCK_DGRAM) {
        socklen_t fl = sizeof(zc->from);
        toe_sa_out(&b->from, (struct sockaddr *)&zc->from, &fl);
      }
      rc = (ssize_t)b->len;
    }
  }
  if (s)
    toe_sock_update(d, s);
  toe_dev_unlock(d);
  return rc;
}

int toe_recv_zc_release(toe_dev *d, const struct toe_zc *zc)
{
  if (!d)
    return -TOE_EBADF;
  if (!zc)
    return -TOE_EINVAL;
  toe_dev_lock(d);
  int rc = -TOE_EINVAL;
  if (zc->id < d->rx_count && d->bstate[zc->id] == B_APP &&
      zc->data == toe_buf_ptr(d, zc->id) + d->rxb[zc->id].off) {
    toe_fq_return(d, zc->id);
    rc = 0;
  }
  toe_dev_progress(d);
  toe_dev_unlock(d);
  return rc;
}
