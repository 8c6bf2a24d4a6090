/*
 * libtoe-preload: epoll served in the process (docs/interception.md, "Readiness served in user
 * space"). An epoll set made by epoll_create/epoll_create1 is a real kernel set; the library keeps
 * beside it the list of its offloaded members and serves their readiness itself, from libtoe's
 * state, without mirroring it onto the placeholders. The kernel set holds the kernel members and
 * two private descriptors under cookies: libtoe's event descriptor (the device has news) and a
 * per-process eventfd (another thread made a member ready), so one sleep in the kernel covers both.
 *
 * A set falls back to the kernel for good (its offloaded members' placeholders are added to the
 * kernel set and mirrored again, as before) when a waiter the library cannot serve might exist:
 * before a fork (the child shares the kernel set), when the set is duplicated, nested in another
 * set, or passed over SCM_RIGHTS.
 *
 * The blocking calls' waits (pl_wait_fd) are served the same way, each thread sleeping on an epoll
 * set of its own that holds the same two descriptors (pl_eps_wait_sock).
 *
 * A wait costs O(ready members), not O(members): a socket's readiness change (pl_reflect, from
 * libtoe's completions: data, space, EOF, error, a connection to accept) queues its registrations
 * on their sets' ready lists, and a wait looks at those only (as the kernel's ep_poll_callback and
 * ep_send_events do).
 *
 * Locks: a set's mutex is never held while a socket's is taken (a socket's is taken first: the
 * switch of a candidate, epoll_ctl, a readiness change queueing the registrations). Readiness is
 * read from atomics (psock.rdy, rseq_in, rseq_out); sets are recycled, never freed (a thread
 * racing a close sees an inactive set).
 */
#define _GNU_SOURCE

#include "preload/preload.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* The cookies of the library's own descriptors in a kernel set (epoll_data.u64). */
#define COOKIE_DEV 0x746f656b69745f31ull  /* libtoe's event descriptor */
#define COOKIE_WAKE 0x746f656b69745f32ull /* the process's wake eventfd */

#define EPS_MAX 65536 /* sets at descriptors above this are left to the kernel */

/* A registration of an offloaded socket in a served set. The socket lists its registrations
 * (psock.eregs, under the socket's lock), so that a readiness change of the socket queues them on
 * their sets' ready lists (pl_eps_ready): a wait visits the ready members only, not every member.
 * Freed by whoever takes it out of the set (DEL, the socket's last close, the set's close or
 * fallback), once it is out of the socket's list too. */
struct pl_epm {
  struct eps *s; /* its set (sets are recycled, never freed) */
  struct psock *ps;
  int fd;
  unsigned gen; /* ps->gen when registered: a recycled psock is another socket */
  /* under s->mu: */
  uint32_t events;
  epoll_data_t data;
  bool armed; /* EPOLLONESHOT: false once reported, until EPOLL_CTL_MOD */
  bool fresh; /* ADD/MOD: the current readiness is reported once, edge-triggered or not */
  unsigned seq_in, seq_out;     /* the socket's rseq_in/rseq_out at the last report (EPOLLET) */
  bool live;                    /* in s's member list */
  bool queued;                  /* on s's ready list */
  struct pl_epm *next, *prev;   /* s's members */
  struct pl_epm *rnext, *rprev; /* s's ready list */
  /* under ps->mu: */
  struct pl_epm *pnext; /* ps's registrations */
};

struct eps {
  pthread_mutex_t mu;
  atomic_bool active;  /* a set made by epoll_create* at this number, not closed */
  atomic_bool inproc;  /* its offloaded members are served here (false: fallback) */
  bool cookies;        /* COOKIE_WAKE is in the kernel set */
  toe_dev *dev_in;     /* the session whose event descriptor is in the kernel set */
  int nkern;           /* kernel members added through epoll_ctl */
  struct pl_epm *head; /* the offloaded members */
  int n;
  /* The ready list: members whose socket became ready for something since they were last looked
   * at (a level-triggered member stays on it while it is reported: ep_send_events re-queues it
   * the same way), in the order they became ready. */
  struct pl_epm *rhead, *rtail;
  int nready;
};

static _Atomic(struct eps *) g_sets[EPS_MAX];
static pthread_mutex_t g_sets_mu = PTHREAD_MUTEX_INITIALIZER;
static atomic_int g_wake_fd = -1;
static atomic_uint g_rgen;     /* bumped at every new readiness of a socket in a served set */
static atomic_int g_sleepers;  /* threads asleep in a served set */
static atomic_ulong g_served;  /* TOE_PRELOAD_DEBUG: waits served in the process */
static atomic_ulong g_visited; /* ... and the ready-list entries those waits looked at */

