/*
 * libtoe: the host library of toekit. A socket-like API over the host-device transport
 * (docs/transport.md, "toekit transport ABI 1.0"): a process attaches to a device (toed, or the
 * real device behind a DriverKit dext), creates TCP and UDP sockets on it and moves data through
 * shared-memory rings. The device's engine terminates the connections; the host's own TCP/IP
 * stack never sees them.
 *
 *   toe_dev *dev;
 *   int rc = toe_attach(NULL, NULL, &dev);            // $TOE_CTL, or the one socket in /run/toekit
 *   int sd = toe_socket(dev, TOE_SOCK_STREAM);
 *   struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(80)};
 *   inet_pton(AF_INET, "198.18.0.2", &a.sin_addr);
 *   rc = toe_connect_blocking(dev, sd, (struct sockaddr *)&a, sizeof(a), 5000);
 *   toe_send_all(dev, sd, "GET / HTTP/1.0\r\n\r\n", 18, 5000);
 *   ssize_t n = toe_recv_blocking(dev, sd, buf, sizeof(buf), 5000);
 *   toe_close(dev, sd);
 *   toe_detach(dev, 1000);                            // waits up to 1 s for queued data
 *
 * ERRORS. Every function that can fail returns a negative errno value: -TOE_E* from toe/errno.h,
 * whose numbers are Linux's (so strerror(-rc) or toe_strerror(rc) describes them). The ones a
 * caller meets most:
 *   -TOE_EAGAIN       nothing to receive / no send space / no connection to accept now
 *   -TOE_EINPROGRESS  a TCP connect was started (completion: TOE_POLLOUT, then SO_ERROR)
 *   -TOE_EBADF        not a socket of this device (never opened, or closed)
 *   -TOE_EINVAL       bad argument, or a call that does not fit the socket's state
 *   -TOE_EAFNOSUPPORT an address that is neither AF_INET nor AF_INET6, an AF_INET6 one on a
 *                     device before ABI 1.7 (no TOE_ABI_CAP_IPV6), or one of the other family
 *                     than the socket's
 *   -TOE_ENOTCONN, -TOE_EISCONN, -TOE_EALREADY, -TOE_EDESTADDRREQ, -TOE_EPIPE: state, as the
 *                     BSD socket calls give them
 *   -TOE_ECONNREFUSED, -TOE_ETIMEDOUT, -TOE_EHOSTUNREACH, -TOE_ENETUNREACH, -TOE_EADDRINUSE,
 *   -TOE_EADDRNOTAVAIL, -TOE_ECONNRESET: the network's answer, from the device's engine
 *   -TOE_EMFILE       the device's (or this library's) socket table is full
 *   -TOE_EMSGSIZE     a datagram over 65507 bytes, or larger than the send buffers can ever hold
 *   -TOE_ENETDOWN     the device is gone (see DEVICE LOSS); the attach must be redone
 *   -TOE_ETIMEDOUT    a blocking call's timeout, or a control call the device did not answer
 *                     within toe_attach_opts.op_timeout_ms
 *   -TOE_EPROTO       the device broke the transport protocol (the session is then ended)
 * toe_attach adds the errors of connect(2) on the control socket (-ENOENT: no such device socket,
 * -ECONNREFUSED: nobody serves it, -EACCES: not allowed to use it) and the device's refusals
 * (-EPROTONOSUPPORT: another ABI major, -EMFILE: too many clients, -EINVAL, -ENOMEM); built with
 * the POSIX port, -EPROTONOSUPPORT also means a device older than ABI 1.3 (no POSIX doorbells).
 *
 * SOCKETS are small non-negative integers ("socket descriptors", sd), private to one toe_dev and
 * unrelated to file descriptors. A closed sd may be handed out again by a later toe_socket or
 * toe_accept (like a file descriptor; reuse is delayed as long as possible).
 *
 * NON-BLOCKING by default: every socket call returns at once. Calls that wait for the network
 * (connect, accept, send when the send buffers are full, recv with nothing queued) return
 * -TOE_EINPROGRESS or -TOE_EAGAIN, and readiness is reported by toe_poll() and the pollable
 * toe_event_fd(). The *_blocking calls and toe_send_all wait up to the timeout they are given.
 * Control calls (toe_socket, bind, listen, UDP connect, setsockopt, getsockopt, toe_stats) are a
 * round trip to the device: they wait for its answer (it answers at once) and fail with
 * -TOE_ETIMEDOUT once the device has shown no sign of work on this session (no submission taken,
 * no completion or event posted, no fill buffer taken) for op_timeout_ms. On a TCP socket with
 * sends still waiting for send-buffer space in the device, setsockopt/getsockopt take effect
 * after them (the device keeps one socket's operations in order), so they wait as long as those
 * sends do while the device keeps taking data (a slow peer, a loaded machine).
 *
 * BUFFERS. The shared region's buffer area holds everything in flight. A copying toe_send copies
 * the caller's bytes into it (the one copy into the shared region) and returns; the caller's
 * buffer is free at once. Send space per socket is TOE_OPT_TXBUFS buffers of buf_size bytes; it
 * comes back when the device has taken the bytes into its engine's send buffer. Received data
 * stays in the buffer the device filled until the caller reads it: toe_recv copies it out (the
 * one copy out of the shared region), toe_recv_zc lends it to the caller in place. A socket whose
 * caller stops reading keeps at most TOE_OPT_RXBUFS buffers; then the device stops reading that
 * connection, the TCP window closes and the peer waits (end-to-end flow control; nothing is
 * dropped). UDP datagrams beyond the device's queue are dropped there, as a kernel would.
 *
 * EVENTS. toe_event_fd() is a file descriptor that polls readable (epoll, poll, select) while
 * toe_poll() has something to report: a completion or event from the device, a socket that is
 * ready for the interest set with toe_poll_ctl(), or a device state change. It is level-triggered
 * like epoll's default: toe_poll() resets it, and it stays readable while a socket stays ready.
 * Never read from or close it. Readiness bits (TOE_POLL*) have poll(2)'s meanings:
 *   TOE_POLLIN    data or EOF to receive; a complete datagram; a connection to accept;
 *                 a pending error
 *   TOE_POLLOUT   send space (TCP: connected and not shut down for writing); a finished connect
 *                 (successful or not: check TOE_OPT_ERROR)
 *   TOE_POLLERR   a pending error (TOE_OPT_ERROR); always reported
 *   TOE_POLLHUP   the connection is gone: reset, failed, or both directions shut; always reported
 *   TOE_POLLRDHUP the peer sent its FIN (EOF after the queued data)
 *
 * ADAPTIVE POLLING. A call that has to wait (toe_poll with a timeout, the blocking calls) first
 * spins on the completion ring for toe_attach_opts.spin_us microseconds (lowest latency, costs a
 * core), then tells the device it sleeps (the ring's NEED_WAKEUP flag) and sleeps on the device's
 * doorbell. Outside those spins the flag stays set, so toe_event_fd() wakes an epoll loop; such a
 * loop gets the same spin-then-sleep from toe_spin() before its epoll_wait. The device's doorbell
 * is rung only while the flag is set; ours (the kick) only while the device sleeps. Submissions
 * of one call are published as one batch.
 *
 * DEVICE LOSS. The control socket's hang-up is the authoritative sign that the device is gone
 * (it crashed, restarted, or ended this session). A waiting call notices it at once, any other
 * call within 100 ms; toe_event_fd() becomes readable at once and toe_poll() reports it. Then
 * every waiting call returns, every socket reports TOE_POLLIN|TOE_POLLOUT|TOE_POLLERR|TOE_POLLHUP,
 * already-received data can still be read, then recv gives -TOE_ECONNRESET, send -TOE_EPIPE,
 * TOE_OPT_ERROR -TOE_ENETDOWN, and every other call on the device -TOE_ENETDOWN. toe_dev_status()
 * says why. The shared region stays mapped until toe_detach (so zero-copy pointers never
 * dangle); after toe_detach, attach again (which fails cleanly with -ECONNREFUSED or -ENOENT
 * until the device is back). Nothing blocks for longer than the call's timeout, and a wait with
 * no timeout still re-checks the device at least once a second.
 *
 * THREADS. Every function is thread-safe: a toe_dev has one internal mutex, taken by each call
 * and released while a call sleeps, so several threads may share a device and even a socket
 * (like file descriptors, with the same caveat: two threads receiving on one stream socket each
 * get some of the bytes). Different toe_devs are independent. One thread at a time spins or
 * sleeps on the device's doorbell; other waiting threads sleep on a condition variable and are
 * woken by any progress. The library never calls back into the application and never raises a
 * signal (no SIGPIPE). A forked child does not inherit a usable session: the region is mapped
 * MADV_DONTFORK and every descriptor is close-on-exec; the child must attach on its own.
 * (libtoe closes the child's copy of each session's control socket at fork, so that a child never
 * keeps its parent's session open.)
 *
 * PORTS. Built with the Linux port (default), libtoe makes its own system calls directly
 * (syscall(2)): an LD_PRELOAD library's wrappers of socket, poll, read... never see them. Built
 * with the POSIX port (CMake TOE_HOST_PORT=posix; macOS, the BSDs), it needs a device that grants
 * the 1.3 POSIX doorbells, and toe_event_fd() is a socket that a blocking call sleeping in
 * another thread may leave unreadable until that call wakes (docs/transport.md "The host port
 * layer").
 */
