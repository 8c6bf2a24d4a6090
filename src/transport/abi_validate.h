/*
 * Checking what a host client hands the device (docs/transport.md "What the device validates").
 *
 * The device keeps, per client, a struct toe_abi_client in its OWN memory: a private copy of the
 * negotiated layout, the handle table and the buffer ownership table. Nothing here ever reads
 * the shared region: the caller copies each descriptor out of the ring first (toe_ring_cons_read)
 * and passes the copy, so a host cannot change a descriptor between its check and its use.
 *
 * Every function returns 0 (or a count) or a negative TOE_E* value, which the device puts in the
 * error completion unchanged. Checks run in a fixed order, so one descriptor always gives the
 * same error: opcode, flags and reserved fields, handle, arguments (addresses, offsets and
 * lengths), then the socket's state.
 *
 * Also here: the handshake (hello checks, layout negotiation, region initialisation), used by the
 * device to answer a hello and by the host to check the answer.
 */
#ifndef TOE_TRANSPORT_ABI_VALIDATE_H
#define TOE_TRANSPORT_ABI_VALIDATE_H

#include "toe/abi.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------------------------------------
 * Handshake and layout
 */

/* What a device is willing to give one client. */
struct toe_abi_limits {
  uint32_t sq_max;        /* <= TOE_ABI_SQ_MAX, power of two */
  uint32_t cq_max;        /* <= TOE_ABI_CQ_MAX, power of two, >= 2 * sq_max */
  uint32_t buf_count_max; /* <= TOE_ABI_BUF_COUNT_MAX */
  uint32_t buf_size_max;  /* <= TOE_ABI_BUF_SIZE_MAX, power of two */
  uint32_t handles_max;   /* <= TOE_ABI_HANDLES_MAX */
  uint64_t region_max;    /* <= TOE_ABI_REGION_MAX */
  uint64_t caps;          /* TOE_ABI_CAP_* the device offers */
};

/* The ABI's maxima and TOE_ABI_CAPS_1_2 (a device withholds CAP_FLOWS from unprivileged
 * clients). */
void toe_abi_limits_default(struct toe_abi_limits *lim);

/*
 * Checks a received hello of `len` bytes. Returns 0, or:
 *   -TOE_EPROTO          too short, wrong magic, or size field != len
 *   -TOE_EPROTONOSUPPORT major version other than TOE_ABI_MAJOR
 *   -TOE_EINVAL          flags or reserved fields not 0, an origin above TOE_ABI_ORIGIN_MAX, or
 *                        a ring size / buf_size request that is neither 0 nor a power of two
 * A longer hello (a later minor) is accepted; only the 1.0 part is read.
 */
int toe_abi_hello_check(const struct toe_abi_hello *h, size_t len);

/*
 * Chooses the geometry for a (checked) hello within `lim`: requests are clamped to the limits,
 * 0 means the default, cq_entries >= 2 * sq_entries, fq_entries >= buf_count; buf_count shrinks
 * if the region would exceed lim->region_max. Returns 0, or -TOE_EINVAL for unusable limits,
 * -TOE_ENOMEM if even the smallest buffer area does not fit.
 */
int toe_abi_layout_compute(const struct toe_abi_hello *h, const struct toe_abi_limits *lim,
                           struct toe_abi_layout *out);

/*
 * Checks a layout (the host checks the device's; the device checks its own): sizes in range and
 * powers of two where required, offsets aligned, every part inside the region, no two parts
 * overlapping and none overlapping the header. Returns 0 or -TOE_EINVAL.
 */
int toe_abi_layout_check(const struct toe_abi_layout *l);

/*
 * The device's answer to a hello of `len` bytes: checks it, negotiates version (same major,
 * minor = min of both), capabilities (hello.caps & lim.caps) and layout, and fills `rep`.
 * Returns rep->status: 0, or the -TOE_E* of toe_abi_hello_check / toe_abi_layout_compute, or
 * -TOE_EPROTONOSUPPORT if no socket protocol is left after capability negotiation.
 */
int toe_abi_negotiate(const struct toe_abi_hello *h, size_t len, const struct toe_abi_limits *lim,
                      uint32_t client_id, struct toe_abi_hello_reply *rep);

/*
 * The host's check of a reply of `len` bytes to a hello that offered `offered_caps`: magic, size,
 * major, status (returned as is when negative), granted caps a subset of the offer, the layout.
 * Returns 0, the reply's negative status, -TOE_EPROTO, -TOE_EPROTONOSUPPORT or -TOE_EINVAL.
 */
