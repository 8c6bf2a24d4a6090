/*
 * One host client's session with toed (docs/transport.md): its shared region, rings and
 * doorbells, the commands it submits executed against the engine, socket events turned into
 * completions, receive-buffer lending and credit, abuse accounting, and its teardown.
 *
 * Trust: everything in the region is the client's and may change at any moment. A session keeps
 * its own copy of the layout, ring indices, handle table (struct toe_abi_client), buffer
 * ownership, outstanding operations and per-socket state in toed's private memory, copies every
 * descriptor out of the ring before checking it (toe_ring_cons_read), and never reads anything
 * back from the region that it relies on. The only thing read from the region in place is SEND
 * payload, handed to the engine as bytes (whatever the client scribbles there is its own data).
 *
 * Events: the engine's sock_event callback (ctl_sock_event) only records the events on the
 * socket's record and queues it on its session's work list; the work runs from ctl_session_run()
 * after the engine call returned, so nothing re-enters the engine from a callback.
 *
 * The server side (ctl_server.c) owns the listening socket, the handshake and the list of
 * sessions; it calls these functions from toed's single event loop. They are implemented in
 * src/device/session/ (session_internal.h says which file does what).
 */
#ifndef TOED_CTL_CLIENT_H
#define TOED_CTL_CLIENT_H

#include "toe/abi.h"
#include "toe/engine.h"
#include "toe/tcp.h"
#include "transport/abi_validate.h"
#include "transport/capture_bpf.h"
#include "transport/capture_filter.h"
#include "transport/ring.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Device-wide transport counters, printed in toed's summary ("transport.*") and returned to
 * clients in STATS ENGINE. Gauges say what is held now; everything else only grows. */
#define TOED_CTL_STATS(X)                                                                          \
  X(clients_attached)   /* gauge: sessions running */                                              \
  X(clients_max)        /* most sessions at once */                                                \
  X(connects)           /* control-socket connections accepted */                                  \
  X(sessions)           /* sessions started (hello accepted) */                                    \
  X(hello_refused)      /* hellos refused (bad magic, version, geometry, no protocol) */           \
  X(refused_full)       /* connections refused: --max-clients sessions running */                  \
  X(hello_timeouts)     /* connections that sent no hello in time */                               \
  X(setup_errors)       /* sessions that could not be set up (memfd, mmap, eventfd, send) */       \
  X(ended_client)       /* sessions ended by the client (control socket closed: exit, crash) */    \
  X(ended_abuse)        /* sessions ended for too many refused descriptors */                      \
  X(ended_protocol)     /* sessions ended for a protocol violation (ring index, stray message) */  \
  X(ended_shutdown)     /* sessions ended because toed stopped */                                  \
  X(sqes)               /* submission entries taken */                                             \
  X(completions)        /* completions posted */                                                   \
  X(events)             /* events posted */                                                        \
  X(err_validation)     /* SQEs refused by validation (strikes) */                                 \
  X(err_badf)           /* ... of which -EBADF: a handle not the client's */                       \
  X(err_fault)          /* ... -EFAULT: a range outside the buffer area */                         \
  X(err_inval)          /* ... -EINVAL: reserved fields, bad arguments or state */                 \
  X(err_opnotsupp)      /* ... -EOPNOTSUPP: unknown opcode or op of another protocol */            \
  X(err_other)          /* ... any other validation error */                                       \
  X(err_op)             /* ops the engine failed (the network's answer, not abuse) */              \
  X(fill_taken)         /* buffers returned on fill rings */                                       \
  X(fill_bad)           /* fill entries refused (bad id, double return) */                         \
  X(bufs_lent)          /* buffers lent with EV_DATA */                                            \
  X(rx_bytes)           /* bytes delivered to hosts */                                             \
  X(tx_bytes)           /* bytes taken from hosts' SENDs */                                        \
  X(kicks)              /* wakeups by a host's doorbell */                                         \
  X(notifies)           /* host wakeups by toed's doorbell */                                      \
  X(cq_full_waits)      /* times an event waited because a CQ had no free slot */                  \
  X(rx_stall_nobuf)     /* times delivery stopped: no fill buffer */                               \
  X(rx_stall_credit)    /* times delivery stopped: the socket's RXBUFS lent */                     \
  X(rx_held)            /* times a partial EV_DATA waited for the host to see the last one */      \
  X(socks_inuse)        /* gauge: engine sockets held by clients */                                \
  X(socks_opened)       /* sockets opened or accepted for clients */                               \
  X(socks_reset_on_end) /* sockets reset because their session ended */                            \
  X(captures)           /* captures started (1.2 CAPTURE) */                                       \
  X(capture_frames)     /* frames copied to captures */                                            \
  X(capture_dropped)    /* frames a capture matched but dropped: its host was slow */              \
  X(share_tokens)       /* 1.2: SHARE tokens issued */                                             \
  X(share_adopted)      /* ... adopted (ADOPT) */                                                  \
  X(share_expired)      /* ... never adopted, expired */                                           \
  X(share_refused)      /* ADOPTs refused: unknown, used, expired or another uid's token */        \
  X(share_inuse)        /* gauge: engine sockets shared by more than one holder or token */        \
  X(share_pidfd_exits)  /* bound tokens freed when their process's pidfd woke toed (its exit) */   \
  X(share_pid_polls)    /* timed looks at a bound token's live process (no pidfd in epoll) */

