/*
 * libtoe's POSIX port (port.h): POSIX.1-2008 only, so that it builds unmodified on Linux, macOS
 * and the BSDs. Optional extensions are used when the headers define them (SOCK_CLOEXEC,
 * SO_NOSIGPIPE, clock selection for the condition variable), never chosen by operating system.
 *
 * Doorbells (docs/transport.md "1.3: POSIX doorbells"): the device grants TOE_ABI_CAP_POSIX_BELLS
 * and passes a kick pipe's write end, its notify socket's peer (our event descriptor), and the
 * notify socket itself (NOTIFY_SELF), into which we write to make the event descriptor readable
 * for our own reasons (a ready socket). POSIX has no epoll to merge the control socket's hang-up
 * into the event descriptor, so a small thread sleeps in poll() on the control socket and rings
 * NOTIFY_SELF when it stirs (the device died or ended the session): no data passes through it.
 * The library's own wake-ups between threads use a pipe.
 */
#define _POSIX_C_SOURCE 200809L

#include "host/port.h"
#include "host/port_sys.h"
#include "host/toe_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static void close_fd(int *fd)
{
  if (*fd >= 0)
    toe_sys_close(*fd);
  *fd = -1;
}

static void bell(int fd)
{
  uint64_t one = 1;
  ssize_t r = toe_sys_write(fd, &one, sizeof(one));
  (void)r; /* EAGAIN: full, which still means "readable" */
}

/* Empties a non-blocking pipe or socket. Returns true if anything was in it. */
static bool drain(int fd)
{
  bool any = false;
  uint64_t buf[32];
  for (;;) {
    ssize_t n = toe_sys_read(fd, buf, sizeof(buf));
    if (n > 0) {
      any = true;
      if ((size_t)n < sizeof(buf))
        return any;
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      return any;
    }
  }
}

static int set_flags(int fd)
{
  int fl = toe_sys_fcntl(fd, F_GETFL, 0);
  if (fl < 0 || toe_sys_fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
      toe_sys_fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
    return -errno;
  return 0;
}

const char *toe_port_name(void)
{
  return "posix";
}

uint64_t toe_port_caps(void)
{
  return TOE_ABI_CAP_POSIX_BELLS;
}

int toe_port_ctl_connect(const char *path)
{
  struct sockaddr_un sun;
  memset(&sun, 0, sizeof(sun));
  sun.sun_family = AF_UNIX;
  if (strlen(path) >= sizeof(sun.sun_path))
    return -TOE_EINVAL;
  strcpy(sun.sun_path, path);
#ifdef SOCK_CLOEXEC
  int fd = toe_sys_socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
#else
  int fd = toe_sys_socket(AF_UNIX, SOCK_SEQPACKET, 0);
  if (fd >= 0)
    toe_sys_fcntl(fd, F_SETFD, FD_CLOEXEC);
#endif
  if (fd < 0)
    return -errno;
#ifdef SO_NOSIGPIPE
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof(one));
#endif
  if (toe_sys_connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
    int rc = -errno;
    toe_sys_close(fd);
    return rc;
  }
  return fd;
}

void toe_port_comm(char out[16])
{
  memset(out, 0, 16); /* POSIX has no portable way to learn it; the device shows the pid */
}

int toe_port_region_map(int fd, uint64_t size, void **out)
{
  struct stat st;
  if (fstat(fd, &st) < 0)
    return -errno;
  if ((uint64_t)st.st_size < size)
    return -TOE_EPROTO;
  /* No seals in POSIX: the device (which made the object) is trusted not to shrink it. */
  void *p = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED)
    return -errno;
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
  d->port.cv_mono = false;
#if defined(_POSIX_CLOCK_SELECTION) && _POSIX_CLOCK_SELECTION >= 0
  d->port.cv_mono = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0;
#endif
  pthread_cond_init(&d->cv, &ca);
  pthread_condattr_destroy(&ca);
}

void toe_port_cond_wait_until(struct toe_dev *d, uint64_t until)
{
  struct timespec ts;
  if (!d->port.cv_mono) {
    /* macOS has no clock selection: the same span on the wall clock. A clock step makes one
     * wait longer or shorter; every caller re-checks the monotonic clock and waits again. */
    uint64_t now = toe_port_mono_ns();
    uint64_t left = until > now ? until - now : 0;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t rt = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec + left;
    until = rt;
  }
  ts.tv_sec = (time_t)(until / 1000000000ull);
  ts.tv_nsec = (long)(until % 1000000000ull);
  pthread_cond_timedwait(&d->cv, &d->lock, &ts);
}

/* The hang-up watcher: the control socket stirs only when the session ends (or the device breaks
 * the protocol); then it makes the event descriptor readable, and toe_poll finds out why. */
static void *watch_ctl(void *arg)
{
  struct toe_dev *d = arg;
  struct pollfd p = {.fd = d->ctl_fd, .events = POLLIN};
  while (toe_sys_poll(&p, 1, -1) < 0 && errno == EINTR)
    ;
  bell(d->self_fd);
  return NULL;
}

