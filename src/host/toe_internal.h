/*
 * libtoe internals: the per-device state shared by the files of src/host.
 *
 * One struct toe_dev per session. Everything hangs off it and is guarded by dev->lock (see
 * "THREADS" in include/toe/toe.h). Tables are allocated once at attach; the data path allocates
 * nothing.
 *
 * Buffers (ids 0..buf_count-1 of the region's buffer area) are split once at attach:
 *   ids [0, rx_count)          receive buffers: in the fill ring / the device's (B_DEV), or lent to
 *                              us and queued on a socket (B_QUEUED), or lent on to the
 *                              application by toe_recv_zc (B_APP); returned to the fill ring when
 *                              consumed;
 *   ids [rx_count, buf_count)  send buffers: free (bit set in txmap) or referenced (txref > 0) by
 *                              the SENDs that name bytes in them, by the socket that is filling
 *                              it (its "partial" buffer) or by a toe_send_buf_get reservation.
 * The device only ever lends ids we put in the fill ring, so an EV_DATA naming anything else is a
 * device bug, counted and ignored.
 *
 * Operations. Every SQE we submit has an op record; its index and generation are the SQE's
 * user_data, so a completion finds its record without a search and a stale or forged one is
 * refused. There are exactly sq_entries records: every SQE not yet taken by the device has one,
 * so the SQ can never be full when we hold a record. Asynchronous ops (sends, connects, accepts)
 * may take only ops_async_max of them, which keeps records for control calls and closes (and the
 * device's table of outstanding ops, also sq_entries, never fills with sends waiting for a slow
 * peer while a close waits behind them).
 */
#ifndef TOE_HOST_INTERNAL_H
#define TOE_HOST_INTERNAL_H

#include "host/port.h"
#include "toe/abi.h"
#include "toe/toe.h"
#include "transport/ring.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define TOE_NONE UINT32_MAX

/* Receive buffer states (dev->bstate[id] for ids < rx_count). */
enum {
  B_DEV = 1,    /* in the fill ring, or filled and not yet lent: the device's */
  B_QUEUED = 2, /* lent to us, on a socket's receive queue */
  B_APP = 3,    /* lent on to the application by toe_recv_zc */
  B_LOOSE = 4,  /* lent to us, on no queue (a zero-copy piece being handed out) */
};

/* One receive buffer lent by the device (EV_DATA). */
struct rxb {
  uint32_t next;   /* next buffer on the socket's queue, TOE_NONE at the tail */
  uint32_t off;    /* unread data starts here in the buffer */
  uint32_t len;    /* unread bytes */
  uint16_t more;   /* UDP: the datagram continues in the next buffer */
  uint16_t mflags; /* 1.5: TOE_RXMETA_* of the fields below (UDP, first piece; 0: none came) */
  struct toe_abi_sockaddr from; /* UDP: the sender */
  uint32_t mdst;                /* 1.5: the datagram's destination (network order) */
  uint8_t mtos, mttl;           /* its TOS and TTL */
  uint64_t mtime;               /* its arrival, realtime ns */
};

/* Socket states (the library's view). */
enum {
  S_FREE = 0,
  S_EMBRYO,     /* pre-allocated for a posted ACCEPT; not visible to the application */
  S_OPEN,       /* opened (maybe bound: see F_BOUND) */
  S_LISTEN,     /* TCP listener */
  S_CONNECTING, /* TCP handshake under way */
  S_CONNECTED,  /* TCP established (or past it); UDP with a default peer */
  S_CLOSING,    /* toe_close called, waiting for the CLOSE completion; sd invalid */
};

/* Socket flags */
#define F_BOUND 0x001u
#define F_SHUT_RD 0x002u
#define F_SHUT_WR 0x004u
#define F_PEER_CLOSED 0x008u /* EOF after the queued data */
#define F_CONN_DEAD 0x010u   /* reset, fatal error, failed connect, or device gone */
#define F_LINGER_ABORT 0x020u
#define F_CLOSE_DEFER 0x040u /* the CLOSE could not be submitted yet (no op record) */
#define F_HELD_ACCEPT 0x080u /* embryo whose ACCEPT completed: on its listener's queue */
#define F_DEV_GONE 0x100u    /* device lost: reads give ECONNRESET after the queued data */
/* A shared listener (toe_share, toe_adopt) posts ACCEPTs only once the application asks for
 * connections (toe_accept, or TOE_POLLIN interest): F_ACC_WANT. */
