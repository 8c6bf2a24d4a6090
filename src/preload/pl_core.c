/*
 * libtoe-preload core: initialisation, the descriptor table, device sessions and their pump
 * threads, the placeholder readiness machinery, the switch of a kernel socket to the device,
 * fork and exit (docs/interception.md).
 *
 * Locks, in the order they are taken: g_attach (device attach) > psock.mu > pdev.mu > g_tab
 * (descriptor table). libtoe's own lock is taken inside toe_* calls and never held across ours.
 * A descriptor that is not ours is recognised without any lock (one or two atomic loads), so
 * calls on kernel descriptors, including those made in signal handlers, never block on us and
 * never allocate.
 */
#define _GNU_SOURCE

#include "preload/preload.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

struct pl_real R;
struct pl_config pl_cfg;
atomic_bool pl_ready;
unsigned pl_fork_gen;
static pid_t g_pid; /* ours; a different getpid() means a vfork child sharing our memory */

static pthread_once_t g_once = PTHREAD_ONCE_INIT;

/* ------------------------------------------------------------------------------------------ */
/* Logging                                                                                    */

void pl_log(const char *fmt, ...)
{
  char buf[512];
  int n = snprintf(buf, sizeof(buf), "toe-preload[%d]: ", (int)getpid());
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
  va_end(ap);
  if (m < 0)
    m = 0;
  size_t len = (size_t)n + (size_t)m;
  if (len > sizeof(buf) - 2)
    len = sizeof(buf) - 2;
  buf[len++] = '\n';
  int e = errno;
  ssize_t w = R.write ? R.write(2, buf, len) : -1;
  (void)w;
  errno = e;
}

/* ------------------------------------------------------------------------------------------ */
/* Initialisation                                                                             */

static void atfork_prepare(void);
static void atfork_parent(void);
static void atfork_child(void);

/* Rules that always come first: loopback is the host's own, never the device's. */
static const char *const RULES_ALWAYS = "!*:127.0.0.0/8:*";
/* The default when neither TOE_OFFLOAD nor TOE_OFFLOAD_FILE is set: every AF_INET TCP/UDP socket
 * except multicast and limited broadcast UDP, which the device does not carry. */
static const char *const RULES_DEFAULT =
    "!udp:224.0.0.0/4:* !udp:255.255.255.255:* tcp:*:* udp:*:* listen:*:*";

static void load_rules(const char *what, const char *text)
{
  char err[128];
  int bad = pl_rules_parse(&pl_cfg.rules, text, err, sizeof(err));
  if (bad)
    pl_log("%s: %d malformed rule(s) ignored (%s)", what, bad, err);
}

static void load_rules_file(const char *path)
{
  FILE *f = fopen(path, "re");
  if (!f) {
    pl_log("TOE_OFFLOAD_FILE %s: %s", path, strerror(errno));
    return;
  }
  char *text = NULL;
  size_t len = 0, cap = 0;
  char chunk[1024];
  size_t k;
  while ((k = fread(chunk, 1, sizeof(chunk), f)) > 0) {
    if (len + k + 1 > cap) {
      size_t ncap = (cap ? cap * 2 : 4096);
      while (ncap < len + k + 1)
        ncap *= 2;
      char *t = realloc(text, ncap);
      if (!t)
        break;
      text = t;
      cap = ncap;
    }
    memcpy(text + len, chunk, k);
    len += k;
  }
  fclose(f);
  if (text) {
    text[len] = 0;
    load_rules("TOE_OFFLOAD_FILE", text);
    free(text);
  }
}

