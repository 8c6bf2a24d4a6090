/*
 * TCP at scale: one stack holding 100,000 established, idle connections with keepalive on (so
 * every connection keeps a timer armed), driven by hand-built handshakes on a virtual clock.
 *
 *   1. setup: a listener with keepalive on (inherited by its connections); SYN, SYN-ACK and ACK
 *      for each connection from two peer addresses with 50,000 ports each, then accept;
 *   2. idle: virtual time moves through several intervals shorter than the keepalive idle time,
 *      so no timer expires but the wheel cascades every connection's timer down its levels;
 *   3. one keepalive round: every connection's timer fires and sends a probe (RFC 1122 4.2.3.6),
 *      which the peer answers;
 *   4. idle again, then a direct measure of arming/cancelling 100,000 embedded timers.
 *
 * Wall-clock figures (time per connection setup, per timer operation, per keepalive round trip)
 * are printed, never asserted: the machine is shared. What is asserted is correctness: every
 * connection established and still there, no probe unanswered or connection dropped, and the
 * memory accounting (tcbs in use, hashed connections, packet buffers all back in the pool).
 *
 * It also computes the engine memory per established idle connection (docs/tcp.md): the tcb plus
 * its share of the connection hash and of the socket table, and what a TIME_WAIT and a SYN-cache
 * entry cost.
 *
 * Environment: TOE_SCALE_CONNS overrides the connection count (default 100000).
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */

#include "engine/stack.h"
#include "engine/tcp.h"
#include "harness.h"
#include "tcp_harness.h"
#include "testlib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LPORT 443
#define PORTS_PER_PEER 50000u
#define PORT_BASE 10000u
#define KEEPIDLE_S 600u /* seconds: long enough for idle intervals, short enough to run */
#define KEEPINTVL_S 30u
#define TOE_USEC(us) ((toe_time_t)(us)*1000u)
#define SETUP_GAP TOE_USEC(100) /* virtual time between connection setups */

static uint32_t peer_ip(uint32_t i)
{
  return H_PEER_IP + i / PORTS_PER_PEER; /* 198.18.0.2, 198.18.0.3, ... */
}
static uint16_t peer_port(uint32_t i)
{
  return (uint16_t)(PORT_BASE + i % PORTS_PER_PEER);
}
/* The connection index of a segment to peer dst:dport, or UINT32_MAX. */
static uint32_t conn_index(uint32_t dst, uint16_t dport, uint32_t n)
{
  if (dst < H_PEER_IP || dport < PORT_BASE || dport >= PORT_BASE + PORTS_PER_PEER)
    return UINT32_MAX;
  uint32_t i = (dst - H_PEER_IP) * PORTS_PER_PEER + (dport - PORT_BASE);
  return i < n ? i : UINT32_MAX;
}

/* A segment we sent, as the peer needs it to answer. */
struct seen {
  uint32_t dst;
  uint16_t dport;
  uint32_t seq, ack, tsval;
  uint8_t flags;
  uint16_t dlen;
};

struct rig {
  struct toe_stack *st;
  struct toe_config cfg;
  toe_time_t now;
  uint32_t n;
  struct toe_sock *ls;
  struct toe_sock **socks;
  uint32_t *iss;    /* our ISS of each connection: a keepalive probe has SEQ = ISS (SND.UNA - 1) */
  struct seen *out; /* segments sent since the last drain */
  size_t nout, capout;
  uint64_t frames, tcp_frames, dropped_capture;
  uint32_t peer_tsval;
};

static struct rig R;

static double now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The link: keeps what the peer needs from each TCP segment (the engine must not be re-entered
 * from here). */
static void rig_tx(void *ctx, struct toe_pbuf *frame)
{
  struct rig *r = ctx;
  r->frames++;
  uint8_t b[256];
  size_t len = frame->tot_len;
  struct h_tcp t;
  if (len <= sizeof(b)) {
    toe_pbuf_copy_out(frame, 0, b, len);
    if (h_tcp_parse(b, len, &t)) {
      r->tcp_frames++;
      if (r->nout == r->capout) {
        size_t cap = r->capout ? 2 * r->capout : 4096;
        struct seen *o = realloc(r->out, cap * sizeof(*o));
        if (o == NULL) {
          r->dropped_capture++;
          toe_pbuf_free(r->st, frame);
          return;
        }
        r->out = o;
        r->capout = cap;
      }
      r->out[r->nout++] =
          (struct seen){t.dst, t.dport, t.seq, t.ack, t.tsval, t.flags, (uint16_t)t.dlen};
    }
  }
  toe_pbuf_free(r->st, frame);
}

