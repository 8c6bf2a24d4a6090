/*
 * toe-nc: netcat over libtoe, in the manner of OpenBSD nc. The connection is carried by the
 * device (toed or the real offload device); the host's own TCP/IP stack never sees it.
 *
 *   toe-nc [--ctl PATH] [-4|-6] [-u] [-l] [-N] [-w SECS] HOST PORT
 *   toe-nc [--ctl PATH] [-4|-6] [-u] -l [-N] [-w SECS] [HOST] PORT
 *
 *   -4 / -6   IPv4 / IPv6 only (default: the family of HOST; listening without HOST: IPv4, or
 *             with -6 a dual-stack [::] socket)
 *   -l        listen for one connection (TCP) or the first datagram (UDP) on [HOST:]PORT
 *   -u        UDP instead of TCP
 *   -N        after EOF on stdin, shut the connection down for writing (TCP: send FIN)
 *   -w SECS   give up after SECS without traffic either way (and on a connect taking longer)
 *   -v        say on stderr when listening, connected, or a connection was received (as nc -v)
 *   --ctl P   the device's control socket (default: $TOE_CTL, else the one in /run/toekit/)
 *
 * stdin goes to the socket, the socket to stdout. One epoll loop waits on stdin and on libtoe's
 * event descriptor, after spinning on the device for a moment (toe_spin: adaptive polling). Data is
 * copied once each way: read(2) from stdin straight into send buffers of the shared region
 * (toe_send_buf_get/commit), and write(2) to stdout straight from the received buffers
 * (toe_recv_zc).
 *
 * Like OpenBSD nc, it ends when both inputs are gone (stdin EOF and the peer's FIN), when in
 * listen mode the peer's FIN arrived, when stdout is gone, or after the -w idle time. UDP has no
 * end of stream: use -w. Exit status 0 on success, 1 on an error (one line on stderr), 2 on bad
 * usage.
 */
#include "toe/toe.h"
#include "tools/common/toe_cli.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#define EXIT_FAIL 1
#define EXIT_USAGE 2
#define TCP_CHUNK 65536u /* bytes read from stdin at once (one SEND) */
#define UDP_CHUNK 8192u  /* one datagram per read, like nc (which reads up to 16 KiB) */
#define PIECES_PER_ROUND 64
#define DETACH_LINGER_MS 10000

struct nc {
  const char *ctl;
  bool udp, listen, shut_on_eof, verbose;
  int idle_ms; /* -1: none */
  const char *host, *port;
  int af; /* AF_INET or AF_INET6 (-4/-6, or HOST's family) */
  struct sockaddr_storage addr;
  socklen_t addrlen;

  toe_dev *dev;
  int sd;
  int ep;
  bool stdin_open, stdin_ready, stdin_in_ep, stdin_pollable;
  bool net_in_open;
  bool blocked_on_space;
  bool udp_peer_known;
  bool have_piece;
  struct toe_zc piece;
  size_t piece_off;
  int status;
};

