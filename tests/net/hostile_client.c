/*
 * A raw client of toed's transport (docs/transport.md), for tests/net/test_transport_hostile.sh.
 * It speaks the protocol itself (no libtoe), so it can do what a correct library never would.
 * Every mode prints "key value" lines; the shell decides what passes. Exit status 0 unless the
 * arguments were bad (2) or setting up failed (1).
 *
 *   hello CTL                  bad handshakes: short, wrong magic/major, bad geometry, passed fds,
 *                              silence; each refused (status) or dropped, and a good one after
 *   abuse CTL HOST             garbage and hostile descriptors on one session: random SQEs,
 *                              zeroed SQE, reserved bytes, out-of-range and stale handles,
 *                              offsets in the header / past the region / wrapping, bad fill
 *                              entries, scribbling over the rings' entries and the header; each
 *                              must give an error completion (or be ignored) and the session must
 *                              keep working; then a flood of bad SQEs must end the session
 *   kill-index CTL             a producer index that claims more than the ring holds: the session
 *                              ends at once (protocol violation)
 *   kill-ctlmsg CTL            a message on the control socket after the hello: the session ends
 *   scribble CTL SEED          random bytes over the whole region, indices included; toed must
 *                              survive (the session may end)
 *   tcp CTL HOST PORT BYTES    a well-behaved client: connect through the device to an echo
 *                              server, send BYTES of a known pattern, check the echo, half-close
 *   udp CTL HOST PORT COUNT    datagrams of many sizes (pieces of 2 KiB buffers) to a UDP echo
 *   serve CTL PORT CONNS       listen, accept CONNS connections, echo each (sending from the lent
 *                              receive buffers), close after the peer's FIN
 *   hold CTL HOST PORT         connect, send a little, then wait to be killed (client death)
 *   stats CTL                  STATS CLIENT/ENGINE/FLOWS
 *   hoard CTL HOST PORT CONNS RCVBUF UPORT
 *                              CONNS connections with SO_RCVBUF RCVBUF whose receive buffers are
 *                              never returned (the CQ is never read after the connects), and a
 *                              UDP socket bound to UPORT that is never read
 *
 * CTL is the control socket path. HOST is an IPv4 address.
 */
#define _GNU_SOURCE

#include "common/prng.h"
#include "toe/abi.h"
#include "transport/abi_validate.h"
#include "transport/ring.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static const char *ctl_path;

static void out(const char *key, long long v)
{
  printf("%s %lld\n", key, v);
  fflush(stdout);
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "hostile_client: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  exit(1);
}

static uint64_t now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng(void)
{
  return toe_prng_next(&rng_state);
}

/* The byte at stream position i of the test pattern. */
static uint8_t pattern(uint64_t i)
{
  uint32_t w = (uint32_t)(i >> 2) * 0x9e3779b1u;
  return (uint8_t)(w >> ((i & 3) * 8));
}

static struct toe_abi_sockaddr inet_addr4(const char *host, uint16_t port)
{
  struct toe_abi_sockaddr a;
  memset(&a, 0, sizeof a);
  struct in_addr in;
  if (inet_pton(AF_INET, host, &in) != 1)
    die("not an IPv4 address: %s", host);
  a.family = TOE_ABI_AF_INET;
  a.port = port;
  memcpy(a.addr, &in.s_addr, 4); /* network order already */
  return a;
}

/* ------------------------------------------------------------------------------------------ */
/* A session                                                                                  */

struct sess {
  int fd, kick, notify;
  uint8_t *region;
  size_t size;
  struct toe_abi_hello_reply rep;
  struct toe_abi_layout L;
  struct toe_ring sq, cq, fq;
  uint64_t ud;
  bool gone;
};

static struct toe_abi_hello hello_default(void)
{
  struct toe_abi_hello h;
  memset(&h, 0, sizeof h);
  h.magic = TOE_ABI_HELLO_MAGIC;
  h.abi_major = TOE_ABI_MAJOR;
  h.abi_minor = TOE_ABI_MINOR;
  h.size = sizeof h;
  h.caps = TOE_ABI_CAPS_1_1;
  h.pid = (uint32_t)getpid();
  memcpy(h.comm, "hostile_client", 14);
  return h;
}

static int ctl_connect(void)
{
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", ctl_path);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    int e = -errno;
    close(fd);
    return e;
  }
  return fd;
}

/* Receives a reply (and up to 3 fds) within `ms`. Returns its length, 0 on EOF, -errno. */
static ssize_t recv_reply(int fd, struct toe_abi_hello_reply *rep, int fds[3], int ms)
{
  struct pollfd p = {fd, POLLIN, 0};
  if (poll(&p, 1, ms) <= 0)
    return -ETIMEDOUT;
  union {
    char b[CMSG_SPACE(sizeof(int) * 3)];
    struct cmsghdr align;
  } cbuf;
  struct iovec iov = {rep, sizeof(*rep)};
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = cbuf.b;
  msg.msg_controllen = sizeof cbuf.b;
  memset(rep, 0, sizeof(*rep));
  ssize_t n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
  if (n < 0)
    return -errno;
  fds[0] = fds[1] = fds[2] = -1;
  struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
  if (cm && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
    size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    memcpy(fds, CMSG_DATA(cm), (k > 3 ? 3 : k) * sizeof(int));
  }
  return n;
}

/* Attaches with hello `h`. Returns 0 or the refusal's status / -errno. */
static int sess_attach(struct sess *s, const struct toe_abi_hello *h)
{
  memset(s, 0, sizeof(*s));
  s->fd = s->kick = s->notify = -1;
  s->fd = ctl_connect();
  if (s->fd < 0)
    return s->fd;
  if (send(s->fd, h, sizeof(*h), MSG_NOSIGNAL) != (ssize_t)sizeof(*h))
    return -errno;
  int fds[3];
  ssize_t n = recv_reply(s->fd, &s->rep, fds, 5000);
  if (n <= 0)
    return n == 0 ? -ECONNRESET : (int)n;
  int rc = toe_abi_reply_check(&s->rep, (size_t)n, h->caps);
  if (rc < 0)
    return rc;
  if (fds[0] < 0 || fds[1] < 0 || fds[2] < 0)
    return -EPROTO;
  s->L = s->rep.layout;
  s->size = s->L.region_size;
  void *m = mmap(NULL, s->size, PROT_READ | PROT_WRITE, MAP_SHARED, fds[0], 0);
  close(fds[0]);
  if (m == MAP_FAILED)
    return -errno;
  s->region = m;
  s->kick = fds[1];
  s->notify = fds[2];
  rc = toe_ring_init_prod(&s->sq, (struct toe_abi_ring_ctl *)(s->region + s->L.sq_ctl_off),
                          s->region + s->L.sq_off, s->L.sq_entries, TOE_ABI_SQE_SIZE);
  if (rc == 0)
    rc = toe_ring_init_cons(&s->cq, (struct toe_abi_ring_ctl *)(s->region + s->L.cq_ctl_off),
                            s->region + s->L.cq_off, s->L.cq_entries, TOE_ABI_CQE_SIZE);
  if (rc == 0)
    rc = toe_ring_init_prod(&s->fq, (struct toe_abi_ring_ctl *)(s->region + s->L.fq_ctl_off),
                            s->region + s->L.fq_off, s->L.fq_entries, TOE_ABI_FQE_SIZE);
  return rc;
}

