/* STUB: replaced by the engine-core implementation. */
#include "engine/stack.h"

#include <stdlib.h>
#include <string.h>

void toe_config_defaults(struct toe_config *cfg) { memset(cfg, 0, sizeof(*cfg)); }
size_t toe_stack_mem_size(const struct toe_config *cfg) { return 0; }
int toe_stack_create(const struct toe_config *cfg, void *mem, size_t mem_len, struct toe_stack **out)
{
  return -TOE_EINVAL;
}
int toe_stack_new(const struct toe_config *cfg, struct toe_stack **out) { return -TOE_EINVAL; }
void toe_stack_free(struct toe_stack *st) {}
void toe_stack_start(struct toe_stack *st, toe_time_t now) {}
void toe_stack_input(struct toe_stack *st, struct toe_pbuf *frame, toe_time_t now) {}
int toe_stack_input_copy(struct toe_stack *st, const void *frame, size_t len, toe_time_t now)
{
  return -TOE_ENOBUFS;
}
void toe_stack_poll(struct toe_stack *st, toe_time_t now) {}
toe_time_t toe_stack_next_deadline(const struct toe_stack *st) { return TOE_TIME_NEVER; }
toe_time_t toe_stack_now(const struct toe_stack *st) { return st->now; }
const struct toe_counters *toe_stack_counters(const struct toe_stack *st) { return &st->ctr; }
const struct toe_config *toe_stack_config(const struct toe_stack *st) { return &st->cfg; }
uint64_t toe_random(struct toe_stack *st) { return 4; }
uint64_t toe_keyed_hash(const struct toe_stack *st, const void *data, size_t len) { return 0; }
void toe_link_output(struct toe_stack *st, struct toe_pbuf *pb, const uint8_t *dst_mac,
                     uint16_t ethertype)
{
}
void toe_counters_visit(const struct toe_counters *c, toe_counter_visit_fn fn, void *arg) {}
const char *toe_strerror(int err) { return "?"; }
