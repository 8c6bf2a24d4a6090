/*
 * bench_netblast: the kernel-side load generator and the kernel reference servers of the network
 * benchmarks (bench/tcp_bulk.sh, bench/udp_pps.sh). The same client measures toed and the kernel,
 * so the two figures differ only in what serves them.
 *
 *   tcp-send   --addr A --port P --seconds N   writes for N s, then shuts down writing and waits
 * for the server's FIN: the time runs until every byte was consumed by the server tcp-recv   --addr
 * A --port P --seconds N   reads for N s (e.g. from chargen), then closes tcp-server --port P
 * --mode discard|chargen   kernel reference server, one connection at a time udp-echo   --addr A
 * --port P --seconds N [--size 64] [--window W]   W = 0 floods (sends as fast as it can and counts
 * what comes back), W > 0 keeps W datagrams outstanding udp-echo-server --port P   kernel reference
 * echo server (recvmmsg/sendmmsg batches of 64)
 *
 * Clients print "key value" lines: bytes/datagrams, seconds, rates, and their own CPU time
 * (getrusage) so the scripts can put it beside the server's.
 *
 * Benchmark tool, not part of the product: plain POSIX/Linux sockets.
 */
#define _GNU_SOURCE

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

#define TCP_CHUNK (256u * 1024u)
#define UDP_BATCH 64u
#define UDP_MAX 65536u

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
  (void)sig;
  stop_flag = 1;
}

static double now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void print_rusage(void)
{
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  printf("cpu_user %.3f\n", (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6);
  printf("cpu_sys %.3f\n", (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6);
}

struct opts {
  const char *cmd;
  const char *addr;
  int port;
  double seconds;
  int size;
  int window;
  const char *mode;
};

static void usage(void)
{
  fputs("usage: bench_netblast tcp-send|tcp-recv --addr A --port P --seconds N\n"
        "       bench_netblast tcp-server --port P --mode discard|chargen [--addr A]\n"
        "       bench_netblast udp-echo --addr A --port P --seconds N [--size B] [--window W]\n"
        "       bench_netblast udp-echo-server --port P [--addr A]\n",
        stderr);
  exit(2);
}

static void parse(int argc, char **argv, struct opts *o)
{
  memset(o, 0, sizeof(*o));
  o->seconds = 5;
  o->size = 64;
  o->window = 0;
  o->mode = "discard";
  if (argc < 2)
    usage();
  o->cmd = argv[1];
  for (int i = 2; i < argc; i++) {
    const char *k = argv[i];
    if (i + 1 >= argc)
      usage();
    const char *v = argv[++i];
    if (!strcmp(k, "--addr"))
      o->addr = v;
    else if (!strcmp(k, "--port"))
      o->port = atoi(v);
    else if (!strcmp(k, "--seconds"))
      o->seconds = atof(v);
    else if (!strcmp(k, "--size"))
      o->size = atoi(v);
    else if (!strcmp(k, "--window"))
      o->window = atoi(v);
    else if (!strcmp(k, "--mode"))
      o->mode = v;
    else
      usage();
  }
  if (o->port <= 0 || o->port > 65535 || o->seconds <= 0 || o->size < 8 ||
      o->size > (int)UDP_MAX - 8 || o->window < 0)
    usage();
}

static struct sockaddr_in sockaddr_of(const char *addr, int port)
{
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  if (addr && inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
    fprintf(stderr, "bench_netblast: bad address %s\n", addr);
    exit(2);
  }
  return sa;
}

static int tcp_connect(const struct opts *o)
{
  if (!o->addr)
    usage();
  struct sockaddr_in sa = sockaddr_of(o->addr, o->port);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) {
    perror("socket");
    exit(1);
  }
  /* A bounded connect: a device without TCP must give "failed", not a hang. */
  struct timeval tv = {.tv_sec = 5};
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
    printf("error connect %s\n", strerror(errno));
    exit(1);
  }
  tv.tv_sec = 1;
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  return fd;
}

