/*
 * Packet buffers: the pool (alloc/free/ref, exhaustion, double free) and every operation of
 * include/toe/pbuf.h, with chains and queues. Each test ends by checking that every buffer went
 * back to the pool.
 */
#include "engine/stack.h"
#include "harness.h"
#include "testlib.h"
#include "wire/checksum.h"

#include <stdlib.h>

static uint32_t pool_count(const struct harness *h)
{
  return h->cfg.pbuf_count;
}

static const struct toe_counters_pbuf *pc(const struct harness *h)
{
  return &toe_stack_counters(h->st)->pbuf;
}

/* The pool is whole again: every buffer free, the gauge at zero, the free list walkable. */
static void check_pool_whole(const struct harness *h)
{
  CHECK_EQ(toe_pbuf_pool_free_count(h->st), pool_count(h));
  CHECK_EQ(pc(h)->inuse, 0);
  CHECK_EQ(pc(h)->allocs - pc(h)->frees, 0);
  uint32_t n = 0;
  for (const struct toe_pbuf *p = h->st->pool.free; p && n <= pool_count(h); p = p->next) {
    CHECK_EQ(p->refcnt, 0);
    n++;
  }
  CHECK_EQ(n, pool_count(h));
}

/* Each buffer's tot_len is the bytes from it to the end of its chain. */
static void check_chain(const struct toe_pbuf *p)
{
  for (; p; p = p->next) {
    uint32_t sum = 0;
    for (const struct toe_pbuf *q = p; q; q = q->next)
      sum += q->len;
    CHECK_EQ(p->tot_len, sum);
    CHECK(p->data >= p->base && p->data + p->len <= p->base + p->cap);
  }
}

static int chain_bufs(const struct toe_pbuf *p)
{
  int n = 0;
  for (; p; p = p->next)
    n++;
  return n;
}

static void fill(uint8_t *b, size_t n, uint32_t seed)
{
  for (size_t i = 0; i < n; i++)
    b[i] = (uint8_t)((i * 131u + seed) ^ (i >> 7));
}

/* The chain helpers (the one copy each): drop_front at every cut of a 3-buffer chain keeps the
 * bytes, the invariant, the queue link and the metadata, and frees exactly the emptied buffers;
 * copy_range copies any range; count and shared say what they should. */
TEST(chain_helpers_drop_front_copy_range_count_shared)
{
  struct harness h;
  h_init(&h);
  static uint8_t src[5000], out[5000];
  fill(src, sizeof src, 7);
  for (uint32_t cut = 1; cut < sizeof src; cut += 97) {
    struct toe_pbuf *p = toe_pbuf_from_bytes(h.st, src, sizeof src, 0);
    REQUIRE(p != NULL);
    int bufs = chain_bufs(p);
    CHECK_EQ(toe_pbuf_count(p), (uint32_t)bufs);
    struct toe_pbuf *mark = (struct toe_pbuf *)(uintptr_t)0x1234;
    p->qnext = mark;
    p->meta[2] = 0xabcdefu;
    uint32_t free0 = toe_pbuf_pool_free_count(h.st);
    /* copy_range of the part that will stay, before the cut */
    struct toe_pbuf *cp = toe_pbuf_copy_range(h.st, p, cut, (uint32_t)sizeof src - cut, 16);
    REQUIRE(cp != NULL);
    CHECK_EQ(toe_pbuf_headroom(cp), 16);
    check_chain(cp);
    CHECK_EQ(toe_pbuf_copy_out(cp, 0, out, sizeof out), sizeof src - cut);
    CHECK_MEM(out, src + cut, sizeof src - cut);
    CHECK(!toe_pbuf_shared(p));
    toe_pbuf_ref(p->next);
    CHECK(toe_pbuf_shared(p));    /* one buffer with a second holder is enough */
    toe_pbuf_free(h.st, p->next); /* drop the extra references again */
    uint32_t free1 = toe_pbuf_pool_free_count(h.st);
    int whole = 0;
    uint32_t left = cut;
    for (struct toe_pbuf *q = p; q && left >= q->len && q->next; q = q->next, whole++)
      left -= q->len;
    struct toe_pbuf *nh = toe_pbuf_drop_front(h.st, p, cut);
    check_chain(nh);
    CHECK_EQ(nh->tot_len, sizeof src - cut);
    CHECK(nh->qnext == mark);
    CHECK_EQ(nh->meta[2], 0xabcdefu);
    CHECK_EQ(toe_pbuf_pool_free_count(h.st), free1 + (uint32_t)whole);
    CHECK_EQ(toe_pbuf_copy_out(nh, 0, out, sizeof out), sizeof src - cut);
    CHECK_MEM(out, src + cut, sizeof src - cut);
    CHECK(free1 <= free0);
    nh->qnext = NULL;
    toe_pbuf_free(h.st, nh);
    toe_pbuf_free(h.st, cp);
  }
  CHECK_EQ(toe_pbuf_count(NULL), 0);
  /* copy_range past the end: NULL, nothing leaked */
  struct toe_pbuf *p = toe_pbuf_from_bytes(h.st, src, 100, 0);
  REQUIRE(p != NULL);
  CHECK(toe_pbuf_copy_range(h.st, p, 50, 51, 0) == NULL);
  toe_pbuf_free(h.st, p);
  check_pool_whole(&h);
  h_fini(&h);
}

