/*
 * libtoe's port layer: everything the library needs from the operating system beyond the
 * system-call layer (port_sys.h), behind one small interface with two implementations
 * (docs/transport.md "The host port layer"), chosen at build time (CMake TOE_HOST_PORT):
 *
 *   port_linux.c  raw system calls, epoll, eventfds, a sealed memfd region, MADV_DONTFORK;
 *   port_posix.c  POSIX.1-2008 only (poll, pipes, a socket pair from the device, shm): builds
 *                 unmodified on macOS and the BSDs; asks the device for the 1.3 POSIX doorbells
 *                 (TOE_ABI_CAP_POSIX_BELLS).
 *
 * The rest of src/host is the same for both. Each function documents what it does on both
 * ports; "lock held" means dev->lock.
 */
#ifndef TOE_HOST_PORT_H
#define TOE_HOST_PORT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct toe_dev;

/* Port-private state in each struct toe_dev. */
struct toe_port {
  int wake_wr;     /* POSIX: the wake pipe's write end (Linux: -1; wake_fd is an eventfd) */
  bool cv_mono;    /* the condition variable waits on CLOCK_MONOTONIC (else CLOCK_REALTIME) */
  bool watching;   /* POSIX: the hang-up watcher thread runs */
  bool ctl_in_set; /* Linux: the control socket is in the epoll set */
  pthread_t watcher;
};

/* The port's name ("linux", "posix"), for messages and tests. */
const char *toe_port_name(void);

/* Capabilities the port adds to the hello (POSIX: TOE_ABI_CAP_POSIX_BELLS; Linux: none). */
uint64_t toe_port_caps(void);

/* A connected control socket (SOCK_SEQPACKET, close-on-exec, no SIGPIPE) to `path`, or -errno. */
int toe_port_ctl_connect(const char *path);

/* The process name (Linux: /proc/self/comm; POSIX: none, all zeros). */
void toe_port_comm(char out[16]);

/*
 * Maps the region descriptor `fd` for `size` bytes after checking it can back them: its size
 * (fstat) and, where the OS has seals, that it cannot shrink (a shrunk region would fault us).
 * Linux marks the mapping MADV_DONTFORK (a forked child must not become a second producer); the
 * POSIX port unmaps it in a forked child instead (toe_port_forked_child). 0 and *out, or -errno /
 * -TOE_EPROTO.
 */
int toe_port_region_map(int fd, uint64_t size, void **out);
void toe_port_region_unmap(void *p, size_t size);

/* Monotonic clock, ns. */
uint64_t toe_port_mono_ns(void);

/* A condition variable that waits on the monotonic clock where the OS allows (sets port state). */
void toe_port_cond_init(struct toe_dev *d);
/* Waits on d->cv (lock held) until `until` (monotonic ns) or a broadcast. */
void toe_port_cond_wait_until(struct toe_dev *d, uint64_t until);

/*
 * Sets up the doorbells and the event descriptor from the reply's descriptors fds[0 .. nfds)
 * (TOE_ABI_FD_*; the region descriptor is not touched): kick_fd, notify_fd, self_fd, wake_fd,
 * ep_fd and the port state. Takes ownership of the kick and notify descriptors (and NOTIFY_SELF)
 * at once, even on error. 0 or a negative TOE_E*; -TOE_EPROTONOSUPPORT on the POSIX port if
 * the device did not grant the POSIX doorbells.
 */
int toe_port_events_open(struct toe_dev *d, const int *fds, uint32_t nfds);
/* Closes every descriptor of the session, control socket included (stops the watcher first). */
void toe_port_events_close(struct toe_dev *d);

/* What toe_event_fd() returns: Linux the epoll set, POSIX the notify socket. */
int toe_port_event_fd(const struct toe_dev *d);
/* Rings the device's kick doorbell. */
void toe_port_kick(struct toe_dev *d);
/* Wakes the thread sleeping on the doorbell (toe_port_sleep). */
void toe_port_wake(struct toe_dev *d);
/* Makes the event descriptor readable (lock held; the caller keeps d->self_armed). */
void toe_port_self_set(struct toe_dev *d);
/* Undoes toe_port_self_set (lock held). POSIX: the descriptor is shared with the device's
 * doorbell, so a doorbell that rang meanwhile is rung again if the CQ has entries. */
void toe_port_self_clear(struct toe_dev *d);

/*
 * The sleep of a waiting call (lock held; released while sleeping), after NEED_WAKEUP was set and
 * the CQ found empty: until the device's doorbell, the control socket, a wake (toe_port_wake) or
 * (for_poll) the event descriptor, at most `ms`. Drains what woke it. Returns true if the control
 * socket stirred (the caller checks it). Counts the sleep.
 */
bool toe_port_sleep(struct toe_dev *d, int ms, bool for_poll);

/* toe_poll's look at the event descriptor without waiting: resets the doorbells that made it
 * readable. Returns true if the control socket stirred. */
bool toe_port_events_drain(struct toe_dev *d);

/* The session ended on our side (its control socket shut down): stop watching it. */
void toe_port_ctl_gone(struct toe_dev *d);

/* In a forked child (one thread, locks in any state): drops what the child must not keep: the
 * control socket (its copy would keep the session open after the parent died), and on the POSIX
 * port the region's mapping. */
void toe_port_forked_child(struct toe_dev *d);

#endif