static void report_rate(const char *what, uint64_t bytes, double secs)
{
  printf("%s %llu\n", what, (unsigned long long)bytes);
  printf("seconds %.4f\n", secs);
  printf("gbps %.4f\n", secs > 0 ? (double)bytes * 8.0 / secs / 1e9 : 0.0);
}

/* Writes for o->seconds, then half-closes and waits for the server's FIN (a discard server closes
 * after EOF), so the time covers every byte up to its consumption. */
static int tcp_send(const struct opts *o)
{
  static uint8_t buf[TCP_CHUNK];
  for (size_t i = 0; i < sizeof(buf); i++)
    buf[i] = (uint8_t)(' ' + i % 95);
  int fd = tcp_connect(o);
  double t0 = now_s(), deadline = t0 + o->seconds;
  uint64_t sent = 0;
  int stalls = 0;
  while (!stop_flag) {
    ssize_t n = send(fd, buf, sizeof(buf), MSG_NOSIGNAL);
    if (n > 0) {
      sent += (uint64_t)n;
      stalls = 0;
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (++stalls >= 5) { /* 5 s without progress: the server stopped reading */
        printf("error send stalled\n");
        break;
      }
    } else {
      printf("error send %s\n", n < 0 ? strerror(errno) : "closed");
      break;
    }
    if (now_s() >= deadline)
      break;
  }
  double t_sent = now_s();
  shutdown(fd, SHUT_WR);
  /* Wait for the FIN (at most 10 s): only then has the server consumed everything. */
  uint8_t tmp[4096];
  bool fin = false;
  for (int tries = 0; tries < 10; tries++) {
    ssize_t n = recv(fd, tmp, sizeof(tmp), 0);
    if (n == 0) {
      fin = true;
      break;
    }
    if (n < 0 && errno != EAGAIN && errno != EINTR)
      break;
  }
  double t_end = now_s();
  close(fd);
  report_rate("bytes", sent, fin ? t_end - t0 : t_sent - t0);
  printf("drained_fin %d\n", fin ? 1 : 0);
  printf("drain_seconds %.4f\n", t_end - t_sent);
  print_rusage();
  return 0;
}

