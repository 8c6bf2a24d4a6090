/*
 * The socket table: bind and port conflicts, ephemeral ports (range, randomised start,
 * exhaustion), slot exhaustion, best-match demultiplexing, notification and soft errors.
 */
#include "engine/stack.h"
#include "harness.h"
#include "testlib.h"
#include "wire/ipv4.h"

static struct toe_sockaddr sa(uint32_t addr, uint16_t port)
{
  struct toe_sockaddr a = {.family = TOE_AF_INET, .port = port, .addr = addr};
  return a;
}

static struct toe_sock *open_sock(struct harness *h, void *user)
{
  struct toe_sock *s = NULL;
  int rc = toe_udp_open(h->st, user, &s);
  CHECK_EQ(rc, 0);
  return s;
}

TEST(bind_and_name)
{
  struct harness h;
  h_init(&h);
  struct toe_sock *s = open_sock(&h, NULL);
  REQUIRE(s);
  struct toe_sockaddr l = sa(0, 5000), got, rem;
  CHECK_EQ(toe_sock_bind(h.st, s, &l), 0);
  CHECK_EQ(toe_sock_name(s, &got, &rem), 0);
  CHECK_EQ(got.family, TOE_AF_INET);
  CHECK_EQ(got.port, 5000);
  CHECK_EQ(got.addr, 0);
  CHECK_EQ(rem.family, 0);
  CHECK_EQ(rem.port, 0);
  CHECK_EQ(rem.addr, 0);
  toe_sock_close(h.st, s);
  h_fini(&h);
}

TEST(bind_errors)
{
  struct harness h;
  h_init(&h);
  struct toe_sock *s = open_sock(&h, NULL);
  REQUIRE(s);
  struct toe_sockaddr bad = sa(H_PEER_IP, 5000);
  CHECK_EQ(toe_sock_bind(h.st, s, &bad), -TOE_EADDRNOTAVAIL);
  struct toe_sockaddr fam = sa(0, 5000);
  fam.family = 99; /* neither TOE_AF_INET nor TOE_AF_INET6 */
  CHECK_EQ(toe_sock_bind(h.st, s, &fam), -TOE_EINVAL);
  CHECK_EQ(toe_sock_bind(h.st, s, NULL), -TOE_EINVAL);
  struct toe_sockaddr ok = sa(H_OUR_IP, 5000);
  CHECK_EQ(toe_sock_bind(h.st, s, &ok), 0);
  struct toe_sockaddr again = sa(0, 5001);
  CHECK_EQ(toe_sock_bind(h.st, s, &again), -TOE_EINVAL); /* already bound */
  CHECK_EQ(toe_sock_bind(h.st, NULL, &again), -TOE_EBADF);
  toe_sock_close(h.st, s);
  h_fini(&h);
}

TEST(port_conflicts_like_linux)
{
  struct harness h;
  h_init(&h);
  struct toe_sock *a = open_sock(&h, NULL), *b = open_sock(&h, NULL), *c = open_sock(&h, NULL);
  REQUIRE(a && b && c);
  struct toe_sockaddr any5000 = sa(0, 5000), our5000 = sa(H_OUR_IP, 5000);
  struct toe_sockaddr our5001 = sa(H_OUR_IP, 5001), any5001 = sa(0, 5001);
  CHECK_EQ(toe_sock_bind(h.st, a, &any5000), 0);
  CHECK_EQ(toe_sock_bind(h.st, b, &any5000), -TOE_EADDRINUSE);
  CHECK_EQ(toe_sock_bind(h.st, b, &our5000), -TOE_EADDRINUSE); /* any conflicts with all */
  CHECK_EQ(toe_sock_bind(h.st, b, &our5001), 0);
  CHECK_EQ(toe_sock_bind(h.st, c, &any5001), -TOE_EADDRINUSE);
  CHECK_EQ(toe_sock_bind(h.st, c, &our5001), -TOE_EADDRINUSE);
  /* a failed bind leaves the socket unbound: it can still bind elsewhere */
  struct toe_sockaddr any5002 = sa(0, 5002);
  CHECK_EQ(toe_sock_bind(h.st, c, &any5002), 0);

  /* the table-level rule: different specific addresses coexist */
  CHECK(toe_socktab_port_in_use(h.st, TOE_IPPROTO_UDP, 0, 5001));
  CHECK(toe_socktab_port_in_use(h.st, TOE_IPPROTO_UDP, H_OUR_IP, 5001));
  CHECK(!toe_socktab_port_in_use(h.st, TOE_IPPROTO_UDP, 0xc6120009u, 5001));
  CHECK(toe_socktab_port_in_use(h.st, TOE_IPPROTO_UDP, 0xc6120009u, 5000)); /* any holder */
  CHECK(!toe_socktab_port_in_use(h.st, TOE_IPPROTO_TCP, 0, 5000));          /* per protocol */
  CHECK(!toe_socktab_port_in_use(h.st, TOE_IPPROTO_UDP, 0, 5003));

  /* closing releases the port */
  toe_sock_close(h.st, a);
  struct toe_sock *d = open_sock(&h, NULL);
  REQUIRE(d);
  CHECK_EQ(toe_sock_bind(h.st, d, &any5000), 0);
  toe_sock_close(h.st, b);
  toe_sock_close(h.st, c);
  toe_sock_close(h.st, d);
  CHECK_EQ(toe_stack_counters(h.st)->udp.socks_inuse, 0);
  h_fini(&h);
}

