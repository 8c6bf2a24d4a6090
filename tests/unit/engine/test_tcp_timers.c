/*
 * TCP timers on the virtual clock: the RFC 6298 estimator and RTO, exponential backoff bounded by
 * the maximum and the tcp_retries2 limit, SYN retransmissions and the connect timeout, zero-window
 * probes with backoff (RFC 9293 3.8.6.1), keepalive (RFC 1122 4.2.3.6), the orphaned FIN_WAIT_2
 * timeout, and RFC 6528 ISNs.
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

static int events(const struct toe_sock *s, uint32_t mask)
{
  int n = 0;
  for (int i = 0; i < h.nev; i++)
    if (h.ev[i].sock == s && (h.ev[i].events & mask))
      n++;
  return n;
}

/* Advances to just before `at` (absolute) and checks nothing new was sent, then to `at` and
 * returns how many segments went out then. */
static int segs_at(toe_time_t at)
{
  if (at > h.now + TOE_MSEC(1))
    h_advance(&h, at - TOE_MSEC(1) - h.now);
  int before = h_tcp_count(&h);
  h_advance(&h, at - h.now);
  return h_tcp_count(&h) - before;
}

/* A silent gap: nothing sent until `at` (absolute). */
static int segs_until(toe_time_t at)
{
  int before = h_tcp_count(&h);
  if (at > h.now)
    h_advance(&h, at - h.now);
  return h_tcp_count(&h) - before;
}

TEST(rfc6298_estimator)
{
  struct toe_config cfg;
  h_default_cfg(&cfg);
  cfg.tcp_rto_min = TOE_MSEC(200);
  cfg.tcp_rto_max = TOE_SEC(60);
  h_init_cfg(&h, &cfg);
  struct toe_tcb *tp = toe_tcb_alloc(h.st);
  REQUIRE(tp != NULL);
  CHECK_EQ(tp->srtt_us, 0);
  CHECK_EQ(toe_tcp_rto_us(h.st, tp), 1000000); /* RFC 6298 2.1: 1 s before any sample */
  /* 2.2: SRTT = R, RTTVAR = R/2, RTO = SRTT + max(G, 4 RTTVAR) */
  toe_tcp_rtt_sample(h.st, tp, 100000);
  CHECK_EQ(tp->srtt_us, 100000);
  CHECK_EQ(tp->rttvar_us, 50000);
  CHECK_EQ(tp->rto_us, 300000);
  /* 2.3: RTTVAR = 3/4 RTTVAR + 1/4 |SRTT - R|, then SRTT = 7/8 SRTT + 1/8 R */
  toe_tcp_rtt_sample(h.st, tp, 200000);
  CHECK_EQ(tp->rttvar_us, 62500);
  CHECK_EQ(tp->srtt_us, 112500);
  CHECK_EQ(tp->rto_us, 112500 + 250000);
  CHECK_EQ(tp->min_rtt_us, 100000);
  /* 2.4: never below the minimum */
  for (int i = 0; i < 100; i++)
    toe_tcp_rtt_sample(h.st, tp, 1000);
  CHECK(tp->srtt_us < 2000);
  CHECK_EQ(tp->rto_us, 200000);
  CHECK_EQ(tp->min_rtt_us, 1000);
  /* 5.5: backoff doubles, bounded by the maximum; a valid sample ends it (Karn) */
  tp->rto_backoff = 3;
  CHECK_EQ(toe_tcp_rto_us(h.st, tp), 1600000);
  tp->rto_backoff = 12;
  CHECK_EQ(toe_tcp_rto_us(h.st, tp), 60000000);
  toe_tcp_rtt_sample(h.st, tp, 1000);
  CHECK_EQ(tp->rto_backoff, 0);
  /* a sample of 0 still counts */
  toe_tcp_rtt_sample(h.st, tp, 0);
  CHECK(tp->srtt_us > 0);
  /* 2.5: never above the maximum */
  toe_tcp_rtt_sample(h.st, tp, 90000000);
  CHECK_EQ(tp->rto_us, 60000000);
  toe_tcb_free(h.st, tp);
  CHECK_EQ(tc()->socks_inuse, 0);
  h_fini(&h);
}

