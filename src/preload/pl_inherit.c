/*
 * libtoe-preload: connections inherited across fork and exec (docs/interception.md "fork and
 * exec").
 *
 * fork: a connected TCP socket is shared like a listener (a token the child adopts at its first
 * use), and both processes may use it. Sharing stops the device's deliveries to the parent until
 * it reads or polls the socket again, so that bytes go to the process that reads them; what the
 * parent had received already is moved into a *stash*, a MAP_SHARED memfd both processes see,
 * read first by whichever reads first. The parent then binds the child's tokens to the child's
 * pid: they stay adoptable while the child lives (an exec keeps the pid) and are given up the
 * moment it ends, so nothing holds a port after its processes are gone.
 *
 * exec: the program image about to be replaced shares every offloaded socket whose descriptor
 * survives the exec (not close-on-exec), binds the tokens to its own pid and writes them into the
 * new image's environment (TOE_INHERIT=PID;TOKEN:KIND:STASHFD:FD.FD...;...). The preload in the
 * new image adopts them at their first use, behind the same descriptor numbers.
 */
#define _GNU_SOURCE

#include "preload/preload.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#define ENV_NAME "TOE_INHERIT"

/* The stash: a header and the bytes, in a memfd mapped MAP_SHARED by every process holding it. */
struct pl_stash {
  _Atomic uint32_t lock; /* a spin lock between processes (held for one memcpy) */
  uint32_t len;          /* bytes in data */
  uint32_t off;          /* bytes read (by any process) */
  uint32_t cap;          /* room in data (the memfd holds the header and cap bytes) */
  char data[];
};

/* Room in a stash beyond what is put in it when made: what a holder that closes or exits had
 * received and not read goes there (pl_inh_give_back). At most libtoe's receive credit (16
 * buffers of 8 KiB by default) is delivered ahead of reads; the pages are touched only when used.
 */
#define STASH_SPARE (256u << 10)

static void stash_lock(struct pl_stash *s)
{
  uint32_t z = 0;
  while (!atomic_compare_exchange_weak(&s->lock, &z, 1u)) {
    z = 0;
    sched_yield();
  }
}

static void stash_unlock(struct pl_stash *s)
{
  atomic_store(&s->lock, 0u);
}

static void stash_unmap(struct psock *ps)
{
  if (!ps->stash)
    return;
  munmap(ps->stash, sizeof(*ps->stash) + ps->stash->cap);
  R.close(ps->stash_fd);
  ps->stash = NULL;
  ps->stash_fd = -1;
}

size_t pl_inh_stashed(const struct psock *ps)
{
  struct pl_stash *s = ps->stash;
  if (!s)
    return 0;
  stash_lock(s);
  size_t n = s->len - s->off;
  stash_unlock(s);
  return n;
}

/* Moves what libtoe holds for ps (received before the share) into a new stash, after what the
 * old one still has. Without memory the bytes stay in libtoe: this process alone can read them. */