TEST(ephemeral_range_and_exhaustion)
{
  struct harness h;
  struct toe_config cfg;
  h_default_cfg(&cfg);
  cfg.ephemeral_lo = 40000;
  cfg.ephemeral_hi = 40031;
  cfg.udp_socks = 64;
  h_init_cfg(&h, &cfg);
  struct toe_sock *s[33];
  uint8_t seen[32] = {0};
  struct toe_sockaddr any0 = sa(0, 0);
  for (int i = 0; i < 32; i++) {
    s[i] = open_sock(&h, NULL);
    REQUIRE(s[i]);
    CHECK_EQ(toe_sock_bind(h.st, s[i], &any0), 0);
    struct toe_sockaddr l;
    toe_sock_name(s[i], &l, NULL);
    CHECK(l.port >= 40000 && l.port <= 40031);
    if (l.port >= 40000 && l.port <= 40031) {
      CHECK(!seen[l.port - 40000]); /* never handed out twice */
      seen[l.port - 40000] = 1;
    }
  }
  s[32] = open_sock(&h, NULL);
  REQUIRE(s[32]);
  CHECK_EQ(toe_sock_bind(h.st, s[32], &any0), -TOE_EADDRNOTAVAIL);
  /* connect and sendto autobind the same way */
  struct toe_sockaddr peer = sa(H_PEER_IP, 9);
  CHECK_EQ(toe_sock_connect(h.st, s[32], &peer), -TOE_EADDRNOTAVAIL);
  CHECK_EQ(toe_udp_sendto(h.st, s[32], "x", 1, &peer), -TOE_EADDRNOTAVAIL);

  /* freeing one port makes exactly that one available */
  struct toe_sockaddr l7;
  toe_sock_name(s[7], &l7, NULL);
  toe_sock_close(h.st, s[7]);
  CHECK_EQ(toe_sock_bind(h.st, s[32], &any0), 0);
  struct toe_sockaddr l;
  toe_sock_name(s[32], &l, NULL);
  CHECK_EQ(l.port, l7.port);
  for (int i = 0; i <= 32; i++)
    if (i != 7)
      toe_sock_close(h.st, s[i]);
  h_fini(&h);
}

/* The first ephemeral port a stack hands out, for a given seed. */
static uint16_t first_ephemeral(uint64_t seed)
{
  struct harness h;
  struct toe_config cfg;
  h_default_cfg(&cfg);
  cfg.random_seed = seed;
  h_init_cfg(&h, &cfg);
  struct toe_sock *s = open_sock(&h, NULL);
  uint16_t port = 0;
  struct toe_sockaddr any0 = sa(0, 0), l;
  if (s && toe_sock_bind(h.st, s, &any0) == 0 && toe_sock_name(s, &l, NULL) == 0)
    port = l.port;
  h_fini(&h);
  return port;
}

