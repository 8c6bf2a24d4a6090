/*
 * The TCP socket API (include/toe/tcp.h) seen by an application: error codes of every call in
 * every state, events, options, connection information, close/abort/shutdown, and the receive
 * buffer's auto-tuning. The peer is the scripted one of tcp_harness.h; what we send is checked on
 * the captured frames.
 */
#include "engine/stack.h"
#include "engine/tcp.h"
#include "harness.h"
#include "tcp_harness.h"
#include "testlib.h"

#include <string.h>

static struct harness h; /* big: keep it off the stack */

static const struct toe_counters_tcp *tc(void)
{
  return &toe_stack_counters(h.st)->tcp;
}

static struct toe_sockaddr sa(uint32_t addr, uint16_t port)
{
  struct toe_sockaddr a = {.family = TOE_AF_INET, .port = port, .addr = addr};
  return a;
}

/* Events with any bit of `mask` reported for `s` since the last h_clear. */
static int events(const struct toe_sock *s, uint32_t mask)
{
  int n = 0;
  for (int i = 0; i < h.nev; i++)
    if (h.ev[i].sock == s && (h.ev[i].events & mask))
      n++;
  return n;
}

static struct toe_sock *open_sock(void)
{
  struct toe_sock *s = NULL;
  if (toe_tcp_open(h.st, NULL, &s) != 0)
    return NULL;
  return s;
}

/* An established connection with the scripted peer (our active open). */
static int established(struct h_conn *c, uint16_t pport)
{
  h_conn_init(c, &h, pport);
  return h_conn_connect(c, 0);
}

TEST(open_until_emfile_and_close_frees_slot)
{
  struct toe_config cfg;
  h_default_cfg(&cfg);
  cfg.tcp_socks = 3;
  h_init_cfg(&h, &cfg);
  struct toe_sock *s[4] = {0};
  for (int i = 0; i < 3; i++)
    CHECK_EQ(toe_tcp_open(h.st, NULL, &s[i]), 0);
  CHECK_EQ(tc()->socks_inuse, 3);
  CHECK_EQ(toe_tcp_open(h.st, NULL, &s[3]), -TOE_EMFILE);
  toe_sock_close(h.st, s[1]);
  CHECK_EQ(tc()->socks_inuse, 2);
  CHECK_EQ(toe_tcp_open(h.st, NULL, &s[3]), 0);
  CHECK_EQ(toe_tcp_open(h.st, NULL, NULL), -TOE_EINVAL);
  h_fini(&h);
}

TEST(bind_errors)
{
  h_init(&h);
  struct toe_sock *a = open_sock(), *b = open_sock();
  REQUIRE(a && b);
  struct toe_sockaddr l = sa(0, 8080);
  struct toe_sockaddr bad = {.family = 99, .port = 8080, .addr = 0};
  CHECK_EQ(toe_sock_bind(h.st, a, &bad), -TOE_EINVAL);
  CHECK_EQ(toe_sock_bind(h.st, a, NULL), -TOE_EINVAL);
  struct toe_sockaddr notours = sa(H_PEER_IP, 8080);
  CHECK_EQ(toe_sock_bind(h.st, a, &notours), -TOE_EADDRNOTAVAIL);
  CHECK_EQ(toe_sock_bind(h.st, a, &l), 0);
  CHECK_EQ(toe_sock_bind(h.st, a, &l), -TOE_EINVAL); /* already bound */
  CHECK_EQ(toe_sock_bind(h.st, b, &l), -TOE_EADDRINUSE);
  struct toe_sockaddr ours = sa(H_OUR_IP, 8080);
  CHECK_EQ(toe_sock_bind(h.st, b, &ours), -TOE_EADDRINUSE); /* "any" holds every address */
  /* a UDP socket on the same port is another protocol's port */
  struct toe_sock *u = NULL;
  REQUIRE(toe_udp_open(h.st, NULL, &u) == 0);
  CHECK_EQ(toe_sock_bind(h.st, u, &l), 0);
  /* port 0 picks an ephemeral port from the configured range */
  struct toe_sockaddr any = sa(0, 0);
  CHECK_EQ(toe_sock_bind(h.st, b, &any), 0);
  struct toe_sockaddr name;
  CHECK_EQ(toe_sock_name(b, &name, NULL), 0);
  CHECK(name.port >= h.cfg.ephemeral_lo && name.port <= h.cfg.ephemeral_hi);
  /* closing frees the port */
  toe_sock_close(h.st, a);
  struct toe_sock *c = open_sock();
  CHECK_EQ(toe_sock_bind(h.st, c, &l), 0);
  h_fini(&h);
}

