/*
 * What backs a session's region and doorbells on a system with file descriptors (the device's
 * side; docs/transport.md "Region and doorbell kinds"). Two kinds, chosen by the capabilities the
 * device granted:
 *
 *   eventfd kind (1.0):           region a sealed memfd; kick and notify one eventfd each, the
 *                                 same file on both sides. Linux only (region_linux.c).
 *   POSIX kind (1.3, CAP_POSIX_BELLS):
 *                                 region any mappable file; kick a pipe (the host gets the write
 *                                 end); notify a connected pair of stream sockets (the host gets
 *                                 one end to read, and the device's end as TOE_ABI_FD_NOTIFY_SELF
 *                                 to make its own event descriptor readable). region_posix.c
 *                                 backs the region with an unlinked POSIX shm object;
 *                                 region_linux.c with a sealed memfd (see there).
 *
 * The notify pair is sockets, not a pipe, because the host holds the device's end too: a pipe's
 * write end would be one open file for both, whose O_NONBLOCK the host could clear and then block
 * the device on a full pipe. The device rings with send(MSG_DONTWAIT), which does not depend on
 * that flag (toe_bell_ring).
 *
 * The protocol logic (header, rings: transport/region.h) is shared by every device; a device
 * without file descriptors (firmware, DriverKit) replaces only this file.
 */
#ifndef TOE_TRANSPORT_REGION_OS_H
#define TOE_TRANSPORT_REGION_OS_H

#include "toe/abi.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One session's region and doorbells, as the device holds them. */
struct toe_region_os {
  uint8_t *region; /* the device's mapping, region_size bytes, header and rings initialised */
  size_t region_size;
  int kick;   /* the device waits for this to be readable: eventfd, or the kick pipe's read end */
  int notify; /* the device rings this: eventfd, or its end of the notify socket pair */
  bool posix; /* the POSIX kind (ring with toe_bell_ring(notify, true)) */
  /* Passed to the host with the reply, in TOE_ABI_FD_* order (nhost of them). Those that are not
   * kick or notify are the host's copies: toe_region_os_handed closes them. */
  int host[TOE_ABI_FD_MAX];
  uint32_t nhost;
};

/* Every descriptor -1, no mapping (a state toe_region_os_free accepts). */
void toe_region_os_clear(struct toe_region_os *r);

/*
 * Creates the region for `layout` backed by a sealed memfd (it can neither shrink nor grow, so a
 * host cannot make the device fault), writes its header and ring control blocks
 * (toe_region_init_fresh), and the doorbells of the kind `caps` grants (eventfds; with
 * TOE_ABI_CAP_POSIX_BELLS a pipe and a socket pair). Linux only (region_linux.c). Returns 0, or
 * a negative TOE_E* (-TOE_ENOMEM, -TOE_EMFILE, ...); on error nothing is left open.
 */
int toe_region_os_create_sealed(struct toe_region_os *r, const struct toe_abi_layout *layout,
                                uint64_t caps, uint32_t client_id);

/*
 * The same with only POSIX.1-2008 calls: the region an unlinked shm_open object (nobody can open
 * it by name once this returns), the doorbells of the POSIX kind; `caps` must grant
 * TOE_ABI_CAP_POSIX_BELLS (else -TOE_EOPNOTSUPP). A POSIX shm object cannot be sealed: the host
 * could shrink it, and a device using this must expect SIGBUS on its mapping (toed uses
 * toe_region_os_create_sealed for both kinds). region_posix.c.
 */
int toe_region_os_create_shm(struct toe_region_os *r, const struct toe_abi_layout *layout,
                             uint64_t caps, uint32_t client_id);

/* Closes the host's copies of the descriptors (once the reply is sent, or it failed). */
void toe_region_os_handed(struct toe_region_os *r);

/* Ends it all: the host's copies, the doorbells, the mapping. Idempotent. */
void toe_region_os_free(struct toe_region_os *r);

/*
 * Rings a doorbell without blocking: 8 bytes (an eventfd's increment; any bytes for a pipe or a
 * socket). `sock`: the descriptor is a socket (the POSIX kind's notify), rung with
 * send(MSG_DONTWAIT | MSG_NOSIGNAL) so that neither its O_NONBLOCK flag nor a closed peer can
 * block or signal the caller. Returns true if the ring went out, false if the doorbell was full
 * (it is readable anyway) or broken.
 */
bool toe_bell_ring(int fd, bool sock);

/* Empties a non-blocking doorbell (eventfd, pipe or socket). Returns true if it had rung. */
bool toe_bell_drain(int fd);

#endif
