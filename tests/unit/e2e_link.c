#include "e2e_link.h"

#include "common/prng.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct e2e_frame {
  toe_time_t at;  /* arrival time */
  uint64_t order; /* tie-break: transmission order */
  int to;         /* receiving end */
  int from;
  uint32_t len;
  uint8_t bytes[];
};

uint64_t e2e_rand(uint64_t *state)
{
  return toe_splitmix64(state);
}

static bool chance(struct e2e_link *l, uint32_t ppm)
{
  if (ppm == 0)
    return false;
  return e2e_rand(&l->rng) % 1000000u < ppm;
}

static toe_time_t uniform(struct e2e_link *l, toe_time_t max)
{
  if (max == 0)
    return 0;
  return e2e_rand(&l->rng) % (max + 1);
}

/* ---- the frame heap ---- */

static bool before(const struct e2e_frame *a, const struct e2e_frame *b)
{
  return a->at < b->at || (a->at == b->at && a->order < b->order);
}

static void heap_push(struct e2e_link *l, struct e2e_frame *f)
{
  if (l->nheap == l->capheap) {
    l->capheap = l->capheap ? l->capheap * 2 : 1024;
    l->heap = realloc(l->heap, l->capheap * sizeof(*l->heap));
    if (!l->heap) {
      fprintf(stderr, "e2e: out of memory\n");
      abort();
    }
  }
  size_t i = l->nheap++;
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (!before(f, l->heap[p]))
      break;
    l->heap[i] = l->heap[p];
    i = p;
  }
  l->heap[i] = f;
}

static struct e2e_frame *heap_pop(struct e2e_link *l)
{
  struct e2e_frame *top = l->heap[0];
  struct e2e_frame *last = l->heap[--l->nheap];
  size_t i = 0, n = l->nheap;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= n)
      break;
    if (c + 1 < n && before(l->heap[c + 1], l->heap[c]))
      c++;
    if (!before(l->heap[c], last))
      break;
    l->heap[i] = l->heap[c];
    i = c;
  }
  if (n)
    l->heap[i] = last;
  return top;
}

/* ---- transmit side: faults and scheduling ---- */

static struct e2e_frame *frame_new(int from, const uint8_t *bytes, uint32_t len)
{
  struct e2e_frame *f = malloc(sizeof(*f) + (len ? len : 1));
  if (!f) {
    fprintf(stderr, "e2e: out of memory\n");
    abort();
  }
  f->from = from;
  f->to = 1 - from;
  f->len = len;
  memcpy(f->bytes, bytes, len);
  return f;
}

static void link_tx(void *ctx, struct toe_pbuf *frame)
{
  struct e2e_end *e = ctx;
  struct e2e_link *l = e->link;
  int d = e->idx;
  const struct e2e_faults *fa = &l->faults[d];
  struct e2e_dir_stats *s = &l->stats[d];
  uint32_t len = frame->tot_len;
  if (l->tx_tap)
    l->tx_tap(l->tx_tap_ctx, d, frame);
  s->frames++;
  s->bytes += len;
  if (fa->queue_limit && l->queued[d] >= fa->queue_limit) {
    s->queue_drops++;
    toe_pbuf_free(e->st, frame);
    return;
  }
  /* serialization: frames leave one after another at the link rate */
  toe_time_t start = l->busy_until[d] > l->now ? l->busy_until[d] : l->now;
  toe_time_t ser = fa->rate_bps ? (toe_time_t)len * 8u * 1000000000ull / fa->rate_bps : 0;
  l->busy_until[d] = start + ser;
  if (chance(l, fa->loss_ppm)) {
    s->lost++;
    toe_pbuf_free(e->st, frame);
    return;
  }
  uint8_t buf[65600];
  if (len > sizeof(buf))
    len = sizeof(buf);
  toe_pbuf_copy_out(frame, 0, buf, len);
  toe_pbuf_free(e->st, frame);

  if (len > 14 && chance(l, fa->corrupt_ppm)) {
    uint32_t off = 14 + (uint32_t)(e2e_rand(&l->rng) % (len - 14));
    uint8_t x = (uint8_t)(1 + e2e_rand(&l->rng) % 255);
    buf[off] ^= x;
    s->corrupted++;
  }
  toe_time_t at = start + ser + fa->delay + uniform(l, fa->jitter);
  /* jitter alone never reorders: a link is FIFO unless a frame is picked for reordering */
  if (at < l->last_arrival[d])
    at = l->last_arrival[d];
  l->last_arrival[d] = at;
  if (chance(l, fa->reorder_ppm)) {
    at += 1 + uniform(l, fa->reorder_delay ? fa->reorder_delay - 1 : 0);
    s->reordered++;
  }
  struct e2e_frame *f = frame_new(d, buf, len);
  f->at = at;
  f->order = l->order++;
  heap_push(l, f);
  l->queued[d]++;
  if (chance(l, fa->dup_ppm)) {
    struct e2e_frame *g = frame_new(d, buf, len);
    g->at = at + ser + 1;
    g->order = l->order++;
    heap_push(l, g);
    l->queued[d]++;
    s->duplicated++;
  }
}

