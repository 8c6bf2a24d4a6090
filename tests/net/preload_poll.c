/*
 * preload_poll: poll, ppoll, select and pselect on offloaded sockets as the kernel answers them,
 * run under libtoe-preload by test_preload_events.sh on the device and then on the kernel
 * (docs/interception.md, "Readiness served in user space"). It uses only the BSD socket API and
 * libc. Each check prints "ok   - ..." or "FAIL - ..."; the exit status is the number of failures
 * (capped at 100).
 *
 *   preload_poll HOST ECHO_PORT RST_PORT CLOSED_PORT
 *
 * HOST runs a TCP and a UDP echo on ECHO_PORT and a TCP server that resets after the first bytes
 * on RST_PORT; nothing listens on CLOSED_PORT.
 *
 * Covered: the timeout and an arrival that ends it (another thread's too, while this one sleeps in
 * epoll_wait), POLLNVAL for a closed number and a negative one ignored, ppoll's signal mask (a
 * pending signal and one arriving while asleep: EINTR), select's timeval updated with the time
 * left, EBADF with the sets left alone, exceptional conditions, the exact revents of TCP (writable,
 * RDHUP/HUP after both directions shut, ERR/HUP/IN/OUT after a reset and after SO_ERROR, a refused
 * connect) and UDP (WRBAND).
 */
#define _GNU_SOURCE

#include "check_util.h"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/select.h>

static volatile sig_atomic_t g_sigs;

static void on_usr1(int sig)
{
  (void)sig;
  g_sigs++;
}

/* Polls fd for `events` until `want` is all there or timeout_ms passed; returns the last revents.
 */
static short poll_until(int fd, short events, short want, int timeout_ms)
{
  uint64_t end = now_ms() + (uint64_t)timeout_ms;
  struct pollfd pf = {.fd = fd, .events = events};
  do {
    pf.revents = 0;
    if (poll(&pf, 1, 100) < 0)
      return -1;
  } while ((pf.revents & want) != want && now_ms() < end);
  return pf.revents;
}

struct later {
  pthread_t target;
  int fd;
  int delay_ms;
};

/* After delay_ms: a signal to the target thread, or a byte sent on fd. */
static void *later_main(void *arg)
{
  struct later *l = arg;
  usleep((useconds_t)l->delay_ms * 1000);
  if (l->fd < 0)
    pthread_kill(l->target, SIGUSR1);
  else
    send(l->fd, "w", 1, MSG_NOSIGNAL);
  return NULL;
}

struct poller {
  int fd;
  int rc;
  short revents;
  uint64_t ms;
};

static void *poller_main(void *arg)
{
  struct poller *p = arg;
  struct pollfd pf = {.fd = p->fd, .events = POLLIN};
  uint64_t t0 = now_ms();
  p->rc = poll(&pf, 1, 5000);
  p->ms = now_ms() - t0;
  p->revents = pf.revents;
  return NULL;
}