static void sess_close(struct sess *s)
{
  if (s->region)
    munmap(s->region, s->size);
  if (s->fd >= 0)
    close(s->fd);
  if (s->kick >= 0)
    close(s->kick);
  if (s->notify >= 0)
    close(s->notify);
  memset(s, 0, sizeof(*s));
  s->fd = s->kick = s->notify = -1;
}

static void kick(struct sess *s)
{
  uint64_t one = 1;
  if (write(s->kick, &one, sizeof one) < 0) {
    /* a full counter: the device is awake anyway */
  }
}

/* Publishes the SQ and FQ; rings the device's doorbell if it sleeps. */
static void sess_flush(struct sess *s)
{
  toe_ring_publish(&s->sq);
  toe_ring_publish(&s->fq);
  if (toe_ring_prod_needs_wakeup(&s->sq) || toe_ring_prod_needs_wakeup(&s->fq))
    kick(s);
}

/* Checks the control socket: true once the device closed it. */
static bool sess_check_gone(struct sess *s)
{
  if (s->gone)
    return true;
  struct pollfd p = {s->fd, POLLIN, 0};
  if (poll(&p, 1, 0) > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR))) {
    char b;
    ssize_t n = recv(s->fd, &b, 1, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN))
      s->gone = true;
  }
  return s->gone;
}

/* Next CQE within ms: 1, 0 on timeout, -ECONNRESET when the device ended the session. */
static int sess_next(struct sess *s, struct toe_abi_cqe *c, int ms)
{
  uint64_t end = now_ms() + (uint64_t)ms;
  for (;;) {
    int n = toe_ring_consume(&s->cq, c, 1);
    if (n < 0)
      return n;
    if (n == 1)
      return 1;
    if (sess_check_gone(s))
      return -ECONNRESET;
    int a = toe_ring_cons_prepare_sleep(&s->cq);
    if (a != 0) {
      toe_ring_cons_clear_wakeup(&s->cq);
      continue;
    }
    uint64_t t = now_ms();
    if (t >= end) {
      toe_ring_cons_clear_wakeup(&s->cq);
      return 0;
    }
    struct pollfd p[2] = {{s->notify, POLLIN, 0}, {s->fd, POLLIN, 0}};
    poll(p, 2, (int)(end - t));
    uint64_t v;
    if (read(s->notify, &v, sizeof v) < 0) {
      /* nothing pending */
    }
    toe_ring_cons_clear_wakeup(&s->cq);
  }
}

/* Queues one SQE (waiting for room), not yet published. */
static void sess_push(struct sess *s, struct toe_abi_sqe *e)
{
  while (toe_ring_prod_write(&s->sq, e, 1) != 1) {
    sess_flush(s);
    usleep(100);
    if (toe_ring_error(&s->sq))
      die("SQ broken");
  }
}

static uint64_t sess_submit(struct sess *s, struct toe_abi_sqe *e)
{
  if (!e->user_data)
    e->user_data = ++s->ud;
  sess_push(s, e);
  sess_flush(s);
  return e->user_data;
}

/* Submits and waits for the completion of `e` (events are skipped). Returns its res, or
 * -ETIMEDOUT / -ECONNRESET; the CQE in *c. */
static int sess_call(struct sess *s, struct toe_abi_sqe *e, struct toe_abi_cqe *c, int ms)
{
  uint64_t ud = sess_submit(s, e);
  uint64_t end = now_ms() + (uint64_t)ms;
  for (;;) {
    uint64_t t = now_ms();
    int n = sess_next(s, c, t >= end ? 0 : (int)(end - t));
    if (n < 0)
      return n;
    if (n == 0)
      return -ETIMEDOUT;
    if (c->type == TOE_ABI_CQE_OP && c->user_data == ud)
      return c->res;
  }
}

static struct toe_abi_sqe sqe_op(uint8_t op, uint32_t handle)
{
  struct toe_abi_sqe e;
  memset(&e, 0, sizeof e);
  e.opcode = op;
  e.handle = handle;
  return e;
}

static int sess_open(struct sess *s, uint8_t proto, uint64_t sock_data, uint32_t *h)
{
  struct toe_abi_sqe e = sqe_op(TOE_ABI_OP_OPEN, 0);
  e.u.open.family = TOE_ABI_AF_INET;
  e.u.open.proto = proto;
  e.u.open.sock_data = sock_data;
  struct toe_abi_cqe c;
  int rc = sess_call(s, &e, &c, 5000);
  if (rc == 0)
    *h = c.handle;
  return rc;
}

static void fill_push(struct sess *s, uint32_t id)
{
  while (toe_ring_prod_write(&s->fq, &id, 1) != 1) {
    sess_flush(s);
    usleep(100);
    if (toe_ring_error(&s->fq))
      die("FQ broken");
  }
}

static uint64_t buf_off(const struct sess *s, uint32_t id)
{
  return s->L.buf_off + (uint64_t)id * s->L.buf_size;
}

static int32_t dev_status(const struct sess *s)
{
  volatile const struct toe_abi_region_hdr *h = (volatile const void *)s->region;
  return h->dev_status;
}

static uint32_t dev_state(const struct sess *s)
{
  volatile const struct toe_abi_region_hdr *h = (volatile const void *)s->region;
  return h->dev_state;
}

/* Waits until the device closes the control socket (at most ms). */
static bool wait_gone(struct sess *s, int ms)
{
  uint64_t end = now_ms() + (uint64_t)ms;
  while (!sess_check_gone(s) && now_ms() < end) {
    struct pollfd p = {s->fd, POLLIN, 0};
    poll(&p, 1, 50);
  }
  return s->gone;
}

/* ------------------------------------------------------------------------------------------ */
/* hello                                                                                      */

