/*
 * Validation of what a host client submits (docs/transport.md "What the device validates"):
 * submission entries against the client's handle table and region, fill-ring entries against
 * buffer ownership, and the abuse count that ends a session.
 *
 * Everything works on private copies: the descriptor was copied out of the ring by the caller,
 * and the layout, handle table and buffer table live in the device's own memory.
 */
#include "transport/abi_validate.h"

#include <string.h>

/* RFC 768 over IPv4: 65535 - 20 (IP header) - 8 (UDP header). */
#define UDP_MAX_PAYLOAD 65507u

static bool all_zero(const void *p, size_t n)
{
  const uint8_t *b = p;
  for (size_t i = 0; i < n; i++)
    if (b[i])
      return false;
  return true;
}

int toe_abi_client_init(struct toe_abi_client *c, const struct toe_abi_layout *layout,
                        uint64_t caps, struct toe_abi_hslot *slots, uint32_t *bufs)
{
  if (!c || !layout || !slots || !bufs || toe_abi_layout_check(layout) < 0)
    return -TOE_EINVAL;
  memset(c, 0, sizeof(*c));
  c->layout = *layout;
  c->caps = caps;
  c->buf_end = layout->buf_off + (uint64_t)layout->buf_count * layout->buf_size;
  c->slots = slots;
  c->bufs = bufs;
  for (uint32_t i = 0; i < layout->max_handles; i++) {
    memset(&slots[i], 0, sizeof(slots[i]));
    slots[i].gen = 1;
  }
  for (uint32_t i = 0; i < layout->buf_count; i++)
    bufs[i] = TOE_ABI_BUF_HOST;
  /* One socket may not hold the whole pool: a host that stops reading one connection must not
   * starve the others of receive buffers. */
  uint32_t rx = layout->buf_count / 4;
  c->rx_max_default = rx > 64 ? 64 : rx < 1 ? 1 : rx;
  /* 1.6: large buffers must not multiply what one socket may hold; bounded in bytes too. */
  uint32_t by_bytes = TOE_ABI_RXBUFS_DEFAULT_BYTES / layout->buf_size;
  if (by_bytes < 8)
    by_bytes = 8;
  if (c->rx_max_default > by_bytes)
    c->rx_max_default = by_bytes;
  c->strike_limit = TOE_ABI_STRIKE_LIMIT;
  c->strike_window_ns = TOE_ABI_STRIKE_WINDOW_NS;
  return 0;
}

bool toe_abi_client_strike(struct toe_abi_client *c, uint64_t now_ns)
{
  if (c->strikes == 0 || now_ns - c->strike_window_start >= c->strike_window_ns) {
    c->strike_window_start = now_ns;
    c->strikes = 0;
  }
  c->strikes++;
  c->stats.strikes++;
  return c->strikes > c->strike_limit;
}

/* ------------------------------------------------------------------------------------------ */
/* Handles                                                                                    */

int toe_abi_handle_lookup(const struct toe_abi_client *c, uint32_t handle, uint32_t *index)
{
  uint32_t i = TOE_ABI_HANDLE_INDEX(handle);
  if (i >= c->layout.max_handles)
    return -TOE_EBADF;
  const struct toe_abi_hslot *s = &c->slots[i];
  if (s->state == TOE_ABI_HS_FREE || s->gen != TOE_ABI_HANDLE_GEN(handle))
    return -TOE_EBADF;
  *index = i;
  return 0;
}

int toe_abi_handle_alloc(struct toe_abi_client *c, uint8_t proto, uint16_t family, uint32_t *handle)
{
  if (proto != TOE_ABI_PROTO_TCP && proto != TOE_ABI_PROTO_UDP)
    return -TOE_EINVAL;
  uint32_t n = c->layout.max_handles;
  if (c->handles_inuse >= n)
    return -TOE_EMFILE;
  /* Round-robin from where the last search stopped: a freed slot is reused as late as possible,
   * so a stale handle meets a generation that moved on rather than a recycled socket. */
  for (uint32_t k = 0; k < n; k++) {
    uint32_t i = (c->alloc_cursor + k) % n;
    struct toe_abi_hslot *s = &c->slots[i];
    if (s->state != TOE_ABI_HS_FREE)
      continue;
    uint16_t gen = s->gen;
    memset(s, 0, sizeof(*s));
    s->gen = gen;
    s->state = TOE_ABI_HS_OPEN;
    s->proto = proto;
    s->family = family;
    s->rx_max = c->rx_max_default;
    c->alloc_cursor = (i + 1) % n;
    c->handles_inuse++;
    *handle = TOE_ABI_HANDLE(i, gen);
    return 0;
  }
  return -TOE_EMFILE; /* not reached while handles_inuse is right */
}

