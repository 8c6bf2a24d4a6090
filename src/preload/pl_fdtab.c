/*
 * libtoe-preload: the descriptor table (descriptor number -> psock, lock-free lookup), the
 * lifetime of a psock (made, mapped by one or more descriptor numbers, closed with the last), and
 * entering one for a call (pl_enter, adopting an inherited shared socket first).
 * docs/interception.md.
 */
#define _GNU_SOURCE

#include "preload/preload.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define CH_BITS 12
#define CH_SIZE (1u << CH_BITS)
#define N_CH 1024u /* descriptors 0 .. 4M-1; higher ones are never offloaded */

typedef _Atomic(struct psock *) slot_t;
static _Atomic(slot_t *) g_ch[N_CH];
static pthread_mutex_t g_tab = PTHREAD_MUTEX_INITIALIZER;
static struct psock *g_all;  /* every psock ever allocated (they are recycled, never freed) */
static struct psock *g_free; /* recycled ones */

void pl_tab_lock(void)
{
  pthread_mutex_lock(&g_tab);
}

void pl_tab_unlock(void)
{
  pthread_mutex_unlock(&g_tab);
}

struct psock *pl_fd_get(int fd)
{
  if (fd < 0 || (unsigned)fd >= N_CH * CH_SIZE)
    return NULL;
  slot_t *c = atomic_load_explicit(&g_ch[(unsigned)fd >> CH_BITS], memory_order_acquire);
  if (!c)
    return NULL;
  return atomic_load_explicit(&c[(unsigned)fd & (CH_SIZE - 1)], memory_order_acquire);
}

int pl_fd_map(int fd, struct psock *ps)
{
  if (fd < 0 || (unsigned)fd >= N_CH * CH_SIZE)
    return -1;
  unsigned ci = (unsigned)fd >> CH_BITS;
  slot_t *c = atomic_load_explicit(&g_ch[ci], memory_order_acquire);
  if (!c) {
    c = calloc(CH_SIZE, sizeof(*c));
    if (!c)
      return -1;
    atomic_store_explicit(&g_ch[ci], c, memory_order_release);
  }
  atomic_store_explicit(&c[(unsigned)fd & (CH_SIZE - 1)], ps, memory_order_release);
  ps->refs++;
  return 0;
}

struct psock *pl_fd_unmap(int fd)
{
  if (fd < 0 || (unsigned)fd >= N_CH * CH_SIZE)
    return NULL;
  slot_t *c = atomic_load_explicit(&g_ch[(unsigned)fd >> CH_BITS], memory_order_acquire);
  if (!c)
    return NULL;
  return atomic_exchange_explicit(&c[(unsigned)fd & (CH_SIZE - 1)], NULL, memory_order_acq_rel);
}

int pl_fd_next(int from)
{
  if (from < 0)
    from = 0;
  for (unsigned fd = (unsigned)from; fd < N_CH * CH_SIZE;) {
    slot_t *c = atomic_load_explicit(&g_ch[fd >> CH_BITS], memory_order_acquire);
    if (!c) {
      fd = ((fd >> CH_BITS) + 1) << CH_BITS;
      continue;
    }
    if (atomic_load_explicit(&c[fd & (CH_SIZE - 1)], memory_order_acquire))
      return (int)fd;
    fd++;
  }
  return -1;
}

struct psock *pl_psock_new(int type, int state)
{
  struct psock *ps = g_free;
  if (ps) {
    g_free = ps->free_next;
  } else {
    ps = calloc(1, sizeof(*ps));
    if (!ps)
      return NULL;
    pthread_mutex_init(&ps->mu, NULL);
    ps->all_next = g_all;
    g_all = ps;
  }
  /* Reset everything but the mutex and the list links. The mutex is never copied or written
   * here: a thread holding a stale pointer (the pump, or a waiting thread, with an event libtoe
   * reported before the socket was closed) may hold it at this moment; it finds the state changed
   * and lets go. Copying it back over a held lock corrupted it (glibc: "Assertion
   * `mutex->__data.__owner == 0' failed" in an nginx worker). */
  _Static_assert(offsetof(struct psock, mu) == 0, "the mutex comes first");
  struct psock *all_next = ps->all_next;
  unsigned gen = atomic_load(&ps->gen);
  atomic_store(&ps->state, PS_FREE);
  memset((char *)ps + sizeof(ps->mu), 0, sizeof(*ps) - sizeof(ps->mu));
  ps->all_next = all_next;
  atomic_store(&ps->gen, gen + 1); /* epoll registrations of the previous socket are stale */
  ps->type = type;
  ps->sd = -1;
  ps->afd = ps->bfd = -1;
  ps->rcvtimeo_ms = ps->sndtimeo_ms = -1;
  atomic_store(&ps->state, state);
  return ps;
}

static void psock_recycle(struct psock *ps)
{
  pl_tab_lock();
  atomic_store(&ps->state, PS_FREE);
  atomic_fetch_add(&ps->gen, 1); /* its epoll registrations are gone with it */
  ps->free_next = g_free;
  g_free = ps;
  pl_tab_unlock();
}

