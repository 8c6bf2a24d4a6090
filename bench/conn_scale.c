/*
 * bench_conn_scale: the kernel-side client (and the kernel's reference echo server) of
 * bench/scale.sh, which measures how many TCP connections one toed holds and how fast it takes
 * short ones, against the kernel in the same run.
 *
 *   hold --addr A --port P --src-base S --src-count K --conns N [--inflight M] [--hold-s T]
 *        [--go-file F]
 *        opens N connections to A:P from the K source addresses S, S+1, ... (each with its own
 *        ephemeral ports, IP_BIND_ADDRESS_NO_PORT), at most M connects outstanding; once all are
 *        up, prints "established N" and the time, waits T seconds and until file F exists (the
 *        script samples the server's memory then), sends 8 bytes on every connection and reads
 *        the echo (at most M outstanding), prints how many answered, closes them all and prints
 *        the time of each phase.
 *   rate --addr A --port P --src-base S --src-count K --seconds T [--concurrency C]
 *        C connections at a time, each: connect, 16 bytes out, the echo back, close; prints the
 *        completed connections per second.
 *   echo-server --port P
 *        the kernel's reference: an epoll echo server for any number of connections.
 *
 * Output: "key value" lines. Benchmark tool, not part of the product: plain Linux sockets.
 */
#define _GNU_SOURCE

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

struct opts {
  const char *mode;
  struct in_addr addr, src_base;
  uint16_t port;
  uint32_t src_count, conns, inflight, hold_s, seconds, concurrency;
  const char *go_file;
};

static double now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *what)
{
  fprintf(stderr, "bench_conn_scale: %s: %s\n", what, strerror(errno));
  exit(1);
}

static void usage(void)
{
  fprintf(stderr, "usage: bench_conn_scale hold|rate|echo-server --addr A --port P [--src-base S "
                  "--src-count K] [--conns N] [--inflight M] [--hold-s T] [--seconds T] "
                  "[--concurrency C]\n");
  exit(2);
}

static uint32_t num(const char *s)
{
  char *end;
  unsigned long v = strtoul(s, &end, 10);
  if (!*s || *end || v > 100000000ul)
    usage();
  return (uint32_t)v;
}

static void parse(struct opts *o, int argc, char **argv)
{
  memset(o, 0, sizeof *o);
  o->src_count = 1;
  o->inflight = 2000;
  o->concurrency = 64;
  o->seconds = 10;
  if (argc < 2)
    usage();
  o->mode = argv[1];
  for (int i = 2; i + 1 < argc; i += 2) {
    const char *k = argv[i], *v = argv[i + 1];
    if (!strcmp(k, "--addr")) {
      if (inet_pton(AF_INET, v, &o->addr) != 1)
        usage();
    } else if (!strcmp(k, "--src-base")) {
      if (inet_pton(AF_INET, v, &o->src_base) != 1)
        usage();
    } else if (!strcmp(k, "--port")) {
      o->port = (uint16_t)num(v);
    } else if (!strcmp(k, "--src-count")) {
      o->src_count = num(v);
    } else if (!strcmp(k, "--conns")) {
      o->conns = num(v);
    } else if (!strcmp(k, "--inflight")) {
      o->inflight = num(v);
    } else if (!strcmp(k, "--go-file")) {
      o->go_file = v;
    } else if (!strcmp(k, "--hold-s")) {
      o->hold_s = num(v);
    } else if (!strcmp(k, "--seconds")) {
      o->seconds = num(v);
    } else if (!strcmp(k, "--concurrency")) {
      o->concurrency = num(v);
    } else {
      usage();
    }
  }
  if (!o->port || !o->src_count || !o->inflight || !o->concurrency)
    usage();
}

/* A non-blocking connect from source address number `which` (0..src_count-1); the fd or -1. */
static int start_connect(const struct opts *o, uint32_t which)
{
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  int one = 1;
  setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (o->src_base.s_addr) {
    struct sockaddr_in src = {.sin_family = AF_INET};
    src.sin_addr.s_addr = htonl(ntohl(o->src_base.s_addr) + which);
    if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0) {
      close(fd);
      return -1;
    }
  }
  struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons(o->port), .sin_addr = o->addr};
  if (connect(fd, (struct sockaddr *)&dst, sizeof dst) < 0 && errno != EINPROGRESS) {
    close(fd);
    return -1;
  }
  return fd;
}

