/*
 * Hierarchical timing wheel (Varghese & Lauck's scheme 6, with occupancy bitmaps).
 *
 * Time is counted in ticks of TOE_TW_TICK_NS. A timer due at `expires` ns belongs to tick
 * e = floor(expires / tick). Ticks before now_tick are fully processed; tick now_tick itself may be
 * partly processed: a run at `now` fires, from the slot of the tick holding `now`, exactly the
 * timers with expires <= now (the exact-deadline check) and leaves the rest for a later run. So a
 * timer never fires early, and a caller that polls at toe_tw_next() fires it on time.
 *
 * Placement: a timer goes to the lowest level L whose slot index is the first one where e and
 * now_tick differ, i.e. e >> 8(L+1) == now_tick >> 8(L+1); its slot is (e >> 8L) & 255. So level 0
 * holds the timers of the current 256-tick block, level 1 those of the current 65536-tick block
 * (in later 256-tick sub-blocks), and so on; the overflow list holds timers beyond 2^40 ticks
 * (about 35 years). When now_tick reaches the start of a level-L slot's span, that slot is
 * cascaded: its timers are placed again relative to the new now_tick, which puts each on a lower
 * level. A timer is therefore moved at most once per level.
 *
 * Invariant: a slot at level L >= 1 whose index equals now_tick's index at that level is empty,
 * except when now_tick is exactly the first tick of that slot's span and it has not been cascaded
 * yet. The next tick with work is thus the minimum over the levels of the first occupied slot at
 * or after now_tick's index, found with a count-trailing-zeros over the level's 64-bit bitmap
 * words; the run loop jumps straight to it, so idle time costs nothing however long.
 * toe_tw_next() reports the exact earliest expiry when that is a level-0 slot (a walk of that one
 * slot's list) and the start of the slot's span when it is a cascade (a lower bound).
 *
 * A timer armed for a time not after the stack's now goes on the `due` list, fired at the next
 * run (not the current one: a callback re-arming itself for "now" cannot loop forever).
 *
 * Callbacks may arm or cancel any timer: timers being fired are detached onto a local list whose
 * head they point back to through pprev, so cancelling or re-arming the next one in the same slot
 * (or the running one) is an ordinary unlink.
 */
#include "engine/div64.h"
#include "engine/stack.h"

#include <string.h>

#define LVL_BITS 8u
#define LVL_MASK (TOE_TW_SLOTS - 1u)
#define WORDS (TOE_TW_SLOTS / 64u)
/* Ticks are computed with toe_div1000000() (no 64-bit divide on 32-bit cores). */
_Static_assert(TOE_TW_TICK_NS == 1000000u, "timer_wheel.c divides by the tick with toe_div1000000");
#define REACH_BITS (LVL_BITS * TOE_TW_LEVELS) /* ticks covered by the wheel: 2^40 */
#define NO_TICK UINT64_MAX

/* The builtins only where the target has the instructions for a 64-bit word; elsewhere (i386,
 * 32-bit Arm, RISC-V without Zbb) they become libgcc calls (__ctzdi2), which firmware builds forbid
 * (firmware/linkcheck.sh), so a six-step binary search instead. */
#if (defined(__GNUC__) || defined(__clang__)) &&                                                   \
    (defined(__x86_64__) || defined(__aarch64__) || defined(__riscv_zbb))
#define TW_BUILTIN_BITOPS 1
#endif

static inline unsigned ctz64(uint64_t x)
{
#ifdef TW_BUILTIN_BITOPS
  return (unsigned)__builtin_ctzll(x);
#else
  unsigned n = 0;
  for (unsigned w = 32; w; w >>= 1) {
    if (!(x & ((1ull << w) - 1u))) {
      x >>= w;
      n += w;
    }
  }
  return n;
#endif
}

static inline unsigned msb64(uint64_t x)
{
#ifdef TW_BUILTIN_BITOPS
  return 63u - (unsigned)__builtin_clzll(x);
#else
  unsigned n = 0;
  for (unsigned w = 32; w; w >>= 1) {
    if (x >> w) {
      x >>= w;
      n += w;
    }
  }
  return n;
#endif
}