static void run_timeouts(const char *host, int echo)
{
  char buf[16];
  int t = tcp_connect(host, echo);
  check(t >= 0 && set_nonblock(t, true) == 0, "connected to the echo server");
  /* writable, nothing to read: exactly what was asked of that */
  struct pollfd pf = {.fd = t, .events = POLLIN | POLLOUT | POLLRDNORM | POLLWRNORM | POLLRDHUP};
  int n = poll(&pf, 1, 1000);
  check(n == 1 && pf.revents == (POLLOUT | POLLWRNORM), "TCP writable: POLLOUT|POLLWRNORM (0x%x)",
        pf.revents);
  pf.events = POLLIN;
  uint64_t t0 = now_ms();
  n = poll(&pf, 1, 300);
  uint64_t ms = now_ms() - t0;
  check(n == 0 && pf.revents == 0 && ms >= 290 && ms < 2000,
        "poll: nothing to read: 0 after the timeout (%d, %llu ms)", n, (unsigned long long)ms);
  /* an arrival ends the wait */
  send(t, "ab", 2, 0);
  t0 = now_ms();
  n = poll(&pf, 1, 5000);
  ms = now_ms() - t0;
  check(n == 1 && pf.revents == POLLIN && ms < 4000, "poll: the echo ends the wait (0x%x, %llu ms)",
        pf.revents, (unsigned long long)ms);
  check(recv(t, buf, sizeof(buf), 0) == 2, "the echo read");

  /* another thread asleep in poll is woken by an arrival this thread causes */
  struct poller pt = {.fd = t};
  pthread_t th, th2;
  pthread_create(&th, NULL, poller_main, &pt);
  struct later lt = {.fd = t, .delay_ms = 200};
  pthread_create(&th2, NULL, later_main, &lt);
  pthread_join(th2, NULL);
  pthread_join(th, NULL);
  check(pt.rc == 1 && pt.revents == POLLIN && pt.ms >= 150 && pt.ms < 4000,
        "poll in another thread: woken by the echo (%d, 0x%x, %llu ms)", pt.rc, pt.revents,
        (unsigned long long)pt.ms);
  recv(t, buf, sizeof(buf), 0);

  /* No lost wake-up between a poll and an epoll wait: while this thread sleeps in epoll_wait on
   * another connection, a thread asleep in poll on t must wake for each echo, whichever of the
   * two takes the device's news. */
  int t2 = tcp_connect(host, echo);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN, .data.u32 = 1};
  check(t2 >= 0 && ep >= 0 && epoll_ctl(ep, EPOLL_CTL_ADD, t2, &ev) == 0,
        "a second connection in an epoll set");
  int woke = 0;
  for (int i = 0; i < 5; i++) {
    struct poller pw = {.fd = t};
    pthread_create(&th, NULL, poller_main, &pw);
    struct later lw = {.fd = t, .delay_ms = 100};
    pthread_create(&th2, NULL, later_main, &lw);
    struct epoll_event got;
    epoll_wait(ep, &got, 1, 400); /* (nothing comes on t2: asleep while the echo arrives) */
    pthread_join(th2, NULL);
    pthread_join(th, NULL);
    woke += pw.rc == 1 && pw.revents == POLLIN;
    recv(t, buf, sizeof(buf), 0);
  }
  check(woke == 5,
        "poll in one thread, epoll_wait in another: the poller woke every time (%d of 5)", woke);
  close(ep);
  close(t2);

  /* POLLNVAL for a closed number, a negative one ignored (its revents cleared) */
  int d = dup(t);
  close(d);
  struct pollfd three[3] = {{.fd = t, .events = POLLIN, .revents = 0x7},
                            {.fd = d, .events = POLLIN, .revents = 0x7},
                            {.fd = -1, .events = POLLIN, .revents = 0x7}};
  t0 = now_ms();
  n = poll(three, 3, 2000);
  ms = now_ms() - t0;
  check(n == 1 && three[0].revents == 0 && three[1].revents == POLLNVAL && three[2].revents == 0 &&
            ms < 1000,
        "poll: POLLNVAL for a closed number at once, a negative one ignored (%d: 0x%x 0x%x 0x%x)",
        n, three[0].revents, three[1].revents, three[2].revents);

  /* ppoll's signal mask: SIGUSR1 blocked in the thread, let through by the call's mask */
  struct sigaction sa = {.sa_handler = on_usr1};
  sigemptyset(&sa.sa_mask);
  sigaction(SIGUSR1, &sa, NULL);
  sigset_t block, none, old;
  sigemptyset(&block);
  sigaddset(&block, SIGUSR1);
  sigemptyset(&none);
  pthread_sigmask(SIG_BLOCK, &block, &old);
  raise(SIGUSR1);
  struct timespec two = {.tv_sec = 2};
  pf = (struct pollfd){.fd = t, .events = POLLIN};
  int before = g_sigs;
  struct timespec fifth = {.tv_nsec = 200000000};
  n = ppoll(&pf, 1, &fifth, &block);
  check(n == 0 && g_sigs == before, "ppoll: a pending signal the mask blocks stays pending (%d)",
        n);
  t0 = now_ms();
  n = ppoll(&pf, 1, &two, &none);
  int e = errno;
  ms = now_ms() - t0;
  check(n < 0 && e == EINTR && g_sigs == before + 1 && ms < 1000,
        "ppoll: the pending signal let through by the mask: EINTR at once (%s, %llu ms)",
        n < 0 ? strerror(e) : "no error", (unsigned long long)ms);
  struct later ls = {.target = pthread_self(), .fd = -1, .delay_ms = 200};
  pthread_create(&th2, NULL, later_main, &ls);
  t0 = now_ms();
  n = ppoll(&pf, 1, &two, &none);
  e = errno;
  ms = now_ms() - t0;
  pthread_join(th2, NULL);
  check(n < 0 && e == EINTR && g_sigs == before + 2 && ms >= 150 && ms < 1900,
        "ppoll: a signal arriving while asleep: EINTR (%s, %llu ms)", n < 0 ? strerror(e) : "none",
        (unsigned long long)ms);
  pthread_sigmask(SIG_SETMASK, &old, NULL);

  /* select: the timeval says the time left (Linux) */
  fd_set r, w, x;
  FD_ZERO(&r);
  FD_SET(t, &r);
  struct timeval tv = {.tv_sec = 0, .tv_usec = 300000};
  n = select(t + 1, &r, NULL, NULL, &tv);
  check(n == 0 && !FD_ISSET(t, &r) && tv.tv_sec == 0 && tv.tv_usec == 0,
        "select: nothing: 0, the set cleared, no time left (%d, %ld.%06ld)", n, (long)tv.tv_sec,
        (long)tv.tv_usec);
  send(t, "cd", 2, 0);
  FD_SET(t, &r);
  tv = (struct timeval){.tv_sec = 5};
  n = select(t + 1, &r, NULL, NULL, &tv);
  check(n == 1 && FD_ISSET(t, &r) && tv.tv_sec >= 1 && tv.tv_sec <= 4,
        "select: the echo: 1, with the time left in the timeval (%d, %ld.%06ld)", n,
        (long)tv.tv_sec, (long)tv.tv_usec);
  recv(t, buf, sizeof(buf), 0);
  /* readable, writable and exceptional at once: the count is of bits */
  send(t, "ef", 2, 0);
  poll_until(t, POLLIN, POLLIN, 3000);
  FD_ZERO(&r);
  FD_ZERO(&w);
  FD_ZERO(&x);
  FD_SET(t, &r);
  FD_SET(t, &w);
  FD_SET(t, &x);
  tv = (struct timeval){.tv_sec = 1};
  n = select(t + 1, &r, &w, &x, &tv);
  check(n == 2 && FD_ISSET(t, &r) && FD_ISSET(t, &w) && !FD_ISSET(t, &x),
        "select: readable and writable, not exceptional: 2 (%d)", n);
  recv(t, buf, sizeof(buf), 0);
  /* EBADF for a closed number in a set, the sets left as they were */
  FD_ZERO(&r);
  FD_SET(t, &r);
  FD_SET(d, &r);
  tv = (struct timeval){.tv_sec = 1};
  n = select((t > d ? t : d) + 1, &r, NULL, NULL, &tv);
  e = errno;
  check(n < 0 && e == EBADF && FD_ISSET(t, &r) && FD_ISSET(d, &r),
        "select: a closed number: EBADF, the set untouched (%s)", n < 0 ? strerror(e) : "no error");
  /* pselect with a mask, the time left not written back (glibc's pselect keeps it) */
  FD_ZERO(&r);
  FD_SET(t, &r);
  struct timespec ts = {.tv_nsec = 200000000};
  n = pselect(t + 1, &r, NULL, NULL, &ts, &none);
  check(n == 0 && ts.tv_sec == 0 && ts.tv_nsec == 200000000,
        "pselect: nothing: 0, the timespec unchanged (%d)", n);

  /* Both directions shut: RDHUP and HUP (tcp_poll), and POLLHUP whatever was asked. */
  shutdown(t, SHUT_WR);
  short re = poll_until(t, POLLIN | POLLRDHUP, POLLHUP, 3000);
  check(re == (POLLIN | POLLRDHUP | POLLHUP), "TCP both ways shut: POLLIN|POLLRDHUP|POLLHUP (0x%x)",
        re);
  pf = (struct pollfd){.fd = t, .events = POLLOUT};
  n = poll(&pf, 1, 0);
  check(n == 1 && pf.revents == (POLLOUT | POLLHUP), "TCP both ways shut, POLLOUT asked: 0x%x",
        pf.revents);
  pf = (struct pollfd){.fd = t, .events = 0};
  n = poll(&pf, 1, 0);
  check(n == 1 && pf.revents == POLLHUP, "TCP both ways shut, nothing asked: POLLHUP (0x%x)",
        pf.revents);
  close(t);
}

