/*
 * preload_cmsg: ancillary data on a UDP socket (issue 13 item 4), run by test_preload_cmsg.sh
 * under libtoe-preload (the socket is carried by the device) and on the kernel (the same checks,
 * for comparison). Each check prints "ok   - ..." or "FAIL - ..."; the exit status is the number
 * of failures (capped at 100).
 *
 *   preload_cmsg serve PORT DST TOS TTL IFINDEX MODE
 *      a UDP socket bound to 0.0.0.0:PORT with IP_PKTINFO, IP_RECVTOS, IP_RECVTTL and
 *      SO_TIMESTAMPNS; prints "ready", then for three datagrams sent to DST with TOS and TTL:
 *       1. recvmsg with room for everything: the four control messages and their values
 *          (ipi_addr and ipi_spec_dst DST, ipi_ifindex IFINDEX or any > 0 when IFINDEX is 0 ...
 *          see below), the timestamp between "ready" and now; the reply goes out with sendmsg and
 *          IP_PKTINFO naming DST as its source; a source that is not local is refused
 *          (ENETUNREACH), an interface that does not exist too (ENODEV);
 *       2. recvmsg with room for one control message only: MSG_CTRUNC;
 *       3. recvmsg with a data buffer shorter than the datagram: MSG_TRUNC, and recv(MSG_TRUNC)
 *          semantics.
 *      MODE "device" or "kernel": what an option the device cannot do gives (IP_TOS 0x10,
 *      IP_MULTICAST_TTL, SO_TIMESTAMPING with transmit stamps): ENOPROTOOPT on the device, 0 on
 *      the kernel. IFINDEX -1: any index above 0 (the kernel's loopback delivery).
 *
 *   preload_cmsg send HOST PORT TOS TTL
 *      sends three datagrams with IP_TOS and IP_TTL set (64, 16 and 300 bytes) and waits for the
 *      first one's reply, which must come from HOST.
 */
#define _GNU_SOURCE

#include "check_util.h"

#include <linux/net_tstamp.h>
#include <poll.h>
#include <string.h>
#include <sys/uio.h>

static uint64_t real_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static bool wait_in(int fd, int ms)
{
  struct pollfd pf = {.fd = fd, .events = POLLIN};
  return poll(&pf, 1, ms) == 1 && (pf.revents & POLLIN);
}

struct seen {
  int n;
  bool pktinfo, tos, ttl, ts;
  struct in_pktinfo pi;
  int tosv, ttlv;
  uint64_t ts_ns;
};

static void parse(struct msghdr *m, struct seen *s)
{
  memset(s, 0, sizeof(*s));
  for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c)) {
    s->n++;
    if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO &&
        c->cmsg_len >= CMSG_LEN(sizeof(struct in_pktinfo))) {
      s->pktinfo = true;
      memcpy(&s->pi, CMSG_DATA(c), sizeof(s->pi));
    } else if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TOS &&
               c->cmsg_len >= CMSG_LEN(1)) {
      s->tos = true;
      s->tosv = *CMSG_DATA(c);
    } else if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TTL &&
               c->cmsg_len >= CMSG_LEN(sizeof(int))) {
      s->ttl = true;
      memcpy(&s->ttlv, CMSG_DATA(c), sizeof(int));
    } else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_TIMESTAMPNS &&
               c->cmsg_len >= CMSG_LEN(sizeof(struct timespec))) {
      struct timespec ts;
      memcpy(&ts, CMSG_DATA(c), sizeof(ts));
      s->ts = true;
      s->ts_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    }
  }
}

