/*
 * Audit of the TCP issue's required unit tests (docs/tcp.md has the map from each requirement to
 * the test that covers it). The tests here fill the gaps the audit found in the other
 * test_tcp_*.c files:
 *
 *  - state transitions no other test drives: CLOSE in SYN-SENT and SYN-RECEIVED, a FIN completing
 *    a simultaneous open (SYN-RECEIVED -> CLOSE-WAIT), LISTEN -> CLOSED, the FIN retransmitted
 *    from LAST-ACK and CLOSING (RFC 9293 3.10.4, 3.10.7.4);
 *  - the handshake: no segment after the handshake-completing ACK of a passive open, and the
 *    one-segment window and 3 s RTO after a lost SYN (RFC 5681 3.1, RFC 6298 5.7);
 *  - the delayed-ACK bound when more small segments arrive while an ACK is delayed (RFC 1122
 *    4.2.3.2: the delay is bounded from the first unacknowledged segment);
 *  - TIME_WAIT reuse by an active open through the socket API (bind with TOE_SO_REUSEADDR, then
 *    connect): the new SYN is beyond the old sequence space and its timestamp newer (RFC 6191);
 *  - path MTU reduction (RFC 1191) with a whole flight lost at a smaller link, and the MSS floor
 *    against a frag-needed message quoting a tiny MTU (RFC 5927 7);
 *  - RFC 4022 counters cross-checked against the wire: tcpInSegs equals the TCP segments fed,
 *    tcpOutSegs + tcpRetransSegs equals the TCP segments captured.
 *
 * Everything is driven with hand-built segments (tcp_harness.h) on the virtual clock and checked
 * on the captured frames.
 */
#include "engine/stack.h"
#include "engine/tcp.h"
#include "harness.h"
#include "tcp_harness.h"
#include "testlib.h"

#include <string.h>

static struct harness H; /* big: keep it off the stack */

static const struct toe_counters_tcp *tc(void)
{
  return &toe_stack_counters(H.st)->tcp;
}

/* Our data segments of connection `c` captured at index >= from. */
static int data_segs(const struct h_conn *c, int from, struct h_tcp *out, int max)
{
  int n = 0;
  for (int i = from; i < H.ntx && n < max; i++) {
    struct h_tcp t;
    if (!h_tcp_parse(H.tx[i].bytes, H.tx[i].len, &t) || t.dport != c->pport || t.dlen == 0)
      continue;
    out[n++] = t;
  }
  return n;
}

/* Starts a connect from local port `lport` and has the peer's SYN cross ours (simultaneous open,
 * RFC 9293 3.5 figure 8): the socket ends in SYN-RECEIVED having sent a SYN-ACK. */
static bool simultaneous_start(struct h_conn *c, uint16_t lport)
{
  struct toe_sock *s = NULL;
  if (toe_tcp_open(H.st, c, &s) != 0)
    return false;
  struct toe_sockaddr l = {.family = TOE_AF_INET, .port = lport, .addr = 0};
  if (toe_sock_bind(H.st, s, &l) != 0)
    return false;
  c->lport = lport;
  struct toe_sockaddr r = {.family = TOE_AF_INET, .port = c->pport, .addr = H_PEER_IP};
  if (toe_sock_connect(H.st, s, &r) != -TOE_EINPROGRESS)
    return false;
  c->s = s;
  if (!h_conn_last(c, &c->syn) || c->syn.flags != H_SYN)
    return false;
  c->iss = c->syn.seq;
  struct h_tcp_opt o = c->syn_opt;
  o.tsval = c->tsval++;
  o.tsecr = 0;
  h_conn_send_raw(c, c->irs, 0, H_SYN, c->win, &o, NULL, 0);
  c->snd_nxt = c->irs + 1;
  c->rcv_nxt = c->iss + 1;
  c->ts = true;
  c->sack = true;
  c->our_ws = c->syn.ws;
  return toe_tcb(s)->state == TOE_TCP_SYN_RECEIVED;
}

/* ---------------------------------------------------------------------------------------------
 * State transitions the other files do not drive
 */

TEST(close_in_syn_sent_deletes_the_tcb_silently)
{
  h_init(&H);
  struct h_conn c;
  h_conn_init(&c, &H, 8001);
  struct toe_sock *s = NULL;
  REQUIRE(toe_tcp_open(H.st, &c, &s) == 0);
  struct toe_sockaddr r = {.family = TOE_AF_INET, .port = c.pport, .addr = H_PEER_IP};
  REQUIRE(toe_sock_connect(H.st, s, &r) == -TOE_EINPROGRESS);
  struct h_tcp syn;
  REQUIRE(h_tcp_get(&H, -1, &syn));
  REQUIRE(syn.flags == H_SYN);
  c.lport = syn.sport;
  uint64_t fails = tc()->attempt_fails;
  h_clear(&H);
  /* RFC 9293 3.10.4 CLOSE, SYN-SENT: "delete the TCB" -- nothing goes on the wire */
  toe_sock_close(H.st, s);
  CHECK_EQ(h_tcp_count(&H), 0);
  CHECK_EQ(tc()->socks_inuse, 0);
  CHECK_EQ(H.st->tcp.conn_hashed, 0);
  CHECK_EQ(H.st->socks.bound, 0);
  CHECK_EQ(tc()->attempt_fails, fails + 1);
  /* no SYN retransmission later */
  h_advance(&H, TOE_SEC(10));
  CHECK_EQ(h_tcp_count(&H), 0);
  /* the peer's late SYN-ACK finds no connection: <SEQ=SEG.ACK><CTL=RST> */
  h_conn_send_raw(&c, c.irs, syn.seq + 1, H_SYN | H_ACK, 1000, NULL, NULL, 0);
  struct h_tcp rst;
  REQUIRE(h_tcp_get(&H, -1, &rst));
  CHECK_EQ(rst.flags, H_RST);
  CHECK_EQ(rst.seq, syn.seq + 1);
  h_fini(&H);
}