TEST(connect_errors)
{
  h_init(&h);
  h_learn_peer(&h);
  struct toe_sock *s = open_sock();
  REQUIRE(s);
  struct toe_sockaddr zero_addr = sa(0, 80), zero_port = sa(H_PEER_IP, 0);
  struct toe_sockaddr bad_family = {.family = 7, .port = 80, .addr = H_PEER_IP};
  CHECK_EQ(toe_sock_connect(h.st, s, &zero_addr), -TOE_EINVAL);
  CHECK_EQ(toe_sock_connect(h.st, s, &zero_port), -TOE_EINVAL);
  CHECK_EQ(toe_sock_connect(h.st, s, &bad_family), -TOE_EINVAL);
  CHECK_EQ(toe_sock_connect(h.st, s, NULL), -TOE_EINVAL);
  struct toe_sockaddr self = sa(H_OUR_IP, 80);
  CHECK_EQ(toe_sock_connect(h.st, s, &self), -TOE_EINVAL); /* no loopback path */
  struct toe_sockaddr bcast = sa(0xc61200ffu, 80), limited = sa(0xffffffffu, 80);
  struct toe_sockaddr mcast = sa(0xe0000001u, 80);
  CHECK_EQ(toe_sock_connect(h.st, s, &bcast), -TOE_ENETUNREACH);
  CHECK_EQ(toe_sock_connect(h.st, s, &limited), -TOE_ENETUNREACH);
  CHECK_EQ(toe_sock_connect(h.st, s, &mcast), -TOE_ENETUNREACH);
  struct toe_sockaddr offlink = sa(0xc6130001u, 80); /* 198.19.0.1, no gateway configured */
  CHECK_EQ(toe_sock_connect(h.st, s, &offlink), -TOE_ENETUNREACH);
  CHECK_EQ(h_tcp_count(&h), 0); /* none of that sent anything */

  struct toe_sockaddr peer = sa(H_PEER_IP, 80);
  CHECK_EQ(toe_sock_connect(h.st, s, &peer), -TOE_EINPROGRESS);
  CHECK_EQ(tc()->active_opens, 1);
  CHECK_EQ(toe_sock_connect(h.st, s, &peer), -TOE_EALREADY);
  CHECK_EQ(toe_tcp_listen(h.st, s, 5), -TOE_EINVAL);
  /* the socket got an ephemeral port and our address */
  struct toe_sockaddr ln, rn;
  CHECK_EQ(toe_sock_name(s, &ln, &rn), 0);
  CHECK_EQ(ln.addr, H_OUR_IP);
  CHECK(ln.port >= h.cfg.ephemeral_lo);
  CHECK_EQ(rn.addr, H_PEER_IP);
  CHECK_EQ(rn.port, 80);

  /* a listener cannot connect */
  struct toe_sock *l = open_sock();
  struct toe_sockaddr lp = sa(0, 9000);
  REQUIRE(toe_sock_bind(h.st, l, &lp) == 0);
  REQUIRE(toe_tcp_listen(h.st, l, 4) == 0);
  CHECK_EQ(toe_sock_connect(h.st, l, &peer), -TOE_EISCONN);

  /* established: EISCONN */
  struct h_conn c;
  REQUIRE(established(&c, 5001) == 0);
  struct toe_sockaddr other = sa(H_PEER_IP, 5002);
  CHECK_EQ(toe_sock_connect(h.st, c.s, &other), -TOE_EISCONN);
  h_fini(&h);
}

TEST(connect_refused_reports_error_and_hup)
{
  h_init(&h);
  struct h_conn c;
  h_conn_init(&c, &h, 7000);
  struct toe_sock *s = NULL;
  REQUIRE(toe_tcp_open(h.st, &c, &s) == 0);
  struct toe_sockaddr peer = sa(H_PEER_IP, 7000);
  REQUIRE(toe_sock_connect(h.st, s, &peer) == -TOE_EINPROGRESS);
  c.s = s;
  struct h_tcp syn;
  REQUIRE(h_conn_last(&c, &syn));
  c.lport = syn.sport;
  /* RST,ACK acknowledging the SYN: refused */
  h_conn_send_raw(&c, 0, syn.seq + 1, H_RST | H_ACK, 0, NULL, NULL, 0);
  CHECK(events(s, TOE_EV_ERROR) >= 1);
  CHECK(events(s, TOE_EV_HUP) >= 1);
  CHECK_EQ(toe_tcb(s)->state, TOE_TCP_CLOSED);
  CHECK_EQ(toe_sock_error(h.st, s), -TOE_ECONNREFUSED);
  CHECK_EQ(toe_sock_error(h.st, s), 0); /* cleared once read */
  CHECK_EQ(tc()->attempt_fails, 1);
  /* never connected: send/recv say ENOTCONN; a second connect is not allowed on this socket */
  CHECK_EQ(toe_tcp_send(h.st, s, "x", 1, 0), -TOE_ENOTCONN);
  uint8_t b[4];
  CHECK_EQ(toe_tcp_recv(h.st, s, b, sizeof(b)), -TOE_ENOTCONN);
  CHECK_EQ(toe_sock_connect(h.st, s, &peer), -TOE_EISCONN);
  toe_sock_close(h.st, s);
  CHECK_EQ(tc()->socks_inuse, 0);
  h_fini(&h);
}

TEST(listen_and_accept_errors)
{
  h_init(&h);
  struct toe_sock *s = open_sock();
  REQUIRE(s);
  CHECK_EQ(toe_tcp_listen(h.st, s, 8), -TOE_EINVAL); /* not bound */
  struct toe_sock *out = NULL;
  CHECK_EQ(toe_tcp_accept(h.st, s, NULL, &out), -TOE_EINVAL); /* not a listener */
  struct toe_sockaddr l = sa(0, 7777);
  REQUIRE(toe_sock_bind(h.st, s, &l) == 0);
  CHECK_EQ(toe_tcp_listen(h.st, s, 100000), 0);
  CHECK_EQ(toe_tcb(s)->backlog, h.cfg.tcp_max_backlog); /* clamped */
  CHECK_EQ(toe_tcp_listen(h.st, s, -5), 0);
  CHECK_EQ(toe_tcb(s)->backlog, 1);
  CHECK_EQ(toe_tcp_accept(h.st, s, NULL, &out), -TOE_EAGAIN);
  CHECK_EQ(toe_tcp_accept(h.st, s, NULL, NULL), -TOE_EINVAL);
  uint8_t b[4];
  CHECK_EQ(toe_tcp_recv(h.st, s, b, sizeof(b)), -TOE_ENOTCONN);
  CHECK_EQ(toe_tcp_send(h.st, s, b, sizeof(b), 0), -TOE_ENOTCONN);
  CHECK_EQ(toe_tcp_shutdown(h.st, s, TOE_SHUT_WR), -TOE_ENOTCONN);
  h_fini(&h);
}