TEST(ephemeral_start_is_random)
{
  /* RFC 6056: the search starts at a random point of the range, not at its bottom */
  uint16_t p[8];
  int distinct = 0, at_bottom = 0;
  for (int i = 0; i < 8; i++) {
    p[i] = first_ephemeral(1000u + (uint64_t)i * 7919u);
    CHECK(p[i] >= 49152);
    if (p[i] == 49152)
      at_bottom++;
    int dup = 0;
    for (int j = 0; j < i; j++)
      dup |= p[j] == p[i];
    distinct += !dup;
  }
  CHECK(distinct >= 6);
  CHECK(at_bottom <= 1);
}

TEST(ephemeral_many_sockets_distinct)
{
  /* a full default range: 1000 allocations, all distinct, each quickly */
  struct harness h;
  struct toe_config cfg;
  h_default_cfg(&cfg);
  cfg.udp_socks = 1000;
  h_init_cfg(&h, &cfg);
  static struct toe_sock *s[1000];
  static uint8_t seen[65536];
  memset(seen, 0, sizeof(seen));
  struct toe_sockaddr any0 = sa(0, 0);
  int dups = 0, fails = 0;
  for (int i = 0; i < 1000; i++) {
    s[i] = NULL;
    if (toe_udp_open(h.st, NULL, &s[i]) != 0 || toe_sock_bind(h.st, s[i], &any0) != 0) {
      fails++;
      continue;
    }
    struct toe_sockaddr l;
    toe_sock_name(s[i], &l, NULL);
    dups += seen[l.port];
    seen[l.port] = 1;
  }
  CHECK_EQ(fails, 0);
  CHECK_EQ(dups, 0);
  CHECK_EQ(toe_stack_counters(h.st)->udp.socks_inuse, 1000);
  for (int i = 0; i < 1000; i++)
    if (s[i])
      toe_sock_close(h.st, s[i]);
  CHECK_EQ(toe_stack_counters(h.st)->udp.socks_inuse, 0);
  h_fini(&h);
}

TEST(open_until_emfile)
{
  struct harness h;
  struct toe_config cfg;
  h_default_cfg(&cfg);
  cfg.udp_socks = 8;
  h_init_cfg(&h, &cfg);
  struct toe_sock *s[9] = {0};
  for (int i = 0; i < 8; i++) {
    CHECK_EQ(toe_udp_open(h.st, NULL, &s[i]), 0);
    CHECK(s[i] != NULL);
    for (int j = 0; j < i; j++)
      CHECK(s[i] != s[j]);
  }
  CHECK_EQ(toe_stack_counters(h.st)->udp.socks_inuse, 8);
  CHECK_EQ(toe_udp_open(h.st, NULL, &s[8]), -TOE_EMFILE);
  toe_sock_close(h.st, s[3]);
  CHECK_EQ(toe_stack_counters(h.st)->udp.socks_inuse, 7);
  CHECK_EQ(toe_udp_open(h.st, NULL, &s[8]), 0);
  CHECK_EQ(toe_udp_open(h.st, NULL, &s[3]), -TOE_EMFILE);
  for (int i = 0; i < 9; i++)
    if (i != 3)
      toe_sock_close(h.st, s[i]);
  CHECK_EQ(toe_stack_counters(h.st)->udp.socks_inuse, 0);
  h_fini(&h);
}

TEST(closed_handle_is_rejected)
{
  struct harness h;
  h_init(&h);
  struct toe_sock *s = open_sock(&h, NULL);
  REQUIRE(s);
  toe_sock_close(h.st, s);
  struct toe_sockaddr l = sa(0, 6000);
  CHECK_EQ(toe_sock_bind(h.st, s, &l), -TOE_EBADF);
  CHECK_EQ(toe_udp_sendto(h.st, s, "x", 1, &l), -TOE_EBADF);
  CHECK_EQ(toe_udp_recvfrom(h.st, s, NULL, 0, NULL), -TOE_EBADF);
  CHECK_EQ(toe_stack_counters(h.st)->udp.socks_inuse, 0);
  toe_sock_close(h.st, s); /* closing twice is harmless */
  CHECK_EQ(toe_stack_counters(h.st)->udp.socks_inuse, 0);
  h_fini(&h);
}

