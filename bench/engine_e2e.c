/*
 * bench_engine_e2e: two engine stacks joined by an in-memory link, one TCP connection, bulk data
 * one way as fast as one thread can push it. Measures the engine alone: no system calls, no
 * kernel, no device driver.
 *
 * One thread runs both stacks, so every figure per core is "both ends on one core": the sender's
 * and the receiver's work added up. The split between the two comes from bench/tcp_instructions.sh
 * (callgrind), which counts the instructions of each side separately.
 *
 * The link: a frame that a stack hands to its tx callback is queued as it is (the pbuf chain, no
 * copy); the main loop then copies it into a fresh buffer of the other stack's pool (what a NIC's
 * DMA would do, done by the CPU here) and passes it to toe_stack_input(). There is no delay, loss
 * or rate limit: frames arrive as soon as the loop gets to them. Frames are delivered in batches
 * (everything queued one way, then everything queued the other way), which is what a polling
 * device sees too.
 *
 * The loop, every iteration: read the clock (real monotonic time, or a virtual clock that advances
 * a fixed step per iteration for repeatable instruction counts), poll both stacks, let the sender
 * application queue data (toe_tcp_send), shuttle frames both ways until the link is empty, let the
 * receiver application read (toe_tcp_recv), shuttle again.
 *
 * Every engine entry point the loop uses goes through a small non-inlined wrapper named after its
 * side (bench_send, bench_input_sender, bench_poll_sender; bench_input_receiver, bench_recv,
 * bench_poll_receiver) so that callgrind can count each side's instructions (--toggle-collect),
 * and bench_dma is the link's copy, which belongs to neither engine.
 *
 * Options: --mib N (default 1024), --segments N (send until N data segments were received after
 * the warm-up; for instruction counts), --warmup N (segments before measuring, default 2000),
 * --mtu N, --cc cubic|newreno, --clock real|virtual, --step-ns N (virtual clock step, default
 * 2000), --pbufs N, --rcvbuf N, --sndbuf N, --chunk N (bytes per send/recv call), --rx-csum-offload
 * (frames arrive marked checksum-verified, as from a NIC that checks them), --tx-csum-offload
 * (the engines leave TCP checksums to the link, TOE_LINK_CAP_TX_CSUM; bench_dma completes them as
 * the NIC would, which is the link's cost, not the engine's), --tso (TOE_LINK_CAP_TSO with the
 * checksum offload: the sender hands over super-segments of up to 64 KiB, which the link delivers
 * whole, as a veth hands a GSO super-frame to its peer; the receiver takes them like toed takes
 * the kernel's), --burst (each round of deliveries to a stack is one receive burst,
 * toe_stack_burst_begin/_end, as a driver hands over its ring: one ACK and output decision per
 * connection per round; bench_burst_end_sender/receiver count the deferred output), --verify
 * (fill and check a byte pattern; slower).
 *
 * Besides throughput it reports how the loop spent the measured part: iterations in which neither
 * application nor the link had anything to do (the engines were waiting for a timer) and the
 * share of engine time they spanned, the receiver's window updates and delayed-ACK timer ACKs, and
 * the timers fired. An idle share above a few percent means a stall, not a slow engine.
 */
#define _GNU_SOURCE /* sched_getcpu, CPU_* */

#include "toe/engine.h"
#include "toe/tcp.h"
#include "wire/checksum.h"

#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__has_include)
#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#define HAVE_CALLGRIND 1
#endif
#endif
#ifndef HAVE_CALLGRIND
#define CALLGRIND_START_INSTRUMENTATION
#define CALLGRIND_STOP_INSTRUMENTATION
#define CALLGRIND_ZERO_STATS
#endif

/* The wrappers must stay functions of exactly these names (callgrind toggles on them): no inlining,
 * and no specialised clones (GCC would name a clone bench_send.constprop.0). */
#if defined(__clang__)
#define NOINLINE __attribute__((noinline, used))
#else
#define NOINLINE __attribute__((noinline, noclone, used))
#endif

#define IP_SENDER 0xc6120001u   /* 198.18.0.1 */
#define IP_RECEIVER 0xc6120002u /* 198.18.0.2 */
#define PORT 5001
#define SENDER 0
#define RECEIVER 1
#define STALL_NS TOE_SEC(10) /* no progress for this long (engine time): give up */

