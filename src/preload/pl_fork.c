/*
 * libtoe-preload: fork and exit. Before a fork the shareable sockets get share tokens; the child
 * starts with no session (inherited sockets become PS_INHERIT or PS_ORPHAN); at exit the session
 * is detached gracefully. docs/interception.md.
 */
#define _GNU_SOURCE

#include "preload/preload.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------------------------ */
/* fork                                                                                       */

void pl_listener_shared(struct psock *ps)
{
  /* libtoe made the listener lazy again on this share (every share, not only the first): its
   * posted ACCEPTs are handed back and none is posted until this process asks again (its next
   * accept, poll or select on it: pl_refresh_fd), so that connections go to the holders that
   * serve them and not to one busy elsewhere. Our view must follow on every share. But a process
   * waiting for connections right now (a thread asleep in accept, poll or select on it, or the
   * listener in an epoll set) must go on getting them, as with the kernel, where fork does not
   * change the parent's listener: then the interest is given to libtoe again at once
   * (TOE_POLLIN, unless a connection is already shown), which posts ACCEPTs again. */
  ps->acc_lazy = true;
  ps->acc_demand = ps->acc_demand && (atomic_load(&ps->waiters) > 0 || ps->in_epoll);
  ps->interest = UINT32_MAX;
  pl_show(ps, ps->shown & (SH_IN | SH_OUT | SH_RDHUP));
}

/* Before fork: a share token for every listener, connection and UDP socket of the current
 * session, so that the child can adopt them (PS_INHERIT); the fork wrapper (pl_inherit.c) then
 * binds them to the child's pid. */
void pl_atfork_prepare(void)
{
  pl_attach_lock();
  struct pdev *p = pl_dev_current();
  struct psock *all = pl_psock_all();
  for (struct psock *ps = all; p && ps; ps = ps->all_next) {
    pthread_mutex_lock(&ps->mu);
    ps->share_token = 0;
    if (atomic_load(&ps->state) == PS_OFF && ps->pdev == p &&
        (ps->listening || ps->type == SOCK_DGRAM)) {
      uint64_t tok = 0;
      int rc = toe_share(p->dev, ps->sd, &tok);
      if (rc == 0) {
        ps->share_token = tok;
        if (ps->listening)
          pl_listener_shared(ps);
      } else {
        PL_DBG("sd %d: no share token for a child (%s)", ps->sd, strerror(-rc));
      }
    } else if (atomic_load(&ps->state) == PS_OFF && ps->pdev == p) {
      pl_inh_share_conn(p, ps); /* a connection: both processes may use it (pl_inherit.c) */
    }
    pthread_mutex_unlock(&ps->mu);
  }
  pl_tab_lock();
}

void pl_atfork_parent(void)
{
  pl_tab_unlock();
  pl_attach_unlock();
}

long pl_fork_clone(long nr, long a0, long a1, long a2, long a3, long a4, long a5)
{
  /* The handlers in the order pthread_atfork runs them (pl_init.c registers the epoll one
   * last: its prepare runs first, its child handler last). */
  pl_eps_fallback_all();
  pl_atfork_prepare();
  long r = R.syscall(nr, a0, a1, a2, a3, a4, a5);
  if (r == 0) {
    pl_atfork_child();
    pl_eps_fork_child();
    return 0;
  }
  int e = errno;
  pl_atfork_parent();
  if (r > 0)
    pl_inh_fork_parent((pid_t)r);
  errno = e;
  return r;
}

/* The child has no session: libtoe's region is not mapped in it (MADV_DONTFORK) and the pump
 * thread does not exist. Offloaded sockets it inherited with a token are adopted at their first
 * use; the others become orphans (their calls fail with ENOTCONN); its own new sockets attach a
 * session of its own. Our private ends of the
 * placeholders are closed, so that the parent alone decides what its placeholders show. */
void pl_atfork_child(void)
{
  pl_init_fork_child();
  pl_fork_gen++;
  pl_dev_fork_child();
  for (struct psock *ps = pl_psock_first_unlocked(); ps; ps = ps->all_next) {
    pthread_mutex_init(&ps->mu, NULL);
    int st = atomic_load(&ps->state);
    if (st == PS_OFF || st == PS_ZOMBIE) {
      if (ps->afd >= 0)
        R.close(ps->afd);
      if (ps->bfd >= 0)
        R.close(ps->bfd);
      ps->afd = ps->bfd = -1;
      ps->fill_bytes = ps->foreign = 0; /* they were the parent's placeholder's */
      atomic_store(&ps->waiters, 0);    /* the parent's other threads, not here */
      ps->in_epoll = false;             /* its sets hold the parent's placeholder */
      ps->pdev = NULL;
      ps->sd = -1;
      free(ps->zbuf);
      ps->zbuf = NULL;
      ps->zlen = ps->zoff = 0;
      ps->interest = UINT32_MAX;
      pl_inh_fork_child(ps);
      atomic_store(&ps->state, st == PS_OFF && ps->share_token ? PS_INHERIT : PS_ORPHAN);
    }
  }
  pl_tab_fork_child();
}

/* ------------------------------------------------------------------------------------------ */
/* exit                                                                                       */

/* At exit: sockets still open are closed gracefully by toe_detach, which waits (at most
 * TOE_PRELOAD_LINGER_MS) until the device has every byte already sent; the device then finishes
 * those connections on its own. Without this, data still in the shared region would be lost
 * when the session ends with the process. */
__attribute__((destructor)) static void pl_fini(void)
{
  if (!atomic_load(&pl_ready))
    return;
  pl_spin_report();
  struct pdev *p = pl_dev_exit_take();
  if (p)
    pl_dev_finish(p);
}

void pl_dev_finish(struct pdev *p)
{
  pl_dev_stop_pump(p);
  pthread_mutex_lock(&p->mu);
  p->dead = true;
  /* Threads spinning on the session finish their spin (TOE_SPIN_US) before it is detached. */
  for (int i = 0; i < 20 && p->spinners > 0; i++) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_nsec += 50 * 1000000;
    if (ts.tv_nsec >= 1000000000) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(&p->cv, &p->mu, &ts);
  }
  while (p->head) {
    struct psock *ps = p->head;
    pthread_mutex_unlock(&p->mu);
    pthread_mutex_lock(&ps->mu);
    if (ps->pdev == p) {
      if (atomic_load(&ps->state) == PS_OFF) {
        pl_inh_give_back(p, ps); /* what it received and never read, for the other holders */
        ps->sd = -1;             /* toe_detach closes it */
        ps->pend_err = EPIPE;
        atomic_store(&ps->state, PS_ZOMBIE);
      }
      pl_dev_unlink(ps);
    }
    pthread_mutex_unlock(&ps->mu);
    pthread_mutex_lock(&p->mu);
    if (p->head == ps) /* not ours after all: cannot happen; do not loop on it */
      p->head = ps->dnext;
  }
  pthread_mutex_unlock(&p->mu);
  int rc = toe_detach(p->dev, pl_cfg.linger_ms);
  if (rc < 0)
    PL_DBG("detach: %s", strerror(-rc));
  p->dev = NULL;
  /* The pump is gone and no socket is linked any more: nobody writes to its eventfd. */
  if (p->wake_fd >= 0)
    R.close(p->wake_fd);
  p->wake_fd = -1;
}