/*
 * libtoe-preload: socket, bind, listen, connect, accept, shutdown, close, dup, fcntl, ioctl,
 * socket options and names (docs/interception.md, "What is intercepted").
 *
 * Where a socket is decided (pl_rules.c for the rules):
 *   TCP  bind() is recorded, not done; connect() matches "tcp" rules against the destination,
 *        listen() "listen" rules against the recorded local address. The recorded bind is then
 *        done on whichever stack the socket goes to (so a bind error shows at connect/listen).
 *   UDP  bind() to a port matches "udp" rules against the local address at once; bind() to port
 *        0 is recorded; connect() and sendto() match "udp" rules against the destination.
 * A socket that goes to the kernel is forgotten: from then on every call on it is the kernel's.
 */
#define _GNU_SOURCE

#include "preload/preload.h"
#include "toe/abi.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static int set_errno(int e)
{
  errno = e;
  return -1;
}

/* ------------------------------------------------------------------------------------------ */
/* Candidates                                                                                 */

/* Forgets a candidate (its descriptor stays the kernel socket it is). ps not locked. */
static void cand_release(int fd, struct psock *ps)
{
  pl_tab_lock();
  struct psock *cur = pl_fd_get(fd);
  bool mine = cur == ps;
  if (mine)
    pl_fd_unmap(fd);
  pl_tab_unlock();
  if (mine)
    pl_psock_unref(ps);
}

/* The candidate goes to the kernel: do the recorded bind there (ps locked). 0 or -errno. */
static int cand_to_kernel(int fd, struct psock *ps)
{
  if (ps->bind_deferred) {
    ps->bind_deferred = false;
    if (R.bind(fd, (const struct sockaddr *)&ps->bind_addr, sizeof(ps->bind_addr)) < 0)
      return -errno;
  }
  return 0;
}

/* Drops a stale mapping at a descriptor number the kernel just handed out (its previous owner
 * was closed by a path we do not see, e.g. inside libc). */
static void forget_stale(int fd)
{
  if (!pl_fd_get(fd))
    return;
  pl_tab_lock();
  struct psock *old = pl_fd_unmap(fd);
  pl_tab_unlock();
  if (old)
    pl_psock_unref(old);
}

static bool is_sin(const struct sockaddr *sa, socklen_t len)
{
  return sa && len >= (socklen_t)sizeof(struct sockaddr_in) && sa->sa_family == AF_INET;
}

static const char *fmt_sin(const struct sockaddr_in *sin, char *buf, size_t len)
{
  const uint8_t *a = (const uint8_t *)&sin->sin_addr.s_addr;
  snprintf(buf, len, "%u.%u.%u.%u:%u", a[0], a[1], a[2], a[3], ntohs(sin->sin_port));
  return buf;
}

PL_API int socket(int domain, int type, int protocol)
{
  pl_init();
  int fd = R.socket(domain, type, protocol);
  if (fd < 0)
    return fd;
  forget_stale(fd);
  if (pl_cfg.disabled || domain != AF_INET)
    return fd;
  int base = type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
  bool tcp = base == SOCK_STREAM && (protocol == 0 || protocol == IPPROTO_TCP);
  bool udp = base == SOCK_DGRAM && (protocol == 0 || protocol == IPPROTO_UDP);
  if (!tcp && !udp)
    return fd;
  pl_tab_lock();
  struct psock *ps = pl_psock_new(base, PS_CAND);
  if (ps && pl_fd_map(fd, ps) < 0) {
    atomic_store(&ps->state, PS_FREE);
    ps = NULL; /* out of range: it stays a plain kernel socket (ps leaks into the free pool) */
  }
  pl_tab_unlock();
  return fd;
}

/* ------------------------------------------------------------------------------------------ */
/* bind, listen, connect                                                                      */

PL_API int bind(int fd, __CONST_SOCKADDR_ARG addr_, socklen_t len)
{
  struct psock *ps = pl_ours(fd);
  const struct sockaddr *addr = PL_SA(addr_);
  if (!ps)
    return R.bind(fd, addr, len);
  int st = pl_enter_fd(fd, ps);
  if (st == PS_CAND) {
    pthread_mutex_lock(&ps->mu);
    if (atomic_load(&ps->state) != PS_CAND) {
      pthread_mutex_unlock(&ps->mu);
      return bind(fd, addr_, len);
    }
    if (!is_sin(addr, len) || ps->bind_deferred) {
      pthread_mutex_unlock(&ps->mu);
      if (ps->bind_deferred)
        return set_errno(EINVAL);
      return R.bind(fd, addr, len); /* the kernel gives the error */
    }
    const struct sockaddr_in *sin = (const struct sockaddr_in *)addr;
    char b[32];
    if (ps->type == SOCK_STREAM || sin->sin_port == 0) {
      ps->bind_addr = *sin;
      ps->bind_deferred = true;
      pthread_mutex_unlock(&ps->mu);
      PL_DBG("fd %d: bind %s recorded", fd, fmt_sin(sin, b, sizeof(b)));
      return 0;
    }
    if (pl_rules_match(&pl_cfg.rules, PL_K_UDP, sin->sin_addr.s_addr, ntohs(sin->sin_port))) {
      int rc = pl_switch(fd, ps);
      if (rc == 0) {
        PL_DBG("fd %d: udp bind %s -> device", fd, fmt_sin(sin, b, sizeof(b)));
        rc = toe_bind(ps->pdev->dev, ps->sd, addr, len);
        pl_reflect(ps);
        pthread_mutex_unlock(&ps->mu);
        return (int)pl_ret(rc);
      }
      if (rc < 0) {
        pthread_mutex_unlock(&ps->mu);
        return (int)pl_ret(rc);
      }
    }
    PL_DBG("fd %d: udp bind %s -> kernel", fd, fmt_sin(sin, b, sizeof(b)));
    pthread_mutex_unlock(&ps->mu);
    cand_release(fd, ps);
    return R.bind(fd, addr, len);
  }
  if (st == PS_ORPHAN)
    return set_errno(EINVAL);
  if (st == PS_ZOMBIE) {
    pthread_mutex_unlock(&ps->mu);
    return set_errno(EINVAL);
  }
  if (st != PS_OFF)
    return R.bind(fd, addr, len);
  int rc = toe_bind(ps->pdev->dev, ps->sd, addr, len);
  pl_reflect(ps);
  pthread_mutex_unlock(&ps->mu);
  return (int)pl_ret(rc);
}

/* toe_listen on an OFF socket (locked), binding it first if needed (as the kernel binds an
 * unbound socket to an ephemeral port at listen). */
static int off_listen(struct psock *ps, int backlog)
{
  toe_dev *dev = ps->pdev->dev;
  if (ps->type != SOCK_STREAM)
    return -EOPNOTSUPP;
  int rc = toe_listen(dev, ps->sd, backlog);
  if (rc == -TOE_EINVAL && !ps->listening) {
    struct sockaddr_in any = {.sin_family = AF_INET};
    if (toe_bind(dev, ps->sd, (struct sockaddr *)&any, sizeof(any)) == 0)
      rc = toe_listen(dev, ps->sd, backlog);
  }
  if (rc == 0)
    ps->listening = true;
  pl_reflect(ps);
  return rc;
}

