/*
 * The hello deadline of toed's control socket (src/device/ctl_server.c, docs/transport.md
 * "Session setup on Linux"), on a virtual clock: toed's side is driven here as its epoll loop
 * would drive it, over a real control socket, against the device engine of an engine-to-engine
 * link (e2e_link.c) whose clock the test moves.
 *
 *  - a client that connects and says nothing keeps its connection until the deadline (2 s after
 *    toed accepted it), is dropped at it (its socket reads the end of the stream) and counted in
 *    transport.hello_timeouts;
 *  - a client that sent its hello in time, while toed was busy and did not read it (no epoll
 *    event handled for it before the deadline), is served at the deadline, not dropped, and not
 *    counted: the deadline is the client's to send, not toed's to read;
 *  - a client that closes its connection without a hello before the deadline is not counted as
 *    a timeout either.
 */
#define _GNU_SOURCE

#include "ctl_host.h"
#include "device/ctl_server.h"
#include "e2e_link.h"
#include "testlib.h"
#include "toe/abi.h"
#include "transport/abi_validate.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define HELLO_DEADLINE TOE_SEC(2) /* ctl_server.c HELLO_TIMEOUT: the documented 2 s */

static struct e2e_link L;
static struct toed_ctl C;
static struct ctl_host_server srv; /* its path must outlive the control socket */

static void server_open(void)
{
  e2e_init(&L, NULL, NULL, 11, TOE_SEC(1));
  char err[256];
  int rc = ctl_host_listen(&C, L.end[0].st, "test-hello", 1000000, 4, &srv, err, sizeof err);
  if (rc < 0)
    fprintf(stderr, "toed_ctl_open: %s\n", err);
  REQUIRE(rc == 0);
}

static void server_close(void)
{
  toed_ctl_close(&C);
  close(srv.epfd);
  e2e_fini(&L);
}

/* A client's connection to the control socket (toed has not accepted it yet) into *out. */
static void client_connect(int *out)
{
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  *out = fd;
  REQUIRE(fd >= 0);
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", srv.path);
  REQUIRE(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
}

/* toed's loop at virtual time `now`: the listening socket's event (accepts what waits), then its
 * timed work. Returns nothing; the connection's fate is read from the client's side. */
static void toed_accept(toe_time_t now)
{
  toed_ctl_on_epoll(&C, ctl_tag(0, 0, CTL_TAG_LISTEN), EPOLLIN, now);
}

static void toed_run(toe_time_t now)
{
  e2e_run_until(&L, now); /* the engine's clock with toed's */
  toed_ctl_run(&C, now);
}

/* What the client's end reads now, without waiting: 1 a message (the reply, into *rep if given),
 * 0 the end of the stream (toed dropped it), -EAGAIN nothing yet. */
static int client_reads(int fd, struct toe_abi_hello_reply *rep)
{
  union {
    struct toe_abi_hello_reply r;
    uint8_t b[4096];
  } buf;
  union {
    char b[CMSG_SPACE(sizeof(int) * TOE_ABI_FD_MAX)];
    struct cmsghdr align;
  } cbuf;
  struct iovec iov = {buf.b, sizeof buf.b};
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = cbuf.b;
  msg.msg_controllen = sizeof cbuf.b;
  ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  if (n < 0)
    return errno == EAGAIN || errno == EWOULDBLOCK ? -EAGAIN : -errno;
  if (msg.msg_controllen >= sizeof(struct cmsghdr)) { /* the session's descriptors: not kept */
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
      size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < k; i++) {
        int pfd;
        memcpy(&pfd, CMSG_DATA(cm) + i * sizeof(int), sizeof pfd);
        close(pfd);
      }
    }
  }
  if (n == 0)
    return 0;
  if (rep)
    memcpy(rep, buf.b, sizeof *rep);
  return 1;
}

TEST(silent_client_dropped_at_the_deadline_and_counted)
{
  server_open();
  toe_time_t t0 = L.now;
  int fd;
  client_connect(&fd);
  toed_accept(t0);
  CHECK_EQ(C.dev.stats.connects, 1u);

  /* Just before the deadline: still connected, nothing said either way. */
  toed_run(t0 + HELLO_DEADLINE - TOE_MSEC(1));
  CHECK_EQ(client_reads(fd, NULL), -EAGAIN);
  CHECK_EQ(C.dev.stats.hello_timeouts, 0u);

  /* At the deadline: dropped (the client reads the end of the stream) and counted once. */
  toed_run(t0 + HELLO_DEADLINE);
  CHECK_EQ(client_reads(fd, NULL), 0);
  CHECK_EQ(C.dev.stats.hello_timeouts, 1u);
  CHECK_EQ(C.dev.stats.sessions, 0u);

  /* Later rounds count nothing more: the slot is free again. */
  toed_run(t0 + 2 * HELLO_DEADLINE);
  CHECK_EQ(C.dev.stats.hello_timeouts, 1u);
  close(fd);
  server_close();
}

TEST(hello_sent_in_time_but_unread_is_served_at_the_deadline)
{
  server_open();
  toe_time_t t0 = L.now;
  int fd;
  client_connect(&fd);
  toed_accept(t0);
  /* The client says hello at once; toed, busy, handles no event for its socket. */
  struct toe_abi_hello h;
  ctl_host_hello(&h, TOE_ABI_CAPS_1_0, 4, "test-hello");
  REQUIRE(send(fd, &h, sizeof h, 0) == (ssize_t)sizeof h);
  toed_run(t0 + TOE_SEC(1));
  CHECK_EQ(client_reads(fd, NULL), -EAGAIN); /* not read yet: the reply is still to come */

  /* At the deadline toed finds the hello waiting: it answers it instead of dropping. */
  toed_run(t0 + HELLO_DEADLINE);
  struct toe_abi_hello_reply rep;
  memset(&rep, 0, sizeof rep);
  CHECK_EQ(client_reads(fd, &rep), 1);
  CHECK_EQ(rep.magic, TOE_ABI_REPLY_MAGIC);
  CHECK_EQ(rep.status, 0);
  CHECK_EQ(toe_abi_reply_check(&rep, sizeof rep, TOE_ABI_CAPS_1_0), 0);
  CHECK_EQ(C.dev.stats.hello_timeouts, 0u);
  CHECK_EQ(C.dev.stats.sessions, 1u);
  CHECK_EQ(C.dev.stats.clients_attached, 1u);

  /* The session outlives the deadline: later rounds leave it running. */
  toed_run(t0 + 3 * HELLO_DEADLINE);
  CHECK_EQ(client_reads(fd, NULL), -EAGAIN);
  CHECK_EQ(C.dev.stats.hello_timeouts, 0u);
  close(fd);
  server_close();
}

TEST(client_gone_before_the_deadline_is_no_timeout)
{
  server_open();
  toe_time_t t0 = L.now;
  int fd;
  client_connect(&fd);
  toed_accept(t0);
  close(fd); /* the end of the stream, unread by a busy toed until the deadline */
  toed_run(t0 + HELLO_DEADLINE);
  CHECK_EQ(C.dev.stats.hello_timeouts, 0u);
  CHECK_EQ(C.dev.stats.sessions, 0u);
  /* Its slot is free: a new silent client is the one counted. */
  int fd2;
  client_connect(&fd2);
  toed_accept(t0 + HELLO_DEADLINE);
  toed_run(t0 + 2 * HELLO_DEADLINE);
  CHECK_EQ(client_reads(fd2, NULL), 0);
  CHECK_EQ(C.dev.stats.hello_timeouts, 1u);
  close(fd2);
  server_close();
}

TEST_MAIN()
