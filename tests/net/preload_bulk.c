/*
 * preload_bulk: bulk sends of an ordinary socket program, run under libtoe-preload by
 * test_preload_bulk.sh (docs/interception.md): the vector and file paths of the data path, with
 * the kernel's partial-acceptance rules checked on every call. Each check prints "ok   - ..." or
 * "FAIL - ..."; the exit status is the number of failures (capped at 100).
 *
 *   preload_bulk vec HOST PORT block|nb OUT
 *        connects to HOST:PORT and sends rounds of writev with 1,000 small pieces (1..200 bytes),
 *        sendmsg with 1,000 small pieces, and writev / sendmsg of 3 pieces of 1 MiB (and, blocking,
 * a sendmmsg of 4 vectors); writes every byte it meant to send to the file OUT (the test compares
 * its SHA-256 with what the peer read). Blocking: every call takes its whole vector. Non- blocking:
 * a call takes a prefix (1..total) or fails with EAGAIN, the rest is sent from where it stopped
 * after POLLOUT. preload_bulk file HOST PORT FILE sends FILE with sendfile: its first half with a
 * NULL offset (uses and advances the file position), the rest with an offset of its own (leaves the
 * position alone), then asks for more than is left (the rest, then 0 at the end of the file).
 */
#define _GNU_SOURCE

#include "check_util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define SMALL_PIECES 1000
#define BIG_PIECE (1u << 20)

static unsigned rng = 12345u;

static unsigned next_rand(void)
{
  rng = rng * 1103515245u + 12345u;
  return rng >> 8;
}

/* What the non-blocking sends saw: short calls and EAGAIN failures. */
static unsigned nb_short, nb_eagain, bad_returns;

/* Sends the whole vector (a copy: the pieces are moved on here) with writev (use_msg false) or
 * sendmsg, following the kernel's rules: blocking, one call takes it all; non-blocking, each call
 * takes 1..rest or fails with EAGAIN. Returns false on an unexpected error. */
static bool send_all(int s, struct iovec *iov, int n, bool nb, bool use_msg)
{
  size_t rest = 0;
  for (int i = 0; i < n; i++)
    rest += iov[i].iov_len;
  while (rest) {
    ssize_t w;
    if (use_msg) {
      struct msghdr m = {.msg_iov = iov, .msg_iovlen = (size_t)n};
      w = sendmsg(s, &m, MSG_NOSIGNAL);
    } else {
      w = writev(s, iov, n);
    }
    if (w < 0 && nb && errno == EAGAIN) {
      nb_eagain++;
      struct pollfd p = {.fd = s, .events = POLLOUT};
      if (poll(&p, 1, 30000) != 1) {
        fprintf(stderr, "no POLLOUT within 30 s\n");
        return false;
      }
      continue;
    }
    if (w <= 0) {
      fprintf(stderr, "%s: %zd (%s)\n", use_msg ? "sendmsg" : "writev", w, strerror(errno));
      return false;
    }
    if ((size_t)w > rest || (!nb && (size_t)w != rest))
      bad_returns++;
    if ((size_t)w < rest)
      nb_short++;
    rest -= (size_t)w;
    size_t k = (size_t)w;
    while (n && k >= iov[0].iov_len) {
      k -= iov[0].iov_len;
      iov++;
      n--;
    }
    if (n) {
      iov[0].iov_base = (char *)iov[0].iov_base + k;
      iov[0].iov_len -= k;
    }
  }
  return true;
}

static bool write_file(int fd, const void *b, size_t n)
{
  const char *p = b;
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w <= 0)
      return false;
    p += w;
    n -= (size_t)w;
  }
  return true;
}

/* Waits for the peer's end of stream (it closes once it read everything). */
static void drain_to_eof(int s)
{
  char b[256];
  set_nonblock(s, false);
  shutdown(s, SHUT_WR);
  while (read(s, b, sizeof b) > 0) {
  }
}