static struct eps *set_of(int epfd)
{
  if (epfd < 0 || epfd >= EPS_MAX)
    return NULL;
  struct eps *s = atomic_load_explicit(&g_sets[epfd], memory_order_acquire);
  return s && atomic_load(&s->active) ? s : NULL;
}

static int wake_fd(void)
{
  int fd = atomic_load(&g_wake_fd);
  if (fd >= 0)
    return fd;
  pthread_mutex_lock(&g_sets_mu);
  fd = atomic_load(&g_wake_fd);
  if (fd < 0) {
    fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fd >= 0)
      fd = pl_move_high(fd);
    atomic_store(&g_wake_fd, fd);
  }
  pthread_mutex_unlock(&g_sets_mu);
  return fd;
}

/* ---- the member and ready lists (s->mu held) ---------------------------------------------- */

static void rq_push(struct eps *s, struct pl_epm *m)
{
  if (m->queued)
    return;
  m->queued = true;
  m->rnext = NULL;
  m->rprev = s->rtail;
  if (s->rtail)
    s->rtail->rnext = m;
  else
    s->rhead = m;
  s->rtail = m;
  s->nready++;
}

static void rq_remove(struct eps *s, struct pl_epm *m)
{
  if (!m->queued)
    return;
  m->queued = false;
  if (m->rprev)
    m->rprev->rnext = m->rnext;
  else
    s->rhead = m->rnext;
  if (m->rnext)
    m->rnext->rprev = m->rprev;
  else
    s->rtail = m->rprev;
  s->nready--;
}

/* Takes m out of its set (members and ready list); it stays on its socket's list. */
static void member_unlink(struct eps *s, struct pl_epm *m)
{
  rq_remove(s, m);
  if (m->prev)
    m->prev->next = m->next;
  else
    s->head = m->next;
  if (m->next)
    m->next->prev = m->prev;
  m->live = false;
  s->n--;
}

/* Takes every member out of s: returns them chained by `next` (nobody else follows those links
 * once a member is not live), s->mu held. */
static struct pl_epm *detach_all(struct eps *s)
{
  struct pl_epm *all = s->head;
  for (struct pl_epm *m = all; m; m = m->next) {
    m->live = false;
    m->queued = false;
  }
  s->head = s->rhead = s->rtail = NULL;
  s->n = s->nready = 0;
  return all;
}

/* Takes m (detached from its set) off its socket's list if it is still there (the socket's last
 * close may have taken it off already), ps->mu held. */
static void sock_list_remove(struct pl_epm *m)
{
  for (struct pl_epm **pp = &m->ps->eregs; *pp; pp = &(*pp)->pnext)
    if (*pp == m) {
      *pp = m->pnext;
      return;
    }
}

void pl_eps_ready(struct psock *ps)
{
  for (struct pl_epm *m = ps->eregs; m; m = m->pnext) {
    pthread_mutex_lock(&m->s->mu);
    if (m->live)
      rq_push(m->s, m);
    pthread_mutex_unlock(&m->s->mu);
  }
}

void pl_eps_sock_gone(struct psock *ps)
{
  struct pl_epm *m = ps->eregs, *own = NULL;
  ps->eregs = NULL;
  while (m) {
    struct pl_epm *next = m->pnext;
    pthread_mutex_lock(&m->s->mu);
    bool mine = m->live; /* (not live: a set's close or fallback took it and frees it) */
    if (mine)
      member_unlink(m->s, m);
    pthread_mutex_unlock(&m->s->mu);
    if (mine) {
      m->pnext = own;
      own = m;
    }
    m = next;
  }
  while (own) {
    struct pl_epm *next = own->pnext;
    free(own);
    own = next;
  }
}

static void ensure_cookies(int epfd, struct eps *s, struct pdev *p);

