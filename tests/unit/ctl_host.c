/* The host end of the transport ABI against toed's in-process session code (ctl_host.h). */
#define _GNU_SOURCE

#include "ctl_host.h"

#include "device/ctl_client.h"
#include "transport/abi_validate.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int ctl_host_listen(struct toed_ctl *c, struct toe_stack *st, const char *who, uint32_t poll_us,
                    uint32_t max_clients, struct ctl_host_server *srv, char *err, size_t errlen)
{
  return ctl_host_listen_with(c, st, who, poll_us, max_clients, NULL, srv, err, errlen);
}

int ctl_host_listen_with(struct toed_ctl *c, struct toe_stack *st, const char *who,
                         uint32_t poll_us, uint32_t max_clients, int (*pidfd_open)(pid_t),
                         struct ctl_host_server *srv, char *err, size_t errlen)
{
  snprintf(srv->path, sizeof srv->path, "/tmp/toe-%s-%d.sock", who, (int)getpid());
  unlink(srv->path); /* left by an earlier run of this process id that crashed */
  srv->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (srv->epfd < 0) {
    int e = errno;
    snprintf(err, errlen, "epoll_create1: %s", strerror(e));
    return -e;
  }
  struct toed_ctl_config cc = {.path = srv->path,
                               .poll_us = poll_us,
                               .max_clients = max_clients,
                               .quiet = true,
                               .pidfd_open = pidfd_open};
  int rc = toed_ctl_open(c, &cc, st, srv->epfd, err, errlen);
  if (rc < 0) {
    close(srv->epfd);
    srv->epfd = -1;
  }
  return rc;
}

void ctl_host_hello(struct toe_abi_hello *h, uint64_t caps, uint32_t buf_count, const char *comm)
{
  memset(h, 0, sizeof *h);
  h->magic = TOE_ABI_HELLO_MAGIC;
  h->abi_major = TOE_ABI_MAJOR;
  h->abi_minor = TOE_ABI_MINOR;
  h->size = sizeof *h;
  h->caps = caps;
  h->sq_entries = 8;
  h->cq_entries = 16;
  h->buf_count = buf_count;
  h->buf_size = 2048;
  h->max_handles = 4;
  size_t n = strlen(comm);
  memcpy(h->comm, comm, n < sizeof h->comm ? n : sizeof h->comm);
}

static int fail(char *err, size_t errlen, const char *what, int e)
{
  snprintf(err, errlen, "%s: %s", what, strerror(e));
  return -e;
}

int ctl_host_attach(struct ctl_host *h, struct toed_ctl *c, const char *path,
                    const struct toe_abi_hello *hello, toe_time_t now, char *err, size_t errlen)
{
  memset(h, 0, sizeof *h);
  h->kick = h->notify = -1;
  h->fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (h->fd < 0)
    return fail(err, errlen, "socket", errno);
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
  if (connect(h->fd, (struct sockaddr *)&sa, sizeof sa) != 0)
    return fail(err, errlen, "connect", errno);
  if (send(h->fd, hello, sizeof *hello, 0) != (ssize_t)sizeof *hello)
    return fail(err, errlen, "send hello", errno);
  /* toed's side, as its epoll loop would run it: the connection (slot 0, generation 1), then
   * its hello, answered at once. */
  toed_ctl_on_epoll(c, ctl_tag(0, 0, CTL_TAG_LISTEN), EPOLLIN, now);
  toed_ctl_on_epoll(c, ctl_tag(0, 1, CTL_TAG_CONTROL), EPOLLIN, now);
  struct toe_abi_hello_reply rep;
  union {
    char b[CMSG_SPACE(sizeof(int) * TOE_ABI_FD_MAX)];
    struct cmsghdr align;
  } cbuf;
  struct iovec iov = {&rep, sizeof rep};
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = cbuf.b;
  msg.msg_controllen = sizeof cbuf.b;
  ssize_t n = recvmsg(h->fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  if (n < 0)
    return fail(err, errlen, "recvmsg (no reply to the hello)", errno);
  if (toe_abi_reply_check(&rep, (size_t)n, hello->caps) != 0)
    return fail(err, errlen, "hello refused", ECONNREFUSED);
  struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
  if (!cm || cm->cmsg_type != SCM_RIGHTS || rep.nfds < 3 || rep.nfds > TOE_ABI_FD_MAX ||
      cm->cmsg_len < CMSG_LEN(sizeof(int) * rep.nfds))
    return fail(err, errlen, "the reply's descriptors", EPROTO);
  int fds[TOE_ABI_FD_MAX];
  memcpy(fds, CMSG_DATA(cm), sizeof(int) * rep.nfds);
  h->kick = fds[1];
  h->notify = fds[2];
  for (uint32_t i = 3; i < rep.nfds; i++)
    close(fds[i]);
  h->lay = rep.layout;
  void *m = mmap(NULL, h->lay.region_size, PROT_READ | PROT_WRITE, MAP_SHARED, fds[0], 0);
  int e = errno;
  close(fds[0]);
  if (m == MAP_FAILED)
    return fail(err, errlen, "mmap of the region", e);
  h->region = m;
  if (toe_ring_init_prod(&h->sq, (struct toe_abi_ring_ctl *)(h->region + h->lay.sq_ctl_off),
                         h->region + h->lay.sq_off, h->lay.sq_entries, TOE_ABI_SQE_SIZE) != 0 ||
      toe_ring_init_cons(&h->cq, (struct toe_abi_ring_ctl *)(h->region + h->lay.cq_ctl_off),
                         h->region + h->lay.cq_off, h->lay.cq_entries, TOE_ABI_CQE_SIZE) != 0 ||
      toe_ring_init_prod(&h->fq, (struct toe_abi_ring_ctl *)(h->region + h->lay.fq_ctl_off),
                         h->region + h->lay.fq_off, h->lay.fq_entries, TOE_ABI_FQE_SIZE) != 0)
    return fail(err, errlen, "the region's rings do not attach", EPROTO);
  return 0;
}

bool ctl_host_give_buf(struct ctl_host *h, uint32_t id)
{
  if (toe_ring_prod_write(&h->fq, &id, 1) != 1)
    return false;
  toe_ring_publish(&h->fq);
  return true;
}

void ctl_host_detach(struct ctl_host *h)
{
  if (h->region)
    munmap(h->region, h->lay.region_size);
  h->region = NULL;
  int *fds[] = {&h->fd, &h->kick, &h->notify};
  for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++) {
    if (*fds[i] >= 0)
      close(*fds[i]);
    *fds[i] = -1;
  }
}
