/*
 * bench_transport_count: what moving bulk TCP data through the transport costs in exact counts,
 * not in time (the figures do not depend on the machine's load): submissions, completions,
 * doorbells each way and sleeps per MiB, from libtoe's own counters (toe_dev_info) and the
 * device's view of the session (STATS CLIENT). bench/transport_count.sh runs it against a kernel
 * peer, both ways, before/after comparisons side by side.
 *
 *   bench_transport_count --ctl PATH send ADDR PORT MIB [IOV]   connect, send MIB MiB, close
 *   bench_transport_count --ctl PATH recv PORT                  accept one, read until EOF
 *
 * send writes in calls of IOV pieces of 4 KiB each (default 16: a 64 KiB writev), with toe_sendv
 * (one call per vector), or with --per-piece one toe_send per piece (what a writev cost before
 * toe_sendv). --buf-size N asks for N-byte transport buffers (0: the device's default).
 * Output: one line "key value" per counter, then "per_mib.KEY value" for each.
 */
#define _GNU_SOURCE
#include "toe/abi.h"
#include "toe/toe.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#define PIECE 4096
#define IOV_MAX_HERE 256

static void die(const char *what, long rc)
{
  fprintf(stderr, "bench_transport_count: %s: %s\n", what, toe_strerror((int)rc));
  exit(1);
}

static void client_stats(toe_dev *d, struct toe_abi_client_stats *cs)
{
  memset(cs, 0, sizeof(*cs));
  ssize_t r = toe_stats(d, -1, TOE_STATS_CLIENT, cs, sizeof(*cs));
  if (r < 0)
    die("STATS CLIENT", r);
}

