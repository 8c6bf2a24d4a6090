/* STUB: replaced by the engine-core implementation. */
#include "engine/stack.h"

void toe_tw_init(struct toe_timer_wheel *tw, toe_time_t now) {}
void toe_timer_init(struct toe_timer *t, toe_timer_fn fn) {}
void toe_timer_arm(struct toe_stack *st, struct toe_timer *t, toe_time_t expires) {}
void toe_timer_cancel(struct toe_stack *st, struct toe_timer *t) {}
void toe_tw_run(struct toe_stack *st, toe_time_t now) {}
toe_time_t toe_tw_next(const struct toe_timer_wheel *tw) { return TOE_TIME_NEVER; }
