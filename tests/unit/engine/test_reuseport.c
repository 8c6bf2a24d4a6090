/*
 * SO_REUSEPORT (issue 13 item 5): TCP listeners and UDP sockets of one owner share a port, and
 * new flows are spread over them by a hash of the 4-tuple, each flow always to the same member.
 * Hand-built SYNs and datagrams from many peer ports, virtual clock.
 */
#include "engine/stack.h"
#include "tcp_harness.h"
#include "testlib.h"

#define PORT 8080
#define NFLOWS 64

static struct harness h; /* big: keep it off the stack */
static uint8_t frame[2048];

static struct toe_sockaddr any_port(uint16_t port)
{
  struct toe_sockaddr a = {.family = TOE_AF_INET, .port = port, .addr = 0};
  return a;
}

/* A TCP socket with SO_REUSEPORT (if `reuse`) and `owner`, bound to PORT; NULL if bind failed
 * (the error in *rc). */
static struct toe_sock *tcp_bound(bool reuse, uint32_t owner, int *rc)
{
  struct toe_sock *s = NULL;
  if (toe_tcp_open(h.st, NULL, &s) != 0)
    return NULL;
  toe_sock_set_owner(s, owner);
  if (reuse && toe_sock_setopt(h.st, s, TOE_SO_REUSEPORT, 1) != 0)
    return NULL;
  struct toe_sockaddr l = any_port(PORT);
  *rc = toe_sock_bind(h.st, s, &l);
  if (*rc != 0) {
    toe_sock_close(h.st, s);
    return NULL;
  }
  return s;
}

static struct toe_sock *tcp_listener(void)
{
  int rc = 0;
  struct toe_sock *s = tcp_bound(true, 0, &rc);
  if (s && toe_tcp_listen(h.st, s, 128) != 0)
    return NULL;
  return s;
}

static struct toe_sock *udp_bound(bool reuse, uint32_t owner, int *rc)
{
  struct toe_sock *s = NULL;
  if (toe_udp_open(h.st, NULL, &s) != 0)
    return NULL;
  toe_sock_set_owner(s, owner);
  if (reuse && toe_sock_setopt(h.st, s, TOE_SO_REUSEPORT, 1) != 0)
    return NULL;
  struct toe_sockaddr l = any_port(PORT);
  *rc = toe_sock_bind(h.st, s, &l);
  if (*rc != 0) {
    toe_sock_close(h.st, s);
    return NULL;
  }
  return s;
}

static uint16_t peer_port(int i)
{
  return (uint16_t)(40000 + i * 7);
}

/* The peer's SYN from `pport`; returns our SYN-ACK's sequence number (0 if none was sent). */
static uint32_t send_syn(uint16_t pport)
{
  int before = h_tcp_count(&h);
  size_t n =
      h_build_tcp(frame, H_PEER_IP, pport, H_OUR_IP, PORT, 1000, 0, H_SYN, 65535, NULL, 0, NULL, 0);
  h_input(&h, frame, n);
  struct h_tcp t;
  if (h_tcp_count(&h) != before + 1 || !h_tcp_get(&h, -1, &t) || t.flags != (H_SYN | H_ACK) ||
      t.dport != pport)
    return 0;
  return t.seq;
}

static void send_ack(uint16_t pport, uint32_t synack_seq)
{
  size_t n = h_build_tcp(frame, H_PEER_IP, pport, H_OUR_IP, PORT, 1001, synack_seq + 1, H_ACK,
                         65535, NULL, 0, NULL, 0);
  h_input(&h, frame, n);
}

/* A whole handshake from `pport`: true if our SYN-ACK came and no RST answered the ACK. */
static bool handshake(uint16_t pport)
{
  uint32_t seq = send_syn(pport);
  if (seq == 0)
    return false;
  int before = h_tcp_count(&h);
  send_ack(pport, seq);
  return h_tcp_count(&h) == before;
}

/* Accepts one connection from `l` and says from which peer port (0 if none). */
static uint16_t accept_one(struct toe_sock *l)
{
  struct toe_sock *c = NULL;
  if (toe_tcp_accept(h.st, l, NULL, &c) != 0)
    return 0;
  struct toe_sockaddr r;
  toe_sock_name(c, NULL, &r);
  toe_tcp_abort(h.st, c);
  return r.port;
}

static struct toe_sock *lookup_tcp(uint16_t pport)
{
  return toe_socktab_lookup(h.st, TOE_IPPROTO_TCP, H_OUR_IP, PORT, H_PEER_IP, pport);
}

static void start(void)
{
  h_init(&h);
  h_learn_peer(&h);
}

