/*
 * Whole-engine fuzz target: a stack with small pools, three UDP sockets and a known neighbour on a
 * virtual clock, fed a sequence of frames.
 *
 * Input: a sequence of records
 *   u16 len (big endian) | u8 t | len bytes of Ethernet frame
 * Each frame is handed to toe_stack_input_copy(), then the clock advances by t (t < 200: t ms;
 * otherwise (t - 199) * 5 s, up to 4 min 40 s) and the stack is polled. A record with len 0 carries
 * no frame: it is a socket operation chosen by t (connect, disconnect, reopen, large and broadcast
 * sends, a timer-only step). After every record the sockets are drained; two of them echo what they
 * receive, so replies go out through ARP resolution, the gateway and fragmentation.
 * At the end every socket is closed, the clock runs past every timeout, and the target aborts if
 * a packet buffer was not returned to the pool (a leak), a charge was left (buffer accounting) or
 * a gauge did not come back to zero; after every record, if the sockets hold the control reserve.
 *
 * IPv6 is on (2001:db8::1/64 and the link-local address), so the frames reach ND, ICMPv6 and the
 * extension-header walk too, and UDP and TCP over IPv6: socket 0 is a dual-stack IPv6 socket on
 * [::]:7 that echoes IPv6 datagrams and IPv4 ones (v4-mapped), TCP over IPv6 draws RSTs.
 * The seed corpus (fuzz/corpus/fuzz_engine/) comes from fuzz/corpus/make_engine_corpus.py.
 */
#include "fz_stack.h"
#include "toe/engine.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GW_IP 0xc61200feu    /* 198.18.0.254 */
#define FAR_IP 0xc6130001u   /* 198.19.0.1, off-link: via the gateway */
#define BCAST_IP 0xc61200ffu /* 198.18.0.255 */
#define NSOCK 3
#define PBUFS 64
/* fuzz_pool_engine.c builds this file with FUZZ_POOL_BOUND 1: queues longer than the pool
 * (receive queues, reassembly, ARP) and two sockets that never read (the second and the third),
 * so the pool's own limits are what the input meets: each socket's buffer allowance, and with
 * two sockets full the pool's pressure rule. */
#ifndef FUZZ_POOL_BOUND
#define FUZZ_POOL_BOUND 0
#endif

struct fz {
  struct toe_stack *st;
  struct toe_sock *s[NSOCK];
  toe_time_t now;
  uint64_t events;
};

static void fz_tx(void *ctx, struct toe_pbuf *frame)
{
  struct fz *f = ctx;
  toe_pbuf_free(f->st, frame);
}

static void fz_event(void *ctx, struct toe_sock *s, void *user, uint32_t events)
{
  struct fz *f = ctx;
  (void)s;
  (void)user;
  f->events += events;
}

static struct toe_sockaddr addr(uint32_t a, uint16_t port)
{
  struct toe_sockaddr sa = {.family = TOE_AF_INET, .port = port, .addr = a};
  return sa;
}

/* IPv4 address `a` as a v4-mapped IPv6 one (::ffff:a), for the dual-stack socket 0. */
static struct toe_sockaddr mapped(uint32_t a, uint16_t port)
{
  struct toe_sockaddr sa;
  memset(&sa, 0, sizeof(sa));
  sa.family = TOE_AF_INET6;
  sa.port = port;
  sa.addr6[10] = sa.addr6[11] = 0xff;
  sa.addr6[12] = (uint8_t)(a >> 24);
  sa.addr6[13] = (uint8_t)(a >> 16);
  sa.addr6[14] = (uint8_t)(a >> 8);
  sa.addr6[15] = (uint8_t)a;
  return sa;
}

