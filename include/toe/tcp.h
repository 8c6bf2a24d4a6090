/*
 * TCP sockets of the engine (RFC 9293 and the RFCs cited in src/engine/tcp*.c).
 *
 * Same rules as the rest of include/toe/engine.h: single-threaded per stack, calls act at
 * toe_stack_now(), errors are negative TOE_E* values, readiness comes through the sock_event
 * callback:
 *   TOE_EV_READABLE  data to receive, EOF (peer's FIN), a pending error, or (listener) a connection
 *                    to accept;
 *   TOE_EV_WRITABLE  a connect completed, or send-buffer space rose above the low-water mark;
 *   TOE_EV_ERROR     the connection failed or was reset (toe_sock_error() says why);
 *   TOE_EV_HUP       the connection is fully closed (both directions, or reset): no more events.
 *
 * Buffers: sent bytes are copied into pbufs from the stack's pool and kept until acknowledged;
 * received payload stays in the frame buffers it arrived in until the application reads it (no
 * copy on the receive path inside the engine).
 */
#ifndef TOE_TCP_H
#define TOE_TCP_H

#include "toe/engine.h"

#include <stddef.h>
#include <stdint.h>

#define TOE_EV_HUP 0x08u

/* TCP states (RFC 9293 3.3.2). Values are ABI (reported in flow tables). */
enum toe_tcp_state {
  TOE_TCP_CLOSED = 0,
  TOE_TCP_LISTEN,
  TOE_TCP_SYN_SENT,
  TOE_TCP_SYN_RECEIVED,
  TOE_TCP_ESTABLISHED,
  TOE_TCP_FIN_WAIT_1,
  TOE_TCP_FIN_WAIT_2,
  TOE_TCP_CLOSE_WAIT,
  TOE_TCP_CLOSING,
  TOE_TCP_LAST_ACK,
  TOE_TCP_TIME_WAIT,
};

/* Short upper-case name of a state ("ESTABLISHED"), never NULL. */
const char *toe_tcp_state_name(int state);

/* Opens a TCP socket (CLOSED). Returns 0 and *out, or -TOE_EMFILE when tcp_socks are in use. */
int toe_tcp_open(struct toe_stack *st, void *user, struct toe_sock **out);

/*
 * toe_sock_bind() and toe_sock_connect() (engine.h) work on TCP sockets too. connect starts the
 * three-way handshake and returns -TOE_EINPROGRESS; completion is TOE_EV_WRITABLE, failure
 * TOE_EV_ERROR with toe_sock_error() = -TOE_ECONNREFUSED (RST), -TOE_ETIMEDOUT (no answer),
 * -TOE_EHOSTUNREACH/-TOE_ENETUNREACH (ICMP or ARP failure).
 */

/*
 * Makes a bound socket a listener with an accept queue of `backlog` connections (clamped to
 * 1..cfg.tcp_max_backlog). Errors: -TOE_EINVAL not bound or not CLOSED.
 */
int toe_tcp_listen(struct toe_stack *st, struct toe_sock *s, int backlog);

/*
 * Takes an established connection from a listener's accept queue; `user` becomes its event
 * pointer. Returns 0 and *out, -TOE_EAGAIN if the queue is empty, -TOE_EINVAL not a listener.
 */
int toe_tcp_accept(struct toe_stack *st, struct toe_sock *listener, void *user,
                   struct toe_sock **out);

/* toe_tcp_send flags */
#define TOE_SEND_MORE 0x1u /* more data follows at once: hold a partial segment (like MSG_MORE) */

/*
 * Copies up to `len` bytes into the send buffer and transmits what the windows allow.
 * Returns the bytes accepted (possibly fewer than len), -TOE_EAGAIN if the buffer is full,
 * -TOE_ENOTCONN before the connection is established (SYN_SENT queues nothing), -TOE_EPIPE after
 * shutdown(write) or close, -TOE_ECONNRESET after a reset, -TOE_ENOBUFS if the pool is empty.
 */
int toe_tcp_send(struct toe_stack *st, struct toe_sock *s, const void *data, size_t len,
                 unsigned flags);

/*
 * Copies up to `cap` received bytes into `buf` and releases their buffers (which may open the
 * receive window: a window update is sent when it grows enough, RFC 9293 3.8.6.2.2).
 * Returns bytes copied, 0 at end of stream (peer closed and everything read), -TOE_EAGAIN if
 * nothing is queued yet, -TOE_ECONNRESET after a reset, -TOE_ENOTCONN if never connected.
 */
int toe_tcp_recv(struct toe_stack *st, struct toe_sock *s, void *buf, size_t cap);

/* Bytes queued to receive / held in the send buffer (unacknowledged + unsent). */
uint32_t toe_tcp_rx_pending(const struct toe_sock *s);
uint32_t toe_tcp_tx_pending(const struct toe_sock *s);
/* Bytes that toe_tcp_send() would accept now. */
uint32_t toe_tcp_tx_space(const struct toe_sock *s);

#define TOE_SHUT_RD 0
#define TOE_SHUT_WR 1
#define TOE_SHUT_RDWR 2
/* Half-close: SHUT_WR sends FIN after the queued data; SHUT_RD discards further data. */
int toe_tcp_shutdown(struct toe_stack *st, struct toe_sock *s, int how);

