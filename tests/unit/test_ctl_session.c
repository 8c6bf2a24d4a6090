/*
 * toed's session code (src/device/ctl_server.c, session/) driven in-process on a virtual
 * clock: the device engine is end 0 of an engine-to-engine link (e2e_link.c), a second engine at
 * end 1 is the peer, and the host client is this test speaking the transport ABI itself over
 * the real control socket and shared region.
 *
 * Covered (issue 12, item 8): a capture that runs in the same session as a TCP receive must
 * never take the completion-queue slot the receive checked before handing its data over. The
 * host keeps its CQ nearly full (it takes one completion at a time, now and then) while the peer
 * streams a known pattern and the session captures every frame on the wire (the peer's
 * full-sized segments fill a capture buffer at almost every frame): whenever a receive finds
 * exactly one free slot, the window update the engine sends from inside that receive finds the
 * capture's buffer full, and its EV_CAPTURE then wants the same slot. Every byte the peer sent
 * must arrive, in order, through EV_DATA. (Without the fix 16 KiB of the 3 MiB went missing.)
 *
 * Also (issue 14, item 6): an ABI 1.4 capture with a classic BPF program and direction-tagged
 * records, in the session: a looping program refused, the SYN and SYN-ACK picked and cut at the
 * program's answer with their directions, and the 1.2 text filter still working beside it.
 */
#define _GNU_SOURCE

#include "ctl_host.h"
#include "device/ctl_server.h"
#include "e2e_link.h"
#include "testlib.h"
#include "toe/abi.h"
#include "toe/tcp.h"
#include "transport/abi_validate.h"
#include "transport/ring.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#define PEER_PORT 5001
#define STREAM_BYTES (3u << 20)

static struct e2e_link L;
static struct toed_ctl C;

/* ---- the peer (end 1): accepts one connection and streams the pattern ------------------------ */

static struct {
  struct toe_sock *lsock, *conn;
  uint64_t sent;
} P;

static uint8_t pattern(uint64_t i)
{
  return (uint8_t)((i * 2654435761u) >> 13);
}

static void peer_pump(void)
{
  struct toe_stack *st = L.end[1].st;
  if (!P.conn) {
    struct toe_sock *s = NULL;
    if (toe_tcp_accept(st, P.lsock, &P, &s) == 0)
      P.conn = s;
    else
      return;
  }
  uint8_t buf[8192];
  while (P.sent < STREAM_BYTES) {
    size_t n = STREAM_BYTES - P.sent < sizeof buf ? STREAM_BYTES - P.sent : sizeof buf;
    for (size_t i = 0; i < n; i++)
      buf[i] = pattern(P.sent + i);
    int rc = toe_tcp_send(st, P.conn, buf, n, 0);
    if (rc <= 0)
      break;
    P.sent += (uint64_t)rc;
  }
}

static void on_event(void *ctx, int end, struct toe_sock *s, void *user, uint32_t events)
{
  (void)ctx;
  (void)s;
  if (end == 0)
    toed_ctl_on_sock_event(&C, user, events);
}

/* Every frame on the wire goes to the captures, as toed's receive and transmit paths hand them
 * over: the device's own as a chain, the peer's as bytes (here when the peer sends them). The
 * peer's full-sized data frames fill a capture buffer at almost every frame. */
static void tx_tap(void *ctx, int end, struct toe_pbuf *frame)
{
  (void)ctx;
  if (end == 0) {
    toed_ctl_capture(&C, NULL, 0, frame, L.now + 1, TOE_ABI_CAPTURE_DIR_OUT);
  } else {
    static uint8_t bytes[65600];
    uint32_t n = frame->tot_len < sizeof bytes ? frame->tot_len : (uint32_t)sizeof bytes;
    toe_pbuf_copy_out(frame, 0, bytes, n);
    toed_ctl_capture(&C, bytes, n, NULL, L.now + 1, TOE_ABI_CAPTURE_DIR_IN);
  }
}

/* ---- the host client: the ABI spoken directly ----------------------------------------------- */

