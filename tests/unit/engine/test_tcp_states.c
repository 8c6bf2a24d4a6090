/*
 * The TCP state machine (RFC 9293 3.3.2, 3.5, 3.6, 3.10.7) seen from the wire: every transition
 * of an active and a passive open, simultaneous open, the three ways to close (active, passive,
 * simultaneous), half-close in both directions, and resets in each state. Each test drives the
 * engine with hand-built segments from a scripted peer and checks the segments it answers with.
 */
#include "engine/stack.h"
#include "engine/tcp.h"
#include "harness.h"
#include "tcp_harness.h"
#include "testlib.h"

#include <string.h>

static int state_of(const struct h_conn *c)
{
  return toe_tcb(c->s)->state;
}

/* Events `mask` reported for socket `s` since the last h_clear. */
static int events(const struct harness *h, const struct toe_sock *s, uint32_t mask)
{
  int n = 0;
  for (int i = 0; i < h->nev; i++)
    if (h->ev[i].sock == s && (h->ev[i].events & mask))
      n++;
  return n;
}

static uint64_t tw_entries(const struct harness *h)
{
  return h->st->tcp.tw_inuse;
}

/* ---- opening ---- */

TEST(active_open)
{
  struct harness h;
  h_init(&h);
  struct h_conn c;
  h_conn_init(&c, &h, 5001);
  REQUIRE(h_conn_connect(&c, 0) == 0);
  /* our SYN offered the options, with an unscaled window */
  CHECK(c.syn.has_mss);
  CHECK_EQ(c.syn.mss, 1460);
  CHECK(c.syn.sack_perm);
  CHECK(c.syn.has_ts);
  CHECK(c.syn.has_ws);
  CHECK(c.syn.csum_ok);
  CHECK_EQ(state_of(&c), TOE_TCP_ESTABLISHED);
  struct toe_tcb *tp = toe_tcb(c.s);
  CHECK(tp->flags & TOE_TF_SACK_OK);
  CHECK(tp->flags & TOE_TF_TS_OK);
  CHECK(tp->flags & TOE_TF_WS_OK);
  CHECK_EQ(tp->snd_wscale, 7);
  CHECK_EQ(tp->snd_mss, 1460);
  CHECK_EQ(tp->rcv_nxt, c.irs + 1);
  CHECK_EQ(tp->snd_una, c.iss + 1);
  /* the SYN-ACK's window is not scaled (RFC 7323 2.2) */
  CHECK_EQ(tp->snd_wnd, 65535);
  CHECK(events(&h, c.s, TOE_EV_WRITABLE) >= 1);
  CHECK_EQ(h.st->ctr.tcp.curr_estab, 1);
  /* the handshake ACK: <SEQ=ISS+1><ACK=IRS+1>, echoing the peer's TSval */
  struct h_tcp a;
  REQUIRE(h_conn_last(&c, &a));
  CHECK_EQ(a.seq, c.iss + 1);
  CHECK_EQ(a.flags, H_ACK);
  CHECK(a.has_ts);
  CHECK_EQ(a.tsecr, c.tsval - 1);
  h_fini(&h);
}

TEST(active_open_peer_without_options)
{
  struct harness h;
  h_init(&h);
  struct h_conn c;
  h_conn_init(&c, &h, 5002);
  h_tcp_opt_none(&c.syn_opt);
  REQUIRE(h_conn_connect(&c, 0) == 0);
  struct toe_tcb *tp = toe_tcb(c.s);
  /* nothing the peer did not echo is used (RFC 7323 2.2, 3.2; RFC 2018 2) */
  CHECK(!(tp->flags & TOE_TF_SACK_OK));
  CHECK(!(tp->flags & TOE_TF_TS_OK));
  CHECK(!(tp->flags & TOE_TF_WS_OK));
  CHECK_EQ(tp->snd_wscale, 0);
  CHECK_EQ(tp->rcv_wscale, 0);
  CHECK_EQ(tp->snd_mss, 536); /* RFC 9293 3.7.1 default */
  struct h_tcp a;
  REQUIRE(h_conn_last(&c, &a));
  CHECK(!a.has_ts);
  h_fini(&h);
}

