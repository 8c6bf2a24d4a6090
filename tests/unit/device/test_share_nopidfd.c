/*
 * The share-token watch without pidfd_open (issue 12): a token bound to a process (ADOPT F_BIND)
 * is watched through the process's pidfd in toed's epoll set; on a kernel without pidfd_open
 * (Linux < 5.3) toed looks at /proc/PID/stat every CTL_TOKEN_PID_CHECK_NS instead. Here toed's
 * session code runs in-process on a virtual clock (as test_ctl_session.c) with
 * toed_ctl_config.pidfd_open set to a stand-in that fails with ENOSYS, the seam toed itself
 * uses (its default is the system call), so the polled path runs on any kernel.
 *
 * The client binds a UDP socket to a port, shares it, binds the token to a child process it
 * forked and closes its own handle: only the token holds the port now. While the child lives the
 * port stays taken (a second bind gets EADDRINUSE) and every poll period counts a look
 * (share_pid_polls); once the child has exited the token goes within one poll period of the
 * virtual clock (share_expired), the port is free again, and no pidfd woke anything
 * (share_pidfd_exits 0). The same run with the real pidfd_open frees the token on the exit
 * itself, through the pidfd's epoll event, with no time passing and no poll.
 */
#define _GNU_SOURCE

#include "ctl_host.h"
#include "device/ctl_server.h"
#include "e2e_link.h"
#include "testlib.h"
#include "toe/abi.h"
#include "toe/errno.h"
#include "transport/ring.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <unistd.h>

#define PORT 7777

static struct e2e_link L;
static struct toed_ctl C;
static struct ctl_host A;
static int fake_calls;

/* The last completion of each opcode (res, handle, the share token). */
static struct {
  bool done;
  int res;
  uint32_t handle;
  uint64_t token;
} R[TOE_ABI_OP_CAPTURE + 1];

/* toed_ctl_config.pidfd_open for a kernel without pidfd_open. */
static int no_pidfd(pid_t pid)
{
  (void)pid;
  fake_calls++;
  errno = ENOSYS;
  return -1;
}

static void on_event(void *ctx, int end, struct toe_sock *s, void *user, uint32_t events)
{
  (void)ctx;
  (void)s;
  if (end == 0)
    toed_ctl_on_sock_event(&C, user, events);
}

static void consume(void)
{
  struct toe_abi_cqe c;
  while (toe_ring_consume(&A.cq, &c, 1) == 1) {
    if (c.type != TOE_ABI_CQE_OP || c.opcode > TOE_ABI_OP_CAPTURE)
      continue;
    R[c.opcode].done = true;
    R[c.opcode].res = c.res;
    R[c.opcode].handle = c.handle;
    if (c.opcode == TOE_ABI_OP_SHARE)
      R[c.opcode].token = c.u.share.token;
  }
}

/* One millisecond of the virtual clock: the engines, the client's doorbell, toed's timers. */
static void step(void)
{
  e2e_step(&L, L.now + TOE_MSEC(1));
  toed_ctl_on_epoll(&C, ctl_tag(0, 1, CTL_TAG_KICK), EPOLLIN, L.now);
  toed_ctl_run(&C, L.now);
  consume();
}

/* Submits `e` and runs until it completes; returns its result. */
static int op(struct toe_abi_sqe *e)
{
  R[e->opcode].done = false;
  CHECK_EQ(toe_ring_prod_write(&A.sq, e, 1), 1);
  toe_ring_publish(&A.sq);
  uint64_t one = 1;
  CHECK(write(A.kick, &one, sizeof one) == (ssize_t)sizeof one);
  for (int i = 0; i < 50 && !R[e->opcode].done; i++)
    step();
  CHECK(R[e->opcode].done);
  return R[e->opcode].res;
}

static uint32_t open_udp(void)
{
  struct toe_abi_sqe e;
  memset(&e, 0, sizeof e);
  e.opcode = TOE_ABI_OP_OPEN;
  e.u.open.family = TOE_ABI_AF_INET;
  e.u.open.proto = TOE_ABI_PROTO_UDP;
  CHECK_EQ(op(&e), 0);
  return R[TOE_ABI_OP_OPEN].handle;
}

static int bind_port(uint32_t h)
{
  struct toe_abi_sqe e;
  memset(&e, 0, sizeof e);
  e.opcode = TOE_ABI_OP_BIND;
  e.handle = h;
  e.u.addr.addr.family = TOE_ABI_AF_INET;
  e.u.addr.addr.port = PORT;
  return op(&e);
}

/* Delivers toed's pidfd events waiting in its epoll set (as toed's main loop does). */
static int deliver_pidfd_events(int epfd)
{
  struct epoll_event ev[8];
  int n = epoll_wait(epfd, ev, 8, 0), got = 0;
  for (int i = 0; i < n; i++) {
    if (toed_ctl_is_tag(ev[i].data.u64) && (ev[i].data.u64 & 3u) == CTL_TAG_PIDFD) {
      toed_ctl_on_epoll(&C, ev[i].data.u64, ev[i].events, L.now);
      got++;
    }
  }
  return got;
}

