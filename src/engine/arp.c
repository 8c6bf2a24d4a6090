/* STUB: replaced by the ARP implementation. */
#include "engine/stack.h"

size_t toe_arp_mem_size(const struct toe_config *cfg) { return 0; }
void toe_arp_init(struct toe_stack *st, void *mem) {}
void toe_arp_input(struct toe_stack *st, struct toe_pbuf *pb) { toe_pbuf_free(st, pb); }
int toe_arp_output(struct toe_stack *st, struct toe_pbuf *pb, uint32_t nexthop)
{
  toe_pbuf_free(st, pb);
  return -TOE_EHOSTUNREACH;
}
void toe_arp_announce(struct toe_stack *st) {}
const struct toe_neigh *toe_arp_lookup(const struct toe_stack *st, uint32_t ip) { return NULL; }
