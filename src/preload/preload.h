/*
 * libtoe-preload: transparent interception of the BSD socket API (docs/interception.md).
 *
 *   TOE_CTL=/run/toekit/IF.sock LD_PRELOAD=build/lib/libtoe-preload.so PROGRAM
 *
 * Internal interfaces shared by the files of src/preload. Ordinary Linux C (pthreads, dlsym),
 * built on libtoe's public API (include/toe/toe.h) and the shared rule grammar (src/rules).
 *
 * The model in one paragraph: every AF_INET TCP/UDP socket() is a real kernel socket at first
 * (a "candidate"). At connect/bind/listen/sendto, when the offload rules (pl_rules.c) send it to
 * the device, it is "switched": a device socket is opened through libtoe, the options set so far
 * are replayed, and the descriptor number is atomically turned (dup3) into one end ("A") of a
 * private AF_UNIX socketpair, the "placeholder". Our end ("B") and a private duplicate of A let
 * us drive A's readiness (readable, writable, read-hang-up, hang-up, error) so that unmodified
 * poll/select/epoll on the application's descriptor see the device socket's state. A "pump"
 * thread waits on libtoe's event descriptor and reflects every change. Data calls on the
 * descriptor are served by libtoe; everything else goes to the kernel untouched. epoll sets made
 * through the library serve their offloaded members' readiness themselves (pl_epoll.c): such a
 * socket's placeholder is left alone until a waiter the library does not serve appears.
 */
#ifndef TOE_PRELOAD_H
#define TOE_PRELOAD_H

#include "rules/toe_rules.h"
#include "toe/toe.h"

#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#define PL_API __attribute__((visibility("default")))

/* glibc declares the sockaddr arguments of the socket calls as transparent unions under
 * _GNU_SOURCE (C only); our definitions must use the same types. */
#if defined(__USE_GNU) && !defined(__cplusplus)
#define PL_SA(x) ((x).__sockaddr__)
#else
#define PL_SA(x) (x)
#endif

/* ---- the real functions (dlsym RTLD_NEXT), pl_init.c ---------------------------------------- */

struct pl_real {
  int (*socket)(int, int, int);
  int (*bind)(int, const struct sockaddr *, socklen_t);
  int (*listen)(int, int);
  int (*accept)(int, struct sockaddr *, socklen_t *);
  int (*accept4)(int, struct sockaddr *, socklen_t *, int);
  int (*connect)(int, const struct sockaddr *, socklen_t);
  ssize_t (*send)(int, const void *, size_t, int);
  ssize_t (*sendto)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
  ssize_t (*sendmsg)(int, const struct msghdr *, int);
  int (*sendmmsg)(int, struct mmsghdr *, unsigned int, int);
  ssize_t (*recv)(int, void *, size_t, int);
  ssize_t (*recvfrom)(int, void *, size_t, int, struct sockaddr *, socklen_t *);
  ssize_t (*recvmsg)(int, struct msghdr *, int);
  int (*recvmmsg)(int, struct mmsghdr *, unsigned int, int, struct timespec *);
  ssize_t (*read)(int, void *, size_t);
  ssize_t (*write)(int, const void *, size_t);
  ssize_t (*readv)(int, const struct iovec *, int);
  ssize_t (*writev)(int, const struct iovec *, int);
  ssize_t (*pread)(int, void *, size_t, off_t);
  int (*close)(int);
  int (*close_range)(unsigned int, unsigned int, int);
  int (*shutdown)(int, int);
  int (*getsockopt)(int, int, int, void *, socklen_t *);
  int (*setsockopt)(int, int, int, const void *, socklen_t);
  int (*getsockname)(int, struct sockaddr *, socklen_t *);
  int (*getpeername)(int, struct sockaddr *, socklen_t *);
  int (*fcntl)(int, int, ...);
  int (*fcntl64)(int, int, ...);
  int (*ioctl)(int, unsigned long, ...);
  int (*poll)(struct pollfd *, nfds_t, int);
  int (*ppoll)(struct pollfd *, nfds_t, const struct timespec *, const sigset_t *);
  int (*select)(int, fd_set *, fd_set *, fd_set *, struct timeval *);
  int (*pselect)(int, fd_set *, fd_set *, fd_set *, const struct timespec *, const sigset_t *);
  int (*epoll_create)(int);
  int (*epoll_create1)(int);
  int (*epoll_ctl)(int, int, int, struct epoll_event *);
  int (*epoll_wait)(int, struct epoll_event *, int, int);
  int (*epoll_pwait)(int, struct epoll_event *, int, int, const sigset_t *);
  int (*epoll_pwait2)(int, struct epoll_event *, int, const struct timespec *, const sigset_t *);
  int (*dup)(int);
  int (*dup2)(int, int);
  int (*dup3)(int, int, int);
  ssize_t (*sendfile)(int, int, off_t *, size_t);
  ssize_t (*splice)(int, loff_t *, int, loff_t *, size_t, unsigned int);
  long (*syscall)(long, ...); /* the library's own raw calls: never back through pl_syscall.c */
};
extern struct pl_real R;