PL_API int listen(int fd, int backlog)
{
  struct psock *ps = pl_ours(fd);
  if (!ps)
    return R.listen(fd, backlog);
  int st = pl_enter_fd(fd, ps);
  if (st == PS_CAND) {
    pthread_mutex_lock(&ps->mu);
    if (atomic_load(&ps->state) != PS_CAND) {
      pthread_mutex_unlock(&ps->mu);
      return listen(fd, backlog);
    }
    struct sockaddr_in local = {.sin_family = AF_INET};
    if (ps->bind_deferred)
      local = ps->bind_addr;
    char b[32];
    if (ps->type == SOCK_STREAM &&
        pl_rules_match(&pl_cfg.rules, PL_K_LISTEN, local.sin_addr.s_addr, ntohs(local.sin_port))) {
      int rc = pl_switch(fd, ps);
      if (rc == 0) {
        PL_DBG("fd %d: listen %s -> device", fd, fmt_sin(&local, b, sizeof(b)));
        rc = toe_bind(ps->pdev->dev, ps->sd, (struct sockaddr *)&local, sizeof(local));
        ps->bind_deferred = false;
        if (rc == 0)
          rc = off_listen(ps, backlog);
        else
          pl_reflect(ps);
        pthread_mutex_unlock(&ps->mu);
        return (int)pl_ret(rc);
      }
      if (rc < 0) {
        pthread_mutex_unlock(&ps->mu);
        return (int)pl_ret(rc);
      }
    }
    PL_DBG("fd %d: listen %s -> kernel", fd, fmt_sin(&local, b, sizeof(b)));
    int rc = cand_to_kernel(fd, ps);
    pthread_mutex_unlock(&ps->mu);
    cand_release(fd, ps);
    if (rc < 0)
      return set_errno(-rc);
    return R.listen(fd, backlog);
  }
  if (st == PS_ORPHAN)
    return set_errno(EINVAL);
  if (st == PS_ZOMBIE) {
    pthread_mutex_unlock(&ps->mu);
    return set_errno(EINVAL);
  }
  if (st != PS_OFF)
    return R.listen(fd, backlog);
  int rc = off_listen(ps, backlog);
  pthread_mutex_unlock(&ps->mu);
  return (int)pl_ret(rc);
}

/* connect on an OFF socket, ps locked on entry, unlocked on return. */
static int off_connect(int fd, struct psock *ps, const struct sockaddr *addr, socklen_t len)
{
  toe_dev *dev = ps->pdev->dev;
  int rc = toe_connect(dev, ps->sd, addr, len);
  if (ps->type == SOCK_DGRAM || rc != -TOE_EINPROGRESS) {
    if (rc == 0)
      ps->connected = !(addr && addr->sa_family == AF_UNSPEC);
    pl_reflect(ps);
    pthread_mutex_unlock(&ps->mu);
    return (int)pl_ret(rc);
  }
  if (ps->nonblock) {
    pl_reflect(ps);
    pthread_mutex_unlock(&ps->mu);
    return set_errno(EINPROGRESS);
  }
  /* Blocking connect: wait for the handshake through the placeholder (interruptible). */
  for (;;) {
    pl_reflect(ps);
    if (atomic_load(&ps->state) != PS_OFF) {
      int e = ps->pend_err;
      ps->pend_err = 0;
      pthread_mutex_unlock(&ps->mu);
      return e ? set_errno(e) : 0;
    }
    int ev = toe_sock_events(ps->pdev->dev, ps->sd);
    if (ev > 0 && (ev & (TOE_POLLOUT | TOE_POLLERR | TOE_POLLHUP))) {
      int64_t v = 0;
      int e = ps->pend_err;
      ps->pend_err = 0;
      if (!e && toe_getsockopt(ps->pdev->dev, ps->sd, TOE_OPT_ERROR, &v) == 0 && v < 0)
        e = (int)-v;
      if (!e)
        ps->connected = true;
      pl_reflect(ps);
      pthread_mutex_unlock(&ps->mu);
      return e ? set_errno(e) : 0;
    }
    int tmo = ps->sndtimeo_ms;
    pthread_mutex_unlock(&ps->mu);
    int w = pl_wait_fd(fd, POLLOUT, tmo);
    if (w == 0)
      return set_errno(EINPROGRESS);
    if (w < 0)
      return set_errno(-w);
    int st = pl_enter_fd(fd, ps);
    if (st != PS_OFF && st != PS_ZOMBIE)
      return set_errno(EBADF);
  }
}

PL_API int connect(int fd, __CONST_SOCKADDR_ARG addr_, socklen_t len)
{
  struct psock *ps = pl_ours(fd);
  const struct sockaddr *addr = PL_SA(addr_);
  if (!ps)
    return R.connect(fd, addr, len);
  int st = pl_enter_fd(fd, ps);
  if (st == PS_CAND) {
    pthread_mutex_lock(&ps->mu);
    if (atomic_load(&ps->state) != PS_CAND) {
      pthread_mutex_unlock(&ps->mu);
      return connect(fd, addr_, len);
    }
    char b[32];
    if (is_sin(addr, len)) {
      const struct sockaddr_in *sin = (const struct sockaddr_in *)addr;
      unsigned kind = ps->type == SOCK_STREAM ? PL_K_TCP : PL_K_UDP;
      if (pl_rules_match(&pl_cfg.rules, kind, sin->sin_addr.s_addr, ntohs(sin->sin_port))) {
        int rc = pl_switch(fd, ps);
        if (rc == 0) {
          PL_DBG("fd %d: %s connect %s -> device", fd, kind == PL_K_TCP ? "tcp" : "udp",
                 fmt_sin(sin, b, sizeof(b)));
          if (ps->bind_deferred) {
            ps->bind_deferred = false;
            rc = toe_bind(ps->pdev->dev, ps->sd, (struct sockaddr *)&ps->bind_addr,
                          sizeof(ps->bind_addr));
            if (rc < 0) {
              pl_reflect(ps);
              pthread_mutex_unlock(&ps->mu);
              return (int)pl_ret(rc);
            }
          }
          return off_connect(fd, ps, addr, len);
        }
        if (rc < 0) {
          pthread_mutex_unlock(&ps->mu);
          return (int)pl_ret(rc);
        }
      }
      PL_DBG("fd %d: connect %s -> kernel", fd, fmt_sin(sin, b, sizeof(b)));
    }
    int rc = cand_to_kernel(fd, ps);
    pthread_mutex_unlock(&ps->mu);
    cand_release(fd, ps);
    if (rc < 0)
      return set_errno(-rc);
    return R.connect(fd, addr, len);
  }
  if (st == PS_ORPHAN)
    return set_errno(ENOTCONN);
  if (st == PS_ZOMBIE) {
    int e = ps->pend_err;
    ps->pend_err = 0;
    bool had = ps->zhas_peer;
    pthread_mutex_unlock(&ps->mu);
    return set_errno(e ? e : had ? EISCONN : ECONNABORTED);
  }
  if (st != PS_OFF)
    return R.connect(fd, addr, len);
  return off_connect(fd, ps, addr, len);
}

