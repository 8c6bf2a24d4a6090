/*
 * The timer wheel: exactness (never early, at most one tick late) and order across every level and
 * the overflow list, cascading, cancel, re-arming and cancelling from inside callbacks, the
 * deadline as a lower bound, idle jumps, and a 200,000-timer arm/cancel run.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */

#include "common/prng.h"
#include "engine/stack.h"
#include "harness.h"
#include "testlib.h"

#include <stdlib.h>
#include <time.h>

/* The tree's one PRNG (src/common/prng.h) instead of the C library's rand(): the same numbers
 * with every libc (the cross runs too), so a failure reproduces anywhere. */
static uint64_t rng_state;
static int rnd(void)
{
  return (int)(toe_prng_next(&rng_state) >> 33); /* 0 .. 2^31 - 1, as rand() */
}

#define TICK TOE_TW_TICK_NS

struct tt {
  struct toe_timer t;
  toe_time_t fired_at;
  int fired;
  int seq; /* firing order */
  /* behaviour inside the callback */
  int rearm_times;         /* re-arm itself this many more times ... */
  toe_time_t rearm_delta;  /* ... this far after now */
  struct tt *cancel_other; /* cancel this timer */
  struct tt *arm_other;    /* re-arm this one ... */
  toe_time_t arm_other_at; /* ... for this time */
  int cancel_self;         /* cancel itself (not pending any more: a no-op) */
};

static int g_seq;

static void tt_fire(struct toe_stack *st, struct toe_timer *t)
{
  struct tt *x = toe_container_of(t, struct tt, t);
  x->fired++;
  x->fired_at = toe_stack_now(st);
  x->seq = g_seq++;
  if (x->cancel_self)
    toe_timer_cancel(st, t);
  if (x->cancel_other)
    toe_timer_cancel(st, &x->cancel_other->t);
  if (x->arm_other) {
    toe_timer_arm(st, &x->arm_other->t, x->arm_other_at);
    x->arm_other = NULL; /* once */
  }
  if (x->rearm_times > 0) {
    x->rearm_times--;
    toe_timer_arm(st, t, toe_stack_now(st) + x->rearm_delta);
  }
}

static void tt_init(struct tt *x, int n)
{
  memset(x, 0, sizeof(*x) * (size_t)n);
  for (int i = 0; i < n; i++)
    toe_timer_init(&x[i].t, tt_fire);
}

static const struct toe_counters_timer *tc(const struct harness *h)
{
  return &toe_stack_counters(h->st)->timer;
}

/* Polls at every deadline until none is left before `end`. Returns the number of polls. */
static long run_deadlines(struct harness *h, toe_time_t end)
{
  long polls = 0;
  for (;;) {
    toe_time_t d = toe_stack_next_deadline(h->st);
    if (d == TOE_TIME_NEVER || d > end)
      break;
    if (d < toe_stack_now(h->st))
      d = toe_stack_now(h->st);
    toe_stack_poll(h->st, d);
    polls++;
    if (polls > 10000000)
      break;
  }
  toe_stack_poll(h->st, end);
  return polls;
}

/* Never early; at most one tick late. */
static bool on_time(const struct tt *x)
{
  return x->fired == 1 && x->fired_at >= x->t.expires && x->fired_at - x->t.expires < TICK;
}