void pl_eps_new(int epfd)
{
  if (epfd < 0 || epfd >= EPS_MAX || pl_foreign_child())
    return;
  struct eps *s = atomic_load(&g_sets[epfd]);
  if (!s) {
    s = calloc(1, sizeof(*s));
    if (!s)
      return; /* the set stays the kernel's alone */
    pthread_mutex_init(&s->mu, NULL);
    atomic_store_explicit(&g_sets[epfd], s, memory_order_release);
  }
  pthread_mutex_lock(&s->mu);
  s->head = s->rhead = s->rtail = NULL;
  s->n = s->nready = 0;
  s->nkern = 0;
  s->cookies = false;
  s->dev_in = NULL;
  atomic_store(&s->inproc, !pl_cfg.disabled);
  /* The wake eventfd from the start: every wait on the set is served (a thread asleep in it when
   * the first offloaded member comes must be woken, and must never see a cookie). */
  if (!pl_cfg.disabled)
    ensure_cookies(epfd, s, NULL);
  atomic_store(&s->active, true);
  pthread_mutex_unlock(&s->mu);
}

void pl_eps_forget(int epfd)
{
  if (epfd < 0 || epfd >= EPS_MAX || pl_foreign_child())
    return;
  struct eps *s = atomic_load(&g_sets[epfd]);
  if (!s || !atomic_load(&s->active))
    return;
  pthread_mutex_lock(&s->mu);
  atomic_store(&s->active, false);
  struct pl_epm *m = detach_all(s);
  pthread_mutex_unlock(&s->mu);
  /* The members are in one set fewer: a socket in none is mirrored on its placeholder again. */
  while (m) {
    struct pl_epm *next = m->next;
    pthread_mutex_lock(&m->ps->mu);
    sock_list_remove(m);
    pthread_mutex_unlock(&m->ps->mu);
    pl_ipc_leave(m->ps, m->gen, false);
    free(m);
    m = next;
  }
}

void pl_eps_forget_range(unsigned first, unsigned last)
{
  for (unsigned fd = first; fd < EPS_MAX && fd <= last; fd++)
    if (atomic_load_explicit(&g_sets[fd], memory_order_relaxed))
      pl_eps_forget((int)fd);
}

/* The readiness of a member's socket as epoll bits (what a kernel socket would show). */
static uint32_t sock_events(struct psock *ps)
{
  unsigned r = atomic_load_explicit(&ps->rdy, memory_order_acquire);
  uint32_t ev = 0;
  if (r & SH_IN)
    ev |= EPOLLIN | EPOLLRDNORM;
  if (r & SH_OUT)
    ev |= EPOLLOUT | EPOLLWRNORM;
  if (r & SH_RDHUP)
    ev |= EPOLLIN | EPOLLRDNORM | EPOLLRDHUP;
  if (r & SH_HUP)
    ev |= EPOLLHUP;
  if (__atomic_load_n(&ps->pend_err, __ATOMIC_RELAXED))
    ev |= EPOLLERR;
  return ev;
}

/* Reports the ready members into evs (at most max), s->mu held: looks at the ready list only.
 * A member leaves the list when it is found not ready (or, edge-triggered, without a new edge),
 * when it is edge-triggered or one-shot and reported; a level-triggered member reported goes to
 * the list's end (re-checked at the next wait, and the others come first: in turn when more are
 * ready than asked for). */
static int collect(struct eps *s, struct epoll_event *evs, int max)
{
  int out = 0, visited = 0;
  for (int budget = s->nready; budget > 0 && out < max && s->rhead; budget--) {
    struct pl_epm *m = s->rhead;
    rq_remove(s, m);
    visited++;
    if (atomic_load(&m->ps->gen) != m->gen || !m->armed)
      continue; /* ONESHOT disarmed: MOD queues it again */
    uint32_t ev = sock_events(m->ps) & (m->events | EPOLLERR | EPOLLHUP);
    if (!ev)
      continue; /* queued again when the socket becomes ready (pl_eps_ready) */
    unsigned si = atomic_load(&m->ps->rseq_in), so = atomic_load(&m->ps->rseq_out);
    if ((m->events & EPOLLET) && !m->fresh) {
      /* A new edge only: a readiness change of a kind this member waits for (the kernel's
       * wake-up keys: an output-only wake-up does not wake an input-only waiter). */
      bool edge = ((m->events & (EPOLLIN | EPOLLRDHUP)) && si != m->seq_in) ||
                  ((m->events & EPOLLOUT) && so != m->seq_out) ||
                  ((ev & (EPOLLERR | EPOLLHUP)) && (si != m->seq_in || so != m->seq_out));
      if (!edge)
        continue;
    }
    m->seq_in = si;
    m->seq_out = so;
    m->fresh = false;
    if (m->events & EPOLLONESHOT)
      m->armed = false;
    else if (!(m->events & EPOLLET))
      rq_push(s, m);
    evs[out].events = ev;
    evs[out].data = m->data;
    out++;
  }
  atomic_fetch_add_explicit(&g_visited, (unsigned long)visited, memory_order_relaxed);
  return out;
}