TEST(rto_backoff_doubles_is_bounded_and_gives_up_after_retries2)
{
  struct toe_config cfg;
  h_default_cfg(&cfg);
  cfg.tcp_timestamps = 0; /* no RTT sample from the handshake: the RTO is the initial 1 s */
  cfg.tcp_sack = 0;       /* no tail-loss probes in the way */
  cfg.tcp_rto_max = TOE_SEC(8);
  cfg.tcp_retries2 = 6;
  h_init_cfg(&h, &cfg);
  struct h_conn c;
  h_conn_init(&c, &h, 7001);
  REQUIRE(h_conn_connect(&c, 0) == 0);
  h_clear(&h);
  CHECK_EQ(toe_tcp_send(h.st, c.s, "lost data", 9, 0), 9);
  toe_time_t t = h.now;
  REQUIRE(h_tcp_count(&h) == 1);
  struct h_tcp first;
  REQUIRE(h_conn_last(&c, &first));
  /* the peer says nothing: 1, 2, 4, 8, 8, 8 seconds apart (RFC 6298 5.5, bounded by rto_max) */
  static const int gaps[] = {1, 2, 4, 8, 8, 8};
  for (int i = 0; i < 6; i++) {
    t += TOE_SEC(gaps[i]);
    CHECK_EQ(segs_at(t), 1);
    struct h_tcp r;
    REQUIRE(h_conn_last(&c, &r));
    CHECK_EQ(r.seq, first.seq);
    CHECK_EQ(r.dlen, 9);
    CHECK_MEM(r.data, "lost data", 9);
  }
  CHECK_EQ(tc()->retrans_segs, 6);
  CHECK_EQ(toe_tcb(c.s)->state, TOE_TCP_ESTABLISHED);
  CHECK_EQ(h.nev, 0);
  /* the 7th expiry: tcp_retries2 retransmissions went unanswered, the connection is dropped */
  t += TOE_SEC(8);
  CHECK_EQ(segs_at(t), 0); /* no RST: the peer is not there to hear it */
  CHECK_EQ(toe_tcb(c.s)->state, TOE_TCP_CLOSED);
  CHECK(events(c.s, TOE_EV_ERROR) >= 1);
  CHECK(events(c.s, TOE_EV_HUP) >= 1);
  CHECK_EQ(toe_sock_error(h.st, c.s), -TOE_ETIMEDOUT);
  CHECK_EQ(toe_tcp_send(h.st, c.s, "x", 1, 0), -TOE_EPIPE);
  CHECK_EQ(tc()->timeout_drops, 1);
  CHECK_EQ(tc()->rto_expired, 7);
  CHECK_EQ(tc()->estab_resets, 1);
  struct toe_tcp_info info;
  REQUIRE(toe_tcp_get_info(h.st, c.s, &info) == 0);
  CHECK_EQ(info.rto_count, 7);
  CHECK_EQ(info.total_retrans, 6);
  /* and nothing afterwards */
  CHECK_EQ(segs_until(h.now + TOE_SEC(120)), 0);
  toe_sock_close(h.st, c.s);
  CHECK_EQ(tc()->socks_inuse, 0);
  h_fini(&h);
}

TEST(progress_restarts_the_retry_count)
{
  struct toe_config cfg;
  h_default_cfg(&cfg);
  cfg.tcp_timestamps = 0;
  cfg.tcp_sack = 0;
  cfg.tcp_retries2 = 2;
  h_init_cfg(&h, &cfg);
  struct h_conn c;
  h_conn_init(&c, &h, 7002);
  REQUIRE(h_conn_connect(&c, 0) == 0);
  REQUIRE(toe_sock_setopt(h.st, c.s, TOE_TCP_NODELAY, 1) == 0);
  CHECK_EQ(toe_tcp_send(h.st, c.s, "aaaa", 4, 0), 4);
  CHECK_EQ(toe_tcp_send(h.st, c.s, "bbbb", 4, 0), 4);
  /* two expiries (1 s, then 2 s) */
  h_advance(&h, TOE_SEC(3) + TOE_MSEC(10));
  CHECK_EQ(tc()->rto_expired, 2);
  /* the first segment is acknowledged: progress */
  c.rcv_nxt = c.iss + 1 + 4;
  h_conn_send(&c, H_ACK, NULL, 0);
  /* two more expiries are allowed before the limit counts down again */
  h_advance(&h, TOE_SEC(20));
  CHECK(tc()->rto_expired >= 4);
  CHECK_EQ(toe_tcb(c.s)->state, TOE_TCP_CLOSED);
  CHECK_EQ(toe_sock_error(h.st, c.s), -TOE_ETIMEDOUT);
  h_fini(&h);
}

