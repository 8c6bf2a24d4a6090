#include "harness.h"

#include "wire/checksum.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const uint8_t H_OUR_MAC[6] = {0x02, 0, 0, 0, 0, 0x01};
const uint8_t H_PEER_MAC[6] = {0x02, 0, 0, 0, 0, 0x02};
const uint8_t H_BCAST_MAC[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

static void h_capture(struct harness *h, struct toe_pbuf *frame)
{
  if (h->ntx < H_MAX_FRAMES) {
    struct h_frame *f = &h->tx[h->ntx++];
    f->len = frame->tot_len;
    f->bytes = malloc(f->len ? f->len : 1);
    toe_pbuf_copy_out(frame, 0, f->bytes, f->len);
    f->csum_partial = (frame->flags & TOE_PBUF_F_CSUM_PARTIAL) != 0;
    if (f->csum_partial) {
      f->csum_start = frame->csum_start;
      f->csum_offset = frame->csum_offset;
      size_t at = (size_t)f->csum_start + f->csum_offset;
      if (at + 2 <= f->len && f->csum_start < f->len) {
        memcpy(&f->csum_field_before, f->bytes + at, 2);
        uint16_t c = toe_csum(f->bytes + f->csum_start, f->len - f->csum_start);
        memcpy(f->bytes + at, &c, 2);
      }
    }
  } else {
    fprintf(stderr, "harness: tx capture full\n");
    abort();
  }
  toe_pbuf_free(h->st, frame);
}

static void h_tx(void *ctx, struct toe_pbuf *frame)
{
  struct harness *h = ctx;
  if (!h->gso_cut || !(frame->flags & TOE_PBUF_F_GSO_TCPV4)) {
    h_capture(h, frame);
    return;
  }
  if (h->ngso >= H_MAX_GSO) {
    fprintf(stderr, "harness: gso log full\n");
    abort();
  }
  struct h_gso *g = &h->gso[h->ngso++];
  g->len = frame->tot_len;
  g->gso_size = frame->gso_size;
  g->first = h->ntx;
  struct toe_pbuf *list = NULL;
  int rc = toe_gso_segment(h->st, frame, h->gso_sw_csum, &list);
  if (rc != 0) {
    fprintf(stderr, "harness: toe_gso_segment failed: %d\n", rc);
    abort();
  }
  while (list) {
    struct toe_pbuf *n = list->qnext;
    list->qnext = NULL;
    h_capture(h, list);
    list = n;
  }
  g->pieces = h->ntx - g->first;
}

static void h_sock_event(void *ctx, struct toe_sock *s, void *user, uint32_t events)
{
  struct harness *h = ctx;
  if (h->nev < H_MAX_FRAMES)
    h->ev[h->nev++] = (struct h_event){s, user, events};
}

void h_default_cfg(struct toe_config *cfg)
{
  toe_config_defaults(cfg);
  memcpy(cfg->mac.b, H_OUR_MAC, 6);
  cfg->addr = H_OUR_IP;
  cfg->prefix_len = 24;
  cfg->pbuf_count = 512;
  /* A socket may hold half of this small pool (256 buffers: the default 256 KiB window at half a
   * buffer per segment), as the tests written before the per-socket cap expect; the cap's own
   * tests (test_pool_guard.c) set it explicitly. */
  cfg->sock_max_bufs = 256;
  cfg->random_seed = 42;
  for (int i = 0; i < 16; i++)
    cfg->secret[i] = (uint8_t)(i * 7 + 1);
}

void h_init_cfg(struct harness *h, const struct toe_config *cfg)
{
  memset(h, 0, sizeof(*h));
  h->cfg = *cfg;
  h->cfg.tx = h_tx;
  h->cfg.sock_event = h_sock_event;
  h->cfg.ctx = h;
  h->now = TOE_SEC(1);
  int rc = toe_stack_new(&h->cfg, &h->st);
  if (rc != 0) {
    fprintf(stderr, "harness: toe_stack_new failed: %d\n", rc);
    abort();
  }
  toe_stack_poll(h->st, h->now);
}

void h_init(struct harness *h)
{
  struct toe_config cfg;
  h_default_cfg(&cfg);
  h_init_cfg(h, &cfg);
}

void h_clear(struct harness *h)
{
  for (int i = 0; i < h->ntx; i++)
    free(h->tx[i].bytes);
  h->ntx = 0;
  h->nev = 0;
  h->ngso = 0;
}

void h_fini(struct harness *h)
{
  h_clear(h);
  toe_stack_free(h->st);
  h->st = NULL;
}

void h_input(struct harness *h, const void *frame, size_t len)
{
  int rc = toe_stack_input_copy(h->st, frame, len, h->now);
  (void)rc;
}

void h_advance(struct harness *h, toe_time_t ns)
{
  toe_time_t end = h->now + ns;
  for (;;) {
    toe_time_t d = toe_stack_next_deadline(h->st);
    if (d == TOE_TIME_NEVER || d > end)
      break;
    if (d > h->now)
      h->now = d;
    toe_stack_poll(h->st, h->now);
    if (toe_stack_next_deadline(h->st) <= h->now) {
      /* a deadline that does not move after a poll would loop forever: step one tick */
      h->now += TOE_MSEC(1);
      if (h->now > end)
        break;
    }
  }
  h->now = end;
  toe_stack_poll(h->st, h->now);
}

void h_learn_peer(struct harness *h)
{
  uint8_t f[64];
  static const uint8_t zero[6];
  size_t n = h_build_arp(f, 1, H_PEER_MAC, H_PEER_IP, zero, H_OUR_IP, H_BCAST_MAC);
  h_input(h, f, n);
  h_clear(h);
}

uint16_t h_csum(const void *data, size_t len, uint32_t sum)
{
  const uint8_t *p = data;
  for (size_t i = 0; i + 1 < len; i += 2)
    sum += (uint32_t)(p[i] << 8 | p[i + 1]);
  if (len & 1)
    sum += (uint32_t)(p[len - 1] << 8);
  while (sum >> 16)
    sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)~sum;
}

