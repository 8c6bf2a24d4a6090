/*
 * UDP flows (docs/interception.md "toe-proxyd"). TPROXY hands every selected datagram to one
 * IP_TRANSPARENT socket; IP_RECVORIGDSTADDR says where the application sent it. A flow is one
 * (application socket address, original destination) pair, the unit handleNewUDPFlow gives a
 * macOS provider. Each flow has:
 *   - a device UDP socket connected to the destination: datagrams out with toe_send, replies in
 *     with toe_recv (the device's UDP, so the peer sees the device's address);
 *   - a kernel reply socket bound to the destination's address and port (IP_TRANSPARENT allows a
 *     foreign address): replies reach the application from the address it sent to, as a
 *     connected UDP socket requires; SO_MARK routes them back through loopback unintercepted.
 * A flow idle for --udp-idle seconds is closed (UDP has no end of its own). Datagrams that find
 * no send space in the device are dropped and counted, as a kernel drops on a full queue.
 */
#include "proxy/proxyd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PX_DGRAM_MAX 65536

struct px_udp_flow {
  enum px_kind kind; /* PX_K_UDP: first, for the device event dispatch */
  struct px_udp_flow *prev, *next;
  struct sockaddr_in app, dst;
  int sd;  /* device socket */
  int rfd; /* kernel reply socket, bound to dst */
  uint64_t last_ms;
  struct px_udp_flow *hnext; /* in p->udp_hash[flow_hash(app, dst)] */
  uid_t uid;                 /* charged to (px_flow_admit) */
};

/* The bucket of (app, dst): a datagram finds its flow without walking every flow. */
static uint32_t flow_hash(const struct sockaddr_in *app, const struct sockaddr_in *dst)
{
  uint64_t k = (uint64_t)app->sin_addr.s_addr << 32 | dst->sin_addr.s_addr;
  k ^= (uint64_t)app->sin_port << 16 ^ dst->sin_port;
  k *= 0x9e3779b97f4a7c15ull; /* Fibonacci hashing: the high bits are well mixed */
  return (uint32_t)(k >> 52) & (PX_UDP_HASH - 1u);
}

static void flow_free(struct proxyd *p, struct px_udp_flow *f)
{
  struct px_udp_flow **pp = &p->udp_hash[flow_hash(&f->app, &f->dst)];
  while (*pp && *pp != f)
    pp = &(*pp)->hnext;
  if (*pp)
    *pp = f->hnext;
  px_flow_release(p, f->uid);
  if (f->prev)
    f->prev->next = f->next;
  else
    p->udp_head = f->next;
  if (f->next)
    f->next->prev = f->prev;
  if (f->sd >= 0)
    toe_close(p->dev, f->sd);
  if (f->rfd >= 0)
    close(f->rfd);
  p->ctr.udp_active--;
  free(f);
}