TEST(close_in_syn_received_finishes_with_fin)
{
  h_init(&H);
  struct h_conn c;
  h_conn_init(&c, &H, 8002);
  REQUIRE(simultaneous_start(&c, 7100));
  struct toe_tcb *tp = toe_tcb(c.s);
  /* RFC 9293 3.10.4 CLOSE, SYN-RECEIVED: a FIN, now or once ESTABLISHED (nothing was sent) */
  toe_sock_close(H.st, c.s);
  CHECK_EQ(tc()->socks_inuse, 1); /* an orphan finishing the handshake and the close */
  CHECK(tp->state == TOE_TCP_SYN_RECEIVED || tp->state == TOE_TCP_FIN_WAIT_1);
  /* the peer's ACK of our SYN-ACK: ESTABLISHED, and our FIN must be out now */
  h_conn_send(&c, H_ACK, NULL, 0);
  struct h_tcp f;
  REQUIRE(h_conn_last(&c, &f));
  CHECK(f.flags & H_FIN);
  CHECK_EQ(f.seq, c.iss + 1);
  CHECK_EQ(tp->state, TOE_TCP_FIN_WAIT_1);
  /* FIN+ACK from the peer: TIME-WAIT, the tcb released */
  c.rcv_nxt = c.iss + 2;
  int before = H.ntx;
  h_conn_send(&c, H_FIN | H_ACK, NULL, 0);
  CHECK_EQ(h_conn_count_flags(&c, before, H_ACK), 1);
  CHECK_EQ(H.st->tcp.tw_inuse, 1);
  CHECK_EQ(tc()->socks_inuse, 0);
  h_fini(&H);
}

TEST(fin_completing_simultaneous_open_goes_to_close_wait)
{
  h_init(&H);
  struct h_conn c;
  h_conn_init(&c, &H, 8003);
  REQUIRE(simultaneous_start(&c, 7101));
  /* our SYN-ACK (RFC 9293 3.10.7.3: <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK>) carries the options
   * again and echoes the peer's TSval (RFC 7323 3.2) */
  struct h_tcp sa;
  REQUIRE(h_conn_last(&c, &sa));
  CHECK_EQ(sa.flags, H_SYN | H_ACK);
  CHECK_EQ(sa.seq, c.iss);
  CHECK_EQ(sa.ack, c.irs + 1);
  CHECK(sa.has_mss && sa.has_ws && sa.sack_perm && sa.has_ts);
  CHECK_EQ(sa.tsecr, c.tsval - 1);
  /* RFC 9293 3.10.7.4 in SYN-RECEIVED: the ACK makes it ESTABLISHED, the FIN then CLOSE-WAIT */
  int before = H.ntx;
  h_conn_send(&c, H_ACK | H_FIN, "bye", 3);
  CHECK_EQ(toe_tcb(c.s)->state, TOE_TCP_CLOSE_WAIT);
  CHECK_EQ(tc()->curr_estab, 1);
  CHECK(h_conn_count_flags(&c, before, H_ACK) >= 1);
  struct h_tcp a;
  REQUIRE(h_conn_last(&c, &a));
  CHECK_EQ(a.ack, c.snd_nxt); /* data and FIN acknowledged */
  char buf[8];
  CHECK_EQ(h_conn_read(&c, buf, sizeof(buf)), 3);
  CHECK_MEM(buf, "bye", 3);
  CHECK_EQ(toe_tcp_recv(H.st, c.s, buf, sizeof(buf)), 0);
  /* CLOSE-WAIT -> LAST-ACK -> CLOSED */
  toe_sock_close(H.st, c.s);
  struct h_tcp f;
  REQUIRE(h_conn_last(&c, &f));
  CHECK(f.flags & H_FIN);
  c.rcv_nxt = f.seq + 1;
  h_conn_send(&c, H_ACK, NULL, 0);
  CHECK_EQ(tc()->socks_inuse, 0);
  CHECK_EQ(H.st->tcp.tw_inuse, 0);
  CHECK_EQ(tc()->curr_estab, 0);
  h_fini(&H);
}

