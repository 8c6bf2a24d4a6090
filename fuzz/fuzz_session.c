/*
 * toed's device-side session as a stateful target (src/device/ctl_server.c, session/): one host
 * client speaks the transport ABI over the real control socket and shared region, as
 * tests/unit/device/test_ctl_session.c does, and sends a random stream of commands decoded from the
 * fuzz input; the device engine (end 0 of tests/unit/e2e_link.c) talks to a peer engine (end 1)
 * that listens on TCP 5001, echoes UDP on 5002, and streams or closes what it accepted. The link
 * drops, duplicates and reorders frames as the input says, and the clock moves on the input's
 * word.
 *
 * Input: u8 cfg (bit 0: the device engine has 64 packet buffers instead of 256, so the pool runs
 * dry; bits 1-3: capabilities withheld), then records, a tag byte and its arguments:
 *   0: a 64-byte SQE; with tag bit 7 its handle is replaced by one the device gave (OPEN or
 *      ACCEPT completions), with bit 6 its buffer offsets are folded into the buffer area
 *   1: u8 ms: the clock advances (the link delivers, both engines run), then the kick doorbell
 *      and a session round
 *   2: u8 n: the host takes up to n completions; with tag bit 7 it returns their buffers
 *   3: u16 id: a raw fill-ring entry (possibly bogus or a double return)
 *   4: u32: a ring index the host scribbles (SQ producer, FQ producer or CQ consumer by tag bits)
 *   5: u8: the peer acts (stream bytes on its connections, close one, abort one, send UDP)
 *   6: u8 loss, u8 dup, u8 reorder (in 1/256): the link's faults from now on
 *   7: the host closes its control socket (a crash); the input ends there
 * Every completion the host takes is checked: a known type, data inside the lent buffer, a lent
 * buffer the device's to lend. When the session has ended (the control socket closed), the device
 * holds no client socket, no session and no region, and once the clock has run out every packet
 * buffer of the device's engine is back in its pool.
 */
#define _GNU_SOURCE

#define FZ_NAME "fuzz_session"
#include "ctl_host.h"
#include "device/ctl_server.h"
#include "e2e_link.h"
#include "fz_input.h"
#include "toe/abi.h"
#include "toe/tcp.h"
#include "transport/abi_validate.h"
#include "transport/ring.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PEER_TCP 5001
#define PEER_UDP 5002
#define NHANDLES 8
#define NPEER 4

static struct e2e_link L;
static struct toed_ctl C;

static struct {
  struct toe_sock *lsock, *usock, *conn[NPEER];
} P;

static struct {
  struct ctl_host abi; /* descriptors, region and rings */
  uint32_t handles[NHANDLES];
  uint32_t nhandles;
  uint8_t *lent; /* per buffer: 1 while the host holds it lent (EV_DATA, EV_CAPTURE) */
} H;

/* ---- the peer (end 1) --------------------------------------------------------------------- */

static void peer_open(void)
{
  struct toe_stack *st = L.end[1].st;
  struct toe_sockaddr lt = {.family = TOE_AF_INET, .port = PEER_TCP, .addr = 0},
                      lu = {.family = TOE_AF_INET, .port = PEER_UDP, .addr = 0};
  if (toe_tcp_open(st, &P, &P.lsock) == 0) {
    (void)toe_sock_bind(st, P.lsock, &lt);
    (void)toe_tcp_listen(st, P.lsock, 4);
  }
  if (toe_udp_open(st, &P, &P.usock) == 0)
    (void)toe_sock_bind(st, P.usock, &lu);
}

/* Accepts what is waiting, drains what arrived, echoes UDP. */
static void peer_pump(void)
{
  struct toe_stack *st = L.end[1].st;
  for (int i = 0; i < NPEER && P.lsock; i++)
    if (!P.conn[i])
      (void)toe_tcp_accept(st, P.lsock, &P, &P.conn[i]);
  uint8_t buf[2048];
  for (int i = 0; i < NPEER; i++)
    while (P.conn[i] && toe_tcp_recv(st, P.conn[i], buf, sizeof buf) > 0) {
    }
  struct toe_sockaddr from;
  for (int k = 0; k < 8 && P.usock; k++) {
    int n = toe_udp_recvfrom(st, P.usock, buf, sizeof buf, &from);
    if (n < 0)
      break;
    /* n is the datagram's full length (MSG_TRUNC-like): echo what fit in buf */
    size_t len = (size_t)n < sizeof buf ? (size_t)n : sizeof buf;
    (void)toe_udp_sendto(st, P.usock, buf, len, &from);
  }
}

