/*
 * The handshake's message exchange on the control socket (hello.h).
 */
#if defined(TOE_SYS_RAW) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* syscall(2), for port_sys.h's raw calls */
#endif
#include "transport/os/hello.h"

#include "host/port_sys.h"
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
  return toe_hello_exchange_n(ctl, h, timeout_ms, rep, fds, TOE_ABI_FD_COUNT);
}

int toe_hello_exchange_n(int ctl, const struct toe_abi_hello *h, int timeout_ms,
                         struct toe_abi_hello_reply *rep, int *fds, unsigned maxfds)
{
  if (maxfds > TOE_ABI_FD_MAX)
    maxfds = TOE_ABI_FD_MAX;
  if (toe_sys_send_nosig(ctl, h, sizeof(*h)) != (ssize_t)sizeof(*h))
    return errno ? -errno : -TOE_EPROTO;

  struct pollfd p = {.fd = ctl, .events = POLLIN};
  int r = toe_sys_poll(&p, 1, timeout_ms);
  if (r < 0)
    return -errno;
  if (r == 0)
    return -TOE_ETIMEDOUT;

  /* Room for one more descriptor than expected: a device passing too many is refused. */
  union {
    struct cmsghdr h;
    char buf[CMSG_SPACE(sizeof(int) * (TOE_ABI_FD_MAX + 1))];
  } cm;
  struct toe_abi_hello_reply raw[2]; /* a longer reply (a later minor) is read in part */
  memset(raw, 0, sizeof(raw));
  struct iovec iov = {.iov_base = raw, .iov_len = sizeof(raw)};
  struct msghdr mh = {
      .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.buf, .msg_controllen = sizeof(cm.buf)};
  ssize_t n = toe_sys_recvmsg_cloexec(ctl, &mh, 0); /* poll said readable: it does not block */
  if (n < 0)
    return -errno;
  int nfds = 0;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
      continue;
    size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    int in[TOE_ABI_FD_MAX + 1];
    if (k > TOE_ABI_FD_MAX + 1)
      k = TOE_ABI_FD_MAX + 1;
    memcpy(in, CMSG_DATA(c), k * sizeof(int));
    for (size_t i = 0; i < k; i++) {
      if ((unsigned)nfds < maxfds)
        fds[nfds++] = in[i];
      else {
        toe_sys_close(in[i]); /* one too many: refused below */
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
  if (rc == 0 && (rep->nfds != (uint32_t)nfds || (unsigned)nfds > maxfds))
    rc = -TOE_EPROTO; /* toe_abi_reply_check made sure nfds is what the capabilities say */
  if (rc < 0)
    for (int i = 0; i < nfds && (unsigned)i < maxfds; i++) {
      toe_sys_close(fds[i]);
      fds[i] = -1;
    }
  return rc;
}