#ifndef TOE_TOE_H
#define TOE_TOE_H

#include "toe/errno.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct toe_dev toe_dev;

/* ---------------------------------------------------------------------------------------------
 * Versions. toekit's release version (also the CMake project's and the packages': CMakeLists.txt
 * reads it from these lines). TOE_VERSION_NUMBER compares: major * 10000 + minor * 100 + patch.
 * The transport ABI has its own version (TOE_ABI_MAJOR/MINOR in toe/abi.h), and libtoe.so its
 * soname (libtoe.so.1).
 */
#define TOE_VERSION_MAJOR 0
#define TOE_VERSION_MINOR 1
#define TOE_VERSION_PATCH 0
#define TOE_VERSION "0.1.0"
#define TOE_VERSION_NUMBER (TOE_VERSION_MAJOR * 10000 + TOE_VERSION_MINOR * 100 + TOE_VERSION_PATCH)

/*
 * The version of the libtoe that is loaded at run time ("0.1.0"), which may differ from the
 * TOE_VERSION a program was compiled with. A static string; never fails.
 */
const char *toe_version(void);

/* ---------------------------------------------------------------------------------------------
 * Attaching to a device
 */

/* Options of toe_attach. Start from toe_attach_opts_init(); 0 in a geometry field takes the
 * device's default, and the device clamps every request to its limits (docs/transport.md). */