/* The whole story, with pidfd_open replaced by `pidfd` (NULL: the system call). */
static void token_outlives_no_process(int (*pidfd)(pid_t), const char *who)
{
  memset(R, 0, sizeof R);
  memset(&A, 0, sizeof A);
  fake_calls = 0;
  e2e_init(&L, NULL, NULL, 11, TOE_SEC(1));
  L.on_event = on_event;
  static struct ctl_host_server srv; /* its path must outlive the control socket */
  char err[256];
  int rc = ctl_host_listen_with(&C, L.end[0].st, who, 1000, 2, pidfd, &srv, err, sizeof err);
  if (rc < 0)
    fprintf(stderr, "toed_ctl_open: %s\n", err);
  REQUIRE(rc == 0);
  struct toe_abi_hello h;
  ctl_host_hello(&h, TOE_ABI_CAPS_1_2, 16, "test_share");
  rc = ctl_host_attach(&A, &C, srv.path, &h, L.now, err, sizeof err);
  if (rc != 0)
    fprintf(stderr, "attach: %s\n", err);
  REQUIRE(rc == 0);
  step();

  /* A UDP socket on PORT, shared; the token bound to a child that lives until told. */
  uint32_t h1 = open_udp();
  CHECK_EQ(bind_port(h1), 0);
  struct toe_abi_sqe e;
  memset(&e, 0, sizeof e);
  e.opcode = TOE_ABI_OP_SHARE;
  e.handle = h1;
  CHECK_EQ(op(&e), 0);
  uint64_t token = R[TOE_ABI_OP_SHARE].token;
  CHECK(token != 0);
  int go[2];
  REQUIRE(pipe(go) == 0);
  pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    char b;
    close(go[1]);
    while (read(go[0], &b, 1) < 0 && errno == EINTR)
      ;
    _exit(0);
  }
  close(go[0]);
  memset(&e, 0, sizeof e);
  e.opcode = TOE_ABI_OP_ADOPT;
  e.u.adopt.token = token;
  e.u.adopt.adopt_flags = TOE_ABI_ADOPT_F_BIND;
  e.u.adopt.pid = (uint32_t)child;
  CHECK_EQ(op(&e), 0);
  CHECK_EQ(fake_calls, pidfd ? 1 : 0);
  memset(&e, 0, sizeof e);
  e.opcode = TOE_ABI_OP_CLOSE;
  e.handle = h1;
  CHECK_EQ(op(&e), 0);
  CHECK_EQ(C.dev.tokens_live, 1u);

  /* The child lives: the token keeps the port, looked at once per poll period (polled watch),
   * or never (pidfd watch). */
  uint32_t h2 = open_udp();
  CHECK_EQ(bind_port(h2), -TOE_EADDRINUSE);
  uint64_t polls0 = C.dev.stats.share_pid_polls;
  uint64_t expired0 = C.dev.stats.share_expired;
  toe_time_t t_live = L.now;
  for (int i = 0; i < 350; i++)
    step();
  uint64_t polls = C.dev.stats.share_pid_polls - polls0;
  fprintf(stderr, "# %s: %llu looks at the live process in %llu ms\n", who,
          (unsigned long long)polls, (unsigned long long)((L.now - t_live) / TOE_MSEC(1)));
  if (pidfd) {
    CHECK(polls >= 3 && polls <= 4); /* one per CTL_TOKEN_PID_CHECK_NS of 350 ms */
  } else {
    CHECK_EQ(polls, 0u);
  }
  CHECK_EQ(C.dev.stats.share_expired, expired0);
  CHECK_EQ(C.dev.tokens_live, 1u);
  CHECK_EQ(deliver_pidfd_events(srv.epfd), 0);

  /* The child exits (and stays a zombie: waitid with WNOWAIT waits for the exit only). */
  close(go[1]);
  siginfo_t si;
  memset(&si, 0, sizeof si);
  CHECK_EQ(waitid(P_PID, (id_t)child, &si, WEXITED | WNOWAIT), 0);
  toe_time_t t_exit = L.now;
  if (pidfd) {
    /* Polled: freed at the next look, within one poll period of the virtual clock. */
    while (C.dev.tokens_live && L.now - t_exit <= CTL_TOKEN_PID_CHECK_NS + TOE_MSEC(5))
      step();
    fprintf(stderr, "# %s: token freed %llu ms after the exit\n", who,
            (unsigned long long)((L.now - t_exit) / TOE_MSEC(1)));
    CHECK(L.now - t_exit <= CTL_TOKEN_PID_CHECK_NS);
    CHECK_EQ(C.dev.stats.share_pidfd_exits, 0u);
  } else {
    /* pidfd: the exit itself wakes toed (the pidfd polls readable), no time passes. */
    CHECK_EQ(deliver_pidfd_events(srv.epfd), 1);
    CHECK_EQ(L.now, t_exit);
    CHECK_EQ(C.dev.stats.share_pidfd_exits, 1u);
  }
  CHECK_EQ(C.dev.tokens_live, 0u);
  CHECK_EQ(C.dev.stats.share_expired, expired0 + 1);
  CHECK_EQ(bind_port(h2), 0); /* the port is free again */

  CHECK_EQ(waitpid(child, NULL, 0), child);
  toed_ctl_close(&C);
  ctl_host_detach(&A);
  close(srv.epfd);
  e2e_fini(&L);
}

TEST(no_pidfd_open_exited_owner_freed_within_the_poll_period)
{
  token_outlives_no_process(no_pidfd, "share-nopidfd");
}

TEST(pidfd_open_exited_owner_freed_at_the_exit)
{
  token_outlives_no_process(NULL, "share-pidfd");
}

TEST_MAIN()