/* Drops the cookie events of the kernel's answer; *dev is set when the device's was there. */
static int strip_cookies(struct epoll_event *evs, int n, bool *dev)
{
  int w = 0;
  for (int i = 0; i < n; i++) {
    if (evs[i].data.u64 == COOKIE_DEV) {
      *dev = true;
      continue;
    }
    if (evs[i].data.u64 == COOKIE_WAKE)
      continue;
    evs[w++] = evs[i];
  }
  return w;
}

/* The kernel set holds the wake eventfd and the device's event descriptor (s->mu held). */
static void ensure_cookies(int epfd, struct eps *s, struct pdev *p)
{
  if (!s->cookies) {
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.u64 = COOKIE_WAKE};
    int wfd = wake_fd();
    if (wfd >= 0 && (R.epoll_ctl(epfd, EPOLL_CTL_ADD, wfd, &ev) == 0 || errno == EEXIST))
      s->cookies = true;
  }
  if (p && p->dev && s->dev_in != p->dev) {
    /* A session attached again after a loss has a new descriptor; the old one left the kernel set
     * when it was closed. */
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = COOKIE_DEV};
    int efd = toe_event_fd(p->dev);
    if (efd >= 0 && (R.epoll_ctl(epfd, EPOLL_CTL_ADD, efd, &ev) == 0 || errno == EEXIST))
      s->dev_in = p->dev;
  }
}

/* ps's live registration in s under number fd, or NULL (ps->mu and s->mu held). */
static struct pl_epm *find(struct eps *s, int fd, struct psock *ps)
{
  for (struct pl_epm *m = ps->eregs; m; m = m->pnext)
    if (m->s == s && m->live && m->fd == fd && m->gen == atomic_load(&ps->gen))
      return m;
  return NULL;
}

/* A new member (ps->mu and s->mu held), queued: ADD reports the current readiness once. */
static int add_member(struct eps *s, int fd, struct psock *ps, const struct epoll_event *ev)
{
  struct pl_epm *m = calloc(1, sizeof(*m));
  if (!m)
    return -ENOMEM;
  m->s = s;
  m->ps = ps;
  m->fd = fd;
  m->gen = atomic_load(&ps->gen);
  m->events = ev->events;
  m->data = ev->data;
  m->armed = true;
  m->fresh = true;
  m->live = true;
  m->next = s->head;
  if (s->head)
    s->head->prev = m;
  s->head = m;
  s->n++;
  m->pnext = ps->eregs;
  ps->eregs = m;
  rq_push(s, m);
  return 0;
}

/* The kernel's checks of EPOLLEXCLUSIVE (fs/eventpoll.c): only with IN, OUT, ERR, HUP, WAKEUP
 * and ET, and never for EPOLL_CTL_MOD. */
#define EXCL_OK (EPOLLIN | EPOLLOUT | EPOLLERR | EPOLLHUP | EPOLLWAKEUP | EPOLLET | EPOLLEXCLUSIVE)

/* epoll_ctl on a served set for an offloaded descriptor (OFF or ZOMBIE; its lock not held).
 * Returns 0, -errno, or 1 when the set is the kernel's after all. */