static void peer_act(uint8_t a)
{
  struct toe_stack *st = L.end[1].st;
  struct toe_sock **c = &P.conn[a % NPEER];
  static uint8_t junk[16384];
  switch ((a >> 2) & 3) {
  case 0:
  case 1:
    if (*c)
      (void)toe_tcp_send(st, *c, junk, (size_t)(a >> 4) * 1024 + 1, 0);
    break;
  case 2:
    if (*c) {
      toe_sock_close(st, *c);
      *c = NULL;
    }
    break;
  case 3:
    if (*c) {
      toe_tcp_abort(st, *c);
      *c = NULL;
    }
    break;
  }
}

static void on_event(void *ctx, int end, struct toe_sock *s, void *user, uint32_t events)
{
  (void)ctx;
  (void)s;
  if (end == 0)
    toed_ctl_on_sock_event(&C, user, events);
}

static void tx_tap(void *ctx, int end, struct toe_pbuf *frame)
{
  (void)ctx;
  if (end == 0)
    toed_ctl_capture(&C, NULL, 0, frame, L.now + 1, TOE_ABI_CAPTURE_DIR_OUT);
}

/* ---- the host client ---------------------------------------------------------------------- */

static void kick(void)
{
  /* An eventfd, or with the POSIX doorbells a pipe whose reader is gone once the session ended
   * (EPIPE: SIGPIPE is ignored, as toed and libtoe's users do). */
  uint64_t one = 1;
  if (write(H.abi.kick, &one, sizeof one) != (ssize_t)sizeof one && errno != EAGAIN &&
      errno != EPIPE)
    FZ_FAIL("kick: %s", strerror(errno));
}

static void step(uint32_t ms)
{
  toe_time_t until = L.now + TOE_MSEC(ms ? ms : 1);
  while (e2e_step(&L, until))
    peer_pump();
  peer_pump();
  toed_ctl_on_epoll(&C, ctl_tag(0, 1, CTL_TAG_KICK), EPOLLIN, L.now);
  toed_ctl_run(&C, L.now);
}

static void give_buf(uint32_t id)
{
  (void)ctl_host_give_buf(&H.abi, id); /* a full ring is the input's doing */
}

static void check_cqe(const struct toe_abi_cqe *c, bool give)
{
  uint32_t buf = UINT32_MAX;
  switch (c->type) {
  case TOE_ABI_CQE_OP:
    if (c->res >= 0 && (c->opcode == TOE_ABI_OP_OPEN || c->opcode == TOE_ABI_OP_ADOPT) &&
        H.nhandles < NHANDLES)
      H.handles[H.nhandles++] = c->handle;
    if (c->res >= 0 && c->opcode == TOE_ABI_OP_ACCEPT && H.nhandles < NHANDLES)
      H.handles[H.nhandles++] = c->u.accept.handle;
    return;
  case TOE_ABI_EV_DATA:
    if (c->res < 0 || (uint32_t)c->res != c->u.data.len)
      FZ_FAIL("EV_DATA res %d len %u", c->res, c->u.data.len);
    if (c->u.data.len == 0)
      return; /* end of a datagram of zero bytes, nothing lent */
    buf = c->u.data.buf_id;
    if (buf >= H.abi.lay.buf_count || c->u.data.offset > H.abi.lay.buf_size ||
        c->u.data.len > H.abi.lay.buf_size - c->u.data.offset)
      FZ_FAIL("EV_DATA outside the buffer area: buf %u offset %u len %u", buf, c->u.data.offset,
              c->u.data.len);
    break;
  case TOE_ABI_EV_CAPTURE:
    buf = c->u.capture.buf_id;
    if (buf >= H.abi.lay.buf_count || c->res < 0 || (uint32_t)c->res > H.abi.lay.buf_size)
      FZ_FAIL("EV_CAPTURE buf %u res %d", buf, c->res);
    break;
  case TOE_ABI_EV_WRITABLE:
  case TOE_ABI_EV_PEER_CLOSED:
  case TOE_ABI_EV_RESET:
  case TOE_ABI_EV_ERROR:
  case TOE_ABI_EV_SHUTDOWN:
    return;
  default:
    FZ_FAIL("completion of unknown type %u", c->type);
  }
  if (H.lent[buf])
    FZ_FAIL("buffer %u lent twice without being returned", buf);
  H.lent[buf] = 1;
  if (give) {
    H.lent[buf] = 0;
    give_buf(buf);
  }
}