static void load_config(void)
{
  /* secure_getenv: in a set-user-ID or file-capability program (AT_SECURE) the environment is
   * the caller's, not the program owner's: it must not choose the device or the rules. */
  const char *s = secure_getenv("TOE_PRELOAD_DEBUG");
  pl_cfg.debug = s && *s && strcmp(s, "0") != 0;
  s = secure_getenv("TOE_STRICT");
  pl_cfg.strict = s && *s && strcmp(s, "0") != 0;
  s = secure_getenv("TOE_CTL");
  if (s && *s)
    snprintf(pl_cfg.ctl, sizeof(pl_cfg.ctl), "%s", s);
  pl_cfg.linger_ms = 5000;
  s = secure_getenv("TOE_PRELOAD_LINGER_MS");
  if (s && *s)
    pl_cfg.linger_ms = atoi(s);

  const char *rules = secure_getenv("TOE_OFFLOAD");
  const char *file = secure_getenv("TOE_OFFLOAD_FILE");
  if (rules && (!strcmp(rules, "none") || !strcmp(rules, "off") || !strcmp(rules, "0"))) {
    pl_cfg.disabled = true;
    return;
  }
  load_rules("built-in", RULES_ALWAYS);
  if ((!rules || !*rules) && (!file || !*file)) {
    load_rules("built-in", RULES_DEFAULT);
  } else {
    if (rules && *rules)
      load_rules("TOE_OFFLOAD", rules);
    if (file && *file)
      load_rules_file(file);
  }
  PL_DBG("%d offload rule(s)%s%s", pl_cfg.rules.n, pl_cfg.strict ? ", strict" : "",
         pl_cfg.ctl[0] ? "" : ", default control socket");
}

#define SYM(name) R.name = (__typeof__(R.name))dlsym(RTLD_NEXT, #name)

static void init_once(void)
{
  SYM(socket);
  SYM(bind);
  SYM(listen);
  SYM(accept);
  SYM(accept4);
  SYM(connect);
  SYM(send);
  SYM(sendto);
  SYM(sendmsg);
  SYM(sendmmsg);
  SYM(recv);
  SYM(recvfrom);
  SYM(recvmsg);
  SYM(recvmmsg);
  SYM(read);
  SYM(write);
  SYM(readv);
  SYM(writev);
  SYM(pread);
  SYM(close);
  SYM(close_range);
  SYM(shutdown);
  SYM(getsockopt);
  SYM(setsockopt);
  SYM(getsockname);
  SYM(getpeername);
  SYM(fcntl);
  SYM(fcntl64);
  SYM(ioctl);
  SYM(poll);
  SYM(ppoll);
  SYM(select);
  SYM(pselect);
  SYM(epoll_ctl);
  SYM(dup);
  SYM(dup2);
  SYM(dup3);
  SYM(sendfile);
  SYM(splice);
  if (!R.fcntl64)
    R.fcntl64 = R.fcntl;
  g_pid = getpid();
  load_config();
  pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
  atomic_store_explicit(&pl_ready, true, memory_order_release);
}

void pl_init_slow(void)
{
  pthread_once(&g_once, init_once);
}

bool pl_foreign_child(void)
{
  return getpid() != g_pid;
}

/* ------------------------------------------------------------------------------------------ */
/* Descriptor table                                                                           */

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
  /* Reset everything but the mutex and the list links. */
  struct psock *all_next = ps->all_next;
  pthread_mutex_t mu = ps->mu;
  memset(ps, 0, sizeof(*ps));
  ps->mu = mu;
  ps->all_next = all_next;
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
  /* The last descriptor naming it is gone: close the socket. */
  pthread_mutex_lock(&ps->mu);
  int st = atomic_load(&ps->state);
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
         ps->type == SOCK_STREAM ? "listener" : "UDP socket", sd);
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

static void drain_fd(int fd)
{
  char buf[4096];
  for (int i = 0; i < 64; i++) {
    ssize_t r = R.recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (r <= 0)
      break;
  }
}

static bool fd_writable(int fd)
{
  struct pollfd pf = {.fd = fd, .events = POLLOUT};
  return R.poll(&pf, 1, 0) == 1 && (pf.revents & POLLOUT);
}