TEST(listener_close_goes_to_closed_and_port_answers_rst)
{
  h_init(&H);
  h_learn_peer(&H);
  struct toe_sock *ls = NULL;
  REQUIRE(toe_tcp_open(H.st, NULL, &ls) == 0);
  struct toe_sockaddr l = {.family = TOE_AF_INET, .port = 8080, .addr = 0};
  REQUIRE(toe_sock_bind(H.st, ls, &l) == 0);
  REQUIRE(toe_tcp_listen(H.st, ls, 8) == 0);
  CHECK_EQ(toe_tcb(ls)->state, TOE_TCP_LISTEN);
  /* an embryonic connection in the SYN cache goes with the listener */
  uint8_t f[256];
  size_t n =
      h_build_tcp(f, H_PEER_IP, 40001, H_OUR_IP, 8080, 1000, 0, H_SYN, 8192, NULL, 0, NULL, 0);
  h_input(&H, f, n);
  CHECK_EQ(toe_tcp_syncache_count(H.st, NULL), 1);
  toe_sock_close(H.st, ls);
  CHECK_EQ(tc()->socks_inuse, 0);
  CHECK_EQ(toe_tcp_syncache_count(H.st, NULL), 0);
  CHECK_EQ(H.st->socks.bound, 0);
  h_clear(&H);
  /* RFC 9293 3.10.7.1: a SYN to the closed port gets <SEQ=0><ACK=SEG.SEQ+1><CTL=RST,ACK> */
  n = h_build_tcp(f, H_PEER_IP, 40002, H_OUR_IP, 8080, 5000, 0, H_SYN, 8192, NULL, 0, NULL, 0);
  h_input(&H, f, n);
  struct h_tcp r;
  REQUIRE(h_tcp_get(&H, -1, &r));
  CHECK_EQ(r.flags, H_RST | H_ACK);
  CHECK_EQ(r.ack, 5001);
  /* nothing left behind: no SYN-ACK retransmission for the forgotten entry */
  h_clear(&H);
  h_advance(&H, TOE_SEC(10));
  CHECK_EQ(h_tcp_count(&H), 0);
  h_fini(&H);
}

TEST(fin_retransmitted_from_last_ack_and_closing)
{
  struct toe_config cfg;
  h_default_cfg(&cfg);
  cfg.tcp_timestamps = 0; /* the RTO is the initial 1 s: no RTT sample from the handshake */
  cfg.tcp_sack = 0;
  h_init_cfg(&H, &cfg);

  /* LAST-ACK */
  struct h_conn c;
  h_conn_init(&c, &H, 8004);
  REQUIRE(h_conn_connect(&c, 0) == 0);
  h_conn_send(&c, H_FIN | H_ACK, NULL, 0);
  REQUIRE(toe_tcb(c.s)->state == TOE_TCP_CLOSE_WAIT);
  struct toe_tcb *tp = toe_tcb(c.s);
  toe_sock_close(H.st, c.s);
  CHECK_EQ(tp->state, TOE_TCP_LAST_ACK);
  struct h_tcp f;
  REQUIRE(h_conn_last(&c, &f));
  REQUIRE(f.flags & H_FIN);
  h_clear(&H);
  h_advance(&H, TOE_SEC(1) + TOE_MSEC(2));
  struct h_tcp r;
  REQUIRE(h_conn_last(&c, &r));
  CHECK(r.flags & H_FIN);
  CHECK_EQ(r.seq, f.seq);
  CHECK_EQ(tc()->retrans_segs, 1);
  c.rcv_nxt = f.seq + 1;
  h_conn_send(&c, H_ACK, NULL, 0);
  CHECK_EQ(tc()->socks_inuse, 0);

  /* CLOSING: the FINs crossed, ours is lost */
  struct h_conn d;
  h_conn_init(&d, &H, 8005);
  REQUIRE(h_conn_connect(&d, 0) == 0);
  REQUIRE(toe_tcp_shutdown(H.st, d.s, TOE_SHUT_WR) == 0);
  REQUIRE(h_conn_last(&d, &f));
  REQUIRE(f.flags & H_FIN);
  h_conn_send(&d, H_FIN | H_ACK, NULL, 0); /* does not acknowledge our FIN */
  CHECK_EQ(toe_tcb(d.s)->state, TOE_TCP_CLOSING);
  h_clear(&H);
  h_advance(&H, TOE_SEC(1) + TOE_MSEC(2));
  REQUIRE(h_conn_last(&d, &r));
  CHECK(r.flags & H_FIN);
  CHECK_EQ(r.seq, f.seq);
  CHECK_EQ(r.ack, d.snd_nxt);
  d.rcv_nxt = f.seq + 1;
  h_conn_send(&d, H_ACK, NULL, 0);
  CHECK_EQ(H.st->tcp.tw_inuse, 1);
  h_fini(&H);
}

/* ---------------------------------------------------------------------------------------------
 * Delayed ACK: the delay is bounded from the first segment it holds back
 */

