/*
 * ABI 1.7 (TOE_ABI_CAP_IPV6) in toed's session code (src/device/session/), driven in-process on
 * a virtual clock as test_ctl_session.c does: the device engine is end 0 of an engine-to-engine
 * link (2001:db8::1 and 198.18.0.1), a second engine at end 1 (2001:db8::2, 198.18.0.2) is the
 * peer, and this test is the host client speaking the transport ABI over the real control socket
 * and shared region.
 *
 * Covered: a client that did not offer the capability gets -EAFNOSUPPORT for an AF_INET6 OPEN
 * and its AF_INET sockets work as before, as does a 1.7 client of a device without IPv6; an
 * AF_INET6 UDP socket bound to [::] receives an IPv6 datagram with its IPv6 sender, answers it (the
 * peer sees the device's IPv6 address and port), receives an IPv4 datagram with the v4-mapped
 * sender (dual-stack, as Linux), and its rx_meta record is AF_INET6 (the v4-mapped destination for
 * IPv4, no destination for IPv6); STATS SOCKET names it [::]:port; IPV6_V6ONLY is refused on
 * AF_INET sockets and once bound; an AF_INET6 TCP listener on [::] accepts an IPv4 peer as an
 * AF_INET6 connection with a v4-mapped peer address and carries its data.
 */
#define _GNU_SOURCE

#include "ctl_host.h"
#include "device/ctl_server.h"
#include "e2e_link.h"
#include "testlib.h"
#include "toe/abi.h"
#include "toe/tcp.h"
#include "transport/abi_validate.h"
#include "transport/ring.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#define SEND_BUF 63 /* the one buffer the host keeps for its SENDs */

static struct e2e_link L;
static struct toed_ctl C;

static const uint8_t DEV6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
static const uint8_t PEER6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
static const uint8_t MAPPED_PEER4[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 18, 0, 2};
static const uint8_t MAPPED_DEV4[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 18, 0, 1};

static struct {
  struct ctl_host abi;
  struct toe_abi_cqe data[16]; /* EV_DATA, in order */
  struct toe_abi_rx_meta meta[16];
  uint8_t first[16]; /* each one's first data byte */
  uint32_t ndata;
  struct toe_abi_cqe done; /* the completion op() waits for */
  bool have_done;
} H;

static void on_event(void *ctx, int end, struct toe_sock *s, void *user, uint32_t events)
{
  (void)ctx;
  (void)s;
  if (end == 0)
    toed_ctl_on_sock_event(&C, user, events);
}

static void step(void)
{
  e2e_step(&L, L.now + TOE_MSEC(1));
  toed_ctl_on_epoll(&C, ctl_tag(0, 1, CTL_TAG_KICK), EPOLLIN, L.now);
  toed_ctl_run(&C, L.now);
}

static void consume(uint64_t want)
{
  struct toe_abi_cqe c;
  while (toe_ring_consume(&H.abi.cq, &c, 1) == 1) {
    if (c.type == TOE_ABI_CQE_OP && c.user_data == want) {
      H.done = c;
      H.have_done = true;
    } else if (c.type == TOE_ABI_EV_DATA && H.ndata < 16) {
      const uint8_t *b =
          H.abi.region + H.abi.lay.buf_off + (uint64_t)c.u.data.buf_id * H.abi.lay.buf_size;
      H.data[H.ndata] = c;
      H.first[H.ndata] = c.u.data.len ? b[c.u.data.offset] : 0;
      memset(&H.meta[H.ndata], 0, sizeof(H.meta[0]));
      if ((c.flags & TOE_ABI_CQE_F_META) && c.u.data.offset >= TOE_ABI_RX_META_SIZE)
        memcpy(&H.meta[H.ndata], b + c.u.data.offset - TOE_ABI_RX_META_SIZE, sizeof(H.meta[0]));
      H.ndata++;
      CHECK(ctl_host_give_buf(&H.abi, c.u.data.buf_id));
    }
  }
}

