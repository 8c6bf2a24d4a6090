/*
 * preload_check: an ordinary socket program, run under libtoe-preload by test_preload_epoll.sh
 * (docs/interception.md). It uses only the BSD socket API; the library decides what goes to the
 * device. Each check prints "ok   - ..." or "FAIL - ..."; the exit status is the number of
 * failures (capped at 100).
 *
 *   preload_check mix HOST PORT      an epoll set mixing an AF_UNIX socketpair (kernel) and
 *                                    offloaded TCP connections to an echo server: level-triggered
 *                                    AF_UNIX, EPOLLET and EPOLLONESHOT on TCP, data relayed
 *                                    between them and checked byte for byte
 *   preload_check errors HOST ECHO_PORT RST_PORT CLOSED_PORT LOCAL_PORT
 *                                    the kernel's errno behaviour: EINPROGRESS then SO_ERROR,
 *                                    ECONNREFUSED, EAGAIN, ECONNRESET, EPIPE with and without
 *                                    SIGPIPE, EADDRINUSE; names, options, TCP_INFO, dup, fcntl,
 *                                    ioctl, shutdown, UDP, FD_CLOEXEC across fork and exec
 */
#define _GNU_SOURCE

#include "check_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Reads exactly n bytes (blocking socket), or fewer at EOF/error. */
static ssize_t read_full(int fd, void *buf, size_t n)
{
  size_t k = 0;
  while (k < n) {
    ssize_t r = read(fd, (char *)buf + k, n - k);
    if (r <= 0)
      return k ? (ssize_t)k : r;
    k += (size_t)r;
  }
  return (ssize_t)k;
}

static void fill_pattern(unsigned char *b, size_t n, unsigned seed)
{
  for (size_t i = 0; i < n; i++)
    b[i] = (unsigned char)((i * 131u + seed * 7u + (i >> 9)) & 0xff);
}

/* ------------------------------------------------------------------------------------------ */
/* mix                                                                                        */

#define MIX_TOTAL (4u << 20) /* bytes relayed unix -> tcp -> echo -> tcp -> unix */

struct feeder {
  int fd;
  const unsigned char *data;
  size_t len;
};

static void *feeder_main(void *arg)
{
  struct feeder *f = arg;
  size_t k = 0;
  while (k < f->len) {
    size_t chunk = f->len - k < 3000 ? f->len - k : 3000;
    ssize_t w = write(f->fd, f->data + k, chunk);
    if (w <= 0)
      break;
    k += (size_t)w;
  }
  shutdown(f->fd, SHUT_WR);
  return NULL;
}