/* Returns 0, or -1 if the device refused the hello (no protocol left of the caps offered). */
static int attach(const char *path, uint64_t caps)
{
  struct toe_abi_hello h;
  ctl_host_hello(&h, caps, 16, "fuzz");
  char err[256];
  int rc = ctl_host_attach(&H.abi, &C, path, &h, L.now, err, sizeof err);
  if (rc == -ECONNREFUSED)
    return -1;
  if (rc != 0)
    FZ_FAIL("attach: %s", err);
  H.lent = calloc(H.abi.lay.buf_count, 1);
  if (!H.lent)
    abort();
  for (uint32_t i = 0; i < H.abi.lay.buf_count; i++)
    give_buf(i);
  return 0;
}

static void submit(struct fz_in *in, uint8_t tag)
{
  struct toe_abi_sqe e;
  memset(&e, 0, sizeof e);
  for (size_t i = 0; i < sizeof e; i++)
    ((uint8_t *)&e)[i] = fz_u8(in);
  if ((tag & 0x80) && H.nhandles)
    e.handle = H.handles[e.handle % H.nhandles];
  if (tag & 0x40) {
    /* SEND's and STATS' offsets (and CAPTURE's filter) inside the buffer area, mostly. */
    uint64_t span = (uint64_t)H.abi.lay.buf_count * H.abi.lay.buf_size;
    if (e.opcode == TOE_ABI_OP_SEND) {
      e.u.send.buf_off = H.abi.lay.buf_off + e.u.send.buf_off % span;
      e.u.send.len %= 4096;
    } else if (e.opcode == TOE_ABI_OP_STATS) {
      e.u.stats.buf_off = H.abi.lay.buf_off + e.u.stats.buf_off % span;
      e.u.stats.len %= 8192;
    } else if (e.opcode == TOE_ABI_OP_CAPTURE) {
      e.u.capture.buf_off = H.abi.lay.buf_off + e.u.capture.buf_off % span;
      e.u.capture.len %= 64;
    }
  }
  if (toe_ring_prod_write(&H.abi.sq, &e, 1) == 1)
    toe_ring_publish(&H.abi.sq);
  kick();
}