static void die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
static void die(int code, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  fputs("toe-nc: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(code);
}

static void help(void)
{
  printf("usage: toe-nc [--ctl PATH] [-4|-6] [-u] [-N] [-v] [-w SECS] HOST PORT\n"
         "       toe-nc [--ctl PATH] [-4|-6] [-u] -l [-N] [-v] [-w SECS] [HOST] PORT\n"
         "\n"
         "netcat over a toekit device: stdin goes to the connection, what arrives goes to\n"
         "stdout. The connection is the device's (libtoe), not the kernel's.\n"
         "\n"
         "  HOST            an IPv4 or IPv6 address or a name (resolved once)\n"
         "  -4, -6          IPv4 or IPv6 only (listening with -6 and no HOST: [::],\n"
         "                  which also takes IPv4 peers)\n"
         "  PORT            a number (1..65535) or a service name from /etc/services (http)\n"
         "  -l, --listen    listen on PORT (HOST: the local address; default any) and serve\n"
         "                  one connection (TCP) or the first sender (UDP)\n"
         "  -u, --udp       UDP instead of TCP\n"
         "  -N, --shutdown  send FIN when stdin ends (TCP)\n"
         "  -v, --verbose   say on stderr what happens (connected, accepted, closed)\n"
         "  -w, --wait SECS end after SECS seconds without traffic (UDP has no end: use it)\n"
         "  --ctl PATH      the device's control socket (default: $TOE_CTL, else the only\n"
         "                  socket in /run/toekit/)\n"
         "  -h, --help      show this text\n"
         "  -V, --version   show the versions (toekit, transport ABI, libtoe)\n"
         "\n"
         "exit status: 0 done, 1 an error (one line on stderr), 2 bad usage\n");
}

static const char *err_str(int rc)
{
  return strerror(rc < 0 ? -rc : rc);
}

static uint64_t now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* HOST (or the wildcard) and PORT -> nc->addr, of the family -4/-6 ask for or else HOST's. */
static void resolve(struct nc *nc, uint16_t port)
{
  memset(&nc->addr, 0, sizeof(nc->addr));
  if (!nc->host) {
    if (!nc->af)
      nc->af = AF_INET;
  } else {
    struct addrinfo hints = {.ai_family = nc->af ? nc->af : AF_UNSPEC}, *res = NULL;
    int rc = getaddrinfo(nc->host, NULL, &hints, &res);
    if (rc != 0 || !res) {
      fprintf(stderr, "toe-nc: %s: %s (give an %s address or a name that resolves)\n", nc->host,
              gai_strerror(rc),
              nc->af == AF_INET    ? "IPv4"
              : nc->af == AF_INET6 ? "IPv6"
                                   : "IP");
      exit(EXIT_USAGE);
    }
    struct addrinfo *r = res; /* the resolver's order (RFC 6724), as nc takes the first */
    while (r && r->ai_family != AF_INET && r->ai_family != AF_INET6)
      r = r->ai_next;
    if (!r) {
      freeaddrinfo(res);
      fprintf(stderr, "toe-nc: %s: no IPv4 or IPv6 address\n", nc->host);
      exit(EXIT_USAGE);
    }
    nc->af = r->ai_family;
    memcpy(&nc->addr, r->ai_addr, r->ai_addrlen);
    freeaddrinfo(res);
  }
  if (nc->af == AF_INET6) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&nc->addr;
    a->sin6_family = AF_INET6; /* no host: :: (in6addr_any, all zero) */
    a->sin6_port = htons(port);
    nc->addrlen = sizeof(*a);
  } else {
    struct sockaddr_in *a = (struct sockaddr_in *)&nc->addr;
    a->sin_family = AF_INET; /* no host: INADDR_ANY (zero) */
    a->sin_port = htons(port);
    nc->addrlen = sizeof(*a);
  }
}