int main(int argc, char **argv)
{
  const char *ctl = NULL;
  int per_piece = 0;
  unsigned buf_size = 0;
  int i = 1;
  for (; i < argc && argv[i][0] == '-'; i++) {
    if (!strcmp(argv[i], "--ctl") && i + 1 < argc)
      ctl = argv[++i];
    else if (!strcmp(argv[i], "--per-piece"))
      per_piece = 1;
    else if (!strcmp(argv[i], "--buf-size") && i + 1 < argc)
      buf_size = (unsigned)strtoul(argv[++i], NULL, 0);
    else
      break;
  }
  if (i >= argc || (strcmp(argv[i], "send") && strcmp(argv[i], "recv"))) {
    fprintf(stderr, "usage: bench_transport_count [--ctl PATH] [--per-piece] [--buf-size N] "
                    "send ADDR PORT MIB [IOV] | recv PORT\n");
    return 2;
  }
  int sending = !strcmp(argv[i], "send");
  if ((sending && argc - i < 4) || (!sending && argc - i < 2)) {
    fprintf(stderr, "bench_transport_count: missing arguments\n");
    return 2;
  }

  struct toe_attach_opts o;
  toe_attach_opts_init(&o);
  o.buf_size = buf_size;
  toe_dev *d;
  int rc = toe_attach(ctl, &o, &d);
  if (rc < 0)
    die("attach", rc);
  struct toe_dev_info info0, info1;
  struct toe_abi_client_stats cs0, cs1;
  uint64_t moved = 0;

  if (sending) {
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[i + 2]))};
    if (inet_pton(AF_INET, argv[i + 1], &sa.sin_addr) != 1)
      die("address", -TOE_EINVAL);
    uint64_t total = (uint64_t)strtoull(argv[i + 3], NULL, 0) << 20;
    int niov = argc - i > 4 ? atoi(argv[i + 4]) : 16;
    if (niov < 1 || niov > IOV_MAX_HERE)
      die("IOV", -TOE_EINVAL);
    static char pieces[IOV_MAX_HERE][PIECE];
    for (int k = 0; k < niov; k++)
      memset(pieces[k], 'a' + k % 26, PIECE);
    int sd = toe_socket(d, TOE_SOCK_STREAM);
    if (sd < 0)
      die("socket", sd);
    rc = toe_connect_blocking(d, sd, (struct sockaddr *)&sa, sizeof(sa), 10000);
    if (rc < 0)
      die("connect", rc);
    toe_dev_info(d, &info0);
    client_stats(d, &cs0);
    struct iovec iov[IOV_MAX_HERE];
    while (moved < total) {
      /* One vector of niov pieces (the last one cut to what is left), resumed after a short
       * send. */
      uint64_t want = total - moved;
      if (want > (uint64_t)niov * PIECE)
        want = (uint64_t)niov * PIECE;
      size_t done = 0;
      while (done < want) {
        ssize_t r;
        if (per_piece) {
          size_t k = PIECE - done % PIECE;
          if (k > want - done)
            k = want - done;
          r = toe_send(d, sd, pieces[done / PIECE] + done % PIECE, k, 0);
        } else {
          int n = 0;
          for (size_t off = done; off < want; n++) {
            size_t k = PIECE - off % PIECE;
            if (k > want - off)
              k = want - off;
            iov[n].iov_base = pieces[off / PIECE] + off % PIECE;
            iov[n].iov_len = k;
            off += k;
          }
#ifdef NO_SENDV
          (void)iov;
          r = -TOE_EOPNOTSUPP;
          die("built without toe_sendv: use --per-piece", r);
#else
          r = toe_sendv(d, sd, iov, n, 0, NULL, 0);
#endif
        }
        if (r == -TOE_EAGAIN) {
          toe_wait(d, sd, TOE_POLLOUT, 10000);
          continue;
        }
        if (r < 0)
          die("send", r);
        done += (size_t)r;
      }
      moved += want;
    }
    rc = toe_flush(d, sd, 30000);
    if (rc < 0)
      die("flush", rc);
    toe_dev_info(d, &info1);
    client_stats(d, &cs1);
    toe_close(d, sd);
  } else {
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[i + 1]))};
    int ls = toe_socket(d, TOE_SOCK_STREAM);
    if (ls < 0)
      die("socket", ls);
    if ((rc = toe_bind(d, ls, (struct sockaddr *)&sa, sizeof(sa))) < 0 ||
        (rc = toe_listen(d, ls, 4)) < 0)
      die("bind/listen", rc);
    printf("listening\n");
    fflush(stdout);
    int sd = toe_accept_blocking(d, ls, NULL, NULL, 30000);
    if (sd < 0)
      die("accept", sd);
    toe_dev_info(d, &info0);
    client_stats(d, &cs0);
    static char buf[1 << 20];
    for (;;) {
      ssize_t r = toe_recv_blocking(d, sd, buf, sizeof(buf), 30000);
      if (r == 0)
        break;
      if (r < 0)
        die("recv", r);
      moved += (uint64_t)r;
    }
    toe_dev_info(d, &info1);
    client_stats(d, &cs1);
    toe_close(d, sd);
    toe_close(d, ls);
  }

  double mib = (double)moved / 1048576.0;
  printf("buf_size %u\nbuf_count %u\nbytes %llu\n", info1.buf_size, info1.buf_count,
         (unsigned long long)moved);
  struct {
    const char *name;
    uint64_t v;
  } c[] = {
      {"host.sqes", info1.sqes - info0.sqes},
      {"host.cqes", info1.cqes - info0.cqes},
      {"host.kicks", info1.kicks - info0.kicks},
      {"host.sleeps", info1.sleeps - info0.sleeps},
      {"dev.completions", cs1.completions - cs0.completions},
      {"dev.events", cs1.events - cs0.events},
      {"dev.bufs_lent", cs1.bufs_lent - cs0.bufs_lent},
      {"dev.kicks", cs1.kicks - cs0.kicks},
      {"dev.notifies", cs1.notifies - cs0.notifies},
  };
  for (size_t k = 0; k < sizeof(c) / sizeof(c[0]); k++)
    printf("%s %llu\n", c[k].name, (unsigned long long)c[k].v);
  for (size_t k = 0; k < sizeof(c) / sizeof(c[0]) && mib > 0; k++)
    printf("per_mib.%s %.2f\n", c[k].name, (double)c[k].v / mib);
  toe_detach(d, 1000);
  return 0;
}
