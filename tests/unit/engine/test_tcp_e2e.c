/*
 * Engine to engine: two stacks joined by the in-memory link of e2e_link.c on one virtual clock
 * (1 Gbit/s, 0.5 ms each way, 1000 frames in flight at most).
 *
 *  - bulk transfers (one direction, and both at once) under loss (0, 1, 5, 10 %), reordering
 *    (25 %), duplication (5 %), corruption (1 %) and all of them together (with 10 % loss): every
 *    byte arrives, in order, exactly once (checked against the sender's pattern as it arrives and
 *    by a hash of the whole stream), within a bound on virtual time; throughput (in virtual time)
 *    and the retransmission counters are printed;
 *  - 10,000 sequential connections (request, response, the server closes first so TIME_WAIT
 *    4-tuples get reopened by new SYNs; also 2,000 over a lossy link) and 1,000 concurrent ones
 *    (also with SYN cookies only, with a SYN cache too small, and over a lossy link);
 *  - afterwards every tcb, TIME_WAIT and SYN-cache entry and every packet buffer is back.
 *
 * Environment: TOE_E2E_MB transfer size in MiB (default 64: the whole file takes about 45 s of
 * CPU under ASan, 2026-12-07), TOE_E2E_QUICK=1 only the clean and all-faults transfers,
 * TOE_E2E_SEQ and TOE_E2E_CONC the connection counts (default 10000 and 1000).
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */

#include "e2e_link.h"
#include "engine/stack.h"
#include "engine/tcp.h"
#include "testlib.h"
#include "toe/tcp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SERVER_PORT 8000
#define USEC(us) ((toe_time_t)(us)*1000u)
#define CLIENT 0
#define SERVER 1

/* ---------------------------------------------------------------------------------------------
 * Stream pattern and hash
 */

static inline uint64_t pat_word(uint64_t seed, uint64_t k)
{
  uint64_t z = seed + (k + 1) * 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* w as the 8 bytes of a little-endian word, in host order (loaded or stored with memcpy: one
 * 8-byte access, where a byte loop costs eight checked accesses under ASan). */
static inline uint64_t le64(uint64_t w)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  return __builtin_bswap64(w);
#else
  return w;
#endif
}

/* Bytes [off, off + n) of the stream with this seed. */
static void pattern(uint64_t seed, uint64_t off, uint8_t *out, size_t n)
{
  size_t i = 0;
  while (i < n && ((off + i) & 7)) {
    out[i] = (uint8_t)(pat_word(seed, (off + i) >> 3) >> (8 * ((off + i) & 7)));
    i++;
  }
  while (n - i >= 8) {
    uint64_t w = le64(pat_word(seed, (off + i) >> 3));
    memcpy(out + i, &w, 8);
    i += 8;
  }
  while (i < n) {
    out[i] = (uint8_t)(pat_word(seed, (off + i) >> 3) >> (8 * ((off + i) & 7)));
    i++;
  }
}

/* A streaming 64-bit hash over 8-byte words (FNV-style multiply with extra mixing). */
struct shash {
  uint64_t h;
  uint64_t pos;
  uint64_t acc;
};

static void sh_init(struct shash *s)
{
  s->h = 0xcbf29ce484222325ull;
  s->pos = 0;
  s->acc = 0;
}

static inline void sh_word(struct shash *s, uint64_t w)
{
  s->h = (s->h ^ w) * 0x100000001b3ull;
  s->h ^= s->h >> 29;
}

static void sh_feed(struct shash *s, const uint8_t *p, size_t n)
{
  size_t i = 0;
  while (i < n && (s->pos & 7)) {
    s->acc |= (uint64_t)p[i++] << (8 * (s->pos & 7));
    if ((++s->pos & 7) == 0) {
      sh_word(s, s->acc);
      s->acc = 0;
    }
  }
  while (n - i >= 8) {
    /* Little-endian like the byte-at-a-time path above, so the hash does not depend on where
     * the stream was cut into chunks on a big-endian host (both ends cut it differently). */
    uint64_t w;
    memcpy(&w, p + i, 8);
    sh_word(s, le64(w));
    i += 8;
    s->pos += 8;
  }
  while (i < n) {
    s->acc |= (uint64_t)p[i++] << (8 * (s->pos & 7));
    s->pos++;
  }
}

