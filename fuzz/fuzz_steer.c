/*
 * Steering and the host interface's send check: toe_steer_frame() (src/engine/steer.c) on every
 * received frame, and toed_host_if_may_send() (src/device/host_if.c, the check of a frame the OS
 * sends on the TAP) on the same bytes and on every frame the engine sends, against an engine with
 * steering on whose filter table follows its sockets: a UDP socket bound to port 7000, one
 * connected to the peer, a TCP listener on port 80 (whose accepted connections add exact
 * filters) and a TCP connection to the peer.
 *
 * Input: u8 cfg (bit 0: echo requests are the OS's; bit 1: the port is VLAN 5; bit 2: steering
 * off), then records: u16 len (big endian) | u8 t | len bytes of Ethernet frame. Each frame is
 * steered; if the verdict includes the engine it is handed to it; then the clock advances by t ms
 * and the listener's backlog is accepted. Every frame is also checked as if the OS sent it.
 * Checked: a verdict is ENGINE, HOST or BOTH, and ENGINE alone when steering is off; the steering
 * counters add up to the verdicts given; an OS frame refused as an owned flow names a filter; at
 * the end everything closes and every buffer is back in the pool.
 */
#include "device/host_if.h"
#include "fz_stack.h"
#include "toe/engine.h"
#include "toe/steer.h"
#include "toe/tcp.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PBUFS 64
#define NACC 4

static struct toed_host_if hif; /* 64 KiB of frame buffer: not on the stack */

struct fz {
  struct toe_stack *st;
  struct toe_sock *udp_any, *udp_conn, *lsn, *conn, *acc[NACC];
  toe_time_t now;
};

static void fz_tx(void *ctx, struct toe_pbuf *frame)
{
  struct fz *f = ctx;
  static uint8_t b[65600];
  uint32_t n = frame->tot_len < sizeof b ? frame->tot_len : (uint32_t)sizeof b;
  toe_pbuf_copy_out(frame, 0, b, n);
  toe_pbuf_free(f->st, frame);
  /* The engine's own frames, as if the OS had sent them: realistic headers from the shared
   * address, most of them of flows the engine owns. */
  (void)toed_host_if_may_send(&hif, f->st, FZ_OUR_IP, b, n);
}

static void fz_event(void *ctx, struct toe_sock *s, void *user, uint32_t events)
{
  (void)ctx;
  (void)s;
  (void)user;
  (void)events;
}

static void open_socks(struct fz *f)
{
  struct toe_sockaddr any7000 = {.family = TOE_AF_INET, .port = 7000, .addr = 0},
                      l5353 = {.family = TOE_AF_INET, .port = 5353, .addr = 0};
  struct toe_sockaddr peer53 = {.family = TOE_AF_INET, .port = 53, .addr = FZ_PEER_IP},
                      l80 = {.family = TOE_AF_INET, .port = 80, .addr = 0};
  struct toe_sockaddr peer8080 = {.family = TOE_AF_INET, .port = 8080, .addr = FZ_PEER_IP};
  if (toe_udp_open(f->st, f, &f->udp_any) == 0)
    (void)toe_sock_bind(f->st, f->udp_any, &any7000);
  if (toe_udp_open(f->st, f, &f->udp_conn) == 0) {
    (void)toe_sock_bind(f->st, f->udp_conn, &l5353);
    (void)toe_sock_connect(f->st, f->udp_conn, &peer53);
  }
  if (toe_tcp_open(f->st, f, &f->lsn) == 0) {
    (void)toe_sock_bind(f->st, f->lsn, &l80);
    (void)toe_tcp_listen(f->st, f->lsn, 2);
  }
  if (toe_tcp_open(f->st, f, &f->conn) == 0)
    (void)toe_sock_connect(f->st, f->conn, &peer8080);
}

static uint64_t steer_total(const struct toe_counters_steer *c)
{
  return c->to_engine + c->to_host + c->to_both;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 1)
    return 0;
  uint8_t mode = data[0];
  data++;
  size--;
  struct fz f;
  memset(&f, 0, sizeof f);
  memset(&hif, 0, sizeof hif);
  hif.fd = -1;
  struct toe_config cfg;
  fz_config(&cfg, PBUFS, fz_tx, fz_event, &f);
  cfg.udp_socks = 4;
  cfg.tcp_socks = 8;
  cfg.tcp_syncache = 4;
  cfg.tcp_timewait = 4;
  cfg.tcp_max_backlog = 2;
  cfg.reass_slots = 2;
  cfg.steering = (mode & 4) ? 0 : 1;
  cfg.icmp_echo_host = mode & 1;
  cfg.vlan_id = (mode & 2) ? 5 : 0;
  f.now = TOE_SEC(1);
  fz_stack_start(&cfg, f.now, &f.st);
  fz_learn_peer(f.st, f.now, cfg.vlan_id);
  open_socks(&f);

  const struct toe_counters *ctr = toe_stack_counters(f.st);
  uint64_t verdicts = steer_total(&ctr->steer);
  while (size >= 3) {
    size_t len = (size_t)data[0] << 8 | data[1];
    uint8_t t = data[2];
    data += 3;
    size -= 3;
    if (len > size)
      len = size;
    unsigned v = toe_steer_frame(f.st, len ? data : NULL, len);
    if (v != TOE_STEER_ENGINE && v != TOE_STEER_HOST && v != TOE_STEER_BOTH) {
      fprintf(stderr, "fuzz_steer: verdict %u\n", v);
      abort();
    }
    if (!cfg.steering && v != TOE_STEER_ENGINE) {
      fprintf(stderr, "fuzz_steer: verdict %u with steering off\n", v);
      abort();
    }
    if (cfg.steering && steer_total(&ctr->steer) != ++verdicts) {
      fprintf(stderr, "fuzz_steer: %llu verdicts counted, %llu given\n",
              (unsigned long long)steer_total(&ctr->steer), (unsigned long long)verdicts);
      abort();
    }
    uint64_t drops = hif.stats.drop_owned_flow;
    (void)toed_host_if_may_send(&hif, f.st, FZ_OUR_IP, data, len);
    if (hif.stats.drop_owned_flow != drops && toe_filter_count(f.st) == 0) {
      fprintf(stderr, "fuzz_steer: an OS frame refused as an owned flow with no filter\n");
      abort();
    }
    if ((v & TOE_STEER_ENGINE) && len)
      (void)toe_stack_input_copy(f.st, data, len, f.now);
    data += len;
    size -= len;
    f.now += TOE_MSEC(t);
    toe_stack_poll(f.st, f.now);
    for (int i = 0; i < NACC; i++)
      if (!f.acc[i] && f.lsn)
        (void)toe_tcp_accept(f.st, f.lsn, &f, &f.acc[i]);
  }

  if (f.udp_any)
    toe_sock_close(f.st, f.udp_any);
  if (f.udp_conn)
    toe_sock_close(f.st, f.udp_conn);
  struct toe_sock *tcp[] = {f.lsn, f.conn, f.acc[0], f.acc[1], f.acc[2], f.acc[3]};
  for (size_t i = 0; i < sizeof tcp / sizeof tcp[0]; i++)
    if (tcp[i])
      toe_tcp_abort(f.st, tcp[i]);
  fz_run_out(f.st, &f.now, 200);
  if (toe_pbuf_pool_free_count(f.st) != PBUFS || toe_filter_count(f.st) != 0) {
    fprintf(stderr, "fuzz_steer: %u of %u buffers free, %u filters left\n",
            toe_pbuf_pool_free_count(f.st), PBUFS, toe_filter_count(f.st));
    abort();
  }
  toe_stack_free(f.st);
  return 0;
}