/* An address as text for -v, without its port. */
static void addr_text(const struct sockaddr_storage *sa, char *out, size_t len)
{
  const void *a = sa->ss_family == AF_INET6
                      ? (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr
                      : (const void *)&((const struct sockaddr_in *)sa)->sin_addr;
  if (!inet_ntop(sa->ss_family == AF_INET6 ? AF_INET6 : AF_INET, a, out, (socklen_t)len))
    snprintf(out, len, "?");
}

static unsigned addr_port(const struct sockaddr_storage *sa)
{
  return ntohs(sa->ss_family == AF_INET6 ? ((const struct sockaddr_in6 *)sa)->sin6_port
                                         : ((const struct sockaddr_in *)sa)->sin_port);
}

static void parse_args(struct nc *nc, int argc, char **argv)
{
  static const struct option longs[] = {{"ctl", required_argument, NULL, 'c'},
                                        {"help", no_argument, NULL, 'h'},
                                        {"version", no_argument, NULL, 'V'},
                                        {"listen", no_argument, NULL, 'l'},
                                        {"udp", no_argument, NULL, 'u'},
                                        {"shutdown", no_argument, NULL, 'N'},
                                        {"verbose", no_argument, NULL, 'v'},
                                        {"wait", required_argument, NULL, 'w'},
                                        {NULL, 0, NULL, 0}};
  nc->idle_ms = -1;
  int c;
  opterr = 0; /* our own one-line messages */
  while ((c = getopt_long(argc, argv, "+46ulNvw:hV", longs, NULL)) != -1) {
    switch (c) {
    case 'c':
      nc->ctl = optarg;
      break;
    case 'u':
      nc->udp = true;
      break;
    case '4':
    case '6':
      nc->af = c == '4' ? AF_INET : AF_INET6;
      break;
    case 'l':
      nc->listen = true;
      break;
    case 'N':
      nc->shut_on_eof = true;
      break;
    case 'v':
      nc->verbose = true;
      break;
    case 'w': {
      char *end;
      errno = 0;
      long v = strtol(optarg, &end, 10);
      if (errno || *end || v < 1 || v > INT_MAX / 1000)
        exit(toe_cli_usage_error("toe-nc", "-w: not a number of seconds (1..%d): %s",
                                 INT_MAX / 1000, optarg));
      nc->idle_ms = (int)v * 1000;
      break;
    }
    case 'h':
      help();
      exit(fflush(stdout) == 0 ? 0 : EXIT_FAIL);
    case 'V':
      exit(toe_cli_version("toe-nc", toe_version()));
    case ':':
    case '?':
    default:
      if (optopt == 'w' || optopt == 'c')
        exit(toe_cli_usage_error("toe-nc", "%s needs a value", argv[optind - 1]));
      if (optopt)
        exit(toe_cli_usage_error("toe-nc", "unknown option -%c", optopt));
      exit(toe_cli_usage_error("toe-nc", "unknown option %s", argv[optind - 1]));
    }
  }
  int n = argc - optind;
  if (nc->listen && n == 1) {
    nc->host = NULL;
    nc->port = argv[optind];
  } else if (n == 2) {
    nc->host = argv[optind];
    nc->port = argv[optind + 1];
  } else if (n < (nc->listen ? 1 : 2)) {
    exit(toe_cli_usage_error("toe-nc", nc->listen ? "no PORT to listen on" : "need HOST and PORT"));
  } else {
    exit(toe_cli_usage_error("toe-nc", "unexpected argument '%s'", argv[optind + 2]));
  }
  char *end;
  errno = 0;
  long p = strtol(nc->port, &end, 10);
  if (*nc->port && *end) { /* a service name: /etc/services, for the protocol in use */
    struct servent *se = getservbyname(nc->port, nc->udp ? "udp" : "tcp");
    if (!se)
      exit(toe_cli_usage_error("toe-nc", "unknown %s service name '%s' (see /etc/services)",
                               nc->udp ? "udp" : "tcp", nc->port));
    p = ntohs((uint16_t)se->s_port);
  } else if (errno || *end || p < 1 || p > 65535) {
    exit(toe_cli_usage_error("toe-nc", "port out of range (1..65535): %s", nc->port));
  }
  resolve(nc, (uint16_t)p);
}

static void attach(struct nc *nc)
{
  char path[128];
  const char *ctl = nc->ctl;
  if (!ctl) {
    int rc = toe_ctl_default(path, sizeof(path));
    if (rc == -TOE_EEXIST)
      die(EXIT_FAIL, "several devices in /run/toekit: choose one with --ctl or TOE_CTL");
    if (rc < 0)
      die(EXIT_FAIL, "no device: no socket in /run/toekit (use --ctl PATH or TOE_CTL)");
    ctl = path;
  }
  int rc = toe_attach(ctl, NULL, &nc->dev);
  if (rc < 0)
    die(EXIT_FAIL, "attach %s: %s", ctl, err_str(rc));
}

static void open_socket(struct nc *nc)
{
  const char *what = nc->udp ? "UDP" : "TCP";
  int sd = toe_socket_af(nc->dev, nc->af, nc->udp ? TOE_SOCK_DGRAM : TOE_SOCK_STREAM);
  if (sd < 0)
    die(EXIT_FAIL, "%s socket: %s", what, err_str(sd));
  int rc;
  if (nc->listen) {
    if (!nc->udp)
      toe_setsockopt(nc->dev, sd, TOE_OPT_REUSEADDR, 1);
    rc = toe_bind(nc->dev, sd, (struct sockaddr *)&nc->addr, nc->addrlen);
    if (rc < 0)
      die(EXIT_FAIL, "bind %s port %s: %s",
          nc->host             ? nc->host
          : nc->af == AF_INET6 ? "::"
                               : "0.0.0.0",
          nc->port, err_str(rc));
    if (!nc->udp) {
      rc = toe_listen(nc->dev, sd, 1);
      if (rc < 0)
        die(EXIT_FAIL, "listen: %s", err_str(rc));
    }
    if (nc->verbose) {
      struct sockaddr_storage la;
      socklen_t ll = sizeof(la);
      char a[INET6_ADDRSTRLEN] = "?";
      memset(&la, 0, sizeof(la));
      if (toe_getsockname(nc->dev, sd, (struct sockaddr *)&la, &ll) == 0)
        addr_text(&la, a, sizeof(a));
      fprintf(stderr, "Listening on %s %u\n", a, addr_port(&la));
    }
    if (nc->udp) {
      nc->sd = sd; /* the first datagram names the peer */
      return;
    }
    struct sockaddr_storage pa;
    socklen_t pl = sizeof(pa);
    memset(&pa, 0, sizeof(pa));
    int c = toe_accept_blocking(nc->dev, sd, (struct sockaddr *)&pa, &pl, -1);
    if (c < 0)
      die(EXIT_FAIL, "accept: %s", err_str(c));
    if (nc->verbose) {
      char a[INET6_ADDRSTRLEN];
      addr_text(&pa, a, sizeof(a));
      fprintf(stderr, "Connection received on %s %u\n", a, addr_port(&pa));
    }
    toe_close(nc->dev, sd); /* one connection, like nc -l */
    nc->sd = c;
    return;
  }
  rc = toe_connect_blocking(nc->dev, sd, (struct sockaddr *)&nc->addr, nc->addrlen, nc->idle_ms);
  if (rc < 0)
    die(EXIT_FAIL, "connect to %s port %s (%s): %s", nc->host, nc->port, what, err_str(rc));
  if (nc->verbose)
    fprintf(stderr, "Connection to %s %s port [%s] succeeded!\n", nc->host, nc->port,
            nc->udp ? "udp/*" : "tcp/*");
  nc->sd = sd;
  nc->udp_peer_known = true;
}

static void stdin_epoll(struct nc *nc, bool want)
{
  if (!nc->stdin_pollable || want == nc->stdin_in_ep)
    return;
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = STDIN_FILENO};
  epoll_ctl(nc->ep, want ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, STDIN_FILENO, &ev);
  nc->stdin_in_ep = want;
}