struct toe_attach_opts {
  uint32_t spin_us;       /* adaptive polling: spin this long before sleeping (default 50) */
  uint32_t op_timeout_ms; /* a control call fails after the device was silent this long (5000) */
  uint32_t sq_entries;    /* submission ring entries, a power of two, or 0 */
  uint32_t cq_entries;    /* completion ring entries, a power of two, or 0 */
  uint32_t buf_count;     /* buffers in the shared region, or 0 */
  uint32_t buf_size;      /* bytes per buffer, a power of two (2048..65536), or 0 */
  uint32_t max_handles;   /* sockets this process may hold at once, or 0 */
  uint32_t rx_bufs;       /* buffers given to the device for receiving (0: half of them) */
  const char *comm;       /* process name shown by toectl (NULL: this process's name) */
  uint32_t origin;        /* how this session's flows come (TOE_ORIGIN_*; default NATIVE) */
};

/* toe_attach_opts.origin, shown by `toectl flows` (ABI 1.2, TOE_ABI_CAP_ORIGIN): a program that
 * links libtoe itself, libtoe-preload.so inside an unmodified program, or toe-proxyd carrying
 * other programs' flows. A device older than ABI 1.2 refuses a session whose origin is not
 * NATIVE (-EINVAL: the field was reserved). */
#define TOE_ORIGIN_NATIVE 0
#define TOE_ORIGIN_PRELOAD 1
#define TOE_ORIGIN_PROXY 2

/* Fills `o` with the defaults. */
void toe_attach_opts_init(struct toe_attach_opts *o);

/*
 * Finds the control socket to use when the caller names none: $TOE_CTL if set and not empty,
 * else the only socket in /run/toekit/ ("IFNAME.sock"). Writes the path into buf (len bytes).
 * Returns 0; -TOE_ENOENT if there is none; -TOE_EEXIST (-EEXIST) if there are several (name one);
 * -TOE_E2BIG if it does not fit in buf.
 */
int toe_ctl_default(char *buf, size_t len);

/*
 * Attaches to the device serving the control socket `ctl_path` (NULL: toe_ctl_default()): the
 * hello handshake, the shared region mapped, the receive buffers handed to the device.
 * `opts` may be NULL (defaults). On success *out is the new device handle; on failure *out is
 * NULL and nothing is left open. Fails within op_timeout_ms if the device does not answer.
 * Errors: see ERRORS above.
 */
int toe_attach(const char *ctl_path, const struct toe_attach_opts *opts, toe_dev **out);

/*
 * Ends the session. Every open socket is closed as by toe_close (graceful: queued data is still
 * sent), waiting at most `linger_ms` milliseconds in total for the device to have taken every
 * byte already sent; what it has not taken by then is dropped when the session ends (the device
 * then resets those connections). 0 does not wait. Frees everything; `dev` is invalid after.
 * NULL is a no-op. Returns 0, or -TOE_ETIMEDOUT if linger_ms passed with data still waiting.
 */
int toe_detach(toe_dev *dev, int linger_ms);

/*
 * 0 while the session is up; otherwise why it ended: -TOE_ENETDOWN (the control socket hung up:
 * the device died, restarted or stopped), the device's -errno from the region header (e.g.
 * -TOE_EPROTO when it ended the session for a protocol violation), or -TOE_EPROTO when the
 * device broke the rings. TOE_DEV_STOPPING (a positive value) while the device announced that it
 * is shutting down (it resets the remaining connections after a grace period).
 */
#define TOE_DEV_STOPPING 1
int toe_dev_status(toe_dev *dev);

/* What a session negotiated, and the library's counters. */
struct toe_dev_info {
  uint32_t client_id; /* the device's number for this session (toectl shows it) */
  uint16_t abi_major, abi_minor;
  uint64_t caps; /* granted TOE_ABI_CAP_* (toe/abi.h) */
  uint32_t sq_entries, cq_entries, fq_entries;
  uint32_t buf_count, buf_size, max_handles;
  uint32_t rx_bufs; /* buffers for receiving; the rest are for sending */
  uint64_t region_size;
  /* counters (only grow) */
  uint64_t sqes;     /* submissions */
  uint64_t cqes;     /* completions and events consumed */
  uint64_t kicks;    /* doorbells rung to wake the device */
  uint64_t spins;    /* waits that spun */
  uint64_t sleeps;   /* waits that slept on the doorbell */
  uint64_t rx_bytes; /* bytes received (lent by the device) */
  uint64_t tx_bytes; /* bytes submitted for sending */
  uint64_t bad_cqes; /* completion entries refused as malformed (a device bug) */
};
int toe_dev_info(toe_dev *dev, struct toe_dev_info *info);