static inline uint64_t tick_of(toe_time_t expires)
{
  return toe_div1000000(expires); /* TOE_TW_TICK_NS */
}

static void sync_pending(struct toe_stack *st)
{
  st->ctr.timer.pending = st->tw.pending;
}

void toe_tw_init(struct toe_timer_wheel *tw, toe_time_t now)
{
  memset(tw, 0, sizeof(*tw));
  /* Every tick before the one holding `now` counts as processed. */
  tw->now_tick = toe_div1000000(now); /* TOE_TW_TICK_NS */
  tw->due_min = TOE_TIME_NEVER;
  tw->overflow_next = NO_TICK;
}

void toe_timer_init(struct toe_timer *t, toe_timer_fn fn)
{
  t->next = NULL;
  t->pprev = NULL;
  t->expires = 0;
  t->fn = fn;
}

/* If `pprev` is the head pointer of a wheel slot, the slot's level and index. */
static bool slot_of(const struct toe_timer_wheel *tw, struct toe_timer **pprev, unsigned *level,
                    unsigned *idx)
{
  uintptr_t first = (uintptr_t)&tw->slot[0][0];
  uintptr_t end = (uintptr_t)(&tw->slot[TOE_TW_LEVELS - 1][TOE_TW_SLOTS - 1] + 1);
  uintptr_t a = (uintptr_t)pprev;
  if (a < first || a >= end)
    return false;
  size_t n = (a - first) / sizeof(tw->slot[0][0]);
  *level = (unsigned)(n / TOE_TW_SLOTS);
  *idx = (unsigned)(n % TOE_TW_SLOTS);
  return true;
}

static void list_push(struct toe_timer **head, struct toe_timer *t)
{
  t->next = *head;
  if (t->next)
    t->next->pprev = &t->next;
  *head = t;
  t->pprev = head;
}

/* Unlinks a pending timer and keeps the occupancy bitmap exact. */
static void tw_unlink(struct toe_timer_wheel *tw, struct toe_timer *t)
{
  struct toe_timer **pprev = t->pprev;
  *pprev = t->next;
  if (t->next)
    t->next->pprev = pprev;
  t->next = NULL;
  t->pprev = NULL;
  unsigned level, idx;
  if (*pprev == NULL && slot_of(tw, pprev, &level, &idx))
    tw->occupied[level][idx / 64] &= ~(1ull << (idx % 64));
}

static void due_push(struct toe_timer_wheel *tw, struct toe_timer *t)
{
  list_push(&tw->due, t);
  if (t->expires < tw->due_min)
    tw->due_min = t->expires;
}

static void set_next_ev(struct toe_timer_wheel *tw, uint64_t tick)
{
  tw->next_ev = tick;
  tw->idle_until = tick > TOE_TIME_NEVER / TOE_TW_TICK_NS ? TOE_TIME_NEVER : tick * TOE_TW_TICK_NS;
}

/* Places `t` (not linked) due at tick `e` relative to now_tick. */
static void tw_place(struct toe_timer_wheel *tw, struct toe_timer *t, uint64_t e)
{
  if (e < tw->now_tick) {
    /* Its tick has been processed already (only when run was given a time ahead of the stack's
     * now): fire it at the next run rather than a whole wheel turn late. */
    due_push(tw, t);
    return;
  }
  uint64_t diff = (e ^ tw->now_tick) >> LVL_BITS;
  unsigned level = diff ? msb64(diff) / LVL_BITS + 1 : 0;
  if (level >= TOE_TW_LEVELS) {
    list_push(&tw->overflow, t);
    uint64_t span_start = e & ~((1ull << REACH_BITS) - 1);
    if (span_start < tw->overflow_next)
      tw->overflow_next = span_start;
    if (span_start < tw->next_ev)
      set_next_ev(tw, span_start);
    return;
  }
  unsigned idx = (unsigned)(e >> (LVL_BITS * level)) & LVL_MASK;
  /* the slot has work at its start at the earliest (a cascade), or at e on level 0 */
  uint64_t at = (e >> (LVL_BITS * level)) << (LVL_BITS * level);
  if (at < tw->next_ev)
    set_next_ev(tw, at);
  list_push(&tw->slot[level][idx], t);
  tw->occupied[level][idx / 64] |= 1ull << (idx % 64);
}

