/*
 * libtoe-preload: device sessions (one toe_dev per process, attached at the first offloaded
 * socket, attached again after a loss), the sockets registered on each, and the pump thread that
 * reflects the device's readiness changes onto the placeholders. docs/interception.md.
 */
#define _GNU_SOURCE

#include "preload/preload.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------------------------ */
/* Devices                                                                                    */

static pthread_mutex_t g_attach = PTHREAD_MUTEX_INITIALIZER;
static struct pdev *g_dev;
static uint64_t g_retry_ms;
static int g_last_err;
static bool g_warned;
static bool g_exiting;

static void *pump_main(void *arg);

static struct pdev *dev_open(int *err)
{
  struct toe_attach_opts o;
  toe_attach_opts_init(&o);
  o.origin = TOE_ORIGIN_PRELOAD; /* toectl flows: "preload" */
  toe_dev *dev = NULL;
  /* libtoe makes its own system calls (src/host/port_linux.c): none of its descriptors passes
   * through our interposers, and it closes a forked child's copy of its control socket itself. */
  int rc = toe_attach(pl_cfg.ctl[0] ? pl_cfg.ctl : NULL, &o, &dev);
  if (rc < 0) {
    *err = rc;
    return NULL;
  }
  struct pdev *p = calloc(1, sizeof(*p));
  if (!p) {
    toe_detach(dev, 0);
    *err = -ENOMEM;
    return NULL;
  }
  p->dev = dev;
  pthread_mutex_init(&p->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&p->cv, &ca);
  pthread_condattr_destroy(&ca);
  p->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  /* The pump takes no signals: they stay the application's. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int tr = pthread_create(&p->thr, NULL, pump_main, p);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (tr != 0 || p->wake_fd < 0) {
    if (tr == 0) {
      atomic_store(&p->stop, true);
      pthread_join(p->thr, NULL);
    }
    if (p->wake_fd >= 0)
      R.close(p->wake_fd);
    toe_detach(dev, 0);
    free(p);
    *err = -ENOMEM;
    return NULL;
  }
  p->thr_started = true;
  struct toe_dev_info info;
  if (toe_dev_info(dev, &info) == 0)
    PL_DBG("attached to %s: client %u, %u buffers of %u bytes",
           pl_cfg.ctl[0] ? pl_cfg.ctl : "(default)", info.client_id, info.buf_count, info.buf_size);
  return p;
}

struct pdev *pl_dev_acquire(int *err)
{
  for (int attempt = 0; attempt < 2; attempt++) {
    pthread_mutex_lock(&g_attach);
    if (g_exiting) {
      pthread_mutex_unlock(&g_attach);
      *err = -ENETDOWN;
      return NULL;
    }
    struct pdev *p = g_dev;
    if (!p) {
      uint64_t now = pl_mono_ms();
      if (g_retry_ms && now < g_retry_ms) {
        *err = g_last_err;
        pthread_mutex_unlock(&g_attach);
        return NULL;
      }
      p = dev_open(err);
      if (!p) {
        g_last_err = *err;
        g_retry_ms = now + 1000;
        if (!g_warned) {
          g_warned = true;
          char path[128];
          if (pl_cfg.ctl[0])
            snprintf(path, sizeof(path), "%s", pl_cfg.ctl);
          else if (toe_ctl_default(path, sizeof(path)) < 0)
            snprintf(path, sizeof(path), "/run/toekit/*.sock");
          if (pl_cfg.strict)
            pl_log("no device at %s (%s) and TOE_STRICT=1: offloaded socket calls fail", path,
                   strerror(-*err));
          else
            pl_log("no device at %s (%s): running on the kernel's network stack", path,
                   strerror(-*err));
        }
        pthread_mutex_unlock(&g_attach);
        return NULL;
      }
      g_dev = p;
      g_retry_ms = 0;
    }
    pthread_mutex_lock(&p->mu);
    bool ok = !p->dead;
    if (ok)
      p->live++;
    pthread_mutex_unlock(&p->mu);
    if (!ok && g_dev == p)
      g_dev = NULL; /* lost: the next attempt attaches again */
    pthread_mutex_unlock(&g_attach);
    if (ok)
      return p;
  }
  *err = -ENETDOWN;
  return NULL;
}

