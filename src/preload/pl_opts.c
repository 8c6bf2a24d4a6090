/*
 * libtoe-preload: what an offloaded socket does with each socket option, and the ancillary data
 * of recvmsg (docs/interception.md "Socket options" and "Ancillary data").
 *
 * Every option an application sets is one of: carried by the device (pl_toe_opt_of, pl_switch.c),
 * served here (the timeouts, and the switches of recvmsg's control messages: IP_PKTINFO,
 * IP_RECVTOS, IP_RECVTTL, SO_TIMESTAMP, SO_TIMESTAMPNS, SO_TIMESTAMPING's receive software
 * stamps), accepted only at the value that already describes what the device does (IP_TOS 0,
 * SO_BROADCAST 0, ...), or refused with ENOPROTOOPT. None is accepted and then ignored: a program
 * told yes must get what it asked for (issue 13 item 4: dnsmasq was told yes to IP_PKTINFO and
 * never got a control message, so it dropped every query). A kernel socket that set an option
 * the device cannot honour stays on the kernel when it is decided (pl_opts_offloadable).
 */
#define _GNU_SOURCE

#include "preload/pl_msg.h"
#include "preload/preload.h"
#include "toe/abi.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <linux/net_tstamp.h>
#include <net/if.h>
#include <netinet/tcp.h>
#include <netinet/udp.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif

/* SO_TIMESTAMPING flags the device can serve: software stamps of received datagrams (the device
 * stamps each on arrival). Asking for hardware stamps as well is allowed, as on a kernel whose
 * NIC has none: none come. Transmit stamps (the error queue) and the OPT_* modes are refused. */
#define PL_TSING_OK                                                                                \
  (SOF_TIMESTAMPING_RX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE | SOF_TIMESTAMPING_RX_HARDWARE |       \
   SOF_TIMESTAMPING_RAW_HARDWARE)

static int opt_int(const void *val, socklen_t len)
{
  int v = 0;
  if (val && len >= (socklen_t)sizeof(int))
    memcpy(&v, val, sizeof(int));
  else if (val && len >= 1)
    v = *(const unsigned char *)val;
  return v;
}

unsigned pl_cmsg_bit(int level, int name)
{
  if (level == IPPROTO_IP) {
    switch (name) {
    case IP_PKTINFO:
      return PL_CM_PKTINFO;
    case IP_RECVTOS:
      return PL_CM_TOS;
    case IP_RECVTTL:
      return PL_CM_TTL;
    default:
      return 0;
    }
  }
  if (level == SOL_SOCKET) {
    switch (name) {
    case SO_TIMESTAMP_OLD:
      return PL_CM_TS;
    case SO_TIMESTAMP_NEW:
      return PL_CM_TS_NEW;
    case SO_TIMESTAMPNS_OLD:
      return PL_CM_TSNS;
    case SO_TIMESTAMPNS_NEW:
      return PL_CM_TSNS_NEW;
    case SO_TIMESTAMPING_OLD:
      return PL_CM_TSING;
    case SO_TIMESTAMPING_NEW:
      return PL_CM_TSING_NEW;
    default:
      return 0;
    }
  }
  return 0;
}

/* An option that is accepted at the value(s) that describe the device's own behaviour. */
struct pl_keep {
  int level, name;
  int ok1, ok2;   /* accepted values */
  unsigned types; /* 1: SOCK_STREAM, 2: SOCK_DGRAM */
  int ok3;        /* a third accepted value (-2: none) */
};