static void stdin_closed(struct nc *nc)
{
  stdin_epoll(nc, false);
  nc->stdin_open = false;
  if (nc->shut_on_eof && !nc->udp) {
    int rc = toe_shutdown(nc->dev, nc->sd, TOE_SHUT_WR);
    if (rc < 0 && rc != -TOE_ENOTCONN)
      die(EXIT_FAIL, "shutdown: %s", err_str(rc));
  }
}

/* stdin -> socket, once. Returns true if data moved. */
static bool pump_stdin(struct nc *nc)
{
  if (!nc->stdin_open || !nc->stdin_ready || (nc->udp && !nc->udp_peer_known))
    return false;
  struct toe_txbuf tb;
  int rc = toe_send_buf_get(nc->dev, nc->sd, nc->udp ? UDP_CHUNK : TCP_CHUNK, &tb);
  if (rc == -TOE_EAGAIN) {
    nc->blocked_on_space = true;
    return false;
  }
  if (rc < 0)
    die(EXIT_FAIL, "send: %s", err_str(rc));
  nc->blocked_on_space = false;
  ssize_t n = read(STDIN_FILENO, tb.data, tb.cap);
  if (n <= 0) {
    toe_send_buf_cancel(nc->dev, &tb);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
      nc->stdin_ready = !nc->stdin_pollable;
      return false;
    }
    if (n < 0)
      die(EXIT_FAIL, "read stdin: %s", strerror(errno));
    stdin_closed(nc);
    return true;
  }
  ssize_t s = toe_send_buf_commit(nc->dev, &tb, (size_t)n, 0, NULL, 0);
  if (s < 0)
    die(EXIT_FAIL, "send: %s", err_str((int)s));
  /* A pollable stdin (pipe, tty, socket) is read again when epoll says so; a file is always
   * ready. */
  nc->stdin_ready = !nc->stdin_pollable;
  return true;
}

/* socket -> stdout, a batch. Returns true if data moved. */
static bool pump_net(struct nc *nc)
{
  bool moved = false;
  for (int i = 0; i < PIECES_PER_ROUND && nc->net_in_open; i++) {
    if (!nc->have_piece) {
      ssize_t r = toe_recv_zc(nc->dev, nc->sd, &nc->piece);
      if (r == -TOE_EAGAIN)
        break;
      if (r == 0 && !nc->udp) {
        nc->net_in_open = false; /* the peer's FIN */
        moved = true;
        break;
      }
      if (r < 0) {
        if (nc->udp && r == -TOE_ECONNREFUSED) {
          fprintf(stderr, "toe-nc: recv: %s\n", err_str((int)r));
          nc->status = EXIT_FAIL;
          continue; /* a soft error: the socket goes on */
        }
        die(EXIT_FAIL, "recv: %s", err_str((int)r));
      }
      nc->have_piece = true;
      nc->piece_off = 0;
      if (nc->udp && !nc->udp_peer_known) {
        /* nc -u -l: the first datagram's sender becomes the peer stdin goes to. */
        int rc = toe_connect(nc->dev, nc->sd, (struct sockaddr *)&nc->piece.from,
                             nc->af == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                : sizeof(struct sockaddr_in));
        if (rc < 0)
          die(EXIT_FAIL, "connect to the first sender: %s", err_str(rc));
        nc->udp_peer_known = true;
      }
    }
    while (nc->piece_off < nc->piece.len) {
      ssize_t w = write(STDOUT_FILENO, (const char *)nc->piece.data + nc->piece_off,
                        nc->piece.len - nc->piece_off);
      if (w < 0 && errno == EINTR)
        continue;
      if (w < 0) {
        if (errno == EPIPE)
          exit(nc->status); /* the reader went away: nothing left to do */
        die(EXIT_FAIL, "write stdout: %s", strerror(errno));
      }
      nc->piece_off += (size_t)w;
    }
    toe_recv_zc_release(nc->dev, &nc->piece);
    nc->have_piece = false;
    moved = true;
  }
  return moved;
}

