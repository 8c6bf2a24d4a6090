/*
 * libtoe: blocking convenience calls on top of the non-blocking ones. Every wait is bounded by
 * its timeout, and a wait without one still wakes at least once a second (toe_dev_wait) to see
 * whether the device is still there, so a lost device ends every call.
 */
#define _GNU_SOURCE

#include "host/toe_internal.h"

/* Waits (lock held) until socket sd is ready for `events` (or ERR/HUP), the deadline, or the end
 * of the session. Returns the ready bits, 0 at the deadline, or -TOE_EBADF. */
static int wait_ready(struct toe_dev *d, int sd, uint32_t events, uint64_t deadline)
{
  for (;;) {
    toe_dev_progress(d);
    struct sock *s = toe_sock_get(d, sd);
    if (!s)
      return -TOE_EBADF;
    uint32_t m = toe_sock_ready(d, s) & (events | TOE_POLLERR | TOE_POLLHUP);
    if (m)
      return (int)m;
    if (d->status || toe_mono_ns() >= deadline)
      return 0;
    toe_dev_wait(d, deadline, false);
  }
}

int toe_wait(toe_dev *d, int sd, uint32_t events, int timeout_ms)
{
  if (!d)
    return -TOE_EBADF;
  toe_dev_lock(d);
  int rc = wait_ready(d, sd, events, toe_deadline(timeout_ms));
  toe_dev_unlock(d);
  return rc;
}

int toe_connect_blocking(toe_dev *d, int sd, const struct sockaddr *addr, socklen_t len,
                         int timeout_ms)
{
  uint64_t deadline = toe_deadline(timeout_ms);
  int rc = toe_connect(d, sd, addr, len);
  if (rc != -TOE_EINPROGRESS)
    return rc;
  toe_dev_lock(d);
  for (;;) {
    toe_dev_progress(d);
    struct sock *s = toe_sock_get(d, sd);
    if (!s) {
      rc = -TOE_EBADF;
      break;
    }
    if (s->state == S_CONNECTED) {
      rc = 0;
      break;
    }
    if (s->state != S_CONNECTING) {
      rc = s->soerror ? s->soerror : -TOE_ECONNREFUSED;
      s->soerror = 0;
      toe_sock_update(d, s);
      break;
    }
    if (toe_mono_ns() >= deadline) {
      rc = -TOE_ETIMEDOUT; /* the handshake goes on; TOE_POLLOUT still reports its end */
      break;
    }
    toe_dev_wait(d, deadline, false);
  }
  toe_dev_unlock(d);
  return rc;
}

int toe_accept_blocking(toe_dev *d, int sd, struct sockaddr *peer, socklen_t *len, int timeout_ms)
{
  uint64_t deadline = toe_deadline(timeout_ms);
  for (;;) {
    int rc = toe_accept(d, sd, peer, len);
    if (rc != -TOE_EAGAIN)
      return rc;
    toe_dev_lock(d);
    rc = wait_ready(d, sd, TOE_POLLIN, deadline);
    toe_dev_unlock(d);
    if (rc < 0)
      return rc;
    if (rc == 0)
      return -TOE_ETIMEDOUT;
  }
}

ssize_t toe_send_all(toe_dev *d, int sd, const void *buf, size_t len, int timeout_ms)
{
  uint64_t deadline = toe_deadline(timeout_ms);
  const uint8_t *p = buf;
  size_t done = 0;
  while (done < len) {
    ssize_t n = toe_send(d, sd, p + done, len - done, 0);
    if (n > 0) {
      done += (size_t)n;
      continue;
    }
    if (n != -TOE_EAGAIN)
      return done ? (ssize_t)done : n;
    toe_dev_lock(d);
    int w = wait_ready(d, sd, TOE_POLLOUT, deadline);
    toe_dev_unlock(d);
    if (w < 0)
      return done ? (ssize_t)done : w;
    if (w == 0)
      return done ? (ssize_t)done : -TOE_ETIMEDOUT;
  }
  return (ssize_t)done;
}

ssize_t toe_recvfrom_blocking(toe_dev *d, int sd, void *buf, size_t len, struct sockaddr *from,
                              socklen_t *fromlen, int timeout_ms)
{
  uint64_t deadline = toe_deadline(timeout_ms);
  for (;;) {
    ssize_t n = toe_recvfrom(d, sd, buf, len, 0, from, fromlen);
    if (n != -TOE_EAGAIN)
      return n;
    toe_dev_lock(d);
    int w = wait_ready(d, sd, TOE_POLLIN, deadline);
    toe_dev_unlock(d);
    if (w < 0)
      return w;
    if (w == 0)
      return -TOE_ETIMEDOUT;
  }
}

ssize_t toe_recv_blocking(toe_dev *d, int sd, void *buf, size_t len, int timeout_ms)
{
  return toe_recvfrom_blocking(d, sd, buf, len, NULL, NULL, timeout_ms);
}

int toe_flush(toe_dev *d, int sd, int timeout_ms)
{
  if (!d)
    return -TOE_EBADF;
  uint64_t deadline = toe_deadline(timeout_ms);
  toe_dev_lock(d);
  int rc;
  for (;;) {
    toe_dev_progress(d);
    struct sock *s = toe_sock_get(d, sd);
    if (!s) {
      rc = -TOE_EBADF;
      break;
    }
    if (s->sends == 0) {
      rc = (s->flags & F_DEV_GONE) ? -TOE_ENETDOWN : 0;
      break;
    }
    if (toe_mono_ns() >= deadline) {
      rc = -TOE_ETIMEDOUT;
      break;
    }
    toe_dev_wait(d, deadline, false);
  }
  toe_dev_unlock(d);
  return rc;
}