TEST(syn_retries_then_connect_times_out)
{
  struct toe_config cfg;
  h_default_cfg(&cfg);
  cfg.tcp_syn_retries = 3;
  h_init_cfg(&h, &cfg);
  struct h_conn c;
  h_conn_init(&c, &h, 7003);
  struct toe_sock *s = NULL;
  REQUIRE(toe_tcp_open(h.st, &c, &s) == 0);
  struct toe_sockaddr peer = {.family = TOE_AF_INET, .port = 7003, .addr = H_PEER_IP};
  REQUIRE(toe_sock_connect(h.st, s, &peer) == -TOE_EINPROGRESS);
  toe_time_t t = h.now;
  struct h_tcp syn;
  REQUIRE(h_tcp_get(&h, -1, &syn));
  CHECK_EQ(syn.flags, H_SYN);
  /* retransmitted after 1, 2 and 4 s, the same SYN each time */
  static const int gaps[] = {1, 2, 4};
  for (int i = 0; i < 3; i++) {
    t += TOE_SEC(gaps[i]);
    CHECK_EQ(segs_at(t), 1);
    struct h_tcp r;
    REQUIRE(h_tcp_get(&h, -1, &r));
    CHECK_EQ(r.flags, H_SYN);
    CHECK_EQ(r.seq, syn.seq);
    CHECK(r.has_mss && r.has_ts);
  }
  CHECK_EQ(tc()->syn_retrans, 3);
  CHECK_EQ(toe_tcb(s)->state, TOE_TCP_SYN_SENT);
  CHECK_EQ(h.nev, 0);
  /* 8 s after the last one: given up */
  t += TOE_SEC(8);
  CHECK_EQ(segs_at(t), 0);
  CHECK_EQ(toe_tcb(s)->state, TOE_TCP_CLOSED);
  CHECK(events(s, TOE_EV_ERROR) >= 1);
  CHECK_EQ(toe_sock_error(h.st, s), -TOE_ETIMEDOUT);
  CHECK_EQ(tc()->attempt_fails, 1);
  CHECK_EQ(tc()->timeout_drops, 1);
  CHECK_EQ(h.st->tcp.conn_hashed, 0); /* out of the demultiplexer */
  CHECK_EQ(segs_until(h.now + TOE_SEC(60)), 0);
  /* a late SYN-ACK finds no connection: RST */
  h_clear(&h);
  struct h_tcp_opt o;
  h_tcp_opt_none(&o);
  c.lport = syn.sport;
  h_conn_send_raw(&c, 1234, syn.seq + 1, H_SYN | H_ACK, 1000, &o, NULL, 0);
  struct h_tcp r;
  REQUIRE(h_tcp_get(&h, -1, &r));
  CHECK_EQ(r.flags, H_RST);
  CHECK_EQ(r.seq, syn.seq + 1);
  toe_sock_close(h.st, s);
  h_fini(&h);
}