static int tcp_recv(const struct opts *o)
{
  static uint8_t buf[TCP_CHUNK];
  int fd = tcp_connect(o);
  double t0 = now_s(), deadline = t0 + o->seconds, t = t0;
  uint64_t got = 0;
  int stalls = 0;
  while (!stop_flag && t < deadline) {
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    t = now_s();
    if (n > 0) {
      got += (uint64_t)n;
      stalls = 0;
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (++stalls >= 5) {
        printf("error recv stalled\n");
        break;
      }
    } else {
      printf("error recv %s\n", n < 0 ? strerror(errno) : "closed by server");
      break;
    }
  }
  /* An abortive close: the server's chargen sees a reset instead of filling a dead window. */
  struct linger lg = {.l_onoff = 1, .l_linger = 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
  close(fd);
  report_rate("bytes", got, t - t0);
  print_rusage();
  return 0;
}

static int listen_on(const struct opts *o, int type)
{
  struct sockaddr_in sa = sockaddr_of(o->addr, o->port);
  int fd = socket(AF_INET, type, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
    perror("bind");
    exit(1);
  }
  if (type == SOCK_STREAM && listen(fd, 16) < 0) {
    perror("listen");
    exit(1);
  }
  return fd;
}

/* Kernel discard / chargen over TCP (RFC 863 / RFC 864), one connection at a time (the benchmark
 * opens one at a time). Chargen sends the RFC 864 pattern from a precomputed buffer. */
static int tcp_server(const struct opts *o)
{
  static uint8_t buf[TCP_CHUNK + 74 * 95];
  bool chargen = !strcmp(o->mode, "chargen");
  if (!chargen && strcmp(o->mode, "discard"))
    usage();
  /* 95 lines of 72 characters + CR LF is one full turn of the pattern: sending a window of the
   * buffer that starts at a line boundary keeps the stream continuous. */
  for (size_t line = 0, p = 0; p < sizeof(buf); line++) {
    for (size_t i = 0; i < 72 && p < sizeof(buf); i++)
      buf[p++] = (uint8_t)(' ' + (line + i) % 95);
    if (p < sizeof(buf))
      buf[p++] = '\r';
    if (p < sizeof(buf))
      buf[p++] = '\n';
  }
  int lfd = listen_on(o, SOCK_STREAM);
  printf("listening\n");
  fflush(stdout);
  while (!stop_flag) {
    int fd = accept(lfd, NULL, NULL);
    if (fd < 0) {
      if (errno == EINTR)
        continue;
      perror("accept");
      return 1;
    }
    size_t off = 0;
    while (!stop_flag) {
      ssize_t n;
      if (chargen) {
        n = send(fd, buf + off, TCP_CHUNK, MSG_NOSIGNAL);
        if (n > 0)
          off = (off + (size_t)n) % (74 * 95);
      } else {
        n = recv(fd, buf, TCP_CHUNK, 0);
      }
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        break;
    }
    close(fd);
  }
  close(lfd);
  return 0;
}

static int udp_echo_server(const struct opts *o)
{
  static uint8_t bufs[UDP_BATCH][2048];
  struct mmsghdr msgs[UDP_BATCH];
  struct iovec iov[UDP_BATCH];
  struct sockaddr_in from[UDP_BATCH];
  int fd = listen_on(o, SOCK_DGRAM);
  printf("listening\n");
  fflush(stdout);
  while (!stop_flag) {
    for (unsigned i = 0; i < UDP_BATCH; i++) {
      iov[i].iov_base = bufs[i];
      iov[i].iov_len = sizeof(bufs[i]);
      memset(&msgs[i].msg_hdr, 0, sizeof(msgs[i].msg_hdr));
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
      msgs[i].msg_hdr.msg_name = &from[i];
      msgs[i].msg_hdr.msg_namelen = sizeof(from[i]);
    }
    /* Block for the first, then take whatever else is queued. */
    int n = recvmmsg(fd, msgs, UDP_BATCH, MSG_WAITFORONE, NULL);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      perror("recvmmsg");
      return 1;
    }
    for (int i = 0; i < n; i++)
      iov[i].iov_len = msgs[i].msg_len;
    int off = 0;
    while (off < n) {
      int m = sendmmsg(fd, msgs + off, (unsigned)(n - off), 0);
      if (m <= 0)
        break;
      off += m;
    }
  }
  return 0;
}

/* UDP echo client. Each datagram carries a sequence number; only replies are counted. Flood mode
 * (window 0) sends batches as fast as the socket takes them and drains replies in between; window
 * mode keeps W outstanding and writes off the outstanding ones after 20 ms without a reply. */