static int serve(int port, const char *dst, int tos, int ttl, int ifindex, bool device)
{
  struct sockaddr_in want = addr_of(dst, 0);
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  int one = 1;
  const int opts[][2] = {{IPPROTO_IP, IP_PKTINFO},
                         {IPPROTO_IP, IP_RECVTOS},
                         {IPPROTO_IP, IP_RECVTTL},
                         {SOL_SOCKET, SO_TIMESTAMPNS}};
  const char *names[] = {"IP_PKTINFO", "IP_RECVTOS", "IP_RECVTTL", "SO_TIMESTAMPNS"};
  for (int i = 0; i < 4; i++) {
    int rc = setsockopt(s, opts[i][0], opts[i][1], &one, sizeof(one));
    check(rc == 0, "setsockopt %s 1 (%s)", names[i], rc ? strerror(errno) : "ok");
  }
  struct sockaddr_in any = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  int rc = bind(s, (struct sockaddr *)&any, sizeof(any));
  check(rc == 0, "bind 0.0.0.0:%d (%s)", port, rc ? strerror(errno) : "ok");
  for (int i = 0; i < 4; i++) {
    int v = -1;
    socklen_t l = sizeof(v);
    rc = getsockopt(s, opts[i][0], opts[i][1], &v, &l);
    check(rc == 0 && v == 1, "getsockopt %s after bind: %d", names[i], v);
  }
  /* What the device cannot do is refused on it; the kernel does it. */
  int v = 0x10;
  rc = setsockopt(s, IPPROTO_IP, IP_TOS, &v, sizeof(v));
  check(device ? rc < 0 && errno == ENOPROTOOPT : rc == 0, "setsockopt IP_TOS 0x10: %s",
        rc ? strerror(errno) : "accepted");
  v = 0;
  rc = setsockopt(s, IPPROTO_IP, IP_TOS, &v, sizeof(v));
  check(rc == 0, "setsockopt IP_TOS 0: %s", rc ? strerror(errno) : "accepted");
  v = 5;
  rc = setsockopt(s, IPPROTO_IP, IP_MULTICAST_TTL, &v, sizeof(v));
  check(device ? rc < 0 && errno == ENOPROTOOPT : rc == 0, "setsockopt IP_MULTICAST_TTL 5: %s",
        rc ? strerror(errno) : "accepted");
  v = SOF_TIMESTAMPING_TX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE;
  rc = setsockopt(s, SOL_SOCKET, SO_TIMESTAMPING, &v, sizeof(v));
  check(device ? rc < 0 && errno == ENOPROTOOPT : rc == 0,
        "setsockopt SO_TIMESTAMPING with transmit stamps: %s", rc ? strerror(errno) : "accepted");
  if (!device) { /* back to the switches under test alone */
    v = 0;
    setsockopt(s, SOL_SOCKET, SO_TIMESTAMPING, &v, sizeof(v));
    setsockopt(s, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one));
  }

  uint64_t t_ready = real_ns();
  printf("ready\n");
  fflush(stdout);

  /* 1: everything */
  char data[512], ctl[512];
  struct sockaddr_in from;
  struct iovec iov = {data, sizeof(data)};
  struct msghdr m = {.msg_name = &from,
                     .msg_namelen = sizeof(from),
                     .msg_iov = &iov,
                     .msg_iovlen = 1,
                     .msg_control = ctl,
                     .msg_controllen = sizeof(ctl)};
  if (!wait_in(s, 10000)) {
    check(false, "a first datagram within 10 s");
    return check_exit_status();
  }
  ssize_t n = recvmsg(s, &m, 0);
  uint64_t t_after = real_ns();
  check(n == 64, "recvmsg: the first datagram, 64 bytes (%zd)", n);
  check(!(m.msg_flags & (MSG_CTRUNC | MSG_TRUNC)), "recvmsg: no truncation flags (%#x)",
        (unsigned)m.msg_flags);
  struct seen sn;
  parse(&m, &sn);
  check(sn.n == 4, "recvmsg: four control messages (%d)", sn.n);
  char a1[INET_ADDRSTRLEN], a2[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &sn.pi.ipi_addr, a1, sizeof(a1));
  inet_ntop(AF_INET, &sn.pi.ipi_spec_dst, a2, sizeof(a2));
  check(sn.pktinfo && sn.pi.ipi_addr.s_addr == want.sin_addr.s_addr &&
            sn.pi.ipi_spec_dst.s_addr == want.sin_addr.s_addr,
        "IP_PKTINFO: ipi_addr %s, ipi_spec_dst %s (want %s)", a1, a2, dst);
  check(sn.pktinfo && (ifindex < 0 ? sn.pi.ipi_ifindex > 0 : sn.pi.ipi_ifindex == ifindex),
        "IP_PKTINFO: ipi_ifindex %d (want %s%d)", sn.pi.ipi_ifindex, ifindex < 0 ? "> " : "",
        ifindex < 0 ? 0 : ifindex);
  check(sn.tos && sn.tosv == tos, "IP_TOS: %#x (want %#x)", sn.tosv, tos);
  check(sn.ttl && sn.ttlv == ttl, "IP_TTL: %d (want %d)", sn.ttlv, ttl);
  /* The device stamps in its own clock and the session converts to realtime (an error of the
   * time between two clock reads, microseconds): 10 ms of slack covers that, not a late stamp. */
  const uint64_t slack = 10000000ull;
  check(sn.ts && sn.ts_ns + slack >= t_ready && sn.ts_ns <= t_after + slack,
        "SO_TIMESTAMPNS: %.6f s after ready, %.6f s before recvmsg returned",
        ((double)sn.ts_ns - (double)t_ready) / 1e9, ((double)t_after - (double)sn.ts_ns) / 1e9);

  /* The reply from the address the query went to (what dnsmasq does). */
  char rctl[CMSG_SPACE(sizeof(struct in_pktinfo))];
  memset(rctl, 0, sizeof(rctl));
  struct iovec riov = {data, (size_t)(n > 0 ? n : 0)};
  struct msghdr r = {.msg_name = &from,
                     .msg_namelen = sizeof(from),
                     .msg_iov = &riov,
                     .msg_iovlen = 1,
                     .msg_control = rctl,
                     .msg_controllen = sizeof(rctl)};
  struct cmsghdr *c = CMSG_FIRSTHDR(&r);
  c->cmsg_level = IPPROTO_IP;
  c->cmsg_type = IP_PKTINFO;
  c->cmsg_len = CMSG_LEN(sizeof(struct in_pktinfo));
  struct in_pktinfo pi;
  memset(&pi, 0, sizeof(pi));
  pi.ipi_spec_dst = sn.pi.ipi_spec_dst;
  memcpy(CMSG_DATA(c), &pi, sizeof(pi));
  ssize_t w = sendmsg(s, &r, 0);
  check(w == n, "sendmsg with IP_PKTINFO source %s: %zd (%s)", a2, w,
        w < 0 ? strerror(errno) : "sent");
  /* A source address that is not ours: refused, as the kernel refuses it (no route). */
  pi.ipi_spec_dst.s_addr = htonl(0xc6130063); /* 198.19.0.99: no one's */
  memcpy(CMSG_DATA(c), &pi, sizeof(pi));
  w = sendmsg(s, &r, 0);
  check(w < 0 && errno == ENETUNREACH, "sendmsg with IP_PKTINFO source 198.19.0.99: %s",
        w < 0 ? strerror(errno) : "sent");
  /* An interface that does not exist. */
  pi.ipi_spec_dst.s_addr = 0;
  pi.ipi_ifindex = 9999;
  memcpy(CMSG_DATA(c), &pi, sizeof(pi));
  w = sendmsg(s, &r, 0);
  check(w < 0 && errno == ENODEV, "sendmsg with IP_PKTINFO interface 9999: %s",
        w < 0 ? strerror(errno) : "sent");

  /* 2: room for one control message only (the first, the timestamp) */
  char small[CMSG_SPACE(sizeof(struct timespec))];
  m.msg_control = small;
  m.msg_controllen = sizeof(small);
  m.msg_namelen = sizeof(from);
  if (!wait_in(s, 10000)) {
    check(false, "a second datagram within 10 s");
    return check_exit_status();
  }
  n = recvmsg(s, &m, 0);
  check(n == 16, "recvmsg: the second datagram, 16 bytes (%zd)", n);
  check((m.msg_flags & MSG_CTRUNC) != 0, "recvmsg with room for one control message: MSG_CTRUNC");
  parse(&m, &sn);
  check(sn.n == 1 && sn.ts, "recvmsg with room for one: the timestamp, and only it (%d)", sn.n);

  /* 3: a data buffer shorter than the datagram */
  m.msg_control = ctl;
  m.msg_controllen = sizeof(ctl);
  m.msg_namelen = sizeof(from);
  iov.iov_len = 100;
  if (!wait_in(s, 10000)) {
    check(false, "a third datagram within 10 s");
    return check_exit_status();
  }
  n = recvmsg(s, &m, MSG_PEEK);
  check(n == 100 && (m.msg_flags & MSG_TRUNC), "recvmsg(MSG_PEEK) into 100 bytes: %zd, MSG_TRUNC",
        n);
  m.msg_namelen = sizeof(from);
  m.msg_controllen = sizeof(ctl);
  n = recvmsg(s, &m, MSG_TRUNC);
  check(n == 300 && (m.msg_flags & MSG_TRUNC),
        "recvmsg(MSG_TRUNC) into 100 bytes: the datagram's length 300 (%zd), MSG_TRUNC", n);
  parse(&m, &sn);
  check(sn.n == 4 && sn.ttlv == ttl, "the truncated datagram has its control messages too (%d)",
        sn.n);
  close(s);
  return check_exit_status();
}