TEST(alloc_free_basics)
{
  struct harness h;
  h_init(&h);
  uint64_t allocs = pc(&h)->allocs;
  struct toe_pbuf *p = toe_pbuf_alloc(h.st, TOE_PBUF_HEADROOM);
  REQUIRE(p != NULL);
  CHECK_EQ(toe_pbuf_headroom(p), TOE_PBUF_HEADROOM);
  CHECK_EQ(toe_pbuf_tailroom(p), h.cfg.pbuf_size - TOE_PBUF_HEADROOM);
  CHECK_EQ(p->len, 0);
  CHECK_EQ(p->tot_len, 0);
  CHECK_EQ(p->refcnt, 1);
  CHECK(p->next == NULL && p->qnext == NULL);
  CHECK_EQ(p->cap, h.cfg.pbuf_size);
  CHECK_EQ((uintptr_t)p->base % 64, 0);
  CHECK_EQ(pc(&h)->allocs, allocs + 1);
  CHECK_EQ(pc(&h)->inuse, 1);
  CHECK_EQ(toe_pbuf_pool_free_count(h.st), pool_count(&h) - 1);

  /* headroom larger than a buffer: refused, and it is not a pool failure */
  CHECK(toe_pbuf_alloc(h.st, (uint16_t)(h.cfg.pbuf_size + 1)) == NULL);
  CHECK_EQ(pc(&h)->alloc_failures, 0);
  struct toe_pbuf *full = toe_pbuf_alloc(h.st, h.cfg.pbuf_size);
  REQUIRE(full != NULL);
  CHECK_EQ(toe_pbuf_tailroom(full), 0);

  toe_pbuf_free(h.st, p);
  toe_pbuf_free(h.st, full);
  toe_pbuf_free(h.st, NULL);
  CHECK_EQ(pc(&h)->frees, pc(&h)->allocs);
  check_pool_whole(&h);
  h_fini(&h);
}

TEST(alloc_clears_reused_descriptor)
{
  struct harness h;
  h_init(&h);
  struct toe_pbuf *p = toe_pbuf_alloc(h.st, 0);
  REQUIRE(p != NULL);
  p->flags = 0xffff;
  p->meta[2] = 77;
  toe_pbuf_put(p, 10);
  toe_pbuf_free(h.st, p);
  /* LIFO free list: the same descriptor comes back, and must look brand new */
  struct toe_pbuf *q = toe_pbuf_alloc(h.st, 16);
  REQUIRE(q != NULL);
  CHECK(q == p);
  CHECK_EQ(q->flags, 0);
  CHECK_EQ(q->meta[2], 0);
  CHECK_EQ(q->len, 0);
  CHECK_EQ(toe_pbuf_headroom(q), 16);
  toe_pbuf_free(h.st, q);
  check_pool_whole(&h);
  h_fini(&h);
}

