/*
 * check_util.h: the helpers shared by the C check programs of the network tests (preload_check.c,
 * preload_events.c, share_check.c): TAP-like check lines and their count, IPv4 addresses, a
 * monotonic clock, blocking connects, non-blocking mode, entering a network namespace and waiting
 * for one descriptor's epoll events. Everything is static inline: each program is one translation
 * unit that includes this header once, so there is nothing to link. Define _GNU_SOURCE before any
 * include (setns, program_invocation_short_name).
 */
#ifndef TOE_TESTS_NET_CHECK_UTIL_H
#define TOE_TESTS_NET_CHECK_UTIL_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* The number of failed checks so far (one program, one counter). */
static int check_failures;

/* check: prints "ok   - MESSAGE" or "FAIL - MESSAGE" (flushed at once, so that the lines keep
 * their order with the output of forked children) and counts a failure. */
static inline void check(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline void check(bool ok, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  printf("%s - ", ok ? "ok  " : "FAIL");
  vprintf(fmt, ap);
  printf("\n");
  va_end(ap);
  fflush(stdout);
  if (!ok)
    check_failures++;
}

/* check_exit_status: the program's exit status, the number of failed checks capped at 100 (an
 * exit status is 8 bits; above 100 the number says nothing more). */
static inline int check_exit_status(void)
{
  return check_failures > 100 ? 100 : check_failures;
}

/* addr_of: host (dotted IPv4) and port as a sockaddr_in; a malformed host is a usage error of
 * the test script: the program says so and exits 100. */
static inline struct sockaddr_in addr_of(const char *host, int port)
{
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
    fprintf(stderr, "%s: bad IPv4 address '%s'\n", program_invocation_short_name, host);
    exit(100);
  }
  return a;
}

/* now_ms: CLOCK_MONOTONIC in milliseconds (for deadlines, never for assertions). */
static inline uint64_t now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* tcp_connect: a blocking TCP connection to host:port, or -1 with errno from socket/connect. */
static inline int tcp_connect(const char *host, int port)
{
  struct sockaddr_in a = addr_of(host, port);
  int s = socket(AF_INET, SOCK_STREAM, 0);
  if (s < 0)
    return -1;
  if (connect(s, (struct sockaddr *)&a, sizeof(a)) < 0) {
    int e = errno;
    close(s);
    errno = e;
    return -1;
  }
  return s;
}

/* set_nonblock: turns O_NONBLOCK on or off; fcntl's result (-1 with errno on error). */
static inline int set_nonblock(int fd, bool on)
{
  int fl = fcntl(fd, F_GETFL);
  return fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK);
}

/* netns_enter: moves the calling process (a forked child: a thread would move alone) into the
 * network namespace at path (such as /var/run/netns/NAME). 0, or -1 with errno from open/setns. */
static inline int netns_enter(const char *path)
{
  int nsfd = open(path, O_RDONLY | O_CLOEXEC);
  if (nsfd < 0)
    return -1;
  int rc = setns(nsfd, CLONE_NEWNET);
  int e = errno;
  close(nsfd);
  errno = e;
  return rc;
}

/* wait_tag: the number of events for `tag` (data.u32) from epoll set ep within timeout_ms (0 when
 * none came); *mask (if not NULL) gets the union of their event bits. Events of other tags are
 * dropped: the callers look at one descriptor at a time. */
static inline int wait_tag(int ep, uint32_t tag, int timeout_ms, uint32_t *mask)
{
  struct epoll_event out[16];
  int seen = 0;
  uint64_t end = now_ms() + (uint64_t)timeout_ms;
  if (mask)
    *mask = 0;
  for (;;) {
    uint64_t now = now_ms();
    int left = now >= end ? 0 : (int)(end - now);
    int n = epoll_wait(ep, out, 16, left);
    for (int i = 0; i < n; i++) {
      if (out[i].data.u32 == tag) {
        seen++;
        if (mask)
          *mask |= out[i].events;
      }
    }
    if (seen || left == 0)
      return seen;
  }
}

#endif
