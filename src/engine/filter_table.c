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

/* A filter's key: IPv4 filters have v6 clear and raddr6 zero, IPv6 ones raddr 0. */
struct filt_key {
  uint8_t proto;
  bool v6;
  uint16_t lport;
  uint16_t rport;
  uint32_t raddr;
  struct toe_in6_addr raddr6;
};

static struct toe_filter **filt_bucket(const struct toe_stack *st, const struct filt_key *k)
{
  const uint8_t *s = st->cfg.secret;
  uint32_t s0 =
      (uint32_t)s[8] | (uint32_t)s[9] << 8 | (uint32_t)s[10] << 16 | (uint32_t)s[11] << 24;
  uint32_t s1 =
      (uint32_t)s[12] | (uint32_t)s[13] << 8 | (uint32_t)s[14] << 16 | (uint32_t)s[15] << 24;
  uint32_t h = mix32(k->raddr ^ s0);
  if (k->v6)
    for (unsigned i = 0; i < 16; i += 4)
      h = mix32(h ^ ((uint32_t)k->raddr6.b[i] << 24 | (uint32_t)k->raddr6.b[i + 1] << 16 |
                     (uint32_t)k->raddr6.b[i + 2] << 8 | k->raddr6.b[i + 3]));
  h = mix32(h ^ ((uint32_t)k->rport << 16 | k->lport) ^ s1);
  h = mix32(h ^ k->proto ^ (k->v6 ? 0x100u : 0u));
  return &st->filt.hash[h & st->filt.mask];
}

static bool key_eq(const struct toe_filter *f, const struct filt_key *k)
{
  return f->lport == k->lport && f->rport == k->rport && f->raddr == k->raddr &&
         f->proto == k->proto && f->v6 == k->v6 &&
         (!k->v6 || memcmp(f->raddr6.b, k->raddr6.b, 16) == 0);
}

static struct toe_filter *find(const struct toe_stack *st, const struct filt_key *k)
{
  for (struct toe_filter *f = *filt_bucket(st, k); f; f = f->next)
    if (key_eq(f, k))
      return f;
  return NULL;
}

static struct filt_key key4(uint8_t proto, uint16_t lport, uint32_t raddr, uint16_t rport)
{
  struct filt_key k;
  memset(&k, 0, sizeof k);
  k.proto = proto;
  k.lport = lport;
  k.raddr = raddr;
  k.rport = rport;
  return k;
}

static struct filt_key key6(uint8_t proto, uint16_t lport, const struct toe_in6_addr *raddr,
                            uint16_t rport)
{
  struct filt_key k = key4(proto, lport, 0, rport);
  k.v6 = true;
  k.raddr6 = *raddr;
  return k;
}

static void add_key(struct toe_stack *st, uint8_t kind, const struct filt_key *k,
                    const struct toe_in6_addr *laddr6)
{
  struct toe_filter_table *t = &st->filt;
  if (!t->hash)
    return;
  struct toe_filter *f = find(st, k);
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
  struct toe_filter **b = filt_bucket(st, k);
  memset(f, 0, sizeof *f);
  f->proto = k->proto;
  f->kind = kind;
  f->lport = k->lport;
  f->raddr = k->raddr;
  f->rport = k->rport;
  f->v6 = k->v6;
  f->raddr6 = k->raddr6;
  if (laddr6)
    f->laddr6 = *laddr6;
  f->refs = 1;
  f->next = *b;
  *b = f;
  t->count++;
  st->ctr.steer.filters_added++;
  st->ctr.steer.filters_inuse = t->count;
}

static void del_key(struct toe_stack *st, const struct filt_key *k)
{
  struct toe_filter_table *t = &st->filt;
  if (!t->hash)
    return;
  struct toe_filter **pp = filt_bucket(st, k);
  for (; *pp; pp = &(*pp)->next) {
    struct toe_filter *f = *pp;
    if (!key_eq(f, k))
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

void toe_filt_add(struct toe_stack *st, uint8_t kind, uint8_t proto, uint16_t lport, uint32_t raddr,
                  uint16_t rport)
{
  struct filt_key k = key4(proto, lport, raddr, rport);
  add_key(st, kind, &k, NULL);
}

void toe_filt_del(struct toe_stack *st, uint8_t proto, uint16_t lport, uint32_t raddr,
                  uint16_t rport)
{
  struct filt_key k = key4(proto, lport, raddr, rport);
  del_key(st, &k);
}

void toe_filt_add6(struct toe_stack *st, uint8_t kind, uint8_t proto, uint16_t lport,
                   const struct toe_in6_addr *laddr, const struct toe_in6_addr *raddr,
                   uint16_t rport)
{
  struct filt_key k = key6(proto, lport, raddr, rport);
  add_key(st, kind, &k, laddr);
}

void toe_filt_del6(struct toe_stack *st, uint8_t proto, uint16_t lport,
                   const struct toe_in6_addr *raddr, uint16_t rport)
{
  struct filt_key k = key6(proto, lport, raddr, rport);
  del_key(st, &k);
}

struct toe_filter *toe_filt_lookup(const struct toe_stack *st, uint8_t proto, uint16_t lport,
                                   uint32_t raddr, uint16_t rport)
{
  if (!st->filt.hash)
    return NULL;
  struct filt_key k = key4(proto, lport, raddr, rport), local = key4(proto, lport, 0, 0);
  struct toe_filter *f = find(st, &k);
  return f ? f : find(st, &local);
}

struct toe_filter *toe_filt_lookup6(const struct toe_stack *st, uint8_t proto, uint16_t lport,
                                    const struct toe_in6_addr *raddr, uint16_t rport)
{
  if (!st->filt.hash)
    return NULL;
  struct filt_key k = key6(proto, lport, raddr, rport), local = key4(proto, lport, 0, 0);
  struct toe_filter *f = find(st, &k);
  return f ? f : find(st, &local);
}

bool toe_steer_owned(const struct toe_stack *st, uint8_t proto, uint16_t lport, uint32_t raddr,
                     uint16_t rport)
{
  return toe_filt_lookup(st, proto, lport, raddr, rport) != NULL;
}

bool toe_steer_owned6(const struct toe_stack *st, uint8_t proto, uint16_t lport,
                      const uint8_t raddr[16], uint16_t rport)
{
  struct toe_in6_addr a;
  memcpy(a.b, raddr, 16);
  return toe_filt_lookup6(st, proto, lport, &a, rport) != NULL;
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
        .family = f->v6 ? 6 : 4,
    };
    if (f->v6) {
      fi.laddr = 0;
      memcpy(fi.laddr6, f->laddr6.b, 16);
      memcpy(fi.raddr6, f->raddr6.b, 16);
    }
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