static int run_vec(const char *host, int port, bool nb, const char *outpath)
{
  int out = open(outpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  int s = tcp_connect(host, port);
  check(out >= 0 && s >= 0, "connected to %s:%d (%s)", host, port,
        nb ? "non-blocking" : "blocking");
  if (out < 0 || s < 0)
    return check_exit_status();
  if (nb)
    set_nonblock(s, true);
  static char small[SMALL_PIECES * 200];
  static struct iovec iov[SMALL_PIECES], work[SMALL_PIECES];
  char *big = malloc(3 * BIG_PIECE);
  if (!big)
    return 100;
  bool ok = true;
  unsigned calls = 0;
  /* 1,000 small pieces of 1..200 bytes (about 100 KB a call), 8 rounds of each call */
  for (int round = 0; round < 16 && ok; round++) {
    size_t at = 0;
    for (int i = 0; i < SMALL_PIECES; i++) {
      size_t len = 1 + next_rand() % 200;
      for (size_t k = 0; k < len; k++)
        small[at + k] = (char)next_rand();
      iov[i] = (struct iovec){.iov_base = small + at, .iov_len = len};
      at += len;
    }
    ok = ok && write_file(out, small, at);
    memcpy(work, iov, sizeof iov);
    ok = ok && send_all(s, work, SMALL_PIECES, nb, round & 1);
    calls++;
  }
  check(ok, "16 calls of 1,000 small pieces, writev and sendmsg in turn");
  /* 3 x 1 MiB, 2 rounds of each call */
  for (int round = 0; round < 4 && ok; round++) {
    for (size_t k = 0; k < 3 * BIG_PIECE; k++)
      big[k] = (char)next_rand();
    struct iovec b3[3];
    for (int i = 0; i < 3; i++)
      b3[i] = (struct iovec){.iov_base = big + (size_t)i * BIG_PIECE, .iov_len = BIG_PIECE};
    ok = write_file(out, big, 3 * BIG_PIECE) && send_all(s, b3, 3, nb, round & 1);
    calls++;
  }
  check(ok, "4 calls of 3 x 1 MiB, writev and sendmsg in turn");
  if (!nb && ok) {
    /* sendmmsg: 4 messages of 2 pieces (64 KiB and 100 bytes) in one call */
    struct mmsghdr mm[4];
    struct iovec v[4][2];
    memset(mm, 0, sizeof mm);
    size_t at = 0;
    for (int i = 0; i < 4; i++) {
      size_t l0 = 65536, l1 = 100;
      for (size_t k = 0; k < l0 + l1; k++)
        big[at + k] = (char)next_rand();
      v[i][0] = (struct iovec){.iov_base = big + at, .iov_len = l0};
      v[i][1] = (struct iovec){.iov_base = big + at + l0, .iov_len = l1};
      mm[i].msg_hdr.msg_iov = v[i];
      mm[i].msg_hdr.msg_iovlen = 2;
      at += l0 + l1;
    }
    ok = write_file(out, big, at);
    int r = sendmmsg(s, mm, 4, 0);
    bool all = r == 4;
    for (int i = 0; i < 4 && all; i++)
      all = mm[i].msg_len == 65636;
    check(all, "sendmmsg of 4 vectors: 4 sent, each whole (%d)", r);
  }
  check(bad_returns == 0, "every call returned what the kernel would (%u calls, %u not)", calls,
        bad_returns);
  /* Not a rule of the kernel's but of this test: the non-blocking path must have been taken. On
   * the kernel (PRELOAD_BULK_KERNEL set) its large loopback buffers may take everything. */
  if (nb && !getenv("PRELOAD_BULK_KERNEL"))
    check(nb_short + nb_eagain > 0,
          "non-blocking: the slow reader made sends stop early "
          "(%u short, %u EAGAIN)",
          nb_short, nb_eagain);
  else if (!nb)
    check(nb_short == 0, "blocking: no call took less than its whole vector (%u)", nb_short);
  close(out);
  drain_to_eof(s);
  close(s);
  free(big);
  return check_exit_status();
}

static int run_file(const char *host, int port, const char *path)
{
  int f = open(path, O_RDONLY);
  struct stat st;
  int s = tcp_connect(host, port);
  check(f >= 0 && s >= 0 && fstat(f, &st) == 0, "connected to %s:%d, %s open", host, port, path);
  if (f < 0 || s < 0)
    return check_exit_status();
  size_t size = (size_t)st.st_size, half = size / 2, sent = 0;
  bool ok = true;
  /* first half: a NULL offset reads from and advances the file position */
  while (ok && sent < half) {
    ssize_t w = sendfile(s, f, NULL, half - sent);
    ok = w > 0;
    if (ok) {
      sent += (size_t)w;
      ok = lseek(f, 0, SEEK_CUR) == (off_t)sent;
    }
  }
  check(ok && sent == half, "sendfile with a NULL offset: %zu bytes, the file position follows",
        sent);
  /* the rest: an offset of our own; the file position stays where it was */
  off_t off = (off_t)sent;
  while (ok && (size_t)off < size - 4096) {
    ssize_t w = sendfile(s, f, &off, size - 4096 - (size_t)off);
    ok = w > 0 && lseek(f, 0, SEEK_CUR) == (off_t)half;
  }
  check(ok && (size_t)off == size - 4096,
        "sendfile with an offset: up to %lld, the file position "
        "left at %zu",
        (long long)off, half);
  /* more than is left: the rest, then 0 at the end of the file */
  ssize_t w = sendfile(s, f, &off, 1u << 20);
  ssize_t w2 = sendfile(s, f, &off, 1u << 20);
  check(w == 4096 && w2 == 0 && (size_t)off == size,
        "sendfile past the end: the rest (%zd), then 0 (%zd)", w, w2);
  close(f);
  drain_to_eof(s);
  close(s);
  return check_exit_status();
}

int main(int argc, char **argv)
{
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc == 6 && strcmp(argv[1], "vec") == 0)
    return run_vec(argv[2], atoi(argv[3]), strcmp(argv[4], "nb") == 0, argv[5]);
  if (argc == 5 && strcmp(argv[1], "file") == 0)
    return run_file(argv[2], atoi(argv[3]), argv[4]);
  fprintf(stderr, "usage: preload_bulk vec HOST PORT block|nb OUT | file HOST PORT FILE\n");
  return 100;
}
