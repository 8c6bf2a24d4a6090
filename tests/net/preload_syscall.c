/*
 * preload_syscall: socket calls made through libc's syscall() instead of the C library's
 * functions, as libuv makes sendmmsg/recvmmsg; run under libtoe-preload by test_preload_fork.sh
 * (docs/interception.md, "Raw system calls"). Each check prints "ok   - ..." or "FAIL - ...";
 * the exit status is the number of failures (capped at 100).
 *
 *   preload_syscall HOST PORT      HOST:PORT is a TCP echo and a UDP echo (peer_servers.py)
 *
 * udp-libuv: socket() and connect() through the C library, then syscall(SYS_sendmmsg) and
 *            syscall(SYS_recvmmsg) (libuv's way): the datagrams come back;
 * udp-raw:   every call through syscall(): socket, sendto/recvfrom, connect, sendmsg/recvmsg,
 *            write/read, getsockname/getpeername, ppoll, close;
 * tcp-raw:   the same for TCP: socket, setsockopt, connect, write/read, writev/readv,
 *            sendto/recvfrom, 256 KiB both ways, poll, shutdown (EOF from the echo), close.
 *
 *   preload_syscall HOST PORT carried|refused
 *
 * bypass:    a write made with the syscall instruction itself (x86_64), which nothing can
 *            interpose: on the kernel it is carried; under the library it must not be lost
 *            silently (the socket fails with EIO).
 */
#define _GNU_SOURCE

#include "check_util.h"

#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>

/* syscall()'s result as a long, errno kept. */
#define SC(...) syscall(__VA_ARGS__)

static const char *err_of(long rc)
{
  return rc < 0 ? strerror(errno) : "ok";
}

/* Waits (raw ppoll) until fd is readable, up to ms. */
static bool raw_wait_in(int fd, int ms)
{
  struct pollfd pf = {.fd = fd, .events = POLLIN};
  struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
  long r = SC(SYS_ppoll, &pf, 1, &ts, NULL, (size_t)(_NSIG / 8));
  return r == 1 && (pf.revents & POLLIN);
}

static void udp_libuv(const char *host, int port)
{
  struct sockaddr_in peer = addr_of(host, port);
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  long rc = connect(s, (struct sockaddr *)&peer, sizeof(peer));
  check(s >= 0 && rc == 0, "udp-libuv: socket and connect through the C library (%s)", err_of(rc));
  char a[] = "first datagram", b[] = "second one";
  struct iovec iv[2] = {{a, sizeof(a)}, {b, sizeof(b)}};
  struct mmsghdr m[2];
  memset(m, 0, sizeof(m));
  m[0].msg_hdr.msg_iov = &iv[0];
  m[0].msg_hdr.msg_iovlen = 1;
  m[1].msg_hdr.msg_iov = &iv[1];
  m[1].msg_hdr.msg_iovlen = 1;
  rc = SC(SYS_sendmmsg, s, m, 2, 0);
  check(rc == 2, "udp-libuv: syscall(SYS_sendmmsg) sends 2 datagrams (%ld, %s)", rc, err_of(rc));
  char r0[64] = {0}, r1[64] = {0};
  struct iovec rv[2] = {{r0, sizeof(r0)}, {r1, sizeof(r1)}};
  struct mmsghdr rm[2];
  memset(rm, 0, sizeof(rm));
  rm[0].msg_hdr.msg_iov = &rv[0];
  rm[0].msg_hdr.msg_iovlen = 1;
  rm[1].msg_hdr.msg_iov = &rv[1];
  rm[1].msg_hdr.msg_iovlen = 1;
  int got = 0;
  for (int i = 0; i < 2 && got < 2 && raw_wait_in(s, 3000); i++) {
    rc = SC(SYS_recvmmsg, s, &rm[got], 2 - got, MSG_DONTWAIT, NULL);
    if (rc > 0)
      got += (int)rc;
  }
  check(got == 2 && rm[0].msg_len == sizeof(a) && strcmp(r0, a) == 0 &&
            rm[1].msg_len == sizeof(b) && strcmp(r1, b) == 0,
        "udp-libuv: syscall(SYS_recvmmsg) gets both echoes back (%d: \"%s\", \"%s\")", got, r0, r1);
  rc = SC(SYS_close, s);
  check(rc == 0, "udp-libuv: syscall(SYS_close) (%s)", err_of(rc));
}

