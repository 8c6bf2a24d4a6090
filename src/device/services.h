/*
 * Built-in network services of toed, run on the engine's socket API, over UDP and TCP:
 *   echo    RFC 862  returns each datagram to its sender / every byte of a connection
 *   discard RFC 863  reads and drops
 *   chargen RFC 864  answers each datagram with a datagram of the rotating character pattern /
 *                    sends the pattern on a connection for as long as the client takes it
 * A service kind is a table entry with one handler per transport; `--service echo:7` serves the
 * port over both (one UDP socket and one TCP listener).
 *
 * Readiness: the engine reports events from inside its calls, where the callee must not re-enter
 * toe_stack_input()/poll(). toed_services_on_event() only records the socket as ready;
 * toed_services_run() does the work after the engine call has returned.
 *
 * TCP connections live in a pool of `max_conns` entries sized at start. Each service moves data
 * only as fast as the engine takes it: echo reads no more than the send buffer can take, so a
 * client that does not read its echoes stops the device reading, closes the device's receive
 * window and is held back by TCP itself; chargen writes only while the send buffer has room. No
 * connection buffers more than one small chunk in toed.
 */
#ifndef TOED_SERVICES_H
#define TOED_SERVICES_H

#include "toe/engine.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TOED_MAX_SERVICES 16

enum toed_service_kind {
  TOED_SVC_ECHO,
  TOED_SVC_DISCARD,
  TOED_SVC_CHARGEN,
  TOED_SVC_KIND_COUNT,
};

#define TOED_SVC_PROTO_UDP 0x1u
#define TOED_SVC_PROTO_TCP 0x2u

/* A service as given on the command line. */
struct toed_service_spec {
  enum toed_service_kind kind;
  uint16_t port;
  uint32_t protos; /* TOED_SVC_PROTO_* */
};

/* Default size of the TCP connection pool (--max-conns). */
#define TOED_DEFAULT_MAX_CONNS 4096u
#define TOED_MAX_MAX_CONNS 1048576u
/* Listen backlog of each TCP service, and the engine's SYN cache and backlog limit, for a pool of
 * max_conns connections: 1024 up to the default pool, then one per 64 connections (at most
 * 65535), as Linux's SYN queue grows with the machine. A million-connection toed with a 1024-entry
 * SYN cache answered most SYNs of a connect burst with cookies, and a cookie connection whose
 * handshake ACK was lost (a receive-ring drop under load) cannot be recovered by a SYN-ACK
 * retransmission: the client believed in it, the device reset it at the first data minutes later
 * (bench/scale.sh, ~2 % of a million). */
static inline uint16_t toed_svc_backlog(uint32_t max_conns)
{
  uint32_t b = max_conns / 64u;
  return (uint16_t)(b < 1024u ? 1024u : b > 65535u ? 65535u : b);
}

/* Name of a kind ("echo"), its well-known port, lookup by name (-1 if unknown). */
const char *toed_service_name(enum toed_service_kind k);
uint16_t toed_service_default_port(enum toed_service_kind k);
int toed_service_lookup(const char *name);
/* "echo, discard, chargen" for messages. */
const char *toed_service_names(void);

/* Per-instance counters, printed in the exit summary under "service". */
struct toed_service_stats {
  uint64_t rx_datagrams;
  uint64_t rx_bytes;
  uint64_t tx_datagrams;
  uint64_t tx_bytes;
  uint64_t tx_errors; /* sends the engine refused */
  uint64_t bursts;    /* runs that found datagrams queued (each answered as one burst) */
  uint64_t burst_max; /* most datagrams served in one run */
};

/* Per-service TCP counters (layer "svc_tcp_<name>_<port>" in the summary). */
struct toed_service_tcp_stats {
  uint64_t accepted;     /* connections taken from the listener */
  uint64_t closed;       /* ended gracefully: the peer's FIN read, our FIN queued after the data */
  uint64_t reset;        /* ended by the peer's RST (ECONNRESET) */
  uint64_t aborted;      /* ended by another error (timeout, ...): aborted */
  uint64_t stop_aborted; /* still open when toed stopped: aborted with a RST */
  uint64_t active;       /* gauge: connections held now */
  uint64_t active_max;   /* high-water mark of active */
  uint64_t rx_bytes;     /* bytes read from connections */
  uint64_t tx_bytes;     /* bytes the engine accepted for sending */
  uint64_t accept_deferred; /* accept rounds stopped because the connection pool was full */
  uint64_t accept_errors;   /* accept failures other than "queue empty" */
  uint64_t nobufs_stalls;   /* sends refused for lack of packet buffers (retried later) */
  uint64_t write_waits;     /* times a connection waited for send-buffer space */
};