TEST(pool_exhaustion)
{
  struct harness h;
  h_init(&h);
  uint32_t n = pool_count(&h);
  struct toe_pbuf **all = calloc(n, sizeof(*all));
  for (uint32_t i = 0; i < n; i++) {
    all[i] = toe_pbuf_alloc(h.st, 0);
    CHECK(all[i] != NULL);
  }
  CHECK_EQ(toe_pbuf_pool_free_count(h.st), 0);
  CHECK(toe_pbuf_alloc(h.st, 0) == NULL);
  CHECK(toe_pbuf_alloc(h.st, 0) == NULL);
  CHECK_EQ(pc(&h)->alloc_failures, 2);
  CHECK_EQ(pc(&h)->inuse, n);
  CHECK_EQ(pc(&h)->inuse_max, n);
  /* every buffer distinct */
  int distinct = 1;
  for (uint32_t i = 0; i < n; i++)
    distinct &=
        all[i]->refcnt == 1 && all[i]->index < n && &h.st->pool.descs[all[i]->index] == all[i];
  CHECK(distinct);
  for (uint32_t i = 0; i < n; i++)
    toe_pbuf_free(h.st, all[i]);
  CHECK_EQ(pc(&h)->inuse_max, n); /* high-water mark stays */
  check_pool_whole(&h);
  /* and the pool works again */
  struct toe_pbuf *p = toe_pbuf_alloc(h.st, 0);
  CHECK(p != NULL);
  toe_pbuf_free(h.st, p);
  free(all);
  check_pool_whole(&h);
  h_fini(&h);
}

TEST(ref_and_double_free)
{
  struct harness h;
  h_init(&h);
  struct toe_pbuf *p = toe_pbuf_alloc(h.st, 0);
  REQUIRE(p != NULL);
  toe_pbuf_ref(p);
  CHECK_EQ(p->refcnt, 2);
  toe_pbuf_free(h.st, p);
  CHECK_EQ(p->refcnt, 1);
  CHECK_EQ(pc(&h)->inuse, 1);
  toe_pbuf_free(h.st, p);
  CHECK_EQ(pc(&h)->inuse, 0);
  check_pool_whole(&h);

  /* a second free of a free buffer is counted and ignored: the free list is not corrupted */
  toe_pbuf_free(h.st, p);
  CHECK_EQ(pc(&h)->double_free, 1);
  check_pool_whole(&h);
  /* a pointer that is no buffer of the pool at all */
  struct toe_pbuf fake = {0};
  fake.refcnt = 1;
  toe_pbuf_free(h.st, &fake);
  CHECK_EQ(pc(&h)->double_free, 2);
  check_pool_whole(&h);

  /* all buffers can still be taken exactly once each */
  uint32_t n = pool_count(&h);
  struct toe_pbuf **all = calloc(n, sizeof(*all));
  for (uint32_t i = 0; i < n; i++)
    all[i] = toe_pbuf_alloc(h.st, 0);
  CHECK(toe_pbuf_alloc(h.st, 0) == NULL);
  uint8_t *seen = calloc(n, 1);
  int dup = 0;
  for (uint32_t i = 0; i < n; i++) {
    REQUIRE(all[i] != NULL);
    dup |= seen[all[i]->index]++;
  }
  CHECK(!dup);
  for (uint32_t i = 0; i < n; i++)
    toe_pbuf_free(h.st, all[i]);
  free(all);
  free(seen);
  check_pool_whole(&h);
  h_fini(&h);
}