#define F_ACC_LAZY 0x200u
#define F_ACC_WANT 0x400u

struct sock {
  uint32_t gen;       /* bumped on free: sock_data carries it, so stale events are refused */
  uint8_t type;       /* TOE_SOCK_STREAM / TOE_SOCK_DGRAM */
  uint8_t state;      /* S_* */
  uint16_t flags;     /* F_* */
  uint32_t handle;    /* the device's handle, 0 until known */
  int32_t soerror;    /* pending error (TOE_OPT_ERROR), 0 if none */
  int32_t accept_err; /* listener: an error the device gave a posted ACCEPT */

  /* receive queue (buffer ids linked through struct rxb.next) */
  uint32_t rx_head, rx_tail;
  uint32_t rx_nbufs;
  uint32_t rx_dgrams; /* UDP: complete datagrams queued */
  uint64_t rx_bytes;  /* bytes queued */

  /* send side */
  uint32_t tx_part;      /* send buffer being filled by small sends, or TOE_NONE */
  uint32_t tx_part_fill; /* bytes used in it */
  uint32_t tx_held;      /* send buffers this socket holds (any reference) */
  uint32_t tx_max;       /* TOE_OPT_TXBUFS */
  uint32_t sends;        /* SEND ops in flight */
  uint32_t ops;          /* ops of any kind in flight */

  /* listener: accepted connections (embryos linked through `next`), and posted ACCEPTs */
  uint32_t acc_head, acc_tail, acc_count;
  uint32_t acc_posted;
  uint32_t backlog;
  uint32_t listener; /* embryo: its listener's index */

  uint32_t next; /* free list, accept queue */

  struct toe_abi_sockaddr local, peer;

  /* toe_poll */
  uint32_t interest;
  void *udata;
  uint32_t rprev, rnext; /* ready list links */
  bool on_ready;
  bool v6; /* 1.7: an AF_INET6 socket (its addresses are sockaddr_in6) */
};

/* Op record states */
enum { OP_FREE = 0, OP_PENDING, OP_DONE, OP_ABANDONED };

struct op {
  uint32_t gen;
  uint8_t opcode;
  uint8_t state;
  bool sync;                 /* a thread waits for it (control calls) */
  bool async;                /* counts against ops_async_max */
  uint32_t sock;             /* socket index, or TOE_NONE */
  uint32_t aux;              /* ACCEPT: the embryo's index */
  uint32_t buf_first, buf_n; /* SEND, STATS: send buffers referenced */
  uint32_t len;
  uint32_t next_free;
  struct toe_abi_cqe cqe; /* sync ops: the completion */
};

struct toe_dev {
  pthread_mutex_t lock;
  pthread_cond_t cv; /* waiters other than the one polling the doorbell */
  bool waiter;       /* a thread spins or sleeps on the doorbell */
  uint32_t cv_waiters;

  /* Descriptors (port.h says what each is on each port; Linux in brackets) */
  int ctl_fd;    /* control socket: its hang-up ends the session */
  int kick_fd;   /* we wake the device [eventfd] */
  int notify_fd; /* the device wakes us [eventfd] */
  int self_fd;   /* readiness in the library (ready list, device events) [eventfd] */
  int wake_fd;   /* another thread woke the doorbell waiter [eventfd] */
  int ep_fd;     /* toe_event_fd() [epoll of notify, ctl and self] */
  bool self_armed;
  struct toe_port port;     /* the port's own state */
  struct toe_dev *all_next; /* every attached device (toe_attach.c, for fork) */

  uint8_t *region;
  size_t region_size;
  struct toe_abi_layout layout;
  uint64_t caps;
  uint32_t client_id;
  uint16_t abi_major, abi_minor;
  const struct toe_abi_region_hdr *hdr;

  struct toe_ring sq, cq, fq;
  bool sq_dirty, fq_dirty;

  uint64_t spin_ns;
  uint32_t op_timeout_ms;
  int status; /* 0 while up; the reason the session ended */
  bool stopping;
  bool ev_dead_pending, ev_stop_pending; /* TOE_SD_DEVICE events not yet reported */
  uint64_t next_ctl_check; /* monotonic ns: when a call next polls the control socket */