/* ---------------------------------------------------------------------------------------------
 * Sockets
 */

#define TOE_SOCK_STREAM 1 /* TCP */
#define TOE_SOCK_DGRAM 2  /* UDP */

/*
 * Creates a socket. Returns its sd (>= 0), or -TOE_EINVAL (bad type), -TOE_EPROTONOSUPPORT (the
 * device did not grant the protocol), -TOE_EMFILE, -TOE_ENETDOWN. Its poll interest starts as
 * TOE_POLLIN.
 */
int toe_socket(toe_dev *dev, int type);

/*
 * As toe_socket, of address family `af`: AF_INET (what toe_socket makes) or AF_INET6 (ABI 1.7).
 * An AF_INET6 socket takes and gives struct sockaddr_in6 (scope id kept for link-local); it is
 * dual-stack as on Linux unless TOE_OPT_V6ONLY is set before bind: bound to [::] it also takes
 * IPv4 traffic, whose peers appear as v4-mapped ::ffff:a.b.c.d. Errors: those of toe_socket,
 * -TOE_EAFNOSUPPORT (another family, or a device that did not grant TOE_ABI_CAP_IPV6 or runs
 * without IPv6).
 */
int toe_socket_af(toe_dev *dev, int af, int type);

/*
 * Binds to a local IPv4 address (INADDR_ANY: the device's) and port (0: an ephemeral one).
 * Errors: -TOE_EINVAL already bound, -TOE_EAFNOSUPPORT, -TOE_EADDRINUSE, -TOE_EADDRNOTAVAIL.
 */
int toe_bind(toe_dev *dev, int sd, const struct sockaddr *addr, socklen_t len);

/* TCP: a bound socket listens (backlog clamped by the device). Errors: -TOE_EINVAL (not bound),
 * -TOE_EOPNOTSUPP (UDP). */
int toe_listen(toe_dev *dev, int sd, int backlog);

/*
 * TCP: takes an established connection from a listener. Returns the new sd (interest
 * TOE_POLLIN) and, if `peer` is not NULL, its peer's address (*len in: room; out: the size of a
 * sockaddr_in), or -TOE_EAGAIN (none yet: TOE_POLLIN on the listener says when),
 * -TOE_EINVAL (not listening), or an error the device reported for the accept (-TOE_EMFILE).
 */
int toe_accept(toe_dev *dev, int sd, struct sockaddr *peer, socklen_t *len);

/*
 * Sharing a socket with another session (ABI 1.2, TOE_ABI_CAP_SHARE; docs/transport.md "Sharing
 * a socket between sessions"): what fork() needs to give a child the parent's listener.
 *
 * toe_share: a one-time token for listener or UDP socket `sd` (*token, random, non-zero); any
 * session of the same uid (any session if the sharer is root) may adopt it within a few seconds.
 * The socket then lives until every holder closed it (and the token was adopted or expired). A
 * listener becomes *lazy*: its posted ACCEPTs are handed back and ACCEPTs are posted again only
 * once this process asks for connections (toe_accept, or TOE_POLLIN interest in toe_poll_ctl), so
 * connections go to the holders that serve them. Returns 0, -TOE_EOPNOTSUPP (a TCP socket that is
 * not listening; a device without the capability), -TOE_EMFILE (the device's token table is full),
 * -TOE_EBADF, -TOE_ENETDOWN.
 *
 * toe_adopt: a new sd in this session for the socket `token` names (a lazy listener, or a UDP
 * socket, bound or connected as the sharer's). Returns the sd, or -TOE_ENOENT (unknown, used,
 * expired, or another uid's token), -TOE_EMFILE (no free socket), -TOE_EOPNOTSUPP, -TOE_ENETDOWN.
 */
int toe_share(toe_dev *dev, int sd, uint64_t *token);
int toe_adopt(toe_dev *dev, uint64_t token);
/*
 * Connections and tokens across fork and exec (docs/transport.md "Sharing a socket between
 * sessions"). toe_share also takes a connected TCP socket: its token adopts as a connection
 * (TOE_ABI_ADOPT_TCP_CONNECTED, getpeername works), both sessions may then send and receive on
 * it, and the device closes it when the last holder closes. Sharing a connection stops the
 * device's deliveries to the sharer until it sets TOE_OPT_RXBUFS again (what it had received
 * before the share stays readable), so that bytes go to the process that reads them.
 *
 * toe_token_bind: the token is held by process `pid` (0: this process; else a child of it)
 * instead of expiring after a few seconds: it stays adoptable until that process ends (an exec
 * keeps the pid) and is given up then. toe_token_drop: gives a token up now. Both return 0,
 * -TOE_ENOENT (unknown, adopted or expired), -TOE_EPERM (bind: pid is neither this process nor
 * its child, e.g. in another pid namespace), -TOE_EOPNOTSUPP, -TOE_ENETDOWN, -TOE_EBADF.
 */
