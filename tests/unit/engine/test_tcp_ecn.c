/*
 * ECN on TCP with hand-built segments and the virtual clock: RFC 3168 negotiation in both
 * directions and under every cfg.tcp_ecn mode (6.1.1), ECT(0) on new data only (6.1.4-6.1.6: not
 * on pure ACKs, retransmissions, window probes or SYNs), the receiver's ECE until CWR (6.1.3),
 * the sender's one reduction per window and its CWR (6.1.2), SYN cookies keeping the ECN bit,
 * and Accurate ECN (RFC 9768): the handshake encodings (tables 2 and 3), the ACE counter and the
 * fallback on a zeroed ACE.
 */
#include "engine/stack.h"
#include "engine/tcp.h"
#include "engine/tcp_ecn.h"
#include "harness.h"
#include "tcp_harness.h"
#include "testlib.h"

#include <stdlib.h>
#include <string.h>

/* REQUIRE for helpers that return a value: a broken setup ends the run. */
#define MUST(cond)                                                                                 \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      CHECK(cond);                                                                                 \
      abort();                                                                                     \
    }                                                                                              \
  } while (0)

#define PPORT 40000
#define LPORT 8080
#define PEER_ISS 5000u
#define ECN_ECE 0x40u
#define ECN_CWR 0x80u
#define ECN_AE 0x100u

static const struct toe_counters_tcp *ctr(const struct harness *h)
{
  return &toe_stack_counters(h->st)->tcp;
}

static void put16be(uint8_t *p, uint16_t v)
{
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}

/* A segment from the peer with 9 flag bits (AE = ECN_AE) and the IP ECN field `ipecn`. */
static void send_seg(struct harness *h, uint16_t sport, uint16_t dport, uint32_t seq, uint32_t ack,
                     uint16_t flags, uint16_t win, const struct h_tcp_opt *o, const void *data,
                     size_t len, uint8_t ipecn)
{
  static uint8_t f[H_MAX_FRAME];
  uint8_t ob[40];
  size_t ol = o ? h_tcp_opts(ob, o) : 0;
  size_t n = h_build_tcp(f, H_PEER_IP, sport, H_OUR_IP, dport, seq, ack, (uint8_t)flags, win, ob,
                         ol, data, len);
  uint8_t *ip = f + 14, *th = f + 34;
  ip[1] = (uint8_t)(ip[1] | (ipecn & 3u));
  put16be(ip + 10, 0);
  put16be(ip + 10, h_csum(ip, 20, 0));
  if (flags & ECN_AE)
    th[12] |= 1u;
  uint16_t tlen = (uint16_t)(n - 34);
  put16be(th + 16, 0);
  put16be(th + 16, h_csum(th, tlen, h_pseudo_sum(H_PEER_IP, H_OUR_IP, 6, tlen)));
  h_input(h, f, n);
}

/* The IP ECN field and the AE bit of captured frame `i` (h_tcp_find index). */
static uint8_t tx_ipecn(const struct harness *h, int i)
{
  return h->tx[i].bytes[15] & 3u;
}
static bool tx_ae(const struct harness *h, int i)
{
  const uint8_t *ip = h->tx[i].bytes + 14;
  return (ip[(ip[0] & 0xfu) * 4u + 12u] & 1u) != 0;
}
/* ACE (RFC 9768) of captured frame i */
static unsigned tx_ace(const struct harness *h, int i)
{
  struct h_tcp t;
  h_tcp_parse(h->tx[i].bytes, h->tx[i].len, &t);
  return (tx_ae(h, i) ? 4u : 0u) | ((t.flags & ECN_CWR) ? 2u : 0u) |
         ((t.flags & ECN_ECE) ? 1u : 0u);
}

/* A peer talking to our listener on LPORT, without TCP options unless asked. */
struct peer {
  struct harness *h;
  struct toe_sock *ls, *s;
  uint32_t snd_nxt, rcv_nxt, iss; /* iss: ours */
};

