/*
 * The neighbour table: entries carved from the stack's memory at creation, a power-of-two hash
 * keyed by IPv4 address, a free list, and an LRU list of the entries in use for eviction.
 * The protocol (what moves entries between states) is in arp.c.
 */
#include "engine/arp.h"
#include "engine/stack.h"

#include <string.h>

/* Buckets: the smallest power of two >= entries, so chains average at most one entry. */
static uint32_t hash_buckets(uint32_t entries)
{
  uint32_t n = 1;
  while (n < entries && n < (1u << 30))
    n <<= 1;
  return n;
}

static size_t round64(size_t n)
{
  return (n + 63) & ~(size_t)63;
}

size_t toe_arp_mem_size(const struct toe_config *cfg)
{
  size_t ent = (size_t)cfg->arp_entries * sizeof(struct toe_neigh);
  size_t buckets = (size_t)hash_buckets(cfg->arp_entries) * sizeof(struct toe_neigh *);
  return round64(ent) + round64(buckets);
}

void toe_arp_init(struct toe_stack *st, void *mem)
{
  struct toe_arp *a = &st->arp;
  uint32_t n = st->cfg.arp_entries;
  uint32_t nb = hash_buckets(n);
  uint8_t *p = mem;

  memset(a, 0, sizeof(*a));
  a->entries = n ? (struct toe_neigh *)(void *)p : NULL;
  p += round64((size_t)n * sizeof(struct toe_neigh));
  a->hash = (struct toe_neigh **)(void *)p;
  a->hash_mask = nb - 1;
  for (uint32_t i = 0; i < nb; i++)
    a->hash[i] = NULL;

  /* The senders we learn are chosen by whoever is on the link; keying the bucket choice with the
   * device secret keeps them from aiming every entry at one chain. */
  for (int i = 0; i < 4; i++)
    a->hash_key = a->hash_key << 8 | st->cfg.secret[i];

  /* Free list in index order, so entry 0 is handed out first (predictable for tests). */
  for (uint32_t i = n; i-- > 0;) {
    struct toe_neigh *e = &a->entries[i];
    memset(e, 0, sizeof(*e));
    toe_timer_init(&e->timer, toe_arp_timer_expired);
    e->hnext = a->free_list;
    a->free_list = e;
  }
}

static uint32_t bucket(const struct toe_arp *a, uint32_t ip)
{
  /* murmur3's finaliser over the keyed address: every address bit reaches the low bits. */
  uint32_t x = ip ^ a->hash_key;
  x ^= x >> 16;
  x *= 0x85ebca6bu;
  x ^= x >> 13;
  x *= 0xc2b2ae35u;
  x ^= x >> 16;
  return x & a->hash_mask;
}

struct toe_neigh *toe_neigh_find(const struct toe_arp *a, uint32_t ip)
{
  for (struct toe_neigh *e = a->hash[bucket(a, ip)]; e; e = e->hnext)
    if (e->ip == ip)
      return e;
  return NULL;
}

const struct toe_neigh *toe_arp_lookup(const struct toe_stack *st, uint32_t ip)
{
  return toe_neigh_find(&st->arp, ip);
}

static void lru_unlink(struct toe_arp *a, struct toe_neigh *e)
{
  if (e->lru_prev)
    e->lru_prev->lru_next = e->lru_next;
  else
    a->lru_head = e->lru_next;
  if (e->lru_next)
    e->lru_next->lru_prev = e->lru_prev;
  else
    a->lru_tail = e->lru_prev;
  e->lru_prev = e->lru_next = NULL;
}

static void lru_append(struct toe_arp *a, struct toe_neigh *e)
{
  e->lru_next = NULL;
  e->lru_prev = a->lru_tail;
  if (a->lru_tail)
    a->lru_tail->lru_next = e;
  else
    a->lru_head = e;
  a->lru_tail = e;
}

void toe_neigh_touch(struct toe_arp *a, struct toe_neigh *e)
{
  if (a->lru_tail == e)
    return;
  lru_unlink(a, e);
  lru_append(a, e);
}

static void hash_unlink(struct toe_arp *a, struct toe_neigh *e)
{
  struct toe_neigh **pp = &a->hash[bucket(a, e->ip)];
  while (*pp && *pp != e)
    pp = &(*pp)->hnext;
  if (*pp)
    *pp = e->hnext;
  e->hnext = NULL;
}

void toe_neigh_release(struct toe_stack *st, struct toe_neigh *e)
{
  struct toe_arp *a = &st->arp;

  if (e->state == TOE_NEIGH_FREE)
    return;
  toe_timer_cancel(st, &e->timer);
  toe_pbuf_free_queue(st, e->qhead);
  hash_unlink(a, e);
  lru_unlink(a, e);
  e->state = TOE_NEIGH_FREE;
  e->qhead = e->qtail = NULL;
  e->qlen = 0;
  e->hnext = a->free_list;
  a->free_list = e;
  a->count--;
  st->ctr.arp.entries_inuse = a->count;
}

/* The least recently used entry that may be reclaimed, or NULL. */
static struct toe_neigh *eviction_victim(struct toe_arp *a, bool for_output)
{
  for (struct toe_neigh *e = a->lru_head; e; e = e->lru_next) {
    if (e->state == TOE_NEIGH_INCOMPLETE)
      continue;
    if (for_output || e->state == TOE_NEIGH_FAILED || !(e->flags & TOE_NEIGH_F_USED))
      return e;
  }
  return NULL;
}

struct toe_neigh *toe_neigh_alloc(struct toe_stack *st, uint32_t ip, bool for_output)
{
  struct toe_arp *a = &st->arp;
  struct toe_neigh *e = a->free_list;

  if (!e) {
    struct toe_neigh *victim = eviction_victim(a, for_output);
    if (!victim)
      return NULL;
    toe_neigh_release(st, victim);
    st->ctr.arp.entries_evicted++;
    e = a->free_list;
  }
  a->free_list = e->hnext;

  memset(e, 0, sizeof(*e));
  toe_timer_init(&e->timer, toe_arp_timer_expired);
  e->ip = ip;
  e->state = TOE_NEIGH_INCOMPLETE;
  e->updated = e->used = st->now;

  uint32_t b = bucket(a, ip);
  e->hnext = a->hash[b];
  a->hash[b] = e;
  lru_append(a, e);
  a->count++;
  st->ctr.arp.entries_inuse = a->count;
  st->ctr.arp.entries_created++;
  return e;
}
