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
 *
 * And (issue 13, item 4): ABI 1.5 per-datagram metadata (TOE_ABI_SO_RXMETA) on a UDP socket,
 * from hand-built frames with chosen TOS and TTL (rxmeta_in_the_session).
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
#include <time.h>
#include <unistd.h>

#define PEER_PORT 5001
#define STREAM_BYTES (3u << 20)
#define US(us) ((toe_time_t)(us)*1000ull)

static struct e2e_link L;
static struct toed_ctl C;

/* ---- the peer (end 1): accepts one connection and streams the pattern ------------------------ */

static struct {
  struct toe_sock *lsock, *conn;
  uint64_t sent;
  uint64_t limit; /* bytes to stream (0: STREAM_BYTES) */
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
  const uint64_t lim = P.limit ? P.limit : STREAM_BYTES;
  while (P.sent < lim) {
    size_t n = lim - P.sent < sizeof buf ? lim - P.sent : sizeof buf;
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
  /* 1.5 EV_DATA of a UDP socket (rxmeta_in_the_session) */
  struct {
    uint32_t offset, len;
    uint16_t flags;
    struct toe_abi_rx_meta meta; /* when F_META */
    uint8_t first;               /* the first data byte */
  } data[16];
  uint32_t ndata;
  bool udp; /* EV_DATA carries datagrams, not the stream pattern */
} H;

static void step_by(toe_time_t dt)
{
  e2e_step(&L, L.now + dt);
  peer_pump();
  toed_ctl_on_epoll(&C, ctl_tag(0, 1, CTL_TAG_KICK), EPOLLIN, L.now);
  toed_ctl_run(&C, L.now);
}

static void step(void)
{
  step_by(TOE_MSEC(1));
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
    } else if (c.type == TOE_ABI_EV_DATA && H.udp) {
      const uint8_t *b =
          H.abi.region + H.abi.lay.buf_off + (uint64_t)c.u.data.buf_id * H.abi.lay.buf_size;
      if (H.ndata < 16) {
        H.data[H.ndata].offset = c.u.data.offset;
        H.data[H.ndata].len = c.u.data.len;
        H.data[H.ndata].flags = c.flags;
        H.data[H.ndata].first = c.u.data.len ? b[c.u.data.offset] : 0;
        if ((c.flags & TOE_ABI_CQE_F_META) && c.u.data.offset >= TOE_ABI_RX_META_SIZE)
          memcpy(&H.data[H.ndata].meta, b + c.u.data.offset - TOE_ABI_RX_META_SIZE,
                 sizeof(struct toe_abi_rx_meta));
      }
      H.ndata++;
      give_buf(c.u.data.buf_id);
    } else if (c.type == TOE_ABI_EV_DATA) {
      const uint8_t *d = H.abi.region + H.abi.lay.buf_off +
                         (uint64_t)c.u.data.buf_id * H.abi.lay.buf_size + c.u.data.offset;
      for (uint32_t i = 0; i < c.u.data.len; i++)
        if (d[i] != pattern(H.received + i) && H.bad_at == UINT64_MAX)
          H.bad_at = H.received + i;
      H.received += c.u.data.len;
      if (H.ndata < 16)
        H.data[H.ndata].len = c.u.data.len;
      H.ndata++;
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
  struct toe_sockaddr la = {.family = TOE_AF_INET, .port = PEER_PORT, .addr = 0};
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
  struct toe_sockaddr la = {.family = TOE_AF_INET, .port = PEER_PORT, .addr = 0};
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

/* One IPv4 frame from the peer's address to the device's, with the header's TOS and TTL chosen
 * (the peer engine always sends TOS 0): `l4` (len bytes) at fragment offset `frag_off` bytes,
 * MF if `more`. */
static void inject_ip(uint8_t tos, uint8_t ttl, const uint8_t *l4, uint32_t len, uint32_t frag_off,
                      bool more)
{
  static uint8_t f[14 + 20 + 1480];
  REQUIRE(len <= 1480);
  memcpy(f, L.end[0].cfg.mac.b, 6);
  memcpy(f + 6, L.end[1].cfg.mac.b, 6);
  f[12] = 0x08;
  f[13] = 0x00;
  uint8_t *ip = f + 14;
  uint32_t tot = 20 + len;
  memset(ip, 0, 20);
  ip[0] = 0x45;
  ip[1] = tos;
  ip[2] = (uint8_t)(tot >> 8);
  ip[3] = (uint8_t)tot;
  ip[4] = 0x12; /* identification */
  ip[5] = 0x34;
  uint32_t fo = frag_off / 8 | (more ? 0x2000u : 0);
  ip[6] = (uint8_t)(fo >> 8);
  ip[7] = (uint8_t)fo;
  ip[8] = ttl;
  ip[9] = 17;
  for (int i = 0; i < 4; i++) {
    ip[12 + i] = (uint8_t)(E2E_IP1 >> (24 - 8 * i));
    ip[16 + i] = (uint8_t)(E2E_IP0 >> (24 - 8 * i));
  }
  uint32_t sum = 0;
  for (int i = 0; i < 20; i += 2)
    sum += (uint32_t)(ip[i] << 8 | ip[i + 1]);
  while (sum >> 16)
    sum = (sum & 0xffff) + (sum >> 16);
  ip[10] = (uint8_t)(~sum >> 8);
  ip[11] = (uint8_t)~sum;
  memcpy(ip + 20, l4, len);
  CHECK_EQ(toe_stack_input_copy(L.end[0].st, f, 14 + tot, L.now), 0);
}

/* A UDP datagram of plen bytes `fill` to dport (no UDP checksum: RFC 768 allows 0), in
 * fragments of 1480 bytes when it does not fit one frame (RFC 791). */
static void inject_udp(uint16_t dport, uint8_t tos, uint8_t ttl, uint8_t fill, uint32_t plen)
{
  static uint8_t d[8 + 4096];
  REQUIRE(plen <= 4096);
  uint8_t *u = d;
  u[0] = 0x9c; /* source port 40000 */
  u[1] = 0x40;
  u[2] = (uint8_t)(dport >> 8);
  u[3] = (uint8_t)dport;
  u[4] = (uint8_t)((8 + plen) >> 8);
  u[5] = (uint8_t)(8 + plen);
  u[6] = u[7] = 0;
  memset(u + 8, fill, plen);
  for (uint32_t off = 0; off < 8 + plen; off += 1480) {
    uint32_t n = 8 + plen - off < 1480 ? 8 + plen - off : 1480;
    inject_ip(tos, ttl, d + off, n, off, off + n < 8 + plen);
  }
}

static uint64_t real_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sockopt(uint32_t op, uint32_t opt, int64_t v)
{
  struct toe_abi_sqe e;
  memset(&e, 0, sizeof e);
  e.opcode = (uint8_t)op;
  e.user_data = 9;
  e.handle = H.handle;
  e.u.sockopt.opt = opt;
  e.u.sockopt.value = v;
  submit(&e);
  step();
}

/* ABI 1.5 in the session (issue 13 item 4): a UDP socket bound to the wildcard address asks for
 * per-datagram metadata (TOE_ABI_SO_RXMETA). Datagrams with TOS 0x28 and TTL 33 then come with
 * TOE_ABI_CQE_F_META and the record before the data: the destination address, TOS, TTL and an
 * arrival time on the realtime clock, placed before the data (offset 32); a datagram larger than
 * one buffer has the record on its first piece only; with the option off (before, and after
 * clearing it) no record and offset 0. */
/* Receive coalescing (1.6): data that arrives while the host has not consumed the socket's last
 * EV_DATA is held in the engine and goes out with what arrives meanwhile in one EV_DATA once the
 * host consumed that entry; a host that keeps up is never held; and a host that does not drain
 * its CQ gets held data within HOLD_MAX_NS all the same. Each step here is 1 ms of the engine's
 * clock: the peer's bytes of step k reach toed in step k + 1. */
TEST(receive_coalescing)
{
  memset(&H, 0, sizeof H);
  memset(&P, 0, sizeof P);
  H.bad_at = UINT64_MAX;
  H.caps = TOE_ABI_CAPS_1_6 & ~TOE_ABI_CAP_POSIX_BELLS;
  P.limit = 100;
  e2e_init(&L, NULL, NULL, 7, TOE_SEC(1));
  L.on_event = on_event;
  struct toe_stack *st1 = L.end[1].st;
  CHECK_EQ(toe_tcp_open(st1, &P, &P.lsock), 0);
  struct toe_sockaddr la = {.family = TOE_AF_INET, .port = PEER_PORT, .addr = 0};
  CHECK_EQ(toe_sock_bind(st1, P.lsock, &la), 0);
  CHECK_EQ(toe_tcp_listen(st1, P.lsock, 4), 0);
  static struct ctl_host_server srv; /* its path must outlive the control socket */
  char err[256];
  int rc = ctl_host_listen(&C, L.end[0].st, "test-ctl-coal", 1000000, 2, &srv, err, sizeof err);
  if (rc < 0)
    fprintf(stderr, "toed_ctl_open: %s\n", err);
  REQUIRE(rc == 0);
  attach(srv.path);
  step();
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
  REQUIRE(H.connected);
  REQUIRE(P.conn != NULL);
  CHECK_EQ(toe_sock_setopt(st1, P.conn, TOE_TCP_NODELAY, 1), 0);

  /* A host that keeps up: 100 bytes, one EV_DATA, no hold. */
  for (int i = 0; i < 10 && H.received < 100; i++) {
    step();
    consume(64);
  }
  CHECK_EQ(H.received, 100);
  CHECK_EQ(H.ndata, 1);
  CHECK_EQ(C.dev.stats.rx_held, 0);

  /* The host stops consuming: the next 100 bytes are lent (the last EV_DATA was consumed)... */
  P.limit = 200;
  step();
  step();
  CHECK_EQ(C.dev.stats.bufs_lent, 2);
  /* ... the 300 after them are held while that entry waits in the CQ (steps of 10 us now, well
   * within HOLD_MAX_NS) ... */
  P.limit = 500;
  for (int i = 0; i < 6; i++)
    step_by(US(10));
  CHECK_EQ(C.dev.stats.rx_held, 1);
  CHECK_EQ(C.dev.stats.bufs_lent, 2);
  /* ... and go out in one EV_DATA once the host consumed it. */
  CHECK_EQ(consume(64), 1);
  CHECK_EQ(H.received, 200);
  step_by(US(10));
  CHECK_EQ(C.dev.stats.bufs_lent, 3);
  CHECK_EQ(consume(64), 1);
  CHECK_EQ(H.received, 500);
  CHECK_EQ(H.ndata, 3);
  CHECK_EQ(H.data[2].len, 300);

  /* A host that does not drain its CQ: held data goes out after HOLD_MAX_NS all the same. */
  P.limit = 600;
  step_by(US(10));
  step_by(US(10)); /* lent: the 300-byte entry was consumed */
  CHECK_EQ(C.dev.stats.bufs_lent, 4);
  P.limit = 700;
  step_by(US(10));
  step_by(US(10)); /* held behind the unconsumed 100-byte entry */
  CHECK_EQ(C.dev.stats.rx_held, 2);
  step_by(US(100));
  CHECK_EQ(C.dev.stats.bufs_lent, 4); /* about 110 us: still held */
  step_by(US(100));
  CHECK_EQ(C.dev.stats.bufs_lent, 5); /* past 200 us */
  CHECK_EQ(consume(64), 2);
  CHECK_EQ(H.received, 700);
  CHECK_EQ(H.bad_at, UINT64_MAX);

  toed_ctl_close(&C);
  ctl_host_detach(&H.abi);
  close(srv.epfd);
  e2e_fini(&L);
}

/* SO_RXBUFS 0 pauses a socket's deliveries (1.7): what was lent before the SETSOCKOPT's
 * completion is the host's, nothing is lent after it however much arrives (the engine keeps it),
 * and a value above 0 resumes delivery with every byte in order. A holder of a shared connection
 * that is about to end relies on this to hand on what it was lent (src/preload/pl_inherit.c). */
TEST(rxbufs_zero_pauses_delivery)
{
  memset(&H, 0, sizeof H);
  memset(&P, 0, sizeof P);
  H.bad_at = UINT64_MAX;
  H.caps = TOE_ABI_CAPS_1_6 & ~TOE_ABI_CAP_POSIX_BELLS;
  P.limit = 100;
  e2e_init(&L, NULL, NULL, 7, TOE_SEC(1));
  L.on_event = on_event;
  struct toe_stack *st1 = L.end[1].st;
  CHECK_EQ(toe_tcp_open(st1, &P, &P.lsock), 0);
  struct toe_sockaddr la = {.family = TOE_AF_INET, .port = PEER_PORT, .addr = 0};
  CHECK_EQ(toe_sock_bind(st1, P.lsock, &la), 0);
  CHECK_EQ(toe_tcp_listen(st1, P.lsock, 4), 0);
  static struct ctl_host_server srv;
  char err[256];
  int rc = ctl_host_listen(&C, L.end[0].st, "test-ctl-pause", 1000000, 2, &srv, err, sizeof err);
  if (rc < 0)
    fprintf(stderr, "toed_ctl_open: %s\n", err);
  REQUIRE(rc == 0);
  attach(srv.path);
  step();
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
  REQUIRE(H.connected);
  REQUIRE(P.conn != NULL);
  CHECK_EQ(toe_sock_setopt(st1, P.conn, TOE_TCP_NODELAY, 1), 0);
  for (int i = 0; i < 10 && H.received < 100; i++) {
    step();
    consume(64);
  }
  CHECK_EQ(H.received, 100);

  /* Pause (the completion's result is checked by consume: 0). */
  memset(&e, 0, sizeof e);
  e.opcode = TOE_ABI_OP_SETSOCKOPT;
  e.user_data = 4;
  e.handle = H.handle;
  e.u.sockopt.opt = TOE_ABI_SO_RXBUFS;
  e.u.sockopt.value = 0;
  submit(&e);
  step();
  consume(64);
  const uint64_t lent = C.dev.stats.bufs_lent;
  P.limit = 5000;
  for (int i = 0; i < 50; i++) {
    step();
    consume(64);
  }
  CHECK_EQ(C.dev.stats.bufs_lent, lent);
  CHECK_EQ(H.received, 100);

  /* Resume: the 4,900 bytes the engine kept come, in order. */
  e.user_data = 5;
  e.u.sockopt.value = 4;
  submit(&e);
  for (int i = 0; i < 50 && H.received < 5000; i++) {
    step();
    consume(64);
  }
  CHECK_EQ(H.received, 5000);
  CHECK_EQ(H.bad_at, UINT64_MAX);

  toed_ctl_close(&C);
  ctl_host_detach(&H.abi);
  close(srv.epfd);
  e2e_fini(&L);
}

TEST(rxmeta_in_the_session)
{
  memset(&H, 0, sizeof H);
  memset(&P, 0, sizeof P);
  H.bad_at = UINT64_MAX;
  H.udp = true;
  H.caps = TOE_ABI_CAPS_1_5 & ~TOE_ABI_CAP_POSIX_BELLS;
  e2e_init(&L, NULL, NULL, 7, TOE_SEC(1));
  L.on_event = on_event;
  static struct ctl_host_server srv; /* its path must outlive the control socket */
  char err[256];
  int rc = ctl_host_listen(&C, L.end[0].st, "test-ctl-meta", 1000000, 2, &srv, err, sizeof err);
  if (rc < 0)
    fprintf(stderr, "toed_ctl_open: %s\n", err);
  REQUIRE(rc == 0);
  attach(srv.path);
  step();

  struct toe_abi_sqe e;
  memset(&e, 0, sizeof e);
  e.opcode = TOE_ABI_OP_OPEN;
  e.user_data = 2;
  e.u.open.family = TOE_ABI_AF_INET;
  e.u.open.proto = TOE_ABI_PROTO_UDP;
  submit(&e);
  for (int i = 0; i < 100 && !H.handle; i++) {
    step();
    consume(64);
  }
  REQUIRE(H.handle != 0);
  memset(&e, 0, sizeof e);
  e.opcode = TOE_ABI_OP_BIND;
  e.user_data = 3;
  e.handle = H.handle;
  e.u.addr.addr.family = TOE_ABI_AF_INET;
  e.u.addr.addr.port = 7000; /* 0.0.0.0: the destination is not the socket's own address */
  submit(&e);
  step();
  consume(64);

  /* Off: a plain datagram. */
  inject_udp(7000, 0x28, 33, 'a', 100);
  for (int i = 0; i < 5; i++) {
    step();
    consume(64);
  }
  REQUIRE(H.ndata == 1);
  CHECK_EQ(H.data[0].offset, 0);
  CHECK_EQ(H.data[0].len, 100);
  CHECK_EQ(H.data[0].flags & TOE_ABI_CQE_F_META, 0);
  CHECK_EQ(H.data[0].first, 'a');

  /* On, then a small datagram and one of 4096 bytes (three fragments; three buffers of 2048). */
  sockopt(TOE_ABI_OP_SETSOCKOPT, TOE_ABI_SO_RXMETA, 1);
  consume(64);
  uint64_t rt0 = real_ns();
  toe_time_t in_at = L.now;
  inject_udp(7000, 0x28, 33, 'b', 100);
  inject_udp(7000, 0xb8, 1, 'c', 4096);
  int steps = 0;
  for (; steps < 10 && H.ndata < 5; steps++) {
    step();
    consume(64);
  }
  uint64_t rt1 = real_ns();
  if (H.ndata != 5)
    fprintf(stderr, "# %u EV_DATA, udp rx_delivered %llu\n", H.ndata,
            (unsigned long long)toe_stack_counters(L.end[0].st)->udp.rx_delivered);
  REQUIRE(H.ndata == 5);
  CHECK_EQ(H.data[1].flags, TOE_ABI_CQE_F_META);
  CHECK_EQ(H.data[1].offset, TOE_ABI_RX_META_SIZE);
  CHECK_EQ(H.data[1].len, 100);
  CHECK_EQ(H.data[1].first, 'b');
  const struct toe_abi_rx_meta *m = &H.data[1].meta;
  CHECK_EQ(m->size, TOE_ABI_RX_META_SIZE);
  CHECK_EQ(m->family, TOE_ABI_AF_INET);
  CHECK_EQ(m->flags, TOE_ABI_RX_META_F_DST | TOE_ABI_RX_META_F_TOS | TOE_ABI_RX_META_F_TTL |
                         TOE_ABI_RX_META_F_TIME);
  CHECK_EQ(m->tos, 0x28);
  CHECK_EQ(m->ttl, 33);
  static const uint8_t dev_addr[4] = {198, 18, 0, 1};
  CHECK_MEM(m->dst, dev_addr, 4);
  /* Arrival on the realtime clock: the session places it (now - arrival) of virtual time before
   * realtime now; virtual time advanced `steps` ms between the frame and its delivery. */
  uint64_t age_max = (uint64_t)steps * 1000000ull + (L.now - in_at);
  CHECK(m->time_ns + age_max >= rt0);
  CHECK(m->time_ns <= rt1);
  /* The large datagram: 2016 bytes after the record, then the rest in pieces of up to 2048
   * without one, F_MORE on all but the last. */
  CHECK_EQ(H.data[2].flags, TOE_ABI_CQE_F_META | TOE_ABI_CQE_F_MORE);
  CHECK_EQ(H.data[2].offset, TOE_ABI_RX_META_SIZE);
  CHECK_EQ(H.data[2].len, 2048 - TOE_ABI_RX_META_SIZE);
  CHECK_EQ(H.data[2].meta.tos, 0xb8);
  CHECK_EQ(H.data[2].meta.ttl, 1);
  CHECK_EQ(H.data[3].flags, TOE_ABI_CQE_F_MORE);
  CHECK_EQ(H.data[3].offset, 0);
  CHECK_EQ(H.data[3].len, 2048);
  CHECK_EQ(H.data[4].flags, 0);
  CHECK_EQ(H.data[4].offset, 0);
  CHECK_EQ(H.data[4].len, 4096 - 2 * 2048 + TOE_ABI_RX_META_SIZE);
  CHECK_EQ(H.data[4].first, 'c');

  /* Off again: no record. */
  sockopt(TOE_ABI_OP_SETSOCKOPT, TOE_ABI_SO_RXMETA, 0);
  consume(64);
  inject_udp(7000, 0x28, 33, 'd', 10);
  for (int i = 0; i < 5 && H.ndata < 6; i++) {
    step();
    consume(64);
  }
  REQUIRE(H.ndata == 6);
  CHECK_EQ(H.data[5].flags, 0);
  CHECK_EQ(H.data[5].offset, 0);
  CHECK_EQ(H.data[5].first, 'd');

  toed_ctl_close(&C);
  ctl_host_detach(&H.abi);
  close(srv.epfd);
  e2e_fini(&L);
}

/* A read-only op does not wait behind a SEND (issue 10, item 3): the peer reads nothing, so the
 * host's SENDs fill the engine's send buffer and the peer's window and one waits in the socket's
 * send queue. A GETSOCKOPT submitted after it is answered at once (before, it waited for the
 * peer's window, and a getsockopt on a stalled connection blocked for as long); a SETSOCKOPT
 * submitted after it still waits, in submission order. */
TEST(getsockopt_does_not_wait_behind_a_send)
{
  memset(&H, 0, sizeof H);
  memset(&P, 0, sizeof P);
  H.bad_at = UINT64_MAX;
  H.caps = TOE_ABI_CAPS_1_6 & ~TOE_ABI_CAP_POSIX_BELLS;
  P.limit = 1; /* the peer sends one byte and never reads */
  e2e_init(&L, NULL, NULL, 7, TOE_SEC(1));
  L.on_event = on_event;
  struct toe_stack *st1 = L.end[1].st;
  CHECK_EQ(toe_tcp_open(st1, &P, &P.lsock), 0);
  struct toe_sockaddr la = {.family = TOE_AF_INET, .port = PEER_PORT, .addr = 0};
  CHECK_EQ(toe_sock_bind(st1, P.lsock, &la), 0);
  CHECK_EQ(toe_tcp_listen(st1, P.lsock, 4), 0);
  static struct ctl_host_server srv;
  char err[256];
  int rc = ctl_host_listen(&C, L.end[0].st, "test-ctl-order", 1000000, 2, &srv, err, sizeof err);
  if (rc < 0)
    fprintf(stderr, "toed_ctl_open: %s\n", err);
  REQUIRE(rc == 0);
  attach(srv.path);
  step();
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
  REQUIRE(H.connected);

  /* SENDs of the whole buffer area each, more than the engine's send buffer and the peer's
   * window hold (their bytes are whatever the buffers hold: nobody looks at them). Fewer than
   * the op table's slots (sq_entries): the SQ must not block. */
  enum { NSEND = 5 };
  uint32_t area = H.abi.lay.buf_size * H.abi.lay.buf_count;
  for (int i = 0; i < NSEND; i++) {
    memset(&e, 0, sizeof e);
    e.opcode = TOE_ABI_OP_SEND;
    e.user_data = 100 + (uint64_t)i;
    e.handle = H.handle;
    e.u.send.buf_off = H.abi.lay.buf_off;
    e.u.send.len = area;
    submit(&e);
    step();
  }
  for (int i = 0; i < 20; i++)
    step();
  /* What completed: SENDs, then the GETSOCKOPT and the SETSOCKOPT submitted behind them. */
  int sends_done = 0, get_done = 0, set_done = 0;
  int64_t sndbuf = -1;
  struct toe_abi_cqe c;
  while (toe_ring_consume(&H.abi.cq, &c, 1) == 1) {
    if (c.type == TOE_ABI_CQE_OP && c.opcode == TOE_ABI_OP_SEND)
      sends_done++;
    else if (c.type == TOE_ABI_EV_DATA)
      give_buf(c.u.data.buf_id);
  }
  CHECK(sends_done > 0);
  REQUIRE(sends_done < NSEND); /* one waits for the peer's window */
  memset(&e, 0, sizeof e);
  e.opcode = TOE_ABI_OP_SETSOCKOPT;
  e.user_data = 8;
  e.handle = H.handle;
  e.u.sockopt.opt = TOE_ABI_SO_KEEPALIVE;
  e.u.sockopt.value = 1;
  submit(&e);
  memset(&e, 0, sizeof e);
  e.opcode = TOE_ABI_OP_GETSOCKOPT;
  e.user_data = 9;
  e.handle = H.handle;
  e.u.sockopt.opt = TOE_ABI_SO_SNDBUF;
  submit(&e);
  for (int i = 0; i < 5; i++)
    step();
  while (toe_ring_consume(&H.abi.cq, &c, 1) == 1) {
    if (c.type == TOE_ABI_CQE_OP && c.opcode == TOE_ABI_OP_SEND)
      sends_done++;
    else if (c.type == TOE_ABI_CQE_OP && c.user_data == 9) {
      get_done++;
      CHECK_EQ(c.res, 0);
      sndbuf = c.u.sockopt.value;
    } else if (c.type == TOE_ABI_CQE_OP && c.user_data == 8) {
      set_done++;
    } else if (c.type == TOE_ABI_EV_DATA) {
      give_buf(c.u.data.buf_id);
    }
  }
  CHECK(sends_done < NSEND); /* the peer still reads nothing */
  CHECK_EQ(get_done, 1);     /* answered all the same */
  CHECK(sndbuf > 0);
  CHECK_EQ(set_done, 0); /* in submission order, behind the SEND */

  toed_ctl_close(&C);
  ctl_host_detach(&H.abi);
  close(srv.epfd);
  e2e_fini(&L);
}

/* The receive hold without a retry timer (issue 10, item 3): a session that polls not at all
 * (poll_us 0) sleeps while it holds data behind an unconsumed EV_DATA. It must neither come back
 * every few microseconds to look (before: a 20 us retry) nor sleep past the point the data could
 * go: its next wake is the hold's end (HOLD_MAX_NS after it began), and it asked for the host's
 * fill-ring doorbell, which a host rings when it gives the EV_DATA's buffer back after reading
 * it; that doorbell brings the held bytes out at once. */
TEST(receive_hold_waits_for_the_fill_doorbell)
{
  memset(&H, 0, sizeof H);
  memset(&P, 0, sizeof P);
  H.bad_at = UINT64_MAX;
  H.caps = TOE_ABI_CAPS_1_6 & ~TOE_ABI_CAP_POSIX_BELLS;
  P.limit = 100;
  e2e_init(&L, NULL, NULL, 7, TOE_SEC(1));
  L.on_event = on_event;
  struct toe_stack *st1 = L.end[1].st;
  CHECK_EQ(toe_tcp_open(st1, &P, &P.lsock), 0);
  struct toe_sockaddr la = {.family = TOE_AF_INET, .port = PEER_PORT, .addr = 0};
  CHECK_EQ(toe_sock_bind(st1, P.lsock, &la), 0);
  CHECK_EQ(toe_tcp_listen(st1, P.lsock, 4), 0);
  static struct ctl_host_server srv;
  char err[256];
  int rc = ctl_host_listen(&C, L.end[0].st, "test-ctl-hold", 0, 2, &srv, err, sizeof err);
  if (rc < 0)
    fprintf(stderr, "toed_ctl_open: %s\n", err);
  REQUIRE(rc == 0);
  attach(srv.path);
  step();
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
  REQUIRE(H.connected);
  REQUIRE(P.conn != NULL);
  CHECK_EQ(toe_sock_setopt(st1, P.conn, TOE_TCP_NODELAY, 1), 0);
  for (int i = 0; i < 10 && H.received < 100; i++) {
    step();
    consume(64);
  }
  REQUIRE(H.received == 100);

  /* Not consumed: 100 bytes lent, then 300 held behind them. */
  P.limit = 200;
  step_by(US(10));
  step_by(US(10));
  CHECK_EQ(C.dev.stats.bufs_lent, 2);
  P.limit = 500;
  step_by(US(10));
  step_by(US(10));
  REQUIRE(C.dev.stats.rx_held == 1);
  CHECK_EQ(C.dev.stats.bufs_lent, 2);
  /* Asleep with the hold: its next wake is the hold's end, not a retry in a few microseconds. */
  toe_time_t w = toed_ctl_next_wake(&C, L.now);
  CHECK(w > L.now + US(100));
  CHECK(w <= L.now + US(200));
  /* The host consumes the entry and gives its buffer back: the device asked for the doorbell. */
  CHECK_EQ(consume(64), 1);
  CHECK_EQ(H.received, 200);
  CHECK(toe_ring_prod_needs_wakeup(&H.abi.fq));
  /* Rung (the step reads the kick): the held 300 bytes go out at once, in one EV_DATA. */
  step_by(US(1));
  CHECK_EQ(C.dev.stats.bufs_lent, 3);
  CHECK_EQ(consume(64), 1);
  CHECK_EQ(H.received, 500);
  CHECK_EQ(H.bad_at, UINT64_MAX);

  toed_ctl_close(&C);
  ctl_host_detach(&H.abi);
  close(srv.epfd);
  e2e_fini(&L);
}

TEST_MAIN()