static uint64_t sh_final(const struct shash *s)
{
  struct shash t = *s;
  if (t.pos & 7)
    sh_word(&t, t.acc);
  sh_word(&t, t.pos);
  return t.h;
}

/* ---------------------------------------------------------------------------------------------
 * Applications on both ends
 */

struct bench;

struct conn {
  struct bench *b;
  int end;
  int id;
  struct toe_sock *s;
  uint64_t tx_total, tx_done, tx_seed;
  uint64_t rx_expect, rx_done, rx_seed;
  struct shash txh, rxh;
  bool tx_after_rx;    /* send only once rx_expect bytes arrived */
  bool shut_after_eof; /* shut down writing only after the peer's FIN */
  bool shut_sent, eof, closed, failed, mismatch;
  int err;
  bool queued;
  struct conn *next_ready;
  int active_idx;
};

struct bench {
  struct e2e_link l;
  struct toe_sock *listener;
  int lmarker;
  bool accept_pending;
  struct conn *cli; /* clients (end 0) */
  struct conn *srv; /* servers (end 1), assigned at accept */
  int n, nsrv;
  int by_port[65536]; /* client index by its local port, -1 */
  struct conn *ready;
  struct conn **active;
  int nactive;
  int closed_cli, closed_srv;
  uint64_t rescued; /* sweeps that found work no event had announced */
  uint8_t buf[65536];
  uint8_t expect[65536];
  /* Per end, the pattern bytes last generated for a sender and not yet taken by its engine:
   * toe_tcp_tx_space counts bytes, while the engine may take fewer (its buffer-count allowance,
   * docs/transport.md "Buffer accounting") or none; regenerating up to 64 KiB for every refused
   * attempt was most of this file's run time (the clean two-way transfer: 10 times the one-way). */
  struct stage {
    const struct conn *c;
    uint64_t off;        /* stream offset of data[start] */
    uint32_t start, len; /* the bytes still to send */
    uint8_t data[65536];
  } stage[2];
};

/* The next `len` bytes of c's stream (from tx_done), generated once however often the engine
 * refuses them. len <= sizeof(stage.data). */
static const uint8_t *stage_get(struct bench *b, const struct conn *c, uint32_t len)
{
  struct stage *g = &b->stage[c->end];
  if (g->c != c || g->off != c->tx_done) {
    g->c = c;
    g->off = c->tx_done;
    g->start = g->len = 0;
  }
  if (g->len < len) {
    if (g->start + len > sizeof(g->data)) {
      memmove(g->data, g->data + g->start, g->len);
      g->start = 0;
    }
    pattern(c->tx_seed, c->tx_done + g->len, g->data + g->start + g->len, len - g->len);
    g->len = len;
  }
  return g->data + g->start;
}

/* The engine took n bytes of what stage_get gave. */
static void stage_took(struct bench *b, const struct conn *c, uint32_t n)
{
  struct stage *g = &b->stage[c->end];
  g->start += n;
  g->len -= n;
  g->off += n;
}

static void mark_ready(struct conn *c)
{
  if (c->queued || c->closed)
    return;
  c->queued = true;
  c->next_ready = c->b->ready;
  c->b->ready = c;
}

static void on_event(void *ctx, int end, struct toe_sock *s, void *user, uint32_t events)
{
  struct bench *b = ctx;
  (void)s;
  (void)events;
  if (user == &b->lmarker) {
    if (end == SERVER)
      b->accept_pending = true;
    return;
  }
  if (user)
    mark_ready(user);
}

static void active_add(struct bench *b, struct conn *c)
{
  c->active_idx = b->nactive;
  b->active[b->nactive++] = c;
}

static void active_del(struct bench *b, struct conn *c)
{
  int i = c->active_idx;
  b->active[i] = b->active[--b->nactive];
  b->active[i]->active_idx = i;
  c->active_idx = -1;
}