TEST(passive_open)
{
  struct harness h;
  h_init(&h);
  struct h_conn c;
  h_conn_init(&c, &h, 6001);
  REQUIRE(h_conn_accept(&c, 80) == 0);
  CHECK_EQ(state_of(&c), TOE_TCP_ESTABLISHED);
  CHECK_EQ(c.syn.flags, H_SYN | H_ACK);
  CHECK_EQ(c.syn.ack, c.irs + 1);
  /* data in the first segments after the handshake is delivered */
  h_conn_send(&c, H_ACK | H_PSH, "hello", 5);
  char buf[16];
  CHECK_EQ(h_conn_read(&c, buf, sizeof(buf)), 5);
  CHECK_MEM(buf, "hello", 5);
  h_fini(&h);
}

TEST(synsent_bad_ack_gets_rst_and_stays)
{
  struct harness h;
  h_init(&h);
  struct h_conn c;
  h_conn_init(&c, &h, 5003);
  struct toe_sock *s = NULL;
  REQUIRE(toe_tcp_open(h.st, &c, &s) == 0);
  struct toe_sockaddr r = {.family = TOE_AF_INET, .port = c.pport, .addr = H_PEER_IP};
  toe_sock_connect(h.st, s, &r);
  c.s = s;
  struct h_tcp syn;
  REQUIRE(h_conn_last(&c, &syn));
  c.lport = syn.sport;
  c.iss = syn.seq;
  /* SYN-ACK acknowledging something we never sent: <SEQ=SEG.ACK><CTL=RST> (RFC 9293 3.10.7.3) */
  int before = h.ntx;
  h_conn_send_raw(&c, 777, c.iss + 100, H_SYN | H_ACK, 1000, NULL, NULL, 0);
  struct h_tcp rst;
  REQUIRE(h.ntx == before + 1);
  REQUIRE(h_conn_last(&c, &rst));
  CHECK_EQ(rst.flags, H_RST);
  CHECK_EQ(rst.seq, c.iss + 100);
  CHECK_EQ(state_of(&c), TOE_TCP_SYN_SENT);
  /* a RST without ACK is ignored in SYN-SENT (RFC 5961 3.2 / RFC 9293) */
  h_conn_send_raw(&c, 777, 0, H_RST, 0, NULL, NULL, 0);
  CHECK_EQ(state_of(&c), TOE_TCP_SYN_SENT);
  /* a segment without SYN is dropped */
  h_conn_send_raw(&c, 777, c.iss + 1, H_ACK, 1000, NULL, NULL, 0);
  CHECK_EQ(state_of(&c), TOE_TCP_SYN_SENT);
  /* the connection still completes */
  h_conn_send_raw(&c, c.irs, c.iss + 1, H_SYN | H_ACK, 1000, NULL, NULL, 0);
  CHECK_EQ(state_of(&c), TOE_TCP_ESTABLISHED);
  h_fini(&h);
}

TEST(synsent_rst_refuses)
{
  struct harness h;
  h_init(&h);
  struct h_conn c;
  h_conn_init(&c, &h, 5004);
  struct toe_sock *s = NULL;
  REQUIRE(toe_tcp_open(h.st, &c, &s) == 0);
  struct toe_sockaddr r = {.family = TOE_AF_INET, .port = c.pport, .addr = H_PEER_IP};
  toe_sock_connect(h.st, s, &r);
  c.s = s;
  struct h_tcp syn;
  REQUIRE(h_conn_last(&c, &syn));
  c.lport = syn.sport;
  uint64_t fails = h.st->ctr.tcp.attempt_fails;
  /* RST,ACK acknowledging our SYN: connection refused */
  h_conn_send_raw(&c, 0, syn.seq + 1, H_RST | H_ACK, 0, NULL, NULL, 0);
  CHECK(events(&h, s, TOE_EV_ERROR | TOE_EV_HUP) >= 1);
  CHECK_EQ(toe_sock_error(h.st, s), -TOE_ECONNREFUSED);
  CHECK_EQ(h.st->ctr.tcp.attempt_fails, fails + 1);
  h_fini(&h);
}

