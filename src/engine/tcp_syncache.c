/* STUB: replaced by the TCP implementation. */
#include "engine/stack.h"
#include "engine/tcp.h"

void toe_tcp_syn_input(struct toe_stack *st, struct toe_tcb *listener, struct toe_pbuf *pb, const struct toe_ipv4_view *ip, const struct toe_tcp_view *th, const struct toe_tcp_opts *opts)
{}
struct toe_tcb *toe_tcp_syn_ack_input(struct toe_stack *st, struct toe_tcb *listener, const struct toe_ipv4_view *ip, const struct toe_tcp_view *th, const struct toe_tcp_opts *opts)
{ return 0; }