/* Does whatever the connection can do now. Returns true if anything happened. */
static bool pump(struct bench *b, struct conn *c)
{
  if (c->closed || c->s == NULL)
    return false;
  struct toe_stack *st = b->l.end[c->end].st;
  bool did = false;
  for (;;) {
    int n = toe_tcp_recv(st, c->s, b->buf, sizeof(b->buf));
    if (n > 0) {
      did = true;
      pattern(c->rx_seed, c->rx_done, b->expect, (size_t)n);
      if (c->rx_done + (uint64_t)n > c->rx_expect || memcmp(b->buf, b->expect, (size_t)n) != 0) {
        if (!c->mismatch)
          fprintf(stderr, "e2e: conn %d/%d: bytes differ in [%llu, %llu)\n", c->end, c->id,
                  (unsigned long long)c->rx_done, (unsigned long long)(c->rx_done + (uint64_t)n));
        c->mismatch = true;
      }
      sh_feed(&c->rxh, b->buf, (size_t)n);
      c->rx_done += (uint64_t)n;
      continue;
    }
    if (n == 0) {
      if (!c->eof)
        did = true;
      c->eof = true;
    } else if (n != -TOE_EAGAIN && n != -TOE_ENOTCONN) {
      c->failed = true;
      c->err = n;
    }
    break;
  }
  bool may_send = !c->tx_after_rx || c->rx_done >= c->rx_expect;
  while (may_send && !c->failed && c->tx_done < c->tx_total) {
    uint64_t left = c->tx_total - c->tx_done;
    size_t len = left < sizeof(b->buf) ? (size_t)left : sizeof(b->buf);
    /* Generate only what can be queued; with no room, one byte asks for -TOE_EAGAIN (and so
     * for a TOE_EV_WRITABLE later). */
    uint32_t room = toe_tcp_tx_space(c->s);
    if (len > room)
      len = room ? room : 1;
    const uint8_t *data = stage_get(b, c, (uint32_t)len);
    int n = toe_tcp_send(st, c->s, data, len, 0);
    if (n > 0) {
      did = true;
      sh_feed(&c->txh, data, (size_t)n);
      stage_took(b, c, (uint32_t)n);
      c->tx_done += (uint64_t)n;
      continue;
    }
    if (n != -TOE_EAGAIN && n != -TOE_ENOTCONN && n != -TOE_ENOBUFS) {
      c->failed = true;
      c->err = n;
    }
    break;
  }
  if (!c->shut_sent && c->tx_done == c->tx_total && may_send && (!c->shut_after_eof || c->eof)) {
    if (toe_tcp_shutdown(st, c->s, TOE_SHUT_WR) == 0) {
      c->shut_sent = true;
      did = true;
    }
  }
  if ((c->shut_sent && c->eof) || c->failed) {
    if (c->failed)
      fprintf(stderr, "e2e: conn %d/%d failed: %d (rx %llu/%llu tx %llu/%llu)\n", c->end, c->id,
              c->err, (unsigned long long)c->rx_done, (unsigned long long)c->rx_expect,
              (unsigned long long)c->tx_done, (unsigned long long)c->tx_total);
    toe_sock_close(st, c->s);
    c->closed = true;
    c->s = NULL;
    if (c->end == CLIENT)
      b->closed_cli++;
    else
      b->closed_srv++;
    active_del(b, c);
    did = true;
  }
  return did;
}

static void do_accepts(struct bench *b)
{
  struct toe_stack *st = b->l.end[SERVER].st;
  b->accept_pending = false;
  while (b->nsrv < b->n) {
    struct conn *c = &b->srv[b->nsrv];
    struct toe_sock *s = NULL;
    if (toe_tcp_accept(st, b->listener, c, &s) != 0)
      break;
    b->nsrv++;
    struct toe_sockaddr ln, rn;
    toe_sock_name(s, &ln, &rn);
    int ci = b->by_port[rn.port];
    c->s = s;
    c->closed = false;
    if (ci < 0) {
      fprintf(stderr, "e2e: accepted a connection from unknown port %u\n", rn.port);
      c->failed = true;
      c->err = -1;
      c->id = -1;
    } else {
      struct conn *k = &b->cli[ci];
      c->id = k->id;
      c->rx_seed = k->tx_seed;
      c->rx_expect = k->tx_total;
      c->tx_seed = k->rx_seed;
      c->tx_total = k->rx_expect;
    }
    active_add(b, c);
    pump(b, c);
  }
}

static void run_ready(struct bench *b)
{
  for (int guard = 0; guard < 1000; guard++) {
    if (b->accept_pending)
      do_accepts(b);
    if (!b->ready)
      return;
    struct conn *list = b->ready;
    b->ready = NULL;
    while (list) {
      struct conn *c = list;
      list = c->next_ready;
      c->queued = false;
      pump(b, c);
    }
  }
}