TEST(accept_gives_connection_with_user_pointer)
{
  h_init(&h);
  struct h_conn c;
  h_conn_init(&c, &h, 40001);
  REQUIRE(h_conn_accept(&c, 8081) == 0);
  CHECK_EQ(toe_tcb(c.s)->state, TOE_TCP_ESTABLISHED);
  CHECK(events(c.ls, TOE_EV_READABLE) >= 1);
  /* data that arrived while the connection waited is announced after accept */
  h_clear(&h);
  h_conn_send(&c, H_ACK | H_PSH, "hello", 5);
  CHECK(events(c.s, TOE_EV_READABLE) == 1);
  CHECK_EQ(h.ev[0].user, (void *)&c);
  char b[16];
  CHECK_EQ(toe_tcp_recv(h.st, c.s, b, sizeof(b)), 5);
  CHECK_MEM(b, "hello", 5);
  /* closing the listener leaves accepted connections alone */
  toe_sock_close(h.st, c.ls);
  CHECK_EQ(toe_tcb(c.s)->state, TOE_TCP_ESTABLISHED);
  h_fini(&h);
}

TEST(listener_close_resets_unaccepted_connections)
{
  h_init(&h);
  struct h_conn c;
  h_conn_init(&c, &h, 40002);
  struct toe_sock *ls = open_sock();
  struct toe_sockaddr l = sa(0, 8082);
  REQUIRE(toe_sock_bind(h.st, ls, &l) == 0);
  REQUIRE(toe_tcp_listen(h.st, ls, 4) == 0);
  c.ls = ls;
  c.lport = 8082;
  c.snd_nxt = c.irs;
  struct h_tcp_opt o = c.syn_opt;
  o.tsval = c.tsval++;
  h_conn_send_raw(&c, c.snd_nxt, 0, H_SYN, c.win, &o, NULL, 0);
  c.snd_nxt++;
  struct h_tcp sa_;
  REQUIRE(h_conn_last(&c, &sa_));
  c.rcv_nxt = sa_.seq + 1;
  c.ts = true;
  h_conn_send(&c, H_ACK, NULL, 0);
  CHECK_EQ(toe_tcb(ls)->acceptq_len, 1);
  CHECK_EQ(tc()->socks_inuse, 2);
  h_clear(&h);
  toe_sock_close(h.st, ls);
  struct h_tcp r;
  REQUIRE(h_conn_last(&c, &r));
  CHECK(r.flags & H_RST);
  CHECK_EQ(r.seq, sa_.seq + 1);
  CHECK_EQ(tc()->socks_inuse, 0);
  CHECK_EQ(h.nev, 0); /* nobody owned them: no events */
  h_fini(&h);
}

TEST(send_recv_errors_by_state)
{
  h_init(&h);
  uint8_t b[16];
  struct toe_sock *s = open_sock();
  CHECK_EQ(toe_tcp_send(h.st, s, "x", 1, 0), -TOE_ENOTCONN);
  CHECK_EQ(toe_tcp_recv(h.st, s, b, sizeof(b)), -TOE_ENOTCONN);
  CHECK_EQ(toe_tcp_send(h.st, s, NULL, 5, 0), -TOE_EINVAL);
  CHECK_EQ(toe_tcp_recv(h.st, s, NULL, 5), -TOE_EINVAL);
  CHECK_EQ(toe_tcp_shutdown(h.st, s, TOE_SHUT_WR), -TOE_ENOTCONN);
  h_learn_peer(&h);
  struct toe_sockaddr peer = sa(H_PEER_IP, 80);
  REQUIRE(toe_sock_connect(h.st, s, &peer) == -TOE_EINPROGRESS);
  /* SYN_SENT queues nothing */
  CHECK_EQ(toe_tcp_send(h.st, s, "x", 1, 0), -TOE_ENOTCONN);
  CHECK_EQ(toe_tcp_recv(h.st, s, b, sizeof(b)), -TOE_EAGAIN);
  CHECK_EQ(toe_tcp_tx_space(s), 0);

  struct h_conn c;
  REQUIRE(established(&c, 5003) == 0);
  CHECK_EQ(toe_tcp_recv(h.st, c.s, b, sizeof(b)), -TOE_EAGAIN);
  CHECK_EQ(toe_tcp_send(h.st, c.s, "abc", 0, 0), 0);
  CHECK(toe_tcp_tx_space(c.s) > 0);
  CHECK_EQ(toe_tcp_shutdown(h.st, c.s, 7), -TOE_EINVAL);
  /* shutdown(WR): a FIN, then EPIPE */
  CHECK_EQ(toe_tcp_shutdown(h.st, c.s, TOE_SHUT_WR), 0);
  struct h_tcp f;
  REQUIRE(h_conn_last(&c, &f));
  CHECK(f.flags & H_FIN);
  CHECK_EQ(toe_tcb(c.s)->state, TOE_TCP_FIN_WAIT_1);
  CHECK_EQ(toe_tcp_send(h.st, c.s, "x", 1, 0), -TOE_EPIPE);
  CHECK_EQ(toe_tcp_tx_space(c.s), 0);
  /* the other direction still works: half-close */
  c.rcv_nxt = f.seq + 1;
  h_conn_send(&c, H_ACK | H_PSH, "late", 4);
  CHECK_EQ(toe_tcp_recv(h.st, c.s, b, sizeof(b)), 4);
  CHECK_EQ(toe_tcb(c.s)->state, TOE_TCP_FIN_WAIT_2);
  h_fini(&h);
}

