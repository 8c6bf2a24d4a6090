/*
 * preload_scale: an epoll server's shape at scale, run under libtoe-preload by
 * test_preload_scale.sh (docs/interception.md, "Readiness served in user space"): IDLE offloaded
 * members that never become ready (UDP sockets bound to DEV_ADDR and TCP listeners on it, each
 * under four descriptor numbers, every one in the set for EPOLLIN) and one active member, a UDP
 * socket connected to HOST's UDP echo on ECHO_PORT, in the set for EPOLLIN too. Each of REQS
 * requests sends a datagram and waits in epoll_wait (room for every member) until the echo is
 * there: the wait must report the active member alone, with its data, every time. The library's
 * counters (TOE_PRELOAD_DEBUG=1) then say how many ready-list entries the waits looked at: the
 * script checks that this does not grow with IDLE.
 *
 *   preload_scale HOST ECHO_PORT DEV_ADDR FIRST_PORT IDLE REQS
 *
 * Ports FIRST_PORT .. FIRST_PORT + IDLE / 4 on DEV_ADDR are used. Each check prints
 * "ok   - ..." or "FAIL - ..."; the exit status is the number of failures (capped at 100).
 */
#define _GNU_SOURCE

#include "check_util.h"

#include <string.h>
#include <sys/resource.h>

int main(int argc, char **argv)
{
  if (argc != 7) {
    fprintf(stderr, "usage: %s HOST ECHO_PORT DEV_ADDR FIRST_PORT IDLE REQS\n", argv[0]);
    return 100;
  }
  int echo = atoi(argv[2]), first = atoi(argv[4]), idle = atoi(argv[5]), reqs = atoi(argv[6]);
  /* Each offloaded socket holds three descriptors (the application's, the library's two). */
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)(4 * idle + 256)) {
    rl.rlim_cur = (rlim_t)(4 * idle + 256);
    if (rl.rlim_max < rl.rlim_cur)
      rl.rlim_max = rl.rlim_cur;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
      perror("setrlimit");
  }
  int ep = epoll_create1(EPOLL_CLOEXEC);
  check(ep >= 0, "epoll_create1");
  /* A session has 1,024 socket handles on the device (a listener holds one more per backlog
   * entry), so the members are IDLE / 4 sockets under four descriptor numbers each (dup): each
   * number is a registration of its own, as in the kernel, and costs a wait what a socket would. */
  int made = 0;
  for (int i = 0; made < idle; i++) {
    bool udp = i % 2 == 0;
    int fd = socket(AF_INET, (udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = addr_of(argv[3], first + i);
    int one = 1;
    if (!udp)
      setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || (!udp && listen(fd, 1) < 0)) {
      fprintf(stderr, "idle socket %d: %s\n", i, strerror(errno));
      break;
    }
    bool ok = true;
    for (int k = 0; k < 4 && made < idle && ok; k++) {
      int d = k == 0 ? fd : dup(fd);
      struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)made};
      ok = d >= 0 && epoll_ctl(ep, EPOLL_CTL_ADD, d, &ev) == 0;
      if (!ok)
        fprintf(stderr, "idle member %d: %s\n", made, strerror(errno));
      else
        made++;
    }
    if (!ok)
      break;
  }
  check(made == idle, "%d idle offloaded members in the set (UDP sockets and listeners)", made);

  int u = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  struct sockaddr_in peer = addr_of(argv[1], echo);
  check(u >= 0 && connect(u, (struct sockaddr *)&peer, sizeof(peer)) == 0,
        "the active UDP socket is connected to the echo");
  const uint64_t key = 0xac7170ull;
  struct epoll_event ev = {.events = EPOLLIN, .data.u64 = key};
  check(epoll_ctl(ep, EPOLL_CTL_ADD, u, &ev) == 0, "the active member is in the set");

  struct epoll_event *evs = calloc((size_t)idle + 1, sizeof(*evs));
  int bad = 0, lost = 0, answered = 0;
  for (int r = 0; r < reqs && evs; r++) {
    char msg[32], got[64];
    int len = snprintf(msg, sizeof(msg), "request %d", r);
    if (send(u, msg, (size_t)len, 0) != len) {
      bad++;
      continue;
    }
    bool done = false;
    for (int tries = 0; !done && tries < 4; tries++) {
      int n = epoll_wait(ep, evs, idle + 1, 1000);
      if (n == 0)
        break; /* lost datagram (the echo is UDP): counted below */
      if (n != 1 || evs[0].data.u64 != key || evs[0].events != EPOLLIN) {
        bad++;
        break;
      }
      ssize_t g;
      while ((g = recv(u, got, sizeof(got), 0)) > 0)
        if (g == len && memcmp(got, msg, (size_t)len) == 0)
          done = true;
    }
    if (done)
      answered++;
    else
      lost++;
  }
  check(bad == 0, "every wait reported the active member alone, EPOLLIN (%d did not)", bad);
  /* One datagram in flight at a time over a veth pair: nothing is dropped. */
  check(answered == reqs, "%d of %d echoes came back (%d lost)", answered, reqs, lost);
  printf("# idle=%d requests=%d answered=%d\n", idle, reqs, answered);
  free(evs);
  return check_exit_status();
}