/* A socket built by hand and put straight into the table (as SO_REUSEADDR or TCP will). */
static void fake(struct toe_sock *s, uint8_t proto, uint32_t laddr, uint16_t lport, uint32_t raddr,
                 uint16_t rport)
{
  memset(s, 0, sizeof(*s));
  s->proto = proto;
  s->flags = TOE_SOCK_F_BOUND | (raddr ? TOE_SOCK_F_CONNECTED : 0);
  s->laddr = laddr;
  s->lport = lport;
  s->raddr = raddr;
  s->rport = rport;
}

/* UDP with SO_REUSEADDR: Linux's rule, every socket on the port must set it; a connected one
 * gets its 4-tuple's datagrams, the unconnected one the rest (iperf3's UDP server does this). */
TEST(udp_reuseaddr_shares_a_port)
{
  struct harness h;
  h_init(&h);
  struct toe_sock *a = open_sock(&h, NULL), *b = open_sock(&h, NULL), *c = open_sock(&h, NULL);
  REQUIRE(a && b && c);
  struct toe_sockaddr our = sa(H_OUR_IP, 5201), any = sa(0, 5201);
  int64_t v = -1;
  CHECK_EQ(toe_sock_getopt(h.st, a, TOE_SO_REUSEADDR, &v), 0);
  CHECK_EQ(v, 0);
  CHECK_EQ(toe_sock_setopt(h.st, a, TOE_SO_REUSEADDR, 2), -TOE_EINVAL);
  CHECK_EQ(toe_sock_setopt(h.st, a, TOE_TCP_NODELAY, 1), -TOE_ENOPROTOOPT);
  CHECK_EQ(toe_sock_getopt(h.st, a, TOE_SO_RCVBUF, &v), -TOE_ENOPROTOOPT);
  CHECK_EQ(toe_sock_setopt(h.st, a, TOE_SO_REUSEADDR, 1), 0);
  CHECK_EQ(toe_sock_getopt(h.st, a, TOE_SO_REUSEADDR, &v), 0);
  CHECK_EQ(v, 1);
  CHECK_EQ(toe_sock_bind(h.st, a, &our), 0);
  /* b without the option: refused; with it: shares the port (any address too) */
  CHECK_EQ(toe_sock_bind(h.st, b, &our), -TOE_EADDRINUSE);
  CHECK_EQ(toe_sock_setopt(h.st, b, TOE_SO_REUSEADDR, 1), 0);
  CHECK_EQ(toe_sock_bind(h.st, b, &any), 0);
  /* a socket without it may not join them */
  CHECK_EQ(toe_sock_setopt(h.st, c, TOE_SO_REUSEADDR, 0), 0);
  CHECK_EQ(toe_sock_bind(h.st, c, &our), -TOE_EADDRINUSE);
  /* a connects: its client's datagrams are its own, others go to the best unconnected match */
  struct toe_sockaddr peer = sa(H_PEER_IP, 40000);
  CHECK_EQ(toe_sock_connect(h.st, a, &peer), 0);
  CHECK(toe_socktab_lookup(h.st, TOE_IPPROTO_UDP, H_OUR_IP, 5201, H_PEER_IP, 40000) == a);
  CHECK(toe_socktab_lookup(h.st, TOE_IPPROTO_UDP, H_OUR_IP, 5201, H_PEER_IP, 40001) == b);
  toe_sock_close(h.st, a);
  toe_sock_close(h.st, b);
  toe_sock_close(h.st, c);
  h_fini(&h);
}

