/*
 * The stack instance: configuration defaults and validation, the memory layout, creation, and the
 * time-keeping entry points (poll, deadline).
 *
 * Memory layout in the caller's block (each region 64-byte aligned):
 *   struct toe_stack | pbuf pool | ARP table | IPv4 reassembly | socket table | UDP sockets |
 *   TCP tables | filter table (only with cfg.steering) | IPv6 neighbour table (only with cfg.ipv6)
 * Every module sizes its own region (toe_*_mem_size) and lays itself out in it (toe_*_init).
 */
#include "engine/stack.h"

#include "engine/tcp.h"
#include "toe/tcp.h"
#include "wire/ipv4.h"

#include <string.h>

#define MEM_ALIGN 64u

void toe_config_defaults(struct toe_config *cfg)
{
  memset(cfg, 0, sizeof(*cfg));
  cfg->mtu = 1500;
  cfg->pbuf_count = 4096;
  cfg->pbuf_size = 2048;
  cfg->arp_entries = 256;
  cfg->arp_queue_len = 8;
  cfg->reass_slots = 64;
  cfg->reass_max_bufs = 1024;
  cfg->udp_socks = 1024;
  cfg->udp_rcvq_len = 256;

  cfg->tcp_socks = 1024;
  cfg->tcp_syncache = 1024;
  cfg->tcp_timewait = 4096;
  cfg->tcp_max_backlog = 1024;
  cfg->tcp_rcvbuf = 256u * 1024;
  cfg->tcp_rcvbuf_max = 4u * 1024 * 1024;
  cfg->tcp_sndbuf = 256u * 1024;
  cfg->tcp_sndbuf_max = 4u * 1024 * 1024;
  cfg->tcp_cc = TOE_CC_CUBIC;
  cfg->tcp_syn_retries = 6;
  cfg->tcp_retries2 = 15;
  cfg->tcp_timestamps = 1;
  cfg->tcp_sack = 1;
  cfg->tcp_wscale = 1;
  cfg->tcp_syncookies = 1;
  cfg->tcp_ecn = TOE_TCP_ECN_PASSIVE;
  cfg->tcp_rto_min = TOE_MSEC(200);
  cfg->tcp_rto_max = TOE_SEC(60);
  cfg->tcp_rto_initial = TOE_SEC(1);
  cfg->tcp_delack = TOE_MSEC(40);
  cfg->tcp_msl = TOE_SEC(30);
  cfg->tcp_fin_timeout = TOE_SEC(60);
  /* RFC 1122 4.2.3.6: the idle time must default to no less than two hours; interval and count
   * as Linux (75 s, 9 probes). */
  cfg->tcp_keep_idle = TOE_SEC(7200);
  cfg->tcp_keep_intvl = TOE_SEC(75);
  cfg->tcp_keep_cnt = 9;

  cfg->arp_reachable_time = TOE_SEC(30);
  cfg->arp_stale_time = TOE_SEC(60);
  cfg->arp_retry_interval = TOE_SEC(1);
  cfg->arp_max_retries = 3;
  cfg->reass_timeout = TOE_SEC(30);
  cfg->default_ttl = 64;
  cfg->icmp_rate_per_sec = 100;
  cfg->icmp_burst = 10;
  /* RFC 6335 6: the dynamic/private range. */
  cfg->ephemeral_lo = 49152;
  cfg->ephemeral_hi = 65535;
  cfg->nd_entries = 64;
  cfg->dad_transmits = 1;
}

/*
 * A usable unicast host address for us or our gateway: not 0.0.0.0/8 ("this network", RFC 1122
 * 3.2.1.3), loopback, multicast or class E (which holds the limited broadcast), and, on a prefix
 * that has them, neither the subnet's network nor its broadcast address (RFC 1122 3.3.6; a /31 has
 * neither, RFC 3021).
 */