static struct {
  struct ctl_host abi; /* descriptors, region and rings */
  uint32_t handle;
  uint64_t received; /* stream bytes that arrived through EV_DATA, in order */
  uint64_t bad_at;   /* first offset whose byte was wrong (UINT64_MAX: none) */
  uint64_t captures; /* EV_CAPTURE buffers */
  bool connected;
  uint64_t caps;    /* offered in the hello (0: TOE_ABI_CAPS_1_2) */
  int cap_res;      /* result of the last CAPTURE op */
  int cap_done;     /* CAPTURE completions */
  uint32_t rec_hdr; /* record header size to parse EV_CAPTURE buffers with (0: don't) */
  struct {
    uint32_t incl, orig, dir;
    uint8_t tcp_flags;
  } recs[64];
  uint32_t nrecs;
} H;

static void step(void)
{
  e2e_step(&L, L.now + TOE_MSEC(1));
  peer_pump();
  toed_ctl_on_epoll(&C, ctl_tag(0, 1, CTL_TAG_KICK), EPOLLIN, L.now);
  toed_ctl_run(&C, L.now);
}

static void submit(struct toe_abi_sqe *e)
{
  CHECK_EQ(toe_ring_prod_write(&H.abi.sq, e, 1), 1);
  toe_ring_publish(&H.abi.sq);
  uint64_t one = 1;
  CHECK(write(H.abi.kick, &one, sizeof one) == (ssize_t)sizeof one);
}

static void give_buf(uint32_t id)
{
  CHECK(ctl_host_give_buf(&H.abi, id));
}

/* Takes at most `max` CQEs; returns how many. */
static int consume(int max)
{
  int n = 0;
  struct toe_abi_cqe c;
  while (n < max && toe_ring_consume(&H.abi.cq, &c, 1) == 1) {
    n++;
    if (c.type == TOE_ABI_CQE_OP && c.opcode == TOE_ABI_OP_OPEN) {
      CHECK_EQ(c.res, 0);
      H.handle = c.handle;
    } else if (c.type == TOE_ABI_CQE_OP && c.opcode == TOE_ABI_OP_CONNECT) {
      CHECK_EQ(c.res, 0);
      H.connected = true;
    } else if (c.type == TOE_ABI_CQE_OP && c.opcode == TOE_ABI_OP_CAPTURE) {
      H.cap_res = c.res;
      H.cap_done++;
    } else if (c.type == TOE_ABI_CQE_OP) {
      CHECK_EQ(c.res, 0);
    } else if (c.type == TOE_ABI_EV_DATA) {
      const uint8_t *d = H.abi.region + H.abi.lay.buf_off +
                         (uint64_t)c.u.data.buf_id * H.abi.lay.buf_size + c.u.data.offset;
      for (uint32_t i = 0; i < c.u.data.len; i++)
        if (d[i] != pattern(H.received + i) && H.bad_at == UINT64_MAX)
          H.bad_at = H.received + i;
      H.received += c.u.data.len;
      give_buf(c.u.data.buf_id);
    } else if (c.type == TOE_ABI_EV_CAPTURE) {
      H.captures++;
      const uint8_t *b =
          H.abi.region + H.abi.lay.buf_off + (uint64_t)c.u.capture.buf_id * H.abi.lay.buf_size;
      for (uint32_t off = 0; H.rec_hdr && off + H.rec_hdr <= c.u.capture.len;) {
        uint32_t incl, orig, dir = 0;
        memcpy(&incl, b + off + 8, 4);
        memcpy(&orig, b + off + 12, 4);
        if (H.rec_hdr > 16)
          memcpy(&dir, b + off + 16, 4);
        if (H.nrecs < 64) {
          H.recs[H.nrecs].incl = incl;
          H.recs[H.nrecs].orig = orig;
          H.recs[H.nrecs].dir = dir;
          H.recs[H.nrecs].tcp_flags = incl > 47 ? b[off + H.rec_hdr + 47] : 0;
        }
        H.nrecs++;
        off += H.rec_hdr + incl;
      }
      give_buf(c.u.capture.buf_id);
    }
  }
  return n;
}

