/* STUB: replaced by the IPv4 implementation. */
#include "engine/stack.h"

size_t toe_ipv4_mem_size(const struct toe_config *cfg) { return 0; }
void toe_ipv4_init(struct toe_stack *st, void *mem) {}
void toe_ipv4_input(struct toe_stack *st, struct toe_pbuf *pb) { toe_pbuf_free(st, pb); }
int toe_ipv4_output(struct toe_stack *st, struct toe_pbuf *pb, const struct toe_ip_tx *tx)
{
  toe_pbuf_free(st, pb);
  return -TOE_ENETUNREACH;
}
bool toe_ipv4_on_link(const struct toe_stack *st, uint32_t a) { return false; }