void toe_abi_handle_free(struct toe_abi_client *c, uint32_t index)
{
  if (index >= c->layout.max_handles || c->slots[index].state == TOE_ABI_HS_FREE)
    return;
  struct toe_abi_hslot *s = &c->slots[index];
  uint16_t gen = (uint16_t)(s->gen == 0xffffu ? 1 : s->gen + 1); /* 0 is never a generation */
  memset(s, 0, sizeof(*s));
  s->gen = gen;
  c->handles_inuse--;
}

/* ------------------------------------------------------------------------------------------ */
/* Arguments                                                                                  */

int toe_abi_check_range(const struct toe_abi_client *c, uint64_t off, uint64_t len)
{
  /* Written so that no sum can wrap: off is first bounded by buf_end, then len by what is left. */
  if (off < c->layout.buf_off || off > c->buf_end || len > c->buf_end - off)
    return -TOE_EFAULT;
  return 0;
}

int toe_abi_check_sockaddr(const struct toe_abi_client *c, const struct toe_abi_sockaddr *sa,
                           bool allow_unspec)
{
  switch (sa->family) {
  case TOE_ABI_AF_UNSPEC:
    if (!allow_unspec)
      return -TOE_EAFNOSUPPORT;
    return all_zero(sa, sizeof(*sa)) ? 0 : -TOE_EINVAL;
  case TOE_ABI_AF_INET:
    if (sa->scope_id || !all_zero(sa->addr + 4, sizeof(sa->addr) - 4))
      return -TOE_EINVAL;
    return 0;
  case TOE_ABI_AF_INET6:
    return (c->caps & TOE_ABI_CAP_IPV6) ? 0 : -TOE_EAFNOSUPPORT;
  default:
    return -TOE_EAFNOSUPPORT;
  }
}

/* A sockaddr for BIND/CONNECT/SEND on socket `s`: valid, and of the socket's family. */
static int check_sock_addr(const struct toe_abi_client *c, const struct toe_abi_hslot *s,
                           const struct toe_abi_sockaddr *sa, bool allow_unspec)
{
  int rc = toe_abi_check_sockaddr(c, sa, allow_unspec);
  if (rc < 0)
    return rc;
  if (sa->family != TOE_ABI_AF_UNSPEC && sa->family != s->family)
    return -TOE_EAFNOSUPPORT;
  return 0;
}