/* Pumps every active connection: catches anything no event announced (counted). */
static void sweep(struct bench *b)
{
  if (b->accept_pending)
    do_accepts(b);
  for (int i = 0; i < b->nactive;) {
    struct conn *c = b->active[i];
    int before = b->nactive;
    if (pump(b, c))
      b->rescued++;
    if (b->nactive == before)
      i++;
  }
  run_ready(b);
}

static void bench_init(struct bench *b, int n, const struct toe_config *c0,
                       const struct toe_config *c1, uint64_t seed, int backlog)
{
  memset(b, 0, sizeof(*b));
  for (int i = 0; i < 65536; i++)
    b->by_port[i] = -1;
  b->n = n;
  b->cli = calloc((size_t)n, sizeof(struct conn));
  b->srv = calloc((size_t)n, sizeof(struct conn));
  b->active = calloc((size_t)(2 * n + 2), sizeof(struct conn *));
  for (int i = 0; i < n; i++) {
    b->cli[i].b = b->srv[i].b = b;
    b->cli[i].end = CLIENT;
    b->srv[i].end = SERVER;
    b->cli[i].id = b->srv[i].id = i;
    b->cli[i].active_idx = b->srv[i].active_idx = -1;
    sh_init(&b->cli[i].txh);
    sh_init(&b->cli[i].rxh);
    sh_init(&b->srv[i].txh);
    sh_init(&b->srv[i].rxh);
  }
  e2e_init(&b->l, c0, c1, seed, TOE_SEC(1));
  b->l.on_event = on_event;
  b->l.event_ctx = b;
  struct toe_stack *st = b->l.end[SERVER].st;
  b->listener = NULL;
  if (toe_tcp_open(st, &b->lmarker, &b->listener) == 0) {
    struct toe_sockaddr a = {.family = TOE_AF_INET, .port = SERVER_PORT, .addr = 0};
    if (toe_sock_bind(st, b->listener, &a) != 0 || toe_tcp_listen(st, b->listener, backlog) != 0) {
      toe_sock_close(st, b->listener);
      b->listener = NULL;
    }
  }
}

/* Starts client i: connect, with its amounts and seeds already set. */
static bool start_client(struct bench *b, int i)
{
  struct toe_stack *st = b->l.end[CLIENT].st;
  struct conn *c = &b->cli[i];
  if (toe_tcp_open(st, c, &c->s) != 0)
    return false;
  struct toe_sockaddr r = {.family = TOE_AF_INET, .port = SERVER_PORT, .addr = E2E_IP1};
  int rc = toe_sock_connect(st, c->s, &r);
  if (rc != 0 && rc != -TOE_EINPROGRESS) {
    toe_sock_close(st, c->s);
    c->s = NULL;
    return false;
  }
  struct toe_sockaddr ln, rn;
  toe_sock_name(c->s, &ln, &rn);
  b->by_port[ln.port] = i;
  active_add(b, c);
  return true;
}

/* Runs until `done` says so or `limit` (virtual) passes. */
static bool bench_run(struct bench *b, toe_time_t limit, bool (*done)(struct bench *, void *),
                      void *arg, void (*tick)(struct bench *, void *))
{
  toe_time_t next_sweep = b->l.now + TOE_MSEC(200);
  run_ready(b);
  while (!done(b, arg)) {
    toe_time_t stop = next_sweep < limit ? next_sweep : limit;
    if (!e2e_step(&b->l, stop)) {
      if (b->l.now >= limit)
        return false;
    }
    run_ready(b);
    if (tick)
      tick(b, arg);
    if (b->l.now >= next_sweep) {
      sweep(b);
      next_sweep = b->l.now + TOE_MSEC(200);
    }
  }
  return true;
}

/* After the applications are done: let TIME_WAIT run out, close the listener, and check that
 * every tcb, TIME_WAIT and SYN-cache entry and every buffer is back. */
