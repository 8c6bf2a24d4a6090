/*
 * libtoe-preload: poll, ppoll, select, pselect (and __poll_chk, __ppoll_chk) served in the
 * process (docs/interception.md, "Readiness served in user space").
 *
 * A call whose descriptors include an offloaded socket that no waiter outside the library watches
 * (not pinned) is served here: the calling thread takes the device's events (toe_poll), computes
 * the offloaded sockets' revents from their readiness (psock.rdy, pend_err: what the kernel's
 * tcp_poll / datagram_poll would show), and asks the kernel only about the other descriptors:
 * with a zero timeout when an offloaded one is ready (or the time is up), else by sleeping in
 * ppoll on them plus the thread's own epoll set, which holds libtoe's event descriptor and the
 * wake eventfd (one sleep covers both; pl_eps_thread_wait_fd). The caller's signal mask applies
 * to every kernel call, so ppoll/pselect's atomic mask and EINTR are the kernel's own. select is
 * translated to poll entries and back with the kernel's own sets (POLLIN_SET, POLLOUT_SET,
 * POLLEX_SET of fs/select.c); its timeval is updated with the time left, as Linux does.
 *
 * Everything else (no offloaded socket, only pinned ones, select beyond FD_SETSIZE, a timeout the
 * kernel rejects, no thread set) goes to the kernel as before, the offloaded sockets' placeholders
 * mirrored (pinned).
 */
#define _GNU_SOURCE

#include "preload/preload.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define STACK_FDS 32

static atomic_ulong g_served; /* TOE_PRELOAD_DEBUG: calls served in the process */

void pl_poll_report(void)
{
  if (atomic_load(&g_served))
    PL_DBG("poll/select: %lu calls served in the process", atomic_load(&g_served));
}

/* One call. fds is the caller's array (poll) or the translation of select's sets; per entry, the
 * socket served here (or NULL: the kernel's) and its generation; k holds copies of the kernel's
 * entries (kidx: where each came from), with one slot more for the thread's set. */
struct pq {
  struct pollfd *fds;
  nfds_t n;
  struct psock **ps;
  unsigned *gen;
  struct pollfd *k;
  nfds_t *kidx;
  nfds_t nk;
  int nserved;
  const sigset_t *mask;
  void *heap; /* the arrays, when the stack's were too small */
  struct psock *ps_stack[STACK_FDS];
  unsigned gen_stack[STACK_FDS];
  struct pollfd k_stack[STACK_FDS + 1];
  nfds_t kidx_stack[STACK_FDS];
};

/* What the kernel's poll would report for an offloaded socket (tcp_poll, datagram_poll,
 * inet_csk_listen_poll): readiness from psock.rdy, POLLERR while an error is pending, POLLHUP
 * once the connection ended both ways; POLLERR/POLLHUP whatever was asked. A socket closed
 * meanwhile by another thread is POLLNVAL, as the kernel's next look would find it. */
static short sock_revents(struct psock *ps, unsigned gen, short events)
{
  int st = atomic_load(&ps->state);
  if (atomic_load(&ps->gen) != gen || (st != PS_OFF && st != PS_ZOMBIE))
    return POLLNVAL;
  unsigned r = atomic_load_explicit(&ps->rdy, memory_order_acquire);
  short re = 0;
  if (r & SH_IN)
    re |= POLLIN | POLLRDNORM;
  if (r & SH_RDHUP)
    re |= POLLIN | POLLRDNORM | POLLRDHUP;
  if (r & SH_OUT) /* (sock_writeable adds WRBAND for a datagram socket; tcp_poll does not) */
    re |= (short)(POLLOUT | POLLWRNORM | (ps->type == SOCK_DGRAM ? POLLWRBAND : 0));
  if (r & SH_HUP)
    re |= POLLHUP;
  if (__atomic_load_n(&ps->pend_err, __ATOMIC_RELAXED))
    re |= POLLERR;
  return (short)(re & (events | POLLERR | POLLHUP));
}

static void pq_free(struct pq *q)
{
  free(q->heap);
  q->heap = NULL;
}

