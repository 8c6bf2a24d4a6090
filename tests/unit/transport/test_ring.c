/*
 * The transport's SPSC rings (src/transport/ring.h): empty and full, batches, wrap-around of the
 * free-running indices near UINT32_MAX, publish visibility, need-wakeup flags, hostile indices
 * (which must be reported, never read out of bounds: this test runs under ASan in CI), and two
 * threads passing millions of sequence-numbered entries through a small ring, with and without
 * sleeping on a doorbell.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, nanosleep, sem_timedwait */

#include "common/prng.h"
#include "testlib.h"
#include "transport/ring.h"

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdlib.h>
#include <time.h>

/* A ring as it would sit in the region: control block plus entries, each side with its view. */
struct tring {
  struct toe_abi_ring_ctl *ctl;
  uint8_t *mem;
  uint32_t size, esize;
  struct toe_ring prod, cons;
};

static void tring_setup(struct tring *t, uint32_t size, uint32_t esize, uint32_t start)
{
  t->ctl = aligned_alloc(TOE_ABI_CACHELINE, sizeof(*t->ctl));
  /* Exactly size * esize bytes: any read or write outside is an ASan error. */
  t->mem = malloc((size_t)size * esize);
  t->size = size;
  t->esize = esize;
  toe_ring_ctl_reset(t->ctl, start);
  memset(t->mem, 0xee, (size_t)size * esize);
  CHECK_EQ(toe_ring_init_prod(&t->prod, t->ctl, t->mem, size, esize), 0);
  CHECK_EQ(toe_ring_init_cons(&t->cons, t->ctl, t->mem, size, esize), 0);
}

static void tring_free(struct tring *t)
{
  free(t->ctl);
  free(t->mem);
}

static uint32_t shared_prod(const struct tring *t)
{
  return t->ctl->prod;
}

static uint32_t shared_cons(const struct tring *t)
{
  return t->ctl->cons;
}

TEST(init_rejects_bad_geometry)
{
  struct toe_abi_ring_ctl ctl;
  uint32_t mem[16];
  struct toe_ring r;
  toe_ring_ctl_reset(&ctl, 0);
  CHECK_EQ(toe_ring_init_prod(&r, &ctl, mem, 0, 4), -TOE_EINVAL);
  CHECK_EQ(toe_ring_init_prod(&r, &ctl, mem, 12, 4), -TOE_EINVAL); /* not a power of two */
  CHECK_EQ(toe_ring_init_cons(&r, &ctl, mem, 16, 0), -TOE_EINVAL);
  CHECK_EQ(toe_ring_init_cons(&r, NULL, mem, 16, 4), -TOE_EINVAL);
  CHECK_EQ(toe_ring_init_cons(&r, &ctl, mem, 16, 4), 0);
  /* A control block that already claims more entries than the ring holds is refused. */
  ctl.prod = 17;
  ctl.cons = 0;
  CHECK_EQ(toe_ring_init_cons(&r, &ctl, mem, 16, 4), -TOE_EPROTO);
  CHECK_EQ(toe_ring_error(&r), -TOE_EPROTO);
  CHECK_EQ(toe_ring_init_prod(&r, &ctl, mem, 16, 4), -TOE_EPROTO);
  ctl.prod = 3; /* prod - cons = 3 - 0xfffffffe = 5: fine across the wrap */
  ctl.cons = 0xfffffffeu;
  CHECK_EQ(toe_ring_init_cons(&r, &ctl, mem, 16, 4), 0);
  CHECK_EQ(toe_ring_cons_avail(&r), 5);
}