#define TOED_CTL_STAT_FIELD_(name) uint64_t name;
struct toed_ctl_stats {
  TOED_CTL_STATS(TOED_CTL_STAT_FIELD_)
};

struct ctl_client;
struct ctl_sock;

/* Captures running at once, device-wide (more are refused with -EBUSY): each costs a filter
 * evaluation and maybe a copy per frame on toed's one thread. */
#define TOED_CTL_CAPTURES_MAX 8u
/* A sent frame held in a pbuf chain is gathered into one buffer of this size before the captures
 * look at it (a BPF program may load from any offset); anything longer is seen truncated, with its
 * real length. Covers any Ethernet frame with a 64 KiB IP datagram. */
#define TOED_CTL_CAP_FRAME_MAX (65536u + 64u)
/*
 * An engine socket held by several handles, in one or several sessions (SHARE/ADOPT, ABI 1.2).
 * It lives until the last holder closes it and the last token naming it is adopted or expired,
 * as a kernel socket lives until its last descriptor in any process closes.
 */
struct ctl_share {
  struct toe_sock *s;
  uint32_t refs;            /* holders + live tokens */
  struct ctl_sock *holders; /* ring of the holders (sh_next/sh_prev), or NULL */
  struct ctl_sock *anchor;  /* with no holder left: a record without client that gets events */
  struct ctl_sock *rr;      /* listener: the holder served last */
  struct ctl_sock *active;  /* connection: the holder that last adopted or asked for data
                             * (toectl flows names its process as the owner) */
  uint8_t proto;
};

/* A SHARE token: random, adoptable once, by a client of the same uid, until `expires`, or,
 * once bound to a process (ADOPT F_BIND), until that process ends (pidfd readable). */
struct ctl_token {
  uint64_t token; /* 0: free */
  uid_t uid;
  toe_time_t expires;
  struct ctl_share *sh;
  bool bound; /* held by process pid (pidfd) instead of expiring */
  int pidfd;  /* -1 when bound without one (no pidfd_open): pid is polled */
  pid_t pid;
};
/* A bound token's process is watched through its pidfd in toed's epoll set (ctl_token_watch); only
 * where that is impossible (no pidfd_open, Linux < 5.3, or epoll out of memory) is it looked at
 * this often instead. */
#define CTL_TOKEN_PID_CHECK_NS (100ull * 1000000ull)
#define CTL_TOKENS 256
#define CTL_TOKEN_TTL_NS (10ull * 1000000000ull)

/* Fair shares of the device-wide tables (ctl_quota.c). */
enum ctl_quota_kind { CTL_Q_TCP, CTL_Q_UDP, CTL_Q_TOKEN, CTL_Q_SESSION, CTL_Q_KINDS };
#define CTL_QUOTA_UIDS 1024 /* distinct uids holding something at once (more: refused) */
struct ctl_uid_use {
  uid_t uid;
  uint32_t refs; /* entries of all kinds: 0 means the slot is free */
  uint32_t use[CTL_Q_KINDS];
};
struct ctl_quota {
  uint32_t size[CTL_Q_KINDS];    /* the tables */
  uint32_t per_uid[CTL_Q_KINDS]; /* what one uid other than root or toed's may hold */
  uint32_t reserve[CTL_Q_KINDS]; /* what only root, toed's uid and the services may take */
  uint32_t sessions;             /* sessions running (all uids) */
  uint64_t refused_uid;          /* refused: the uid's share was used up (-EMFILE) */
  uint64_t refused_reserve;      /* refused: only the reserve was left (-ENOBUFS) */
  struct ctl_uid_use uids[CTL_QUOTA_UIDS];
};