static void setup(struct harness *h, uint8_t ecn_mode, uint8_t cookies)
{
  struct toe_config cfg;
  h_default_cfg(&cfg);
  cfg.tcp_ecn = ecn_mode;
  cfg.tcp_syncookies = cookies;
  h_init_cfg(h, &cfg);
  h_learn_peer(h);
}

/* Listener plus the peer's SYN with `synflags` (ECE|CWR, AE...) sent as IP ECN `ipecn`; returns
 * the index of our SYN-ACK. */
static int peer_syn(struct peer *p, struct harness *h, uint16_t synflags, uint8_t ipecn,
                    const struct h_tcp_opt *o)
{
  memset(p, 0, sizeof(*p));
  p->h = h;
  MUST(toe_tcp_open(h->st, p, &p->ls) == 0);
  struct toe_sockaddr l = {.family = TOE_AF_INET, .port = LPORT, .addr = 0};
  MUST(toe_sock_bind(h->st, p->ls, &l) == 0);
  MUST(toe_tcp_listen(h->st, p->ls, 16) == 0);
  send_seg(h, PPORT, LPORT, PEER_ISS, 0, (uint16_t)(H_SYN | synflags), 65535, o, NULL, 0, ipecn);
  int i = h_tcp_find(h, -1);
  MUST(i >= 0);
  struct h_tcp t;
  h_tcp_parse(h->tx[i].bytes, h->tx[i].len, &t);
  MUST((t.flags & (H_SYN | H_ACK)) == (H_SYN | H_ACK));
  p->iss = t.seq;
  p->snd_nxt = PEER_ISS + 1;
  p->rcv_nxt = t.seq + 1;
  return i;
}

/* The peer's handshake ACK (flags beyond ACK: the AccECN ACE feedback) and accept. */
static void peer_ack(struct peer *p, uint16_t extra, const struct h_tcp_opt *o)
{
  send_seg(p->h, PPORT, LPORT, p->snd_nxt, p->rcv_nxt, (uint16_t)(H_ACK | extra), 65535, o, NULL, 0,
           0);
  REQUIRE(toe_tcp_accept(p->h->st, p->ls, p, &p->s) == 0);
}

static void peer_data(struct peer *p, uint16_t flags, size_t len, uint8_t ipecn)
{
  static uint8_t buf[1460];
  memset(buf, 'd', sizeof(buf));
  send_seg(p->h, PPORT, LPORT, p->snd_nxt, p->rcv_nxt, (uint16_t)(H_ACK | flags), 65535, NULL, buf,
           len, ipecn);
  p->snd_nxt += (uint32_t)len;
}

static void peer_ackto(struct peer *p, uint32_t ack, uint16_t flags)
{
  send_seg(p->h, PPORT, LPORT, p->snd_nxt, ack, (uint16_t)(H_ACK | flags), 65535, NULL, NULL, 0, 0);
}

static struct toe_tcb *tcb(struct peer *p)
{
  return toe_tcp_sock(p->h->st, p->s);
}

/* ---- RFC 3168 negotiation ---- */

TEST(passive_default_accepts_ecn_setup_syn)
{
  struct harness h;
  setup(&h, TOE_TCP_ECN_PASSIVE, 1);
  struct peer p;
  int i = peer_syn(&p, &h, ECN_ECE | ECN_CWR, 0, NULL);
  struct h_tcp t;
  h_tcp_parse(h.tx[i].bytes, h.tx[i].len, &t);
  /* 6.1.1: the SYN-ACK agrees with ECE alone and is not ECT itself */
  CHECK_EQ(t.flags & (ECN_ECE | ECN_CWR), ECN_ECE);
  CHECK_EQ(tx_ipecn(&h, i), 0);
  CHECK(!tx_ae(&h, i));
  peer_ack(&p, 0, NULL);
  CHECK_EQ(ctr(&h)->ecn_negotiated, 1);
  CHECK(tcb(&p)->ecn_flags & TOE_ECNF_OK);
  /* new data is ECT(0); no ECE/CWR on it */
  h_clear(&h);
  REQUIRE(toe_tcp_send(h.st, p.s, "hello", 5, 0) == 5);
  i = h_tcp_find(&h, -1);
  REQUIRE(i >= 0);
  h_tcp_parse(h.tx[i].bytes, h.tx[i].len, &t);
  CHECK_EQ(t.dlen, 5);
  CHECK_EQ(tx_ipecn(&h, i), TOE_ECN_ECT0);
  CHECK_EQ(t.flags & (ECN_ECE | ECN_CWR), 0);
  CHECK_EQ(ctr(&h)->ecn_ect_sent, 1);
  p.rcv_nxt += 5;
  /* a pure ACK is not (6.1.4) */
  h_clear(&h);
  peer_data(&p, 0, 100, TOE_ECN_ECT0);
  peer_data(&p, 0, 100, TOE_ECN_ECT0);
  h_advance(&h, TOE_MSEC(200));
  i = h_tcp_find(&h, -1);
  REQUIRE(i >= 0);
  h_tcp_parse(h.tx[i].bytes, h.tx[i].len, &t);
  CHECK_EQ(t.dlen, 0);
  CHECK_EQ(t.ack, p.snd_nxt);
  CHECK_EQ(tx_ipecn(&h, i), 0);
  h_fini(&h);
}