TEST(empty_then_one_entry)
{
  struct tring t;
  tring_setup(&t, 8, sizeof(uint64_t), 0);
  CHECK(toe_ring_cons_empty(&t.cons));
  CHECK(!toe_ring_prod_full(&t.prod));
  CHECK_EQ(toe_ring_cons_avail(&t.cons), 0);
  uint64_t v = 0x1122334455667788ull, out = 0;
  CHECK_EQ(toe_ring_consume(&t.cons, &out, 1), 0);

  CHECK_EQ(toe_ring_prod_write(&t.prod, &v, 1), 1);
  /* Submitted but not published: the consumer sees nothing yet. */
  CHECK_EQ(shared_prod(&t), 0);
  CHECK_EQ(toe_ring_cons_avail(&t.cons), 0);
  toe_ring_publish(&t.prod);
  CHECK_EQ(shared_prod(&t), 1);
  CHECK_EQ(toe_ring_cons_avail(&t.cons), 1);
  CHECK(!toe_ring_cons_empty(&t.cons));
  CHECK_EQ(toe_ring_prod_outstanding(&t.prod), 1);

  /* Reading does not consume; releasing does. */
  CHECK_EQ(toe_ring_cons_read(&t.cons, &out, 4), 1);
  CHECK(out == v);
  CHECK_EQ(shared_cons(&t), 0);
  toe_ring_cons_release(&t.cons, 1);
  CHECK_EQ(shared_cons(&t), 1);
  CHECK(toe_ring_cons_empty(&t.cons));
  CHECK_EQ(toe_ring_prod_outstanding(&t.prod), 0);
  /* Releasing more than was available never moves cons past prod. */
  toe_ring_cons_release(&t.cons, 5);
  CHECK_EQ(shared_cons(&t), 1);
  tring_free(&t);
}

TEST(full_ring)
{
  struct tring t;
  tring_setup(&t, 16, sizeof(uint32_t), 0);
  uint32_t src[20];
  for (uint32_t i = 0; i < 20; i++)
    src[i] = 100 + i;
  /* Only 16 fit; the rest is left to the caller. */
  CHECK_EQ(toe_ring_prod_write(&t.prod, src, 20), 16);
  toe_ring_publish(&t.prod);
  CHECK(toe_ring_prod_full(&t.prod));
  CHECK_EQ(toe_ring_prod_reserve(&t.prod, 1), 0);
  CHECK_EQ(toe_ring_prod_write(&t.prod, src, 1), 0);
  CHECK_EQ(toe_ring_cons_avail(&t.cons), 16);

  uint32_t out[16];
  CHECK_EQ(toe_ring_consume(&t.cons, out, 1), 1);
  CHECK_EQ(out[0], 100);
  /* One slot free again, after the producer re-reads cons. */
  CHECK(!toe_ring_prod_full(&t.prod));
  CHECK_EQ(toe_ring_prod_reserve(&t.prod, 4), 1);
  CHECK_EQ(toe_ring_prod_write(&t.prod, &src[16], 4), 1);
  toe_ring_publish(&t.prod);
  CHECK(toe_ring_prod_full(&t.prod));
  CHECK_EQ(toe_ring_consume(&t.cons, out, 16), 16);
  for (uint32_t i = 0; i < 16; i++)
    CHECK_EQ(out[i], 101 + i);
  CHECK(toe_ring_cons_empty(&t.cons));
  tring_free(&t);
}

/* Entries written in place through reserve/slot/submit, in several batches, one publish. */
TEST(batch_reserve_in_place)
{
  struct tring t;
  tring_setup(&t, 32, sizeof(uint64_t), 0);
  uint64_t next = 0;
  for (int batch = 0; batch < 3; batch++) {
    int n = toe_ring_prod_reserve(&t.prod, 7);
    REQUIRE(n == 7);
    for (int i = 0; i < n; i++)
      *(uint64_t *)toe_ring_prod_slot(&t.prod, (uint32_t)i) = next++;
    toe_ring_prod_submit(&t.prod, (uint32_t)n);
  }
  CHECK_EQ(toe_ring_cons_avail(&t.cons), 0);
  toe_ring_publish(&t.prod);
  CHECK_EQ(toe_ring_cons_avail(&t.cons), 21);
  /* peek caps at `want` and reports all when asked for more. */
  CHECK_EQ(toe_ring_cons_peek(&t.cons, 5), 5);
  CHECK_EQ(toe_ring_cons_peek(&t.cons, 100), 21);
  CHECK(*(const uint64_t *)toe_ring_cons_slot(&t.cons, 20) == 20);
  /* A batch read, a partial release, then the rest. */
  uint64_t out[32];
  CHECK_EQ(toe_ring_cons_read(&t.cons, out, 32), 21);
  for (uint64_t i = 0; i < 21; i++)
    CHECK(out[i] == i);
  toe_ring_cons_release(&t.cons, 10);
  CHECK_EQ(toe_ring_cons_avail(&t.cons), 11);
  CHECK_EQ(toe_ring_consume(&t.cons, out, 32), 11);
  CHECK(out[0] == 10 && out[10] == 20);
  tring_free(&t);
}

