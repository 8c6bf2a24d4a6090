/*
 * toed's control socket: where host processes attach to the device (docs/transport.md,
 * "Session setup on Linux").
 *
 *   toed --ctl PATH       an AF_UNIX SOCK_SEQPACKET socket, mode 0660 (default
 *                         /run/toekit/IFNAME.sock); --ctl-group GROUP gives it that group, so
 *                         access to the socket is the permission to use the device
 *   per client            hello -> negotiated reply + [sealed memfd region, kick eventfd, notify
 *                         eventfd] over SCM_RIGHTS; identity from SO_PEERCRED, never the hello
 *   --max-clients N       sessions at once (more are refused with -EMFILE)
 *   --poll-us N           after activity a session's rings are polled this long before toed
 *                         sets NEED_WAKEUP and sleeps on the doorbells
 *
 * Everything runs inside toed's one epoll loop: toed_ctl_open() adds the listening socket (and
 * later each client's control socket and kick eventfd) to toed's epoll set with tags whose low
 * 32 bits have the top bit set; the loop passes events with such a tag to toed_ctl_on_epoll(),
 * calls toed_ctl_run() once per iteration (all sessions' rings in one batch), and asks
 * toed_ctl_next_wake() whether to spin (now) or sleep until when. The engine's sock_event
 * callback passes every event to toed_ctl_on_sock_event() first: it claims those of the
 * clients' sockets.
 */
#ifndef TOED_CTL_SERVER_H
#define TOED_CTL_SERVER_H

#include "device/ctl_client.h"
#include "toe/engine.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define TOED_CTL_DEFAULT_DIR "/run/toekit"
#define TOED_CTL_STOP_GRACE TOE_SEC(5) /* hosts get this long to close after EV_SHUTDOWN */

struct toed_ctl_config {
  const char *path;     /* the socket's path */
  bool path_is_default; /* not given on the command line: failing to bind is a warning */
  const char *group;    /* group name or number for the socket, or NULL */
  uint32_t poll_us;
  uint32_t max_clients;
  bool quiet; /* no per-session log lines */
  /* 1.3 STATS DEVICE: the device's fixed identity, "key value\n" lines (toed_ops_identity), or
   * NULL; the control module adds uptime and the clients. Must outlive the control socket. */
  const char *identity;
  /* toed's uptime in ms for STATS DEVICE (the engine's clock may start anywhere), or NULL */
  unsigned long long (*uptime_ms)(void);
  /* Opens a pidfd for process `pid` (a bound share token's holder): a descriptor, or -1 with
   * errno set (ENOSYS: no pidfd_open, the process is then polled through /proc). NULL: the
   * pidfd_open system call. A stand-in lets a test run the polled watch on any kernel
   * (tests/unit/device/test_share_nopidfd.c). */
  int (*pidfd_open)(pid_t pid);
};

struct toed_ctl {
  struct toed_ctl_dev dev;
  struct toed_ctl_config cfg;
  int lfd; /* listening socket, -1 once closed */
  char path[108];
  dev_t path_dev; /* what we bound, so only our own socket file is removed */
  ino_t path_ino;
  gid_t gid;
  struct ctl_client *clients; /* nslots: max_clients sessions plus a few in the handshake */
  uint32_t nslots;
  uint32_t sessions;     /* CTL_CS_ACTIVE */
  uint64_t region_bytes; /* their regions together */
  uint32_t next_id;
  toe_time_t stop_deadline;
  bool open;
  bool listen_paused;       /* out of descriptors: the listener is out of epoll until ... */
  toe_time_t listen_resume; /* ... this time */
  uint64_t accept_backoffs; /* times accepting failed for want of descriptors or memory */
};

/*
 * Creates the control socket and the session tables. `epfd` is toed's epoll set. Returns 0, or a
 * negative TOE_E* value with a one-line message in err (the caller decides whether toed can run
 * without it: it can when the path was the default one).
 */
int toed_ctl_open(struct toed_ctl *c, const struct toed_ctl_config *cfg, struct toe_stack *st,
                  int epfd, char *err, size_t errlen);

/* An epoll event whose tag (epoll_event.data.u64) belongs to the control module. */
static inline bool toed_ctl_is_tag(uint64_t tag)
{
  return ((uint32_t)tag & CTL_TAG_BASE) != 0;
}
void toed_ctl_on_epoll(struct toed_ctl *c, uint64_t tag, uint32_t events, toe_time_t now);

/* The engine's sock_event: true if the socket belongs to a client (then it is recorded). */
bool toed_ctl_on_sock_event(struct toed_ctl *c, void *user, uint32_t events);

/*
 * A frame the device saw on the wire, for the sessions capturing (1.2 CAPTURE): received
 * (`dir` TOE_ABI_CAPTURE_DIR_IN) or sent (DIR_OUT), as `bytes`/`len` or as the pbuf chain `chain`
 * (bytes NULL), at `ts_ns` (CLOCK_REALTIME; 0: now, read only when someone captures). Costs one
 * test when nobody captures (no clock read); never blocks (a slow capturer loses frames, counted).
 */
void toed_ctl_capture_(struct toed_ctl *c, const uint8_t *bytes, size_t len,
                       const struct toe_pbuf *chain, uint64_t ts_ns, unsigned dir);
static inline void toed_ctl_capture(struct toed_ctl *c, const uint8_t *bytes, size_t len,
                                    const struct toe_pbuf *chain, uint64_t ts_ns, unsigned dir)
{
  if (c->open && c->dev.capturing)
    toed_ctl_capture_(c, bytes, len, chain, ts_ns, dir);
}

/* One round over every session: fill rings, submissions, socket work, completions, doorbells. */
void toed_ctl_run(struct toed_ctl *c, toe_time_t now);

/* When the loop must run the control module again: <= now means spin (epoll timeout 0). */
toe_time_t toed_ctl_next_wake(const struct toed_ctl *c, toe_time_t now);

/*
 * toed is stopping: the first call closes the listening socket, marks every region STOPPING and
 * posts EV_SHUTDOWN. Returns true once no session holds a socket any more, or the grace period
 * (5 s) is over; call it on every loop iteration until then.
 */
bool toed_ctl_stop(struct toed_ctl *c, toe_time_t now);

/*
 * Ends every session (their sockets still open are reset: call it while the port is still
 * toed's), closes every control socket (the hosts see it hang up), removes the socket file and
 * frees the tables. The counters stay readable. Idempotent.
 */
void toed_ctl_close(struct toed_ctl *c);

/* Visits the transport counters as ("transport", name, value). */
typedef void (*toed_ctl_stat_fn)(void *arg, const char *layer, const char *name, uint64_t value);
void toed_ctl_visit(const struct toed_ctl *c, toed_ctl_stat_fn fn, void *arg);

/* "PATH (mode 0660, group G), up to N clients, poll P us" for the start-up line. */
void toed_ctl_describe(const struct toed_ctl *c, char *buf, size_t len);

#endif
