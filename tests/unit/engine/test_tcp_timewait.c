/*
 * Compact TIME_WAIT (tcp_timewait.c), observed on the wire: connections closed actively against a
 * scripted peer (tcp_harness.h), then segments for the TIME_WAIT 4-tuple and the answers we send.
 */
#include "engine/stack.h"
#include "engine/tcp.h"
#include "harness.h"
#include "tcp_harness.h"
#include "testlib.h"

#include <stdlib.h>
#include <string.h>

struct tw {
  struct harness h;
  struct h_conn c;
  uint32_t our_fin; /* sequence number of our FIN */
  uint32_t last_tsval;
};

static const struct toe_counters_tcp *C(struct tw *t)
{
  return &toe_stack_counters(t->h.st)->tcp;
}

/*
 * Brings a connection to TIME_WAIT: opened actively (lport 0) or accepted on `listen_port`, then
 * closed by us first; the peer ACKs our FIN and sends its own, which we ACK. With `app_close`
 * false the application only shut down writing (the socket stays open).
 */
static int tw_setup(struct tw *t, const struct toe_config *cfg, uint16_t pport,
                    uint16_t listen_port, bool ts, bool app_close)
{
  struct toe_config c;
  if (cfg)
    c = *cfg;
  else
    h_default_cfg(&c);
  h_init_cfg(&t->h, &c);
  h_conn_init(&t->c, &t->h, pport);
  t->c.syn_opt.ts = ts;
  int rc = listen_port ? h_conn_accept(&t->c, listen_port) : h_conn_connect(&t->c, 0);
  if (rc != 0)
    return -10 + rc;
  h_advance(&t->h, TOE_MSEC(10));
  if (app_close)
    toe_sock_close(t->h.st, t->c.s);
  else
    toe_tcp_shutdown(t->h.st, t->c.s, TOE_SHUT_WR);
  struct h_tcp fin;
  if (!h_conn_last(&t->c, &fin) || !(fin.flags & H_FIN))
    return -20;
  t->our_fin = fin.seq;
  t->c.rcv_nxt = fin.seq + 1;
  h_advance(&t->h, TOE_MSEC(10));
  h_conn_send(&t->c, H_ACK, NULL, 0);
  h_advance(&t->h, TOE_MSEC(10));
  h_conn_send(&t->c, H_FIN | H_ACK, NULL, 0);
  struct h_tcp ack;
  if (!h_conn_last(&t->c, &ack) || ack.flags != H_ACK || ack.ack != t->c.snd_nxt)
    return -30;
  t->last_tsval = ack.tsval;
  if (t->h.st->tcp.tw_inuse != 1)
    return -40;
  h_clear(&t->h);
  return 0;
}

/* An ACK from TIME_WAIT: <SEQ=our FIN+1><ACK=peer's FIN+1>. */
static bool is_tw_ack(struct tw *t, const struct h_tcp *a)
{
  return a->flags == H_ACK && a->seq == t->our_fin + 1 && a->ack == t->c.snd_nxt;
}

static struct h_tcp_opt ts_opt(uint32_t tsval, uint32_t tsecr)
{
  struct h_tcp_opt o;
  h_tcp_opt_none(&o);
  o.ts = true;
  o.tsval = tsval;
  o.tsecr = tsecr;
  return o;
}

TEST(active_close_enters_compact_timewait_and_frees_tcb)
{
  struct tw t;
  int rc = tw_setup(&t, NULL, 5000, 0, true, true);
  CHECK_EQ(rc, 0);
  REQUIRE(rc == 0);
  CHECK_EQ(t.h.st->tcp.inuse, 0); /* the orphaned tcb is gone */
  CHECK_EQ(t.h.st->tcp.tw_inuse, 1);
  CHECK_EQ(C(&t)->tw_entered, 1);
  CHECK_EQ(C(&t)->tw_inuse, 1);
  CHECK(toe_tcp_lookup(t.h.st, H_OUR_IP, t.c.lport, H_PEER_IP, 5000) == NULL);
  h_fini(&t.h);
}

static void visit_count(void *arg, const struct toe_sock *s, const struct toe_sockaddr *local,
                        const struct toe_sockaddr *remote, const struct toe_tcp_info *info)
{
  int *n = arg;
  if (s == NULL && info->state == TOE_TCP_TIME_WAIT && remote->port == 5001 &&
      remote->addr == H_PEER_IP && local->addr == H_OUR_IP)
    (*n)++;
}