TEST(zero_window_probes_back_off_and_resume)
{
  h_init(&h);
  static uint8_t data[3000];
  memset(data, 'z', sizeof(data));
  struct h_conn c;
  h_conn_init(&c, &h, 7004);
  REQUIRE(h_conn_connect(&c, 0) == 0);
  /* the peer's buffer is full: window 0 */
  h_conn_send_raw(&c, c.snd_nxt, c.rcv_nxt, H_ACK, 0, NULL, NULL, 0);
  h_clear(&h);
  CHECK_EQ(toe_tcp_send(h.st, c.s, data, sizeof(data), 0), (int)sizeof(data));
  CHECK_EQ(h_tcp_count(&h), 0); /* nothing fits */
  struct toe_tcb *tp = toe_tcb(c.s);
  uint32_t rto = toe_tcp_rto_us(h.st, tp);
  CHECK_EQ(rto, 200000); /* a sub-ms RTT from the handshake: the minimum */
  toe_time_t t = h.now;
  /* probes of one octet after one RTO, then backed off: 0.2, 0.4, 0.8, 1.6 s apart; the peer
   * keeps answering with a zero window */
  uint32_t probe_seq = c.iss + 1;
  toe_time_t gap = TOE_MSEC(200);
  for (int i = 0; i < 4; i++) {
    t += gap;
    CHECK_EQ(segs_at(t), 1);
    struct h_tcp p;
    REQUIRE(h_conn_last(&c, &p));
    CHECK_EQ(p.seq, probe_seq);
    CHECK_EQ(p.dlen, 1);
    CHECK_EQ(p.data[0], 'z');
    h_conn_send_raw(&c, c.snd_nxt, c.rcv_nxt, H_ACK, 0, NULL, NULL, 0); /* still zero */
    gap *= 2;
  }
  CHECK_EQ(tc()->out_win_probes, 4);
  CHECK_EQ(tp->state, TOE_TCP_ESTABLISHED); /* never dropped while the peer answers */
  CHECK_EQ(tc()->rto_expired, 0);
  /* the window opens: the probe octet the peer dropped and the rest go at once */
  h_clear(&h);
  h_conn_send_raw(&c, c.snd_nxt, c.rcv_nxt, H_ACK, 100, NULL, NULL, 0); /* 100 << 7 */
  struct h_tcp d[8];
  int n = 0;
  for (int i = 0; i < h.ntx && n < 8; i++)
    if (h_tcp_parse(h.tx[i].bytes, h.tx[i].len, &d[n]) && d[n].dlen > 0)
      n++;
  REQUIRE(n >= 2);
  CHECK_EQ(d[0].seq, probe_seq);
  CHECK_EQ(d[0].dlen, 1);
  uint32_t total = 0;
  for (int i = 1; i < n; i++)
    total += (uint32_t)d[i].dlen;
  CHECK_EQ(total, 2 * 1448);
  /* (Nagle held the short tail while the one-octet probe was unacknowledged) */
  c.rcv_nxt = tp->snd_max;
  h_conn_send(&c, H_ACK, NULL, 0);
  c.rcv_nxt = tp->snd_max;
  h_conn_send(&c, H_ACK, NULL, 0);
  CHECK_EQ(tp->snd_max, probe_seq + sizeof(data));
  CHECK_EQ(tp->sndq_bytes, 0);
  CHECK_EQ(tp->deadline[TOE_TT_PERSIST], 0);
  CHECK_EQ(tp->deadline[TOE_TT_RTO], 0);
  h_fini(&h);
}

TEST(small_window_override_timeout)
{
  h_init(&h);
  static uint8_t data[5000];
  memset(data, 'w', sizeof(data));
  struct h_conn c;
  h_conn_init(&c, &h, 7009);
  c.syn_opt.wscale = -1; /* windows in plain bytes; the SYN-ACK offered 65535 */
  REQUIRE(h_conn_connect(&c, 0) == 0);
  REQUIRE(toe_sock_setopt(h.st, c.s, TOE_TCP_NODELAY, 1) == 0);
  /* the peer's window shrinks to 1000: less than half the largest it offered */
  h_conn_send_raw(&c, c.snd_nxt, c.rcv_nxt, H_ACK, 1000, NULL, NULL, 0);
  h_clear(&h);
  CHECK_EQ(toe_tcp_send(h.st, c.s, data, sizeof(data), 0), (int)sizeof(data));
  CHECK_EQ(h_tcp_count(&h), 0); /* sender SWS avoidance holds it */
  /* nothing in flight will open the window: after the override timeout what fits goes */
  toe_time_t t = h.now + (toe_time_t)toe_tcp_rto_us(h.st, toe_tcb(c.s)) * 1000u;
  CHECK_EQ(segs_at(t), 1);
  struct h_tcp d;
  REQUIRE(h_conn_last(&c, &d));
  CHECK_EQ(d.dlen, 1000);
  CHECK_EQ(d.seq, c.iss + 1);
  /* once the window is large again, everything flows */
  c.rcv_nxt = d.seq + 1000;
  h_conn_send_raw(&c, c.snd_nxt, c.rcv_nxt, H_ACK, 65535, NULL, NULL, 0);
  CHECK_EQ(toe_tcb(c.s)->snd_max, c.iss + 1 + sizeof(data));
  h_fini(&h);
}

