/*
 * The host end of the transport ABI, spoken directly against toed's session code in-process
 * (src/device/ctl_server.c and session/): the set-up that tests/unit/device/test_ctl_session.c and
 * fuzz/fuzz_session.c share. The device side is a struct toed_ctl the caller runs on its own
 * virtual clock; this file opens it on a fresh control socket, sends a client's hello, lets the
 * session accept and answer it, maps the shared region the reply passes and attaches the three
 * rings, as libtoe does (src/host/toe_attach.c), but without libtoe.
 *
 * Not thread-safe; Linux only (AF_UNIX SEQPACKET, SCM_RIGHTS, mmap).
 */
#ifndef TOE_TESTS_CTL_HOST_H
#define TOE_TESTS_CTL_HOST_H

#include "device/ctl_server.h"
#include "toe/abi.h"
#include "transport/ring.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* toed's control server, opened by ctl_host_listen(). */
struct ctl_host_server {
  char path[108]; /* the control socket's path: /tmp/toe-<who>-<pid>.sock */
  int epfd;       /* the epoll descriptor the server registered its sockets on (the caller's) */
};

/* One attached client: what libtoe keeps of a session. The descriptors and the mapping belong
 * to this struct until ctl_host_detach(). */
struct ctl_host {
  int fd;          /* the control socket (SEQPACKET) */
  int kick;        /* doorbell towards the device */
  int notify;      /* doorbell from the device */
  uint8_t *region; /* the shared region, mapped read-write */
  struct toe_abi_layout lay;
  struct toe_ring sq, cq, fq;
};

/* Opens `c` on the engine `st` at a fresh path named after `who` (any earlier socket there is
 * removed), with a new epoll descriptor in srv->epfd. poll_us and max_clients as in
 * struct toed_ctl_config; the server is quiet. Returns 0, or a negative errno value with a
 * message in err (errlen bytes). */
int ctl_host_listen(struct toed_ctl *c, struct toe_stack *st, const char *who, uint32_t poll_us,
                    uint32_t max_clients, struct ctl_host_server *srv, char *err, size_t errlen);
/* ctl_host_listen with toed_ctl_config.pidfd_open set to `pidfd_open` (NULL: the system call). */
int ctl_host_listen_with(struct toed_ctl *c, struct toe_stack *st, const char *who,
                         uint32_t poll_us, uint32_t max_clients, int (*pidfd_open)(pid_t),
                         struct ctl_host_server *srv, char *err, size_t errlen);

/* Fills `h` with the hello of this ABI's headers: caps, buf_count buffers of 2048 bytes, an SQ
 * of 8 and a CQ of 16 entries (small: a host that lets it fill meets the device's back-pressure),
 * at most 4 handles, and `comm` (up to its size) as the program's name. */
void ctl_host_hello(struct toe_abi_hello *h, uint64_t caps, uint32_t buf_count, const char *comm);

/* Connects `h` to c's control socket at `path`, sends `hello`, has the session accept the
 * connection (slot 0, generation 1) and answer at the virtual time `now`, then maps the region
 * and attaches the rings. The fill ring is left empty (ctl_host_give_buf() lends buffers).
 * Returns 0; -ECONNREFUSED if the device refused the hello (no protocol left of the caps
 * offered: h->fd is then still open, ctl_host_detach() closes it); another negative errno value
 * with a message in err on a failure of the set-up itself. */
int ctl_host_attach(struct ctl_host *h, struct toed_ctl *c, const char *path,
                    const struct toe_abi_hello *hello, toe_time_t now, char *err, size_t errlen);

/* Returns buffer `id` (any value: a bogus one is the caller's test) to the device through the
 * fill ring and publishes it. False if the ring is full. */
bool ctl_host_give_buf(struct ctl_host *h, uint32_t id);

/* Unmaps the region and closes the descriptors `h` holds (those at -1 or never opened are
 * skipped: `h` must have been zeroed or attached); `h` is left detached. The device learns of it
 * when the caller next runs the control socket's epoll event. */
void ctl_host_detach(struct ctl_host *h);

#endif
