/*
 * A bare-metal toekit device: the engine on an Arm MPS2 board with an SMSC LAN9118 at 0x40200000,
 * built for Cortex-M7 and run on QEMU's mps2-an386 (Cortex-M4, the same ARMv7E-M instruction set;
 * firmware/example/run-qemu.sh). No OS and no heap:
 *
 *  - the stack's memory is one static block sized by toe_stack_mem_size() (checked at start);
 *  - the link is two rings of descriptors in memory (lan9118.h): the NIC side fills the RX ring
 *    and drains the TX ring; the engine's tx callback copies each frame into a TX descriptor;
 *  - time is the NIC's 25 MHz free-running counter, in ns;
 *  - the main loop is the one toed runs: input every received frame, poll the timers when
 *    toe_stack_next_deadline() has passed, serve the sockets;
 *  - the application is on the device: a TCP echo server on port 7 (RFC 862) through the same
 *    socket calls toed makes on behalf of its clients. ICMP echo is the engine's own.
 *
 * A device with a host (the Thunderbolt design) would expose the transport region (toe/abi.h) as
 * device memory and run toed's service loop over it here instead of the echo server; this board has
 * no host, so the example stops at the engine API.
 *
 * Address: 198.18.0.2/24 (RFC 2544 benchmarking space), MAC from the NIC (QEMU's -nic mac=).
 * Progress and errors go to the semihosting console.
 */
#include "lan9118.h"
#include "toe/engine.h"
#include "toe/errno.h"
#include "toe/pbuf.h"
#include "toe/tcp.h"

#include <stdio.h>
#include <string.h>

#define LAN9118_BASE 0x40200000u
#define ECHO_PORT 7u
#define MAX_CONNS 8u

static struct fw_ring rx_ring, tx_ring;
static struct lan9118 nic;
static uint8_t stack_mem[1280u * 1024u] __attribute__((aligned(64)));
static uint32_t tx_ring_full;

struct fw_link {
  struct toe_stack *st; /* set once the stack exists; the engine transmits only after that */
  struct fw_ring *tx;
};
static struct fw_link link = {.tx = &tx_ring};

/* The engine's transmit callback: one frame (a pbuf chain) into the next TX descriptor. */
static void fw_tx(void *ctx, struct toe_pbuf *frame)
{
  struct fw_link *l = ctx;
  struct fw_ring *tx = l->tx;
  struct fw_desc *d = &tx->d[tx->next];
  if (__atomic_load_n(&d->own, __ATOMIC_ACQUIRE) != FW_OWN_CPU || frame->tot_len > FW_FRAME_MAX) {
    tx_ring_full++; /* the link is behind: drop, as a full NIC queue would; TCP retransmits */
  } else {
    d->len = (uint16_t)toe_pbuf_copy_out(frame, 0, (void *)(uintptr_t)d->buf, frame->tot_len);
    __atomic_store_n(&d->own, FW_OWN_DEV, __ATOMIC_RELEASE);
    tx->next = (tx->next + 1u) & (FW_RING_SLOTS - 1u);
  }
  toe_pbuf_free(l->st, frame);
}

struct echo_conn {
  struct toe_sock *s;
  uint32_t have, off; /* bytes received and not yet sent */
  uint8_t buf[1024];
};
static struct echo_conn conns[MAX_CONNS];

static void echo_serve(struct toe_stack *st, struct toe_sock *listener)
{
  for (unsigned i = 0; i < MAX_CONNS; i++) {
    struct echo_conn *c = &conns[i];
    if (!c->s && toe_tcp_accept(st, listener, c, &c->s) == 0) {
      c->have = c->off = 0;
      printf("echo: connection %u accepted\n", i);
    }
    if (!c->s)
      continue;
    if (c->have == 0) {
      int n = toe_tcp_recv(st, c->s, c->buf, sizeof(c->buf));
      if (n == 0 || (n < 0 && n != -TOE_EAGAIN)) { /* end of stream or reset */
        toe_sock_close(st, c->s);
        c->s = NULL;
        printf("echo: connection %u closed (%d)\n", i, n);
        continue;
      }
      if (n > 0) {
        c->have = (uint32_t)n;
        c->off = 0;
      }
    }
    if (c->have > c->off) {
      int n = toe_tcp_send(st, c->s, c->buf + c->off, c->have - c->off, 0);
      if (n > 0)
        c->off += (uint32_t)n;
      if (c->off == c->have)
        c->have = c->off = 0;
    }
  }
}