/* Sends raw bytes as the hello; returns the reply's status, or 1 if the device just closed. */
static int raw_hello(const void *buf, size_t len, int passfd)
{
  int fd = ctl_connect();
  if (fd < 0)
    return fd;
  struct iovec iov = {(void *)buf, len};
  union {
    char b[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } cbuf;
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (passfd >= 0) {
    memset(&cbuf, 0, sizeof cbuf);
    msg.msg_control = cbuf.b;
    msg.msg_controllen = sizeof cbuf.b;
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &passfd, sizeof(int));
  }
  if (len > 0 && sendmsg(fd, &msg, MSG_NOSIGNAL) < 0) {
    int e = -errno;
    close(fd);
    return e;
  }
  struct toe_abi_hello_reply rep;
  int fds[3];
  ssize_t n = recv_reply(fd, &rep, fds, len > 0 ? 3000 : 4000);
  for (int i = 0; i < 3; i++)
    if (n > 0 && fds[i] >= 0)
      close(fds[i]);
  close(fd);
  if (n == 0 || n == -ECONNRESET)
    return 1;
  if (n < 0)
    return (int)n;
  if (n != (ssize_t)sizeof rep || rep.magic != TOE_ABI_REPLY_MAGIC)
    return -1000;
  return rep.status;
}

