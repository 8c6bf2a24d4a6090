/*
 * multi_client: one libtoe client with many TCP connections in one event loop, for
 * tests/net/test_transport_many.sh.
 *
 *   multi_client [--ctl PATH] [-n CONNS] [-b BYTES] [-t SECS] [-s SEED] HOST PORT
 *
 * Opens CONNS connections (default 16) through the device to an echo server at HOST:PORT, sends
 * BYTES bytes (default 65536) of a pattern on each, half-closes, and checks that exactly the same
 * bytes come back before the server's FIN. Every socket is non-blocking and driven by toe_poll()
 * (level-triggered readiness), the way an application's epoll loop would.
 *
 * The pattern of connection i at stream offset j depends on the seed (default: the pid), i and j,
 * so a byte delivered to the wrong connection, twice, out of order or not at all is caught.
 *
 * Prints one line "multi_client: N/N connections intact ..." and exits 0 when all are; otherwise
 * prints what went wrong with each failed connection on stderr and exits 1 (2: bad usage).
 */
#define _GNU_SOURCE

#include "toe/toe.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum cstate { C_CONNECTING, C_RUNNING, C_DONE, C_FAILED };

struct conn {
  int sd;
  unsigned idx;
  enum cstate state;
  uint64_t sent, recvd;
  bool shut;     /* our FIN was sent */
  char why[128]; /* failure */
  uint32_t interest;
};

static uint32_t g_seed;
static uint64_t g_bytes = 65536;

/* Byte j of connection i's stream: a cheap hash of (seed, i, j), so that every position of every
 * connection has its own value (not periodic in any small power of two). */
static uint8_t pattern(unsigned i, uint64_t j)
{
  uint64_t x = ((uint64_t)g_seed << 32) ^ ((uint64_t)i << 48) ^ (j >> 3);
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  x ^= x >> 33;
  return (uint8_t)(x >> ((j & 7) * 8));
}

static int64_t now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void fail(toe_dev *dev, struct conn *c, const char *fmt, long v)
{
  if (c->state == C_FAILED)
    return;
  snprintf(c->why, sizeof(c->why), fmt, v);
  c->state = C_FAILED;
  toe_close(dev, c->sd);
  c->sd = -1;
}

static void set_interest(toe_dev *dev, struct conn *c, uint32_t ev)
{
  if (c->interest != ev && toe_poll_ctl(dev, c->sd, ev, c) == 0)
    c->interest = ev;
}

static void do_send(toe_dev *dev, struct conn *c)
{
  uint8_t buf[16384];
  while (c->sent < g_bytes) {
    size_t n = sizeof(buf);
    if (g_bytes - c->sent < n)
      n = (size_t)(g_bytes - c->sent);
    for (size_t k = 0; k < n; k++)
      buf[k] = pattern(c->idx, c->sent + k);
    ssize_t r = toe_send(dev, c->sd, buf, n, 0);
    if (r == -TOE_EAGAIN)
      return;
    if (r <= 0) {
      fail(dev, c, "send: error %ld", (long)r);
      return;
    }
    c->sent += (uint64_t)r;
  }
  if (!c->shut) {
    int r = toe_shutdown(dev, c->sd, TOE_SHUT_WR);
    if (r < 0) {
      fail(dev, c, "shutdown: error %ld", r);
      return;
    }
    c->shut = true;
    set_interest(dev, c, TOE_POLLIN); /* nothing more to send: no busy POLLOUT */
  }
}

static void do_recv(toe_dev *dev, struct conn *c)
{
  uint8_t buf[16384];
  for (;;) {
    ssize_t r = toe_recv(dev, c->sd, buf, sizeof(buf), 0);
    if (r == -TOE_EAGAIN)
      return;
    if (r < 0) {
      fail(dev, c, "recv: error %ld", (long)r);
      return;
    }
    if (r == 0) { /* the server's FIN: everything must be back by now */
      if (c->recvd != g_bytes) {
        fail(dev, c, "end of stream after %ld bytes", (long)c->recvd);
        return;
      }
      toe_close(dev, c->sd);
      c->sd = -1;
      c->state = C_DONE;
      return;
    }
    if (c->recvd + (uint64_t)r > g_bytes) {
      fail(dev, c, "%ld bytes more than were sent", (long)(c->recvd + (uint64_t)r - g_bytes));
      return;
    }
    for (ssize_t k = 0; k < r; k++)
      if (buf[k] != pattern(c->idx, c->recvd + (uint64_t)k)) {
        fail(dev, c, "wrong byte at offset %ld", (long)(c->recvd + (uint64_t)k));
        return;
      }
    c->recvd += (uint64_t)r;
  }
}

static void usage(void)
{
  fprintf(stderr, "usage: multi_client [--ctl PATH] [-n CONNS] [-b BYTES] [-t SECS] [-s SEED] "
                  "HOST PORT\n");
}