TEST(reset_connection_errors)
{
  h_init(&h);
  struct h_conn c;
  REQUIRE(established(&c, 5004) == 0);
  h_conn_send(&c, H_ACK | H_PSH, "data", 4);
  h_clear(&h);
  h_conn_send(&c, H_RST, NULL, 0);
  CHECK_EQ(toe_tcb(c.s)->state, TOE_TCP_CLOSED);
  CHECK(events(c.s, TOE_EV_ERROR) >= 1);
  CHECK(events(c.s, TOE_EV_HUP) >= 1);
  CHECK_EQ(tc()->estab_resets, 1);
  CHECK_EQ(tc()->curr_estab, 0);
  /* what arrived before the reset can still be read, then the reset shows */
  uint8_t b[16];
  CHECK_EQ(toe_tcp_recv(h.st, c.s, b, sizeof(b)), 4);
  CHECK_EQ(toe_tcp_recv(h.st, c.s, b, sizeof(b)), -TOE_ECONNRESET);
  CHECK_EQ(toe_tcp_send(h.st, c.s, "x", 1, 0), -TOE_ECONNRESET);
  CHECK_EQ(toe_sock_error(h.st, c.s), -TOE_ECONNRESET);
  int before = h.ntx;
  toe_sock_close(h.st, c.s);
  CHECK_EQ(h.ntx, before); /* nothing to say to a peer that reset */
  CHECK_EQ(tc()->socks_inuse, 0);
  h_fini(&h);
}

TEST(stale_and_foreign_handles)
{
  h_init(&h);
  struct toe_sock *s = open_sock();
  toe_sock_close(h.st, s);
  uint8_t b[4];
  CHECK_EQ(toe_tcp_send(h.st, s, "x", 1, 0), -TOE_EBADF);
  CHECK_EQ(toe_tcp_recv(h.st, s, b, 4), -TOE_EBADF);
  CHECK_EQ(toe_tcp_listen(h.st, s, 1), -TOE_EBADF);
  CHECK_EQ(toe_tcp_shutdown(h.st, s, TOE_SHUT_WR), -TOE_EBADF);
  struct toe_sockaddr l = sa(0, 1234);
  CHECK_EQ(toe_sock_bind(h.st, s, &l), -TOE_EBADF);
  CHECK_EQ(toe_sock_connect(h.st, s, &l), -TOE_EBADF);
  int64_t v;
  CHECK_EQ(toe_sock_setopt(h.st, s, TOE_TCP_NODELAY, 1), -TOE_EBADF);
  CHECK_EQ(toe_sock_getopt(h.st, s, TOE_TCP_NODELAY, &v), -TOE_EBADF);
  struct toe_tcp_info info;
  CHECK_EQ(toe_tcp_get_info(h.st, s, &info), -TOE_EBADF);
  CHECK_EQ(toe_tcp_send(h.st, NULL, "x", 1, 0), -TOE_EBADF);
  toe_tcp_abort(h.st, s); /* harmless */
  toe_sock_close(h.st, s);
  toe_tcp_abort(h.st, NULL);
  /* a UDP socket is not a TCP one */
  struct toe_sock *u = NULL;
  REQUIRE(toe_udp_open(h.st, NULL, &u) == 0);
  CHECK_EQ(toe_tcp_send(h.st, u, "x", 1, 0), -TOE_EBADF);
  CHECK_EQ(toe_tcp_listen(h.st, u, 1), -TOE_EBADF);
  CHECK_EQ(toe_sock_setopt(h.st, u, TOE_TCP_NODELAY, 1), -TOE_ENOPROTOOPT);
  CHECK_EQ(toe_sock_getopt(h.st, u, TOE_SO_RCVBUF, &v), -TOE_ENOPROTOOPT);
  /* a pointer inside the tcb pool that is not a slot */
  struct toe_sock *inside = (struct toe_sock *)(void *)((char *)h.st->tcp.tcbs + 8);
  CHECK_EQ(toe_tcp_send(h.st, inside, "x", 1, 0), -TOE_EBADF);
  CHECK_EQ(toe_tcp_rx_pending(NULL), 0);
  CHECK_EQ(toe_tcp_tx_pending(u), 0);
  h_fini(&h);
}