void pl_dev_release(struct pdev *p)
{
  pthread_mutex_lock(&p->mu);
  p->live--;
  pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->mu);
}

static void pin_count(struct pdev *p, struct psock *ps)
{
  if (ps->pin_counted)
    return;
  ps->pin_counted = true;
  atomic_fetch_add(&p->npinned, 1);
  if (atomic_load(&p->noefd)) {
    uint64_t one = 1; /* the pump sleeps without the device's descriptor: it must take it again */
    ssize_t w = R.write(p->wake_fd, &one, sizeof(one));
    (void)w;
  }
}

void pl_dev_pin(struct psock *ps)
{
  ps->pinned = true;
  if (atomic_load(&ps->state) == PS_OFF && ps->pdev)
    pin_count(ps->pdev, ps);
}

void pl_dev_link(struct pdev *p, struct psock *ps)
{
  ps->pin_counted = false; /* (a forked child's copy may say otherwise) */
  if (ps->pinned)
    pin_count(p, ps);
  pthread_mutex_lock(&p->mu);
  ps->dprev = NULL;
  ps->dnext = p->head;
  if (p->head)
    p->head->dprev = ps;
  p->head = ps;
  pthread_mutex_unlock(&p->mu);
}

void pl_dev_unlink(struct psock *ps)
{
  struct pdev *p = ps->pdev;
  if (!p)
    return;
  if (ps->pin_counted) {
    ps->pin_counted = false;
    atomic_fetch_sub(&p->npinned, 1);
  }
  pthread_mutex_lock(&p->mu);
  if (ps->dprev)
    ps->dprev->dnext = ps->dnext;
  else if (p->head == ps)
    p->head = ps->dnext;
  if (ps->dnext)
    ps->dnext->dprev = ps->dprev;
  ps->dnext = ps->dprev = NULL;
  p->live--;
  pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->mu);
  ps->pdev = NULL;
}

/* Turns every socket of a device into a zombie and waits until none is left (sockets being
 * switched at the moment finish on it first). Then nothing can name the toe_dev any more. */
static void dev_drain(struct pdev *p)
{
  pthread_mutex_lock(&p->mu);
  p->dead = true;
  while (p->live > 0 || p->spinners > 0) {
    struct psock *ps = p->head;
    if (!ps) {
      struct timespec ts;
      clock_gettime(CLOCK_MONOTONIC, &ts);
      ts.tv_nsec += 100 * 1000000;
      if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
      }
      pthread_cond_timedwait(&p->cv, &p->mu, &ts);
      continue;
    }
    pthread_mutex_unlock(&p->mu);
    pthread_mutex_lock(&ps->mu);
    if (ps->pdev == p && atomic_load(&ps->state) == PS_OFF)
      pl_zombify(ps);
    pthread_mutex_unlock(&ps->mu);
    pthread_mutex_lock(&p->mu);
  }
  pthread_mutex_unlock(&p->mu);
}

/* Called by the pump that found its session lost and took it off g_dev (g_attach held then). */
static void dev_lost(struct pdev *p)
{
  int st = toe_dev_status(p->dev);
  pl_log("device lost (%s): its connections are reset; new sockets attach again",
         strerror(st < 0 ? -st : ENETDOWN));
  dev_drain(p);
  toe_detach(p->dev, 0);
  p->dev = NULL;
  /* The pdev itself is never freed: a racing thread may still look at p->dead. */
}

#define PUMP_BATCH_MAX 256

int pl_dev_process(struct pdev *p, bool *changed)
{
  struct toe_event ev[PUMP_BATCH_MAX];
  int batch = pl_cfg.batch > 0 && pl_cfg.batch <= PUMP_BATCH_MAX ? pl_cfg.batch : 64;
  int n, total = 0;
  do {
    n = toe_poll(p->dev, ev, batch, 0);
    for (int i = 0; i < n; i++) {
      if (ev[i].sd == TOE_SD_DEVICE) {
        if (ev[i].events & TOE_POLLHUP)
          atomic_store(&p->lost_seen, true);
        else
          PL_DBG("the device announced that it is stopping");
        *changed = true;
        continue;
      }
      struct psock *ps = ev[i].udata;
      if (!ps)
        continue;
      pthread_mutex_lock(&ps->mu);
      if (atomic_load(&ps->state) == PS_OFF && ps->pdev == p && ps->sd == ev[i].sd) {
        unsigned before = ps->shown, rdy = atomic_load(&ps->rdy);
        pl_reflect(ps);
        if (ps->shown != before || atomic_load(&ps->rdy) != rdy ||
            atomic_load(&ps->state) != PS_OFF)
          *changed = true;
      }
      pthread_mutex_unlock(&ps->mu);
    }
    total += n > 0 ? n : 0;
  } while (n == batch);
  return total;
}