static int mode_hello(void)
{
  struct toe_abi_hello h = hello_default();
  uint8_t big[8192];
  memset(big, 0, sizeof big);

  out("short", raw_hello(&h, 20, -1));
  struct toe_abi_hello b = h;
  b.magic = 0xdeadbeef;
  out("bad_magic", raw_hello(&b, sizeof b, -1));
  b = h;
  b.abi_major = 7;
  out("bad_major", raw_hello(&b, sizeof b, -1));
  b = h;
  b.size = 200;
  out("bad_size", raw_hello(&b, sizeof b, -1));
  b = h;
  b.sq_entries = 1000;
  out("sq_not_pow2", raw_hello(&b, sizeof b, -1));
  b = h;
  b.reserved2[7] = 1;
  out("reserved", raw_hello(&b, sizeof b, -1));
  b = h;
  b.caps = TOE_ABI_CAP_STATS;
  out("no_protocol", raw_hello(&b, sizeof b, -1));
  memcpy(big, &h, sizeof h);
  ((struct toe_abi_hello *)(void *)big)->size = sizeof big;
  out("oversized", raw_hello(big, sizeof big, -1));
  int pfd = eventfd(0, EFD_CLOEXEC);
  b = h;
  b.magic = 0;
  out("passed_fd", raw_hello(&b, sizeof b, pfd));
  close(pfd);
  /* Asks the device for everything at the limits: it clamps, the host gets a layout. */
  b = h;
  b.sq_entries = 1u << 30;
  b.cq_entries = 1u << 30;
  b.buf_size = 1u << 30;
  b.buf_count = 0xffffffffu;
  b.max_handles = 0xffffffffu;
  struct sess s;
  int rc = sess_attach(&s, &b);
  out("huge_geometry", rc);
  if (rc == 0) {
    out("huge_region_mib", (long long)(s.size >> 20));
    sess_close(&s);
  }
  /* Silence: connect and say nothing; the device drops the connection in ~2 s. */
  out("silent", raw_hello(NULL, 0, -1));
  rc = sess_attach(&s, &h);
  out("good", rc);
  if (rc == 0) {
    struct toe_abi_sqe e = sqe_op(TOE_ABI_OP_NOP, 0);
    struct toe_abi_cqe c;
    out("good_nop", sess_call(&s, &e, &c, 3000));
    out("good_client_id", s.rep.client_id);
    out("good_caps", (long long)s.rep.caps);
    sess_close(&s);
  }
  return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* abuse                                                                                      */

/* Submits `e` and expects a validation error `want`; counts the outcome. */
static int expect_err(struct sess *s, const char *name, struct toe_abi_sqe e, int want)
{
  struct toe_abi_cqe c;
  e.user_data = 0;
  int rc = sess_call(s, &e, &c, 3000);
  bool ok = rc == want && (c.flags & TOE_ABI_CQE_F_VALIDATION) && c.opcode == e.opcode;
  char key[64];
  snprintf(key, sizeof key, "err_%s", name);
  out(key, rc);
  return ok ? 1 : 0;
}

static int mode_abuse(const char *host)
{
  struct sess s;
  struct toe_abi_hello h = hello_default();
  int rc = sess_attach(&s, &h);
  if (rc < 0)
    die("attach: %s", strerror(-rc));
  out("attached", 1);
  int ok = 0, tried = 0;

  /* Random garbage SQEs: each gets exactly one error completion with its user_data. */
  const int ngarbage = 16;
  uint64_t uds[16];
  for (int i = 0; i < ngarbage; i++) {
    struct toe_abi_sqe e;
    uint8_t *p = (uint8_t *)&e;
    for (size_t k = 0; k < sizeof e; k++)
      p[k] = (uint8_t)rng();
    e.user_data = 0xabc0000000000000ull | (uint64_t)i;
    uds[i] = e.user_data;
    sess_push(&s, &e);
  }
  sess_flush(&s);
  int got = 0, matched = 0;
  struct toe_abi_cqe c;
  while (got < ngarbage && sess_next(&s, &c, 3000) == 1) {
    got++;
    for (int i = 0; i < ngarbage; i++)
      if (c.user_data == uds[i] && c.type == TOE_ABI_CQE_OP && c.res < 0 &&
          (c.flags & TOE_ABI_CQE_F_VALIDATION))
        matched++;
  }
  out("garbage_sent", ngarbage);
  out("garbage_refused", matched);

  /* A zeroed SQE is no NOP. */
  tried++;
  ok += expect_err(&s, "zero_sqe", sqe_op(0, 0), -TOE_EOPNOTSUPP);
  tried++;
  ok += expect_err(&s, "opcode_200", sqe_op(200, 0), -TOE_EOPNOTSUPP);
  struct toe_abi_sqe e = sqe_op(TOE_ABI_OP_NOP, 0);
  e.flags = 1;
  tried++;
  ok += expect_err(&s, "sqe_flags", e, -TOE_EINVAL);
  e = sqe_op(TOE_ABI_OP_NOP, 0);
  e.u.raw[40] = 9;
  tried++;
  ok += expect_err(&s, "nop_reserved", e, -TOE_EINVAL);

  /* A real socket to aim at. */
  uint32_t u;
  rc = sess_open(&s, TOE_ABI_PROTO_UDP, 1, &u);
  out("udp_open", rc);
  uint32_t idx = TOE_ABI_HANDLE_INDEX(u), gen = TOE_ABI_HANDLE_GEN(u);
  e = sqe_op(TOE_ABI_OP_SETSOCKOPT, TOE_ABI_HANDLE(s.L.max_handles, gen));
  e.u.sockopt.opt = TOE_ABI_SO_RXBUFS;
  e.u.sockopt.value = 4;
  tried++;
  ok += expect_err(&s, "handle_range", e, -TOE_EBADF);
  e.handle = TOE_ABI_HANDLE(idx, gen + 1);
  tried++;
  ok += expect_err(&s, "handle_stale_gen", e, -TOE_EBADF);
  e.handle = TOE_ABI_HANDLE(idx + 1, gen);
  tried++;
  ok += expect_err(&s, "handle_free_slot", e, -TOE_EBADF);
  e.handle = 0;
  tried++;
  ok += expect_err(&s, "handle_zero", e, -TOE_EBADF);
  e.handle = 0xffffffffu;
  tried++;
  ok += expect_err(&s, "handle_all_ones", e, -TOE_EBADF);

  struct toe_abi_sockaddr dst = inet_addr4(host, 9);
  e = sqe_op(TOE_ABI_OP_SEND, u);
  e.u.send.dst = dst;
  e.u.send.buf_off = 0; /* the header */
  e.u.send.len = 64;
  tried++;
  ok += expect_err(&s, "send_header", e, -TOE_EFAULT);
  e.u.send.buf_off = s.L.sq_off; /* the SQ entries */
  tried++;
  ok += expect_err(&s, "send_sq_entries", e, -TOE_EFAULT);
  e.u.send.buf_off = s.size; /* past the region */
  e.u.send.len = 1;
  tried++;
  ok += expect_err(&s, "send_past_region", e, -TOE_EFAULT);
  e.u.send.buf_off = s.L.buf_off + 16;
  e.u.send.len = 0xffffffffu; /* runs past the end */
  tried++;
  ok += expect_err(&s, "send_too_long", e, -TOE_EFAULT);
  e.u.send.buf_off = 0xfffffffffffffff0ull; /* off + len wraps */
  e.u.send.len = 0x20;
  tried++;
  ok += expect_err(&s, "send_wrap", e, -TOE_EFAULT);
  e = sqe_op(TOE_ABI_OP_STATS, 0);
  e.u.stats.kind = TOE_ABI_STATS_CLIENT;
  e.u.stats.buf_off = s.L.cq_off; /* STATS writing over the CQ */
  e.u.stats.len = 4096;
  tried++;
  ok += expect_err(&s, "stats_into_cq", e, -TOE_EFAULT);
  e = sqe_op(TOE_ABI_OP_LISTEN, u);
  tried++;
  ok += expect_err(&s, "listen_udp", e, -TOE_EOPNOTSUPP);
  e = sqe_op(TOE_ABI_OP_SEND, u);
  e.u.send.buf_off = s.L.buf_off;
  e.u.send.len = 10;
  tried++;
  ok += expect_err(&s, "send_no_dst", e, -TOE_EDESTADDRREQ);
  e = sqe_op(TOE_ABI_OP_CONNECT, u);
  e.u.addr.addr = dst;
  e.u.addr.addr.addr[9] = 1; /* IPv4 with stray bytes */
  tried++;
  ok += expect_err(&s, "addr_stray_bytes", e, -TOE_EINVAL);
  e = sqe_op(TOE_ABI_OP_OPEN, 0);
  e.u.open.family = TOE_ABI_AF_INET;
  e.u.open.proto = 99;
  tried++;
  ok += expect_err(&s, "open_proto_99", e, -TOE_EPROTONOSUPPORT);
  /* Another session (another client, as far as the device knows) names this one's socket: its
   * handle table is its own, so the handle names nothing there. */
  struct sess other;
  if (sess_attach(&other, &h) == 0) {
    e = sqe_op(TOE_ABI_OP_SETSOCKOPT, u);
    e.u.sockopt.opt = TOE_ABI_SO_RXBUFS;
    e.u.sockopt.value = 4;
    out("other_client_handle", sess_call(&other, &e, &c, 3000));
    e = sqe_op(TOE_ABI_OP_CLOSE, u);
    out("other_client_close", sess_call(&other, &e, &c, 3000));
    sess_close(&other);
  }
  e = sqe_op(TOE_ABI_OP_GETSOCKOPT, u); /* still ours, still open */
  e.u.sockopt.opt = TOE_ABI_SO_RXBUFS;
  out("own_handle_after_other", sess_call(&s, &e, &c, 3000));
  out("specific_tried", tried);
  out("specific_ok", ok);

  /* Fill ring: out-of-range ids and a double return are ignored (strikes, no completion). */
  fill_push(&s, s.L.buf_count);
  fill_push(&s, 0xffffffffu);
  fill_push(&s, 3);
  fill_push(&s, 3);
  sess_flush(&s);
  e = sqe_op(TOE_ABI_OP_NOP, 0);
  out("nop_after_bad_fill", sess_call(&s, &e, &c, 3000));

  /* Scribbling over what the device never reads back: the SQ entries already consumed, the CQ
   * entries, the header. The device keeps its own copies. */
  uint8_t *r = s.region;
  for (size_t k = 0; k < (size_t)s.L.sq_entries * TOE_ABI_SQE_SIZE / 2; k++)
    r[s.L.sq_off + k] = (uint8_t)rng();
  for (size_t k = 0; k < (size_t)s.L.cq_entries * TOE_ABI_CQE_SIZE; k++)
    r[s.L.cq_off + k] = (uint8_t)rng();
  for (size_t k = 0; k < sizeof(struct toe_abi_region_hdr); k++)
    r[k] = (uint8_t)rng();
  e = sqe_op(TOE_ABI_OP_NOP, 0);
  out("nop_after_scribble", sess_call(&s, &e, &c, 3000));
  /* The socket still works: STATS SOCKET of it. */
  e = sqe_op(TOE_ABI_OP_STATS, u);
  e.u.stats.kind = TOE_ABI_STATS_SOCKET;
  e.u.stats.buf_off = s.L.buf_off + 8192;
  e.u.stats.len = 4096;
  out("sock_stats_after_scribble", sess_call(&s, &e, &c, 3000));
  out("alive_before_flood", !sess_check_gone(&s));

  /* The flood: far more than 64 refused descriptors within a second ends the session. */
  int sent = 0;
  for (int i = 0; i < 200 && !sess_check_gone(&s); i++) {
    struct toe_abi_sqe g = sqe_op(TOE_ABI_OP_SETSOCKOPT, TOE_ABI_HANDLE(idx, gen + 7));
    g.user_data = 0x5000u + (uint64_t)i;
    if (toe_ring_prod_write(&s.sq, &g, 1) != 1)
      break;
    sent++;
  }
  sess_flush(&s);
  out("flood_sent", sent);
  bool gone = wait_gone(&s, 3000);
  out("flood_disconnected", gone);
  int refused = 0;
  while (toe_ring_consume(&s.cq, &c, 1) == 1)
    if (c.type == TOE_ABI_CQE_OP && c.res == -TOE_EBADF)
      refused++;
  out("flood_refusals_seen", refused);
  out("flood_dev_state", dev_state(&s));
  out("flood_dev_status", dev_status(&s));
  sess_close(&s);
  return 0;
}

/* A producer index that claims more entries than the ring has. */
static int mode_kill_index(void)
{
  struct sess s;
  struct toe_abi_hello h = hello_default();
  int rc = sess_attach(&s, &h);
  if (rc < 0)
    die("attach: %s", strerror(-rc));
  struct toe_abi_ring_ctl *ctl = (struct toe_abi_ring_ctl *)(s.region + s.L.sq_ctl_off);
  __atomic_store_n(&ctl->prod, ctl->cons + s.L.sq_entries + 5, __ATOMIC_RELEASE);
  kick(&s);
  bool gone = wait_gone(&s, 3000);
  out("badindex_disconnected", gone);
  out("badindex_dev_status", dev_status(&s));
  sess_close(&s);

  /* The same through the fill ring. */
  rc = sess_attach(&s, &h);
  if (rc < 0)
    die("attach: %s", strerror(-rc));
  ctl = (struct toe_abi_ring_ctl *)(s.region + s.L.fq_ctl_off);
  __atomic_store_n(&ctl->prod, ctl->cons - 1, __ATOMIC_RELEASE); /* "backwards" = 2^32-1 */
  kick(&s);
  out("badfill_disconnected", wait_gone(&s, 3000));
  sess_close(&s);

  /* And a CQ consumer index that runs ahead of what the device produced. */
  rc = sess_attach(&s, &h);
  if (rc < 0)
    die("attach: %s", strerror(-rc));
  ctl = (struct toe_abi_ring_ctl *)(s.region + s.L.cq_ctl_off);
  __atomic_store_n(&ctl->cons, ctl->prod + 77, __ATOMIC_RELEASE);
  struct toe_abi_sqe e = sqe_op(TOE_ABI_OP_NOP, 0);
  sess_submit(&s, &e);
  out("badcq_disconnected", wait_gone(&s, 3000));
  sess_close(&s);
  return 0;
}

static int mode_kill_ctlmsg(void)
{
  struct sess s;
  struct toe_abi_hello h = hello_default();
  int rc = sess_attach(&s, &h);
  if (rc < 0)
    die("attach: %s", strerror(-rc));
  send(s.fd, &h, sizeof h, MSG_NOSIGNAL); /* a second hello: nothing may follow the first */
  out("ctlmsg_disconnected", wait_gone(&s, 3000));
  out("ctlmsg_dev_status", dev_status(&s));
  sess_close(&s);
  return 0;
}

static int mode_scribble(uint64_t seed)
{
  rng_state ^= seed * 0x9e3779b97f4a7c15ull;
  struct sess s;
  struct toe_abi_hello h = hello_default();
  h.buf_count = 64;
  h.buf_size = 2048;
  int rc = sess_attach(&s, &h);
  if (rc < 0)
    die("attach: %s", strerror(-rc));
  uint32_t t;
  sess_open(&s, TOE_ABI_PROTO_TCP, 5, &t);
  int rounds = 0;
  for (; rounds < 50 && !sess_check_gone(&s); rounds++) {
    for (int k = 0; k < 2000; k++)
      s.region[rng() % s.size] = (uint8_t)rng();
    kick(&s);
    usleep(2000);
  }
  out("scribble_rounds", rounds);
  out("scribble_disconnected", sess_check_gone(&s));
  sess_close(&s);
  return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Well-behaved data transfer                                                                 */

static int mode_tcp(const char *host, uint16_t port, uint64_t total)
{
  struct sess s;
  struct toe_abi_hello h = hello_default();
  int rc = sess_attach(&s, &h);
  if (rc < 0)
    die("attach: %s", strerror(-rc));
  const uint32_t nb = s.L.buf_count, bs = s.L.buf_size;
  const uint32_t nrx = nb / 2;               /* buffers lent for receiving */
  const uint64_t tx_base = buf_off(&s, nrx); /* the rest: a ring of send chunks */
  const uint64_t tx_area = (uint64_t)(nb - nrx) * bs;
  const uint32_t chunk = 65536 < tx_area / 4 ? 65536 : (uint32_t)(tx_area / 4);
  for (uint32_t i = 0; i < nrx; i++)
    fill_push(&s, i);
  sess_flush(&s);

  uint32_t hd;
  rc = sess_open(&s, TOE_ABI_PROTO_TCP, 0x7c9, &hd);
  if (rc < 0)
    die("open: %d", rc);
  struct toe_abi_sqe e = sqe_op(TOE_ABI_OP_SETSOCKOPT, hd);
  e.u.sockopt.opt = TOE_ABI_TCP_NODELAY;
  e.u.sockopt.value = 1;
  struct toe_abi_cqe c;
  sess_call(&s, &e, &c, 3000);
  e = sqe_op(TOE_ABI_OP_CONNECT, hd);
  e.u.addr.addr = inet_addr4(host, port);
  uint64_t t0 = now_ms();
  rc = sess_call(&s, &e, &c, 10000);
  out("tcp_connect", rc);
  if (rc < 0)
    return 0;

  uint64_t sent = 0, acked = 0, recvd = 0, bad = 0;
  uint64_t inflight = 0;
  bool shut = false, eof = false, err = false;
  uint64_t last = now_ms();
  while (!err && (!eof || acked < total)) {
    /* Keep up to half the send area in flight. */
    while (sent < total && inflight + chunk <= tx_area / 2) {
      uint32_t n = (uint32_t)(total - sent < chunk ? total - sent : chunk);
      uint64_t pos = sent % tx_area;
      if (pos + n > tx_area)
        n = (uint32_t)(tx_area - pos);
      uint8_t *p = s.region + tx_base + pos;
      for (uint32_t k = 0; k < n; k++)
        p[k] = pattern(sent + k);
      e = sqe_op(TOE_ABI_OP_SEND, hd);
      e.user_data = 0x5e000000000ull + sent;
      e.u.send.buf_off = tx_base + pos;
      e.u.send.len = n;
      sess_push(&s, &e);
      sent += n;
      inflight += n;
    }
    if (sent == total && acked == total && !shut) {
      e = sqe_op(TOE_ABI_OP_SHUTDOWN, hd);
      e.u.shutdown.how = TOE_ABI_SHUT_WR;
      e.user_data = 0x5d;
      sess_push(&s, &e);
      shut = true;
    }
    sess_flush(&s);
    int n = sess_next(&s, &c, 5000);
    if (n <= 0) {
      if (now_ms() - last > 20000 || n < 0) {
        out("tcp_stalled", 1);
        err = true;
      }
      continue;
    }
    last = now_ms();
    switch (c.type) {
    case TOE_ABI_CQE_OP:
      if (c.opcode == TOE_ABI_OP_SEND) {
        if (c.res <= 0) {
          out("tcp_send_error", c.res);
          err = true;
        }
        acked += (uint32_t)c.res;
        inflight -= (uint32_t)c.res;
      } else if (c.opcode == TOE_ABI_OP_SHUTDOWN && c.res < 0) {
        out("tcp_shutdown_error", c.res);
      }
      break;
    case TOE_ABI_EV_DATA: {
      if (c.u.data.buf_id >= nrx || c.u.data.len > bs) {
        out("tcp_bad_buffer", c.u.data.buf_id);
        err = true;
        break;
      }
      const uint8_t *p = s.region + buf_off(&s, c.u.data.buf_id) + c.u.data.offset;
      for (uint32_t k = 0; k < c.u.data.len; k++)
        if (p[k] != pattern(recvd + k))
          bad++;
      recvd += c.u.data.len;
      fill_push(&s, c.u.data.buf_id);
      break;
    }
    case TOE_ABI_EV_PEER_CLOSED:
      eof = true;
      break;
    case TOE_ABI_EV_RESET:
    case TOE_ABI_EV_ERROR:
      out("tcp_conn_error", c.res);
      err = true;
      break;
    default:
      break;
    }
  }
  uint64_t t1 = now_ms();
  if (err) {
    /* What the device holds: for the diagnosis of a stall. */
    e = sqe_op(TOE_ABI_OP_STATS, 0);
    e.u.stats.kind = TOE_ABI_STATS_CLIENT;
    e.u.stats.buf_off = tx_base;
    e.u.stats.len = sizeof(struct toe_abi_client_stats);
    if (sess_call(&s, &e, &c, 3000) > 0) {
      struct toe_abi_client_stats cs;
      memcpy(&cs, s.region + tx_base, sizeof cs);
#define OUT_CS_(name) out("diag_client_" #name, (long long)cs.name);
      TOE_ABI_CLIENT_STATS(OUT_CS_)
#undef OUT_CS_
    }
    e = sqe_op(TOE_ABI_OP_STATS, hd);
    e.u.stats.kind = TOE_ABI_STATS_SOCKET;
    e.u.stats.buf_off = tx_base;
    e.u.stats.len = sizeof(struct toe_abi_sock_stats);
    if (sess_call(&s, &e, &c, 3000) > 0) {
      struct toe_abi_sock_stats ss;
      memcpy(&ss, s.region + tx_base, sizeof ss);
      out("diag_tcp_state", ss.tcp_state);
      out("diag_rx_lent", ss.rx_lent);
      out("diag_rx_queued", ss.rx_queued);
      out("diag_tx_queued", ss.tx_queued);
      out("diag_rcv_wnd", ss.rcv_wnd);
      out("diag_snd_cwnd", ss.snd_cwnd);
      out("diag_retrans", (long long)ss.retrans_segs);
    }
    out("diag_inflight", (long long)inflight);
    out("diag_cq_pending", toe_ring_cons_avail(&s.cq));
    out("diag_sq_outstanding", toe_ring_prod_outstanding(&s.sq));
    out("diag_fq_outstanding", toe_ring_prod_outstanding(&s.fq));
  }
  e = sqe_op(TOE_ABI_OP_STATS, hd);
  e.u.stats.kind = TOE_ABI_STATS_SOCKET;
  e.u.stats.buf_off = tx_base;
  e.u.stats.len = sizeof(struct toe_abi_sock_stats);
  if (sess_call(&s, &e, &c, 3000) > 0) {
    struct toe_abi_sock_stats ss;
    memcpy(&ss, s.region + tx_base, sizeof ss);
    out("tcp_sock_tx_bytes", (long long)ss.tx_bytes);
    out("tcp_sock_rx_bytes", (long long)ss.rx_bytes);
  }
  e = sqe_op(TOE_ABI_OP_CLOSE, hd);
  out("tcp_close", sess_call(&s, &e, &c, 5000));
  out("tcp_sent", (long long)acked);
  out("tcp_received", (long long)recvd);
  out("tcp_mismatched", (long long)bad);
  out("tcp_eof", eof);
  out("tcp_ms", (long long)(t1 - t0));
  out("tcp_ok", !err && eof && recvd == total && acked == total && bad == 0);
  sess_close(&s);
  return 0;
}

static int mode_udp(const char *host, uint16_t port, int count)
{
  struct sess s;
  struct toe_abi_hello h = hello_default();
  h.buf_size = 2048; /* datagrams larger than this arrive in pieces (F_MORE) */
  h.buf_count = 512;
  int rc = sess_attach(&s, &h);
  if (rc < 0)
    die("attach: %s", strerror(-rc));
  const uint32_t nrx = 256;
  for (uint32_t i = 0; i < nrx; i++)
    fill_push(&s, i);
  sess_flush(&s);
  uint32_t u;
  rc = sess_open(&s, TOE_ABI_PROTO_UDP, 0x0d9, &u);
  if (rc < 0)
    die("open: %d", rc);
  struct toe_abi_sqe e = sqe_op(TOE_ABI_OP_CONNECT, u);
  e.u.addr.addr = inet_addr4(host, port);
  struct toe_abi_cqe c;
  out("udp_connect", sess_call(&s, &e, &c, 3000));
  const uint64_t tx = buf_off(&s, nrx);
  const uint32_t txmax = (s.L.buf_count - nrx) * s.L.buf_size;
  static uint8_t got[65536];
  int okc = 0, bad = 0, lost = 0, pieces_max = 0;
  for (int i = 0; i < count; i++) {
    uint32_t len = i == count - 1 ? 65507
                   : i % 10 == 9  ? 2048 * (uint32_t)(1 + i % 7) + (uint32_t)i
                                  : (uint32_t)(rng() % 1473);
    if (len > txmax)
      len = txmax;
    uint8_t *p = s.region + tx;
    for (uint32_t k = 0; k < len; k++)
      p[k] = pattern((uint64_t)i * 131 + k);
    e = sqe_op(TOE_ABI_OP_SEND, u);
    e.u.send.buf_off = tx;
    e.u.send.len = len;
    int r = sess_call(&s, &e, &c, 3000);
    if (r != (int)len) {
      out("udp_send_error", r);
      bad++;
      continue;
    }
    uint32_t have = 0;
    int pieces = 0;
    bool done = false;
    while (!done) {
      int n = sess_next(&s, &c, 2000);
      if (n <= 0)
        break;
      if (c.type != TOE_ABI_EV_DATA)
        continue;
      pieces++;
      if (have + c.u.data.len <= sizeof got)
        memcpy(got + have, s.region + buf_off(&s, c.u.data.buf_id) + c.u.data.offset, c.u.data.len);
      have += c.u.data.len;
      fill_push(&s, c.u.data.buf_id);
      sess_flush(&s);
      done = !(c.flags & TOE_ABI_CQE_F_MORE);
    }
    if (!done) {
      lost++;
      continue;
    }
    if (pieces > pieces_max)
      pieces_max = pieces;
    bool same = have == len;
    for (uint32_t k = 0; same && k < len; k++)
      same = got[k] == pattern((uint64_t)i * 131 + k);
    if (same)
      okc++;
    else
      bad++;
  }
  e = sqe_op(TOE_ABI_OP_CLOSE, u);
  out("udp_close", sess_call(&s, &e, &c, 3000));
  out("udp_ok", okc);
  out("udp_bad", bad);
  out("udp_lost", lost);
  out("udp_pieces_max", pieces_max);
  sess_close(&s);
  return 0;
}

/* Accepts `conns` connections and echoes each: every lent buffer is sent back as it is (the
 * host's zero-copy path) and returned to the fill ring when that SEND completes. */
static int mode_serve(uint16_t port, int conns)
{
  struct sess s;
  struct toe_abi_hello h = hello_default();
  int rc = sess_attach(&s, &h);
  if (rc < 0)
    die("attach: %s", strerror(-rc));
  for (uint32_t i = 0; i < s.L.buf_count; i++)
    fill_push(&s, i);
  sess_flush(&s);
  uint32_t l;
  rc = sess_open(&s, TOE_ABI_PROTO_TCP, 0x11, &l);
  struct toe_abi_sqe e = sqe_op(TOE_ABI_OP_SETSOCKOPT, l);
  e.u.sockopt.opt = TOE_ABI_SO_REUSEADDR;
  e.u.sockopt.value = 1;
  struct toe_abi_cqe c;
  sess_call(&s, &e, &c, 3000);
  e = sqe_op(TOE_ABI_OP_BIND, l);
  e.u.addr.addr.family = TOE_ABI_AF_INET;
  e.u.addr.addr.port = port;
  out("serve_bind", sess_call(&s, &e, &c, 3000));
  e = sqe_op(TOE_ABI_OP_LISTEN, l);
  e.u.listen.backlog = 64;
  out("serve_listen", sess_call(&s, &e, &c, 3000));
  /* Several ACCEPTs outstanding at once. */
  for (int i = 0; i < 4 && i < conns; i++) {
    e = sqe_op(TOE_ABI_OP_ACCEPT, l);
    e.u.accept.sock_data = 0x1000u + (uint64_t)i;
    e.user_data = 0xacc;
    sess_push(&s, &e);
  }
  sess_flush(&s);
  printf("listening 1\n");
  fflush(stdout);
  int accepted = 0, closed = 0, errors = 0, posted = conns < 4 ? conns : 4;
  uint64_t bytes = 0;
  while (closed < conns) {
    int n = sess_next(&s, &c, 30000);
    if (n <= 0) {
      out("serve_timeout", 1);
      break;
    }
    if (c.type == TOE_ABI_CQE_OP) {
      switch (c.opcode) {
      case TOE_ABI_OP_ACCEPT:
        if (c.res < 0) {
          errors++;
          break;
        }
        accepted++;
        if (posted < conns) {
          e = sqe_op(TOE_ABI_OP_ACCEPT, l);
          e.u.accept.sock_data = 0x1000u + (uint64_t)posted++;
          e.user_data = 0xacc;
          sess_push(&s, &e);
        }
        break;
      case TOE_ABI_OP_SEND:
        /* user_data carries the buffer id lent with the data that was sent back. */
        if (c.res < 0)
          errors++;
        fill_push(&s, (uint32_t)c.user_data);
        break;
      case TOE_ABI_OP_CLOSE:
        closed++;
        break;
      default:
        break;
      }
    } else if (c.type == TOE_ABI_EV_DATA) {
      bytes += c.u.data.len;
      e = sqe_op(TOE_ABI_OP_SEND, c.handle);
      e.u.send.buf_off = buf_off(&s, c.u.data.buf_id) + c.u.data.offset;
      e.u.send.len = c.u.data.len;
      e.user_data = c.u.data.buf_id;
      sess_push(&s, &e);
    } else if (c.type == TOE_ABI_EV_PEER_CLOSED || c.type == TOE_ABI_EV_RESET ||
               c.type == TOE_ABI_EV_ERROR) {
      if (c.type != TOE_ABI_EV_PEER_CLOSED)
        errors++;
      /* The FIN after the echoed data (SHUTDOWN waits behind the SENDs), then the close. */
      e = sqe_op(TOE_ABI_OP_SHUTDOWN, c.handle);
      e.u.shutdown.how = TOE_ABI_SHUT_WR;
      e.user_data = 0x5d;
      if (c.type == TOE_ABI_EV_PEER_CLOSED)
        sess_push(&s, &e);
      e = sqe_op(TOE_ABI_OP_CLOSE, c.handle);
      e.user_data = 0xc105e;
      sess_push(&s, &e);
    }
    sess_flush(&s);
  }
  e = sqe_op(TOE_ABI_OP_CLOSE, l);
  sess_call(&s, &e, &c, 3000);
  out("serve_accepted", accepted);
  out("serve_closed", closed);
  out("serve_errors", errors);
  out("serve_bytes", (long long)bytes);
  sess_close(&s);
  return 0;
}

static int mode_hold(const char *host, uint16_t port)
{
  struct sess s;
  struct toe_abi_hello h = hello_default();
  int rc = sess_attach(&s, &h);
  if (rc < 0)
    die("attach: %s", strerror(-rc));
  uint32_t t;
  sess_open(&s, TOE_ABI_PROTO_TCP, 1, &t);
  struct toe_abi_sqe e = sqe_op(TOE_ABI_OP_CONNECT, t);
  e.u.addr.addr = inet_addr4(host, port);
  struct toe_abi_cqe c;
  rc = sess_call(&s, &e, &c, 10000);
  out("hold_connect", rc);
  memcpy(s.region + s.L.buf_off, "hello\n", 6);
  e = sqe_op(TOE_ABI_OP_SEND, t);
  e.u.send.buf_off = s.L.buf_off;
  e.u.send.len = 6;
  out("hold_send", sess_call(&s, &e, &c, 5000));
  /* And a UDP socket and a listener, so the death has all kinds to clean up. */
  uint32_t u, l;
  sess_open(&s, TOE_ABI_PROTO_UDP, 2, &u);
  sess_open(&s, TOE_ABI_PROTO_TCP, 3, &l);
  e = sqe_op(TOE_ABI_OP_BIND, l);
  e.u.addr.addr.family = TOE_ABI_AF_INET;
  sess_call(&s, &e, &c, 3000);
  e = sqe_op(TOE_ABI_OP_LISTEN, l);
  sess_call(&s, &e, &c, 3000);
  out("holding", 1);
  for (;;)
    pause();
}

/*
 * A client that never returns its receive buffers: lends every buffer on the fill ring once,
 * opens CONNS connections to HOST:PORT with SO_RCVBUF RCVBUF, and from then on never reads its
 * completion queue (so neither lent buffers nor CQ room ever come back). What its peers send
 * then stays in the device: its sockets' windows must close without the device's pool running
 * out (docs/transport.md "Buffer accounting").
 */
static int mode_hoard(const char *host, uint16_t port, int conns, long long rcvbuf, uint16_t uport)
{
  struct sess s;
  struct toe_abi_hello h = hello_default();
  int rc = sess_attach(&s, &h);
  if (rc < 0)
    die("attach: %s", strerror(-rc));
  /* With connections, every buffer is lent once (and never comes back); without, none is: the
   * UDP socket's datagrams then have nowhere to go and stay in the device. */
  if (conns > 0)
    for (uint32_t i = 0; i < s.L.buf_count; i++)
      fill_push(&s, i);
  sess_flush(&s);
  int ok = 0;
  for (int i = 0; i < conns; i++) {
    uint32_t t = 0;
    if (sess_open(&s, TOE_ABI_PROTO_TCP, (uint64_t)i + 1, &t) < 0)
      continue;
    struct toe_abi_sqe e = sqe_op(TOE_ABI_OP_SETSOCKOPT, t);
    e.u.sockopt.opt = TOE_ABI_SO_RCVBUF;
    e.u.sockopt.value = rcvbuf;
    struct toe_abi_cqe c;
    sess_call(&s, &e, &c, 3000);
    e = sqe_op(TOE_ABI_OP_CONNECT, t);
    e.u.addr.addr = inet_addr4(host, port);
    if (sess_call(&s, &e, &c, 10000) == 0)
      ok++;
  }
  out("hoard_connected", ok);
  /* and a UDP socket on the device's port UPORT that is never read */
  uint32_t u;
  if (sess_open(&s, TOE_ABI_PROTO_UDP, 0xdd, &u) == 0) {
    struct toe_abi_sqe e = sqe_op(TOE_ABI_OP_BIND, u);
    e.u.addr.addr = inet_addr4("0.0.0.0", uport);
    struct toe_abi_cqe c;
    out("hoard_udp_bind", sess_call(&s, &e, &c, 3000));
  }
  for (;;)
    pause();
}

static int mode_stats(void)
{
  struct sess s;
  struct toe_abi_hello h = hello_default();
  int rc = sess_attach(&s, &h);
  if (rc < 0) {
    out("stats_attach", rc);
    return 0;
  }
  out("stats_attach", 0);
  out("stats_caps_flows", (s.rep.caps & TOE_ABI_CAP_FLOWS) != 0);
  uint64_t area = s.L.buf_off;
  uint32_t len = s.L.buf_size * 64;
  struct toe_abi_sqe e = sqe_op(TOE_ABI_OP_STATS, 0);
  e.u.stats.kind = TOE_ABI_STATS_ENGINE;
  e.u.stats.buf_off = area;
  e.u.stats.len = len;
  struct toe_abi_cqe c;
  rc = sess_call(&s, &e, &c, 3000);
  out("stats_engine_bytes", rc);
  if (rc > 0) {
    size_t n = (size_t)rc < len ? (size_t)rc : len;
    fwrite(s.region + area, 1, n, stdout);
  }
  e.u.stats.kind = TOE_ABI_STATS_CLIENT;
  rc = sess_call(&s, &e, &c, 3000);
  out("stats_client_bytes", rc);
  if (rc >= (int)sizeof(struct toe_abi_client_stats)) {
    struct toe_abi_client_stats cs;
    memcpy(&cs, s.region + area, sizeof cs);
    out("client.sqes", (long long)cs.sqes);
    out("client.completions", (long long)cs.completions);
  }
  e.u.stats.kind = TOE_ABI_STATS_FLOWS;
  rc = sess_call(&s, &e, &c, 3000);
  out("stats_flows_res", rc);
  if (rc >= (int)sizeof(struct toe_abi_flows_hdr)) {
    struct toe_abi_flows_hdr fh;
    memcpy(&fh, s.region + area, sizeof fh);
    out("flows_count", fh.count);
    out("flows_record_size", fh.record_size);
    for (uint32_t i = 0; i < fh.count && sizeof fh + (i + 1) * (uint64_t)fh.record_size <= len;
         i++) {
      struct toe_abi_flow f;
      memcpy(&f, s.region + area + sizeof fh + (uint64_t)i * fh.record_size, sizeof f);
      char l[32], r[32];
      inet_ntop(AF_INET, f.local.addr, l, sizeof l);
      inet_ntop(AF_INET, f.remote.addr, r, sizeof r);
      printf("flow %s %u %s:%u %s:%u client %u pid %u comm %.16s\n",
             f.proto == TOE_ABI_PROTO_TCP ? "tcp" : "udp", f.tcp_state, l, f.local.port, r,
             f.remote.port, f.client_id, f.pid, f.comm);
    }
  }
  sess_close(&s);
  return 0;
}

static void usage(void)
{
  fputs("usage: hostile_client MODE CTL [ARGS] (modes: hello, abuse HOST, kill-index, "
        "kill-ctlmsg, scribble SEED, tcp HOST PORT BYTES, udp HOST PORT COUNT, serve PORT CONNS, "
        "hold HOST PORT, stats, hoard HOST PORT CONNS RCVBUF UPORT)\n",
        stderr);
  exit(2);
}

int main(int argc, char **argv)
{
  if (argc < 3)
    usage();
  signal(SIGPIPE, SIG_IGN);
  const char *mode = argv[1];
  ctl_path = argv[2];
  rng_state ^= (uint64_t)getpid() << 17;
  if (strcmp(mode, "hello") == 0)
    return mode_hello();
  if (strcmp(mode, "abuse") == 0 && argc == 4)
    return mode_abuse(argv[3]);
  if (strcmp(mode, "kill-index") == 0)
    return mode_kill_index();
  if (strcmp(mode, "kill-ctlmsg") == 0)
    return mode_kill_ctlmsg();
  if (strcmp(mode, "scribble") == 0 && argc == 4)
    return mode_scribble(strtoull(argv[3], NULL, 10));
  if (strcmp(mode, "tcp") == 0 && argc == 6)
    return mode_tcp(argv[3], (uint16_t)atoi(argv[4]), strtoull(argv[5], NULL, 10));
  if (strcmp(mode, "udp") == 0 && argc == 6)
    return mode_udp(argv[3], (uint16_t)atoi(argv[4]), atoi(argv[5]));
  if (strcmp(mode, "serve") == 0 && argc == 5)
    return mode_serve((uint16_t)atoi(argv[3]), atoi(argv[4]));
  if (strcmp(mode, "hold") == 0 && argc == 5)
    return mode_hold(argv[3], (uint16_t)atoi(argv[4]));
  if (strcmp(mode, "stats") == 0)
    return mode_stats();
  if (strcmp(mode, "hoard") == 0 && argc == 8)
    return mode_hoard(argv[3], (uint16_t)atoi(argv[4]), atoi(argv[5]), strtoll(argv[6], NULL, 10),
                      (uint16_t)atoi(argv[7]));
  usage();
}