TEST(timewait_visible_in_flow_table)
{
  struct tw t;
  REQUIRE(tw_setup(&t, NULL, 5001, 0, true, true) == 0);
  int n = 0;
  toe_tcp_visit(t.h.st, visit_count, &n);
  CHECK_EQ(n, 1);
  h_fini(&t.h);
}

TEST(socket_kept_until_application_closes)
{
  struct tw t;
  REQUIRE(tw_setup(&t, NULL, 5002, 0, true, false) == 0);
  CHECK_EQ(t.h.st->tcp.inuse, 1);
  CHECK_EQ(t.h.st->tcp.tw_inuse, 1);
  char b[4];
  CHECK_EQ(toe_tcp_recv(t.h.st, t.c.s, b, sizeof(b)), 0); /* EOF */
  toe_sock_close(t.h.st, t.c.s);
  CHECK_EQ(t.h.st->tcp.inuse, 0);
  CHECK_EQ(t.h.st->tcp.tw_inuse, 1);
  h_fini(&t.h);
}

TEST(expires_after_2msl)
{
  struct tw t;
  REQUIRE(tw_setup(&t, NULL, 5003, 0, true, true) == 0);
  h_advance(&t.h, TOE_SEC(59));
  CHECK_EQ(t.h.st->tcp.tw_inuse, 1);
  h_advance(&t.h, TOE_SEC(2));
  CHECK_EQ(t.h.st->tcp.tw_inuse, 0);
  CHECK_EQ(C(&t)->tw_expired, 1);
  CHECK_EQ(t.h.ntx, 0); /* silently */
  /* the 4-tuple is free: a segment for it now gets a RST from no connection */
  h_conn_send(&t.c, H_ACK, NULL, 0);
  struct h_tcp r;
  REQUIRE(h_conn_last(&t.c, &r));
  CHECK(r.flags & H_RST);
  h_fini(&t.h);
}

TEST(retransmitted_fin_reacked_and_wait_restarted)
{
  struct tw t;
  REQUIRE(tw_setup(&t, NULL, 5004, 0, true, true) == 0);
  h_advance(&t.h, TOE_SEC(40));
  /* our ACK was lost: the peer repeats its FIN */
  h_conn_send_at(&t.c, t.c.snd_nxt - 1, H_FIN | H_ACK, NULL, 0);
  struct h_tcp a;
  REQUIRE(h_conn_last(&t.c, &a));
  CHECK(is_tw_ack(&t, &a));
  CHECK(a.has_ts);
  /* TSvals continue our clock: 40 s later, about 40000 more (ms) */
  CHECK((int32_t)(a.tsval - t.last_tsval) >= 40000);
  CHECK((int32_t)(a.tsval - t.last_tsval) <= 40100);
  CHECK_EQ(C(&t)->tw_fin_acked, 1);
  /* 2*MSL counts again from the retransmitted FIN */
  h_advance(&t.h, TOE_SEC(59));
  CHECK_EQ(t.h.st->tcp.tw_inuse, 1);
  h_advance(&t.h, TOE_SEC(2));
  CHECK_EQ(t.h.st->tcp.tw_inuse, 0);
  h_fini(&t.h);
}

TEST(rst_ignored_rfc1337)
{
  struct tw t;
  REQUIRE(tw_setup(&t, NULL, 5005, 0, true, true) == 0);
  h_conn_send_raw(&t.c, t.c.snd_nxt, 0, H_RST, 0, NULL, NULL, 0);
  h_conn_send_raw(&t.c, t.c.snd_nxt, t.c.rcv_nxt, H_RST | H_ACK, 0, NULL, NULL, 0);
  CHECK_EQ(t.h.ntx, 0);
  CHECK_EQ(t.h.st->tcp.tw_inuse, 1);
  CHECK_EQ(C(&t)->tw_rst_ignored, 2);
  h_fini(&t.h);
}

