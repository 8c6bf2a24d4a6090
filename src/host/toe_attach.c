/*
 * libtoe: attaching to a device and detaching (docs/transport.md "Session setup on Linux").
 *
 *   connect(ctl) -> hello -> reply + SCM_RIGHTS [memfd, kick, notify] -> toe_abi_reply_check ->
 *   mmap the region (MADV_DONTFORK) -> rings -> every receive buffer into the fill ring.
 *
 * The reply is checked completely before anything is trusted: magic, size, version, status,
 * granted capabilities a subset of our offer, the layout (every part inside the region, aligned,
 * not overlapping), the number of descriptors, and that the memfd really is as large as the
 * layout says and sealed against shrinking (a shrunk region would make us fault).
 */
#define _GNU_SOURCE

#include "host/toe_hello.h"
#include "host/toe_internal.h"
#include "transport/abi_validate.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define TOE_CTL_DIR "/run/toekit"

/* toe.h's option numbers are the ABI's (docs/transport.md "Socket options"). */
_Static_assert(TOE_OPT_RCVBUF == TOE_ABI_SO_RCVBUF && TOE_OPT_MAXSEG == TOE_ABI_TCP_MAXSEG &&
                   TOE_OPT_ERROR == TOE_ABI_SO_ERROR && TOE_OPT_RXBUFS == TOE_ABI_SO_RXBUFS &&
                   TOE_OPT_NREAD == TOE_ABI_SO_NREAD,
               "option numbers");
_Static_assert(TOE_SHUT_RD == TOE_ABI_SHUT_RD && TOE_SHUT_WR == TOE_ABI_SHUT_WR &&
                   TOE_SHUT_RDWR == TOE_ABI_SHUT_RDWR,
               "shutdown");
_Static_assert(TOE_STATS_CLIENT == TOE_ABI_STATS_CLIENT &&
                   TOE_STATS_SOCKET == TOE_ABI_STATS_SOCKET &&
                   TOE_STATS_ENGINE == TOE_ABI_STATS_ENGINE &&
                   TOE_STATS_FLOWS == TOE_ABI_STATS_FLOWS,
               "stats kinds");

void toe_attach_opts_init(struct toe_attach_opts *o)
{
  memset(o, 0, sizeof(*o));
  o->spin_us = 50;
  o->op_timeout_ms = 5000;
}

int toe_ctl_default(char *buf, size_t len)
{
  if (!buf || len == 0)
    return -TOE_EINVAL;
  const char *env = secure_getenv("TOE_CTL"); /* not a set-user-ID caller's choice */
  if (env && *env) {
    if (strlen(env) >= len)
      return -TOE_E2BIG;
    strcpy(buf, env);
    return 0;
  }
  DIR *dir = opendir(TOE_CTL_DIR);
  if (!dir)
    return -TOE_ENOENT;
  int found = 0, rc = -TOE_ENOENT;
  struct dirent *e;
  char path[sizeof(((struct sockaddr_un *)0)->sun_path) + 64];
  while ((e = readdir(dir)) != NULL) {
    if (e->d_name[0] == '.')
      continue;
    int k = snprintf(path, sizeof(path), "%s/%s", TOE_CTL_DIR, e->d_name);
    struct stat st;
    if (k < 0 || (size_t)k >= sizeof(path) || lstat(path, &st) < 0 || !S_ISSOCK(st.st_mode))
      continue;
    if (++found > 1) {
      rc = -TOE_EEXIST;
      break;
    }
    if ((size_t)k >= len) {
      rc = -TOE_E2BIG;
      continue;
    }
    memcpy(buf, path, (size_t)k + 1);
    rc = 0;
  }
  closedir(dir);
  return rc;
}

/* ------------------------------------------------------------------------------------------ */

static void close_fd(int *fd)
{
  if (*fd >= 0)
    close(*fd);
  *fd = -1;
}

static void dev_free(struct toe_dev *d)
{
  if (d->region)
    munmap(d->region, d->region_size);
  close_fd(&d->ctl_fd);
  close_fd(&d->kick_fd);
  close_fd(&d->notify_fd);
  close_fd(&d->self_fd);
  close_fd(&d->wake_fd);
  close_fd(&d->ep_fd);
  free(d->rxb);
  free(d->bstate);
  free(d->txmap);
  free(d->txref);
  free(d->txowner);
  free(d->ops);
  free(d->socks);
  pthread_mutex_destroy(&d->lock);
  pthread_cond_destroy(&d->cv);
  free(d);
}