static void bench_drain_and_check(struct bench *b)
{
  struct toe_stack *s0 = b->l.end[0].st, *s1 = b->l.end[1].st;
  toe_time_t msl = s0->cfg.tcp_msl > s1->cfg.tcp_msl ? s0->cfg.tcp_msl : s1->cfg.tcp_msl;
  e2e_run_until(&b->l, b->l.now + 2 * msl + TOE_SEC(70));
  if (b->listener)
    toe_sock_close(s1, b->listener);
  b->listener = NULL;
  e2e_run_until(&b->l, b->l.now + TOE_SEC(1));
  for (int i = 0; i < 2; i++) {
    struct toe_stack *st = b->l.end[i].st;
    CHECK_EQ(st->tcp.inuse, 0);
    CHECK_EQ(st->tcp.conn_hashed, 0);
    CHECK_EQ(st->tcp.tw_inuse, 0);
    CHECK_EQ(st->tcp.sc_inuse, 0);
    CHECK_EQ(toe_pbuf_pool_free_count(st), st->cfg.pbuf_count);
  }
  CHECK_EQ(e2e_in_flight(&b->l), 0);
}

static void bench_fini(struct bench *b)
{
  e2e_fini(&b->l);
  free(b->cli);
  free(b->srv);
  free(b->active);
}