int main(int argc, char **argv)
{
  const char *ctl = NULL, *host = NULL, *port_s = NULL;
  unsigned nconns = 16, secs = 60;
  g_seed = (uint32_t)getpid();
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    bool has_val = i + 1 < argc;
    if (strcmp(a, "--ctl") == 0 && has_val)
      ctl = argv[++i];
    else if (strcmp(a, "-n") == 0 && has_val)
      nconns = (unsigned)strtoul(argv[++i], NULL, 10);
    else if (strcmp(a, "-b") == 0 && has_val)
      g_bytes = strtoull(argv[++i], NULL, 10);
    else if (strcmp(a, "-t") == 0 && has_val)
      secs = (unsigned)strtoul(argv[++i], NULL, 10);
    else if (strcmp(a, "-s") == 0 && has_val)
      g_seed = (uint32_t)strtoul(argv[++i], NULL, 0);
    else if (a[0] == '-') {
      usage();
      return 2;
    } else if (!host)
      host = a;
    else if (!port_s)
      port_s = a;
    else {
      usage();
      return 2;
    }
  }
  struct sockaddr_in dst = {.sin_family = AF_INET};
  unsigned long port = port_s ? strtoul(port_s, NULL, 10) : 0;
  if (!host || !port_s || port == 0 || port > 65535 || nconns == 0 || nconns > 4096 || secs == 0 ||
      inet_pton(AF_INET, host, &dst.sin_addr) != 1) {
    usage();
    return 2;
  }
  dst.sin_port = htons((uint16_t)port);

  struct toe_attach_opts o;
  toe_attach_opts_init(&o);
  o.comm = "multi_client";
  o.max_handles = nconns + 8;
  /* A modest region (2 MiB instead of the default 16): 64 of these attach at once. */
  o.buf_count = 256;
  o.buf_size = 8192;
  toe_dev *dev;
  int rc = toe_attach(ctl, &o, &dev);
  if (rc < 0) {
    fprintf(stderr, "multi_client: attach: %s\n", strerror(-rc));
    return 1;
  }

  struct conn *cs = calloc(nconns, sizeof(*cs));
  struct toe_event *evs = calloc(nconns, sizeof(*evs));
  if (!cs || !evs) {
    fprintf(stderr, "multi_client: out of memory\n");
    return 1;
  }
  for (unsigned i = 0; i < nconns; i++) {
    struct conn *c = &cs[i];
    c->idx = i;
    c->sd = toe_socket(dev, TOE_SOCK_STREAM);
    if (c->sd < 0) {
      snprintf(c->why, sizeof(c->why), "socket: error %d", c->sd);
      c->state = C_FAILED;
      continue;
    }
    rc = toe_connect(dev, c->sd, (struct sockaddr *)&dst, sizeof(dst));
    if (rc != -TOE_EINPROGRESS && rc != 0) {
      fail(dev, c, "connect: error %ld", rc);
      continue;
    }
    c->state = rc == 0 ? C_RUNNING : C_CONNECTING;
    set_interest(dev, c, TOE_POLLIN | TOE_POLLOUT);
  }

  int64_t deadline = now_ms() + (int64_t)secs * 1000;
  unsigned live = nconns;
  bool device_lost = false;
  while (live > 0 && now_ms() < deadline) {
    int n = toe_poll(dev, evs, (int)nconns, 100);
    if (n < 0) {
      fprintf(stderr, "multi_client: toe_poll: %s\n", strerror(-n));
      break;
    }
    for (int e = 0; e < n; e++) {
      if (evs[e].sd == TOE_SD_DEVICE) {
        if (evs[e].events & (TOE_POLLHUP | TOE_POLLERR))
          device_lost = true;
        continue;
      }
      struct conn *c = evs[e].udata;
      if (!c || c->sd != evs[e].sd || c->state == C_DONE || c->state == C_FAILED)
        continue;
      uint32_t ev = evs[e].events;
      if (c->state == C_CONNECTING) {
        if (!(ev & (TOE_POLLOUT | TOE_POLLERR | TOE_POLLHUP)))
          continue;
        int64_t err = 0;
        rc = toe_getsockopt(dev, c->sd, TOE_OPT_ERROR, &err);
        if (rc < 0 || err != 0) {
          fail(dev, c, "connect failed: error %ld", rc < 0 ? rc : (long)err);
          continue;
        }
        c->state = C_RUNNING;
      }
      if (ev & TOE_POLLIN)
        do_recv(dev, c);
      if (c->state == C_RUNNING && (ev & TOE_POLLOUT))
        do_send(dev, c);
      if (c->state == C_RUNNING && (ev & (TOE_POLLERR | TOE_POLLHUP)) && !(ev & TOE_POLLIN)) {
        int64_t err = 0;
        toe_getsockopt(dev, c->sd, TOE_OPT_ERROR, &err);
        fail(dev, c, "connection failed: error %ld", (long)err);
      }
    }
    live = 0;
    for (unsigned i = 0; i < nconns; i++)
      live += cs[i].state == C_CONNECTING || cs[i].state == C_RUNNING;
    if (device_lost)
      break;
  }

  unsigned ok = 0;
  for (unsigned i = 0; i < nconns; i++) {
    struct conn *c = &cs[i];
    if (c->state == C_DONE) {
      ok++;
      continue;
    }
    if (c->state != C_FAILED)
      snprintf(c->why, sizeof(c->why), "%s", device_lost ? "device lost" : "timed out");
    fprintf(stderr, "multi_client[%d]: connection %u: %s (sent %llu, received %llu of %llu)\n",
            (int)getpid(), i, c->why, (unsigned long long)c->sent, (unsigned long long)c->recvd,
            (unsigned long long)g_bytes);
  }
  printf("multi_client: %u/%u connections intact (%llu bytes each way)\n", ok, nconns,
         (unsigned long long)g_bytes);
  fflush(stdout);
  toe_detach(dev, 1000);
  free(cs);
  free(evs);
  return ok == nconns ? 0 : 1;
}
