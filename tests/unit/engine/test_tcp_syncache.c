/*
 * Listeners' SYN cache and SYN cookies (tcp_syncache.c), observed on the wire: hand-built SYNs and
 * ACKs from the peer, our SYN-ACKs, RSTs and ACKs parsed from the captured frames.
 */
#include "engine/stack.h"
#include "engine/tcp.h"
#include "harness.h"
#include "tcp_harness.h"
#include "testlib.h"

#include <stdlib.h>
#include <string.h>

#define LPORT 80

struct sc {
  struct harness h;
  struct toe_sock *ls;
  int luser;
};

static void sc_init_cfg(struct sc *t, const struct toe_config *cfg, int backlog)
{
  memset(t, 0, sizeof(*t));
  struct toe_config c;
  if (cfg)
    c = *cfg;
  else
    h_default_cfg(&c);
  h_init_cfg(&t->h, &c);
  h_learn_peer(&t->h);
  t->ls = NULL;
  if (toe_tcp_open(t->h.st, &t->luser, &t->ls) != 0)
    return;
  struct toe_sockaddr l = {.family = TOE_AF_INET, .port = LPORT, .addr = 0};
  toe_sock_bind(t->h.st, t->ls, &l);
  toe_tcp_listen(t->h.st, t->ls, backlog);
  h_clear(&t->h);
}

static void sc_init(struct sc *t, int backlog)
{
  sc_init_cfg(t, NULL, backlog);
}

static struct toe_stack *ST(struct sc *t)
{
  return t->h.st;
}

/* The usual options of a Linux peer's SYN. */
static struct h_tcp_opt peer_opts(uint32_t tsval)
{
  struct h_tcp_opt o;
  h_tcp_opt_none(&o);
  o.mss = 1460;
  o.wscale = 7;
  o.sack_perm = true;
  o.ts = true;
  o.tsval = tsval;
  return o;
}

static void send_seg(struct sc *t, uint16_t pport, uint32_t seq, uint32_t ack, uint8_t flags,
                     uint16_t win, const struct h_tcp_opt *o, const void *data, size_t len)
{
  static uint8_t frame[H_MAX_FRAME];
  uint8_t opts[40];
  size_t ol = o ? h_tcp_opts(opts, o) : 0;
  size_t n = h_build_tcp(frame, H_PEER_IP, pport, H_OUR_IP, LPORT, seq, ack, flags, win, opts, ol,
                         data, len);
  h_input(&t->h, frame, n);
}

static void send_syn(struct sc *t, uint16_t pport, uint32_t seq, const struct h_tcp_opt *o)
{
  send_seg(t, pport, seq, 0, H_SYN, 65535, o, NULL, 0);
}

/* The last captured TCP segment to the peer's port `pport`. */
static bool last_to(struct sc *t, uint16_t pport, struct h_tcp *out)
{
  for (int i = t->h.ntx - 1; i >= 0; i--) {
    struct h_tcp x;
    if (h_tcp_parse(t->h.tx[i].bytes, t->h.tx[i].len, &x) && x.dport == pport &&
        x.dst == H_PEER_IP) {
      *out = x;
      return true;
    }
  }
  return false;
}

static int count_to(struct sc *t, uint16_t pport, uint8_t flags)
{
  int n = 0;
  for (int i = 0; i < t->h.ntx; i++) {
    struct h_tcp x;
    if (h_tcp_parse(t->h.tx[i].bytes, t->h.tx[i].len, &x) && x.dport == pport &&
        (x.flags & flags) == flags)
      n++;
  }
  return n;
}

/* The handshake ACK for SYN-ACK `sa` from the peer whose ISN was `irs`, echoing its TSval. */
static void send_ack(struct sc *t, uint16_t pport, const struct h_tcp *sa, uint32_t irs,
                     uint32_t tsval, const void *data, size_t len)
{
  struct h_tcp_opt o;
  h_tcp_opt_none(&o);
  if (sa->has_ts) {
    o.ts = true;
    o.tsval = tsval;
    o.tsecr = sa->tsval;
  }
  send_seg(t, pport, irs + 1, sa->seq + 1, H_ACK, 512, &o, data, len);
}

static const struct toe_counters_tcp *C(struct sc *t)
{
  return &toe_stack_counters(ST(t))->tcp;
}

/* ---------------------------------------------------------------------------------------------
 * The SYN cache
 */