int toe_token_bind(toe_dev *dev, uint64_t token, pid_t pid);
int toe_token_drop(toe_dev *dev, uint64_t token);

/*
 * TCP: starts the three-way handshake and returns -TOE_EINPROGRESS; TOE_POLLOUT says when it is
 * done, and TOE_OPT_ERROR (or the next call) says how: 0, -TOE_ECONNREFUSED, -TOE_ETIMEDOUT,
 * -TOE_EHOSTUNREACH, -TOE_ENETUNREACH. -TOE_EALREADY while in progress, -TOE_EISCONN after.
 * UDP: sets the default peer (AF_UNSPEC dissolves it) and returns 0 at once.
 */
int toe_connect(toe_dev *dev, int sd, const struct sockaddr *addr, socklen_t len);

/* toe_send / toe_recv flags */
/* TCP send: more data follows at once (like MSG_MORE: the device may hold a partial segment) */
#define TOE_MSG_MORE 0x1u
/* recv: copy without consuming */
#define TOE_MSG_PEEK 0x2u

/*
 * TCP: copies up to `len` bytes into send buffers of the shared region and submits them; returns
 * the bytes taken (1..len), or -TOE_EAGAIN (no send space: TOE_POLLOUT says when), -TOE_EPIPE
 * (shut down for writing, reset, or the device gone), -TOE_ENOTCONN, a pending error once
 * (-TOE_ECONNRESET, -TOE_ETIMEDOUT). len 0 returns 0.
 * UDP on a connected socket: as toe_sendto with no destination.
 */
ssize_t toe_send(toe_dev *dev, int sd, const void *buf, size_t len, unsigned flags);

/*
 * Scatter-gather send (writev(2), sendmsg(2)): as toe_sendto of the concatenation of the iovcnt
 * pieces (0..TOE_IOV_MAX; iov_base may be NULL only for an empty piece), gathered straight into
 * the shared region with one copy. TCP: the bytes go out in as few SENDs (SQEs) as the send
 * buffers allow, each naming up to 8 consecutive buffers (512 KiB with ABI 1.6's 64 KiB ones)
 * whatever pieces they came from; returns the bytes taken (a prefix of the whole, 1..total), 0 for
 * an empty total, or an error as toe_send. UDP: one datagram of the total (`dst` as toe_sendto).
 * -TOE_EINVAL for a bad count, a NULL base of a non-empty piece or a total over SSIZE_MAX. The
 * iovec array and the pieces are the caller's; nothing is kept after the call.
 */
#define TOE_IOV_MAX 1024
struct iovec;
ssize_t toe_sendv(toe_dev *dev, int sd, const struct iovec *iov, int iovcnt, unsigned flags,
                  const struct sockaddr *dst, socklen_t dstlen);

/*
 * TCP: copies up to `len` received bytes into buf; returns 1..len, 0 at end of stream (the peer
 * closed and everything was read), or -TOE_EAGAIN, -TOE_ENOTCONN, a pending error once
 * (-TOE_ECONNRESET). After device loss: queued bytes, then -TOE_ECONNRESET.
 * UDP: as toe_recvfrom without the address.
 */
ssize_t toe_recv(toe_dev *dev, int sd, void *buf, size_t len, unsigned flags);

/*
 * UDP: sends one datagram of len bytes (0..65507; 0 is an empty datagram) to `dst` (NULL: the
 * connected peer, else -TOE_EDESTADDRREQ). Returns len, -TOE_EAGAIN (no send space now),
 * -TOE_EMSGSIZE, a pending soft error once (-TOE_ECONNREFUSED from an ICMP port unreachable).
 * An unbound socket is bound to an ephemeral port by its first datagram.
 */
ssize_t toe_sendto(toe_dev *dev, int sd, const void *buf, size_t len, unsigned flags,
                   const struct sockaddr *dst, socklen_t dstlen);

/*
 * UDP: receives one whole datagram: copies min(len, its size) bytes (the rest of a longer one is
 * discarded, as recvfrom(2) does) and returns the bytes copied; `from` (if not NULL) gets the
 * sender. -TOE_EAGAIN if no complete datagram is queued.
 */
ssize_t toe_recvfrom(toe_dev *dev, int sd, void *buf, size_t len, unsigned flags,
                     struct sockaddr *from, socklen_t *fromlen);

/*
 * What toe_recvmsg tells of a datagram beyond its bytes and sender (the ancillary data of
 * recvmsg(2)). The address, TOS, TTL and time are there (flag set) only if TOE_OPT_RXMETA was on
 * when the device took the datagram off its queue.
 */
