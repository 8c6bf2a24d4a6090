/* STUB: replaced by the TCP implementation. */
#include "engine/stack.h"
#include "engine/tcp.h"

void toe_tcp_input_conn(struct toe_stack *st, struct toe_tcb *tp, struct toe_pbuf *pb, const struct toe_ipv4_view *ip, const struct toe_tcp_view *th, const struct toe_tcp_opts *opts)
{}