/* Lazy initialisation (pthread_once): the real functions, the configuration. Every interposed
 * function calls it first. */
void pl_init_slow(void);
extern atomic_bool pl_ready;
/* pl_inherit.c: the process installed a seccomp filter (prctl PR_SET_SECCOMP, seccomp(2)): the
 * library keeps to read/write/poll on placeholders (pl_ready.c), which such sandboxes allow. */
extern atomic_bool pl_sandboxed;
static inline void pl_init(void)
{
  if (!atomic_load_explicit(&pl_ready, memory_order_acquire))
    pl_init_slow();
}

/* ---- configuration and rules, pl_rules.c ---------------------------------------------------- */

/* What a rule is matched against. */
#define PL_K_TCP 1u    /* a TCP connect: the destination */
#define PL_K_UDP 2u    /* UDP: the destination (connect, sendto) or the local address (bind) */
#define PL_K_LISTEN 4u /* a TCP listener: the local address */

/* One rule (src/rules/toe_rules.h): kinds are PL_K_*; negated ("!") sends to the kernel. */
#define PL_RULES_MAX 128
struct pl_rules {
  struct toe_rule r[PL_RULES_MAX];
  int n;
};

/* Appends the rules in `text` (see docs/interception.md). Returns the number of malformed rules
 * (skipped); the first one is described in err. */
int pl_rules_parse(struct pl_rules *rs, const char *text, char *err, size_t errlen);
/* true if the first rule matching (kind, addr, port) offloads (addr in network order, port in
 * host order); false if it declines or none matches. */
bool pl_rules_match(const struct pl_rules *rs, unsigned kind, uint32_t addr_be, uint16_t port);
/* The same for an IPv6 address (16 bytes, network order): IPv6 rules by prefix, IPv4 rules for a
 * v4-mapped address, '*' for any (toe_rule_match6). */
bool pl_rules_match6(const struct pl_rules *rs, unsigned kind, const uint8_t addr[16],
                     uint16_t port);

struct pl_config {
  struct pl_rules rules;
  bool disabled; /* TOE_OFFLOAD=none: nothing is offloaded */
  bool strict;   /* TOE_STRICT=1 */
  int debug;     /* TOE_PRELOAD_DEBUG */
  char ctl[108]; /* TOE_CTL or "" (libtoe's default) */
  int linger_ms; /* at exit: wait this long for sent data to reach the device */
  /* Waiting (TOE_PROFILE, TOE_SPIN_US, TOE_BATCH; docs/interception.md, "Spinning") */
  const char *profile; /* "default", "latency" or "throughput" */
  int spin_us;         /* a blocking wait on offloaded descriptors spins this long first */
  int batch;           /* completions taken from libtoe per toe_poll call */
  bool drain;          /* a wait first processes what arrived, in the waiting thread */
};
extern struct pl_config pl_cfg;

void pl_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#define PL_DBG(...)                                                                                \
  do {                                                                                             \
    if (pl_cfg.debug)                                                                              \
      pl_log(__VA_ARGS__);                                                                         \
  } while (0)

/* ---- per-socket state ----------------------------------------------------------------------- */

enum {
  PS_FREE = 0,
  PS_CAND,    /* a kernel socket, not decided yet */
  PS_OFF,     /* offloaded: a device socket behind a placeholder */
  PS_ZOMBIE,  /* offloaded, the device socket is gone (reset, both sides shut, device lost); what
               * it had received is kept here, its error and EOF are served from here */
  PS_ORPHAN,  /* inherited over fork(): the session belongs to the parent */
  PS_INHERIT, /* inherited over fork() with a share token (a listener or UDP socket): adopted
               * into this process's own session at its first use (pl_enter_fd) */
};

/* placeholder readiness bits (what A currently shows) */
#define SH_IN 0x1u
#define SH_OUT 0x2u
#define SH_RDHUP 0x4u
#define SH_TERM 0x8u /* hang-up shown, B closed: nothing more to show */
#define SH_HUP 0x10u /* psock.rdy only: hung up (a zombie) */
#define SH_ERR 0x20u /* psock.rdy only: an error was pending (pend_err) at the last reflect */