/* Starts a connect and returns our SYN; the peer's SYN crosses it (simultaneous open). */
static bool simultaneous_start(struct harness *h, struct h_conn *c)
{
  struct toe_sock *s = NULL;
  if (toe_tcp_open(h->st, c, &s) != 0)
    return false;
  struct toe_sockaddr l = {.family = TOE_AF_INET, .port = 7000, .addr = 0};
  if (toe_sock_bind(h->st, s, &l) != 0)
    return false;
  c->lport = 7000;
  struct toe_sockaddr r = {.family = TOE_AF_INET, .port = c->pport, .addr = H_PEER_IP};
  toe_sock_connect(h->st, s, &r);
  c->s = s;
  if (!h_conn_last(c, &c->syn) || c->syn.flags != H_SYN)
    return false;
  c->iss = c->syn.seq;
  /* the peer's own SYN (no ACK) */
  struct h_tcp_opt o = c->syn_opt;
  o.tsval = c->tsval++;
  o.tsecr = 0;
  h_conn_send_raw(c, c->irs, 0, H_SYN, c->win, &o, NULL, 0);
  c->snd_nxt = c->irs + 1;
  c->rcv_nxt = c->iss + 1;
  c->ts = true;
  return true;
}

TEST(simultaneous_open_synack)
{
  struct harness h;
  h_init(&h);
  struct h_conn c;
  h_conn_init(&c, &h, 7001);
  REQUIRE(simultaneous_start(&h, &c));
  CHECK_EQ(state_of(&c), TOE_TCP_SYN_RECEIVED);
  /* RFC 9293 3.10.7.3: <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK> */
  struct h_tcp sa;
  REQUIRE(h_conn_last(&c, &sa));
  CHECK_EQ(sa.flags, H_SYN | H_ACK);
  CHECK_EQ(sa.seq, c.iss);
  CHECK_EQ(sa.ack, c.irs + 1);
  CHECK(sa.has_mss);
  /* the peer's SYN-ACK (its answer to our SYN) completes it */
  struct h_tcp_opt o = c.syn_opt;
  o.tsval = c.tsval++;
  o.tsecr = sa.tsval;
  h_conn_send_raw(&c, c.irs, c.iss + 1, H_SYN | H_ACK, c.win, &o, NULL, 0);
  CHECK_EQ(state_of(&c), TOE_TCP_ESTABLISHED);
  CHECK(events(&h, c.s, TOE_EV_WRITABLE) >= 1);
  /* and data flows */
  h_conn_send(&c, H_ACK, "abc", 3);
  char buf[8];
  CHECK_EQ(h_conn_read(&c, buf, sizeof(buf)), 3);
  h_fini(&h);
}

TEST(simultaneous_open_ack)
{
  struct harness h;
  h_init(&h);
  struct h_conn c;
  h_conn_init(&c, &h, 7002);
  REQUIRE(simultaneous_start(&h, &c));
  CHECK_EQ(state_of(&c), TOE_TCP_SYN_RECEIVED);
  /* a plain ACK of our SYN-ACK (RFC 9293 figure 8 line 7) */
  h_conn_send(&c, H_ACK, NULL, 0);
  CHECK_EQ(state_of(&c), TOE_TCP_ESTABLISHED);
  h_fini(&h);
}

TEST(synreceived_bad_ack_gets_rst)
{
  struct harness h;
  h_init(&h);
  struct h_conn c;
  h_conn_init(&c, &h, 7003);
  REQUIRE(simultaneous_start(&h, &c));
  int before = h.ntx;
  h_conn_send_raw(&c, c.snd_nxt, c.iss + 50, H_ACK, c.win, NULL, NULL, 0);
  CHECK_EQ(state_of(&c), TOE_TCP_SYN_RECEIVED);
  CHECK_EQ(h_conn_count_flags(&c, before, H_RST), 1);
  struct h_tcp r;
  REQUIRE(h_conn_last(&c, &r));
  CHECK_EQ(r.seq, c.iss + 50);
  /* RST at rcv_nxt in SYN-RECEIVED: refused */
  h_conn_send_raw(&c, c.snd_nxt, 0, H_RST, 0, NULL, NULL, 0);
  CHECK_EQ(toe_sock_error(h.st, c.s), -TOE_ECONNREFUSED);
  h_fini(&h);
}

/* ---- closing ---- */

