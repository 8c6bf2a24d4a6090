/*
 * Engine-to-engine test bench: two stacks joined by an in-memory point-to-point link on one
 * virtual clock, with seeded fault injection per direction (loss, reordering, duplication,
 * corruption, delay and jitter, a serialization rate and a drop-tail queue).
 *
 * End 0 is 198.18.0.1 (MAC 02:00:00:00:00:01), end 1 is 198.18.0.2 (MAC 02:00:00:00:00:02), both
 * on 198.18.0.0/24. Every frame one stack transmits is copied, subjected to the faults of its
 * direction and delivered to the other stack at its arrival time. Everything is deterministic for
 * a given seed.
 */
#ifndef TOE_TEST_E2E_LINK_H
#define TOE_TEST_E2E_LINK_H

#include "toe/engine.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define E2E_IP0 0xc6120001u /* 198.18.0.1 */
#define E2E_IP1 0xc6120002u /* 198.18.0.2 */

/* Faults and shape of one direction. Probabilities are in parts per million. */
struct e2e_faults {
  uint32_t loss_ppm;        /* frame dropped */
  uint32_t reorder_ppm;     /* frame held back by reorder_delay (later frames overtake it) */
  uint32_t dup_ppm;         /* frame delivered twice */
  uint32_t corrupt_ppm;     /* one byte after the Ethernet header flipped */
  toe_time_t delay;         /* propagation delay */
  toe_time_t jitter;        /* extra delay, uniform in [0, jitter] (keeps order: FIFO) */
  toe_time_t reorder_delay; /* extra delay of a reordered frame, uniform in (0, reorder_delay] */
  uint64_t rate_bps;        /* serialization rate in bit/s, 0 = infinitely fast */
  uint32_t queue_limit; /* frames in flight (queued or propagating), 0 = unlimited (drop-tail) */
};

/* Per-direction figures. */
struct e2e_dir_stats {
  uint64_t frames; /* transmitted by the sending stack */
  uint64_t bytes;
  uint64_t lost;
  uint64_t queue_drops; /* drop-tail */
  uint64_t reordered;
  uint64_t duplicated;
  uint64_t corrupted;
  uint64_t delivered;
};

struct e2e_link;

/* Per-end socket event callback (the stack's sock_event is the link's; it forwards here). */
typedef void (*e2e_event_fn)(void *ctx, int end, struct toe_sock *s, void *user, uint32_t events);

struct e2e_end {
  struct e2e_link *link;
  int idx;
  struct toe_stack *st;
  struct toe_config cfg;
};

struct e2e_frame;

struct e2e_link {
  struct e2e_end end[2];
  toe_time_t now;
  uint64_t rng;
  struct e2e_faults faults[2]; /* [i]: frames sent by end i */
  struct e2e_dir_stats stats[2];
  toe_time_t busy_until[2];   /* serializer of each direction */
  toe_time_t last_arrival[2]; /* FIFO floor for jittered frames */
  uint32_t queued[2];         /* frames in flight per direction (for the queue limit) */
  struct e2e_frame **heap;    /* frames in flight, a min-heap by (arrival, order) */
  size_t nheap, capheap;
  uint64_t order;
  e2e_event_fn on_event;
  void *event_ctx;
  /* Optional: sees every frame a stack transmits, before the link takes it (a device's capture
   * hook, as toed's transmit path calls it). */
  void (*tx_tap)(void *ctx, int end, struct toe_pbuf *frame);
  void *tx_tap_ctx;
};

/* The default config of an end (identity filled in, pools sized for bulk transfers). Adjust
 * and pass to e2e_init. */
void e2e_default_cfg(struct toe_config *cfg, int end);

/*
 * Creates both stacks at virtual time `start` (cfg0/cfg1 may be NULL for the defaults; their
 * identity, callbacks and ctx are overwritten), starts them, and resolves ARP both ways so the
 * first TCP segments are not queued behind address resolution. Faults start at zero (set
 * link->faults afterwards). Aborts on failure.
 */
void e2e_init(struct e2e_link *l, const struct toe_config *cfg0, const struct toe_config *cfg1,
              uint64_t seed, toe_time_t start);
void e2e_fini(struct e2e_link *l);

/* Sets the same faults for both directions. */
void e2e_set_faults(struct e2e_link *l, const struct e2e_faults *f);

/*
 * Advances the clock to the next event (a frame arrival or a stack deadline) if it is not later
 * than `limit`, delivers the frames due and polls both stacks. Returns false (clock moved to
 * `limit`) if there was nothing to do before the limit.
 */
bool e2e_step(struct e2e_link *l, toe_time_t limit);
/* Runs e2e_step until `until`. */
void e2e_run_until(struct e2e_link *l, toe_time_t until);
/* Frames in flight on the link. */
size_t e2e_in_flight(const struct e2e_link *l);

/* A simple 64-bit PRNG for tests: splitmix64 (src/common/prng.h) of the state word. */
uint64_t e2e_rand(uint64_t *state);

#endif