/* A socket option set by the application, kept for replay at the switch and for getsockopt. */
struct pl_opt {
  int level, name;
  socklen_t len;
  unsigned char val[16];
};
#define PL_OPTS_MAX 16

/* An epoll registration of a candidate, redone on the placeholder after the switch. */
struct pl_epreg {
  int epfd;
  struct epoll_event ev;
};
#define PL_EPREGS_MAX 4

struct pdev;
struct pl_epm;

struct psock {
  pthread_mutex_t mu;
  _Atomic int state;      /* PS_*; changes under mu (and g_tab for FREE) */
  int refs;               /* descriptor numbers naming it (under the table lock) */
  int type;               /* SOCK_STREAM or SOCK_DGRAM */
  struct psock *all_next; /* every psock ever made (fork handler) */
  atomic_uint gen;        /* bumped at each reuse: an epoll registration names one socket */
  struct psock *free_next;

  /* candidate */
  bool bind_deferred; /* bind() recorded, not done in the kernel */
  struct sockaddr_in bind_addr;
  struct pl_opt opts[PL_OPTS_MAX];
  int nopts;
  struct pl_epreg eps[PL_EPREGS_MAX];
  int neps;

  /* offloaded */
  struct pdev *pdev;
  int sd;       /* libtoe socket, -1 once closed */
  int afd, bfd; /* our duplicate of the placeholder A, and its peer B (-1 once closed) */
  unsigned shown;
  uint32_t interest; /* toe_poll_ctl interest given */
  size_t fill_bytes; /* bytes our fill sent from A to B, not drained yet */
  size_t foreign;    /* bytes B got from A that were not our fill: the application wrote to the
                      * placeholder behind our back (pl_bypass_check) */
  bool bypass_seen;  /* the pump's scan found such bytes (pl_dev.c, under the device lock) */
  /* Readiness served in the process (pl_epoll.c): the socket's state as SH_* bits (SH_HUP too),
   * updated by every pl_reflect whether or not the placeholder shows it; rseq_in / rseq_out count
   * the times an input / output readiness appeared (edge-triggered waiters); ipc counts the
   * in-process epoll registrations. The placeholder is mirrored only once pinned (a waiter the
   * library does not serve: a kernel epoll set, SCM_RIGHTS, a fork). */
  atomic_uint rdy, rseq_in, rseq_out;
  atomic_int ipc;
  struct pl_epm *eregs; /* its registrations in served sets (pl_epoll.c), under mu */
  bool pinned;
  bool pin_counted; /* counted in its device's npinned (pl_dev_pin) */
  bool nonblock;    /* O_NONBLOCK of the open file description */
  bool listening;
  bool connected; /* TCP connect done / UDP default peer */
  bool shut_wr;
  int pend_err;         /* positive errno kept for the application (SO_ERROR, next call) */
  uint64_t share_token; /* fork: the device's token for the child (PS_INHERIT), 0 if none */
  /* a shared connection (pl_inherit.c) */
  struct pl_stash *stash; /* bytes it had received when it was shared, read first by whichever
                           * process reads (a MAP_SHARED memfd), or NULL */
  int stash_fd;           /* the stash's memfd (while stash) */
  bool rx_paused;         /* the device delivers to this process only once it asks again */
  bool stash_poke;        /* the pump's scan found stashed bytes not shown (pl_dev.c) */
  int64_t rx_credit;      /* TOE_OPT_RXBUFS to ask with */
  bool acc_lazy;          /* a shared listener: connections only once this process asks */
  bool acc_demand;    /* this process asked for connections (accept, poll, select, epoll_ctl on the
                       * listener); kept across a fork only while it still waits for them: */
  atomic_int waiters; /* threads blocked in accept/poll/select on it now (pl_wait_mark) */
  bool in_epoll;      /* registered for EPOLLIN in an epoll set (a waiter that stays) */
  int rcvtimeo_ms, sndtimeo_ms; /* -1: none */
  struct psock *dnext, *dprev;  /* the device's list of live sockets */

  /* zombie */
  char *zbuf;
  size_t zlen, zoff;
  struct sockaddr_in zlocal, zpeer;
  bool zhas_peer;
};