int toe_port_events_open(struct toe_dev *d, const int *fds, uint32_t nfds)
{
  d->port.wake_wr = -1;
  d->kick_fd = fds[TOE_ABI_FD_KICK];
  d->notify_fd = fds[TOE_ABI_FD_NOTIFY];
  if (nfds <= TOE_ABI_FD_NOTIFY_SELF)
    return -TOE_EPROTONOSUPPORT; /* a device older than 1.3: no doorbell of our own to ring */
  d->self_fd = fds[TOE_ABI_FD_NOTIFY_SELF];
  int rc, wp[2];
  if ((rc = set_flags(d->kick_fd)) < 0 || (rc = set_flags(d->notify_fd)) < 0 ||
      (rc = set_flags(d->self_fd)) < 0)
    return rc;
#ifdef SO_NOSIGPIPE
  int one = 1;
  setsockopt(d->self_fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof(one));
#endif
  if (pipe(wp) < 0)
    return -errno;
  d->wake_fd = wp[0];
  d->port.wake_wr = wp[1];
  if ((rc = set_flags(wp[0])) < 0 || (rc = set_flags(wp[1])) < 0)
    return rc;
  /* The watcher takes no signals: they stay the application's. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  rc = pthread_create(&d->port.watcher, NULL, watch_ctl, d);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc != 0)
    return -rc;
  d->port.watching = true;
  return 0;
}

void toe_port_events_close(struct toe_dev *d)
{
  if (d->port.watching) {
    toe_sys_shutdown(d->ctl_fd, SHUT_RDWR); /* wakes the watcher: the session ends anyway */
    pthread_join(d->port.watcher, NULL);
    d->port.watching = false;
  }
  close_fd(&d->ctl_fd);
  close_fd(&d->kick_fd);
  close_fd(&d->notify_fd);
  close_fd(&d->self_fd);
  close_fd(&d->wake_fd);
  close_fd(&d->port.wake_wr);
  close_fd(&d->ep_fd);
}

int toe_port_event_fd(const struct toe_dev *d)
{
  return d->notify_fd;
}

void toe_port_kick(struct toe_dev *d)
{
  bell(d->kick_fd);
}

void toe_port_wake(struct toe_dev *d)
{
  bell(d->port.wake_wr);
}

void toe_port_self_set(struct toe_dev *d)
{
  bell(d->self_fd);
}

/* The event descriptor carries the device's doorbell too: after emptying it, ring it again if
 * the CQ holds entries (their doorbell may just have been emptied) or the session ended. */
static void drain_events(struct toe_dev *d)
{
  drain(d->notify_fd);
  d->self_armed = false; /* emptied: toe_dev_unlock sets it again if still wanted */
  struct pollfd p = {.fd = d->ctl_fd, .events = POLLIN};
  if (toe_ring_cons_prepare_sleep(&d->cq) != 0 || d->status ||
      (toe_sys_poll(&p, 1, 0) > 0 && p.revents))
    bell(d->self_fd);
}

void toe_port_self_clear(struct toe_dev *d)
{
  drain_events(d);
}

bool toe_port_sleep(struct toe_dev *d, int ms, bool for_poll)
{
  (void)for_poll; /* the event descriptor is the device's doorbell: always watched */
  /* What we wrote for an application's event loop would wake us at once: empty it first. */
  if (d->self_armed) {
    drain_events(d);
    if (toe_ring_cons_prepare_sleep(&d->cq) != 0)
      return false;
  }
  struct pollfd p[3] = {
      {.fd = d->notify_fd, .events = POLLIN},
      {.fd = d->ctl_fd, .events = POLLIN},
      {.fd = d->wake_fd, .events = POLLIN},
  };
  pthread_mutex_unlock(&d->lock);
  int r = toe_sys_poll(p, 3, ms);
  pthread_mutex_lock(&d->lock);
  d->info.sleeps++;
  if (r <= 0)
    return false;
  if (p[0].revents) {
    drain(d->notify_fd);
    d->self_armed = false;
  }
  if (p[2].revents)
    drain(d->wake_fd);
  return p[1].revents != 0;
}

bool toe_port_events_drain(struct toe_dev *d)
{
  struct pollfd p[2] = {
      {.fd = d->notify_fd, .events = POLLIN},
      {.fd = d->ctl_fd, .events = POLLIN},
  };
  if (toe_sys_poll(p, 2, 0) <= 0)
    return false;
  if (p[0].revents) {
    drain(d->notify_fd);
    d->self_armed = false;
  }
  return p[1].revents != 0;
}

void toe_port_ctl_gone(struct toe_dev *d)
{
  (void)d; /* the watcher saw the shutdown and rang the event descriptor */
}

void toe_port_forked_child(struct toe_dev *d)
{
  d->port.watching = false; /* the watcher thread stayed in the parent */
  close_fd(&d->ctl_fd);
  /* No MADV_DONTFORK in POSIX: the child drops the mapping here instead. */
  if (d->region)
    munmap(d->region, d->region_size);
  d->region = NULL;
}