TEST(syn_makes_entry_and_synack_with_options)
{
  struct sc t;
  sc_init(&t, 16);
  REQUIRE(t.ls != NULL);
  uint32_t tcbs = ST(&t)->tcp.inuse;
  struct h_tcp_opt o = peer_opts(5000);
  send_syn(&t, 40000, 0x11110000u, &o);
  struct h_tcp sa;
  REQUIRE(last_to(&t, 40000, &sa));
  CHECK_EQ(sa.flags, H_SYN | H_ACK);
  CHECK(sa.csum_ok);
  CHECK(sa.df);
  CHECK_EQ(sa.sport, LPORT);
  CHECK_EQ(sa.ack, 0x11110001u);
  CHECK(sa.has_mss);
  CHECK_EQ(sa.mss, 1460); /* MTU 1500 - 40 */
  CHECK(sa.has_ws);
  CHECK_EQ(sa.ws, 7); /* 4 MiB auto-tuning limit >> 7 fits 16 bits */
  CHECK(sa.sack_perm);
  CHECK(sa.has_ts);
  CHECK_EQ(sa.tsecr, 5000);
  CHECK_EQ(sa.win, 65535); /* SYN-ACK windows are never scaled (RFC 7323 2.2) */
  /* no tcb yet: a compact entry */
  CHECK_EQ(ST(&t)->tcp.inuse, tcbs);
  CHECK_EQ(toe_tcp_syncache_count(ST(&t), NULL), 1);
  CHECK_EQ(C(&t)->syncache_adds, 1);
  CHECK_EQ(C(&t)->syncache_inuse, 1);
  struct toe_sock *s = NULL;
  CHECK_EQ(toe_tcp_accept(ST(&t), t.ls, NULL, &s), -TOE_EAGAIN);
  h_fini(&t.h);
}

TEST(handshake_ack_makes_established_connection)
{
  struct sc t;
  sc_init(&t, 16);
  REQUIRE(t.ls != NULL);
  struct h_tcp_opt o = peer_opts(5000);
  send_syn(&t, 40001, 1000, &o);
  struct h_tcp sa;
  REQUIRE(last_to(&t, 40001, &sa));
  h_advance(&t.h, TOE_MSEC(30));
  t.h.nev = 0;
  send_ack(&t, 40001, &sa, 1000, 5001, "hello", 5);
  CHECK_EQ(toe_tcp_syncache_count(ST(&t), NULL), 0);
  CHECK_EQ(C(&t)->syncache_completed, 1);
  CHECK_EQ(C(&t)->passive_opens, 1);
  /* the listener was told */
  bool readable = false;
  for (int i = 0; i < t.h.nev; i++)
    if (t.h.ev[i].sock == t.ls && (t.h.ev[i].events & TOE_EV_READABLE))
      readable = true;
  CHECK(readable);
  struct toe_sock *s = NULL;
  REQUIRE(toe_tcp_accept(ST(&t), t.ls, &t, &s) == 0);
  struct toe_tcp_info info;
  REQUIRE(toe_tcp_get_info(ST(&t), s, &info) == 0);
  CHECK_EQ(info.state, TOE_TCP_ESTABLISHED);
  CHECK_EQ(info.options, TOE_TCPI_OPT_TIMESTAMPS | TOE_TCPI_OPT_SACK | TOE_TCPI_OPT_WSCALE);
  CHECK_EQ(info.snd_wscale, 7);
  CHECK_EQ(info.rcv_wscale, 7);
  CHECK_EQ(info.snd_mss, 1460);
  CHECK_EQ(info.snd_wnd, 512u << 7); /* the ACK's window is scaled */
  /* the handshake gave an RTT sample of about 30 ms (RFC 6298 2.2) */
  CHECK(info.rtt_us >= 29000 && info.rtt_us <= 32000);
  /* data on the third segment was delivered */
  char buf[16];
  CHECK_EQ(toe_tcp_recv(ST(&t), s, buf, sizeof(buf)), 5);
  CHECK_MEM(buf, "hello", 5);
  struct toe_sockaddr ln, rn;
  toe_sock_name(s, &ln, &rn);
  CHECK_EQ(ln.port, LPORT);
  CHECK_EQ(rn.port, 40001);
  CHECK_EQ(rn.addr, H_PEER_IP);
  h_fini(&t.h);
}