/* A device session: one toe_dev, its pump thread. */
struct pdev {
  toe_dev *dev;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int live;  /* sockets registered (OFF, or being switched) */
  bool dead; /* lost (or detached): nothing new is registered */
  struct psock *head;
  pthread_t thr;
  bool thr_started;
  int wake_fd; /* eventfd: stops the pump */
  atomic_bool stop;
  atomic_bool lost_seen; /* the device's hang-up was reported (to the pump or a waiting thread) */
  int spinners;          /* threads spinning on it (pl_spin_acquire); dev_drain waits for them */
  /* Pinned sockets (mirrored for a waiter the library does not serve): while there are none, the
   * pump does not wait on libtoe's event descriptor (the threads waiting in served epoll sets
   * process the device's events themselves), and says so in noefd. */
  atomic_int npinned;
  atomic_bool noefd;
};

extern unsigned pl_fork_gen;

/* The files of src/preload and what each owns:
 *   pl_init.c    the real functions, the configuration (TOE_*), logging
 *   pl_fdtab.c   the descriptor table, psock lifetime, entering a psock for a call
 *   pl_dev.c     device sessions and their pump threads
 *   pl_ready.c   placeholder readiness (show, reflect, zombify) and the blocking waits
 *   pl_switch.c  the switch of a kernel socket to the device (placeholder pairs, option replay)
 *   pl_opts.c    each socket option's fate on the device, and recvmsg/sendmsg control messages
 *   pl_fork.c    fork (share tokens, the child's reset) and exit (graceful detach)
 *   pl_inherit.c connections across fork and exec (the stash, fork/exec wrappers, TOE_INHERIT)
 *   pl_sock.c    socket, bind, listen, connect, accept, close, dup, fcntl, options, epoll_ctl
 *   pl_io.c      the data calls (and epoll_wait on the sets the kernel serves)
 *   pl_poll.c    poll, ppoll, select, pselect (served in the process when they can be)
 *   pl_epoll.c   epoll sets served in the process (offloaded members without placeholders)
 *   pl_rules.c   the offload rules
 *   pl_syscall.c libc's syscall(): the socket numbers routed to the functions above */

/* pl_fork.c: the pthread_atfork handlers. */
void pl_atfork_prepare(void);
void pl_atfork_parent(void);
void pl_atfork_child(void);
/* Listener ps (locked, PS_OFF) was just shared: this process's view follows libtoe's (lazy). */
void pl_listener_shared(struct psock *ps);
/* A raw clone system call `nr` (SYS_clone, args a0..a5) that makes a process with a copy of our
 * memory on the caller's stack, a fork without the C library: the fork hooks run around it as
 * around fork(), so the child can adopt the offloaded sockets it inherits (pl_fork.c). */
long pl_fork_clone(long nr, long a0, long a1, long a2, long a3, long a4, long a5);
/* In the parent after a fork that made child pid: binds the tokens made for it to it. */
void pl_inh_fork_parent(pid_t pid);
/* pl_init.c: the child's notion of "our pid" (pl_foreign_child). */
void pl_init_fork_child(void);

/* True in a child made by vfork() or clone(CLONE_VM) (posix_spawn, Python's subprocess): it
 * shares our memory but no atfork handler ran, so it must not touch our state. */
bool pl_foreign_child(void);

/* descriptor table (lock-free lookup; changes under the table lock) */
struct psock *pl_fd_get(int fd);
void pl_tab_lock(void);
void pl_tab_unlock(void);
/* Maps fd -> ps (refs++), table lock held. -1 if fd is out of the table's range / no memory. */
int pl_fd_map(int fd, struct psock *ps);
/* Unmaps fd, table lock held; returns the psock it named (refs not yet dropped) or NULL. */
struct psock *pl_fd_unmap(int fd);
struct psock *pl_psock_new(int type, int state); /* table lock held */
/* The prologue of every interposer taking a descriptor: initialises, and returns the descriptor's
 * socket state, or NULL for a descriptor that is not ours (the caller hands the call to the
 * kernel). Lock-free: a kernel descriptor costs one or two atomic loads. */
static inline struct psock *pl_ours(int fd)
{
  pl_init();
  return pl_fd_get(fd);
}
/* pl_ours for calls the kernel serves while the socket is undecided: NULL for a candidate too. */
static inline struct psock *pl_ours_decided(int fd)
{
  struct psock *ps = pl_ours(fd);
  return ps && atomic_load(&ps->state) != PS_CAND ? ps : NULL;
}
/* The lowest mapped descriptor >= from, or -1. */
int pl_fd_next(int from);
/* Drops one reference (table lock NOT held); the last one closes the socket and frees ps. */
void pl_psock_unref(struct psock *ps);
/* Every psock ever made (linked by all_next); the first takes the table lock, the second is for
 * the forked child, where the lock is held by the fork. */