int main(void)
{
  struct toe_config cfg;
  toe_config_defaults(&cfg);
  if (!lan9118_init(&nic, LAN9118_BASE, &rx_ring, &tx_ring, cfg.mac.b)) {
    printf("fw: no LAN9118 at 0x%08x\n", (unsigned)LAN9118_BASE);
    return 1;
  }
  cfg.addr = (198u << 24) | (18u << 16) | 2u; /* 198.18.0.2 */
  cfg.prefix_len = 24;
  /* A device-sized configuration: 16 TCP sockets, 256 buffers (512 KiB of frames). */
  cfg.pbuf_count = 256;
  cfg.tcp_socks = 16;
  cfg.tcp_syncache = 16;
  cfg.tcp_timewait = 16;
  cfg.tcp_max_backlog = 8;
  cfg.udp_socks = 4;
  cfg.udp_rcvq_len = 8;
  cfg.arp_entries = 16;
  cfg.reass_slots = 2;
  cfg.reass_max_bufs = 16;
  cfg.tcp_rcvbuf = cfg.tcp_sndbuf = 32u * 1024;
  cfg.tcp_rcvbuf_max = cfg.tcp_sndbuf_max = 64u * 1024;
  cfg.random_seed = lan9118_now_ns(&nic) ^ 0x5eed;
  cfg.tx = fw_tx;
  cfg.ctx = &link;

  size_t need = toe_stack_mem_size(&cfg);
  struct toe_stack *st;
  int rc = need ? toe_stack_create(&cfg, stack_mem, sizeof(stack_mem), &st) : -TOE_EINVAL;
  if (rc < 0) {
    printf("fw: toe_stack_create: %d (needs %lu bytes, have %lu)\n", rc, (unsigned long)need,
           (unsigned long)sizeof(stack_mem));
    return 1;
  }
  link.st = st;
  toe_stack_start(st, lan9118_now_ns(&nic));

  struct toe_sock *listener;
  struct toe_sockaddr any = {.family = TOE_AF_INET, .port = ECHO_PORT, .addr = 0};
  if ((rc = toe_tcp_open(st, NULL, &listener)) < 0 ||
      (rc = toe_sock_bind(st, listener, &any)) < 0 || (rc = toe_tcp_listen(st, listener, 8)) < 0) {
    printf("fw: echo listener: %d\n", rc);
    return 1;
  }
  printf("fw: up: 198.18.0.2/24 mac %02x:%02x:%02x:%02x:%02x:%02x, stack %lu bytes, "
         "TCP echo on port %u\n",
         cfg.mac.b[0], cfg.mac.b[1], cfg.mac.b[2], cfg.mac.b[3], cfg.mac.b[4], cfg.mac.b[5],
         (unsigned long)need, ECHO_PORT);

  for (;;) {
    lan9118_pump(&nic); /* the "DMA engine": RX FIFO -> RX ring, TX ring -> TX FIFO */
    toe_time_t now = lan9118_now_ns(&nic);
    while (rx_ring.d[rx_ring.next].own == FW_OWN_CPU) {
      struct fw_desc *d = &rx_ring.d[rx_ring.next];
      toe_stack_input_copy(st, (const void *)(uintptr_t)d->buf, d->len, now);
      __atomic_store_n(&d->own, FW_OWN_DEV, __ATOMIC_RELEASE);
      rx_ring.next = (rx_ring.next + 1u) & (FW_RING_SLOTS - 1u);
    }
    if (now >= toe_stack_next_deadline(st))
      toe_stack_poll(st, now);
    echo_serve(st, listener);
    /* A real device would sleep here (WFI) until the NIC's interrupt or the deadline. */
  }
}
