/*
 * bench_pingpong: a TCP ping-pong of small messages (64 bytes by default), for the latency
 * benchmark bench/transport_pingpong.sh. The client sends one message, waits for the whole echo,
 * and times each round trip; half the round trip is the one-way latency figure (as sockperf
 * reports it).
 *
 *   bench_pingpong --server [--addr A] --port P [--size S] [--spin-us U] [--busy-poll U]
 *       kernel echo server: accepts connections one after another and sends every S-byte
 *       message straight back. Prints "listening" when ready.
 *   bench_pingpong --kernel --addr A --port P [--count N] [--warmup W] [--size S]
 *                  [--spin-us U] [--busy-poll U]
 *       client over the kernel's sockets. Blocking recv by default; --spin-us U first polls with
 *       MSG_DONTWAIT for U microseconds (the same spin-then-sleep as libtoe), --busy-poll U sets
 *       SO_BUSY_POLL (the kernel's own busy polling; only drivers with NAPI honour it).
 *   bench_pingpong --libtoe [--ctl PATH] --addr A --port P [--count N] [--warmup W] [--size S]
 *                  [--spin-us U]
 *       client over libtoe: the connection is the device's. Waits the way an event loop over
 *       libtoe does: toe_spin() (busy-polls the completion ring for spin_us, the attach option),
 *       then poll(2) on toe_event_fd() with the device's doorbell on.
 *
 * The client prints "key value" lines: round trips, seconds, round trips/s, the half round trip
 * in microseconds (average, p50, p90, p99, p99.9, max), its own CPU time (getrusage) over the
 * timed round trips, and how its waits ended (in the spin or asleep). The warm-up round trips
 * (default 1000) are not timed. Exit status 0, 1 on an error ("error ..." line), 2 on bad usage.
 *
 * Benchmark tool, not part of the product: plain POSIX/Linux sockets and libtoe.
 */
#define _GNU_SOURCE

#include "toe/toe.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SIZE 65536u
#define MAX_COUNT 10000000u

enum mode { MODE_NONE, MODE_SERVER, MODE_KERNEL, MODE_LIBTOE };

struct opts {
  enum mode mode;
  const char *addr;
  const char *ctl;
  unsigned port;
  unsigned size;
  unsigned count;
  unsigned warmup;
  long spin_us;   /* -1: not given */
  long busy_poll; /* -1: not given */
};

/* How the client's waits for an echo ended. */
struct wait_stats {
  uint64_t spun;  /* the data came while spinning */
  uint64_t slept; /* the wait went to sleep */
};

static uint64_t now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double cpu_seconds(void)
{
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void usage(void) __attribute__((noreturn));
static void usage(void)
{
  fprintf(stderr,
          "usage: bench_pingpong --server [--addr A] --port P [--size S] [--spin-us U] "
          "[--busy-poll U]\n"
          "       bench_pingpong --kernel --addr A --port P [--count N] [--warmup W] [--size S] "
          "[--spin-us U] [--busy-poll U]\n"
          "       bench_pingpong --libtoe [--ctl PATH] --addr A --port P [--count N] "
          "[--warmup W] [--size S] [--spin-us U]\n");
  exit(2);
}

static unsigned long num_arg(const char *name, const char *v, unsigned long lo, unsigned long hi)
{
  char *end;
  errno = 0;
  unsigned long x = strtoul(v, &end, 10);
  if (errno || *end || !*v || v[0] == '-' || x < lo || x > hi) {
    fprintf(stderr, "bench_pingpong: %s %s: not a number in %lu..%lu\n", name, v, lo, hi);
    exit(2);
  }
  return x;
}

static void parse(struct opts *o, int argc, char **argv)
{
  *o = (struct opts){.mode = MODE_NONE,
                     .size = 64,
                     .count = 20000,
                     .warmup = 1000,
                     .spin_us = -1,
                     .busy_poll = -1};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--server"))
      o->mode = MODE_SERVER;
    else if (!strcmp(a, "--kernel"))
      o->mode = MODE_KERNEL;
    else if (!strcmp(a, "--libtoe"))
      o->mode = MODE_LIBTOE;
    else if (!v)
      usage();
    else {
      i++;
      if (!strcmp(a, "--addr"))
        o->addr = v;
      else if (!strcmp(a, "--ctl"))
        o->ctl = v;
      else if (!strcmp(a, "--port"))
        o->port = (unsigned)num_arg(a, v, 1, 65535);
      else if (!strcmp(a, "--size"))
        o->size = (unsigned)num_arg(a, v, 1, MAX_SIZE);
      else if (!strcmp(a, "--count"))
        o->count = (unsigned)num_arg(a, v, 1, MAX_COUNT);
      else if (!strcmp(a, "--warmup"))
        o->warmup = (unsigned)num_arg(a, v, 0, MAX_COUNT);
      else if (!strcmp(a, "--spin-us"))
        o->spin_us = (long)num_arg(a, v, 0, 1000000);
      else if (!strcmp(a, "--busy-poll"))
        o->busy_poll = (long)num_arg(a, v, 0, 1000000);
      else
        usage();
    }
  }
  if (o->mode == MODE_NONE || !o->port || (o->mode != MODE_SERVER && !o->addr))
    usage();
  if (o->mode == MODE_LIBTOE && o->busy_poll >= 0) {
    fprintf(stderr, "bench_pingpong: --busy-poll is a kernel socket option (libtoe: --spin-us)\n");
    exit(2);
  }
}

