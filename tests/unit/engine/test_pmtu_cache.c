/*
 * The path MTU cache (src/engine/pmtu.c, RFC 1191 5-6) on the virtual clock: an ICMP
 * "fragmentation needed" is remembered for the destination, so later connections to it (active
 * and passive) start at the path's size while still offering the link's MSS (RFC 1191 3.1); the
 * estimate ages out after 10 minutes (RFC 1191 6.3, restarted by each decrease) and the
 * connections that used it go back to the link MTU; the table is bounded.
 */
#include "engine/pmtu.h"
#include "engine/stack.h"
#include "engine/tcp.h"
#include "harness.h"
#include "tcp_harness.h"
#include "testlib.h"

#include <string.h>

static struct harness H; /* big: keep it off the stack */

#define NARROW 1000u

/* Connection c sends `len` bytes; the router reports the first data segment too big for NARROW;
 * then the peer acknowledges everything (the connection is idle again). */
static void narrow_path(struct h_conn *c, uint32_t len)
{
  static uint8_t data[8192];
  h_clear(&H);
  REQUIRE(toe_tcp_send(H.st, c->s, data, len, 0) == (int)len);
  int first = h_tcp_find(&H, 0);
  REQUIRE(first >= 0);
  uint8_t quoted[128];
  memcpy(quoted, H.tx[first].bytes, sizeof(quoted));
  h_input_icmp_error(&H, H_ROUTER_IP, quoted, 3, 4, NARROW); /* frag needed */
  h_conn_send_raw(c, c->snd_nxt, c->iss + 1 + len, H_ACK, c->win, NULL, NULL, 0);
  REQUIRE(toe_tcb(c->s)->snd_una == toe_tcb(c->s)->snd_max);
}

TEST(frag_needed_is_remembered_for_later_connections)
{
  h_init(&H);
  struct h_conn a;
  h_conn_init(&a, &H, 9001);
  REQUIRE(h_conn_connect(&a, 0) == 0);
  narrow_path(&a, 4000);
  struct toe_tcb *ta = toe_tcb(a.s);
  CHECK_EQ(ta->pmtu, NARROW);
  CHECK_EQ(ta->snd_mss, NARROW - 40);
  CHECK_EQ(H.st->ctr.ip.pmtu_lowered, 1);
  CHECK_EQ(toe_pmtu_get(H.st, H_PEER_IP), NARROW);
  CHECK_EQ(toe_pmtu_get(H.st, H_PEER_IP + 1), H.cfg.mtu); /* another destination */

  /* Active open to the same destination: segments of the path's size from the start, while the
   * MSS offered is still the link's (RFC 1191 3.1). */
  struct h_conn b;
  h_conn_init(&b, &H, 9002);
  REQUIRE(h_conn_connect(&b, 0) == 0);
  CHECK(b.syn.has_mss);
  CHECK_EQ(b.syn.mss, H.cfg.mtu - 40);
  CHECK_EQ(toe_tcb(b.s)->pmtu, NARROW);
  CHECK_EQ(toe_tcb(b.s)->snd_mss, NARROW - 40);
  static uint8_t data[3000];
  h_clear(&H);
  REQUIRE(toe_tcp_send(H.st, b.s, data, sizeof(data), 0) == (int)sizeof(data));
  struct h_tcp t;
  REQUIRE(h_tcp_get(&H, 0, &t));
  CHECK_EQ(t.dlen, NARROW - 40 - 12); /* timestamps */

  /* Passive open from that peer too. */
  struct h_conn p;
  h_conn_init(&p, &H, 9003);
  REQUIRE(h_conn_accept(&p, 8080) == 0);
  CHECK_EQ(p.syn.mss, H.cfg.mtu - 40);
  CHECK_EQ(toe_tcb(p.s)->pmtu, NARROW);
  CHECK_EQ(toe_tcb(p.s)->snd_mss, NARROW - 40);
  CHECK_EQ(H.st->ctr.tcp.pmtu_from_cache, 2);
  h_fini(&H);
}

