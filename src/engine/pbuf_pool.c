/*
 * The packet buffer pool and the pbuf operations of include/toe/pbuf.h.
 *
 * Layout in the stack's memory (toe_pbuf_pool_mem_size() bytes, 64-byte aligned):
 *   [descriptors: count x struct toe_pbuf][pad to 64][storage: count x stride][charge table]
 * where stride is pbuf_size rounded up to 64 bytes, so every buffer's storage starts on a cache
 * line (and an IPv4 header behind a 14-byte Ethernet header with 2 bytes of headroom is 4-byte
 * aligned).
 *
 * Invariants (checked by the tests):
 *   - a free descriptor has refcnt 0 and sits on the free list (linked by `next`);
 *   - a held descriptor has refcnt >= 1; inuse == allocs - frees == count - nfree;
 *   - in a chain, every buffer's tot_len is the number of bytes from it to the end of the chain
 *     (so the head's tot_len is the packet length, and any suffix of a chain is a valid chain).
 */
#include "engine/stack.h"
#include "wire/checksum.h"

#include <string.h>

#define POOL_ALIGN 64u

static size_t align_up(size_t v, size_t a)
{
  return (v + a - 1) & ~(a - 1);
}

static size_t pool_stride(uint16_t size)
{
  return align_up(size, POOL_ALIGN);
}

size_t toe_pbuf_pool_mem_size(const struct toe_config *cfg)
{
  if (cfg->pbuf_count == 0 || cfg->pbuf_size == 0)
    return 0;
  size_t count = cfg->pbuf_count;
  size_t stride = pool_stride(cfg->pbuf_size);
  /* Overflow matters on 32-bit targets (firmware): refuse rather than wrap. */
  if (count > (SIZE_MAX / 2) / (sizeof(struct toe_pbuf) + stride))
    return 0;
  size_t charge = toe_pbuf_charge_mem_size(cfg);
  if (charge == 0)
    return 0;
  return align_up(count * sizeof(struct toe_pbuf), POOL_ALIGN) + count * stride +
         align_up(charge, POOL_ALIGN);
}

void toe_pbuf_pool_init(struct toe_stack *st, void *mem)
{
  struct toe_pbuf_pool *pool = &st->pool;
  uint32_t count = st->cfg.pbuf_count;
  size_t stride = pool_stride(st->cfg.pbuf_size);

  pool->descs = mem;
  pool->storage = (uint8_t *)mem + align_up((size_t)count * sizeof(struct toe_pbuf), POOL_ALIGN);
  pool->count = count;
  pool->nfree = count;
  pool->size = st->cfg.pbuf_size;
  pool->free = NULL;
  /* Built back to front so buffers are handed out in index order (easier to read in a debugger). */
  for (uint32_t i = count; i-- > 0;) {
    struct toe_pbuf *p = &pool->descs[i];
    memset(p, 0, sizeof(*p));
    p->index = i;
    p->base = pool->storage + (size_t)i * stride;
    p->cap = pool->size;
    p->data = p->base;
    p->next = pool->free;
    pool->free = p;
  }
  /* the per-owner charge table follows the storage */
  toe_pbuf_charge_init(st, pool->storage + (size_t)count * stride);
}

/* True if `p` is one of this pool's descriptors (anything else handed to free is a caller bug). */
static bool pool_owns(const struct toe_pbuf_pool *pool, const struct toe_pbuf *p)
{
  return p >= pool->descs && p < pool->descs + pool->count && p == &pool->descs[p->index];
}

struct toe_pbuf *toe_pbuf_alloc(struct toe_stack *st, uint16_t headroom)
{
  struct toe_pbuf_pool *pool = &st->pool;
  if (headroom > pool->size)
    return NULL;
  struct toe_pbuf *p = pool->free;
  if (!p) {
    st->ctr.pbuf.alloc_failures++;
    return NULL;
  }
  pool->free = p->next;
  pool->nfree--;
  p->next = NULL;
  p->qnext = NULL;
  p->data = p->base + headroom;
  p->tot_len = 0;
  p->len = 0;
  p->flags = 0;
  p->refcnt = 1;
  p->owner = 0;
  p->gso_size = 0;
  memset(p->meta, 0, sizeof(p->meta));
  st->ctr.pbuf.allocs++;
  st->ctr.pbuf.inuse++;
  if (st->ctr.pbuf.inuse > st->ctr.pbuf.inuse_max)
    st->ctr.pbuf.inuse_max = st->ctr.pbuf.inuse;
  return p;
}