/* ---- hold ------------------------------------------------------------------------------------ */

static int cmd_hold(const struct opts *o)
{
  int *fds = calloc(o->conns ? o->conns : 1, sizeof *fds);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (!fds || ep < 0)
    die("setup");
  struct epoll_event evs[1024];
  uint32_t next = 0, pending = 0, up = 0, failed = 0;
  double t0 = now_s();
  /* Phase 1: connect, at most `inflight` outstanding. */
  while (up + failed < o->conns) {
    while (next < o->conns && pending < o->inflight) {
      int fd = start_connect(o, next % o->src_count);
      if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE || errno == EADDRNOTAVAIL || errno == ENOBUFS) {
          fprintf(stderr, "bench_conn_scale: connection %u: %s\n", next, strerror(errno));
          failed += o->conns - next;
          next = o->conns;
          break;
        }
        failed++;
        next++;
        continue;
      }
      struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = next};
      if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
        die("epoll_ctl");
      fds[next++] = fd;
      pending++;
    }
    if (!pending)
      break;
    int n = epoll_wait(ep, evs, 1024, 30000);
    if (n == 0) {
      fprintf(stderr, "bench_conn_scale: no connect completed in 30 s (%u pending)\n", pending);
      break;
    }
    for (int i = 0; i < n; i++) {
      uint32_t k = evs[i].data.u32;
      int err = 0;
      socklen_t len = sizeof err;
      getsockopt(fds[k], SOL_SOCKET, SO_ERROR, &err, &len);
      pending--;
      if (err) {
        failed++;
        epoll_ctl(ep, EPOLL_CTL_DEL, fds[k], NULL);
        close(fds[k]);
        fds[k] = -1;
        continue;
      }
      up++;
      struct epoll_event ev = {.events = EPOLLIN, .data.u32 = k};
      epoll_ctl(ep, EPOLL_CTL_MOD, fds[k], &ev); /* for the echo phase */
    }
  }
  double t1 = now_s();
  printf("established %u\nconnect_failed %u\nconnect_seconds %.3f\nconnect_rate %.0f\n", up, failed,
         t1 - t0, up / (t1 - t0 > 0 ? t1 - t0 : 1));
  fflush(stdout);
  if (o->hold_s)
    sleep(o->hold_s);
  /* The echo phase starts when the script says so (one process at a time, like the connects). */
  while (o->go_file && access(o->go_file, F_OK) != 0)
    usleep(100000);

  /* Phase 2: every connection answers an echo (8 bytes each way). */
  static const char msg[8] = "toekit!";
  uint32_t sent_i = 0, outstanding = 0, answered = 0, wrong = 0;
  double t2 = now_s();
  for (;;) {
    while (sent_i < next && outstanding < o->inflight) {
      if (fds[sent_i] >= 0) {
        if (send(fds[sent_i], msg, sizeof msg, MSG_NOSIGNAL) == (ssize_t)sizeof msg)
          outstanding++;
        else
          wrong++;
      }
      sent_i++;
    }
    if (!outstanding)
      break;
    int n = epoll_wait(ep, evs, 1024, 30000);
    if (n == 0) {
      fprintf(stderr, "bench_conn_scale: %u echoes unanswered after 30 s\n", outstanding);
      break;
    }
    for (int i = 0; i < n; i++) {
      uint32_t k = evs[i].data.u32;
      char buf[16];
      ssize_t r = recv(fds[k], buf, sizeof buf, 0);
      if (r == (ssize_t)sizeof msg && !memcmp(buf, msg, sizeof msg))
        answered++;
      else if (r == 0 || (r < 0 && errno != EAGAIN) || r > 0)
        wrong++;
      else
        continue;
      outstanding--;
      epoll_ctl(ep, EPOLL_CTL_DEL, fds[k], NULL);
    }
  }
  double t3 = now_s();
  printf("echo_answered %u\necho_wrong %u\necho_seconds %.3f\n", answered, wrong, t3 - t2);

  /* Phase 3: close them all. */
  for (uint32_t k = 0; k < next; k++)
    if (fds[k] >= 0)
      close(fds[k]);
  printf("close_seconds %.3f\n", now_s() - t3);
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  printf("client_maxrss_kib %ld\n", ru.ru_maxrss);
  return up == o->conns && answered == up ? 0 : 1;
}

