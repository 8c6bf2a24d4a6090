/* STUB: replaced by the TCP implementation. */
#include "engine/stack.h"
#include "engine/tcp.h"

void toe_tcp_ack_process(struct toe_stack *st, struct toe_tcb *tp, uint32_t ack, const struct toe_tcp_opts *opts, uint32_t ts_ecr)
{}
void toe_tcp_recovery_on_ack(struct toe_stack *st, struct toe_tcb *tp, uint32_t acked_bytes, bool dup_ack)
{}
void toe_tcp_on_rto(struct toe_stack *st, struct toe_tcb *tp)
{}
void toe_tcp_on_tlp(struct toe_stack *st, struct toe_tcb *tp)
{}
void toe_tcp_on_reo_timer(struct toe_stack *st, struct toe_tcb *tp)
{}
uint32_t toe_tcp_pipe(const struct toe_tcb *tp)
{ return 0; }
