/* STUB: replaced by the engine-core implementation. */
#include "engine/stack.h"

struct toe_pbuf *toe_pbuf_alloc(struct toe_stack *st, uint16_t headroom) { return NULL; }
void toe_pbuf_free(struct toe_stack *st, struct toe_pbuf *p) {}
void toe_pbuf_free_queue(struct toe_stack *st, struct toe_pbuf *q) {}
void toe_pbuf_ref(struct toe_pbuf *p) {}
uint8_t *toe_pbuf_push(struct toe_pbuf *p, uint16_t n) { return NULL; }
uint8_t *toe_pbuf_pull(struct toe_pbuf *p, uint16_t n) { return NULL; }
uint8_t *toe_pbuf_put(struct toe_pbuf *p, uint16_t n) { return NULL; }
void toe_pbuf_trim(struct toe_stack *st, struct toe_pbuf *p, uint32_t len) {}
size_t toe_pbuf_copy_out(const struct toe_pbuf *p, uint32_t off, void *dst, size_t len) { return 0; }
struct toe_pbuf *toe_pbuf_from_bytes(struct toe_stack *st, const void *src, size_t len,
                                     uint16_t headroom)
{
  return NULL;
}
int toe_pbuf_linearize_head(struct toe_stack *st, struct toe_pbuf *p, uint16_t n) { return -1; }
void toe_pbuf_cat(struct toe_pbuf *head, struct toe_pbuf *tail) {}
uint32_t toe_pbuf_pool_free_count(const struct toe_stack *st) { return 0; }
size_t toe_pbuf_pool_mem_size(const struct toe_config *cfg) { return 0; }
void toe_pbuf_pool_init(struct toe_stack *st, void *mem) {}
uint32_t toe_pbuf_csum(const struct toe_pbuf *p, uint32_t off, uint32_t len) { return 0; }