static const struct pl_keep keeps[] = {
    {SOL_SOCKET, SO_BROADCAST, 0, 0, 3, -2}, /* the device sends no broadcast */
    {SOL_SOCKET, SO_DEBUG, 0, 0, 3, -2},     /* */
    {SOL_SOCKET, SO_DONTROUTE, 0, 0, 3, -2}, /* the device routes every datagram */
    {SOL_SOCKET, SO_OOBINLINE, 0, 0, 3,
     -2},                                   /* urgent data is not supported (MSG_OOB: EOPNOTSUPP) */
    {SOL_SOCKET, SO_PRIORITY, 0, 0, 3, -2}, /* no queueing discipline on the device */
    {SOL_SOCKET, SO_MARK, 0, 0, 3, -2},     /* the host's firewall never sees offloaded traffic */
    {SOL_SOCKET, SO_RCVLOWAT, 0, 1, 3, -2}, /* 0 means 1, as on Linux */
    {SOL_SOCKET, SO_ZEROCOPY, 0, 0, 3, -2}, /* MSG_ZEROCOPY is not supported */
    {SOL_SOCKET, SO_BUSY_POLL, 0, 0, 3, -2}, /* TOE_SPIN_US is the preload's busy polling */
    {SOL_SOCKET, SO_PASSCRED, 0, 0, 3, -2},  /* */
    {IPPROTO_IP, IP_TOS, 0, 0, 3, -2},       /* the device sends TOS 0 */
    {IPPROTO_IP, IP_TTL, -1, -1, 3, -2},     /* -1: the default TTL (the device's) */
    {IPPROTO_IP, IP_RECVERR, 0, 0, 1, -2},   /* TCP: off only (UDP: carried, TOE_OPT_RECVERR) */
    {IPPROTO_IP, IP_FREEBIND, 0, 0, 3, -2},  /* only the device's address can be bound */
    {IPPROTO_IP, IP_TRANSPARENT, 0, 0, 3, -2},
    {IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 0, 0, 3, -2},
    {IPPROTO_IP, IP_RECVORIGDSTADDR, 0, 0, 3, -2},
    {IPPROTO_IP, IP_RECVOPTS, 0, 0, 3, -2},
    {IPPROTO_IP, IP_RETOPTS, 0, 0, 3, -2},
    /* path MTU discovery: TCP segments always carry DF (RFC 1191), UDP datagrams never (OMIT,
     * BIND's choice, asks for that too); WANT is the kernel's default and is accepted on both */
    {IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_WANT, IP_PMTUDISC_DO, 1, -2},
    {IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_WANT, IP_PMTUDISC_DONT, 2, IP_PMTUDISC_OMIT},
    {IPPROTO_TCP, TCP_CORK, 0, 0, 1, -2},         /* MSG_MORE is carried; the cork is not */
    {IPPROTO_TCP, TCP_DEFER_ACCEPT, 0, 0, 1, -2}, /* accept completes at the handshake */
    {IPPROTO_TCP, TCP_QUICKACK, 1, 1, 1, -2},     /* the device acknowledges promptly */
    {IPPROTO_TCP, TCP_USER_TIMEOUT, 0, 0, 1, -2}, /* the engine's retransmission limits */
    {IPPROTO_TCP, TCP_FASTOPEN_CONNECT, 0, 0, 1, -2},
    {IPPROTO_TCP, TCP_WINDOW_CLAMP, 0, 0, 1, -2},
    {IPPROTO_UDP, UDP_CORK, 0, 0, 2, -2},
    {IPPROTO_UDP, UDP_SEGMENT, 0, 0, 2, -2},
    {IPPROTO_UDP, UDP_GRO, 0, 0, 2, -2},
};

int pl_opt_class(int type, int level, int name, const void *val, socklen_t len)
{
  unsigned t = type == SOCK_STREAM ? 1u : 2u;
  if (level == SOL_SOCKET && (name == SO_RCVTIMEO || name == SO_SNDTIMEO))
    return PL_OC_LOCAL;
  int iv = opt_int(val, len);
  unsigned cm = pl_cmsg_bit(level, name);
  if (cm) {
    /* recvmsg's control messages describe datagrams: on a TCP socket Linux accepts the switches
     * and never sends one (tcp_recvmsg has no IP_PKTINFO; timestamps aside), so the same here;
     * the timestamps of TCP data are refused, the device keeps none per byte. */
    if (cm & PL_CM_TSING_ANY) {
      /* the value is flags, or struct so_timestamping whose first member is the flags */
      if ((unsigned)iv & ~(unsigned)PL_TSING_OK)
        return PL_OC_REFUSE;
    }
    if (t == 1 && (cm & PL_CM_TS_ANY) && iv)
      return PL_OC_REFUSE;
    return PL_OC_CMSG;
  }
  if (level == IPPROTO_IP && name == IP_RECVERR && t == 2)
    return PL_OC_DEVICE; /* TOE_OPT_RECVERR */
  if (!(level == IPPROTO_IP && name == IP_RECVERR)) {
    struct pl_opt o = {.level = level, .name = name};
    o.len = len > (socklen_t)sizeof(o.val) ? (socklen_t)sizeof(o.val) : len;
    if (val)
      memcpy(o.val, val, o.len);
    int64_t v;
    if (pl_toe_opt_of(level, name, &o, &v) > 0)
      return PL_OC_DEVICE;
    if (level == IPPROTO_TCP && name == TCP_CONGESTION)
      return PL_OC_DEVICE; /* an algorithm the device lacks: ENOENT (setsockopt) */
  }
  for (size_t i = 0; i < sizeof(keeps) / sizeof(keeps[0]); i++) {
    const struct pl_keep *k = &keeps[i];
    if (k->level == level && k->name == name && (k->types & t))
      return iv == k->ok1 || iv == k->ok2 || iv == k->ok3 ? PL_OC_KEEP : PL_OC_REFUSE;
  }
  /* A listener's fast-open queue: Linux accepts it and, with its default net.ipv4.tcp_fastopen
   * (1: client side only), never uses it; the device has no server fast open either, so a SYN's
   * data is acknowledged and sent again by the client (RFC 7413 section 4.1.3), the same. */
  if (level == IPPROTO_TCP && name == TCP_FASTOPEN && t == 1)
    return iv >= 0 ? PL_OC_KEEP : PL_OC_REFUSE;
  if (level == SOL_SOCKET && name == SO_BINDTODEVICE)
    return (!val || len == 0 || !*(const char *)val) ? PL_OC_KEEP : PL_OC_REFUSE;
  return PL_OC_REFUSE;
}