TEST(keepalive_probes_and_drop)
{
  h_init(&h);
  struct h_conn c;
  h_conn_init(&c, &h, 7005);
  REQUIRE(h_conn_connect(&c, 0) == 0);
  REQUIRE(toe_sock_setopt(h.st, c.s, TOE_TCP_KEEPIDLE, 10) == 0);
  REQUIRE(toe_sock_setopt(h.st, c.s, TOE_TCP_KEEPINTVL, 2) == 0);
  REQUIRE(toe_sock_setopt(h.st, c.s, TOE_TCP_KEEPCNT, 3) == 0);
  REQUIRE(toe_sock_setopt(h.st, c.s, TOE_SO_KEEPALIVE, 1) == 0);
  h_clear(&h);
  toe_time_t t = h.now + TOE_SEC(10);
  /* idle for KEEPIDLE: a probe <SEQ=SND.UNA-1> without data */
  CHECK_EQ(segs_at(t), 1);
  struct h_tcp p;
  REQUIRE(h_conn_last(&c, &p));
  CHECK_EQ(p.seq, c.iss); /* snd_una - 1 */
  CHECK_EQ(p.dlen, 0);
  CHECK_EQ(p.flags, H_ACK);
  CHECK_EQ(p.ack, c.snd_nxt);
  /* the peer answers: idle starts again */
  h_conn_send(&c, H_ACK, NULL, 0);
  t = h.now + TOE_SEC(10);
  CHECK_EQ(segs_until(t - TOE_MSEC(1)), 0);
  CHECK_EQ(segs_at(t), 1);
  /* now silence: probes every KEEPINTVL, and after KEEPCNT unanswered the connection goes */
  t += TOE_SEC(2);
  CHECK_EQ(segs_at(t), 1);
  t += TOE_SEC(2);
  CHECK_EQ(segs_at(t), 1);
  CHECK_EQ(toe_tcb(c.s)->state, TOE_TCP_ESTABLISHED);
  t += TOE_SEC(2);
  CHECK_EQ(segs_at(t), 0);
  CHECK_EQ(toe_tcb(c.s)->state, TOE_TCP_CLOSED);
  CHECK_EQ(toe_sock_error(h.st, c.s), -TOE_ETIMEDOUT);
  CHECK(events(c.s, TOE_EV_ERROR) >= 1);
  CHECK_EQ(tc()->out_keepalives, 4);
  CHECK_EQ(tc()->keepalive_drops, 1);
  h_fini(&h);
}

TEST(keepalive_off_by_default_and_when_disabled)
{
  h_init(&h);
  struct h_conn c;
  h_conn_init(&c, &h, 7006);
  REQUIRE(h_conn_connect(&c, 0) == 0);
  REQUIRE(toe_sock_setopt(h.st, c.s, TOE_TCP_KEEPIDLE, 10) == 0);
  h_clear(&h);
  CHECK_EQ(segs_until(h.now + TOE_SEC(60)), 0);
  REQUIRE(toe_sock_setopt(h.st, c.s, TOE_SO_KEEPALIVE, 1) == 0);
  REQUIRE(toe_sock_setopt(h.st, c.s, TOE_SO_KEEPALIVE, 0) == 0);
  CHECK_EQ(segs_until(h.now + TOE_SEC(60)), 0);
  h_fini(&h);
}