TEST(active_close_fin_wait_time_wait)
{
  struct harness h;
  h_init(&h);
  struct h_conn c;
  h_conn_init(&c, &h, 5010);
  REQUIRE(h_conn_connect(&c, 0) == 0);
  uint64_t inuse = h.st->ctr.tcp.socks_inuse;
  REQUIRE(toe_tcp_shutdown(h.st, c.s, TOE_SHUT_WR) == 0);
  struct h_tcp f;
  REQUIRE(h_conn_last(&c, &f));
  CHECK(f.flags & H_FIN);
  CHECK_EQ(f.seq, c.iss + 1);
  CHECK_EQ(state_of(&c), TOE_TCP_FIN_WAIT_1);
  /* the ACK of our FIN: FIN-WAIT-2 */
  c.rcv_nxt = c.iss + 2;
  h_conn_send(&c, H_ACK, NULL, 0);
  CHECK_EQ(state_of(&c), TOE_TCP_FIN_WAIT_2);
  /* half-closed: the peer may still send data, which is delivered */
  h_conn_send(&c, H_ACK, "more", 4);
  char buf[8];
  CHECK_EQ(h_conn_read(&c, buf, sizeof(buf)), 4);
  /* the peer's FIN: acknowledged, then TIME-WAIT */
  int before = h.ntx;
  h_conn_send(&c, H_FIN | H_ACK, NULL, 0);
  CHECK_EQ(h_conn_count_flags(&c, before, H_ACK), 1);
  struct h_tcp a;
  REQUIRE(h_conn_last(&c, &a));
  CHECK_EQ(a.ack, c.snd_nxt);
  CHECK_EQ(a.seq, c.iss + 2);
  CHECK_EQ(tw_entries(&h), 1);
  CHECK(events(&h, c.s, TOE_EV_HUP) >= 1);
  toe_sock_close(h.st, c.s);
  CHECK_EQ(h.st->ctr.tcp.socks_inuse, inuse - 1);
  /* TIME-WAIT answers a retransmitted FIN with an ACK */
  before = h.ntx;
  h_conn_send_at(&c, c.snd_nxt - 1, H_FIN | H_ACK, NULL, 0);
  CHECK_EQ(h_conn_count_flags(&c, before, H_ACK), 1);
  /* and 2*MSL later it is gone */
  h_advance(&h, 2 * h.cfg.tcp_msl + TOE_SEC(1));
  CHECK_EQ(tw_entries(&h), 0);
  h_fini(&h);
}

TEST(active_close_fin_and_ack_together)
{
  struct harness h;
  h_init(&h);
  struct h_conn c;
  h_conn_init(&c, &h, 5011);
  REQUIRE(h_conn_connect(&c, 0) == 0);
  toe_sock_close(h.st, c.s);
  struct h_tcp f;
  REQUIRE(h_conn_last(&c, &f));
  CHECK(f.flags & H_FIN);
  /* FIN-WAIT-1 -> (ACK) FIN-WAIT-2 -> (FIN) TIME-WAIT in one segment */
  c.rcv_nxt = c.iss + 2;
  int before = h.ntx;
  h_conn_send(&c, H_FIN | H_ACK, NULL, 0);
  CHECK_EQ(h_conn_count_flags(&c, before, H_ACK), 1);
  CHECK_EQ(tw_entries(&h), 1);
  CHECK_EQ(h.st->ctr.tcp.socks_inuse, 0);
  h_fini(&h);
}

TEST(simultaneous_close_closing)
{
  struct harness h;
  h_init(&h);
  struct h_conn c;
  h_conn_init(&c, &h, 5012);
  REQUIRE(h_conn_connect(&c, 0) == 0);
  REQUIRE(toe_tcp_shutdown(h.st, c.s, TOE_SHUT_WR) == 0);
  CHECK_EQ(state_of(&c), TOE_TCP_FIN_WAIT_1);
  /* the peer's FIN crosses ours: it does not acknowledge our FIN yet */
  int before = h.ntx;
  h_conn_send(&c, H_FIN | H_ACK, NULL, 0);
  CHECK_EQ(state_of(&c), TOE_TCP_CLOSING);
  CHECK_EQ(h_conn_count_flags(&c, before, H_ACK), 1);
  struct h_tcp a;
  REQUIRE(h_conn_last(&c, &a));
  CHECK_EQ(a.ack, c.snd_nxt);
  /* the ACK of our FIN: TIME-WAIT */
  c.rcv_nxt = c.iss + 2;
  h_conn_send(&c, H_ACK, NULL, 0);
  CHECK_EQ(tw_entries(&h), 1);
  h_fini(&h);
}

