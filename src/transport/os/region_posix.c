/*
 * The POSIX kind of region and doorbells with only POSIX.1-2008 calls (region_os.h): builds
 * unmodified on Linux, macOS and the BSDs. Optional extensions (MSG_NOSIGNAL, MSG_DONTWAIT,
 * SOCK_CLOEXEC) are used when the headers define them, never chosen by operating system name.
 */
#define _POSIX_C_SOURCE 200809L

#include "toe/errno.h"
#include "transport/os/region_os.h"
#include "transport/region.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0 /* macOS: SO_NOSIGPIPE on the socket instead (set at creation) */
#endif
#ifndef MSG_DONTWAIT
#define MSG_DONTWAIT 0 /* then only O_NONBLOCK, set at creation, keeps the ring from blocking */
#endif

static int neg_errno(void)
{
  return errno ? -errno : -TOE_EIO;
}

static int set_flags(int fd)
{
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
    return neg_errno();
  if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
    return neg_errno();
#ifdef SO_NOSIGPIPE
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof(one)); /* fails harmlessly on pipes */
#endif
  return 0;
}

void toe_region_os_clear(struct toe_region_os *r)
{
  r->region = NULL;
  r->region_size = 0;
  r->kick = r->notify = -1;
  r->posix = false;
  for (int i = 0; i < TOE_ABI_FD_MAX; i++)
    r->host[i] = -1;
  r->nhost = 0;
}

void toe_region_os_handed(struct toe_region_os *r)
{
  for (int i = 0; i < TOE_ABI_FD_MAX; i++) {
    if (r->host[i] >= 0 && r->host[i] != r->kick && r->host[i] != r->notify)
      close(r->host[i]);
    r->host[i] = -1;
  }
  r->nhost = 0;
}

void toe_region_os_free(struct toe_region_os *r)
{
  toe_region_os_handed(r);
  if (r->kick >= 0)
    close(r->kick);
  if (r->notify >= 0)
    close(r->notify);
  if (r->region)
    munmap(r->region, r->region_size);
  toe_region_os_clear(r);
}

/* The POSIX doorbells: kick pipe (host writes), notify socket pair (host reads its end). */
int toe_region_os_posix_bells(struct toe_region_os *r);
int toe_region_os_posix_bells(struct toe_region_os *r)
{
  int kp[2], np[2];
  if (pipe(kp) < 0)
    return neg_errno();
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, np) < 0) {
    int rc = neg_errno();
    close(kp[0]);
    close(kp[1]);
    return rc;
  }
  r->kick = kp[0];
  r->notify = np[0];
  r->host[TOE_ABI_FD_KICK] = kp[1];
  r->host[TOE_ABI_FD_NOTIFY] = np[1];
  r->host[TOE_ABI_FD_NOTIFY_SELF] = np[0];
  r->posix = true;
  int rc = 0;
  for (int i = 0; i < 2 && rc == 0; i++)
    if ((rc = set_flags(kp[i])) == 0)
      rc = set_flags(np[i]);
  return rc;
}

int toe_region_os_create_shm(struct toe_region_os *r, const struct toe_abi_layout *layout,
                             uint64_t caps, uint32_t client_id)
{
  toe_region_os_clear(r);
  if (!(caps & TOE_ABI_CAP_POSIX_BELLS))
    return -TOE_EOPNOTSUPP;
  int fd = -1, rc = -TOE_EEXIST;
  /* A fresh name each try; unlinked at once, so the object is reachable only by descriptor. */
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  for (unsigned i = 0; i < 16 && fd < 0; i++) {
    char name[64];
    snprintf(name, sizeof(name), "/toekit-%ld-%lx-%u", (long)getpid(),
             (unsigned long)ts.tv_nsec ^ (unsigned long)(uintptr_t)r, i);
    fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd >= 0)
      shm_unlink(name);
    else if (errno != EEXIST)
      return neg_errno();
  }
  if (fd < 0)
    return rc;
  r->host[TOE_ABI_FD_REGION] = fd;
  rc = 0;
  if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 || ftruncate(fd, (off_t)layout->region_size) < 0)
    rc = neg_errno();
  if (rc == 0) {
    void *m = mmap(NULL, (size_t)layout->region_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED)
      rc = neg_errno();
    else {
      r->region = m;
      r->region_size = (size_t)layout->region_size;
    }
  }
  if (rc == 0)
    rc = toe_region_os_posix_bells(r);
  if (rc < 0) {
    toe_region_os_free(r);
    return rc;
  }
  toe_region_init_fresh(r->region, layout, caps, client_id, 0);
  r->nhost = TOE_ABI_NFDS(caps);
  return 0;
}

bool toe_bell_ring(int fd, bool sock)
{
  uint64_t one = 1;
  ssize_t n = sock ? send(fd, &one, sizeof(one), MSG_DONTWAIT | MSG_NOSIGNAL)
                   : write(fd, &one, sizeof(one));
  return n == (ssize_t)sizeof(one);
}

bool toe_bell_drain(int fd)
{
  bool rang = false;
  uint64_t buf[16];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n > 0) {
      rang = true;
      if ((size_t)n < sizeof(buf))
        break; /* an eventfd gives 8 bytes and resets; a pipe or socket is now empty */
      continue;
    }
    if (n < 0 && errno == EINTR)
      continue;
    break; /* EAGAIN: empty; 0: the other end is gone (the control socket says so too) */
  }
  return rang;
}
