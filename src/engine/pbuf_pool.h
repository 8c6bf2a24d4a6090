/*
 * The stack's packet buffer pool: pbuf descriptors and their storage, carved from the stack's
 * memory at creation, handed out from a free list.
 */
#ifndef TOE_ENGINE_PBUF_POOL_H
#define TOE_ENGINE_PBUF_POOL_H

#include "toe/engine.h"

#include <stddef.h>
#include <stdint.h>

struct toe_pbuf_pool {
  struct toe_pbuf *descs; /* count descriptors */
  uint8_t *storage;       /* count * size bytes */
  struct toe_pbuf *free;  /* free list, linked by next */
  uint32_t count;
  uint32_t nfree;
  uint16_t size;
};

/* Bytes the pool needs for `cfg`. */
size_t toe_pbuf_pool_mem_size(const struct toe_config *cfg);

/* Lays the pool out in `mem` (toe_pbuf_pool_mem_size() bytes, 64-byte aligned). */
void toe_pbuf_pool_init(struct toe_stack *st, void *mem);

/* Internal checksum helper: partial sum of `len` bytes starting `off` bytes into the chain. */
uint32_t toe_pbuf_csum(const struct toe_pbuf *p, uint32_t off, uint32_t len);

#endif