TEST(synack_retransmitted_with_backoff_then_dropped)
{
  struct toe_config cfg;
  h_default_cfg(&cfg);
  cfg.tcp_syn_retries = 3;
  struct sc t;
  sc_init_cfg(&t, &cfg, 16);
  REQUIRE(t.ls != NULL);
  struct h_tcp_opt o = peer_opts(1);
  toe_time_t t0 = t.h.now;
  send_syn(&t, 40002, 77, &o);
  struct h_tcp first;
  REQUIRE(last_to(&t, 40002, &first));
  /* RTO 1 s, then 2 s, 4 s (RFC 6298 2.1, 5.5) */
  toe_time_t expect[3] = {TOE_SEC(1), TOE_SEC(3), TOE_SEC(7)};
  for (int i = 0; i < 3; i++) {
    h_advance(&t.h, t0 + expect[i] - TOE_MSEC(5) - t.h.now);
    CHECK_EQ(count_to(&t, 40002, H_SYN | H_ACK), 1 + i);
    h_advance(&t.h, TOE_MSEC(10));
    CHECK_EQ(count_to(&t, 40002, H_SYN | H_ACK), 2 + i);
    struct h_tcp r;
    REQUIRE(last_to(&t, 40002, &r));
    CHECK_EQ(r.seq, first.seq);
    CHECK_EQ(r.ack, 78);
  }
  CHECK_EQ(C(&t)->synack_retrans, 3);
  CHECK_EQ(toe_tcp_syncache_count(ST(&t), NULL), 1);
  /* after the last one has had its 8 s, the entry goes */
  h_advance(&t.h, TOE_SEC(9));
  CHECK_EQ(count_to(&t, 40002, H_SYN | H_ACK), 4);
  CHECK_EQ(toe_tcp_syncache_count(ST(&t), NULL), 0);
  CHECK_EQ(C(&t)->syncache_timeouts, 1);
  /* and an ACK now finds nothing: RST */
  h_clear(&t.h);
  send_ack(&t, 40002, &first, 77, 2, NULL, 0);
  struct h_tcp r;
  REQUIRE(last_to(&t, 40002, &r));
  CHECK(r.flags & H_RST);
  CHECK_EQ(r.seq, first.seq + 1);
  h_fini(&t.h);
}

TEST(lost_synack_gives_one_segment_window_and_3s_rto)
{
  struct sc t;
  sc_init(&t, 16);
  REQUIRE(t.ls != NULL);
  struct h_tcp_opt o = peer_opts(1);
  send_syn(&t, 40003, 500, &o);
  h_advance(&t.h, TOE_MSEC(1100)); /* the SYN-ACK is retransmitted once */
  struct h_tcp sa;
  REQUIRE(last_to(&t, 40003, &sa));
  CHECK_EQ(count_to(&t, 40003, H_SYN | H_ACK), 2);
  send_ack(&t, 40003, &sa, 500, 2, NULL, 0);
  struct toe_sock *s = NULL;
  REQUIRE(toe_tcp_accept(ST(&t), t.ls, NULL, &s) == 0);
  struct toe_tcp_info info;
  REQUIRE(toe_tcp_get_info(ST(&t), s, &info) == 0);
  CHECK_EQ(info.snd_cwnd, info.snd_mss); /* RFC 5681 3.1 */
  CHECK(info.rto_us >= 3000000);         /* RFC 6298 5.7 */
  CHECK_EQ(info.rtt_us, 0);              /* Karn: no sample from a retransmitted SYN-ACK */
  h_fini(&t.h);
}

TEST(repeated_syn_answered_again_other_syn_challenged)
{
  struct sc t;
  sc_init(&t, 16);
  REQUIRE(t.ls != NULL);
  struct h_tcp_opt o = peer_opts(10);
  send_syn(&t, 40004, 900, &o);
  struct h_tcp sa1;
  REQUIRE(last_to(&t, 40004, &sa1));
  h_advance(&t.h, TOE_MSEC(200));
  o.tsval = 11;
  send_syn(&t, 40004, 900, &o);
  struct h_tcp sa2;
  REQUIRE(last_to(&t, 40004, &sa2));
  CHECK_EQ(count_to(&t, 40004, H_SYN | H_ACK), 2);
  CHECK_EQ(sa2.seq, sa1.seq);
  CHECK_EQ(C(&t)->syncache_dup_syns, 1);
  /* a SYN with another ISN on the same 4-tuple: challenge ACK (RFC 5961 4.2) */
  o.tsval = 12;
  send_syn(&t, 40004, 5555, &o);
  struct h_tcp ca;
  REQUIRE(last_to(&t, 40004, &ca));
  CHECK_EQ(ca.flags, H_ACK);
  CHECK_EQ(ca.seq, sa1.seq + 1);
  CHECK_EQ(ca.ack, 901);
  CHECK_EQ(toe_tcp_syncache_count(ST(&t), NULL), 1);
  h_fini(&t.h);
}