TEST(push_pull_put)
{
  struct harness h;
  h_init(&h);
  struct toe_pbuf *p = toe_pbuf_alloc(h.st, 20);
  REQUIRE(p != NULL);
  uint8_t *d = toe_pbuf_put(p, 100);
  REQUIRE(d != NULL);
  CHECK(d == p->data);
  memset(d, 0xaa, 100);
  CHECK_EQ(p->len, 100);
  CHECK_EQ(p->tot_len, 100);
  uint8_t *tail = toe_pbuf_put(p, 4);
  CHECK(tail == p->data + 100);
  CHECK_EQ(p->len, 104);

  uint8_t *hdr = toe_pbuf_push(p, 14);
  REQUIRE(hdr != NULL);
  CHECK_EQ(toe_pbuf_headroom(p), 6);
  CHECK_EQ(p->len, 118);
  CHECK_EQ(p->tot_len, 118);
  CHECK(toe_pbuf_push(p, 7) == NULL); /* only 6 left */
  CHECK_EQ(p->len, 118);
  CHECK(toe_pbuf_push(p, 6) != NULL);
  CHECK_EQ(toe_pbuf_headroom(p), 0);

  CHECK_EQ(p->len, 124);
  CHECK(toe_pbuf_pull(p, 20) == hdr + 14);
  CHECK_EQ(p->len, 104);
  CHECK_EQ(p->tot_len, 104);
  CHECK(toe_pbuf_pull(p, 105) == NULL);
  CHECK_EQ(p->len, 104);
  CHECK(toe_pbuf_pull(p, 104) != NULL);
  CHECK_EQ(p->len, 0);
  CHECK_EQ(p->tot_len, 0);

  uint16_t room = toe_pbuf_tailroom(p);
  CHECK(toe_pbuf_put(p, (uint16_t)(room + 1)) == NULL);
  CHECK(toe_pbuf_put(p, room) != NULL);
  CHECK_EQ(toe_pbuf_tailroom(p), 0);
  toe_pbuf_free(h.st, p);
  check_pool_whole(&h);
  h_fini(&h);
}

TEST(from_bytes_chain_and_copy_out)
{
  struct harness h;
  h_init(&h);
  static uint8_t src[70000], out[70000];
  fill(src, sizeof(src), 3);
  uint16_t hr = 100;
  size_t first = h.cfg.pbuf_size - hr;

  struct toe_pbuf *p = toe_pbuf_from_bytes(h.st, src, 5000, hr);
  REQUIRE(p != NULL);
  CHECK_EQ(p->tot_len, 5000);
  CHECK_EQ(toe_pbuf_headroom(p), hr);
  CHECK_EQ(p->len, first);
  CHECK_EQ(chain_bufs(p), 3);
  CHECK_EQ(toe_pbuf_headroom(p->next), 0);
  check_chain(p);
  memset(out, 0, sizeof(out));
  CHECK_EQ(toe_pbuf_copy_out(p, 0, out, 5000), 5000);
  CHECK_MEM(out, src, 5000);
  /* pieces straddling buffer boundaries, from odd offsets */
  for (uint32_t off = 0; off < 5000; off += 997) {
    memset(out, 0, 5000);
    size_t want = 5000 - off < 3001 ? 5000 - off : 3001;
    CHECK_EQ(toe_pbuf_copy_out(p, off, out, 3001), want);
    CHECK_MEM(out, src + off, want);
  }
  CHECK_EQ(toe_pbuf_copy_out(p, 4990, out, 100), 10); /* short chain: fewer bytes */
  CHECK_EQ(toe_pbuf_copy_out(p, 5000, out, 100), 0);
  CHECK_EQ(toe_pbuf_copy_out(p, 9000, out, 100), 0);
  toe_pbuf_free(h.st, p);
  check_pool_whole(&h);

  /* empty and exact-fit packets */
  p = toe_pbuf_from_bytes(h.st, src, 0, 0);
  REQUIRE(p != NULL);
  CHECK_EQ(p->tot_len, 0);
  CHECK_EQ(chain_bufs(p), 1);
  toe_pbuf_free(h.st, p);
  p = toe_pbuf_from_bytes(h.st, src, h.cfg.pbuf_size, 0);
  REQUIRE(p != NULL);
  CHECK_EQ(chain_bufs(p), 1);
  toe_pbuf_free(h.st, p);
  p = toe_pbuf_from_bytes(h.st, src, h.cfg.pbuf_size + 1u, 0);
  REQUIRE(p != NULL);
  CHECK_EQ(chain_bufs(p), 2);
  toe_pbuf_free(h.st, p);

  /* a 64 KiB super-frame */
  p = toe_pbuf_from_bytes(h.st, src, 65553, 2);
  REQUIRE(p != NULL);
  check_chain(p);
  CHECK_EQ(toe_pbuf_copy_out(p, 0, out, sizeof(out)), 65553);
  CHECK_MEM(out, src, 65553);
  toe_pbuf_free(h.st, p);
  CHECK(toe_pbuf_from_bytes(h.st, src, 10, (uint16_t)(h.cfg.pbuf_size + 1)) == NULL);
  check_pool_whole(&h);
  h_fini(&h);
}