/* Indices start just below UINT32_MAX: slots wrap at the end of the array and the indices wrap
 * at 2^32 in the middle of batches; order and counts stay right. */
TEST(wrap_around_near_uint32_max)
{
  const uint32_t starts[] = {0xffffffffu - 5, 0xffffffffu, 0x7ffffffdu, 0x80000000u - 13};
  for (size_t s = 0; s < sizeof(starts) / sizeof(starts[0]); s++) {
    struct tring t;
    tring_setup(&t, 16, sizeof(uint32_t), starts[s]);
    uint32_t next_in = 0, next_out = 0;
    for (int round = 0; round < 40; round++) {
      uint32_t batch = 1 + (uint32_t)(round * 7) % 16;
      uint32_t src[16];
      for (uint32_t i = 0; i < batch; i++)
        src[i] = next_in + i;
      int w = toe_ring_prod_write(&t.prod, src, batch);
      REQUIRE(w >= 0);
      next_in += (uint32_t)w;
      toe_ring_publish(&t.prod);
      CHECK_EQ(toe_ring_cons_avail(&t.cons), (int)(next_in - next_out));
      uint32_t out[16];
      int r = toe_ring_consume(&t.cons, out, 1 + (uint32_t)round % 16);
      REQUIRE(r >= 0);
      for (int i = 0; i < r; i++)
        CHECK_EQ(out[i], next_out + (uint32_t)i);
      next_out += (uint32_t)r;
    }
    uint32_t out[16];
    int r;
    while ((r = toe_ring_consume(&t.cons, out, 16)) > 0) {
      for (int i = 0; i < r; i++)
        CHECK_EQ(out[i], next_out + (uint32_t)i);
      next_out += (uint32_t)r;
    }
    CHECK_EQ(r, 0);
    CHECK_EQ(next_out, next_in);
    CHECK(next_in > 100);
    /* The shared indices wrapped past 2^32 (for the starts near the top). */
    CHECK_EQ(shared_prod(&t), starts[s] + next_in);
    CHECK_EQ(shared_cons(&t), starts[s] + next_out);
    CHECK_EQ(toe_ring_error(&t.prod), 0);
    CHECK_EQ(toe_ring_error(&t.cons), 0);
    tring_free(&t);
  }
}

