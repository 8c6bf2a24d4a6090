/*
 * The host interface: a TAP interface in toed's network namespace carrying the device's MAC, the
 * OS's ordinary view of the port (docs/coexistence.md). Frames the steering sends up are written
 * to it; frames the OS sends on it are read here, checked against the coexistence rules, and
 * handed to the wire's link driver by the caller. Its carrier follows the wire's.
 *
 * No vnet header: the TAP offers no offloads, so the kernel segments and checksums the OS's frames
 * before handing them over, and every frame read is an ordinary wire frame of at most MTU + 18
 * bytes. The interface is not persistent: it goes with toed (see docs/coexistence.md for what
 * that means for the OS's connections) and comes back when toed starts again.
 */
#ifndef TOED_HOST_IF_H
#define TOED_HOST_IF_H

#include "toe/engine.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TOED_HOST_IF_STATS(X)                                                                      \
  X(up_frames)       /* wire frames written up to the OS */                                        \
  X(up_bytes)        /* their bytes */                                                             \
  X(up_drop)         /* writes the TAP refused (its queue full, or down) */                        \
  X(down_frames)     /* frames the OS sent, read from the TAP */                                   \
  X(down_bytes)      /* their bytes */                                                             \
  X(to_wire)         /* of them, passed to the wire */                                             \
  X(drop_arp_reply)  /* the OS's ARP replies for the shared address (the engine answers) */        \
  X(drop_owned_flow) /* the OS's TCP/UDP segments of a flow the engine owns (e.g. a RST) */        \
  X(drop_tx_error)   /* frames the wire's driver refused */                                        \
  X(carrier_changes) /* carrier set on or off to follow the wire */                                \
  X(drop_nd_adv)     /* the OS's IPv6 neighbour advertisements for a shared address */

#define TOED_HOST_IF_FIELD_(name) uint64_t name;
struct toed_host_if_stats {
  TOED_HOST_IF_STATS(TOED_HOST_IF_FIELD_)
};

struct toed_host_if {
  int fd; /* the TAP queue, nonblocking; -1 when closed */
  char name[16];
  int ifindex;
  bool carrier;
  struct toed_host_if_stats stats;
  uint8_t buf[65536 + 64]; /* one frame read from the TAP */
};

/* What the host interface is created with. */
struct toed_host_if_params {
  const char *name;
  const uint8_t *mac; /* the device's MAC */
  uint16_t mtu;       /* the engine's IP MTU */
  uint32_t addr;      /* host order, 0 = leave addressing to the user */
  uint8_t prefix_len;
  bool carrier; /* the wire's carrier now */
};

/*
 * Creates the TAP, sets its MAC and MTU (and address if given) and brings it up. Returns 0, or a
 * negative errno with a message saying what failed and what to do in err.
 */
int toed_host_if_open(struct toed_host_if *h, const struct toed_host_if_params *p, char *err,
                      size_t errlen);

/*
 * Reads one frame the OS sent. Returns its length (the frame is in h->buf), 0 if none is pending,
 * or a negative errno.
 */
int toed_host_if_read(struct toed_host_if *h);

/*
 * The coexistence rules on the way out (docs/coexistence.md): false for an ARP reply for the
 * shared address `addr` (the engine already answers every request: exactly one reply per request
 * reaches the wire), for a TCP/UDP segment from the shared address of a flow the engine owns
 * (the OS must never reset an offloaded connection), and the same two for IPv6 when the engine
 * has it on: a neighbour advertisement for one of its addresses (toe_steer_shared6), a segment of
 * an IPv6 flow it owns (toe_steer_owned6). Counts the drops.
 */
bool toed_host_if_may_send(struct toed_host_if *h, const struct toe_stack *st, uint32_t addr,
                           const uint8_t *frame, size_t len);

/* Writes one wire frame up to the OS (counted; a refused write is counted as up_drop). */
void toed_host_if_up(struct toed_host_if *h, const uint8_t *frame, size_t len);

/* Sets the TAP's carrier (no-op if unchanged). */
void toed_host_if_set_carrier(struct toed_host_if *h, bool on);

/* Closes the TAP: the interface and the OS's addresses and routes on it disappear. */
void toed_host_if_close(struct toed_host_if *h);

typedef void (*toed_host_if_stat_fn)(void *arg, const char *name, uint64_t value);
void toed_host_if_stats_visit(const struct toed_host_if_stats *s, toed_host_if_stat_fn fn,
                              void *arg);

/* True if interface `ifname` has carrier (IFF_RUNNING); false if it cannot be read. */
bool toed_if_running(const char *ifname);

#endif