TEST(plain_syn_and_off_mode_get_no_ecn)
{
  struct harness h;
  setup(&h, TOE_TCP_ECN_PASSIVE, 1);
  struct peer p;
  int i = peer_syn(&p, &h, 0, 0, NULL);
  struct h_tcp t;
  h_tcp_parse(h.tx[i].bytes, h.tx[i].len, &t);
  CHECK_EQ(t.flags & (ECN_ECE | ECN_CWR), 0);
  peer_ack(&p, 0, NULL);
  h_clear(&h);
  REQUIRE(toe_tcp_send(h.st, p.s, "x", 1, 0) == 1);
  CHECK_EQ(tx_ipecn(&h, h_tcp_find(&h, -1)), 0);
  CHECK_EQ(ctr(&h)->ecn_negotiated, 0);
  h_fini(&h);

  setup(&h, TOE_TCP_ECN_OFF, 1);
  i = peer_syn(&p, &h, ECN_ECE | ECN_CWR, 0, NULL);
  h_tcp_parse(h.tx[i].bytes, h.tx[i].len, &t);
  CHECK_EQ(t.flags & (ECN_ECE | ECN_CWR), 0);
  peer_ack(&p, 0, NULL);
  h_clear(&h);
  REQUIRE(toe_tcp_send(h.st, p.s, "x", 1, 0) == 1);
  CHECK_EQ(tx_ipecn(&h, h_tcp_find(&h, -1)), 0);
  CHECK_EQ(ctr(&h)->ecn_negotiated, 0);
  h_fini(&h);
}

/* Active open with cfg `mode`; the peer's SYN-ACK carries `synack_flags`. Returns our SYN. */
static void active_open(struct harness *h, struct h_conn *c, uint8_t mode, uint16_t synack_flags,
                        uint8_t synack_ipecn, struct h_tcp *syn, int *syn_idx)
{
  setup(h, mode, 1);
  h_conn_init(c, h, PPORT);
  struct toe_sock *s = NULL;
  REQUIRE(toe_tcp_open(h->st, c, &s) == 0);
  struct toe_sockaddr r = {.family = TOE_AF_INET, .port = PPORT, .addr = H_PEER_IP};
  int rc = toe_sock_connect(h->st, s, &r);
  REQUIRE(rc == 0 || rc == -TOE_EINPROGRESS);
  c->s = s;
  int i = h_tcp_find(h, -1);
  REQUIRE(i >= 0);
  *syn_idx = i;
  h_tcp_parse(h->tx[i].bytes, h->tx[i].len, syn);
  c->lport = syn->sport;
  c->iss = syn->seq;
  c->rcv_nxt = syn->seq + 1;
  c->snd_nxt = c->irs;
  c->ts = false;
  c->sack = false;
  c->syn_opt.wscale = -1;
  struct h_tcp_opt o;
  h_tcp_opt_none(&o);
  o.mss = 1460;
  send_seg(h, PPORT, c->lport, c->snd_nxt, c->rcv_nxt, (uint16_t)(H_SYN | H_ACK | synack_flags),
           65535, &o, NULL, 0, synack_ipecn);
  c->snd_nxt++;
}

