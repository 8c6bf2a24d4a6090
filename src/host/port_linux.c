/*
 * libtoe's Linux port (port.h): raw system calls (port_sys.h with TOE_SYS_RAW, and the few here),
 * an epoll set as the event descriptor, eventfds for the library's own wake-ups, the sealed memfd
 * region mapped MADV_DONTFORK.
 */
#define _GNU_SOURCE

#include "host/port.h"
#include "host/port_sys.h"
#include "host/toe_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#ifndef TOE_SYS_RAW
#error "the Linux port makes raw system calls: build it with TOE_SYS_RAW (src/host/CMakeLists.txt)"
#endif

/* The calls port_sys.h has no use for elsewhere; raw like the rest. (mmap, munmap, madvise,
 * fstat and clock_gettime stay the C library's: no interposer has reason to wrap them, and the
 * clock is the vDSO's.) */
static int sys_eventfd(void)
{
  return (int)syscall(SYS_eventfd2, 0, EFD_NONBLOCK | EFD_CLOEXEC);
}

static int sys_epoll_create(void)
{
  return (int)syscall(SYS_epoll_create1, EPOLL_CLOEXEC);
}

static int sys_epoll_ctl(int ep, int op, int fd, struct epoll_event *ev)
{
  return (int)syscall(SYS_epoll_ctl, ep, op, fd, ev);
}

static int sys_epoll_wait(int ep, struct epoll_event *ev, int n, int ms)
{
  return (int)syscall(SYS_epoll_pwait, ep, ev, n, ms, NULL, (size_t)(_NSIG / 8));
}

static void close_fd(int *fd)
{
  if (*fd >= 0)
    toe_sys_close(*fd);
  *fd = -1;
}

static void efd_write(int fd)
{
  uint64_t one = 1;
  ssize_t r = toe_sys_write(fd, &one, sizeof(one));
  (void)r; /* EAGAIN: the counter is saturated, which still means "readable" */
}

static void efd_drain(int fd)
{
  uint64_t v;
  ssize_t r = toe_sys_read(fd, &v, sizeof(v));
  (void)r; /* EAGAIN: it was not signalled */
}

const char *toe_port_name(void)
{
  return "linux";
}

uint64_t toe_port_caps(void)
{
  return 0;
}

int toe_port_ctl_connect(const char *path)
{
  struct sockaddr_un sun = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof(sun.sun_path))
    return -TOE_EINVAL;
  strcpy(sun.sun_path, path);
  int fd = toe_sys_socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  if (toe_sys_connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
    int rc = -errno;
    toe_sys_close(fd);
    return rc;
  }
  return fd;
}

void toe_port_comm(char out[16])
{
  memset(out, 0, 16);
  int fd = (int)syscall(SYS_openat, AT_FDCWD, "/proc/self/comm", O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return;
  char tmp[32];
  ssize_t n = toe_sys_read(fd, tmp, sizeof(tmp) - 1);
  toe_sys_close(fd);
  if (n <= 0)
    return;
  tmp[n] = 0;
  tmp[strcspn(tmp, "\n")] = 0;
  memcpy(out, tmp, strnlen(tmp, 16));
}

int toe_port_region_map(int fd, uint64_t size, void **out)
{
  struct stat st;
  if (fstat(fd, &st) < 0)
    return -errno;
  if ((uint64_t)st.st_size < size)
    return -TOE_EPROTO;
  int seals = toe_sys_fcntl(fd, F_GET_SEALS, 0);
  if (seals >= 0 && !(seals & F_SEAL_SHRINK))
    return -TOE_EPROTO; /* it could be shrunk under us (SIGBUS) */
  void *p = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED)
    return -errno;
  /* A forked child must not become a second producer on our single-producer rings. */
  madvise(p, (size_t)size, MADV_DONTFORK);
  *out = p;
  return 0;
}

void toe_port_region_unmap(void *p, size_t size)
{
  munmap(p, size);
}

uint64_t toe_port_mono_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void toe_port_cond_init(struct toe_dev *d)
{
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  d->port.cv_mono = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0;
  pthread_cond_init(&d->cv, &ca);
  pthread_condattr_destroy(&ca);
}