struct opts {
  uint64_t bytes;    /* 0 with segments: until the segment count */
  uint64_t segments; /* measured data segments (0: measure the whole transfer) */
  uint64_t warmup;   /* data segments before the measurement starts */
  unsigned mtu;
  int cc;
  bool virtual_clock;
  uint64_t step_ns;
  unsigned pbufs;
  unsigned rcvbuf, sndbuf;
  size_t chunk;
  bool csum_offload;
  bool tx_csum_offload;
  bool tso;
  bool burst; /* --burst: each delivery round is one receive burst (toe_stack_burst_begin) */
  bool ipv6;  /* --ipv6: the connection runs over IPv6 (2001:db8::1 -> 2001:db8::2) */
  bool verify;
};

struct end {
  struct bench *b;
  int idx;
  struct toe_stack *st;
  struct toe_pbuf *qhead, *qtail; /* frames sent by this end, not yet delivered */
  uint64_t frames;                /* frames delivered from this end */
  uint64_t frame_bytes;
  uint64_t dma_drops; /* the other pool had no buffer for a frame */
};

struct bench {
  struct opts o;
  struct end e[2];
  toe_time_t now;
  toe_time_t epoch_ns;
  struct toe_sock *listener, *cli, *srv;
  int lmark; /* address used as the listener's user pointer */
  bool cli_writable, srv_readable, accept_ready;
  uint64_t total; /* bytes to transfer (UINT64_MAX: until the segment count is reached) */
  uint64_t sent, received;
  bool eof, failed;
  uint8_t *txbuf, *rxbuf;
  uint64_t mismatches;
  uint64_t loops;      /* iterations of run_until */
  uint64_t idle_loops; /* ... in which neither application nor the link had anything to do */
  uint64_t idle_ns;    /* engine time those idle iterations spanned */
};

static uint64_t mono_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t cpu_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- the link ---------------------------------------------------------------------------- */

static void link_tx(void *ctx, struct toe_pbuf *frame)
{
  struct end *e = ctx;
  frame->qnext = NULL;
  if (e->qtail)
    e->qtail->qnext = frame;
  else
    e->qhead = frame;
  e->qtail = frame;
}

static void on_event(void *ctx, struct toe_sock *s, void *user, uint32_t events)
{
  struct end *e = ctx;
  struct bench *b = e->b;
  (void)s;
  if (user == &b->lmark) {
    b->accept_ready = true;
    return;
  }
  if (e->idx == SENDER && (events & (TOE_EV_WRITABLE | TOE_EV_ERROR | TOE_EV_HUP)))
    b->cli_writable = true;
  if (e->idx == RECEIVER && (events & (TOE_EV_READABLE | TOE_EV_ERROR | TOE_EV_HUP)))
    b->srv_readable = true;
}

/* The link's copy: a buffer of the receiving stack's pool, filled from the sent frame. */
static NOINLINE struct toe_pbuf *bench_dma(struct bench *b, struct toe_stack *dst,
                                           const struct toe_pbuf *f)
{
  static uint8_t flat[65536 + 64];
  const void *src = f->data;
  if (f->next) {
    size_t n = toe_pbuf_copy_out(f, 0, flat, sizeof(flat));
    src = flat;
    (void)n;
  }
  /* 2 bytes of headroom align the IP header on 4 bytes, as the engine's own input_copy does. */
  struct toe_pbuf *p = toe_pbuf_from_bytes(dst, src, f->tot_len, 2);
  if (p && (f->flags & TOE_PBUF_F_CSUM_PARTIAL) && f->csum_start + f->csum_offset + 2u <= p->len) {
    /* the NIC's part of checksum offload: sum from csum_start on, store the complement */
    uint16_t c = toe_csum((const uint8_t *)src + f->csum_start, f->tot_len - f->csum_start);
    memcpy(p->data + f->csum_start + f->csum_offset, &c, 2);
  }
  if (p && b->o.csum_offload)
    p->flags |= TOE_PBUF_F_L4_CSUM_OK | TOE_PBUF_F_IP_CSUM_OK;
  return p;
}

static NOINLINE void bench_input_receiver(struct bench *b, struct toe_pbuf *p)
{
  toe_stack_input(b->e[RECEIVER].st, p, b->now);
}