static void own_comm(char out[16], const char *given)
{
  memset(out, 0, 16);
  if (given) {
    memcpy(out, given, strnlen(given, 16)); /* need not be NUL-terminated */
    return;
  }
  int fd = open("/proc/self/comm", O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return;
  char tmp[32];
  ssize_t n = read(fd, tmp, sizeof(tmp) - 1);
  close(fd);
  if (n <= 0)
    return;
  tmp[n] = 0;
  tmp[strcspn(tmp, "\n")] = 0;
  memcpy(out, tmp, strnlen(tmp, 16));
}

/* Sends the hello and receives the reply with its descriptors. Returns 0 or -errno; on success
 * fds[0..2] are the region, kick and notify descriptors. */
static int handshake(int ctl, const struct toe_attach_opts *o, struct toe_abi_hello_reply *rep,
                     int fds[TOE_ABI_FD_COUNT])
{
  struct toe_abi_hello h;
  memset(&h, 0, sizeof(h));
  h.magic = TOE_ABI_HELLO_MAGIC;
  h.abi_major = TOE_ABI_MAJOR;
  h.abi_minor = TOE_ABI_MINOR;
  h.size = sizeof(h);
  /* Everything we understand (the device grants what it allows); not packet capture, whose
   * EV_CAPTURE only toectl handles. */
  h.caps = TOE_ABI_CAPS_1_2 & ~TOE_ABI_CAP_CAPTURE;
  h.pid = (uint32_t)getpid();
  h.origin = o->origin;
  h.sq_entries = o->sq_entries;
  h.cq_entries = o->cq_entries;
  h.buf_count = o->buf_count;
  h.buf_size = o->buf_size;
  h.max_handles = o->max_handles;
  own_comm(h.comm, o->comm);
  return toe_hello_exchange(ctl, &h, (int)o->op_timeout_ms, rep, fds);
}

/* Maps the region and checks that the memfd can back all of it. */
static int map_region(struct toe_dev *d, int memfd)
{
  struct stat st;
  if (fstat(memfd, &st) < 0)
    return -errno;
  if ((uint64_t)st.st_size < d->layout.region_size)
    return -TOE_EPROTO;
  int seals = fcntl(memfd, F_GET_SEALS);
  if (seals >= 0 && !(seals & F_SEAL_SHRINK))
    return -TOE_EPROTO; /* it could be shrunk under us (SIGBUS) */
  void *p = mmap(NULL, d->layout.region_size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
  if (p == MAP_FAILED)
    return -errno;
  d->region = p;
  d->region_size = d->layout.region_size;
  /* A forked child must not become a second producer on our single-producer rings. */
  madvise(p, d->region_size, MADV_DONTFORK);
  d->hdr = (const struct toe_abi_region_hdr *)(const void *)p;
  if (d->hdr->magic != TOE_ABI_REGION_MAGIC)
    return -TOE_EPROTO;
  return 0;
}

static int set_nonblock(int fd)
{
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
    return -errno;
  return 0;
}

static int ep_add(int ep, int fd, uint32_t events)
{
  struct epoll_event ev = {.events = events, .data.fd = fd};
  return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

static int dev_setup(struct toe_dev *d, const struct toe_attach_opts *o)
{
  const struct toe_abi_layout *l = &d->layout;
  int rc =
      toe_ring_init_prod(&d->sq, (struct toe_abi_ring_ctl *)(void *)(d->region + l->sq_ctl_off),
                         d->region + l->sq_off, l->sq_entries, TOE_ABI_SQE_SIZE);
  if (rc == 0)
    rc = toe_ring_init_cons(&d->cq, (struct toe_abi_ring_ctl *)(void *)(d->region + l->cq_ctl_off),
                            d->region + l->cq_off, l->cq_entries, TOE_ABI_CQE_SIZE);
  if (rc == 0)
    rc = toe_ring_init_prod(&d->fq, (struct toe_abi_ring_ctl *)(void *)(d->region + l->fq_ctl_off),
                            d->region + l->fq_off, l->fq_entries, TOE_ABI_FQE_SIZE);
  if (rc < 0)
    return -TOE_EPROTO;

  uint32_t nb = l->buf_count;
  d->rx_count = o->rx_bufs ? o->rx_bufs : nb / 2;
  if (d->rx_count >= nb)
    d->rx_count = nb - 1;
  if (d->rx_count < 1)
    d->rx_count = 1;
  uint32_t tx_count = nb - d->rx_count;
  d->tx_default = tx_count / 4 < 64 ? tx_count / 4 : 64;
  if (d->tx_default < 2)
    d->tx_default = tx_count < 2 ? tx_count : 2;

  d->rxb = calloc(d->rx_count, sizeof(*d->rxb));
  d->bstate = calloc(d->rx_count, 1);
  d->txmap = calloc((nb + 63) / 64, sizeof(uint64_t));
  d->txref = calloc(nb, sizeof(uint16_t));
  d->txowner = calloc(nb, sizeof(uint32_t));
  d->nops = l->sq_entries;
  d->ops = calloc(d->nops, sizeof(*d->ops));
  d->nsocks = l->max_handles;
  d->socks = calloc(d->nsocks, sizeof(*d->socks));
  if (!d->rxb || !d->bstate || !d->txmap || !d->txref || !d->txowner || !d->ops || !d->socks)
    return -TOE_ENOMEM;

  for (uint32_t i = d->rx_count; i < nb; i++)
    d->txmap[i / 64] |= 1ull << (i % 64);
  d->tx_free = tx_count;
  d->tx_cursor = d->rx_count;

  for (uint32_t i = 0; i < d->nops; i++) {
    d->ops[i].gen = 1;
    d->ops[i].next_free = i + 1 < d->nops ? i + 1 : TOE_NONE;
  }
  d->op_free = 0;
  uint32_t reserve = d->nops / 4 < 4 ? 4 : d->nops / 4;
  d->ops_async_max = d->nops > reserve ? d->nops - reserve : 1;

  for (uint32_t i = 0; i < d->nsocks; i++) {
    d->socks[i].gen = 1;
    d->socks[i].next = i + 1 < d->nsocks ? i + 1 : TOE_NONE;
    d->socks[i].rprev = d->socks[i].rnext = TOE_NONE;
  }
  d->sock_free_head = 0;
  d->sock_free_tail = d->nsocks - 1;
  d->ready_head = d->ready_tail = TOE_NONE;

  /* Every receive buffer to the device; it lends them back with EV_DATA. */
  for (uint32_t i = 0; i < d->rx_count; i++) {
    d->rxb[i].next = TOE_NONE;
    toe_fq_return(d, i);
  }
  if (d->status)
    return -TOE_EPROTO;
  /* We are not spinning on the CQ: the device must ring us (see toe_event.c). */
  if (toe_ring_cons_prepare_sleep(&d->cq) < 0)
    return -TOE_EPROTO;
  return 0;
}

int toe_attach(const char *ctl_path, const struct toe_attach_opts *opts, toe_dev **out)
{
  if (!out)
    return -TOE_EINVAL;
  *out = NULL;
  struct toe_attach_opts o;
  if (opts)
    o = *opts;
  else
    toe_attach_opts_init(&o);
  if (o.op_timeout_ms == 0)
    o.op_timeout_ms = 5000;

  struct sockaddr_un sun = {.sun_family = AF_UNIX};
  char pathbuf[sizeof(sun.sun_path)];
  if (!ctl_path) {
    int rc = toe_ctl_default(pathbuf, sizeof(pathbuf));
    if (rc < 0)
      return rc;
    ctl_path = pathbuf;
  }
  if (strlen(ctl_path) >= sizeof(sun.sun_path) || !*ctl_path)
    return -TOE_EINVAL;
  strcpy(sun.sun_path, ctl_path);

  struct toe_dev *d = calloc(1, sizeof(*d));
  if (!d)
    return -TOE_ENOMEM;
  d->ctl_fd = d->kick_fd = d->notify_fd = d->self_fd = d->wake_fd = d->ep_fd = -1;
  pthread_mutex_init(&d->lock, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&d->cv, &ca);
  pthread_condattr_destroy(&ca);
  d->spin_ns = (uint64_t)o.spin_us * 1000u;
  d->op_timeout_ms = o.op_timeout_ms;

  int rc = 0;
  d->ctl_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (d->ctl_fd < 0 || connect(d->ctl_fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
    rc = -errno;
    goto fail;
  }
  struct toe_abi_hello_reply rep;
  int fds[TOE_ABI_FD_COUNT] = {-1, -1, -1};
  rc = handshake(d->ctl_fd, &o, &rep, fds);
  if (rc < 0)
    goto fail;
  d->kick_fd = fds[TOE_ABI_FD_KICK];
  d->notify_fd = fds[TOE_ABI_FD_NOTIFY];
  d->layout = rep.layout;
  d->caps = rep.caps;
  d->client_id = rep.client_id;
  d->abi_major = rep.abi_major;
  d->abi_minor = rep.abi_minor;
  rc = map_region(d, fds[TOE_ABI_FD_REGION]);
  close(fds[TOE_ABI_FD_REGION]); /* the mapping keeps the memory */
  if (rc < 0)
    goto fail;
  if ((rc = set_nonblock(d->notify_fd)) < 0 || (rc = set_nonblock(d->kick_fd)) < 0)
    goto fail;
  d->self_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  d->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  d->ep_fd = epoll_create1(EPOLL_CLOEXEC);
  if (d->self_fd < 0 || d->wake_fd < 0 || d->ep_fd < 0) {
    rc = -errno;
    goto fail;
  }
  if ((rc = ep_add(d->ep_fd, d->notify_fd, EPOLLIN)) < 0 ||
      (rc = ep_add(d->ep_fd, d->ctl_fd, EPOLLIN | EPOLLRDHUP)) < 0 ||
      (rc = ep_add(d->ep_fd, d->self_fd, EPOLLIN)) < 0)
    goto fail;
  d->ctl_in_ep = true;
  rc = dev_setup(d, &o);
  if (rc < 0)
    goto fail;
  d->next_ctl_check = toe_mono_ns();
  toe_dev_lock(d);
  toe_dev_unlock(d); /* publishes the fill ring */
  *out = d;
  return 0;
fail:
  dev_free(d);
  return rc;
}

int toe_detach(toe_dev *d, int linger_ms)
{
  if (!d)
    return 0;
  uint64_t deadline = toe_deadline(linger_ms < 0 ? 0 : linger_ms);
  toe_dev_lock(d);
  toe_dev_progress(d);
  for (uint32_t i = 0; i < d->nsocks; i++) {
    struct sock *s = &d->socks[i];
    if (s->state != S_FREE && s->state != S_EMBRYO && s->state != S_CLOSING)
      toe_close_locked(d, s);
  }
  /* Wait until the device completed every CLOSE (each after the sends before it): then it has
   * every byte and finishes the connections on its own. */
  while (!d->status && d->ops_inflight > 0 && toe_mono_ns() < deadline)
    toe_dev_wait(d, deadline, false);
  int rc = (!d->status && d->ops_inflight > 0) ? -TOE_ETIMEDOUT : 0;
  toe_dev_unlock(d);
  dev_free(d); /* closing the control socket ends the session */
  return rc;
}

int toe_dev_status(toe_dev *d)
{
  if (!d)
    return -TOE_EBADF;
  toe_dev_lock(d);
  toe_dev_check_ctl(d);
  toe_dev_progress(d);
  int rc = d->status ? d->status : d->stopping ? TOE_DEV_STOPPING : 0;
  toe_dev_unlock(d);
  return rc;
}

int toe_dev_info(toe_dev *d, struct toe_dev_info *info)
{
  if (!d || !info)
    return -TOE_EINVAL;
  toe_dev_lock(d);
  *info = d->info;
  info->client_id = d->client_id;
  info->abi_major = d->abi_major;
  info->abi_minor = d->abi_minor;
  info->caps = d->caps;
  info->sq_entries = d->layout.sq_entries;
  info->cq_entries = d->layout.cq_entries;
  info->fq_entries = d->layout.fq_entries;
  info->buf_count = d->layout.buf_count;
  info->buf_size = d->layout.buf_size;
  info->max_handles = d->layout.max_handles;
  info->rx_bufs = d->rx_count;
  info->region_size = d->region_size;
  toe_dev_unlock(d);
  return 0;
}