/* ------------------------------------------------------------------------------------------ */
/* accept                                                                                     */

static int pl_accept_impl(int fd, struct sockaddr *addr, socklen_t *alen, int flags)
{
  struct psock *ps = pl_fd_get(fd);
  if (!ps) {
    int nfd = R.accept4(fd, addr, alen, flags);
    if (nfd >= 0)
      forget_stale(nfd);
    return nfd;
  }
  int st = pl_enter_fd(fd, ps);
  if (st == PS_CAND) {
    int nfd = R.accept4(fd, addr, alen, flags);
    if (nfd >= 0)
      forget_stale(nfd);
    return nfd;
  }
  if (st == PS_ORPHAN)
    return set_errno(EINVAL);
  if (st == PS_ZOMBIE) {
    int e = ps->pend_err;
    ps->pend_err = 0;
    pthread_mutex_unlock(&ps->mu);
    return set_errno(e ? e : EINVAL);
  }
  if (st != PS_OFF)
    return set_errno(EBADF);
  if (!ps->acc_demand) {
    ps->acc_demand = true; /* this process serves its listener (shared: toe_accept asks) */
    if (ps->acc_lazy)
      ps->interest = UINT32_MAX;
  }
  if (flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)) {
    pthread_mutex_unlock(&ps->mu);
    return set_errno(EINVAL);
  }
  for (;;) {
    struct pdev *p = ps->pdev;
    struct sockaddr_in peer;
    socklen_t plen = sizeof(peer);
    int nsd = toe_accept(p->dev, ps->sd, (struct sockaddr *)&peer, &plen);
    if (nsd >= 0) {
      /* Registered on the device like a switched socket. */
      pthread_mutex_lock(&p->mu);
      bool ok = !p->dead;
      if (ok)
        p->live++;
      pthread_mutex_unlock(&p->mu);
      int a = -1, afd = -1, bfd = -1;
      int rc = ok ? 0 : -ENETDOWN;
      if (rc == 0) {
        rc = pl_pair(&a, &afd, &bfd, flags & SOCK_CLOEXEC, flags & SOCK_NONBLOCK);
      }
      struct psock *ns = NULL;
      if (rc == 0) {
        forget_stale(a);
        pl_tab_lock();
        ns = pl_psock_new(SOCK_STREAM, PS_CAND);
        if (ns && pl_fd_map(a, ns) < 0) {
          atomic_store(&ns->state, PS_FREE);
          ns = NULL;
        }
        pl_tab_unlock();
        if (!ns)
          rc = -EMFILE;
      }
      if (rc < 0) {
        toe_close(p->dev, nsd);
        if (ok)
          pl_dev_release(p);
        if (a >= 0) {
          R.close(a);
          R.close(afd);
          R.close(bfd);
        }
        pl_reflect(ps);
        pthread_mutex_unlock(&ps->mu);
        return set_errno(-rc);
      }
      pthread_mutex_lock(&ns->mu);
      ns->pdev = p;
      ns->sd = nsd;
      ns->afd = afd;
      ns->bfd = bfd;
      ns->nonblock = flags & SOCK_NONBLOCK;
      ns->connected = true;
      ns->shown = SH_OUT;
      ns->interest = UINT32_MAX;
      atomic_store(&ns->state, PS_OFF);
      pl_dev_link(p, ns);
      pl_reflect(ns);
      pthread_mutex_unlock(&ns->mu);
      pl_reflect(ps);
      pthread_mutex_unlock(&ps->mu);
      if (addr && alen) {
        socklen_t n = *alen < plen ? *alen : plen;
        memcpy(addr, &peer, n);
        *alen = plen;
      }
      if (pl_cfg.debug) {
        char b[32];
        PL_DBG("fd %d: accepted fd %d from %s", fd, a, fmt_sin(&peer, b, sizeof(b)));
      }
      return a;
    }
    if (nsd != -TOE_EAGAIN) {
      pl_reflect(ps);
      pthread_mutex_unlock(&ps->mu);
      return (int)pl_ret(nsd);
    }
    pl_reflect(ps);
    bool nb = ps->nonblock;
    int tmo = ps->rcvtimeo_ms;
    pthread_mutex_unlock(&ps->mu);
    if (nb)
      return set_errno(EAGAIN);
    pl_wait_mark(fd, 1); /* a fork meanwhile leaves the listener serving us (pl_fork.c) */
    int w = pl_wait_fd(fd, POLLIN, tmo);
    pl_wait_mark(fd, -1);
    if (w == 0)
      return set_errno(EAGAIN);
    if (w < 0)
      return set_errno(-w);
    st = pl_enter_fd(fd, ps);
    if (st == PS_ZOMBIE) {
      int e = ps->pend_err;
      ps->pend_err = 0;
      pthread_mutex_unlock(&ps->mu);
      return set_errno(e ? e : EINVAL);
    }
    if (st != PS_OFF)
      return set_errno(EBADF);
  }
}

PL_API int accept(int fd, __SOCKADDR_ARG addr_, socklen_t *__restrict alen)
{
  pl_init();
  return pl_accept_impl(fd, PL_SA(addr_), alen, 0);
}

PL_API int accept4(int fd, __SOCKADDR_ARG addr_, socklen_t *__restrict alen, int flags)
{
  pl_init();
  return pl_accept_impl(fd, PL_SA(addr_), alen, flags);
}

/* ------------------------------------------------------------------------------------------ */
/* shutdown, close, dup                                                                       */

PL_API int shutdown(int fd, int how)
{
  struct psock *ps = pl_ours(fd);
  if (!ps)
    return R.shutdown(fd, how);
  int st = pl_enter_fd(fd, ps);
  if (st == PS_CAND)
    return R.shutdown(fd, how);
  if (st == PS_ORPHAN)
    return set_errno(ENOTCONN);
  if (st == PS_ZOMBIE) {
    pthread_mutex_unlock(&ps->mu);
    return set_errno(ENOTCONN);
  }
  if (st != PS_OFF)
    return set_errno(EBADF);
  int rc;
  if (how < SHUT_RD || how > SHUT_RDWR) {
    rc = -EINVAL;
  } else if (ps->type == SOCK_DGRAM) {
    rc = ps->connected ? 0 : -ENOTCONN;
  } else if (ps->listening) {
    rc = 0; /* the kernel accepts it (and stops the listener); ours keeps listening */
  } else {
    rc = toe_shutdown(ps->pdev->dev, ps->sd, how);
    if (rc == 0 && how != SHUT_RD)
      ps->shut_wr = true;
    pl_reflect(ps);
  }
  pthread_mutex_unlock(&ps->mu);
  return (int)pl_ret(rc);
}