TEST(from_bytes_exhaustion_frees_partial_chain)
{
  struct harness h;
  h_init(&h);
  uint32_t n = pool_count(&h);
  struct toe_pbuf **held = calloc(n, sizeof(*held));
  for (uint32_t i = 0; i < n - 2; i++)
    held[i] = toe_pbuf_alloc(h.st, 0);
  static uint8_t src[5000];
  uint64_t fails = pc(&h)->alloc_failures;
  CHECK(toe_pbuf_from_bytes(h.st, src, sizeof(src), 0) == NULL); /* needs 3 */
  CHECK_EQ(pc(&h)->alloc_failures, fails + 1);
  CHECK_EQ(toe_pbuf_pool_free_count(h.st), 2); /* the two it did take came back */
  struct toe_pbuf *p = toe_pbuf_from_bytes(h.st, src, 4000, 0);
  CHECK(p != NULL);
  toe_pbuf_free(h.st, p);
  for (uint32_t i = 0; i < n - 2; i++)
    toe_pbuf_free(h.st, held[i]);
  free(held);
  check_pool_whole(&h);
  h_fini(&h);
}

TEST(trim)
{
  struct harness h;
  h_init(&h);
  static uint8_t src[5000], out[5000];
  fill(src, sizeof(src), 9);
  struct toe_pbuf *p = toe_pbuf_from_bytes(h.st, src, 5000, 0); /* 2048 + 2048 + 904 */
  REQUIRE(p != NULL);
  toe_pbuf_trim(h.st, p, 6000); /* longer: no-op */
  CHECK_EQ(p->tot_len, 5000);
  toe_pbuf_trim(h.st, p, 3000);
  CHECK_EQ(p->tot_len, 3000);
  CHECK_EQ(chain_bufs(p), 2);
  CHECK_EQ(pc(&h)->inuse, 2);
  check_chain(p);
  CHECK_EQ(toe_pbuf_copy_out(p, 0, out, 5000), 3000);
  CHECK_MEM(out, src, 3000);
  toe_pbuf_trim(h.st, p, 2048); /* exactly the head */
  CHECK_EQ(chain_bufs(p), 1);
  CHECK_EQ(p->len, 2048);
  CHECK_EQ(pc(&h)->inuse, 1);
  toe_pbuf_trim(h.st, p, 60);
  CHECK_EQ(p->len, 60);
  CHECK_EQ(p->tot_len, 60);
  toe_pbuf_trim(h.st, p, 0);
  CHECK_EQ(p->len, 0);
  CHECK_EQ(p->tot_len, 0);
  toe_pbuf_free(h.st, p);
  check_pool_whole(&h);
  h_fini(&h);
}

/* A two-buffer chain: head with `a` bytes, then one with `b` bytes (payload from `src`). */
static struct toe_pbuf *two_bufs(struct harness *h, const uint8_t *src, uint16_t a, uint16_t b,
                                 uint16_t head_hr)
{
  struct toe_pbuf *p = toe_pbuf_alloc(h->st, head_hr);
  struct toe_pbuf *q = toe_pbuf_alloc(h->st, 0);
  if (!p || !q)
    return NULL;
  memcpy(toe_pbuf_put(p, a), src, a);
  memcpy(toe_pbuf_put(q, b), src + a, b);
  toe_pbuf_cat(p, q);
  return p;
}

TEST(cat)
{
  struct harness h;
  h_init(&h);
  static uint8_t src[8000], out[8000];
  fill(src, sizeof(src), 5);
  struct toe_pbuf *a = toe_pbuf_from_bytes(h.st, src, 3000, 0);
  struct toe_pbuf *b = toe_pbuf_from_bytes(h.st, src + 3000, 5000, 0);
  REQUIRE(a && b);
  toe_pbuf_cat(a, b);
  CHECK_EQ(a->tot_len, 8000);
  CHECK_EQ(chain_bufs(a), 5);
  check_chain(a);
  CHECK_EQ(toe_pbuf_copy_out(a, 0, out, 8000), 8000);
  CHECK_MEM(out, src, 8000);
  toe_pbuf_cat(a, NULL);
  CHECK_EQ(a->tot_len, 8000);
  toe_pbuf_free(h.st, a);
  check_pool_whole(&h);
  h_fini(&h);
}