int toe_abi_reply_check(const struct toe_abi_hello_reply *rep, size_t len, uint64_t offered_caps);

/*
 * Initialises a new region of layout->region_size bytes (device side, before it is shared):
 * zeroes it, writes the header, and resets every ring's indices to `ring_start` (0 normally;
 * near UINT32_MAX to exercise wrap-around). A region known to read as zeros already (a new memfd
 * or shm object) is better initialised with toe_region_init_fresh (transport/region.h), which
 * does not touch every page.
 */
void toe_abi_region_init(void *region, const struct toe_abi_layout *layout, uint64_t caps,
                         uint32_t client_id, uint32_t ring_start);

/* ---------------------------------------------------------------------------------------------
 * Per-client state (device-private)
 */

/* Handle slot states: what the transport knows of a socket (the engine knows the rest). */
enum toe_abi_hstate {
  TOE_ABI_HS_FREE = 0,
  TOE_ABI_HS_OPEN,       /* opened, not bound */
  TOE_ABI_HS_BOUND,      /* bound (explicitly, or implicitly by a UDP send) */
  TOE_ABI_HS_LISTENING,  /* TCP listener */
  TOE_ABI_HS_CONNECTING, /* TCP: handshake under way */
  TOE_ABI_HS_CONNECTED,  /* TCP: established (or past it); UDP: has a default peer */
};

/* Handle slot flags */
#define TOE_ABI_HF_SHUT_RD 0x1u
#define TOE_ABI_HF_SHUT_WR 0x2u

struct toe_abi_hslot {
  uint16_t gen;    /* current generation, 1..65535 */
  uint8_t state;   /* enum toe_abi_hstate */
  uint8_t proto;   /* TOE_ABI_PROTO_* */
  uint16_t family; /* TOE_ABI_AF_* */
  uint8_t flags;   /* TOE_ABI_HF_* */
  uint8_t reserved;
  uint32_t rx_lent; /* buffers lent to the host for this socket now */
  uint32_t rx_max;  /* lending limit (SO_RXBUFS) */
};

/* Buffer ownership table entries (one uint32_t per buffer). */
#define TOE_ABI_BUF_HOST 0u            /* the host's, not lent (free, or in one of its SENDs) */
#define TOE_ABI_BUF_DEVICE 0xffffffffu /* the device's: taken from the fill ring */
/* any other value: the host's, lent with EV_DATA for that handle (counts in its rx_lent) */

/* Default abuse limit: more than this many strikes within the window ends the session. */
#define TOE_ABI_STRIKE_LIMIT 64u
#define TOE_ABI_STRIKE_WINDOW_NS 1000000000ull

struct toe_abi_client {
  struct toe_abi_layout layout; /* private copy: never re-read from the region */
  uint64_t caps;
  uint64_t buf_end;            /* layout.buf_off + buf_count * buf_size */
  struct toe_abi_hslot *slots; /* layout.max_handles entries, caller's memory */
  uint32_t *bufs;              /* layout.buf_count entries, caller's memory */
  uint32_t alloc_cursor;       /* next slot to try: reuse is spread over the table */
  uint32_t handles_inuse;
  uint32_t rx_max_default; /* initial rx_max of a new socket */
  uint32_t strike_limit;
  uint32_t strikes; /* in the current window */
  uint64_t strike_window_ns;
  uint64_t strike_window_start;
  struct toe_abi_client_stats stats;
};

/*
 * Sets up a client's private state for a checked layout. `slots` holds layout->max_handles
 * entries, `bufs` layout->buf_count. Every handle is free (generation 1), every buffer the
 * host's, a new socket may hold min(64, buf_count / 4) lent buffers (at least 1).
 * Returns 0 or -TOE_EINVAL (bad layout or arguments).
 */
int toe_abi_client_init(struct toe_abi_client *c, const struct toe_abi_layout *layout,
                        uint64_t caps, struct toe_abi_hslot *slots, uint32_t *bufs);

/*
 * Counts one strike (a refused descriptor or fill entry) at time `now_ns`. Returns true when the
 * client has exceeded strike_limit within strike_window_ns: the device ends the session.
 */
bool toe_abi_client_strike(struct toe_abi_client *c, uint64_t now_ns);

/* ---------------------------------------------------------------------------------------------
 * Handles
 */

/* The slot index of `handle` if it names an open socket of this client, else -TOE_EBADF. */
int toe_abi_handle_lookup(const struct toe_abi_client *c, uint32_t handle, uint32_t *index);