TEST(active_modes_offer_as_configured)
{
  struct harness h;
  struct h_conn c;
  struct h_tcp syn;
  int i;
  /* the default (tcp_ecn=2 like Linux) does not ask */
  active_open(&h, &c, TOE_TCP_ECN_PASSIVE, ECN_ECE, 0, &syn, &i);
  CHECK_EQ(syn.flags, H_SYN);
  CHECK(!tx_ae(&h, i));
  CHECK_EQ(ctr(&h)->ecn_negotiated, 0); /* an unasked ECE in the SYN-ACK agrees to nothing */
  h_fini(&h);

  /* on: ECE|CWR in the SYN, not ECT; a SYN-ACK with ECE agrees */
  active_open(&h, &c, TOE_TCP_ECN_ON, ECN_ECE, 0, &syn, &i);
  CHECK_EQ(syn.flags, H_SYN | ECN_ECE | ECN_CWR);
  CHECK_EQ(tx_ipecn(&h, i), 0);
  CHECK(!tx_ae(&h, i));
  CHECK_EQ(ctr(&h)->ecn_negotiated, 1);
  h_clear(&h);
  REQUIRE(toe_tcp_send(h.st, c.s, "abc", 3, 0) == 3);
  CHECK_EQ(tx_ipecn(&h, h_tcp_find(&h, -1)), TOE_ECN_ECT0);
  h_fini(&h);

  /* on, but the SYN-ACK has ECE|CWR (a reflector, 6.1.1) or nothing: no ECN */
  active_open(&h, &c, TOE_TCP_ECN_ON, ECN_ECE | ECN_CWR, 0, &syn, &i);
  CHECK_EQ(ctr(&h)->ecn_negotiated, 0);
  h_clear(&h);
  REQUIRE(toe_tcp_send(h.st, c.s, "abc", 3, 0) == 3);
  CHECK_EQ(tx_ipecn(&h, h_tcp_find(&h, -1)), 0);
  h_fini(&h);
  active_open(&h, &c, TOE_TCP_ECN_ON, 0, 0, &syn, &i);
  CHECK_EQ(ctr(&h)->ecn_negotiated, 0);
  h_fini(&h);
}

TEST(retransmitted_syn_drops_the_request)
{
  struct harness h;
  setup(&h, TOE_TCP_ECN_ON, 1);
  struct h_conn c;
  h_conn_init(&c, &h, PPORT);
  struct toe_sock *s = NULL;
  REQUIRE(toe_tcp_open(h.st, &c, &s) == 0);
  struct toe_sockaddr r = {.family = TOE_AF_INET, .port = PPORT, .addr = H_PEER_IP};
  int rc = toe_sock_connect(h.st, s, &r);
  REQUIRE(rc == 0 || rc == -TOE_EINPROGRESS);
  struct h_tcp t;
  REQUIRE(h_tcp_get(&h, -1, &t));
  CHECK_EQ(t.flags & (ECN_ECE | ECN_CWR), ECN_ECE | ECN_CWR);
  h_clear(&h);
  h_advance(&h, TOE_MSEC(1100));
  REQUIRE(h_tcp_get(&h, -1, &t));
  CHECK_EQ(t.flags, H_SYN); /* RFC 3168 6.1.1.1: a middlebox may drop ECN-setup SYNs */
  toe_sock_close(h.st, s);
  h_fini(&h);
}

/* ---- the receiver: ECE until CWR (6.1.3) ---- */

