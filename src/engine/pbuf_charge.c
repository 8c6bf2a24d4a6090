/*
 * Buffer accounting: which socket queue holds which pool buffer, the per-socket allowance, the
 * pressure rule and the control reserve (docs/transport.md "Buffer accounting"), and the
 * compaction of sparse chains.
 *
 * Why buffers and not bytes: the pool is a count of fixed-size buffers, and a peer chooses how
 * many bytes each of them carries. A peer that sets a tiny MSS, or sends tiny segments or
 * fragments, makes a byte limit worth up to 2 KiB of pool per byte. So every queue charges the
 * buffers it holds (as Linux charges an skb's truesize, not its payload, to the socket), each
 * socket direction has an allowance in buffers derived from its byte allowance and capped by
 * cfg.sock_max_bufs, and no socket may dig into the reserve that ARP, ICMP, TCP's RST/ACK/SYN-ACK
 * and the driver's receive buffers use. Under pressure (half of what is above the reserve
 * charged) only sockets that move data (gave a buffer back within the last second) grow, to their
 * share of the rest (at most cfg.sock_min_bufs); the others stay at a floor of 8 buffers. So the
 * sockets that filled the pool stall while a well-behaved newcomer still gets buffers. (A limit,
 * not a cure: an attacker with thousands of connections can still fill the data part of the pool, 8
 * buffers at a time; never the reserve, so ARP, ping and handshakes survive.)
 *
 * The charge lives in the buffer (pbuf.owner) and is dropped by the pool when the buffer's last
 * reference goes, so queues may move, split, share and hand buffers to the driver without any
 * bookkeeping of their own. A buffer that outlives its socket (still on the wire when the socket
 * closes) is uncharged from whatever socket took the slot since; the counts saturate at zero,
 * so at worst a new socket briefly holds a few buffers more than its allowance.
 */
#include "engine/div64.h"
#include "engine/stack.h"

#include <string.h>

#define DEFAULT_SOCK_MIN 256u
/* What an owner that gives nothing back may hold under pressure: enough to start (an initial
 * window's worth of small segments, a few datagrams), little enough that it takes hundreds of
 * such sockets to fill the half of the pool above the pressure level. */
#define PRESSURE_FLOOR 8u
/* An owner that gave a buffer back this recently (ms) is moving data. */
#define PROGRESS_MS 1000u
#define MIN_RESERVE 16u
#define MIN_SOCK_MAX 16u

static uint32_t owner_count(const struct toe_config *cfg)
{
  uint64_t n = 1u + 2ull * cfg->tcp_socks + cfg->udp_socks;
  return n > UINT32_MAX / 2 ? 0 : (uint32_t)n;
}

size_t toe_pbuf_charge_mem_size(const struct toe_config *cfg)
{
  return 2u * (size_t)owner_count(cfg) * sizeof(uint32_t);
}

static uint32_t now_ms(const struct toe_stack *st)
{
  return (uint32_t)toe_div1000000(st->now); /* no 64-bit division on 32-bit targets */
}

void toe_pbuf_charge_init(struct toe_stack *st, void *mem)
{
  struct toe_pbuf_pool *pool = &st->pool;
  const struct toe_config *cfg = &st->cfg;
  pool->owners = owner_count(cfg);
  pool->charge = mem;
  pool->freed_ms = pool->charge + pool->owners;
  memset(pool->charge, 0, 2u * (size_t)pool->owners * sizeof(uint32_t));
  pool->charged = 0;
  pool->active = 0;

  uint32_t count = pool->count;
  uint32_t r = cfg->pbuf_reserve;
  if (r == 0) {
    r = count / 32u;
    if (r < MIN_RESERVE)
      r = MIN_RESERVE;
  }
  if (r > count / 2u) /* stack.c refuses an explicit one this large; a default on a tiny pool */
    r = count / 2u;
  pool->reserve = r;
  uint32_t data = count - r;
  pool->pressure = data / 2u;

  uint32_t mx = cfg->sock_max_bufs;
  if (mx == 0) {
    mx = count / 8u;
    if (mx < MIN_SOCK_MAX)
      mx = MIN_SOCK_MAX;
  }
  pool->sock_max = mx;
  uint32_t mn = cfg->sock_min_bufs ? cfg->sock_min_bufs : DEFAULT_SOCK_MIN;
  pool->sock_min = mn > mx ? mx : mn;
}