/*
 * Takes a free slot for a new socket (state OPEN) and returns its handle in *handle.
 * -TOE_EMFILE if the table is full, -TOE_EINVAL for an unknown proto.
 */
int toe_abi_handle_alloc(struct toe_abi_client *c, uint8_t proto, uint16_t family,
                         uint32_t *handle);

/* Frees a slot (after CLOSE): its generation moves on, so the old handle is refused from now. */
void toe_abi_handle_free(struct toe_abi_client *c, uint32_t index);

/* ---------------------------------------------------------------------------------------------
 * Descriptors
 */

/*
 * Checks one submission entry (a private copy) against the client's state. Returns 0 and, for
 * ops that name a socket, its slot index in *index (UINT32_MAX otherwise); or the -TOE_E* for
 * the error completion:
 *   -TOE_EOPNOTSUPP     unknown opcode (including 0); an op the socket's protocol lacks (LISTEN,
 *                       ACCEPT, SHUTDOWN on UDP); STATS without TOE_ABI_CAP_STATS; CAPTURE
 *                       without TOE_ABI_CAP_CAPTURE
 *   -TOE_EINVAL         flags, reserved fields, or an argument out of its domain
 *   -TOE_EBADF          handle not an open socket of this client (index, state, generation)
 *   -TOE_EFAULT         [offset, offset + len) not inside the buffer area
 *   -TOE_EAFNOSUPPORT   address family unknown, not granted, or not the socket's
 *   -TOE_EPROTONOSUPPORT  OPEN of a protocol that was not granted
 *   -TOE_ENOPROTOOPT    unknown socket option, or not one of this protocol
 *   -TOE_EMSGSIZE       UDP datagram over 65507 bytes
 *   state errors as the socket calls give them: -TOE_EINVAL, -TOE_EISCONN, -TOE_EALREADY,
 *   -TOE_ENOTCONN, -TOE_EPIPE, -TOE_EDESTADDRREQ
 */
int toe_abi_validate_sqe(const struct toe_abi_client *c, const struct toe_abi_sqe *sqe,
                         uint32_t *index);

/*
 * 0 if [off, off + len) lies inside the buffer area, else -TOE_EFAULT (no arithmetic overflow:
 * an offset + length that wraps is refused).
 */
int toe_abi_check_range(const struct toe_abi_client *c, uint64_t off, uint64_t len);

/*
 * Checks a socket address: UNSPEC only if `allow_unspec` and all zero; INET with the unused bytes
 * zero; INET6 only if granted. Returns 0, -TOE_EAFNOSUPPORT or -TOE_EINVAL.
 */
int toe_abi_check_sockaddr(const struct toe_abi_client *c, const struct toe_abi_sockaddr *sa,
                           bool allow_unspec);

/* Fills an error completion for `sqe` refused with `err` (< 0). */
void toe_abi_cqe_error(struct toe_abi_cqe *cqe, const struct toe_abi_sqe *sqe, int err);

/* ---------------------------------------------------------------------------------------------
 * Buffers
 */

/*
 * Takes a buffer id read from the fill ring: it must be < buf_count and the host's. It becomes
 * the device's; if it was lent for a socket still open, that socket's rx_lent drops (the return
 * is the socket's receive credit). Returns 0, or -TOE_EFAULT (bad id) / -TOE_EALREADY (the device
 * holds it already: a double return); both are strikes, and the entry is ignored.
 */
int toe_abi_fill_take(struct toe_abi_client *c, uint32_t buf_id);

/*
 * Lends a device-owned buffer to the host with an EV_DATA event for `handle` (rx_lent + 1).
 * Returns 0, or -TOE_EINVAL if the buffer is not the device's or the handle not open (a device
 * bug, not the client's).
 */
int toe_abi_buf_lend(struct toe_abi_client *c, uint32_t buf_id, uint32_t handle);

/*
 * Hands a device-owned buffer to the host with an event that names no socket (1.2 EV_CAPTURE):
 * it is the host's again, counted against no socket's credit. Returns 0, or -TOE_EINVAL if the
 * buffer is not the device's (a device bug, not the client's).
 */
int toe_abi_buf_give(struct toe_abi_client *c, uint32_t buf_id);

/* Region offset of buffer `buf_id` (< buf_count). */
static inline uint64_t toe_abi_buf_offset(const struct toe_abi_client *c, uint32_t buf_id)
{
  return c->layout.buf_off + (uint64_t)buf_id * c->layout.buf_size;
}

#endif
