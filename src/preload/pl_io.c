/*
 * libtoe-preload: the data path (send/recv and friends, read/write, readv/writev, sendmsg/
 * recvmsg, sendmmsg/recvmmsg, sendfile, splice) and epoll_wait for the sets the kernel serves
 * (poll and select are in pl_poll.c). docs/interception.md.
 *
 * An offloaded socket's data goes through libtoe: one copy into the shared region on send, one
 * out of it on receive. Blocking calls wait on the placeholder with the real poll(), so signals
 * interrupt them as they would interrupt the kernel's (EINTR, or a restart under SA_RESTART),
 * and SO_RCVTIMEO / SO_SNDTIMEO bound them. After every call the placeholder is brought up to
 * date (pl_reflect), so a level-triggered poll never reports a socket that has nothing.
 */
#define _GNU_SOURCE

#include "preload/pl_msg.h"
#include "preload/preload.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/syscall.h>
#include <unistd.h>

static int set_errno(int e)
{
  errno = e;
  return -1;
}

#define BOUNCE_SIZE 65536u
/* sendfile: the most asked of the send space at a time (TOE_SEND_RUN_MAX buffers and more) */
#define SENDFILE_CHUNK (1u << 20)

/* A per-thread buffer for scatter/gather of datagrams and for sendfile/splice. */
static char *bounce(void)
{
  static __thread char *buf;
  if (!buf)
    buf = malloc(BOUNCE_SIZE);
  return buf;
}

/* ------------------------------------------------------------------------------------------ */
/* Receive                                                                                    */

/* Serves a zombie (ps locked): the bytes it kept, then its error once, then EOF. */
static ssize_t zombie_recv(struct psock *ps, void *buf, size_t len, int flags)
{
  if (ps->listening)
    return -ENOTCONN;
  if (ps->type == SOCK_STREAM && ps->zoff < ps->zlen) {
    size_t n = ps->zlen - ps->zoff < len ? ps->zlen - ps->zoff : len;
    memcpy(buf, ps->zbuf + ps->zoff, n);
    if (!(flags & MSG_PEEK))
      ps->zoff += n;
    return (ssize_t)n;
  }
  if (ps->pend_err) {
    int e = ps->pend_err;
    ps->pend_err = 0;
    return -e;
  }
  return ps->type == SOCK_STREAM ? 0 : -ECONNRESET;
}

/* pl_recv_ps, and what the device said of the datagram in *meta (cleared first; NULL: not
 * wanted). *cmask gets the control messages the socket asked for (recvmsg), read under its lock. */
static ssize_t recv_ps_meta(int fd, struct psock *ps, void *buf, size_t len, int flags,
                            struct sockaddr *from, socklen_t *fromlen, struct toe_rxmeta *meta,
                            unsigned *cmask)
{
  struct toe_rxmeta mbuf;
  if (!meta)
    meta = &mbuf;
  memset(meta, 0, sizeof(*meta));
  if (cmask)
    *cmask = 0;
  int st = pl_enter_fd(fd, ps);
  if (st == PS_CAND)
    return R.recvfrom(fd, buf, len, flags, from, fromlen);
  if (st == PS_ORPHAN)
    return set_errno(ENOTCONN);
  if (st != PS_OFF && st != PS_ZOMBIE)
    return R.recvfrom(fd, buf, len, flags, from, fromlen);
  if (flags & (MSG_OOB | MSG_ERRQUEUE)) {
    pthread_mutex_unlock(&ps->mu);
    return set_errno(flags & MSG_OOB ? EINVAL : EAGAIN);
  }
  bool stream = ps->type == SOCK_STREAM;
  if (stream && fromlen)
    *fromlen = 0; /* no address for a connected stream (as the kernel) */
  unsigned tf = (flags & MSG_PEEK) ? TOE_MSG_PEEK : 0;
  size_t got = 0;
  for (;;) {
    ssize_t r;
    if (stream && (r = pl_inh_read(ps, (char *)buf + got, len - got, flags)) > 0) {
      /* received before a fork or exec shared the connection (pl_inherit.c) */
    } else if (atomic_load(&ps->state) == PS_ZOMBIE) {
      r = zombie_recv(ps, (char *)buf + got, len - got, flags);
    } else if (ps->pend_err) {
      r = -ps->pend_err;
      ps->pend_err = 0;
      pl_reflect(ps);
    } else if (ps->listening) {
      r = -ENOTCONN;
    } else if (stream && len == 0) {
      r = 0;
    } else {
      r = toe_recvmsg(ps->pdev->dev, ps->sd, (char *)buf + got, len - got, tf, stream ? NULL : from,
                      stream ? NULL : fromlen, meta);
      pl_reflect(ps);
      /* recv(MSG_TRUNC) on a datagram socket returns its real length, as Linux's UDP does */
      if (r >= 0 && !stream && (flags & MSG_TRUNC) && meta->full_len > (size_t)r)
        r = (ssize_t)meta->full_len;
    }
    bool may_wait = !ps->nonblock && !(flags & MSG_DONTWAIT);
    if (r >= 0 && !stream && cmask)
      *cmask = pl_cmsg_mask(ps);
    if (r > 0) {
      got += (size_t)r;
      if (!(flags & MSG_WAITALL) || !stream || (flags & MSG_PEEK) || got >= len)
        break;
      continue;
    }
    if (r == 0)
      break; /* end of stream */
    if (r != -EAGAIN) {
      if (got > 0) {
        if (atomic_load(&ps->state) == PS_OFF && r != -ENOTCONN)
          ps->pend_err = (int)-r; /* reported by the next call, as the kernel does */
        break;
      }
      pthread_mutex_unlock(&ps->mu);
      return pl_ret(r);
    }
    /* nothing now */
    if (got > 0 && !((flags & MSG_WAITALL) && may_wait))
      break;
    if (!may_wait) {
      pthread_mutex_unlock(&ps->mu);
      return got ? (ssize_t)got : set_errno(EAGAIN);
    }
    int tmo = ps->rcvtimeo_ms;
    pthread_mutex_unlock(&ps->mu);
    pl_wait_mark(fd, 1); /* a fork meanwhile keeps the data coming to this reader */
    int w = pl_wait_fd(fd, POLLIN, tmo);
    pl_wait_mark(fd, -1);
    if (w <= 0)
      return got ? (ssize_t)got : set_errno(w == 0 ? EAGAIN : -w);
    st = pl_enter_fd(fd, ps);
    if (st != PS_OFF && st != PS_ZOMBIE)
      return got ? (ssize_t)got : set_errno(EBADF);
  }
  pthread_mutex_unlock(&ps->mu);
  return (ssize_t)got;
}