TEST(exact_across_all_levels)
{
  struct harness h;
  h_init(&h);
  toe_time_t t0 = toe_stack_now(h.st);
  /* delays around every level boundary (256^L ticks), odd ns offsets, and the overflow list */
  static const toe_time_t delays_ms[] = {0,
                                         1,
                                         2,
                                         255,
                                         256,
                                         257,
                                         511,
                                         65535,
                                         65536,
                                         65537,
                                         300000,
                                         16777215,
                                         16777216,
                                         16777217,
                                         4294967295ull,
                                         4294967296ull,
                                         4294967297ull,
                                         1099511627775ull,
                                         1099511627776ull,
                                         1099511627777ull,
                                         3000000000000ull};
  enum { N = sizeof(delays_ms) / sizeof(delays_ms[0]) * 3 };
  static struct tt x[N];
  tt_init(x, N);
  uint64_t armed = tc(&h)->armed;
  for (int i = 0; i < N; i++) {
    toe_time_t d = TOE_MSEC(delays_ms[i / 3]);
    /* exactly on the tick, just after it, just before the next */
    toe_time_t off = (i % 3 == 0) ? 0 : (i % 3 == 1) ? 1 : TICK - 1;
    toe_timer_arm(h.st, &x[i].t, t0 + d + off + 1);
  }
  CHECK_EQ(tc(&h)->armed, armed + N);
  CHECK_EQ(tc(&h)->pending, N);
  g_seq = 0;
  run_deadlines(&h, t0 + TOE_MSEC(3000000000001ull));
  int late_or_early = 0, order = 0;
  for (int i = 0; i < N; i++) {
    if (!on_time(&x[i])) {
      late_or_early++;
      fprintf(stderr, "  timer %d expires %llu fired %d at %llu\n", i,
              (unsigned long long)x[i].t.expires, x[i].fired, (unsigned long long)x[i].fired_at);
    }
    /* timers of different ticks fire in tick order (within a tick the order is unspecified) */
    if (i > 0 && (x[i].t.expires + TICK - 1) / TICK > (x[i - 1].t.expires + TICK - 1) / TICK &&
        x[i].seq < x[i - 1].seq)
      order++;
  }
  CHECK_EQ(late_or_early, 0);
  CHECK_EQ(order, 0);
  CHECK_EQ(tc(&h)->pending, 0);
  CHECK(tc(&h)->cascaded > 0);
  CHECK_EQ(toe_stack_next_deadline(h.st), TOE_TIME_NEVER);
  h_fini(&h);
}

TEST(fires_only_when_due)
{
  struct harness h;
  h_init(&h);
  toe_time_t t0 = toe_stack_now(h.st);
  static struct tt x[3];
  tt_init(x, 3);
  toe_timer_arm(h.st, &x[0].t, t0 + TOE_MSEC(10) + 500000); /* 10.5 ms */
  toe_timer_arm(h.st, &x[1].t, t0 + TOE_MSEC(300));         /* level 1 */
  toe_timer_arm(h.st, &x[2].t, t0 + TOE_SEC(100));          /* level 2 */
  CHECK(toe_timer_pending(&x[0].t));
  toe_stack_poll(h.st, t0 + TOE_MSEC(10));
  CHECK_EQ(x[0].fired, 0);
  toe_stack_poll(h.st, t0 + TOE_MSEC(10) + 499999);
  CHECK_EQ(x[0].fired, 0); /* one ns early: not yet */
  toe_stack_poll(h.st, t0 + TOE_MSEC(11));
  CHECK_EQ(x[0].fired, 1);
  CHECK(!toe_timer_pending(&x[0].t));
  toe_stack_poll(h.st, t0 + TOE_MSEC(300) - 1);
  CHECK_EQ(x[1].fired, 0);
  toe_stack_poll(h.st, t0 + TOE_MSEC(300));
  CHECK_EQ(x[1].fired, 1);
  /* a big jump straight past the last one */
  toe_stack_poll(h.st, t0 + TOE_SEC(1000));
  CHECK_EQ(x[2].fired, 1);
  CHECK_EQ(x[2].fired_at, t0 + TOE_SEC(1000));
  CHECK_EQ(tc(&h)->pending, 0);
  h_fini(&h);
}

TEST(past_and_present_fire_next_poll)
{
  struct harness h;
  h_init(&h);
  toe_time_t t0 = toe_stack_now(h.st) + 123456; /* mid-tick */
  toe_stack_poll(h.st, t0);
  static struct tt x[2];
  tt_init(x, 2);
  toe_timer_arm(h.st, &x[0].t, t0 - TOE_MSEC(5));
  toe_timer_arm(h.st, &x[1].t, t0);
  CHECK(toe_stack_next_deadline(h.st) <= t0);
  toe_stack_poll(h.st, t0); /* same time: still fires */
  CHECK_EQ(x[0].fired, 1);
  CHECK_EQ(x[1].fired, 1);
  CHECK_EQ(toe_stack_next_deadline(h.st), TOE_TIME_NEVER);
  h_fini(&h);
}