/* A full ring whose indices straddle 2^32 is full, not empty. */
TEST(full_across_index_wrap)
{
  struct tring t;
  tring_setup(&t, 8, sizeof(uint32_t), 0xfffffffcu);
  uint32_t src[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  CHECK_EQ(toe_ring_prod_write(&t.prod, src, 8), 8);
  toe_ring_publish(&t.prod);
  CHECK_EQ(shared_prod(&t), 4);
  CHECK(toe_ring_prod_full(&t.prod));
  CHECK_EQ(toe_ring_cons_avail(&t.cons), 8);
  uint32_t out[8];
  CHECK_EQ(toe_ring_consume(&t.cons, out, 8), 8);
  CHECK_MEM(out, src, sizeof(src));
  CHECK(toe_ring_cons_empty(&t.cons));
  tring_free(&t);
}

/* The consumer's copy is what gets validated: changing the shared slot afterwards changes
 * nothing in the copy (TOCTOU). */
TEST(read_copies_out)
{
  struct tring t;
  tring_setup(&t, 8, sizeof(struct toe_abi_sqe), 0);
  struct toe_abi_sqe sqe = {.opcode = TOE_ABI_OP_NOP, .user_data = 42};
  CHECK_EQ(toe_ring_prod_write(&t.prod, &sqe, 1), 1);
  toe_ring_publish(&t.prod);
  struct toe_abi_sqe copy;
  CHECK_EQ(toe_ring_cons_read(&t.cons, &copy, 1), 1);
  ((struct toe_abi_sqe *)t.mem)[0].opcode = 0xff; /* the hostile host rewrites it */
  ((struct toe_abi_sqe *)t.mem)[0].user_data = 7;
  CHECK_EQ(copy.opcode, TOE_ABI_OP_NOP);
  CHECK(copy.user_data == 42);
  tring_free(&t);
}

/* The device reading a hostile host's producer index. */
TEST(hostile_producer_index)
{
  struct tring t;
  tring_setup(&t, 8, sizeof(uint64_t), 0xfffffff0u);
  uint64_t v[4] = {1, 2, 3, 4}, out[64];

  /* prod claims size + 1 entries: refused, nothing read. */
  t.ctl->prod = 0xfffffff0u + 9;
  memset(out, 0, sizeof(out));
  CHECK_EQ(toe_ring_cons_avail(&t.cons), -TOE_EPROTO);
  CHECK_EQ(toe_ring_consume(&t.cons, out, 64), -TOE_EPROTO);
  CHECK(out[0] == 0);
  /* Sticky: even a sane index later does not revive the ring. */
  t.ctl->prod = 0xfffffff0u + 1;
  CHECK_EQ(toe_ring_cons_avail(&t.cons), -TOE_EPROTO);
  CHECK_EQ(toe_ring_cons_peek(&t.cons, 1), -TOE_EPROTO);
  CHECK_EQ(toe_ring_cons_read(&t.cons, out, 1), -TOE_EPROTO);
  CHECK(toe_ring_cons_empty(&t.cons));
  CHECK_EQ(toe_ring_error(&t.cons), -TOE_EPROTO);
  CHECK_EQ(toe_ring_cons_prepare_sleep(&t.cons), -TOE_EPROTO);
  tring_free(&t);

  /* prod far ahead (a huge count, or a "negative" one). */
  const uint32_t bad[] = {0x80000000u, 0xffffffffu, 1000, 0xfffffff0u - 1};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    tring_setup(&t, 8, sizeof(uint64_t), 0xfffffff0u);
    t.ctl->prod = 0xfffffff0u + bad[i];
    CHECK_EQ(toe_ring_cons_peek(&t.cons, 8), -TOE_EPROTO);
    tring_free(&t);
  }

  /* prod moving backwards after it published 4 entries. */
  tring_setup(&t, 8, sizeof(uint64_t), 0);
  CHECK_EQ(toe_ring_prod_write(&t.prod, v, 4), 4);
  toe_ring_publish(&t.prod);
  CHECK_EQ(toe_ring_cons_avail(&t.cons), 4);
  CHECK_EQ(toe_ring_consume(&t.cons, out, 1), 1);
  t.ctl->prod = 2; /* still ahead of cons (1), but behind what it showed */
  CHECK_EQ(toe_ring_cons_avail(&t.cons), -TOE_EPROTO);
  tring_free(&t);

  /* Exactly size entries is legal. */
  tring_setup(&t, 8, sizeof(uint64_t), 0xfffffffeu);
  t.ctl->prod = 0xfffffffeu + 8;
  CHECK_EQ(toe_ring_cons_avail(&t.cons), 8);
  CHECK_EQ(toe_ring_consume(&t.cons, out, 64), 8);
  CHECK_EQ(toe_ring_error(&t.cons), 0);
  tring_free(&t);
}