TEST(bind_rules)
{
  start();
  int rc = 0;
  /* both must set it */
  struct toe_sock *a = tcp_bound(false, 0, &rc);
  REQUIRE(a != NULL);
  CHECK(tcp_bound(true, 0, &rc) == NULL);
  CHECK_EQ(rc, -TOE_EADDRINUSE);
  toe_sock_close(h.st, a);
  a = tcp_bound(true, 0, &rc);
  REQUIRE(a != NULL);
  CHECK(tcp_bound(false, 0, &rc) == NULL);
  CHECK_EQ(rc, -TOE_EADDRINUSE);
  /* same owner: shared; another owner (uid): refused, as Linux */
  struct toe_sock *b = tcp_bound(true, 0, &rc);
  CHECK(b != NULL);
  CHECK(tcp_bound(true, 1000, &rc) == NULL);
  CHECK_EQ(rc, -TOE_EADDRINUSE);
  int64_t v = -1;
  CHECK_EQ(toe_sock_getopt(h.st, a, TOE_SO_REUSEPORT, &v), 0);
  CHECK_EQ(v, 1);
  CHECK_EQ(toe_sock_setopt(h.st, a, TOE_SO_REUSEPORT, 2), -TOE_EINVAL);
  /* the same rules for UDP */
  struct toe_sock *u1 = udp_bound(true, 5, &rc);
  REQUIRE(u1 != NULL);
  struct toe_sock *u2 = udp_bound(true, 5, &rc);
  CHECK(u2 != NULL);
  CHECK(udp_bound(true, 6, &rc) == NULL);
  CHECK_EQ(rc, -TOE_EADDRINUSE);
  CHECK(udp_bound(false, 5, &rc) == NULL);
  CHECK_EQ(rc, -TOE_EADDRINUSE);
  CHECK_EQ(toe_sock_getopt(h.st, u2, TOE_SO_REUSEPORT, &v), 0);
  CHECK_EQ(v, 1);
  toe_sock_close(h.st, a);
  toe_sock_close(h.st, b);
  toe_sock_close(h.st, u1);
  toe_sock_close(h.st, u2);
  /* all gone: an ordinary bind works again */
  a = tcp_bound(false, 0, &rc);
  CHECK(a != NULL);
  h_fini(&h);
}

TEST(tcp_connections_spread_and_each_flow_sticks)
{
  start();
  struct toe_sock *l[2] = {tcp_listener(), tcp_listener()};
  REQUIRE(l[0] && l[1]);
  int got[2] = {0, 0};
  for (int i = 0; i < NFLOWS; i++) {
    uint16_t p = peer_port(i);
    struct toe_sock *want = lookup_tcp(p);
    REQUIRE(want == l[0] || want == l[1]);
    /* the choice is a function of the flow: asked again, the same answer */
    for (int k = 0; k < 4; k++)
      CHECK(lookup_tcp(p) == want);
    REQUIRE(handshake(p));
    int w = want == l[1];
    struct toe_sock *other = l[!w];
    CHECK_EQ(accept_one(other), 0); /* nothing went to the other one */
    CHECK_EQ(accept_one(want), p);
    got[w]++;
  }
  CHECK_EQ(got[0] + got[1], NFLOWS);
  CHECK(got[0] > 0);
  CHECK(got[1] > 0);
  h_fini(&h);
}

/* Linux migrates nothing by default: a member's close resets its own queued connections, the
 * others keep theirs, and new flows all go to the members left. */
TEST(closing_a_member_keeps_the_others_queued_connections)
{
  start();
  struct toe_sock *l[2] = {tcp_listener(), tcp_listener()};
  REQUIRE(l[0] && l[1]);
  int queued[2] = {0, 0};
  for (int i = 0; i < NFLOWS; i++) {
    uint16_t p = peer_port(i);
    queued[lookup_tcp(p) == l[1]]++;
    REQUIRE(handshake(p));
  }
  REQUIRE(queued[0] > 0 && queued[1] > 0);
  h_clear(&h);
  toe_sock_close(h.st, l[0]);
  /* l[0]'s connections were reset, one RST each */
  int rsts = 0;
  struct h_tcp t;
  for (int i = 0; h_tcp_get(&h, i, &t); i++)
    rsts += (t.flags & H_RST) != 0;
  CHECK_EQ(rsts, queued[0]);
  int accepted = 0;
  while (accept_one(l[1]) != 0)
    accepted++;
  CHECK_EQ(accepted, queued[1]);
  /* new flows: all to the member left */
  for (int i = NFLOWS; i < NFLOWS + 16; i++) {
    CHECK(lookup_tcp(peer_port(i)) == l[1]);
    REQUIRE(handshake(peer_port(i)));
    CHECK_EQ(accept_one(l[1]), peer_port(i));
  }
  h_fini(&h);
}