/* Submits `e` and runs until its completion; returns it. */
static struct toe_abi_cqe op(struct toe_abi_sqe *e)
{
  static uint64_t seq = 100;
  e->user_data = ++seq;
  H.have_done = false;
  CHECK_EQ(toe_ring_prod_write(&H.abi.sq, e, 1), 1);
  toe_ring_publish(&H.abi.sq);
  uint64_t one = 1;
  CHECK(write(H.abi.kick, &one, sizeof one) == (ssize_t)sizeof one);
  for (int i = 0; i < 200 && !H.have_done; i++) {
    step();
    consume(e->user_data);
  }
  CHECK(H.have_done);
  if (!H.have_done)
    H.done.res = -TOE_ETIMEDOUT; /* no completion: every caller's check of res fails */
  return H.done;
}

static struct toe_abi_cqe open_sock(uint16_t family, uint8_t proto)
{
  struct toe_abi_sqe e;
  memset(&e, 0, sizeof e);
  e.opcode = TOE_ABI_OP_OPEN;
  e.u.open.family = family;
  e.u.open.proto = proto;
  return op(&e);
}

static struct toe_abi_sockaddr sa6(const uint8_t a[16], uint16_t port)
{
  struct toe_abi_sockaddr s;
  memset(&s, 0, sizeof s);
  s.family = TOE_ABI_AF_INET6;
  s.port = port;
  memcpy(s.addr, a, 16);
  return s;
}

static struct toe_abi_cqe addr_op(uint8_t opcode, uint32_t h, struct toe_abi_sockaddr a)
{
  struct toe_abi_sqe e;
  memset(&e, 0, sizeof e);
  e.opcode = opcode;
  e.handle = h;
  e.u.addr.addr = a;
  return op(&e);
}

static struct toe_abi_cqe sockopt(uint8_t opcode, uint32_t h, uint32_t opt, int64_t v)
{
  struct toe_abi_sqe e;
  memset(&e, 0, sizeof e);
  e.opcode = opcode;
  e.handle = h;
  e.u.sockopt.opt = opt;
  e.u.sockopt.value = v;
  return op(&e);
}

static struct ctl_host_server srv; /* its path must outlive the control socket */

static void setup_ip6(uint64_t caps, const char *who, bool ipv6)
{
  memset(&H, 0, sizeof H);
  struct toe_config cfg[2];
  for (int i = 0; i < 2; i++) {
    e2e_default_cfg(&cfg[i], i);
    cfg[i].ipv6 = ipv6;
    cfg[i].addr6_count = ipv6 ? 1 : 0; /* addresses without IPv6 on are a bad config */
    memcpy(cfg[i].addr6[0], i ? PEER6 : DEV6, 16);
    cfg[i].addr6_prefix_len[0] = 64;
    cfg[i].dad_transmits = 0; /* usable at once */
  }
  e2e_init(&L, &cfg[0], &cfg[1], 11, TOE_SEC(1));
  L.on_event = on_event;
  char err[256];
  int rc = ctl_host_listen(&C, L.end[0].st, who, 1000000, 2, &srv, err, sizeof err);
  if (rc < 0)
    fprintf(stderr, "toed_ctl_open: %s\n", err);
  REQUIRE(rc == 0);
  struct toe_abi_hello h;
  ctl_host_hello(&h, caps, 64, "test_v6");
  rc = ctl_host_attach(&H.abi, &C, srv.path, &h, L.now, err, sizeof err);
  if (rc != 0)
    fprintf(stderr, "attach: %s\n", err);
  REQUIRE(rc == 0);
  REQUIRE(H.abi.lay.buf_count > SEND_BUF);
  for (uint32_t i = 0; i < H.abi.lay.buf_count; i++)
    if (i != SEND_BUF)
      CHECK(ctl_host_give_buf(&H.abi, i));
  step();
}

static void setup(uint64_t caps, const char *who)
{
  setup_ip6(caps, who, true);
}