struct psock *pl_psock_all(void);
struct psock *pl_psock_first_unlocked(void);
/* In the forked child: the table lock again usable. */
void pl_tab_fork_child(void);

/* devices */
/* The current device (attaching if needed), registered for one more socket (live++), or NULL
 * with *err (negative errno) when no device is available. */
struct pdev *pl_dev_acquire(int *err);
/* Undoes pl_dev_acquire for a socket that did not become live. */
void pl_dev_release(struct pdev *p);
/* The attach lock (g_attach), taken before any psock lock; and the current session under it. */
void pl_attach_lock(void);
void pl_attach_unlock(void);
struct pdev *pl_dev_current(void);
/* In the forked child: no session, the parent's control sockets closed, the lock usable. */
void pl_dev_fork_child(void);
/* At exit: takes the current session (NULL if none); nothing attaches any more. */
struct pdev *pl_dev_exit_take(void);
/* Processes what the device reported (toe_poll in batches of pl_cfg.batch) in the calling thread
 * and shows it on the placeholders; *changed is set when anything shown changed. Returns the
 * number of events. No lock held. */
int pl_dev_process(struct pdev *p, bool *changed);
/* The current session registered as spun on (it stays attached until pl_spin_release), or NULL
 * when there is none or another thread is attaching one. */
struct pdev *pl_spin_acquire(void);
void pl_spin_release(struct pdev *p);
/* The application is about to close every descriptor in [first, last] (close_range, closefrom).
 * If that takes the current session's own descriptors (its event descriptor or the pump's
 * eventfd: libtoe's are made together with the first), the session is taken off (the next socket
 * attaches a new one) and returned, to be ended with pl_dev_finish before the numbers are
 * closed; else NULL. Without this, libtoe and the pump would go on using (and at last close) the
 * numbers, which the application reuses for its own files. */
struct pdev *pl_dev_before_close_range(unsigned first, unsigned last);
/* Ends a session taken by pl_dev_exit_take or pl_dev_before_close_range, as at exit (pl_fork.c):
 * the pump stopped, its sockets made zombies (what they received and nobody read handed to the
 * other holders of a shared connection), libtoe detached, waiting at most TOE_PRELOAD_LINGER_MS
 * for the data already sent. */
void pl_dev_finish(struct pdev *p);
/* Stops a session's pump thread and waits for it. */
void pl_dev_stop_pump(struct pdev *p);
/* Links a switched socket into its device's list (it counts in live already). */
void pl_dev_link(struct pdev *p, struct psock *ps);
/* ps (locked) gets a waiter the library does not serve: its placeholder is mirrored for good,
 * and the pump waits on the device's events for it. */
void pl_dev_pin(struct psock *ps);
/* Unlinks and releases (ps->mu held). */
void pl_dev_unlink(struct psock *ps);

/* readiness (ps->mu held, ps OFF) */
/* Reads the socket's state from libtoe and shows it on the placeholder; may turn the socket into
 * a zombie (hang-up) or pull a soft error into pend_err. */
void pl_reflect(struct psock *ps);
/* Shows `want` (SH_IN/SH_OUT/SH_RDHUP) on the placeholder. */
void pl_show(struct psock *ps, unsigned want);
/* Turns an OFF socket into a zombie (see PS_ZOMBIE). */
void pl_zombify(struct psock *ps);
/* Bytes on B that are not our fill mean the application wrote to the placeholder through a call
 * the library did not see (a raw system call, io_uring): they can never reach the network. Then
 * the socket ends with EIO (A shows the error, ECONNRESET/EPIPE for calls made on it directly)
 * and a warning is written once. True if it did. */
bool pl_bypass_check(struct psock *ps);

/* A new placeholder: *a is the application's end (close-on-exec and non-blocking as asked),
 * *afd our duplicate of it, *bfd the other end (both private, close-on-exec). 0 or -errno. */
int pl_pair(int *a, int *afd, int *bfd, bool cloexec, bool nonblock);
/* Moves a private descriptor of the library to a high number (close-on-exec); returns the new
 * number, or fd itself when it cannot. */
int pl_move_high(int fd);
/* Maps a socket option onto libtoe's (TOE_OPT_*, with *v), or 0 if libtoe has none. */
int pl_toe_opt_of(int level, int name, const struct pl_opt *o, int64_t *v);

/* Switches candidate ps (locked) at descriptor fd to the device. Returns 0 (switched), 1 (no
 * device, stays a kernel socket), or a negative errno. */
int pl_switch(int fd, struct psock *ps);