static void attach(const char *path)
{
  struct toe_abi_hello h;
  ctl_host_hello(&h, H.caps ? H.caps : TOE_ABI_CAPS_1_2, 64, "test_ctl");
  char err[256];
  int rc = ctl_host_attach(&H.abi, &C, path, &h, L.now, err, sizeof err);
  if (rc != 0)
    fprintf(stderr, "attach: %s\n", err);
  CHECK_EQ(rc, 0);
  for (uint32_t i = 0; i < H.abi.lay.buf_count; i++)
    give_buf(i);
}

TEST(capture_never_takes_the_slot_of_a_receive)
{
  memset(&H, 0, sizeof H);
  memset(&P, 0, sizeof P);
  H.bad_at = UINT64_MAX;
  e2e_init(&L, NULL, NULL, 7, TOE_SEC(1));
  L.on_event = on_event;
  L.tx_tap = tx_tap;

  /* The peer listens. */
  struct toe_stack *st1 = L.end[1].st;
  CHECK_EQ(toe_tcp_open(st1, &P, &P.lsock), 0);
  struct toe_sockaddr la = {TOE_AF_INET, PEER_PORT, 0};
  CHECK_EQ(toe_sock_bind(st1, P.lsock, &la), 0);
  CHECK_EQ(toe_tcp_listen(st1, P.lsock, 4), 0);

  /* toed's control socket on the device engine. */
  static struct ctl_host_server srv; /* its path must outlive the control socket */
  char err[256];
  int rc = ctl_host_listen(&C, L.end[0].st, "test-ctl", 1000000, 2, &srv, err, sizeof err);
  if (rc < 0)
    fprintf(stderr, "toed_ctl_open: %s\n", err);
  REQUIRE(rc == 0);
  attach(srv.path);
  step();

  /* A capture of every frame, then a TCP connection to the peer. */
  struct toe_abi_sqe e;
  memset(&e, 0, sizeof e);
  e.opcode = TOE_ABI_OP_CAPTURE;
  e.user_data = 1;
  submit(&e);
  memset(&e, 0, sizeof e);
  e.opcode = TOE_ABI_OP_OPEN;
  e.user_data = 2;
  e.u.open.family = TOE_ABI_AF_INET;
  e.u.open.proto = TOE_ABI_PROTO_TCP;
  submit(&e);
  for (int i = 0; i < 100 && !H.handle; i++) {
    step();
    consume(64);
  }
  CHECK(H.handle != 0);
  memset(&e, 0, sizeof e);
  e.opcode = TOE_ABI_OP_CONNECT;
  e.user_data = 3;
  e.handle = H.handle;
  e.u.addr.addr.family = TOE_ABI_AF_INET;
  e.u.addr.addr.port = PEER_PORT;
  uint32_t a1 = E2E_IP1;
  e.u.addr.addr.addr[0] = (uint8_t)(a1 >> 24);
  e.u.addr.addr.addr[1] = (uint8_t)(a1 >> 16);
  e.u.addr.addr.addr[2] = (uint8_t)(a1 >> 8);
  e.u.addr.addr.addr[3] = (uint8_t)a1;
  submit(&e);
  for (int i = 0; i < 1000 && !H.connected; i++) {
    step();
    consume(64);
  }
  CHECK(H.connected);
  CHECK_EQ(H.cap_done, 1);
  CHECK_EQ(H.cap_res, 0);

  /* The stream, with the host taking one completion every few rounds: the CQ stays nearly full,
   * so receives keep finding exactly one free slot. */
  for (uint32_t i = 0; i < 200000 && H.received < STREAM_BYTES; i++) {
    step();
    if (i % 3 == 0)
      consume(1);
  }
  /* Then a host that keeps up: everything still owed must arrive. */
  for (uint32_t i = 0; i < 20000 && H.received < STREAM_BYTES; i++) {
    step();
    consume(64);
  }
  fprintf(stderr, "# received %llu of %llu bytes, %llu capture buffers, capture_dropped %llu\n",
          (unsigned long long)H.received, (unsigned long long)P.sent,
          (unsigned long long)H.captures, (unsigned long long)C.dev.stats.capture_dropped);
  CHECK_EQ(H.bad_at, UINT64_MAX);
  CHECK_EQ(P.sent, (uint64_t)STREAM_BYTES);
  CHECK_EQ(H.received, (uint64_t)STREAM_BYTES);
  CHECK(H.captures > 0);

  toed_ctl_close(&C);
  ctl_host_detach(&H.abi);
  close(srv.epfd);
  e2e_fini(&L);
}