static void teardown(void)
{
  toed_ctl_close(&C);
  ctl_host_detach(&H.abi);
  close(srv.epfd);
  e2e_fini(&L);
}

/* Sends `len` bytes of `fill` on h to dst (UNSPEC: the connected peer) from SEND_BUF. */
static int send_op(uint32_t h, uint8_t fill, uint32_t len, struct toe_abi_sockaddr dst)
{
  uint64_t off = H.abi.lay.buf_off + (uint64_t)SEND_BUF * H.abi.lay.buf_size;
  memset(H.abi.region + off, fill, len);
  struct toe_abi_sqe e;
  memset(&e, 0, sizeof e);
  e.opcode = TOE_ABI_OP_SEND;
  e.handle = h;
  e.u.send.buf_off = off;
  e.u.send.len = len;
  e.u.send.dst = dst;
  return op(&e).res;
}

static void wait_data(uint32_t n)
{
  for (int i = 0; i < 200 && H.ndata < n; i++) {
    step();
    consume(0);
  }
  REQUIRE(H.ndata >= n);
}

TEST(old_client_gets_eafnosupport)
{
  setup(TOE_ABI_CAPS_1_6 & ~TOE_ABI_CAP_POSIX_BELLS, "test-ctl-v6-old");
  CHECK_EQ(H.abi.lay.buf_count > 0, 1);
  struct toe_abi_cqe c = open_sock(TOE_ABI_AF_INET6, TOE_ABI_PROTO_UDP);
  CHECK_EQ(c.res, -TOE_EAFNOSUPPORT);
  c = open_sock(TOE_ABI_AF_INET6, TOE_ABI_PROTO_TCP);
  CHECK_EQ(c.res, -TOE_EAFNOSUPPORT);
  /* Its IPv4 sockets work; an IPv6 address given to one is refused too. */
  c = open_sock(TOE_ABI_AF_INET, TOE_ABI_PROTO_UDP);
  CHECK_EQ(c.res, 0);
  uint32_t h = c.handle;
  c = addr_op(TOE_ABI_OP_BIND, h, sa6(DEV6, 7000));
  CHECK_EQ(c.res, -TOE_EAFNOSUPPORT);
  struct toe_abi_sockaddr a4;
  memset(&a4, 0, sizeof a4);
  a4.family = TOE_ABI_AF_INET;
  a4.port = 7000;
  c = addr_op(TOE_ABI_OP_BIND, h, a4);
  CHECK_EQ(c.res, 0);
  CHECK_EQ(c.u.addr.local.family, TOE_ABI_AF_INET);
  CHECK_EQ(c.u.addr.local.port, 7000);
  c = sockopt(TOE_ABI_OP_SETSOCKOPT, h, TOE_ABI_IPV6_V6ONLY, 1);
  CHECK_EQ(c.res, -TOE_ENOPROTOOPT);
  teardown();
}

/* A 1.7 client of a device that runs without IPv6 (toed without --addr6): AF_INET6 is refused
 * at OPEN, as socket(AF_INET6) on a host with IPv6 off; AF_INET still works. */
TEST(device_without_ipv6_refuses_af_inet6)
{
  setup_ip6(TOE_ABI_CAPS_1_7 & ~TOE_ABI_CAP_POSIX_BELLS, "test-ctl-v6-off", false);
  CHECK_EQ(open_sock(TOE_ABI_AF_INET6, TOE_ABI_PROTO_UDP).res, -TOE_EAFNOSUPPORT);
  CHECK_EQ(open_sock(TOE_ABI_AF_INET6, TOE_ABI_PROTO_TCP).res, -TOE_EAFNOSUPPORT);
  CHECK_EQ(open_sock(TOE_ABI_AF_INET, TOE_ABI_PROTO_UDP).res, 0);
  CHECK_EQ(C.dev.stats.socks_inuse, 1); /* the refused ones left nothing behind */
  teardown();
}