static int run_mix(const char *host, int port)
{
  unsigned char *data = malloc(MIX_TOTAL), *back = malloc(MIX_TOTAL);
  if (!data || !back)
    return 100;
  fill_pattern(data, MIX_TOTAL, 1);

  /* kernel side: a socketpair; the feeder thread writes into one end */
  int sv[2];
  check(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "mix: AF_UNIX socketpair");
  set_nonblock(sv[0], true);

  /* device side: a non-blocking connect */
  struct sockaddr_in a = addr_of(host, port);
  int t = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int rc = connect(t, (struct sockaddr *)&a, sizeof(a));
  check(rc < 0 && errno == EINPROGRESS, "mix: non-blocking connect gives EINPROGRESS (%s)",
        rc < 0 ? strerror(errno) : "0");
  int dom = -1;
  socklen_t dl = sizeof(dom);
  getsockopt(t, SOL_SOCKET, SO_DOMAIN, &dom, &dl);
  check(dom == AF_INET, "mix: the TCP descriptor is still an AF_INET socket to the program");

  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN, .data.u32 = 1};
  check(epoll_ctl(ep, EPOLL_CTL_ADD, sv[0], &ev) == 0, "mix: AF_UNIX end added to epoll");
  ev = (struct epoll_event){.events = EPOLLOUT | EPOLLET, .data.u32 = 2};
  check(epoll_ctl(ep, EPOLL_CTL_ADD, t, &ev) == 0, "mix: offloaded TCP socket added to epoll");

  /* wait for the connection (EPOLLOUT edge) without starting the feeder yet */
  struct epoll_event out[8];
  bool connected = false;
  uint64_t end = now_ms() + 5000;
  while (!connected && now_ms() < end) {
    int n = epoll_wait(ep, out, 8, 200);
    for (int i = 0; i < n; i++)
      if (out[i].data.u32 == 2 && (out[i].events & EPOLLOUT))
        connected = true;
  }
  int soerr = -1;
  socklen_t sl = sizeof(soerr);
  getsockopt(t, SOL_SOCKET, SO_ERROR, &soerr, &sl);
  check(connected && soerr == 0, "mix: EPOLLOUT after the handshake, SO_ERROR 0 (%d)", soerr);

  /* EPOLLET: one edge, then nothing until something changes */
  int n = epoll_wait(ep, out, 8, 200);
  check(n == 0, "mix: edge-triggered EPOLLOUT is not reported again (%d events)", n);

  ev = (struct epoll_event){.events = EPOLLIN | EPOLLOUT | EPOLLET | EPOLLRDHUP, .data.u32 = 2};
  check(epoll_ctl(ep, EPOLL_CTL_MOD, t, &ev) == 0, "mix: EPOLL_CTL_MOD to IN|OUT|ET|RDHUP");

  pthread_t th;
  struct feeder f = {.fd = sv[1], .data = data, .len = MIX_TOTAL};
  pthread_create(&th, NULL, feeder_main, &f);

  /* relay: unix -> tcp (buffered), tcp -> back[] */
  static unsigned char pend[1 << 16];
  size_t plen = 0, poff = 0, sent = 0, got = 0, extra = 0;
  bool unix_eof = false, tcp_shut = false, tcp_eof = false, rdhup = false;
  end = now_ms() + 60000;
  while (!tcp_eof && now_ms() < end) {
    n = epoll_wait(ep, out, 8, 1000);
    if (n < 0 && errno != EINTR)
      break;
    /* Level-triggered AF_UNIX: take more only while the TCP side keeps up. */
    if (!unix_eof && plen == 0) {
      ssize_t r = read(sv[0], pend, sizeof(pend));
      if (r > 0) {
        plen = (size_t)r;
        poff = 0;
      } else if (r == 0) {
        unix_eof = true;
      }
    }
    /* Edge-triggered TCP: send until EAGAIN, read until EAGAIN. */
    while (plen > poff) {
      ssize_t w = send(t, pend + poff, plen - poff, MSG_NOSIGNAL);
      if (w <= 0)
        break;
      poff += (size_t)w;
      sent += (size_t)w;
    }
    if (poff == plen)
      plen = poff = 0;
    if (unix_eof && plen == 0 && !tcp_shut) {
      shutdown(t, SHUT_WR);
      tcp_shut = true;
    }
    for (int i = 0; i < n; i++)
      if (out[i].data.u32 == 2 && (out[i].events & EPOLLRDHUP))
        rdhup = true;
    for (;;) {
      /* Never a zero-length recv once everything is back: it returns 0 at once (as the kernel
       * does), which is not the end of the stream; read into a spare byte instead, so that only
       * the server's FIN (sent after it saw ours) counts as EOF, and a byte too many shows. */
      unsigned char spare;
      size_t room = MIX_TOTAL - got;
      ssize_t r =
          room ? recv(t, back + got, room > 65536 ? 65536 : room, 0) : recv(t, &spare, 1, 0);
      if (r > 0 && room) {
        got += (size_t)r;
        continue;
      }
      if (r > 0) {
        extra += (size_t)r;
        continue;
      }
      if (r == 0)
        tcp_eof = true;
      break;
    }
  }
  pthread_join(th, NULL);
  check(sent == MIX_TOTAL, "mix: %zu bytes from the AF_UNIX socket sent on TCP", sent);
  check(got == MIX_TOTAL && extra == 0 && memcmp(back, data, MIX_TOTAL) == 0,
        "mix: %zu bytes echoed back through the device, identical (%zu too many)", got, extra);
  check(tcp_eof && tcp_shut, "mix: EOF after the echo server saw our FIN");
  if (!rdhup) {
    /* the FIN may have come with the last bytes, read before its edge was collected; it is
     * level-triggered from then on (allow the preload's pump a moment to mirror it) */
    struct pollfd pf = {.fd = t, .events = POLLRDHUP};
    int pr = poll(&pf, 1, 2000);
    rdhup = pr == 1 && (pf.revents & POLLRDHUP);
    if (!rdhup)
      printf("# poll for POLLRDHUP after EOF: %d, revents 0x%x\n", pr, (unsigned)pf.revents);
  }
  check(rdhup, "mix: EPOLLRDHUP with the peer's FIN");
  close(t);
  /* the AF_UNIX end is at EOF now, so level-triggered it would be reported on every wait */
  epoll_ctl(ep, EPOLL_CTL_DEL, sv[0], NULL);

  /* EPOLLONESHOT, and the ET "no event without new data" rule, on a second connection */
  int u = tcp_connect(host, port);
  check(u >= 0, "oneshot: blocking connect (%s)", u < 0 ? strerror(errno) : "ok");
  set_nonblock(u, true);
  ev = (struct epoll_event){.events = EPOLLIN | EPOLLONESHOT, .data.u32 = 3};
  check(epoll_ctl(ep, EPOLL_CTL_ADD, u, &ev) == 0, "oneshot: added with EPOLLIN|EPOLLONESHOT");
  send(u, "one", 3, 0);
  check(wait_tag(ep, 3, 3000, NULL) == 1, "oneshot: first event");
  send(u, "two", 3, 0);
  usleep(200000);
  check(wait_tag(ep, 3, 300, NULL) == 0, "oneshot: no event while disarmed, though more data came");
  ev = (struct epoll_event){.events = EPOLLIN | EPOLLET, .data.u32 = 3};
  epoll_ctl(ep, EPOLL_CTL_MOD, u, &ev);
  check(wait_tag(ep, 3, 2000, NULL) == 1, "oneshot: re-armed (now EPOLLET): event");
  char buf[64];
  ssize_t r = recv(u, buf, sizeof(buf), 0);
  check(r == 6 && memcmp(buf, "onetwo", 6) == 0, "oneshot: both messages echoed (%zd bytes)", r);
  r = recv(u, buf, sizeof(buf), 0);
  check(r < 0 && errno == EAGAIN, "ET: drained: recv gives EAGAIN");
  check(wait_tag(ep, 3, 300, NULL) == 0, "ET: no event after draining");
  send(u, "three", 5, 0);
  uint32_t m = 0;
  check(wait_tag(ep, 3, 2000, &m) == 1 && (m & EPOLLIN), "ET: new data, new edge");
  close(u);
  close(ep);
  close(sv[0]);
  close(sv[1]);
  free(data);
  free(back);
  return check_exit_status();
}