TEST(cancel)
{
  struct harness h;
  h_init(&h);
  toe_time_t t0 = toe_stack_now(h.st);
  enum { N = 40 };
  static struct tt x[N];
  tt_init(x, N);
  for (int i = 0; i < N; i++)
    toe_timer_arm(h.st, &x[i].t, t0 + TOE_MSEC(1 + (i % 4) * 100000) + (toe_time_t)i);
  uint64_t cancelled = tc(&h)->cancelled;
  for (int i = 0; i < N; i += 2)
    toe_timer_cancel(h.st, &x[i].t);
  CHECK_EQ(tc(&h)->cancelled, cancelled + N / 2);
  toe_timer_cancel(h.st, &x[0].t); /* not pending: harmless, not counted */
  CHECK_EQ(tc(&h)->cancelled, cancelled + N / 2);
  CHECK_EQ(tc(&h)->pending, N / 2);
  CHECK(!toe_timer_pending(&x[0].t));
  run_deadlines(&h, t0 + TOE_SEC(400));
  int bad = 0;
  for (int i = 0; i < N; i++)
    bad += (i % 2 == 0) ? x[i].fired != 0 : !on_time(&x[i]);
  CHECK_EQ(bad, 0);
  /* cancelling everything leaves no deadline */
  toe_timer_arm(h.st, &x[0].t, t0 + TOE_SEC(500));
  toe_timer_arm(h.st, &x[2].t, t0 + TOE_SEC(500) + 1);
  CHECK(toe_stack_next_deadline(h.st) != TOE_TIME_NEVER);
  toe_timer_cancel(h.st, &x[2].t);
  toe_timer_cancel(h.st, &x[0].t);
  CHECK_EQ(toe_stack_next_deadline(h.st), TOE_TIME_NEVER);
  h_fini(&h);
}

TEST(rearm_moves_a_pending_timer)
{
  struct harness h;
  h_init(&h);
  toe_time_t t0 = toe_stack_now(h.st);
  static struct tt x[1];
  tt_init(x, 1);
  toe_timer_arm(h.st, &x[0].t, t0 + TOE_SEC(10));
  toe_timer_arm(h.st, &x[0].t, t0 + TOE_MSEC(5)); /* earlier */
  CHECK_EQ(tc(&h)->pending, 1);
  toe_stack_poll(h.st, t0 + TOE_MSEC(5));
  CHECK_EQ(x[0].fired, 1);
  toe_timer_arm(h.st, &x[0].t, t0 + TOE_MSEC(6));
  toe_timer_arm(h.st, &x[0].t, t0 + TOE_SEC(20)); /* later */
  toe_stack_poll(h.st, t0 + TOE_SEC(19));
  CHECK_EQ(x[0].fired, 1);
  toe_stack_poll(h.st, t0 + TOE_SEC(20));
  CHECK_EQ(x[0].fired, 2);
  CHECK_EQ(tc(&h)->pending, 0);
  h_fini(&h);
}