TEST(delayed_ack_bound_is_not_restarted_by_later_segments)
{
  h_init(&H);
  static uint8_t d[1448];
  struct h_conn c;
  h_conn_init(&c, &H, 8006);
  REQUIRE(h_conn_connect(&c, 0) == 0);
  /* past the quick-ACK start */
  static uint8_t buf[1 << 16];
  for (int i = 0; i < 40; i++)
    h_conn_send(&c, H_ACK, d, sizeof(d));
  h_conn_read(&c, buf, sizeof(buf));
  h_advance(&H, TOE_SEC(1));
  h_clear(&H);
  toe_time_t t0 = H.now;
  h_conn_send(&c, H_ACK, d, 100); /* held: less than two full segments */
  CHECK_EQ(h_tcp_count(&H), 0);
  h_advance(&H, TOE_MSEC(30));
  h_conn_send(&c, H_ACK, d, 100); /* still less than two full segments */
  CHECK_EQ(h_tcp_count(&H), 0);
  /* RFC 1122 4.2.3.2: the ACK is delayed at most tcp_delack from the first held segment (a
   * timer restarted by each small segment would let a trickle postpone it forever) */
  h_advance(&H, t0 + H.cfg.tcp_delack - TOE_MSEC(1) - H.now);
  CHECK_EQ(h_tcp_count(&H), 0);
  h_advance(&H, TOE_MSEC(2));
  REQUIRE(h_tcp_count(&H) == 1);
  struct h_tcp a;
  REQUIRE(h_conn_last(&c, &a));
  CHECK_EQ(a.ack, c.snd_nxt);
  CHECK_EQ(a.flags, H_ACK);
  h_fini(&H);
}

/* ---------------------------------------------------------------------------------------------
 * The handshake: nothing more than three segments, and the response to a lost SYN
 */

TEST(passive_open_sends_nothing_after_the_handshake_ack)
{
  h_init(&H);
  struct h_conn c;
  h_conn_init(&c, &H, 8010);
  REQUIRE(h_conn_accept(&c, 8010) == 0);
  /* SYN in, SYN-ACK out, ACK in: the handshake ACK needs no answer. The window grows from the
   * SYN-ACK's unscaled 65535 to the scaled buffer, but the peer learns that from our next
   * segment; an ACK just for it doubles the segments of every short passive connection (RFC
   * 9293 3.8.6.2.2 sends window updates when the application's reads open the window). */
  int after = 0;
  for (int i = 0; i < H.ntx; i++) {
    struct h_tcp t;
    if (h_tcp_parse(H.tx[i].bytes, H.tx[i].len, &t) && !(t.flags & H_SYN))
      after++;
  }
  CHECK_EQ(after, 0);
  CHECK_EQ(tc()->out_win_updates, 0);
  /* the first data is acknowledged with the full window */
  h_clear(&H);
  h_conn_send(&c, H_ACK | H_PSH, "x", 1);
  struct h_tcp a;
  REQUIRE(h_conn_last(&c, &a));
  CHECK(((uint32_t)a.win << c.our_ws) >= 256u * 1024u - (1u << c.our_ws));
  h_fini(&H);
}

TEST(lost_syn_gives_one_segment_window_and_3s_rto)
{
  struct toe_config cfg;
  h_default_cfg(&cfg);
  cfg.tcp_timestamps = 0; /* no RTT sample from the handshake */
  cfg.tcp_sack = 0;       /* no tail-loss probe in the way of the RTO */
  h_init_cfg(&H, &cfg);
  struct h_conn c;
  h_conn_init(&c, &H, 8011);
  struct toe_sock *s = NULL;
  REQUIRE(toe_tcp_open(H.st, &c, &s) == 0);
  struct toe_sockaddr r = {.family = TOE_AF_INET, .port = c.pport, .addr = H_PEER_IP};
  REQUIRE(toe_sock_connect(H.st, s, &r) == -TOE_EINPROGRESS);
  c.s = s;
  struct h_tcp syn;
  REQUIRE(h_tcp_get(&H, -1, &syn));
  c.lport = syn.sport;
  c.iss = syn.seq;
  /* the first SYN is lost: retransmitted after the initial RTO (1 s) */
  h_clear(&H);
  h_advance(&H, TOE_SEC(1) + TOE_MSEC(5));
  REQUIRE(h_tcp_count(&H) == 1);
  struct h_tcp_opt o = c.syn_opt;
  o.ts = false;
  o.sack_perm = false;
  h_conn_send_raw(&c, c.irs, c.iss + 1, H_SYN | H_ACK, 65535, &o, NULL, 0);
  c.snd_nxt = c.irs + 1;
  c.rcv_nxt = c.iss + 1;
  REQUIRE(toe_tcb(s)->state == TOE_TCP_ESTABLISHED);
  REQUIRE(toe_sock_setopt(H.st, s, TOE_TCP_NODELAY, 1) == 0);
  /* RFC 5681 3.1: "if the SYN or SYN/ACK is lost, the initial window used by a sender after a
   * correctly transmitted SYN MUST be one segment" (the SYN cache does this for passive opens:
   * test_tcp_syncache.c lost_synack_gives_one_segment_window_and_3s_rto) */
  static uint8_t data[10 * 1460];
  h_clear(&H);
  REQUIRE(toe_tcp_send(H.st, s, data, sizeof(data), 0) == (int)sizeof(data));
  struct h_tcp d[16];
  CHECK_EQ(data_segs(&c, 0, d, 16), 1);
  /* RFC 6298 5.7: the RTO is re-initialized to 3 s when data transmission begins */
  h_clear(&H);
  h_advance(&H, TOE_MSEC(2900));
  CHECK_EQ(data_segs(&c, 0, d, 16), 0);
  h_advance(&H, TOE_MSEC(200));
  CHECK_EQ(data_segs(&c, 0, d, 16), 1);
  h_fini(&H);
}