static int ctl_served(int epfd, struct eps *s, int op, int fd, struct psock *ps,
                      struct epoll_event *ev)
{
  if (op != EPOLL_CTL_ADD && op != EPOLL_CTL_MOD && op != EPOLL_CTL_DEL)
    return -EINVAL;
  if (op != EPOLL_CTL_DEL && !ev)
    return -EFAULT;
  if (op != EPOLL_CTL_DEL && (ev->events & EPOLLEXCLUSIVE) &&
      (op == EPOLL_CTL_MOD || (ev->events & ~(uint32_t)EXCL_OK)))
    return -EINVAL;
  struct pdev *p = ps->pdev;
  /* The socket's lock, then the set's: its list of registrations changes with the set's. */
  pthread_mutex_lock(&ps->mu);
  pthread_mutex_lock(&s->mu);
  if (!atomic_load(&s->inproc)) {
    pthread_mutex_unlock(&s->mu);
    pthread_mutex_unlock(&ps->mu);
    return 1; /* became a fallback set meanwhile: the kernel's */
  }
  struct pl_epm *m = find(s, fd, ps), *gone = NULL;
  int rc = 0;
  bool joined = false;
  if (op == EPOLL_CTL_ADD) {
    if (m)
      rc = -EEXIST;
    else if ((rc = add_member(s, fd, ps, ev)) == 0)
      joined = true;
  } else if (!m) {
    rc = -ENOENT;
  } else if (op == EPOLL_CTL_MOD) {
    if (m->events & EPOLLEXCLUSIVE) {
      rc = -EINVAL;
    } else {
      m->events = ev->events;
      m->data = ev->data;
      m->armed = true;
      m->fresh = true;
      rq_push(s, m);
    }
  } else {
    member_unlink(s, m);
    sock_list_remove(m);
    gone = m;
  }
  if (rc == 0 && op != EPOLL_CTL_DEL)
    ensure_cookies(epfd, s, p);
  unsigned gen = atomic_load(&ps->gen);
  pthread_mutex_unlock(&s->mu);
  pthread_mutex_unlock(&ps->mu);
  free(gone);
  if (rc == 0)
    pl_ep_mark(epfd);
  if (joined || (rc == 0 && op == EPOLL_CTL_MOD)) {
    pl_ipc_join(ps, ev->events, joined);
    /* Ready already: a thread asleep in this set must see it now, as the kernel's ep_insert and
     * ep_modify wake the set's waiters. */
    if (sock_events(ps) & (ev->events | EPOLLERR | EPOLLHUP))
      pl_eps_raise();
  } else if (gone)
    pl_ipc_leave(ps, gen, false);
  return rc;
}

int pl_eps_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
  struct eps *s = set_of(epfd);
  /* A set inside another set: the outer waiter sleeps in the kernel on the inner set, which must
   * then show its offloaded members itself. */
  if (op == EPOLL_CTL_ADD && fd != epfd && set_of(fd))
    pl_eps_fallback(fd);
  if (!s || !atomic_load(&s->inproc))
    return 1;
  struct psock *ps = pl_fd_get(fd);
  if (!ps || pl_foreign_child()) /* (getpid: a system call, so only here) */
    return 1;
  int st = pl_enter_fd(fd, ps); /* adopts an inherited shared socket */
  if (st == PS_OFF || st == PS_ZOMBIE)
    pthread_mutex_unlock(&ps->mu);
  if (st != PS_OFF && st != PS_ZOMBIE)
    return 1; /* candidates and orphans: the kernel's */
  return ctl_served(epfd, s, op, fd, ps, ev);
}

void pl_eps_kernel_member(int epfd, int op)
{
  struct eps *s = set_of(epfd);
  if (!s)
    return;
  pthread_mutex_lock(&s->mu);
  if (op == EPOLL_CTL_ADD)
    s->nkern++;
  else if (op == EPOLL_CTL_DEL && s->nkern > 0)
    s->nkern--;
  pthread_mutex_unlock(&s->mu);
}

bool pl_eps_switched(int epfd, int fd, struct psock *ps, struct epoll_event *ev)
{
  struct eps *s = set_of(epfd);
  if (!s || !atomic_load(&s->inproc))
    return false;
  pthread_mutex_lock(&s->mu);
  /* (ps->mu is held by the switch: the socket's lock, then the set's, as in ctl_served.) */
  bool ok = atomic_load(&s->inproc) && !find(s, fd, ps) && add_member(s, fd, ps, ev) == 0;
  if (ok) {
    ensure_cookies(epfd, s, ps->pdev);
    if (s->nkern > 0)
      s->nkern--; /* it was counted as a kernel member while a candidate */
  }
  pthread_mutex_unlock(&s->mu);
  if (ok) {
    atomic_fetch_add(&ps->ipc, 1); /* ps->mu is held by the switch: no pl_ipc_join */
    if (ps->listening && (ev->events & EPOLLIN))
      ps->in_epoll = true;
  }
  return ok;
}