/* The device producing into a CQ whose consumer index a hostile host controls. */
TEST(hostile_consumer_index)
{
  struct tring t;
  uint64_t v[8] = {0};
  /* cons ahead of prod: claims to have consumed entries never produced. */
  tring_setup(&t, 8, sizeof(uint64_t), 100);
  CHECK_EQ(toe_ring_prod_write(&t.prod, v, 8), 8);
  toe_ring_publish(&t.prod);
  t.ctl->cons = 109;
  CHECK_EQ(toe_ring_prod_reserve(&t.prod, 1), -TOE_EPROTO);
  CHECK(toe_ring_prod_full(&t.prod));
  CHECK_EQ(toe_ring_prod_write(&t.prod, v, 1), -TOE_EPROTO);
  CHECK_EQ(toe_ring_prod_outstanding(&t.prod), -TOE_EPROTO);
  t.ctl->cons = 104; /* sticky */
  CHECK_EQ(toe_ring_prod_reserve(&t.prod, 1), -TOE_EPROTO);
  tring_free(&t);

  /* cons moving backwards. */
  tring_setup(&t, 8, sizeof(uint64_t), 0);
  CHECK_EQ(toe_ring_prod_write(&t.prod, v, 8), 8);
  toe_ring_publish(&t.prod);
  t.ctl->cons = 5;
  CHECK_EQ(toe_ring_prod_reserve(&t.prod, 8), 5);
  t.ctl->cons = 3;
  CHECK_EQ(toe_ring_prod_reserve(&t.prod, 8), -TOE_EPROTO);
  tring_free(&t);

  /* cons far away in either direction, across the wrap. */
  const uint32_t bad[] = {0x80000000u, 0xffffffffu, 9, 0x7fffffffu};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    tring_setup(&t, 8, sizeof(uint64_t), 0xfffffffcu);
    CHECK_EQ(toe_ring_prod_write(&t.prod, v, 8), 8);
    toe_ring_publish(&t.prod);
    t.ctl->cons = 0xfffffffcu + bad[i];
    CHECK_EQ(toe_ring_prod_reserve(&t.prod, 1), -TOE_EPROTO);
    tring_free(&t);
  }

  /* The producer never reads its own shared index back: scribbling on it changes nothing. */
  tring_setup(&t, 8, sizeof(uint64_t), 0);
  t.ctl->prod = 12345;
  CHECK_EQ(toe_ring_prod_write(&t.prod, v, 2), 2);
  toe_ring_publish(&t.prod);
  CHECK_EQ(shared_prod(&t), 2);
  tring_free(&t);
}

TEST(need_wakeup_flags)
{
  struct tring t;
  tring_setup(&t, 8, sizeof(uint32_t), 0);
  CHECK(!toe_ring_prod_needs_wakeup(&t.prod));
  /* Consumer finds nothing and goes to sleep: the producer must ring. */
  CHECK_EQ(toe_ring_cons_prepare_sleep(&t.cons), 0);
  CHECK(t.ctl->flags & TOE_ABI_RING_F_NEED_WAKEUP);
  uint32_t v = 9;
  CHECK_EQ(toe_ring_prod_write(&t.prod, &v, 1), 1);
  toe_ring_publish(&t.prod);
  CHECK(toe_ring_prod_needs_wakeup(&t.prod));
  /* Awake again: no doorbells needed. */
  toe_ring_cons_clear_wakeup(&t.cons);
  CHECK(!(t.ctl->flags & TOE_ABI_RING_F_NEED_WAKEUP));
  CHECK(!toe_ring_prod_needs_wakeup(&t.prod));
  /* Preparing to sleep with an entry pending reports it: the consumer must not sleep. */
  CHECK_EQ(toe_ring_cons_prepare_sleep(&t.cons), 1);
  /* A consumer that does not number its sleeps is rung on every publish while it sleeps. */
  CHECK(toe_ring_prod_needs_wakeup(&t.prod));
  CHECK(toe_ring_prod_needs_wakeup(&t.prod));
  toe_ring_cons_clear_wakeup(&t.cons);
  tring_free(&t);
}

/* 1.6: a consumer that numbers its sleeps is rung once per sleep; every new sleep (even one that
 * found entries and did not happen) rings again; the count skips 0 when it wraps. */