static void check_device(struct nc *nc)
{
  struct toe_event ev[8];
  int n = toe_poll(nc->dev, ev, 8, 0);
  for (int i = 0; i < n; i++) {
    if (ev[i].sd == TOE_SD_DEVICE && (ev[i].events & TOE_POLLHUP)) {
      int st = toe_dev_status(nc->dev);
      die(EXIT_FAIL, "device lost: %s", err_str(st < 0 ? st : -TOE_ENETDOWN));
    }
  }
}

static bool finished(const struct nc *nc)
{
  if (nc->udp || nc->have_piece || nc->net_in_open)
    return false;
  /* Both inputs gone, or (listening) the peer is done. */
  return !nc->stdin_open || nc->listen;
}

static void run(struct nc *nc)
{
  nc->ep = epoll_create1(EPOLL_CLOEXEC);
  if (nc->ep < 0)
    die(EXIT_FAIL, "epoll: %s", strerror(errno));
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = -1};
  if (epoll_ctl(nc->ep, EPOLL_CTL_ADD, toe_event_fd(nc->dev), &ev) < 0)
    die(EXIT_FAIL, "epoll: %s", strerror(errno));
  /* Regular files and /dev/null cannot be polled (EPERM): they are always ready. */
  struct epoll_event sev = {.events = EPOLLIN, .data.fd = STDIN_FILENO};
  nc->stdin_pollable = epoll_ctl(nc->ep, EPOLL_CTL_ADD, STDIN_FILENO, &sev) == 0;
  if (nc->stdin_pollable)
    epoll_ctl(nc->ep, EPOLL_CTL_DEL, STDIN_FILENO, &sev);
  nc->stdin_open = true;
  nc->stdin_ready = !nc->stdin_pollable;
  nc->net_in_open = true;
  uint64_t last = now_ms();

  for (;;) {
    check_device(nc);
    bool moved = pump_net(nc);
    moved |= pump_stdin(nc);
    if (moved)
      last = now_ms();
    if (finished(nc))
      return;
    if (moved)
      continue;

    /* Nothing moved: sleep until the device or stdin has something. Interest is exact, so the
     * event descriptor does not stay readable for readiness we cannot act on. */
    uint32_t interest = 0;
    if (nc->net_in_open && !nc->have_piece)
      interest |= TOE_POLLIN;
    if (nc->stdin_open && nc->blocked_on_space)
      interest |= TOE_POLLOUT;
    toe_poll_ctl(nc->dev, nc->sd, interest, NULL);
    stdin_epoll(nc, nc->stdin_open && !nc->stdin_ready && !nc->blocked_on_space &&
                        (!nc->udp || nc->udp_peer_known));
    int timeout = -1;
    if (nc->idle_ms >= 0) {
      uint64_t t = now_ms() - last;
      if (t >= (uint64_t)nc->idle_ms)
        return; /* -w: idle for too long */
      timeout = nc->idle_ms - (int)t;
    }
    if (nc->blocked_on_space)
      nc->blocked_on_space = false; /* retried after the next wake-up */
    /* Adaptive polling: spin on the device a little (lowest latency while traffic flows), then
     * sleep in epoll with its doorbell on. */
    if (toe_spin(nc->dev, -1) > 0)
      continue;
    struct epoll_event evs[4];
    int n = epoll_wait(nc->ep, evs, 4, timeout);
    if (n < 0 && errno != EINTR)
      die(EXIT_FAIL, "epoll_wait: %s", strerror(errno));
    for (int i = 0; i < n; i++)
      if (evs[i].data.fd == STDIN_FILENO)
        nc->stdin_ready = true;
  }
}

int main(int argc, char **argv)
{
  struct nc nc;
  memset(&nc, 0, sizeof(nc));
  nc.sd = -1;
  parse_args(&nc, argc, argv);
  signal(SIGPIPE, SIG_IGN);
  attach(&nc);
  open_socket(&nc);
  run(&nc);
  toe_close(nc.dev, nc.sd);
  int rc = toe_detach(nc.dev, DETACH_LINGER_MS);
  if (rc < 0 && nc.status == 0) {
    fprintf(stderr, "toe-nc: detach: %s\n", err_str(rc));
    nc.status = EXIT_FAIL;
  }
  return nc.status;
}