TEST(rst_removes_entry_only_at_exact_sequence)
{
  struct sc t;
  sc_init(&t, 16);
  REQUIRE(t.ls != NULL);
  struct h_tcp_opt o = peer_opts(10);
  send_syn(&t, 40005, 3000, &o);
  struct h_tcp sa;
  REQUIRE(last_to(&t, 40005, &sa));
  h_clear(&t.h);
  /* in the window, not exact: challenge ACK, entry kept (RFC 5961 3.2) */
  send_seg(&t, 40005, 3000 + 1 + 100, 0, H_RST, 0, NULL, NULL, 0);
  CHECK_EQ(toe_tcp_syncache_count(ST(&t), NULL), 1);
  struct h_tcp ca;
  REQUIRE(last_to(&t, 40005, &ca));
  CHECK_EQ(ca.flags, H_ACK);
  CHECK_EQ(ca.ack, 3001);
  /* exact: the entry goes, silently */
  h_clear(&t.h);
  send_seg(&t, 40005, 3001, 0, H_RST, 0, NULL, NULL, 0);
  CHECK_EQ(toe_tcp_syncache_count(ST(&t), NULL), 0);
  CHECK_EQ(C(&t)->syncache_resets, 1);
  CHECK_EQ(t.h.ntx, 0);
  h_fini(&t.h);
}

TEST(bad_ack_answered_with_rst_entry_kept)
{
  struct sc t;
  sc_init(&t, 16);
  REQUIRE(t.ls != NULL);
  struct h_tcp_opt o = peer_opts(10);
  send_syn(&t, 40006, 3000, &o);
  struct h_tcp sa;
  REQUIRE(last_to(&t, 40006, &sa));
  h_clear(&t.h);
  struct h_tcp_opt a;
  h_tcp_opt_none(&a);
  a.ts = true;
  a.tsval = 11;
  a.tsecr = sa.tsval;
  send_seg(&t, 40006, 3001, sa.seq + 1000, H_ACK, 512, &a, NULL, 0);
  struct h_tcp r;
  REQUIRE(last_to(&t, 40006, &r));
  CHECK_EQ(r.flags & H_RST, H_RST);
  CHECK_EQ(r.seq, sa.seq + 1000);          /* <SEQ=SEG.ACK><CTL=RST> */
  CHECK_EQ(count_to(&t, 40006, H_RST), 1); /* exactly one */
  CHECK_EQ(toe_tcp_syncache_count(ST(&t), NULL), 1);
  /* an ACK with the right number still completes */
  send_ack(&t, 40006, &sa, 3000, 12, NULL, 0);
  struct toe_sock *s = NULL;
  CHECK_EQ(toe_tcp_accept(ST(&t), t.ls, NULL, &s), 0);
  h_fini(&t.h);
}

TEST(out_of_window_or_paws_ack_gets_ack)
{
  struct sc t;
  sc_init(&t, 16);
  REQUIRE(t.ls != NULL);
  struct h_tcp_opt o = peer_opts(1000);
  send_syn(&t, 40007, 3000, &o);
  struct h_tcp sa;
  REQUIRE(last_to(&t, 40007, &sa));
  h_clear(&t.h);
  /* old TSval: PAWS */
  struct h_tcp_opt a;
  h_tcp_opt_none(&a);
  a.ts = true;
  a.tsval = 999;
  a.tsecr = sa.tsval;
  send_seg(&t, 40007, 3001, sa.seq + 1, H_ACK, 512, &a, NULL, 0);
  struct h_tcp r;
  REQUIRE(last_to(&t, 40007, &r));
  CHECK_EQ(r.flags, H_ACK);
  CHECK_EQ(r.ack, 3001);
  /* sequence far outside the window */
  h_clear(&t.h);
  a.tsval = 1001;
  send_seg(&t, 40007, 3001 + 200000, sa.seq + 1, H_ACK, 512, &a, NULL, 0);
  REQUIRE(last_to(&t, 40007, &r));
  CHECK_EQ(r.flags, H_ACK);
  CHECK_EQ(count_to(&t, 40007, H_RST), 0);
  CHECK_EQ(toe_tcp_syncache_count(ST(&t), NULL), 1);
  struct toe_sock *s = NULL;
  CHECK_EQ(toe_tcp_accept(ST(&t), t.ls, NULL, &s), -TOE_EAGAIN);
  h_fini(&t.h);
}