ssize_t pl_recv_ps(int fd, struct psock *ps, void *buf, size_t len, int flags,
                   struct sockaddr *from, socklen_t *fromlen)
{
  return recv_ps_meta(fd, ps, buf, len, flags, from, fromlen, NULL, NULL);
}

static ssize_t recv_dispatch(int fd, struct psock *ps, void *buf, size_t len, int flags,
                             struct sockaddr *from, socklen_t *fromlen)
{
  return pl_recv_ps(fd, ps, buf, len, flags, from, fromlen);
}

/* ------------------------------------------------------------------------------------------ */
/* Send                                                                                       */

static void sigpipe(int flags)
{
  if (!(flags & MSG_NOSIGNAL))
    raise(SIGPIPE);
}

/* A UDP candidate sending to `dst`: decides it (ps not locked). 0: now offloaded and locked; 1:
 * stays on the kernel (forgotten); < 0: error. */
static int cand_udp_dst(int fd, struct psock *ps, const struct sockaddr *dst, socklen_t dstlen)
{
  if (ps->type != SOCK_DGRAM || !dst || dstlen < (socklen_t)sizeof(struct sockaddr_in) ||
      dst->sa_family != AF_INET)
    return 1;
  pthread_mutex_lock(&ps->mu);
  if (atomic_load(&ps->state) != PS_CAND) {
    int st = atomic_load(&ps->state);
    if (st == PS_OFF || st == PS_ZOMBIE)
      return 0;
    pthread_mutex_unlock(&ps->mu);
    return 1;
  }
  const struct sockaddr_in *sin = (const struct sockaddr_in *)dst;
  if (pl_rules_match(&pl_cfg.rules, PL_K_UDP, sin->sin_addr.s_addr, ntohs(sin->sin_port))) {
    int rc = pl_switch(fd, ps);
    if (rc == 0) {
      PL_DBG("fd %d: udp sendto -> device", fd);
      if (ps->bind_deferred) {
        ps->bind_deferred = false;
        rc = toe_bind(ps->pdev->dev, ps->sd, (struct sockaddr *)&ps->bind_addr,
                      sizeof(ps->bind_addr));
        if (rc < 0) {
          pl_reflect(ps);
          pthread_mutex_unlock(&ps->mu);
          return rc;
        }
      }
      return 0;
    }
    if (rc < 0) {
      pthread_mutex_unlock(&ps->mu);
      return rc;
    }
  }
  PL_DBG("fd %d: udp sendto -> kernel", fd);
  int rc = 0;
  if (ps->bind_deferred) {
    ps->bind_deferred = false;
    if (R.bind(fd, (const struct sockaddr *)&ps->bind_addr, sizeof(ps->bind_addr)) < 0)
      rc = -errno;
  }
  pthread_mutex_unlock(&ps->mu);
  pl_tab_lock();
  bool mine = pl_fd_get(fd) == ps;
  if (mine)
    pl_fd_unmap(fd);
  pl_tab_unlock();
  if (mine)
    pl_psock_unref(ps);
  return rc < 0 ? rc : 1;
}

