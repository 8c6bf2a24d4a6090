/*
 * libtoe-preload: libc's syscall(). Programs that make their socket calls through syscall()
 * instead of the C library's functions (libuv's sendmmsg/recvmmsg, some language runtimes) would
 * otherwise act on the placeholder itself: a datagram written into it is lost while the call
 * succeeds. The socket-related numbers are routed to the library's own functions when a
 * descriptor they name is ours; everything else, and every call on descriptors that are not ours
 * (libtoe's own raw calls among them, src/host/port_sys.h), goes to the real syscall() with its
 * six arguments untouched. I/O numbers with no counterpart here fail loudly on an offloaded
 * descriptor (one warning naming the call, an error) instead of reaching the placeholder.
 * docs/interception.md, "Raw system calls".
 */
#define _GNU_SOURCE

#include "preload/preload.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdarg.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

typedef long (*syscall_fn)(long, ...);

/* The real syscall(): R.syscall once initialised; before (a call made while the library starts,
 * when no descriptor can be ours yet) looked up here. */
static syscall_fn real_syscall(void)
{
  if (atomic_load_explicit(&pl_ready, memory_order_acquire) && R.syscall)
    return R.syscall;
  static _Atomic(syscall_fn) early;
  syscall_fn f = atomic_load(&early);
  if (!f) {
    f = (syscall_fn)dlsym(RTLD_NEXT, "syscall");
    atomic_store(&early, f);
  }
  return f;
}

/* fd names an offloaded (or candidate) socket of this process. */
static bool ours(long fd)
{
  return fd >= 0 && fd <= INT32_MAX && pl_fd_get((int)fd) != NULL;
}

static bool poll_set_ours(const struct pollfd *fds, unsigned long n)
{
  for (unsigned long i = 0; fds && i < n; i++)
    if (pl_fd_get(fds[i].fd))
      return true;
  return false;
}

static bool fd_sets_ours(long nfds, const fd_set *r, const fd_set *w, const fd_set *e)
{
  if (nfds > FD_SETSIZE)
    nfds = FD_SETSIZE;
  for (int fd = 0; fd < nfds; fd++)
    if (((r && FD_ISSET(fd, r)) || (w && FD_ISSET(fd, w)) || (e && FD_ISSET(fd, e))) &&
        pl_fd_get(fd))
      return true;
  return false;
}

/* A call the library cannot carry on an offloaded descriptor: one warning per call number, then
 * an error, so that nothing is silently lost in the placeholder. */
static long refuse(long nr, long fd, const char *name)
{
  static atomic_uchar warned[512];
  if (nr < 0 || nr >= 512 || !atomic_exchange(&warned[nr], 1))
    pl_log("syscall(SYS_%s) on offloaded fd %ld: the device cannot carry it; failing with "
           "EOPNOTSUPP (make the call through the C library's function)",
           name, fd);
  errno = EOPNOTSUPP;
  return -1;
}

#define P(x) ((void *)(x))