TEST(need_wakeup_counted)
{
  struct tring t;
  tring_setup(&t, 8, sizeof(uint32_t), 0);
  toe_ring_cons_count_sleeps(&t.cons);
  CHECK_EQ(toe_ring_cons_prepare_sleep(&t.cons), 0);
  CHECK_EQ(t.ctl->flags, (1u << TOE_ABI_RING_SLEEP_SHIFT) | TOE_ABI_RING_F_NEED_WAKEUP);
  CHECK(toe_ring_prod_needs_wakeup(&t.prod));
  CHECK(!toe_ring_prod_needs_wakeup(&t.prod)); /* rung for this sleep already */
  uint32_t v = 1;
  CHECK_EQ(toe_ring_prod_write(&t.prod, &v, 1), 1);
  toe_ring_publish(&t.prod);
  CHECK(!toe_ring_prod_needs_wakeup(&t.prod));
  /* Woken: clears, drains, sleeps again: a new count, a new doorbell. */
  toe_ring_cons_clear_wakeup(&t.cons);
  CHECK(!toe_ring_prod_needs_wakeup(&t.prod));
  CHECK_EQ(toe_ring_cons_prepare_sleep(&t.cons), 1);
  CHECK_EQ(t.ctl->flags >> TOE_ABI_RING_SLEEP_SHIFT, 2);
  CHECK(toe_ring_prod_needs_wakeup(&t.prod));
  CHECK(!toe_ring_prod_needs_wakeup(&t.prod));
  /* The count wraps to 1, never 0 (0 means a consumer that does not count). */
  t.cons.flags = TOE_ABI_RING_SLEEP_MASK << TOE_ABI_RING_SLEEP_SHIFT;
  toe_ring_cons_prepare_sleep(&t.cons);
  CHECK_EQ(t.ctl->flags >> TOE_ABI_RING_SLEEP_SHIFT, 1);
  CHECK(toe_ring_prod_needs_wakeup(&t.prod));
  /* ABA: the consumer wakes, consumes, and a later sleep carries the very number the producer last
   * rang for (the count wrapped all the way round). That sleep still gets its doorbell: the
   * consumer index moved since the ring. */
  toe_ring_cons_clear_wakeup(&t.cons);
  uint32_t got;
  CHECK_EQ(toe_ring_cons_read(&t.cons, &got, 1), 1);
  toe_ring_cons_release(&t.cons, 1);
  t.cons.flags = 0; /* the next sleep is number 1 again */
  CHECK_EQ(toe_ring_cons_prepare_sleep(&t.cons), 0);
  CHECK_EQ(t.ctl->flags >> TOE_ABI_RING_SLEEP_SHIFT, 1);
  CHECK_EQ(toe_ring_prod_write(&t.prod, &v, 1), 1);
  toe_ring_publish(&t.prod);
  CHECK(toe_ring_prod_needs_wakeup(&t.prod));
  CHECK(!toe_ring_prod_needs_wakeup(&t.prod)); /* and only one */
  tring_free(&t);
}

/* ------------------------------------------------------------------------------------------ */
/* Two threads                                                                                */

struct stress_entry {
  uint64_t seq;
  uint64_t check;
  uint8_t fill[48];
};

static uint64_t mix(uint64_t seq)
{
  return seq * 0x9e3779b97f4a7c15ull ^ 0x5bd1e995u;
}

static uint64_t now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

struct stress {
  struct tring t;
  uint64_t target;      /* entries to pass at most */
  uint64_t deadline_ns; /* the producer stops here even if target is not reached */
  bool sleepy;          /* consumer sleeps on the doorbell when idle */
  uint64_t prepares;    /* sleeps announced (toe_ring_cons_prepare_sleep) */
  sem_t doorbell;
  /* results */
  _Atomic uint64_t produced; /* final count, set when the producer is done */
  _Atomic int producer_done;
  _Atomic int consumer_asleep; /* set while the consumer blocks on the doorbell */
  uint64_t consumed;
  uint64_t bad_seq, bad_check, bad_fill;
  uint64_t sleeps, rings, lost_wakeups;
  int cons_err, prod_err;
};

#define STRESS_MIN_ENTRIES 300000u