/* Where a send stands in the caller's vector: piece i, of which off bytes were taken. */
struct vcur {
  const struct iovec *iov;
  int n, i;
  size_t off;
};

/* Moves the cursor k bytes on (no more than what is left). */
static void vcur_skip(struct vcur *c, size_t k)
{
  while (k && c->i < c->n) {
    size_t left = c->iov[c->i].iov_len - c->off;
    if (k < left) {
      c->off += k;
      return;
    }
    k -= left;
    c->i++;
    c->off = 0;
  }
}

/* One stream submission from the cursor: the whole rest of the vector in one toe_sendv (one SQE
 * when the send buffers allow), or, when the cursor sits inside a piece, that piece's rest
 * first (more follows: the device may hold it for the next). */
static ssize_t stream_sendv(struct psock *ps, const struct vcur *c, unsigned tf)
{
  toe_dev *dev = ps->pdev->dev;
  if (c->off == 0)
    return toe_sendv(dev, ps->sd, c->iov + c->i, c->n - c->i, tf, NULL, 0);
  const struct iovec *p = &c->iov[c->i];
  unsigned more = c->i + 1 < c->n ? TOE_MSG_MORE : 0;
  return toe_send(dev, ps->sd, (const char *)p->iov_base + c->off, p->iov_len - c->off, tf | more);
}

/* Sends the vector iov[0..n) of `len` bytes in all on an offloaded socket; ps locked on entry
 * (OFF or ZOMBIE), unlocked on return. As the kernel's tcp_sendmsg: a blocking socket waits until
 * everything is taken (or a timeout, a signal, an error cuts it short and the bytes taken so far
 * are returned); a non-blocking one returns the prefix the send space took, or EAGAIN if none. A
 * datagram is the whole vector, in one piece or not at all. */
static ssize_t off_sendv(int fd, struct psock *ps, const struct iovec *iov, int n, size_t len,
                         int flags, const struct sockaddr *dst, socklen_t dstlen)
{
  bool stream = ps->type == SOCK_STREAM;
  unsigned tf = (flags & MSG_MORE) ? TOE_MSG_MORE : 0;
  if (stream)
    dst = NULL; /* ignored on a connected stream, as the kernel does */
  struct vcur cur = {.iov = iov, .n = n, .i = 0, .off = 0};
  size_t done = 0;
  for (;;) {
    bool nb = ps->nonblock || (flags & MSG_DONTWAIT);
    ssize_t r;
    if (flags & MSG_OOB) {
      r = -EOPNOTSUPP;
    } else if (atomic_load(&ps->state) == PS_ZOMBIE) {
      r = ps->pend_err ? -ps->pend_err : stream ? -EPIPE : -ENETDOWN;
      ps->pend_err = 0;
    } else if (ps->pend_err) {
      r = -ps->pend_err;
      ps->pend_err = 0;
      pl_reflect(ps);
    } else if (stream) {
      r = stream_sendv(ps, &cur, tf);
      pl_reflect(ps);
    } else {
      r = toe_sendv(ps->pdev->dev, ps->sd, iov, n, 0, dst, dst ? dstlen : 0);
      pl_reflect(ps);
    }
    if (r >= 0) {
      done += (size_t)r;
      if (!stream || done >= len || r == 0)
        break;
      vcur_skip(&cur, (size_t)r);
      continue;
    }
    if (r != -EAGAIN) {
      if (done > 0) {
        if (atomic_load(&ps->state) == PS_OFF && r != -EPIPE)
          ps->pend_err = (int)-r;
        break;
      }
      pthread_mutex_unlock(&ps->mu);
      if (r == -EPIPE && stream)
        sigpipe(flags);
      return pl_ret(r);
    }
    if (nb) {
      if (done > 0)
        break;
      pthread_mutex_unlock(&ps->mu);
      return set_errno(EAGAIN);
    }
    int tmo = ps->sndtimeo_ms;
    pthread_mutex_unlock(&ps->mu);
    int w = pl_wait_fd(fd, POLLOUT, tmo);
    if (w <= 0)
      return done ? (ssize_t)done : set_errno(w == 0 ? EAGAIN : -w);
    int st = pl_enter_fd(fd, ps);
    if (st != PS_OFF && st != PS_ZOMBIE)
      return done ? (ssize_t)done : set_errno(EBADF);
  }
  pthread_mutex_unlock(&ps->mu);
  return (ssize_t)done;
}

static ssize_t off_send(int fd, struct psock *ps, const void *buf, size_t len, int flags,
                        const struct sockaddr *dst, socklen_t dstlen)
{
  struct iovec one = {.iov_base = (void *)(uintptr_t)buf, .iov_len = len};
  return off_sendv(fd, ps, &one, 1, len, flags, dst, dstlen);
}