/* ---------------------------------------------------------------------------------------------
 * TIME_WAIT reuse by connect (RFC 6191), through the socket API
 */

/* Brings connection `c` (opened actively) to TIME_WAIT; returns our FIN's sequence number. */
static uint32_t active_close_to_timewait(struct h_conn *c, uint32_t *last_tsval)
{
  toe_sock_close(H.st, c->s);
  struct h_tcp fin;
  if (!h_conn_last(c, &fin) || !(fin.flags & H_FIN))
    return 0;
  c->rcv_nxt = fin.seq + 1;
  h_conn_send(c, H_FIN | H_ACK, NULL, 0);
  struct h_tcp a;
  if (!h_conn_last(c, &a) || a.flags != H_ACK)
    return 0;
  *last_tsval = a.tsval;
  return fin.seq;
}

TEST(connect_reuses_a_timewait_tuple_beyond_its_sequence_space)
{
  h_init(&H);
  struct h_conn c;
  h_conn_init(&c, &H, 8007);
  REQUIRE(h_conn_connect(&c, 0) == 0);
  uint16_t lport = c.lport;
  h_advance(&H, TOE_MSEC(20));
  uint32_t last_tsval = 0;
  uint32_t fin = active_close_to_timewait(&c, &last_tsval);
  REQUIRE(fin != 0);
  REQUIRE(H.st->tcp.tw_inuse == 1);

  /* the port is held: bind without REUSEADDR fails (as Linux) */
  struct toe_sock *s = NULL;
  REQUIRE(toe_tcp_open(H.st, &c, &s) == 0);
  struct toe_sockaddr l = {.family = TOE_AF_INET, .port = lport, .addr = 0};
  CHECK_EQ(toe_sock_bind(H.st, s, &l), -TOE_EADDRINUSE);
  REQUIRE(toe_sock_setopt(H.st, s, TOE_SO_REUSEADDR, 1) == 0);
  REQUIRE(toe_sock_bind(H.st, s, &l) == 0);
  /* too young (PAWS protects reuse only after a second): the 4-tuple is not available */
  struct toe_sockaddr r = {.family = TOE_AF_INET, .port = c.pport, .addr = H_PEER_IP};
  CHECK_EQ(toe_sock_connect(H.st, s, &r), -TOE_EADDRNOTAVAIL);
  CHECK_EQ(H.st->tcp.tw_inuse, 1);
  toe_sock_close(H.st, s);

  h_advance(&H, TOE_MSEC(1500));
  h_clear(&H);
  s = NULL;
  REQUIRE(toe_tcp_open(H.st, &c, &s) == 0);
  REQUIRE(toe_sock_setopt(H.st, s, TOE_SO_REUSEADDR, 1) == 0);
  REQUIRE(toe_sock_bind(H.st, s, &l) == 0);
  CHECK_EQ(toe_sock_connect(H.st, s, &r), -TOE_EINPROGRESS);
  CHECK_EQ(H.st->tcp.tw_inuse, 0);
  CHECK_EQ(tc()->tw_reused, 1);
  struct h_tcp syn;
  REQUIRE(h_tcp_get(&H, -1, &syn));
  CHECK_EQ(syn.flags, H_SYN);
  CHECK_EQ(syn.sport, lport);
  /* RFC 6191 2: a peer still in TIME_WAIT accepts the SYN if its timestamp is newer, or (without
   * timestamps) its sequence number is above the old connection's */
  CHECK(syn.has_ts);
  CHECK((int32_t)(syn.tsval - last_tsval) > 0);
  CHECK((int32_t)(syn.seq - (fin + 1)) > 0);
  /* and the new connection opens on the old 4-tuple */
  struct h_conn n2;
  h_conn_init(&n2, &H, 8007);
  n2.s = s;
  n2.lport = lport;
  n2.iss = syn.seq;
  n2.rcv_nxt = syn.seq + 1;
  n2.irs = c.snd_nxt + 100000;
  n2.snd_nxt = n2.irs;
  n2.ts = true;
  struct h_tcp_opt o = n2.syn_opt;
  o.tsval = c.tsval + 100;
  o.tsecr = syn.tsval;
  n2.tsval = o.tsval + 1;
  h_conn_send_raw(&n2, n2.snd_nxt, n2.rcv_nxt, H_SYN | H_ACK, 65535, &o, NULL, 0);
  n2.snd_nxt++;
  CHECK_EQ(toe_tcb(s)->state, TOE_TCP_ESTABLISHED);
  h_conn_send(&n2, H_ACK, "again", 5);
  char buf[8];
  CHECK_EQ(h_conn_read(&n2, buf, sizeof(buf)), 5);
  h_fini(&H);
}