int px_udp_open(struct proxyd *p)
{
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  int one = 1;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(p->net.udp_port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (setsockopt(fd, SOL_IP, IP_TRANSPARENT, &one, sizeof one) < 0 ||
      setsockopt(fd, SOL_IP, IP_RECVORIGDSTADDR, &one, sizeof one) < 0 ||
      bind(fd, (struct sockaddr *)&a, sizeof a) < 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  p->udp_fd = fd;
  return 0;
}

static bool same(const struct sockaddr_in *x, const struct sockaddr_in *y)
{
  return x->sin_addr.s_addr == y->sin_addr.s_addr && x->sin_port == y->sin_port;
}

static struct px_udp_flow *flow_open(struct proxyd *p, const struct sockaddr_in *app,
                                     const struct sockaddr_in *dst)
{
  uid_t uid;
  if (!px_flow_admit(p, PX_UDP, app, dst, &uid))
    return NULL;
  struct px_udp_flow *f = calloc(1, sizeof *f);
  if (!f) {
    px_flow_release(p, uid);
    return NULL;
  }
  f->uid = uid;
  f->kind = PX_K_UDP;
  f->app = *app;
  f->dst = *dst;
  f->rfd = -1;
  f->sd = toe_socket(p->dev, TOE_SOCK_DGRAM);
  if (f->sd < 0 || toe_connect(p->dev, f->sd, (const struct sockaddr *)dst, sizeof *dst) < 0) {
    if (f->sd >= 0)
      toe_close(p->dev, f->sd);
    px_flow_release(p, uid);
    free(f);
    return NULL;
  }
  int one = 1, mark = (int)p->net.fwmark;
  f->rfd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (f->rfd < 0 || setsockopt(f->rfd, SOL_IP, IP_TRANSPARENT, &one, sizeof one) < 0 ||
      setsockopt(f->rfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
      setsockopt(f->rfd, SOL_SOCKET, SO_MARK, &mark, sizeof mark) < 0 ||
      bind(f->rfd, (const struct sockaddr *)dst, sizeof *dst) < 0) {
    px_log("udp: cannot make the reply socket for %s:%u: %s", inet_ntoa(dst->sin_addr),
           ntohs(dst->sin_port), strerror(errno));
    if (f->rfd >= 0)
      close(f->rfd);
    toe_close(p->dev, f->sd);
    px_flow_release(p, uid);
    free(f);
    return NULL;
  }
  f->next = p->udp_head;
  if (p->udp_head)
    p->udp_head->prev = f;
  p->udp_head = f;
  uint32_t h = flow_hash(app, dst);
  f->hnext = p->udp_hash[h];
  p->udp_hash[h] = f;
  p->ctr.udp_flows++;
  p->ctr.udp_active++;
  toe_poll_ctl(p->dev, f->sd, TOE_POLLIN, f);
  pid_t pid;
  char comm[16];
  if (px_owner_find(PX_UDP, app, dst, &p->owner_hint, &pid, comm) == 0) {
    if (toe_set_owner(p->dev, f->sd, (uint32_t)pid, comm) < 0)
      p->ctr.errors++;
  } else {
    p->ctr.owner_unknown++;
  }
  if (p->verbose) {
    char a[INET_ADDRSTRLEN], d[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &app->sin_addr, a, sizeof a);
    inet_ntop(AF_INET, &dst->sin_addr, d, sizeof d);
    px_log("udp flow %s:%u -> %s:%u over the device", a, ntohs(app->sin_port), d,
           ntohs(dst->sin_port));
  }
  return f;
}

void px_udp_receive(struct proxyd *p)
{
  static char buf[PX_DGRAM_MAX];
  for (int budget = 0; budget < 256; budget++) {
    struct sockaddr_in app;
    char cbuf[CMSG_SPACE(sizeof(struct sockaddr_in))];
    struct iovec iov = {buf, sizeof buf};
    struct msghdr m = {.msg_name = &app,
                       .msg_namelen = sizeof app,
                       .msg_iov = &iov,
                       .msg_iovlen = 1,
                       .msg_control = cbuf,
                       .msg_controllen = sizeof cbuf};
    ssize_t n = recvmsg(p->udp_fd, &m, MSG_DONTWAIT);
    if (n < 0) {
      if (errno != EAGAIN && errno != EINTR)
        p->ctr.errors++;
      return;
    }
    struct sockaddr_in dst;
    bool have_dst = false;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
      if (c->cmsg_level == SOL_IP && c->cmsg_type == IP_ORIGDSTADDR) {
        memcpy(&dst, CMSG_DATA(c), sizeof dst);
        have_dst = true;
      }
    if (!have_dst || app.sin_family != AF_INET) {
      p->ctr.errors++;
      continue;
    }
    struct px_udp_flow *f = p->udp_hash[flow_hash(&app, &dst)];
    while (f && !(same(&f->app, &app) && same(&f->dst, &dst)))
      f = f->hnext;
    if (!f) {
      uint64_t refused = p->ctr.flows_refused;
      if (!(f = flow_open(p, &app, &dst))) {
        p->ctr.udp_dropped++;
        if (p->ctr.flows_refused == refused)
          p->ctr.errors++; /* not a limit: a socket call failed */
        continue;
      }
    }
    f->last_ms = px_now_ms();
    ssize_t s = toe_send(p->dev, f->sd, buf, (size_t)n, 0);
    if (s < 0) {
      p->ctr.udp_dropped++;
      continue;
    }
    p->ctr.udp_dgrams_out++;
    p->ctr.bytes_to_dev += (uint64_t)n;
  }
}

void px_udp_device_event(struct proxyd *p, struct px_udp_flow *f, uint32_t events)
{
  static char buf[PX_DGRAM_MAX];
  if (events & TOE_POLLERR) {
    int64_t err; /* an ICMP error for an earlier datagram: the kernel would report it once */
    toe_getsockopt(p->dev, f->sd, TOE_OPT_ERROR, &err);
  }
  for (;;) {
    ssize_t n = toe_recv(p->dev, f->sd, buf, sizeof buf, 0);
    if (n == -TOE_EAGAIN)
      break;
    if (n < 0) {
      if (n == -TOE_ECONNREFUSED)
        continue; /* a soft error, reported once */
      p->ctr.errors++;
      flow_free(p, f); /* the device is gone or the socket broken */
      return;
    }
    f->last_ms = px_now_ms();
    if (sendto(f->rfd, buf, (size_t)n, MSG_DONTWAIT, (struct sockaddr *)&f->app, sizeof f->app) <
        0) {
      p->ctr.udp_dropped++;
      continue;
    }
    p->ctr.udp_dgrams_in++;
    p->ctr.bytes_from_dev += (uint64_t)n;
  }
}

int px_udp_expire(struct proxyd *p, uint64_t now_ms)
{
  int next = 1000;
  for (struct px_udp_flow *f = p->udp_head, *nx; f; f = nx) {
    nx = f->next;
    uint64_t idle = now_ms - f->last_ms;
    if (idle >= (uint64_t)p->udp_idle_ms) {
      p->ctr.udp_idle_closed++;
      flow_free(p, f);
    } else if ((int)((uint64_t)p->udp_idle_ms - idle) < next) {
      next = (int)((uint64_t)p->udp_idle_ms - idle);
    }
  }
  return next;
}

void px_udp_close_all(struct proxyd *p)
{
  while (p->udp_head)
    flow_free(p, p->udp_head);
}