/* pl_send_ps for a vector of `len` bytes in all (checked by the caller). */
static ssize_t sendv_ps(int fd, struct psock *ps, const struct iovec *iov, int n, size_t len,
                        int flags, const struct sockaddr *dst, socklen_t dstlen)
{
  struct msghdr m = {.msg_name = (void *)(uintptr_t)dst,
                     .msg_namelen = dst ? dstlen : 0,
                     .msg_iov = (struct iovec *)(uintptr_t)iov,
                     .msg_iovlen = (size_t)n};
  int st = pl_enter_fd(fd, ps);
  if (st == PS_CAND) {
    int rc = cand_udp_dst(fd, ps, dst, dstlen);
    if (rc < 0)
      return pl_ret(rc);
    if (rc == 1)
      return R.sendmsg(fd, &m, flags);
    st = atomic_load(&ps->state); /* offloaded now, locked */
  }
  if (st == PS_ORPHAN) {
    errno = ENOTCONN;
    return -1;
  }
  if (st != PS_OFF && st != PS_ZOMBIE)
    return R.sendmsg(fd, &m, flags);
  return off_sendv(fd, ps, iov, n, len, flags, dst, dstlen);
}

ssize_t pl_send_ps(int fd, struct psock *ps, const void *buf, size_t len, int flags,
                   const struct sockaddr *dst, socklen_t dstlen)
{
  int st = pl_enter_fd(fd, ps);
  if (st == PS_CAND) {
    int rc = cand_udp_dst(fd, ps, dst, dstlen);
    if (rc < 0)
      return pl_ret(rc);
    if (rc == 1)
      return R.sendto(fd, buf, len, flags, dst, dstlen);
    st = atomic_load(&ps->state); /* offloaded now, locked */
  }
  if (st == PS_ORPHAN) {
    errno = ENOTCONN;
    return -1;
  }
  if (st != PS_OFF && st != PS_ZOMBIE)
    return R.sendto(fd, buf, len, flags, dst, dstlen);
  return off_send(fd, ps, buf, len, flags, dst, dstlen);
}

/* ------------------------------------------------------------------------------------------ */
/* Interposers                                                                                */

PL_API ssize_t recv(int fd, void *buf, size_t len, int flags)
{
  struct psock *ps = pl_ours(fd);
  if (!ps)
    return R.recv(fd, buf, len, flags);
  return recv_dispatch(fd, ps, buf, len, flags, NULL, NULL);
}

PL_API ssize_t recvfrom(int fd, void *__restrict buf, size_t len, int flags, __SOCKADDR_ARG from_,
                        socklen_t *__restrict fromlen)
{
  struct psock *ps = pl_ours(fd);
  if (!ps)
    return R.recvfrom(fd, buf, len, flags, PL_SA(from_), fromlen);
  return recv_dispatch(fd, ps, buf, len, flags, PL_SA(from_), fromlen);
}

PL_API ssize_t read(int fd, void *buf, size_t len)
{
  struct psock *ps = pl_ours(fd);
  if (!ps)
    return R.read(fd, buf, len);
  return recv_dispatch(fd, ps, buf, len, 0, NULL, NULL);
}

PL_API ssize_t send(int fd, const void *buf, size_t len, int flags)
{
  struct psock *ps = pl_ours(fd);
  if (!ps)
    return R.send(fd, buf, len, flags);
  return pl_send_ps(fd, ps, buf, len, flags, NULL, 0);
}

PL_API ssize_t sendto(int fd, const void *buf, size_t len, int flags, __CONST_SOCKADDR_ARG dst_,
                      socklen_t dstlen)
{
  struct psock *ps = pl_ours(fd);
  if (!ps)
    return R.sendto(fd, buf, len, flags, PL_SA(dst_), dstlen);
  return pl_send_ps(fd, ps, buf, len, flags, PL_SA(dst_), dstlen);
}

PL_API ssize_t write(int fd, const void *buf, size_t len)
{
  struct psock *ps = pl_ours(fd);
  if (!ps)
    return R.write(fd, buf, len);
  return pl_send_ps(fd, ps, buf, len, 0, NULL, 0);
}

/* ---- vectors ---- */

/* Sends a vector on fd (ours): handed to libtoe whole (toe_sendv gathers it straight into the
 * shared region, one SQE per run of send buffers), a stream's or a datagram's alike. */
static ssize_t send_vec(int fd, struct psock *ps, const struct iovec *iov, int n, int flags,
                        const struct sockaddr *dst, socklen_t dstlen)
{
  if (n < 0 || n > IOV_MAX)
    return set_errno(EINVAL);
  if (n == 1)
    return pl_send_ps(fd, ps, iov[0].iov_base, iov[0].iov_len, flags, dst, dstlen);
  ssize_t total = pl_iov_total(iov, n);
  if (total < 0)
    return set_errno(EINVAL);
  for (int i = 0; i < n; i++)
    if (iov[i].iov_len && !iov[i].iov_base)
      return set_errno(EFAULT); /* as the kernel's copy from a bad address */
  return sendv_ps(fd, ps, iov, n, (size_t)total, flags, dst, dstlen);
}

