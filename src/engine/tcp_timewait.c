/* STUB: replaced by the TCP implementation. */
#include "engine/stack.h"
#include "engine/tcp.h"

void toe_tcp_enter_timewait(struct toe_stack *st, struct toe_tcb *tp)
{}
bool toe_tcp_timewait_input(struct toe_stack *st, struct toe_pbuf *pb, const struct toe_ipv4_view *ip, const struct toe_tcp_view *th, const struct toe_tcp_opts *opts)
{ return false; }