/* Options a kernel socket may carry to the device although the device cannot do them, because
 * they only bound how long a failing connection lingers, never what data is delivered: the
 * device's own limits apply instead, and the switch says so on stderr (pl_switch). An offloaded
 * socket that sets one gets ENOPROTOOPT. TCP_USER_TIMEOUT: libuv's and BIND's clients set it
 * before connect. */
static bool soft_at_switch(int level, int name)
{
  return level == IPPROTO_TCP && name == TCP_USER_TIMEOUT;
}

bool pl_opts_offloadable(const struct psock *ps, int *level, int *name, int *soft_level,
                         int *soft_name)
{
  *soft_level = *soft_name = -1;
  for (int i = 0; i < ps->nopts; i++) {
    const struct pl_opt *o = &ps->opts[i];
    if (pl_opt_class(ps->type, o->level, o->name, o->val, o->len) == PL_OC_REFUSE) {
      if (soft_at_switch(o->level, o->name)) {
        *soft_level = o->level;
        *soft_name = o->name;
        continue;
      }
      *level = o->level;
      *name = o->name;
      return false;
    }
  }
  return true;
}

unsigned pl_cmsg_mask(const struct psock *ps)
{
  unsigned m = 0;
  for (int i = 0; i < ps->nopts; i++) {
    const struct pl_opt *o = &ps->opts[i];
    unsigned b = pl_cmsg_bit(o->level, o->name);
    int iv = opt_int(o->val, o->len);
    if (!b || !iv)
      continue;
    /* SO_TIMESTAMPING reports software stamps only with SOF_TIMESTAMPING_SOFTWARE, and only for
     * datagrams stamped on receipt (RX_SOFTWARE, which the device always does) */
    if ((b & PL_CM_TSING_ANY) && !(iv & SOF_TIMESTAMPING_SOFTWARE))
      continue;
    m |= b;
  }
  return m;
}

/* ---- the interface a datagram arrived on (IP_PKTINFO's ipi_ifindex) ----------------------- */

/*
 * The device's address is configured on the host interface that shares it (docs/coexistence.md),
 * so the interface the OS would name for a datagram to that address is the one holding it. Looked
 * up with getifaddrs and kept for a few seconds (addresses rarely move; dnsmasq asks for every
 * query). 0 when no interface holds the address (a device without a host interface).
 */
static pthread_mutex_t if_mu = PTHREAD_MUTEX_INITIALIZER;
static uint32_t if_addr;
static unsigned if_index;
static time_t if_when;

unsigned pl_ifindex_of(uint32_t addr_be)
{
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  pthread_mutex_lock(&if_mu);
  if (if_when && addr_be == if_addr && now.tv_sec - if_when < 5) {
    unsigned r = if_index;
    pthread_mutex_unlock(&if_mu);
    return r;
  }
  unsigned found = 0;
  struct ifaddrs *ifs = NULL;
  if (getifaddrs(&ifs) == 0) {
    for (struct ifaddrs *i = ifs; i; i = i->ifa_next) {
      if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET)
        continue;
      const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)i->ifa_addr;
      if (sin->sin_addr.s_addr == addr_be) {
        found = if_nametoindex(i->ifa_name);
        break;
      }
    }
    freeifaddrs(ifs);
  }
  if_addr = addr_be;
  if_index = found;
  if_when = now.tv_sec ? now.tv_sec : 1;
  pthread_mutex_unlock(&if_mu);
  return found;
}

