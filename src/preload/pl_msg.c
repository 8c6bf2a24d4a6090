/* libtoe-preload: iovec and control-message copies (pl_msg.h). */
#define _GNU_SOURCE

#include "preload/pl_msg.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>

ssize_t pl_iov_total(const struct iovec *iov, int n)
{
  if (n < 0 || n > IOV_MAX)
    return -EINVAL;
  size_t t = 0;
  for (int i = 0; i < n; i++) {
    /* readv(2): EINVAL when the sum of the lengths overflows an ssize_t */
    if (iov[i].iov_len > (size_t)SSIZE_MAX - t)
      return -EINVAL;
    t += iov[i].iov_len;
  }
  return (ssize_t)t;
}

size_t pl_iov_gather(char *dst, size_t cap, const struct iovec *iov, int n)
{
  size_t k = 0;
  for (int i = 0; i < n && k < cap; i++) {
    size_t c = iov[i].iov_len < cap - k ? iov[i].iov_len : cap - k;
    if (c)
      memcpy(dst + k, iov[i].iov_base, c);
    k += c;
  }
  return k;
}

size_t pl_iov_scatter(const char *src, size_t len, const struct iovec *iov, int n)
{
  size_t k = 0;
  for (int i = 0; i < n && k < len; i++) {
    size_t c = iov[i].iov_len < len - k ? iov[i].iov_len : len - k;
    if (c)
      memcpy(iov[i].iov_base, src + k, c);
    k += c;
  }
  return k;
}

bool pl_cmsg_put(struct msghdr *msg, size_t *used, int level, int type, const void *data,
                 size_t len)
{
  size_t cap = msg->msg_control ? msg->msg_controllen : 0;
  size_t avail = *used < cap ? cap - *used : 0;
  /* Not even a header (or a length no buffer holds): nothing is written (Linux put_cmsg). */
  if (avail < CMSG_LEN(0) || len > SIZE_MAX / 2) {
    msg->msg_flags |= MSG_CTRUNC;
    return false;
  }
  size_t full = CMSG_LEN(len), cl = full < avail ? full : avail;
  if (cl < full)
    msg->msg_flags |= MSG_CTRUNC;
  struct cmsghdr h;
  memset(&h, 0, sizeof h);
  h.cmsg_len = cl; /* what was written, as the kernel reports a cut message */
  h.cmsg_level = level;
  h.cmsg_type = type;
  char *at = (char *)msg->msg_control + *used;
  memcpy(at, &h, sizeof h);
  if (cl > CMSG_LEN(0))
    memcpy(at + CMSG_LEN(0), data, cl - CMSG_LEN(0));
  size_t adv = CMSG_SPACE(len);
  *used += adv < avail ? adv : avail;
  return cl == full;
}