static void run_errors(const char *host, int echo, int rst, int closed)
{
  char buf[16];
  /* a reset: error, hang-up, readable, writable; then SO_ERROR takes the error away */
  int s = tcp_connect(host, rst);
  check(s >= 0 && set_nonblock(s, true) == 0, "connected to the reset server");
  send(s, "hello", 5, MSG_NOSIGNAL);
  /* Waited for until the whole set is there (or 3 s): the kernel's reset is not atomic to a poll
   * on another CPU. tcp_done_with_error stores the error, then tcp_done sets TCP_CLOSE, then shuts
   * both directions, so a poll in between sees POLLOUT|POLLERR (0xc) or POLLOUT|POLLERR|POLLHUP
   * without POLLIN|POLLRDHUP (0x1c); both were seen under ASan. A device that never reports one
   * of these flags still fails here, after the 3 s. */
  const short all = POLLIN | POLLOUT | POLLRDHUP | POLLERR | POLLHUP;
  short re = poll_until(s, POLLIN | POLLOUT | POLLRDHUP, all, 3000);
  check(re == (POLLIN | POLLOUT | POLLRDHUP | POLLERR | POLLHUP),
        "TCP reset: POLLIN|POLLOUT|POLLRDHUP|POLLERR|POLLHUP (0x%x)", re);
  int e = 0;
  socklen_t el = sizeof(e);
  getsockopt(s, SOL_SOCKET, SO_ERROR, &e, &el);
  check(e == ECONNRESET, "TCP reset: SO_ERROR ECONNRESET (%s)", strerror(e));
  struct pollfd pf = {.fd = s, .events = POLLIN | POLLOUT};
  int n = poll(&pf, 1, 0);
  check(n == 1 && pf.revents == (POLLIN | POLLOUT | POLLHUP),
        "TCP reset, error read: POLLIN|POLLOUT|POLLHUP (0x%x)", pf.revents);
  close(s);

  /* a refused connect */
  struct sockaddr_in a = addr_of(host, closed);
  s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int rc = connect(s, (struct sockaddr *)&a, sizeof(a));
  check(rc < 0 && errno == EINPROGRESS, "refused: connect EINPROGRESS");
  /* The whole set, for the reason given at the reset above (the same tcp_done_with_error). */
  re = poll_until(s, POLLIN | POLLOUT, POLLIN | POLLOUT | POLLERR | POLLHUP, 3000);
  check(re == (POLLIN | POLLOUT | POLLERR | POLLHUP),
        "refused connect: POLLIN|POLLOUT|POLLERR|POLLHUP (0x%x)", re);
  close(s);

  /* UDP: writable with WRBAND (sock_writeable), then the echo */
  int u = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  a = addr_of(host, echo);
  check(u >= 0 && connect(u, (struct sockaddr *)&a, sizeof(a)) == 0, "UDP: connected to the echo");
  pf = (struct pollfd){.fd = u, .events = POLLIN | POLLOUT | POLLWRNORM | POLLWRBAND | POLLRDNORM};
  n = poll(&pf, 1, 1000);
  check(n == 1 && pf.revents == (POLLOUT | POLLWRNORM | POLLWRBAND),
        "UDP writable: POLLOUT|POLLWRNORM|POLLWRBAND (0x%x)", pf.revents);
  send(u, "udp", 3, 0);
  re = poll_until(u, POLLIN | POLLRDNORM, POLLIN, 3000);
  check(re == (POLLIN | POLLRDNORM), "UDP: the echo: POLLIN|POLLRDNORM (0x%x)", re);
  check(recv(u, buf, sizeof(buf), 0) == 3, "UDP: the echo read");
  fd_set r;
  FD_ZERO(&r);
  FD_SET(u, &r);
  struct timeval tv = {0, 0};
  n = select(u + 1, &r, NULL, NULL, &tv);
  check(n == 0, "UDP: select with a zero timeout: nothing left (%d)", n);
  close(u);
}

int main(int argc, char **argv)
{
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc != 5) {
    fprintf(stderr, "usage: preload_poll HOST ECHO_PORT RST_PORT CLOSED_PORT\n");
    return 100;
  }
  signal(SIGPIPE, SIG_IGN);
  run_timeouts(argv[1], atoi(argv[2]));
  run_errors(argv[1], atoi(argv[2]), atoi(argv[3]), atoi(argv[4]));
  return check_exit_status();
}