/* Opens socket `i` and binds it to its usual place. */
static void fz_open(struct fz *f, int i)
{
  struct toe_sock *s = NULL;
  if (toe_udp_open(f->st, f, &s) != 0) {
    f->s[i] = NULL;
    return;
  }
  struct toe_sockaddr l;
  switch (i) {
  case 0:
    /* echo on a dual-stack [::]:7: IPv6 datagrams, and IPv4 ones (broadcasts too) under
     * v4-mapped names */
    l = mapped(0, 7);
    memset(l.addr6, 0, sizeof(l.addr6));
    break;
  case 1:
    l = addr(FZ_OUR_IP, 9); /* zero-copy echo, bound to our address */
    break;
  default:
    l = addr(0, 5000); /* connected to the peer */
    break;
  }
  if (toe_sock_bind(f->st, s, &l) != 0) {
    l.port = 0;
    (void)toe_sock_bind(f->st, s, &l);
  }
  if (i == 2) {
    struct toe_sockaddr r = addr(FZ_PEER_IP, 6000);
    (void)toe_sock_connect(f->st, s, &r);
  }
  f->s[i] = s;
}

static void fz_drain(struct fz *f)
{
  static uint8_t buf[4096];
  for (int i = 0; i < NSOCK; i++) {
    struct toe_sock *s = f->s[i];
    if (s == NULL)
      continue;
    for (int k = 0; k < 8; k++) {
      struct toe_sockaddr from;
      if (i == 0) {
        int n = toe_udp_recvfrom(f->st, s, buf, sizeof(buf), &from);
        if (n < 0)
          break;
        if (n > (int)sizeof(buf))
          n = (int)sizeof(buf);
        (void)toe_udp_sendto(f->st, s, buf, (size_t)n, &from);
      } else if (FUZZ_POOL_BOUND) {
        break; /* sockets 1 and 2 never read */
      } else if (i == 1) {
        struct toe_pbuf *pb = toe_udp_recv_pbuf(f->st, s, &from);
        if (pb == NULL)
          break;
        /* usually refused for lack of headroom; consumed either way */
        (void)toe_udp_send_pbuf(f->st, s, pb, &from);
      } else {
        if (toe_udp_recvfrom(f->st, s, buf, 4, &from) < 0)
          break;
      }
    }
    (void)toe_udp_rx_pending(s, NULL);
    (void)toe_sock_error(f->st, s);
  }
}

static void fz_op(struct fz *f, uint8_t t)
{
  static uint8_t big[4000];
  struct toe_sockaddr d;
  switch (t % 8) {
  case 0:
    if (f->s[2]) {
      d = addr(FZ_PEER_IP, (uint16_t)(6000 + t));
      (void)toe_sock_connect(f->st, f->s[2], &d);
    }
    break;
  case 1:
    if (f->s[2]) {
      memset(&d, 0, sizeof(d));
      (void)toe_sock_connect(f->st, f->s[2], &d);
    }
    break;
  case 2:
    if (f->s[1])
      toe_sock_close(f->st, f->s[1]);
    fz_open(f, 1);
    break;
  case 3:
    if (f->s[0]) {
      d = mapped(FZ_PEER_IP, 7);
      (void)toe_udp_sendto(f->st, f->s[0], big, sizeof(big), &d);
    }
    break;
  case 4:
    if (f->s[0]) {
      d = mapped(BCAST_IP, 7);
      (void)toe_udp_sendto(f->st, f->s[0], "bcast", 5, &d);
    }
    break;
  case 5:
    if (f->s[2])
      (void)toe_udp_sendto(f->st, f->s[2], big, 100, NULL);
    break;
  case 6:
    if (f->s[0]) {
      d = mapped(FAR_IP, 7);
      (void)toe_udp_sendto(f->st, f->s[0], big, 1000, &d);
    }
    break;
  default:
    f->now += TOE_SEC(1);
    toe_stack_poll(f->st, f->now);
    break;
  }
}