static void *stress_producer(void *arg)
{
  struct stress *s = arg;
  uint64_t seq = 0;
  uint64_t rng;
  toe_prng_seed(&rng, 12345); /* the tree's one PRNG (src/common/prng.h) */
  while (seq < s->target) {
    /* The time budget keeps the test short on a fast machine; the floor keeps it meaningful on
     * a loaded one (the indices must wrap 2^32 and the ring many times over), so the outcome never
     * depends on the machine's speed. */
    if ((seq & 0xfff) == 0 && seq >= STRESS_MIN_ENTRIES && now_ns() > s->deadline_ns)
      break;
    uint32_t want = 1 + (uint32_t)(toe_prng_next(&rng) >> 59); /* 1 .. 32 */
    if (want > s->target - seq)
      want = (uint32_t)(s->target - seq);
    int n = toe_ring_prod_reserve(&s->t.prod, want);
    if (n < 0) {
      s->prod_err = n;
      break;
    }
    if (n == 0) {
      sched_yield();
      continue;
    }
    for (int i = 0; i < n; i++) {
      struct stress_entry *e = toe_ring_prod_slot(&s->t.prod, (uint32_t)i);
      e->seq = seq;
      e->check = mix(seq);
      memset(e->fill, (int)(seq & 0xff), sizeof(e->fill));
      seq++;
    }
    toe_ring_prod_submit(&s->t.prod, (uint32_t)n);
    toe_ring_publish(&s->t.prod);
    if (s->sleepy && toe_ring_prod_needs_wakeup(&s->t.prod)) {
      s->rings++;
      sem_post(&s->doorbell);
    }
    if (s->sleepy && seq / 2000 != (seq - (uint64_t)n) / 2000) {
      /* Pause now and then until the consumer has gone idle and really sleeps (bounded: on a
       * loaded machine a fixed pause may end before the consumer even ran, and then the sleep
       * path would go untested). */
      for (int w = 0; w < 4000 && !atomic_load(&s->consumer_asleep); w++) {
        struct timespec pause = {0, 50000};
        nanosleep(&pause, NULL);
      }
    }
  }
  atomic_store(&s->produced, seq);
  atomic_store(&s->producer_done, 1);
  sem_post(&s->doorbell); /* in case the consumer sleeps on an empty ring */
  return NULL;
}

static void *stress_consumer(void *arg)
{
  struct stress *s = arg;
  struct stress_entry batch[24];
  uint32_t idle = 0;
  for (;;) {
    int n = toe_ring_consume(&s->t.cons, batch, 24);
    if (n < 0) {
      s->cons_err = n;
      return NULL;
    }
    for (int i = 0; i < n; i++) {
      const struct stress_entry *e = &batch[i];
      if (e->seq != s->consumed)
        s->bad_seq++;
      if (e->check != mix(e->seq))
        s->bad_check++;
      if (e->fill[0] != (uint8_t)(e->seq & 0xff) || e->fill[47] != (uint8_t)(e->seq & 0xff))
        s->bad_fill++;
      s->consumed++;
    }
    if (n > 0) {
      idle = 0;
      continue;
    }
    if (atomic_load(&s->producer_done) && s->consumed == atomic_load(&s->produced) &&
        toe_ring_cons_empty(&s->t.cons))
      return NULL;
    if (!s->sleepy || ++idle < 64) {
      sched_yield();
      continue;
    }
    /* Adaptive polling's second phase: announce the sleep, re-check, then block. */
    s->prepares++;
    if (toe_ring_cons_prepare_sleep(&s->t.cons) == 0 && !atomic_load(&s->producer_done)) {
      s->sleeps++;
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      ts.tv_sec += 2;
      int rc;
      atomic_store(&s->consumer_asleep, 1);
      do
        rc = sem_timedwait(&s->doorbell, &ts);
      while (rc < 0 && errno == EINTR);
      atomic_store(&s->consumer_asleep, 0);
      /* A wakeup lost by the protocol would leave entries unseen after a 2 s wait. */
      if (rc < 0 && errno == ETIMEDOUT && toe_ring_cons_avail(&s->t.cons) > 0)
        s->lost_wakeups++;
    }
    toe_ring_cons_clear_wakeup(&s->t.cons);
    idle = 0;
  }
}