TEST(ce_sets_ece_until_cwr)
{
  struct harness h;
  setup(&h, TOE_TCP_ECN_PASSIVE, 1);
  struct peer p;
  peer_syn(&p, &h, ECN_ECE | ECN_CWR, 0, NULL);
  peer_ack(&p, 0, NULL);
  h_clear(&h);
  peer_data(&p, 0, 100, TOE_ECN_ECT0);
  h_advance(&h, TOE_MSEC(200));
  struct h_tcp t;
  REQUIRE(h_tcp_get(&h, -1, &t));
  CHECK_EQ(t.flags & ECN_ECE, 0);

  /* a CE mark: acknowledged at once (no delayed-ACK wait) with ECE */
  h_clear(&h);
  peer_data(&p, 0, 100, TOE_ECN_CE);
  REQUIRE(h_tcp_get(&h, -1, &t));
  CHECK_EQ(t.ack, p.snd_nxt);
  CHECK(t.flags & ECN_ECE);
  CHECK_EQ(ctr(&h)->ecn_ce_rcvd, 1);
  /* ECE stays on the ACKs of unmarked data, and on our data */
  h_clear(&h);
  peer_data(&p, 0, 100, TOE_ECN_ECT0);
  peer_data(&p, 0, 100, TOE_ECN_ECT0);
  h_advance(&h, TOE_MSEC(200));
  REQUIRE(h_tcp_get(&h, -1, &t));
  CHECK(t.flags & ECN_ECE);
  h_clear(&h);
  REQUIRE(toe_tcp_send(h.st, p.s, "r", 1, 0) == 1);
  REQUIRE(h_tcp_get(&h, -1, &t));
  CHECK_EQ(t.dlen, 1);
  CHECK(t.flags & ECN_ECE);
  /* until the sender's CWR */
  h_clear(&h);
  peer_data(&p, ECN_CWR, 100, TOE_ECN_ECT0);
  peer_data(&p, 0, 100, TOE_ECN_ECT0);
  h_advance(&h, TOE_MSEC(200));
  REQUIRE(h_tcp_get(&h, -1, &t));
  CHECK_EQ(t.flags & ECN_ECE, 0);
  CHECK_EQ(ctr(&h)->ecn_cwr_rcvd, 1);
  /* CE and CWR on one segment: CWR ends the old echo, the mark starts a new one */
  h_clear(&h);
  peer_data(&p, ECN_CWR, 100, TOE_ECN_CE);
  REQUIRE(h_tcp_get(&h, -1, &t));
  CHECK(t.flags & ECN_ECE);
  CHECK_EQ(ctr(&h)->ecn_ce_rcvd, 2);
  h_fini(&h);
}

/* ---- the sender: one reduction per window, CWR, no ECT on retransmissions (6.1.2, 6.1.5) ---- */

