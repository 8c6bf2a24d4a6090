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
  /* buffer accounting (pbuf_charge.c) */
  uint32_t *charge;   /* buffers charged per owner id (toe_pbuf_owner_*), owners entries */
  uint32_t *freed_ms; /* per owner: when it last gave a buffer back (ms clock, 0 = never) */
  uint32_t owners;    /* 1 + 2 * tcp_socks + udp_socks (id 0 = uncharged) */
  uint32_t charged;   /* buffers charged to any owner */
  uint32_t active;    /* owners holding at least one buffer */
  uint32_t reserve;   /* free buffers no owner may take (control traffic only) */
  uint32_t pressure;  /* charged above this: the pressure rule applies */
  uint32_t sock_max;  /* most buffers one owner may hold */
  uint32_t sock_min;  /* the most a data-moving owner may grow to under pressure */
};

/* Bytes the pool needs for `cfg`. */
size_t toe_pbuf_pool_mem_size(const struct toe_config *cfg);

/* Lays the pool out in `mem` (toe_pbuf_pool_mem_size() bytes, 64-byte aligned). */
void toe_pbuf_pool_init(struct toe_stack *st, void *mem);

/* ---- buffer accounting (pbuf_charge.c; docs/transport.md "Buffer accounting") ----
 *
 * Every buffer a socket queue holds is charged to an owner, one per socket and direction, in
 * buffers whatever its payload (as Linux charges skb truesize, not payload, to sk_rmem_alloc), so a
 * peer that makes us hold 88-byte segments in 2 KiB buffers uses up its allowance 23 times faster
 * than its byte count says, instead of the pool. The charge is dropped when the buffer returns to
 * the pool (pbuf_pool.c), wherever that happens, so queues can move, split and share buffers
 * without bookkeeping of their own.
 *
 * A charge is refused (counted in pbuf.refused_*) when:
 *   - the owner would hold more than its limit (its byte allowance in buffers, at most sock_max);
 *   - it would take the pool's free count below the reserve (ARP, ICMP, RST/SYN-ACK, the SYN
 *     cache's replies and the driver's receive buffers live there);
 *   - the pool is under pressure (half of what is above the reserve charged) and the owner
 *     holds more than it may then: an owner that gave a buffer back within the last second (its
 *     application reads, its peer acknowledges) may hold its fair share of the pressure level or
 *     sock_min, whichever is larger; an owner that gave nothing back (a peer or application that
 *     only takes) no more than a floor of 8 buffers. So the sockets that filled the pool stop,
 *     and each further hostile socket costs 8 buffers, while sockets that move data keep moving.
 */
/* Owner ids. */
static inline uint32_t toe_pbuf_owner_tcp_rx(uint32_t tcb_index)
{
  return 1u + 2u * tcb_index;
}
static inline uint32_t toe_pbuf_owner_tcp_tx(uint32_t tcb_index)
{
  return 2u + 2u * tcb_index;
}
uint32_t toe_pbuf_owner_udp(const struct toe_stack *st, uint32_t udp_index);

/* Buffers charged to `owner` now. */
uint32_t toe_pbuf_owner_held(const struct toe_stack *st, uint32_t owner);

/* Bytes of payload a full buffer is assumed to carry when a byte limit (SO_RCVBUF, SO_SNDBUF)
 * becomes a limit in buffers: half a buffer, so ordinary segments (1448 bytes in 2 KiB) never
 * meet the buffer limit before the byte limit, while tiny ones do. */
uint32_t toe_pbuf_bufs_for_bytes(const struct toe_stack *st, uint32_t bytes);

/* May `owner` take `n` more buffers with `limit` as its own allowance (capped at sock_max)?
 * Returns 0, or -TOE_ENOBUFS with the reason counted. */
int toe_pbuf_charge_check(struct toe_stack *st, uint32_t owner, uint32_t n, uint32_t limit);

/* How many more buffers `owner` may take now (the same rules as toe_pbuf_charge_check, nothing
 * counted): what a receive window may promise. UINT32_MAX for a non-owner. */
uint32_t toe_pbuf_charge_room(const struct toe_stack *st, uint32_t owner, uint32_t limit);

/* Charges every not yet charged buffer of chain `p` to `owner` (no check: call
 * toe_pbuf_charge_check first). */
void toe_pbuf_charge(struct toe_stack *st, struct toe_pbuf *p, uint32_t owner);

/* toe_pbuf_alloc for `owner`'s queue: the check, the allocation and the charge. NULL if refused
 * (counted) or the pool is empty. */
struct toe_pbuf *toe_pbuf_alloc_charged(struct toe_stack *st, uint16_t headroom, uint32_t owner,
                                        uint32_t limit);

/* Drops the charge of one buffer reaching refcount zero (pbuf_pool.c's free path). */
void toe_pbuf_uncharge(struct toe_stack *st, struct toe_pbuf *p);

/* Buffers in chain `p`. */
uint32_t toe_pbuf_chain_bufs(const struct toe_pbuf *p);

/*
 * Collapses a sparse chain (more buffers than its bytes need at full size: tiny segments or
 * fragments) into as few fresh buffers as hold its bytes, the first with `headroom` (the copy
 * also starts at data). The head's flags and meta words carry over. Returns the new chain and
 * frees `p`, or returns `p` itself when it is not sparse or the copy would dig into the
 * reserve (pbuf.compact_nobuf). Never NULL for a non-NULL `p`.
 */
struct toe_pbuf *toe_pbuf_compact(struct toe_stack *st, struct toe_pbuf *p, uint16_t headroom);

/* Sizes and fills the accounting part of the pool (called by the pool). */
size_t toe_pbuf_charge_mem_size(const struct toe_config *cfg);
void toe_pbuf_charge_init(struct toe_stack *st, void *mem);

/* Internal checksum helper: partial sum of `len` bytes starting `off` bytes into the chain. */
uint32_t toe_pbuf_csum(const struct toe_pbuf *p, uint32_t off, uint32_t len);

#endif