TEST(estimate_ages_out_after_ten_minutes)
{
  h_init(&H);
  struct h_conn a;
  h_conn_init(&a, &H, 9011);
  REQUIRE(h_conn_connect(&a, 0) == 0);
  narrow_path(&a, 4000);
  struct h_conn b;
  h_conn_init(&b, &H, 9012);
  REQUIRE(h_conn_connect(&b, 0) == 0);
  CHECK_EQ(toe_tcb(b.s)->snd_mss, NARROW - 40);

  h_advance(&H, TOE_SEC(599));
  CHECK_EQ(toe_pmtu_get(H.st, H_PEER_IP), NARROW);
  CHECK_EQ(toe_tcb(a.s)->pmtu, NARROW);
  CHECK_EQ(H.st->ctr.ip.pmtu_expired, 0);

  /* RFC 1191 6.3: after 10 minutes the estimate goes back to the link MTU, and so do the
   * connections that used it (as far as the peer's MSS option allows). */
  h_advance(&H, TOE_SEC(2));
  CHECK_EQ(toe_pmtu_get(H.st, H_PEER_IP), H.cfg.mtu);
  CHECK_EQ(H.st->ctr.ip.pmtu_expired, 1);
  CHECK_EQ(H.st->ctr.tcp.pmtu_raised, 2);
  CHECK_EQ(toe_tcb(a.s)->pmtu, H.cfg.mtu);
  CHECK_EQ(toe_tcb(a.s)->snd_mss, 1460);
  CHECK_EQ(toe_tcb(b.s)->snd_mss, 1460);
  static uint8_t data[3000];
  h_learn_peer(&H); /* the neighbour entry aged too in those 10 minutes */
  h_clear(&H);
  REQUIRE(toe_tcp_send(H.st, a.s, data, sizeof(data), 0) == (int)sizeof(data));
  struct h_tcp t;
  REQUIRE(h_tcp_get(&H, 0, &t));
  CHECK_EQ(t.dlen, 1460 - 12);
  /* and a new connection starts at the link MTU */
  struct h_conn c;
  h_conn_init(&c, &H, 9013);
  REQUIRE(h_conn_connect(&c, 0) == 0);
  CHECK_EQ(toe_tcb(c.s)->pmtu, H.cfg.mtu);
  h_fini(&H);
}

TEST(a_peer_with_a_small_mss_is_not_raised_past_it)
{
  h_init(&H);
  struct h_conn a;
  h_conn_init(&a, &H, 9021);
  a.syn_opt.mss = 1200; /* the peer's MSS option */
  REQUIRE(h_conn_connect(&a, 0) == 0);
  CHECK_EQ(toe_tcb(a.s)->snd_mss, 1200);
  narrow_path(&a, 4000);
  CHECK_EQ(toe_tcb(a.s)->snd_mss, NARROW - 40);
  h_advance(&H, TOE_PMTU_AGE + TOE_SEC(1));
  CHECK_EQ(toe_tcb(a.s)->pmtu, H.cfg.mtu);
  CHECK_EQ(toe_tcb(a.s)->snd_mss, 1200);
  h_fini(&H);
}

TEST(cache_rules_and_bounds)
{
  h_init(&H);
  struct toe_stack *st = H.st;
  const uint32_t d = 0xc6130001u; /* 198.19.0.1 */
  /* At or above the link MTU: nothing to remember. */
  toe_pmtu_lower(st, d, (uint16_t)H.cfg.mtu);
  CHECK_EQ(st->pmtu.n, 0);
  toe_pmtu_lower(st, d, 1200);
  CHECK_EQ(toe_pmtu_get(st, d), 1200);
  /* Only lowered, never raised by a report (RFC 1191 6.3: increases come from ageing). */
  toe_pmtu_lower(st, d, 1400);
  CHECK_EQ(toe_pmtu_get(st, d), 1200);
  /* Each decrease restarts the ageing. */
  h_advance(&H, TOE_SEC(300));
  toe_pmtu_lower(st, d, 1100);
  h_advance(&H, TOE_SEC(400)); /* 700 s after the first report, 400 after the second */
  CHECK_EQ(toe_pmtu_get(st, d), 1100);
  h_advance(&H, TOE_SEC(201));
  CHECK_EQ(toe_pmtu_get(st, d), H.cfg.mtu);
  CHECK_EQ(st->pmtu.n, 0);

  /* Bounded: a full table makes room by dropping the estimate closest to ageing out. */
  for (uint32_t i = 0; i < TOE_PMTU_ENTRIES; i++) {
    toe_pmtu_lower(st, d + i, 1000);
    h_advance(&H, TOE_MSEC(10));
  }
  CHECK_EQ(st->pmtu.n, TOE_PMTU_ENTRIES);
  toe_pmtu_lower(st, d + 1000, 900);
  CHECK_EQ(st->pmtu.n, TOE_PMTU_ENTRIES);
  CHECK_EQ(st->ctr.ip.pmtu_evicted, 1);
  CHECK_EQ(toe_pmtu_get(st, d), H.cfg.mtu); /* the oldest went */
  CHECK_EQ(toe_pmtu_get(st, d + 1), 1000);
  CHECK_EQ(toe_pmtu_get(st, d + 1000), 900);
  /* and everything ages out on one timer */
  h_advance(&H, TOE_PMTU_AGE + TOE_SEC(1));
  CHECK_EQ(st->pmtu.n, 0);
  CHECK_EQ(st->ctr.ip.pmtu_expired, 1 + TOE_PMTU_ENTRIES);
  h_fini(&H);
}

TEST_MAIN()
