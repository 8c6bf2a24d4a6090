/*
 * Packet buffers.
 *
 * Every frame the engine handles lives in a pbuf taken from the stack's pool, which is sized at
 * creation; nothing is allocated afterwards. A packet is a chain of one or more pbufs linked by
 * `next`; the head's `tot_len` is the length of the whole chain. Queues of packets link heads by
 * `qnext`. Buffers are reference counted so the same payload can sit in a socket's queue and a
 * retransmission queue without a copy.
 *
 * Ownership: a function that takes a `struct toe_pbuf *` argument documented as "consumed" owns it
 * afterwards and will free it (on success and on failure alike). Everything else borrows.
 */
#ifndef TOE_PBUF_H
#define TOE_PBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct toe_stack;

/* Room kept in front of data in a fresh buffer, enough for Ethernet + VLAN + IPv4 + TCP headers. */
#define TOE_PBUF_HEADROOM 128

/* pbuf flags */
#define TOE_PBUF_F_L4_CSUM_OK                                                                      \
  0x0001u                             /* link verified the L4 checksum (or it was never computed   \
                                        because the frame came from a trusted local sender) */
#define TOE_PBUF_F_IP_CSUM_OK 0x0002u /* link verified the IPv4 header checksum */
#define TOE_PBUF_F_BROADCAST 0x0004u  /* set by the engine: arrived as link broadcast */
/* Set by the engine on a transmitted frame when the link has TOE_LINK_CAP_TX_CSUM: the L4
 * checksum is not computed. The field at csum_start + csum_offset holds the pseudo-header's folded
 * sum (not complemented); the link sums the bytes from csum_start to the end of the frame, with
 * that field as it is, and stores the complement of the result there (virtio-net's NEEDS_CSUM,
 * Linux's CHECKSUM_PARTIAL). */
#define TOE_PBUF_F_CSUM_PARTIAL 0x0008u
/* Set by the engine on a transmitted TCP/IPv4 super-segment when the link has TOE_LINK_CAP_TSO
 * (include/toe/engine.h): one Ethernet + IPv4 + TCP header followed by more payload than one
 * segment may carry; the link cuts it into pieces of gso_size payload bytes (the last may be
 * shorter), as virtio-net's VIRTIO_NET_HDR_GSO_TCPV4 or a NIC's TSO does. Always together with
 * TOE_PBUF_F_CSUM_PARTIAL. toe_gso_segment() is the software cut. */
#define TOE_PBUF_F_GSO_TCPV4 0x0010u

struct toe_pbuf {
  struct toe_pbuf *next;  /* next buffer of the same packet, NULL at the end of the chain */
  struct toe_pbuf *qnext; /* next packet in whatever queue holds this one (heads only) */
  uint8_t *data;          /* first valid byte */
  uint32_t tot_len;       /* on a chain head: bytes in the whole chain (on every buffer: bytes
                             from it to the end of its chain, so any tail is a valid chain) */
  uint16_t len;           /* valid bytes in this buffer, starting at data */
  uint16_t flags;         /* TOE_PBUF_F_* */
  uint16_t refcnt;        /* holders of this buffer */
  uint16_t cap;           /* bytes of storage at `base` */
  uint32_t index;         /* slot in the pool, for debugging and pool checks */
  uint32_t owner;         /* engine-internal: the socket queue this buffer is charged to, 0 = none
                             (docs/transport.md "Buffer accounting"); cleared when it is freed */
  uint8_t *base;          /* start of the storage */
  uint64_t meta[4];       /* per-layer scratch while the packet is in flight (like skb->cb) */
  /* Transmit offload, on a frame's head buffer, meaningful only with TOE_PBUF_F_CSUM_PARTIAL:
   * where the checksummed region starts, in bytes from the first byte of the frame as handed to
   * the link (each layer that pushes a header adds its length), and where the checksum field is,
   * in bytes from csum_start (16 for TCP). */
  uint16_t csum_start;
  uint16_t csum_offset;
  /* With TOE_PBUF_F_GSO_TCPV4 on a frame's head: the payload bytes per piece (the MSS). */
  uint16_t gso_size;
  /* Engine-internal: set on a reference buffer (toe_pbuf_ref_range()), whose data and len are a
   * view into this other buffer's storage, held by one reference until the view is freed. */
  struct toe_pbuf *ref;
};

/*
 * Takes a buffer from the pool with `headroom` bytes reserved before data and len 0.
 * Returns NULL when the pool is empty (counted in pbuf.alloc_failures) or headroom > cap.
 */
struct toe_pbuf *toe_pbuf_alloc(struct toe_stack *st, uint16_t headroom);

/*
 * Drops one reference on each buffer of the chain `p`; buffers reaching zero go back to the pool.
 * NULL is accepted and ignored.
 */
void toe_pbuf_free(struct toe_stack *st, struct toe_pbuf *p);

/* Frees every packet in the qnext-linked queue starting at `q`. */
void toe_pbuf_free_queue(struct toe_stack *st, struct toe_pbuf *q);

/* Adds a reference to every buffer of the chain. */
void toe_pbuf_ref(struct toe_pbuf *p);

