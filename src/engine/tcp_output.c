/* STUB: replaced by the TCP implementation. */
#include "engine/stack.h"
#include "engine/tcp.h"

void toe_tcp_output(struct toe_stack *st, struct toe_tcb *tp)
{}
void toe_tcp_send_ack(struct toe_stack *st, struct toe_tcb *tp)
{}
int toe_tcp_retransmit(struct toe_stack *st, struct toe_tcb *tp, struct toe_pbuf *seg)
{ return 0; }
void toe_tcp_send_reset(struct toe_stack *st, const struct toe_ipv4_view *ip, const struct toe_tcp_view *th, uint32_t seg_len)
{}
void toe_tcp_send_rst_conn(struct toe_stack *st, struct toe_tcb *tp)
{}
uint32_t toe_tcp_rcv_window(const struct toe_stack *st, const struct toe_tcb *tp)
{ return 0; }
uint32_t toe_tcp_ts_now(const struct toe_stack *st, const struct toe_tcb *tp)
{ return 0; }