static void stash_fill(struct pdev *p, struct psock *ps)
{
  size_t old = pl_inh_stashed(ps);
  size_t cap = old + 65536, len = 0;
  char *buf = malloc(cap);
  if (!buf)
    return;
  if (old) {
    stash_lock(ps->stash);
    memcpy(buf, ps->stash->data + ps->stash->off, old);
    ps->stash->off = ps->stash->len; /* moved: the new stash replaces it here */
    stash_unlock(ps->stash);
    len = old;
  }
  for (;;) {
    if (cap - len < 16384) {
      char *nb = realloc(buf, cap * 2);
      if (!nb)
        break;
      buf = nb;
      cap *= 2;
    }
    ssize_t r = toe_recv(p->dev, ps->sd, buf + len, cap - len, 0);
    if (r <= 0)
      break; /* -EAGAIN: all of it; EOF and errors stay with libtoe for the adopter to see */
    len += (size_t)r;
  }
  PL_DBG("sd %d: %zu received bytes stashed for the holders", ps->sd, len);
  /* Made even when empty: a holder that ends with bytes it never read puts them here. */
  if (len > UINT32_MAX - sizeof(struct pl_stash) - STASH_SPARE) {
    free(buf);
    return;
  }
  int fd = memfd_create("toe-stash", MFD_CLOEXEC);
  if (fd >= 0)
    fd = pl_move_high(fd); /* out of the numbers the program uses */
  struct pl_stash *s = MAP_FAILED;
  size_t room = len + STASH_SPARE;
  if (fd >= 0 && ftruncate(fd, (off_t)(sizeof(*s) + room)) == 0)
    s = mmap(NULL, sizeof(*s) + room, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (s == MAP_FAILED) {
    pl_log("fd of sd %d: %zu received bytes cannot be handed on (%s): only this process reads "
           "them",
           ps->sd, len, strerror(errno));
    if (fd >= 0)
      R.close(fd);
    free(buf);
    return;
  }
  memcpy(s->data, buf, len);
  s->len = (uint32_t)len;
  s->cap = (uint32_t)room;
  free(buf);
  stash_unmap(ps);
  ps->stash = s;
  ps->stash_fd = fd;
}

static void unpause(struct psock *ps)
{
  if (!ps->rx_paused || atomic_load(&ps->state) != PS_OFF)
    return;
  ps->rx_paused = false;
  int rc =
      toe_setsockopt(ps->pdev->dev, ps->sd, TOE_OPT_RXBUFS, ps->rx_credit > 0 ? ps->rx_credit : 16);
  if (rc < 0)
    PL_DBG("sd %d: delivery not resumed (%s)", ps->sd, strerror(-rc));
}

void pl_inh_demand(struct psock *ps)
{
  unpause(ps);
}

ssize_t pl_inh_read(struct psock *ps, void *buf, size_t len, int flags)
{
  unpause(ps);
  struct pl_stash *s = ps->stash;
  if (!s || len == 0)
    return 0;
  stash_lock(s);
  size_t n = s->len - s->off;
  if (n > len)
    n = len;
  memcpy(buf, s->data + s->off, n);
  if (!(flags & MSG_PEEK))
    s->off += (uint32_t)n;
  stash_unlock(s);
  return (ssize_t)n;
}

/* Shares connected TCP socket ps (locked, PS_OFF in session p); 0 or a negative errno. */
static int share_conn(struct pdev *p, struct psock *ps, uint64_t *tok)
{
  int64_t cr = 0;
  if (!ps->rx_paused && toe_getsockopt(p->dev, ps->sd, TOE_OPT_RXBUFS, &cr) == 0 && cr > 0)
    ps->rx_credit = cr;
  int rc = toe_share(p->dev, ps->sd, tok);
  if (rc < 0)
    return rc;
  ps->rx_paused = true; /* the device stopped delivering to us with the SHARE */
  stash_fill(p, ps);
  return 0;
}

void pl_inh_share_conn(struct pdev *p, struct psock *ps)
{
  if (ps->type != SOCK_STREAM || ps->listening)
    return;
  if (!ps->connected) {
    /* A non-blocking connect that completed: connect() returned EINPROGRESS and the program
     * saw the result through poll/select (rsync's client), so nothing marked it. Writable
     * without an error or hang-up: established. */
    int ev = toe_sock_events(p->dev, ps->sd);
    if (ev > 0 && (ev & TOE_POLLOUT) && !(ev & (TOE_POLLERR | TOE_POLLHUP)))
      ps->connected = true;
  }
  if (!ps->connected)
    return;
  uint64_t tok = 0;
  int rc = share_conn(p, ps, &tok);
  if (rc < 0) {
    PL_DBG("sd %d: connection not shared with a child (%s)", ps->sd, strerror(-rc));
    return;
  }
  ps->share_token = tok;
  /* A thread of ours waits on it now, or an epoll set holds it: it reads on, as with the
   * kernel, where fork changes nothing for the parent. */
  if (atomic_load(&ps->waiters) > 0 || ps->in_epoll)
    unpause(ps);
}

void pl_inh_fork_child(struct psock *ps)
{
  ps->rx_paused = false; /* adopting gives this process a handle of its own, not paused */
}

void pl_inh_give_back(struct pdev *p, struct psock *ps)
{
  struct pl_stash *s = ps->stash;
  if (!s || ps->type != SOCK_STREAM || ps->listening)
    return;
  /* The device goes on lending to this holder while it has credit: stop that first (the
   * completion comes after every delivery made before it), so that the drain below takes all
   * of it and nothing arrives in a session that is about to end (sshd's preauth child exits
   * while the client's first session messages come in: they were lost under load). A device
   * older than ABI 1.7 refuses the pause; the drain is then best effort, as before. */
  int prc = toe_setsockopt(p->dev, ps->sd, TOE_OPT_RXBUFS, 0);
  if (prc < 0)
    PL_DBG("sd %d: deliveries not paused before the hand-back (%s)", ps->sd, strerror(-prc));
  else
    ps->rx_paused = true;
  char buf[16384];
  size_t moved = 0, lost = 0;
  for (;;) {
    ssize_t r = toe_recv(p->dev, ps->sd, buf, sizeof(buf), 0);
    if (r <= 0)
      break; /* -EAGAIN: all of it (EOF and errors are the device's to tell the others) */
    stash_lock(s);
    if (s->off == s->len)
      s->off = s->len = 0; /* all read: start again at the front */
    size_t n = (size_t)r <= s->cap - s->len ? (size_t)r : s->cap - s->len;
    memcpy(s->data + s->len, buf, n);
    s->len += (uint32_t)n;
    stash_unlock(s);
    moved += n;
    lost += (size_t)r - n;
  }
  if (moved)
    PL_DBG("sd %d: %zu received bytes left for the other holders", ps->sd, moved);
  if (lost)
    pl_log("sd %d: %zu received bytes not read here could not be handed to the other holders "
           "(no room): the connection's data has a gap; keep reading until EAGAIN before closing",
           ps->sd, lost);
}

void pl_inh_close(struct psock *ps)
{
  /* Nothing of ours (most sockets): no lock. Both fields change only in this process's calls
   * on the socket, and this is the last descriptor's close. */
  if (!ps->stash && !(atomic_load(&ps->state) == PS_INHERIT && ps->share_token))
    return;
  pl_attach_lock();
  struct pdev *p = pl_dev_current();
  pthread_mutex_lock(&ps->mu);
  if (atomic_load(&ps->state) == PS_INHERIT && ps->share_token && p && !p->dead) {
    int rc = toe_token_drop(p->dev, ps->share_token);
    PL_DBG("inherited token given up: %s", rc < 0 ? strerror(-rc) : "done");
    ps->share_token = 0;
  }
  if (atomic_load(&ps->state) == PS_OFF && ps->pdev && ps->pdev == p && !p->dead)
    pl_inh_give_back(p, ps);
  stash_unmap(ps);
  pthread_mutex_unlock(&ps->mu);
  pl_attach_unlock();
}

/* ------------------------------------------------------------------------------------------ */
/* fork: the child's tokens bound to the child                                                 */

PL_API pid_t fork(void)
{
  static pid_t (*real_fork)(void);
  if (!real_fork)
    real_fork = (pid_t(*)(void))dlsym(RTLD_NEXT, "fork");
  pl_init();
  pid_t pid = real_fork();
  if (pid <= 0)
    return pid;
  int e = errno;
  pl_inh_fork_parent(pid);
  errno = e;
  return pid;
}

void pl_inh_fork_parent(pid_t pid)
{
  pl_attach_lock();
  struct pdev *p = pl_dev_current();
  for (struct psock *ps = pl_psock_all(); p && ps; ps = ps->all_next) {
    pthread_mutex_lock(&ps->mu);
    if (atomic_load(&ps->state) == PS_OFF && ps->pdev == p && ps->share_token) {
      /* Made for this child by pl_atfork_prepare. A child that adopted it already: -ENOENT. */
      int rc = toe_token_bind(p->dev, ps->share_token, pid);
      if (rc < 0 && rc != -TOE_ENOENT)
        PL_DBG("sd %d: the child's token keeps its expiry (%s)", ps->sd, strerror(-rc));
      ps->share_token = 0;
    }
    pthread_mutex_unlock(&ps->mu);
  }
  pl_attach_unlock();
}

/* ------------------------------------------------------------------------------------------ */
/* chroot: adopt what is pending while the device can still be reached                        */

/* Inherited sockets are adopted at their first use, which needs the control socket's path (and
 * its permissions). A process that chroots first (sshd's privilege-separated child chroots to
 * /run/sshd, then becomes the sshd user, then speaks on the connection it inherited; the rsync
 * daemon's "use chroot") could never reach the device afterwards: its sockets would become
 * orphans (ENOTCONN) and the connection would die. So before the real chroot every socket still
 * pending is adopted now; the session stays attached through the chroot (a connected control
 * socket does not depend on the path). A listener adopted this way serves this process as if it
 * had asked for connections. */
PL_API int chroot(const char *path)
{
  static int (*real_chroot)(const char *);
  if (!real_chroot)
    real_chroot = (int (*)(const char *))dlsym(RTLD_NEXT, "chroot");
  pl_init();
  if (!pl_foreign_child()) { /* vfork: nothing of the parent's to adopt here */
    for (int fd = pl_fd_next(0); fd >= 0; fd = pl_fd_next(fd + 1)) {
      struct psock *ps = pl_fd_get(fd);
      if (!ps || atomic_load(&ps->state) != PS_INHERIT)
        continue;
      int st = pl_enter_fd(fd, ps); /* adopts; the psock is locked when it became ours */
      if (st == PS_OFF || st == PS_ZOMBIE)
        pthread_mutex_unlock(&ps->mu);
    }
  }
  return real_chroot(path);
}

/* ------------------------------------------------------------------------------------------ */
/* seccomp: a sandbox that allows read and write but not recv and send                       */

atomic_bool pl_sandboxed;

/* sshd's preauth child, after adopting its connection (chroot, above), installs a seccomp filter
 * that kills the process on any system call outside a short list (read, write, poll, ppoll,
 * futex, ...; not recv, send or the other socket calls). The library's own calls on the
 * placeholders then go through read/write and poll (pl_ready.c); the data itself moves through
 * libtoe's shared rings and the pump thread, which the filter (of this thread only) does not
 * cover. Setting the flag before the filter exists is harmless (the same calls, a poll more). */
PL_API int prctl(int option, ...)
{
  static int (*real_prctl)(int, ...);
  if (!real_prctl)
    real_prctl = (int (*)(int, ...))dlsym(RTLD_NEXT, "prctl");
  va_list ap;
  va_start(ap, option);
  unsigned long a2 = va_arg(ap, unsigned long), a3 = va_arg(ap, unsigned long);
  unsigned long a4 = va_arg(ap, unsigned long), a5 = va_arg(ap, unsigned long);
  va_end(ap);
  if (option == PR_SET_SECCOMP)
    atomic_store(&pl_sandboxed, true);
  return real_prctl(option, a2, a3, a4, a5);
}

/* ------------------------------------------------------------------------------------------ */
/* exec                                                                                        */

#define INH_MAX 64 /* sockets handed to the new image */
#define INH_FDS 8  /* descriptor numbers per socket */

struct inh {
  struct psock *ps;
  uint64_t tok;
  char kind; /* c: connection, l: listener, u: UDP, U: UDP with a default peer */
  bool made; /* a token made for this exec (given up if the exec fails) */
  int nfd;
  int fds[INH_FDS];
  ino_t ino; /* spawn: the placeholder socket's inode, how the new program finds it */
};

struct inh_set {
  struct inh v[INH_MAX];
  int n;
  char *env; /* "TOE_INHERIT=..." */
};

static char kind_of(const struct psock *ps)
{
  if (ps->type == SOCK_DGRAM)
    return ps->connected ? 'U' : 'u';
  return ps->listening ? 'l' : 'c';
}

/* Shares the sockets that survive the exec; fills set (set->n 0: nothing to hand on). With
 * `spawn` (a child that posix_spawn, system or popen starts, pl_spawn.c), every offloaded socket,
 * close-on-exec or not (a spawn's file actions may dup2 one, which clears the flag on the copy),
 * named by its placeholder's inode rather than by descriptor numbers, which the file actions
 * change; its token is bound to the child once it exists (pl_inh_spawn_done). */
static void handoff_prepare(struct inh_set *set, bool spawn)
{
  set->n = 0;
  set->env = NULL;
  pl_attach_lock();
  struct pdev *p = pl_dev_current();
  for (int fd = pl_fd_next(0); fd >= 0; fd = pl_fd_next(fd + 1)) {
    struct psock *ps = pl_fd_get(fd);
    int fl = R.fcntl(fd, F_GETFD);
    if (!ps || fl < 0 || ((fl & FD_CLOEXEC) && !spawn))
      continue;
    struct inh *e = NULL;
    for (int i = 0; i < set->n && !e; i++)
      if (set->v[i].ps == ps)
        e = &set->v[i];
    if (e) {
      if (e->nfd < INH_FDS)
        e->fds[e->nfd++] = fd;
      continue;
    }
    if (set->n == INH_MAX)
      continue;
    pthread_mutex_lock(&ps->mu);
    int st = atomic_load(&ps->state);
    uint64_t tok = 0;
    bool made = false;
    if (st == PS_INHERIT) {
      tok = ps->share_token; /* still ours to adopt: passed on as it is */
    } else if (st == PS_OFF && p && ps->pdev == p) {
      int rc = ps->type == SOCK_STREAM && !ps->listening ? share_conn(p, ps, &tok)
                                                         : toe_share(p->dev, ps->sd, &tok);
      if (rc == 0 && spawn && ps->listening)
        pl_listener_shared(ps); /* this process goes on using it */
      if (rc == 0) {
        made = true;
        /* exec: ours until we end (the pid survives the exec); spawn: the child's, later */
        rc = spawn ? 0 : toe_token_bind(p->dev, tok, 0);
        if (rc < 0)
          PL_DBG("sd %d: token for the new program keeps its expiry (%s)", ps->sd, strerror(-rc));
      } else {
        pl_log("fd %d: not handed to the new program (%s): it sees a socket that carries "
               "nothing",
               fd, strerror(-rc));
      }
    }
    if (tok) {
      e = &set->v[set->n++];
      memset(e, 0, sizeof(*e));
      e->ps = ps;
      e->tok = tok;
      e->kind = kind_of(ps);
      e->made = made;
      e->fds[e->nfd++] = fd;
      struct stat sb;
      e->ino = fstat(fd, &sb) == 0 ? sb.st_ino : 0;
    }
    pthread_mutex_unlock(&ps->mu);
  }
  pl_attach_unlock();
  if (set->n == 0)
    return;
  size_t cap = 64 + (size_t)set->n * (48 + INH_FDS * 12), len = 0;
  char *env = malloc(cap);
  if (!env) {
    set->n = 0; /* the tokens expire with us */
    return;
  }
  /* spawn: the new program is our child ("p" and our pid); exec: it is us (our pid) */
  len += (size_t)snprintf(env, cap, "%s=%s%d", ENV_NAME, spawn ? "p" : "", (int)getpid());
  for (int i = 0; i < set->n; i++) {
    struct inh *e = &set->v[i];
    int sfd = -1;
    if (e->ps->stash) {
      sfd = e->ps->stash_fd;
      int f = R.fcntl(sfd, F_GETFD);
      if (f >= 0)
        R.fcntl(sfd, F_SETFD, f & ~FD_CLOEXEC); /* the new image maps it */
    }
    len += (size_t)snprintf(env + len, cap - len, ";%llx:%c:%d:", (unsigned long long)e->tok,
                            e->kind, sfd);
    if (spawn)
      len += (size_t)snprintf(env + len, cap - len, "i%llu", (unsigned long long)e->ino);
    for (int k = 0; k < e->nfd && !spawn; k++)
      len += (size_t)snprintf(env + len, cap - len, "%s%d", k ? "." : "", e->fds[k]);
  }
  set->env = env;
}

/* The exec failed: what was made for it is undone (the tokens given up, delivery resumed). */
static void exec_undo(struct inh_set *set)
{
  pl_attach_lock();
  struct pdev *p = pl_dev_current();
  for (int i = 0; i < set->n; i++) {
    struct inh *e = &set->v[i];
    pthread_mutex_lock(&e->ps->mu);
    if (e->made && p)
      toe_token_drop(p->dev, e->tok);
    if (e->ps->stash) {
      int f = R.fcntl(e->ps->stash_fd, F_GETFD);
      if (f >= 0)
        R.fcntl(e->ps->stash_fd, F_SETFD, f | FD_CLOEXEC);
    }
    unpause(e->ps);
    pthread_mutex_unlock(&e->ps->mu);
  }
  pl_attach_unlock();
  free(set->env);
  set->env = NULL;
  set->n = 0;
}

/* envp without any TOE_INHERIT, plus set->env; NULL: use envp as it is. */
static char **exec_envp(struct inh_set *set, char *const envp[])
{
  size_t n = 0;
  while (envp && envp[n])
    n++;
  if (!set->env) {
    bool stale = false;
    for (size_t i = 0; i < n && !stale; i++)
      stale = strncmp(envp[i], ENV_NAME "=", sizeof(ENV_NAME)) == 0;
    if (!stale)
      return NULL;
  }
  char **v = malloc((n + 2) * sizeof(*v));
  if (!v)
    return NULL;
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (strncmp(envp[i], ENV_NAME "=", sizeof(ENV_NAME)) != 0)
      v[k++] = envp[i];
  if (set->env)
    v[k++] = set->env;
  v[k] = NULL;
  return v;
}

typedef int (*execve_fn)(const char *, char *const[], char *const[]);

/* exec in a vfork child (dash starts its commands so, glibc's posix_spawn too): it shares the
 * parent's memory, so it must not touch the parent's sessions, take its locks or allocate. What
 * it can hand on are the sockets the parent inherited and never adopted: their tokens are unused
 * and need no device call. They are named by their placeholder's inode, as the child's own
 * descriptor table (dup2'd before the exec, which the shared map does not show) is what the new
 * image has. */
static int exec_vforked(int (*call)(void *ctx, char *const envp[]), void *ctx, char *const envp[])
{
  char env[96 + INH_MAX * 64];
  int len = snprintf(env, sizeof env, "%s=%d", ENV_NAME, (int)getpid()), n = 0;
  for (struct psock *ps = pl_psock_first_unlocked(); ps && n < INH_MAX; ps = ps->all_next) {
    if (atomic_load(&ps->state) != PS_INHERIT || !ps->share_token)
      continue;
    struct stat sb;
    unsigned long long ino = 0;
    for (int fd = pl_fd_next(0); fd >= 0 && !ino; fd = pl_fd_next(fd + 1))
      if (pl_fd_get(fd) == ps && fstat(fd, &sb) == 0 && S_ISSOCK(sb.st_mode))
        ino = (unsigned long long)sb.st_ino;
    if (!ino || len >= (int)sizeof env - 64)
      continue;
    int sfd = ps->stash ? ps->stash_fd : -1;
    if (sfd >= 0) {
      int f = R.fcntl(sfd, F_GETFD); /* our own descriptor table: the parent's is not changed */
      if (f >= 0)
        R.fcntl(sfd, F_SETFD, f & ~FD_CLOEXEC);
    }
    len += snprintf(env + len, sizeof env - (size_t)len, ";%llx:%c:%d:i%llu",
                    (unsigned long long)ps->share_token, kind_of(ps), sfd, ino);
    n++;
  }
  size_t ne = 0;
  while (envp && envp[ne])
    ne++;
  if (n == 0 || ne > 4096)
    return call(ctx, envp);
  char *nv[ne + 2];
  size_t k = 0;
  for (size_t i = 0; i < ne; i++)
    if (strncmp(envp[i], ENV_NAME "=", sizeof(ENV_NAME)) != 0)
      nv[k++] = envp[i];
  nv[k++] = env;
  nv[k] = NULL;
  return call(ctx, nv);
}

/* Runs exec (a real execve/execvpe/fexecve-like call) with the inherited sockets handed on. */
static int exec_with(int (*call)(void *ctx, char *const envp[]), void *ctx, char *const envp[])
{
  pl_init();
  if (pl_foreign_child()) /* vfork: the parent's sessions are not ours to touch */
    return exec_vforked(call, ctx, envp);
  struct inh_set set;
  handoff_prepare(&set, false);
  char **nv = exec_envp(&set, envp);
  int rc = call(ctx, nv ? nv : envp);
  int e = errno;
  free(nv);
  if (set.n)
    exec_undo(&set);
  errno = e;
  return rc;
}

struct exec_ctx {
  const char *path;
  char *const *argv;
  int dirfd;
  int flags;
  int kind; /* 0 execve, 1 execvpe, 2 execveat */
};

static int exec_call(void *c, char *const envp[])
{
  struct exec_ctx *x = c;
  static execve_fn real_execve, real_execvpe;
  static int (*real_execveat)(int, const char *, char *const[], char *const[], int);
  switch (x->kind) {
  case 1:
    if (!real_execvpe)
      real_execvpe = (execve_fn)dlsym(RTLD_NEXT, "execvpe");
    return real_execvpe(x->path, x->argv, envp);
  case 2:
    if (!real_execveat)
      real_execveat = (int (*)(int, const char *, char *const[], char *const[], int))dlsym(
          RTLD_NEXT, "execveat");
    return real_execveat(x->dirfd, x->path, x->argv, envp, x->flags);
  default:
    if (!real_execve)
      real_execve = (execve_fn)dlsym(RTLD_NEXT, "execve");
    return real_execve(x->path, x->argv, envp);
  }
}

/* ---- spawn: posix_spawn, system, popen (pl_spawn.c) ------------------------------------ */

struct pl_handoff {
  struct inh_set set;
};

struct pl_handoff *pl_inh_spawn_prepare(void)
{
  if (pl_foreign_child()) /* vfork: the parent's sessions are not ours to touch */
    return NULL;
  struct pl_handoff *h = malloc(sizeof(*h));
  if (!h)
    return NULL;
  handoff_prepare(&h->set, true);
  if (h->set.n == 0) {
    free(h);
    return NULL;
  }
  return h;
}

const char *pl_inh_spawn_env(const struct pl_handoff *h)
{
  return h->set.env;
}

char **pl_inh_spawn_envp(struct pl_handoff *h, char *const envp[])
{
  return exec_envp(&h->set, envp);
}

/* The socket inodes process pid holds (its /proc/PID/fd links "socket:[INO]"), at most max. */
static int inodes_of(pid_t pid, unsigned long long *v, int max)
{
  char path[64], link[64];
  snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
  DIR *d = opendir(path);
  if (!d)
    return 0;
  int n = 0;
  for (struct dirent *de; n < max && (de = readdir(d)) != NULL;) {
    if (de->d_name[0] == '.')
      continue;
    ssize_t k = readlinkat(dirfd(d), de->d_name, link, sizeof link - 1);
    if (k <= 0)
      continue;
    link[k] = 0;
    unsigned long long ino;
    if (sscanf(link, "socket:[%llu]", &ino) == 1)
      v[n++] = ino;
  }
  closedir(d);
  return n;
}

void pl_inh_spawn_done(struct pl_handoff *h, pid_t child)
{
  if (!h)
    return;
  if (child == 0) {
    exec_undo(&h->set); /* no child (it failed), or it has finished: what was made is given up */
    free(h);
    return;
  }
  /* The spawn returned once the child's exec succeeded: its descriptors are those it starts
   * with. Tokens of sockets it holds are bound to it (given up when it ends; -ENOENT: adopted
   * already); the others are given up at once, so that they hold nothing open. */
  static unsigned long long held[1024];
  static pthread_mutex_t held_mu = PTHREAD_MUTEX_INITIALIZER;
  pthread_mutex_lock(&held_mu);
  int nh = child > 0 ? inodes_of(child, held, 1024) : 0;
  pl_attach_lock();
  struct pdev *p = pl_dev_current();
  for (int i = 0; i < h->set.n; i++) {
    struct inh *e = &h->set.v[i];
    bool has = child < 0; /* a child we cannot name: the tokens stay ours until we end */
    for (int k = 0; k < nh && !has; k++)
      has = held[k] == (unsigned long long)e->ino;
    pthread_mutex_lock(&e->ps->mu);
    if (e->made && p) {
      int rc = !has ? toe_token_drop(p->dev, e->tok)
                    : toe_token_bind(p->dev, e->tok, child > 0 ? child : 0);
      if (rc < 0 && rc != -TOE_ENOENT)
        PL_DBG("spawn: token of sd %d: %s", e->ps->sd, strerror(-rc));
    }
    if (!has)
      unpause(e->ps);
    if (e->ps->stash) {
      int f = R.fcntl(e->ps->stash_fd, F_GETFD);
      if (f >= 0)
        R.fcntl(e->ps->stash_fd, F_SETFD, f | FD_CLOEXEC);
    }
    pthread_mutex_unlock(&e->ps->mu);
  }
  pl_attach_unlock();
  pthread_mutex_unlock(&held_mu);
  free(h->set.env);
  free(h);
}

PL_API int execve(const char *path, char *const argv[], char *const envp[])
{
  struct exec_ctx x = {path, argv, -1, 0, 0};
  return exec_with(exec_call, &x, envp);
}

PL_API int execvpe(const char *file, char *const argv[], char *const envp[])
{
  struct exec_ctx x = {file, argv, -1, 0, 1};
  return exec_with(exec_call, &x, envp);
}

PL_API int execveat(int dirfd, const char *path, char *const argv[], char *const envp[], int flags)
{
  struct exec_ctx x = {path, argv, dirfd, flags, 2};
  return exec_with(exec_call, &x, envp);
}

PL_API int fexecve(int fd, char *const argv[], char *const envp[])
{
  return execveat(fd, "", argv, envp, AT_EMPTY_PATH);
}

PL_API int execv(const char *path, char *const argv[])
{
  return execve(path, argv, environ);
}

PL_API int execvp(const char *file, char *const argv[])
{
  return execvpe(file, argv, environ);
}

/* execl, execlp, execle: their arguments as a vector (at most 4096, as a sanity bound). */
static char **args_of(const char *arg0, va_list ap, char ***envp)
{
  size_t n = 1, cap = 16;
  char **v = malloc(cap * sizeof(*v));
  if (!v)
    return NULL;
  v[0] = (char *)arg0;
  for (char *a = arg0 ? va_arg(ap, char *) : NULL;; a = va_arg(ap, char *)) {
    if (n + 1 >= cap) {
      char **nv = cap < 4096 ? realloc(v, cap * 2 * sizeof(*v)) : NULL;
      if (!nv) {
        free(v);
        return NULL;
      }
      v = nv;
      cap *= 2;
    }
    v[n++] = a;
    if (!a)
      break;
  }
  if (!arg0)
    v[0] = NULL;
  if (envp)
    *envp = va_arg(ap, char **);
  return v;
}

PL_API int execl(const char *path, const char *arg, ...)
{
  va_list ap;
  va_start(ap, arg);
  char **v = args_of(arg, ap, NULL);
  va_end(ap);
  if (!v)
    return errno = ENOMEM, -1;
  int rc = execve(path, v, environ);
  free(v);
  return rc;
}

PL_API int execlp(const char *file, const char *arg, ...)
{
  va_list ap;
  va_start(ap, arg);
  char **v = args_of(arg, ap, NULL);
  va_end(ap);
  if (!v)
    return errno = ENOMEM, -1;
  int rc = execvpe(file, v, environ);
  free(v);
  return rc;
}

PL_API int execle(const char *path, const char *arg, ...)
{
  va_list ap;
  va_start(ap, arg);
  char **envp = NULL;
  char **v = args_of(arg, ap, &envp);
  va_end(ap);
  if (!v)
    return errno = ENOMEM, -1;
  int rc = execve(path, v, envp);
  free(v);
  return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* the new image                                                                               */

/* The descriptors (at most INH_FDS) of this process that are socket `ino` and not ours yet. */
static int fds_of_inode(unsigned long long ino, int fds[INH_FDS])
{
  int n = 0;
  DIR *d = ino ? opendir("/proc/self/fd") : NULL;
  if (!d)
    return 0;
  int dfd = dirfd(d);
  for (struct dirent *de; n < INH_FDS && (de = readdir(d)) != NULL;) {
    char *end;
    long fd = strtol(de->d_name, &end, 10);
    struct stat sb;
    if (end == de->d_name || *end || fd == dfd || fd < 0 || fd >= 1 << 20)
      continue;
    if (fstat((int)fd, &sb) == 0 && S_ISSOCK(sb.st_mode) && sb.st_ino == ino && !pl_fd_get((int)fd))
      fds[n++] = (int)fd;
  }
  closedir(d);
  return n;
}

/* One "TOKEN:KIND:STASHFD:FD.FD" entry (exec), or "TOKEN:KIND:STASHFD:iINO" (spawn): a
 * PS_INHERIT psock for its descriptors. */
static void inherit_entry(const char *s)
{
  unsigned long long tok;
  char kind;
  int sfd, used = 0;
  if (sscanf(s, "%llx:%c:%d:%n", &tok, &kind, &sfd, &used) != 3 || !tok || !used)
    return;
  int fds[INH_FDS], nfd = 0;
  if (s[used] == 'i') /* from a spawn: the descriptors that are the placeholder socket INO */
    nfd = fds_of_inode(strtoull(s + used + 1, NULL, 10), fds);
  for (const char *c = s + used; *c != 'i' && *c && *c != ';' && nfd < INH_FDS;) {
    char *end;
    long fd = strtol(c, &end, 10);
    if (end == c)
      break;
    struct stat sb;
    /* The descriptor must still be the placeholder socket (a plain AF_UNIX socket here). */
    if (fd >= 0 && fd < 1 << 20 && fstat((int)fd, &sb) == 0 && S_ISSOCK(sb.st_mode) &&
        !pl_fd_get((int)fd))
      fds[nfd++] = (int)fd;
    c = *end == '.' ? end + 1 : end;
  }
  struct pl_stash *st = NULL;
  if (sfd >= 0) {
    struct stat sb;
    if (fstat(sfd, &sb) == 0 && (size_t)sb.st_size >= sizeof(*st)) {
      void *m = mmap(NULL, (size_t)sb.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, sfd, 0);
      if (m != MAP_FAILED && ((struct pl_stash *)m)->cap + sizeof(*st) == (size_t)sb.st_size &&
          ((struct pl_stash *)m)->len <= ((struct pl_stash *)m)->cap)
        st = m;
      else if (m != MAP_FAILED)
        munmap(m, (size_t)sb.st_size);
    }
    if (st)
      sfd = pl_move_high(sfd); /* close-on-exec; out of the numbers the program uses (sshd
                                * reuses the low ones: closing ours there would close its) */
    else
      R.close(sfd);
  }
  PL_DBG("inherited socket %c (token %llx): %d descriptor(s)", kind, tok, nfd);
  if (nfd == 0) {
    if (st)
      munmap(st, sizeof(*st) + st->cap), R.close(sfd);
    return; /* the token goes when this process ends */
  }
  pl_tab_lock();
  struct psock *ps =
      pl_psock_new(kind == 'u' || kind == 'U' ? SOCK_DGRAM : SOCK_STREAM, PS_INHERIT);
  if (ps) {
    ps->share_token = tok;
    ps->listening = kind == 'l';
    ps->connected = kind == 'c' || kind == 'U';
    ps->stash = st;
    ps->stash_fd = st ? sfd : -1;
    st = NULL;
    for (int i = 0; i < nfd; i++)
      pl_fd_map(fds[i], ps);
  }
  pl_tab_unlock();
  if (st)
    munmap(st, sizeof(*st) + st->cap), R.close(sfd);
}

/* Whether process pid is an ancestor of ours (at most 16 generations up, /proc/PID/stat). */
static bool is_ancestor(long pid)
{
  long p = (long)getppid();
  for (int i = 0; i < 16 && p > 1; i++) {
    if (p == pid)
      return true;
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%ld/stat", p);
    FILE *f = fopen(path, "re");
    if (!f)
      return false;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *c = strrchr(buf, ')'); /* the command may hold spaces and parentheses */
    int pp;
    if (!c || sscanf(c + 1, " %*c %d", &pp) != 1)
      return false;
    p = pp;
  }
  return false;
}

void pl_inh_init(void)
{
  const char *v = getenv("TOE_INHERIT"); /* ENV_NAME; listed by toe-run --help */
  if (!v)
    return;
  char *copy = strdup(v);
  unsetenv(ENV_NAME); /* for us alone, not for what we start */
  if (!copy)
    return;
  char *end;
  bool spawned = copy[0] == 'p';
  long pid = strtol(copy + spawned, &end, 10);
  if ((spawned ? is_ancestor(pid) : pid == (long)getpid()) && *end == ';') {
    /* Written by the image we replace (same pid): not a stale value from an ancestor. Or by the
     * process that spawned us or a program between (a shell that never called the library
     * before it ran the command: the value is still in its environment); each socket is found
     * only where this process holds its placeholder (its inode), and a token adopts once. */
    for (char *e = end + 1; e && *e;) {
      inherit_entry(e);
      e = strchr(e, ';');
      if (e)
        e++;
    }
  }
  free(copy);
}