PL_API int close(int fd)
{
  if (!pl_ours(fd) || pl_foreign_child()) {
    pl_ep_forget(fd);
    pl_eps_forget(fd);
    return R.close(fd);
  }
  pl_tab_lock();
  struct psock *ps = pl_fd_unmap(fd);
  pl_tab_unlock();
  int rc = R.close(fd);
  if (ps)
    pl_psock_unref(ps);
  return rc;
}

/* Forgets every descriptor in [first, last] (table lock not held). */
static void forget_range(unsigned first, unsigned last)
{
  if (first > (unsigned)INT32_MAX)
    return;
  for (int fd = pl_fd_next((int)first); fd >= 0 && (unsigned)fd <= last; fd = pl_fd_next(fd + 1)) {
    pl_tab_lock();
    struct psock *ps = pl_fd_unmap(fd);
    pl_tab_unlock();
    if (ps)
      pl_psock_unref(ps);
  }
}

/* The application closes every descriptor in [first, last], the library's own among them (a
 * daemon's closefrom(3): sshd's session child closes all it does not know before it serves SFTP).
 * First, while the numbers still name what the library thinks: the sockets numbered there are
 * forgotten (their placeholders and stashes closed by us), and a session whose descriptors are
 * there is ended, as at exit. Left alive, its pump would find it dead a moment later and libtoe
 * would close its numbers again, by then the application's: the SFTP server's upload file, closed
 * under it after two writes (EBADF, "No such file" at the client). */
static void before_close_range(unsigned first, unsigned last)
{
  if (first > last || pl_foreign_child())
    return;
  forget_range(first, last);
  pl_eps_forget_range(first, last);
  struct pdev *p = pl_dev_before_close_range(first, last);
  if (p) {
    PL_DBG("descriptors %u..%u closed by the application: its device session ends first", first,
           last);
    pl_dev_finish(p);
  }
}

static bool fd_in(int fd, unsigned first, unsigned last)
{
  return fd >= 0 && (unsigned)fd >= first && (unsigned)fd <= last;
}

/* After: the private descriptors of sockets numbered outside the range (a placeholder's ends, a
 * stash) that were inside it are gone; their numbers are forgotten, never closed again. */
static void after_close_range(unsigned first, unsigned last)
{
  if (first > last || pl_foreign_child())
    return;
  for (struct psock *ps = pl_psock_all(); ps; ps = ps->all_next) {
    pthread_mutex_lock(&ps->mu);
    if (atomic_load(&ps->state) != PS_FREE) {
      if (fd_in(ps->afd, first, last))
        ps->afd = -1;
      if (fd_in(ps->bfd, first, last))
        ps->bfd = -1;
      if (ps->stash && fd_in(ps->stash_fd, first, last))
        ps->stash_fd = -1; /* the mapping stays */
    }
    pthread_mutex_unlock(&ps->mu);
  }
  pl_eps_private_closed(first, last);
}

PL_API int close_range(unsigned int first, unsigned int last, int flags)
{
  pl_init();
  /* Only a valid call that closes: CLOSE_RANGE_CLOEXEC closes nothing now. */
  bool closes = !(flags & ~(CLOSE_RANGE_UNSHARE | CLOSE_RANGE_CLOEXEC)) &&
                !(flags & CLOSE_RANGE_CLOEXEC) && first <= last;
  if (closes)
    before_close_range(first, last);
  int rc = R.close_range ? R.close_range(first, last, flags)
                         : (int)R.syscall(SYS_close_range, first, last, flags);
  if (closes)
    after_close_range(first, last);
  return rc;
}

PL_API void closefrom(int lowfd)
{
  pl_init();
  static void (*real_closefrom)(int);
  if (!real_closefrom)
    real_closefrom = (void (*)(int))dlsym(RTLD_NEXT, "closefrom");
  if (lowfd >= 0)
    before_close_range((unsigned)lowfd, ~0u);
  if (real_closefrom)
    real_closefrom(lowfd);
  else
    R.syscall(SYS_close_range, (unsigned)lowfd, ~0u, 0);
  if (lowfd >= 0)
    after_close_range((unsigned)lowfd, ~0u);
}

/* A new number for the same open file: maps it to the same socket. A candidate is given to the
 * kernel first (a switch could not follow both numbers). */
static void before_dup(int oldfd)
{
  /* A served epoll set under a second number: the kernel serves it from now on (the library
   * keeps its offloaded members per number). */
  pl_eps_fallback(oldfd);
  struct psock *ps = pl_fd_get(oldfd);
  if (!ps || atomic_load(&ps->state) != PS_CAND || pl_foreign_child())
    return;
  pthread_mutex_lock(&ps->mu);
  int rc = 0;
  if (atomic_load(&ps->state) == PS_CAND)
    rc = cand_to_kernel(oldfd, ps);
  pthread_mutex_unlock(&ps->mu);
  (void)rc;
  cand_release(oldfd, ps);
  PL_DBG("fd %d: duplicated before a decision -> kernel", oldfd);
}

static void after_dup(int oldfd, int newfd)
{
  if (newfd != oldfd)
    pl_eps_forget(newfd); /* an epoll set there was closed by the dup */
  struct psock *ps = pl_fd_get(oldfd);
  if ((!ps && !pl_fd_get(newfd)) || pl_foreign_child())
    return;
  pl_tab_lock();
  struct psock *prev = pl_fd_unmap(newfd);
  if (ps && atomic_load(&ps->state) != PS_CAND && atomic_load(&ps->state) != PS_FREE)
    pl_fd_map(newfd, ps);
  pl_tab_unlock();
  if (prev)
    pl_psock_unref(prev);
}

PL_API int dup(int oldfd)
{
  pl_init();
  before_dup(oldfd);
  int nfd = R.dup(oldfd);
  if (nfd >= 0)
    after_dup(oldfd, nfd);
  return nfd;
}

PL_API int dup2(int oldfd, int newfd)
{
  pl_init();
  if (oldfd == newfd)
    return R.dup2(oldfd, newfd);
  before_dup(oldfd);
  int rc = R.dup2(oldfd, newfd);
  if (rc >= 0)
    after_dup(oldfd, newfd);
  return rc;
}