TEST(callbacks_rearm_and_cancel)
{
  struct harness h;
  h_init(&h);
  toe_time_t t0 = toe_stack_now(h.st);
  static struct tt x[8];
  tt_init(x, 8);
  toe_time_t at = t0 + TOE_MSEC(20);
  /* x0..x3 share one slot. Firing order within a slot is not specified, so each timer's action
   * targets another of the same slot; whichever runs first, the victims must behave. */
  x[0].rearm_times = 3; /* periodic: re-arms itself 3 times, 7 ms apart */
  x[0].rearm_delta = TOE_MSEC(7);
  x[1].cancel_other = &x[2]; /* cancels a timer of the same slot (maybe the next in the list) */
  x[2].cancel_other = &x[1];
  x[3].cancel_self = 1; /* cancelling the running timer: a no-op */
  x[3].arm_other = &x[4];
  x[3].arm_other_at = t0 + TOE_MSEC(1); /* in the past by then: fires at the next poll */
  for (int i = 0; i < 4; i++)
    toe_timer_arm(h.st, &x[i].t, at);
  /* x5 re-arms x6 (pending in the same slot) to later, x6 would otherwise fire now */
  x[5].arm_other = &x[6];
  x[5].arm_other_at = at + TOE_SEC(2);
  x[6].arm_other = &x[5];
  x[6].arm_other_at = at + TOE_SEC(2);
  toe_timer_arm(h.st, &x[5].t, at + TOE_MSEC(100));
  toe_timer_arm(h.st, &x[6].t, at + TOE_MSEC(100));

  toe_stack_poll(h.st, at);
  CHECK_EQ(x[0].fired, 1);
  CHECK_EQ(x[1].fired + x[2].fired, 1); /* exactly one of the pair ran and cancelled the other */
  CHECK(!toe_timer_pending(&x[1].t) && !toe_timer_pending(&x[2].t));
  CHECK_EQ(x[3].fired, 1);
  CHECK_EQ(x[4].fired, 0); /* armed in the past from a callback: not in this run ... */
  CHECK(toe_stack_next_deadline(h.st) <= at);
  toe_stack_poll(h.st, at);
  CHECK_EQ(x[4].fired, 1); /* ... but in the next */

  run_deadlines(&h, at + TOE_MSEC(100));
  CHECK_EQ(x[0].fired, 4);
  CHECK_EQ(x[0].fired_at, at + TOE_MSEC(21));
  CHECK_EQ(x[5].fired + x[6].fired, 1); /* the second was pushed to +2 s by the first */
  CHECK_EQ(tc(&h)->pending, 1);
  struct tt *first = x[5].fired ? &x[5] : &x[6], *second = x[5].fired ? &x[6] : &x[5];
  run_deadlines(&h, at + TOE_SEC(3));
  /* the second fires at +2 s and re-arms the first for that very time: it fires once more */
  CHECK_EQ(second->fired, 1);
  CHECK_EQ(second->fired_at, at + TOE_SEC(2));
  CHECK_EQ(first->fired, 2);
  CHECK_EQ(x[1].fired + x[2].fired, 1);
  CHECK_EQ(tc(&h)->pending, 0);
  h_fini(&h);
}

TEST(slot_neighbours_cancelled_by_callback_each_order)
{
  /* Many timers in one slot, each cancelling a neighbour (the one armed after it, then in a second
   * round the one armed before it, so both list orders are covered): the wheel must survive, and
   * a timer misses its turn exactly when its killer ran before it. */
  for (int dir = 1; dir >= -1; dir -= 2) {
    struct harness h;
    h_init(&h);
    toe_time_t t0 = toe_stack_now(h.st);
    enum { N = 64 };
    static struct tt x[N];
    tt_init(x, N);
    for (int i = 0; i < N; i++) {
      x[i].cancel_other = &x[(i + dir + N) % N];
      toe_timer_arm(h.st, &x[i].t, t0 + TOE_MSEC(3));
    }
    g_seq = 0;
    toe_stack_poll(h.st, t0 + TOE_MSEC(3));
    int fired = 0, wrong = 0;
    for (int i = 0; i < N; i++) {
      const struct tt *killer = &x[(i - dir + N) % N];
      fired += x[i].fired;
      if (x[i].fired > 1)
        wrong++;
      if (!x[i].fired && !killer->fired)
        wrong++; /* cancelled by nobody, yet did not fire */
      if (x[i].fired && killer->fired && killer->seq < x[i].seq)
        wrong++; /* its killer ran first, yet it fired */
    }
    CHECK_EQ(wrong, 0);
    CHECK(fired >= N / 2);
    CHECK_EQ(tc(&h)->pending, 0);
    CHECK_EQ(toe_stack_next_deadline(h.st), TOE_TIME_NEVER);
    h_fini(&h);
  }
}