/* A handshake answered by one member completes there even if the group grows before its ACK. */
TEST(handshake_in_flight_stays_with_its_listener)
{
  start();
  struct toe_sock *a = tcp_listener();
  REQUIRE(a != NULL);
  uint32_t seq[NFLOWS];
  for (int i = 0; i < NFLOWS; i++) {
    seq[i] = send_syn(peer_port(i));
    REQUIRE(seq[i] != 0);
  }
  struct toe_sock *b = tcp_listener();
  REQUIRE(b != NULL);
  int moved = 0;
  for (int i = 0; i < NFLOWS; i++)
    moved += lookup_tcp(peer_port(i)) == b;
  CHECK(moved > 0); /* the hash would now send some of them to b */
  int before = h_tcp_count(&h);
  for (int i = 0; i < NFLOWS; i++)
    send_ack(peer_port(i), seq[i]);
  CHECK_EQ(h_tcp_count(&h), before); /* no RST */
  int accepted = 0;
  while (accept_one(a) != 0)
    accepted++;
  CHECK_EQ(accepted, NFLOWS);
  CHECK_EQ(accept_one(b), 0);
  h_fini(&h);
}

/* A member that is bound but not listening yet takes no connection (Linux adds it at listen). */
TEST(bound_member_not_listening_takes_nothing)
{
  start();
  struct toe_sock *a = tcp_listener();
  int rc = 0;
  struct toe_sock *b = tcp_bound(true, 0, &rc);
  REQUIRE(a && b);
  for (int i = 0; i < 16; i++) {
    REQUIRE(handshake(peer_port(i)));
    CHECK_EQ(accept_one(a), peer_port(i));
  }
  h_fini(&h);
}

TEST(udp_datagrams_spread_and_each_flow_sticks)
{
  start();
  int rc = 0;
  struct toe_sock *u[2] = {udp_bound(true, 0, &rc), udp_bound(true, 0, &rc)};
  REQUIRE(u[0] && u[1]);
  /* two rounds: every flow's second datagram must land where its first did */
  int owner_of[NFLOWS];
  int got[2] = {0, 0};
  for (int round = 0; round < 2; round++) {
    for (int i = 0; i < NFLOWS; i++) {
      uint8_t d = (uint8_t)i;
      size_t n = h_build_udp(frame, H_PEER_IP, peer_port(i), H_OUR_IP, PORT, &d, 1);
      h_input(&h, frame, n);
    }
    for (int k = 0; k < 2; k++) {
      uint8_t b;
      struct toe_sockaddr from;
      while (toe_udp_recvfrom(h.st, u[k], &b, 1, &from) == 1) {
        REQUIRE(b < NFLOWS);
        CHECK_EQ(from.port, peer_port(b));
        if (round == 0)
          owner_of[b] = k;
        else
          CHECK_EQ(owner_of[b], k);
        got[k]++;
      }
    }
  }
  CHECK_EQ(got[0] + got[1], 2 * NFLOWS); /* none lost */
  CHECK(got[0] > 0);
  CHECK(got[1] > 0);
  CHECK_EQ(h.st->ctr.udp.rx_drop_no_port, 0);
  /* a member leaves: the other gets everything */
  toe_sock_close(h.st, u[0]);
  for (int i = 0; i < NFLOWS; i++) {
    uint8_t d = (uint8_t)i;
    size_t n = h_build_udp(frame, H_PEER_IP, peer_port(i), H_OUR_IP, PORT, &d, 1);
    h_input(&h, frame, n);
  }
  CHECK_EQ(toe_udp_rx_pending(u[1], NULL), NFLOWS);
  toe_sock_close(h.st, u[1]);
  h_fini(&h);
}

/* A SO_REUSEPORT server restarts at once: its connections' TIME_WAIT keeps out an ordinary bind
 * but not a SO_REUSEPORT one (Linux: the children inherit sk_reuseport). */
TEST(time_wait_of_the_group_lets_reuseport_bind_again)
{
  start();
  struct toe_sock *l = tcp_listener();
  REQUIRE(l != NULL);
  uint16_t p = peer_port(1);
  uint32_t seq = send_syn(p);
  REQUIRE(seq != 0);
  send_ack(p, seq);
  struct toe_sock *c = NULL;
  REQUIRE(toe_tcp_accept(h.st, l, NULL, &c) == 0);
  toe_sock_close(h.st, c); /* our FIN first: we hold TIME_WAIT */
  size_t n = h_build_tcp(frame, H_PEER_IP, p, H_OUR_IP, PORT, 1001, seq + 2, H_FIN | H_ACK, 65535,
                         NULL, 0, NULL, 0);
  h_input(&h, frame, n);
  REQUIRE(h.st->tcp.tw_inuse == 1);
  toe_sock_close(h.st, l);
  int rc = 0;
  CHECK(tcp_bound(false, 0, &rc) == NULL);
  CHECK_EQ(rc, -TOE_EADDRINUSE);
  struct toe_sock *again = tcp_bound(true, 0, &rc);
  CHECK(again != NULL);
  CHECK_EQ(rc, 0);
  h_fini(&h);
}

TEST_MAIN()
