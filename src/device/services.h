/*
 * Built-in network services of toed, run on the engine's socket API:
 *   echo    RFC 862  returns each datagram to its sender
 *   discard RFC 863  reads and drops
 *   chargen RFC 864  answers each datagram with a datagram of the rotating character pattern
 * Only UDP exists so far. A service kind is a table entry with one handler per transport, so the
 * TCP variants (RFC 862/863/864 all define one) are added by filling in the TCP handlers once the
 * engine has TCP sockets; the set-up, readiness tracking and accounting stay as they are.
 *
 * Readiness: the engine reports TOE_EV_READABLE from inside its calls, where the callee must not
 * re-enter toe_stack_input()/poll(). toed_services_on_event() only records the socket as ready;
 * toed_services_run() does the work after the engine call has returned.
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
#define TOED_SVC_PROTO_TCP 0x2u /* reserved for the TCP variants */

/* A service as given on the command line. */
struct toed_service_spec {
  enum toed_service_kind kind;
  uint16_t port;
  uint32_t protos; /* TOED_SVC_PROTO_*; UDP only for now */
};

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
};

struct toed_service;
struct toed_services {
  struct toe_stack *st;
  unsigned count;
  struct toed_service *svc; /* count entries */
  unsigned ready;           /* instances marked readable and not yet drained */
  uint64_t rng;             /* chargen lengths */
  uint8_t *scratch;         /* one datagram, for answers that cannot reuse the buffer */
  int last_error;           /* last send error (negative TOE_E*), for rate-limited logging */
  uint64_t error_events;    /* how often an error was recorded since the last take */
};

/*
 * Opens and binds one UDP socket per spec on `st` (any local address). On failure returns a
 * negative TOE_E* value and writes a message to err; whatever was opened is closed again.
 */
int toed_services_open(struct toed_services *s, struct toe_stack *st,
                       const struct toed_service_spec *specs, unsigned n, uint64_t seed, char *err,
                       size_t errlen);

/* The sock_event callback body: `user` is the pointer given at open. */
void toed_services_on_event(struct toed_services *s, void *user, uint32_t events);

/* True if some socket is marked ready. */
static inline bool toed_services_pending(const struct toed_services *s)
{
  return s->ready != 0;
}

/*
 * Serves the ready sockets, at most `budget` datagrams per socket (so one flood does not starve
 * the event loop); sockets with more waiting stay ready. Returns the datagrams handled.
 */
unsigned toed_services_run(struct toed_services *s, unsigned budget);

/* Closes every socket. */
void toed_services_close(struct toed_services *s);

/* Writes "udp/echo:7,udp/discard:9" (or "none") into buf. */
void toed_services_describe(const struct toed_service_spec *specs, unsigned n, char *buf,
                            size_t len);

/* Visits each instance's counters with a label like "udp/echo:7". */
typedef void (*toed_service_stat_fn)(void *arg, const char *label, const char *name,
                                     uint64_t value);
void toed_services_visit(const struct toed_services *s, toed_service_stat_fn fn, void *arg);

#endif
