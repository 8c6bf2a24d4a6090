/*
 * The filter table: which flows the engine owns (include/toe/steer.h, filter_table.h).
 *
 * A chained hash over a fixed pool, both laid out at creation. The pool holds one filter for every
 * object that can need one at the same time: each UDP socket (a bind), each TCP socket twice (a
 * bound client has its port's local filter and its connection's exact one) and each TIME_WAIT
 * entry; so adding never fails in practice. The hash is keyed with the device secret: remote
 * addresses and ports are the peer's choice, and a peer must not be able to aim every connection
 * at one chain of the fast-path lookup.
 */
#include "engine/stack.h"
#include "toe/steer.h"

#include <string.h>

static uint32_t filt_cap(const struct toe_config *cfg)
{
  uint64_t n = (uint64_t)cfg->udp_socks + 2ull * cfg->tcp_socks + cfg->tcp_timewait;
  return n > (1u << 24) ? (1u << 24) : (uint32_t)n;
}

static uint32_t filt_buckets(const struct toe_config *cfg)
{
  uint32_t want = filt_cap(cfg), n = 16;
  while (n < want)
    n <<= 1;
  return n;
}

size_t toe_filt_mem_size(const struct toe_config *cfg)
{
  if (!cfg->steering)
    return 0;
  return (size_t)filt_cap(cfg) * sizeof(struct toe_filter) +
         (size_t)filt_buckets(cfg) * sizeof(struct toe_filter *);
}

void toe_filt_init(struct toe_stack *st, void *mem)
{
  struct toe_filter_table *t = &st->filt;
  memset(t, 0, sizeof *t);
  if (!st->cfg.steering)
    return;
  t->cap = filt_cap(&st->cfg);
  t->pool = mem;
  t->hash = (struct toe_filter **)(void *)(t->pool + t->cap);
  t->mask = filt_buckets(&st->cfg) - 1;
  for (uint32_t i = 0; i <= t->mask; i++)
    t->hash[i] = NULL;
  for (uint32_t i = t->cap; i-- > 0;) {
    memset(&t->pool[i], 0, sizeof t->pool[i]);
    t->pool[i].next = t->free;
    t->free = &t->pool[i];
  }
}

static uint32_t mix32(uint32_t h)
{
  h ^= h >> 16;
  h *= 0x7feb352du;
  h ^= h >> 15;
  h *= 0x846ca68bu;
  h ^= h >> 16;
  return h;
}

static struct toe_filter **filt_bucket(const struct toe_stack *st, uint8_t proto, uint16_t lport,
                                       uint32_t raddr, uint16_t rport)
{
  const uint8_t *k = st->cfg.secret;
  uint32_t s0 =
      (uint32_t)k[8] | (uint32_t)k[9] << 8 | (uint32_t)k[10] << 16 | (uint32_t)k[11] << 24;
  uint32_t s1 =
      (uint32_t)k[12] | (uint32_t)k[13] << 8 | (uint32_t)k[14] << 16 | (uint32_t)k[15] << 24;
  uint32_t h = mix32(raddr ^ s0);
  h = mix32(h ^ ((uint32_t)rport << 16 | lport) ^ s1);
  h = mix32(h ^ proto);
  return &st->filt.hash[h & st->filt.mask];
}

static struct toe_filter *find(const struct toe_stack *st, uint8_t proto, uint16_t lport,
                               uint32_t raddr, uint16_t rport)
{
  for (struct toe_filter *f = *filt_bucket(st, proto, lport, raddr, rport); f; f = f->next)
    if (f->lport == lport && f->rport == rport && f->raddr == raddr && f->proto == proto)
      return f;
  return NULL;
}

void toe_filt_add(struct toe_stack *st, uint8_t kind, uint8_t proto, uint16_t lport, uint32_t raddr,
                  uint16_t rport)
{
  struct toe_filter_table *t = &st->filt;
  if (!t->hash)
    return;
  struct toe_filter *f = find(st, proto, lport, raddr, rport);
  if (f) {
    if (f->refs < UINT16_MAX)
      f->refs++;
    f->kind = kind;
    return;
  }
  if (!t->free) {
    st->ctr.steer.filter_full++;
    return;
  }
  f = t->free;
  t->free = f->next;
  struct toe_filter **b = filt_bucket(st, proto, lport, raddr, rport);
  memset(f, 0, sizeof *f);
  f->proto = proto;
  f->kind = kind;
  f->lport = lport;
  f->raddr = raddr;
  f->rport = rport;
  f->refs = 1;
  f->next = *b;
  *b = f;
  t->count++;
  st->ctr.steer.filters_added++;
  st->ctr.steer.filters_inuse = t->count;
}

void toe_filt_del(struct toe_stack *st, uint8_t proto, uint16_t lport, uint32_t raddr,
                  uint16_t rport)
{
  struct toe_filter_table *t = &st->filt;
  if (!t->hash)
    return;
  struct toe_filter **pp = filt_bucket(st, proto, lport, raddr, rport);
  for (; *pp; pp = &(*pp)->next) {
    struct toe_filter *f = *pp;
    if (f->lport != lport || f->rport != rport || f->raddr != raddr || f->proto != proto)
      continue;
    if (--f->refs > 0)
      return;
    *pp = f->next;
    f->proto = 0;
    f->next = t->free;
    t->free = f;
    t->count--;
    st->ctr.steer.filters_removed++;
    st->ctr.steer.filters_inuse = t->count;
    return;
  }
}

struct toe_filter *toe_filt_lookup(const struct toe_stack *st, uint8_t proto, uint16_t lport,
                                   uint32_t raddr, uint16_t rport)
{
  if (!st->filt.hash)
    return NULL;
  struct toe_filter *f = find(st, proto, lport, raddr, rport);
  return f ? f : find(st, proto, lport, 0, 0);
}

bool toe_steer_owned(const struct toe_stack *st, uint8_t proto, uint16_t lport, uint32_t raddr,
                     uint16_t rport)
{
  return toe_filt_lookup(st, proto, lport, raddr, rport) != NULL;
}

uint32_t toe_filter_visit(const struct toe_stack *st, toe_filter_visit_fn fn, void *arg)
{
  const struct toe_filter_table *t = &st->filt;
  uint32_t n = 0;
  if (!t->hash)
    return 0;
  for (uint32_t i = 0; i < t->cap; i++) {
    const struct toe_filter *f = &t->pool[i];
    if (!f->proto)
      continue;
    struct toe_filter_info fi = {
        .kind = f->kind,
        .proto = f->proto,
        .lport = f->lport,
        .laddr = st->cfg.addr,
        .raddr = f->raddr,
        .rport = f->rport,
        .refs = f->refs,
        .frames = f->frames,
        .bytes = f->bytes,
    };
    if (fn)
      fn(arg, &fi);
    n++;
  }
  return n;
}

uint32_t toe_filter_count(const struct toe_stack *st)
{
  return st->filt.count;
}

uint32_t toe_filter_capacity(const struct toe_stack *st)
{
  return st->filt.cap;
}