TEST(udp_v6_and_dual_stack)
{
  setup(TOE_ABI_CAPS_1_7 & ~TOE_ABI_CAP_POSIX_BELLS, "test-ctl-v6-udp");
  struct toe_abi_cqe c = open_sock(TOE_ABI_AF_INET6, TOE_ABI_PROTO_UDP);
  REQUIRE(c.res == 0);
  uint32_t h = c.handle;
  /* IPV6_V6ONLY may be read and set before bind; an AF_INET socket has no such option. */
  c = sockopt(TOE_ABI_OP_GETSOCKOPT, h, TOE_ABI_IPV6_V6ONLY, 0);
  CHECK_EQ(c.res, 0);
  CHECK_EQ(c.u.sockopt.value, 0); /* dual-stack by default, as Linux */
  struct toe_abi_cqe c4 = open_sock(TOE_ABI_AF_INET, TOE_ABI_PROTO_UDP);
  REQUIRE(c4.res == 0);
  CHECK_EQ(sockopt(TOE_ABI_OP_SETSOCKOPT, c4.handle, TOE_ABI_IPV6_V6ONLY, 1).res, -TOE_ENOPROTOOPT);
  /* An IPv4 address on the IPv6 socket: the family must be the socket's. */
  struct toe_abi_sockaddr a4;
  memset(&a4, 0, sizeof a4);
  a4.family = TOE_ABI_AF_INET;
  a4.port = 7000;
  CHECK_EQ(addr_op(TOE_ABI_OP_BIND, h, a4).res, -TOE_EAFNOSUPPORT);

  static const uint8_t any[16];
  c = addr_op(TOE_ABI_OP_BIND, h, sa6(any, 7000));
  CHECK_EQ(c.res, 0);
  CHECK_EQ(c.u.addr.local.family, TOE_ABI_AF_INET6);
  CHECK_EQ(c.u.addr.local.port, 7000);
  CHECK_MEM(c.u.addr.local.addr, any, 16);
  CHECK_EQ(sockopt(TOE_ABI_OP_SETSOCKOPT, h, TOE_ABI_IPV6_V6ONLY, 1).res, -TOE_EINVAL);
  CHECK_EQ(sockopt(TOE_ABI_OP_SETSOCKOPT, h, TOE_ABI_SO_RXMETA, 1).res, 0);

  /* STATS SOCKET names it [::]:7000. */
  uint64_t off = H.abi.lay.buf_off + (uint64_t)SEND_BUF * H.abi.lay.buf_size;
  struct toe_abi_sqe e;
  memset(&e, 0, sizeof e);
  e.opcode = TOE_ABI_OP_STATS;
  e.handle = h;
  e.u.stats.kind = TOE_ABI_STATS_SOCKET;
  e.u.stats.len = sizeof(struct toe_abi_sock_stats);
  e.u.stats.buf_off = off;
  c = op(&e);
  CHECK_EQ(c.res, (int)sizeof(struct toe_abi_sock_stats));
  struct toe_abi_sock_stats ss;
  memcpy(&ss, H.abi.region + off, sizeof ss);
  CHECK_EQ(ss.local.family, TOE_ABI_AF_INET6);
  CHECK_EQ(ss.local.port, 7000);

  /* The peer sends over IPv6: the sender is its IPv6 address and port. */
  struct toe_stack *st1 = L.end[1].st;
  struct toe_sock *p6 = NULL;
  REQUIRE(toe_udp_open(st1, NULL, &p6) == 0);
  struct toe_sockaddr to6 = {.family = TOE_AF_INET6, .port = 7000};
  memcpy(to6.addr6, DEV6, 16);
  CHECK_EQ(toe_udp_sendto(st1, p6, "six", 3, &to6), 3);
  wait_data(1);
  const struct toe_abi_sockaddr *from = &H.data[0].u.data.from;
  CHECK_EQ(from->family, TOE_ABI_AF_INET6);
  CHECK_MEM(from->addr, PEER6, 16);
  CHECK(from->port != 0);
  CHECK_EQ(H.data[0].u.data.len, 3);
  CHECK_EQ(H.first[0], 's');
  CHECK_EQ(H.meta[0].family, TOE_ABI_AF_INET6);
  CHECK_EQ(H.meta[0].flags & TOE_ABI_RX_META_F_DST, 0); /* the engine keeps no IPv6 destination */
  CHECK(H.meta[0].flags & TOE_ABI_RX_META_F_TIME);

  /* The answer goes back to that address; the peer sees the device's IPv6 address. */
  CHECK_EQ(send_op(h, 'r', 5, *from), 5);
  for (int i = 0; i < 20; i++)
    step();
  uint8_t buf[16];
  struct toe_sockaddr src;
  memset(&src, 0, sizeof src);
  CHECK_EQ(toe_udp_recvfrom(st1, p6, buf, sizeof buf, &src), 5);
  CHECK_EQ(buf[0], 'r');
  CHECK_EQ(src.family, TOE_AF_INET6);
  CHECK_EQ(src.port, 7000);
  CHECK_MEM(src.addr6, DEV6, 16);

  /* IPv4 to the dual-stack socket: a v4-mapped sender and destination. */
  struct toe_sock *p4 = NULL;
  REQUIRE(toe_udp_open(st1, NULL, &p4) == 0);
  struct toe_sockaddr to4 = {.family = TOE_AF_INET, .port = 7000, .addr = E2E_IP0};
  CHECK_EQ(toe_udp_sendto(st1, p4, "four", 4, &to4), 4);
  wait_data(2);
  from = &H.data[1].u.data.from;
  CHECK_EQ(from->family, TOE_ABI_AF_INET6);
  CHECK_MEM(from->addr, MAPPED_PEER4, 16);
  CHECK_EQ(H.first[1], 'f');
  CHECK_EQ(H.meta[1].family, TOE_ABI_AF_INET6);
  CHECK(H.meta[1].flags & TOE_ABI_RX_META_F_DST);
  CHECK_MEM(H.meta[1].dst, MAPPED_DEV4, 16);
  /* and the answer to the v4-mapped sender leaves as IPv4 */
  CHECK_EQ(send_op(h, 'q', 2, *from), 2);
  for (int i = 0; i < 20; i++)
    step();
  memset(&src, 0, sizeof src);
  CHECK_EQ(toe_udp_recvfrom(st1, p4, buf, sizeof buf, &src), 2);
  CHECK_EQ(buf[0], 'q');
  CHECK_EQ(src.family, TOE_AF_INET);
  CHECK_EQ(src.addr, E2E_IP0);
  toe_sock_close(st1, p6);
  toe_sock_close(st1, p4);
  teardown();
}