TEST(accept_queue_full_drops_ack_keeps_entry)
{
  struct sc t;
  sc_init(&t, 2);
  REQUIRE(t.ls != NULL);
  struct h_tcp_opt o = peer_opts(1);
  struct h_tcp sa[3];
  send_syn(&t, 41000, 100, &o);
  REQUIRE(last_to(&t, 41000, &sa[0]));
  send_syn(&t, 41001, 200, &o);
  REQUIRE(last_to(&t, 41001, &sa[1]));
  send_ack(&t, 41000, &sa[0], 100, 2, NULL, 0);
  send_syn(&t, 41002, 300, &o);
  REQUIRE(last_to(&t, 41002, &sa[2]));
  send_ack(&t, 41001, &sa[1], 200, 2, NULL, 0);
  /* the accept queue holds 2 = backlog: the third ACK is dropped, silently */
  h_clear(&t.h);
  send_ack(&t, 41002, &sa[2], 300, 2, NULL, 0);
  CHECK_EQ(t.h.ntx, 0);
  CHECK_EQ(C(&t)->listen_drops, 1);
  CHECK_EQ(toe_tcp_syncache_count(ST(&t), NULL), 1);
  /* and a new SYN is dropped while the accept queue is full */
  send_syn(&t, 41003, 400, &o);
  CHECK_EQ(t.h.ntx, 0);
  CHECK_EQ(C(&t)->listen_drops, 2);
  /* room again: the SYN-ACK retransmission prompts the peer's ACK, which now completes */
  struct toe_sock *s = NULL;
  REQUIRE(toe_tcp_accept(ST(&t), t.ls, NULL, &s) == 0);
  h_advance(&t.h, TOE_MSEC(1100));
  CHECK_EQ(count_to(&t, 41002, H_SYN | H_ACK), 1);
  send_ack(&t, 41002, &sa[2], 300, 3, NULL, 0);
  CHECK_EQ(toe_tcp_syncache_count(ST(&t), NULL), 0);
  CHECK_EQ(toe_tcp_accept(ST(&t), t.ls, NULL, &s), 0);
  CHECK_EQ(toe_tcp_accept(ST(&t), t.ls, NULL, &s), 0);
  CHECK_EQ(toe_tcp_accept(ST(&t), t.ls, NULL, &s), -TOE_EAGAIN);
  h_fini(&t.h);
}

TEST(stray_ack_to_listener_gets_one_rst)
{
  struct sc t;
  sc_init(&t, 16);
  REQUIRE(t.ls != NULL);
  struct h_tcp_opt a;
  h_tcp_opt_none(&a);
  send_seg(&t, 42000, 1234, 0xabcdef01u, H_ACK, 512, &a, NULL, 0);
  struct h_tcp r;
  REQUIRE(last_to(&t, 42000, &r));
  CHECK_EQ(r.flags & H_RST, H_RST);
  CHECK_EQ(r.seq, 0xabcdef01u);
  CHECK_EQ(count_to(&t, 42000, 0), 1);
  h_fini(&t.h);
}

TEST(listener_close_forgets_entries)
{
  struct sc t;
  sc_init(&t, 16);
  REQUIRE(t.ls != NULL);
  struct h_tcp_opt o = peer_opts(1);
  send_syn(&t, 43000, 1, &o);
  send_syn(&t, 43001, 1, &o);
  CHECK_EQ(toe_tcp_syncache_count(ST(&t), NULL), 2);
  toe_sock_close(ST(&t), t.ls);
  CHECK_EQ(toe_tcp_syncache_count(ST(&t), NULL), 0);
  /* no SYN-ACK retransmission afterwards */
  h_clear(&t.h);
  h_advance(&t.h, TOE_SEC(5));
  CHECK_EQ(count_to(&t, 43000, H_SYN), 0);
  CHECK_EQ(ST(&t)->tcp.inuse, 0);
  h_fini(&t.h);
}

TEST(icmp_error_quoting_synack_drops_entry)
{
  struct sc t;
  sc_init(&t, 16);
  REQUIRE(t.ls != NULL);
  struct h_tcp_opt o = peer_opts(1);
  send_syn(&t, 44000, 1, &o);
  int i = h_tcp_find(&t.h, -1);
  REQUIRE(i >= 0);
  const uint8_t *synack_ip = t.h.tx[i].bytes + 14;
  /* a wrong quoted sequence number is not believed (RFC 5927) */
  uint8_t msg[8 + 28];
  memset(msg, 0, sizeof(msg));
  msg[0] = 3; /* destination unreachable */
  msg[1] = 1; /* host unreachable */
  memcpy(msg + 8, synack_ip, 28);
  msg[8 + 20 + 7] ^= 1;
  uint16_t c = h_csum(msg, sizeof(msg), 0);
  msg[2] = (uint8_t)(c >> 8);
  msg[3] = (uint8_t)c;
  uint8_t frame[128];
  size_t n = h_build_ipv4(frame, H_PEER_IP, H_OUR_IP, 1, 9, 0, 64, msg, sizeof(msg));
  h_input(&t.h, frame, n);
  CHECK_EQ(toe_tcp_syncache_count(ST(&t), NULL), 1);
  /* the right one is */
  msg[8 + 20 + 7] ^= 1;
  msg[2] = msg[3] = 0;
  c = h_csum(msg, sizeof(msg), 0);
  msg[2] = (uint8_t)(c >> 8);
  msg[3] = (uint8_t)c;
  n = h_build_ipv4(frame, H_PEER_IP, H_OUR_IP, 1, 10, 0, 64, msg, sizeof(msg));
  h_input(&t.h, frame, n);
  CHECK_EQ(toe_tcp_syncache_count(ST(&t), NULL), 0);
  CHECK_EQ(C(&t)->syncache_icmp, 1);
  h_fini(&t.h);
}