TEST(options_roundtrip_and_errors)
{
  h_init(&h);
  struct toe_sock *s = open_sock();
  int64_t v = -1;
  CHECK_EQ(toe_sock_setopt(h.st, s, 999, 1), -TOE_ENOPROTOOPT);
  CHECK_EQ(toe_sock_getopt(h.st, s, 999, &v), -TOE_ENOPROTOOPT);
  CHECK_EQ(toe_sock_getopt(h.st, s, TOE_TCP_NODELAY, NULL), -TOE_EINVAL);

  CHECK_EQ(toe_sock_setopt(h.st, s, TOE_TCP_NODELAY, 2), -TOE_EINVAL);
  CHECK_EQ(toe_sock_setopt(h.st, s, TOE_TCP_NODELAY, 1), 0);
  CHECK_EQ(toe_sock_getopt(h.st, s, TOE_TCP_NODELAY, &v), 0);
  CHECK_EQ(v, 1);
  CHECK_EQ(toe_sock_setopt(h.st, s, TOE_SO_KEEPALIVE, 1), 0);
  CHECK_EQ(toe_sock_getopt(h.st, s, TOE_SO_KEEPALIVE, &v), 0);
  CHECK_EQ(v, 1);
  CHECK_EQ(toe_sock_setopt(h.st, s, TOE_SO_REUSEADDR, 1), 0);
  CHECK_EQ(toe_sock_getopt(h.st, s, TOE_SO_REUSEADDR, &v), 0);
  CHECK_EQ(v, 1);
  CHECK_EQ(toe_sock_setopt(h.st, s, TOE_SO_LINGER_ABORT, 1), 0);
  CHECK_EQ(toe_sock_getopt(h.st, s, TOE_SO_LINGER_ABORT, &v), 0);
  CHECK_EQ(v, 1);

  CHECK_EQ(toe_sock_setopt(h.st, s, TOE_TCP_KEEPIDLE, 0), -TOE_EINVAL);
  CHECK_EQ(toe_sock_setopt(h.st, s, TOE_TCP_KEEPIDLE, 40000), -TOE_EINVAL);
  CHECK_EQ(toe_sock_setopt(h.st, s, TOE_TCP_KEEPIDLE, 30), 0);
  CHECK_EQ(toe_sock_getopt(h.st, s, TOE_TCP_KEEPIDLE, &v), 0);
  CHECK_EQ(v, 30);
  CHECK_EQ(toe_sock_setopt(h.st, s, TOE_TCP_KEEPINTVL, -1), -TOE_EINVAL);
  CHECK_EQ(toe_sock_setopt(h.st, s, TOE_TCP_KEEPINTVL, 5), 0);
  CHECK_EQ(toe_sock_getopt(h.st, s, TOE_TCP_KEEPINTVL, &v), 0);
  CHECK_EQ(v, 5);
  CHECK_EQ(toe_sock_setopt(h.st, s, TOE_TCP_KEEPCNT, 0), -TOE_EINVAL);
  CHECK_EQ(toe_sock_setopt(h.st, s, TOE_TCP_KEEPCNT, 4), 0);
  CHECK_EQ(toe_sock_getopt(h.st, s, TOE_TCP_KEEPCNT, &v), 0);
  CHECK_EQ(v, 4);

  CHECK_EQ(toe_sock_getopt(h.st, s, TOE_TCP_CONGESTION, &v), 0);
  CHECK_EQ(v, TOE_CC_CUBIC); /* the default */
  CHECK_EQ(toe_sock_setopt(h.st, s, TOE_TCP_CONGESTION, 99), -TOE_EINVAL);
  CHECK_EQ(toe_sock_setopt(h.st, s, TOE_TCP_CONGESTION, TOE_CC_NEWRENO), 0);
  CHECK_EQ(toe_sock_getopt(h.st, s, TOE_TCP_CONGESTION, &v), 0);
  CHECK_EQ(v, TOE_CC_NEWRENO);

  CHECK_EQ(toe_sock_setopt(h.st, s, TOE_SO_RCVBUF, -1), -TOE_EINVAL);
  CHECK_EQ(toe_sock_setopt(h.st, s, TOE_SO_RCVBUF, 100000), 0);
  CHECK_EQ(toe_sock_getopt(h.st, s, TOE_SO_RCVBUF, &v), 0);
  CHECK_EQ(v, 100000);
  CHECK_EQ(toe_sock_setopt(h.st, s, TOE_SO_RCVBUF, (int64_t)1 << 40), 0);
  CHECK_EQ(toe_sock_getopt(h.st, s, TOE_SO_RCVBUF, &v), 0);
  /* clamped to tcp_rcvbuf_max, and to what the per-socket buffer cap holds at half a buffer per
   * segment (256 buffers of 2 KiB here: 256 KiB, below the 4 MiB maximum) */
  CHECK_EQ(v, (int64_t)h.cfg.sock_max_bufs * (h.cfg.pbuf_size / 2));
  CHECK(v < (int64_t)h.cfg.tcp_rcvbuf_max);
  CHECK_EQ(toe_sock_setopt(h.st, s, TOE_SO_SNDBUF, 1), 0);
  CHECK_EQ(toe_sock_getopt(h.st, s, TOE_SO_SNDBUF, &v), 0);
  CHECK(v >= 1024 && v <= 8192); /* raised to a floor */

  CHECK_EQ(toe_sock_setopt(h.st, s, TOE_TCP_MAXSEG, 50), -TOE_EINVAL);
  CHECK_EQ(toe_sock_setopt(h.st, s, TOE_TCP_MAXSEG, 70000), -TOE_EINVAL);
  CHECK_EQ(toe_sock_setopt(h.st, s, TOE_TCP_MAXSEG, 1000), 0);
  CHECK_EQ(toe_sock_getopt(h.st, s, TOE_TCP_MAXSEG, &v), 0);
  CHECK_EQ(v, 1000);

  /* MAXSEG cannot change on a connection */
  struct h_conn c;
  REQUIRE(established(&c, 5005) == 0);
  CHECK_EQ(toe_sock_setopt(h.st, c.s, TOE_TCP_MAXSEG, 1000), -TOE_EINVAL);
  CHECK_EQ(toe_sock_getopt(h.st, c.s, TOE_TCP_MAXSEG, &v), 0);
  CHECK_EQ(v, 1460);
  h_fini(&h);
}

