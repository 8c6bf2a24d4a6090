/*
 * The handshake's message exchange on the control socket (toe_hello.h).
 */
#include "host/toe_hello.h"

#include "toe/errno.h"
#include "transport/abi_validate.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int toe_hello_exchange(int ctl, const struct toe_abi_hello *h, int timeout_ms,
                       struct toe_abi_hello_reply *rep, int fds[TOE_ABI_FD_COUNT])
{
  if (send(ctl, h, sizeof(*h), MSG_NOSIGNAL) != (ssize_t)sizeof(*h))
    return errno ? -errno : -TOE_EPROTO;

  struct pollfd p = {.fd = ctl, .events = POLLIN};
  int r = poll(&p, 1, timeout_ms);
  if (r < 0)
    return -errno;
  if (r == 0)
    return -TOE_ETIMEDOUT;

  /* Room for one more descriptor than expected: a device passing too many is refused. */
  union {
    struct cmsghdr h;
    char buf[CMSG_SPACE(sizeof(int) * (TOE_ABI_FD_COUNT + 1))];
  } cm;
  struct toe_abi_hello_reply raw[2]; /* a longer reply (a later minor) is read in part */
  memset(raw, 0, sizeof(raw));
  struct iovec iov = {.iov_base = raw, .iov_len = sizeof(raw)};
  struct msghdr mh = {
      .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.buf, .msg_controllen = sizeof(cm.buf)};
  ssize_t n = recvmsg(ctl, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  if (n < 0)
    return -errno;
  int nfds = 0;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
      continue;
    size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    int in[TOE_ABI_FD_COUNT + 1];
    if (k > TOE_ABI_FD_COUNT + 1)
      k = TOE_ABI_FD_COUNT + 1;
    memcpy(in, CMSG_DATA(c), k * sizeof(int));
    for (size_t i = 0; i < k; i++) {
      if (nfds < TOE_ABI_FD_COUNT)
        fds[nfds++] = in[i];
      else {
        close(in[i]); /* one too many: refused below */
        nfds++;
      }
    }
  }
  *rep = raw[0];
  int rc;
  if (n == 0)
    rc = -TOE_ECONNREFUSED; /* closed without a reply */
  else if (mh.msg_flags & (MSG_CTRUNC | MSG_TRUNC))
    rc = -TOE_EPROTO;
  else
    rc = toe_abi_reply_check(rep, (size_t)n, h->caps);
  if (rc == 0 && (rep->nfds != TOE_ABI_FD_COUNT || nfds != TOE_ABI_FD_COUNT))
    rc = -TOE_EPROTO;
  if (rc < 0)
    for (int i = 0; i < nfds && i < TOE_ABI_FD_COUNT; i++) {
      close(fds[i]);
      fds[i] = -1;
    }
  return rc;
}