PL_API long syscall(long nr, ...)
{
  va_list ap;
  va_start(ap, nr);
  long a0 = va_arg(ap, long), a1 = va_arg(ap, long), a2 = va_arg(ap, long);
  long a3 = va_arg(ap, long), a4 = va_arg(ap, long), a5 = va_arg(ap, long);
  va_end(ap);
  /* Before initialisation no descriptor is ours; only a new AF_INET socket can become one. */
  bool ready = atomic_load_explicit(&pl_ready, memory_order_acquire);
  switch (nr) {
#ifdef SYS_seccomp
  case SYS_seccomp: /* a sandbox: placeholders through read/write from now on (pl_inherit.c) */
    atomic_store(&pl_sandboxed, true);
    break;
#endif
#if defined(__x86_64__) || defined(__i386__) || defined(__aarch64__) || defined(__riscv)
  case SYS_clone:
    /* A new process with a copy of our memory on the caller's stack (flags, stack, ... on these
     * architectures): a fork made without the C library, so without its fork hooks; ours run
     * around it, so the child adopts the offloaded sockets it inherits (pl_fork.c). Threads and
     * vfork-style children (CLONE_VM) share our memory and need nothing. */
    if (ready && !(a0 & (CLONE_VM | CLONE_THREAD | CLONE_VFORK)) && a1 == 0)
      return pl_fork_clone(nr, a0, a1, a2, a3, a4, a5);
    break;
#endif
  case SYS_socket:
    if (a0 == AF_INET)
      return socket((int)a0, (int)a1, (int)a2);
    break;
  case SYS_connect:
    if (ready && ours(a0))
      return connect((int)a0, P(a1), (socklen_t)a2);
    break;
  case SYS_bind:
    if (ready && ours(a0))
      return bind((int)a0, P(a1), (socklen_t)a2);
    break;
  case SYS_listen:
    if (ready && ours(a0))
      return listen((int)a0, (int)a1);
    break;
#ifdef SYS_accept
  case SYS_accept:
    if (ready && ours(a0))
      return accept((int)a0, P(a1), P(a2));
    break;
#endif
  case SYS_accept4:
    if (ready && ours(a0))
      return accept4((int)a0, P(a1), P(a2), (int)a3);
    break;
  case SYS_sendto:
    if (ready && ours(a0))
      return sendto((int)a0, P(a1), (size_t)a2, (int)a3, P(a4), (socklen_t)a5);
    break;
  case SYS_recvfrom:
    if (ready && ours(a0))
      return recvfrom((int)a0, P(a1), (size_t)a2, (int)a3, P(a4), P(a5));
    break;
  case SYS_sendmsg:
    if (ready && ours(a0))
      return sendmsg((int)a0, P(a1), (int)a2);
    break;
  case SYS_recvmsg:
    if (ready && ours(a0))
      return recvmsg((int)a0, P(a1), (int)a2);
    break;
  case SYS_sendmmsg:
    if (ready && ours(a0))
      return sendmmsg((int)a0, P(a1), (unsigned)a2, (int)a3);
    break;
  case SYS_recvmmsg:
    if (ready && ours(a0))
      return recvmmsg((int)a0, P(a1), (unsigned)a2, (int)a3, P(a4));
    break;
  case SYS_read:
    if (ready && ours(a0))
      return read((int)a0, P(a1), (size_t)a2);
    break;
  case SYS_write:
    if (ready && ours(a0))
      return write((int)a0, P(a1), (size_t)a2);
    break;
  case SYS_readv:
    if (ready && ours(a0))
      return readv((int)a0, P(a1), (int)a2);
    break;
  case SYS_writev:
    if (ready && ours(a0))
      return writev((int)a0, P(a1), (int)a2);
    break;
  case SYS_preadv2:
    /* offset -1: the file position, i.e. readv on a socket (flags are not carried) */
    if (ready && ours(a0))
      return a3 == -1 && a4 == -1 && a5 == 0 ? readv((int)a0, P(a1), (int)a2)
                                             : refuse(nr, a0, "preadv2");
    break;
  case SYS_pwritev2:
    if (ready && ours(a0))
      return a3 == -1 && a4 == -1 && a5 == 0 ? writev((int)a0, P(a1), (int)a2)
                                             : refuse(nr, a0, "pwritev2");
    break;
  case SYS_close:
    if (ready && ours(a0))
      return close((int)a0);
    break;
  case SYS_shutdown:
    if (ready && ours(a0))
      return shutdown((int)a0, (int)a1);
    break;
  case SYS_getsockopt:
    if (ready && ours(a0))
      return getsockopt((int)a0, (int)a1, (int)a2, P(a3), P(a4));
    break;
  case SYS_setsockopt:
    if (ready && ours(a0))
      return setsockopt((int)a0, (int)a1, (int)a2, P(a3), (socklen_t)a4);
    break;
  case SYS_getsockname:
    if (ready && ours(a0))
      return getsockname((int)a0, P(a1), P(a2));
    break;
  case SYS_getpeername:
    if (ready && ours(a0))
      return getpeername((int)a0, P(a1), P(a2));
    break;
  case SYS_fcntl:
    if (ready && ours(a0))
      return fcntl((int)a0, (int)a1, a2);
    break;
  case SYS_ioctl:
    if (ready && ours(a0))
      return ioctl((int)a0, (unsigned long)a1, a2);
    break;
  case SYS_dup:
    if (ready && ours(a0))
      return dup((int)a0);
    break;
#ifdef SYS_dup2
  case SYS_dup2:
    if (ready && (ours(a0) || ours(a1)))
      return dup2((int)a0, (int)a1);
    break;
#endif
  case SYS_dup3:
    if (ready && (ours(a0) || ours(a1)))
      return dup3((int)a0, (int)a1, (int)a2);
    break;
  case SYS_sendfile:
    if (ready && (ours(a0) || ours(a1)))
      return sendfile((int)a0, (int)a1, P(a2), (size_t)a3);
    break;
  case SYS_splice:
    if (ready && (ours(a0) || ours(a2)))
      return splice((int)a0, P(a1), (int)a2, P(a3), (size_t)a4, (unsigned)a5);
    break;
  case SYS_copy_file_range:
    if (ready && (ours(a0) || ours(a2)))
      return refuse(nr, ours(a0) ? a0 : a2, "copy_file_range");
    break;
  case SYS_tee:
    if (ready && (ours(a0) || ours(a1)))
      return refuse(nr, ours(a0) ? a0 : a1, "tee");
    break;
  case SYS_vmsplice:
    if (ready && ours(a0))
      return refuse(nr, a0, "vmsplice");
    break;
#ifdef SYS_poll
  case SYS_poll:
    if (ready && poll_set_ours(P(a0), (unsigned long)a1))
      return poll(P(a0), (nfds_t)a1, (int)a2);
    break;
#endif
  case SYS_ppoll:
    /* (fds, n, timeout, sigmask, sigsetsize): the library's ppoll leaves the timeout as given
     * (the C library's behaviour, not the raw call's remaining time) */
    if (ready && poll_set_ours(P(a0), (unsigned long)a1))
      return ppoll(P(a0), (nfds_t)a1, P(a2), P(a3));
    break;
#ifdef SYS_select
  case SYS_select:
    if (ready && fd_sets_ours(a0, P(a1), P(a2), P(a3)))
      return select((int)a0, P(a1), P(a2), P(a3), P(a4));
    break;
#endif
  case SYS_pselect6:
    /* the sixth argument points to { const sigset_t *mask; size_t size; } */
    if (ready && fd_sets_ours(a0, P(a1), P(a2), P(a3))) {
      const sigset_t *mask = a5 ? *(const sigset_t *const *)P(a5) : NULL;
      return pselect((int)a0, P(a1), P(a2), P(a3), P(a4), mask);
    }
    break;
  case SYS_epoll_ctl:
    if (ready && ours(a2))
      return epoll_ctl((int)a0, (int)a1, (int)a2, P(a3));
    break;
#ifdef SYS_epoll_wait
  case SYS_epoll_wait:
    if (ready && pl_ep_marked((int)a0))
      return epoll_wait((int)a0, P(a1), (int)a2, (int)a3);
    break;
#endif
  case SYS_epoll_pwait:
    if (ready && pl_ep_marked((int)a0))
      return epoll_pwait((int)a0, P(a1), (int)a2, (int)a3, P(a4));
    break;
  default:
    break;
  }
  return real_syscall()(nr, a0, a1, a2, a3, a4, a5);
}