/* ---------------------------------------------------------------------------------------------
 * Path MTU reduction (RFC 1191)
 */

#define PM_BYTES (20u * 1448u)
#define PM_MTU 1000u

struct pm_rx {
  uint8_t got[PM_BYTES];
  uint32_t rcv; /* first byte missing */
  uint32_t base;
  uint32_t ts_recent;
  int too_big; /* segments the small link dropped */
  int max_ip_len_after;
};
static struct pm_rx PM;

/* One round trip through a link whose MTU is PM_MTU: our segments captured since the last round
 * arrive (or are dropped if their IP datagram is larger), and the peer answers each with an ACK
 * carrying SACK blocks for what it holds above the cumulative point. */
static void pm_round(struct h_conn *c, bool after_icmp)
{
  struct h_tcp segs[64];
  int n = 0;
  for (int i = 0; i < H.ntx && n < 64; i++) {
    struct h_tcp t;
    if (!h_tcp_parse(H.tx[i].bytes, H.tx[i].len, &t) || t.dport != c->pport || t.dlen == 0)
      continue;
    size_t iplen = H.tx[i].len - 14;
    if (after_icmp && (int)iplen > PM.max_ip_len_after)
      PM.max_ip_len_after = (int)iplen;
    if (iplen > PM_MTU) {
      PM.too_big++;
      continue;
    }
    segs[n++] = t;
  }
  h_clear(&H);
  h_advance(&H, TOE_MSEC(5));
  for (int k = 0; k < n; k++) {
    uint32_t off = segs[k].seq - PM.base;
    if (off + segs[k].dlen > PM_BYTES)
      continue;
    if (off <= PM.rcv)
      PM.ts_recent = segs[k].tsval;
    memset(PM.got + off, 1, segs[k].dlen);
    while (PM.rcv < PM_BYTES && PM.got[PM.rcv])
      PM.rcv++;
    /* SACK: the ranges held above rcv, the one just received first (at most 3 with TS) */
    struct h_tcp_opt o;
    h_tcp_opt_none(&o);
    o.ts = true;
    o.tsval = c->tsval++;
    o.tsecr = PM.ts_recent;
    uint32_t s = off, e = off + (uint32_t)segs[k].dlen;
    if (s > PM.rcv) {
      while (s > PM.rcv && PM.got[s - 1])
        s--;
      while (e < PM_BYTES && PM.got[e])
        e++;
      o.sack[o.nsack][0] = PM.base + s;
      o.sack[o.nsack][1] = PM.base + e;
      o.nsack++;
    }
    for (uint32_t i = PM.rcv; i < PM_BYTES && o.nsack < 3;) {
      if (!PM.got[i]) {
        i++;
        continue;
      }
      uint32_t j = i;
      while (j < PM_BYTES && PM.got[j])
        j++;
      if (i != s) {
        o.sack[o.nsack][0] = PM.base + i;
        o.sack[o.nsack][1] = PM.base + j;
        o.nsack++;
      }
      i = j;
    }
    h_conn_send_raw(c, c->snd_nxt, PM.base + PM.rcv, H_ACK, c->win, &o, NULL, 0);
  }
}