TEST(linearize_head)
{
  struct harness h;
  h_init(&h);
  static uint8_t src[4000], out[4000];
  fill(src, sizeof(src), 11);

  struct toe_pbuf *p = two_bufs(&h, src, 10, 100, 64);
  REQUIRE(p != NULL);
  CHECK_EQ(toe_pbuf_linearize_head(h.st, p, 8), 0); /* already contiguous */
  CHECK_EQ(p->len, 10);
  CHECK_EQ(toe_pbuf_linearize_head(h.st, p, 50), 0);
  CHECK_EQ(p->len, 50);
  CHECK_EQ(p->next->len, 60);
  CHECK_EQ(toe_pbuf_headroom(p), 64); /* the headroom is kept when there is tailroom */
  CHECK_MEM(p->data, src, 50);
  check_chain(p);
  CHECK_EQ(toe_pbuf_linearize_head(h.st, p, 111), -TOE_EINVAL); /* longer than the packet */
  CHECK_EQ(toe_pbuf_linearize_head(h.st, p, 110), 0);
  CHECK(p->next == NULL); /* the emptied buffer went back */
  CHECK_EQ(pc(&h)->inuse, 1);
  CHECK_MEM(p->data, src, 110);
  toe_pbuf_free(h.st, p);
  check_pool_whole(&h);

  /* a head without tailroom: its bytes slide toward the front */
  p = toe_pbuf_alloc(h.st, 100);
  struct toe_pbuf *q = toe_pbuf_alloc(h.st, 0);
  REQUIRE(p && q);
  uint16_t fullhead = (uint16_t)(h.cfg.pbuf_size - 100);
  memcpy(toe_pbuf_put(p, fullhead), src, fullhead);
  memcpy(toe_pbuf_put(q, 1000), src + fullhead, 1000);
  toe_pbuf_cat(p, q);
  CHECK_EQ(toe_pbuf_linearize_head(h.st, p, (uint16_t)(fullhead + 40)), 0);
  CHECK_EQ(toe_pbuf_headroom(p), 60);
  CHECK_EQ(p->len, fullhead + 40);
  CHECK_EQ(toe_pbuf_copy_out(p, 0, out, 4000), fullhead + 1000u);
  CHECK_MEM(out, src, fullhead + 1000u);
  check_chain(p);
  CHECK_EQ(toe_pbuf_linearize_head(h.st, p, (uint16_t)(h.cfg.pbuf_size + 1)), -TOE_EINVAL);
  toe_pbuf_free(h.st, p);
  check_pool_whole(&h);

  /* a chain of many tiny buffers */
  p = toe_pbuf_alloc(h.st, 0);
  REQUIRE(p != NULL);
  for (int i = 0; i < 20; i++) {
    struct toe_pbuf *t = toe_pbuf_alloc(h.st, 0);
    REQUIRE(t != NULL);
    memcpy(toe_pbuf_put(t, 3), src + 3 * i, 3);
    toe_pbuf_cat(p, t);
  }
  CHECK_EQ(toe_pbuf_linearize_head(h.st, p, 32), 0);
  CHECK_EQ(p->len, 32);
  CHECK_MEM(p->data, src, 32);
  CHECK_EQ(chain_bufs(p), 1 + 10); /* 10 used up (30 bytes), 2 bytes taken from the 11th */
  check_chain(p);
  toe_pbuf_free(h.st, p);
  check_pool_whole(&h);
  h_fini(&h);
}