/* ------------------------------------------------------------------------------------------ */
/* errors                                                                                     */

static volatile sig_atomic_t sigpipes;
static void on_sigpipe(int sig)
{
  (void)sig;
  sigpipes++;
}

static int run_errors(const char *host, int echo_port, int rst_port, int closed_port,
                      int local_port)
{
  struct sockaddr_in closed = addr_of(host, closed_port);
  struct sockaddr_in echo = addr_of(host, echo_port);

  /* EINPROGRESS, then POLLOUT with POLLERR, then SO_ERROR = ECONNREFUSED */
  int s = socket(AF_INET, SOCK_STREAM, 0);
  set_nonblock(s, true);
  int rc = connect(s, (struct sockaddr *)&closed, sizeof(closed));
  check(rc < 0 && errno == EINPROGRESS, "refused: EINPROGRESS first");
  struct pollfd pf = {.fd = s, .events = POLLOUT};
  rc = poll(&pf, 1, 5000);
  check(rc == 1 && (pf.revents & POLLOUT) && (pf.revents & POLLERR),
        "refused: poll gives POLLOUT|POLLERR (revents 0x%x)", pf.revents);
  int e = -1;
  socklen_t el = sizeof(e);
  getsockopt(s, SOL_SOCKET, SO_ERROR, &e, &el);
  check(e == ECONNREFUSED, "refused: SO_ERROR is ECONNREFUSED (%s)", strerror(e));
  e = -1;
  getsockopt(s, SOL_SOCKET, SO_ERROR, &e, &el);
  check(e == 0, "refused: SO_ERROR reads 0 the second time");
  close(s);
  errno = 0;
  s = tcp_connect(host, closed_port);
  check(s < 0 && errno == ECONNREFUSED, "refused: blocking connect fails with ECONNREFUSED (%s)",
        strerror(errno));

  /* a connection: names, options, EAGAIN, FIONREAD */
  s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  check(setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == 0,
        "options: TCP_NODELAY before connect");
  check(setsockopt(s, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one)) == 0,
        "options: SO_KEEPALIVE before connect");
  rc = connect(s, (struct sockaddr *)&echo, sizeof(echo));
  check(rc == 0, "connect to the echo server (%s)", rc ? strerror(errno) : "ok");
  int v = 0;
  socklen_t vl = sizeof(v);
  getsockopt(s, IPPROTO_TCP, TCP_NODELAY, &v, &vl);
  check(v == 1, "options: TCP_NODELAY replayed on the device (%d)", v);
  v = 0;
  getsockopt(s, SOL_SOCKET, SO_KEEPALIVE, &v, &vl);
  check(v == 1, "options: SO_KEEPALIVE replayed (%d)", v);
  getsockopt(s, SOL_SOCKET, SO_TYPE, &v, &vl);
  check(v == SOCK_STREAM, "options: SO_TYPE SOCK_STREAM");
  getsockopt(s, SOL_SOCKET, SO_PROTOCOL, &v, &vl);
  check(v == IPPROTO_TCP, "options: SO_PROTOCOL IPPROTO_TCP");
  struct sockaddr_in pa, la;
  socklen_t al = sizeof(pa);
  rc = getpeername(s, (struct sockaddr *)&pa, &al);
  check(rc == 0 && pa.sin_addr.s_addr == echo.sin_addr.s_addr && pa.sin_port == echo.sin_port,
        "names: getpeername is the echo server");
  al = sizeof(la);
  rc = getsockname(s, (struct sockaddr *)&la, &al);
  char lb[32];
  inet_ntop(AF_INET, &la.sin_addr, lb, sizeof(lb));
  check(rc == 0 && la.sin_family == AF_INET && la.sin_port != 0,
        "names: getsockname %s:%u (an ephemeral port)", lb, ntohs(la.sin_port));
  struct tcp_info ti;
  socklen_t tl = sizeof(ti);
  memset(&ti, 0, sizeof(ti));
  rc = getsockopt(s, IPPROTO_TCP, TCP_INFO, &ti, &tl);
  check(rc == 0 && ti.tcpi_state == 1 /* TCP_ESTABLISHED */ && ti.tcpi_snd_mss >= 536,
        "TCP_INFO: ESTABLISHED, snd_mss %u, rtt %u us, cwnd %u", ti.tcpi_snd_mss, ti.tcpi_rtt,
        ti.tcpi_snd_cwnd);
  char buf[256];
  ssize_t r = recv(s, buf, sizeof(buf), MSG_DONTWAIT);
  check(r < 0 && errno == EAGAIN, "EAGAIN: MSG_DONTWAIT with nothing to read");
  int fl = fcntl(s, F_GETFL);
  check(!(fl & O_NONBLOCK), "fcntl: blocking by default");
  check(fcntl(s, F_SETFL, fl | O_NONBLOCK) == 0 && (fcntl(s, F_GETFL) & O_NONBLOCK),
        "fcntl: O_NONBLOCK set and read back");
  r = read(s, buf, sizeof(buf));
  check(r < 0 && errno == EAGAIN, "EAGAIN: non-blocking read with nothing to read");
  int off = 0;
  check(ioctl(s, FIONBIO, &off) == 0 && !(fcntl(s, F_GETFL) & O_NONBLOCK),
        "ioctl: FIONBIO 0 makes it blocking again");
  check((fcntl(s, F_GETFD) & FD_CLOEXEC) != 0, "fcntl: FD_CLOEXEC from SOCK_CLOEXEC");
  check(write(s, "hello", 5) == 5, "write 5 bytes");
  pf = (struct pollfd){.fd = s, .events = POLLIN};
  rc = poll(&pf, 1, 3000);
  check(rc == 1 && (pf.revents & POLLIN), "poll: POLLIN when the echo arrives");
  usleep(50000);
  int nread = -1;
  check(ioctl(s, FIONREAD, &nread) == 0 && nread == 5, "ioctl: FIONREAD says 5 (%d)", nread);
  r = recv(s, buf, 2, MSG_PEEK);
  check(r == 2 && memcmp(buf, "he", 2) == 0, "MSG_PEEK");
  r = read(s, buf, sizeof(buf));
  check(r == 5 && memcmp(buf, "hello", 5) == 0, "read: the echo");
  pf.revents = 0;
  rc = poll(&pf, 1, 0);
  check(rc == 0, "poll: not readable once read (revents 0x%x)", pf.revents);

  /* dup: two numbers for one socket */
  int d = dup(s);
  check(d >= 0 && d != s, "dup");
  check(send(d, "dup", 3, 0) == 3, "send on the duplicate");
  r = read_full(s, buf, 3);
  check(r == 3 && memcmp(buf, "dup", 3) == 0, "read its echo on the original");
  close(s);
  check(send(d, "still", 5, 0) == 5, "the duplicate still works after closing the original");
  r = read_full(d, buf, 5);
  check(r == 5, "  and receives");
  int d2 = 100;
  check(dup2(d, d2) == d2, "dup2 onto 100");
  close(d);
  struct iovec iov[3] = {{(void *)"ab", 2}, {(void *)"cde", 3}, {(void *)"f", 1}};
  check(writev(d2, iov, 3) == 6, "writev of 3 pieces");
  char x1[3], x2[3];
  struct iovec riov[2] = {{x1, 3}, {x2, 3}};
  r = 0;
  for (int i = 0; i < 50 && r < 6; i++) {
    struct msghdr mh = {.msg_iov = riov, .msg_iovlen = 2};
    ssize_t k = recvmsg(d2, &mh, MSG_WAITALL);
    if (k <= 0)
      break;
    r += k;
  }
  check(r == 6 && !memcmp(x1, "abc", 3) && !memcmp(x2, "def", 3), "recvmsg into 2 pieces");
  /* sendfile from a file to the offloaded socket */
  {
    static unsigned char fb[300000], rb[300000];
    fill_pattern(fb, sizeof(fb), 9);
    char path[] = "/tmp/preload_check.XXXXXX";
    int ff = mkstemp(path);
    unlink(path);
    ssize_t w = write(ff, fb, sizeof(fb));
    off_t o = 0;
    size_t sent = 0;
    while (w == (ssize_t)sizeof(fb) && sent < sizeof(fb)) {
      ssize_t k = sendfile(d2, ff, &o, sizeof(fb) - sent);
      if (k <= 0)
        break;
      sent += (size_t)k;
    }
    check(sent == sizeof(fb) && o == (off_t)sizeof(fb), "sendfile: %zu bytes from a file", sent);
    r = read_full(d2, rb, sizeof(rb));
    check(r == (ssize_t)sizeof(rb) && memcmp(rb, fb, sizeof(fb)) == 0,
          "sendfile: echoed back intact");
    close(ff);
  }
  /* half-close: shutdown(SHUT_WR), the echo server answers with its FIN */
  check(shutdown(d2, SHUT_WR) == 0, "shutdown(SHUT_WR)");
  pf = (struct pollfd){.fd = d2, .events = POLLIN | POLLRDHUP};
  rc = poll(&pf, 1, 3000);
  check(rc == 1 && (pf.revents & POLLRDHUP), "poll: POLLRDHUP after the peer's FIN (0x%x)",
        pf.revents);
  r = read(d2, buf, sizeof(buf));
  check(r == 0, "read: EOF (%zd)", r);
  sigpipes = 0;
  signal(SIGPIPE, on_sigpipe);
  r = send(d2, "x", 1, MSG_NOSIGNAL);
  check(r < 0 && errno == EPIPE && sigpipes == 0,
        "send after SHUT_WR: EPIPE, no SIGPIPE with MSG_NOSIGNAL");
  close(d2);

  /* ECONNRESET from a peer that resets, then EPIPE with and without SIGPIPE */
  s = tcp_connect(host, rst_port);
  check(s >= 0, "connect to the resetting server");
  send(s, "bye", 3, 0);
  r = read(s, buf, sizeof(buf));
  check(r < 0 && errno == ECONNRESET, "read: ECONNRESET after the peer's RST (%zd, %s)", r,
        r < 0 ? strerror(errno) : "");
  r = read(s, buf, sizeof(buf));
  check(r == 0, "read again: 0 (%zd)", r);
  sigpipes = 0;
  r = send(s, "x", 1, 0);
  check(r < 0 && errno == EPIPE && sigpipes == 1, "send: EPIPE and one SIGPIPE (%d)",
        (int)sigpipes);
  r = send(s, "x", 1, MSG_NOSIGNAL);
  check(r < 0 && errno == EPIPE && sigpipes == 1, "send with MSG_NOSIGNAL: EPIPE, no SIGPIPE");
  close(s);

  /* EADDRINUSE: two listeners on one port */
  struct sockaddr_in any = {.sin_family = AF_INET, .sin_port = htons((uint16_t)local_port)};
  int l1 = socket(AF_INET, SOCK_STREAM, 0), l2 = socket(AF_INET, SOCK_STREAM, 0);
  rc = bind(l1, (struct sockaddr *)&any, sizeof(any));
  if (rc == 0)
    rc = listen(l1, 8);
  check(rc == 0, "listen on port %d", local_port);
  rc = bind(l2, (struct sockaddr *)&any, sizeof(any));
  if (rc == 0)
    rc = listen(l2, 8);
  check(rc < 0 && errno == EADDRINUSE, "a second listener on the port: EADDRINUSE (%s)",
        rc < 0 ? strerror(errno) : "ok");
  v = 0;
  getsockopt(l1, SOL_SOCKET, SO_ACCEPTCONN, &v, &vl);
  check(v == 1, "SO_ACCEPTCONN on the listener");
  set_nonblock(l1, true);
  rc = accept(l1, NULL, NULL);
  check(rc < 0 && errno == EAGAIN, "accept on a non-blocking listener with nothing: EAGAIN");
  close(l2);

  /* FD_CLOEXEC across fork and exec: the close-on-exec socket is gone in the new program, the
   * other one is inherited (as a descriptor: its connection stays the parent's) */
  int c1 = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int c2 = socket(AF_INET, SOCK_STREAM, 0);
  connect(c1, (struct sockaddr *)&echo, sizeof(echo));
  connect(c2, (struct sockaddr *)&echo, sizeof(echo));
  char cmd[128];
  snprintf(cmd, sizeof(cmd), "test ! -e /proc/self/fd/%d && test -e /proc/self/fd/%d", c1, c2);
  pid_t pid = fork();
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
    _exit(127);
  }
  int st = -1;
  waitpid(pid, &st, 0);
  check(WIFEXITED(st) && WEXITSTATUS(st) == 0, "fork+exec: FD_CLOEXEC respected (%s)", cmd);
  check(send(c1, "after", 5, 0) == 5 && read_full(c1, buf, 5) == 5,
        "fork+exec: the parent's connection still works");
  /* a forked child without exec uses the inherited connection, as on the kernel (issue 13 item
   * 2: it used to give ENOTCONN), and the parent's goes on after it */
  pid = fork();
  if (pid == 0) {
    char cb[5];
    ssize_t k = send(c1, "child", 5, MSG_NOSIGNAL);
    _exit(k == 5 && read_full(c1, cb, 5) == 5 && !memcmp(cb, "child", 5) ? 0 : 1);
  }
  waitpid(pid, &st, 0);
  check(WIFEXITED(st) && WEXITSTATUS(st) == 0,
        "fork: the child sends and receives on the inherited connection");
  check(send(c1, "again", 5, 0) == 5 && read_full(c1, buf, 5) == 5 && !memcmp(buf, "again", 5),
        "fork: the parent's connection goes on after the child");
  close(c1);
  close(c2);

  /* UDP: connected, unconnected, a refused port */
  int u = socket(AF_INET, SOCK_DGRAM, 0);
  r = sendto(u, "dgram", 5, 0, (struct sockaddr *)&echo, sizeof(echo));
  check(r == 5, "udp: sendto the echo server");
  struct sockaddr_in from;
  socklen_t fl2 = sizeof(from);
  pf = (struct pollfd){.fd = u, .events = POLLIN};
  poll(&pf, 1, 3000);
  r = recvfrom(u, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&from, &fl2);
  check(r == 5 && from.sin_port == echo.sin_port && from.sin_addr.s_addr == echo.sin_addr.s_addr,
        "udp: recvfrom the echo, with the sender's address");
  struct iovec siov[2] = {{(void *)"gat", 3}, {(void *)"her", 3}};
  struct msghdr smh = {
      .msg_name = &echo, .msg_namelen = sizeof(echo), .msg_iov = siov, .msg_iovlen = 2};
  check(sendmsg(u, &smh, 0) == 6, "udp: sendmsg of 2 pieces");
  r = recv(u, buf, sizeof(buf), 0);
  check(r == 6 && memcmp(buf, "gather", 6) == 0, "udp: one datagram back");
  close(u);
  u = socket(AF_INET, SOCK_DGRAM, 0);
  connect(u, (struct sockaddr *)&closed, sizeof(closed));
  send(u, "nobody", 6, 0);
  pf = (struct pollfd){.fd = u, .events = POLLIN};
  poll(&pf, 1, 3000);
  r = recv(u, buf, sizeof(buf), MSG_DONTWAIT);
  check(r < 0 && errno == ECONNREFUSED, "udp: ECONNREFUSED after the port unreachable (%s)",
        r < 0 ? strerror(errno) : "data");
  close(u);
  return check_exit_status();
}

int main(int argc, char **argv)
{
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc == 4 && !strcmp(argv[1], "mix"))
    return run_mix(argv[2], atoi(argv[3]));
  if (argc == 7 && !strcmp(argv[1], "errors"))
    return run_errors(argv[2], atoi(argv[3]), atoi(argv[4]), atoi(argv[5]), atoi(argv[6]));
  fprintf(stderr, "usage: preload_check mix HOST PORT\n"
                  "       preload_check errors HOST ECHO_PORT RST_PORT CLOSED_PORT LOCAL_PORT\n");
  return 100;
}