/* Bytes free before data / after data+len in this buffer. */
static inline uint16_t toe_pbuf_headroom(const struct toe_pbuf *p)
{
  return (uint16_t)(p->data - p->base);
}
static inline uint16_t toe_pbuf_tailroom(const struct toe_pbuf *p)
{
  return (uint16_t)(p->cap - (p->data - p->base) - p->len);
}

/*
 * Prepends `n` bytes to the head buffer (for a header) and returns a pointer to them, or NULL if
 * the headroom is too small. Adjusts len and tot_len.
 */
uint8_t *toe_pbuf_push(struct toe_pbuf *p, uint16_t n);

/*
 * Removes `n` bytes from the front of the head buffer (n <= p->len) and returns the new data
 * pointer, or NULL if n > p->len. Adjusts len and tot_len.
 */
uint8_t *toe_pbuf_pull(struct toe_pbuf *p, uint16_t n);

/*
 * Extends the head buffer by `n` bytes at its tail and returns a pointer to the new bytes, or NULL
 * if the tailroom is too small. For single-buffer packets being built.
 */
uint8_t *toe_pbuf_put(struct toe_pbuf *p, uint16_t n);

/*
 * Shortens the chain to `len` bytes total (len <= tot_len), freeing buffers past the end.
 */
void toe_pbuf_trim(struct toe_stack *st, struct toe_pbuf *p, uint32_t len);

/*
 * Copies `len` bytes starting `off` bytes into the chain to `dst`. Returns bytes copied (less than
 * len only if the chain is shorter).
 */
size_t toe_pbuf_copy_out(const struct toe_pbuf *p, uint32_t off, void *dst, size_t len);

/*
 * Builds a packet from `len` bytes at `src`, chaining as many buffers as needed, each with
 * `headroom` reserved in the first. Returns NULL (and frees any partial chain) if the pool runs
 * out.
 */
struct toe_pbuf *toe_pbuf_from_bytes(struct toe_stack *st, const void *src, size_t len,
                                     uint16_t headroom);

/*
 * Makes the first `n` bytes of the chain contiguous in the head buffer (moving bytes from following
 * buffers), so a header can be parsed in place. Returns 0, or -TOE_EINVAL if the chain is shorter
 * than n or n does not fit in the head buffer. A following buffer shared with another packet is
 * never modified: if only part of it is needed, the rest is copied to a fresh buffer, and then
 * -TOE_ENOBUFS is possible too.
 */
int toe_pbuf_linearize_head(struct toe_stack *st, struct toe_pbuf *p, uint16_t n);

/* Appends chain `tail` to chain `head` (head's tot_len grows). */
void toe_pbuf_cat(struct toe_pbuf *head, struct toe_pbuf *tail);

/*
 * Removes `n` bytes (n < tot_len) from the front of chain `p` and returns the new head: buffers
 * that empty are freed (leading empty buffers too, so the head holds data afterwards) and the
 * first remaining one is pulled. The new head takes over the old head's `qnext` and `meta`, so a
 * queued packet or a send-queue segment keeps its place and its metadata. The buffers changed in
 * place must be the caller's alone (refcnt 1): a shared buffer's descriptor is also the other
 * holder's view (see toe_pbuf_shared()).
 */
struct toe_pbuf *toe_pbuf_drop_front(struct toe_stack *st, struct toe_pbuf *p, uint32_t n);

/*
 * Copies `len` bytes starting `off` bytes into chain `src` into a fresh chain whose head has
 * `headroom` bytes reserved. Returns NULL if the pool ran out (nothing is leaked) or the chain is
 * shorter than off + len.
 */
struct toe_pbuf *toe_pbuf_copy_range(struct toe_stack *st, const struct toe_pbuf *src, uint32_t off,
                                     uint32_t len, uint16_t headroom);

/*
 * Zero-copy view of `len` bytes starting `off` bytes into chain `src`: a fresh chain of reference
 * buffers whose data points into src's buffers, each holding one reference on the buffer it views
 * (so toe_pbuf_shared(src) is true while the view lives). A view has no headroom or tailroom:
 * nothing may be pushed or put into it. Returns NULL if the pool ran out (nothing is leaked) or
 * the chain is shorter than off + len, or len is 0.
 */
struct toe_pbuf *toe_pbuf_ref_range(struct toe_stack *st, struct toe_pbuf *src, uint32_t off,
                                    uint32_t len);

/* Number of buffers in chain `p` (0 for NULL). */
uint32_t toe_pbuf_count(const struct toe_pbuf *p);

/*
 * True if any buffer of chain `p` has another holder (refcnt > 1): a frame in flight that
 * references send-queue buffers (tcp_output.c sends segments without copying the payload). Such a
 * chain must not be changed in place (its len, data, next).
 */
bool toe_pbuf_shared(const struct toe_pbuf *p);

/* Number of buffers in the pool that are free now. */
uint32_t toe_pbuf_pool_free_count(const struct toe_stack *st);

/*
 * Buffers kept for control traffic (ARP, ICMP, RST/ACK/SYN-ACK, the driver's receive buffers):
 * no socket queue, IPv4 reassembly or send buffer may take the pool's free count below this.
 */
uint32_t toe_pbuf_pool_reserve(const struct toe_stack *st);

/* Buffers charged to socket queues now (send, receive, out-of-order and UDP queues). */
uint32_t toe_pbuf_pool_charged(const struct toe_stack *st);

#endif
