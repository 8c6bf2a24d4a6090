/*
 * Single-producer single-consumer rings in shared memory (docs/transport.md "Rings").
 *
 * A ring is an array of `size` fixed-size entries (size a power of two) plus a struct
 * toe_abi_ring_ctl holding two free-running uint32 indices: `prod` (next entry the producer will
 * write) and `cons` (next entry the consumer will read). Entry i lives in slot i & (size - 1);
 * prod - cons (mod 2^32) is the number of entries in the ring, 0..size. Nothing else is shared.
 *
 * Memory ordering (C11 atomics on the shared indices, plain copies for the entries):
 *   producer: write entries; store-release prod.          consumer: load-acquire prod; copy
 *   producer: load-acquire cons before reusing slots.      entries out; store-release cons.
 * The release/acquire pairs make an entry's bytes visible before its index, and make the
 * consumer's reads of a slot finish before the producer may overwrite it.
 *
 * Each side keeps its own index and a cached copy of the peer's index in PRIVATE memory (struct
 * toe_ring): it never reads its own index back from shared memory (a hostile peer may scribble
 * on it), and it reads the peer's index only when the cached one says "empty" or "full", which
 * keeps the peer's cache line from bouncing on every entry.
 *
 * Hostile peers. The device treats every index it reads as untrusted: a producer index claiming
 * more than `size` entries, or moving backwards, and a consumer index claiming to have consumed
 * entries never produced, or moving backwards, are protocol errors: the call returns -TOE_EPROTO,
 * reads nothing out of bounds, and the ring stays broken (every later call returns the error).
 * Entries are copied out of shared memory (toe_ring_cons_read) before anyone validates them, so
 * the peer cannot change a descriptor between its check and its use (no TOCTOU).
 *
 * Nothing here allocates, blocks or takes a lock; a ring is used by one thread per side.
 */
#ifndef TOE_TRANSPORT_RING_H
#define TOE_TRANSPORT_RING_H

#include "toe/abi.h"
#include "toe/errno.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* The indices are shared between processes: the atomics must be plain lock-free 32-bit words
 * (a lock-based atomic would use a lock in one process's private memory). */
_Static_assert(sizeof(_Atomic uint32_t) == sizeof(uint32_t), "atomic uint32 has a different size");
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "32-bit atomics must be lock-free");

/* One side's view of a ring. All fields are private to that side. */
struct toe_ring {
  struct toe_abi_ring_ctl *ctl; /* shared */
  uint8_t *entries;             /* shared: size * esize bytes */
  uint32_t size;                /* entries, a power of two */
  uint32_t mask;                /* size - 1 */
  uint32_t esize;               /* bytes per entry */
  uint32_t local;               /* producer: next index to write; consumer: next index to read */
  uint32_t cached;              /* producer: consumer index last seen; consumer: producer's */
  uint32_t flags;               /* consumer: what it last wrote to ctl->flags */
  uint32_t rung;                /* producer: the ctl->flags (with a sleep count) it last rang for */
  uint32_t rung_cons;           /* producer: the consumer index when it rang */
  bool count_sleeps;            /* consumer: numbers its sleeps (toe_ring_cons_count_sleeps) */
  int err;                      /* 0, or -TOE_EPROTO once the peer broke the protocol (sticky) */
};

static inline _Atomic uint32_t *toe_ring_atomic_(uint32_t *p)
{
  return (_Atomic uint32_t *)(void *)p;
}

/*
 * Resets a ring's shared control block before it is shared: both indices = `start`, no flags.
 * The side that creates the region (the device) calls it. A start near UINT32_MAX is legal and
 * exercises wrap-around at once.
 */
static inline void toe_ring_ctl_reset(struct toe_abi_ring_ctl *ctl, uint32_t start)
{
  memset(ctl, 0, sizeof(*ctl));
  atomic_store_explicit(toe_ring_atomic_(&ctl->prod), start, memory_order_relaxed);
  atomic_store_explicit(toe_ring_atomic_(&ctl->cons), start, memory_order_relaxed);
  atomic_store_explicit(toe_ring_atomic_(&ctl->flags), 0, memory_order_release);
}

static inline int toe_ring_init_(struct toe_ring *r, struct toe_abi_ring_ctl *ctl, void *entries,
                                 uint32_t size, uint32_t esize)
{
  memset(r, 0, sizeof(*r));
  if (!ctl || !entries || size == 0 || (size & (size - 1)) != 0 || size > (1u << 31) || esize == 0)
    return -TOE_EINVAL;
  r->ctl = ctl;
  r->entries = (uint8_t *)entries;
  r->size = size;
  r->mask = size - 1;
  r->esize = esize;
  return 0;
}