/* Waits until fd (a placeholder) polls ready for `events`, up to timeout_ms (-1: forever).
 * Returns > 0 ready, 0 timeout, -EINTR when a signal interrupted and no handler asks for a
 * restart. */
int pl_wait_fd(int fd, short events, int timeout_ms);
/* CLOCK_MONOTONIC in milliseconds, in microseconds. */
uint64_t pl_mono_ms(void);
uint64_t pl_mono_us(void);

/* Spin-then-sleep: called by a wait on offloaded descriptors before it sleeps. Processes what the
 * device reported in this thread (no hand-off to the pump), then asks ready(arg) (a zero-timeout
 * check of the wait's own descriptors); while it returns 0, busy-polls the device (toe_spin) for
 * up to pl_cfg.spin_us microseconds in all. Returns ready()'s last non-zero value, or 0: then
 * the caller sleeps as it would have. Does nothing (0) without TOE_SPIN_US / a profile that
 * spins or drains, or without a session. */
int pl_spin_wait(int (*ready)(void *), void *arg);
/* At exit, with TOE_PRELOAD_DEBUG: how many waits processed completions, how many found a
 * ready descriptor that way. */
void pl_spin_report(void);
/* A thread starts (+1) or ends (-1) a blocking wait on fd, if it is ours: a listener keeps
 * serving connections across a fork while someone waits on it (pl_atfork_prepare). */
void pl_wait_mark(int fd, int d);
/* True when a wait on these descriptors involves an offloaded one (poll, select). */
bool pl_fd_offloaded(int fd);
/* epoll sets known to hold (or have held) an offloaded descriptor: marked by epoll_ctl, forgotten
 * at close. Only a hint for spinning. */
void pl_ep_mark(int epfd);
bool pl_ep_marked(int epfd);
void pl_ep_forget(int epfd);

/* pl_epoll.c: epoll served in the process ("Readiness served in user space").
 * pl_eps_new: epoll_create made set epfd. pl_eps_forget(_range): it was closed.
 * pl_eps_ctl: epoll_ctl on a served set for an offloaded descriptor; 0 or -errno when served, 1
 *   when the kernel's epoll_ctl is the one to call (any other case).
 * pl_eps_kernel_member: the kernel accepted (op) for a kernel member of epfd.
 * pl_eps_switched: a candidate registered in epfd was switched (ps->mu held): true if it is now a
 *   served member (else the caller adds its placeholder to the kernel set).
 * pl_eps_fallback(_all): the set(s) go back to the kernel for good (fork, dup, nesting).
 * pl_eps_served / pl_eps_wait: a wait on a served set (count, or -1 and errno).
 * pl_eps_raise: a socket in a served set became ready for something new (wakes sleepers). */
void pl_eps_new(int epfd);
void pl_eps_forget(int epfd);
void pl_eps_forget_range(unsigned first, unsigned last);
int pl_eps_ctl(int epfd, int op, int fd, struct epoll_event *ev);
void pl_eps_kernel_member(int epfd, int op);
bool pl_eps_switched(int epfd, int fd, struct psock *ps, struct epoll_event *ev);
void pl_eps_fallback(int epfd);
void pl_eps_fallback_all(void);
void pl_eps_fork_child(void);
bool pl_eps_served(int epfd);
int pl_eps_wait(int epfd, struct epoll_event *evs, int max, int64_t tmo_ms, const sigset_t *mask);
void pl_eps_raise(void);
/* ps (locked) became ready for something new: its registrations go on their sets' ready lists. */
void pl_eps_ready(struct psock *ps);
/* ps's last descriptor is gone (ps locked): its registrations leave their sets. */
void pl_eps_sock_gone(struct psock *ps);
/* The application closed every descriptor in [first, last] (close_range, closefrom): the
 * library's wake eventfd and the calling thread's own epoll set, if they were there, are
 * forgotten (not closed again: the numbers are the application's now). */
void pl_eps_private_closed(unsigned first, unsigned last);
/* A blocking call's wait on an unpinned offloaded socket, served in the process: takes the
 * device's events, checks the socket (gen: its generation when the wait began), and sleeps at most
 * once (left_ms, -1: no limit) on a per-thread epoll set holding libtoe's event descriptor and the
 * wake eventfd. > 0 ready (or the socket changed state: the caller looks again), 0 not ready,
 * -EINTR and other -errno from the sleep, -ENOTSUP: not possible (then wait on the placeholder). */