bool toe_stack_host_addr_ok(uint32_t a, uint8_t prefix_len)
{
  uint8_t first = (uint8_t)(a >> 24);
  if (first == 0 || first == 127 || first >= 224)
    return false;
  if (prefix_len <= 30) {
    uint32_t host = a & ~toe_ipv4_mask(prefix_len);
    if (host == 0 || host == ~toe_ipv4_mask(prefix_len))
      return false;
  }
  return true;
}

static bool config_ok(const struct toe_config *c)
{
  if (!c->tx)
    return false;
  if (c->mtu < 68 || c->mtu > 9000) /* RFC 791: every host must take 68-byte datagrams */
    return false;
  if (c->prefix_len > 32 || c->vlan_id > 4094) /* VID 4095 is reserved (IEEE 802.1Q 9.6) */
    return false;
  /* A buffer must hold the largest standard frame (1518 with a VLAN tag, no FCS) behind the
   * headroom, so an ordinary frame is never a chain. */
  if (c->pbuf_count == 0 || c->pbuf_size < TOE_PBUF_HEADROOM + 1518)
    return false;
  /* The control reserve must leave most of the pool to data; a per-socket minimum above the
   * per-socket cap means nothing (0 = the defaults, pbuf_charge.c). */
  if (c->pbuf_reserve > c->pbuf_count / 2 ||
      (c->sock_max_bufs && c->sock_min_bufs > c->sock_max_bufs))
    return false;
  if (c->arp_entries == 0 || c->arp_queue_len == 0 || c->reass_slots == 0 ||
      c->reass_max_bufs == 0 || c->udp_socks == 0 || c->udp_rcvq_len == 0)
    return false;
  if (c->arp_retry_interval == 0 || c->arp_max_retries == 0 || c->reass_timeout == 0 ||
      c->default_ttl == 0)
    return false;
  if (c->ephemeral_lo == 0 || c->ephemeral_lo > c->ephemeral_hi)
    return false;
  if (!toe_stack_host_addr_ok(c->addr, c->prefix_len))
    return false;
  if (c->gateway) {
    uint32_t m = toe_ipv4_mask(c->prefix_len);
    /* The gateway must be reachable without itself needing a gateway: on our subnet. */
    if (c->gateway == c->addr || (c->gateway & m) != (c->addr & m) ||
        !toe_stack_host_addr_ok(c->gateway, c->prefix_len))
      return false;
  }
  /* Our MAC must be a unicast address (IEEE 802 I/G bit clear) and not all zeros. */
  static const uint8_t zero[6];
  if ((c->mac.b[0] & 1u) || memcmp(c->mac.b, zero, 6) == 0)
    return false;
  return toe_ipv6_config_ok(c);
}

static size_t align_up(size_t v)
{
  return (v + MEM_ALIGN - 1) & ~(size_t)(MEM_ALIGN - 1);
}

/* Adds an aligned region of `n` bytes to `*total`; false on size_t overflow. */
static bool add_region(size_t *total, size_t n)
{
  if (n > SIZE_MAX / 2 || *total > SIZE_MAX / 2)
    return false;
  *total += align_up(n);
  return true;
}

struct layout {
  size_t pool, arp, ip, socks, udp, tcp, filt, ip6, total;
};

static bool compute_layout(const struct toe_config *cfg, struct layout *l)
{
  size_t pool = toe_pbuf_pool_mem_size(cfg);
  if (pool == 0)
    return false;
  size_t off = 0;
  if (!add_region(&off, sizeof(struct toe_stack)))
    return false;
  l->pool = off;
  if (!add_region(&off, pool))
    return false;
  l->arp = off;
  if (!add_region(&off, toe_arp_mem_size(cfg)))
    return false;
  l->ip = off;
  if (!add_region(&off, toe_ipv4_mem_size(cfg)))
    return false;
  l->socks = off;
  if (!add_region(&off, toe_socktab_mem_size(cfg)))
    return false;
  l->udp = off;
  if (!add_region(&off, toe_udp_mem_size(cfg)))
    return false;
  l->tcp = off;
  if (!add_region(&off, toe_tcp_mem_size(cfg)))
    return false;
  l->filt = off;
  if (!add_region(&off, toe_filt_mem_size(cfg)))
    return false;
  l->ip6 = off;
  if (!add_region(&off, toe_ipv6_mem_size(cfg)))
    return false;
  l->total = off;
  return true;
}