/* Drops one reference on the single buffer `p`; returns it to the pool at zero. Returns false if
 * `p` was not a held buffer of this pool (counted; the free list is left untouched). */
static bool pbuf_put_one(struct toe_stack *st, struct toe_pbuf *p)
{
  struct toe_pbuf_pool *pool = &st->pool;
  if (!pool_owns(pool, p) || p->refcnt == 0) {
    /* A double free (or a pointer that never came from this pool): linking it into the free list
     * again would hand the same storage out twice later. Count the bug and leave everything as is.
     */
    st->ctr.pbuf.double_free++;
    return false;
  }
  /* A loop, not a recursion, for a view's viewed buffer (which is never a view itself): this
   * stays small enough to inline into toe_pbuf_free(). */
  while (--p->refcnt == 0) {
    if (p->owner)
      toe_pbuf_uncharge(st, p); /* wherever a charged buffer ends, its socket's charge ends */
    struct toe_pbuf *viewed = p->ref;
    if (viewed) {
      /* a view (toe_pbuf_ref_range): its own storage again, then drop the viewed buffer */
      p->ref = NULL;
      p->base = pool->storage + (size_t)p->index * pool_stride(pool->size);
      p->cap = pool->size;
    }
    p->qnext = NULL;
    p->next = pool->free;
    pool->free = p;
    pool->nfree++;
    st->ctr.pbuf.frees++;
    st->ctr.pbuf.inuse--;
    if (!viewed)
      break;
    p = viewed;
  }
  return true;
}

void toe_pbuf_free(struct toe_stack *st, struct toe_pbuf *p)
{
  /* Every buffer of the chain gets its own decrement (toe_pbuf_ref() increments each), so a chain
   * whose tail is shared with another packet frees only what nobody else holds. `next` is read
   * before the buffer may go back to the pool (where next becomes the free-list link). */
  while (p) {
    struct toe_pbuf *next = p->next;
    if (!pbuf_put_one(st, p))
      return; /* the rest of a corrupt chain cannot be trusted */
    p = next;
  }
}

void toe_pbuf_free_queue(struct toe_stack *st, struct toe_pbuf *q)
{
  while (q) {
    struct toe_pbuf *n = q->qnext;
    toe_pbuf_free(st, q);
    q = n;
  }
}

void toe_pbuf_ref(struct toe_pbuf *p)
{
  for (; p; p = p->next)
    p->refcnt++;
}

uint8_t *toe_pbuf_push(struct toe_pbuf *p, uint16_t n)
{
  if (n > toe_pbuf_headroom(p))
    return NULL;
  p->data -= n;
  p->len = (uint16_t)(p->len + n);
  p->tot_len += n;
  return p->data;
}

uint8_t *toe_pbuf_pull(struct toe_pbuf *p, uint16_t n)
{
  if (n > p->len)
    return NULL;
  p->data += n;
  p->len = (uint16_t)(p->len - n);
  p->tot_len -= n;
  return p->data;
}

uint8_t *toe_pbuf_put(struct toe_pbuf *p, uint16_t n)
{
  if (n > toe_pbuf_tailroom(p))
    return NULL;
  uint8_t *tail = p->data + p->len;
  p->len = (uint16_t)(p->len + n);
  p->tot_len += n;
  return tail;
}

void toe_pbuf_trim(struct toe_stack *st, struct toe_pbuf *p, uint32_t len)
{
  if (!p || len >= p->tot_len)
    return;
  /* Walk to the buffer holding byte len-1 (the head when len == 0), fixing tot_len on the way. */
  uint32_t left = len;
  for (;;) {
    if (left <= p->len) {
      p->tot_len = left;
      p->len = (uint16_t)left;
      toe_pbuf_free(st, p->next);
      p->next = NULL;
      return;
    }
    if (!p->next) {
      p->tot_len = p->len; /* tot_len claimed more than the chain holds: now it is exact */
      return;
    }
    p->tot_len = left;
    left -= p->len;
    p = p->next;
  }
}