static void fill_fd(int fd)
{
  for (int i = 0; i < 16 && fd_writable(fd); i++) {
    ssize_t r = R.send(fd, g_zeros, sizeof(g_zeros), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (r < 0 && errno != EAGAIN && errno != EINTR)
      break;
  }
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
      ssize_t r = R.send(ps->bfd, "t", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
      (void)r;
      ps->shown |= SH_IN;
    } else if (!(want & SH_IN) && (ps->shown & SH_IN)) {
      drain_fd(ps->afd);
      ps->shown &= ~SH_IN;
    }
  }
  if ((want & SH_OUT) && !(ps->shown & SH_OUT)) {
    drain_fd(ps->bfd);
    ps->shown |= SH_OUT;
  } else if (!(want & SH_OUT) && (ps->shown & SH_OUT)) {
    fill_fd(ps->afd);
    ps->shown &= ~SH_OUT;
  }
  /* Ask libtoe to report only what the placeholder does not show yet: its readiness is
   * level-triggered, and a shown bit can only go away through one of our own calls (a read, a
   * send, an accept), which reflects the state again. */
  uint32_t in = 0;
  if (!(ps->shown & SH_IN) && !(ps->acc_lazy && !ps->acc_demand))
    in |= TOE_POLLIN; /* not for a shared listener this process does not serve */
  if (!(ps->shown & SH_OUT))
    in |= TOE_POLLOUT;
  if (!(ps->shown & SH_RDHUP) && ps->type == SOCK_STREAM && !ps->listening)
    in |= TOE_POLLRDHUP;
  if (in != ps->interest && ps->sd >= 0) {
    toe_poll_ctl(ps->pdev->dev, ps->sd, in, ps);
    ps->interest = in;
  }
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
  if ((ev & TOE_POLLIN) || ps->pend_err)
    want |= SH_IN;
  if (ev & TOE_POLLOUT)
    want |= SH_OUT;
  if (ev & TOE_POLLRDHUP)
    want |= SH_RDHUP;
  pl_show(ps, want);
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
        ssize_t r = R.send(ps->afd, "e", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
        (void)r;
      }
    } else {
      drain_fd(ps->bfd);
    }
    R.close(ps->bfd);
    ps->bfd = -1;
  }
  ps->shown = SH_IN | SH_OUT | SH_RDHUP | SH_TERM;
  errno = e;
}

void pl_refresh_fd(int fd)
{
  struct psock *ps = pl_fd_get(fd);
  if (!ps)
    return;
  if (pl_enter_fd(fd, ps) == PS_OFF) {
    if (ps->acc_lazy && !ps->acc_demand) {
      /* This process polls its shared listener: it serves connections (toe_poll_ctl with
       * TOE_POLLIN makes libtoe post ACCEPTs for it). */
      ps->acc_demand = true;
      pl_show(ps, ps->shown & (SH_IN | SH_OUT | SH_RDHUP));
    }
    pl_reflect(ps);
  }
  int st = atomic_load(&ps->state);
  if (st == PS_OFF || st == PS_ZOMBIE)
    pthread_mutex_unlock(&ps->mu);
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
    bool handler = (sa.sa_flags & SA_SIGINFO)
                       ? sa.sa_sigaction != NULL
                       : (sa.sa_handler != SIG_DFL && sa.sa_handler != SIG_IGN);
    if (handler && !(sa.sa_flags & SA_RESTART))
      return false;
  }
  return true;
}