/* Sorts fds[] into the sockets served here and the kernel's entries. Returns 1 when at least one
 * is served here, 0 when none (nothing allocated), -1 when out of memory. The offloaded sockets
 * are brought up to date first (pl_reflect), a shared one asks for its data again and a listener
 * for connections (as pl_refresh_fd does), but they are not pinned; pinned ones are refreshed on
 * their placeholders. */
static int pq_prepare(struct pq *q, struct pollfd *fds, nfds_t n, const sigset_t *mask)
{
  q->fds = fds;
  q->n = n;
  q->nk = 0;
  q->nserved = 0;
  q->mask = mask;
  q->heap = NULL;
  bool any = false;
  for (nfds_t i = 0; i < n && !any; i++)
    any = fds[i].fd >= 0 && pl_fd_get(fds[i].fd);
  if (!any)
    return 0;
  if (n <= STACK_FDS) {
    q->ps = q->ps_stack;
    q->gen = q->gen_stack;
    q->k = q->k_stack;
    q->kidx = q->kidx_stack;
  } else {
    size_t sz = n * (sizeof(struct psock *) + sizeof(unsigned) + sizeof(nfds_t)) +
                (n + 1) * sizeof(struct pollfd);
    char *h = malloc(sz);
    if (!h)
      return -1;
    q->heap = h;
    q->k = (struct pollfd *)h;
    q->ps = (struct psock **)(h + (n + 1) * sizeof(struct pollfd));
    q->kidx = (nfds_t *)(q->ps + n);
    q->gen = (unsigned *)(q->kidx + n);
  }
  for (nfds_t i = 0; i < n; i++) {
    int fd = fds[i].fd;
    struct psock *ps = fd >= 0 ? pl_fd_get(fd) : NULL;
    q->ps[i] = NULL;
    if (ps) {
      int st = pl_enter_fd(fd, ps); /* adopts an inherited shared socket */
      bool locked = st == PS_OFF || st == PS_ZOMBIE;
      if (locked && !ps->pinned) {
        if (st == PS_OFF) {
          /* A shared connection polled for input: its data comes to us again. Not when only
           * output is asked for: rsync's generator waits to write on the connection its forked
           * receiver reads, and taking deliveries there would split the stream between the two. */
          if (fds[i].events & (POLLIN | POLLRDNORM | POLLPRI))
            pl_inh_demand(ps);
          /* This process polls its listener: it serves connections (pl_refresh_fd). */
          if (ps->listening)
            ps->acc_demand = true;
          pl_reflect(ps);
        }
        q->ps[i] = ps;
        q->gen[i] = atomic_load(&ps->gen);
        q->nserved++;
      }
      if (locked)
        pthread_mutex_unlock(&ps->mu);
      if (locked && !q->ps[i])
        pl_refresh_fd_for(fd, (fds[i].events & (POLLIN | POLLRDNORM | POLLPRI)) != 0); /* pinned */
    }
    if (!q->ps[i]) {
      q->k[q->nk] = fds[i];
      q->kidx[q->nk++] = i;
    }
  }
  if (q->nserved == 0)
    pq_free(q);
  return q->nserved > 0;
}

/* The served sockets go back to their placeholders (no thread set: the kernel waits). */
static void pq_pin(struct pq *q)
{
  for (nfds_t i = 0; i < q->n; i++)
    if (q->ps[i])
      pl_pin(q->ps[i], q->gen[i]);
}

/* A socket whose device connection ended is writable in the kernel's sense; a pinned one's
 * placeholder may show the error and hang-up a moment before its POLLOUT (pl_zombify). */
static bool ended_fd(int fd)
{
  struct psock *ps = fd >= 0 ? pl_fd_get(fd) : NULL;
  return ps && atomic_load(&ps->state) == PS_ZOMBIE;
}

static void complete_pollfds(struct pollfd *fds, nfds_t n)
{
  for (nfds_t i = 0; i < n; i++) {
    short re = fds[i].revents;
    if ((re & (POLLERR | POLLHUP)) && !(re & POLLOUT) && (fds[i].events & POLLOUT) &&
        ended_fd(fds[i].fd))
      fds[i].revents = (short)(re | POLLOUT);
  }
}

/* Copies the kernel's answer for its entries (the first nk of q->k) into the caller's array;
 * returns how many are ready. */