/*
 * Attaches as the producer. Takes the current indices from shared memory (at attach time the
 * peer has not started, so they are trustworthy only as far as they are consistent): a ring that
 * already claims more than `size` entries is refused with -TOE_EPROTO.
 */
static inline int toe_ring_init_prod(struct toe_ring *r, struct toe_abi_ring_ctl *ctl,
                                     void *entries, uint32_t size, uint32_t esize)
{
  int rc = toe_ring_init_(r, ctl, entries, size, esize);
  if (rc < 0)
    return rc;
  r->local = atomic_load_explicit(toe_ring_atomic_(&ctl->prod), memory_order_relaxed);
  r->cached = atomic_load_explicit(toe_ring_atomic_(&ctl->cons), memory_order_acquire);
  if (r->local - r->cached > size)
    return r->err = -TOE_EPROTO;
  return 0;
}

/* Attaches as the consumer (see toe_ring_init_prod). */
static inline int toe_ring_init_cons(struct toe_ring *r, struct toe_abi_ring_ctl *ctl,
                                     void *entries, uint32_t size, uint32_t esize)
{
  int rc = toe_ring_init_(r, ctl, entries, size, esize);
  if (rc < 0)
    return rc;
  r->local = atomic_load_explicit(toe_ring_atomic_(&ctl->cons), memory_order_relaxed);
  r->cached = atomic_load_explicit(toe_ring_atomic_(&ctl->prod), memory_order_acquire);
  if (r->cached - r->local > size)
    return r->err = -TOE_EPROTO;
  return 0;
}

/* 0, or -TOE_EPROTO if the peer broke the ring (the session must end). */
static inline int toe_ring_error(const struct toe_ring *r)
{
  return r->err;
}

/* Copies n entries starting at index idx out of the ring (splitting at the end of the array). */
static inline void toe_ring_copy_out_(const struct toe_ring *r, uint32_t idx, void *dst, uint32_t n)
{
  uint32_t first = idx & r->mask;
  uint32_t k = r->size - first;
  if (k > n)
    k = n;
  memcpy(dst, r->entries + (size_t)first * r->esize, (size_t)k * r->esize);
  if (n > k)
    memcpy((uint8_t *)dst + (size_t)k * r->esize, r->entries, (size_t)(n - k) * r->esize);
}

static inline void toe_ring_copy_in_(struct toe_ring *r, uint32_t idx, const void *src, uint32_t n)
{
  uint32_t first = idx & r->mask;
  uint32_t k = r->size - first;
  if (k > n)
    k = n;
  memcpy(r->entries + (size_t)first * r->esize, src, (size_t)k * r->esize);
  if (n > k)
    memcpy(r->entries, (const uint8_t *)src + (size_t)k * r->esize, (size_t)(n - k) * r->esize);
}

/* ------------------------------------------------------------------------------------------ */
/* Producer                                                                                   */

/*
 * Re-reads the consumer index. It may only move forward, by at most what we produced and it had
 * not yet consumed: cons_new - cached <= local - cached (mod 2^32). Anything else (running ahead
 * of prod, moving backwards) is a hostile or broken consumer.
 */
static inline int toe_ring_prod_refresh_(struct toe_ring *r)
{
  uint32_t c = atomic_load_explicit(toe_ring_atomic_(&r->ctl->cons), memory_order_acquire);
  if (c - r->cached > r->local - r->cached)
    return r->err = -TOE_EPROTO;
  r->cached = c;
  return 0;
}

/*
 * Reserves up to `want` slots: returns how many are free now (0..want), or -TOE_EPROTO. The
 * consumer index is re-read only if the cached one leaves fewer than `want` free. Fill the slots
 * with toe_ring_prod_slot(r, 0..n-1), then toe_ring_prod_submit(r, n) and toe_ring_publish(r).
 */
static inline int toe_ring_prod_reserve(struct toe_ring *r, uint32_t want)
{
  if (r->err)
    return r->err;
  uint32_t free_ = r->size - (r->local - r->cached);
  if (free_ < want) {
    if (toe_ring_prod_refresh_(r) < 0)
      return r->err;
    free_ = r->size - (r->local - r->cached);
  }
  return (int)(free_ < want ? free_ : want);
}

/* The i-th reserved slot (i < what toe_ring_prod_reserve returned). Points into shared memory. */
static inline void *toe_ring_prod_slot(struct toe_ring *r, uint32_t i)
{
  return r->entries + (size_t)((r->local + i) & r->mask) * r->esize;
}