#define TOE_RXMETA_DST 0x1u  /* dst: the address the datagram was sent to (IP_PKTINFO) */
#define TOE_RXMETA_TOS 0x2u  /* tos: its IPv4 TOS byte (IP_RECVTOS) */
#define TOE_RXMETA_TTL 0x4u  /* ttl: its IPv4 TTL (IP_RECVTTL) */
#define TOE_RXMETA_TIME 0x8u /* time_ns: its arrival, ns since the epoch (SO_TIMESTAMP) */
struct toe_rxmeta {
  unsigned flags;   /* TOE_RXMETA_* */
  uint32_t dst;     /* network order, as sin_addr.s_addr */
  uint8_t tos, ttl; /* as in the IP header */
  uint64_t time_ns; /* CLOCK_REALTIME nanoseconds */
  size_t full_len;  /* UDP: the datagram's whole size (more than returned: it was truncated,
                       MSG_TRUNC); TCP: the bytes returned */
};

/*
 * As toe_recvfrom, and fills *meta (if not NULL; cleared when nothing is returned) with what the
 * device said of the datagram. Returns the bytes copied, or the errors of toe_recvfrom.
 */
ssize_t toe_recvmsg(toe_dev *dev, int sd, void *buf, size_t len, unsigned flags,
                    struct sockaddr *from, socklen_t *fromlen, struct toe_rxmeta *meta);

#define TOE_SHUT_RD 0
#define TOE_SHUT_WR 1
#define TOE_SHUT_RDWR 2
/*
 * TCP half-close. SHUT_WR: the FIN follows every byte already sent; sends then fail with
 * -TOE_EPIPE. SHUT_RD: queued and later data are discarded; recv returns 0. Errors: -TOE_ENOTCONN,
 * -TOE_EINVAL (how), -TOE_EOPNOTSUPP (UDP).
 */
int toe_shutdown(toe_dev *dev, int sd, int how);

/*
 * Closes a socket; the sd is invalid at once. TCP: graceful (FIN after every byte already sent;
 * the device finishes the connection on its own), or a reset if received data was left unread or
 * TOE_OPT_LINGER_ABORT is set (RFC 9293 3.6). Connections accepted by a listener but not yet
 * taken with toe_accept are reset. Returns 0 or -TOE_EBADF.
 */
int toe_close(toe_dev *dev, int sd);

/*
 * Socket options (setsockopt/getsockopt). Values 1..11 are passed to the device's engine (with
 * the meanings of toe/tcp.h's enum toe_sockopt), 0x100.. belong to the transport, 0x200.. are this
 * library's. TCP-only ones give -TOE_ENOPROTOOPT on UDP; read-only ones on set too.
 */
#define TOE_OPT_RCVBUF 1        /* receive buffer (window) bytes in the device */
#define TOE_OPT_SNDBUF 2        /* send buffer bytes in the device */
#define TOE_OPT_KEEPALIVE 3     /* 0/1 */
#define TOE_OPT_REUSEADDR 4     /* 0/1 (set before bind) */
#define TOE_OPT_NODELAY 5       /* 0/1: no Nagle (TCP_NODELAY) */
#define TOE_OPT_KEEPIDLE 6      /* seconds */
#define TOE_OPT_KEEPINTVL 7     /* seconds */
#define TOE_OPT_KEEPCNT 8       /* probes */
#define TOE_OPT_CONGESTION 9    /* 1 NewReno, 2 CUBIC */
#define TOE_OPT_LINGER_ABORT 10 /* 0/1: close resets (SO_LINGER with a zero timeout) */
#define TOE_OPT_MAXSEG 11       /* get: the send MSS; set: clamp it (before connect) */
#define TOE_OPT_REUSEPORT 12    /* 0/1 before bind: SO_REUSEPORT (one uid's sockets share) */
#define TOE_OPT_ERROR 0x100     /* get: the pending error (0 or -TOE_E*), which is cleared */
/* Receive buffers the device may lend this socket at once; 0 pauses its deliveries (what the
 * device lent before the call returns is still read here; older devices: -TOE_EINVAL). */
#define TOE_OPT_RXBUFS 0x101
#define TOE_OPT_NREAD 0x102 /* get: bytes queued to read (here and in the device) */
/* 0/1, UDP: errors Linux reports only with IP_RECVERR (ICMP errors on an unconnected socket, a
 * failed neighbour resolution) become the pending error (ABI 1.5; -TOE_ENOPROTOOPT before) */
#define TOE_OPT_RECVERR 13
/* 0/1, UDP: the device describes each datagram received from now on (destination address, TOS,
 * TTL, arrival time) for toe_recvmsg (ABI 1.5; -TOE_ENOPROTOOPT from a device without it) */
#define TOE_OPT_RXMETA 0x103
/* 0/1, AF_INET6 sockets, before bind: IPV6_V6ONLY, no IPv4 traffic (ABI 1.7; -TOE_ENOPROTOOPT
 * on an AF_INET socket or from an older device, -TOE_EINVAL once bound) */
#define TOE_OPT_V6ONLY 14
/* send buffers this socket may fill (the library's limit; default a quarter of the send
 * buffers, at most 64) */
#define TOE_OPT_TXBUFS 0x200

/* Returns 0, or -TOE_ENOPROTOOPT, -TOE_EINVAL (bad value or state), -TOE_EBADF. */
int toe_setsockopt(toe_dev *dev, int sd, int opt, int64_t value);
int toe_getsockopt(toe_dev *dev, int sd, int opt, int64_t *value);