static double now_real(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int env_int(const char *name, int def)
{
  const char *v = getenv(name);
  return v && *v ? atoi(v) : def;
}

/* ---------------------------------------------------------------------------------------------
 * Bulk transfers
 */

struct scenario {
  const char *name;
  struct e2e_faults f;
  toe_time_t limit; /* virtual time bound for one transfer */
};

static bool all_closed(struct bench *b, void *arg)
{
  (void)arg;
  return b->closed_cli == b->n && b->closed_srv == b->n;
}

static void print_tcp(const char *who, const struct toe_counters_tcp *t)
{
  printf("    %s: out %llu retrans %llu rto %llu tlp %llu episodes %llu rack-lost %llu "
         "spurious rto/fr %llu/%llu dsack-rx %llu csum-drops %llu ooo %llu dup %llu\n",
         who, (unsigned long long)t->out_segs, (unsigned long long)t->retrans_segs,
         (unsigned long long)t->rto_expired, (unsigned long long)t->rec_tlp_probes,
         (unsigned long long)t->rec_episodes, (unsigned long long)t->rec_rack_lost,
         (unsigned long long)t->rec_spurious_rto, (unsigned long long)t->rec_spurious_fr,
         (unsigned long long)t->rec_dsacks_rcvd, (unsigned long long)t->rx_drop_checksum,
         (unsigned long long)t->rx_ooo_segs, (unsigned long long)t->rx_drop_dup);
}

static void transfer(const struct scenario *sc, uint64_t bytes, bool both, uint64_t seed)
{
  static struct bench b;
  struct toe_config c0, c1;
  e2e_default_cfg(&c0, 0);
  e2e_default_cfg(&c1, 1);
  bench_init(&b, 1, &c0, &c1, seed, 16);
  if (b.listener == NULL) {
    CHECK(b.listener != NULL);
    bench_fini(&b);
    return;
  }
  e2e_set_faults(&b.l, &sc->f);
  struct conn *c = &b.cli[0];
  c->tx_total = bytes;
  c->tx_seed = seed * 31 + 1;
  c->rx_expect = both ? bytes : 0;
  c->rx_seed = seed * 31 + 2;
  double r0 = now_real();
  toe_time_t v0 = b.l.now;
  bool started = start_client(&b, 0);
  CHECK(started);
  bool ok = started && bench_run(&b, v0 + sc->limit, all_closed, NULL, NULL);
  double vt = (double)(b.l.now - v0) / 1e9, rt = now_real() - r0;
  const struct toe_counters_tcp *t0 = &toe_stack_counters(b.l.end[0].st)->tcp;
  const struct toe_counters_tcp *t1 = &toe_stack_counters(b.l.end[1].st)->tcp;
  double mbit = vt > 0 ? (double)bytes * 8 / vt / 1e6 : 0;
  printf("e2e %-10s %-4s %3llu MiB: %s in %.3f s virtual (%.0f Mbit/s%s), %.2f s real\n", sc->name,
         both ? "both" : "one", (unsigned long long)(bytes >> 20), ok ? "done" : "FAILED", vt, mbit,
         both ? " each way" : "", rt);
  print_tcp("A", t0);
  print_tcp("B", t1);
  printf("    link A->B: lost %llu reordered %llu duplicated %llu corrupted %llu queue-drops %llu; "
         "B->A: lost %llu\n",
         (unsigned long long)b.l.stats[0].lost, (unsigned long long)b.l.stats[0].reordered,
         (unsigned long long)b.l.stats[0].duplicated, (unsigned long long)b.l.stats[0].corrupted,
         (unsigned long long)b.l.stats[0].queue_drops, (unsigned long long)b.l.stats[1].lost);
  CHECK(ok);
  struct conn *s = &b.srv[0];
  CHECK_EQ(b.nsrv, 1);
  CHECK(!c->failed && !s->failed);
  CHECK(!c->mismatch && !s->mismatch);
  CHECK_EQ(s->rx_done, bytes);
  CHECK_EQ(c->tx_done, bytes);
  CHECK(sh_final(&s->rxh) == sh_final(&c->txh));
  if (both) {
    CHECK_EQ(c->rx_done, bytes);
    CHECK(sh_final(&c->rxh) == sh_final(&s->txh));
  }
  if (sc->f.corrupt_ppm)
    CHECK(t0->rx_drop_checksum + t1->rx_drop_checksum > 0);
  if (sc->f.loss_ppm)
    CHECK(t0->retrans_segs > 0);
  if (ok)
    bench_drain_and_check(&b);
  bench_fini(&b);
}

static struct e2e_faults base_link(void)
{
  struct e2e_faults f;
  memset(&f, 0, sizeof(f));
  f.delay = USEC(500);
  f.rate_bps = 1000000000ull;
  f.queue_limit = 1000;
  return f;
}

static void run_transfers(bool both)
{
  uint64_t mb = (uint64_t)env_int("TOE_E2E_MB", 64);
  bool quick = env_int("TOE_E2E_QUICK", 0) != 0;
  struct scenario sc[8];
  int n = 0;
  struct e2e_faults f = base_link();
  sc[n++] = (struct scenario){"clean", f, TOE_SEC(60)};
  f = base_link();
  f.loss_ppm = 10000;
  sc[n++] = (struct scenario){"loss1%", f, TOE_SEC(300)};
  f.loss_ppm = 50000;
  sc[n++] = (struct scenario){"loss5%", f, TOE_SEC(900)};
  f.loss_ppm = 100000;
  sc[n++] = (struct scenario){"loss10%", f, TOE_SEC(1800)};
  f = base_link();
  f.reorder_ppm = 250000;
  f.reorder_delay = TOE_MSEC(3);
  sc[n++] = (struct scenario){"reorder25%", f, TOE_SEC(300)};
  f = base_link();
  f.dup_ppm = 50000;
  sc[n++] = (struct scenario){"dup5%", f, TOE_SEC(120)};
  f = base_link();
  f.corrupt_ppm = 10000;
  sc[n++] = (struct scenario){"corrupt1%", f, TOE_SEC(300)};
  f = base_link();
  f.loss_ppm = 100000;
  f.reorder_ppm = 250000;
  f.reorder_delay = TOE_MSEC(3);
  f.dup_ppm = 50000;
  f.corrupt_ppm = 10000;
  f.jitter = USEC(200);
  sc[n++] = (struct scenario){"all", f, TOE_SEC(3600)};
  for (int i = 0; i < n; i++) {
    if (quick && i != 0 && i != n - 1)
      continue;
    transfer(&sc[i], mb << 20, both, 100 + (uint64_t)i);
  }
}

TEST(bulk_one_direction_under_faults)
{
  run_transfers(false);
}

TEST(bulk_both_directions_under_faults)
{
  run_transfers(true);
}

/* ---------------------------------------------------------------------------------------------
 * Many connections
 */

struct seq_state {
  int next;
  int total;
};

static bool seq_done(struct bench *b, void *arg)
{
  struct seq_state *s = arg;
  return s->next == s->total && b->closed_cli == s->total && b->closed_srv == b->nsrv &&
         b->nsrv == s->total;
}

/* Starts the next client when the previous one is closed. */
static void seq_tick(struct bench *b, void *arg)
{
  struct seq_state *s = arg;
  while (s->next < s->total && b->closed_cli == s->next) {
    if (!start_client(b, s->next)) {
      fprintf(stderr, "e2e: connect %d failed\n", s->next);
      b->cli[s->next].failed = true;
      b->cli[s->next].closed = true;
      b->closed_cli++;
      b->closed_srv++;
      b->nsrv++;
    }
    s->next++;
    run_ready(b);
  }
}

static int count_failures(struct bench *b, int n)
{
  int bad = 0;
  for (int i = 0; i < n; i++) {
    struct conn *c = &b->cli[i];
    if (c->failed || c->mismatch || c->rx_done != c->rx_expect || c->tx_done != c->tx_total)
      bad++;
  }
  for (int i = 0; i < b->nsrv; i++) {
    struct conn *c = &b->srv[i];
    if (c->failed || c->mismatch || c->rx_done != c->rx_expect || c->tx_done != c->tx_total)
      bad++;
  }
  return bad;
}

static void sequential(int total, const struct e2e_faults *f, const char *name)
{
  static struct bench b;
  struct toe_config c0, c1;
  e2e_default_cfg(&c0, 0);
  e2e_default_cfg(&c1, 1);
  c0.pbuf_count = c1.pbuf_count = 2048;
  bench_init(&b, total, &c0, &c1, 7, 128);
  if (b.listener == NULL) {
    CHECK(b.listener != NULL);
    bench_fini(&b);
    return;
  }
  e2e_set_faults(&b.l, f);
  for (int i = 0; i < total; i++) {
    struct conn *c = &b.cli[i];
    c->tx_total = 100 + (uint64_t)(i % 200);
    c->tx_seed = 5000 + (uint64_t)i;
    c->rx_expect = 300 + (uint64_t)(i % 1500);
    c->rx_seed = 90000 + (uint64_t)i;
    c->shut_after_eof = true; /* the server closes first: TIME_WAIT on its side */
  }
  for (int i = 0; i < total; i++)
    b.srv[i].tx_after_rx = true;
  struct seq_state s = {0, total};
  double r0 = now_real();
  toe_time_t v0 = b.l.now;
  seq_tick(&b, &s);
  bool ok = bench_run(&b, v0 + TOE_SEC(7200), seq_done, &s, seq_tick);
  const struct toe_counters_tcp *t0 = &toe_stack_counters(b.l.end[0].st)->tcp;
  const struct toe_counters_tcp *t1 = &toe_stack_counters(b.l.end[1].st)->tcp;
  printf("e2e sequential %s: %d connections %s in %.1f s virtual, %.2f s real; client "
         "active_opens %llu syn_retrans %llu; server passive_opens %llu synack_retrans %llu "
         "tw_entered %llu tw_recycled %llu tw_reopened %llu tw_fin_acked %llu; retrans %llu/%llu; "
         "sweeps that found work %llu\n",
         name, total, ok ? "done" : "FAILED", (double)(b.l.now - v0) / 1e9, now_real() - r0,
         (unsigned long long)t0->active_opens, (unsigned long long)t0->syn_retrans,
         (unsigned long long)t1->passive_opens, (unsigned long long)t1->synack_retrans,
         (unsigned long long)t1->tw_entered, (unsigned long long)t1->tw_recycled,
         (unsigned long long)t1->tw_reopened, (unsigned long long)t1->tw_fin_acked,
         (unsigned long long)t0->retrans_segs, (unsigned long long)t1->retrans_segs,
         (unsigned long long)b.rescued);
  CHECK(ok);
  CHECK_EQ(count_failures(&b, total), 0);
  CHECK_EQ(b.nsrv, total);
  CHECK_EQ(t1->passive_opens, (uint64_t)total);
  if (!f->loss_ppm && !f->corrupt_ppm)
    CHECK_EQ(t1->tw_entered, (uint64_t)total);
  if (ok)
    bench_drain_and_check(&b);
  bench_fini(&b);
}

TEST(sequential_connections)
{
  struct e2e_faults f = base_link();
  sequential(env_int("TOE_E2E_SEQ", 10000), &f, "clean");
}

TEST(sequential_connections_lossy)
{
  /* lost SYNs, SYN-ACKs, FINs and final ACKs: retransmitted handshakes, FINs re-ACKed from
   * TIME_WAIT */
  struct e2e_faults f = base_link();
  f.loss_ppm = 30000;
  f.dup_ppm = 10000;
  f.reorder_ppm = 50000;
  f.reorder_delay = TOE_MSEC(2);
  f.corrupt_ppm = 5000;
  sequential(env_int("TOE_E2E_SEQ", 10000) / 5, &f, "lossy");
}

static bool conc_done(struct bench *b, void *arg)
{
  int total = *(int *)arg;
  return b->closed_cli == total && b->closed_srv == total;
}

static void concurrent(int total, int syncookies, int syncache, const struct e2e_faults *faults)
{
  static struct bench b;
  struct toe_config c0, c1;
  e2e_default_cfg(&c0, 0);
  e2e_default_cfg(&c1, 1);
  c0.pbuf_count = c1.pbuf_count = 16384;
  c0.tcp_socks = c1.tcp_socks = (uint32_t)total + 16;
  c1.tcp_syncookies = (uint8_t)syncookies;
  c1.tcp_syncache = (uint32_t)syncache;
  c1.tcp_max_backlog = (uint16_t)(total + 16);
  bench_init(&b, total, &c0, &c1, 11, total + 16);
  if (b.listener == NULL) {
    CHECK(b.listener != NULL);
    bench_fini(&b);
    return;
  }
  struct e2e_faults f = base_link();
  if (faults)
    f = *faults;
  f.queue_limit = 0;
  e2e_set_faults(&b.l, &f);
  for (int i = 0; i < total; i++) {
    struct conn *c = &b.cli[i];
    c->tx_total = 2000;
    c->tx_seed = 7000 + (uint64_t)i;
    c->rx_expect = 4000;
    c->rx_seed = 3000 + (uint64_t)i;
  }
  for (int i = 0; i < total; i++)
    b.srv[i].tx_after_rx = true;
  double r0 = now_real();
  toe_time_t v0 = b.l.now;
  int started = 0;
  for (int i = 0; i < total; i++)
    started += start_client(&b, i);
  CHECK_EQ(started, total);
  bool ok = bench_run(&b, v0 + TOE_SEC(600), conc_done, &total, NULL);
  const struct toe_counters_tcp *t0 = &toe_stack_counters(b.l.end[0].st)->tcp;
  const struct toe_counters_tcp *t1 = &toe_stack_counters(b.l.end[1].st)->tcp;
  printf("e2e concurrent%s: %d connections (syncookies=%d, syncache=%d) %s in %.2f s virtual, "
         "%.2f s real; syncache_adds %llu cookies sent/ok %llu/%llu syn_retrans %llu/%llu "
         "client tw %llu; sweeps that found work %llu\n",
         faults ? " (lossy)" : "", total, syncookies, syncache, ok ? "done" : "FAILED",
         (double)(b.l.now - v0) / 1e9, now_real() - r0, (unsigned long long)t1->syncache_adds,
         (unsigned long long)t1->syncookies_sent, (unsigned long long)t1->syncookies_recv,
         (unsigned long long)t0->syn_retrans, (unsigned long long)t1->syn_retrans,
         (unsigned long long)t0->tw_entered, (unsigned long long)b.rescued);
  CHECK(ok);
  CHECK_EQ(count_failures(&b, total), 0);
  CHECK_EQ(b.nsrv, total);
  if (syncookies == 2)
    CHECK_EQ(t1->syncookies_recv, (uint64_t)total);
  if (ok)
    bench_drain_and_check(&b);
  bench_fini(&b);
}

TEST(concurrent_connections)
{
  concurrent(env_int("TOE_E2E_CONC", 1000), 1, 1024, NULL);
}

TEST(concurrent_connections_syncookies_only)
{
  concurrent(env_int("TOE_E2E_CONC", 1000) / 4, 2, 1024, NULL);
}

TEST(concurrent_connections_small_syncache)
{
  /* more connections than SYN-cache entries: cookies take the overflow */
  concurrent(env_int("TOE_E2E_CONC", 1000) / 4, 1, 32, NULL);
}

TEST(concurrent_connections_lossy_small_syncache)
{
  /* handshakes under loss: SYN and SYN-ACK retransmissions, repeated SYNs answered from the
   * cache, lost third segments completed by cookies carried on data segments */
  struct e2e_faults f = base_link();
  f.loss_ppm = 20000;
  f.dup_ppm = 20000;
  f.reorder_ppm = 100000;
  f.reorder_delay = TOE_MSEC(3);
  f.corrupt_ppm = 5000;
  concurrent(env_int("TOE_E2E_CONC", 1000), 1, 256, &f);
}

TEST_MAIN()