void toe_timer_arm(struct toe_stack *st, struct toe_timer *t, toe_time_t expires)
{
  struct toe_timer_wheel *tw = &st->tw;
  if (t->pprev)
    tw_unlink(tw, t);
  else
    tw->pending++;
  t->expires = expires;
  st->ctr.timer.armed++;
  if (expires <= st->now)
    due_push(tw, t);
  else
    tw_place(tw, t, tick_of(expires));
  sync_pending(st);
}

void toe_timer_cancel(struct toe_stack *st, struct toe_timer *t)
{
  if (!t->pprev)
    return;
  tw_unlink(&st->tw, t);
  st->tw.pending--;
  st->ctr.timer.cancelled++;
  sync_pending(st);
}

/* First set bit at index >= from in a level's bitmap, or -1. */
static int first_set_from(const uint64_t *words, unsigned from)
{
  unsigned w = from / 64;
  uint64_t m = words[w] & (~0ull << (from % 64));
  for (;;) {
    if (m)
      return (int)(w * 64 + ctz64(m));
    if (++w == WORDS)
      return -1;
    m = words[w];
  }
}

/* The first tick >= now_tick at which the wheel has work (a slot to fire or cascade). *from_level
 * says which level holds it (the lowest one on a tie); TOE_TW_LEVELS means the overflow list. */
static uint64_t tw_next_event(const struct toe_timer_wheel *tw, unsigned *from_level)
{
  uint64_t now = tw->now_tick;
  uint64_t best = NO_TICK;
  /* All levels are looked at: a coarse slot due for cascading at now_tick precedes the fine
   * slots behind it. */
  for (unsigned level = 0; level < TOE_TW_LEVELS; level++) {
    unsigned shift = LVL_BITS * level;
    int i = first_set_from(tw->occupied[level], (unsigned)(now >> shift) & LVL_MASK);
    if (i < 0)
      continue;
    uint64_t base = (now >> (shift + LVL_BITS)) << (shift + LVL_BITS);
    uint64_t ev = base | ((uint64_t)i << shift);
    if (ev < now)
      ev = now;
    if (ev < best) {
      best = ev;
      *from_level = level;
    }
  }
  if (tw->overflow) {
    /* Not simply the next 2^40 boundary: timers that stay in the overflow list after a cascade
     * there would make that boundary come up again and again. (overflow_next may be early after
     * cancellations; a cascade there recomputes it.) */
    uint64_t ev = tw->overflow_next < now ? now : tw->overflow_next;
    if (ev < best) {
      best = ev;
      *from_level = TOE_TW_LEVELS;
    }
  }
  return best;
}

toe_time_t toe_tw_next(const struct toe_timer_wheel *tw)
{
  if (tw->due)
    return tw->due_min;
  unsigned level = 0;
  uint64_t ev = tw_next_event(tw, &level);
  /* A tick too large to express in ns belongs to a timer centuries away: "never" is as good. */
  if (ev == NO_TICK || ev > TOE_TIME_NEVER / TOE_TW_TICK_NS)
    return TOE_TIME_NEVER;
  if (level == 0) {
    /* The earliest slot is a level-0 one: its earliest timer is the exact answer. */
    toe_time_t first = TOE_TIME_NEVER;
    for (const struct toe_timer *t = tw->slot[0][ev & LVL_MASK]; t; t = t->next)
      if (t->expires < first)
        first = t->expires;
    return first;
  }
  return ev * TOE_TW_TICK_NS;
}

/* Detaches the whole list at *head onto `local` (whose first timer then points back at it). */
static void list_take(struct toe_timer **head, struct toe_timer **local)
{
  *local = *head;
  *head = NULL;
  if (*local)
    (*local)->pprev = local;
}

/* Places every timer of a detached list again relative to now_tick (a cascade). */
static void tw_replace_list(struct toe_stack *st, struct toe_timer *list)
{
  while (list) {
    struct toe_timer *t = list;
    list = t->next;
    t->next = NULL;
    t->pprev = NULL;
    tw_place(&st->tw, t, tick_of(t->expires));
    st->ctr.timer.cascaded++;
  }
}