TEST(linearize_does_not_modify_shared_buffer)
{
  struct harness h;
  h_init(&h);
  static uint8_t src[200], out[200];
  fill(src, sizeof(src), 13);
  struct toe_pbuf *p = two_bufs(&h, src, 10, 100, 0);
  REQUIRE(p != NULL);
  struct toe_pbuf *shared = p->next;
  toe_pbuf_ref(shared); /* another packet holds the second buffer too */
  uint8_t *sdata = shared->data;
  CHECK_EQ(toe_pbuf_linearize_head(h.st, p, 30), 0);
  CHECK(shared->data == sdata); /* untouched for its other holder */
  CHECK_EQ(shared->len, 100);
  CHECK_EQ(shared->refcnt, 1); /* our chain let go of it */
  CHECK(p->next != shared);
  CHECK_EQ(p->tot_len, 110);
  CHECK_EQ(toe_pbuf_copy_out(p, 0, out, 200), 110);
  CHECK_MEM(out, src, 110);
  check_chain(p);
  toe_pbuf_free(h.st, p);
  toe_pbuf_free(h.st, shared);
  check_pool_whole(&h);
  h_fini(&h);
}

TEST(free_chain_with_shared_tail)
{
  struct harness h;
  h_init(&h);
  static uint8_t src[6000];
  struct toe_pbuf *a = toe_pbuf_from_bytes(h.st, src, 1000, 0);
  struct toe_pbuf *tail = toe_pbuf_from_bytes(h.st, src, 5000, 0); /* 3 buffers */
  REQUIRE(a && tail);
  toe_pbuf_ref(tail);    /* a second holder of the tail chain */
  toe_pbuf_cat(a, tail); /* our packet: a + tail */
  CHECK_EQ(pc(&h)->inuse, 4);
  toe_pbuf_free(h.st, a);
  CHECK_EQ(pc(&h)->inuse, 3); /* only `a` went back */
  CHECK_EQ(tail->refcnt, 1);
  CHECK_EQ(tail->next->refcnt, 1);
  CHECK_EQ(tail->next->next->refcnt, 1);
  CHECK_EQ(tail->tot_len, 5000);
  toe_pbuf_free(h.st, tail);
  CHECK_EQ(pc(&h)->double_free, 0);
  check_pool_whole(&h);
  h_fini(&h);
}

TEST(free_queue)
{
  struct harness h;
  h_init(&h);
  static uint8_t src[5000];
  struct toe_pbuf *q = NULL, **tailp = &q;
  for (int i = 0; i < 5; i++) {
    struct toe_pbuf *p = toe_pbuf_from_bytes(h.st, src, 1000u * (unsigned)i, 0);
    REQUIRE(p != NULL);
    *tailp = p;
    tailp = &p->qnext;
  }
  CHECK(pc(&h)->inuse > 5);
  toe_pbuf_free_queue(h.st, q);
  toe_pbuf_free_queue(h.st, NULL);
  check_pool_whole(&h);
  h_fini(&h);
}

TEST(csum_over_chain_regions)
{
  struct harness h;
  h_init(&h);
  static uint8_t src[6000];
  fill(src, sizeof(src), 17);
  /* a chain with odd-length buffers so pieces start at odd offsets of the region */
  static const uint16_t lens[] = {7, 1, 13, 2000, 1, 333, 2047, 1598};
  struct toe_pbuf *p = NULL;
  size_t off = 0;
  for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
    struct toe_pbuf *b = toe_pbuf_alloc(h.st, (uint16_t)(i & 1));
    REQUIRE(b != NULL);
    memcpy(toe_pbuf_put(b, lens[i]), src + off, lens[i]);
    off += lens[i];
    if (p)
      toe_pbuf_cat(p, b);
    else
      p = b;
  }
  REQUIRE(p->tot_len == off);
  uint32_t total = (uint32_t)off;
  int bad = 0;
  for (uint32_t start = 0; start < total; start += 251) {
    for (uint32_t len = 0; start + len <= total; len += 397) {
      uint16_t got = toe_csum_fold(toe_pbuf_csum(p, start, len));
      uint8_t b[2];
      memcpy(b, &got, 2);
      if (h_be16(b) != h_csum(src + start, len, 0))
        bad++;
    }
  }
  CHECK_EQ(bad, 0);
  /* a region running past the end sums what is there */
  uint16_t got = toe_csum_fold(toe_pbuf_csum(p, total - 10, 100));
  uint8_t b[2];
  memcpy(b, &got, 2);
  CHECK_EQ(h_be16(b), h_csum(src + total - 10, 10, 0));
  toe_pbuf_free(h.st, p);
  check_pool_whole(&h);
  h_fini(&h);
}

TEST_MAIN()