TEST(syn_from_broadcast_source_or_with_fin_dropped)
{
  struct sc t;
  sc_init(&t, 16);
  REQUIRE(t.ls != NULL);
  struct h_tcp_opt o = peer_opts(1);
  send_seg(&t, 45000, 1, 0, H_SYN | H_FIN, 65535, &o, NULL, 0);
  CHECK_EQ(t.h.ntx, 0);
  static uint8_t frame[256];
  uint8_t opts[40];
  size_t ol = h_tcp_opts(opts, &o);
  size_t n = h_build_tcp(frame, 0xc61200ffu, 45001, H_OUR_IP, LPORT, 1, 0, H_SYN, 65535, opts, ol,
                         NULL, 0);
  h_input(&t.h, frame, n);
  CHECK_EQ(t.h.ntx, 0);
  CHECK_EQ(toe_tcp_syncache_count(ST(&t), NULL), 0);
  CHECK_EQ(C(&t)->rx_drop_syn_bad, 1); /* the broadcast source already stopped at IPv4 */
  h_fini(&t.h);
}

/* ---------------------------------------------------------------------------------------------
 * SYN cookies
 */

TEST(cookie_when_cache_full_restores_options)
{
  struct toe_config cfg;
  h_default_cfg(&cfg);
  cfg.tcp_syncache = 2;
  struct sc t;
  sc_init_cfg(&t, &cfg, 16);
  REQUIRE(t.ls != NULL);
  struct h_tcp_opt o = peer_opts(7000);
  o.wscale = 9;
  send_syn(&t, 46000, 1, &o);
  send_syn(&t, 46001, 1, &o);
  CHECK_EQ(toe_tcp_syncache_count(ST(&t), NULL), 2);
  send_syn(&t, 46002, 0x80000000u, &o);
  CHECK_EQ(toe_tcp_syncache_count(ST(&t), NULL), 2);
  CHECK_EQ(C(&t)->syncache_overflow, 1);
  CHECK_EQ(C(&t)->syncookies_sent, 1);
  struct h_tcp sa;
  REQUIRE(last_to(&t, 46002, &sa));
  CHECK_EQ(sa.flags, H_SYN | H_ACK);
  CHECK(sa.has_ws && sa.sack_perm && sa.has_ts && sa.has_mss);
  CHECK_EQ(sa.ack, 0x80000001u);
  CHECK_EQ(sa.tsval & 0x0f, 9);    /* the peer's shift rides in the TSval */
  CHECK_EQ(sa.tsval & 0x10, 0x10); /* SACK permitted */
  /* no retransmission of a cookie SYN-ACK: nothing is remembered */
  h_advance(&t.h, TOE_MSEC(1500));
  CHECK_EQ(count_to(&t, 46002, H_SYN | H_ACK), 1);
  send_ack(&t, 46002, &sa, 0x80000000u, 7001, "x", 1);
  CHECK_EQ(C(&t)->syncookies_recv, 1);
  struct toe_sock *s = NULL;
  REQUIRE(toe_tcp_accept(ST(&t), t.ls, NULL, &s) == 0);
  struct toe_tcp_info info;
  REQUIRE(toe_tcp_get_info(ST(&t), s, &info) == 0);
  CHECK_EQ(info.state, TOE_TCP_ESTABLISHED);
  CHECK_EQ(info.options, TOE_TCPI_OPT_TIMESTAMPS | TOE_TCPI_OPT_SACK | TOE_TCPI_OPT_WSCALE);
  CHECK_EQ(info.snd_wscale, 9);
  CHECK_EQ(info.rcv_wscale, sa.ws);
  CHECK_EQ(info.snd_mss, 1460);
  CHECK_EQ(info.snd_wnd, 512u << 9);
  char b;
  CHECK_EQ(toe_tcp_recv(ST(&t), s, &b, 1), 1);
  h_fini(&t.h);
}

