/* STUB: replaced by the TCP implementation. */
#include "engine/stack.h"
#include "engine/tcp.h"

void toe_tcp_rtt_sample(struct toe_stack *st, struct toe_tcb *tp, uint32_t rtt_us)
{}
uint32_t toe_tcp_rto_us(const struct toe_stack *st, const struct toe_tcb *tp)
{ return 0; }