static void link_event(void *ctx, struct toe_sock *s, void *user, uint32_t events)
{
  struct e2e_end *e = ctx;
  struct e2e_link *l = e->link;
  if (l->on_event)
    l->on_event(l->event_ctx, e->idx, s, user, events);
}

/* ---- setup ---- */

void e2e_default_cfg(struct toe_config *cfg, int end)
{
  toe_config_defaults(cfg);
  memset(cfg->mac.b, 0, 6);
  cfg->mac.b[0] = 0x02;
  cfg->mac.b[5] = (uint8_t)(end + 1);
  cfg->addr = end ? E2E_IP1 : E2E_IP0;
  cfg->prefix_len = 24;
  cfg->pbuf_count = 8192;
  cfg->random_seed = 1000u + (uint64_t)end;
  for (int i = 0; i < 16; i++)
    cfg->secret[i] = (uint8_t)(i * 13 + 7 + end * 101);
}

void e2e_set_faults(struct e2e_link *l, const struct e2e_faults *f)
{
  l->faults[0] = *f;
  l->faults[1] = *f;
}

size_t e2e_in_flight(const struct e2e_link *l)
{
  return l->nheap;
}

static void deliver_due(struct e2e_link *l)
{
  while (l->nheap && l->heap[0]->at <= l->now) {
    struct e2e_frame *f = heap_pop(l);
    l->queued[f->from]--;
    l->stats[f->from].delivered++;
    toe_stack_input_copy(l->end[f->to].st, f->bytes, f->len, l->now);
    free(f);
  }
}

bool e2e_step(struct e2e_link *l, toe_time_t limit)
{
  /* Socket calls made since the last step may have armed timers due now. */
  toe_stack_poll(l->end[0].st, l->now);
  toe_stack_poll(l->end[1].st, l->now);
  toe_time_t next = l->nheap ? l->heap[0]->at : TOE_TIME_NEVER;
  if (next < l->now)
    next = l->now;
  for (int i = 0; i < 2; i++) {
    toe_time_t d = toe_stack_next_deadline(l->end[i].st);
    /* Both stacks were just polled at `now`: a deadline not after it is a wheel-slot lower
     * bound, so look one tick further. */
    if (d != TOE_TIME_NEVER && d <= l->now)
      d = l->now + TOE_MSEC(1);
    if (d < next)
      next = d;
  }
  if (next > limit) {
    if (limit > l->now)
      l->now = limit;
    toe_stack_poll(l->end[0].st, l->now);
    toe_stack_poll(l->end[1].st, l->now);
    return false;
  }
  l->now = next;
  deliver_due(l);
  toe_stack_poll(l->end[0].st, l->now);
  toe_stack_poll(l->end[1].st, l->now);
  return true;
}

void e2e_run_until(struct e2e_link *l, toe_time_t until)
{
  while (e2e_step(l, until))
    ;
}

void e2e_init(struct e2e_link *l, const struct toe_config *cfg0, const struct toe_config *cfg1,
              uint64_t seed, toe_time_t start)
{
  memset(l, 0, sizeof(*l));
  l->rng = seed;
  l->now = start;
  for (int i = 0; i < 2; i++) {
    struct e2e_end *e = &l->end[i];
    const struct toe_config *src = i ? cfg1 : cfg0;
    struct toe_config def;
    e2e_default_cfg(&def, i);
    e->cfg = src ? *src : def;
    memcpy(e->cfg.mac.b, def.mac.b, 6);
    e->cfg.addr = def.addr;
    e->cfg.prefix_len = def.prefix_len;
    e->cfg.tx = link_tx;
    e->cfg.sock_event = link_event;
    e->cfg.ctx = e;
    e->link = l;
    e->idx = i;
    int rc = toe_stack_new(&e->cfg, &e->st);
    if (rc != 0) {
      fprintf(stderr, "e2e: toe_stack_new(%d) failed: %d\n", i, rc);
      abort();
    }
  }
  toe_stack_start(l->end[0].st, l->now);
  toe_stack_start(l->end[1].st, l->now);

  /* Resolve ARP both ways with one UDP datagram each way (to the discard port). */
  for (int i = 0; i < 2; i++) {
    struct toe_sock *s = NULL;
    if (toe_udp_open(l->end[i].st, NULL, &s) == 0) {
      struct toe_sockaddr dst = {.family = TOE_AF_INET, .port = 9, .addr = i ? E2E_IP0 : E2E_IP1};
      toe_udp_sendto(l->end[i].st, s, "warm", 4, &dst);
      e2e_run_until(l, l->now + TOE_MSEC(50));
      toe_sock_close(l->end[i].st, s);
    }
  }
  e2e_run_until(l, l->now + TOE_MSEC(50));
  memset(l->stats, 0, sizeof(l->stats));
}

void e2e_fini(struct e2e_link *l)
{
  while (l->nheap)
    free(heap_pop(l));
  free(l->heap);
  l->heap = NULL;
  l->capheap = 0;
  for (int i = 0; i < 2; i++) {
    if (l->end[i].st)
      toe_stack_free(l->end[i].st);
    l->end[i].st = NULL;
  }
}