/* The STATS ENGINE text, rebuilt at most every CTL_STATS_MAX_AGE (ctl_stats.c). */
#define CTL_STATS_MAX_AGE (100ull * 1000000ull)
struct ctl_stats_cache {
  char *text;
  size_t len, cap;
  size_t public_len; /* the first public_len bytes are for any client */
  toe_time_t built;
  bool valid;
};

/* What all sessions share: the engine, the socket-record pool, counters, the event loop. */
struct toed_ctl_dev {
  struct toe_stack *st;
  int epfd;
  toe_time_t poll_ns;     /* spin budget after activity (--poll-us) */
  struct ctl_sock *socks; /* one record per engine socket a client may hold */
  uint32_t nsocks;
  struct ctl_sock *sock_free;
  struct toed_ctl_stats stats;
  char *scratch; /* STATS answers are built here before the copy into a region */
  size_t scratch_cap;
  toe_time_t started;
  uint32_t capturing; /* sessions with a capture running: 0 keeps the frame path free of it */
  struct ctl_client *capturers[TOED_CTL_CAPTURES_MAX]; /* they, so a frame visits only them */
  /* 1.4 BPF captures: one program slot of TOE_BPF_MAXINSNS per capture (cap_progs_used: a bit per
   * slot), and the buffer a chained frame is gathered in; both allocated with the session tables.
   */
  struct toe_bpf_insn *cap_progs;
  uint32_t cap_progs_used;
  uint8_t *cap_frame;
  bool stopping;
  struct ctl_token tokens[CTL_TOKENS];
  uint32_t tokens_live;
  int (*pidfd_open)(pid_t pid); /* the config's, or the system call's (never NULL once open) */
  struct ctl_stats_cache stats_cache;
  struct ctl_quota quota;
};

/* A session's capture (1.2 CAPTURE): frames matching `filter` are written as pcap records into
 * one fill buffer at a time, which is lent with EV_CAPTURE when full and at the end of each
 * round. A frame that finds no buffer (or no room, the CQ being full) is dropped and counted. */
struct ctl_capture {
  bool on;
  bool dir;               /* 1.4 F_DIR: records carry a direction word */
  struct toe_capf filter; /* the 1.2 text filter, or ... */
  struct toe_bpf_insn
      *prog; /* ... 1.4: a checked BPF program (a slot of dev->cap_progs), or NULL */
  uint32_t prog_len;
  uint32_t prog_slot;
  uint32_t snaplen; /* bytes kept of a frame (<= buf_size - record header) */
  uint32_t buf;     /* buffer being filled, or CTL_NONE */
  uint32_t used;    /* bytes of records in it */
  uint32_t records;
  uint64_t frames;  /* delivered (posted) so far */
  uint64_t pending; /* frames in the buffer being filled */
  uint64_t dropped;
};
/* Drops the tokens that expired by `now` (and the sockets only they held). */
void ctl_tokens_expire(struct toed_ctl_dev *dev, toe_time_t now);
/* Frees the tokens bound to a process that has ended (and what only they held, such as a
 * listener's port); returns how many. Called before a bind is refused with EADDRINUSE, so
 * that a server restarted at once gets its port back (docs/transport.md). */
int ctl_tokens_reap(struct toed_ctl_dev *dev);
/* When the next token expires (TOE_TIME_NEVER if none is live). */
toe_time_t ctl_tokens_next(const struct toed_ctl_dev *dev);
/* (ctl_server.c) Puts bound token t's pidfd into toed's epoll set, so that its process's exit
 * wakes toed and frees the token (and a listener's port) at once. Returns when the token must be
 * looked at next: TOE_TIME_NEVER when watched so, else now + CTL_TOKEN_PID_CHECK_NS (t->pidfd is
 * -1 on a kernel without pidfd_open, or epoll refused it: polled, and counted in
 * share_pid_polls). */