TEST(maxseg_clamps_announced_and_used_mss)
{
  h_init(&h);
  struct h_conn c;
  h_conn_init(&c, &h, 5006);
  struct toe_sock *s = NULL;
  REQUIRE(toe_tcp_open(h.st, &c, &s) == 0);
  REQUIRE(toe_sock_setopt(h.st, s, TOE_TCP_MAXSEG, 1000) == 0);
  REQUIRE(toe_sock_setopt(h.st, s, TOE_TCP_NODELAY, 1) == 0);
  struct toe_sockaddr peer = sa(H_PEER_IP, 5006);
  REQUIRE(toe_sock_connect(h.st, s, &peer) == -TOE_EINPROGRESS);
  struct h_tcp syn;
  REQUIRE(h_conn_last(&c, &syn));
  CHECK(syn.has_mss);
  CHECK_EQ(syn.mss, 1000);
  toe_sock_close(h.st, s);
  h_fini(&h);
}

TEST(readable_is_edge_triggered)
{
  h_init(&h);
  struct h_conn c;
  REQUIRE(established(&c, 5007) == 0);
  h_clear(&h);
  h_conn_send(&c, H_ACK | H_PSH, "one", 3);
  h_conn_send(&c, H_ACK | H_PSH, "two", 3);
  CHECK_EQ(events(c.s, TOE_EV_READABLE), 1); /* once until read */
  CHECK_EQ(toe_tcp_rx_pending(c.s), 6);
  char b[4];
  CHECK_EQ(toe_tcp_recv(h.st, c.s, b, 4), 4);
  CHECK_MEM(b, "onet", 4);
  h_conn_send(&c, H_ACK | H_PSH, "3", 1);
  CHECK_EQ(events(c.s, TOE_EV_READABLE), 1); /* not drained yet: no news */
  CHECK_EQ(toe_tcp_recv(h.st, c.s, b, 4), 3);
  CHECK_MEM(b, "wo3", 3);
  CHECK_EQ(toe_tcp_recv(h.st, c.s, b, 4), -TOE_EAGAIN);
  h_conn_send(&c, H_ACK | H_PSH, "4", 1);
  CHECK_EQ(events(c.s, TOE_EV_READABLE), 2); /* drained before: this is news */
  /* the peer's FIN: readable, and 0 at the end of the data */
  h_conn_send(&c, H_ACK | H_FIN, NULL, 0);
  CHECK_EQ(toe_tcp_recv(h.st, c.s, b, 4), 1);
  CHECK_EQ(toe_tcp_recv(h.st, c.s, b, 4), 0);
  CHECK_EQ(toe_tcp_recv(h.st, c.s, b, 4), 0);
  CHECK_EQ(toe_tcb(c.s)->state, TOE_TCP_CLOSE_WAIT);
  /* a receive of 0 bytes with data queued is not an end of stream indicator */
  h_fini(&h);
}

TEST(send_buffer_full_eagain_then_writable)
{
  struct toe_config cfg;
  h_default_cfg(&cfg);
  h_init_cfg(&h, &cfg);
  struct h_conn c;
  h_conn_init(&c, &h, 5008);
  struct toe_sock *s = NULL;
  REQUIRE(toe_tcp_open(h.st, &c, &s) == 0);
  REQUIRE(toe_sock_setopt(h.st, s, TOE_SO_SNDBUF, 8000) == 0);
  toe_sock_close(h.st, s);
  REQUIRE(h_conn_connect(&c, 0) == 0);
  REQUIRE(toe_sock_setopt(h.st, c.s, TOE_SO_SNDBUF, 8000) == 0);
  static uint8_t buf[20000];
  for (size_t i = 0; i < sizeof(buf); i++)
    buf[i] = (uint8_t)i;
  int n = toe_tcp_send(h.st, c.s, buf, sizeof(buf), 0);
  CHECK_EQ(n, 8000); /* accepted what fits */
  CHECK_EQ(toe_tcp_tx_pending(c.s), 8000);
  CHECK_EQ(toe_tcp_tx_space(c.s), 0);
  CHECK_EQ(toe_tcp_send(h.st, c.s, buf, 10, 0), -TOE_EAGAIN);
  h_clear(&h);
  /* the peer acknowledges everything: space is back, and the writer hears of it */
  c.rcv_nxt = toe_tcb(c.s)->snd_max;
  h_conn_send(&c, H_ACK, NULL, 0);
  CHECK_EQ(toe_tcp_tx_pending(c.s), 0);
  CHECK(events(c.s, TOE_EV_WRITABLE) >= 1);
  CHECK_EQ(toe_tcp_send(h.st, c.s, buf, 100, 0), 100);
  h_fini(&h);
}

TEST(send_without_buffers_stops_at_the_reserve)
{
  struct toe_config cfg;
  h_default_cfg(&cfg);
  cfg.pbuf_count = 64;
  h_init_cfg(&h, &cfg);
  struct h_conn c;
  REQUIRE(established(&c, 5009) == 0);
  /* a window of 0 keeps everything queued; the pool drains, but never into the control reserve
   * (16 buffers): the send then waits for its own ACKs (-EAGAIN, WRITABLE later) */
  h_conn_send_raw(&c, c.snd_nxt, c.rcv_nxt, H_ACK, 0, NULL, NULL, 0);
  static uint8_t buf[200000];
  int total = 0, rc;
  while ((rc = toe_tcp_send(h.st, c.s, buf, sizeof(buf), 0)) > 0)
    total += rc;
  CHECK(total > 0);
  CHECK_EQ(rc, -TOE_EAGAIN);
  CHECK(toe_pbuf_pool_free_count(h.st) >= toe_pbuf_pool_reserve(h.st));
  /* it stopped at the pressure rule (a socket that frees nothing keeps 8 buffers beyond the
   * pressure level) or the reserve, whichever came first */
  CHECK(toe_stack_counters(h.st)->pbuf.refused_press + toe_stack_counters(h.st)->pbuf.refused_rsv >
        0);
  CHECK(toe_stack_counters(h.st)->tcp.snd_buf_limited > 0);
  /* abort gives everything back */
  toe_tcp_abort(h.st, c.s);
  CHECK_EQ(toe_pbuf_pool_free_count(h.st), 64);
  CHECK_EQ(toe_pbuf_pool_charged(h.st), 0);
  h_fini(&h);
}