TEST(lookup_best_match)
{
  struct harness h;
  h_init(&h);
  struct toe_stack *st = h.st;
  const uint8_t U = TOE_IPPROTO_UDP;
  const uint32_t BC = 0xc61200ffu;
  struct toe_sock any, ours, conn, conn_any, tcp;
  fake(&any, U, 0, 7000, 0, 0);
  fake(&ours, U, H_OUR_IP, 7000, 0, 0);
  fake(&conn, U, H_OUR_IP, 7000, H_PEER_IP, 9000);
  fake(&conn_any, U, 0, 7000, H_PEER_IP, 9001);
  fake(&tcp, TOE_IPPROTO_TCP, 0, 7001, 0, 0);

  CHECK(toe_socktab_lookup(st, U, H_OUR_IP, 7000, H_PEER_IP, 9000) == NULL);
  toe_socktab_insert(st, &any);
  toe_socktab_insert(st, &tcp);
  CHECK(toe_socktab_lookup(st, U, H_OUR_IP, 7000, H_PEER_IP, 9000) == &any);
  CHECK(toe_socktab_lookup(st, U, BC, 7000, H_PEER_IP, 9000) == &any);
  CHECK(toe_socktab_lookup(st, U, H_OUR_IP, 7001, H_PEER_IP, 9000) == NULL); /* other proto */
  CHECK(toe_socktab_lookup(st, TOE_IPPROTO_TCP, H_OUR_IP, 7001, H_PEER_IP, 1) == &tcp);
  CHECK(toe_socktab_lookup(st, TOE_IPPROTO_TCP, H_OUR_IP, 7000, H_PEER_IP, 1) == NULL);

  toe_socktab_insert(st, &ours);
  CHECK(toe_socktab_lookup(st, U, H_OUR_IP, 7000, H_PEER_IP, 9000) == &ours);
  CHECK(toe_socktab_lookup(st, U, BC, 7000, H_PEER_IP, 9000) == &any); /* broadcast: any only */

  toe_socktab_insert(st, &conn);
  toe_socktab_insert(st, &conn_any);
  CHECK(toe_socktab_lookup(st, U, H_OUR_IP, 7000, H_PEER_IP, 9000) == &conn);
  CHECK(toe_socktab_lookup(st, U, H_OUR_IP, 7000, H_PEER_IP, 9001) == &conn_any);
  CHECK(toe_socktab_lookup(st, U, H_OUR_IP, 7000, H_PEER_IP, 9002) == &ours);
  CHECK(toe_socktab_lookup(st, U, H_OUR_IP, 7000, 0xc6120003u, 9000) == &ours);
  CHECK(toe_socktab_lookup(st, U, BC, 7000, H_PEER_IP, 9000) == &any);
  CHECK(toe_socktab_lookup(st, U, BC, 7000, H_PEER_IP, 9001) == &conn_any);

  toe_socktab_remove(st, &conn);
  toe_socktab_remove(st, &conn); /* absent: harmless */
  CHECK(toe_socktab_lookup(st, U, H_OUR_IP, 7000, H_PEER_IP, 9000) == &ours);
  toe_socktab_remove(st, &ours);
  CHECK(toe_socktab_lookup(st, U, H_OUR_IP, 7000, H_PEER_IP, 9000) == &any);
  toe_socktab_remove(st, &any);
  CHECK(toe_socktab_lookup(st, U, H_OUR_IP, 7000, H_PEER_IP, 9000) == NULL);
  CHECK(toe_socktab_lookup(st, U, H_OUR_IP, 7000, H_PEER_IP, 9001) == &conn_any);
  toe_socktab_remove(st, &conn_any);
  toe_socktab_remove(st, &tcp);
  CHECK(toe_socktab_lookup(st, U, H_OUR_IP, 7000, H_PEER_IP, 9001) == NULL);
  h_fini(&h);
}

TEST(hash_chains_hold_many)
{
  /* more sockets than buckets: every one is found, and only by its own key */
  struct harness h;
  struct toe_config cfg;
  h_default_cfg(&cfg);
  cfg.udp_socks = 64;
  h_init_cfg(&h, &cfg);
  static struct toe_sock s[3000];
  for (int i = 0; i < 3000; i++) {
    fake(&s[i], (i & 1) ? TOE_IPPROTO_TCP : TOE_IPPROTO_UDP, 0, (uint16_t)(1000 + i / 2), 0, 0);
    toe_socktab_insert(h.st, &s[i]);
  }
  int wrong = 0;
  for (int i = 0; i < 3000; i++) {
    uint8_t proto = (i & 1) ? TOE_IPPROTO_TCP : TOE_IPPROTO_UDP;
    wrong +=
        toe_socktab_lookup(h.st, proto, H_OUR_IP, (uint16_t)(1000 + i / 2), H_PEER_IP, 1) != &s[i];
  }
  CHECK_EQ(wrong, 0);
  CHECK(toe_socktab_lookup(h.st, TOE_IPPROTO_UDP, H_OUR_IP, 999, H_PEER_IP, 1) == NULL);
  CHECK(toe_socktab_lookup(h.st, TOE_IPPROTO_UDP, H_OUR_IP, 2500, H_PEER_IP, 1) == NULL);
  for (int i = 0; i < 3000; i += 2)
    toe_socktab_remove(h.st, &s[i]);
  wrong = 0;
  for (int i = 0; i < 3000; i++) {
    uint8_t proto = (i & 1) ? TOE_IPPROTO_TCP : TOE_IPPROTO_UDP;
    struct toe_sock *want = (i & 1) ? &s[i] : NULL;
    wrong +=
        toe_socktab_lookup(h.st, proto, H_OUR_IP, (uint16_t)(1000 + i / 2), H_PEER_IP, 1) != want;
  }
  CHECK_EQ(wrong, 0);
  for (int i = 1; i < 3000; i += 2)
    toe_socktab_remove(h.st, &s[i]);
  h_fini(&h);
}

