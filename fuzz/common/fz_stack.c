/* Set-up shared by the whole-engine fuzz targets (fz_stack.h). */
#include "fz_stack.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const uint8_t FZ_OUR_MAC[6] = {0x02, 0, 0, 0, 0, 0x01};
const uint8_t FZ_PEER_MAC[6] = {0x02, 0, 0, 0, 0, 0x02};

void fz_config(struct toe_config *cfg, uint32_t pbufs, toe_tx_fn tx, toe_sock_event_fn ev,
               void *ctx)
{
  toe_config_defaults(cfg);
  memcpy(cfg->mac.b, FZ_OUR_MAC, 6);
  cfg->addr = FZ_OUR_IP;
  cfg->prefix_len = 24;
  cfg->pbuf_count = pbufs;
  cfg->arp_entries = 8;
  cfg->random_seed = 1;
  for (int i = 0; i < 16; i++)
    cfg->secret[i] = (uint8_t)(i + 1);
  cfg->tx = tx;
  cfg->sock_event = ev;
  cfg->ctx = ctx;
}

void fz_stack_start(const struct toe_config *cfg, toe_time_t now, struct toe_stack **st)
{
  if (toe_stack_new(cfg, st) != 0) {
    fprintf(stderr, "fuzz: the target's configuration is refused\n");
    abort();
  }
  toe_stack_start(*st, now);
}

static void put32(uint8_t *p, uint32_t v)
{
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

void fz_learn_peer(struct toe_stack *st, toe_time_t now, uint16_t vlan)
{
  uint8_t a[46];
  size_t o = 12;
  memset(a, 0xff, 6); /* broadcast */
  memcpy(a + 6, FZ_PEER_MAC, 6);
  if (vlan) { /* 802.1Q tag */
    a[o++] = 0x81;
    a[o++] = 0x00;
    a[o++] = (uint8_t)(vlan >> 8);
    a[o++] = (uint8_t)vlan;
  }
  a[o++] = 0x08; /* ARP */
  a[o++] = 0x06;
  /* RFC 826: Ethernet, IPv4, lengths 6 and 4, request; sender the peer, target our address */
  const uint8_t hdr[8] = {0, 1, 8, 0, 6, 4, 0, 1};
  memcpy(a + o, hdr, 8);
  memcpy(a + o + 8, FZ_PEER_MAC, 6);
  put32(a + o + 14, FZ_PEER_IP);
  memset(a + o + 18, 0, 6);
  put32(a + o + 24, FZ_OUR_IP);
  (void)toe_stack_input_copy(st, a, o + 28, now);
}

void fz_run_out(struct toe_stack *st, toe_time_t *now, int rounds)
{
  for (int i = 0; i < rounds; i++) {
    toe_time_t d = toe_stack_next_deadline(st);
    if (d == TOE_TIME_NEVER)
      break;
    *now = (d > *now ? d : *now) + TOE_SEC(10);
    toe_stack_poll(st, *now);
  }
}

void fz_pool_stats(const char *name, const struct toe_stack *st, uint32_t pbufs)
{
  if (!getenv("FUZZ_POOL_STATS"))
    return;
  const struct toe_counters *c = toe_stack_counters(st);
  fprintf(stderr,
          "%s: pool of %u: inuse_max %llu alloc_failures %llu refused sock %llu press %llu "
          "rsv %llu\n",
          name, pbufs, (unsigned long long)c->pbuf.inuse_max,
          (unsigned long long)c->pbuf.alloc_failures, (unsigned long long)c->pbuf.refused_sock,
          (unsigned long long)c->pbuf.refused_press, (unsigned long long)c->pbuf.refused_rsv);
}