/* ---- recvmsg's control messages ------------------------------------------------------------ */

void pl_cmsg_build(unsigned mask, const struct toe_rxmeta *m, struct msghdr *msg)
{
  size_t used = 0;
  if (m && mask) {
    if ((mask & PL_CM_TS_ANY) && (m->flags & TOE_RXMETA_TIME)) {
      long long sec = (long long)(m->time_ns / 1000000000ull);
      long long nsec = (long long)(m->time_ns % 1000000000ull);
      if (mask & PL_CM_TSNS) {
        struct timespec ts = {.tv_sec = (time_t)sec, .tv_nsec = (long)nsec};
        (void)pl_cmsg_put(msg, &used, SOL_SOCKET, SO_TIMESTAMPNS_OLD, &ts, sizeof(ts));
      } else if (mask & PL_CM_TSNS_NEW) {
        long long ts[2] = {sec, nsec}; /* struct __kernel_timespec */
        (void)pl_cmsg_put(msg, &used, SOL_SOCKET, SO_TIMESTAMPNS_NEW, ts, sizeof(ts));
      } else if (mask & PL_CM_TS) {
        struct timeval tv = {.tv_sec = (time_t)sec, .tv_usec = (suseconds_t)(nsec / 1000)};
        (void)pl_cmsg_put(msg, &used, SOL_SOCKET, SO_TIMESTAMP_OLD, &tv, sizeof(tv));
      } else if (mask & PL_CM_TS_NEW) {
        long long tv[2] = {sec, nsec / 1000}; /* struct __kernel_sock_timeval */
        (void)pl_cmsg_put(msg, &used, SOL_SOCKET, SO_TIMESTAMP_NEW, tv, sizeof(tv));
      }
      if (mask & PL_CM_TSING) {
        struct timespec ts[3];
        memset(ts, 0, sizeof(ts));
        ts[0].tv_sec = (time_t)sec;
        ts[0].tv_nsec = (long)nsec;
        (void)pl_cmsg_put(msg, &used, SOL_SOCKET, SO_TIMESTAMPING_OLD, ts, sizeof(ts));
      } else if (mask & PL_CM_TSING_NEW) {
        long long ts[6] = {sec, nsec, 0, 0, 0, 0}; /* struct scm_timestamping64 */
        (void)pl_cmsg_put(msg, &used, SOL_SOCKET, SO_TIMESTAMPING_NEW, ts, sizeof(ts));
      }
    }
    /* in the kernel's order (ip_cmsg_recv_offset): PKTINFO, TTL, TOS */
    if ((mask & PL_CM_PKTINFO) && (m->flags & TOE_RXMETA_DST)) {
      struct in_pktinfo pi;
      memset(&pi, 0, sizeof(pi));
      pi.ipi_ifindex = (int)pl_ifindex_of(m->dst);
      pi.ipi_spec_dst.s_addr = m->dst; /* the local address a reply would come from */
      pi.ipi_addr.s_addr = m->dst;
      (void)pl_cmsg_put(msg, &used, IPPROTO_IP, IP_PKTINFO, &pi, sizeof(pi));
    }
    if ((mask & PL_CM_TTL) && (m->flags & TOE_RXMETA_TTL)) {
      int ttl = m->ttl;
      (void)pl_cmsg_put(msg, &used, IPPROTO_IP, IP_TTL, &ttl, sizeof(ttl));
    }
    if ((mask & PL_CM_TOS) && (m->flags & TOE_RXMETA_TOS)) {
      unsigned char tos = m->tos; /* one byte, as the kernel sends it */
      (void)pl_cmsg_put(msg, &used, IPPROTO_IP, IP_TOS, &tos, sizeof(tos));
    }
  }
  msg->msg_controllen = used;
}

/* ---- sendmsg's control messages ------------------------------------------------------------ */

/* The device's IPv4 address (network order), from its identity (STATS DEVICE, "addr" line); 0
 * when it cannot say. Asked again when `fresh` (the address may have moved). */