static void run_stress(struct stress *s, uint32_t ring_size, uint64_t target, uint64_t budget_ns,
                       bool sleepy, bool counted)
{
  memset(s, 0, sizeof(*s));
  tring_setup(&s->t, ring_size, sizeof(struct stress_entry), 0xffffffffu - 1000);
  if (counted)
    toe_ring_cons_count_sleeps(&s->t.cons);
  s->target = target;
  s->deadline_ns = now_ns() + budget_ns;
  s->sleepy = sleepy;
  sem_init(&s->doorbell, 0, 0);
  pthread_t p, c;
  REQUIRE(pthread_create(&c, NULL, stress_consumer, s) == 0);
  REQUIRE(pthread_create(&p, NULL, stress_producer, s) == 0);
  pthread_join(p, NULL);
  pthread_join(c, NULL);
  sem_destroy(&s->doorbell);
  tring_free(&s->t);
}

TEST(two_threads_millions_in_order)
{
  struct stress *s = calloc(1, sizeof(*s));
  uint64_t t0 = now_ns();
  run_stress(s, 256, 10000000, 3000000000ull, false, false);
  uint64_t ms = (now_ns() - t0) / 1000000;
  printf("  busy-poll: %llu entries in %llu ms through a 256-entry ring\n",
         (unsigned long long)s->consumed, (unsigned long long)ms);
  CHECK_EQ(s->prod_err, 0);
  CHECK_EQ(s->cons_err, 0);
  CHECK_EQ(s->consumed, atomic_load(&s->produced));
  CHECK_EQ(s->bad_seq, 0);
  CHECK_EQ(s->bad_check, 0);
  CHECK_EQ(s->bad_fill, 0);
  /* Meaningful only if the indices wrapped 2^32 and the ring many times over. */
  CHECK(s->consumed >= STRESS_MIN_ENTRIES);
  free(s);
}

TEST(two_threads_with_doorbell_sleeps)
{
  struct stress *s = calloc(1, sizeof(*s));
  uint64_t t0 = now_ns();
  run_stress(s, 64, 1000000, 2000000000ull, true, false);
  uint64_t ms = (now_ns() - t0) / 1000000;
  printf("  sleepy consumer: %llu entries in %llu ms, %llu sleeps, %llu doorbells\n",
         (unsigned long long)s->consumed, (unsigned long long)ms, (unsigned long long)s->sleeps,
         (unsigned long long)s->rings);
  CHECK_EQ(s->prod_err, 0);
  CHECK_EQ(s->cons_err, 0);
  CHECK_EQ(s->consumed, atomic_load(&s->produced));
  CHECK_EQ(s->bad_seq, 0);
  CHECK_EQ(s->bad_check, 0);
  CHECK_EQ(s->lost_wakeups, 0);
  CHECK(s->sleeps > 0);
  CHECK(s->rings > 0);
  CHECK(s->consumed >= STRESS_MIN_ENTRIES);
  free(s);
}

/* 1.6: the consumer numbers its sleeps and the producer rings once per sleep; still no wakeup is
 * lost, and there are no more doorbells than announced sleeps. */
TEST(two_threads_with_counted_sleeps)
{
  struct stress *s = calloc(1, sizeof(*s));
  uint64_t t0 = now_ns();
  run_stress(s, 64, 1000000, 2000000000ull, true, true);
  uint64_t ms = (now_ns() - t0) / 1000000;
  printf(
      "  counted sleeps: %llu entries in %llu ms, %llu sleeps (%llu announced), %llu doorbells\n",
      (unsigned long long)s->consumed, (unsigned long long)ms, (unsigned long long)s->sleeps,
      (unsigned long long)s->prepares, (unsigned long long)s->rings);
  CHECK_EQ(s->prod_err, 0);
  CHECK_EQ(s->cons_err, 0);
  CHECK_EQ(s->consumed, atomic_load(&s->produced));
  CHECK_EQ(s->bad_seq, 0);
  CHECK_EQ(s->lost_wakeups, 0);
  CHECK(s->sleeps > 0);
  CHECK(s->rings > 0 && s->rings <= s->prepares);
  CHECK(s->consumed >= STRESS_MIN_ENTRIES);
  free(s);
}

TEST_MAIN()