int pl_eps_wait_sock(struct psock *ps, unsigned gen, short events, int left_ms);
/* For a wait served in the process that sleeps in poll (pl_poll.c): the calling thread's own
 * epoll set (libtoe's event descriptor and the wake eventfd; *with_dev false when the session's
 * descriptor is not in it: sleep briefly), after taking the device's events in this thread; -1
 * when there is none. Pollable: readable when either has news. pl_eps_thread_consume takes the
 * news off it after a wake. pl_eps_gen: the readiness generation (read before the last look, and
 * compared after pl_eps_sleeping(1), before sleeping: no lost wake-up); pl_eps_sleeping(+1/-1)
 * counts the thread asleep (a readiness change then writes the wake eventfd). */
int pl_eps_thread_wait_fd(bool *with_dev);
void pl_eps_thread_consume(void);
unsigned pl_eps_gen(void);
void pl_eps_sleeping(int d);
/* True when the socket polls ready for `events` (POLLIN/POLLOUT; errors and hang-up count). */
bool pl_sock_ready(struct psock *ps, short events);
void pl_eps_report(void);
/* pl_poll.c: at exit, with TOE_PRELOAD_DEBUG: how many poll/select calls were served here. */
void pl_poll_report(void);
/* pl_ready.c, for pl_epoll.c: ps joins a served set (count) or changed its registration there;
 * leaves one (if still the socket of generation gen; to_kernel: its registration moves to the
 * kernel set); is pinned (mirrored for good). */
void pl_ipc_join(struct psock *ps, uint32_t events, bool count);
void pl_ipc_leave(struct psock *ps, unsigned gen, bool to_kernel);
void pl_pin(struct psock *ps, unsigned gen);
/* Pins fd's socket if it is ours (a waiter on its placeholder the library does not serve). */
void pl_pin_fd(int fd);

/* Converts a toe result: returns it if >= 0, else sets errno and returns -1. */
static inline long pl_ret(long rc)
{
  if (rc < 0) {
    extern int *__errno_location(void);
    *__errno_location() = (int)-rc;
    return -1;
  }
  return rc;
}

/* Locks ps if it is offloaded (OFF or ZOMBIE) in this process; returns its state (PS_CAND and
 * PS_ORPHAN are returned without the lock). */
int pl_enter(struct psock *ps);
/* pl_enter for a call on descriptor fd: an inherited shared socket (PS_INHERIT) is adopted into
 * this process's session first (then it is PS_OFF, or PS_ORPHAN if that failed). */
int pl_enter_fd(int fd, struct psock *ps);

/* pl_sock.c: option store */
struct pl_opt *pl_opt_find(struct psock *ps, int level, int name);
void pl_opt_store(struct psock *ps, int level, int name, const void *val, socklen_t len);

/* pl_inherit.c: connections across fork and exec (docs/interception.md "fork and exec") */
struct pl_stash;
/* atfork prepare, ps locked, PS_OFF in the current session p: a token for a connected TCP
 * socket, its received bytes moved to the stash, the device's delivery paused. */
void pl_inh_share_conn(struct pdev *p, struct psock *ps);
/* In the child: inherited connections are not paused (adopting gives a fresh handle). */
void pl_inh_fork_child(struct psock *ps);
/* A read on ps (locked): bytes from the stash (>0), or 0 when it has none; asks the device for
 * data again if it was paused. */
ssize_t pl_inh_read(struct psock *ps, void *buf, size_t len, int flags);
/* Bytes waiting in ps's stash (readiness). */
size_t pl_inh_stashed(const struct psock *ps);
/* ps (locked) is polled or waited on: ask the device for data again if paused. */
void pl_inh_demand(struct psock *ps);
/* The last descriptor of ps is gone (ps locked): unmaps its stash; an inherited token that was
 * never used is given up (if this process has a session; else it goes when the process ends). */
void pl_inh_close(struct psock *ps);
/* ps (locked) is PS_OFF in session p and about to be closed here (its last descriptor, or the
 * process's exit): what libtoe received for it and nobody read goes into its stash, for the
 * other holders (as unread bytes stay in a kernel socket). */
void pl_inh_give_back(struct pdev *p, struct psock *ps);
/* At start: adopts what the previous program image left (TOE_INHERIT, written at exec). */
void pl_inh_init(void);
/* A program started without fork (posix_spawn, system, popen: pl_spawn.c) gets every offloaded
 * socket it holds once started, as after exec. Before the start: shares them all (tokens not yet
 * bound) and returns what to hand on, or NULL when there is nothing (or in a vfork child). */
