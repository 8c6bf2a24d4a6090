/* STUB: replaced by the TCP implementation. */
#include "engine/stack.h"
#include "engine/tcp.h"

void toe_tcp_timer_set(struct toe_stack *st, struct toe_tcb *tp, enum toe_tcp_timer_kind k, toe_time_t when)
{}
void toe_tcp_timer_clear(struct toe_stack *st, struct toe_tcb *tp, enum toe_tcp_timer_kind k)
{}
void toe_tcp_timers_init(struct toe_tcb *tp)
{}
void toe_tcp_rearm_rto(struct toe_stack *st, struct toe_tcb *tp)
{}