TEST(acceptable_bare_ack_silent_others_acked)
{
  struct tw t;
  REQUIRE(tw_setup(&t, NULL, 5006, 0, true, true) == 0);
  /* a repeated ACK of our FIN: nothing to say */
  h_conn_send(&t.c, H_ACK, NULL, 0);
  CHECK_EQ(t.h.ntx, 0);
  /* data after the FIN is not acceptable: ACK */
  h_conn_send_at(&t.c, t.c.snd_nxt, H_ACK, "late", 4);
  struct h_tcp a;
  REQUIRE(h_conn_last(&t.c, &a));
  CHECK(is_tw_ack(&t, &a));
  /* an old segment from before the FIN: ACK */
  h_clear(&t.h);
  h_conn_send_at(&t.c, t.c.snd_nxt - 100, H_ACK, "old", 3);
  REQUIRE(h_conn_last(&t.c, &a));
  CHECK(is_tw_ack(&t, &a));
  /* a segment without ACK: dropped */
  h_clear(&t.h);
  h_conn_send_raw(&t.c, t.c.snd_nxt, 0, 0, 100, NULL, "x", 1);
  CHECK_EQ(t.h.ntx, 0);
  CHECK_EQ(t.h.st->tcp.tw_inuse, 1);
  h_fini(&t.h);
}

TEST(paws_old_duplicate_acked)
{
  struct tw t;
  REQUIRE(tw_setup(&t, NULL, 5007, 0, true, true) == 0);
  struct h_tcp_opt o = ts_opt(t.c.tsval - 50, t.last_tsval);
  h_conn_send_raw(&t.c, t.c.snd_nxt, t.c.rcv_nxt, H_ACK, 100, &o, NULL, 0);
  struct h_tcp a;
  REQUIRE(h_conn_last(&t.c, &a));
  CHECK(is_tw_ack(&t, &a));
  CHECK_EQ(a.tsecr, t.c.tsval - 1); /* TS.Recent: the TSval of the peer's FIN */
  CHECK_EQ(C(&t)->rx_drop_paws, 1);
  h_fini(&t.h);
}

TEST(syn_without_listener_gets_ack)
{
  struct tw t;
  REQUIRE(tw_setup(&t, NULL, 5008, 0, true, true) == 0);
  struct h_tcp_opt o = ts_opt(t.c.tsval + 1000, 0);
  o.mss = 1460;
  h_conn_send_raw(&t.c, t.c.snd_nxt + 100000, 0, H_SYN, 65535, &o, NULL, 0);
  struct h_tcp a;
  REQUIRE(h_conn_last(&t.c, &a));
  CHECK(is_tw_ack(&t, &a));
  CHECK_EQ(t.h.st->tcp.tw_inuse, 1);
  h_fini(&t.h);
}

TEST(syn_with_newer_timestamp_reopens_through_listener)
{
  struct tw t;
  REQUIRE(tw_setup(&t, NULL, 5009, 8080, true, true) == 0);
  CHECK_EQ(t.h.st->tcp.inuse, 1); /* the listener */
  /* an older TSval: not a new incarnation (RFC 6191): ACK */
  struct h_tcp_opt o = ts_opt(t.c.tsval - 10, 0);
  o.mss = 1460;
  h_conn_send_raw(&t.c, t.c.snd_nxt + 100000, 0, H_SYN, 65535, &o, NULL, 0);
  struct h_tcp a;
  REQUIRE(h_conn_last(&t.c, &a));
  CHECK(is_tw_ack(&t, &a));
  CHECK_EQ(t.h.st->tcp.tw_inuse, 1);
  /* a newer one, even with a lower sequence number, is */
  h_clear(&t.h);
  o.tsval = t.c.tsval + 10;
  h_conn_send_raw(&t.c, t.c.snd_nxt - 100000, 0, H_SYN, 65535, &o, NULL, 0);
  REQUIRE(h_conn_last(&t.c, &a));
  CHECK_EQ(a.flags, H_SYN | H_ACK);
  CHECK_EQ(a.ack, t.c.snd_nxt - 100000 + 1);
  /* our new ISS lies beyond the old connection's sequence space */
  CHECK((int32_t)(a.seq - (t.our_fin + 1)) >= 65537);
  CHECK_EQ(t.h.st->tcp.tw_inuse, 0);
  CHECK_EQ(C(&t)->tw_reopened, 1);
  CHECK_EQ(toe_tcp_syncache_count(t.h.st, NULL), 1);
  /* and the handshake completes */
  struct h_tcp_opt ao = ts_opt(t.c.tsval + 11, a.tsval);
  h_conn_send_raw(&t.c, t.c.snd_nxt - 100000 + 1, a.seq + 1, H_ACK, 100, &ao, NULL, 0);
  struct toe_sock *s = NULL;
  CHECK_EQ(toe_tcp_accept(t.h.st, t.c.ls, NULL, &s), 0);
  h_fini(&t.h);
}