TEST(cookie_without_timestamps_offers_no_options_and_rounds_mss)
{
  struct toe_config cfg;
  h_default_cfg(&cfg);
  cfg.tcp_syncookies = 2;
  struct sc t;
  sc_init_cfg(&t, &cfg, 16);
  REQUIRE(t.ls != NULL);
  struct h_tcp_opt o = peer_opts(1);
  o.ts = false;
  o.mss = 1420;
  send_syn(&t, 46100, 42, &o);
  CHECK_EQ(toe_tcp_syncache_count(ST(&t), NULL), 0);
  struct h_tcp sa;
  REQUIRE(last_to(&t, 46100, &sa));
  CHECK(sa.has_mss);
  CHECK(!sa.has_ws);
  CHECK(!sa.sack_perm);
  CHECK(!sa.has_ts);
  send_ack(&t, 46100, &sa, 42, 0, NULL, 0);
  struct toe_sock *s = NULL;
  REQUIRE(toe_tcp_accept(ST(&t), t.ls, NULL, &s) == 0);
  struct toe_tcp_info info;
  REQUIRE(toe_tcp_get_info(ST(&t), s, &info) == 0);
  CHECK_EQ(info.options, 0);
  CHECK_EQ(info.snd_mss, 1400); /* the largest table value not above 1420 */
  CHECK_EQ(info.snd_wnd, 512);
  h_fini(&t.h);
}

TEST(cookie_forgeries_rejected)
{
  struct toe_config cfg;
  h_default_cfg(&cfg);
  cfg.tcp_syncookies = 2;
  struct sc t;
  sc_init_cfg(&t, &cfg, 16);
  REQUIRE(t.ls != NULL);
  struct h_tcp_opt o = peer_opts(100);
  send_syn(&t, 46200, 9000, &o);
  struct h_tcp sa;
  REQUIRE(last_to(&t, 46200, &sa));
  h_clear(&t.h);
  /* a wrong acknowledgment number */
  struct h_tcp tampered = sa;
  tampered.seq ^= 0x00000100u;
  send_ack(&t, 46200, &tampered, 9000, 101, NULL, 0);
  /* options claimed that were not agreed: another window shift in the echoed TSval */
  tampered = sa;
  tampered.tsval = (sa.tsval & ~0x0fu) | 3u;
  send_ack(&t, 46200, &tampered, 9000, 101, NULL, 0);
  /* a different peer ISN */
  send_ack(&t, 46200, &sa, 9001, 101, NULL, 0);
  /* from another port */
  struct h_tcp_opt a;
  h_tcp_opt_none(&a);
  a.ts = true;
  a.tsval = 101;
  a.tsecr = sa.tsval;
  send_seg(&t, 46201, 9001, sa.seq + 1, H_ACK, 512, &a, NULL, 0);
  CHECK_EQ(C(&t)->syncookies_failed, 4);
  CHECK_EQ(C(&t)->syncookies_recv, 0);
  /* dropped silently while cookies are out (Linux does the same): it could be a later segment
   * of a cookie connection whose third segment was lost */
  CHECK_EQ(h_tcp_count(&t.h), 0);
  struct toe_sock *s = NULL;
  CHECK_EQ(toe_tcp_accept(ST(&t), t.ls, NULL, &s), -TOE_EAGAIN);
  /* too late: the cookie expired (more than two 64 s periods); no cookie is outstanding any
   * more, so the ACK is just a stray one: RST (RFC 9293 3.10.7.2) */
  h_advance(&t.h, TOE_SEC(200));
  h_learn_peer(&t.h); /* the neighbour entry aged out meanwhile */
  send_ack(&t, 46200, &sa, 9000, 102, NULL, 0);
  CHECK_EQ(C(&t)->syncookies_recv, 0);
  CHECK_EQ(toe_tcp_accept(ST(&t), t.ls, NULL, &s), -TOE_EAGAIN);
  struct h_tcp r;
  REQUIRE(last_to(&t, 46200, &r));
  CHECK(r.flags & H_RST);
  h_fini(&t.h);
}