struct pl_handoff;
struct pl_handoff *pl_inh_spawn_prepare(void);
/* "TOE_INHERIT=..." for the child's environment (owned by h). */
const char *pl_inh_spawn_env(const struct pl_handoff *h);
/* envp without any TOE_INHERIT, plus h's: a vector to free() (not its strings), or NULL on no
 * memory. */
char **pl_inh_spawn_envp(struct pl_handoff *h, char *const envp[]);
/* After the start, and frees h (NULL: nothing): child > 0, the new process (the tokens of the
 * sockets it holds are bound to it, the others given up); 0, none or finished (all given up);
 * -1, started but unknown (the tokens stay bound to this process until it ends). */
void pl_inh_spawn_done(struct pl_handoff *h, pid_t child);

/* pl_io.c */
ssize_t pl_send_ps(int fd, struct psock *ps, const void *buf, size_t len, int flags,
                   const struct sockaddr *dst, socklen_t dstlen);
ssize_t pl_recv_ps(int fd, struct psock *ps, void *buf, size_t len, int flags,
                   struct sockaddr *from, socklen_t *fromlen);
/* Refreshes the placeholder of fd if it is offloaded (used before poll/select/epoll_ctl). */
void pl_refresh_fd(int fd);
/* pl_refresh_fd, saying whether input is waited for (a shared connection's data is asked for
 * again only then: pl_inh_demand). */
void pl_refresh_fd_for(int fd, bool in);

/* pl_opts.c: what an offloaded socket does with each option, and recvmsg's control messages */
enum {
  PL_OC_REFUSE = 0, /* ENOPROTOOPT: the device cannot do what it asks */
  PL_OC_DEVICE,     /* carried by the device (pl_toe_opt_of, or TOE_OPT_RECVERR) */
  PL_OC_LOCAL,      /* served by the preload (timeouts) */
  PL_OC_CMSG,       /* a switch of recvmsg's control messages (pl_cmsg_mask) */
  PL_OC_KEEP,       /* a value that describes what the device does anyway */
};
#define PL_CM_PKTINFO 0x1u     /* IP_PKTINFO */
#define PL_CM_TOS 0x2u         /* IP_RECVTOS */
#define PL_CM_TTL 0x4u         /* IP_RECVTTL */
#define PL_CM_TS 0x8u          /* SO_TIMESTAMP_OLD */
#define PL_CM_TS_NEW 0x10u     /* SO_TIMESTAMP_NEW */
#define PL_CM_TSNS 0x20u       /* SO_TIMESTAMPNS_OLD */
#define PL_CM_TSNS_NEW 0x40u   /* SO_TIMESTAMPNS_NEW */
#define PL_CM_TSING 0x80u      /* SO_TIMESTAMPING_OLD (software receive stamps) */
#define PL_CM_TSING_NEW 0x100u /* SO_TIMESTAMPING_NEW */
#define PL_CM_TSING_ANY (PL_CM_TSING | PL_CM_TSING_NEW)
#define PL_CM_TS_ANY (PL_CM_TS | PL_CM_TS_NEW | PL_CM_TSNS | PL_CM_TSNS_NEW | PL_CM_TSING_ANY)
/* The PL_CM_* bit of an option, 0 if it is not one of recvmsg's switches. */
unsigned pl_cmsg_bit(int level, int name);
/* PL_OC_* of setting (level, name) to val on a socket of `type`. */
int pl_opt_class(int type, int level, int name, const void *val, socklen_t len);
/* True if every option set on ps can be honoured by the device (soft_level and soft_name name one
 * that only bounds a failing connection's life and is left to the device's own limits, else
 * -1); else names the first that cannot. */
bool pl_opts_offloadable(const struct psock *ps, int *level, int *name, int *soft_level,
                         int *soft_name);
/* The control messages ps asked for (PL_CM_*), from its options. */
unsigned pl_cmsg_mask(const struct psock *ps);
/* Fills msg's control buffer with what `mask` asks of meta m (msg_controllen = bytes used;
 * MSG_CTRUNC added to msg_flags when one did not fit). */
void pl_cmsg_build(unsigned mask, const struct toe_rxmeta *m, struct msghdr *msg);
/* Checks sendmsg's control messages for offloaded ps: 0 (IP_PKTINFO naming the device's own
 * address or none and its interface or none, IP_TOS 0), or the kernel's errno for what the
 * device cannot do: -ENETUNREACH (a source address or interface not the device's), -ENODEV (no
 * such interface), -EINVAL (any other control message). */
int pl_send_cmsg_check(struct psock *ps, const struct msghdr *msg);
/* The index of the interface holding IPv4 address addr_be (0 if none). */
unsigned pl_ifindex_of(uint32_t addr_be);

#endif