  /* buffers */
  uint32_t rx_count;
  struct rxb *rxb;   /* rx_count entries */
  uint8_t *bstate;   /* rx_count entries, B_* */
  uint64_t *txmap;   /* bit per buffer id: 1 = free send buffer */
  uint16_t *txref;   /* buf_count entries: references to a send buffer */
  uint32_t *txowner; /* buf_count entries: socket index holding it */
  uint32_t tx_cursor;
  uint32_t tx_free;
  bool tx_starved;     /* some socket found no send buffer: re-check all when one frees */
  uint32_t tx_default; /* default TOE_OPT_TXBUFS */

  /* ops */
  struct op *ops;
  uint32_t nops;
  uint32_t op_free; /* free list head */
  uint32_t ops_inflight;
  uint32_t ops_async; /* async ops in flight */
  uint32_t ops_async_max;
  bool ops_starved;
  uint32_t deferred_closes;

  /* sockets (index = sd) */
  struct sock *socks;
  uint32_t nsocks;
  uint32_t sock_free_head, sock_free_tail; /* FIFO: a freed sd is reused as late as possible */
  uint32_t ready_head, ready_tail;
  uint32_t ready_count;

  struct toe_dev_info info; /* counters */
  uint64_t seq;             /* bumped by every change a waiting thread may wait for */
  uint64_t seq_at_lock;     /* seq when the current call took the lock */
};

/* ---- toe_event.c: ops, completions, flushing, waiting, readiness ---- */

uint64_t toe_mono_ns(void);
/* Deadline in monotonic ns for a timeout in ms (-1: none = UINT64_MAX). */
uint64_t toe_deadline(int timeout_ms);

void toe_dev_lock(struct toe_dev *d);
/* Publishes what the call submitted (one batch), rings the device if it sleeps, wakes waiters
 * if anything changed, re-arms the event fd, and unlocks. */
void toe_dev_unlock(struct toe_dev *d);
/* Processes every pending completion (and checks the device's liveness now and then). */
void toe_dev_progress(struct toe_dev *d);
/* Waits (lock held; released while sleeping) for progress or until `deadline`, at most ~1 s. */
void toe_dev_wait(struct toe_dev *d, uint64_t deadline, bool for_poll);
/* Ends the session on our side with `err` (idempotent). */
void toe_dev_die(struct toe_dev *d, int err);
/* Polls the control socket without blocking; ends the session if it hung up. */
void toe_dev_check_ctl(struct toe_dev *d);

/* An op record for `opcode` on socket index `sock` (TOE_NONE: none); NULL if none is free (for
 * async ops: if the async budget is used up). */
struct op *toe_op_alloc(struct toe_dev *d, uint8_t opcode, uint32_t sock, bool async);
void toe_op_free(struct toe_dev *d, struct op *op);
/* Fills the SQE header (opcode, handle, user_data) for `op`; the caller fills u. */
void toe_sqe_init(struct toe_dev *d, struct toe_abi_sqe *sqe, const struct op *op, uint32_t handle);
/* Writes one SQE into the SQ (published at unlock). 0 or -TOE_EPROTO (session ended). */
int toe_sq_push(struct toe_dev *d, const struct toe_abi_sqe *sqe);
/* Submits a control op (sqe->handle and sqe->u filled by the caller) and waits for its
 * completion, bounded by op_timeout_ms. buf_first/buf_n: send buffers the op uses (given back by
 * a late completion if the wait times out; else the caller gives them back). Returns the
 * completion's res and copies the CQE to *cqe; -TOE_ETIMEDOUT; -TOE_ENETDOWN. */
int toe_op_sync(struct toe_dev *d, struct toe_abi_sqe *sqe, uint8_t opcode, uint32_t sock,
                uint32_t buf_first, uint32_t buf_n, struct toe_abi_cqe *cqe);

/* Returns a receive buffer to the device through the fill ring. */
void toe_fq_return(struct toe_dev *d, uint32_t id);

/* Something changed that a thread waiting in another call may care about (a completion, a
 * socket closed or shut down): it is woken when this call unlocks. */
static inline void toe_dev_changed(struct toe_dev *d)
{
  d->seq++;
}