TEST(cookie_connection_survives_lost_third_segment)
{
  struct toe_config cfg;
  h_default_cfg(&cfg);
  cfg.tcp_syncookies = 2;
  struct sc t;
  sc_init_cfg(&t, &cfg, 16);
  REQUIRE(t.ls != NULL);
  struct h_tcp_opt o = peer_opts(100);
  send_syn(&t, 46400, 9000, &o);
  struct h_tcp sa;
  REQUIRE(last_to(&t, 46400, &sa));
  h_clear(&t.h);
  /* the ACK is lost; the second data segment arrives first: dropped without a RST */
  static uint8_t data[2000];
  for (size_t i = 0; i < sizeof(data); i++)
    data[i] = (uint8_t)i;
  struct h_tcp_opt a;
  h_tcp_opt_none(&a);
  a.ts = true;
  a.tsval = 102;
  a.tsecr = sa.tsval;
  send_seg(&t, 46400, 9001 + 1000, sa.seq + 1, H_ACK, 512, &a, data + 1000, 1000);
  CHECK_EQ(t.h.ntx, 0);
  struct toe_sock *s = NULL;
  CHECK_EQ(toe_tcp_accept(ST(&t), t.ls, NULL, &s), -TOE_EAGAIN);
  /* the first one completes the handshake; the second, repeated, fills in */
  a.tsval = 101;
  send_seg(&t, 46400, 9001, sa.seq + 1, H_ACK, 512, &a, data, 1000);
  REQUIRE(toe_tcp_accept(ST(&t), t.ls, NULL, &s) == 0);
  a.tsval = 103;
  send_seg(&t, 46400, 9001 + 1000, sa.seq + 1, H_ACK, 512, &a, data + 1000, 1000);
  static uint8_t got[2000];
  int n = 0, r;
  while ((r = toe_tcp_recv(ST(&t), s, got + n, sizeof(got) - (size_t)n)) > 0)
    n += r;
  CHECK_EQ(n, 2000);
  CHECK_MEM(got, data, 2000);
  CHECK_EQ(count_to(&t, 46400, H_RST), 0);
  h_fini(&t.h);
}

TEST(cookie_valid_within_its_lifetime)
{
  struct toe_config cfg;
  h_default_cfg(&cfg);
  cfg.tcp_syncookies = 2;
  struct sc t;
  sc_init_cfg(&t, &cfg, 16);
  REQUIRE(t.ls != NULL);
  struct h_tcp_opt o = peer_opts(100);
  send_syn(&t, 46300, 9000, &o);
  struct h_tcp sa;
  REQUIRE(last_to(&t, 46300, &sa));
  h_advance(&t.h, TOE_SEC(63));
  send_ack(&t, 46300, &sa, 9000, 101, NULL, 0);
  CHECK_EQ(C(&t)->syncookies_recv, 1);
  h_fini(&t.h);
}

TEST(no_cookies_when_disabled_syn_dropped)
{
  struct toe_config cfg;
  h_default_cfg(&cfg);
  cfg.tcp_syncache = 1;
  cfg.tcp_syncookies = 0;
  struct sc t;
  sc_init_cfg(&t, &cfg, 16);
  REQUIRE(t.ls != NULL);
  struct h_tcp_opt o = peer_opts(1);
  send_syn(&t, 47000, 1, &o);
  send_syn(&t, 47001, 1, &o);
  CHECK_EQ(count_to(&t, 47000, H_SYN | H_ACK), 1);
  CHECK_EQ(count_to(&t, 47001, 0), 0);
  CHECK_EQ(C(&t)->syncache_overflow, 1);
  CHECK_EQ(C(&t)->syncookies_sent, 0);
  h_fini(&t.h);
}

TEST(per_listener_limit_is_backlog)
{
  struct sc t;
  sc_init(&t, 3);
  REQUIRE(t.ls != NULL);
  struct h_tcp_opt o = peer_opts(1);
  for (int i = 0; i < 5; i++)
    send_syn(&t, (uint16_t)(48000 + i), 1, &o);
  CHECK_EQ(toe_tcp_syncache_count(ST(&t), NULL), 3);
  CHECK_EQ(C(&t)->syncookies_sent, 2); /* the rest got cookies */
  CHECK_EQ(count_to(&t, 48004, H_SYN | H_ACK), 1);
  h_fini(&t.h);
}

TEST(flood_of_syns_is_bounded_and_cleans_up)
{
  struct toe_config cfg;
  h_default_cfg(&cfg);
  cfg.tcp_syncache = 64;
  cfg.tcp_syn_retries = 1;
  struct sc t;
  sc_init_cfg(&t, &cfg, 1024);
  REQUIRE(t.ls != NULL);
  struct h_tcp_opt o = peer_opts(1);
  for (int i = 0; i < 1000; i++) {
    send_syn(&t, (uint16_t)(10000 + i), (uint32_t)i * 7919u, &o);
    if (t.h.ntx > 3000)
      h_clear(&t.h);
  }
  CHECK_EQ(toe_tcp_syncache_count(ST(&t), NULL), 64);
  CHECK_EQ(C(&t)->syncookies_sent, 1000 - 64);
  h_clear(&t.h);
  h_advance(&t.h, TOE_SEC(5));
  CHECK_EQ(toe_tcp_syncache_count(ST(&t), NULL), 0);
  CHECK_EQ(C(&t)->syncache_timeouts, 64);
  CHECK_EQ(toe_pbuf_pool_free_count(ST(&t)), ST(&t)->cfg.pbuf_count);
  h_fini(&t.h);
}

TEST_MAIN()