toe_time_t ctl_token_watch(struct toed_ctl_dev *dev, struct ctl_token *t, toe_time_t now);
/* (ctl_server.c) Whether process pid has ended: gone, or a zombie (/proc/PID/stat). The polled
 * check of a token bound without a pidfd. */
bool ctl_pid_ended(pid_t pid);

/* How a session ended (counters, dev_status). */
enum ctl_end_kind {
  CTL_END_CLIENT,   /* the client closed the control socket (or died) */
  CTL_END_ABUSE,    /* strikes over the limit */
  CTL_END_PROTOCOL, /* broken ring index, stray control message */
  CTL_END_SHUTDOWN, /* toed stops */
  CTL_END_SETUP,    /* failed during set-up */
};

enum ctl_client_state {
  CTL_CS_FREE = 0,
  CTL_CS_HELLO,  /* connected, waiting for the hello */
  CTL_CS_ACTIVE, /* session running */
};

/* One engine socket of a client. */
struct ctl_sock {
  struct toe_sock *s;    /* engine socket (NULL while an accept is being tried) */
  struct ctl_client *cl; /* owner; NULL: the record is free */
  struct ctl_sock *prev; /* on the owner's work or wait list */
  struct ctl_sock *next;
  uint8_t list;   /* CTL_LIST_* */
  uint8_t proto;  /* TOE_ABI_PROTO_* */
  uint16_t flags; /* CTL_SF_* */
  uint32_t index; /* handle slot */
  uint32_t handle;
  uint32_t ev;                     /* engine events recorded, not handled yet (TOE_EV_*) */
  uint64_t sock_data;              /* echoed as user_data of events */
  uint32_t sendq_head, sendq_tail; /* ops waiting in submission order behind a SEND */
  uint32_t acceptq_head, acceptq_tail;
  uint32_t connect_op;
  int32_t fatal_err;     /* the connection ended with this error */
  int32_t so_error;      /* latest soft error, for SO_ERROR */
  uint32_t err_cq_idx;   /* CQ index of the last soft EV_ERROR (coalescing) */
  uint32_t data_cq_idx;  /* CQ index of the last EV_DATA (receive coalescing, SF_DATA_POSTED) */
  toe_time_t held_since; /* when the data waiting now was first held (SF_HELD) */
  struct toe_pbuf *held; /* UDP: datagram being delivered in pieces */
  uint32_t held_off;
  struct toe_sockaddr held_from;
  uint64_t rx_bytes, tx_bytes;
  int64_t udp_opt[5]; /* UDP: values of the socket-level options the engine keeps for TCP only */
  struct ctl_sock *sh_next, *sh_prev; /* ring of sh's holders */
  struct ctl_share *sh;               /* shared with other handles (SHARE/ADOPT), or NULL */
  /* 1.2 owner tag (TOE_ABI_SO_OWNER_*), set by a proxy session for the program it carries */
  uint32_t owner_pid;
  char owner_comm[16];
  bool owner_set;
  bool charged; /* counted in its session's uid's share (ctl_quota_take) */
  bool rxmeta;  /* 1.5 TOE_ABI_SO_RXMETA: a struct toe_abi_rx_meta before each datagram */
  struct ctl_sock *free_next;
};

struct ctl_op {
  struct toe_abi_sqe sqe; /* private copy, validated */
  uint32_t done;          /* SEND: bytes taken so far */
  uint32_t next;          /* next op in its socket's queue, or the free list */
};

struct ctl_client {
  struct toed_ctl_dev *dev;
  uint32_t slot;
  uint32_t gen; /* bumped per use of the slot: stale epoll events are recognised */
  enum ctl_client_state state;
  int fd;     /* control socket */
  int kick;   /* eventfd: host -> device */
  int notify; /* eventfd: device -> host */
  pid_t pid;  /* from SO_PEERCRED */
  uid_t uid;
  gid_t gid;
  char comm[16];
  uint8_t origin; /* 1.2: the hello's TOE_ABI_ORIGIN_* */
  /* Ports below this need bind_priv (the namespace's net.ipv4.ip_unprivileged_port_start when
   * the client said hello); bind_priv: uid 0 or CAP_NET_BIND_SERVICE, as the kernel asks. */
  uint16_t priv_port_start;
  bool bind_priv;
  bool privileged; /* uid 0 or toed's own: every STATS line, the flow table, the proxy origin */
  uint32_t client_id;
  toe_time_t since;          /* connected at */
  toe_time_t hello_deadline; /* CTL_CS_HELLO */