/* Receives into a vector on fd (ours); *meta and *cmask as recv_ps_meta. */
static ssize_t recv_vec(int fd, struct psock *ps, const struct iovec *iov, int n, int flags,
                        struct sockaddr *from, socklen_t *fromlen, struct toe_rxmeta *meta,
                        unsigned *cmask)
{
  if (n < 0 || n > IOV_MAX)
    return set_errno(EINVAL);
  if (n == 1)
    return recv_ps_meta(fd, ps, iov[0].iov_base, iov[0].iov_len, flags, from, fromlen, meta, cmask);
  ssize_t total = pl_iov_total(iov, n);
  if (total < 0)
    return set_errno(EINVAL);
  char *b = bounce();
  if (!b)
    return set_errno(ENOMEM);
  size_t want = (size_t)total < BOUNCE_SIZE ? (size_t)total : BOUNCE_SIZE;
  ssize_t r = recv_ps_meta(fd, ps, b, want, flags, from, fromlen, meta, cmask);
  if (r > 0) /* r may be the datagram's whole length (MSG_TRUNC): scatter what was copied */
    (void)pl_iov_scatter(b, (size_t)r < want ? (size_t)r : want, iov, n);
  return r;
}

PL_API ssize_t readv(int fd, const struct iovec *iov, int n)
{
  struct psock *ps = pl_ours_decided(fd);
  if (!ps)
    return R.readv(fd, iov, n);
  return recv_vec(fd, ps, iov, n, 0, NULL, NULL, NULL, NULL);
}

PL_API ssize_t writev(int fd, const struct iovec *iov, int n)
{
  struct psock *ps = pl_ours_decided(fd);
  if (!ps)
    return R.writev(fd, iov, n);
  return send_vec(fd, ps, iov, n, 0, NULL, 0);
}

/* Descriptors about to be passed to another process (SCM_RIGHTS): a waiter there cannot be served
 * here, so an epoll set goes back to the kernel and an offloaded socket is mirrored for good. */
static void passing_fds(const struct msghdr *msg)
{
  if (!msg || !msg->msg_control || msg->msg_controllen < sizeof(struct cmsghdr))
    return;
  for (struct cmsghdr *c = CMSG_FIRSTHDR((struct msghdr *)msg); c;
       c = CMSG_NXTHDR((struct msghdr *)msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || c->cmsg_len < CMSG_LEN(0))
      continue;
    size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < n; i++) {
      int pfd;
      memcpy(&pfd, CMSG_DATA(c) + i * sizeof(int), sizeof(pfd));
      pl_eps_fallback(pfd);
      pl_pin_fd(pfd);
    }
  }
}

PL_API ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
  struct psock *ps = pl_ours(fd);
  if (!ps) {
    if (msg && msg->msg_controllen)
      passing_fds(msg);
    return R.sendmsg(fd, msg, flags);
  }
  if (!msg)
    return set_errno(EFAULT);
  const struct sockaddr *dst = msg->msg_name;
  socklen_t dstlen = msg->msg_namelen;
  if (atomic_load(&ps->state) == PS_CAND) {
    int rc = cand_udp_dst(fd, ps, dst, dstlen);
    if (rc < 0)
      return pl_ret(rc);
    if (rc == 1)
      return R.sendmsg(fd, msg, flags); /* control messages and all */
    pthread_mutex_unlock(&ps->mu);
  }
  if (msg->msg_control && msg->msg_controllen) {
    /* Control messages: what the device does anyway passes (IP_PKTINFO naming its address),
     * the rest is refused, never dropped on the way (pl_opts.c). */
    int st = pl_enter_fd(fd, ps);
    int rc = 0;
    if (st == PS_OFF || st == PS_ZOMBIE) {
      rc = pl_send_cmsg_check(ps, msg);
      pthread_mutex_unlock(&ps->mu);
    } else if (st == PS_CAND) {
      return R.sendmsg(fd, msg, flags);
    }
    if (rc < 0)
      return pl_ret(rc);
  }
  return send_vec(fd, ps, msg->msg_iov, (int)msg->msg_iovlen, flags, dst, dst ? dstlen : 0);
}