static int take_kernel(struct pq *q)
{
  int c = 0;
  for (nfds_t j = 0; j < q->nk; j++) {
    struct pollfd *f = &q->fds[q->kidx[j]];
    f->revents = q->k[j].revents;
    if (f->revents) {
      if ((f->revents & (POLLERR | POLLHUP)) && !(f->revents & POLLOUT))
        complete_pollfds(f, 1);
      c++;
    }
  }
  return c;
}

/* The served sockets' revents into the caller's array; returns how many are ready. */
static int take_served(struct pq *q)
{
  int c = 0;
  for (nfds_t i = 0; i < q->n; i++)
    if (q->ps[i]) {
      q->fds[i].revents = sock_revents(q->ps[i], q->gen[i], q->fds[i].events);
      c += q->fds[i].revents != 0;
    }
  return c;
}

/* One look: the served sockets, then the kernel's entries with a zero timeout when a served one
 * is ready or `kernel` asks for it. The count of ready entries, or -errno. */
static int pass(struct pq *q, bool kernel)
{
  int c = take_served(q);
  for (nfds_t j = 0; j < q->nk; j++)
    q->fds[q->kidx[j]].revents = 0;
  if (q->nk > 0 && (c > 0 || kernel)) {
    struct timespec zero = {0, 0};
    for (nfds_t j = 0; j < q->nk; j++)
      q->k[j].revents = 0;
    int r = R.ppoll(q->k, q->nk, &zero, q->mask);
    if (r < 0)
      return -errno;
    c += take_kernel(q);
  }
  return c;
}

static int spin_pass(void *arg)
{
  return pass(arg, true);
}

/* The served wait. end_us: CLOCK_MONOTONIC deadline in microseconds, 0 to look once, -1 none.
 * Returns the count of ready entries (revents filled), or -errno (EINTR: a signal the mask let
 * through arrived while asleep), or -ENOTSUP before anything was done: then the kernel waits. */
static int pq_wait(struct pq *q, int64_t end_us)
{
  bool spun = false;
  unsigned idle = 0;
  for (;;) {
    bool with_dev = false;
    int tfd = pl_eps_thread_wait_fd(&with_dev); /* (takes the device's events first) */
    if (tfd < 0)
      return -ENOTSUP;
    unsigned g = pl_eps_gen();
    int64_t now = end_us > 0 ? (int64_t)pl_mono_us() : 0;
    bool expired = end_us == 0 || (end_us > 0 && now >= end_us);
    int c = pass(q, expired);
    if (c != 0 || expired)
      return c;
    if (!spun && pl_cfg.drain && pl_cfg.spin_us > 0) {
      spun = true;
      c = pl_spin_wait(spin_pass, q);
      if (c != 0)
        return c;
      continue; /* (the spin took the device's events: look again before sleeping) */
    }
    /* Asleep on the kernel's entries and the thread's set. A readiness raised after the look
     * above either sees this thread counted (and writes the wake eventfd) or moved the
     * generation: no lost wake-up. Without the session's descriptor in the set (another thread
     * was attaching one), at most 10 ms. */
    int64_t left = end_us > 0 ? end_us - now : -1;
    if (!with_dev && (left < 0 || left > 10000))
      left = 10000;
    struct timespec ts = {(time_t)(left / 1000000), (long)(left % 1000000) * 1000};
    for (nfds_t j = 0; j < q->nk; j++)
      q->k[j].revents = 0;
    q->k[q->nk] = (struct pollfd){.fd = tfd, .events = POLLIN};
    pl_eps_sleeping(1);
    int k = 0;
    if (pl_eps_gen() == g)
      k = R.ppoll(q->k, q->nk + 1, left >= 0 ? &ts : NULL, q->mask);
    int e = errno;
    pl_eps_sleeping(-1);
    if (k < 0)
      return -e;
    bool ours = q->k[q->nk].revents != 0;
    if (ours)
      pl_eps_thread_consume();
    if (k > (ours ? 1 : 0)) {
      /* Kernel entries are ready: with the served sockets as they are now (the device's events
       * taken first when it spoke), that is the answer. */
      if (ours)
        pl_eps_thread_wait_fd(&with_dev);
      return take_served(q) + take_kernel(q);
    }
    /* Only our own descriptors: insurance against a device descriptor that stays readable with
     * nothing for us (the pump's rule). */
    if (ours && ++idle > 32) {
      struct timespec ms = {0, 1000000};
      nanosleep(&ms, NULL);
    } else if (!ours) {
      idle = 0;
    }
  }
}