static NOINLINE void bench_input_sender(struct bench *b, struct toe_pbuf *p)
{
  toe_stack_input(b->e[SENDER].st, p, b->now);
}

/* --burst: the output a burst deferred, on the side that received it */
static NOINLINE void bench_burst_end_receiver(struct bench *b)
{
  toe_stack_burst_end(b->e[RECEIVER].st);
}

static NOINLINE void bench_burst_end_sender(struct bench *b)
{
  toe_stack_burst_end(b->e[SENDER].st);
}

/* Delivers every frame queued at end `from` (frames sent meanwhile by `from` wait for the next
 * round). Returns the number delivered. */
static unsigned deliver(struct bench *b, int from)
{
  struct end *e = &b->e[from];
  struct toe_stack *dst = b->e[1 - from].st;
  struct toe_pbuf *q = e->qhead;
  e->qhead = e->qtail = NULL;
  unsigned n = 0;
  bool burst = b->o.burst && q != NULL;
  if (burst)
    toe_stack_burst_begin(dst);
  while (q) {
    struct toe_pbuf *f = q;
    q = q->qnext;
    f->qnext = NULL;
    struct toe_pbuf *p = bench_dma(b, dst, f);
    e->frames++;
    e->frame_bytes += f->tot_len;
    toe_pbuf_free(e->st, f);
    n++;
    if (!p) {
      e->dma_drops++;
      continue;
    }
    if (from == SENDER)
      bench_input_receiver(b, p);
    else
      bench_input_sender(b, p);
  }
  if (burst) {
    if (from == SENDER)
      bench_burst_end_receiver(b);
    else
      bench_burst_end_sender(b);
  }
  return n;
}

static unsigned shuttle(struct bench *b)
{
  unsigned n = 0;
  while (b->e[0].qhead || b->e[1].qhead) {
    n += deliver(b, SENDER);
    n += deliver(b, RECEIVER);
  }
  return n;
}

/* ---- the applications -------------------------------------------------------------------- */

static inline uint8_t pat(uint64_t off)
{
  return (uint8_t)((off * 2654435761u) >> 13);
}

static NOINLINE int bench_send(struct bench *b, size_t len)
{
  return toe_tcp_send(b->e[SENDER].st, b->cli, b->txbuf, len, 0);
}

static NOINLINE int bench_recv(struct bench *b)
{
  return toe_tcp_recv(b->e[RECEIVER].st, b->srv, b->rxbuf, b->o.chunk);
}

static NOINLINE void bench_poll_sender(struct bench *b)
{
  toe_stack_poll(b->e[SENDER].st, b->now);
}

static NOINLINE void bench_poll_receiver(struct bench *b)
{
  toe_stack_poll(b->e[RECEIVER].st, b->now);
}

/* Queues as much as the sender's buffer takes. Returns true if anything was queued. */
static bool app_send(struct bench *b)
{
  bool did = false;
  while (b->sent < b->total) {
    uint64_t left = b->total - b->sent;
    size_t len = left < b->o.chunk ? (size_t)left : b->o.chunk;
    if (b->o.verify)
      for (size_t i = 0; i < len; i++)
        b->txbuf[i] = pat(b->sent + i);
    int n = bench_send(b, len);
    if (n > 0) {
      b->sent += (uint64_t)n;
      did = true;
      continue;
    }
    if (n != -TOE_EAGAIN && n != -TOE_ENOBUFS) {
      fprintf(stderr, "bench: toe_tcp_send: %d (%s)\n", n, toe_strerror(n));
      b->failed = true;
    }
    b->cli_writable = false;
    break;
  }
  return did;
}

static bool app_recv(struct bench *b)
{
  bool did = false;
  for (;;) {
    int n = bench_recv(b);
    if (n > 0) {
      if (b->o.verify)
        for (int i = 0; i < n; i++)
          if (b->rxbuf[i] != pat(b->received + (uint64_t)i))
            b->mismatches++;
      b->received += (uint64_t)n;
      did = true;
      continue;
    }
    if (n == 0) {
      b->eof = true;
    } else if (n != -TOE_EAGAIN) {
      fprintf(stderr, "bench: toe_tcp_recv: %d (%s)\n", n, toe_strerror(n));
      b->failed = true;
    }
    b->srv_readable = false;
    break;
  }
  return did;
}