/* Bytes on a placeholder's B end beyond our fill are the application's writes behind our back
 * (pl_bypass_check). They are found when B is drained (pl_show, pl_reflect), when the socket
 * closes, and by this scan every PL_BYPASS_SCAN_MS of the pump's life: never on the per-message
 * path (each fill used to wake the pump for an epoll_wait, a lock and a FIONREAD). A socket whose
 * lock is busy is checked at the next scan (a trylock: the device lock is held, and the lock
 * order is socket first). */
#define PL_BYPASS_SCAN_MS 500

static void scan_placeholders(struct pdev *p)
{
  pthread_mutex_lock(&p->mu);
  for (struct psock *ps = p->head; ps; ps = ps->dnext) {
    if (pthread_mutex_trylock(&ps->mu) != 0)
      continue;
    if (atomic_load(&ps->state) == PS_OFF && ps->pdev == p && ps->bfd >= 0) {
      int n = 0;
      if (R.ioctl(ps->bfd, FIONREAD, &n) == 0 && n > 0 && (size_t)n > ps->fill_bytes)
        ps->bypass_seen = true; /* reported below, without the device lock */
    }
    /* Bytes another holder left in the stash when it ended (pl_inh_give_back) wake nobody:
     * shown here, below. */
    if (atomic_load(&ps->state) == PS_OFF && ps->pdev == p && ps->stash &&
        (!(atomic_load(&ps->rdy) & SH_IN) || (ps->pinned && !(ps->shown & SH_IN))) &&
        pl_inh_stashed(ps))
      ps->stash_poke = true;
    pthread_mutex_unlock(&ps->mu);
  }
  /* Reporting zombifies, which unlinks (taking p->mu): one socket at a time, outside the walk. */
  for (;;) {
    struct psock *hit = NULL;
    for (struct psock *ps = p->head; ps && !hit; ps = ps->dnext)
      if (ps->bypass_seen || ps->stash_poke)
        hit = ps;
    bool bypass = hit && hit->bypass_seen;
    if (hit)
      hit->bypass_seen = hit->stash_poke = false;
    pthread_mutex_unlock(&p->mu);
    if (!hit)
      return;
    pthread_mutex_lock(&hit->mu);
    if (atomic_load(&hit->state) == PS_OFF && hit->pdev == p) {
      if (bypass)
        pl_bypass_check(hit);
      else
        pl_reflect(hit);
    }
    pthread_mutex_unlock(&hit->mu);
    pthread_mutex_lock(&p->mu);
  }
}