struct toed_service;
struct toed_conn;
struct toed_services {
  struct toe_stack *st;
  unsigned count;
  struct toed_service *svc; /* count entries */
  unsigned ready;           /* UDP sockets and listeners marked ready, plus ready connections */
  uint64_t rng;             /* chargen lengths */
  uint8_t *scratch;         /* one datagram, for answers that cannot reuse the buffer; also the
                               TCP copy buffer */
  int last_error;           /* last send error (negative TOE_E*), for rate-limited logging */
  uint64_t error_events;    /* how often an error was recorded since the last take */

  /* TCP */
  uint32_t max_conns;
  struct toed_conn *conns;      /* the pool: max_conns entries */
  struct toed_conn *conn_free;  /* free list */
  uint32_t conns_active;        /* in use */
  unsigned ready_conns;         /* connections on the ready list (also counted in `ready`) */
  struct toed_conn *ready_head; /* connections with something to do, FIFO */
  struct toed_conn *ready_tail;
  struct toed_conn *stall_head; /* connections waiting for packet buffers (retried each run) */
  struct toed_conn *stall_tail;
  unsigned stalled;
  bool accept_blocked;    /* some listener stopped accepting because the pool was full */
  uint8_t *chargen_block; /* two periods of the TCP chargen stream */
};

/*
 * Opens, for each spec, a UDP socket bound to its port (if TOED_SVC_PROTO_UDP) and a TCP listener
 * on it (if TOED_SVC_PROTO_TCP), on any local address; TCP connections come from a pool of
 * `max_conns` (0: TOED_DEFAULT_MAX_CONNS). On failure returns a negative TOE_E* value and writes a
 * message to err; whatever was opened is closed again.
 */
int toed_services_open(struct toed_services *s, struct toe_stack *st,
                       const struct toed_service_spec *specs, unsigned n, uint64_t seed,
                       uint32_t max_conns, char *err, size_t errlen);

/* The sock_event callback body: `user` is the pointer given at open. */
void toed_services_on_event(struct toed_services *s, void *user, uint32_t events);

/* True if some socket is marked ready. */
static inline bool toed_services_pending(const struct toed_services *s)
{
  return s->ready != 0;
}

/* True if some TCP connection waits for packet buffers: call toed_services_run() again soon (the
 * pool refills as the peers acknowledge; no event says when). */
static inline bool toed_services_stalled(const struct toed_services *s)
{
  return s->stalled != 0;
}

/*
 * Serves the ready sockets: each UDP socket's whole queue (at least `budget` datagrams; the
 * engine's per-socket limit bounds it, and the answers leave in one burst at the caller's next
 * link flush), and a bounded number of bytes per TCP connection (so one fast stream does not
 * starve the event loop); sockets with more waiting stay ready. Stalled connections are retried.
 * Returns the datagrams and TCP operations handled.
 */
unsigned toed_services_run(struct toed_services *s, unsigned budget);

/*
 * Aborts (RST) every TCP connection still open, counting them in stop_aborted; the listeners and
 * UDP sockets stay until toed_services_close(). For an orderly stop, before the link goes down.
 */
void toed_services_stop(struct toed_services *s);

/* Closes every socket. */
void toed_services_close(struct toed_services *s);

/* Writes "udp+tcp/echo:7,udp+tcp/discard:9" (or "none") into buf. */
void toed_services_describe(const struct toed_service_spec *specs, unsigned n, char *buf,
                            size_t len);

/* Visits each instance's counters with a label like "udp/echo:7" or "tcp/echo:7". */
typedef void (*toed_service_stat_fn)(void *arg, const char *label, const char *name,
                                     uint64_t value);
void toed_services_visit(const struct toed_services *s, toed_service_stat_fn fn, void *arg);

#endif