size_t toe_stack_mem_size(const struct toe_config *cfg)
{
  struct layout l;
  if (!cfg || !config_ok(cfg) || !compute_layout(cfg, &l))
    return 0;
  return l.total;
}

int toe_stack_create(const struct toe_config *cfg, void *mem, size_t mem_len,
                     struct toe_stack **out)
{
  struct layout l;
  if (!cfg || !out || !mem || !config_ok(cfg) || !compute_layout(cfg, &l))
    return -TOE_EINVAL;
  if (((uintptr_t)mem & (MEM_ALIGN - 1)) != 0)
    return -TOE_EINVAL;
  if (mem_len < l.total)
    return -TOE_ENOMEM;

  uint8_t *base = mem;
  struct toe_stack *st = mem;
  memset(st, 0, sizeof(*st));
  /* The tables start zeroed; the pool's storage (the bulk) need not be. */
  memset(base + l.arp, 0, l.total - l.arp);
  st->cfg = *cfg;
  st->now = 0;
  toe_random_seed(st, cfg->random_seed);

  toe_pbuf_pool_init(st, base + l.pool);
  toe_tw_init(&st->tw, st->now);
  toe_arp_init(st, base + l.arp);
  toe_ipv4_init(st, base + l.ip);
  toe_icmp_init(st);
  toe_pmtu_init(st);
  toe_socktab_init(st, base + l.socks);
  toe_udp_init(st, base + l.udp);
  toe_tcp_init(st, base + l.tcp);
  toe_filt_init(st, base + l.filt);
  toe_ipv6_init(st, base + l.ip6);
  *out = st;
  return 0;
}

#ifndef TOE_FREESTANDING
#include <stdlib.h>

int toe_stack_new(const struct toe_config *cfg, struct toe_stack **out)
{
  size_t n = cfg ? toe_stack_mem_size(cfg) : 0;
  if (n == 0 || !out)
    return -TOE_EINVAL;
  /* aligned_alloc wants a size that is a multiple of the alignment: the layout already is. */
  void *mem = aligned_alloc(MEM_ALIGN, align_up(n));
  if (!mem)
    return -TOE_ENOMEM;
  int rc = toe_stack_create(cfg, mem, n, out);
  if (rc < 0) {
    free(mem);
    return rc;
  }
  (*out)->mem_to_free = mem;
  return 0;
}

void toe_stack_free(struct toe_stack *st)
{
  if (st && st->mem_to_free)
    free(st->mem_to_free);
}
#endif

void toe_stack_advance(struct toe_stack *st, toe_time_t now)
{
  if (now > st->now)
    st->now = now;
  if (toe_tw_idle(&st->tw, st->now))
    return; /* nothing due: the common case for every received frame */
  toe_tw_run(st, st->now);
}

void toe_stack_start(struct toe_stack *st, toe_time_t now)
{
  toe_stack_advance(st, now);
  toe_arp_announce(st);
  toe_ipv6_start(st);
}

void toe_stack_poll(struct toe_stack *st, toe_time_t now)
{
  if (st->tcp.in_burst)
    toe_tcp_output_burst_end(st); /* a burst left open: its output must not wait longer */
  toe_stack_advance(st, now);
}

void toe_stack_burst_begin(struct toe_stack *st)
{
  st->tcp.in_burst = 1;
}

void toe_stack_burst_end(struct toe_stack *st)
{
  toe_tcp_output_burst_end(st);
}

toe_time_t toe_stack_next_deadline(const struct toe_stack *st)
{
  return toe_tw_next(&st->tw);
}

toe_time_t toe_stack_now(const struct toe_stack *st)
{
  return st->now;
}

const struct toe_counters *toe_stack_counters(const struct toe_stack *st)
{
  return &st->ctr;
}

const struct toe_config *toe_stack_config(const struct toe_stack *st)
{
  return &st->cfg;
}