TEST(without_timestamps_only_a_higher_sequence_reopens)
{
  struct tw t;
  REQUIRE(tw_setup(&t, NULL, 5010, 8081, false, true) == 0);
  struct h_tcp_opt o;
  h_tcp_opt_none(&o);
  o.mss = 1460;
  h_conn_send_raw(&t.c, t.c.snd_nxt - 5000, 0, H_SYN, 65535, &o, NULL, 0);
  struct h_tcp a;
  REQUIRE(h_conn_last(&t.c, &a));
  CHECK(is_tw_ack(&t, &a));
  CHECK(!a.has_ts);
  CHECK_EQ(t.h.st->tcp.tw_inuse, 1);
  h_clear(&t.h);
  h_conn_send_raw(&t.c, t.c.snd_nxt + 5000, 0, H_SYN, 65535, &o, NULL, 0);
  REQUIRE(h_conn_last(&t.c, &a));
  CHECK_EQ(a.flags, H_SYN | H_ACK);
  CHECK_EQ(a.ack, t.c.snd_nxt + 5001);
  CHECK_EQ(t.h.st->tcp.tw_inuse, 0);
  h_fini(&t.h);
}

TEST(full_table_recycles_oldest)
{
  struct toe_config cfg;
  h_default_cfg(&cfg);
  cfg.tcp_timewait = 2;
  struct tw t;
  REQUIRE(tw_setup(&t, &cfg, 5100, 0, true, true) == 0);
  uint16_t first_lport = t.c.lport;
  /* two more connections on the same stack */
  for (int i = 1; i <= 2; i++) {
    struct h_conn c;
    h_conn_init(&c, &t.h, (uint16_t)(5100 + i));
    REQUIRE(h_conn_connect(&c, 0) == 0);
    toe_sock_close(t.h.st, c.s);
    struct h_tcp fin;
    REQUIRE(h_conn_last(&c, &fin));
    c.rcv_nxt = fin.seq + 1;
    h_conn_send(&c, H_FIN | H_ACK, NULL, 0);
    h_advance(&t.h, TOE_MSEC(10));
  }
  CHECK_EQ(t.h.st->tcp.tw_inuse, 2);
  CHECK_EQ(C(&t)->tw_recycled, 1);
  CHECK_EQ(C(&t)->tw_entered, 3);
  CHECK_EQ(t.h.st->tcp.inuse, 0);
  /* the oldest 4-tuple is no longer held */
  CHECK_EQ(toe_tcp_timewait_connect(t.h.st, H_OUR_IP, first_lport, H_PEER_IP, 5100, NULL), 0);
  h_fini(&t.h);
}

TEST(connect_may_reuse_after_a_second_with_timestamps)
{
  struct tw t;
  REQUIRE(tw_setup(&t, NULL, 5200, 0, true, true) == 0);
  uint32_t floor = 0;
  CHECK_EQ(toe_tcp_timewait_connect(t.h.st, H_OUR_IP, t.c.lport, H_PEER_IP, 5200, &floor),
           -TOE_EADDRINUSE);
  CHECK_EQ(toe_tcp_timewait_connect(t.h.st, H_OUR_IP, t.c.lport, H_PEER_IP, 5201, &floor), 0);
  CHECK(toe_tcp_timewait_port_used(t.h.st, 0, t.c.lport, false));
  CHECK(!toe_tcp_timewait_port_used(t.h.st, 0, (uint16_t)(t.c.lport + 1), false));
  /* the connection had no SO_REUSEPORT: a SO_REUSEPORT bind is held back as well */
  CHECK(toe_tcp_timewait_port_used(t.h.st, 0, t.c.lport, true));
  h_advance(&t.h, TOE_MSEC(1500));
  CHECK_EQ(toe_tcp_timewait_connect(t.h.st, H_OUR_IP, t.c.lport, H_PEER_IP, 5200, &floor), 1);
  CHECK_EQ(floor, t.our_fin + 1 + 65537);
  CHECK_EQ(t.h.st->tcp.tw_inuse, 0);
  CHECK_EQ(C(&t)->tw_reused, 1);
  h_fini(&t.h);
}

TEST(no_reuse_without_timestamps)
{
  struct tw t;
  REQUIRE(tw_setup(&t, NULL, 5300, 0, false, true) == 0);
  h_advance(&t.h, TOE_SEC(5));
  CHECK_EQ(toe_tcp_timewait_connect(t.h.st, H_OUR_IP, t.c.lport, H_PEER_IP, 5300, NULL),
           -TOE_EADDRINUSE);
  h_fini(&t.h);
}

TEST_MAIN()