void pl_eps_fallback(int epfd)
{
  struct eps *s = set_of(epfd);
  if (!s || pl_foreign_child())
    return;
  pthread_mutex_lock(&s->mu);
  if (!atomic_load(&s->inproc)) {
    pthread_mutex_unlock(&s->mu);
    return;
  }
  atomic_store(&s->inproc, false);
  int n = s->n;
  struct pl_epm *list = detach_all(s);
  if (s->cookies) {
    int wfd = atomic_load(&g_wake_fd);
    if (wfd >= 0)
      R.epoll_ctl(epfd, EPOLL_CTL_DEL, wfd, NULL);
  }
  if (s->dev_in)
    R.epoll_ctl(epfd, EPOLL_CTL_DEL, toe_event_fd(s->dev_in), NULL);
  s->cookies = false;
  s->dev_in = NULL;
  pthread_mutex_unlock(&s->mu);
  /* Every member goes into the kernel set on its placeholder, mirrored from now on. */
  while (list) {
    struct pl_epm *m = list;
    list = m->next;
    pthread_mutex_lock(&m->ps->mu);
    sock_list_remove(m);
    pthread_mutex_unlock(&m->ps->mu);
    if (atomic_load(&m->ps->gen) != m->gen) {
      free(m);
      continue;
    }
    pl_pin(m->ps, m->gen);
    struct epoll_event ev = {.events = m->armed ? m->events : (m->events & EPOLLONESHOT),
                             .data = m->data};
    if (R.epoll_ctl(epfd, EPOLL_CTL_ADD, m->fd, &ev) < 0)
      PL_DBG("epoll %d: fd %d back to the kernel set: %s", epfd, m->fd, strerror(errno));
    else if (m->events & EPOLLIN) {
      /* A waiter that stays, as epoll_ctl through the library notes it: a fork's share
       * (pl_atfork_prepare, which runs after this) keeps the data of a connection in the set
       * coming to this process (pl_inh_share_conn) and a listener serving connections. */
      pthread_mutex_lock(&m->ps->mu);
      if (atomic_load(&m->ps->gen) == m->gen)
        m->ps->in_epoll = true;
      pthread_mutex_unlock(&m->ps->mu);
    }
    pl_ipc_leave(m->ps, m->gen, true);
    free(m);
  }
  PL_DBG("epoll %d: served by the kernel from now on (%d offloaded members)", epfd, n);
}

void pl_eps_fallback_all(void)
{
  for (int fd = 0; fd < EPS_MAX; fd++)
    if (atomic_load_explicit(&g_sets[fd], memory_order_relaxed))
      pl_eps_fallback(fd);
  /* A child may wait on any inherited placeholder: every offloaded socket is mirrored from now. */
  for (struct psock *ps = pl_psock_all(); ps; ps = ps->all_next) {
    pthread_mutex_lock(&ps->mu);
    if (atomic_load(&ps->state) == PS_OFF && !ps->pinned) {
      pl_dev_pin(ps);
      pl_reflect(ps);
    }
    pthread_mutex_unlock(&ps->mu);
  }
}

/* ---- blocking calls (pl_wait_fd) ----------------------------------------------------------- */

/* Each thread's own epoll set for its blocking waits: the wake eventfd and the session's event
 * descriptor, under the cookies. Closed when the thread ends. */
static __thread int t_ep = -1;
static __thread toe_dev *t_dev;
static pthread_key_t g_tkey;
static pthread_once_t g_tkey_once = PTHREAD_ONCE_INIT;

static void thread_set_close(void *unused)
{
  (void)unused;
  if (t_ep >= 0)
    R.close(t_ep);
  t_ep = -1;
  t_dev = NULL;
}

static void thread_key(void)
{
  pthread_key_create(&g_tkey, thread_set_close);
}

static int thread_set(void)
{
  if (t_ep >= 0)
    return t_ep;
  int wfd = wake_fd();
  int ep = R.epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0 || wfd < 0) {
    if (ep >= 0)
      R.close(ep);
    return -1;
  }
  ep = pl_move_high(ep);
  struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.u64 = COOKIE_WAKE};
  if (R.epoll_ctl(ep, EPOLL_CTL_ADD, wfd, &ev) < 0) {
    R.close(ep);
    return -1;
  }
  pthread_once(&g_tkey_once, thread_key);
  pthread_setspecific(g_tkey, (void *)1); /* (the destructor runs for non-NULL values only) */
  t_ep = ep;
  return ep;
}

/* The session's event descriptor is in the thread's set (p spun on by the caller). */
static void thread_set_dev(int ep, struct pdev *p)
{
  if (t_dev != p->dev) {
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = COOKIE_DEV};
    int efd = toe_event_fd(p->dev);
    if (efd >= 0 && (R.epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev) == 0 || errno == EEXIST))
      t_dev = p->dev;
  }
}