static void feed_tcp(uint32_t src, uint16_t sport, uint32_t seq, uint32_t ack, uint8_t flags,
                     const struct h_tcp_opt *o)
{
  uint8_t opts[40];
  size_t ol = o ? h_tcp_opts(opts, o) : 0;
  uint8_t f[128];
  size_t n = h_build_tcp(f, src, sport, H_OUR_IP, LPORT, seq, ack, flags, 1024, opts, ol, NULL, 0);
  toe_stack_input_copy(R.st, f, n, R.now);
}

/* Polls the stack at every deadline up to `until`; after each poll, `answer` (if set) answers what
 * the stack sent. Returns the number of polls. */
static uint64_t run_until(toe_time_t until, void (*answer)(void))
{
  uint64_t polls = 0;
  for (;;) {
    toe_time_t d = toe_stack_next_deadline(R.st);
    if (d == TOE_TIME_NEVER || d > until)
      break;
    if (d <= R.now)
      d = R.now + TOE_MSEC(1); /* a deadline that does not move: step one wheel tick */
    if (d > until)
      break;
    R.now = d;
    toe_stack_poll(R.st, R.now);
    polls++;
    if (answer)
      answer();
  }
  R.now = until;
  toe_stack_poll(R.st, R.now);
  if (answer)
    answer();
  return polls + 1;
}

/* The peer answers each keepalive probe (<SEQ=SND.UNA-1>, no data) with an ACK. */
static uint64_t probes_seen, probes_answered, unexpected_segs;
static void answer_probes(void)
{
  size_t k = R.nout;
  R.nout = 0; /* answering may make the stack send again (it should not) */
  for (size_t i = 0; i < k; i++) {
    struct seen s = R.out[i];
    uint32_t c = conn_index(s.dst, s.dport, R.n);
    if (s.flags != H_ACK || s.dlen != 0 || c == UINT32_MAX || s.seq != R.iss[c]) {
      unexpected_segs++;
      continue;
    }
    probes_seen++;
    struct h_tcp_opt o;
    h_tcp_opt_none(&o);
    o.ts = true;
    o.tsval = ++R.peer_tsval;
    o.tsecr = s.tsval;
    feed_tcp(s.dst, s.dport, s.ack, s.seq + 1, H_ACK, &o);
    probes_answered++;
  }
}

static uint64_t timer_ops(const struct toe_counters_timer *t)
{
  return t->armed + t->cancelled + t->fired + t->cascaded;
}

/* ---- memory per connection ---- */

struct mem_figures {
  size_t tcb, conn_hash, socktab, per_conn, tw_entry, sc_entry;
  double stack_per_conn;
};

static struct mem_figures mem_of(const struct toe_config *cfg, uint32_t conns)
{
  struct mem_figures m;
  m.tcb = sizeof(struct toe_tcb);
  /* the 4-tuple hash has a bucket pointer per tcb slot (rounded up to a power of two) */
  m.conn_hash = (toe_tcp_demux_mem_size(cfg) + cfg->tcp_socks - 1) / cfg->tcp_socks;
  /* the socket table is sized by all socket slots (TCP and UDP) */
  size_t slots = (size_t)cfg->tcp_socks + cfg->udp_socks;
  m.socktab = (toe_socktab_mem_size(cfg) + slots - 1) / slots;
  m.per_conn = m.tcb + m.conn_hash + m.socktab;
  m.tw_entry = toe_tcp_timewait_mem_size(cfg) / (cfg->tcp_timewait ? cfg->tcp_timewait : 1);
  m.sc_entry = toe_tcp_syncache_mem_size(cfg) / (cfg->tcp_syncache ? cfg->tcp_syncache : 1);
  m.stack_per_conn = (double)toe_stack_mem_size(cfg) / (double)(conns ? conns : 1);
  return m;
}

static void print_mem(const char *what, const struct toe_config *cfg, uint32_t conns)
{
  struct mem_figures m = mem_of(cfg, conns);
  printf("  memory (%s: tcp_socks %u, udp_socks %u, tcp_timewait %u, tcp_syncache %u):\n", what,
         cfg->tcp_socks, cfg->udp_socks, cfg->tcp_timewait, cfg->tcp_syncache);
  printf("    per established idle connection: %zu bytes = tcb %zu + 4-tuple hash %zu + "
         "socket table %zu (timers embedded in the tcb; no pbufs while idle)\n",
         m.per_conn, m.tcb, m.conn_hash, m.socktab);
  printf("    TIME_WAIT entry %zu bytes, SYN-cache entry %zu bytes (each with its hash share)\n",
         m.tw_entry, m.sc_entry);
  printf("    whole stack memory / %u connections: %.0f bytes\n", conns, m.stack_per_conn);
}