static void *pump_main(void *arg)
{
  struct pdev *p = arg;
  int efd = toe_event_fd(p->dev);
  unsigned idle = 0;
  bool lost = false;
  uint64_t next_scan = pl_mono_ms() + PL_BYPASS_SCAN_MS;
  while (!atomic_load(&p->stop) && !lost) {
    /* libtoe's event descriptor only while a pinned socket needs the pump: the sockets served
     * in the process are processed by the threads waiting on them (no hand-off, and no second
     * thread woken by every event). noefd is set before npinned is read again, and a pin counts
     * before it reads noefd: one of the two sees the other. */
    struct pollfd pf[2] = {{.fd = p->wake_fd, .events = POLLIN}, {.fd = efd, .events = POLLIN}};
    atomic_store(&p->noefd, true);
    nfds_t nf = atomic_load(&p->npinned) > 0 ? 2 : 1;
    if (nf == 2)
      atomic_store(&p->noefd, false);
    uint64_t now = pl_mono_ms();
    int r = R.poll(pf, nf, now >= next_scan ? 0 : (int)(next_scan - now));
    atomic_store(&p->noefd, false);
    if (atomic_load(&p->stop))
      break;
    if (r > 0 && (pf[0].revents & POLLIN)) {
      uint64_t v;
      ssize_t rd = R.read(p->wake_fd, &v, sizeof(v));
      (void)rd;
    }
    if (r < 0 && errno != EINTR) {
      struct timespec ts = {0, 10 * 1000000};
      nanosleep(&ts, NULL);
    }
    now = pl_mono_ms();
    if (now >= next_scan) {
      scan_placeholders(p);
      next_scan = now + PL_BYPASS_SCAN_MS;
    }
    bool changed = false;
    int total = pl_dev_process(p, &changed);
    lost = atomic_load(&p->lost_seen);
    if (!lost && r == 0 && toe_dev_status(p->dev) < 0)
      lost = true;
    /* Insurance against a socket libtoe keeps reporting without anything for us to show (one
     * whose interest is not set yet): do not spin on it. */
    if (total > 0 && !changed) {
      if (++idle > 32) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
      }
    } else {
      idle = 0;
    }
  }
  if (lost) {
    /* Unless a thread is ending the session already (p->stop is set under g_attach by
     * pl_dev_exit_take and pl_dev_before_close_range; that thread joins us and detaches). */
    pthread_mutex_lock(&g_attach);
    bool mine = !atomic_load(&p->stop);
    if (mine) {
      pthread_detach(pthread_self());
      if (g_dev == p)
        g_dev = NULL;
    }
    pthread_mutex_unlock(&g_attach);
    if (mine)
      dev_lost(p);
  }
  return NULL;
}

void pl_attach_lock(void)
{
  pthread_mutex_lock(&g_attach);
}

void pl_attach_unlock(void)
{
  pthread_mutex_unlock(&g_attach);
}

struct pdev *pl_dev_current(void)
{
  return g_dev;
}

void pl_dev_fork_child(void)
{
  g_dev = NULL;
  g_retry_ms = 0;
  /* The session's control socket is libtoe's to close in a child (its own atfork handler). */
  pthread_mutex_init(&g_attach, NULL);
}

struct pdev *pl_dev_exit_take(void)
{
  pthread_mutex_lock(&g_attach);
  struct pdev *p = g_dev;
  g_dev = NULL;
  g_exiting = true;
  if (p)
    atomic_store(&p->stop, true); /* the pump leaves the session to us, even if it was lost */
  pthread_mutex_unlock(&g_attach);
  return p;
}

static bool in_range(int fd, unsigned first, unsigned last)
{
  return fd >= 0 && (unsigned)fd >= first && (unsigned)fd <= last;
}

struct pdev *pl_dev_before_close_range(unsigned first, unsigned last)
{
  pthread_mutex_lock(&g_attach);
  struct pdev *p = g_dev;
  if (!p || atomic_load(&p->stop) ||
      (!in_range(toe_event_fd(p->dev), first, last) && !in_range(p->wake_fd, first, last))) {
    pthread_mutex_unlock(&g_attach);
    return NULL;
  }
  g_dev = NULL; /* a socket made later attaches a session of its own again */
  atomic_store(&p->stop, true);
  pthread_mutex_unlock(&g_attach);
  return p;
}

void pl_dev_stop_pump(struct pdev *p)
{
  atomic_store(&p->stop, true);
  uint64_t one = 1;
  ssize_t w = R.write(p->wake_fd, &one, sizeof(one));
  (void)w;
  pthread_join(p->thr, NULL);
}

struct pdev *pl_spin_acquire(void)
{
  /* Not while another thread attaches (that can take the device's round trip): no spin then. */
  if (pthread_mutex_trylock(&g_attach) != 0)
    return NULL;
  struct pdev *p = g_dev;
  if (p) {
    pthread_mutex_lock(&p->mu);
    if (p->dead || !p->dev)
      p = (pthread_mutex_unlock(&p->mu), NULL);
    else
      p->spinners++, pthread_mutex_unlock(&p->mu);
  }
  pthread_mutex_unlock(&g_attach);
  return p;
}

void pl_spin_release(struct pdev *p)
{
  if (atomic_load(&p->lost_seen)) {
    /* Seen by a waiting thread: the pump handles the loss (it drains and detaches). */
    uint64_t one = 1;
    ssize_t w = R.write(p->wake_fd, &one, sizeof(one));
    (void)w;
  }
  pthread_mutex_lock(&p->mu);
  p->spinners--;
  pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->mu);
}
