/*
 * --follow-host (follow_host.h): the OS's IPv4 address and default gateway on the host
 * interface, learned from rtnetlink (rtnetlink(7)): a dump at start, then the multicast groups
 * of address and route changes.
 */
#define _GNU_SOURCE

#include "device/follow_host.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int request(int fd, uint16_t type, uint32_t seq)
{
  struct {
    struct nlmsghdr nh;
    struct rtgenmsg g;
  } req;
  memset(&req, 0, sizeof req);
  req.nh.nlmsg_len = NLMSG_LENGTH(sizeof req.g);
  req.nh.nlmsg_type = type;
  req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  req.nh.nlmsg_seq = seq;
  req.g.rtgen_family = AF_INET;
  return send(fd, &req, req.nh.nlmsg_len, 0) < 0 ? -errno : 0;
}

int toed_follow_host_open(struct toed_follow_host *f, int ifindex, char *err, size_t errlen)
{
  memset(f, 0, sizeof *f);
  f->ifindex = ifindex;
  f->fd = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (f->fd < 0) {
    int e = errno;
    snprintf(err, errlen, "--follow-host: cannot open an rtnetlink socket: %s", strerror(e));
    return -e;
  }
  struct sockaddr_nl sa;
  memset(&sa, 0, sizeof sa);
  sa.nl_family = AF_NETLINK;
  sa.nl_groups = RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE;
  int rc = bind(f->fd, (struct sockaddr *)&sa, sizeof sa) < 0 ? -errno : 0;
  /* One dump at a time on a netlink socket: the routes are asked for once the addresses'
   * dump is done (toed_follow_host_read). */
  if (rc == 0)
    rc = request(f->fd, RTM_GETADDR, 1);
  if (rc < 0) {
    snprintf(err, errlen, "--follow-host: rtnetlink: %s", strerror(-rc));
    toed_follow_host_close(f);
    return rc;
  }
  return 0;
}

static void on_addr(struct toed_follow_host *f, const struct nlmsghdr *nh)
{
  const struct ifaddrmsg *ifa = NLMSG_DATA(nh);
  if (nh->nlmsg_len < NLMSG_LENGTH(sizeof *ifa) || ifa->ifa_family != AF_INET ||
      (int)ifa->ifa_index != f->ifindex)
    return;
  uint32_t a = 0;
  int len = (int)IFA_PAYLOAD(nh);
  for (const struct rtattr *rta = IFA_RTA(ifa); RTA_OK(rta, len); rta = RTA_NEXT(rta, len))
    if ((rta->rta_type == IFA_LOCAL || (rta->rta_type == IFA_ADDRESS && a == 0)) &&
        RTA_PAYLOAD(rta) == 4) {
      uint32_t be;
      memcpy(&be, RTA_DATA(rta), 4);
      a = ntohl(be);
    }
  if (a == 0)
    return;
  if (nh->nlmsg_type == RTM_NEWADDR) {
    /* The device has one IPv4 address: the OS's latest (a DHCP renewal re-announces it). */
    if (a != f->addr || ifa->ifa_prefixlen != f->prefix_len) {
      f->addr = a;
      f->prefix_len = ifa->ifa_prefixlen;
      f->changed = true;
    }
  } else if (a == f->addr) {
    f->addr = 0;
    f->gateway = 0; /* the kernel removes the routes through the address with it */
    f->changed = true;
  }
}

static void on_route(struct toed_follow_host *f, const struct nlmsghdr *nh)
{
  const struct rtmsg *rt = NLMSG_DATA(nh);
  if (nh->nlmsg_len < NLMSG_LENGTH(sizeof *rt) || rt->rtm_family != AF_INET ||
      rt->rtm_dst_len != 0 || rt->rtm_table != RT_TABLE_MAIN)
    return;
  uint32_t gw = 0;
  int oif = 0;
  int len = (int)RTM_PAYLOAD(nh);
  for (const struct rtattr *rta = RTM_RTA(rt); RTA_OK(rta, len); rta = RTA_NEXT(rta, len)) {
    if (rta->rta_type == RTA_GATEWAY && RTA_PAYLOAD(rta) == 4) {
      uint32_t be;
      memcpy(&be, RTA_DATA(rta), 4);
      gw = ntohl(be);
    } else if (rta->rta_type == RTA_OIF && RTA_PAYLOAD(rta) == 4) {
      memcpy(&oif, RTA_DATA(rta), 4);
    }
  }
  if (oif != f->ifindex || gw == 0)
    return;
  uint32_t want = nh->nlmsg_type == RTM_NEWROUTE ? gw : (gw == f->gateway ? 0 : f->gateway);
  if (want != f->gateway) {
    f->gateway = want;
    f->changed = true;
  }
}

int toed_follow_host_read(struct toed_follow_host *f)
{
  if (f->fd < 0)
    return 0;
  char buf[16384] __attribute__((aligned(4)));
  for (;;) {
    ssize_t n = recv(f->fd, buf, sizeof buf, 0);
    if (n < 0)
      return errno == EAGAIN || errno == EINTR ? 0 : -errno;
    int len = (int)n;
    for (const struct nlmsghdr *nh = (const struct nlmsghdr *)buf; NLMSG_OK(nh, len);
         nh = NLMSG_NEXT(nh, len)) {
      f->events++;
      switch (nh->nlmsg_type) {
      case RTM_NEWADDR:
      case RTM_DELADDR:
        on_addr(f, nh);
        break;
      case RTM_NEWROUTE:
      case RTM_DELROUTE:
        on_route(f, nh);
        break;
      case NLMSG_DONE:
        if (nh->nlmsg_seq == 1)
          (void)request(f->fd, RTM_GETROUTE, 2);
        break;
      default:
        break;
      }
    }
  }
}

bool toed_follow_host_take(struct toed_follow_host *f, uint32_t *addr, uint8_t *prefix_len,
                           uint32_t *gateway)
{
  if (!f->changed)
    return false;
  f->changed = false;
  *addr = f->addr;
  *prefix_len = f->prefix_len;
  *gateway = f->gateway;
  return true;
}

void toed_follow_host_close(struct toed_follow_host *f)
{
  if (f->fd >= 0)
    close(f->fd);
  f->fd = -1;
}