/* ---- the test ---- */

TEST(hundred_thousand_idle_connections_with_keepalive)
{
  uint32_t n = 100000;
  const char *env = getenv("TOE_SCALE_CONNS");
  if (env && atoi(env) > 0)
    n = (uint32_t)atoi(env);
  uint32_t npeers = (n + PORTS_PER_PEER - 1) / PORTS_PER_PEER;

  memset(&R, 0, sizeof(R));
  h_default_cfg(&R.cfg);
  R.cfg.tcp_socks = n + 16;
  R.cfg.udp_socks = 16;
  R.cfg.tcp_syncache = 1024;
  R.cfg.tcp_timewait = 1024;
  R.cfg.tcp_max_backlog = 1024;
  R.cfg.pbuf_count = 4096;
  R.cfg.arp_reachable_time = TOE_SEC(1000000); /* the peers stay known: no ARP in the way */
  R.cfg.arp_stale_time = TOE_SEC(1000000);
  R.cfg.tx = rig_tx;
  R.cfg.ctx = &R;
  R.cfg.sock_event = NULL;
  R.now = TOE_SEC(1);
  R.n = n;
  REQUIRE(toe_stack_new(&R.cfg, &R.st) == 0);
  toe_stack_poll(R.st, R.now);
  const struct toe_counters *ctr = toe_stack_counters(R.st);
  R.socks = calloc(n, sizeof(*R.socks));
  R.iss = calloc(n, sizeof(*R.iss));
  REQUIRE(R.socks != NULL && R.iss != NULL);

  /* the peers in the neighbour cache */
  for (uint32_t p = 0; p < npeers; p++) {
    uint8_t f[64];
    static const uint8_t zero[6];
    size_t fl =
        h_build_arp(f, 1, H_PEER_MAC, peer_ip(p * PORTS_PER_PEER), zero, H_OUR_IP, H_BCAST_MAC);
    toe_stack_input_copy(R.st, f, fl, R.now);
  }
  R.nout = 0;

  /* the listener; its connections inherit keepalive and its timing */
  REQUIRE(toe_tcp_open(R.st, NULL, &R.ls) == 0);
  struct toe_sockaddr la = {.family = TOE_AF_INET, .port = LPORT, .addr = 0};
  REQUIRE(toe_sock_bind(R.st, R.ls, &la) == 0);
  REQUIRE(toe_sock_setopt(R.st, R.ls, TOE_SO_KEEPALIVE, 1) == 0);
  REQUIRE(toe_sock_setopt(R.st, R.ls, TOE_TCP_KEEPIDLE, KEEPIDLE_S) == 0);
  REQUIRE(toe_sock_setopt(R.st, R.ls, TOE_TCP_KEEPINTVL, KEEPINTVL_S) == 0);
  REQUIRE(toe_sock_setopt(R.st, R.ls, TOE_TCP_KEEPCNT, 3) == 0);
  REQUIRE(toe_tcp_listen(R.st, R.ls, 1024) == 0);

  /* ---- 1. setup ---- */
  uint32_t established = 0, bad_synack = 0, accept_fail = 0, after_handshake = 0;
  uint64_t tops0 = timer_ops(&ctr->timer);
  double t0 = now_s();
  for (uint32_t i = 0; i < n; i++) {
    uint32_t src = peer_ip(i);
    uint16_t sport = peer_port(i);
    uint32_t irs = 0x01000000u + i * 7919u;
    struct h_tcp_opt o;
    h_tcp_opt_none(&o);
    o.mss = 1460;
    o.wscale = 7;
    o.sack_perm = true;
    o.ts = true;
    o.tsval = ++R.peer_tsval;
    R.nout = 0;
    feed_tcp(src, sport, irs, 0, H_SYN, &o);
    if (R.nout != 1 || R.out[0].flags != (H_SYN | H_ACK) || R.out[0].dport != sport ||
        R.out[0].dst != src || R.out[0].ack != irs + 1) {
      bad_synack++;
      continue;
    }
    struct seen sa = R.out[0];
    R.iss[i] = sa.seq;
    R.nout = 0;
    h_tcp_opt_none(&o);
    o.ts = true;
    o.tsval = ++R.peer_tsval;
    o.tsecr = sa.tsval;
    feed_tcp(src, sport, irs + 1, sa.seq + 1, H_ACK, &o);
    /* (the handshake needs no answer; anything sent here is counted, see the report) */
    after_handshake += (uint32_t)R.nout;
    R.nout = 0;
    struct toe_sock *s = NULL;
    if (toe_tcp_accept(R.st, R.ls, NULL, &s) != 0) {
      accept_fail++;
      continue;
    }
    R.socks[i] = s;
    established++;
    R.now += SETUP_GAP;
    if ((i & 15) == 15)
      toe_stack_poll(R.st, R.now);
  }
  double t_setup = now_s() - t0;
  uint64_t tops_setup = timer_ops(&ctr->timer) - tops0;
  toe_stack_poll(R.st, R.now);
  printf("  setup: %u connections in %.3f s: %.2f us per connection (SYN, SYN-ACK, ACK, accept), "
         "%.1f timer operations each\n",
         established, t_setup, t_setup * 1e6 / (established ? established : 1),
         (double)tops_setup / (established ? established : 1));
  printf("  setup: %u segments sent after the handshake-completing ACKs (%llu window updates)\n",
         after_handshake, (unsigned long long)ctr->tcp.out_win_updates);
  CHECK_EQ(bad_synack, 0);
  CHECK_EQ(accept_fail, 0);
  CHECK_EQ(established, n);
  CHECK_EQ(ctr->tcp.passive_opens, n);
  CHECK_EQ(ctr->tcp.curr_estab, n);
  CHECK_EQ(R.st->tcp.inuse, n + 1);
  CHECK_EQ(R.st->tcp.conn_hashed, n);
  CHECK_EQ(ctr->tcp.syncache_inuse, 0);
  CHECK_EQ(ctr->tcp.syncookies_sent, 0);
  CHECK_EQ(ctr->pbuf.inuse, 0); /* idle connections hold no packet buffers */
  CHECK_EQ(toe_pbuf_pool_free_count(R.st), R.cfg.pbuf_count);
  CHECK(ctr->timer.pending >= n); /* every connection has its keepalive timer armed */
  /* a sample: keepalive inherited and armed */
  for (uint32_t i = 0; i < n; i += n / 7 + 1) {
    struct toe_tcb *tp = toe_tcp_sock(R.st, R.socks[i]);
    REQUIRE(tp != NULL);
    int64_t v = 0;
    CHECK(toe_sock_getopt(R.st, R.socks[i], TOE_SO_KEEPALIVE, &v) == 0 && v == 1);
    CHECK(tp->deadline[TOE_TT_KEEP] != 0);
    CHECK(toe_timer_pending(&tp->timer));
  }

  /* ---- 2. idle intervals shorter than the keepalive time: nothing may be sent ---- */
  toe_time_t start_idle = R.now;
  uint64_t tops1 = timer_ops(&ctr->timer), casc1 = ctr->timer.cascaded, fired1 = ctr->timer.fired;
  t0 = now_s();
  uint64_t polls = 0;
  for (int k = 1; k <= 5; k++)
    polls += run_until(start_idle + (toe_time_t)k * TOE_SEC(100), answer_probes);
  double t_idle = now_s() - t0;
  uint64_t tops_idle = timer_ops(&ctr->timer) - tops1;
  printf("  idle: 500 s of virtual time in %.3f s, %llu polls, %llu timer operations (%llu "
         "cascades, %llu fired): %.1f ns per timer operation\n",
         t_idle, (unsigned long long)polls, (unsigned long long)tops_idle,
         (unsigned long long)(ctr->timer.cascaded - casc1),
         (unsigned long long)(ctr->timer.fired - fired1),
         tops_idle ? t_idle * 1e9 / (double)tops_idle : 0.0);
  CHECK_EQ(probes_seen, 0);
  CHECK_EQ(unexpected_segs, 0);
  CHECK_EQ(ctr->tcp.curr_estab, n);

  /* ---- 3. one keepalive round: every connection probes once, the peer answers ---- */
  uint64_t fired2 = ctr->timer.fired, tops2 = timer_ops(&ctr->timer);
  uint64_t in0 = ctr->tcp.in_segs, out0 = ctr->tcp.out_segs;
  t0 = now_s();
  polls = run_until(start_idle + TOE_SEC(KEEPIDLE_S + 100), answer_probes);
  double t_keep = now_s() - t0;
  uint64_t fired = ctr->timer.fired - fired2;
  printf("  keepalive round: %llu probes sent and answered in %.3f s (%llu polls): %.2f us per "
         "connection (timer fire, probe out, answer in), %llu timers fired, %llu timer "
         "operations\n",
         (unsigned long long)probes_answered, t_keep, (unsigned long long)polls,
         t_keep * 1e6 / (double)(probes_answered ? probes_answered : 1), (unsigned long long)fired,
         (unsigned long long)(timer_ops(&ctr->timer) - tops2));
  CHECK_EQ(ctr->tcp.out_keepalives, n);
  CHECK_EQ(probes_seen, n);
  CHECK_EQ(probes_answered, n);
  CHECK_EQ(unexpected_segs, 0);
  CHECK_EQ(ctr->tcp.out_segs - out0, n);
  CHECK_EQ(ctr->tcp.in_segs - in0, n);

  /* ---- 4. idle again (the next probes are due a keepalive time after the answers) ---- */
  uint64_t keep_before = ctr->tcp.out_keepalives;
  toe_time_t start2 = R.now;
  for (int k = 1; k <= 4; k++)
    run_until(start2 + (toe_time_t)k * TOE_SEC(100), answer_probes);
  CHECK_EQ(ctr->tcp.out_keepalives, keep_before);

  /* arming and cancelling the embedded timers directly: cancel + re-arm at the same expiry */
  toe_time_t *exp = malloc((size_t)n * sizeof(*exp));
  REQUIRE(exp != NULL);
  for (uint32_t i = 0; i < n; i++)
    exp[i] = toe_tcp_sock(R.st, R.socks[i])->timer.expires;
  t0 = now_s();
  for (int rep = 0; rep < 4; rep++) {
    for (uint32_t i = 0; i < n; i++) {
      struct toe_tcb *tp = (struct toe_tcb *)(void *)R.socks[i];
      toe_timer_cancel(R.st, &tp->timer);
      toe_timer_arm(R.st, &tp->timer, exp[i]);
    }
  }
  double t_ops = now_s() - t0;
  printf("  timer cancel + arm on %u armed timers: %.1f ns per operation\n", n,
         t_ops * 1e9 / (8.0 * n));
  free(exp);

  /* ---- the end state ---- */
  CHECK_EQ(ctr->tcp.curr_estab, n);
  CHECK_EQ(R.st->tcp.inuse, n + 1);
  CHECK_EQ(R.st->tcp.conn_hashed, n);
  CHECK_EQ(ctr->tcp.keepalive_drops, 0);
  CHECK_EQ(ctr->tcp.timeout_drops, 0);
  CHECK_EQ(ctr->tcp.estab_resets, 0);
  CHECK_EQ(ctr->tcp.out_rsts, 0);
  CHECK_EQ(ctr->tcp.retrans_segs, 0);
  CHECK_EQ(ctr->pbuf.inuse, 0);
  CHECK_EQ(toe_pbuf_pool_free_count(R.st), R.cfg.pbuf_count);
  CHECK_EQ(ctr->arp.queue_drop_failed, 0);
  CHECK_EQ(R.dropped_capture, 0);
  uint32_t alive = 0;
  for (uint32_t i = 0; i < n; i++) {
    struct toe_tcp_info info;
    if (R.socks[i] && toe_tcp_get_info(R.st, R.socks[i], &info) == 0 &&
        info.state == TOE_TCP_ESTABLISHED)
      alive++;
  }
  CHECK_EQ(alive, n);

  /* memory per connection, at this configuration and at the defaults */
  print_mem("this test", &R.cfg, n);
  struct toe_config defaults;
  toe_config_defaults(&defaults);
  defaults.mac = R.cfg.mac; /* an identity, so that the config is valid for toe_stack_mem_size */
  defaults.addr = R.cfg.addr;
  defaults.prefix_len = R.cfg.prefix_len;
  defaults.tx = rig_tx;
  print_mem("defaults", &defaults, defaults.tcp_socks);
  struct mem_figures m = mem_of(&R.cfg, n);
  CHECK(m.per_conn < 1024); /* the aim: under 1 KiB per established idle connection */
  CHECK(sizeof(struct toe_tcb) < 1024);

  /* and everything goes back */
  for (uint32_t i = 0; i < n; i++)
    toe_tcp_abort(R.st, R.socks[i]);
  toe_sock_close(R.st, R.ls);
  CHECK_EQ(R.st->tcp.inuse, 0);
  CHECK_EQ(R.st->tcp.conn_hashed, 0);
  CHECK_EQ(ctr->tcp.curr_estab, 0);
  CHECK_EQ(ctr->tcp.out_rsts, n); /* an abort of an established connection sends a RST */
  toe_stack_poll(R.st, R.now + TOE_SEC(1));
  CHECK_EQ(ctr->pbuf.inuse, 0);

  toe_stack_free(R.st);
  free(R.socks);
  free(R.iss);
  free(R.out);
}

TEST_MAIN()