TEST(tcp_dual_stack_listener_accepts_ipv4_as_mapped)
{
  setup(TOE_ABI_CAPS_1_7 & ~TOE_ABI_CAP_POSIX_BELLS, "test-ctl-v6-tcp");
  struct toe_abi_cqe c = open_sock(TOE_ABI_AF_INET6, TOE_ABI_PROTO_TCP);
  REQUIRE(c.res == 0);
  uint32_t lh = c.handle;
  static const uint8_t any[16];
  CHECK_EQ(addr_op(TOE_ABI_OP_BIND, lh, sa6(any, 8080)).res, 0);
  struct toe_abi_sqe e;
  memset(&e, 0, sizeof e);
  e.opcode = TOE_ABI_OP_LISTEN;
  e.handle = lh;
  e.u.listen.backlog = 4;
  CHECK_EQ(op(&e).res, 0);

  struct toe_stack *st1 = L.end[1].st;
  struct toe_sock *p = NULL;
  REQUIRE(toe_tcp_open(st1, NULL, &p) == 0);
  struct toe_sockaddr to4 = {.family = TOE_AF_INET, .port = 8080, .addr = E2E_IP0};
  int rc = toe_sock_connect(st1, p, &to4);
  CHECK(rc == 0 || rc == -TOE_EINPROGRESS);

  memset(&e, 0, sizeof e);
  e.opcode = TOE_ABI_OP_ACCEPT;
  e.handle = lh;
  c = op(&e);
  REQUIRE(c.res == 0);
  uint32_t ch = c.u.accept.handle;
  CHECK_EQ(c.u.accept.peer.family, TOE_ABI_AF_INET6);
  CHECK_MEM(c.u.accept.peer.addr, MAPPED_PEER4, 16);
  struct toe_sockaddr pl;
  toe_sock_name(p, &pl, NULL);
  CHECK_EQ(c.u.accept.peer.port, pl.port);

  /* The connection carries data both ways. */
  CHECK_EQ(toe_tcp_send(st1, p, "hello", 5, 0), 5);
  wait_data(1);
  CHECK_EQ(H.data[0].u.data.len, 5);
  CHECK_EQ(H.first[0], 'h');
  struct toe_abi_sockaddr none;
  memset(&none, 0, sizeof none);
  CHECK_EQ(send_op(ch, 'w', 7, none), 7);
  for (int i = 0; i < 20; i++)
    step();
  uint8_t buf[16];
  CHECK_EQ(toe_tcp_recv(st1, p, buf, sizeof buf), 7);
  CHECK_EQ(buf[0], 'w');
  toe_tcp_abort(st1, p);
  teardown();
}

