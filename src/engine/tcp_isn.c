/* STUB: replaced by the TCP implementation. */
#include "engine/stack.h"
#include "engine/tcp.h"

uint32_t toe_tcp_isn(const struct toe_stack *st, uint32_t laddr, uint16_t lport, uint32_t raddr, uint16_t rport)
{ return 0; }
