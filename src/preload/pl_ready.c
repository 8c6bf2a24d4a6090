/*
 * libtoe-preload: readiness. An offloaded socket's state, read from libtoe, is shown on its
 * placeholder (pl_show, pl_reflect, pl_zombify), and the blocking calls wait on it (pl_wait_fd).
 * docs/interception.md.
 */
#define _GNU_SOURCE

#include "preload/preload.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------------------------ */
/* Placeholder readiness                                                                      */
/*
 * A (the application's descriptor, and our duplicate afd) and B (bfd) are the two ends of an
 * AF_UNIX stream socketpair. A's readiness as the kernel computes it (unix_poll):
 *   readable   B sent bytes to A ("tokens"), or B shut down for writing (then also RDHUP)
 *   writable   A's send-buffer use is under a quarter of its (minimal) SO_SNDBUF: we "fill" A by
 *              sending from A to B, and "drain" B to make A writable again (which wakes A's
 *              waiters, so epoll edge-triggered waiters see a new edge)
 *   hang-up    B shut down both ways (or closed)
 *   error      B closed while holding unread bytes from A (A gets ECONNRESET)
 */

static char g_zeros[4096];

/* recv/send with MSG_DONTWAIT on a placeholder's end, or, in a process under a seccomp filter
 * (pl_sandboxed: sshd's preauth child allows read and write but kills on recv and send), poll and
 * then read/write, which never block on a stream end that poll found ready (a write of at most
 * 512 bytes: with the ends' minimal send buffer, writable means a quarter of it is free). */
static ssize_t ph_recv(int fd, void *buf, size_t len)
{
  if (!atomic_load_explicit(&pl_sandboxed, memory_order_relaxed))
    return R.recv(fd, buf, len, MSG_DONTWAIT);
  struct pollfd pf = {.fd = fd, .events = POLLIN};
  if (R.poll(&pf, 1, 0) != 1 || !(pf.revents & POLLIN))
    return errno = EAGAIN, -1;
  return R.read(fd, buf, len);
}