/* TCP over IPv6 (the engine carries it): an AF_INET6 connect to the peer's IPv6 listener, the
 * local address the device's IPv6 one, data both ways. */
TEST(tcp_over_ipv6_connect)
{
  setup(TOE_ABI_CAPS_1_7 & ~TOE_ABI_CAP_POSIX_BELLS, "test-ctl-v6-tcp6");
  struct toe_stack *st1 = L.end[1].st;
  struct toe_sock *ls = NULL, *p = NULL;
  REQUIRE(toe_tcp_open(st1, NULL, &ls) == 0);
  struct toe_sockaddr la = {.family = TOE_AF_INET6, .port = 9000};
  CHECK_EQ(toe_sock_bind(st1, ls, &la), 0);
  CHECK_EQ(toe_tcp_listen(st1, ls, 4), 0);

  struct toe_abi_cqe c = open_sock(TOE_ABI_AF_INET6, TOE_ABI_PROTO_TCP);
  REQUIRE(c.res == 0);
  uint32_t h = c.handle;
  c = addr_op(TOE_ABI_OP_CONNECT, h, sa6(PEER6, 9000));
  CHECK_EQ(c.res, 0);
  CHECK_EQ(c.u.addr.local.family, TOE_ABI_AF_INET6);
  CHECK_MEM(c.u.addr.local.addr, DEV6, 16);
  CHECK(c.u.addr.local.port != 0);
  for (int i = 0; i < 20 && toe_tcp_accept(st1, ls, NULL, &p) != 0; i++)
    step();
  REQUIRE(p != NULL);
  struct toe_sockaddr pr;
  toe_sock_name(p, NULL, &pr);
  CHECK_EQ(pr.family, TOE_AF_INET6);
  CHECK_MEM(pr.addr6, DEV6, 16);
  CHECK_EQ(pr.port, c.u.addr.local.port);

  struct toe_abi_sockaddr none;
  memset(&none, 0, sizeof none);
  CHECK_EQ(send_op(h, 'x', 9, none), 9);
  for (int i = 0; i < 20; i++)
    step();
  uint8_t buf[16];
  CHECK_EQ(toe_tcp_recv(st1, p, buf, sizeof buf), 9);
  CHECK_EQ(buf[0], 'x');
  CHECK_EQ(toe_tcp_send(st1, p, "back", 4, 0), 4);
  wait_data(1);
  CHECK_EQ(H.data[0].u.data.len, 4);
  CHECK_EQ(H.first[0], 'b');
  toe_tcp_abort(st1, p);
  toe_sock_close(st1, ls);
  teardown();
}

TEST_MAIN()