/* Starts a capture: `prog` (n instructions, ABI 1.4 F_BPF) or the 1.2 `text`, from buffer 0. */
static void start_capture(const struct toe_abi_bpf_insn *prog, uint32_t n, const char *text,
                          uint32_t flags, uint32_t snaplen)
{
  struct toe_abi_sqe e;
  memset(&e, 0, sizeof e);
  e.opcode = TOE_ABI_OP_CAPTURE;
  e.user_data = 10;
  uint32_t len = prog ? n * 8 : (uint32_t)strlen(text);
  memcpy(H.abi.region + H.abi.lay.buf_off, prog ? (const void *)prog : (const void *)text, len);
  e.u.capture.buf_off = len ? H.abi.lay.buf_off : 0;
  e.u.capture.len = len;
  e.u.capture.snaplen = snaplen;
  e.u.capture.capture_flags = flags | (prog ? TOE_ABI_CAPTURE_F_BPF : 0);
  int done = H.cap_done;
  submit(&e);
  for (int i = 0; i < 100 && H.cap_done == done; i++) {
    step();
    consume(64);
  }
  CHECK_EQ(H.cap_done, done + 1);
}

static void stop_capture(void)
{
  struct toe_abi_sqe e;
  memset(&e, 0, sizeof e);
  e.opcode = TOE_ABI_OP_CAPTURE;
  e.user_data = 11;
  e.u.capture.capture_flags = TOE_ABI_CAPTURE_F_STOP;
  int done = H.cap_done;
  submit(&e);
  for (int i = 0; i < 100 && H.cap_done == done; i++) {
    step();
    consume(64);
  }
  CHECK_EQ(H.cap_res, 0);
}

/* ABI 1.4 in the session: a BPF program picks the TCP frames with SYN set and keeps 40 bytes of
 * each (its answer); records carry the direction. A program with a backward jump is refused and
 * leaves no capture running; the 1.2 text filter still works beside it. */