static ssize_t ph_send(int fd, const void *buf, size_t len)
{
  if (!atomic_load_explicit(&pl_sandboxed, memory_order_relaxed))
    return R.send(fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
  struct pollfd pf = {.fd = fd, .events = POLLOUT};
  if (R.poll(&pf, 1, 0) != 1 || !(pf.revents & POLLOUT))
    return errno = EAGAIN, -1;
  return R.write(fd, buf, len < 512 ? len : 512);
}

/* Empties our end of a placeholder. A short read means the queue is empty (a stream socket hands
 * over all it holds up to the length asked), so the usual case (one token, or the fill) costs one
 * or a few reads, not one more that returns EAGAIN. */
static size_t drain_fd(int fd)
{
  char buf[4096];
  size_t n = 0;
  for (int i = 0; i < 64; i++) {
    ssize_t r = ph_recv(fd, buf, sizeof(buf));
    if (r > 0)
      n += (size_t)r;
    if (r < (ssize_t)sizeof(buf))
      break;
  }
  return n;
}

static bool fd_writable(int fd)
{
  struct pollfd pf = {.fd = fd, .events = POLLOUT};
  return R.poll(&pf, 1, 0) == 1 && (pf.revents & POLLOUT);
}

static size_t fill_fd(int fd)
{
  size_t n = 0;
  for (int i = 0; i < 16 && fd_writable(fd); i++) {
    ssize_t r = ph_send(fd, g_zeros, sizeof(g_zeros));
    if (r > 0)
      n += (size_t)r;
    if (r < 0 && errno != EAGAIN && errno != EINTR)
      break;
  }
  return n;
}

/* Asks libtoe to report only what is not known yet (`have`: what the placeholder shows, or for a
 * socket served in the process what its readiness says): libtoe's readiness is level-triggered,
 * and a known bit can only go away through one of our own calls (a read, a send, an accept),
 * which reflects the state again. */
static void give_interest(struct psock *ps, unsigned have)
{
  uint32_t in = 0;
  if (!(have & SH_IN) && !(ps->acc_lazy && !ps->acc_demand))
    in |= TOE_POLLIN; /* not for a shared listener this process does not serve */
  if (!(have & SH_OUT))
    in |= TOE_POLLOUT;
  if (!(have & SH_RDHUP) && ps->type == SOCK_STREAM && !ps->listening)
    in |= TOE_POLLRDHUP;
  if (in != ps->interest && ps->sd >= 0) {
    toe_poll_ctl(ps->pdev->dev, ps->sd, in, ps);
    ps->interest = in;
  }
}

/* The readiness served in the process (psock.rdy): a bit that appears counts as a new edge of
 * its kind and wakes the threads asleep in served epoll sets. */
static void ready_set(struct psock *ps, unsigned bits)
{
  if (ps->pend_err)
    bits |= SH_ERR; /* (EPOLLERR appears: the socket's registrations must be looked at) */
  unsigned old = atomic_load_explicit(&ps->rdy, memory_order_relaxed);
  if (old == bits)
    return;
  atomic_store_explicit(&ps->rdy, bits, memory_order_release);
  unsigned up = bits & ~old;
  if (up & (SH_IN | SH_RDHUP | SH_HUP))
    atomic_fetch_add(&ps->rseq_in, 1);
  if (up & (SH_OUT | SH_HUP))
    atomic_fetch_add(&ps->rseq_out, 1);
  if (up) {
    /* Onto the ready lists of the sets holding it (after the store above: a wait that takes a
     * registration off a list reads rdy under the set's lock, so it either sees the new bits or
     * finds the registration queued again), then wake the sleepers (cheap unless a thread sleeps
     * in a served wait). */
    if (ps->eregs)
      pl_eps_ready(ps);
    pl_eps_raise();
  }
}

/* The placeholder shows the state while no served epoll set holds the socket, or once a waiter
 * the library does not serve may look at it (pinned). */
static bool mirrored(const struct psock *ps)
{
  /* Every waiter on the placeholder that the library does not serve pins the socket first (a
   * kernel epoll set, SCM_RIGHTS, fork); epoll sets made through the library, poll and select
   * (pl_poll.c) and the blocking calls are served from psock.rdy. So only a pinned socket is
   * mirrored. */
  return ps->pinned;
}

void pl_show(struct psock *ps, unsigned want)
{
  if (ps->shown & SH_TERM)
    return;
  int e = errno;
  if ((want & SH_RDHUP) && !(ps->shown & SH_RDHUP)) {
    /* The peer's FIN: A reads EOF from now on, so it stays readable for good. */
    R.shutdown(ps->bfd, SHUT_WR);
    ps->shown |= SH_RDHUP | SH_IN;
  }
  if (!(ps->shown & SH_RDHUP)) {
    if ((want & SH_IN) && !(ps->shown & SH_IN)) {
      ssize_t r = ph_send(ps->bfd, "t", 1);
      (void)r;
      ps->shown |= SH_IN;
    } else if (!(want & SH_IN) && (ps->shown & SH_IN)) {
      drain_fd(ps->afd);
      ps->shown &= ~SH_IN;
    }
  }
  if ((want & SH_OUT) && !(ps->shown & SH_OUT)) {
    size_t n = drain_fd(ps->bfd);
    if (n > ps->fill_bytes) /* not all ours: pl_reflect reports it (pl_bypass_check) */
      ps->foreign += n - ps->fill_bytes;
    ps->fill_bytes = 0;
    ps->shown |= SH_OUT;
  } else if (!(want & SH_OUT) && (ps->shown & SH_OUT)) {
    ps->fill_bytes += fill_fd(ps->afd);
    ps->shown &= ~SH_OUT;
  }
  give_interest(ps, ps->shown);
  errno = e;
}

void pl_reflect(struct psock *ps)
{
  if (atomic_load(&ps->state) != PS_OFF)
    return;
  toe_dev *dev = ps->pdev->dev;
  int ev = toe_sock_events(dev, ps->sd);
  if (ev < 0)
    return;
  if (ev & TOE_POLLHUP) {
    pl_zombify(ps);
    return;
  }
  if (ev & TOE_POLLERR) {
    /* A soft error (UDP: ICMP port unreachable). libtoe reports it until it is read; we keep it
     * for the application's next call instead, so the pump does not see it again and again. */
    int64_t v = 0;
    if (toe_getsockopt(dev, ps->sd, TOE_OPT_ERROR, &v) == 0 && v < 0)
      ps->pend_err = (int)-v;
  }
  unsigned want = 0;
  if ((ev & TOE_POLLIN) || ps->pend_err || pl_inh_stashed(ps))
    want |= SH_IN;
  if (ev & TOE_POLLOUT)
    want |= SH_OUT;
  if (ev & TOE_POLLRDHUP)
    want |= SH_RDHUP;
  ready_set(ps, want);
  if (mirrored(ps))
    pl_show(ps, want);
  else
    give_interest(ps, want);
  if (ps->foreign) /* the drain of B found bytes that were not our fill */
    pl_bypass_check(ps);
}

void pl_zombify(struct psock *ps)
{
  if (atomic_load(&ps->state) != PS_OFF)
    return;
  int e = errno;
  toe_dev *dev = ps->pdev->dev;
  /* Keep what was received (it is bounded by the socket's receive buffers in libtoe), then the
   * error, then EOF: the order in which a kernel socket would give them. */
  if (ps->type == SOCK_STREAM && !ps->listening) {
    for (;;) {
      size_t cap = ps->zlen + 65536;
      char *nb = realloc(ps->zbuf, cap);
      if (!nb)
        break;
      ps->zbuf = nb;
      ssize_t r = toe_recv(dev, ps->sd, ps->zbuf + ps->zlen, cap - ps->zlen, 0);
      if (r > 0) {
        ps->zlen += (size_t)r;
        continue;
      }
      if (r < 0 && r != -TOE_EAGAIN && !ps->pend_err)
        ps->pend_err = (int)-r;
      break;
    }
  }
  if (!ps->pend_err) {
    int64_t v = 0;
    if (toe_getsockopt(dev, ps->sd, TOE_OPT_ERROR, &v) == 0 && v < 0)
      ps->pend_err = (int)-v;
  }
  socklen_t l = sizeof(ps->zlocal);
  if (toe_getsockname(dev, ps->sd, (struct sockaddr *)&ps->zlocal, &l) < 0)
    memset(&ps->zlocal, 0, sizeof(ps->zlocal));
  l = sizeof(ps->zpeer);
  ps->zhas_peer = toe_getpeername(dev, ps->sd, (struct sockaddr *)&ps->zpeer, &l) == 0;
  PL_DBG("sd %d ends (%s), %zu bytes kept", ps->sd,
         ps->pend_err ? strerror(ps->pend_err) : "closed", ps->zlen);
  toe_close(dev, ps->sd);
  ps->sd = -1;
  pl_dev_unlink(ps);
  atomic_store(&ps->state, PS_ZOMBIE);
  /* Terminal readiness: readable, writable, hang-up; and error if there is one to report. A
   * kernel TCP socket shows POLLERR, POLLHUP and POLLOUT at once (a refused connect), so the
   * change must be one step: closing B sets A's error (B holds unread bytes from A) and its
   * hang-up together, under one lock, before it wakes A's waiters. No shutdown(B) first: that
   * would show the hang-up alone, and a waiter could see it before the error.
   * With an error to report, B must hold a byte from A: the fill (A not writable yet: its bytes
   * are freed, and A becomes writable, inside the same close) or one byte, which leaves A
   * writable (one small buffer stays under a quarter of A's minimal send buffer). */
  if (ps->bfd >= 0) {
    if (ps->pend_err) {
      if (ps->shown & SH_OUT) {
        ssize_t r = ph_send(ps->afd, "e", 1);
        (void)r;
      }
    } else {
      drain_fd(ps->bfd);
    }
    R.close(ps->bfd);
    ps->bfd = -1;
  }
  ps->shown = SH_IN | SH_OUT | SH_RDHUP | SH_TERM;
  ready_set(ps, SH_IN | SH_OUT | SH_RDHUP | SH_HUP);
  errno = e;
}

bool pl_bypass_check(struct psock *ps)
{
  if (atomic_load(&ps->state) != PS_OFF || ps->bfd < 0)
    return false;
  int n = 0;
  if (R.ioctl(ps->bfd, FIONREAD, &n) == 0 && n > 0 && (size_t)n > ps->fill_bytes)
    ps->foreign += (size_t)n - ps->fill_bytes;
  if (!ps->foreign)
    return false;
  static atomic_bool warned;
  if (!atomic_exchange(&warned, true))
    pl_log("an offloaded %s socket was written to through a call the library did not see (a "
           "raw system call, io_uring?): %zu bytes that cannot reach the network; the socket "
           "fails with EIO (run such calls through the C library, or keep the socket on the "
           "kernel with a '!' rule in TOE_OFFLOAD)",
           ps->type == SOCK_STREAM ? "TCP" : "UDP", ps->foreign);
  PL_DBG("sd %d: %zu bytes written behind the library's back: EIO", ps->sd, ps->foreign);
  ps->pend_err = EIO;
  pl_zombify(ps);
  return true;
}

void pl_refresh_fd(int fd)
{
  pl_refresh_fd_for(fd, true);
}

void pl_refresh_fd_for(int fd, bool in)
{
  struct psock *ps = pl_fd_get(fd);
  if (!ps)
    return;
  if (pl_enter_fd(fd, ps) == PS_OFF) {
    /* A shared connection polled for input: its data comes to us again. Not when only output
     * is asked for: rsync's generator waits to write on the connection its forked receiver
     * reads, and taking deliveries there would split the stream between the two. */
    if (in)
      pl_inh_demand(ps);
    pl_dev_pin(ps); /* poll, select or a kernel epoll set waits on the placeholder itself */
    if (ps->listening && !ps->acc_demand) {
      /* This process polls its listener: it serves connections (on a shared one, toe_poll_ctl
       * with TOE_POLLIN makes libtoe post ACCEPTs for it; on one not shared yet, it is noted
       * for the next fork, pl_atfork_prepare). */
      ps->acc_demand = true;
      if (ps->acc_lazy)
        pl_show(ps, ps->shown & (SH_IN | SH_OUT | SH_RDHUP));
    }
    pl_reflect(ps);
  }
  int st = atomic_load(&ps->state);
  if (st == PS_OFF || st == PS_ZOMBIE)
    pthread_mutex_unlock(&ps->mu);
}

void pl_ipc_join(struct psock *ps, uint32_t events, bool count)
{
  pthread_mutex_lock(&ps->mu);
  if (count)
    atomic_fetch_add(&ps->ipc, 1);
  if (atomic_load(&ps->state) == PS_OFF) {
    if (ps->listening) {
      /* Waited on for connections while it stays in the set (pl_atfork_prepare), and served
       * now (a shared listener posts ACCEPTs only once asked). */
      ps->in_epoll = (events & EPOLLIN) != 0;
      ps->acc_demand = true;
    }
    pl_reflect(ps);
  }
  pthread_mutex_unlock(&ps->mu);
}

void pl_ipc_leave(struct psock *ps, unsigned gen, bool to_kernel)
{
  pthread_mutex_lock(&ps->mu);
  if (atomic_load(&ps->gen) == gen && atomic_fetch_sub(&ps->ipc, 1) == 1) {
    if (!to_kernel) /* (moved to the kernel set: a listener is still waited on there) */
      ps->in_epoll = false;
    if (atomic_load(&ps->state) == PS_OFF)
      pl_reflect(ps); /* mirrored again: the placeholder catches up */
  }
  pthread_mutex_unlock(&ps->mu);
}

void pl_pin(struct psock *ps, unsigned gen)
{
  pthread_mutex_lock(&ps->mu);
  if (atomic_load(&ps->gen) == gen && !ps->pinned) {
    pl_dev_pin(ps);
    if (atomic_load(&ps->state) == PS_OFF)
      pl_reflect(ps);
  }
  pthread_mutex_unlock(&ps->mu);
}

void pl_pin_fd(int fd)
{
  struct psock *ps = fd >= 0 ? pl_fd_get(fd) : NULL;
  if (ps && !ps->pinned)
    pl_pin(ps, atomic_load(&ps->gen));
}

/* ------------------------------------------------------------------------------------------ */
/* Blocking waits                                                                             */

/* After EINTR: restart the wait (as SA_RESTART would restart the kernel's own) only if every
 * installed handler asked for restarts; we cannot tell which signal interrupted us. */
static bool restart_allowed(void)
{
  for (int sig = 1; sig < NSIG; sig++) {
    struct sigaction sa;
    if (sig == SIGKILL || sig == SIGSTOP || sigaction(sig, NULL, &sa) < 0)
      continue;
    /* Faults are raised by an instruction of the thread itself, never while it waits in a system
     * call: their handlers (a sanitizer's, a JIT's) do not decide a restart. */
    if (sig == SIGSEGV || sig == SIGBUS || sig == SIGFPE || sig == SIGILL || sig == SIGTRAP ||
        sig == SIGSYS)
      continue;
    bool handler = (sa.sa_flags & SA_SIGINFO)
                       ? sa.sa_sigaction != NULL
                       : (sa.sa_handler != SIG_DFL && sa.sa_handler != SIG_IGN);
    if (handler && !(sa.sa_flags & SA_RESTART))
      return false;
  }
  return true;
}

uint64_t pl_mono_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t pl_mono_us(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* ------------------------------------------------------------------------------------------ */
/* Spin-then-sleep (TOE_SPIN_US, TOE_PROFILE)                                                 */

static atomic_ulong g_spun, g_spun_ready; /* TOE_PRELOAD_DEBUG's counters, at exit */

void pl_spin_report(void)
{
  pl_eps_report();
  pl_poll_report();
  if (pl_cfg.drain)
    PL_DBG("waits: %lu processed completions before sleeping, %lu of them found a ready descriptor",
           atomic_load(&g_spun), atomic_load(&g_spun_ready));
}

int pl_spin_wait(int (*ready)(void *), void *arg)
{
  if (!pl_cfg.drain || pl_foreign_child())
    return 0; /* a vfork child must not touch the parent's session */
  struct pdev *p = pl_spin_acquire();
  if (!p)
    return 0;
  atomic_fetch_add_explicit(&g_spun, 1, memory_order_relaxed);
  uint64_t end = pl_mono_us() + (uint64_t)pl_cfg.spin_us;
  int rc = 0;
  for (;;) {
    bool changed = false;
    pl_dev_process(p, &changed);
    if (atomic_load(&p->lost_seen))
      break; /* the caller's own wait sees the sockets end */
    rc = ready(arg);
    if (rc != 0)
      break;
    uint64_t now = pl_mono_us();
    if (now >= end)
      break;
    /* Returns 1 as soon as libtoe has something to report, 0 when the time ran out. */
    if (toe_spin(p->dev, (int)(end - now)) <= 0)
      break;
  }
  pl_spin_release(p);
  if (rc > 0)
    atomic_fetch_add_explicit(&g_spun_ready, 1, memory_order_relaxed);
  return rc;
}

void pl_wait_mark(int fd, int d)
{
  /* psocks are recycled, never freed, so a late -1 on a reused one stays a valid access; a wait
   * counts only while the counter is positive. */
  struct psock *ps = fd >= 0 ? pl_fd_get(fd) : NULL;
  if (ps)
    atomic_fetch_add_explicit(&ps->waiters, d, memory_order_relaxed);
}

bool pl_fd_offloaded(int fd)
{
  struct psock *ps = fd >= 0 ? pl_fd_get(fd) : NULL;
  if (!ps)
    return false;
  int st = atomic_load(&ps->state);
  return st == PS_OFF || st == PS_ZOMBIE || st == PS_INHERIT;
}

#define EP_MARKS 65536
static atomic_uchar g_ep_marks[EP_MARKS];

void pl_ep_mark(int epfd)
{
  if (epfd >= 0 && epfd < EP_MARKS)
    atomic_store_explicit(&g_ep_marks[epfd], 1, memory_order_relaxed);
}

bool pl_ep_marked(int epfd)
{
  return epfd >= 0 && epfd < EP_MARKS &&
         atomic_load_explicit(&g_ep_marks[epfd], memory_order_relaxed);
}

void pl_ep_forget(int epfd)
{
  /* A vfork child shares our memory but closes its own descriptors: it must not clear ours. */
  if (epfd >= 0 && epfd < EP_MARKS &&
      atomic_load_explicit(&g_ep_marks[epfd], memory_order_relaxed) && !pl_foreign_child())
    atomic_store_explicit(&g_ep_marks[epfd], 0, memory_order_relaxed);
}

/* ------------------------------------------------------------------------------------------ */
/* Blocking waits                                                                             */

struct one_fd {
  int fd;
  short events;
};

static int one_fd_ready(void *arg)
{
  struct one_fd *o = arg;
  struct pollfd pf = {.fd = o->fd, .events = o->events};
  int r = R.poll(&pf, 1, 0);
  return r < 0 ? -errno : r;
}

struct one_sock {
  struct psock *ps;
  short events;
};

static int one_sock_ready(void *arg)
{
  struct one_sock *o = arg;
  return pl_sock_ready(o->ps, o->events) || atomic_load(&o->ps->state) != PS_OFF;
}

int pl_wait_fd(int fd, short events, int timeout_ms)
{
  /* An unpinned offloaded socket: served in the process, no placeholder involved. */
  struct psock *ps = fd >= 0 ? pl_fd_get(fd) : NULL;
  if (ps && !ps->pinned && atomic_load(&ps->state) == PS_OFF) {
    unsigned gen = atomic_load(&ps->gen);
    if (timeout_ms != 0) {
      struct one_sock o = {ps, events};
      if (pl_spin_wait(one_sock_ready, &o) > 0)
        return 1;
    }
    uint64_t end = timeout_ms >= 0 ? pl_mono_ms() + (uint64_t)timeout_ms : 0;
    for (;;) {
      int left = -1;
      if (timeout_ms >= 0) {
        uint64_t now = pl_mono_ms();
        left = now >= end ? 0 : (int)(end - now);
      }
      int r = pl_eps_wait_sock(ps, gen, events, left);
      if (r > 0)
        return r;
      if (r == -ENOTSUP)
        break;
      if (r < 0) {
        if (r != -EINTR)
          return r;
        if (timeout_ms >= 0 || !restart_allowed())
          return -EINTR;
        continue;
      }
      if (left == 0)
        return 0;
    }
  }
  pl_pin_fd(fd); /* the wait below is on the placeholder */
  if (timeout_ms != 0) {
    struct one_fd o = {fd, events};
    int r = pl_spin_wait(one_fd_ready, &o);
    if (r > 0)
      return r;
  }
  uint64_t end = timeout_ms >= 0 ? pl_mono_ms() + (uint64_t)timeout_ms : 0;
  for (;;) {
    struct pollfd pf = {.fd = fd, .events = events};
    int left = -1;
    if (timeout_ms >= 0) {
      uint64_t now = pl_mono_ms();
      left = now >= end ? 0 : (int)(end - now);
    }
    int r = R.poll(&pf, 1, left);
    if (r >= 0)
      return r;
    if (errno != EINTR)
      return -errno;
    /* A socket with a timeout is never restarted by the kernel either (sock_intr_errno). */
    if (timeout_ms >= 0 || !restart_allowed())
      return -EINTR;
  }
}