TEST(graceful_close_fin_then_orphan_freed)
{
  h_init(&h);
  struct h_conn c;
  REQUIRE(established(&c, 5010) == 0);
  CHECK_EQ(toe_tcp_send(h.st, c.s, "bye", 3, 0), 3);
  h_clear(&h);
  struct toe_sock *s = c.s;
  toe_sock_close(h.st, s);
  /* the data is out already; the FIN follows it */
  struct h_tcp f;
  REQUIRE(h_conn_last(&c, &f));
  CHECK(f.flags & H_FIN);
  CHECK_EQ(f.seq, c.iss + 1 + 3);
  CHECK_EQ(tc()->socks_inuse, 1); /* the orphan lives on */
  CHECK_EQ(toe_tcp_send(h.st, s, "x", 1, 0), -TOE_EBADF);
  /* the peer acknowledges data and FIN, and closes too */
  c.rcv_nxt = f.seq + 1;
  h_conn_send(&c, H_ACK | H_FIN, NULL, 0);
  struct h_tcp a;
  REQUIRE(h_conn_last(&c, &a));
  CHECK_EQ(a.flags, H_ACK);
  CHECK_EQ(a.ack, c.snd_nxt);
  CHECK_EQ(tc()->socks_inuse, 0); /* TIME_WAIT is held without a tcb */
  CHECK_EQ(h.nev, 0);             /* nothing is told to a closed handle */
  h_fini(&h);
}

TEST(close_with_unread_data_sends_rst)
{
  h_init(&h);
  struct h_conn c;
  REQUIRE(established(&c, 5011) == 0);
  h_conn_send(&c, H_ACK | H_PSH, "unread", 6);
  h_clear(&h);
  toe_sock_close(h.st, c.s);
  struct h_tcp r;
  REQUIRE(h_conn_last(&c, &r));
  CHECK(r.flags & H_RST);
  CHECK(!(r.flags & H_FIN));
  CHECK_EQ(r.seq, c.iss + 1);
  CHECK_EQ(tc()->close_unread_rsts, 1);
  CHECK_EQ(tc()->estab_resets, 1);
  CHECK_EQ(tc()->socks_inuse, 0);
  h_fini(&h);
}

TEST(abort_and_linger_abort_send_rst)
{
  h_init(&h);
  struct h_conn c;
  REQUIRE(established(&c, 5012) == 0);
  CHECK_EQ(toe_tcp_send(h.st, c.s, "queued", 6, 0), 6);
  h_clear(&h);
  toe_tcp_abort(h.st, c.s);
  struct h_tcp r;
  REQUIRE(h_conn_last(&c, &r));
  CHECK(r.flags & H_RST);
  CHECK_EQ(r.seq, c.iss + 1 + 6);
  CHECK_EQ(h_tcp_count(&h), 1);
  CHECK_EQ(tc()->socks_inuse, 0);

  struct h_conn d;
  REQUIRE(established(&d, 5013) == 0);
  REQUIRE(toe_sock_setopt(h.st, d.s, TOE_SO_LINGER_ABORT, 1) == 0);
  h_clear(&h);
  toe_sock_close(h.st, d.s);
  REQUIRE(h_conn_last(&d, &r));
  CHECK(r.flags & H_RST);
  CHECK_EQ(tc()->socks_inuse, 0);

  /* abort in SYN_SENT sends nothing (RFC 9293 3.10.5) */
  struct toe_sock *s = open_sock();
  struct toe_sockaddr peer = sa(H_PEER_IP, 81);
  REQUIRE(toe_sock_connect(h.st, s, &peer) == -TOE_EINPROGRESS);
  h_clear(&h);
  toe_tcp_abort(h.st, s);
  CHECK_EQ(h_tcp_count(&h), 0);
  CHECK_EQ(tc()->socks_inuse, 0);
  h_fini(&h);
}

TEST(shutdown_rd_discards)
{
  h_init(&h);
  struct h_conn c;
  REQUIRE(established(&c, 5014) == 0);
  h_conn_send(&c, H_ACK | H_PSH, "abc", 3);
  CHECK_EQ(toe_tcp_shutdown(h.st, c.s, TOE_SHUT_RD), 0);
  uint8_t b[8];
  CHECK_EQ(toe_tcp_recv(h.st, c.s, b, sizeof(b)), 0);
  CHECK_EQ(toe_tcp_rx_pending(c.s), 0);
  h_conn_send(&c, H_ACK | H_PSH, "more", 4);
  CHECK_EQ(toe_tcp_recv(h.st, c.s, b, sizeof(b)), 0);
  /* still acknowledged, so the peer does not retransmit it forever */
  struct h_tcp a;
  REQUIRE(h_conn_last(&c, &a));
  CHECK_EQ(a.ack, c.snd_nxt);
  /* writing still works */
  CHECK_EQ(toe_tcp_send(h.st, c.s, "w", 1, 0), 1);
  h_fini(&h);
}