/* ---- the loop ---------------------------------------------------------------------------- */

static void clock_step(struct bench *b)
{
  if (b->o.virtual_clock)
    b->now += b->o.step_ns;
  else
    b->now = mono_ns();
}

/* One iteration. `force` makes both applications try even without an event (a safety net: a
 * missed event would otherwise stall the benchmark; counted). */
static bool iterate(struct bench *b, bool force)
{
  clock_step(b);
  bench_poll_sender(b);
  bench_poll_receiver(b);
  bool did = false;
  if (b->cli && (b->cli_writable || force))
    did |= app_send(b);
  did |= shuttle(b) > 0;
  if (b->srv && (b->srv_readable || force))
    did |= app_recv(b);
  did |= shuttle(b) > 0;
  return did;
}

static uint64_t rx_segs(const struct bench *b)
{
  return toe_stack_counters(b->e[RECEIVER].st)->tcp.rx_data_segs;
}

static void dump_counters_cb(void *arg, const char *layer, const char *name, uint64_t v)
{
  if (v)
    fprintf(stderr, "    %s.%s %llu\n", layer, name, (unsigned long long)v);
  (void)arg;
}

static void dump_state(struct bench *b, const char *why)
{
  fprintf(stderr, "bench: %s (sent %llu, received %llu)\n", why, (unsigned long long)b->sent,
          (unsigned long long)b->received);
  for (int i = 0; i < 2; i++) {
    struct toe_sock *s = i == SENDER ? b->cli : b->srv;
    struct toe_tcp_info ti;
    if (s && toe_tcp_get_info(b->e[i].st, s, &ti) == 0)
      fprintf(stderr,
              "  %s: %s cwnd %u ssthresh %u snd_wnd %u rcv_wnd %u unacked %u rx_queued %u "
              "tx_queued %u rto %u us\n",
              i == SENDER ? "sender" : "receiver", toe_tcp_state_name(ti.state), ti.snd_cwnd,
              ti.snd_ssthresh, ti.snd_wnd, ti.rcv_wnd, ti.unacked, ti.rx_queued, ti.tx_queued,
              ti.rto_us);
    fprintf(stderr, "  %s counters:\n", i == SENDER ? "sender" : "receiver");
    toe_counters_visit(toe_stack_counters(b->e[i].st), dump_counters_cb, NULL);
  }
}

/* Runs iterations until cond() or a stall (no progress for STALL_NS of engine time, nor for
 * 100 forced tries). */
static bool run_until(struct bench *b, bool (*cond)(struct bench *), const char *what)
{
  toe_time_t last_progress = b->now;
  uint64_t last_rx = b->received, last_tx = b->sent;
  while (!cond(b)) {
    toe_time_t t = b->now;
    bool did = iterate(b, false);
    if (!did)
      did = iterate(b, true);
    b->loops++;
    if (!did) {
      b->idle_loops++;
      b->idle_ns += b->now - t;
    }
    if (b->failed) {
      dump_state(b, "failed");
      return false;
    }
    if (b->received != last_rx || b->sent != last_tx || did) {
      last_rx = b->received;
      last_tx = b->sent;
      last_progress = b->now;
    } else if (b->now - last_progress > STALL_NS) {
      char msg[128];
      snprintf(msg, sizeof(msg), "stalled while %s", what);
      dump_state(b, msg);
      return false;
    }
  }
  return true;
}

static bool cond_connected(struct bench *b)
{
  if (b->accept_ready && !b->srv) {
    struct toe_sock *s = NULL;
    if (toe_tcp_accept(b->e[RECEIVER].st, b->listener, NULL, &s) == 0) {
      b->srv = s;
      b->srv_readable = true;
    }
    b->accept_ready = false;
  }
  struct toe_tcp_info ti;
  return b->srv && toe_tcp_get_info(b->e[SENDER].st, b->cli, &ti) == 0 &&
         ti.state == TOE_TCP_ESTABLISHED;
}