TEST(passive_close_close_wait_last_ack)
{
  struct harness h;
  h_init(&h);
  struct h_conn c;
  h_conn_init(&c, &h, 6010);
  REQUIRE(h_conn_accept(&c, 81) == 0);
  uint64_t inuse = h.st->ctr.tcp.socks_inuse;
  h_clear(&h);
  h_conn_send(&c, H_ACK, "bye", 3);
  h_conn_send(&c, H_FIN | H_ACK, NULL, 0);
  CHECK_EQ(state_of(&c), TOE_TCP_CLOSE_WAIT);
  CHECK(events(&h, c.s, TOE_EV_READABLE) >= 1);
  /* the FIN is acknowledged at once */
  struct h_tcp a;
  REQUIRE(h_conn_last(&c, &a));
  CHECK_EQ(a.ack, c.snd_nxt);
  char buf[8];
  CHECK_EQ(toe_tcp_recv(h.st, c.s, buf, sizeof(buf)), 3);
  CHECK_EQ(toe_tcp_recv(h.st, c.s, buf, sizeof(buf)), 0); /* end of stream */
  /* half-closed the other way: we can still send */
  CHECK_EQ(toe_tcp_send(h.st, c.s, "reply", 5, 0), 5);
  struct h_tcp d;
  REQUIRE(h_conn_last(&c, &d));
  CHECK_EQ(d.dlen, 5);
  c.rcv_nxt += 5;
  h_conn_send(&c, H_ACK, NULL, 0);
  CHECK_EQ(state_of(&c), TOE_TCP_CLOSE_WAIT);
  /* close: FIN, LAST-ACK */
  toe_sock_close(h.st, c.s);
  struct h_tcp f;
  REQUIRE(h_conn_last(&c, &f));
  CHECK(f.flags & H_FIN);
  CHECK_EQ(f.seq, c.rcv_nxt);
  CHECK_EQ(h.st->ctr.tcp.socks_inuse, inuse); /* held until the FIN is acknowledged */
  /* a segment that does not acknowledge the FIN leaves it in LAST-ACK */
  h_conn_send(&c, H_ACK, NULL, 0);
  CHECK_EQ(h.st->ctr.tcp.socks_inuse, inuse);
  c.rcv_nxt++;
  h_conn_send(&c, H_ACK, NULL, 0);
  CHECK_EQ(h.st->ctr.tcp.socks_inuse, inuse - 1);
  CHECK_EQ(tw_entries(&h), 0); /* the passive closer has no TIME-WAIT */
  CHECK_EQ(h.st->ctr.tcp.curr_estab, 0);
  h_fini(&h);
}

TEST(retransmitted_fin_in_close_wait_is_acked)
{
  struct harness h;
  h_init(&h);
  struct h_conn c;
  h_conn_init(&c, &h, 6011);
  REQUIRE(h_conn_accept(&c, 82) == 0);
  h_conn_send(&c, H_FIN | H_ACK, NULL, 0);
  CHECK_EQ(state_of(&c), TOE_TCP_CLOSE_WAIT);
  int before = h.ntx;
  h_conn_send_at(&c, c.snd_nxt - 1, H_FIN | H_ACK, NULL, 0);
  CHECK_EQ(h_conn_count_flags(&c, before, H_ACK), 1);
  CHECK_EQ(state_of(&c), TOE_TCP_CLOSE_WAIT);
  h_fini(&h);
}

TEST(fin_out_of_order_waits_for_data)
{
  struct harness h;
  h_init(&h);
  struct h_conn c;
  h_conn_init(&c, &h, 6012);
  REQUIRE(h_conn_accept(&c, 83) == 0);
  uint32_t base = c.snd_nxt;
  /* data+FIN beyond a hole: kept, not acted on */
  h_conn_send_at(&c, base + 10, H_FIN | H_ACK, "0123456789", 10);
  CHECK_EQ(state_of(&c), TOE_TCP_ESTABLISHED);
  struct h_tcp a;
  REQUIRE(h_conn_last(&c, &a));
  CHECK_EQ(a.ack, base);
  /* the hole fills: all data, then the FIN */
  h_conn_send_at(&c, base, H_ACK, "abcdefghij", 10);
  CHECK_EQ(state_of(&c), TOE_TCP_CLOSE_WAIT);
  REQUIRE(h_conn_last(&c, &a));
  CHECK_EQ(a.ack, base + 21);
  char buf[32];
  CHECK_EQ(h_conn_read(&c, buf, sizeof(buf)), 20);
  CHECK_MEM(buf, "abcdefghij0123456789", 20);
  CHECK_EQ(toe_tcp_recv(h.st, c.s, buf, sizeof(buf)), 0);
  h_fini(&h);
}