PL_API ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
  struct psock *ps = pl_ours_decided(fd);
  if (!ps)
    return R.recvmsg(fd, msg, flags);
  if (!msg)
    return set_errno(EFAULT);
  socklen_t nl = msg->msg_name ? msg->msg_namelen : 0;
  struct toe_rxmeta meta;
  unsigned cmask = 0;
  /* MSG_TRUNC as a flag would make the return value the datagram's length: recvmsg reports
   * truncation in msg_flags instead, so the bytes copied are what is scattered */
  ssize_t r = recv_vec(fd, ps, msg->msg_iov, (int)msg->msg_iovlen, flags & ~MSG_TRUNC,
                       msg->msg_name ? (struct sockaddr *)msg->msg_name : NULL,
                       msg->msg_name ? &nl : NULL, &meta, &cmask);
  if (r >= 0) {
    msg->msg_namelen = msg->msg_name ? nl : 0;
    msg->msg_flags = 0;
    if (ps->type == SOCK_DGRAM && meta.full_len > (size_t)r) {
      msg->msg_flags |= MSG_TRUNC; /* the rest of the datagram was discarded */
      if (flags & MSG_TRUNC)
        r = (ssize_t)meta.full_len;
    }
    pl_cmsg_build(cmask, &meta, msg); /* IP_PKTINFO, ...; MSG_CTRUNC when they do not fit */
  }
  return r;
}

PL_API int sendmmsg(int fd, struct mmsghdr *vec, unsigned int n, int flags)
{
  struct psock *ps = pl_ours(fd);
  if (!ps) {
    for (unsigned i = 0; vec && i < n; i++)
      if (vec[i].msg_hdr.msg_controllen)
        passing_fds(&vec[i].msg_hdr);
    return R.sendmmsg(fd, vec, n, flags);
  }
  unsigned i;
  for (i = 0; i < n; i++) {
    ssize_t r = sendmsg(fd, &vec[i].msg_hdr, flags | (i ? MSG_DONTWAIT : 0));
    if (r < 0)
      return i ? (int)i : -1;
    vec[i].msg_len = (unsigned)r;
  }
  return (int)i;
}

PL_API int recvmmsg(int fd, struct mmsghdr *vec, unsigned int n, int flags,
                    struct timespec *timeout)
{
  struct psock *ps = pl_ours_decided(fd);
  if (!ps)
    return R.recvmmsg(fd, vec, n, flags, timeout);
  unsigned i;
  int f = flags & ~MSG_WAITFORONE;
  for (i = 0; i < n; i++) {
    ssize_t r = recvmsg(fd, &vec[i].msg_hdr, f);
    if (r < 0)
      return i ? (int)i : -1;
    vec[i].msg_len = (unsigned)r;
    if (flags & MSG_WAITFORONE)
      f |= MSG_DONTWAIT;
    if (r == 0 && ps->type == SOCK_STREAM)
      return (int)i + 1;
  }
  return (int)i;
}

/* ---- fortified variants (_FORTIFY_SOURCE) ---- */

PL_API ssize_t __read_chk(int fd, void *buf, size_t len, size_t buflen);
PL_API ssize_t __read_chk(int fd, void *buf, size_t len, size_t buflen)
{
  if (len > buflen)
    abort();
  return read(fd, buf, len);
}

PL_API ssize_t __recv_chk(int fd, void *buf, size_t len, size_t buflen, int flags);
PL_API ssize_t __recv_chk(int fd, void *buf, size_t len, size_t buflen, int flags)
{
  if (len > buflen)
    abort();
  return recv(fd, buf, len, flags);
}

PL_API ssize_t __recvfrom_chk(int fd, void *buf, size_t len, size_t buflen, int flags,
                              struct sockaddr *from, socklen_t *fromlen);
PL_API ssize_t __recvfrom_chk(int fd, void *buf, size_t len, size_t buflen, int flags,
                              struct sockaddr *from, socklen_t *fromlen)
{
  if (len > buflen)
    abort();
  struct psock *ps = pl_ours(fd);
  if (!ps)
    return R.recvfrom(fd, buf, len, flags, from, fromlen);
  return recv_dispatch(fd, ps, buf, len, flags, from, fromlen);
}

/* ---- sendfile, splice ---- */

/* sendfile's one copy: each piece of the file is read (pread at *pos, or read at the file position
 * when pos is NULL) straight into send space of the shared region, then committed as one SEND.
 * For a connected stream socket ps, locked on entry (PS_OFF, no pending error), unlocked on
 * return. Returns the bytes sent, or -1 with errno (nothing sent). It never waits: when the
 * region's send space is not there (*stuck set) the caller goes on through toe_send, whose limits
 * are the ones the socket's POLLOUT reports (a partly filled buffer may take bytes that a
 * reservation of whole buffers cannot, and an edge-triggered waiter would never be woken). */