static struct sockaddr_in make_addr(const char *addr, unsigned port)
{
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  sa.sin_addr.s_addr = htonl(INADDR_ANY);
  if (addr && inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
    fprintf(stderr, "bench_pingpong: %s: not an IPv4 address\n", addr);
    exit(2);
  }
  return sa;
}

/* ---- kernel sockets ----------------------------------------------------------------------------
 */

static void kernel_sockopts(int fd, const struct opts *o)
{
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (o->busy_poll >= 0) {
    int bp = (int)o->busy_poll;
    if (setsockopt(fd, SOL_SOCKET, SO_BUSY_POLL, &bp, sizeof(bp)) < 0)
      fprintf(stderr, "bench_pingpong: SO_BUSY_POLL: %s\n", strerror(errno));
  }
}

/* Receives exactly len bytes. With spin_ns > 0, polls with MSG_DONTWAIT for that long before each
 * blocking recv. Returns 0, or -1 with errno (0 for EOF). */
static int kernel_recv_all(int fd, uint8_t *buf, size_t len, uint64_t spin_ns,
                           struct wait_stats *ws)
{
  size_t got = 0;
  bool slept = false;
  while (got < len) {
    ssize_t n;
    if (spin_ns && !slept) {
      uint64_t end = now_ns() + spin_ns;
      do
        n = recv(fd, buf + got, len - got, MSG_DONTWAIT);
      while (n < 0 && (errno == EAGAIN || errno == EINTR) && now_ns() < end);
      if (n < 0 && errno == EAGAIN) {
        slept = true;
        n = recv(fd, buf + got, len - got, 0);
      }
    } else {
      n = recv(fd, buf + got, len - got, 0);
    }
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      if (n == 0)
        errno = 0;
      return -1;
    }
    got += (size_t)n;
  }
  if (ws) {
    if (slept || !spin_ns)
      ws->slept++;
    else
      ws->spun++;
  }
  return 0;
}