static uint64_t warm_target, measure_target;
static bool cond_warm(struct bench *b)
{
  return rx_segs(b) >= warm_target || b->received >= b->total;
}
static bool cond_measured(struct bench *b)
{
  return (measure_target && rx_segs(b) >= measure_target) || b->received >= b->total;
}
static bool cond_eof(struct bench *b)
{
  return b->eof;
}

/* ---- set-up and report ------------------------------------------------------------------- */

static void make_stack(struct bench *b, int i)
{
  struct end *e = &b->e[i];
  struct toe_config c;
  toe_config_defaults(&c);
  c.mac.b[0] = 0x02;
  c.mac.b[5] = (uint8_t)(i + 1);
  c.addr = i == SENDER ? IP_SENDER : IP_RECEIVER;
  c.prefix_len = 24;
  c.mtu = (uint16_t)b->o.mtu;
  if (b->o.pbufs)
    c.pbuf_count = b->o.pbufs;
  if (b->o.mtu > 1500 && c.pbuf_size < b->o.mtu + 64u + TOE_PBUF_HEADROOM)
    c.pbuf_size = (uint16_t)(b->o.mtu + 64u + TOE_PBUF_HEADROOM);
  if (b->o.rcvbuf)
    c.tcp_rcvbuf = b->o.rcvbuf;
  if (b->o.sndbuf)
    c.tcp_sndbuf = b->o.sndbuf;
  c.tcp_cc = (uint8_t)b->o.cc;
  if (b->o.csum_offload)
    c.link_caps |= TOE_LINK_CAP_RX_CSUM;
  if (b->o.tx_csum_offload)
    c.link_caps |= TOE_LINK_CAP_TX_CSUM;
  if (b->o.tso)
    c.link_caps |= TOE_LINK_CAP_TX_CSUM | TOE_LINK_CAP_TSO;
  if (b->o.ipv6) {
    /* 2001:db8::1 (sender), ::2 (receiver); DAD off so the addresses are usable at once */
    static const uint8_t a6[16] = {0x20, 0x01, 0x0d, 0xb8};
    c.ipv6 = 1;
    c.addr6_count = 1;
    memcpy(c.addr6[0], a6, 16);
    c.addr6[0][15] = (uint8_t)(i == SENDER ? 1 : 2);
    c.addr6_prefix_len[0] = 64;
    c.dad_transmits = 0;
  }
  c.random_seed = 77 + (uint64_t)i;
  for (int k = 0; k < 16; k++)
    c.secret[k] = (uint8_t)(k * 29 + i * 7 + 1);
  c.tx = link_tx;
  c.sock_event = on_event;
  c.ctx = e;
  e->b = b;
  e->idx = i;
  int rc = toe_stack_new(&c, &e->st);
  if (rc != 0) {
    fprintf(stderr, "bench: toe_stack_new: %d (%s)\n", rc, toe_strerror(rc));
    exit(1);
  }
  toe_stack_start(e->st, b->now);
}

static void usage(void)
{
  fputs("usage: bench_engine_e2e [--mib N | --segments N] [--warmup N] [--mtu N]\n"
        "         [--cc cubic|newreno] [--clock real|virtual] [--step-ns N] [--pbufs N]\n"
        "         [--rcvbuf N] [--sndbuf N] [--chunk N] [--rx-csum-offload] [--tx-csum-offload] "
        "[--tso]\n         [--burst] [--verify] [--ipv6]\n",
        stderr);
  exit(2);
}