  /* the session (CTL_CS_ACTIVE) */
  uint8_t *region;
  size_t region_size;
  bool posix_bells;          /* 1.3 POSIX doorbells: notify is a socket (rung with toe_bell_ring) */
  struct toe_abi_client abi; /* layout copy, handle table, buffer ownership, strikes, stats */
  struct toe_abi_hslot *slots;
  uint32_t *bufs;
  struct ctl_sock **hs; /* record of each handle slot */
  struct toe_ring sq, cq, fq;
  struct ctl_op *ops;
  uint32_t ops_free; /* free-list head */
  uint32_t ops_navail;
  uint32_t cq_reserved; /* completions owed to taken SQEs */
  uint32_t *free_bufs;  /* device-owned buffers (taken from the fill ring) */
  uint32_t nfree_bufs;
  struct ctl_sock *work_head, *work_tail; /* sockets with something to do */
  struct ctl_sock *wait_head, *wait_tail; /* sockets waiting for buffers, credit or CQ room */
  int wait_cq_free; /* CQ free slots when a socket last waited for CQ room, -1: none did */
  bool resources;   /* buffers, credit or handles came back: retry the waiting sockets */
  bool rx_holding;  /* a socket's data is held for the host to catch up (rx_hold): retry */
  bool awake;       /* polling SQ/FQ (NEED_WAKEUP clear) */
  bool cq_dirty;    /* CQ entries written, not yet published */
  bool shutdown_posted;
  bool sq_blocked; /* SQEs wait for CQ room or op slots: taken again at sq_retry_at */
  toe_time_t now;  /* of the current round */
  toe_time_t last_active;
  toe_time_t retry_at; /* the wait list is looked at again (CQ room, engine pool) */
  toe_time_t sq_retry_at;
  struct ctl_capture cap;
  bool rx_handoff; /* delivering received data: one CQ slot is spoken for (ses_cap_post) */
  int end_status;  /* != 0: end the session (then end_kind says why) */
  enum ctl_end_kind end_kind;
  bool ending;
};

#define CTL_NONE UINT32_MAX

/*
 * epoll tags of the control module: toed's loop passes epoll_event.data.u64 back. The low 32 bits
 * have the top bit set (toed's own fds use 0, 1, 2), then the client slot and the kind; the high
 * 32 bits carry the slot's generation, so an event still queued for a session that ended (its
 * slot reused) is recognised and dropped.
 */
#define CTL_TAG_BASE 0x80000000u
#define CTL_TAG_LISTEN 0u
#define CTL_TAG_CONTROL 1u
#define CTL_TAG_KICK 2u
#define CTL_TAG_PIDFD 3u /* slot: the token's index in dev->tokens; generation 0 */
#define CTL_TAG_SLOT_MAX 0x1fffffffu

static inline uint64_t ctl_tag(uint32_t slot, uint32_t gen, uint32_t kind)
{
  return (uint64_t)gen << 32 | CTL_TAG_BASE | (slot & CTL_TAG_SLOT_MAX) << 2 | kind;
}

/* ---- sessions ---------------------------------------------------------------------------- */

/*
 * Sets up a session for a hello answered by `rep` (status 0): the region and doorbells of the kind
 * the granted capabilities name (src/transport/os/region_os.h: a sealed memfd with eventfds, or
 * with the POSIX doorbells of TOE_ABI_CAP_POSIX_BELLS), the rings (src/transport/region.h), the
 * private tables. On success fds[0 .. rep->nfds) holds the descriptors to pass, in TOE_ABI_FD_*
 * order; the caller sends them, then calls ctl_session_handed. The kick doorbell is in epoll.
 * Returns 0 or a negative TOE_E* (everything undone).
 */
int ctl_session_start(struct ctl_client *cl, const struct toe_abi_hello_reply *rep,
                      int fds[TOE_ABI_FD_MAX], toe_time_t now);

/* After the reply went out (or failed): closes the host's copies among fds[0 .. nfds) (those the
 * session does not keep as its own kick and notify doorbells). */
void ctl_session_handed(struct ctl_client *cl, int fds[TOE_ABI_FD_MAX], uint32_t nfds);

/* One round: fill ring, submissions, socket work, completions, doorbell, sleep decision. */
void ctl_session_run(struct ctl_client *cl, toe_time_t now);