static int sender(const char *host, int port, int tos, int ttl)
{
  struct sockaddr_in to = addr_of(host, port);
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  int rc1 = setsockopt(s, IPPROTO_IP, IP_TOS, &tos, sizeof(tos));
  int rc2 = setsockopt(s, IPPROTO_IP, IP_TTL, &ttl, sizeof(ttl));
  check(s >= 0 && rc1 == 0 && rc2 == 0, "sender: IP_TOS %#x and IP_TTL %d set", tos, ttl);
  const size_t sizes[] = {64, 16, 300};
  char buf[300];
  for (int i = 0; i < 3; i++) {
    memset(buf, 'a' + i, sizeof(buf));
    ssize_t w = sendto(s, buf, sizes[i], 0, (struct sockaddr *)&to, sizeof(to));
    check(w == (ssize_t)sizes[i], "sender: datagram %d of %zu bytes sent", i + 1, sizes[i]);
    if (i == 0) {
      struct sockaddr_in from;
      socklen_t fl = sizeof(from);
      bool got = wait_in(s, 5000);
      ssize_t n = got ? recvfrom(s, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl) : -1;
      char a[INET_ADDRSTRLEN] = "";
      if (n >= 0)
        inet_ntop(AF_INET, &from.sin_addr, a, sizeof(a));
      check(n == 64 && from.sin_addr.s_addr == to.sin_addr.s_addr && from.sin_port == to.sin_port,
            "sender: the reply, 64 bytes from %s:%d (%s)", a, ntohs(from.sin_port),
            n < 0 ? "none" : "got");
    }
    usleep(100000); /* one recvmsg per datagram on the other side, in order */
  }
  close(s);
  return check_exit_status();
}

int main(int argc, char **argv)
{
  if (argc == 8 && !strcmp(argv[1], "serve"))
    return serve(atoi(argv[2]), argv[3], (int)strtol(argv[4], NULL, 0), atoi(argv[5]),
                 atoi(argv[6]), !strcmp(argv[7], "device"));
  if (argc == 6 && !strcmp(argv[1], "send"))
    return sender(argv[2], atoi(argv[3]), (int)strtol(argv[4], NULL, 0), atoi(argv[5]));
  fprintf(stderr, "usage: preload_cmsg serve PORT DST TOS TTL IFINDEX device|kernel\n"
                  "       preload_cmsg send HOST PORT TOS TTL\n");
  return 100;
}