static ssize_t off_sendfile(struct psock *ps, int in, off_t *pos, size_t count, bool *stuck)
{
  size_t done = 0;
  *stuck = false;
  while (done < count) {
    struct toe_txbuf tb;
    size_t want = count - done < SENDFILE_CHUNK ? count - done : SENDFILE_CHUNK;
    ssize_t rc = toe_send_buf_get(ps->pdev->dev, ps->sd, want, &tb);
    if (rc == 0) {
      ssize_t r = pos ? R.pread(in, tb.data, tb.cap, *pos) : R.read(in, tb.data, tb.cap);
      if (r <= 0) {
        int e = errno;
        (void)toe_send_buf_cancel(ps->pdev->dev, &tb);
        pl_reflect(ps);
        pthread_mutex_unlock(&ps->mu);
        if (r < 0 && done == 0)
          return set_errno(e);
        return (ssize_t)done;
      }
      rc = toe_send_buf_commit(ps->pdev->dev, &tb, (size_t)r, 0, NULL, 0);
      if (rc >= 0) {
        done += (size_t)r;
        if (pos)
          *pos += r;
        if ((size_t)r < tb.cap)
          break; /* the end of the file */
        continue;
      }
      if (!pos)
        lseek(in, -(off_t)r, SEEK_CUR); /* give back what was read and not sent */
    }
    pl_reflect(ps);
    pthread_mutex_unlock(&ps->mu);
    if (rc == -EAGAIN) {
      *stuck = true;
      return (ssize_t)done;
    }
    if (done > 0)
      return (ssize_t)done;
    if (rc == -EPIPE)
      sigpipe(0);
    return pl_ret(rc);
  }
  pl_reflect(ps);
  pthread_mutex_unlock(&ps->mu);
  return (ssize_t)done;
}

static ssize_t sendfile_impl(int out, int in, off_t *off, size_t count)
{
  struct psock *ps = pl_fd_get(out);
  struct psock *pin = pl_fd_get(in);
  if (pin && atomic_load(&pin->state) != PS_CAND)
    return set_errno(EINVAL); /* the kernel needs an mmap-able input too */
  if (!ps || atomic_load(&ps->state) == PS_CAND)
    return R.sendfile(out, in, off, count);
  if (count > SSIZE_MAX)
    count = SSIZE_MAX; /* the kernel's limit on one transfer is lower still */
  char *b = NULL;
  size_t done = 0;
  off_t pos = off ? *off : 0;
  bool region = ps->type == SOCK_STREAM;
  while (done < count) {
    /* One copy into the region while its send space is there (off_sendfile) ... */
    int st = region ? pl_enter_fd(out, ps) : PS_CAND;
    if (st == PS_OFF && !ps->pend_err && !ps->listening) {
      bool stuck;
      ssize_t r = off_sendfile(ps, in, off ? &pos : NULL, count - done, &stuck);
      if (r < 0) {
        if (done)
          break;
        return -1;
      }
      done += (size_t)r;
      if (!stuck || done >= count)
        break;
    } else {
      if (st == PS_OFF || st == PS_ZOMBIE)
        pthread_mutex_unlock(&ps->mu); /* a zombie or an error: toe_send reports it */
      region = false;
    }
    /* ... else a piece through the bounce buffer and toe_send, which waits as the socket's
     * POLLOUT says (and reports errors); then the region again. */
    if (!b && !(b = bounce()))
      return done ? (ssize_t)done : set_errno(ENOMEM);
    size_t want = count - done < BOUNCE_SIZE ? count - done : BOUNCE_SIZE;
    ssize_t r = off ? R.pread(in, b, want, pos) : R.read(in, b, want);
    if (r < 0) {
      if (done)
        break;
      return -1;
    }
    if (r == 0)
      break;
    ssize_t w = pl_send_ps(out, ps, b, (size_t)r, 0, NULL, 0);
    if (w < 0) {
      if (!off)
        lseek(in, -(off_t)r, SEEK_CUR); /* give back what was read and not sent */
      if (done)
        break;
      return -1;
    }
    if (w < r && !off)
      lseek(in, -(off_t)(r - w), SEEK_CUR);
    done += (size_t)w;
    pos += w;
    if (w < r)
      break;
  }
  if (off)
    *off = pos;
  return (ssize_t)done;
}

PL_API ssize_t sendfile(int out, int in, off_t *off, size_t count)
{
  pl_init();
  return sendfile_impl(out, in, off, count);
}

PL_API ssize_t sendfile64(int out, int in, off_t *off, size_t count)
{
  pl_init();
  return sendfile_impl(out, in, off, count);
}

/* splice with an offloaded socket on one side and a pipe on the other, through a buffer. From
 * the socket: peek, write to the pipe what it takes, then consume that much (nothing is lost
 * when the pipe is full). To the socket: what is read from the pipe is sent completely. */