TEST(cascade_counts_and_keeps_exactness)
{
  struct harness h;
  h_init(&h);
  toe_time_t t0 = toe_stack_now(h.st);
  static struct tt x[1];
  tt_init(x, 1);
  uint64_t casc = tc(&h)->cascaded;
  toe_timer_arm(h.st, &x[0].t, t0 + TOE_SEC(3600) + 777); /* level 3 */
  /* poll in coarse steps: each cascade happens on the way without firing early */
  for (toe_time_t t = t0; t < t0 + TOE_SEC(3600); t += TOE_SEC(7))
    toe_stack_poll(h.st, t);
  CHECK_EQ(x[0].fired, 0);
  CHECK(tc(&h)->cascaded >= casc + 1); /* level 2 -> 1 happened on the way */
  toe_stack_poll(h.st, t0 + TOE_SEC(3600) + 776);
  CHECK_EQ(x[0].fired, 0);
  CHECK(tc(&h)->cascaded >= casc + 2);                               /* and level 1 -> 0 */
  CHECK_EQ(toe_stack_next_deadline(h.st), t0 + TOE_SEC(3600) + 777); /* exact at level 0 */
  toe_stack_poll(h.st, t0 + TOE_SEC(3600) + 777);
  CHECK_EQ(x[0].fired, 1);
  h_fini(&h);
}

TEST(deadline_is_a_lower_bound)
{
  struct harness h;
  h_init(&h);
  toe_prng_seed(&rng_state, 7);
  toe_time_t t0 = toe_stack_now(h.st);
  enum { N = 3000 };
  static struct tt x[N];
  tt_init(x, N);
  for (int i = 0; i < N; i++) {
    /* spread over every level: 1 ms .. ~12 days, with random sub-tick offsets */
    int scale = rnd() % 6;
    toe_time_t span = TOE_MSEC(1);
    for (int s = 0; s < scale; s++)
      span *= 37;
    toe_time_t d = (toe_time_t)rnd() % span + (toe_time_t)rnd() % TICK + 1;
    toe_timer_arm(h.st, &x[i].t, t0 + d);
  }
  toe_time_t end = t0 + TOE_SEC(86400 * 13);
  int violations = 0, early = 0;
  long polls = 0;
  for (;;) {
    toe_time_t d = toe_stack_next_deadline(h.st);
    /* the earliest expiry of all pending timers: the deadline must not be later */
    toe_time_t first = TOE_TIME_NEVER;
    for (int i = 0; i < N; i++)
      if (toe_timer_pending(&x[i].t)) {
        if (x[i].t.expires < first)
          first = x[i].t.expires;
      }
    if (d > first)
      violations++;
    if (d == TOE_TIME_NEVER)
      break;
    /* just before the deadline nothing may fire */
    int before = 0;
    for (int i = 0; i < N; i++)
      before += x[i].fired;
    if (d > toe_stack_now(h.st) + 1)
      toe_stack_poll(h.st, d - 1);
    int after = 0;
    for (int i = 0; i < N; i++)
      after += x[i].fired;
    if (after != before)
      early++;
    toe_stack_poll(h.st, d);
    if (++polls > 1000000 || d > end)
      break;
  }
  CHECK_EQ(violations, 0);
  CHECK_EQ(early, 0);
  int bad = 0;
  for (int i = 0; i < N; i++)
    bad += !on_time(&x[i]);
  CHECK_EQ(bad, 0);
  printf("  deadline walk: %d timers, %ld deadlines\n", N, polls);
  h_fini(&h);
}

TEST(random_polling_never_misses)
{
  /* Poll at random times (not at deadlines): after each poll every timer due by then has fired,
   * and none before its time. */
  struct harness h;
  h_init(&h);
  toe_prng_seed(&rng_state, 11);
  toe_time_t t0 = toe_stack_now(h.st);
  enum { N = 2000 };
  static struct tt x[N];
  tt_init(x, N);
  for (int i = 0; i < N; i++)
    toe_timer_arm(h.st, &x[i].t, t0 + 1 + (toe_time_t)rnd() * 997u % TOE_SEC(600));
  int missed = 0, early = 0;
  for (toe_time_t t = t0; t < t0 + TOE_SEC(601);) {
    t += (toe_time_t)(rnd() % 5000) * 100000u + 1;
    toe_stack_poll(h.st, t);
    for (int i = 0; i < N; i++) {
      if (x[i].t.expires <= t && !x[i].fired)
        missed++;
      if (x[i].fired && x[i].fired_at < x[i].t.expires)
        early++;
    }
  }
  CHECK_EQ(missed, 0);
  CHECK_EQ(early, 0);
  h_fini(&h);
}

