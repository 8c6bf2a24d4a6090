/*
 * toectl's session with a device (toectl_dev.h): hello, region, one STATS command at a time.
 *
 * Everything the device sends is checked before use (toe_abi_reply_check: magic, size, version,
 * status, granted caps a subset of ours, the layout; then the descriptors and the memfd's size),
 * and every ring index goes through ring.h's hostile-peer checks. A completion's result is
 * clamped to the range we offered before we copy anything.
 */
#include "toectl_dev.h"

#include "transport/abi_validate.h"
#include "transport/os/hello.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* Geometry we ask for: the smallest rings, no sockets, and a buffer area large enough for the
 * flow table of a busy device (4 MiB: 32767 flow records of 128 bytes). The device may clamp. */
#define TC_SQ 8u
#define TC_CQ 128u /* capture: an EV_CAPTURE per buffer may be outstanding */
#define TC_BUF_SIZE 65536u
#define TC_BUF_COUNT 64u
#define TC_HANDLES 1u

static int64_t now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void close_fd(int *fd)
{
  if (*fd >= 0)
    close(*fd);
  *fd = -1;
}

void tc_detach(struct tc_dev *d)
{
  if (d->region)
    munmap(d->region, d->region_size);
  d->region = NULL;
  close_fd(&d->ctl);
  close_fd(&d->kick);
  close_fd(&d->notify);
}

/* Sends the hello and receives the reply with its descriptors (fds[] gets them). */
static int handshake(struct tc_dev *d, int fds[TOE_ABI_FD_COUNT])
{
  struct toe_abi_hello h;
  memset(&h, 0, sizeof(h));
  h.magic = TOE_ABI_HELLO_MAGIC;
  h.abi_major = TOE_ABI_MAJOR;
  h.abi_minor = TOE_ABI_MINOR;
  h.size = sizeof(h);
  /* STATS is what we come for; FLOWS for the flow table. A device grants at least one socket
   * protocol or refuses the session, so offer both (we never open a socket). */
  h.caps = TOE_ABI_CAP_TCP | TOE_ABI_CAP_UDP | TOE_ABI_CAP_STATS | TOE_ABI_CAP_FLOWS |
           TOE_ABI_CAP_ORIGIN | TOE_ABI_CAP_FILTERS | TOE_ABI_CAP_CAPTURE | TOE_ABI_CAP_DEVICE |
           TOE_ABI_CAP_CAPTURE_BPF;
  h.pid = (uint32_t)getpid();
  h.sq_entries = TC_SQ;
  h.cq_entries = TC_CQ;
  h.buf_count = TC_BUF_COUNT;
  h.buf_size = TC_BUF_SIZE;
  h.max_handles = TC_HANDLES;
  memcpy(h.comm, "toectl", 6);
  return toe_hello_exchange(d->ctl, &h, d->timeout_ms, &d->rep, fds);
}

int tc_attach(struct tc_dev *d, const char *path, int timeout_ms)
{
  memset(d, 0, sizeof(*d));
  d->ctl = d->kick = d->notify = -1;
  d->timeout_ms = timeout_ms;

  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof(sa.sun_path))
    return -ENAMETOOLONG;
  strcpy(sa.sun_path, path);
  d->ctl = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (d->ctl < 0)
    return -errno;
  if (connect(d->ctl, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
    int e = -errno;
    tc_detach(d);
    return e;
  }

  int fds[TOE_ABI_FD_COUNT] = {-1, -1, -1};
  int rc = handshake(d, fds);
  if (rc < 0) {
    tc_detach(d);
    return rc;
  }
  d->kick = fds[TOE_ABI_FD_KICK];
  d->notify = fds[TOE_ABI_FD_NOTIFY];

  /* The region must really be as large as the layout says, or touching it would fault. */
  const struct toe_abi_layout *l = &d->rep.layout;
  struct stat st;
  if (fstat(fds[TOE_ABI_FD_REGION], &st) < 0 || (uint64_t)st.st_size < l->region_size ||
      l->region_size > SIZE_MAX) {
    close(fds[TOE_ABI_FD_REGION]);
    tc_detach(d);
    return -EPROTO;
  }
  void *p = mmap(NULL, (size_t)l->region_size, PROT_READ | PROT_WRITE, MAP_SHARED,
                 fds[TOE_ABI_FD_REGION], 0);
  close(fds[TOE_ABI_FD_REGION]);
  if (p == MAP_FAILED) {
    rc = -errno;
    tc_detach(d);
    return rc;
  }
  d->region = p;
  d->region_size = (size_t)l->region_size;

  uint8_t *base = p;
  rc = toe_ring_init_prod(&d->sq, (struct toe_abi_ring_ctl *)(void *)(base + l->sq_ctl_off),
                          base + l->sq_off, l->sq_entries, TOE_ABI_SQE_SIZE);
  if (rc == 0)
    rc = toe_ring_init_cons(&d->cq, (struct toe_abi_ring_ctl *)(void *)(base + l->cq_ctl_off),
                            base + l->cq_off, l->cq_entries, TOE_ABI_CQE_SIZE);
  if (rc < 0) {
    tc_detach(d);
    return -EPROTO;
  }
  return 0;
}

