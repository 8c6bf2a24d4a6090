/*
 * libtoe: attaching to a device and detaching (docs/transport.md "Session setup on Linux").
 *
 *   connect(ctl) -> hello -> reply + SCM_RIGHTS [region, kick, notify (, notify-self)] ->
 *   toe_abi_reply_check -> map the region -> doorbells and event descriptor (port.h) -> rings ->
 *   every receive buffer into the fill ring.
 *
 * The reply is checked completely before anything is trusted: magic, size, version, status,
 * granted capabilities a subset of our offer, the layout (every part inside the region, aligned,
 * not overlapping), the number of descriptors, and that the region descriptor really is as large
 * as the layout says and (where the OS has seals) sealed against shrinking (a shrunk region would
 * make us fault).
 *
 * Every operating-system call goes through the port layer (port.h, port_sys.h). A forked child
 * drops its copies of the sessions' control sockets at once (toe_port_forked_child): a child's
 * copy would keep a session open after its owner died.
 */
#define _GNU_SOURCE

#include "host/port_sys.h"
#include "host/toe_internal.h"
#include "transport/abi_validate.h"
#include "transport/os/hello.h"
#include "transport/region.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define TOE_CTL_DIR "/run/toekit"

/* toe.h's option numbers are the ABI's (docs/transport.md "Socket options"). */
_Static_assert(TOE_OPT_RCVBUF == TOE_ABI_SO_RCVBUF && TOE_OPT_MAXSEG == TOE_ABI_TCP_MAXSEG &&
                   TOE_OPT_ERROR == TOE_ABI_SO_ERROR && TOE_OPT_RXBUFS == TOE_ABI_SO_RXBUFS &&
                   TOE_OPT_NREAD == TOE_ABI_SO_NREAD && TOE_OPT_REUSEPORT == TOE_ABI_SO_REUSEPORT,
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

/* Every attached device, for the fork handler (under g_devs_lock, taken across fork()). */
static pthread_mutex_t g_devs_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t g_fork_once = PTHREAD_ONCE_INIT;
static struct toe_dev *g_devs;

static void fork_prepare(void)
{
  pthread_mutex_lock(&g_devs_lock);
}

static void fork_parent(void)
{
  pthread_mutex_unlock(&g_devs_lock);
}

static void fork_child(void)
{
  for (struct toe_dev *d = g_devs; d; d = d->all_next)
    toe_port_forked_child(d);
  pthread_mutex_unlock(&g_devs_lock);
}

static void fork_init(void)
{
  pthread_atfork(fork_prepare, fork_parent, fork_child);
}

static void devs_add(struct toe_dev *d)
{
  pthread_once(&g_fork_once, fork_init);
  pthread_mutex_lock(&g_devs_lock);
  d->all_next = g_devs;
  g_devs = d;
  pthread_mutex_unlock(&g_devs_lock);
}

static void devs_remove(struct toe_dev *d)
{
  pthread_mutex_lock(&g_devs_lock);
  for (struct toe_dev **pp = &g_devs; *pp; pp = &(*pp)->all_next)
    if (*pp == d) {
      *pp = d->all_next;
      break;
    }
  pthread_mutex_unlock(&g_devs_lock);
}

static void dev_free(struct toe_dev *d)
{
  devs_remove(d);
  if (d->region)
    toe_port_region_unmap(d->region, d->region_size);
  toe_port_events_close(d);
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
  toe_port_comm(out);
}

/* Sends the hello and receives the reply with its descriptors. Returns 0 or -errno; on success
 * fds[0 .. rep->nfds) are the region, kick and notify descriptors (and NOTIFY_SELF). */
static int handshake(int ctl, const struct toe_attach_opts *o, struct toe_abi_hello_reply *rep,
                     int fds[TOE_ABI_FD_MAX])
{
  struct toe_abi_hello h;
  memset(&h, 0, sizeof(h));
  h.magic = TOE_ABI_HELLO_MAGIC;
  h.abi_major = TOE_ABI_MAJOR;
  h.abi_minor = TOE_ABI_MINOR;
  h.size = sizeof(h);
  /* Everything we understand (the device grants what it allows); not packet capture, whose
   * EV_CAPTURE only toectl handles. */
  h.caps = (TOE_ABI_CAPS_1_2 & ~TOE_ABI_CAP_CAPTURE) | TOE_ABI_CAP_DEVICE | TOE_ABI_CAP_RXMETA |
           TOE_ABI_CAP_LARGE_BUFS | TOE_ABI_CAP_IPV6 | toe_port_caps();
  h.pid = (uint32_t)getpid();
  h.origin = o->origin;
  h.sq_entries = o->sq_entries;
  h.cq_entries = o->cq_entries;
  h.buf_count = o->buf_count;
  h.buf_size = o->buf_size;
  h.max_handles = o->max_handles;
  own_comm(h.comm, o->comm);
  return toe_hello_exchange_n(ctl, &h, (int)o->op_timeout_ms, rep, fds, TOE_ABI_FD_MAX);
}

/* Maps the region (the port checks that the descriptor can back all of it). */
static int map_region(struct toe_dev *d, int fd)
{
  void *p;
  int rc = toe_port_region_map(fd, d->layout.region_size, &p);
  if (rc < 0)
    return rc;
  d->region = p;
  d->region_size = d->layout.region_size;
  d->hdr = (const struct toe_abi_region_hdr *)(const void *)p;
  if (d->hdr->magic != TOE_ABI_REGION_MAGIC)
    return -TOE_EPROTO;
  return 0;
}

static int dev_setup(struct toe_dev *d, const struct toe_attach_opts *o)
{
  const struct toe_abi_layout *l = &d->layout;
  struct toe_region_rings rings;
  if (toe_region_rings_host(&rings, d->region, l) < 0)
    return -TOE_EPROTO;
  d->sq = rings.sq;
  d->cq = rings.cq;
  d->fq = rings.fq;

  uint32_t nb = l->buf_count;
  d->rx_count = o->rx_bufs ? o->rx_bufs : nb / 2;
  if (d->rx_count >= nb)
    d->rx_count = nb - 1;
  if (d->rx_count < 1)
    d->rx_count = 1;
  uint32_t tx_count = nb - d->rx_count;
  d->tx_default = tx_count / 4 < 64 ? tx_count / 4 : 64;
  /* Large buffers (1.6) must not multiply what one socket may hold unsent: 1 MiB's worth, as the
   * device bounds the receive credit (TOE_ABI_RXBUFS_DEFAULT_BYTES). */
  uint32_t by_bytes = TOE_ABI_RXBUFS_DEFAULT_BYTES / l->buf_size;
  if (d->tx_default > by_bytes && by_bytes >= 8)
    d->tx_default = by_bytes;
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

  struct sockaddr_un sun;
  char pathbuf[sizeof(sun.sun_path)];
  if (!ctl_path) {
    int rc = toe_ctl_default(pathbuf, sizeof(pathbuf));
    if (rc < 0)
      return rc;
    ctl_path = pathbuf;
  }
  if (strlen(ctl_path) >= sizeof(sun.sun_path) || !*ctl_path)
    return -TOE_EINVAL;

  struct toe_dev *d = calloc(1, sizeof(*d));
  if (!d)
    return -TOE_ENOMEM;
  d->ctl_fd = d->kick_fd = d->notify_fd = d->self_fd = d->wake_fd = d->ep_fd = -1;
  d->port.wake_wr = -1;
  pthread_mutex_init(&d->lock, NULL);
  toe_port_cond_init(d);
  d->spin_ns = (uint64_t)o.spin_us * 1000u;
  d->op_timeout_ms = o.op_timeout_ms;

  devs_add(d);
  int rc = toe_port_ctl_connect(ctl_path);
  if (rc < 0)
    goto fail;
  d->ctl_fd = rc;
  struct toe_abi_hello_reply rep;
  int fds[TOE_ABI_FD_MAX] = {-1, -1, -1, -1};
  rc = handshake(d->ctl_fd, &o, &rep, fds);
  if (rc < 0)
    goto fail;
  /* The doorbells and the event descriptor (the port owns kick and notify from here). */
  rc = toe_port_events_open(d, fds, rep.nfds);
  if (rc < 0) {
    toe_sys_close(fds[TOE_ABI_FD_REGION]);
    goto fail;
  }
  d->layout = rep.layout;
  d->caps = rep.caps;
  d->client_id = rep.client_id;
  d->abi_major = rep.abi_major;
  d->abi_minor = rep.abi_minor;
  rc = map_region(d, fds[TOE_ABI_FD_REGION]);
  toe_sys_close(fds[TOE_ABI_FD_REGION]); /* the mapping keeps the memory */
  if (rc < 0)
    goto fail;
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