/* Marks n filled slots as produced (not yet visible to the consumer: see toe_ring_publish). */
static inline void toe_ring_prod_submit(struct toe_ring *r, uint32_t n)
{
  r->local += n;
}

/*
 * Copies up to n entries from `src` into the ring and submits them; returns how many fitted
 * (0..n) or -TOE_EPROTO. Call toe_ring_publish() after a batch.
 */
static inline int toe_ring_prod_write(struct toe_ring *r, const void *src, uint32_t n)
{
  int k = toe_ring_prod_reserve(r, n);
  if (k <= 0)
    return k;
  toe_ring_copy_in_(r, r->local, src, (uint32_t)k);
  toe_ring_prod_submit(r, (uint32_t)k);
  return k;
}

/*
 * Makes every submitted entry visible to the consumer: store-release of prod, ordered after the
 * entries' bytes.
 */
static inline void toe_ring_publish(struct toe_ring *r)
{
  atomic_store_explicit(toe_ring_atomic_(&r->ctl->prod), r->local, memory_order_release);
}

/*
 * After toe_ring_publish(): true if the consumer said it is going to sleep, so the producer must
 * ring its doorbell. The seq_cst fence pairs with the one in toe_ring_cons_prepare_sleep(): of
 * "producer stores prod, then loads flags" and "consumer stores flags, then loads prod", at least
 * one side sees the other's store, so a wakeup is never lost (the Dekker pattern).
 */
static inline bool toe_ring_prod_needs_wakeup(struct toe_ring *r)
{
  atomic_thread_fence(memory_order_seq_cst);
  uint32_t f = atomic_load_explicit(toe_ring_atomic_(&r->ctl->flags), memory_order_relaxed);
  if (!(f & TOE_ABI_RING_F_NEED_WAKEUP))
    return false;
  /* 1.6: a consumer that numbers its sleeps (bits 8..31) needs one doorbell per sleep: the one
   * already rung wakes it, and it reads everything published until then and after. A consumer
   * that does not (0: 1.5 and older, or libtoe's CQ, whose flag stays set between sleeps) is rung
   * on every publish while the flag is set. */
  if ((f >> TOE_ABI_RING_SLEEP_SHIFT) == 0)
    return true;
  /* The sleep number is 24 bits and wraps: equal flags alone could be a later sleep with the same
   * number (ABA), and skipping its doorbell would lose the wake-up. A consumer that has not
   * consumed since the ring cannot have ended the sleep it was rung for by reading our entries,
   * so the skip also needs the consumer index unchanged. */
  uint32_t cons = atomic_load_explicit(toe_ring_atomic_(&r->ctl->cons), memory_order_relaxed);
  if (f == r->rung && cons == r->rung_cons)
    return false;
  r->rung = f;
  r->rung_cons = cons;
  return true;
}

/* True if no slot is free (re-reads the consumer index). A broken ring counts as full. */
static inline bool toe_ring_prod_full(struct toe_ring *r)
{
  return toe_ring_prod_reserve(r, 1) <= 0;
}

/* Entries produced and not yet consumed (re-reads the consumer index), or -TOE_EPROTO. */
static inline int toe_ring_prod_outstanding(struct toe_ring *r)
{
  if (r->err || toe_ring_prod_refresh_(r) < 0)
    return r->err;
  return (int)(r->local - r->cached);
}

/* ------------------------------------------------------------------------------------------ */
/* Consumer                                                                                   */

/*
 * Re-reads the producer index. The ring may hold at most `size` entries, and prod may not move
 * backwards: cached - local <= prod_new - local <= size (mod 2^32).
 */
static inline int toe_ring_cons_refresh_(struct toe_ring *r)
{
  uint32_t p = atomic_load_explicit(toe_ring_atomic_(&r->ctl->prod), memory_order_acquire);
  uint32_t avail = p - r->local;
  if (avail > r->size || avail < r->cached - r->local)
    return r->err = -TOE_EPROTO;
  r->cached = p;
  return 0;
}

/*
 * Entries available to read, up to `want` (0..want), or -TOE_EPROTO. The producer index is
 * re-read only if the cached one shows fewer than `want`.
 */
static inline int toe_ring_cons_peek(struct toe_ring *r, uint32_t want)
{
  if (r->err)
    return r->err;
  uint32_t avail = r->cached - r->local;
  if (avail < want) {
    if (toe_ring_cons_refresh_(r) < 0)
      return r->err;
    avail = r->cached - r->local;
  }
  return (int)(avail < want ? avail : want);
}