TEST(pmtu_reduction_repairs_the_whole_flight)
{
  struct toe_config cfg;
  h_default_cfg(&cfg);
  cfg.pbuf_count = 1024;
  h_init_cfg(&H, &cfg);
  memset(&PM, 0, sizeof(PM));
  struct h_conn c;
  h_conn_init(&c, &H, 8008);
  REQUIRE(h_conn_connect(&c, 0) == 0);
  REQUIRE(toe_sock_setopt(H.st, c.s, TOE_TCP_NODELAY, 1) == 0);
  struct toe_tcb *tp = toe_tcb(c.s);
  tp->min_rtt_us = 0; /* the scripted handshake took no time: no RTT to scale RACK's window by */
  PM.base = c.iss + 1;
  static uint8_t data[PM_BYTES];
  for (uint32_t i = 0; i < PM_BYTES; i++)
    data[i] = (uint8_t)(i * 13u + 5u);
  h_clear(&H);
  REQUIRE(toe_tcp_send(H.st, c.s, data, PM_BYTES, 0) == (int)PM_BYTES);
  /* the first flight (IW10) leaves in 1500-byte datagrams; the link is 1000: all of it is lost
   * and the router reports the first one (routers rate-limit ICMP: one report for the flight) */
  int first = h_tcp_find(&H, 0);
  REQUIRE(first >= 0);
  struct h_tcp t0;
  REQUIRE(h_tcp_parse(H.tx[first].bytes, H.tx[first].len, &t0) && t0.dlen == 1448);
  int flight = 0;
  for (int i = 0; i < H.ntx; i++) {
    struct h_tcp t;
    if (h_tcp_parse(H.tx[i].bytes, H.tx[i].len, &t) && t.dlen > 0)
      flight++;
  }
  CHECK_EQ(flight, 10);
  uint8_t quoted[128];
  memcpy(quoted, H.tx[first].bytes, sizeof(quoted));
  h_clear(&H);
  h_input_icmp_error(&H, H_ROUTER_IP, quoted, 3, 4, PM_MTU); /* frag needed */
  CHECK_EQ(tp->pmtu, PM_MTU);
  CHECK_EQ(tp->snd_mss, PM_MTU - 40);
  /* RFC 1191 6.3: what was dropped goes again at once in smaller segments */
  struct h_tcp d[64];
  REQUIRE(data_segs(&c, 0, d, 64) >= 1);
  CHECK_EQ(d[0].seq, PM.base);
  toe_time_t t_icmp = H.now;
  uint64_t rto0 = tc()->rec_rto;
  int rounds = 0;
  while (PM.rcv < PM_BYTES && rounds < 400) {
    pm_round(&c, true);
    rounds++;
  }
  CHECK_EQ(PM.rcv, PM_BYTES);
  CHECK_EQ(PM.max_ip_len_after <= (int)PM_MTU, 1); /* nothing too big after the report */
  CHECK_EQ(PM.too_big, 0);
  /* let the last ACKs in and check the scoreboard is clean */
  pm_round(&c, true);
  CHECK_EQ(tp->snd_una, tp->snd_max);
  CHECK_EQ(tp->sndq_bytes, 0);
  CHECK_EQ(tp->lost_bytes, 0);
  CHECK_EQ(tp->sacked_bytes, 0);
  CHECK_EQ(tp->retrans_out, 0);
  /* The whole lost flight is known to be lost the moment the report arrives (every segment
   * bigger than the new MTU was dropped, as Linux's tcp_simple_retransmit assumes): repairing it
   * must not wait for a retransmission timeout (>= 200 ms here, 40 RTTs). */
  toe_time_t took = H.now - t_icmp;
  printf("  pmtu: flight repaired in %llu ms, %d rounds, %llu RTOs, %llu TLPs, %llu episodes\n",
         (unsigned long long)(took / 1000000u), rounds, (unsigned long long)(tc()->rec_rto - rto0),
         (unsigned long long)tc()->rec_tlp_probes, (unsigned long long)tc()->rec_episodes);
  CHECK_EQ(tc()->rec_rto - rto0, 0);
  CHECK(took < TOE_MSEC(200));
  h_fini(&H);
}

TEST(pmtu_report_of_a_tiny_mtu_keeps_a_sane_mss)
{
  h_init(&H);
  struct h_conn c;
  h_conn_init(&c, &H, 8009);
  REQUIRE(h_conn_connect(&c, 0) == 0);
  static uint8_t data[4000];
  REQUIRE(toe_tcp_send(H.st, c.s, data, sizeof(data), 0) == (int)sizeof(data));
  int idx = h_tcp_find(&H, -1);
  REQUIRE(idx >= 0);
  /* A frag-needed quoting a segment in flight (so it passes the RFC 5927 check) with an absurd
   * next-hop MTU: RFC 1191 3 keeps the estimate at or above 68 bytes, and the MSS must stay at
   * the floor the engine applies everywhere else (TOE_TCP_MIN_MSS, also to the peer's MSS option
   * and in the SYN cache): a forged report must not make a connection send 16-byte segments
   * (RFC 5927 7). The estimate stays consistent with that MSS. */
  uint8_t quoted[128];
  memcpy(quoted, H.tx[idx].bytes, sizeof(quoted));
  h_clear(&H);
  h_input_icmp_error(&H, H_ROUTER_IP, quoted, 3, 4, 68); /* frag needed */
  struct toe_tcb *tp = toe_tcb(c.s);
  CHECK_EQ(tp->pmtu, TOE_TCP_MIN_MSS + 40);
  CHECK_EQ(tp->snd_mss, TOE_TCP_MIN_MSS);
  CHECK_EQ(toe_tcp_eff_mss(tp), TOE_TCP_MIN_MSS - 12); /* timestamps */
  /* RFC 1191 6.3: the retransmission at once, at the new size, its options still there */
  struct h_tcp r;
  int ri = h_tcp_find(&H, 0);
  REQUIRE(ri >= 0 && h_tcp_get(&H, 0, &r));
  CHECK_EQ(r.dlen, TOE_TCP_MIN_MSS - 12);
  CHECK(r.has_ts);
  CHECK(H.tx[ri].len - 14 <= TOE_TCP_MIN_MSS + 40);
  /* a second report below the floor changes nothing */
  h_input_icmp_error(&H, H_ROUTER_IP, quoted, 3, 4, 68); /* frag needed */
  CHECK_EQ(tp->pmtu, TOE_TCP_MIN_MSS + 40);
  CHECK_EQ(tp->snd_mss, TOE_TCP_MIN_MSS);
  h_fini(&H);
}

/* ---------------------------------------------------------------------------------------------
 * RFC 4022 counters against the wire
 */

static int fed; /* TCP segments fed to the stack */

static void feed(struct h_conn *c, uint8_t flags, const void *data, size_t len)
{
  h_conn_send(c, flags, data, len);
  fed++;
}

static void feed_raw(const uint8_t *f, size_t n)
{
  h_input(&H, f, n);
  fed++;
}

static int captured; /* TCP segments captured before the last h_clear */

