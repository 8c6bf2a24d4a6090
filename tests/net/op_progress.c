/*
 * A libtoe client for tests/net/test_op_progress.sh: libtoe's limit on control calls bounds the
 * device's silence, not the call (include/toe/toe.h "Control calls").
 *
 *   op_progress CTL HOST PORT TIMEOUT_MS GO_FILE STOPPED_FILE
 *
 * Attaches with op_timeout_ms = TIMEOUT_MS and 8 KiB buffers, connects to HOST:PORT (a peer that
 * reads slowly, at a steady rate), gives the socket 16 send buffers and keeps them filled for
 * 2 s after the first refused send (the engine's send buffer and the peer's window are full), and
 * stops right after a refusal: the device holds all of them. Then:
 *  1. a SETSOCKOPT (TOE_OPT_NODELAY), which the device keeps behind those sends (what changes a
 *     socket stays in order; a GETSOCKOPT is answered at once, docs/transport.md): it completes
 *     as the peer reads, after longer than TIMEOUT_MS. Prints "busy_rc RC" and "busy_ms MS".
 *  2. creates GO_FILE and waits (up to 20 s) for STOPPED_FILE: the test has stopped toed
 *     (SIGSTOP). Another GETSOCKOPT must fail with -ETIMEDOUT after TIMEOUT_MS of silence.
 *     Prints "silent_rc RC" and "silent_ms MS".
 * Exit status 0 unless the set-up failed (1, with the reason on stderr) or the arguments were
 * bad (2). The test judges the printed values.
 */
#define _GNU_SOURCE

#include "toe/toe.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TXBUFS 16

static uint64_t ms_now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int fail(const char *what, long long rc)
{
  fprintf(stderr, "op_progress: %s: %lld (%s)\n", what, rc, strerror((int)-rc));
  return 1;
}

int main(int argc, char **argv)
{
  if (argc != 7) {
    fputs("usage: op_progress CTL HOST PORT TIMEOUT_MS GO_FILE STOPPED_FILE\n", stderr);
    return 2;
  }
  struct toe_attach_opts o;
  toe_attach_opts_init(&o);
  o.op_timeout_ms = (uint32_t)atoi(argv[4]);
  o.buf_size = 8192;
  toe_dev *d = NULL;
  int rc = toe_attach(argv[1], &o, &d);
  if (rc < 0)
    return fail("attach", rc);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)atoi(argv[3]));
  if (inet_pton(AF_INET, argv[2], &a.sin_addr) != 1)
    return 2;
  int sd = toe_socket(d, TOE_SOCK_STREAM);
  if (sd < 0)
    return fail("socket", sd);
  rc = toe_connect_blocking(d, sd, (struct sockaddr *)&a, sizeof a, 10000);
  if (rc < 0)
    return fail("connect", rc);
  rc = toe_setsockopt(d, sd, TOE_OPT_TXBUFS, TXBUFS);
  if (rc < 0)
    return fail("setsockopt TXBUFS", rc);

  /* Fill: sends are refused once the device holds every send buffer (the engine's send buffer
   * is full and the peer's window closed); from then on one is accepted only when the peer has
   * read enough for the device to take one more. Top up for 2 s (the engine's send buffer has
   * grown as far as it will), then stop right after a refusal: the device holds them all. */
  static uint8_t chunk[8192];
  memset(chunk, 'x', sizeof chunk);
  uint64_t sent = 0, first_refusal = 0;
  uint64_t give_up = ms_now() + 30000;
  for (;;) {
    ssize_t n = toe_send(d, sd, chunk, sizeof chunk, 0);
    if (n > 0) {
      sent += (uint64_t)n;
      continue;
    }
    if (n != -TOE_EAGAIN)
      return fail("send", n);
    uint64_t now = ms_now();
    if (!first_refusal)
      first_refusal = now;
    if (now - first_refusal >= 2000)
      break;
    if (now > give_up)
      return fail("sends were never refused", -TOE_ETIMEDOUT);
    usleep(10000);
  }
  printf("sent %llu\n", (unsigned long long)sent);

  /* 1. Behind the held sends, while the device takes data as the peer reads. */
  int64_t v = 0;
  uint64_t t0 = ms_now();
  rc = toe_setsockopt(d, sd, TOE_OPT_NODELAY, 1);
  printf("busy_rc %d\nbusy_ms %llu\n", rc, (unsigned long long)(ms_now() - t0));
  fflush(stdout);

  /* 2. The device stopped: the limit ends the call. */
  FILE *f = fopen(argv[5], "w");
  if (!f)
    return fail("cannot create the go file", -1);
  fclose(f);
  uint64_t until = ms_now() + 20000;
  while (access(argv[6], F_OK) != 0) {
    if (ms_now() > until)
      return fail("the test never stopped toed", -TOE_ETIMEDOUT);
    usleep(10000);
  }
  t0 = ms_now();
  rc = toe_getsockopt(d, sd, TOE_OPT_NODELAY, &v);
  printf("silent_rc %d\nsilent_ms %llu\n", rc, (unsigned long long)(ms_now() - t0));
  fflush(stdout);
  toe_detach(d, 1000);
  return 0;
}