static toe_time_t advance(uint8_t t)
{
  if (t < 200)
    return TOE_MSEC(t);
  return TOE_SEC((toe_time_t)(t - 199) * 5);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct fz f;
  memset(&f, 0, sizeof(f));
  struct toe_config cfg;
  fz_config(&cfg, PBUFS, fz_tx, fz_event, &f);
  cfg.gateway = GW_IP;
  cfg.arp_queue_len = 4;
  cfg.reass_slots = 4;
  cfg.reass_max_bufs = 16;
  cfg.udp_socks = 4;
  cfg.udp_rcvq_len = 4;
  cfg.tcp_socks = 4;
  cfg.tcp_syncache = 4;
  cfg.tcp_timewait = 4;
  cfg.tcp_max_backlog = 2;
#if FUZZ_POOL_BOUND
  cfg.udp_rcvq_len = 256;
  cfg.reass_slots = 8;
  cfg.reass_max_bufs = 256;
  cfg.arp_queue_len = 64;
#endif
  /* IPv6 on, so frames of any ethertype reach its input too (2001:db8::1/64, and the link-local
   * address fe80::ff:fe00:1). A small neighbour table meets its reclaim rule. */
  static const uint8_t our6[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 1};
  cfg.ipv6 = 1;
  cfg.addr6_count = 1;
  memcpy(cfg.addr6[0], our6, 16);
  cfg.addr6_prefix_len[0] = 64;
  cfg.nd_entries = 4;
  cfg.icmp_rate_per_sec = 1000;
  cfg.icmp_burst = 50;
  f.now = TOE_SEC(1);
  fz_stack_start(&cfg, f.now, &f.st);
  fz_learn_peer(f.st, f.now, 0);
  for (int i = 0; i < NSOCK; i++)
    fz_open(&f, i);

  while (size >= 3) {
    size_t len = (size_t)data[0] << 8 | data[1];
    uint8_t t = data[2];
    data += 3;
    size -= 3;
    if (len == 0) {
      fz_op(&f, t);
    } else {
      if (len > size)
        len = size;
      (void)toe_stack_input_copy(f.st, data, len, f.now);
      data += len;
      size -= len;
      f.now += advance(t);
      toe_stack_poll(f.st, f.now);
    }
    fz_drain(&f);
    /* Buffer accounting (docs/transport.md): socket queues never hold the control reserve. With
     * 64 buffers (reserve 16, 16 per socket) every record can reach the pool's limits. */
    if (toe_pbuf_pool_charged(f.st) + toe_pbuf_pool_reserve(f.st) > PBUFS) {
      fprintf(stderr, "fuzz_engine: %u buffers charged to sockets, reserve %u of %u\n",
              toe_pbuf_pool_charged(f.st), toe_pbuf_pool_reserve(f.st), PBUFS);
      abort();
    }
  }

  /* tear down: close everything, then let every timer (ARP, reassembly, ...) run out */
  for (int i = 0; i < NSOCK; i++)
    if (f.s[i])
      toe_sock_close(f.st, f.s[i]);
  fz_run_out(f.st, &f.now, 200);
  const struct toe_counters *c = toe_stack_counters(f.st);
  fz_pool_stats(FUZZ_POOL_BOUND ? "fuzz_pool_engine" : "fuzz_engine", f.st, PBUFS);
  uint32_t free_bufs = toe_pbuf_pool_free_count(f.st);
  if (free_bufs != PBUFS || c->pbuf.inuse != 0 || toe_pbuf_pool_charged(f.st) != 0 ||
      c->udp.socks_inuse != 0 || c->ip.reass_inuse != 0 || c->ip6.reass_inuse != 0 ||
      c->nd.entries_inuse > cfg.nd_entries) {
    fprintf(stderr,
            "fuzz_engine: leak: %u of %u buffers free, inuse %llu, socks %llu, reass %llu\n",
            free_bufs, PBUFS, (unsigned long long)c->pbuf.inuse,
            (unsigned long long)c->udp.socks_inuse, (unsigned long long)c->ip.reass_inuse);
    abort();
  }
  toe_stack_free(f.st);
  return 0;
}