/* The host rang the kick doorbell. */
void ctl_session_kick(struct ctl_client *cl, toe_time_t now);

/* Marks the session to end (done by ctl_session_end from the server loop). */
void ctl_session_fail(struct ctl_client *cl, int status, enum ctl_end_kind kind);

/*
 * Ends the session now: a client that closed its control socket first gets its last submissions
 * executed (a CLOSE it sent before exiting is honoured); then every socket still open is reset
 * (RST to TCP peers, UDP closed), the region is marked GONE with `status`, unmapped, and the
 * eventfds closed. The control socket is left to the caller.
 */
void ctl_session_end(struct ctl_client *cl, int status, enum ctl_end_kind kind);

/* Earliest time the session needs a round: `now` if it has work or is spinning. */
toe_time_t ctl_session_next_wake(const struct ctl_client *cl, toe_time_t now);

/* Posts EV_SHUTDOWN and marks the region STOPPING (once; retried while the CQ is full). */
void ctl_session_post_shutdown(struct ctl_client *cl);

/* ---- the engine's socket events ---------------------------------------------------------- */

/* The sock_event callback body: true if `user` is one of the clients' socket records. */
bool ctl_sock_event(struct toed_ctl_dev *dev, void *user, uint32_t events);

/* ---- capture (1.2) ------------------------------------------------------------------------ */

/* A frame the device saw on the wire, its first `buflen` bytes at `bytes` and `wirelen` in all,
 * received or sent (`dir`: TOE_ABI_CAPTURE_DIR_*), stamped `ts_ns` (CLOCK_REALTIME), for this
 * session's capture. Never blocks, never fails: a frame that does not fit is counted as dropped. */
void ctl_session_capture(struct ctl_client *cl, const uint8_t *bytes, uint32_t buflen,
                         uint32_t wirelen, unsigned dir, uint64_t ts_ns);

/* ---- introspection ----------------------------------------------------------------------- */

/* Writes the STATS FLOWS answer (header + records) into dev->scratch; returns its length. */
size_t ctl_flows_build(struct toed_ctl_dev *dev);

/* Writes the STATS ENGINE text (engine counters, then transport.*) into dev->scratch. */
size_t ctl_counters_text(struct toed_ctl_dev *dev);

/*
 * The STATS ENGINE answer for a session (ctl_stats.c): every line for a privileged one, the
 * public ones otherwise; built at most every CTL_STATS_MAX_AGE. Sets *text (valid until the next
 * call) and returns its length, or SIZE_MAX if out of memory.
 */
size_t ctl_engine_stats(struct toed_ctl_dev *dev, bool privileged, toe_time_t now,
                        const char **text);
/* Frees the cached text. */
void ctl_engine_stats_free(struct toed_ctl_dev *dev);

/* ---- fair shares (ctl_quota.c) ------------------------------------------------------------ */

/* Sizes the shares from the engine's configuration and --max-clients. */
void ctl_quota_init(struct toed_ctl_dev *dev, uint32_t max_sessions);
/*
 * Charges one entry of table k to uid: 0, -TOE_EMFILE (the uid's share is used up) or
 * -TOE_ENOBUFS (only the reserve is left; checked when `takes_entry`, i.e. the call takes a new
 * entry of the table: not for an accepted connection, whose socket the engine made already).
 * Root and toed's own uid are never refused here.
 */
int ctl_quota_take(struct toed_ctl_dev *dev, uid_t uid, enum ctl_quota_kind k, bool takes_entry);
/* Gives back what ctl_quota_take charged. */
void ctl_quota_give(struct toed_ctl_dev *dev, uid_t uid, enum ctl_quota_kind k);
/* Visits the limits and refusal counters as (name, value), for STATS ENGINE and the summary. */
void ctl_quota_visit(const struct toed_ctl_dev *dev, void (*fn)(void *, const char *, uint64_t),
                     void *arg);

/* The filter table as STATS FILTERS text (abi.h) in dev->scratch; its length, or SIZE_MAX. */
size_t ctl_filters_text(struct toed_ctl_dev *dev);

/* The STATS DEVICE text (abi.h, 1.3) in dev->scratch, with the client lines when with_clients;
 * its length, or SIZE_MAX (ctl_info.c). */
size_t ctl_device_text(struct toed_ctl_dev *dev, bool with_clients);

#endif