TEST(ece_reduces_once_per_window_and_sends_cwr)
{
  struct harness h;
  setup(&h, TOE_TCP_ECN_PASSIVE, 1);
  struct peer p;
  struct h_tcp_opt o;
  h_tcp_opt_none(&o);
  o.mss = 1000;
  peer_syn(&p, &h, ECN_ECE | ECN_CWR, 0, &o);
  peer_ack(&p, 0, NULL);
  struct toe_tcb *tp = tcb(&p);
  static uint8_t big[20000];
  memset(big, 'b', sizeof(big));
  h_clear(&h);
  REQUIRE(toe_tcp_send(h.st, p.s, big, 8000, 0) == 8000);
  CHECK_EQ(h_tcp_count(&h), 8);
  for (int k = 0; k < h_tcp_count(&h); k++)
    CHECK_EQ(tx_ipecn(&h, h_tcp_find(&h, k)), TOE_ECN_ECT0);
  uint32_t cwnd0 = tp->cwnd;
  uint32_t base = p.rcv_nxt;
  /* the first ACK with ECE: one reduction through the congestion control (CUBIC: 0.7) */
  peer_ackto(&p, base + 1000, ECN_ECE);
  CHECK_EQ(ctr(&h)->ecn_ece_rcvd, 1);
  CHECK_EQ(ctr(&h)->ecn_cwnd_reduced, 1);
  uint32_t cwnd1 = tp->cwnd;
  CHECK(cwnd1 < cwnd0);
  CHECK(cwnd1 <= cwnd0 * 8u / 10u);
  CHECK_EQ(tp->ssthresh, cwnd1);
  CHECK_EQ(tp->rec_state, TOE_REC_OPEN); /* not a loss episode */
  /* more ECE for data sent before the reduction: ignored */
  peer_ackto(&p, base + 2000, ECN_ECE);
  peer_ackto(&p, base + 3000, ECN_ECE);
  CHECK_EQ(ctr(&h)->ecn_ece_rcvd, 3);
  CHECK_EQ(ctr(&h)->ecn_cwnd_reduced, 1);
  CHECK(tp->cwnd <= cwnd1 + 2000u); /* grown by the ACKs at most, not cut again */
  /* the next new data segment carries CWR, the one after it not */
  h_clear(&h);
  REQUIRE(toe_tcp_send(h.st, p.s, big, 3000, 0) == 3000);
  int n = h_tcp_count(&h);
  REQUIRE(n >= 2);
  struct h_tcp t;
  REQUIRE(h_tcp_get(&h, 0, &t));
  CHECK(t.flags & ECN_CWR);
  CHECK_EQ(tx_ipecn(&h, h_tcp_find(&h, 0)), TOE_ECN_ECT0);
  REQUIRE(h_tcp_get(&h, 1, &t));
  CHECK_EQ(t.flags & ECN_CWR, 0);
  CHECK_EQ(ctr(&h)->ecn_cwr_sent, 1);
  /* data sent after the reduction acknowledged with ECE: a new reduction */
  uint32_t end = tp->snd_max;
  peer_ackto(&p, end, ECN_ECE);
  CHECK_EQ(ctr(&h)->ecn_cwnd_reduced, 2);

  /* a retransmission is not ECT (6.1.5) */
  h_clear(&h);
  REQUIRE(toe_tcp_send(h.st, p.s, big, 1000, 0) == 1000);
  REQUIRE(h_tcp_count(&h) == 1);
  CHECK_EQ(tx_ipecn(&h, h_tcp_find(&h, 0)), TOE_ECN_ECT0);
  h_clear(&h);
  h_advance(&h, TOE_SEC(2));
  REQUIRE(h_tcp_count(&h) >= 1);
  REQUIRE(h_tcp_get(&h, 0, &t));
  CHECK_EQ(t.seq, end);
  CHECK_EQ(t.dlen, 1000);
  CHECK_EQ(tx_ipecn(&h, h_tcp_find(&h, 0)), 0);
  h_fini(&h);
}

TEST(window_probe_is_not_ect)
{
  struct harness h;
  setup(&h, TOE_TCP_ECN_PASSIVE, 1);
  struct peer p;
  peer_syn(&p, &h, ECN_ECE | ECN_CWR, 0, NULL);
  peer_ack(&p, 0, NULL);
  /* the peer closes its window */
  send_seg(&h, PPORT, LPORT, p.snd_nxt, p.rcv_nxt, H_ACK, 0, NULL, NULL, 0, 0);
  h_clear(&h);
  REQUIRE(toe_tcp_send(h.st, p.s, "probe me", 8, 0) == 8);
  CHECK_EQ(h_tcp_count(&h), 0);
  h_advance(&h, TOE_SEC(3));
  REQUIRE(h_tcp_count(&h) >= 1);
  struct h_tcp t;
  REQUIRE(h_tcp_get(&h, 0, &t));
  CHECK_EQ(t.dlen, 1); /* RFC 9293 3.8.6.1: one octet */
  CHECK_EQ(tx_ipecn(&h, h_tcp_find(&h, 0)), 0);
  h_fini(&h);
}

/* ---- SYN cookies keep the ECN bit ---- */