/*
 * Aborts the connection: sends RST (if synchronized), frees everything, and invalidates `s`.
 * toe_sock_close() on a TCP socket is the graceful close: FIN after queued data, the engine keeps
 * the connection until the handshake completes (then TIME_WAIT is held in a compact form), and `s`
 * is invalid to the caller at once. Unread received data at close causes a RST (RFC 9293 3.6, RFC
 * 2525 2.17).
 */
void toe_tcp_abort(struct toe_stack *st, struct toe_sock *s);

/* Socket options (toe_sock_setopt / toe_sock_getopt). */
enum toe_sockopt {
  TOE_SO_RCVBUF = 1,   /* receive buffer bytes (window), clamped to cfg limits */
  TOE_SO_SNDBUF,       /* send buffer bytes */
  TOE_SO_KEEPALIVE,    /* 0/1 */
  TOE_SO_REUSEADDR,    /* 0/1: TCP: bind may reuse a port held by TIME_WAIT connections;
                          UDP (its only option): sockets that all set it share a port */
  TOE_TCP_NODELAY,     /* 0/1: disable Nagle */
  TOE_TCP_KEEPIDLE,    /* seconds before the first keepalive probe */
  TOE_TCP_KEEPINTVL,   /* seconds between probes */
  TOE_TCP_KEEPCNT,     /* unanswered probes before the connection is dropped */
  TOE_TCP_CONGESTION,  /* TOE_CC_NEWRENO / TOE_CC_CUBIC */
  TOE_SO_LINGER_ABORT, /* 0/1: close() aborts with RST (SO_LINGER with timeout 0) */
  TOE_TCP_MAXSEG,      /* read: current send MSS; write: clamp it (before connect) */
  TOE_SO_REUSEPORT,    /* 0/1 (TCP and UDP; set before bind): sockets of one owner that all set
                          it share a port, new flows spread by a hash of the 4-tuple */
  TOE_IP_RECVERR,      /* 0/1, UDP only: also be told of errors Linux reports only with IP_RECVERR
                          (a failed neighbour resolution's EHOSTUNREACH), as the pending error */
  TOE_IPV6_V6ONLY,     /* 0/1 (TCP and UDP; before bind): an IPv6 socket that takes no IPv4
                          traffic (IPV6_V6ONLY); setting it makes the socket an IPv6 one */
};
#define TOE_CC_NEWRENO 1
#define TOE_CC_CUBIC 2

/* Errors: -TOE_ENOPROTOOPT unknown option (on UDP: all but TOE_SO_REUSEADDR, TOE_SO_REUSEPORT,
 * TOE_IP_RECVERR and TOE_IPV6_V6ONLY; TOE_IP_RECVERR on TCP), -TOE_EINVAL bad
 * value or state, -TOE_EBADF not an open socket. */
int toe_sock_setopt(struct toe_stack *st, struct toe_sock *s, int opt, int64_t value);
int toe_sock_getopt(const struct toe_stack *st, const struct toe_sock *s, int opt, int64_t *value);

/* A connection's state and figures (like Linux's struct tcp_info). */
struct toe_tcp_info {
  uint8_t state; /* enum toe_tcp_state */
  uint8_t snd_wscale;
  uint8_t rcv_wscale;
  uint8_t options; /* TOE_TCPI_OPT_* negotiated */
  uint32_t snd_mss;
  uint32_t rcv_mss;
  uint32_t rtt_us; /* smoothed RTT */
  uint32_t rttvar_us;
  uint32_t rto_us;
  uint32_t snd_cwnd;      /* bytes */
  uint32_t snd_ssthresh;  /* bytes */
  uint32_t snd_wnd;       /* peer's window, bytes */
  uint32_t rcv_wnd;       /* our advertised window, bytes */
  uint32_t unacked;       /* bytes in flight */
  uint32_t sacked;        /* bytes SACKed */
  uint32_t lost;          /* bytes marked lost */
  uint32_t retrans;       /* bytes retransmitted not yet acked */
  uint32_t rx_queued;     /* bytes waiting to be read */
  uint32_t tx_queued;     /* bytes in the send buffer */
  uint64_t total_retrans; /* segments retransmitted over the life */
  uint64_t bytes_acked;
  uint64_t bytes_received;
  uint32_t rto_count; /* RTO expirations */
  uint32_t ca_algo;   /* TOE_CC_* */
  uint32_t sndbuf;    /* send buffer size now, bytes (grows by auto-tuning unless locked) */
};
#define TOE_TCPI_OPT_TIMESTAMPS 0x1
#define TOE_TCPI_OPT_SACK 0x2
#define TOE_TCPI_OPT_WSCALE 0x4

int toe_tcp_get_info(const struct toe_stack *st, const struct toe_sock *s,
                     struct toe_tcp_info *info);

/*
 * Visits every TCP connection (listeners, connections, TIME_WAIT) for flow tables.
 * `info` is filled for each; `s` is NULL for TIME_WAIT entries (which have no socket).
 */
typedef void (*toe_tcp_visit_fn)(void *arg, const struct toe_sock *s,
                                 const struct toe_sockaddr *local,
                                 const struct toe_sockaddr *remote,
                                 const struct toe_tcp_info *info);
void toe_tcp_visit(const struct toe_stack *st, toe_tcp_visit_fn fn, void *arg);

#endif
