/* STUB: replaced by the ICMP implementation. */
#include "engine/stack.h"

void toe_icmp_init(struct toe_stack *st) {}
void toe_icmp_input(struct toe_stack *st, struct toe_pbuf *pb, const struct toe_ipv4_view *ip)
{
  toe_pbuf_free(st, pb);
}
void toe_icmp_send_error(struct toe_stack *st, const struct toe_pbuf *orig, uint8_t type,
                         uint8_t code, uint32_t rest)
{
}