static void udp_raw(const char *host, int port)
{
  struct sockaddr_in peer = addr_of(host, port);
  long s = SC(SYS_socket, AF_INET, SOCK_DGRAM, 0);
  check(s >= 0, "udp-raw: syscall(SYS_socket) (%s)", err_of(s));
  if (s < 0)
    return;
  long rc = SC(SYS_sendto, s, "to", 2, 0, &peer, sizeof(peer));
  check(rc == 2, "udp-raw: syscall(SYS_sendto) (%ld, %s)", rc, err_of(rc));
  char buf[64] = {0};
  struct sockaddr_in from;
  socklen_t fl = sizeof(from);
  rc = raw_wait_in((int)s, 3000) ? SC(SYS_recvfrom, s, buf, sizeof(buf), 0, &from, &fl) : -1;
  check(rc == 2 && memcmp(buf, "to", 2) == 0 && from.sin_addr.s_addr == peer.sin_addr.s_addr &&
            from.sin_port == peer.sin_port,
        "udp-raw: syscall(SYS_recvfrom) gets the echo from the peer (%ld)", rc);
  rc = SC(SYS_connect, s, &peer, sizeof(peer));
  check(rc == 0, "udp-raw: syscall(SYS_connect) (%s)", err_of(rc));
  struct iovec iv = {"msg", 3};
  struct msghdr mh = {.msg_iov = &iv, .msg_iovlen = 1};
  rc = SC(SYS_sendmsg, s, &mh, 0);
  check(rc == 3, "udp-raw: syscall(SYS_sendmsg) (%ld, %s)", rc, err_of(rc));
  memset(buf, 0, sizeof(buf));
  struct iovec rv = {buf, sizeof(buf)};
  struct msghdr rh = {.msg_iov = &rv, .msg_iovlen = 1};
  rc = raw_wait_in((int)s, 3000) ? SC(SYS_recvmsg, s, &rh, 0) : -1;
  check(rc == 3 && memcmp(buf, "msg", 3) == 0, "udp-raw: syscall(SYS_recvmsg) gets the echo (%ld)",
        rc);
  rc = SC(SYS_write, s, "wr", 2);
  check(rc == 2, "udp-raw: syscall(SYS_write) (%ld, %s)", rc, err_of(rc));
  memset(buf, 0, sizeof(buf));
  rc = raw_wait_in((int)s, 3000) ? SC(SYS_read, s, buf, sizeof(buf)) : -1;
  check(rc == 2 && memcmp(buf, "wr", 2) == 0, "udp-raw: syscall(SYS_read) gets the echo (%ld)", rc);
  struct sockaddr_in me, them;
  socklen_t ml = sizeof(me), tl = sizeof(them);
  long r1 = SC(SYS_getsockname, s, &me, &ml);
  long r2 = SC(SYS_getpeername, s, &them, &tl);
  check(r1 == 0 && me.sin_port != 0 && r2 == 0 && them.sin_port == peer.sin_port &&
            them.sin_addr.s_addr == peer.sin_addr.s_addr,
        "udp-raw: syscall(SYS_getsockname/SYS_getpeername) (port %u, peer port %u)",
        ntohs(me.sin_port), ntohs(them.sin_port));
  rc = SC(SYS_close, s);
  check(rc == 0, "udp-raw: syscall(SYS_close) (%s)", err_of(rc));
}

#define TCP_BULK (256u << 10)