/* ---- resets ---- */

TEST(rst_in_established_resets)
{
  struct harness h;
  h_init(&h);
  struct h_conn c;
  h_conn_init(&c, &h, 5020);
  REQUIRE(h_conn_connect(&c, 0) == 0);
  uint64_t resets = h.st->ctr.tcp.estab_resets;
  h_clear(&h);
  h_conn_send(&c, H_RST, NULL, 0);
  CHECK(events(&h, c.s, TOE_EV_ERROR | TOE_EV_HUP) >= 1);
  CHECK_EQ(toe_sock_error(h.st, c.s), -TOE_ECONNRESET);
  CHECK_EQ(h.st->ctr.tcp.estab_resets, resets + 1);
  CHECK_EQ(h.st->ctr.tcp.curr_estab, 0);
  CHECK_EQ(h_conn_count(&c), 0); /* a RST is never answered */
  h_fini(&h);
}

TEST(rst_in_fin_wait_and_close_wait)
{
  struct harness h;
  h_init(&h);
  struct h_conn c;
  h_conn_init(&c, &h, 5021);
  REQUIRE(h_conn_connect(&c, 0) == 0);
  toe_sock_close(h.st, c.s); /* orphaned, FIN-WAIT-1 */
  uint64_t inuse = h.st->ctr.tcp.socks_inuse;
  CHECK_EQ(inuse, 1);
  h_conn_send(&c, H_RST, NULL, 0);
  CHECK_EQ(h.st->ctr.tcp.socks_inuse, 0);
  CHECK_EQ(tw_entries(&h), 0);

  struct h_conn d;
  h_conn_init(&d, &h, 5022);
  REQUIRE(h_conn_connect(&d, 0) == 0);
  h_conn_send(&d, H_FIN | H_ACK, NULL, 0);
  CHECK_EQ(toe_tcb(d.s)->state, TOE_TCP_CLOSE_WAIT);
  h_conn_send(&d, H_RST, NULL, 0);
  CHECK(toe_sock_error(h.st, d.s) < 0);
  h_fini(&h);
}

TEST(rst_in_last_ack_and_closing)
{
  struct harness h;
  h_init(&h);
  struct h_conn c;
  h_conn_init(&c, &h, 5023);
  REQUIRE(h_conn_connect(&c, 0) == 0);
  h_conn_send(&c, H_FIN | H_ACK, NULL, 0);
  toe_sock_close(h.st, c.s); /* LAST-ACK */
  CHECK_EQ(h.st->ctr.tcp.socks_inuse, 1);
  h_conn_send(&c, H_RST, NULL, 0);
  CHECK_EQ(h.st->ctr.tcp.socks_inuse, 0);

  struct h_conn d;
  h_conn_init(&d, &h, 5024);
  REQUIRE(h_conn_connect(&d, 0) == 0);
  toe_sock_close(h.st, d.s);               /* FIN-WAIT-1 */
  h_conn_send(&d, H_FIN | H_ACK, NULL, 0); /* CLOSING */
  CHECK_EQ(h.st->ctr.tcp.socks_inuse, 1);
  h_conn_send(&d, H_RST, NULL, 0);
  CHECK_EQ(h.st->ctr.tcp.socks_inuse, 0);
  CHECK_EQ(tw_entries(&h), 0);
  h_fini(&h);
}

TEST(data_for_closed_socket_answered_by_rst)
{
  struct harness h;
  h_init(&h);
  struct h_conn c;
  h_conn_init(&c, &h, 5025);
  REQUIRE(h_conn_connect(&c, 0) == 0);
  toe_sock_close(h.st, c.s);
  c.rcv_nxt = c.iss + 2; /* our FIN acknowledged: FIN-WAIT-2, orphaned */
  h_conn_send(&c, H_ACK, NULL, 0);
  CHECK_EQ(h.st->ctr.tcp.socks_inuse, 1);
  int before = h.ntx;
  h_conn_send(&c, H_ACK, "late", 4);
  CHECK_EQ(h_conn_count_flags(&c, before, H_RST), 1);
  CHECK_EQ(h.st->ctr.tcp.socks_inuse, 0);
  CHECK_EQ(h.st->ctr.tcp.rx_drop_after_close, 1);
  h_fini(&h);
}

TEST_MAIN()