int pl_eps_thread_wait_fd(bool *with_dev)
{
  *with_dev = false;
  int ep = thread_set();
  if (ep < 0)
    return -1;
  struct pdev *p = pl_spin_acquire();
  if (p) {
    bool changed = false;
    pl_dev_process(p, &changed);
    thread_set_dev(ep, p);
    *with_dev = t_dev == p->dev;
    pl_spin_release(p);
  }
  return ep;
}

void pl_eps_thread_consume(void)
{
  struct epoll_event evs[4];
  if (t_ep >= 0)
    R.epoll_wait(t_ep, evs, 4, 0); /* (the wake eventfd is edge-triggered: taken off the list) */
}

unsigned pl_eps_gen(void)
{
  return atomic_load(&g_rgen);
}

void pl_eps_sleeping(int d)
{
  atomic_fetch_add(&g_sleepers, d);
}

bool pl_sock_ready(struct psock *ps, short events)
{
  uint32_t want = EPOLLERR | EPOLLHUP;
  if (events & POLLIN)
    want |= EPOLLIN;
  if (events & POLLOUT)
    want |= EPOLLOUT;
  return (sock_events(ps) & want) != 0;
}

int pl_eps_wait_sock(struct psock *ps, unsigned gen, short events, int left_ms)
{
  int ep = thread_set();
  if (ep < 0)
    return -ENOTSUP;
  bool slept = false;
  for (;;) {
    struct pdev *p = pl_spin_acquire();
    if (p) {
      bool changed = false;
      pl_dev_process(p, &changed);
      thread_set_dev(ep, p);
      pl_spin_release(p);
    }
    unsigned g = atomic_load(&g_rgen);
    if (atomic_load(&ps->gen) != gen || atomic_load(&ps->state) != PS_OFF)
      return 1; /* closed or ended meanwhile: the caller's call finds out */
    if (pl_sock_ready(ps, events))
      return 1;
    if (slept || left_ms == 0)
      return 0;
    /* Without the session's descriptor in the set (another thread was attaching), sleep briefly. */
    int tmo = left_ms;
    if ((!p || t_dev != p->dev) && (tmo < 0 || tmo > 10))
      tmo = 10;
    atomic_fetch_add(&g_sleepers, 1);
    int k = 0;
    struct epoll_event evs[4];
    if (atomic_load(&g_rgen) == g)
      k = R.epoll_wait(ep, evs, 4, tmo);
    int e = errno;
    atomic_fetch_sub(&g_sleepers, 1);
    if (k < 0)
      return -e;
    slept = true;
  }
}

void pl_eps_fork_child(void)
{
  thread_set_close(NULL); /* the parent's thread set, shared with it: this thread makes its own */
  /* The child's own wake eventfd: sharing the parent's would wake each other's sets. */
  int fd = atomic_exchange(&g_wake_fd, -1);
  if (fd >= 0)
    R.close(fd);
  atomic_store(&g_sleepers, 0);
  pthread_mutex_init(&g_sets_mu, NULL);
}

void pl_eps_private_closed(unsigned first, unsigned last)
{
  int fd = atomic_load(&g_wake_fd);
  if (fd >= 0 && (unsigned)fd >= first && (unsigned)fd <= last)
    atomic_compare_exchange_strong(&g_wake_fd, &fd, -1); /* closed already: forgotten */
  if (t_ep >= 0 && (unsigned)t_ep >= first && (unsigned)t_ep <= last) {
    t_ep = -1;
    t_dev = NULL;
  }
}

void pl_eps_raise(void)
{
  atomic_fetch_add(&g_rgen, 1);
  if (atomic_load(&g_sleepers) > 0) {
    int fd = atomic_load(&g_wake_fd);
    uint64_t one = 1;
    if (fd >= 0) {
      ssize_t w = R.write(fd, &one, sizeof(one));
      (void)w;
    }
  }
}

bool pl_eps_served(int epfd)
{
  /* (No pl_foreign_child here: getpid is a system call, and this is every wait's path.) */
  struct eps *s = set_of(epfd);
  return s && atomic_load(&s->inproc) && s->cookies;
}

/* Processes what the device reported, in this thread. */
static void process(void)
{
  struct pdev *p = pl_spin_acquire();
  if (!p)
    return;
  bool changed = false;
  pl_dev_process(p, &changed);
  pl_spin_release(p);
}

struct served_args {
  int epfd;
  struct eps *s;
  struct epoll_event *evs;
  int max;
  const sigset_t *mask;
  bool kernel_asked; /* the kernel set was just asked (a sleep that woke for our descriptors) */
};