TEST(bpf_capture_with_directions)
{
  memset(&H, 0, sizeof H);
  memset(&P, 0, sizeof P);
  H.bad_at = UINT64_MAX;
  H.caps = TOE_ABI_CAPS_1_4 & ~TOE_ABI_CAP_POSIX_BELLS;
  e2e_init(&L, NULL, NULL, 7, TOE_SEC(1));
  L.on_event = on_event;
  L.tx_tap = tx_tap;
  struct toe_stack *st1 = L.end[1].st;
  CHECK_EQ(toe_tcp_open(st1, &P, &P.lsock), 0);
  struct toe_sockaddr la = {TOE_AF_INET, PEER_PORT, 0};
  CHECK_EQ(toe_sock_bind(st1, P.lsock, &la), 0);
  CHECK_EQ(toe_tcp_listen(st1, P.lsock, 4), 0);
  static struct ctl_host_server srv; /* its path must outlive the control socket */
  char err[256];
  int rc = ctl_host_listen(&C, L.end[0].st, "test-ctl", 1000000, 2, &srv, err, sizeof err);
  if (rc < 0)
    fprintf(stderr, "toed_ctl_open: %s\n", err);
  REQUIRE(rc == 0);
  attach(srv.path);
  step();

  /* ja -1: a loop. Refused, and nothing runs. */
  static const struct toe_abi_bpf_insn loop[] = {{0x05, 0, 0, 0xffffffffu}, {0x06, 0, 0, 0}};
  start_capture(loop, 2, NULL, 0, 0);
  CHECK_EQ(H.cap_res, -TOE_EINVAL);
  CHECK_EQ(C.dev.capturing, 0);
  CHECK_EQ(C.dev.cap_progs_used, 0);

  /* IPv4 (ethertype at 12), TCP (protocol at 23), SYN (flags at 14 + 20 + 13 = 47): keep 40. */
  static const struct toe_abi_bpf_insn syn[] = {
      {0x28, 0, 0, 12}, {0x15, 0, 5, 0x0800}, {0x30, 0, 0, 23}, {0x15, 0, 3, 6},
      {0x30, 0, 0, 47}, {0x45, 0, 1, 0x02},   {0x06, 0, 0, 40}, {0x06, 0, 0, 0},
  };
  H.rec_hdr = TOE_ABI_CAPTURE_REC_HDR_DIR;
  start_capture(syn, 8, NULL, TOE_ABI_CAPTURE_F_DIR, 0);
  CHECK_EQ(H.cap_res, 0);
  CHECK_EQ(C.dev.cap_progs_used, 1);

  struct toe_abi_sqe e;
  memset(&e, 0, sizeof e);
  e.opcode = TOE_ABI_OP_OPEN;
  e.user_data = 2;
  e.u.open.family = TOE_ABI_AF_INET;
  e.u.open.proto = TOE_ABI_PROTO_TCP;
  submit(&e);
  for (int i = 0; i < 100 && !H.handle; i++) {
    step();
    consume(64);
  }
  REQUIRE(H.handle != 0);
  memset(&e, 0, sizeof e);
  e.opcode = TOE_ABI_OP_CONNECT;
  e.user_data = 3;
  e.handle = H.handle;
  e.u.addr.addr.family = TOE_ABI_AF_INET;
  e.u.addr.addr.port = PEER_PORT;
  uint32_t a1 = E2E_IP1;
  for (int i = 0; i < 4; i++)
    e.u.addr.addr.addr[i] = (uint8_t)(a1 >> (24 - 8 * i));
  submit(&e);
  for (int i = 0; i < 1000 && !H.connected; i++) {
    step();
    consume(64);
  }
  CHECK(H.connected);
  for (int i = 0; i < 50; i++) { /* data flows; none of it has SYN */
    step();
    consume(64);
  }
  stop_capture();
  CHECK_EQ(C.dev.cap_progs_used, 0);
  /* Exactly the SYN (sent: outbound) and the SYN-ACK (received: inbound), cut at 40 bytes. */
  REQUIRE(H.nrecs == 2);
  CHECK_EQ(H.recs[0].dir, TOE_ABI_CAPTURE_DIR_OUT);
  CHECK_EQ(H.recs[1].dir, TOE_ABI_CAPTURE_DIR_IN);
  for (int i = 0; i < 2; i++) {
    CHECK_EQ(H.recs[i].incl, 40);
    CHECK(H.recs[i].orig >= 54 + 4); /* Ethernet, IPv4, TCP and at least the MSS option */
  }

  /* The 1.2 text filter, classic 16-byte records: the data frames of the stream. */
  H.rec_hdr = TOE_ABI_CAPTURE_REC_HDR;
  H.nrecs = 0;
  start_capture(NULL, 0, "tcp", 0, 0);
  CHECK_EQ(H.cap_res, 0);
  for (int i = 0; i < 50; i++) {
    step();
    consume(64);
  }
  stop_capture();
  CHECK(H.nrecs > 10);
  for (uint32_t i = 0; i < H.nrecs && i < 64; i++)
    CHECK(H.recs[i].incl == H.recs[i].orig && H.recs[i].incl >= 54);

  toed_ctl_close(&C);
  ctl_host_detach(&H.abi);
  close(srv.epfd);
  e2e_fini(&L);
}

TEST_MAIN()