static int kernel_send_all(int fd, const uint8_t *buf, size_t len)
{
  size_t put = 0;
  while (put < len) {
    ssize_t n = send(fd, buf + put, len - put, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return -1;
    put += (size_t)n;
  }
  return 0;
}

static int run_server(const struct opts *o, uint8_t *buf)
{
  struct sockaddr_in sa = make_addr(o->addr, o->port);
  int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  if (ls < 0 || setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
      bind(ls, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(ls, 16) < 0) {
    printf("error listen %s\n", strerror(errno));
    return 1;
  }
  printf("listening port %u size %u polling %s\n", o->port, o->size,
         o->spin_us > 0 ? "spin-then-block" : "blocking");
  fflush(stdout);
  uint64_t spin_ns = o->spin_us > 0 ? (uint64_t)o->spin_us * 1000u : 0;
  for (;;) {
    int c = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
    if (c < 0) {
      if (errno == EINTR || errno == ECONNABORTED)
        continue;
      printf("error accept %s\n", strerror(errno));
      return 1;
    }
    kernel_sockopts(c, o);
    uint64_t msgs = 0;
    while (kernel_recv_all(c, buf, o->size, spin_ns, NULL) == 0 &&
           kernel_send_all(c, buf, o->size) == 0)
      msgs++;
    printf("connection done messages %llu\n", (unsigned long long)msgs);
    fflush(stdout);
    close(c);
  }
}

/* ---- the timed loop, shared by both clients ------------------------------------------------- */

/* One round trip: send the message, receive the whole echo. Returns 0 or an error string. */
typedef const char *(*round_trip_fn)(void *ctx, uint8_t *msg, uint8_t *echo, size_t len,
                                     struct wait_stats *ws);

static int cmp_u64(const void *a, const void *b)
{
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted v[n], as half round trip in microseconds. */
static double half_us(const uint64_t *v, size_t n, double pct)
{
  size_t rank = (size_t)(pct / 100.0 * (double)n + 0.999999);
  if (rank < 1)
    rank = 1;
  if (rank > n)
    rank = n;
  return (double)v[rank - 1] / 2000.0;
}

static int measure(const struct opts *o, round_trip_fn rt, void *ctx, uint8_t *msg, uint8_t *echo)
{
  uint64_t *rtt = malloc(sizeof(*rtt) * o->count);
  if (!rtt) {
    printf("error out of memory\n");
    return 1;
  }
  struct wait_stats ws = {0, 0};
  for (unsigned i = 0; i < o->warmup; i++) {
    msg[0] = (uint8_t)i;
    const char *err = rt(ctx, msg, echo, o->size, &ws);
    if (err) {
      printf("error warm-up round trip %u: %s\n", i, err);
      free(rtt);
      return 1;
    }
  }
  ws = (struct wait_stats){0, 0};
  double c0 = cpu_seconds();
  uint64_t t0 = now_ns();
  for (unsigned i = 0; i < o->count; i++) {
    /* A different first byte each time, so a stale or misrouted echo is noticed. */
    msg[0] = (uint8_t)(i * 7u + 1u);
    uint64_t a = now_ns();
    const char *err = rt(ctx, msg, echo, o->size, &ws);
    uint64_t b = now_ns();
    if (err) {
      printf("error round trip %u: %s\n", i, err);
      free(rtt);
      return 1;
    }
    if (memcmp(msg, echo, o->size) != 0) {
      printf("error round trip %u: the echo differs from the message\n", i);
      free(rtt);
      return 1;
    }
    rtt[i] = b - a;
  }
  uint64_t t1 = now_ns();
  double c1 = cpu_seconds();
  double secs = (double)(t1 - t0) / 1e9;
  double sum = 0;
  for (unsigned i = 0; i < o->count; i++)
    sum += (double)rtt[i];
  qsort(rtt, o->count, sizeof(*rtt), cmp_u64);
  printf("size %u\n", o->size);
  printf("round_trips %u\n", o->count);
  printf("warmup %u\n", o->warmup);
  printf("seconds %.3f\n", secs);
  printf("round_trips_per_s %.0f\n", (double)o->count / secs);
  printf("half_rtt_avg_us %.2f\n", sum / (double)o->count / 2000.0);
  printf("half_rtt_min_us %.2f\n", (double)rtt[0] / 2000.0);
  printf("half_rtt_p50_us %.2f\n", half_us(rtt, o->count, 50));
  printf("half_rtt_p90_us %.2f\n", half_us(rtt, o->count, 90));
  printf("half_rtt_p99_us %.2f\n", half_us(rtt, o->count, 99));
  printf("half_rtt_p999_us %.2f\n", half_us(rtt, o->count, 99.9));
  printf("half_rtt_max_us %.2f\n", (double)rtt[o->count - 1] / 2000.0);
  printf("cpu_seconds %.3f\n", c1 - c0);
  printf("cpu_pct %.0f\n", 100.0 * (c1 - c0) / secs);
  printf("waits_spun %llu\n", (unsigned long long)ws.spun);
  printf("waits_slept %llu\n", (unsigned long long)ws.slept);
  free(rtt);
  return 0;
}

/* ---- kernel client -----------------------------------------------------------------------------
 */

struct kctx {
  int fd;
  uint64_t spin_ns;
};

static const char *kernel_rt(void *ctx, uint8_t *msg, uint8_t *echo, size_t len,
                             struct wait_stats *ws)
{
  struct kctx *k = ctx;
  if (kernel_send_all(k->fd, msg, len) < 0)
    return strerror(errno);
  if (kernel_recv_all(k->fd, echo, len, k->spin_ns, ws) < 0)
    return errno ? strerror(errno) : "the server closed the connection";
  return NULL;
}

static int run_kernel(const struct opts *o, uint8_t *msg, uint8_t *echo)
{
  struct sockaddr_in sa = make_addr(o->addr, o->port);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
    printf("error connect %s\n", strerror(errno));
    return 1;
  }
  kernel_sockopts(fd, o);
  printf("mode kernel\n");
  if (o->spin_us > 0)
    printf("polling spin %ld us (recv MSG_DONTWAIT), then blocking recv\n", o->spin_us);
  else
    printf("polling blocking recv\n");
  if (o->busy_poll >= 0)
    printf("so_busy_poll_us %ld\n", o->busy_poll);
  struct kctx k = {fd, o->spin_us > 0 ? (uint64_t)o->spin_us * 1000u : 0};
  int rc = measure(o, kernel_rt, &k, msg, echo);
  close(fd);
  return rc;
}

/* ---- libtoe client -----------------------------------------------------------------------------
 */

struct tctx {
  toe_dev *dev;
  int sd;
};

/* Waits until the socket is readable: toe_spin() busy-polls the device for spin_us, then poll(2)
 * sleeps on the event descriptor (the device rings its doorbell). Returns 0 or an error. */
static int toe_wait_readable(struct tctx *t, bool *slept)
{
  for (;;) {
    int r = toe_spin(t->dev, -1);
    if (r < 0)
      return r;
    if (r > 0)
      return 0;
    *slept = true;
    struct pollfd p = {.fd = toe_event_fd(t->dev), .events = POLLIN};
    if (poll(&p, 1, 1000) < 0 && errno != EINTR)
      return -errno;
    /* toe_poll resets the event descriptor and reports device loss. */
    struct toe_event ev[4];
    int n = toe_poll(t->dev, ev, 4, 0);
    if (n < 0)
      return n;
    for (int i = 0; i < n; i++) {
      if (ev[i].sd == TOE_SD_DEVICE && (ev[i].events & TOE_POLLHUP))
        return -TOE_ENETDOWN;
      if (ev[i].sd == t->sd)
        return 0;
    }
  }
}

static const char *libtoe_rt(void *ctx, uint8_t *msg, uint8_t *echo, size_t len,
                             struct wait_stats *ws)
{
  struct tctx *t = ctx;
  ssize_t s = toe_send_all(t->dev, t->sd, msg, len, 5000);
  if (s < 0)
    return toe_strerror((int)s);
  if ((size_t)s != len)
    return "send timed out";
  size_t got = 0;
  bool slept = false;
  while (got < len) {
    ssize_t n = toe_recv(t->dev, t->sd, echo + got, len - got, 0);
    if (n == -TOE_EAGAIN) {
      int rc = toe_wait_readable(t, &slept);
      if (rc < 0)
        return toe_strerror(rc);
      continue;
    }
    if (n < 0)
      return toe_strerror((int)n);
    if (n == 0)
      return "the server closed the connection";
    got += (size_t)n;
  }
  if (slept)
    ws->slept++;
  else
    ws->spun++;
  return NULL;
}

static int run_libtoe(const struct opts *o, uint8_t *msg, uint8_t *echo)
{
  struct toe_attach_opts ao;
  toe_attach_opts_init(&ao);
  if (o->spin_us >= 0)
    ao.spin_us = (uint32_t)o->spin_us;
  toe_dev *dev = NULL;
  int rc = toe_attach(o->ctl, &ao, &dev);
  if (rc < 0) {
    printf("error attach %s\n", toe_strerror(rc));
    return 1;
  }
  struct tctx t = {dev, -1};
  t.sd = toe_socket(dev, TOE_SOCK_STREAM);
  if (t.sd < 0) {
    printf("error socket %s\n", toe_strerror(t.sd));
    toe_detach(dev, 0);
    return 1;
  }
  toe_setsockopt(dev, t.sd, TOE_OPT_NODELAY, 1);
  struct sockaddr_in sa = make_addr(o->addr, o->port);
  rc = toe_connect_blocking(dev, t.sd, (struct sockaddr *)&sa, sizeof(sa), 5000);
  if (rc < 0) {
    printf("error connect %s\n", toe_strerror(rc));
    toe_detach(dev, 0);
    return 1;
  }
  toe_poll_ctl(dev, t.sd, TOE_POLLIN, NULL);
  printf("mode libtoe\n");
  printf("polling toe_spin %u us, then poll(2) on toe_event_fd\n", ao.spin_us);
  struct toe_dev_info i0, i1;
  toe_dev_info(dev, &i0);
  rc = measure(o, libtoe_rt, &t, msg, echo);
  toe_dev_info(dev, &i1);
  if (rc == 0) {
    printf("libtoe_kicks %llu\n", (unsigned long long)(i1.kicks - i0.kicks));
    printf("libtoe_sqes %llu\n", (unsigned long long)(i1.sqes - i0.sqes));
    printf("libtoe_cqes %llu\n", (unsigned long long)(i1.cqes - i0.cqes));
  }
  toe_close(dev, t.sd);
  toe_detach(dev, 1000);
  return rc;
}

int main(int argc, char **argv)
{
  struct opts o;
  parse(&o, argc, argv);
  signal(SIGPIPE, SIG_IGN);
  setvbuf(stdout, NULL, _IOLBF, 0);
  static uint8_t msg[MAX_SIZE], echo[MAX_SIZE];
  for (unsigned i = 0; i < o.size; i++)
    msg[i] = (uint8_t)(i * 31u + 7u);
  switch (o.mode) {
  case MODE_SERVER:
    return run_server(&o, echo);
  case MODE_KERNEL:
    return run_kernel(&o, msg, echo);
  case MODE_LIBTOE:
    return run_libtoe(&o, msg, echo);
  default:
    usage();
  }
}
