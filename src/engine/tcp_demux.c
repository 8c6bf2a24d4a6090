/* STUB: replaced by the TCP implementation. */
#include "engine/stack.h"
#include "engine/tcp.h"

void toe_tcp_input(struct toe_stack *st, struct toe_pbuf *pb, const struct toe_ipv4_view *ip)
{}
struct toe_tcb *toe_tcp_lookup(const struct toe_stack *st, uint32_t laddr, uint16_t lport, uint32_t raddr, uint16_t rport)
{ return 0; }
void toe_tcp_hash_insert(struct toe_stack *st, struct toe_tcb *tp)
{}
void toe_tcp_hash_remove(struct toe_stack *st, struct toe_tcb *tp)
{}
bool toe_tcp_icmp_error(struct toe_stack *st, const struct toe_ipv4_view *qip, const uint8_t *ql4, int err, uint16_t next_mtu)
{ return false; }