size_t tc_stats_max(const struct tc_dev *d)
{
  uint64_t area = (uint64_t)d->rep.layout.buf_count * d->rep.layout.buf_size;
  /* The SQE's length is 32 bits. */
  return area > UINT32_MAX ? UINT32_MAX : (size_t)area;
}

int tc_next(struct tc_dev *d, struct toe_abi_cqe *out, int timeout_ms)
{
  int64_t deadline = now_ms() + timeout_ms;
  for (;;) {
    int n = toe_ring_cons_read(&d->cq, out, 1);
    if (n < 0)
      return -EPROTO;
    if (n == 1) {
      toe_ring_cons_release(&d->cq, 1);
      return 1;
    }
    /* Empty: announce the sleep (docs/transport.md "Doorbells"), re-check, then sleep on the
     * doorbell and the control socket, whose hang-up means the device is gone. */
    int avail = toe_ring_cons_prepare_sleep(&d->cq);
    if (avail < 0)
      return -EPROTO;
    if (avail == 0) {
      int64_t left = deadline - now_ms();
      if (left <= 0) {
        toe_ring_cons_clear_wakeup(&d->cq);
        return 0;
      }
      struct pollfd p[2] = {{.fd = d->notify, .events = POLLIN}, {.fd = d->ctl, .events = POLLIN}};
      int r = poll(p, 2, (int)(left > 1000 ? 1000 : left));
      if (r < 0 && errno != EINTR)
        return -errno;
      if (r < 0) {
        toe_ring_cons_clear_wakeup(&d->cq);
        return -EINTR; /* a signal: the caller decides */
      }
      if (r > 0 && (p[1].revents & (POLLIN | POLLHUP | POLLERR)))
        return -ENETDOWN; /* EOF, or a message, which the ABI never sends after the reply */
      if (r > 0 && (p[0].revents & POLLIN)) {
        uint64_t v;
        if (read(d->notify, &v, sizeof(v)) < 0 && errno != EAGAIN)
          return -errno;
      }
    }
    toe_ring_cons_clear_wakeup(&d->cq);
  }
}

/* Waits for the completion of the SQE with user_data `ud` (other entries are skipped). Returns
 * its CQE in *out, or -errno. */
static int wait_completion(struct tc_dev *d, uint64_t ud, uint8_t opcode, struct toe_abi_cqe *out)
{
  int64_t deadline = now_ms() + d->timeout_ms;
  for (;;) {
    int64_t left = deadline - now_ms();
    if (left <= 0)
      return -ETIMEDOUT;
    int r = tc_next(d, out, (int)left);
    if (r == -EINTR)
      continue;
    if (r < 0)
      return r;
    if (r == 0)
      return -ETIMEDOUT;
    if (out->type == TOE_ABI_CQE_OP && out->user_data == ud)
      return out->opcode == opcode ? 0 : -EPROTO;
    /* EV_SHUTDOWN or anything else: not ours to act on */
  }
}

/* Puts one SQE on the ring and rings the doorbell if the device sleeps. */
static int submit(struct tc_dev *d, const struct toe_abi_sqe *sqe)
{
  int k = toe_ring_prod_write(&d->sq, sqe, 1);
  if (k < 0)
    return -EPROTO;
  if (k == 0)
    return -EAGAIN; /* cannot happen with one command at a time */
  toe_ring_publish(&d->sq);
  if (toe_ring_prod_needs_wakeup(&d->sq)) {
    uint64_t one = 1;
    if (write(d->kick, &one, sizeof(one)) < 0 && errno != EAGAIN)
      return -errno;
  }
  return 0;
}

