/*
 * IPv6 steering (steer6.c), called by toe_steer_frame() (steer.c) for IPv6 frames when the engine
 * has IPv6 on; the rules are in include/toe/steer.h.
 */
#ifndef TOE_ENGINE_STEER6_H
#define TOE_ENGINE_STEER6_H

#include "toe/engine.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Counts verdict `v` (TOE_STEER_*) in steer.to_engine/to_host/to_both and returns it. */
unsigned toe_steer_verdict(struct toe_stack *st, unsigned v);

/* Steers the IPv6 packet at frame + l3_off (the frame is `len` bytes); `mac_ours` says the
 * destination MAC is the device's (else it is a multicast one). */
unsigned toe_steer_ipv6(struct toe_stack *st, const uint8_t *frame, size_t len, size_t l3_off,
                        bool mac_ours);

#endif