static uint64_t mono_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int pl_wait_fd(int fd, short events, int timeout_ms)
{
  uint64_t end = timeout_ms >= 0 ? mono_ms() + (uint64_t)timeout_ms : 0;
  for (;;) {
    struct pollfd pf = {.fd = fd, .events = events};
    int left = -1;
    if (timeout_ms >= 0) {
      uint64_t now = mono_ms();
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

/* ------------------------------------------------------------------------------------------ */
/* Devices                                                                                    */

static pthread_mutex_t g_attach = PTHREAD_MUTEX_INITIALIZER;
static struct pdev *g_dev;
static uint64_t g_retry_ms;
static int g_last_err;
static bool g_warned;
static bool g_exiting;

static void *pump_main(void *arg);

__thread bool pl_attaching;
__thread int pl_attach_unix_fd = -1;
static struct pdev *g_pdevs; /* every session ever made (under g_attach) */

static struct pdev *dev_open(int *err)
{
  struct toe_attach_opts o;
  toe_attach_opts_init(&o);
  o.origin = TOE_ORIGIN_PRELOAD; /* toectl flows: "preload" */
  toe_dev *dev = NULL;
  pl_attaching = true;
  pl_attach_unix_fd = -1;
  int rc = toe_attach(pl_cfg.ctl[0] ? pl_cfg.ctl : NULL, &o, &dev);
  pl_attaching = false;
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
  p->ctl_fd = pl_attach_unix_fd;
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
  p->all_next = g_pdevs;
  g_pdevs = p;
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
      uint64_t now = mono_ms();
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

void pl_dev_link(struct pdev *p, struct psock *ps)
{
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
  while (p->live > 0) {
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

static void dev_lost(struct pdev *p)
{
  pthread_mutex_lock(&g_attach);
  if (g_dev == p)
    g_dev = NULL;
  p->ctl_fd = -1; /* closed by toe_detach below: a child forked from now on leaves it alone */
  pthread_mutex_unlock(&g_attach);
  int st = toe_dev_status(p->dev);
  pl_log("device lost (%s): its connections are reset; new sockets attach again",
         strerror(st < 0 ? -st : ENETDOWN));
  dev_drain(p);
  toe_detach(p->dev, 0);
  p->dev = NULL;
  /* The pdev itself is never freed: a racing thread may still look at p->dead. */
}

#define PUMP_BATCH 64

static void *pump_main(void *arg)
{
  struct pdev *p = arg;
  int efd = toe_event_fd(p->dev);
  struct toe_event ev[PUMP_BATCH];
  unsigned idle = 0;
  bool lost = false;
  while (!atomic_load(&p->stop) && !lost) {
    struct pollfd pf[2] = {{.fd = efd, .events = POLLIN}, {.fd = p->wake_fd, .events = POLLIN}};
    int r = R.poll(pf, 2, 1000);
    if (atomic_load(&p->stop))
      break;
    if (r < 0 && errno != EINTR) {
      struct timespec ts = {0, 10 * 1000000};
      nanosleep(&ts, NULL);
    }
    bool changed = false;
    int n, total = 0;
    do {
      n = toe_poll(p->dev, ev, PUMP_BATCH, 0);
      for (int i = 0; i < n; i++) {
        if (ev[i].sd == TOE_SD_DEVICE) {
          if (ev[i].events & TOE_POLLHUP)
            lost = true;
          else
            PL_DBG("the device announced that it is stopping");
          changed = true;
          continue;
        }
        struct psock *ps = ev[i].udata;
        if (!ps)
          continue;
        pthread_mutex_lock(&ps->mu);
        if (atomic_load(&ps->state) == PS_OFF && ps->pdev == p && ps->sd == ev[i].sd) {
          unsigned before = ps->shown;
          pl_reflect(ps);
          if (ps->shown != before || atomic_load(&ps->state) != PS_OFF)
            changed = true;
        }
        pthread_mutex_unlock(&ps->mu);
      }
      total += n > 0 ? n : 0;
    } while (n == PUMP_BATCH);
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
    pthread_detach(pthread_self());
    dev_lost(p);
  }
  return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* The switch of a candidate to the device                                                    */

/* Where our private descriptors go: away from the low numbers the application expects to get
 * (and from select()'s FD_SETSIZE when the limit allows). */
static int high_base(void)
{
  struct rlimit rl;
  int base = 64;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur > 128)
    base = (int)(rl.rlim_cur / 2);
  if (base > 65536)
    base = 65536;
  return base;
}

static int move_high(int fd)
{
  int nfd = R.fcntl(fd, F_DUPFD_CLOEXEC, high_base());
  if (nfd < 0)
    return fd; /* keep it where it is */
  R.close(fd);
  return nfd;
}

int pl_pair(int *a, int *afd, int *bfd, bool cloexec, bool nonblock)
{
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
    return -errno;
  int one = 1;
  R.setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &one, sizeof(one)); /* the kernel's minimum */
  int d = R.fcntl(sv[0], F_DUPFD_CLOEXEC, high_base());
  if (d < 0)
    d = R.fcntl(sv[0], F_DUPFD_CLOEXEC, 0);
  if (d < 0) {
    int e = errno;
    R.close(sv[0]);
    R.close(sv[1]);
    return -e;
  }
  if (!cloexec)
    R.fcntl(sv[0], F_SETFD, 0);
  if (nonblock)
    R.fcntl(sv[0], F_SETFL, O_NONBLOCK);
  *a = sv[0];
  *afd = d;
  *bfd = move_high(sv[1]);
  return 0;
}

int pl_switch(int fd, struct psock *ps)
{
  int err = 0;
  struct pdev *p = pl_dev_acquire(&err);
  if (!p)
    return pl_cfg.strict ? -ENETDOWN : 1;
  int sd = toe_socket(p->dev, ps->type == SOCK_STREAM ? TOE_SOCK_STREAM : TOE_SOCK_DGRAM);
  if (sd < 0) {
    pl_dev_release(p);
    return sd == -TOE_ENETDOWN && !pl_cfg.strict ? 1 : sd;
  }
  /* Options set while it was a kernel socket. */
  for (int i = 0; i < ps->nopts; i++) {
    int64_t v;
    int opt = pl_toe_opt_of(ps->opts[i].level, ps->opts[i].name, &ps->opts[i], &v);
    if (opt > 0) {
      int rc = toe_setsockopt(p->dev, sd, opt, v);
      if (rc < 0)
        PL_DBG("fd %d: replaying option %d/%d: %s", fd, ps->opts[i].level, ps->opts[i].name,
               strerror(-rc));
    }
  }
  int fdfl = R.fcntl(fd, F_GETFD);
  int fl = R.fcntl(fd, F_GETFL);
  bool nonblock = fl >= 0 && (fl & O_NONBLOCK);
  int a, afd, bfd;
  int rc = pl_pair(&a, &afd, &bfd, true, nonblock);
  if (rc < 0) {
    toe_close(p->dev, sd);
    pl_dev_release(p);
    return rc;
  }
  /* The descriptor number now names the placeholder; the kernel socket is closed. */
  if (R.dup3(a, fd, (fdfl >= 0 && (fdfl & FD_CLOEXEC)) ? O_CLOEXEC : 0) < 0) {
    int e = errno;
    R.close(a);
    R.close(afd);
    R.close(bfd);
    toe_close(p->dev, sd);
    pl_dev_release(p);
    return -e;
  }
  R.close(a);
  for (int i = 0; i < ps->neps; i++) {
    if (R.epoll_ctl(ps->eps[i].epfd, EPOLL_CTL_ADD, fd, &ps->eps[i].ev) < 0)
      PL_DBG("fd %d: re-adding to epoll %d: %s", fd, ps->eps[i].epfd, strerror(errno));
  }
  ps->neps = 0;
  ps->pdev = p;
  ps->sd = sd;
  ps->afd = afd;
  ps->bfd = bfd;
  ps->nonblock = nonblock;
  ps->shown = SH_OUT;        /* a fresh socketpair end is writable and not readable */
  ps->interest = UINT32_MAX; /* not given yet: the first pl_show sets it */
  atomic_store(&ps->state, PS_OFF);
  pl_dev_link(p, ps);
  pl_show(ps, SH_OUT);
  return 0;
}

/* Maps a socket option onto libtoe's (0 if it has none). */
int pl_toe_opt_of(int level, int name, const struct pl_opt *o, int64_t *v)
{
  int iv = 0;
  if (o->len >= sizeof(int))
    memcpy(&iv, o->val, sizeof(int));
  *v = iv;
  if (level == SOL_SOCKET) {
    switch (name) {
    case SO_RCVBUF:
      return TOE_OPT_RCVBUF;
    case SO_SNDBUF:
      return TOE_OPT_SNDBUF;
    case SO_KEEPALIVE:
      *v = iv != 0;
      return TOE_OPT_KEEPALIVE;
    case SO_REUSEADDR:
      *v = iv != 0;
      return TOE_OPT_REUSEADDR;
    case SO_LINGER: {
      struct linger lg = {0, 0};
      if (o->len >= sizeof(lg))
        memcpy(&lg, o->val, sizeof(lg));
      *v = lg.l_onoff && lg.l_linger == 0;
      return TOE_OPT_LINGER_ABORT;
    }
    default:
      return 0;
    }
  }
  if (level == IPPROTO_TCP) {
    switch (name) {
    case 1 /* TCP_NODELAY */:
      *v = iv != 0;
      return TOE_OPT_NODELAY;
    case 2 /* TCP_MAXSEG */:
      return TOE_OPT_MAXSEG;
    case 4 /* TCP_KEEPIDLE */:
      return TOE_OPT_KEEPIDLE;
    case 5 /* TCP_KEEPINTVL */:
      return TOE_OPT_KEEPINTVL;
    case 6 /* TCP_KEEPCNT */:
      return TOE_OPT_KEEPCNT;
    case 13 /* TCP_CONGESTION */: {
      char name_buf[17] = {0};
      memcpy(name_buf, o->val, o->len < 16 ? o->len : 16);
      if (!strcmp(name_buf, "cubic"))
        *v = 2;
      else if (!strcmp(name_buf, "reno") || !strcmp(name_buf, "newreno"))
        *v = 1;
      else
        return 0;
      return TOE_OPT_CONGESTION;
    }
    default:
      return 0;
    }
  }
  return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* fork and exit                                                                              */

/* Before fork: a share token for every listener and UDP socket of the current session, so that
 * the child can adopt them (PS_INHERIT). Connections are not shared: the child gets orphans. */
static void atfork_prepare(void)
{
  pthread_mutex_lock(&g_attach);
  struct pdev *p = g_dev;
  pthread_mutex_lock(&g_tab);
  struct psock *all = g_all;
  pthread_mutex_unlock(&g_tab);
  for (struct psock *ps = all; p && ps; ps = ps->all_next) {
    pthread_mutex_lock(&ps->mu);
    ps->share_token = 0;
    if (atomic_load(&ps->state) == PS_OFF && ps->pdev == p &&
        (ps->listening || ps->type == SOCK_DGRAM)) {
      uint64_t tok = 0;
      int rc = toe_share(p->dev, ps->sd, &tok);
      if (rc == 0) {
        ps->share_token = tok;
        if (ps->listening && !ps->acc_lazy) {
          /* From now on this process takes connections only if it asks for them again. */
          ps->acc_lazy = true;
          ps->acc_demand = false;
          ps->interest = UINT32_MAX;
          pl_show(ps, ps->shown & (SH_IN | SH_OUT | SH_RDHUP));
        }
      } else {
        PL_DBG("sd %d: no share token for a child (%s)", ps->sd, strerror(-rc));
      }
    }
    pthread_mutex_unlock(&ps->mu);
  }
  pthread_mutex_lock(&g_tab);
}

static void atfork_parent(void)
{
  pthread_mutex_unlock(&g_tab);
  pthread_mutex_unlock(&g_attach);
}

/* The child has no session: libtoe's region is not mapped in it (MADV_DONTFORK) and the pump
 * thread does not exist. Offloaded sockets it inherited become orphans (their calls fail with
 * ENOTCONN); its own new sockets attach a session of its own. Our private ends of the
 * placeholders are closed, so that the parent alone decides what its placeholders show. */
static void atfork_child(void)
{
  g_pid = getpid();
  pl_fork_gen++;
  g_dev = NULL;
  g_retry_ms = 0;
  /* The session's control socket: a child's copy would keep the session open after the parent
   * died (the device notices a client's death by that socket's hang-up). libtoe's other
   * descriptors are harmless copies and close on exec. */
  for (struct pdev *p = g_pdevs; p; p = p->all_next) {
    if (p->ctl_fd >= 0)
      R.close(p->ctl_fd);
    p->ctl_fd = -1;
  }
  for (struct psock *ps = g_all; ps; ps = ps->all_next) {
    pthread_mutex_init(&ps->mu, NULL);
    int st = atomic_load(&ps->state);
    if (st == PS_OFF || st == PS_ZOMBIE) {
      if (ps->afd >= 0)
        R.close(ps->afd);
      if (ps->bfd >= 0)
        R.close(ps->bfd);
      ps->afd = ps->bfd = -1;
      ps->pdev = NULL;
      ps->sd = -1;
      free(ps->zbuf);
      ps->zbuf = NULL;
      ps->zlen = ps->zoff = 0;
      ps->interest = UINT32_MAX;
      atomic_store(&ps->state, st == PS_OFF && ps->share_token ? PS_INHERIT : PS_ORPHAN);
    }
  }
  pthread_mutex_init(&g_tab, NULL);
  pthread_mutex_init(&g_attach, NULL);
}

/* At exit: sockets still open are closed gracefully by toe_detach, which waits (at most
 * TOE_PRELOAD_LINGER_MS) until the device has every byte already sent; the device then finishes
 * those connections on its own. Without this, data still in the shared region would be lost
 * when the session ends with the process. */
__attribute__((destructor)) static void pl_fini(void)
{
  if (!atomic_load(&pl_ready))
    return;
  pthread_mutex_lock(&g_attach);
  struct pdev *p = g_dev;
  g_dev = NULL;
  g_exiting = true;
  if (p)
    p->ctl_fd = -1;
  pthread_mutex_unlock(&g_attach);
  if (!p)
    return;
  atomic_store(&p->stop, true);
  uint64_t one = 1;
  ssize_t w = R.write(p->wake_fd, &one, sizeof(one));
  (void)w;
  pthread_join(p->thr, NULL);
  pthread_mutex_lock(&p->mu);
  p->dead = true;
  while (p->head) {
    struct psock *ps = p->head;
    pthread_mutex_unlock(&p->mu);
    pthread_mutex_lock(&ps->mu);
    if (ps->pdev == p) {
      if (atomic_load(&ps->state) == PS_OFF) {
        ps->sd = -1; /* toe_detach closes it */
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
}