void pl_psock_unref(struct psock *ps)
{
  pl_tab_lock();
  int left = --ps->refs;
  pl_tab_unlock();
  if (left > 0)
    return;
  pl_inh_close(ps); /* its stash; an inherited token never used is given up */
  /* The last descriptor naming it is gone: close the socket. */
  pthread_mutex_lock(&ps->mu);
  int st = atomic_load(&ps->state);
  /* Bytes written to the placeholder behind our back are lost: say so (it becomes a zombie). */
  if (st == PS_OFF && pl_bypass_check(ps))
    st = atomic_load(&ps->state);
  if (st == PS_OFF) {
    toe_close(ps->pdev->dev, ps->sd);
    ps->sd = -1;
    pl_dev_unlink(ps);
  }
  if (ps->afd >= 0)
    R.close(ps->afd);
  if (ps->bfd >= 0)
    R.close(ps->bfd);
  ps->afd = ps->bfd = -1;
  free(ps->zbuf);
  ps->zbuf = NULL;
  pl_eps_sock_gone(
      ps); /* out of the served epoll sets, as the kernel's ep_remove at the last fput */
  atomic_store(&ps->state, PS_FREE);
  pthread_mutex_unlock(&ps->mu);
  psock_recycle(ps);
}

/* Adopts an inherited shared socket (PS_INHERIT) into this process's session: a handle of our
 * own to the same device socket (toe_adopt) behind a new placeholder at the same descriptor
 * number. The inherited placeholder is the parent's (its readiness is the parent's session's),
 * so the descriptor must name a new one. Falls back to an orphan if the device refuses. */
static void adopt(int fd, struct psock *ps)
{
  pthread_mutex_lock(&ps->mu);
  if (atomic_load(&ps->state) != PS_INHERIT) {
    pthread_mutex_unlock(&ps->mu);
    return;
  }
  uint64_t token = ps->share_token;
  ps->share_token = 0;
  int err = 0;
  struct pdev *p = pl_dev_acquire(&err);
  int sd = p ? toe_adopt(p->dev, token) : err;
  int fdfl = R.fcntl(fd, F_GETFD);
  int fl = R.fcntl(fd, F_GETFL);
  bool cloexec = fdfl >= 0 && (fdfl & FD_CLOEXEC);
  bool nonblock = fl >= 0 && (fl & O_NONBLOCK);
  int a = -1, afd = -1, bfd = -1;
  int rc = sd;
  if (sd >= 0) {
    rc = pl_pair(&a, &afd, &bfd, cloexec, nonblock);
    if (rc == 0 && R.dup3(a, fd, cloexec ? O_CLOEXEC : 0) < 0)
      rc = -errno;
    if (a >= 0)
      R.close(a);
  }
  if (rc < 0) {
    if (afd >= 0)
      R.close(afd);
    if (bfd >= 0)
      R.close(bfd);
    if (sd >= 0)
      toe_close(p->dev, sd);
    if (p)
      pl_dev_release(p);
    pl_log("fd %d: inherited socket not adopted (%s): calls on it fail with ENOTCONN", fd,
           strerror(-rc));
    atomic_store(&ps->state, PS_ORPHAN);
    pthread_mutex_unlock(&ps->mu);
    return;
  }
  PL_DBG("fd %d: inherited %s adopted (sd %d)", fd,
         ps->type != SOCK_STREAM ? "UDP socket"
         : ps->listening         ? "listener"
                                 : "connection",
         sd);
  ps->pdev = p;
  ps->sd = sd;
  ps->afd = afd;
  ps->bfd = bfd;
  ps->nonblock = nonblock;
  ps->acc_lazy = ps->type == SOCK_STREAM;
  ps->acc_demand = true; /* it is used: this process serves it */
  ps->shown = SH_OUT;
  ps->interest = UINT32_MAX;
  atomic_store(&ps->state, PS_OFF);
  pl_dev_link(p, ps);
  pl_reflect(ps);
  pthread_mutex_unlock(&ps->mu);
}

int pl_enter_fd(int fd, struct psock *ps)
{
  if (atomic_load(&ps->state) == PS_INHERIT)
    adopt(fd, ps);
  return pl_enter(ps);
}

int pl_enter(struct psock *ps)
{
  int st = atomic_load(&ps->state);
  if (st != PS_OFF && st != PS_ZOMBIE)
    return st;
  pthread_mutex_lock(&ps->mu);
  st = atomic_load(&ps->state);
  if (st != PS_OFF && st != PS_ZOMBIE)
    pthread_mutex_unlock(&ps->mu);
  return st;
}

struct psock *pl_psock_all(void)
{
  pthread_mutex_lock(&g_tab);
  struct psock *all = g_all;
  pthread_mutex_unlock(&g_tab);
  return all;
}

void pl_tab_fork_child(void)
{
  pthread_mutex_init(&g_tab, NULL);
}

struct psock *pl_psock_first_unlocked(void)
{
  return g_all;
}