/* Counts a blocking wait on each offloaded descriptor (pl_wait_mark): a fork meanwhile leaves a
 * listener serving its waiter. */
static void mark_pollfds(const struct pollfd *fds, nfds_t n, int d)
{
  for (nfds_t i = 0; i < n; i++)
    if (fds[i].fd >= 0)
      pl_wait_mark(fds[i].fd, d);
}

/* poll and ppoll: 1 when served here (*rc the result, errno set), 0 when the kernel is to be
 * called (the placeholders of any offloaded socket then pinned). */
static int poll_served(struct pollfd *fds, nfds_t n, int64_t end_us, const sigset_t *mask, int *rc)
{
  if (n > 1024) {
    /* The kernel's EINVAL for more entries than open files may exist. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && n > rl.rlim_cur)
      return 0;
  }
  struct pq q;
  int p = pq_prepare(&q, fds, n, mask);
  if (p <= 0)
    return 0;
  atomic_fetch_add_explicit(&g_served, 1, memory_order_relaxed);
  if (end_us != 0)
    mark_pollfds(fds, n, 1);
  int r = pq_wait(&q, end_us);
  if (end_us != 0)
    mark_pollfds(fds, n, -1);
  if (r == -ENOTSUP)
    pq_pin(&q);
  pq_free(&q);
  if (r == -ENOTSUP)
    return 0;
  if (r < 0) {
    errno = -r;
    *rc = -1;
  } else {
    *rc = r;
  }
  return 1;
}

/* ---- the kernel's waits (nothing served here) ------------------------------------------------ */

/* Brings the offloaded descriptors of the set up to date on their placeholders (pinned: the
 * kernel waits on them); true if there is one. */
static bool refresh_pollfds(const struct pollfd *fds, nfds_t n)
{
  bool any = false;
  for (nfds_t i = 0; i < n; i++)
    if (fds[i].fd >= 0 && pl_fd_get(fds[i].fd)) {
      pl_refresh_fd_for(fds[i].fd, (fds[i].events & (POLLIN | POLLRDNORM | POLLPRI)) != 0);
      any = any || pl_fd_offloaded(fds[i].fd);
    }
  return any;
}

struct poll_args {
  struct pollfd *fds;
  nfds_t n;
  const sigset_t *mask;
};

/* pl_spin_wait's zero-timeout look at the caller's descriptors, as the kernel sees them. */
static int poll_ready(void *arg)
{
  struct poll_args *a = arg;
  struct timespec zero = {0, 0};
  int r = R.ppoll(a->fds, a->n, &zero, a->mask);
  return r < 0 ? -errno : r;
}

/* poll/ppoll by the kernel; placeholders refreshed (and a spin first, with TOE_SPIN_US). */
static int kernel_poll(struct pollfd *fds, nfds_t n, int timeout, const struct timespec *tmo,
                       const sigset_t *mask, bool is_ppoll)
{
  bool waits = is_ppoll ? (!tmo || tmo->tv_sec || tmo->tv_nsec) : timeout != 0;
  if (refresh_pollfds(fds, n) && waits) {
    mark_pollfds(fds, n, 1);
    struct poll_args a = {fds, n, mask};
    int r = pl_spin_wait(poll_ready, &a);
    if (r == 0)
      r = is_ppoll ? R.ppoll(fds, n, tmo, mask) : R.poll(fds, n, timeout);
    else if (r < 0) {
      errno = -r;
      r = -1;
    }
    int e = errno;
    mark_pollfds(fds, n, -1);
    if (r > 0)
      complete_pollfds(fds, n);
    errno = e;
    return r;
  }
  int r = is_ppoll ? R.ppoll(fds, n, tmo, mask) : R.poll(fds, n, timeout);
  if (r > 0)
    complete_pollfds(fds, n);
  return r;
}

/* select/pselect by the kernel: placeholders refreshed; an ended socket asked for writing is
 * reported writable (see ended_fd). */
static int kernel_select(int nfds, fd_set *r, fd_set *w, fd_set *e, struct timeval *tv,
                         const struct timespec *ts, const sigset_t *mask, bool is_pselect)
{
  fd_set asked;
  if (w)
    asked = *w;
  int lim = nfds > FD_SETSIZE ? FD_SETSIZE : nfds;
  for (int fd = 0; fd < lim; fd++)
    if (pl_fd_get(fd) &&
        ((r && FD_ISSET(fd, r)) || (w && FD_ISSET(fd, w)) || (e && FD_ISSET(fd, e))))
      pl_refresh_fd_for(fd, (r && FD_ISSET(fd, r)) || (e && FD_ISSET(fd, e)));
  int rc = is_pselect ? R.pselect(nfds, r, w, e, ts, mask) : R.select(nfds, r, w, e, tv);
  if (rc < 0 || !w)
    return rc;
  for (int fd = 0; fd < lim; fd++)
    if (FD_ISSET(fd, &asked) && !FD_ISSET(fd, w) && ended_fd(fd)) {
      FD_SET(fd, w);
      rc++;
    }
  return rc;
}

/* A deadline in microseconds from a relative time (-1: none, 0: now). */
static int64_t deadline_us(int64_t sec, int64_t usec)
{
  if (sec == 0 && usec == 0)
    return 0;
  int64_t now = (int64_t)pl_mono_us();
  if (sec > (INT64_MAX - now) / 1000000 - 1)
    return -1; /* (centuries) */
  return now + sec * 1000000 + usec;
}

PL_API int poll(struct pollfd *fds, nfds_t n, int timeout)
{
  pl_init();
  int rc;
  if (poll_served(fds, n, timeout < 0 ? -1 : deadline_us(0, (int64_t)timeout * 1000), NULL, &rc))
    return rc;
  return kernel_poll(fds, n, timeout, NULL, NULL, false);
}

PL_API int __poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t fdslen);
PL_API int __poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t fdslen)
{
  if (fdslen / sizeof(*fds) < n)
    abort();
  return poll(fds, n, timeout);
}