static void parse(int argc, char **argv, struct opts *o)
{
  memset(o, 0, sizeof(*o));
  o->bytes = 1024ull << 20;
  o->warmup = 2000;
  o->mtu = 1500;
  o->cc = TOE_CC_CUBIC;
  o->step_ns = 2000;
  o->pbufs = 8192;
  o->chunk = 64 * 1024;
  for (int i = 1; i < argc; i++) {
    const char *k = argv[i];
    if (!strcmp(k, "--rx-csum-offload")) {
      o->csum_offload = true;
      continue;
    }
    if (!strcmp(k, "--tx-csum-offload")) {
      o->tx_csum_offload = true;
      continue;
    }
    if (!strcmp(k, "--tso")) {
      o->tso = true;
      continue;
    }
    if (!strcmp(k, "--burst")) {
      o->burst = true;
      continue;
    }
    if (!strcmp(k, "--ipv6")) {
      o->ipv6 = true;
      continue;
    }
    if (!strcmp(k, "--verify")) {
      o->verify = true;
      continue;
    }
    if (i + 1 >= argc)
      usage();
    const char *v = argv[++i];
    unsigned long long n = strtoull(v, NULL, 0);
    if (!strcmp(k, "--mib"))
      o->bytes = n << 20;
    else if (!strcmp(k, "--segments"))
      o->segments = n;
    else if (!strcmp(k, "--warmup"))
      o->warmup = n;
    else if (!strcmp(k, "--mtu"))
      o->mtu = (unsigned)n;
    else if (!strcmp(k, "--cc"))
      o->cc = !strcmp(v, "newreno") ? TOE_CC_NEWRENO : !strcmp(v, "cubic") ? TOE_CC_CUBIC : -1;
    else if (!strcmp(k, "--clock"))
      o->virtual_clock = !strcmp(v, "virtual");
    else if (!strcmp(k, "--step-ns"))
      o->step_ns = n;
    else if (!strcmp(k, "--pbufs"))
      o->pbufs = (unsigned)n;
    else if (!strcmp(k, "--rcvbuf"))
      o->rcvbuf = (unsigned)n;
    else if (!strcmp(k, "--sndbuf"))
      o->sndbuf = (unsigned)n;
    else if (!strcmp(k, "--chunk"))
      o->chunk = (size_t)n;
    else
      usage();
  }
  if (o->cc < 0 || o->mtu < 576 || o->mtu > 9000 || o->chunk == 0 || o->chunk > (1u << 24) ||
      (o->bytes == 0 && o->segments == 0))
    usage();
}

static const char *cpu_placement(char *buf, size_t len)
{
  cpu_set_t set;
  CPU_ZERO(&set);
  int pos = snprintf(buf, len, "running on CPU %d, allowed:", sched_getcpu());
  if (sched_getaffinity(0, sizeof(set), &set) == 0)
    for (int c = 0; c < CPU_SETSIZE && pos < (int)len - 8; c++)
      if (CPU_ISSET(c, &set))
        pos += snprintf(buf + pos, len - (size_t)pos, " %d", c);
  return buf;
}