uint32_t toe_pbuf_owner_udp(const struct toe_stack *st, uint32_t udp_index)
{
  return 1u + 2u * st->cfg.tcp_socks + udp_index;
}

uint32_t toe_pbuf_owner_held(const struct toe_stack *st, uint32_t owner)
{
  const struct toe_pbuf_pool *pool = &st->pool;
  return owner != 0 && owner < pool->owners ? pool->charge[owner] : 0;
}

uint32_t toe_pbuf_bufs_for_bytes(const struct toe_stack *st, uint32_t bytes)
{
  uint32_t per = st->pool.size / 2u;
  if (per == 0)
    per = 1;
  /* + 8: the partly filled buffers at the edges of a queue (tail, head, out-of-order ranges) */
  uint64_t n = (uint64_t)(bytes / per) + 8u; /* a 32-bit division: no libgcc helper */
  return n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
}

/* What `owner` (holding `held`) may hold while the pool is under pressure: an owner that moves
 * data (gave a buffer back lately) its share of what lies above the pressure level, divided among
 * the owners holding buffers (at most sock_min, at least the floor); one that only takes, the
 * floor. */
static uint32_t pressure_share(const struct toe_stack *st, uint32_t owner, uint32_t held)
{
  const struct toe_pbuf_pool *pool = &st->pool;
  uint32_t f = pool->freed_ms[owner];
  if (f == 0 || now_ms(st) - f > PROGRESS_MS)
    return PRESSURE_FLOOR;
  uint32_t active = pool->active + (held == 0 ? 1u : 0u);
  uint32_t zone = pool->count - pool->reserve - pool->pressure;
  uint32_t share = zone / (active ? active : 1u);
  if (share > pool->sock_min)
    share = pool->sock_min;
  return share < PRESSURE_FLOOR ? PRESSURE_FLOOR : share;
}

int toe_pbuf_charge_check(struct toe_stack *st, uint32_t owner, uint32_t n, uint32_t limit)
{
  struct toe_pbuf_pool *pool = &st->pool;
  if (owner == 0 || owner >= pool->owners)
    return 0; /* not a socket queue: nothing to account */
  uint64_t held = pool->charge[owner];
  if (limit > pool->sock_max)
    limit = pool->sock_max;
  if (held + n > limit) {
    st->ctr.pbuf.refused_sock++;
    return -TOE_ENOBUFS;
  }
  if ((uint64_t)pool->nfree < (uint64_t)pool->reserve + n) {
    st->ctr.pbuf.refused_rsv++;
    return -TOE_ENOBUFS;
  }
  if ((uint64_t)pool->charged + n > pool->pressure && held + n > pressure_share(st, owner, held)) {
    st->ctr.pbuf.refused_press++;
    return -TOE_ENOBUFS;
  }
  return 0;
}

uint32_t toe_pbuf_charge_room(const struct toe_stack *st, uint32_t owner, uint32_t limit)
{
  const struct toe_pbuf_pool *pool = &st->pool;
  if (owner == 0 || owner >= pool->owners)
    return UINT32_MAX;
  uint32_t held = pool->charge[owner];
  if (limit > pool->sock_max)
    limit = pool->sock_max;
  uint32_t room = limit > held ? limit - held : 0;
  uint32_t spare = pool->nfree > pool->reserve ? pool->nfree - pool->reserve : 0;
  if (room > spare)
    room = spare;
  if (pool->charged >= pool->pressure) {
    uint32_t share = pressure_share(st, owner, held);
    uint32_t r = share > held ? share - held : 0;
    if (room > r)
      room = r;
  } else if (room > pool->pressure - pool->charged + pressure_share(st, owner, held)) {
    room = pool->pressure - pool->charged + pressure_share(st, owner, held);
  }
  return room;
}