/* The members ready now, then (when some are, and the set has kernel members) the kernel's with
 * a zero timeout. > 0 events, 0 none, or -errno. */
static int ready_now(void *arg)
{
  struct served_args *a = arg;
  pthread_mutex_lock(&a->s->mu);
  int n = collect(a->s, a->evs, a->max);
  int nk = a->s->nkern;
  pthread_mutex_unlock(&a->s->mu);
  if (n > 0 && n < a->max && nk > 0 && !a->kernel_asked) {
    int k = R.epoll_pwait(a->epfd, a->evs + n, a->max - n, 0, a->mask);
    if (k > 0) {
      bool dev = false;
      n += strip_cookies(a->evs + n, k, &dev);
    }
  }
  return n;
}

static int served_wait(int epfd, struct eps *s, struct epoll_event *evs, int max, int64_t tmo_ms,
                       const sigset_t *mask)
{
  atomic_fetch_add_explicit(&g_served, 1, memory_order_relaxed);
  struct served_args a = {epfd, s, evs, max, mask, false};
  uint64_t end = tmo_ms > 0 ? pl_mono_ms() + (uint64_t)tmo_ms : 0;
  bool first = true;
  unsigned idle = 0;
  for (;;) {
    process();
    unsigned gen = atomic_load(&g_rgen);
    int n = ready_now(&a);
    a.kernel_asked = false;
    if (n != 0)
      return n;
    if (tmo_ms == 0)
      return 0;
    if (first && pl_cfg.drain && pl_cfg.spin_us > 0) {
      first = false;
      n = pl_spin_wait(ready_now, &a);
      if (n > 0)
        return n;
      gen = atomic_load(&g_rgen) - 1; /* check again below: the spin processed events */
    }
    int left = -1;
    if (tmo_ms > 0) {
      uint64_t now = pl_mono_ms();
      if (now >= end)
        return 0;
      left = (int)(end - now);
    }
    /* Asleep in the kernel set: libtoe's event descriptor and the wake eventfd are in it. A
     * readiness raised after our collection either sees us counted (and writes the eventfd) or is
     * seen here (g_rgen moved): no lost wake-up. */
    atomic_fetch_add(&g_sleepers, 1);
    int k = 0;
    if (atomic_load(&g_rgen) == gen)
      k = R.epoll_pwait(epfd, evs, max, left, mask);
    atomic_fetch_sub(&g_sleepers, 1);
    if (k < 0)
      return -1; /* EINTR and the rest: errno as the kernel set it */
    bool dev = false;
    int real = strip_cookies(evs, k, &dev);
    a.kernel_asked = k < max; /* it had nothing else to give this moment */
    if (real > 0) {
      if (real < max && dev) {
        /* The device spoke too: add what became ready, after the kernel's. */
        process();
        pthread_mutex_lock(&s->mu);
        real += collect(s, evs + real, max - real);
        pthread_mutex_unlock(&s->mu);
      }
      return real;
    }
    /* Only our own descriptors: insurance against a device descriptor that stays readable with
     * nothing for us (the pump's rule). */
    if (dev && ++idle > 32) {
      struct timespec ts = {0, 1000000};
      nanosleep(&ts, NULL);
    } else if (!dev) {
      idle = 0;
    }
  }
}

int pl_eps_wait(int epfd, struct epoll_event *evs, int max, int64_t tmo_ms, const sigset_t *mask)
{
  struct eps *s = set_of(epfd);
  if (!s)
    return R.epoll_pwait(epfd, evs, max, (int)tmo_ms, mask);
  if (max <= 0 || max > (int)(INT32_MAX / sizeof(struct epoll_event))) {
    errno = EINVAL;
    return -1;
  }
  return served_wait(epfd, s, evs, max, tmo_ms, mask);
}

void pl_eps_report(void)
{
  if (atomic_load(&g_served))
    PL_DBG("epoll: %lu waits served in the process, %lu ready-list entries looked at",
           atomic_load(&g_served), atomic_load(&g_visited));
}

PL_API int epoll_create1(int flags)
{
  pl_init();
  int fd = R.epoll_create1(flags);
  if (fd >= 0)
    pl_eps_new(fd);
  return fd;
}

PL_API int epoll_create(int size)
{
  pl_init();
  int fd = R.epoll_create(size);
  if (fd >= 0)
    pl_eps_new(fd);
  return fd;
}