PL_API int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *tmo, const sigset_t *mask)
{
  pl_init();
  int rc;
  /* (A timeout the kernel rejects goes to the kernel: EINVAL.) */
  bool valid = !tmo || (tmo->tv_sec >= 0 && tmo->tv_nsec >= 0 && tmo->tv_nsec < 1000000000);
  if (valid &&
      poll_served(fds, n, !tmo ? -1 : deadline_us(tmo->tv_sec, (tmo->tv_nsec + 999) / 1000), mask,
                  &rc))
    return rc;
  return kernel_poll(fds, n, 0, tmo, mask, true);
}

PL_API int __ppoll_chk(struct pollfd *fds, nfds_t n, const struct timespec *tmo,
                       const sigset_t *mask, size_t fdslen);
PL_API int __ppoll_chk(struct pollfd *fds, nfds_t n, const struct timespec *tmo,
                       const sigset_t *mask, size_t fdslen)
{
  if (fdslen / sizeof(*fds) < n)
    abort();
  return ppoll(fds, n, tmo, mask);
}

/* ---- select, pselect ------------------------------------------------------------------------ */

/* fs/select.c's sets: what counts as readable, writable, exceptional, and the events asked. */
#define SEL_IN (POLLIN | POLLRDNORM | POLLRDBAND | POLLHUP | POLLERR)
#define SEL_OUT (POLLOUT | POLLWRNORM | POLLWRBAND | POLLERR)
#define SEL_EX (POLLPRI)

/* select/pselect: 1 when served here (*rc the result, the sets rewritten, errno set), 0 when the
 * kernel is to be called. */