static uint32_t dev_addr(toe_dev *dev, bool fresh)
{
  static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
  static toe_dev *cached_dev;
  static uint32_t cached;
  pthread_mutex_lock(&mu);
  if (cached_dev == dev && cached && !fresh) {
    uint32_t a = cached;
    pthread_mutex_unlock(&mu);
    return a;
  }
  pthread_mutex_unlock(&mu);
  char text[2048];
  ssize_t n = toe_stats(dev, 0, TOE_STATS_DEVICE, text, sizeof(text) - 1);
  uint32_t a = 0;
  if (n > 0) {
    text[(size_t)n < sizeof(text) - 1 ? (size_t)n : sizeof(text) - 1] = 0;
    for (char *line = text; line && *line;) {
      char *nl = strchr(line, '\n');
      if (nl)
        *nl = 0;
      if (!strncmp(line, "addr ", 5)) {
        char *slash = strchr(line + 5, '/');
        if (slash)
          *slash = 0;
        struct in_addr ia;
        if (inet_pton(AF_INET, line + 5, &ia) == 1)
          a = ia.s_addr;
        break;
      }
      line = nl ? nl + 1 : NULL;
    }
  }
  pthread_mutex_lock(&mu);
  cached_dev = dev;
  cached = a;
  pthread_mutex_unlock(&mu);
  return a;
}

int pl_send_cmsg_check(struct psock *ps, const struct msghdr *msg)
{
  if (!msg->msg_control || msg->msg_controllen == 0)
    return 0;
  if (msg->msg_controllen < sizeof(struct cmsghdr))
    return -EINVAL;
  for (struct cmsghdr *c = CMSG_FIRSTHDR((struct msghdr *)msg); c;
       c = CMSG_NXTHDR((struct msghdr *)msg, c)) {
    if (c->cmsg_len < CMSG_LEN(0) ||
        c->cmsg_len > msg->msg_controllen - (size_t)((char *)c - (char *)msg->msg_control))
      return -EINVAL;
    size_t dlen = c->cmsg_len - CMSG_LEN(0);
    if (ps->type != SOCK_DGRAM)
      return -EINVAL; /* no control message means anything to the device's TCP */
    if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
      /* The source address choice (ip_cmsg_send: ipi_spec_dst is the source, ipi_ifindex the
       * interface): the device sends from its one address, out of its one port. */
      struct in_pktinfo pi;
      if (dlen < sizeof(pi))
        return -EINVAL;
      memcpy(&pi, CMSG_DATA(c), sizeof(pi));
      if (pi.ipi_spec_dst.s_addr != 0 && ps->pdev) {
        toe_dev *dev = ps->pdev->dev;
        if (pi.ipi_spec_dst.s_addr != dev_addr(dev, false) &&
            pi.ipi_spec_dst.s_addr != dev_addr(dev, true))
          return -ENETUNREACH; /* not a local address: Linux 6 refuses it so (no route) */
      }
      if (pi.ipi_ifindex != 0 && ps->pdev) {
        char name[IF_NAMESIZE];
        if (!if_indextoname((unsigned)pi.ipi_ifindex, name))
          return -ENODEV; /* no such interface, as the kernel says */
        /* another interface than the one holding the device's address: the device cannot send
         * out of it */
        uint32_t a = dev_addr(ps->pdev->dev, false);
        if (!a || (unsigned)pi.ipi_ifindex != pl_ifindex_of(a))
          return -ENETUNREACH;
      }
      continue;
    }
    if (c->cmsg_level == IPPROTO_IP && (c->cmsg_type == IP_TOS || c->cmsg_type == IP_TTL)) {
      int v = 0;
      if (dlen >= sizeof(int))
        memcpy(&v, CMSG_DATA(c), sizeof(int));
      else if (dlen >= 1)
        v = *CMSG_DATA(c);
      else
        return -EINVAL;
      if (c->cmsg_type == IP_TOS && v == 0)
        continue; /* what the device sends */
      pl_log("sendmsg: IP_%s %d asked of an offloaded socket: the device cannot set it (EINVAL)",
             c->cmsg_type == IP_TOS ? "TOS" : "TTL", v);
      return -EINVAL;
    }
    pl_log("sendmsg: control message level %d type %d on an offloaded socket: the device "
           "cannot do it (EINVAL)",
           c->cmsg_level, c->cmsg_type);
    return -EINVAL;
  }
  return 0;
}