static void tcp_raw(const char *host, int port)
{
  struct sockaddr_in peer = addr_of(host, port);
  long s = SC(SYS_socket, AF_INET, SOCK_STREAM, 0);
  check(s >= 0, "tcp-raw: syscall(SYS_socket) (%s)", err_of(s));
  if (s < 0)
    return;
  int one = 1;
  long rc = SC(SYS_setsockopt, s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  check(rc == 0, "tcp-raw: syscall(SYS_setsockopt, TCP_NODELAY) (%s)", err_of(rc));
  rc = SC(SYS_connect, s, &peer, sizeof(peer));
  check(rc == 0, "tcp-raw: syscall(SYS_connect) (%s)", err_of(rc));
  if (rc != 0) {
    SC(SYS_close, s);
    return;
  }
  int v = 0;
  socklen_t vl = sizeof(v);
  rc = SC(SYS_getsockopt, s, IPPROTO_TCP, TCP_NODELAY, &v, &vl);
  check(rc == 0 && v != 0, "tcp-raw: syscall(SYS_getsockopt, TCP_NODELAY) = %d", v);
  rc = SC(SYS_write, s, "abc", 3);
  char buf[64] = {0};
  long r = raw_wait_in((int)s, 3000) ? SC(SYS_read, s, buf, 3) : -1;
  check(rc == 3 && r == 3 && memcmp(buf, "abc", 3) == 0,
        "tcp-raw: syscall(SYS_write) then syscall(SYS_read) (%ld, %ld)", rc, r);
  struct iovec wv[2] = {{"de", 2}, {"fgh", 3}};
  rc = SC(SYS_writev, s, wv, 2);
  memset(buf, 0, sizeof(buf));
  struct iovec rv[2] = {{buf, 1}, {buf + 1, 4}};
  size_t k = 0;
  for (int i = 0; i < 5 && k < 5 && raw_wait_in((int)s, 3000); i++) {
    struct iovec part[2] = {rv[0], rv[1]};
    r = k == 0 ? SC(SYS_readv, s, part, 2) : SC(SYS_read, s, buf + k, 5 - k);
    if (r <= 0)
      break;
    k += (size_t)r;
  }
  check(rc == 5 && k == 5 && memcmp(buf, "defgh", 5) == 0,
        "tcp-raw: syscall(SYS_writev) then syscall(SYS_readv) (%ld, %zu)", rc, k);
  rc = SC(SYS_sendto, s, "ij", 2, 0, NULL, 0);
  memset(buf, 0, sizeof(buf));
  r = raw_wait_in((int)s, 3000) ? SC(SYS_recvfrom, s, buf, 2, MSG_WAITALL, NULL, NULL) : -1;
  check(rc == 2 && r == 2 && memcmp(buf, "ij", 2) == 0,
        "tcp-raw: syscall(SYS_sendto) then syscall(SYS_recvfrom) (%ld, %ld)", rc, r);
  /* Bulk: a writer thread would complicate things; the echo holds what is in flight, so send
   * and receive in turns of 16 KiB. */
  unsigned char *out = malloc(TCP_BULK), *in = malloc(TCP_BULK);
  for (size_t i = 0; i < TCP_BULK; i++)
    out[i] = (unsigned char)(i * 7u + (i >> 11));
  size_t sent = 0, recvd = 0;
  uint64_t end = now_ms() + 20000;
  while (recvd < TCP_BULK && now_ms() < end) {
    if (sent < TCP_BULK && sent - recvd < (64u << 10)) {
      size_t n = TCP_BULK - sent < 16384 ? TCP_BULK - sent : 16384;
      rc = SC(SYS_write, s, out + sent, n);
      if (rc > 0)
        sent += (size_t)rc;
      else if (errno != EINTR)
        break;
    }
    if (raw_wait_in((int)s, sent < TCP_BULK ? 0 : 3000)) {
      r = SC(SYS_read, s, in + recvd, TCP_BULK - recvd);
      if (r <= 0)
        break;
      recvd += (size_t)r;
    }
  }
  check(sent == TCP_BULK && recvd == TCP_BULK && memcmp(in, out, TCP_BULK) == 0,
        "tcp-raw: %u KiB through syscall(SYS_write/SYS_read) echoed intact (%zu sent, %zu back)",
        TCP_BULK >> 10, sent, recvd);
  free(out);
  free(in);
  rc = SC(SYS_shutdown, s, SHUT_WR);
  r = raw_wait_in((int)s, 3000) ? SC(SYS_read, s, buf, sizeof(buf)) : -1;
  check(rc == 0 && r == 0, "tcp-raw: syscall(SYS_shutdown, SHUT_WR), then EOF from the echo (%ld)",
        r);
  rc = SC(SYS_close, s);
  check(rc == 0, "tcp-raw: syscall(SYS_close) (%s)", err_of(rc));
}

/* bypass: a write that no interposition can see (the syscall instruction itself, as a static
 * binary or a Go program makes it) on a socket made through the C library. On the kernel it is
 * carried (the echo comes back); under the library it cannot be, so it must not be lost
 * silently: the socket fails with EIO soon after (and the library warns, which the script checks).
 * want: "carried" or "refused". */
#if defined(__x86_64__)
static long insn_write(int fd, const void *buf, size_t len)
{
  long ret;
  __asm__ volatile("syscall"
                   : "=a"(ret)
                   : "a"((long)SYS_write), "D"((long)fd), "S"(buf), "d"(len)
                   : "rcx", "r11", "memory");
  return ret;
}

static void bypass_one(const char *host, int port, int type, const char *want)
{
  const char *what = type == SOCK_STREAM ? "bypass-tcp" : "bypass-udp";
  int s = tcp_connect(host, port);
  if (type == SOCK_DGRAM) {
    struct sockaddr_in peer = addr_of(host, port);
    s = socket(AF_INET, SOCK_DGRAM, 0);
    if (s >= 0 && connect(s, (struct sockaddr *)&peer, sizeof(peer)) < 0) {
      close(s);
      s = -1;
    }
  }
  check(s >= 0, "%s: socket connected through the C library (%s)", what,
        s >= 0 ? "ok" : strerror(errno));
  if (s < 0)
    return;
  long w = insn_write(s, "hidden", 6);
  check(w == 6, "%s: the raw write instruction returns 6 (%ld)", what, w);
  struct pollfd pf = {.fd = s, .events = POLLIN};
  int pr = poll(&pf, 1, 3000);
  char buf[16] = {0};
  ssize_t r = pr == 1 ? recv(s, buf, sizeof(buf), MSG_DONTWAIT) : -1;
  int e = errno;
  if (strcmp(want, "carried") == 0)
    check(r == 6 && memcmp(buf, "hidden", 6) == 0, "%s: the data is carried: the echo comes back",
          what);
  else
    check(pr == 1 && r < 0 && e == EIO,
          "%s: not lost silently: the socket fails with EIO within 3 s (poll %d, revents 0x%x, "
          "recv %zd, %s)",
          what, pr, (unsigned)pf.revents, r, r < 0 ? strerror(e) : "data");
  close(s);
}
#endif

static void bypass(const char *host, int port, const char *want)
{
#if defined(__x86_64__)
  bypass_one(host, port, SOCK_DGRAM, want);
  bypass_one(host, port, SOCK_STREAM, want);
#else
  (void)host;
  (void)port;
  (void)want;
  check(true, "bypass: skipped (the raw write instruction is only written for x86_64)");
#endif
}

int main(int argc, char **argv)
{
  if (argc != 3 && !(argc == 4 && (!strcmp(argv[3], "carried") || !strcmp(argv[3], "refused")))) {
    fprintf(stderr, "usage: preload_syscall HOST PORT [carried|refused]\n");
    return 100;
  }
  signal(SIGPIPE, SIG_IGN);
  int port = atoi(argv[2]);
  if (argc == 4) {
    bypass(argv[1], port, argv[3]);
    return check_exit_status();
  }
  udp_libuv(argv[1], port);
  udp_raw(argv[1], port);
  tcp_raw(argv[1], port);
  return check_exit_status();
}