/* Cascades the slots whose span starts at tick `ev` (now_tick). The order of the levels does not
 * matter: a timer leaving a level-L slot that starts at ev lands on a lower level, in a slot after
 * the one holding ev there (or it would have agreed with ev on that index too and gone lower
 * still), so never in another slot cascaded here. */
static void tw_cascade(struct toe_stack *st, uint64_t ev)
{
  struct toe_timer_wheel *tw = &st->tw;
  struct toe_timer *list;
  if (tw->overflow && ev >= tw->overflow_next) {
    list_take(&tw->overflow, &list);
    tw->overflow_next = NO_TICK;
    tw_replace_list(st, list);
  }
  for (unsigned level = TOE_TW_LEVELS - 1; level >= 1; level--) {
    unsigned shift = LVL_BITS * level;
    if (ev & ((1ull << shift) - 1))
      continue;
    unsigned idx = (unsigned)(ev >> shift) & LVL_MASK;
    if (!tw->slot[level][idx])
      continue;
    list_take(&tw->slot[level][idx], &list);
    tw->occupied[level][idx / 64] &= ~(1ull << (idx % 64));
    tw_replace_list(st, list);
  }
}

/* Fires every timer on the detached list *local (each due by `now`). */
static void tw_fire_list(struct toe_stack *st, struct toe_timer **local, toe_time_t now)
{
  struct toe_timer_wheel *tw = &st->tw;
  struct toe_timer *t;
  while ((t = *local) != NULL) {
    *local = t->next;
    if (t->next)
      t->next->pprev = local;
    t->next = NULL;
    t->pprev = NULL;
    if (t->expires > now) {
      /* Exact-deadline check: never fire early, whatever the slot arithmetic said. */
      tw_place(tw, t, tick_of(t->expires));
      continue;
    }
    tw->pending--;
    st->ctr.timer.fired++;
    sync_pending(st);
    t->fn(st, t);
  }
}

void toe_tw_run(struct toe_stack *st, toe_time_t now)
{
  struct toe_timer_wheel *tw = &st->tw;
  struct toe_timer *local;

  if (tw->due) {
    list_take(&tw->due, &local);
    tw->due_min = TOE_TIME_NEVER;
    tw_fire_list(st, &local, now);
  }

  uint64_t cur = toe_div1000000(now); /* TOE_TW_TICK_NS */
  /* Fastest path, taken by almost every received frame: nothing can be due before next_ev (a
   * lower bound kept by tw_place, exact after each full run below). The wheel's now_tick may then
   * lag behind: the wheel is consistent relative to now_tick (placement, levels), and the next
   * full run skips the idle ticks in one step. */
  if (cur < tw->next_ev)
    return;
  /* Fast path for the many calls within one tick (every received frame runs the timers): a run
   * that ended at tick cur left no cascade pending there, and arming since can only have added to
   * level 0's slot for cur, so with that slot empty nothing can be due. */
  if (cur == tw->now_tick && !tw->slot[0][cur & LVL_MASK])
    return;
  for (;;) {
    unsigned level;
    uint64_t ev = tw_next_event(tw, &level);
    if (ev > cur) {
      /* Nothing due up to cur: skip the idle ticks in one step (no slot boundary in between holds
       * a timer, by the choice of ev). */
      if (tw->now_tick < cur)
        tw->now_tick = cur;
      break;
    }
    tw->now_tick = ev;
    /* Repeating a cascade at the same tick (a later run within tick cur) finds the slot empty. */
    tw_cascade(st, ev);
    unsigned idx = (unsigned)ev & LVL_MASK;
    if (tw->slot[0][idx]) {
      list_take(&tw->slot[0][idx], &local);
      tw->occupied[0][idx / 64] &= ~(1ull << (idx % 64));
      /* Before cur every timer of the slot is due; in tick cur those after `now` go back. */
      tw_fire_list(st, &local, now);
    }
    if (ev == cur)
      break; /* tick cur stays current: timers later within it fire at a later run */
    tw->now_tick = ev + 1;
  }
  unsigned level;
  set_next_ev(tw, tw_next_event(tw, &level));
}