/* Readiness */
uint32_t toe_sock_ready(const struct toe_dev *d, const struct sock *s);
/* Re-evaluates a socket's place on the ready list (after any change to it). */
void toe_sock_update(struct toe_dev *d, struct sock *s);
void toe_sock_update_all(struct toe_dev *d);

/* ---- toe_socket.c ---- */

/* The visible socket `sd`, or NULL. */
struct sock *toe_sock_get(struct toe_dev *d, int sd);
/* How a call on socket `sd` begins: takes the device lock, processes pending completions
 * (toe_dev_progress) and returns the visible socket `sd`, or NULL. The caller unlocks
 * (toe_dev_unlock) either way. */
struct sock *toe_sock_enter(struct toe_dev *d, int sd);
struct sock *toe_sock_alloc(struct toe_dev *d, uint8_t type);
void toe_sock_free(struct toe_dev *d, struct sock *s);
uint64_t toe_sock_data(const struct toe_dev *d, const struct sock *s);
/* toe_close on a visible socket (lock held). */
void toe_close_locked(struct toe_dev *d, struct sock *s);
/* Submits a socket's CLOSE (or defers it until an op record frees). */
void toe_sock_submit_close(struct toe_dev *d, struct sock *s, bool abort);
/* Posts ACCEPTs on a listener up to its target. */
void toe_listener_refill(struct toe_dev *d, struct sock *l);
/* Completion handlers */
void toe_on_connect_done(struct toe_dev *d, struct op *op, const struct toe_abi_cqe *c);
void toe_on_accept_done(struct toe_dev *d, struct op *op, const struct toe_abi_cqe *c);
void toe_on_close_done(struct toe_dev *d, struct op *op, const struct toe_abi_cqe *c);
/* Retries deferred CLOSEs (an op record freed). */
void toe_retry_deferred_closes(struct toe_dev *d);

/* ---- toe_io.c ---- */

/* Completion of a SEND: drops its buffer references. */
void toe_on_send_done(struct toe_dev *d, struct op *op, const struct toe_abi_cqe *c);
/* An EV_DATA for socket s (NULL: unknown, give the buffer back). */
void toe_on_data(struct toe_dev *d, struct sock *s, const struct toe_abi_cqe *c);
/* Drops a socket's receive queue (buffers back to the device) and its partial send buffer. */
void toe_sock_drop_buffers(struct toe_dev *d, struct sock *s);
/* Send buffer references */
void toe_tx_unref(struct toe_dev *d, uint32_t first, uint32_t n);
/* Reserves a run of 1..want consecutive free send buffers (exactly want if `exact`) for socket
 * index `owner` (one reference each). Returns the first id and *got, or TOE_NONE. */
uint32_t toe_tx_alloc(struct toe_dev *d, uint32_t want, bool exact, uint32_t owner, uint32_t *got);
/* True if socket s may submit another send now (space, op records). */
bool toe_sock_can_send(const struct toe_dev *d, const struct sock *s);

/* Address conversion */
int toe_sa_in(const struct sockaddr *sa, socklen_t len, struct toe_abi_sockaddr *out,
              bool allow_unspec);
void toe_sa_out(const struct toe_abi_sockaddr *in, struct sockaddr *sa, socklen_t *len);
/* As toe_sa_out, for a socket of family AF_INET6 if `v6`: an unknown address (family 0) is then
 * :: port 0 as a sockaddr_in6, as Linux names an unbound AF_INET6 socket. */
void toe_sa_out_af(const struct toe_abi_sockaddr *in, bool v6, struct sockaddr *sa, socklen_t *len);

/* Region address of a buffer id. */
static inline uint8_t *toe_buf_ptr(const struct toe_dev *d, uint32_t id)
{
  return d->region + d->layout.buf_off + (uint64_t)id * d->layout.buf_size;
}
static inline uint64_t toe_buf_off(const struct toe_dev *d, uint32_t id)
{
  return d->layout.buf_off + (uint64_t)id * d->layout.buf_size;
}

/* Per-socket cap on SENDs in flight (many small sends share a buffer; this bounds the device's
 * table of waiting ops a single socket can fill). */
#define TOE_SENDS_MAX 64u
/* ACCEPTs kept posted on a listener (at most its backlog). */
#define TOE_ACCEPTS_POSTED 4u
/* Largest run of buffers one SEND names (bounds how long the device's copy of one op takes). */
#define TOE_SEND_RUN_MAX 8u

#endif