/* A destination (connect, sendto) must name a host and a port. */
static int check_peer(const struct toe_abi_sockaddr *sa)
{
  if (sa->family == TOE_ABI_AF_UNSPEC)
    return 0;
  if (sa->port == 0 || all_zero(sa->addr, sizeof(sa->addr)))
    return -TOE_EINVAL;
  return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Submission entries                                                                         */

static int validate_open(const struct toe_abi_client *c, const struct toe_abi_sqe *sqe)
{
  if (sqe->handle != TOE_ABI_HANDLE_NONE)
    return -TOE_EINVAL;
  if (sqe->u.open.reserved0 || sqe->u.open.reserved1 ||
      !all_zero(sqe->u.open.reserved2, sizeof(sqe->u.open.reserved2)))
    return -TOE_EINVAL;
  uint16_t fam = sqe->u.open.family;
  if (fam != TOE_ABI_AF_INET && !(fam == TOE_ABI_AF_INET6 && (c->caps & TOE_ABI_CAP_IPV6)))
    return -TOE_EAFNOSUPPORT;
  if (sqe->u.open.proto == TOE_ABI_PROTO_TCP)
    return (c->caps & TOE_ABI_CAP_TCP) ? 0 : -TOE_EPROTONOSUPPORT;
  if (sqe->u.open.proto == TOE_ABI_PROTO_UDP)
    return (c->caps & TOE_ABI_CAP_UDP) ? 0 : -TOE_EPROTONOSUPPORT;
  return -TOE_EPROTONOSUPPORT;
}

static int validate_bind(const struct toe_abi_client *c, const struct toe_abi_sqe *sqe,
                         const struct toe_abi_hslot *s)
{
  int rc = check_sock_addr(c, s, &sqe->u.addr.addr, false);
  if (rc < 0)
    return rc;
  /* Binding twice is EINVAL (as on Linux and in the engine); so is binding after connect or
   * listen, which bound the socket already. */
  return s->state == TOE_ABI_HS_OPEN ? 0 : -TOE_EINVAL;
}

static int validate_connect(const struct toe_abi_client *c, const struct toe_abi_sqe *sqe,
                            const struct toe_abi_hslot *s)
{
  const struct toe_abi_sockaddr *sa = &sqe->u.addr.addr;
  /* UDP: UNSPEC dissolves the association (connect(AF_UNSPEC)); TCP has no use for it. */
  int rc = check_sock_addr(c, s, sa, s->proto == TOE_ABI_PROTO_UDP);
  if (rc < 0)
    return rc;
  rc = check_peer(sa);
  if (rc < 0)
    return rc;
  if (s->proto == TOE_ABI_PROTO_UDP)
    return 0; /* a UDP socket may be re-connected in any state */
  switch (s->state) {
  case TOE_ABI_HS_OPEN:
  case TOE_ABI_HS_BOUND:
    return 0;
  case TOE_ABI_HS_CONNECTING:
    return -TOE_EALREADY;
  default: /* connected, or a listener: Linux says EISCONN for both */
    return -TOE_EISCONN;
  }
}

static int validate_send(const struct toe_abi_client *c, const struct toe_abi_sqe *sqe,
                         const struct toe_abi_hslot *s)
{
  if (sqe->u.send.send_flags & ~TOE_ABI_SEND_F_ALL)
    return -TOE_EINVAL;
  int rc = toe_abi_check_range(c, sqe->u.send.buf_off, sqe->u.send.len);
  if (rc < 0)
    return rc;
  const struct toe_abi_sockaddr *dst = &sqe->u.send.dst;
  if (s->proto == TOE_ABI_PROTO_TCP) {
    /* A stream has one peer: naming a destination is a host bug. */
    if (!all_zero(dst, sizeof(*dst)))
      return -TOE_EISCONN;
    if (s->flags & TOE_ABI_HF_SHUT_WR)
      return -TOE_EPIPE;
    return s->state == TOE_ABI_HS_CONNECTED ? 0 : -TOE_ENOTCONN;
  }
  if (sqe->u.send.send_flags & TOE_ABI_SEND_F_MORE) /* no corking of datagrams */
    return -TOE_EINVAL;
  rc = check_sock_addr(c, s, dst, true);
  if (rc < 0)
    return rc;
  rc = check_peer(dst);
  if (rc < 0)
    return rc;
  if (sqe->u.send.len > UDP_MAX_PAYLOAD)
    return -TOE_EMSGSIZE;
  if (dst->family == TOE_ABI_AF_UNSPEC && s->state != TOE_ABI_HS_CONNECTED)
    return -TOE_EDESTADDRREQ;
  return 0;
}

/* Options by protocol: the TCP ones are meaningless on UDP sockets. */
static int check_opt(const struct toe_abi_hslot *s, uint32_t opt, bool set, int64_t value,
                     uint32_t buf_count, uint64_t caps)
{
  switch (opt) {
  case TOE_ABI_SO_RCVBUF:
  case TOE_ABI_SO_SNDBUF:
  case TOE_ABI_SO_REUSEADDR:
  case TOE_ABI_SO_REUSEPORT:
    return 0;
  case TOE_ABI_SO_KEEPALIVE:
  case TOE_ABI_TCP_NODELAY:
  case TOE_ABI_TCP_KEEPIDLE:
  case TOE_ABI_TCP_KEEPINTVL:
  case TOE_ABI_TCP_KEEPCNT:
  case TOE_ABI_TCP_CONGESTION:
  case TOE_ABI_SO_LINGER_ABORT:
  case TOE_ABI_TCP_MAXSEG:
    return s->proto == TOE_ABI_PROTO_TCP ? 0 : -TOE_ENOPROTOOPT;
  case TOE_ABI_SO_ERROR:
  case TOE_ABI_SO_NREAD:
    return set ? -TOE_ENOPROTOOPT : 0; /* read-only */
  case TOE_ABI_SO_RXBUFS:
    /* 0 pauses the socket's deliveries (a holder of a shared connection that is about to end
     * takes back what was lent before it hands the rest on: docs/transport.md). */
    if (set && (value < 0 || value > (int64_t)buf_count))
      return -TOE_EINVAL;
    return 0;
  case TOE_ABI_SO_OWNER_PID:
    if (!(caps & TOE_ABI_CAP_ORIGIN))
      return -TOE_ENOPROTOOPT;
    if (set && (value < 0 || value > INT32_MAX))
      return -TOE_EINVAL;
    return 0;
  case TOE_ABI_SO_OWNER_COMM_LO:
  case TOE_ABI_SO_OWNER_COMM_HI:
    return caps & TOE_ABI_CAP_ORIGIN ? 0 : -TOE_ENOPROTOOPT;
  case TOE_ABI_SO_RXMETA: /* 1.5: datagrams only (a stream has no datagram to describe) */
  case TOE_ABI_IP_RECVERR:
    if (!(caps & TOE_ABI_CAP_RXMETA) || s->proto != TOE_ABI_PROTO_UDP)
      return -TOE_ENOPROTOOPT;
    if (set && value != 0 && value != 1)
      return -TOE_EINVAL;
    return 0;
  case TOE_ABI_IPV6_V6ONLY: /* 1.7: an AF_INET6 socket's, TCP or UDP (the engine: before bind) */
    if (!(caps & TOE_ABI_CAP_IPV6) || s->family != TOE_ABI_AF_INET6)
      return -TOE_ENOPROTOOPT;
    if (set && value != 0 && value != 1)
      return -TOE_EINVAL;
    return 0;
  default:
    return -TOE_ENOPROTOOPT;
  }
}

static int validate_stats(const struct toe_abi_client *c, const struct toe_abi_sqe *sqe,
                          uint32_t *index)
{
  if (!(c->caps & TOE_ABI_CAP_STATS))
    return -TOE_EOPNOTSUPP;
  if (!all_zero(sqe->u.stats.reserved, sizeof(sqe->u.stats.reserved)))
    return -TOE_EINVAL;
  switch (sqe->u.stats.kind) {
  case TOE_ABI_STATS_FILTERS:
    /* 1.2: the steering table, like the flow table, only for a session granted it. */
    if (!(c->caps & TOE_ABI_CAP_FILTERS))
      return -TOE_EINVAL;
    if (sqe->handle != TOE_ABI_HANDLE_NONE)
      return -TOE_EINVAL;
    break;
  case TOE_ABI_STATS_DEVICE:
    /* 1.3: the device's identity, for a session granted it. */
    if (!(c->caps & TOE_ABI_CAP_DEVICE))
      return -TOE_EINVAL;
    if (sqe->handle != TOE_ABI_HANDLE_NONE)
      return -TOE_EINVAL;
    break;
  case TOE_ABI_STATS_FLOWS:
    /* Other clients' flows: only for a session granted the capability (1.1); for any other it
     * is an unknown kind. */
    if (!(c->caps & TOE_ABI_CAP_FLOWS))
      return -TOE_EINVAL;
    /* fall through */
  case TOE_ABI_STATS_CLIENT:
  case TOE_ABI_STATS_ENGINE:
    if (sqe->handle != TOE_ABI_HANDLE_NONE)
      return -TOE_EINVAL;
    break;
  case TOE_ABI_STATS_SOCKET: {
    int rc = toe_abi_handle_lookup(c, sqe->handle, index);
    if (rc < 0)
      return rc;
    break;
  }
  default:
    return -TOE_EINVAL;
  }
  return toe_abi_check_range(c, sqe->u.stats.buf_off, sqe->u.stats.len);
}

/* 1.2 CAPTURE: device-wide (no handle), for a session granted the capability; START names the
 * filter text (1.4: or a BPF program) in the buffer area, STOP nothing. (The filter's syntax and
 * the program's instructions are the device's to check: a bad one is an engine-style error, not a
 * strike.) */
static int validate_capture(const struct toe_abi_client *c, const struct toe_abi_sqe *sqe)
{
  if (!(c->caps & TOE_ABI_CAP_CAPTURE))
    return -TOE_EOPNOTSUPP;
  if (sqe->handle != TOE_ABI_HANDLE_NONE ||
      !all_zero(sqe->u.capture.reserved, sizeof(sqe->u.capture.reserved)) ||
      (sqe->u.capture.capture_flags & ~TOE_ABI_CAPTURE_F_ALL))
    return -TOE_EINVAL;
  uint32_t flags = sqe->u.capture.capture_flags;
  if (flags & TOE_ABI_CAPTURE_F_STOP)
    return flags != TOE_ABI_CAPTURE_F_STOP || sqe->u.capture.buf_off || sqe->u.capture.len ||
                   sqe->u.capture.snaplen
               ? -TOE_EINVAL
               : 0;
  /* 1.4: a BPF program and direction-tagged records, only for a session granted them. */
  if ((flags & (TOE_ABI_CAPTURE_F_BPF | TOE_ABI_CAPTURE_F_DIR)) &&
      !(c->caps & TOE_ABI_CAP_CAPTURE_BPF))
    return -TOE_EOPNOTSUPP;
  if (flags & TOE_ABI_CAPTURE_F_BPF) {
    uint32_t len = sqe->u.capture.len;
    if (len == 0 || len % sizeof(struct toe_abi_bpf_insn) ||
        len > TOE_ABI_CAPTURE_BPF_MAX * sizeof(struct toe_abi_bpf_insn))
      return -TOE_EINVAL;
    return toe_abi_check_range(c, sqe->u.capture.buf_off, len);
  }
  if (sqe->u.capture.len > TOE_ABI_CAPTURE_FILTER_MAX)
    return -TOE_EINVAL;
  if (sqe->u.capture.len == 0)
    return sqe->u.capture.buf_off ? -TOE_EINVAL : 0;
  return toe_abi_check_range(c, sqe->u.capture.buf_off, sqe->u.capture.len);
}

/* Opcodes this version defines (1..15, no gaps). */
static bool op_known(uint8_t op)
{
  return op >= TOE_ABI_OP_NOP && op < TOE_ABI_OP__COUNT;
}

/* Reserved bytes of each op that names a socket (OPEN, NOP and STATS check their own). */
static bool reserved_ok(const struct toe_abi_sqe *sqe)
{
  switch (sqe->opcode) {
  case TOE_ABI_OP_BIND:
  case TOE_ABI_OP_CONNECT:
    return all_zero(sqe->u.addr.reserved, sizeof(sqe->u.addr.reserved));
  case TOE_ABI_OP_LISTEN:
    return all_zero(sqe->u.listen.reserved, sizeof(sqe->u.listen.reserved));
  case TOE_ABI_OP_ACCEPT:
    return all_zero(sqe->u.accept.reserved, sizeof(sqe->u.accept.reserved));
  case TOE_ABI_OP_SEND:
    return all_zero(sqe->u.send.reserved, sizeof(sqe->u.send.reserved));
  case TOE_ABI_OP_SHUTDOWN:
    return all_zero(sqe->u.shutdown.reserved, sizeof(sqe->u.shutdown.reserved));
  case TOE_ABI_OP_CLOSE:
    return all_zero(sqe->u.close.reserved, sizeof(sqe->u.close.reserved));
  case TOE_ABI_OP_SETSOCKOPT:
    return !sqe->u.sockopt.reserved0 &&
           all_zero(sqe->u.sockopt.reserved, sizeof(sqe->u.sockopt.reserved));
  case TOE_ABI_OP_GETSOCKOPT: /* GET carries no value */
    return !sqe->u.sockopt.reserved0 && !sqe->u.sockopt.value &&
           all_zero(sqe->u.sockopt.reserved, sizeof(sqe->u.sockopt.reserved));
  case TOE_ABI_OP_SHARE: /* no arguments */
    return all_zero(sqe->u.raw, sizeof(sqe->u.raw));
  default:
    return false;
  }
}

int toe_abi_validate_sqe(const struct toe_abi_client *c, const struct toe_abi_sqe *sqe,
                         uint32_t *index)
{
  uint32_t dummy;
  if (!index)
    index = &dummy;
  *index = UINT32_MAX;

  if (!op_known(sqe->opcode))
    return -TOE_EOPNOTSUPP;
  if (sqe->flags || sqe->reserved0) /* no SQE flags are defined in 1.0 */
    return -TOE_EINVAL;

  switch (sqe->opcode) {
  case TOE_ABI_OP_NOP:
    return sqe->handle == TOE_ABI_HANDLE_NONE && all_zero(sqe->u.raw, sizeof(sqe->u.raw))
               ? 0
               : -TOE_EINVAL;
  case TOE_ABI_OP_OPEN:
    return validate_open(c, sqe);
  case TOE_ABI_OP_STATS:
    return validate_stats(c, sqe, index);
  case TOE_ABI_OP_CAPTURE:
    return validate_capture(c, sqe);
  case TOE_ABI_OP_ADOPT:
    /* Names no socket of this client: the token is checked by the device (unknown, expired,
     * used, another uid's: -ENOENT). */
    if (sqe->handle != TOE_ABI_HANDLE_NONE ||
        !all_zero(sqe->u.adopt.reserved, sizeof(sqe->u.adopt.reserved)))
      return -TOE_EINVAL;
    if (!(c->caps & TOE_ABI_CAP_SHARE))
      return -TOE_EOPNOTSUPP;
    /* At most one flag; a pid only with F_BIND; a flagged ADOPT makes no handle. */
    if (sqe->u.adopt.adopt_flags != 0 && sqe->u.adopt.adopt_flags != TOE_ABI_ADOPT_F_BIND &&
        sqe->u.adopt.adopt_flags != TOE_ABI_ADOPT_F_DROP)
      return -TOE_EINVAL;
    if (sqe->u.adopt.adopt_flags != TOE_ABI_ADOPT_F_BIND && sqe->u.adopt.pid)
      return -TOE_EINVAL;
    if (sqe->u.adopt.pid > INT32_MAX)
      return -TOE_EINVAL;
    return sqe->u.adopt.token ? 0 : -TOE_EINVAL;
  default:
    break;
  }

  /* Every other op acts on one socket of this client. */
  if (!reserved_ok(sqe))
    return -TOE_EINVAL;
  uint32_t i;
  int rc = toe_abi_handle_lookup(c, sqe->handle, &i);
  if (rc < 0)
    return rc;
  const struct toe_abi_hslot *s = &c->slots[i];
  const bool tcp = s->proto == TOE_ABI_PROTO_TCP;

  switch (sqe->opcode) {
  case TOE_ABI_OP_BIND:
    rc = validate_bind(c, sqe, s);
    break;
  case TOE_ABI_OP_LISTEN:
    /* The engine listens on a bound socket only (toe_tcp_listen). */
    rc = !tcp ? -TOE_EOPNOTSUPP : s->state == TOE_ABI_HS_BOUND ? 0 : -TOE_EINVAL;
    break;
  case TOE_ABI_OP_CONNECT:
    rc = validate_connect(c, sqe, s);
    break;
  case TOE_ABI_OP_ACCEPT:
    rc = !tcp ? -TOE_EOPNOTSUPP : s->state == TOE_ABI_HS_LISTENING ? 0 : -TOE_EINVAL;
    break;
  case TOE_ABI_OP_SEND:
    rc = validate_send(c, sqe, s);
    break;
  case TOE_ABI_OP_SHUTDOWN:
    if (sqe->u.shutdown.how > TOE_ABI_SHUT_RDWR)
      rc = -TOE_EINVAL;
    else if (!tcp)
      rc = -TOE_EOPNOTSUPP;
    else
      rc =
          s->state == TOE_ABI_HS_CONNECTED || s->state == TOE_ABI_HS_CONNECTING ? 0 : -TOE_ENOTCONN;
    break;
  case TOE_ABI_OP_CLOSE:
    rc = (sqe->u.close.close_flags & ~TOE_ABI_CLOSE_F_ALL) ? -TOE_EINVAL : 0;
    break;
  case TOE_ABI_OP_SETSOCKOPT:
  case TOE_ABI_OP_GETSOCKOPT:
    rc = check_opt(s, sqe->u.sockopt.opt, sqe->opcode == TOE_ABI_OP_SETSOCKOPT,
                   sqe->u.sockopt.value, c->layout.buf_count, c->caps);
    break;
  case TOE_ABI_OP_SHARE:
    /* Listeners, connections and UDP sockets: their state is the device's alone. A connection
     * being made is not (its CONNECT completes in this session only). */
    if (!(c->caps & TOE_ABI_CAP_SHARE))
      rc = -TOE_EOPNOTSUPP;
    else if (tcp)
      rc = s->state == TOE_ABI_HS_LISTENING || s->state == TOE_ABI_HS_CONNECTED ? 0
                                                                                : -TOE_EOPNOTSUPP;
    else
      rc = 0;
    break;
  default:
    rc = -TOE_EOPNOTSUPP;
    break;
  }
  if (rc == 0)
    *index = i;
  return rc;
}

void toe_abi_cqe_error(struct toe_abi_cqe *cqe, const struct toe_abi_sqe *sqe, int err)
{
  memset(cqe, 0, sizeof(*cqe));
  cqe->user_data = sqe->user_data;
  cqe->res = err;
  cqe->handle = sqe->handle;
  cqe->type = TOE_ABI_CQE_OP;
  cqe->opcode = sqe->opcode;
  cqe->flags = TOE_ABI_CQE_F_VALIDATION;
}

/* ------------------------------------------------------------------------------------------ */
/* Buffers                                                                                    */

int toe_abi_fill_take(struct toe_abi_client *c, uint32_t buf_id)
{
  if (buf_id >= c->layout.buf_count) {
    c->stats.fill_bad++;
    return -TOE_EFAULT;
  }
  uint32_t st = c->bufs[buf_id];
  if (st == TOE_ABI_BUF_DEVICE) {
    c->stats.fill_bad++;
    return -TOE_EALREADY;
  }
  if (st != TOE_ABI_BUF_HOST) {
    /* The return is the socket's receive credit; a socket closed (or replaced by a newer
     * generation) since the loan has no credit to get back. */
    uint32_t i;
    if (toe_abi_handle_lookup(c, st, &i) == 0 && c->slots[i].rx_lent > 0)
      c->slots[i].rx_lent--;
  }
  c->bufs[buf_id] = TOE_ABI_BUF_DEVICE;
  c->stats.fill_taken++;
  return 0;
}

int toe_abi_buf_lend(struct toe_abi_client *c, uint32_t buf_id, uint32_t handle)
{
  uint32_t i;
  if (buf_id >= c->layout.buf_count || c->bufs[buf_id] != TOE_ABI_BUF_DEVICE ||
      toe_abi_handle_lookup(c, handle, &i) < 0)
    return -TOE_EINVAL;
  c->bufs[buf_id] = handle;
  c->slots[i].rx_lent++;
  c->stats.bufs_lent++;
  return 0;
}

int toe_abi_buf_give(struct toe_abi_client *c, uint32_t buf_id)
{
  if (buf_id >= c->layout.buf_count || c->bufs[buf_id] != TOE_ABI_BUF_DEVICE)
    return -TOE_EINVAL;
  c->bufs[buf_id] = TOE_ABI_BUF_HOST;
  c->stats.bufs_lent++;
  return 0;
}