void toe_port_cond_wait_until(struct toe_dev *d, uint64_t until)
{
  struct timespec ts = {.tv_sec = (time_t)(until / 1000000000ull),
                        .tv_nsec = (long)(until % 1000000000ull)};
  pthread_cond_timedwait(&d->cv, &d->lock, &ts);
}

static int ep_add(int ep, int fd, uint32_t events)
{
  struct epoll_event ev = {.events = events, .data.fd = fd};
  return sys_epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

static int set_nonblock(int fd)
{
  int fl = toe_sys_fcntl(fd, F_GETFL, 0);
  if (fl < 0 || toe_sys_fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
    return -errno;
  return 0;
}

int toe_port_events_open(struct toe_dev *d, const int *fds, uint32_t nfds)
{
  d->port.wake_wr = -1;
  d->kick_fd = fds[TOE_ABI_FD_KICK];
  d->notify_fd = fds[TOE_ABI_FD_NOTIFY];
  if (nfds > TOE_ABI_FD_NOTIFY_SELF)
    d->self_fd = fds[TOE_ABI_FD_NOTIFY_SELF]; /* not offered, so never granted; closed below */
  int rc;
  if ((rc = set_nonblock(d->notify_fd)) < 0 || (rc = set_nonblock(d->kick_fd)) < 0)
    return rc;
  close_fd(&d->self_fd);
  d->self_fd = sys_eventfd();
  d->wake_fd = sys_eventfd();
  d->ep_fd = sys_epoll_create();
  if (d->self_fd < 0 || d->wake_fd < 0 || d->ep_fd < 0)
    return -errno;
  if ((rc = ep_add(d->ep_fd, d->notify_fd, EPOLLIN)) < 0 ||
      (rc = ep_add(d->ep_fd, d->ctl_fd, EPOLLIN | EPOLLRDHUP)) < 0 ||
      (rc = ep_add(d->ep_fd, d->self_fd, EPOLLIN)) < 0)
    return rc;
  d->port.ctl_in_set = true;
  return 0;
}

void toe_port_events_close(struct toe_dev *d)
{
  close_fd(&d->ctl_fd);
  close_fd(&d->kick_fd);
  close_fd(&d->notify_fd);
  close_fd(&d->self_fd);
  close_fd(&d->wake_fd);
  close_fd(&d->ep_fd);
}

int toe_port_event_fd(const struct toe_dev *d)
{
  return d->ep_fd;
}

void toe_port_kick(struct toe_dev *d)
{
  efd_write(d->kick_fd);
}

void toe_port_wake(struct toe_dev *d)
{
  efd_write(d->wake_fd);
}

void toe_port_self_set(struct toe_dev *d)
{
  efd_write(d->self_fd);
}

void toe_port_self_clear(struct toe_dev *d)
{
  efd_drain(d->self_fd);
}

bool toe_port_sleep(struct toe_dev *d, int ms, bool for_poll)
{
  struct pollfd p[4] = {
      {.fd = d->notify_fd, .events = POLLIN},
      {.fd = d->ctl_fd, .events = POLLIN},
      {.fd = d->wake_fd, .events = POLLIN},
      {.fd = d->self_fd, .events = POLLIN},
  };
  pthread_mutex_unlock(&d->lock);
  int r = toe_sys_poll(p, for_poll ? 4 : 3, ms);
  pthread_mutex_lock(&d->lock);
  d->info.sleeps++;
  if (r <= 0)
    return false;
  if (p[0].revents)
    efd_drain(d->notify_fd);
  if (p[2].revents)
    efd_drain(d->wake_fd);
  return p[1].revents != 0;
}

bool toe_port_events_drain(struct toe_dev *d)
{
  struct epoll_event ev[4];
  bool ctl = false;
  int n = sys_epoll_wait(d->ep_fd, ev, 4, 0);
  for (int i = 0; i < n; i++) {
    if (ev[i].data.fd == d->notify_fd)
      efd_drain(d->notify_fd);
    else if (ev[i].data.fd == d->ctl_fd)
      ctl = true;
  }
  return ctl;
}

void toe_port_ctl_gone(struct toe_dev *d)
{
  if (d->port.ctl_in_set) {
    sys_epoll_ctl(d->ep_fd, EPOLL_CTL_DEL, d->ctl_fd, NULL);
    d->port.ctl_in_set = false;
  }
}

void toe_port_forked_child(struct toe_dev *d)
{
  close_fd(&d->ctl_fd);
}