static void clear_counting(void)
{
  captured += h_tcp_count(&H);
  h_clear(&H);
}

TEST(in_out_retrans_segs_match_the_wire)
{
  struct toe_config cfg;
  h_default_cfg(&cfg);
  cfg.tcp_syncache = 1; /* the second SYN waiting at once gets a cookie */
  h_init_cfg(&H, &cfg);
  fed = 0;
  captured = 0;
  static uint8_t data[6000];
  memset(data, 'c', sizeof(data));

  /* passive open (SYN, SYN-ACK, ACK), data both ways */
  struct h_conn p;
  h_conn_init(&p, &H, 8100);
  REQUIRE(h_conn_accept(&p, 80) == 0);
  fed += 2;
  CHECK_EQ(tc()->passive_opens, 1);
  feed(&p, H_ACK | H_PSH, "hello", 5);
  char buf[64];
  CHECK_EQ(h_conn_read(&p, buf, sizeof(buf)), 5);
  REQUIRE(toe_tcp_send(H.st, p.s, data, 3000, 0) == 3000);
  /* the peer says nothing: the RTO retransmits */
  h_advance(&H, TOE_SEC(2));
  CHECK(tc()->retrans_segs >= 1);
  p.rcv_nxt = toe_tcb(p.s)->snd_max;
  feed(&p, H_ACK, NULL, 0);
  clear_counting();

  /* a SYN cookie: one SYN waits in the (one-entry) cache, the next gets a cookie */
  struct h_tcp_opt o;
  h_tcp_opt_none(&o);
  o.mss = 1460;
  uint8_t f[256];
  uint8_t ob[40];
  size_t ol = h_tcp_opts(ob, &o);
  size_t n = h_build_tcp(f, H_PEER_IP, 8101, H_OUR_IP, 80, 100, 0, H_SYN, 8192, ob, ol, NULL, 0);
  feed_raw(f, n);
  n = h_build_tcp(f, H_PEER_IP, 8102, H_OUR_IP, 80, 200, 0, H_SYN, 8192, ob, ol, NULL, 0);
  feed_raw(f, n);
  CHECK_EQ(tc()->syncookies_sent, 1);
  struct h_tcp sa;
  REQUIRE(h_tcp_get(&H, -1, &sa));
  n = h_build_tcp(f, H_PEER_IP, 8102, H_OUR_IP, 80, 201, sa.seq + 1, H_ACK, 8192, NULL, 0, NULL, 0);
  feed_raw(f, n);
  CHECK_EQ(tc()->syncookies_recv, 1);
  CHECK_EQ(tc()->passive_opens, 2);
  /* the cached entry's SYN-ACK is retransmitted meanwhile */
  h_advance(&H, TOE_SEC(2));
  CHECK(tc()->synack_retrans >= 1);
  clear_counting();

  /* active open, data, a segment to a closed port (RST), graceful close into TIME_WAIT and a
   * retransmitted FIN answered from TIME_WAIT */
  struct h_conn a;
  h_conn_init(&a, &H, 8103);
  REQUIRE(h_conn_connect(&a, 0) == 0);
  fed += 1;
  CHECK_EQ(tc()->active_opens, 1);
  REQUIRE(toe_tcp_send(H.st, a.s, data, 100, 0) == 100);
  a.rcv_nxt += 100;
  feed(&a, H_ACK, NULL, 0);
  n = h_build_tcp(f, H_PEER_IP, 8104, H_OUR_IP, 9, 1, 0, H_SYN, 8192, NULL, 0, NULL, 0);
  feed_raw(f, n);
  toe_sock_close(H.st, a.s);
  a.rcv_nxt += 1;
  feed(&a, H_FIN | H_ACK, NULL, 0);
  CHECK_EQ(H.st->tcp.tw_inuse, 1);
  h_conn_send_at(&a, a.snd_nxt - 1, H_FIN | H_ACK, NULL, 0);
  fed++;
  CHECK_EQ(tc()->tw_fin_acked, 1);
  /* a bad checksum still counts in tcpInSegs (and tcpInErrs) */
  n = h_build_tcp(f, H_PEER_IP, 8105, H_OUR_IP, 80, 1, 0, H_SYN, 8192, NULL, 0, NULL, 0);
  f[14 + 20 + 16] ^= 0xff;
  feed_raw(f, n);
  CHECK_EQ(tc()->in_errs, 1);
  clear_counting();

  /* RFC 4022: tcpInSegs counts every segment received, errors included; tcpOutSegs counts the
   * segments sent except retransmissions, which tcpRetransSegs counts */
  CHECK_EQ(tc()->in_segs, (uint64_t)fed);
  CHECK_EQ(tc()->out_segs + tc()->retrans_segs, (uint64_t)captured);
  CHECK(tc()->out_rsts >= 1);
  printf("  counters: in_segs %llu (fed %d), out_segs %llu + retrans_segs %llu (captured %d)\n",
         (unsigned long long)tc()->in_segs, fed, (unsigned long long)tc()->out_segs,
         (unsigned long long)tc()->retrans_segs, captured);
  h_fini(&H);
}

TEST_MAIN()