TEST(notify_and_soft_error)
{
  struct harness h;
  h_init(&h);
  int cookie;
  struct toe_sock *s = open_sock(&h, &cookie);
  REQUIRE(s);
  h.nev = 0;
  toe_sock_notify(h.st, s, TOE_EV_READABLE);
  REQUIRE(h.nev == 1);
  CHECK(h.ev[0].sock == s);
  CHECK(h.ev[0].user == &cookie);
  CHECK_EQ(h.ev[0].events, TOE_EV_READABLE);

  CHECK_EQ(toe_sock_error(h.st, s), 0);
  toe_sock_set_error(h.st, s, -TOE_EHOSTUNREACH);
  REQUIRE(h.nev == 2);
  CHECK_EQ(h.ev[1].events, TOE_EV_ERROR);
  CHECK_EQ(toe_sock_error(h.st, s), -TOE_EHOSTUNREACH);
  CHECK_EQ(toe_sock_error(h.st, s), 0); /* read clears it */
  toe_sock_close(h.st, s);
  h_fini(&h);
}

TEST(notify_without_callback)
{
  struct harness h;
  h_init(&h);
  struct toe_sock *s = open_sock(&h, NULL);
  REQUIRE(s);
  /* a stack whose config has no sock_event callback must not call through NULL */
  toe_sock_event_fn saved = h.st->cfg.sock_event;
  h.st->cfg.sock_event = NULL;
  toe_sock_notify(h.st, s, TOE_EV_READABLE);
  toe_sock_set_error(h.st, s, -TOE_ECONNREFUSED);
  h.st->cfg.sock_event = saved;
  CHECK_EQ(h.nev, 0);
  CHECK_EQ(toe_sock_error(h.st, s), -TOE_ECONNREFUSED);
  toe_sock_close(h.st, s);
  h_fini(&h);
}

TEST(connect_sets_local_address)
{
  struct harness h;
  h_init(&h);
  struct toe_sock *s = open_sock(&h, NULL);
  REQUIRE(s);
  struct toe_sockaddr peer = sa(H_PEER_IP, 9000), l, r;
  CHECK_EQ(toe_sock_connect(h.st, s, &peer), 0);
  toe_sock_name(s, &l, &r);
  CHECK_EQ(l.addr, H_OUR_IP);
  CHECK(l.port >= 49152);
  CHECK_EQ(r.family, TOE_AF_INET);
  CHECK_EQ(r.addr, H_PEER_IP);
  CHECK_EQ(r.port, 9000);
  uint16_t port = l.port;

  struct toe_sockaddr zero = sa(0, 9000), noport = sa(H_PEER_IP, 0);
  CHECK_EQ(toe_sock_connect(h.st, s, &zero), -TOE_EINVAL);
  CHECK_EQ(toe_sock_connect(h.st, s, &noport), -TOE_EINVAL);

  struct toe_sockaddr unspec = {0};
  CHECK_EQ(toe_sock_connect(h.st, s, &unspec), 0);
  toe_sock_name(s, &l, &r);
  CHECK_EQ(l.addr, 0);    /* the address connect chose is released */
  CHECK_EQ(l.port, port); /* the port stays bound */
  CHECK_EQ(r.family, 0);
  CHECK(toe_socktab_port_in_use(h.st, TOE_IPPROTO_UDP, 0, port));
  toe_sock_close(h.st, s);
  CHECK(!toe_socktab_port_in_use(h.st, TOE_IPPROTO_UDP, 0, port));
  h_fini(&h);
}

TEST_MAIN()