/*
 * Tags a socket with the program it is carried for (ABI 1.2), so that `toectl flows` shows that
 * program's pid and name instead of this process's: for a session attached with
 * origin TOE_ORIGIN_PROXY only. `comm` (up to 15 bytes are used; NULL: none) need not be
 * NUL-terminated past 16 bytes; pid 0 means unknown. Returns 0, or -TOE_EBADF, -TOE_EPERM (the
 * session is not a proxy's), -TOE_ENOPROTOOPT (the device does not grant TOE_ABI_CAP_ORIGIN),
 * -TOE_EINVAL (pid above INT32_MAX), -TOE_ENETDOWN.
 */
int toe_set_owner(toe_dev *dev, int sd, uint32_t pid, const char *comm);

/*
 * The socket's local and peer addresses as struct sockaddr_in (*len in: room, out: the full
 * size). A local address not known yet (never bound, or bound implicitly by a first UDP datagram)
 * reads as 0.0.0.0:0. getpeername: -TOE_ENOTCONN without a peer.
 */
int toe_getsockname(toe_dev *dev, int sd, struct sockaddr *addr, socklen_t *len);
int toe_getpeername(toe_dev *dev, int sd, struct sockaddr *addr, socklen_t *len);

/* ---------------------------------------------------------------------------------------------
 * Zero-copy
 */

/*
 * Send without the copy: take space in the shared region, write into it, commit.
 * toe_send_buf_get reserves send space for up to `want` bytes and fills `tb`: tb->data points
 * into the shared region, tb->cap bytes (1..want on TCP; exactly want on UDP, which needs the
 * whole datagram in one place). The space counts against TOE_OPT_TXBUFS until committed.
 * Returns 0, -TOE_EAGAIN (no space now), -TOE_EMSGSIZE (UDP: can never fit), or the errors of
 * toe_send/toe_sendto for the socket's state.
 */
struct toe_txbuf {
  void *data;        /* where to write: in the shared region */
  size_t cap;        /* bytes available at data */
  uint32_t first, n; /* library use: the buffers reserved */
  int sd;            /* library use */
};
int toe_send_buf_get(toe_dev *dev, int sd, size_t want, struct toe_txbuf *tb);

/*
 * Sends the first `len` bytes (<= tb->cap) written at tb->data (UDP: as one datagram to dst, or
 * NULL for the connected peer) and gives the space back to the library once the device has
 * them: tb->data must not be touched after this call. len 0 on TCP cancels the reservation.
 * Returns len, or an error (then the space is given back and nothing is sent).
 */
ssize_t toe_send_buf_commit(toe_dev *dev, struct toe_txbuf *tb, size_t len, unsigned flags,
                            const struct sockaddr *dst, socklen_t dstlen);

/* Gives a reservation from toe_send_buf_get back without sending anything (TCP or UDP). Returns
 * 0, or -TOE_EINVAL if `tb` holds no reservation. */
int toe_send_buf_cancel(toe_dev *dev, struct toe_txbuf *tb);

/*
 * Receive without the copy: takes the next received piece off the socket's queue and lends it to
 * the caller in place. Returns its length (TCP: >= 1; UDP: >= 0, a datagram larger than one
 * buffer comes in several pieces, TOE_ZC_MORE set on all but the last; `from` is set on each),
 * 0 on TCP at end of stream (zc->data NULL, nothing to release), or the errors of toe_recv. The
 * piece is the caller's until toe_recv_zc_release(); until then it counts against the socket's
 * TOE_OPT_RXBUFS, so hold few at a time.
 */
#define TOE_ZC_MORE 0x1u
struct toe_zc {
  const void *data; /* received bytes, in the shared region */
  size_t len;
  unsigned flags;               /* TOE_ZC_* */
  struct sockaddr_storage from; /* UDP: the sender (a sockaddr_in) */
  uint32_t id;                  /* library use: the lent buffer */
};
ssize_t toe_recv_zc(toe_dev *dev, int sd, struct toe_zc *zc);

/* Gives a piece from toe_recv_zc back (the buffer returns to the device). Returns 0, or
 * -TOE_EINVAL if `zc` is not a piece currently lent by toe_recv_zc. Safe after the socket was
 * closed and after device loss. */
int toe_recv_zc_release(toe_dev *dev, const struct toe_zc *zc);

/* ---------------------------------------------------------------------------------------------
 * Events
 */

#define TOE_POLLIN 0x001u
#define TOE_POLLOUT 0x004u
#define TOE_POLLERR 0x008u
#define TOE_POLLHUP 0x010u
#define TOE_POLLRDHUP 0x2000u

/* toe_poll's `sd` for an event of the device itself: TOE_POLLHUP|TOE_POLLERR when it is gone,
 * TOE_POLLRDHUP when it announced that it is stopping. Each is reported once. */
#define TOE_SD_DEVICE (-1)