static int udp_echo(const struct opts *o)
{
  static uint8_t txb[UDP_BATCH][UDP_MAX];
  static uint8_t rxb[UDP_BATCH][2048];
  if (!o->addr)
    usage();
  struct sockaddr_in sa = sockaddr_of(o->addr, o->port);
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
    perror("udp connect");
    return 1;
  }
  int rcvbuf = 4 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
  size_t size = (size_t)o->size;
  struct mmsghdr tx[UDP_BATCH], rx[UDP_BATCH];
  struct iovec txi[UDP_BATCH], rxi[UDP_BATCH];
  memset(tx, 0, sizeof(tx));
  memset(rx, 0, sizeof(rx));
  for (unsigned i = 0; i < UDP_BATCH; i++) {
    memset(txb[i], 'x', size);
    txi[i].iov_base = txb[i];
    txi[i].iov_len = size;
    tx[i].msg_hdr.msg_iov = &txi[i];
    tx[i].msg_hdr.msg_iovlen = 1;
    rxi[i].iov_base = rxb[i];
    rxi[i].iov_len = sizeof(rxb[i]);
    rx[i].msg_hdr.msg_iov = &rxi[i];
    rx[i].msg_hdr.msg_iovlen = 1;
  }
  uint64_t seq = 0, sent = 0, got = 0, bad = 0, written_off = 0, send_eagain = 0;
  double t0 = now_s(), deadline = t0 + o->seconds, t = t0, last_rx = t0;
  while (!stop_flag && t < deadline) {
    unsigned want = UDP_BATCH;
    if (o->window > 0) {
      uint64_t out = sent - got - written_off;
      if (sent < got + written_off)
        out = 0;
      want = out >= (uint64_t)o->window ? 0 : (unsigned)((uint64_t)o->window - out);
      if (want > UDP_BATCH)
        want = UDP_BATCH;
    }
    if (want) {
      for (unsigned i = 0; i < want; i++) {
        uint64_t s = seq + i;
        memcpy(txb[i], &s, sizeof(s));
      }
      int n = sendmmsg(fd, tx, want, 0);
      if (n > 0) {
        seq += (uint64_t)n;
        sent += (uint64_t)n;
      } else if (n < 0 && errno != EAGAIN && errno != ENOBUFS && errno != ECONNREFUSED) {
        perror("sendmmsg");
        break;
      } else {
        send_eagain++;
      }
    }
    if (o->window > 0) {
      struct pollfd p = {.fd = fd, .events = POLLIN};
      poll(&p, 1, 5);
    }
    for (;;) {
      int n = recvmmsg(fd, rx, UDP_BATCH, MSG_DONTWAIT, NULL);
      if (n <= 0)
        break;
      for (int i = 0; i < n; i++) {
        uint64_t s;
        memcpy(&s, rxb[i], sizeof(s));
        if (rx[i].msg_len != size || s >= seq)
          bad++;
        else
          got++;
      }
      last_rx = now_s();
    }
    t = now_s();
    if (o->window > 0 && t - last_rx > 0.02 && sent > got + written_off) {
      written_off = sent - got;
      last_rx = t;
    }
  }
  double secs = t - t0;
  /* Late replies: give them 100 ms, counted but outside the rate's time. */
  double t_end = now_s() + 0.1;
  uint64_t late = 0;
  while (now_s() < t_end) {
    int n = recvmmsg(fd, rx, UDP_BATCH, MSG_DONTWAIT, NULL);
    if (n > 0)
      late += (uint64_t)n;
    else
      usleep(1000);
  }
  printf("sent %llu\n", (unsigned long long)sent);
  printf("received %llu\n", (unsigned long long)got);
  printf("late %llu\n", (unsigned long long)late);
  printf("bad %llu\n", (unsigned long long)bad);
  printf("send_full %llu\n", (unsigned long long)send_eagain);
  printf("seconds %.4f\n", secs);
  printf("sent_pps %.0f\n", secs > 0 ? (double)sent / secs : 0.0);
  printf("pps %.0f\n", secs > 0 ? (double)got / secs : 0.0);
  printf("loss_pct %.2f\n",
         sent ? 100.0 * (double)(sent - (got + late < sent ? got + late : sent)) / (double)sent
              : 0.0);
  print_rusage();
  close(fd);
  return 0;
}

int main(int argc, char **argv)
{
  struct opts o;
  parse(argc, argv, &o);
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_signal; /* no SA_RESTART: blocking calls return EINTR and the loop ends */
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (!strcmp(o.cmd, "tcp-send"))
    return tcp_send(&o);
  if (!strcmp(o.cmd, "tcp-recv"))
    return tcp_recv(&o);
  if (!strcmp(o.cmd, "tcp-server"))
    return tcp_server(&o);
  if (!strcmp(o.cmd, "udp-echo"))
    return udp_echo(&o);
  if (!strcmp(o.cmd, "udp-echo-server"))
    return udp_echo_server(&o);
  usage();
  return 2;
}