static double ns_since(const struct timespec *a)
{
  struct timespec b;
  clock_gettime(CLOCK_MONOTONIC, &b);
  return (double)(b.tv_sec - a->tv_sec) * 1e9 + (double)(b.tv_nsec - a->tv_nsec);
}

TEST(many_timers_mostly_cancelled)
{
  struct harness h;
  h_init(&h);
  toe_prng_seed(&rng_state, 3);
  toe_time_t t0 = toe_stack_now(h.st);
  enum { N = 200000 };
  struct tt *x = calloc(N, sizeof(*x));
  REQUIRE(x != NULL);
  tt_init(x, N);
  toe_time_t *when = calloc(N, sizeof(*when));
  for (int i = 0; i < N; i++) /* like retransmission timers: 1 ms .. 10 min out */
    when[i] = t0 + 1 + ((toe_time_t)rnd() * 7919u) % TOE_SEC(600);
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  for (int i = 0; i < N; i++)
    toe_timer_arm(h.st, &x[i].t, when[i]);
  double arm_ns = ns_since(&ts);
  CHECK_EQ(tc(&h)->pending, N);
  clock_gettime(CLOCK_MONOTONIC, &ts);
  int kept = 0;
  for (int i = 0; i < N; i++) {
    if (i % 10 == 0)
      kept++;
    else
      toe_timer_cancel(h.st, &x[i].t);
  }
  double cancel_ns = ns_since(&ts);
  CHECK_EQ(tc(&h)->pending, kept);
  clock_gettime(CLOCK_MONOTONIC, &ts);
  long polls = run_deadlines(&h, t0 + TOE_SEC(601));
  double run_ns = ns_since(&ts);
  int bad = 0;
  for (int i = 0; i < N; i++)
    bad += (i % 10 == 0) ? !on_time(&x[i]) : x[i].fired != 0;
  CHECK_EQ(bad, 0);
  CHECK_EQ(tc(&h)->pending, 0);
  printf("  %d timers: arm %.1f ns/op, cancel %.1f ns/op; %d fired over %ld polls, %.1f ns/fire\n",
         N, arm_ns / N, cancel_ns / (N - kept), kept, polls, run_ns / kept);
  free(x);
  free(when);
  h_fini(&h);
}

TEST(idle_jump_is_cheap)
{
  /* A year of idle time in one poll, and a far timer found on the way. */
  struct harness h;
  h_init(&h);
  toe_time_t t0 = toe_stack_now(h.st);
  static struct tt x[1];
  tt_init(x, 1);
  toe_stack_poll(h.st, t0 + TOE_SEC(86400ull * 365));
  CHECK_EQ(toe_stack_next_deadline(h.st), TOE_TIME_NEVER);
  toe_time_t t1 = toe_stack_now(h.st);
  toe_timer_arm(h.st, &x[0].t, t1 + TOE_SEC(86400ull * 200));
  toe_time_t d = toe_stack_next_deadline(h.st);
  CHECK(d > t1 && d <= x[0].t.expires);
  toe_stack_poll(h.st, t1 + TOE_SEC(86400ull * 199));
  CHECK_EQ(x[0].fired, 0);
  toe_stack_poll(h.st, t1 + TOE_SEC(86400ull * 400));
  CHECK_EQ(x[0].fired, 1);
  h_fini(&h);
}

TEST(time_never_goes_backwards)
{
  struct harness h;
  h_init(&h);
  toe_time_t t0 = toe_stack_now(h.st);
  static struct tt x[1];
  tt_init(x, 1);
  toe_stack_poll(h.st, t0 + TOE_SEC(5));
  toe_stack_poll(h.st, t0 + TOE_SEC(1)); /* a caller bug: ignored */
  CHECK_EQ(toe_stack_now(h.st), t0 + TOE_SEC(5));
  toe_timer_arm(h.st, &x[0].t, t0 + TOE_SEC(5) + TOE_MSEC(2));
  toe_stack_poll(h.st, t0 + TOE_SEC(2));
  CHECK_EQ(x[0].fired, 0);
  toe_stack_poll(h.st, t0 + TOE_SEC(5) + TOE_MSEC(2));
  CHECK_EQ(x[0].fired, 1);
  h_fini(&h);
}

TEST_MAIN()