static int select_served(int nfds, fd_set *r, fd_set *w, fd_set *e, int64_t end_us,
                         const sigset_t *mask, int *rc)
{
  if (nfds <= 0 || nfds > FD_SETSIZE)
    return 0; /* (beyond FD_SETSIZE: the kernel's, on the placeholders) */
  bool any = false;
  int cnt = 0;
  for (int fd = 0; fd < nfds; fd++)
    if ((r && FD_ISSET(fd, r)) || (w && FD_ISSET(fd, w)) || (e && FD_ISSET(fd, e))) {
      cnt++;
      any = any || pl_fd_get(fd);
    }
  if (!any)
    return 0;
  struct pollfd stack[STACK_FDS], *fds = stack;
  if (cnt > STACK_FDS && !(fds = malloc((size_t)cnt * sizeof(*fds))))
    return 0;
  nfds_t n = 0;
  for (int fd = 0; fd < nfds; fd++) {
    short ev = 0;
    if (r && FD_ISSET(fd, r))
      ev |= POLLIN | POLLRDNORM | POLLRDBAND;
    if (w && FD_ISSET(fd, w))
      ev |= POLLOUT | POLLWRNORM | POLLWRBAND;
    if (e && FD_ISSET(fd, e))
      ev |= POLLPRI;
    if (ev)
      fds[n++] = (struct pollfd){.fd = fd, .events = ev};
  }
  int prc;
  int served = poll_served(fds, n, end_us, mask, &prc);
  if (served) {
    bool bad = false;
    for (nfds_t i = 0; prc > 0 && i < n; i++)
      bad = bad || (fds[i].revents & POLLNVAL);
    if (prc < 0) {
      *rc = -1;
    } else if (bad) {
      errno = EBADF; /* a descriptor in the sets is not open: the sets are left as they were */
      *rc = -1;
    } else {
      int c = 0;
      for (nfds_t i = 0; i < n; i++) {
        int fd = fds[i].fd;
        short re = fds[i].revents;
        bool in = r && FD_ISSET(fd, r) && (re & SEL_IN);
        bool out = w && FD_ISSET(fd, w) && (re & SEL_OUT);
        bool ex = e && FD_ISSET(fd, e) && (re & SEL_EX);
        if (r)
          FD_CLR(fd, r);
        if (w)
          FD_CLR(fd, w);
        if (e)
          FD_CLR(fd, e);
        if (in)
          FD_SET(fd, r);
        if (out)
          FD_SET(fd, w);
        if (ex)
          FD_SET(fd, e);
        c += in + out + ex;
      }
      *rc = c;
    }
  }
  if (fds != stack)
    free(fds);
  return served;
}

/* select's timeval after the call: the time left (Linux's select, unlike POSIX's, says so). */
static void time_left(struct timeval *tmo, int64_t end_us)
{
  if (!tmo || end_us <= 0)
    return;
  int64_t left = end_us - (int64_t)pl_mono_us();
  if (left < 0)
    left = 0;
  tmo->tv_sec = (time_t)(left / 1000000);
  tmo->tv_usec = (suseconds_t)(left % 1000000);
}

PL_API int select(int nfds, fd_set *r, fd_set *w, fd_set *e, struct timeval *tmo)
{
  pl_init();
  int rc;
  bool valid = !tmo || (tmo->tv_sec >= 0 && tmo->tv_usec >= 0);
  if (valid) {
    int64_t end =
        !tmo ? -1
             : deadline_us((int64_t)tmo->tv_sec + tmo->tv_usec / 1000000, tmo->tv_usec % 1000000);
    if (select_served(nfds, r, w, e, end, NULL, &rc)) {
      int err = errno;
      time_left(tmo, end);
      errno = err;
      return rc;
    }
  }
  return kernel_select(nfds, r, w, e, tmo, NULL, NULL, false);
}

PL_API int pselect(int nfds, fd_set *r, fd_set *w, fd_set *e, const struct timespec *tmo,
                   const sigset_t *mask)
{
  pl_init();
  int rc;
  bool valid = !tmo || (tmo->tv_sec >= 0 && tmo->tv_nsec >= 0 && tmo->tv_nsec < 1000000000);
  if (valid &&
      select_served(nfds, r, w, e,
                    !tmo ? -1 : deadline_us(tmo->tv_sec, (tmo->tv_nsec + 999) / 1000), mask, &rc))
    return rc;
  return kernel_select(nfds, r, w, e, NULL, tmo, mask, true);
}