PL_API ssize_t splice(int in, loff_t *off_in, int out, loff_t *off_out, size_t len,
                      unsigned int flags)
{
  pl_init();
  struct psock *pi = pl_fd_get(in), *po = pl_fd_get(out);
  bool oi = pi && atomic_load(&pi->state) != PS_CAND;
  bool oo = po && atomic_load(&po->state) != PS_CAND;
  if (!oi && !oo)
    return R.splice(in, off_in, out, off_out, len, flags);
  if ((oi && off_in) || (oo && off_out) || (oi && oo))
    return set_errno(EINVAL);
  char *b = bounce();
  if (!b)
    return set_errno(ENOMEM);
  size_t want = len < BOUNCE_SIZE ? len : BOUNCE_SIZE;
  int nbf = (flags & SPLICE_F_NONBLOCK) ? MSG_DONTWAIT : 0;
  if (oi) {
    ssize_t r = recv_dispatch(in, pi, b, want, MSG_PEEK | nbf, NULL, NULL);
    if (r <= 0)
      return r;
    ssize_t w = off_out ? pwrite(out, b, (size_t)r, *off_out) : R.write(out, b, (size_t)r);
    if (w <= 0)
      return w;
    if (off_out)
      *off_out += w;
    return recv_dispatch(in, pi, b, (size_t)w, 0, NULL, NULL);
  }
  ssize_t r = off_in ? pread(in, b, want, *off_in) : R.read(in, b, want);
  if (r <= 0)
    return r;
  if (off_in)
    *off_in += r;
  size_t done = 0;
  while (done < (size_t)r) {
    ssize_t w = pl_send_ps(out, po, b + done, (size_t)r - done, 0, NULL, 0);
    if (w < 0) {
      if (errno == EAGAIN) {
        pl_wait_fd(out, POLLOUT, 1000);
        continue;
      }
      return done ? (ssize_t)done : -1;
    }
    done += (size_t)w;
  }
  return (ssize_t)done;
}

/* What a spin that ended in an error returns, as the call would have. */
static int spun_error(int r)
{
  errno = -r;
  return -1;
}

/* ------------------------------------------------------------------------------------------ */
/* epoll_wait, epoll_pwait, epoll_pwait2: the placeholders are ordinary pollable descriptors, so
 * the kernel's epoll serves them; a set that holds offloaded descriptors (pl_ep_marked) spins
 * first when TOE_SPIN_US or a profile asks for it. */

struct epoll_args {
  int epfd;
  struct epoll_event *evs;
  int max;
  const sigset_t *mask;
};

static int epoll_ready(void *arg)
{
  struct epoll_args *a = arg;
  int r = R.epoll_pwait(a->epfd, a->evs, a->max, 0, a->mask);
  return r < 0 ? -errno : r;
}

static int epoll_spin(int epfd, struct epoll_event *evs, int max, const sigset_t *mask)
{
  if (!pl_cfg.drain || max <= 0 || !pl_ep_marked(epfd))
    return 0;
  struct epoll_args a = {epfd, evs, max, mask};
  return pl_spin_wait(epoll_ready, &a);
}

PL_API int epoll_wait(int epfd, struct epoll_event *evs, int max, int timeout)
{
  pl_init();
  if (pl_eps_served(epfd))
    return pl_eps_wait(epfd, evs, max, timeout < 0 ? -1 : timeout, NULL);
  if (timeout != 0) {
    int r = epoll_spin(epfd, evs, max, NULL);
    if (r != 0)
      return r > 0 ? r : spun_error(r);
  }
  return R.epoll_wait(epfd, evs, max, timeout);
}

PL_API int epoll_pwait(int epfd, struct epoll_event *evs, int max, int timeout,
                       const sigset_t *mask)
{
  pl_init();
  if (pl_eps_served(epfd))
    return pl_eps_wait(epfd, evs, max, timeout < 0 ? -1 : timeout, mask);
  if (timeout != 0) {
    int r = epoll_spin(epfd, evs, max, mask);
    if (r != 0)
      return r > 0 ? r : spun_error(r);
  }
  return R.epoll_pwait(epfd, evs, max, timeout, mask);
}

PL_API int epoll_pwait2(int epfd, struct epoll_event *evs, int max, const struct timespec *tmo,
                        const sigset_t *mask)
{
  pl_init();
  if (pl_eps_served(epfd)) {
    if (tmo && (tmo->tv_sec < 0 || tmo->tv_nsec < 0 || tmo->tv_nsec >= 1000000000)) {
      errno = EINVAL;
      return -1;
    }
    /* Milliseconds, rounded up (a served wait sleeps in epoll_pwait). */
    int64_t ms = !tmo ? -1
                 : tmo->tv_sec > INT32_MAX / 1000
                     ? INT32_MAX
                     : (int64_t)tmo->tv_sec * 1000 + (tmo->tv_nsec + 999999) / 1000000;
    return pl_eps_wait(epfd, evs, max, ms, mask);
  }
  if (!tmo || tmo->tv_sec || tmo->tv_nsec) {
    int r = epoll_spin(epfd, evs, max, mask);
    if (r != 0)
      return r > 0 ? r : spun_error(r);
  }
  if (R.epoll_pwait2)
    return R.epoll_pwait2(epfd, evs, max, tmo, mask);
  return (int)R.syscall(SYS_epoll_pwait2, epfd, evs, max, tmo, mask, _NSIG / 8);
}