TEST(orphan_in_fin_wait_2_times_out)
{
  struct toe_config cfg;
  h_default_cfg(&cfg);
  cfg.tcp_fin_timeout = TOE_SEC(5);
  h_init_cfg(&h, &cfg);
  struct h_conn c;
  h_conn_init(&c, &h, 7007);
  REQUIRE(h_conn_connect(&c, 0) == 0);
  toe_sock_close(h.st, c.s);
  struct h_tcp f;
  REQUIRE(h_conn_last(&c, &f));
  REQUIRE(f.flags & H_FIN);
  /* the peer acknowledges our FIN but never sends its own */
  c.rcv_nxt = f.seq + 1;
  h_conn_send(&c, H_ACK, NULL, 0);
  CHECK_EQ(tc()->socks_inuse, 1);
  h_clear(&h);
  toe_time_t t = h.now + TOE_SEC(5);
  CHECK_EQ(segs_at(t), 1);
  struct h_tcp r;
  REQUIRE(h_conn_last(&c, &r));
  CHECK(r.flags & H_RST);
  CHECK_EQ(r.seq, f.seq + 1);
  CHECK_EQ(tc()->socks_inuse, 0);
  CHECK_EQ(tc()->finwait2_timeouts, 1);
  h_fini(&h);
}

TEST(fin_is_retransmitted)
{
  struct toe_config cfg;
  h_default_cfg(&cfg);
  cfg.tcp_timestamps = 0;
  cfg.tcp_sack = 0;
  h_init_cfg(&h, &cfg);
  struct h_conn c;
  h_conn_init(&c, &h, 7008);
  REQUIRE(h_conn_connect(&c, 0) == 0);
  REQUIRE(toe_tcp_shutdown(h.st, c.s, TOE_SHUT_WR) == 0);
  struct h_tcp f;
  REQUIRE(h_conn_last(&c, &f));
  REQUIRE(f.flags & H_FIN);
  h_clear(&h);
  toe_time_t t = h.now + TOE_SEC(1);
  CHECK_EQ(segs_at(t), 1);
  struct h_tcp r;
  REQUIRE(h_conn_last(&c, &r));
  CHECK(r.flags & H_FIN);
  CHECK_EQ(r.seq, f.seq);
  t += TOE_SEC(2);
  CHECK_EQ(segs_at(t), 1);
  c.rcv_nxt = f.seq + 1;
  h_conn_send(&c, H_ACK, NULL, 0);
  CHECK_EQ(toe_tcb(c.s)->state, TOE_TCP_FIN_WAIT_2);
  CHECK_EQ(toe_tcb(c.s)->deadline[TOE_TT_RTO], 0);
  CHECK_EQ(segs_until(h.now + TOE_SEC(30)), 0);
  h_fini(&h);
}

TEST(isn_is_keyed_and_clocked)
{
  h_init(&h);
  uint32_t a = toe_tcp_isn(h.st, H_OUR_IP, 50000, H_PEER_IP, 80);
  uint32_t b = toe_tcp_isn(h.st, H_OUR_IP, 50001, H_PEER_IP, 80);
  uint32_t c = toe_tcp_isn(h.st, H_OUR_IP, 50000, H_PEER_IP, 81);
  CHECK(a != b);
  CHECK(a != c);
  CHECK_EQ(toe_tcp_isn(h.st, H_OUR_IP, 50000, H_PEER_IP, 80), a); /* same time, same tuple */
  /* RFC 6528: M ticks every 4 us */
  h_advance(&h, TOE_SEC(1));
  CHECK_EQ(toe_tcp_isn(h.st, H_OUR_IP, 50000, H_PEER_IP, 80) - a, 250000u);
  /* and another secret gives other numbers */
  struct toe_config cfg;
  h_default_cfg(&cfg);
  cfg.secret[0] ^= 1;
  struct harness *h2 = &h; /* reuse the storage */
  h_fini(h2);
  h_init_cfg(&h, &cfg);
  h_advance(&h, TOE_SEC(1));
  CHECK(toe_tcp_isn(h.st, H_OUR_IP, 50000, H_PEER_IP, 80) - a != 250000u);
  CHECK(toe_tcp_ts_offset(h.st, H_OUR_IP, 50000, H_PEER_IP, 80) !=
        toe_tcp_ts_offset(h.st, H_OUR_IP, 50001, H_PEER_IP, 80));
  h_fini(&h);
}

TEST_MAIN()