ssize_t tc_stats(struct tc_dev *d, uint32_t kind, void *out, size_t len)
{
  size_t area = tc_stats_max(d);
  struct toe_abi_sqe sqe;
  memset(&sqe, 0, sizeof(sqe));
  sqe.opcode = TOE_ABI_OP_STATS;
  sqe.user_data = ++d->next_ud;
  sqe.u.stats.kind = kind;
  sqe.u.stats.len = (uint32_t)area;
  sqe.u.stats.buf_off = d->rep.layout.buf_off;
  int rc = submit(d, &sqe);
  if (rc < 0)
    return rc;
  struct toe_abi_cqe cqe;
  memset(&cqe, 0, sizeof(cqe));
  rc = wait_completion(d, sqe.user_data, TOE_ABI_OP_STATS, &cqe);
  if (rc < 0)
    return rc;
  if (cqe.res < 0)
    return cqe.res;
  size_t n = (size_t)cqe.res;
  if (n > area)
    n = area; /* the device wrote at most what we offered */
  if (n > len)
    n = len;
  memcpy(out, (const uint8_t *)d->region + d->rep.layout.buf_off, n);
  return cqe.res;
}

/* ---- capture (ABI 1.2) ---------------------------------------------------------------------- */

int tc_fill_return(struct tc_dev *d, uint32_t buf_id)
{
  int k = toe_ring_prod_write(&d->fq, &buf_id, 1);
  if (k < 0)
    return -EPROTO;
  if (k == 0)
    return -ENOSPC; /* cannot happen: the fill ring holds every buffer */
  toe_ring_publish(&d->fq);
  if (toe_ring_prod_needs_wakeup(&d->fq)) {
    uint64_t one = 1;
    if (write(d->kick, &one, sizeof(one)) < 0 && errno != EAGAIN)
      return -errno;
  }
  return 0;
}

int tc_capture_start(struct tc_dev *d, const void *filter, size_t len, uint32_t snaplen,
                     uint32_t flags)
{
  const struct toe_abi_layout *l = &d->rep.layout;
  if (!(d->rep.caps & TOE_ABI_CAP_CAPTURE))
    return -EPERM;
  /* The filter (text, or a BPF program of up to 32 KiB) sits in the first buffers; every other
   * buffer is the device's to fill. */
  uint32_t held = len ? (uint32_t)((len + l->buf_size - 1) / l->buf_size) : 0;
  if (len > (uint64_t)l->buf_size * l->buf_count || l->buf_count < held + 2)
    return -EINVAL;
  uint8_t *base = d->region;
  int rc = toe_ring_init_prod(&d->fq, (struct toe_abi_ring_ctl *)(void *)(base + l->fq_ctl_off),
                              base + l->fq_off, l->fq_entries, TOE_ABI_FQE_SIZE);
  if (rc < 0)
    return -EPROTO;
  for (uint32_t b = held ? held : 1; b < l->buf_count; b++)
    if (toe_ring_prod_write(&d->fq, &b, 1) != 1)
      return -EPROTO;
  toe_ring_publish(&d->fq);
  if (len)
    memcpy(base + l->buf_off, filter, len);
  struct toe_abi_sqe sqe;
  memset(&sqe, 0, sizeof(sqe));
  sqe.opcode = TOE_ABI_OP_CAPTURE;
  sqe.user_data = ++d->next_ud;
  sqe.u.capture.buf_off = len ? l->buf_off : 0;
  sqe.u.capture.len = (uint32_t)len;
  sqe.u.capture.snaplen = snaplen;
  sqe.u.capture.capture_flags = flags;
  rc = submit(d, &sqe);
  if (rc < 0)
    return rc;
  struct toe_abi_cqe cqe;
  rc = wait_completion(d, sqe.user_data, TOE_ABI_OP_CAPTURE, &cqe);
  return rc < 0 ? rc : cqe.res;
}

int tc_capture_stop(struct tc_dev *d, uint64_t *ud)
{
  struct toe_abi_sqe sqe;
  memset(&sqe, 0, sizeof(sqe));
  sqe.opcode = TOE_ABI_OP_CAPTURE;
  sqe.user_data = ++d->next_ud;
  sqe.u.capture.capture_flags = TOE_ABI_CAPTURE_F_STOP;
  *ud = sqe.user_data;
  return submit(d, &sqe);
}

const uint8_t *tc_capture_records(const struct tc_dev *d, const struct toe_abi_cqe *cqe)
{
  const struct toe_abi_layout *l = &d->rep.layout;
  uint32_t id = cqe->u.capture.buf_id, off = cqe->u.capture.offset, len = cqe->u.capture.len;
  if (id >= l->buf_count || off > l->buf_size || len > l->buf_size - off ||
      cqe->res != (int32_t)len)
    return NULL;
  return (const uint8_t *)d->region + l->buf_off + (uint64_t)id * l->buf_size + off;
}