PL_API int dup3(int oldfd, int newfd, int flags)
{
  pl_init();
  if (oldfd != newfd)
    before_dup(oldfd);
  int rc = R.dup3(oldfd, newfd, flags);
  if (rc >= 0)
    after_dup(oldfd, newfd);
  return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* fcntl, ioctl                                                                               */

static int pl_fcntl_impl(int (*real)(int, int, ...), int fd, int cmd, unsigned long arg)
{
  struct psock *ps = pl_fd_get(fd);
  if (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC)
    pl_eps_fallback(fd); /* as before_dup, for an epoll set */
  if (!ps)
    return real(fd, cmd, arg);
  switch (cmd) {
  case F_DUPFD:
  case F_DUPFD_CLOEXEC: {
    before_dup(fd);
    int nfd = real(fd, cmd, arg);
    if (nfd >= 0)
      after_dup(fd, nfd);
    return nfd;
  }
  case F_SETFL: {
    int st = pl_enter_fd(fd, ps);
    int rc = real(fd, cmd, arg);
    if (st == PS_OFF || st == PS_ZOMBIE) {
      if (rc == 0)
        ps->nonblock = (arg & O_NONBLOCK) != 0;
      pthread_mutex_unlock(&ps->mu);
    }
    return rc;
  }
  default:
    /* F_GETFL, F_GETFD, F_SETFD and the rest act on the placeholder (for an offloaded socket)
     * or the kernel socket: both are right. */
    return real(fd, cmd, arg);
  }
}

PL_API int fcntl(int fd, int cmd, ...)
{
  pl_init();
  va_list ap;
  va_start(ap, cmd);
  unsigned long arg = va_arg(ap, unsigned long);
  va_end(ap);
  return pl_fcntl_impl(R.fcntl, fd, cmd, arg);
}

PL_API int fcntl64(int fd, int cmd, ...)
{
  pl_init();
  va_list ap;
  va_start(ap, cmd);
  unsigned long arg = va_arg(ap, unsigned long);
  va_end(ap);
  return pl_fcntl_impl(R.fcntl64, fd, cmd, arg);
}

PL_API int ioctl(int fd, unsigned long req, ...)
{
  pl_init();
  va_list ap;
  va_start(ap, req);
  void *arg = va_arg(ap, void *);
  va_end(ap);
  struct psock *ps = pl_fd_get(fd);
  if (!ps)
    return R.ioctl(fd, req, arg);
  int st = pl_enter_fd(fd, ps);
  if (st != PS_OFF && st != PS_ZOMBIE) {
    if (st == PS_ORPHAN && (req == FIONREAD || req == TIOCOUTQ))
      return set_errno(ENOTCONN);
    return R.ioctl(fd, req, arg);
  }
  int rc = 0;
  switch (req) {
  case FIONBIO: {
    int on = arg ? *(int *)arg : 0;
    rc = R.ioctl(fd, FIONBIO, arg);
    if (rc == 0)
      ps->nonblock = on != 0;
    break;
  }
  case FIONREAD: {
    int64_t v = 0;
    if (!arg) {
      rc = set_errno(EFAULT);
    } else if (ps->listening) {
      rc = set_errno(EINVAL);
    } else if (st == PS_ZOMBIE) {
      *(int *)arg = (int)(ps->zlen - ps->zoff);
    } else {
      int r = toe_getsockopt(ps->pdev->dev, ps->sd, TOE_OPT_NREAD, &v);
      if (r < 0)
        rc = (int)pl_ret(r);
      else
        *(int *)arg = v > INT32_MAX ? INT32_MAX : (int)v;
    }
    break;
  }
  case TIOCOUTQ: /* SIOCOUTQ: bytes not yet sent; the device holds them, so 0 here */
    if (arg)
      *(int *)arg = 0;
    break;
  case SIOCATMARK:
    if (arg)
      *(int *)arg = 0;
    break;
  default:
    rc = R.ioctl(fd, req, arg);
    break;
  }
  pthread_mutex_unlock(&ps->mu);
  return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Socket options                                                                             */

struct pl_opt *pl_opt_find(struct psock *ps, int level, int name)
{
  for (int i = 0; i < ps->nopts; i++)
    if (ps->opts[i].level == level && ps->opts[i].name == name)
      return &ps->opts[i];
  return NULL;
}

void pl_opt_store(struct psock *ps, int level, int name, const void *val, socklen_t len)
{
  /* SO_TIMESTAMP and SO_TIMESTAMPNS are one switch in two formats: setting either replaces the
   * other (Linux's sock_set_timestamp), so only the last one set counts. */
  const unsigned ts = PL_CM_TS | PL_CM_TS_NEW | PL_CM_TSNS | PL_CM_TSNS_NEW;
  if (pl_cmsg_bit(level, name) & ts) {
    for (int i = 0; i < ps->nopts; i++)
      if ((pl_cmsg_bit(ps->opts[i].level, ps->opts[i].name) & ts) && ps->opts[i].name != name)
        memset(ps->opts[i].val, 0, sizeof(ps->opts[i].val));
  }
  struct pl_opt *o = pl_opt_find(ps, level, name);
  if (!o) {
    if (ps->nopts >= PL_OPTS_MAX)
      return;
    o = &ps->opts[ps->nopts++];
  }
  o->level = level;
  o->name = name;
  o->len = len > (socklen_t)sizeof(o->val) ? (socklen_t)sizeof(o->val) : len;
  memset(o->val, 0, sizeof(o->val));
  if (val)
    memcpy(o->val, val, o->len);
}

static int tv_to_ms(const void *val, socklen_t len)
{
  struct timeval tv;
  if (len < (socklen_t)sizeof(tv))
    return -2;
  memcpy(&tv, val, sizeof(tv));
  if (tv.tv_sec < 0 || tv.tv_usec < 0 || tv.tv_usec >= 1000000)
    return -2;
  if (tv.tv_sec == 0 && tv.tv_usec == 0)
    return -1; /* no timeout */
  long long ms = (long long)tv.tv_sec * 1000 + (tv.tv_usec + 999) / 1000;
  return ms > INT32_MAX ? INT32_MAX : (int)ms;
}

/* Says once per process and option that an option was refused (ENOPROTOOPT): the program may
 * carry on without it, and whoever reads its log should know why. */
static void refused_once(int fd, int level, int name, const char *why)
{
  static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
  static int seen[32][2];
  static int nseen;
  bool say = true;
  pthread_mutex_lock(&mu);
  for (int i = 0; i < nseen; i++)
    if (seen[i][0] == level && seen[i][1] == name)
      say = false;
  if (say && nseen < 32) {
    seen[nseen][0] = level;
    seen[nseen][1] = name;
    nseen++;
  }
  pthread_mutex_unlock(&mu);
  if (say || pl_cfg.debug)
    pl_log("fd %d: setsockopt level %d option %d refused with ENOPROTOOPT: %s (offloaded socket; "
           "docs/interception.md \"Socket options\")",
           fd, level, name, why);
}

PL_API int setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
  struct psock *ps = pl_ours(fd);
  if (!ps)
    return R.setsockopt(fd, level, name, val, len);
  int st = pl_enter_fd(fd, ps);
  if (st == PS_CAND) {
    int rc = R.setsockopt(fd, level, name, val, len);
    if (rc == 0) {
      pthread_mutex_lock(&ps->mu);
      if (atomic_load(&ps->state) == PS_CAND) {
        pl_opt_store(ps, level, name, val, len);
        if (level == SOL_SOCKET && (name == SO_RCVTIMEO || name == SO_SNDTIMEO)) {
          int ms = tv_to_ms(val, len);
          if (ms >= -1)
            *(name == SO_RCVTIMEO ? &ps->rcvtimeo_ms : &ps->sndtimeo_ms) = ms;
        }
      }
      pthread_mutex_unlock(&ps->mu);
    }
    return rc;
  }
  if (st == PS_ORPHAN)
    return set_errno(ENOTCONN);
  if (st != PS_OFF && st != PS_ZOMBIE)
    return R.setsockopt(fd, level, name, val, len);
  int rc = 0;
  bool cmsg_switch = false;
  if (!val && len) {
    rc = -EFAULT;
  } else if (level == SOL_SOCKET && (name == SO_RCVTIMEO || name == SO_SNDTIMEO)) {
    int ms = tv_to_ms(val, len);
    if (ms < -1)
      rc = -EINVAL;
    else
      *(name == SO_RCVTIMEO ? &ps->rcvtimeo_ms : &ps->sndtimeo_ms) = ms;
  } else if (level == IPPROTO_TCP && ps->type != SOCK_STREAM) {
    rc = -ENOPROTOOPT;
  } else if (level != SOL_SOCKET && level != IPPROTO_IP && level != IPPROTO_TCP &&
             level != IPPROTO_UDP) {
    rc = -ENOPROTOOPT;
  } else if (level == IPPROTO_UDP && ps->type != SOCK_DGRAM) {
    rc = -ENOPROTOOPT;
  } else {
    struct pl_opt o = {.level = level, .name = name};
    o.len = len > (socklen_t)sizeof(o.val) ? (socklen_t)sizeof(o.val) : len;
    if (val)
      memcpy(o.val, val, o.len);
    int64_t v;
    int opt = pl_toe_opt_of(level, name, &o, &v);
    int cls = pl_opt_class(ps->type, level, name, val, len);
    if (cls == PL_OC_CMSG) {
      if (len < (socklen_t)sizeof(int))
        rc = -EINVAL;
      else
        cmsg_switch = true; /* the device's TOE_OPT_RXMETA follows below */
    } else if (cls == PL_OC_REFUSE) {
      rc = -ENOPROTOOPT;
      refused_once(fd, level, name, "the device cannot do what it asks");
    } else if (cls == PL_OC_KEEP) {
      rc = len < (socklen_t)sizeof(int) && !(level == SOL_SOCKET && name == SO_BINDTODEVICE)
               ? -EINVAL
               : 0;
    } else if (level == IPPROTO_TCP && name == TCP_CONGESTION && !opt) {
      rc = -ENOENT; /* an algorithm the device does not have */
    } else if (opt && len < (socklen_t)sizeof(int)) {
      rc = -EINVAL;
    } else if (opt && st == PS_OFF) {
      rc = toe_setsockopt(ps->pdev->dev, ps->sd, opt, v);
    }
    /* SO_KEEPALIVE and SO_LINGER on UDP: the kernel accepts them, and they mean nothing there */
    if (rc == -TOE_ENOPROTOOPT && level == SOL_SOCKET && ps->type == SOCK_DGRAM &&
        (name == SO_KEEPALIVE || name == SO_LINGER))
      rc = 0;
  }
  struct pl_opt old;
  struct pl_opt *prev = cmsg_switch ? pl_opt_find(ps, level, name) : NULL;
  if (prev)
    old = *prev;
  if (rc == 0)
    pl_opt_store(ps, level, name, val, len);
  if (rc == 0 && cmsg_switch && st == PS_OFF && ps->type == SOCK_DGRAM) {
    /* The device describes datagrams while any of recvmsg's switches is on; one that cannot
     * (an older device) refuses the switch rather than leave it without effect. */
    int64_t want = pl_cmsg_mask(ps) ? 1 : 0;
    int r = toe_setsockopt(ps->pdev->dev, ps->sd, TOE_OPT_RXMETA, want);
    if (r < 0) {
      struct pl_opt *o = pl_opt_find(ps, level, name);
      if (o && prev)
        *o = old;
      else if (o)
        o->len = 0, memset(o->val, 0, sizeof(o->val));
      rc = r == -TOE_ENOPROTOOPT ? -ENOPROTOOPT : r;
      refused_once(fd, level, name, "the device cannot describe datagrams");
    }
  }
  pthread_mutex_unlock(&ps->mu);
  if (rc < 0)
    PL_DBG("fd %d: setsockopt %d/%d: %s", fd, level, name, strerror(-rc));
  return (int)pl_ret(rc);
}

/* Linux's default net.core.rmem_default/wmem_default: a UDP socket's buffer sizes until set. */
#define PL_UDP_DEFAULT_BUF 212992

static int put_int(void *val, socklen_t *len, int v)
{
  if (!len || !val)
    return -EFAULT;
  if ((int)*len < 0)
    return -EINVAL;
  socklen_t n = *len < (socklen_t)sizeof(int) ? *len : (socklen_t)sizeof(int);
  memcpy(val, &v, n);
  *len = n;
  return 0;
}

static int put_bytes(void *val, socklen_t *len, const void *src, socklen_t srclen)
{
  if (!len || !val)
    return -EFAULT;
  if ((int)*len < 0)
    return -EINVAL;
  socklen_t n = *len < srclen ? *len : srclen;
  memcpy(val, src, n);
  *len = n;
  return 0;
}

/* Linux's struct tcp_info, as far as we fill it (the kernel's grows; a caller passes the size it
 * knows and gets at most that). */
struct pl_tcp_info {
  uint8_t tcpi_state, tcpi_ca_state, tcpi_retransmits, tcpi_probes, tcpi_backoff, tcpi_options;
  uint8_t tcpi_wscale;
  uint8_t tcpi_flags;
  uint32_t tcpi_rto, tcpi_ato, tcpi_snd_mss, tcpi_rcv_mss;
  uint32_t tcpi_unacked, tcpi_sacked, tcpi_lost, tcpi_retrans, tcpi_fackets;
  uint32_t tcpi_last_data_sent, tcpi_last_ack_sent, tcpi_last_data_recv, tcpi_last_ack_recv;
  uint32_t tcpi_pmtu, tcpi_rcv_ssthresh, tcpi_rtt, tcpi_rttvar, tcpi_snd_ssthresh, tcpi_snd_cwnd;
  uint32_t tcpi_advmss, tcpi_reordering, tcpi_rcv_rtt, tcpi_rcv_space, tcpi_total_retrans;
  uint64_t tcpi_pacing_rate, tcpi_max_pacing_rate, tcpi_bytes_acked, tcpi_bytes_received;
  uint32_t tcpi_segs_out, tcpi_segs_in, tcpi_notsent_bytes, tcpi_min_rtt;
  uint32_t tcpi_data_segs_in, tcpi_data_segs_out;
  uint64_t tcpi_delivery_rate, tcpi_busy_time, tcpi_rwnd_limited, tcpi_sndbuf_limited;
  uint32_t tcpi_delivered, tcpi_delivered_ce;
  uint64_t tcpi_bytes_sent, tcpi_bytes_retrans;
  uint32_t tcpi_dsack_dups, tcpi_reord_seen, tcpi_rcv_ooopack, tcpi_snd_wnd;
};
_Static_assert(__builtin_offsetof(struct pl_tcp_info, tcpi_total_retrans) == 100,
               "Linux tcp_info layout");
_Static_assert(__builtin_offsetof(struct pl_tcp_info, tcpi_snd_wnd) == 228,
               "Linux tcp_info layout");

/* enum toe_tcp_state (toe/tcp.h) -> Linux's TCP_* state numbers */
static uint8_t linux_tcp_state(int s)
{
  static const uint8_t map[] = {7 /* CLOSED -> TCP_CLOSE */,
                                10 /* LISTEN */,
                                2 /* SYN_SENT */,
                                3 /* SYN_RECV */,
                                1 /* ESTABLISHED */,
                                4 /* FIN_WAIT1 */,
                                5 /* FIN_WAIT2 */,
                                8 /* CLOSE_WAIT */,
                                11 /* CLOSING */,
                                9 /* LAST_ACK */,
                                6 /* TIME_WAIT */};
  return s >= 0 && s < (int)sizeof(map) ? map[s] : 7;
}

static int fill_tcp_info(struct psock *ps, int st, void *val, socklen_t *len)
{
  struct pl_tcp_info ti;
  memset(&ti, 0, sizeof(ti));
  ti.tcpi_state = 7;
  if (st == PS_OFF) {
    struct toe_abi_sock_stats ss;
    memset(&ss, 0, sizeof(ss));
    ssize_t r = toe_stats(ps->pdev->dev, ps->sd, TOE_STATS_SOCKET, &ss, sizeof(ss));
    if (r > 0) {
      ti.tcpi_state = linux_tcp_state(ss.tcp_state);
      ti.tcpi_snd_mss = ss.snd_mss;
      ti.tcpi_rcv_mss = ss.snd_mss;
      ti.tcpi_advmss = ss.snd_mss;
      ti.tcpi_rtt = ss.rtt_us;
      ti.tcpi_rttvar = ss.rtt_us / 2;
      ti.tcpi_min_rtt = ss.rtt_us;
      ti.tcpi_rto = ss.rtt_us ? (ss.rtt_us * 3 > 200000 ? ss.rtt_us * 3 : 200000) : 1000000;
      ti.tcpi_snd_cwnd = ss.snd_mss ? ss.snd_cwnd / ss.snd_mss : 0;
      ti.tcpi_snd_ssthresh = 0x7fffffff;
      ti.tcpi_rcv_space = ss.rcv_wnd;
      ti.tcpi_rcv_ssthresh = ss.rcv_wnd;
      ti.tcpi_total_retrans = (uint32_t)ss.retrans_segs;
      ti.tcpi_bytes_received = ss.rx_bytes;
      ti.tcpi_bytes_sent = ss.tx_bytes;
      ti.tcpi_bytes_acked = ss.tx_bytes >= ss.tx_queued ? ss.tx_bytes - ss.tx_queued : 0;
      ti.tcpi_notsent_bytes = ss.tx_queued;
      ti.tcpi_snd_wnd = ss.rcv_wnd;
      ti.tcpi_pmtu = ss.snd_mss + 40;
    } else if (ps->listening) {
      ti.tcpi_state = 10;
    } else if (ps->connected) {
      ti.tcpi_state = 1;
    }
  }
  return put_bytes(val, len, &ti, sizeof(ti));
}

PL_API int getsockopt(int fd, int level, int name, void *__restrict val, socklen_t *__restrict len)
{
  struct psock *ps = pl_ours(fd);
  if (!ps)
    return R.getsockopt(fd, level, name, val, len);
  int st = pl_enter_fd(fd, ps);
  if (st == PS_CAND)
    return R.getsockopt(fd, level, name, val, len);
  if (st == PS_ORPHAN)
    return set_errno(ENOTCONN);
  if (st != PS_OFF && st != PS_ZOMBIE)
    return R.getsockopt(fd, level, name, val, len);
  toe_dev *dev = st == PS_OFF ? ps->pdev->dev : NULL;
  int rc = -ENOPROTOOPT;
  int64_t v = 0;
  bool handled = true;
  if (level == SOL_SOCKET) {
    switch (name) {
    case SO_ERROR: {
      int e = ps->pend_err;
      ps->pend_err = 0;
      if (!e && dev && toe_getsockopt(dev, ps->sd, TOE_OPT_ERROR, &v) == 0 && v < 0)
        e = (int)-v;
      rc = put_int(val, len, e);
      if (dev)
        pl_reflect(ps);
      break;
    }
    case SO_TYPE:
      rc = put_int(val, len, ps->type);
      break;
    case SO_DOMAIN:
      rc = put_int(val, len, AF_INET);
      break;
    case SO_PROTOCOL:
      rc = put_int(val, len, ps->type == SOCK_STREAM ? IPPROTO_TCP : IPPROTO_UDP);
      break;
    case SO_ACCEPTCONN:
      rc = put_int(val, len, ps->listening);
      break;
    case SO_RCVTIMEO:
    case SO_SNDTIMEO: {
      int ms = name == SO_RCVTIMEO ? ps->rcvtimeo_ms : ps->sndtimeo_ms;
      struct timeval tv = {0, 0};
      if (ms > 0) {
        tv.tv_sec = ms / 1000;
        tv.tv_usec = (ms % 1000) * 1000;
      }
      rc = put_bytes(val, len, &tv, sizeof(tv));
      break;
    }
    case SO_RCVBUF:
    case SO_SNDBUF:
    case SO_KEEPALIVE:
    case SO_REUSEADDR:
    case SO_REUSEPORT: {
      int opt = name == SO_RCVBUF      ? TOE_OPT_RCVBUF
                : name == SO_SNDBUF    ? TOE_OPT_SNDBUF
                : name == SO_KEEPALIVE ? TOE_OPT_KEEPALIVE
                : name == SO_REUSEADDR ? TOE_OPT_REUSEADDR
                                       : TOE_OPT_REUSEPORT;
      int r = dev ? toe_getsockopt(dev, ps->sd, opt, &v) : -TOE_ENOPROTOOPT;
      if (r < 0) {
        struct pl_opt *o = pl_opt_find(ps, level, name);
        int iv = 0;
        if (o)
          memcpy(&iv, o->val, sizeof(iv));
        v = iv;
      }
      /* The device bounds a UDP socket's queue in datagrams, not bytes, and has no size to report
       * until one is set: say what the kernel's default would be (net.core.rmem_default and
       * wmem_default), since programs compare it with their datagram size (iperf3 warns and
       * resizes when it reads 0). */
      if (v <= 0 && ps->type == SOCK_DGRAM && (name == SO_RCVBUF || name == SO_SNDBUF))
        v = PL_UDP_DEFAULT_BUF;
      rc = put_int(val, len, (int)v);
      break;
    }
    case SO_BINDTODEVICE:
      /* Never bound to an interface (setsockopt keeps only the empty name): as the kernel
       * answers for an unbound socket, no name (length 0) and success. sshd asks for every
       * connection (its VRF) and drops the connection on an error. */
      rc = put_bytes(val, len, "", 0);
      break;
    case SO_LINGER: {
      struct linger lg = {0, 0};
      struct pl_opt *o = pl_opt_find(ps, level, name);
      if (o)
        memcpy(&lg, o->val, sizeof(lg));
      rc = put_bytes(val, len, &lg, sizeof(lg));
      break;
    }
    default:
      handled = false;
    }
  } else if (level == IPPROTO_TCP) {
    if (ps->type != SOCK_STREAM) {
      rc = -ENOPROTOOPT;
    } else {
      switch (name) {
      case TCP_INFO:
        rc = fill_tcp_info(ps, st, val, len);
        break;
      case TCP_NODELAY:
      case TCP_MAXSEG:
      case TCP_KEEPIDLE:
      case TCP_KEEPINTVL:
      case TCP_KEEPCNT: {
        int opt = name == TCP_NODELAY     ? TOE_OPT_NODELAY
                  : name == TCP_MAXSEG    ? TOE_OPT_MAXSEG
                  : name == TCP_KEEPIDLE  ? TOE_OPT_KEEPIDLE
                  : name == TCP_KEEPINTVL ? TOE_OPT_KEEPINTVL
                                          : TOE_OPT_KEEPCNT;
        int r = dev ? toe_getsockopt(dev, ps->sd, opt, &v) : -TOE_ENOPROTOOPT;
        if (r < 0) {
          struct pl_opt *o = pl_opt_find(ps, level, name);
          int iv = 0;
          if (o)
            memcpy(&iv, o->val, sizeof(iv));
          v = iv;
        }
        rc = put_int(val, len, (int)v);
        break;
      }
      case TCP_CONGESTION: {
        const char *cc = "cubic";
        if (dev && toe_getsockopt(dev, ps->sd, TOE_OPT_CONGESTION, &v) == 0 && v == 1)
          cc = "reno";
        char nb[16] = {0};
        memcpy(nb, cc, strlen(cc));
        rc = put_bytes(val, len, nb, sizeof(nb));
        break;
      }
      default:
        handled = false;
      }
    }
  } else {
    handled = false;
  }
  if (!handled) {
    struct pl_opt *o = pl_opt_find(ps, level, name);
    if (o)
      rc = put_bytes(val, len, o->val, o->len);
    else
      rc = -ENOPROTOOPT;
  }
  pthread_mutex_unlock(&ps->mu);
  return (int)pl_ret(rc);
}

/* ------------------------------------------------------------------------------------------ */
/* Names                                                                                      */

static int name_impl(int fd, struct sockaddr *addr, socklen_t *len, bool peer)
{
  struct psock *ps = pl_fd_get(fd);
  if (!ps)
    return peer ? R.getpeername(fd, addr, len) : R.getsockname(fd, addr, len);
  int st = pl_enter_fd(fd, ps);
  if (st == PS_CAND) {
    if (!peer && ps->bind_deferred) {
      pthread_mutex_lock(&ps->mu);
      struct sockaddr_in b = ps->bind_addr;
      bool deferred = ps->bind_deferred;
      pthread_mutex_unlock(&ps->mu);
      if (deferred)
        return (int)pl_ret(put_bytes(addr, len, &b, sizeof(b)));
    }
    return peer ? R.getpeername(fd, addr, len) : R.getsockname(fd, addr, len);
  }
  if (st == PS_ORPHAN)
    return set_errno(ENOTCONN);
  if (st != PS_OFF && st != PS_ZOMBIE)
    return peer ? R.getpeername(fd, addr, len) : R.getsockname(fd, addr, len);
  int rc;
  if (!addr || !len) {
    rc = -EFAULT;
  } else if (st == PS_OFF) {
    rc = peer ? toe_getpeername(ps->pdev->dev, ps->sd, addr, len)
              : toe_getsockname(ps->pdev->dev, ps->sd, addr, len);
  } else if (peer && !ps->zhas_peer) {
    rc = -ENOTCONN;
  } else {
    rc = put_bytes(addr, len, peer ? &ps->zpeer : &ps->zlocal, sizeof(struct sockaddr_in));
    if (rc == 0)
      *len = sizeof(struct sockaddr_in);
  }
  pthread_mutex_unlock(&ps->mu);
  return (int)pl_ret(rc);
}

PL_API int getsockname(int fd, __SOCKADDR_ARG addr_, socklen_t *__restrict len)
{
  pl_init();
  return name_impl(fd, PL_SA(addr_), len, false);
}

PL_API int getpeername(int fd, __SOCKADDR_ARG addr_, socklen_t *__restrict len)
{
  pl_init();
  return name_impl(fd, PL_SA(addr_), len, true);
}

/* ------------------------------------------------------------------------------------------ */
/* epoll_ctl: registrations of candidates are redone after a switch (the switch closes the kernel
 * socket, and epoll forgets a closed file); offloaded descriptors are refreshed first, so the
 * state epoll sees is current. epoll_wait needs nothing: placeholders are ordinary pollable
 * descriptors. */

PL_API int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
  struct psock *ps = pl_ours(fd);
  if (op != EPOLL_CTL_DEL && (ps || pl_ep_marked(fd)))
    pl_ep_mark(epfd); /* a set with an offloaded member (or a set holding one): waits spin */
  /* A set served in the process keeps its offloaded members itself (pl_epoll.c). */
  int served = pl_eps_ctl(epfd, op, fd, ev);
  if (served <= 0)
    return served == 0 ? 0 : set_errno(-served);
  if (!ps) {
    int rc = R.epoll_ctl(epfd, op, fd, ev);
    if (rc == 0)
      pl_eps_kernel_member(epfd, op);
    return rc;
  }
  int st = atomic_load(&ps->state);
  if (st == PS_CAND) {
    int rc = R.epoll_ctl(epfd, op, fd, ev);
    if (rc == 0) {
      pl_eps_kernel_member(epfd, op);
      pthread_mutex_lock(&ps->mu);
      if (atomic_load(&ps->state) == PS_CAND) {
        int i;
        for (i = 0; i < ps->neps; i++)
          if (ps->eps[i].epfd == epfd)
            break;
        if (op == EPOLL_CTL_DEL) {
          if (i < ps->neps)
            ps->eps[i] = ps->eps[--ps->neps];
        } else if (ev) {
          if (i == ps->neps && ps->neps < PL_EPREGS_MAX)
            ps->neps++;
          if (i < ps->neps) {
            ps->eps[i].epfd = epfd;
            ps->eps[i].ev = *ev;
          }
        }
      }
      pthread_mutex_unlock(&ps->mu);
    }
    return rc;
  }
  if (op != EPOLL_CTL_DEL)
    pl_refresh_fd_for(fd, !ev || (ev->events & (EPOLLIN | EPOLLPRI)));
  int rc = R.epoll_ctl(epfd, op, fd, ev);
  int st2 = rc == 0 ? pl_enter_fd(fd, ps) : PS_FREE;
  /* A socket in an epoll set is waited on for as long as it stays there: a listener keeps
   * serving connections across forks (pl_atfork_prepare), a connection keeps its data coming
   * (pl_inh_share_conn). */
  if (st2 == PS_OFF)
    ps->in_epoll = op != EPOLL_CTL_DEL && ev && (ev->events & EPOLLIN);
  if (st2 == PS_OFF || st2 == PS_ZOMBIE)
    pthread_mutex_unlock(&ps->mu);
  return rc;
}