static uint64_t socks_live(const struct toe_counters *c)
{
  return c->udp.socks_inuse + c->tcp.socks_inuse;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct fz_in in = {data, size};
  uint8_t cfgb = fz_u8(&in);
  signal(SIGPIPE, SIG_IGN);
  memset(&H, 0, sizeof H);
  memset(&P, 0, sizeof P);
  /* Small tables, so that setting up two engines per input stays cheap (and the device's can
   * run out); the device's pool is toed's smallest (--pbufs 256) or 64 buffers. */
  struct toe_config cf[2];
  for (int i = 0; i < 2; i++) {
    e2e_default_cfg(&cf[i], i);
    cf[i].pbuf_count = 512;
    cf[i].arp_entries = 8;
    cf[i].reass_slots = 4;
    cf[i].reass_max_bufs = 64;
    cf[i].udp_socks = 8;
    cf[i].tcp_socks = 16;
    cf[i].tcp_syncache = 8;
    cf[i].tcp_timewait = 16;
    cf[i].tcp_max_backlog = 8;
  }
  struct toe_config c0 = cf[0];
  c0.pbuf_count = (cfgb & 1) ? 64 : 256;
  e2e_init(&L, &c0, &cf[1], 7, TOE_SEC(1));
  L.on_event = on_event;
  L.tx_tap = tx_tap;
  peer_open();

  static struct ctl_host_server srv; /* its path must outlive the control socket */
  char err[256];
  if (ctl_host_listen(&C, L.end[0].st, "fuzz-session", 0, 2, &srv, err, sizeof err) < 0)
    FZ_FAIL("toed_ctl_open: %s", err);
  /* 1.5: the per-datagram metadata too (SO_RXMETA is one of the options the SQEs may set) */
  uint64_t caps = (TOE_ABI_CAPS_1_3 | TOE_ABI_CAP_RXMETA) & ~((uint64_t)(cfgb >> 1 & 7) << 1);
  if (attach(srv.path, caps) < 0) {
    ctl_host_detach(&H.abi);
    goto out;
  }
  step(1);

  bool crashed = false;
  while (in.n && !crashed) {
    uint8_t tag = fz_u8(&in);
    switch (tag & 7) {
    case 0:
      submit(&in, tag);
      break;
    case 1:
      step(fz_u8(&in));
      break;
    case 2: {
      uint32_t n = fz_u8(&in);
      struct toe_abi_cqe c;
      for (uint32_t i = 0; i < n && toe_ring_consume(&H.abi.cq, &c, 1) == 1; i++)
        check_cqe(&c, tag & 0x80);
      break;
    }
    case 3: {
      uint32_t id = fz_u16(&in);
      if (id < H.abi.lay.buf_count)
        H.lent[id] = 0;
      give_buf(id);
      break;
    }
    case 4: {
      uint32_t v = fz_u16(&in) | fz_u16(&in) << 16;
      struct toe_abi_ring_ctl *rc = (tag & 0x08)   ? H.abi.sq.ctl
                                    : (tag & 0x10) ? H.abi.fq.ctl
                                                   : H.abi.cq.ctl;
      if (rc == H.abi.cq.ctl)
        rc->cons = (tag & 0x20) ? H.abi.cq.local + (v & 31) : v;
      else
        rc->prod = (tag & 0x20) ? rc->prod + (v & 31) : v;
      kick();
      break;
    }
    case 5:
      peer_act(fz_u8(&in));
      break;
    case 6: {
      struct e2e_faults f;
      memset(&f, 0, sizeof f);
      f.loss_ppm = fz_u8(&in) * 3906u;
      f.dup_ppm = fz_u8(&in) * 3906u;
      f.reorder_ppm = fz_u8(&in) * 3906u;
      f.reorder_delay = TOE_MSEC(5);
      e2e_set_faults(&L, &f);
      break;
    }
    case 7:
      crashed = true;
      break;
    }
  }

  if (getenv("FUZZ_SESSION_VERBOSE")) /* what a seed reached (for writing seeds) */
    fprintf(stderr,
            "fuzz_session: sqes %llu completions %llu events %llu refused %llu rx %llu tx %llu "
            "captures %llu shares %llu stalls nobuf %llu credit %llu, engine pool free %u\n",
            (unsigned long long)C.dev.stats.sqes, (unsigned long long)C.dev.stats.completions,
            (unsigned long long)C.dev.stats.events, (unsigned long long)C.dev.stats.err_validation,
            (unsigned long long)C.dev.stats.rx_bytes, (unsigned long long)C.dev.stats.tx_bytes,
            (unsigned long long)C.dev.stats.capture_frames,
            (unsigned long long)C.dev.stats.share_tokens,
            (unsigned long long)C.dev.stats.rx_stall_nobuf,
            (unsigned long long)C.dev.stats.rx_stall_credit, toe_pbuf_pool_free_count(L.end[0].st));
  /* The client goes (exit or crash): the device must give back everything it held for it. */
  ctl_host_detach(&H.abi);
  toed_ctl_on_epoll(&C, ctl_tag(0, 1, CTL_TAG_CONTROL), EPOLLIN | EPOLLHUP | EPOLLRDHUP, L.now);
  toed_ctl_run(&C, L.now);
  if (C.sessions != 0 || C.dev.stats.clients_attached != 0 || C.dev.stats.socks_inuse != 0 ||
      C.region_bytes != 0)
    FZ_FAIL("after the session ended: %u sessions, %llu attached, %llu sockets, %llu region bytes",
            C.sessions, (unsigned long long)C.dev.stats.clients_attached,
            (unsigned long long)C.dev.stats.socks_inuse, (unsigned long long)C.region_bytes);
  /* Shared sockets live on until their tokens expire; then the clock runs past every timeout. */
  e2e_set_faults(&L, &(struct e2e_faults){0});
  for (int i = 0; i < NPEER; i++)
    if (P.conn[i])
      toe_tcp_abort(L.end[1].st, P.conn[i]);
  for (int i = 0; i < 40; i++) {
    e2e_run_until(&L, L.now + TOE_SEC(30));
    toed_ctl_run(&C, L.now);
  }
  const struct toe_counters *k = toe_stack_counters(L.end[0].st);
  if (socks_live(k) != 0 || toe_pbuf_pool_free_count(L.end[0].st) != c0.pbuf_count)
    FZ_FAIL("device engine after the end: %llu sockets, %u of %u packet buffers free",
            (unsigned long long)socks_live(k), toe_pbuf_pool_free_count(L.end[0].st),
            c0.pbuf_count);
out:
  if (H.lent)
    free(H.lent);
  toed_ctl_close(&C);
  close(srv.epfd);
  e2e_fini(&L);
  return 0;
}