size_t toe_pbuf_copy_out(const struct toe_pbuf *p, uint32_t off, void *dst, size_t len)
{
  uint8_t *d = dst;
  size_t done = 0;
  for (; p && off >= p->len; p = p->next)
    off -= p->len;
  for (; p && done < len; p = p->next) {
    size_t n = p->len - off;
    if (n > len - done)
      n = len - done;
    memcpy(d + done, p->data + off, n);
    done += n;
    off = 0;
  }
  return done;
}

struct toe_pbuf *toe_pbuf_from_bytes(struct toe_stack *st, const void *src, size_t len,
                                     uint16_t headroom)
{
  if (len > UINT32_MAX || headroom > st->pool.size)
    return NULL;
  const uint8_t *s = src;
  struct toe_pbuf *head = NULL, *last = NULL;
  size_t done = 0;
  do {
    struct toe_pbuf *p = toe_pbuf_alloc(st, head ? 0 : headroom);
    if (!p) {
      toe_pbuf_free(st, head);
      return NULL;
    }
    size_t n = toe_pbuf_tailroom(p);
    if (n > len - done)
      n = len - done;
    if (n)
      memcpy(p->data, s + done, n);
    p->len = (uint16_t)n;
    p->tot_len = (uint32_t)(len - done);
    done += n;
    if (last)
      last->next = p;
    else
      head = p;
    last = p;
  } while (done < len);
  return head;
}

/*
 * Removes the first `k` bytes of `q` (the buffer after `prev` in a chain; k < q->len). If `q` is
 * shared with another packet, its descriptor must not change under the other holder: it is then
 * replaced in this chain by a fresh buffer holding the rest of its bytes.
 */
static int pbuf_consume_front(struct toe_stack *st, struct toe_pbuf *prev, struct toe_pbuf *q,
                              uint16_t k)
{
  if (q->refcnt == 1) {
    q->data += k;
    q->len = (uint16_t)(q->len - k);
    q->tot_len -= k;
    return 0;
  }
  struct toe_pbuf *r = toe_pbuf_alloc(st, 0);
  if (!r)
    return -TOE_ENOBUFS;
  r->len = (uint16_t)(q->len - k);
  memcpy(r->data, q->data + k, r->len);
  r->tot_len = q->tot_len - k;
  r->flags = q->flags;
  r->next = q->next; /* our references on the buffers after q carry over to r */
  prev->next = r;
  q->next = NULL;
  toe_pbuf_free(st, q); /* drops only our reference on q itself */
  return 0;
}

int toe_pbuf_linearize_head(struct toe_stack *st, struct toe_pbuf *p, uint16_t n)
{
  if (n <= p->len)
    return 0;
  if (n > p->tot_len || n > p->cap)
    return -TOE_EINVAL;
  uint16_t need = (uint16_t)(n - p->len);
  if (toe_pbuf_tailroom(p) < need) {
    /* Slide the bytes toward the front, keeping as much headroom as still leaves room for n. */
    uint8_t *to = p->base + (p->cap - n);
    memmove(to, p->data, p->len);
    p->data = to;
  }
  while (need) {
    struct toe_pbuf *q = p->next;
    if (!q)
      return -TOE_EINVAL; /* tot_len lied: the chain is shorter than it claims */
    uint16_t k = q->len < need ? q->len : need;
    memcpy(p->data + p->len, q->data, k);
    if (k == q->len) {
      /* q is used up: unlink it and drop our reference (shared or not). */
      p->next = q->next;
      q->next = NULL;
      toe_pbuf_free(st, q);
    } else {
      int rc = pbuf_consume_front(st, p, q, k);
      if (rc < 0)
        return rc; /* the bytes moved so far stay moved: the chain is still consistent */
    }
    p->len = (uint16_t)(p->len + k);
    need = (uint16_t)(need - k);
  }
  return 0;
}

void toe_pbuf_cat(struct toe_pbuf *head, struct toe_pbuf *tail)
{
  if (!head || !tail)
    return;
  /* Every buffer of `head` gains tail's bytes in its tot_len (see the invariant above). */
  struct toe_pbuf *p = head;
  for (;;) {
    p->tot_len += tail->tot_len;
    if (!p->next)
      break;
    p = p->next;
  }
  p->next = tail;
}

/* ---- Chain helpers (the one copy of each, used by TCP's queues, IPv4 and ICMP) ---- */