TEST(info_state_names_and_visit)
{
  h_init(&h);
  CHECK(strcmp(toe_tcp_state_name(TOE_TCP_ESTABLISHED), "ESTABLISHED") == 0);
  CHECK(strcmp(toe_tcp_state_name(TOE_TCP_SYN_SENT), "SYN_SENT") == 0);
  CHECK(strcmp(toe_tcp_state_name(TOE_TCP_TIME_WAIT), "TIME_WAIT") == 0);
  CHECK(toe_tcp_state_name(-1) != NULL);
  CHECK(toe_tcp_state_name(99) != NULL);

  struct h_conn c;
  REQUIRE(established(&c, 5015) == 0);
  struct toe_tcp_info info;
  CHECK_EQ(toe_tcp_get_info(h.st, c.s, NULL), -TOE_EINVAL);
  REQUIRE(toe_tcp_get_info(h.st, c.s, &info) == 0);
  CHECK_EQ(info.state, TOE_TCP_ESTABLISHED);
  CHECK_EQ(info.options, TOE_TCPI_OPT_TIMESTAMPS | TOE_TCPI_OPT_SACK | TOE_TCPI_OPT_WSCALE);
  CHECK_EQ(info.snd_wscale, 7);
  CHECK_EQ(info.rcv_wscale, c.syn.ws);
  CHECK_EQ(info.snd_mss, 1460);
  CHECK_EQ(info.rcv_mss, 1460);
  CHECK(info.rto_us >= 200000);
  CHECK(info.snd_cwnd > 0);
  CHECK_EQ(info.ca_algo, TOE_CC_CUBIC);
  CHECK_EQ(toe_tcp_send(h.st, c.s, "12345", 5, 0), 5);
  REQUIRE(toe_tcp_get_info(h.st, c.s, &info) == 0);
  CHECK_EQ(info.unacked, 5);
  CHECK_EQ(info.tx_queued, 5);

  toe_tcp_visit(h.st, NULL, NULL); /* no visitor: nothing happens */
  h_fini(&h);
}

/* The visitor, outside the test for C11. */
struct visit_tally {
  int n, listen, estab, estab_port_ok;
};
static void tally(void *arg, const struct toe_sock *s, const struct toe_sockaddr *local,
                  const struct toe_sockaddr *remote, const struct toe_tcp_info *info)
{
  struct visit_tally *t = arg;
  t->n++;
  if (info->state == TOE_TCP_LISTEN)
    t->listen++;
  if (info->state == TOE_TCP_ESTABLISHED) {
    t->estab++;
    if (s && remote->addr == H_PEER_IP && remote->port == 5016 && local->addr == H_OUR_IP)
      t->estab_port_ok++;
  }
}

TEST(visit_lists_listeners_and_connections)
{
  h_init(&h);
  struct h_conn c;
  REQUIRE(established(&c, 5016) == 0);
  struct toe_sock *l = open_sock();
  struct toe_sockaddr lp = sa(0, 9101);
  REQUIRE(toe_sock_bind(h.st, l, &lp) == 0);
  REQUIRE(toe_tcp_listen(h.st, l, 4) == 0);
  struct visit_tally t = {0, 0, 0, 0};
  toe_tcp_visit(h.st, tally, &t);
  CHECK_EQ(t.n, 2);
  CHECK_EQ(t.listen, 1);
  CHECK_EQ(t.estab, 1);
  CHECK_EQ(t.estab_port_ok, 1);
  h_fini(&h);
}

TEST(rcvbuf_autotuning_grows_when_reads_fill_the_window)
{
  struct toe_config cfg;
  h_default_cfg(&cfg);
  cfg.pbuf_count = 2048;
  cfg.tcp_rcvbuf = 64u * 1024;
  cfg.tcp_rcvbuf_max = 1024u * 1024;
  h_init_cfg(&h, &cfg);
  struct h_conn c;
  REQUIRE(established(&c, 5017) == 0);
  REQUIRE(toe_tcb(c.s)->srtt_us > 0); /* a sample from the handshake's timestamps */
  static uint8_t seg[1448], out[1u << 20];
  memset(seg, 'a', sizeof(seg));
  int64_t v;
  REQUIRE(toe_sock_getopt(h.st, c.s, TOE_SO_RCVBUF, &v) == 0);
  CHECK_EQ(v, 64 * 1024);
  /* the application reads a whole window's worth every round trip */
  for (int round = 0; round < 4; round++) {
    for (int i = 0; i < 40; i++)
      h_conn_send(&c, H_ACK, seg, sizeof(seg));
    h_conn_read(&c, out, sizeof(out));
    h_advance(&h, TOE_MSEC(2));
  }
  h_conn_read(&c, out, sizeof(out));
  REQUIRE(toe_sock_getopt(h.st, c.s, TOE_SO_RCVBUF, &v) == 0);
  CHECK(v > 64 * 1024);
  CHECK(tc()->rcvbuf_grows >= 1);

  /* with TOE_SO_RCVBUF set, the buffer stays put */
  struct h_conn d;
  h_conn_init(&d, &h, 5018);
  REQUIRE(h_conn_connect(&d, 0) == 0);
  REQUIRE(toe_sock_setopt(h.st, d.s, TOE_SO_RCVBUF, 64 * 1024) == 0);
  for (int round = 0; round < 4; round++) {
    for (int i = 0; i < 30; i++)
      h_conn_send(&d, H_ACK, seg, sizeof(seg));
    h_conn_read(&d, out, sizeof(out));
    h_advance(&h, TOE_MSEC(2));
  }
  REQUIRE(toe_sock_getopt(h.st, d.s, TOE_SO_RCVBUF, &v) == 0);
  CHECK_EQ(v, 64 * 1024);
  h_fini(&h);
}

TEST_MAIN()