TEST(syncookie_keeps_ecn)
{
  struct harness h;
  setup(&h, TOE_TCP_ECN_PASSIVE, 2);
  struct peer p;
  struct h_tcp_opt o;
  h_tcp_opt_none(&o);
  o.mss = 1460;
  o.ts = true;
  o.tsval = 100;
  int i = peer_syn(&p, &h, ECN_ECE | ECN_CWR, 0, &o);
  struct h_tcp t;
  h_tcp_parse(h.tx[i].bytes, h.tx[i].len, &t);
  CHECK_EQ(ctr(&h)->syncookies_sent, 1);
  CHECK_EQ(t.flags & (ECN_ECE | ECN_CWR), ECN_ECE);
  REQUIRE(t.has_ts);
  o.mss = 0;
  o.tsval = 101;
  o.tsecr = t.tsval;
  peer_ack(&p, 0, &o);
  CHECK_EQ(ctr(&h)->syncookies_recv, 1);
  CHECK_EQ(ctr(&h)->ecn_negotiated, 1);
  CHECK(tcb(&p)->ecn_flags & TOE_ECNF_OK);
  h_fini(&h);

  /* without timestamps the cookie has nowhere to keep it: the SYN-ACK does not agree */
  setup(&h, TOE_TCP_ECN_PASSIVE, 2);
  i = peer_syn(&p, &h, ECN_ECE | ECN_CWR, 0, NULL);
  h_tcp_parse(h.tx[i].bytes, h.tx[i].len, &t);
  CHECK_EQ(t.flags & (ECN_ECE | ECN_CWR), 0);
  peer_ack(&p, 0, NULL);
  CHECK_EQ(ctr(&h)->ecn_negotiated, 0);
  h_fini(&h);
}

/* ---- Accurate ECN (RFC 9768) ---- */

TEST(accecn_passive_handshake_and_ace)
{
  struct harness h;
  /* the SYN-ACK feeds back the SYN's IP ECN field (table 2), for every codepoint */
  static const unsigned want[4] = {2u, 3u, 4u, 6u}; /* Not-ECT, ECT(1), ECT(0), CE */
  for (uint8_t cp = 0; cp < 4; cp++) {
    setup(&h, TOE_TCP_ECN_ACCECN, 1);
    struct peer p;
    int i = peer_syn(&p, &h, ECN_AE | ECN_ECE | ECN_CWR, cp, NULL);
    CHECK_EQ(tx_ace(&h, i), want[cp]);
    CHECK_EQ(tx_ipecn(&h, i), 0);
    h_fini(&h);
  }
  /* a server in the default mode answers an AccECN SYN as RFC 3168 (3.1.2) */
  setup(&h, TOE_TCP_ECN_PASSIVE, 1);
  struct peer p;
  int i = peer_syn(&p, &h, ECN_AE | ECN_ECE | ECN_CWR, 0, NULL);
  CHECK_EQ(tx_ace(&h, i), 1u);
  h_fini(&h);

  setup(&h, TOE_TCP_ECN_ACCECN, 1);
  peer_syn(&p, &h, ECN_AE | ECN_ECE | ECN_CWR, 0, NULL);
  /* the ACK feeds back our Not-ECT SYN-ACK: 0b010 = CWR (table 3); not a counter change */
  peer_ack(&p, ECN_CWR, NULL);
  CHECK_EQ(ctr(&h)->ecn_accecn_negotiated, 1);
  CHECK_EQ(ctr(&h)->ecn_cwnd_reduced, 0);
  struct toe_tcb *tp = tcb(&p);
  CHECK(tp->ecn_flags & TOE_ECNF_ACC);
  /* our segments carry ACE = r.cep mod 8, from 5 (0b101 = AE|ECE) */
  h_clear(&h);
  REQUIRE(toe_tcp_send(h.st, p.s, "data", 4, 0) == 4);
  i = h_tcp_find(&h, -1);
  CHECK_EQ(tx_ace(&h, i), 5u);
  CHECK_EQ(tx_ipecn(&h, i), TOE_ECN_ECT0);
  /* two CE-marked segments: each acknowledged at once, the counter goes 6, 7 */
  h_clear(&h);
  peer_data(&p, ECN_AE | ECN_ECE, 100, TOE_ECN_CE); /* ACE 5: nothing new for us */
  CHECK_EQ(h_tcp_count(&h), 1);
  CHECK_EQ(tx_ace(&h, h_tcp_find(&h, -1)), 6u);
  peer_data(&p, ECN_AE | ECN_ECE, 100, TOE_ECN_CE);
  CHECK_EQ(tx_ace(&h, h_tcp_find(&h, -1)), 7u);
  CHECK_EQ(ctr(&h)->ecn_ce_rcvd, 2);
  CHECK_EQ(ctr(&h)->ecn_cwnd_reduced, 0);
  /* the peer reports one CE mark of ours (ACE 5 -> 6): one reduction, no CWR flag semantics */
  uint32_t cwnd0 = tp->cwnd;
  peer_ackto(&p, tp->snd_max, ECN_AE | ECN_CWR);
  CHECK_EQ(ctr(&h)->ecn_ece_rcvd, 1);
  CHECK_EQ(ctr(&h)->ecn_cwnd_reduced, 1);
  CHECK(tp->cwnd < cwnd0);
  CHECK_EQ(tp->ecn_s_cep, 6u);
  /* the same ACE again: no news */
  peer_ackto(&p, tp->snd_max, ECN_AE | ECN_CWR);
  CHECK_EQ(ctr(&h)->ecn_ece_rcvd, 1);
  /* the counter wraps: 6 -> 1 is three more marks */
  peer_ackto(&p, tp->snd_max, ECN_ECE);
  CHECK_EQ(ctr(&h)->ecn_ece_rcvd, 4);
  CHECK_EQ(tp->ecn_s_cep, 9u);
  h_fini(&h);
}

