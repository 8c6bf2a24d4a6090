/*
 * The engine's timers: a hierarchical timing wheel.
 *
 * Built for many timers that almost never fire (retransmission, keepalive, TIME_WAIT): arming,
 * re-arming and cancelling are O(1) list operations on a timer embedded in its owner, no memory is
 * allocated, and a timer far in the future sits in a coarse level until it gets close (it is then
 * cascaded down, once per level). Expiry is checked against exact deadlines, so a timer never fires
 * early; it fires at most one tick late (the wheel's tick is 1 ms, level 0 covers 256 ms).
 */
#ifndef TOE_ENGINE_TIMER_WHEEL_H
#define TOE_ENGINE_TIMER_WHEEL_H

#include "toe/engine.h"

#include <stdbool.h>
#include <stdint.h>

struct toe_timer;
typedef void (*toe_timer_fn)(struct toe_stack *st, struct toe_timer *t);

/* Embed one in the object that owns the timer; recover the owner with toe_container_of(). */
struct toe_timer {
  struct toe_timer *next;
  struct toe_timer **pprev; /* NULL when not pending */
  toe_time_t expires;
  toe_timer_fn fn;
};

#define TOE_TW_LEVELS 5
#define TOE_TW_SLOTS 256 /* per level; level L slot width = 256^L ticks */
#define TOE_TW_TICK_NS 1000000ull

struct toe_timer_wheel {
  toe_time_t now_tick; /* wheel time in ticks: everything before is processed */
  uint32_t pending;    /* timers in the wheel */
  uint64_t occupied[TOE_TW_LEVELS][TOE_TW_SLOTS / 64]; /* non-empty slot bitmaps */
  struct toe_timer *slot[TOE_TW_LEVELS][TOE_TW_SLOTS];
  struct toe_timer *overflow; /* beyond the last level's reach */
  uint64_t overflow_next;     /* tick where the earliest overflow timer's span starts */
  struct toe_timer *due;      /* armed for a time already reached: fire at next run */
  toe_time_t due_min;         /* earliest expiry on the due list */
  uint64_t next_ev;           /* lower bound on the next tick with work (see toe_tw_run) */
  toe_time_t idle_until;      /* next_ev in ns: before it, a run with no due timer does nothing */
};

/* True when toe_tw_run(now) would do nothing: no timer armed in the past and nothing due before
 * the lower bound kept on the next tick with work. Lets the caller skip the call on every frame. */
static inline bool toe_tw_idle(const struct toe_timer_wheel *tw, toe_time_t now)
{
  return tw->due == 0 && now < tw->idle_until;
}

/* Prepares the wheel; `now` is the stack's start time. */
void toe_tw_init(struct toe_timer_wheel *tw, toe_time_t now);

/* Prepares a timer that is not pending. */
void toe_timer_init(struct toe_timer *t, toe_timer_fn fn);

/* Arms (or re-arms) `t` to fire at absolute time `expires` (a time in the past fires next poll). */
void toe_timer_arm(struct toe_stack *st, struct toe_timer *t, toe_time_t expires);

/* Cancels `t` if pending; harmless otherwise. */
void toe_timer_cancel(struct toe_stack *st, struct toe_timer *t);

static inline bool toe_timer_pending(const struct toe_timer *t)
{
  return t->pprev != 0;
}

/* Runs the callbacks of every timer with expires <= now, in no guaranteed order. A callback may
 * arm or cancel any timer, including itself. */
void toe_tw_run(struct toe_stack *st, toe_time_t now);

/* Earliest time worth polling at (a lower bound on the next expiry), or TOE_TIME_NEVER. */
toe_time_t toe_tw_next(const struct toe_timer_wheel *tw);

#endif