struct toe_event {
  int sd;          /* the socket, or TOE_SD_DEVICE */
  uint32_t events; /* TOE_POLL* ready now, restricted to the interest (plus ERR and HUP) */
  void *udata;     /* the socket's pointer from toe_poll_ctl (NULL by default) */
};

/* The pollable descriptor (see EVENTS). Owned by the library: do not read or close it.
 * -TOE_EBADF if dev is NULL. */
int toe_event_fd(toe_dev *dev);

/*
 * Sets the readiness a socket reports through toe_poll (TOE_POLLIN|TOE_POLLOUT|TOE_POLLRDHUP;
 * ERR and HUP are always reported) and the pointer returned with its events. Returns 0 or
 * -TOE_EBADF.
 */
int toe_poll_ctl(toe_dev *dev, int sd, uint32_t events, void *udata);

/*
 * Processes what the device sent and reports up to `max` sockets that are ready for their
 * interest (level-triggered: a socket stays reported while it is ready; ready sockets are
 * reported round-robin when more than `max` are). Waits up to timeout_ms (0: not at all; -1:
 * until something is ready or the device is lost), spinning first (ADAPTIVE POLLING). Returns
 * the number of events (0 on timeout), or -TOE_EINVAL.
 */
int toe_poll(toe_dev *dev, struct toe_event *events, int max, int timeout_ms);

/*
 * Adaptive polling for event loops that sleep in their own epoll on toe_event_fd(): busy-polls
 * the device for up to spin_us microseconds (-1: toe_attach_opts.spin_us) with its doorbell off,
 * and returns 1 as soon as toe_poll() has something to report, 0 if nothing came (then sleep in
 * epoll: the doorbell is on again), -TOE_ENETDOWN once the device is gone and reported. Call it
 * before epoll_wait when the loop has nothing else to do.
 */
int toe_spin(toe_dev *dev, int spin_us);

/* The readiness of one socket now (TOE_POLL* bits, all of them, whatever the interest), or
 * -TOE_EBADF. */
int toe_sock_events(toe_dev *dev, int sd);

/* ---------------------------------------------------------------------------------------------
 * Blocking convenience calls. timeout_ms: -1 waits as long as it takes (re-checking the device at
 * least once a second), 0 does not wait. Each returns -TOE_ETIMEDOUT when the time is up.
 */

/* TCP connect and wait for the handshake. 0 or the connect's error. UDP: as toe_connect. */
int toe_connect_blocking(toe_dev *dev, int sd, const struct sockaddr *addr, socklen_t len,
                         int timeout_ms);

/* Waits for a connection and accepts it (see toe_accept). */
int toe_accept_blocking(toe_dev *dev, int sd, struct sockaddr *peer, socklen_t *len,
                        int timeout_ms);

/*
 * TCP: sends all len bytes. Returns len; or, when the timeout or an error stops it, the bytes
 * sent so far if any, else the error.
 */
ssize_t toe_send_all(toe_dev *dev, int sd, const void *buf, size_t len, int timeout_ms);

/* Waits until data (or EOF, or an error) is there, then as toe_recv / toe_recvfrom. */
ssize_t toe_recv_blocking(toe_dev *dev, int sd, void *buf, size_t len, int timeout_ms);
ssize_t toe_recvfrom_blocking(toe_dev *dev, int sd, void *buf, size_t len, struct sockaddr *from,
                              socklen_t *fromlen, int timeout_ms);

/*
 * Waits until every byte sent on the socket has been taken by the device (so that a following
 * toe_detach loses nothing). 0, -TOE_ETIMEDOUT, or the socket's error.
 */
int toe_flush(toe_dev *dev, int sd, int timeout_ms);

/* Waits until the socket is ready for one of `events` (or ERR/HUP). Returns the ready bits, 0 on
 * timeout, or -TOE_EBADF. */
int toe_wait(toe_dev *dev, int sd, uint32_t events, int timeout_ms);

/* ---------------------------------------------------------------------------------------------
 * Statistics (the STATS command; needs TOE_ABI_CAP_STATS)
 */

#define TOE_STATS_CLIENT 1 /* struct toe_abi_client_stats of this session (toe/abi.h) */
#define TOE_STATS_SOCKET 2 /* struct toe_abi_sock_stats of socket sd */
#define TOE_STATS_ENGINE 3 /* the engine's counters, "layer.name value\n" lines */
#define TOE_STATS_FLOWS 4  /* the device's flow table (ABI 1.1; only privileged clients get it) */
/* the device's identity, "key value\n" lines (ABI 1.3, docs/transport.md "1.3: device identity") */
#define TOE_STATS_DEVICE 7
/*
 * Copies up to len bytes of the answer into out and returns the size of the whole answer
 * (larger than len: call again with more room), or -TOE_EOPNOTSUPP (not granted), -TOE_EBADF,
 * -TOE_EMSGSIZE (len larger than the send buffers), -TOE_ENETDOWN. sd is ignored except for
 * TOE_STATS_SOCKET.
 */
ssize_t toe_stats(toe_dev *dev, int sd, int kind, void *out, size_t len);

#ifdef __cplusplus
}
#endif

#endif