/* ---- rate ------------------------------------------------------------------------------------ */

enum { ST_CONNECTING, ST_WAITING };

static int cmd_rate(const struct opts *o)
{
  int ep = epoll_create1(EPOLL_CLOEXEC);
  uint32_t c = o->concurrency;
  int *fds = calloc(c, sizeof *fds);
  uint8_t *st = calloc(c, 1);
  if (ep < 0 || !fds || !st)
    die("setup");
  static const char msg[16] = "toekit rate ...";
  uint64_t done = 0, errors = 0, seq = 0;
  double end = now_s() + o->seconds, t0 = now_s();
  /* slot k: (re)start a connection */
  for (uint32_t k = 0; k < c; k++)
    fds[k] = -1;
  for (;;) {
    bool over = now_s() >= end;
    for (uint32_t k = 0; k < c && !over; k++) {
      if (fds[k] >= 0)
        continue;
      int fd = start_connect(o, (uint32_t)(seq++ % o->src_count));
      if (fd < 0) {
        errors++;
        continue;
      }
      fds[k] = fd;
      st[k] = ST_CONNECTING;
      struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = k};
      epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    }
    bool any = false;
    for (uint32_t k = 0; k < c; k++)
      any = any || fds[k] >= 0;
    if (over && !any)
      break;
    struct epoll_event evs[256];
    int n = epoll_wait(ep, evs, 256, 1000);
    if (n == 0 && over)
      break;
    for (int i = 0; i < n; i++) {
      uint32_t k = evs[i].data.u32;
      int fd = fds[k];
      if (st[k] == ST_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err || send(fd, msg, sizeof msg, MSG_NOSIGNAL) != (ssize_t)sizeof msg) {
          errors++;
          close(fd);
          fds[k] = -1;
          continue;
        }
        st[k] = ST_WAITING;
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = k};
        epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
        continue;
      }
      char buf[32];
      ssize_t r = recv(fd, buf, sizeof buf, 0);
      if (r < 0 && errno == EAGAIN)
        continue;
      if (r == (ssize_t)sizeof msg)
        done++;
      else
        errors++;
      close(fd);
      fds[k] = -1;
    }
  }
  double t = now_s() - t0;
  printf("conns %llu\nerrors %llu\nseconds %.3f\nconn_rate %.0f\n", (unsigned long long)done,
         (unsigned long long)errors, t, done / t);
  return 0;
}

/* ---- echo-server ----------------------------------------------------------------------------- */

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
  (void)sig;
  stop_flag = 1;
}

static int cmd_echo_server(const struct opts *o)
{
  signal(SIGTERM, on_signal);
  signal(SIGINT, on_signal);
  int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(o->port), .sin_addr = o->addr};
  if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof a) < 0 || listen(ls, 65535) < 0)
    die("listen");
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = ls};
  epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
  printf("listening on port %u\n", o->port);
  struct epoll_event evs[256];
  while (!stop_flag) {
    int n = epoll_wait(ep, evs, 256, 1000);
    for (int i = 0; i < n; i++) {
      int fd = evs[i].data.fd;
      if (fd == ls) {
        for (;;) {
          int c = accept4(ls, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (c < 0)
            break;
          setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          struct epoll_event cev = {.events = EPOLLIN, .data.fd = c};
          epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
        }
        continue;
      }
      char buf[4096];
      ssize_t r = recv(fd, buf, sizeof buf, 0);
      if (r > 0) {
        if (send(fd, buf, (size_t)r, MSG_NOSIGNAL) < 0 && errno != EAGAIN)
          close(fd);
      } else if (r == 0 || errno != EAGAIN) {
        close(fd);
      }
    }
  }
  return 0;
}

int main(int argc, char **argv)
{
  struct opts o;
  parse(&o, argc, argv);
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (!strcmp(o.mode, "hold"))
    return cmd_hold(&o);
  if (!strcmp(o.mode, "rate"))
    return cmd_rate(&o);
  if (!strcmp(o.mode, "echo-server"))
    return cmd_echo_server(&o);
  usage();
  return 2;
}