struct toe_pbuf *toe_pbuf_drop_front(struct toe_stack *st, struct toe_pbuf *p, uint32_t n)
{
  struct toe_pbuf *qn = p->qnext;
  uint64_t meta[4];
  memcpy(meta, p->meta, sizeof(meta));
  struct toe_pbuf *head = p;
  while (p->next && n >= p->len) {
    struct toe_pbuf *nx = p->next;
    n -= p->len;
    p->next = NULL;
    p->qnext = NULL;
    toe_pbuf_free(st, p); /* nx->tot_len already counts from nx on (chain invariant) */
    p = nx;
  }
  if (n > 0)
    (void)toe_pbuf_pull(p, (uint16_t)n); /* n < p->len here, since n < tot_len */
  if (p != head)
    memcpy(p->meta, meta, sizeof(meta));
  p->qnext = qn;
  return p;
}

struct toe_pbuf *toe_pbuf_copy_range(struct toe_stack *st, const struct toe_pbuf *src, uint32_t off,
                                     uint32_t len, uint16_t headroom)
{
  struct toe_pbuf *head = NULL;
  uint32_t done = 0;
  do {
    struct toe_pbuf *b = toe_pbuf_alloc(st, head ? 0 : headroom);
    if (!b)
      goto fail;
    uint32_t n = len - done;
    if (n > toe_pbuf_tailroom(b))
      n = toe_pbuf_tailroom(b);
    if (n == 0 && done < len) { /* a buffer with no room at all: cannot make progress */
      toe_pbuf_free(st, b);
      goto fail;
    }
    uint8_t *d = toe_pbuf_put(b, (uint16_t)n);
    if (n && toe_pbuf_copy_out(src, off + done, d, n) != n) {
      toe_pbuf_free(st, b);
      goto fail;
    }
    done += n;
    if (head)
      toe_pbuf_cat(head, b);
    else
      head = b;
  } while (done < len);
  return head;
fail:
  toe_pbuf_free(st, head);
  return NULL;
}

struct toe_pbuf *toe_pbuf_ref_range(struct toe_stack *st, struct toe_pbuf *src, uint32_t off,
                                    uint32_t len)
{
  struct toe_pbuf *head = NULL, *tail = NULL;
  if (len == 0)
    return NULL;
  for (; src && off >= src->len; src = src->next)
    off -= src->len;
  uint32_t done = 0;
  for (; src && done < len; src = src->next, off = 0) {
    uint32_t n = src->len - off;
    if (n == 0)
      continue;
    if (n > len - done)
      n = len - done;
    struct toe_pbuf *v = toe_pbuf_alloc(st, 0);
    if (!v)
      goto fail;
    /* a view of a view views the buffer that owns the storage */
    struct toe_pbuf *t = src->ref ? src->ref : src;
    t->refcnt++;
    v->ref = t;
    v->base = v->data = src->data + off;
    v->cap = v->len = (uint16_t)n;
    v->tot_len = len - done; /* every buffer counts to the end of the finished chain */
    if (tail)
      tail->next = v;
    else
      head = v;
    tail = v;
    done += n;
  }
  if (done < len)
    goto fail;
  return head;
fail:
  toe_pbuf_free(st, head);
  return NULL;
}

uint32_t toe_pbuf_count(const struct toe_pbuf *p)
{
  uint32_t n = 0;
  for (; p; p = p->next)
    n++;
  return n;
}

bool toe_pbuf_shared(const struct toe_pbuf *p)
{
  for (; p; p = p->next)
    if (p->refcnt > 1)
      return true;
  return false;
}

uint32_t toe_pbuf_pool_free_count(const struct toe_stack *st)
{
  return st->pool.nfree;
}

uint32_t toe_pbuf_pool_reserve(const struct toe_stack *st)
{
  return st->pool.reserve;
}

uint32_t toe_pbuf_pool_charged(const struct toe_stack *st)
{
  return st->pool.charged;
}

uint32_t toe_pbuf_csum(const struct toe_pbuf *p, uint32_t off, uint32_t len)
{
  uint32_t sum = 0;
  uint32_t pos = 0; /* offset of the next piece within the checksummed region */
  for (; p && off >= p->len; p = p->next)
    off -= p->len;
  for (; p && pos < len; p = p->next) {
    uint32_t n = p->len - off;
    if (n > len - pos)
      n = len - pos;
    if (n)
      sum = toe_csum_combine(sum, toe_csum_partial(p->data + off, n, 0), pos);
    pos += n;
    off = 0;
  }
  return sum;
}