/* All entries available now (always re-reads the producer index), or -TOE_EPROTO. */
static inline int toe_ring_cons_avail(struct toe_ring *r)
{
  if (r->err || toe_ring_cons_refresh_(r) < 0)
    return r->err;
  return (int)(r->cached - r->local);
}

/* True if nothing is available (re-reads the producer index). A broken ring counts as empty. */
static inline bool toe_ring_cons_empty(struct toe_ring *r)
{
  return toe_ring_cons_avail(r) <= 0;
}

/*
 * Copies up to `max` entries out of shared memory into `dst` (max * esize bytes) without
 * consuming them; returns how many (0..max) or -TOE_EPROTO. Validate the copies, never the ring
 * slots: the compiler barrier after the copy keeps it from re-reading shared memory in place of
 * the private copy, so the peer cannot change a descriptor after it was checked.
 */
static inline int toe_ring_cons_read(struct toe_ring *r, void *dst, uint32_t max)
{
  int n = toe_ring_cons_peek(r, max);
  if (n <= 0)
    return n;
  toe_ring_copy_out_(r, r->local, dst, (uint32_t)n);
  atomic_signal_fence(memory_order_seq_cst);
  return n;
}

/*
 * Consumes n entries (at most what was read): store-release of cons, ordered after our reads of
 * those slots, so the producer may reuse them.
 */
static inline void toe_ring_cons_release(struct toe_ring *r, uint32_t n)
{
  uint32_t avail = r->cached - r->local;
  r->local += n < avail ? n : avail;
  atomic_store_explicit(toe_ring_atomic_(&r->ctl->cons), r->local, memory_order_release);
}

/* toe_ring_cons_read() then toe_ring_cons_release() of what was read. */
static inline int toe_ring_consume(struct toe_ring *r, void *dst, uint32_t max)
{
  int n = toe_ring_cons_read(r, dst, max);
  if (n > 0)
    toe_ring_cons_release(r, (uint32_t)n);
  return n;
}

/*
 * The i-th available entry in place (i < what toe_ring_cons_peek returned), pointing into
 * shared memory. Only for a side that trusts its producer (the host reading the device's CQ);
 * the device copies with toe_ring_cons_read() instead.
 */
static inline const void *toe_ring_cons_slot(const struct toe_ring *r, uint32_t i)
{
  return r->entries + (size_t)((r->local + i) & r->mask) * r->esize;
}

/*
 * The consumer is about to sleep: sets NEED_WAKEUP, then (after a seq_cst fence, see
 * toe_ring_prod_needs_wakeup) re-reads the producer index. Returns the entries available: if
 * more than 0 the caller must not sleep (it may clear the flag and carry on); if 0 it may sleep
 * until the doorbell. -TOE_EPROTO if the ring is broken.
 */
static inline int toe_ring_cons_prepare_sleep(struct toe_ring *r)
{
  if (r->count_sleeps) { /* a new sleep: the next publish rings again */
    uint32_t n = ((r->flags >> TOE_ABI_RING_SLEEP_SHIFT) + 1) & TOE_ABI_RING_SLEEP_MASK;
    r->flags = (r->flags & ~(TOE_ABI_RING_SLEEP_MASK << TOE_ABI_RING_SLEEP_SHIFT)) |
               ((n ? n : 1u) << TOE_ABI_RING_SLEEP_SHIFT);
  }
  r->flags |= TOE_ABI_RING_F_NEED_WAKEUP;
  atomic_store_explicit(toe_ring_atomic_(&r->ctl->flags), r->flags, memory_order_relaxed);
  atomic_thread_fence(memory_order_seq_cst);
  return toe_ring_cons_avail(r);
}

/*
 * 1.6: the consumer numbers its sleeps in ctl->flags, so that a producer rings once per sleep
 * instead of on every publish while NEED_WAKEUP is set (docs/transport.md "1.6: large buffers").
 * Only for a consumer that clears the flag (toe_ring_cons_clear_wakeup) whenever it has read its
 * doorbell: a doorbell rung for a sleep must never be drained while that sleep's flag stays set.
 * toed's SQ and FQ do this (toe_region_rings_device).
 */
static inline void toe_ring_cons_count_sleeps(struct toe_ring *r)
{
  r->count_sleeps = true;
}

/* The consumer is awake (polling) again: producers need not ring. */
static inline void toe_ring_cons_clear_wakeup(struct toe_ring *r)
{
  r->flags &= ~TOE_ABI_RING_F_NEED_WAKEUP;
  atomic_store_explicit(toe_ring_atomic_(&r->ctl->flags), r->flags, memory_order_relaxed);
}

#endif