TEST(accecn_zeroed_ace_falls_back)
{
  struct harness h;
  setup(&h, TOE_TCP_ECN_ACCECN, 1);
  struct peer p;
  peer_syn(&p, &h, ECN_AE | ECN_ECE | ECN_CWR, 0, NULL);
  peer_ack(&p, 0, NULL); /* ACE 0 on the handshake's ACK: cleared on the path */
  CHECK_EQ(ctr(&h)->ecn_fallback, 1);
  CHECK_EQ(ctr(&h)->ecn_accecn_negotiated, 0);
  h_clear(&h);
  REQUIRE(toe_tcp_send(h.st, p.s, "x", 1, 0) == 1);
  int i = h_tcp_find(&h, -1);
  CHECK_EQ(tx_ipecn(&h, i), 0);
  CHECK_EQ(tx_ace(&h, i), 0u);
  h_fini(&h);
}

TEST(accecn_active_handshake)
{
  struct harness h;
  struct h_conn c;
  struct h_tcp syn;
  int i;
  /* AE|CWR|ECE in the SYN; an AccECN SYN-ACK (0b010: our SYN arrived Not-ECT) that came ECT(0)
   * itself: our ACK feeds that back as 0b100 (table 3), then ACE counts from 5 */
  active_open(&h, &c, TOE_TCP_ECN_ACCECN, ECN_CWR, TOE_ECN_ECT0, &syn, &i);
  CHECK(tx_ae(&h, i));
  CHECK_EQ(syn.flags, H_SYN | ECN_ECE | ECN_CWR);
  CHECK_EQ(ctr(&h)->ecn_accecn_negotiated, 1);
  i = h_tcp_find(&h, -1);
  struct h_tcp t;
  h_tcp_parse(h.tx[i].bytes, h.tx[i].len, &t);
  CHECK_EQ(t.flags & (H_SYN | H_ACK), H_ACK);
  CHECK_EQ(tx_ace(&h, i), 4u);
  h_clear(&h);
  REQUIRE(toe_tcp_send(h.st, c.s, "abc", 3, 0) == 3);
  i = h_tcp_find(&h, -1);
  CHECK_EQ(tx_ace(&h, i), 5u);
  CHECK_EQ(tx_ipecn(&h, i), TOE_ECN_ECT0);
  h_fini(&h);

  /* a classic server's answer (ECE alone) to our AccECN SYN: RFC 3168 ECN */
  active_open(&h, &c, TOE_TCP_ECN_ACCECN, ECN_ECE, 0, &syn, &i);
  CHECK_EQ(ctr(&h)->ecn_negotiated, 1);
  CHECK_EQ(ctr(&h)->ecn_accecn_negotiated, 0);
  h_fini(&h);
  /* 0b111 is no valid answer: no ECN */
  active_open(&h, &c, TOE_TCP_ECN_ACCECN, ECN_AE | ECN_ECE | ECN_CWR, 0, &syn, &i);
  CHECK_EQ(ctr(&h)->ecn_negotiated + ctr(&h)->ecn_accecn_negotiated, 0);
  h_fini(&h);
}

TEST_MAIN()