int main(int argc, char **argv)
{
  static struct bench bench;
  struct bench *b = &bench;
  parse(argc, argv, &b->o);
  b->txbuf = malloc(b->o.chunk);
  b->rxbuf = malloc(b->o.chunk);
  if (!b->txbuf || !b->rxbuf)
    return 1;
  memset(b->txbuf, 'x', b->o.chunk);
  b->total = b->o.segments ? UINT64_MAX : b->o.bytes;
  b->epoch_ns = b->o.virtual_clock ? TOE_SEC(1) : mono_ns();
  b->now = b->epoch_ns;
  make_stack(b, SENDER);
  make_stack(b, RECEIVER);
  shuttle(b); /* the announcements */

  /* The connection. */
  struct toe_stack *rs = b->e[RECEIVER].st, *ss = b->e[SENDER].st;
  struct toe_sockaddr la = {.family = TOE_AF_INET, .port = PORT, .addr = 0};
  struct toe_sockaddr ra = {.family = TOE_AF_INET, .port = PORT, .addr = IP_RECEIVER};
  if (b->o.ipv6) {
    /* the listener on [::] (dual stack), the client to the receiver's IPv6 address */
    static const uint8_t r6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
    la.family = ra.family = TOE_AF_INET6;
    memset(la.addr6, 0, 16);
    memcpy(ra.addr6, r6, 16);
  }
  int rc = toe_tcp_open(rs, &b->lmark, &b->listener);
  if (rc == 0)
    rc = toe_sock_bind(rs, b->listener, &la);
  if (rc == 0)
    rc = toe_tcp_listen(rs, b->listener, 4);
  if (rc != 0) {
    fprintf(stderr, "bench: listen: %d (%s)\n", rc, toe_strerror(rc));
    return 1;
  }
  rc = toe_tcp_open(ss, NULL, &b->cli);
  if (rc == 0)
    rc = toe_sock_connect(ss, b->cli, &ra);
  if (rc != 0 && rc != -TOE_EINPROGRESS) {
    fprintf(stderr, "bench: connect: %d (%s)\n", rc, toe_strerror(rc));
    return 1;
  }
  if (!run_until(b, cond_connected, "connecting"))
    return 1;
  b->cli_writable = true;

  /* Warm-up (slow start, receive-buffer growth), then the measured part. */
  uint64_t measure_segs = b->o.segments;
  warm_target = b->o.warmup;
  if (!run_until(b, cond_warm, "warming up"))
    return 1;

  const struct toe_counters *cs = toe_stack_counters(ss), *cr = toe_stack_counters(rs);
  struct toe_counters s0 = *cs, r0 = *cr;
  uint64_t rx0 = b->received, fr0[2] = {b->e[0].frames, b->e[1].frames};
  uint64_t loops0 = b->loops, idle0 = b->idle_loops, idle_ns0 = b->idle_ns;
  toe_time_t eng0 = b->now;
  measure_target = measure_segs ? rx_segs(b) + measure_segs : 0;
  uint64_t t0 = mono_ns(), c0 = cpu_ns();
  CALLGRIND_ZERO_STATS;
  CALLGRIND_START_INSTRUMENTATION;
  bool ok = run_until(b, cond_measured, "transferring");
  CALLGRIND_STOP_INSTRUMENTATION;
  uint64_t t1 = mono_ns(), c1 = cpu_ns();
  struct toe_counters s1 = *cs, r1 = *cr;
  uint64_t loops = b->loops - loops0, idle = b->idle_loops - idle0, idle_ns = b->idle_ns - idle_ns0;
  toe_time_t eng_ns = b->now - eng0;
  uint64_t bytes = b->received - rx0;
  if (!ok)
    return 1;

  /* Finish: the sender closes, the receiver reads to EOF; both close. */
  b->total = b->sent;
  if (toe_tcp_shutdown(ss, b->cli, TOE_SHUT_WR) != 0)
    fprintf(stderr, "bench: shutdown failed\n");
  if (!run_until(b, cond_eof, "closing"))
    fprintf(stderr, "bench: no EOF at the receiver\n");
  toe_sock_close(rs, b->srv);
  toe_sock_close(ss, b->cli);
  toe_sock_close(rs, b->listener);
  b->srv = b->cli = NULL;
  for (int i = 0; i < 100; i++)
    iterate(b, false);

  /* Report. */
  double wall = (double)(t1 - t0) * 1e-9, cpu = (double)(c1 - c0) * 1e-9;
  uint64_t dsegs = r1.tcp.rx_data_segs - r0.tcp.rx_data_segs;
  uint64_t acks = b->e[RECEIVER].frames - fr0[1];
  uint64_t frames_s = b->e[SENDER].frames - fr0[0];
  uint64_t retrans = s1.tcp.retrans_segs - s0.tcp.retrans_segs;
  struct toe_tcp_info ti;
  memset(&ti, 0, sizeof(ti));
  char where[256];
  printf("bench_engine_e2e: %s one way over an in-memory link, MTU %u, cc %s, clock %s%s, "
         "checksums %s%s%s, %s\n",
         b->o.segments ? "N segments" : "bulk", b->o.mtu,
         b->o.cc == TOE_CC_NEWRENO ? "newreno" : "cubic", b->o.virtual_clock ? "virtual" : "real",
         b->o.virtual_clock ? "" : " (CLOCK_MONOTONIC)",
         b->o.csum_offload ? "verified by the link (offload)" : "verified in software",
         b->o.tx_csum_offload || b->o.tso ? ", computed by the link (offload)" : "",
         b->o.tso ? ", TSO (super-segments of up to 64 KiB, delivered whole)" : "",
         b->o.ipv6 ? "IPv6 (2001:db8::1 -> 2001:db8::2)" : "IPv4");
  printf("placement: one thread runs both stacks and the link (both ends on one core); %s\n",
         cpu_placement(where, sizeof(where)));
  printf("polling: busy loop, no sleeping, no system calls on the data path\n\n");
  printf("| figure | value |\n|---|---|\n");
  printf("| payload bytes measured | %llu (%.1f MiB) |\n", (unsigned long long)bytes,
         (double)bytes / (1 << 20));
  printf("| wall time | %.3f s |\n", wall);
  printf("| CPU time (process) | %.3f s |\n", cpu);
  printf("| throughput (wall) | %.3f Gbit/s |\n", wall > 0 ? (double)bytes * 8 / wall / 1e9 : 0);
  printf("| per core, both ends on one core | %.3f Gbit/s |\n",
         cpu > 0 ? (double)bytes * 8 / cpu / 1e9 : 0);
  printf("| data segments received | %llu (avg %.0f payload bytes) |\n", (unsigned long long)dsegs,
         dsegs ? (double)bytes / (double)dsegs : 0);
  printf("| data segments/s (wall) | %.0f |\n", wall > 0 ? (double)dsegs / wall : 0);
  printf("| frames sender->receiver / receiver->sender | %llu / %llu (%.2f ACKs per data "
         "segment) |\n",
         (unsigned long long)frames_s, (unsigned long long)acks,
         dsegs ? (double)acks / (double)dsegs : 0);
  printf("| retransmitted segments | %llu |\n", (unsigned long long)retrans);
  printf("| loop iterations / idle (nothing to do) | %llu / %llu (%.1f %% of engine time idle) |\n",
         (unsigned long long)loops, (unsigned long long)idle,
         eng_ns ? 100.0 * (double)idle_ns / (double)eng_ns : 0);
  printf("| receiver: frames to the sender / of them window updates / delayed-ACK timer ACKs | "
         "%llu / %llu / %llu |\n",
         (unsigned long long)acks,
         (unsigned long long)(r1.tcp.out_win_updates - r0.tcp.out_win_updates),
         (unsigned long long)(r1.tcp.out_acks_delayed - r0.tcp.out_acks_delayed));
  printf("| timers fired (sender / receiver) | %llu / %llu |\n",
         (unsigned long long)(s1.timer.fired - s0.timer.fired),
         (unsigned long long)(r1.timer.fired - r0.timer.fired));
  printf("| pbuf pool, per stack | %u x %u bytes |\n", toe_stack_config(ss)->pbuf_count,
         toe_stack_config(ss)->pbuf_size);
  printf("| pbufs in use, high-water (sender / receiver) | %llu / %llu |\n",
         (unsigned long long)cs->pbuf.inuse_max, (unsigned long long)cr->pbuf.inuse_max);
  printf("| pbuf allocations per data segment (sender / receiver) | %.2f / %.2f |\n",
         dsegs ? (double)(s1.pbuf.allocs - s0.pbuf.allocs) / (double)dsegs : 0,
         dsegs ? (double)(r1.pbuf.allocs - r0.pbuf.allocs) / (double)dsegs : 0);
  printf("| pbuf allocation failures (sender / receiver), link drops | %llu / %llu, %llu |\n",
         (unsigned long long)(s1.pbuf.alloc_failures - s0.pbuf.alloc_failures),
         (unsigned long long)(r1.pbuf.alloc_failures - r0.pbuf.alloc_failures),
         (unsigned long long)(b->e[0].dma_drops + b->e[1].dma_drops));
  printf("| pbufs in use after close (sender / receiver) | %llu / %llu |\n",
         (unsigned long long)cs->pbuf.inuse, (unsigned long long)cr->pbuf.inuse);
  if (b->o.verify)
    printf("| pattern mismatches | %llu |\n", (unsigned long long)b->mismatches);
  /* Machine-readable lines for the scripts. */
  printf("\nkv bytes %llu\nkv wall_s %.6f\nkv cpu_s %.6f\nkv data_segments %llu\n"
         "kv acks %llu\nkv retrans %llu\nkv gbps_wall %.4f\nkv gbps_cpu %.4f\n"
         "kv loops %llu\nkv idle_loops %llu\nkv idle_ns %llu\nkv engine_ns %llu\n",
         (unsigned long long)bytes, wall, cpu, (unsigned long long)dsegs, (unsigned long long)acks,
         (unsigned long long)retrans, wall > 0 ? (double)bytes * 8 / wall / 1e9 : 0,
         cpu > 0 ? (double)bytes * 8 / cpu / 1e9 : 0, (unsigned long long)loops,
         (unsigned long long)idle, (unsigned long long)idle_ns, (unsigned long long)eng_ns);
  toe_stack_free(ss);
  toe_stack_free(rs);
  free(b->txbuf);
  free(b->rxbuf);
  return b->mismatches ? 1 : 0;
}