void toe_pbuf_charge(struct toe_stack *st, struct toe_pbuf *p, uint32_t owner)
{
  struct toe_pbuf_pool *pool = &st->pool;
  if (owner == 0 || owner >= pool->owners)
    return;
  for (; p; p = p->next) {
    if (p->owner != 0)
      continue; /* charged already (to this owner or, shared, to another): once is enough */
    p->owner = owner;
    if (pool->charge[owner]++ == 0)
      pool->active++;
    pool->charged++;
  }
  st->ctr.pbuf.charged = pool->charged;
}

void toe_pbuf_uncharge(struct toe_stack *st, struct toe_pbuf *p)
{
  struct toe_pbuf_pool *pool = &st->pool;
  uint32_t o = p->owner;
  p->owner = 0;
  if (o == 0 || o >= pool->owners)
    return;
  if (pool->charge[o] > 0 && --pool->charge[o] == 0 && pool->active > 0)
    pool->active--;
  uint32_t ms = now_ms(st);
  pool->freed_ms[o] = ms ? ms : 1u; /* 0 means never */
  if (pool->charged > 0)
    pool->charged--;
  st->ctr.pbuf.charged = pool->charged;
}

struct toe_pbuf *toe_pbuf_alloc_charged(struct toe_stack *st, uint16_t headroom, uint32_t owner,
                                        uint32_t limit)
{
  if (toe_pbuf_charge_check(st, owner, 1, limit) < 0)
    return NULL;
  struct toe_pbuf *p = toe_pbuf_alloc(st, headroom);
  if (p)
    toe_pbuf_charge(st, p, owner);
  return p;
}

uint32_t toe_pbuf_chain_bufs(const struct toe_pbuf *p)
{
  uint32_t n = 0;
  for (; p; p = p->next)
    n++;
  return n;
}

struct toe_pbuf *toe_pbuf_compact(struct toe_stack *st, struct toe_pbuf *p, uint16_t headroom)
{
  struct toe_pbuf_pool *pool = &st->pool;
  if (!p || headroom >= pool->size)
    return p;
  uint32_t len = p->tot_len;
  uint32_t nb = toe_pbuf_chain_bufs(p);
  uint32_t first = pool->size - headroom;
  uint32_t need = len <= first ? 1u : 1u + (len - first + pool->size - 1u) / pool->size;
  /* Sparse: buffers saved, and on average less than half of each buffer used. A chain of
   * ordinary segments (or one jumbo frame) is left alone: copying it would buy nothing. */
  if (nb <= need || (uint64_t)len * 2u >= (uint64_t)nb * pool->size)
    return p;
  if (pool->nfree < pool->reserve + need) {
    st->ctr.pbuf.compact_nobuf++;
    return p;
  }
  struct toe_pbuf *head = NULL, *last = NULL;
  uint32_t done = 0;
  do {
    struct toe_pbuf *b = toe_pbuf_alloc(st, head ? 0 : headroom);
    if (!b) { /* cannot happen after the check above; stay safe */
      toe_pbuf_free(st, head);
      st->ctr.pbuf.compact_nobuf++;
      return p;
    }
    uint32_t k = toe_pbuf_tailroom(b);
    if (k > len - done)
      k = len - done;
    toe_pbuf_copy_out(p, done, b->data, k);
    b->len = (uint16_t)k;
    b->tot_len = len - done;
    done += k;
    if (last)
      last->next = b;
    else
      head = b;
    last = b;
  } while (done < len);
  head->flags = p->flags;
  memcpy(head->meta, p->meta, sizeof(head->meta));
  head->qnext = p->qnext;
  p->qnext = NULL;
  toe_pbuf_free(st, p);
  st->ctr.pbuf.compacted++;
  return head;
}