uint32_t h_pseudo_sum(uint32_t src, uint32_t dst, uint8_t proto, uint16_t len)
{
  return (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff) + proto + len;
}

uint16_t h_be16(const uint8_t *p)
{
  return (uint16_t)(p[0] << 8 | p[1]);
}
uint32_t h_be32(const uint8_t *p)
{
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static void put16(uint8_t *p, uint16_t v)
{
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}
static void put32(uint8_t *p, uint32_t v)
{
  put16(p, (uint16_t)(v >> 16));
  put16(p + 2, (uint16_t)v);
}

static size_t eth(uint8_t *out, const uint8_t *dst, const uint8_t *src, uint16_t type)
{
  memcpy(out, dst, 6);
  memcpy(out + 6, src, 6);
  put16(out + 12, type);
  return 14;
}

size_t h_build_arp(uint8_t *out, uint16_t op, const uint8_t *sha, uint32_t spa, const uint8_t *tha,
                   uint32_t tpa, const uint8_t *eth_dst)
{
  size_t n = eth(out, eth_dst, sha, 0x0806);
  uint8_t *a = out + n;
  put16(a, 1);
  put16(a + 2, 0x0800);
  a[4] = 6;
  a[5] = 4;
  put16(a + 6, op);
  memcpy(a + 8, sha, 6);
  put32(a + 14, spa);
  memcpy(a + 18, tha, 6);
  put32(a + 24, tpa);
  return n + 28;
}

size_t h_build_ipv4(uint8_t *out, uint32_t src, uint32_t dst, uint8_t proto, uint16_t id,
                    uint16_t frag_field, uint8_t ttl, const void *payload, size_t plen)
{
  size_t n = eth(out, H_OUR_MAC, H_PEER_MAC, 0x0800);
  uint8_t *ip = out + n;
  ip[0] = 0x45;
  ip[1] = 0;
  put16(ip + 2, (uint16_t)(20 + plen));
  put16(ip + 4, id);
  put16(ip + 6, frag_field);
  ip[8] = ttl;
  ip[9] = proto;
  put16(ip + 10, 0);
  put32(ip + 12, src);
  put32(ip + 16, dst);
  put16(ip + 10, h_csum(ip, 20, 0));
  memcpy(ip + 20, payload, plen);
  return n + 20 + plen;
}

void h_input_icmp_error(struct harness *h, uint32_t src, const uint8_t *frame, uint8_t type,
                        uint8_t code, uint16_t mtu)
{
  uint8_t msg[128];
  const uint8_t *ip = frame + 14;
  size_t q = (size_t)(ip[0] & 0x0f) * 4 + 8;
  memset(msg, 0, 8);
  msg[0] = type;
  msg[1] = code;
  put16(msg + 6, mtu);
  memcpy(msg + 8, ip, q);
  put16(msg + 2, h_csum(msg, 8 + q, 0));
  uint8_t f[256];
  size_t n = h_build_ipv4(f, src, H_OUR_IP, 1, 77, 0, 64, msg, 8 + q);
  h_input(h, f, n);
}

size_t h_build_udp(uint8_t *out, uint32_t src, uint16_t sport, uint32_t dst, uint16_t dport,
                   const void *data, size_t dlen)
{
  uint8_t seg[65536];
  put16(seg, sport);
  put16(seg + 2, dport);
  put16(seg + 4, (uint16_t)(8 + dlen));
  put16(seg + 6, 0);
  memcpy(seg + 8, data, dlen);
  uint16_t c = h_csum(seg, 8 + dlen, h_pseudo_sum(src, dst, 17, (uint16_t)(8 + dlen)));
  put16(seg + 6, c ? c : 0xffff);
  return h_build_ipv4(out, src, dst, 17, 1, 0x4000, 64, seg, 8 + dlen);
}

size_t h_build_icmp_echo(uint8_t *out, uint32_t src, uint32_t dst, uint16_t id, uint16_t seq,
                         const void *data, size_t dlen)
{
  uint8_t msg[65536];
  msg[0] = 8;
  msg[1] = 0;
  put16(msg + 2, 0);
  put16(msg + 4, id);
  put16(msg + 6, seq);
  memcpy(msg + 8, data, dlen);
  put16(msg + 2, h_csum(msg, 8 + dlen, 0));
  return h_build_ipv4(out, src, dst, 1, 2, 0, 64, msg, 8 + dlen);
}

int h_find_tx(const struct harness *h, uint16_t ethertype, uint8_t proto, int nth)
{
  for (int i = 0; i < h->ntx; i++) {
    const uint8_t *f = h->tx[i].bytes;
    if (h->tx[i].len < 14 || h_be16(f + 12) != ethertype)
      continue;
    if (ethertype == 0x0800 && proto && (h->tx[i].len < 34 || f[14 + 9] != proto))
      continue;
    if (nth-- == 0)
      return i;
  }
  return -1;
}

int h_count_tx(const struct harness *h, uint16_t ethertype, uint8_t proto)
{
  int n = 0;
  while (h_find_tx(h, ethertype, proto, n) >= 0)
    n++;
  return n;
}
